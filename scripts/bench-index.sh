#!/usr/bin/env bash
# The README's 1M ANN table: llmql's engines (ivf, and usearch when built with --features usearch)
# and faiss-cpu (bench/faiss_index.py) on the same vectors, for each corpus and width.
#   cargo build --release -p llmql-cli --features usearch && pip install faiss-cpu==1.15.1
#   bash scripts/bench-index.sh [OUT=bench-index-results]   (ROWS, DIMS, ENGINES override)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-index-results}
mkdir -p "$out"
B=${LLMQL:-${CARGO_TARGET_DIR:-target}/release/llmql}
rows=${ROWS:-1000000}
engines=${ENGINES:-ivf,usearch}
for dim in ${DIMS:-576 384}; do
  for corpus in hard emb; do
    extra=()
    [ $corpus = emb ] && extra=(--topics 100 --clusters 10000 --centre-noise 1.0 --noise 1.0)
    v=$(mktemp -d)
    "$B" bench index --rows "$rows" --dim "$dim" --queries 1000 --engines "$engines" \
      --ef-search 16,32,64,128,256 --nprobe 0,16,32,64,128 --write-vectors "$v" "${extra[@]}" \
      > "$out/$corpus$dim.llmql.json"
    python3 bench/faiss_index.py --vectors "$v" --threads 2 > "$out/$corpus$dim.faiss.txt"
    rm -rf "$v"
  done
done
echo "results in $out" >&2
