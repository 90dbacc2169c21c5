#!/usr/bin/env bash
# Transfer (issue 25): each collection's trained retriever (its quickstart's stage-1 model + stage-2
# adapter) scored zero-shot on the other collections' test queries, with the same commands the
# quickstart runs (encode, search, eval) and its default lengths.
#
#   experiments/issue25/transfer.sh NAME=QUICKSTART_OUT [NAME=QUICKSTART_OUT ...]
#   e.g. experiments/issue25/transfer.sh embedded=qs-embedded medical=qs-medical cisi=qs-cisi
#
# The diagonal (a retriever on its own collection) is the quickstart's own dense run. Writes
# $OUT/transfer.md (default OUT=$HOME/llmql-issue25/transfer).
set -euo pipefail
cd "$(dirname "$0")/../.."
L=${LLMQL:-${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}/release/llmql}
OUT=${OUT:-$HOME/llmql-issue25/transfer}
QMAX=${QUERY_MAX_LEN:-64}; PMAX=${PASSAGE_MAX_LEN:-192}
mkdir -p "$OUT"
names=(); dirs=()
for a in "$@"; do names+=("${a%%=*}"); dirs+=("${a#*=}"); done
ndcg() { "$L" eval --qrels "$1" --run "$2" --metrics nDCG@10 --json 2>/dev/null | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["nDCG@10"])'; }
{
  printf '| trained on \\ scored on |'; for n in "${names[@]}"; do printf ' %s |' "$n"; done; echo
  printf '|---|'; for _ in "${names[@]}"; do printf -- '---:|'; done; echo
  for i in "${!names[@]}"; do
    printf '| %s |' "${names[$i]}"
    for j in "${!names[@]}"; do
      col="${dirs[$j]}/collection"
      if [ "$i" = "$j" ]; then
        run="${dirs[$j]}/runs/llmql.trec"
      else
        e="$OUT/${names[$i]}-on-${names[$j]}"
        run="$e/run.trec"
        if [ ! -f "$run" ]; then
          m=(--model "${dirs[$i]}/ql" --adapter "${dirs[$i]}/dense")
          "$L" encode "${m[@]}" --input "$col/corpus.jsonl" --kind passage --max-len "$PMAX" --output "$e/passage" >&2
          "$L" encode "${m[@]}" --input "$col/queries-test.jsonl" --kind query --max-len "$QMAX" --output "$e/query" >&2
          "$L" search --queries "$e/query" --corpus "$e/passage" --depth 100 --output "$run" >&2
        fi
      fi
      printf ' %s |' "$(ndcg "$col/qrels/test.tsv" "$run")"
    done
    echo
  done
} | tee "$OUT/transfer.md"
