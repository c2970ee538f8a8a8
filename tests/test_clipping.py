"""Per-example clipping in fit (clip_norm): each example's gradient scaled to norm at most R
before the mini-batch's mean — checked against numpy forming every per-example gradient whole."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import relative_difference

from conftest import RULES, assert_fit_refused, fit_beside_reference, make_problem, numpy_fit


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [5, 70])
@pytest.mark.parametrize("rule", RULES, ids=lambda rule: ",".join(
    f"{key}={value}" for key, value in rule.items()) or "sgd")
def test_clipped_fit_matches_numpy_for_every_rule(rule, batch_size, n_threads):
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.4)
    net, X, Y = make_problem([7, 9, 6, 3], 163, seed=8)
    # R below most examples' gradient norms (0.02–0.6 here): most steps clip most examples.
    norms = np.linalg.norm(net.per_example_gradients(X, Y).vector(), axis=1)
    assert np.mean(norms > 0.1) > 0.5
    expected, costs = numpy_fit(net, X, Y, epochs=3, batch_size=batch_size,
                                learning_rate=learning_rate, seed=2, clip_norm=0.1, **rule)
    history = net.fit(X, Y, epochs=3, batch_size=batch_size, learning_rate=learning_rate,
                      seed=2, n_threads=n_threads, clip_norm=0.1, **rule)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12
    np.testing.assert_allclose(history.cost, costs, rtol=1e-12)


@pytest.mark.parametrize("choices", [dict(activation="relu", output_activation="softmax",
                                          cost="cross_entropy"),
                                     dict(activation="tanh", output_activation="identity")])
@pytest.mark.parametrize("sizes", [[6, 5], [6, 8, 7, 4]])
def test_clipping_with_every_kind_of_layer_and_in_float32(sizes, choices):
    for dtype, tolerance in (("float64", 1e-12), ("float32", 1e-4)):
        net, X, Y = make_problem(sizes, 90, dtype=dtype, seed=3, **choices)
        expected, _ = numpy_fit(net, X, Y, epochs=2, batch_size=16, learning_rate=0.2, seed=1,
                                clip_norm=0.05, dtype=dtype)
        net.fit(X, Y, epochs=2, batch_size=16, learning_rate=0.2, seed=1, n_threads=2,
                clip_norm=0.05)
        assert relative_difference(net.parameters_vector(), expected) <= tolerance


def test_a_clip_norm_above_every_gradient_changes_nothing_but_the_split():
    """R above every ‖∂C_k/∂θ‖: the steps are plain SGD's, up to the order of the sums (clipped
    steps always share the examples, plain ones here the neurons)."""
    net, X, Y = make_problem([12, 10, 4], 200, seed=5)
    plain = bpfast.Network.from_params(net.weights, net.biases)
    net.fit(X, Y, epochs=2, batch_size=20, learning_rate=0.3, seed=4, clip_norm=1e6)
    plain.fit(X, Y, epochs=2, batch_size=20, learning_rate=0.3, seed=4)
    assert relative_difference(net.parameters_vector(), plain.parameters_vector()) <= 1e-12


def test_clipping_bounds_what_one_example_can_move():
    """One example whose error is enormous: unclipped, its step throws θ far; clipped to R, a
    step of one example moves θ by exactly η R."""
    net, X, Y = make_problem([5, 4, 2], 1, seed=2, activation="identity",
                             output_activation="identity")
    Y[...] = 1e3
    start = net.parameters_vector()
    net.fit(X, Y, epochs=1, batch_size=1, learning_rate=0.1, seed=0, clip_norm=0.5)
    assert np.linalg.norm(net.parameters_vector() - start) == pytest.approx(0.1 * 0.5, rel=1e-12)


def test_clipped_fit_is_reproducible_and_the_same_in_every_team_mode(monkeypatch):
    from bpfast import training
    results = []
    for mode in (1, 2, 3):
        monkeypatch.setattr(training, "_FORCED_MODE", mode)
        net, X, Y = make_problem([20, 12, 5], 300, seed=6)
        net.fit(X, Y, epochs=2, batch_size=64, learning_rate=0.3, seed=1, n_threads=3,
                clip_norm=0.2, momentum=0.5)
        results.append(net.parameters_vector())
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("value,error,message", [
    (0.0, ValueError, "clip_norm must be a finite number > 0, got 0.0"),
    (-1.0, ValueError, "clip_norm must be a finite number > 0"),
    (float("inf"), ValueError, "clip_norm must be a finite number > 0"),
    (float("nan"), ValueError, "clip_norm must be a finite number > 0"),
    ("1", TypeError, "clip_norm must be a real number"),
])
def test_bad_clip_norm_is_refused_before_training(value, error, message):
    assert_fit_refused(dict(clip_norm=value), error, message)


@pytest.mark.parametrize("rule", [dict(), dict(momentum=0.9, l2=0.01),
                                  dict(optimizer="adam", learning_rate=0.01)],
                         ids=["sgd", "momentum+l2", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clipped_fit_matches_the_pure_python_reference(rule, dtype):
    """The reference's `train_epoch(clip_norm=)`: each example's gradient from `backprop`, its
    norm summed square by square, then scaled — against fit; unclipped fit is far from it."""
    theta, expected, _, _ = fit_beside_reference(rule, dtype, clip_norm=0.3)
    tolerance = {"float64": 1e-12, "float32": 1e-4}[dtype]
    assert relative_difference(theta, expected) <= tolerance
    unclipped, _, _, _ = fit_beside_reference(rule, dtype)
    assert relative_difference(unclipped, expected) > 100 * tolerance
