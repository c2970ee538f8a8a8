"""The command line: ``bpfast train``, ``evaluate``, ``predict``, ``check``, ``explain``, ``demo``.

Also reached as ``python -m bpfast``. Nothing ends in a traceback; the exit status says how it
ended: 0 done, 1 `check` found a difference over tolerance, 2 bad arguments or data (one line
on stderr, naming the flag), 3 training diverged (one line: where, and what to try), 130
interrupted (Ctrl-C), 141 the reader of the output went away.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from . import __version__, crosscheck, datasets, modelfile, plots, reference
from ._validation import COMMAND_LINE, check_network_choices, check_sizes
from .activations import ACTIVATIONS, ELEMENTWISE
from .chain import Chain
from .costs import COSTS
from .demo import main as demo
from .network import INITS, Network, load
from .training import OPTIMIZERS, TrainingDiverged, check_rule


class UsageError(Exception):
    """A bad argument found after parsing: reported on one line, exit status 2."""


class Diverged(Exception):
    """Training diverged: reported on one line with what to try, exit status 3."""


# --- data ---------------------------------------------------------------------------------------

#: Inputs far beyond this magnitude saturate sigmoid and tanh units from the first step (with the
#: default initialisation, z has the scale of the inputs): `train` warns and points to --scale.
_LARGE_INPUT = 10.0


class Data:
    """The data of a run, split and scaled as `train` sees it, and the record that lets
    `evaluate` and `predict` see later data the same way (`bpfast.modelfile`)."""

    def __init__(self, parts, record, classes, description):
        self.parts = parts                  # {"train", "validation", "test"}: (X, Y) or None
        self.record = record
        self.classes = classes              # None for regression
        self.description = description

    @property
    def task(self):
        return self.record["task"]


def _read(spec):
    """``(X, y, X_test, y_test)`` of --data (the test part only for MNIST, which has its own),
    y as labels (or target values) as read."""
    if spec == "digits":
        X, y = datasets.load_digits()
        return X, y, None, None
    try:
        if spec.startswith("mnist:"):
            (X, y), (X_test, y_test) = datasets.load_mnist(spec[len("mnist:"):])
            return X, y, X_test, y_test
        if spec.endswith(".npz") or spec.endswith(".csv"):
            X, y = (datasets.load_npz(spec) if spec.endswith(".npz") else datasets.load_csv(spec))
            return X, y, None, None
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    raise UsageError(f"--data must be digits, mnist:DIR, FILE.npz or FILE.csv, got {spec!r}.")


def _task_of(y, task):
    """"classification" (labels: integers, strings, bools) or "regression" (real targets)."""
    y = np.asarray(y)
    if task != "auto":
        return task
    if y.ndim == 1 and (y.dtype.kind in "biuUS" or (
            y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)))):
        return "classification"
    if y.dtype.kind in "biuf":
        return "regression"
    raise UsageError(f"the targets must be labels or numbers, got dtype {y.dtype}.")


def _targets(y, task, classes, spec):
    """Targets Y for the network: one-hot rows over `classes`, or the values as columns."""
    y = np.asarray(y)
    if task == "regression":
        if y.dtype.kind not in "biuf":
            raise UsageError(f"--data {spec}: regression needs numeric targets, got {y.dtype}.")
        Y = y.reshape(len(y), -1).astype(np.float64)
        if not np.isfinite(Y).all():
            raise UsageError(f"--data {spec}: the targets contain NaN or infinity.")
        return Y
    if y.ndim != 1:
        raise UsageError(f"--data {spec}: classification needs one label per example (1-D y), "
                         f"got shape {y.shape}.")
    position = np.searchsorted(classes, y)
    known = (position < len(classes)) & (classes[np.minimum(position, len(classes) - 1)] == y)
    if not known.all():
        raise UsageError(f"--data {spec}: label {y[~known][0].item()!r} is not among the classes "
                         f"the model knows, {classes.tolist()}.")
    return np.eye(len(classes))[position]


def _features(X, spec):
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise UsageError(f"--data {spec}: X must be a 2-D array of numbers (one example per "
                         f"row), got shape {X.shape}, dtype {X.dtype}.")
    return X.astype(np.float64)


def _scaling(spec, X_train, scale):
    """(low, high) per input for --scale: the bundled digits and MNIST by their pixel range,
    user data per feature over the training rows (minmax) — or none."""
    n0 = X_train.shape[1]
    if spec == "digits":
        return np.zeros(n0), np.full(n0, 16.0)
    if spec.startswith("mnist:"):
        return np.zeros(n0), np.full(n0, 255.0)
    if scale == "minmax":
        return datasets.minmax(X_train)
    return None


def prepare(spec, *, task="auto", seed=0, test_fraction=0.2, validation_fraction=0.0,
            stratify=False, scale="none"):
    """The `Data` of a training run: --data read, its labels mapped to classes (sorted distinct
    values, as scikit-learn), split into training, validation and test rows, and scaled as the
    training rows say."""
    X, y, X_test, y_test = _read(spec)
    X = _features(X, spec)
    task = _task_of(y, task)
    classes = None
    if task == "classification":
        try:
            classes, _ = datasets.encode_labels(np.concatenate([y, y_test]) if y_test is not None
                                                else y)
        except (TypeError, ValueError) as error:
            raise UsageError(f"--data {spec}: {error}") from None
        if len(classes) < 2:
            raise UsageError(f"--data {spec}: classification needs two classes or more, found "
                             f"{classes.tolist()}.")
    Y = _targets(y, task, classes, spec)
    strata = y if (stratify and task == "classification") else None
    try:
        if X_test is None:
            X, X_test, Y, Y_test = datasets.train_test_split(
                X, Y, test_size=test_fraction, seed=seed, stratify=strata)
            strata = Y.argmax(axis=1) if strata is not None else None
        else:
            X_test, Y_test = _features(X_test, spec), _targets(y_test, task, classes, spec)
        X_val = Y_val = None
        if validation_fraction:
            X, X_val, Y, Y_val = datasets.train_test_split(
                X, Y, test_size=validation_fraction, seed=seed + 1, stratify=strata)
    except ValueError as error:
        raise UsageError(f"--data {spec}: {error}") from None
    record = dict(data=spec, task=task, seed=seed, test_fraction=test_fraction,
                  validation_fraction=validation_fraction, stratify=int(bool(strata is not None
                                                                            or stratify)))
    if classes is not None:
        record["classes"] = classes
    scaling = _scaling(spec, X, scale)
    if scaling is not None:
        record["scale_low"], record["scale_high"] = scaling
        X, X_test = datasets.scale(X, *scaling), datasets.scale(X_test, *scaling)
        X_val = None if X_val is None else datasets.scale(X_val, *scaling)
    parts = {"train": (X, Y), "validation": None if X_val is None else (X_val, Y_val),
             "test": (X_test, Y_test)}
    return Data(parts, record, classes, spec)


def _warn_if_unscaled(X, spec):
    largest = float(np.abs(X).max())
    if largest > _LARGE_INPUT:
        print(f"warning: the inputs of {spec} reach {largest:g}; sigmoid and tanh units "
              "saturate for |z| much above 5, and z has the inputs' scale: consider --scale "
              "minmax (each feature to [0, 1] over the training rows).", file=sys.stderr)


def _writable(path, flag):
    """Refuse, before training, an output path that cannot be written: the work would be lost."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory; give a file name.")
    if not os.path.isdir(directory):
        raise UsageError(f"{flag} {path}: the directory {directory} does not exist.")
    if not os.access(directory, os.W_OK) or (os.path.exists(path)
                                             and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path}: not writable.")


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


