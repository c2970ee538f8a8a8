"""Build of the one compiled module, bpfast._kernels.

Metadata lives in pyproject.toml; this file only declares the extension, its Cython directives
and its compiler flags. Environment switches, read at build time:

- BPFAST_DEBUG=1    turn Cython's boundscheck and initializedcheck back on (tests of the kernels
                    against out-of-bounds access); also keeps assertions and drops -O3.
- BPFAST_NATIVE=1   add -march=native (faster on the build machine, not portable: off by default).
- BPFAST_OPENMP=0   build without OpenMP even when the compiler supports it.

The kernels' threads are POSIX threads of their own (src/bpfast/_team.h); OpenMP is linked only
so that the default thread count honours OpenMP's limit (OMP_NUM_THREADS, threadpoolctl).
"""
import os
import shutil
import subprocess
import sys
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name, default):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def _compiler_supports_openmp():
    """Compile and link a tiny OpenMP program: some compilers (Apple clang) have no -fopenmp."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc.split()[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "omp.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        result = subprocess.run(
            cc.split() + ["-fopenmp", source, "-o", os.path.join(tmp, "omp")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return result.returncode == 0


debug = _flag("BPFAST_DEBUG", "0")
use_openmp = _flag("BPFAST_OPENMP", "1") and sys.platform != "win32" and _compiler_supports_openmp()

# -fno-trapping-math lets gcc turn the sigmoid's select into vector blends (with it, gcc assumes
# a comparison may raise an FP exception and keeps the branch); nothing in bpfast reads FP flags.
# -fno-math-errno lets Adam's square root be one instruction (bpfast never reads errno either).
compile_args = ["-O0", "-g"] if debug else ["-O3", "-fno-trapping-math", "-fno-math-errno"]
link_args = []
if sys.platform != "win32":
    compile_args.append("-pthread")
    link_args.append("-pthread")
if _flag("BPFAST_NATIVE", "0"):
    compile_args.append("-march=native")
if use_openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": False,
    "initializedcheck": debug,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

extension = Extension(
    "bpfast._kernels",
    sources=["src/bpfast/_kernels.pyx"],
    depends=[f"src/bpfast/{name}.h" for name in (
        "_activations", "_activations_impl", "_codes", "_dispatch", "_microkernels",
        "_microkernels_impl", "_noise", "_noise_impl", "_outer_impl", "_rules", "_rules_impl",
        "_team")],
    include_dirs=["src/bpfast"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives=directives,
        # A debug build must not reuse C generated without bounds checks, and vice versa.
        force=debug,
    ),
)
