"""The command line, run as a user runs it: in a subprocess, checking exit codes and output."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_datasets import write_mnist


def bpfast(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bpfast", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def readme_block_after(command):
    """The lines the README shows printed by `command` (its first ``` block after it)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    after = readme[readme.index(command):]
    start = after.index("```\n") + 4
    return after[start:after.index("```", start)].rstrip("\n").splitlines()


def test_train_on_the_bundled_digits_prints_what_the_readme_shows(tmp_path):
    """The README's first command, line for line (but the seconds), then evaluate and check."""
    result = bpfast("train", "--save", tmp_path / "model.npz")
    assert result.returncode == 0, result.stderr
    shown = readme_block_after("pip install . && bpfast train")
    printed = result.stdout.splitlines()
    seconds = re.compile(r"\([\d.]+ s of training\)")
    assert [seconds.sub("", line) for line in printed[:len(shown)]] == \
        [seconds.sub("", line) for line in shown]
    accuracy = float(re.search(r"test: cost [\d.]+, accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy >= 95.0
    assert "\r" not in result.stdout + result.stderr
    assert printed[-1] == f"saved to {tmp_path / 'model.npz'}"

    evaluation = bpfast("evaluate", tmp_path / "model.npz")
    assert evaluation.returncode == 0, evaluation.stderr
    assert f"accuracy {accuracy:.2f}%" in evaluation.stdout
    assert "confusion matrix" in evaluation.stdout
    rows = [line.split() for line in evaluation.stdout.splitlines()[-10:]]
    assert [row[0] for row in rows] == [str(digit) for digit in range(10)]
    assert sum(int(x) for row in rows for x in row[1:]) == 360        # the 20% test split
    correct = sum(int(row[1 + i]) for i, row in enumerate(rows))
    assert f"{correct / 360:.2%}" == f"{accuracy:.2f}%"

    checked = bpfast("check", "--model", tmp_path / "model.npz")
    assert checked.returncode == 0, checked.stdout
    # The model is checked twice: its gradient, then a private epoch of it.
    model_lines = [line for line in checked.stdout.splitlines() if "model.npz" in line]
    assert len(model_lines) == 2 and all(line.endswith("ok") for line in model_lines)
    assert checked.stdout.splitlines()[-1] == "all within tolerance"


def test_train_with_other_activations_costs_and_optimizers(tmp_path):
    result = bpfast("train", "--activation", "relu", "--init", "he", "--output-activation",
                    "softmax", "--cost", "cross_entropy", "--learning-rate", "0.05",
                    "--momentum", "0.9", "--nesterov", "--l2", "1e-4", "--epochs", 10,
                    "--save", tmp_path / "model.npz")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == ("mini-batch gradient descent with Nesterov "
                                             "momentum: 10 epochs, batch size 10, learning rate "
                                             "0.05, momentum 0.9, L2 0.0001")
    model = __import__("bpfast").load(tmp_path / "model.npz")
    assert model.activations == ("relu", "softmax") and model.cost_function == "cross_entropy"
    accuracy = float(re.search(r"accuracy ([\d.]+)%", result.stdout.splitlines()[-2]).group(1))
    assert accuracy >= 93.0
    evaluation = bpfast("evaluate", tmp_path / "model.npz")
    assert evaluation.returncode == 0, evaluation.stderr
    assert f"accuracy {accuracy:.2f}%" in evaluation.stdout
    adam = bpfast("train", "--optimizer", "adam", "--epochs", 3)
    assert adam.returncode == 0 and "Adam: 3 epochs, batch size 10, learning rate 0.001" \
        in adam.stdout
    clipped = bpfast("train", "--clip-norm", "0.5", "--epochs", 3)
    assert clipped.returncode == 0, clipped.stderr
    assert clipped.stdout.splitlines()[1].endswith(
        "learning rate 3.0, each example's gradient clipped to norm 0.5, shuffle sampling")


def test_train_privately_prints_the_epsilon_spent():
    pytest.importorskip("dp_accounting")
    private = bpfast("train", "--activation", "relu", "--output-activation", "softmax",
                     "--cost", "cross_entropy", "--batch-size", "64", "--clip-norm", "1",
                     "--noise-multiplier", "1.3", "--learning-rate", "3", "--momentum", "0.5",
                     "--epochs", 5, "--target-delta", "1e-5")
    assert private.returncode == 0, private.stderr
    assert private.stdout.splitlines()[1].endswith(
        "clipped to norm 1.0, noise multiplier 1.3, poisson sampling")
    assert re.search(r"^privacy: \([\d.]+, 1e-05\)-DP by the pld accountant, 110 Poisson "
                     r"steps at q = 0\.0445$", private.stdout, re.M), private.stdout
    loose = bpfast("train", "--clip-norm", "1", "--noise-multiplier", "1", "--epochs", 1,
                   "--target-delta", "0.01")
    assert loose.returncode == 0 and "protects no one" in loose.stderr


def test_every_training_flag_reaches_the_training(tmp_path, capsys):
    status, out, _ = run(capsys, "train", "--threads", 2, "--batch-size", 7, "--test-fraction",
                         0.3, "--dtype", "float32", "--init", "glorot", "--epochs", 4,
                         "--sizes", "64,20,10", "--seed", 3, "--save", tmp_path / "m.npz")
    assert status == 0
    assert "on digits: 1257 training and 540 test examples" in out        # 30% of 1,797
    assert "4 epochs, batch size 7" in out and "dtype='float32'" in out
    assert "sizes=[64, 20, 10]" in out
    model = __import__("bpfast").load(tmp_path / "m.npz")
    assert model.dtype == np.float32 and model.sizes == (64, 20, 10)
    # glorot starts the biases at 0 and the seed sets the rest: the same run is the same model.
    status, _, _ = run(capsys, "train", "--threads", 1, "--batch-size", 7, "--test-fraction",
                       0.3, "--dtype", "float32", "--init", "glorot", "--epochs", 4,
                       "--sizes", "64,20,10", "--seed", 3, "--save", tmp_path / "again.npz")
    again = __import__("bpfast").load(tmp_path / "again.npz")
    # Another n_threads: the same model up to the order of float32 sums.
    np.testing.assert_allclose(again.parameters_vector(), model.parameters_vector(), rtol=0,
                               atol=1e-4)


def test_version_and_demo(capsys):
    from bpfast import __version__
    result = bpfast("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"bpfast {__version__}"
    status, out, _ = run(capsys, "demo")
    assert status == 0
    assert "link 1  ∂z/∂w  = a(L-1)" in out and "all within tolerance" in out
    cost = re.search(r"mean training cost at epochs 1, 6, 11, 16: ([\d.]+), ([\d.]+), ([\d.]+), "
                     r"([\d.]+)", out)
    assert float(cost.group(4)) < float(cost.group(1))
    assert float(re.search(r"accuracy on the training set: ([\d.]+)%", out).group(1)) > 95


def test_evaluate_other_data_and_an_old_models_seed(tmp_path, capsys):
    import bpfast as package
    status, _, _ = run(capsys, "train", "--epochs", 3, "--save", tmp_path / "m.npz")
    X, y = package.datasets.load_digits()
    np.savez(tmp_path / "some.npz", X=X[:100], y=y[:100])
    status, out, _ = run(capsys, "evaluate", tmp_path / "m.npz", "--data", tmp_path / "some.npz")
    assert status == 0
    assert f"on all 100 examples of {tmp_path / 'some.npz'} (the model was trained on digits)" \
        in out
    # A model file with no record (Network.save): --seed says which split to evaluate on.
    model = package.load(tmp_path / "m.npz")
    model.save(tmp_path / "plain.npz")
    status, out, _ = run(capsys, "evaluate", tmp_path / "plain.npz", "--seed", 5)
    assert status == 0 and "split with seed 5 (20%)" in out


def test_check_takes_a_seed_and_refuses_a_bad_model(tmp_path, capsys):
    def table(seed):
        status, out, _ = run(capsys, "check", "--seed", seed, "--fd-params", 20)
        assert status == 0
        return [line for line in out.splitlines() if line.startswith("random")]

    assert table(1) == table(1) and table(1) != table(2)
    (tmp_path / "bad.npz").write_text("not a model")
    status, out, err = run(capsys, "check", "--model", tmp_path / "bad.npz")
    assert status == 2 and out == ""
    assert err.strip().startswith("bpfast check: error:") and "not a bpfast model file" in err


def test_ctrl_c_ends_training_with_status_130():
    # SIGINT as a terminal gives it, whatever this test run inherited (a job started in the
    # background of a script has it ignored, and so would the command).
    process = subprocess.Popen([sys.executable, "-m", "bpfast", "train", "--epochs", "100000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while "epochs, batch size" not in process.stdout.readline():   # about to train
            pass
        time.sleep(1.0)                                  # inside the kernels' epochs by now
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert err.strip() == "bpfast train: interrupted" and "Traceback" not in err


def test_a_terminal_gets_tqdms_progress_bar(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run(capsys, "train", "--epochs", 3)
    assert status == 0
    assert "epoch    3/3" not in out                       # no log lines on a terminal
    assert "3/3" in err and "epoch" in err and "train accuracy" in err     # tqdm's bar


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
    result = bpfast("train", "--data", tmp_path / "mine.npz", "--epochs", 2)
    assert result.returncode == 0, result.stderr
    assert "sizes=[3, 30, 2]" in result.stdout
    assert "32 training and 8 test examples" in result.stdout
    assert re.search(r"test: cost [\d.]+, accuracy [\d.]+%", result.stdout)
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
     r"--cost cross_entropy needs --output-activation in \['sigmoid', 'softmax'\], got 'tanh'"),
    (["train", "--sizes", "64,30,1", "--output-activation", "softmax"], "do not fit the data"),
    (["train", "--nesterov"], "--nesterov needs a --momentum > 0"),
    (["train", "--momentum", "1"], r"--momentum: must be a number in \[0, 1\)"),
    (["train", "--optimizer", "adam", "--momentum", "0.5"],
     "--momentum and --nesterov are for --optimizer sgd; Adam has its own"),
    (["train", "--l2", "-1"], "--l2: must be a finite number ≥ 0"),
    (["train", "--clip-norm", "0"], "--clip-norm: must be a finite number > 0"),
    (["train", "--noise-multiplier", "1"], "--noise-multiplier needs a --clip-norm"),
    (["train", "--sampling", "poisson"], "--sampling poisson is DP-SGD's: it needs a --clip-norm"),
    (["evaluate", "/nonexistent/model.npz"], "No such file"),
    (["explain", "--w", "inf"], "--w: must be a finite number"),
    (["explain", "--cost", "cross_entropy", "--y", "3"],
     r"--y: y must be a probability in \[0, 1\]"),
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


# --- the newcomer's findings: a model's own split, data traps, lost work, tracebacks -------------

def run(capsys, *args):
    """bpfast in this process: (status, stdout, stderr)."""
    from bpfast import cli
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_evaluate_scores_the_held_out_rows_of_the_models_own_split(tmp_path, capsys):
    """Trained with --seed 7, the model's test rows are not those of seed 0: evaluate re-draws
    the split the model file records, and its accuracy is the one train printed."""
    status, out, _ = run(capsys, "train", "--seed", 7, "--epochs", 5, "--save", tmp_path / "s7")
    assert status == 0
    printed = re.search(r"test: cost ([\d.]+), accuracy ([\d.]+)%", out).groups()
    assert "saved to " + str(tmp_path / "s7.npz") in out
    status, out, _ = run(capsys, "evaluate", tmp_path / "s7.npz")
    assert status == 0
    assert "on the 360 held-out test examples of digits, as training split them" in out
    assert f"cost {printed[0]}, accuracy {printed[1]}%" in out
    status, _, err = run(capsys, "evaluate", tmp_path / "s7.npz", "--seed", 0)
    assert status == 2 and "records how its data was split (seed 7" in err


def test_evaluate_says_when_a_model_file_records_no_split(tmp_path, capsys):
    import bpfast as package
    package.Network([64, 30, 10], seed=0).save(tmp_path / "plain.npz")
    status, out, _ = run(capsys, "evaluate", tmp_path / "plain.npz")
    assert status == 0
    assert "this model file records no split, so rows it was trained on may be among them" in out


def test_outputs_that_cannot_be_written_are_refused_before_training(tmp_path, capsys):
    for flag in ("--save", "--plot", "--plot-weights"):
        if flag != "--save":
            pytest.importorskip("matplotlib")
        status, out, err = run(capsys, "train", flag, "/nonexistent/m.npz")
        assert status == 2 and "epoch" not in out and out == ""
        assert err.strip() == (f"bpfast train: error: {flag} /nonexistent/m.npz: the directory "
                               "/nonexistent does not exist.")
    status, _, err = run(capsys, "train", "--save", tmp_path)
    assert status == 2 and "is a directory" in err


def test_a_diverging_run_ends_in_one_line_and_status_3(capsys):
    status, out, err = run(capsys, "train", "--learning-rate", "1e6", "--activation", "relu",
                           "--output-activation", "identity", "--epochs", 3)
    assert status == 3
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.fullmatch(r"bpfast train: training diverged in epoch \d+, mini-batch \d+: a step "
                        r"made the parameters overflow\. Try a smaller --learning-rate \(this "
                        r"run: 1e\+06\)\.", err.strip())


def test_help_shows_what_epochs_and_batch_size_default_to(capsys):
    from bpfast import cli
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "passes over the training rows (default: 30)" in " ".join(help_text.split())
    assert "one step each (default: 10)" in " ".join(help_text.split())


def digits_as_files(tmp_path, labels=None):
    """The bundled digits as a user's own files: raw pixels 0..16, and the given labels."""
    import bpfast as package
    X, y = package.datasets.load_digits()
    y = y if labels is None else labels(y)
    np.savez(tmp_path / "digits.npz", X=X, y=y)
    return tmp_path / "digits.npz"


def test_raw_pixels_get_a_warning_and_scale_minmax_fixes_them(tmp_path, capsys):
    path = digits_as_files(tmp_path)
    status, out, err = run(capsys, "train", "--data", path, "--epochs", 10)
    assert status == 0 and "warning: the inputs of" in err and "reach 16" in err
    unscaled = float(re.search(r"accuracy ([\d.]+)%", out.splitlines()[-1]).group(1))
    status, out, err = run(capsys, "train", "--data", path, "--epochs", 10, "--scale", "minmax",
                           "--save", tmp_path / "m.npz")
    assert status == 0 and "warning" not in err
    scaled = float(re.search(r"accuracy ([\d.]+)%", out.splitlines()[-2]).group(1))
    assert scaled > 90 and scaled > unscaled + 20
    # The model keeps the training rows' per-feature ranges: evaluate scales alike.
    status, out, _ = run(capsys, "evaluate", tmp_path / "m.npz")
    assert f"accuracy {scaled:.2f}%" in out


def test_labels_are_mapped_to_their_sorted_distinct_values(tmp_path, capsys):
    """Digits labelled 1..10 make 10 outputs, not 11; words are labels too; evaluate and predict
    speak in those labels."""
    path = digits_as_files(tmp_path, labels=lambda y: y + 1)
    status, out, _ = run(capsys, "train", "--data", path, "--scale", "minmax", "--epochs", 3)
    assert status == 0 and "sizes=[64, 30, 10]" in out
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    path = digits_as_files(tmp_path, labels=lambda y: names[y])
    status, out, _ = run(capsys, "train", "--data", path, "--scale", "minmax", "--epochs", 10,
                         "--save", tmp_path / "words.npz")
    assert status == 0 and "sizes=[64, 30, 10]" in out
    status, out, _ = run(capsys, "evaluate", tmp_path / "words.npz")
    assert status == 0
    header = out.splitlines()[3].split()
    assert header == sorted(names.tolist())               # the confusion matrix's columns
    X, _ = __import__("bpfast").datasets.load_digits()
    np.savez(tmp_path / "new.npz", X=X[:5])
    status, out, _ = run(capsys, "predict", tmp_path / "words.npz", "--data", tmp_path / "new.npz")
    assert status == 0 and out.split() == ["zero", "one", "two", "three", "four"]


def test_a_validation_split_early_stopping_and_a_stratified_split(capsys):
    status, out, _ = run(capsys, "train", "--early-stopping", 2, "--epochs", 50, "--stratify",
                         "--optimizer", "adam", "--learning-rate", 0.05)
    assert status == 0
    assert "on digits: 1293 training and 144 validation and 360 test examples" in out
    assert "validation cost" in out
    kept = re.search(r"early stopping: kept epoch (\d+) of (\d+)", out)
    assert kept and int(kept.group(1)) < int(kept.group(2)) < 50


def test_real_valued_targets_make_a_regression(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.random((600, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2]
    np.savetxt(tmp_path / "smooth.csv", np.column_stack([X, y]), delimiter=",")
    status, out, _ = run(capsys, "train", "--data", tmp_path / "smooth.csv", "--epochs", 100,
                         "--learning-rate", 0.2, "--save", tmp_path / "r.npz")
    assert status == 0 and "(regression)" in out
    assert "output_activation='identity'" in out
    r2 = float(re.search(r"test: cost [\d.]+, R² ([-\d.]+)", out).group(1))
    assert r2 > 0.9
    status, out, _ = run(capsys, "evaluate", tmp_path / "r.npz")
    assert status == 0 and f"R² {r2:.4f}" in out
    np.savetxt(tmp_path / "inputs.csv", X[:3], delimiter=",")
    status, out, _ = run(capsys, "predict", tmp_path / "r.npz", "--data", tmp_path / "inputs.csv")
    assert status == 0 and len(out.split()) == 3
    np.testing.assert_allclose([float(v) for v in out.split()], y[:3], atol=0.2)


def test_a_label_unknown_to_the_model_is_refused(tmp_path, capsys):
    path = digits_as_files(tmp_path)
    assert run(capsys, "train", "--data", path, "--scale", "minmax", "--epochs", 1, "--save",
               tmp_path / "m.npz")[0] == 0
    X, _ = __import__("bpfast").datasets.load_digits()
    np.savez(tmp_path / "odd.npz", X=X[:4], y=np.array([1, 2, 3, 12]))
    status, _, err = run(capsys, "evaluate", tmp_path / "m.npz", "--data", tmp_path / "odd.npz")
    assert status == 2 and "label 12 is not among the classes the model knows" in err


def test_explain_writes_negative_factors_in_parentheses(capsys):
    status, out, _ = run(capsys, "explain")
    assert status == 0
    assert "= 0.5 · 0.250000 · (-1.000000) = -0.125000" in out
    assert "= (-0.8) · 0.249975 · 0.990000 = -0.197980" in out
    assert not re.search(r"· -\d", out)


def test_the_picture_of_an_input_is_square_when_it_can_be():
    from bpfast.plots import image_shape
    assert image_shape(64) == (8, 8) and image_shape(784) == (28, 28) and image_shape(1) == (1, 1)
    assert image_shape(10) == (1, 10) and image_shape(2) == (1, 2) and image_shape(63) == (1, 63)
