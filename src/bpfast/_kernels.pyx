"""Fast kernels of bpfast: the forward pass, the backward pass, the gradient, and whole epochs.

Design
1. The parameters θ live in one contiguous vector in the slides' order: w^(1) (row-major,
   shape (n_1, n_0)), b^(1), w^(2), b^(2), …, w^(L), b^(L). `sizes` = [n_0, …, n_L] gives every
   offset. A gradient has the same layout, so ∇C is written straight into its final place, and a
   gradient-descent step is a GEMM that updates θ in place (beta = 1).
2. A batch is row-major, one example per row. Matrix products are BLAS GEMMs from
   scipy.linalg.cython_blas. BLAS is column-major, so a row-major matrix M is handed over as Mᵀ
   and the operands swap: Z = A wᵀ is computed as Zᵀ = w Aᵀ.
3. Per-layer batch buffers are flat: layer l's block of shape (n, n_l) starts at
   n · (n_1 + … + n_{l−1}). Z holds z^(l), A holds a^(l) (a^(0) is X itself), S holds f'(z^(l))
   (z^(L) itself at the output with cross-entropy or softmax) and is overwritten, layer by layer
   from the top, with δ^(l) = ∂C_0/∂z^(l).
4. A step of `fit` is split into parts by neurons: in every layer, part p of n_threads owns a
   contiguous range of neurons j, computes their z_j, a_j, δ_j and updates their row w_j and
   b_j; BLAS is called single-threaded on those sub-blocks. The step is a sequence of stages
   (Stage), each a phase of a `Team` (_team.h): every part of a stage is done before the next
   starts, since the next reads what all of them wrote. Each part's arithmetic is fixed by
   n_threads, so a given n_threads gives bitwise-reproducible results whichever threads compute
   the parts and however many — which the team decides at run time, by measuring, so that a
   busy machine never makes threads wait for each other more than they gain.
5. Mini-batches of fewer than SMALL_BATCH examples use the small products of _microkernels.h
   (AVX2/FMA where the CPU has it, chosen at load time) instead of BLAS, whose packing of the
   operands costs more than the arithmetic at that size; larger ones go to BLAS.
6. Each layer has its activation (`acts[l−1]`, numbered as Activation; the formulas are in
   _activations.h, compiled like the microkernels), and the network one cost (Cost). Softmax needs
   whole rows: for a softmax output, threads share the output layer's a^(L) and δ^(L) by
   examples instead of neurons (`_rows_are_split`), in a stage of their own.
7. A step of `fit` is one of the rules of Rule (plain, momentum, Nesterov, Adam; L2 with any):
   plain steps are the gradient GEMM with β = 1 − ηλ; the others keep their state in buffers laid
   out as θ and apply the rule right after each block of ∂C/∂w (`_step_rows`, _rules.h).
8. `cdef … noexcept nogil` functions over `floating` do the arithmetic; the `def` twins at the
   bottom release the GIL around them. Nothing here checks its arguments: bpfast.network and
   bpfast.training validate every shape, dtype and value before calling in.
"""
from libc.math cimport fabs, isfinite, log, log1p, pow
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm
from cython cimport floating

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


# --- the activations ------------------------------------------------------------------------------

