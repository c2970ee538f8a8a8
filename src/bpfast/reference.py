"""The slow reference: backpropagation exactly as the slides write it, in pure Python.

Nothing here uses numpy for arithmetic. A weight matrix is a list of rows, so ``w[j][k]`` connects
neuron k of layer l−1 to neuron j of layer l (the slides' indices); vectors are lists of floats;
every loop runs over j or k. ``weights[l-1]`` is w^(l) and ``biases[l-1]`` is b^(l), as in the
notation (docs/notation.md). It is slow on purpose: read it beside the slides, and trust the fast
kernels because `bpfast.check` and the tests compare them with it. (``array.tolist()`` turns
numpy parameters into the nested lists taken here.) Its functions check their arguments as
`bpfast.Network` does, with the same messages.

Beyond the slides: ``activations`` (one name per layer l = 1..L, default all "sigmoid") and
``cost`` ("quadratic", the default, or "cross_entropy") choose f_l and C_0 as `bpfast.costs` and
`bpfast.activations` define them; `step` and `train_epoch` are `fit`'s steps (plain, momentum,
Nesterov, Adam, L2), one parameter at a time — private ones too (DP-SGD: each example's gradient
clipped, Gaussian noise from `noise`, Poisson sampling's steps).
"""
import math
import numbers

from ._validation import check_count, check_layer_activations, check_positive_real


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


def tanh(z):
    """tanh(z) = (e^z − e^(−z)) / (e^z + e^(−z))."""
    return math.tanh(z)


def tanh_prime(z):
    """tanh'(z) = 1 − tanh(z)² = 4 e^(−2|z|) / (1 + e^(−2|z|))²."""
    # The second form keeps full precision where tanh saturates: 1 − tanh(z)² would round to 0.
    e = math.exp(-2.0 * abs(z))
    return 4.0 * e / (1.0 + e) ** 2


def relu(z):
    """max(z, 0)."""
    return z if z > 0 else 0.0


def relu_prime(z):
    """1 for z > 0, else 0 (the kink at 0 gets the slope 0, as in PyTorch)."""
    return 1.0 if z > 0 else 0.0


def identity(z):
    return z


def identity_prime(z):
    return 1.0


def softmax(z):
    """a_j = e^(z_j) / Σ_i e^(z_i) for a whole layer z (a list), shifted by max z: no overflow."""
    top = max(z)
    e = [math.exp(z_j - top) for z_j in z]
    total = sum(e)
    return [e_j / total for e_j in e]


#: f and f' of each activation computed one neuron at a time.
ELEMENTWISE = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "identity": (identity, identity_prime),
}


