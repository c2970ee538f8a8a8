"""The public network API, in the slides' notation, over the fast kernels.

A `Network` with sizes [n0, …, nL] computes z^(l), a^(l), C_0 and ∂C_0/∂w^(l), ∂C_0/∂b^(l) as
the notation (docs/notation.md) defines them. Its parameters live in one vector θ in the slides'
order (w^(1), b^(1), …, w^(L), b^(L)); ``weights`` and ``biases`` are views into it, and a
`Gradient` has the same layout, so ∇C and a gradient-descent step need no copying. Every method
validates its input here and only then calls `bpfast._kernels`, which trusts what it is given.
"""
import copy
import functools
import math
import numbers
import threading

import numpy as np

from . import _kernels, _pool, costs, modelfile, training
from ._buffers import aligned_empty
from ._validation import (
    all_finite,
    as_examples,
    as_pair,
    as_real_array,
    check_choice,
    check_count,
    check_dtype,
    check_finite,
    check_flag,
    check_network_choices,
    check_positive_real,
    check_sample_weight,
    check_seed,
    check_sizes,
)

#: The costs a Network can use (the keyword ``cost=``); see `bpfast.costs`.
COSTS = costs.COSTS

#: What a call of the kernels writes (bpfast._kernels.run_call's `writes`).
_WRITES = {"nothing": 0, "mean": 1, "examples": 2, "norms": 3}

_single_threaded_blas = training._single_threaded_blas

#: What a Network is, fixed when it is made: read-only attributes.
_FIXED = ("sizes", "activations", "activation", "cost_function", "dtype")

#: How a Network draws its first parameters (the keyword ``init=``): the standard deviation of
#: w^(l)'s entries from (n_{l−1}, n_l), and whether the biases are drawn from N(0, 1) (True) or
#: start at 0 (as Keras and PyTorch users expect with Glorot's and He's schemes).
INITS = {
    "scaled_normal": (lambda n_in, n_out: 1 / np.sqrt(n_in), True),     # N(0, 1/n_{l−1})
    "normal": (lambda n_in, n_out: 1.0, True),                        # the book's first network
    "glorot": (lambda n_in, n_out: np.sqrt(2 / (n_in + n_out)), False),
    "he": (lambda n_in, n_out: np.sqrt(2 / n_in), False),
}


@functools.lru_cache(maxsize=64)
def _offsets(sizes):
    """The layout of θ for these sizes, where only the offsets matter (a Gradient's views)."""
    return _kernels.NetworkLayout(sizes, [0] * (len(sizes) - 1), 0)


def _split(theta, layout):
    """The views w^(l), b^(l) of a flat vector laid out by `layout` (or of each row of a stack
    of them)."""
    lead = theta.shape[:-1]
    w, b = [], []
    for l in range(1, layout.L + 1):
        n_in, n_out = layout.sizes[l - 1], layout.sizes[l]
        w.append(theta[..., layout.w_offset(l):layout.b_offset(l)].reshape(lead + (n_out, n_in)))
        b.append(theta[..., layout.b_offset(l):layout.b_offset(l) + n_out])
    return w, b


class Trace:
    """What the forward pass computes: ``z[l-1]`` is z^(l) (l = 1..L), ``a[l]`` is a^(l), a[0] = x.

    For one example (x 1-D) the arrays are 1-D; for a batch they have one row per example.
    """

    def __init__(self, z, a):
        self.z = z
        self.a = a

    def __repr__(self):
        shapes = ", ".join(str(a_l.shape) for a_l in self.a)
        return f"Trace(L={len(self.z)}, a shapes: {shapes})"


class Gradient:
    """∂C/∂w^(l) and ∂C/∂b^(l) for l = 1..L: ``w[l-1]`` is shaped like w^(l), ``b[l-1]`` like b^(l).

    The arrays are views of one vector ∇C in the slides' order, which `vector` returns. Per-example
    gradients carry a leading axis of length n on every array (and ``vector()`` is then (n, P)).
    """

    def __init__(self, vector, sizes):
        self._vector = vector
        self.sizes = tuple(sizes)
        self._views = None

    @property
    def w(self):
        """∂C/∂w^(l) for l = 1..L, views of the vector (each (n_l, n_{l−1}), per example a
        leading axis n)."""
        return self._split()[0]

    @property
    def b(self):
        return self._split()[1]

    def _split(self):
        if self._views is None:            # made on first use: most callers want the vector
            self._views = _split(self._vector, _offsets(self.sizes))
        return self._views

    @classmethod
    def from_vector(cls, vector, sizes):
        """A Gradient from ∇C flattened in the slides' order (a copy), for ``sizes``."""
        sizes = check_sizes(sizes)
        vector = np.asarray(vector)
        dtype = vector.dtype if vector.dtype in (np.float32, np.float64) else np.float64
        vector = as_real_array(vector, "vector", dtype)
        P = _offsets(sizes).P
        if vector.ndim not in (1, 2) or vector.shape[-1] != P:
            raise ValueError(
                f"vector must have length P = {P} for sizes {list(sizes)} (or shape (n, {P})), "
                f"got shape {vector.shape}."
            )
        return cls(vector.copy(), sizes)

    @property
    def per_example(self):
        """True when the arrays carry a leading axis of examples."""
        return self._vector.ndim == 2

    @property
    def dtype(self):
        return self._vector.dtype

    def vector(self):
        """∇C = (∂C/∂w^(1), ∂C/∂b^(1), …, ∂C/∂w^(L), ∂C/∂b^(L)), flattened (a copy)."""
        return self._vector.copy()

    def mean(self):
        """The batch mean of per-example gradients: (1/n) Σ_k ∂C_k/∂θ."""
        if not self.per_example:
            return Gradient(self._vector.copy(), self.sizes)
        return Gradient(self._vector.mean(axis=0), self.sizes)

    def __repr__(self):
        lead = f"n={self._vector.shape[0]}, " if self.per_example else ""
        return f"Gradient({lead}sizes={list(self.sizes)}, dtype={self.dtype.name})"

    # --- arithmetic, as on numpy arrays: g1 + g2, g1 − g2, c·g, g / n, −g, sum(gradients) -------

    # numpy scalars on the left (np.float64(2) * g) defer to Gradient's own operators.
    __array_ufunc__ = None

    def _other_vector(self, other, operation):
        if not isinstance(other, Gradient):
            return NotImplemented
        if other.sizes != self.sizes or other._vector.shape != self._vector.shape:
            raise ValueError(f"cannot {operation} a {other!r} and a {self!r}: their sizes (and "
                             "per-example axes) must be the same.")
        if other.dtype != self.dtype:
            raise TypeError(f"cannot {operation} a {other.dtype.name} and a {self.dtype.name} "
                            "gradient; convert one first: Gradient.from_vector(g.vector()."
                            "astype(...), g.sizes).")
        return other._vector

    def _scalar(self, other):
        if isinstance(other, (bool, np.bool_)) or not isinstance(other, numbers.Real):
            return NotImplemented
        return self.dtype.type(other)

    def __add__(self, other):
        vector = self._other_vector(other, "add")
        if vector is NotImplemented:
            return NotImplemented
        return Gradient(self._vector + vector, self.sizes)

    def __radd__(self, other):
        # sum(gradients) starts from 0.
        if isinstance(other, numbers.Number) and not isinstance(other, bool) and other == 0:
            return Gradient(self._vector.copy(), self.sizes)
        return NotImplemented

    def __sub__(self, other):
        vector = self._other_vector(other, "subtract")
        if vector is NotImplemented:
            return NotImplemented
        return Gradient(self._vector - vector, self.sizes)

    def __mul__(self, other):
        c = self._scalar(other)
        if c is NotImplemented:
            return NotImplemented
        return Gradient(self._vector * c, self.sizes)

    __rmul__ = __mul__

    def __truediv__(self, other):
        c = self._scalar(other)
        if c is NotImplemented:
            return NotImplemented
        return Gradient(self._vector / c, self.sizes)

    def __neg__(self):
        return Gradient(-self._vector, self.sizes)


