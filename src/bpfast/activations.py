"""The activation σ and its slope σ', on arrays, computed by the same kernel as the network's.

    σ(z)  = 1 / (1 + e^(−z))
    σ'(z) = σ(z) (1 − σ(z))

Neither overflows: ``sigmoid(-1000.0)`` is 0.0 and ``sigmoid(1000.0)`` is 1.0, with no warning.
"""
import numpy as np

from . import _kernels
from ._validation import as_real_array

#: The activations a Network can use (the keyword ``activation=``).
ACTIVATIONS = ("sigmoid",)


def _sigmoid_and_slope(z):
    z = np.asarray(z)
    dtype = z.dtype if z.dtype in (np.float32, np.float64) else np.float64
    flat = as_real_array(z, "z", dtype).ravel()
    a = np.empty_like(flat)
    slope = np.empty_like(flat)
    _kernels.sigmoid(flat, a, slope)
    return a.reshape(z.shape), slope.reshape(z.shape)


def _scalar_or_array(result, z):
    return result[()] if np.ndim(z) == 0 else result


def sigmoid(z):
    """σ(z) = 1 / (1 + e^(−z)), elementwise; float32 stays float32."""
    return _scalar_or_array(_sigmoid_and_slope(z)[0], z)


def sigmoid_prime(z):
    """σ'(z) = σ(z) (1 − σ(z)), elementwise: the slope of link 2, ∂a/∂z."""
    return _scalar_or_array(_sigmoid_and_slope(z)[1], z)
