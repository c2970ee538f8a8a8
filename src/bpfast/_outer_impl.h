/* One example's gradient for one layer, written out — ∂C_k/∂w^(l) = δ_k a_kᵀ and
 * ∂C_k/∂b^(l) = δ_k, the stores of per_example_gradients:
 *
 *   G[j,i] = d[j] a[i]  for j < nj, i < ni,  then the row after them: B[j] = d[j].
 *
 * Included by _dispatch.h once for each type and instruction set, with T, NAME and ISA_TARGET
 * defined as for _microkernels_impl.h, and for x86-64-v4 also HELD_V, HELD_LANES: a 64-byte
 * vector of T and its number of elements. There, a row a of up to HELD_VECTORS vectors is
 * held in registers while the rows of G are written: stores only, no load between them. On the
 * digits ([64, 30, 10]: a of 64 and 30 doubles, 2,260 numbers an example, 32.5 MB for 1,797),
 * per_example_gradients into a kept buffer took 1.42–1.47 ms on one thread and 0.76–0.81 on
 * two, against 2.81–2.86 and 1.40–1.42 with the loop below, which reads a[i] again for every
 * row — and 0.89–0.92 for one fill of the buffer. Longer rows keep the loop: written a block of
 * 8 vectors at a time across the rows, [784, 30, 10] on 1,000 examples took 10.5–13.1 ms
 * against its 7.8–8.1. So does x86-64-v3: a held in 256-bit registers (16 of them: 32 doubles
 * at a time, each row written in two parts) took 2.24–2.30 ms in a C harness of the digits'
 * layout, against 1.38–1.82 for the loop.
 *
 * Each G[j,i] is one product d[j] · a[i], whatever the variant: the same bits on every one.
 * No include guard: meant to be included again.
 */

#ifdef HELD_V

#define HELD_VECTORS 8          /* of the 32 zmm registers: a ≤ 64 doubles or 128 floats */

/* The rows of G from a of `count` vectors (HELD_LANES ≤ ni ≤ count · HELD_LANES): vector v
 * starts at v · HELD_LANES, the last at ni − HELD_LANES — overlapping the one before where ni is
 * not a multiple, which writes a few numbers twice, with the same value. */
BPFAST_INLINE void NAME(outer_held)(int count, ptrdiff_t nj, ptrdiff_t ni, const T* restrict d,
                                    const T* restrict a, T* restrict G) {
    HELD_V held[HELD_VECTORS];
    ptrdiff_t at[HELD_VECTORS];
    _Pragma("GCC unroll 8")
    for (int v = 0; v < count; v++) {
        at[v] = v < count - 1 ? v * HELD_LANES : ni - HELD_LANES;
        memcpy(&held[v], a + at[v], sizeof held[v]);
    }
    for (ptrdiff_t j = 0; j < nj; j++) {
        const T dj = d[j];
        T* restrict g = G + j * ni;
        _Pragma("GCC unroll 8")
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
        switch ((ni + HELD_LANES - 1) / HELD_LANES) {
        case 1: NAME(outer_held)(1, nj, ni, d, a, G); break;
        case 2: NAME(outer_held)(2, nj, ni, d, a, G); break;
        case 3: NAME(outer_held)(3, nj, ni, d, a, G); break;
        case 4: NAME(outer_held)(4, nj, ni, d, a, G); break;
        case 5: NAME(outer_held)(5, nj, ni, d, a, G); break;
        case 6: NAME(outer_held)(6, nj, ni, d, a, G); break;
        case 7: NAME(outer_held)(7, nj, ni, d, a, G); break;
        default: NAME(outer_held)(8, nj, ni, d, a, G); break;
        }
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

#ifdef HELD_V
#undef HELD_VECTORS
#endif
