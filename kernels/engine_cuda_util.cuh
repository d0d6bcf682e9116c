// engine_cuda_util.cuh — device helpers shared by the engine's .cu files: block-wide sum and max
// (warp shuffles, then one value per warp through shared memory; every thread gets the result) and
// the grid size of grid-stride loops. Blocks must be a multiple of 32 threads, at most 1024.
#ifndef KVQ_ENGINE_CUDA_UTIL_CUH
#define KVQ_ENGINE_CUDA_UTIL_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

template <typename X, typename Op>
__device__ __forceinline__ X kvq_cu_block_reduce(X v, Op op) {
    __shared__ X part[32];
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    __syncthreads();   // part[] may still be read by a previous reduction
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = part[0];
    for (int w = 1; w < n_warps; w++) v = op(v, part[w]);
    return v;
}

struct kvq_cu_add_op { template <typename X> __device__ X operator()(X a, X b) const { return a + b; } };
struct kvq_cu_max_op { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };

__device__ __forceinline__ double kvq_cu_block_sum(double v) { return kvq_cu_block_reduce(v, kvq_cu_add_op()); }
__device__ __forceinline__ float kvq_cu_block_max(float v) { return kvq_cu_block_reduce(v, kvq_cu_max_op()); }

static inline unsigned kvq_cu_grid(size_t n) {
    size_t g = (n + 255) / 256;
    return (unsigned)(g < 65535 * 16 ? (g ? g : 1) : 65535 * 16);
}

#endif
