/* The activations of one layer, elementwise: z ← z + b, a = f(z), s = f'(z) (see _kernels.pyx).
 *
 *   sigmoid   a = 1 / (1 + e^(−z))              s = e^(−|z|) / (1 + e^(−|z|))²
 *   tanh      a = sign(z) (1 − e) / (1 + e)     s = 4e / (1 + e)²,   e = e^(−2|z|)
 *   relu      a = max(z, 0)                     s = 1 if z > 0 else 0
 *   identity  a = z                             s = 1
 *
 * Everything comes from e^x with x ≤ 0, so nothing overflows: σ(−1000) = 0 and tanh(1000) = 1
 * exactly, and the slopes keep their full relative precision where f saturates. e^x is a
 * polynomial without calls or tables, and every loop body is branch-free (both candidates are
 * computed, then one is selected), so gcc vectorizes the loops; bpfast_activate is compiled for
 * x86-64-v3 (AVX2: 4 doubles or 8 floats at a time) and for the baseline, the loader picking
 * what the CPU runs, like the microkernels. A NaN z gives a NaN a: divergence must show.
 */
#ifndef BPFAST_ACTIVATIONS_H
#define BPFAST_ACTIVATIONS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_clones.h"

enum { BPFAST_SIGMOID = 0, BPFAST_TANH = 1, BPFAST_RELU = 2, BPFAST_IDENTITY = 3,
       BPFAST_SOFTMAX = 4 };

/* 2^n, for an integer n held in the low bits of t's mantissa (see bpfast_exp_negative):
   n + bias, shifted into the exponent field. memcpy is how C spells a bit cast. */
BPFAST_INLINE double bpfast_pow2_d(double t) {
    uint64_t bits; memcpy(&bits, &t, 8);
    bits = (bits + 1023u) << 52;
    double r; memcpy(&r, &bits, 8); return r;
}
BPFAST_INLINE float bpfast_pow2_s(float t) {
    uint32_t bits; memcpy(&bits, &t, 4);
    bits = (bits + 127u) << 23;
    float r; memcpy(&r, &bits, 4); return r;
}

/* e^x − 1 for x ≤ 0, into the result, and e^x into *e; 0 and −1 below the smallest normal e^x.
 * e^x = 2^n e^r with n = round(x / ln 2) and |r| ≤ ln(2)/2 (adding 1.5·2^52, or 1.5·2^23,
 * rounds x / ln 2 to an integer n that then sits in the low bits of t); e^r − 1 = r + r²/2 + …
 * by its Taylor series (to r^13 in double, r^7 in float: truncation below half an ulp), summed
 * without its leading 1, so that for n = 0 (|x| ≤ ln(2)/2) e^x − 1 keeps its full precision
 * (1 − e^x would cancel), as libm's expm1 does. */
BPFAST_INLINE double bpfast_expm1_negative_d(double x, double* e) {
    double t = x * 1.4426950408889634 + 6755399441055744.0;
    double n = t - 6755399441055744.0;
    double r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
    double q = 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = (q * r) * r + r;
    double scaled = bpfast_pow2_d(t) * (1.0 + q);
    *e = x < -708.0 ? 0.0 : scaled;            /* a NaN x falls through: it must propagate */
    return x < -708.0 ? -1.0 : (n == 0 ? q : scaled - 1.0);
}
BPFAST_INLINE float bpfast_expm1_negative_s(float x, float* e) {
    float t = x * 1.44269504f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = (q * r) * r + r;
    float scaled = bpfast_pow2_s(t) * (1.0f + q);
    *e = x < -87.0f ? 0.0f : scaled;
    return x < -87.0f ? -1.0f : (n == 0 ? q : scaled - 1.0f);
}

/* e^x for x ≤ 0, within a few ulp. */
BPFAST_INLINE double bpfast_exp_negative_d(double x) {
    double e; bpfast_expm1_negative_d(x, &e); return e;
}
BPFAST_INLINE float bpfast_exp_negative_s(float x) {
    float e; bpfast_expm1_negative_s(x, &e); return e;
}

/* z ← z + b, then F(z, &a, &s) for each neuron of bpfast_activate. Two loops, so that gcc sees
 * when s is z and vectorizes the in-place one too. */