# The C loops, each compiled for x86-64-v3 and the baseline; _dispatch.h chooses at import.
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
                                    # θ ← θ − η m̂ / (√r̂ + ε), m̂ = m / (1 − β1^t), r̂ = r / (1 − β2^t)
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
    environment variable BPFAST_ISA asks for ("baseline", or "x86-64-v3")."""
    import os
    request = os.environ.get("BPFAST_ISA", "").strip()
    if bpfast_choose_isa(request.encode()) != 0:
        raise ImportError(f"BPFAST_ISA={request!r}: this CPU and build run 'baseline'"
                          + (" and 'x86-64-v3'." if bpfast_choose_isa(b"x86-64-v3") == 0
                             else " only.") + " Unset it to use the best of them.")
    return bpfast_isa_in_use.decode()


#: The instruction set the C loops were compiled for that runs here: "x86-64-v3" or "baseline".
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
    void bpfast_ab_d(Py_ssize_t m, Py_ssize_t ni, Py_ssize_t nj, const double* D, Py_ssize_t ldd,
                     const double* W, Py_ssize_t ldw, double* T, Py_ssize_t ldt) noexcept nogil
    void bpfast_ab_s(Py_ssize_t m, Py_ssize_t ni, Py_ssize_t nj, const float* D, Py_ssize_t ldd,
                     const float* W, Py_ssize_t ldw, float* T, Py_ssize_t ldt) noexcept nogil

# From this many examples in a batch on, BLAS beats the microkernels (Design 5).
cdef enum:
    SMALL_BATCH = 64


cdef inline void _z_is_a_wT(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                            const floating* A, Py_ssize_t lda, const floating* W, Py_ssize_t ldw,
                            floating* Z, Py_ssize_t ldz) noexcept nogil:
    """Z = A Wᵀ, i.e. Z_kj = Σ_i A_ki W_ji   (row-major; k < m, j < nj, i < ni)"""
    if m == 0 or nj == 0:
        return
    if m >= SMALL_BATCH:
        _gemm(c'T', c'N', nj, m, ni, 1, W, ldw, A, lda, 0, Z, ldz)
    elif floating is double:
        bpfast_abt_d(m, nj, ni, A, lda, W, ldw, Z, ldz)
    else:
        bpfast_abt_s(m, nj, ni, A, lda, W, ldw, Z, ldz)


cdef inline void _w_is_beta_w_plus_alpha_dT_a(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni,
                                              floating alpha, floating beta,
                                              const floating* D, Py_ssize_t ldd,
                                              const floating* A, Py_ssize_t lda,
                                              floating* W, Py_ssize_t ldw) noexcept nogil:
    """W = β W + α Dᵀ A, i.e. W_ji = β W_ji + α Σ_k D_kj A_ki   (β = 0 never reads W)"""
    if m == 0 or nj == 0:
        return
    if m >= SMALL_BATCH:
        _gemm(c'N', c'T', ni, nj, m, alpha, A, lda, D, ldd, beta, W, ldw)
    elif floating is double:
        bpfast_atb_d(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw, NULL, NULL)
    else:
        bpfast_atb_s(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw, NULL, NULL)


cdef inline void _t_is_d_w(Py_ssize_t m, Py_ssize_t ni, Py_ssize_t nj,
                           const floating* D, Py_ssize_t ldd, const floating* W, Py_ssize_t ldw,
                           floating* T, Py_ssize_t ldt) noexcept nogil:
    """T = D W, i.e. T_ki = Σ_j D_kj W_ji   (row-major; k < m, i < ni, j < nj)"""
    if m == 0 or ni == 0:
        return
    if m >= SMALL_BATCH:
        _gemm(c'N', c'N', ni, m, nj, 1, W, ldw, D, ldd, 0, T, ldt)
    elif floating is double:
        bpfast_ab_d(m, ni, nj, D, ldd, W, ldw, T, ldt)
    else:
        bpfast_ab_s(m, ni, nj, D, ldd, W, ldw, T, ldt)


# --- the layers ----------------------------------------------------------------------------------

cdef inline Py_ssize_t _n_params(const Py_ssize_t* sizes, int L) noexcept nogil:
    """P = Σ_l n_l (n_{l−1} + 1), the length of ∇C"""
    cdef Py_ssize_t P = 0
    cdef int l
    for l in range(1, L + 1):
        P += sizes[l] * (sizes[l - 1] + 1)
    return P


cdef inline Py_ssize_t _first(Py_ssize_t n, int thread, int n_threads) noexcept nogil:
    """The first of the neurons (or rows) 0..n−1 that `thread` owns; it owns up to the next's."""
    return n * thread // n_threads


cdef inline bint _rows_are_split(const int* acts, int L) noexcept nogil:
    """Whether the output layer is shared between threads by examples (softmax) and not neurons"""
    return acts[L - 1] == SOFTMAX


cdef void _forward_layer(const floating* theta, const Py_ssize_t* sizes, const int* acts,
                         int cost, int L, int l, Py_ssize_t n, const floating* X, floating* Z,
                         floating* A, floating* S, int part, int n_parts) noexcept nogil:
    """z^(l) = a^(l−1) w^(l)ᵀ + b^(l),  a^(l) = f_l(z^(l)),  S ← f_l'(z^(l)) for the part's neurons j
    of layer l (rows = examples; a^(0) = X), f_l being activation acts[l−1].

    S may equal Z (the slopes replace z, which the backward pass does not need). At the output,
    S keeps z^(L) itself where the backward pass needs z and not a slope: with the cross-entropy
    cost (computed from z) and with softmax (whose Jacobian is not a slope per neuron); softmax's
    a^(L) is then left to `_softmax_rows`, by examples.
    """
    cdef Py_ssize_t n_in = sizes[l - 1], n_out = sizes[l]
    cdef const floating* w = theta + _w_offset(sizes, l)
    cdef const floating* b = w + n_out * n_in
    cdef const floating* a_prev = X if l == 1 else A + _block(sizes, l - 1, n)
    cdef Py_ssize_t block = _block(sizes, l, n), k
    cdef floating* z = Z + block
    cdef floating* a = A + block
    cdef floating* s = S + block
    cdef Py_ssize_t j0 = _first(n_out, part, n_parts), j1 = _first(n_out, part + 1, n_parts)
    _z_is_a_wT(n, j1 - j0, n_in, a_prev, n_in, w + j0 * n_in, n_in, z + j0, n_out)
    for k in range(n):
        _activate(z + k * n_out + j0, b + j0, a + k * n_out + j0, s + k * n_out + j0, j1 - j0,
                  acts[l - 1], l == L and cost == CROSS_ENTROPY)


