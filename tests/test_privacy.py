"""Private steps (DP-SGD's noise): ḡ = (1/B)(Σ_k c_k ∂C_k/∂θ + ν R ξ). The noise is read back
exactly: a step of plain SGD with η = 1 from the same θ, with and without it, differs by
ν R ξ / B — so ξ itself is checked, coordinate by coordinate."""
import numpy as np
import pytest
from scipy import stats

import bpfast

from conftest import make_problem

R, NU, B = 0.5, 1.3, 40


def drawn_noise(seed=0, n_threads=2, sizes=(30, 60, 10)):
    """ξ of one private step (plain SGD, η = 1, one mini-batch of B): θ after it, against θ
    after the same step without noise, times −B / (ν R)."""
    net, X, Y = make_problem(list(sizes), B, seed=1)
    clipped = bpfast.Network.from_params(net.weights, net.biases)
    keywords = dict(epochs=1, batch_size=B, learning_rate=1.0, seed=seed, n_threads=n_threads,
                    clip_norm=R)
    clipped.fit(X, Y, **keywords)
    net.fit(X, Y, noise_multiplier=NU, **keywords)
    return (net.parameters_vector() - clipped.parameters_vector()) * (-B / (NU * R))


def test_the_noise_is_standard_normal_on_every_coordinate():
    """P = 2,470 draws: their mean within 5/√P of 0 and their deviation within 5/√(2P) of 1
    (each false alarm under 1e-6), and a Kolmogorov–Smirnov test against N(0, 1) at 1e-6."""
    xi = drawn_noise()
    P = xi.size
    assert P == 30 * 60 + 60 + 60 * 10 + 10
    assert abs(xi.mean()) < 5 / np.sqrt(P)
    assert abs(xi.std() - 1) < 5 / np.sqrt(2 * P)
    assert stats.kstest(xi, "norm").pvalue > 1e-6
    # Neighbours (the two halves of each Box–Muller pair) are uncorrelated.
    assert abs(np.corrcoef(xi[0:-1:2], xi[1::2])[0, 1]) < 5 / np.sqrt(P / 2)


def test_the_noise_is_the_same_for_any_number_of_threads_and_reproducible():
    one, two, three = (drawn_noise(n_threads=n) for n in (1, 2, 3))
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-9)
    np.testing.assert_allclose(three, one, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(drawn_noise(seed=0), drawn_noise(seed=0))
    other = drawn_noise(seed=1)
    assert abs(np.corrcoef(other, one)[0, 1]) < 5 / np.sqrt(one.size)


def test_each_step_draws_new_noise_and_private_fit_is_bitwise_reproducible():
    net, X, Y = make_problem([20, 16, 4], 200, seed=2)
    runs = []
    for n_threads in (1, 2, 2):
        copy = bpfast.Network.from_params(net.weights, net.biases)
        copy.fit(X, Y, epochs=2, batch_size=50, learning_rate=0.1, seed=3, n_threads=n_threads,
                 clip_norm=0.3, noise_multiplier=1.1, momentum=0.5)
        runs.append(copy.parameters_vector())
    np.testing.assert_array_equal(runs[1], runs[2])
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-12)
    # Steps 1 and 2 of one epoch: noise of a step drawn afresh, not repeated.
    net, X, Y = make_problem([20, 16, 4], 2 * B, seed=2)
    deltas = []
    for steps in (1, 2):
        plain = bpfast.Network.from_params(net.weights, net.biases)
        noisy = bpfast.Network.from_params(net.weights, net.biases)
        for model, noise in ((plain, None), (noisy, NU)):
            model.fit(X[:steps * B], Y[:steps * B], epochs=1, batch_size=B, learning_rate=1e-9,
                      seed=0, clip_norm=R, noise_multiplier=noise)
        deltas.append(noisy.parameters_vector() - plain.parameters_vector())
    first, second = deltas[0], deltas[1] - deltas[0]
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.2


def test_no_noise_is_clipping_alone():
    net, X, Y = make_problem([12, 10, 4], 200, seed=5)
    other = bpfast.Network.from_params(net.weights, net.biases)
    net.fit(X, Y, epochs=2, batch_size=20, learning_rate=0.3, seed=4, clip_norm=0.2,
            noise_multiplier=0.0)
    other.fit(X, Y, epochs=2, batch_size=20, learning_rate=0.3, seed=4, clip_norm=0.2)
    np.testing.assert_array_equal(net.parameters_vector(), other.parameters_vector())


@pytest.mark.parametrize("keywords,error,message", [
    (dict(noise_multiplier=1.0), ValueError, "noise_multiplier needs a clip_norm"),
    (dict(noise_multiplier=-1.0, clip_norm=1.0), ValueError,
     "noise_multiplier must be a finite number ≥ 0"),
    (dict(noise_multiplier=float("nan"), clip_norm=1.0), ValueError,
     "noise_multiplier must be a finite number ≥ 0"),
    (dict(noise_multiplier="1", clip_norm=1.0), TypeError, "noise_multiplier must be a real"),
    (dict(noise_multiplier=1.0, clip_norm=1.0, sampling="poisson"), ValueError,
     r"sampling must be one of \['shuffle'\]"),
])
def test_bad_privacy_arguments_are_refused_before_training(keywords, error, message):
    net, X, Y = make_problem([4, 3, 2], 10)
    before = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.fit(X, Y, epochs=1, batch_size=5, learning_rate=0.1, **keywords)
    np.testing.assert_array_equal(net.parameters_vector(), before)
