"""Seconds per epoch of mini-batch SGD: bpfast beside its peers, measured in one run.

    python benchmarks/bench_training.py [--workloads W1 W2 W3 W4] [--repeat 3] [--variants W1]

For each workload, every implementation trains from the same initial parameters on the same
data; the table gives seconds per epoch (best of --repeat, the implementations taking turns,
bpfast's fit timed over 3 epochs per call), GFLOP/s in the model 6·P·N, bpfast's speed-up over
each peer, and the GEMM throughput numpy reaches here (the ceiling). Peers whose library is
missing (`pip install ".[bench]"`) are reported as skipped.

A second table trains the --variants workloads (W1 by default) with each other choice of fit and
Network — momentum, Nesterov, Adam, L2, tanh, ReLU, softmax + cross-entropy — and gives each one's
time relative to plain bpfast (sigmoid, quadratic cost, gradient descent) in the same run.
"""
import argparse
import datetime
import os
import platform
import time

import numpy as np

import bpfast

from _common import gemm_gflops, model_flops
from peers import (
    make_sklearn_epoch,
    make_torch_epoch,
    numpy_matrix_epoch,
    numpy_per_example_epoch,
)

WORKLOADS = {
    # name: (sizes, batch size, dtype, examples)
    "W1": ([784, 30, 10], 10, "float64", 50_000),
    "W2": ([784, 16, 16, 10], 32, "float64", 50_000),
    "W3": ([784, 512, 512, 10], 128, "float32", 20_000),
    "W4": ([64, 30, 10], 10, "float64", 17_970),            # the 1,797 digits, 10 times
}
LEARNING_RATE = 0.5
FIT_EPOCHS = 3
IDLE_SECONDS = 0.3
# The per-example loop takes seconds per epoch: time a slice of the epoch and scale it up.
SLOW_FRACTION = 0.2


def workload_data(sizes, dtype, N, seed=0):
    """W4: the bundled digits, scaled to [0, 1] and repeated to N examples. The others: random
    inputs in [0, 1) and one-hot targets, shaped like scaled MNIST pixels and labels."""
    if sizes[0] == 64:
        X, labels = bpfast.datasets.load_digits()
        repeats = -(-N // len(X))
        X = np.tile(bpfast.datasets.scale(X, 0, 16), (repeats, 1))[:N].astype(dtype)
        Y = np.tile(bpfast.datasets.one_hot(labels, 10), (repeats, 1))[:N].astype(dtype)
        return X, Y
    rng = np.random.default_rng(seed)
    X = rng.random((N, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], N)]
    return X, Y


