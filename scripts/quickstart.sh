#!/usr/bin/env bash
# The main job on an embedded default: builds llmql (release, CPU backend) and encodes the bundled
# example corpus and queries with the bundled tiny checkpoint and searches the corpus for each query.
# Use your own model with: llmql encode --model /path/to/hf-folder --input corpus.jsonl --kind passage --output out/
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
cargo build --release -p llmql-cli
LLMQL="$CARGO_TARGET_DIR/release/llmql"
MODEL="${LLMQL_MODEL:-tests/fixtures/tiny-llama}"
OUT="${LLMQL_OUT:-quickstart-out}"
"$LLMQL" info --model "$MODEL"
"$LLMQL" encode --model "$MODEL" --input examples/corpus.jsonl --kind passage --output "$OUT/corpus"
"$LLMQL" encode --model "$MODEL" --input examples/queries.jsonl --kind query --output "$OUT/queries"
"$LLMQL" search --queries "$OUT/queries" --corpus "$OUT/corpus" --depth 3 --output "$OUT/run.trec"
echo "wrote $OUT/corpus and $OUT/queries (embeddings.npy, ids.txt, meta.json) and $OUT/run.trec:"
cat "$OUT/run.trec"
echo "(the bundled checkpoint is a tiny random test model: the ranking is not meaningful; use --model with a real one)"
