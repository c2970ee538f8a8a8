"""The activations f and their slopes f', on arrays, computed by the same kernels as the network's.

    sigmoid   σ(z) = 1 / (1 + e^(−z))             σ'(z) = σ(z) (1 − σ(z))
    tanh      tanh(z)                             tanh'(z) = 1 − tanh(z)²
    relu      max(z, 0)                           relu'(z) = 1 if z > 0 else 0 (0 at z = 0, as
                                                  PyTorch)
    identity  z                                   1
    softmax   a_j = e^(z_j) / Σ_i e^(z_i)          ∂a_i/∂z_j = a_i (1[i = j] − a_j)
              (output layer only)

None overflows: ``sigmoid(-1000.0)`` is 0.0, ``tanh(1000.0)`` is 1.0 and softmax shifts each row
by its maximum, with no warning. The slopes keep full precision where the activation saturates.
"""
import numpy as np

from . import _kernels
from ._validation import as_real_array

#: The activations a Network can use (``activation=``, ``output_activation=``), numbered as the
#: kernels number them. Softmax is for the output layer only: its a_j depends on the whole row.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity", "softmax")

#: The ones computed neuron by neuron, with a slope f'(z_j) per neuron.
ELEMENTWISE = ACTIVATIONS[:4]

_kernels.check_codes(ACTIVATIONS, _kernels.ACTIVATION_CODES, "activations")


def _as_float_array(z):
    z = np.asarray(z)
    dtype = z.dtype if z.dtype in (np.float32, np.float64) else np.float64
    return as_real_array(z, "z", dtype)


def activate(z, activation="sigmoid"):
    """``(f(z), f'(z))`` elementwise, for one of the `ELEMENTWISE` activations; float32 stays
    float32, a scalar gives scalars."""
    if activation not in ELEMENTWISE:
        raise ValueError(f"activation must be one of {list(ELEMENTWISE)}, got {activation!r} "
                         "(softmax works on whole rows: bpfast.activations.softmax).")
    array = _as_float_array(z)
    flat = np.ascontiguousarray(array).ravel()
    a = np.empty_like(flat)
    slope = np.empty_like(flat)
    _kernels.activate(flat, a, slope, ACTIVATIONS.index(activation))
    a, slope = a.reshape(array.shape), slope.reshape(array.shape)
    if np.ndim(z) == 0:
        return a[()], slope[()]
    return a, slope


def sigmoid(z):
    """σ(z) = 1 / (1 + e^(−z)), elementwise; float32 stays float32."""
    return activate(z, "sigmoid")[0]


def sigmoid_prime(z):
    """σ'(z) = σ(z) (1 − σ(z)), elementwise: the slope of link 2, ∂a/∂z."""
    return activate(z, "sigmoid")[1]


def softmax(z):
    """a_j = e^(z_j) / Σ_i e^(z_i) over the last axis (each row of a batch), without overflow."""
    array = _as_float_array(z)
    if array.ndim not in (1, 2) or array.shape[-1] == 0:
        raise ValueError(f"z must be a non-empty 1-D array or a 2-D batch, got shape "
                         f"{array.shape}.")
    rows = np.ascontiguousarray(array.reshape(-1, array.shape[-1]))
    a = np.empty_like(rows)
    _kernels.softmax(rows, a)
    return a.reshape(array.shape)
