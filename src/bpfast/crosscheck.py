"""Trust, verified: the kernels against the pure-Python reference and against finite differences.

`check(net, X, Y)` computes ∇C three independent ways on the user's own network and data —
the fast kernels, `bpfast.reference` (pure Python, loops over j and k), and central finite
differences of the cost (a plain float64 numpy forward pass that shares no code with either) —
and reports the largest relative differences between them.
"""
import numpy as np
from scipy.special import expit, softmax

from . import costs, reference

#: Largest relative difference accepted, by network dtype: (against the reference, against
#: finite differences). float64: the two exact computations differ only by the order of their
#: roundings. float32: the kernels round at float32's 6e-8 while the reference works in float64.
TOLERANCES = {"float64": (1e-12, 1e-6), "float32": (1e-4, 1e-4)}


def relative_difference(actual, expected):
    """max_i |actual_i − expected_i| / max_i |expected_i|: the error relative to the array's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected), initial=0.0)
    error = np.max(np.abs(actual - expected), initial=0.0)
    if error == 0.0:
        return 0.0
    return float(error / scale) if scale > 0 else float("inf")


def _nested_params(net):
    """The network's w^(l) and b^(l) as the nested lists that `bpfast.reference` takes."""
    return [w.tolist() for w in net.weights], [b.tolist() for b in net.biases]


def reference_gradient(net, X, Y):
    """∇C of the batch (X, Y) by `bpfast.reference.gradient`, flattened in the slides' order."""
    dC_dw, dC_db = reference.gradient(*_nested_params(net), np.atleast_2d(X).tolist(),
                                      np.atleast_2d(Y).tolist(), net.activations,
                                      net.cost_function)
    return np.concatenate([np.concatenate([np.ravel(w), b]) for w, b in zip(dC_dw, dC_db)])


def finite_difference_gradient(net, X, Y, indices):
    """∂C/∂θ_p ≈ (C(θ + h e_p) − C(θ − h e_p)) / 2h for each p in ``indices``, in float64."""
    theta = net.parameters_vector().astype(np.float64)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
    # h ∝ ε^(1/3) balances the O(h²) truncation error against the O(ε/h) rounding error.
    step = np.finfo(np.float64).eps ** (1 / 3)
    estimates = np.empty(len(indices))
    for i, p in enumerate(indices):
        h = step * max(1.0, abs(theta[p]))
        theta_plus, theta_minus = theta.copy(), theta.copy()
        theta_plus[p] += h
        theta_minus[p] -= h
        estimates[i] = (_numpy_cost(theta_plus, net, X, Y)
                        - _numpy_cost(theta_minus, net, X, Y)) / (2 * h)
    return estimates


#: The activations as plain numpy (scipy) functions of a batch z, one example per row.
_NUMPY_ACTIVATIONS = {
    "sigmoid": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "identity": lambda z: z,
    "softmax": lambda z: softmax(z, axis=1),
}


def _numpy_cost(theta, net, X, Y):
    """C = (1/n) Σ_k C_k by a plain numpy forward pass (C_0 as `bpfast.costs` defines it)."""
    a, start = X, 0
    for n_in, n_out, activation in zip(net.sizes[:-1], net.sizes[1:], net.activations):
        w = theta[start:start + n_out * n_in].reshape(n_out, n_in)
        b = theta[start + n_out * n_in:start + n_out * (n_in + 1)]
        start += n_out * (n_in + 1)
        z = a @ w.T + b
        a = _NUMPY_ACTIVATIONS[activation](z)
    return costs.per_example(net.cost_function, net.output_activation, z, a, Y).mean()


class CheckReport:
    """The outcome of `check`: relative differences, tolerances, and whether all are within them."""

    def __init__(self, net, n_examples, n_checked, differences, tolerances):
        self.sizes = net.sizes
        self.dtype = net.dtype
        self.n_examples = n_examples
        self.n_params = net.n_params
        self.n_checked_by_finite_differences = n_checked
        self.kernels_vs_reference = differences[0]
        self.kernels_vs_finite_differences = differences[1]
        self.reference_vs_finite_differences = differences[2]
        self.cost_kernels_vs_reference = differences[3]
        self.tolerances = tolerances

    @property
    def rows(self):
        """(what is compared, its largest relative difference, the tolerance) for each comparison."""
        to_reference, to_fd = self.tolerances
        return [
            ("C, kernels vs reference", self.cost_kernels_vs_reference, to_reference),
            ("∇C, kernels vs reference", self.kernels_vs_reference, to_reference),
            ("∇C, kernels vs finite differences", self.kernels_vs_finite_differences, to_fd),
            ("∇C, reference vs finite differences", self.reference_vs_finite_differences,
             TOLERANCES["float64"][1]),
        ]

    @property
    def ok(self):
        return all(difference <= tolerance for _, difference, tolerance in self.rows)

    @property
    def max_difference(self):
        return max(difference for _, difference, _ in self.rows)

    def __bool__(self):
        return self.ok

    def __str__(self):
        head = (f"bpfast.check: sizes {list(self.sizes)}, {self.dtype.name}, "
                f"{self.n_examples} example(s), P = {self.n_params} "
                f"({self.n_checked_by_finite_differences} checked by finite differences)")
        width = max(len(name) for name, _, _ in self.rows)
        lines = [head]
        for name, difference, tolerance in self.rows:
            verdict = "ok" if difference <= tolerance else "FAIL"
            lines.append(f"  {name:<{width}}  {difference:9.2e}  (tolerance {tolerance:.0e})  "
                         f"{verdict}")
        lines.append("  all within tolerance" if self.ok else "  SOME DIFFERENCES ARE TOO LARGE")
        return "\n".join(lines)

    def __repr__(self):
        return f"<CheckReport ok={self.ok} max_difference={self.max_difference:.2e}>"


def check(net, X, Y, *, fd_params=200, seed=0):
    """Compare ∇C from the kernels, the pure-Python reference and central finite differences.

    Parameters
    ----------
    net : bpfast.Network
    X, Y : one example (1-D) or a small batch (2-D): the reference is pure Python, so keep the
        batch to a few dozen examples on large networks.
    fd_params : int or None
        How many parameters, drawn at random, are checked by finite differences (each costs two
        forward passes); None checks all of them.
    seed : int, for that draw.

    Returns a `CheckReport`: ``str(report)`` is a table, ``report.ok`` says whether every
    difference is within its tolerance (`TOLERANCES`).
    """
    X, Y = net._pair(X, Y)
    X2, Y2 = np.atleast_2d(X), np.atleast_2d(Y)
    n = X2.shape[0]

    g_kernels = net.gradient(X2, Y2).vector()
    g_reference = reference_gradient(net, X2, Y2)

    if fd_params is None or fd_params >= net.n_params:
        indices = np.arange(net.n_params)
    else:
        indices = np.sort(np.random.default_rng(seed).choice(net.n_params, fd_params,
                                                             replace=False))
    g_fd = finite_difference_gradient(net, X2, Y2, indices)

    differences = (
        relative_difference(g_kernels, g_reference),
        relative_difference(g_kernels[indices], g_fd),
        relative_difference(g_reference[indices], g_fd),
        relative_difference(net.cost(X2, Y2), reference.cost(*_nested_params(net),
                                                             X2.tolist(), Y2.tolist(),
                                                             net.activations,
                                                             net.cost_function)),
    )
    return CheckReport(net, n, len(indices), differences, TOLERANCES[net.dtype.name])
