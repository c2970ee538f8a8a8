"""Private steps (DP-SGD's noise): ḡ = (1/B)(Σ_k c_k ∂C_k/∂θ + ν R ξ). The noise is read back
exactly: a step of plain SGD with η = 1 from the same θ, with and without it, differs by
ν R ξ / B — so ξ itself is checked, coordinate by coordinate."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

import bpfast
from bpfast.crosscheck import relative_difference

from conftest import assert_fit_refused, fit_beside_reference, make_problem, numpy_fit

R, NU, B = 0.5, 1.3, 40


def drawn_noise(seed=0, n_threads=2, sizes=(30, 60, 10)):
    """ξ of one private step (plain SGD, η = 1, one mini-batch of B): θ after it, against θ
    after the same step without noise, times −B / (ν R)."""
    net, X, Y = make_problem(list(sizes), B, seed=1)
    clipped = bpfast.Network.from_params(net.weights, net.biases)
    keywords = dict(epochs=1, batch_size=B, learning_rate=1.0, seed=seed, n_threads=n_threads,
                    clip_norm=R, sampling="shuffle")
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
                 clip_norm=0.3, noise_multiplier=1.1, momentum=0.5, sampling="shuffle")
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
                      seed=0, clip_norm=R, noise_multiplier=noise, sampling="shuffle")
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
    (dict(noise_multiplier=1.0, clip_norm=1.0, sampling="uniform"), ValueError,
     r"sampling must be one of \['shuffle', 'ordered', 'poisson'\]"),
    (dict(sampling="poisson"), ValueError, "sampling='poisson' is DP-SGD's: it needs a clip_norm"),
])
def test_bad_privacy_arguments_are_refused_before_training(keywords, error, message):
    assert_fit_refused(keywords, error, message)


def test_poisson_steps_follow_the_binomial_law():
    """20,000 steps of N = 500, B = 50 (q = 0.1): counts with mean N q = 50 and variance
    N q (1 − q) = 45 (each within 5 standard errors), every example in a share q of the steps
    (within 5 standard errors of the least and most frequent), rows distinct within a step; and
    independent flips: neighbours join a step together in a share q² of the steps, as do the
    last row of a step and the first of the next (the epoch is drawn as one Bernoulli process,
    whose gaps could otherwise tie them)."""
    from bpfast.training import poisson_steps
    rng = np.random.default_rng(0)
    counts, joined, together, across = [], np.zeros(500), 0, 0
    for _ in range(2_000):
        order, offsets = poisson_steps(rng, 500, 50)
        assert len(offsets) == 11 and offsets[0] == 0 and len(order) == offsets[-1] + 1
        last = False
        for i in range(10):
            rows = order[offsets[i]:offsets[i + 1]]
            assert len(np.unique(rows)) == len(rows)
            joined[rows] += 1
            together += 0 in rows and 1 in rows
            across += last and 0 in rows
            last = 499 in rows
        counts.extend(np.diff(offsets))
    counts = np.array(counts)
    n = len(counts)
    assert abs(counts.mean() - 50) < 5 * np.sqrt(45 / n)
    assert abs(counts.var() - 45) < 5 * 45 * np.sqrt(2 / n)
    share = joined / n
    assert np.all(np.abs(share - 0.1) < 5 * np.sqrt(0.09 / n))
    assert abs(together / n - 0.01) < 5 * np.sqrt(0.0099 / n)
    pairs = n - n // 10                                 # steps that have a next one in the epoch
    assert abs(across / pairs - 0.01) < 5 * np.sqrt(0.0099 / pairs)


@pytest.mark.parametrize("rule", [dict(), dict(momentum=0.9, l2=0.05),
                                  dict(optimizer="adam", learning_rate=0.01)],
                         ids=["sgd", "momentum+l2", "adam"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_poisson_steps_match_numpy_empty_ones_included(rule, n_threads):
    """ν = 0: Poisson-sampled clipped steps against numpy on the same draws, each sum divided
    by B; with N = 12 and B = 2 (q = 1/6), some steps draw nobody — they still take the rule's
    step (L2's decay, momentum's velocity, Adam's moments), as numpy does."""
    from bpfast.training import poisson_steps
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.3)
    rng = np.random.default_rng(7)
    sizes = [np.diff(poisson_steps(rng, 12, 2)[1]) for _ in range(4)]
    assert any(0 in s for s in sizes) and max(max(s) for s in sizes) > 2
    net, X, Y = make_problem([5, 6, 3], 12, seed=2)
    expected, costs = numpy_fit(net, X, Y, epochs=4, batch_size=2, learning_rate=learning_rate,
                                seed=7, clip_norm=0.4, poisson=True, **rule)
    history = net.fit(X, Y, epochs=4, batch_size=2, learning_rate=learning_rate, seed=7,
                      clip_norm=0.4, sampling="poisson", n_threads=n_threads, **rule)
    assert relative_difference(net.parameters_vector(), expected) <= 1e-12
    np.testing.assert_allclose(history.cost, costs, rtol=1e-12)


