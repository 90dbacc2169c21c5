#!/usr/bin/env python3
"""Reference for `llmql bench index`: faiss-cpu's approximate indexes on the very vectors the llmql
benchmark generated (`llmql bench index --write-vectors DIR` writes corpus.npy, queries.npy and
truth.npy, the exact top-k row numbers). Prints one JSON line with the same keys as llmql's
`engines` entries: build time, memory per passage (the serialised index), recall@k and queries/s
on one thread and on all.

    python3 bench/faiss_index.py --vectors DIR --threads 2

Engines: HNSW (IndexHNSWFlat), IVF-PQ (IndexIVFPQ, 8-bit codes), IVF-PQ with exact re-ranking of
the shortlist (IndexRefineFlat over it), and IVF-SQ8 with exact re-ranking (what `llmql index
--kind ivf` does). Inner product on unit vectors, spherical k-means for the IVF cells.
"""
import argparse, json, math, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="hnsw,ivfpq,ivfpq-refine,ivfsq8-refine")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-search", default="16,32,64,128,256")
    ap.add_argument("--lists", type=int, default=0, help="IVF cells (0: 2 x sqrt(rows), as llmql)")
    ap.add_argument("--pq-m", type=int, default=0, help="PQ sub-quantisers (0: dim / 8)")
    ap.add_argument("--nprobe", default="8,16,32,64,128")
    ap.add_argument("--refine", type=int, default=200, help="candidates re-ranked exactly (as llmql --rescore)")
    ap.add_argument("--train", type=int, default=0, help="k-means training rows (0: 64 per cell, as llmql)")
    a = ap.parse_args()
    import numpy as np
    import faiss

    corpus = np.load(f"{a.vectors}/corpus.npy", mmap_mode="r")
    queries = np.ascontiguousarray(np.load(f"{a.vectors}/queries.npy"))
    truth = np.load(f"{a.vectors}/truth.npy")
    n, d = corpus.shape
    k = truth.shape[1]
    lists = a.lists or max(1, round(2 * math.sqrt(n)))
    pq_m = a.pq_m or d // 8
    rng = np.random.default_rng(0)
    train_n = min(n, a.train or min(max(lists * 64, lists), 1 << 18))
    train = np.ascontiguousarray(corpus[np.sort(rng.choice(n, train_n, replace=False))])
    corpus = np.ascontiguousarray(corpus)

    def measure(index, set_param, values):
        points = []
        for v in values:
            set_param(v)
            rates = []
            for threads in (1, a.threads):
                faiss.omp_set_num_threads(threads)
                t = time.perf_counter()
                if threads == 1:
                    found = np.zeros((len(queries), k), dtype=np.int64)
                    for i in range(len(queries)):
                        found[i] = index.search(queries[i:i + 1], k)[1][0]
                else:
                    index.search(queries, k)
                rates.append(len(queries) / (time.perf_counter() - t))
            recall = np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)])
            points.append({"setting": v, "recall": float(recall), "queries_per_s_1_thread": rates[0],
                           "queries_per_s_all_threads": rates[1]})
        return points

    def built(name, index, params, set_param, values, build_s):
        mem = faiss.serialize_index(index).nbytes
        pts = measure(index, set_param, values)
        for p in pts:
            print(f"# {name} {p['setting']}: recall@{k} {p['recall']:.4f}, "
                  f"{p['queries_per_s_1_thread']:.0f} q/s on one thread, {p['queries_per_s_all_threads']:.0f} on all",
                  flush=True)
        return {"engine": name, "params": params, "build_s": build_s, "memory_bytes": mem,
                "memory_bytes_per_passage": mem / n, "search": pts}

    def ivf(quantizer_factory, refine):
        """Trains and fills an IVF index (through IndexRefineFlat when `refine`): (searched, ivf, coarse, s)."""
        faiss.omp_set_num_threads(a.threads)
        t = time.perf_counter()
        coarse = faiss.IndexFlatIP(d)
        inner = quantizer_factory(coarse)
        inner.cp.spherical = True
        inner.train(train)
        index = inner
        if refine:
            index = faiss.IndexRefineFlat(inner)
            index.k_factor = a.refine / k
        index.add(corpus)
        return index, inner, coarse, time.perf_counter() - t

    engines = []
    efs = [int(x) for x in a.ef_search.split(",")]
    nprobes = [int(x) for x in a.nprobe.split(",")]
    for e in a.engines.split(","):
        faiss.omp_set_num_threads(a.threads)
        if e == "hnsw":
            t = time.perf_counter()
            index = faiss.IndexHNSWFlat(d, a.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = a.ef_construction
            index.add(corpus)
            b = time.perf_counter() - t
            print(f"# hnsw built in {b:.1f}s", flush=True)

            def set_ef(v, index=index):
                index.hnsw.efSearch = v["ef_search"]
            engines.append(built(f"faiss HNSWFlat M {a.hnsw_m}", index,
                                 {"m": a.hnsw_m, "ef_construction": a.ef_construction}, set_ef,
                                 [{"ef_search": v} for v in efs], b))
        elif e in ("ivfpq", "ivfpq-refine", "ivfsq8-refine"):
            refine = e.endswith("refine")
            if e.startswith("ivfpq"):
                index, inner, coarse, b = ivf(
                    lambda q: faiss.IndexIVFPQ(q, d, lists, pq_m, 8, faiss.METRIC_INNER_PRODUCT), refine)
                params = {"lists": lists, "pq_m": pq_m, "bits": 8}
            else:
                index, inner, coarse, b = ivf(lambda q: faiss.IndexIVFScalarQuantizer(
                    q, d, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT), refine)
                params = {"lists": lists, "codes": "SQ8"}
            if refine:
                params["refine"] = a.refine
            print(f"# {e} built in {b:.1f}s", flush=True)

            def set_np(v, inner=inner):
                inner.nprobe = v["nprobe"]
            name = {"ivfpq": "faiss IVF-PQ", "ivfpq-refine": "faiss IVF-PQ + exact re-ranking",
                    "ivfsq8-refine": "faiss IVF-SQ8 + exact re-ranking"}[e]
            engines.append(built(name, index, params, set_np, [{"nprobe": v} for v in nprobes], b))
        else:
            raise SystemExit(f"unknown engine {e}")
    print(json.dumps({"bench": "index", "impl": f"faiss-cpu {faiss.__version__}", "rows": n, "dim": d, "k": k,
                      "queries": len(queries), "threads": a.threads, "engines": engines}))


if __name__ == "__main__":
    main()
