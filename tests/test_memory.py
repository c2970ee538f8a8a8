"""No leaks: thousands of calls of the kernels leave the process's memory flat."""
import gc
import os

import numpy as np
import pytest

from conftest import make_problem


def resident_bytes():
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_gradient_and_fit_in_a_loop_keep_memory_flat():
    net, X, Y = make_problem([64, 32, 10], 100)
    labels = np.arange(100) % 10

    def work(rounds):
        for _ in range(rounds):
            net.gradient(X, Y)
            net.per_example_gradients(X[:5], Y[:5])
            net.forward(X)
        for _ in range(rounds // 10):
            net.fit(X, labels, epochs=1, batch_size=10, learning_rate=0.1, seed=0,
                    validation_data=(X, Y), callback=lambda epoch, figures: None)

    work(300)                                    # warm up: allocator pools, lazy imports
    gc.collect()
    before = resident_bytes()
    work(3000)
    gc.collect()
    growth = resident_bytes() - before
    # 3,000 gradients and 300 fits allocate about 2 GB in all; a leak of even one buffer
    # per call would show as tens of MB.
    assert growth < 4 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB"
