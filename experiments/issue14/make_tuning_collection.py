"""The tuning collection for issue 14: the quickstart collection with its 60 test queries removed and
30 of its 150 training queries (a fixed seeded choice) as the evaluation queries. Every recipe
choice was made on this collection's evaluation queries; the real test queries and the medical
collection were never looked at until the defaults were fixed.

    python3 experiments/issue14/make_tuning_collection.py  # writes experiments/issue14/tuning/
"""
import os, random, shutil

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "..", "native-cli", "assets", "quickstart")
dst = os.path.join(here, "tuning")
os.makedirs(os.path.join(dst, "qrels"), exist_ok=True)
lines = open(os.path.join(src, "qrels", "train.tsv")).read().splitlines()
header, rows = lines[0], [l for l in lines[1:] if l.strip()]
qids = sorted({r.split("\t")[0] for r in rows})
random.Random(14).shuffle(qids)
held = set(qids[:30])
with open(os.path.join(dst, "qrels", "test.tsv"), "w") as f:
    f.write("\n".join([header] + [r for r in rows if r.split("\t")[0] in held]) + "\n")
with open(os.path.join(dst, "qrels", "train.tsv"), "w") as f:
    f.write("\n".join([header] + [r for r in rows if r.split("\t")[0] not in held]) + "\n")
shutil.copy(os.path.join(src, "corpus.jsonl"), dst)
# Only training queries: the real test queries are not even in this folder.
keep = set(qids)
with open(os.path.join(src, "queries.jsonl")) as fi, open(os.path.join(dst, "queries.jsonl"), "w") as fo:
    import json
    for line in fi:
        if line.strip() and json.loads(line)["_id"] in keep:
            fo.write(line)
print(f"{len(held)} evaluation queries, {len(qids) - len(held)} training queries -> {dst}")
