"""The public API: shapes, layout, single examples versus batches, and gradient descent."""
import copy
import pickle
import warnings

import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import relative_difference

from conftest import make_problem


def test_attributes_follow_the_notation(dtype):
    net = bpfast.Network([4, 3, 2], dtype=dtype, seed=0)
    assert net.sizes == (4, 3, 2) and net.L == 2
    assert [w.shape for w in net.weights] == [(3, 4), (2, 3)]   # w^(l): (n_l, n_{l-1})
    assert [b.shape for b in net.biases] == [(3,), (2,)]
    assert net.dtype == np.dtype(dtype)
    assert all(p.dtype == np.dtype(dtype) for p in net.weights + net.biases)
    assert net.n_params == 3 * 5 + 2 * 4


def test_seeded_initialisation_is_reproducible_and_scaled():
    a, b = bpfast.Network([400, 300, 2], seed=7), bpfast.Network([400, 300, 2], seed=7)
    assert np.array_equal(a.parameters_vector(), b.parameters_vector())
    assert not np.array_equal(a.parameters_vector(),
                              bpfast.Network([400, 300, 2], seed=8).parameters_vector())
    # w^(1) ~ N(0, 1/n0): standard deviation 1/√400 = 0.05; biases ~ N(0, 1).
    assert a.weights[0].std() == pytest.approx(0.05, rel=0.02)
    assert a.biases[0].std() == pytest.approx(1.0, rel=0.15)
    # The same seed gives the same network in float32, rounded.
    c = bpfast.Network([400, 300, 2], seed=7, dtype="float32")
    assert np.array_equal(c.parameters_vector(), a.parameters_vector().astype(np.float32))


def test_from_params_copies_and_infers_sizes():
    w = [np.ones((3, 2)), np.full((1, 3), 2.0)]
    b = [np.zeros(3), np.array([0.5])]
    net = bpfast.Network.from_params(w, b)
    assert net.sizes == (2, 3, 1)
    w[0][0, 0] = 99.0
    assert net.weights[0][0, 0] == 1.0
    assert bpfast.Network.from_params([wl.astype(np.float32) for wl in w],
                                      [bl.astype(np.float32) for bl in b]).dtype == np.float32


def test_from_params_rejects_layers_that_do_not_chain():
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(1, 3\)"):
        bpfast.Network.from_params([np.ones((3, 2)), np.ones((1, 4))], [np.zeros(3), np.zeros(1)])
    with pytest.raises(ValueError, match=r"biases\[0\] must have shape \(3,\)"):
        bpfast.Network.from_params([np.ones((3, 2))], [np.zeros(2)])


def test_forward_trace_of_one_example_and_of_a_batch():
    net, X, Y = make_problem([3, 4, 2], 5)
    batch = net.forward(X)
    assert len(batch.z) == 2 and len(batch.a) == 3
    assert np.array_equal(batch.a[0], X)
    assert [z.shape for z in batch.z] == [(5, 4), (5, 2)]
    one = net.forward(X[3])
    assert [a.shape for a in one.a] == [(3,), (4,), (2,)]
    for l in range(2):
        np.testing.assert_array_equal(one.z[l], batch.z[l][3])
    # The definitions hold exactly as written on the slide.
    w1, b1 = net.weights[0], net.biases[0]
    np.testing.assert_allclose(one.z[0], w1 @ X[3] + b1, rtol=1e-14)
    np.testing.assert_allclose(one.a[1], 1 / (1 + np.exp(-one.z[0])), rtol=1e-14)
    np.testing.assert_array_equal(net.predict(X), batch.a[-1])


def test_cost_is_C0_for_one_example_and_the_mean_for_a_batch():
    net, X, Y = make_problem([3, 4, 2], 5)
    a_L = net.predict(X)
    C0 = [float(np.sum((a_L[k] - Y[k]) ** 2)) for k in range(5)]   # no factor ½
    assert net.cost(X[2], Y[2]) == pytest.approx(C0[2], rel=1e-14)
    assert net.cost(X, Y) == pytest.approx(np.mean(C0), rel=1e-14)


