"""Fast kernels of bpfast: the forward pass, the backward pass and the gradient of a batch.

Design
1. The parameters θ live in one contiguous vector in the slides' order: w^(1) (row-major,
   shape (n_1, n_0)), b^(1), w^(2), b^(2), …, w^(L), b^(L). `sizes` = [n_0, …, n_L] gives every
   offset. A gradient has the same layout, so ∇C is written straight into its final place.
2. A batch is row-major, one example per row. Matrix products are BLAS GEMMs from
   scipy.linalg.cython_blas. BLAS is column-major, so a row-major matrix M is handed over as Mᵀ
   and the operands swap: Z = A wᵀ is computed as Zᵀ = w Aᵀ.
3. Per-layer batch buffers are flat too: layer l's block of shape (n, n_l) starts at
   n · (n_1 + … + n_{l−1}). Z holds z^(l), A holds a^(l) (a^(0) is X itself), S holds σ'(z^(l))
   and is overwritten, layer by layer from the top, with δ^(l) = ∂C_0/∂z^(l).
4. `cdef … noexcept nogil` functions over `floating` do the arithmetic; the `def` twins at the
   bottom release the GIL around them. Nothing here checks its arguments: bpfast.network
   validates every shape, dtype and value before calling in.
"""
from libc.math cimport exp, expf, fabs, fabsf
from scipy.linalg.cython_blas cimport dgemm, sgemm
from cython cimport floating


# --- one neuron: the activation and its slope --------------------------------------------------

cdef inline void _sigmoid(floating z, floating* a, floating* slope) noexcept nogil:
    """a = σ(z) = 1 / (1 + e^(−z));  slope = σ'(z) = e^(−|z|) / (1 + e^(−|z|))²"""
    # Both come from e = e^(−|z|) ≤ 1, so nothing overflows: σ(−1000) = 0 and σ(1000) = 1
    # exactly, and the slope keeps its full relative precision where σ saturates.
    cdef floating e, inv
    if floating is float:
        e = expf(-fabsf(z))
    else:
        e = exp(-fabs(z))
    inv = 1 / (1 + e)
    a[0] = inv if z >= 0 else e * inv
    if slope != NULL:
        slope[0] = e * inv * inv


# --- BLAS ----------------------------------------------------------------------------------------

cdef inline void _gemm(char transa, char transb, int m, int n, int k,
                       floating alpha, const floating* A, int lda,
                       const floating* B, int ldb,
                       floating beta, floating* C, int ldc) noexcept nogil:
    """C := alpha · op(A) · op(B) + beta · C   (column-major, as BLAS sees it)"""
    if floating is double:
        dgemm(&transa, &transb, &m, &n, &k, &alpha, <double*> A, &lda,
              <double*> B, &ldb, &beta, C, &ldc)
    else:
        sgemm(&transa, &transb, &m, &n, &k, &alpha, <float*> A, &lda,
              <float*> B, &ldb, &beta, C, &ldc)


# --- the layers ----------------------------------------------------------------------------------

cdef inline Py_ssize_t _n_params(const Py_ssize_t* sizes, int L) noexcept nogil:
    """P = Σ_l n_l (n_{l−1} + 1), the length of ∇C"""
    cdef Py_ssize_t P = 0
    cdef int l
    for l in range(1, L + 1):
        P += sizes[l] * (sizes[l - 1] + 1)
    return P


cdef void _forward(const floating* theta, const Py_ssize_t* sizes, int L, Py_ssize_t n,
                   const floating* X, floating* Z, floating* A, floating* S) noexcept nogil:
    """z^(l) = a^(l−1) w^(l)ᵀ + b^(l),  a^(l) = σ(z^(l)),  S ← σ'(z^(l)) for l = 1..L (rows = examples)

    S may be NULL (no slopes wanted) or equal to Z (the slopes replace z, which the backward
    pass does not need).
    """
    cdef const floating* w
    cdef const floating* b
    cdef const floating* a_prev = X
    cdef floating* z
    cdef floating* a
    cdef floating* s
    cdef Py_ssize_t offset = 0, block = 0, k, j, i, n_out, n_in
    cdef int l
    for l in range(1, L + 1):
        n_in = sizes[l - 1]
        n_out = sizes[l]
        w = theta + offset
        b = w + n_out * n_in
        offset += n_out * (n_in + 1)
        z = Z + block
        a = A + block
        s = S + block if S != NULL else NULL
        block += n * n_out

        for k in range(n):                      # z ← b, then z += a_prev wᵀ
            for j in range(n_out):
                z[k * n_out + j] = b[j]
        _gemm(c'T', c'N', <int> n_out, <int> n, <int> n_in,
              1, w, <int> n_in, a_prev, <int> n_in, 1, z, <int> n_out)
        if s != NULL:
            for i in range(n * n_out):
                _sigmoid(z[i], &a[i], &s[i])
        else:
            for i in range(n * n_out):
                _sigmoid(z[i], &a[i], <floating*> NULL)
        a_prev = a