def test_a_private_fit_samples_by_poisson_by_default():
    net, X, Y = make_problem([5, 6, 3], 60, seed=2)
    poisson = bpfast.Network.from_params(net.weights, net.biases)
    for model, sampling in ((net, None), (poisson, "poisson")):
        model.fit(X, Y, epochs=2, batch_size=10, learning_rate=0.3, seed=1, clip_norm=0.5,
                  noise_multiplier=0.8, sampling=sampling)
    np.testing.assert_array_equal(net.parameters_vector(), poisson.parameters_vector())


def test_the_history_says_what_privacy_the_steps_spent():
    pytest.importorskip("dp_accounting")
    from bpfast import privacy
    net, X, Y = make_problem([5, 6, 3], 600, seed=2)
    history = net.fit(X, Y, epochs=3, batch_size=30, learning_rate=0.3, seed=1, clip_norm=0.5,
                      noise_multiplier=1.1, target_delta=1e-5)
    assert history.epsilon == privacy.epsilon(1.1, 30 / 600, 3 * 20, 1e-5)
    assert history.delta == 1e-5 and history.accountant == "pld"
    assert "Poisson steps" in history.privacy and 0 < history.epsilon < 10
    rdp = net.fit(X, Y, epochs=3, batch_size=30, learning_rate=0.3, seed=1, clip_norm=0.5,
                  noise_multiplier=1.1, target_delta=1e-5, accountant="rdp")
    assert rdp.epsilon > history.epsilon            # RDP is the looser analysis
    shuffled = net.fit(X, Y, epochs=1, batch_size=30, learning_rate=0.3, seed=1, clip_norm=0.5,
                       noise_multiplier=1.1, sampling="shuffle", target_delta=1e-5)
    assert shuffled.epsilon is None and "assume Poisson sampling" in shuffled.privacy
    clipped = net.fit(X, Y, epochs=1, batch_size=30, learning_rate=0.3, seed=1, clip_norm=0.5,
                      target_delta=1e-5)
    assert clipped.epsilon is None and "not private" in clipped.privacy


@pytest.mark.parametrize("keywords,message", [
    (dict(target_delta=1.0), r"target_delta must be in \(0, 1\)"),
    (dict(target_delta=0.0), "target_delta must be a finite number > 0"),
    (dict(target_delta=1e-5, accountant="moments"), r"accountant must be one of"),
])
def test_bad_accounting_arguments_are_refused_before_training(keywords, message):
    pytest.importorskip("dp_accounting")
    assert_fit_refused(keywords, ValueError, message, clip_norm=1.0, noise_multiplier=1.0)


