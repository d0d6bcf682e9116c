/* rt_host.cu — host side of the kvq CUDA runtime: opening a codebook (validation against the
 * caller's model dimensions, LUTs, midpoints, RoPE frequencies), the page layout, cache
 * allocation, the page allocator (extend / reset) and exporting one stored token. The kernels
 * live in rt_append.cu, rt_attention.cu and rt_fp16.cu. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "rt_internal.cuh"

void kvq_rt_why(char *why, size_t why_len, const char *fmt, ...) {
    if (!why || !why_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

static size_t align16(size_t x) { return (x + 15) & ~(size_t)15; }

/* Section offsets of one page of P tokens (docs/runtime.md). */
void kvq_rt_layout_page(kvq_rt_layer *L, const kvq_rt_dims *d, uint32_t P) {
    size_t H = d->n_kv_heads, wph = kvq_rt_wph(d->head_dim, L->bits), off = 0;
    L->off_kcodes = off; off = align16(off + H * P * wph * 4);
    L->off_vcodes = off; off = align16(off + H * P * wph * 4);
    L->off_vscale = off; off = align16(off + (size_t)P * L->v_groups * 4);
    L->off_koff = off;   off = align16(off + (size_t)P * (H + 1) * 2);
    L->off_voff = off;   off = align16(off + (size_t)P * (H + 1) * 2);
    L->off_kout = off;   off = align16(off + (size_t)P * L->k_cap * 4);
    L->off_vout = off;   off = align16(off + (size_t)P * L->v_cap * 4);
    L->page_bytes = off;
}

static kvq_status check_lut(const kvq_tensor_codebook *t, float *lut, float *mid, const char *what,
                            uint32_t layer, char *why, size_t why_len) {
    if (!t->centroids) { kvq_rt_why(why, why_len, "layer %u %s: no centroids", layer, what); return KVQ_ERR_FORMAT; }
    uint32_t n = 1u << t->bits;
    for (uint32_t i = 0; i < n; i++) {
        lut[i] = t->qnorm ? fmaf(t->centroids[i], t->qnorm_scale, t->qnorm_offset) : t->centroids[i];
        if (!isfinite(lut[i])) { kvq_rt_why(why, why_len, "layer %u %s: level %u not finite", layer, what, i); return KVQ_ERR_NONFINITE; }
        if (i && lut[i] < lut[i - 1]) { kvq_rt_why(why, why_len, "layer %u %s: levels not ascending at %u", layer, what, i); return KVQ_ERR_FORMAT; }
    }
    for (uint32_t i = 0; i + 1 < n; i++) mid[i] = 0.5f * (lut[i] + lut[i + 1]);
    for (uint32_t i = n - 1; i < KVQ_RT_MAX_L; i++) mid[i] = INFINITY;  /* never counted */
    for (uint32_t i = n; i < KVQ_RT_MAX_L; i++) lut[i] = 0.0f;
    if (!(t->outlier_fraction >= 0.0f && t->outlier_fraction < 1.0f)) {
        kvq_rt_why(why, why_len, "layer %u %s: outlier fraction %g outside [0, 1)", layer, what, (double)t->outlier_fraction);
        return KVQ_ERR_FORMAT;
    }
    if (t->residual != KVQ_OUTLIER_EXACT && t->residual != KVQ_OUTLIER_RESIDUAL) {
        kvq_rt_why(why, why_len, "layer %u %s: unknown residual mode %d", layer, what, (int)t->residual);
        return KVQ_ERR_FORMAT;
    }
    return KVQ_OK;
}

