"""Hypothesis throws random shapes, dtypes, memory orders and values at the public API: only the
documented exceptions ever come out, and a refused call leaves the network as it was."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import bpfast

DOCUMENTED = (ValueError, TypeError, FloatingPointError)

dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8,
                          np.bool_, np.complex128, np.dtype("U3"), np.object_])
shapes = st.one_of(st.just(()), st.tuples(st.integers(0, 6)),
                   st.tuples(st.integers(0, 6), st.integers(0, 6)),
                   st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)))


@st.composite
def anything(draw, shape_strategy=shapes, labels=False):
    """An array of any dtype, shape and order, with any values — or a list, or a scalar.
    (``labels``: mostly small integers, as class labels are.)"""
    dtype = np.dtype(draw(st.sampled_from([np.int64, np.uint8, np.float32])
                          if labels and draw(st.booleans()) else dtypes))
    shape = draw(shape_strategy)
    if dtype.kind == "O":
        value = np.empty(shape, dtype=object)
        item = draw(st.sampled_from([None, 1.5, "x", (1, 2)]))
        for index in np.ndindex(shape):
            value[index] = item
    elif dtype.kind == "U":
        value = np.full(shape, draw(st.sampled_from(["a", "1.5", ""])))
    elif dtype.kind in "iu":
        # Small integers: as sizes, huge ones would ask for terabytes (see test_bad_input).
        value = draw(arrays(dtype, shape, elements=st.integers(0 if dtype.kind == "u" else -10,
                                                               2 if labels else 50)))
    else:
        value = draw(arrays(dtype, shape))
    form = draw(st.sampled_from(["array", "fortran", "strided", "list", "readonly"]))
    if form == "fortran":
        value = np.asfortranarray(value)
    elif form == "strided" and value.ndim >= 1:
        value = np.repeat(value, 2, axis=0)[::2]
    elif form == "list":
        value = value.tolist()
    elif form == "readonly":
        value = np.array(value)
        value.setflags(write=False)
    return value


NET = bpfast.Network([3, 4, 2], seed=0)


def canonical(value, dtype):
    """What the network converts a value to: C-ordered, in its dtype (the kernels' input)."""
    return np.array(value, dtype=dtype, order="C")


def call_is_clean(net, call, expected=None):
    """call(); if it is refused, only with a documented exception and `net` left as it was; if
    it succeeds, its result equals ``expected()`` — the same call on canonical inputs — bit for
    bit (the kernels see the same numbers, whatever the dtype, order or container given)."""
    theta = net.parameters_vector()
    try:
        result = call()
    except bpfast.TrainingDiverged as diverged:
        # A huge learning rate or l2 makes training diverge: documented, and the network keeps
        # the last finite step.
        assert diverged.mini_batch >= 1
        return
    except DOCUMENTED:
        np.testing.assert_array_equal(net.parameters_vector(), theta)
        return
    if expected is not None:
        compare(result, expected())


def compare(result, expected):
    if isinstance(result, bpfast.Gradient):
        result, expected = result.vector(), expected.vector()
    elif isinstance(result, bpfast.Trace):
        for got, want in zip(result.z + result.a, expected.z + expected.a):
            np.testing.assert_array_equal(got, want)
        return
    elif isinstance(result, tuple):
        for got, want in zip(result, expected):
            assert got == want or (got is None and want is None)
        return
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))


