/* The update rules of fit's steps, elementwise over a stretch of θ (see _kernels.pyx, Rule):
 *
 *   momentum:  v ← μ v + g,  θ ← θ − η v
 *   nesterov:  v ← μ v + g,  θ ← θ − η (g + μ v)
 *   adam:      m ← β1 m + (1 − β1) g,  r ← β2 r + (1 − β2) g²,  θ ← θ − η (m c1) / (√(r c2) + ε)
 *
 * with g = ∂C/∂θ + λ θ (λ = 0 for biases) and Adam's bias corrections c1 = 1 / (1 − β1^t),
 * c2 = 1 / (1 − β2^t); v (Adam: m) and r have θ's layout. Plain loops that gcc vectorizes,
 * compiled for x86-64-v3 (AVX2: four square roots and divisions at once, where Adam spends its
 * time) and for the baseline, the loader picking what the CPU runs (as for the microkernels).
 */
#ifndef BPFAST_RULES_H
#define BPFAST_RULES_H

#include <math.h>
#include <stddef.h>

#include "_clones.h"

enum { BPFAST_SGD = 0, BPFAST_MOMENTUM = 1, BPFAST_NESTEROV = 2, BPFAST_ADAM = 3 };

#define BPFAST_DEFINE_RULES(T, SUFFIX, SQRT)                                                     \
typedef struct {                                                                                 \
    int rule;                                                                                    \
    T eta, mu, l2, beta1, beta2, eps, c1, c2;                                                    \
} bpfast_hyper_##SUFFIX;                                                                         \
                                                                                                 \
/* θ_i, v_i, r_i for i < n, from g_i = ∂C/∂θ_i, with the L2 coefficient l2 (0 for biases);     \
 * r may be v itself for the rules that have no r (they never touch it). */                    \
BPFAST_CLONES void bpfast_update_##SUFFIX(const bpfast_hyper_##SUFFIX* h, T l2, ptrdiff_t n,     \
        const T* restrict g, T* restrict theta, T* restrict v, T* restrict r) {                  \
    const T eta = h->eta, mu = h->mu;                                                            \
    if (h->rule == BPFAST_MOMENTUM) {                                                            \
        for (ptrdiff_t i = 0; i < n; i++) {                                                      \
            T v_i = mu * v[i] + (g[i] + l2 * theta[i]);                                          \
            v[i] = v_i;                                                                          \
            theta[i] -= eta * v_i;                                                               \
        }                                                                                        \
    } else if (h->rule == BPFAST_NESTEROV) {                                                     \
        for (ptrdiff_t i = 0; i < n; i++) {                                                      \
            T g_i = g[i] + l2 * theta[i];                                                        \
            T v_i = mu * v[i] + g_i;                                                             \
            v[i] = v_i;                                                                          \
            theta[i] -= eta * (g_i + mu * v_i);                                                  \
        }                                                                                        \
    } else {                                                                                     \
        const T beta1 = h->beta1, beta2 = h->beta2, eps = h->eps, c1 = h->c1, c2 = h->c2;        \
        for (ptrdiff_t i = 0; i < n; i++) {                                                      \
            T g_i = g[i] + l2 * theta[i];                                                        \
            T m_i = beta1 * v[i] + (1 - beta1) * g_i;                                            \
            T r_i = beta2 * r[i] + (1 - beta2) * g_i * g_i;                                      \
            v[i] = m_i;                                                                          \
            r[i] = r_i;                                                                          \
            theta[i] -= eta * (m_i * c1) / (SQRT(r_i * c2) + eps);                               \
        }                                                                                        \
    }                                                                                            \
}

BPFAST_DEFINE_RULES(double, d, sqrt)
BPFAST_DEFINE_RULES(float, s, sqrtf)

#endif
