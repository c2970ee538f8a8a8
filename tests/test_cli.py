"""The command line, run as a user runs it: in a subprocess, checking exit codes and output."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from test_datasets import write_mnist


def bpfast(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bpfast", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_train_on_the_bundled_digits_reaches_95_percent_in_under_10_seconds(tmp_path):
    result = bpfast("train", "--save", tmp_path / "model.npz")
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test: cost [\d.]+, accuracy ([\d.]+)%", result.stdout).group(1))
    seconds = float(re.search(r"\(([\d.]+) s of training\)", result.stdout).group(1))
    assert accuracy >= 95.0 and seconds < 10.0
    assert "epoch   30/30" in result.stdout and "\r" not in result.stdout + result.stderr
    assert (tmp_path / "model.npz").exists()

    evaluation = bpfast("evaluate", tmp_path / "model.npz")
    assert evaluation.returncode == 0, evaluation.stderr
    assert f"accuracy {accuracy:.2f}%" in evaluation.stdout
    assert "confusion matrix" in evaluation.stdout
    rows = [line.split() for line in evaluation.stdout.splitlines()[-10:]]
    assert sum(int(x) for row in rows for x in row[1:]) == 360        # the 20% test split

    checked = bpfast("check", "--model", tmp_path / "model.npz")
    assert checked.returncode == 0, checked.stdout
    assert "model.npz" in checked.stdout and "all within tolerance" in checked.stdout


def test_train_with_other_activations_costs_and_optimizers(tmp_path):
    result = bpfast("train", "--activation", "relu", "--init", "he", "--output-activation",
                    "softmax", "--cost", "cross_entropy", "--learning-rate", "0.05",
                    "--momentum", "0.9", "--nesterov", "--l2", "1e-4", "--epochs", 10,
                    "--save", tmp_path / "model.npz")
    assert result.returncode == 0, result.stderr
    assert "with Nesterov momentum" in result.stdout and "L2 0.0001" in result.stdout
    accuracy = float(re.search(r"accuracy ([\d.]+)%", result.stdout.splitlines()[-2]).group(1))
    assert accuracy >= 93.0
    evaluation = bpfast("evaluate", tmp_path / "model.npz")
    assert evaluation.returncode == 0, evaluation.stderr
    assert f"accuracy {accuracy:.2f}%" in evaluation.stdout
    adam = bpfast("train", "--optimizer", "adam", "--epochs", 3)
    assert adam.returncode == 0 and "Adam: 3 epochs, batch size 10, learning rate 0.001" \
        in adam.stdout


def test_the_same_seed_trains_the_same_network(tmp_path):
    for name in ("a.npz", "b.npz"):
        assert bpfast("train", "--epochs", 3, "--save", tmp_path / name).returncode == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert all(np.array_equal(a[key], b[key]) for key in a.files)


def test_train_on_mnist_files_npz_and_csv(tmp_path):
    write_mnist(tmp_path, n_train=30, n_test=10, gz=True)
    result = bpfast("train", "--data", f"mnist:{tmp_path}", "--epochs", 2, "--sizes", "784,8,10")
    assert result.returncode == 0, result.stderr
    assert "30 training and 10 test examples" in result.stdout

    rng = np.random.default_rng(0)
    X, y = rng.random((40, 3)), rng.integers(0, 2, 40)
    np.savez(tmp_path / "mine.npz", X=X, y=y)
    assert bpfast("train", "--data", tmp_path / "mine.npz", "--epochs", 2).returncode == 0
    np.savetxt(tmp_path / "mine.csv", np.column_stack([X, y]), delimiter=",")
    result = bpfast("train", "--data", tmp_path / "mine.csv", "--epochs", 2)
    assert result.returncode == 0, result.stderr
    assert "sizes=[3, 30, 2]" in result.stdout


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
def test_explain_walks_the_chain_and_the_sum_over_j(cost):
    result = bpfast("explain", "--w", 2, "--b", -1, "--a-prev", 0.3, "--y", 0, "--cost", cost)
    assert result.returncode == 0, result.stderr
    if cost == "cross_entropy":
        assert "link 2 · link 3 = a − y" in result.stdout
    for piece in ("link 1", "link 2", "link 3", "∂C0/∂w", "∂C0/∂b", "∂C0/∂a(L-1)",
                  "finite differences", "sum over j", "Σ_j"):
        assert piece in result.stdout
    chain_rule, finite = re.search(r"∂C0/∂w ≈ (\S+)\s+\(chain rule: (\S+)\)",
                                   result.stdout).groups()
    assert float(chain_rule) == pytest.approx(float(finite), abs=1e-8)
    total, fd = re.search(r"Σ_j … = (\S+)\s+\(finite differences: (\S+)\)", result.stdout).groups()
    assert float(total) == pytest.approx(float(fd), abs=1e-8)


@pytest.mark.parametrize("args,message", [
    (["train", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "--learning-rate", "nan"], "--learning-rate: must be a finite number > 0"),
    (["train", "--sizes", "64,x,10"], "--sizes must be integers"),
    (["train", "--sizes", "63,30,10"], "do not fit the data"),
    (["train", "--sizes", "64,0,10"], r"sizes\[1\] must be a positive integer"),
    (["train", "--data", "nowhere"], "--data must be digits"),
    (["train", "--data", "mnist:/nonexistent"], "does not exist"),
    (["train", "--seed", "-3"], "--seed: must be an integer ≥ 0"),
    (["train", "--dtype", "float16"], "invalid choice"),
    (["train", "--activation", "softmax"], "invalid choice"),
    (["train", "--output-activation", "tanh", "--cost", "cross_entropy"],
     r"needs output_activation in \['sigmoid', 'softmax'\], got 'tanh'"),
    (["train", "--sizes", "64,30,1", "--output-activation", "softmax"], "do not fit the data"),
    (["train", "--nesterov"], "--nesterov needs --momentum > 0"),
    (["train", "--momentum", "1"], r"--momentum: must be a number in \[0, 1\)"),
    (["train", "--optimizer", "adam", "--momentum", "0.5"], "Adam has its own"),
    (["train", "--l2", "-1"], "--l2: must be a finite number ≥ 0"),
    (["evaluate", "/nonexistent/model.npz"], "No such file"),
    (["explain", "--w", "inf"], "--w: must be a finite number"),
    (["explain", "--cost", "cross_entropy", "--y", "3"], r"--y: y must be a probability in \[0, 1\]"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_status_2(args, message):
    result = bpfast(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr.strip().splitlines()[-1])


def test_evaluate_refuses_a_model_that_does_not_fit_the_data(tmp_path):
    import bpfast as package

    package.Network([5, 3, 2], seed=0).save(tmp_path / "small.npz")
    result = bpfast("evaluate", tmp_path / "small.npz")
    assert result.returncode == 2 and "do not fit" in result.stderr


@pytest.mark.parametrize("buffered", [True, False])
def test_a_closed_pipe_ends_quietly(buffered):
    """`bpfast explain | head -3`: the reader has gone before bpfast writes; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    environment = {key: value for key, value in os.environ.items()
                   if key != "PYTHONUNBUFFERED"}
    if not buffered:
        environment["PYTHONUNBUFFERED"] = "1"
    try:
        result = subprocess.run([sys.executable, "-m", "bpfast", "explain"], stdout=write_end,
                                stderr=subprocess.PIPE, env=environment, timeout=60)
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr


