/* Small matrix products for mini-batches of a few dozen examples, where BLAS spends more time
 * packing its operands than multiplying them (see _kernels.pyx, Design 5).
 *
 * Three products, each on row-major operands whose rows are contiguous along i:
 *   abt:  Z[k,j]  = Σ_i A[k,i] W[j,i]                   z = a wᵀ         (forward pass)
 *   atb:  W[j,i]  = β W[j,i] + α Σ_k D[k,j] A[k,i]      ∂C/∂w = δᵀ a     (gradient or step)
 *         or, with a velocity Vel laid out as W, a momentum step from g = α Σ_k D[k,j] A[k,i]
 *         (+ λ W[j,i]): Vel ← μ Vel + g, W ← W − η Vel (Nesterov: W ← W − η (g + μ Vel)),
 *         applied while g is in registers, so that ∂C/∂w never goes to memory
 *   ab:   T[k,i]  = Σ_j D[k,j] W[j,i]                   δ w              (the sum over j)
 * k runs over examples, j over the neurons of a layer, i over the neurons of the layer below.
 *
 * Written with GCC's vector extensions: each function is compiled twice, for x86-64-v3 (AVX2 and
 * FMA) and for the baseline, and the loader picks the one the CPU runs (target_clones), so a
 * wheel stays portable. Elsewhere the same code compiles once for the baseline.
 */
#ifndef BPFAST_MICROKERNELS_H
#define BPFAST_MICROKERNELS_H

#include <stddef.h>
#include <string.h>

#include "_clones.h"
#include "_rules.h"             /* bpfast_hyper: the momentum step of the epilogue */
/* Columns i per cache block: 2 KiB of each row, so that a block of every example of a
 * mini-batch (up to SMALL_BATCH of them) and of a few weight rows share the 32 KiB of L1. */
#define BPFAST_CHUNK(T) ((ptrdiff_t)(2048 / sizeof(T)))

/* BPFAST_DEFINE(T, V, LANES, SUFFIX) defines the three products for element type T, with V a
 * 32-byte vector of LANES elements; SUFFIX names them (d: double, s: float). Register blocks:
 * abt 3 examples × 4 neurons (12), atb 4 neurons × 2 vectors, ab 4 examples × 2 vectors (8)
 * accumulators, which leaves registers for the operands. */
#define BPFAST_DEFINE(T, V, LANES, SUFFIX)                                                       \
typedef T V __attribute__((vector_size(32)));                                                    \
                                                                                                 \
BPFAST_INLINE V bpfast_load_##SUFFIX(const T* p) { V v; memcpy(&v, p, sizeof v); return v; }    \
BPFAST_INLINE void bpfast_store_##SUFFIX(T* p, V v) { memcpy(p, &v, sizeof v); }                \
BPFAST_INLINE V bpfast_splat_##SUFFIX(T x) { V v; for (int l = 0; l < LANES; l++) v[l] = x; return v; } \
BPFAST_INLINE T bpfast_hsum_##SUFFIX(V v) {                                                      \
    T s = 0; for (int l = 0; l < LANES; l++) s += v[l]; return s;                               \
}                                                                                                \
                                                                                                 \
