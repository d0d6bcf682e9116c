/* baselines.h — the KV-cache simulations kvq evaluates: the KVQuant codebook's and the baselines
 * that need no codebook (uniform int per token, int per channel pre/post-RoPE, NormalFloat,
 * ATOM-style, FlexGen-style, KIVI). Each is, per layer, a key and a value kvq_quantizer
 * (codebook/quant.h) plus the stage the key quantizer acts at (before or after RoPE): one
 * arithmetic for all of them. Not the engine hook or the metrics (codebook/eval.h). */
#ifndef KVQ_BASELINES_H
#define KVQ_BASELINES_H

#include <stddef.h>
#include <stdint.h>
#include "bits.h"
#include "kvq_codebook.h"
#include "kvq_status.h"
#include "quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvq_method {
    KVQ_METHOD_FP16 = 0,       /* K and V rounded to fp16, nothing else */
    KVQ_METHOD_KVQUANT,        /* the codebook: keys pre-RoPE per channel, values per token */
    KVQ_METHOD_INT,            /* uniform, per token: keys post-RoPE, values (paper's intN rows) */
    KVQ_METHOD_INT_CHAN_POST,  /* uniform, keys per channel post-RoPE (calibration min/max) */
    KVQ_METHOD_INT_CHAN_PRE,   /* uniform, keys per channel pre-RoPE (calibration min/max) */
    KVQ_METHOD_NF,             /* NormalFloat levels, per token, keys post-RoPE */
    KVQ_METHOD_ATOM,           /* uniform, per token in groups of 128 channels, keys post-RoPE */
    KVQ_METHOD_FLEXGEN,        /* uniform, per token in groups of 64 channels, keys post-RoPE */
    KVQ_METHOD_KIVI,           /* keys per channel in 32-token blocks, values per token in groups
                                  of 32, post-RoPE, the last 128 tokens fp16 */
    KVQ_METHOD_COUNT_
} kvq_method;

enum { KVQ_KIVI_GROUP = 32, KVQ_KIVI_RECENT = 128, KVQ_ATOM_GROUP = 128, KVQ_FLEXGEN_GROUP = 64 };

const char *kvq_method_name(kvq_method m);                 /* "int-chan-pre", ...; never NULL */
kvq_status kvq_method_parse(const char *name, kvq_method *out);
int kvq_method_needs_codebook(kvq_method m);
int kvq_method_needs_range(kvq_method m);                  /* calibration key ranges */

/* Uniform levels: lut[i] = (float)(-1.0 + 2.0 * i / (L - 1)) (computed in double). */
void kvq_uniform_lut(uint32_t bits, float *lut /* (1 << bits) */);
/* NormalFloat levels (QLoRA's NF4 construction for any b >= 2): 2^(b-1) quantiles of N(0, 1) on
 * the positive side, 2^(b-1) - 1 on the negative side, and 0, from probabilities spaced evenly
 * between 0.5 and delta = ((1 - 1/(2(L-1))) + (1 - 1/(2L))) / 2; divided by the largest so they
 * span [-1, 1]. bits 1 gives {-1, 1}. */
void kvq_nf_lut(uint32_t bits, float *lut /* (1 << bits) */);

/* Per-channel min and max of keys over calibration tokens, pre- and post-RoPE. */
typedef struct kvq_key_range {
    int n_layers;
    uint32_t kv_dim;
    float *pre_min, *pre_max;     /* (n_layers, kv_dim) */
    float *post_min, *post_max;   /* (n_layers, kv_dim) */
    uint64_t n_tokens;            /* tokens folded in per layer */
} kvq_key_range;

kvq_status kvq_key_range_init(kvq_key_range *r, int n_layers, uint32_t kv_dim);
void kvq_key_range_free(kvq_key_range *r);               /* accepts NULL and zeroed structs */
/* Fold k (n, kv_dim) of one layer into the pre- (post_rope 0) or post-RoPE (1) range. */
kvq_status kvq_key_range_add(kvq_key_range *r, int layer, int post_rope, const float *k, size_t n);

/* One model's simulated KV cache. */
typedef struct kvq_kv_sim {
    kvq_method method;
    uint32_t bits;                /* 16 for FP16 */
    int n_layers;
    uint32_t kv_dim;
    int k_post_rope;              /* keys quantized after RoPE (else before) */
    kvq_quantizer *k, *v;         /* (n_layers) */
    kvq_bit_tally k_bits, v_bits; /* what kvq_kv_sim_apply stored */
} kvq_kv_sim;

/* The codebook's simulation (docs/quantization.md). The caller checks the codebook against its
 * model first (kvq_codebook_check_model). */
kvq_status kvq_kv_sim_init_codebook(kvq_kv_sim *s, const kvq_codebook *cb, char *why,
                                    size_t why_len);
/* A baseline (any method but KVQUANT) of `bits` bits; range is needed by INT_CHAN_* (NULL
 * otherwise). */
kvq_status kvq_kv_sim_init_baseline(kvq_kv_sim *s, kvq_method m, uint32_t bits, int n_layers,
                                    uint32_t n_kv_heads, uint32_t head_dim,
                                    const kvq_key_range *range, char *why, size_t why_len);
void kvq_kv_sim_free(kvq_kv_sim *s);                    /* accepts NULL and zeroed structs */

/* Apply layer `layer` in place to n_windows sequences of T tokens, each from position 0:
 * k at stage post_rope (0 pre, 1 post) is quantized when that is the key stage; v is quantized at
 * the pre-RoPE stage (NULL skips it). k, v: (n_windows, T, kv_dim). Counts bits. */
kvq_status kvq_kv_sim_apply(kvq_kv_sim *s, int layer, int post_rope, float *k, float *v,
                            size_t n_windows, size_t T, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
