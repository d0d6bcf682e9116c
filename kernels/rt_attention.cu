/* rt_attention.cu — decode attention straight from the packed cache (docs/runtime.md "Kernels").
 * Grid: (split of the sequence, KV head x query-head group, slot). A block takes up to 256 tokens of
 * one slot and one KV head for up to GM query heads of that KV head, so each code is decoded once
 * per KV head. It first stages the chunk's key and value codes and value scales in shared memory
 * (cp.async, overlapped with building its tables), then: pass 1, key scores in fp32 on the CUDA
 * cores, 4 GM lanes per token, codes read a RoPE pair at a time, per-channel key levels from a
 * shared table, the query carried rotated by -position and stepped by a fixed rotation; pass 2,
 * values from a table of level pairs. Outliers and fp16 sink tokens are corrections on the side;
 * kvq_rt_combine merges the splits (log-sum-exp). Also the partials' combine used by rt_fp16.cu. */
#include <math.h>
#include <string.h>
#include "rt_internal.cuh"
#include "rt_attn.cuh"
#include "rt_attn_outliers.cuh"
#include "rt_attn_pairs.cuh"

#ifndef KVQ_ATTN_CHUNK_MAX
#define KVQ_ATTN_CHUNK_MAX 256
#endif
enum { NW = 4, KVQ_ATTN_CHUNK = KVQ_ATTN_CHUNK_MAX, /* warps per block; most tokens per block (staged) */
       KVQ_ATTN_NOUT = 512 /* outlier entries of K (and of V) a block stages; more: read in place */ };
static_assert((int)KVQ_ATTN_CHUNK <= (int)KVQ_RT_ROT_N && KVQ_ATTN_CHUNK <= 256, "chunk offsets: kvq_rt.d_rot, uint8");

/* Shapes of one instantiation. A token is read by LPT = 8 lanes; lane m owns the PP = D/16 pair fields
 * m*PP .. m*PP+PP-1, i.e. pairs j = m + 8k (kvq_rt_field_pair); TP = 4 tokens per warp step.
 * Key levels: per channel, copied 4 times (one copy per token of a warp step) for x = channel j and
 * y = channel j + D/2: entry (code c, pair j) of copy g at c*ROW + 4j (+ the copy's skew of 32g bytes,
 * so the 32 lanes of a warp hit 32 distinct banks whatever their codes). Addresses are formed by OR-ing
 * code << LR into an aligned base. Values: B <= 3, a table of level pairs indexed by a whole field,
 * one copy per half-warp lane (float2); B = 4, single levels, one copy per lane. */
template <int D, int B, int GM>
struct kvq_attn_shape {
    static constexpr int HALF = D / 2, LPT = 8, TP = 32 / LPT, PP = HALF / LPT;
    static constexpr int WPH = D * B / 32, TB = WPH * 4, NL = 1 << B, NE = 1 << (2 * B);
    static constexpr int LR = D == 128 ? 8 : 7, KC = NL << LR;          /* row bytes (log2); one copy */
    static constexpr int KY = D == 128 ? 4 * KC + 96 : 5 * KC;          /* y copies start (copy g: + g*KC + 32g) */
    static constexpr int KTAB = KY + 4 * KC + 96;
    static constexpr bool VPAIR = B < 4;
    static constexpr int VTAB = VPAIR ? NE * 16 * 8 : NL * 32 * 4;
    static constexpr int VOFF = VPAIR ? 0 : (KTAB + 2047) / 2048 * 2048, KOFF = VPAIR ? VTAB : 0;
    static constexpr int ALIGN = VPAIR ? (VTAB > KC ? VTAB : KC) : KC;  /* the tables' base alignment */
    static constexpr int TABLES = VPAIR ? VTAB + KTAB : VOFF + VTAB;
    static constexpr int PIECE = TB % 16 == 0 ? 16 : 8;                 /* cp.async bytes */
};

/* Shared memory of a block, byte offsets from the dynamic base: the small arrays (struct order),
 * then the tables at an ALIGN-aligned shared address, then the staged codes and value scales. The
 * dynamic base of a CTA on sm_90 is 0x400 past an aligned window, which the kernel checks. */
