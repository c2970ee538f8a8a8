"""A first look at bpfast: one neuron's chain rule, a network's gradient cross-checked, training.

Run with ``bpfast demo`` (or ``python -m bpfast demo``).
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
    print()

    # Training: learn whether x1 > x2 from 2,000 examples, by mini-batch gradient descent.
    X = rng.random((2000, 2))
    Y = (X[:, :1] > X[:, 1:]).astype(float)
    net = Network([2, 8, 1], seed=0)
    history = net.fit(X, Y, epochs=20, batch_size=10, learning_rate=3.0, seed=0)
    costs = ", ".join(f"{c:.4f}" for c in history.cost[::5])
    print(f"{net}.fit, 20 epochs: mean training cost at epochs 1, 6, 11, 16: {costs}")
    accuracy = np.mean((net.predict(X) > 0.5) == (Y > 0.5))
    print(f"accuracy on the training set: {accuracy:.1%} ({sum(history.seconds):.3f} s)")
    return 0 if report.ok else 1
