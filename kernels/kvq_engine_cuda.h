/* kvq_engine_cuda.h — the CUDA calibration engine: the same forward pass and activation-gradient
 * backward pass as the CPU engine (calib/engine.h: loss convention, layouts, rotate-half RoPE,
 * per-layer K pre-RoPE, V and their gradients), on one NVIDIA GPU with cuBLAS for the matrix
 * products and kvq's own kernels for the rest (kernels/engine_cuda_ops.cuh). Weights are uploaded
 * once in their stored precision; two math modes (fp32, bf16). Memory plan: only each layer's input
 * hidden state is kept through the forward pass, the backward pass recomputes one layer at a time,
 * and attention runs in query chunks so no (T x T x heads) matrix exists whole (docs/engine-gpu.md,
 * with the byte formula of kvq_gpu_engine_device_bytes). Per-layer K, V and gradients are copied to
 * pinned host memory on a second stream while the next layer computes, into one of two host result
 * sets (kvq_gpu_engine_select_host) so the caller can consume one window while the next runs.
 * Not here: hooks (quantized-KV simulation stays on the CPU engine), weight gradients, decoding.
 * Plain C interface: includable without CUDA headers. */
#ifndef KVQ_ENGINE_CUDA_H
#define KVQ_ENGINE_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_model.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvq_gpu_math {
    KVQ_GPU_FP32 = 0,   /* every product in fp32 (cuBLAS CUBLAS_COMPUTE_32F, no TF32): the CPU
                           engine's results to ~1e-6 */
    KVQ_GPU_BF16 = 1    /* weight products on tensor cores with bf16 operands and fp32
                           accumulation/outputs; attention products in TF32; everything else fp32 */
} kvq_gpu_math;

typedef struct kvq_gpu_engine_opts {
    int batch;          /* B: the most windows one forward call takes (>= 1) */
    int seq_len;        /* T (>= 2) */
    kvq_gpu_math math;
    int backward;       /* 1: allocate for kvq_gpu_engine_backward */
    int copy_back;      /* 1: K pre-RoPE and V (and, with backward, their gradients) are copied to
                           host memory; 0: nothing is copied (timing and memory-fit runs) */
    int fisher;         /* 1: gradients are squared on the GPU before the copy (Fisher diagonal) */
    int q_chunk;        /* query rows per attention chunk; 0: the most that keeps the two score
                           blocks under 1 GiB */
    int device;         /* CUDA device ordinal */
} kvq_gpu_engine_opts;

typedef struct kvq_gpu_engine kvq_gpu_engine;

/* Device bytes the engine allocates for (cfg, opts) beyond the weights (docs/engine-gpu.md gives
 * the formula; in fp32 math it counts the one-matrix fp32 buffer that half-stored weights need, which
 * an F32 model does not use), and the weight bytes for a model stored as `weight_dtype` ("F32",
 * "BF16", "F16"). 0 on overflow or bad options. */
size_t kvq_gpu_engine_device_bytes(const kvq_model_config *cfg, const kvq_gpu_engine_opts *opts);
size_t kvq_gpu_engine_weight_bytes(const kvq_model_config *cfg, const char *weight_dtype, kvq_gpu_math math);

/* Build an engine for `m` (which may be freed after init: weights are copied to the GPU).
 * Errors: KVQ_ERR_ARG (bad opts or head layout), KVQ_ERR_UNSUPPORTED (no CUDA device),
 * KVQ_ERR_NOMEM (GPU or pinned memory, with the byte count), KVQ_ERR_CUDA (with the call). */
kvq_status kvq_gpu_engine_init(kvq_gpu_engine **out, const kvq_model *m, const kvq_gpu_engine_opts *opts,
                               char *why, size_t why_len);
void kvq_gpu_engine_free(kvq_gpu_engine *e);   /* accepts NULL */

/* Forward pass over n_windows (1..B) windows of T tokens; *loss (may be NULL) = mean NLL over the
 * n_windows*(T-1) predicted positions, as the CPU engine. Returns once the pass and its copies are
 * done. Tokens outside [0, vocab): KVQ_ERR_ARG naming window and position. */
kvq_status kvq_gpu_engine_forward(kvq_gpu_engine *e, const int32_t *tokens /* (n_windows, T) */, int n_windows,
                                  double *loss, char *why, size_t why_len);
/* Backward pass of the last forward call (opts.backward): gradients of K pre-RoPE and V (squared
 * when opts.fisher) for its windows; returns once they are on the host. */
kvq_status kvq_gpu_engine_backward(kvq_gpu_engine *e, char *why, size_t why_len);

/* Make the following forward/backward calls copy their per-layer results into host result set
 * `set` (0, the default, or 1) and leave the other set alone, so a caller can read (write to a
 * file) the previous window while the next one computes. Set 1 — pinned, the size of set 0:
 * L x B x T x kv_dim floats per tensor, 2 tensors, 4 with backward — is allocated on its first
 * selection: KVQ_ERR_NOMEM with the byte count when it cannot be (set 0 stays selected).
 * KVQ_ERR_ARG for another set or an engine without copy_back. Select before a forward call, not
 * between forward and backward (K/V and gradients would land in different sets). */
kvq_status kvq_gpu_engine_select_host(kvq_gpu_engine *e, int set, char *why, size_t why_len);

/* Host results (pinned memory owned by the engine) of the selected set, same layouts as the CPU
 * engine; NULL when the engine does not copy them back or layer is out of range. */
const float *kvq_gpu_engine_nll(const kvq_gpu_engine *e);                       /* (B, T); [b][T-1] = 0 */
const float *kvq_gpu_engine_k_pre_rope(const kvq_gpu_engine *e, int layer);     /* (B, T, kv_dim) */
const float *kvq_gpu_engine_v(const kvq_gpu_engine *e, int layer);              /* (B, T, kv_dim) */
const float *kvq_gpu_engine_k_pre_rope_grad(const kvq_gpu_engine *e, int layer);/* (B, T, kv_dim) */
const float *kvq_gpu_engine_v_grad(const kvq_gpu_engine *e, int layer);         /* (B, T, kv_dim) */

/* What the engine holds on the GPU: weights, activations/scratch, and the attention chunk used. */
typedef struct kvq_gpu_engine_info {
    size_t weight_bytes, work_bytes;
    int q_chunk;
    char weight_dtype[8];       /* on the GPU: "F32", "BF16" or "F16" */
    char device_name[96];
} kvq_gpu_engine_info;
void kvq_gpu_engine_get_info(const kvq_gpu_engine *e, kvq_gpu_engine_info *info);

#ifdef __cplusplus
}
#endif
#endif
