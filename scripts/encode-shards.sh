#!/usr/bin/env bash
# Encodes a corpus as N independent shards, then (optionally) indexes them: the whole path of a
# corpus too large for one machine, run here on one machine with N processes.
#
#   scripts/encode-shards.sh N OUTDIR [--index IDX [--kind ivf|hnsw|flat]] -- ENCODE_ARGS...
#
# Each process runs `llmql encode --kind passage --shard I/N --output OUTDIR ENCODE_ARGS` (I = 0..N-1)
# and writes embeddings.I.npy, ids.I.txt and meta.I.json into OUTDIR; `llmql index` then reads every
# shard. On a cluster the same command runs once per task instead, with I from the scheduler:
#   Slurm array (sbatch --array=0-$((N-1))):  llmql encode --shard "$SLURM_ARRAY_TASK_ID/N" ...
#   Kubernetes indexed Job (completionMode: Indexed):  llmql encode --shard "$JOB_COMPLETION_INDEX/N" ...
# with OUTDIR on shared storage, then one `llmql index --corpus OUTDIR ...` when all tasks are done.
#
# LLMQL names the binary (default: llmql on PATH). Threads per process: RAYON_NUM_THREADS (default:
# cores / N, at least 1). Exits non-zero if any shard fails (naming it); no index is written then.
set -euo pipefail
usage() { echo "usage: $0 N OUTDIR [--index IDX [--kind KIND]] -- ENCODE_ARGS..." >&2; exit 2; }
[ $# -ge 3 ] || usage
n=$1; out=$2; shift 2
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a positive integer, got '$n'" >&2; exit 2; }
index=""; kind="ivf"
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case $1 in
    --index) index=${2:?--index needs a folder}; shift 2 ;;
    --kind) kind=${2:?--kind needs a value}; shift 2 ;;
    *) usage ;;
  esac
done
[ "${1:-}" = "--" ] || usage
shift
llmql=${LLMQL:-llmql}
cores=$(nproc 2>/dev/null || echo 1)
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-$(( cores / n > 0 ? cores / n : 1 ))}
pids=()
for ((i = 0; i < n; i++)); do
  "$llmql" encode --kind passage --shard "$i/$n" --output "$out" "$@" &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "$0: shard $i/$n failed" >&2
    failed=1
  fi
done
[ $failed = 0 ] || exit 1
echo "$0: encoded $n shards into $out" >&2
if [ -n "$index" ]; then
  "$llmql" index --corpus "$out" --output "$index" --kind "$kind"
fi