template <int D, int B, int GM>
struct kvq_attn_smem {
    using S = kvq_attn_shape<D, B, GM>;
    uint32_t qs, oc, wo, invf, e0, red, sc, kofs, vofs, prek, prev, wsc, kent, vent, vx, tab, ks, vs, vzr, total;
    __host__ __device__ kvq_attn_smem(uint32_t CH) {
        uint32_t o = 0;
        auto take = [&](uint32_t bytes) { uint32_t at = o; o = (o + bytes + 15) / 16 * 16; return at; };
        qs = take(GM * D * 4); oc = take(GM * D * 4); wo = take(NW * GM * D * 4); invf = take(S::HALF * 4); e0 = take(S::HALF * 8);
        red = take((2 * GM + NW * GM) * 4); sc = take(GM * CH * 4);
        kofs = take(CH * 4); vofs = take(CH * 4); prek = take(CH * 4); prev = take(CH * 4); wsc = take(64 * 4);
        kent = take(KVQ_ATTN_NOUT * 4); vent = take(KVQ_ATTN_NOUT * 4); vx = take(KVQ_ATTN_NOUT);
        tab = (o + 0x400 + S::ALIGN - 1) / S::ALIGN * S::ALIGN - 0x400;
        o = tab + S::TABLES;
        ks = take(CH * S::TB); vs = take(CH * S::TB); vzr = take(CH * 4);
        total = o;
    }
};

/* Copy `bytes` (16, 8 or 4) from global to shared memory asynchronously (cp.async, Ampere and later). */
template <int BYTES>
__device__ __forceinline__ void kvq_cp_async(void *dst, const void *src) {
    uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
    if (BYTES == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src));
    else asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(d), "l"(src), "n"(BYTES));
}
/* Shared-memory loads at a 32-bit shared address. */
__device__ __forceinline__ float kvq_lds(uint32_t a) {
    float v;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(a));
    return v;
}
__device__ __forceinline__ float2 kvq_lds2(uint32_t a) {
    float2 v;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(a));
    return v;
}

/* Exclusive prefixes, in chunk order, of the K and V outlier counts of tokens x = 0..n-1 of the chunk
 * (ofs[x] = start | count << 16; tokens before n0 are sinks: none) into prek / prev; totals in tk, tv.
 * Thread t owns tokens t*per .. t*per+per-1. Block-wide. */
__device__ static void kvq_chunk_scan2(const uint32_t *kofs, const uint32_t *vofs, uint32_t *prek, uint32_t *prev,
                                       uint32_t n0, uint32_t n, uint32_t *wsum, uint32_t *tk, uint32_t *tv) {
    const uint32_t per = (n + blockDim.x - 1) / blockDim.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const uint32_t x0 = threadIdx.x * per, nw = blockDim.x >> 5;
    uint32_t mk = 0, mv = 0;
    for (uint32_t x = x0; x < x0 + per && x < n; x++)
        if (x >= n0) { mk += kofs[x] >> 16; mv += vofs[x] >> 16; }
    uint32_t ik = mk, iv = mv;
    for (int o = 1; o < 32; o <<= 1) {
        uint32_t yk = __shfl_up_sync(0xffffffffu, ik, o), yv = __shfl_up_sync(0xffffffffu, iv, o);
        if (lane >= (uint32_t)o) { ik += yk; iv += yv; }
    }
    if (lane == 31) { wsum[warp] = ik; wsum[32 + warp] = iv; }
    __syncthreads();
    uint32_t bk = 0, bv = 0, sk = 0, sv = 0;
    for (uint32_t w = 0; w < nw; w++) {
        if (w < warp) { bk += wsum[w]; bv += wsum[32 + w]; }
        sk += wsum[w]; sv += wsum[32 + w];
    }
    uint32_t rk = bk + ik - mk, rv = bv + iv - mv;
    for (uint32_t x = x0; x < x0 + per && x < n; x++) {
        prek[x] = rk; prev[x] = rv;
        if (x >= n0) { rk += kofs[x] >> 16; rv += vofs[x] >> 16; }
    }
    *tk = sk;
    *tv = sv;
    __syncthreads();
}

/* Stage the outlier entries of the chunk's tokens (flat, chunk order) and, when xs, their token indices. */
__device__ static void kvq_stage_outliers(const kvq_rt_geom &g, const kvq_rt_layer &L, const int32_t *ptab,
                                          uint32_t t0, uint32_t n0, uint32_t n, const uint32_t *ofs, const uint32_t *pre,
                                          size_t off_list, uint32_t cap, uint32_t *ent, uint8_t *xs) {
    for (uint32_t x = n0 + threadIdx.x; x < n; x += blockDim.x) {
        uint32_t cnt = ofs[x] >> 16, slot;
        if (!cnt) continue;
        const uint8_t *page;
        kvq_words(g, L, ptab, 0, 0, t0 + x, 0, &slot, &page);
        const uint32_t *src = (const uint32_t *)(page + off_list) + (size_t)slot * cap + (ofs[x] & 0xFFFF);
        for (uint32_t e = 0; e < cnt; e++) {
            kvq_cp_async<4>(ent + pre[x] + e, src + e);
            if (xs) xs[pre[x] + e] = (uint8_t)x;
        }
    }
}

