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
   n · (n_1 + … + n_{l−1}). Z holds z^(l), A holds a^(l) (a^(0) is X itself), S holds σ'(z^(l))
   and is overwritten, layer by layer from the top, with δ^(l) = ∂C_0/∂z^(l).
4. Threads share a mini-batch by neurons: in every layer, thread t of n_threads owns a contiguous
   range of neurons j, computes their z_j, a_j, δ_j and updates their row w_j and b_j; BLAS is
   called single-threaded on those sub-blocks. `_barrier()` separates the phases that read what
   other threads wrote. Each neuron's arithmetic is done by one thread in a fixed order, so a
   given n_threads gives bitwise-reproducible results. Outside a parallel region (or built
   without OpenMP) the same code runs with n_threads = 1 and the barriers do nothing.
5. Mini-batches of fewer than SMALL_BATCH examples use the small products of _microkernels.h
   (AVX2/FMA where the CPU has it, chosen at load time) instead of BLAS, whose packing of the
   operands costs more than the arithmetic at that size; larger ones go to BLAS.
6. `cdef … noexcept nogil` functions over `floating` do the arithmetic; the `def` twins at the
   bottom release the GIL around them. Nothing here checks its arguments: bpfast.network and
   bpfast.training validate every shape, dtype and value before calling in.
"""
from cython.parallel cimport parallel
from libc.math cimport fabs, fabsf, isfinite
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


# --- one neuron: the activation and its slope --------------------------------------------------

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* 2^n, for an integer n held in the low bits of t's mantissa (see _exp_negative):
       n + bias, shifted into the exponent field. memcpy is how C spells a bit cast. */
    static inline double bpfast_pow2_from_low_bits(double t) {
        uint64_t bits; memcpy(&bits, &t, 8);
        bits = (bits + 1023u) << 52;
        double r; memcpy(&r, &bits, 8); return r;
    }
    static inline float bpfast_pow2_from_low_bits_f(float t) {
        uint32_t bits; memcpy(&bits, &t, 4);
        bits = (bits + 127u) << 23;
        float r; memcpy(&r, &bits, 4); return r;
    }
    """
    double _pow2_from_low_bits "bpfast_pow2_from_low_bits" (double t) noexcept nogil
    float _pow2_from_low_bits_f "bpfast_pow2_from_low_bits_f" (float t) noexcept nogil


cdef inline floating _exp_negative(floating x) noexcept nogil:
    """e^x for x ≤ 0, within a few ulp; 0 where e^x is below the smallest normal number"""
    # Written without calls or tables so that the compiler vectorizes the loops that use it:
    # e^x = 2^n e^r with n = round(x / ln 2) and |r| ≤ ln(2)/2, e^r by its Taylor series (to
    # r^13 in float64, r^7 in float32: truncation below half an ulp). Adding 1.5·2^52 (2^23)
    # rounds x / ln 2 to an integer n that then sits in the low bits of t.
    cdef floating t, n, r, p, e
    if floating is double:
        t = x * 1.4426950408889634 + 6755399441055744.0
        n = t - 6755399441055744.0
        r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        e = p * _pow2_from_low_bits(t)
        return 0.0 if x < -708.0 else e        # NaN falls through: it must propagate
    else:
        # The same in float arithmetic: every constant is cast, or C would compute in double.
        t = x * <float> 1.44269504 + <float> 12582912.0
        n = t - <float> 12582912.0
        r = (x - n * <float> 0.693359375) + n * <float> 2.12194440e-4
        p = <float> (1.0 / 5040.0)
        p = p * r + <float> (1.0 / 720.0)
        p = p * r + <float> (1.0 / 120.0)
        p = p * r + <float> (1.0 / 24.0)
        p = p * r + <float> (1.0 / 6.0)
        p = p * r + <float> 0.5
        p = p * r + <float> 1.0
        p = p * r + <float> 1.0
        e = p * _pow2_from_low_bits_f(t)
        return <float> 0.0 if x < <float> -87.0 else e


