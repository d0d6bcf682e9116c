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

enum { NW = 4, KVQ_ATTN_CHUNK = 256 };   /* warps per block; most tokens per block (staged in shared memory) */
static_assert((int)KVQ_ATTN_CHUNK <= (int)KVQ_RT_ROT_N, "chunk offsets index kvq_rt.d_rot");

/* Shapes of one instantiation: LPT = 4 GM lanes per token, each owning PP = D/2/LPT RoPE pairs
 * (channels p and p + D/2), TP tokens per warp step; key levels per channel padded to SL entries. */
template <int D, int B, int GM>
struct kvq_attn_shape {
    static constexpr int HALF = D / 2, LPT = GM == 1 ? 8 : 4 * GM, TP = 32 / LPT, PP = HALF / LPT;
    static constexpr int WPH = D * B / 32, TB = WPH * 4, NL = 1 << B, NE = 1 << (2 * B);
    static constexpr int SL = NL > 8 ? NL : 8, KT = (HALF + HALF / PP) * SL;   /* floats per key table */
    static constexpr int PIECE = TB % 16 == 0 ? 16 : 8;                         /* cp.async bytes */
};

/* Shared memory of a block (the layout at the top of kvq_attn_q): tables, query, scores and
 * outlier bookkeeping in floats, then from a 16-byte boundary the staged codes and value scales. */
template <int D, int B, int GM>
__host__ __device__ static inline size_t kvq_attn_stage_offset(uint32_t CH) {
    using S = kvq_attn_shape<D, B, GM>;
    size_t f = 2 * S::KT + (size_t)S::NE * 32 + 2 * GM * D + 3 * S::HALF + 2 * GM + NW * GM + (size_t)GM * CH + 3 * (size_t)CH + 32;
    return (f + 3) / 4 * 4 * sizeof(float);
}
template <int D, int B, int GM>
static size_t kvq_attn_smem(uint32_t CH) {
    return kvq_attn_stage_offset<D, B, GM>(CH) + (size_t)CH * (2 * kvq_attn_shape<D, B, GM>::TB + 4);
}

/* Copy `bytes` (16 or 8) from global to shared memory asynchronously (cp.async, Ampere and later). */
template <int BYTES>
__device__ __forceinline__ void kvq_cp_async(void *dst, const void *src) {
    uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
    if (BYTES == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src));
    else asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(d), "l"(src), "n"(BYTES));
}

