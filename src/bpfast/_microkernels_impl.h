/* The three small products for one element type and one instruction set: included by
 * _dispatch.h once for each, with these defined (and undefined after):
 *
 *   T          the element type, double or float
 *   V, LANES   a 32-byte vector of T (_microkernels.h) and its number of elements
 *   HYPER      the rules' hyper-parameters for T (bpfast_hyper_d or _s, _rules.h)
 *   ISA_TARGET  the target attribute of the outer functions (empty for the baseline)
 *   NAME(x)    the name of function x for this type and instruction set
 *
 * What they compute is in _microkernels.h. No include guard: meant to be included again.
 */

/* atb's columns i per cache block: 2 KiB of each row, so that a block of every example of a
 * mini-batch (up to SMALL_BATCH of them) and of a few weight rows share the 32 KiB of L1. */
#define BPFAST_CHUNK ((ptrdiff_t)(2048 / sizeof(T)))

BPFAST_INLINE V NAME(load)(const T* p) { V v; memcpy(&v, p, sizeof v); return v; }
BPFAST_INLINE void NAME(store)(T* p, V v) { memcpy(p, &v, sizeof v); }
/* x in every lane: as an expression and not a function of its own, which gcc would lower to
 * 16-byte halves before inlining it into a function of x86-64-v3 (a load and an insert where
 * one broadcast does); x − (+0) is x, −0 included. */
#define BPFAST_SPLAT(x) ((T)(x) - (V){0})
BPFAST_INLINE T NAME(hsum)(V v) {
    T s = 0; for (int l = 0; l < LANES; l++) s += v[l]; return s;
}

/* The lanes' sums of four vectors, as four numbers — each pairwise, (l0 + l1) + (l2 + l3), and
 * of eight lanes that + ((l4 + l5) + (l6 + l7)) — by shuffles of whole vectors (a lane at a
 * time, GCC stored abt's 12 sums to memory and added them back one number at a time). */
BPFAST_INLINE void NAME(hsum4)(V a, V b, V c, V d, T out[4]) {
#if LANES == 4
    V t0 = BPFAST_SHUFFLE(a, b, bpfast_m4d, 0, 4, 2, 6)
         + BPFAST_SHUFFLE(a, b, bpfast_m4d, 1, 5, 3, 7);
    V t1 = BPFAST_SHUFFLE(c, d, bpfast_m4d, 0, 4, 2, 6)
         + BPFAST_SHUFFLE(c, d, bpfast_m4d, 1, 5, 3, 7);
    V s = BPFAST_SHUFFLE(t0, t1, bpfast_m4d, 0, 1, 4, 5)
        + BPFAST_SHUFFLE(t0, t1, bpfast_m4d, 2, 3, 6, 7);
    memcpy(out, &s, sizeof s);
#else
    V t0 = BPFAST_SHUFFLE(a, b, bpfast_m8f, 0, 8, 2, 10, 4, 12, 6, 14)
         + BPFAST_SHUFFLE(a, b, bpfast_m8f, 1, 9, 3, 11, 5, 13, 7, 15);
    V t1 = BPFAST_SHUFFLE(c, d, bpfast_m8f, 0, 8, 2, 10, 4, 12, 6, 14)
         + BPFAST_SHUFFLE(c, d, bpfast_m8f, 1, 9, 3, 11, 5, 13, 7, 15);
    V u = BPFAST_SHUFFLE(t0, t1, bpfast_m8f, 0, 1, 8, 9, 4, 5, 12, 13)
        + BPFAST_SHUFFLE(t0, t1, bpfast_m8f, 2, 3, 10, 11, 6, 7, 14, 15);
    T s[8];
    memcpy(s, &u, sizeof u);
    for (int q = 0; q < 4; q++) out[q] = s[q] + s[q + 4];
#endif
}

/* Z[r,c] (= if first, else +=) Σ_i A[r,i] W[c,i] over this chunk of i, r < R, c < C: the rows'
 * vectors in registers, and each vector of W loaded once and multiplied into all of them (12
 * sums, 3 rows and 1 of W: the 16 registers; multiplying W's 4 vectors into the rows instead,
 * GCC reloaded each for every row — 15 loads for 12 multiply-adds). */
