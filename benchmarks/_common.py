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


#: The side of the square matrix product whose throughput is the ceiling.
GEMM_SIDE = 2000
#: Its FLOPs: 2 per multiply-add.
GEMM_FLOPS = 2 * GEMM_SIDE**3


def gemm_call(dtype):
    """numpy's large matrix product as a call to time, into a buffer kept (a fresh product of
    32 MB pays a page fault every 4 KiB): the ceiling's own call, which a benchmark times in
    the same turns as the calls it holds to it — on a machine whose speed drifts within a run,
    a ceiling timed once at the start read 146 GFLOP/s in float32 where the calls after it
    reached 158, and 213 in another run."""
    rng = np.random.default_rng(0)
    a = rng.random((GEMM_SIDE, GEMM_SIDE)).astype(dtype)
    b = rng.random((GEMM_SIDE, GEMM_SIDE)).astype(dtype)
    c = np.empty((GEMM_SIDE, GEMM_SIDE), dtype)
    return lambda: np.matmul(a, b, out=c)


def gemm_rate(seconds):
    """The ceiling in GFLOP/s, from the time its product took (`gemm_call`)."""
    return GEMM_FLOPS / seconds / 1e9


def gemm_gflops(dtype):
    """The throughput numpy's matrix product reaches here: the ceiling for model FLOPs."""
    return gemm_rate(best_time(gemm_call(dtype), repeat=7))


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
