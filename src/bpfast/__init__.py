"""bpfast: backpropagation exactly as the slides derive it, and fast.

- `Network`: z^(l), a^(l), C_0 and ∇C of a fully connected network (fast Cython kernels), and
  `fit` to train it — sigmoid and the quadratic cost by default, as on the slides;
- `activations`, `costs`: the other choices (tanh, ReLU, identity, softmax; cross-entropy), with
  their formulas; `training`: fit's steps (momentum, Nesterov, Adam, L2);
- `reference`: the same calculus in slow, readable pure Python, loops over j and k;
- `chain.Chain`: the slides' one-neuron-per-layer chain rule, link by link, in plain floats;
- `check`: the kernels against the reference and against finite differences, on your network;
- `datasets`: the bundled 8×8 digits, MNIST's IDX files, and the helpers around them;
- `privacy`: the ε that DP-SGD spends (`fit(clip_norm=, noise_multiplier=)`), by Google's
  dp-accounting (the optional extra ``bpfast[privacy]``, imported only when used).

Names and conventions follow the notation (docs/notation.md in bpfast's sources): weights[l-1]
is w^(l) of shape (n_l, n_{l−1}), C_0 = Σ_j (a_j^(L) − y_j)² with no factor ½, and a batch has
one example per row.
"""
from . import activations, chain, costs, datasets, privacy, reference, training
from .activations import sigmoid, sigmoid_prime
from .crosscheck import CheckReport, check
from .network import Gradient, Network, Trace, load
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "CheckReport",
    "Gradient",
    "History",
    "Network",
    "Trace",
    "TrainingDiverged",
    "activations",
    "chain",
    "check",
    "costs",
    "datasets",
    "load",
    "privacy",
    "reference",
    "sigmoid",
    "sigmoid_prime",
    "training",
]
