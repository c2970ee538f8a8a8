/* Which compiled variant of bpfast's C loops runs: the microkernels (_microkernels_impl.h), the
 * per-example rows' stores (_outer_impl.h), the activations (_activations_impl.h) and the update
 * rules (_rules_impl.h) are each written once, for any element type, and compiled here four
 * times — for double and for float, each for x86-64-v3 (AVX2 and FMA) and for the baseline
 * x86-64 — so that a wheel runs on any x86-64 and still uses the vector units where they are.
 * Elsewhere (another compiler or system) only the baseline is compiled.
 *
 * Only the loops' outer functions carry the target (ISA_TARGET): the small inline functions they
 * call are written for no particular target and compiled as part of each caller — as gcc's
 * target_clones did before, and so with the same results, bit for bit.
 *
 * Three loops have a third variant, for x86-64-v4 (AVX-512). The noise's generator
 * (_noise_impl.h): the 64-bit multiplies of its hash are one instruction each instead of five,
 * and it draws twice the numbers per instruction: 2.6× faster a number. The activations
 * (_activations_impl.h), in 512-bit vectors (gcc's generic tuning keeps 256 unless asked): σ's
 * e^x and division are a long chain of operations per number, twice the numbers a chain on
 * 512 bits — the digits' private epoch 4.7–4.8 ms against 5.1–5.3 with BPFAST_ISA=x86-64-v3
 * (benchmarks/bench_privacy.py --workloads P2). Both compute each number by the same
 * operations (integers exact, FMA contracted alike), so they give the same numbers as the
 * x86-64-v3 variant, bit for bit (tested). So does a third: the stores of the per-example
 * rows (_outer_impl.h), which hold a row of inputs in registers — up to 16 of the 32 of 512
 * bits there, of the 16 of 256 bits on x86-64-v3, where the compiler keeps 2 of them in memory
 * (measured there). The other loops gain nothing comparable there and are not compiled a
 * third time.
 *
 * bpfast_choose_isa, called once when bpfast._kernels is imported, points the tables below at
 * the best variant the CPU runs — unless the environment variable BPFAST_ISA asks for another
 * ("baseline": how the tests run the baseline on a machine that has AVX2). Baseline and
 * x86-64-v3 give the same results up to rounding (FMA rounds a·b + c once), so a given machine
 * and variant give bitwise-reproducible results.
 */
#ifndef BPFAST_DISPATCH_H
#define BPFAST_DISPATCH_H

#include <stddef.h>
#include <string.h>

#include "_activations.h"
#include "_microkernels.h"
#include "_noise.h"
#include "_rules.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BPFAST_HAVE_AVX2_VARIANT 1
#else
#define BPFAST_HAVE_AVX2_VARIANT 0
#endif

/* The activations' x86-64-v4 target: vectors of 512 bits (see above). */
#define BPFAST_WIDE_VECTORS __attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))

/* --- double ---------------------------------------------------------------------------------- */
#define T double
#define V bpfast_v4d
#define LANES 4
#define HYPER bpfast_hyper_d
#define ROWS bpfast_rows_d
#define SQRT sqrt
#define FABS fabs
#define COPYSIGN copysign
#define EXP_NEGATIVE bpfast_exp_negative_d
#define EXPM1_NEGATIVE bpfast_expm1_negative_d
#define UNIFORMS bpfast_uniforms_d
#define LOG_UNIT bpfast_log_unit_d
#define COS_SIN_TURN bpfast_cos_sin_turn_d
#define ISA_TARGET
#define NAME(x) bpfast_##x##_d_baseline
#include "_microkernels_impl.h"
#include "_outer_impl.h"
#include "_activations_impl.h"
#include "_rules_impl.h"
#include "_noise_impl.h"
#undef NAME
#undef ISA_TARGET
#if BPFAST_HAVE_AVX2_VARIANT
#define ISA_TARGET __attribute__((target("arch=x86-64-v3")))
#define NAME(x) bpfast_##x##_d_avx2
#include "_microkernels_impl.h"
#define HELD_V bpfast_v4d
#define HELD_LANES 4
#include "_outer_impl.h"
#undef HELD_V
#undef HELD_LANES
#include "_activations_impl.h"
#include "_rules_impl.h"
#include "_noise_impl.h"
#undef NAME
#undef ISA_TARGET
#define ISA_TARGET __attribute__((target("arch=x86-64-v4")))     /* see above */
#define NAME(x) bpfast_##x##_d_avx512
#include "_noise_impl.h"
#undef ISA_TARGET
#define ISA_TARGET BPFAST_WIDE_VECTORS
#include "_activations_impl.h"
#define HELD_V bpfast_v8d
#define HELD_LANES 8
#include "_outer_impl.h"
#undef HELD_V
#undef HELD_LANES
#undef NAME
#undef ISA_TARGET
#endif
#undef T
#undef V
#undef LANES
#undef HYPER
#undef ROWS
#undef SQRT
#undef FABS
#undef COPYSIGN
#undef EXP_NEGATIVE
#undef EXPM1_NEGATIVE
#undef UNIFORMS
#undef LOG_UNIT
#undef COS_SIN_TURN

