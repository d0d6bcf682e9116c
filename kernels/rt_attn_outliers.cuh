/* rt_attn_outliers.cuh — pieces of the packed decode-attention kernel (rt_attention.cu) that are
 * not its dense loops: the exact RoPE angle, page lookup of a token's words, the chunk's flat list
 * of outliers (scan of per-token counts) and the outlier corrections of scores and outputs.
 * Private to the runtime. */
#ifndef KVQ_RT_ATTN_OUTLIERS_CUH
#define KVQ_RT_ATTN_OUTLIERS_CUH

#include "rt_internal.cuh"

typedef struct kvq_rt_rope { float inv_freq[64]; } kvq_rt_rope;   /* by value: (head_dim/2) */

/* cos/sin of the exact angle pos * f: the product is exact in double, reduced modulo 2*pi with a
 * two-part constant, then the hardware sincos on [-pi, pi]. */
__device__ static inline void kvq_rope_cs(uint32_t pos, float f, float *c, float *s) {
    double a = (double)pos * (double)f;
    double k = rint(a * 0.15915494309189535);
    double r = fma(-k, 6.283185307179586, a);
    r = fma(-k, 2.4492935982947064e-16, r);
    __sincosf((float)r, s, c);   /* |r| <= pi: absolute error ~2^-21, far below the 1e-3 budget */
}

/* (a.x + i a.y) (b.x + i b.y) */
__device__ static inline float2 kvq_cmul(float2 a, float2 b) {
    return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
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
 * flight; the dense codes and value scales come from the block's staged copies (codes: (CH, WPH)
 * words, vzr: (CH)). Keys (IS_V false): score of token x += (stored - dense) x query rotated to
 * position t0 + x, whose rotation is e0 (the chunk's first position) times rot[x]. Values:
 * output += weight x (stored - dense), via shared atomics. */
template <int D, int B, int GM, bool IS_V>
__device__ static void kvq_outliers(const kvq_rt_geom &g, const kvq_rt_layer &L, const int32_t *ptab, uint32_t kvh,
                                    uint32_t t0, uint32_t n, uint32_t total, const uint32_t *ofs, const uint32_t *pre,
                                    const uint32_t *codes, const uint32_t *vzr, const float2 *e0, const float2 *rot,
                                    const float *qs, float *sc, float *oc, uint32_t CH) {
    constexpr int WPH = D * B / 32, HALF = D / 2, U = 4;
    const uint32_t cap = IS_V ? L.v_cap : L.k_cap;
    const size_t off_list = IS_V ? L.off_vout : L.off_kout;
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
                if (IS_V) zr[u] = vzr[x[u]];
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {          /* the one or two words that hold the dense code */
            if (ok[u] && !resid) {
                uint32_t i = (ent[u] & 0xFFFF) - kvh * D, seg, k;
                kvq_rt_channel_seg(i, D, &seg, &k);
                uint32_t bit = k * B, wi = seg * B + bit / 32;
                const uint32_t *wp = codes + (size_t)x[u] * WPH;
                sh[u] = bit % 32;
                w0[u] = wp[wi];
                if (sh[u] + B > 32) w1[u] = wp[wi + 1];
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (ok[u]) {
                uint32_t i = (ent[u] & 0xFFFF) - kvh * D;
                float v = __half2float(__ushort_as_half((uint16_t)(ent[u] >> 16)));
                uint32_t code = (uint32_t)((((uint64_t)w1[u] << 32) | w0[u]) >> sh[u]) & ((1u << B) - 1);
                if (IS_V) {
                    float z = __half2float(__ushort_as_half((uint16_t)(zr[u] & 0xFFFF)));
                    float r = __half2float(__ushort_as_half((uint16_t)(zr[u] >> 16)));
                    float dlt = resid ? v : v - fmaf(L.lut_v[code], r, z);
#pragma unroll
                    for (int gq = 0; gq < GM; gq++) atomicAdd(&oc[gq * D + i], sc[gq * CH + x[u]] * dlt);
                } else {
                    float dlt = resid ? v : v - fmaf(L.lut_k[code], L.kr[kvh * D + i], L.kz[kvh * D + i]);
                    uint32_t jj = i % HALF;
                    float2 r = kvq_cmul(e0[jj], rot[(size_t)x[u] * HALF + jj]);   /* rotation of position t */
                    float c = r.x, s = r.y;
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

#endif
