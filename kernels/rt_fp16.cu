/* rt_fp16.cu — the fp16 baseline: decode attention over a contiguous fp16 cache of post-RoPE
 * keys and values, with the same split-K design as the packed kernel (rt_attention.cu): blocks
 * over (split, KV head x query group, slot), scores to shared memory, then weighted values,
 * then kvq_rt_combine. D/8 lanes per token, 16-byte loads. Also the fp16 "append" (a copy). */
#include <math.h>
#include "rt_internal.cuh"
#include "rt_attn.cuh"

enum { NW16 = 4 };

template <int D, int GM>
__global__ void __launch_bounds__(NW16 * 32) kvq_attn_f16(const uint16_t *kc, const uint16_t *vc, uint32_t max_tokens,
                                                          const uint32_t *lens, uint32_t n_heads, uint32_t n_kv_heads,
                                                          const uint16_t *q, float scale, uint32_t CH, uint32_t nqg,
                                                          float *part_o, float *part_ml, uint32_t nsplit) {
    constexpr int LPT = D / 8, TPW = 32 / LPT, NGRP = NW16 * TPW;
    extern __shared__ float sm[];
    float *oc = sm;                    /* (GM, D) */
    float *red = oc + GM * D;          /* (2 GM + NW16 GM) */
    float *sc = red + 2 * GM + NW16 * GM;  /* (GM, CH) */
    const uint32_t b = blockIdx.z, kvh = blockIdx.y / nqg, qg = blockIdx.y % nqg, split = blockIdx.x;
    const uint32_t G = n_heads / n_kv_heads, len = lens[b], t0 = split * CH, t1 = min(len, t0 + CH);
    const uint32_t hq0 = kvh * G + qg * GM, nq = min((uint32_t)GM, G - qg * GM);
    const uint32_t tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, s = lane % LPT;
    const uint32_t kv_dim = n_kv_heads * D;
    size_t pbase = ((size_t)b * n_heads + hq0) * nsplit + split;
    if (t0 >= t1) {
        for (uint32_t gq = 0; gq < nq; gq++) {
            if (tid < 2) part_ml[(pbase + (size_t)gq * nsplit) * 2 + tid] = tid ? 0.0f : -INFINITY;
            for (uint32_t i = tid; i < D; i += blockDim.x) part_o[(pbase + (size_t)gq * nsplit) * D + i] = 0.0f;
        }
        return;
    }
    for (uint32_t x = tid; x < GM * D; x += blockDim.x) oc[x] = 0.0f;
    float qr[GM][8];
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        uint4 u = make_uint4(0, 0, 0, 0);
        if ((uint32_t)gq < nq) u = *(const uint4 *)(q + ((size_t)b * n_heads + hq0 + gq) * D + s * 8);
        const __half2 *h2 = (const __half2 *)&u;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 f = __half22float2(h2[k]);
            qr[gq][2 * k] = f.x * scale;
            qr[gq][2 * k + 1] = f.y * scale;
        }
    }
    const uint16_t *kb = kc + (size_t)b * max_tokens * kv_dim + kvh * D + s * 8;
    const uint16_t *vb = vc + (size_t)b * max_tokens * kv_dim + kvh * D + s * 8;
    for (uint32_t tb = t0 + warp * TPW; tb < t1; tb += NGRP) {
        uint32_t t = tb + lane / LPT;
        bool ok = t < t1;
        uint4 u = *(const uint4 *)(kb + (size_t)(ok ? t : tb) * kv_dim);
        const __half2 *h2 = (const __half2 *)&u;
        float acc[GM];
#pragma unroll
        for (int gq = 0; gq < GM; gq++) acc[gq] = 0.0f;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 f = __half22float2(h2[k]);
#pragma unroll
            for (int gq = 0; gq < GM; gq++) acc[gq] = fmaf(f.x, qr[gq][2 * k], fmaf(f.y, qr[gq][2 * k + 1], acc[gq]));
        }
#pragma unroll
        for (int gq = 0; gq < GM; gq++) {
#pragma unroll
            for (int o = 1; o < LPT; o <<= 1) acc[gq] += __shfl_xor_sync(0xffffffffu, acc[gq], o);
            if (ok && s == 0) sc[gq * CH + (t - t0)] = acc[gq];
        }
    }
    __syncthreads();
    const uint32_t n = t1 - t0;
    kvq_chunk_softmax<GM, NW16>(sc, red, n, CH);
    float oa[GM][8];
#pragma unroll
    for (int gq = 0; gq < GM; gq++)
#pragma unroll
        for (int k = 0; k < 8; k++) oa[gq][k] = 0.0f;
    for (uint32_t tb = t0 + warp * TPW; tb < t1; tb += NGRP) {
        uint32_t t = tb + lane / LPT;
        bool ok = t < t1;
        uint32_t tt = ok ? t : tb;
        uint4 u = *(const uint4 *)(vb + (size_t)tt * kv_dim);
        const __half2 *h2 = (const __half2 *)&u;
        float p[GM];
#pragma unroll
        for (int gq = 0; gq < GM; gq++) p[gq] = ok ? sc[gq * CH + (tt - t0)] : 0.0f;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 f = __half22float2(h2[k]);
#pragma unroll
            for (int gq = 0; gq < GM; gq++) {
                oa[gq][2 * k] = fmaf(p[gq], f.x, oa[gq][2 * k]);
                oa[gq][2 * k + 1] = fmaf(p[gq], f.y, oa[gq][2 * k + 1]);
            }
        }
    }
