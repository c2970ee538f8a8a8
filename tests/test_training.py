"""fit: mini-batch gradient descent in the kernels, checked against a plain numpy
re-implementation."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import relative_difference

from conftest import (
    diverging_problem,
    entrywise,
    float32_telling_problem,
    make_problem,
    numpy_fit,
)


@pytest.mark.parametrize("sizes,N,batch_size,n_threads", [
    ([5, 4, 3], 23, 5, 1),          # a shorter last mini-batch of 3
    ([5, 4, 3], 23, 5, 2),
    ([6, 8, 7, 2], 40, 8, 2),
    ([3, 1, 2], 17, 4, 3),          # more threads than neurons in a layer
    ([4, 2], 9, 100, 2),            # batch_size > N: one mini-batch of everything
    ([10, 9, 3], 150, 70, 2),       # mini-batches of 64 and more go to BLAS
    ([400, 300, 3], 90, 40, 2),     # 40 examples, but w^(1)'s products large enough for BLAS
    ([10, 9, 3], 150, 70, 3),       # by examples: rows 23, 23, 24 (and a last mini-batch of 10)
    ([10, 9, 3], 150, 70, 100),     # by examples: most parts without a row
])
def test_fit_matches_numpy_sgd(sizes, N, batch_size, n_threads, split):
    net, X, Y = make_problem(sizes, N, seed=N)
    expected, expected_costs = numpy_fit(net, X, Y, epochs=3, batch_size=batch_size,
                                         learning_rate=0.7, seed=5)
    history = net.fit(X, Y, epochs=3, batch_size=batch_size, learning_rate=0.7, seed=5,
                      n_threads=n_threads)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12
    np.testing.assert_allclose(history.cost, expected_costs, rtol=1e-12)


def test_the_shape_decides_how_a_step_is_shared():
    """By examples where every layer is narrow (fewer than 128 neurons per part) and the
    mini-batch goes to BLAS (64 examples or more), or where each of several parts gets 512
    examples or more; by neurons otherwise — and fit does what the rule says, bit for bit."""
    from bpfast import _kernels

    def by_examples(sizes, m, n_parts):
        return _kernels.steps_by_examples(bpfast.Network(sizes)._layout, m, n_parts)

    assert by_examples([784, 16, 10], 256, 2) and by_examples([784, 64, 10], 64, 1)
    assert by_examples([784, 255, 10], 1024, 2) and by_examples([30, 12, 8, 6], 70, 3)
    assert not by_examples([784, 16, 10], 63, 2)                 # the microkernels' size
    assert not by_examples([784, 256, 10], 1023, 2)              # 128 neurons per part
    assert by_examples([784, 256, 10], 1024, 2)                  # and 512 examples
    assert not by_examples([784, 128, 10], 4096, 1)              # one part: nothing to gain
    assert not by_examples([64, 30, 300, 10], 256, 2)            # one wide layer is enough
    results = {}
    for how in (0, 1, 2):
        before = _kernels.force_split(how)
        try:
            net, X, Y = make_problem([30, 12, 8, 6], 333, seed=4)
            net.fit(X, Y, epochs=2, batch_size=70, learning_rate=0.3, seed=5, n_threads=3)
        finally:
            _kernels.force_split(before)
        results[how] = net.parameters_vector()
    np.testing.assert_array_equal(results[0], results[2])
    assert not np.array_equal(results[1], results[2])           # the two ways round differently


def test_buffers_kept_between_fits_carry_nothing_over():
    """A network keeps its training buffers between fits: a fit after others with larger and
    smaller mini-batches (and by-examples steps, whose sums live there too) gives the bits of
    the same fit on a fresh copy."""
    net, X, Y = make_problem([12, 9, 4], 300, seed=3)
    for batch_size, n_threads in [(100, 2), (7, 1), (256, 3), (70, 2)]:
        fresh = bpfast.Network.from_params(net.weights, net.biases)
        for model in (net, fresh):
            model.fit(X, Y, epochs=1, batch_size=batch_size, learning_rate=0.3, seed=batch_size,
                      n_threads=n_threads)
        np.testing.assert_array_equal(net.parameters_vector(), fresh.parameters_vector())


def test_fit_in_float32_stays_float32_and_matches():
    net, X, Y = make_problem([6, 5, 3], 30, "float32", seed=3)
    expected, _ = numpy_fit(net, X, Y, epochs=2, batch_size=4, learning_rate=0.5, seed=1,
                            dtype="float32")
    net.fit(X, Y, epochs=2, batch_size=4, learning_rate=0.5, seed=1)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-5


def test_a_float32_network_computes_in_float32():
    """Where float32 and float64 arithmetic part by far more than rounding (z^(2) = 0.25
    against 0.3), the float32 network's gradient is float32 numpy's to the last bit, and its
    training is float32 numpy's to a few units of float32's 6e-8, its costs 1e-4 where
    float64's are 1.6e-3. A float32 network that computed in float64 would have the latter."""
    net, X, Y = float32_telling_problem()
    x, y = X[:1], np.zeros((1, 1))
    np.testing.assert_array_equal(net.predict(x), [[0.25]])
    a1 = np.float32(x[0, 0]) + np.float32(0.3)              # float32: 1048576.25
    # C = a², δ^(2) = 2a = 0.5, δ^(1) = w^(2) δ^(2): ∂C/∂(w^(1), b^(1), w^(2), b^(2)).
    g32 = [2 * 0.25 * x[0, 0], 2 * 0.25, 2 * 0.25 * a1, 2 * 0.25]
    np.testing.assert_array_equal(net.gradient(x, y).vector(), np.float32(g32))
    g64 = bpfast.Network.from_params(net.weights, net.biases, activation="identity",
                                     dtype="float64").gradient(x, y).vector()
    assert entrywise(net.gradient(x, y).vector(), g64) > 0.1

    fit = dict(epochs=3, batch_size=4, learning_rate=1e-14, seed=0)
    as_float32, costs32 = numpy_fit(net, X, Y, dtype="float32", **fit)
    _, costs64 = numpy_fit(net, X, Y, dtype="float64", **fit)
    history = net.fit(X, Y, **fit)
    assert entrywise(net.parameters_vector(), as_float32) <= 1e-6
    assert entrywise(history.cost, costs32) <= 1e-5
    assert entrywise(history.cost, costs64) >= 0.5


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_same_seed_and_threads_give_bitwise_identical_weights(n_threads):
    runs = []
    for _ in range(2):
        net, X, Y = make_problem([20, 16, 16, 4], 200, seed=4)
        net.fit(X, Y, epochs=2, batch_size=7, learning_rate=0.3, seed=11, n_threads=n_threads)
        runs.append(net.parameters_vector())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_the_seed_sets_the_order():
    a, X, Y = make_problem([4, 3, 2], 50)
    b, _, _ = make_problem([4, 3, 2], 50)
    a.fit(X, Y, epochs=1, batch_size=5, learning_rate=0.5, seed=1)
    b.fit(X, Y, epochs=1, batch_size=5, learning_rate=0.5, seed=2)
    assert not np.array_equal(a.parameters_vector(), b.parameters_vector())