def _real_list(values, name, length, length_name):
    """`values` as a list of floats, after checking it is a sequence of `length` finite reals."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}.")
    if len(values) != length:
        raise ValueError(f"{name} must have {length_name} = {length} values, got {len(values)}.")
    checked = []
    for k, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}[{k}] must be a real number, got {value!r}.")
        if not math.isfinite(value):
            raise ValueError(f"{name}[{k}] must be finite, got {value!r}.")
        checked.append(float(value))
    return checked


def _checked_network(weights, biases, activations, cost):
    """The sizes [n0, …, nL] read off ``weights`` and ``biases``, and one activation per layer,
    after checking both as `bpfast.Network` checks its own: the same rules, the same messages."""
    for name, value in (("weights", weights), ("biases", biases)):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not value:
            raise TypeError(f"{name} must be a non-empty list with one entry per layer.")
    if len(weights) != len(biases):
        raise ValueError(f"weights and biases must have one entry per layer, got {len(weights)} "
                         f"weight matrices and {len(biases)} bias vectors.")
    if not hasattr(weights[0], "__len__") or not weights[0] or not hasattr(weights[0][0],
                                                                            "__len__"):
        raise TypeError("weights[0] must be a matrix: a list of rows w_j, one per neuron j.")
    sizes = [len(weights[0][0])]
    for l, (w, b) in enumerate(zip(weights, biases)):
        if not hasattr(b, "__len__") or not hasattr(w, "__len__") or len(w) != len(b) or not b:
            raise ValueError(f"weights[{l}] must have one row per entry of biases[{l}].")
        for j, row in enumerate(w):
            _real_list(row, f"weights[{l}][{j}]", sizes[-1], "n_l−1")
        _real_list(b, f"biases[{l}]", len(b), "n_l")
        sizes.append(len(b))
    if activations is None:
        activations = ("sigmoid",) * len(weights)
    return sizes, check_layer_activations(sizes, activations, cost)


def _check_example(x, y, sizes, cost="quadratic"):
    x = _real_list(x, "x", sizes[0], "n0")
    if y is None:
        return x
    y = _real_list(y, "y", sizes[-1], "nL")
    if cost == "cross_entropy" and not all(0.0 <= y_j <= 1.0 for y_j in y):
        raise ValueError("y must hold probabilities in [0, 1] for the cross-entropy cost, got "
                         f"{y}.")
    return x, y


def _activate(activation, z_l):
    if activation == "softmax":
        return softmax(z_l)
    f = ELEMENTWISE[activation][0]
    return [f(z_j) for z_j in z_l]


def forward(weights, biases, x, activations=None):
    """The forward pass of one example: z^(l) = w^(l) a^(l−1) + b^(l), a^(l) = f_l(z^(l)).

    Returns ``(z, a)``: z holds z^(1), …, z^(L); a holds a^(0) = x, a^(1), …, a^(L).
    """
    sizes, activations = _checked_network(weights, biases, activations, "quadratic")
    return _forward(weights, biases, _check_example(x, None, sizes), activations)


def _forward(weights, biases, x, activations):
    z = []
    a = [[float(x_k) for x_k in x]]
    for w, b, activation in zip(weights, biases, activations):  # layers l = 1, …, L
        a_prev = a[-1]
        z_l = []
        for j in range(len(b)):
            z_j = b[j]
            for k in range(len(a_prev)):
                z_j += w[j][k] * a_prev[k]
            z_l.append(z_j)
        z.append(z_l)
        a.append(_activate(activation, z_l))
    return z, a


def _softplus(z):
    """ln(1 + e^z) = max(z, 0) + ln(1 + e^(−|z|)), which never overflows."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def cost(weights, biases, x, y, activations=None, cost="quadratic"):
    """C_0 for one example; for a batch (lists of examples), the mean C.

    quadratic: C_0 = Σ_j (a_j^(L) − y_j)². cross_entropy, computed from z^(L) (ln a would be
    −∞ where a rounds to 0): after sigmoid, −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)] =
    Σ_j softplus(z_j) − y_j z_j; after softmax, −Σ_j y_j ln a_j = Σ_j y_j (ln Σ_i e^(z_i) − z_j).
    """
    sizes, activations = _checked_network(weights, biases, activations, cost)
    if _is_batch(x):
        pairs = _check_batch(x, y, sizes, cost)
        if not pairs:
            raise ValueError("x must hold at least one example.")
        return sum(_example_cost(weights, biases, x_k, y_k, activations, cost)
                   for x_k, y_k in pairs) / len(pairs)
    x, y = _check_example(x, y, sizes, cost)
    return _example_cost(weights, biases, x, y, activations, cost)


def _check_batch(X, Y, sizes, cost):
    """The examples of a batch (X, Y), each checked."""
    if not hasattr(X, "__len__") or not hasattr(Y, "__len__") or len(X) != len(Y):
        raise ValueError("X and Y must hold the same number of examples.")
    return [_check_example(x, y, sizes, cost) for x, y in zip(X, Y)]


def _example_cost(weights, biases, x, y, activations, cost):
    z, a = _forward(weights, biases, x, activations)
    z_L, a_L = z[-1], a[-1]
    if cost == "quadratic":
        return sum((a_L[j] - y[j]) ** 2 for j in range(len(a_L)))
    if activations[-1] == "softmax":
        top = max(z_L)
        lse = top + math.log(sum(math.exp(z_j - top) for z_j in z_L))
        return sum(y[j] * (lse - z_L[j]) for j in range(len(z_L)))
    return sum(_softplus(z_L[j]) - y[j] * z_L[j] for j in range(len(z_L)))


def output_error(z_L, a_L, y, output_activation="sigmoid", cost="quadratic"):
    """δ_j^(L) = ∂C_0/∂z_j^(L), the chain's links 2 and 3 at the output layer."""
    n = len(z_L) if hasattr(z_L, "__len__") else 0
    z_L = _real_list(z_L, "z_L", n, "nL")
    a_L = _real_list(a_L, "a_L", n, "len(z_L)")
    y = _real_list(y, "y", n, "len(z_L)")
    check_layer_activations([1, n], [output_activation], cost)
    return _output_error(z_L, a_L, y, output_activation, cost)


