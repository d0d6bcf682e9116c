/* kvq_rt.h — the kvq CUDA runtime's C API: a packed 2/3/4-bit KV cache that consumes a kvq
 * codebook (format/kvq_codebook.h), quantizes appended keys/values on the GPU exactly as
 * docs/quantization.md says, and computes decode attention straight from the packed cache
 * (flash-decoding split over thread blocks, RoPE applied to the dequantized pre-RoPE keys inside
 * the kernel, GQA, fp16 sink tokens, sparse outliers). Also an fp16 cache baseline with the same
 * kernel design, for benchmarks. Not an inference engine: no projections, no prefill attention.
 * Layout and usage: docs/runtime.md. Every function returns a kvq_status and never aborts;
 * `why` (when not NULL) receives a one-line reason. All tensor pointers named d_* are device
 * memory; the work runs on the legacy default CUDA stream and is finished when a call returns
 * unless the function says otherwise. */
#ifndef KVQ_RT_H
#define KVQ_RT_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_codebook.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvq_rt_dtype { KVQ_RT_F16 = 0, KVQ_RT_BF16 = 1, KVQ_RT_F32 = 2 } kvq_rt_dtype;

/* The model dimensions the caller runs; the codebook must agree with them. */
typedef struct kvq_rt_dims {
    uint32_t n_layers, n_heads, n_kv_heads, head_dim;
} kvq_rt_dims;

typedef struct kvq_rt kvq_rt;               /* an opened codebook, on the GPU */
typedef struct kvq_rt_cache kvq_rt_cache;   /* a packed KV cache for a batch of sequences */

/* Open a codebook already in memory (copied; cb may be freed afterwards) or from a .kvqc file.
 * Checks: codebook valid, dims equal to the codebook's model identity, head_dim 64 or 128,
 * n_heads a multiple of n_kv_heads, K and V of a layer with equal bits in {2,3,4}, keys per
 * channel, values per token or per token and head, key outliers capped when enabled. */
kvq_status kvq_rt_open(kvq_rt **out, const kvq_codebook *cb, const kvq_rt_dims *dims,
                       char *why, size_t why_len);
kvq_status kvq_rt_open_path(kvq_rt **out, const char *path, const kvq_rt_dims *dims,
                            char *why, size_t why_len);
void kvq_rt_close(kvq_rt *rt);              /* accepts NULL */
/* The RoPE inverse frequencies the kernels use (head_dim/2 floats): theta^(-2i/head_dim) in
 * double with the codebook's scaling, rounded to float. Key at position p, pair i is rotated by
 * the exact angle p * inv_freq[i] (no fp32 rounding of the product). */
kvq_status kvq_rt_rope_freqs(const kvq_rt *rt, float *inv_freq);

typedef struct kvq_rt_cache_opts {
    uint32_t batch;          /* sequence slots 0..batch-1 */
    uint32_t max_tokens;     /* longest sequence the page tables can address */
    uint32_t page_tokens;    /* tokens per page (0 = 256); a multiple of 32 */
    uint32_t n_pages;        /* pages in the pool, shared by all slots (0 = batch*ceil(max/page)) */
    uint32_t q_per_block;    /* query heads of one KV head decoded together: 1, 2 or 4 (0 = up to 4) */
} kvq_rt_cache_opts;

/* Allocate the page pools of every layer (device memory) and the page tables. */
kvq_status kvq_rt_cache_create(kvq_rt_cache **out, const kvq_rt *rt, const kvq_rt_cache_opts *o,
                               char *why, size_t why_len);
void kvq_rt_cache_free(kvq_rt_cache *c);    /* accepts NULL */
/* Change q_per_block of an existing cache (tuning; same values as kvq_rt_cache_opts). */
kvq_status kvq_rt_cache_set_q_per_block(kvq_rt_cache *c, uint32_t q_per_block);
/* Device bytes one page of one layer takes, and the whole cache (all layers, all pages). */
size_t kvq_rt_page_bytes(const kvq_rt *rt, uint32_t layer, uint32_t page_tokens);
size_t kvq_rt_cache_bytes(const kvq_rt_cache *c);
/* Current length of a slot (tokens appended so far). */
uint32_t kvq_rt_seq_len(const kvq_rt_cache *c, uint32_t seq);
/* Forget a slot's tokens and return its pages to the pool. */
kvq_status kvq_rt_seq_reset(kvq_rt_cache *c, uint32_t seq);

/* One step of appending: first extend (once for all layers), then append per layer.
 * extend: slot seq[i] grows by n_new[i] tokens (pages taken from the pool; KVQ_ERR_CAPACITY when
 * a slot would pass max_tokens or the pool is empty, leaving the cache unchanged).
 * append: writes the tokens of the last extend into layer `layer`, in the order of that extend
 * (slot seq[0]'s n_new[0] tokens first). d_k, d_v: (sum n_new, kv_dim) pre-RoPE, of dtype F16 or
 * BF16. Keys are quantized with the codebook's per-channel thresholds, values with per-token
 * online thresholds; positions < n_sink are kept in fp16. */
