#!/usr/bin/env python3
"""Write deterministic Tevatron training data from the bench passages (for the training and rerank benchmarks).

    python3 bench/make_bench_train.py TEXTS.jsonl OUT.jsonl [--n 256] [--negatives 15] [--seed 0]

TEXTS.jsonl is bench/make_bench_texts.py's output. Example i: a query of 4-12 words drawn from passage i's
text (in order, seeded), positive_passages = [passage i], negative_passages = the next --negatives passages
(cyclically). Same arguments give a byte-identical file. Only the Python standard library is needed.
"""
import argparse
import json
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texts")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=256, help="number of examples (default 256)")
    ap.add_argument("--negatives", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(args.texts, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    rng = random.Random(args.seed)
    n = min(args.n, len(docs))
    with open(args.out, "w", encoding="utf-8") as f:
        for i in range(n):
            words = docs[i]["text"].replace(",", "").replace(".", "").split()
            k = min(len(words), rng.randint(4, 12))
            start = rng.randint(0, len(words) - k)
            query = " ".join(words[start:start + k]).lower()

            def passage(d):
                return {"docid": d["_id"], "title": d.get("title", ""), "text": d["text"]}

            negs = [passage(docs[(i + j) % len(docs)]) for j in range(1, args.negatives + 1)]
            f.write(json.dumps({"query_id": f"q{i}", "query": query, "positive_passages": [passage(docs[i])],
                                "negative_passages": negs}) + "\n")
    print(f"wrote {n} examples to {args.out}")


if __name__ == "__main__":
    main()
