#!/usr/bin/env python3
"""Paired difference of two runs' per-query nDCG@10 on the same judged queries (mean, standard error,
and how many queries each side wins): how much of a dev-score difference is noise.

    llmql eval --qrels dev.tsv --run A.trec --metrics nDCG@10 --per-query --json > a.json
    llmql eval --qrels dev.tsv --run B.trec --metrics nDCG@10 --per-query --json > b.json
    python3 experiments/issue25/paired.py a.json b.json
"""
import json
import math
import sys

a, b = (json.load(open(p))["per_query"] for p in sys.argv[1:3])
qs = sorted(set(a) & set(b))
d = [b[q]["nDCG@10"] - a[q]["nDCG@10"] for q in qs]
mean = sum(d) / len(d)
sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1)) if len(d) > 1 else 0.0
print(f"{len(qs)} queries: B - A = {mean:+.4f} (standard error {sd / math.sqrt(len(d)):.4f}); "
      f"B better on {sum(x > 0 for x in d)}, worse on {sum(x < 0 for x in d)}")
