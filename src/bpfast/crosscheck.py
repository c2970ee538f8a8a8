"""Trust, verified: the kernels against the pure-Python reference and against finite differences.

`check(net, X, Y)` computes ∇C three independent ways on the user's own network and data —
the fast kernels, `bpfast.reference` (pure Python, loops over j and k), and central finite
differences of the cost (a plain float64 numpy forward pass that shares no code with either) —
and reports how far apart they are: against the reference, relative to the gradient's largest
entry; against finite differences, entry by entry, each within a bound of its own that includes
the finite difference's estimated error (so that a wrong small entry is seen).
"""
import numpy as np
from scipy.special import expit, softmax

from . import costs, reference
from .network import Gradient

#: Largest difference accepted between the kernels and the reference, relative to the
#: gradient's largest entry, by network dtype. float64: the two exact computations differ only
#: by the order of their roundings. float32: the kernels round at float32's 6e-8 while the
#: reference works in float64.
REFERENCE_TOLERANCES = {"float64": 1e-12, "float32": 1e-4}

#: Entry by entry, a gradient g agrees with the finite differences fd when
#:     |g_i − fd_i| ≤ rtol · |fd_i| + atol · scale + 2 · e_i,
#: scale = max(|C|, max_i |fd_i|) (the finite differences' rounding error grows with |C|) and e_i
#: the finite differences' own error, estimated from two step sizes (`finite_difference_gradient`)
#: — (rtol, atol) by the dtype of the gradient checked. float64: measured ≤ 0.75 of this bound
#: on random networks of every activation, steep initialisations included, and ~50 times over a
#: bound 100 times tighter; float32: the kernels' own rounding, measured ≤ 0.3 of it. A wrong
#: entry, however small beside the others, is seen: the bound is its own.
FD_TOLERANCES = {"float64": (1e-8, 1e-10), "float32": (1e-3, 1e-5)}


def relative_difference(actual, expected):
    """max_i |actual_i − expected_i| / max_i |expected_i|: the error relative to the array's
    scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected), initial=0.0)
    error = np.max(np.abs(actual - expected), initial=0.0)
    if error == 0.0:
        return 0.0
    return float(error / scale) if scale > 0 else float("inf")


def finite_difference_misfit(g, fd, error, cost, dtype):
    """|g_i − fd_i| over its bound (`FD_TOLERANCES`), for each entry: ≤ 1 where they agree."""
    g = np.asarray(g, dtype=np.float64)
    rtol, atol = FD_TOLERANCES[np.dtype(dtype).name]
    scale = max(abs(float(cost)), float(np.max(np.abs(fd), initial=0.0)))
    bound = rtol * np.abs(fd) + atol * scale + 2 * error
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g == fd, 0.0, np.abs(g - fd) / bound)


def _nested_params(net):
    """The network's w^(l) and b^(l) as the nested lists that `bpfast.reference` takes."""
    return [w.tolist() for w in net.weights], [b.tolist() for b in net.biases]


def reference_gradient(net, X, Y):
    """∇C of the batch (X, Y) by `bpfast.reference.gradient`, flattened in the slides' order."""
    dC_dw, dC_db = reference.gradient(*_nested_params(net), np.atleast_2d(X).tolist(),
                                      np.atleast_2d(Y).tolist(), net.activations,
                                      net.cost_function)
    return np.concatenate([np.concatenate([np.ravel(w), b]) for w, b in zip(dC_dw, dC_db)])


