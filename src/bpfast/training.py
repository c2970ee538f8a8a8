"""Training by mini-batch gradient descent: whole epochs inside the kernels.

For each epoch: a seeded random order of the examples, then for each mini-batch of
``batch_size`` examples in that order (the last one may be shorter), one step

    w ← w − η ∂C/∂w,    b ← b − η ∂C/∂b,    C = (1/m) Σ_k C_k over the mini-batch's m examples,

as docs/notation.md defines gradient descent. Python is only visited between epochs.

The other steps `fit` can take, from g = ∂C/∂θ of the mini-batch (PyTorch's conventions):

    L2 (l2=λ)          the cost gains (λ/2) Σ_l ‖w^(l)‖²: g_w ← g_w + λ w (biases are not
                       regularised); with plain steps, w ← (1 − ηλ) w − η ∂C/∂w
    momentum=μ         v ← μ v + g,  θ ← θ − η v                         (heavy ball)
    nesterov=True      v ← μ v + g,  θ ← θ − η (g + μ v)                 (look-ahead)
    optimizer="adam"   m ← β1 m + (1 − β1) g,  r ← β2 r + (1 − β2) g ⊙ g,
                       θ ← θ − η m̂ / (√r̂ + ε),  m̂ = m / (1 − β1^t),  r̂ = r / (1 − β2^t)

t counts the steps of this `fit` from 1; v, m and r start at 0 in each call of `fit`.
"""
import contextlib
import os
import signal
import threading
import time

import numpy as np

from . import _blas, _kernels, _pool
from ._validation import (
    PYTHON,
    check_choice,
    check_count,
    check_finite,
    check_flag,
    check_fraction,
    check_positive_real,
    check_seed,
)


class TrainingDiverged(ArithmeticError):
    """A step of `fit` made parameters non-finite; the network keeps those of the step before,
    the last finite one (which may already be huge, the run having been on its way out).

    ``epoch`` and ``mini_batch`` (both counted from 1) name the step that diverged; ``history``
    holds the completed epochs; ``parameters_before_epoch`` is a copy of θ as it was when that
    epoch began (`Network.set_parameters_vector` puts it back).
    """

    def __init__(self, message, epoch, history, mini_batch, parameters_before_epoch):
        super().__init__(message)
        self.epoch = epoch
        self.mini_batch = mini_batch
        self.history = history
        self.parameters_before_epoch = parameters_before_epoch


class History:
    """What `fit` measured, one entry per epoch.

    Attributes
    ----------
    cost : list of float
        The mean training cost of the epoch, (1/N) Σ_k C_k, each C_k evaluated with the
        parameters in force when its mini-batch was visited (the figure PyTorch and Keras
        training loops report; it costs nothing extra, being a by-product of the forward pass).
    seconds : list of float
        Wall-clock time of the epoch.
    validation_cost, validation_accuracy : lists of float
        With `fit`'s validation_data: the mean cost and the accuracy on it after each epoch
        (accuracy only for one-hot targets or labels; empty lists otherwise).
    best_epoch : int or None
        With early_stopping: the epoch whose parameters the network keeps.
    threads : dict
        How the steps were computed: ``n_threads`` (the parts of each step), ``workers`` (the
        threads that could compute them), ``steps_shared`` and ``steps_alone`` (steps computed
        by all workers, and by one of them while the others slept because sharing cost more
        than it gained: a busy machine), ``switches`` between the two, ``moves``: how many
        times a thread found on another's core moved off it (the system had put two on one),
        and ``taken_over``: how many parts of a step a thread computed for another that had not
        come for them (put aside by the system, or waking up).
    epsilon, delta, accountant, noise_multiplier, privacy : with `fit`'s target_delta, the ε
        that the private steps taken spent at δ_DP = delta by `bpfast.privacy`'s accountant
        ("pld" or "rdp"), with the ν used (chosen by fit for a target_epsilon) —
        None, with the reason in ``privacy``, where no analysis applies (shuffled mini-batches,
        or no noise).
    """

    def __init__(self):
        self.cost = []
        self.seconds = []
        self.validation_cost = []
        self.validation_accuracy = []
        self.best_epoch = None
        self.threads = {}
        self.epsilon = self.delta = self.accountant = self.noise_multiplier = None
        self.privacy = ""
        self.state = None

    @property
    def epochs(self):
        return len(self.cost)

    def _record(self, cost, seconds):
        self.cost.append(cost)
        self.seconds.append(seconds)

    def __len__(self):
        return self.epochs

    def __repr__(self):
        last = f", last cost {self.cost[-1]:.6g}" if self.cost else ""
        return f"History({self.epochs} epochs{last}, {sum(self.seconds):.3g} s)"