def _output_error(z_L, a_L, y, output_activation, cost):
    J = range(len(a_L))
    if cost == "quadratic":
        # Link 3: ∂C_0/∂a_i^(L) = 2 (a_i − y_i).
        dC0_da = [2.0 * (a_L[i] - y[i]) for i in J]
        if output_activation == "softmax":
            # Every a_i depends on every z_j: ∂a_i/∂z_j = a_i (1[i = j] − a_j), summed over i.
            return [sum(dC0_da[i] * a_L[i] * ((1.0 if i == j else 0.0) - a_L[j]) for i in J)
                    for j in J]
        # Link 2: ∂a_j/∂z_j = f'(z_j).
        f_prime = ELEMENTWISE[output_activation][1]
        return [f_prime(z_L[j]) * dC0_da[j] for j in J]
    if output_activation == "softmax":
        # Σ_i (−y_i / a_i) · a_i (1[i = j] − a_j) = a_j Σ_i y_i − y_j.
        sum_y = sum(y)
        return [a_L[j] * sum_y - y[j] for j in J]
    # ∂C_0/∂a_j = (a_j − y_j) / (a_j (1 − a_j)), times σ'(z_j) = a_j (1 − a_j).
    return [a_L[j] - y[j] for j in J]


def backprop(weights, biases, x, y, activations=None, cost="quadratic"):
    """∂C_0/∂w^(l) and ∂C_0/∂b^(l) of one example, for l = 1..L, by the chain rule.

    Returns ``(dC0_dw, dC0_db)``, lists shaped like ``weights`` and ``biases``.
    """
    sizes, activations = _checked_network(weights, biases, activations, cost)
    x, y = _check_example(x, y, sizes, cost)
    return _backprop(weights, biases, x, y, activations, cost)


def _backprop(weights, biases, x, y, activations, cost):
    z, a = _forward(weights, biases, x, activations)
    L = len(weights)
    dC0_dw = [None] * L
    dC0_db = [None] * L

    # At the output, links 2 and 3: δ_j = ∂C_0/∂z_j^(L) (with the slides' choices,
    # σ'(z_j) · 2 (a_j − y_j)).
    delta = _output_error(z[L - 1], a[L], y, activations[L - 1], cost)

    for l in range(L, 0, -1):
        w = weights[l - 1]
        a_prev = a[l - 1]
        # Link 1: ∂z_j/∂w_jk = a_k^(l−1), and ∂z_j/∂b_j = 1.
        dC0_dw[l - 1] = [[a_prev[k] * delta[j] for k in range(len(a_prev))]
                         for j in range(len(delta))]
        dC0_db[l - 1] = [1.0 * delta[j] for j in range(len(delta))]
        if l == 1:
            break
        # Going back one layer: neuron k of layer l−1 feeds every neuron j of layer l, so its
        # sensitivity is the sum of those influences, ∂C_0/∂a_k^(l−1) = Σ_j w_jk δ_j.
        dC0_da = []
        for k in range(len(a_prev)):
            s = 0.0
            for j in range(len(delta)):
                s += w[j][k] * delta[j]
            dC0_da.append(s)
        # Link 2 of layer l−1: δ_k = f'(z_k^(l−1)) · ∂C_0/∂a_k^(l−1).
        f_prime = ELEMENTWISE[activations[l - 2]][1]
        delta = [f_prime(z[l - 2][k]) * dC0_da[k] for k in range(len(dC0_da))]
    return dC0_dw, dC0_db


def gradient(weights, biases, X, Y, activations=None, cost="quadratic"):
    """The batch mean: ∂C/∂w^(l) = (1/n) Σ_k ∂C_k/∂w^(l), and the same for b^(l)."""
    sizes, activations = _checked_network(weights, biases, activations, cost)
    pairs = _check_batch(X, Y, sizes, cost)
    if not pairs:
        raise ValueError("X must hold at least one example.")
    return _gradient(weights, biases, pairs, activations, cost)


def _gradient(weights, biases, pairs, activations, cost, clip_norm=None):
    dC_dw, dC_db = _gradient_sum(weights, biases, pairs, activations, cost, clip_norm)
    n = len(pairs)
    for l in range(len(weights)):
        for j in range(len(dC_db[l])):
            for k in range(len(dC_dw[l][j])):
                dC_dw[l][j][k] /= n
            dC_db[l][j] /= n
    return dC_dw, dC_db