def finite_difference_gradient(net, X, Y, indices, *, with_errors=False):
    """∂C/∂θ_p ≈ D(h) = (C(θ + h e_p) − C(θ − h e_p)) / 2h for each p in ``indices``, in float64.

    With ``with_errors``, returns ``(D, errors, at_kink)``: the estimated error of each D(h),
    |D(2h) − D(h)| / 3 (D's error is c·h² + rounding, so D(2h) − D(h) ≈ 3 c h²), and whether the
    steps ±2h move a ReLU unit across its kink for some example: C is not differentiable there
    and a finite difference means nothing (such entries are skipped by `check`).
    """
    theta = net.parameters_vector().astype(np.float64)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
    # h ∝ ε^(1/3) balances the O(h²) truncation error against the O(ε/h) rounding error.
    step = np.finfo(np.float64).eps ** (1 / 3)
    estimates = np.empty(len(indices))
    errors = np.empty(len(indices))
    at_kink = np.zeros(len(indices), dtype=bool)
    for i, p in enumerate(indices):
        h = step * max(1.0, abs(theta[p]))
        costs_at, patterns = {}, []
        for multiple in ((1, -1, 2, -2) if with_errors else (1, -1)):
            shifted = theta.copy()
            shifted[p] += multiple * h
            costs_at[multiple], pattern = _numpy_cost(shifted, net, X, Y)
            patterns.append(pattern)
        estimates[i] = (costs_at[1] - costs_at[-1]) / (2 * h)
        if with_errors:
            errors[i] = abs((costs_at[2] - costs_at[-2]) / (4 * h) - estimates[i]) / 3
            at_kink[i] = any(not np.array_equal(patterns[0], other) for other in patterns[1:])
    if with_errors:
        return estimates, errors, at_kink
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
    """C = (1/n) Σ_k C_k by a plain numpy forward pass (C_0 as `bpfast.costs` defines it), and
    which side of its kink each ReLU unit is on, for each example (z > 0, with z = 0 apart)."""
    a, pattern = X, []
    parameters = Gradient.from_vector(theta, net.sizes)      # w^(l) and b^(l) as views of θ
    for w, b, activation in zip(parameters.w, parameters.b, net.activations):
        z = a @ w.T + b
        if activation == "relu":
            pattern.append(np.sign(z))
        a = _NUMPY_ACTIVATIONS[activation](z)
    C = costs.numpy_per_example(net.cost_function, net.output_activation, z, a, Y).mean()
    return C, (np.concatenate([p.ravel() for p in pattern]) if pattern else np.empty(0))


