"""Arrays aligned to cache lines, for the parameters and the kernels' work buffers.

The microkernels load 32 bytes at a time along rows; a row that starts mid-cache-line makes half
of those loads straddle two lines, which costs up to a third of their speed (measured on the
[784, 30, 10] network). numpy only promises 16-byte alignment, so the buffers that the kernels
stream through are carved out of a slightly larger allocation.
"""
import numpy as np

from ._kernels import data_address

CACHE_LINE = 64


def aligned_empty(n, dtype):
    """An uninitialised 1-D array of n elements whose data starts on a cache-line boundary."""
    dtype = np.dtype(dtype)
    raw = np.empty(n * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -data_address(raw) % CACHE_LINE
    return raw[start:start + n * dtype.itemsize].view(dtype)