cdef inline void _sigmoid(floating z, floating* a, floating* slope) noexcept nogil:
    """a = σ(z) = 1 / (1 + e^(−z));  slope = σ'(z) = e^(−|z|) / (1 + e^(−|z|))²"""
    # Both come from e = e^(−|z|) ≤ 1, so nothing overflows: σ(−1000) = 0 and σ(1000) = 1
    # exactly, and the slope keeps its full relative precision where σ saturates. Both
    # candidates for a are computed before one is picked: a branch-free body vectorizes.
    cdef floating e, inv, a_negative
    if floating is double:
        e = _exp_negative(-fabs(z))
    else:
        e = _exp_negative(-fabsf(z))
    inv = (<floating> 1) / ((<floating> 1) + e)
    a_negative = e * inv
    a[0] = inv if z >= 0 else a_negative
    slope[0] = a_negative * inv


cdef inline void _activate(floating* z, const floating* b, floating* a, floating* s,
                           Py_ssize_t count) noexcept nogil:
    """z ← z + b,  a = σ(z),  s = σ'(z), elementwise over `count` neurons (s may be z itself)"""
    # Two loops, so that the compiler sees when s is z and vectorizes the in-place one too.
    cdef Py_ssize_t i
    cdef floating z_i
    if s == z:
        for i in range(count):
            _sigmoid(z[i] + b[i], &a[i], &z[i])
    else:
        for i in range(count):
            z_i = z[i] + b[i]
            z[i] = z_i
            _sigmoid(z_i, &a[i], &s[i])


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

cdef extern from "_microkernels.h":
    void bpfast_abt_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const double* A, Py_ssize_t lda,
                      const double* W, Py_ssize_t ldw, double* Z, Py_ssize_t ldz) noexcept nogil
    void bpfast_abt_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, const float* A, Py_ssize_t lda,
                      const float* W, Py_ssize_t ldw, float* Z, Py_ssize_t ldz) noexcept nogil
    void bpfast_atb_d(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, double alpha, double beta,
                      const double* D, Py_ssize_t ldd, const double* A, Py_ssize_t lda,
                      double* W, Py_ssize_t ldw) noexcept nogil
    void bpfast_atb_s(Py_ssize_t m, Py_ssize_t nj, Py_ssize_t ni, float alpha, float beta,
                      const float* D, Py_ssize_t ldd, const float* A, Py_ssize_t lda,
                      float* W, Py_ssize_t ldw) noexcept nogil
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
        bpfast_atb_d(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw)
    else:
        bpfast_atb_s(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw)


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


cdef void _forward(const floating* theta, const Py_ssize_t* sizes, int L, Py_ssize_t n,
                   const floating* X, floating* Z, floating* A, floating* S,
                   int thread, int n_threads) noexcept nogil:
    """z^(l) = a^(l−1) w^(l)ᵀ + b^(l),  a^(l) = σ(z^(l)),  S ← σ'(z^(l)) for l = 1..L (rows = examples)

    S may equal Z (the slopes replace z, which the backward pass does not need). The thread
    computes its own neurons of every layer.
    """
    cdef const floating* w
    cdef const floating* b
    cdef const floating* a_prev = X
    cdef floating* z
    cdef floating* a
    cdef floating* s
    cdef Py_ssize_t offset = 0, block = 0, k, j, j0, j1, n_out, n_in
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
            _activate(z + k * n_out + j0, b + j0, a + k * n_out + j0, s + k * n_out + j0, j1 - j0)
        if l < L:
            _barrier()                          # the next layer reads every a_j
        a_prev = a


cdef inline void _add_column_sums(floating* out, const floating* M, Py_ssize_t rows,
                                  Py_ssize_t cols, Py_ssize_t j0, Py_ssize_t j1,
                                  floating scale) noexcept nogil:
    """out_j += scale · Σ_k M_kj for j0 ≤ j < j1   (M row-major, rows × cols)"""
    cdef Py_ssize_t k, j
    cdef floating total
    for j in range(j0, j1):
        total = 0
        for k in range(rows):
            total += M[k * cols + j]
        out[j] += scale * total


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


