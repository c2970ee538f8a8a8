/* How bpfast's C loops are compiled: each exported one twice, for x86-64-v3 (AVX2 and FMA) and
 * for the baseline, the loader picking the one the CPU runs (target_clones), so that a wheel stays
 * portable and still uses the vector units where they are. Elsewhere (another compiler or system)
 * the same code compiles once, for the baseline. */
#ifndef BPFAST_CLONES_H
#define BPFAST_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define BPFAST_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BPFAST_CLONES
#endif
#define BPFAST_INLINE static inline __attribute__((always_inline))

#endif