cdef void _forward(const floating* theta, const Py_ssize_t* sizes, const int* acts, int cost,
                   int L, Py_ssize_t n, const floating* X, floating* Z, floating* A,
                   floating* S) noexcept nogil:
    """The forward pass of a batch, every layer, on one thread (`_forward_layer`, then softmax's
    rows at the output)."""
    cdef int l
    for l in range(1, L + 1):
        _forward_layer(theta, sizes, acts, cost, L, l, n, X, Z, A, S, 0, 1)
    if _rows_are_split(acts, L):
        _softmax_rows(S + _block(sizes, L, n), A + _block(sizes, L, n), sizes[L], 0, n)


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


# What `_backward` does with ∂C/∂θ once it has it.
cdef enum Mode:
    MEAN = 0          # grad ← ∂C/∂θ = (1/n) Σ_k ∂C_k/∂θ
    PER_EXAMPLE = 1   # grad[k·P:(k+1)·P] ← ∂C_k/∂θ
    STEP = 2          # θ ← θ − η ∂C/∂θ, in place (grad is θ itself)


cdef inline Py_ssize_t _w_offset(const Py_ssize_t* sizes, int l) noexcept nogil:
    """Where w^(l) starts in θ (b^(l) follows it)"""
    cdef Py_ssize_t offset = 0
    cdef int m
    for m in range(1, l):
        offset += sizes[m] * (sizes[m - 1] + 1)
    return offset


cdef inline Py_ssize_t _block(const Py_ssize_t* sizes, int l, Py_ssize_t n) noexcept nogil:
    """Where layer l's (n, n_l) block starts in the per-layer batch buffers"""
    cdef Py_ssize_t block = 0
    cdef int m
    for m in range(1, l):
        block += n * sizes[m]
    return block


cdef struct Optimizer:
    int rule
    double eta, l2, mu, beta1, beta2, eps
    double c1, c2     # Adam at step t: 1 / (1 − β1^t) and 1 / (1 − β2^t)
    void* grad        # P elements: the mini-batch's ∂C/∂θ (every rule but SGD)
    void* v           # P elements: the velocity v, or Adam's first moment m
    void* r           # P elements: Adam's second moment r


cdef inline void _hyper(const Optimizer* opt, bpfast_hyper_d* hd, bpfast_hyper_s* hs) noexcept nogil:
    """The rule's hyper-parameters in the form _rules.h takes, in double and in float"""
    hd.rule = hs.rule = opt.rule
    hd.eta = opt.eta
    hd.mu = opt.mu
    hd.l2 = opt.l2
    hd.beta1 = opt.beta1
    hd.beta2 = opt.beta2
    hd.eps = opt.eps
    hd.c1 = opt.c1
    hd.c2 = opt.c2
    hs.eta = <float> opt.eta
    hs.mu = <float> opt.mu
    hs.l2 = <float> opt.l2
    hs.beta1 = <float> opt.beta1
    hs.beta2 = <float> opt.beta2
    hs.eps = <float> opt.eps
    hs.c1 = <float> opt.c1
    hs.c2 = <float> opt.c2


# Weight rows per block of `_step_rows`: their ∂C/∂w (4 rows of 784 doubles, 25 KiB) is still in
# L1 when the rule reads it back.
cdef enum:
    STEP_ROWS = 4


cdef void _step_rows(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const floating* D, Py_ssize_t ldd,
                     const floating* A, Py_ssize_t lda, floating* theta, floating* grad,
                     const Optimizer* opt, Py_ssize_t start) noexcept nogil:
    """A step of `opt`'s rule, L2 included, on the nj weight rows of θ from θ[start] (each ni
    long), from ∂C/∂w_ji = (1/m) Σ_k D_kj A_ki. Momentum and Nesterov on small mini-batches: in
    the product's epilogue, ∂C/∂w never in memory. Adam on small mini-batches: ∂C/∂w written into
    grad (laid out as θ) a few rows at a time and read back while it is in L1. BLAS, whose
    packing prefers one large product: all rows into grad at once, then the rule."""
    cdef floating inv_m = (<floating> 1) / m
    cdef Py_ssize_t j, rows
    cdef bpfast_hyper_d hd
    cdef bpfast_hyper_s hs
    if m == 0 or nj == 0:
        return
    if m >= SMALL_BATCH:
        _gemm(c'N', c'T', ni, nj, m, inv_m, A, lda, D, ldd, 0, grad + start, ni)
        _update(theta, grad, opt, start, start + nj * ni, True)
        return
    if opt.rule == MOMENTUM or opt.rule == NESTEROV:
        # The small products apply momentum themselves, tile by tile (_microkernels.h).
        _hyper(opt, &hd, &hs)
        if floating is double:
            bpfast_atb_d(m, nj, ni, inv_m, 0, D, ldd, A, lda, theta + start, ni,
                         <double*> opt.v + start, &hd)
        else:
            bpfast_atb_s(m, nj, ni, inv_m, 0, D, ldd, A, lda, theta + start, ni,
                         <float*> opt.v + start, &hs)
        return
    j = 0
    while j < nj:
        rows = min(<Py_ssize_t> STEP_ROWS, nj - j)
        _w_is_beta_w_plus_alpha_dT_a(m, rows, ni, inv_m, 0, D + j, ldd, A, lda,
                                     grad + start + j * ni, ni)
        _update(theta, grad, opt, start + j * ni, start + (j + rows) * ni, True)
        j += rows


