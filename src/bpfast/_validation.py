"""Validation at the boundary: every public entry point passes its input through here once.

The kernels skip bounds checks, so nothing reaches them that has not been converted to the
network's dtype, made C-contiguous, and checked for shape and finiteness. Messages name the
argument and the problem, in the manner of scikit-learn's.
"""
import numbers
import sys
import warnings

import numpy as np

from . import _kernels
from . import activations as _activations
from . import costs as _costs

#: BLAS takes 32-bit ints for dimensions.
_MAX_DIM = 2**31 - 1

DTYPES = ("float32", "float64")


class Spelling:
    """How a message names an argument and a setting: as Python keywords (``cost='quadratic'``)
    or as command-line flags (``--cost quadratic``). Every check takes one, so that the command
    line shows the flags its user typed, from the same checks as the Python API."""

    def __init__(self, flags):
        self.flags = flags

    def name(self, key):
        return "--" + key.replace("_", "-") if self.flags else key

    def setting(self, key, value):
        if not self.flags:
            return f"{key}={value!r}"
        return self.name(key) if value is True else f"{self.name(key)} {value}"


PYTHON = Spelling(flags=False)
COMMAND_LINE = Spelling(flags=True)


def check_choice(value, name, choices, spelling=PYTHON):
    """`value` if it is one of `choices` (by equality; unhashable values are simply refused)."""
    try:
        known = value in choices
    except TypeError:
        known = False
    if not known:
        raise ValueError(f"{spelling.name(name)} must be one of {list(choices)}, got {value!r}.")
    return value


def check_count(value, name, minimum, spelling=PYTHON):
    """An integer ≥ minimum (bool refused: True is not a count)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{spelling.name(name)} must be an integer, got {value!r} "
                        f"({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{spelling.name(name)} must be an integer ≥ {minimum}, got {value}.")
    return int(value)


def check_flag(value, name):
    """True or False (numpy's bools too), nothing else: a flag given 1 or "yes" is a mistake."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_seed(value, name="seed"):
    """None, an integer ≥ 0, or a numpy Generator: what numpy.random.default_rng takes, checked
    here so that the message names the argument."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None, an integer ≥ 0 or a numpy.random.Generator, got "
                        f"{value!r} ({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be an integer ≥ 0, got {value}.")
    return int(value)


def check_real(value, name, spelling=PYTHON):
    """A finite real number, of any sign."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{spelling.name(name)} must be a real number, got {value!r} "
                        f"({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{spelling.name(name)} must be finite, got {value!r}.")
    return value


def check_fraction(value, name, *, allow_zero, spelling=PYTHON):
    """A number in [0, 1) (with ``allow_zero``) or (0, 1): a momentum, β1, β2, a share of data."""
    value = check_positive_real(value, name, allow_zero=True, spelling=spelling)
    if value >= 1 or (value == 0 and not allow_zero):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{spelling.name(name)} must be in {interval}, got {value!r}.")
    return value


def check_network_choices(sizes, activation, output_activation, cost, spelling=PYTHON):
    """The activation of each layer l = 1..L from a Network's ``activation`` (hidden layers) and
    ``output_activation`` (None: the same), once the combination is known to make sense
    (`check_layer_activations`)."""
    check_choice(activation, "activation", _activations.ACTIVATIONS, spelling)
    output_activation = check_choice(activation if output_activation is None
                                     else output_activation, "output_activation",
                                     _activations.ACTIVATIONS, spelling)
    check_choice(cost, "cost", _costs.COSTS, spelling)
    L = len(sizes) - 1
    if activation == "softmax" and L > 1:
        raise ValueError(f"{spelling.setting('activation', 'softmax')} would put softmax in the "
                         "hidden layers; it belongs to the output layer only: "
                         f"{spelling.setting('output_activation', 'softmax')}.")
    activations = (activation,) * (L - 1) + (output_activation,)
    return check_layer_activations(sizes, activations, cost, spelling)


