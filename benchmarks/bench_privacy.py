"""Seconds per epoch of private training (DP-SGD): bpfast beside Opacus and numpy, in one run.

    python benchmarks/bench_privacy.py [--workloads P1 P2] [--repeat 3]

Each workload trains sigmoid networks on the quadratic cost with per-example clipping to R = 1
and noise ν = 1 on every step's sum, the mini-batches drawn by Poisson sampling (each example
joins a step with probability B / N, round(N / B) steps an epoch), float32 throughout:

- bpfast: `fit(clip_norm=R, noise_multiplier=ν)`, beside its own plain `fit` (no privacy) and
  `fit(clip_norm=R)` (clipping alone), timed over several epochs a call (3 on P1, 20 on P2's
  millisecond epochs);
- numpy, one backward pass: the per-example norms from δ_k and a_k (‖∂C_k/∂w^(l)‖² =
  ‖δ_k^(l)‖² ‖a_k^(l−1)‖²), the clipped sums as one product (c ⊙ δ^(l))ᵀ a^(l−1) per layer, the
  step η/B folded into c, the noise drawn by numpy's generator into buffers made once;
- Opacus 1.6, as its documentation writes the loop: `GradSampleModule` + `DPOptimizer` (the
  per-example gradients materialised), and ghost clipping (`GradSampleModuleFastGradientClipping`
  + `DPOptimizerFastGradientClipping`: norms without per-example gradients, a second backward
  pass), each step's rows drawn as bpfast draws them (no DataLoader: its per-item collation
  would only slow Opacus down);
- PyTorch's plain SGD, no privacy, for scale.

The implementations take turns; each row is the best of --repeat. Opacus's default mode takes
seconds per epoch: a slice of the epoch is timed and scaled up. Peers whose library is missing
(`pip install ".[bench]"`) are reported as skipped.
"""
import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np

import bpfast
from bpfast.training import poisson_steps

from _common import numpy_sigmoid_forward

# Ghost clipping's hooks fire on outputs of layers whose inputs need no gradient, as intended
# here; PyTorch warns at every backward pass.
warnings.filterwarnings("ignore", message="Full backward hook is firing")

WORKLOADS = {
    # name: (sizes, expected batch size B, examples N, epochs per timing of bpfast's fit)
    "P1": ([784, 128, 10], 256, 60_000, 3),
    "P2": ([64, 30, 10], 64, 17_970, 20),         # the 1,797 digits, 10 times
}
R, NU, ETA = 1.0, 1.0, 0.5
SETTLE_SECONDS = 0.25
# Opacus's default mode materialises B per-example gradients of P numbers a step: time a slice.
OPACUS_DEFAULT_STEPS = 25


def workload_data(sizes, N, seed=0):
    """P2: the bundled digits, scaled to [0, 1] and repeated to N examples; P1: random inputs in
    [0, 1) and one-hot targets, shaped like scaled MNIST."""
    if sizes[0] == 64:
        X, labels = bpfast.datasets.load_digits()
        repeats = -(-N // len(X))
        X = np.tile(bpfast.datasets.scale(X, 0, 16), (repeats, 1))[:N]
        Y = np.tile(bpfast.datasets.one_hot(labels, 10), (repeats, 1))[:N]
        return X.astype(np.float32), Y.astype(np.float32)
    rng = np.random.default_rng(seed)
    X = rng.random((N, sizes[0]), dtype=np.float32)
    Y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], N)]
    return X, Y


