"""Single calls beside their peers, in one run: per-example gradients and norms, the gradient, the
cost with it, the output.

    python benchmarks/bench_calls.py [--repeat 5] [--only per_example gradient predict]

The peers, each in its strongest honest form: numpy (batched forward and backward passes, σ and
δ formed in place or as one expression, whichever is faster at the workload; the matrix form
with sums and the 2/n folded into δ; per-example gradients by one einsum per layer into a fresh
array; norms as ‖δ‖²(‖a‖² + 1)), PyTorch's `torch.func.vmap(grad)` and Opacus's ghost-clipping
norms (`pip install ".[bench]"`; a missing peer is reported as skipped). The floors and
ceilings of the same run: writing the per-example output alone (np.empty and one fill, or one
fill of a buffer kept), and numpy's large matrix product (GFLOP/s in real FLOPs: the first layer
needs no δ^(0)), which takes its turns with each workload's calls: its GFLOP/s are their ceiling.
Times are the best of --repeat, the implementations taking turns. The run ends with the targets
each figure is held to (`TARGETS`), met or not, so that a run is read the same way every time; a
target whose peer is missing is reported as skipped.
"""
import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np

import bpfast

from _common import (
    GEMM_SIDE,
    best_time,
    gemm_call,
    gemm_rate,
    numpy_sigmoid_forward,
    report_targets,
)

DIGITS = "digits"
PER_EXAMPLE = {
    # name: (sizes, n, dtype)
    "P1": ([784, 30, 10], 1000, "float64"),
    "P2": ([784, 512, 512, 10], 256, "float32"),
    "P3": ([64, 30, 10], 1797, "float64"),
}
GRADIENT = {
    "G1": ([784, 30, 10], 1000, "float64"),
    "G2": ([784, 512, 512, 10], 256, "float32"),
    "G3": ([784, 30, 10], 32, "float64"),
    "G4": ([64, 30, 10], 1797, "float64"),
}
PREDICT = {
    "F1": ([784, 100, 10], 10_000, "float64"),
    "F2": ([784, 512, 512, 10], 256, "float32"),
    "F3": ([784, 100, 10], 32, "float64"),
}

#: What the figures are held to: (workload, what, the bound, whether the figure must be at least
#: the bound — else at most). Ratios are a peer's time over bpfast's (above 1: bpfast ahead) or
#: bpfast's over a floor's or another call's; percentages are of the GEMM ceiling timed in the
#: workload's own turns (`CEILING`).
TARGETS = (
    [(name, what, bound, at_least) for name in PER_EXAMPLE for what, bound, at_least in (
        ("per_example_gradients, × numpy", 1.3, True),
        ("per_example_gradients, × the write floor", 1.4, False),
        ("per_example_gradients, × PyTorch vmap(grad)", 3.0, True),
        ("out=kept, × one fill of it", 1.2, False),
        ("per_example_norms, × Opacus ghost clipping", 2.0, True),
        ("per_example_norms, time × gradient's", 1.0, False))]
    + [(name, what, bound, True) for name in ("P1", "P2") for what, bound in (
        ("per_example_norms, % of the ceiling", 85), ("per_example_norms, × numpy", 1.0))]
    + [("P3", "per_example_norms, × numpy", 2.0, True)]
    + [(name, f"{call}, {what}", bound, True) for name in ("G1", "G2")
       for call in ("gradient", "cost_and_gradient")
       for what, bound in (("% of the ceiling", 85), ("× numpy", 1.1))]
    + [(name, f"{call}, × numpy", 1.3, True) for name in ("G3", "G4")
       for call in ("gradient", "cost_and_gradient")]
    + [(name, what, bound, True) for name in ("F1", "F2")
       for what, bound in (("predict, % of the ceiling", 85), ("predict, × numpy", 1.1))]
    + [("F3", "predict, × numpy", 1.3, True)])

#: The figures of this run held to a target: (workload, what) → value (None: a peer missing).
measured = {}


def held(workload, what, value):
    """Keep a figure that a target names (`TARGETS`) for the summary at the end."""
    measured[workload, what] = value