/* --- float ----------------------------------------------------------------------------------- */
#define T float
#define V bpfast_v8f
#define LANES 8
#define HYPER bpfast_hyper_s
#define ROWS bpfast_rows_s
#define SQRT sqrtf
#define FABS fabsf
#define COPYSIGN copysignf
#define EXP_NEGATIVE bpfast_exp_negative_s
#define EXPM1_NEGATIVE bpfast_expm1_negative_s
#define UNIFORMS bpfast_uniforms_s
#define LOG_UNIT bpfast_log_unit_s
#define COS_SIN_TURN bpfast_cos_sin_turn_s
#define ISA_TARGET
#define NAME(x) bpfast_##x##_s_baseline
#include "_microkernels_impl.h"
#include "_outer_impl.h"
#include "_activations_impl.h"
#include "_rules_impl.h"
#include "_noise_impl.h"
#undef NAME
#undef ISA_TARGET
#if BPFAST_HAVE_AVX2_VARIANT
#define ISA_TARGET __attribute__((target("arch=x86-64-v3")))
#define NAME(x) bpfast_##x##_s_avx2
#include "_microkernels_impl.h"
#define HELD_V bpfast_v8f
#define HELD_LANES 8
#include "_outer_impl.h"
#undef HELD_V
#undef HELD_LANES
#include "_activations_impl.h"
#include "_rules_impl.h"
#include "_noise_impl.h"
#undef NAME
#undef ISA_TARGET
#define ISA_TARGET __attribute__((target("arch=x86-64-v4")))     /* see above */
#define NAME(x) bpfast_##x##_s_avx512
#include "_noise_impl.h"
#undef ISA_TARGET
#define ISA_TARGET BPFAST_WIDE_VECTORS
#include "_activations_impl.h"
#define HELD_V bpfast_v16f
#define HELD_LANES 16
#include "_outer_impl.h"
#undef HELD_V
#undef HELD_LANES
#undef NAME
#undef ISA_TARGET
#endif
#undef T
#undef V
#undef LANES
#undef HYPER
#undef ROWS
#undef SQRT
#undef FABS
#undef COPYSIGN
#undef EXP_NEGATIVE
#undef EXPM1_NEGATIVE
#undef UNIFORMS
#undef LOG_UNIT
#undef COS_SIN_TURN

/* --- the tables, and the choice ------------------------------------------------------------ */

