#!/usr/bin/env python3
"""PyTorch reference for `llmql bench gemm`: f32 GEMM rate (GFLOP/s) of torch.matmul on [m, k] x [k, n].

    python3 bench/torch_gemm.py [--m 2048] [--k M] [--n M] [--reps 10] [--threads 2]

One warm-up, then --reps timed matmuls; the best and the median are reported. One JSON line on stdout.
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=2048)
    ap.add_argument("--k", type=int)
    ap.add_argument("--n", type=int)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    m, k, n = args.m, args.k or args.m, args.n or args.m
    torch.manual_seed(0)
    x, w = torch.randn(m, k), torch.randn(k, n)
    x @ w
    secs = []
    for _ in range(max(1, args.reps)):
        t = time.perf_counter()
        x @ w
        secs.append(time.perf_counter() - t)
    secs.sort()
    flop = 2.0 * m * k * n
    median = secs[len(secs) // 2]
    print(json.dumps({
        "impl": "pytorch", "m": m, "k": k, "n": n, "reps": len(secs),
        "best_seconds": secs[0], "median_seconds": median,
        "gflops": flop / secs[0] / 1e9, "gflops_median": flop / median / 1e9,
        "threads": args.threads, "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