/* Key outlier corrections from the staged entries, one thread per token (no atomics): score of
 * token x += sum over its entries of (stored - dense) x query rotated to position t0 + x. Dense codes
 * come from the staged codes, levels from the block's key table (copy 0). */
template <int D, int B, int GM>
__device__ static void kvq_staged_key_outliers(const kvq_rt_layer &L, uint32_t kvh, uint32_t n0, uint32_t n,
                                               const uint32_t *ofs, const uint32_t *pre, const uint32_t *ent,
                                               const uint32_t *codes, uint32_t ktab, const float2 *e0, const float2 *rot,
                                               const float *qs, float *sc, uint32_t CH) {
    using S = kvq_attn_shape<D, B, GM>;
    constexpr int HALF = S::HALF;
    const int resid = L.k_residual == KVQ_OUTLIER_RESIDUAL;
    for (uint32_t x = n0 + threadIdx.x; x < n; x += blockDim.x) {
        const uint32_t cnt = ofs[x] >> 16;
        if (!cnt) continue;
        float add[GM];
#pragma unroll
        for (int gq = 0; gq < GM; gq++) add[gq] = 0.0f;
        for (uint32_t j = pre[x]; j < pre[x] + cnt; j++) {
            const uint32_t e = ent[j], i = (e & 0xFFFF) - kvh * D, jj = i % HALF;
            const float v = __half2float(__ushort_as_half((uint16_t)(e >> 16)));
            float dlt = v;
            if (!resid) {
                uint32_t code = kvq_rt_get_code(codes + (size_t)x * S::WPH, i, D, B);
                dlt = v - kvq_lds(ktab + (i < HALF ? 0 : S::KY) + (code << S::LR) + 4 * jj);
            }
            float2 r = kvq_cmul(e0[jj], rot[(size_t)x * HALF + jj]);   /* rotation of position t0 + x */
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
                float a = qs[gq * D + jj], b2 = qs[gq * D + jj + HALF];
                add[gq] = fmaf(dlt, i < HALF ? a * r.x + b2 * r.y : b2 * r.x - a * r.y, add[gq]);
            }
        }
#pragma unroll
        for (int gq = 0; gq < GM; gq++) sc[gq * CH + x] += add[gq];
    }
}

/* Value outlier corrections from the staged entries, added to the block's partial outputs in global
 * memory (po: (GM, nsplit, D) as part_o of head hq0, already written by this block; global float adds
 * are native reductions): output channel i += weight of token x x (stored - dense). */
template <int D, int B, int GM>
__device__ static void kvq_staged_value_outliers(const kvq_rt_layer &L, uint32_t kvh, uint32_t tot, uint32_t nq,
                                                 const uint32_t *ent, const uint8_t *xs, const uint32_t *codes,
                                                 const uint32_t *vzr, const float *sc, uint32_t CH, float *po,
                                                 size_t head_stride) {
    constexpr int WPH = D * B / 32;
    const int resid = L.v_residual == KVQ_OUTLIER_RESIDUAL;
    for (uint32_t j = threadIdx.x; j < tot; j += blockDim.x) {
        const uint32_t e = ent[j], x = xs[j], i = (e & 0xFFFF) - kvh * D;
        const float v = __half2float(__ushort_as_half((uint16_t)(e >> 16)));
        float dlt = v;
        if (!resid) {
            uint32_t zr = vzr[x], code = kvq_rt_get_code(codes + (size_t)x * WPH, i, D, B);
            float z = __half2float(__ushort_as_half((uint16_t)(zr & 0xFFFF)));
            float r = __half2float(__ushort_as_half((uint16_t)(zr >> 16)));
            dlt = v - fmaf(L.lut_v[code], r, z);
        }
        for (uint32_t gq = 0; gq < nq; gq++) atomicAdd(po + gq * head_stride + i, sc[gq * CH + x] * dlt);
    }
}