def _gradient_sum(weights, biases, pairs, activations, cost, clip_norm=None):
    """Σ_k ∂C_k/∂θ over the pairs (each term scaled by c_k with a clip norm)."""
    dC_dw = [[[0.0] * len(row) for row in w] for w in weights]
    dC_db = [[0.0] * len(b) for b in biases]
    for x_k, y_k in pairs:
        dCk_dw, dCk_db = _backprop(weights, biases, x_k, y_k, activations, cost)
        # Per-example clipping (fit's clip_norm = R): the example's whole gradient scaled by
        # c_k = min(1, R / ‖∂C_k/∂θ‖₂) before it joins the sum (c_k = 1 for a zero gradient).
        c = 1.0
        if clip_norm is not None:
            squares = sum(g * g for l in range(len(weights))
                          for g in [*dCk_db[l], *(g for row in dCk_dw[l] for g in row)])
            if math.sqrt(squares) > clip_norm:
                c = clip_norm / math.sqrt(squares)
        for l in range(len(weights)):
            for j in range(len(dC_db[l])):
                for k in range(len(dC_dw[l][j])):
                    dC_dw[l][j][k] += c * dCk_dw[l][j][k]
                dC_db[l][j] += c * dCk_db[l][j]
    return dC_dw, dC_db


def example_norms(weights, biases, X, Y, activations=None, cost="quadratic", per_layer=False):
    """‖∂C_k/∂θ‖₂ of each example k of the batch (X, Y): the square root of the sum of the
    squares of every ∂C_k/∂w_jk^(l) and ∂C_k/∂b_j^(l) that `backprop` gives, added up here one by
    one. (The kernels reach the same number without forming the gradient: w^(l)'s part is the
    outer product δ^(l) (a^(l−1))ᵀ, of norm ‖δ^(l)‖ ‖a^(l−1)‖, so ‖∂C_k/∂θ‖² =
    Σ_l ‖δ^(l)‖² (‖a^(l−1)‖² + 1).) With ``per_layer``, one norm per layer l = 1..L instead."""
    sizes, activations = _checked_network(weights, biases, activations, cost)
    norms = []
    for x, y in _check_batch(X, Y, sizes, cost):
        dC0_dw, dC0_db = _backprop(weights, biases, x, y, activations, cost)
        layers = []
        for l in range(len(weights)):
            square = 0.0
            for j in range(len(dC0_db[l])):
                for k in range(len(dC0_dw[l][j])):
                    square += dC0_dw[l][j][k] ** 2
                square += dC0_db[l][j] ** 2
            layers.append(square)
        norms.append([math.sqrt(s) for s in layers] if per_layer else math.sqrt(sum(layers)))
    return norms


def _is_batch(x):
    """A batch is a sequence of examples; one example is a sequence of numbers."""
    return len(x) > 0 and hasattr(x[0], "__len__")


# --- training: the steps of `fit`, one parameter at a time -------------------------------------

def step(weights, biases, dC_dw, dC_db, learning_rate, state, *, optimizer="sgd", momentum=0.0,
         nesterov=False, l2=0.0, betas=(0.9, 0.999), eps=1e-8):
    """One step of `fit`'s rule on every w_jk^(l) and b_j^(l), in place, from ∂C/∂w and ∂C/∂b.

    ``state`` is a dict that keeps the rule's memory from one step to the next (start with {}):
    the velocity v (Adam: m), Adam's r, and the step count t. With g = ∂C/∂θ (+ λ w for weights):

        plain:      θ ← θ − η g
        momentum:   v ← μ v + g,  θ ← θ − η v               (nesterov: θ ← θ − η (g + μ v))
        adam:       m ← β1 m + (1 − β1) g,  r ← β2 r + (1 − β2) g²,
                    θ ← θ − η (m / (1 − β1^t)) / (√(r / (1 − β2^t)) + ε)
    """
    sizes, _ = _checked_network(weights, biases, None, "quadratic")
    _check_step(sizes, dC_dw, dC_db, learning_rate, state, optimizer, momentum, nesterov, l2,
                betas, eps)
    _step(weights, biases, dC_dw, dC_db, learning_rate, state, optimizer, momentum, nesterov, l2,
          betas, eps)


