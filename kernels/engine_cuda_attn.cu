// engine_cuda_attn.cu — causal grouped-query attention forward and backward on the GPU, in query
// chunks (engine_cuda_ops.h): per window and chunk of `rows` queries at positions [r0, r0+rows),
// the score block S (NH, rows, cols = r0+rows) comes from cuBLAS strided-batched products, then our
// kernels turn it into probabilities (keeping each row's log-sum-exp, as calib/ops_impl.h does) or
// into dS in the backward pass. cuBLAS is column-major: a row-major (r, c) matrix with leading
// dimension ld is the column-major (c, r) one, so every product below is written transposed.
// Query head h reads K/V head h / rep; the products run once per j < rep over heads g*rep + j,
// batched over the NKV groups g. Not the rest of the layer (engine_cuda.cu).
#include "engine_cuda_ops.h"
#include "engine_cuda_util.cuh"

#include <cublas_v2.h>

namespace {

constexpr int kThreads = 256;

// Row (h, i) of S (NH, rows, cols) at position r0+i sees columns [0, r0+i]; lse_b is (NH, T).
__global__ void softmax_k(float *S, float *lse_b, int T, int r0, int rows, int cols) {
    int h = blockIdx.x / rows, i = blockIdx.x % rows, valid = r0 + i + 1;
    float *s = S + (size_t)blockIdx.x * cols;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, s[j]);
    mx = kvq_cu_block_max(mx);
    double sum = 0;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) {
        float p = expf(s[j] - mx);
        s[j] = p;
        sum += p;
    }
    sum = kvq_cu_block_sum(sum);
    float inv = (float)(1.0 / sum);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s[j] = j < valid ? s[j] * inv : 0.0f;
    if (threadIdx.x == 0) lse_b[(size_t)h * T + r0 + i] = mx + (float)log(sum);
}

__global__ void probs_again_k(float *S, const float *lse_b, int T, int r0, int rows, int cols) {
    int h = blockIdx.x / rows, i = blockIdx.x % rows, valid = r0 + i + 1;
    float *s = S + (size_t)blockIdx.x * cols;
    float l = lse_b[(size_t)h * T + r0 + i];
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s[j] = j < valid ? expf(s[j] - l) : 0.0f;
}

// dS = P * (dP - rowsum(P * dP)), in place over dP.
__global__ void dscores_k(float *dP, const float *P, int cols) {
    size_t off = (size_t)blockIdx.x * cols;
    double dot = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dot += (double)P[off + j] * dP[off + j];
    dot = kvq_cu_block_sum(dot);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dP[off + j] = P[off + j] * (dP[off + j] - (float)dot);
}

struct attn_dims {
    int B, T, NH, NKV, hd, rep, qd, kd;
    cublasComputeType_t ct;
};

// Row-major C (rows, cols) [+]= alpha * X (rows, hd; ld ldx) * Y^T (Y: cols, hd; ld ldy), batched
// over groups: X steps sx, Y steps sy, C steps sc per group.
cublasStatus_t xyt(cublasHandle_t h, const attn_dims &d, int rows, int cols, float alpha, const float *X, int ldx,
                   long long sx, const float *Y, int ldy, long long sy, float beta, float *C, long long sc) {
    return cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, d.hd, &alpha, Y, CUDA_R_32F, ldy, sy,
                                      X, CUDA_R_32F, ldx, sx, &beta, C, CUDA_R_32F, cols, sc, d.NKV, d.ct,
                                      CUBLAS_GEMM_DEFAULT);
}

// Row-major O (rows, hd; ld ldo) [+]= alpha * P (rows, cols) * Y (cols, hd; ld ldy).
cublasStatus_t py(cublasHandle_t h, const attn_dims &d, int rows, int cols, float alpha, const float *P, long long sp,
                  const float *Y, int ldy, long long sy, float beta, float *O, int ldo, long long so) {
    return cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, d.hd, rows, cols, &alpha, Y, CUDA_R_32F, ldy, sy,
                                      P, CUDA_R_32F, cols, sp, &beta, O, CUDA_R_32F, ldo, so, d.NKV, d.ct,
                                      CUBLAS_GEMM_DEFAULT);
}

// Row-major G (cols, hd; ld ldg) += alpha * P^T (P: rows, cols) * X (rows, hd; ld ldx).
cublasStatus_t ptx(cublasHandle_t h, const attn_dims &d, int rows, int cols, float alpha, const float *P, long long sp,
                   const float *X, int ldx, long long sx, float *G, int ldg, long long sg) {
    const float one = 1.0f;
    return cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, d.hd, cols, rows, &alpha, X, CUDA_R_32F, ldx, sx,
                                      P, CUDA_R_32F, cols, sp, &one, G, CUDA_R_32F, ldg, sg, d.NKV, d.ct,
                                      CUBLAS_GEMM_DEFAULT);
}