def available_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                      # not on Linux
        return os.cpu_count() or 1


#: A thread's share of a mini-batch should be at least this many FLOPs (6·P per example):
#: below it, the phases of a step are too short to be worth sharing. Measured with
#: benchmarks/bench_training.py: W4 ([64, 30, 10], batch 10, 1.4e5 FLOPs) is no faster on two
#: threads, W1 ([784, 30, 10], batch 10, 1.4e6 FLOPs) is.
MIN_FLOPS_PER_THREAD = 250_000


def default_threads(net, batch):
    """The n_threads that `fit` uses when given None: the cores this process may run on, no more
    than OpenMP's limit (OMP_NUM_THREADS, or threadpoolctl's ``threadpool_limits``, as
    scikit-learn honours them: a joblib or Dask worker told to use one thread gets one), and no
    more than the mini-batch has work for (`MIN_FLOPS_PER_THREAD`). It depends on the machine's
    cores, never on its load."""
    return _default_threads(net.n_params, batch)


def _default_threads(P, batch):
    enough_for = 6 * P * batch // MIN_FLOPS_PER_THREAD
    if enough_for <= 1:
        return 1        # too little work for two: no need to ask the system for its cores
    cores = available_cores()
    limit = _kernels.openmp_limit() or cores
    return max(1, min(cores, limit, enough_for))


#: Tests only: fix the team's mode (1 all threads, 2 one thread, 3 alternating at every step)
#: instead of choosing it by measuring; the result must be the same bits in every mode.
_FORCED_MODE = 0

#: BLAS kept to one thread while the kernels' threads run (bpfast._blas).
_single_threaded_blas = _blas.single_threaded


@contextlib.contextmanager
def _recording_threads(history, team, n_threads):
    """History.threads from the team's statistics once fit ends (diverged or interrupted too):
    this fit's, the team having served others before."""
    before = team.statistics
    try:
        yield
    finally:
        after = team.statistics
        history.threads = dict(n_threads=n_threads, workers=team.n_workers)
        for name, counted in (("steps_shared", "team_steps"), ("steps_alone", "solo_steps"),
                              ("switches", "switches"), ("moves", "moves"),
                              ("taken_over", "taken_over")):
            history.threads[name] = after[counted] - before[counted]


#: The optimizers of `fit` (``optimizer=``); with "sgd", ``momentum`` and ``nesterov`` choose
#: among the kernels' rules SGD, MOMENTUM and NESTEROV, numbered as there.
OPTIMIZERS = ("sgd", "adam")

#: The kernels' update rules, by the names of _codes.h: which one a step takes follows from
#: ``optimizer``, ``momentum`` and ``nesterov`` (`check_rule`).
RULES = ("sgd", "momentum", "nesterov", "adam")
_kernels.check_codes(RULES, _kernels.RULE_CODES, "update rules")
_SGD, _MOMENTUM, _NESTEROV, _ADAM = (_kernels.RULE_CODES[name] for name in RULES)
assert [_kernels.RULE_CODES[name] for name in RULES] == list(range(len(RULES)))


