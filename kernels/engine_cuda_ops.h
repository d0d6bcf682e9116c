/* engine_cuda_ops.h — the GPU twins of calib/ops.h, as C-callable launchers on device pointers
 * (float activations, row-major, shapes outermost-first as in ops.h). Each launcher enqueues on
 * `stream` (a cudaStream_t, NULL for the default stream) and returns at once; launch errors surface
 * at the caller's next checked CUDA call. Semantics match ops.h exactly, including that backward ops
 * ACCUMULATE (+=) into their input gradients, with one exception stated at kvq_cu_ce_backward.
 * Row reductions accumulate in double, like the CPU ops. Used by the engine (engine_cuda.cu) and by
 * the GPU test (tests/gpu/), which checks each against its CPU twin. Not an engine. */
#ifndef KVQ_ENGINE_CUDA_OPS_H
#define KVQ_ENGINE_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of weights on the GPU. */
enum { KVQ_CU_F32 = 0, KVQ_CU_BF16 = 1, KVQ_CU_F16 = 2 };

/* out[n] = table[tokens[n]] converted to fp32; table (V, C) of type wtype. */
void kvq_cu_embed(float *out /* (N, C) */, const int32_t *tokens /* (N) */, const void *table, int wtype,
                  int N, int C, void *stream);
/* dst = src converted (n elements). */
void kvq_cu_to_f32(float *dst, const void *src, int src_type, size_t n, void *stream);
void kvq_cu_from_f32(void *dst, int dst_type, const float *src, size_t n, void *stream);
/* out[n][o] += bias[o]. */
void kvq_cu_add_bias(float *out /* (N, OC) */, const float *bias /* (OC) */, int N, int OC, void *stream);
/* x[i] = x[i]^2. */
void kvq_cu_square(float *x, size_t n, void *stream);

void kvq_cu_rmsnorm_forward(float *out /* (N, C) */, float *rstd /* (N) */, const float *inp /* (N, C) */,
                            const float *weight /* (C) */, float eps, int N, int C, void *stream);
void kvq_cu_rmsnorm_backward(float *dinp /* (N, C) += */, const float *dout /* (N, C) */,
                             const float *inp /* (N, C) */, const float *weight /* (C) */,
                             const float *rstd /* (N) */, int N, int C, void *stream);

/* out may equal inp. */
void kvq_cu_rope_forward(float *out /* (B, T, NH*hd) */, const float *inp, const float *cos_t /* (T, hd/2) */,
                         const float *sin_t /* (T, hd/2) */, int B, int T, int NH, int hd, void *stream);
void kvq_cu_rope_backward(float *dinp /* (B, T, NH*hd) += */, const float *dout, const float *cos_t,
                          const float *sin_t, int B, int T, int NH, int hd, void *stream);

void kvq_cu_swiglu_forward(float *out, const float *gate, const float *up, size_t n, void *stream);
void kvq_cu_swiglu_backward(float *dgate /* += */, float *dup /* += */, const float *dout, const float *gate,
                            const float *up, size_t n, void *stream);
void kvq_cu_residual_forward(float *out, const float *a, const float *b, size_t n, void *stream);

/* nll[n] = logsumexp(logits[n]) - logits[n][targets[n]], 0 where targets[n] < 0. */
void kvq_cu_ce_forward(float *nll /* (N) */, const float *logits /* (N, V) */, const int32_t *targets /* (N) */,
                       int N, int V, void *stream);
/* IN PLACE and overwriting (the exception): logits[n] becomes
 * dnll[n] * (softmax(logits[n]) - onehot(targets[n])), or 0 where targets[n] < 0 or dnll[n] == 0 —
 * what ops.h's backward adds to a zeroed dlogits. */
void kvq_cu_ce_backward_inplace(float *logits /* (N, V) */, const float *dnll /* (N) */,
                                const int32_t *targets /* (N) */, int N, int V, void *stream);

/* Causal grouped-query attention in query chunks of `chunk` rows (the CPU's OPS_ATT_BLOCK role):
 * for each window and chunk, the (NH, rows, r0+rows) scores come from cuBLAS strided-batched
 * products, one call per query head of a K/V group, batched over the groups. `cublas` is a
 * cublasHandle_t already bound to `stream`; tf32 != 0 lets those products use TF32. scratch holds
 * NH*chunk*T floats (forward) or 2*NH*chunk*T (backward). Return 0 or the failing cublasStatus_t. */
int kvq_cu_attention_forward(void *cublas, int tf32, float *out /* (B, T, NH*hd) */, float *lse /* (B, NH, T) */,
                             const float *q /* (B, T, NH*hd) */, const float *k /* (B, T, NKV*hd) */,
                             const float *v /* (B, T, NKV*hd) */, float *scratch, int chunk, int B, int T,
                             int NH, int NKV, int hd, void *stream);
/* dq, dk, dv += as in ops.h. */
int kvq_cu_attention_backward(void *cublas, int tf32, float *dq, float *dk, float *dv, const float *dout,
                              const float *q, const float *k, const float *v, const float *lse, float *scratch,
                              int chunk, int B, int T, int NH, int NKV, int hd, void *stream);

#ifdef __cplusplus
}
#endif
#endif
