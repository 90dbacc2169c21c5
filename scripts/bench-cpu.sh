#!/usr/bin/env bash
# llmql vs PyTorch on this CPU, side by side, same threads, same model, same batches, f32: encode, a
# stage-1 step, a stage-2 LoRA step (without and with per-layer gradient checkpointing, both stages),
# QL rerank, and the GEMM peak. Prints ONE markdown table (also written to $BENCH_DIR/results.md).
#
#   bash scripts/bench-cpu.sh            # THREADS=2 BENCH_DIR=/tmp/llmql-bench LLMQL=path/to/llmql to override
#
# Needs python3 with torch, transformers, peft, safetensors, tokenizers, numpy (CPU wheels are enough).
# The model is a random-init SmolLM2-135M-shaped Llama (bench/make_bench_model.py), the texts and the
# Tevatron training data are synthetic (bench/make_bench_texts.py, bench/make_bench_train.py); all are
# made once under $BENCH_DIR. Training runs 6 timed steps after an untimed warm-up step (a steady state:
# the first steps of a run still grow its memory). The training and rerank benchmarks of llmql dump the exact token ids they
# ran, and the PyTorch scripts run those (see bench/README.md). Run on an otherwise idle machine: every
# number is a wall-clock rate.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
WORK=${BENCH_DIR:-/tmp/llmql-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}
if [ -z "${LLMQL:-}" ]; then
    cargo build --release -p llmql-cli >&2
    LLMQL=$CARGO_TARGET_DIR/release/llmql
fi
python3 -c "import torch, transformers, peft, safetensors, tokenizers, numpy" 2>/dev/null || {
    echo "needs: pip install torch transformers peft safetensors tokenizers numpy" >&2
    exit 1
}
mkdir -p "$WORK"
M=$WORK/model
PRESET=${PRESET:-smollm2-135m}  # `tiny` to check the script quickly
[ -f "$M/model.safetensors" ] || python3 bench/make_bench_model.py "$M" --preset "$PRESET" >&2
[ -f "$WORK/texts.jsonl" ] || python3 bench/make_bench_texts.py "$WORK/texts.jsonl" --n 512 >&2
[ -f "$WORK/train.jsonl" ] || python3 bench/make_bench_train.py "$WORK/texts.jsonl" "$WORK/train.jsonl" >&2
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
LOG=$WORK/log.txt
: > "$LOG"
# One JSON line from each side into $WORK/NAME.{llmql,pytorch}.json.
llmql() { local name=$1; shift; echo "== llmql $name: $*" >&2; "$LLMQL" --threads "$THREADS" bench "$@" 2>>"$LOG" | tail -1 > "$WORK/$name.llmql.json"; }
torch() { local name=$1; shift; echo "== pytorch $name: $*" >&2; python3 "$@" --threads "$THREADS" 2>>"$LOG" | tail -1 > "$WORK/$name.pytorch.json"; }

llmql gemm gemm --m 2048 --reps 10
torch gemm bench/torch_gemm.py --m 2048 --reps 10

llmql encode encode --model "$M" --input "$WORK/texts.jsonl" --batch-size 32 --max-len 128 --limit 128
torch encode bench/pytorch_encode.py --model "$M" --input "$WORK/texts.jsonl" --batch-size 32 --max-len 128 --limit 128

for gc in "" --gradient-checkpointing; do
    tag=${gc:+-gc}
    llmql "ql-train$tag" ql-train --model "$M" --train-data "$WORK/train.jsonl" --steps 6 --batch-size 4 \
        --p-max-len 128 --q-max-len 32 $gc --dump-batches "$WORK/ql-batches.jsonl"
    torch "ql-train$tag" bench/pytorch_ql_train.py --model "$M" --train-data "$WORK/train.jsonl" \
        --batches "$WORK/ql-batches.jsonl" $gc
    llmql "train$tag" train --model "$M" --train-data "$WORK/train.jsonl" --steps 6 --batch-size 4 \
        --train-group-size 4 --query-max-len 32 --passage-max-len 128 $gc --dump-batches "$WORK/train-batches.jsonl"
    torch "train$tag" bench/pytorch_train_contrastive.py --model "$M" --train-data "$WORK/train.jsonl" \
        --batches "$WORK/train-batches.jsonl" $gc
done