cdef void _update(floating* theta, const floating* g, const Optimizer* opt, Py_ssize_t start,
                  Py_ssize_t end, bint weights) noexcept nogil:
    """One step of `opt`'s rule on θ_i for start ≤ i < end, from g_i = ∂C/∂θ_i in memory (Rule,
    and _rules.h); `weights` says whether these are weights, which L2 regularises, or biases."""
    cdef bpfast_hyper_d hd
    cdef bpfast_hyper_s hs
    cdef floating* v = <floating*> opt.v + start
    cdef floating* r = (<floating*> opt.r + start) if opt.r != NULL else v
    _hyper(opt, &hd, &hs)
    if floating is double:
        bpfast_update_d(&hd, opt.l2 if weights else 0, end - start, g + start, theta + start, v, r)
    else:
        bpfast_update_s(&hs, <float> opt.l2 if weights else 0, end - start, g + start,
                        theta + start, v, r)


cdef void _link_one(floating* grad, Py_ssize_t P, const Py_ssize_t* sizes, int l, Py_ssize_t n,
                    const floating* X, const floating* A, const floating* S, Mode mode,
                    const Optimizer* opt, int thread, int n_threads) noexcept nogil:
    """∂C/∂w_ji^(l) = (1/n) Σ_k δ_kj^(l) a_ki^(l−1),  ∂C/∂b_j^(l) = (1/n) Σ_k δ_kj^(l), own rows j

    Link 1 of the chain: ∂z_j/∂w_ji = a_i^(l−1) and ∂z_j/∂b_j = 1. S holds δ^(l); `mode` says
    where the result goes (see Mode; STEP applies `opt`); P is the length of a per-example row.
    """
    cdef Py_ssize_t n_out = sizes[l], n_in = sizes[l - 1]
    cdef Py_ssize_t w_offset = _w_offset(sizes, l)
    cdef Py_ssize_t b_offset = w_offset + n_out * n_in
    cdef Py_ssize_t j0 = _first(n_out, thread, n_threads), j1 = _first(n_out, thread + 1, n_threads)
    cdef const floating* delta = S + _block(sizes, l, n)
    cdef const floating* a_prev = X if l == 1 else A + _block(sizes, l - 1, n)
    cdef Py_ssize_t k, j, i
    cdef floating d
    cdef floating* g
    cdef floating* theta = grad
    cdef floating inv_n = (<floating> 1) / n
    cdef floating scale = inv_n, beta = 0
    cdef bint fused = mode == STEP and opt.rule == SGD
    if mode == PER_EXAMPLE:
        for k in range(n):
            g = grad + k * P
            for j in range(j0, j1):
                d = delta[k * n_out + j]
                for i in range(n_in):
                    g[w_offset + j * n_in + i] = d * a_prev[k * n_in + i]
                g[b_offset + j] = d
        return
    if fused:
        # Plain gradient descent needs no ∂C/∂θ in memory: the GEMM adds −η ∂C/∂w to w in place,
        # and L2's −ηλ w folds into its β: w ← (1 − ηλ) w − η ∂C/∂w.
        scale = <floating> (-opt.eta) * inv_n
        beta = <floating> (1 - opt.eta * opt.l2)
    elif mode == STEP:
        grad = <floating*> opt.grad
        _step_rows(n, j1 - j0, n_in, delta + j0, n_out, a_prev, n_in, theta, grad, opt,
                   w_offset + j0 * n_in)
    if not (mode == STEP and not fused):
        _w_is_beta_w_plus_alpha_dT_a(n, j1 - j0, n_in, scale, beta, delta + j0, n_out, a_prev,
                                     n_in, grad + w_offset + j0 * n_in, n_in)
    g = grad + b_offset
    if not fused:
        for j in range(j0, j1):
            g[j] = 0
    _add_column_sums(g, delta, n, n_out, j0, j1, scale)
    if mode == STEP and not fused:
        _update(theta, grad, opt, b_offset + j0, b_offset + j1, False)


