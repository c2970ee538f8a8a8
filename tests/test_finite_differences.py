"""Kernels and reference both agree with central finite differences of the cost C."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import (
    finite_difference_gradient,
    reference_gradient,
    relative_difference,
)

from conftest import make_problem

FD_TOLERANCE = {"float64": 1e-6, "float32": 1e-4}


@pytest.mark.parametrize("sizes,n", [([1, 1], 1), ([3, 4, 2], 5), ([5, 3, 3, 3, 2], 8),
                                     ([16, 8, 4], 3)])
def test_kernels_and_reference_match_finite_differences(sizes, n, dtype):
    net, X, Y = make_problem(sizes, n, dtype, seed=n)
    every_parameter = np.arange(net.n_params)
    fd = finite_difference_gradient(net, X, Y, every_parameter)
    assert relative_difference(net.gradient(X, Y).vector(), fd) <= FD_TOLERANCE[dtype]
    assert relative_difference(reference_gradient(net, X, Y), fd) <= FD_TOLERANCE["float64"]


def test_single_example_backprop_matches_finite_differences():
    net, X, Y = make_problem([6, 4, 3], 1, seed=4)
    fd = finite_difference_gradient(net, X, Y, np.arange(net.n_params))
    assert relative_difference(net.backprop(X[0], Y[0]).vector(), fd) <= 1e-6


def test_finite_differences_see_a_missing_factor_two():
    # With the book's ½C convention the gradient would be half as large: the check must notice.
    net, X, Y = make_problem([3, 3, 2], 4, seed=9)
    fd = finite_difference_gradient(net, X, Y, np.arange(net.n_params))
    assert relative_difference(net.gradient(X, Y).vector() / 2, fd) > 0.4


@pytest.mark.parametrize("sizes", [[2, 3, 1], [8, 5, 5, 4]])
def test_check_reports_ok_on_random_networks(sizes, dtype):
    net, X, Y = make_problem(sizes, 6, dtype, seed=11)
    report = bpfast.check(net, X, Y, fd_params=None)
    assert report.ok, str(report)
    assert "all within tolerance" in str(report)


def test_check_reports_failure_when_kernels_are_wrong(monkeypatch):
    net, X, Y = make_problem([3, 4, 2], 5)
    real_gradient = bpfast.Network.gradient

    def off_by_a_little(self, X, Y):
        g = real_gradient(self, X, Y)
        g.w[0][0, 0] *= 1.001
        return g

    monkeypatch.setattr(bpfast.Network, "gradient", off_by_a_little)
    report = bpfast.check(net, X, Y, fd_params=None)
    assert not report.ok
    assert "FAIL" in str(report)


def test_check_samples_parameters_on_large_networks():
    net, X, Y = make_problem([100, 30, 10], 3, seed=2)
    report = bpfast.check(net, X, Y, fd_params=50)
    assert report.n_checked_by_finite_differences == 50
    assert report.ok, str(report)
