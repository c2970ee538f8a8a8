"""The command line: ``bpfast train``, ``bpfast evaluate``, ``bpfast check``, ``bpfast explain``.

Also reached as ``python -m bpfast``. Bad arguments end with a one-line error and exit status 2,
never a traceback.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from . import __version__, crosscheck, datasets, plots, reference
from ._validation import check_sizes
from .activations import ACTIVATIONS
from .chain import Chain
from .costs import COSTS
from .demo import main as demo
from .network import INITS, Network, load
from .training import OPTIMIZERS


class UsageError(Exception):
    """A bad argument found after parsing: reported on one line, exit status 2."""


# --- data ----------------------------------------------------------------------------------------

def _load_data(spec, test_fraction, seed):
    """``(X_train, Y_train, X_test, Y_test, labels_test)`` for --data; pixels scaled to [0, 1]."""
    if spec == "digits":
        X, labels = datasets.load_digits()
        X = datasets.scale(X, 0, 16)
    elif spec.startswith("mnist:"):
        try:
            (X, labels), (X_test, labels_test) = datasets.load_mnist(spec[len("mnist:"):])
        except (OSError, ValueError) as error:
            raise UsageError(str(error)) from None
        X, X_test = datasets.scale(X, 0, 255), datasets.scale(X_test, 0, 255)
        return (X, datasets.one_hot(labels, 10), X_test, datasets.one_hot(labels_test, 10),
                labels_test)
    elif spec.endswith(".npz") or spec.endswith(".csv"):
        try:
            X, labels = (datasets.load_npz(spec) if spec.endswith(".npz")
                         else datasets.load_csv(spec))
        except (OSError, ValueError) as error:
            raise UsageError(str(error)) from None
    else:
        raise UsageError(f"--data must be digits, mnist:DIR, FILE.npz or FILE.csv, got {spec!r}.")
    try:
        n_classes = int(np.max(labels)) + 1
        Y = datasets.one_hot(labels, n_classes)
        X_train, X_test, Y_train, Y_test = datasets.train_test_split(
            X, Y, test_size=test_fraction, seed=seed)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--data {spec}: {error}") from None
    return X_train, Y_train, X_test, Y_test, Y_test.argmax(axis=1)


# --- train ---------------------------------------------------------------------------------------

def _progress(epochs, interactive):
    """``(show, advance, close)``: tqdm's bar on a terminal; in a log (CI), a plain line about
    every tenth epoch instead, with no carriage returns."""
    if interactive:
        bar = tqdm(total=epochs, unit="epoch", file=sys.stderr)
        return bar.set_postfix_str, bar.update, bar.close
    every = max(1, epochs // 10)
    epoch = 0

    def show(text):
        nonlocal epoch
        epoch += 1
        if epoch % every == 0 or epoch == epochs:
            print(f"epoch {epoch:>4}/{epochs}  {text}", flush=True)

    return show, lambda n: None, lambda: None


def _parse_sizes(text):
    try:
        sizes = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--sizes must be integers such as 64,30,10, got {text!r}.") from None
    return sizes


def train(args):
    if args.plot or args.plot_weights:
        try:
            plots.require_matplotlib()
        except ImportError as error:
            raise UsageError(str(error)) from None
    X_train, Y_train, X_test, Y_test, _ = _load_data(args.data, args.test_fraction, args.seed)
    sizes = (_parse_sizes(args.sizes) if args.sizes
             else [X_train.shape[1], 30, Y_train.shape[1]])
    if sizes[0] != X_train.shape[1] or sizes[-1] != Y_train.shape[1]:
        raise UsageError(f"--sizes {sizes} do not fit the data: it has {X_train.shape[1]} inputs "
                         f"and {Y_train.shape[1]} classes.")
    try:
        check_sizes(sizes)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--sizes: {error}") from None
    try:
        net = Network(sizes, activation=args.activation,
                      output_activation=args.output_activation, cost=args.cost,
                      dtype=args.dtype, init=args.init, seed=args.seed)
    except ValueError as error:
        raise UsageError(str(error).replace("output_activation=", "--output-activation ")
                         .replace("activation=", "--activation ")) from None
    if args.nesterov and not args.momentum:
        raise UsageError("--nesterov needs --momentum > 0.")
    if args.optimizer == "adam" and args.momentum:
        raise UsageError("--momentum is for --optimizer sgd; Adam has its own.")
    learning_rate = args.learning_rate or (1e-3 if args.optimizer == "adam" else 3.0)
    rule = dict(optimizer=args.optimizer, momentum=args.momentum, nesterov=args.nesterov,
                l2=args.l2)
    print(f"bpfast {__version__}: {net} on {args.data}: {len(X_train)} training and "
          f"{len(X_test)} test examples")
    steps = ("Adam" if args.optimizer == "adam" else
             f"mini-batch gradient descent{' with Nesterov momentum' if args.nesterov else ''}"
             f"{' with momentum' if args.momentum and not args.nesterov else ''}")
    extras = (f", momentum {args.momentum}" if args.momentum else "") + (
        f", L2 {args.l2}" if args.l2 else "")
    print(f"{steps}: {args.epochs} epochs, batch size {args.batch_size}, learning rate "
          f"{learning_rate}{extras}")
    curves = {"train cost": [], "test cost": [], "train accuracy": [], "test accuracy": []}
    show, advance, close = _progress(args.epochs, sys.stderr.isatty())

    def after_epoch(epoch, figures):
        # One forward pass per data set gives both its cost and its accuracy.
        train_cost, train_accuracy = net.evaluate(X_train, Y_train)
        show(f"cost {figures['cost']:.4f}  train accuracy {train_accuracy:.1%}")
        advance(1)
        if args.plot:
            test_cost, test_accuracy = net.evaluate(X_test, Y_test)
            curves["train cost"].append(train_cost)
            curves["test cost"].append(test_cost)
            curves["train accuracy"].append(train_accuracy)
            curves["test accuracy"].append(test_accuracy)

    start = time.perf_counter()
    try:
        net.fit(X_train, Y_train, epochs=args.epochs, batch_size=args.batch_size,
                learning_rate=learning_rate, seed=args.seed, n_threads=args.threads,
                callback=after_epoch, **rule)
    finally:
        close()
    seconds = time.perf_counter() - start
    test_cost, test_accuracy = net.evaluate(X_test, Y_test)
    print(f"test: cost {test_cost:.4f}, accuracy {test_accuracy:.2%} ({seconds:.2f} s of "
          "training)")
    if args.save:
        net.save(args.save)
        print(f"saved to {args.save}")
    title = f"{list(net.sizes)} on {args.data}"
    if args.plot:
        plots.learning_curves(curves, args.plot, title=title)
        print(f"learning curves drawn in {args.plot}")
    if args.plot_weights:
        plots.first_layer_weights(net.weights[0], args.plot_weights,
                                  title=f"w(1) of {title}: what each hidden neuron looks for")
        print(f"first-layer weights drawn in {args.plot_weights}")
    return 0


# --- evaluate ------------------------------------------------------------------------------------

def evaluate(args):
    try:
        net = load(args.model)
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    _, _, X_test, Y_test, labels = _load_data(args.data, args.test_fraction, args.seed)
    if X_test.shape[1] != net.sizes[0] or Y_test.shape[1] != net.sizes[-1]:
        raise UsageError(f"{args.model} has sizes {list(net.sizes)}, which do not fit "
                         f"{args.data} ({X_test.shape[1]} inputs, {Y_test.shape[1]} classes).")
    predicted = net.predict(X_test).argmax(axis=1)
    n = Y_test.shape[1]
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    print(f"{net} on {len(X_test)} test examples of {args.data}")
    print(f"cost {net.cost(X_test, Y_test):.4f}, accuracy {np.mean(predicted == labels):.2%}")
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(4, len(str(confusion.max())) + 1)
    print("     " + "".join(f"{j:>{width}}" for j in range(n)))
    for i in range(n):
        print(f"{i:>4} " + "".join(f"{confusion[i, j]:>{width}}" for j in range(n)))
    return 0


# --- check ---------------------------------------------------------------------------------------

def check(args):
    cases = []
    rng = np.random.default_rng(args.seed)
    for sizes in ([1, 1], [2, 3, 1], [8, 5, 5, 4], [64, 30, 10], [5, 1, 7, 1, 3, 2]):
        for dtype in ("float64", "float32"):
            net = Network(sizes, dtype=dtype, seed=int(rng.integers(2**31)))
            cases.append((f"random {sizes} {dtype}", net))
    for hidden, output, cost in (("tanh", "identity", "quadratic"),
                                 ("relu", "softmax", "cross_entropy"),
                                 ("tanh", "sigmoid", "cross_entropy")):
        net = Network([8, 6, 4], activation=hidden, output_activation=output, cost=cost,
                      seed=int(rng.integers(2**31)))
        cases.append((f"{hidden}/{output}/{cost.replace('_', '-')}", net))
    if args.model:
        try:
            cases.append((args.model, load(args.model)))
        except (OSError, ValueError) as error:
            raise UsageError(str(error)) from None
    header = (f"{'network':<34} {'C':>9} {'∇C ref':>9} {'∇C fd':>9} {'ref↔fd':>9} "
              f"{'at kinks':>9}  verdict")
    print("kernels ↔ reference: largest difference relative to the largest entry (≤ 1e-12 in "
          "float64, 1e-4 in float32);")
    print("↔ finite differences: worst entry's difference over its own bound (≤ 1); parameters "
          "whose finite differences cross a ReLU kink are skipped")
    print(header)
    failures = 0
    for name, net in cases:
        X = rng.random((8, net.sizes[0]))
        Y = rng.random((8, net.sizes[-1]))
        report = crosscheck.check(net, X, Y, fd_params=args.fd_params, seed=args.seed)
        values = [difference for _, difference, _ in report.rows]
        failures += not report.ok
        print(f"{name:<34} " + " ".join(f"{v:9.1e}" for v in values) +
              f" {len(report.skipped_at_kinks):>9}  {'ok' if report.ok else 'FAIL'}")
    print("all within tolerance" if not failures else f"{failures} network(s) over tolerance")
    return 1 if failures else 0


# --- explain -------------------------------------------------------------------------------------

def explain(args):
    cost = args.cost
    try:
        c = Chain(args.w, args.b, args.a_prev, args.y, cost=cost)
    except ValueError as error:
        raise UsageError(f"--y: {error}") from None
    print("The slides' chain: one neuron per layer, the last two layers"
          + (", with the cross-entropy cost." if cost == "cross_entropy" else "."))
    print(f"w = {c.w:g}, b = {c.b:g}, a(L-1) = {c.a_prev:g}, y = {c.y:g}\n")
    print(c)
    h = 1e-6

    def C0(w, b):
        return Chain(w, b, c.a_prev, c.y, cost=cost).C0

    fd_w = (C0(c.w + h, c.b) - C0(c.w - h, c.b)) / (2 * h)
    fd_b = (C0(c.w, c.b + h) - C0(c.w, c.b - h)) / (2 * h)
    print(f"\nconfirmed by finite differences, (C0(w + h) − C0(w − h)) / 2h with h = {h:g}:")
    print(f"  ∂C0/∂w ≈ {fd_w:.9f}   (chain rule: {c.dC0_dw:.9f})")
    print(f"  ∂C0/∂b ≈ {fd_b:.9f}   (chain rule: {c.dC0_db:.9f})")

    # The sum over j: neuron k = 0 of layer L−1 feeds the two neurons j = 0, 1 of layer L.
    w = [[c.w], [-0.8]]
    b = [c.b, 0.3]
    y = [c.y, 0.0]
    a_k = c.a_prev
    z, a = reference.forward([w], [b], [a_k])
    print("\nThe sum over j: neuron k of layer L-1 feeds two neurons j = 0, 1 of layer L")
    print(f"(w_0k = {w[0][0]:g}, w_1k = {w[1][0]:g}, b = {b}, y = {y}, a_k(L-1) = {a_k:g}):")
    total = 0.0
    for j in range(2):
        if cost == "quadratic":
            term = w[j][0] * reference.sigmoid_prime(z[0][j]) * 2 * (a[1][j] - y[j])
            print(f"  j = {j}: w_{j}k · σ'(z_{j}) · 2(a_{j} − y_{j}) = {w[j][0]:g} · "
                  f"{reference.sigmoid_prime(z[0][j]):.6f} · {2 * (a[1][j] - y[j]):.6f} = "
                  f"{term:.6f}")
        else:
            term = w[j][0] * (a[1][j] - y[j])
            print(f"  j = {j}: w_{j}k · (a_{j} − y_{j}) = {w[j][0]:g} · {a[1][j] - y[j]:.6f} = "
                  f"{term:.6f}")
        total += term

    def C0_of_a_k(a_prev):
        return reference.cost([w], [b], [a_prev], y, cost=cost)

    fd = (C0_of_a_k(a_k + h) - C0_of_a_k(a_k - h)) / (2 * h)
    print(f"  ∂C0/∂a_k(L-1) = Σ_j … = {total:.9f}   (finite differences: {fd:.9f})")
    return 0


# --- the parser ----------------------------------------------------------------------------------

def _parsed(convert, accept, requirement):
    """An argparse type: convert(text), which must pass accept(value), else `requirement`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value
    return parse