cdef double _output_delta(int activation, int cost, Py_ssize_t n, Py_ssize_t count,
                          const floating* A, const floating* Y, floating* S,
                          int thread, int n_threads) noexcept nogil:
    """δ^(L) = ∂C_0/∂z^(L) into S, which holds f'(z^(L)) or z^(L) (see `_forward`); returns
    Σ_k C_k over the thread's share (its neurons, or with softmax its examples).

    quadratic:             δ_j = f'(z_j) · 2(a_j − y_j)           (link 2 times link 3)
    quadratic, softmax:    δ_j = Σ_i ∂a_i/∂z_j · 2(a_i − y_i) = a_j (2(a_j − y_j) − Σ_i a_i 2(a_i − y_i))
    cross-entropy, sigmoid: C_0 = Σ_j softplus(z_j) − y_j z_j, δ_j = a_j − y_j
    cross-entropy, softmax: C_0 = Σ_j y_j (lse(z) − z_j),       δ_j = a_j Σ_i y_i − y_j
    (softplus(z) = ln(1 + e^z), lse(z) = ln Σ_i e^(z_i), both computed without overflow.)
    """
    cdef Py_ssize_t k, j, i
    cdef floating error, dot, top, total, sum_y, lse, z_j
    cdef const floating* a
    cdef const floating* y
    cdef floating* s
    cdef double sum_C = 0
    if activation == SOFTMAX:
        for k in range(_first(n, thread, n_threads), _first(n, thread + 1, n_threads)):
            a = A + k * count
            y = Y + k * count
            s = S + k * count
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
        return sum_C
    for k in range(n):
        for j in range(_first(count, thread, n_threads), _first(count, thread + 1, n_threads)):
            i = k * count + j
            error = A[i] - Y[i]
            if cost == QUADRATIC:
                sum_C += error * error
                S[i] = S[i] * 2 * error
            else:                               # CROSS_ENTROPY with sigmoid
                z_j = S[i]
                sum_C += ((z_j if z_j > 0 else 0) - Y[i] * z_j
                          + log1p(_exp_negative(-fabs(z_j))))
                S[i] = error
    return sum_C


cdef void _delta_below(const floating* theta, const Py_ssize_t* sizes, int l, Py_ssize_t n,
                       floating* S, floating* T, int part, int n_parts) noexcept nogil:
    """δ_i^(l−1) = f'(z_i^(l−1)) · Σ_j w_ji^(l) δ_j^(l) for the part's neurons i of layer l − 1.

    The sum over j, ∂C_0/∂a_i^(l−1), goes into T (scratch of n × n_{l−1}), then it is multiplied
    by link 2 of the layer below, which S holds where δ^(l−1) is to be written.
    """
    cdef Py_ssize_t n_out = sizes[l], n_in = sizes[l - 1], k, i
    cdef Py_ssize_t i0 = _first(n_in, part, n_parts), i1 = _first(n_in, part + 1, n_parts)
    cdef const floating* delta = S + _block(sizes, l, n)
    cdef floating* delta_below = S + _block(sizes, l - 1, n)
    _t_is_d_w(n, i1 - i0, n_out, delta, n_out, theta + _w_offset(sizes, l) + i0, n_in,
              T + i0, n_in)
    for k in range(n):
        for i in range(i0, i1):
            delta_below[k * n_in + i] *= T[k * n_in + i]


cdef double _backward(const floating* theta, const Py_ssize_t* sizes, const int* acts, int cost,
                      int L, Py_ssize_t n, const floating* X, const floating* Y, const floating* A,
                      floating* S, floating* T, floating* grad, Mode mode) noexcept nogil:
    """The backward pass of a batch on one thread, ∂C/∂θ (MEAN) or every ∂C_k/∂θ (PER_EXAMPLE)
    into grad: δ^(L) (`_output_delta`), δ^(l−1) (`_delta_below`) and `_link_one` for every layer;
    returns Σ_k C_k.

    On entry S holds what `_forward` left there (the slopes f'(z^(l)), z^(L) at the output in the
    cases it names); it is overwritten with δ^(l). T is scratch of n × max(n_1, …, n_{L−1}).
    """
    cdef Py_ssize_t P = _n_params(sizes, L)
    cdef double sum_C
    cdef int l
    sum_C = _output_delta(acts[L - 1], cost, n, sizes[L], A + _block(sizes, L, n), Y,
                          S + _block(sizes, L, n), 0, 1)
    for l in range(L, 0, -1):
        _link_one(grad, P, sizes, l, n, X, A, S, mode, NULL, 0, 1)
        if l > 1:
            _delta_below(theta, sizes, l, n, S, T, 0, 1)
    return sum_C


# --- training -------------------------------------------------------------------------------------

cdef extern from "_team.h":
    ctypedef struct bpfast_team:
        int solo
        int forced
        long switches, solo_steps, team_steps
        int n_threads
    ctypedef void (*bpfast_task)(void* job, int part, int n_parts) noexcept nogil
    ctypedef int (*bpfast_close)(void* job) noexcept nogil
    const int HAVE_THREADS "BPFAST_HAVE_THREADS"
    bpfast_team* bpfast_team_new(int n_workers) noexcept nogil
    void bpfast_team_free(bpfast_team* team) noexcept nogil
    void bpfast_team_run(bpfast_team* team, int n_parts, void* job, bpfast_task task,
                         bpfast_close close) noexcept nogil
    enum:
        BPFAST_NEXT_PHASE
        BPFAST_NEXT_STEP
        BPFAST_FINISHED


