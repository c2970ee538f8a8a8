"""Throughput of net.gradient beside a plain numpy matrix implementation, in one run.

    python benchmarks/bench_gradient.py [--sizes 784 30 10] [--batch 1000] [--dtype float64]

Reports seconds per call, GFLOP/s in the model 6·P·N, and numpy's GEMM throughput (the ceiling).
"""
import argparse
import os
import platform

import numpy as np

import bpfast

from _common import best_time, gemm_gflops, model_flops, numpy_matrix_gradient


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 30, 10])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    net = bpfast.Network(args.sizes, dtype=args.dtype, seed=0)
    X = rng.random((args.batch, args.sizes[0])).astype(args.dtype)
    Y = np.eye(args.sizes[-1], dtype=args.dtype)[rng.integers(0, args.sizes[-1], args.batch)]
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]

    # Same numbers first, then time.
    ours = net.gradient(X, Y).vector()
    grad_w, grad_b = numpy_matrix_gradient(weights, biases, X, Y)
    theirs = np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(grad_w, grad_b)])
    difference = bpfast.crosscheck.relative_difference(ours, theirs)

    flops = model_flops(args.sizes, args.batch)
    rows = [
        ("bpfast net.gradient", best_time(lambda: net.gradient(X, Y))),
        ("numpy matrix batch", best_time(lambda: numpy_matrix_gradient(weights, biases, X, Y))),
    ]
    ceiling = gemm_gflops(args.dtype)

    machine = platform.processor() or platform.machine()
    print(f"sizes {args.sizes}, batch {args.batch}, {args.dtype}; {machine}, "
          f"{os.cpu_count()} cores, numpy {np.__version__}, bpfast {bpfast.__version__}")
    print(f"relative difference bpfast vs numpy: {difference:.1e}")
    print(f"{'implementation':<22} {'ms/call':>9} {'GFLOP/s':>8} {'% ceiling':>9} {'speed-up':>8}")
    baseline = rows[1][1]
    for name, seconds in rows:
        gflops = flops / seconds / 1e9
        print(f"{name:<22} {seconds * 1e3:9.3f} {gflops:8.2f} {100 * gflops / ceiling:8.1f}% "
              f"{baseline / seconds:7.2f}x")
    print(f"{'numpy GEMM (ceiling)':<22} {'':>9} {ceiling:8.2f}")


if __name__ == "__main__":
    main()
