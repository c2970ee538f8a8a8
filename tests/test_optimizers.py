"""fit's other steps — momentum, Nesterov, Adam, L2 — and the other activations and costs in
training, each checked against a plain numpy re-implementation of the same steps."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import relative_difference

from conftest import make_problem

F = {"sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
     "tanh": (np.tanh, lambda z, a: 1 - a * a),
     "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
     "identity": (lambda z: z, lambda z, a: np.ones_like(z))}


def numpy_fit(net, X, Y, *, epochs, batch_size, learning_rate, seed, optimizer="sgd",
              momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999), eps=1e-8):
    """fit's steps written out in numpy: same orders, same mini-batches, same rules."""
    theta = [p.astype(np.float64) for wb in zip(net.weights, net.biases) for p in wb]
    v = [np.zeros_like(p) for p in theta]
    r = [np.zeros_like(p) for p in theta]
    acts, cost, L = net.activations, net.cost_function, net.L
    rng = np.random.default_rng(seed)
    N, t = X.shape[0], 0
    for _ in range(epochs):
        order = rng.permutation(N)
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
    return np.concatenate([p.ravel() for p in theta])


RULES = [
    dict(),
    dict(l2=0.05),
    dict(momentum=0.9),
    dict(momentum=0.8, l2=0.01),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.5, nesterov=True, l2=0.02),
    dict(optimizer="adam", learning_rate=0.01),
    dict(optimizer="adam", learning_rate=0.003, betas=(0.8, 0.99), eps=1e-6, l2=0.01),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [5, 70])             # microkernels, and BLAS
@pytest.mark.parametrize("rule", RULES, ids=lambda rule: ",".join(
    f"{key}={value}" for key, value in rule.items()) or "sgd")
def test_every_rule_matches_numpy(rule, batch_size, n_threads):
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.4)
    net, X, Y = make_problem([7, 9, 6, 3], 163, seed=8)
    expected = numpy_fit(net, X, Y, epochs=3, batch_size=batch_size,
                         learning_rate=learning_rate, seed=2, **rule)
    net.fit(X, Y, epochs=3, batch_size=batch_size, learning_rate=learning_rate, seed=2,
            n_threads=n_threads, **rule)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("hidden,output,cost", [
    ("tanh", "softmax", "cross_entropy"),
    ("relu", "softmax", "quadratic"),
    ("relu", "sigmoid", "cross_entropy"),
    ("identity", "tanh", "quadratic"),
    ("sigmoid", "softmax", "cross_entropy"),
])
@pytest.mark.parametrize("sizes", [[6, 8, 5], [6, 5]])      # L = 1: softmax rows feed w^(1)
def test_activations_and_costs_train_as_numpy_does(hidden, output, cost, sizes, n_threads):
    rng = np.random.default_rng(1)
    net = bpfast.Network(sizes, activation=hidden, output_activation=output, cost=cost, seed=3)
    X = rng.normal(size=(101, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 101)]
    for batch_size in (7, 64):
        expected = numpy_fit(net, X, Y, epochs=2, batch_size=batch_size, learning_rate=0.3,
                             seed=4, momentum=0.5)
        net_copy = bpfast.Network.from_params(net.weights, net.biases, activation=hidden,
                                              output_activation=output, cost=cost)
        net_copy.fit(X, Y, epochs=2, batch_size=batch_size, learning_rate=0.3, seed=4,
                     momentum=0.5, n_threads=n_threads)
        assert relative_difference(net_copy.parameters_vector(), expected) <= 1e-12


def test_float32_keeps_float32_with_adam():
    net, X, Y = make_problem([6, 5, 3], 40, "float32", seed=3)
    expected = numpy_fit(net, X, Y, epochs=2, batch_size=4, learning_rate=0.01, seed=1,
                         optimizer="adam")
    net.fit(X, Y, epochs=2, batch_size=4, learning_rate=0.01, seed=1, optimizer="adam")
    assert net.parameters_vector().dtype == np.float32
    assert relative_difference(net.parameters_vector(), expected) <= 1e-4


@pytest.mark.parametrize("choices", [dict(), dict(activation="relu", output_activation="softmax",
                                                 cost="cross_entropy")])