kvq_status kvq_rt_extend(kvq_rt_cache *c, uint32_t n_seqs, const uint32_t *seq,
                         const uint32_t *n_new, char *why, size_t why_len);
kvq_status kvq_rt_append(kvq_rt_cache *c, uint32_t layer, const void *d_k, const void *d_v,
                         kvq_rt_dtype dt, char *why, size_t why_len);

/* Decode attention of layer `layer` for one new query per slot, over all tokens appended so far
 * (the query's own token included when it was appended first, as usual).
 * d_q: (batch, n_heads, head_dim) F16 or BF16, already rotated by RoPE at the query's position
 * (post-RoPE; the cache's keys are rotated inside the kernel at their positions).
 * d_out: (batch, n_heads, head_dim), F16 or F32. scale: softmax scale (0 = 1/sqrt(head_dim)).
 * A slot of length 0 gets zeros. Query head h reads KV head h / (n_heads / n_kv_heads). */
kvq_status kvq_rt_attention(kvq_rt_cache *c, uint32_t layer, const void *d_q, kvq_rt_dtype q_dt,
                            void *d_out, kvq_rt_dtype out_dt, float scale,
                            char *why, size_t why_len);

/* Dequantize tokens [pos0, pos0+n) of slot seq in layer `layer` (pre-RoPE), bit for bit as
 * docs/quantization.md: d_k, d_v (n, kv_dim) fp32. */
kvq_status kvq_rt_dequantize(const kvq_rt_cache *c, uint32_t layer, uint32_t seq, uint32_t pos0,
                             uint32_t n, float *d_k, float *d_v, char *why, size_t why_len);

/* One stored token copied back to the host and unpacked (tests, debugging). Arrays are caller's:
 * codes (kv_dim); v_z, v_r fp16 bits (n_groups: 1 per token or n_kv_heads); outliers as
 * (channel | fp16 value << 16) sorted by channel, capacity kv_dim each. A sink token has
 * is_sink = 1 and its fp16 K/V in k_sink/v_sink (kv_dim each), nothing else. */
typedef struct kvq_rt_token {
    int is_sink;
    uint8_t *k_codes, *v_codes;
    uint16_t *v_z, *v_r;
    uint32_t *k_outliers, *v_outliers;
    uint32_t n_k_outliers, n_v_outliers;
    uint16_t *k_sink, *v_sink;
} kvq_rt_token;
kvq_status kvq_rt_export_token(const kvq_rt_cache *c, uint32_t layer, uint32_t seq, uint32_t pos,
                               kvq_rt_token *t, char *why, size_t why_len);

/* What decode attention over a layer reads, counted from the stored tokens: codes, value scales,
 * outlier offsets and entries, sink tokens (bytes per decode step over all slots). */
typedef struct kvq_rt_stats {
    uint64_t n_tokens, n_quantized, n_k_outliers, n_v_outliers;
    uint64_t bytes_read;
} kvq_rt_stats;
kvq_status kvq_rt_cache_stats(const kvq_rt_cache *c, uint32_t layer, kvq_rt_stats *st, char *why, size_t why_len);

/* ---- fp16 baseline (benchmarks): a contiguous fp16 cache of post-RoPE keys and values ---- */
/* Decode attention over d_k, d_v: (batch, max_tokens, kv_dim) fp16, lens (batch) host array
 * (plans the split) and d_lens its device copy,
 * d_q (batch, n_heads, head_dim) fp16 post-RoPE, d_out (batch, n_heads, head_dim) fp32.
 * d_work: scratch of kvq_rt_fp16_work_bytes(). Same split-K design as kvq_rt_attention. */
size_t kvq_rt_fp16_work_bytes(uint32_t batch, uint32_t n_heads, uint32_t head_dim,
                              uint32_t max_tokens);
kvq_status kvq_rt_fp16_attention(const uint16_t *d_k, const uint16_t *d_v, uint32_t batch,
                                 uint32_t max_tokens, const uint32_t *lens, const uint32_t *d_lens,
                                 uint32_t n_heads,
                                 uint32_t n_kv_heads, uint32_t head_dim, const uint16_t *d_q,
                                 float *d_out, float scale, void *d_work);
/* The fp16 "append" baseline: copy n tokens (n, kv_dim) into rows pos0.. of slot seq. */
kvq_status kvq_rt_fp16_append(uint16_t *d_cache, uint32_t max_tokens, uint32_t kv_dim,
                              uint32_t seq, uint32_t pos0, uint32_t n, const uint16_t *d_src);

#ifdef __cplusplus
}
#endif
#endif