/* Host copy of one layer: LUTs, outlier capacities, value groups. */
static kvq_status setup_layer(kvq_rt_layer *L, const kvq_layer_codebook *lc, const kvq_rt_dims *d,
                              uint32_t layer, char *why, size_t why_len) {
    memset(L, 0, sizeof *L);
    uint32_t kv_dim = d->n_kv_heads * d->head_dim;
    if (lc->k.bits != lc->v.bits || lc->k.bits < 2 || lc->k.bits > 4) {
        kvq_rt_why(why, why_len, "layer %u: K %u bits, V %u bits; the runtime needs equal bits in 2..4",
                   layer, lc->k.bits, lc->v.bits);
        return KVQ_ERR_UNSUPPORTED;
    }
    L->bits = lc->k.bits;
    L->n_levels = 1u << L->bits;
    kvq_status st = check_lut(&lc->k, L->lut_k, L->mid_k, "K", layer, why, why_len);
    if (st == KVQ_OK) st = check_lut(&lc->v, L->lut_v, L->mid_v, "V", layer, why, why_len);
    if (st != KVQ_OK) return st;
    if (lc->k.axis != KVQ_NORM_PER_CHANNEL || !lc->k.zero_point || !lc->k.half_range) {
        kvq_rt_why(why, why_len, "layer %u: keys must be per channel with zero points and half-ranges", layer);
        return KVQ_ERR_FORMAT;
    }
    for (uint32_t c = 0; c < kv_dim; c++)
        if (!isfinite(lc->k.zero_point[c]) || !(lc->k.half_range[c] > 0.0f) || !isfinite(lc->k.half_range[c])) {
            kvq_rt_why(why, why_len, "layer %u: key channel %u has z %g, r %g (need finite, r > 0)", layer, c,
                       (double)lc->k.zero_point[c], (double)lc->k.half_range[c]);
            return KVQ_ERR_FORMAT;
        }
    L->k_outliers = lc->k.outlier_fraction > 0.0f;
    if (L->k_outliers && lc->k.outlier_cap == 0) {
        kvq_rt_why(why, why_len, "layer %u: key outliers are uncapped (outlier_cap 0); the runtime stores "
                   "at most 2*cap per token and needs a cap", layer);
        return KVQ_ERR_UNSUPPORTED;
    }
    L->k_m = L->k_outliers ? lc->k.outlier_cap : 0;
    if (L->k_m > kv_dim) L->k_m = kv_dim;
    L->k_cap = 2 * L->k_m;
    if (lc->v.axis == KVQ_NORM_PER_TOKEN) { L->v_groups = 1; L->v_group = kv_dim; }
    else if (lc->v.axis == KVQ_NORM_PER_TOKEN_HEAD) { L->v_groups = d->n_kv_heads; L->v_group = d->head_dim; }
    else { kvq_rt_why(why, why_len, "layer %u: values must be per token or per token and head", layer); return KVQ_ERR_FORMAT; }
    /* docs/quantization.md §4: m = cap, else floor(p/2 * g) in fp32; none unless 2m < g */
    uint32_t m = 0;
    if (lc->v.outlier_fraction > 0.0f)
        m = lc->v.outlier_cap ? lc->v.outlier_cap : (uint32_t)floorf(lc->v.outlier_fraction / 2.0f * (float)L->v_group);
    L->v_m = 2ull * m < L->v_group ? m : 0;
    L->v_cap = 2 * L->v_m * L->v_groups;
    L->k_residual = lc->k.residual;
    L->v_residual = lc->v.residual;
    return KVQ_OK;
}

/* RoPE inverse frequencies theta^(-2i/d) with the codebook's scaling, in double, then float. */
static void rope_freqs(const kvq_model_identity *m, uint32_t hd, float *out) {
    for (uint32_t i = 0; i < hd / 2; i++) {
        double f = pow((double)m->rope_theta, -2.0 * i / hd);
        if (m->rope_scaling == KVQ_ROPE_SCALING_LINEAR && m->rope_scaling_factor > 0) {
            f /= m->rope_scaling_factor;
        } else if (m->rope_scaling == KVQ_ROPE_SCALING_LLAMA3 && m->rope_scaling_factor > 0) {
            double orig = m->rope_original_max_pos, lo = m->rope_low_freq_factor, hi = m->rope_high_freq_factor;
            double wl = 2.0 * M_PI / f, lo_wl = orig / lo, hi_wl = orig / hi;
            if (wl > lo_wl) f /= m->rope_scaling_factor;
            else if (wl >= hi_wl && hi != lo) {
                double s = (orig / wl - lo) / (hi - lo);
                f = (1.0 - s) * f / m->rope_scaling_factor + s * f;
            }
        }
        out[i] = (float)f;
    }
}

