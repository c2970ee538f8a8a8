"""fit at every shape: one epoch of [784, h, 10] over a sweep of hidden widths and mini-batch
sizes, in both precisions, bpfast beside numpy's matrix form and PyTorch eager.

    python benchmarks/bench_shapes.py [--repeat 3] [--widths 16 64 256 1024]
                                      [--batches 10 32 256 1024] [--dtypes float32 float64]

Each cell trains one epoch of N = 10,240 random examples (inputs in [0, 1), one-hot targets),
sigmoid and the quadratic cost, plain SGD; the three implementations take turns, best of
--repeat. Shown: bpfast's seconds per epoch, its GFLOP/s in real FLOPs (2 per weight per
example forward, 2 for ∂C/∂w, 2 for δ in every layer but the first) beside numpy's GEMM ceiling
— its square product, taking its turns with the cell's epochs —, and numpy's and PyTorch's time
over bpfast's (above 1: bpfast is faster).
The run ends with the cells that miss a target (`RATIO_TARGET`, `CEILING_TARGET`).
"""
import argparse
import datetime
import os
import platform
import time

import numpy as np

import bpfast

from _common import gemm_call, gemm_rate, report_targets
from peers import make_torch_epoch, numpy_matrix_epoch

N = 10_240
LEARNING_RATE = 0.5
#: Seconds between two timings: BLAS's and OpenMP's threads spin a while after their last task.
SETTLE_SECONDS = 0.2
#: Every cell: each peer's time over bpfast's at least this.
RATIO_TARGET = 1.1
#: Where the products dominate (batch ≥ 1,024 and h ≥ 256): this share of the GEMM ceiling.
CEILING_TARGET = 0.85
#: The ceiling's call among each cell's runs (_common.gemm_call).
CEILING = "numpy GEMM"


def real_flops(sizes, n):
    weights = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return (4 * sum(weights) + 2 * sum(weights[1:])) * n


def cell(h, batch, dtype, repeat, torch_epoch, ceiling):
    sizes = [784, h, 10]
    rng = np.random.default_rng(0)
    X = rng.random((N, 784)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, N)]
    order = np.random.default_rng(1).permutation(N)
    net = bpfast.Network(sizes, dtype=dtype, seed=0)
    weights, biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    runs = {
        "bpfast": lambda: net.fit(X, Y, epochs=1, batch_size=batch, learning_rate=LEARNING_RATE,
                                  seed=0),
        "numpy": lambda: numpy_matrix_epoch(weights, biases, X, Y, batch, LEARNING_RATE, order),
        CEILING: ceiling,
    }
    if torch_epoch is not None:
        torch_weights, torch_biases = [w.copy() for w in weights], [b.copy() for b in biases]
        runs["PyTorch"] = lambda: torch_epoch(torch_weights, torch_biases, X, Y, batch,
                                              LEARNING_RATE, order)
    best = {name: float("inf") for name in runs}
    for _ in range(repeat + 1):                 # the first round warms up and builds
        for name, run in runs.items():
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return sizes, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 32, 256, 1024])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    args = parser.parse_args()
    torch_epoch = make_torch_epoch()
    print(f"bpfast {bpfast.__version__} fit at every shape, {datetime.date.today()}, "
          f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, numpy {np.__version__}"
          + ("" if torch_epoch is None else f", torch {__import__('torch').__version__}")
          + f"; one epoch of {N:,} examples, best of {args.repeat}, taking turns")
    misses, counted = [], 0
    for dtype in args.dtypes:
        gemm, ceilings = gemm_call(dtype), []
        print(f"\n{dtype}: each cell: bpfast s/epoch, its GFLOP/s (% of the ceiling: numpy's GEMM "
              "in the cell's turns), numpy/bpfast, PyTorch/bpfast")
        header = f"{'[784, h, 10]':<14}" + "".join(f"{'batch ' + str(b):>36}" for b in args.batches)
        print(header)
        print("-" * len(header))
        for h in args.widths:
            line = f"{'h = ' + str(h):<14}"
            for batch in args.batches:
                sizes, best = cell(h, batch, dtype, args.repeat, torch_epoch, gemm)
                ceiling = gemm_rate(best[CEILING])
                ceilings.append(ceiling)
                ours = best["bpfast"]
                gflops = real_flops(sizes, N) / ours / 1e9
                torch = (f"{best['PyTorch'] / ours:5.2f}×" if "PyTorch" in best
                         else "  skip")
                line += (f"  {ours:7.4f}s {gflops:5.1f} ({100 * gflops / ceiling:3.0f}%) "
                         f"{best['numpy'] / ours:5.2f}× {torch}")
                where = f"{dtype} h = {h} batch {batch}"
                for peer in ("numpy", "PyTorch"):
                    if peer in best:
                        counted += 1
                        if best[peer] / ours < RATIO_TARGET:
                            misses.append(f"{where}: {peer} {best[peer] / ours:.2f}× "
                                          f"(< {RATIO_TARGET}×)")
                if batch >= 1024 and h >= 256:
                    counted += 1
                    if gflops < CEILING_TARGET * ceiling:
                        misses.append(f"{where}: {100 * gflops / ceiling:.0f}% of the ceiling "
                                      f"(< {100 * CEILING_TARGET:.0f}%)")
            print(line, flush=True)
        print(f"numpy GEMM ceiling in the cells' turns: {min(ceilings):.1f}–{max(ceilings):.1f} "
              f"GFLOP/s (median {np.median(ceilings):.1f})")
    report_targets("Targets", counted, misses)


if __name__ == "__main__":
    main()
