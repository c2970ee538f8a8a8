/* The noise of private steps (DP-SGD's ν R ξ, see _kernels.pyx): standard normal numbers from a
 * counter-based generator, so that coordinate i of step t gets the same number whichever thread
 * draws it, in whatever order.
 *
 *   stream   each step has its own: base = mix(key ^ mix(t·γ' + γ))
 *   pair q   coordinates 2q and 2q + 1 come from one 64-bit output of the stream,
 *            h = mix(base + (q + 1)·γ) — SplitMix64's output function (Steele, Lea and Flood,
 *            2014), γ = 0x9E3779B97F4A7C15 — split into its top 32 bits a and its low 32 bits b:
 *            u₁ = 1 − a 2⁻³² ∈ (0, 1], u₂ = b 2⁻³² ∈ [0, 1), and Box–Muller:
 *            ρ = √(−2 ln u₁), ξ_2q = ρ cos 2πu₂, ξ_2q+1 = ρ sin 2πu₂
 *
 * A float network draws the same numbers in float (u₁ and u₂ rounded to float first); a double
 * network in double. ln and sin/cos are polynomials without calls, tables or branches (written
 * below), so that gcc vectorizes the whole draw: libm's scalar calls cost ~14 ns a number, more
 * than the rest of a private step. Each is exact to about an ulp; the tests compare the
 * kernels' draw with bpfast.reference's (Python's math.log, cos and sin). u₁ ≥ 2⁻³² bounds
 * |ξ| by √(64 ln 2) = 6.66 (a normal number beyond it has probability 3e-11). Not a
 * cryptographic generator: DP's guarantees assume ideal noise, which no floating-point sampler
 * is; the docs say so.
 *
 * The loop over a stretch of pairs is in _noise_impl.h, compiled per type and instruction set
 * by _dispatch.h like the other loops.
 */
#ifndef BPFAST_NOISE_H
#define BPFAST_NOISE_H

#include <stdint.h>
#include <string.h>

#define BPFAST_NOISE_INLINE static inline __attribute__((always_inline))

#define BPFAST_GAMMA 0x9E3779B97F4A7C15ULL

BPFAST_NOISE_INLINE uint64_t bpfast_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The base of step t's stream under key. */
BPFAST_NOISE_INLINE uint64_t bpfast_stream(uint64_t key, uint64_t t) {
    return bpfast_mix(key ^ bpfast_mix(t * 0xD1B54A32D192ED03ULL + BPFAST_GAMMA));
}

/* --- double ---------------------------------------------------------------------------------- */

/* u₁ and u₂ of h, exactly: a 32-bit integer put under the exponent of 1.0 is 1 + it·2⁻³². */
BPFAST_NOISE_INLINE void bpfast_uniforms_d(uint64_t h, double* u1, double* u2) {
    uint64_t v1_bits = 0x3FF0000000000000ULL | ((h >> 32) << 20);
    uint64_t v2_bits = 0x3FF0000000000000ULL | ((h & 0xFFFFFFFFULL) << 20);
    double v1, v2;
    memcpy(&v1, &v1_bits, 8);
    memcpy(&v2, &v2_bits, 8);
    *u1 = 2.0 - v1;
    *u2 = v2 - 1.0;
}

/* ln u for u in (0, 1] (a normal number): u = 2^e m with m in [√½, √2), ln m = 2 atanh s =
 * 2 (s + s³/3 + s⁵/5 + …), s = (m − 1)/(m + 1), |s| ≤ 0.172: to s^21, truncation below 1e-17. */
BPFAST_NOISE_INLINE double bpfast_log_unit_d(double u) {
    uint64_t bits; memcpy(&bits, &u, 8);
    /* Rebias so that the mantissa lands in [√½, √2) (0x3FE6A09E667F3BCD is √½'s bits), and
     * offset e by 1024 so that it is found by a logical shift (AVX2 has no arithmetic one for
     * 64 bits) and turned into a double by the magic number 2^52 (nor a conversion). */
    uint64_t e_biased = (bits - 0x3FE6A09E667F3BCDULL + (1024ULL << 52)) >> 52;
    uint64_t m_bits = bits - (e_biased << 52) + (1024ULL << 52);
    double m; memcpy(&m, &m_bits, 8);
    uint64_t e_magic = 0x4330000000000000ULL | e_biased;
    double e; memcpy(&e, &e_magic, 8);
    e -= 4503599627370496.0 + 1024.0;
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 21;
    p = p * s2 + 1.0 / 19;
    p = p * s2 + 1.0 / 17;
    p = p * s2 + 1.0 / 15;
    p = p * s2 + 1.0 / 13;
    p = p * s2 + 1.0 / 11;
    p = p * s2 + 1.0 / 9;
    p = p * s2 + 1.0 / 7;
    p = p * s2 + 1.0 / 5;
    p = p * s2 + 1.0 / 3;
    double ln_m = 2.0 * s + (2.0 * s) * (s2 * p);
    return e * 0.6931471805599453 + ln_m;
}

/* cos 2πu and sin 2πu for u in [0, 1]: 4u = k + f with k = round(4u) and |f| ≤ ½ (both exact),
 * r = f π/2, |r| ≤ π/4; sin r to r^17 and cos r to r^16 by their Taylor series (truncation
 * below 1e-17), then the quarter turns k (mod 4) swap them and set their signs. */
