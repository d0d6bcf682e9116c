/* gguf_quant_int.h — internal to gguf_quant.c / gguf_kquant.c: little-endian field readers and
 * the K-quant super-block decoders (256 elements each; layouts in gguf_kquant.c). Not public. */
#ifndef KVQ_GGUF_QUANT_INT_H
#define KVQ_GGUF_QUANT_INT_H

#include <stdint.h>

static inline uint16_t kvq_rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kvq_rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Each decodes one block at b (kvq_ggml_block_bytes bytes, any alignment) into x (256). */
void kvq_dq_q2_k(const unsigned char *b, float *x);
void kvq_dq_q3_k(const unsigned char *b, float *x);
void kvq_dq_q4_k(const unsigned char *b, float *x);
void kvq_dq_q5_k(const unsigned char *b, float *x);
void kvq_dq_q6_k(const unsigned char *b, float *x);
void kvq_dq_q8_k(const unsigned char *b, float *x);

#endif
