"""The slow reference: backpropagation exactly as the slides write it, in pure Python.

Nothing here uses numpy for arithmetic. A weight matrix is a list of rows, so ``w[j][k]`` connects
neuron k of layer l−1 to neuron j of layer l (the slides' indices); vectors are lists of floats;
every loop runs over j or k. ``weights[l-1]`` is w^(l) and ``biases[l-1]`` is b^(l), as in
NOTATION.md. It is slow on purpose: read it beside the slides, and trust the fast kernels because
`bpfast.check` and the tests compare them with it. (``array.tolist()`` turns numpy parameters into
the nested lists taken here.)
"""
import math


def sigmoid(z):
    """σ(z) = 1 / (1 + e^(−z))."""
    # For z < 0 the same value is e^z / (1 + e^z): e^(−z) would overflow for z ≤ −710.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sigmoid_prime(z):
    """σ'(z) = σ(z) (1 − σ(z)) = e^(−|z|) / (1 + e^(−|z|))²."""
    # The second form keeps full precision where σ saturates: 1 − σ(z) would round to 0.
    e = math.exp(-abs(z))
    return e / (1.0 + e) ** 2


def forward(weights, biases, x):
    """The forward pass of one example: z^(l) = w^(l) a^(l−1) + b^(l), a^(l) = σ(z^(l)).

    Returns ``(z, a)``: z holds z^(1), …, z^(L); a holds a^(0) = x, a^(1), …, a^(L).
    """
    z = []
    a = [[float(x_k) for x_k in x]]
    for w, b in zip(weights, biases):  # layers l = 1, …, L
        a_prev = a[-1]
        z_l = []
        for j in range(len(b)):
            z_j = b[j]
            for k in range(len(a_prev)):
                z_j += w[j][k] * a_prev[k]
            z_l.append(z_j)
        z.append(z_l)
        a.append([sigmoid(z_j) for z_j in z_l])
    return z, a


def cost(weights, biases, x, y):
    """C_0 = Σ_j (a_j^(L) − y_j)² for one example; for a batch (lists of examples), the mean C."""
    if _is_batch(x):
        return sum(cost(weights, biases, x_k, y_k) for x_k, y_k in zip(x, y)) / len(x)
    _, a = forward(weights, biases, x)
    a_L = a[-1]
    return sum((a_L[j] - y[j]) ** 2 for j in range(len(a_L)))


def backprop(weights, biases, x, y):
    """∂C_0/∂w^(l) and ∂C_0/∂b^(l) of one example, for l = 1..L, by the chain rule.

    Returns ``(dC0_dw, dC0_db)``, lists shaped like ``weights`` and ``biases``.
    """
    z, a = forward(weights, biases, x)
    L = len(weights)
    dC0_dw = [None] * L
    dC0_db = [None] * L

    # Link 3, at the output: ∂C_0/∂a_j^(L) = 2 (a_j^(L) − y_j).
    dC0_da = [2.0 * (a[L][j] - y[j]) for j in range(len(y))]

    for l in range(L, 0, -1):
        w = weights[l - 1]
        a_prev = a[l - 1]
        # Link 2: ∂a_j/∂z_j = σ'(z_j), times what comes from above: δ_j = ∂C_0/∂z_j.
        delta = [sigmoid_prime(z[l - 1][j]) * dC0_da[j] for j in range(len(dC0_da))]
        # Link 1: ∂z_j/∂w_jk = a_k^(l−1), and ∂z_j/∂b_j = 1.
        dC0_dw[l - 1] = [[a_prev[k] * delta[j] for k in range(len(a_prev))]
                         for j in range(len(delta))]
        dC0_db[l - 1] = [1.0 * delta[j] for j in range(len(delta))]
        # Going back one layer: neuron k of layer l−1 feeds every neuron j of layer l, so its
        # sensitivity is the sum of those influences, ∂C_0/∂a_k^(l−1) = Σ_j w_jk σ'(z_j) ∂C_0/∂a_j.
        dC0_da = []
        for k in range(len(a_prev)):
            s = 0.0
            for j in range(len(delta)):
                s += w[j][k] * delta[j]
            dC0_da.append(s)
    return dC0_dw, dC0_db


def gradient(weights, biases, X, Y):
    """The batch mean: ∂C/∂w^(l) = (1/n) Σ_k ∂C_k/∂w^(l), and the same for b^(l)."""
    n = len(X)
    dC_dw = [[[0.0] * len(row) for row in w] for w in weights]
    dC_db = [[0.0] * len(b) for b in biases]
    for x_k, y_k in zip(X, Y):
        dCk_dw, dCk_db = backprop(weights, biases, x_k, y_k)
        for l in range(len(weights)):
            for j in range(len(dC_db[l])):
                for k in range(len(dC_dw[l][j])):
                    dC_dw[l][j][k] += dCk_dw[l][j][k]
                dC_db[l][j] += dCk_db[l][j]
    for l in range(len(weights)):
        for j in range(len(dC_db[l])):
            for k in range(len(dC_dw[l][j])):
                dC_dw[l][j][k] /= n
            dC_db[l][j] /= n
    return dC_dw, dC_db


def _is_batch(x):
    """A batch is a sequence of examples; one example is a sequence of numbers."""
    return len(x) > 0 and hasattr(x[0], "__len__")