def targets_summary():
    """Each target of the workloads run (`TARGETS`), its figure in this run and whether it is
    met; then the count and the misses, as every benchmark ends (`report_targets`)."""
    misses, counted = [], 0
    order = [*PER_EXAMPLE, *GRADIENT, *PREDICT]
    print("\nEach target and this run's figure:")
    for workload, what, bound, at_least in sorted(TARGETS, key=lambda t: order.index(t[0])):
        if (workload, what) not in measured:
            continue                      # its table not run (--only)
        value = measured[workload, what]
        bound_shown = f"{'≥' if at_least else '≤'} {bound:g}"
        if value is None:
            result = "skipped (peer missing)"
        else:
            ok = value >= bound if at_least else value <= bound
            counted += 1
            if not ok:
                misses.append(f"{workload}  {what}: {value:.2f} ({bound_shown})")
            result = f"{value:6.2f}  {'met' if ok else 'NOT met'}"
        print(f"  {workload}  {what:<48} {bound_shown:>6}  {result}")
    report_targets("Targets", counted, misses)


def data(sizes, n, dtype):
    if sizes[0] == 64:
        X, labels = bpfast.datasets.load_digits()
        X = bpfast.datasets.scale(X, 0, 16)[:n]
        return X.astype(dtype), bpfast.datasets.one_hot(labels[:n], 10).astype(dtype)
    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0])).astype(dtype)
    return X, np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]


def flops(sizes, n, backward=True, weights_gradient=True):
    """Real FLOPs: 2 per weight per example forward; backward, 2 for the δ of every layer below
    the top but the input's, and 2 more for ∂C/∂w (none for the norms, which never form it)."""
    weights = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    if not backward:
        return 2 * sum(weights) * n
    return (2 * sum(weights) + 2 * sum(weights[1:])
            + (2 * sum(weights) if weights_gradient else 0)) * n


# --- numpy ---------------------------------------------------------------------------------------

def numpy_expression_forward(weights, biases, X):
    """a^(0) = X, …, a^(L), each layer one expression: fewer numpy calls than σ in place
    (`numpy_sigmoid_forward`), which is faster on a few dozen rows and slower on thousands."""
    activations = [X]
    for w, b in zip(weights, biases):
        activations.append(1.0 / (1.0 + np.exp(-(activations[-1] @ w.T + b))))
    return activations


def numpy_deltas(weights, activations, Y, scale, in_place):
    """δ^(l) of every layer (top first reversed to bottom first), the cost's factor folded in;
    each formed in place, or as one expression."""
    a = activations[-1]
    if in_place:
        delta = a - Y
        delta *= scale
        delta *= a
        delta *= 1 - a
    else:
        delta = (scale * (a - Y)) * a * (1 - a)
    deltas = [delta]
    for l in range(len(weights) - 1, 0, -1):
        a = activations[l]
        if in_place:
            delta = delta @ weights[l]
            delta *= a
            delta *= 1 - a
        else:
            delta = (delta @ weights[l]) * a * (1 - a)
        deltas.append(delta)
    return deltas[::-1]


def numpy_passes(weights, biases, X, Y, scale, in_place):
    """The batched forward pass and every δ: σ and δ in place, or one expression each."""
    forward = numpy_sigmoid_forward if in_place else numpy_expression_forward
    activations = forward(weights, biases, X)
    return activations, numpy_deltas(weights, activations, Y, scale, in_place)


def numpy_cost_and_gradient(weights, biases, X, Y, in_place=True):
    """The matrix form: sums, not means, and 2/n folded into δ; the cost too."""
    n = X.shape[0]
    activations, deltas = numpy_passes(weights, biases, X, Y, 2.0 / n, in_place)
    error = activations[-1] - Y
    cost = np.einsum("ij,ij->", error, error) / n
    grads = []
    for l, delta in enumerate(deltas):
        grads.append(delta.T @ activations[l])
        grads.append(delta.sum(axis=0))
    return cost, grads


def numpy_per_example(weights, biases, X, Y, in_place=True):
    """Batched passes, then one einsum per layer into a fresh array."""
    activations, deltas = numpy_passes(weights, biases, X, Y, 2.0, in_place)
    return [(np.einsum("kj,ki->kji", delta, activations[l]), delta)
            for l, delta in enumerate(deltas)]


