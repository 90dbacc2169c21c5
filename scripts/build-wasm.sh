#!/usr/bin/env bash
# Builds the browser crate (wasm/, `llmql-wasm`) and its JS bindings into web-demo/pkg/:
#   llmql_wasm.js, llmql_wasm.d.ts (the typed JS API), llmql_wasm_bg.wasm.
# Installs what it needs: the wasm32 target (rustup) and wasm-bindgen-cli from crates.io, at the
# exact version of the wasm-bindgen crate in Cargo.lock (the two must match).
# No wasm-opt step (wasm-pack's would download binaryen); set WASM_OPT=/path/to/wasm-opt (npm's
# `binaryen` >= 116; Debian's 108 emits wasm Chromium rejects) to shrink the module.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
PROFILE="${PROFILE:-release}"
OUT="${OUT:-web-demo/pkg}"

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${WB_VERSION}\$"; then
  echo "installing wasm-bindgen-cli ${WB_VERSION} (crates.io) ..."
  cargo install wasm-bindgen-cli --version "${WB_VERSION}"
fi

echo "building llmql-wasm for wasm32-unknown-unknown (${PROFILE}) ..."
cargo build -p llmql-wasm --target wasm32-unknown-unknown --profile "${PROFILE}"
mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" "$CARGO_TARGET_DIR/wasm32-unknown-unknown/${PROFILE}/llmql_wasm.wasm"
if [ -n "${WASM_OPT:-}" ]; then
  "$WASM_OPT" -O2 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    "$OUT/llmql_wasm_bg.wasm" -o "$OUT/llmql_wasm_bg.wasm.opt" && mv "$OUT/llmql_wasm_bg.wasm.opt" "$OUT/llmql_wasm_bg.wasm"
fi
ls -l "$OUT"
