#!/usr/bin/env python3
"""PyTorch reference for `llmql encode --kind passage` / `llmql bench encode`.

    python3 bench/pytorch_encode.py --model DIR --input FILE.jsonl \
        [--batch-size 32] [--max-len 128] [--threads 2] [--template llmql] \
        [--dtype f32|bf16|f16] [--device cpu|cuda] [--limit N] [--save-npy OUT.npy]

Does exactly the work llmql does for passages:
  1. text = f"{PP} {title.strip()} {text.strip()}{PS}".strip()   (LLM-QL passage template)
  2. tokenize with add_special_tokens=True (tokenizer's post-processor, e.g. BOS),
     truncating to max_len - 1 tokens, then append the EOS id  -> at most max_len tokens
  3. sort by token length (longest first, stable), cut into batches of --batch-size,
     right-pad, forward AutoModel (sdpa attention) under torch.inference_mode()
  4. take the last layer's hidden state at each sequence's last real token (the
     appended EOS) and L2-normalise it.

Timing (same span as `llmql bench encode`): the corpus is templated and tokenised first
(not timed; its time goes to stderr), one warm-up forward of the first (longest) batch
(not timed), then the wall clock of steps 3-4 over all batches (padding, forward,
pooling, normalisation, copy back to host). "tokens" counts real tokens (BOS + text +
EOS, no padding). Prints one JSON line on stdout; progress/diagnostics go to stderr.
"""
import argparse
import json
import os
import sys
import time

PASSAGE_PREFIX = "Instruct: Given a retrieved passage, summarize the passage.\nPassage: "
PASSAGE_SUFFIX = "\nSummarization:"
TEMPLATES = {"llmql": (PASSAGE_PREFIX, PASSAGE_SUFFIX)}
DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def passage_text(template, title, text):
    pp, ps = TEMPLATES[template]
    return f"{pp} {(title or '').strip()} {(text or '').strip()}{ps}".strip()


def read_jsonl(path, limit=None):
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            docs.append(json.loads(line))
            if limit is not None and len(docs) >= limit:
                break
    return docs


def tokenize(tokenizer, texts, max_len, eos_id):
    enc = tokenizer(
        texts,
        add_special_tokens=True,
        truncation=True,
        max_length=max_len - 1,
        padding=False,
        return_attention_mask=False,
    )
    return [ids + [eos_id] for ids in enc["input_ids"]]


def peak_mib(torch, device):
    """Peak resident memory of the process (CPU) or peak allocated GPU memory, MiB."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode_batch(model, torch, ids_list, pad_id, device):
    bsz = len(ids_list)
    lens = [len(x) for x in ids_list]
    width = max(lens)
    input_ids = torch.full((bsz, width), pad_id, dtype=torch.long)
    attn = torch.zeros((bsz, width), dtype=torch.long)
    for i, ids in enumerate(ids_list):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attn[i, : len(ids)] = 1
    input_ids = input_ids.to(device)
    attn = attn.to(device)
    out = model(input_ids=input_ids, attention_mask=attn, use_cache=False)
    hidden = out.last_hidden_state  # [B, T, H]
    last = torch.tensor([l - 1 for l in lens], device=device)
    emb = hidden[torch.arange(bsz, device=device), last].float()
    return torch.nn.functional.normalize(emb, p=2, dim=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model folder (config.json, *.safetensors, tokenizer.json)")
    ap.add_argument("--input", required=True, help="JSONL corpus: {_id, title, text} per line")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (intra-op)")
    ap.add_argument("--template", choices=sorted(TEMPLATES), default="llmql")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="attention implementation")
    ap.add_argument("--limit", type=int, default=None, help="only the first N passages")
    ap.add_argument("--save-npy", default=None, help="write embeddings [N, H] float32 in input order")
    args = ap.parse_args()
    if args.max_len < 2:
        ap.error("--max-len must be >= 2")

    # Threads must be fixed before torch does any work.
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    dtype = getattr(torch, DTYPES[args.dtype])
    device = torch.device(args.device)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        sys.exit("tokenizer has no eos_token")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    try:
        model = AutoModel.from_pretrained(args.model, dtype=dtype, attn_implementation=args.attn)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model = AutoModel.from_pretrained(args.model, torch_dtype=dtype, attn_implementation=args.attn)
    model.to(device).eval()

    docs = read_jsonl(args.input, args.limit)
    if not docs:
        sys.exit("no passages in input")

    # Tokenise the whole corpus up front (not timed: `llmql bench encode` also tokenises
    # before its clock starts), then sort longest-first, stable on input index.
    t_tok = time.perf_counter()
    texts = [passage_text(args.template, d.get("title", ""), d.get("text", "")) for d in docs]
    ids = tokenize(tokenizer, texts, args.max_len, eos_id)
    tok_seconds = time.perf_counter() - t_tok
    n_tokens = sum(len(x) for x in ids)
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    batches = [order[s : s + args.batch_size] for s in range(0, len(order), args.batch_size)]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # Warm-up: the first (longest) batch, as it will be run.
    with torch.inference_mode():
        encode_batch(model, torch, [ids[i] for i in batches[0]], pad_id, device).cpu()
    sync()

    # Timed: padding, forward, pooling, normalisation, copy back, for every batch.
    embs = [None] * len(ids)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for chunk in batches:
            e = encode_batch(model, torch, [ids[i] for i in chunk], pad_id, device).cpu()
            for j, i in enumerate(chunk):
                embs[i] = e[j]
    sync()
    seconds = time.perf_counter() - t0
    embs = torch.stack(embs)
    print(f"tokenisation (not timed): {tok_seconds:.3f}s", file=sys.stderr)

    if args.save_npy:
        import numpy as np

        np.save(args.save_npy, embs.numpy().astype(np.float32))
        print(f"saved embeddings {tuple(embs.shape)} to {args.save_npy}", file=sys.stderr)

    n = len(docs)
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "passages": n,
                "tokens": n_tokens,
                "seconds": round(seconds, 4),
                "passages_per_s": round(n / seconds, 3),
                "tokens_per_s": round(n_tokens / seconds, 1),
                "threads": args.threads,
                "batch_size": args.batch_size,
                "max_len": args.max_len,
                "device": args.device,
                "dtype": args.dtype,
                "peak_mib": round(peak_mib(torch, args.device), 1),
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
