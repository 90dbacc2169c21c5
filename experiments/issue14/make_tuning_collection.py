"""The tuning collection for issue 14: the quickstart collection without its 60 test queries, its 40 dev
queries (qrels/dev.tsv: written like the test queries, for passages no train or test query judges)
as the evaluation queries, and all 150 training queries for training. Every recipe choice was made
on these dev queries; the real test queries (not even in this folder) and the medical collection
were looked at only once the defaults were fixed.

Why not held-out training queries: they mostly share their passage's words (mean overlap 0.77)
while test queries are paraphrases (0.28); BM25 reaches nDCG@10 0.97 on training queries, so they
cannot tell recipes apart. The dev queries overlap like the test queries (0.27).

    python3 experiments/issue14/make_tuning_collection.py  # writes experiments/issue14/tuning/
"""
import json, os, shutil

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "..", "native-cli", "assets", "quickstart")
dst = os.path.join(here, "tuning")
os.makedirs(os.path.join(dst, "qrels"), exist_ok=True)
shutil.copy(os.path.join(src, "corpus.jsonl"), dst)
shutil.copy(os.path.join(src, "qrels", "train.tsv"), os.path.join(dst, "qrels", "train.tsv"))
shutil.copy(os.path.join(src, "qrels", "dev.tsv"), os.path.join(dst, "qrels", "test.tsv"))
ids = lambda f: {l.split("\t")[0] for l in open(os.path.join(src, "qrels", f)).read().splitlines()[1:] if l.strip()}
keep = ids("train.tsv") | ids("dev.tsv")
assert not keep & ids("test.tsv")
with open(os.path.join(src, "queries.jsonl")) as fi, open(os.path.join(dst, "queries.jsonl"), "w") as fo:
    for line in fi:
        if line.strip() and json.loads(line)["_id"] in keep:
            fo.write(line)
print(f"{len(ids('dev.tsv'))} evaluation (dev) queries, {len(ids('train.tsv'))} training queries -> {dst}")
