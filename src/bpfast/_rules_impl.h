/* The update rules for one element type and one instruction set: included by _dispatch.h once
 * for each, with T, HYPER, SQRT (sqrt or sqrtf) and NAME(x) defined (and undefined after).
 * The formulas are in _rules.h. No include guard: meant to be included again.
 */

/* θ_i, v_i, r_i for i < n, from g_i = ∂C/∂θ_i, with the L2 coefficient l2 (0 for biases);
 * r may be v itself for the rules that have no r (they never touch it). */
ISA_TARGET static void NAME(update)(const HYPER* h, T l2, ptrdiff_t n, const T* restrict g,
                         T* restrict theta, T* restrict v, T* restrict r) {
    const T eta = h->eta, mu = h->mu;
    if (h->rule == BPFAST_MOMENTUM) {
        for (ptrdiff_t i = 0; i < n; i++) {
            T v_i = mu * v[i] + (g[i] + l2 * theta[i]);
            v[i] = v_i;
            theta[i] -= eta * v_i;
        }
    } else if (h->rule == BPFAST_NESTEROV) {
        for (ptrdiff_t i = 0; i < n; i++) {
            T g_i = g[i] + l2 * theta[i];
            T v_i = mu * v[i] + g_i;
            v[i] = v_i;
            theta[i] -= eta * (g_i + mu * v_i);
        }
    } else {
        const T beta1 = h->beta1, beta2 = h->beta2, eps = h->eps, c1 = h->c1, c2 = h->c2;
        for (ptrdiff_t i = 0; i < n; i++) {
            T g_i = g[i] + l2 * theta[i];
            T m_i = beta1 * v[i] + (1 - beta1) * g_i;
            T r_i = beta2 * r[i] + (1 - beta2) * g_i * g_i;
            v[i] = m_i;
            r[i] = r_i;
            theta[i] -= eta * (m_i * c1) / (SQRT(r_i * c2) + eps);
        }
    }
}
