"""fit(resume=history.state): the optimizer's memory carried from one fit to the next, and
sampling="ordered": the rows in their own order — what scikit-learn's warm_start, partial_fit
and shuffle=False ask of fit."""
import numpy as np
import pytest

import bpfast

RULES = [dict(learning_rate=0.1), dict(learning_rate=0.1, momentum=0.9),
         dict(learning_rate=0.1, momentum=0.9, nesterov=True, l2=0.01),
         dict(learning_rate=0.01, optimizer="adam")]


def problem():
    rng = np.random.default_rng(0)
    return rng.random((100, 5)), rng.random((100, 2))


@pytest.mark.parametrize("rule", RULES, ids=["sgd", "momentum", "nesterov+l2", "adam"])
@pytest.mark.parametrize("sampling", ["ordered", "shuffle"])
def test_two_fits_resumed_are_one_fit_bit_for_bit(rule, sampling):
    """Two epochs, then two more resumed from the first fit's state, equal four epochs in one
    fit (with "ordered" the orders are the same; with "shuffle" each fit draws its own from its
    seed, so the second fit is compared with a resumed one of the same seeds); without resume,
    momentum's and Adam's memory restarts and the result differs."""
    X, Y = problem()
    keywords = dict(batch_size=10, sampling=sampling, **rule)
    resumed = bpfast.Network([5, 4, 2], seed=0)
    first = resumed.fit(X, Y, epochs=2, seed=3, **keywords)
    assert first.state.steps == 20
    second = resumed.fit(X, Y, epochs=2, seed=3, resume=first.state, **keywords)
    assert second.state.steps == 40
    restarted = bpfast.Network([5, 4, 2], seed=0)
    restarted.fit(X, Y, epochs=2, seed=3, **keywords)
    restarted.fit(X, Y, epochs=2, seed=3, **keywords)
    if sampling == "ordered":
        whole = bpfast.Network([5, 4, 2], seed=0)
        whole.fit(X, Y, epochs=4, seed=3, **keywords)
        np.testing.assert_array_equal(resumed.parameters_vector(), whole.parameters_vector())
    if "momentum" in rule or "optimizer" in rule:
        assert not np.allclose(resumed.parameters_vector(), restarted.parameters_vector())
    else:
        np.testing.assert_array_equal(resumed.parameters_vector(),
                                      restarted.parameters_vector())


def test_resuming_leaves_the_state_it_started_from_unchanged():
    X, Y = problem()
    net = bpfast.Network([5, 4, 2], seed=0)
    state = net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.01, optimizer="adam",
                    seed=0).state
    v, r = state.v.copy(), state.r.copy()
    net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.01, optimizer="adam", seed=0,
            resume=state)
    np.testing.assert_array_equal(state.v, v)
    np.testing.assert_array_equal(state.r, r)


def test_ordered_sampling_takes_the_rows_in_their_order():
    """One epoch of plain SGD over mini-batches of the rows in order equals the same steps by
    hand with `gradient`."""
    X, Y = problem()
    net = bpfast.Network([5, 4, 2], seed=0)
    by_hand = bpfast.Network([5, 4, 2], seed=0)
    net.fit(X, Y, epochs=1, batch_size=30, learning_rate=0.5, sampling="ordered")
    for start in range(0, 100, 30):
        by_hand.step(by_hand.gradient(X[start:start + 30], Y[start:start + 30]), 0.5)
    np.testing.assert_allclose(net.parameters_vector(), by_hand.parameters_vector(),
                               rtol=0, atol=1e-13)


def test_a_resume_that_does_not_fit_is_refused_before_training():
    X, Y = problem()
    net = bpfast.Network([5, 4, 2], seed=0)
    adam = net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.01, optimizer="adam").state
    before = net.parameters_vector()
    with pytest.raises(ValueError, match="resume holds the state of the 'adam' rule"):
        net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.1, momentum=0.9, resume=adam)
    with pytest.raises(TypeError, match="resume must be the state of an earlier fit"):
        net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.1, resume={"v": None})
    other = bpfast.Network([5, 3, 2], seed=0)
    with pytest.raises(ValueError, match="resume's v is not this network's"):
        other.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.01, optimizer="adam",
                  resume=adam)
    np.testing.assert_array_equal(net.parameters_vector(), before)
