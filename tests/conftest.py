"""Shared helpers: random problems, and the tolerances every comparison uses."""
import numpy as np
import pytest

import bpfast
from bpfast import _kernels

DTYPES = ["float64", "float32"]

#: Largest relative difference of the kernels against the pure-Python reference: float64's
#: rounding after a few thousand operations, float32's single precision.
REFERENCE_TOLERANCE = {"float64": 1e-12, "float32": 1e-4}


#: fit's update rules, for the tests that go through them all.
RULES = [
    dict(),
    dict(l2=0.05),
    dict(momentum=0.9),
    dict(momentum=0.8, l2=0.01),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.5, nesterov=True, l2=0.02),
    dict(optimizer="adam", learning_rate=0.01),
    dict(optimizer="adam", learning_rate=0.003, betas=(0.8, 0.99), eps=1e-6, l2=0.01),
]


def make_problem(sizes, n, dtype="float64", seed=0, **choices):
    """A seeded network (``choices``: its activations and cost) and a batch of n examples:
    inputs ~ N(0, 1), targets in [0, 1] (rows that sum to 1 for a softmax output)."""
    rng = np.random.default_rng(seed + 1000)
    net = bpfast.Network(sizes, dtype=dtype, seed=seed, **choices)
    X = rng.normal(size=(n, sizes[0]))
    Y = rng.random((n, sizes[-1]))
    if net.output_activation == "softmax":
        Y /= Y.sum(axis=1, keepdims=True)
    return net, X, Y


def products_run(product, function, *args, **keywords):
    """What `function(*args, **keywords)` ran, from the kernels' log: for each product that
    `product` names ("z = a wᵀ", "∂C/∂w = δᵀ a", "δ w"), its (path, rows, neurons, inputs); with
    `product` None, every product's (product, path, rows, neurons, inputs). BLAS and bpfast's
    own products agree to the reference's tolerance, so that no number tells which one a rule
    chose."""
    _kernels.log_products(True)
    try:
        function(*args, **keywords)
    finally:
        _kernels.log_products(False)
    logged = _kernels.logged_products()
    return logged if product is None else [entry[1:] for entry in logged if entry[0] == product]


def assert_fit_refused(keywords, error, message, **fit):
    """fit with bad ``keywords`` raises ``error`` matching ``message`` before it trains: the
    network keeps every parameter. (``fit``: the rest of fit's arguments.)"""
    net, X, Y = make_problem([4, 3, 2], 10)
    before = net.parameters_vector()
    with pytest.raises(error, match=message):
        net.fit(X, Y, **{"epochs": 1, "batch_size": 5, "learning_rate": 0.1, **fit, **keywords})
    np.testing.assert_array_equal(net.parameters_vector(), before)


def diverging_problem(rule, n_threads, position=29, batch_size=4, dtype="float64", seed=1,
                      n=40):
    """fit that takes real steps, then one that overflows: a [6, 8, 3] ReLU network with an
    identity output on n examples, one of them with inputs of 1e200 — the row fit visits at
    ``position`` of epoch 1's order (mini-batch position // batch_size + 1). Returns
    (TrainingDiverged, the network after fit, the network as it began, X, Y, the mini-batch,
    the keywords of that fit)."""
    net, X, Y = make_problem([6, 8, 3], n, dtype=dtype, seed=4, activation="relu",
                             output_activation="identity")
    start = bpfast.Network.from_params(net.weights, net.biases, activation="relu",
                                       output_activation="identity", dtype=dtype)
    X[np.random.default_rng(seed).permutation(n)[position]] = 1e200
    keywords = dict(epochs=3, batch_size=batch_size, seed=seed, **rule)
    with pytest.raises(bpfast.TrainingDiverged) as caught:
        net.fit(X, Y, n_threads=n_threads, **keywords)
    return caught.value, net, start, X, Y, position // batch_size + 1, keywords


def float32_telling_problem(n=20):
    """A problem on which float32 arithmetic and float64 arithmetic part clearly: the first
    layer adds b^(1) = 0.3 to inputs of 2^20, where float32's spacing is 0.125, and the second
    takes 2^20 away again (identity activations). In float32, z^(2) is 0.25 where float64 gives
    0.3. The targets, 0.26, lie between the two: the error's sign differs (Adam, which follows
    signs more than sizes, parts too) and the cost is 1e-4 against 1.6e-3. Learning rates small
    enough to stay there: 1e-14 (the gradients are near 2^20), 1e-9 with Adam. Returns the
    float32 network, X, Y."""
    weights = [np.array([[1.0]]), np.array([[1.0]])]
    biases = [np.array([0.3]), np.array([-2.0 ** 20])]
    net = bpfast.Network.from_params(weights, biases, activation="identity", dtype="float32")
    return net, np.full((n, 1), 2.0 ** 20), np.full((n, 1), 0.26)