template <int D, int B, int GM>
__global__ void __launch_bounds__(NW * 32, 3) kvq_attn_q(kvq_rt_layer L, kvq_rt_geom g, kvq_rt_rope rope,
                                                         const float2 *rot, const uint16_t *q, int q_bf16, float scale, uint32_t CH,
                                                         uint32_t nqg, float *part_o, float *part_ml, uint32_t nsplit) {
    using S = kvq_attn_shape<D, B, GM>;
    constexpr int HALF = S::HALF, LPT = S::LPT, TP = S::TP, PP = S::PP, WPH = S::WPH, TB = S::TB;
    constexpr int NL = S::NL, NE = S::NE, KC = S::KC, PIECE = S::PIECE;
    extern __shared__ __align__(16) uint8_t smb[];
    const kvq_attn_smem<D, B, GM> M(CH);
    float *qs = (float *)(smb + M.qs);            /* (GM, D) scaled query */
    float *oc = (float *)(smb + M.oc);            /* (GM, D) output corrections (sinks; outliers past NOUT) */
    float *wo = (float *)(smb + M.wo);            /* (NW, GM, D) each warp's value sums */
    float *invf = (float *)(smb + M.invf);        /* (HALF) RoPE inverse frequencies */
    float2 *e0 = (float2 *)(smb + M.e0);          /* (HALF) rotation of position t0: cos, sin */
    float *red = (float *)(smb + M.red);          /* (GM * 2 + NW * GM) */
    float *sc = (float *)(smb + M.sc);            /* (GM, CH) scores, then weights */
    uint32_t *kofs = (uint32_t *)(smb + M.kofs);  /* (CH) key outliers: start | count << 16 */
    uint32_t *vofs = (uint32_t *)(smb + M.vofs);  /* (CH) value outliers */
    uint32_t *prek = (uint32_t *)(smb + M.prek), *prev = (uint32_t *)(smb + M.prev);  /* (CH) prefixes of counts */
    uint32_t *kent = (uint32_t *)(smb + M.kent), *vent = (uint32_t *)(smb + M.vent);  /* (NOUT) staged entries */
    uint8_t *vxs = smb + M.vx;                                                        /* (NOUT) V entries' tokens */
    uint8_t *ks = smb + M.ks, *vs = smb + M.vs;   /* (CH, TB) the chunk's key / value codes */
    uint32_t *vzr = (uint32_t *)(smb + M.vzr);    /* (CH) value scales: fp16 z | r << 16 */
    const uint32_t tabs = (uint32_t)__cvta_generic_to_shared(smb + M.tab);
    const uint32_t ktab = tabs + S::KOFF, vtab = tabs + S::VOFF;   /* shared addresses */
    const uint32_t b = blockIdx.z, kvh = blockIdx.y / nqg, qg = blockIdx.y % nqg, split = blockIdx.x;
    const uint32_t G = g.n_heads / g.n_kv_heads, len = g.lens[b], t0 = split * CH;
    const uint32_t t1 = min(len, t0 + CH), hq0 = kvh * G + qg * GM, nq = min((uint32_t)GM, G - qg * GM);
    const uint32_t tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    size_t pbase = ((size_t)b * g.n_heads + hq0) * nsplit + split;   /* partial of head hq0 */
    if (t0 >= t1 || (tabs & (S::ALIGN - 1))) {   /* empty split (or a shared window this layout does not expect: NaN) */
        float m0 = t0 >= t1 ? -INFINITY : NAN;
        for (uint32_t gq = 0; gq < nq; gq++) {
            if (tid < 2) part_ml[(pbase + (size_t)gq * nsplit) * 2 + tid] = tid ? 0.0f : m0;
            for (uint32_t i = tid; i < D; i += blockDim.x) part_o[(pbase + (size_t)gq * nsplit) * D + i] = t0 >= t1 ? 0.0f : NAN;
        }
        return;
    }
    const uint32_t tq0 = max(t0, g.n_sink), n = t1 - t0, nd = t1 > tq0 ? t1 - tq0 : 0, n0 = tq0 - t0;
    const uint32_t vg = L.v_groups == 1 ? 0 : kvh;
    const int32_t *ptab = g.page_table + (size_t)b * g.max_pages;
    /* ---- outlier offsets (start | count << 16) of this thread's tokens, loaded before the staging ---- */
    constexpr uint32_t OPT = KVQ_ATTN_CHUNK / (NW * 32);
    uint32_t ko[OPT][2], vo[OPT][2];   /* raw loads: used after the staging is issued */
#pragma unroll
    for (uint32_t u = 0; u < OPT; u++) {
        const uint32_t t = tq0 + tid + u * NW * 32;
        ko[u][0] = ko[u][1] = vo[u][0] = vo[u][1] = 0;
        if (t < t1 && (L.k_cap | L.v_cap)) {
            const uint8_t *pg;
            uint32_t sl;
            kvq_words(g, L, ptab, 0, 0, t, 0, &sl, &pg);
            const uint16_t *kp = (const uint16_t *)(pg + L.off_koff) + (size_t)sl * (g.n_kv_heads + 1) + kvh;
            const uint16_t *vp = (const uint16_t *)(pg + L.off_voff) + (size_t)sl * (g.n_kv_heads + 1) + kvh;
            if (L.k_cap) { ko[u][0] = kp[0]; ko[u][1] = kp[1]; }
            if (L.v_cap) { vo[u][0] = vp[0]; vo[u][1] = vp[1]; }
        }
    }
    /* ---- stage the chunk's codes and value scales (quantized tokens x >= n0) and the key levels ---- */
    {
        constexpr int PPTOK = TB / PIECE;
        for (uint32_t i = tid; i < nd * 2 * PPTOK; i += blockDim.x) {
            uint32_t x = i / (2 * PPTOK), r = i % (2 * PPTOK), isv = r / PPTOK, pc = r % PPTOK, slot;
            const uint8_t *page;
            const uint32_t *w = kvq_words(g, L, ptab, isv ? L.off_vcodes : L.off_kcodes, kvh, tq0 + x, WPH, &slot, &page);
            kvq_cp_async<PIECE>((isv ? vs : ks) + (size_t)(n0 + x) * TB + pc * PIECE, (const uint8_t *)w + pc * PIECE);
        }
        for (uint32_t x = tid; x < nd; x += blockDim.x) {
            uint32_t slot;
            const uint8_t *page;
            kvq_words(g, L, ptab, 0, 0, tq0 + x, 0, &slot, &page);
            kvq_cp_async<4>(vzr + n0 + x, (const uint32_t *)(page + L.off_vscale) + (size_t)slot * L.v_groups + vg);
        }
        /* key levels: 8 copies (x, y) x 4 of the head's (NL, HALF) rows */
        const uint8_t *lev = (const uint8_t *)(L.klev + (size_t)kvh * 2 * NL * HALF);
        for (uint32_t i = tid; i < 8 * KC / 16; i += blockDim.x) {
            uint32_t cp = i / (KC / 16), pc = i % (KC / 16), y = cp / 4, gc = cp % 4;
            uint8_t *dst = smb + M.tab + S::KOFF + (y ? S::KY : 0) + gc * (KC + 32) + pc * 16;
            kvq_cp_async<16>(dst, lev + (size_t)y * KC + pc * 16);
        }
        asm volatile("cp.async.commit_group;\n" ::);
    }
    if (tid < HALF) {
        float c, sn;
        invf[tid] = rope.inv_freq[tid];
        kvq_rope_cs(t0, rope.inv_freq[tid], &c, &sn);
        e0[tid] = make_float2(c, sn);
    }
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
    if (S::VPAIR) {
        float2 *lutv = (float2 *)(smb + M.tab + S::VOFF);   /* (NE, 16) */
        for (uint32_t x = tid; x < NE * 16; x += blockDim.x) {
            uint32_t e = x >> 4;
            lutv[x] = make_float2(L.lut_v[e & (NL - 1)], L.lut_v[e >> B]);
        }
    } else {
        float *lutv = (float *)(smb + M.tab + S::VOFF);      /* (NL, 32) */
        for (uint32_t x = tid; x < NL * 32; x += blockDim.x) lutv[x] = L.lut_v[x >> 5];
    }
    for (uint32_t u = 0; u < OPT; u++) {   /* the offsets loaded first, stored now */
        const uint32_t t = tq0 + tid + u * NW * 32;
        if (t < t1) {
            kofs[t - t0] = ko[u][0] | (ko[u][1] - ko[u][0]) << 16;
            vofs[t - t0] = vo[u][0] | (vo[u][1] - vo[u][0]) << 16;
        }
    }
    __syncthreads();
    uint32_t totk = 0, totv = 0;
    if (L.k_cap | L.v_cap) {
        kvq_chunk_scan2(kofs, vofs, prek, prev, n0, n, (uint32_t *)(smb + M.wsc), &totk, &totv);
        if (totk <= KVQ_ATTN_NOUT) kvq_stage_outliers(g, L, ptab, t0, n0, n, kofs, prek, L.off_kout, L.k_cap, kent, NULL);
        if (totv <= KVQ_ATTN_NOUT) kvq_stage_outliers(g, L, ptab, t0, n0, n, vofs, prev, L.off_vout, L.v_cap, vent, vxs);
        asm volatile("cp.async.commit_group;\n" ::);
    }

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
    asm volatile("cp.async.wait_all;\n" ::);
    __syncthreads();

    /* ---- pass 1: key scores. Warp w walks tokens tq0 + w TP + gl, stepping NW TP; lane (gl, ml) holds
     * the query rotated by -position for its pairs ml + 8k, stepped with a fixed rotation. ---- */
    const uint32_t gl = lane / LPT, ml = lane % LPT;
    if (nd) {
        float qx[GM][PP], qy[GM][PP], stc[PP], sts[PP];
        const uint32_t x0 = n0 + warp * TP + gl;   /* the lane's first token, < KVQ_RT_ROT_N */
#pragma unroll
        for (int k = 0; k < PP; k++) {
            uint32_t p = ml + 8 * k;
            float2 r = kvq_cmul(e0[p], rot[min(x0, (uint32_t)KVQ_RT_ROT_N - 1) * HALF + p]), st = rot[NW * TP * HALF + p];
            stc[k] = st.x;
            sts[k] = st.y;
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
                float x = qs[gq * D + p], y = qs[gq * D + p + HALF];
                qx[gq][k] = x * r.x + y * r.y;
                qy[gq][k] = y * r.x - x * r.y;
            }
        }
        const uint32_t bx = ktab + gl * (KC + 32) + ml * 4, by = bx + S::KY;   /* this lane's copies */
        for (uint32_t tb = tq0 + warp * TP; tb < t1; tb += NW * TP) {
            const uint32_t t = tb + gl, x = min(t, t1 - 1) - t0;
            kvq_fields<PP, B, WPH> f;
            f.load((const uint32_t *)(ks + (size_t)x * TB), ml * PP);
            float acc[GM];
#pragma unroll
            for (int gq = 0; gq < GM; gq++) acc[gq] = 0.0f;
#pragma unroll
            for (int k = 0; k < PP; k++) {
                float kx = kvq_lds((bx | f.template code_off<B, S::LR>(2 * B * k)) + 32 * k);
                float ky = kvq_lds((by | f.template code_off<B, S::LR>(2 * B * k + B)) + 32 * k);
#pragma unroll
                for (int gq = 0; gq < GM; gq++) acc[gq] = fmaf(kx, qx[gq][k], fmaf(ky, qy[gq][k], acc[gq]));
            }
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
#pragma unroll
                for (int o = 1; o < LPT; o <<= 1) acc[gq] += __shfl_xor_sync(0xffffffffu, acc[gq], o);
                if (t < t1 && ml == 0) sc[gq * CH + (t - t0)] = acc[gq];
            }
#pragma unroll
            for (int k = 0; k < PP; k++) {
#pragma unroll
                for (int gq = 0; gq < GM; gq++) {
                    float xx = qx[gq][k], yy = qy[gq][k];
                    qx[gq][k] = xx * stc[k] + yy * sts[k];
                    qy[gq][k] = yy * stc[k] - xx * sts[k];
                }
            }
        }
    }
    __syncthreads();
    /* ---- key outliers ---- */
    if (L.k_cap && totk) {
        if (totk <= KVQ_ATTN_NOUT)
            kvq_staged_key_outliers<D, B, GM>(L, kvh, n0, n, kofs, prek, kent, (const uint32_t *)ks, ktab, e0, rot, qs, sc, CH);
        else
            kvq_outliers<D, B, GM, false>(g, L, ptab, kvh, t0, n, totk, kofs, prek, (const uint32_t *)ks, vzr, e0, rot, qs,
                                          sc, oc, CH);
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
    if (L.v_cap && totv > KVQ_ATTN_NOUT)   /* staged ones are added to part_o at the end */
        kvq_outliers<D, B, GM, true>(g, L, ptab, kvh, t0, n, totv, vofs, prev, (const uint32_t *)vs, vzr, e0, rot, qs, sc, oc, CH);
    float oa[GM][2 * PP], za[GM];
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        za[gq] = 0.0f;
#pragma unroll
        for (int k = 0; k < 2 * PP; k++) oa[gq][k] = 0.0f;
    }
    const uint32_t vl = vtab + (S::VPAIR ? (lane & 15) * 8 : lane * 4);   /* this lane's table copy */
    for (uint32_t tb = tq0 + warp * TP; tb < t1; tb += NW * TP) {
        const uint32_t t = tb + gl, x = min(t, t1 - 1) - t0, zr = vzr[x];
        kvq_fields<PP, B, WPH> f;
        f.load((const uint32_t *)(vs + (size_t)x * TB), ml * PP);
        float z = __half2float(__ushort_as_half((uint16_t)(zr & 0xFFFF)));
        float r = __half2float(__ushort_as_half((uint16_t)(zr >> 16)));
        float w[GM];
#pragma unroll
        for (int gq = 0; gq < GM; gq++) {
            float pw = t < t1 ? sc[gq * CH + x] : 0.0f;
            w[gq] = pw * r;
            za[gq] = fmaf(pw, z, za[gq]);
        }
#pragma unroll
        for (int k = 0; k < PP; k++) {
            float2 lv;
            if (S::VPAIR) lv = kvq_lds2(vl | f.template code_off<2 * B, 7>(2 * B * k));
            else lv = make_float2(kvq_lds(vl | f.template code_off<B, 7>(2 * B * k)),
                                  kvq_lds(vl | f.template code_off<B, 7>(2 * B * k + B)));
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
                oa[gq][2 * k] = fmaf(w[gq], lv.x, oa[gq][2 * k]);
                oa[gq][2 * k + 1] = fmaf(w[gq], lv.y, oa[gq][2 * k + 1]);
            }
        }
    }
    /* lanes with equal ml hold the same channels: reduce over the warp's tokens */
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
#pragma unroll
        for (int o = LPT; o < 32; o <<= 1) {
            za[gq] += __shfl_xor_sync(0xffffffffu, za[gq], o);
#pragma unroll
            for (int k = 0; k < 2 * PP; k++) oa[gq][k] += __shfl_xor_sync(0xffffffffu, oa[gq][k], o);
        }
    }
    if (lane < LPT) {   /* this warp's sums, for the block's reduction below */
#pragma unroll
        for (int gq = 0; gq < GM; gq++) {
#pragma unroll
            for (int k = 0; k < PP; k++) {
                wo[(warp * GM + gq) * D + ml + 8 * k] = oa[gq][2 * k];
                wo[(warp * GM + gq) * D + ml + 8 * k + HALF] = oa[gq][2 * k + 1];
            }
            if (lane == 0) red[2 * GM + warp * GM + gq] = za[gq];
        }
    }
    __syncthreads();
    for (uint32_t x = tid; x < nq * D; x += blockDim.x) {
        uint32_t gq = x / D, i = x % D;
        float zs = 0.0f, o = oc[x];
        for (int w = 0; w < NW; w++) {
            zs += red[2 * GM + w * GM + gq];
            o += wo[(w * GM + gq) * D + i];
        }
        part_o[(pbase + (size_t)gq * nsplit) * D + i] = o + zs;
    }
    if (L.v_cap && totv && totv <= KVQ_ATTN_NOUT) {
        __syncthreads();   /* part_o written by the block before the reductions into it */
        kvq_staged_value_outliers<D, B, GM>(L, kvh, totv, nq, vent, vxs, (const uint32_t *)vs, vzr, sc, CH,
                                            part_o + pbase * D, (size_t)nsplit * D);
    }
    if (tid < nq) {
        part_ml[(pbase + (size_t)tid * nsplit) * 2] = red[tid];
        part_ml[(pbase + (size_t)tid * nsplit) * 2 + 1] = red[GM + tid];
    }
}

