"""θ after a fixed fit, hashed: the before/after check of a change that must not alter `fit`'s bits.

    python scripts/theta_hashes.py > before.txt     (then, after the change, > after.txt; diff)

One line per case: W1–W4's shapes (fewer examples than the benchmark, so that the whole grid
runs in seconds), both dtypes, every update rule, n_threads 1 and 2 passed explicitly, and the
default (None). The hash is SHA-256 of θ's bytes, its first 16 hex digits.
"""
import hashlib

import numpy as np

import bpfast

WORKLOADS = {
    # name: (sizes, batch size, examples), as benchmarks/bench_training.py but fewer examples
    "W1": ([784, 30, 10], 10, 2_000),
    "W2": ([784, 16, 16, 10], 32, 2_000),
    "W3": ([784, 512, 512, 10], 128, 1_024),
    "W4": ([64, 30, 10], 10, 1_797),
}
RULES = {
    "sgd": dict(learning_rate=0.5),
    "sgd+l2": dict(learning_rate=0.5, l2=1e-3),
    "momentum": dict(learning_rate=0.1, momentum=0.9),
    "nesterov": dict(learning_rate=0.1, momentum=0.9, nesterov=True, l2=1e-4),
    "adam": dict(learning_rate=1e-3, optimizer="adam", l2=1e-4),
}
NETWORKS = {
    "sigmoid": {},
    "relu/softmax/ce": dict(activation="relu", output_activation="softmax",
                            cost="cross_entropy"),
}


def data(sizes, N, dtype):
    if sizes[0] == 64:
        X, labels = bpfast.datasets.load_digits()
        X = bpfast.datasets.scale(X, 0, 16)
        return X.astype(dtype), bpfast.datasets.one_hot(labels, 10).astype(dtype)
    rng = np.random.default_rng(0)
    X = rng.random((N, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], N)]
    return X, Y


def main():
    for name, (sizes, batch, N) in WORKLOADS.items():
        for dtype in ("float64", "float32"):
            X, Y = data(sizes, N, dtype)
            for net_name, choices in NETWORKS.items():
                for rule_name, rule in RULES.items():
                    for n_threads in (1, 2, None):
                        net = bpfast.Network(sizes, dtype=dtype, seed=0, **choices)
                        net.fit(X, Y, epochs=2, batch_size=batch, seed=0, n_threads=n_threads,
                                **rule)
                        digest = hashlib.sha256(net.parameters_vector().tobytes()).hexdigest()
                        print(f"{name} {dtype} {net_name} {rule_name} n_threads={n_threads} "
                              f"{digest[:16]}", flush=True)


if __name__ == "__main__":
    main()
