"""bpfast.dask on a real dask.distributed.LocalCluster (worker processes, no mocks): the
cluster's results equal one process's on the same rows up to the order of the sums."""
import os
import signal

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import bpfast  # noqa: E402
import bpfast.dask as bd  # noqa: E402

BOUND = {"float64": 1e-12, "float32": 1e-5}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def problem(n=101, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 6)).astype(dtype)
    labels = rng.integers(0, 3, n)
    net = bpfast.Network([6, 5, 3], activation="tanh", output_activation="softmax",
                         cost="cross_entropy", dtype=dtype, seed=1)
    return net, X, labels


def twin(net):
    """A second network with the same parameters and choices as `problem`'s."""
    return bpfast.Network.from_params(net.weights, net.biases, activation="tanh",
                                      output_activation="softmax", cost="cross_entropy")


def assert_within_the_sums_order(net, X, Y, g, dtype):
    """|Δ_i| ≤ bound · (1/n) Σ_k |∂C_k/∂θ_i| for every coordinate i (the issue's bound: one
    relative to the mean gradient itself would fail where it cancels, near an optimum)."""
    expected = net.gradient(X, Y).vector().astype(np.float64)
    scale = np.abs(net.per_example_gradients(X, Y).vector().astype(np.float64)).mean(axis=0)
    difference = np.abs(g.vector().astype(np.float64) - expected)
    assert np.all(difference <= BOUND[dtype] * scale)


@pytest.mark.parametrize("chunks", [1, 7, 37, 101], ids=lambda c: f"chunks of {c}")
def test_cost_and_gradient_equal_one_process(client, chunks, dtype):
    net, X, labels = problem(dtype=dtype)
    Xd = da.from_array(X, chunks=(chunks, 6))
    C, g = bd.cost_and_gradient(net, Xd, da.from_array(labels, chunks=chunks))
    assert C == pytest.approx(net.cost(X, labels), rel=BOUND[dtype])
    assert g.dtype == np.dtype(dtype)
    assert_within_the_sums_order(net, X, labels, g, dtype)
    assert bd.cost(net, Xd, labels) == pytest.approx(net.cost(X, labels), rel=BOUND[dtype])
    cost, accuracy = bd.evaluate(net, Xd, labels)
    expected_cost, expected_accuracy = net.evaluate(X, labels)
    assert cost == pytest.approx(expected_cost, rel=BOUND[dtype])
    assert accuracy == expected_accuracy
    predicted = bd.predict(net, Xd)
    assert isinstance(predicted, da.Array)
    np.testing.assert_array_equal(predicted.compute(), net.predict(X))


def test_weighted_sums_equal_one_process_and_tasks_use_the_workers_threads(client):
    net, X, labels = problem()
    w = np.random.default_rng(3).random(len(X))
    C, g = bd.cost_and_gradient(net, da.from_array(X, chunks=(13, 6)), labels, sample_weight=w)
    C0, g0 = net.cost_and_gradient(X, labels, sample_weight=w)
    assert C == pytest.approx(C0, rel=1e-12)
    assert np.abs(g.vector() - g0.vector()).max() <= 1e-12 * np.abs(g0.vector()).max()
    assert client.submit(bd._worker_threads, pure=False).result() == 1


def test_minimize_on_the_cluster_is_one_process_minimize(client):
    net, X, labels = problem(n=300)
    local = twin(net)
    Xd = da.from_array(X, chunks=(40, 6)).persist()
    yd = da.from_array(labels, chunks=40).persist()
    result = bd.minimize(net, Xd, yd, max_iter=25, l2=1e-3)
    expected = local.minimize(X, labels, max_iter=25, l2=1e-3)
    assert result.nit == expected.nit == 25
    assert result.fun == pytest.approx(expected.fun, rel=1e-10)
    np.testing.assert_allclose(net.parameters_vector(), local.parameters_vector(), rtol=0,
                               atol=1e-8)


def test_a_worker_killed_during_lbfgs_changes_nothing(client):
    """A worker process killed (SIGKILL) after the 5th iteration: Dask recomputes its chunks
    on the worker the nanny starts again, and since the sums are added in chunk order the run is
    the undisturbed one — the same iterations, θ to 1e-12."""
    net, X, labels = problem(n=300)
    undisturbed = twin(net)
    Xd = da.from_array(X, chunks=(30, 6)).persist()
    yd = da.from_array(labels, chunks=30).persist()
    expected = bd.minimize(undisturbed, Xd, yd, max_iter=15, l2=1e-3)
    killed = []

    def kill_after_five(theta):
        if len(killed) == 0 and kill_after_five.iterations == 5:
            pids = client.run(os.getpid)
            address = sorted(pids)[0]
            os.kill(pids[address], signal.SIGKILL)
            killed.append(address)
        kill_after_five.iterations += 1

    kill_after_five.iterations = 0
    result = bd.minimize(net, Xd, yd, max_iter=15, l2=1e-3, callback=kill_after_five)
    assert killed
    assert result.nit == expected.nit == 15
    np.testing.assert_allclose(net.parameters_vector(), undisturbed.parameters_vector(), rtol=0,
                               atol=1e-12)