/* klev of every layer (kvq_rt_layer.klev): entry (h, y, v, j) = fmaf(lut_k[v], kr[c], kz[c]) with
 * c = h*D + y*D/2 + j, the dequantizer's arithmetic. */
__global__ static void kvq_klev_fill(kvq_rt_layer L, uint32_t D, uint32_t n, float *out) {
    const uint32_t half = D / 2, NL = L.n_levels;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        uint32_t j = i % half, v = (i / half) % NL, y = (i / (half * NL)) % 2, h = i / (half * NL * 2);
        uint32_t c = h * D + y * half + j;
        out[i] = fmaf(L.lut_k[v], L.kr[c], L.kz[c]);
    }
}

kvq_status kvq_attn_key_levels(kvq_rt *rt, char *why, size_t why_len) {
    const kvq_rt_dims *d = &rt->dims;
    size_t per = (size_t)d->n_kv_heads * d->head_dim * KVQ_RT_MAX_L;
    KVQ_CU(cudaMalloc((void **)&rt->d_klev, d->n_layers * per * sizeof(float)));
    for (uint32_t l = 0; l < d->n_layers; l++) {
        kvq_rt_layer *L = &rt->layers[l];
        uint32_t n = d->n_kv_heads * d->head_dim * L->n_levels;
        L->klev = rt->d_klev + l * per;
        kvq_klev_fill<<<(n + 255) / 256, 256>>>(*L, d->head_dim, n, rt->d_klev + l * per);
        KVQ_CU(cudaGetLastError());
    }
    KVQ_CU(cudaDeviceSynchronize());
    return KVQ_OK;
}