cdef void _backward(const floating* theta, const Py_ssize_t* sizes, int L, Py_ssize_t n,
                    const floating* X, const floating* Y, const floating* A, floating* S,
                    floating* T, floating* grad, bint per_example) noexcept nogil:
    """δ^(L) = σ'(z^(L)) ⊙ 2(a^(L) − y),  δ^(l−1) = σ'(z^(l−1)) ⊙ δ^(l) w^(l),
    ∂C/∂w^(l) = (1/n) Σ_k δ_k^(l) a_k^(l−1)ᵀ,  ∂C/∂b^(l) = (1/n) Σ_k δ_k^(l)

    On entry S holds the slopes σ'(z^(l)) from `_forward`; it is overwritten with δ^(l).
    T is scratch of n × max(n_1, …, n_{L−1}). With `per_example`, grad has n rows of length P
    and row k receives ∂C_k/∂θ instead of the mean being accumulated.
    """
    cdef Py_ssize_t P = _n_params(sizes, L)
    cdef Py_ssize_t k, j, i, n_out, n_in, w_offset, b_offset
    cdef Py_ssize_t block = 0
    cdef const floating* a_prev
    cdef const floating* a
    cdef floating* delta
    cdef floating* delta_below
    cdef floating* g
    cdef floating d
    cdef floating inv_n = (<floating> 1) / n
    cdef int l

    for l in range(1, L):
        block += n * sizes[l]
    w_offset = P

    # δ^(L) = σ'(z^(L)) ⊙ ∂C_0/∂a^(L), with ∂C_0/∂a^(L) = 2(a^(L) − y): link 2 times link 3.
    n_out = sizes[L]
    delta = S + block
    a = A + block
    for i in range(n * n_out):
        delta[i] = delta[i] * 2 * (a[i] - Y[i])

    for l in range(L, 0, -1):
        n_out = sizes[l]
        n_in = sizes[l - 1]
        w_offset -= n_out * (n_in + 1)
        b_offset = w_offset + n_out * n_in
        delta = S + block
        if l > 1:
            block -= n * n_in
            a_prev = A + block
        else:
            a_prev = X

        # Link 1: ∂z_j/∂w_jk = a_k^(l−1) and ∂z_j/∂b_j = 1.
        if per_example:
            for k in range(n):
                g = grad + k * P
                for j in range(n_out):
                    d = delta[k * n_out + j]
                    for i in range(n_in):
                        g[w_offset + j * n_in + i] = d * a_prev[k * n_in + i]
                    g[b_offset + j] = d
        else:
            _gemm(c'N', c'T', <int> n_in, <int> n_out, <int> n,
                  inv_n, a_prev, <int> n_in, delta, <int> n_out, 0, grad + w_offset, <int> n_in)
            for j in range(n_out):
                grad[b_offset + j] = 0
            for k in range(n):
                for j in range(n_out):
                    grad[b_offset + j] += delta[k * n_out + j]
            for j in range(n_out):
                grad[b_offset + j] *= inv_n

        if l > 1:
            # The sum over j: ∂C_0/∂a_k^(l−1) = Σ_j w_jk^(l) δ_j^(l), then times σ'(z_k^(l−1)).
            _gemm(c'N', c'N', <int> n_in, <int> n, <int> n_out,
                  1, theta + w_offset, <int> n_in, delta, <int> n_out, 0, T, <int> n_in)
            delta_below = S + block
            for i in range(n * n_in):
                delta_below[i] = delta_below[i] * T[i]


# --- Python-visible twins ------------------------------------------------------------------------

def sigmoid(const floating[::1] z, floating[::1] a, floating[::1] slope):
    """a ← σ(z), slope ← σ'(z), elementwise."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(z.shape[0]):
            _sigmoid(z[i], &a[i], &slope[i])


def forward(const floating[::1] theta, const Py_ssize_t[::1] sizes, const floating[:, ::1] X,
            floating[::1] Z, floating[::1] A):
    """Z ← z^(1..L), A ← a^(1..L) for the batch X (flat per-layer blocks, see Design 3)."""
    cdef int L = <int> sizes.shape[0] - 1
    with nogil:
        _forward(&theta[0], &sizes[0], L, X.shape[0], &X[0, 0], &Z[0], &A[0], <floating*> NULL)


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
        _forward(&theta[0], &sizes[0], L, n, &X[0, 0], &S[0], &A[0], &S[0])
        _backward(&theta[0], &sizes[0], L, n, &X[0, 0], &Y[0, 0], &A[0], &S[0], &T[0],
                  &grad[0], per_example)
