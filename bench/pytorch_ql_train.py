#!/usr/bin/env python3
"""PyTorch reference for `llmql ql-train` (LLM-QL stage 1) throughput.

    python3 bench/pytorch_ql_train.py --model DIR --train-data FILE.jsonl \
        [--steps 10] [--batch-size 8] [--p-max-len 200] [--q-max-len 200] [--threads 2] \
        [--lr 1e-5] [--mask-probability 0.0] [--seed 42] [--max-grad-norm 1.0] [--loss-on all|query]
        [--batches BATCHES.jsonl]

With --batches (what `llmql bench ql-train --dump-batches` writes: one line per micro-batch, {"step", "examples":
[{"ids", "sep"}]}), the steps train on exactly llmql's batches (its shuffle and Input Corruption included) with
llmql's schedule (linear decay from --lr to 0 over the file's steps, no warm-up); the first step is the warm-up
and --steps, --train-data's texts, --batch-size and --mask-probability are then not used. Without it:

Does the work one llmql stage-1 training step does, full fine-tuning in float32 on CPU:
  1. Tevatron jsonl ({"query", "positive_passages": [{"title", "text"}, ...]}); one d2q example per line
     from the first positive passage, file order (no shuffling).
  2. Optional Input Corruption (--mask-probability, python `random` seeded by --seed): each whitespace word
     of the passage replaced by "_" independently; then the d2q layout of tests/fixtures/ql/README.md:
     [BOS] D2Q_PREFIX + passage + D2Q_SUFFIX (passage cut word-wise so the prompt has <= p_max_len tokens),
     separator EOS, query tokens[:q_max_len-1] + EOS.
  3. Batch k (k = 0 is the warm-up, 1..N are timed) = examples k*B .. k*B+B-1 (modulo the number of
     examples), right-padded with EOS, Attention Stop mask as a 4D additive float mask [B,1,S,S],
     position ids 0..S-1, AutoModelForCausalLM (eager attention) forward, next-token cross-entropy
     (mean over labelled positions; `all` = every real position t >= 1, `query` = query + EOS only),
     backward, optional gradient-norm clipping, torch.optim.AdamW step (weight_decay 0, constant lr), zero_grad.

Timing: examples are built and tokenised first (not timed); one warm-up step (not timed); then the wall clock
of N steps (mask building, padding, forward, loss, backward, clipping, optimiser). "tokens" counts real
(non-pad) tokens of the timed batches. Prints one JSON line on stdout; diagnostics go to stderr.
"""
import argparse
import json
import random
import sys
import time
from pathlib import Path

D2Q_PREFIX = "Instruct: Given a retrieved passage, summarize the passage.\nPassage: "
D2Q_SUFFIX = "\nSummarization: "


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve_eos_id(folder, tok):
    """tokenizer_config.json eos_token (string or {"content": ...}) -> id; else config.json eos_token_id[0]."""
    tc_path = folder / "tokenizer_config.json"
    if tc_path.exists():
        eos = read_json(tc_path).get("eos_token")
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str):
            eid = tok.convert_tokens_to_ids(eos)
            if eid is not None and eid != tok.unk_token_id:
                return eid
    eid = read_json(folder / "config.json").get("eos_token_id")
    if isinstance(eid, list):
        eid = eid[0]
    assert isinstance(eid, int), "no EOS id in tokenizer_config.json or config.json"
    return eid


def passage_text(title, text):
    return f"{title} {text}".strip() if title else (text or "").strip()


def corrupt(passage, p, rng):
    if p <= 0:
        return passage
    return " ".join("_" if rng.random() < p else w for w in passage.split())


def d2q_prompt_ids(tok, passage, p_max):
    ids = tok(D2Q_PREFIX + passage + D2Q_SUFFIX, add_special_tokens=True)["input_ids"]
    if len(ids) <= p_max:
        return ids
    words = passage.split()

    def encode(n):
        return tok(D2Q_PREFIX + " ".join(words[:n]) + D2Q_SUFFIX, add_special_tokens=True)["input_ids"]

    lo, hi = 0, len(words)  # largest n whose prompt fits (binary search; token count ~monotone in n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(encode(mid)) <= p_max:
            lo = mid
        else:
            hi = mid - 1
    return encode(lo)


def build_examples(rows, tok, eos_id, p_max, q_max, mask_p, seed):
    rng = random.Random(seed)
    out = []
    for r in rows:
        pos = (r.get("positive_passages") or [])
        if not pos or not r.get("query"):
            continue
        passage = corrupt(passage_text(pos[0].get("title"), pos[0].get("text", "")), mask_p, rng)
        prompt = d2q_prompt_ids(tok, passage, p_max)
        target = tok(r["query"], add_special_tokens=False)["input_ids"][: q_max - 1] + [eos_id]
        out.append((prompt + [eos_id] + target, len(prompt)))
    return out