/* Merge the splits of each (slot, query head): out = sum_s e^(m_s-M) o_s / sum_s e^(m_s-M) l_s.
 * Block of G x D threads (G = KVQ_COMBINE_G, rt_attn.cuh): split maxima and sums are block
 * reductions; thread (grp, i) accumulates channel i over the splits s = grp (mod G), 1024 split
 * weights at a time. */
enum { KVQ_COMBINE_TILE = 1024 };
__device__ static float kvq_block_reduce(float v, int is_max, float *red) {
    const uint32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o; o >>= 1) {
        float y = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, y) : v + y;
    }
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = red[0];
    for (uint32_t w = 1; w < nw; w++) v = is_max ? fmaxf(v, red[w]) : v + red[w];
    return v;
}

__global__ void kvq_rt_combine(const float *part_o, const float *part_ml, uint32_t nsplit, uint32_t D,
                               void *out, int out_f16) {
    __shared__ float wsh[KVQ_COMBINE_TILE], red[32], osum[KVQ_COMBINE_G * 128];
    const size_t bh = blockIdx.x;
    const float *ml = part_ml + bh * nsplit * 2, *po = part_o + bh * nsplit * D;
    const uint32_t tid = threadIdx.x, i = tid % D, grp = tid / D, G = blockDim.x / D;
    float M = -INFINITY;
    for (uint32_t s = tid; s < nsplit; s += blockDim.x) M = fmaxf(M, ml[2 * s]);
    M = kvq_block_reduce(M, 1, red);
    float l = 0.0f;
    for (uint32_t s = tid; s < nsplit; s += blockDim.x)
        if (ml[2 * s] > -INFINITY) l += expf(ml[2 * s] - M) * ml[2 * s + 1];
    l = kvq_block_reduce(l, 0, red);
    float o = 0.0f;
    for (uint32_t s0 = 0; s0 < nsplit; s0 += KVQ_COMBINE_TILE) {
        const uint32_t nt = min((uint32_t)KVQ_COMBINE_TILE, nsplit - s0);
        __syncthreads();
        for (uint32_t j = tid; j < nt; j += blockDim.x) {
            float m = ml[2 * (s0 + j)];
            wsh[j] = m > -INFINITY ? expf(m - M) : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (uint32_t j = grp; j < nt; j += G) o = fmaf(wsh[j], po[(size_t)(s0 + j) * D + i], o);
    }
    osum[grp * D + i] = o;
    __syncthreads();
    if (grp == 0) {
        for (uint32_t g2 = 1; g2 < G; g2++) o += osum[g2 * D + i];
        o = l > 0.0f ? o / l : 0.0f;
        if (out_f16) ((__half *)out)[bh * D + i] = __float2half_rn(o);
        else ((float *)out)[bh * D + i] = o;
    }
}

typedef void (*kvq_attn_fn)(kvq_rt_layer, kvq_rt_geom, kvq_rt_rope, const float2 *, const uint16_t *, int, float, uint32_t,
                            uint32_t, float *, float *, uint32_t);

/* The kernel for (head_dim, bits, query heads per block) and its shared memory for chunk CH. */
template <int D, int B, int GM>
static kvq_attn_fn pick(uint32_t CH, size_t *smem) { *smem = kvq_attn_smem<D, B, GM>(CH).total; return kvq_attn_q<D, B, GM>; }
template <int D, int B>
static kvq_attn_fn pick_gm(int gm, uint32_t CH, size_t *smem) {
    return gm == 1 ? pick<D, B, 1>(CH, smem) : gm == 2 ? pick<D, B, 2>(CH, smem) : pick<D, B, 4>(CH, smem);
}
template <int D>
static kvq_attn_fn pick_b(int b, int gm, uint32_t CH, size_t *smem) {
    return b == 2 ? pick_gm<D, 2>(gm, CH, smem) : b == 3 ? pick_gm<D, 3>(gm, CH, smem) : pick_gm<D, 4>(gm, CH, smem);
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
    kvq_attn_plan pl = kvq_attn_make_plan(maxlen, c->o.batch * d->n_kv_heads * nqg, KVQ_ATTN_CHUNK);
    kvq_status st = kvq_attn_work(&c->d_work, &c->work_bytes, c->o.batch, d->n_heads, D, pl.nsplit, why, why_len);
    if (st != KVQ_OK) return st;
    float *part_o = c->d_work, *part_ml = part_o + (size_t)c->o.batch * d->n_heads * pl.nsplit * D;
    kvq_rt_rope rope;
    memcpy(rope.inv_freq, c->rt->inv_freq, sizeof rope.inv_freq);
    size_t smem = 0;
    kvq_attn_fn fn = D == 64 ? pick_b<64>((int)L->bits, (int)gm, pl.chunk, &smem)
                             : pick_b<128>((int)L->bits, (int)gm, pl.chunk, &smem);
    KVQ_CU(cudaFuncSetAttribute((const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid(pl.nsplit, d->n_kv_heads * nqg, c->o.batch);
    fn<<<grid, NW * 32, smem>>>(*L, kvq_rt_geom_of(c, layer), rope, c->rt->d_rot, (const uint16_t *)d_q, q_dt == KVQ_RT_BF16, scale,
                                pl.chunk, nqg, part_o, part_ml, pl.nsplit);
    KVQ_CU(cudaGetLastError());
    kvq_rt_combine<<<c->o.batch * d->n_heads, KVQ_COMBINE_G * D>>>(part_o, part_ml, pl.nsplit, D, d_out,
                                                                 out_dt == KVQ_RT_F16);
    KVQ_CU(cudaGetLastError());
    return KVQ_OK;
}
