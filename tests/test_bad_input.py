"""Every public entry point refuses bad input with a clear exception, and the model survives it."""
import numpy as np
import pytest

import bpfast

from conftest import make_problem


@pytest.fixture
def problem():
    return make_problem([4, 3, 2], 5)


# --- constructing a network ----------------------------------------------------------------------

@pytest.mark.parametrize("sizes,error,message", [
    ("784", TypeError, "sizes must be a sequence"),
    (784, TypeError, "sizes must be a sequence"),
    ([3], ValueError, "at least two layers"),
    ([], ValueError, "at least two layers"),
    ([[3, 2]], ValueError, "flat sequence"),
    ([3, 0], ValueError, r"sizes\[1\] must be a positive integer, got 0"),
    ([3, -2], ValueError, r"sizes\[1\] must be a positive integer, got -2"),
    ([3, 2.5], TypeError, r"sizes\[1\] must be an integer"),
    ([3.0, 2], TypeError, r"sizes\[0\] must be an integer"),
    ([3, True], TypeError, r"sizes\[1\] must be an integer"),
    ([3, "2"], TypeError, r"sizes\[1\] must be an integer"),
])
def test_bad_sizes(sizes, error, message):
    with pytest.raises(error, match=message):
        bpfast.Network(sizes)


def test_a_network_too_large_for_memory_is_a_clear_memory_error():
    with pytest.raises(MemoryError, match=r"P = 323,249,671,050 parameters, 2,408.4 GiB"):
        bpfast.Network([568550, 568550])


def test_numpy_integer_sizes_are_fine():
    assert bpfast.Network(np.array([3, 2])).sizes == (3, 2)


@pytest.mark.parametrize("keyword,value,message", [
    ("activation", "swish", r"activation must be one of \['sigmoid', 'tanh', 'relu', "
                            r"'identity', 'softmax'\], got 'swish'"),
    ("output_activation", "gelu", r"output_activation must be one of \['sigmoid', "),
    ("cost", "hinge", r"cost must be one of \['quadratic', 'cross_entropy'\], got 'hinge'"),
    ("dtype", "int32", r"dtype must be one of \['float32', 'float64'\]"),
    ("dtype", "float16", "dtype must be one of"),
    ("dtype", "banana", "dtype must be one of"),
])
def test_unknown_choices_list_the_valid_ones(keyword, value, message):
    with pytest.raises(ValueError, match=message):
        bpfast.Network([3, 2], **{keyword: value})


@pytest.mark.parametrize("seed,error,message", [
    ("abc", TypeError, r"seed must be None, an integer ≥ 0 or a numpy.random.Generator, got "
                       r"'abc' \(str\)"),
    (1.5, TypeError, "seed must be None, an integer"),
    (True, TypeError, "seed must be None, an integer"),
    (-1, ValueError, "seed must be an integer ≥ 0, got -1"),
])
def test_bad_seed(seed, error, message):
    with pytest.raises(error, match=message):
        bpfast.Network([3, 2], seed=seed)
    net = bpfast.Network([3, 2], seed=0)
    before = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.fit(np.ones((2, 3)), np.ones((2, 2)), epochs=1, batch_size=1, learning_rate=0.1,
                seed=seed)
    np.testing.assert_array_equal(net.parameters_vector(), before)


