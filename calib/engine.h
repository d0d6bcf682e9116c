/* engine.h — the fp32 CPU engine of a LLaMA-family model (kvq_model.h): a forward pass over a batch
 * of token windows (logits, per-position NLL, per-layer K and V before and after RoPE) and a backward
 * pass for ACTIVATION gradients only (dL/dK pre-RoPE and dL/dV per layer: Fisher = their elementwise
 * square). An engine is built once for (model, batch B, seq_len T) and allocates all its activations
 * in one block at init; forward/backward allocate nothing. Every window is processed from position 0
 * (no KV-cache decoding, no position offset). Not a loader, not a tokenizer, no weight gradients.
 *
 * Threads: matrix products use OpenBLAS threads, row loops OpenMP threads (kvq_engine_set_threads);
 * results do not depend on either count beyond BLAS's own summation order.
 *
 * Loss convention. Window b has T-1 predicted positions (position t predicts token t+1; the last
 * position predicts nothing). The forward pass reports the mean NLL over all n_windows*(T-1)
 * predicted positions. The backward pass differentiates the SUM over windows of each window's
 * mean NLL, so each window's gradients equal those of HF's single-window mean loss whatever the
 * batch size (a per-sample Fisher is the square of that window's gradient). */
#ifndef KVQ_ENGINE_H
#define KVQ_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_model.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_engine kvq_engine;

typedef struct kvq_engine_opts {
    int batch;      /* B: the most windows one forward call takes (>= 1) */
    int seq_len;    /* T: tokens per window (>= 2) */
    int backward;   /* 1: keep every layer's activations and allocate gradients for
                       kvq_engine_backward; 0: forward only (K, V and layer inputs are still kept
                       for every layer, the rest is shared across layers) */
} kvq_engine_opts;

/* Where in a layer's forward pass the hook is called. */
typedef enum kvq_engine_stage {
    KVQ_STAGE_PRE_ROPE = 0,   /* after k_proj/v_proj, before RoPE: k is K pre-RoPE */
    KVQ_STAGE_POST_ROPE = 1   /* after RoPE, before attention: k is K post-RoPE */
} kvq_engine_stage;

/* What a hook sees: the layer's keys and values for the windows of this call, writable. What the
 * hook writes is what the rest of the pass uses: at PRE_ROPE the rewritten K is rotated and read by
 * attention (and is what kvq_engine_k_pre_rope returns), at POST_ROPE the rewritten K (and V) is
 * what attention reads. Used to simulate a quantized KV cache; gradients computed after a hook
 * rewrote K/V are gradients of the rewritten forward pass, not of the model. */
typedef struct kvq_engine_kv {
    int layer;
    kvq_engine_stage stage;
    int n_windows, seq_len;      /* (B, T) of this call */
    int n_kv_heads, head_dim;    /* kv_dim = n_kv_heads * head_dim */
    float *k;                    /* (n_windows, seq_len, kv_dim) */
    float *v;                    /* (n_windows, seq_len, kv_dim) */
} kvq_engine_kv;

/* A hook returns KVQ_OK, or a status (with `why`) that aborts the forward pass with that status. */
typedef kvq_status (*kvq_engine_hook)(void *user, const kvq_engine_kv *kv, char *why, size_t why_len);

/* Build an engine for `m` (which must outlive it). Errors: KVQ_ERR_ARG (bad opts, unsupported
 * head layout), KVQ_ERR_OVERFLOW, KVQ_ERR_NOMEM (with the byte count in `why`). */
kvq_status kvq_engine_init(kvq_engine **out, const kvq_model *m, const kvq_engine_opts *opts,
                           char *why, size_t why_len);
void kvq_engine_free(kvq_engine *e);            /* accepts NULL */

/* Bytes kvq_engine_init allocates for activations (and gradients when opts->backward), or 0 when
 * the size overflows. The formula is in docs/engine.md. */
size_t kvq_engine_activation_bytes(const kvq_model_config *cfg, const kvq_engine_opts *opts);

/* Threads of OpenBLAS and of the engine's OpenMP loops, for the whole process. n > 0 fixes the
 * count. Otherwise (n <= 0, or never called) the first kvq_engine_init chooses: OMP_NUM_THREADS /
 * OPENBLAS_NUM_THREADS when the environment sets either, else the online cores minus the 1-minute
 * load average, at least 1 — on a busy machine fork-join threads wait for descheduled teammates
 * and one thread is much faster than two (docs/engine.md). */
void kvq_engine_set_threads(int n);

/* Install (or with fn NULL, remove) the hook called at both stages of every layer. */
void kvq_engine_set_hook(kvq_engine *e, kvq_engine_hook fn, void *user);

/* Forward pass over n_windows (1..B) windows of T tokens. *loss (may be NULL) receives the mean
 * NLL over the n_windows*(T-1) predicted positions. Tokens outside [0, vocab) give KVQ_ERR_ARG
 * naming window and position. Outputs stay readable through the accessors below until the next
 * forward call; rows of windows >= n_windows are stale. */
kvq_status kvq_engine_forward(kvq_engine *e, const int32_t *tokens /* (n_windows, T) */, int n_windows,
                              double *loss, char *why, size_t why_len);

/* Backward pass of the last forward call (opts.backward must be 1): fills the per-layer gradients
 * of K pre-RoPE and V for the windows of that call (see the loss convention above). */
kvq_status kvq_engine_backward(kvq_engine *e, char *why, size_t why_len);

/* ---- read access (all shapes use the B of the engine; only the first n_windows are valid) ---- */
const kvq_model_config *kvq_engine_config(const kvq_engine *e);
int kvq_engine_batch(const kvq_engine *e);
int kvq_engine_seq_len(const kvq_engine *e);

const float *kvq_engine_logits(const kvq_engine *e);              /* (B, T, vocab) */
const float *kvq_engine_nll(const kvq_engine *e);                 /* (B, T); [b][T-1] = 0 */
/* Input of layer `layer` (0..n_layers); layer == n_layers gives the input of the final norm. */
const float *kvq_engine_hidden_in(const kvq_engine *e, int layer);   /* (B, T, hidden) */
const float *kvq_engine_final_hidden(const kvq_engine *e);          /* (B, T, hidden) final norm out */
/* Per layer (0..n_layers-1), NULL when layer is out of range. */
const float *kvq_engine_k_pre_rope(const kvq_engine *e, int layer);   /* (B, T, kv_dim) */
const float *kvq_engine_k_post_rope(const kvq_engine *e, int layer);  /* (B, T, kv_dim) */
const float *kvq_engine_v(const kvq_engine *e, int layer);            /* (B, T, kv_dim) */
/* Gradients, same layout as K and V; NULL unless opts.backward (valid after kvq_engine_backward). */
const float *kvq_engine_k_pre_rope_grad(const kvq_engine *e, int layer);  /* (B, T, kv_dim) */
const float *kvq_engine_v_grad(const kvq_engine *e, int layer);           /* (B, T, kv_dim) */

#ifdef __cplusplus
}
#endif
#endif
