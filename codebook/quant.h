/* quant.h — the CPU reference of docs/quantization.md: encode one token's K or V vector into
 * codes, fp16 scales and a sparse outlier list, and decode it back; plus quantize-dequantize in
 * place over a whole sequence (what `kvq eval` simulates inside the forward pass). Every
 * quantizer kvq knows — the KVQuant codebook and the baselines of codebook/baselines.h — is one
 * configuration of kvq_quantizer, so they all share this arithmetic. The CUDA runtime reproduces
 * these codes, scales, outlier lists and dequantized floats bit for bit. Not a packer: codes are
 * one byte each here (the runtime's bit packing is its own business). */
#ifndef KVQ_QUANT_H
#define KVQ_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_codebook.h"
#include "kvq_status.h"
#include "bits.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the elements of a tensor share a normalisation (zero point z, half-range r). */
typedef enum kvq_qscheme {
    KVQ_QS_FP16 = 0,          /* no codes: every element stored as h(x) (the fp16 cache) */
    KVQ_QS_STATIC_CHANNEL = 1,/* static per-channel z, r (fp32, from calibration): §3 */
    KVQ_QS_TOKEN_GROUP = 2,   /* dynamic, per token and group of `group` consecutive channels,
                                 fp16 z, r with per-group top-m/bottom-m outliers: §4 */
    KVQ_QS_CHANNEL_BLOCK = 3  /* dynamic, per channel over blocks of `group` consecutive tokens
                                 (KIVI keys); no outliers; needs the whole sequence */
} kvq_qscheme;

/* Options of a quantizer; kvq_quantizer_init copies them. */
typedef struct kvq_quant_config {
    kvq_qscheme scheme;
    uint32_t dim;              /* elements per token (kv_dim) */
    uint32_t bits;             /* 1..KVQ_MAX_BITS (ignored for FP16) */
    const float *lut;          /* (1 << bits) ascending levels, Q-Norm already folded in */
    const float *zero_point;   /* (dim) STATIC_CHANNEL only */
    const float *half_range;   /* (dim) STATIC_CHANNEL only, each > 0 */
    uint32_t group;            /* TOKEN_GROUP: channels per group (last group may be shorter);
                                  CHANNEL_BLOCK: tokens per block */
    float outlier_fraction;    /* p; 0 disables outliers */
    uint32_t outlier_cap;      /* m; 0 = no cap (keys) / floor(p/2*g) (token groups) */
    kvq_outlier_residual residual;
    uint32_t n_sink;           /* positions < n_sink kept as fp16 */
    uint32_t n_recent;         /* the last n_recent tokens of a sequence kept as fp16 (KIVI) */
} kvq_quant_config;

typedef struct kvq_quantizer {
    kvq_quant_config cfg;      /* lut/zero_point/half_range point into the arrays below */
    uint32_t n_levels;         /* 1 << bits */
    float lut[1 << KVQ_MAX_BITS];
    float mid[(1 << KVQ_MAX_BITS) - 1];  /* mid[i] = 0.5f * (lut[i] + lut[i+1]) */
    float *z, *r;              /* (dim) owned copies for STATIC_CHANNEL, else NULL */
    uint32_t n_groups;         /* TOKEN_GROUP: ceil(dim / group); else 0 */
    /* scratch, so one quantizer must not be used by two threads at once */
    float *h;                  /* (n_scratch) fp16-rounded inputs, or a gathered column */
    float *x;                  /* (n_scratch) normalised values */
    uint8_t *flag;             /* (n_scratch) outlier marks */
    uint8_t *codes;            /* (n_scratch) codes of a gathered column */
} kvq_quantizer;

/* One sparse outlier: channel and fp16 bits, lists sorted by channel. */
typedef struct kvq_outlier {
    uint16_t channel;
    uint16_t value;            /* fp16: h(x) with EXACT, h(x - dense) with RESIDUAL */
} kvq_outlier;

/* One encoded token (STATIC_CHANNEL or TOKEN_GROUP). Buffers sized by kvq_qtoken_init. */
typedef struct kvq_qtoken {
    uint8_t *codes;            /* (dim) */
    uint16_t *z, *r;           /* (n_groups) fp16 bits; NULL for STATIC_CHANNEL */
    kvq_outlier *outliers;     /* (dim) capacity; n_outliers used, ascending channel */
    uint32_t n_outliers;
} kvq_qtoken;

/* Validate cfg (sorted finite lut, r > 0, dim < 65536 so channels fit uint16, ...) and prepare
 * midpoints and scratch. */
kvq_status kvq_quantizer_init(kvq_quantizer *q, const kvq_quant_config *cfg, char *why,
                              size_t why_len);
void kvq_quantizer_free(kvq_quantizer *q);   /* accepts NULL and zeroed structs */

/* The codebook's quantizer of one tensor (docs/quantization.md): keys STATIC_CHANNEL with the
 * codebook's z, r; values TOKEN_GROUP over kv_dim or head_dim; the LUT of kvq_codebook_lut
 * (Q-Norm folded in); n_sink. */
kvq_status kvq_quantizer_from_codebook(kvq_quantizer *q, const kvq_tensor_codebook *t,
                                       uint32_t kv_dim, uint32_t head_dim, uint32_t n_sink,
                                       char *why, size_t why_len);

/* code(x): the number of midpoints strictly below x. */
uint32_t kvq_quant_code(const kvq_quantizer *q, float x);

kvq_status kvq_qtoken_init(kvq_qtoken *t, const kvq_quantizer *q);
void kvq_qtoken_free(kvq_qtoken *t);         /* accepts NULL and zeroed structs */

/* Encode one token that is not a sink token. x: (dim) fp32, finite; h() is applied first.
 * STATIC_CHANNEL or TOKEN_GROUP only (KVQ_ERR_ARG otherwise); KVQ_ERR_NONFINITE on NaN/Inf. */
kvq_status kvq_quant_encode(kvq_quantizer *q, const float *x, kvq_qtoken *t);
/* Dequantize an encoded token into out (dim). */
void kvq_quant_decode(const kvq_quantizer *q, const kvq_qtoken *t, float *out);

/* Quantize and dequantize in place one sequence x (T, dim) whose first token is at position
 * pos0 (sequence positions pos0 .. pos0+T-1; sink tokens are those with position < n_sink;
 * n_recent counts back from the end of x). Adds the storage used to `tally` when not NULL. */
kvq_status kvq_quant_apply(kvq_quantizer *q, float *x, size_t T, size_t pos0,
                           kvq_bit_tally *tally);

#ifdef __cplusplus
}
#endif
#endif