@pytest.mark.parametrize("command", ["train", "evaluate", "check", "explain", "demo"])
def test_every_command_has_help(command):
    result = bpfast(command, "--help")
    assert result.returncode == 0 and "usage: bpfast" in result.stdout


def test_no_command_prints_help_and_status_2():
    result = bpfast()
    assert result.returncode == 2 and "train" in result.stdout


def test_train_draws_learning_curves_and_weights(tmp_path):
    pytest.importorskip("matplotlib")
    curves, weights = tmp_path / "curves.png", tmp_path / "weights.png"
    result = bpfast("train", "--epochs", 3, "--plot", curves, "--plot-weights", weights)
    assert result.returncode == 0, result.stderr
    for picture in (curves, weights):
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert picture.stat().st_size > 5000


def test_plots_without_matplotlib_say_how_to_install_it(tmp_path):
    # matplotlib hidden from the interpreter: importing it raises ImportError.
    script = ("import sys; sys.modules['matplotlib'] = None; from bpfast.cli import main; "
              f"sys.exit(main(['train', '--plot', {str(tmp_path / 'c.png')!r}]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ('bpfast train: error: plots need matplotlib: '
                                     'pip install "bpfast[plot]"')


def test_check_exits_1_when_a_difference_is_over_tolerance(monkeypatch, capsys):
    import bpfast as package
    from bpfast import cli

    real_gradient = package.Network.gradient

    def off_by_a_little(self, X, Y):
        g = real_gradient(self, X, Y)
        g.b[-1][0] *= 1.01
        return g

    monkeypatch.setattr(package.Network, "gradient", off_by_a_little)
    assert cli.main(["check", "--fd-params", "20"]) == 1
    assert "FAIL" in capsys.readouterr().out