#define BPFAST_EACH_NEURON(T, F)                                                                 \
    if (s == z) {                                                                                \
        for (ptrdiff_t i = 0; i < count; i++) F(z[i] + b[i], &a[i], &z[i]);                      \
    } else {                                                                                     \
        for (ptrdiff_t i = 0; i < count; i++) {                                                  \
            T z_i = z[i] + b[i];                                                                 \
            z[i] = z_i;                                                                          \
            F(z_i, &a[i], &s[i]);                                                                \
        }                                                                                        \
    }

#define BPFAST_DEFINE_ACTIVATIONS(T, SUFFIX, FABS, COPYSIGN)                                               \
BPFAST_INLINE void bpfast_sigmoid_##SUFFIX(T z, T* a, T* slope) {                                \
    T e = bpfast_exp_negative_##SUFFIX(-FABS(z));                                                \
    T inv = (T) 1 / ((T) 1 + e);                                                                 \
    T a_negative = e * inv;                                                                      \
    *a = z >= 0 ? inv : a_negative;                                                              \
    *slope = a_negative * inv;                                                                   \
}                                                                                                \
                                                                                                 \
BPFAST_INLINE void bpfast_tanh_##SUFFIX(T z, T* a, T* slope) {                                   \
    T e, m = bpfast_expm1_negative_##SUFFIX(-2 * FABS(z), &e);                                   \
    /* 1 + e, not 2 + m: the same number, but not behind m's select, which gcc would otherwise  \
     * resolve by computing the division twice, once for each candidate m. */                  \
    T inv = (T) 1 / ((T) 1 + e);                                                                 \
    *a = COPYSIGN(-m * inv, z);                                                                  \
    *slope = 4 * e * inv * inv;                                                                  \
}                                                                                                \
                                                                                                 \
/* z ← z + b, a = f(z), s = f'(z) over count neurons; s may be z itself (the slopes replace z).  \
 * With keep_z (or softmax, whose a needs a whole row), s ← z instead, and a = σ(z) for sigmoid. */ \
BPFAST_CLONES void bpfast_activate_##SUFFIX(T* z, const T* b, T* a, T* s, ptrdiff_t count,        \
                                            int activation, int keep_z) {                         \
    T unused;                                                                                    \
    if (keep_z || activation == BPFAST_SOFTMAX) {                                                \
        for (ptrdiff_t i = 0; i < count; i++) {                                                  \
            T z_i = z[i] + b[i];                                                                 \
            z[i] = z_i;                                                                          \
            s[i] = z_i;                                                                          \
            if (activation == BPFAST_SIGMOID) bpfast_sigmoid_##SUFFIX(z_i, &a[i], &unused);      \
        }                                                                                        \
    } else if (activation == BPFAST_SIGMOID) {                                                   \
        BPFAST_EACH_NEURON(T, bpfast_sigmoid_##SUFFIX);                                          \
    } else if (activation == BPFAST_TANH) {                                                      \
        BPFAST_EACH_NEURON(T, bpfast_tanh_##SUFFIX);                                             \
    } else if (activation == BPFAST_RELU) {                                                      \
        for (ptrdiff_t i = 0; i < count; i++) {                                                  \
            T z_i = z[i] + b[i];                                                                 \
            z[i] = z_i;                                                                          \
            a[i] = z_i <= 0 ? (T) 0 : z_i;        /* max(z, 0) that keeps a NaN; slope 0 at 0 */ \
            s[i] = z_i > 0 ? (T) 1 : (T) 0;                                                      \
        }                                                                                        \
    } else {                                                                                     \
        for (ptrdiff_t i = 0; i < count; i++) {                                                  \
            T z_i = z[i] + b[i];                                                                 \
            z[i] = z_i;                                                                          \
            a[i] = z_i;                                                                          \
            s[i] = 1;                                                                            \
        }                                                                                        \
    }                                                                                            \
}

BPFAST_DEFINE_ACTIVATIONS(double, d, fabs, copysign)
BPFAST_DEFINE_ACTIVATIONS(float, s, fabsf, copysignf)

#endif