typedef struct {
    void (*abt)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t, const double*, ptrdiff_t, double*,
                ptrdiff_t);
    void (*atb)(ptrdiff_t, ptrdiff_t, ptrdiff_t, double, double, const double*, ptrdiff_t, const double*,
                ptrdiff_t, double*, ptrdiff_t, double*, const bpfast_hyper_d*);
    void (*ab)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t, const double*, ptrdiff_t, double*,
               ptrdiff_t);
    void (*activate)(double*, const double*, double*, double*, ptrdiff_t, int, int);
    void (*update)(const bpfast_hyper_d*, double, ptrdiff_t, const double*, double*, double*, double*);
    void (*outer)(ptrdiff_t, ptrdiff_t, const double*, const double*, double*, double*);
    void (*rows_open)(bpfast_rows_d*, double*);
    void (*rows_outer)(bpfast_rows_d*, ptrdiff_t, ptrdiff_t, const double*, const double*);
    void (*rows_close)(bpfast_rows_d*);
    void (*normals)(uint64_t, uint64_t, ptrdiff_t, double*);
    void (*row_squares)(ptrdiff_t, ptrdiff_t, const double*, double*);
    int (*finite)(ptrdiff_t, const double*);
    void (*panels)(ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t, double*);
    void (*abt_panels)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t, const double*, double*,
                       ptrdiff_t);
    void (*atb_rows)(ptrdiff_t, ptrdiff_t, ptrdiff_t, double, int, const double*, ptrdiff_t, const double*,
                     ptrdiff_t, double*, ptrdiff_t);
    void (*atb_packed)(ptrdiff_t, ptrdiff_t, ptrdiff_t, double, const double*, const double*, double*,
                       ptrdiff_t);
} bpfast_loops_d;

static const bpfast_loops_d bpfast_loops_d_baseline = {
    bpfast_abt_d_baseline, bpfast_atb_d_baseline, bpfast_ab_d_baseline,
    bpfast_activate_d_baseline, bpfast_update_d_baseline, bpfast_outer_d_baseline,
    bpfast_rows_open_d_baseline, bpfast_rows_outer_d_baseline, bpfast_rows_close_d_baseline,
    bpfast_normals_d_baseline, bpfast_row_squares_d_baseline, bpfast_finite_d_baseline,
    bpfast_panels_d_baseline, bpfast_abt_panels_d_baseline, bpfast_atb_rows_d_baseline,
    bpfast_atb_packed_d_baseline};
#if BPFAST_HAVE_AVX2_VARIANT
static const bpfast_loops_d bpfast_loops_d_avx2 = {
    bpfast_abt_d_avx2, bpfast_atb_d_avx2, bpfast_ab_d_avx2,
    bpfast_activate_d_avx2, bpfast_update_d_avx2, bpfast_outer_d_avx2,
    bpfast_rows_open_d_avx2, bpfast_rows_outer_d_avx2, bpfast_rows_close_d_avx2,
    bpfast_normals_d_avx2, bpfast_row_squares_d_avx2, bpfast_finite_d_avx2,
    bpfast_panels_d_avx2, bpfast_abt_panels_d_avx2, bpfast_atb_rows_d_avx2,
    bpfast_atb_packed_d_avx2};
/* x86-64-v4: x86-64-v3's loops, the noise's and the activations' in their place
 * (bpfast_choose_isa). */
static bpfast_loops_d bpfast_loops_d_avx512;
#endif
static const bpfast_loops_d* bpfast_d = &bpfast_loops_d_baseline;

