"""The tuning collection for issue 14: the quickstart collection with its 60 test queries removed and
30 of its 150 training queries as the evaluation queries. Every recipe choice was made on this
collection's evaluation queries; the real test queries and the medical collection were never looked
at until the defaults were fixed.

The quickstart's training queries mix lexical and paraphrase queries, its test queries are mostly
paraphrases: a random choice of training queries is far easier than the test set (BM25 nDCG@10
0.97 on one). So the 30 evaluation queries are the training queries that share the fewest content
words with their relevant passage (judgments of training queries only; no test query involved).

    python3 experiments/issue14/make_tuning_collection.py  # writes experiments/issue14/tuning/
"""
import os, re, shutil

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "..", "native-cli", "assets", "quickstart")
dst = os.path.join(here, "tuning")
os.makedirs(os.path.join(dst, "qrels"), exist_ok=True)
lines = open(os.path.join(src, "qrels", "train.tsv")).read().splitlines()
header, rows = lines[0], [l for l in lines[1:] if l.strip()]
import json
STOP = set("a an the of to in on for and or is are was were be by with at from as that this it its what which who how why when where do does did can could would should will about into than then there their they them he she his her you your i we our not no".split())
words = lambda t: {w for w in re.findall(r"[a-z0-9]+", t.lower()) if w not in STOP}
corpus = {d["_id"]: d for d in map(json.loads, open(os.path.join(src, "corpus.jsonl")))}
queries = {q["_id"]: q["text"] for q in map(json.loads, open(os.path.join(src, "queries.jsonl")))}
qids = sorted({r.split("\t")[0] for r in rows})
best = {}
for r in rows:
    q, d, g = r.split("\t")
    if int(g) == 2:
        best[q] = d
def overlap(q):
    qw = words(queries[q])
    p = corpus[best[q]]
    return len(qw & words(p["title"] + " " + p["text"])) / max(1, len(qw))
qids.sort(key=lambda q: (overlap(q), q))
held = set(qids[:30])
print("mean overlap held out %.3f, rest %.3f" % (sum(map(overlap, qids[:30])) / 30, sum(map(overlap, qids[30:])) / (len(qids) - 30)))
with open(os.path.join(dst, "qrels", "test.tsv"), "w") as f:
    f.write("\n".join([header] + [r for r in rows if r.split("\t")[0] in held]) + "\n")
with open(os.path.join(dst, "qrels", "train.tsv"), "w") as f:
    f.write("\n".join([header] + [r for r in rows if r.split("\t")[0] not in held]) + "\n")
shutil.copy(os.path.join(src, "corpus.jsonl"), dst)
# Only training queries: the real test queries are not even in this folder.
keep = set(qids)
with open(os.path.join(src, "queries.jsonl")) as fi, open(os.path.join(dst, "queries.jsonl"), "w") as fo:
    for line in fi:
        if line.strip() and json.loads(line)["_id"] in keep:
            fo.write(line)
print(f"{len(held)} evaluation queries, {len(qids) - len(held)} training queries -> {dst}")