def test_history_records_each_epoch_and_training_lowers_the_cost():
    rng = np.random.default_rng(0)
    X = rng.random((400, 2))
    Y = (X[:, :1] > X[:, 1:]).astype(float)          # which coordinate is larger
    net = bpfast.Network([2, 8, 1], seed=0)
    history = net.fit(X, Y, epochs=30, batch_size=10, learning_rate=3.0, seed=0)
    assert len(history) == history.epochs == 30
    assert len(history.seconds) == 30 and all(s > 0 for s in history.seconds)
    assert history.cost[-1] < 0.25 * history.cost[0]
    assert net.cost(X, Y) < 0.05
    assert "30 epochs" in repr(history)


def test_zero_epochs_changes_nothing():
    net, X, Y = make_problem([4, 3, 2], 10)
    theta = net.parameters_vector()
    assert len(net.fit(X, Y, epochs=0, batch_size=2, learning_rate=1.0)) == 0
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_fit_does_not_modify_its_inputs():
    net, X, Y = make_problem([4, 3, 2], 10)
    X0, Y0 = X.copy(), Y.copy()
    net.fit(X, Y, epochs=2, batch_size=3, learning_rate=1.0, seed=0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_divergence_names_the_mini_batch_and_keeps_the_last_finite_step(n_threads):
    """Seven real steps, then the eighth overflows (its mini-batch holds a row of 1e200): the
    network keeps θ after step 7 — as the independent numpy fit computes it for seven steps —
    and the exception names mini-batch 8 and carries θ as the epoch began."""
    caught, net, start, X, Y, bad, keywords = diverging_problem(dict(learning_rate=0.1), n_threads)
    assert bad == 8
    assert isinstance(caught, ArithmeticError)
    assert (caught.epoch, caught.mini_batch) == (1, 8)
    assert "training diverged in epoch 1, mini-batch 8" in str(caught)
    assert "smaller learning rate" in str(caught) and len(caught.history) == 0
    seven_steps, _ = numpy_fit(start, X, Y, steps=7, **keywords)
    assert relative_difference(net.parameters_vector(), seven_steps) <= 1e-12
    assert not np.array_equal(seven_steps, start.parameters_vector())      # real steps
    with np.errstate(all="ignore"):
        eight_steps, _ = numpy_fit(start, X, Y, steps=8, **keywords)
    assert not np.isfinite(eight_steps).all()                # the eighth step does overflow
    np.testing.assert_array_equal(caught.parameters_before_epoch, start.parameters_vector())
    caught.parameters_before_epoch[0] = 5.0               # a copy: the network keeps its own
    assert relative_difference(net.parameters_vector(), seven_steps) <= 1e-12


def test_a_later_epoch_that_diverges_hands_back_the_parameters_it_began_with():
    """Momentum too large for the data: the run grows for two epochs and overflows in the
    third. parameters_before_epoch is θ after the first two epochs, by the numpy fit."""
    net, X, Y = make_problem([6, 12, 3], 60, seed=3, activation="relu",
                             output_activation="identity")
    X *= 3
    start = bpfast.Network.from_params(net.weights, net.biases, activation="relu",
                                       output_activation="identity")
    keywords = dict(batch_size=5, learning_rate=0.008, momentum=0.9, seed=1)
    with pytest.raises(bpfast.TrainingDiverged) as caught:
        net.fit(X, Y, epochs=100, n_threads=2, **keywords)
    assert caught.value.epoch == 3 and len(caught.value.history) == 2
    two_epochs, costs = numpy_fit(start, X, Y, epochs=2, **keywords)
    assert relative_difference(caught.value.parameters_before_epoch, two_epochs) <= 1e-12
    np.testing.assert_allclose(caught.value.history.cost, costs, rtol=1e-12)


@pytest.mark.parametrize("keyword,value,error,message", [
    ("epochs", -1, ValueError, "epochs must be an integer ≥ 0, got -1"),
    ("epochs", 2.5, TypeError, "epochs must be an integer"),
    ("batch_size", 0, ValueError, "batch_size must be an integer ≥ 1, got 0"),
    ("batch_size", -3, ValueError, "batch_size must be an integer ≥ 1"),
    ("batch_size", "10", TypeError, "batch_size must be an integer"),
    ("learning_rate", float("nan"), ValueError, "learning_rate must be a finite number > 0"),
    ("learning_rate", 0, ValueError, "learning_rate must be a finite number > 0"),
    ("n_threads", 0, ValueError, "n_threads must be an integer ≥ 1"),
    ("n_threads", 1.5, TypeError, "n_threads must be an integer"),
])
def test_bad_fit_arguments_leave_the_network_unchanged(keyword, value, error, message):
    net, X, Y = make_problem([4, 3, 2], 10)
    theta = net.parameters_vector()
    arguments = dict(epochs=1, batch_size=2, learning_rate=0.5)
    arguments[keyword] = value
    with pytest.raises(error, match=message):
        net.fit(X, Y, **arguments)
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_fit_needs_a_batch_of_matching_inputs_and_targets():
    net, X, Y = make_problem([4, 3, 2], 10)
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        net.fit(X[0], Y[0], epochs=1, batch_size=1, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[10, 9\]"):
        net.fit(X, Y[:9], epochs=1, batch_size=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        net.fit(np.full_like(X, np.nan), Y, epochs=1, batch_size=1, learning_rate=0.1)


@pytest.mark.parametrize("sizes", [[20, 7, 3], [20, 3]])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("sampling", ["shuffle", "ordered"])
def test_fit_refuses_a_non_finite_row_of_X_found_as_the_first_epoch_gathers_it(
        split, sizes, n_threads, sampling):
    """fit checks X's rows as its first epoch gathers them (no pass over X of its own): a NaN or
    an infinity in the last mini-batches, after steps were taken, raises validation's error and
    leaves the network — and an optimizer state to resume — as they were; no ValueError from a
    diverged step instead. With Poisson sampling, which may leave rows out, and with no epoch at
    all, X is checked before anything runs."""
    rng = np.random.default_rng(3)
    for row, bad, message in ((290, np.nan, "Input X contains NaN"),
                              (299, -np.inf, "Input X contains infinity")):
        net, X, Y = make_problem(sizes, 300)
        state = net.fit(X, Y, epochs=1, batch_size=64, learning_rate=0.5, seed=0,
                        optimizer="adam").state
        theta, v, r = net.parameters_vector().copy(), state.v.copy(), state.r.copy()
        X[row, rng.integers(sizes[0])] = bad
        with pytest.raises(ValueError, match=message) as caught:
            net.fit(X, Y, epochs=2, batch_size=64, learning_rate=0.5, seed=0, sampling=sampling,
                    n_threads=n_threads, optimizer="adam", resume=state)
        assert caught.value.__context__ is None and caught.value.__cause__ is None
        np.testing.assert_array_equal(net.parameters_vector(), theta)
        np.testing.assert_array_equal(state.v, v)
        np.testing.assert_array_equal(state.r, r)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        net.fit(np.full_like(X, np.nan), Y, epochs=0, batch_size=64, learning_rate=0.5)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        net.fit(X, Y, epochs=1, batch_size=64, learning_rate=0.5, clip_norm=1.0,
                noise_multiplier=1.0, sampling="poisson")
    np.testing.assert_array_equal(net.parameters_vector(), theta)


@pytest.mark.parametrize("sampling,passes", [("shuffle", 0), ("ordered", 0), ("poisson", 1)])
def test_fit_reads_X_for_its_finiteness_only_where_an_epoch_cannot(monkeypatch, sampling,
                                                                     passes):
    """The claim behind checking X as the first epoch gathers it: no pass over X of its own
    (1.7 ms of a 64 MB X) — but for Poisson sampling, which may leave rows out."""
    net, X, Y = make_problem([20, 7, 3], 300)
    seen, check = [], bpfast._kernels.all_finite
    monkeypatch.setattr(bpfast._kernels, "all_finite", lambda a: seen.append(a) or check(a))
    private = dict(clip_norm=1.0, noise_multiplier=0.5) if sampling == "poisson" else {}
    net.fit(X, Y, epochs=2, batch_size=64, learning_rate=0.5, seed=0, sampling=sampling,
            **private)
    assert sum(np.shares_memory(a, X) for a in seen) == passes


def test_default_threads_leave_small_mini_batches_to_one_thread(monkeypatch):
    monkeypatch.setattr(bpfast.training, "available_cores", lambda: 8)   # an 8-core machine,
    monkeypatch.setattr(bpfast._kernels, "openmp_limit", lambda: 8)       # OMP_NUM_THREADS unset
    small = bpfast.Network([64, 30, 10], seed=0)          # 6·P·batch = 1.4e5 FLOPs
    large = bpfast.Network([784, 30, 10], seed=0)         # 1.4e6 FLOPs
    assert bpfast.training.default_threads(small, 10) == 1
    assert bpfast.training.default_threads(large, 10) == 5
    assert bpfast.training.default_threads(large, 1000) == 8


def test_callback_sees_every_epoch_and_can_stop_training():
    net, X, Y = make_problem([4, 3, 2], 30)
    seen = []
    history = net.fit(X, Y, epochs=5, batch_size=4, learning_rate=0.5, seed=0,
                      callback=lambda epoch, figures: seen.append((epoch, figures)))
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4, 5]
    assert [figures["cost"] for _, figures in seen] == history.cost
    assert all(figures["seconds"] > 0 for _, figures in seen)

    stopped = net.fit(X, Y, epochs=10, batch_size=4, learning_rate=0.5, seed=0,
                      callback=lambda epoch, figures: epoch < 3)
    assert len(stopped) == 3


def test_callback_epochs_equal_one_call_of_many_epochs():
    a, X, Y = make_problem([4, 3, 2], 30)
    b, _, _ = make_problem([4, 3, 2], 30)
    a.fit(X, Y, epochs=4, batch_size=4, learning_rate=0.5, seed=7, callback=lambda *_: None)
    rng = np.random.default_rng(7)
    for _ in range(4):                     # a shared generator continues the same orders
        b.fit(X, Y, epochs=1, batch_size=4, learning_rate=0.5, seed=rng)
    np.testing.assert_array_equal(a.parameters_vector(), b.parameters_vector())


def test_callback_must_be_callable():
    net, X, Y = make_problem([4, 3, 2], 10)
    with pytest.raises(TypeError, match="callback must be callable"):
        net.fit(X, Y, epochs=1, batch_size=2, learning_rate=0.5, callback=3)


def test_integer_labels_stand_for_one_hot_targets():
    net, X, _ = make_problem([4, 5, 3], 12)
    labels = np.arange(12) % 3
    one_hot = np.eye(3)[labels]
    np.testing.assert_array_equal(net.gradient(X, labels).vector(),
                                  net.gradient(X, one_hot).vector())
    assert net.cost(X, labels) == net.cost(X, one_hot)
    a, b = make_problem([4, 5, 3], 12)[0], make_problem([4, 5, 3], 12)[0]
    a.fit(X, labels, epochs=2, batch_size=5, learning_rate=0.5, seed=0)
    b.fit(X, one_hot, epochs=2, batch_size=5, learning_rate=0.5, seed=0)
    np.testing.assert_array_equal(a.parameters_vector(), b.parameters_vector())
    # With one output, a 1-D Y is that output's target for each example.
    single, X1, Y1 = make_problem([4, 3, 1], 6)
    np.testing.assert_array_equal(single.gradient(X1, Y1[:, 0]).vector(),
                                  single.gradient(X1, Y1).vector())


@pytest.mark.parametrize("labels,message", [
    ([0, 1, 3, 0], r"integers in \[0, 3\)"),
    ([0, 1.5, 2, 0], r"integers in \[0, 3\)"),
    ([0, -1, 2, 0], r"integers in \[0, 3\)"),
    ([0, 1, 2], r"inconsistent numbers of samples: \[4, 3\]"),
])
def test_bad_labels(labels, message):
    net, X, _ = make_problem([4, 5, 3], 4)
    with pytest.raises(ValueError, match=message):
        net.gradient(X, labels)


def test_evaluate_gives_cost_and_accuracy():
    net, X, _ = make_problem([4, 5, 3], 50)
    labels = np.random.default_rng(0).integers(0, 3, 50)
    cost, accuracy = net.evaluate(X, labels)
    assert cost == pytest.approx(net.cost(X, np.eye(3)[labels]), rel=1e-14)
    assert accuracy == np.mean(net.predict(X).argmax(axis=1) == labels)
    _, none = net.evaluate(X, np.full((50, 3), 0.5))        # not one-hot: no accuracy
    assert none is None


def test_validation_data_fills_the_history():
    net, X, _ = make_problem([4, 5, 3], 60)
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    seen = []
    history = net.fit(X[:40], labels[:40], epochs=4, batch_size=5, learning_rate=1.0, seed=0,
                      validation_data=(X[40:], labels[40:]),
                      callback=lambda epoch, figures: seen.append(figures))
    assert len(history.validation_cost) == len(history.validation_accuracy) == 4
    assert (history.validation_cost[-1], history.validation_accuracy[-1]) == \
        net.evaluate(X[40:], labels[40:])
    assert seen[-1]["validation_accuracy"] == history.validation_accuracy[-1]


def test_early_stopping_keeps_the_best_epoch():
    # A large step on few examples: the validation cost soon stops improving.
    net, X, Y = make_problem([6, 12, 3], 80, seed=1)
    snapshots = []
    history = net.fit(X[:20], Y[:20], epochs=200, batch_size=2, learning_rate=8.0, seed=0,
                      validation_data=(X[20:], Y[20:]), early_stopping=3,
                      callback=lambda epoch, figures: snapshots.append(net.parameters_vector()))
    assert len(history) < 200
    best = history.best_epoch
    assert history.validation_cost[best - 1] == min(history.validation_cost)
    assert len(history) == best + 3                        # three epochs without improvement
    np.testing.assert_array_equal(net.parameters_vector(), snapshots[best - 1])


@pytest.mark.parametrize("keywords,error,message", [
    (dict(early_stopping=3), ValueError, "early_stopping needs validation_data"),
    (dict(early_stopping=0, validation_data=None), ValueError, "early_stopping must be"),
    (dict(validation_data=np.ones(3)), TypeError, r"validation_data must be a pair"),
    (dict(validation_data=(np.ones((2, 4)), np.ones((3, 2)))), ValueError,
     r"inconsistent numbers of samples: \[2, 3\] \(X_val, Y_val\)"),
    (dict(validation_data=(np.ones((2, 5)), np.ones((2, 2)))), ValueError,
     "X_val has 5 values per example"),
])
def test_bad_validation_arguments(keywords, error, message):
    net, X, Y = make_problem([4, 3, 2], 10)
    theta = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.fit(X, Y, epochs=2, batch_size=2, learning_rate=0.5, **keywords)
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_binary_classification_with_one_output_has_an_accuracy():
    """One sigmoid output, 0/1 targets: right when a^(L) is on the target's side of ½."""
    net = bpfast.Network.from_params([np.array([[1.0, -1.0]])], [np.array([0.0])])
    X = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.5], [0.2, 0.1], [0.0, 0.1]])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])          # a = σ(x1 − x2): > ½, < ½, > ½, > ½, < ½
    cost, accuracy = net.evaluate(X, y)
    assert accuracy == pytest.approx(3 / 5)
    assert net.evaluate(X, y.reshape(-1, 1))[1] == pytest.approx(3 / 5)
    assert net.evaluate(X, np.full(5, 0.3))[1] is None          # not 0/1 targets: regression
    history = net.fit(X, y, epochs=1, batch_size=5, learning_rate=0.1, validation_data=(X, y))
    assert len(history.validation_accuracy) == 1
