"""Model files: save and load round-trip; damaged or foreign files get a clear error."""
import numpy as np
import pytest

import bpfast


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_save_and_load_round_trip(tmp_path, dtype):
    net = bpfast.Network([5, 4, 3], dtype=dtype, seed=3)
    net.save(tmp_path / "model.npz")
    again = bpfast.load(tmp_path / "model.npz")
    assert again.sizes == net.sizes and again.dtype == net.dtype
    assert (again.activation, again.cost_function) == ("sigmoid", "quadratic")
    np.testing.assert_array_equal(again.parameters_vector(), net.parameters_vector())


def test_the_choices_of_layers_and_cost_are_saved(tmp_path):
    net = bpfast.Network([4, 6, 3], activation="relu", output_activation="softmax",
                         cost="cross_entropy", seed=1)
    net.save(tmp_path / "model.npz")
    again = bpfast.load(tmp_path / "model.npz")
    assert again.activations == ("relu", "softmax") and again.cost_function == "cross_entropy"
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(again.predict(X), net.predict(X))


def test_files_without_output_activation_still_load(tmp_path):
    """bpfast 0.1 wrote no output_activation: every layer then has the one activation."""
    path = saved(tmp_path, output_activation=None)
    assert bpfast.load(path).activations == ("sigmoid", "sigmoid")


def saved(tmp_path, **changes):
    """A saved [3, 2, 1] model with some fields replaced (None removes one)."""
    net = bpfast.Network([3, 2, 1], seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    with np.load(path) as data:
        arrays = dict(data)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("changes,message", [
    (dict(format_version=np.array(2)), "format version 2; this bpfast reads version 1"),
    (dict(sizes=None), r"missing \['sizes'\]"),
    (dict(w_2=None), r"need arrays \['w_2'\]"),
    (dict(w_1=np.ones((2, 4))), r"w_1 has shape \(2, 4\), but sizes \[3, 2, 1\] say \(2, 3\)"),
    (dict(b_1=np.ones(3)), r"b_1 has shape \(3,\)"),
    (dict(sizes=np.array([3.0, 2.0, 1.0])), "sizes must be a list of at least two integers"),
    (dict(w_1=np.full((2, 3), np.nan)), "contains NaN"),
    (dict(activation=np.array("swish")), "activation must be one of"),
    (dict(output_activation=np.array("softmax")), "softmax needs at least two outputs"),
    (dict(output_activation=np.array(1.5)), "field 'output_activation' must be a string"),
    (dict(dtype=np.array("int8")), "dtype must be one of"),
    (dict(cost=np.array(3)), "field 'cost' must be a string"),
    (dict(w_1=np.array([None], dtype=object)), "field 'w_1' is not a plain array"),
])
def test_damaged_model_files_are_refused(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        bpfast.load(saved(tmp_path, **changes))


def test_pickles_and_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "pickled.npz", format_version=np.array([None], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        bpfast.load(tmp_path / "pickled.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a bpfast model file"):
        bpfast.load(tmp_path / "text.npz")
    path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:200])                    # truncated
    with pytest.raises(ValueError, match="m.npz"):
        bpfast.load(path)
    with pytest.raises(FileNotFoundError):
        bpfast.load(tmp_path / "absent.npz")


def test_load_finds_the_file_save_wrote_without_the_suffix(tmp_path):
    net = bpfast.Network([3, 4, 2], seed=1)
    net.save(tmp_path / "m")                       # numpy's savez writes m.npz
    assert (tmp_path / "m.npz").exists()
    np.testing.assert_array_equal(bpfast.load(tmp_path / "m").parameters_vector(),
                                  net.parameters_vector())
    np.testing.assert_array_equal(bpfast.load(str(tmp_path / "m")).parameters_vector(),
                                  net.parameters_vector())
    with pytest.raises(FileNotFoundError):
        bpfast.load(tmp_path / "other")


@pytest.mark.parametrize("content", [b"w_1,b_1\n1,2\n", b"\x80\x04\x95pickle", b""])
def test_a_file_that_is_no_archive_is_refused_without_mentioning_pickle(tmp_path, content):
    path = tmp_path / "text.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a bpfast model file") as caught:
        bpfast.load(path)
    assert "pickle" not in str(caught.value)
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a bpfast model file"):
        bpfast.load(tmp_path / "array.npy")