def numpy_norms(weights, biases, X, Y, in_place=True):
    activations, deltas = numpy_passes(weights, biases, X, Y, 2.0, in_place)
    squares = sum(np.einsum("kj,kj->k", d, d) * (np.einsum("ki,ki->k", activations[l],
                                                           activations[l]) + 1)
                  for l, d in enumerate(deltas))
    return np.sqrt(squares)


#: The label of a numpy peer's second form (σ and δ in place); the table shows the better one.
IN_PLACE = " [in place]"


def both_forms(label, make):
    """numpy's peer `label` timed in both its forms, make(in_place=False) and make(True)."""
    return {label: make(False), label + IN_PLACE: make(True)}


def better_form(best):
    """Each numpy peer's time: the better of its two forms at this workload."""
    for label in [label for label in best if label.endswith(IN_PLACE)]:
        base = label[:-len(IN_PLACE)]
        best[base] = min(best[base], best.pop(label))
    return best


# --- PyTorch and Opacus --------------------------------------------------------------------------

def torch_model(net):
    import torch
    layers = []
    for w, b in zip(net.weights, net.biases):
        linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.from_numpy(w).dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.Sigmoid()]
    return torch.nn.Sequential(*layers)


def make_torch_per_example(net, X, Y):
    try:
        import torch
        from torch.func import functional_call, grad, vmap
    except ImportError:
        return None
    model = torch_model(net)
    params = {k: v.detach() for k, v in model.named_parameters()}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def loss(params, x, y):
        return ((functional_call(model, params, (x.unsqueeze(0),)) - y) ** 2).sum()

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    return lambda: per_example(params, Xt, Yt)


def make_opacus_norms(net, X, Y):
    try:
        import torch
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
    except ImportError:
        return None
    module = GradSampleModuleFastGradientClipping(torch_model(net), loss_reduction="sum",
                                                  max_grad_norm=1.0, use_ghost_clipping=True)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def norms():
        module.zero_grad()
        loss = ((module(Xt) - Yt) ** 2).sum(dim=1)
        with warnings.catch_warnings():
            # Opacus's hooks on a model whose inputs need no gradient: PyTorch says so at every
            # backward pass; the norms are right (`per_example_rows` checks them against
            # bpfast's before timing).
            warnings.filterwarnings("ignore", message="Full backward hook is firing",
                                    category=UserWarning)
            loss.sum().backward()
        return module.get_norm_sample()

    return norms


# --- the tables ----------------------------------------------------------------------------------

#: Seconds between two timings: OpenBLAS's threads (numpy's, and bpfast's own calls on one part)
#: spin for about 0.1 s after a product before they sleep, taking a core from whatever is timed
#: next. Each timing starts after they have settled, so that none pays for the one before.
SETTLE_SECONDS = 0.25


#: The ceiling's call among each workload's: numpy's square matrix product (_common.gemm_call).
CEILING = f"numpy GEMM {GEMM_SIDE:,}² (the ceiling)"


def with_ceiling(calls, dtype):
    """The workload's calls and, taking its turns with them, the ceiling's."""
    return {**calls, CEILING: gemm_call(dtype)}


def ceiling_of(best):
    """The GFLOP/s of the ceiling's best time among a workload's (`with_ceiling`)."""
    return gemm_rate(best[CEILING])