def check_rule(eta, optimizer, momentum, nesterov, l2, betas, eps, spelling=PYTHON):
    """The step's rule and hyper-parameters, checked, as `_kernels.train_epoch` takes them
    (also the command line's check of its flags: ``spelling``)."""
    check_choice(optimizer, "optimizer", OPTIMIZERS, spelling)
    mu = check_fraction(momentum, "momentum", allow_zero=True, spelling=spelling)
    check_flag(nesterov, "nesterov")
    l2 = check_positive_real(l2, "l2", allow_zero=True, spelling=spelling)
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair (β1, β2), got {betas!r}.") from None
    beta1 = check_fraction(beta1, "betas[0]", allow_zero=True, spelling=spelling)
    beta2 = check_fraction(beta2, "betas[1]", allow_zero=True, spelling=spelling)
    eps = check_positive_real(eps, "eps", spelling=spelling)
    if optimizer == "adam":
        if mu or nesterov:
            raise ValueError(f"{spelling.name('momentum')} and {spelling.name('nesterov')} are "
                             f"for {spelling.setting('optimizer', 'sgd')}; Adam has its own "
                             "momentum, β1 (betas[0]).")
        rule = _ADAM
    elif nesterov:
        if not mu:
            raise ValueError(f"{spelling.setting('nesterov', True)} needs a "
                             f"{spelling.name('momentum')} > 0.")
        rule = _NESTEROV
    else:
        rule = _MOMENTUM if mu else _SGD
    return dict(rule=rule, eta=eta, l2=l2, mu=mu, beta1=beta1, beta2=beta2, eps=eps)


#: How fit draws its mini-batches: each epoch's shuffled order cut into batch_size, the rows in
#: their own order (no shuffling), or Poisson sampling (every example joins each step with
#: probability batch_size / N).
SAMPLINGS = ("shuffle", "ordered", "poisson")


class OptimizerState:
    """The memory of fit's rule when a fit ended — momentum's and Nesterov's velocity v, Adam's
    moments m (in v) and r, and the number of steps taken (Adam's t, and the noise's step
    count) — for `fit(resume=history.state)` to continue from, as scikit-learn's warm_start and
    partial_fit continue their optimiser, instead of starting again from v = r = 0. Copies:
    resuming never changes it."""

    __slots__ = ("rule", "v", "r", "steps")

    def __init__(self, rule, v, r, steps):
        self.rule, self.v, self.r, self.steps = rule, v, r, steps

    def __repr__(self):
        return f"OptimizerState({RULES[self.rule]!r}, {self.steps} steps)"


def poisson_steps(rng, N, batch_size):
    """An epoch of Poisson sampling: round(N / B) steps (at least one), each holding every one of
    the N examples independently with probability q = B / N. The epoch's steps × N coin flips
    are drawn as one Bernoulli process: the gaps between the flips that come up heads are
    independent Geometric(q) numbers, ⌊E / λ⌋ + 1 with E standard exponential and
    λ = −ln(1 − q), so that the epoch costs about B draws a step rather than N (or a sampler
    call per step). Returns (order, offsets): step i takes the rows
    order[offsets[i]:offsets[i + 1]] (ascending), none at times. (order keeps one unused entry,
    so that it is never empty.)"""
    n_steps = max(1, round(N / batch_size))
    q = min(1.0, batch_size / N)
    length = n_steps * N
    expected = length * q
    draws = int(expected + 6 * np.sqrt(expected) + 16)
    scale = -1 / np.log1p(-q) if q < 1 else 0.0
    ones = np.arange(1, draws + 1, dtype=np.int64)

    def gaps():
        """The positions of `draws` more heads after one at -1: Σ_{i ≤ k} (⌊E_i / λ⌋ + 1) − 1."""
        gap = rng.standard_exponential(size=draws)
        gap *= scale
        heads = gap.astype(np.int64)              # ⌊E / λ⌋: truncation, E ≥ 0
        np.cumsum(heads, out=heads)
        heads += ones
        return heads

    positions = gaps() - 1
    while positions[-1] < length:                 # the process has not yet left the epoch
        positions = np.concatenate([positions, positions[-1] + gaps()])
    positions = positions[:np.searchsorted(positions, length)]
    offsets = np.searchsorted(positions, np.arange(n_steps + 1) * N).astype(np.intp)
    order = np.empty(len(positions) + 1, np.intp)
    order[-1] = 0
    # Each step's rows: its positions less the step's start in the epoch's n_steps × N flips.
    order[:-1] = positions
    order[:-1] -= np.repeat(np.arange(n_steps, dtype=np.intp) * N, np.diff(offsets))
    return order, offsets


