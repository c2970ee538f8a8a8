"""Shared helpers: random problems, and the tolerances every comparison uses."""
import numpy as np
import pytest

import bpfast

DTYPES = ["float64", "float32"]

#: Largest relative difference of the kernels against the pure-Python reference (issue #2).
REFERENCE_TOLERANCE = {"float64": 1e-12, "float32": 1e-4}


def make_problem(sizes, n, dtype="float64", seed=0):
    """A seeded network and a batch of n examples: inputs ~ N(0, 1), targets in [0, 1]."""
    rng = np.random.default_rng(seed + 1000)
    net = bpfast.Network(sizes, dtype=dtype, seed=seed)
    X = rng.normal(size=(n, sizes[0]))
    Y = rng.random((n, sizes[-1]))
    return net, X, Y


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param
