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
4. Threads share a mini-batch by neurons: in every layer, thread t of n_threads owns a contiguous
   range of neurons j, computes their z_j, a_j, δ_j and updates their row w_j and b_j; BLAS is
   called single-threaded on those sub-blocks. `_barrier()` separates the phases that read what
   other threads wrote. Each neuron's arithmetic is done by one thread in a fixed order, so a
   given n_threads gives bitwise-reproducible results. Outside a parallel region (or built
   without OpenMP) the same code runs with n_threads = 1 and the barriers do nothing.
5. Mini-batches of fewer than SMALL_BATCH examples use the small products of _microkernels.h
   (AVX2/FMA where the CPU has it, chosen at load time) instead of BLAS, whose packing of the
   operands costs more than the arithmetic at that size; larger ones go to BLAS.
6. Each layer has its activation (`acts[l−1]`, numbered as Activation; the formulas are in
   _activations.h, compiled like the microkernels), and the network one cost (Cost). Softmax needs
   whole rows: for a softmax output, threads share the output layer's a^(L) and δ^(L) by
   examples instead of neurons (`_rows_are_split`), with a barrier on each side.
7. A step of `fit` is one of the rules of Rule (plain, momentum, Nesterov, Adam; L2 with any):
   plain steps are the gradient GEMM with β = 1 − ηλ; the others keep their state in buffers laid
   out as θ and apply the rule right after each block of ∂C/∂w (`_step_rows`, _rules.h).
8. `cdef … noexcept nogil` functions over `floating` do the arithmetic; the `def` twins at the
   bottom release the GIL around them. Nothing here checks its arguments: bpfast.network and
   bpfast.training validate every shape, dtype and value before calling in.
"""
from cython.parallel cimport parallel
from libc.math cimport fabs, isfinite, log, log1p, pow
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
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
    #ifdef _OPENMP
    #include <omp.h>
    #define BPFAST_HAVE_OPENMP 1
    #define BPFAST_BARRIER() _Pragma("omp barrier")
    static int bpfast_thread(void) { return omp_get_thread_num(); }
    static int bpfast_n_threads(void) { return omp_get_num_threads(); }
    #else
    #define BPFAST_HAVE_OPENMP 0
    #define BPFAST_BARRIER()
    static int bpfast_thread(void) { return 0; }
    static int bpfast_n_threads(void) { return 1; }
    #endif
    """
    const int HAVE_OPENMP "BPFAST_HAVE_OPENMP"
    void _barrier "BPFAST_BARRIER" () noexcept nogil
    int _thread "bpfast_thread" () noexcept nogil
    int _n_threads "bpfast_n_threads" () noexcept nogil
    void _prefetch "BPFAST_PREFETCH" (const void* p) noexcept nogil
    int _catch_sigint "bpfast_catch_sigint" () noexcept nogil
    void _release_sigint "bpfast_release_sigint" () noexcept nogil
    int _sigint_pending "bpfast_sigint_pending" () noexcept nogil

#: Whether this build shares work between threads (OpenMP was found at build time).
openmp = bool(HAVE_OPENMP)


# --- the activations ------------------------------------------------------------------------------

cdef extern from "_activations.h":
    double bpfast_exp_negative_d(double x) noexcept nogil
    float bpfast_exp_negative_s(float x) noexcept nogil
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


# The activations, numbered by _activations.h (bpfast.activations.ACTIVATIONS in this order).
cdef extern from "_activations.h":
    cdef enum Activation:
        SIGMOID "BPFAST_SIGMOID"
        TANH "BPFAST_TANH"
        RELU "BPFAST_RELU"
        IDENTITY "BPFAST_IDENTITY"
        SOFTMAX "BPFAST_SOFTMAX"  # output layer only: a_j = e^(z_j) / Σ_i e^(z_i), a whole row

# The costs (bpfast.network.COSTS in this order).
cdef enum Cost:
    QUADRATIC = 0       # C_0 = Σ_j (a_j − y_j)²
    CROSS_ENTROPY = 1   # sigmoid: −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)];  softmax: −Σ_j y_j ln a_j


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

cdef extern from "_rules.h":
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


cdef extern from "_microkernels.h":
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


