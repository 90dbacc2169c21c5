#!/usr/bin/env bash
# Stage-1 study (issue 14): train stage 1 with one setting on the tuning collection's training
# queries, then QL-rank BM25's top K of its evaluation queries (held-out *training* queries of the
# quickstart collection; the real test queries are not in that folder) and compare with Dirichlet QL
# on the same candidates.
#   experiments/issue14/stage1.sh NAME [ql-train flags...]
# Needs: BASE (a quickstart output on experiments/issue14/tuning, for its collection copy and
# training data), LLMQL (binary), MODEL, K (default 30).
set -euo pipefail
name=$1; shift
: "${BASE:?}" "${LLMQL:?}" "${MODEL:?}"
K=${K:-30}
out=${OUT:-/tmp/exp/s1}/$name
mkdir -p "$out"
col=$BASE/collection
start=$(date +%s)
"$LLMQL" ql-train --model "$MODEL" --train-data "$BASE/data/train-negatives.jsonl" --output-dir "$out/ql" \
  --save-steps 0 --logging-steps 10 --seed 42 --p-max-len 192 --q-max-len 64 "$@" > "$out/train.log" 2>&1
mid=$(date +%s)
if [ -f "$out/ql/adapter_config.json" ]; then :; fi
[ -f "$col/../runs/bm25-eval-top$K.trec" ] || "$LLMQL" bm25 --corpus "$col/corpus.jsonl" --queries "$col/queries-test.jsonl" --depth "$K" --output "$col/../runs/bm25-eval-top$K.trec" > /dev/null 2>&1
"$LLMQL" rerank --model "$out/ql" --queries "$col/queries-test.jsonl" --corpus "$col/corpus.jsonl" \
  --run "$col/../runs/bm25-eval-top$K.trec" --depth "$K" --p-max-len 192 --q-max-len 64 --output "$out/ql-rank.trec" > "$out/rank.log" 2>&1
end=$(date +%s)
[ -f "$col/../runs/dirichlet-eval-top$K.trec" ] || "$LLMQL" rerank-dirichlet --corpus "$col/corpus.jsonl" --queries "$col/queries-test.jsonl" --run "$col/../runs/bm25-eval-top$K.trec" --output "$col/../runs/dirichlet-eval-top$K.trec" > /dev/null 2>&1
ql=$("$LLMQL" eval --qrels "$col/qrels/test.tsv" --run "$out/ql-rank.trec" --metrics nDCG@10,RR@10 2>/dev/null | tail -n +1 | tr '\n' ' ')
echo "$name | train $((mid-start)) s, rank $((end-mid)) s | $ql | loss: $(grep -o 'loss [0-9.]*' "$out/train.log" | tail -3 | tr '\n' ' ')" | tee -a "${OUT:-/tmp/exp/s1}/summary.txt"
