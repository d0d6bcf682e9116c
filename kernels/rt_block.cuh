/* rt_block.cuh — block-wide building blocks of the append kernels: exclusive scan, reductions,
 * and an exact top-m selection (radix select on order-preserving keys, ties to the lower
 * channel) over elements held E per thread in channel order (thread t owns channels
 * t*E .. t*E+E-1). Private to the runtime. */
#ifndef KVQ_RT_BLOCK_CUH
#define KVQ_RT_BLOCK_CUH

#include <stdint.h>

enum { KVQ_RT_EMAX = 16 };

typedef struct kvq_rt_bsmem {
    uint32_t hist[256];
    uint32_t wsum[32];
    uint32_t bc[4];
    float fv[32];
} kvq_rt_bsmem;

/* Order-preserving key of a float: larger float, larger key; -0 and +0 get the same key. */
__device__ static inline uint32_t kvq_fkey(float f) {
    uint32_t u = __float_as_uint(f);
    if (u == 0x80000000u) u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Exclusive prefix sum of x over the block in thread order; *total gets the sum. */
__device__ static inline uint32_t kvq_block_scan(uint32_t x, uint32_t *total, kvq_rt_bsmem *S) {
    uint32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    uint32_t v = x;
    for (int o = 1; o < 32; o <<= 1) {
        uint32_t y = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= (uint32_t)o) v += y;
    }
    __syncthreads();
    if (lane == 31) S->wsum[warp] = v;
    __syncthreads();
    if (warp == 0) {
        uint32_t w = lane < nw ? S->wsum[lane] : 0, u = w;
        for (int o = 1; o < 32; o <<= 1) {
            uint32_t y = __shfl_up_sync(0xffffffffu, u, o);
            if (lane >= (uint32_t)o) u += y;
        }
        S->wsum[lane] = u - w;               /* exclusive per warp */
        if (lane == 31) S->bc[3] = u;        /* block total */
    }
    __syncthreads();
    uint32_t r = S->wsum[warp] + v - x;
    *total = S->bc[3];
    __syncthreads();
    return r;
}

__device__ static inline uint32_t kvq_block_sum(uint32_t x, kvq_rt_bsmem *S) {
    uint32_t t;
    kvq_block_scan(x, &t, S);
    return t;
}

/* op 0: max, 1: min of floats over the block (threads pass -inf/+inf when they have none). */
__device__ static inline float kvq_block_minmax(float v, int op, kvq_rt_bsmem *S) {
    uint32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o; o >>= 1) {
        float y = __shfl_xor_sync(0xffffffffu, v, o);
        v = op ? fminf(v, y) : fmaxf(v, y);
    }
    __syncthreads();
    if (lane == 0) S->fv[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nw ? S->fv[lane] : (op ? INFINITY : -INFINITY);
        for (int o = 16; o; o >>= 1) {
            float y = __shfl_xor_sync(0xffffffffu, w, o);
            w = op ? fminf(w, y) : fmaxf(w, y);
        }
        if (lane == 0) S->fv[0] = w;
    }
    __syncthreads();
    float r = S->fv[0];
    __syncthreads();
    return r;
}

/* Among this block's elements whose bit is set in `valid` (bit e = element e of the thread),
 * select the `need` with the largest key, ties to the lower channel. Requires need <= number
 * of valid elements. Returns this thread's selection mask. `need` is uniform over the block;
 * every thread of the block calls it (blockDim a multiple of 32). */
__device__ static inline uint32_t kvq_block_select(const uint32_t (&key)[KVQ_RT_EMAX], uint32_t valid,
                                                   uint32_t need, kvq_rt_bsmem *S) {
    uint32_t sel = 0, prefix = 0, pmask = 0;
    uint32_t lane = threadIdx.x & 31;
    for (int shift = 24; shift >= 0 && need > 0; shift -= 8) {
        for (uint32_t i = threadIdx.x; i < 256; i += blockDim.x) S->hist[i] = 0;
        __syncthreads();
        /* warp-aggregated: lanes with the same bin add once (most elements share few bins) */
#pragma unroll
        for (int e = 0; e < KVQ_RT_EMAX; e++) {
            bool v = ((valid >> e) & 1) && (key[e] & pmask) == prefix;
            uint32_t bin = v ? (key[e] >> shift) & 255 : 256u;
            uint32_t same = __match_any_sync(0xffffffffu, bin);
            if (v && lane == (uint32_t)(__ffs(same) - 1)) atomicAdd(&S->hist[bin], (uint32_t)__popc(same));
        }
        __syncthreads();
        if (threadIdx.x < 32) {
            uint32_t cnt[8], sum = 0;
#pragma unroll
            for (int j = 0; j < 8; j++) { cnt[j] = S->hist[255 - (lane * 8 + j)]; sum += cnt[j]; }
            uint32_t inc = sum;
            for (int o = 1; o < 32; o <<= 1) {
                uint32_t y = __shfl_up_sync(0xffffffffu, inc, o);
                if (lane >= (uint32_t)o) inc += y;
            }
            uint32_t before = inc - sum;
            uint32_t hit = __ballot_sync(0xffffffffu, inc >= need);
            if (lane == (uint32_t)(__ffs(hit) - 1)) {
                uint32_t cum = before;
                for (int j = 0; j < 8; j++) {
                    if (cum + cnt[j] >= need) { S->bc[0] = 255 - (lane * 8 + j); S->bc[1] = cum; S->bc[2] = cnt[j]; break; }
                    cum += cnt[j];
                }
            }
        }
        __syncthreads();
        uint32_t bin = S->bc[0], above = S->bc[1], cnt = S->bc[2];
        __syncthreads();
        need -= above;
        int all = cnt == need;
#pragma unroll
        for (int e = 0; e < KVQ_RT_EMAX; e++) {
            if (!((valid >> e) & 1) || (key[e] & pmask) != prefix) continue;
            uint32_t d = (key[e] >> shift) & 255;
            if (d > bin || (all && d == bin)) sel |= 1u << e;
        }
        if (all) need = 0;
        prefix |= bin << shift;
        pmask |= 255u << shift;
    }
    if (need > 0) {                           /* exact ties: lowest channels first */
        uint32_t mine = 0, tot;
#pragma unroll
        for (int e = 0; e < KVQ_RT_EMAX; e++) if (((valid >> e) & 1) && key[e] == prefix) mine++;
        uint32_t rank = kvq_block_scan(mine, &tot, S);
#pragma unroll
        for (int e = 0; e < KVQ_RT_EMAX; e++)
            if (((valid >> e) & 1) && key[e] == prefix) { if (rank < need) sel |= 1u << e; rank++; }
    }
    return sel;
}

#endif
