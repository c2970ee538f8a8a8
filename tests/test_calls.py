"""Single calls: per-example gradients (into a buffer of the caller's too), their norms without
them, the cost and gradient in one pass, scipy's objective, threads and kept work buffers."""
import threading

import numpy as np
import pytest

import bpfast
from bpfast import _blas, _kernels, reference
from bpfast.crosscheck import reference_gradient, relative_difference

from conftest import REFERENCE_TOLERANCE, make_problem, products_run

CHOICES = [dict(), dict(activation="relu", output_activation="softmax", cost="cross_entropy"),
           dict(activation="tanh", output_activation="identity")]


def nested(net):
    return [w.tolist() for w in net.weights], [b.tolist() for b in net.biases]


@pytest.fixture(params=[True, False], ids=["small-products-unpacked", "every-product-packed"])
def blas_small_path(request):
    """The products' rules for either kind of BLAS, whichever this machine's is: OpenBLAS's
    kernels for AVX-512 cores multiply small products without packing them, the others (AVX2)
    pack every one (`_kernels.use_blas_small_path`)."""
    _blas._libraries()              # the machine's, found and told to the kernels first
    found = _kernels.blas_small_path()
    _kernels.use_blas_small_path(request.param)
    yield request.param
    _kernels.use_blas_small_path(found)