def _check_step(sizes, dC_dw, dC_db, learning_rate, state, *rule):
    from .training import check_rule
    check_rule(learning_rate, *rule)
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict (start with {{}}), got {type(state).__name__}.")
    if not hasattr(dC_dw, "__len__") or not hasattr(dC_db, "__len__") or not (
            len(dC_dw) == len(dC_db) == len(sizes) - 1):
        raise ValueError(f"dC_dw and dC_db must have one entry per layer (L = {len(sizes) - 1}).")
    for l in range(len(sizes) - 1):
        if not hasattr(dC_dw[l], "__len__") or len(dC_dw[l]) != sizes[l + 1]:
            raise ValueError(f"dC_dw[{l}] must have n_l = {sizes[l + 1]} rows.")
        for j, row in enumerate(dC_dw[l]):
            _real_list(row, f"dC_dw[{l}][{j}]", sizes[l], "n_l−1")
        _real_list(dC_db[l], f"dC_db[{l}]", sizes[l + 1], "n_l")


def _step(weights, biases, dC_dw, dC_db, learning_rate, state, optimizer, momentum, nesterov, l2,
          betas, eps):
    eta, mu = learning_rate, momentum
    beta1, beta2 = betas
    state["t"] = t = state.get("t", 0) + 1
    if "v" not in state:
        zeros = [([[0.0] * len(row) for row in w], [0.0] * len(b)) for w, b in zip(weights, biases)]
        state["v"] = zeros
        state["r"] = [([row[:] for row in w], b[:]) for w, b in zeros]

    def update(theta, g, v, r):
        """The new (θ, v, r) of one parameter."""
        if optimizer == "adam":
            v = beta1 * v + (1 - beta1) * g
            r = beta2 * r + (1 - beta2) * g * g
            step = eta * (v / (1 - beta1 ** t)) / (math.sqrt(r / (1 - beta2 ** t)) + eps)
            return theta - step, v, r
        if mu:
            v = mu * v + g
            return theta - eta * (g + mu * v if nesterov else v), v, r
        return theta - eta * g, v, r

    for l in range(len(weights)):
        w, b = weights[l], biases[l]
        (v_w, v_b), (r_w, r_b) = state["v"][l], state["r"][l]
        for j in range(len(b)):
            for k in range(len(w[j])):
                # L2: the cost's (λ/2) w_jk² adds λ w_jk to the slope of each weight.
                g = dC_dw[l][j][k] + l2 * w[j][k]
                w[j][k], v_w[j][k], r_w[j][k] = update(w[j][k], g, v_w[j][k], r_w[j][k])
            b[j], v_b[j], r_b[j] = update(b[j], dC_db[l][j], v_b[j], r_b[j])


# --- private steps: DP-SGD's noise -------------------------------------------------------------

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


