"""Data sets: the bundled 8×8 handwritten digits, MNIST's IDX files, a user's own files, and the
helpers around them (one-hot targets, a seeded split, scaling to [0, 1]).

Nothing here downloads: the digits ship with bpfast (see data/DIGITS_LICENSE.txt), and MNIST is
read from files the user already has.
"""
import csv
import gzip
import importlib.resources
import numbers
import os
import struct

import numpy as np

#: The four standard MNIST files, by part; each may also end in .gz, and some mirrors write
#: "train-images.idx3-ubyte" with a dot.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type codes (the third byte of the magic number) and the numpy dtypes they stand for.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits():
    """The 1,797 handwritten digits of UCI's "Optical Recognition of Handwritten Digits".

    Returns ``(X, labels)``: X of shape (1797, 64), float64 pixel counts 0..16 of an 8×8 image
    (row-major), and the digits 0..9 as int64.
    """
    with importlib.resources.files("bpfast").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            return data["X"].astype(np.float64), data["labels"].astype(np.int64)


def _read_idx(path):
    """One IDX file (gzipped or not) as a numpy array; a ValueError names the file if it is bad."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            content = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot be read as an IDX file ({error}).") from None
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {content[:4].hex()}).")
    ndim = content[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(content) < header:
        raise ValueError(f"{path}: truncated IDX header.")
    shape = struct.unpack(f">{ndim}I", content[4:header])
    dtype = np.dtype(_IDX_TYPES[content[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(f"{path}: the header announces shape {shape}, which needs "
                         f"{expected} bytes, but the file has {len(content)}.")
    return np.frombuffer(content, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def _find_mnist_file(directory, name):
    candidates = [name, name + ".gz", name.replace("-idx", ".idx"),
                  name.replace("-idx", ".idx") + ".gz"]
    for candidate in candidates:
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"MNIST file {name}[.gz] not found in {directory!r}.")


def load_mnist(directory):
    """MNIST from the four standard IDX files in ``directory`` (gzipped or not).

    Returns ``((X_train, labels_train), (X_test, labels_test))``: X of shape (n, 784), uint8
    pixels 0..255 of a 28×28 image (row-major; `scale` them for training), labels int64.
    Magic numbers, dimensions and lengths are checked; an error names the file at fault.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"MNIST directory {directory!r} does not exist.")
    parts = {}
    for part, name in MNIST_FILES.items():
        path = _find_mnist_file(directory, name)
        array = _read_idx(path)
        images = part.endswith("images")
        if images and (array.ndim != 3 or array.dtype != np.uint8):
            raise ValueError(f"{path}: expected images (a 3-D uint8 IDX array), got "
                             f"{array.ndim}-D {array.dtype}.")
        if not images and (array.ndim != 1 or array.dtype != np.uint8):
            raise ValueError(f"{path}: expected labels (a 1-D uint8 IDX array), got "
                             f"{array.ndim}-D {array.dtype}.")
        parts[part] = (path, array)
    result = []
    for split in ("train", "test"):
        images_path, images = parts[f"{split}_images"]
        labels_path, labels = parts[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images_path} holds {images.shape[0]} images but {labels_path} "
                             f"holds {labels.shape[0]} labels.")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{labels_path}: labels must be digits 0..9, found {labels.max()}.")
        result.append((images.reshape(images.shape[0], -1), labels.astype(np.int64)))
    return tuple(result)


def _as_labels(labels, name="labels"):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class per example), got shape {labels.shape}.")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"{name} must be whole numbers (class indices).")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must be ≥ 0, found {labels.min()}.")
    return labels.astype(np.int64)


def one_hot(labels, n_classes=None):
    """Targets y for class indices: row k is the unit vector e_{labels[k]} (float64).

    n_classes defaults to max(labels) + 1.
    """
    labels = _as_labels(labels)
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}.")
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"labels must be < n_classes = {n_classes}, found {labels.max()}.")
    Y = np.zeros((labels.shape[0], n_classes))
    Y[np.arange(labels.shape[0]), labels] = 1.0
    return Y