@st.composite
def pairs(draw):
    """Inputs and targets that often go together — n rows of 3 and of 2, labels, one example —
    so that accepted pairs, and with them the kernels on odd dtypes and layouts, are common —
    and sometimes do not."""
    n = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["batch", "labels", "one", "any"]))
    x_shape, y_shape = {"batch": ((n, 3), (n, 2)), "labels": ((n, 3), (n,)),
                        "one": ((3,), (2,)), "any": (draw(shapes), draw(shapes))}[kind]
    X = draw(anything(st.just(x_shape)))
    Y = draw(anything(st.just(y_shape), labels=kind == "labels"))
    return X, Y


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_methods_taking_inputs_and_targets(pair):
    X, Y = pair
    dtype = NET.dtype
    for method in ("cost", "gradient", "per_example_gradients", "backprop", "evaluate"):
        call = getattr(NET, method)
        call_is_clean(NET, lambda call=call: call(X, Y),
                      lambda call=call: call(canonical(X, dtype), canonical(Y, dtype)))
    fresh = bpfast.Network([3, 4, 2], seed=1)
    again = bpfast.Network([3, 4, 2], seed=1)
    fit = dict(epochs=1, batch_size=2, learning_rate=0.1, seed=0)
    call_is_clean(fresh, lambda: fresh.fit(X, Y, **fit) and fresh.parameters_vector(),
                  lambda: again.fit(canonical(X, dtype), canonical(Y, dtype), **fit)
                  and again.parameters_vector())


def float_dtype(value):
    """The dtype the activations compute a value in: its own if float32 or float64."""
    dtype = np.asarray(value).dtype if not isinstance(value, list) else np.float64
    return dtype if dtype in (np.float32, np.float64) else np.float64


@settings(max_examples=200, deadline=None)
@given(anything())
def test_methods_taking_one_array(value):
    dtype = NET.dtype
    call_is_clean(NET, lambda: NET.forward(value), lambda: NET.forward(canonical(value, dtype)))
    call_is_clean(NET, lambda: NET.predict(value), lambda: NET.predict(canonical(value, dtype)))
    fresh, again = bpfast.Network([3, 4, 2], seed=1), bpfast.Network([3, 4, 2], seed=1)
    call_is_clean(fresh, lambda: fresh.set_parameters_vector(value) or fresh.parameters_vector(),
                  lambda: again.set_parameters_vector(canonical(value, dtype))
                  or again.parameters_vector())
    call_is_clean(NET, lambda: bpfast.Network(value))
    call_is_clean(NET, lambda: bpfast.Network.from_params([value], [value]))
    f = float_dtype(value)
    for function in (bpfast.sigmoid, lambda z: bpfast.activations.activate(z, "tanh")[1],
                     bpfast.activations.softmax):
        call_is_clean(NET, lambda function=function: function(value),
                      lambda function=function: function(canonical(value, f)))
    call_is_clean(NET, lambda: bpfast.Gradient.from_vector(value, [3, 4, 2]),
                  lambda: bpfast.Gradient.from_vector(canonical(value, f), [3, 4, 2]))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                 st.text(max_size=3), st.lists(st.integers(-2, 40), max_size=4)))
def test_scalar_arguments(value):
    X, Y = np.ones((4, 3)), np.zeros((4, 2))
    for keyword in ("epochs", "batch_size", "learning_rate", "n_threads", "early_stopping",
                    "seed", "momentum", "nesterov", "l2", "eps", "betas", "optimizer"):
        arguments = dict(epochs=1, batch_size=2, learning_rate=0.1)
        arguments[keyword] = value
        net = bpfast.Network([3, 4, 2], seed=0)
        call_is_clean(net, lambda net=net, arguments=arguments: net.fit(X, Y, **arguments))
    call_is_clean(NET, lambda: NET.step(NET.gradient(X, Y), value))
    call_is_clean(NET, lambda: bpfast.Network(value))
    call_is_clean(NET, lambda: bpfast.Network([3, 2], dtype=value))
    for keyword in ("activation", "output_activation", "cost"):
        call_is_clean(NET, lambda keyword=keyword: bpfast.Network([3, 2], **{keyword: value}))
    call_is_clean(NET, lambda: bpfast.Network([3, 2], seed=value))


def test_accepted_pairs_are_common():
    """The strategy of `pairs` reaches the kernels: most of its draws are accepted."""
    accepted = []

    @settings(max_examples=200, deadline=None, database=None)
    @given(pairs())
    def count(pair):
        try:
            NET.gradient(*pair)
            accepted.append(True)
        except DOCUMENTED:
            accepted.append(False)

    count()
    print(f"{sum(accepted)} of {len(accepted)} pairs accepted")
    assert sum(accepted) >= 0.3 * len(accepted), (sum(accepted), len(accepted))
