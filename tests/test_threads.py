"""Python threads: two networks train at once (the GIL is released), one network refuses two."""
import threading
import time

import numpy as np
import pytest

from conftest import make_problem


def train_and_record(net, X, Y, intervals):
    def note(epoch, figures):
        end = time.perf_counter()
        intervals.append((end - figures["seconds"], end))
    net.fit(X, Y, epochs=6, batch_size=8, learning_rate=0.5, seed=1, n_threads=1, callback=note)


def test_two_networks_train_at_once_with_the_same_result_as_one_after_the_other():
    problems = [make_problem([200, 64, 10], 2000, seed=s) for s in (1, 2)]
    sequential = []
    for net, X, Y in [make_problem([200, 64, 10], 2000, seed=s) for s in (1, 2)]:
        train_and_record(net, X, Y, [])
        sequential.append(net.parameters_vector())

    intervals = [[], []]
    threads = [threading.Thread(target=train_and_record, args=(*problem, spans))
               for problem, spans in zip(problems, intervals)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (net, _, _), expected in zip(problems, sequential):
        np.testing.assert_array_equal(net.parameters_vector(), expected)
    # Some epoch of one thread ran while an epoch of the other did: the kernels overlap.
    assert any(a0 < b1 and b0 < a1 for a0, a1 in intervals[0] for b0, b1 in intervals[1])


def test_a_second_fit_on_the_same_network_is_refused():
    net, X, Y = make_problem([50, 30, 5], 4000)
    started = threading.Event()

    def slow(epoch, figures):
        started.set()
        time.sleep(0.3)

    first = threading.Thread(target=net.fit, args=(X, Y),
                             kwargs=dict(epochs=3, batch_size=10, learning_rate=0.5,
                                         callback=slow))
    first.start()
    started.wait(10)
    with pytest.raises(RuntimeError, match="fit is already running on this network"):
        net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.5)
    first.join()
    net.fit(X, Y, epochs=1, batch_size=10, learning_rate=0.5)       # free again afterwards


def blas_threads():
    from threadpoolctl import threadpool_info
    return sorted(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_blas_threads_are_restored_when_two_users_overlap():
    """BLAS's thread count is global: A limits it, B enters, A leaves — it must stay limited until
    B leaves too, and then come back to what it was."""
    from bpfast import _kernels, training
    before = blas_threads()
    if not _kernels.openmp or max(before, default=1) == 1:
        pytest.skip("BLAS runs one thread here anyway (or the build has no OpenMP)")
    a, b = training._single_threaded_blas(), training._single_threaded_blas()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert max(blas_threads()) == 1
    b.__exit__(None, None, None)
    assert blas_threads() == before
