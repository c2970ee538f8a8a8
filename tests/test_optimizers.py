"""fit's other steps — momentum, Nesterov, Adam, L2 — and the other activations and costs in
training, each checked against a plain numpy re-implementation of the same steps."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import relative_difference

from conftest import (
    RULES,
    diverging_problem,
    entrywise,
    fit_beside_reference,
    float32_telling_problem,
    make_problem,
    numpy_fit,
    products_run,
)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [5, 70])             # microkernels, and BLAS
@pytest.mark.parametrize("rule", RULES, ids=lambda rule: ",".join(
    f"{key}={value}" for key, value in rule.items()) or "sgd")
def test_every_rule_matches_numpy(rule, batch_size, n_threads, split):
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.4)
    net, X, Y = make_problem([7, 9, 6, 3], 163, seed=8)
    expected, _ = numpy_fit(net, X, Y, epochs=3, batch_size=batch_size,
                         learning_rate=learning_rate, seed=2, **rule)
    net.fit(X, Y, epochs=3, batch_size=batch_size, learning_rate=learning_rate, seed=2,
            n_threads=n_threads, **rule)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12


@pytest.mark.parametrize("sizes", [[400, 400, 3], [400, 300, 3]])
@pytest.mark.parametrize("rule", RULES[1:], ids=lambda rule: ",".join(
    f"{key}={value}" for key, value in rule.items()))
def test_every_rule_matches_numpy_where_a_small_batch_goes_to_blas(rule, sizes):
    """Mini-batches of 40, under the 64 that always go to BLAS, but w^(1)'s products large
    enough for it — a part's 200 × 400 weights, 65,536 or more, times 40 rows — and those of
    w^(2) left to the microkernels: both ways in one step. With 150 × 400 weights a part, the
    microkernels take w^(1) too; so do they the last mini-batch, of 20."""
    from bpfast import _kernels
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.1)
    net, X, Y = make_problem(sizes, 100, seed=8)
    assert _kernels.fit_blas(net._layout, 1, 40, 2) == (sizes[1] == 400)
    assert not _kernels.fit_blas(net._layout, 2, 40, 2)
    X /= 20
    expected, _ = numpy_fit(net, X, Y, epochs=2, batch_size=40, learning_rate=learning_rate,
                            seed=2, **rule)
    ran = products_run(None, net.fit, X, Y, epochs=2, batch_size=40, seed=2, n_threads=2,
                       learning_rate=learning_rate, **rule)
    # w^(1)'s products are a part's 200 or 150 neurons (Adam's steps 4 at a time), w^(2)'s 1 or 2
    # of its 3; the epoch's mini-batches 40, 40, 20.
    taken = {(product, m, 1 if nj > 3 else 2, path) for product, path, m, nj, ni in ran
             if product != "δ w"}
    first = "BLAS" if sizes[1] == 400 else "microkernel"
    assert taken == {(product, m, l, first if (m, l) == (40, 1) else "microkernel")
                     for product in ("z = a wᵀ", "∂C/∂w = δᵀ a") for m in (40, 20) for l in (1, 2)}
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("rule", [RULES[0], RULES[2]], ids=["sgd", "momentum"])
def test_narrow_layers_train_as_numpy_does_on_large_mini_batches(rule, n_threads, dtype):
    """Mini-batches of 300 over [300, 7, 2], shared by examples, each part summing ∂C/∂w^(1)
    over its rows 128 at a time. Where BLAS packs every product, bpfast's own product computes
    those sums (a layer of 7 neurons over 128 rows or more): the first block of rows written,
    the next added to it, a part's last rows (44 on one thread, 22 on two) by BLAS; and z^(1) of
    the part's rows from w^(1) in a panel of 8 neurons (the last one zeros), which each part
    copies at the start of every step (a panel left from the step before fails it)."""
    from bpfast import _blas, _kernels
    _blas._libraries()
    found = _kernels.blas_small_path()
    _kernels.use_blas_small_path(False)
    try:
        rule = dict(rule)
        learning_rate = rule.pop("learning_rate", 0.4)
        net, X, Y = make_problem([300, 7, 2], 600, dtype, seed=5)
        assert _kernels.dT_a_by_rows(128, 7, 300, dtype)
        expected, _ = numpy_fit(net, X, Y, epochs=2, batch_size=300,
                                learning_rate=learning_rate, seed=2, **rule)
        ran = products_run(None, net.fit, X, Y, epochs=2, batch_size=300, seed=2,
                           learning_rate=learning_rate, n_threads=n_threads, **rule)
        last = 300 // n_threads % 128
        assert {(product, path, m) for product, path, m, nj, ni in ran if ni == 300} == {
            ("z = a wᵀ", "panels", 128), ("z = a wᵀ", "panels", last),
            ("∂C/∂w = δᵀ a", "rows", 128), ("∂C/∂w = δᵀ a", "BLAS", last)}
        assert relative_difference(net.parameters_vector(), expected) <= \
            (1e-12 if dtype == "float64" else 1e-4)
    finally:
        _kernels.use_blas_small_path(found)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("hidden,output,cost", [
    ("tanh", "softmax", "cross_entropy"),
    ("relu", "softmax", "quadratic"),
    ("relu", "sigmoid", "cross_entropy"),
    ("identity", "tanh", "quadratic"),
    ("sigmoid", "softmax", "cross_entropy"),
])
@pytest.mark.parametrize("sizes", [[6, 8, 5], [6, 5]])      # L = 1: softmax rows feed w^(1)
def test_activations_and_costs_train_as_numpy_does(hidden, output, cost, sizes, n_threads,
                                                   split):
    rng = np.random.default_rng(1)
    net = bpfast.Network(sizes, activation=hidden, output_activation=output, cost=cost, seed=3)
    X = rng.normal(size=(101, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 101)]
    for batch_size in (7, 64):
        expected, _ = numpy_fit(net, X, Y, epochs=2, batch_size=batch_size, learning_rate=0.3,
                             seed=4, momentum=0.5)
        net_copy = bpfast.Network.from_params(net.weights, net.biases, activation=hidden,
                                              output_activation=output, cost=cost)
        net_copy.fit(X, Y, epochs=2, batch_size=batch_size, learning_rate=0.3, seed=4,
                     momentum=0.5, n_threads=n_threads)
        assert relative_difference(net_copy.parameters_vector(), expected) <= 1e-12


@pytest.mark.parametrize("rule", [dict(optimizer="adam", learning_rate=1e-9, l2=1e-3),
                                  dict(momentum=0.9, learning_rate=1e-14),
                                  dict(momentum=0.9, nesterov=True, learning_rate=1e-14,
                                       l2=1e-3)],
                         ids=["adam", "momentum", "nesterov"])
def test_every_rule_computes_in_float32_in_a_float32_network(rule):
    """As test_training's float32 test, for the rules with a state (v, m, r): θ near float32
    numpy's, the costs along the way float32's (1e-4), not float64's (1.6e-3)."""
    net, X, Y = float32_telling_problem()
    fit = dict(epochs=3, batch_size=4, seed=0, **rule)
    as_float32, costs32 = numpy_fit(net, X, Y, dtype="float32", **fit)
    _, costs64 = numpy_fit(net, X, Y, dtype="float64", **fit)
    history = net.fit(X, Y, **fit)
    assert entrywise(net.parameters_vector(), as_float32) <= 1e-6
    assert entrywise(history.cost, costs32) <= 1e-5
    assert entrywise(history.cost, costs64) >= 0.5