static kvq_status check_dims(const kvq_codebook *cb, const kvq_rt_dims *d, char *why, size_t why_len) {
    const kvq_model_identity *m = &cb->model;
    if (d->n_layers != m->n_layers || d->n_heads != m->n_heads || d->n_kv_heads != m->n_kv_heads ||
        d->head_dim != m->head_dim) {
        kvq_rt_why(why, why_len, "codebook is for %u layers x %u heads (%u KV) x %u, the model has %u x %u (%u KV) x %u",
                   m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, d->n_layers, d->n_heads, d->n_kv_heads, d->head_dim);
        return KVQ_ERR_SHAPE;
    }
    if (d->head_dim != 64 && d->head_dim != 128) {
        kvq_rt_why(why, why_len, "head_dim %u: the runtime handles 64 and 128", d->head_dim);
        return KVQ_ERR_UNSUPPORTED;
    }
    if (!d->n_layers || !d->n_kv_heads || d->n_heads % d->n_kv_heads || d->n_kv_heads * d->head_dim > 8192) {
        kvq_rt_why(why, why_len, "%u heads over %u KV heads of %u: need n_heads a multiple of n_kv_heads, kv_dim <= 8192",
                   d->n_heads, d->n_kv_heads, d->head_dim);
        return KVQ_ERR_SHAPE;
    }
    if (m->rope_convention != KVQ_ROPE_ROTATE_HALF) {
        kvq_rt_why(why, why_len, "codebook RoPE convention is interleaved; the runtime uses rotate-half");
        return KVQ_ERR_UNSUPPORTED;
    }
    if (!(m->rope_theta > 0.0f)) { kvq_rt_why(why, why_len, "rope_theta %g", (double)m->rope_theta); return KVQ_ERR_FORMAT; }
    if (!cb->layers) { kvq_rt_why(why, why_len, "codebook has no layers"); return KVQ_ERR_FORMAT; }
    return KVQ_OK;
}

/* rt->d_rot: the rotations by o = 0..KVQ_RT_ROT_N-1 positions of every RoPE pair, angle o * inv_freq
 * formed and rounded in double (the attention kernel multiplies them onto the exact rotation of its
 * chunk's first position instead of evaluating sin/cos per token). */
static kvq_status make_rot_table(kvq_rt *rt, char *why, size_t why_len) {
    uint32_t half = rt->dims.head_dim / 2;
    size_t n = (size_t)KVQ_RT_ROT_N * half;
    float2 *h = (float2 *)malloc(n * sizeof *h);
    if (!h) return KVQ_ERR_NOMEM;
    for (uint32_t o = 0; o < KVQ_RT_ROT_N; o++)
        for (uint32_t i = 0; i < half; i++) {
            double a = (double)o * (double)rt->inv_freq[i];
            h[(size_t)o * half + i] = make_float2((float)cos(a), (float)sin(a));
        }
    cudaError_t e = cudaMalloc((void **)&rt->d_rot, n * sizeof *h);
    if (e == cudaSuccess) e = cudaMemcpy(rt->d_rot, h, n * sizeof *h, cudaMemcpyHostToDevice);
    free(h);
    if (e != cudaSuccess) {
        kvq_rt_why(why, why_len, "%s:%d: cudaMalloc/cudaMemcpy of the RoPE rotation table: %s", __FILE__, __LINE__,
                   cudaGetErrorString(e));
        return KVQ_ERR_CUDA;
    }
    return KVQ_OK;
}