def test_a_private_network_learns_the_digits_at_a_few_units_of_epsilon():
    """[64, 30, 10] ReLU/softmax/cross-entropy on the 1,437 training digits, mini-batches of 64
    by Poisson sampling, R = 1, ν = 1.3, 20 epochs (440 steps), η = 3 with momentum 0.5:
    (3.88, 1e−5)-DP by the PLD accountant. Held-out accuracy over three seeds: 0.78–0.83 (asserted
    ≥ 0.70 each); the same epochs without privacy (η = 0.3): 0.98 (asserted ≥ 0.95)."""
    pytest.importorskip("dp_accounting")
    X, labels = bpfast.datasets.load_digits()
    X = bpfast.datasets.scale(X, 0, 16)
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:1437], order[1437:]
    choices = dict(activation="relu", output_activation="softmax", cost="cross_entropy")
    for seed in range(3):
        net = bpfast.Network([64, 30, 10], seed=seed, **choices)
        history = net.fit(X[train], labels[train], epochs=20, batch_size=64, learning_rate=3.0,
                          seed=seed, momentum=0.5, clip_norm=1.0, noise_multiplier=1.3,
                          target_delta=1e-5)
        assert history.epsilon == pytest.approx(3.88, abs=0.01)
        assert (net.predict(X[test]).argmax(axis=1) == labels[test]).mean() >= 0.70
    plain = bpfast.Network([64, 30, 10], seed=0, **choices)
    plain.fit(X[train], labels[train], epochs=20, batch_size=64, learning_rate=0.3, seed=0,
              momentum=0.5)
    assert (plain.predict(X[test]).argmax(axis=1) == labels[test]).mean() >= 0.95


def test_a_target_epsilon_chooses_the_noise():
    pytest.importorskip("dp_accounting")
    from bpfast import privacy
    net, X, Y = make_problem([5, 6, 3], 400, seed=2)
    history = net.fit(X, Y, epochs=2, batch_size=40, learning_rate=0.3, seed=1, clip_norm=0.5,
                      target_epsilon=2.0, target_delta=1e-4, accountant="rdp")
    nu = history.noise_multiplier
    assert nu == privacy.noise_multiplier(2.0, 1e-4, 0.1, 20, accountant="rdp")
    assert 1.9 < history.epsilon <= 2.0 + 1e-6 and "20 Poisson steps" in history.privacy


@pytest.mark.parametrize("keywords,message", [
    (dict(target_epsilon=1.0, noise_multiplier=1.0, target_delta=1e-5), "target_epsilon chooses"),
    (dict(target_epsilon=1.0), "target_epsilon chooses"),
    (dict(target_epsilon=1.0, target_delta=1e-5, sampling="shuffle"),
     "target_epsilon needs sampling='poisson'"),
    (dict(target_epsilon=-1.0, target_delta=1e-5), "target_epsilon must be a finite number > 0"),
])
def test_bad_target_epsilon_is_refused_before_training(keywords, message):
    assert_fit_refused(keywords, ValueError, message, clip_norm=1.0)


def test_the_noise_is_the_references_coordinate_by_coordinate():
    """The kernels' ξ against `bpfast.reference.noise` (the generator in pure Python: 64-bit
    integers, math.log, cos and sin): the same numbers, for the seed fit draws first and step 0."""
    from bpfast import reference
    key = int(np.random.default_rng(4).integers(2**63))
    xi = drawn_noise(seed=4)
    np.testing.assert_allclose(xi, reference.noise(key, 0, xi.size), rtol=0, atol=1e-10)


@pytest.mark.parametrize("rule", [dict(), dict(momentum=0.9, l2=0.01),
                                  dict(optimizer="adam", learning_rate=0.01)],
                         ids=["sgd", "momentum+l2", "adam"])
