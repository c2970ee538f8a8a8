"""Fast kernels of bpfast: the forward pass, the backward pass, the gradient, and whole epochs.

Design
1. The parameters θ live in one contiguous vector in the slides' order: w^(1) (row-major,
   shape (n_1, n_0)), b^(1), w^(2), b^(2), …, w^(L), b^(L). A `NetworkLayout` (a C struct,
   Layout, with its Python twin) is the one place where offsets exist: where each w^(l), b^(l)
   starts, where each layer's block starts in a batch buffer, the widths, the activation and
   cost codes (_codes.h). Every kernel takes it. A gradient has θ's layout, so ∇C is written
   straight into its final place, and a gradient-descent step is a GEMM that updates θ in place.
2. A batch is row-major, one example per row. Matrix products are BLAS GEMMs from
   scipy.linalg.cython_blas. BLAS is column-major, so a row-major matrix M is handed over as Mᵀ
   and the operands swap: Z = A wᵀ is computed as Zᵀ = w Aᵀ.
3. Per-layer batch buffers are flat: layer l's block of shape (n, n_l) starts at
   n · (n_1 + … + n_{l−1}). A `Workspace`, sized from the layout (never by a caller), holds them:
   A holds a^(l) (a^(0) is X itself), S holds f'(z^(l)) (z^(L) itself at the output with
   cross-entropy or softmax) and is overwritten, layer by layer from the top, with
   δ^(l) = ∂C_0/∂z^(l); Z, only for a trace, keeps z^(l) (otherwise z is computed into S, which
   the slopes replace — the one place two roles share a buffer, and the forward pass's
   argument Z, NULL or not, says which).
4. The pieces of backpropagation are named for what they write: `_forward_layer` (z, a, f'),
   `_output_delta` (δ^(L), and Σ_k C_k: the one cost, for fit, cost and evaluate),
   `_delta_below` (δ^(l−1)), then link 1 three ways — `_mean_gradient_layer` (∂C/∂θ),
   `_example_gradients` (each ∂C_k/∂θ), `_step_layer` (θ itself, by the rule).
5. A step of `fit` is split into parts by neurons (or by examples: Design 11): in every layer,
   part p of n_threads owns a contiguous range of neurons j, computes their z_j, a_j, δ_j and
   updates their row w_j and b_j; BLAS is called single-threaded on those sub-blocks. The step
   is a sequence of stages
   (Stage), each a phase of a `Team` (_team.h): every part of a stage is done before the next
   starts, since the next reads what all of them wrote. Each part's arithmetic is fixed by
   n_threads, so a given n_threads gives bitwise-reproducible results whichever threads compute
   the parts and however many — which the team decides at run time, by measuring, so that a
   busy machine never makes threads wait for each other more than they gain.
6. Mini-batches of fewer than SMALL_BATCH examples use the small products of
   _microkernels_impl.h instead of BLAS, whose packing of the operands costs more than the
   arithmetic at that size; larger ones go to BLAS, and so do the products of a wide layer
   from BLAS_ROWS examples on (`_fit_blas`: SMALL_MACS multiply-adds per part, over
   FIT_BLAS_WEIGHTS weights or more: [784, 1024, 10] at batch 32, 0.68–0.82× the epoch time,
   while at batch 10 BLAS lost to the microkernels by up to 1.35×. Since z = a wᵀ's microkernel
   runs near the core's GEMM speed, epoch times at batch 32 on two parts, the microkernels over
   BLAS, medians of five rounds in one process, run by run: [784, 100, 10] float64 1.15, 1.19,
   1.31, float32 1.12, 1.08, 1.16; [784, 160, 10] float64 1.10, 1.08, float32 1.13; [784, 128,
   10] float32 1.08, 0.66 (three rounds in a row at 0.64–0.66, once), 1.12, 1.06 and over
   twelve rounds 1.08, float64 0.94, 1.03 — 50, 80 and 64 neurons a part, under
   FIT_BLAS_WEIGHTS —; [784, 256, 10] 0.96 and 0.95, [784, 1,024, 10] 0.82 and 0.85; one part,
   [784, 64, 10] 1.10 and 1.12). The C loops (products, activations, rules) are written once
   for any type and compiled per type and instruction set (x86-64-v3 and the baseline; the
   noise's generator, the activations and the per-example rows' stores for x86-64-v4 too);
   _dispatch.h chooses at import (BPFAST_ISA=baseline forces the baseline).
7. Each layer has its activation (`acts[l−1]`; the formulas are in _activations.h) and the
   network one cost. Softmax needs whole rows: for a softmax output, parts share the output
   layer's a^(L) and δ^(L) by examples instead of neurons (`_rows_are_split`), in a stage of
   their own.
8. A step of `fit` is one of the rules of _codes.h (plain, momentum, Nesterov, Adam; L2 with
   any), held by a `Rule` built once per fit: its hyper-parameters in both precisions and its
   state (v, m, r), laid out as θ. Plain steps are the gradient GEMM with β = 1 − ηλ; the
   others apply the rule right after each block of ∂C/∂w (`_step_rows`, _rules.h).
9. `cdef … noexcept nogil` functions over `floating` do the arithmetic; the `def` twins at the
   bottom release the GIL around them. They check only that θ, the workspace and the rule fit
   the layout; bpfast.network and bpfast.training validate every shape, dtype and value of the
   user's input before calling in.
10. A call outside `fit` (`run_call`: predict, cost, gradient, per-example gradients and norms)
   has no step to share, so its parts share the examples: each part owns a range of rows and a
   region of the workspace laid out as a batch of its own, and runs every layer without a
   phase in between. The parts meet once before writing, to learn whether X was finite; for
   a batch mean once more, after which each part sums its neurons' rows of ∂C/∂θ over every
   region, straight into the output (no partial sums kept, no pass to add them) — or, where the
   layers' inputs are larger than θ (`_call_sums_by_examples`), each part sums all of ∂C/∂θ over
   its own rows before they meet, and then adds the parts' sums on its stretch of θ. Each
   example's row of z, a, δ — and so of ∂C_k/∂θ — must come out the same whatever the number
   of parts, and BLAS's result for a row may depend on the rows given with it (its blocking
   follows the matrix's height; its own threads split the work). So a call gives BLAS a chunk
   of rows at a time, single-threaded, and its parts start on a multiple of the chunk
   (`_call_first`), whose size depends on n alone (`_call_chunk`). Calls use BLAS, which ran
   1.2–2× as fast as the microkernels on a call's chunks, one thread each — but for z = a wᵀ
   on a chunk of a few rows that BLAS would pack (`_z_is_a_wT`): the microkernel reads w once
   where BLAS copies it first, 1.2–2.5× as fast. Which products BLAS packs depends on the BLAS
   (`_blas_small_path`): OpenBLAS's kernels for AVX-512 cores skip packing small products,
   its kernels for AVX2 pack every one — on which δ w of a chunk of up to 8 float64 or 16
   float32 rows goes to the microkernels (1.2–11× as fast on 1–4 rows; not over float64 rows
   of w 8 KiB apart: `_aliased_rows`), z = a wᵀ of up to 16 or 32 (1.2–1.7× as fast on 16 or
   32; 2.6× on 4 float64 rows), ∂C/∂w = δᵀ a over a part's region of fewer than 64 rows for a
   block of w of up to 256 KiB (`_dT_a_few_rows`: 0.97–2.5× on [784 → 15 … 30]), and every
   layer keeps the call's chunk (`_layer_chunk` halves it only where BLAS skips packing). A
   call on many rows copies some layers' w once, its parts sharing the copy in a first stage
   (`_copy_weights`; against one thread's copy before they start, `predict` of [784, 512, 512,
   10] on 256 rows 1.04–1.07× in float32, 1.04–1.05× in float64): where BLAS skips packing,
   w^(l)ᵀ of the layers of few inputs, which it multiplies faster that way (`_narrow_input`);
   where it packs every product, w^(l) in panels for the layers of few neurons, whose
   z = a wᵀ bpfast's own product computes from them, reading a in place (`_panelled`: 1.3–1.6×
   as fast as BLAS on [784 → 16] and [784 → 30], one thread). There too, ∂C/∂w = δᵀ a of a
   layer of few neurons over 128 rows or more — a call's, and a part's sums in a step of `fit`
   shared by examples — is bpfast's own product, which reads a in place (`_dT_a_by_rows`).
   The products of wide layers on many rows BLAS packs whatever its kind (the AVX-512 kernels
   skip packing only below SMALL_MACS multiply-adds), so on any BLAS: on 256 rows or more, w^(l)
   in panels for wider layers too (`_wide_panelled`: `predict` of [784, 100, 10] on 10,000
   float64 rows 1.14–1.18× on AVX2, 1.04× on AVX-512; of [784, 512, 512, 10] on 256
   float32 1.02–1.12×, and 1.05–1.06×) — and, in a call that goes down the layers, δ w^(l) of
   those from w^(l) in strips of its columns (`_stripped`: the per-example norms of
   [784, 512, 512, 10] on 256 float32 rows 0.99–1.08×, 1.05× on AVX-512); in float32, ∂C/∂w of
   a wider layer in a batch mean by neurons is bpfast's product from both operands packed,
   over every row at once (`_packed`): the parts pack their rows of a^(l−1) in panels as they
   go down — one packing shared, where each part's BLAS packed all of a — and each packs its
   neurons' columns of δ (the gradient of [784, 512, 512, 10] on 256 float32 rows 1.01–1.09×,
   of [784, 256, 10] 1.05–1.15×; in float64 even, and left to BLAS). On AVX-512 (OpenBLAS's
   SkylakeX kernels, Zen 4), the three against BLAS's products, in turns, best of seven rounds:
   float32 [784, 512, 512, 10] on 256 rows, norms, gradient, `predict` 1.05×, 1.05×, 1.07×, on
   512 1.11×, 1.07×, 1.10×, [784, 256, 10] on 256 1.07× each; float64 [784, 512, 512, 10] on
   256 0.97–1.04×, even as on AVX2.
11. A step of `fit` on a mini-batch that goes to BLAS, over layers all narrower than
   BY_EXAMPLES_NEURONS neurons per part — or of BY_EXAMPLES_ROWS examples per part and more,
   over any layers — is shared by examples instead (`_step_by_examples`).
   By neurons, each part's products there have a few rows of w — 8 of a layer of 16 on two
   parts — on which BLAS runs at half its speed, and every part packs the whole mini-batch's
   a^(l−1) for them, a cost that grows with the mini-batch and not with the work. By
   examples, two stages make the step: in the first (`_examples_sums`) each part takes a
   contiguous range of the mini-batch's rows all the way down — forward pass, δ of every
   layer — and sums Σ_k δ_k^(l) a_k^(l−1)ᵀ and Σ_k δ_k^(l) into a ∂C/∂θ of its own; in the
   second (`_sums_step`) each part owns a stretch of θ, adds the parts' sums there in part
   order and applies the rule. The parts and the order of every sum are fixed by the
   mini-batch's size and n_threads, so the bits are as reproducible as by neurons (not the
   same bits: the sums are grouped differently). Measured on 2 cores, [784, h, 10], both
   dtypes (epoch times, by neurons over by examples): h = 16, 1.36–1.56× from 256 examples on;
   h = 64 and 128, 1.03–1.42×; h = 256, 0.87–1.30×; h = 1,024, 0.66–1.06× — the parts' sums
   of a large θ cost passes over memory that the narrow layers repay, and wide ones only on
   mini-batches of 512 examples per part (h = 256 and 1,024 at 1,024 examples, 1.00–1.10×;
   at 512, 0.99×). A part takes its rows EXAMPLES_ROWS at a time while its sums fit in
   EXAMPLES_SUMS_BYTES (each chunk adds into them: with a large θ, all its rows at once).
   Where BLAS packs every product, each part copies the narrow layers' w in panels of its own
   at the start of the step (`_panelled`, as a call does) and takes z = a wᵀ of its rows from
   them; its sums of ∂C/∂w over 128 rows and more are bpfast's own product (`_dT_a_by_rows`).
   Epoch times against the same build without the panels, in turns in one process, five
   rounds: [784, 16, 10] float64 batch 1,024 1.02–1.12×, [784, 30, 10] float64 batch 256
   1.03–1.16×, [784, 64, 10] float64 batch 256 1.02–1.07×, float32 [784, 16, 10] and
   [784, 64, 10] 0.79–1.33× (median 1.04).
"""
from cpython.buffer cimport PyBUF_ANY_CONTIGUOUS, PyBuffer_Release, PyObject_GetBuffer
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport fabs, log, log1p, pow, sqrt
from libc.stdlib cimport calloc, free
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm
from cython cimport floating

import numpy as np

cdef extern from *:
    """
    #define BPFAST_PREFETCH(p) __builtin_prefetch(p)

    /* Ctrl-C while an epoch runs without the GIL: a handler that only raises a flag, which
       the epoch loop reads at mini-batch boundaries; Python's own handler is put back after. */
    #if defined(_WIN32)
    static int bpfast_catch_sigint(void) { return -1; }
    static void bpfast_release_sigint(void) {}
    static int bpfast_sigint_pending(void) { return 0; }
    #else
    #include <signal.h>
    #include <string.h>
    static volatile sig_atomic_t bpfast_sigint = 0;
    static struct sigaction bpfast_saved_sigint;
    static int bpfast_sigint_caught = 0;
    static void bpfast_on_sigint(int signum) { (void) signum; bpfast_sigint = 1; }
    static int bpfast_catch_sigint(void) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = bpfast_on_sigint;
        sigemptyset(&action.sa_mask);
        bpfast_sigint = 0;
        if (sigaction(SIGINT, &action, &bpfast_saved_sigint) != 0) return -1;
        bpfast_sigint_caught = 1;
        return 0;
    }
    static void bpfast_release_sigint(void) {
        if (bpfast_sigint_caught) sigaction(SIGINT, &bpfast_saved_sigint, NULL);
        bpfast_sigint_caught = 0;
    }
    static int bpfast_sigint_pending(void) { return bpfast_sigint; }
    #endif
    /* OpenMP is linked only to read its thread limit (OMP_NUM_THREADS, threadpoolctl's). */
    #ifdef _OPENMP
    #include <omp.h>
    #define BPFAST_HAVE_OPENMP 1
    static int bpfast_openmp_limit(void) { return omp_get_max_threads(); }
    #else
    #define BPFAST_HAVE_OPENMP 0
    static int bpfast_openmp_limit(void) { return 0; }
    #endif
    """
    const int HAVE_OPENMP "BPFAST_HAVE_OPENMP"
    int _openmp_limit "bpfast_openmp_limit" () noexcept nogil
    void _prefetch "BPFAST_PREFETCH" (const void* p) noexcept nogil
    int _catch_sigint "bpfast_catch_sigint" () noexcept nogil
    void _release_sigint "bpfast_release_sigint" () noexcept nogil
    int _sigint_pending "bpfast_sigint_pending" () noexcept nogil

#: Whether this build was linked with OpenMP, whose thread limit the default thread count honours.
openmp = bool(HAVE_OPENMP)


def openmp_limit():
    """OpenMP's limit on threads for this thread (OMP_NUM_THREADS, or threadpoolctl's limit), or
    None in a build without OpenMP."""
    return _openmp_limit() if HAVE_OPENMP else None


# --- BLAS's own threads ---------------------------------------------------------------------------

# OpenBLAS's thread count, set through its own functions (bpfast._blas finds them): a call of
# the kernels must keep BLAS to one thread, and at a few dozen microseconds a call cannot afford
# threadpoolctl's Python on the way in and out.
ctypedef int (*_get_threads_t)() noexcept nogil
ctypedef void (*_set_threads_t)(int) noexcept nogil
cdef enum:
    MAX_BLAS_LIBRARIES = 4
cdef _get_threads_t _blas_get[MAX_BLAS_LIBRARIES]
cdef _set_threads_t _blas_set[MAX_BLAS_LIBRARIES]
cdef int _blas_found[MAX_BLAS_LIBRARIES]
cdef int _blas_libraries = 0
cdef int _blas_users = 0


def use_blas_thread_functions(functions):
    """The (openblas_get_num_threads, openblas_set_num_threads) addresses of each OpenBLAS loaded
    (at most MAX_BLAS_LIBRARIES), which `blas_alone_enter` and `blas_alone_exit` then use."""
    global _blas_libraries
    if len(functions) > MAX_BLAS_LIBRARIES or _blas_users:
        raise ValueError(f"at most {MAX_BLAS_LIBRARIES} libraries, set while none is limited.")
    for q, (get, set_) in enumerate(functions):
        _blas_get[q] = <_get_threads_t> <size_t> get
        _blas_set[q] = <_set_threads_t> <size_t> set_
    _blas_libraries = len(functions)


# Whether BLAS multiplies a small product without packing its operands first: OpenBLAS does, up
# to SMALL_MACS multiply-adds, with its kernels for AVX-512 cores (SkylakeX, Cooperlake,
# SapphireRapids); with the others — its Haswell kernels, which AVX2 machines run — it copies all
# of w for every product, however few its rows. bpfast._blas tells, from the core OpenBLAS
# reports; the products' rules follow it (`_layer_chunk`, `_z_is_a_wT`, `_t_is_d_w`,
# `_unpacked_rows`). Either way a given machine computes each row alike whatever the number of
# parts.
cdef bint _blas_small_path = False


def use_blas_small_path(bint small):
    """Tell the kernels whether BLAS multiplies small products without packing (see above)."""
    global _blas_small_path
    _blas_small_path = small


def blas_small_path():
    """Whether the kernels take BLAS to multiply small products without packing."""
    return _blas_small_path


def blas_alone_enter():
    """BLAS to one thread, for as long as any caller needs it: the first in limits it (the GIL,
    held here, orders Python threads), `blas_alone_exit` of the last restores what it found."""
    global _blas_users
    cdef int q
    if _blas_users == 0:
        for q in range(_blas_libraries):
            _blas_found[q] = _blas_get[q]()
            if _blas_found[q] != 1:
                _blas_set[q](1)
    _blas_users += 1


def blas_alone_exit():
    global _blas_users
    cdef int q
    _blas_users -= 1
    if _blas_users == 0:
        for q in range(_blas_libraries):
            if _blas_found[q] != 1:
                _blas_set[q](_blas_found[q])


# --- the activations ------------------------------------------------------------------------------

# The C loops, each compiled for x86-64-v3 and the baseline (three for x86-64-v4 too);
# _dispatch.h chooses at import.
cdef extern from "_dispatch.h":
    double bpfast_exp_negative_d(double x) noexcept nogil
    float bpfast_exp_negative_s(float x) noexcept nogil
    int bpfast_choose_isa(const char* request)
    const char* bpfast_isa_in_use
    void bpfast_activate_d(double* z, const double* b, double* a, double* s, Py_ssize_t count,
                           int activation, int keep_z) noexcept nogil
    void bpfast_activate_s(float* z, const float* b, float* a, float* s, Py_ssize_t count,
                           int activation, int keep_z) noexcept nogil


cdef inline floating _exp_negative(floating x) noexcept nogil:
    """e^x for x ≤ 0, within a few ulp; 0 where e^x is below the smallest normal number"""
    if floating is double:
        return bpfast_exp_negative_d(x)
    else:
        return bpfast_exp_negative_s(x)


# The activations, the costs and the rules, numbered in _codes.h and nowhere else.
cdef extern from "_codes.h":
    enum:  # Activation
        SIGMOID "BPFAST_SIGMOID"
        TANH "BPFAST_TANH"
        RELU "BPFAST_RELU"
        IDENTITY "BPFAST_IDENTITY"
        SOFTMAX "BPFAST_SOFTMAX"  # output layer only: a_j = e^(z_j) / Σ_i e^(z_i), a whole row
        N_ACTIVATIONS "BPFAST_N_ACTIVATIONS"
    enum:  # Cost
        QUADRATIC "BPFAST_QUADRATIC"            # C_0 = Σ_j (a_j − y_j)²
        CROSS_ENTROPY "BPFAST_CROSS_ENTROPY"    # sigmoid: −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)]
        N_COSTS "BPFAST_N_COSTS"                # softmax: −Σ_j y_j ln a_j
    enum:  # Rule
        SGD "BPFAST_SGD"            # θ ← θ − η g
        MOMENTUM "BPFAST_MOMENTUM"  # v ← μ v + g,  θ ← θ − η v                    (heavy ball)
        NESTEROV "BPFAST_NESTEROV"  # v ← μ v + g,  θ ← θ − η (g + μ v)
        ADAM "BPFAST_ADAM"          # m ← β1 m + (1 − β1) g,  r ← β2 r + (1 − β2) g²,
                                    # θ ← θ − η m̂ / (√r̂ + ε),
                                    # m̂ = m / (1 − β1^t), r̂ = r / (1 − β2^t)
        N_RULES "BPFAST_N_RULES"
    # where g = ∂C/∂θ + λ w for the weights (L2: the cost gains (λ/2) Σ_l ‖w^(l)‖²), ∂C/∂θ for
    # biases.
    const char* const bpfast_activation_names[]
    const char* const bpfast_cost_names[]
    const char* const bpfast_rule_names[]

#: The codes by which the kernels know each activation, cost and update rule, by name (from
#: _codes.h; bpfast.activations, bpfast.costs and bpfast.training check theirs against these).
ACTIVATION_CODES = {bpfast_activation_names[i].decode(): i for i in range(N_ACTIVATIONS)}
COST_CODES = {bpfast_cost_names[i].decode(): i for i in range(N_COSTS)}
RULE_CODES = {bpfast_rule_names[i].decode(): i for i in range(N_RULES)}


def check_codes(names, codes, what):
    """Refuse to import if a Python module's list of names and these codes disagree (an old build
    beside new sources, or an edit in one place only)."""
    if dict(zip(names, range(len(names)))) != codes:
        raise ImportError(f"bpfast's {what} {list(names)} and its compiled kernels' {codes} "
                          "disagree: the build is out of date (rebuild: pip install .).")


def _choose_isa():
    """The variant of the C loops to run (_dispatch.h): the best this CPU has, or what the
    environment variable BPFAST_ISA asks for ("baseline", "x86-64-v3" or "x86-64-v4")."""
    import os
    request = os.environ.get("BPFAST_ISA", "").strip()
    if bpfast_choose_isa(request.encode()) != 0:
        runs = [name for name in ("baseline", "x86-64-v3", "x86-64-v4")
                if bpfast_choose_isa(name.encode()) == 0]
        raise ImportError(f"BPFAST_ISA={request!r}: this CPU and build run "
                          + ", ".join(repr(name) for name in runs)
                          + ". Unset it to use the best of them.")
    return bpfast_isa_in_use.decode()


