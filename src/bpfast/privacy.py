"""Privacy accounting for DP-SGD: what ε a private training spends, and the noise a budget needs.

DP-SGD's step (`Network.fit(clip_norm=R, noise_multiplier=ν)`) is a subsampled Gaussian mechanism:
each example's gradient is clipped to norm R, and noise of deviation ν R is added to the step's
sum. With Poisson sampling — each example joins a step independently with probability q — the
analyses of Google's `dp-accounting` give the ε of T such steps at a given δ_DP: by privacy loss
distributions ("pld", tight; the default) or Rényi DP ("rdp", looser, faster for many steps).
`dp-accounting` is an optional extra: ``pip install "bpfast[privacy]"``.

These functions assume Poisson sampling. `fit` shuffles the data into mini-batches of a fixed
size so far; the ε they give does not describe such training.
"""
from ._validation import check_choice, check_count, check_positive_real

#: The accountants `dp-accounting` offers for these events.
ACCOUNTANTS = ("pld", "rdp")


def _library():
    try:
        import dp_accounting
    except ImportError:
        raise ImportError('bpfast.privacy needs Google\'s dp-accounting: pip install '
                          '"bpfast[privacy]"') from None
    return dp_accounting


def _check(sample_rate, steps, delta, accountant):
    sample_rate = check_positive_real(sample_rate, "sample_rate")
    if sample_rate > 1:
        raise ValueError(f"sample_rate is a probability: it must be in (0, 1], got {sample_rate}.")
    steps = check_count(steps, "steps", 0)
    delta = check_positive_real(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}.")
    check_choice(accountant, "accountant", ACCOUNTANTS)
    return sample_rate, steps, delta


def _event(dp, noise_multiplier, sample_rate, steps):
    """T steps of the Poisson-subsampled Gaussian mechanism, as dp-accounting describes them."""
    step = dp.PoissonSampledDpEvent(sample_rate, dp.GaussianDpEvent(noise_multiplier))
    return dp.SelfComposedDpEvent(step, steps)


def _accountant(dp, accountant):
    if accountant == "pld":
        from dp_accounting import pld
        return pld.PLDAccountant()
    from dp_accounting import rdp
    return rdp.RdpAccountant()


def epsilon(noise_multiplier, sample_rate, steps, delta, *, accountant="pld"):
    """ε of `steps` steps of DP-SGD with noise multiplier ν and Poisson sampling rate q = B / N
    (B the expected mini-batch size), at δ_DP = `delta`, by dp-accounting's `accountant`."""
    dp = _library()
    noise_multiplier = check_positive_real(noise_multiplier, "noise_multiplier")
    sample_rate, steps, delta = _check(sample_rate, steps, delta, accountant)
    if steps == 0:
        return 0.0                              # nothing released, nothing spent
    ledger = _accountant(dp, accountant)
    ledger.compose(_event(dp, noise_multiplier, sample_rate, steps))
    return float(ledger.get_epsilon(delta))


def noise_multiplier(target_epsilon, target_delta, sample_rate, steps, *, accountant="pld"):
    """The smallest ν whose `epsilon` is at most `target_epsilon` (dp-accounting's calibration,
    Brent's method on ε(ν))."""
    dp = _library()
    target_epsilon = check_positive_real(target_epsilon, "target_epsilon")
    sample_rate, steps, target_delta = _check(sample_rate, steps, target_delta, accountant)
    if steps == 0:
        raise ValueError("steps must be ≥ 1: no step spends no privacy, whatever the noise.")
    return float(dp.calibrate_dp_mechanism(
        lambda: _accountant(dp, accountant),
        lambda nu: _event(dp, nu, sample_rate, steps), target_epsilon, target_delta))