@pytest.mark.parametrize("weights,biases,message", [
    ([], [], "at least one matrix"),
    ([np.ones((2, 3))], [], "one entry per layer"),
    ([np.ones(3)], [np.ones(3)], r"weights\[0\] must be a non-empty 2-D array"),
    ([np.ones((0, 3))], [np.ones(0)], r"weights\[0\] must be a non-empty 2-D array"),
    ([np.full((2, 3), np.nan)], [np.ones(2)], r"Input weights\[0\] contains NaN"),
    ([np.ones((2, 3))], [[1.0, np.inf]], r"Input biases\[0\] contains infinity"),
    ([np.ones((2, 3), dtype=complex)], [np.ones(2)], r"weights\[0\] must hold real numbers"),
])
def test_bad_from_params(weights, biases, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bpfast.Network.from_params(weights, biases)


# --- inputs and targets --------------------------------------------------------------------------

BAD_X = [
    (np.ones((5, 3)), ValueError, "X has 3 values per example, but the network expects n0"),
    (np.ones(7), ValueError, "X has 7 values per example"),
    (np.ones((5, 4, 1)), ValueError, r"X must be 1-D \(one example\) or 2-D"),
    (np.float64(1.0), ValueError, "X must be 1-D"),
    (np.ones((0, 4)), ValueError, "Found array with 0 examples"),
    (np.full((5, 4), np.nan), ValueError, "Input X contains NaN"),
    (np.full((5, 4), np.inf), ValueError, "Input X contains infinity"),
    (np.full((5, 4), "a"), TypeError, "X must hold real numbers, got an array of dtype <U1"),
    (np.ones((5, 4), dtype=complex), TypeError, "X must hold real numbers"),
    (np.array([[1, None, 2, 3]] * 5), TypeError,
     "X must hold real numbers, got an array of dtype object"),
    ([[1, 2, 3, 4], [1, 2]], ValueError, "X could not be converted to a numeric array"),
]


@pytest.mark.parametrize("X,error,message", BAD_X)
def test_bad_X_in_forward(problem, X, error, message):
    net, _, _ = problem
    with pytest.raises(error, match=message):
        net.forward(X)


@pytest.mark.parametrize("X,error,message", BAD_X)
def test_bad_X_in_gradient(problem, X, error, message):
    net, _, Y = problem
    with pytest.raises(error, match=message):
        net.gradient(X, Y)


@pytest.mark.parametrize("method", ["cost", "gradient", "per_example_gradients"])
@pytest.mark.parametrize("Y,error,message", [
    (np.ones((4, 2)), ValueError, r"inconsistent numbers of samples: \[5, 4\]"),
    (np.ones((5, 3)), ValueError, "Y has 3 values per example, but the network expects nL"),
    (np.full((5, 2), np.nan), ValueError, "Input Y contains NaN"),
    (np.full((5, 2), -np.inf), ValueError, "Input Y contains infinity"),
    (np.full((5, 2), "x"), TypeError, "Y must hold real numbers"),
])
def test_bad_Y(problem, method, Y, error, message):
    net, X, _ = problem
    with pytest.raises(error, match=message):
        getattr(net, method)(X, Y)


def test_one_example_and_a_batch_cannot_be_mixed(problem):
    net, X, Y = problem
    with pytest.raises(ValueError, match="both be one example"):
        net.gradient(X[0], Y)


def test_backprop_takes_one_example(problem):
    net, X, Y = problem
    with pytest.raises(ValueError, match=r"X must be 1-D \(one example\)"):
        net.backprop(X, Y)


def test_per_example_gradients_take_a_batch(problem):
    net, X, Y = problem
    with pytest.raises(ValueError, match=r"X must be 2-D .* X.reshape\(1, -1\)"):
        net.per_example_gradients(X[0], Y[0])


def test_values_too_large_for_float32_are_refused():
    net, X, Y = make_problem([4, 3, 2], 5, "float32")
    X[1, 2] = 1e300
    with pytest.raises(ValueError, match=r"infinity or a value too large for dtype\('float32'\)"):
        net.gradient(X, Y)


# --- parameters and steps ------------------------------------------------------------------------

@pytest.mark.parametrize("rate,error,message", [
    (0.0, ValueError, "learning_rate must be a finite number > 0, got 0.0"),
    (-0.1, ValueError, "learning_rate must be a finite number > 0"),
    (float("nan"), ValueError, "learning_rate must be a finite number > 0, got nan"),
    (float("inf"), ValueError, "learning_rate must be a finite number > 0"),
    ("0.1", TypeError, "learning_rate must be a real number"),
    (True, TypeError, "learning_rate must be a real number"),
    (None, TypeError, "learning_rate must be a real number"),
])
def test_bad_learning_rate_leaves_the_network_unchanged(problem, rate, error, message):
    net, X, Y = problem
    theta = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.step(net.gradient(X, Y), rate)
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_step_needs_a_matching_mean_gradient(problem):
    net, X, Y = problem
    with pytest.raises(TypeError, match="gradient must be a bpfast.Gradient"):
        net.step(net.gradient(X, Y).vector(), 0.1)
    other = bpfast.Network([4, 5, 2], seed=0)
    with pytest.raises(ValueError, match=r"gradient is for sizes \[4, 5, 2\]"):
        net.step(other.gradient(X, Y), 0.1)
    with pytest.raises(ValueError, match="per-example gradients"):
        net.step(net.per_example_gradients(X, Y), 0.1)


def test_step_refuses_a_non_finite_gradient(problem):
    net, X, Y = problem
    g = net.gradient(X, Y)
    g.w[0][0, 0] = np.nan
    theta = net.parameters_vector()
    with pytest.raises(ValueError, match="Input gradient contains NaN"):
        net.step(g, 0.1)
    np.testing.assert_array_equal(net.parameters_vector(), theta)


@pytest.mark.parametrize("vector,message", [
    (np.ones(5), r"vector must have shape \(23,\)"),
    (np.ones((1, 23)), r"vector must have shape \(23,\)"),
    (np.full(23, np.nan), "Input vector contains NaN"),
])
def test_bad_parameters_vector_leaves_the_network_unchanged(problem, vector, message):
    net, _, _ = problem
    theta = net.parameters_vector()
    with pytest.raises(ValueError, match=message):
        net.set_parameters_vector(vector)
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_a_bad_array_among_new_weights_changes_none_of_them(problem):
    net, _, _ = problem
    theta = net.parameters_vector()
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(2, 3\)"):
        net.weights = [np.zeros((3, 4)), np.zeros((3, 3))]
    with pytest.raises(ValueError, match="must hold L = 2 arrays"):
        net.biases = [np.zeros(3)]
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_bad_check_arguments(problem):
    net, X, Y = problem
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        bpfast.check(net, X, Y[:2])


def test_nan_written_into_the_weights_is_named_as_such(problem):
    net, X, Y = problem
    net.weights[1][0, 0] = np.nan
    for call in (lambda: net.predict(X), lambda: net.gradient(X, Y), lambda: net.cost(X, Y)):
        with pytest.raises(ValueError, match=r"weights\[1\] \(w\^\(2\)\) contains NaN"):
            call()
    net.weights[1][0, 0] = 0.0
    net.biases[0][1] = np.nan
    with pytest.raises(ValueError, match=r"biases\[0\] \(b\^\(1\)\) contains NaN"):
        net.predict(X)


def test_a_label_stands_for_one_examples_target_and_a_column_of_labels_gets_a_hint():
    net = bpfast.Network([3, 4, 5], seed=0)
    x = np.array([0.1, 0.2, 0.3])
    assert net.cost(x, 2) == net.cost(x, np.eye(5)[2])
    np.testing.assert_array_equal(net.backprop(x, 2).vector(),
                                  net.backprop(x, np.eye(5)[2]).vector())
    with pytest.raises(ValueError, match=r"y is a class label: it must be an integer in \[0, 5\)"):
        net.cost(x, 7)
    X, labels = np.ones((4, 3)), np.array([0, 1, 4, 2])
    with pytest.raises(ValueError, match=r"Y has 1 value per example, but the network expects "
                                         r"nL \(sizes\[-1\]\) = 5\. If it holds class labels, "
                                         r"pass them 1-D: Y\.ravel\(\)"):
        net.gradient(X, labels.reshape(-1, 1))


@pytest.mark.parametrize("call,error,message", [
    (lambda w, b, x, y: bpfast.reference.forward(w, b, x, activations="relu"), TypeError,
     r"activations must be a sequence of L = 2 names"),
    (lambda w, b, x, y: bpfast.reference.backprop(w, b, x, y, activations=["relu"]), ValueError,
     r"one activation per layer: L = 2 .* got 1"),
    (lambda w, b, x, y: bpfast.reference.cost(w, b, x, y, activations=["relu"] * 3), ValueError,
     r"L = 2 .* got 3"),
    (lambda w, b, x, y: bpfast.reference.cost(w, b, x, y, cost="ce"), ValueError,
     r"cost must be one of \['quadratic', 'cross_entropy'\], got 'ce'"),
    (lambda w, b, x, y: bpfast.reference.gradient(w, b, [x], [y],
                                                  activations=["softmax", "sigmoid"]),
     ValueError, "softmax belongs to the output layer only"),
    (lambda w, b, x, y: bpfast.reference.backprop(w, b, x[:2], y), ValueError,
     r"x must have n0 = 3 values, got 2"),
    (lambda w, b, x, y: bpfast.reference.backprop(w, b, x, [float("nan"), 0.0]), ValueError,
     r"y\[0\] must be finite"),
    (lambda w, b, x, y: bpfast.reference.backprop(w, b, x, ["a", 0.0]), TypeError,
     r"y\[0\] must be a real number"),
    (lambda w, b, x, y: bpfast.reference.backprop(w[:1], b, x, y), ValueError,
     "one entry per layer"),
    (lambda w, b, x, y: bpfast.reference.backprop([w[0], [[1.0]]], b, x, y), ValueError,
     r"weights\[1\] must have one row per entry of biases\[1\]"),
    (lambda w, b, x, y: bpfast.reference.cost(w, b, x, [2.0, 0.0], cost="cross_entropy"),
     ValueError, r"probabilities in \[0, 1\]"),
    (lambda w, b, x, y: bpfast.reference.output_error([0.1, 0.2], [0.5, 0.5], [1.0, 0.0],
                                                      "softmax", "ce"), ValueError,
     "cost must be one of"),
    (lambda w, b, x, y: bpfast.reference.step(w, b, w, b, 0.1, {}, optimizer="adagrad"),
     ValueError, r"optimizer must be one of \['sgd', 'adam'\]"),
    (lambda w, b, x, y: bpfast.reference.step(w, b, w, b[:1], 0.1, {}), ValueError,
     "one entry per layer"),
    (lambda w, b, x, y: bpfast.reference.train_epoch(w, b, [x], [y], [1], 1, 0.1, {}),
     ValueError, "order holds row 1, but X has 1 examples"),
    (lambda w, b, x, y: bpfast.reference.train_epoch(w, b, [x], [y], [0], 0, 0.1, {}),
     ValueError, "batch_size must be an integer ≥ 1"),
    (lambda w, b, x, y: bpfast.reference.train_epoch(w, b, [x], [y], [0], 1, 0.1, {}, mu=0.9),
     TypeError, r"unknown keyword\(s\) \['mu'\]"),
])
def test_the_reference_checks_its_arguments_as_the_network_does(call, error, message):
    """bpfast.reference is public: a wrong name or shape is a clear error, not a KeyError, an
    IndexError or a silently different computation."""
    net = bpfast.Network([3, 4, 2], seed=0)
    w, b = [w.tolist() for w in net.weights], [b.tolist() for b in net.biases]
    with pytest.raises(error, match=message):
        call(w, b, [0.1, 0.2, 0.3], [1.0, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_finiteness_check_finds_every_non_finite_value_wherever_it_is(dtype):
    """The one-pass check of X and Y (blocks of 4,096 numbers, x − x summed in vectors) against
    numpy's isfinite, at the edges of the array and of its blocks, and at every place of short
    runs (the vectors' and the scalar tail's); the largest, smallest and subnormal numbers and
    −0 are finite. Arrays it cannot read in one pass (strided, big-endian) go to numpy."""
    from bpfast._validation import all_finite
    info = np.finfo(dtype)
    X = np.random.default_rng(0).normal(size=(41, 250)).astype(dtype)     # 10,250 numbers
    X.flat[[0, 1, 4095, 4096, 8191, 10249]] = [info.max, -info.max, info.tiny, -0.0,
                                               info.smallest_subnormal, -info.smallest_subnormal]
    assert all_finite(X) and all_finite(X[:0]) and all_finite(X[:, ::3])
    for position in (0, 4095, 4096, 8192, 10249):
        for bad in (np.nan, np.inf, -np.inf, -np.nan):
            Y = X.copy()
            Y.flat[position] = bad
            assert not all_finite(Y), (position, bad)
            assert not all_finite(Y.astype(Y.dtype.newbyteorder()))
            assert all_finite(Y[:, ::2]) == bool(np.isfinite(Y[:, ::2]).all())
    for n in range(1, 70):                  # 4 vectors of up to 16 numbers, then 1, then one
        for position in range(n):
            run = X.flat[:n].copy()
            run[position] = np.inf if position % 2 else np.nan
            assert all_finite(X.flat[:n].copy()) and not all_finite(run), (n, position)
    # A NaN of any payload: the exponent is what makes it one.
    bits = np.uint32 if dtype == "float32" else np.uint64
    Y = X.copy()
    Y.view(bits).flat[77] = np.asarray(info.max, dtype).view(bits) | (
        bits(0x7F800001) if dtype == "float32" else bits(0x7FF0000000000001))
    assert np.isnan(Y.flat[77]) and not all_finite(Y)
