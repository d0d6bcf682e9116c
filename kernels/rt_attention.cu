/* rt_attention.cu — decode attention straight from the packed cache (docs/runtime.md).
 * Grid: (split of the sequence, KV head x query-head group, slot). A block takes CH tokens of one
 * slot and one KV head for up to GM query heads of that KV head, so each code is decoded once per
 * KV head. Lanes: D/32 lanes per token, each owning 32 channels (16 RoPE pairs); the query is
 * carried rotated by -position in registers and stepped from token to token by a fixed rotation
 * (no trigonometry in the loop). Pass 1 writes scores to shared memory, pass 2 accumulates
 * values with softmax weights; outliers and fp16 sink tokens are corrections on the side.
 * kvq_rt_combine merges the splits (log-sum-exp). Also the partials' combine used by rt_fp16.cu. */
#include <math.h>
#include <string.h>
#include "rt_internal.cuh"
#include "rt_attn.cuh"

enum { NW = 4 };   /* warps per block */

typedef struct kvq_rt_rope { float inv_freq[64]; } kvq_rt_rope;

/* cos/sin of the exact angle pos * f: the product is exact in double, reduced modulo 2*pi with a
 * two-part constant, then a single-precision sincos on [-pi, pi] (its fast path). */
__device__ static inline void kvq_rope_cs(uint32_t pos, float f, float *c, float *s) {
    double a = (double)pos * (double)f;
    double k = rint(a * 0.15915494309189535);
    double r = fma(-k, 6.283185307179586, a);
    r = fma(-k, 2.4492935982947064e-16, r);
    sincosf((float)r, s, c);
}

template <int B>
__device__ static inline uint32_t kvq_code_at(const uint32_t (&w)[B], int k) {
    const int bit = k * B, wi = bit / 32, sh = bit % 32;
    if (sh + B <= 32) return (w[wi] >> sh) & ((1u << B) - 1);
    return __funnelshift_r(w[wi], w[wi + 1], sh) & ((1u << B) - 1);
}

template <int B>
__device__ static inline void kvq_load_words(const uint32_t *p, uint32_t (&w)[B]) {
    if (B == 2) { uint2 v = *(const uint2 *)p; w[0] = v.x; w[1] = v.y; }
    else if (B == 4) { uint4 v = *(const uint4 *)p; w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w; }
    else {
#pragma unroll
        for (int i = 0; i < B; i++) w[i] = p[i];
    }
}

/* Words of a token-head's codes (section `off`: K or V codes) for position t. */
__device__ static inline const uint32_t *kvq_words(const kvq_rt_geom &g, const kvq_rt_layer &L, const int32_t *ptab,
                                                   size_t off, uint32_t kvh, uint32_t t, uint32_t wph,
                                                   uint32_t *slot_out, const uint8_t **page_out) {
    const uint8_t *page = g.pool + (size_t)ptab[t / g.page_tokens] * L.page_bytes;
    uint32_t slot = t % g.page_tokens;
    *slot_out = slot;
    *page_out = page;
    return (const uint32_t *)(page + off) + ((size_t)kvh * g.page_tokens + slot) * wph;
}