template <int D, int B, int GM>
__global__ void __launch_bounds__(NW * 32, GM == 4 ? 3 : 4) kvq_attn_q(kvq_rt_layer L, kvq_rt_geom g, kvq_rt_rope rope,
                                                                      const float2 *rot, const uint16_t *q, int q_bf16, float scale, uint32_t CH,
                                                                      uint32_t nqg, float *part_o, float *part_ml, uint32_t nsplit) {
    using S = kvq_attn_shape<D, B, GM>;
    constexpr int HALF = S::HALF, LPT = S::LPT, TP = S::TP, PP = S::PP, WPH = S::WPH, TB = S::TB;
    constexpr int NL = S::NL, NE = S::NE, SL = S::SL, KT = S::KT, PIECE = S::PIECE;
    extern __shared__ __align__(16) float sm[];
    float *lkx = sm;                   /* (KT) key levels of channel p: [(p + p/PP) SL + v] */
    float *lky = lkx + KT;             /* (KT) the same for channel p + HALF */
    float2 *lutv = (float2 *)(lky + KT);  /* (NE, 16) value level pairs, one copy per half-warp lane */
    float *qs = (float *)(lutv + NE * 16);/* (GM, D) scaled query */
    float *oc = qs + GM * D;           /* (GM, D) output corrections (sinks, outliers) and the reduction */
    float *invf = oc + GM * D;         /* (HALF) RoPE inverse frequencies */
    float2 *e0 = (float2 *)(invf + HALF);  /* (HALF) rotation of position t0: cos, sin */
    float *red = (float *)(e0 + HALF); /* (GM * 2 + NW * GM) */
    float *sc = red + 2 * GM + NW * GM;/* (GM, CH) scores, then weights */
    uint32_t *kofs = (uint32_t *)(sc + GM * CH);  /* (CH) key outliers: start | count << 16 */
    uint32_t *vofs = kofs + CH;                   /* (CH) value outliers */
    uint32_t *pre = vofs + CH;                    /* (CH) prefix of counts */
    uint32_t *wsc = pre + CH;                     /* (32) scan scratch */
    uint8_t *ks = (uint8_t *)sm + kvq_attn_stage_offset<D, B, GM>(CH);  /* (CH, TB) the chunk's key codes */
    uint8_t *vs = ks + (size_t)CH * TB;           /* (CH, TB) value codes */
    uint32_t *vzr = (uint32_t *)(vs + (size_t)CH * TB);  /* (CH) value scales: fp16 z | r << 16 */
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
    const uint32_t tq0 = max(t0, g.n_sink), n = t1 - t0, nd = t1 > tq0 ? t1 - tq0 : 0;
    const uint32_t vg = L.v_groups == 1 ? 0 : kvh;
    const int32_t *ptab = g.page_table + (size_t)b * g.max_pages;
    /* ---- stage the chunk's codes and value scales (quantized tokens x = t - t0 >= tq0 - t0) ---- */
    {
        constexpr int PPTOK = TB / PIECE;
        for (uint32_t i = tid; i < nd * 2 * PPTOK; i += blockDim.x) {
            uint32_t x = i / (2 * PPTOK), r = i % (2 * PPTOK), isv = r / PPTOK, pc = r % PPTOK, slot;
            const uint8_t *page;
            const uint32_t *w = kvq_words(g, L, ptab, isv ? L.off_vcodes : L.off_kcodes, kvh, tq0 + x, WPH, &slot, &page);
            kvq_cp_async<PIECE>((isv ? vs : ks) + (size_t)(tq0 - t0 + x) * TB + pc * PIECE, (const uint8_t *)w + pc * PIECE);
        }
        for (uint32_t x = tid; x < nd; x += blockDim.x) {
            uint32_t slot;
            const uint8_t *page;
            kvq_words(g, L, ptab, 0, 0, tq0 + x, 0, &slot, &page);
            kvq_cp_async<4>(vzr + (tq0 - t0 + x), (const uint32_t *)(page + L.off_vscale) + (size_t)slot * L.v_groups + vg);
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
    for (uint32_t x = tid; x < 2 * HALF * SL; x += blockDim.x) {   /* per-channel key levels */
        uint32_t y = x / (HALF * SL), p = (x / SL) % HALF, v = x % SL, c = kvh * D + p + y * HALF;
        (y ? lky : lkx)[(p + p / PP) * SL + v] = v < NL ? fmaf(L.lut_k[v], L.kr[c], L.kz[c]) : 0.0f;
    }
    for (uint32_t x = tid; x < NE * 16; x += blockDim.x) {
        uint32_t e = x >> 4;
        lutv[x] = make_float2(L.lut_v[e & (NL - 1)], L.lut_v[e >> B]);
    }
    /* outlier offsets of the chunk's tokens, for the flat lists below */
    for (uint32_t t = tq0 + tid; t < t1 && (L.k_cap | L.v_cap); t += blockDim.x) {
        const uint8_t *pg;
        uint32_t sl, ko0 = 0, ko1 = 0, vo0 = 0, vo1 = 0;
        kvq_words(g, L, ptab, 0, 0, t, 0, &sl, &pg);
        const uint16_t *ko = (const uint16_t *)(pg + L.off_koff) + (size_t)sl * (g.n_kv_heads + 1) + kvh;
        const uint16_t *vo = (const uint16_t *)(pg + L.off_voff) + (size_t)sl * (g.n_kv_heads + 1) + kvh;
        if (L.k_cap) { ko0 = ko[0]; ko1 = ko[1]; }
        if (L.v_cap) { vo0 = vo[0]; vo1 = vo[1]; }
        kofs[t - t0] = ko0 | (ko1 - ko0) << 16;
        vofs[t - t0] = vo0 | (vo1 - vo0) << 16;
    }
    __syncthreads();

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

    /* ---- pass 1: key scores. Warp w walks tokens tq0 + w TP + g, stepping NW TP; lane (g, m) holds
     * its PP pairs of the query rotated by -position, stepped with a fixed rotation. ---- */
    const uint32_t gl = lane / LPT, ml = lane % LPT;
    if (nd) {
        float qx[GM][PP], qy[GM][PP], stc[PP], sts[PP];
        const uint32_t x0 = tq0 - t0 + warp * TP + gl;   /* the lane's first token, < KVQ_RT_ROT_N */
#pragma unroll
        for (int k = 0; k < PP; k++) {
            uint32_t p = ml * PP + k;
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
        const uint32_t toff = (ml * PP + ml) * SL * 4;   /* this lane's rows of lkx/lky, bytes; SL*4-aligned */
        for (uint32_t tb = tq0 + warp * TP; tb < t1; tb += NW * TP) {
            const uint32_t t = tb + gl, x = min(t, t1 - 1) - t0;
            kvq_fields<PP, B, WPH> f;
            f.load((const uint32_t *)(ks + (size_t)x * TB), ml * PP);
            float acc[GM];
#pragma unroll
            for (int gq = 0; gq < GM; gq++) acc[gq] = 0.0f;
#pragma unroll
            for (int k = 0; k < PP; k++) {
                const char *tab = (const char *)sm + k * SL * 4;
                float kx = *(const float *)(tab + (toff | f.template code_off<B, 2>(2 * B * k)));
                float ky = *(const float *)(tab + KT * 4 + (toff | f.template code_off<B, 2>(2 * B * k + B)));
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
    /* ---- key outliers: flat list over the chunk ---- */
    if (L.k_cap) {
        uint32_t total = kvq_chunk_scan(kofs, pre, tq0 - t0, n, (float *)wsc);
        kvq_outliers<D, B, GM, false>(g, L, ptab, kvh, t0, n, total, kofs, pre, (const uint32_t *)ks, vzr, e0, rot, qs,
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
    if (L.v_cap) {
        uint32_t total = kvq_chunk_scan(vofs, pre, tq0 - t0, n, (float *)wsc);
        kvq_outliers<D, B, GM, true>(g, L, ptab, kvh, t0, n, total, vofs, pre, (const uint32_t *)vs, vzr, e0, rot, qs,
                                      sc, oc, CH);
    }
    float oa[GM][2 * PP], za[GM];
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        za[gq] = 0.0f;
#pragma unroll
        for (int k = 0; k < 2 * PP; k++) oa[gq][k] = 0.0f;
    }
    const uint32_t voff = (lane & 15) * 8;   /* this lane's copy in lutv (bytes 3..6; entries from bit 7) */
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
            float2 lv = *(const float2 *)((const char *)lutv + (voff | f.template code_off<2 * B, 7>(2 * B * k)));
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
    if (lane < LPT) {
#pragma unroll
        for (int gq = 0; gq < GM; gq++) {
#pragma unroll
            for (int k = 0; k < PP; k++) {
                atomicAdd(&oc[gq * D + ml * PP + k], oa[gq][2 * k]);
                atomicAdd(&oc[gq * D + ml * PP + k + HALF], oa[gq][2 * k + 1]);
            }
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
static kvq_attn_fn pick(uint32_t CH, size_t *smem) { *smem = kvq_attn_smem<D, B, GM>(CH); return kvq_attn_q<D, B, GM>; }
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