/* Z[r,c] (= if first, else +=) Σ_i A[r,i] W[c,i] over this chunk of i, r < R, c < C. */                                              \
BPFAST_INLINE void bpfast_abt_block_##SUFFIX(int R, int C, int first, ptrdiff_t ni,              \
        const T* A, ptrdiff_t lda, const T* W, ptrdiff_t ldw, T* Z, ptrdiff_t ldz) {             \
    V acc[3][4];                                                                                 \
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) acc[r][c] = bpfast_splat_##SUFFIX(0); \
    ptrdiff_t i = 0;                                                                             \
    for (; i + LANES <= ni; i += LANES) {                                                        \
        V a[3], w[4];                                                                            \
        for (int r = 0; r < R; r++) a[r] = bpfast_load_##SUFFIX(A + r * lda + i);                \
        for (int c = 0; c < C; c++) w[c] = bpfast_load_##SUFFIX(W + c * ldw + i);                \
        for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) acc[r][c] += a[r] * w[c];       \
    }                                                                                            \
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) {                                    \
        T s = bpfast_hsum_##SUFFIX(acc[r][c]);                                                   \
        for (ptrdiff_t ii = i; ii < ni; ii++) s += A[r * lda + ii] * W[c * ldw + ii];            \
        Z[r * ldz + c] = first ? s : Z[r * ldz + c] + s;                                         \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
BPFAST_CLONES void bpfast_abt_##SUFFIX(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni,                  \
        const T* A, ptrdiff_t lda, const T* W, ptrdiff_t ldw, T* Z, ptrdiff_t ldz) {             \
    /* A chunk of i: the chunk of every example of A stays in L1 while the neurons go by. */    \
    for (ptrdiff_t i0 = 0; i0 < ni; i0 += BPFAST_CHUNK(T)) {                                     \
        ptrdiff_t len = ni - i0 < BPFAST_CHUNK(T) ? ni - i0 : BPFAST_CHUNK(T);                   \
        for (ptrdiff_t j = 0; j < nj; j += 4) {                                                  \
            const T* w = W + j * ldw + i0;                                                       \
            for (ptrdiff_t k = 0; k < m; k += 3) {                                               \
                const T* a = A + k * lda + i0;                                                   \
                T* z = Z + k * ldz + j;                                                          \
                int R = m - k < 3 ? (int)(m - k) : 3, C = nj - j < 4 ? (int)(nj - j) : 4;          \
                switch (R * 4 + C) {                                                             \
                case 13: bpfast_abt_block_##SUFFIX(3, 1, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 14: bpfast_abt_block_##SUFFIX(3, 2, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 15: bpfast_abt_block_##SUFFIX(3, 3, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 16: bpfast_abt_block_##SUFFIX(3, 4, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 9: bpfast_abt_block_##SUFFIX(2, 1, i0 == 0, len, a, lda, w, ldw, z, ldz); break;     \
                case 10: bpfast_abt_block_##SUFFIX(2, 2, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 11: bpfast_abt_block_##SUFFIX(2, 3, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 12: bpfast_abt_block_##SUFFIX(2, 4, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                case 5: bpfast_abt_block_##SUFFIX(1, 1, i0 == 0, len, a, lda, w, ldw, z, ldz); break;     \
                case 6: bpfast_abt_block_##SUFFIX(1, 2, i0 == 0, len, a, lda, w, ldw, z, ldz); break;     \
                case 7: bpfast_abt_block_##SUFFIX(1, 3, i0 == 0, len, a, lda, w, ldw, z, ldz); break;     \
                default: bpfast_abt_block_##SUFFIX(1, 4, i0 == 0, len, a, lda, w, ldw, z, ldz); break;    \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* W[c,i] = β W[c,i] + α Σ_k D[k,c] A[k,i] for c < C and the 2·LANES columns i from here; with  \
 * Vel, the momentum (or Nesterov) step of h instead. */                                       \
BPFAST_INLINE void bpfast_atb_block_##SUFFIX(int C, ptrdiff_t m, T alpha, T beta,                \
        const T* D, ptrdiff_t ldd, const T* A, ptrdiff_t lda, T* W, ptrdiff_t ldw,               \
        T* Vel, const bpfast_hyper_##SUFFIX* h) {                                                \
    V acc[4][2];                                                                                 \
    for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = bpfast_splat_##SUFFIX(0);                \
    for (ptrdiff_t k = 0; k < m; k++) {                                                          \
        V a0 = bpfast_load_##SUFFIX(A + k * lda), a1 = bpfast_load_##SUFFIX(A + k * lda + LANES); \
        for (int c = 0; c < C; c++) {                                                            \
            V d = bpfast_splat_##SUFFIX(D[k * ldd + c]);                                         \
            acc[c][0] += d * a0;                                                                 \
            acc[c][1] += d * a1;                                                                 \
        }                                                                                        \
    }                                                                                            \
    V va = bpfast_splat_##SUFFIX(alpha), vb = bpfast_splat_##SUFFIX(beta);                      \
    if (Vel) {                                                                                   \
        V eta = bpfast_splat_##SUFFIX(h->eta), mu = bpfast_splat_##SUFFIX(h->mu);                \
        V l2 = bpfast_splat_##SUFFIX(h->l2);                                                     \
        int nesterov = h->rule == BPFAST_NESTEROV;                                               \
        for (int c = 0; c < C; c++) for (int v = 0; v < 2; v++) {                                \
            T* w = W + c * ldw + v * LANES;                                                      \
            T* u = Vel + c * ldw + v * LANES;                                                    \
            V w_now = bpfast_load_##SUFFIX(w);                                                   \
            V g = va * acc[c][v] + l2 * w_now;                                                   \
            V velocity = mu * bpfast_load_##SUFFIX(u) + g;                                       \
            bpfast_store_##SUFFIX(u, velocity);                                                  \
            bpfast_store_##SUFFIX(w, w_now - eta * (nesterov ? g + mu * velocity : velocity));   \
        }                                                                                        \
        return;                                                                                  \
    }                                                                                            \
    for (int c = 0; c < C; c++) for (int v = 0; v < 2; v++) {                                    \
        T* w = W + c * ldw + v * LANES;                                                          \
        /* β = 0 must not read W: it may hold anything, NaN included. */                        \
        bpfast_store_##SUFFIX(w, beta == 0 ? va * acc[c][v]                                      \
                                           : vb * bpfast_load_##SUFFIX(w) + va * acc[c][v]);     \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
BPFAST_CLONES void bpfast_atb_##SUFFIX(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, T alpha, T beta, \
        const T* D, ptrdiff_t ldd, const T* A, ptrdiff_t lda, T* W, ptrdiff_t ldw,               \
        T* Vel, const bpfast_hyper_##SUFFIX* h) {                                                \
    for (ptrdiff_t i0 = 0; i0 < ni; i0 += BPFAST_CHUNK(T)) {                                     \
        ptrdiff_t end = ni - i0 < BPFAST_CHUNK(T) ? ni : i0 + BPFAST_CHUNK(T), i;                \
        for (ptrdiff_t j = 0; j < nj; j += 4) {                                                  \
            int C = nj - j < 4 ? (int)(nj - j) : 4;                                              \
            const T* d = D + j;                                                                  \
            for (i = i0; i + 2 * LANES <= end; i += 2 * LANES) {                                 \
                T* w = W + j * ldw + i;                                                          \
                switch (C) {                                                                     \
                case 1: bpfast_atb_block_##SUFFIX(1, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break; \
                case 2: bpfast_atb_block_##SUFFIX(2, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break; \
                case 3: bpfast_atb_block_##SUFFIX(3, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break; \
                default: bpfast_atb_block_##SUFFIX(4, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break; \
                }                                                                                \
            }                                                                                    \
            for (int c = 0; c < C; c++) for (ptrdiff_t ii = i; ii < end; ii++) {                 \
                T s = 0;                                                                         \
                for (ptrdiff_t k = 0; k < m; k++) s += d[k * ldd + c] * A[k * lda + ii];         \
                T* w = W + (j + c) * ldw + ii;                                                   \
                if (Vel) {                                                                       \
                    T* u = Vel + (w - W);                                                        \
                    T g = alpha * s + h->l2 * *w;                                                \
                    *u = h->mu * *u + g;                                                         \
                    *w -= h->eta * (h->rule == BPFAST_NESTEROV ? g + h->mu * *u : *u);           \
                } else {                                                                         \
                    *w = beta == 0 ? alpha * s : beta * *w + alpha * s;                          \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* T[r,i] = Σ_j D[r,j] W[j,i] for r < R and the 2·LANES columns i from here. */                 \
BPFAST_INLINE void bpfast_ab_block_##SUFFIX(int R, ptrdiff_t nj,                                 \
        const T* D, ptrdiff_t ldd, const T* W, ptrdiff_t ldw, T* Tout, ptrdiff_t ldt) {          \
    V acc[4][2];                                                                                 \
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = bpfast_splat_##SUFFIX(0);                \
    for (ptrdiff_t j = 0; j < nj; j++) {                                                         \
        V w0 = bpfast_load_##SUFFIX(W + j * ldw), w1 = bpfast_load_##SUFFIX(W + j * ldw + LANES); \
        for (int r = 0; r < R; r++) {                                                            \
            V d = bpfast_splat_##SUFFIX(D[r * ldd + j]);                                         \
            acc[r][0] += d * w0;                                                                 \
            acc[r][1] += d * w1;                                                                 \
        }                                                                                        \
    }                                                                                            \
    for (int r = 0; r < R; r++) {                                                                \
        bpfast_store_##SUFFIX(Tout + r * ldt, acc[r][0]);                                        \
        bpfast_store_##SUFFIX(Tout + r * ldt + LANES, acc[r][1]);                                \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
BPFAST_CLONES void bpfast_ab_##SUFFIX(ptrdiff_t m, ptrdiff_t ni, ptrdiff_t nj,                   \
        const T* D, ptrdiff_t ldd, const T* W, ptrdiff_t ldw, T* Tout, ptrdiff_t ldt) {          \
    ptrdiff_t k = 0, i;                                                                          \
    for (; k < m; k += 4) {                                                                      \
        int R = m - k < 4 ? (int)(m - k) : 4;                                                    \
        const T* d = D + k * ldd;                                                                \
        for (i = 0; i + 2 * LANES <= ni; i += 2 * LANES) {                                       \
            T* t = Tout + k * ldt + i;                                                           \
            switch (R) {                                                                         \
            case 1: bpfast_ab_block_##SUFFIX(1, nj, d, ldd, W + i, ldw, t, ldt); break;          \
            case 2: bpfast_ab_block_##SUFFIX(2, nj, d, ldd, W + i, ldw, t, ldt); break;          \
            case 3: bpfast_ab_block_##SUFFIX(3, nj, d, ldd, W + i, ldw, t, ldt); break;          \
            default: bpfast_ab_block_##SUFFIX(4, nj, d, ldd, W + i, ldw, t, ldt); break;         \
            }                                                                                    \
        }                                                                                        \
        for (int r = 0; r < R; r++) for (ptrdiff_t ii = i; ii < ni; ii++) {                     \
            T s = 0;                                                                             \
            for (ptrdiff_t j = 0; j < nj; j++) s += d[r * ldd + j] * W[j * ldw + ii];           \
            Tout[(k + r) * ldt + ii] = s;                                                        \
        }                                                                                        \
    }                                                                                            \
}

BPFAST_DEFINE(double, bpfast_v4d, 4, d)
BPFAST_DEFINE(float, bpfast_v8f, 8, s)

#endif
