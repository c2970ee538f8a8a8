"""A first look at bpfast: one neuron's chain rule, then a network's gradient, cross-checked.

Run with ``python -m bpfast``.
"""
import numpy as np

from . import check
from .chain import Chain
from .network import Network


def main():
    print("The slides' chain, one neuron per layer (w=0.5, b=-0.2, a(L-1)=0.4, y=1):")
    print(Chain(w=0.5, b=-0.2, a_prev=0.4, y=1.0))
    print()

    rng = np.random.default_rng(0)
    net = Network([784, 30, 10], seed=0)
    X = rng.random((20, 784))
    Y = np.eye(10)[rng.integers(0, 10, size=20)]
    g = net.gradient(X, Y)
    print(f"{net}: C = {net.cost(X, Y):.6f} on a batch of 20 random examples")
    print(f"∂C/∂b^(2) = {np.array2string(g.b[1], precision=5, max_line_width=100)}")
    print(f"|∇C| = {np.linalg.norm(g.vector()):.6f} over P = {net.n_params} parameters")
    print()
    report = check(net, X, Y)
    print(report)
    return 0 if report.ok else 1