BPFAST_INLINE void NAME(abt_block)(int R, int C, int first, ptrdiff_t ni,
        const T* A, ptrdiff_t lda, const T* W, ptrdiff_t ldw, T* Z, ptrdiff_t ldz) {
    V acc[3][4];
    for (int r = 0; r < 3; r++) for (int c = 0; c < 4; c++) acc[r][c] = BPFAST_SPLAT(0);
    ptrdiff_t i = 0;
    for (; i + LANES <= ni; i += LANES) {
        V a[3];
        for (int r = 0; r < R; r++) a[r] = NAME(load)(A + r * lda + i);
        for (int c = 0; c < C; c++) {
            V w = NAME(load)(W + c * ldw + i);
            for (int r = 0; r < R; r++) acc[r][c] += a[r] * w;
        }
    }
    for (int r = 0; r < R; r++) {
        T s[4];
        NAME(hsum4)(acc[r][0], acc[r][1], acc[r][2], acc[r][3], s);
        for (int c = 0; c < C; c++) {
            for (ptrdiff_t ii = i; ii < ni; ii++) s[c] += A[r * lda + ii] * W[c * ldw + ii];
            Z[r * ldz + c] = first ? s[c] : Z[r * ldz + c] + s[c];
        }
    }
}

/* abt's chunks of i: at most 8 KiB of each row, all of one length (a multiple of the vector's). */
#define BPFAST_ABT_CHUNK ((ptrdiff_t)(8192 / sizeof(T)))

