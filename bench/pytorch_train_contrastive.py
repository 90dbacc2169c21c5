#!/usr/bin/env python3
"""PyTorch + PEFT reference for `llmql train` (LLM-QL stage 2, contrastive LoRA) throughput.

    python3 bench/pytorch_train_contrastive.py --model DIR --train-data FILE.jsonl \
        [--steps 10] [--batch-size 4] [--train-group-size 16] [--query-max-len 32] [--passage-max-len 128] \
        [--threads 2] [--lr 1e-4] [--lora-r 32] [--lora-alpha 64] [--lora-dropout 0.1] [--temperature 0.01] \
        [--seed 42]

Does the work one llmql stage-2 training step does, LoRA in float32 on CPU:
  1. Tevatron jsonl ({"query", "positive_passages": [{"title", "text"}], "negative_passages": [...]}), file
     order; lines without a positive or without a negative are skipped. Group of an example = its first
     positive + its first G-1 negatives (cycling through the negatives when there are fewer than G-1).
     No sampling, so both implementations see the same texts.
  2. Texts as the reference builds them (two spaces after "Query:" / "Passage:"):
       query   = f"{QP} {query.strip()}{QS}".strip()
       passage = f"{PP} {title.strip()} {text.strip()}{PS}".strip()
     tokenised with add_special_tokens=True (BOS where the tokenizer adds one), truncated to max_len-1,
     EOS id appended (tokenizer_config.json eos_token, else config.json eos_token_id[0]).
  3. Batch k (k = 0 is the warm-up, 1..N are timed) = examples k*B .. k*B+B-1 (modulo the number of
     examples): B queries and B*G passages, each side right-padded (pad_token_id, else EOS) with a 0/1
     attention mask, two forwards of the inner LlamaModel-style decoder (eager attention, LoRA on
     q,k,v,o,gate,up,down via PEFT, LoRA dropout active: train mode), hidden state (after the final norm) at
     each row's last real token (the EOS), L2-normalised; scores = q @ p.T / temperature [B, B*G], target of
     query i = i*G (every passage of the batch is a candidate: in-batch + hard negatives), mean
     cross-entropy, backward, torch.optim.AdamW step over the LoRA parameters only (weight_decay 0, constant
     lr, no clipping), zero_grad.

With --batches (what `llmql bench train --dump-batches` writes: one line per micro-batch, {"step", "queries":
[[ids]], "passages": [[ids]]}), the steps train on exactly llmql's batches (its group sampling, templates and
truncation) with llmql's schedule (linear decay from --lr to 0 over the file's steps, no warm-up) and clipping
(--max-grad-norm, default 1.0 as `llmql train`); the first step is the warm-up and --steps, --batch-size and
the texts of --train-data are then not used. LoRA's A is initialised by PEFT (torch's RNG), so after the first
update the losses differ slightly from llmql's (the warm-up step's loss, B = 0, is the same).

Timing: examples are built and tokenised first (not timed); one warm-up step (not timed); then the wall clock
of N steps (padding, forwards, loss, backward, optimiser). "tokens" counts real (non-pad) query + passage
tokens of the timed batches. Prints one JSON line on stdout; diagnostics go to stderr.
"""
import argparse
import json
import sys
import time
from pathlib import Path

QP = "Instruct: Given a web search query, retrieve the most relevant passage that answer the query.\nQuery: "
QS = "\nThe most relevant passage:"
PP = "Instruct: Given a retrieved passage, summarize the passage.\nPassage: "
PS = "\nSummarization:"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


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


def format_query(q):
    return f"{QP} {(q or '').strip()}{QS}".strip()


def format_passage(p):
    return f"{PP} {(p.get('title') or '').strip()} {(p.get('text') or '').strip()}{PS}".strip()


def build_examples(rows, tok, eos_id, group, q_max, p_max):
    def ids(text, max_len):
        return tok(text, add_special_tokens=True, truncation=True, max_length=max_len - 1)["input_ids"] + [eos_id]

    out = []
    for r in rows:
        pos = r.get("positive_passages") or []
        neg = r.get("negative_passages") or []
        if not pos or not neg or r.get("query") is None:
            continue
        chosen = [pos[0]] + [neg[i % len(neg)] for i in range(group - 1)]
        out.append((ids(format_query(r["query"]), q_max), [ids(format_passage(p), p_max) for p in chosen]))
    return out