@pytest.mark.parametrize("sampling", ["shuffle", "poisson"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_private_fit_matches_the_pure_python_reference(rule, sampling, dtype):
    """Two private epochs (clipping, noise, either sampling) against the reference's
    `train_epoch`, one parameter at a time: float64 to 1e-12 (only the order of the roundings
    differs), float32 to 1e-4 (the kernels round at float32, the reference at float64); and far
    from the same fit without noise."""
    keywords = dict(clip_norm=0.3, noise_multiplier=1.1, sampling=sampling)
    theta, expected, costs, reference_costs = fit_beside_reference(rule, dtype, **keywords)
    tolerance = {"float64": 1e-12, "float32": 1e-4}[dtype]
    assert relative_difference(theta, expected) <= tolerance
    np.testing.assert_allclose(costs, reference_costs, rtol=tolerance, atol=0)
    keywords["noise_multiplier"] = 0.0
    silent, _, _, _ = fit_beside_reference(rule, dtype, **keywords)
    assert relative_difference(silent, expected) > 100 * tolerance


def test_the_references_private_epoch_refuses_what_fit_refuses():
    from bpfast import reference
    w, b = [[[0.1, 0.2]]], [[0.0]]
    X, Y = [[1.0, 2.0], [0.5, 0.1]], [[1.0], [0.0]]
    with pytest.raises(ValueError, match="noise_multiplier needs clip_norm"):
        reference.train_epoch(w, b, X, Y, [0, 1], 1, 0.1, {}, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="noise_multiplier must be a finite number ≥ 0"):
        reference.train_epoch(w, b, X, Y, [0, 1], 1, 0.1, {}, clip_norm=1.0,
                              noise_multiplier=-1.0)
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        reference.train_epoch(w, b, X, Y, [0, 1], 1, 0.1, {}, offsets=[0, 2, 1])
    with pytest.raises(ValueError, match="fit in 64 bits"):
        reference.noise(2**64, 0, 3)
    # An odd count is the first numbers of the pairs'; a step with no example adds noise alone.
    assert reference.noise(7, 2, 3) == reference.noise(7, 2, 4)[:3]
    state = {}
    reference.train_epoch(w, b, X, Y, [0, 1], 1, 1.0, state, clip_norm=1.0, noise_multiplier=2.0,
                          offsets=[0, 0], noise_key=7)
    xi = reference.noise(7, 0, 3)
    np.testing.assert_allclose([*w[0][0], b[0][0]], np.array([0.1, 0.2, 0.0]) - 2.0 * np.array(xi))


def test_a_diverged_private_fit_reports_the_privacy_its_steps_spent():
    """The steps run before training diverged used the data: their ε is on the history the
    error carries (two Poisson steps at q = 0.1 here, the second the one that diverged)."""
    pytest.importorskip("dp_accounting")
    from bpfast.training import TrainingDiverged
    rng = np.random.default_rng(0)
    X, Y = rng.random((200, 20)), np.eye(3)[rng.integers(0, 3, 200)]
    net = bpfast.Network([20, 16, 3], activation="relu", output_activation="identity", seed=0)
    with pytest.raises(TrainingDiverged, match="mini-batch 2") as caught:
        net.fit(X, Y, epochs=3, batch_size=20, learning_rate=1e100, seed=0, clip_norm=1.0,
                noise_multiplier=1.0, target_delta=1e-3)
    history = caught.value.history
    assert history.epsilon == bpfast.privacy.epsilon(1.0, 0.1, 2, 1e-3)
    assert "2 Poisson steps" in history.privacy


PRIVATE_INTERRUPT = textwrap.dedent("""
    import os, signal, threading
    import numpy as np
    import bpfast
    import dp_accounting                # imported before the signal can come

    rng = np.random.default_rng(0)
    X = rng.random((20000, 784))
    Y = np.eye(10)[rng.integers(0, 10, 20000)]
    net = bpfast.Network([784, 512, 10], seed=0)
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        net.fit(X, Y, epochs=50, batch_size=100, learning_rate=0.1, seed=0, clip_norm=1.0,
                noise_multiplier=1.0, target_delta=1e-5)
    except KeyboardInterrupt as caught:
        print(caught.epoch, caught.mini_batch, repr(caught.history.epsilon))
""")


def test_an_interrupted_private_fit_reports_the_privacy_its_steps_spent():
    """Ctrl-C within a private fit: the history the interrupt carries has the ε of every step
    taken, those of the unfinished epoch included."""
    pytest.importorskip("dp_accounting")
    result = subprocess.run([sys.executable, "-c", PRIVATE_INTERRUPT], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    epoch, mini_batch, epsilon = result.stdout.split()
    steps = (int(epoch) - 1) * 200 + int(mini_batch)
    assert int(mini_batch) >= 1
    assert float(epsilon) == bpfast.privacy.epsilon(1.0, 100 / 20000, steps, 1e-5)
