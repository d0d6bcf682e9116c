/* rt_attn.cuh — shared by the quantized and fp16 decode-attention kernels: the split plan
 * (tokens per block), the partials buffer and the combine kernel. Private to the runtime. */
#ifndef KVQ_RT_ATTN_CUH
#define KVQ_RT_ATTN_CUH

#include "rt_internal.cuh"

typedef struct kvq_attn_plan { uint32_t chunk, nsplit; } kvq_attn_plan;

/* Tokens per block: enough blocks to fill the GPU several times over (units = blocks that
 * share a split index), a multiple of 64 within [64, max_chunk]. */
static inline kvq_attn_plan kvq_attn_make_plan(uint32_t maxlen, uint32_t units, uint32_t max_chunk) {
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    uint64_t want = (uint64_t)sms * 8;
    uint64_t chunk = ((uint64_t)maxlen * units + want - 1) / want;
    chunk = (chunk + 63) / 64 * 64;
    if (chunk < 64) chunk = 64;
    if (chunk > max_chunk) chunk = max_chunk;
    kvq_attn_plan p;
    p.chunk = (uint32_t)chunk;
    p.nsplit = maxlen ? (uint32_t)((maxlen + chunk - 1) / chunk) : 1;
    return p;
}

/* Grow the partials buffer: (batch, n_heads, nsplit) x (head_dim + 2) floats. */
static inline kvq_status kvq_attn_work(float **buf, size_t *cap, uint32_t batch, uint32_t n_heads, uint32_t D,
                                       uint32_t nsplit, char *why, size_t why_len) {
    size_t need = (size_t)batch * n_heads * nsplit * (D + 2) * sizeof(float);
    if (need <= *cap) return KVQ_OK;
    if (*buf) cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    KVQ_CU(cudaMalloc((void **)buf, need));
    *cap = need;
    return KVQ_OK;
}

/* Softmax of a chunk's scores, in place, for each of the GM query heads of a block: sc[gq*ch + x]
 * (x < n) becomes exp(score - max); red[gq] receives the max, red[GM + gq] the sum (red also needs
 * NWARPS*GM floats of scratch after those). Block-wide: every thread of the NWARPS warps calls it. */
template <int GM, int NWARPS>
__device__ __forceinline__ void kvq_chunk_softmax(float *sc, float *red, uint32_t n, uint32_t ch) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        float m = -INFINITY;
        for (uint32_t x = tid; x < n; x += blockDim.x) m = fmaxf(m, sc[gq * ch + x]);
        for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        if (lane == 0) red[2 * GM + warp * GM + gq] = m;
    }
    __syncthreads();
    if (tid < GM) {
        float m = -INFINITY;
        for (int w = 0; w < NWARPS; w++) m = fmaxf(m, red[2 * GM + w * GM + tid]);
        red[tid] = m;
    }
    __syncthreads();
#pragma unroll
    for (int gq = 0; gq < GM; gq++) {
        float m = red[gq], l = 0.0f;
        for (uint32_t x = tid; x < n; x += blockDim.x) {
            float p = expf(sc[gq * ch + x] - m);
            sc[gq * ch + x] = p;
            l += p;
        }
        for (int o = 16; o; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
        if (lane == 0) red[2 * GM + warp * GM + gq] = l;
    }
    __syncthreads();
    if (tid < GM) {
        float l = 0.0f;
        for (int w = 0; w < NWARPS; w++) l += red[2 * GM + w * GM + tid];
        red[GM + tid] = l;
    }
    __syncthreads();
}

/* Merge the splits (rt_attention.cu); launch one block of KVQ_COMBINE_G * D threads per (slot, head). */
enum { KVQ_COMBINE_G = 4 };
__global__ void kvq_rt_combine(const float *part_o, const float *part_ml, uint32_t nsplit, uint32_t D,
                               void *out, int out_f16);

#endif