/* The names the kernels call, each through the variant chosen at import. */
static void bpfast_abt_d(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, const double* A, ptrdiff_t lda,
                        const double* W, ptrdiff_t ldw, double* Z, ptrdiff_t ldz) {
    bpfast_d->abt(m, nj, ni, A, lda, W, ldw, Z, ldz);
}
static void bpfast_atb_d(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, double alpha, double beta,
                        const double* D, ptrdiff_t ldd, const double* A, ptrdiff_t lda, double* W,
                        ptrdiff_t ldw, double* Vel, const bpfast_hyper_d* h) {
    bpfast_d->atb(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw, Vel, h);
}
static void bpfast_ab_d(ptrdiff_t m, ptrdiff_t ni, ptrdiff_t nj, const double* D, ptrdiff_t ldd,
                       const double* W, ptrdiff_t ldw, double* Tout, ptrdiff_t ldt) {
    bpfast_d->ab(m, ni, nj, D, ldd, W, ldw, Tout, ldt);
}
static void bpfast_activate_d(double* z, const double* b, double* a, double* s, ptrdiff_t count,
                             int activation, int keep_z) {
    bpfast_d->activate(z, b, a, s, count, activation, keep_z);
}
static void bpfast_update_d(const bpfast_hyper_d* h, double l2, ptrdiff_t n, const double* g,
                           double* theta, double* v, double* r) {
    bpfast_d->update(h, l2, n, g, theta, v, r);
}
static void bpfast_outer_d(ptrdiff_t nj, ptrdiff_t ni, const double* d, const double* a, double* G,
                          double* B) {
    bpfast_d->outer(nj, ni, d, a, G, B);
}
static void bpfast_rows_open_d(bpfast_rows_d* w, double* first) {
    bpfast_d->rows_open(w, first);
}
static void bpfast_rows_outer_d(bpfast_rows_d* w, ptrdiff_t nj, ptrdiff_t ni, const double* d,
                                 const double* a) {
    bpfast_d->rows_outer(w, nj, ni, d, a);
}
static void bpfast_rows_close_d(bpfast_rows_d* w) {
    bpfast_d->rows_close(w);
}
static void bpfast_normals_d(uint64_t base, uint64_t q0, ptrdiff_t pairs, double* out) {
    bpfast_d->normals(base, q0, pairs, out);
}
static void bpfast_row_squares_d(ptrdiff_t rows, ptrdiff_t width, const double* M, double* out) {
    bpfast_d->row_squares(rows, width, M, out);
}
static int bpfast_finite_d(ptrdiff_t n, const double* v) {
    return bpfast_d->finite(n, v);
}
static void bpfast_panels_d(ptrdiff_t nj, ptrdiff_t ni, const double* W, ptrdiff_t ldw, double* P) {
    bpfast_d->panels(nj, ni, W, ldw, P);
}
static void bpfast_abt_panels_d(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, const double* A,
                                 ptrdiff_t lda, const double* P, double* Z, ptrdiff_t ldz) {
    bpfast_d->abt_panels(m, nj, ni, A, lda, P, Z, ldz);
}
static void bpfast_atb_rows_d(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, double alpha, int add,
                               const double* D, ptrdiff_t ldd, const double* A, ptrdiff_t lda, double* W,
                               ptrdiff_t ldw) {
    bpfast_d->atb_rows(m, nj, ni, alpha, add, D, ldd, A, lda, W, ldw);
}
static void bpfast_atb_packed_d(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, double alpha,
                                 const double* Q, const double* P, double* W, ptrdiff_t ldw) {
    bpfast_d->atb_packed(m, nj, ni, alpha, Q, P, W, ldw);
}

typedef struct {
    void (*abt)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, const float*, ptrdiff_t, float*,
                ptrdiff_t);
    void (*atb)(ptrdiff_t, ptrdiff_t, ptrdiff_t, float, float, const float*, ptrdiff_t, const float*,
                ptrdiff_t, float*, ptrdiff_t, float*, const bpfast_hyper_s*);
    void (*ab)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, const float*, ptrdiff_t, float*,
               ptrdiff_t);
    void (*activate)(float*, const float*, float*, float*, ptrdiff_t, int, int);
    void (*update)(const bpfast_hyper_s*, float, ptrdiff_t, const float*, float*, float*, float*);
    void (*outer)(ptrdiff_t, ptrdiff_t, const float*, const float*, float*, float*);
    void (*rows_open)(bpfast_rows_s*, float*);
    void (*rows_outer)(bpfast_rows_s*, ptrdiff_t, ptrdiff_t, const float*, const float*);
    void (*rows_close)(bpfast_rows_s*);
    void (*normals)(uint64_t, uint64_t, ptrdiff_t, float*);
    void (*row_squares)(ptrdiff_t, ptrdiff_t, const float*, double*);
    int (*finite)(ptrdiff_t, const float*);
    void (*panels)(ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, float*);
    void (*abt_panels)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, const float*, float*,
                       ptrdiff_t);
    void (*atb_rows)(ptrdiff_t, ptrdiff_t, ptrdiff_t, float, int, const float*, ptrdiff_t, const float*,
                     ptrdiff_t, float*, ptrdiff_t);
    void (*atb_packed)(ptrdiff_t, ptrdiff_t, ptrdiff_t, float, const float*, const float*, float*,
                       ptrdiff_t);
} bpfast_loops_s;