def pad(torch, seqs, pad_id):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, : len(s)] = 1
    return ids, mask, sum(len(s) for s in seqs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"], help="base weights / compute dtype")
    ap.add_argument("--train-data", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--train-group-size", type=int, default=16)
    ap.add_argument("--query-max-len", type=int, default=32)
    ap.add_argument("--passage-max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lora-r", type=int, default=32)
    ap.add_argument("--lora-alpha", type=float, default=64)
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--attn", default="eager", help="transformers attn_implementation (eager, sdpa)")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="transformers' per-layer checkpointing")
    ap.add_argument("--max-grad-norm", type=float, default=1.0, help="<= 0 disables clipping")
    ap.add_argument("--batches", help="train on the batches `llmql bench train --dump-batches` wrote")
    args = ap.parse_args()

    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
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
    pad_id = read_json(folder / "config.json").get("pad_token_id")
    if not isinstance(pad_id, int):
        pad_id = eos_id  # right padding under a 0/1 mask: the pad id never affects real positions

    t0 = time.perf_counter()
    steps_from_file = None
    if args.batches:
        steps_from_file = {}
        with open(args.batches, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    b = json.loads(line)
                    steps_from_file.setdefault(b["step"], []).append((b["queries"], b["passages"]))
        steps_from_file = [steps_from_file[k] for k in sorted(steps_from_file)]
        args.steps = len(steps_from_file) - 1
        qs0, ps0 = steps_from_file[0][0]
        args.batch_size = len(qs0)
        args.train_group_size = len(ps0) // len(qs0)
        examples = [None]
    else:
        with open(args.train_data, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        examples = build_examples(rows, tok, eos_id, args.train_group_size, args.query_max_len, args.passage_max_len)
    if not examples:
        sys.exit("no usable training examples (each needs a positive and at least one negative)")
    print(f"built {len(examples)} examples in {time.perf_counter() - t0:.2f}s", file=sys.stderr)

    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=DT, attn_implementation=args.attn).to(DEV)
    base.config.use_cache = False
    if args.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(base, LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=TARGETS,
        task_type="FEATURE_EXTRACTION"))
    model.train()
    encoder = model.base_model.model.model  # the decoder stack (LlamaModel etc.) with LoRA layers injected
    params = [p for p in model.parameters() if p.requires_grad]
    n_lora = sum(p.numel() for p in params)
    print(f"LoRA parameters: {n_lora} in {len(params)} tensors", file=sys.stderr)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = None
    if steps_from_file is not None:
        total = len(steps_from_file)  # llmql's LinearSchedule without warm-up
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, (total - k) / total))
    group = args.train_group_size

    def encode(seqs):
        ids, mask, ntok = pad(torch, seqs, pad_id)
        ids, mask = ids.to(DEV), mask.to(DEV)
        hidden = encoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        reps = hidden[torch.arange(len(seqs), device=DEV), mask.sum(1) - 1].float()
        return torch.nn.functional.normalize(reps, p=2, dim=-1), ntok

    def micro_batches(k):
        if steps_from_file is not None:
            return steps_from_file[k]
        batch = [examples[(k * args.batch_size + r) % len(examples)] for r in range(args.batch_size)]
        return [([q for q, _ in batch], [p for _, ps in batch for p in ps])]

    def step(k):
        micro = micro_batches(k)
        total_loss, ntok = 0.0, 0
        for queries, passages in micro:
            q_reps, q_tok = encode(queries)
            p_reps, p_tok = encode(passages)
            scores = q_reps @ p_reps.T / args.temperature
            target = torch.arange(len(queries), device=DEV) * (len(passages) // len(queries))
            loss = torch.nn.functional.cross_entropy(scores, target) / len(micro)
            loss.backward()
            total_loss += float(loss.detach())
            ntok += q_tok + p_tok
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)
        return total_loss, ntok

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
        "steps": args.steps,
        "tokens": tokens,
        "seconds": round(seconds, 4),
        "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else None,
        "step_seconds": round(seconds / args.steps, 4) if args.steps else None,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "group": group,
        "query_max_len": args.query_max_len,
        "passage_max_len": args.passage_max_len,
        "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha,
        "lora_dropout": args.lora_dropout,
        "lr": args.lr,
        "temperature": args.temperature,
        "lora_params": n_lora,
        "loss_warmup": loss_warmup,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }))


if __name__ == "__main__":
    main()
