"""The peers bpfast is measured against, each training one epoch of mini-batch SGD.

Every peer takes (sizes, weights, biases, X, Y, batch_size, learning_rate, order) and trains
in place or on its own copy; the same math as bpfast (sigmoid on every layer, the cost
Σ_j (a_j − y_j)² averaged over the mini-batch) except scikit-learn, which is timing only.
A peer whose library is missing is reported as skipped.
"""
import warnings

import numpy as np

from _common import numpy_sigmoid, numpy_sigmoid_forward


def numpy_per_example_epoch(weights, biases, X, Y, batch_size, eta, order):
    """Nielsen's network.py, in numpy: backprop one example at a time, sum, then step."""
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        nabla_w = [np.zeros_like(w) for w in weights]
        nabla_b = [np.zeros_like(b) for b in biases]
        for k in rows:
            activation, activations, zs = X[k], [X[k]], []
            for w, b in zip(weights, biases):
                z = w @ activation + b
                zs.append(z)
                activation = numpy_sigmoid(z)
                activations.append(activation)
            delta = 2 * (activations[-1] - Y[k]) * activation * (1 - activation)
            for l in range(len(weights) - 1, -1, -1):
                nabla_w[l] += np.outer(delta, activations[l])
                nabla_b[l] += delta
                if l > 0:
                    a = activations[l]
                    delta = (weights[l].T @ delta) * a * (1 - a)
        for w, b, nw, nb in zip(weights, biases, nabla_w, nabla_b):
            w -= (eta / len(rows)) * nw
            b -= (eta / len(rows)) * nb


def numpy_matrix_epoch(weights, biases, X, Y, batch_size, eta, order):
    """The matrix form in its strongest plain-numpy shape: a whole mini-batch per call, σ computed
    in place, the factor 2η/n of the mean's derivative folded into δ^(L) once (so every product
    is a sum, with no division after it), and w −= Δᵀ A in place."""
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        activations = numpy_sigmoid_forward(weights, biases, X[rows])
        a = activations[-1]
        delta = a - Y[rows]
        delta *= (2 * eta / len(rows))
        delta *= a
        delta *= 1 - a
        for l in range(len(weights) - 1, -1, -1):
            below = delta @ weights[l] if l > 0 else None
            weights[l] -= delta.T @ activations[l]
            biases[l] -= delta.sum(axis=0)
            if l > 0:
                a = activations[l]
                below *= a
                below *= 1 - a
                delta = below


def make_torch_epoch():
    """PyTorch eager on the CPU, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None

    cache = {}                                      # the models built, by workload

    def torch_epoch(weights, biases, X, Y, batch_size, eta, order):
        key = id(weights)
        if key not in cache:                        # build the model once per workload
            layers = []
            for w, b in zip(weights, biases):
                linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.from_numpy(w).dtype)
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(w))
                    linear.bias.copy_(torch.from_numpy(b))
                layers += [linear, torch.nn.Sigmoid()]
            model = torch.nn.Sequential(*layers)
            # The weights list is kept too: alive, its id cannot be reused by another workload.
            cache[key] = (weights, model, torch.optim.SGD(model.parameters(), lr=eta),
                          torch.from_numpy(X), torch.from_numpy(Y))
        _, model, optimizer, Xt, Yt = cache[key]
        order_t = torch.from_numpy(order)
        for start in range(0, len(order), batch_size):
            rows = order_t[start:start + batch_size]
            optimizer.zero_grad()
            loss = ((model(Xt[rows]) - Yt[rows]) ** 2).sum(1).mean()
            loss.backward()
            optimizer.step()

    return torch_epoch


def make_sklearn_epoch():
    """scikit-learn's MLPRegressor(solver="sgd"), one partial_fit = one epoch; or None."""
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor
    except ImportError:
        return None

    cache = {}

    def sklearn_epoch(weights, biases, X, Y, batch_size, eta, order):
        key = id(weights)
        if key not in cache:
            hidden = tuple(w.shape[0] for w in weights[:-1])
            model = MLPRegressor(hidden_layer_sizes=hidden, activation="logistic",
                                 solver="sgd", batch_size=batch_size, learning_rate_init=eta,
                                 momentum=0.0, alpha=0.0, nesterovs_momentum=False,
                                 shuffle=True, random_state=0)
            cache[key] = weights, model             # kept alive: its id is not reused
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cache[key][1].partial_fit(X, Y)

    return sklearn_epoch
