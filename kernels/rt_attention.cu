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
 * two-part constant, then the hardware sincos on [-pi, pi]. */
__device__ static inline void kvq_rope_cs(uint32_t pos, float f, float *c, float *s) {
    double a = (double)pos * (double)f;
    double k = rint(a * 0.15915494309189535);
    double r = fma(-k, 6.283185307179586, a);
    r = fma(-k, 2.4492935982947064e-16, r);
    __sincosf((float)r, s, c);   /* |r| <= pi: absolute error ~2^-21, far below the 1e-3 budget */
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
    uint32_t pi, slot;
    if (g.page_shift >= 0) { pi = t >> g.page_shift; slot = t & (g.page_tokens - 1); }
    else { pi = t / g.page_tokens; slot = t - pi * g.page_tokens; }
    const uint8_t *page = g.pool + (size_t)ptab[pi] * L.page_bytes;
    *slot_out = slot;
    *page_out = page;
    return (const uint32_t *)(page + off) + ((size_t)kvh * g.page_tokens + slot) * wph;
}

/* Exclusive prefix, in chunk order, of the outlier counts of tokens x = 0..n-1 of the chunk
 * (ofs[x] = start | count << 16, recorded by pass 1; tokens before n0 are sinks: none) into pre[];
 * returns the total. Thread t owns tokens t*per .. t*per+per-1. */
__device__ static uint32_t kvq_chunk_scan(const uint32_t *ofs, uint32_t *pre, uint32_t n0, uint32_t n, float *red_u) {
    uint32_t *wsum = (uint32_t *)red_u;
    const uint32_t per = (n + blockDim.x - 1) / blockDim.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    uint32_t x0 = threadIdx.x * per, mine = 0;
    for (uint32_t x = x0; x < x0 + per && x < n; x++) mine += x >= n0 ? ofs[x] >> 16 : 0;
    uint32_t inc = mine;
    for (int o = 1; o < 32; o <<= 1) {
        uint32_t y = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= (uint32_t)o) inc += y;
    }
    if (lane == 31) wsum[warp] = inc;
    __syncthreads();
    uint32_t before = 0, total = 0;
    for (uint32_t w = 0; w < blockDim.x / 32; w++) { if (w < warp) before += wsum[w]; total += wsum[w]; }
    uint32_t run = before + inc - mine;
    for (uint32_t x = x0; x < x0 + per && x < n; x++) { pre[x] = run; run += x >= n0 ? ofs[x] >> 16 : 0; }
    __syncthreads();
    return total;
}

/* Last chunk index x with pre[x] <= j (the token holding flat outlier j). */
__device__ static inline uint32_t kvq_find_token(const uint32_t *pre, uint32_t n, uint32_t j) {
    uint32_t lo = 0, hi = n;          /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) >> 1;
        if (pre[mid] <= j) lo = mid; else hi = mid;
    }
    return lo;
}

/* Outlier corrections of one chunk, as a flat list of (token, entry) pairs, 4 per thread in
 * flight. Keys (IS_V false): score of token x += (stored - dense) x query rotated to the token's
 * position. Values: output += weight x (stored - dense) via shared atomics. */
