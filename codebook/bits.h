/* bits.h — measured storage of a quantized KV cache, counted as docs/quantization.md §5 says:
 * b bits per code, fp16 scales per group (32 bits), static per-channel fp32 z and r (64 bits per
 * channel, once per sequence), outliers (fp16 value + 16-bit index = 32 bits each), a 32-bit
 * outlier pointer per quantized token when the tensor has outliers enabled, and 16 bits per
 * element for tokens kept in fp16 (sink tokens, KIVI's recent window, the fp16 method). The
 * average is total bits over every element stored. Not a quantizer: codebook/quant.c fills it. */
#ifndef KVQ_BITS_H
#define KVQ_BITS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_bit_tally {
    uint64_t n_tokens, n_elements;     /* every token stored (fp16 ones included) */
    uint64_t n_quantized_tokens;       /* tokens that got codes */
    uint64_t n_outliers;
    uint64_t n_sequences;
    double code_bits, scale_bits, outlier_bits, pointer_bits, fp16_bits;
} kvq_bit_tally;

/* n_tok tokens of dim elements kept as fp16. */
void kvq_bits_add_fp16(kvq_bit_tally *t, uint64_t n_tok, uint32_t dim);
/* n_tok tokens of dim elements with b-bit codes; with_pointer: the tensor has outliers enabled,
 * so each token carries a 32-bit pointer into the sparse list. */
void kvq_bits_add_codes(kvq_bit_tally *t, uint64_t n_tok, uint32_t dim, uint32_t bits,
                        int with_pointer);
/* n_scales fp16 (z, r) pairs: 32 bits each. */
void kvq_bits_add_group_scales(kvq_bit_tally *t, uint64_t n_scales);
/* Static per-channel fp32 z and r of one sequence: 64 bits per channel. */
void kvq_bits_add_static_scales(kvq_bit_tally *t, uint32_t dim);
void kvq_bits_add_outliers(kvq_bit_tally *t, uint64_t n);
void kvq_bits_merge(kvq_bit_tally *into, const kvq_bit_tally *from);

double kvq_bits_total(const kvq_bit_tally *t);
/* Average bits per element (0 when nothing was counted). */
double kvq_bits_per_element(const kvq_bit_tally *t);
/* Fraction of quantized elements stored as outliers (0 when none). */
double kvq_bits_outlier_rate(const kvq_bit_tally *t, uint32_t dim);

#ifdef __cplusplus
}
#endif
#endif
