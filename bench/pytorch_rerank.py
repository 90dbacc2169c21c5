#!/usr/bin/env python3
"""PyTorch reference for `llmql rerank` (QL scoring under Attention Stop) throughput.

    python3 bench/pytorch_rerank.py --model DIR --pairs PAIRS.jsonl [--batch-size 16] [--threads 2] \
        [--attn sdpa|eager] [--dtype f32|bf16] [--device cpu]

PAIRS.jsonl is what `llmql bench rerank --dump-pairs` writes: one line per (query, document) pair,
{"prefix": [ids], "query": [ids]} with prefix = [BOS] d2q prompt + separator EOS (the document side) and
query = the query tokens + the closing EOS (the scored tokens). The work is what llmql's cached scorer
(core/src/ql/score.rs) does, with transformers and a KV cache:

  1. each distinct prefix once (longest first, batches of --batch-size, right-padded, causal): the
     separator's hidden state scores the first query token, and every layer's key/value at the
     separator (after RoPE) is kept — under Attention Stop the query sees the document only there, so a
     one-position cache is all the query needs;
  2. the pairs' query tokens but the last (sorted by length, batches of 4 x --batch-size, right-padded),
     each row with its document's one-position cache (a DynamicCache), positions continuing after the
     separator, a 4D mask [b, 1, s, 1 + s] (the cache column, then causal), hidden states -> lm_head ->
     log_softmax -> the log-probability of each next query token (and of the closing EOS).

score(pair) = the sum of those natural-log probabilities; "scores_sum" is their total, to compare with
llmql's (same ids, same model: equal to ~1e-3 per pair in f32).

Timing: one warm-up on the first --batch-size pairs (not timed), then the wall clock of steps 1-2 over
all pairs. Prints one JSON line on stdout; diagnostics go to stderr.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", required=True, help="llmql bench rerank --dump-pairs output")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa, eager)")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    dt = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with open(args.pairs, encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    if not pairs:
        sys.exit("no pairs")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dt, attn_implementation=args.attn).to(dev)
    model.eval()
    base, head = model.model, model.lm_head
    import inspect
    # transformers >= 5.3x renames the forward argument `past_key_values` to `cache`.
    cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    neg = torch.finfo(dt).min

    def layer_kv(cache):
        if hasattr(cache, "layers"):  # transformers >= 4.56
            return [(layer.keys, layer.values) for layer in cache.layers]
        return list(zip(cache.key_cache, cache.value_cache))

    def score(pairs):
        prefixes = {}
        doc_of = []
        for p in pairs:
            doc_of.append(prefixes.setdefault(tuple(p["prefix"]), len(prefixes)))
        docs = list(prefixes)
        scores = [0.0] * len(pairs)
        pairs_of_doc = [[] for _ in docs]
        for i, d in enumerate(doc_of):
            pairs_of_doc[d].append(i)
        # 1. documents once: separator states -> first target, one-position KV cache.
        order = sorted(range(len(docs)), key=lambda d: (-len(docs[d]), d))
        sep_k = [None] * len(docs)
        sep_v = [None] * len(docs)
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            width = len(docs[idx[0]])
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, d in enumerate(idx):
                ids[r, :len(docs[d])] = torch.tensor(docs[d])
                mask[r, :len(docs[d])] = 1
            out = base(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=True)
            last = torch.tensor([len(docs[d]) - 1 for d in idx], device=dev)
            rows = torch.arange(len(idx), device=dev)
            logp = torch.log_softmax(head(out.last_hidden_state[rows, last]).float(), dim=-1)
            kv = layer_kv(getattr(out, "cache", None) or out.past_key_values)
            for r, d in enumerate(idx):
                sep_k[d] = [k[r:r + 1, :, last[r]:last[r] + 1] for k, _ in kv]
                sep_v[d] = [v[r:r + 1, :, last[r]:last[r] + 1] for _, v in kv]
                for i in pairs_of_doc[d]:
                    scores[i] = float(logp[r, pairs[i]["query"][0]])
        # 2. query tokens against their document's cached separator.
        todo = [i for i in range(len(pairs)) if len(pairs[i]["query"]) > 1]
        todo.sort(key=lambda i: (-len(pairs[i]["query"]), i))
        n_layers = len(sep_k[0]) if sep_k else 0
        for start in range(0, len(todo), 4 * args.batch_size):
            idx = todo[start:start + 4 * args.batch_size]
            s = len(pairs[idx[0]]["query"]) - 1
            b = len(idx)
            ids = torch.zeros((b, s), dtype=torch.long)
            pos = torch.zeros((b, s), dtype=torch.long)
            for r, i in enumerate(idx):
                q = pairs[i]["query"][:-1]
                ids[r, :len(q)] = torch.tensor(q)
                pos[r] = torch.arange(s) + len(pairs[i]["prefix"])
            allowed = torch.ones((s, s + 1), dtype=torch.bool)
            allowed[:, 1:] = torch.tril(torch.ones((s, s), dtype=torch.bool))
            mask = torch.zeros((b, 1, s, s + 1), dtype=dt)
            mask.masked_fill_(~allowed, neg)
            cache = DynamicCache()
            for layer in range(n_layers):
                k = torch.cat([sep_k[doc_of[i]][layer] for i in idx], 0)
                v = torch.cat([sep_v[doc_of[i]][layer] for i in idx], 0)
                cache.update(k, v, layer)
            out = base(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                       use_cache=True, **{cache_kw: cache})
            sel_rows, sel_cols, targets, owners = [], [], [], []
            for r, i in enumerate(idx):
                q = pairs[i]["query"]
                for j in range(len(q) - 1):
                    sel_rows.append(r)
                    sel_cols.append(j)
                    targets.append(q[j + 1])
                    owners.append(i)
            h = out.last_hidden_state[torch.tensor(sel_rows, device=dev), torch.tensor(sel_cols, device=dev)]
            logp = torch.log_softmax(head(h).float(), dim=-1)
            lp = logp.gather(1, torch.tensor(targets, device=dev).unsqueeze(1)).squeeze(1).tolist()
            for o, x in zip(owners, lp):
                scores[o] += x
        return scores, len(docs)

    with torch.inference_mode():
        score(pairs[:args.batch_size])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        scores, n_docs = score(pairs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
    doc_tokens = sum(len(p) for p in {tuple(x["prefix"]) for x in pairs})
    query_tokens = sum(len(x["query"]) - 1 for x in pairs)
    if dev.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        import resource
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "impl": "pytorch",
        "pairs": len(pairs),
        "documents": n_docs,
        "doc_tokens": doc_tokens,
        "query_tokens": query_tokens,
        "tokens": doc_tokens + query_tokens,
        "seconds": round(seconds, 4),
        "pairs_per_s": round(len(pairs) / seconds, 2),
        "tokens_per_s": round((doc_tokens + query_tokens) / seconds, 2),
        "scores_sum": sum(scores),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "attn": args.attn,
        "peak_mib": round(peak_mib, 1),
        "device": args.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
