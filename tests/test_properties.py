"""Property tests: random shapes, values and memory layouts, against the reference and invariants."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import bpfast
from bpfast.crosscheck import reference_gradient, relative_difference

from conftest import REFERENCE_TOLERANCE

sizes_strategy = st.lists(st.integers(1, 9), min_size=2, max_size=5)
dtype_strategy = st.sampled_from(["float64", "float32"])


@st.composite
def problems(draw, max_n=8, scale=5.0):
    sizes = draw(sizes_strategy)
    n = draw(st.integers(1, max_n))
    dtype = draw(dtype_strategy)
    values = st.floats(-scale, scale, allow_nan=False, width=32)
    X = draw(arrays(np.float64, (n, sizes[0]), elements=values))
    Y = draw(arrays(np.float64, (n, sizes[-1]), elements=st.floats(0, 1, width=32)))
    net = bpfast.Network(sizes, dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)))
    return net, X, Y


@settings(max_examples=60, deadline=None)
@given(problems())
def test_gradient_matches_reference(problem):
    net, X, Y = problem
    tolerance = REFERENCE_TOLERANCE[net.dtype.name]
    assert relative_difference(net.gradient(X, Y).vector(),
                               reference_gradient(net, X, Y)) <= tolerance


@settings(max_examples=60, deadline=None)
@given(problems(), st.data())
def test_per_example_rows_are_backprop_and_average_to_the_gradient(problem, data):
    net, X, Y = problem
    per_example = net.per_example_gradients(X, Y).vector()
    k = data.draw(st.integers(0, X.shape[0] - 1))
    # Equal up to rounding: BLAS may order a sum differently for a batch of 1 and of n.
    tolerance = 1e-12 if net.dtype == np.float64 else 1e-5
    assert relative_difference(per_example[k], net.backprop(X[k], Y[k]).vector()) <= tolerance
    assert relative_difference(per_example.mean(axis=0), net.gradient(X, Y).vector()) <= tolerance


@settings(max_examples=40, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_the_mean_does_not_depend_on_the_order_of_examples(problem, random):
    net, X, Y = problem
    order = list(range(X.shape[0]))
    random.shuffle(order)
    tolerance = 1e-12 if net.dtype == np.float64 else 1e-5
    assert relative_difference(net.gradient(X[order], Y[order]).vector(),
                               net.gradient(X, Y).vector()) <= tolerance


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(["C", "F", "strided", "readonly", "list"]))
def test_memory_layout_does_not_change_the_result(problem, layout):
    net, X, Y = problem
    if layout == "F":
        X2 = np.asfortranarray(X)
    elif layout == "strided":
        X2 = np.repeat(X, 3, axis=0)[::3]
    elif layout == "readonly":
        X2 = X.copy()
        X2.setflags(write=False)
    elif layout == "list":
        X2 = X.tolist()
    else:
        X2 = X
    np.testing.assert_array_equal(net.gradient(X2, Y).vector(), net.gradient(X, Y).vector())


@settings(max_examples=40, deadline=None)
@given(problems(max_n=4, scale=1e4))
def test_saturated_networks_stay_finite(problem):
    net, X, Y = problem
    g = net.per_example_gradients(X, Y).vector()
    assert np.isfinite(g).all()
    assert np.isfinite(net.cost(X, Y))
    a_L = net.predict(X)
    assert ((a_L >= 0) & (a_L <= 1)).all()