kvq_status kvq_rt_open(kvq_rt **out, const kvq_codebook *cb, const kvq_rt_dims *d, char *why, size_t why_len) {
    if (!out || !cb || !d) { kvq_rt_why(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    *out = NULL;
    kvq_status st = kvq_codebook_validate(cb, why, why_len);
    if (st == KVQ_OK) st = check_dims(cb, d, why, why_len);
    if (st != KVQ_OK) return st;
    kvq_rt *rt = (kvq_rt *)calloc(1, sizeof *rt);
    if (!rt) return KVQ_ERR_NOMEM;
    rt->dims = *d;
    rt->n_sink = cb->n_sink;
    rt->layers = (kvq_rt_layer *)calloc(d->n_layers, sizeof *rt->layers);
    uint32_t kv_dim = d->n_kv_heads * d->head_dim;
    float *h_zr = (float *)malloc((size_t)d->n_layers * 2 * kv_dim * sizeof(float));
    if (!rt->layers || !h_zr) { free(h_zr); kvq_rt_close(rt); return KVQ_ERR_NOMEM; }
    for (uint32_t l = 0; l < d->n_layers && st == KVQ_OK; l++) {
        st = setup_layer(&rt->layers[l], &cb->layers[l], d, l, why, why_len);
        if (st != KVQ_OK) break;
        memcpy(h_zr + (size_t)l * 2 * kv_dim, cb->layers[l].k.zero_point, kv_dim * sizeof(float));
        memcpy(h_zr + ((size_t)l * 2 + 1) * kv_dim, cb->layers[l].k.half_range, kv_dim * sizeof(float));
    }
    if (st == KVQ_OK) {
        size_t bytes = (size_t)d->n_layers * 2 * kv_dim * sizeof(float);
        cudaError_t e = cudaMalloc((void **)&rt->d_kzr, bytes);
        if (e == cudaSuccess) e = cudaMemcpy(rt->d_kzr, h_zr, bytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            kvq_rt_why(why, why_len, "%s:%d: cudaMalloc/cudaMemcpy of %zu B of key thresholds: %s", __FILE__, __LINE__,
                       bytes, cudaGetErrorString(e));
            st = KVQ_ERR_CUDA;
        }
    }
    free(h_zr);
    if (st != KVQ_OK) { kvq_rt_close(rt); return st; }
    for (uint32_t l = 0; l < d->n_layers; l++) {
        rt->layers[l].kz = rt->d_kzr + (size_t)l * 2 * kv_dim;
        rt->layers[l].kr = rt->layers[l].kz + kv_dim;
    }
    if ((st = kvq_attn_key_levels(rt, why, why_len)) != KVQ_OK) { kvq_rt_close(rt); return st; }
    rope_freqs(&cb->model, d->head_dim, rt->inv_freq);
    if ((st = make_rot_table(rt, why, why_len)) != KVQ_OK) { kvq_rt_close(rt); return st; }
    *out = rt;
    return KVQ_OK;
}

kvq_status kvq_rt_rope_freqs(const kvq_rt *rt, float *inv_freq) {
    if (!rt || !inv_freq) return KVQ_ERR_ARG;
    memcpy(inv_freq, rt->inv_freq, rt->dims.head_dim / 2 * sizeof(float));
    return KVQ_OK;
}

void kvq_rt_close(kvq_rt *rt) {
    if (!rt) return;
    if (rt->d_kzr) cudaFree(rt->d_kzr);
    if (rt->d_klev) cudaFree(rt->d_klev);
    if (rt->d_rot) cudaFree(rt->d_rot);
    free(rt->layers);
    free(rt);
}

size_t kvq_rt_page_bytes(const kvq_rt *rt, uint32_t layer, uint32_t page_tokens) {
    if (!rt || layer >= rt->dims.n_layers || !page_tokens) return 0;
    kvq_rt_layer L = rt->layers[layer];
    kvq_rt_layout_page(&L, &rt->dims, page_tokens);
    return L.page_bytes;
}