cdef void _forward(const floating* theta, const Py_ssize_t* sizes, const int* acts, int cost,
                   int L, Py_ssize_t n, const floating* X, floating* Z, floating* A, floating* S,
                   int thread, int n_threads) noexcept nogil:
    """z^(l) = a^(l−1) w^(l)ᵀ + b^(l),  a^(l) = f_l(z^(l)),  S ← f_l'(z^(l)) for l = 1..L (rows =
    examples), f_l being activation acts[l−1].

    S may equal Z (the slopes replace z, which the backward pass does not need). At the output,
    S keeps z^(L) itself where the backward pass needs z and not a slope: with the cross-entropy
    cost (computed from z) and with softmax (whose Jacobian is not a slope per neuron). The thread
    computes its own neurons of every layer, except softmax's a^(L), computed by rows: a row needs
    every z_j of its example, so threads then share the examples (`_rows_are_split`).
    """
    cdef const floating* w
    cdef const floating* b
    cdef const floating* a_prev = X
    cdef floating* z
    cdef floating* a
    cdef floating* s
    cdef Py_ssize_t offset = 0, block = 0, k, j0, j1, n_out, n_in
    cdef int l
    for l in range(1, L + 1):
        n_in = sizes[l - 1]
        n_out = sizes[l]
        w = theta + offset
        b = w + n_out * n_in
        offset += n_out * (n_in + 1)
        z = Z + block
        a = A + block
        s = S + block
        block += n * n_out
        j0 = _first(n_out, thread, n_threads)
        j1 = _first(n_out, thread + 1, n_threads)

        _z_is_a_wT(n, j1 - j0, n_in, a_prev, n_in, w + j0 * n_in, n_in, z + j0, n_out)
        for k in range(n):
            _activate(z + k * n_out + j0, b + j0, a + k * n_out + j0, s + k * n_out + j0, j1 - j0,
                      acts[l - 1], l == L and cost == CROSS_ENTROPY)
        if l < L or _rows_are_split(acts, L):
            _barrier()                          # the next layer (or softmax) reads every z_j, a_j
        a_prev = a
    if _rows_are_split(acts, L):
        _softmax_rows(S + block - n * sizes[L], A + block - n * sizes[L], sizes[L],
                      _first(n, thread, n_threads), _first(n, thread + 1, n_threads))


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


# How a step of `fit` turns ∂C/∂θ into a change of θ (bpfast.training.OPTIMIZERS in this order).
cdef extern from "_rules.h":
    cdef enum Rule:
        SGD "BPFAST_SGD"            # θ ← θ − η g
        MOMENTUM "BPFAST_MOMENTUM"  # v ← μ v + g,  θ ← θ − η v                    (heavy ball)
        NESTEROV "BPFAST_NESTEROV"  # v ← μ v + g,  θ ← θ − η (g + μ v)
        ADAM "BPFAST_ADAM"          # m ← β1 m + (1 − β1) g,  r ← β2 r + (1 − β2) g²,
                                    # θ ← θ − η m̂ / (√r̂ + ε), m̂ = m / (1 − β1^t), r̂ = r / (1 − β2^t)
# where g = ∂C/∂θ + λ w for the weights (L2: the cost gains (λ/2) Σ_l ‖w^(l)‖²), ∂C/∂θ for biases.


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


