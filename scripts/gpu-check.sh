#!/usr/bin/env bash
# The GPU check (issue 8), sized for one H100 in under 8 minutes once the build is cached:
#   1. builds llmql with --features cuda (release);
#   2. runs the CUDA conformance tests (CUDA vs flex and vs transformers' golden values on the tiny
#      checkpoints: f32 within 1e-3, bf16 by cosine);
#   3. checks data parallelism on the GPU: 2 peers on cuda:0 (Burn's collective) with per-layer
#      gradient checkpointing train a LoRA adapter like 1 device with the global batch;
#   4. makes a random-weight model with Qwen2-0.5B's dimensions (bench/make_bench_model.py
#      --preset qwen2-0.5b) and Tevatron training data from bench/make_bench_texts.py;
#   5. measures training tokens/s of stage 1 (QL, full fine-tuning) and stage 2 (contrastive, LoRA r 32)
#      in bf16 for llmql (`llmql bench ql-train|train --device cuda --dtype bf16`) and for the same
#      work in PyTorch + transformers + peft (bench/pytorch_*.py --device cuda --dtype bf16 --attn sdpa);
#   6. runs stage 2 again with per-layer gradient checkpointing on both sides, sampling peak GPU memory
#      (nvidia-smi) for all four stage-2 runs;
#   7. prints both, the ratio and the MFU against 989 TFLOPS (H100 SXM dense bf16), with
#      training FLOPs per token = 6 N (full fine-tuning) and 4 N (LoRA: no weight gradients of the base),
#      N = parameters without the embedding table (lookups cost no FLOPs; tied lm_head counted once).
# Needs: a CUDA driver, Rust, python3 with torch, transformers, peft, tokenizers (the device machine has them).
# Env: WORK (default /tmp/llmql-gpu), STEPS (default 10), SKIP_BUILD=1, SKIP_TESTS=1, SKIP_DP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
W="${WORK:-/tmp/llmql-gpu}"
STEPS="${STEPS:-10}"
mkdir -p "$W"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  stamp "build (release, cuda)"
  cargo build --release -p llmql-cli --features cuda
fi
L="$CARGO_TARGET_DIR/release/llmql"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  stamp "CUDA conformance tests"
  cargo test --release -p llmql-tests --no-default-features --features flex,cuda --test cuda_conformance -- --nocapture
fi

stamp "model and data"
[ -f "$W/model/model.safetensors" ] || python3 bench/make_bench_model.py "$W/model" --preset qwen2-0.5b
[ -f "$W/texts.jsonl" ] || python3 bench/make_bench_texts.py "$W/texts.jsonl" --n 512
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
rows = [json.loads(l) for l in open(f"{w}/texts.jsonl")]
with open(f"{w}/train.jsonl", "w") as f:
    for i, r in enumerate(rows):
        p = lambda x: {"docid": x["_id"], "title": x.get("title", ""), "text": x["text"]}
        negs = [p(rows[(i + k) % len(rows)]) for k in range(1, 16)]
        q = " ".join(r["text"].split()[:8])
        f.write(json.dumps({"query_id": str(i), "query": q, "positive_passages": [p(r)], "negative_passages": negs}) + "\n")
PY

if [ "${SKIP_DP:-0}" != 1 ]; then
  # Two peers share cuda:0 (one GPU here); with several GPUs use cuda:0,cuda:1.
  stamp "data parallel on CUDA: 2 peers (batch 2 each) == 1 device (batch 4), 3 LoRA steps"
  head -n 32 "$W/train.jsonl" > "$W/dp.jsonl"
  DP="train --model tests/fixtures/tiny-llama --train-data $W/dp.jsonl --lora --lora-r 8 --lora-alpha 16 --lora-dropout 0 --train-group-size 3 --query-max-len 64 --passage-max-len 128 --learning-rate 3e-3 --warmup-steps 0 --seed 5 --max-steps 3 --save-steps 0"
  "$L" $DP --output-dir "$W/dp1" --per-device-train-batch-size 4 --device cuda:0
  "$L" $DP --output-dir "$W/dp2" --per-device-train-batch-size 2 --devices cuda:0,cuda:0 --gradient-checkpointing
  python3 - "$W" <<'PY'
