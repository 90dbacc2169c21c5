#!/usr/bin/env python3
"""Reference for `llmql bench search`: exact inner-product top-K over random unit vectors, with
numpy (matmul + argpartition, blocked like llmql) and, if installed, faiss IndexFlatIP.

    python3 bench/numpy_search.py --corpus-size 100000 --dim 1024 --queries 1000 --depth 100 --threads 2
"""
import argparse, json, os, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus-size", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block-rows", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import numpy as np

    rng = np.random.default_rng(a.seed)
    corpus = rng.standard_normal((a.corpus_size, a.dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = rng.standard_normal((a.queries, a.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = a.depth

    # numpy: blocked matmul, argpartition per block, merge, final sort (same work as llmql).
    t = time.perf_counter()
    best_s = np.full((a.queries, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((a.queries, 0), dtype=np.int64)
    for start in range(0, a.corpus_size, a.block_rows):
        block = corpus[start:start + a.block_rows]
        s = queries @ block.T
        kk = min(k, s.shape[1])
        idx = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        cs = np.concatenate([best_s, np.take_along_axis(s, idx, axis=1)], axis=1)
        ci = np.concatenate([best_i, idx + start], axis=1)
        kk = min(k, cs.shape[1])
        sel = np.argpartition(-cs, kk - 1, axis=1)[:, :kk]
        best_s = np.take_along_axis(cs, sel, axis=1)
        best_i = np.take_along_axis(ci, sel, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    best_i = np.take_along_axis(best_i, order, axis=1)
    secs = time.perf_counter() - t
    out = {"impl": "numpy", "corpus_size": a.corpus_size, "dim": a.dim, "queries": a.queries,
           "depth": k, "seconds": secs, "queries_per_s": a.queries / secs, "threads": a.threads,
           "numpy": np.__version__}
    print(json.dumps(out))
    try:
        import faiss
        faiss.omp_set_num_threads(a.threads)
        t = time.perf_counter()
        index = faiss.IndexFlatIP(a.dim)
        index.add(corpus)
        index.search(queries, k)
        secs = time.perf_counter() - t
        print(json.dumps({"impl": "faiss-IndexFlatIP", "corpus_size": a.corpus_size, "dim": a.dim,
                          "queries": a.queries, "depth": k, "seconds": secs,
                          "queries_per_s": a.queries / secs, "threads": a.threads,
                          "faiss": faiss.__version__}))
    except ImportError:
        print(json.dumps({"impl": "faiss-IndexFlatIP", "skipped": "pip install faiss-cpu"}))


if __name__ == "__main__":
    main()