def poisson_rows(N, batch_size):
    """Rows enough for nearly every step of Poisson sampling: B + 6 √B + 8 (at most N), above
    its Binomial(N, B / N) count's mean by over 6 standard deviations. The rare larger step gets
    a larger workspace when it comes (`_train`)."""
    return min(N, batch_size + int(6 * np.sqrt(batch_size)) + 8)


class FitSettings:
    """Everything `Network.fit` is told besides the data, checked once (`checked`) and handed
    down as one object: the loop (`train`) and the kernels' `Rule` read it, nothing else."""

    __slots__ = ("epochs", "batch_size", "learning_rate", "seed", "n_threads", "rule", "eta",
                 "l2", "mu", "beta1", "beta2", "eps", "early_stopping", "clip_norm",
                 "noise_multiplier", "sampling", "target_delta", "accountant",
                 "target_epsilon", "resume")

    @classmethod
    def checked(cls, *, epochs, batch_size, learning_rate, seed=None, n_threads=None,
                optimizer="sgd", momentum=0.0, nesterov=False, l2=0.0, betas=(0.9, 0.999),
                eps=1e-8, early_stopping=None, has_validation=False, clip_norm=None,
                noise_multiplier=None, sampling=None, target_delta=None, accountant="pld",
                target_epsilon=None, resume=None):
        """The settings after every check, each refusal naming its argument."""
        settings = cls()
        settings.epochs = check_count(epochs, "epochs", 0)
        settings.seed = check_seed(seed)
        settings.batch_size = check_count(batch_size, "batch_size", 1)
        settings.learning_rate = check_positive_real(learning_rate, "learning_rate")
        rule = check_rule(settings.learning_rate, optimizer, momentum, nesterov, l2, betas, eps)
        settings.rule = rule.pop("rule")
        for key, value in rule.items():
            setattr(settings, key, value)
        settings.n_threads = None if n_threads is None else check_count(n_threads, "n_threads", 1)
        settings.clip_norm = (0.0 if clip_norm is None
                              else check_positive_real(clip_norm, "clip_norm"))
        settings.noise_multiplier = (0.0 if noise_multiplier is None else check_positive_real(
            noise_multiplier, "noise_multiplier", allow_zero=True))
        if settings.noise_multiplier and not settings.clip_norm:
            raise ValueError("noise_multiplier needs a clip_norm: the noise's deviation is "
                             "noise_multiplier × clip_norm, the bound on one example's gradient.")
        settings.target_epsilon = None
        if target_epsilon is not None:
            settings.target_epsilon = check_positive_real(target_epsilon, "target_epsilon")
            if noise_multiplier is not None or not settings.clip_norm or target_delta is None:
                raise ValueError("target_epsilon chooses the noise_multiplier: give it with a "
                                 "clip_norm and a target_delta, and without a noise_multiplier.")
        if sampling is None:
            private = settings.noise_multiplier or settings.target_epsilon
            sampling = "poisson" if private else "shuffle"
        settings.sampling = check_choice(sampling, "sampling", SAMPLINGS)
        if settings.target_epsilon and settings.sampling != "poisson":
            raise ValueError("target_epsilon needs sampling='poisson': the accountants' "
                             "analyses assume it.")
        settings.target_delta, settings.accountant = None, accountant
        if target_delta is not None:
            from . import privacy
            settings.target_delta = check_positive_real(target_delta, "target_delta")
            if settings.target_delta >= 1:
                raise ValueError(f"target_delta must be in (0, 1), got {target_delta}.")
            check_choice(accountant, "accountant", privacy.ACCOUNTANTS)
            privacy._library()                  # missing: say so before training, not after
        if settings.sampling == "poisson" and not settings.clip_norm:
            raise ValueError("sampling='poisson' is DP-SGD's: it needs a clip_norm (steps of "
                             "any size are divided by the expected batch_size, which bounds "
                             "an example's influence only once its gradient is clipped).")
        if resume is not None:
            if not isinstance(resume, OptimizerState):
                raise TypeError(f"resume must be the state of an earlier fit (history.state), "
                                f"got {type(resume).__name__}.")
            if resume.rule != settings.rule:
                raise ValueError(f"resume holds the state of the {RULES[resume.rule]!r} rule, "
                                 f"but this fit's optimizer, momentum and nesterov choose "
                                 f"{RULES[settings.rule]!r}.")
        settings.resume = resume
        settings.early_stopping = None
        if early_stopping is not None:
            settings.early_stopping = check_count(early_stopping, "early_stopping", 1)
            if not has_validation:
                raise ValueError("early_stopping needs validation_data to watch.")
        return settings

    def kernel_rule(self, P, dtype):
        """The step as the kernels take it, with its state sized for θ (a fresh one: v, m and r
        start at 0 with each call of fit)."""
        return _kernels.Rule(self.rule, self.eta, self.l2, self.mu, self.beta1, self.beta2,
                             self.eps, P, dtype)


