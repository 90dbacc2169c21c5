#!/usr/bin/env bash
# The browser demo in one command: builds llmql-wasm into web-demo/pkg, exports a model + corpus into
# web-demo/dist/default with `llmql export-web`, and serves web-demo/ on http://127.0.0.1:8080/.
#   - after `scripts/quickstart.sh` (quickstart-out/ exists): its trained LLM-QL model + adapter and
#     the embedded collection;
#   - otherwise: the base SmolLM2-135M-Instruct (scripts/setup.sh) zero-shot on the embedded collection.
# Options: QUICKSTART=DIR (another quickstart output), PORT=8080, EXPORT_ARGS="..." (more export-web flags).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
QUICKSTART="${QUICKSTART:-quickstart-out}"
bash scripts/build-wasm.sh
cargo build --release -p llmql-cli
LLMQL="$CARGO_TARGET_DIR/release/llmql"
# An export of an llmql older than its output marker: this script's own folder, replaced here.
if [ -d web-demo/dist/default ] && [ ! -e web-demo/dist/default/.llmql-output ]; then rm -rf web-demo/dist/default; fi
if [ -d "$QUICKSTART/ql" ] && [ -d "$QUICKSTART/dense" ]; then
  "$LLMQL" export-web --quickstart "$QUICKSTART" --output web-demo/dist/default ${EXPORT_ARGS:-}
else
  echo "no quickstart output in $QUICKSTART: exporting the base SmolLM2-135M-Instruct (zero-shot)"
  bash scripts/setup.sh
  "$LLMQL" export-web --model "${LLMQL_HOME:-$HOME/.cache/llmql}/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
    --corpus native-cli/assets/quickstart --output web-demo/dist/default ${EXPORT_ARGS:-}
fi
exec node web-demo/serve.mjs --root web-demo --port "${PORT:-8080}"
