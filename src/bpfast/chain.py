"""The slides' simplification: one neuron per layer, the last two layers, in plain floats.

    a^(L−1) ──w, b──▶ z^(L) = w a^(L−1) + b ──σ──▶ a^(L) = σ(z^(L)) ──▶ C_0 = (a^(L) − y)²

Each attribute of `Chain` is computed by the formula of its slide, so a learner can print the
three links of the chain rule and their products and check them by hand. With
``cost="cross_entropy"`` (beyond the slides), C_0 = −[y ln a + (1 − y) ln(1 − a)]: link 3 becomes
(a − y) / (a (1 − a)), and links 2 and 3 multiply to a − y, σ'(z) = a (1 − a) cancelling.
"""
import math

from ._validation import check_choice, check_real
from .costs import COSTS
from .reference import _softplus, sigmoid, sigmoid_prime


def _operand(x):
    """x to 6 significant digits, in parentheses when negative: 0.5·(−1), not 0.5·-1."""
    text = f"{x:.6g}"
    return f"({text})" if x < 0 else text


class Chain:
    """One weight w, one bias b, the previous activation a^(L−1) and the target y.

    Attributes, each from its slide:

    - ``z``  = w a^(L−1) + b, ``a`` = σ(z), ``C0`` = (a − y)²       (la carte des variables)
    - ``dz_dw``  = ∂z/∂w  = a^(L−1)                                  (link 1)
    - ``da_dz``  = ∂a/∂z  = σ'(z)                                    (link 2)
    - ``dC0_da`` = ∂C_0/∂a = 2 (a − y)                               (link 3)
      (cross-entropy: C0 = −[y ln a + (1 − y) ln(1 − a)], ∂C_0/∂a = (a − y) / (a (1 − a)))
    - ``dC0_dz`` = da_dz · dC0_da, links 2 and 3 together (cross-entropy: a − y)
    - ``dC0_dw`` = dz_dw · da_dz · dC0_da                            (la synthèse pour w)
    - ``dC0_db`` = 1 · da_dz · dC0_da                                (et pour le biais)
    - ``dC0_da_prev`` = w · da_dz · dC0_da                           (remonter le courant)
    """

    def __init__(self, w, b, a_prev, y, cost="quadratic"):
        self.w = check_real(w, "w")
        self.b = check_real(b, "b")
        self.a_prev = check_real(a_prev, "a_prev")
        self.y = check_real(y, "y")
        check_choice(cost, "cost", COSTS)
        if cost == "cross_entropy" and not 0 <= self.y <= 1:
            raise ValueError(f"y must be a probability in [0, 1] for the cross-entropy cost, "
                             f"got {self.y!r}.")
        self.cost = cost

        self.z = self.w * self.a_prev + self.b
        self.a = sigmoid(self.z)
        self.da_dz = sigmoid_prime(self.z)
        if cost == "quadratic":
            self.C0 = (self.a - self.y) ** 2
            self.dC0_da = 2 * (self.a - self.y)
            self.dC0_dz = self.da_dz * self.dC0_da           # link 2 · link 3
        else:
            # From z, not from ln a: a rounds to 0 or 1 long before z is large.
            self.C0 = _softplus(self.z) - self.y * self.z
            # σ'(z) = a (1 − a) cancels: link 2 · link 3 = a − y, even where σ'(z) rounds to 0
            # and link 3 alone is infinite.
            self.dC0_dz = self.a - self.y
            self.dC0_da = (self.dC0_dz / self.da_dz if self.da_dz > 0
                           else math.copysign(math.inf, self.dC0_dz) if self.dC0_dz else 0.0)

        self.dz_dw = self.a_prev
        self.dz_db = 1.0
        self.dz_da_prev = self.w

        self.dC0_dw = self.dz_dw * self.dC0_dz
        self.dC0_db = self.dz_db * self.dC0_dz
        self.dC0_da_prev = self.dz_da_prev * self.dC0_dz

    def __repr__(self):
        cost = f", cost={self.cost!r}" if self.cost != "quadratic" else ""
        return (f"Chain(w={self.w!r}, b={self.b!r}, a_prev={self.a_prev!r}, y={self.y!r}{cost}): "
                f"C0={self.C0:.6g}, dC0_dw={self.dC0_dw:.6g}, dC0_db={self.dC0_db:.6g}, "
                f"dC0_da_prev={self.dC0_da_prev:.6g}")

    def _cost_rows(self):
        """C0 and the three links, as rows of `__str__`."""
        f = _operand
        links = [("link 1  ∂z/∂w  = a(L-1)", f(self.a_prev), self.dz_dw),
                 ("link 2  ∂a/∂z  = σ'(z)", f"σ'({f(self.z)})", self.da_dz)]
        if self.cost == "quadratic":
            return [("C0 = (a − y)²", f"({f(self.a)} − {f(self.y)})²", self.C0), *links,
                    ("link 3  ∂C0/∂a = 2(a − y)", f"2·({f(self.a)} − {f(self.y)})", self.dC0_da)]
        return [("C0 = −[y ln a + (1 − y) ln(1 − a)]",
                 f"−[{f(self.y)}·ln {f(self.a)} + {f(1 - self.y)}·ln {f(1 - self.a)}]", self.C0),
                *links,
                ("link 3  ∂C0/∂a = (a − y) / (a(1 − a))",
                 f"({f(self.a)} − {f(self.y)}) / ({f(self.a)}·{f(1 - self.a)})", self.dC0_da)]

    def __str__(self):
        f = _operand
        if self.cost == "quadratic":
            links_2_3, work_2_3 = "link 2 · link 3", f"{f(self.da_dz)} · {f(self.dC0_da)}"
            products = []
        else:
            links_2_3, work_2_3 = "(a − y)", f(self.dC0_dz)
            products = [("link 2 · link 3 = a − y", f"{f(self.a)} − {f(self.y)}", self.dC0_dz)]
        rows = [
            ("z = w·a(L-1) + b", f"{f(self.w)}·{f(self.a_prev)} + {f(self.b)}", self.z),
            ("a = σ(z)", f"σ({f(self.z)})", self.a),
            *self._cost_rows(),
            *products,
            (f"∂C0/∂w = link 1 · {links_2_3}", f"{f(self.dz_dw)} · {work_2_3}", self.dC0_dw),
            (f"∂C0/∂b = 1 · {links_2_3}", f"1 · {work_2_3}", self.dC0_db),
            (f"∂C0/∂a(L-1) = w · {links_2_3}", f"{f(self.w)} · {work_2_3}", self.dC0_da_prev),
        ]
        name_width = max(len(name) for name, _, _ in rows)
        work_width = max(len(work) for _, work, _ in rows)
        lines = [f"{name:<{name_width}}  = {work:<{work_width}}  = {value: .6g}"
                 for name, work, value in rows]
        return "\n".join(lines)
