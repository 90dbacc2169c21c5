#!/usr/bin/env bash
# The browser test: builds llmql-wasm (scripts/build-wasm.sh) and the llmql binary, exports the tiny
# fixture model + PEFT adapter + fixture corpus with `llmql export-web`, encodes and searches the fixture
# queries natively, then loads the page in headless Chromium (playwright-core) and checks, on WebGPU
# (SwiftShader), on the CPU fallback and on WebGPU with host-side token embeddings, that each in-browser
# query embedding equals the native one within 1e-4 and that the top 10 match `llmql search`.
# Installs Debian's chromium and the npm package playwright-core when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  echo "installing chromium (Debian) for the browser test"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  echo "installing nodejs + npm (Debian) for the browser test"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
(cd web-demo && npm ci --no-audit --no-fund --silent)

bash scripts/build-wasm.sh
# The llmql binary: LLMQL_BIN (scripts/test.sh passes the one its test build made), else a release build.
if [ -n "${LLMQL_BIN:-}" ] && [ -x "$LLMQL_BIN" ]; then
  LLMQL="$LLMQL_BIN"
else
  cargo build --release -p llmql-cli
  LLMQL="$CARGO_TARGET_DIR/release/llmql"
fi

DIST=web-demo/dist/test-tiny
OUT=web-demo/test-out
rm -rf "$OUT"; mkdir -p "$OUT"
# An export of an llmql older than its output marker: this script's own folder, replaced here.
if [ -d "$DIST" ] && [ ! -e "$DIST/.llmql-output" ]; then rm -rf "$DIST"; fi
"$LLMQL" export-web --model tests/fixtures/tiny-llama --adapter tests/fixtures/stage2/adapter \
  --corpus tests/fixtures/collection --output "$DIST"
"$LLMQL" encode --model "$DIST/model" --adapter "$DIST/adapter" --input tests/fixtures/collection/queries.jsonl \
  --kind query --max-len 64 --output "$OUT/queries"
"$LLMQL" search --queries "$OUT/queries" --corpus "$DIST/corpus" --depth 10 --output "$OUT/native.trec"
(cd web-demo && node tests/browser-test.mjs --data dist/test-tiny --queries ../tests/fixtures/collection/queries.jsonl \
  --native-queries test-out/queries --native-run test-out/native.trec --backends webgpu,cpu,webgpu-host,cpu-picked)