def check_layer_activations(sizes, activations, cost, spelling=PYTHON):
    """One activation per layer l = 1..L, in a combination that makes sense: softmax only at the
    output and over two outputs or more, cross-entropy only after sigmoid or softmax outputs
    (its ln a and ln(1 − a) need 0 < a < 1). Returns them as a tuple."""
    L = len(sizes) - 1
    if isinstance(activations, (str, bytes)) or not hasattr(activations, "__len__"):
        raise TypeError(f"activations must be a sequence of L = {L} names (one per layer), got "
                        f"{activations!r}.")
    activations = tuple(activations)
    if len(activations) != L:
        raise ValueError(f"activations must name one activation per layer: L = {L} for sizes "
                         f"{list(sizes)}, got {len(activations)}.")
    for l, activation in enumerate(activations):
        check_choice(activation, f"activations[{l}]", _activations.ACTIVATIONS, spelling)
    check_choice(cost, "cost", _costs.COSTS, spelling)
    if "softmax" in activations[:-1]:
        raise ValueError("softmax belongs to the output layer only: a_j = e^(z_j) / Σ_i e^(z_i) "
                         "needs the whole layer, and its slope is not one per neuron.")
    output = activations[-1]
    if output == "softmax" and sizes[-1] < 2:
        raise ValueError(f"softmax needs at least two outputs (sizes[-1] = {sizes[-1]}): over one "
                         "output it is the constant 1. Use a sigmoid output for one class score.")
    if output not in _costs.OUTPUTS_FOR[cost]:
        raise ValueError(f"{spelling.setting('cost', cost)} needs "
                         f"{spelling.name('output_activation')} in "
                         f"{list(_costs.OUTPUTS_FOR[cost])}, got {output!r}.")
    return activations


def check_dtype(dtype):
    """The network's dtype as a numpy dtype: float32 or float64."""
    try:
        # numpy warns of deprecated aliases ("a") that are refused here anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            resolved = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):   # numpy parses "a,b" as a record spec
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    return resolved


def check_sizes(sizes):
    """sizes = [n0, n1, ..., nL] as a tuple of Python ints, each ≥ 1, at least two of them."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(
            f"sizes must be a sequence of layer widths such as [784, 30, 10], got {sizes!r}."
        )
    if np.ndim(sizes) != 1:
        raise ValueError(f"sizes must be a flat sequence of layer widths, got {sizes!r}.")
    if len(sizes) < 2:
        raise ValueError(
            f"sizes needs at least two layers (inputs and outputs), got {list(sizes)!r}."
        )
    checked = []
    for l, n in enumerate(sizes):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise TypeError(f"sizes[{l}] must be an integer, got {n!r} ({type(n).__name__}).")
        if not 1 <= n <= _MAX_DIM:
            raise ValueError(f"sizes[{l}] must be a positive integer, got {n}.")
        checked.append(int(n))
    return tuple(checked)


def check_positive_real(value, name, *, allow_zero=False, spelling=PYTHON):
    """A finite real number > 0, or ≥ 0 with ``allow_zero`` (a learning rate, a penalty)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{spelling.name(name)} must be a real number, got {value!r} "
                        f"({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{spelling.name(name)} must be a finite number {bound}, got {value!r}.")
    return value


def as_real_array(value, name, dtype, finite=True):
    """`value` as an array of `dtype`; refuses what is not real numbers (strings, complex,
    objects)."""
    if isinstance(value, np.ndarray):
        if value.dtype == dtype and value.flags.c_contiguous:
            # Already what it must be (the common case, and the one small calls hurry in): a
            # network's dtype, native and C-ordered, which the kernels check themselves.
            if finite and not _kernels.all_finite(value):
                check_finite(value, name)
            return value
        array = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{name} could not be converted to a numeric array: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers, got an array of dtype {array.dtype}."
        )
    # Values beyond float32's range become inf here; check_finite then names them.
    with np.errstate(over="ignore"):
        array = np.asarray(array, dtype=dtype, order="C")
    if finite:
        check_finite(array, name)
    return array


def all_finite(array):
    """Whether every number of the array is finite: for the networks' dtypes in C order, by the
    kernels' one pass (every call's inputs are checked), else by numpy."""
    if (array.dtype in (np.float32, np.float64) and array.flags.c_contiguous
            and sys.byteorder == "little" and array.dtype.isnative):
        return _kernels.all_finite(array)
    return bool(np.isfinite(array).all())


def check_finite(array, name):
    """Refuse NaN and ±inf, saying which (after conversion, inf may mean "too large for
    float32")."""
    if not all_finite(array):
        if np.isnan(array).any():
            raise ValueError(f"Input {name} contains NaN.")
        raise ValueError(
            f"Input {name} contains infinity or a value too large for dtype('{array.dtype}')."
        )