template <int D, int B, int GM>
__global__ void __launch_bounds__(NW * 32) kvq_attn_q(kvq_rt_layer L, kvq_rt_geom g, kvq_rt_rope rope,
                                                      const uint16_t *q, int q_bf16, float scale, uint32_t CH,
                                                      uint32_t nqg, float *part_o, float *part_ml, uint32_t nsplit) {
    constexpr int LPT = D / 32, TPW = 32 / LPT, NGRP = NW * TPW, WPH = D * B / 32, NL = 1 << B;
    constexpr int SL = NL > 8 ? NL : 8, HALF = D / 2;
    extern __shared__ float sm[];
    float *lutk = sm;                  /* (D, SL) per-channel dequantized levels */
    float *lutv = lutk + D * SL;       /* (16) */
    float *invf = lutv + 16;           /* (HALF) RoPE inverse frequencies */
    float *qs = invf + HALF;           /* (GM, D) scaled query */
    float *oc = qs + GM * D;           /* (GM, D) output accumulator */
    float *red = oc + GM * D;          /* (GM * 2 + NW * GM) */
    float *sc = red + 2 * GM + NW * GM;/* (GM, CH) scores, then weights */
    const uint32_t b = blockIdx.z, kvh = blockIdx.y / nqg, qg = blockIdx.y % nqg, split = blockIdx.x;
    const uint32_t G = g.n_heads / g.n_kv_heads, len = g.lens[b], t0 = split * CH;
    const uint32_t t1 = min(len, t0 + CH), hq0 = kvh * G + qg * GM, nq = min((uint32_t)GM, G - qg * GM);
    const uint32_t tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    size_t pbase = ((size_t)b * g.n_heads + hq0) * nsplit + split;   /* partial of head hq0 */
    if (t0 >= t1) {
        for (uint32_t gq = 0; gq < nq; gq++) {
            if (tid < 2) part_ml[(pbase + (size_t)gq * nsplit) * 2 + tid] = tid ? 0.0f : -INFINITY;
            for (uint32_t i = tid; i < D; i += blockDim.x) part_o[(pbase + (size_t)gq * nsplit) * D + i] = 0.0f;
        }
        return;
    }
    for (uint32_t x = tid; x < D * SL; x += blockDim.x) {
        uint32_t c = x / SL, v = x % SL;
        lutk[x] = v < NL ? fmaf(L.lut_k[v], L.kr[kvh * D + c], L.kz[kvh * D + c]) : 0.0f;
    }
    if (tid < 16) lutv[tid] = L.lut_v[tid];
    if (tid < HALF) invf[tid] = rope.inv_freq[tid];
    for (uint32_t x = tid; x < GM * D; x += blockDim.x) {
        uint32_t gq = x / D, i = x % D;
        float v = 0.0f;
        if (gq < nq) {
            uint16_t u = q[((size_t)b * g.n_heads + hq0 + gq) * D + i];
            v = (q_bf16 ? __bfloat162float(__ushort_as_bfloat16(u)) : __half2float(__ushort_as_half(u))) * scale;
        }
        qs[x] = v;
        oc[x] = 0.0f;
    }
    __syncthreads();
    const uint32_t H = g.n_kv_heads;
    const uint32_t tq0 = max(t0, g.n_sink), s = lane % LPT, grp = warp * TPW + lane / LPT;
    const int32_t *ptab = g.page_table + (size_t)b * g.max_pages;

    /* ---- sink tokens (fp16, exact RoPE), warp 0 ---- */
    for (uint32_t t = t0; t < min(t1, g.n_sink); t++) {
        if (warp != 0) break;
        const uint16_t *kk = g.k_sink + ((size_t)b * g.n_sink + t) * g.kv_dim + kvh * D;
        float part[GM];
#pragma unroll
        for (int gq = 0; gq < GM; gq++) part[gq] = 0.0f;
        for (uint32_t j = lane; j < HALF; j += 32) {
            float c, sn, k1 = __half2float(__ushort_as_half(kk[j])), k2 = __half2float(__ushort_as_half(kk[j + HALF]));
            kvq_rope_cs(t, invf[j], &c, &sn);
            float r1 = k1 * c - k2 * sn, r2 = k2 * c + k1 * sn;
#pragma unroll
            for (int gq = 0; gq < GM; gq++) part[gq] += qs[gq * D + j] * r1 + qs[gq * D + j + HALF] * r2;
        }
#pragma unroll
        for (int gq = 0; gq < GM; gq++) {
            for (int o = 16; o; o >>= 1) part[gq] += __shfl_xor_sync(0xffffffffu, part[gq], o);
            if (lane == 0) sc[gq * CH + (t - t0)] = part[gq];
        }
    }

    /* ---- pass 1: dense scores of quantized tokens; codes prefetched two tokens ahead ---- */
    if (tq0 < t1) {
        float qa[GM][16], qb[GM][16], stc[16], sts[16];
        uint32_t p = tq0 + grp;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint32_t i = LPT * j + s;
            float f = invf[i], c, sn;
            kvq_rope_cs(p, f, &c, &sn);
            kvq_rope_cs(NGRP, f, &stc[j], &sts[j]);
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
                float x = qs[gq * D + i], y = qs[gq * D + i + HALF];
                qa[gq][j] = x * c + y * sn;
                qb[gq][j] = y * c - x * sn;
            }
        }
        uint32_t slot;
        const uint8_t *page;
        uint32_t kwA[B], kwB[B];
        kvq_load_words<B>(kvq_words(g, L, ptab, L.off_kcodes, kvh, min(p, t1 - 1), WPH, &slot, &page) + s * B, kwA);
        kvq_load_words<B>(kvq_words(g, L, ptab, L.off_kcodes, kvh, min(p + NGRP, t1 - 1), WPH, &slot, &page) + s * B, kwB);
        for (uint32_t tb = tq0 + warp * TPW; tb < t1; tb += NGRP) {
            uint32_t t = tb + lane / LPT, kw[B];
#pragma unroll
            for (int i = 0; i < B; i++) { kw[i] = kwA[i]; kwA[i] = kwB[i]; }
            kvq_load_words<B>(kvq_words(g, L, ptab, L.off_kcodes, kvh, min(t + 2 * NGRP, t1 - 1), WPH, &slot, &page) + s * B, kwB);
            float acc[GM];
#pragma unroll
            for (int gq = 0; gq < GM; gq++) acc[gq] = 0.0f;
#pragma unroll
            for (int j = 0; j < 16; j++) {
                const uint32_t i = LPT * j + s;
                float ka = lutk[i * SL + kvq_code_at<B>(kw, j)];
                float kb = lutk[(i + HALF) * SL + kvq_code_at<B>(kw, j + 16)];
#pragma unroll
                for (int gq = 0; gq < GM; gq++) acc[gq] = fmaf(ka, qa[gq][j], fmaf(kb, qb[gq][j], acc[gq]));
            }
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
#pragma unroll
                for (int o = 1; o < LPT; o <<= 1) acc[gq] += __shfl_xor_sync(0xffffffffu, acc[gq], o);
                if (t < t1 && s == 0) sc[gq * CH + (t - t0)] = acc[gq];
            }