#: The instruction set the C loops were compiled for that runs here: "x86-64-v4" (x86-64-v3's
#: loops, the noise's generator, the activations and the per-example rows' stores compiled for
#: AVX-512), "x86-64-v3" or "baseline".
isa = _choose_isa()


cdef inline void _activate(floating* z, const floating* b, floating* a, floating* s,
                           Py_ssize_t count, int activation, bint keep_z) noexcept nogil:
    """z ← z + b,  a = f(z),  s = f'(z) elementwise over `count` neurons (s may be z itself);
    with `keep_z` (or softmax, whose a needs the whole row: see `_softmax_rows`) s ← z instead.
    The formulas, and why they never overflow, are in _activations.h."""
    if floating is double:
        bpfast_activate_d(z, b, a, s, count, activation, keep_z)
    else:
        bpfast_activate_s(z, b, a, s, count, activation, keep_z)


cdef inline floating _row_max(const floating* z, Py_ssize_t count) noexcept nogil:
    cdef floating top = z[0]
    cdef Py_ssize_t j
    for j in range(1, count):
        if not (z[j] <= top):               # a NaN wins, and so propagates
            top = z[j]
    return top


cdef void _softmax_rows(const floating* Z, floating* A, Py_ssize_t count, Py_ssize_t k0,
                        Py_ssize_t k1) noexcept nogil:
    """a_kj = e^(z_kj − m_k) / Σ_i e^(z_ki − m_k), m_k = max_i z_ki, for rows k0 ≤ k < k1

    Shifting by the row's maximum changes nothing mathematically and keeps every e^(…) ≤ 1.
    """
    cdef Py_ssize_t k, j
    cdef floating top, total
    cdef const floating* z
    cdef floating* a
    for k in range(k0, k1):
        z = Z + k * count
        a = A + k * count
        top = _row_max(z, count)
        total = 0
        for j in range(count):
            a[j] = _exp_negative(z[j] - top)
            total += a[j]
        total = (<floating> 1) / total
        for j in range(count):
            a[j] *= total


# --- BLAS ----------------------------------------------------------------------------------------

cdef inline void _gemm(char transa, char transb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       floating alpha, const floating* A, Py_ssize_t lda,
                       const floating* B, Py_ssize_t ldb,
                       floating beta, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C := alpha · op(A) · op(B) + beta · C   (column-major, as BLAS sees it)"""
    cdef int m_ = <int> m, n_ = <int> n, k_ = <int> k
    cdef int lda_ = <int> lda, ldb_ = <int> ldb, ldc_ = <int> ldc
    if m == 0 or n == 0:                 # a thread that owns no neuron of this layer
        return
    if floating is double:
        dgemm(&transa, &transb, &m_, &n_, &k_, &alpha, <double*> A, &lda_,
              <double*> B, &ldb_, &beta, C, &ldc_)
    else:
        sgemm(&transa, &transb, &m_, &n_, &k_, &alpha, <float*> A, &lda_,
              <float*> B, &ldb_, &beta, C, &ldc_)


# --- the three products of backpropagation -------------------------------------------------------

cdef extern from "_dispatch.h":
    ctypedef struct bpfast_hyper_d:
        int rule
        double eta, mu, l2, beta1, beta2, eps, c1, c2
    ctypedef struct bpfast_hyper_s:
        int rule
        float eta, mu, l2, beta1, beta2, eps, c1, c2
    void bpfast_update_d(const bpfast_hyper_d* h, double l2, Py_ssize_t n, const double* g,
                         double* theta, double* v, double* r) noexcept nogil
    void bpfast_update_s(const bpfast_hyper_s* h, float l2, Py_ssize_t n, const float* g,
                         float* theta, float* v, float* r) noexcept nogil
    # The noise of private steps (_noise.h): the base of step t's stream, and normal numbers
    # 2q, 2q + 1 of a stream for q0 ≤ q < q0 + pairs, drawn in the network's type.
    uint64_t _noise_stream "bpfast_stream" (uint64_t key, uint64_t t) noexcept nogil
    void bpfast_normals_d(uint64_t base, uint64_t q0, Py_ssize_t pairs,
                          double* out) noexcept nogil
    void bpfast_normals_s(uint64_t base, uint64_t q0, Py_ssize_t pairs,
                          float* out) noexcept nogil
    # Σ_i x_i² of each row of a block of rows, vectorized (_microkernels_impl.h).
    void bpfast_row_squares_d(Py_ssize_t rows, Py_ssize_t width, const double* M,
                              double* out) noexcept nogil
    void bpfast_row_squares_s(Py_ssize_t rows, Py_ssize_t width, const float* M,
                              double* out) noexcept nogil
    # Whether every number of a run is finite, vectorized (_microkernels_impl.h).
    int bpfast_finite_d(Py_ssize_t n, const double* v) noexcept nogil
    int bpfast_finite_s(Py_ssize_t n, const float* v) noexcept nogil
    # A narrow layer's w in panels of 64 bytes of neurons, and z = a wᵀ from them
    # (_microkernels_impl.h).
    void bpfast_panels_d(Py_ssize_t nj, Py_ssize_t ni, const double* W, Py_ssize_t ldw,
                         double* P) noexcept nogil
    void bpfast_panels_s(Py_ssize_t nj, Py_ssize_t ni, const float* W, Py_ssize_t ldw,
                         float* P) noexcept nogil
    void bpfast_abt_panels_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const double* A,
                             Py_ssize_t lda, const double* P, double* Z,
                             Py_ssize_t ldz) noexcept nogil
    void bpfast_abt_panels_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const float* A,
                             Py_ssize_t lda, const float* P, float* Z,
                             Py_ssize_t ldz) noexcept nogil
    # ∂C/∂w = α δᵀ a of a layer of few neurons over many rows, a read in place.
    void bpfast_atb_rows_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, double alpha, int add,
                           const double* D, Py_ssize_t ldd, const double* A, Py_ssize_t lda,
                           double* W, Py_ssize_t ldw) noexcept nogil
    void bpfast_atb_rows_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, float alpha, int add,
                           const float* D, Py_ssize_t ldd, const float* A, Py_ssize_t lda,
                           float* W, Py_ssize_t ldw) noexcept nogil
    # ∂C/∂w = α δᵀ a from δ's columns and a's packed in panels.
    enum: NEURON_PANEL "BPFAST_NEURON_PANEL"
    void bpfast_atb_packed_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, double alpha,
                             const double* Q, const double* P, double* W,
                             Py_ssize_t ldw) noexcept nogil
    void bpfast_atb_packed_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, float alpha,
                             const float* Q, const float* P, float* W,
                             Py_ssize_t ldw) noexcept nogil


cdef extern from "_dispatch.h":
    void bpfast_abt_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const double* A, Py_ssize_t lda,
                      const double* W, Py_ssize_t ldw, double* Z, Py_ssize_t ldz) noexcept nogil
    void bpfast_abt_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const float* A, Py_ssize_t lda,
                      const float* W, Py_ssize_t ldw, float* Z, Py_ssize_t ldz) noexcept nogil
    void bpfast_atb_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, double alpha, double beta,
                      const double* D, Py_ssize_t ldd, const double* A, Py_ssize_t lda,
                      double* W, Py_ssize_t ldw, double* Vel,
                      const bpfast_hyper_d* h) noexcept nogil
    void bpfast_atb_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, float alpha, float beta,
                      const float* D, Py_ssize_t ldd, const float* A, Py_ssize_t lda,
                      float* W, Py_ssize_t ldw, float* Vel,
                      const bpfast_hyper_s* h) noexcept nogil
    void bpfast_outer_d(Py_ssize_t nj, Py_ssize_t ni, const double* d, const double* a,
                        double* G, double* B) noexcept nogil
    void bpfast_outer_s(Py_ssize_t nj, Py_ssize_t ni, const float* d, const float* a, float* G,
                        float* B) noexcept nogil
    ctypedef struct bpfast_rows_d:
        pass
    ctypedef struct bpfast_rows_s:
        pass
    void bpfast_rows_open_d(bpfast_rows_d* w, double* first) noexcept nogil
    void bpfast_rows_open_s(bpfast_rows_s* w, float* first) noexcept nogil
    void bpfast_rows_outer_d(bpfast_rows_d* w, Py_ssize_t nj, Py_ssize_t ni, const double* d,
                             const double* a) noexcept nogil
    void bpfast_rows_outer_s(bpfast_rows_s* w, Py_ssize_t nj, Py_ssize_t ni, const float* d,
                             const float* a) noexcept nogil
    void bpfast_rows_close_d(bpfast_rows_d* w) noexcept nogil
    void bpfast_rows_close_s(bpfast_rows_s* w) noexcept nogil
    void bpfast_ab_d(Py_ssize_t m, Py_ssize_t ni, Py_ssize_t nj, const double* D, Py_ssize_t ldd,
                     const double* W, Py_ssize_t ldw, double* T, Py_ssize_t ldt) noexcept nogil
    void bpfast_ab_s(Py_ssize_t m, Py_ssize_t ni, Py_ssize_t nj, const float* D, Py_ssize_t ldd,
                     const float* W, Py_ssize_t ldw, float* T, Py_ssize_t ldt) noexcept nogil

# From this many examples in a mini-batch on, `fit` calls BLAS rather than the microkernels
# (Design 6). A call of the kernels (run_call) gives BLAS chunks of rows: a multiple of
# CALL_ROWS_MIN up to CALL_ROWS that shares the batch evenly (`_call_chunk`) — fewer for a
# narrow layer, whose product on few rows OpenBLAS computes without packing its operands where it
# can (`_blas_small_path`), at up to twice the speed: at most SMALL_OUTPUTS outputs and
# SMALL_MACS multiply-adds (Design 10; measured: [784, 30] at 35 GFLOP/s on 32 rows, 20 on 48 or
# more; [784, 100] at 43 on 8 rows, 26 on 16). Where BLAS packs every product, a chunk of at
# most FEW_BYTES a column (8 doubles, 16 floats) goes to the microkernels instead — for z = a wᵀ,
# of at most FEW_Z_BYTES (16 doubles, 32 floats) —, over a w of
# FEW_WEIGHTS weights or more (below, BLAS's copy of w costs under half a microsecond:
# `predict` on one example of [3, n_1, n_2], µs saved by the microkernel, float64 / float32:
# 32 × 8, −0.26 / 0.29; 32 × 32, 0.34 / 0.63; 64 × 32, 0.89 / 1.45; 64 × 64, 1.52 / 2.42;
# 128 × 128, 6.4 / 11.0).
cdef enum:
    SMALL_BATCH = 64
    BLAS_ROWS = 32
    NARROW_INPUTS = 32
    NARROW_ROWS = 128
    FEW_ROWS = 8
    FEW_BYTES = 64
    FEW_Z_BYTES = 128
    FEW_WEIGHTS = 1024
    SMALL_WEIGHTS = 4096
    CALL_ROWS_MIN = 8
    CALL_ROWS = 128
    CHUNK_COST_ROWS = 32
    SMALL_OUTPUTS = 1200
    SMALL_MACS = 1000000
    PANEL_BYTES = 64
    PANEL_OUTPUTS = 64
    WIDE_PANEL_ROWS = 256
    WIDE_PANEL_INPUTS = 4
    ROWS_NEURON_BYTES = 256
    PACKED_ROWS = 64
    PACKED_MAX_ROWS = 1024
    ROWS_BYTES = 1 << 23
    FIT_BLAS_WEIGHTS = 1 << 16
    FEW_ROWS_W_BYTES = 1 << 18
    ALIASED_BYTES = 8192

# A step of `fit` is shared by examples (Design 11) from BY_EXAMPLES_BATCH examples on (where
# BLAS takes over from the microkernels) when no layer has BY_EXAMPLES_NEURONS neurons per part;
# the parts' sums of ∂C/∂θ are added in stretches of SUMS_LINE numbers (a cache line of floats);
# each part takes its rows EXAMPLES_ROWS at a time.
cdef enum:
    BY_EXAMPLES_BATCH = 64
    BY_EXAMPLES_NEURONS = 128
    SUMS_LINE = 16
    EXAMPLES_ROWS = 128
    BY_EXAMPLES_ROWS = 512
    EXAMPLES_SUMS_BYTES = 1 << 19


cdef inline Py_ssize_t _ceil_div(Py_ssize_t x, Py_ssize_t d) noexcept nogil:
    """⌈x / d⌉: how many chunks or panels x rows or numbers fill; the largest of d parts' shares
    of x (`_first`)."""
    return (x + d - 1) // d


cdef inline Py_ssize_t _round_up(Py_ssize_t x, Py_ssize_t multiple) noexcept nogil:
    """x rounded up to a multiple: a count in whole panels, chunks or cache lines."""
    return _ceil_div(x, multiple) * multiple


cdef inline Py_ssize_t _two_parts_time(Py_ssize_t n, Py_ssize_t chunk) noexcept nogil:
    """What a call on n rows in chunks of `chunk` costs its slower part of two, in rows: its
    rows, and CHUNK_COST_ROWS for each of its chunks (a product BLAS starts again, packing
    w^(l) again — on [784, 512, 512, 10] a chunk of 8 rows took as long as 47)."""
    cdef Py_ssize_t chunks = _ceil_div(n, chunk), first = min(n, (chunks // 2) * chunk)
    return max(first + (chunks // 2) * CHUNK_COST_ROWS,
               n - first + (chunks - chunks // 2) * CHUNK_COST_ROWS)


cdef inline Py_ssize_t _call_chunk(Py_ssize_t n) noexcept nogil:
    """The rows a call's row-by-row products give BLAS at a time, whatever the number of parts:
    a multiple of CALL_ROWS_MIN — so that a narrow layer's chunks (`_layer_chunk`), halving it,
    divide it — up to CALL_ROWS, enough for BLAS to run at speed, and at most half the batch
    (rounded up), so that even a small one has two parts to share; of those, the one whose two
    parts take the least time (`_two_parts_time`), the larger on a tie. Parts start on a
    multiple of the chunk: half the batch rounded up to a power of two, the rule before, put
    128 rows in one part and 256 in the other at n = 384, 128 and 8 at n = 136. Below
    CALL_ROWS_MIN rows, n itself: the call's one chunk, whose size decides how the products
    take it (`_z_is_a_wT`, `_t_is_d_w`)."""
    cdef Py_ssize_t top = min(<Py_ssize_t> CALL_ROWS, _round_up((n + 1) // 2, CALL_ROWS_MIN))
    cdef Py_ssize_t c = max(top, <Py_ssize_t> CALL_ROWS_MIN), best = c, cost
    cdef Py_ssize_t best_time = _two_parts_time(n, c)
    while c > CALL_ROWS_MIN:
        c -= CALL_ROWS_MIN
        cost = _two_parts_time(n, c)
        if cost < best_time:
            best, best_time = c, cost
    return min(best, max(n, 1))


cdef inline Py_ssize_t _layer_chunk(const Layout* lay, int l, Py_ssize_t chunk) noexcept nogil:
    """A call's chunk for the products with w^(l): the most rows, `chunk` halved, on which the
    product is small enough for BLAS to skip packing — if CALL_ROWS_MIN rows are — else all of
    `chunk`. Halved while even only: each divides `chunk`, so that the rows of a part, which
    starts on a multiple of it, are grouped alike whatever the number of parts."""
    cdef Py_ssize_t weights = lay.sizes[l] * lay.sizes[l - 1], rows = chunk
    if not _blas_small_path:
        return chunk
    while rows >= CALL_ROWS_MIN:
        if rows * lay.sizes[l] <= SMALL_OUTPUTS and rows * weights <= SMALL_MACS:
            return rows
        if rows % 2:
            break
        rows //= 2
    return chunk


cdef inline bint _fit_blas(const Layout* lay, int l, Py_ssize_t m, int n_parts) noexcept nogil:
    """Whether `fit`'s products with w^(l) on a mini-batch of m examples, split into n_parts by
    neurons, go to BLAS rather than the microkernels: from SMALL_BATCH examples on, or from
    BLAS_ROWS when a part's product has SMALL_MACS multiply-adds or more over FIT_BLAS_WEIGHTS
    weights or more (Design 6)."""
    cdef Py_ssize_t weights = lay.sizes[l] * lay.sizes[l - 1]
    return m >= SMALL_BATCH or (m >= BLAS_ROWS and weights * m >= SMALL_MACS * n_parts
                                and weights >= FIT_BLAS_WEIGHTS * n_parts)


def fit_blas(NetworkLayout layout, int l, Py_ssize_t m, int n_parts):
    """Whether `fit`'s products with w^(l) on a mini-batch of m examples in n_parts parts by
    neurons go to BLAS (`_fit_blas`)."""
    if not 1 <= l <= layout.c.L:
        raise ValueError(f"l must be a layer, 1 to {layout.c.L}.")
    return _fit_blas(&layout.c, l, m, n_parts)


cdef inline Py_ssize_t _rows_at_once(bint blas, Py_ssize_t m) noexcept nogil:
    """How the row-by-row products (`_z_is_a_wT`, `_t_is_d_w`) take a mini-batch of m examples
    in `fit`: all at once by BLAS, or (0) by the microkernels."""
    return m if blas else 0


# --- which path each product took, for the tests ----------------------------------------------

# The rules above pick a path by speed alone: BLAS and bpfast's own products give the same
# numbers but for their last bits, so no result tells which one ran. The tests read this log to
# see the path a rule claims taken. Off, it costs a product one relaxed load of a flag.
cdef extern from *:
    """
    enum { BPFAST_LOG_SIZE = 4096 };
    typedef struct { int product, path; Py_ssize_t m, nj, ni; } bpfast_logged_product;
    static int bpfast_logging = 0;
    static Py_ssize_t bpfast_logged = 0;
    static bpfast_logged_product bpfast_log[BPFAST_LOG_SIZE];
    static inline void bpfast_log_product(int product, int path, Py_ssize_t m, Py_ssize_t nj,
                                          Py_ssize_t ni) {
        if (__builtin_expect(__atomic_load_n(&bpfast_logging, __ATOMIC_RELAXED), 0)) {
            Py_ssize_t i = __atomic_fetch_add(&bpfast_logged, 1, __ATOMIC_RELAXED);
            if (i < BPFAST_LOG_SIZE) {
                bpfast_logged_product entry = {product, path, m, nj, ni};
                bpfast_log[i] = entry;
            }
        }
    }
    """
    ctypedef struct _logged_product "bpfast_logged_product":
        int product, path
        Py_ssize_t m, nj, ni
    const Py_ssize_t _LOG_SIZE "BPFAST_LOG_SIZE"
    int _logging "bpfast_logging"
    Py_ssize_t _logged "bpfast_logged"
    _logged_product _log "bpfast_log" [1]
    void _log_product "bpfast_log_product" (int product, int path, Py_ssize_t m, Py_ssize_t nj,
                                            Py_ssize_t ni) noexcept nogil

cdef enum:       # the products
    Z_IS_A_WT, DT_A, D_W, D_AT
cdef enum:       # their paths
    BY_BLAS, BY_MICROKERNEL, BY_PANELS, BY_ROWS, BY_PACKED, BY_STORES, BY_STREAMS

#: The products and paths the log names, in the order of their numbers: the per-example
#: gradients' outer products δ_k a_kᵀ are written by stores or in non-temporal stores.
PRODUCTS = ("z = a wᵀ", "∂C/∂w = δᵀ a", "δ w", "δ_k a_kᵀ")
PATHS = ("BLAS", "microkernel", "panels", "rows", "packed", "stores", "streamed")


def log_products(bint on):
    """Start a fresh log of the products' paths (on), or stop logging (off). Not for two
    threads' calls at once: the log is the module's."""
    global _logging, _logged
    _logging = 0
    if on:
        _logged = 0
        _logging = 1


def logged_products():
    """The log: a tuple (product, path, rows, neurons, inputs) for each product a part ran since
    `log_products(True)`, in the order the parts wrote them; an error past its size."""
    if _logged > _LOG_SIZE:
        raise RuntimeError(f"more than {_LOG_SIZE} products logged: log fewer calls at once.")
    return [(PRODUCTS[_log[i].product], PATHS[_log[i].path], _log[i].m, _log[i].nj, _log[i].ni)
            for i in range(_logged)]


cdef inline void _abt_panels(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const floating* A,
                             Py_ssize_t lda, const floating* P, floating* Z,
                             Py_ssize_t ldz) noexcept nogil:
    """Z = A Bᵀ (m × nj) from B's panels P (`abt_panels` in _microkernels_impl.h): w^(l)'s for
    z = a wᵀ, w^(l)ᵀ's — w^(l)'s strips of columns — for δ w."""
    if floating is double:
        bpfast_abt_panels_d(m, nj, ni, A, lda, P, Z, ldz)
    else:
        bpfast_abt_panels_s(m, nj, ni, A, lda, P, Z, ldz)


cdef inline void _z_is_a_wT(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                            const floating* A, Py_ssize_t lda, const floating* W, Py_ssize_t ldw,
                            floating* Z, Py_ssize_t ldz, Py_ssize_t chunk,
                            const floating* WT=NULL, bint panels=False) noexcept nogil:
    """Z = A Wᵀ, i.e. Z_kj = Σ_i A_ki W_ji   (row-major; k < m, j < nj, i < ni); by BLAS on
    `chunk` rows at a time, or with chunk = 0 by the microkernel — which also takes a chunk of
    at most FEW_ROWS rows that BLAS would pack (more than SMALL_MACS multiply-adds): it reads
    w once for them where BLAS copies all of w first (one thread, `predict` on [784, 512, 512,
    10]: 4 examples 267 → 113 µs in float32, 474 → 211 in float64; 8 examples 323 → 195; a
    layer [256 → 1,024] on 4, 1.8–1.9×; on chunks of 16 rows, 0.85–1.9×: kept to BLAS). Where
    BLAS packs every product (`_blas_small_path` false), the microkernel takes any chunk of at
    most FEW_Z_BYTES a column — 16 float64 rows, 32 float32 — over at least NARROW_INPUTS inputs
    and FEW_WEIGHTS weights: one thread, AVX2 (Zen 3), w in cache, over BLAS: [784 → 100] on
    4, 8, 16 and 32 float64 rows 2.6×, 1.4×, 1.2×, 1.0×; on 16 rows [784 → 512] 1.2×,
    [512 → 512] 1.3×, [784 → 30] 1.3×, [2,048 → 256] 1.05×; on 32 float32 rows [784 → 512]
    1.4×, [784 → 100] 1.5×, [784 → 30] 1.7×; on 64, [784 → 100] 1.2× (at 36–37 GFLOP/s in
    float64, where a large dgemm runs at 42 on one core; 73–78 in float32). Whole calls, the
    rule of 64 bytes (and the microkernel before its registers were rearranged) against this
    one, in turns in one process, five rounds, best times: `predict` of [784, 100, 10] on 32
    float64 examples (chunks of 16) 1.15–1.27×, of [784, 512, 512, 10] 1.32–1.59×, on 64
    float32 (chunks of 32) 1.36–1.45×; the gradient of [784, 30, 10] on 32 float64, 1.04–1.19×,
    of [784, 512, 512, 10] on 64 float32, 1.07–1.17×. The chunk decides, not each chunk's rows: a
    call's every row goes the same way, wherever it stands (its row does not change when the
    batch is shuffled). WT: NULL, or a copy of W (`_copy_weights`): with `panels`, its panels,
    from which bpfast's product takes every row at once (`_panelled`); else Wᵀ itself
    (ni × nj, row-major), which BLAS takes untransposed."""
    cdef Py_ssize_t k, rows
    cdef bint few
    if m == 0 or nj == 0:
        return
    if WT != NULL and panels:
        _log_product(Z_IS_A_WT, BY_PANELS, m, nj, ni)
        _abt_panels(m, nj, ni, A, lda, WT, Z, ldz)
    elif chunk > 0:
        few = (chunk <= FEW_ROWS and chunk * nj * ni > SMALL_MACS if _blas_small_path else
               chunk * sizeof(floating) <= FEW_Z_BYTES and ni >= NARROW_INPUTS
               and nj * ni >= FEW_WEIGHTS)
        _log_product(Z_IS_A_WT, BY_MICROKERNEL if few else BY_BLAS, m, nj, ni)
        k = 0
        while k < m:
            rows = min(chunk, m - k)
            if few:
                if floating is double:
                    bpfast_abt_d(rows, nj, ni, A + k * lda, lda, W, ldw, Z + k * ldz, ldz)
                else:
                    bpfast_abt_s(rows, nj, ni, A + k * lda, lda, W, ldw, Z + k * ldz, ldz)
            elif WT != NULL:
                _gemm(c'N', c'N', nj, rows, ni, 1, WT, nj, A + k * lda, lda, 0, Z + k * ldz, ldz)
            else:
                _gemm(c'T', c'N', nj, rows, ni, 1, W, ldw, A + k * lda, lda, 0, Z + k * ldz, ldz)
            k += rows
    else:
        _log_product(Z_IS_A_WT, BY_MICROKERNEL, m, nj, ni)
        if floating is double:
            bpfast_abt_d(m, nj, ni, A, lda, W, ldw, Z, ldz)
        else:
            bpfast_abt_s(m, nj, ni, A, lda, W, ldw, Z, ldz)


cdef inline Py_ssize_t _unpacked_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni) noexcept nogil:
    """How many of m rows k at a time ∂C/∂w = Dᵀ A (nj × ni) gives BLAS. Where nj is narrow,
    OpenBLAS packs A's rows for a product of more than SMALL_MACS multiply-adds, each packed
    number then serving only nj of them ([784, 30] on 500 rows: 9% of a gradient call in the
    packing alone); in blocks of at most SMALL_MACS, added up into W, it reads A in place. The
    blocks are of equal size (but the last), each no larger than that — if that leaves them
    BLAS_ROWS rows at least, below which W's reads and writes per block outweigh the packing;
    else 0: every row at once — as for a w of more than SMALL_MACS numbers, whose one row is
    already too much (no block has a row then: `most` is 0)."""
    cdef Py_ssize_t most = SMALL_MACS // (nj * ni), blocks, rows
    if not _blas_small_path:
        return 0
    if m <= most or most < BLAS_ROWS:
        return 0
    blocks = _ceil_div(m, most)
    rows = _ceil_div(m, blocks)
    return rows if rows >= BLAS_ROWS else 0


cdef inline bint _dT_a_by_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                               size_t size) noexcept nogil:
    """Whether ∂C/∂w = α δᵀ a over m rows of a layer [ni → nj] goes to bpfast's own product
    (atb_rows, _microkernels_impl.h) rather than BLAS: where BLAS packs every product — all of
    a for each, on which a layer of 30 neurons makes 30 multiply-adds per number packed — on
    NARROW_ROWS rows or more, for a layer of FEW_WEIGHTS weights or more whose row of δ takes
    at most ROWS_NEURON_BYTES (32 float64 neurons, 64 float32), while those rows of a take at
    most ROWS_BYTES. One thread, a C harness on scipy's OpenBLAS (AVX2, Zen 3), 500 rows:
    [784 → 30] 1.14–1.40× as fast as BLAS in float64, 1.7–1.8× in float32; [784 → 8 … 31]
    1.03–1.28× in float64; [784 → 64] float32 1.14–1.18×, float64 0.83–0.94× (BLAS reaches its
    speed there); [64 → 30] on 900, 1.34× and 2.1×. Read down the rows a column block at a
    time, a comes from memory slower than BLAS's packing reads it along them: [784 → 30] on
    5,000 rows (31 MB) in float64, blocks of 64 rows, 0.69× without prefetches and 0.80–0.94×
    with them; of 32, 1.08–1.23× on one thread, but a whole call on 10,000 rows (two parts of
    31 MB at once) 0.80–1.00× — whence ROWS_BYTES."""
    return (not _blas_small_path and m >= NARROW_ROWS and nj * size <= ROWS_NEURON_BYTES
            and nj * ni >= FEW_WEIGHTS and m * ni * size <= ROWS_BYTES)


def dT_a_by_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, dtype):
    """Whether ∂C/∂w of a layer [ni → nj] over m rows of `dtype` goes to bpfast's own product
    (`_dT_a_by_rows`)."""
    return _dT_a_by_rows(m, nj, ni, np.dtype(dtype).itemsize)


cdef inline bint _dT_a_packed(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                              size_t size) noexcept nogil:
    """Whether ∂C/∂w = α δᵀ a over m rows, for nj neurons of a layer of ni inputs, goes to bpfast's
    own product from both operands packed (atb_packed, _microkernels_impl.h) rather than BLAS,
    which packs products this large whatever its kind (Design 10): on PACKED_ROWS to
    PACKED_MAX_ROWS rows, for FEW_WEIGHTS weights or more, on more neurons than `_dT_a_by_rows`
    takes (a row of δ wider than ROWS_NEURON_BYTES). The product is OpenBLAS's in kind — both
    operands packed, 6 neurons × 2 vectors of sums in registers — but δ's panels are a part's own
    and a's are shared by the parts (`_packed`), where each part's BLAS packs all of a; and no pass
    zeroes W first. One thread, a C harness on scipy's OpenBLAS (AVX2, Zen 3), over BLAS, δ's
    packing and half of a's counted: float32 [784 → 256] on 128 rows 1.11×, [512 → 256] 1.12×,
    [784 → 512] on 256 1.04–1.07×, [1,024 → 512] on 128 1.03–1.05×, [784 → 128] 1.13×, [784 → 64]
    1.33×; float64 [784 → 512] 0.98–1.05×, [1,024 → 512] 0.97–1.07×, where BLAS's kernel is as fast
    and the copies twice as long: float32 only. On more rows, each block of 256 rows reads its
    stretch of every panel of a, panels m · 64 bytes apart, from memory: the product alone, over
    BLAS, [784 → 100] on 1,000 rows 1.33×, on 2,000 1.27×, on 3,000 0.99×, on 5,000 0.44× (and
    [784 → 256] 0.35×); [784 → 512] on 1,024 1.12× — whence PACKED_MAX_ROWS."""
    return (size == sizeof(float) and PACKED_ROWS <= m <= PACKED_MAX_ROWS
            and nj * size > ROWS_NEURON_BYTES and nj * ni >= FEW_WEIGHTS)


cdef inline bint _dT_a_few_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                                size_t size) noexcept nogil:
    """Whether a call's ∂C/∂w = α δᵀ a over a region of m rows, for nj neurons of a layer of
    ni inputs, goes to the microkernel (atb) rather than BLAS: where BLAS packs every product,
    on fewer than SMALL_BATCH rows, over NARROW_INPUTS inputs or more, for a block of w of at
    most FEW_ROWS_W_BYTES (half of Zen 3's L2). There OpenBLAS packs all of a and δ for a
    product of a few rows, and zeroes w before it adds to it: one thread, a C harness on scipy's
    OpenBLAS (AVX2, Zen 3), atb over BLAS, float64 / float32: [784 → 15] on 16 rows 1.81 /
    2.48×, [784 → 30] on 32 0.97–1.12 / 1.93×, on 48 1.23 / 1.48×, [784 → 50] on 48 1.00 /
    1.40×, [100 → 10] on 16 1.19 / 1.55×. Past the bound a block of a (m rows of 2 KiB) no
    longer shares L1 with w's rows, and BLAS wins: [784 → 100] on 32 0.93 / 1.15×, [784 → 256]
    on 16 0.74 / 0.89×, [784 → 512] 0.71 / 0.68×, [512 → 512] on 32 0.60 / 0.65×; so does it on
    fewer inputs than a block of the microkernel's vectors ([30 → 10] 0.65 / 0.34×)."""
    return (not _blas_small_path and m < SMALL_BATCH and ni >= NARROW_INPUTS
            and nj * ni * size <= FEW_ROWS_W_BYTES)


def dT_a_few_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, dtype):
    """Whether a call's ∂C/∂w over m rows for nj neurons of ni inputs of `dtype` goes to the
    microkernel (`_dT_a_few_rows`)."""
    return _dT_a_few_rows(m, nj, ni, np.dtype(dtype).itemsize)