def as_examples(value, name, width, width_name, dtype, ndims=(1, 2), finite=True):
    """One example (1-D, length `width`) or a batch (2-D, one example per row), C-contiguous.

    Lists, integer arrays, Fortran-ordered, strided and read-only arrays are accepted and
    converted once; nothing is copied when `value` already has the right layout and dtype.
    """
    array = as_real_array(value, name, dtype, finite)
    if array.ndim not in ndims:
        expected = " or ".join({1: "1-D (one example)", 2: "2-D (one example per row)"}[d]
                               for d in ndims)
        hint = ""
        if array.ndim == 1 and 2 in ndims:
            hint = f" Reshape a single example with {name}.reshape(1, -1)."
        raise ValueError(f"{name} must be {expected}, got an array of shape {array.shape}.{hint}")
    if array.shape[-1] != width:
        raise ValueError(
            f"{name} has {array.shape[-1]} values per example, but the network expects "
            f"{width_name} = {width}."
        )
    if array.ndim == 2 and array.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 examples (shape={array.shape}) while a minimum of 1 is "
            f"required ({name})."
        )
    if array.ndim == 2 and array.shape[0] > _MAX_DIM:
        raise ValueError(f"{name} has {array.shape[0]} rows; at most {_MAX_DIM} are supported.")
    return array


def labels_as_targets(labels, n_outputs, dtype, name="Y", single=False):
    """A 1-D Y beside a batch X: class labels, one-hot over the n_outputs classes; with a single
    output, simply that output's target for each example. (``single``: the label of one
    example, for the messages.)"""
    labels = as_real_array(labels, name, np.float64)
    if n_outputs == 1:
        return labels.reshape(-1, 1).astype(dtype)
    if not np.array_equal(labels, np.round(labels)) or (labels.size and (
            labels.min() < 0 or labels.max() >= n_outputs)):
        what = (f"{name} is a class label: it must be an integer" if single else
                f"{name} is 1-D, so it holds class labels: they must be integers")
        raise ValueError(f"{what} in [0, {n_outputs}) for a network with {n_outputs} outputs.")
    return np.eye(n_outputs, dtype=dtype)[labels.astype(np.intp)]


def as_pair(X, Y, sizes, dtype, ndims=(1, 2), names=("X", "Y"), x_finite=True):
    """Inputs X and targets Y that go together: same dimensionality, same number of examples.

    Beside a batch X, a 1-D Y holds integer class labels (converted to one-hot targets once);
    beside one example x, a number y is its label. ``x_finite=False`` leaves X's finiteness to
    the kernels, which see it exactly on z^(1) (`bpfast._kernels.run_call`) or as `fit`'s first
    epoch gathers each row (`train_epoch`'s check_x): a pass over X the less.
    """
    X = as_examples(X, names[0], sizes[0], "n0 (sizes[0])", dtype, ndims, x_finite)
    y_ndim = Y.ndim if isinstance(Y, np.ndarray) else np.ndim(Y)
    if X.ndim == 2 and y_ndim == 1:
        Y = labels_as_targets(Y, sizes[-1], dtype, names[1])
    elif X.ndim == 1 and y_ndim == 0 and 1 in ndims:
        Y = labels_as_targets(np.reshape(Y, 1), sizes[-1], dtype, names[1].lower(),
                              single=True)[0]
    elif y_ndim == 2 and np.shape(Y)[1] == 1 and sizes[-1] > 1:
        raise ValueError(
            f"{names[1]} has 1 value per example, but the network expects nL (sizes[-1]) = "
            f"{sizes[-1]}. If it holds class labels, pass them 1-D: {names[1]}.ravel().")
    Y = as_examples(Y, names[1], sizes[-1], "nL (sizes[-1])", dtype, ndims)
    if X.ndim != Y.ndim:
        raise ValueError(
            f"{names[0]} and {names[1]} must both be one example (1-D) or both a batch (2-D), "
            f"got {names[0]} of shape {X.shape} and {names[1]} of shape {Y.shape}."
        )
    if X.ndim == 2 and X.shape[0] != Y.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {Y.shape[0]}] ({names[0]}, {names[1]})."
        )
    return X, Y


def check_sample_weight(value, n):
    """Per-example weights for n examples: None, or n finite numbers ≥ 0 that are not all 0,
    as a float64 array (the weighted mean divides by their sum)."""
    if value is None:
        return None
    weights = as_real_array(value, "sample_weight", np.float64)
    if weights.ndim == 0:
        weights = np.full(n, float(weights))
    if weights.shape != (n,):
        raise ValueError(f"sample_weight must hold one number per example ({n}), got shape "
                         f"{weights.shape}.")
    if (weights < 0).any():
        raise ValueError("sample_weight must be ≥ 0 everywhere.")
    if not weights.sum() > 0:
        raise ValueError("sample_weight must not be zero everywhere: the weighted mean divides "
                         "by its sum.")
    return weights
