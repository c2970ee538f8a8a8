"""What every benchmark shares: timing, the GEMM ceiling, the FLOP model, the numpy peers, and
the closing count of targets met."""
import time

import numpy as np


def best_time(function, repeat=5, min_seconds=0.2):
    """The best of `repeat` timings of function(), each averaged over enough calls to last."""
    function()                                            # warm up caches and lazy imports
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds / repeat or calls >= 1 << 20:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def gemm_gflops(dtype, n=2000):
    """The throughput numpy's matrix product reaches here: the ceiling for model FLOPs."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    return 2 * n**3 / best_time(lambda: a @ b, repeat=7) / 1e9


def model_flops(sizes, n_examples):
    """6 · P · N: a forward pass (2PN) and a backward pass (4PN) over N examples."""
    P = sum(n_out * (n_in + 1) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    return 6 * P * n_examples


def numpy_sigmoid_forward(weights, biases, X):
    """a^(0) = X, …, a^(L) of a sigmoid network on a batch, each σ computed in place on its z
    (the strongest plain-numpy form: one product and four in-place passes a layer)."""
    activations = [X]
    for w, b in zip(weights, biases):
        a = activations[-1] @ w.T
        a += b
        np.negative(a, out=a)
        with np.errstate(over="ignore"):
            np.exp(a, out=a)
        a += 1
        np.reciprocal(a, out=a)
        activations.append(a)
    return activations


def numpy_sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def numpy_matrix_gradient(weights, biases, X, Y):
    """The textbook matrix form over a batch: ∂C/∂w^(l) = (1/n) Δ^(l)ᵀ A^(l−1), in plain numpy."""
    activations = [X]
    for w, b in zip(weights, biases):
        activations.append(numpy_sigmoid(activations[-1] @ w.T + b))
    n = X.shape[0]
    a = activations[-1]
    delta = a * (1 - a) * 2 * (a - Y)
    grad_w, grad_b = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        grad_w[l] = delta.T @ activations[l] / n
        grad_b[l] = delta.mean(axis=0)
        if l > 0:
            a = activations[l]
            delta = (delta @ weights[l]) * a * (1 - a)
    return grad_w, grad_b


def report_targets(title, counted, misses):
    """The run's last lines: how many of the `counted` targets it met, then each one it missed."""
    print(f"\n{title}: {counted - len(misses)} of {counted} met in this run"
          + ("." if not misses else "; not met:"))
    for miss in misses:
        print(f"  {miss}")