BPFAST_NOISE_INLINE void bpfast_cos_sin_turn_d(double u, double* c, double* s) {
    double x = 4.0 * u;
    double t = x + 6755399441055744.0;          /* 1.5·2^52: rounds x to k, in t's low bits */
    double k = t - 6755399441055744.0;
    uint64_t k_bits; memcpy(&k_bits, &t, 8);
    double r = (x - k) * 1.5707963267948966, r2 = r * r;
    double ps = -1.0 / 355687428096000.0;       /* −1/17! */
    ps = ps * r2 + 1.0 / 1307674368000.0;
    ps = ps * r2 - 1.0 / 6227020800.0;
    ps = ps * r2 + 1.0 / 39916800.0;
    ps = ps * r2 - 1.0 / 362880.0;
    ps = ps * r2 + 1.0 / 5040.0;
    ps = ps * r2 - 1.0 / 120.0;
    ps = ps * r2 + 1.0 / 6.0;
    double sin_r = r - (r * r2) * ps;
    double pc = 1.0 / 20922789888000.0;         /* 1/16! */
    pc = pc * r2 - 1.0 / 87178291200.0;
    pc = pc * r2 + 1.0 / 479001600.0;
    pc = pc * r2 - 1.0 / 3628800.0;
    pc = pc * r2 + 1.0 / 40320.0;
    pc = pc * r2 - 1.0 / 720.0;
    pc = pc * r2 + 1.0 / 24.0;
    pc = pc * r2 - 0.5;
    double cos_r = 1.0 + r2 * pc;
    /* The angle is k quarter turns plus r: k = 1 gives (−sin r, cos r), k = 2 (−cos r, −sin r),
     * k = 3 (sin r, −cos r); k = 4 is k = 0. Selected and signed on the bits, with masks, so
     * that gcc vectorizes the selection too. */
    uint64_t quarter = k_bits & 3, swap = 0 - (quarter & 1);
    uint64_t sin_bits, cos_bits;
    memcpy(&sin_bits, &sin_r, 8);
    memcpy(&cos_bits, &cos_r, 8);
    uint64_t first = ((sin_bits & swap) | (cos_bits & ~swap)) ^ (((quarter + 1) & 2) << 62);
    uint64_t second = ((cos_bits & swap) | (sin_bits & ~swap)) ^ ((quarter & 2) << 62);
    double cos_turn, sin_turn;
    memcpy(&cos_turn, &first, 8);
    memcpy(&sin_turn, &second, 8);
    *c = cos_turn;
    *s = sin_turn;
}

/* --- float ----------------------------------------------------------------------------------- */

/* u₁ and u₂ of h, each rounded to float once: u₁ = c 2⁻³² with c = 2³² − a (a 32-bit c = 0
 * stands for 2³², u₁ = 1). */
BPFAST_NOISE_INLINE void bpfast_uniforms_s(uint64_t h, float* u1, float* u2) {
    uint32_t c = 0u - (uint32_t) (h >> 32), b = (uint32_t) h;
    *u1 = c == 0 ? 1.0f : (float) c * 0x1.0p-32f;
    *u2 = (float) b * 0x1.0p-32f;
}

/* ln u for u in (0, 1] (a normal float), as bpfast_log_unit_d: to s^11, truncation below 1e-9. */
BPFAST_NOISE_INLINE float bpfast_log_unit_s(float u) {
    uint32_t bits; memcpy(&bits, &u, 4);
    uint32_t e_biased = (bits - 0x3F3504F3u + (128u << 23)) >> 23;       /* √½'s bits */
    uint32_t m_bits = bits - (e_biased << 23) + (128u << 23);
    float m; memcpy(&m, &m_bits, 4);
    float e = (float) ((int32_t) e_biased - 128);
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = 1.0f / 11;
    p = p * s2 + 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    float ln_m = 2.0f * s + (2.0f * s) * (s2 * p);
    return e * 0.693147181f + ln_m;
}

/* cos 2πu and sin 2πu for u in [0, 1], as bpfast_cos_sin_turn_d: sin r to r^11, cos r to r^12
 * (truncation below 1e-10). */
BPFAST_NOISE_INLINE void bpfast_cos_sin_turn_s(float u, float* c, float* s) {
    float x = 4.0f * u;
    float t = x + 12582912.0f;                  /* 1.5·2^23 */
    float k = t - 12582912.0f;
    uint32_t k_bits; memcpy(&k_bits, &t, 4);
    float r = (x - k) * 1.57079633f, r2 = r * r;
    float ps = -1.0f / 39916800.0f;
    ps = ps * r2 + 1.0f / 362880.0f;
    ps = ps * r2 - 1.0f / 5040.0f;
    ps = ps * r2 + 1.0f / 120.0f;
    ps = ps * r2 - 1.0f / 6.0f;
    float sin_r = r + (r * r2) * ps;
    float pc = 1.0f / 479001600.0f;
    pc = pc * r2 - 1.0f / 3628800.0f;
    pc = pc * r2 + 1.0f / 40320.0f;
    pc = pc * r2 - 1.0f / 720.0f;
    pc = pc * r2 + 1.0f / 24.0f;
    pc = pc * r2 - 0.5f;
    float cos_r = 1.0f + r2 * pc;
    uint32_t quarter = k_bits & 3, swap = 0u - (quarter & 1);
    uint32_t sin_bits, cos_bits;
    memcpy(&sin_bits, &sin_r, 4);
    memcpy(&cos_bits, &cos_r, 4);
    uint32_t first = ((sin_bits & swap) | (cos_bits & ~swap)) ^ (((quarter + 1) & 2) << 30);
    uint32_t second = ((cos_bits & swap) | (sin_bits & ~swap)) ^ ((quarter & 2) << 30);
    float cos_turn, sin_turn;
    memcpy(&cos_turn, &first, 4);
    memcpy(&sin_turn, &second, 4);
    *c = cos_turn;
    *s = sin_turn;
}

#endif
