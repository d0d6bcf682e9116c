/* gguf_quant.c — fp32 conversion of F32/F16/BF16 payloads and ggml Q8_0/Q4_0/Q4_1 blocks
 * (gguf_quant.h). Block layouts, 32 elements each, little-endian:
 *   Q8_0: fp16 d, int8 q[32];              x[i] = q[i] * d
 *   Q4_0: fp16 d, uint8 nib[16];           x[i] = (nibble_i - 8) * d
 *   Q4_1: fp16 d, fp16 m, uint8 nib[16];   x[i] = nibble_i * d + m
 * with nibble_i = nib[i] & 15 for i < 16 and nib[i-16] >> 4 for i >= 16. */
#include "gguf_quant.h"

#include <string.h>

#include "gguf.h"
#include "kvq_half.h"

int kvq_ggml_can_convert(uint32_t type) {
    switch (type) {
    case KVQ_GGML_F32: case KVQ_GGML_F16: case KVQ_GGML_BF16:
    case KVQ_GGML_Q8_0: case KVQ_GGML_Q4_0: case KVQ_GGML_Q4_1: return 1;
    default: return 0;
    }
}

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void q8_0(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(rd16(b));
    for (int i = 0; i < 32; i++) x[i] = (float)(int8_t)b[2 + i] * d;
}

static void q4_0(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(rd16(b));
    for (int i = 0; i < 16; i++) {
        x[i] = (float)((b[2 + i] & 15) - 8) * d;
        x[i + 16] = (float)((b[2 + i] >> 4) - 8) * d;
    }
}

static void q4_1(const unsigned char *b, float *x) {
    float d = kvq_f16_to_f32(rd16(b)), m = kvq_f16_to_f32(rd16(b + 2));
    for (int i = 0; i < 16; i++) {
        x[i] = (float)(b[4 + i] & 15) * d + m;
        x[i + 16] = (float)(b[4 + i] >> 4) * d + m;
    }
}

kvq_status kvq_ggml_to_f32(uint32_t type, const void *src, size_t n, float *dst) {
    const unsigned char *s = src;
    switch (type) {
    case KVQ_GGML_F32:
        memcpy(dst, s, n * sizeof *dst);
        return KVQ_OK;
    case KVQ_GGML_F16:
        for (size_t i = 0; i < n; i++) dst[i] = kvq_f16_to_f32(rd16(s + 2 * i));
        return KVQ_OK;
    case KVQ_GGML_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = kvq_bf16_to_f32(rd16(s + 2 * i));
        return KVQ_OK;
    case KVQ_GGML_Q8_0: case KVQ_GGML_Q4_0: case KVQ_GGML_Q4_1: {
        if (n % 32) return KVQ_ERR_SHAPE;
        size_t bb = kvq_ggml_block_bytes(type);
        void (*block)(const unsigned char *, float *) =
            type == KVQ_GGML_Q8_0 ? q8_0 : type == KVQ_GGML_Q4_0 ? q4_0 : q4_1;
        for (size_t k = 0; k < n / 32; k++) block(s + k * bb, dst + 32 * k);
        return KVQ_OK;
    }
    default:
        return KVQ_ERR_DTYPE;
    }
}