def encode_labels(labels):
    """``(classes, codes)``: the sorted distinct labels (numbers or strings), and each label's
    index among them — scikit-learn's convention, so labels 1..10 make 10 classes, not 11, and
    "cat", "dog" make 2. ``classes[codes]`` gives the labels back."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (one per example), got shape {labels.shape}.")
    if labels.dtype.kind not in "biufUS":
        raise TypeError(f"labels must be numbers or strings, got dtype {labels.dtype}.")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError("labels must be finite numbers (or strings).")
    if labels.size == 0:
        raise ValueError("labels must hold at least one label.")
    classes, codes = np.unique(labels, return_inverse=True)
    return classes, codes.astype(np.int64)


def train_test_split(X, y, *, test_size=0.2, seed=None, stratify=None):
    """A seeded random split: ``X_train, X_test, y_train, y_test`` (scikit-learn's order).

    test_size is a fraction in (0, 1) or a number of examples. With ``stratify`` (one label per
    example, usually y's), each class keeps its share in both parts: the test part takes
    test_size of every class, rounded so that the counts add up (largest remainders); every
    class needs two examples or more.
    """
    X, y = np.asarray(X), np.asarray(y)
    n = X.shape[0] if X.ndim else 0
    if X.ndim == 0 or y.ndim == 0 or y.shape[0] != n:
        raise ValueError("Found input variables with inconsistent numbers of samples: "
                         f"[{n}, {y.shape[0] if y.ndim else 0}] (X, y).")
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, numbers.Real) and 0 < test_size < 1:
        n_test = int(np.ceil(test_size * n))
    else:
        raise ValueError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}.")
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size!r} leaves {n_test} of {n} examples for testing; "
                         "both parts must be non-empty.")
    rng = np.random.default_rng(seed)
    if stratify is None:
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test:]
    else:
        test, train = _stratified(stratify, n, n_test, rng)
    return X[train], X[test], y[train], y[test]


def _stratified(stratify, n, n_test, rng):
    """Test and training rows with each class in proportion (`train_test_split`)."""
    stratify = np.asarray(stratify)
    if stratify.shape[:1] != (n,):
        raise ValueError(f"stratify must hold one label per example ({n}), got shape "
                         f"{stratify.shape}.")
    classes, codes = encode_labels(stratify.reshape(n, -1)[:, 0] if stratify.ndim > 1
                                   else stratify)
    counts = np.bincount(codes, minlength=len(classes))
    if counts.min() < 2:
        raise ValueError(f"stratify: class {classes[counts.argmin()].item()!r} has only one "
                         "example; "
                         "every class needs two or more to appear in both parts.")
    exact = counts * n_test / n
    quotas = np.floor(exact).astype(np.int64)
    # The rows left over go to the classes with the largest remainders (ties: the first).
    left = n_test - quotas.sum()
    quotas[np.argsort(-(exact - quotas), kind="stable")[:left]] += 1
    test, train = [], []
    for c in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(codes == c))
        test.append(rows[:quotas[c]])
        train.append(rows[quotas[c]:])
    return rng.permutation(np.concatenate(test)), rng.permutation(np.concatenate(train))


def scale(X, low=None, high=None):
    """(X − low) / (high − low) as float64: values in [low, high] land in [0, 1].

    low and high default to the smallest and largest value of X; pass them (0 and 255 for
    MNIST, 0 and 16 for the digits) to scale a test set exactly like its training set. They may
    also be arrays, one value per feature (`minmax`); a feature whose low equals its high (a
    constant one) is shifted to 0 and not divided.
    """
    X = np.asarray(X, dtype=np.float64)
    low = X.min() if low is None else low
    high = X.max() if high is None else high
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.ndim == 0 and high.ndim == 0:
        if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
            raise ValueError(f"scale needs finite low < high, got low={float(low)!r}, "
                             f"high={float(high)!r}.")
        return (X - low) / (high - low)
    width = X.shape[-1] if X.ndim else 0
    if low.shape != (width,) or high.shape != (width,):
        raise ValueError(f"per-feature low and high need one value per feature ({width}), got "
                         f"shapes {low.shape} and {high.shape}.")
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high < low).any():
        raise ValueError("scale needs finite low ≤ high for every feature.")
    return (X - low) / np.where(high > low, high - low, 1.0)


def minmax(X):
    """``(low, high)``: each feature's smallest and largest value over the rows of X (the
    training rows), for `scale`."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"minmax needs a 2-D array with at least one row, got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise ValueError("minmax needs finite values.")
    return X.min(axis=0), X.max(axis=0)


def load_npz(path):
    """A user's data set from an .npz file holding arrays ``X`` (one example per row) and ``y``."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: cannot be read as an .npz file ({error}).") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: an .npy array, not an .npz archive of arrays X and y.")
    with data:
        missing = [name for name in ("X", "y") if name not in data.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; found {data.files}.")
        try:
            return np.asarray(data["X"]), np.asarray(data["y"])
        except ValueError as error:             # object arrays, refused without pickle
            raise ValueError(f"{path}: {error}") from None


def load_csv(path, label=None):
    """A user's data set from a .csv file: one example per row, numbers only.

    The label column is the one named ``label`` in a header row, or the last column. Returns
    ``(X, y)``: X as float64, y as float64 — or as strings if a label is not a number
    ("cat", "dog").
    """
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row]
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error}).") from None
    if not rows:
        raise ValueError(f"{path}: the file is empty.")
    header = None
    try:
        [float(value) for value in rows[0]]
    except ValueError:
        header, rows = [name.strip() for name in rows[0]], rows[1:]
    if label is None:
        column = -1
    elif header is None:
        raise ValueError(f"{path}: label={label!r} needs a header row naming the columns.")
    elif label not in header:
        raise ValueError(f"{path}: no column named {label!r}; the columns are {header}.")
    else:
        column = header.index(label)
    width = len(header) if header else len(rows[0]) if rows else 0
    if not rows:
        raise ValueError(f"{path}: no data rows.")
    if width < 2:
        raise ValueError(f"{path}: needs at least one feature column and a label column.")
    column %= width
    X = np.empty((len(rows), width - 1))
    labels = []
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise ValueError(f"{path}, line {number}: {len(row)} values where {width} were "
                             "expected.")
        labels.append(row[column].strip())
        try:
            X[number - (2 if header else 1)] = [float(value) for k, value in enumerate(row)
                                               if k != column]
        except ValueError:
            raise ValueError(f"{path}, line {number}: a feature is not a number.") from None
    try:
        y = np.array([float(label) for label in labels])
    except ValueError:
        y = np.array(labels)
    return X, y
