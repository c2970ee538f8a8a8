"""BLAS kept to one thread while the kernels run their own: each of their threads calls BLAS on
its own part, where BLAS's threads would only compete with them — and a call's rows must come
out the same whatever the number of parts (see _kernels, Design 10).

BLAS's thread count is global to the process: when several Python threads train or compute at
once, the first one in limits it and the last one out restores it (each restoring what it found
would leave BLAS limited whenever two overlap). OpenBLAS, the BLAS of numpy's and scipy's wheels,
is set through its own functions, from C (`_kernels.blas_alone_enter`): a call of a few dozen
microseconds cannot afford threadpoolctl's Python twice. Any other BLAS goes through
threadpoolctl.
"""
import ctypes
import threading

from threadpoolctl import ThreadpoolController

from . import _kernels


def _openblas_functions(library):
    """The addresses of a threadpoolctl OpenBLAS handle's get and set functions, or None (an
    OpenMP build of OpenBLAS keeps one count per thread: threadpoolctl's way then)."""
    if library.internal_api != "openblas" or getattr(library, "threading_layer", "") == "openmp":
        return None
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(library.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(library.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return (ctypes.cast(get, ctypes.c_void_p).value,
                        ctypes.cast(set_, ctypes.c_void_p).value)
    return None


# OpenBLAS's cores whose kernels multiply small products without packing them (see _kernels).
_SMALL_PATH_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def _small_path(library):
    """Whether a threadpoolctl BLAS handle multiplies small products without packing them: only
    OpenBLAS's kernels for AVX-512 cores, by the core it reports (any other BLAS: assumed not)."""
    return (library.internal_api == "openblas"
            and str(getattr(library, "architecture", "")).lower() in _SMALL_PATH_CORES)


def _called_by_the_kernels(library):
    """Whether a BLAS handle is one the kernels may call: scipy.linalg.cython_blas's, with 32-bit
    integers (`dgemm_`, or `scipy_dgemm_` in scipy's wheels) — not numpy's 64-bit one."""
    return any(getattr(library.dynlib, name, None) is not None
               for name in ("scipy_dgemm_", "dgemm_"))


_finding = threading.Lock()      # held while the libraries are looked for, once
_others = None                  # the BLAS libraries other than OpenBLAS, once found


def _libraries():
    """The BLAS libraries loaded (scipy's, which the kernels call, among them), found once —
    once bpfast._kernels has loaded scipy's: the OpenBLAS functions handed to C, and whether
    the BLAS they call skips packing small products (`_small_path`), the others' handles
    returned. Under a lock: Python threads making their first calls at once each looked
    for them, and one handing its functions over while another had BLAS limited was refused
    (ValueError out of `predict`)."""
    global _others
    if _others is None:
        with _finding:
            if _others is None:
                functions, others, small = [], [], []
                for library in ThreadpoolController().lib_controllers:
                    if library.user_api != "blas":
                        continue
                    found = _openblas_functions(library)
                    if found is None:
                        others.append(library)
                    else:
                        functions.append(found)
                    if _called_by_the_kernels(library):
                        small.append(_small_path(library))
                _kernels.use_blas_thread_functions(functions)
                _kernels.use_blas_small_path(bool(small) and all(small))
                _others = others
    return _others


_lock = threading.Lock()
_users = 0
_found = []


class single_threaded:
    """``with single_threaded():`` BLAS keeps to one thread inside (see the module)."""

    def __enter__(self):
        global _users, _found
        others = _libraries()
        if not _kernels.threads:         # no threads of the kernels': BLAS's are the only ones
            return self
        _kernels.blas_alone_enter()
        if others:
            with _lock:
                if _users == 0:
                    _found = [(library, library.get_num_threads()) for library in others]
                    for library, _ in _found:
                        library.set_num_threads(1)
                _users += 1
        return self

    def __exit__(self, *exc):
        global _users, _found
        if not _kernels.threads:
            return False
        _kernels.blas_alone_exit()
        if _libraries():
            with _lock:
                _users -= 1
                if _users == 0:
                    for library, found in _found:
                        library.set_num_threads(found)
                    _found = []
        return False
