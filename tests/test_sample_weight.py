"""sample_weight: per-example weights in the kernels (each δ_k^(L) and C_k scaled), with
scikit-learn's meaning — a mini-batch's cost is Σ_k w_k C_k / Σ_k w_k — so that an integer
weight counts as that many copies of the example in full-batch calls."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import relative_difference

CHOICES = [dict(), dict(activation="tanh", output_activation="softmax", cost="cross_entropy"),
           dict(activation="relu", output_activation="sigmoid", cost="cross_entropy")]
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def problem(n=70, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 6))
    Y = np.eye(3)[rng.integers(0, 3, n)]
    return X, Y, rng.integers(0, 4, n).astype(float)


@pytest.mark.parametrize("choices", CHOICES, ids=["sigmoid", "softmax", "sigmoid-ce"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_an_integer_weight_is_that_many_copies_of_the_example(choices, n_threads, dtype):
    X, Y, w = problem()
    net = bpfast.Network([6, 5, 3], dtype=dtype, seed=1, **choices)
    rows = np.repeat(np.arange(len(X)), w.astype(int))
    C, g = net.cost_and_gradient(X, Y, sample_weight=w, n_threads=n_threads)
    C_copies, g_copies = net.cost_and_gradient(X[rows], Y[rows], n_threads=n_threads)
    assert C == pytest.approx(C_copies, rel=TOLERANCE[dtype])
    assert relative_difference(g.vector(), g_copies.vector()) <= TOLERANCE[dtype]
    gradient = net.gradient(X, Y, sample_weight=w, n_threads=n_threads)
    np.testing.assert_array_equal(gradient.vector(), g.vector())
    # Scaling every weight changes nothing; equal weights are no weights.
    scaled = net.cost_and_gradient(X, Y, sample_weight=3.5 * w, n_threads=n_threads)[1]
    assert relative_difference(scaled.vector(), g.vector()) <= TOLERANCE[dtype]
    ones = net.cost_and_gradient(X, Y, sample_weight=np.ones(len(X)), n_threads=n_threads)
    plain = net.gradient(X, Y, n_threads=n_threads)
    np.testing.assert_array_equal(ones[1].vector(), plain.vector())


@pytest.mark.parametrize("rule", [dict(), dict(momentum=0.9, l2=0.01),
                                  dict(optimizer="adam", learning_rate=0.01)],
                         ids=["sgd", "momentum+l2", "adam"])
def test_fit_steps_on_each_mini_batchs_weighted_mean(rule, split):
    """Ordered mini-batches (the last one shorter): fit with weights against the same steps
    taken by hand from `gradient(sample_weight=)` — the weighted mean of each mini-batch — and
    `bpfast.reference.step`'s rules; by neurons and by examples."""
    from bpfast import reference
    X, Y, w = problem(n=150)
    w[:10] = 0                                     # a step may hold weights of 0, not all
    rule = dict(rule)
    eta = rule.pop("learning_rate", 0.5)
    net = bpfast.Network([6, 5, 3], seed=1)
    by_hand = bpfast.Network([6, 5, 3], seed=1)
    history = net.fit(X, Y, epochs=2, batch_size=64, learning_rate=eta, sampling="ordered",
                      sample_weight=w, **rule)
    weights = [wl.tolist() for wl in by_hand.weights]
    biases = [b.tolist() for b in by_hand.biases]
    state = {}
    for _ in range(2):
        for start in range(0, 150, 64):
            rows = slice(start, start + 64)
            copy = bpfast.Network.from_params([np.array(v) for v in weights],
                                              [np.array(v) for v in biases])
            g = copy.gradient(X[rows], Y[rows], sample_weight=w[rows])
            reference.step(weights, biases, [x.tolist() for x in g.w],
                           [x.tolist() for x in g.b], eta, state, **rule)
    expected = np.concatenate([np.concatenate([np.ravel(a), b]) for a, b in zip(weights, biases)])
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12
    assert len(history.cost) == 2


def test_fit_with_equal_weights_is_fit_without_them():
    X, Y, _ = problem(n=150)
    plain, weighted = bpfast.Network([6, 5, 3], seed=1), bpfast.Network([6, 5, 3], seed=1)
    a = plain.fit(X, Y, epochs=2, batch_size=32, learning_rate=0.5, seed=3)
    b = weighted.fit(X, Y, epochs=2, batch_size=32, learning_rate=0.5, seed=3,
                     sample_weight=np.full(150, 2.0))
    np.testing.assert_array_equal(weighted.parameters_vector(), plain.parameters_vector())
    np.testing.assert_allclose(b.cost, a.cost, rtol=1e-13)


def test_the_history_cost_is_the_weighted_mean_of_one_full_batch_step():
    X, Y, w = problem()
    net = bpfast.Network([6, 5, 3], seed=1)
    C = net.cost_and_gradient(X, Y, sample_weight=w)[0]
    history = net.fit(X, Y, epochs=1, batch_size=len(X), learning_rate=0.1, sample_weight=w)
    assert history.cost[0] == pytest.approx(C, rel=1e-13)


def test_full_batch_minimize_with_weight_two_is_the_row_repeated():
    """The same objective, value and gradient, at every θ: L-BFGS takes the same iterations."""
    X, Y, w = problem()
    rows = np.repeat(np.arange(len(X)), w.astype(int))
    weighted, repeated = bpfast.Network([6, 5, 3], seed=1), bpfast.Network([6, 5, 3], seed=1)
    theta = weighted.parameters_vector()
    f, g = weighted.objective(X, Y, sample_weight=w, l2=1e-3)(theta)
    f_rows, g_rows = repeated.objective(X[rows], Y[rows], l2=1e-3)(theta)
    assert f == pytest.approx(f_rows, rel=1e-14)
    assert relative_difference(g, g_rows) <= 1e-13
    a = weighted.minimize(X, Y, sample_weight=w, l2=1e-3, max_iter=30)
    b = repeated.minimize(X[rows], Y[rows], l2=1e-3, max_iter=30)
    assert a.nit == b.nit == 30 and a.fun == pytest.approx(b.fun, rel=1e-10)
    assert relative_difference(a.x, b.x) <= 1e-8


@pytest.mark.parametrize("value,message", [
    (-np.ones(70), "sample_weight must be ≥ 0 everywhere"),
    (np.zeros(70), "sample_weight must not be zero everywhere"),
    (np.ones(69), r"sample_weight must hold one number per example \(70\)"),
    (np.full(70, np.nan), "Input sample_weight contains NaN"),
    (["a"] * 70, "sample_weight must hold real numbers"),
])
def test_bad_sample_weights_are_refused_by_name(value, message):
    X, Y, _ = problem()
    net = bpfast.Network([6, 5, 3], seed=1)
    before = net.parameters_vector()
    for call in (lambda: net.gradient(X, Y, sample_weight=value),
                 lambda: net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.1,
                                 sample_weight=value),
                 lambda: net.minimize(X, Y, sample_weight=value)):
        with pytest.raises((ValueError, TypeError), match=message):
            call()
    np.testing.assert_array_equal(net.parameters_vector(), before)


def test_sample_weight_is_refused_with_private_training():
    X, Y, w = problem()
    net = bpfast.Network([6, 5, 3], seed=1)
    with pytest.raises(ValueError, match="sample_weight is not for private training"):
        net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.1, clip_norm=1.0,
                noise_multiplier=1.0, sample_weight=w)
