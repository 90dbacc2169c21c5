#!/usr/bin/env python3
"""Renders the study's dev.tsv (one line per variant: collection, name, dev nDCG@10, RR@10, R@100,
seconds, quickstart flags) as a markdown table per collection, with the collection's BM25 on the same
dev queries for reference.

    python3 experiments/issue25/render.py experiments/issue25/dev.tsv
"""
import sys
from collections import defaultdict

BM25_DEV = {"embedded": 0.7933, "medical": 0.7981, "cisi": 0.3493}
rows = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 6:
        rows[f[0]].append(f)
for coll, rs in rows.items():
    print(f"\n### {coll} (dev queries; BM25 on them: nDCG@10 {BM25_DEV.get(coll, float('nan')):.4f})\n")
    print("| variant | flags (on top of the defaults of the time) | nDCG@10 | RR@10 | R@100 | s |")
    print("|---|---|---:|---:|---:|---:|")
    for f in rs:
        flags = f[6] if len(f) > 6 else ""
        print(f"| {f[1]} | `{flags}` | {f[2]} | {f[3]} | {f[4]} | {f[5]} |")
