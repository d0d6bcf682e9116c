/* rt_internal.cuh — private to the kvq CUDA runtime: the opened codebook and cache structs, the
 * packed page layout (docs/runtime.md "Packed layout"), the CUDA checking macro and small device
 * helpers shared by the append, dequantize and attention kernels. Not part of the public API. */
#ifndef KVQ_RT_INTERNAL_CUH
#define KVQ_RT_INTERNAL_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include "kvq_rt.h"

/* Write a one-line reason into why (when given). */
void kvq_rt_why(char *why, size_t why_len, const char *fmt, ...);

/* Checking macro for every CUDA call: on failure writes "file:line: call: error" into `why`
 * (which must be in scope with `why_len`) and returns KVQ_ERR_CUDA from the enclosing function. */
#define KVQ_CU(call)                                                                          \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            kvq_rt_why(why, why_len, "%s:%d: %s: %s", __FILE__, __LINE__, #call,              \
                       cudaGetErrorString(e_));                                               \
            return KVQ_ERR_CUDA;                                                              \
        }                                                                                     \
    } while (0)

enum { KVQ_RT_MAX_L = 16, KVQ_RT_SEG = 32 /* codes per lane segment */,
       KVQ_RT_ROT_N = 512 /* offsets in kvq_rt.d_rot: at least the attention kernel's most tokens per block */ };

/* Per-layer constants, passed by value to kernels (lands in the constant bank). */
typedef struct kvq_rt_layer {
    uint32_t bits, n_levels;
    float lut_k[KVQ_RT_MAX_L], mid_k[KVQ_RT_MAX_L];   /* Q-Norm folded in; mid[i] < mid[i+1] */
    float lut_v[KVQ_RT_MAX_L], mid_v[KVQ_RT_MAX_L];
    const float *kz, *kr;        /* (kv_dim) device: key zero point / half-range per channel */
    const float *klev;           /* (n_kv_heads, 2, n_levels, head_dim/2) device: key level v of channel
                                    h*D + y*D/2 + j = fmaf(lut_k[v], kr, kz) (rt_attention.cu) */
    uint32_t k_m, k_cap;         /* key outlier cap m per side per token; capacity 2m (0: none) */
    int k_outliers;              /* key outliers enabled (outlier_fraction > 0) */
    uint32_t v_m, v_cap;         /* value outliers per side per group; capacity 2m * groups */
    uint32_t v_groups, v_group;  /* groups per token (1 or n_kv_heads), elements per group */
    int k_residual, v_residual;  /* kvq_outlier_residual of K and V */
    /* byte offsets of the sections inside one page, and the page size */
    size_t off_kcodes, off_vcodes, off_vscale, off_koff, off_voff, off_kout, off_vout, page_bytes;
} kvq_rt_layer;

/* Section offsets of one page of P tokens into L (docs/runtime.md "Packed layout"). */
void kvq_rt_layout_page(kvq_rt_layer *L, const kvq_rt_dims *d, uint32_t P);

struct kvq_rt;
/* Build every layer's klev table on the device (rt_attention.cu; kz, kr already set). */
kvq_status kvq_attn_key_levels(struct kvq_rt *rt, char *why, size_t why_len);

struct kvq_rt {
    kvq_rt_dims dims;
    uint32_t n_sink;
    kvq_rt_layer *layers;        /* (n_layers) host copies; kz/kr point to device arrays */
    float *d_kzr;                /* (n_layers, 2, kv_dim) device storage of kz, kr */
    float *d_klev;               /* (n_layers, kv_dim, n_levels) device storage of the layers' klev */
    float inv_freq[64];          /* (head_dim/2) RoPE inverse frequencies, scaling applied */
    float2 *d_rot;               /* (KVQ_RT_ROT_N, head_dim/2) device: cos, sin of o * inv_freq[i] (angle in double) */
};

/* Geometry every kernel needs, by value. */
typedef struct kvq_rt_geom {
    uint32_t batch, n_heads, n_kv_heads, head_dim, kv_dim;
    uint32_t page_tokens, max_pages, n_sink;
    int32_t page_shift;          /* log2(page_tokens) when a power of two, else -1 */
    const int32_t *page_table;   /* (batch, max_pages) device; -1 = none */
    const uint32_t *lens;        /* (batch) device */
    uint8_t *pool;               /* this layer's pages: (n_pages, page_bytes) device */
    uint16_t *k_sink, *v_sink;   /* (batch, n_sink, kv_dim) fp16 device, this layer */
} kvq_rt_geom;

