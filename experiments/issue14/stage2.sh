#!/usr/bin/env bash
# Stage-2 study (issue 14): the quickstart on the tuning collection (its "test" queries are the
# quickstart collection's dev queries), starting from a stage-1 model trained by stage1.sh, with
# one stage-2 setting; prints dense nDCG@10 / RR@10 / R@100 on those dev queries.
#   experiments/issue14/stage2.sh NAME STAGE1_DIR [quickstart flags...]
# Needs LLMQL (binary); OUT (default /tmp/exp/s2).
set -euo pipefail
name=$1; s1=$2; shift 2
: "${LLMQL:?}"
out=${OUT:-/tmp/exp/s2}/$name
tuning="$(cd "$(dirname "$0")" && pwd)/tuning"
mkdir -p "$out/stages"
if [ "$s1" != none ] && [ ! -e "$out/ql" ]; then
  cp -r "$s1/ql" "$out/ql"
  echo '{"stage": "ql", "seconds": 0}' > "$out/stages/ql.json"
fi
extra=()
[ "$s1" = none ] && extra=(--no-ql)
start=$(date +%s)
"$LLMQL" quickstart --collection "$tuning" --no-baselines --no-rerank --dev-queries 0 --output "$out" "${extra[@]}" "$@" > "$out.log" 2>&1
end=$(date +%s)
r=$("$LLMQL" eval --qrels "$out/collection/qrels/test.tsv" --run "$out/runs/llmql.trec" --metrics nDCG@10,RR@10,R@100 2>/dev/null | tail -n +2 | awk '{print $1"="$2}' | tr '\n' ' ')
loss=$(sed 's/\x1b\[[0-9;]*m//g' "$out.log" | grep -o 'loss [0-9.]* .*passage_cosine [0-9.]*' | tail -2 | awk '{print $2, $NF}' | tr '\n' ' ')
echo "$name (stage 1: $(basename "$s1")) | $((end-start)) s | $r | last losses/cosines: $loss | $*" | tee -a "${OUT:-/tmp/exp/s2}/summary.txt"
