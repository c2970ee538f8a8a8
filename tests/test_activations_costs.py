"""Activations and costs beyond the slides: every allowed combination, in both dtypes, against the
pure-Python reference and central finite differences; the combinations that make no sense are
refused."""
import itertools
import warnings

import numpy as np
import pytest

import bpfast
from bpfast import reference
from bpfast.activations import ACTIVATIONS, ELEMENTWISE, activate, softmax
from bpfast.costs import COSTS, OUTPUTS_FOR
from bpfast.crosscheck import REFERENCE_TOLERANCES, reference_gradient, relative_difference

from conftest import DTYPES, REFERENCE_TOLERANCE, make_problem, numpy_fit

COMBINATIONS = [(hidden, output, cost)
                for hidden, output, cost in itertools.product(ELEMENTWISE, ACTIVATIONS, COSTS)
                if output in OUTPUTS_FOR[cost]]


def make_net(sizes, hidden, output, cost, dtype, n, seed=0):
    return make_problem(sizes, n, dtype, seed, activation=hidden, output_activation=output,
                        cost=cost)


def nested(net):
    return [w.tolist() for w in net.weights], [b.tolist() for b in net.biases]


def test_every_combination_is_counted():
    # 4 hidden activations × (5 outputs with the quadratic cost + 2 with cross-entropy)
    assert len(COMBINATIONS) == 28


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden,output,cost", COMBINATIONS)
def test_kernels_match_reference_and_finite_differences(hidden, output, cost, dtype):
    net, X, Y = make_net([5, 7, 6, 4], hidden, output, cost, dtype, n=9)
    report = bpfast.check(net, X, Y, fd_params=None)
    to_reference = REFERENCE_TOLERANCES[dtype]
    assert report.kernels_vs_reference <= to_reference, str(report)
    assert report.cost_kernels_vs_reference <= to_reference, str(report)
    # Entry by entry, each within its bound (crosscheck.FD_TOLERANCES), none skipped unseen.
    assert report.kernels_vs_finite_differences <= 1, str(report)
    assert report.reference_vs_finite_differences <= 1, str(report)
    assert len(report.checked) + len(report.skipped_at_kinks) == net.n_params
    # Not trivially small: the gradient is there to be compared.
    assert np.abs(net.gradient(X, Y).vector()).max() > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden,output,cost", COMBINATIONS)
def test_per_example_gradients_and_one_layer_networks(hidden, output, cost, dtype):
    """Per-example rows against reference.backprop; and L = 1, where the output layer is all
    there is (softmax's rows then feed link 1 directly)."""
    for sizes in ([4, 6, 3], [4, 3]):
        net, X, Y = make_net(sizes, hidden, output, cost, dtype, n=5, seed=2)
        rows = net.per_example_gradients(X, Y).vector()
        for k in range(5):
            dw, db = reference.backprop(*nested(net), X[k].tolist(), Y[k].tolist(),
                                        net.activations, cost)
            expected = np.concatenate([np.concatenate([np.ravel(w), b]) for w, b in zip(dw, db)])
            assert relative_difference(rows[k], expected) <= REFERENCE_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden,output,cost", COMBINATIONS)
def test_batches_of_64_and_more_take_the_blas_path(hidden, output, cost, dtype):
    net, X, Y = make_net([12, 10, 5], hidden, output, cost, dtype, n=70, seed=3)
    report = bpfast.check(net, X, Y, fd_params=40)
    assert report.kernels_vs_reference <= REFERENCE_TOLERANCES[dtype], str(report)
    assert report.cost_kernels_vs_reference <= REFERENCE_TOLERANCES[dtype], str(report)
    assert report.kernels_vs_finite_differences <= 1, str(report)
    assert report.reference_vs_finite_differences <= 1, str(report)
    assert len(report.checked) >= 30, str(report)