#pragma unroll
            for (int j = 0; j < 16; j++) {
#pragma unroll
                for (int gq = 0; gq < GM; gq++) {
                    float x = qa[gq][j], y = qb[gq][j];
                    qa[gq][j] = x * stc[j] + y * sts[j];
                    qb[gq][j] = y * stc[j] - x * sts[j];
                }
            }
        }
    }
    __syncthreads();
    /* ---- key outliers: one thread per token adds (outlier - dense) x rotated query ---- */
    if (L.k_cap) {
        for (uint32_t t = tq0 + tid; t < t1; t += blockDim.x) {
            uint32_t slot;
            const uint8_t *page;
            const uint32_t *wp = kvq_words(g, L, ptab, L.off_kcodes, kvh, t, WPH, &slot, &page);
            const uint16_t *offs = (const uint16_t *)(page + L.off_koff) + (size_t)slot * (H + 1);
            uint32_t e0 = offs[kvh], e1 = offs[kvh + 1];
            if (e0 == e1) continue;
            const uint32_t *list = (const uint32_t *)(page + L.off_kout) + (size_t)slot * L.k_cap;
            float corr[GM];
#pragma unroll
            for (int gq = 0; gq < GM; gq++) corr[gq] = 0.0f;
            for (uint32_t e = e0; e < e1; e++) {
                uint32_t ent = list[e], i = (ent & 0xFFFF) - kvh * D, jj = i % HALF;
                float v = __half2float(__ushort_as_half((uint16_t)(ent >> 16)));
                float dlt = L.k_residual == KVQ_OUTLIER_RESIDUAL ? v : v - lutk[i * SL + kvq_rt_get_code(wp, i, D, B)];
                float c, sn;
                kvq_rope_cs(t, invf[jj], &c, &sn);
#pragma unroll
                for (int gq = 0; gq < GM; gq++) {
                    float x = qs[gq * D + jj], y = qs[gq * D + jj + HALF];
                    corr[gq] += dlt * (i < HALF ? x * c + y * sn : y * c - x * sn);
                }
            }
#pragma unroll
            for (int gq = 0; gq < GM; gq++) sc[gq * CH + (t - t0)] += corr[gq];
        }
        __syncthreads();
    }

    /* ---- softmax over the chunk: max, weights, sum ---- */
    const uint32_t n = t1 - t0;
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        float m = -INFINITY;
        for (uint32_t x = tid; x < n; x += blockDim.x) m = fmaxf(m, sc[gq * CH + x]);
        for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        if (lane == 0) red[2 * GM + warp * GM + gq] = m;
    }
    __syncthreads();
    if (tid < GM) {
        float m = -INFINITY;
        for (int w = 0; w < NW; w++) m = fmaxf(m, red[2 * GM + w * GM + tid]);
        red[tid] = m;
    }
    __syncthreads();
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        float m = red[gq], l = 0.0f;
        for (uint32_t x = tid; x < n; x += blockDim.x) {
            float pr = expf(sc[gq * CH + x] - m);
            sc[gq * CH + x] = pr;
            l += pr;
        }
        for (int o = 16; o; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
        if (lane == 0) red[2 * GM + warp * GM + gq] = l;
    }
    __syncthreads();
    if (tid < GM) {
        float l = 0.0f;
        for (int w = 0; w < NW; w++) l += red[2 * GM + w * GM + tid];
        red[GM + tid] = l;
    }
    __syncthreads();

    /* ---- pass 2: values; sinks and outliers are corrections added with shared atomics ---- */
    for (uint32_t t = t0; t < min(t1, g.n_sink); t++) {
        if (warp != 0) break;
        const uint16_t *vv = g.v_sink + ((size_t)b * g.n_sink + t) * g.kv_dim + kvh * D;
        for (uint32_t i = lane; i < D; i += 32) {
            float v = __half2float(__ushort_as_half(vv[i]));
#pragma unroll
            for (int gq = 0; gq < GM; gq++) atomicAdd(&oc[gq * D + i], sc[gq * CH + (t - t0)] * v);
        }
    }
    const uint32_t vg = L.v_groups == 1 ? 0 : kvh;
    if (L.v_cap) {
        for (uint32_t t = tq0 + tid; t < t1; t += blockDim.x) {
            uint32_t slot;
            const uint8_t *page;
            const uint32_t *wp = kvq_words(g, L, ptab, L.off_vcodes, kvh, t, WPH, &slot, &page);
            const uint16_t *offs = (const uint16_t *)(page + L.off_voff) + (size_t)slot * (H + 1);
            uint32_t e0 = offs[kvh], e1 = offs[kvh + 1];
            if (e0 == e1) continue;
            const uint32_t *list = (const uint32_t *)(page + L.off_vout) + (size_t)slot * L.v_cap;
            uint32_t zr = ((const uint32_t *)(page + L.off_vscale))[(size_t)slot * L.v_groups + vg];
            float z = __half2float(__ushort_as_half((uint16_t)(zr & 0xFFFF)));
            float r = __half2float(__ushort_as_half((uint16_t)(zr >> 16)));
            for (uint32_t e = e0; e < e1; e++) {
                uint32_t ent = list[e], i = (ent & 0xFFFF) - kvh * D;
                float v = __half2float(__ushort_as_half((uint16_t)(ent >> 16)));
                float dlt = L.v_residual == KVQ_OUTLIER_RESIDUAL ? v : v - fmaf(lutv[kvq_rt_get_code(wp, i, D, B)], r, z);
#pragma unroll
                for (int gq = 0; gq < GM; gq++) atomicAdd(&oc[gq * D + i], sc[gq * CH + (t - t0)] * dlt);
            }
        }
    }
    float oa[GM][32], za[GM];
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        za[gq] = 0.0f;
#pragma unroll
        for (int k = 0; k < 32; k++) oa[gq][k] = 0.0f;
    }
    if (tq0 < t1) {
        uint32_t p = tq0 + grp, slot;
        const uint8_t *page;
        uint32_t vwA[B], vwB[B], zrA, zrB;
        const uint32_t *scl = NULL;
        kvq_load_words<B>(kvq_words(g, L, ptab, L.off_vcodes, kvh, min(p, t1 - 1), WPH, &slot, &page) + s * B, vwA);
        zrA = ((const uint32_t *)(page + L.off_vscale))[(size_t)slot * L.v_groups + vg];
        kvq_load_words<B>(kvq_words(g, L, ptab, L.off_vcodes, kvh, min(p + NGRP, t1 - 1), WPH, &slot, &page) + s * B, vwB);
        zrB = ((const uint32_t *)(page + L.off_vscale))[(size_t)slot * L.v_groups + vg];
        (void)scl;
        for (uint32_t tb = tq0 + warp * TPW; tb < t1; tb += NGRP) {
            uint32_t t = tb + lane / LPT, vw[B], zr = zrA;
            bool ok = t < t1;
#pragma unroll
            for (int i = 0; i < B; i++) { vw[i] = vwA[i]; vwA[i] = vwB[i]; }
            zrA = zrB;
            kvq_load_words<B>(kvq_words(g, L, ptab, L.off_vcodes, kvh, min(t + 2 * NGRP, t1 - 1), WPH, &slot, &page) + s * B, vwB);
            zrB = ((const uint32_t *)(page + L.off_vscale))[(size_t)slot * L.v_groups + vg];
            float z = __half2float(__ushort_as_half((uint16_t)(zr & 0xFFFF)));
            float r = __half2float(__ushort_as_half((uint16_t)(zr >> 16)));
            float w[GM];
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
                float pw = ok ? sc[gq * CH + (min(t, t1 - 1) - t0)] : 0.0f;
                w[gq] = pw * r;
                za[gq] = fmaf(pw, z, za[gq]);
            }
#pragma unroll
            for (int k = 0; k < 32; k++) {
                float lv = lutv[kvq_code_at<B>(vw, k)];
#pragma unroll
                for (int gq = 0; gq < GM; gq++) oa[gq][k] = fmaf(w[gq], lv, oa[gq][k]);
            }
        }
    }
    /* lanes with equal s hold the same channels: reduce over the warp's token groups */
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
#pragma unroll
        for (int o = LPT; o < 32; o <<= 1) {
            za[gq] += __shfl_xor_sync(0xffffffffu, za[gq], o);
#pragma unroll
            for (int k = 0; k < 32; k++) oa[gq][k] += __shfl_xor_sync(0xffffffffu, oa[gq][k], o);
        }
    }
    if (lane < LPT) {
#pragma unroll
        for (int gq = 0; gq < GM; gq++) {
#pragma unroll
            for (int k = 0; k < 32; k++) atomicAdd(&oc[gq * D + kvq_rt_seg_channel(k, s, D)], oa[gq][k]);
            if (lane == 0) red[2 * GM + warp * GM + gq] = za[gq];
        }
    }
    __syncthreads();
    for (uint32_t x = tid; x < nq * D; x += blockDim.x) {
        uint32_t gq = x / D, i = x % D;
        float zs = 0.0f;
        for (int w = 0; w < NW; w++) zs += red[2 * GM + w * GM + gq];
        part_o[(pbase + (size_t)gq * nsplit) * D + i] = oc[x] + zs;
    }
    if (tid < nq) {
        part_ml[(pbase + (size_t)tid * nsplit) * 2] = red[tid];
        part_ml[(pbase + (size_t)tid * nsplit) * 2 + 1] = red[GM + tid];
    }
}

