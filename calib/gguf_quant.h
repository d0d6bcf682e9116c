/* gguf_quant.h — conversion of tensor payloads to fp32: F32, F16, BF16, the ggml block formats
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (32 elements per block) and the K-quants Q2_K, Q3_K, Q4_K, Q5_K,
 * Q6_K, Q8_K (256 per super-block); layouts in docs/models.md, gguf_quant.c, gguf_kquant.c.
 * Type codes are ggml's (kvq_ggml_type in gguf.h), also used for safetensors F32/F16/BF16.
 * Not a quantizer: kvq never writes these formats. */
#ifndef KVQ_GGUF_QUANT_H
#define KVQ_GGUF_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"

/* 1 when kvq_ggml_to_f32 handles `type`. */
int kvq_ggml_can_convert(uint32_t type);
/* The names of the types it handles, comma-separated, for refusal messages. */
const char *kvq_ggml_supported_types(void);
/* Convert n elements starting at src (any alignment; kvq_ggml_block_bytes(type) * n /
 * kvq_ggml_block_elems(type) bytes) into dst (n). KVQ_ERR_DTYPE for an unsupported type,
 * KVQ_ERR_SHAPE when n is not a whole number of blocks. */
kvq_status kvq_ggml_to_f32(uint32_t type, const void *src, size_t n, float *dst);

#endif
