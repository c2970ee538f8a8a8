"""bpfast.dask on a LocalCluster beside one process on the same cores, in one run.

    pip install ".[dask]" && python benchmarks/bench_dask.py [--rows 1000000] [--repeat 3]

A [784, 100, 10] float32 network and --rows random rows (inputs in [0, 1), 10 classes), made
here and chunked by 50,000 rows. For each configuration — a cluster of 1 single-threaded worker
process against one process with n_threads=1, and of 2 such workers against n_threads=2 — the
data are persisted on the workers, then timed (best of --repeat): one `cost_and_gradient` over
every row, and L-BFGS iterations per second (`minimize`, 4 iterations). The fixed cost of a
round trip is a `cost_and_gradient` on 2 chunks of 10 rows; the share of time computing is what
is left of a call once a round trip is taken out. GFLOP/s count 6·P·N per evaluation.
"""
import argparse
import datetime
import os
import platform
import time

import numpy as np

import bpfast

try:
    import dask
    import dask.array as da
    import distributed
except ImportError:
    dask = None

SIZES = [784, 100, 10]
CHUNK = 50_000


def best(call, net, repeat):
    """The best time of call(), θ nudged before each (a cluster would otherwise hand back the
    sums it computed for the same θ and data: the keys are pure)."""
    theta = net.parameters_vector()
    times = []
    for _ in range(repeat + 1):                   # the first warms up: imports, workspaces
        theta[0] += 1e-6
        net.set_parameters_vector(theta)
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def lbfgs_rate(minimize):
    """(iterations, evaluations) per second of an L-BFGS run: the iterations take as many
    evaluations as their line searches ask, which rounding can change."""
    start = time.perf_counter()
    result = minimize()
    seconds = time.perf_counter() - start
    return result.nit / seconds, result.nfev / seconds


def copy_of(net):
    return bpfast.Network.from_params(net.weights, net.biases, activation="relu",
                                      output_activation="softmax", cost="cross_entropy")


def measure(workers, net, X, labels, repeat):
    """(cores, one process's seconds, the cluster's, a round trip's, L-BFGS it/s of each)."""
    import bpfast.dask as bd
    local = best(lambda: net.cost_and_gradient(X, labels, n_threads=workers), net, repeat)
    local_rate = lbfgs_rate(lambda: copy_of(net).minimize(X, labels, max_iter=4,
                                                          n_threads=workers))
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit=0)
    with distributed.Client(cluster):
        # Made on the workers (the same law as X, other draws): the data never pass through
        # the client, as on a real cluster.
        state = da.random.RandomState(1)
        Xd = state.random_sample((len(X), SIZES[0]), chunks=(CHUNK, SIZES[0]))
        Xd = Xd.astype(np.float32).persist()
        yd = state.randint(0, SIZES[-1], len(X), chunks=CHUNK).persist()
        distributed.wait([Xd, yd])
        tiny_X, tiny_y = Xd[:20].rechunk((10, SIZES[0])).persist(), yd[:20].rechunk(10).persist()
        trip = best(lambda: bd.cost_and_gradient(net, tiny_X, tiny_y), net, repeat * 3)
        remote = best(lambda: bd.cost_and_gradient(net, Xd, yd), net, repeat)
        remote_rate = lbfgs_rate(lambda: bd.minimize(copy_of(net), Xd, yd, max_iter=4))
    cluster.close()
    return workers, local, remote, trip, local_rate, remote_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if dask is None:
        print("dask is not installed (pip install \".[dask]\"): nothing to measure")
        return
    print(f"bpfast {bpfast.__version__}, dask {dask.__version__}, distributed "
          f"{distributed.__version__}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {datetime.date.today()}; {args.rows:,} rows of {SIZES} "
          f"float32 in chunks of {CHUNK:,}; best of {args.repeat}")
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, SIZES[0]), dtype=np.float32)
    labels = rng.integers(0, SIZES[-1], args.rows)
    net = bpfast.Network(SIZES, activation="relu", output_activation="softmax",
                         cost="cross_entropy", dtype="float32", seed=0)
    gflop = 6 * net.n_params * args.rows / 1e9
    rows = [measure(workers, net, X, labels, args.repeat) for workers in (1, 2)]
    print(f"\n{'cores':>5} {'one process':>12} {'cluster':>9} {'cluster/one':>12} "
          f"{'GFLOP/s one':>12} {'cluster':>8} {'round trip':>11} {'computing':>10} "
          f"{'L-BFGS it/s (eval/s) one':>25} {'cluster':>16}")
    for workers, local, remote, trip, local_rate, remote_rate in rows:
        computing = 1 - trip / remote
        print(f"{workers:>5} {local:11.3f}s {remote:8.3f}s {local / remote:11.0%} "
              f"{gflop / local:12.1f} {gflop / remote:8.1f} {trip * 1e3:9.1f}ms "
              f"{computing:10.1%} {local_rate[0]:14.3f} ({local_rate[1]:.3f}) "
              f"{remote_rate[0]:7.3f} ({remote_rate[1]:.3f})")
    print("\n(cost_and_gradient seconds per call over every row; cluster/one: the cluster's "
          "throughput as a share of one process's on the same cores)")


if __name__ == "__main__":
    main()