/* Merge the splits of each (slot, query head): out = sum_s e^(m_s-M) o_s / sum_s e^(m_s-M) l_s. */
__global__ void kvq_rt_combine(const float *part_o, const float *part_ml, uint32_t nsplit, uint32_t D,
                               void *out, int out_f16) {
    size_t bh = blockIdx.x;
    float M = -INFINITY;
    for (uint32_t s = 0; s < nsplit; s++) M = fmaxf(M, part_ml[(bh * nsplit + s) * 2]);
    float l = 0.0f;
    for (uint32_t s = 0; s < nsplit; s++) {
        float m = part_ml[(bh * nsplit + s) * 2];
        if (m > -INFINITY) l += expf(m - M) * part_ml[(bh * nsplit + s) * 2 + 1];
    }
    for (uint32_t i = threadIdx.x; i < D; i += blockDim.x) {
        float o = 0.0f;
        for (uint32_t s = 0; s < nsplit; s++) {
            float m = part_ml[(bh * nsplit + s) * 2];
            if (m > -INFINITY) o += expf(m - M) * part_o[(bh * nsplit + s) * D + i];
        }
        o = l > 0.0f ? o / l : 0.0f;
        if (out_f16) ((__half *)out)[bh * D + i] = __float2half_rn(o);
        else ((float *)out)[bh * D + i] = o;
    }
}

