/* engine_backend.h — the model engines the capture loop can run on, behind one small table of
 * functions: "cpu" (calib/engine.h, always there) and, in a CUDA-enabled build (build/kvq-cuda
 * from `make cuda`), "cuda" (the GPU engine in fp32 math, kernels/kvq_engine_cuda.h) and
 * "cuda-bf16" (its tensor-core bf16 math). One window at a time; per-layer results are host
 * arrays valid until the next run (with `select`: the next run into the same result set). Not an
 * engine itself. */
#ifndef KVQ_ENGINE_BACKEND_H
#define KVQ_ENGINE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_model.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_engine_backend {
    const char *name;
    /* Build an engine for one window of seq_len tokens; with fisher, the backward pass too. */
    kvq_status (*init)(void **eng, const kvq_model *m, int seq_len, int fisher, char *why, size_t why_len);
    void (*free)(void *eng);    /* accepts NULL */
    /* Forward pass over one window (*loss: its mean NLL), then the backward pass with fisher. */
    kvq_status (*run)(void *eng, const int32_t *tokens /* (seq_len) */, int fisher, double *loss, char *why,
                      size_t why_len);
    /* Per layer, (seq_len, kv_dim): K pre-RoPE, V, and the gradients of K pre-RoPE and V. */
    const float *(*k_pre_rope)(void *eng, int layer);
    const float *(*v)(void *eng, int layer);
    const float *(*k_grad)(void *eng, int layer);
    const float *(*v_grad)(void *eng, int layer);
    int grads_squared;          /* 1: k_grad/v_grad already hold the squared gradients (Fisher) */
    /* Optional (NULL: one set, results valid until the next run). Make the following runs write
     * their host results into result set `set` (0 or 1; the accessors then return that set's
     * arrays) and leave the other set untouched, so another thread may read the previous window
     * while the next one computes. Set 1 is allocated on its first selection (KVQ_ERR_NOMEM with
     * the byte count). Call it before a run, never between a run and reading its results. */
    kvq_status (*select)(void *eng, int set, char *why, size_t why_len);
} kvq_engine_backend;

/* The backend called `name` ("cpu", "cuda", "cuda-bf16"). KVQ_ERR_UNSUPPORTED with a message when
 * this build has no such backend (e.g. "cuda" in a build without CUDA), KVQ_ERR_ARG when the name
 * is unknown. */
kvq_status kvq_engine_backend_get(const char *name, const kvq_engine_backend **out, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
