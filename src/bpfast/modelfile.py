"""Model files: a Network saved as a plain .npz archive, and read back with every field checked.

The archive holds numbers and strings only, so it is read with ``allow_pickle=False``:

    format_version   FORMAT_VERSION
    sizes            [n0, ..., nL]
    activation, output_activation, cost, dtype   the Network's choices, as strings
                     (output_activation may be absent: files from bpfast 0.1 have none, and
                     their output layer has the activation of the others)
    w_1 ... w_L, b_1 ... b_L   w^(l) of shape (n_l, n_{l-1}) and b^(l), in that dtype

and, for a model trained by ``bpfast train``, what `bpfast evaluate` and `bpfast predict` need to
see the data as training saw it (`read_record`; all optional, files without them still load):

    record_data          the --data it was trained on
    record_task          "classification" or "regression"
    record_classes       the classes, in output order: the sorted distinct labels (numbers or
                         strings)
    record_seed, record_test_fraction, record_validation_fraction, record_stratify
                         how the rows were split (the held-out test rows are re-drawn from these)
    record_scale_low, record_scale_high
                         per input: x is fed to the network as (x − low) / (high − low)
"""
import os
import zipfile

import numpy as np

FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """What is wrong with a model file, found by checking it."""


#: The training record's fields and the kind of array each must be.
RECORD_FIELDS = {
    "data": "string", "task": "string", "classes": "vector", "seed": "integer",
    "test_fraction": "number", "validation_fraction": "number", "stratify": "integer",
    "scale_low": "inputs", "scale_high": "inputs",
}


def save(net, path, record=None):
    """Write ``net`` to ``path`` (an .npz archive; numpy adds the .npz suffix if it is missing),
    with ``record`` (a dict of `RECORD_FIELDS`) if given."""
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activation": np.array(net.activation),
        "output_activation": np.array(net.output_activation),
        "cost": np.array(net.cost_function),
        "dtype": np.array(net.dtype.name),
    }
    for l, (w, b) in enumerate(zip(net.weights, net.biases), start=1):
        arrays[f"w_{l}"] = w
        arrays[f"b_{l}"] = b
    for key, value in (record or {}).items():
        if key not in RECORD_FIELDS:
            raise ValueError(f"record has no field {key!r}; its fields are {list(RECORD_FIELDS)}.")
        arrays[f"record_{key}"] = np.asarray(value)
    np.savez(os.fspath(path), **arrays)


def read_record(path, n_inputs):
    """The training record of the model file ``path`` as a dict (`RECORD_FIELDS`), or None if it
    has none (a model saved by `Network.save`, or by bpfast 0.1); each field checked."""
    path = resolve(path)
    record = {}
    with np.load(path, allow_pickle=False) as data:
        for key, kind in RECORD_FIELDS.items():
            if f"record_{key}" not in data.files:
                continue
            value = _field(data, f"record_{key}", path)
            name = f"{path}: field 'record_{key}'"
            if kind == "string":
                if value.dtype.kind != "U" or value.ndim != 0:
                    raise ModelFileError(f"{name} must be a string.")
                value = str(value)
            elif kind in ("integer", "number"):
                if value.ndim != 0 or value.dtype.kind not in ("iub" if kind == "integer"
                                                               else "iuf"):
                    article = "an integer" if kind == "integer" else "a number"
                    raise ModelFileError(f"{name} must be {article}.")
                value = value.item()
            elif kind == "vector":
                if value.ndim != 1 or value.dtype.kind not in "iufU" or len(value) == 0:
                    raise ModelFileError(f"{name} must be a non-empty list of labels.")
            else:
                if (value.shape != (n_inputs,) or value.dtype.kind != "f"
                        or not np.isfinite(value).all()):
                    raise ModelFileError(f"{name} must hold {n_inputs} finite numbers.")
            record[key] = value
    return record or None


