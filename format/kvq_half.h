/* kvq_half.h — IEEE fp16 and bfloat16 <-> fp32 conversions, round-to-nearest-even, with NaN and
 * Inf preserved and fp16 subnormals handled. Header-only, libc-free; shared by loaders, the
 * quantization reference (docs/quantization.md: h()) and the CUDA runtime's host code. */
#ifndef KVQ_HALF_H
#define KVQ_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t kvq_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float kvq_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float kvq_bf16_to_f32(uint16_t h) { return kvq_bits_f32((uint32_t)h << 16); }

static inline uint16_t kvq_f32_to_bf16(float f) {
    uint32_t u = kvq_f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1);                                          /* RNE */
    return (uint16_t)(u >> 16);
}

static inline float kvq_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F) return kvq_bits_f32(sign | 0x7F800000u | (man << 13));          /* Inf/NaN */
    if (exp == 0) {
        if (!man) return kvq_bits_f32(sign);                                            /* +-0 */
        float f = (float)man * (1.0f / 16777216.0f);                                    /* 2^-24 */
        return sign ? -f : f;                                                           /* subnormal */
    }
    return kvq_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t kvq_f32_to_f16(float f) {
    uint32_t u = kvq_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00);                 /* NaN */
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00);                /* overflow -> Inf (RNE) */
    if (a < 0x38800000u) {                                                 /* fp16 subnormal or 0 */
        if (a < 0x33000000u) return sign;                                  /* < 2^-25: rounds to 0 */
        uint32_t exp = a >> 23, man = (a & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - exp;                                        /* 14..24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xFFFu + ((a >> 13) & 1);                             /* RNE on 13 dropped bits */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* h(): the fp16 rounding of docs/quantization.md. */
static inline float kvq_round_f16(float f) { return kvq_f16_to_f32(kvq_f32_to_f16(f)); }

#endif