def best_in_turns(runs, repeat):
    """Seconds per epoch of each run: the best of `repeat` rounds after one to warm up and build,
    the runs taking turns so that a noisy moment of the machine hits them all alike. `runs` maps
    a name to (a callable, the number of epochs one call trains)."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeat + 1):
        for name, (run, epochs) in runs.items():
            # BLAS and OpenMP worker threads spin for a while after their last task; let the
            # previous run's go quiet before timing the next one on the same cores.
            time.sleep(IDLE_SECONDS)
            start = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - start) / epochs)
    return best


def measure(name, repeat):
    """Seconds per epoch of each implementation on workload `name`: the best of `repeat`, the
    implementations taking turns so that a noisy moment of the machine hits them all alike."""
    sizes, batch, dtype, N = WORKLOADS[name]
    X, Y = workload_data(sizes, dtype, N)
    order = np.random.default_rng(1).permutation(N)
    net = bpfast.Network(sizes, dtype=dtype, seed=0)

    def copy_of_parameters():
        return [w.copy() for w in net.weights], [b.copy() for b in net.biases]

    # fit checks its input once per call (finiteness of X is a pass over the data): timed over
    # FIT_EPOCHS epochs, as a training run of many epochs would see it.
    runs = {"bpfast": (lambda: net.fit(X, Y, epochs=FIT_EPOCHS, batch_size=batch,
                                       learning_rate=LEARNING_RATE, seed=0), FIT_EPOCHS)}
    weights, biases = copy_of_parameters()
    runs["numpy matrix batch"] = (lambda: numpy_matrix_epoch(weights, biases, X, Y, batch,
                                                             LEARNING_RATE, order), 1)
    for peer_name, make in (("PyTorch eager", make_torch_epoch),
                            ("scikit-learn MLP", make_sklearn_epoch)):
        epoch = make()
        if epoch is not None:
            peer_weights, peer_biases = copy_of_parameters()
            runs[peer_name] = (lambda epoch=epoch, w=peer_weights, b=peer_biases:
                               epoch(w, b, X, Y, batch, LEARNING_RATE, order), 1)
    best = best_in_turns(runs, repeat)

    # The per-example loop takes seconds per epoch: time a slice of one and scale it up.
    weights, biases = copy_of_parameters()
    part = order[: int(N * SLOW_FRACTION) // batch * batch]
    start = time.perf_counter()
    numpy_per_example_epoch(weights, biases, X, Y, batch, LEARNING_RATE, part)
    best["numpy per-example loop"] = (time.perf_counter() - start) * N / len(part)

    rows = ["bpfast", "numpy per-example loop", "numpy matrix batch", "PyTorch eager",
            "scikit-learn MLP"]
    return sizes, batch, dtype, N, {row: best.get(row) for row in rows}


#: The variants of the second table: (label, Network keywords, fit keywords).
VARIANTS = [
    ("plain (sigmoid, quadratic, SGD)", {}, {}),
    ("momentum=0.9", {}, dict(momentum=0.9)),
    ("momentum=0.9, nesterov", {}, dict(momentum=0.9, nesterov=True)),
    ("adam", {}, dict(optimizer="adam", learning_rate=1e-3)),
    ("l2=1e-4", {}, dict(l2=1e-4)),
    ("l2=1e-4, momentum=0.9", {}, dict(l2=1e-4, momentum=0.9)),
    ("tanh hidden and output", dict(activation="tanh"), {}),
    ("relu hidden, identity output", dict(activation="relu", output_activation="identity"), {}),
    ("relu, softmax, cross-entropy", dict(activation="relu", output_activation="softmax",
                                          cost="cross_entropy"), {}),
]


def measure_variants(name, repeat):
    """Seconds per epoch of bpfast's fit with each of VARIANTS, taking turns (`best_in_turns`)."""
    sizes, batch, dtype, N = WORKLOADS[name]
    X, Y = workload_data(sizes, dtype, N)
    runs = {}
    for label, network_keywords, fit_keywords in VARIANTS:
        net = bpfast.Network(sizes, dtype=dtype, seed=0, **network_keywords)
        keywords = {"learning_rate": LEARNING_RATE, **fit_keywords}
        runs[label] = (lambda net=net, keywords=keywords: net.fit(
            X, Y, epochs=FIT_EPOCHS, batch_size=batch, seed=0, **keywords), FIT_EPOCHS)
    return sizes, batch, dtype, N, best_in_turns(runs, repeat)


def print_variants(names, repeat):
    header = f"{'workload':<8} {'bpfast variant':<32} {'s/epoch':>8} {'vs plain':>9}"
    print("\n" + header)
    print("-" * len(header))
    for name in names:
        sizes, batch, dtype, N, best = measure_variants(name, repeat)
        plain = best[VARIANTS[0][0]]
        label = name
        for variant, seconds in best.items():
            print(f"{label:<8} {variant:<32} {seconds:8.3f} {seconds / plain:8.2f}x")
            label = ""
        print(f"{'':<8} ({sizes}, batch {batch}, {dtype}, {N} examples)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=["W1"], choices=list(WORKLOADS),
                        help="workloads of the second table (none: skip it)")
    args = parser.parse_args()

    versions = [f"numpy {np.__version__}"]
    for module in ("torch", "sklearn"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} missing")
    print(f"bpfast {bpfast.__version__} training benchmark, {datetime.date.today()}, "
          f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores; {', '.join(versions)}")
    ceilings = {dtype: gemm_gflops(dtype) for dtype in ("float64", "float32")}
    print(f"numpy GEMM ceiling: {ceilings['float64']:.1f} GFLOP/s float64, "
          f"{ceilings['float32']:.1f} GFLOP/s float32\n")

    header = (f"{'workload':<8} {'implementation':<24} {'s/epoch':>8} {'GFLOP/s':>8} "
              f"{'% ceil':>7} {'bpfast is':>10}")
    print(header)
    print("-" * len(header))
    for name in args.workloads:
        sizes, batch, dtype, N, results = measure(name, args.repeat)
        flops = model_flops(sizes, N)
        ours = results["bpfast"]
        label = f"{name}"
        for implementation, seconds in results.items():
            if seconds is None:
                print(f"{label:<8} {implementation:<24} {'skipped (not installed)':>36}")
            else:
                gflops = flops / seconds / 1e9
                ratio = "" if implementation == "bpfast" else f"{seconds / ours:9.1f}x"
                print(f"{label:<8} {implementation:<24} {seconds:8.3f} {gflops:8.1f} "
                      f"{100 * gflops / ceilings[dtype]:6.1f}% {ratio:>10}")
            label = ""
        print(f"{'':<8} ({sizes}, batch {batch}, {dtype}, {N} examples)")
    if args.variants:
        # Differences of a few percent: more rounds than the peers need (a round is seconds).
        print_variants(args.variants, max(args.repeat, 7))


if __name__ == "__main__":
    main()