@pytest.mark.parametrize("choices", CHOICES)
@pytest.mark.parametrize("n", [5, 70])
def test_per_example_gradients_and_norms_against_the_reference(choices, n, dtype):
    net, X, Y = make_problem([6, 9, 4], n, dtype, seed=n, **choices)
    tolerance = REFERENCE_TOLERANCE[dtype]
    rows = net.per_example_gradients(X, Y).vector()
    for k in (0, n // 2, n - 1):
        dw, db = reference.backprop(*nested(net), X[k].tolist(), Y[k].tolist(), net.activations,
                                    net.cost_function)
        expected = np.concatenate([np.concatenate([np.ravel(w), b]) for w, b in zip(dw, db)])
        assert relative_difference(rows[k], expected) <= tolerance
    norms = reference.example_norms(*nested(net), X.tolist(), Y.tolist(), net.activations,
                                    net.cost_function)
    by_layer = reference.example_norms(*nested(net), X.tolist(), Y.tolist(), net.activations,
                                       net.cost_function, per_layer=True)
    np.testing.assert_allclose(net.per_example_norms(X, Y), norms, rtol=10 * tolerance)
    np.testing.assert_allclose(net.per_example_norms(X, Y, per_layer=True), by_layer,
                               rtol=10 * tolerance)
    # The norms, computed without the rows, are the rows' norms; the rows' mean is the gradient.
    np.testing.assert_allclose(net.per_example_norms(X, Y), np.linalg.norm(rows, axis=1),
                               rtol=10 * tolerance)
    assert relative_difference(rows.mean(axis=0), net.gradient(X, Y).vector()) <= 10 * tolerance
    assert net.per_example_norms(X, Y).dtype == net.dtype


#: Layers' inputs as wide as every case of the per-example rows' stores (_outer_impl.h): the
#: inputs held in registers of 8 doubles or 16 floats (x86-64-v4) or 4 and 8 (x86-64-v3), up
#: to 128 doubles, 256 floats (v4) or 64 and 128 (v3), the last register overlapping the one
#: before where the width is not a multiple — one register exactly (16), the most exactly (64,
#: 128, 256), a part of one more (13, 37, 65, 129), one number too many (65, 129, 257).
EVERY_WIDTH = [64, 37, 128, 16, 129, 256, 65, 257, 13, 3]


def assert_rows_are_the_references(net, X, Y, gradients, examples, dtype):
    """Per-example rows k ∈ examples against the reference's, layer by layer (a layer whose
    rows are small beside the others' must be right too)."""
    for k in examples:
        dw, db = reference.backprop(*nested(net), X[k].tolist(), Y[k].tolist(), net.activations,
                                    net.cost_function)
        for l in range(net.L):
            assert relative_difference(gradients.w[l][k], np.array(dw[l])) <= \
                REFERENCE_TOLERANCE[dtype], (k, l)
            assert relative_difference(gradients.b[l][k], np.array(db[l])) <= \
                REFERENCE_TOLERANCE[dtype], (k, l)


def test_per_example_rows_of_every_width_against_the_reference(dtype):
    """Each layer's rows against the reference's, layer by layer (a layer whose rows are small
    beside the others' must be right too)."""
    net, X, Y = make_problem(EVERY_WIDTH, 3, dtype, seed=4, activation="tanh")
    gradients = net.per_example_gradients(X, Y)
    assert_rows_are_the_references(net, X, Y, gradients, (0, 2), dtype)


def test_a_few_rows_over_a_large_layer_go_to_the_microkernel(dtype, blas_small_path):
    """A chunk of at most 8 rows that BLAS would pack — w^(1) of [300, 500, 3] has 150,000
    weights, so 8 rows are 1.2 million multiply-adds — goes to the microkernel, which reads w
    once, and so does the tail of 5 rows of its call (n = 13); where BLAS packs every product,
    chunks of at most 8 float64 or 16 float32 rows over w^(1) do. Either way each row's output
    and ∂C_k/∂θ are the reference's, the same bits on 1, 2 and 3 threads."""
    net, X, Y = make_problem([300, 500, 3], 16, dtype, seed=6)
    for n in (8, 13, 16):
        outputs = [net.predict(X[:n], n_threads=t) for t in (1, 2, 3)]
        rows = [net.per_example_gradients(X[:n], Y[:n], n_threads=t) for t in (1, 2, 3)]
        for t in (1, 2):
            np.testing.assert_array_equal(outputs[t], outputs[0])
            np.testing.assert_array_equal(rows[t].vector(), rows[0].vector())
        for k in (0, 7, n - 1):
            _, a = reference.forward(*nested(net), X[k].tolist(), net.activations)
            assert relative_difference(outputs[0][k], np.array(a[-1])) <= \
                REFERENCE_TOLERANCE[dtype]
    assert_rows_are_the_references(net, X, Y, rows[0], (0, 15), dtype)


@pytest.mark.parametrize("blas_small_path", [False], indirect=True)
@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 12, 13, 16, 20, 29, 32, 40])
def test_few_rows_where_blas_packs_every_product(n, dtype, blas_small_path):
    """Where BLAS packs every product (OpenBLAS's kernels for AVX2), a call's chunk of at most
    64 bytes a column — 8 float64 rows, 16 float32 (a call on up to 16 or 32 examples) — over a
    w of 1,024 weights or more and 32 inputs goes to the microkernels, forward (z = a wᵀ, which
    takes chunks of up to 128 bytes: the next test) and backward (δ w): in [300, 500, 40, 3],
    w^(1) and w^(2) (not w^(3): 120 weights). The call's chunk decides for its every row: a
    short tail (n = 20 in float64, chunks of 16; 40 in float32, chunks of 24) goes with its
    chunk to BLAS for δ w. Each row's output, ∂C_k/∂θ and norm
    against the reference, the same bits on 1, 2 and 3 threads. Rows whose every product goes
    to the microkernels — in [300, 500, 40], without the layer of 120 weights — are the same
    bits wherever they stand in the batch (not so through BLAS: OpenBLAS's kernels for AVX-512
    compute the last rows of a product of 3 neurons on 5 or 13 rows otherwise than the first)."""
    net, X, Y = make_problem([300, 500, 40, 3], n, dtype, seed=n, activation="tanh")
    outputs = [net.predict(X, n_threads=t) for t in (1, 2, 3)]
    for t in (1, 2):
        ran = products_run("δ w", net.per_example_gradients, X, Y, n_threads=t)
        assert {(path, nj) for path, m, nj, ni in ran} == {
            ("BLAS", 3), ("microkernel" if n <= (16 if dtype == "float64" else 32) else "BLAS", 40)}
    gradients = [net.per_example_gradients(X, Y, n_threads=t) for t in (1, 2, 3)]
    rows = [g.vector() for g in gradients]
    norms = [net.per_example_norms(X, Y, n_threads=t) for t in (1, 2, 3)]
    for t in (1, 2):
        np.testing.assert_array_equal(outputs[t], outputs[0])
        np.testing.assert_array_equal(rows[t], rows[0])
        np.testing.assert_array_equal(norms[t], norms[0])
    for k in {0, n // 2, n - 1}:
        _, a = reference.forward(*nested(net), X[k].tolist(), net.activations)
        assert relative_difference(outputs[0][k], np.array(a[-1])) <= \
            REFERENCE_TOLERANCE[dtype], k
    assert_rows_are_the_references(net, X, Y, gradients[0], sorted({0, n - 1}), dtype)
    np.testing.assert_allclose(norms[0], np.linalg.norm(rows[0], axis=1),
                               rtol=10 * REFERENCE_TOLERANCE[dtype])
    if n <= (16 if dtype == "float64" else 32):
        net, X, Y = make_problem([300, 500, 40], n, dtype, seed=n, activation="tanh")
        assert {path for _, path, *_ in products_run(None, net.per_example_gradients, X, Y)
                if path not in ("stores", "streamed")} == {"microkernel"}
        order = np.random.default_rng(n).permutation(n)
        np.testing.assert_array_equal(net.predict(X[order]), net.predict(X)[order])
        np.testing.assert_array_equal(net.per_example_gradients(X[order], Y[order]).vector(),
                                      net.per_example_gradients(X, Y).vector()[order])


@pytest.mark.parametrize("blas_small_path", [False], indirect=True)
@pytest.mark.parametrize("n", [1, 8, 13])
def test_delta_w_over_rows_8_kib_apart_by_blas(n, dtype, blas_small_path):
    """Where BLAS packs every product, δ w on a chunk of a few float64 rows goes to BLAS when
    w's rows are a multiple of 8 KiB apart (1,024 numbers: the microkernel, down w's columns,
    would find every row's line in one set of L1), and to the microkernel otherwise (float32:
    4 KiB). [60, 1,024, 20, 3]: δ^(2) w^(2) over rows of 1,024 numbers (δ^(3) w^(3), of 60
    weights, is BLAS's either way). Per-example gradients and norms against the reference, the
    same bits on 1 and 2 threads."""
    assert _kernels.aliased_rows(1024, dtype) == (dtype == "float64")
    assert not _kernels.aliased_rows(784, dtype) and not _kernels.aliased_rows(512, dtype)
    net, X, Y = make_problem([60, 1024, 20, 3], n, dtype, seed=n, activation="tanh")
    for call in (net.per_example_gradients, net.per_example_norms):
        for t in (1, 2):
            ran = products_run("δ w", call, X, Y, n_threads=t)
            assert {(path, nj) for path, m, nj, ni in ran} == {
                ("BLAS", 3), ("BLAS" if dtype == "float64" else "microkernel", 20)}, (call, t)
    gradients = [net.per_example_gradients(X, Y, n_threads=t) for t in (1, 2)]
    norms = [net.per_example_norms(X, Y, n_threads=t) for t in (1, 2)]
    np.testing.assert_array_equal(gradients[1].vector(), gradients[0].vector())
    np.testing.assert_array_equal(norms[1], norms[0])
    assert_rows_are_the_references(net, X, Y, gradients[0], sorted({0, n - 1}), dtype)
    np.testing.assert_allclose(norms[0], np.linalg.norm(gradients[0].vector(), axis=1),
                               rtol=10 * REFERENCE_TOLERANCE[dtype])


@pytest.mark.parametrize("blas_small_path", [False], indirect=True)
def test_z_of_up_to_128_bytes_a_column_by_the_microkernel(dtype, blas_small_path):
    """Where BLAS packs every product, z = a wᵀ on a call's chunk of at most 128 bytes a column
    — 16 float64 rows, 32 float32: calls on up to 32 or 64 examples — is the microkernel's,
    which computes each row by itself: `predict` of [300, 500, 40] (both layers of 1,024 weights
    or more over 32 inputs or more) gives every row the bits it has alone, in chunks of 16 and 1
    rows (n = 17 in float64), of 16 (32), of 24 and 9 (33 in float32), of 32 (64), on 1 and 2
    threads; and each row is the reference's."""
    net, X, _ = make_problem([300, 500, 40], 64, dtype, seed=3, activation="tanh")
    top = 32 if dtype == "float64" else 64
    alone = np.concatenate([net.predict(X[k:k + 1]) for k in range(top)])
    for n in (top // 2 + 1, top):
        for t in (1, 2):
            np.testing.assert_array_equal(net.predict(X[:n], n_threads=t), alone[:n])
    for k in (0, top // 2, top - 1):
        _, a = reference.forward(*nested(net), X[k].tolist(), net.activations)
        assert relative_difference(alone[k], np.array(a[-1])) <= REFERENCE_TOLERANCE[dtype]


def panelled(net, n, small=False):
    """The layers whose z = a wᵀ a call on n rows (128 or more) takes from panels: 1,024 weights
    or more, and at most 64 neurons where BLAS packs every product (not `small`) — or, on 256
    rows or more, at most 4 n inputs, on any BLAS (it packs products that large whatever its
    kind), but for a layer that BLAS multiplies from w transposed (`transposed`)."""
    return [l for l, w in enumerate(net.weights, 1) if w.size >= 1024 and (
        (w.shape[0] <= 64 and not small)
        or (n >= 256 and w.shape[1] <= 4 * n and l not in transposed(net, small)))]


def transposed(net, small):
    """The layers whose w a call on 128 rows or more copies transposed for BLAS where it skips
    packing small products (`small`): fewer than 32 inputs, or at most 4,096 weights."""
    return [l for l, w in enumerate(net.weights, 1)
            if small and (w.shape[1] < 32 or w.size <= 4096)]


def stripped(net, n):
    """The layers whose δ w^(l) a call on n rows that goes down the layers takes from w^(l)'s
    strips of columns, on any BLAS: l ≥ 2, 1,024 weights or more, more than 64 neurons and at
    most 4 n, on 256 rows or more."""
    return [l for l, w in enumerate(net.weights, 1) if l >= 2 and w.size >= 1024
            and n >= 256 and 64 < w.shape[0] <= 4 * n]


def panels_bytes(net, n, backward=False, small=False):
    """The bytes of a call's copies of w: in panels of 64 bytes of neurons (`panelled`), or
    transposed (`transposed`), and for a call that goes down the layers (``backward``) in
    strips of 64 bytes of columns (`stripped`)."""
    item = np.dtype(net.dtype).itemsize
    panel = 64 // item
    return sum(-(-net.weights[l - 1].shape[0] // panel) * panel * net.weights[l - 1].shape[1]
               * item for l in panelled(net, n, small)) + sum(
        net.weights[l - 1].size * item for l in transposed(net, small)
        if l not in panelled(net, n, small)) + sum(
        -(-net.weights[l - 1].shape[1] // panel) * panel * net.weights[l - 1].shape[0] * item
        for l in (stripped(net, n) if backward else ()))


@pytest.mark.parametrize("sizes", [[784, 30, 10], [37, 64, 50, 65, 3], [1100, 1]])
@pytest.mark.parametrize("n", [128, 133, 400])
def test_narrow_layers_over_many_rows_from_panels(sizes, n, dtype):
    """Where BLAS packs every product, a call on 128 examples or more computes z = a wᵀ of each
    layer of at most 64 neurons and 1,024 weights or more by bpfast's own product, from w
    copied in panels of 64 bytes of neurons (zeros past n_l): here w^(1) of [784, 30, 10]
    (panels of 8 or 16 neurons, the last one short), w^(1) and w^(2) of [37, 64, 50, 65, 3]
    (not [65 → 3], nor [50 → 65] but on 256 rows or more), the one neuron of [1,100, 1]. Six
    rows at a time, the last few fewer (n = 133). Outputs and ∂C_k/∂θ against the reference,
    the same bits on 1, 2 and 3 threads; z^(1) of a row the same bits wherever it stands
    (shuffled) and in a call on more rows: each of its numbers is one chain of multiply-adds,
    whatever the rows beside it (the layers BLAS computes may differ with a row's place in its
    chunk)."""
    _blas._libraries()
    found = _kernels.blas_small_path()
    _kernels.use_blas_small_path(False)
    try:
        net, X, Y = make_problem(sizes, n, dtype, seed=n, activation="tanh")
        outputs = [net.predict(X, n_threads=t) for t in (1, 2, 3)]
        rows = [net.per_example_gradients(X, Y, n_threads=t).vector() for t in (1, 2, 3)]
        kept = net._workspace
        work = (kept.A.nbytes + kept.S.nbytes + kept.T.nbytes
                + (kept.Z.nbytes if kept.Z is not None else 0))
        assert kept.nbytes - work == panels_bytes(net, n, backward=True) > 0
        for t in (1, 2, 3):
            ran = products_run("z = a wᵀ", net.predict, X, n_threads=t)
            assert {(path == "panels", nj, ni) for path, m, nj, ni in ran} == {
                (l in panelled(net, n), *w.shape) for l, w in enumerate(net.weights, 1)}, t
        for t in (1, 2):
            np.testing.assert_array_equal(outputs[t], outputs[0])
            np.testing.assert_array_equal(rows[t], rows[0])
        for k in {0, 5, 6, n - 1}:
            _, a = reference.forward(*nested(net), X[k].tolist(), net.activations)
            assert relative_difference(outputs[0][k], np.array(a[-1])) <= \
                REFERENCE_TOLERANCE[dtype], k
        assert_rows_are_the_references(net, X, Y, net.per_example_gradients(X, Y),
                                       [0, n - 1], dtype)
        z = net.forward(X).z[0]
        order = np.random.default_rng(n).permutation(n)
        np.testing.assert_array_equal(net.forward(X[order]).z[0], z[order])
        np.testing.assert_array_equal(net.forward(np.vstack([X, X[:50]])).z[0][:n], z)
    finally:
        _kernels.use_blas_small_path(found)


@pytest.mark.parametrize("n", [255, 256, 300])
def test_wide_layers_from_panels_on_256_rows_or_more(n, dtype, blas_small_path):
    """On any BLAS — it packs products this large whatever its kind —, a call on 256 examples or
    more takes z = a wᵀ of a layer of more than 64 neurons from panels, if it has at most 4 n
    inputs (the copy then holds at most 4 times z's numbers): in [40, 1,100, 70, 3], w^(1) from
    256 rows on, w^(2) (1,100 inputs) from 275, w^(3) (210 weights) never (where BLAS skips
    packing small products, copied transposed); and δ^(2) w^(2) (70 neurons) from 256 rows on
    from w^(2)'s strips of columns, in a call that goes down the layers. The copy holds those
    panels, strips and transposed w and no more. Outputs, ∂C_k/∂θ against the reference, the
    same bits on 1, 2 and 3 threads and, from panels, z^(1) of a row the same bits wherever it
    stands."""
    net, X, Y = make_problem([40, 1100, 70, 3], n, dtype, seed=n, activation="tanh")
    expected = {256: [1], 300: [1, 2]}.get(n, [])
    assert panelled(net, n, blas_small_path) == expected
    assert transposed(net, blas_small_path) == ([3] if blas_small_path else [])
    for t in (1, 2, 3):
        ran = products_run("z = a wᵀ", net.predict, X, n_threads=t)
        assert {(path, nj, ni) for path, m, nj, ni in ran} == {
            ("panels" if l in expected else "BLAS", *w.shape)
            for l, w in enumerate(net.weights, 1)}, t
    kept = net._workspace
    work = (kept.A.nbytes + kept.S.nbytes + kept.T.nbytes
            + (kept.Z.nbytes if kept.Z is not None else 0))
    assert kept.nbytes - work == panels_bytes(net, n, small=blas_small_path)
    outputs = [net.predict(X, n_threads=t) for t in (1, 2, 3)]
    rows = [net.per_example_gradients(X, Y, n_threads=t) for t in (1, 2, 3)]
    for t in (1, 2, 3):
        ran = products_run("δ w", net.per_example_norms, X, Y, n_threads=t)
        assert {(path, nj, ni) for path, m, nj, ni in ran} == {
            ("panels" if n >= 256 else "BLAS", 70, 1100), ("BLAS", 3, 70)}, t
    assert stripped(net, n) == ([2] if n >= 256 else [])
    assert kept.nbytes - work == panels_bytes(net, n, backward=True, small=blas_small_path)
    # Each call copies its panels and strips afresh, every part its share: with θ changed
    # between calls, a share left from the call before (the kept buffer) gives other bits.
    thetas = [net.parameters_vector(), net.parameters_vector() * 0.5]
    alone = []
    for theta in thetas:
        net.set_parameters_vector(theta)
        alone.append(net.per_example_gradients(X, Y, n_threads=1).vector())
    for t in (2, 3):
        for theta, rows_alone in zip(thetas, alone):
            net.set_parameters_vector(theta)
            np.testing.assert_array_equal(
                net.per_example_gradients(X, Y, n_threads=t).vector(), rows_alone)
    net.set_parameters_vector(thetas[0])
    for t in (1, 2):
        np.testing.assert_array_equal(outputs[t], outputs[0])
        np.testing.assert_array_equal(rows[t].vector(), rows[0].vector())
    for k in (0, n - 1):
        _, a = reference.forward(*nested(net), X[k].tolist(), net.activations)
        assert relative_difference(outputs[0][k], np.array(a[-1])) <= \
            REFERENCE_TOLERANCE[dtype], k
    assert_rows_are_the_references(net, X, Y, rows[0], [0, n - 1], dtype)
    if expected:                # BLAS's z^(1) may differ with a row's place in its chunk
        z = net.forward(X).z[0]
        order = np.random.default_rng(n).permutation(n)
        np.testing.assert_array_equal(net.forward(X[order]).z[0], z[order])


def assert_mean_is_the_references(net, X, Y, dtype):
    """The batch mean ∂C/∂θ and the cost beside it, on 1, 2 and 3 threads, against the
    reference."""
    expected = reference_gradient(net, X, Y)
    for t in (1, 2, 3):
        cost, g = net.cost_and_gradient(X, Y, n_threads=t)
        assert relative_difference(g.vector(), expected) <= REFERENCE_TOLERANCE[dtype], t
        assert cost == pytest.approx(net.cost(X, Y), rel=1e-12 if dtype == "float64" else 1e-5)


def by_rows(net, n):
    """The layers whose ∂C/∂w over n rows bpfast's own product computes where BLAS packs every
    product: at least 1,024 weights, a row of δ of at most 256 bytes, 128 rows or more."""
    item = np.dtype(net.dtype).itemsize
    return [l for l, w in enumerate(net.weights, 1)
            if n >= 128 and w.shape[0] * item <= 256 and w.size >= 1024]


@pytest.mark.parametrize("blas_small_path", [False], indirect=True)
@pytest.mark.parametrize("sizes", [[784, 30, 10], [300, 7, 2], [1100, 1], [37, 64, 50, 65, 3]])
@pytest.mark.parametrize("n", [128, 133, 400])
def test_narrow_layers_weights_gradient_over_many_rows(sizes, n, dtype, blas_small_path):
    """Where BLAS packs every product, ∂C/∂w = (1/n) δᵀ a of a layer of few neurons over 128
    rows or more is bpfast's own product, a over the rows in place, 32 at a time, 6 neurons × 2
    vectors at a time — here 30, 7 (6 + 1) and 1 neurons, inputs not a multiple of two vectors
    (300, 1,100, 37: the last columns one by one), rows not a multiple of 32 (133). The batch
    mean (by examples on two threads: each part's own sums; by neurons on three) and the cost
    beside it against the reference, and the layers the rule takes those expected — and those
    the call on one thread (all n rows in one part) gives bpfast's product."""
    net, X, Y = make_problem(sizes, n, dtype, seed=n, activation="tanh")
    taken = [l for l, w in enumerate(net.weights, 1)
             if _kernels.dT_a_by_rows(n, w.shape[0], w.shape[1], dtype)]
    assert taken == by_rows(net, n)
    layer = {w.shape[1]: l for l, w in enumerate(net.weights, 1)}
    ran = products_run("∂C/∂w = δᵀ a", net.gradient, X, Y, n_threads=1)
    assert sorted((layer[ni], path) for path, m, nj, ni in ran) == [
        (l, "rows" if l in taken else "packed" if l in packed(net, n, 1) else "BLAS")
        for l in range(1, net.L + 1)]
    # [37, 64, 50, 65, 3]: in float32 its first two layers (its third, 260 bytes of δ a row,
    # from packed operands); in float64 none (512 and 400 bytes a row: BLAS).
    assert all(not _kernels.dT_a_by_rows(127, *net.weights[l - 1].shape, dtype) for l in taken)
    assert_mean_is_the_references(net, X, Y, dtype)


def packed(net, n, parts):
    """The layers whose ∂C/∂w over a call's n rows, its mean by neurons in `parts` parts, bpfast's
    product from packed operands computes, on any BLAS (it packs these products whatever its
    kind): in float32, at least
    1,024 weights, 64 to 1,024 rows, a part's row of δ (its share of the neurons, the largest)
    wider than 256 bytes — wider than the by-rows product takes."""
    item = np.dtype(net.dtype).itemsize
    return [l for l, w in enumerate(net.weights, 1) if item == 4
            and 64 <= n <= 1024 and -(-w.shape[0] // parts) * item > 256 and w.size >= 1024]


@pytest.mark.parametrize("sizes,n", [([37, 130, 65, 3], 100), ([37, 130, 65, 3], 300),
                                     ([64, 70, 3], 64)])
def test_wide_layers_weights_gradient_from_packed_operands(sizes, n, dtype, blas_small_path):
    """On any BLAS, a call's batch mean by neurons takes ∂C/∂w of a layer
    wider than the by-rows product takes from packed operands, over all its rows at once: the
    parts pack their rows of a^(l−1) in panels going down, then each its neurons' columns of δ
    over every region — in float32. Here neurons per part not a multiple of the product's 6
    (130, 65, 70), inputs not a multiple of a panel (37, 130, 65), more rows than a block of
    the product's (300 > 256) and more neurons than a block of δ's panels (130 > 126).
    On 1, 2, 3 threads: the layers the rule names from panels where the mean goes by neurons
    (on 300 rows, by examples past one part: none), a product per part over every row and its
    share of the neurons; the batch mean against the reference — X changed between calls, so
    that stale panels from the call before would show."""
    net, X, Y = make_problem(sizes, n, dtype, seed=n, activation="tanh")
    layer = {w.shape[1]: l for l, w in enumerate(net.weights, 1)}
    seen = set()
    expected = {scale: reference_gradient(net, X * scale, Y) for scale in (1, 0.5)}
    for t in (1, 2, 3):
        parts = _kernels.call_parts(n, t)
        seen.add(parts)
        for scale in (1, 0.5):
            Xs = X * scale
            by_neurons = parts == 1 or n * sum(sizes[:-1]) <= 2 * net.n_params
            ran = products_run("∂C/∂w = δᵀ a", net.gradient, Xs, Y, n_threads=t)
            assert sorted((layer[ni], nj) for path, m, nj, ni in ran if path == "packed") == \
                sorted((l, len(share)) for l in packed(net, n, parts) if by_neurons
                       for share in np.array_split(np.arange(sizes[l]), parts)), (t, parts)
            assert all(m == n for path, m, nj, ni in ran if path == "packed")
            got = net.gradient(Xs, Y, n_threads=t).vector()
            assert relative_difference(got, expected[scale]) <= REFERENCE_TOLERANCE[dtype], \
                (t, scale)
    assert seen == ({1, 2, 3} if n > 256 else {1, 2})      # three parts from 3 chunks of rows
    # In float64 BLAS keeps every layer: the product from packed operands measured no faster.
    assert packed(net, n, 1) == (list(range(1, len(sizes) - 1)) if dtype == "float32" else [])


def test_past_1024_rows_the_weights_gradient_goes_back_to_blas(blas_small_path):
    """On more than 1,024 rows the product from packed operands reads each block's stretch of
    a's panels from memory, panels far apart, and loses to BLAS: a call on one thread (its mean
    by neurons) takes BLAS there — its mean the float64 network's to float32's precision."""
    net, X, Y = make_problem([37, 130, 65, 3], 1025, "float32", seed=2, activation="tanh")
    assert packed(net, 1024, 1) == [1, 2] and packed(net, 1025, 1) == []
    for n, path in ((1024, "packed"), (1025, "BLAS")):
        ran = products_run("∂C/∂w = δᵀ a", net.gradient, X[:n], Y[:n], n_threads=1)
        assert [entry[0] for entry in ran] == [path, path, "BLAS"], n
    wide = bpfast.Network.from_params([w.astype(np.float64) for w in net.weights],
                                      [b.astype(np.float64) for b in net.biases],
                                      activation="tanh")
    for n in (1024, 1025):
        expected = wide.gradient(X[:n].astype(np.float64), Y[:n].astype(np.float64)).vector()
        got = net.gradient(X[:n], Y[:n], n_threads=1).vector()
        assert relative_difference(got, expected) <= REFERENCE_TOLERANCE["float32"], n


@pytest.mark.parametrize("sizes,n", [([784, 30, 10], 32), ([300, 7, 2], 9), ([37, 64, 50, 3], 63),
                                     ([40, 8, 3], 40)])
@pytest.mark.parametrize("blas_small_path", [False], indirect=True)
def test_weights_gradient_over_a_few_rows_by_the_microkernel(sizes, n, dtype, blas_small_path):
    """Where BLAS packs every product, a call's ∂C/∂w over a region of fewer than 64 rows, for a
    block of w of at most 256 KiB over 32 inputs or more, is the microkernel's (atb): written by
    the first region, added to by the next — by neurons on two and three threads, by examples
    (each part's own sums, then added) on [40, 8, 3], whose inputs outweigh its weights. The
    batch mean and the cost against the reference on 1, 2 and 3 threads, and the layers the
    rule takes those expected: every layer of 32 inputs or more ([8 → 3] and [7 → 2] are left
    to BLAS), and none on 64 rows."""
    net, X, Y = make_problem(sizes, n, dtype, seed=n, activation="tanh")
    taken = [l for l, w in enumerate(net.weights, 1)
             if _kernels.dT_a_few_rows(n, w.shape[0], w.shape[1], dtype)]
    assert taken == [l for l in range(1, len(sizes)) if sizes[l - 1] >= 32]
    assert not any(_kernels.dT_a_few_rows(64, *w.shape, dtype) for w in net.weights)
    for t in (1, 2, 3):
        ran = products_run("∂C/∂w = δᵀ a", net.cost_and_gradient, X, Y, n_threads=t)
        assert {(path, ni) for path, m, nj, ni in ran} == {
            ("microkernel" if n_in >= 32 else "BLAS", n_in) for n_in in sizes[:-1]}, t
    assert_mean_is_the_references(net, X, Y, dtype)


def test_the_kernels_know_which_blas_skips_packing_small_products():
    """OpenBLAS's kernels for AVX-512 cores multiply small products without packing; the
    kernels follow the core that the BLAS they call (scipy's, 32-bit integers) reports."""
    class Handle:
        def __init__(self, internal_api, architecture):
            self.internal_api, self.architecture = internal_api, architecture
    for core, small in [("SkylakeX", True), ("COOPERLAKE", True), ("SapphireRapids", True),
                        ("Haswell", False), ("Zen", False), ("Prescott", False)]:
        assert _blas._small_path(Handle("openblas", core)) is small, core
    assert not _blas._small_path(Handle("mkl", "SkylakeX"))
    from threadpoolctl import ThreadpoolController
    theirs = [library for library in ThreadpoolController().lib_controllers
              if library.user_api == "blas" and _blas._called_by_the_kernels(library)]
    _blas._libraries()
    # A BLAS threadpoolctl does not know (none found) is taken to pack every product.
    assert _kernels.blas_small_path() == (bool(theirs) and
                                          all(_blas._small_path(library) for library in theirs))


def test_cost_and_gradient_is_cost_and_gradient(dtype):
    net, X, Y = make_problem([7, 5, 3], 80, dtype, seed=2)
    cost, g = net.cost_and_gradient(X, Y)
    assert cost == pytest.approx(net.cost(X, Y), rel=1e-12 if dtype == "float64" else 1e-6)
    np.testing.assert_array_equal(g.vector(), net.gradient(X, Y).vector())
    assert relative_difference(g.vector(), reference_gradient(net, X, Y)) <= \
        REFERENCE_TOLERANCE[dtype]
    assert isinstance(cost, float)


def test_per_example_gradients_into_the_callers_buffer(dtype):
    net, X, Y = make_problem([6, 9, 4], 12, dtype, seed=1)
    expected = net.per_example_gradients(X, Y).vector()
    buffer = np.full((12, net.n_params), 7.0, dtype=dtype)
    result = net.per_example_gradients(X, Y, out=buffer)
    assert np.shares_memory(result.vector.__self__._vector, buffer)
    np.testing.assert_array_equal(buffer, expected)
    again = net.per_example_gradients(X, Y, out=result)          # a Gradient is a buffer too
    assert again is result
    np.testing.assert_array_equal(result.vector(), expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_example_rows_into_a_kept_buffer_beyond_the_caches_go_out_in_non_temporal_stores(
        dtype):
    """Into a kept buffer of more than `_kernels.streamed_bytes`, each part's rows go through a
    stage in L1 and out a whole line at a time: the same numbers as the stores, the lines a part
    shares with its neighbour or with what lies around the buffer left as they were. Rows of 37,
    130 and 65 numbers, so that few rows start on a line."""
    sizes = [37, 130, 65, 3]
    P = 37 * 130 + 130 + 130 * 65 + 65 + 65 * 3 + 3
    itemsize = np.dtype(dtype).itemsize
    n = _kernels.streamed_bytes // (P * itemsize) + 7
    net, X, Y = make_problem(sizes, n, dtype, seed=3)
    expected = net.per_example_gradients(X, Y, n_threads=1).vector()
    assert products_run("δ_k a_kᵀ", net.per_example_gradients, X, Y, n_threads=1) == [
        ("stores", n, 130, 37), ("stores", n, 65, 130), ("stores", n, 3, 65)]    # a fresh array
    for start in (0, 1, 5):                 # on a line, and numbers past one
        memory = np.full(n * P + 16, -7.0, dtype)
        out = memory[start:start + n * P].reshape(n, P)
        for n_threads in (1, 2):
            out[...] = 3.0
            ran = products_run("δ_k a_kᵀ", net.per_example_gradients, X, Y, out=out,
                               n_threads=n_threads)
            parts = len(ran) // 3
            assert {path for path, *_ in ran} == {"streamed"} and sum(
                rows for _, rows, *_ in ran) == n * 3, ran
            assert parts == n_threads
            np.testing.assert_array_equal(out, expected)
            assert (memory[:start] == -7).all() and (memory[start + n * P:] == -7).all()
    # Below the bound, or into numbers not aligned as the dtype: stores.
    small = net.per_example_gradients(X[:n // 2], Y[:n // 2], n_threads=1).vector()
    out = np.empty((n // 2, P), dtype)
    ran = products_run("δ_k a_kᵀ", net.per_example_gradients, X[:n // 2], Y[:n // 2], out=out)
    assert {path for path, *_ in ran} == {"stores"}
    np.testing.assert_array_equal(out, small)
    unaligned = np.empty(n * P * itemsize + 1, np.uint8)[1:].view(dtype).reshape(n, P)
    assert not unaligned.flags.aligned
    ran = products_run("δ_k a_kᵀ", net.per_example_gradients, X, Y, out=unaligned)
    assert {path for path, *_ in ran} == {"stores"}
    np.testing.assert_array_equal(unaligned, expected)


@pytest.mark.parametrize("make_out,error,message", [
    (lambda n, P, X, Y: np.empty((n, P + 1)), ValueError, r"out must have shape \(12, 103\) for "
                                                           r"12 examples"),
    (lambda n, P, X, Y: np.empty((n, P), np.float32), TypeError, "out must have the network's "
                                                                 "dtype float64, got float32"),
    (lambda n, P, X, Y: np.empty((n, P), order="F"), ValueError, "C-contiguous and writable"),
    (lambda n, P, X, Y: np.empty((n, 2 * P))[:, ::2], ValueError, "C-contiguous"),
    (lambda n, P, X, Y: np.broadcast_to(np.empty(P), (n, P)), ValueError, "writable"),
    (lambda n, P, X, Y: [[0.0] * P] * n, TypeError, "out must be a numpy array or a "
                                                    "bpfast.Gradient, got list"),
    (lambda n, P, X, Y: bpfast.Network([6, 5, 4]).per_example_gradients(X, Y), ValueError,
     r"out must be per-example gradients of sizes \[6, 9, 4\]"),
    (lambda n, P, X, Y: bpfast.Network([6, 9, 4]).gradient(X, Y), ValueError,
     "out must be per-example gradients"),
])
def test_a_bad_out_is_refused_and_left_untouched(make_out, error, message):
    net, X, Y = make_problem([6, 9, 4], 12, seed=1)
    out = make_out(12, net.n_params, X, Y)
    before = np.array(out.vector() if isinstance(out, bpfast.Gradient) else out, copy=True)
    with pytest.raises(error, match=message):
        net.per_example_gradients(X, Y, out=out)
    after = out.vector() if isinstance(out, bpfast.Gradient) else np.asarray(out)
    np.testing.assert_array_equal(after, before)


def test_out_must_not_overlap_the_inputs_or_the_parameters():
    net = bpfast.Network([3, 2], seed=0)                          # P = 8
    n, P = 4, 8
    memory = np.zeros(n * P)
    X, Y = np.zeros((n, 3)), np.zeros((n, 2))
    shared = memory[:n * 3].reshape(n, 3)
    with pytest.raises(ValueError, match="out must not overlap X"):
        net.per_example_gradients(shared, Y, out=memory.reshape(n, P))
    shared = memory[-n * 2:].reshape(n, 2)
    with pytest.raises(ValueError, match="out must not overlap Y"):
        net.per_example_gradients(X, shared, out=memory.reshape(n, P))
    onto_theta = np.lib.stride_tricks.as_strided(net.weights[0], shape=(1, P), strides=(64, 8))
    assert onto_theta.flags.c_contiguous and onto_theta.flags.writeable
    with pytest.raises(ValueError, match="out must not overlap the network's parameters"):
        net.per_example_gradients(X[:1], Y[:1], out=onto_theta)


def test_nothing_is_written_when_the_inputs_are_refused():
    net, X, Y = make_problem([6, 9, 4], 12, seed=1)
    buffer = np.full((12, net.n_params), 7.0)
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        net.per_example_gradients(X, Y, out=buffer)
    np.testing.assert_array_equal(buffer, 7.0)
    X[5, 2] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        net.per_example_gradients(X, Y, out=buffer)
    np.testing.assert_array_equal(buffer, 7.0)


def test_per_example_gradients_into_a_fresh_array_or_a_kept_one_are_judged_apart(monkeypatch):
    """The pool lends a team per kind of job, and the team compares its steps' times: a fresh
    output's pages are faulted in as it is written, a kept one's are not, so the two are two
    kinds (one team judging both compared a 50 ms call with a 25 ms one)."""
    from bpfast import _pool
    kinds = []
    lend = _pool.team

    def recording(n_workers, kind, *rest):
        kinds.append(kind)
        return lend(n_workers, kind, *rest)

    monkeypatch.setattr(_pool, "team", recording)
    net, X, Y = make_problem([20, 10, 3], 64, seed=1)
    buffer = np.empty((64, net.n_params))
    net.per_example_gradients(X, Y)
    net.per_example_gradients(X, Y, out=buffer)
    net.per_example_gradients(X, Y)
    assert kinds[0] != kinds[1] and kinds[0] == kinds[2]


@pytest.mark.parametrize("bad_row", [0, 999])
def test_nothing_is_written_by_any_thread_when_a_row_of_x_is_not_finite(bad_row):
    """Threads share the rows and each writes its own: the barrier before writing (every part's
    z^(1) found finite) is what keeps a part with good rows from writing while another's are
    bad — the bad row first, in the first part, or last, in the second."""
    net, X, Y = make_problem([40, 30, 5], 1000, seed=2)
    buffer = np.full((1000, net.n_params), 7.0)
    X[bad_row, 3] = np.nan
    for n_threads in (1, 2):
        with pytest.raises(ValueError, match="Input X contains NaN"):
            net.per_example_gradients(X, Y, out=buffer, n_threads=n_threads)
        np.testing.assert_array_equal(buffer, 7.0)


@pytest.mark.parametrize("sizes, n", [([30, 20, 5], 300), ([30, 20, 5], 20),
                                      ([200, 40, 5], 100), ([200, 40, 5], 257),
                                      ([200, 40, 5], 136), ([30, 20, 5], 384)])
def test_threads_share_the_examples_reproducibly(sizes, n):
    """Per-example rows are the same for any number of threads (each row is computed alike:
    batches small enough for the microkernels, and batches whose parts call BLAS, whose result
    for a row may depend on how many rows it is given); batch sums are the same bits, call
    after call, for a given number."""
    net, X, Y = make_problem(sizes, n, seed=3)
    rows = [net.per_example_gradients(X, Y, n_threads=t).vector() for t in (1, 2, 3)]
    np.testing.assert_array_equal(rows[0], rows[1])
    np.testing.assert_array_equal(rows[0], rows[2])
    for threads in (1, 2, 3):
        first = net.gradient(X, Y, n_threads=threads).vector()
        np.testing.assert_array_equal(net.gradient(X, Y, n_threads=threads).vector(), first)
        assert relative_difference(first, rows[0].mean(axis=0)) <= 1e-14
        norms = net.per_example_norms(X, Y, n_threads=threads)
        np.testing.assert_array_equal(norms, net.per_example_norms(X, Y, n_threads=1))
        np.testing.assert_array_equal(net.predict(X, n_threads=threads), net.predict(X))


def test_a_calls_two_parts_share_its_rows_evenly():
    """The parts of a call start on a multiple of its chunk of rows, which depends on n alone
    (each row is then computed alike whatever the number of parts): the chunk is chosen so that
    two parts get about as many rows — from 64 rows on, neither more than 1.25 times half of
    them (chunks of half the batch rounded up to a power of two gave one part 128 of 129 rows,
    and 128 of 384) — and the narrow layers' chunks divide it."""
    net = bpfast.Network([784, 30, 10])
    for n in range(64, 3000):
        rows = [r for _, r, _ in _kernels.regions(net._layout, n, 2)]
        assert sum(rows) == n and max(rows) <= 1.25 * n / 2, (n, rows)
    for n in (136, 200, 384):
        rows = [r for _, r, _ in _kernels.regions(net._layout, n, 2)]
        assert max(rows) - min(rows) <= 8, (n, rows)


def test_the_weights_copied_for_a_call_are_the_narrow_layers_only(blas_small_path):
    """A call on 128 examples or more copies the weights of its narrow layers — their numbers,
    not θ's: where BLAS skips packing small products, w^(l)ᵀ of the layers of few inputs or few
    weights (its products take them untransposed), in [16, 2,048, 2,048, 10] 16 × 2,048 of them;
    where BLAS packs every product, the layers of few neurons in panels (`panels_bytes`), there
    [2,048 → 10] as 16 × 2,048 floats; not the 4.2 million of θ. A call on fewer rows, whose
    products would not repay the copy, copies none. Either way the output is the network's."""
    net = bpfast.Network([16, 2048, 2048, 10], dtype="float32", seed=0)
    X = np.random.default_rng(0).random((128, 16)).astype(np.float32)
    a = X[:3].T.astype(np.float64)
    for w, b in zip(net.weights, net.biases):
        a = 1 / (1 + np.exp(-(w.astype(np.float64) @ a + b[:, None])))
    for n in (1, 3, 128):
        net._workspace = None
        np.testing.assert_allclose(net.predict(X[:n])[:3], a.T[:n], rtol=1e-5)
        workspace = net._workspace
        work = (workspace.A.nbytes + workspace.S.nbytes + workspace.T.nbytes
                + (workspace.Z.nbytes if workspace.Z is not None else 0))
        copies = 16 * 2048 * 4 if blas_small_path else panels_bytes(net, n)
        assert workspace.nbytes == work + (copies if n == 128 else 0), n


def assert_one_step_of_fit_is(net, X, Y, gradient, tolerance):
    """One step of fit over the whole batch, on 1 and 2 threads, is θ − η ∂C/∂θ."""
    theta = net.parameters_vector().astype(np.float64)
    for threads in (1, 2):
        stepped = bpfast.Network.from_params(net.weights, net.biases, dtype=net.dtype)
        stepped.fit(X, Y, epochs=1, batch_size=len(X), learning_rate=0.5, n_threads=threads)
        step = (theta - stepped.parameters_vector()) / 0.5
        assert relative_difference(step, gradient) <= tolerance, threads


def test_a_narrow_layer_over_many_rows_sums_its_blocks_of_rows(dtype, blas_small_path):
    """∂C/∂w^(1) of [1,000, 8, 3] on 400 examples has 3.2 million multiply-adds, which BLAS is
    given in blocks of at most a million (a block's rows added to the ones before) where it
    multiplies those without packing, all at once where it packs every product: the call's
    mean on 1, 2 and 3 threads and fit's step (128 rows at a time on each part) are the mean of
    the per-example rows, which never go through such a sum."""
    net, X, Y = make_problem([1000, 8, 3], 400, dtype, seed=4)
    tolerance = 1e-13 if dtype == "float64" else 1e-5
    expected = net.per_example_gradients(X, Y).vector().astype(np.float64).mean(axis=0)
    for threads in (1, 2, 3):
        assert relative_difference(net.gradient(X, Y, n_threads=threads).vector(),
                                   expected) <= tolerance
    assert_one_step_of_fit_is(net, X, Y, expected, 10 * tolerance)


def test_a_layer_of_more_than_a_million_weights_on_one_thread(dtype, blas_small_path):
    """∂C/∂w^(1) of [1,000, 1,001, 1] has more weights than BLAS's unpacked path takes at once
    (SMALL_MACS) where BLAS skips packing: not one of its rows fits in a block, so BLAS takes
    every row at once, as it does where it packs every product — the
    call on one thread (or on two examples: one part) and fit's step of 64 on one thread, which
    the rows per block, once divided by zero, killed (SIGFPE)."""
    net, X, Y = make_problem([1000, 1001, 1], 64, dtype, seed=5)
    tolerance = 1e-13 if dtype == "float64" else 1e-5
    per_example = [net.per_example_gradients(X[k:k + 8], Y[k:k + 8]).vector().astype(np.float64)
                   for k in range(0, 64, 8)]
    expected = sum(rows.sum(axis=0) for rows in per_example) / 64
    for threads in (1, 2):
        assert relative_difference(net.gradient(X, Y, n_threads=threads).vector(),
                                   expected) <= tolerance
    assert relative_difference(net.gradient(X[:2], Y[:2]).vector(),
                               per_example[0][:2].mean(axis=0)) <= tolerance
    assert_one_step_of_fit_is(net, X, Y, expected, 10 * tolerance)


def test_kept_work_buffers_never_back_what_a_call_returns():
    net, X, Y = make_problem([6, 9, 4], 12, seed=1)
    first, trace = net.predict(X), net.forward(X)
    kept = [a.copy() for a in trace.a] + [z.copy() for z in trace.z]
    net.predict(X + 1.0)
    net.forward(X * 2.0)
    net.gradient(X * 3.0, Y)
    np.testing.assert_array_equal(net.predict(X), first)
    for got, want in zip(trace.a + trace.z, kept):
        np.testing.assert_array_equal(got, want)


def test_two_threads_calling_one_network_get_their_own_answers():
    net, X, Y = make_problem([40, 30, 5], 200, seed=5)
    inputs = [X * (1 + k / 10) for k in range(6)]
    expected = [(net.gradient(x, Y).vector(), net.predict(x)) for x in inputs]
    failures = []

    def work(k):
        for _ in range(20):
            for j in (k, k + 3):
                g, a = net.gradient(inputs[j], Y).vector(), net.predict(inputs[j])
                if not (np.array_equal(g, expected[j][0]) and np.array_equal(a, expected[j][1])):
                    failures.append(j)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_the_objective_serves_scipy_and_leaves_the_network_alone(dtype):
    scipy_optimize = pytest.importorskip("scipy.optimize")
    net, X, Y = make_problem([4, 6, 2], 60, dtype, seed=7)
    theta = net.parameters_vector()
    f = net.objective(X, Y)
    cost, gradient = f(theta.astype(np.float64))
    assert cost == pytest.approx(net.cost(X, Y), rel=1e-6)
    assert gradient.dtype == np.float64 and gradient.shape == (net.n_params,)
    np.testing.assert_allclose(gradient, net.gradient(X, Y).vector(), rtol=1e-6)
    if dtype == "float64":                  # finite differences of a float32 cost are noise
        error = scipy_optimize.check_grad(lambda t: f(t)[0], lambda t: f(t)[1], theta)
        assert error < 1e-6
    result = scipy_optimize.minimize(f, theta.astype(np.float64), jac=True, method="L-BFGS-B",
                                     options=dict(maxiter=50))
    assert result.fun < 0.5 * cost
    np.testing.assert_array_equal(net.parameters_vector(), theta)    # untouched
    with pytest.raises(ValueError, match=r"theta must have shape \(\d+,\)"):
        f(theta[:-1])
    with pytest.raises(ValueError, match="Input theta contains NaN"):
        f(np.full_like(theta, np.nan))


def test_the_calls_refuse_bad_flags_and_thread_counts():
    net, X, Y = make_problem([6, 9, 4], 5)
    with pytest.raises(TypeError, match="per_layer must be True or False, got 'yes'"):
        net.per_example_norms(X, Y, per_layer="yes")
    for call in (lambda: net.predict(X, n_threads=0), lambda: net.gradient(X, Y, n_threads=-1),
                 lambda: net.per_example_gradients(X, Y, n_threads=0)):
        with pytest.raises(ValueError, match="n_threads must be an integer ≥ 1"):
            call()


def test_theta_and_the_gradients_written_start_on_a_cache_line():
    """θ, a gradient and per-example gradients start on a 64-byte boundary: the kernels load
    32 bytes at a time along them, and BLAS may round differently on differently aligned
    operands (a call must give the same bits whatever memory it gets). Allocations land
    anywhere: twenty of each."""
    net, X, Y = make_problem([20, 10, 3], 64, seed=1)
    for seed in range(20):
        fresh = bpfast.Network([20, 10, 3], seed=seed)
        assert fresh._theta.ctypes.data % 64 == 0
        assert net.gradient(X, Y)._vector.ctypes.data % 64 == 0       # not vector(): a copy
        assert net.per_example_gradients(X, Y)._vector.ctypes.data % 64 == 0


def test_the_log_of_products_is_off_unless_asked_and_refuses_to_overflow():
    """The kernels log the products' paths only between `log_products(True)` and `(False)`,
    and reading a log that overflowed its slots is an error, not a silent cut."""
    net, X, Y = make_problem([6, 9, 4], 5, seed=1)
    _kernels.log_products(True)
    _kernels.log_products(False)
    net.gradient(X, Y)
    assert _kernels.logged_products() == []
    assert [entry[0] for entry in products_run(None, net.gradient, X, Y, n_threads=1)] == [
        "z = a wᵀ", "z = a wᵀ", "δ w", "∂C/∂w = δᵀ a", "∂C/∂w = δᵀ a"]
    _kernels.log_products(True)
    try:
        for _ in range(2000):
            net.gradient(X, Y, n_threads=1)
    finally:
        _kernels.log_products(False)
    with pytest.raises(RuntimeError, match="more than 4096 products logged"):
        _kernels.logged_products()
