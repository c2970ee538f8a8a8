/* The draw of the noise for one element type and one instruction set: included by _dispatch.h
 * once for each, with T, SQRT, ISA_TARGET and NAME(x) defined, and UNIFORMS, LOG_UNIT and
 * COS_SIN_TURN the _noise.h functions for T (all undefined after). The formulas are in
 * _noise.h. No include guard: meant to be included again.
 */

/* out[2j], out[2j + 1] = ξ_2q, ξ_2q+1 for q = q0 + j, j < pairs, of the stream `base`. */
ISA_TARGET static void NAME(normals)(uint64_t base, uint64_t q0, ptrdiff_t pairs,
                                     T* restrict out) {
    for (ptrdiff_t j = 0; j < pairs; j++) {
        T u1, u2, c, s;
        UNIFORMS(bpfast_mix(base + (q0 + (uint64_t) j + 1) * BPFAST_GAMMA), &u1, &u2);
        T rho = SQRT(-2 * LOG_UNIT(u1));
        COS_SIN_TURN(u2, &c, &s);
        out[2 * j] = rho * c;
        out[2 * j + 1] = rho * s;
    }
}
