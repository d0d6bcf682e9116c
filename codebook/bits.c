/* bits.c — storage accounting of a quantized KV cache (bits.h; docs/quantization.md §5). Pure
 * counting: no quantization here. */
#include "bits.h"

void kvq_bits_add_fp16(kvq_bit_tally *t, uint64_t n_tok, uint32_t dim) {
    t->n_tokens += n_tok;
    t->n_elements += n_tok * dim;
    t->fp16_bits += 16.0 * (double)n_tok * (double)dim;
}

void kvq_bits_add_codes(kvq_bit_tally *t, uint64_t n_tok, uint32_t dim, uint32_t bits,
                        int with_pointer) {
    t->n_tokens += n_tok;
    t->n_quantized_tokens += n_tok;
    t->n_elements += n_tok * dim;
    t->code_bits += (double)bits * (double)n_tok * (double)dim;
    if (with_pointer) t->pointer_bits += 32.0 * (double)n_tok;
}

void kvq_bits_add_group_scales(kvq_bit_tally *t, uint64_t n_scales) {
    t->scale_bits += 32.0 * (double)n_scales;
}

void kvq_bits_add_static_scales(kvq_bit_tally *t, uint32_t dim) {
    t->scale_bits += 64.0 * (double)dim;
}

void kvq_bits_add_outliers(kvq_bit_tally *t, uint64_t n) {
    t->n_outliers += n;
    t->outlier_bits += 32.0 * (double)n;
}

void kvq_bits_merge(kvq_bit_tally *into, const kvq_bit_tally *from) {
    into->n_tokens += from->n_tokens;
    into->n_elements += from->n_elements;
    into->n_quantized_tokens += from->n_quantized_tokens;
    into->n_outliers += from->n_outliers;
    into->n_sequences += from->n_sequences;
    into->code_bits += from->code_bits;
    into->scale_bits += from->scale_bits;
    into->outlier_bits += from->outlier_bits;
    into->pointer_bits += from->pointer_bits;
    into->fp16_bits += from->fp16_bits;
}

double kvq_bits_total(const kvq_bit_tally *t) {
    return t->code_bits + t->scale_bits + t->outlier_bits + t->pointer_bits + t->fp16_bits;
}

double kvq_bits_per_element(const kvq_bit_tally *t) {
    return t->n_elements ? kvq_bits_total(t) / (double)t->n_elements : 0.0;
}

double kvq_bits_outlier_rate(const kvq_bit_tally *t, uint32_t dim) {
    double n = (double)t->n_quantized_tokens * (double)dim;
    return n > 0 ? (double)t->n_outliers / n : 0.0;
}