def _score(net, X, Y, task):
    """The cost and, for classification, the accuracy; for regression R² (1 − residual /
    total sum of squares, over all outputs)."""
    cost, accuracy = net.evaluate(X, Y)
    if task == "classification":
        return cost, accuracy
    residual = np.square(net.predict(X) - Y).sum()
    total = np.square(Y - Y.mean(axis=0)).sum()
    return cost, (1 - residual / total) if total > 0 else float("nan")


def _score_text(cost, score, task):
    return (f"cost {cost:.4f}, accuracy {score:.2%}" if task == "classification"
            else f"cost {cost:.4f}, R² {score:.4f}")


def train(args):
    if args.plot or args.plot_weights:
        try:
            plots.require_matplotlib()
        except ImportError as error:
            raise UsageError(str(error)) from None
    for flag, path in (("--save", args.save), ("--plot", args.plot),
                       ("--plot-weights", args.plot_weights)):
        if path:
            _writable(path, flag)
    validation_fraction = args.validation_fraction
    if args.early_stopping and not validation_fraction:
        validation_fraction = 0.1
    data = prepare(args.data, task=args.task, seed=args.seed, test_fraction=args.test_fraction,
                   validation_fraction=validation_fraction, stratify=args.stratify,
                   scale=args.scale)
    task = data.task
    X_train, Y_train = data.parts["train"]
    X_test, Y_test = data.parts["test"]
    _warn_if_unscaled(X_train, args.data)
    sizes = (_parse_sizes(args.sizes) if args.sizes
             else [X_train.shape[1], 30, Y_train.shape[1]])
    what = "classes" if task == "classification" else "targets"
    if sizes[0] != X_train.shape[1] or sizes[-1] != Y_train.shape[1]:
        raise UsageError(f"--sizes {sizes} do not fit the data: it has {X_train.shape[1]} inputs "
                         f"and {Y_train.shape[1]} {what}.")
    try:
        check_sizes(sizes)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--sizes: {error}") from None
    output_activation = args.output_activation
    if output_activation is None and task == "regression":
        output_activation = "identity"      # real targets: an output not bounded to (0, 1)
    learning_rate = args.learning_rate or (1e-3 if args.optimizer == "adam" else
                                           3.0 if task == "classification" else 0.1)
    try:
        check_network_choices(sizes, args.activation, output_activation, args.cost,
                              COMMAND_LINE)
        check_rule(learning_rate, args.optimizer, args.momentum, args.nesterov, args.l2,
                   (0.9, 0.999), 1e-8, COMMAND_LINE)
    except ValueError as error:
        raise UsageError(str(error)) from None
    net = Network(sizes, activation=args.activation, output_activation=output_activation,
                  cost=args.cost, dtype=args.dtype, init=args.init, seed=args.seed)
    if args.noise_multiplier and not args.clip_norm:
        raise UsageError("--noise-multiplier needs a --clip-norm: the noise's deviation is "
                         "ν R, R bounding one example's gradient.")
    if args.sampling == "poisson" and not args.clip_norm:
        raise UsageError("--sampling poisson is DP-SGD's: it needs a --clip-norm.")
    if args.target_delta is not None and args.target_delta * len(X_train) >= 1:
        print(f"warning: --target-delta {args.target_delta:g} is not below 1/N = "
              f"1/{len(X_train)}: publishing one training example in the clear is "
              f"(0, {args.target_delta:g})-private, so such a δ protects no one.",
              file=sys.stderr)
    rule = dict(optimizer=args.optimizer, momentum=args.momentum, nesterov=args.nesterov,
                l2=args.l2, clip_norm=args.clip_norm, noise_multiplier=args.noise_multiplier,
                sampling=args.sampling, target_delta=args.target_delta)
    validation = data.parts["validation"]
    held_out = f"{len(X_test)} test examples"
    if validation is not None:
        held_out = f"{len(validation[0])} validation and {held_out}"
    print(f"bpfast {__version__}: {net} on {args.data}: {len(X_train)} training and {held_out}"
          + ("" if task == "classification" else " (regression)"))
    steps = ("Adam" if args.optimizer == "adam" else
             f"mini-batch gradient descent{' with Nesterov momentum' if args.nesterov else ''}"
             f"{' with momentum' if args.momentum and not args.nesterov else ''}")
    extras = (f", momentum {args.momentum}" if args.momentum else "") + (
        f", L2 {args.l2}" if args.l2 else "") + (
        f", each example's gradient clipped to norm {args.clip_norm}" if args.clip_norm
        else "") + (
        f", noise multiplier {args.noise_multiplier}" if args.noise_multiplier else "") + (
        f", {args.sampling or ('poisson' if args.noise_multiplier else 'shuffle')} sampling"
        if args.clip_norm else "") + (
        f", early stopping after {args.early_stopping} epochs without progress"
        if args.early_stopping else "")
    print(f"{steps}: {args.epochs} epochs, batch size {args.batch_size}, learning rate "
          f"{learning_rate}{extras}")
    curves = {"train cost": [], "test cost": [], "train accuracy": [], "test accuracy": []}
    show, advance, close = _progress(args.epochs, sys.stderr.isatty())
    name = "accuracy" if task == "classification" else "R²"

    def after_epoch(epoch, figures):
        # One forward pass per data set gives both its cost and its score.
        train_cost, train_score = _score(net, X_train, Y_train, task)
        shown = (f"{train_score:.1%}" if task == "classification" else f"{train_score:.4f}")
        text = f"cost {figures['cost']:.4f}  train {name} {shown}"
        if "validation_cost" in figures:
            text += f"  validation cost {figures['validation_cost']:.4f}"
        show(text)
        advance(1)
        if args.plot:
            test_cost, test_score = _score(net, X_test, Y_test, task)
            curves["train cost"].append(train_cost)
            curves["test cost"].append(test_cost)
            curves["train accuracy"].append(train_score)
            curves["test accuracy"].append(test_score)

    start = time.perf_counter()
    try:
        history = net.fit(X_train, Y_train, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=learning_rate, seed=args.seed, n_threads=args.threads,
                          callback=after_epoch, validation_data=validation,
                          early_stopping=args.early_stopping, **rule)
    except TrainingDiverged as diverged:
        raise Diverged(f"training diverged in epoch {diverged.epoch}, mini-batch "
                       f"{diverged.mini_batch}: a step made the parameters overflow. Try a "
                       f"smaller --learning-rate (this run: {learning_rate:g})"
                       + ("" if args.scale == "minmax" or args.data == "digits"
                          or args.data.startswith("mnist:") else ", or --scale minmax")
                       + ".") from None
    finally:
        close()
    seconds = time.perf_counter() - start
    if history.best_epoch is not None and history.best_epoch < history.epochs:
        print(f"early stopping: kept epoch {history.best_epoch} of {history.epochs}, the best "
              "on the validation rows")
    test_cost, test_score = _score(net, X_test, Y_test, task)
    print(f"test: {_score_text(test_cost, test_score, task)} ({seconds:.2f} s of training)")
    if args.target_delta is not None:
        print(f"privacy: {history.privacy}")
    if args.save:
        modelfile.save(net, args.save, record=data.record)
        saved = os.fspath(args.save)
        print(f"saved to {saved if saved.endswith('.npz') else saved + '.npz'}")
    title = f"{list(net.sizes)} on {args.data}"
    if args.plot:
        plots.learning_curves(curves, args.plot, title=title)
        print(f"learning curves drawn in {args.plot}")
    if args.plot_weights:
        plots.first_layer_weights(net.weights[0], args.plot_weights,
                                  title=f"w(1) of {title}: what each hidden neuron looks for")
        print(f"first-layer weights drawn in {args.plot_weights}")
    return 0


