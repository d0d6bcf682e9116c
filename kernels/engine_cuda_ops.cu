// engine_cuda_ops.cu — the element-wise and row kernels of engine_cuda_ops.h: embedding, type
// conversion, bias, RMSNorm, RoPE, SwiGLU, residual and cross-entropy, forward and backward, with
// the CPU ops' semantics (calib/ops_impl.h). Row reductions use one 256-thread block per row and
// accumulate in double. Attention is engine_cuda_attn.cu's. Not an engine.
#include "engine_cuda_ops.h"
#include "engine_cuda_util.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_w(const void *p, int type, size_t i) {
    if (type == KVQ_CU_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    if (type == KVQ_CU_F16) return __half2float(static_cast<const __half *>(p)[i]);
    return static_cast<const float *>(p)[i];
}

__global__ void embed_k(float *out, const int32_t *tok, const void *table, int type, int N, int C) {
    size_t n = blockIdx.x;
    const size_t row = (size_t)tok[n] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) out[n * C + c] = load_w(table, type, row + c);
}

__global__ void to_f32_k(float *dst, const void *src, int type, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = load_w(src, type, i);
}

__global__ void from_f32_k(void *dst, int type, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (type == KVQ_CU_BF16) static_cast<__nv_bfloat16 *>(dst)[i] = __float2bfloat16_rn(src[i]);
        else if (type == KVQ_CU_F16) static_cast<__half *>(dst)[i] = __float2half_rn(src[i]);
        else static_cast<float *>(dst)[i] = src[i];
    }
}

__global__ void add_bias_k(float *out, const float *bias, int OC, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] += bias[i % OC];
}

__global__ void square_k(float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = x[i] * x[i];
}

__global__ void rmsnorm_fwd_k(float *out, float *rstd, const float *inp, const float *w, float eps, int C) {
    const float *x = inp + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    double ss = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) ss += (double)x[i] * x[i];
    ss = kvq_cu_block_sum(ss);
    float r = (float)(1.0 / sqrt(ss / C + (double)eps));
    for (int i = threadIdx.x; i < C; i += blockDim.x) y[i] = w[i] * (x[i] * r);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

// dx_j += r w_j g_j - (r^3 / C) x_j sum_i g_i w_i x_i (ops_impl.h).
__global__ void rmsnorm_bwd_k(float *dinp, const float *dout, const float *inp, const float *w,
                              const float *rstd, int C) {
    size_t off = (size_t)blockIdx.x * C;
    const float *x = inp + off, *g = dout + off;
    float *dx = dinp + off;
    double dot = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dot += (double)g[i] * w[i] * x[i];
    dot = kvq_cu_block_sum(dot);
    float r = rstd[blockIdx.x];
    float c = (float)(dot * r * r * r / C);
    for (int i = threadIdx.x; i < C; i += blockDim.x) dx[i] += r * w[i] * g[i] - c * x[i];
}

// One thread per (row, head, pair i < hd/2).
__global__ void rope_k(float *out, const float *inp, const float *cos_t, const float *sin_t, int T, int NH,
                       int half, size_t total, int backward) {
    for (size_t id = blockIdx.x * (size_t)blockDim.x + threadIdx.x; id < total; id += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(id % half);
        size_t rh = id / half;              // row * NH + head
        int t = (int)((rh / NH) % T);
        size_t base = rh * (size_t)(2 * half);
        float c = cos_t[(size_t)t * half + i], s = sin_t[(size_t)t * half + i];
        float a = inp[base + i], b = inp[base + i + half];
        if (backward) {
            out[base + i] += a * c + b * s;
            out[base + i + half] += b * c - a * s;
        } else {
            out[base + i] = a * c - b * s;
            out[base + i + half] = b * c + a * s;
        }
    }
}

__global__ void swiglu_fwd_k(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1 + expf(-g)) * up[i];
    }
}

__global__ void swiglu_bwd_k(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                             size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i], s = 1 / (1 + expf(-g));
        dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s));
        dup[i] += dout[i] * g * s;
    }
}

