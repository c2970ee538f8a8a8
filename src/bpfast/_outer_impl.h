/* One example's gradient for one layer, written out — ∂C_k/∂w^(l) = δ_k a_kᵀ and
 * ∂C_k/∂b^(l) = δ_k, the stores of per_example_gradients:
 *
 *   G[j,i] = d[j] a[i]  for j < nj, i < ni,  then the row after them: B[j] = d[j].
 *
 * Included by _dispatch.h once for each type and instruction set, with T, NAME and ISA_TARGET
 * defined as for _microkernels_impl.h, and for x86-64-v3 and v4 also HELD_V and HELD_LANES: a
 * vector of T (32 or 64 bytes) and its number of elements. A row a may take HELD_VECTORS of
 * them — 16 of either: 64 doubles or 128 floats on x86-64-v3, 128 and 256 on v4.
 * There, a is held in registers while the rows of G are written: stores only, no load between
 * them (x86-64-v3 has 16 registers of 256 bits, and the compiler keeps 2 of a 64-double row in
 * memory, loaded again for each row; x86-64-v4 has 32 of 512 bits).
 *
 * On the digits ([64, 30, 10]: a of 64 and 30 doubles, 2,260 numbers an example, 32.5 MB for
 * 1,797), per_example_gradients into a kept buffer took 1.42–1.47 ms on one thread and
 * 0.76–0.81 on two with x86-64-v4, against 2.81–2.86 and 1.40–1.42 with the loop below, which
 * reads a[i] again for every row — and 0.89–0.92 for one fill of the buffer; with x86-64-v3,
 * 1.53–1.93 and 1.00–1.09 against the loop's 2.52–3.09 and 1.33–1.45. [100, 100, 10] on 1,000
 * examples (rows of 100 doubles: x86-64-v4's 13 registers): 5.12–5.73 → 4.39–5.12 ms on one
 * thread, 3.68–4.12 → 3.32–3.70 on two (one fill: 3.07–3.45); holding up to 24 made no
 * difference beyond the noise on rows of 192. Longer rows keep the loop: written a block of
 * registers at a time across the rows, [784, 30, 10] on 1,000 examples took 10.5–13.1 ms
 * against its 7.8–8.1 (so did the digits' row of 64 doubles in two blocks of 32, 2.24–2.30 ms
 * on one thread in a C harness, against 1.38–1.82 for the loop).
 *
 * Each G[j,i] is one product d[j] · a[i], whatever the variant: the same bits on every one.
 * No include guard: meant to be included again.
 */

#ifdef HELD_V

#define HELD_VECTORS 16

/* The rows of G from a of `count` vectors (HELD_LANES ≤ ni ≤ count · HELD_LANES): vector v
 * starts at v · HELD_LANES, the last at ni − HELD_LANES — overlapping the one before where ni is
 * not a multiple, which writes a few numbers twice, with the same value. */
BPFAST_INLINE void NAME(outer_held)(int count, ptrdiff_t nj, ptrdiff_t ni, const T* restrict d,
                                    const T* restrict a, T* restrict G) {
    HELD_V held[HELD_VECTORS];
    ptrdiff_t at[HELD_VECTORS];
    _Pragma("GCC unroll 16")
    for (int v = 0; v < count; v++) {
        at[v] = v < count - 1 ? v * HELD_LANES : ni - HELD_LANES;
        memcpy(&held[v], a + at[v], sizeof held[v]);
    }
    for (ptrdiff_t j = 0; j < nj; j++) {
        const T dj = d[j];
        T* restrict g = G + j * ni;
        _Pragma("GCC unroll 16")
        for (int v = 0; v < count; v++) {
            HELD_V product = dj * held[v];
            memcpy(g + at[v], &product, sizeof product);
        }
    }
}

#endif