# The stages of a step of `fit`, each a phase of the team (Design 4): every part of a stage is
# done before the next stage starts, because the next one reads what all of them wrote.
cdef enum Stage:
    GATHER = 0     # the first mini-batch's rows, gathered into Xb, Yb (once per epoch)
    FORWARD = 1    # layer l: z, a and slope of the part's neurons (at l = L also δ^(L), and
                   # with L = 1 the whole step: see `_epoch_task`)
    ROWS = 2       # softmax's a^(L) and δ^(L), by examples
    BACK = 3       # layer l = L..2: the step of w^(l+1) (l < L) and δ^(l−1), the part's rows
    LAST = 4       # the steps of w^(2) and w^(1); the next mini-batch's rows gathered


cdef struct Epoch:
    # What the epoch trains on (typed by the task: floating*), set once by `train_epoch`.
    void* theta
    const Py_ssize_t* sizes
    const int* acts
    int cost, L
    const void* X
    const void* Y
    const Py_ssize_t* order
    Py_ssize_t N, batch, n_batches, steps
    Optimizer opt                               # with the step's t for Adam (`_begin_step`)
    void* Xb
    void* Yb
    void* A
    void* S
    void* T
    void* backup                                # θ before the step, in a careful replay
    double* shares                              # Σ_k C_k of each part, over the epoch
    # Where the epoch is, advanced by `_epoch_close` between phases.
    Py_ssize_t i_batch, m
    int stage, l
    bint catch_sigint                           # whether Ctrl-C stops the epoch (main thread)
    bint interrupted
    Py_ssize_t diverged                         # the mini-batch (from 1) whose step diverged


cdef inline floating* _batch_half(void* buffer, Py_ssize_t i_batch, Py_ssize_t batch,
                                  Py_ssize_t width, floating* tag) noexcept nogil:
    """Mini-batch i_batch's rows in Xb or Yb. Mini-batches alternate between two halves, so that
    the next one is gathered while this one still updates w^(1), with no phase in between."""
    return <floating*> buffer + (i_batch % 2) * batch * width


cdef void _gather(Epoch* e, Py_ssize_t i_batch, int part, int n_parts,
                  floating* tag) noexcept nogil:
    """The part's share of mini-batch i_batch's rows of X and Y, into their half of Xb and Yb"""
    cdef Py_ssize_t n0 = e.sizes[0], nL = e.sizes[e.L], k, row
    cdef Py_ssize_t start = i_batch * e.batch, m = min(e.batch, e.N - start)
    cdef floating* x = _batch_half(e.Xb, i_batch, e.batch, n0, tag)
    cdef floating* y = _batch_half(e.Yb, i_batch, e.batch, nL, tag)
    if i_batch >= e.n_batches:                 # after the last mini-batch: nothing to gather
        return
    for k in range(_first(m, part, n_parts), _first(m, part + 1, n_parts)):
        row = e.order[start + k]
        memcpy(x + k * n0, <const floating*> e.X + row * n0, n0 * sizeof(floating))
        memcpy(y + k * nL, <const floating*> e.Y + row * nL, nL * sizeof(floating))


cdef void _prefetch_rows(Epoch* e, Py_ssize_t i_batch, int part, int n_parts,
                         floating* tag) noexcept nogil:
    """Ask memory for the part's share of mini-batch i_batch's rows of X, scattered over the
    training set and out of cache, while the mini-batch before it is computed."""
    cdef Py_ssize_t start = i_batch * e.batch, m, k, byte
    cdef const char* row
    if i_batch >= e.n_batches:
        return
    m = min(e.batch, e.N - start)
    for k in range(_first(m, part, n_parts), _first(m, part + 1, n_parts)):
        row = <const char*> (<const floating*> e.X + e.order[start + k] * e.sizes[0])
        for byte in range(0, e.sizes[0] * <Py_ssize_t> sizeof(floating), 64):
            _prefetch(row + byte)


