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
 * computed, then one is selected), so gcc vectorizes the loops. This file holds e^x, written
 * out for double and for float (their constants and degrees differ); the loops over a layer,
 * written once for any type, are in _activations_impl.h, compiled per type and instruction set
 * by _dispatch.h. A NaN z gives a NaN a: divergence must show.
 */
#ifndef BPFAST_ACTIVATIONS_H
#define BPFAST_ACTIVATIONS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_codes.h"

#define BPFAST_INLINE static inline __attribute__((always_inline))

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

#endif
