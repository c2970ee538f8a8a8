/* The update rules of fit's steps, elementwise over a stretch of θ (see _kernels.pyx, Rule):
 *
 *   momentum:  v ← μ v + g,  θ ← θ − η v
 *   nesterov:  v ← μ v + g,  θ ← θ − η (g + μ v)
 *   adam:      m ← β1 m + (1 − β1) g,  r ← β2 r + (1 − β2) g²,  θ ← θ − η (m c1) / (√(r c2) + ε)
 *
 * with g = ∂C/∂θ + λ θ (λ = 0 for biases) and Adam's bias corrections c1 = 1 / (1 − β1^t),
 * c2 = 1 / (1 − β2^t); v (Adam: m) and r have θ's layout. Plain loops that gcc vectorizes
 * (_rules_impl.h), compiled per type and instruction set by _dispatch.h: with AVX2, four square
 * roots and divisions at once, where Adam spends its time.
 */
#ifndef BPFAST_RULES_H
#define BPFAST_RULES_H

#include <math.h>
#include <stddef.h>

#include "_codes.h"

/* A rule and its hyper-parameters, in the precision of the network (built once per fit; c1 and
 * c2 change with every step of Adam). */
typedef struct {
    int rule;
    double eta, mu, l2, beta1, beta2, eps, c1, c2;
} bpfast_hyper_d;

typedef struct {
    int rule;
    float eta, mu, l2, beta1, beta2, eps, c1, c2;
} bpfast_hyper_s;

#endif