def make_batch(torch, batch, pad_id, loss_on):
    """Right-padded ids, position ids, AS additive mask [B,1,S,S], labels (-100 = unlabelled)."""
    bsz = len(batch)
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((bsz, width), pad_id, dtype=torch.long)
    labels = torch.full((bsz, width), -100, dtype=torch.long)
    lens = torch.tensor([len(ids) for ids, _ in batch])
    seps = torch.tensor([sep for _, sep in batch])
    for r, (ids, sep) in enumerate(batch):
        t = torch.tensor(ids, dtype=torch.long)
        input_ids[r, : len(ids)] = t
        start = 1 if loss_on == "all" else sep + 1
        labels[r, start: len(ids)] = t[start:]
    i = torch.arange(width).view(1, width, 1)
    j = torch.arange(width).view(1, 1, width)
    sep = seps.view(bsz, 1, 1)
    n = lens.view(bsz, 1, 1)
    allowed = (j <= i) & ~((i > sep) & (i < n) & (j < sep))
    mask = torch.zeros((bsz, width, width), dtype=torch.float32)
    mask.masked_fill_(~allowed, torch.finfo(torch.float32).min)
    position_ids = torch.arange(width).unsqueeze(0).expand(bsz, -1)
    return input_ids, position_ids, mask.unsqueeze(1), labels, int(lens.sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"], help="base weights / compute dtype")
    ap.add_argument("--train-data", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--p-max-len", type=int, default=200)
    ap.add_argument("--q-max-len", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--mask-probability", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--attn", default="eager", help="transformers attn_implementation (eager, sdpa)")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="transformers' per-layer checkpointing")
    ap.add_argument("--max-grad-norm", type=float, default=1.0, help="<= 0 disables clipping")
    ap.add_argument("--loss-on", choices=["all", "query"], default="all")
    ap.add_argument("--batches", help="train on the batches `llmql bench ql-train --dump-batches` wrote")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(args.threads)
    DEV = torch.device(args.device)
    DT = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    def sync():
        if DEV.type == "cuda":
            torch.cuda.synchronize(DEV)
    torch.manual_seed(args.seed)
    folder = Path(args.model)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    eos_id = resolve_eos_id(folder, tok)

    t0 = time.perf_counter()
    steps_from_file = None
    if args.batches:
        steps_from_file = {}
        with open(args.batches, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    b = json.loads(line)
                    steps_from_file.setdefault(b["step"], []).extend((e["ids"], e["sep"]) for e in b["examples"])
        steps_from_file = [steps_from_file[k] for k in sorted(steps_from_file)]
        args.steps = len(steps_from_file) - 1
        args.batch_size = len(steps_from_file[0])
        examples = [e for st in steps_from_file for e in st]
    else:
        with open(args.train_data, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        examples = build_examples(rows, tok, eos_id, args.p_max_len, args.q_max_len, args.mask_probability, args.seed)
    if not examples:
        sys.exit("no usable training examples")
    print(f"built {len(examples)} examples in {time.perf_counter() - t0:.2f}s", file=sys.stderr)

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=DT, attn_implementation=args.attn).to(DEV)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    model.config.use_cache = False
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = None
    if steps_from_file is not None:
        total = len(steps_from_file)  # llmql's LinearSchedule without warm-up
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, (total - k) / total))

    def batch_at(k):
        if steps_from_file is not None:
            return steps_from_file[k]
        return [examples[(k * args.batch_size + r) % len(examples)] for r in range(args.batch_size)]

    def step(k):
        ids, pos, mask, labels, ntok = make_batch(torch, batch_at(k), eos_id, args.loss_on)
        ids, pos, mask, labels = ids.to(DEV), pos.to(DEV), mask.to(DEV, DT), labels.to(DEV)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        logits = out.logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach()), ntok

    loss_warmup, _ = step(0)
    losses, tokens = [], 0
    sync()
    t0 = time.perf_counter()
    for k in range(1, args.steps + 1):
        loss, ntok = step(k)
        if loss != loss or loss in (float("inf"), float("-inf")):
            sys.exit(f"non-finite loss at step {k}")
        losses.append(loss)
        tokens += ntok
        print(f"step {k} loss {loss:.4f} tokens {ntok}", file=sys.stderr)
    sync()
    seconds = time.perf_counter() - t0

    if DEV.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(DEV) / 2**20
    else:
        import resource
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "impl": "pytorch",
        "gradient_checkpointing": args.gradient_checkpointing,
        "peak_mib": round(peak_mib, 1),
        "step_seconds": round(seconds / args.steps, 4) if args.steps else None,
        "steps": args.steps,
        "tokens": tokens,
        "seconds": round(seconds, 4),
        "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else None,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "p_max_len": args.p_max_len,
        "q_max_len": args.q_max_len,
        "mask_probability": args.mask_probability,
        "loss_on": args.loss_on,
        "max_grad_norm": args.max_grad_norm,
        "lr": args.lr,
        "loss_warmup": loss_warmup,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