# --- evaluate and predict ------------------------------------------------------------------------

def _load_model(path):
    try:
        net = load(path)
        return net, modelfile.read_record(path, net.sizes[0])
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None


def _as_trained(X, record):
    """New inputs scaled as the training rows were."""
    if record and "scale_low" in record:
        return datasets.scale(X, record["scale_low"], record["scale_high"])
    return X


def evaluate(args):
    net, record = _load_model(args.model)
    if record is None:
        # A model saved by Network.save or by bpfast 0.1: nothing says how it was trained.
        spec, seed = args.data or "digits", 0 if args.seed is None else args.seed
        fraction = 0.2 if args.test_fraction is None else args.test_fraction
        data = prepare(spec, seed=seed, test_fraction=fraction)
        X, Y = data.parts["test"]
        classes, task = data.classes, data.task
        where = (f"the test part of {spec} split with seed {seed} ({fraction:.0%}); this model "
                 "file records no split, so rows it was trained on may be among them")
    elif args.data is None or args.data == record["data"]:
        if args.seed is not None or args.test_fraction is not None:
            raise UsageError(f"{args.model} records how its data was split (seed "
                             f"{record['seed']}, test fraction {record['test_fraction']}): "
                             "--seed and --test-fraction apply only to model files without one.")
        data = prepare(record["data"], task=record["task"], seed=record["seed"],
                       test_fraction=record["test_fraction"],
                       validation_fraction=record["validation_fraction"],
                       stratify=bool(record["stratify"]),
                       scale="minmax" if "scale_low" in record else "none")
        X, Y = data.parts["test"]
        classes, task = data.classes, data.task
        where = f"the {len(X)} held-out test examples of {record['data']}, as training split them"
    else:
        X, y, X_more, y_more = _read(args.data)
        if X_more is not None:
            X, y = X_more, y_more
        X = _as_trained(_features(X, args.data), record)
        task, classes = record["task"], record.get("classes")
        Y = _targets(y, task, classes, args.data)
        where = f"all {len(X)} examples of {args.data} (the model was trained on {record['data']})"
    if X.shape[1] != net.sizes[0] or Y.shape[1] != net.sizes[-1]:
        raise UsageError(f"{args.model} has sizes {list(net.sizes)}, which do not fit "
                         f"{args.data or (record or {}).get('data', 'digits')} ({X.shape[1]} "
                         f"inputs, {Y.shape[1]} outputs).")
    print(f"{net} on {where}")
    cost, score = _score(net, X, Y, task)
    print(_score_text(cost, score, task))
    if task == "classification":
        _print_confusion(net.predict(X).argmax(axis=1), Y.argmax(axis=1), classes)
    return 0