struct kvq_rt_cache {
    const kvq_rt *rt;
    kvq_rt_cache_opts o;
    kvq_rt_layer *layers;        /* (n_layers) the codebook's layers with this page layout */
    uint32_t max_pages;          /* per slot */
    uint8_t **d_pools;           /* (n_layers) device pools */
    uint16_t *d_sink;            /* (n_layers, 2, batch, n_sink, kv_dim) fp16 */
    int32_t *h_ptab, *d_ptab;    /* (batch, max_pages) */
    uint32_t *h_lens, *d_lens;   /* (batch) */
    uint32_t *free_pages, n_free;/* host free list of page ids */
    /* the last extend: token i goes to slot tok_seq[i] at position tok_pos[i] */
    uint32_t n_step, step_cap;
    uint32_t *d_tok_seq, *d_tok_pos;
    uint32_t *d_redo;            /* (2 + 2*step_cap) tokens append's warp kernels hand to the block
                                    kernels: K count, K tokens (step_cap), V count, V tokens */
    int *d_flag;                 /* device error flag (non-finite input) */
    float *d_work;               /* attention partials */
    size_t work_bytes;
};

static inline kvq_rt_geom kvq_rt_geom_of(const kvq_rt_cache *c, uint32_t layer) {
    const kvq_rt_dims *d = &c->rt->dims;
    kvq_rt_geom g;
    g.batch = c->o.batch; g.n_heads = d->n_heads; g.n_kv_heads = d->n_kv_heads;
    g.head_dim = d->head_dim; g.kv_dim = d->n_kv_heads * d->head_dim;
    g.page_tokens = c->o.page_tokens; g.max_pages = c->max_pages; g.n_sink = c->rt->n_sink;
    g.page_shift = -1;
    for (int32_t sh = 0; sh < 31; sh++) if ((1u << sh) == g.page_tokens) g.page_shift = sh;
    g.page_table = c->d_ptab; g.lens = c->d_lens; g.pool = c->d_pools[layer];
    size_t per = (size_t)c->o.batch * c->rt->n_sink * g.kv_dim;
    g.k_sink = c->d_sink + (size_t)layer * 2 * per;
    g.v_sink = g.k_sink + per;
    return g;
}

/* ---- packed layout helpers (host and device) ---------------------------------------------- */
/* Words of one token-head's codes: head_dim * bits / 32. Segment s (of head_dim/32) holds codes
 * k = 0..31 in `bits` consecutive words, code k at bits [k*bits, k*bits+bits) of the segment's
 * little-endian bit string. The codes of a RoPE pair (j, j + head_dim/2) are neighbours: the
 * token-head's bit string is head_dim/2 fields of 2*bits bits, field f = code(j) | code(j+D/2) << bits
 * (f = 16*s + k/2; code k is channel j, plus D/2 when k is odd). Field f holds pair
 * j = (f % PP) * 8 + f / PP with PP = head_dim/16: the attention kernel's lane m (of 8 per token) reads
 * the PP consecutive fields m*PP .. m*PP+PP-1, which hold pairs m, m+8, m+16, ...: the 8 lanes of a
 * token, and the 4 tokens of a warp (through skewed table copies), hit distinct shared-memory banks. */
__host__ __device__ static inline uint32_t kvq_rt_field_pair(uint32_t f, uint32_t hd) {
    uint32_t pp = hd / 16;
    return (f % pp) * 8 + f / pp;
}
__host__ __device__ static inline uint32_t kvq_rt_pair_field(uint32_t j, uint32_t hd) {
    return (j % 8) * (hd / 16) + j / 8;
}
__host__ __device__ static inline uint32_t kvq_rt_seg_channel(uint32_t k, uint32_t s, uint32_t hd) {
    return kvq_rt_field_pair(16 * s + k / 2, hd) + (k & 1) * (hd / 2);
}
/* Inverse: segment and code index of channel i (0 <= i < head_dim). */
__host__ __device__ static inline void kvq_rt_channel_seg(uint32_t i, uint32_t hd, uint32_t *s,
                                                          uint32_t *k) {
    uint32_t half = hd / 2, f = kvq_rt_pair_field(i < half ? i : i - half, hd);
    *s = f / 16;
    *k = 2 * (f % 16) + (i < half ? 0 : 1);
}
/* Code of channel i from the words of one token-head (bits b). */
__host__ __device__ static inline uint32_t kvq_rt_get_code(const uint32_t *w, uint32_t i,
                                                           uint32_t hd, uint32_t b) {
    uint32_t s, k;
    kvq_rt_channel_seg(i, hd, &s, &k);
    uint32_t bit = k * b, wi = s * b + bit / 32, sh = bit % 32;
    uint64_t two = w[wi];
    if (sh + b > 32) two |= (uint64_t)w[wi + 1] << 32;
    return (uint32_t)(two >> sh) & ((1u << b) - 1);
}
/* Address helpers inside a page (device pointers). */
__host__ __device__ static inline uint32_t kvq_rt_wph(uint32_t hd, uint32_t b) { return hd * b / 32; }

#endif
