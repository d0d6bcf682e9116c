/* rng.c — splitmix64 seeding and xoshiro256** generation (see rng.h). */
#include "rng.h"

uint64_t kvq_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void kvq_rng_seed(kvq_rng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = kvq_splitmix64(&st);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;   /* unreachable in practice */
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t kvq_rng_next(kvq_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t kvq_rng_below(kvq_rng *r, uint64_t n) {
    if (n == 0) return 0;
    /* accept x < limit, the largest multiple of n that fits: every residue equally likely */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
    uint64_t x;
    do x = kvq_rng_next(r);
    while (x > limit);
    return x % n;
}

double kvq_rng_uniform(kvq_rng *r) { return (double)(kvq_rng_next(r) >> 11) * 0x1.0p-53; }