@pytest.mark.parametrize("rule", [dict(momentum=0.9), dict(optimizer="adam")])
@pytest.mark.parametrize("batch_size", [7, 70])
def test_rules_are_reproducible_with_threads(rule, choices, batch_size):
    runs = []
    for _ in range(2):
        net, X, Y = make_problem([20, 16, 16, 4], 200, seed=4)
        net = bpfast.Network.from_params(net.weights, net.biases, **choices)
        net.fit(X, Y, epochs=2, batch_size=batch_size, learning_rate=0.01, seed=11, n_threads=2,
                **rule)
        runs.append(net.parameters_vector())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_l2_shrinks_the_weights_and_leaves_biases_free():
    net, X, Y = make_problem([5, 6, 2], 50, seed=2)
    plain = bpfast.Network.from_params(net.weights, net.biases)
    net.fit(X, Y, epochs=20, batch_size=10, learning_rate=0.5, seed=0, l2=0.5)
    plain.fit(X, Y, epochs=20, batch_size=10, learning_rate=0.5, seed=0)
    norm = lambda n: sum(np.square(w).sum() for w in n.weights)   # noqa: E731
    assert norm(net) < 0.5 * norm(plain)


def test_divergence_with_momentum_keeps_the_last_finite_step():
    net = bpfast.Network([5, 6, 2], activation="relu", output_activation="identity", seed=2)
    X = np.random.default_rng(0).normal(size=(50, 5)) * 1e3
    Y = np.ones((50, 2))
    with pytest.raises(bpfast.TrainingDiverged) as caught:
        net.fit(X, Y, epochs=30, batch_size=5, learning_rate=1e150, seed=0, momentum=0.9,
                n_threads=2)
    assert caught.value.mini_batch >= 1
    assert np.isfinite(net.parameters_vector()).all()


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(optimizer="rmsprop"), ValueError, r"optimizer must be one of \['sgd', 'adam'\]"),
    (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\), got 1.0"),
    (dict(momentum=-0.1), ValueError, "momentum must be a finite number ≥ 0"),
    (dict(momentum="0.9"), TypeError, "momentum must be a real number"),
    (dict(nesterov=True), ValueError, "nesterov=True needs a momentum > 0"),
    (dict(nesterov=1, momentum=0.9), TypeError, "nesterov must be True or False"),
    (dict(optimizer="adam", momentum=0.9), ValueError, "Adam's own momentum is betas"),
    (dict(l2=-1.0), ValueError, "l2 must be a finite number ≥ 0"),
    (dict(l2=np.inf), ValueError, "l2 must be a finite number"),
    (dict(betas=0.9), TypeError, r"betas must be a pair"),
    (dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (dict(eps=0.0), ValueError, "eps must be a finite number > 0"),
])
def test_bad_optimizer_arguments_are_refused_before_training(kwargs, error, message):
    net, X, Y = make_problem([4, 3, 2], 10, seed=0)
    before = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.fit(X, Y, epochs=1, batch_size=2, learning_rate=0.1, **kwargs)
    np.testing.assert_array_equal(net.parameters_vector(), before)


@pytest.mark.parametrize("rule", RULES[1:], ids=lambda rule: ",".join(
    f"{key}={value}" for key, value in rule.items()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_matches_the_pure_python_reference(rule, dtype):
    """The reference's `train_epoch` (loops over j and k, `reference.step`) against fit, with
    other activations and costs too."""
    from bpfast import reference
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.4)
    rng = np.random.default_rng(3)
    net = bpfast.Network([4, 5, 3], activation="tanh", output_activation="softmax",
                         cost="cross_entropy", dtype=dtype, seed=5)
    X = rng.normal(size=(11, 4))
    Y = np.eye(3)[rng.integers(0, 3, 11)]
    weights = [w.astype(float).tolist() for w in net.weights]
    biases = [b.astype(float).tolist() for b in net.biases]
    orders = np.random.default_rng(9)
    state, costs = {}, []
    for _ in range(2):
        costs.append(reference.train_epoch(weights, biases, X.tolist(), Y.tolist(),
                                           orders.permutation(11).tolist(), 4, learning_rate,
                                           state, net.activations, net.cost_function, **rule))
    history = net.fit(X, Y, epochs=2, batch_size=4, learning_rate=learning_rate, seed=9, **rule)
    expected = np.concatenate([np.concatenate([np.ravel(w), b]) for w, b in zip(weights, biases)])
    tolerance = {"float64": 1e-12, "float32": 1e-4}[dtype]
    assert relative_difference(net.parameters_vector(), expected) <= tolerance
    np.testing.assert_allclose(history.cost, costs, rtol=tolerance)