llmql rerank rerank --model "$M" --train-data "$WORK/train.jsonl" --queries 64 --depth 16 --batch-size 16 \
    --p-max-len 128 --q-max-len 32 --dump-pairs "$WORK/rerank-pairs.jsonl"
torch rerank bench/pytorch_rerank.py --model "$M" --pairs "$WORK/rerank-pairs.jsonl" --batch-size 16

python3 - "$WORK" "$THREADS" <<'EOF' | tee "$WORK/results.md"
import json, sys
work, threads = sys.argv[1], sys.argv[2]
def load(name, side):
    with open(f"{work}/{name}.{side}.json") as f:
        return json.load(f)
c = json.load(open(f"{work}/model/config.json"))
h, inter, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
hd = c.get("head_dim") or h // c["num_attention_heads"]
q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
lin = 2 * L * (h * q + 2 * h * kv + q * h + 3 * h * inter)  # FLOPs per token, the decoder's linears
head = 2 * h * c["vocab_size"]  # FLOPs per scored position (lm_head)
peak = max(load("gemm", "llmql")["gflops"], load("gemm", "pytorch")["gflops"])
def flops(name, r):
    if name == "encode":
        return lin * r["tokens"]
    if name.startswith("ql-train"):  # full fine-tuning: forward + input grads + weight grads
        return 3 * (lin * r["tokens"] + head * (r["tokens"] - r["steps"] * r["batch_size"]))
    if name.startswith("train"):  # frozen base: forward + input grads (LoRA's own FLOPs left out)
        return 2 * lin * r["tokens"]
    if name == "rerank":
        return lin * r["tokens"] + head * (r["query_tokens"] + r["pairs"])
rows = [
    ("encode", "encode, 128 passages, batch 32, max_len 128", "tokens_per_s", "tokens/s"),
    ("ql-train", "stage-1 step (full FT), batch 4, p/q 128/32", "tokens_per_s", "tokens/s"),
    ("ql-train-gc", "stage-1 step, + gradient checkpointing", "tokens_per_s", "tokens/s"),
    ("train", "stage-2 LoRA r 32 step, 4 queries x group 4, q/p 32/128", "tokens_per_s", "tokens/s"),
    ("train-gc", "stage-2 LoRA step, + gradient checkpointing", "tokens_per_s", "tokens/s"),
    ("rerank", "QL rerank, 64 queries x 16 docs, p/q 128/32", "pairs_per_s", "pairs/s"),
]
print(f"CPU, {threads} threads, f32, random-init Llama with {L} layers, hidden {h}, {c['num_attention_heads']}/{c['num_key_value_heads']} heads; GEMM peak {peak:.0f} GFLOP/s "
      f"(2048^3 f32: llmql/flex {load('gemm', 'llmql')['gflops']:.0f}, torch {load('gemm', 'pytorch')['gflops']:.0f})\n")
print("| workload | llmql | PyTorch | ratio | fraction of GEMM peak (llmql / PyTorch) | peak memory MiB (llmql / PyTorch) |")
print("|---|---:|---:|---:|---:|---:|")
for name, label, key, unit in rows:
    a, b = load(name, "llmql"), load(name, "pytorch")
    fa, fb = flops(name, a) / a["seconds"] / 1e9 / peak, flops(name, b) / b["seconds"] / 1e9 / peak
    ma = a.get("peak_rss_mib")
    mb = b.get("peak_mib")
    mem = f"{ma:,.0f} / {mb:,.0f}" if ma and mb else "-"
    print(f"| {label} | {a[key]:.1f} {unit} | {b[key]:.1f} {unit} | {a[key] / b[key]:.2f}x | {fa:.2f} / {fb:.2f} | {mem} |")
print("\nFLOPs counted: the linear layers' matmuls (2 x params x tokens) and lm_head on scored positions; training "
      "x3 (full fine-tuning) or x2 (frozen LoRA base); recomputation and attention not counted. Same token ids on "
      f"both sides (llmql dumps them); losses: stage 1 {load('ql-train', 'llmql')['loss_first']:.6f} vs "
      f"{load('ql-train', 'pytorch')['loss_first']:.6f}, rerank score sums {load('rerank', 'llmql')['scores_sum']:.3f} vs "
      f"{load('rerank', 'pytorch')['scores_sum']:.3f}.")
EOF
