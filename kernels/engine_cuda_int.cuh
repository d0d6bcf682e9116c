// engine_cuda_int.cuh — the CUDA engine's private state, shared by engine_cuda.cu (passes),
// engine_cuda_init.cu (allocation, weight upload, memory plan). Not a public header.
#ifndef KVQ_ENGINE_CUDA_INT_CUH
#define KVQ_ENGINE_CUDA_INT_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>

#include "engine_cuda_ops.h"
#include "kvq_engine_cuda.h"

// Record the failing call and return KVQ_ERR_CUDA from a function taking (why, why_len).
#define CU_TRY(x)                                                                                       \
    do {                                                                                                \
        cudaError_t err_ = (x);                                                                         \
        if (err_ != cudaSuccess) {                                                                      \
            snprintf(why, why_len, "%s:%d: %s: %s", __FILE__, __LINE__, #x, cudaGetErrorString(err_));  \
            return KVQ_ERR_CUDA;                                                                        \
        }                                                                                               \
    } while (0)
#define CUBLAS_TRY(x)                                                                                   \
    do {                                                                                                \
        int st_ = (int)(x);                                                                             \
        if (st_ != 0) {                                                                                 \
            snprintf(why, why_len, "%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #x, st_);         \
            return KVQ_ERR_CUDA;                                                                        \
        }                                                                                               \
    } while (0)
#define KVQ_TRY(x)                       \
    do {                                 \
        kvq_status s_ = (x);             \
        if (s_ != KVQ_OK) return s_;     \
    } while (0)

typedef struct gpu_layer {
    const float *attn_norm, *mlp_norm;              // (C) fp32
    const float *bq, *bk, *bv;                      // (QD), (KVD), (KVD) fp32 or NULL
    const void *wq, *wk, *wv, *wo;                  // (QD, C), (KVD, C), (KVD, C), (C, QD) of wtype
    const void *w_gate, *w_up, *w_down;             // (I, C), (I, C), (C, I) of wtype
} gpu_layer;

// Device activations; N = B*T rows. Two "slots" alternate between layers so the copy stream can
// read one layer's K/V (or their gradients) while the next layer writes the other.
typedef struct gpu_acts {
    float *x;                   // (L+1, N, C) layer inputs: the only per-layer activations kept
    float *ln, *xmid, *branch;  // (N, C)
    float *rstd1, *rstd2, *nll, *dnll;  // (N)
    float *q, *att;             // (N, QD); in backward q then holds dq pre-RoPE, att holds datt
    float *k[2], *v[2];         // (N, KVD) per slot: k pre-RoPE and V
    float *kpost;               // (N, KVD)
    float *lse;                 // (B, NH, T)
    float *gate, *up, *act;     // (N, I); in backward act holds dact
    float *cos_t, *sin_t;       // (T, hd/2)
    int32_t *tokens, *targets;  // (N)
    float *logits;              // (RL, V) one chunk of logit rows; dlogits in place
    float *scratch;             // (1 or 2, NH, R, T) attention score blocks
    void *op16;                 // bf16 math: operands converted to bf16, max(N*max(C,QD,I), RL*V)
    float *wconv;               // fp32 math with half weights: one weight matrix in fp32
    // backward only
    float *dx, *dln;            // (N, C)
    float *dq, *dkpost;         // (N, QD), (N, KVD)
    float *dk[2], *dv[2];       // (N, KVD) per slot
    float *dgate, *dup;         // (N, I)
} gpu_acts;

struct kvq_gpu_engine {
    kvq_gpu_engine_opts opts;
    int B, T, L, C, NH, NKV, hd, QD, KVD, I, V, R, RL;
    float eps;
    int wtype;                  // KVQ_CU_* of the weight matrices on the GPU
    size_t wconv_elems;         // largest weight matrix (fp32 math with half weights)
    gpu_layer *layers;          // (L) host array of device pointers
    const void *tok_embed, *lm_head;    // (V, C) of wtype (may be the same)
    const float *final_norm;    // (C)
    void *weights;              // one device allocation for every weight
    size_t weight_bytes;
    gpu_acts a;
    void *work;                 // one device allocation for gpu_acts
    size_t work_bytes;
    float *h_k, *h_v, *h_dk, *h_dv;     // the selected set's pinned (L, B, T, KVD) arrays, or NULL
    float *h_set[2][4];                 // owned: per result set, k, v, dk, dv (set 1 on first select)
    float *h_nll;                       // pinned (B, T)
    int32_t *h_tok;                     // pinned (B, T) tokens then targets staging
    cudaStream_t s, cs;                 // compute and copy streams
    cudaEvent_t ready[2], freed[2];     // per slot: written by compute / read by the copy stream
    cublasHandle_t blas;
    int last_windows;
    char device_name[96];
};

// engine_cuda_init.cu: the plan of gpu_acts (measure or carve).
size_t kvq_gpu_plan(kvq_gpu_engine *e, unsigned char *base);

#endif