cdef void _link_one(floating* grad, Py_ssize_t P, const Py_ssize_t* sizes, int l, Py_ssize_t n,
                    const floating* X, const floating* A, const floating* S, Mode mode,
                    floating eta, int thread, int n_threads) noexcept nogil:
    """∂C/∂w_ji^(l) = (1/n) Σ_k δ_kj^(l) a_ki^(l−1),  ∂C/∂b_j^(l) = (1/n) Σ_k δ_kj^(l), own rows j

    Link 1 of the chain: ∂z_j/∂w_ji = a_i^(l−1) and ∂z_j/∂b_j = 1. S holds δ^(l); `mode` says
    where the result goes (see Mode); P is the length of a per-example gradient row.
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
    cdef floating inv_n = (<floating> 1) / n
    cdef floating scale = -eta * inv_n if mode == STEP else inv_n
    if mode == PER_EXAMPLE:
        for k in range(n):
            g = grad + k * P
            for j in range(j0, j1):
                d = delta[k * n_out + j]
                for i in range(n_in):
                    g[w_offset + j * n_in + i] = d * a_prev[k * n_in + i]
                g[b_offset + j] = d
        return
    _w_is_beta_w_plus_alpha_dT_a(n, j1 - j0, n_in, scale, 1 if mode == STEP else 0,
                                 delta + j0, n_out, a_prev, n_in, grad + w_offset + j0 * n_in,
                                 n_in)
    g = grad + b_offset
    if mode == MEAN:
        for j in range(j0, j1):
            g[j] = 0
    _add_column_sums(g, delta, n, n_out, j0, j1, scale)


cdef double _backward(const floating* theta, const Py_ssize_t* sizes, int L, Py_ssize_t n,
                      const floating* X, const floating* Y, const floating* A, floating* S,
                      floating* T, floating* grad, Mode mode, floating eta,
                      int thread, int n_threads) noexcept nogil:
    """δ^(L) = σ'(z^(L)) ⊙ 2(a^(L) − y),  δ^(l−1) = σ'(z^(l−1)) ⊙ δ^(l) w^(l), then `_link_one`
    for every layer; returns Σ_k C_k over the thread's own output neurons.

    On entry S holds the slopes σ'(z^(l)) from `_forward`; it is overwritten with δ^(l).
    T is scratch of n × max(n_1, …, n_{L−1}). δ^(l−1) is computed from w^(l) before w^(l)
    changes, as gradient descent requires: layer l's own rows are updated only after the barrier
    that follows every thread's use of w^(l), the one that also gathers δ^(l−1).
    """
    cdef Py_ssize_t P = _n_params(sizes, L)
    cdef Py_ssize_t k, j, i, j0, j1, i0, i1, n_out, n_in
    cdef const floating* a
    cdef floating* delta
    cdef floating* delta_below
    cdef floating error
    cdef double sum_C = 0
    cdef int l

    # δ^(L) = σ'(z^(L)) ⊙ ∂C_0/∂a^(L), with ∂C_0/∂a^(L) = 2(a^(L) − y): link 2 times link 3.
    n_out = sizes[L]
    delta = S + _block(sizes, L, n)
    a = A + _block(sizes, L, n)
    j0 = _first(n_out, thread, n_threads)
    j1 = _first(n_out, thread + 1, n_threads)
    for k in range(n):
        for j in range(j0, j1):
            i = k * n_out + j
            error = a[i] - Y[i]
            sum_C += error * error
            delta[i] = delta[i] * 2 * error

    for l in range(L, 1, -1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        i0 = _first(n_in, thread, n_threads)
        i1 = _first(n_in, thread + 1, n_threads)
        delta = S + _block(sizes, l, n)
        delta_below = S + _block(sizes, l - 1, n)
        _barrier()                              # every δ^(l) is ready; w^(l+1) is read no more
        if l < L:
            _link_one(grad, P, sizes, l + 1, n, X, A, S, mode, eta, thread, n_threads)
        # The sum over j: ∂C_0/∂a_i^(l−1) = Σ_j w_ji^(l) δ_j^(l) for the thread's own i, into T,
        # then times link 2 of the layer below: δ_i^(l−1) = σ'(z_i^(l−1)) · T_i.
        _t_is_d_w(n, i1 - i0, n_out, delta, n_out, theta + _w_offset(sizes, l) + i0, n_in,
                  T + i0, n_in)
        for k in range(n):
            for i in range(i0, i1):
                delta_below[k * n_in + i] *= T[k * n_in + i]
    if L > 1:
        _barrier()                              # w^(2) is read no more
        _link_one(grad, P, sizes, 2, n, X, A, S, mode, eta, thread, n_threads)
    _link_one(grad, P, sizes, 1, n, X, A, S, mode, eta, thread, n_threads)
    return sum_C


# --- training -------------------------------------------------------------------------------------

cdef double _train_epoch(floating* theta, const Py_ssize_t* sizes, int L,
                         const floating* X, const floating* Y, const Py_ssize_t* order,
                         Py_ssize_t N, Py_ssize_t batch, floating eta,
                         floating* Xb, floating* Yb, floating* A, floating* S, floating* T,
                         int* stop, floating* backup, Py_ssize_t* diverged,
                         int thread, int n_threads) noexcept nogil:
    """θ ← θ − η ∂C/∂θ for each mini-batch of `batch` examples taken in `order`; returns the
    thread's share of Σ_k C_k.

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
        _forward(theta, sizes, L, m, x, S, A, S, thread, n_threads)
        sum_C += _backward(theta, sizes, L, m, x, y, A, S, T, theta, STEP, eta,
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

def sigmoid(const floating[::1] z, floating[::1] a, floating[::1] slope):
    """a ← σ(z), slope ← σ'(z), elementwise."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(z.shape[0]):
            _sigmoid(z[i], &a[i], &slope[i])


def forward(const floating[::1] theta, const Py_ssize_t[::1] sizes, const floating[:, ::1] X,
            floating[::1] Z, floating[::1] A, floating[::1] S):
    """Z ← z^(1..L), A ← a^(1..L), S ← σ'(z^(1..L)) for the batch X (flat blocks, Design 3)."""
    cdef int L = <int> sizes.shape[0] - 1
    with nogil:
        _forward(&theta[0], &sizes[0], L, X.shape[0], &X[0, 0], &Z[0], &A[0], &S[0], 0, 1)


def gradient(const floating[::1] theta, const Py_ssize_t[::1] sizes,
             const floating[:, ::1] X, const floating[:, ::1] Y,
             floating[::1] A, floating[::1] S, floating[::1] T, floating[::1] grad,
             bint per_example):
    """grad ← ∂C/∂θ, the batch mean, or with `per_example` grad[k·P:(k+1)·P] ← ∂C_k/∂θ.

    A and S are work buffers of n · (n_1 + … + n_L) elements, T of n · max(n_1..n_{L−1}, 1).
    On return A holds the activations a^(1..L).
    """
    cdef int L = <int> sizes.shape[0] - 1
    cdef Py_ssize_t n = X.shape[0]
    with nogil:
        _forward(&theta[0], &sizes[0], L, n, &X[0, 0], &S[0], &A[0], &S[0], 0, 1)
        _backward(&theta[0], &sizes[0], L, n, &X[0, 0], &Y[0, 0], &A[0], &S[0], &T[0],
                  &grad[0], PER_EXAMPLE if per_example else MEAN, 0, 0, 1)


def train_epoch(floating[::1] theta, const Py_ssize_t[::1] sizes,
                const floating[:, ::1] X, const floating[:, ::1] Y, const Py_ssize_t[::1] order,
                Py_ssize_t batch, floating eta,
                floating[::1] Xb, floating[::1] Yb, floating[::1] A, floating[::1] S,
                floating[::1] T, int n_threads=1, bint catch_sigint=False,
                floating[::1] backup=None):
    """One epoch of mini-batch gradient descent on θ in place; returns Σ_k C_k over the epoch.

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
    cdef double* shares = <double*> calloc(n_threads, sizeof(double))
    cdef int stop[2]
    cdef Py_ssize_t diverged = 0
    cdef floating* backup_ptr = &backup[0] if backup is not None else NULL
    cdef double sum_C = 0
    cdef int t
    if shares == NULL:
        raise MemoryError()
    stop[0] = stop[1] = 0
    catch_sigint = catch_sigint and _catch_sigint() == 0
    try:
        with nogil, parallel(num_threads=n_threads):
            t = _thread()
            shares[t] = _train_epoch(&theta[0], &sizes[0], L, &X[0, 0], &Y[0, 0], &order[0],
                                     order.shape[0], batch, eta, &Xb[0], &Yb[0], &A[0], &S[0],
                                     &T[0], stop, backup_ptr, &diverged, t, _n_threads())
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