static const bpfast_loops_s bpfast_loops_s_baseline = {
    bpfast_abt_s_baseline, bpfast_atb_s_baseline, bpfast_ab_s_baseline,
    bpfast_activate_s_baseline, bpfast_update_s_baseline, bpfast_outer_s_baseline,
    bpfast_rows_open_s_baseline, bpfast_rows_outer_s_baseline, bpfast_rows_close_s_baseline,
    bpfast_normals_s_baseline, bpfast_row_squares_s_baseline, bpfast_finite_s_baseline,
    bpfast_panels_s_baseline, bpfast_abt_panels_s_baseline, bpfast_atb_rows_s_baseline,
    bpfast_atb_packed_s_baseline};
#if BPFAST_HAVE_AVX2_VARIANT
static const bpfast_loops_s bpfast_loops_s_avx2 = {
    bpfast_abt_s_avx2, bpfast_atb_s_avx2, bpfast_ab_s_avx2,
    bpfast_activate_s_avx2, bpfast_update_s_avx2, bpfast_outer_s_avx2,
    bpfast_rows_open_s_avx2, bpfast_rows_outer_s_avx2, bpfast_rows_close_s_avx2,
    bpfast_normals_s_avx2, bpfast_row_squares_s_avx2, bpfast_finite_s_avx2,
    bpfast_panels_s_avx2, bpfast_abt_panels_s_avx2, bpfast_atb_rows_s_avx2,
    bpfast_atb_packed_s_avx2};
/* x86-64-v4: x86-64-v3's loops, the noise's and the activations' in their place
 * (bpfast_choose_isa). */
static bpfast_loops_s bpfast_loops_s_avx512;
#endif
static const bpfast_loops_s* bpfast_s = &bpfast_loops_s_baseline;

/* The names the kernels call, each through the variant chosen at import. */
static void bpfast_abt_s(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, const float* A, ptrdiff_t lda,
                        const float* W, ptrdiff_t ldw, float* Z, ptrdiff_t ldz) {
    bpfast_s->abt(m, nj, ni, A, lda, W, ldw, Z, ldz);
}
static void bpfast_atb_s(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, float alpha, float beta,
                        const float* D, ptrdiff_t ldd, const float* A, ptrdiff_t lda, float* W,
                        ptrdiff_t ldw, float* Vel, const bpfast_hyper_s* h) {
    bpfast_s->atb(m, nj, ni, alpha, beta, D, ldd, A, lda, W, ldw, Vel, h);
}
static void bpfast_ab_s(ptrdiff_t m, ptrdiff_t ni, ptrdiff_t nj, const float* D, ptrdiff_t ldd,
                       const float* W, ptrdiff_t ldw, float* Tout, ptrdiff_t ldt) {
    bpfast_s->ab(m, ni, nj, D, ldd, W, ldw, Tout, ldt);
}
static void bpfast_activate_s(float* z, const float* b, float* a, float* s, ptrdiff_t count,
                             int activation, int keep_z) {
    bpfast_s->activate(z, b, a, s, count, activation, keep_z);
}
static void bpfast_update_s(const bpfast_hyper_s* h, float l2, ptrdiff_t n, const float* g,
                           float* theta, float* v, float* r) {
    bpfast_s->update(h, l2, n, g, theta, v, r);
}
static void bpfast_outer_s(ptrdiff_t nj, ptrdiff_t ni, const float* d, const float* a, float* G,
                          float* B) {
    bpfast_s->outer(nj, ni, d, a, G, B);
}
static void bpfast_rows_open_s(bpfast_rows_s* w, float* first) {
    bpfast_s->rows_open(w, first);
}
static void bpfast_rows_outer_s(bpfast_rows_s* w, ptrdiff_t nj, ptrdiff_t ni, const float* d,
                                 const float* a) {
    bpfast_s->rows_outer(w, nj, ni, d, a);
}
static void bpfast_rows_close_s(bpfast_rows_s* w) {
    bpfast_s->rows_close(w);
}
static void bpfast_normals_s(uint64_t base, uint64_t q0, ptrdiff_t pairs, float* out) {
    bpfast_s->normals(base, q0, pairs, out);
}
static void bpfast_row_squares_s(ptrdiff_t rows, ptrdiff_t width, const float* M, double* out) {
    bpfast_s->row_squares(rows, width, M, out);
}
static int bpfast_finite_s(ptrdiff_t n, const float* v) {
    return bpfast_s->finite(n, v);
}
static void bpfast_panels_s(ptrdiff_t nj, ptrdiff_t ni, const float* W, ptrdiff_t ldw, float* P) {
    bpfast_s->panels(nj, ni, W, ldw, P);
}
static void bpfast_abt_panels_s(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, const float* A,
                                 ptrdiff_t lda, const float* P, float* Z, ptrdiff_t ldz) {
    bpfast_s->abt_panels(m, nj, ni, A, lda, P, Z, ldz);
}
static void bpfast_atb_rows_s(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, float alpha, int add,
                               const float* D, ptrdiff_t ldd, const float* A, ptrdiff_t lda, float* W,
                               ptrdiff_t ldw) {
    bpfast_s->atb_rows(m, nj, ni, alpha, add, D, ldd, A, lda, W, ldw);
}
static void bpfast_atb_packed_s(ptrdiff_t m, ptrdiff_t nj, ptrdiff_t ni, float alpha,
                                 const float* Q, const float* P, float* W, ptrdiff_t ldw) {
    bpfast_s->atb_packed(m, nj, ni, alpha, Q, P, W, ldw);
}

