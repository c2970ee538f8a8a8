"""Numbers at the extremes: huge, tiny and saturating values give correct finite results, or a
clear FloatingPointError — never a warning, never a silent NaN."""
import warnings

import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import reference_gradient, relative_difference

from conftest import make_problem


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e-310, 1e30])
def test_inputs_of_extreme_magnitude_agree_with_the_reference(scale):
    # Every input positive and the weights of one sign: z may overflow to inf, never to
    # inf − inf, so the exact answer is finite (σ' = 0 where a unit saturates).
    net, X, Y = make_problem([5, 4, 3], 6, seed=2)
    net.weights = [np.abs(w) for w in net.weights]
    X = np.abs(X) * scale
    g = net.gradient(X, Y).vector()
    assert np.isfinite(g).all()
    assert relative_difference(g, reference_gradient(net, X, Y)) <= 1e-12
    assert np.isfinite(net.cost(X, Y))


def test_saturated_units_give_exact_zero_slopes():
    net = bpfast.Network.from_params([np.array([[1.0], [-1.0]])], [np.array([0.0, 0.0])])
    X = np.array([[1000.0], [-1000.0], [800.0]])
    g = net.per_example_gradients(X, np.zeros((3, 2)))
    # σ(±1000) is exactly 0 or 1 and σ'(±1000) exactly 0: no gradient flows, none is NaN.
    np.testing.assert_array_equal(g.vector(), np.zeros((3, 4)))
    np.testing.assert_array_equal(net.predict(X), [[1, 0], [0, 1], [1, 0]])


def test_an_overflow_to_inf_minus_inf_is_a_clear_error():
    # z^(1) = 4e308 overflows to inf in both units, kept by the identity, then
    # z^(2) = inf − inf, in whatever order a product adds: no number is right, nothing returned.
    nan_net = bpfast.Network.from_params(
        [np.array([[1e308], [1e308]]), np.array([[1.0, -1.0]])], [np.zeros(2), np.zeros(1)],
        activation="identity")
    X = np.array([[4.0]])
    with pytest.raises(FloatingPointError, match="the forward pass .* overflowed"):
        nan_net.forward(X)
    with pytest.raises(FloatingPointError, match="the gradient is not finite"):
        nan_net.gradient(X, [[0.5]])
    X = np.array([[2.0, 2.0]])
    # z = inf alone is a saturated unit: σ = 1, σ' = 0, and every result is finite and exact.
    huge = bpfast.Network.from_params([np.array([[1e308, 1e308]])], [np.array([0.0])])
    np.testing.assert_array_equal(huge.predict(X), [[1.0]])
    np.testing.assert_array_equal(huge.gradient(X, [[0.5]]).vector(), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("n", [32, 64])    # the mean by neurons (n Σ n_(l−1) ≤ 2P), by examples
@pytest.mark.parametrize("dtype, big", [(np.float64, 1e210), (np.float32, 1e27)])
def test_a_mean_gradient_that_overflows_is_a_clear_error_whichever_part_wrote_it(n, dtype, big):
    """The mean's finiteness is read back by each part from what it wrote — its neurons' rows, or
    its stretch of θ: an infinity in any of the 16 neurons' rows, on one or two threads."""
    X = np.zeros((n, 2), dtype)
    X[n - 3] = [big, 1.0]                   # z_j = √big, δ_j = 2√big, ∂C/∂w_j0 = 2 big^1.5 / n
    Y = np.zeros((n, 16), dtype)
    for j in range(16):
        w = np.zeros((16, 2))
        w[j, 0] = 1.0 / big**0.5
        net = bpfast.Network.from_params([w], [np.zeros(16)], output_activation="identity",
                                         dtype=dtype)
        for threads in (1, 2):
            with pytest.raises(FloatingPointError, match="the gradient is not finite"):
                net.gradient(X, Y, n_threads=threads)
    X[n - 3] = [big**0.5, 1.0]              # every value finite: no error
    assert np.isfinite(net.gradient(X, Y, n_threads=2).vector()).all()


def test_a_per_example_product_that_overflows_is_a_clear_error():
    """δ_k and a_k finite, their product not: the kernels' bound on |δ_kj a_ki| sees it (they do
    not read the n × P values back; the P of the mean they do), whatever the precision and
    wherever the row falls."""
    for dtype, big in ((np.float64, 1e210), (np.float32, 1e27)):
        net = bpfast.Network.from_params([np.array([[1.0 / big**0.5, 0.0]])], [np.array([0.0])],
                                         output_activation="identity", dtype=dtype)
        X = np.zeros((5, 2), dtype)
        X[3] = [big, 1.0]                   # z = √big, δ = 2√big, ∂C/∂w_0 = 2 big^1.5 = inf
        Y = np.zeros((5, 1), dtype)
        assert np.isfinite(net.predict(X)).all()
        for threads in (1, 2):
            with pytest.raises(FloatingPointError, match="the gradient is not finite"):
                net.per_example_gradients(X, Y, n_threads=threads)
            with pytest.raises(FloatingPointError, match="the gradient is not finite"):
                net.gradient(X, Y, n_threads=threads)       # its mean: 2 big^1.5 / 5, inf too
        X[3] = [big**0.5, 1.0]              # z ≈ 1: large rows, finite, as the formula says
        rows = net.per_example_gradients(X, Y).vector()
        delta = rows[3, 2]
        np.testing.assert_array_equal(rows[3], np.array([delta * X[3, 0], delta, delta], dtype))


def test_targets_too_large_are_a_clear_error():
    net, X, Y = make_problem([3, 2], 4)
    Y[0, 0] = 1e200
    with pytest.raises(FloatingPointError, match="the cost is not finite"):
        net.cost(X, Y)
    with pytest.raises(FloatingPointError, match="overflowed"):
        net.evaluate(X, Y)


def test_targets_so_large_that_the_training_cost_overflows_stop_fit_clearly():
    """Every step finite, the cost not (found by the fuzzer: targets of 9e153, whose square
    overflows): a FloatingPointError naming the epoch, never a TrainingDiverged of mini-batch 0."""
    net = bpfast.Network([3, 4, 2], seed=0)
    before = net.parameters_vector()
    X, Y = np.zeros((4, 3)), np.full((4, 2), 9.48e153)
    with pytest.raises(FloatingPointError, match="the training cost of epoch 1 is not finite.*"
                                                 "keeps the parameters it had before that "
                                                 "epoch") as caught:
        net.fit(X, Y, epochs=2, batch_size=2, learning_rate=0.1)
    np.testing.assert_array_equal(net.parameters_vector(), before)
    assert len(caught.value.history) == 0


def test_an_output_that_overflows_in_one_part_alone_is_a_clear_error():
    """predict's parts copy their own rows of a^(L) and say whether those are finite: an output
    that overflows in one row of the last part only (z = x_0 + x_1 = 2·10^308 through an
    identity output) is refused on two threads as on one, wherever the row falls."""
    net = bpfast.Network.from_params([np.array([[1.0, 1.0]])], [np.array([0.0])],
                                     output_activation="identity")
    X = np.zeros((64, 2))
    for row in (63, 40, 0):
        X[:] = 0.0
        X[row] = [1e308, 1e308]
        for threads in (1, 2):
            with pytest.raises(FloatingPointError, match=r"the forward pass \(a\^\(l\)\) is not"):
                net.predict(X, n_threads=threads)
        X[row] = [1e307, 1e307]
        np.testing.assert_array_equal(net.predict(X, n_threads=2)[row], [2e307])