template <int D, int B, int GM, bool IS_V>
__device__ static void kvq_outliers(const kvq_rt_geom &g, const kvq_rt_layer &L, const int32_t *ptab, uint32_t kvh,
                                    uint32_t t0, uint32_t n, uint32_t total, const uint32_t *ofs, const uint32_t *pre,
                                    const float *lutk, const float *lutv, const float *invf, const float *qs, float *sc,
                                    float *oc, uint32_t CH) {
    constexpr int WPH = D * B / 32, NL = 1 << B, SL = NL > 8 ? NL : 8, HALF = D / 2, U = 4;
    const uint32_t vg = L.v_groups == 1 ? 0 : kvh, cap = IS_V ? L.v_cap : L.k_cap;
    const size_t off_codes = IS_V ? L.off_vcodes : L.off_kcodes, off_list = IS_V ? L.off_vout : L.off_kout;
    const int resid = (IS_V ? L.v_residual : L.k_residual) == KVQ_OUTLIER_RESIDUAL;
    for (uint32_t j0 = 0; j0 < total; j0 += U * blockDim.x) {
        uint32_t x[U], ent[U], w0[U], w1[U], zr[U], sh[U], slot[U];
        const uint8_t *page[U];
        bool ok[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            uint32_t j = j0 + u * blockDim.x + threadIdx.x;
            ok[u] = j < total;
            x[u] = ok[u] ? kvq_find_token(pre, n, j) : 0;
            ent[u] = 0; zr[u] = 0; w0[u] = 0; w1[u] = 0; sh[u] = 0;
            kvq_words(g, L, ptab, 0, 0, t0 + x[u], 0, &slot[u], &page[u]);
            if (ok[u]) {
                ent[u] = ((const uint32_t *)(page[u] + off_list))[(size_t)slot[u] * cap + (ofs[x[u]] & 0xFFFF) + (j - pre[x[u]])];
                if (IS_V) zr[u] = ((const uint32_t *)(page[u] + L.off_vscale))[(size_t)slot[u] * L.v_groups + vg];
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {          /* the one or two words that hold the dense code */
            if (ok[u] && !resid) {
                uint32_t i = (ent[u] & 0xFFFF) - kvh * D, seg, k;
                kvq_rt_channel_seg(i, D, &seg, &k);
                uint32_t bit = k * B, wi = seg * B + bit / 32;
                const uint32_t *wp = (const uint32_t *)(page[u] + off_codes) + ((size_t)kvh * g.page_tokens + slot[u]) * WPH;
                sh[u] = bit % 32;
                w0[u] = wp[wi];
                if (sh[u] + B > 32) w1[u] = wp[wi + 1];
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (ok[u]) {
                uint32_t i = (ent[u] & 0xFFFF) - kvh * D, t = t0 + x[u];
                float v = __half2float(__ushort_as_half((uint16_t)(ent[u] >> 16)));
                uint32_t code = (uint32_t)((((uint64_t)w1[u] << 32) | w0[u]) >> sh[u]) & ((1u << B) - 1);
                if (IS_V) {
                    float z = __half2float(__ushort_as_half((uint16_t)(zr[u] & 0xFFFF)));
                    float r = __half2float(__ushort_as_half((uint16_t)(zr[u] >> 16)));
                    float dlt = resid ? v : v - fmaf(lutv[code], r, z);
#pragma unroll
                    for (int gq = 0; gq < GM; gq++) atomicAdd(&oc[gq * D + i], sc[gq * CH + x[u]] * dlt);
                } else {
                    float dlt = resid ? v : v - lutk[i * SL + code], c, s;
                    uint32_t jj = i % HALF;
                    kvq_rope_cs(t, invf[jj], &c, &s);
#pragma unroll
                    for (int gq = 0; gq < GM; gq++) {
                        float a = qs[gq * D + jj], b2 = qs[gq * D + jj + HALF];
                        atomicAdd(&sc[gq * CH + x[u]], dlt * (i < HALF ? a * c + b2 * s : b2 * c - a * s));
                    }
                }
            }
        }
    }
}

template <int D, int B, int GM>
__global__ void __launch_bounds__(NW * 32, GM == 1 ? 4 : 1) kvq_attn_q(kvq_rt_layer L, kvq_rt_geom g, kvq_rt_rope rope,
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
    uint32_t *kofs = (uint32_t *)(sc + GM * CH);  /* (CH) key outliers: start | count << 16 */
    uint32_t *vofs = kofs + CH;                   /* (CH) value outliers */
    uint32_t *pre = vofs + CH;                    /* (CH) prefix of counts */
    uint32_t *wsc = pre + CH;                     /* (32) scan scratch */
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
    if (tid < 16) { lutv[tid] = L.lut_v[tid]; oc[tid] = L.lut_k[tid]; }   /* oc: scratch until zeroed below */
    if (tid < HALF) invf[tid] = rope.inv_freq[tid];
    __syncthreads();
    for (uint32_t x = tid; x < D * SL; x += blockDim.x) {
        uint32_t c = x / SL, v = x % SL;
        lutk[x] = v < NL ? fmaf(oc[v], L.kr[kvh * D + c], L.kz[kvh * D + c]) : 0.0f;
    }
    __syncthreads();
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
            uint32_t i = 16 * s + j;
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
            uint32_t ko0 = 0, ko1 = 0, vo0 = 0, vo1 = 0;
            if (s == 0 && t < t1 && (L.k_cap | L.v_cap)) {    /* outlier offsets, stored below */
                const uint8_t *pg;
                uint32_t sl;
                kvq_words(g, L, ptab, 0, 0, t, 0, &sl, &pg);
                const uint16_t *ko = (const uint16_t *)(pg + L.off_koff) + (size_t)sl * (H + 1) + kvh;
                const uint16_t *vo = (const uint16_t *)(pg + L.off_voff) + (size_t)sl * (H + 1) + kvh;
                if (L.k_cap) { ko0 = ko[0]; ko1 = ko[1]; }
                if (L.v_cap) { vo0 = vo[0]; vo1 = vo[1]; }
            }
#pragma unroll
            for (int i = 0; i < B; i++) { kw[i] = kwA[i]; kwA[i] = kwB[i]; }
            kvq_load_words<B>(kvq_words(g, L, ptab, L.off_kcodes, kvh, min(t + 2 * NGRP, t1 - 1), WPH, &slot, &page) + s * B, kwB);
            float acc[GM];
#pragma unroll
            for (int gq = 0; gq < GM; gq++) acc[gq] = 0.0f;
#pragma unroll
            for (int j = 0; j < 16; j++) {
                const uint32_t i = 16 * s + j;
                float ka = lutk[i * SL + kvq_code_at<B>(kw, 2 * j)];
                float kb = lutk[(i + HALF) * SL + kvq_code_at<B>(kw, 2 * j + 1)];
#pragma unroll
                for (int gq = 0; gq < GM; gq++) acc[gq] = fmaf(ka, qa[gq][j], fmaf(kb, qb[gq][j], acc[gq]));
            }
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
#pragma unroll
                for (int o = 1; o < LPT; o <<= 1) acc[gq] += __shfl_xor_sync(0xffffffffu, acc[gq], o);
                if (t < t1 && s == 0) sc[gq * CH + (t - t0)] = acc[gq];
            }
            if (s == 0 && t < t1) {
                kofs[t - t0] = ko0 | (ko1 - ko0) << 16;
                vofs[t - t0] = vo0 | (vo1 - vo0) << 16;
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
    /* ---- key outliers: flat list over the chunk ---- */
    const uint32_t n = t1 - t0;
    if (L.k_cap) {
        uint32_t total = kvq_chunk_scan(kofs, pre, tq0 - t0, n, (float *)wsc);
        kvq_outliers<D, B, GM, false>(g, L, ptab, kvh, t0, n, total, kofs, pre, lutk, lutv, invf, qs, sc, oc, CH);
        __syncthreads();
    }

    /* ---- softmax over the chunk: max, weights, sum ---- */
    kvq_chunk_softmax<GM, NW>(sc, red, n, CH);

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
        uint32_t total = kvq_chunk_scan(vofs, pre, tq0 - t0, n, (float *)wsc);
        kvq_outliers<D, B, GM, true>(g, L, ptab, kvh, t0, n, total, vofs, pre, lutk, lutv, invf, qs, sc, oc, CH);
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
        kvq_load_words<B>(kvq_words(g, L, ptab, L.off_vcodes, kvh, min(p, t1 - 1), WPH, &slot, &page) + s * B, vwA);
        zrA = ((const uint32_t *)(page + L.off_vscale))[(size_t)slot * L.v_groups + vg];
        kvq_load_words<B>(kvq_words(g, L, ptab, L.off_vcodes, kvh, min(p + NGRP, t1 - 1), WPH, &slot, &page) + s * B, vwB);
        zrB = ((const uint32_t *)(page + L.off_vscale))[(size_t)slot * L.v_groups + vg];
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
    kvq_attn_plan pl = kvq_attn_make_plan(maxlen, c->o.batch * d->n_kv_heads * nqg);
    kvq_status st = kvq_attn_work(&c->d_work, &c->work_bytes, c->o.batch, d->n_heads, D, pl.nsplit, why, why_len);
    if (st != KVQ_OK) return st;
    float *part_o = c->d_work, *part_ml = part_o + (size_t)c->o.batch * d->n_heads * pl.nsplit * D;
    kvq_rt_rope rope;
    memcpy(rope.inv_freq, c->rt->inv_freq, sizeof rope.inv_freq);
    kvq_attn_fn fn = D == 64 ? pick_b<64>(L->bits, gm) : pick_b<128>(L->bits, gm);
    uint32_t NL = 1u << L->bits, SL = NL > 8 ? NL : 8;
    size_t smem = (size_t)(D * SL + 16 + D / 2 + 2 * gm * D + 2 * gm + NW * gm + gm * pl.chunk + 3 * pl.chunk + 32) * sizeof(float);
    dim3 grid(pl.nsplit, d->n_kv_heads * nqg, c->o.batch);
    fn<<<grid, NW * 32, smem>>>(*L, kvq_rt_geom_of(c, layer), rope, (const uint16_t *)d_q, q_dt == KVQ_RT_BF16, scale,
                                pl.chunk, nqg, part_o, part_ml, pl.nsplit);
    KVQ_CU(cudaGetLastError());
    kvq_rt_combine<<<c->o.batch * d->n_heads, D>>>(part_o, part_ml, pl.nsplit, D, d_out, out_dt == KVQ_RT_F16);
    KVQ_CU(cudaGetLastError());
    return KVQ_OK;
}
