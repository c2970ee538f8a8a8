"""Training by mini-batch gradient descent: whole epochs inside the kernels.

For each epoch: a seeded random order of the examples, then for each mini-batch of
``batch_size`` examples in that order (the last one may be shorter), one step

    w ← w − η ∂C/∂w,    b ← b − η ∂C/∂b,    C = (1/m) Σ_k C_k over the mini-batch's m examples,

as NOTATION.md defines gradient descent. Python is only visited between epochs.
"""
import contextlib
import functools
import numbers
import os
import threading
import time

import numpy as np
from threadpoolctl import ThreadpoolController

from . import _kernels
from ._buffers import aligned_empty
from ._validation import as_pair, check_positive_real


class TrainingDiverged(ArithmeticError):
    """A step of `fit` made parameters non-finite; the network keeps those of the step before.

    ``epoch`` and ``mini_batch`` (both counted from 1) name that step; ``history`` holds the
    completed epochs.
    """

    def __init__(self, message, epoch, history, mini_batch):
        super().__init__(message)
        self.epoch = epoch
        self.mini_batch = mini_batch
        self.history = history


class History:
    """What `fit` measured, one entry per epoch.

    Attributes
    ----------
    cost : list of float
        The mean training cost of the epoch, (1/N) Σ_k C_k, each C_k evaluated with the
        parameters in force when its mini-batch was visited (the figure PyTorch and Keras
        training loops report; it costs nothing extra, being a by-product of the forward pass).
    seconds : list of float
        Wall-clock time of the epoch.
    validation_cost, validation_accuracy : lists of float
        With `fit`'s validation_data: the mean cost and the accuracy on it after each epoch
        (accuracy only for one-hot targets or labels; empty lists otherwise).
    best_epoch : int or None
        With early_stopping: the epoch whose parameters the network keeps.
    """

    def __init__(self):
        self.cost = []
        self.seconds = []
        self.validation_cost = []
        self.validation_accuracy = []
        self.best_epoch = None

    @property
    def epochs(self):
        return len(self.cost)

    def _record(self, cost, seconds):
        self.cost.append(cost)
        self.seconds.append(seconds)

    def __len__(self):
        return self.epochs

    def __repr__(self):
        last = f", last cost {self.cost[-1]:.6g}" if self.cost else ""
        return f"History({self.epochs} epochs{last}, {sum(self.seconds):.3g} s)"


def _check_count(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value}.")
    return int(value)


def available_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                      # not on Linux
        return os.cpu_count() or 1


#: A thread's share of a mini-batch should be at least this many FLOPs (6·P per example):
#: below it, the barriers between the phases of a step cost more than the work they split.
#: Measured with benchmarks/bench_training.py: W4 ([64, 30, 10], batch 10, 1.4e5 FLOPs) is no
#: faster on two threads, W1 ([784, 30, 10], batch 10, 1.4e6 FLOPs) is.
MIN_FLOPS_PER_THREAD = 250_000


