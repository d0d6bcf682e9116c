/* rng.h — kvq's seeded pseudo-random generator: xoshiro256** (Blackman & Vigna) with its state
 * seeded by splitmix64 from one 64-bit seed. Deterministic on every platform; the same seed gives
 * the same stream forever (capture windows depend on it: docs/capture-format.md). Not for
 * cryptography. */
#ifndef KVQ_RNG_H
#define KVQ_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_rng {
    uint64_t s[4];
} kvq_rng;

/* One step of splitmix64: advances *state and returns the next output. */
uint64_t kvq_splitmix64(uint64_t *state);
/* Seed: s[i] = successive splitmix64 outputs from `seed` (never all zero). */
void kvq_rng_seed(kvq_rng *r, uint64_t seed);
/* Next 64 random bits (xoshiro256**). */
uint64_t kvq_rng_next(kvq_rng *r);
/* Uniform integer in [0, n), unbiased (rejection of the top partial range); 0 when n == 0. */
uint64_t kvq_rng_below(kvq_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double kvq_rng_uniform(kvq_rng *r);

#ifdef __cplusplus
}
#endif
#endif