static const char* bpfast_isa_in_use = "baseline";

/* The best variant this CPU runs: 2 for x86-64-v4 (AVX-512F, BW, CD, DQ, VL: what its code may
 * use), 1 for x86-64-v3 (AVX2, FMA, BMI1/2, …), 0 for the baseline. */
static int bpfast_cpu_level(void) {
#if BPFAST_HAVE_AVX2_VARIANT
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 2;
    return __builtin_cpu_supports("x86-64-v3") ? 1 : 0;
#else
    return 0;
#endif
}

/* Point the tables at a variant: request NULL or "" for the best this CPU runs, or one of
 * "baseline", "x86-64-v3", "x86-64-v4" by name. Returns 0, or -1 (and changes nothing) for a
 * request this CPU or build cannot meet. */
static int bpfast_choose_isa(const char* request) {
    static const char* const names[] = {"baseline", "x86-64-v3", "x86-64-v4"};
    int best = bpfast_cpu_level(), level = -1;
    if (request == NULL || request[0] == '\0') level = best;
    for (int i = 0; i <= best; i++)
        if (request != NULL && strcmp(request, names[i]) == 0) level = i;
    if (level < 0) return -1;
#if BPFAST_HAVE_AVX2_VARIANT
    if (level > 0) {
        bpfast_loops_d_avx512 = bpfast_loops_d_avx2;
        bpfast_loops_d_avx512.normals = bpfast_normals_d_avx512;
        bpfast_loops_d_avx512.activate = bpfast_activate_d_avx512;
        bpfast_loops_d_avx512.outer = bpfast_outer_d_avx512;
        bpfast_loops_d_avx512.rows_open = bpfast_rows_open_d_avx512;
        bpfast_loops_d_avx512.rows_outer = bpfast_rows_outer_d_avx512;
        bpfast_loops_d_avx512.rows_close = bpfast_rows_close_d_avx512;
        bpfast_loops_s_avx512 = bpfast_loops_s_avx2;
        bpfast_loops_s_avx512.normals = bpfast_normals_s_avx512;
        bpfast_loops_s_avx512.activate = bpfast_activate_s_avx512;
        bpfast_loops_s_avx512.outer = bpfast_outer_s_avx512;
        bpfast_loops_s_avx512.rows_open = bpfast_rows_open_s_avx512;
        bpfast_loops_s_avx512.rows_outer = bpfast_rows_outer_s_avx512;
        bpfast_loops_s_avx512.rows_close = bpfast_rows_close_s_avx512;
        bpfast_d = level == 2 ? &bpfast_loops_d_avx512 : &bpfast_loops_d_avx2;
        bpfast_s = level == 2 ? &bpfast_loops_s_avx512 : &bpfast_loops_s_avx2;
        bpfast_isa_in_use = names[level];
        return 0;
    }
#endif
    bpfast_d = &bpfast_loops_d_baseline;
    bpfast_s = &bpfast_loops_s_baseline;
    bpfast_isa_in_use = "baseline";
    return 0;
}

#endif