def default_threads(net, batch):
    """All cores, but no more threads than the mini-batch has work for."""
    flops = 6 * net.n_params * batch
    return max(1, min(available_cores(), flops // MIN_FLOPS_PER_THREAD))


@functools.lru_cache(maxsize=None)
def _blas_controller():
    """Finds the loaded BLAS libraries once (scipy's, which the kernels call, among them)."""
    return ThreadpoolController()


def _single_threaded_blas():
    """While the kernels share a mini-batch between their own threads, BLAS must not add its own:
    each thread calls BLAS on its share of the neurons, and two levels of threads on the same
    cores only wait for each other. Without OpenMP, BLAS's threads are the only parallelism."""
    if not _kernels.openmp:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


def _as_validation_data(net, validation_data):
    try:
        X_val, Y_val = validation_data
    except (TypeError, ValueError):
        raise TypeError("validation_data must be a pair (X_val, Y_val).") from None
    return as_pair(X_val, Y_val, net.sizes, net.dtype, ndims=(2,), names=("X_val", "Y_val"))


def fit(net, X, Y, *, epochs, batch_size, learning_rate, seed=None, n_threads=None,
        validation_data=None, early_stopping=None, callback=None):
    """Train ``net`` in place by mini-batch gradient descent; see `Network.fit`."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}.")
    X, Y = as_pair(X, Y, net.sizes, net.dtype, ndims=(2,))
    if validation_data is not None:
        X_val, Y_val = _as_validation_data(net, validation_data)
    if early_stopping is not None:
        early_stopping = _check_count(early_stopping, "early_stopping", 1)
        if validation_data is None:
            raise ValueError("early_stopping needs validation_data to watch.")
    epochs = _check_count(epochs, "epochs", 0)
    batch_size = _check_count(batch_size, "batch_size", 1)
    eta = check_positive_real(learning_rate, "learning_rate")
    N = X.shape[0]
    batch = min(batch_size, N)
    if n_threads is None:
        n_threads = default_threads(net, batch)
    n_threads = _check_count(n_threads, "n_threads", 1)

    rng = np.random.default_rng(seed)
    dtype = net.dtype
    width = sum(net.sizes[1:])
    buffers = dict(
        Xb=aligned_empty(2 * batch * net.sizes[0], dtype),
        Yb=aligned_empty(2 * batch * net.sizes[-1], dtype),
        A=aligned_empty(batch * width, dtype),
        S=aligned_empty(batch * width, dtype),
        T=aligned_empty(batch * max(net.sizes[1:-1], default=1), dtype),
    )
    theta = net._theta
    history = History()
    best_cost, best_theta, waited = np.inf, None, 0
    main_thread = threading.current_thread() is threading.main_thread()
    with _single_threaded_blas():
        for epoch in range(epochs):
            order = rng.permutation(N).astype(np.intp, copy=False)
            before = theta.copy()
            start = time.perf_counter()
            try:
                sum_C = _kernels.train_epoch(
                    theta, net._sizes_array, X, Y, order, batch, dtype.type(eta),
                    n_threads=n_threads, catch_sigint=main_thread, **buffers)
            except KeyboardInterrupt as interrupt:
                # θ holds the parameters after the last completed step; the history is that of
                # the completed epochs.
                interrupt.history = history
                raise
            seconds = time.perf_counter() - start
            if not (np.isfinite(sum_C) and np.isfinite(theta).all()):
                # Replay the epoch from its start, checking θ after every step: the replay is
                # bitwise the same computation, so it finds the step that diverged and keeps
                # the parameters of the step before — at no cost to epochs that go well.
                theta[...] = before
                _, bad_batch = _kernels.train_epoch(
                    theta, net._sizes_array, X, Y, order, batch, dtype.type(eta),
                    n_threads=n_threads, backup=np.empty_like(theta), **buffers)
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1}, mini-batch {bad_batch}: its step "
                    f"made parameters non-finite; the network keeps those of the last finite "
                    f"step. Try a smaller learning rate than {eta!r}.",
                    epoch + 1, history, bad_batch)
            history._record(float(sum_C) / N, seconds)
            figures = {"cost": history.cost[-1], "seconds": seconds}
            if validation_data is not None:
                cost, accuracy = net._cost_and_accuracy(X_val, Y_val)
                history.validation_cost.append(cost)
                figures["validation_cost"] = cost
                if accuracy is not None:
                    history.validation_accuracy.append(accuracy)
                    figures["validation_accuracy"] = accuracy
            if callback is not None and callback(epoch + 1, figures) is False:
                break
            if early_stopping is not None:
                if figures["validation_cost"] < best_cost:
                    best_cost, best_theta, waited = figures["validation_cost"], theta.copy(), 0
                    history.best_epoch = epoch + 1
                else:
                    waited += 1
                    if waited >= early_stopping:
                        break
    if best_theta is not None:
        theta[...] = best_theta
    return history