def epoch_steps(rng, N, B):
    """One epoch's Poisson steps, as lists of rows (bpfast's own draw, shared by the peers)."""
    order, offsets = poisson_steps(rng, N, B)
    return [order[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


# --- numpy, one backward pass ---------------------------------------------------------------------

def make_numpy_private_epoch(weights, biases, seed=0):
    """DP-SGD in numpy without per-example gradients; the parameters are trained in place."""
    rng = np.random.default_rng(seed)
    noise_w = [np.empty_like(w) for w in weights]
    noise_b = [np.empty_like(b) for b in biases]

    def epoch(X, Y, steps, B):
        for rows in steps:
            activations = numpy_sigmoid_forward(weights, biases, X[rows])
            a = activations[-1]
            delta = a - Y[rows]
            delta *= 2
            delta *= a
            delta *= 1 - a
            deltas, squares = [None] * len(weights), np.zeros(len(rows), np.float32)
            for l in range(len(weights) - 1, -1, -1):
                deltas[l] = delta
                a_below = activations[l]
                squares += np.einsum("kj,kj->k", delta, delta) * (
                    np.einsum("ki,ki->k", a_below, a_below) + 1)
                if l > 0:
                    delta = delta @ weights[l]
                    delta *= a_below
                    delta *= 1 - a_below
            # c_k = min(1, R / ‖g_k‖), with the step's η / B folded in.
            scale = (ETA / B) * np.minimum(1, R / np.maximum(np.sqrt(squares), 1e-30))
            for l in range(len(weights)):
                scaled = deltas[l] * scale[:, None]
                weights[l] -= scaled.T @ activations[l]
                biases[l] -= scaled.sum(axis=0)
                for theta, noise in ((weights[l], noise_w[l]), (biases[l], noise_b[l])):
                    rng.standard_normal(dtype=np.float32, out=noise)
                    noise *= ETA * NU * R / B
                    theta -= noise

    return epoch


# --- Opacus and PyTorch ---------------------------------------------------------------------------

def torch_network(sizes, weights, biases):
    import torch
    layers = []
    for w, b in zip(weights, biases):
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.Sigmoid()]
    return torch.nn.Sequential(*layers)


def make_torch_epochs(sizes, weights, biases, X, Y, B):
    """{name: epoch(steps) or None} for PyTorch's plain SGD and Opacus's two modes."""
    try:
        import torch
    except ImportError:
        return {"PyTorch SGD, no privacy": None, "Opacus ghost clipping": None,
                "Opacus default (per-example gradients)": None}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    class QuadraticCost(torch.nn.Module):
        """C_k = Σ_j (a_j − y_j)², reduced as Opacus's criterion wrapper asks."""
        reduction = "mean"

        def forward(self, a, y):
            per_example = ((a - y) ** 2).sum(dim=1)
            if self.reduction == "none":
                return per_example
            return per_example.mean() if self.reduction == "mean" else per_example.sum()

    def loop(model, optimizer, cost):
        """An epoch of the steps given, as Opacus's documentation writes its training loop."""
        def epoch(steps):
            for rows in steps:
                rows = torch.from_numpy(rows)
                optimizer.zero_grad()
                cost(model(Xt[rows]), Yt[rows]).backward()
                optimizer.step()
        return epoch

    def plain():
        model = torch_network(sizes, weights, biases)
        return loop(model, torch.optim.SGD(model.parameters(), lr=ETA), QuadraticCost())

    epochs = {"PyTorch SGD, no privacy": plain()}
    try:
        from opacus import GradSampleModule
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
        from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
        from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
    except ImportError:
        epochs["Opacus ghost clipping"] = None
        epochs["Opacus default (per-example gradients)"] = None
        return epochs

    def ghost():
        model = GradSampleModuleFastGradientClipping(
            torch_network(sizes, weights, biases), max_grad_norm=R, use_ghost_clipping=True,
            loss_reduction="mean")
        optimizer = DPOptimizerFastGradientClipping(
            torch.optim.SGD(model.parameters(), lr=ETA), noise_multiplier=NU, max_grad_norm=R,
            expected_batch_size=B, loss_reduction="mean")
        return loop(model, optimizer,
                    DPLossFastGradientClipping(model, optimizer, QuadraticCost(), "mean"))

    def default():
        model = GradSampleModule(torch_network(sizes, weights, biases))
        optimizer = DPOptimizer(torch.optim.SGD(model.parameters(), lr=ETA),
                                noise_multiplier=NU, max_grad_norm=R, expected_batch_size=B,
                                loss_reduction="mean")
        return loop(model, optimizer, QuadraticCost())

    epochs["Opacus ghost clipping"] = ghost()
    epochs["Opacus default (per-example gradients)"] = default()
    return epochs


# --- the table ------------------------------------------------------------------------------------

def measure(name, repeat):
    sizes, B, N, fit_epochs = WORKLOADS[name]
    X, Y = workload_data(sizes, N)
    net = bpfast.Network(sizes, dtype="float32", seed=0)
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    draws = np.random.default_rng(1)
    steps = epoch_steps(draws, N, B)

    def fit(**private):
        return lambda: net.fit(X, Y, epochs=fit_epochs, batch_size=B, learning_rate=ETA, seed=0,
                               **private)

    runs = {
        "bpfast fit, private (clip R, noise ν, Poisson)":
            (fit(clip_norm=R, noise_multiplier=NU), fit_epochs),
        "bpfast fit, clipping alone": (fit(clip_norm=R), fit_epochs),
        "bpfast fit, no privacy": (fit(), fit_epochs),
    }
    numpy_epoch = make_numpy_private_epoch([w.copy() for w in weights],
                                           [b.copy() for b in biases])
    runs["numpy, one backward pass"] = (lambda: numpy_epoch(X, Y, steps, B), 1)
    slow = {}
    for label, epoch in make_torch_epochs(sizes, weights, biases, X, Y, B).items():
        if epoch is None:
            runs[label] = None
        elif label.startswith("Opacus default"):
            part = steps[:OPACUS_DEFAULT_STEPS]
            runs[label] = (lambda epoch=epoch, part=part: epoch(part), 1)
            slow[label] = len(steps) / len(part)
        else:
            runs[label] = (lambda epoch=epoch: epoch(steps), 1)

    best = {label: float("inf") for label in runs}
    for _ in range(repeat):
        for label, run in runs.items():
            if run is None:
                continue
            call, epochs = run
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            call()
            best[label] = min(best[label], (time.perf_counter() - start) / epochs)
    for label, factor in slow.items():
        best[label] *= factor
    return sizes, B, N, {label: (None if runs[label] is None else best[label])
                         for label in runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import torch
        torch_version = torch.__version__
        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch_version = "not installed"
    try:
        import opacus
        opacus_version = opacus.__version__
    except ImportError:
        opacus_version = "not installed"
    print(f"bpfast {bpfast.__version__}, numpy {np.__version__}, torch {torch_version}, "
          f"opacus {opacus_version}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {datetime.date.today()}")
    print(f"DP-SGD: R = {R}, ν = {NU}, η = {ETA}, Poisson sampling, float32, sigmoid, quadratic "
          f"cost; best of {args.repeat}, the implementations taking turns")
    private = "bpfast fit, private (clip R, noise ν, Poisson)"
    for name in args.workloads:
        sizes, B, N, best = measure(name, args.repeat)
        print(f"\n{name}: {sizes}, expected batch {B}, {N:,} examples (s/epoch; bpfast private's "
              "speed-up over each)")
        for label, seconds in best.items():
            if seconds is None:
                print(f"  {label:<48} {'skipped (not installed)':>12}")
                continue
            ratio = seconds / best[private]
            print(f"  {label:<48} {seconds:9.4f}   {ratio:7.2f}×")
        print(f"  private epoch / plain epoch: "
              f"{best[private] / best['bpfast fit, no privacy']:.2f}")


if __name__ == "__main__":
    main()
