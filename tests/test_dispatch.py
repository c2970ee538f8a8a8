"""The C loops' variants (_dispatch.h) and the codes shared by C and Python (_codes.h)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bpfast
from bpfast import _kernels

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import bpfast
    from bpfast import _kernels
    rng = np.random.default_rng(0)
    net = bpfast.Network([30, 20, 5], activation="tanh", seed=1)
    X, Y = rng.normal(size=(40, 30)), rng.random((40, 5))
    net.fit(X, Y, epochs=2, batch_size=8, learning_rate=0.3, momentum=0.9, nesterov=True,
            seed=0, n_threads=1)
    np.save(sys.argv[1], np.concatenate([net.parameters_vector(),
                                         net.gradient(X, Y).vector()]))
    print(_kernels.isa)
""")


# Private fits of both types: all of θ moves with the noise drawn at every step.
PRIVATE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import bpfast
    from bpfast import _kernels
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(300, 30)), rng.random((300, 5))
    thetas = []
    for dtype in ("float64", "float32"):
        net = bpfast.Network([30, 41, 5], dtype=dtype, seed=1)
        net.fit(X, Y, epochs=2, batch_size=20, learning_rate=0.3, clip_norm=0.5,
                noise_multiplier=1.1, seed=0)
        thetas.append(net.parameters_vector().astype(np.float64))
    np.save(sys.argv[1], np.concatenate(thetas))
    print(_kernels.isa)
""")


# Per-example gradients of both types over layers as wide as every case of the rows' stores
# (_outer_impl.h: both hold a^(l−1) in registers, in 512-bit or 256-bit ones).
PER_EXAMPLE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import bpfast
    from bpfast import _kernels
    rng = np.random.default_rng(0)
    sizes = [64, 37, 128, 16, 129, 256, 65, 257, 13, 3]   # tests/test_calls.py's EVERY_WIDTH
    X, Y = rng.normal(size=(50, sizes[0])), rng.random((50, sizes[-1]))
    rows = [bpfast.Network(sizes, dtype=dtype, seed=1).per_example_gradients(X, Y).vector()
            .astype(np.float64).ravel() for dtype in ("float64", "float32")]
    np.save(sys.argv[1], np.concatenate(rows))
    print(_kernels.isa)
""")


def run_with_isa(isa, path, script=SCRIPT):
    environment = {key: value for key, value in os.environ.items() if key != "BPFAST_ISA"}
    if isa is not None:
        environment["BPFAST_ISA"] = isa
    return subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, env=environment, timeout=120)


def test_the_baseline_can_be_chosen_and_agrees_with_the_best_variant(tmp_path):
    """BPFAST_ISA=baseline runs the loops compiled for any x86-64 even where AVX2 is there (how
    CI tests them); the two agree to rounding (FMA rounds a·b + c once)."""
    best = run_with_isa(None, tmp_path / "best.npy")
    baseline = run_with_isa("baseline", tmp_path / "baseline.npy")
    assert best.returncode == 0 and baseline.returncode == 0, best.stderr + baseline.stderr
    assert baseline.stdout.strip() == "baseline"
    assert best.stdout.strip() == _kernels.isa
    a, b = np.load(tmp_path / "best.npy"), np.load(tmp_path / "baseline.npy")
    assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(a))


@pytest.mark.skipif(_kernels.isa != "x86-64-v4", reason="this CPU has no AVX-512")
@pytest.mark.parametrize("script", [PRIVATE_SCRIPT, SCRIPT, PER_EXAMPLE_SCRIPT],
                         ids=["private-sigmoid", "tanh", "per-example"])
def test_avx512_gives_the_same_numbers_bit_for_bit(tmp_path, script):
    """x86-64-v4 differs from x86-64-v3 in the noise's generator, in the activations' vector
    width and in how the per-example rows are stored, and must compute the very same numbers:
    private fits of both types with σ, a fit and a gradient with tanh, and per-example
    gradients of both types end on the same θ, ∂C/∂θ and rows, bit for bit."""
    v4 = run_with_isa(None, tmp_path / "v4.npy", script)
    v3 = run_with_isa("x86-64-v3", tmp_path / "v3.npy", script)
    assert v4.returncode == 0 and v3.returncode == 0, v4.stderr + v3.stderr
    assert (v4.stdout.strip(), v3.stdout.strip()) == ("x86-64-v4", "x86-64-v3")
    np.testing.assert_array_equal(np.load(tmp_path / "v4.npy"), np.load(tmp_path / "v3.npy"))


def test_an_unknown_variant_is_refused_at_import(tmp_path):
    result = run_with_isa("avx512", tmp_path / "x.npy")
    assert result.returncode != 0
    assert "ImportError: BPFAST_ISA='avx512': this CPU and build run 'baseline'" in result.stderr


def test_python_names_agree_with_the_kernels_codes():
    assert _kernels.ACTIVATION_CODES == {name: code for code, name in
                                         enumerate(bpfast.activations.ACTIVATIONS)}
    assert _kernels.COST_CODES == {name: code for code, name in enumerate(bpfast.costs.COSTS)}
    assert _kernels.RULE_CODES == {name: code for code, name in
                                   enumerate(bpfast.training.RULES)}
    with pytest.raises(ImportError, match="disagree: the build is out of date"):
        _kernels.check_codes(("sigmoid", "relu", "tanh", "identity", "softmax"),
                             _kernels.ACTIVATION_CODES, "activations")
