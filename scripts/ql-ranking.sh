#!/usr/bin/env bash
# QL ranking, the paper's own comparison: rerank BM25's top K (default 100) of the test queries with
#   - Dirichlet-smoothed word QL           (llmql rerank-dirichlet)
#   - LLM-QL: the stage-1 model's QL score under Attention Stop (llmql rerank)
#   - the same model scored with plain causal attention (llmql rerank --attention causal)
#   - with ALL=1, the untrained base model both ways too (what stage 1 adds)
# and print one table (nDCG@10, RR@10) from `llmql eval`.
#
#   scripts/ql-ranking.sh [QUICKSTART_OUT]          # default quickstart-out (run the quickstart first)
#   K=30 scripts/ql-ranking.sh quickstart-out        # a shallower depth
#
# Uses QUICKSTART_OUT/collection (test queries and qrels) and QUICKSTART_OUT/ql (the stage-1 model);
# writes runs and ql-ranking.md into QUICKSTART_OUT/ql-ranking/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
QS="${1:-quickstart-out}"
K="${K:-100}"
LLMQL="${LLMQL:-}"
if [ -z "$LLMQL" ]; then
    cargo build --release -p llmql-cli
    LLMQL="$CARGO_TARGET_DIR/release/llmql"
fi
BASE_MODEL="${BASE_MODEL:-${LLMQL_HOME:-$HOME/.cache/llmql}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
col="$QS/collection"
out="$QS/ql-ranking"
mkdir -p "$out"
[ -f "$col/queries-test.jsonl" ] && [ -d "$QS/ql" ] || { echo "$QS: run llmql quickstart first (needs collection/ and ql/)" >&2; exit 1; }
lengths=(--p-max-len "${P_MAX_LEN:-192}" --q-max-len "${Q_MAX_LEN:-64}")
"$LLMQL" bm25 --corpus "$col/corpus.jsonl" --queries "$col/queries-test.jsonl" --depth "$K" --output "$out/bm25.trec"
"$LLMQL" rerank-dirichlet --corpus "$col/corpus.jsonl" --queries "$col/queries-test.jsonl" --run "$out/bm25.trec" --depth "$K" --output "$out/dirichlet.trec"
rank() { # name model [flags]
    local name=$1 model=$2; shift 2
    [ -f "$out/$name.trec" ] || "$LLMQL" rerank --model "$model" --queries "$col/queries-test.jsonl" --corpus "$col/corpus.jsonl" \
        --run "$out/bm25.trec" --depth "$K" "${lengths[@]}" --output "$out/$name.trec" "$@"
}
rank llmql-ql "$QS/ql"
rank llmql-ql-causal "$QS/ql" --attention causal
if [ "${ALL:-0}" = 1 ]; then
    rank base-ql "$BASE_MODEL"
    rank base-ql-causal "$BASE_MODEL" --attention causal
fi
{
    echo "| ranking of BM25's top $K (test queries) | nDCG@10 | RR@10 |"
    echo "|---|---:|---:|"
    for r in "bm25:BM25 (the candidates' own order)" "dirichlet:Dirichlet QL (mu 1000)" "llmql-ql:LLM-QL: stage-1 model, Attention Stop" \
             "llmql-ql-causal:stage-1 model, causal attention" "base-ql:untrained model, Attention Stop" "base-ql-causal:untrained model, causal attention"; do
        f=${r%%:*}; label=${r#*:}
        [ -f "$out/$f.trec" ] || continue
        vals=$("$LLMQL" eval --qrels "$col/qrels/test.tsv" --run "$out/$f.trec" --metrics nDCG@10,RR@10 --json 2>/dev/null \
            | python3 -c 'import json,sys; d=json.load(sys.stdin); print("| %.4f | %.4f |" % (d["nDCG@10"], d["RR@10"]))')
        echo "| $label $vals"
    done
} | tee "$out/ql-ranking.md"
