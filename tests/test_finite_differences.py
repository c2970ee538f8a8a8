"""Kernels and reference both agree with central finite differences of the cost C, entry by
entry (crosscheck.FD_TOLERANCES), and the check sees what is wrong, however small."""
import numpy as np
import pytest

import bpfast
from bpfast.crosscheck import (
    finite_difference_gradient,
    finite_difference_misfit,
    reference_gradient,
)

from conftest import make_problem


def misfit(net, X, Y, g, dtype=None):
    """Each entry's difference from the finite differences over its bound; ≤ 1 agrees."""
    fd, errors, at_kink = finite_difference_gradient(net, X, Y, np.arange(net.n_params),
                                                     with_errors=True)
    assert not at_kink.any()
    return finite_difference_misfit(g, fd, errors, net.cost(X, Y), dtype or net.dtype)


@pytest.mark.parametrize("sizes,n", [([1, 1], 1), ([3, 4, 2], 5), ([5, 3, 3, 3, 2], 8),
                                     ([16, 8, 4], 3)])
def test_kernels_and_reference_match_finite_differences(sizes, n, dtype):
    net, X, Y = make_problem(sizes, n, dtype, seed=n)
    assert misfit(net, X, Y, net.gradient(X, Y).vector()).max() <= 1
    assert misfit(net, X, Y, reference_gradient(net, X, Y), np.float64).max() <= 1


def test_single_example_backprop_matches_finite_differences():
    net, X, Y = make_problem([6, 4, 3], 1, seed=4)
    assert misfit(net, X, Y, net.backprop(X[0], Y[0]).vector()).max() <= 1


def test_finite_differences_see_a_missing_factor_two():
    # With the book's ½C convention the gradient would be half as large: the check must notice.
    net, X, Y = make_problem([3, 3, 2], 4, seed=9)
    assert misfit(net, X, Y, net.gradient(X, Y).vector() / 2).min() > 1e3


def test_a_wrong_small_entry_is_seen_among_large_ones():
    """The bound is each entry's own: an entry about 1e-3 of the largest, off by 1e-5 of its own
    value, fails — where the former criterion, 1e-6 of the largest entry, passed it."""
    net, X, Y = make_problem([6, 5, 3], 7, seed=3)
    g = net.gradient(X, Y).vector()
    small = int(np.argmin(np.where(np.abs(g) > 1e-3 * np.abs(g).max(), np.abs(g), np.inf)))
    assert abs(g[small]) < 1e-2 * np.abs(g).max()
    wrong = g.copy()
    wrong[small] *= 1 + 1e-5
    assert np.abs(wrong - g).max() < 1e-6 * np.abs(g).max()
    assert misfit(net, X, Y, g).max() <= 1
    assert misfit(net, X, Y, wrong)[small] > 1


def test_the_bound_grows_with_the_finite_differences_own_error():
    """Steep layers (N(0, 1) weights, inputs of scale 3): the finite differences themselves are
    off by up to 20 times the plain bound, and the estimate of their own error says so — the
    check does not blame the kernels for it, which agree with the reference to 1e-12."""
    net = bpfast.Network([8, 6, 6, 2], activation="identity", output_activation="tanh",
                         init="normal", seed=0)
    X = np.random.default_rng(0).normal(scale=3, size=(8, 8))
    Y = np.random.default_rng(1).random((8, 2))
    g = net.gradient(X, Y).vector()
    fd, errors, _ = finite_difference_gradient(net, X, Y, np.arange(net.n_params),
                                               with_errors=True)
    C = net.cost(X, Y)
    plain = np.abs(g - fd) / (1e-8 * np.abs(fd) + 1e-10 * max(C, np.abs(fd).max()))
    assert plain.max() > 10                                 # the plain bound would blame g
    assert np.abs(g - reference_gradient(net, X, Y)).max() <= 1e-12 * np.abs(g).max()
    assert finite_difference_misfit(g, fd, errors, C, net.dtype).max() <= 1


def test_entries_at_a_relu_kink_are_skipped_and_reported():
    """A ReLU unit with z = 0 exactly: C has no derivative in the parameters feeding it, so their
    finite differences are meaningless; check skips them, says so, and still passes."""
    w1 = np.array([[1.0, -1.0], [0.5, 0.25]])
    net = bpfast.Network.from_params([w1, np.array([[1.0, -2.0]])], [np.zeros(2), np.zeros(1)],
                                     activation="relu", output_activation="identity")
    X, Y = np.array([[0.3, 0.3], [0.2, 0.8]]), np.array([[1.0], [0.5]])   # z_1 = 0 for x = (.3, .3)
    report = bpfast.check(net, X, Y, fd_params=None)
    assert report.ok, str(report)
    # w_11, w_12, b_1 feed the unit at its kink: skipped, and named in the report.
    assert sorted(report.skipped_at_kinks.tolist()) == [0, 1, 4]
    assert "3 skipped: their finite differences cross a ReLU kink" in str(report)
    assert len(report.checked) == net.n_params - 3


@pytest.mark.parametrize("sizes", [[2, 3, 1], [8, 5, 5, 4]])
def test_check_reports_ok_on_random_networks(sizes, dtype):
    net, X, Y = make_problem(sizes, 6, dtype, seed=11)
    report = bpfast.check(net, X, Y, fd_params=None)
    assert report.ok, str(report)
    assert "all within tolerance" in str(report)
    assert report.n_checked_by_finite_differences == net.n_params
    assert report.kernels_vs_reference <= {"float64": 1e-12, "float32": 1e-4}[dtype]
    assert 0 <= report.kernels_vs_finite_differences <= 1
    assert report.max_difference == max(d for _, d, _ in report.rows)
    assert report.sizes == tuple(sizes) and report.n_examples == 6 and bool(report)
    assert repr(report).startswith("<CheckReport ok=True")


def test_check_reports_failure_when_kernels_are_wrong(monkeypatch):
    net, X, Y = make_problem([3, 4, 2], 5)
    real_gradient = bpfast.Network.gradient

    def off_by_a_little(self, X, Y):
        g = real_gradient(self, X, Y)
        g.w[0][0, 0] *= 1.001
        return g

    monkeypatch.setattr(bpfast.Network, "gradient", off_by_a_little)
    report = bpfast.check(net, X, Y, fd_params=None)
    assert not report.ok and not bool(report)
    assert "FAIL" in str(report)
    assert "worst entry: θ[0]" in str(report)


def test_check_samples_parameters_on_large_networks():
    net, X, Y = make_problem([100, 30, 10], 3, seed=2)
    report = bpfast.check(net, X, Y, fd_params=50)
    assert report.n_checked_by_finite_differences == 50
    assert report.ok, str(report)


def test_check_on_one_example():
    net, X, Y = make_problem([5, 4, 3], 1, seed=6)
    report = bpfast.check(net, X[0], Y[0], fd_params=None)
    assert report.ok and report.n_examples == 1, str(report)