__global__ void residual_k(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

// Row log-sum-exp (max-subtracted, sum in double), shared by the block.
__device__ double row_lse(const float *x, int V) {
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
    mx = kvq_cu_block_max(mx);
    double sum = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(x[j] - mx);
    sum = kvq_cu_block_sum(sum);
    return (double)mx + log(sum);
}

__global__ void ce_fwd_k(float *nll, const float *logits, const int32_t *targets, int V) {
    int t = targets[blockIdx.x];
    if (t < 0) { if (threadIdx.x == 0) nll[blockIdx.x] = 0; return; }
    const float *x = logits + (size_t)blockIdx.x * V;
    double lse = row_lse(x, V);
    if (threadIdx.x == 0) nll[blockIdx.x] = (float)(lse - x[t]);
}

__global__ void ce_bwd_k(float *logits, const float *dnll, const int32_t *targets, int V) {
    float *x = logits + (size_t)blockIdx.x * V;
    int t = targets[blockIdx.x];
    float g = dnll[blockIdx.x];
    if (t < 0 || g == 0) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = 0;
        return;
    }
    float lse = (float)row_lse(x, V);
    __syncthreads();   // every thread has read the row before it is overwritten
    for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = g * expf(x[j] - lse) - (j == t ? g : 0.0f);
}

}  // namespace

extern "C" {

void kvq_cu_embed(float *out, const int32_t *tokens, const void *table, int wtype, int N, int C, void *stream) {
    if (N > 0) embed_k<<<N, kThreads, 0, (cudaStream_t)stream>>>(out, tokens, table, wtype, N, C);
}
void kvq_cu_to_f32(float *dst, const void *src, int src_type, size_t n, void *stream) {
    if (n) to_f32_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(dst, src, src_type, n);
}
void kvq_cu_from_f32(void *dst, int dst_type, const float *src, size_t n, void *stream) {
    if (n) from_f32_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(dst, dst_type, src, n);
}
void kvq_cu_add_bias(float *out, const float *bias, int N, int OC, void *stream) {
    size_t n = (size_t)N * OC;
    if (n) add_bias_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(out, bias, OC, n);
}
void kvq_cu_square(float *x, size_t n, void *stream) {
    if (n) square_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(x, n);
}
void kvq_cu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps, int N, int C,
                            void *stream) {
    if (N > 0) rmsnorm_fwd_k<<<N, kThreads, 0, (cudaStream_t)stream>>>(out, rstd, inp, weight, eps, C);
}
void kvq_cu_rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *weight, const float *rstd,
                             int N, int C, void *stream) {
    if (N > 0) rmsnorm_bwd_k<<<N, kThreads, 0, (cudaStream_t)stream>>>(dinp, dout, inp, weight, rstd, C);
}
void kvq_cu_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T, int NH,
                         int hd, void *stream) {
    size_t total = (size_t)B * T * NH * (hd / 2);
    if (total) rope_k<<<kvq_cu_grid(total), kThreads, 0, (cudaStream_t)stream>>>(out, inp, cos_t, sin_t, T, NH, hd / 2, total, 0);
}
void kvq_cu_rope_backward(float *dinp, const float *dout, const float *cos_t, const float *sin_t, int B, int T,
                          int NH, int hd, void *stream) {
    size_t total = (size_t)B * T * NH * (hd / 2);
    if (total) rope_k<<<kvq_cu_grid(total), kThreads, 0, (cudaStream_t)stream>>>(dinp, dout, cos_t, sin_t, T, NH, hd / 2, total, 1);
}
void kvq_cu_swiglu_forward(float *out, const float *gate, const float *up, size_t n, void *stream) {
    if (n) swiglu_fwd_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(out, gate, up, n);
}
void kvq_cu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n,
                            void *stream) {
    if (n) swiglu_bwd_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(dgate, dup, dout, gate, up, n);
}
void kvq_cu_residual_forward(float *out, const float *a, const float *b, size_t n, void *stream) {
    if (n) residual_k<<<kvq_cu_grid(n), kThreads, 0, (cudaStream_t)stream>>>(out, a, b, n);
}
void kvq_cu_ce_forward(float *nll, const float *logits, const int32_t *targets, int N, int V, void *stream) {
    if (N > 0) ce_fwd_k<<<N, kThreads, 0, (cudaStream_t)stream>>>(nll, logits, targets, V);
}
void kvq_cu_ce_backward_inplace(float *logits, const float *dnll, const int32_t *targets, int N, int V, void *stream) {
    if (N > 0) ce_bwd_k<<<N, kThreads, 0, (cudaStream_t)stream>>>(logits, dnll, targets, V);
}

}  // extern "C"