def test_model_averaging_is_deterministic_and_approaches_one_process_fit(client):
    net, X, labels = problem(n=600)
    order = np.random.default_rng(5).permutation(len(X))          # chunks alike
    X, labels = X[order], labels[order]
    Xd, yd = da.from_array(X, chunks=(150, 6)), da.from_array(labels, chunks=150)
    copies = [twin(net) for _ in range(3)]
    histories = [bd.average(c, Xd, yd, rounds=5, epochs=2, batch_size=10, learning_rate=0.1,
                            seed=7) for c in copies[:2]]
    np.testing.assert_array_equal(copies[0].parameters_vector(), copies[1].parameters_vector())
    assert histories[0].cost == histories[1].cost and len(histories[0].cost) == 5
    copies[2].fit(X, labels, epochs=10, batch_size=10, learning_rate=0.1, seed=7)
    start = net.cost(X, labels)
    averaged, single = copies[0].cost(X, labels), copies[2].cost(X, labels)
    assert averaged < start and averaged < 1.1 * single


def test_noisy_gradient_descent_is_clipped_full_batch_descent_plus_the_noise(client):
    """ν = 0: each step is θ − (η/N) Σ_k c_k ∂C_k/∂θ, computed here in one process from the
    per-example norms and a weighted gradient; the ε of the steps is the accountant's for
    sampling rate 1."""
    pytest.importorskip("dp_accounting")
    net, X, labels = problem(n=120)
    local = twin(net)
    Xd, yd = da.from_array(X, chunks=(25, 6)), da.from_array(labels, chunks=25)
    bd.noisy_gradient_descent(net, Xd, yd, steps=3, learning_rate=0.5, clip_norm=0.2,
                              noise_multiplier=0.0)
    for _ in range(3):
        norms = local.per_example_norms(X, labels)
        c = np.minimum(1.0, 0.2 / norms)
        g = local.gradient(X, labels, sample_weight=c).vector() * c.sum()
        local.set_parameters_vector(local.parameters_vector() - 0.5 / len(X) * g)
    np.testing.assert_allclose(net.parameters_vector(), local.parameters_vector(), rtol=0,
                               atol=1e-12)
    history = bd.noisy_gradient_descent(net, Xd, yd, steps=4, learning_rate=0.5, clip_norm=0.2,
                                        noise_multiplier=2.0, seed=0, target_delta=1e-5)
    assert history.epsilon == bpfast.privacy.epsilon(2.0, 1.0, 4, 1e-5)


def test_grid_searches_run_on_the_cluster_through_joblib(client):
    pytest.importorskip("sklearn")
    import warnings

    from joblib import parallel_config
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV

    from bpfast.sklearn import BPClassifier
    _, X, labels = problem(n=150)
    search = GridSearchCV(BPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
                          {"alpha": [1e-4, 1e-1], "solver": ["adam", "lbfgs"]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with parallel_config(backend="dask"):
            on_cluster = search.fit(X, labels).cv_results_["mean_test_score"]
        here = search.fit(X, labels).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(on_cluster, here)


def test_bad_arguments_are_refused_by_name(client):
    net, X, labels = problem()
    with pytest.raises(TypeError, match="net must be a bpfast.Network"):
        bd.cost_and_gradient("net", X, labels)
    with pytest.raises(ValueError, match="X has 5 columns"):
        bd.cost_and_gradient(net, da.from_array(X[:, :5]), labels)
    with pytest.raises(ValueError, match="X and Y must have as many rows"):
        bd.cost_and_gradient(net, da.from_array(X), labels[:-1])
    with pytest.raises(ValueError, match="sample_weight must hold one number per example"):
        bd.cost_and_gradient(net, da.from_array(X), labels, sample_weight=np.ones(3))


def test_importing_bpfast_does_not_import_dask():
    import subprocess
    import sys
    code = "import sys, bpfast; print(any(m.split('.')[0] in ('dask', 'distributed') " \
           "for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"


def test_a_nan_in_a_chunk_is_refused_by_name(client):
    """The chunks leave X's finiteness to the kernels' look at z^(1), as `Network.gradient`
    does: a NaN still comes back as the clear error, from the worker that met it."""
    net, X, labels = problem()
    X[57, 2] = np.nan
    for call in (bd.cost_and_gradient, bd.cost, bd.evaluate):
        with pytest.raises(ValueError, match="Input X contains NaN"):
            call(net, da.from_array(X, chunks=(20, 6)), labels)