def step_weights(sample_weight, order, batch, dtype):
    """Each example's weight in an epoch's steps, aligned with `order` (mini-batches of
    `batch`): w_k scaled so that each step's weights sum to its size m — the kernels' (1/m) Σ_k
    then being the weighted mean Σ_k w_k (…) / Σ_k w_k. A step whose weights are all 0 gets
    0s: its gradient is 0."""
    w = sample_weight[order]
    starts = np.arange(0, len(order), batch)
    sums = np.add.reduceat(w, starts)
    sizes = np.diff(np.append(starts, len(order)))
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.where(sums > 0, sizes / sums, 0.0)
    return (w * np.repeat(factors, sizes)).astype(dtype)


def train(layout, theta, X, Y, settings, *, validate=None, callback=None, workspace=None,
          sample_weight=None, x_finite=True):
    """Train θ (laid out by `layout`, in place) on the examples (X, Y) — validated, C-contiguous,
    in θ's dtype — as `settings` say; `Network.fit` is its one caller. ``x_finite=False``: X's
    finiteness is left to the first epoch, which must visit every row (not Poisson sampling):
    its kernels check each row as they gather it, and a row that is not finite puts θ and the
    rule's state back as they were and raises validation's error. ``validate()``, if given,
    returns the (cost, accuracy) of the validation data after an epoch. ``sample_weight``:
    checked per-example weights (float64), or None. ``workspace``: a
    training workspace of the layout's to use if it has room for a mini-batch (the network
    keeps one between fits: fresh buffers of megabytes cost a page fault every 4 KiB).
    Returns a `History`."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}.")
    N = X.shape[0]
    batch = min(settings.batch_size, N)
    n_threads = settings.n_threads
    if n_threads is None:
        n_threads = _default_threads(layout.P, batch)
    rng = np.random.default_rng(settings.seed)
    if (workspace is None or workspace.rows < batch or workspace.dtype != theta.dtype
            or workspace.Xb is None):
        workspace = layout.workspace(batch, theta.dtype, training=True)
    rule = settings.kernel_rule(layout.P, theta.dtype)
    if settings.resume is not None:
        saved = settings.resume
        for mine, kept, name in ((rule.v, saved.v, "v"), (rule.r, saved.r, "r")):
            if mine is not None and (kept is None or kept.shape != mine.shape
                                     or kept.dtype != mine.dtype):
                raise ValueError(f"resume's {name} is not this network's: the state of a fit "
                                 f"of another network (P = {layout.P}, {theta.dtype}).")
        rule.restore((saved.v, saved.r))
    # The parts of each step are fixed by n_threads; which of the team's threads computes them,
    # and how many of those work at a time, it decides by measuring (see bpfast._kernels.Team).
    kind = ("fit", layout.sizes, layout.activation_codes, settings.rule, batch, n_threads)
    with _pool.team(min(n_threads, available_cores()), kind, _FORCED_MODE) as team:
        return _train(layout, theta, X, Y, settings, team, workspace, rule, rng, batch,
                      n_threads, validate, callback, sample_weight, x_finite)


def _train(layout, theta, X, Y, settings, team, workspace, rule, rng, batch, n_threads, validate,
           callback, sample_weight, x_finite):
    """`train`'s epochs, on a team lent for them."""
    N = X.shape[0]
    n_batches = -(-N // batch)
    poisson = settings.sampling == "poisson"
    if poisson:
        n_batches = max(1, round(N / batch))
    dtype = theta.dtype
    if settings.target_epsilon:
        # The least noise whose ε after every epoch's steps is within the budget.
        from . import privacy
        settings.noise_multiplier = privacy.noise_multiplier(
            settings.target_epsilon, settings.target_delta, batch / N,
            settings.epochs * max(1, round(N / batch)), accountant=settings.accountant)
    # The noise's seed, drawn from fit's seed only for a private fit (a plain fit's orders are
    # the same with or without this code).
    noise_key = int(rng.integers(2**63)) if settings.noise_multiplier else 0
    epoch_arguments = dict(layout=layout, theta=theta, X=X, Y=Y, batch=batch, rule=rule,
                           workspace=workspace, team=team, n_threads=n_threads,
                           clip_norm=settings.clip_norm,
                           noise=settings.noise_multiplier * settings.clip_norm,
                           noise_key=noise_key, offsets=None,
                           normaliser=float(batch) if settings.sampling == "poisson" else 0.0)
    history = History()
    first_step = settings.resume.steps if settings.resume is not None else 0
    best_cost, best_theta, waited = np.inf, None, 0
    # θ and the rule's state as each epoch began, in buffers made once for all the epochs.
    before, state_before = workspace.theta_before(), rule.state()
    # Ctrl-C stops an epoch only where it would raise KeyboardInterrupt anyway: Python's own
    # handler, in the main thread. An ignored SIGINT stays ignored (a job started in the
    # background); a handler of the caller's runs when the epoch returns, as after any
    # long call into compiled code.
    catch_sigint = (threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    with _single_threaded_blas(), _recording_threads(history, team, n_threads):
        for epoch in range(settings.epochs):
            visited = N
            if poisson:
                order, offsets = poisson_steps(rng, N, batch)
                largest, visited = max(1, int(np.diff(offsets).max())), int(offsets[-1])
                if largest > epoch_arguments["workspace"].rows:
                    epoch_arguments["workspace"] = layout.workspace(largest, dtype, training=True)
                epoch_arguments.update(batch=largest, offsets=offsets)
            elif settings.sampling == "ordered":
                order = np.arange(N, dtype=np.intp)
            else:
                order = rng.permutation(N).astype(np.intp, copy=False)
            if sample_weight is not None:
                epoch_arguments["weights"] = step_weights(sample_weight, order, batch, dtype)
            np.copyto(before, theta)
            rule.state(into=state_before)
            steps = first_step + epoch * n_batches
            start = time.perf_counter()
            row_not_finite = False
            try:
                sum_C = _kernels.train_epoch(order=order, catch_sigint=catch_sigint, steps=steps,
                                             check_x=not x_finite, **epoch_arguments)
            except _kernels.RowNotFinite:
                # Before any step used the row: the fit's first epoch, undone. (Validation's
                # message, outside this handler: no internal exception chained to it.)
                theta[...] = before
                rule.restore(state_before)
                row_not_finite = True
            except KeyboardInterrupt as caught:
                # θ holds the parameters after the last completed step; the history is that of
                # the completed epochs.
                done = getattr(caught, "mini_batches_done", None)
                if done is None:                # not the kernels' own: Python's, from elsewhere
                    caught.history = history
                    raise
                interrupt = KeyboardInterrupt(
                    f"training interrupted in epoch {epoch + 1}, after mini-batch {done} of "
                    f"{n_batches}: the network holds the parameters of that step")
                interrupt.epoch, interrupt.mini_batch = epoch + 1, done
                interrupt.history = history
                if settings.target_delta is not None:   # the steps taken were private too
                    _account(history, settings, N, batch, steps - first_step + done)
                raise interrupt from None
            if row_not_finite:
                check_finite(X, "X")
                raise AssertionError("the kernels stopped at a row of X, yet X is finite")
            x_finite = True                 # every row has been through the check
            seconds = time.perf_counter() - start
            finite = _kernels.all_finite(theta)
            if finite and not np.isfinite(sum_C):
                # Every step was finite, but the costs overflowed: the data are too large for
                # the dtype (as scikit-learn, training stops on a non-finite loss), and the
                # epoch is undone.
                theta[...] = before
                error = FloatingPointError(
                    f"the training cost of epoch {epoch + 1} is not finite: the computation "
                    f"overflowed the {dtype} range (inputs or targets too large in magnitude). "
                    "Scale the data down. The network keeps the parameters it had before that "
                    "epoch.")
                error.history = history
                if settings.target_delta is not None:   # the epoch ran: its steps count
                    _account(history, settings, N, batch, steps - first_step + n_batches)
                raise error
            if not finite:
                # Replay the epoch from its start, checking θ after every step: the replay is
                # bitwise the same computation, so it finds the step that diverged and keeps
                # the parameters of the step before — at no cost to epochs that go well.
                theta[...] = before
                rule.restore(state_before)
                bad_batch = _kernels.replay_epoch(order=order, steps=steps, **epoch_arguments)
                if settings.target_delta is not None:   # up to the step that diverged
                    _account(history, settings, N, batch,
                             steps - first_step + (bad_batch or n_batches))
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1}, mini-batch {bad_batch}: its step "
                    f"made parameters non-finite; the network keeps those of the last finite "
                    f"step. Try a smaller learning rate than {settings.learning_rate!r}.",
                    epoch + 1, history, bad_batch, before.copy())
            history._record(float(sum_C) / visited if visited else float("nan"), seconds)
            figures = {"cost": history.cost[-1], "seconds": seconds}
            if validate is not None:
                cost, accuracy = validate()
                history.validation_cost.append(cost)
                figures["validation_cost"] = cost
                if accuracy is not None:
                    history.validation_accuracy.append(accuracy)
                    figures["validation_accuracy"] = accuracy
            if callback is not None and callback(epoch + 1, figures) is False:
                break
            if settings.early_stopping is not None:
                if figures["validation_cost"] < best_cost:
                    best_cost, best_theta, waited = figures["validation_cost"], theta.copy(), 0
                    history.best_epoch = epoch + 1
                else:
                    waited += 1
                    if waited >= settings.early_stopping:
                        break
    if best_theta is not None:
        theta[...] = best_theta
    history.state = OptimizerState(settings.rule, *rule.state(),
                                   first_step + history.epochs * n_batches)
    if settings.target_delta is not None:
        _account(history, settings, N, batch, history.epochs * n_batches)
    return history


def _account(history, settings, N, batch, steps):
    """The ε that `steps` private steps spent at the target δ_DP (`bpfast.privacy`): every step
    run, those of an epoch that was interrupted, diverged or undone included — its data were
    used."""
    from . import privacy
    history.delta, history.accountant = settings.target_delta, settings.accountant
    history.noise_multiplier = settings.noise_multiplier
    if not settings.noise_multiplier:
        history.privacy = "no noise (noise_multiplier): these steps are not private"
    elif settings.sampling != "poisson":
        history.privacy = ("shuffled mini-batches: the accountants' analyses assume Poisson "
                           "sampling (sampling='poisson'), so no ε is given")
    else:
        history.epsilon = privacy.epsilon(settings.noise_multiplier, batch / N, steps,
                                          settings.target_delta, accountant=settings.accountant)
        history.privacy = (f"({history.epsilon:.3g}, {settings.target_delta:g})-DP by the "
                           f"{settings.accountant} accountant, {steps} Poisson steps at "
                           f"q = {batch / N:.3g}")
