"""The slides' single-neuron chain, checked against arithmetic done by hand."""
import math

import numpy as np
import pytest

import bpfast
from bpfast.chain import Chain


def test_chain_at_z_zero_by_hand():
    # w = 0.5, b = -0.2, a(L-1) = 0.4, y = 1
    # z  = 0.5 · 0.4 − 0.2 = 0                      (exactly)
    # a  = σ(0) = 1 / (1 + e^0) = 1/2
    # C0 = (1/2 − 1)² = 1/4
    # link 1: ∂z/∂w  = a(L-1)  = 0.4
    # link 2: ∂a/∂z  = σ'(0)   = σ(0)(1 − σ(0)) = 1/4
    # link 3: ∂C0/∂a = 2(a − y) = 2(1/2 − 1) = −1
    # ∂C0/∂w      = 0.4 · 1/4 · (−1) = −0.1
    # ∂C0/∂b      = 1   · 1/4 · (−1) = −0.25
    # ∂C0/∂a(L-1) = w · 1/4 · (−1) = 0.5 · −0.25 = −0.125
    c = Chain(w=0.5, b=-0.2, a_prev=0.4, y=1.0)
    # Each of these is the float nearest the hand-worked value (0.5 · 0.4 is 0.2 exactly as
    # floats go, and so is every quarter and half below).
    assert c.z == 0.0
    assert (c.a, c.C0) == (0.5, 0.25)
    assert (c.dz_dw, c.da_dz, c.dC0_da) == (0.4, 0.25, -1.0)
    assert (c.dC0_dw, c.dC0_db, c.dC0_da_prev) == (-0.1, -0.25, -0.125)


def test_chain_at_z_log3_by_hand():
    # w = ln 3, b = 0, a(L-1) = 1, y = 0
    # z  = ln 3, so e^(−z) = 1/3 and a = 1 / (1 + 1/3) = 3/4
    # C0 = (3/4)² = 9/16
    # link 2: σ'(z) = 3/4 · 1/4 = 3/16;  link 3: 2(3/4 − 0) = 3/2
    # ∂C0/∂w = 1 · 3/16 · 3/2 = 9/32 = ∂C0/∂b;  ∂C0/∂a(L-1) = ln 3 · 9/32
    c = Chain(w=math.log(3), b=0.0, a_prev=1.0, y=0.0)
    assert c.a == pytest.approx(0.75, rel=1e-15)
    assert c.C0 == pytest.approx(9 / 16, rel=1e-15)
    assert c.da_dz == pytest.approx(3 / 16, rel=1e-15)
    assert c.dC0_da == pytest.approx(1.5, rel=1e-15)
    assert c.dC0_dw == pytest.approx(9 / 32, rel=1e-15)
    assert c.dC0_db == pytest.approx(9 / 32, rel=1e-15)
    assert c.dC0_da_prev == pytest.approx(math.log(3) * 9 / 32, rel=1e-15)


def test_chain_derivatives_match_finite_differences():
    w, b, a_prev, y, h = -1.3, 0.7, 0.35, 0.2, 1e-6
    c = Chain(w, b, a_prev, y)
    assert c.dC0_dw == pytest.approx(
        (Chain(w + h, b, a_prev, y).C0 - Chain(w - h, b, a_prev, y).C0) / (2 * h), rel=1e-8)
    assert c.dC0_db == pytest.approx(
        (Chain(w, b + h, a_prev, y).C0 - Chain(w, b - h, a_prev, y).C0) / (2 * h), rel=1e-8)
    assert c.dC0_da_prev == pytest.approx(
        (Chain(w, b, a_prev + h, y).C0 - Chain(w, b, a_prev - h, y).C0) / (2 * h), rel=1e-8)