def test_per_example_gradients_average_to_the_batch_gradient(dtype):
    net, X, Y = make_problem([5, 4, 3, 2], 9, dtype)
    per_example = net.per_example_gradients(X, Y)
    assert per_example.per_example
    assert [w.shape for w in per_example.w] == [(9, 4, 5), (9, 3, 4), (9, 2, 3)]
    assert [b.shape for b in per_example.b] == [(9, 4), (9, 3), (9, 2)]
    tolerance = 1e-14 if dtype == "float64" else 1e-6
    mean = net.gradient(X, Y).vector()
    assert relative_difference(per_example.vector().mean(axis=0), mean) <= tolerance
    assert relative_difference(per_example.mean().vector(), mean) <= tolerance
    for k in range(9):
        assert relative_difference(per_example.vector()[k],
                                   net.backprop(X[k], Y[k]).vector()) <= tolerance


def test_gradient_vector_is_in_the_slides_order():
    """∇C = (∂C/∂w^(1) row by row, ∂C/∂b^(1), ∂C/∂w^(2), ∂C/∂b^(2)), built here from the pure-Python
    reference's nested lists — not from views of the same vector — and θ likewise from the
    parameters as given."""
    w = [[[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], [[0.7, -0.8], [0.9, 1.0]]]
    b = [[0.01, -0.02], [0.03, 0.04]]
    net = bpfast.Network.from_params([np.array(m) for m in w], [np.array(v) for v in b])
    X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    dC_dw, dC_db = bpfast.reference.gradient(w, b, X.tolist(), Y.tolist())
    in_order = [x for l in range(2) for x in [v for row in dC_dw[l] for v in row] + dC_db[l]]
    assert relative_difference(net.gradient(X, Y).vector(), in_order) <= 1e-15
    np.testing.assert_array_equal(net.parameters_vector(),
                                  [0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.01, -0.02,
                                   0.7, -0.8, 0.9, 1.0, 0.03, 0.04])
    assert net.gradient(X, Y).vector().shape == (net.n_params,) == (2 * 4 + 2 * 3,)


def test_gradient_of_one_example_is_the_references_backprop():
    net, X, Y = make_problem([3, 2, 2], 1)
    w, b = [m.tolist() for m in net.weights], [v.tolist() for v in net.biases]
    dC0_dw, dC0_db = bpfast.reference.backprop(w, b, X[0].tolist(), Y[0].tolist())
    expected = np.concatenate([np.concatenate([np.ravel(m), v]) for m, v in zip(dC0_dw, dC0_db)])
    for g in (net.gradient(X[0], Y[0]), net.backprop(X[0], Y[0]), net.gradient(X, Y)):
        assert relative_difference(g.vector(), expected) <= 1e-15


def test_parameters_vector_round_trip_and_copies():
    net = bpfast.Network([3, 2, 2], seed=1)
    theta = net.parameters_vector()
    theta[0] = 42.0
    assert net.weights[0][0, 0] != 42.0                 # a copy, not a view
    net.set_parameters_vector(theta)
    assert net.weights[0][0, 0] == 42.0
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_step_is_one_gradient_descent_step():
    net, X, Y = make_problem([3, 4, 2], 6)
    theta, g = net.parameters_vector(), net.gradient(X, Y)
    before = net.cost(X, Y)
    net.step(g, 0.5)
    np.testing.assert_array_equal(net.parameters_vector(), theta - 0.5 * g.vector())
    assert net.cost(X, Y) < before


def test_descent_drives_the_cost_down():
    net, X, Y = make_problem([2, 3, 1], 4, seed=3)
    costs = []
    for _ in range(200):
        costs.append(net.cost(X, Y))
        net.step(net.gradient(X, Y), 2.0)
    assert costs[-1] < 0.5 * costs[0]


def test_step_refuses_a_step_that_would_overflow():
    net, X, Y = make_problem([3, 4, 2], 6)
    theta = net.parameters_vector()
    huge = bpfast.Gradient.from_vector(np.full(net.n_params, 1e10), net.sizes)
    with pytest.raises(ValueError, match="non-finite"):
        net.step(huge, 1e300)
    np.testing.assert_array_equal(net.parameters_vector(), theta)


def test_weights_can_be_replaced_but_not_rebound_item_by_item():
    net = bpfast.Network([2, 2], seed=0)
    net.weights = [np.eye(2)]
    np.testing.assert_array_equal(net.weights[0], np.eye(2))
    with pytest.raises(TypeError):
        net.weights[0] = np.zeros((2, 2))


def test_float32_stays_float32_end_to_end():
    net, X, Y = make_problem([4, 3, 2], 5, "float32")
    trace = net.forward(X)
    assert all(z.dtype == np.float32 for z in trace.z)
    assert all(a.dtype == np.float32 for a in trace.a)
    assert net.predict(X).dtype == np.float32
    assert net.gradient(X, Y).vector().dtype == np.float32
    assert net.per_example_gradients(X, Y).vector().dtype == np.float32
    assert net.backprop(X[0], Y[0]).vector().dtype == np.float32


@pytest.mark.parametrize("convert", [
    lambda a: a.tolist(),
    lambda a: np.asfortranarray(a),
    lambda a: np.repeat(a, 2, axis=1)[:, ::2],                       # non-contiguous
    lambda a: a.astype(np.int64),                                    # integers
    lambda a: a.astype(np.float32),
], ids=["list", "fortran", "strided", "int64", "float32"])
def test_array_likes_are_accepted_and_give_the_same_gradient(convert):
    net, X, Y = make_problem([4, 3, 2], 5)
    X = np.round(X * 3)                   # exactly representable in every form tested
    Xc = convert(X)
    assert relative_difference(net.gradient(Xc, Y).vector(), net.gradient(X, Y).vector()) == 0


def test_read_only_inputs_are_accepted():
    net, X, Y = make_problem([4, 3, 2], 5)
    expected = net.gradient(X, Y).vector()
    X.setflags(write=False)
    Y.setflags(write=False)
    np.testing.assert_array_equal(net.gradient(X, Y).vector(), expected)
    assert net.per_example_gradients(X, Y).vector().shape == (5, net.n_params)
    np.testing.assert_array_equal(net.forward(X).a[0], X)


def test_sigmoid_saturates_without_overflow_or_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bpfast.sigmoid(-1000.0) == 0.0
        assert bpfast.sigmoid(1000.0) == 1.0
        assert bpfast.sigmoid(np.float32(-1000)) == 0.0
        assert bpfast.sigmoid_prime(1000.0) == 0.0
        net = bpfast.Network.from_params([[[1.0]]], [[0.0]])
        trace = net.forward(np.array([[-1000.0], [1000.0]]))
    np.testing.assert_array_equal(trace.a[1].ravel(), [0.0, 1.0])
    # σ'(z) keeps its relative precision in the tails, where 1 − σ(z) would round to 0.
    assert bpfast.sigmoid_prime(40.0) == pytest.approx(np.exp(-40.0), rel=1e-14)
    assert bpfast.sigmoid(np.float32(0.5)).dtype == np.float32


def test_networks_pickle_and_deepcopy():
    net, X, Y = make_problem([3, 4, 2], 5)
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        np.testing.assert_array_equal(clone.parameters_vector(), net.parameters_vector())
        clone.step(clone.gradient(X, Y), 1.0)
        assert not np.array_equal(clone.parameters_vector(), net.parameters_vector())


def test_copies_keep_the_activations_and_the_cost():
    net = bpfast.Network([3, 4, 2], activation="tanh", output_activation="softmax",
                         cost="cross_entropy", seed=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert clone.activations == ("tanh", "softmax") and clone.cost_function == "cross_entropy"
        np.testing.assert_array_equal(clone.predict(X), net.predict(X))
        np.testing.assert_array_equal(clone.gradient(X, [0, 1, 1, 0, 1]).vector(),
                                      net.gradient(X, [0, 1, 1, 0, 1]).vector())


def test_gradient_from_vector():
    # P = 2·(2 + 1) + 1·(2 + 1) = 9: w^(1) (2×2), b^(1), w^(2) (1×2), b^(2).
    g = bpfast.Gradient.from_vector(np.arange(9.0), [2, 2, 1])
    np.testing.assert_array_equal(g.w[0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(g.b[0], [4, 5])
    np.testing.assert_array_equal(g.w[1], [[6, 7]])
    np.testing.assert_array_equal(g.b[1], [8])
    with pytest.raises(ValueError, match="length P = 12"):
        bpfast.Gradient.from_vector(np.arange(9.0), [2, 2, 2])


def test_reprs_are_informative():
    net, X, Y = make_problem([3, 4, 2], 5)
    assert repr(net) == ("Network(sizes=[3, 4, 2], activation='sigmoid', cost='quadratic', "
                         "dtype='float64')")
    assert "n=5" in repr(net.per_example_gradients(X, Y))
    assert "L=2" in repr(net.forward(X))


@pytest.mark.parametrize("init,deviation,biases", [
    ("scaled_normal", 1 / np.sqrt(400), "normal"),
    ("normal", 1.0, "normal"),
    ("glorot", np.sqrt(2 / (400 + 300)), "zero"),
    ("he", np.sqrt(2 / 400), "zero"),
])
def test_initialisations(init, deviation, biases):
    net = bpfast.Network([400, 300, 2], init=init, seed=5)
    assert net.weights[0].std() == pytest.approx(deviation, rel=0.02)
    assert abs(net.weights[0].mean()) < 0.01 * deviation
    if biases == "zero":
        assert not net.biases[0].any()
    else:
        assert net.biases[0].std() == pytest.approx(1.0, rel=0.15)
    again = bpfast.Network([400, 300, 2], init=init, seed=5)
    np.testing.assert_array_equal(again.parameters_vector(), net.parameters_vector())


def test_unknown_init_lists_the_choices():
    with pytest.raises(ValueError, match=r"init must be one of \['scaled_normal', 'normal', "
                                         r"'glorot', 'he'\], got 'xavier'"):
        bpfast.Network([3, 2], init="xavier")


# --- a Gradient is arithmetic, as a numpy array is ------------------------------------------------

def test_gradients_add_subtract_scale_and_sum_like_their_vectors(dtype):
    net, X, Y = make_problem([4, 3, 2], 12, dtype=dtype)
    g, h = net.gradient(X[:6], Y[:6]), net.gradient(X[6:], Y[6:])
    u, v = g.vector(), h.vector()
    cases = {"g + h": (g + h, u + v), "g - h": (g - h, u - v), "2 g": (2 * g, 2 * u),
             "g * 0.5": (g * 0.5, u * 0.5), "g / 6": (g / 6, u / 6), "-g": (-g, -u),
             "np.float64(3) g": (np.float64(3) * g, 3 * u), "sum": (sum([g, h, g]), u + v + u)}
    for name, (result, expected) in cases.items():
        assert isinstance(result, bpfast.Gradient), name
        assert result.sizes == g.sizes and result.dtype == g.dtype, name
        np.testing.assert_array_equal(result.vector(), expected.astype(g.dtype), err_msg=name)
        np.testing.assert_array_equal(result.w[0], result.vector()[:12].reshape(3, 4))
    # The mean of the two halves' mean gradients is the whole batch's (equal halves).
    np.testing.assert_allclose(((g + h) / 2).vector(), net.gradient(X, Y).vector(),
                               rtol=1e-12 if dtype == "float64" else 1e-5)
    np.testing.assert_array_equal(g.vector(), u)            # the operands are left as they were


def test_gradients_of_other_sizes_dtypes_or_kinds_do_not_mix():
    net, X, Y = make_problem([4, 3, 2], 6)
    g = net.gradient(X, Y)
    with pytest.raises(ValueError, match=r"sizes .* must be the same"):
        g + make_problem([4, 5, 2], 6)[0].gradient(X, Y)
    with pytest.raises(ValueError, match="must be the same"):
        g + net.per_example_gradients(X, Y)
    with pytest.raises(TypeError, match="float32 and a float64"):
        g + make_problem([4, 3, 2], 6, dtype="float32")[0].gradient(X, Y)
    for bad in (lambda: g + 1.0, lambda: g * g, lambda: g * "2", lambda: g + X, lambda: True * g):
        with pytest.raises(TypeError):
            bad()


def test_a_networks_shape_and_choices_are_read_only():
    net, X, Y = make_problem([4, 3, 2], 6)
    before = net.predict(X)
    for key, value in (("sizes", (5, 5)), ("activations", ("relu", "relu")), ("dtype", "float32"),
                       ("activation", "relu"), ("cost_function", "cross_entropy")):
        with pytest.raises(AttributeError, match=f"{key} is fixed when a Network is made"):
            setattr(net, key, value)
    np.testing.assert_array_equal(net.predict(X), before)
    net.weights = [np.zeros((3, 4)), np.zeros((2, 3))]                 # parameters are not
    net.biases = [np.zeros(3), np.zeros(2)]
    np.testing.assert_array_equal(net.predict(X), 0.5)