cdef inline void _w_is_beta_w_plus_alpha_dT_a(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                                              floating alpha, floating beta,
                                              const floating* D, Py_ssize_t ldd,
                                              const floating* A, Py_ssize_t lda,
                                              floating* W, Py_ssize_t ldw,
                                              bint blas) noexcept nogil:
    """W = β W + α Dᵀ A, i.e. W_ji = β W_ji + α Σ_k D_kj A_ki   (β = 0 never reads W); by BLAS,
    or by the microkernel. BLAS takes the rows k in blocks each small enough for its unpacked
    path where that leaves at least BLAS_ROWS rows a block (`_unpacked_rows`), else all at once
    — but where it packs every product, a layer of few neurons (`_dT_a_by_rows`) goes to
    bpfast's own product over the rows, which reads A in place."""
    cdef Py_ssize_t k = 0, rows
    if m == 0 or nj == 0:
        return
    if blas and _dT_a_by_rows(m, nj, ni, sizeof(floating)) and (
            beta == 0 or (alpha == 1 and beta == 1)):
        _log_product(DT_A, BY_ROWS, m, nj, ni)
        if floating is double:
            bpfast_atb_rows_d(m, nj, ni, alpha, beta != 0, D, ldd, A, lda, W, ldw)
        else:
            bpfast_atb_rows_s(m, nj, ni, alpha, beta != 0, D, ldd, A, lda, W, ldw)
    elif blas:
        _log_product(DT_A, BY_BLAS, m, nj, ni)
        rows = _unpacked_rows(m, nj, ni)
        while 0 < rows < m - k:
            _gemm(c'N', c'T', ni, nj, rows, alpha, A + k * lda, lda, D + k * ldd, ldd, beta, W, ldw)
            beta = 1
            k += rows
        _gemm(c'N', c'T', ni, nj, m - k, alpha, A + k * lda, lda, D + k * ldd, ldd, beta, W, ldw)
    else:
        _log_product(DT_A, BY_MICROKERNEL, m, nj, ni)
        if floating is double:
            bpfast_atb_d(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw, NULL, NULL)
        else:
            bpfast_atb_s(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw, NULL, NULL)


cdef inline bint _aliased_rows(Py_ssize_t ldw, size_t size) noexcept nogil:
    """Whether the microkernel (ab) is kept from T = D W over float64 rows of W a multiple of
    ALIASED_BYTES (8 KiB) apart: read down W's columns, every row's line then falls in the same
    set of L1, and ab lost to BLAS — one thread, AVX2 (Zen 3), ab over BLAS: [1,024 → 1,024] on
    8 rows 0.26×, [1,024 → 256] 0.69×, [1,024 → 10] 0.77× — where rows 6,272 bytes apart
    ([784 → 512] on 8) run 1.44× as fast, and float32 rows 4 KiB apart 1.36–1.54×. In whole
    calls, against ab, five rounds: the gradient of [784, 1,024, 1,024, 10] on 8 float64 rows
    1.35–1.49×, its per-example norms 1.92–2.21×, its per-example gradients 1.05–1.30×; on 1,
    4 and 16 rows (chunks not all of 8) 0.88–1.65×. At 4 KiB ([512 → 512] float64: 0.69–0.76×
    in the harness) whole calls went the other way — the gradient of [784, 512, 512, 10] on 1,
    4, 8, 16 rows 0.56–1.06× with BLAS —: ab keeps those."""
    return size == sizeof(double) and (ldw * size) % ALIASED_BYTES == 0


def aliased_rows(Py_ssize_t ldw, dtype):
    """Whether δ w over rows of w `ldw` numbers of `dtype` apart is kept from the microkernel
    (`_aliased_rows`)."""
    return _aliased_rows(ldw, np.dtype(dtype).itemsize)


cdef inline void _t_is_d_w(Py_ssize_t m, Py_ssize_t ni, Py_ssize_t nj,
                           const floating* D, Py_ssize_t ldd, const floating* W, Py_ssize_t ldw,
                           floating* T, Py_ssize_t ldt, Py_ssize_t chunk,
                           const floating* WS=NULL) noexcept nogil:
    """T = D W, i.e. T_ki = Σ_j D_kj W_ji   (row-major; k < m, i < ni, j < nj); by BLAS on
    `chunk` rows at a time, or with chunk = 0 by the microkernel — which also takes a chunk of
    at most FEW_BYTES a column over FEW_WEIGHTS weights or more where BLAS packs every product
    (`_blas_small_path` false, as in `_z_is_a_wT`): one thread, AVX2 (Zen 3), w of
    [784 → 100], [784 → 512], [512 → 512], [784 → 30] or [100 → 10] in cache, 1.2–3.9× as fast
    as BLAS on 1–4 rows in float64 (0.7 on one row of [512 → 512]), 0.8–1.5× on 8; 1.1–9.7× on
    1–8 rows in float32. Where BLAS does not pack a small product, it keeps every chunk (the
    microkernel there: mixed, 0.96–1.05×)."""
    cdef Py_ssize_t k, rows
    cdef bint few
    if m == 0 or ni == 0:
        return
    if WS != NULL:
        _log_product(D_W, BY_PANELS, m, nj, ni)
        _abt_panels(m, ni, nj, D, ldd, WS, T, ldt)
    elif chunk > 0:
        few = (not _blas_small_path and chunk * sizeof(floating) <= FEW_BYTES
               and nj * ni >= FEW_WEIGHTS and not _aliased_rows(ldw, sizeof(floating)))
        _log_product(D_W, BY_MICROKERNEL if few else BY_BLAS, m, nj, ni)
        k = 0
        while k < m:
            rows = min(chunk, m - k)
            if few:
                if floating is double:
                    bpfast_ab_d(rows, ni, nj, D + k * ldd, ldd, W, ldw, T + k * ldt, ldt)
                else:
                    bpfast_ab_s(rows, ni, nj, D + k * ldd, ldd, W, ldw, T + k * ldt, ldt)
            else:
                _gemm(c'N', c'N', ni, rows, nj, 1, W, ldw, D + k * ldd, ldd, 0, T + k * ldt,
                      ldt)
            k += rows
    else:
        _log_product(D_W, BY_MICROKERNEL, m, nj, ni)
        if floating is double:
            bpfast_ab_d(m, ni, nj, D, ldd, W, ldw, T, ldt)
        else:
            bpfast_ab_s(m, ni, nj, D, ldd, W, ldw, T, ldt)


# --- the network's layout ------------------------------------------------------------------------

cdef struct Layout:
    # What a network is, for the kernels: computed once (`NetworkLayout`), the only place where
    # offsets and block sizes are worked out. Arrays indexed by the layer l = 1..L (index 0 of the
    # per-layer arrays is the input layer's or unused).
    int L
    Py_ssize_t* sizes       # n_0, …, n_L
    Py_ssize_t* w           # where w^(l) starts in θ (row-major, (n_l, n_{l−1}))
    Py_ssize_t* b           # where b^(l) starts in θ (just after w^(l))
    Py_ssize_t* before      # n_1 + … + n_{l−1}: layer l's (n, n_l) block of a batch buffer
                            # starts at n · before[l]
    int* acts               # the activation of layer l: acts[l − 1] (numbered in _codes.h)
    int cost                # numbered in _codes.h
    Py_ssize_t P            # the length of θ and ∇C: Σ_l n_l (n_{l−1} + 1)
    Py_ssize_t width        # n_1 + … + n_L: the columns of a batch buffer, all layers
    Py_ssize_t widest_hidden  # max(n_1, …, n_{L−1}), 1 without hidden layers: T's columns


cdef inline Py_ssize_t _block(const Layout* lay, int l, Py_ssize_t n) noexcept nogil:
    """Where layer l's (n, n_l) block starts in the per-layer batch buffers"""
    return n * lay.before[l]


cdef inline Py_ssize_t _first(Py_ssize_t n, int part, int n_parts) noexcept nogil:
    """The first of the neurons (or rows) 0..n−1 that `part` owns; it owns up to the next's."""
    return n * part // n_parts


cdef inline bint _rows_are_split(const Layout* lay) noexcept nogil:
    """Whether the output layer is shared between parts by examples (softmax) and not neurons"""
    return lay.acts[lay.L - 1] == SOFTMAX


cdef class NetworkLayout:
    """The layout of a network (Design 1): sizes, where each w^(l) and b^(l) starts in θ, where
    each layer's block starts in a batch buffer, the activation and cost codes — computed once,
    read by the kernels as a C struct and by Python through these attributes. `workspace`
    sizes the buffers a batch needs."""
    cdef Layout c
    cdef object _arrays             # the numpy arrays behind c's pointers

    def __cinit__(self, sizes, acts, int cost):
        cdef int L = len(sizes) - 1, l
        cdef Py_ssize_t[::1] s, w, b, before
        cdef int[::1] codes
        self._arrays = [np.asarray(sizes, dtype=np.intp).copy(), np.zeros(L + 1, np.intp),
                        np.zeros(L + 1, np.intp), np.zeros(L + 1, np.intp),
                        np.asarray(acts, dtype=np.intc).copy()]
        s, w, b, before, codes = self._arrays
        if L < 1 or codes.shape[0] != L:
            raise ValueError("a layout needs sizes [n0, …, nL] and one activation per layer.")
        self.c.L = L
        self.c.P = 0
        self.c.width = 0
        self.c.widest_hidden = 1
        for l in range(1, L + 1):
            w[l] = self.c.P
            b[l] = self.c.P + s[l] * s[l - 1]
            self.c.P += s[l] * (s[l - 1] + 1)
            before[l] = self.c.width
            self.c.width += s[l]
            if l < L and s[l] > self.c.widest_hidden:
                self.c.widest_hidden = s[l]
        self.c.sizes = &s[0]
        self.c.w = &w[0]
        self.c.b = &b[0]
        self.c.before = &before[0]
        self.c.acts = &codes[0]
        self.c.cost = cost

    def __reduce__(self):
        return NetworkLayout, (self.sizes, self.activation_codes, self.c.cost)

    @property
    def sizes(self):
        return tuple(int(n) for n in self._arrays[0])

    @property
    def L(self):
        return self.c.L

    @property
    def P(self):
        """The length of θ and of ∇C."""
        return self.c.P

    @property
    def width(self):
        """n_1 + … + n_L: the columns of a batch buffer that holds every layer."""
        return self.c.width

    def w_offset(self, int l):
        """Where w^(l) starts in θ, for l = 1..L (b^(l) follows it)."""
        return int(self._arrays[1][l])

    def b_offset(self, int l):
        return int(self._arrays[2][l])

    def block(self, int l, Py_ssize_t n):
        """Where layer l's (n, n_l) block starts in a batch buffer of n rows."""
        return n * int(self._arrays[3][l])

    @property
    def activation_codes(self):
        return tuple(int(a) for a in self._arrays[4])

    @property
    def cost_code(self):
        return self.c.cost

    def workspace(self, Py_ssize_t rows, dtype, bint training=False):
        """The buffers for batches of up to ``rows`` examples (`Workspace`); with ``training``,
        also the two halves of the gathered mini-batch that an epoch alternates between."""
        return Workspace(self, rows, dtype, training)


cdef inline bint _narrow_input(const Layout* lay, int l) noexcept nogil:
    """Whether a call on NARROW_ROWS examples or more (`_copies_weights`) computes z^(l) = a w^(l)ᵀ
    from w^(l) transposed (`_copy_weights`), where BLAS skips packing small products: for fewer
    than NARROW_INPUTS inputs, or at most SMALL_WEIGHTS weights, which cost little to copy.
    Where it packs every product, the copy buys nothing (one thread, 128 and 512 rows, GFLOP/s
    of A Wᵀ against A (Wᵀ): [16 → 2,048] 10.8 / 11.1, [30 → 10] 14.0 / 13.6, [64 → 30]
    29.6 / 28.6): no layer is copied transposed there."""
    return _blas_small_path and (lay.sizes[l - 1] < NARROW_INPUTS
                                 or lay.sizes[l - 1] * lay.sizes[l] <= SMALL_WEIGHTS)


