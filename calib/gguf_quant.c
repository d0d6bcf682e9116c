/* gguf_quant.c — fp32 conversion of F32/F16/BF16 payloads and ggml block formats (gguf_quant.h).
 * Layouts (little-endian, fields in file order; docs/models.md has the same in tables):
 *   32-element blocks, nibble_i = nib[i] & 15 for i < 16, nib[i-16] >> 4 for i >= 16:
 *     Q8_0: fp16 d, int8 q[32];                     x[i] = q[i] * d
 *     Q4_0: fp16 d, uint8 nib[16];                  x[i] = (nibble_i - 8) * d
 *     Q4_1: fp16 d, fp16 m, uint8 nib[16];          x[i] = nibble_i * d + m
 *     Q5_0: fp16 d, u32 qh, uint8 nib[16];          x[i] = (nibble_i + 16*bit_i(qh) - 16) * d
 *     Q5_1: fp16 d, fp16 m, u32 qh, uint8 nib[16];  x[i] = (nibble_i + 16*bit_i(qh)) * d + m
 *   256-element super-blocks (K-quants) are in gguf_kquant.c.
 * Products and sums are single fp32 operations in the order written, as ggml and gguf-py do;
 * they are kept in separate statements so no compiler fuses them into an FMA. */
#include "gguf_quant.h"

#include <string.h>

#include "gguf.h"
#include "gguf_quant_int.h"
#include "kvq_half.h"

static void q8_0(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(kvq_rd16(b));
    for (int i = 0; i < 32; i++) x[i] = (float)(int8_t)b[2 + i] * d;
}

static void q4_0(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(kvq_rd16(b));
    for (int i = 0; i < 16; i++) {
        x[i] = (float)((b[2 + i] & 15) - 8) * d;
        x[i + 16] = (float)((b[2 + i] >> 4) - 8) * d;
    }
}

static void q4_1(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(kvq_rd16(b)), m = kvq_f16_to_f32(kvq_rd16(b + 2));
    for (int i = 0; i < 16; i++) {
        float lo = (float)(b[4 + i] & 15) * d, hi = (float)(b[4 + i] >> 4) * d;
        x[i] = lo + m;
        x[i + 16] = hi + m;
    }
}

/* The 5-bit code of element i (0..31): its nibble plus bit i of qh (u32) as bit 4. */
static int q5_code(const unsigned char *nib, uint32_t qh, int i) {
    int n = i < 16 ? nib[i] & 15 : nib[i - 16] >> 4;
    return n | (int)((qh >> i) & 1) << 4;
}

static void q5_0(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(kvq_rd16(b));
    uint32_t qh = kvq_rd32(b + 2);
    for (int i = 0; i < 32; i++) x[i] = (float)(q5_code(b + 6, qh, i) - 16) * d;
}

static void q5_1(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(kvq_rd16(b)), m = kvq_f16_to_f32(kvq_rd16(b + 2));
    uint32_t qh = kvq_rd32(b + 4);
    for (int i = 0; i < 32; i++) {
        float p = (float)q5_code(b + 8, qh, i) * d;
        x[i] = p + m;
    }
}

typedef void (*block_fn)(const unsigned char *b, float *x);

static block_fn block_decoder(uint32_t type) {
    switch (type) {
    case KVQ_GGML_Q8_0: return q8_0;
    case KVQ_GGML_Q4_0: return q4_0;
    case KVQ_GGML_Q4_1: return q4_1;
    case KVQ_GGML_Q5_0: return q5_0;
    case KVQ_GGML_Q5_1: return q5_1;
    case KVQ_GGML_Q2_K: return kvq_dq_q2_k;
    case KVQ_GGML_Q3_K: return kvq_dq_q3_k;
    case KVQ_GGML_Q4_K: return kvq_dq_q4_k;
    case KVQ_GGML_Q5_K: return kvq_dq_q5_k;
    case KVQ_GGML_Q6_K: return kvq_dq_q6_k;
    case KVQ_GGML_Q8_K: return kvq_dq_q8_k;
    default: return NULL;
    }
}

int kvq_ggml_can_convert(uint32_t type) {
    return type == KVQ_GGML_F32 || type == KVQ_GGML_F16 || type == KVQ_GGML_BF16 || block_decoder(type);
}

const char *kvq_ggml_supported_types(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K";
}

kvq_status kvq_ggml_to_f32(uint32_t type, const void *src, size_t n, float *dst) {
    const unsigned char *s = src;
    switch (type) {
    case KVQ_GGML_F32:
        memcpy(dst, s, n * sizeof *dst);
        return KVQ_OK;
    case KVQ_GGML_F16:
        for (size_t i = 0; i < n; i++) dst[i] = kvq_f16_to_f32(kvq_rd16(s + 2 * i));
        return KVQ_OK;
    case KVQ_GGML_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = kvq_bf16_to_f32(kvq_rd16(s + 2 * i));
        return KVQ_OK;
    default: {
        block_fn block = block_decoder(type);
        if (!block) return KVQ_ERR_DTYPE;
        size_t be = kvq_ggml_block_elems(type), bb = kvq_ggml_block_bytes(type);
        if (n % be) return KVQ_ERR_SHAPE;
        for (size_t k = 0; k < n / be; k++) block(s + k * bb, dst + be * k);
        return KVQ_OK;
    }
    }
}