cdef void _epoch_task(Epoch* e, int part, int n_parts, floating* tag) noexcept nogil:
    """The part's share of the stage the epoch is at (Stage). The output layer's δ^(L) adds the
    part's Σ_k C_k to its share; the step's updates go straight into θ (`_link_one`, STEP)."""
    cdef floating* theta = <floating*> e.theta
    cdef const Py_ssize_t* sizes = e.sizes
    cdef int L = e.L, l = e.l
    cdef Py_ssize_t n = e.m, P = _n_params(sizes, L), nL = sizes[L]
    cdef floating* x = _batch_half(e.Xb, e.i_batch, e.batch, sizes[0], tag)
    cdef floating* y = _batch_half(e.Yb, e.i_batch, e.batch, nL, tag)
    cdef floating* A = <floating*> e.A
    cdef floating* S = <floating*> e.S
    cdef Py_ssize_t output = _block(sizes, L, n)
    if e.stage == GATHER:
        _gather(e, e.i_batch, part, n_parts, tag)
    elif e.stage == FORWARD:
        if l == 1:
            _prefetch_rows(e, e.i_batch + 1, part, n_parts, tag)
        _forward_layer(theta, sizes, e.acts, e.cost, L, l, n, x, S, A, S, part, n_parts)
        if l == L and not _rows_are_split(e.acts, L):
            e.shares[part] += _output_delta(e.acts[L - 1], e.cost, n, nL, A + output, y,
                                            S + output, part, n_parts)
            if L == 1:                          # the same neurons all the way: no phase between
                _link_one(theta, P, sizes, 1, n, x, A, S, STEP, &e.opt, part, n_parts)
                _gather(e, e.i_batch + 1, part, n_parts, tag)
    elif e.stage == ROWS:
        _softmax_rows(S + output, A + output, nL, _first(n, part, n_parts),
                      _first(n, part + 1, n_parts))
        e.shares[part] += _output_delta(e.acts[L - 1], e.cost, n, nL, A + output, y,
                                        S + output, part, n_parts)
    elif e.stage == BACK:
        # δ^(l−1) is computed from w^(l) before w^(l) changes, as gradient descent requires:
        # w^(l+1) is updated now, after the phase in which every part last read it.
        if l < L:
            _link_one(theta, P, sizes, l + 1, n, x, A, S, STEP, &e.opt, part, n_parts)
        _delta_below(theta, sizes, l, n, S, <floating*> e.T, part, n_parts)
    else:                                       # LAST
        if L > 1:
            _link_one(theta, P, sizes, 2, n, x, A, S, STEP, &e.opt, part, n_parts)
        _link_one(theta, P, sizes, 1, n, x, A, S, STEP, &e.opt, part, n_parts)
        _gather(e, e.i_batch + 1, part, n_parts, tag)


cdef int _begin_step(Epoch* e, floating* tag) noexcept nogil:
    """Between two steps, on one thread: the replay's check of the step just taken, Ctrl-C, the
    end of the epoch; then the next mini-batch's size and Adam's t. Returns what `_epoch_close`
    does next."""
    cdef Py_ssize_t P = _n_params(e.sizes, e.L)
    if e.backup != NULL:
        if e.stage != GATHER and not _all_finite(<floating*> e.theta, P):
            memcpy(e.theta, e.backup, P * sizeof(floating))
            e.diverged = e.i_batch + 1
            return BPFAST_FINISHED
        memcpy(e.backup, e.theta, P * sizeof(floating))
    if e.stage != GATHER:
        e.i_batch += 1
    if e.i_batch == e.n_batches:
        return BPFAST_FINISHED
    if e.catch_sigint and _sigint_pending():
        e.interrupted = True
        return BPFAST_FINISHED
    e.m = min(e.batch, e.N - e.i_batch * e.batch)
    if e.opt.rule == ADAM:
        e.opt.c1 = 1 / (1 - pow(e.opt.beta1, <double> (e.steps + e.i_batch + 1)))
        e.opt.c2 = 1 / (1 - pow(e.opt.beta2, <double> (e.steps + e.i_batch + 1)))
    e.stage = FORWARD
    e.l = 1
    return BPFAST_NEXT_STEP


cdef int _epoch_close(Epoch* e, floating* tag) noexcept nogil:
    """After every part of a stage is done, on one thread: the stage that comes next (Stage)."""
    cdef bint split = _rows_are_split(e.acts, e.L)
    if e.stage == FORWARD and e.l < e.L:
        e.l += 1
    elif e.stage == FORWARD and split:
        e.stage = ROWS
    elif (e.stage == FORWARD or e.stage == ROWS) and e.L > 1:
        e.stage = BACK
        e.l = e.L
    elif e.stage == ROWS:
        e.stage = LAST
    elif e.stage == BACK and e.l > 2:
        e.l -= 1
    elif e.stage == BACK:
        e.stage = LAST
    else:                                       # GATHER, LAST, or FORWARD with L = 1: a step ends
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
    """Whether every v_i is a finite number"""
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(v[i]):
            return False
    return True


#: Whether this build can share work between threads (POSIX threads).
threads = bool(HAVE_THREADS)


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

    @property
    def statistics(self):
        """Steps taken in each mode (all workers, one alone) and the number of changes of mode."""
        return dict(team_steps=self.team.team_steps, solo_steps=self.team.solo_steps,
                    switches=self.team.switches)


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


def forward(const floating[::1] theta, const Py_ssize_t[::1] sizes, const int[::1] acts,
            int cost, const floating[:, ::1] X, floating[::1] Z, floating[::1] A, floating[::1] S):
    """Z ← z^(1..L), A ← a^(1..L), S ← f'(z^(1..L)) for the batch X (flat blocks, Design 3)."""
    cdef int L = <int> sizes.shape[0] - 1
    with nogil:
        _forward(&theta[0], &sizes[0], &acts[0], cost, L, X.shape[0], &X[0, 0], &Z[0], &A[0],
                 &S[0])