cdef inline bint _wide_panelled(const Layout* lay, int l, Py_ssize_t n) noexcept nogil:
    """Whether a call on n examples takes z^(l) of a layer wider than PANEL_OUTPUTS from panels too
    (`_panelled`), on any BLAS (Design 10): from WIDE_PANEL_ROWS examples on, where the copy (the
    call's first stage, each part its share of the panels) is repaid, for a layer of at most
    WIDE_PANEL_INPUTS · n inputs (its copy, n_l · n_(l−1) numbers, then at most WIDE_PANEL_INPUTS
    times z^(l)'s n · n_l: the call's work stays in proportion to its rows). n counts the call's
    rows, not a part's: the same rows go the same way on any number of threads. One thread, a C
    harness, z = a wᵀ, OpenBLAS over the panels (the copy apart), float32 / float64: [784 → 512] on
    128 rows 1.17–1.26× / 1.22–1.31×, on 256 1.16 / 1.28×, [512 → 512] on 128 1.25 / 1.17×,
    [784 → 1,024] 1.25 / 1.25×, [784 → 100] on 1,000 1.08 / 1.19× — the copy 115–140 µs for
    [784 → 512] float32, 200–220 float64. In whole calls, where the copy counts, `predict` against
    panels for narrow layers only (five rounds in turns in one process): [784, 512, 512, 10]
    float32 on 512 rows 1.12–1.35×, on 256 1.06–1.12×, [784, 1,024, 1,024, 10] float32 on 512
    1.08–1.13×, [784, 256, 10] float32 on 256 1.06–1.10×, [784, 100, 10] float64 on 10,000
    1.14–1.20×; float64 [784, 512, 512, 10] on 256 and [784, 1,024, 1,024, 10] on 256 even
    (0.83–1.11×); on 128 rows, two parts of 64, the copy costs more than it saves:
    [784, 1,024, 1,024, 10] float64 0.87–0.95×."""
    return n >= WIDE_PANEL_ROWS and lay.sizes[l - 1] <= WIDE_PANEL_INPUTS * n


cdef inline bint _panelled(const Layout* lay, int l, Py_ssize_t n) noexcept nogil:
    """Whether a call on NARROW_ROWS examples or more (`_copies_weights`) computes z^(l) = a w^(l)ᵀ
    by bpfast's own product from w^(l) in panels (`_copy_weights`, `abt_panels` in
    _microkernels_impl.h), for a layer of FEW_WEIGHTS weights or more: where BLAS packs every
    product, of at most PANEL_OUTPUTS neurons; on any BLAS, a wider one on many rows
    (`_wide_panelled`) but for the layers BLAS takes transposed (`_narrow_input`). OpenBLAS's
    Haswell kernels pack all of a for every product, each number then serving n_l multiply-adds;
    bpfast's reads a in place. One thread, a C harness on scipy's OpenBLAS (AVX2, Zen 3), GFLOP/s
    of the product, BLAS / panels, and the speed-up with the copy: float64 on 500 rows [784 → 30]
    29.2 / 40.6, 1.37×, on 64 [784 → 64] 34.2 / 43.2, 1.12×; float32 on 512 [784 → 16] 55.9 / 89.2,
    1.56×, on 256 [784 → 64] 71.6 / 87.7, 1.17×. In whole calls (default threads, five rounds in
    turns in one process, ms): `predict` on 1,000 examples of [784, 30, 10] 1.109 → 0.814, on 1,024
    of [784, 16, 10] in float32 0.349 → 0.236, the digits' [64, 30, 10] on 1,797 0.347 → 0.308; the
    gradient on 1,000 of [784, 30, 10] 2.700 → 2.433, its per-example norms 1.316 → 1.077. Wider
    layers gain on one thread too ([784 → 128] 1.06–1.25×, [784 → 512] 1.1–1.3×), but on few rows
    the copy (then one thread's, before the parts started: 28–37 µs for [784 → 100] or [784 → 128]
    in float64) takes what the product saves — `predict` on 128 examples of [784, 128, 10] 0.532 →
    0.582 —: they are panelled on many rows only (`_wide_panelled`)."""
    return (lay.sizes[l] * lay.sizes[l - 1] >= FEW_WEIGHTS
            and ((not _blas_small_path and lay.sizes[l] <= PANEL_OUTPUTS)
                 or (_wide_panelled(lay, l, n) and not _narrow_input(lay, l))))


cdef inline Py_ssize_t _copy_size(const Layout* lay, int l, Py_ssize_t itemsize,
                                  Py_ssize_t n) noexcept nogil:
    """The numbers of w^(l)'s copy in a call (`_copy_weights`): its panels, each of PANEL_BYTES
    of neurons (zeros past n_l), or w^(l)ᵀ, or none (0)."""
    cdef Py_ssize_t panel = PANEL_BYTES // itemsize
    if _panelled(lay, l, n):
        return _round_up(lay.sizes[l], panel) * lay.sizes[l - 1]
    if _narrow_input(lay, l):
        return lay.sizes[l] * lay.sizes[l - 1]
    return 0


cdef inline bint _copies_weights(Py_ssize_t n) noexcept nogil:
    """Whether a call on n examples copies its narrow layers' w (`_copy_weights`): from
    NARROW_ROWS examples on, where the products it speeds up repay the copy (one thread, µs:
    [64, 30, 10] float64 predict on 128 rows 45.7 untransposed → 41.8, on 1,797 431 → 348, but
    on one 16.7 → 18.2 and on 64 30.6 → 30.3; [32, 64, 64, 10] on 512 rows 260 → 235, on one
    10.7 → 15.7; [16, 2,048, 10] on one 28 → 118, its copy row by row 60 µs of it)."""
    return n >= NARROW_ROWS


cdef inline Py_ssize_t _copy_at(const Layout* lay, int l, Py_ssize_t itemsize,
                                Py_ssize_t n) noexcept nogil:
    """Where w^(l)'s copy starts among a call's copies of weights (`_copy_weights`): the copied
    layers' one after another, so that they take their numbers and not θ's (with l = L + 1, how
    many there are)."""
    cdef Py_ssize_t at = 0
    cdef int k
    for k in range(1, l):
        at += _copy_size(lay, k, itemsize, n)
    return at


cdef inline bint _stripped(const Layout* lay, int l, Py_ssize_t n) noexcept nogil:
    """Whether a call on n examples that goes down the layers takes δ w^(l) from w^(l) copied
    in strips of PANEL_BYTES of its columns (`_copy_strips`) — the panels of w^(l)ᵀ, from which
    `abt_panels` computes T = δ w as it computes z = a wᵀ —: on any BLAS (Design 10), for
    a layer below which δ goes (l ≥ 2) of more than PANEL_OUTPUTS neurons and at most
    WIDE_PANEL_INPUTS · n of them (the copy then at most WIDE_PANEL_INPUTS times T's n · n_(l−1)
    numbers), on WIDE_PANEL_ROWS examples or more, as `_wide_panelled`. One thread, a C harness,
    T = δ w on 128 rows, OpenBLAS over the strips' product, the copy apart / included, float32 /
    float64: [512 → 512] 1.20 / 1.17× and 1.11 / 1.08×, [784 → 512] 1.22 / 1.11× and 1.12 /
    1.03×, on 256 rows 1.14 / 1.16× and 1.09 / 1.11×."""
    return (l >= 2 and n >= WIDE_PANEL_ROWS
            and PANEL_OUTPUTS < lay.sizes[l] <= WIDE_PANEL_INPUTS * n
            and lay.sizes[l] * lay.sizes[l - 1] >= FEW_WEIGHTS)


cdef inline Py_ssize_t _strips_at(const Layout* lay, int l, Py_ssize_t itemsize,
                                  Py_ssize_t n) noexcept nogil:
    """Where w^(l)'s strips start after a call's copies of weights (`_copy_at`(L + 1)): the
    stripped layers' one after another (with l = L + 1, how many numbers they take)."""
    cdef Py_ssize_t at = 0, panel = PANEL_BYTES // itemsize
    cdef int k
    for k in range(2, l):
        if _stripped(lay, k, n):
            at += _round_up(lay.sizes[k - 1], panel) * lay.sizes[k]
    return at


def dT_a_packed(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, dtype):
    """Whether ∂C/∂w over m rows for nj neurons of ni inputs of `dtype` goes to bpfast's product
    from packed operands (`_dT_a_packed`)."""
    return _dT_a_packed(m, nj, ni, np.dtype(dtype).itemsize)


cdef inline bint _packed(const Layout* lay, int l, Py_ssize_t n, int n_parts,
                         size_t size) noexcept nogil:
    """Whether a call on n examples in n_parts parts, its batch mean by neurons (CALL_GRADIENT),
    takes ∂C/∂w^(l) from packed operands (`_dT_a_packed` for a part's share of the neurons,
    the largest), over all n rows at once: each part packs its rows of a^(l−1) as it goes down
    the layers (`_pack_inputs`), then its neurons' columns of δ^(l) over every row."""
    return _dT_a_packed(n, _ceil_div(lay.sizes[l], n_parts), lay.sizes[l - 1], size)