def take_turns(calls, repeat):
    """The best time of each call, the calls taking turns `repeat` times."""
    best = {name: float("inf") for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            if call is not None:
                time.sleep(SETTLE_SECONDS)
                best[name] = min(best[name], best_time(call, repeat=1, min_seconds=0.05))
    return {name: (None if call is None else best[name]) for name, call in calls.items()}


def report(title, rows):
    print(f"\n{title}")
    for name, seconds, note in rows:
        shown = "skipped (not installed)" if seconds is None else f"{seconds * 1e3:10.3f} ms"
        print(f"  {name:<44} {shown:>24}  {note}")


def per_example_table(repeat):
    for name, (sizes, n, dtype) in PER_EXAMPLE.items():
        per_example_rows(name, sizes, n, dtype, repeat)


def per_example_rows(name, sizes, n, dtype, repeat):
    net = bpfast.Network(sizes, dtype=dtype, seed=0)
    X, Y = data(sizes, n, dtype)
    w, b = [x.copy() for x in net.weights], [x.copy() for x in net.biases]
    P = net.n_params
    buffer = np.empty((n, P), dtype)
    check = net.per_example_gradients(X, Y).vector()
    ours_norms = net.per_example_norms(X, Y)
    theirs = numpy_per_example(w, b, X, Y)
    first = np.concatenate([theirs[0][0].reshape(n, -1), theirs[0][1]], axis=1)
    assert np.allclose(check[:, :first.shape[1]], first, rtol=1e-4, atol=1e-6)
    assert np.allclose(ours_norms, numpy_norms(w, b, X, Y), rtol=1e-4)
    opacus_norms = make_opacus_norms(net, X, Y)
    if opacus_norms is not None:
        assert np.allclose(opacus_norms().detach().numpy(), ours_norms, rtol=1e-4)
    calls = {
        "bpfast per_example_gradients": lambda: net.per_example_gradients(X, Y),
        "bpfast per_example_gradients(out=kept)": lambda: net.per_example_gradients(
            X, Y, out=buffer),
        **both_forms("numpy batched + einsum",
                     lambda in_place: lambda: numpy_per_example(w, b, X, Y, in_place)),
        "PyTorch vmap(grad)": make_torch_per_example(net, X, Y),
        "write floor: np.empty + fill": lambda: np.empty((n, P), dtype).fill(0),
        "write floor, kept: fill": lambda: buffer.fill(0),
        "bpfast per_example_norms": lambda: net.per_example_norms(X, Y),
        **both_forms("numpy norms ‖δ‖²(‖a‖² + 1)",
                     lambda in_place: lambda: numpy_norms(w, b, X, Y, in_place)),
        "Opacus ghost-clipping norms": opacus_norms,
        "bpfast gradient (same batch)": lambda: net.gradient(X, Y),
    }
    best = better_form(take_turns(with_ceiling(calls, dtype), repeat))
    ceiling = ceiling_of(best)
    ours = best["bpfast per_example_gradients"]
    rows = []
    for label, seconds in best.items():
        note = ""
        if seconds is not None and label.startswith(("numpy batched", "PyTorch")):
            note = f"bpfast {seconds / ours:.2f}× faster"
        elif label == "write floor: np.empty + fill":
            note = f"bpfast at {ours / seconds:.2f}× the floor"
        elif label == "write floor, kept: fill":
            note = f"out=kept at {best['bpfast per_example_gradients(out=kept)'] / seconds:.2f}×"
        elif label.startswith(("numpy norms", "Opacus")) and seconds is not None:
            note = f"bpfast norms {seconds / best['bpfast per_example_norms']:.2f}× faster"
        elif label == "bpfast per_example_norms":
            gflops = flops(sizes, n, weights_gradient=False) / seconds / 1e9
            note = f"{gflops:.1f} GFLOP/s, {100 * gflops / ceiling:.0f}% of the ceiling"
        elif label == CEILING:
            note = f"{ceiling:.1f} GFLOP/s"
        rows.append((label, seconds, note))
    report(f"{name}: {sizes} n={n} {dtype}, P = {P:,}", rows)
    norms = best["bpfast per_example_norms"]
    torch_time, opacus_time = best["PyTorch vmap(grad)"], best["Opacus ghost-clipping norms"]
    held(name, "per_example_gradients, × numpy", best["numpy batched + einsum"] / ours)
    held(name, "per_example_gradients, × the write floor",
         ours / best["write floor: np.empty + fill"])
    held(name, "per_example_gradients, × PyTorch vmap(grad)",
         None if torch_time is None else torch_time / ours)
    held(name, "out=kept, × one fill of it",
         best["bpfast per_example_gradients(out=kept)"] / best["write floor, kept: fill"])
    held(name, "per_example_norms, × Opacus ghost clipping",
         None if opacus_time is None else opacus_time / norms)
    held(name, "per_example_norms, time × gradient's", norms / best["bpfast gradient (same batch)"])
    held(name, "per_example_norms, % of the ceiling",
         100 * flops(sizes, n, weights_gradient=False) / norms / 1e9 / ceiling)
    held(name, "per_example_norms, × numpy", best["numpy norms ‖δ‖²(‖a‖² + 1)"] / norms)


def gradient_table(repeat):
    for name, (sizes, n, dtype) in GRADIENT.items():
        gradient_rows(name, sizes, n, dtype, repeat)


def gradient_rows(name, sizes, n, dtype, repeat):
    net = bpfast.Network(sizes, dtype=dtype, seed=0)
    X, Y = data(sizes, n, dtype)
    w, b = [x.copy() for x in net.weights], [x.copy() for x in net.biases]
    cost, g = net.cost_and_gradient(X, Y)
    their_cost, theirs = numpy_cost_and_gradient(w, b, X, Y)
    assert np.isclose(cost, their_cost, rtol=1e-4)
    assert np.allclose(g.vector(), np.concatenate([t.ravel() for t in theirs]),
                       rtol=1e-3, atol=1e-6)
    calls = {
        "bpfast gradient": lambda: net.gradient(X, Y),
        "bpfast cost_and_gradient": lambda: net.cost_and_gradient(X, Y),
        **both_forms("numpy matrix form (cost too)",
                     lambda in_place: lambda: numpy_cost_and_gradient(w, b, X, Y, in_place)),
    }
    best = better_form(take_turns(with_ceiling(calls, dtype), repeat))
    ceiling = ceiling_of(best)
    rows = []
    for label, seconds in best.items():
        gflops = gemm_rate(seconds) if label == CEILING else flops(sizes, n) / seconds / 1e9
        note = f"{gflops:.1f} GFLOP/s ({100 * gflops / ceiling:.0f}%)"
        if label.startswith("bpfast"):
            numpy_ratio = best["numpy matrix form (cost too)"] / seconds
            note += f", {numpy_ratio:.2f}× numpy"
            call = label.removeprefix("bpfast ")
            held(name, f"{call}, % of the ceiling", 100 * gflops / ceiling)
            held(name, f"{call}, × numpy", numpy_ratio)
        rows.append((label, seconds, note))
    report(f"{name}: {sizes} n={n} {dtype}", rows)


def predict_table(repeat):
    for name, (sizes, n, dtype) in PREDICT.items():
        predict_rows(name, sizes, n, dtype, repeat)


def predict_rows(name, sizes, n, dtype, repeat):
    net = bpfast.Network(sizes, dtype=dtype, seed=0)
    X, _ = data(sizes, n, dtype)
    w, b = [x.copy() for x in net.weights], [x.copy() for x in net.biases]
    assert np.allclose(net.predict(X), numpy_sigmoid_forward(w, b, X)[-1], rtol=1e-4, atol=1e-6)
    calls = {"bpfast predict": lambda: net.predict(X),
             **both_forms("numpy forward", lambda in_place: lambda: (
                 numpy_sigmoid_forward if in_place else numpy_expression_forward)(w, b, X)[-1])}
    best = better_form(take_turns(with_ceiling(calls, dtype), repeat))
    ceiling = ceiling_of(best)
    rows = []
    for label, seconds in best.items():
        gflops = (gemm_rate(seconds) if label == CEILING
                  else flops(sizes, n, backward=False) / seconds / 1e9)
        note = f"{gflops:.1f} GFLOP/s ({100 * gflops / ceiling:.0f}%)"
        if label.startswith("bpfast"):
            note += f", {best['numpy forward'] / seconds:.2f}× numpy"
            held(name, "predict, % of the ceiling", 100 * gflops / ceiling)
            held(name, "predict, × numpy", best["numpy forward"] / seconds)
        rows.append((label, seconds, note))
    report(f"{name}: {sizes} n={n} {dtype}", rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="+", default=["per_example", "gradient", "predict"],
                        choices=["per_example", "gradient", "predict"])
    args = parser.parse_args()
    versions = [f"numpy {np.__version__}"]
    for module in ("torch", "opacus"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} missing")
    print(f"bpfast {bpfast.__version__} single calls, {datetime.date.today()}, "
          f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores; {', '.join(versions)}")
    print("numpy GEMM ceiling: its square product, timed in each workload's turns (below)")
    if "per_example" in args.only:
        per_example_table(args.repeat)
    if "gradient" in args.only:
        gradient_table(args.repeat)
    if "predict" in args.only:
        predict_table(args.repeat)
    targets_summary()


if __name__ == "__main__":
    main()