def _print_confusion(predicted, actual, classes):
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    names = [str(c) for c in classes]
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(4, len(str(confusion.max())) + 1, *(len(name) + 1 for name in names))
    label = max(4, *(len(name) for name in names))
    print(" " * (label + 1) + "".join(f"{name:>{width}}" for name in names))
    for i in range(n):
        print(f"{names[i]:>{label}} " + "".join(f"{confusion[i, j]:>{width}}" for j in range(n)))


def predict(args):
    net, record = _load_model(args.model)
    spec = args.data
    try:
        if spec.endswith(".npz"):
            with np.load(spec, allow_pickle=False) as data:
                if "X" not in data.files:
                    raise UsageError(f"{spec}: needs an array X (one example per row).")
                X = data["X"]
        elif spec.endswith(".csv"):
            X, y = datasets.load_csv(spec)
            if X.shape[1] == net.sizes[0] - 1 and y.dtype.kind == "f":
                X = np.column_stack([X, y])         # no label column: every column is an input
        else:
            raise UsageError(f"--data must be FILE.npz or FILE.csv, got {spec!r}.")
    except (OSError, ValueError) as error:
        raise UsageError(str(error)) from None
    X = _as_trained(_features(X, spec), record)
    if X.shape[1] != net.sizes[0]:
        raise UsageError(f"{spec} has {X.shape[1]} inputs per example; {args.model} takes "
                         f"{net.sizes[0]}.")
    a = net.predict(X)
    out = sys.stdout
    if record and record["task"] == "classification":
        for label in record["classes"][a.argmax(axis=1)]:
            print(label, file=out)
    else:
        for row in a:
            print(",".join(f"{v:.9g}" for v in row), file=out)
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
    # DP-SGD's steps: clipping, the noise's generator and Poisson sampling, against the reference.
    print("\nprivate steps (fit's clip_norm, noise_multiplier, Poisson sampling), kernels ↔ "
          "reference: θ after an epoch, largest difference relative to the largest entry")
    for name, net in cases:
        if net.n_params > 3000:
            continue
        X = rng.random((8, net.sizes[0]))
        Y = rng.random((8, net.sizes[-1]))
        difference = crosscheck.private_epoch_difference(net, X, Y, seed=args.seed)
        ok = difference <= crosscheck.REFERENCE_TOLERANCES[net.dtype.name]
        failures += not ok
        print(f"{name:<34} {difference:9.1e}  {'ok' if ok else 'FAIL'}")
    print("all within tolerance" if not failures else f"{failures} network(s) over tolerance")
    return 1 if failures else 0