class CheckReport:
    """The outcome of `check`: how far apart the three gradients are, and whether that is within
    the tolerances.

    Attributes: ``cost_kernels_vs_reference``, ``kernels_vs_reference`` (differences relative to
    the largest entry, `REFERENCE_TOLERANCES`); ``kernels_vs_finite_differences``,
    ``reference_vs_finite_differences`` (the worst entry's difference over its own bound,
    `FD_TOLERANCES`: ≤ 1 passes); ``checked`` (the parameters compared with finite differences)
    and ``skipped_at_kinks`` (those left out because a step of the finite differences crosses a
    ReLU kink, where C has no derivative); ``worst`` (index, kernels' value, finite difference)
    of the entry furthest from its bound.
    """

    def __init__(self, net, n_examples, checked, skipped, differences, worst):
        self.sizes = net.sizes
        self.dtype = net.dtype
        self.n_examples = n_examples
        self.n_params = net.n_params
        self.checked = checked
        self.skipped_at_kinks = skipped
        (self.kernels_vs_reference, self.kernels_vs_finite_differences,
         self.reference_vs_finite_differences, self.cost_kernels_vs_reference) = differences
        self.worst = worst

    @property
    def n_checked_by_finite_differences(self):
        return len(self.checked)

    @property
    def rows(self):
        """(what is compared, its difference, the tolerance) for each comparison."""
        to_reference = REFERENCE_TOLERANCES[self.dtype.name]
        return [
            ("C, kernels vs reference", self.cost_kernels_vs_reference, to_reference),
            ("∇C, kernels vs reference", self.kernels_vs_reference, to_reference),
            ("∇C, kernels vs finite differences", self.kernels_vs_finite_differences, 1.0),
            ("∇C, reference vs finite differences", self.reference_vs_finite_differences, 1.0),
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
        skipped = (f", {len(self.skipped_at_kinks)} skipped: their finite differences cross a "
                   "ReLU kink, where C has no derivative" if len(self.skipped_at_kinks) else "")
        head = (f"bpfast.check: sizes {list(self.sizes)}, {self.dtype.name}, "
                f"{self.n_examples} example(s), P = {self.n_params} "
                f"({len(self.checked)} checked by finite differences{skipped})")
        width = max(len(name) for name, _, _ in self.rows)
        lines = [head]
        for (name, difference, tolerance), scale in zip(self.rows, ("|C|", "max|∇C|", "bound",
                                                                   "bound")):
            verdict = "ok" if difference <= tolerance else "FAIL"
            bound = f"≤ {tolerance:.0e} of {scale}" if scale != "bound" else "≤ 1 of its bound"
            lines.append(f"  {name:<{width}}  {difference:9.2e}  {bound:<20}  {verdict}")
        rtol, atol = FD_TOLERANCES[self.dtype.name]
        lines.append(f"  bound of each entry: |g − fd| ≤ {rtol:.0e}·|fd| + {atol:.0e}·max(|C|, "
                     "max|fd|) + 2·(fd's own error)")
        if self.ok:
            lines.append("  all within tolerance")
        else:
            lines.append("  SOME DIFFERENCES ARE TOO LARGE")
            if self.worst is not None:
                index, g, fd = self.worst
                lines.append(f"  worst entry: θ[{index}], kernels {g:.10g}, finite differences "
                             f"{fd:.10g}")
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
        How many parameters, drawn at random, are checked by finite differences (each costs four
        forward passes); None checks all of them.
    seed : int, for that draw.

    Returns a `CheckReport`: ``str(report)`` is a table, ``report.ok`` says whether every
    difference is within its tolerance (`REFERENCE_TOLERANCES`, `FD_TOLERANCES`). Parameters
    whose finite differences cross a ReLU kink are not compared there (C has no derivative at a
    kink) and are listed as skipped.
    """
    X, Y = net._pair(X, Y)
    X2, Y2 = np.atleast_2d(X), np.atleast_2d(Y)
    n = X2.shape[0]

    g_kernels = net.gradient(X2, Y2).vector()
    g_reference = reference_gradient(net, X2, Y2)
    C = net.cost(X2, Y2)

    if fd_params is None or fd_params >= net.n_params:
        indices = np.arange(net.n_params)
    else:
        indices = np.sort(np.random.default_rng(seed).choice(net.n_params, fd_params,
                                                             replace=False))
    g_fd, errors, at_kink = finite_difference_gradient(net, X2, Y2, indices, with_errors=True)
    checked, skipped = indices[~at_kink], indices[at_kink]
    g_fd, errors = g_fd[~at_kink], errors[~at_kink]
    misfit_kernels = finite_difference_misfit(g_kernels[checked], g_fd, errors, C, net.dtype)
    misfit_reference = finite_difference_misfit(g_reference[checked], g_fd, errors, C,
                                                np.float64)
    worst = None
    if len(checked):
        i = int(np.argmax(misfit_kernels))
        worst = (int(checked[i]), float(g_kernels[checked[i]]), float(g_fd[i]))
    differences = (
        relative_difference(g_kernels, g_reference),
        float(np.max(misfit_kernels, initial=0.0)),
        float(np.max(misfit_reference, initial=0.0)),
        relative_difference(C, reference.cost(*_nested_params(net), X2.tolist(), Y2.tolist(),
                                              net.activations, net.cost_function)),
    )
    return CheckReport(net, n, checked, skipped, differences, worst)


def private_epoch_difference(net, X, Y, *, clip_norm=0.5, noise_multiplier=1.0, batch_size=4,
                             seed=0):
    """One private epoch of `Network.fit` (DP-SGD: every example's gradient clipped to
    ``clip_norm``, Gaussian noise of ``noise_multiplier`` · clip_norm on each step's sum,
    Poisson sampling of ``batch_size`` expected examples) on a copy of ``net``, against
    `bpfast.reference.train_epoch` with the same draws — the noise's seed and the steps, as fit
    draws them from ``seed``. Returns the largest difference of θ after the epoch, relative to
    its largest entry (`REFERENCE_TOLERANCES` applies)."""
    import copy

    from .training import poisson_steps
    X, Y = net._pair(X, Y)
    X2, Y2 = np.atleast_2d(X), np.atleast_2d(Y)
    N = X2.shape[0]
    batch_size = min(batch_size, N)
    fitted = copy.deepcopy(net)
    fitted.fit(X2, Y2, epochs=1, batch_size=batch_size, learning_rate=0.1, seed=seed,
               clip_norm=clip_norm, noise_multiplier=noise_multiplier, sampling="poisson")
    draws = np.random.default_rng(seed)
    key = int(draws.integers(2**63))
    order, offsets = poisson_steps(draws, N, batch_size)
    weights, biases = _nested_params(net)
    reference.train_epoch(weights, biases, X2.tolist(), Y2.tolist(), order.tolist(), batch_size,
                          0.1, {}, net.activations, net.cost_function, clip_norm=clip_norm,
                          noise_multiplier=noise_multiplier, noise_key=key,
                          offsets=offsets.tolist())
    expected = np.concatenate([np.concatenate([np.ravel(w), b])
                               for w, b in zip(weights, biases)])
    return relative_difference(fitted.parameters_vector(), expected)