def test_chain_is_the_network_with_one_neuron_per_layer():
    # A [1, 1, 1] network is two links of the chain: the last layer's ∂C0/∂a(L-1) is what
    # flows into layer L-1, whose own link 3 it replaces.
    w1, b1, w2, b2, x, y = 0.9, -0.4, -1.7, 0.3, 0.6, 0.25
    net = bpfast.Network.from_params([[[w1]], [[w2]]], [[b1], [b2]])
    g = net.backprop([x], [y])

    top = Chain(w2, b2, a_prev=bpfast.reference.sigmoid(w1 * x + b1), y=y)
    assert g.w[1][0, 0] == pytest.approx(top.dC0_dw, rel=1e-14)
    assert g.b[1][0] == pytest.approx(top.dC0_db, rel=1e-14)

    bottom = Chain(w1, b1, a_prev=x, y=0.0)
    dC0_dw1 = bottom.dz_dw * bottom.da_dz * top.dC0_da_prev
    assert g.w[0][0, 0] == pytest.approx(dC0_dw1, rel=1e-14)
    assert net.cost([x], [y]) == pytest.approx(top.C0, rel=1e-14)


def test_chain_str_shows_the_three_links():
    text = str(Chain(0.5, -0.2, 0.4, 1.0))
    for piece in ("link 1", "link 2", "link 3", "∂C0/∂w", "∂C0/∂b", "-0.125"):
        assert piece in text
    assert "dC0_dw=-0.1" in repr(Chain(0.5, -0.2, 0.4, 1.0))


@pytest.mark.parametrize("bad,error", [("1", TypeError), (None, TypeError),
                                       (float("nan"), ValueError), (np.inf, ValueError),
                                       (True, TypeError)])
def test_chain_rejects_non_numbers(bad, error):
    with pytest.raises(error, match=r"^w must be (a real number|finite), got"):
        Chain(bad, 0.0, 0.5, 1.0)
    with pytest.raises(error, match=r"^y must be (a real number|finite), got"):
        Chain(0.5, 0.0, 0.5, bad)


@pytest.mark.parametrize("w,b,a_prev,y", [(0.5, -0.2, 0.4, 1.0), (-1.3, 0.7, 0.9, 0.0),
                                          (2.0, 0.1, -0.6, 0.3)])
def test_cross_entropy_chain_matches_finite_differences(w, b, a_prev, y):
    c = Chain(w, b, a_prev, y, cost="cross_entropy")
    h = 1e-6
    C0 = lambda **k: Chain(**{**dict(w=w, b=b, a_prev=a_prev, y=y), **k},   # noqa: E731
                           cost="cross_entropy").C0
    assert c.C0 == pytest.approx(-(y * math.log(c.a) + (1 - y) * math.log(1 - c.a)), rel=1e-12)
    assert c.dC0_dw == pytest.approx((C0(w=w + h) - C0(w=w - h)) / (2 * h), rel=1e-7)
    assert c.dC0_db == pytest.approx((C0(b=b + h) - C0(b=b - h)) / (2 * h), rel=1e-7)
    assert c.dC0_da_prev == pytest.approx((C0(a_prev=a_prev + h) - C0(a_prev=a_prev - h))
                                          / (2 * h), rel=1e-7)
    # Links 2 and 3 multiply to a − y: σ'(z) = a (1 − a) cancels.
    assert c.da_dz * c.dC0_da == pytest.approx(c.a - y, rel=1e-12)
    assert c.dC0_dz == c.a - y


def test_cross_entropy_chain_where_sigma_saturates():
    """σ(1000) rounds to 1 and σ'(1000) to 0: link 3 is infinite, yet a − y and C0 are exact."""
    c = Chain(100.0, 0.0, 10.0, 0.0, cost="cross_entropy")
    assert c.da_dz == 0.0 and c.dC0_da == math.inf
    assert c.C0 == 1000.0 and c.dC0_dw == 10.0 and c.dC0_db == 1.0
    assert "a − y" in str(c)


def test_cross_entropy_chain_needs_a_probability():
    with pytest.raises(ValueError, match=r"y must be a probability in \[0, 1\]"):
        Chain(0.5, 0.0, 0.4, 3.0, cost="cross_entropy")
    with pytest.raises(ValueError, match="cost must be one of"):
        Chain(0.5, 0.0, 0.4, 1.0, cost="hinge")