def _field(data, key, path):
    try:
        return data[key]
    except ValueError:                          # an object array: it would need pickle
        raise ModelFileError(f"{path}: field {key!r} is not a plain array (pickled data is "
                         "refused).") from None


def _string(data, key, path):
    value = _field(data, key, path)
    if value.dtype.kind != "U" or value.ndim != 0:
        raise ModelFileError(f"{path}: field {key!r} must be a string.")
    return str(value)


def resolve(path):
    """The file `save` wrote for ``path``: ``path`` itself, or with the .npz that numpy's savez
    adds when it is missing (``save("m")`` writes m.npz)."""
    path = os.fspath(path)
    if not os.path.exists(path) and not str(path).endswith(".npz") and os.path.exists(
            path + ".npz"):
        return path + ".npz"
    return path


def read(path):
    """``(weights, biases, choices)`` from the model file ``path``, every field checked; a
    ValueError says what is wrong with a damaged file. `bpfast.load` builds the Network."""
    path = resolve(path)
    try:
        return _read_fields(path)
    except (FileNotFoundError, ModelFileError):
        raise
    except Exception as error:                  # zipfile, zlib and numpy's parsers, fed garbage
        raise ModelFileError(f"{path}: damaged model file ({type(error).__name__}: "
                             f"{error}).") from None


def _read_fields(path):
    # An .npz file is a zip archive: anything else (a text file, a pickle, an .npy array) is
    # refused here, before numpy would suggest loading it with pickle — which bpfast never does.
    with open(path, "rb") as f:
        start = f.read(4)
    if start != b"PK\x03\x04":
        raise ModelFileError(f"{path}: not a bpfast model file (an .npz archive, as "
                             f"Network.save writes; this file starts with {start!r}).")
    try:
        data = np.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{path}: not a bpfast model file ({error}).") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path}: not a bpfast model file (a single .npy array).")
    try:
        with data:
            missing = [key for key in ("format_version", "sizes", "activation", "cost", "dtype")
                       if key not in data.files]
            if missing:
                raise ModelFileError(f"{path}: not a bpfast model file (missing {missing}).")
            version = _field(data, "format_version", path)
            if version.shape != () or version.dtype.kind not in "iu":
                raise ModelFileError(f"{path}: format_version must be an integer.")
            if int(version) != FORMAT_VERSION:
                raise ModelFileError(f"{path}: model format version {int(version)}; this bpfast "
                                 f"reads version {FORMAT_VERSION}.")
            sizes = _field(data, "sizes", path)
            if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or len(sizes) < 2:
                raise ModelFileError(f"{path}: sizes must be a list of at least two integers.")
            L = len(sizes) - 1
            keys = [f"w_{l}" for l in range(1, L + 1)] + [f"b_{l}" for l in range(1, L + 1)]
            missing = [key for key in keys if key not in data.files]
            if missing:
                raise ModelFileError(f"{path}: sizes {sizes.tolist()} need arrays {missing}.")
            weights = [_field(data, f"w_{l}", path) for l in range(1, L + 1)]
            biases = [_field(data, f"b_{l}", path) for l in range(1, L + 1)]
            for l in range(1, L + 1):
                if weights[l - 1].shape != (sizes[l], sizes[l - 1]):
                    raise ModelFileError(
                        f"{path}: w_{l} has shape {weights[l - 1].shape}, but sizes "
                        f"{sizes.tolist()} say ({sizes[l]}, {sizes[l - 1]}).")
                if biases[l - 1].shape != (sizes[l],):
                    raise ModelFileError(
                        f"{path}: b_{l} has shape {biases[l - 1].shape}, but sizes "
                        f"{sizes.tolist()} say ({sizes[l]},).")
            choices = {key: _string(data, key, path) for key in ("activation", "cost", "dtype")}
            if "output_activation" in data.files:
                choices["output_activation"] = _string(data, "output_activation", path)
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{path}: damaged model file ({error}).") from None
    return weights, biases, choices