def entrywise(actual, expected):
    """max_i |actual_i − expected_i| / |expected_i|: the error of the worst entry, on its own."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected) / np.abs(expected)))


@pytest.fixture(params=["by neurons", "by examples"])
def split(request):
    """fit's steps shared by neurons, or by examples wherever a mini-batch has 64 examples or
    more (Design 11 of bpfast._kernels), whatever the shape would choose."""
    from bpfast import _kernels
    before = _kernels.force_split(1 if request.param == "by neurons" else 2)
    yield request.param
    _kernels.force_split(before)


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


# The activations and their slopes f'(z) (from z and a), for `numpy_fit`.
F = {"sigmoid": (lambda z: np.exp(-np.logaddexp(0, -z)), lambda z, a: a * (1 - a)),
     "tanh": (np.tanh, lambda z, a: 1 - a * a),
     "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
     "identity": (lambda z: z, lambda z, a: np.ones_like(z))}


def numpy_costs(cost, output, z, a, y):
    """C_k of each row, written out here (not bpfast.costs): Σ_j (a_j − y_j)², or cross-entropy
    −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)] after sigmoid, −Σ_j y_j ln a_j after softmax — from
    z, as log-sum-exp and softplus, where a rounds to 0 or 1."""
    if cost == "quadratic":
        return ((a - y) ** 2).sum(axis=1)
    if output == "softmax":
        top = z.max(axis=1, keepdims=True)
        lse = top + np.log(np.exp(z - top).sum(axis=1, keepdims=True))
        return (y * (lse - z)).sum(axis=1)
    softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
    return (softplus - y * z).sum(axis=1)


def fit_beside_reference(rule, dtype, **keywords):
    """Two epochs of fit on a [4, 5, 3] tanh/softmax/cross-entropy network, beside the pure
    Python reference's `train_epoch` on the same orders (mini-batches of 4 of 11 examples) with
    the rule and ``keywords`` (clip_norm, noise_multiplier, sampling: the noise's seed and
    Poisson sampling's steps drawn as fit draws them). Returns (θ after fit, θ after the
    reference, fit's costs, the reference's costs)."""
    from bpfast import reference
    from bpfast.training import poisson_steps
    rule = dict(rule)
    learning_rate = rule.pop("learning_rate", 0.4)
    rng = np.random.default_rng(3)
    net = bpfast.Network([4, 5, 3], activation="tanh", output_activation="softmax",
                         cost="cross_entropy", dtype=dtype, seed=5)
    X = rng.normal(size=(11, 4))
    Y = np.eye(3)[rng.integers(0, 3, 11)]
    weights = [w.astype(float).tolist() for w in net.weights]
    biases = [b.astype(float).tolist() for b in net.biases]
    orders = np.random.default_rng(9)
    private = {}
    if keywords.get("noise_multiplier"):
        private = dict(noise_multiplier=keywords["noise_multiplier"],
                       noise_key=int(orders.integers(2**63)))
    poisson = keywords.get("sampling", "poisson" if private else "shuffle") == "poisson"
    steps_per_epoch = round(11 / 4) if poisson else 3
    state, costs = {}, []
    for epoch in range(2):
        if poisson:
            order, offsets = (part.tolist() for part in poisson_steps(orders, 11, 4))
        else:
            order, offsets = orders.permutation(11).tolist(), None
        costs.append(reference.train_epoch(weights, biases, X.tolist(), Y.tolist(), order, 4,
                                           learning_rate, state, net.activations,
                                           net.cost_function, clip_norm=keywords.get("clip_norm"),
                                           first_step=epoch * steps_per_epoch, offsets=offsets,
                                           **private, **rule))
    history = net.fit(X, Y, epochs=2, batch_size=4, learning_rate=learning_rate, seed=9,
                      **keywords, **rule)
    expected = np.concatenate([np.concatenate([np.ravel(w), b]) for w, b in zip(weights, biases)])
    return net.parameters_vector(), expected, history.cost, costs


def numpy_fit(net, X, Y, *, epochs, batch_size, learning_rate, seed, optimizer="sgd",
              momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999), eps=1e-8, steps=None,
              dtype="float64", clip_norm=None, poisson=False):
    """fit's steps written out in numpy: same orders, same mini-batches, same rules. Returns θ
    after training, flat in the slides' order, and the mean cost of each epoch completed.
    ``steps``: stop after that many steps in all (an interrupted or diverged fit); ``dtype``:
    the arithmetic (float32: every array and every operation in float32, as a float32 network
    computes); ``clip_norm``: each example's gradient formed whole, flat, its norm taken by
    numpy, and scaled by min(1, R / norm) before the mean; ``poisson``: the steps of
    `bpfast.training.poisson_steps` (the law it draws from is tested on its own), each sum
    divided by batch_size, and the cost the mean over the examples visited."""
    dtype = np.dtype(dtype)
    cast = dtype.type
    theta = [p.astype(dtype) for wb in zip(net.weights, net.biases) for p in wb]
    v = [np.zeros_like(p) for p in theta]
    r = [np.zeros_like(p) for p in theta]
    X, Y = np.asarray(X, dtype=dtype), np.asarray(Y, dtype=dtype)
    acts, cost, L = net.activations, net.cost_function, net.L
    rng = np.random.default_rng(seed)
    N, t = X.shape[0], 0
    epoch_costs = []
    for _ in range(epochs):
        if poisson:
            from bpfast.training import poisson_steps
            order, offsets = poisson_steps(rng, N, min(batch_size, N))
            batches = [order[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
            divisor, visited = cast(min(batch_size, N)), offsets[-1]
        else:
            order = rng.permutation(N)
            batches = [order[start:start + batch_size] for start in range(0, N, batch_size)]
            divisor, visited = None, N
        total = 0.0
        for rows in batches:
            if steps is not None and t == steps:
                return np.concatenate([p.ravel() for p in theta]), epoch_costs
            y = Y[rows]
            a, z = [X[rows]], []
            for l in range(L):
                z.append(a[-1] @ theta[2 * l].T + theta[2 * l + 1])
                if acts[l] == "softmax":
                    e = np.exp(z[-1] - z[-1].max(axis=1, keepdims=True))
                    a.append(e / e.sum(axis=1, keepdims=True))
                else:
                    a.append(F[acts[l]][0](z[-1]))
            total += numpy_costs(cost, acts[-1], z[-1], a[-1], y).sum()
            if cost == "cross_entropy":
                delta = a[-1] * y.sum(axis=1, keepdims=True) - y if acts[-1] == "softmax" \
                    else a[-1] - y
            elif acts[-1] == "softmax":
                g = 2 * (a[-1] - y)
                delta = a[-1] * (g - (a[-1] * g).sum(axis=1, keepdims=True))
            else:
                delta = F[acts[-1]][1](z[-1], a[-1]) * 2 * (a[-1] - y)
            deltas = [None] * L
            for l in range(L - 1, -1, -1):
                deltas[l] = delta
                if l > 0:
                    delta = (delta @ theta[2 * l]) * F[acts[l - 1]][1](z[l - 1], a[l])
            if clip_norm is not None and len(rows):
                # Every example's gradient in full (outer products), its norm, its factor.
                per_example = np.concatenate(
                    [part.reshape(len(rows), -1) for l in range(L) for part in (
                        np.einsum("kj,ki->kji", deltas[l], a[l]), deltas[l])], axis=1)
                norms = np.linalg.norm(per_example.astype(np.float64), axis=1)
                factor = np.minimum(1.0, clip_norm / np.where(norms > 0, norms, 1.0))
                deltas = [d * factor.astype(dtype)[:, None] for d in deltas]
            grads = [None] * (2 * L)
            for l in range(L - 1, -1, -1):
                n = divisor if divisor is not None else cast(len(rows))
                grads[2 * l] = deltas[l].T @ a[l] / n + cast(l2) * theta[2 * l]
                grads[2 * l + 1] = deltas[l].sum(axis=0) / n
            t += 1
            b1, b2, eta, mu = cast(betas[0]), cast(betas[1]), cast(learning_rate), cast(momentum)
            for p, g, v_p, r_p in zip(theta, grads, v, r):
                if optimizer == "adam":
                    v_p[...] = b1 * v_p + (1 - b1) * g
                    r_p[...] = b2 * r_p + (1 - b2) * g * g
                    p -= eta * (v_p / cast(1 - betas[0] ** t)) / (
                        np.sqrt(r_p / cast(1 - betas[1] ** t)) + cast(eps))
                elif momentum:
                    v_p[...] = mu * v_p + g
                    p -= eta * (g + mu * v_p if nesterov else v_p)
                else:
                    p -= eta * g
        epoch_costs.append(total / visited if visited else float("nan"))
    return np.concatenate([p.ravel() for p in theta]), epoch_costs
