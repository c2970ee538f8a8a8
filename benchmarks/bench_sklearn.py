"""bpfast's scikit-learn estimators beside scikit-learn's own MLPs, in one run.

    pip install ".[bench]" && python benchmarks/bench_sklearn.py [--repeat 3]

The same estimator settings on both sides (hidden layer, solver, epochs or iterations, batch
size), tol=0 and n_iter_no_change=max_iter so that neither stops early: seconds per `fit` (best
of --repeat, the two taking turns, turn r with random_state=r on both sides — the same initial
weights), the speed-up, and the held-out accuracy of each, averaged over the turns (one seed's
accuracy moves by several points on the random task, whose 10 epochs leave it unconverged).
Data: the bundled digits (1,437 training and 360 test images, scaled to [0, 1]) and a random
10-class task of 784 features (scikit-learn's make_classification, 20,000 rows, a fifth held
out) with a hidden layer of 100. Then a grid search: 6 candidates × 3 folds of
`solver="sgd"`, 20 epochs of mini-batches of 10 on the digits — scikit-learn's with n_jobs=1,
bpfast's with n_jobs=1, and bpfast's with n_jobs=2 on joblib's threading backend (the kernels
release the GIL) and on its default process backend.
"""
import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np

import bpfast

try:
    import sklearn
    from joblib import parallel_backend
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.neural_network import MLPClassifier
except ImportError:
    sklearn = None

from bpfast.sklearn import BPClassifier

#: (name, data, estimator settings).
CASES = [
    ("digits, sgd, batch 10, 30 epochs", "digits",
     dict(hidden_layer_sizes=(30,), solver="sgd", batch_size=10, max_iter=30)),
    ("digits, adam, 200 epochs", "digits", dict(hidden_layer_sizes=(30,), solver="adam",
                                                 max_iter=200)),
    ("digits, lbfgs, 200 iterations", "digits", dict(hidden_layer_sizes=(30,), solver="lbfgs",
                                                      max_iter=200)),
    ("random 784→100→10, sgd, batch 200, 10 epochs", "random",
     dict(hidden_layer_sizes=(100,), solver="sgd", max_iter=10, learning_rate_init=0.01)),
    ("random 784→100→10, adam, batch 200, 10 epochs", "random",
     dict(hidden_layer_sizes=(100,), solver="adam", max_iter=10)),
    ("random 784→100→10, lbfgs, 50 iterations", "random",
     dict(hidden_layer_sizes=(100,), solver="lbfgs", max_iter=50)),
]
GRID = {"alpha": [1e-4, 1e-3, 1e-2], "learning_rate_init": [0.01, 0.1]}
GRID_SETTINGS = dict(hidden_layer_sizes=(30,), solver="sgd", batch_size=10, max_iter=20,
                     random_state=0, tol=0.0, n_iter_no_change=20)


def data(name):
    if name == "digits":
        X, labels = bpfast.datasets.load_digits()
        X = bpfast.datasets.scale(X, 0, 16)
        return train_test_split(X, labels, test_size=0.2, random_state=0)
    X, y = make_classification(n_samples=20_000, n_features=784, n_informative=40,
                               n_redundant=0, n_classes=10, n_clusters_per_class=1,
                               class_sep=2.0, random_state=0)
    X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    return train_test_split(X, y, test_size=0.2, random_state=0)


def fit_seconds(model, X, y):
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if sklearn is None:
        print("scikit-learn is not installed (pip install \".[bench]\"): nothing to compare")
        return
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"bpfast {bpfast.__version__}, scikit-learn {sklearn.__version__}, numpy "
          f"{np.__version__}; {platform.processor() or platform.machine()}, {os.cpu_count()} "
          f"cores; {datetime.date.today()}; best of {args.repeat}")
    print(f"\n{'fit':<48} {'scikit-learn':>13} {'bpfast':>9} {'speed-up':>9} "
          f"{'accuracy sk':>12} {'bpfast':>7}  (accuracy: mean over the turns' seeds)")
    cache = {}
    for name, which, settings in CASES:
        if which not in cache:
            cache[which] = data(which)
        X_train, X_test, y_train, y_test = cache[which]
        common = dict(tol=0.0, n_iter_no_change=settings["max_iter"], **settings)
        theirs, ours, their_scores, our_scores = float("inf"), float("inf"), [], []
        for seed in range(args.repeat):            # taking turns, a seed per turn
            model = MLPClassifier(random_state=seed, **common)
            theirs = min(theirs, fit_seconds(model, X_train, y_train))
            their_scores.append(model.score(X_test, y_test))
            model = BPClassifier(random_state=seed, **common)
            ours = min(ours, fit_seconds(model, X_train, y_train))
            our_scores.append(model.score(X_test, y_test))
        print(f"{name:<48} {theirs:12.3f}s {ours:8.3f}s {theirs / ours:8.1f}× "
              f"{np.mean(their_scores):12.4f} {np.mean(our_scores):7.4f}")

    X_train, _, y_train, _ = cache["digits"]
    print(f"\nGridSearchCV, {len(GRID['alpha']) * len(GRID['learning_rate_init'])} candidates "
          "× 3 folds, sgd, 20 epochs of mini-batches of 10, on the digits")
    runs = {
        "scikit-learn, n_jobs=1": (MLPClassifier, 1, None),
        "bpfast, n_jobs=1": (BPClassifier, 1, None),
        "bpfast, n_jobs=2, threading backend": (BPClassifier, 2, "threading"),
        "bpfast, n_jobs=2, process backend": (BPClassifier, 2, "loky"),
    }
    best = {label: float("inf") for label in runs}
    for _ in range(args.repeat):
        for label, (estimator, n_jobs, backend) in runs.items():
            search = GridSearchCV(estimator(**GRID_SETTINGS), GRID, cv=3, n_jobs=n_jobs)
            start = time.perf_counter()
            if backend is None:
                search.fit(X_train, y_train)
            else:
                with parallel_backend(backend, n_jobs=n_jobs):
                    search.fit(X_train, y_train)
            best[label] = min(best[label], time.perf_counter() - start)
    reference = best["scikit-learn, n_jobs=1"]
    for label, seconds in best.items():
        print(f"  {label:<40} {seconds:8.3f}s   {reference / seconds:6.1f}× scikit-learn's")
    print(f"  bpfast's n_jobs=2 (threads) over its n_jobs=1: "
          f"{best['bpfast, n_jobs=1'] / best['bpfast, n_jobs=2, threading backend']:.2f}×")


if __name__ == "__main__":
    main()