cdef inline Py_ssize_t _packed_at(const Layout* lay, int l, Py_ssize_t itemsize, Py_ssize_t n,
                                  int n_parts) noexcept nogil:
    """Where a^(l−1)'s panels start among a call's packed inputs (`_pack_inputs`): the packed
    layers' one after another, n rows each (with l = L + 1, how many numbers they take)."""
    cdef Py_ssize_t at = 0
    cdef int k
    for k in range(1, l):
        if _packed(lay, k, n, n_parts, itemsize):
            at += n * _round_up(lay.sizes[k - 1], PANEL_BYTES // itemsize)
    return at


cdef inline Py_ssize_t _neuron_panels_stride(const Layout* lay, Py_ssize_t itemsize,
                                             Py_ssize_t n, int n_parts) noexcept nogil:
    """How far apart the parts' panels of δ start: room for the widest packed layer's share of
    neurons, in whole panels over n rows, rounded up to a cache line."""
    cdef Py_ssize_t most = 0
    cdef int l
    for l in range(1, lay.L + 1):
        if _packed(lay, l, n, n_parts, itemsize):
            most = max(most, n * _round_up(_ceil_div(lay.sizes[l], n_parts), NEURON_PANEL))
    return _round_up(most, PANEL_BYTES // itemsize)


cdef void _column_panels(const floating* M, Py_ssize_t ld, Py_ssize_t rows, Py_ssize_t c0,
                         Py_ssize_t c1, Py_ssize_t width, floating* out,
                         Py_ssize_t length) noexcept nogil:
    """out[p, k, c] = M[k, c0 + p·width + c] for k < rows: M's columns c0 ≤ … < c1 in panels of
    `width` (zeros past c1), each panel `length` rows long. M read row by row, in order (a panel
    at a time down the rows: 2.6 times as long)."""
    cdef Py_ssize_t k, p, full = (c1 - c0) // width, cols = (c1 - c0) % width
    for k in range(rows):
        for p in range(full):
            memcpy(out + (p * length + k) * width, M + k * ld + c0 + p * width,
                   width * sizeof(floating))
        if cols > 0:
            memcpy(out + (full * length + k) * width, M + k * ld + c0 + full * width,
                   cols * sizeof(floating))
            memset(out + (full * length + k) * width + cols, 0, (width - cols) * sizeof(floating))


cdef void _copy_strips(const Layout* lay, const floating* theta, floating* WS, Py_ssize_t n,
                       int part, int n_parts) noexcept nogil:
    """Part `part` of n_parts's share of the strips of every layer `_stripped` picks, at
    WS + `_strips_at`(l): WS[p, j, c] = w_j,(p·panel + c) — strip p of w^(l)'s columns, its
    n_l rows one after another, zeros past n_(l−1) (`_column_panels`)."""
    cdef Py_ssize_t panel = PANEL_BYTES // sizeof(floating), strips, n_in, n_out, p0, p1
    cdef int l
    for l in range(2, lay.L + 1):
        if not _stripped(lay, l, n):
            continue
        n_in, n_out = lay.sizes[l - 1], lay.sizes[l]
        strips = _ceil_div(n_in, panel)
        p0, p1 = _first(strips, part, n_parts), _first(strips, part + 1, n_parts)
        if p0 < p1:
            _column_panels(theta + lay.w[l], n_in, n_out, p0 * panel, min(p1 * panel, n_in),
                           panel, WS + _strips_at(lay, l, sizeof(floating), n)
                           + p0 * n_out * panel, n_out)


cdef class Workspace:
    """Work buffers for batches of up to ``rows`` examples of a layout, cache-line aligned:
    A (a^(1..L)), S (slopes, then δ^(1..L)), Z (z^(1..L), for the forward pass's trace), T (the
    sum over j of one layer), and for training Xb, Yb (two mini-batches of inputs and targets).
    Sized here, from the layout: no caller computes a scratch size."""
    cdef readonly Py_ssize_t rows
    cdef readonly object dtype, A, S, Z, T, Xb, Yb
    cdef object G                   # by-examples steps' sums of ∂C/∂θ, made when first needed
    cdef object before              # θ as an epoch began, made when first needed
    cdef object WT                  # a call's copies of weights, made when first needed
    cdef object AP                  # a call's packed operands of ∂C/∂w, made when first needed
    cdef Py_ssize_t P               # θ's numbers

    def __cinit__(self, NetworkLayout layout, Py_ssize_t rows, dtype, bint training):
        from ._buffers import aligned_empty
        self.rows = rows
        self.P = layout.c.P
        self.G = self.before = self.WT = self.AP = None
        self.dtype = np.dtype(dtype)
        self.A = aligned_empty(rows * layout.c.width, self.dtype)
        self.S = aligned_empty(rows * layout.c.width, self.dtype)
        self.Z = None
        self.T = aligned_empty(rows * layout.c.widest_hidden, self.dtype)
        self.Xb = self.Yb = None
        if training:
            self.Xb = aligned_empty(2 * rows * layout.c.sizes[0], self.dtype)
            self.Yb = aligned_empty(2 * rows * layout.c.sizes[layout.c.L], self.dtype)

    @property
    def nbytes(self):
        """The bytes its buffers take."""
        return sum(b.nbytes for b in (self.A, self.S, self.Z, self.T, self.Xb, self.Yb, self.G,
                                      self.before, self.WT, self.AP) if b is not None)

    def theta_before(self):
        """Room for a copy of θ: where `fit` keeps θ as each epoch began, to undo it."""
        from ._buffers import aligned_empty
        if self.before is None:
            self.before = aligned_empty(self.P, self.dtype)
        return self.before

    def copies(self, Py_ssize_t size):
        """Room for a call's ``size`` numbers of copied weights (`_copy_weights`): which layers
        are copied follows the BLAS the kernels call (`use_blas_small_path`)."""
        from ._buffers import aligned_empty
        if self.WT is None or self.WT.shape[0] < size:
            self.WT = aligned_empty(size, self.dtype)
        return self.WT

    def packs(self, Py_ssize_t size):
        """Room for a call's ``size`` numbers of packed operands of ∂C/∂w (`_packed`)."""
        from ._buffers import aligned_empty
        if self.AP is None or self.AP.shape[0] < size:
            self.AP = aligned_empty(size, self.dtype)
        return self.AP

    def sums(self, int n_parts):
        """Room for n_parts sums of ∂C/∂θ, each starting on a cache line (`sums_stride`
        numbers apart): a by-examples step's (Design 11)."""
        from ._buffers import aligned_empty
        cdef Py_ssize_t size = n_parts * _sums_stride(self.P)
        if self.G is None or self.G.shape[0] < size:
            self.G = aligned_empty(size, self.dtype)
        return self.G

    def with_z(self):
        """The workspace, with room kept for z^(1..L) as well (a forward pass's trace)."""
        from ._buffers import aligned_empty
        if self.Z is None:
            self.Z = aligned_empty(self.A.shape[0], self.dtype)
        return self


cdef inline void _fits(Workspace ws, Py_ssize_t n, dtype, bint training=False) except *:
    """An internal check before the kernels, which trust their buffers: a workspace for at least
    n rows of the right dtype."""
    if ws.rows < n or ws.dtype != dtype or (training and ws.Xb is None):
        raise ValueError(f"a workspace of {ws.rows} {ws.dtype} rows cannot take {n} of {dtype}.")


# --- the forward pass ----------------------------------------------------------------------------

# Rows of a layer no wider than ACT_WIDTH neurons are activated ACT_ROWS at a time
# (`_forward_layer`): ACT_ROWS rows of any width fill whole vectors of ACT_VECTOR bytes, the
# widest the activations use (x86-64-v4's: 8 doubles, 16 floats).
cdef enum:
    ACT_ROWS = 16
    ACT_WIDTH = 128
    ACT_VECTOR = 64

cdef enum:
    TRANSPOSE_TILE = 16


cdef void _copy_weights(const Layout* lay, const floating* theta, floating* WT,
                        Py_ssize_t n, int part=0, int n_parts=1) noexcept nogil:
    """The copies of weights a call computes z from, at WT + `_copy_at`(l): w^(l) in panels for
    every layer `_panelled` picks (`panels` in _microkernels_impl.h), and w^(l)ᵀ (n_(l−1) × n_l,
    row-major) for every layer `_narrow_input` picks.
    OpenBLAS computes a product of up to 100³ multiply-adds without packing it — but not A Wᵀ
    with W as given when W's rows are shorter than 32 numbers; A (Wᵀ), the same sums, it does:
    [30 → 10] on the digits' 1,797 rows in chunks of 64, 53 µs the one way against 24.5 the
    other (one thread). Unpacked both ways, A (Wᵀ) runs faster too: [64 → 30] 217 against 134,
    [64 → 64] on 1,000 rows 207 against 146 ([784 → 30], whose copy would cost more: 4%).
    The copy costs n_(l−1) n_l numbers once per call, taken in tiles of TRANSPOSE_TILE ×
    TRANSPOSE_TILE: row by row, with writes n_l numbers apart (16 KB for [16 → 2,048]), the
    copy of that layer's 32,768 took 60 µs, in tiles 14 (a C harness; the digits' layers, 1,920
    and 300 numbers, 0.8 and 0.14 µs either way). Part `part` of n_parts copies its share of
    every layer's panels (a call's first stage: Design 10), part 0 the transposed layers."""
    cdef Py_ssize_t n_in, n_out, i, j, i0, j0, j1
    cdef Py_ssize_t panel = PANEL_BYTES // sizeof(floating), panels
    cdef const floating* w
    cdef int l
    for l in range(1, lay.L + 1):
        n_in, n_out, w = lay.sizes[l - 1], lay.sizes[l], theta + lay.w[l]
        if _panelled(lay, l, n):
            panels = _ceil_div(n_out, panel)
            j0 = _first(panels, part, n_parts) * panel
            j1 = min(_first(panels, part + 1, n_parts) * panel, n_out)
            if j0 < j1:
                if floating is double:
                    bpfast_panels_d(j1 - j0, n_in, w + j0 * n_in, n_in, WT + j0 * n_in)
                else:
                    bpfast_panels_s(j1 - j0, n_in, w + j0 * n_in, n_in, WT + j0 * n_in)
        elif _narrow_input(lay, l) and part == 0:
            i0 = 0
            while i0 < n_in:
                j0 = 0
                while j0 < n_out:
                    for i in range(i0, min(i0 + TRANSPOSE_TILE, n_in)):
                        for j in range(j0, min(j0 + TRANSPOSE_TILE, n_out)):
                            WT[i * n_out + j] = w[j * n_in + i]
                    j0 += TRANSPOSE_TILE
                i0 += TRANSPOSE_TILE
        WT += _copy_size(lay, l, sizeof(floating), n)


cdef void _forward_layer(const Layout* lay, const floating* theta, int l, Py_ssize_t n,
                         const floating* X, floating* A, floating* S, floating* Z,
                         int part, int n_parts, Py_ssize_t chunk,
                         bint* z_finite=NULL, const floating* WT=NULL,
                         Py_ssize_t copied_for=0) noexcept nogil:
    """z^(l) = a^(l−1) w^(l)ᵀ + b^(l),  a^(l) = f_l(z^(l)),  S ← f_l'(z^(l)) for the part's
    neurons j of layer l (rows = examples; a^(0) = X), f_l being activation acts[l−1].

    z itself is kept in Z when Z is not NULL (a trace); otherwise it is computed into S, which
    the slopes then replace (the backward pass needs no z). At the output, S keeps z^(L) itself
    where the backward pass needs z and not a slope: with the cross-entropy cost (computed from
    z) and with softmax (whose Jacobian is not a slope per neuron); softmax's a^(L) is then left
    to `_softmax_rows`, by examples. `chunk`: how the product takes the rows (`_z_is_a_wT`).
    WT: NULL, or the copies of weights (`_copy_weights`) of a call on `copied_for` rows (0: a
    step of `fit`).
    """
    cdef Py_ssize_t n_in = lay.sizes[l - 1], n_out = lay.sizes[l]
    cdef const floating* w = theta + lay.w[l]
    cdef const floating* b = theta + lay.b[l]
    cdef const floating* a_prev = X if l == 1 else A + _block(lay, l - 1, n)
    cdef Py_ssize_t block = _block(lay, l, n), k
    cdef floating* s = S + block
    cdef floating* z = (Z + block) if Z != NULL else s
    cdef floating* a = A + block
    cdef Py_ssize_t j0 = _first(n_out, part, n_parts), j1 = _first(n_out, part + 1, n_parts)
    cdef bint copied = (WT != NULL and j1 - j0 == n_out
                        and _copy_size(lay, l, sizeof(floating), copied_for) > 0)
    _z_is_a_wT(n, j1 - j0, n_in, a_prev, n_in, w + j0 * n_in, n_in, z + j0, n_out, chunk,
               (WT + _copy_at(lay, l, sizeof(floating), copied_for)) if copied else NULL,
               _panelled(lay, l, copied_for))
    if z_finite != NULL:
        # z^(l) = a w + b is finite exactly when a^(l−1) and θ's rows are: a NaN or an infinity
        # among the inputs always reaches every z_j of its example (∞ · 0 is NaN), which an
        # activation could hide (σ(∞) = 1). Checked here, on n_l numbers where X has n_{l−1}.
        for k in range(n):
            if not _all_finite(z + k * n_out + j0, j1 - j0):
                z_finite[0] = False
    cdef bint keep = l == lay.L and lay.cost == CROSS_ENTROPY
    cdef Py_ssize_t width = j1 - j0, grouped = 0, r, rows
    cdef floating biases[ACT_ROWS * ACT_WIDTH]
    if width == n_out and width % (ACT_VECTOR // sizeof(floating)) != 0 and width <= ACT_WIDTH:
        # Whole rows, whose width is not a multiple of a vector's numbers: up to ACT_ROWS rows
        # at a time are (their blocks are contiguous), against b repeated as many times — one
        # loop of whole vectors (but at the group's end) where each row alone ended in a
        # scalar tail ([64, 30, 10]: 30 and 10).
        for r in range(min(<Py_ssize_t> ACT_ROWS, n)):
            memcpy(&biases[r * width], b, width * sizeof(floating))
        while grouped < n:
            rows = min(<Py_ssize_t> ACT_ROWS, n - grouped)
            _activate(z + grouped * n_out, biases, a + grouped * n_out, s + grouped * n_out,
                      rows * width, lay.acts[l - 1], keep)
            grouped += rows
    for k in range(grouped, n):
        _activate(z + k * n_out + j0, b + j0, a + k * n_out + j0, s + k * n_out + j0, width,
                  lay.acts[l - 1], keep)


cdef void _forward(const Layout* lay, const floating* theta, Py_ssize_t n, const floating* X,
                   floating* A, floating* S, floating* Z, Py_ssize_t chunk,
                   bint* z_finite, const floating* WT=NULL, Py_ssize_t copied_for=0) noexcept nogil:
    """The forward pass of a batch, every layer, on one thread (`_forward_layer`, then softmax's
    rows at the output); z_finite (or NULL) as `_forward_layer`'s, for z^(1); WT and copied_for
    as `_forward_layer`'s."""
    cdef int l
    cdef Py_ssize_t output = _block(lay, lay.L, n)
    _forward_layer(lay, theta, 1, n, X, A, S, Z, 0, 1, _layer_chunk(lay, 1, chunk), z_finite, WT,
                   copied_for)
    for l in range(2, lay.L + 1):
        _forward_layer(lay, theta, l, n, X, A, S, Z, 0, 1, _layer_chunk(lay, l, chunk), NULL, WT,
                       copied_for)
    if _rows_are_split(lay):
        _softmax_rows(S + output, A + output, lay.sizes[lay.L], 0, n)


# --- the backward pass: δ, layer by layer --------------------------------------------------------

cdef double _output_delta(const Layout* lay, Py_ssize_t n, const floating* A, const floating* Y,
                          floating* S, int part, int n_parts,
                          const floating* weight) noexcept nogil:
    """δ^(L) = ∂C_0/∂z^(L) into S's output block, which holds f'(z^(L)) or z^(L) (see
    `_forward_layer`); returns Σ_k C_k over the part's share (its neurons, or with softmax its
    examples). The one place where C_0 is computed: for `fit`, `cost` and `evaluate` alike.
    With per-example weights (``weight``: one per row, NULL for none), example k's δ_k^(L) and
    C_k are scaled by weight[k]: every sum that follows is then the weighted one.

    quadratic:             δ_j = f'(z_j) · 2(a_j − y_j)           (link 2 times link 3)
    quadratic, softmax:    δ_j = Σ_i ∂a_i/∂z_j · 2(a_i − y_i)
                               = a_j (2(a_j − y_j) − Σ_i a_i 2(a_i − y_i))
    cross-entropy, sigmoid: C_0 = Σ_j softplus(z_j) − y_j z_j, δ_j = a_j − y_j
    cross-entropy, softmax: C_0 = Σ_j y_j (lse(z) − z_j),       δ_j = a_j Σ_i y_i − y_j
    (softplus(z) = ln(1 + e^z), lse(z) = ln Σ_i e^(z_i), both computed without overflow.)
    """
    cdef Py_ssize_t count = lay.sizes[lay.L], output = _block(lay, lay.L, n)
    cdef int cost = lay.cost
    cdef Py_ssize_t k, j, i
    cdef floating error, dot, top, total, sum_y, lse, z_j
    cdef const floating* a
    cdef const floating* y
    cdef floating* s
    cdef double sum_C = 0, row_C = 0, C_kj
    A = A + output
    S = S + output
    if _rows_are_split(lay):
        for k in range(_first(n, part, n_parts), _first(n, part + 1, n_parts)):
            a = A + k * count
            y = Y + k * count
            s = S + k * count
            if weight != NULL:
                row_C = sum_C
            if cost == QUADRATIC:
                dot = 0
                for j in range(count):
                    error = a[j] - y[j]
                    sum_C += error * error
                    dot += a[j] * 2 * error
                for j in range(count):
                    s[j] = a[j] * (2 * (a[j] - y[j]) - dot)
            else:
                top = _row_max(s, count)
                total = 0
                sum_y = 0
                for j in range(count):
                    total += _exp_negative(s[j] - top)
                    sum_y += y[j]
                lse = top + log(total)
                for j in range(count):
                    sum_C += y[j] * (lse - s[j])
                    s[j] = a[j] * sum_y - y[j]
            if weight != NULL:
                # This row's C_k is what it added to the sum: taken back, weighted.
                sum_C = row_C + weight[k] * (sum_C - row_C)
                for j in range(count):
                    s[j] *= weight[k]
        return sum_C
    for k in range(n):
        for j in range(_first(count, part, n_parts), _first(count, part + 1, n_parts)):
            i = k * count + j
            error = A[i] - Y[i]
            if cost == QUADRATIC:
                C_kj = error * error
                S[i] = S[i] * 2 * error
            else:                               # CROSS_ENTROPY with sigmoid
                z_j = S[i]
                C_kj = ((z_j if z_j > 0 else 0) - Y[i] * z_j
                        + log1p(_exp_negative(-fabs(z_j))))
                S[i] = error
            if weight != NULL:
                C_kj = C_kj * weight[k]
                S[i] *= weight[k]
            sum_C += C_kj
    return sum_C


cdef void _delta_below(const Layout* lay, const floating* theta, int l, Py_ssize_t n,
                       floating* S, floating* T, int part, int n_parts,
                       Py_ssize_t chunk, const floating* WS=NULL) noexcept nogil:
    """δ_i^(l−1) = f'(z_i^(l−1)) · Σ_j w_ji^(l) δ_j^(l) for the part's neurons i of layer l − 1.

    The sum over j, ∂C_0/∂a_i^(l−1), goes into T (scratch of n × n_{l−1}), then it is multiplied
    by link 2 of the layer below, which S holds where δ^(l−1) is to be written. `chunk`: how
    the product takes the rows (`_t_is_d_w`); WS: NULL, or w^(l)'s strips (`_copy_strips`).
    """
    cdef Py_ssize_t n_out = lay.sizes[l], n_in = lay.sizes[l - 1], k, i
    cdef Py_ssize_t i0 = _first(n_in, part, n_parts), i1 = _first(n_in, part + 1, n_parts)
    cdef const floating* delta = S + _block(lay, l, n)
    cdef floating* delta_below = S + _block(lay, l - 1, n)
    _t_is_d_w(n, i1 - i0, n_out, delta, n_out, theta + lay.w[l] + i0, n_in, T + i0, n_in,
              chunk, WS if i1 - i0 == n_in else NULL)
    for k in range(n):
        for i in range(i0, i1):
            delta_below[k * n_in + i] *= T[k * n_in + i]


# Columns summed at once by `_add_column_sums`: a block of partial sums that stays in registers
# and L1 while the rows stream by.
cdef enum:
    SUM_COLUMNS = 64


cdef inline void _add_column_sums(floating* out, const floating* M, Py_ssize_t rows,
                                  Py_ssize_t cols, Py_ssize_t j0, Py_ssize_t j1,
                                  floating scale) noexcept nogil:
    """out_j += scale · Σ_k M_kj for j0 ≤ j < j1   (M row-major, rows × cols)"""
    # Row by row over a block of columns, so that memory is read along its rows (a column of a
    # wide layer touches one cache line per row) and the inner loop vectorizes; each sum still
    # adds the rows in order k = 0, 1, … .
    cdef floating total[SUM_COLUMNS]
    cdef Py_ssize_t k, j, start, width
    start = j0
    while start < j1:
        width = min(<Py_ssize_t> SUM_COLUMNS, j1 - start)
        for j in range(width):
            total[j] = 0
        for k in range(rows):
            for j in range(width):
                total[j] += M[k * cols + start + j]
        for j in range(width):
            out[start + j] += scale * total[j]
        start += width


cdef inline const floating* _a_below(const Layout* lay, int l, Py_ssize_t n, const floating* X,
                                     const floating* A) noexcept nogil:
    """a^(l−1) of a batch of n: X for l = 1, else its block of A"""
    return X if l == 1 else A + _block(lay, l - 1, n)


# --- link 1: what each layer's δ gives, three ways -----------------------------------------------

cdef void _mean_gradient_layer(const Layout* lay, int l, Py_ssize_t n, const floating* X,
                               const floating* A, const floating* S, floating* grad,
                               floating inv_n, bint first, int part, int n_parts) noexcept nogil:
    """∂C/∂w_ji^(l) = inv_n Σ_k δ_kj^(l) a_ki^(l−1),  ∂C/∂b_j^(l) = inv_n Σ_k δ_kj^(l) into grad
    (laid out as θ), for the part's rows j, over the n examples given — with inv_n = 1/N, these
    examples' share of the mean over a batch of N, written (first) or added to what grad holds
    (a call's batch, region by region: Design 10). Link 1: ∂z_j/∂w_ji = a_i^(l−1),
    ∂z_j/∂b_j = 1."""
    cdef Py_ssize_t n_out = lay.sizes[l], n_in = lay.sizes[l - 1]
    cdef Py_ssize_t j0 = _first(n_out, part, n_parts), j1 = _first(n_out, part + 1, n_parts)
    cdef const floating* delta = S + _block(lay, l, n)
    _w_is_beta_w_plus_alpha_dT_a(n, j1 - j0, n_in, inv_n, 0 if first else 1, delta + j0, n_out,
                                 _a_below(lay, l, n, X, A), n_in, grad + lay.w[l] + j0 * n_in,
                                 n_in, not _dT_a_few_rows(n, j1 - j0, n_in, sizeof(floating)))
    _mean_bias_gradient(lay, l, n, S, grad, inv_n, first, j0, j1)


cdef inline void _mean_bias_gradient(const Layout* lay, int l, Py_ssize_t n, const floating* S,
                                     floating* grad, floating inv_n, bint first, Py_ssize_t j0,
                                     Py_ssize_t j1) noexcept nogil:
    """∂C/∂b_j^(l) = inv_n Σ_k δ_kj^(l) for j0 ≤ j < j1 into grad, written (first) or added."""
    cdef Py_ssize_t j
    if first:
        for j in range(j0, j1):
            grad[lay.b[l] + j] = 0
    _add_column_sums(grad + lay.b[l], S + _block(lay, l, n), n, lay.sizes[l], j0, j1, inv_n)


cdef inline double _sum_of_magnitudes(const floating* v, Py_ssize_t n) noexcept nogil:
    """Σ_i |v_i|, in four running sums: one would make every addition wait for the one before."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += fabs(v[i])
        s1 += fabs(v[i + 1])
        s2 += fabs(v[i + 2])
        s3 += fabs(v[i + 3])
        i += 4
    while i < n:
        s0 += fabs(v[i])
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _magnitude(const floating* delta, Py_ssize_t n_out, const floating* a,
                              Py_ssize_t n_in) noexcept nogil:
    """(Σ_j |δ_j|) (Σ_i |a_i| + 1): a bound on every |δ_j a_i| and |δ_j| of an example's
    ∂C_k/∂θ^(l) — rounded sums of magnitudes only grow — that costs a pass over δ_k and a_k,
    not over the values bounded. NaN when δ or a holds one."""
    return _sum_of_magnitudes(delta, n_out) * (_sum_of_magnitudes(a, n_in) + 1)


cdef inline double _largest_finite(floating* tag) noexcept nogil:
    """Half the largest finite value of the type: room for the rounding of a bound itself."""
    return 0.5 * (DBL_MAX if floating is double else FLT_MAX)


cdef enum:
    # Per-example rows into a kept buffer of more bytes than this go out in non-temporal stores.
    STREAMED_BYTES = 32 << 20

#: Per-example gradients into a kept buffer (out=) of more bytes than this are written in
#: non-temporal stores (`_streamed`).
streamed_bytes = STREAMED_BYTES


cdef inline bint _streamed(const void* out, Py_ssize_t nbytes, Py_ssize_t itemsize,
                           bint kept) noexcept nogil:
    """Whether a call writes its per-example rows (nbytes in all) in non-temporal stores: into a
    kept buffer larger than the last-level cache (32 MiB here), whose lines a store would
    otherwise fetch from memory first. Against the stores, kept, two threads, five rounds:
    [784, 30, 10] on 1,000 (191 MB) 1.46–1.69×, [784, 512, 512, 10] float32 on 256 (686 MB)
    1.16–1.51×, [100, 100, 10] on 1,000 (89 MB) 1.11–1.36×, beside two busy processes 1.32–1.75×
    and 1.23–1.40× (AVX2, Zen 3). On an AVX-512 Zen 4 (2026-12-01) the two were even within that
    machine's swings, idle and beside two busy loops: [784, 512, 512, 10] 27.3–31 ms by stores,
    22.9–33.5 non-temporal; [784, 30, 10] 7.3–9.7 and 7.3–9.1. A fresh array's pages come from
    the kernel just zeroed, their lines in the
    cache: there the stores win (C harness, [784, 30, 10]: non-temporal 0.89–1.0×). Smaller
    kept buffers may be in the cache from the caller's last read, and keep the stores: [64, 30,
    10] on 1,797 rows (32.5 MB) into a kept buffer, Zen 4's L3 of 32 MiB, 0.75–0.99 ms by stores
    and 1.52–1.62 non-temporal with the bound at 16 MiB (one fill 0.79–0.83; three processes of
    each, 2026-12-02). (A buffer whose numbers are not aligned — numpy allows it — is written by
    stores.)"""
    return kept and nbytes > STREAMED_BYTES and <size_t> out % itemsize == 0


cdef bint _example_gradients(const Layout* lay, Py_ssize_t n, const floating* X,
                             const floating* A, const floating* S, floating* out,
                             bint streamed) noexcept nogil:
    """∂C_k/∂w_ji^(l) = δ_kj^(l) a_ki^(l−1),  ∂C_k/∂b_j^(l) = δ_kj^(l) into row k of out (n rows
    of P, each laid out as θ), once S holds every layer's δ: one outer product per example and
    layer, written by the vector loop of _microkernels_impl.h. Each row is written whole before
    the next — a row written layer by layer, in passes over the batch, is fetched from memory
    again by every pass.

    streamed: the rows in non-temporal stores, as one stream through a stage in L1
    (`_streamed`; bpfast_rows_d/_s in _microkernels.h) — θ's layout puts each layer's b^(l) right
    after its w^(l), and each example's row after the one before.

    Returns whether every value written is certainly finite (`_magnitude`: the caller looks at
    the n × P values only when it is not)."""
    cdef Py_ssize_t P = lay.P, n_out, n_in, k
    cdef const floating* delta
    cdef const floating* a_prev
    cdef floating* g
    cdef double limit = _largest_finite(<floating*> NULL)
    cdef bint bounded = True
    cdef int l
    cdef bpfast_rows_d rows_d
    cdef bpfast_rows_s rows_s
    for l in range(1, lay.L + 1):
        _log_product(D_AT, BY_STREAMS if streamed else BY_STORES, n, lay.sizes[l],
                     lay.sizes[l - 1])
    if streamed:
        if floating is double:
            bpfast_rows_open_d(&rows_d, out)
        else:
            bpfast_rows_open_s(&rows_s, out)
    for k in range(n):
        g = out + k * P
        for l in range(1, lay.L + 1):
            n_out, n_in = lay.sizes[l], lay.sizes[l - 1]
            delta = S + _block(lay, l, n) + k * n_out
            a_prev = _a_below(lay, l, n, X, A) + k * n_in
            if floating is double:
                if streamed:
                    bpfast_rows_outer_d(&rows_d, n_out, n_in, delta, a_prev)
                else:
                    bpfast_outer_d(n_out, n_in, delta, a_prev, g + lay.w[l], g + lay.b[l])
            elif streamed:
                bpfast_rows_outer_s(&rows_s, n_out, n_in, delta, a_prev)
            else:
                bpfast_outer_s(n_out, n_in, delta, a_prev, g + lay.w[l], g + lay.b[l])
            if not (_magnitude(delta, n_out, a_prev, n_in) <= limit):    # NaN fails too
                bounded = False
    if streamed:
        if floating is double:
            bpfast_rows_close_d(&rows_d)
        else:
            bpfast_rows_close_s(&rows_s)
    return bounded


cdef enum:
    # Examples whose squared norms are taken at once: three stack buffers of 1 KB.
    NORM_ROWS = 128


cdef inline void _row_squares(Py_ssize_t rows, Py_ssize_t width, const floating* M,
                              double* out) noexcept nogil:
    """out[k] = ‖row k of M‖² for `rows` contiguous rows of `width` (_microkernels_impl.h)."""
    if floating is double:
        bpfast_row_squares_d(rows, width, M, out)
    else:
        bpfast_row_squares_s(rows, width, M, out)


cdef inline void _layer_squares(const Layout* lay, int l, Py_ssize_t n, Py_ssize_t k0,
                                Py_ssize_t rows, const floating* X, const floating* A,
                                const floating* S, double* dd, double* aa) noexcept nogil:
    """‖δ_k^(l)‖² into dd and ‖a_k^(l−1)‖² into aa for the examples k0 ≤ k < k0 + rows."""
    cdef Py_ssize_t n_out = lay.sizes[l], n_in = lay.sizes[l - 1]
    _row_squares(rows, n_out, S + _block(lay, l, n) + k0 * n_out, dd)
    _row_squares(rows, n_in, _a_below(lay, l, n, X, A) + k0 * n_in, aa)


cdef void _example_norms_layer(const Layout* lay, int l, Py_ssize_t n, const floating* X,
                               const floating* A, const floating* S, double* squares,
                               Py_ssize_t stride) noexcept nogil:
    """‖∂C_k/∂w^(l)‖² + ‖∂C_k/∂b^(l)‖² = ‖δ_k^(l)‖² (‖a_k^(l−1)‖² + 1) into squares[k · stride],
    for each example k — the per-example gradient's norm without the gradient: the Frobenius
    norm of an outer product δ aᵀ is ‖δ‖ ‖a‖. NORM_ROWS examples at a time."""
    cdef double dd[NORM_ROWS]
    cdef double aa[NORM_ROWS]
    cdef Py_ssize_t k0 = 0, k, rows
    while k0 < n:
        rows = min(<Py_ssize_t> NORM_ROWS, n - k0)
        _layer_squares(lay, l, n, k0, rows, X, A, S, dd, aa)
        for k in range(rows):
            squares[(k0 + k) * stride] = dd[k] * (aa[k] + 1)
        k0 += rows


cdef struct Step:
    # What a step of `fit` does to θ, built once per fit (`Rule`): the rule and its
    # hyper-parameters in both precisions (d.eta and d.l2 also serve float networks' plain steps,
    # whose factors are formed in double), and the rule's state, laid out as θ.
    bpfast_hyper_d d
    bpfast_hyper_s s
    void* grad          # the mini-batch's ∂C/∂θ (every rule but SGD)
    void* v             # the velocity v, or Adam's first moment m
    void* r             # Adam's second moment r


cdef void _update(floating* theta, const floating* g, const Step* step, Py_ssize_t start,
                  Py_ssize_t end, bint weights) noexcept nogil:
    """One step of the rule on θ_i for start ≤ i < end, from g_i = ∂C/∂θ_i in memory (_rules.h);
    `weights` says whether these are weights, which L2 regularises, or biases."""
    cdef floating* v = <floating*> step.v + start
    cdef floating* r = (<floating*> step.r + start) if step.r != NULL else v
    if floating is double:
        bpfast_update_d(&step.d, step.d.l2 if weights else 0, end - start, g + start,
                        theta + start, v, r)
    else:
        bpfast_update_s(&step.s, step.s.l2 if weights else 0, end - start, g + start,
                        theta + start, v, r)


# Weight rows per block of `_step_rows`: their ∂C/∂w (4 rows of 784 doubles, 25 KiB) is still in
# L1 when the rule reads it back.
cdef enum:
    STEP_ROWS = 4


cdef void _step_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const floating* D, Py_ssize_t ldd,
                     const floating* A, Py_ssize_t lda, floating* theta, const Step* step,
                     Py_ssize_t start, bint blas) noexcept nogil:
    """A step of the rule, L2 included, on the nj weight rows of θ from θ[start] (each ni long),
    from ∂C/∂w_ji = (1/m) Σ_k D_kj A_ki; by BLAS or the microkernels. Momentum and Nesterov on
    the microkernels: in the product's epilogue, ∂C/∂w never in memory. Adam on the
    microkernels: ∂C/∂w written into the rule's grad a few rows at a time and read back while it
    is in L1. BLAS, whose packing prefers one large product: all rows into grad at once (a
    narrow layer's in blocks: `_w_is_beta_w_plus_alpha_dT_a`), then the rule."""
    cdef floating inv_m = (<floating> 1) / m
    cdef floating* grad = <floating*> step.grad
    cdef Py_ssize_t j, rows
    if m == 0 or nj == 0:
        return
    if blas:
        _w_is_beta_w_plus_alpha_dT_a(m, nj, ni, inv_m, 0, D, ldd, A, lda, grad + start, ni, True)
        _update(theta, grad, step, start, start + nj * ni, True)
        return
    if step.d.rule == MOMENTUM or step.d.rule == NESTEROV:
        # The small products apply momentum themselves, tile by tile (_microkernels.h).
        _log_product(DT_A, BY_MICROKERNEL, m, nj, ni)
        if floating is double:
            bpfast_atb_d(m, nj, ni, inv_m, 0, D, ldd, A, lda, theta + start, ni,
                         <double*> step.v + start, &step.d)
        else:
            bpfast_atb_s(m, nj, ni, inv_m, 0, D, ldd, A, lda, theta + start, ni,
                         <float*> step.v + start, &step.s)
        return
    j = 0
    while j < nj:
        rows = min(<Py_ssize_t> STEP_ROWS, nj - j)
        _w_is_beta_w_plus_alpha_dT_a(m, rows, ni, inv_m, 0, D + j, ldd, A, lda,
                                     grad + start + j * ni, ni, False)
        _update(theta, grad, step, start + j * ni, start + (j + rows) * ni, True)
        j += rows


cdef void _step_layer(const Layout* lay, int l, Py_ssize_t n, const floating* X,
                      const floating* A, const floating* S, floating* theta, const Step* step,
                      int part, int n_parts) noexcept nogil:
    """A step of fit on w^(l) and b^(l) of θ, the part's rows j, from δ^(l) and a^(l−1).

    Plain gradient descent needs no ∂C/∂θ in memory: the product adds −η ∂C/∂w to w in place,
    and L2's −ηλ w folds into its β: w ← (1 − ηλ) w − η ∂C/∂w. The other rules: `_step_rows`.
    """
    cdef Py_ssize_t n_out = lay.sizes[l], n_in = lay.sizes[l - 1], j
    cdef Py_ssize_t j0 = _first(n_out, part, n_parts), j1 = _first(n_out, part + 1, n_parts)
    cdef const floating* delta = S + _block(lay, l, n)
    cdef const floating* a_prev = _a_below(lay, l, n, X, A)
    cdef floating inv_n = (<floating> 1) / n
    cdef floating scale
    cdef floating* grad
    cdef bint blas = _fit_blas(lay, l, n, n_parts)
    if step.d.rule == SGD:
        scale = <floating> (-step.d.eta) * inv_n
        _w_is_beta_w_plus_alpha_dT_a(n, j1 - j0, n_in, scale,
                                     <floating> (1 - step.d.eta * step.d.l2), delta + j0, n_out,
                                     a_prev, n_in, theta + lay.w[l] + j0 * n_in, n_in, blas)
        _add_column_sums(theta + lay.b[l], delta, n, n_out, j0, j1, scale)
        return
    grad = <floating*> step.grad
    _step_rows(n, j1 - j0, n_in, delta + j0, n_out, a_prev, n_in, theta, step,
               lay.w[l] + j0 * n_in, blas)
    for j in range(j0, j1):
        grad[lay.b[l] + j] = 0
    _add_column_sums(grad + lay.b[l], delta, n, n_out, j0, j1, inv_n)
    _update(theta, grad, step, lay.b[l] + j0, lay.b[l] + j1, False)


# --- training -------------------------------------------------------------------------------------

cdef extern from "_team.h":
    ctypedef struct bpfast_team:
        int solo
        int forced
        long switches, solo_steps, team_steps, moves, taken_over
        double worked, held
        int n_threads
    ctypedef void (*bpfast_task)(void* job, int part, int n_parts) noexcept nogil
    ctypedef int (*bpfast_close)(void* job) noexcept nogil
    const int HAVE_THREADS "BPFAST_HAVE_THREADS"
    bpfast_team* bpfast_team_new(int n_workers) noexcept nogil
    void bpfast_team_free(bpfast_team* team) noexcept nogil
    void bpfast_team_forget(bpfast_team* team) noexcept nogil
    void bpfast_team_wait_idle(bpfast_team* team) noexcept nogil
    void bpfast_team_replay(bpfast_team* team, int n_workers, double seconds) noexcept nogil
    void bpfast_team_run(bpfast_team* team, int n_parts, void* job, bpfast_task task,
                         bpfast_close close) noexcept nogil
    enum:
        BPFAST_NEXT_PHASE
        BPFAST_NEXT_STEP
        BPFAST_FINISHED
        BPFAST_FINISHED_STEP


cdef inline void* _address(array) except? NULL:
    """Where a contiguous array's data starts (arrays the holder keeps alive): asked through the
    buffer protocol, not `array.ctypes.data`, whose ctypes object cost 1.8 µs — a tenth of a
    small call's Python."""
    cdef Py_buffer view
    cdef void* start
    PyObject_GetBuffer(array, &view, PyBUF_ANY_CONTIGUOUS)
    start = view.buf
    PyBuffer_Release(&view)
    return start


def data_address(array):
    """Where a contiguous array's data starts, as a number (`bpfast._buffers.aligned_empty`)."""
    return <size_t> _address(array)


cdef class Rule:
    """A step of `fit` (Rule in _codes.h) and its hyper-parameters, in the C form the kernels
    take (both precisions), with the rule's state — ∂C/∂θ of the mini-batch, v (or Adam's m) and
    Adam's r, laid out as θ — built once per fit and kept over its epochs. The values are
    checked by bpfast.training.check_rule before they get here."""
    cdef Step c
    cdef readonly int code
    cdef readonly object grad, v, r             # numpy arrays (None where the rule has none)

    def __cinit__(self, int code, double eta, double l2=0, double mu=0, double beta1=0,
                  double beta2=0, double eps=1, Py_ssize_t P=0, dtype=np.float64):
        from ._buffers import aligned_empty
        if not 0 <= code < N_RULES:
            raise ValueError(f"rule must be one of the codes {list(range(N_RULES))}, got {code}.")
        self.code = code
        self.c.d.rule = self.c.s.rule = code
        self.c.d.eta, self.c.d.l2, self.c.d.mu = eta, l2, mu
        self.c.d.beta1, self.c.d.beta2, self.c.d.eps = beta1, beta2, eps
        self.c.d.c1 = self.c.d.c2 = 1
        self.c.s.eta, self.c.s.l2, self.c.s.mu = <float> eta, <float> l2, <float> mu
        self.c.s.beta1, self.c.s.beta2, self.c.s.eps = <float> beta1, <float> beta2, <float> eps
        self.c.s.c1 = self.c.s.c2 = 1
        self.grad = self.v = self.r = None
        self.c.grad = self.c.v = self.c.r = NULL
        if code != SGD:
            self.grad = aligned_empty(P, dtype)
            self.v = aligned_empty(P, dtype)
            self.v[...] = 0
            self.c.grad = _address(self.grad)
            self.c.v = _address(self.v)
        if code == ADAM:
            self.r = aligned_empty(P, dtype)
            self.r[...] = 0
            self.c.r = _address(self.r)

    def state(self, into=None):
        """A copy of the rule's memory (v, r), to put back with `restore`; written into `into`
        (an earlier state of this rule's) if given: an epoch saves it each time."""
        if into is None:
            return [None if a is None else a.copy() for a in (self.v, self.r)]
        for mine, saved in zip((self.v, self.r), into):
            if mine is not None:
                np.copyto(saved, mine)
        return into

    def restore(self, state):
        for mine, saved in zip((self.v, self.r), state):
            if mine is not None:
                mine[...] = saved


# The stages of a step of `fit`, each a phase of the team (Design 4): every part of a stage is
# done before the next stage starts, because the next one reads what all of them wrote.
cdef enum Stage:
    GATHER = 0     # the first mini-batch's rows, gathered into Xb, Yb (once per epoch)
    FORWARD = 1    # layer l: z, a and slope of the part's neurons (at l = L also δ^(L), and
                   # with L = 1 the whole step: see `_epoch_task`)
    ROWS = 2       # softmax's a^(L) and δ^(L), by examples
    BACK = 3       # layer l = L..2: the step of w^(l+1) (l < L) and δ^(l−1), the part's rows
    LAST = 4       # the steps of w^(2) and w^(1); the next mini-batch's rows gathered
    EXAMPLES = 5   # by examples (Design 11): the part's rows all the way down, and their sums
    SUMS = 6       # by examples: the parts' sums added in order, the rule on the part's θ_i;
                   # the next mini-batch's rows gathered


cdef struct Epoch:
    # What the epoch trains on (typed by the task: floating*), set once by `_run_epoch`.
    const Layout* lay
    void* theta
    const void* X
    const void* Y
    const Py_ssize_t* order
    Py_ssize_t N, batch, n_batches, steps
    Step step                                   # the rule, with this step's t for Adam
    void* Xb
    void* Yb
    void* A
    void* S
    void* T
    void* backup                                # θ before the step, in a careful replay
    double* shares                              # Σ_k C_k of each part, over the epoch
    void* G                                     # by examples: each part's Σ_k ∂C_k/∂θ
    Py_ssize_t G_stride                         # where part p's sums start: p · G_stride
    void* WT                                    # by examples: each part's copies of weights
                                                # (`_copy_weights`), or NULL
    Py_ssize_t WT_stride                        # where part p's start: p · WT_stride
    int n_parts
    bint by_examples                            # how this step is shared (Design 11)
    double clip                                 # R: each ∂C_k/∂θ clipped to norm R; 0: not
    double noise                                # ν R: the deviation of the noise added to the
                                                # step's sum, per coordinate; 0: none
    uint64_t key                                # the noise's seed
    const Py_ssize_t* offsets                   # Poisson sampling: mini-batch i is order's
                                                # offsets[i] ≤ k < offsets[i + 1]; NULL: fixed
    double normaliser                           # B, what a step's sum is divided by; 0: m
    const void* weights                         # per-example weights aligned with order (each
                                                # step's scaled to sum to its size), or NULL
    # Where the epoch is, advanced by `_epoch_close` between phases.
    Py_ssize_t i_batch, m
    int stage, l
    bint catch_sigint                           # whether Ctrl-C stops the epoch (main thread)
    bint interrupted
    Py_ssize_t diverged                         # the mini-batch (from 1) whose step diverged
    bint check_x                                # whether each row of X is checked as gathered
    bint* x_bad                                 # each part's: a row it gathered was not finite


cdef inline floating* _batch_half(void* buffer, Py_ssize_t i_batch, Py_ssize_t batch,
                                  Py_ssize_t width, floating* tag) noexcept nogil:
    """Mini-batch i_batch's rows in Xb or Yb. Mini-batches alternate between two halves, so that
    the next one is gathered while this one still updates w^(1), with no phase in between."""
    return <floating*> buffer + (i_batch % 2) * batch * width


cdef inline const floating* _batch_weights(const Epoch* e, Py_ssize_t first,
                                           floating* tag) noexcept nogil:
    """The weights of the current mini-batch's rows from its row `first` on, or NULL."""
    if e.weights == NULL:
        return NULL
    return <const floating*> e.weights + _batch_start(e, e.i_batch) + first


cdef inline Py_ssize_t _batch_start(const Epoch* e, Py_ssize_t i_batch) noexcept nogil:
    """Where mini-batch i_batch's rows start in the epoch's order"""
    return e.offsets[i_batch] if e.offsets != NULL else i_batch * e.batch


cdef inline Py_ssize_t _batch_size(const Epoch* e, Py_ssize_t i_batch) noexcept nogil:
    """The examples in mini-batch i_batch (the last one may be short; none after it; with
    Poisson sampling, as many as were drawn — maybe none)"""
    if i_batch >= e.n_batches:
        return 0
    if e.offsets != NULL:
        return e.offsets[i_batch + 1] - e.offsets[i_batch]
    return max(0, min(e.batch, e.N - i_batch * e.batch))


cdef void _gather_rows(Epoch* e, Py_ssize_t i_batch, Py_ssize_t k0, Py_ssize_t k1, int part,
                       floating* tag) noexcept nogil:
    """Rows k0 ≤ k < k1 of mini-batch i_batch, from X and Y into their half of Xb and Yb — with
    check_x, each row of X tested finite as it lands in cache (the part's x_bad otherwise)."""
    cdef Py_ssize_t n0 = e.lay.sizes[0], nL = e.lay.sizes[e.lay.L], k, row
    cdef floating* x = _batch_half(e.Xb, i_batch, e.batch, n0, tag)
    cdef floating* y = _batch_half(e.Yb, i_batch, e.batch, nL, tag)
    for k in range(k0, k1):
        row = e.order[_batch_start(e, i_batch) + k]
        memcpy(x + k * n0, <const floating*> e.X + row * n0, n0 * sizeof(floating))
        memcpy(y + k * nL, <const floating*> e.Y + row * nL, nL * sizeof(floating))
        if e.check_x and not _all_finite(x + k * n0, n0):
            e.x_bad[part] = True


cdef bint _x_stops(const Epoch* e) noexcept nogil:
    """Between phases, on one thread: whether a part gathered a row of X that is not finite —
    then the epoch stops there, before any step uses that row (its caller puts θ back)."""
    cdef int p
    if not e.check_x:                           # every epoch after a fit's first
        return False
    for p in range(e.n_parts):
        if e.x_bad[p]:
            return True
    return False


cdef void _gather(Epoch* e, Py_ssize_t i_batch, int part, int n_parts,
                  floating* tag) noexcept nogil:
    """The part's share of mini-batch i_batch's rows of X and Y, into their half of Xb and Yb —
    unless that step is by examples, whose parts gather their own rows as they go."""
    cdef Py_ssize_t m = _batch_size(e, i_batch)
    if m == 0 or _epoch_by_examples(e, m):
        return
    _gather_rows(e, i_batch, _first(m, part, n_parts), _first(m, part + 1, n_parts), part, tag)


cdef void _prefetch_rows(Epoch* e, Py_ssize_t i_batch, int part, int n_parts,
                         floating* tag) noexcept nogil:
    """Ask memory for the part's share of mini-batch i_batch's rows of X, scattered over the
    training set and out of cache, while the mini-batch before it is computed."""
    cdef Py_ssize_t start, m, k, byte
    cdef const char* row
    if i_batch >= e.n_batches:
        return
    start, m = _batch_start(e, i_batch), _batch_size(e, i_batch)
    for k in range(_first(m, part, n_parts), _first(m, part + 1, n_parts)):
        row = <const char*> (<const floating*> e.X + e.order[start + k] * e.lay.sizes[0])
        for byte in range(0, e.lay.sizes[0] * <Py_ssize_t> sizeof(floating), 64):
            _prefetch(row + byte)


# How steps are shared, for tests and benchmarks: 0 as `_step_by_examples` decides, 1 by neurons
# whenever it can be, 2 by examples whenever it can be.
cdef int _forced_split = 0


def force_split(int how):
    """Fix how `fit` shares its steps (tests, benchmarks): 0 by the shape (the default), 1 by
    neurons, 2 by examples wherever a mini-batch has BY_EXAMPLES_BATCH examples. Returns the
    setting it replaces."""
    global _forced_split
    if how not in (0, 1, 2):
        raise ValueError(f"how must be 0, 1 or 2, got {how}.")
    _forced_split, how = how, _forced_split
    return how


cdef inline Py_ssize_t _sums_stride(Py_ssize_t P) noexcept nogil:
    """Where part p's sums of ∂C/∂θ start in a by-examples step: p times P rounded up to a
    cache line of numbers."""
    return _round_up(P, SUMS_LINE)


cdef inline void _sums_stretch(Py_ssize_t P, int part, int n_parts, Py_ssize_t* i0,
                               Py_ssize_t* i1) noexcept nogil:
    """The stretch i0 ≤ i < i1 of θ where `part` adds the parts' sums: whole cache lines, so
    that no two parts write one."""
    cdef Py_ssize_t lines = _ceil_div(P, SUMS_LINE)
    i0[0] = min(P, SUMS_LINE * _first(lines, part, n_parts))
    i1[0] = min(P, SUMS_LINE * _first(lines, part + 1, n_parts))


cdef inline void _add_parts_sums(floating* total, const floating* sums, Py_ssize_t stride,
                                 int n_parts, Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    """total_i += the sums of parts 1, 2, … (in that order: reproducible) for i0 ≤ i < i1, part
    p's starting at sums + p · stride; total holds part 0's."""
    cdef Py_ssize_t i
    cdef int p
    for p in range(1, n_parts):
        for i in range(i0, i1):
            total[i] += sums[p * stride + i]


cdef inline bint _step_by_examples(const Layout* lay, Py_ssize_t m, int n_parts) noexcept nogil:
    """Whether a step of m examples is shared by examples rather than by neurons (Design 11):
    when every layer is too narrow for each part's share of its neurons to keep BLAS busy, or
    each part has BY_EXAMPLES_ROWS examples or more."""
    cdef int l
    if m < BY_EXAMPLES_BATCH or _forced_split == 1:
        return False
    if _forced_split == 2 or (n_parts > 1 and m >= BY_EXAMPLES_ROWS * n_parts):
        return True
    for l in range(1, lay.L + 1):
        if lay.sizes[l] >= BY_EXAMPLES_NEURONS * n_parts:
            return False
    return True


cdef inline bint _epoch_by_examples(const Epoch* e, Py_ssize_t m) noexcept nogil:
    """Whether the epoch's step of m examples is by examples: as the shape decides, and always
    when each example's gradient is clipped (its norm needs every layer's δ of that example)."""
    return e.clip > 0 or e.noise > 0 or _step_by_examples(e.lay, m, e.n_parts)


def steps_by_examples(NetworkLayout layout, Py_ssize_t m, int n_parts):
    """Whether `fit` shares a step of m examples in n_parts parts by examples (Design 11)."""
    return bool(_step_by_examples(&layout.c, m, n_parts))


cdef void _clip_deltas(const Layout* lay, Py_ssize_t n, const floating* X, const floating* A,
                       floating* S, double R) noexcept nogil:
    """Each example's δ_k^(l), every layer, times c_k = min(1, R / ‖∂C_k/∂θ‖₂) (1 where the
    gradient is 0): the sums that follow are then those of the clipped per-example gradients,
    c_k ∂C_k/∂θ = Σ over layers of (c_k δ_k^(l)) (a_k^(l−1))ᵀ and c_k δ_k^(l) — never formed.
    ‖∂C_k/∂θ‖² = Σ_l ‖δ_k^(l)‖² (‖a_k^(l−1)‖² + 1), as `_example_norms_layer`. A norm that is
    not finite leaves δ_k as it is: the step then fails the epoch's finiteness check."""
    cdef double dd[NORM_ROWS]
    cdef double aa[NORM_ROWS]
    cdef double squares[NORM_ROWS]
    cdef Py_ssize_t k0 = 0, k, j, rows
    cdef floating* delta
    cdef floating c
    cdef int l
    while k0 < n:
        rows = min(<Py_ssize_t> NORM_ROWS, n - k0)
        for k in range(rows):
            squares[k] = 0
        for l in range(1, lay.L + 1):
            _layer_squares(lay, l, n, k0, rows, X, A, S, dd, aa)
            for k in range(rows):
                squares[k] += dd[k] * (aa[k] + 1)
        for k in range(rows):
            if not (R * R < squares[k] <= DBL_MAX):   # within R (or 0), or not finite: as it is
                continue
            c = <floating> (R / sqrt(squares[k]))
            for l in range(1, lay.L + 1):
                delta = S + _block(lay, l, n) + (k0 + k) * lay.sizes[l]
                for j in range(lay.sizes[l]):
                    delta[j] *= c
        k0 += rows


cdef void _examples_sums(Epoch* e, int part, int n_parts, floating* tag) noexcept nogil:
    """By examples (Design 11), the part's rows of the mini-batch all the way down — forward
    pass, δ^(L), δ^(l) of every layer — and their sums Σ_k δ_k^(l) a_k^(l−1)ᵀ and Σ_k δ_k^(l)
    into the part's own ∂C/∂θ sums, θ's layout; the part's Σ_k C_k added to its share.

    EXAMPLES_ROWS rows at a time, each chunk gathered just before it goes down and laid out in
    the workspace as a batch of its own: its inputs are still in cache when the sums read them
    again (a mini-batch of 1,024 rows of 784 doubles, 6 MB, is not)."""
    cdef const Layout* lay = e.lay
    cdef const floating* theta = <const floating*> e.theta
    cdef Py_ssize_t r1 = _first(e.m, part + 1, n_parts), c0 = _first(e.m, part, n_parts), n
    cdef Py_ssize_t n_out, n_in, j
    cdef const floating* x
    cdef const floating* y
    cdef floating* A
    cdef floating* S
    cdef floating* T
    cdef floating* G = <floating*> e.G + part * e.G_stride
    cdef floating* WT = NULL
    cdef bint first = True
    cdef int l
    if c0 == r1:
        memset(G, 0, lay.P * sizeof(floating))
        return
    if e.WT != NULL:
        # The narrow layers' w in panels, copied by each part for its own rows (the step before
        # changed θ): a few µs, against products on 128 rows and more (`_panelled`).
        WT = <floating*> e.WT + part * e.WT_stride
        _copy_weights(lay, theta, WT, 0)
    while c0 < r1:
        n = r1 - c0
        if lay.P * sizeof(floating) <= EXAMPLES_SUMS_BYTES:
            n = min(<Py_ssize_t> EXAMPLES_ROWS, n)
        _gather_rows(e, e.i_batch, c0, c0 + n, part, tag)
        x = _batch_half(e.Xb, e.i_batch, e.batch, lay.sizes[0], tag) + c0 * lay.sizes[0]
        y = _batch_half(e.Yb, e.i_batch, e.batch, lay.sizes[lay.L], tag) + c0 * lay.sizes[lay.L]
        A = <floating*> e.A + c0 * lay.width
        S = <floating*> e.S + c0 * lay.width
        T = <floating*> e.T + c0 * lay.widest_hidden
        _forward(lay, theta, n, x, A, S, NULL, n, NULL, WT)
        e.shares[part] += _output_delta(lay, n, A, y, S, 0, 1, _batch_weights(e, c0, tag))
        if e.clip > 0:
            # Every δ first: example k's clipping factor needs all its layers' δ_k.
            for l in range(lay.L, 1, -1):
                _delta_below(lay, theta, l, n, S, T, 0, 1, n)
            _clip_deltas(lay, n, x, A, S, e.clip)
        for l in range(lay.L, 0, -1):
            n_out, n_in = lay.sizes[l], lay.sizes[l - 1]
            if l > 1 and e.clip == 0:   # δ^(l−1) from w^(l), which no part changes until SUMS
                _delta_below(lay, theta, l, n, S, T, 0, 1, n)
            _w_is_beta_w_plus_alpha_dT_a(n, n_out, n_in, 1, 0 if first else 1,
                                         S + _block(lay, l, n), n_out, _a_below(lay, l, n, x, A),
                                         n_in, G + lay.w[l], n_in, True)
            if first:
                for j in range(n_out):
                    G[lay.b[l] + j] = 0
            _add_column_sums(G + lay.b[l], S + _block(lay, l, n), n, n_out, 0, n_out, 1)
        first = False
        c0 += n


cdef void _sums_step_range(Epoch* e, Py_ssize_t start, Py_ssize_t end, bint weights,
                           floating* tag) noexcept nogil:
    """θ_i for start ≤ i < end stepped by the rule from ∂C/∂θ_i = (1/m) × the sum in part 0's
    sums (`_sums_step`); `weights`: whether L2 applies."""
    cdef floating* theta = <floating*> e.theta
    cdef const floating* total = <const floating*> e.G
    cdef floating* grad
    cdef floating inv_m = (<floating> 1) / (e.normaliser if e.normaliser > 0 else e.m)
    cdef floating scale, beta
    cdef Py_ssize_t i
    if e.step.d.rule == SGD:
        # As `_step_layer`'s: w ← (1 − ηλ) w − (η/m) Σ_k δ_k a_kᵀ, b ← b − (η/m) Σ_k δ_k.
        scale = <floating> (-e.step.d.eta) * inv_m
        beta = <floating> (1 - e.step.d.eta * e.step.d.l2) if weights else 1
        for i in range(start, end):
            theta[i] = beta * theta[i] + scale * total[i]
        return
    grad = <floating*> e.step.grad
    for i in range(start, end):
        grad[i] = inv_m * total[i]
    _update(theta, grad, &e.step, start, end, weights)


cdef enum:
    # Normal numbers drawn per call of the generator: a stack buffer of 2–4 KB, which stays in L1.
    NOISE_BLOCK = 512


cdef void _add_noise(floating* total, Py_ssize_t start, Py_ssize_t end, floating deviation,
                     uint64_t key, uint64_t t) noexcept nogil:
    """total_i += deviation · ξ_i for start ≤ i < end (start even), ξ_i ~ N(0, 1) drawn for
    coordinate i of step t by the counter-based generator (_noise.h): the same numbers for any
    parts, drawn a block at a time by its vectorized loop."""
    cdef uint64_t base = _noise_stream(key, t)
    cdef floating xi[NOISE_BLOCK]
    cdef Py_ssize_t i = start, j, count
    while i < end:
        count = min(NOISE_BLOCK, end - i)
        if floating is double:
            bpfast_normals_d(base, <uint64_t> (i >> 1), (count + 1) >> 1, xi)
        else:
            bpfast_normals_s(base, <uint64_t> (i >> 1), (count + 1) >> 1, xi)
        for j in range(count):
            total[i + j] += deviation * xi[j]
        i += count


cdef void _sums_step(Epoch* e, int part, int n_parts, floating* tag) noexcept nogil:
    """By examples (Design 11): on the part's stretch of θ (whole cache lines), the parts'
    sums added in part order (reproducible) into part 0's, the noise of a private step added
    (DP-SGD: Σ_k c_k ∂C_k/∂θ + ν R ξ), then the step of the rule, split at each layer's weights
    and biases; then the part's share of the next mini-batch's rows gathered."""
    cdef const Layout* lay = e.lay
    cdef Py_ssize_t i0, i1
    cdef floating* total = <floating*> e.G
    cdef int l
    _sums_stretch(lay.P, part, n_parts, &i0, &i1)
    _add_parts_sums(total, total, e.G_stride, e.n_parts, i0, i1)
    if e.noise > 0:
        _add_noise(total, i0, i1, <floating> e.noise, e.key, <uint64_t> (e.steps + e.i_batch))
    for l in range(1, lay.L + 1):
        if max(i0, lay.w[l]) < min(i1, lay.b[l]):
            _sums_step_range(e, max(i0, lay.w[l]), min(i1, lay.b[l]), True, tag)
        if max(i0, lay.b[l]) < min(i1, lay.b[l] + lay.sizes[l]):
            _sums_step_range(e, max(i0, lay.b[l]), min(i1, lay.b[l] + lay.sizes[l]), False, tag)
    _gather(e, e.i_batch + 1, part, n_parts, tag)


cdef void _epoch_task(Epoch* e, int part, int n_parts, floating* tag) noexcept nogil:
    """The part's share of the stage the epoch is at (Stage). The output layer's δ^(L) adds the
    part's Σ_k C_k to its share; the step's updates go straight into θ (`_step_layer`)."""
    cdef const Layout* lay = e.lay
    cdef floating* theta = <floating*> e.theta
    cdef int L = lay.L, l = e.l
    cdef Py_ssize_t n = e.m, nL = lay.sizes[L]
    cdef floating* x = _batch_half(e.Xb, e.i_batch, e.batch, lay.sizes[0], tag)
    cdef floating* y = _batch_half(e.Yb, e.i_batch, e.batch, nL, tag)
    cdef floating* A = <floating*> e.A
    cdef floating* S = <floating*> e.S
    cdef Py_ssize_t output = _block(lay, L, n)
    if e.stage == GATHER:
        _gather(e, e.i_batch, part, n_parts, tag)
    elif e.stage == EXAMPLES:
        _examples_sums(e, part, n_parts, tag)
    elif e.stage == SUMS:
        _sums_step(e, part, n_parts, tag)
    elif e.stage == FORWARD:
        if l == 1:
            _prefetch_rows(e, e.i_batch + 1, part, n_parts, tag)
        _forward_layer(lay, theta, l, n, x, A, S, NULL, part, n_parts,
                       _rows_at_once(_fit_blas(lay, l, n, n_parts), n))
        if l == L and not _rows_are_split(lay):
            e.shares[part] += _output_delta(lay, n, A, y, S, part, n_parts,
                                            _batch_weights(e, 0, tag))
            if L == 1:                          # the same neurons all the way: no phase between
                _step_layer(lay, 1, n, x, A, S, theta, &e.step, part, n_parts)
                _gather(e, e.i_batch + 1, part, n_parts, tag)
    elif e.stage == ROWS:
        _softmax_rows(S + output, A + output, nL, _first(n, part, n_parts),
                      _first(n, part + 1, n_parts))
        e.shares[part] += _output_delta(lay, n, A, y, S, part, n_parts,
                                        _batch_weights(e, 0, tag))
    elif e.stage == BACK:
        # δ^(l−1) is computed from w^(l) before w^(l) changes, as gradient descent requires:
        # w^(l+1) is updated now, after the phase in which every part last read it.
        if l < L:
            _step_layer(lay, l + 1, n, x, A, S, theta, &e.step, part, n_parts)
        _delta_below(lay, theta, l, n, S, <floating*> e.T, part, n_parts,
                     _rows_at_once(_fit_blas(lay, l, n, n_parts), n))
    else:                                       # LAST
        if L > 1:
            _step_layer(lay, 2, n, x, A, S, theta, &e.step, part, n_parts)
        _step_layer(lay, 1, n, x, A, S, theta, &e.step, part, n_parts)
        _gather(e, e.i_batch + 1, part, n_parts, tag)


cdef int _begin_step(Epoch* e, floating* tag) noexcept nogil:
    """Between two steps, on one thread: the replay's check of the step just taken, Ctrl-C, the
    end of the epoch; then the next mini-batch's size and Adam's t. Returns what `_epoch_close`
    does next."""
    cdef Py_ssize_t P = e.lay.P
    cdef bint a_step_ended = e.stage != GATHER
    if _x_stops(e):                             # the next mini-batch holds such a row
        return BPFAST_FINISHED_STEP if a_step_ended else BPFAST_FINISHED
    if e.backup != NULL:
        if a_step_ended and not _all_finite(<floating*> e.theta, P):
            memcpy(e.theta, e.backup, P * sizeof(floating))
            e.diverged = e.i_batch + 1
            return BPFAST_FINISHED
        memcpy(e.backup, e.theta, P * sizeof(floating))
    if a_step_ended:
        e.i_batch += 1
    if e.i_batch == e.n_batches:
        return BPFAST_FINISHED_STEP
    if e.catch_sigint and _sigint_pending():
        e.interrupted = True
        return BPFAST_FINISHED_STEP if a_step_ended else BPFAST_FINISHED
    e.m = _batch_size(e, e.i_batch)
    if e.step.d.rule == ADAM:
        e.step.d.c1 = 1 / (1 - pow(e.step.d.beta1, <double> (e.steps + e.i_batch + 1)))
        e.step.d.c2 = 1 / (1 - pow(e.step.d.beta2, <double> (e.steps + e.i_batch + 1)))
        e.step.s.c1 = <float> e.step.d.c1
        e.step.s.c2 = <float> e.step.d.c2
    e.by_examples = _epoch_by_examples(e, e.m)
    e.stage = EXAMPLES if e.by_examples else FORWARD
    e.l = 1
    return BPFAST_NEXT_STEP if a_step_ended else BPFAST_NEXT_PHASE


cdef int _epoch_close(Epoch* e, floating* tag) noexcept nogil:
    """After every part of a stage is done, on one thread: the stage that comes next (Stage)."""
    cdef bint split = _rows_are_split(e.lay)
    cdef int L = e.lay.L
    if e.stage == EXAMPLES:
        if _x_stops(e):                         # before the sums make a step
            return BPFAST_FINISHED
        e.stage = SUMS
    elif e.stage == FORWARD and e.l < L:
        e.l += 1
    elif e.stage == FORWARD and split:
        e.stage = ROWS
    elif (e.stage == FORWARD or e.stage == ROWS) and L > 1:
        e.stage = BACK
        e.l = L
    elif e.stage == ROWS:
        e.stage = LAST
    elif e.stage == BACK and e.l > 2:
        e.l -= 1
    elif e.stage == BACK:
        e.stage = LAST
    else:                       # GATHER, LAST, SUMS, or FORWARD with L = 1: a step ends
        return _begin_step(e, tag)
    return BPFAST_NEXT_PHASE


cdef void _epoch_task_d(void* e, int part, int n_parts) noexcept nogil:
    _epoch_task(<Epoch*> e, part, n_parts, <double*> NULL)


cdef void _epoch_task_s(void* e, int part, int n_parts) noexcept nogil:
    _epoch_task(<Epoch*> e, part, n_parts, <float*> NULL)


cdef int _epoch_close_d(void* e) noexcept nogil:
    return _epoch_close(<Epoch*> e, <double*> NULL)


cdef int _epoch_close_s(void* e) noexcept nogil:
    return _epoch_close(<Epoch*> e, <float*> NULL)


cdef bint _all_finite(const floating* v, Py_ssize_t n) noexcept nogil:
    """Whether every v_i is a finite number: FINITE_BLOCK numbers at a time (`bpfast_finite_d`),
    so that a large array with a NaN near its start is not read to its end."""
    cdef Py_ssize_t start = 0, end
    while start < n:
        end = min(n, start + <Py_ssize_t> FINITE_BLOCK)
        if floating is double:
            if not bpfast_finite_d(end - start, v + start):
                return False
        else:
            if not bpfast_finite_s(end - start, v + start):
                return False
        start = end
    return True


#: Whether this build can share work between threads (POSIX threads).
threads = bool(HAVE_THREADS)


# Numbers `_all_finite` tests at a time before it looks at the result.
cdef enum:
    FINITE_BLOCK = 4096


def all_finite(array):
    """Whether every number of a float32 or float64 array (any shape, C-contiguous) is finite:
    one pass without the GIL and without a temporary array (numpy's isfinite(…).all() makes a
    boolean array as large as the input, then reads it)."""
    cdef const float[::1] s
    cdef const double[::1] d
    cdef bint finite
    flat = array.reshape(-1)
    if flat.dtype == np.float32:
        s = flat
        with nogil:
            finite = _all_finite(&s[0], s.shape[0]) if s.shape[0] else True
    else:
        d = flat
        with nogil:
            finite = _all_finite(&d[0], d.shape[0]) if d.shape[0] else True
    return finite


cdef class Team:
    """Up to n_workers threads that share a job's phases (the caller and threads of the team's
    own), and what they measured of the machine (see _team.h): one per `fit`, kept over its
    epochs. ``forced`` (for tests) fixes the mode: 1 team, 2 solo, 3 alternating at every step;
    0, the default, chooses by measuring."""
    cdef bpfast_team* team

    def __cinit__(self, int n_workers=1, int forced=0):
        with nogil:
            self.team = bpfast_team_new(n_workers)
        if self.team == NULL:
            raise MemoryError()
        self.team.forced = forced

    @property
    def n_workers(self):
        """The workers the team has: the calling thread and its own threads."""
        return self.team.n_threads + 1

    def __dealloc__(self):
        with nogil:
            bpfast_team_free(self.team)

    def forget(self):
        """Forget what was measured of the machine: the next job is of another kind (shape,
        batch, parts), whose times are not comparable with the last ones."""
        bpfast_team_forget(self.team)

    @property
    def solo(self):
        """Whether one worker computes every part (solo mode) at present: the team's choice."""
        return bool(self.team.solo)

    def replay(self, double seconds):
        """Tests: count a single call of two workers, one step, as if it took `seconds` in the
        mode in force — the judgment of _team.h on a clock of the test's own, without the
        machine's noise."""
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        bpfast_team_replay(self.team, 2, seconds)

    def hold(self, double seconds):
        """Tests: keep the team's last worker away `seconds` before each phase's parts in team
        mode (0: not at all), as a machine that has it elsewhere would."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be ≥ 0, got {seconds!r}")
        self.team.held = seconds

    @property
    def statistics(self):
        """Steps taken in each mode (all workers, one alone), the number of changes of mode, how
        many times a worker found on another's core moved off it, how many parts a worker took
        over from one that had not come for them, and the seconds spent in jobs (the team's
        clock, on which trials of the other mode are spaced).

        Read once the workers have left the last job: a worker late for its last phase, whose
        parts the caller took over, may still be settling on a core after the job returned —
        and a move counted then fell outside the job's before and after (4 of 235 moves lost
        over 30 s of one-epoch fits after pauses of 0.1 s)."""
        with nogil:
            bpfast_team_wait_idle(self.team)
        return dict(team_steps=self.team.team_steps, solo_steps=self.team.solo_steps,
                    switches=self.team.switches, moves=self.team.moves,
                    taken_over=self.team.taken_over, seconds=self.team.worked)


# --- single calls on the team: the examples shared between parts --------------------------------

# What a call writes once every part has its rows' forward pass (CallStage FORWARD).
cdef enum:
    WRITES_NOTHING = 0      # the forward pass (and Σ_k C_k with targets): predict, cost, evaluate
    WRITES_MEAN = 1         # ∂C/∂θ, the batch mean
    WRITES_EXAMPLES = 2     # each ∂C_k/∂θ, a row of n × P
    WRITES_NORMS = 3        # each ‖∂C_k/∂θ^(l)‖², a row of n × L

cdef enum CallStage:
    CALL_FORWARD = 0        # the part's rows through every layer; δ^(L) and Σ_k C_k with targets
    CALL_BACKWARD = 1       # δ down the layers, and what the call writes for the part's rows
    CALL_GRADIENT = 2       # the batch mean, by neurons: each part's rows of every ∂C/∂w^(l)
    CALL_ADD = 3            # the batch mean, by examples: each part's stretch of θ, the parts'
                            # sums added in part order (`_call_sums_by_examples`)
    CALL_COPY = 4           # the copies of weights, each part its share (`_copy_weights`)


cdef struct CallPart:
    # What a part of a call found, on its rows.
    double share                # Σ_k C_k
    bint z_finite               # whether every z^(1) was finite
    bint bounded                # whether what it wrote is finite: its per-example gradients
                                # certainly (`_magnitude`), its stretch of the mean exactly,
                                # its rows of the output (a^(L)) exactly


cdef struct Call:
    # One call's job on the team (Design 10). Part p owns a contiguous range of rows
    # (`_call_rows`) and its own region of the workspace, laid out as a batch of its rows.
    const Layout* lay
    const void* theta
    const void* X
    const void* Y               # NULL: no targets (the forward pass only)
    const void* weights         # NULL, or each row's weight (δ_k^(L) and C_k scaled by it)
    Py_ssize_t n
    Py_ssize_t chunk            # how the row-by-row products take the rows (`_call_chunk`)
    int n_parts, writes, stage
    void* A
    void* S
    void* T
    void* Z                     # NULL, or z^(1..L) kept (a trace)
    void* out                   # grad (P), the per-example rows (n × P), or squares (n × L)
    bint streamed               # the per-example rows in non-temporal stores (`_streamed`)
    void* output                # NULL, or a^(L) of every row (n × n_L), copied by each part
    bint check_z                # whether to stop, before writing, at a z^(1) not finite
    const void* WT              # NULL, or the call's copies of weights (`_copy_weights`)
    const void* WS              # NULL, or the strips of weights δ w takes (`_copy_strips`)
    CallPart* parts             # what each part found
    bint stopped                # a z^(1) was not finite: nothing was written
    void* sums                  # NULL, or each part's sums of its rows' ∂C/∂θ (n_parts × P,
                                # rows `_sums_stride` apart): the batch mean by examples
    void* AP                    # NULL, or the packed layers' a^(l−1) in panels (`_packed`)
    void* DQ                    # then each part's panels of δ, DQ_stride numbers apart
    Py_ssize_t DQ_stride


cdef inline Py_ssize_t _call_first(Py_ssize_t n, Py_ssize_t chunk, int part,
                                   int n_parts) noexcept nogil:
    """The first row of a call's part: parts start on a multiple of the chunk (`_call_chunk`(n),
    which the call keeps), so that every chunk, and every row in it, is the same whatever the
    number of parts."""
    return min(n, _first(_ceil_div(n, chunk), part, n_parts) * chunk)


cdef inline void _call_rows(const Call* c, int part, Py_ssize_t* r0, Py_ssize_t* m) noexcept nogil:
    r0[0] = _call_first(c.n, c.chunk, part, c.n_parts)
    m[0] = _call_first(c.n, c.chunk, part + 1, c.n_parts) - r0[0]


cdef inline bint _rows_finite(const Layout* lay, int l, const floating* grad, int part,
                              int n_parts) noexcept nogil:
    """Whether the part's rows of ∂C/∂w^(l) and ∂C/∂b^(l) in grad (laid out as θ) are finite:
    read back while they are still in cache, a pass over what was written rather than over the
    inputs — an overflow anywhere in a sum leaves an infinity or a NaN in it."""
    cdef Py_ssize_t n_in = lay.sizes[l - 1]
    cdef Py_ssize_t j0 = _first(lay.sizes[l], part, n_parts)
    cdef Py_ssize_t j1 = _first(lay.sizes[l], part + 1, n_parts)
    return (_all_finite(grad + lay.w[l] + j0 * n_in, (j1 - j0) * n_in)
            and _all_finite(grad + lay.b[l] + j0, j1 - j0))


cdef void _call_mean_gradient(const Call* c, int part, int n_parts, floating* tag) noexcept nogil:
    """The part's neurons of every layer: their rows of ∂C/∂w^(l) and ∂C/∂b^(l), summed over
    the regions of every part in part order — written once into the output, with no partial
    sums to keep, and the same bits for a given number of parts."""
    cdef const Layout* lay = c.lay
    cdef Py_ssize_t r0, m
    cdef floating inv_n = (<floating> 1) / c.n
    cdef int l, q
    for l in range(1, lay.L + 1):
        if c.AP != NULL and _packed(lay, l, c.n, c.n_parts, sizeof(floating)):
            _packed_mean_gradient_layer(c, l, part, n_parts, tag)
        else:
            for q in range(c.n_parts):
                _call_rows(c, q, &r0, &m)
                if m > 0:
                    _mean_gradient_layer(lay, l, m, <const floating*> c.X + r0 * lay.sizes[0],
                                         <floating*> c.A + r0 * lay.width,
                                         <floating*> c.S + r0 * lay.width, <floating*> c.out,
                                         inv_n, q == 0, part, n_parts)
        c.parts[part].bounded &= _rows_finite(lay, l, <const floating*> c.out, part, n_parts)


cdef void _packed_mean_gradient_layer(const Call* c, int l, int part, int n_parts,
                                      floating* tag) noexcept nogil:
    """The part's rows of ∂C/∂w^(l) over every row of the call at once (`_packed`): from
    a^(l−1)'s panels, which the parts packed going down, and its neurons' columns of δ^(l),
    packed here region by region; ∂C/∂b^(l) region by region as `_mean_gradient_layer`."""
    cdef const Layout* lay = c.lay
    cdef Py_ssize_t n_out = lay.sizes[l], n_in = lay.sizes[l - 1], r0, m
    cdef Py_ssize_t j0 = _first(n_out, part, n_parts), j1 = _first(n_out, part + 1, n_parts)
    cdef floating* Q = <floating*> c.DQ + part * c.DQ_stride
    cdef const floating* P = (<const floating*> c.AP
                              + _packed_at(lay, l, sizeof(floating), c.n, c.n_parts))
    cdef floating* grad = <floating*> c.out
    cdef floating inv_n = (<floating> 1) / c.n
    cdef int q
    for q in range(c.n_parts):
        _call_rows(c, q, &r0, &m)
        if m > 0:
            _column_panels(<const floating*> c.S + r0 * lay.width + _block(lay, l, m), n_out, m,
                           j0, j1, NEURON_PANEL, Q + r0 * NEURON_PANEL, c.n)
            _mean_bias_gradient(lay, l, m, <const floating*> c.S + r0 * lay.width, grad, inv_n,
                                q == 0, j0, j1)
    _log_product(DT_A, BY_PACKED, c.n, j1 - j0, n_in)
    if floating is double:
        bpfast_atb_packed_d(c.n, j1 - j0, n_in, inv_n, Q, P, grad + lay.w[l] + j0 * n_in, n_in)
    else:
        bpfast_atb_packed_s(c.n, j1 - j0, n_in, inv_n, Q, P, grad + lay.w[l] + j0 * n_in, n_in)


cdef void _pack_inputs(const Call* c, Py_ssize_t r0, Py_ssize_t m, const floating* X,
                       const floating* A) noexcept nogil:
    """A part's rows r0 … r0 + m of a^(l−1), for every layer whose ∂C/∂w the call takes packed
    (`_packed`), into their panels of all the call's rows (X, A: the part's)."""
    cdef const Layout* lay = c.lay
    cdef Py_ssize_t panel = PANEL_BYTES // sizeof(floating)
    cdef int l
    for l in range(1, lay.L + 1):
        if _packed(lay, l, c.n, c.n_parts, sizeof(floating)):
            _column_panels(_a_below(lay, l, m, X, A), lay.sizes[l - 1], m, 0, lay.sizes[l - 1],
                           panel, <floating*> c.AP
                           + _packed_at(lay, l, sizeof(floating), c.n, c.n_parts) + r0 * panel,
                           c.n)


cdef bint _call_sums_by_examples(const Layout* lay, Py_ssize_t n, int n_parts) noexcept nogil:
    """Whether a call's batch mean is summed by examples — each part all of ∂C/∂θ over its own
    rows, then the parts' sums added (CALL_ADD) — rather than by neurons (CALL_GRADIENT), where
    each part packs every part's a^(l−1) for its rows of ∂C/∂w^(l). By examples when those inputs
    outweigh the sums: n Σ_l n_(l−1) > 2 P ([784, 30, 10] on 1,000 examples: each part packed
    all of X's 6.3 MB for 15 rows of w^(1); [784, 512, 512, 10] on 256 keeps by neurons, where
    in float32 the parts share one packing of a^(l−1): `_packed`)."""
    cdef Py_ssize_t inputs = 0
    cdef int l
    if n_parts < 2:
        return False
    for l in range(1, lay.L + 1):
        inputs += lay.sizes[l - 1]
    return n * inputs > 2 * lay.P


cdef void _call_add(const Call* c, int part, int n_parts, floating* tag) noexcept nogil:
    """The part's stretch of θ (whole cache lines): the mean ∂C/∂θ there, the parts' sums of it
    added in part order — the same bits for a given number of parts."""
    cdef const floating* sums = <const floating*> c.sums
    cdef floating* out = <floating*> c.out
    cdef Py_ssize_t i0, i1
    _sums_stretch(c.lay.P, part, n_parts, &i0, &i1)
    if i1 > i0:
        memcpy(out + i0, sums + i0, (i1 - i0) * sizeof(floating))
    _add_parts_sums(out, sums, _sums_stride(c.lay.P), c.n_parts, i0, i1)
    c.parts[part].bounded = _all_finite(out + i0, i1 - i0)


cdef void _call_task(Call* c, int part, int n_parts, floating* tag) noexcept nogil:
    """The part's share of the stage the call is at (CallStage)."""
    cdef const Layout* lay = c.lay
    cdef const floating* theta = <const floating*> c.theta
    cdef Py_ssize_t r0, m, width = lay.width, P = lay.P
    cdef const floating* X
    cdef const floating* Y
    cdef floating* A
    cdef floating* S
    cdef floating* Z = NULL
    cdef floating* output
    cdef int l
    if c.stage == CALL_GRADIENT:
        _call_mean_gradient(c, part, n_parts, tag)
        return
    if c.stage == CALL_ADD:
        _call_add(c, part, n_parts, tag)
        return
    if c.stage == CALL_COPY:
        _copy_weights(lay, theta, <floating*> c.WT, c.n, part, n_parts)
        if c.WS != NULL:
            _copy_strips(lay, theta, <floating*> c.WS, c.n, part, n_parts)
        return
    _call_rows(c, part, &r0, &m)
    if m == 0:
        return
    X = <const floating*> c.X + r0 * lay.sizes[0]
    Y = (<const floating*> c.Y + r0 * lay.sizes[lay.L]) if c.Y != NULL else NULL
    A = <floating*> c.A + r0 * width
    S = <floating*> c.S + r0 * width
    if c.Z != NULL:
        Z = <floating*> c.Z + r0 * width
    if c.stage == CALL_FORWARD:
        _forward(lay, theta, m, X, A, S, Z, c.chunk,
                 &c.parts[part].z_finite if c.check_z else NULL, <const floating*> c.WT, c.n)
        if Y != NULL:
            c.parts[part].share = _output_delta(
                lay, m, A, Y, S, 0, 1,
                (<const floating*> c.weights + r0) if c.weights != NULL else NULL)
        if c.output != NULL:
            # The part's rows of a^(L) while they are in its cache, and whether they are
            # finite: the caller neither gathers the regions nor reads the output again.
            output = <floating*> c.output + r0 * lay.sizes[lay.L]
            memcpy(output, A + _block(lay, lay.L, m), m * lay.sizes[lay.L] * sizeof(floating))
            c.parts[part].bounded = _all_finite(output, m * lay.sizes[lay.L])
        return
    # CALL_BACKWARD: every δ of the part's rows, and what they write by rows
    for l in range(lay.L, 0, -1):
        if c.writes == WRITES_NORMS:
            _example_norms_layer(lay, l, m, X, A, S, <double*> c.out + r0 * lay.L + (l - 1),
                                 lay.L)
        if l > 1:
            _delta_below(lay, theta, l, m, S, <floating*> c.T + r0 * lay.widest_hidden, 0, 1,
                         _layer_chunk(lay, l, c.chunk),
                         (<const floating*> c.WS + _strips_at(lay, l, sizeof(floating), c.n))
                         if c.WS != NULL and _stripped(lay, l, c.n) else NULL)
    if c.writes == WRITES_EXAMPLES:
        c.parts[part].bounded = _example_gradients(lay, m, X, A, S, <floating*> c.out + r0 * P,
                                                   c.streamed)
    elif c.writes == WRITES_MEAN and c.sums != NULL:
        for l in range(1, lay.L + 1):
            _mean_gradient_layer(lay, l, m, X, A, S,
                                 <floating*> c.sums + part * _sums_stride(lay.P),
                                 (<floating> 1) / c.n, True, 0, 1)
    elif c.writes == WRITES_MEAN and c.AP != NULL:
        _pack_inputs(c, r0, m, X, A)


cdef int _call_close(Call* c, floating* tag) noexcept nogil:
    """After every part of a stage: the next stage, or the end of the call."""
    cdef int p
    if c.stage == CALL_COPY:
        c.stage = CALL_FORWARD
        return BPFAST_NEXT_PHASE
    if c.stage == CALL_FORWARD:
        for p in range(c.n_parts):
            if not c.parts[p].z_finite:
                c.stopped = True                # checked before anything is written
                return BPFAST_FINISHED
        if c.writes == WRITES_NOTHING:
            return BPFAST_FINISHED_STEP
        c.stage = CALL_BACKWARD
        return BPFAST_NEXT_PHASE
    if c.stage == CALL_BACKWARD and c.writes == WRITES_MEAN:
        c.stage = CALL_ADD if c.sums != NULL else CALL_GRADIENT
        return BPFAST_NEXT_PHASE
    return BPFAST_FINISHED_STEP


cdef void _call_task_d(void* c, int part, int n_parts) noexcept nogil:
    _call_task(<Call*> c, part, n_parts, <double*> NULL)


cdef void _call_task_s(void* c, int part, int n_parts) noexcept nogil:
    _call_task(<Call*> c, part, n_parts, <float*> NULL)


cdef int _call_close_d(void* c) noexcept nogil:
    return _call_close(<Call*> c, <double*> NULL)


cdef int _call_close_s(void* c) noexcept nogil:
    return _call_close(<Call*> c, <float*> NULL)


def run_call(NetworkLayout layout, const floating[::1] theta, const floating[:, ::1] X, Y,
             Workspace workspace, int writes=WRITES_NOTHING, out=None, Team team=None,
             int n_parts=1, bint keep_z=False, bint check_z=True, weights=None, output=None,
             bint kept_out=False):
    """One call of the kernels on a batch X (and targets Y, or None), its examples split into
    n_parts parts that the workers of `team` compute (none: the calling thread): the forward
    pass into the workspace (each part in its own region: `regions`), Σ_k C_k with targets, then
    what `writes` asks for into `out` — the batch mean ∂C/∂θ (P; each part its neurons' rows,
    the regions' sums added in part order), each ∂C_k/∂θ (n × P), or each example's squared norms by
    layer (n × L, float64). X's finiteness is checked on z^(1) before anything is written.

    Returns (Σ_k C_k, or 0.0 without targets; whether every z^(1) was finite — if not, the call
    stopped after the forward pass; whether the gradients written are finite — per example
    certainly (`_magnitude`), their mean exactly (`_rows_finite`) — True for the other writes).
    ``weights``: one per row of X (θ's dtype), each example's δ_k^(L) and C_k scaled by its
    weight — the weighted sums (the caller scales them to sum to n for a weighted mean).
    ``output``: None, or an (n, n_L) array of θ's dtype into which each part copies its rows of
    a^(L) (written even where z^(1) was not finite); whether they are finite is then the third
    value returned, with writes = WRITES_NOTHING. ``kept_out``: ``out`` is the caller's kept
    buffer, not an array just made (`_streamed`)."""
    cdef Call c
    cdef const floating[::1] W
    cdef floating[:, ::1] outputs
    cdef Py_ssize_t n = X.shape[0], P = layout.c.P
    cdef const floating[:, ::1] Yv
    cdef floating[::1] A, S, T, Z, grad, WT
    cdef floating[:, ::1] rows
    cdef double[:, ::1] squares
    cdef double sum_C = 0
    cdef bint bounded = True
    cdef int p
    cdef Py_ssize_t copies = _copy_at(&layout.c, layout.c.L + 1, sizeof(floating), n), strips
    cdef Py_ssize_t packed
    cdef bpfast_task task = _call_task_d if floating is double else _call_task_s
    cdef bpfast_close close = _call_close_d if floating is double else _call_close_s
    dtype = np.float64 if floating is double else np.float32
    _check_theta(layout, theta)
    _fits(workspace, n, dtype)
    if n_parts < 1 or X.shape[1] != layout.c.sizes[0]:
        raise ValueError("a call needs n_parts ≥ 1 and X of the layout's width.")
    if team is None:
        team = Team()
    memset(&c, 0, sizeof(c))
    c.lay = &layout.c
    c.theta = &theta[0]
    c.X = &X[0, 0]
    c.n = n
    c.chunk = _call_chunk(n)
    c.n_parts = n_parts
    c.writes = writes
    c.stage = CALL_FORWARD
    c.check_z = check_z
    strips = (_strips_at(&layout.c, layout.c.L + 1, sizeof(floating), n)
              if writes != WRITES_NOTHING else 0)
    if (copies > 0 or strips > 0) and _copies_weights(n):     # `_copy_weights`, `_copy_strips`
        WT = workspace.copies(copies + strips)
        c.WT = &WT[0] if copies > 0 else NULL
        c.WS = &WT[copies] if strips > 0 else NULL
        c.stage = CALL_COPY
    if Y is not None:
        Yv = Y
        if Yv.shape[0] != n or Yv.shape[1] != layout.c.sizes[layout.c.L]:
            raise ValueError("Y must have a row per example, of the layout's output width.")
        c.Y = &Yv[0, 0]
    elif writes != WRITES_NOTHING:
        raise ValueError("a gradient needs targets.")
    if weights is not None:
        W = weights
        if W.shape[0] != n or Y is None:
            raise ValueError("weights must hold one number per row of X, with targets.")
        c.weights = &W[0]
    if output is not None:
        outputs = output
        if (outputs.shape[0] != n or outputs.shape[1] != layout.c.sizes[layout.c.L]
                or writes != WRITES_NOTHING):
            raise ValueError("output must have a row of the layout's output width per example, "
                             "in a call that writes nothing else.")
        if n > 0:
            c.output = &outputs[0, 0]
    A, S, T = workspace.A, workspace.S, workspace.T
    c.A, c.S, c.T = &A[0], &S[0], &T[0]
    if keep_z:
        workspace.with_z()
        Z = workspace.Z
        c.Z = &Z[0]
    if writes == WRITES_MEAN:
        grad = out
        if grad.shape[0] != P:
            raise ValueError(f"out must have {P} entries.")
        c.out = &grad[0]
    elif writes == WRITES_EXAMPLES:
        rows = out
        if rows.shape[0] != n or rows.shape[1] != P:
            raise ValueError(f"out must have shape ({n}, {P}).")
        c.out = &rows[0, 0]
        c.streamed = _streamed(c.out, n * P * sizeof(floating), sizeof(floating), kept_out)
    elif writes == WRITES_NORMS:
        squares = out
        if squares.shape[0] != n or squares.shape[1] != layout.c.L:
            raise ValueError(f"out must have shape ({n}, {layout.c.L}).")
        c.out = &squares[0, 0]
    c.parts = <CallPart*> calloc(n_parts, sizeof(CallPart))
    if c.parts == NULL:
        raise MemoryError()
    if writes == WRITES_MEAN and _call_sums_by_examples(&layout.c, n, n_parts):
        c.sums = _address(workspace.sums(n_parts))
    elif writes == WRITES_MEAN:
        packed = _packed_at(&layout.c, layout.c.L + 1, sizeof(floating), n, n_parts)
        if packed > 0:
            c.DQ_stride = _neuron_panels_stride(&layout.c, sizeof(floating), n, n_parts)
            c.AP = _address(workspace.packs(packed + n_parts * c.DQ_stride))
            c.DQ = <floating*> c.AP + packed
    try:
        for p in range(n_parts):
            c.parts[p].z_finite = c.parts[p].bounded = True
        with nogil:
            bpfast_team_run(team.team, n_parts, &c, task, close)
        for p in range(n_parts):                # in a fixed order: reproducible
            sum_C += c.parts[p].share
            bounded = bounded and c.parts[p].bounded
    finally:
        free(c.parts)
    return sum_C, not c.stopped, bounded


def regions(NetworkLayout layout, Py_ssize_t n, int n_parts):
    """Where each part of a call keeps its rows in a workspace buffer: a list of (first row,
    rows, offset of its region) — the region holding its rows laid out as a batch of their own."""
    cdef int p
    cdef Py_ssize_t r0, r1, chunk = _call_chunk(n)
    result = []
    for p in range(n_parts):
        r0, r1 = _call_first(n, chunk, p, n_parts), _call_first(n, chunk, p + 1, n_parts)
        result.append((r0, r1 - r0, r0 * layout.c.width))
    return result


def call_parts(Py_ssize_t n, int wanted):
    """How many parts a call on n examples is split into, for `wanted` threads: no more than
    there are chunks of rows (`_call_first`); at least one."""
    cdef Py_ssize_t chunk = _call_chunk(n)
    return <int> max(1, min(<Py_ssize_t> wanted, _ceil_div(n, chunk)))


# --- Python-visible twins ------------------------------------------------------------------------

def activate(const floating[::1] z, floating[::1] a, floating[::1] slope, int activation):
    """a ← f(z), slope ← f'(z) elementwise, f the elementwise activation numbered `activation`."""
    if z.shape[0] == 0:
        return
    cdef floating* zero = <floating*> calloc(max(z.shape[0], 1), sizeof(floating))
    if zero == NULL:
        raise MemoryError()
    try:
        with nogil:
            memcpy(&slope[0], &z[0], z.shape[0] * sizeof(floating))
            _activate(&slope[0], zero, &a[0], &slope[0], z.shape[0], activation, False)
    finally:
        free(zero)


def softmax(const floating[:, ::1] z, floating[:, ::1] a):
    """a ← softmax of each row of z."""
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    with nogil:
        _softmax_rows(&z[0, 0], &a[0, 0], z.shape[1], 0, z.shape[0])


cdef inline void _check_theta(NetworkLayout layout, const floating[::1] theta) except *:
    if theta.shape[0] != layout.c.P:
        raise ValueError(f"θ has {theta.shape[0]} entries; the layout says {layout.c.P}.")


cdef _run_epoch(NetworkLayout layout, floating[::1] theta, const floating[:, ::1] X,
                const floating[:, ::1] Y, const Py_ssize_t[::1] order, Py_ssize_t batch,
                Rule rule, Workspace workspace, Team team, int n_threads, bint catch_sigint,
                Py_ssize_t steps, floating* backup, double clip_norm, double noise,
                uint64_t key, offsets, double normaliser, weights, bint check_x):
    """An epoch on the team: (Σ_k C_k, the mini-batch whose step diverged in a replay or 0,
    whether Ctrl-C stopped it, the steps it completed, whether it stopped at a row of X that is
    not finite — `check_x`)."""
    cdef Epoch e
    cdef double sum_C = 0
    cdef int t
    cdef bint x_stopped = False
    cdef floating[::1] Xb, Yb, A, S, T
    cdef Py_ssize_t copies
    cdef bpfast_task task = _epoch_task_d if floating is double else _epoch_task_s
    cdef bpfast_close close = _epoch_close_d if floating is double else _epoch_close_s
    _check_theta(layout, theta)
    _fits(workspace, batch, np.float64 if floating is double else np.float32, training=True)
    if X.shape[1] != layout.c.sizes[0] or Y.shape[1] != layout.c.sizes[layout.c.L] or (
            X.shape[0] != Y.shape[0]) or order.shape[0] == 0 or batch < 1 or n_threads < 1:
        raise ValueError("an epoch needs X and Y of the layout's widths, rows in order, a "
                         "batch ≥ 1 and n_threads ≥ 1.")
    if rule.code != SGD and rule.grad.shape[0] != layout.c.P:
        raise ValueError("the rule's state is not laid out as this θ.")
    if not 0 <= noise <= DBL_MAX:
        raise ValueError(f"noise must be a finite number ≥ 0 (0: none), got {noise}.")
    if not 0 <= clip_norm <= DBL_MAX:
        raise ValueError(f"clip_norm must be a finite number ≥ 0 (0: no clipping), "
                         f"got {clip_norm}.")
    Xb, Yb, A, S, T = workspace.Xb, workspace.Yb, workspace.A, workspace.S, workspace.T
    memset(&e, 0, sizeof(e))
    e.lay = &layout.c
    e.theta = &theta[0]
    e.X = &X[0, 0]
    e.Y = &Y[0, 0]
    e.order = &order[0]
    e.N = order.shape[0]
    e.batch = batch
    e.n_batches = _ceil_div(e.N, batch)
    cdef const Py_ssize_t[::1] starts
    if offsets is not None:
        starts = offsets
        if (starts.shape[0] < 2 or starts[0] != 0 or starts[starts.shape[0] - 1] > e.N
                or normaliser <= 0 or clip_norm <= 0):
            raise ValueError("Poisson steps need offsets from 0 into the order, a normaliser "
                             "> 0 and a clip norm.")
        for t in range(1, starts.shape[0]):
            if not 0 <= starts[t] - starts[t - 1] <= batch:
                raise ValueError("a Poisson step holds more rows than the buffers' batch.")
        e.offsets = &starts[0]
        e.n_batches = starts.shape[0] - 1
        e.normaliser = normaliser
    cdef const floating[::1] W
    if weights is not None:
        W = weights
        if W.shape[0] != e.N or clip_norm > 0:
            raise ValueError("weights must hold one number per entry of order, and are not "
                             "for clipped steps.")
        e.weights = &W[0]
    e.steps = steps
    e.step = rule.c
    e.Xb = &Xb[0]
    e.Yb = &Yb[0]
    e.A = &A[0]
    e.S = &S[0]
    e.T = &T[0]
    e.backup = backup
    e.stage = GATHER
    e.n_parts = n_threads
    e.clip = clip_norm
    e.noise = noise
    e.key = key
    if (_epoch_by_examples(&e, batch)
            or _epoch_by_examples(&e, e.N - (e.n_batches - 1) * batch)):
        e.G_stride = _sums_stride(layout.c.P)
        e.G = _address(workspace.sums(n_threads))
        copies = _copy_at(&layout.c, layout.c.L + 1, sizeof(floating), 0)
        if copies > 0 and not _blas_small_path:     # panels (`_panelled`) only
            e.WT_stride = _sums_stride(copies)
            e.WT = _address(workspace.copies(n_threads * e.WT_stride))
    e.shares = <double*> calloc(n_threads, sizeof(double))
    if e.shares == NULL:
        raise MemoryError()
    e.check_x = check_x
    e.x_bad = <bint*> calloc(n_threads, sizeof(bint))
    if e.x_bad == NULL:
        free(e.shares)
        raise MemoryError()
    e.catch_sigint = catch_sigint and _catch_sigint() == 0
    try:
        with nogil:
            bpfast_team_run(team.team, n_threads, &e, task, close)
        for t in range(n_threads):              # in a fixed order: reproducible
            sum_C += e.shares[t]
    finally:
        if e.catch_sigint:
            _release_sigint()
            # A Ctrl-C after the epoch last looked at the flag — in its last step, or as it
            # ended — is the epoch's too: left there, it was lost, and an epoch of one step
            # never stopped at all.
            e.interrupted = e.interrupted or _sigint_pending()
        x_stopped = _x_stops(&e)
        free(e.shares)
        free(e.x_bad)
    return sum_C, e.diverged, bool(e.interrupted), e.i_batch, x_stopped


class RowNotFinite(ValueError):
    """`train_epoch` with check_x met a row of X holding a NaN or an infinity, and stopped before
    any step used it; θ holds the steps taken before (its caller puts θ back)."""


def train_epoch(NetworkLayout layout, floating[::1] theta, const floating[:, ::1] X,
                const floating[:, ::1] Y, const Py_ssize_t[::1] order, Py_ssize_t batch,
                Rule rule, Workspace workspace, Team team=None, int n_threads=1,
                bint catch_sigint=False, Py_ssize_t steps=0, double clip_norm=0,
                double noise=0, uint64_t noise_key=0, offsets=None, double normaliser=0,
                weights=None, bint check_x=False):
    """One epoch of training on θ in place: a step of `rule` for each mini-batch of `batch`
    examples taken in `order` (each a row of X and Y), each split into n_threads parts (Design
    4) that the workers of `team` compute (none: the calling thread alone); BLAS should be
    single-threaded meanwhile. `steps`: those fit took before (Adam's t). Returns Σ_k C_k, each
    C_k with the parameters in force when its mini-batch was visited.

    With `catch_sigint` (main thread only: it swaps the process's SIGINT handler for the
    epoch), Ctrl-C stops the epoch at the next mini-batch boundary and raises KeyboardInterrupt
    (its ``mini_batches_done``: the steps completed in this epoch); θ then holds the parameters
    after the last completed step.

    ``clip_norm`` R > 0: each example's ∂C_k/∂θ is clipped to norm R before the mini-batch's
    mean (`_clip_deltas`; such steps are always by examples, Design 11). ``noise`` > 0: each
    step's sum gains noise of that deviation per coordinate before it is divided (ν R in
    DP-SGD), drawn for step `steps` + i (i from 0 in this epoch) from ``noise_key``.
    ``offsets`` (Poisson sampling, with a clip norm): step i takes the rows order[offsets[i]:
    offsets[i + 1]] — any number, none included, at most ``batch`` — and divides its sum by
    ``normaliser`` (the expected mini-batch size), not by its count. ``weights`` (θ's dtype,
    one per entry of order; not with clipping): each example's δ_k^(L) and C_k scaled by its
    weight — each step's weights scaled to sum to its size make its step the weighted mean.
    ``check_x``: X's finiteness is not known yet — each row is checked as it is gathered (in
    cache: no pass over X of its own), and a row that is not finite stops the epoch before any
    step uses it, raising `RowNotFinite`. An epoch that visits every row checks all of X.
    """
    if team is None:
        team = Team()
    sum_C, _, interrupted, done, x_stopped = _run_epoch(
        layout, theta, X, Y, order, batch, rule, workspace, team, n_threads, catch_sigint, steps,
        <floating*> NULL, clip_norm, noise, noise_key, offsets, normaliser, weights, check_x)
    if x_stopped:
        raise RowNotFinite("a row of X is not finite")
    if interrupted:
        interrupt = KeyboardInterrupt("training interrupted at a mini-batch boundary")
        interrupt.mini_batches_done = done
        raise interrupt
    return sum_C


def replay_epoch(NetworkLayout layout, floating[::1] theta, const floating[:, ::1] X,
                 const floating[:, ::1] Y, const Py_ssize_t[::1] order, Py_ssize_t batch,
                 Rule rule, Workspace workspace, Team team=None, int n_threads=1,
                 Py_ssize_t steps=0, double clip_norm=0, double noise=0,
                 uint64_t noise_key=0, offsets=None, double normaliser=0, weights=None):
    """`train_epoch` again, checking θ after every step (the careful replay of an epoch that
    diverged, from θ and the rule's state as they were when it began): at the first step that
    leaves a non-finite parameter θ is put back to the step before and the epoch stops. Returns
    the 1-based index of that mini-batch, or 0."""
    cdef floating[::1] backup = np.empty_like(np.asarray(theta))
    if team is None:
        team = Team()
    _, diverged, _, _, _ = _run_epoch(layout, theta, X, Y, order, batch, rule, workspace, team,
                                      n_threads, False, steps, &backup[0], clip_norm, noise,
                                      noise_key, offsets, normaliser, weights, False)
    return diverged