cdef double _backward(const floating* theta, const Py_ssize_t* sizes, const int* acts, int cost,
                      int L, Py_ssize_t n, const floating* X, const floating* Y, const floating* A,
                      floating* S, floating* T, floating* grad, Mode mode, const Optimizer* opt,
                      int thread, int n_threads) noexcept nogil:
    """δ^(L) (`_output_delta`), δ^(l−1) = f'(z^(l−1)) ⊙ δ^(l) w^(l), then `_link_one` for every
    layer; returns Σ_k C_k over the thread's share of the output.

    On entry S holds what `_forward` left there (the slopes f'(z^(l)), z^(L) at the output in the
    cases it names); it is overwritten with δ^(l). T is scratch of n × max(n_1, …, n_{L−1}).
    δ^(l−1) is computed from w^(l) before w^(l) changes, as gradient descent requires: layer l's
    own rows are updated only after the barrier that follows every thread's use of w^(l), the one
    that also gathers δ^(l−1).
    """
    cdef Py_ssize_t P = _n_params(sizes, L)
    cdef Py_ssize_t k, i, i0, i1, n_out, n_in
    cdef floating* delta
    cdef floating* delta_below
    cdef double sum_C
    cdef int l

    sum_C = _output_delta(acts[L - 1], cost, n, sizes[L], A + _block(sizes, L, n), Y,
                          S + _block(sizes, L, n), thread, n_threads)
    for l in range(L, 1, -1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        i0 = _first(n_in, thread, n_threads)
        i1 = _first(n_in, thread + 1, n_threads)
        delta = S + _block(sizes, l, n)
        delta_below = S + _block(sizes, l - 1, n)
        _barrier()                              # every δ^(l) is ready; w^(l+1) is read no more
        if l < L:
            _link_one(grad, P, sizes, l + 1, n, X, A, S, mode, opt, thread, n_threads)
        # The sum over j: ∂C_0/∂a_i^(l−1) = Σ_j w_ji^(l) δ_j^(l) for the thread's own i, into T,
        # then times link 2 of the layer below: δ_i^(l−1) = f'(z_i^(l−1)) · T_i.
        _t_is_d_w(n, i1 - i0, n_out, delta, n_out, theta + _w_offset(sizes, l) + i0, n_in,
                  T + i0, n_in)
        for k in range(n):
            for i in range(i0, i1):
                delta_below[k * n_in + i] *= T[k * n_in + i]
    if L > 1:
        _barrier()                              # w^(2) is read no more
        _link_one(grad, P, sizes, 2, n, X, A, S, mode, opt, thread, n_threads)
    elif _rows_are_split(acts, L):
        _barrier()                              # δ^(1) was computed by rows, is used by neurons
    _link_one(grad, P, sizes, 1, n, X, A, S, mode, opt, thread, n_threads)
    return sum_C


# --- training -------------------------------------------------------------------------------------

cdef double _train_epoch(floating* theta, const Py_ssize_t* sizes, const int* acts, int cost,
                         int L, const floating* X, const floating* Y, const Py_ssize_t* order,
                         Py_ssize_t N, Py_ssize_t batch, const Optimizer* opt, Py_ssize_t steps,
                         floating* Xb, floating* Yb, floating* A, floating* S, floating* T,
                         int* stop, floating* backup, Py_ssize_t* diverged,
                         int thread, int n_threads) noexcept nogil:
    """One step of `opt` for each mini-batch of `batch` examples taken in `order`; returns the
    thread's share of Σ_k C_k. `steps` is how many steps `fit` took before this epoch (Adam's t).

    Each C_k is evaluated with the parameters in force when its mini-batch was visited. The last
    mini-batch may be shorter: its gradient is the mean over its own size. On Ctrl-C (when
    caught, see `train_epoch`) every thread leaves at the same mini-batch boundary: thread 0
    posts the decision in stop[i % 2] before the gather barrier, all read it after; two slots,
    so that posting the next decision never races with reading this one.

    With a `backup` buffer of P elements (the careful replay of an epoch that diverged), thread
    0 saves θ before each step and checks it after; at the first step that leaves a non-finite
    parameter it puts θ back, sets *diverged to that mini-batch's index + 1, and all stop.
    """
    cdef Py_ssize_t n0 = sizes[0], nL = sizes[L]
    cdef Py_ssize_t start, k, m, i_batch, next_m, byte
    cdef const char* row
    cdef floating* x
    cdef floating* y
    cdef double sum_C = 0
    cdef Optimizer step = opt[0]                # this thread's copy, with the step's t
    for i_batch in range((N + batch - 1) // batch):
        start = i_batch * batch
        m = min(batch, N - start)
        # Mini-batches alternate between two halves of Xb and Yb: a thread may gather the next
        # one while another still updates w^(1) from this one, with no barrier in between.
        x = Xb + (i_batch % 2) * batch * n0
        y = Yb + (i_batch % 2) * batch * nL
        if thread == 0 and _sigint_pending():
            stop[i_batch % 2] = 1
        if backup != NULL and thread == 0:
            memcpy(backup, theta, _n_params(sizes, L) * sizeof(floating))
        for k in range(_first(m, thread, n_threads), _first(m, thread + 1, n_threads)):
            memcpy(x + k * n0, X + order[start + k] * n0, n0 * sizeof(floating))
            memcpy(y + k * nL, Y + order[start + k] * nL, nL * sizeof(floating))
        _barrier()                              # the mini-batch is gathered; the last one is done
        if stop[i_batch % 2]:
            break
        # The next mini-batch's rows are scattered over the training set, out of cache: ask
        # for them now, so that memory fetches them while this mini-batch is computed.
        next_m = min(batch, N - start - m)
        for k in range(_first(next_m, thread, n_threads), _first(next_m, thread + 1, n_threads)):
            row = <const char*> (X + order[start + m + k] * n0)
            for byte in range(0, n0 * <Py_ssize_t> sizeof(floating), 64):
                _prefetch(row + byte)
        if step.rule == ADAM:
            step.c1 = 1 / (1 - pow(step.beta1, <double> (steps + i_batch + 1)))
            step.c2 = 1 / (1 - pow(step.beta2, <double> (steps + i_batch + 1)))
        _forward(theta, sizes, acts, cost, L, m, x, S, A, S, thread, n_threads)
        sum_C += _backward(theta, sizes, acts, cost, L, m, x, y, A, S, T, theta, STEP, &step,
                           thread, n_threads)
        if backup != NULL:
            _barrier()                          # the step is complete
            if thread == 0 and not _all_finite(theta, _n_params(sizes, L)):
                memcpy(theta, backup, _n_params(sizes, L) * sizeof(floating))
                diverged[0] = i_batch + 1
            _barrier()
            if diverged[0]:
                break
    return sum_C


cdef bint _all_finite(const floating* v, Py_ssize_t n) noexcept nogil:
    """Whether every v_i is a finite number"""
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(v[i]):
            return False
    return True


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
                 &S[0], 0, 1)


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
        _forward(&theta[0], &sizes[0], &acts[0], cost, L, n, &X[0, 0], &S[0], &A[0], &S[0], 0, 1)
        sum_C = _backward(&theta[0], &sizes[0], &acts[0], cost, L, n, &X[0, 0], &Y[0, 0], &A[0],
                          &S[0], &T[0], &grad[0], PER_EXAMPLE if per_example else MEAN, NULL,
                          0, 1)
    return sum_C


def train_epoch(floating[::1] theta, const Py_ssize_t[::1] sizes, const int[::1] acts, int cost,
                const floating[:, ::1] X, const floating[:, ::1] Y, const Py_ssize_t[::1] order,
                Py_ssize_t batch, dict rule,
                floating[::1] Xb, floating[::1] Yb, floating[::1] A, floating[::1] S,
                floating[::1] T, int n_threads=1, bint catch_sigint=False,
                floating[::1] backup=None, floating[::1] grad=None, floating[::1] v=None,
                floating[::1] r=None, Py_ssize_t steps=0):
    """One epoch of training on θ in place; returns Σ_k C_k over the epoch.

    `rule` gives the step (Rule): {"rule": 0..3, "eta", "l2", "mu", "beta1", "beta2", "eps"}.
    Every rule but SGD needs `grad` and `v` of P elements, Adam also `r`; `steps` is the number
    of steps taken before this epoch (Adam's bias corrections).
    Work buffers: Xb of 2 · batch · n0, Yb of 2 · batch · nL, A and S of batch · (n_1 + … + n_L),
    T of batch · max(n_1..n_{L−1}, 1). Every index in `order` must be a row of X and Y.
    n_threads threads share each mini-batch (Design 4); BLAS should be single-threaded then.
    With `catch_sigint` (main thread only: it swaps the process's SIGINT handler for the
    epoch), Ctrl-C stops the epoch at the next mini-batch boundary and raises
    KeyboardInterrupt; θ then holds the parameters after the last completed step.
    With `backup` (P elements), the epoch is a careful replay: see `_train_epoch`; it then
    returns (Σ_k C_k, the 1-based index of the mini-batch whose step diverged, or 0).
    """
    cdef int L = <int> sizes.shape[0] - 1
    cdef double* shares
    cdef int stop[2]
    cdef Py_ssize_t diverged = 0
    cdef floating* backup_ptr = &backup[0] if backup is not None else NULL
    cdef double sum_C = 0
    cdef int t
    cdef Optimizer opt
    opt.rule = rule["rule"]
    opt.eta = rule["eta"]
    opt.l2 = rule["l2"]
    opt.mu = rule["mu"]
    opt.beta1 = rule["beta1"]
    opt.beta2 = rule["beta2"]
    opt.eps = rule["eps"]
    opt.c1 = opt.c2 = 1
    opt.grad = &grad[0] if grad is not None else NULL
    opt.v = &v[0] if v is not None else NULL
    opt.r = &r[0] if r is not None else NULL
    if opt.rule != SGD and (opt.grad == NULL or opt.v == NULL or
                            (opt.rule == ADAM and opt.r == NULL)):
        raise ValueError("this rule needs its state buffers")
    shares = <double*> calloc(n_threads, sizeof(double))
    if shares == NULL:
        raise MemoryError()
    stop[0] = stop[1] = 0
    catch_sigint = catch_sigint and _catch_sigint() == 0
    try:
        with nogil, parallel(num_threads=n_threads):
            t = _thread()
            shares[t] = _train_epoch(&theta[0], &sizes[0], &acts[0], cost, L, &X[0, 0], &Y[0, 0],
                                     &order[0], order.shape[0], batch, &opt, steps, &Xb[0],
                                     &Yb[0], &A[0], &S[0], &T[0], stop, backup_ptr, &diverged,
                                     t, _n_threads())
        for t in range(n_threads):              # in a fixed order: reproducible
            sum_C += shares[t]
    finally:
        if catch_sigint:
            _release_sigint()
        free(shares)
    if stop[0] or stop[1]:
        raise KeyboardInterrupt("training interrupted at a mini-batch boundary")
    if backup is not None:
        return sum_C, diverged
    return sum_C
