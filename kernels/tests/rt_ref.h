/* rt_ref.h — host helpers for the CUDA runtime's test and benchmark: a seeded RNG with
 * heavy-tailed draws, synthetic codebooks built in memory (no file, no fitting), and an
 * independent double-precision reference of decode attention over a dequantized pre-RoPE cache.
 * Not a quantizer: quantization references come from codebook/quant.c. */
#ifndef KVQ_RT_REF_H
#define KVQ_RT_REF_H

#include <stdint.h>
#include "kvq_codebook.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_rng { uint64_t s; } rt_rng;
double rt_uniform(rt_rng *r);            /* [0, 1) */
double rt_normal(rt_rng *r);
double rt_student3(rt_rng *r);           /* Student-t with 3 degrees of freedom (heavy tails) */

/* Per-channel offset and scale of rt_fill_kv's generator for a channel seed (dim each). */
void rt_channel_params(uint64_t channel_seed, uint32_t dim, float *off, float *sc);

/* Heavy-tailed activations (T, dim): per-channel offset and scale, Student-t(3) noise, a few
 * channels 8x larger (like LLaMA's outlier channels); values rounded to fp16-representable. */
void rt_fill_kv(rt_rng *r, float *x, uint32_t T, uint32_t dim, uint64_t channel_seed);

typedef struct rt_cb_cfg {
    uint32_t n_layers, n_heads, n_kv_heads, head_dim, bits, n_sink;
    float k_outlier_fraction, v_outlier_fraction;
    uint32_t k_cap, v_cap;               /* key cap m (needed when k fraction > 0); value cap (0 = p) */
    kvq_norm_axis v_axis;
    kvq_outlier_residual residual;
    int qnorm;
    float rope_theta;
} rt_cb_cfg;

/* A codebook whose key thresholds are per-channel percentiles (1-p/2, p/2) of `calib`
 * (T_calib, kv_dim) — the same data generator — and whose centroids are random sorted levels
 * in [-1, 1]. All arrays malloc'ed; free with rt_codebook_free. */
int rt_codebook_make(kvq_codebook *cb, const rt_cb_cfg *c, const float *calib, uint32_t T_calib, rt_rng *r);
void rt_codebook_free(kvq_codebook *cb);

/* Decode attention in double for one slot: k, v (T, kv_dim) pre-RoPE dequantized, q (n_heads,
 * head_dim) post-RoPE; key at position p rotated (rotate-half) by angle p * inv_freq[i] in
 * double; out (n_heads, head_dim). */
void rt_ref_attention(const float *k, const float *v, uint32_t T, const float *q, uint32_t n_heads,
                      uint32_t n_kv_heads, uint32_t head_dim, const float *inv_freq, double scale, double *out);

#ifdef __cplusplus
}
#endif
#endif
