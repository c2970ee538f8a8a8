"""Shared helpers: random problems, and the tolerances every comparison uses."""
import numpy as np
import pytest

import bpfast
from bpfast import costs

DTYPES = ["float64", "float32"]

#: Largest relative difference of the kernels against the pure-Python reference (issue #2).
REFERENCE_TOLERANCE = {"float64": 1e-12, "float32": 1e-4}


def make_problem(sizes, n, dtype="float64", seed=0, **choices):
    """A seeded network (``choices``: its activations and cost) and a batch of n examples:
    inputs ~ N(0, 1), targets in [0, 1] (rows that sum to 1 for a softmax output)."""
    rng = np.random.default_rng(seed + 1000)
    net = bpfast.Network(sizes, dtype=dtype, seed=seed, **choices)
    X = rng.normal(size=(n, sizes[0]))
    Y = rng.random((n, sizes[-1]))
    if net.output_activation == "softmax":
        Y /= Y.sum(axis=1, keepdims=True)
    return net, X, Y


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


# The activations and their slopes f'(z) (from z and a), for `numpy_fit`.
F = {"sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
     "tanh": (np.tanh, lambda z, a: 1 - a * a),
     "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
     "identity": (lambda z: z, lambda z, a: np.ones_like(z))}


def numpy_fit(net, X, Y, *, epochs, batch_size, learning_rate, seed, optimizer="sgd",
              momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999), eps=1e-8):
    """fit's steps written out in numpy: same orders, same mini-batches, same rules. Returns θ
    after training, flat in the slides' order, and the mean cost of each epoch."""
    theta = [p.astype(np.float64) for wb in zip(net.weights, net.biases) for p in wb]
    v = [np.zeros_like(p) for p in theta]
    r = [np.zeros_like(p) for p in theta]
    acts, cost, L = net.activations, net.cost_function, net.L
    rng = np.random.default_rng(seed)
    N, t = X.shape[0], 0
    epoch_costs = []
    for _ in range(epochs):
        order = rng.permutation(N)
        total = 0.0
        for start in range(0, N, batch_size):
            rows = order[start:start + batch_size]
            y = Y[rows]
            a, z = [X[rows]], []
            for l in range(L):
                z.append(a[-1] @ theta[2 * l].T + theta[2 * l + 1])
                if acts[l] == "softmax":
                    e = np.exp(z[-1] - z[-1].max(axis=1, keepdims=True))
                    a.append(e / e.sum(axis=1, keepdims=True))
                else:
                    a.append(F[acts[l]][0](z[-1]))
            total += costs.per_example(cost, acts[-1], z[-1], a[-1], y).sum()
            if cost == "cross_entropy":
                delta = a[-1] * y.sum(axis=1, keepdims=True) - y if acts[-1] == "softmax" \
                    else a[-1] - y
            elif acts[-1] == "softmax":
                g = 2 * (a[-1] - y)
                delta = a[-1] * (g - (a[-1] * g).sum(axis=1, keepdims=True))
            else:
                delta = F[acts[-1]][1](z[-1], a[-1]) * 2 * (a[-1] - y)
            grads = [None] * (2 * L)
            for l in range(L - 1, -1, -1):
                grads[2 * l] = delta.T @ a[l] / len(rows) + l2 * theta[2 * l]
                grads[2 * l + 1] = delta.mean(axis=0)
                if l > 0:
                    delta = (delta @ theta[2 * l]) * F[acts[l - 1]][1](z[l - 1], a[l])
            t += 1
            for p, g, v_p, r_p in zip(theta, grads, v, r):
                if optimizer == "adam":
                    v_p[...] = betas[0] * v_p + (1 - betas[0]) * g
                    r_p[...] = betas[1] * r_p + (1 - betas[1]) * g * g
                    p -= learning_rate * (v_p / (1 - betas[0] ** t)) / (
                        np.sqrt(r_p / (1 - betas[1] ** t)) + eps)
                elif momentum:
                    v_p[...] = momentum * v_p + g
                    p -= learning_rate * (g + momentum * v_p if nesterov else v_p)
                else:
                    p -= learning_rate * g
        epoch_costs.append(total / N)
    return np.concatenate([p.ravel() for p in theta]), epoch_costs
