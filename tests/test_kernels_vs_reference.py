"""The fast kernels agree with the pure-Python reference on networks of many shapes."""
import numpy as np
import pytest

from bpfast import reference
from bpfast.crosscheck import reference_gradient, relative_difference

from conftest import REFERENCE_TOLERANCE, make_problem

SHAPES = [
    ([1, 1], 1),                      # one layer of one neuron: the slides' simplification
    ([1, 1, 1, 1], 7),                # a line of single neurons
    ([3, 2], 5),                      # one layer
    ([4, 5, 6, 5, 4, 3], 13),         # five layers
    ([64, 32, 10], 50),               # widths up to 64, the largest batch
    ([10, 64, 64, 1], 2),
    ([2, 1, 8, 1, 2], 30),            # bottlenecks of one neuron between wider layers
    ([7, 3, 5], 1),
    ([300, 7, 3], 11),                # more inputs than one cache block of float64 (256)
    ([520, 5, 2], 5),                 # ... and of float32 (512)
    ([9, 7, 5], 70),                  # batches of 64 and more go to BLAS instead
    ([33, 17, 3], 64),
]


@pytest.mark.parametrize("sizes,n", SHAPES, ids=[str(s) for s, _ in SHAPES])
def test_batch_gradient_matches_reference(sizes, n, dtype):
    net, X, Y = make_problem(sizes, n, dtype, seed=len(sizes) + n)
    kernels = net.gradient(X, Y).vector()
    assert kernels.dtype == np.dtype(dtype)
    assert relative_difference(kernels, reference_gradient(net, X, Y)) <= REFERENCE_TOLERANCE[dtype]


@pytest.mark.parametrize("sizes,n", SHAPES, ids=[str(s) for s, _ in SHAPES])
def test_per_example_gradients_match_reference_backprop(sizes, n, dtype):
    net, X, Y = make_problem(sizes, n, dtype, seed=2 * n)
    per_example = net.per_example_gradients(X, Y).vector()
    for k in range(n):
        expected = reference_gradient(net, X[k:k + 1], Y[k:k + 1])
        assert relative_difference(per_example[k], expected) <= REFERENCE_TOLERANCE[dtype]


@pytest.mark.parametrize("sizes,n", SHAPES, ids=[str(s) for s, _ in SHAPES])
def test_forward_pass_and_cost_match_reference(sizes, n, dtype):
    net, X, Y = make_problem(sizes, n, dtype, seed=3 * n)
    trace = net.forward(X)
    weights = [w.tolist() for w in net.weights]
    biases = [b.tolist() for b in net.biases]
    for k in range(n):
        z, a = reference.forward(weights, biases, X[k].tolist())
        for l in range(net.L):
            assert relative_difference(trace.z[l][k], z[l]) <= REFERENCE_TOLERANCE[dtype]
            assert relative_difference(trace.a[l + 1][k], a[l + 1]) <= REFERENCE_TOLERANCE[dtype]
    expected_cost = reference.cost(weights, biases, X.tolist(), Y.tolist())
    assert relative_difference(net.cost(X, Y), expected_cost) <= REFERENCE_TOLERANCE[dtype]


def test_comparison_detects_a_wrong_gradient():
    # The tolerance must be able to fail: one parameter's gradient off by one part in 1e9.
    net, X, Y = make_problem([4, 5, 3], 6)
    wrong = net.gradient(X, Y).vector()
    wrong[7] *= 1 + 1e-9
    assert (relative_difference(wrong, reference_gradient(net, X, Y))
            > REFERENCE_TOLERANCE["float64"])