typedef void (*kvq_attn_fn)(kvq_rt_layer, kvq_rt_geom, kvq_rt_rope, const uint16_t *, int, float, uint32_t,
                            uint32_t, float *, float *, uint32_t);

template <int D, int B>
static kvq_attn_fn pick_gm(int gm) {
    return gm == 1 ? kvq_attn_q<D, B, 1> : gm == 2 ? kvq_attn_q<D, B, 2> : kvq_attn_q<D, B, 4>;
}
template <int D>
static kvq_attn_fn pick_b(int b, int gm) {
    return b == 2 ? pick_gm<D, 2>(gm) : b == 3 ? pick_gm<D, 3>(gm) : pick_gm<D, 4>(gm);
}

kvq_status kvq_rt_attention(kvq_rt_cache *c, uint32_t layer, const void *d_q, kvq_rt_dtype q_dt,
                            void *d_out, kvq_rt_dtype out_dt, float scale, char *why, size_t why_len) {
    if (!c || layer >= c->rt->dims.n_layers || !d_q || !d_out) { kvq_rt_why(why, why_len, "bad arguments to attention"); return KVQ_ERR_ARG; }
    if ((q_dt != KVQ_RT_F16 && q_dt != KVQ_RT_BF16) || (out_dt != KVQ_RT_F16 && out_dt != KVQ_RT_F32)) {
        kvq_rt_why(why, why_len, "attention takes an F16/BF16 query and gives F16/F32");
        return KVQ_ERR_DTYPE;
    }
    const kvq_rt_dims *d = &c->rt->dims;
    const kvq_rt_layer *L = &c->layers[layer];
    uint32_t D = d->head_dim, G = d->n_heads / d->n_kv_heads, gm = G == 1 ? 1 : G == 2 ? 2 : 4;
    if (c->o.q_per_block && c->o.q_per_block < gm) gm = c->o.q_per_block;
    uint32_t nqg = (G + gm - 1) / gm, maxlen = 0;
    for (uint32_t i = 0; i < c->o.batch; i++) maxlen = c->h_lens[i] > maxlen ? c->h_lens[i] : maxlen;
    if (!scale) scale = 1.0f / sqrtf((float)D);
    kvq_attn_plan pl = kvq_attn_make_plan(maxlen, c->o.batch * d->n_kv_heads * nqg, D);
    kvq_status st = kvq_attn_work(&c->d_work, &c->work_bytes, c->o.batch, d->n_heads, D, pl.nsplit, why, why_len);
    if (st != KVQ_OK) return st;
    float *part_o = c->d_work, *part_ml = part_o + (size_t)c->o.batch * d->n_heads * pl.nsplit * D;
    kvq_rt_rope rope;
    memcpy(rope.inv_freq, c->rt->inv_freq, sizeof rope.inv_freq);
    kvq_attn_fn fn = D == 64 ? pick_b<64>(L->bits, gm) : pick_b<128>(L->bits, gm);
    uint32_t NL = 1u << L->bits, SL = NL > 8 ? NL : 8;
    size_t smem = (size_t)(D * SL + 16 + D / 2 + 2 * gm * D + 2 * gm + NW * gm + gm * pl.chunk) * sizeof(float);
    dim3 grid(pl.nsplit, d->n_kv_heads * nqg, c->o.batch);
    fn<<<grid, NW * 32, smem>>>(*L, kvq_rt_geom_of(c, layer), rope, (const uint16_t *)d_q, q_dt == KVQ_RT_BF16, scale,
                                pl.chunk, nqg, part_o, part_ml, pl.nsplit);
    KVQ_CU(cudaGetLastError());
    kvq_rt_combine<<<c->o.batch * d->n_heads, D>>>(part_o, part_ml, pl.nsplit, D, d_out, out_dt == KVQ_RT_F16);
    KVQ_CU(cudaGetLastError());
    return KVQ_OK;
}
