"""Data sets: the bundled digits, MNIST's IDX files written here, users' files, and helpers."""
import gzip
import struct

import numpy as np
import pytest

from bpfast import datasets


def test_bundled_digits_are_the_uci_test_set():
    X, labels = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))
    assert np.array_equal(np.unique(labels), np.arange(10))
    assert np.bincount(labels).min() >= 170                 # about 180 of each digit
    # The first image is a 0: a ring of ink around an empty middle.
    first = X[0].reshape(8, 8)
    assert labels[0] == 0 and first[3:5, 3:5].sum() == 0 and first[:, 1:7].sum() > 100


def write_idx(path, array, type_code=0x08, gz=False, ndim=None, extra=b""):
    ndim = array.ndim if ndim is None else ndim
    header = bytes([0, 0, type_code, ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.astype(">u1").tobytes() + extra
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(content)


def write_mnist(directory, n_train=5, n_test=3, gz=False, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for part, name in datasets.MNIST_FILES.items():
        if part in overrides:
            overrides[part](directory / (name + (".gz" if gz else "")))
        else:
            write_idx(directory / (name + (".gz" if gz else "")), arrays[part], gz=gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_round_trip(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    (X_train, y_train), (X_test, y_test) = datasets.load_mnist(str(tmp_path))
    assert X_train.shape == (5, 784) and X_train.dtype == np.uint8
    assert np.array_equal(X_train, arrays["train_images"].reshape(5, 784))
    assert np.array_equal(y_train, arrays["train_labels"]) and y_train.dtype == np.int64
    assert np.array_equal(X_test, arrays["test_images"].reshape(3, 784))
    assert np.array_equal(y_test, arrays["test_labels"])


def test_mnist_missing_directory_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.load_mnist(str(tmp_path / "nowhere"))
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\[.gz\] not found"):
        datasets.load_mnist(str(tmp_path))


@pytest.mark.parametrize("part,write,message", [
    ("train_images", lambda p: p.write_bytes(b"\x00\x00\x08"), "bad magic number"),
    ("train_images", lambda p: p.write_bytes(b"\x12\x34\x08\x03" + bytes(12)), "bad magic number"),
    ("train_images", lambda p: write_idx(p, np.zeros((5, 28, 28)), extra=b"\x00"),
     "needs 3936 bytes, but the file has 3937"),
    ("train_images", lambda p: p.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 5, 28, 28)
                                             + bytes(100)), "needs 3936 bytes"),
    ("train_images", lambda p: write_idx(p, np.zeros(5)), "expected images"),
    ("test_labels", lambda p: write_idx(p, np.zeros(4)), "holds 3 images but .* holds 4 labels"),
    ("test_labels", lambda p: write_idx(p, np.full(3, 12)), "labels must be digits 0..9"),
    ("train_labels", lambda p: p.write_bytes(b"not gzip at all"), "bad magic number"),
])
def test_mnist_malformed_files_are_named(tmp_path, part, write, message):
    write_mnist(tmp_path, **{part: write})
    with pytest.raises(ValueError, match=message) as caught:
        datasets.load_mnist(str(tmp_path))
    assert datasets.MNIST_FILES[part] in str(caught.value)


def test_mnist_truncated_gzip_is_named(tmp_path):
    def truncated(path):
        write_idx(path, np.zeros((5, 28, 28)), gz=True)
        path.write_bytes(path.read_bytes()[:40])
    write_mnist(tmp_path, gz=True, train_images=truncated)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: cannot be read"):
        datasets.load_mnist(str(tmp_path))


def test_one_hot():
    Y = datasets.one_hot([2, 0, 1, 2], 4)
    np.testing.assert_array_equal(Y, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    assert datasets.one_hot(np.array([1.0, 3.0])).shape == (2, 4)
    with pytest.raises(ValueError, match="labels must be < n_classes = 3, found 3"):
        datasets.one_hot([0, 3], 3)
    with pytest.raises(ValueError, match="must be ≥ 0"):
        datasets.one_hot([0, -1], 3)
    with pytest.raises(ValueError, match="whole numbers"):
        datasets.one_hot([0.5, 1], 3)
    with pytest.raises(TypeError, match="integer class indices"):
        datasets.one_hot(["a", "b"], 3)
    with pytest.raises(ValueError, match="1-D"):
        datasets.one_hot([[0, 1]], 3)


def test_train_test_split_is_seeded_and_disjoint():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, test_size=0.3, seed=1)
    assert len(X_test) == 3 and len(X_train) == 7
    assert sorted(np.concatenate([y_train, y_test])) == list(range(10))
    np.testing.assert_array_equal(X_train[:, 0] // 2, y_train)          # rows stay together
    again = datasets.train_test_split(X, y, test_size=0.3, seed=1)
    np.testing.assert_array_equal(again[1], X_test)
    assert len(datasets.train_test_split(X, y, test_size=4, seed=0)[1]) == 4
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        datasets.train_test_split(X, y[:9])
    with pytest.raises(ValueError, match="both parts must be non-empty"):
        datasets.train_test_split(X, y, test_size=10)
    with pytest.raises(ValueError, match="test_size must be"):
        datasets.train_test_split(X, y, test_size=1.5)


def test_scale():
    np.testing.assert_array_equal(datasets.scale([[0, 8], [16, 4]]), [[0, 0.5], [1, 0.25]])
    np.testing.assert_array_equal(datasets.scale(np.array([0, 51, 255], np.uint8), 0, 255),
                                  [0, 0.2, 1])
    with pytest.raises(ValueError, match="low < high"):
        datasets.scale([3, 3, 3])


def test_npz(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((4, 3)), y=np.arange(4))
    X, y = datasets.load_npz(tmp_path / "d.npz")
    assert X.shape == (4, 3) and list(y) == [0, 1, 2, 3]
    np.savez(tmp_path / "bad.npz", features=np.ones(3))
    with pytest.raises(ValueError, match=r"missing array\(s\) \['X', 'y'\]"):
        datasets.load_npz(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: cannot be read"):
        datasets.load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "objects.npz", X=np.array([None, 1], dtype=object), y=np.arange(2))
    with pytest.raises(ValueError, match="objects.npz: .*pickle"):
        datasets.load_npz(tmp_path / "objects.npz")


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "plain.csv").write_text("1,2,0\n3,4,1\n")
    X, y = datasets.load_csv(tmp_path / "plain.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(y, [0, 1])
    (tmp_path / "named.csv").write_text("digit,a,b\n7,1,2\n3,3,4\n")
    X, y = datasets.load_csv(tmp_path / "named.csv", label="digit")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(y, [7, 3])
    with pytest.raises(ValueError, match=r"no column named 'label'; the columns are \['digit'"):
        datasets.load_csv(tmp_path / "named.csv", label="label")
    (tmp_path / "ragged.csv").write_text("1,2,0\n3,4\n")
    with pytest.raises(ValueError, match="ragged.csv, line 2: 2 values where 3"):
        datasets.load_csv(tmp_path / "ragged.csv")
    (tmp_path / "words.csv").write_text("a,b,c\n1,x,0\n")
    with pytest.raises(ValueError, match="words.csv, line 2: a feature is not a number"):
        datasets.load_csv(tmp_path / "words.csv")
    with pytest.raises(ValueError, match="cannot be read"):
        datasets.load_csv(tmp_path / "missing.csv")


def test_csv_labels_may_be_words(tmp_path):
    (tmp_path / "pets.csv").write_text("weight,height,kind\n4.0,30,cat\n30,60, dog\n5,25,cat\n")
    X, y = datasets.load_csv(tmp_path / "pets.csv")
    np.testing.assert_array_equal(X, [[4, 30], [30, 60], [5, 25]])
    assert y.tolist() == ["cat", "dog", "cat"]
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        datasets.load_csv(tmp_path / "empty.csv")
    (tmp_path / "header_only.csv").write_text("a,b,label\n")
    with pytest.raises(ValueError, match="no data rows"):
        datasets.load_csv(tmp_path / "header_only.csv")
    (tmp_path / "one_column.csv").write_text("1\n2\n")
    with pytest.raises(ValueError, match="at least one feature column and a label column"):
        datasets.load_csv(tmp_path / "one_column.csv")
    (tmp_path / "plain.csv").write_text("1,2,0\n")
    with pytest.raises(ValueError, match="needs a header row"):
        datasets.load_csv(tmp_path / "plain.csv", label="y")


def test_labels_become_the_sorted_distinct_classes():
    classes, codes = datasets.encode_labels([3, 1, 10, 3])
    assert classes.tolist() == [1, 3, 10] and codes.tolist() == [1, 0, 2, 1]
    classes, codes = datasets.encode_labels(np.array(["dog", "cat", "dog"]))
    assert classes.tolist() == ["cat", "dog"] and classes[codes].tolist() == ["dog", "cat", "dog"]
    assert datasets.encode_labels(np.arange(1, 11))[0].size == 10       # 1..10: ten classes
    with pytest.raises(ValueError, match="1-D"):
        datasets.encode_labels(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        datasets.encode_labels([1.0, np.nan])
    with pytest.raises(ValueError, match="at least one"):
        datasets.encode_labels([])
    with pytest.raises(TypeError, match="numbers or strings"):
        datasets.encode_labels(np.array([None, 1], dtype=object))


def test_a_stratified_split_keeps_every_class_share():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    X = np.arange(100.0).reshape(-1, 1)
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        X, labels, test_size=0.2, seed=3, stratify=labels)
    assert np.bincount(y_test).tolist() == [10, 6, 4]
    assert np.bincount(y_train).tolist() == [40, 24, 16]
    assert sorted(np.concatenate([X_train, X_test]).ravel().tolist()) == X.ravel().tolist()
    np.testing.assert_array_equal(labels[X_test.ravel().astype(int)], y_test)   # rows stay paired
    again = datasets.train_test_split(X, labels, test_size=0.2, seed=3, stratify=labels)
    np.testing.assert_array_equal(again[1], X_test)
    # Largest remainders: 7 test rows of 3 classes of 10 make 3 + 2 + 2.
    labels = np.repeat([0, 1, 2], 10)
    y_test = datasets.train_test_split(labels, labels, test_size=7, seed=0, stratify=labels)[3]
    assert sorted(np.bincount(y_test).tolist()) == [2, 2, 3]
    with pytest.raises(ValueError, match="class 5 has only one example"):
        datasets.train_test_split(np.zeros(4), [1, 1, 5, 1], test_size=0.5, stratify=[1, 1, 5, 1])
    with pytest.raises(ValueError, match="one label per example"):
        datasets.train_test_split(np.zeros(4), np.zeros(4), stratify=[1, 2])


def test_per_feature_scaling_is_fitted_on_given_rows():
    X_train = np.array([[0.0, 10.0, 5.0], [4.0, 30.0, 5.0]])
    low, high = datasets.minmax(X_train)
    np.testing.assert_array_equal(low, [0, 10, 5])
    np.testing.assert_array_equal(high, [4, 30, 5])
    np.testing.assert_array_equal(datasets.scale(X_train, low, high), [[0, 0, 0], [1, 1, 0]])
    # Test rows are scaled as the training rows were: they may leave [0, 1].
    np.testing.assert_array_equal(datasets.scale([[8.0, 0.0, 6.0]], low, high), [[2, -0.5, 1]])
    with pytest.raises(ValueError, match="one value per feature"):
        datasets.scale(X_train, low[:2], high[:2])
    with pytest.raises(ValueError, match="low ≤ high"):
        datasets.scale(X_train, high, low - 1)
    with pytest.raises(ValueError, match="2-D array"):
        datasets.minmax(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        datasets.minmax([[np.inf]])
    with pytest.raises(ValueError, match="finite low < high"):
        datasets.scale([1.0, 2.0], 3, 3)
