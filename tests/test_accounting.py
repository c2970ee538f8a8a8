"""bpfast.privacy: ε of DP-SGD with Poisson sampling, and the noise a budget needs, by Google's
dp-accounting (the `privacy` extra)."""
import pytest

pytest.importorskip("dp_accounting")

from bpfast import privacy  # noqa: E402


def test_abadi_et_al_s_setting_spends_no_more_than_their_moments_accountant_says():
    """Abadi et al. (2016), section 3.1: q = 0.01, σ = 4, δ = 1e−5 and 10,000 steps give
    ε ≈ 1.26 by the moments accountant. The RDP accountant (Mironov, 2017) refines it and the
    PLD accountant is tighter still: 1.035 and 0.947 here, in that order, each below 1.26."""
    rdp = privacy.epsilon(4.0, 0.01, 10_000, 1e-5, accountant="rdp")
    pld = privacy.epsilon(4.0, 0.01, 10_000, 1e-5)
    assert pld < rdp < 1.26
    assert rdp == pytest.approx(1.035, abs=0.005) and pld == pytest.approx(0.947, abs=0.005)


def test_epsilon_grows_with_steps_and_sampling_and_falls_with_noise():
    base = privacy.epsilon(1.0, 256 / 60_000, 2_340, 1e-5)
    assert privacy.epsilon(1.0, 256 / 60_000, 4_680, 1e-5) > base
    assert privacy.epsilon(1.0, 512 / 60_000, 2_340, 1e-5) > base
    assert privacy.epsilon(1.5, 256 / 60_000, 2_340, 1e-5) < base
    assert privacy.epsilon(1.0, 256 / 60_000, 0, 1e-5) == 0


@pytest.mark.parametrize("accountant", ["pld", "rdp"])
def test_the_calibrated_noise_spends_the_budget(accountant):
    nu = privacy.noise_multiplier(2.0, 1e-5, 256 / 60_000, 2_340, accountant=accountant)
    assert privacy.epsilon(nu, 256 / 60_000, 2_340, 1e-5, accountant=accountant) <= 2.0 + 1e-6
    assert privacy.epsilon(0.98 * nu, 256 / 60_000, 2_340, 1e-5, accountant=accountant) > 2.0


@pytest.mark.parametrize("call,error,message", [
    (lambda: privacy.epsilon(0.0, 0.01, 10, 1e-5), ValueError,
     "noise_multiplier must be a finite number > 0"),
    (lambda: privacy.epsilon(1.0, 1.5, 10, 1e-5), ValueError, r"sample_rate is a probability"),
    (lambda: privacy.epsilon(1.0, 0.01, -1, 1e-5), ValueError, "steps"),
    (lambda: privacy.epsilon(1.0, 0.01, 10, 1.0), ValueError, r"delta must be in \(0, 1\)"),
    (lambda: privacy.epsilon(1.0, 0.01, 10, 1e-5, accountant="moments"), ValueError,
     r"accountant must be one of \['pld', 'rdp'\]"),
    (lambda: privacy.noise_multiplier(1.0, 1e-5, 0.01, 0), ValueError, "steps must be ≥ 1"),
])
def test_bad_accounting_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