attn_dims dims_of(int tf32, int B, int T, int NH, int NKV, int hd) {
    attn_dims d = {B, T, NH, NKV, hd, NH / NKV, NH * hd, NKV * hd,
                   tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F};
    return d;
}

}  // namespace

#define KVQ_CUBLAS_TRY(x)                                       \
    do {                                                        \
        cublasStatus_t s_ = (x);                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) return (int)s_;        \
    } while (0)

extern "C" int kvq_cu_attention_forward(void *cublas, int tf32, float *out, float *lse, const float *q, const float *k,
                                        const float *v, float *scratch, int chunk, int B, int T, int NH, int NKV,
                                        int hd, void *stream) {
    cublasHandle_t h = (cublasHandle_t)cublas;
    attn_dims d = dims_of(tf32, B, T, NH, NKV, hd);
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int b = 0; b < B; b++) {
        const float *qb = q + (size_t)b * T * d.qd, *kb = k + (size_t)b * T * d.kd, *vb = v + (size_t)b * T * d.kd;
        float *ob = out + (size_t)b * T * d.qd, *lb = lse + (size_t)b * NH * T;
        for (int r0 = 0; r0 < T; r0 += chunk) {
            int rows = T - r0 < chunk ? T - r0 : chunk, cols = r0 + rows;
            long long blk = (long long)rows * cols;
            for (int j = 0; j < d.rep; j++)
                KVQ_CUBLAS_TRY(xyt(h, d, rows, cols, scale, qb + (size_t)r0 * d.qd + j * hd, d.qd, (long long)d.rep * hd,
                                   kb, d.kd, hd, 0.0f, scratch + j * blk, d.rep * blk));
            softmax_k<<<NH * rows, kThreads, 0, (cudaStream_t)stream>>>(scratch, lb, T, r0, rows, cols);
            for (int j = 0; j < d.rep; j++)
                KVQ_CUBLAS_TRY(py(h, d, rows, cols, 1.0f, scratch + j * blk, d.rep * blk, vb, d.kd, hd, 0.0f,
                                  ob + (size_t)r0 * d.qd + j * hd, d.qd, (long long)d.rep * hd));
        }
    }
    return 0;
}

// dV += P^T dO; dP = dO V^T; dS = P * (dP - rowsum(P * dP)); dQ += scale dS K; dK += scale dS^T Q.
extern "C" int kvq_cu_attention_backward(void *cublas, int tf32, float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v, const float *lse,
                                         float *scratch, int chunk, int B, int T, int NH, int NKV, int hd,
                                         void *stream) {
    cublasHandle_t h = (cublasHandle_t)cublas;
    attn_dims d = dims_of(tf32, B, T, NH, NKV, hd);
    float scale = (float)(1.0 / sqrt((double)hd));
    float *P = scratch, *dS = scratch + (size_t)NH * chunk * T;
    for (int b = 0; b < B; b++) {
        size_t qo = (size_t)b * T * d.qd, ko = (size_t)b * T * d.kd;
        const float *lb = lse + (size_t)b * NH * T;
        for (int r0 = 0; r0 < T; r0 += chunk) {
            int rows = T - r0 < chunk ? T - r0 : chunk, cols = r0 + rows;
            long long blk = (long long)rows * cols, hs = (long long)d.rep * hd, ps = d.rep * blk;
            size_t qr = qo + (size_t)r0 * d.qd;
            for (int j = 0; j < d.rep; j++) {
                KVQ_CUBLAS_TRY(xyt(h, d, rows, cols, scale, q + qr + j * hd, d.qd, hs, k + ko, d.kd, hd, 0.0f,
                                   P + j * blk, ps));
                KVQ_CUBLAS_TRY(xyt(h, d, rows, cols, 1.0f, dout + qr + j * hd, d.qd, hs, v + ko, d.kd, hd, 0.0f,
                                   dS + j * blk, ps));
            }
            probs_again_k<<<NH * rows, kThreads, 0, (cudaStream_t)stream>>>(P, lb, T, r0, rows, cols);
            for (int j = 0; j < d.rep; j++)
                KVQ_CUBLAS_TRY(ptx(h, d, rows, cols, 1.0f, P + j * blk, ps, dout + qr + j * hd, d.qd, hs, dv + ko,
                                   d.kd, hd));
            dscores_k<<<NH * rows, kThreads, 0, (cudaStream_t)stream>>>(dS, P, cols);
            for (int j = 0; j < d.rep; j++) {
                KVQ_CUBLAS_TRY(py(h, d, rows, cols, scale, dS + j * blk, ps, k + ko, d.kd, hd, 1.0f,
                                  dq + qr + j * hd, d.qd, hs));
                KVQ_CUBLAS_TRY(ptx(h, d, rows, cols, scale, dS + j * blk, ps, q + qr + j * hd, d.qd, hs, dk + ko,
                                   d.kd, hd));
            }
        }
    }
    return 0;
}