class Network:
    """A fully connected network: z^(l) = w^(l) a^(l−1) + b^(l), a^(l) = f_l(z^(l)), l = 1..L.

    With the defaults, f_l = σ for every layer and the cost is quadratic: the slides' network.

    Parameters
    ----------
    sizes : sequence of int
        [n0, n1, …, nL]: n0 inputs, L layers of weights, nL outputs.
    activation : {"sigmoid", "tanh", "relu", "identity"}
        f of the hidden layers 1..L−1 (see `bpfast.activations`); and of the output layer unless
        output_activation says otherwise.
    output_activation : {"sigmoid", "tanh", "relu", "identity", "softmax"} or None
        f_L; None means the same as ``activation``. Softmax, a_j = e^(z_j) / Σ_i e^(z_i), needs
        nL ≥ 2 and is allowed here only.
    cost : {"quadratic", "cross_entropy"}
        "quadratic": C_0 = Σ_j (a_j^(L) − y_j)², with no factor ½, so ∂C_0/∂a^(L) = 2 (a^(L) − y).
        "cross_entropy": binary and summed over the outputs after sigmoid, categorical after
        softmax (the only two outputs it accepts); computed from z^(L), and its output error is
        simply δ^(L) = a^(L) − y (for targets that sum to 1 with softmax). See `bpfast.costs`.
    dtype : {"float64", "float32"}
        The precision of parameters and of every computation.
    init : {"scaled_normal", "normal", "glorot", "he"}
        How w^(l) is drawn, entrywise: N(0, 1/n_{l−1}) (the default), N(0, 1), Glorot's
        N(0, 2/(n_{l−1} + n_l)) or He's N(0, 2/n_{l−1}). Biases are N(0, 1) with the first two,
        0 with Glorot's and He's.
    seed : None, int or numpy.random.Generator
        Seeds the initialisation.

    Attributes
    ----------
    sizes : tuple of int
    L : int, the number of weight layers.
    weights : tuple of arrays; ``weights[l-1]`` is w^(l), of shape (n_l, n_{l−1}).
    biases : tuple of arrays; ``biases[l-1]`` is b^(l), of shape (n_l,).
    dtype : numpy.dtype
    """

    def __init__(self, sizes, *, activation="sigmoid", output_activation=None, cost="quadratic",
                 dtype="float64", init="scaled_normal", seed=None):
        self._sizes = check_sizes(sizes)
        deviation, random_biases = INITS[check_choice(init, "init", tuple(INITS))]
        self._activations = check_network_choices(self.sizes, activation, output_activation, cost)
        self._activation = activation
        self._cost_function = cost
        self._dtype = check_dtype(dtype)
        # Where everything lives in θ and in the kernels' buffers: worked out here, once.
        self._layout = _kernels.NetworkLayout(
            self.sizes, [_kernels.ACTIVATION_CODES[f] for f in self.activations],
            _kernels.COST_CODES[cost])
        self._training = threading.Lock()        # one fit at a time on this network
        self._workspace, self._workspace_lock = None, threading.Lock()   # kept between calls
        self._fit_workspace = None              # kept between fits (under self._training)
        P = self._layout.P
        # Drawn in float64 whatever the dtype, so that one seed gives the same network (rounded)
        # in float32 and in float64.
        rng = np.random.default_rng(check_seed(seed))
        try:
            theta = np.empty(P)
        except MemoryError:
            raise MemoryError(
                f"a network of sizes {list(self.sizes)} has P = {P:,} parameters, "
                f"{P * 8 / 2**30:,.1f} GiB in float64: more than this machine can allocate."
            ) from None
        w, b = _split(theta, self._layout)
        for l in range(self.L):
            w[l][...] = rng.normal(0.0, deviation(self.sizes[l], self.sizes[l + 1]),
                                   size=w[l].shape)
            b[l][...] = rng.normal(0.0, 1.0, size=b[l].shape) if random_biases else 0.0
        self._theta = aligned_empty(P, self.dtype)
        self._theta[...] = theta

    @classmethod
    def from_params(cls, weights, biases, *, activation="sigmoid", output_activation=None,
                    cost="quadratic", dtype=None):
        """A network with the given w^(1..L) and b^(1..L) (copied); sizes are read off their shapes.

        dtype defaults to float32 when every array is float32, and to float64 otherwise.
        """
        weights, biases = list(weights), list(biases)
        if not weights:
            raise ValueError("weights must hold at least one matrix w^(1).")
        if len(weights) != len(biases):
            raise ValueError(
                f"weights and biases must have one entry per layer, got {len(weights)} weight "
                f"matrices and {len(biases)} bias vectors."
            )
        if dtype is None:
            all_float32 = all(np.asarray(p).dtype == np.float32 for p in weights + biases)
            dtype = "float32" if all_float32 else "float64"
        dtype = check_dtype(dtype)
        weights = [as_real_array(w, f"weights[{l}]", dtype) for l, w in enumerate(weights)]
        biases = [as_real_array(b, f"biases[{l}]", dtype) for l, b in enumerate(biases)]
        for l, w in enumerate(weights):
            if w.ndim != 2 or 0 in w.shape:
                raise ValueError(
                    f"weights[{l}] must be a non-empty 2-D array, got shape {w.shape}."
                )
        sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
        net = cls(sizes, activation=activation, output_activation=output_activation, cost=cost,
                  dtype=dtype, seed=0)
        net.weights = weights
        net.biases = biases
        return net

    def __getstate__(self):
        state = self.__dict__.copy()
        # Locks and work buffers are not data: a copy gets its own.
        for key in ("_training", "_workspace", "_workspace_lock", "_fit_workspace"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        # An unpickled θ is a fresh array: put it back on a cache-line boundary (see _buffers).
        theta = aligned_empty(state["_theta"].shape[0], state["_theta"].dtype)
        theta[...] = state["_theta"]
        # Pickles of bpfast 0.1 kept the network's shape and choices in public attributes, and
        # the kernels' codes where the layout now is.
        for key in _FIXED:
            if key in state:
                state["_" + key] = state.pop(key)
        for key in ("_sizes_array", "_acts", "_cost"):
            state.pop(key, None)
        if "_layout" not in state:
            state["_layout"] = _kernels.NetworkLayout(
                state["_sizes"], [_kernels.ACTIVATION_CODES[f] for f in state["_activations"]],
                _kernels.COST_CODES[state["_cost_function"]])
        self.__dict__.update(state, _theta=theta, _training=threading.Lock(), _workspace=None,
                             _workspace_lock=threading.Lock(), _fit_workspace=None)

    # --- what a network is: fixed when it is made ------------------------------------------------

    sizes = property(lambda self: self._sizes, doc="(n0, …, nL), the widths of the layers.")
    activations = property(lambda self: self._activations,
                           doc="f_l of each layer l = 1..L, by name.")
    activation = property(lambda self: self._activation,
                          doc="The activation of the hidden layers, as passed.")
    cost_function = property(lambda self: self._cost_function, doc="The cost's name.")
    dtype = property(lambda self: self._dtype, doc="The precision of θ and of every computation.")

    def __setattr__(self, key, value):
        if key in _FIXED:
            raise AttributeError(
                f"{key} is fixed when a Network is made (the kernels' buffers and θ's layout "
                f"follow from it); make a new one: bpfast.Network(sizes, ...), or "
                f"Network.from_params(weights, biases, ...).")
        super().__setattr__(key, value)

    # --- parameters ------------------------------------------------------------------------------

    @property
    def output_activation(self):
        """f_L, the activation of the output layer."""
        return self.activations[-1]

    @property
    def L(self):
        """The number of weight layers."""
        return len(self.sizes) - 1

    @property
    def n_params(self):
        """P = Σ_l n_l (n_{l−1} + 1), the length of ∇C."""
        return self._theta.shape[0]

    @property
    def weights(self):
        return tuple(_split(self._theta, self._layout)[0])

    @weights.setter
    def weights(self, values):
        self._assign(values, 0, "weights")

    @property
    def biases(self):
        return tuple(_split(self._theta, self._layout)[1])

    @biases.setter
    def biases(self, values):
        self._assign(values, 1, "biases")

    def _assign(self, values, which, name):
        """Copy new w^(l) (which=0) or b^(l) (which=1) into θ, all of them checked first."""
        targets = _split(self._theta, self._layout)[which]
        values = list(values)
        if len(values) != self.L:
            raise ValueError(f"{name} must hold L = {self.L} arrays, got {len(values)}.")
        checked = []
        for l, (value, target) in enumerate(zip(values, targets)):
            value = as_real_array(value, f"{name}[{l}]", self.dtype)
            if value.shape != target.shape:
                raise ValueError(
                    f"{name}[{l}] must have shape {target.shape} for sizes {list(self.sizes)}, "
                    f"got {value.shape}."
                )
            checked.append(value)
        for value, target in zip(checked, targets):
            target[...] = value

    def parameters_vector(self):
        """θ = (w^(1), b^(1), …, w^(L), b^(L)) flattened in the slides' order (a copy)."""
        return self._theta.copy()

    def set_parameters_vector(self, vector):
        """Replace θ by ``vector`` (same order as `parameters_vector`)."""
        vector = as_real_array(vector, "vector", self.dtype)
        if vector.shape != self._theta.shape:
            raise ValueError(
                f"vector must have shape ({self.n_params},) for sizes {list(self.sizes)}, "
                f"got {vector.shape}."
            )
        self._theta[...] = vector

    def _finite_or_raise(self, array, what):
        """`array` if it is finite. The kernels compute what IEEE arithmetic gives: a NaN or an
        infinity in θ itself (written into the weights, or left by a step that overflowed)
        comes out everywhere, and an overflow to inf − inf shows as NaN."""
        # One pass without a temporary (`_validation.all_finite`).
        if all_finite(array):
            return array
        for name, symbol, arrays in (("weights", "w", self.weights), ("biases", "b", self.biases)):
            for l, p in enumerate(arrays):
                if not np.isfinite(p).all():
                    kind = "NaN" if np.isnan(p).any() else "infinity"
                    raise ValueError(
                        f"the network's {name}[{l}] ({symbol}^({l + 1})) contains {kind}: "
                        "every parameter must be finite. Set new values (net.weights = ..., "
                        "net.set_parameters_vector) or make a new network.")
        raise FloatingPointError(
            f"{what} is not finite: the computation overflowed the {array.dtype} range (inputs, "
            "targets or parameters too large in magnitude). Scale the data or parameters down.")

    # --- calls: the kernels on a batch, its examples shared between threads ------------------

    #: Work buffers larger than this (bytes) are not kept between calls.
    KEEP_WORKSPACE_BYTES = 64 << 20

    def _workspace_for(self, n):
        """``with net._workspace_for(n) as workspace:`` work buffers for n examples: the
        network's own, kept between calls — unless another thread is using them (then fresh
        ones: two threads may call one network at once)."""
        return _WorkspaceFor(self, n)

    def _parts(self, n, n_threads, flops_per_example):
        """How many parts a call on n examples is split into: n_threads if given, else as `fit`
        chooses (the cores, OpenMP's limit, the work there is) — never more than the rows, or
        the chunks of rows where BLAS computes (`_kernels.call_parts`)."""
        if n_threads is None:
            n_threads = training._default_threads(flops_per_example // 6, n)
        else:
            n_threads = check_count(n_threads, "n_threads", 1)
        return _kernels.call_parts(n, n_threads)

    def _call(self, X, Y, writes=0, out=None, keep_z=False, n_threads=None, layers=(),
              weights=None, fresh_out=False):
        """The kernels on a validated batch X (and targets Y, or None): Σ_k C_k, and copies of
        the layers' a blocks asked for (``layers``: l = 1..L; with keep_z, z's too), each (n, n_l),
        and whether the gradients written are finite (`_kernels.run_call`: certainly, or exactly)
        — or, asked for a^(L) alone (``layers=(L,)``, writing nothing else), whether it is: the
        parts copy their rows of it into a fresh array themselves. X's finiteness, left
        unchecked by the validation, is checked exactly on z^(1) before anything is written."""
        n = X.shape[0]
        flops = 2 * self.n_params * (1 if writes == 0 else 3)
        parts = self._parts(n, n_threads, flops)
        # A fresh output's pages are faulted in as it is written: per-example gradients into a
        # new array and into a kept one take their steps in different times, and one team
        # judging both would compare one with the other.
        kind = ("call", self.sizes, n, parts, writes, fresh_out)
        # BLAS single-threaded: parts call it each on their own rows, where its own threads
        # would only compete, and a row must come out the same whatever the number of parts.
        # None chose no more parts than cores (`training._default_threads`).
        workers = (parts if parts == 1 or n_threads is None
                   else min(parts, training.available_cores()))
        output = None
        if layers == (self.L,) and not keep_z and writes == 0:
            output = np.empty((n, self.sizes[-1]), self.dtype)
        with self._workspace_for(n) as workspace, _single_threaded_blas(), \
                _pool.team(workers, kind) as team:
            sum_C, finite, bounded = _kernels.run_call(self._layout, self._theta, X, Y,
                                                       workspace, writes, out, team, parts, keep_z,
                                                       weights=weights, output=output,
                                                       kept_out=not fresh_out)
            if not finite:
                # A NaN or an infinity in X (or θ), named as validation names it — or finite
                # numbers whose z^(1) overflowed, which σ and tanh take in their stride (σ(∞) = 1):
                # then the call again, unchecked.
                check_finite(X, "X")
                sum_C, _, bounded = _kernels.run_call(self._layout, self._theta, X, Y, workspace,
                                                      writes, out, team, parts, keep_z,
                                                      check_z=False, weights=weights,
                                                      output=output, kept_out=not fresh_out)
            a, z = [], []
            if output is not None:
                a = [output]
            elif layers:
                regions = _kernels.regions(self._layout, n, parts)
                a = [self._gather(workspace.A, regions, l) for l in layers]
                z = [self._gather(workspace.Z, regions, l) for l in layers] if keep_z else []
        return sum_C, a, z, bounded

    def _gather(self, buffer, regions, l):
        """Layer l's (n, n_l) block from the parts' regions of a workspace buffer (a copy)."""
        n_l = self.sizes[l]
        pieces = []
        for _, rows, offset in regions:
            start = offset + self._layout.block(l, rows)
            pieces.append(buffer[start:start + rows * n_l].reshape(rows, n_l))
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()

    # --- the forward pass ------------------------------------------------------------------------

    def forward(self, x):
        """The forward pass: z^(l) = w^(l) a^(l−1) + b^(l) and a^(l) = f_l(z^(l)) for l = 1..L.

        ``x`` is one example (1-D, length n0) or a batch (2-D, one example per row). Returns a
        `Trace` with ``z`` (L arrays) and ``a`` (L+1 arrays, ``a[0]`` the input).
        """
        X, single = self._as_batch(x, "X")
        layers = range(1, self.L + 1)
        _, a, z, _ = self._call(X, None, keep_z=True, layers=layers)
        a = [self._finite_or_raise(a_l, "the forward pass (a^(l))") for a_l in a]
        if single:
            return Trace([z_l[0] for z_l in z], [X[0].copy()] + [a_l[0] for a_l in a])
        return Trace(z, [X.copy()] + a)

    def predict(self, X, *, n_threads=None):
        """a^(L), the network's output, for one example or a batch (its examples shared between
        threads where there is enough of them: ``n_threads`` as `fit`'s, None choosing)."""
        X, single = self._as_batch(X, "X")
        _, (a_L,), _, finite = self._call(X, None, n_threads=n_threads, layers=(self.L,))
        if not finite:
            self._finite_or_raise(a_L, "the forward pass (a^(l))")
        return a_L[0] if single else a_L

    def cost(self, X, Y):
        """C_0 of one example (by default Σ_j (a_j^(L) − y_j)²; see `bpfast.costs`); for a batch,
        the mean C = (1/n) Σ_k C_k."""
        X, Y = self._pair(X, Y, x_finite=False)
        return self._cost_and_accuracy(np.atleast_2d(X), np.atleast_2d(Y), accuracy=False)[0]

    def evaluate(self, X, Y):
        """``(cost, accuracy)`` on a batch: the mean cost C, and the fraction of examples whose
        largest output a_j^(L) is their class (one-hot targets, or labels); with one output and
        0/1 targets (binary classification), whose output is on their target's side of ½. The
        accuracy is None for other targets.
        """
        X, Y = self._pair(X, Y, ndims=(2,), x_finite=False)
        return self._cost_and_accuracy(X, Y)

    def _mean_cost(self, sum_C, n):
        """C = (1/n) Σ_k C_k from the kernels' sum, refused as `_finite_or_raise` refuses an
        array when it is not finite (checked as a number: an array of it cost 3.5 µs a call)."""
        if not math.isfinite(sum_C):
            self._finite_or_raise(np.array(sum_C), "the cost")
        return float(sum_C) / n

    def _cost_and_accuracy(self, X, Y, accuracy=True):
        """`evaluate` of a batch that has been validated already (fit's validation data): the
        kernels' cost, the one `fit` minimises, and a^(L) from the same pass."""
        sum_C, a, _, finite = self._call(X, Y, layers=(self.L,) if accuracy else ())
        cost = self._mean_cost(sum_C, X.shape[0])
        if not accuracy:
            return cost, None
        if not finite:                  # a^(L), as the parts found it (`_call`)
            self._finite_or_raise(a[0], "the forward pass (a^(l))")
        return cost, self._accuracy(a[0], Y)

    def _accuracy(self, a_L, Y):
        """The share of examples classified right: the largest output is the class (one-hot
        targets or labels); with one output and 0/1 targets, the output is on the target's side
        of ½. None for other targets (regression, several labels per example)."""
        if not np.isin(Y, (0, 1)).all():
            return None
        if self.sizes[-1] == 1:
            return float(np.mean((a_L[:, 0] >= 0.5) == (Y[:, 0] == 1)))
        if (Y.sum(axis=1) == 1).all():
            return float(np.mean(a_L.argmax(axis=1) == Y.argmax(axis=1)))
        return None

    def _pair(self, X, Y, ndims=(1, 2), names=("X", "Y"), x_finite=True):
        """Inputs and targets, converted and checked once (`as_pair`); cross-entropy also needs
        targets in [0, 1]: it is −Σ_j y_j ln a_j (− (1 − y_j) ln(1 − a_j)), a probability's cost,
        unbounded below for y outside [0, 1]. ``x_finite=False``: X's finiteness is left to the
        kernels' exact check (`_call`)."""
        X, Y = as_pair(X, Y, self.sizes, self.dtype, ndims=ndims, names=names, x_finite=x_finite)
        if self.cost_function == "cross_entropy" and not ((Y >= 0) & (Y <= 1)).all():
            raise ValueError(
                f"{names[1]} must hold probabilities in [0, 1] (one-hot rows, or class labels) for "
                f"the cross-entropy cost; it ranges over [{Y.min():g}, {Y.max():g}].")
        return X, Y

    @staticmethod
    def _one_as_batch(X, Y):
        """A validated pair as a batch: one example (1-D) as a batch of one."""
        if X.ndim == 1:
            return X.reshape(1, -1), Y.reshape(1, -1)
        return X, Y

    def _as_batch(self, x, name):
        array = as_examples(x, name, self.sizes[0], "n0 (sizes[0])", self.dtype, finite=False)
        if array.ndim == 1:
            return array.reshape(1, -1), True
        return array, False

    # --- the backward pass -----------------------------------------------------------------------

    def _mean_gradient(self, X, Y, n_threads=None, weights=None):
        """(Σ_k C_k, ∂C/∂θ as a Gradient) of a validated batch; with per-example ``weights``
        (checked, float64), of the weighted mean: each example's δ_k^(L) and C_k scaled by
        ω_k = n w_k / Σ w, so that the kernels' (1/n) Σ_k is Σ_k w_k (…) / Σ_k w_k."""
        # Aligned like fit's buffers: BLAS may round differently on differently aligned operands,
        # and the same call must give the same bits whatever memory it happens to get.
        grad = aligned_empty(self.n_params, self.dtype)
        if weights is not None:
            weights = (weights * (X.shape[0] / weights.sum())).astype(self.dtype)
        sum_C, _, _, bounded = self._call(X, Y, _WRITES["mean"], grad, n_threads=n_threads,
                                          weights=weights)
        if not bounded:
            # A value of ∂C/∂θ is not finite: say why (θ itself, or an overflow).
            self._finite_or_raise(grad, "the gradient")
        return sum_C, Gradient(grad, self.sizes)

    def backprop(self, x, y):
        """∂C_0/∂w^(l) and ∂C_0/∂b^(l) of one example (x, y 1-D), as a `Gradient`.

            δ^(L)   = σ'(z^(L)) ⊙ 2 (a^(L) − y)      (other costs and outputs: `bpfast.costs`)
            δ^(l−1) = f'(z^(l−1)) ⊙ (w^(l))ᵀ δ^(l)
            ∂C_0/∂w^(l) = δ^(l) (a^(l−1))ᵀ,   ∂C_0/∂b^(l) = δ^(l)
        """
        x, y = self._pair(x, y, ndims=(1,), x_finite=False)
        return self._mean_gradient(x.reshape(1, -1), y.reshape(1, -1))[1]

    def gradient(self, X, Y, *, sample_weight=None, n_threads=None):
        """The batch mean ∂C/∂θ = (1/n) Σ_k ∂C_k/∂θ, as a `Gradient` (X, Y one row per example);
        with ``sample_weight`` w (n numbers ≥ 0), the weighted mean Σ_k w_k ∂C_k/∂θ / Σ_k w_k.
        Its examples are shared between threads where there is enough of them (``n_threads`` as
        `fit`'s); the same n_threads gives the same bits."""
        X, Y = self._one_as_batch(*self._pair(X, Y, x_finite=False))
        weights = check_sample_weight(sample_weight, X.shape[0])
        return self._mean_gradient(X, Y, n_threads, weights)[1]

    def cost_and_gradient(self, X, Y, *, sample_weight=None, n_threads=None):
        """``(C, ∂C/∂θ)``: the mean cost and its gradient from one pass (the kernels compute Σ_k C_k
        on their way to δ^(L)) — what a full-batch optimiser asks for at every step. With
        ``sample_weight`` w: the weighted means Σ_k w_k C_k / Σ_k w_k and its gradient (a weight
        of 2 counts as the example twice)."""
        X, Y = self._one_as_batch(*self._pair(X, Y, x_finite=False))
        weights = check_sample_weight(sample_weight, X.shape[0])
        sum_C, g = self._mean_gradient(X, Y, n_threads, weights)
        return self._mean_cost(sum_C, X.shape[0]), g

    def per_example_gradients(self, X, Y, *, out=None, n_threads=None):
        """Each example's ∂C_k/∂θ, as a `Gradient` whose arrays have a leading axis n.

        ``out``: where to write them — an (n, P) array of the network's dtype, C-ordered and
        writable, or a per-example `Gradient` of this network's sizes and dtype — so that a loop
        of calls reuses one buffer; it must not overlap X, Y or θ. Nothing is written into it
        when the inputs are refused. A kept buffer larger than the last-level cache (more than
        32 MiB, `bpfast._kernels.streamed_bytes`) is written in non-temporal stores, straight to
        memory (0.98–1.69× the stores' speed on an AVX2 Zen 3; even with them, within the noise,
        on an AVX-512 Zen 4); a fresh array by stores.
        Threads share the examples: each row is computed the same way whatever their number."""
        X, Y = self._pair(X, Y, ndims=(2,), x_finite=False)
        rows = self._out_rows(out, X, Y)
        bounded = self._call(X, Y, _WRITES["examples"], rows, n_threads=n_threads,
                             fresh_out=out is None)[3]
        if not bounded:
            # The kernels' bound on the values (|δ_kj a_ki|) is not finite: look at them all.
            self._finite_or_raise(rows, "the gradient")
        if out is None or not isinstance(out, Gradient):
            return Gradient(rows, self.sizes)
        return out

    def _out_rows(self, out, X, Y):
        """The (n, P) buffer that per-example gradients go to: a new one, or ``out`` checked."""
        n, P = X.shape[0], self.n_params
        if out is None:
            return aligned_empty(n * P, self.dtype).reshape(n, P)
        if isinstance(out, Gradient):
            if out.sizes != self.sizes or not out.per_example:
                raise ValueError(f"out must be per-example gradients of sizes {list(self.sizes)}, "
                                 f"got {out!r}.")
            rows = out._vector
        elif isinstance(out, np.ndarray):
            rows = out
        else:
            raise TypeError(f"out must be a numpy array or a bpfast.Gradient, got "
                            f"{type(out).__name__}.")
        if rows.shape != (n, P):
            raise ValueError(f"out must have shape ({n}, {P}) for {n} examples of a network of P = "
                             f"{P} parameters, got {rows.shape}.")
        if rows.dtype != self.dtype:
            raise TypeError(f"out must have the network's dtype {self.dtype.name}, got "
                            f"{rows.dtype.name}.")
        if not rows.flags.c_contiguous or not rows.flags.writeable:
            raise ValueError("out must be C-contiguous and writable.")
        for name, other in (("X", X), ("Y", Y), ("the network's parameters", self._theta)):
            if np.may_share_memory(rows, other):
                raise ValueError(f"out must not overlap {name}.")
        return rows

    def per_example_norms(self, X, Y, *, per_layer=False, n_threads=None):
        """‖∂C_k/∂θ‖₂ of each example k, without forming the per-example gradients: the gradient
        of w^(l) is the outer product δ_k^(l) (a_k^(l−1))ᵀ, whose norm is ‖δ_k^(l)‖ ‖a_k^(l−1)‖, so

            ‖∂C_k/∂θ‖² = Σ_l ‖δ_k^(l)‖² (‖a_k^(l−1)‖² + 1)      (the + 1: b^(l)'s ‖δ_k^(l)‖²)

        Returns an (n,) array, or with ``per_layer`` (n, L): ‖∂C_k/∂(w^(l), b^(l))‖ for each layer
        (`bpfast.reference.example_norms` computes the same by loops)."""
        X, Y = self._pair(X, Y, ndims=(2,), x_finite=False)
        per_layer = check_flag(per_layer, "per_layer")
        squares = np.empty((X.shape[0], self.L))
        self._call(X, Y, _WRITES["norms"], squares, n_threads=n_threads)
        self._finite_or_raise(squares, "the norms")
        if not per_layer:
            # Σ_l column by column: numpy's sum along the short axis took 27 µs on the digits'
            # 1,797 × 2 (a tenth of the call), these adds 2.5 µs.
            total = squares[:, 0].copy()
            for l in range(1, self.L):
                total += squares[:, l]
            squares = total
        return np.sqrt(squares).astype(self.dtype, copy=False)

    def objective(self, X, Y, *, l2=0.0, sample_weight=None, n_threads=None):
        """θ ↦ (C(θ), ∇C(θ)) on the data (X, Y), for `scipy.optimize.minimize(…, jac=True)`: a
        function of a flat θ (in the order of `parameters_vector`) returning the mean cost and
        its gradient as float64, as scipy works. With ``l2`` = λ, C gains (λ/2) Σ_l ‖w^(l)‖²
        (as `fit`'s l2: biases are not penalised); with ``sample_weight``, C is the weighted mean
        (`cost_and_gradient`). It leaves this network as it is (it computes on a copy), checks
        (X, Y) once, and converts θ and ∇C once per call."""
        X, Y = self._pair(X, Y, ndims=(2,))
        weights = check_sample_weight(sample_weight, X.shape[0])
        return self._objective(X, Y, check_positive_real(l2, "l2", allow_zero=True), 1.0,
                               weights, n_threads)

    def _weight_slices(self):
        """Where each w^(l) lies in θ: the parameters L2 penalises (biases are not)."""
        layout = self._layout
        return [slice(layout.w_offset(l), layout.b_offset(l)) for l in range(1, self.L + 1)]

    def _weight_squares(self, theta=None):
        """Σ_l ‖w^(l)‖² of θ (the network's own by default), in float64."""
        theta = self._theta if theta is None else theta
        return sum(float(np.dot(theta[w], theta[w])) for w in self._weight_slices())

    def _add_l2(self, theta, cost, gradient, l2):
        """cost + (λ/2) Σ‖w‖², with λ w added to the gradient's weights in place (float64)."""
        if l2:
            for w in self._weight_slices():
                gradient[w] += l2 * theta[w]
            cost += 0.5 * l2 * self._weight_squares(theta)
        return cost

    def _objective(self, X, Y, l2, scale, weights=None, n_threads=None):
        """`objective` on validated data, its value and gradient times ``scale``."""
        work = copy.deepcopy(self)
        n = X.shape[0]

        def cost_and_gradient(theta):
            theta = as_real_array(theta, "theta", np.float64)
            if theta.shape != (self.n_params,):
                raise ValueError(f"theta must have shape ({self.n_params},), got {theta.shape}.")
            work._theta[...] = theta
            sum_C, g = work._mean_gradient(X, Y, n_threads, weights)
            cost = work._mean_cost(sum_C, n)
            gradient = g._vector.astype(np.float64)
            cost = self._add_l2(theta, cost, gradient, l2)
            if scale != 1.0:
                cost *= scale
                gradient *= scale
            return cost, gradient

        return cost_and_gradient

    def minimize(self, X, Y, *, method="L-BFGS-B", max_iter=None, tol=None, l2=0.0,
                 sample_weight=None, options=None, callback=None, n_threads=None):
        """Full-batch training: θ minimising C(θ) + (λ/2) Σ_l ‖w^(l)‖² on all of (X, Y) (C the
        mean cost, λ = ``l2``), by `scipy.optimize.minimize` with ``method`` (L-BFGS-B by
        default; any of its methods that take a gradient) and ``jac=True`` — each evaluation one
        pass of the kernels over the data (`objective`; ``sample_weight``: C the weighted mean).
        θ is set to the result, in place.

        ``max_iter``: the method's iteration limit (its ``maxiter`` option); ``tol`` and
        ``callback`` as scipy's; ``options``: the method's other options (L-BFGS-B: ``maxfun``,
        ``gtol``, ``ftol``, ``maxcor``). Returns scipy's `OptimizeResult`: ``x`` (θ, float64),
        ``fun``, ``jac``, ``nit`` (iterations), ``nfev`` (evaluations), ``success``,
        ``message``. The network keeps its θ if an evaluation fails (a cost that overflows).
        ``n_threads`` as the calls'."""
        X, Y = self._pair(X, Y, ndims=(2,))
        l2, settings = self._minimize_settings(method, max_iter, tol, l2, options, callback)
        weights = check_sample_weight(sample_weight, X.shape[0])
        if n_threads is not None:
            n_threads = check_count(n_threads, "n_threads", 1)
        return self._minimize(self._objective(X, Y, l2, 1.0, weights, n_threads), **settings)

    @staticmethod
    def _minimize_settings(method, max_iter, tol, l2, options, callback):
        """`minimize`'s arguments checked (the same for `bpfast.dask.minimize`): λ, and a dict
        of `_minimize`'s keywords."""
        if not isinstance(method, str):
            raise TypeError(f"method must be the name of a scipy.optimize.minimize method, got "
                            f"{type(method).__name__}.")
        if method.lower() in ("nelder-mead", "powell", "cobyla", "cobyqa"):
            raise ValueError(f"method must use the gradient (jac=True); {method!r} does not.")
        options = {} if options is None else dict(options)
        if max_iter is not None:
            options["maxiter"] = check_count(max_iter, "max_iter", 1)
        if tol is not None:
            tol = check_positive_real(tol, "tol", allow_zero=True)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}.")
        return (check_positive_real(l2, "l2", allow_zero=True),
                dict(method=method, tol=tol, options=options, callback=callback))

    def _minimize(self, objective, method, tol, options, callback):
        """θ ← scipy's minimum of `objective`, from θ."""
        from scipy import optimize
        try:
            # BLAS on one thread for scipy's vector work too: its threads, spinning after each
            # small product, would take a core from the kernels' next evaluation.
            with _single_threaded_blas():
                result = optimize.minimize(objective, self._theta.astype(np.float64),
                                           method=method, jac=True, tol=tol, options=options,
                                           callback=callback)
        except ValueError as error:
            if "Unknown solver" in str(error):
                raise ValueError(f"method must be one of scipy.optimize.minimize's, got "
                                 f"{method!r}.") from None
            raise
        if not np.isfinite(result.x).all():
            raise FloatingPointError(f"{method} ended on non-finite parameters; the network "
                                     "keeps its own.")
        self._theta[...] = result.x
        return result

    # --- gradient descent ------------------------------------------------------------------------

    def step(self, gradient, learning_rate):
        """One step of gradient descent, in place: θ ← θ − η ∇C.

        The network is left unchanged if the step would make a parameter non-finite.
        """
        if not isinstance(gradient, Gradient):
            raise TypeError(
                f"gradient must be a bpfast.Gradient (from net.gradient), got "
                f"{type(gradient).__name__}."
            )
        if gradient.sizes != self.sizes:
            raise ValueError(
                f"gradient is for sizes {list(gradient.sizes)}, but this network has sizes "
                f"{list(self.sizes)}."
            )
        if gradient.per_example:
            raise ValueError(
                "gradient holds per-example gradients; step takes their mean: "
                "net.step(gradient.mean(), learning_rate)."
            )
        eta = check_positive_real(learning_rate, "learning_rate")
        g = as_real_array(gradient._vector, "gradient", self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            theta = self._theta - self.dtype.type(eta) * g
        if not np.isfinite(theta).all():
            raise ValueError(
                f"the step with learning_rate={eta!r} would make parameters non-finite; "
                "the network is unchanged. Use a smaller learning rate."
            )
        self._theta[...] = theta

    # --- training ------------------------------------------------------------------------------

    def fit(self, X, Y, *, epochs, batch_size, learning_rate, seed=None, n_threads=None,
            optimizer="sgd", momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999), eps=1e-8,
            validation_data=None, early_stopping=None, callback=None, clip_norm=None,
            noise_multiplier=None, sampling=None, target_delta=None, accountant="pld",
            target_epsilon=None, resume=None, sample_weight=None):
        """Train in place by mini-batch gradient descent; returns a `bpfast.training.History`.

        Each epoch visits the examples (rows of X and Y) in a random order drawn from ``seed``,
        in mini-batches of ``batch_size`` (the last one may be shorter and is averaged over its
        own size), and takes one step w ← w − η ∂C/∂w per mini-batch, C being the mini-batch's
        mean cost. The whole epoch runs in the kernels with the GIL released.

        Parameters
        ----------
        X, Y : the training set, one example per row (converted to the network's dtype once,
            and only if it is not already C-contiguous in that dtype). A NaN or an infinity in X
            is found as the first epoch gathers its row, before a step uses it: the network is
            put back as it was and ValueError raised (Poisson sampling, which may skip rows,
            and epochs=0 check X first).
        epochs : int ≥ 0;  batch_size : int ≥ 1;  learning_rate : η > 0.
        seed : None, int or numpy.random.Generator, for the order of the examples.
        n_threads : int ≥ 1 or None
            How many parts each step is split into — each part a share of every layer's
            neurons, or of the mini-batch's examples when every layer is narrow (fewer than
            128 neurons per part) and the mini-batch has 64 examples or more, or when each
            part gets 512 examples or more — and how many threads at most compute them.
            None means the cores this process may run on, no more than OpenMP's limit
            (OMP_NUM_THREADS, threadpoolctl),
            and fewer when a mini-batch is too small to be worth sharing
            (`bpfast.training.default_threads`). The threads adapt to a busy machine: when
            waiting for each other costs more than it gains (another program on the cores,
            several fits at once), one thread computes every part in turn, and the others
            sleep until sharing pays again; this is measured while fit runs. It changes only
            who computes a part, never what a part computes nor the order of any sum: the same
            data, seed and n_threads give bitwise-identical weights whatever the load (for
            mini-batches of 64 or more, as long as no other thread calls BLAS at the same time:
            OpenBLAS then rounds some products differently, in the last bit). While fit runs,
            BLAS is kept to one thread (threadpoolctl): each thread calls BLAS on its own part.
        optimizer : {"sgd", "adam"}
            "sgd": the steps above (with ``momentum``, heavy-ball or Nesterov); "adam": Adam,
            m ← β1 m + (1 − β1) g, r ← β2 r + (1 − β2) g², θ ← θ − η m̂ / (√r̂ + ε) with the
            bias corrections m̂ = m / (1 − β1^t), r̂ = r / (1 − β2^t) (η = 1e-3 is its usual rate).
        momentum : μ in [0, 1)
            Heavy ball: v ← μ v + g, θ ← θ − η v (0, the default, is plain gradient descent).
        nesterov : bool
            With momentum: θ ← θ − η (g + μ v), the gradient of the look-ahead point.
        l2 : λ ≥ 0
            L2 regularisation: C gains (λ/2) Σ_l ‖w^(l)‖², so g_w = ∂C/∂w + λ w; biases are not
            regularised. The history's costs do not include the penalty.
        betas : (β1, β2), each in [0, 1);  eps : ε > 0.   Adam's hyper-parameters.
        Every rule runs inside the kernels' epoch loop; v, m and r start at 0 with each call.
        validation_data : (X_val, Y_val) or None
            Evaluated after each epoch (`evaluate`): the history gains validation_cost and,
            for one-hot targets or labels, validation_accuracy.
        early_stopping : int or None
            Patience: stop when the validation cost has not improved for that many epochs, and
            keep the parameters of the best epoch (needs validation_data).
        clip_norm : R > 0 or None
            Per-example clipping: each example's gradient ∂C_k/∂θ (all of θ) is scaled to
            c_k ∂C_k/∂θ with c_k = min(1, R / ‖∂C_k/∂θ‖₂) before the mini-batch's mean, the
            first half of DP-SGD (Abadi et al., 2016). The norms come from each layer's δ_k and
            a_k (‖δ_k‖² (‖a_k‖² + 1) per layer), and the clipped sums are the same products as
            plain training with each δ_k scaled: the per-example gradients are never formed.
            Such steps share the examples between threads whatever the shape.
        noise_multiplier : ν ≥ 0 or None (needs clip_norm)
            DP-SGD's second half: each step uses ḡ = (1/B) (Σ_k c_k ∂C_k/∂θ + ν R ξ), ξ ~ N(0, I)
            over all of θ, B the mini-batch's size; momentum, Nesterov and Adam apply to ḡ, L2
            after the noise. ξ is drawn in the kernels by a counter-based generator (SplitMix64
            and Box–Muller, vectorized; `bpfast.reference.noise` writes it out) keyed by
            ``seed``, the step and the coordinate: the same for any n_threads, reproducible for
            a seed — and not a cryptographic generator (|ξ_i| ≤ 6.66 by construction).
        sampling : "shuffle", "ordered", "poisson" or None
            How mini-batches are drawn. "shuffle": each epoch's shuffled order, cut into
            batch_size. "ordered": the rows in their own order, every epoch (no shuffling).
            "poisson" (the default with noise; needs clip_norm): an epoch is
            round(N / B) steps, each holding every example independently with probability
            q = B / N (B = batch_size) — so a step's size varies, may be 0 (its noise is still
            added) — and its sum is divided by B, the expected size: what the privacy
            accountants assume (`bpfast.privacy.epsilon(ν, B / N, steps, δ_DP)`). The history's
            cost is then the mean over the examples the epoch visited.
        target_delta, accountant : δ_DP in (0, 1), and "pld" or "rdp"
            After training, the History gets the ε the private steps spent at δ_DP
            (`bpfast.privacy`; needs ``pip install "bpfast[privacy]"``): ``history.epsilon``,
            and ``history.privacy`` saying what it covers — or why there is none. A fit that
            stops with an error (Ctrl-C, divergence) counts every step it ran, in the history
            the error carries. Choose δ_DP well below 1/N: at 1/N, publishing one example in
            the clear qualifies.
        target_epsilon : ε > 0 or None
            With clip_norm and target_delta (and no noise_multiplier): fit chooses the least
            ν whose ε after all the epochs' Poisson steps is at most target_epsilon
            (`bpfast.privacy.noise_multiplier`), recorded in ``history.noise_multiplier``.
        sample_weight : n numbers ≥ 0, or None
            Per-example weights, with scikit-learn's meaning: each mini-batch's cost is the
            weighted mean Σ_k w_k C_k / Σ_k w_k of its examples' (in the kernels, each δ_k^(L)
            is scaled by its weight), and the history's cost the epoch's weighted mean. Not
            with clip_norm or noise: a weight would raise an example's influence above R.
        resume : `bpfast.training.OptimizerState` or None
            The optimizer's memory from an earlier fit of this network (``history.state``):
            momentum's velocity, Adam's moments and step count continue from there instead of
            from zero — as scikit-learn's warm_start and partial_fit, or a PyTorch optimizer
            kept between loops. Its rule must be this fit's. ``history.state`` of every fit
            holds the state it ends with.
        callback : callable or None
            Called after each epoch as ``callback(epoch, figures)``, epoch counting from 1 and
            figures a dict with the epoch's "cost" and "seconds" (and "validation_cost",
            "validation_accuracy") — the hook for progress bars and notebooks. Returning False
            stops training after that epoch.

        Targets may be one-hot rows or, beside a batch X, 1-D integer class labels.

        Returns
        -------
        `bpfast.training.History`: per epoch, the mean training cost and the time taken.

        Raises `bpfast.TrainingDiverged` (an ArithmeticError) if a step makes the parameters
        non-finite: the network then keeps those of the last finite step (which may already be
        huge), and the exception carries ``parameters_before_epoch``, θ as it was when that epoch
        began. Ctrl-C stops at the next mini-batch boundary with a KeyboardInterrupt whose
        ``epoch`` and ``mini_batch`` (from 1; 0: none of that epoch's) name the last completed
        step, whose parameters the network holds — where Ctrl-C raises KeyboardInterrupt at all
        (Python's own handler, the main thread). An ignored SIGINT stays ignored, and a SIGINT
        handler of your own runs when the epoch in progress ends.
        """
        if not self._training.acquire(blocking=False):
            raise RuntimeError("fit is already running on this network in another thread; "
                               "train a copy (copy.deepcopy) to train two at once.")
        try:
            if callback is not None and not callable(callback):
                raise TypeError(f"callback must be callable, got {type(callback).__name__}.")
            # X's finiteness is checked below: by the first epoch, where it visits every row.
            X, Y = self._pair(X, Y, ndims=(2,), x_finite=False)
            validate = None
            if validation_data is not None:
                try:
                    X_val, Y_val = validation_data
                except (TypeError, ValueError):
                    raise TypeError("validation_data must be a pair (X_val, Y_val).") from None
                X_val, Y_val = self._pair(X_val, Y_val, ndims=(2,), names=("X_val", "Y_val"))

                def validate():
                    return self._cost_and_accuracy(X_val, Y_val)

            settings = training.FitSettings.checked(
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                n_threads=n_threads, optimizer=optimizer, momentum=momentum, nesterov=nesterov,
                l2=l2, betas=betas, eps=eps, early_stopping=early_stopping,
                has_validation=validation_data is not None, clip_norm=clip_norm,
                noise_multiplier=noise_multiplier, sampling=sampling, target_delta=target_delta,
                accountant=accountant, target_epsilon=target_epsilon, resume=resume)
            weights = check_sample_weight(sample_weight, X.shape[0])
            if weights is not None and settings.clip_norm:
                raise ValueError("sample_weight is not for private training (clip_norm, "
                                 "noise_multiplier): a weight above 1 raises an example's "
                                 "influence above the clip norm R that the privacy rests on.")
            # A first epoch that visits every row checks each as it gathers it, in cache: a
            # pass over X the less (1.7 ms of a 64 MB X, 2% of a one-epoch fit of
            # [784, 256, 10] on it). Poisson sampling may leave rows out, and epochs=0 visits
            # none: X is checked here.
            x_finite = settings.epochs == 0 or settings.sampling == "poisson"
            if x_finite:
                check_finite(X, "X")
            batch = min(settings.batch_size, X.shape[0])
            if settings.sampling == "poisson":
                batch = training.poisson_rows(X.shape[0], batch)
            workspace = self._fit_workspace
            if workspace is None or workspace.rows < batch:
                workspace = self._layout.workspace(batch, self.dtype, training=True)
                self._fit_workspace = None
            try:
                return training.train(self._layout, self._theta, X, Y, settings,
                                      validate=validate, callback=callback, workspace=workspace,
                                      sample_weight=weights, x_finite=x_finite)
            finally:
                if workspace.nbytes <= self.KEEP_WORKSPACE_BYTES:
                    self._fit_workspace = workspace
        finally:
            self._training.release()

    # --- model files ---------------------------------------------------------------------------

    def save(self, path):
        """Write the network to an .npz model file (see `bpfast.modelfile`); `bpfast.load` reads
        it."""
        modelfile.save(self, path)

    def __repr__(self):
        output = (f", output_activation={self.output_activation!r}"
                  if self.output_activation != self.activation else "")
        return (f"Network(sizes={list(self.sizes)}, activation={self.activation!r}{output}, "
                f"cost={self.cost_function!r}, dtype={self.dtype.name!r})")


def load(path):
    """The Network saved by `Network.save` in ``path``, its every field checked first."""
    weights, biases, choices = modelfile.read(path)
    try:
        return Network.from_params(weights, biases, **choices)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None


class _WorkspaceFor:
    """`Network._workspace_for`'s context: a class, not a generator, since a call of a few dozen
    microseconds enters one at every call."""

    __slots__ = ("net", "n", "locked")

    def __init__(self, net, n):
        self.net, self.n = net, n

    def __enter__(self):
        net, n = self.net, self.n
        self.locked = net._workspace_lock.acquire(blocking=False)
        if not self.locked:
            return net._layout.workspace(n, net.dtype)
        try:
            workspace = net._workspace
            if workspace is None or workspace.rows < n:
                workspace = net._layout.workspace(n, net.dtype)
                if n * net._layout.width * net.dtype.itemsize <= net.KEEP_WORKSPACE_BYTES:
                    net._workspace = workspace
        except BaseException:
            net._workspace_lock.release()
            raise
        return workspace

    def __exit__(self, *exc):
        if self.locked:
            self.net._workspace_lock.release()
        return False