def test_the_output_error_is_a_minus_y_for_the_canonical_pairs():
    """δ^(L) = a − y for sigmoid + cross-entropy and for softmax + cross-entropy: the gradient of
    b^(L) of one example is exactly that."""
    for output in ("sigmoid", "softmax"):
        net, X, Y = make_net([3, 4, 3], "tanh", output, "cross_entropy", "float64", n=1)
        g = net.backprop(X[0], Y[0])
        a_L = net.predict(X[0])
        np.testing.assert_allclose(g.b[-1], a_L - Y[0], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("kwargs,message", [
    (dict(sizes=[4, 5, 3], activation="softmax"), "belongs to the output layer only"),
    (dict(sizes=[4, 5, 1], output_activation="softmax"), "softmax needs at least two outputs"),
    (dict(sizes=[4, 1], activation="softmax"), "softmax needs at least two outputs"),
    (dict(sizes=[4, 5, 3], output_activation="tanh", cost="cross_entropy"),
     r"cost='cross_entropy' needs output_activation in \['sigmoid', 'softmax'\], got 'tanh'"),
    (dict(sizes=[4, 5, 3], activation="relu", cost="cross_entropy"),
     "needs output_activation in"),
    (dict(sizes=[4, 5, 3], output_activation="Softmax"), "output_activation must be one of"),
])
def test_combinations_that_make_no_sense_are_refused(kwargs, message):
    sizes = kwargs.pop("sizes")
    with pytest.raises(ValueError, match=message):
        bpfast.Network(sizes, **kwargs)


def test_softmax_alone_is_a_one_layer_network():
    net = bpfast.Network([4, 3], activation="softmax")
    assert net.activations == ("softmax",)


def test_defaults_are_the_slides_network():
    net = bpfast.Network([3, 4, 2])
    assert net.activations == ("sigmoid", "sigmoid") and net.cost_function == "quadratic"
    assert repr(net) == ("Network(sizes=[3, 4, 2], activation='sigmoid', cost='quadratic', "
                         "dtype='float64')")
    net = bpfast.Network([3, 4, 2], activation="relu", output_activation="softmax",
                         cost="cross_entropy")
    assert "output_activation='softmax'" in repr(net)


# --- the activations themselves -------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_numpy(dtype):
    z = np.concatenate([np.linspace(-30, 30, 2001), [0.0, 1e-12, -1e-12, 1e-300, 5e-324]])
    z = z.astype(dtype)
    ulp = np.finfo(dtype).eps
    exact = {
        "sigmoid": (1 / (1 + np.exp(-z.astype(np.float64))),
                    # σ' = e^(−|z|) / (1 + e^(−|z|))², exact where σ saturates
                    np.exp(-np.abs(z.astype(np.float64)))
                    / (1 + np.exp(-np.abs(z.astype(np.float64)))) ** 2),
        "tanh": (np.tanh(z.astype(np.float64)), 1 / np.cosh(z.astype(np.float64)) ** 2),
        "relu": (np.maximum(z, 0), (z > 0).astype(dtype)),
        "identity": (z, np.ones_like(z)),
    }
    for name, (a_exact, slope_exact) in exact.items():
        a, slope = activate(z, name)
        assert a.dtype == slope.dtype == np.dtype(dtype)
        # Relative to each value: small |z| and saturated slopes must keep their precision.
        np.testing.assert_allclose(a, a_exact, rtol=4 * ulp, atol=0)
        np.testing.assert_allclose(slope, slope_exact, rtol=8 * ulp, atol=0)


def test_activations_do_not_overflow():
    z = np.array([-1e300, -1000.0, 1000.0, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, slope = activate(z, "tanh")
        np.testing.assert_array_equal(a, [-1, -1, 1, 1])
        np.testing.assert_array_equal(slope, 0)
        p = softmax(np.array([[1000.0, 0.0, -1000.0], [-1e300, 0.0, 0.0]]))
    np.testing.assert_array_equal(p, [[1, 0, 0], [0, 0.5, 0.5]])


@pytest.mark.parametrize("hidden,output,cost", [("relu", "identity", "quadratic"),
                                                ("tanh", "softmax", "cross_entropy"),
                                                ("identity", "sigmoid", "cross_entropy")])
def test_divergence_is_caught_with_every_activation(hidden, output, cost):
    """A NaN or infinity must propagate through f, softmax and the costs, never be clipped
    away: it is how fit finds a step that diverged."""
    net, X, Y = make_net([6, 8, 3], hidden, output, cost, "float64", n=40, seed=4)
    start = bpfast.Network.from_params(net.weights, net.biases, activation=hidden,
                                       output_activation=output, cost=cost)
    X *= 1e3
    keywords = dict(batch_size=4, learning_rate=1e200, seed=0)
    with pytest.raises(bpfast.TrainingDiverged) as caught:
        net.fit(X, Y, epochs=50, **keywords)
    # The network holds the last finite step: θ after the steps that completed, by numpy.
    done = (caught.value.epoch - 1) * 10 + caught.value.mini_batch - 1
    assert done >= 1
    expected, _ = numpy_fit(start, X, Y, epochs=caught.value.epoch, steps=done, **keywords)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12


def test_softmax_rows_are_distributions():
    z = np.random.default_rng(0).normal(scale=5, size=(6, 4))
    p = softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-15)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(softmax(z[0]), p[0], rtol=0)


def test_activate_refuses_softmax_and_unknown_names():
    with pytest.raises(ValueError, match="softmax works on whole rows"):
        activate([0.0], "softmax")
    with pytest.raises(ValueError, match="activation must be one of"):
        activate([0.0], "elu")


def test_cross_entropy_needs_targets_in_0_1():
    net = bpfast.Network([3, 4, 2], output_activation="softmax", cost="cross_entropy", seed=0)
    X = np.zeros((4, 3))
    Y = np.array([[0, 1], [1, 0], [-1, 1], [0, 1]])
    message = r"Y must hold probabilities in \[0, 1\] .* it ranges over \[-1, 1\]"
    for call in (net.gradient, net.cost, net.evaluate, net.per_example_gradients):
        with pytest.raises(ValueError, match=message):
            call(X, Y)
    before = net.parameters_vector()
    with pytest.raises(ValueError, match=r"Y_val must hold probabilities"):
        net.fit(X, [0, 1, 1, 0], epochs=1, batch_size=2, learning_rate=0.1,
                validation_data=(X, np.full((4, 2), 1.5)))
    np.testing.assert_array_equal(net.parameters_vector(), before)
    # Labels and the quadratic cost are not concerned.
    net.fit(X, [0, 1, 1, 0], epochs=1, batch_size=2, learning_rate=0.1)
    assert not np.array_equal(net.parameters_vector(), before)
    quadratic = bpfast.Network([3, 2], seed=1)
    g = quadratic.gradient(X, np.full((4, 2), 5.0)).vector()
    assert relative_difference(g, reference_gradient(quadratic, X, np.full((4, 2), 5.0))) <= 1e-12