_positive_int = _parsed(int, lambda value: value >= 1, "a positive integer")
_seed = _parsed(int, lambda value: value >= 0, "an integer ≥ 0")
_positive_float = _parsed(float, lambda value: np.isfinite(value) and value > 0,
                          "a finite number > 0")
_fraction = _parsed(float, lambda value: 0 < value < 1, "a fraction in (0, 1)")
_momentum = _parsed(float, lambda value: 0 <= value < 1, "a number in [0, 1)")
_non_negative_float = _parsed(float, lambda value: np.isfinite(value) and value >= 0,
                              "a finite number ≥ 0")
_finite = _parsed(float, np.isfinite, "a finite number")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bpfast", description="Backpropagation as the slides derive it, and fast.")
    parser.add_argument("--version", action="version", version=f"bpfast {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data_help = ("digits (bundled, the default), mnist:DIR (the four IDX files), FILE.npz "
                 "(arrays X, y) or FILE.csv (label in the last column)")
    p = commands.add_parser("train", help="train a network by mini-batch gradient descent",
                            description="Train a sigmoid network with the quadratic cost by "
                            "mini-batch gradient descent, then report its test accuracy.")
    p.add_argument("--data", default="digits", help=data_help)
    p.add_argument("--sizes", help="layer widths, e.g. 64,30,10 (default: inputs,30,classes)")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--batch-size", type=_positive_int, default=10)
    p.add_argument("--learning-rate", type=_positive_float, default=None,
                   help="η (default: 3.0, or 0.001 with --optimizer adam)")
    p.add_argument("--activation", choices=list(ACTIVATIONS[:4]), default="sigmoid",
                   help="of the hidden layers, and of the output unless --output-activation")
    p.add_argument("--output-activation", choices=list(ACTIVATIONS), default=None)
    p.add_argument("--cost", choices=list(COSTS), default="quadratic")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd")
    p.add_argument("--momentum", type=_momentum, default=0.0, help="μ in [0, 1), with sgd")
    p.add_argument("--nesterov", action="store_true", help="Nesterov's momentum")
    p.add_argument("--l2", type=_non_negative_float, default=0.0,
                   help="λ: the cost gains (λ/2) Σ‖w‖²")
    p.add_argument("--seed", type=_seed, default=0, help="initialisation, order and split")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--init", choices=list(INITS), default="scaled_normal",
                   help="how the weights are drawn (default: N(0, 1/n_in))")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads sharing each mini-batch (default: all cores)")
    p.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="held-out share of the data (not for mnist, which has its test set)")
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained network there")
    p.add_argument("--plot", metavar="CURVES.png",
                   help="draw training and test cost and accuracy per epoch (needs matplotlib)")
    p.add_argument("--plot-weights", metavar="WEIGHTS.png",
                   help="draw each first-layer neuron's weights in the input's shape")
    p.set_defaults(run=train)

    p = commands.add_parser("evaluate", help="cost, accuracy and confusion matrix of a model",
                            description="Evaluate a saved model on the test part of a data set.")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--data", default="digits", help=data_help)
    p.add_argument("--seed", type=_seed, default=0, help="the split, as given to train")
    p.add_argument("--test-fraction", type=_fraction, default=0.2)
    p.set_defaults(run=evaluate)

    p = commands.add_parser("check", help="kernels ↔ reference ↔ finite differences",
                            description="Run bpfast.check on random networks of several shapes "
                            "(and on a saved model); exit status 1 if any difference is over "
                            "tolerance.")
    p.add_argument("--model", metavar="MODEL.npz")
    p.add_argument("--fd-params", type=_positive_int, default=200,
                   help="parameters per network checked by finite differences")
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(run=check)

    p = commands.add_parser("explain", help="walk the slides' chain rule with numbers",
                            description="The slides' single-neuron chain with numbers: z, a, C0, "
                            "the three links and their products, then the sum over j.")
    p.add_argument("--w", type=_finite, default=0.5, help="the weight w(L)")
    p.add_argument("--b", type=_finite, default=-0.2, help="the bias b(L)")
    p.add_argument("--a-prev", type=_finite, default=0.4, help="the activation a(L-1)")
    p.add_argument("--y", type=_finite, default=1.0, help="the target y")
    p.add_argument("--cost", choices=list(COSTS), default="quadratic",
                   help="the slides' quadratic cost, or cross-entropy (y in [0, 1])")
    p.set_defaults(run=explain)

    p = commands.add_parser("demo", help="the tour: a chain, a gradient and its check, training")
    p.set_defaults(run=lambda args: demo())
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status = args.run(args)
        sys.stdout.flush()                      # a closed pipe shows here, not at exit
        return status
    except UsageError as error:
        print(f"bpfast {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bpfast {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`bpfast explain | head`): stop quietly, as other Unix tools do.
        # stdout now points nowhere, so that Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