import sys
from safetensors.numpy import load_file
w = sys.argv[1]
a, b = load_file(f"{w}/dp1/adapter_model.safetensors"), load_file(f"{w}/dp2/adapter_model.safetensors")
d = max(float(abs(a[k] - b[k]).max()) for k in a)
print(f"data parallel on CUDA: max |2 peers - 1 device| over the adapter = {d:.2e}", "OK" if d < 1e-3 else "MISMATCH")
PY
fi

S1="--steps $STEPS --batch-size 8 --p-max-len 256 --q-max-len 32"
S2="--steps $STEPS --batch-size 8 --train-group-size 8 --query-max-len 32 --passage-max-len 192"
stamp "stage 1: llmql"
"$L" bench ql-train --model "$W/model" --train-data "$W/train.jsonl" $S1 --device cuda --dtype bf16 | tail -1 > "$W/s1-llmql.json"
stamp "stage 1: PyTorch"
python3 bench/pytorch_ql_train.py --model "$W/model" --train-data "$W/train.jsonl" $S1 --device cuda --dtype bf16 --attn sdpa | tail -1 > "$W/s1-torch.json"
# Peak GPU memory of a command (nvidia-smi samples every 100 ms), written to $1.
sampled() {
  local out="$1"; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out.samples" &
  local sampler=$!
  "$@"
  kill "$sampler" 2>/dev/null || true
  sort -n "$out.samples" | tail -1 > "$out"
}
for ck in "" "--gradient-checkpointing"; do
  tag="${ck:+-ckpt}"
  stamp "stage 2${ck:+ with $ck}: llmql"
  sampled "$W/s2-llmql$tag.mem" sh -c "\"$L\" bench train --model \"$W/model\" --train-data \"$W/train.jsonl\" $S2 --lora-dropout 0 --device cuda --dtype bf16 $ck | tail -1 > \"$W/s2-llmql$tag.json\""
  stamp "stage 2${ck:+ with $ck}: PyTorch"
  sampled "$W/s2-torch$tag.mem" sh -c "python3 bench/pytorch_train_contrastive.py --model \"$W/model\" --train-data \"$W/train.jsonl\" $S2 --lora-dropout 0 --device cuda --dtype bf16 --attn sdpa $ck | tail -1 > \"$W/s2-torch$tag.json\""
done

python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
c = json.load(open(f"{w}/model/config.json"))
h, i, L, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
hd = h // c["num_attention_heads"]
kv = c["num_key_value_heads"] * hd
per_layer = h * h * 2 + h * kv * 2 + 3 * h * i  # q, o, k, v, gate/up/down
n = L * per_layer + h * v                        # + lm_head (tied: counted once, as a matmul)
peak = 989e12
print(f"model: {L} layers, hidden {h}, vocab {v}: {n/1e6:.0f}M matmul parameters")
for stage, mult in (("s1", 6), ("s2", 4)):
    ours, ref = json.load(open(f"{w}/{stage}-llmql.json")), json.load(open(f"{w}/{stage}-torch.json"))
    a, b = ours.get("tokens_per_s"), ref.get("tokens_per_s")
    name = "stage 1 (QL, full FT)" if stage == "s1" else "stage 2 (contrastive, LoRA)"
    print(f"{name}: llmql {a:.0f} tok/s, MFU {a*mult*n/peak:.1%} | PyTorch {b:.0f} tok/s, MFU {b*mult*n/peak:.1%} | ratio {a/b:.2f}x")
for tag, what in (("", "without"), ("-ckpt", "with")):
    try:
        ours, ref = json.load(open(f"{w}/s2-llmql{tag}.json")), json.load(open(f"{w}/s2-torch{tag}.json"))
        mo, mr = open(f"{w}/s2-llmql{tag}.mem").read().strip(), open(f"{w}/s2-torch{tag}.mem").read().strip()
    except (OSError, ValueError) as e:
        print(f"stage 2 {what} gradient checkpointing: missing ({e})")
        continue
    print(f"stage 2 {what} gradient checkpointing: llmql {ours.get('tokens_per_s', 0):.0f} tok/s, peak GPU {mo} MiB | "
          f"PyTorch {ref.get('tokens_per_s', 0):.0f} tok/s, peak GPU {mr} MiB (torch max allocated {ref.get('peak_mib')} MiB)")
PY
stamp "done"
