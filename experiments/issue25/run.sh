#!/usr/bin/env bash
# One variant of the recipe study (issue 25): `llmql quickstart` on a collection's training split,
# scored on its dev queries only (never the test queries).
#
#   experiments/issue25/run.sh COLLECTION NAME [--from OTHER_NAME] [quickstart flags...]
#
# COLLECTION: embedded (the quickstart's own), medical (native-cli/assets/medical) or cisi
# (../shared/collections/cisi). Output: $OUT/COLLECTION/NAME (default OUT=$HOME/llmql-issue25).
# `--from OTHER` starts from a copy of that variant's folder: the quickstart then skips every
# stage whose settings are unchanged (stage markers carry a key of their settings), so a variant
# that changes only stage 2 reruns only stage 2 and what follows it.
# Prints one line: COLLECTION NAME dev-nDCG@10 dev-RR@10 dev-R@100 seconds, and appends it to
# $OUT/dev.tsv. Baselines and the QL rerank are off (they do not depend on the recipe).
set -euo pipefail
cd "$(dirname "$0")/../.."
L=${LLMQL:-${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}/release/llmql}
OUT=${OUT:-$HOME/llmql-issue25}
coll=$1; name=$2; shift 2
case "$coll" in
  embedded) src=() ;;
  medical) src=(--collection native-cli/assets/medical) ;;
  cisi) src=(--collection ../shared/collections/cisi) ;;
  *) echo "unknown collection $coll" >&2; exit 2 ;;
esac
dest="$OUT/$coll/$name"
if [ "${1:-}" = --from ]; then
  from="$OUT/$coll/$2"; shift 2
  if [ ! -d "$dest" ]; then cp -r "$from" "$dest"; rm -f "$dest/results.json" "$dest/results.md"; fi
fi
mkdir -p "$OUT/$coll"
start=$(date +%s)
"$L" quickstart "${src[@]}" --output "$dest" --no-baselines --no-rerank "$@" > "$dest.log" 2>&1
secs=$(( $(date +%s) - start ))
# The quickstart prints its test-query table: keep it out of the study's logs (choices are made on dev only).
sed -i '/^| /d' "$dest.log"; rm -f "$dest/results.md"
line=$(python3 - "$dest/results.json" "$coll" "$name" "$secs" "$*" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
dev = next(d for d in r["dev_results"] if d["run"] == "llmql")
print("\t".join([sys.argv[2], sys.argv[3], f'{dev["nDCG@10"]:.4f}', f'{dev["RR@10"]:.4f}', f'{dev["R@100"]:.4f}', sys.argv[4], sys.argv[5]]))
PY
)
echo "$line" | tee -a "$OUT/dev.tsv"
