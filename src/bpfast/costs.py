"""The costs C_0 of one example, and the output error δ^(L) = ∂C_0/∂z^(L) each one gives.

    quadratic       C_0 = Σ_j (a_j − y_j)²                       (the slides' cost; no factor ½)
                    δ_j = f'(z_j) · 2 (a_j − y_j)
    cross_entropy   with sigmoid outputs (binary, summed over the outputs):
                    C_0 = −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)] = Σ_j softplus(z_j) − y_j z_j
                    δ_j = a_j − y_j,  since ∂C_0/∂a_j = (a_j − y_j) / (a_j (1 − a_j)) and σ'(z_j) =
                    a_j (1 − a_j) cancel;
                    with softmax outputs (categorical):
                    C_0 = −Σ_j y_j ln a_j = Σ_j y_j (lse(z) − z_j)
                    δ_j = a_j Σ_i y_i − y_j = a_j − y_j for targets that sum to 1, since
                    ∂C_0/∂z_j = Σ_i (−y_i / a_i) · a_i (1[i = j] − a_j).

softplus(z) = ln(1 + e^z) and lse(z) = ln Σ_i e^(z_i) are computed from z, never from a = f(z):
ln a would be ln 0 = −∞ wherever a rounds to 0 or 1. A batch's cost is the mean C = (1/n) Σ_k C_k.
"""
import numpy as np
from scipy.special import logsumexp

from . import _kernels

#: The costs a Network can use (``cost=``), numbered as the kernels number them.
COSTS = ("quadratic", "cross_entropy")
_kernels.check_codes(COSTS, _kernels.COST_CODES, "costs")

#: The output activations each cost can follow.
OUTPUTS_FOR = {"quadratic": ("sigmoid", "tanh", "relu", "identity", "softmax"),
               "cross_entropy": ("sigmoid", "softmax")}


def numpy_per_example(cost, output_activation, z_L, a_L, Y):
    """C_k for each row k, from z^(L) and a^(L) (2-D, one example per row) and the targets Y, in
    plain numpy: an oracle for checks (`bpfast.check`'s finite differences), not bpfast's own
    cost, which the kernels compute — for `fit`, `Network.cost` and `Network.evaluate` alike."""
    if cost == "quadratic":
        return np.square(a_L - Y).sum(axis=-1)
    if output_activation == "softmax":
        return (Y * (logsumexp(z_L, axis=-1, keepdims=True) - z_L)).sum(axis=-1)
    return (np.logaddexp(0, z_L) - Y * z_L).sum(axis=-1)


#: The name of bpfast 0.1 for `numpy_per_example`.
per_example = numpy_per_example
