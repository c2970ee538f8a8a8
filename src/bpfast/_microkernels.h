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
 * And for a layer of few neurons over many rows, where BLAS packs every product:
 *   panels:      P, W's numbers laid out in panels of 64 bytes of neurons (zeros past nj)
 *   abt_panels:  Z[k,j] = Σ_i A[k,i] W[j,i] from P      z = a wᵀ, each panel by ab's block
 *   atb_rows:    W[j,i] = α Σ_k D[k,j] A[k,i]           ∂C/∂w = δᵀ a, A read in place
 *                (or W[j,i] += Σ_k D[k,j] A[k,i]: a part's sums over its next rows)
 *   atb_packed:  W[j,i] = α Σ_k D[k,j] A[k,i]           ∂C/∂w = δᵀ a, both operands packed:
 *                D's columns in panels of BPFAST_NEURON_PANEL neurons, A's of 64 bytes of inputs
 *
 * Written with GCC's vector extensions, once for any element type in _microkernels_impl.h, which
 * _dispatch.h compiles for double and float, each for x86-64-v3 (AVX2 and FMA) and for the
 * baseline; which one runs is chosen when bpfast is imported (see _dispatch.h), so a wheel stays
 * portable. Elsewhere (another compiler or system) only the baseline is compiled.
 */
#ifndef BPFAST_MICROKERNELS_H
#define BPFAST_MICROKERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_rules.h"             /* bpfast_hyper: the momentum step of the epilogue */

/* 32-byte vectors: four doubles, eight floats. Register blocks: abt 3 examples × 4 neurons (12),
 * atb 4 neurons × 2 vectors, ab 4 examples × 2 vectors (8) accumulators, which leaves registers
 * for the operands (abt: its 3 examples' vectors and one of w, all 16 registers). */
/* atb_packed's neurons at a time: 6 × 2 vectors of sums, the other registers for a's two
 * vectors and δ's broadcast number. */
#define BPFAST_NEURON_PANEL 6

typedef double bpfast_v4d __attribute__((vector_size(32)));
typedef float bpfast_v8f __attribute__((vector_size(32)));
/* Lane masks of their shuffles, and a vector of x's and y's lanes by index (y's from the vector's
 * length on): GCC's spelling and Clang's. */
typedef long long bpfast_m4d __attribute__((vector_size(32)));
typedef int bpfast_m8f __attribute__((vector_size(32)));
#if defined(__clang__)
#define BPFAST_SHUFFLE(x, y, M, ...) __builtin_shufflevector(x, y, __VA_ARGS__)
#else
#define BPFAST_SHUFFLE(x, y, M, ...) __builtin_shuffle(x, y, (M){__VA_ARGS__})
#endif
/* The per-example rows of a part in non-temporal stores (_outer_impl.h's rows_*): the numbers
 * go through `stage`, a few KiB that stay in L1, and leave it a whole stage at a time, every
 * line of the output filled by one run of stores — a line that normal stores also touch (rows
 * not on a line's boundary) costs a partial write to memory. `line` is where stage[0] goes (on
 * a line's boundary), `first` the part's first number, `fill` the numbers staged. */
#define BPFAST_STAGE_BYTES 4096
typedef struct {
    double stage[BPFAST_STAGE_BYTES / sizeof(double)] __attribute__((aligned(64)));
    double* line;
    double* first;
    ptrdiff_t fill;
} bpfast_rows_d;
typedef struct {
    float stage[BPFAST_STAGE_BYTES / sizeof(float)] __attribute__((aligned(64)));
    float* line;
    float* first;
    ptrdiff_t fill;
} bpfast_rows_s;

/* A line of 64 bytes, from and to addresses on a line's boundary, in non-temporal stores (SSE2's,
 * in every variant: the stores wait on memory, not on their width), and their fence: they are not
 * ordered with the others, so a part fences its own before its team meets and another thread
 * reads them. Elsewhere than x86-64, a copy and no fence. */
#if defined(__x86_64__)
#include <emmintrin.h>
static inline void bpfast_stream_line(void* to, const void* from) {
    for (int q = 0; q < 4; q++)
        _mm_stream_si128((__m128i*) to + q, _mm_load_si128((const __m128i*) from + q));
}
static inline void bpfast_store_fence(void) { _mm_sfence(); }
#else
static inline void bpfast_stream_line(void* to, const void* from) { memcpy(to, from, 64); }
static inline void bpfast_store_fence(void) {}
#endif

/* 64-byte vectors: x86-64-v4's per-example rows (_outer_impl.h). */
typedef double bpfast_v8d __attribute__((vector_size(64)));
typedef float bpfast_v16f __attribute__((vector_size(64)));

#endif
