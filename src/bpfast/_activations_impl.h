/* The activations of a layer, for one element type and one instruction set: included by
 * _dispatch.h once for each, with these defined (and undefined after):
 *
 *   T                 the element type, double or float
 *   ISA_TARGET  the target attribute of the outer functions (empty for the baseline)
 *   NAME(x)           the name of function x for this type and instruction set
 *   EXP_NEGATIVE, EXPM1_NEGATIVE
 *                     bpfast_exp_negative_d, bpfast_expm1_negative_d or their _s (_activations.h)
 *   FABS, COPYSIGN    fabs and copysign for T
 *
 * The formulas are in _activations.h. No include guard: this file is meant to be included again.
 */

BPFAST_INLINE void NAME(sigmoid)(T z, T* a, T* slope) {
    T e = EXP_NEGATIVE(-FABS(z));
    T inv = (T) 1 / ((T) 1 + e);
    T a_negative = e * inv;
    *a = z >= 0 ? inv : a_negative;
    *slope = a_negative * inv;
}

BPFAST_INLINE void NAME(tanh)(T z, T* a, T* slope) {
    T e, m = EXPM1_NEGATIVE(-2 * FABS(z), &e);
    /* 1 + e, not 2 + m: the same number, but not behind m's select, which gcc would otherwise
     * resolve by computing the division twice, once for each candidate m. */
    T inv = (T) 1 / ((T) 1 + e);
    *a = COPYSIGN(-m * inv, z);
    *slope = 4 * e * inv * inv;
}

/* z ← z + b, then F(z, &a, &s) for each neuron. Two loops, so that gcc sees when s is z and
 * vectorizes the in-place one too. */
#define BPFAST_EACH_NEURON(F)                                                                   \
    if (s == z) {                                                                               \
        for (ptrdiff_t i = 0; i < count; i++) F(z[i] + b[i], &a[i], &z[i]);                     \
    } else {                                                                                    \
        for (ptrdiff_t i = 0; i < count; i++) {                                                 \
            T z_i = z[i] + b[i];                                                                \
            z[i] = z_i;                                                                         \
            F(z_i, &a[i], &s[i]);                                                               \
        }                                                                                       \
    }

/* z ← z + b, a = f(z), s = f'(z) over count neurons; s may be z itself (the slopes replace z).
 * With keep_z (or softmax, whose a needs a whole row), s ← z instead, and a = σ(z) for sigmoid. */
ISA_TARGET static void NAME(activate)(T* z, const T* b, T* a, T* s, ptrdiff_t count,
                                      int activation, int keep_z) {
    T unused;
    if (keep_z || activation == BPFAST_SOFTMAX) {
        for (ptrdiff_t i = 0; i < count; i++) {
            T z_i = z[i] + b[i];
            z[i] = z_i;
            s[i] = z_i;
            if (activation == BPFAST_SIGMOID) NAME(sigmoid)(z_i, &a[i], &unused);
        }
    } else if (activation == BPFAST_SIGMOID) {
        BPFAST_EACH_NEURON(NAME(sigmoid));
    } else if (activation == BPFAST_TANH) {
        BPFAST_EACH_NEURON(NAME(tanh));
    } else if (activation == BPFAST_RELU) {
        for (ptrdiff_t i = 0; i < count; i++) {
            T z_i = z[i] + b[i];
            z[i] = z_i;
            a[i] = z_i <= 0 ? (T) 0 : z_i;        /* max(z, 0) that keeps a NaN; slope 0 at 0 */
            s[i] = z_i > 0 ? (T) 1 : (T) 0;
        }
    } else {
        for (ptrdiff_t i = 0; i < count; i++) {
            T z_i = z[i] + b[i];
            z[i] = z_i;
            a[i] = z_i;
            s[i] = 1;
        }
    }
}

#undef BPFAST_EACH_NEURON