def _mix(z):
    """SplitMix64's output function (Steele, Lea and Flood, 2014), on 64-bit integers."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def noise(key, t, count):
    """ξ_0, …, ξ_{count−1}: the standard normal numbers a private step t adds, coordinate i of θ
    (in `parameters_vector`'s order) getting ξ_i — those the kernels draw for a noise seed
    ``key``, computed here one by one in float64 (a float32 network draws the same formula in
    float32: its u₁ and u₂ rounded to float32 first).

    Counter-based, so that any thread can draw any coordinate: step t's stream has the base
    mix(key ^ mix(t·γ' + γ)); coordinates 2q and 2q + 1 come from h = mix(base + (q + 1)·γ),
    split into its top 32 bits a and its low 32 bits b, through Box–Muller:

        u₁ = 1 − a/2³² ∈ (0, 1],   u₂ = b/2³² ∈ [0, 1),   ρ = √(−2 ln u₁),
        ξ_2q = ρ cos 2πu₂,          ξ_2q+1 = ρ sin 2πu₂.

    mix is SplitMix64's output function, γ = 0x9E3779B97F4A7C15, γ' = 0xD1B54A32D192ED03. Not a
    cryptographic generator."""
    key = check_count(key, "key", 0)
    t = check_count(t, "t", 0)
    count = check_count(count, "count", 0)
    if key > _MASK or t > _MASK:
        raise ValueError("key and t must each fit in 64 bits.")
    base = _mix(key ^ _mix((t * 0xD1B54A32D192ED03 + _GAMMA) & _MASK))
    xi = []
    for q in range((count + 1) // 2):
        h = _mix((base + (q + 1) * _GAMMA) & _MASK)
        u1 = 1.0 - (h >> 32) / 2.0**32
        u2 = (h & 0xFFFFFFFF) / 2.0**32
        rho = math.sqrt(-2.0 * math.log(u1))
        xi += [rho * math.cos(2 * math.pi * u2), rho * math.sin(2 * math.pi * u2)]
    return xi[:count]


def _add_noise(dC_dw, dC_db, deviation, key, t):
    """Each ∂C/∂θ_i (a sum, not yet divided) += deviation · ξ_i of step t, in θ's order."""
    count = sum(len(row) + 1 for w in dC_dw for row in w)
    xi = iter(noise(key, t, count))
    for l in range(len(dC_dw)):
        for j in range(len(dC_db[l])):
            for k in range(len(dC_dw[l][j])):
                dC_dw[l][j][k] += deviation * next(xi)
        for j in range(len(dC_db[l])):
            dC_db[l][j] += deviation * next(xi)


def train_epoch(weights, biases, X, Y, order, batch_size, learning_rate, state,
                activations=None, cost="quadratic", clip_norm=None, noise_multiplier=None,
                noise_key=0, first_step=0, offsets=None, **rule):
    """One epoch of `fit`: the examples in ``order``, mini-batches of ``batch_size`` (the last one
    may be shorter), one `step` per mini-batch from its mean gradient — of the examples'
    gradients each clipped to norm ``clip_norm`` (R) if given. Returns the epoch's mean cost,
    each C_k evaluated with the parameters in force when its mini-batch was visited.

    Private steps (DP-SGD, as `Network.fit` takes them): with ``noise_multiplier`` ν (and a clip
    norm R), step i of the epoch is

        ḡ = (1/B) (Σ_k c_k ∂C_k/∂θ + ν R ξ),   c_k = min(1, R / ‖∂C_k/∂θ‖₂),

    ξ = `noise`(noise_key, first_step + i, P). With ``offsets`` (Poisson sampling, as
    `bpfast.training.poisson_steps` draws them), step i takes order[offsets[i]:offsets[i + 1]]
    — none at times, and then its noise alone — and B is ``batch_size``, the expected size;
    without, B is the mini-batch's own size. The mean cost is then over the examples visited."""
    from .training import check_rule
    sizes, activations = _checked_network(weights, biases, activations, cost)
    pairs = _check_batch(X, Y, sizes, cost)
    batch_size = check_count(batch_size, "batch_size", 1)
    settings = dict(optimizer="sgd", momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999),
                    eps=1e-8)
    unknown = set(rule) - set(settings)
    if unknown:
        raise TypeError(f"train_epoch got unknown keyword(s) {sorted(unknown)}; the rule's are "
                        f"{list(settings)}.")
    settings.update(rule)
    check_rule(learning_rate, *settings.values())
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict (start with {{}}), got {type(state).__name__}.")
    for k in order:
        check_count(k, "order's entries", 0)
        if k >= len(pairs):
            raise ValueError(f"order holds row {k}, but X has {len(pairs)} examples.")
    if not order:
        raise ValueError("order must hold at least one row of X.")
    if clip_norm is not None:
        clip_norm = check_positive_real(clip_norm, "clip_norm")
    deviation = 0.0
    if noise_multiplier is not None:
        if clip_norm is None:
            raise ValueError("noise_multiplier needs clip_norm: the noise's deviation is ν R.")
        deviation = check_positive_real(noise_multiplier, "noise_multiplier",
                                        allow_zero=True) * clip_norm
    first_step = check_count(first_step, "first_step", 0)
    if offsets is None:
        steps = [(start, min(start + batch_size, len(order)))
                 for start in range(0, len(order), batch_size)]
    else:
        offsets = [check_count(o, "offsets' entries", 0) for o in offsets]
        if (len(offsets) < 2 or offsets[0] != 0 or offsets[-1] > len(order)
                or any(b < a for a, b in zip(offsets, offsets[1:]))):
            raise ValueError("offsets must rise from 0 to at most len(order), one more entry "
                             "than there are steps.")
        steps = list(zip(offsets, offsets[1:]))
    total = 0.0
    for i, (start, end) in enumerate(steps):
        batch = [pairs[k] for k in order[start:end]]
        total += sum(_example_cost(weights, biases, x, y, activations, cost) for x, y in batch)
        dC_dw, dC_db = _gradient_sum(weights, biases, batch, activations, cost, clip_norm)
        if deviation:
            _add_noise(dC_dw, dC_db, deviation, noise_key, first_step + i)
        B = batch_size if offsets is not None else len(batch)
        for l in range(len(weights)):
            for j in range(len(dC_db[l])):
                for k in range(len(dC_dw[l][j])):
                    dC_dw[l][j][k] /= B
                dC_db[l][j] /= B
        _step(weights, biases, dC_dw, dC_db, learning_rate, state, *settings.values())
    visited = steps[-1][1] if offsets is not None else len(order)
    return total / visited if visited else 0.0
