"""net.minimize: full-batch training by scipy.optimize.minimize on the kernels' objective."""
import numpy as np
import pytest
from scipy import optimize

import bpfast


def problem(dtype="float64"):
    rng = np.random.default_rng(0)
    X = rng.random((60, 6))
    labels = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.5)
    net = bpfast.Network([6, 8, 3], activation="tanh", output_activation="softmax",
                         cost="cross_entropy", dtype=dtype, seed=0)
    return net, X, np.eye(3)[labels]


def test_the_objective_with_l2_is_its_formula_and_its_gradient_the_finite_differences():
    """C(θ) + (λ/2) Σ‖w‖², biases not penalised; its gradient against central differences."""
    net, X, Y = problem()
    f = net.objective(X, Y, l2=0.3)
    theta = net.parameters_vector()
    cost, gradient = f(theta)
    penalty = 0.5 * 0.3 * sum(float((w ** 2).sum()) for w in net.weights)
    assert cost == pytest.approx(net.cost(X, Y) + penalty, rel=1e-13)
    h = 1e-6
    for i in np.random.default_rng(1).choice(theta.size, 20, replace=False):
        step = np.zeros_like(theta)
        step[i] = h
        fd = (f(theta + step)[0] - f(theta - step)[0]) / (2 * h)
        assert gradient[i] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    np.testing.assert_array_equal(net.parameters_vector(), theta)     # untouched


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_minimize_is_scipy_on_the_objective_and_sets_theta(dtype):
    net, X, Y = problem(dtype)
    start = net.parameters_vector()
    expected = optimize.minimize(net.objective(X, Y, l2=0.01), start.astype(np.float64),
                                 method="L-BFGS-B", jac=True, options=dict(maxiter=30))
    result = net.minimize(X, Y, max_iter=30, l2=0.01)
    assert result.nit == expected.nit == 30 and result.nfev == expected.nfev
    np.testing.assert_array_equal(result.x, expected.x)
    np.testing.assert_array_equal(net.parameters_vector(), result.x.astype(dtype))
    assert result.fun < net.objective(X, Y, l2=0.01)(start.astype(np.float64))[0] / 2


def test_minimize_reaches_a_minimum_where_the_gradient_vanishes():
    net, X, Y = problem()
    result = net.minimize(X, Y, l2=1e-3, tol=1e-12, max_iter=5000)
    assert result.success
    assert np.abs(result.jac).max() < 1e-5
    for method in ("BFGS", "CG"):
        other, _, _ = problem()
        assert other.minimize(X, Y, method=method, l2=1e-3, max_iter=5000).fun == \
            pytest.approx(result.fun, rel=1e-5)


@pytest.mark.parametrize("keywords,error,message", [
    (dict(method=3), TypeError, "method must be the name of a scipy.optimize.minimize method"),
    (dict(method="annealing"), ValueError, "method must be one of scipy.optimize.minimize's"),
    (dict(method="Nelder-Mead"), ValueError, "method must use the gradient"),
    (dict(max_iter=0), ValueError, "max_iter must be"),
    (dict(l2=-1.0), ValueError, "l2 must be a finite number ≥ 0"),
    (dict(tol=float("nan")), ValueError, "tol must be a finite number ≥ 0"),
    (dict(callback=3), TypeError, "callback must be callable"),
])
def test_bad_minimize_arguments_are_refused_and_theta_kept(keywords, error, message):
    net, X, Y = problem()
    before = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.minimize(X, Y, **keywords)
    np.testing.assert_array_equal(net.parameters_vector(), before)