def test_float32_adam_matches_float32_numpy():
    net, X, Y = make_problem([6, 5, 3], 40, "float32", seed=3)
    expected, _ = numpy_fit(net, X, Y, epochs=2, batch_size=4, learning_rate=0.01, seed=1,
                            optimizer="adam", dtype="float32")
    net.fit(X, Y, epochs=2, batch_size=4, learning_rate=0.01, seed=1, optimizer="adam")
    assert relative_difference(net.parameters_vector(), expected) <= 1e-5


@pytest.mark.parametrize("choices", [dict(), dict(activation="relu", output_activation="softmax",
                                                 cost="cross_entropy")])
@pytest.mark.parametrize("rule", [dict(momentum=0.9), dict(optimizer="adam")])
@pytest.mark.parametrize("batch_size", [7, 70])
def test_rules_are_reproducible_with_threads(rule, choices, batch_size):
    runs = []
    for _ in range(2):
        net, X, Y = make_problem([20, 16, 16, 4], 200, seed=4, **choices)
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


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("rule", [dict(learning_rate=0.1, l2=1e-2),
                                  dict(learning_rate=0.05, momentum=0.9),
                                  dict(learning_rate=0.05, momentum=0.9, nesterov=True),
                                  dict(learning_rate=1e-2, optimizer="adam", l2=1e-3)],
                         ids=["l2", "momentum", "nesterov", "adam"])
def test_divergence_keeps_the_last_finite_step_of_every_rule(rule, n_threads):
    """Seven real steps of the rule (its state v, m, r built up), then an overflow: the network
    holds θ after step 7 as the independent numpy fit computes it."""
    caught, net, start, X, Y, bad, keywords = diverging_problem(rule, n_threads)
    assert (caught.epoch, caught.mini_batch) == (1, bad) == (1, 8)
    seven_steps, _ = numpy_fit(start, X, Y, steps=7, **keywords)
    assert relative_difference(net.parameters_vector(), seven_steps) <= 1e-12
    assert not np.array_equal(seven_steps, start.parameters_vector())


@pytest.mark.parametrize("n_threads", [1, 2])
def test_divergence_in_a_mini_batch_of_blas_size_keeps_the_last_finite_step(n_threads, split):
    """As above, on mini-batches of 64 shared by neurons or by examples: three real steps of
    momentum, then the fourth overflows."""
    caught, net, start, X, Y, bad, keywords = diverging_problem(
        dict(learning_rate=0.05, momentum=0.9), n_threads, position=230, batch_size=64, n=400)
    assert (caught.epoch, caught.mini_batch) == (1, bad) == (1, 4)
    three_steps, _ = numpy_fit(start, X, Y, steps=3, **keywords)
    assert relative_difference(net.parameters_vector(), three_steps) <= 1e-12
    assert not np.array_equal(three_steps, start.parameters_vector())


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(optimizer="rmsprop"), ValueError, r"optimizer must be one of \['sgd', 'adam'\]"),
    (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\), got 1.0"),
    (dict(momentum=-0.1), ValueError, "momentum must be a finite number ≥ 0"),
    (dict(momentum="0.9"), TypeError, "momentum must be a real number"),
    (dict(nesterov=True), ValueError, "nesterov=True needs a momentum > 0"),
    (dict(nesterov=1, momentum=0.9), TypeError, "nesterov must be True or False"),
    (dict(optimizer="adam", momentum=0.9), ValueError,
     r"momentum and nesterov are for optimizer='sgd'; Adam has its own momentum, "
     r"β1 \(betas\[0\]\)"),
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
    theta, expected, history_cost, costs = fit_beside_reference(rule, dtype)
    tolerance = {"float64": 1e-12, "float32": 1e-4}[dtype]
    assert relative_difference(theta, expected) <= tolerance
    np.testing.assert_allclose(history_cost, costs, rtol=tolerance)
