"""Hypothesis throws random shapes, dtypes, memory orders and values at the public API: only the
documented exceptions ever come out, and a refused call leaves the network as it was."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import bpfast

DOCUMENTED = (ValueError, TypeError, FloatingPointError)

dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8,
                          np.bool_, np.complex128, np.dtype("U3"), np.object_])
shapes = st.one_of(st.just(()), st.tuples(st.integers(0, 6)),
                   st.tuples(st.integers(0, 6), st.integers(0, 6)),
                   st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)))


@st.composite
def anything(draw):
    """An array of any dtype, shape and order, with any values — or a list, or a scalar."""
    dtype = np.dtype(draw(dtypes))
    shape = draw(shapes)
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
                                                               50)))
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


def call_is_clean(call):
    theta = NET.parameters_vector()
    try:
        call()
    except bpfast.TrainingDiverged as diverged:
        # A huge learning rate or l2 makes training diverge: documented, and the network keeps
        # the last finite step.
        assert diverged.mini_batch >= 1
    except DOCUMENTED:
        np.testing.assert_array_equal(NET.parameters_vector(), theta)


@settings(max_examples=300, deadline=None)
@given(anything(), anything())
def test_methods_taking_inputs_and_targets(X, Y):
    for method in ("cost", "gradient", "per_example_gradients", "backprop", "evaluate"):
        call_is_clean(lambda: getattr(NET, method)(X, Y))
    call_is_clean(lambda: bpfast.Network([3, 4, 2], seed=1).fit(
        X, Y, epochs=1, batch_size=2, learning_rate=0.1))


@settings(max_examples=200, deadline=None)
@given(anything())
def test_methods_taking_one_array(value):
    call_is_clean(lambda: NET.forward(value))
    call_is_clean(lambda: NET.predict(value))
    call_is_clean(lambda: bpfast.Network([3, 4, 2], seed=1).set_parameters_vector(value))
    call_is_clean(lambda: bpfast.Network(value))
    call_is_clean(lambda: bpfast.Network.from_params([value], [value]))
    call_is_clean(lambda: bpfast.sigmoid(value))
    call_is_clean(lambda: bpfast.activations.activate(value, "tanh"))
    call_is_clean(lambda: bpfast.activations.softmax(value))
    call_is_clean(lambda: bpfast.Gradient.from_vector(value, [3, 4, 2]))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                 st.text(max_size=3), st.lists(st.integers(-2, 40), max_size=4)))
def test_scalar_arguments(value):
    X, Y = np.ones((4, 3)), np.zeros((4, 2))
    for keyword in ("epochs", "batch_size", "learning_rate", "n_threads", "early_stopping",
                    "seed", "momentum", "nesterov", "l2", "eps", "betas", "optimizer"):
        arguments = dict(epochs=1, batch_size=2, learning_rate=0.1)
        arguments[keyword] = value
        call_is_clean(lambda: bpfast.Network([3, 4, 2], seed=0).fit(X, Y, **arguments))
    call_is_clean(lambda: NET.step(NET.gradient(X, Y), value))
    call_is_clean(lambda: bpfast.Network(value))
    call_is_clean(lambda: bpfast.Network([3, 2], dtype=value))
    for keyword in ("activation", "output_activation", "cost"):
        call_is_clean(lambda: bpfast.Network([3, 2], **{keyword: value}))
    call_is_clean(lambda: bpfast.Network([3, 2], seed=value))