def gradient(const floating[::1] theta, const Py_ssize_t[::1] sizes, const int[::1] acts,
             int cost, const floating[:, ::1] X, const floating[:, ::1] Y,
             floating[::1] A, floating[::1] S, floating[::1] T, floating[::1] grad,
             bint per_example):
    """grad ← ∂C/∂θ, the batch mean, or with `per_example` grad[k·P:(k+1)·P] ← ∂C_k/∂θ; returns
    Σ_k C_k.

    A and S are work buffers of n · (n_1 + … + n_L) elements, T of n · max(n_1..n_{L−1}, 1).
    On return A holds the activations a^(1..L).
    """
    cdef int L = <int> sizes.shape[0] - 1
    cdef Py_ssize_t n = X.shape[0]
    cdef double sum_C
    with nogil:
        _forward(&theta[0], &sizes[0], &acts[0], cost, L, n, &X[0, 0], &S[0], &A[0], &S[0])
        sum_C = _backward(&theta[0], &sizes[0], &acts[0], cost, L, n, &X[0, 0], &Y[0, 0], &A[0],
                          &S[0], &T[0], &grad[0], PER_EXAMPLE if per_example else MEAN)
    return sum_C


def train_epoch(floating[::1] theta, const Py_ssize_t[::1] sizes, const int[::1] acts, int cost,
                const floating[:, ::1] X, const floating[:, ::1] Y, const Py_ssize_t[::1] order,
                Py_ssize_t batch, dict rule,
                floating[::1] Xb, floating[::1] Yb, floating[::1] A, floating[::1] S,
                floating[::1] T, int n_threads=1, Team team=None,
                bint catch_sigint=False, floating[::1] backup=None, floating[::1] grad=None,
                floating[::1] v=None, floating[::1] r=None, Py_ssize_t steps=0):
    """One epoch of training on θ in place; returns Σ_k C_k over the epoch.

    `rule` gives the step (Rule): {"rule": 0..3, "eta", "l2", "mu", "beta1", "beta2", "eps"}.
    Every rule but SGD needs `grad` and `v` of P elements, Adam also `r`; `steps` is the number
    of steps taken before this epoch (Adam's bias corrections).
    Work buffers: Xb of 2 · batch · n0, Yb of 2 · batch · nL, A and S of batch · (n_1 + … + n_L),
    T of batch · max(n_1..n_{L−1}, 1). Every index in `order` must be a row of X and Y.
    Each mini-batch is split into n_threads parts (Design 4), which the workers of `team`
    compute (a `Team`, kept over the epochs of a fit; none: the calling thread alone); BLAS
    should be single-threaded then.
    With `catch_sigint` (main thread only: it swaps the process's SIGINT handler for the
    epoch), Ctrl-C stops the epoch at the next mini-batch boundary and raises
    KeyboardInterrupt (its ``mini_batches_done``: the steps completed in this epoch); θ then
    holds the parameters after the last completed step.
    With `backup` (P elements), the epoch is a careful replay: θ is saved before every step and
    checked after it; at the first step that leaves a non-finite parameter θ is put back and
    the epoch stops. It then returns (Σ_k C_k, the 1-based index of that mini-batch, or 0).
    """
    cdef Epoch e
    cdef double sum_C = 0
    cdef int t
    cdef bpfast_task task = _epoch_task_d if floating is double else _epoch_task_s
    cdef bpfast_close close = _epoch_close_d if floating is double else _epoch_close_s
    if team is None:
        team = Team()
    memset(&e, 0, sizeof(e))
    e.theta = &theta[0]
    e.sizes = &sizes[0]
    e.acts = &acts[0]
    e.cost = cost
    e.L = <int> sizes.shape[0] - 1
    e.X = &X[0, 0]
    e.Y = &Y[0, 0]
    e.order = &order[0]
    e.N = order.shape[0]
    e.batch = batch
    e.n_batches = (e.N + batch - 1) // batch
    e.steps = steps
    e.opt.rule = rule["rule"]
    e.opt.eta = rule["eta"]
    e.opt.l2 = rule["l2"]
    e.opt.mu = rule["mu"]
    e.opt.beta1 = rule["beta1"]
    e.opt.beta2 = rule["beta2"]
    e.opt.eps = rule["eps"]
    e.opt.c1 = e.opt.c2 = 1
    e.opt.grad = &grad[0] if grad is not None else NULL
    e.opt.v = &v[0] if v is not None else NULL
    e.opt.r = &r[0] if r is not None else NULL
    if e.opt.rule != SGD and (e.opt.grad == NULL or e.opt.v == NULL or
                              (e.opt.rule == ADAM and e.opt.r == NULL)):
        raise ValueError("this rule needs its state buffers")
    e.Xb = &Xb[0]
    e.Yb = &Yb[0]
    e.A = &A[0]
    e.S = &S[0]
    e.T = &T[0]
    e.backup = &backup[0] if backup is not None else NULL
    e.stage = GATHER
    e.shares = <double*> calloc(n_threads, sizeof(double))
    if e.shares == NULL:
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
        free(e.shares)
    if e.interrupted:
        interrupt = KeyboardInterrupt("training interrupted at a mini-batch boundary")
        interrupt.mini_batches_done = e.i_batch
        raise interrupt
    if backup is not None:
        return sum_C, e.diverged
    return sum_C
