"""A saved model with its bytes mutated at random: load either succeeds with finite parameters or
raises ValueError — it never crashes the process or lets another exception out."""
import io
import zipfile

import numpy as np

import bpfast


def saved_bytes(tmp_path):
    net = bpfast.Network([6, 5, 3], seed=0)
    net.save(tmp_path / "model.npz")
    return (tmp_path / "model.npz").read_bytes()


def test_mutated_model_files_never_crash_load(tmp_path):
    original = saved_bytes(tmp_path)
    rng = np.random.default_rng(12345)
    path = tmp_path / "mutated.npz"
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(3000):
        data = bytearray(original)
        kind = case % 4
        if kind == 0:                               # flip a few random bytes
            for position in rng.integers(0, len(data), rng.integers(1, 8)):
                data[position] = rng.integers(0, 256)
        elif kind == 1:                             # truncate
            data = data[:rng.integers(0, len(data))]
        elif kind == 2:                             # insert junk
            position = rng.integers(0, len(data))
            insert = rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8)
            data[position:position] = insert.tobytes()
        else:                                       # overwrite a run with one value
            start = rng.integers(0, len(data))
            data[start:start + rng.integers(1, 32)] = bytes([rng.integers(0, 256)]) * 32
        path.write_bytes(bytes(data))
        try:
            net = bpfast.load(path)
        except ValueError:
            outcomes["refused"] += 1
        else:
            assert np.isfinite(net.parameters_vector()).all()
            assert net.sizes == (6, 5, 3)
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 1000                # the mutations did hit something


def test_archive_members_with_wrong_contents_are_refused(tmp_path):
    original = saved_bytes(tmp_path)
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name in members:
        broken = dict(members, **{name: b"\x93NUMPY garbage"})
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for member, content in broken.items():
                archive.writestr(member, content)
        (tmp_path / "broken.npz").write_bytes(buffer.getvalue())
        try:
            bpfast.load(tmp_path / "broken.npz")
        except ValueError as error:
            assert "broken.npz" in str(error)
        else:
            raise AssertionError(f"a garbage {name} was accepted")