ISA_TARGET static void NAME(abt)(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni,
        const T* A, ptrdiff_t lda, const T* W, ptrdiff_t ldw, T* Z, ptrdiff_t ldz) {
    /* A chunk of i at a time, each row's sums gathered at its end: chunks of 2 KiB (784 inputs:
     * three of 256 and one of 16) gathered too often — one thread, [784 → 100] float64 on 16
     * rows, 30.2 GFLOP/s; 4 KiB, 33.9; 8 KiB, 36.6 (4 KiB: two of 392, 8 KiB: one). */
    ptrdiff_t chunks = (ni + BPFAST_ABT_CHUNK - 1) / BPFAST_ABT_CHUNK;
    ptrdiff_t step = ((ni + chunks - 1) / chunks + LANES - 1) / LANES * LANES;
    for (ptrdiff_t i0 = 0; i0 < ni; i0 += step) {
        ptrdiff_t len = ni - i0 < step ? ni - i0 : step;
        for (ptrdiff_t j = 0; j < nj; j += 4) {
            const T* w = W + j * ldw + i0;
            for (ptrdiff_t k = 0; k < m; k += 3) {
                const T* a = A + k * lda + i0;
                T* z = Z + k * ldz + j;
                int R = m - k < 3 ? (int)(m - k) : 3, C = nj - j < 4 ? (int)(nj - j) : 4;
                switch (R * 4 + C) {
                case 13: NAME(abt_block)(3, 1, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 14: NAME(abt_block)(3, 2, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 15: NAME(abt_block)(3, 3, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 16: NAME(abt_block)(3, 4, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 9: NAME(abt_block)(2, 1, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 10: NAME(abt_block)(2, 2, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 11: NAME(abt_block)(2, 3, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 12: NAME(abt_block)(2, 4, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 5: NAME(abt_block)(1, 1, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 6: NAME(abt_block)(1, 2, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                case 7: NAME(abt_block)(1, 3, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                default: NAME(abt_block)(1, 4, i0 == 0, len, a, lda, w, ldw, z, ldz); break;
                }
            }
        }
    }
}

/* acc[c][v] += Σ_k D[k,c] A[k, v·LANES …] over m rows k, for c < C: atb's multiply-adds, each
 * sum one chain along k. */
BPFAST_INLINE void NAME(atb_sums)(int C, ptrdiff_t m, const T* D, ptrdiff_t ldd, const T* A,
        ptrdiff_t lda, V acc[][2]) {
    for (ptrdiff_t k = 0; k < m; k++) {
        V a0 = NAME(load)(A + k * lda), a1 = NAME(load)(A + k * lda + LANES);
        for (int c = 0; c < C; c++) {
            V d = BPFAST_SPLAT(D[k * ldd + c]);
            acc[c][0] += d * a0;
            acc[c][1] += d * a1;
        }
    }
}

/* W[c,i] = β W[c,i] + α Σ_k D[k,c] A[k,i] for c < C and the 2·LANES columns i from here; with
 * Vel, the momentum (or Nesterov) step of h instead. */
BPFAST_INLINE void NAME(atb_block)(int C, ptrdiff_t m, T alpha, T beta,
        const T* D, ptrdiff_t ldd, const T* A, ptrdiff_t lda, T* W, ptrdiff_t ldw,
        T* Vel, const HYPER* h) {
    V acc[4][2];
    for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = BPFAST_SPLAT(0);
    NAME(atb_sums)(C, m, D, ldd, A, lda, acc);
    V va = BPFAST_SPLAT(alpha), vb = BPFAST_SPLAT(beta);
    if (Vel) {
        V eta = BPFAST_SPLAT(h->eta), mu = BPFAST_SPLAT(h->mu);
        V l2 = BPFAST_SPLAT(h->l2);
        int nesterov = h->rule == BPFAST_NESTEROV;
        for (int c = 0; c < C; c++) for (int v = 0; v < 2; v++) {
            T* w = W + c * ldw + v * LANES;
            T* u = Vel + c * ldw + v * LANES;
            V w_now = NAME(load)(w);
            V g = va * acc[c][v] + l2 * w_now;
            V velocity = mu * NAME(load)(u) + g;
            NAME(store)(u, velocity);
            NAME(store)(w, w_now - eta * (nesterov ? g + mu * velocity : velocity));
        }
        return;
    }
    for (int c = 0; c < C; c++) for (int v = 0; v < 2; v++) {
        T* w = W + c * ldw + v * LANES;
        /* β = 0 must not read W: it may hold anything, NaN included. */
        NAME(store)(w, beta == 0 ? va * acc[c][v]
                                           : vb * NAME(load)(w) + va * acc[c][v]);
    }
}

ISA_TARGET static void NAME(atb)(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, T alpha, T beta,
        const T* D, ptrdiff_t ldd, const T* A, ptrdiff_t lda, T* W, ptrdiff_t ldw,
        T* Vel, const HYPER* h) {
    for (ptrdiff_t i0 = 0; i0 < ni; i0 += BPFAST_CHUNK) {
        ptrdiff_t end = ni - i0 < BPFAST_CHUNK ? ni : i0 + BPFAST_CHUNK, i;
        for (ptrdiff_t j = 0; j < nj; j += 4) {
            int C = nj - j < 4 ? (int)(nj - j) : 4;
            const T* d = D + j;
            for (i = i0; i + 2 * LANES <= end; i += 2 * LANES) {
                T* w = W + j * ldw + i;
                switch (C) {
                case 1: NAME(atb_block)(1, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break;
                case 2: NAME(atb_block)(2, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break;
                case 3: NAME(atb_block)(3, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break;
                default: NAME(atb_block)(4, m, alpha, beta, d, ldd, A + i, lda, w, ldw, Vel ? Vel + (w - W) : NULL, h); break;
                }
            }
            for (int c = 0; c < C; c++) for (ptrdiff_t ii = i; ii < end; ii++) {
                T s = 0;
                for (ptrdiff_t k = 0; k < m; k++) s += d[k * ldd + c] * A[k * lda + ii];
                T* w = W + (j + c) * ldw + ii;
                if (Vel) {
                    T* u = Vel + (w - W);
                    T g = alpha * s + h->l2 * *w;
                    *u = h->mu * *u + g;
                    *w -= h->eta * (h->rule == BPFAST_NESTEROV ? g + h->mu * *u : *u);
                } else {
                    *w = beta == 0 ? alpha * s : beta * *w + alpha * s;
                }
            }
        }
    }
}

/* A layer of few neurons over many rows (atb_rows): neurons j at a time, rows k per block, and
 * how many column blocks ahead of the one multiplied its rows are prefetched. */
#define BPFAST_ROWS_NEURONS 6
#define BPFAST_ROWS_BLOCK 32
#define BPFAST_ROWS_AHEAD 2

/* The sums of atb_rows over one block of rows, for c < C and the 2·LANES columns i from here:
 * started from zero (first) or from what W holds, written back as they are or, after the last
 * block, times α. */
BPFAST_INLINE void NAME(atb_rows_block)(int C, int first, int last, ptrdiff_t m, T alpha,
        const T* D, ptrdiff_t ldd, const T* A, ptrdiff_t lda, T* W, ptrdiff_t ldw) {
    V acc[BPFAST_ROWS_NEURONS][2];
    for (int c = 0; c < C; c++) for (int v = 0; v < 2; v++)
        acc[c][v] = first ? BPFAST_SPLAT(0) : NAME(load)(W + c * ldw + v * LANES);
    NAME(atb_sums)(C, m, D, ldd, A, lda, acc);
    V va = BPFAST_SPLAT(alpha);
    for (int c = 0; c < C; c++) for (int v = 0; v < 2; v++)
        NAME(store)(W + c * ldw + v * LANES, last ? va * acc[c][v] : acc[c][v]);
}

/* W = α Dᵀ A, or with `add` (α = 1) W += Dᵀ A, for a layer of few neurons j over many rows k,
 * where BLAS packs every product: its Haswell kernels pack all of A for each product, on which
 * a layer of 30 neurons then makes 30 multiply-adds per number packed. Here A is read in place,
 * BPFAST_ROWS_BLOCK rows at a time: for each two vectors of its columns i (L1), every block of
 * BPFAST_ROWS_NEURONS neurons — 12 sums in registers, each number of A serving 6 multiply-adds
 * as it is loaded — while W holds the sums between blocks (L2). Each W[j,i] is one chain of
 * multiply-adds along k, then times α. One thread, [784 → 30] over BLAS, blocks of 16, 32, 64
 * rows: float64 on 5,000 rows 1.30–1.57×, 1.08–1.23×, 1.09–1.16×; on 500, 1.15–1.35×,
 * 1.32–1.35×, 1.10–1.31×; float32 on 500, 1.61–1.65×, 1.84–1.85×, 1.64–1.84×. */
ISA_TARGET static void NAME(atb_rows)(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, T alpha, int add,
        const T* D, ptrdiff_t ldd, const T* A, ptrdiff_t lda, T* W, ptrdiff_t ldw) {
    for (ptrdiff_t k0 = 0; k0 < m; k0 += BPFAST_ROWS_BLOCK) {
        ptrdiff_t rows = m - k0 < BPFAST_ROWS_BLOCK ? m - k0 : BPFAST_ROWS_BLOCK, i = 0;
        int first = k0 == 0 && !add, last = k0 + rows == m && !add;
        const T* d = D + k0 * ldd;
        const T* a = A + k0 * lda;
        for (; i + 2 * LANES <= ni; i += 2 * LANES) {
            /* The block's columns two blocks on, on their way while these are multiplied: read
             * down the rows a column block at a time, a defeats the hardware's prefetchers (one
             * thread, [784 → 30] float64 on 1,000 rows: 14–18 GFLOP/s without, 17–37 with). */
            for (ptrdiff_t k = 0; k < rows && i + BPFAST_ROWS_AHEAD * 2 * LANES < ni; k++)
                __builtin_prefetch(a + k * lda + i + BPFAST_ROWS_AHEAD * 2 * LANES);
            for (ptrdiff_t j = 0; j < nj; j += BPFAST_ROWS_NEURONS) {
                int C = nj - j < BPFAST_ROWS_NEURONS ? (int)(nj - j) : BPFAST_ROWS_NEURONS;
                T* w = W + j * ldw + i;
                switch (C) {
                case 1: NAME(atb_rows_block)(1, first, last, rows, alpha, d + j, ldd, a + i, lda, w, ldw); break;
                case 2: NAME(atb_rows_block)(2, first, last, rows, alpha, d + j, ldd, a + i, lda, w, ldw); break;
                case 3: NAME(atb_rows_block)(3, first, last, rows, alpha, d + j, ldd, a + i, lda, w, ldw); break;
                case 4: NAME(atb_rows_block)(4, first, last, rows, alpha, d + j, ldd, a + i, lda, w, ldw); break;
                case 5: NAME(atb_rows_block)(5, first, last, rows, alpha, d + j, ldd, a + i, lda, w, ldw); break;
                default: NAME(atb_rows_block)(6, first, last, rows, alpha, d + j, ldd, a + i, lda, w, ldw); break;
                }
            }
        }
        for (ptrdiff_t j = 0; j < nj; j++) for (ptrdiff_t ii = i; ii < ni; ii++) {
            T* w = W + j * ldw + ii;
            T s = first ? 0 : *w;
            for (ptrdiff_t k = 0; k < rows; k++) s += d[k * ldd + j] * a[k * lda + ii];
            *w = last ? alpha * s : s;
        }
    }
}

#undef BPFAST_ROWS_NEURONS
#undef BPFAST_ROWS_BLOCK
#undef BPFAST_ROWS_AHEAD

/* Rows at a time of bpfast's product from panels (abt_panels, below). */
#define BPFAST_PANEL_ROWS 6

/* T[r,i] = Σ_j D[r,j] W[j,i] for r < R (at most BPFAST_PANEL_ROWS) and the 2·LANES columns i
 * from here, of which the first `cols` are written: each one chain of multiply-adds along j,
 * from j = 0 — the same operations wherever the row stands. */
BPFAST_INLINE void NAME(ab_block)(int R, ptrdiff_t nj, const T* D, ptrdiff_t ldd,
        const T* W, ptrdiff_t ldw, T* Tout, ptrdiff_t ldt, int cols) {
    V acc[BPFAST_PANEL_ROWS][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = BPFAST_SPLAT(0);
    for (ptrdiff_t j = 0; j < nj; j++) {
        V w0 = NAME(load)(W + j * ldw), w1 = NAME(load)(W + j * ldw + LANES);
        for (int r = 0; r < R; r++) {
            V d = BPFAST_SPLAT(D[r * ldd + j]);
            acc[r][0] += d * w0;
            acc[r][1] += d * w1;
        }
    }
    for (int r = 0; r < R; r++) {
        if (cols == 2 * LANES) {
            NAME(store)(Tout + r * ldt, acc[r][0]);
            NAME(store)(Tout + r * ldt + LANES, acc[r][1]);
        } else {
            T row[2 * LANES];
            NAME(store)(row, acc[r][0]);
            NAME(store)(row + LANES, acc[r][1]);
            for (int c = 0; c < cols; c++) Tout[r * ldt + c] = row[c];
        }
    }
}

ISA_TARGET static void NAME(ab)(ptrdiff_t m, ptrdiff_t ni, ptrdiff_t nj,
        const T* D, ptrdiff_t ldd, const T* W, ptrdiff_t ldw, T* Tout, ptrdiff_t ldt) {
    ptrdiff_t k = 0, i;
    for (; k < m; k += 4) {
        int R = m - k < 4 ? (int)(m - k) : 4;
        const T* d = D + k * ldd;
        for (i = 0; i + 2 * LANES <= ni; i += 2 * LANES) {
            T* t = Tout + k * ldt + i;
            switch (R) {
            case 1: NAME(ab_block)(1, nj, d, ldd, W + i, ldw, t, ldt, 2 * LANES); break;
            case 2: NAME(ab_block)(2, nj, d, ldd, W + i, ldw, t, ldt, 2 * LANES); break;
            case 3: NAME(ab_block)(3, nj, d, ldd, W + i, ldw, t, ldt, 2 * LANES); break;
            default: NAME(ab_block)(4, nj, d, ldd, W + i, ldw, t, ldt, 2 * LANES); break;
            }
        }
        for (int r = 0; r < R; r++) for (ptrdiff_t ii = i; ii < ni; ii++) {
            T s = 0;
            for (ptrdiff_t j = 0; j < nj; j++) s += d[r * ldd + j] * W[j * ldw + ii];
            Tout[(k + r) * ldt + ii] = s;
        }
    }
}

/* A layer of few neurons j, over many rows (abt_panels): wᵀ laid out in panels of PANEL = 2·LANES
 * neurons — P[p, i, c] = W[p·PANEL + c, i], zeros past nj — so that one row's z for a panel is
 * two vectors, and a number of A serves 2·LANES multiply-adds as soon as it is loaded: A is
 * read in place, once for all the panels. Where OpenBLAS packs every product (its Haswell
 * kernels, AVX2), a layer of 30 outputs packs all of A for every 30 multiply-adds per number;
 * one thread, a C harness, z = a wᵀ on 1,000 rows: [784 → 16] 20.6 → 35.1 GFLOP/s (the copy
 * included), [784 → 30] 23–27 → 33–39, [784 → 100] 30–35 → 32–40, [784 → 256] even. */
#define BPFAST_PANEL (2 * LANES)

ISA_TARGET static void NAME(panels)(ptrdiff_t nj, ptrdiff_t ni, const T* restrict W,
                                    ptrdiff_t ldw, T* restrict P) {
    /* A vector of each of the panel's rows of W, then written out along i: W is read in
     * vectors and P written in order (one thread, [784 → 100]: 70 µs a number at a time down
     * each row of W, 28 so; [784 → 30] 21 → 8). */
    for (ptrdiff_t j0 = 0; j0 < nj; j0 += BPFAST_PANEL, P += ni * BPFAST_PANEL) {
        int cols = nj - j0 < BPFAST_PANEL ? (int)(nj - j0) : BPFAST_PANEL;
        ptrdiff_t i = 0;
        for (; i + LANES <= ni; i += LANES) {
            T block[BPFAST_PANEL][LANES];
            for (int c = 0; c < BPFAST_PANEL; c++) {
                if (c < cols) {
                    V v = NAME(load)(W + (j0 + c) * ldw + i);
                    memcpy(block[c], &v, sizeof v);
                } else {
                    memset(block[c], 0, sizeof block[c]);
                }
            }
            for (int q = 0; q < LANES; q++)
                for (int c = 0; c < BPFAST_PANEL; c++) P[(i + q) * BPFAST_PANEL + c] = block[c][q];
        }
        for (; i < ni; i++)
            for (int c = 0; c < BPFAST_PANEL; c++)
                P[i * BPFAST_PANEL + c] = c < cols ? W[(j0 + c) * ldw + i] : 0;
    }
}

/* Z = A Wᵀ from W's panels P (NAME(panels)): each panel is a matrix of ni rows of 2·LANES
 * numbers, which Z's columns for it are A times (ab_block): BPFAST_PANEL_ROWS rows of A at a
 * time, each against every panel while the rows are in L1 (not the rows in blocks of i: a second pass over the
 * panels for each block measured slower at 784 inputs). */
ISA_TARGET static void NAME(abt_panels)(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni,
        const T* A, ptrdiff_t lda, const T* P, T* Z, ptrdiff_t ldz) {
    for (ptrdiff_t k = 0; k < m; k += BPFAST_PANEL_ROWS) {
        int R = m - k < BPFAST_PANEL_ROWS ? (int)(m - k) : BPFAST_PANEL_ROWS;
        for (ptrdiff_t j0 = 0; j0 < nj; j0 += BPFAST_PANEL) {
            int cols = nj - j0 < BPFAST_PANEL ? (int)(nj - j0) : BPFAST_PANEL;
            const T* a = A + k * lda;
            const T* p = P + (j0 / BPFAST_PANEL) * ni * BPFAST_PANEL;
            T* z = Z + k * ldz + j0;
            switch (R) {
            case 1: NAME(ab_block)(1, ni, a, lda, p, BPFAST_PANEL, z, ldz, cols); break;
            case 2: NAME(ab_block)(2, ni, a, lda, p, BPFAST_PANEL, z, ldz, cols); break;
            case 3: NAME(ab_block)(3, ni, a, lda, p, BPFAST_PANEL, z, ldz, cols); break;
            case 4: NAME(ab_block)(4, ni, a, lda, p, BPFAST_PANEL, z, ldz, cols); break;
            case 5: NAME(ab_block)(5, ni, a, lda, p, BPFAST_PANEL, z, ldz, cols); break;
            default: NAME(ab_block)(6, ni, a, lda, p, BPFAST_PANEL, z, ldz, cols); break;
            }
        }
    }
}

/* ∂C/∂w = α δᵀ a from both operands packed (atb_packed): δ's columns in panels of
 * BPFAST_NEURON_PANEL neurons (_microkernels.h), a's in panels of BPFAST_PANEL inputs, each panel its rows k one
 * after another — rows of both at a time (a block of each in L1), and neurons at a time (a
 * block of δ's panels in L2) for every panel of a. */
#define BPFAST_PACKED_ROWS ((ptrdiff_t)(16384 / (BPFAST_PANEL * sizeof(T))))
#define BPFAST_PACKED_BLOCK_BYTES ((ptrdiff_t)131072)

/* W[c, i] for c < C and the `cols` columns i from here: the sums over m rows of neuron panel q
 * and input panel p, started from zero (first) or from what W holds, written back as they are
 * or, after the last block of rows, times α. */
BPFAST_INLINE void NAME(atb_packed_block)(int C, int first, int last, ptrdiff_t m, T alpha,
        const T* q, const T* p, T* W, ptrdiff_t ldw, int cols) {
    V acc[BPFAST_NEURON_PANEL][2];
    for (int c = 0; c < C; c++) {
        if (first) {
            acc[c][0] = acc[c][1] = BPFAST_SPLAT(0);
        } else {
            T row[BPFAST_PANEL] = {0};
            memcpy(row, W + c * ldw, cols * sizeof(T));
            acc[c][0] = NAME(load)(row);
            acc[c][1] = NAME(load)(row + LANES);
        }
    }
    NAME(atb_sums)(C, m, q, BPFAST_NEURON_PANEL, p, BPFAST_PANEL, acc);
    V va = BPFAST_SPLAT(last ? alpha : 1);
    for (int c = 0; c < C; c++) {
        T* w = W + c * ldw;
        if (cols == BPFAST_PANEL) {
            NAME(store)(w, va * acc[c][0]);
            NAME(store)(w + LANES, va * acc[c][1]);
        } else {
            T row[BPFAST_PANEL];
            NAME(store)(row, va * acc[c][0]);
            NAME(store)(row + LANES, va * acc[c][1]);
            memcpy(w, row, cols * sizeof(T));
        }
    }
}

/* W = α Dᵀ A (nj × ni) over m rows, from Q, D's columns in panels of BPFAST_NEURON_PANEL
 * (Q[p, k, c] = D[k, p·6 + c], zeros past nj), and P, A's in panels of BPFAST_PANEL
 * (P[p, k, c] = A[k, p·PANEL + c], zeros past ni). Each W[j,i] one chain of multiply-adds along
 * k, then times α: the same bits wherever the rows and neurons stand. */
ISA_TARGET static void NAME(atb_packed)(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, T alpha,
        const T* Q, const T* P, T* W, ptrdiff_t ldw) {
    ptrdiff_t rows = m < BPFAST_PACKED_ROWS ? m : BPFAST_PACKED_ROWS;
    ptrdiff_t block = BPFAST_PACKED_BLOCK_BYTES / (rows * BPFAST_NEURON_PANEL * (ptrdiff_t)sizeof(T));
    block = (block > 1 ? block : 1) * BPFAST_NEURON_PANEL;
    for (ptrdiff_t k0 = 0; k0 < m; k0 += BPFAST_PACKED_ROWS) {
        ptrdiff_t mk = m - k0 < BPFAST_PACKED_ROWS ? m - k0 : BPFAST_PACKED_ROWS;
        int first = k0 == 0, last = k0 + mk == m;
        for (ptrdiff_t j0 = 0; j0 < nj; j0 += block) {
            ptrdiff_t j1 = nj - j0 < block ? nj : j0 + block;
            for (ptrdiff_t i0 = 0; i0 < ni; i0 += BPFAST_PANEL) {
                int cols = ni - i0 < BPFAST_PANEL ? (int)(ni - i0) : BPFAST_PANEL;
                const T* p = P + (i0 / BPFAST_PANEL * m + k0) * BPFAST_PANEL;
                for (ptrdiff_t j = j0; j < j1; j += BPFAST_NEURON_PANEL) {
                    int C = j1 - j < BPFAST_NEURON_PANEL ? (int)(j1 - j) : BPFAST_NEURON_PANEL;
                    const T* q = Q + (j / BPFAST_NEURON_PANEL * m + k0) * BPFAST_NEURON_PANEL;
                    T* w = W + j * ldw + i0;
                    switch (C) {
                    case 1: NAME(atb_packed_block)(1, first, last, mk, alpha, q, p, w, ldw, cols); break;
                    case 2: NAME(atb_packed_block)(2, first, last, mk, alpha, q, p, w, ldw, cols); break;
                    case 3: NAME(atb_packed_block)(3, first, last, mk, alpha, q, p, w, ldw, cols); break;
                    case 4: NAME(atb_packed_block)(4, first, last, mk, alpha, q, p, w, ldw, cols); break;
                    case 5: NAME(atb_packed_block)(5, first, last, mk, alpha, q, p, w, ldw, cols); break;
                    default: NAME(atb_packed_block)(6, first, last, mk, alpha, q, p, w, ldw, cols); break;
                    }
                }
            }
        }
    }
}

#undef BPFAST_PACKED_ROWS
#undef BPFAST_PACKED_BLOCK_BYTES

#undef BPFAST_PANEL
#undef BPFAST_PANEL_ROWS
#undef BPFAST_CHUNK
#undef BPFAST_ABT_CHUNK

/* out[k] = Σ_i M[k, i]² for each of `rows` contiguous rows of `width` numbers (in double): the
 * squared norms of a layer's δ_k or a_k for a block of examples in one call — per row, vectors
 * along it and one horizontal sum, rather than a call per example and per vector. */
ISA_TARGET static void NAME(row_squares)(ptrdiff_t rows, ptrdiff_t width, const T* restrict M,
                                         double* restrict out) {
    for (ptrdiff_t k = 0; k < rows; k++) {
        const T* row = M + k * width;
        V s0 = BPFAST_SPLAT(0), s1 = BPFAST_SPLAT(0);   /* two chains: not one FMA's latency */
        ptrdiff_t i = 0;
        for (; i + 2 * LANES <= width; i += 2 * LANES) {
            V a = NAME(load)(row + i), b = NAME(load)(row + i + LANES);
            s0 += a * a;
            s1 += b * b;
        }
        if (i + LANES <= width) {
            V a = NAME(load)(row + i);
            s0 += a * a;
            i += LANES;
        }
        T total = NAME(hsum)(s0 + s1);
        for (; i < width; i++) total += row[i] * row[i];
        out[k] = (double) total;
    }
}

/* Whether every v_i is a finite number: x − x is 0 for a finite x and NaN for ±inf or NaN, and
 * a NaN stays NaN through the sums: four chains of subtractions and adds, one test at the end
 * (on 65,536 numbers in cache, 1.3× as fast in float64 and 1.7× in float32 as a test of each
 * number's exponent bits as integers, which took a double's from every other 32-bit word). */
ISA_TARGET static int NAME(finite)(ptrdiff_t n, const T* restrict v) {
    V s0 = BPFAST_SPLAT(0), s1 = BPFAST_SPLAT(0), s2 = BPFAST_SPLAT(0), s3 = BPFAST_SPLAT(0);
    ptrdiff_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        V a = NAME(load)(v + i), b = NAME(load)(v + i + LANES);
        V c = NAME(load)(v + i + 2 * LANES), d = NAME(load)(v + i + 3 * LANES);
        s0 += a - a;
        s1 += b - b;
        s2 += c - c;
        s3 += d - d;
    }
    for (; i + LANES <= n; i += LANES) {
        V a = NAME(load)(v + i);
        s0 += a - a;
    }
    T total = NAME(hsum)((s0 + s1) + (s2 + s3));
    for (; i < n; i++) total += v[i] - v[i];
    return total == total;
}
#undef BPFAST_SPLAT