ISA_TARGET static void NAME(outer)(ptrdiff_t nj, ptrdiff_t ni, const T* restrict d,
                                   const T* restrict a, T* restrict G, T* restrict B) {
#ifdef HELD_V
    if (ni >= HELD_LANES && ni <= HELD_VECTORS * HELD_LANES) {
        /* Each count of vectors a case of its own: the loops over them unrolled, a in registers. */
#define BPFAST_HELD(count) case count: NAME(outer_held)(count, nj, ni, d, a, G); break;
        switch ((ni + HELD_LANES - 1) / HELD_LANES) {
        BPFAST_HELD(1) BPFAST_HELD(2) BPFAST_HELD(3) BPFAST_HELD(4)
        BPFAST_HELD(5) BPFAST_HELD(6) BPFAST_HELD(7) BPFAST_HELD(8)
        BPFAST_HELD(9) BPFAST_HELD(10) BPFAST_HELD(11) BPFAST_HELD(12)
        BPFAST_HELD(13) BPFAST_HELD(14) BPFAST_HELD(15) BPFAST_HELD(16)
        }
#undef BPFAST_HELD
        memcpy(B, d, nj * sizeof(T));
        return;
    }
#endif
    for (ptrdiff_t j = 0; j < nj; j++) {
        const T dj = d[j];
        T* restrict g = G + j * ni;
        for (ptrdiff_t i = 0; i < ni; i++) g[i] = dj * a[i];
        B[j] = dj;
    }
}

/* --- the same rows in non-temporal stores, through a part's stage (bpfast_rows_d/_s) ------- *
 *
 * Written row by row straight to the output, non-temporal stores lost wherever rows do not
 * start on a line (C harness, kept buffers, two threads: [784, 30, 10] 1.5× faster than stores,
 * its rows of 784 doubles on lines; [100, 100, 10] 0.5×, [256, 256, 10] 0.85×): a line filled
 * partly by them and partly by normal stores goes to memory in pieces. Through the stage every
 * line but the part's first and last is filled by one run of them: 1.3–1.8× and 1.15–1.8×
 * there, [64, 30, 10] 1.6×. */

#define STAGED (BPFAST_STAGE_BYTES / (ptrdiff_t) sizeof(T))

/* The first `count` staged numbers to the output: the lines they fill whole in non-temporal
 * stores, the numbers before the part's first left alone, those of a partial line (the part's
 * first and last) stored as usual. */
ISA_TARGET static void NAME(rows_flush)(ROWS* restrict w, ptrdiff_t count) {
    T* line = w->line;
    ptrdiff_t i = w->first > line ? w->first - line : 0;
    for (; i < count && ((uintptr_t) (line + i) % 64 != 0); i++) line[i] = w->stage[i];
    for (; i + 64 / (ptrdiff_t) sizeof(T) <= count; i += 64 / (ptrdiff_t) sizeof(T))
        bpfast_stream_line(line + i, w->stage + i);
    for (; i < count; i++) line[i] = w->stage[i];
    w->line += count;
}

/* A part's rows from `first` on (the numbers must be aligned as T). */
ISA_TARGET static void NAME(rows_open)(ROWS* restrict w, T* first) {
    w->first = first;
    w->line = (T*) ((uintptr_t) first & ~(uintptr_t) 63);
    w->fill = first - w->line;
}

/* `count` numbers into the stage — scale · from[i], or with `copy` from[i] itself —, each stage
 * that fills flushed to the output. */
ISA_TARGET static void NAME(rows_stage)(ROWS* restrict w, ptrdiff_t count, const T* restrict from,
                                        T scale, int copy) {
    while (count > 0) {
        ptrdiff_t k = STAGED - w->fill < count ? STAGED - w->fill : count;
        T* restrict s = w->stage + w->fill;
        if (copy)
            memcpy(s, from, k * sizeof(T));
        else
            for (ptrdiff_t i = 0; i < k; i++) s[i] = scale * from[i];
        w->fill += k;
        from += k;
        count -= k;
        if (w->fill == STAGED) {
            NAME(rows_flush)(w, STAGED);
            w->fill = 0;
        }
    }
}

/* The next rows: G[j,i] = d[j] a[i] for j < nj, i < ni, then B[j] = d[j] — each product the one
 * multiplication of the stores above, the same bits. */
ISA_TARGET static void NAME(rows_outer)(ROWS* restrict w, ptrdiff_t nj, ptrdiff_t ni,
                                        const T* restrict d, const T* restrict a) {
    for (ptrdiff_t j = 0; j < nj; j++) NAME(rows_stage)(w, ni, a, d[j], 0);
    NAME(rows_stage)(w, nj, d, 0, 1);
}

/* The part's last numbers out, and its non-temporal stores fenced: another thread may read them
 * once the part's team has met. */
ISA_TARGET static void NAME(rows_close)(ROWS* restrict w) {
    NAME(rows_flush)(w, w->fill);
    w->fill = 0;
    bpfast_store_fence();
}

#undef STAGED

#ifdef HELD_V
#undef HELD_VECTORS
#endif