#pragma unroll
    for (int gq = 0; gq < GM; gq++)
#pragma unroll
        for (int o = LPT; o < 32; o <<= 1)
#pragma unroll
            for (int k = 0; k < 8; k++) oa[gq][k] += __shfl_xor_sync(0xffffffffu, oa[gq][k], o);
    if (lane < LPT)
#pragma unroll
        for (int gq = 0; gq < GM; gq++)
#pragma unroll
            for (int k = 0; k < 8; k++) atomicAdd(&oc[gq * D + s * 8 + k], oa[gq][k]);
    __syncthreads();
    for (uint32_t x = tid; x < nq * D; x += blockDim.x) {
        uint32_t gq = x / D, i = x % D;
        part_o[(pbase + (size_t)gq * nsplit) * D + i] = oc[x];
    }
    if (tid < nq) {
        part_ml[(pbase + (size_t)tid * nsplit) * 2] = red[tid];
        part_ml[(pbase + (size_t)tid * nsplit) * 2 + 1] = red[GM + tid];
    }
}

size_t kvq_rt_fp16_work_bytes(uint32_t batch, uint32_t n_heads, uint32_t head_dim, uint32_t max_tokens) {
    uint32_t nsplit = (max_tokens + 63) / 64;   /* the smallest chunk the plan picks */
    return (size_t)batch * n_heads * nsplit * (head_dim + 2) * sizeof(float);
}

typedef void (*kvq_f16_fn)(const uint16_t *, const uint16_t *, uint32_t, const uint32_t *, uint32_t, uint32_t,
                           const uint16_t *, float, uint32_t, uint32_t, float *, float *, uint32_t);

kvq_status kvq_rt_fp16_attention(const uint16_t *d_k, const uint16_t *d_v, uint32_t batch, uint32_t max_tokens,
                                 const uint32_t *lens, const uint32_t *d_lens, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                                 const uint16_t *d_q, float *d_out, float scale, void *d_work) {
    char *why = NULL;
    size_t why_len = 0;
    if (!d_k || !d_v || !lens || !d_lens || !d_q || !d_out || !d_work || !batch || !n_kv_heads || n_heads % n_kv_heads ||
        (head_dim != 64 && head_dim != 128))
        return KVQ_ERR_ARG;
    uint32_t G = n_heads / n_kv_heads, gm = G == 1 ? 1 : G == 2 ? 2 : 4, nqg = (G + gm - 1) / gm, maxlen = 0;
    for (uint32_t i = 0; i < batch; i++) {
        if (lens[i] > max_tokens) return KVQ_ERR_ARG;
        maxlen = lens[i] > maxlen ? lens[i] : maxlen;
    }
    if (!scale) scale = 1.0f / sqrtf((float)head_dim);
    kvq_attn_plan pl = kvq_attn_make_plan(maxlen, batch * n_kv_heads * nqg, 1024);
    float *part_o = (float *)d_work, *part_ml = part_o + (size_t)batch * n_heads * pl.nsplit * head_dim;
    kvq_f16_fn fn;
    if (head_dim == 64) fn = gm == 1 ? kvq_attn_f16<64, 1> : gm == 2 ? kvq_attn_f16<64, 2> : kvq_attn_f16<64, 4>;
    else fn = gm == 1 ? kvq_attn_f16<128, 1> : gm == 2 ? kvq_attn_f16<128, 2> : kvq_attn_f16<128, 4>;
    size_t smem = (size_t)(gm * head_dim + 2 * gm + NW16 * gm + gm * pl.chunk) * sizeof(float);
    dim3 grid(pl.nsplit, n_kv_heads * nqg, batch);
    fn<<<grid, NW16 * 32, smem>>>(d_k, d_v, max_tokens, d_lens, n_heads, n_kv_heads, d_q, scale, pl.chunk, nqg,
                                  part_o, part_ml, pl.nsplit);
    KVQ_CU(cudaGetLastError());
    kvq_rt_combine<<<batch * n_heads, KVQ_COMBINE_G * head_dim>>>(part_o, part_ml, pl.nsplit, head_dim, d_out, 0);
    KVQ_CU(cudaGetLastError());
    return KVQ_OK;
}

kvq_status kvq_rt_fp16_append(uint16_t *d_cache, uint32_t max_tokens, uint32_t kv_dim, uint32_t seq, uint32_t pos0,
                              uint32_t n, const uint16_t *d_src) {
    char *why = NULL;
    size_t why_len = 0;
    if (!d_cache || !d_src || (uint64_t)pos0 + n > max_tokens) return KVQ_ERR_ARG;
    KVQ_CU(cudaMemcpyAsync(d_cache + ((size_t)seq * max_tokens + pos0) * kv_dim, d_src, (size_t)n * kv_dim * 2,
                           cudaMemcpyDeviceToDevice));
    return KVQ_OK;
}