# --- explain -------------------------------------------------------------------------------------

def _factor(x, spec):
    """A factor of a product as written by hand: 0.25 · (−1.000000), not 0.25 · -1.000000."""
    text = format(x, spec)
    return f"({text})" if x < 0 else text


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
            print(f"  j = {j}: w_{j}k · σ'(z_{j}) · 2(a_{j} − y_{j}) = {_factor(w[j][0], 'g')} · "
                  f"{_factor(reference.sigmoid_prime(z[0][j]), '.6f')} · "
                  f"{_factor(2 * (a[1][j] - y[j]), '.6f')} = {term:.6f}")
        else:
            term = w[j][0] * (a[1][j] - y[j])
            print(f"  j = {j}: w_{j}k · (a_{j} − y_{j}) = {_factor(w[j][0], 'g')} · "
                  f"{_factor(a[1][j] - y[j], '.6f')} = {term:.6f}")
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
_fraction_or_zero = _parsed(float, lambda value: 0 <= value < 1, "a fraction in [0, 1)")
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
                 "(arrays X, y) or FILE.csv (label in the last column, or the one named "
                 "'label')")
    p = commands.add_parser("train", help="train a network by mini-batch gradient descent",
                            description="Train a network (by default the slides': sigmoid, "
                            "quadratic cost, plain gradient descent) on a data set, then report "
                            "its score on the held-out test rows. Labels become the classes "
                            "(their sorted distinct values); real-valued targets make it a "
                            "regression.")
    p.add_argument("--data", default="digits", help=data_help)
    p.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help="auto (the default): classification for labels (integers or words), "
                   "regression for real-valued targets")
    p.add_argument("--sizes", help="layer widths, e.g. 64,30,10 (default: inputs,30,outputs)")
    p.add_argument("--epochs", type=_positive_int, default=30,
                   help="passes over the training rows (default: 30)")
    p.add_argument("--batch-size", type=_positive_int, default=10,
                   help="examples per mini-batch, one step each (default: 10)")
    p.add_argument("--learning-rate", type=_positive_float, default=None,
                   help="η (default: 3.0 for classification, 0.1 for regression, 0.001 with "
                   "--optimizer adam)")
    p.add_argument("--activation", choices=list(ELEMENTWISE), default="sigmoid",
                   help="of the hidden layers, and of the output unless --output-activation "
                   "(default: sigmoid)")
    p.add_argument("--output-activation", choices=list(ACTIVATIONS), default=None,
                   help="(default: as --activation; identity for regression)")
    p.add_argument("--cost", choices=list(COSTS), default="quadratic",
                   help="(default: quadratic, Σ_j (a_j − y_j)²)")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd",
                   help="(default: sgd)")
    p.add_argument("--momentum", type=_momentum, default=0.0, help="μ in [0, 1), with sgd")
    p.add_argument("--nesterov", action="store_true", help="Nesterov's momentum")
    p.add_argument("--l2", type=_non_negative_float, default=0.0,
                   help="λ: the cost gains (λ/2) Σ‖w‖²")
    p.add_argument("--clip-norm", type=_positive_float, default=None,
                   help="R: each example's gradient clipped to norm R before the mean")
    p.add_argument("--noise-multiplier", type=_non_negative_float, default=None,
                   help="ν: DP-SGD's Gaussian noise ν R added to each step's sum (needs "
                   "--clip-norm)")
    p.add_argument("--sampling", choices=["shuffle", "poisson"], default=None,
                   help="mini-batches: shuffled, or Poisson-sampled (default with noise)")
    p.add_argument("--target-delta", type=_fraction, default=None,
                   help="δ_DP: print the ε the private steps spent (pip install "
                   "\"bpfast[privacy]\")")
    p.add_argument("--seed", type=_seed, default=0,
                   help="initialisation, order and split (default: 0)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--init", choices=list(INITS), default="scaled_normal",
                   help="how the weights are drawn (default: N(0, 1/n_in))")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="parts each step is split into, and threads at most (default: the "
                   "cores, OMP_NUM_THREADS, and what the mini-batch has work for)")
    p.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="held-out share of the data (default: 0.2; not for mnist, which has "
                   "its own test set)")
    p.add_argument("--validation-fraction", type=_fraction_or_zero, default=0.0,
                   help="share of the training rows held out to watch each epoch (default: 0, "
                   "none; 0.1 with --early-stopping)")
    p.add_argument("--early-stopping", type=_positive_int, default=None, metavar="N",
                   help="stop after N epochs without a better validation cost, and keep the "
                   "best epoch's parameters")
    p.add_argument("--stratify", action="store_true",
                   help="split each class in proportion (classification)")
    p.add_argument("--scale", choices=["none", "minmax"], default="none",
                   help="minmax: each input feature to [0, 1] over the training rows (stored in "
                   "the model; the digits and MNIST are always scaled by their pixel range)")
    p.add_argument("--save", metavar="MODEL.npz",
                   help="write the trained network there, with how its data was split and "
                   "scaled")
    p.add_argument("--plot", metavar="CURVES.png",
                   help="draw training and test cost and accuracy per epoch (needs matplotlib)")
    p.add_argument("--plot-weights", metavar="WEIGHTS.png",
                   help="draw each first-layer neuron's weights in the input's shape")
    p.set_defaults(run=train)

    p = commands.add_parser("evaluate", help="cost, accuracy and confusion matrix of a model",
                            description="Evaluate a saved model: on the held-out test rows of "
                            "the data it was trained on, split as training split them — or on "
                            "all rows of other --data.")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--data", default=None, help="other data to evaluate on (" + data_help + ")")
    p.add_argument("--seed", type=_seed, default=None,
                   help="for model files that record no split only (bpfast 0.1): the split's "
                   "seed (default: 0)")
    p.add_argument("--test-fraction", type=_fraction, default=None,
                   help="likewise, the test share (default: 0.2)")
    p.set_defaults(run=evaluate)

    p = commands.add_parser("predict", help="a model's predictions for new data",
                            description="Print one prediction per example of --data: its class "
                            "(the labels the model was trained with) or its output values, the "
                            "inputs scaled as the training rows were.")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--data", required=True,
                   help="FILE.npz (array X) or FILE.csv (inputs, with or without a label column)")
    p.set_defaults(run=predict)

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
    except Diverged as error:
        print(f"bpfast {args.command}: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"bpfast {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`bpfast explain | head`): stop quietly, as other Unix tools do.
        # stdout now points nowhere, so that Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
