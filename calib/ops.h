/* ops.h — the LLaMA layer ops of the CPU engine as forward/backward pairs (llm.c style: outputs
 * first, inputs next, dimensions last), each instantiated for float (_f32, what the engine runs)
 * and double (_f64, what the finite-difference tests check). Backward ops compute ACTIVATION
 * gradients only (no weight gradients) and ACCUMULATE (+=) into their input-gradient buffers, so the
 * caller zeroes them first. Not an engine: no allocation here except the RoPE frequency helper's
 * caller-owned output; engine.h strings these together.
 *
 * Shapes are outermost-first. N = number of rows (B*T), B windows of T positions each. Weight
 * matrices are (out_features, in_features) as in kvq_model.h. RoPE is rotate-half (HF): for pair
 * i < head_dim/2, (x_i, x_{i+h}) -> (x_i cos - x_{i+h} sin, x_{i+h} cos + x_i sin), with the angle
 * t * inv_freq[i] of window position t (every window starts at position 0). */
#ifndef KVQ_OPS_H
#define KVQ_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Threads of OpenBLAS and of the OpenMP row loops, process-wide. n > 0 fixes the count; n <= 0
 * returns to the automatic choice of kvq_ops_auto_threads. */
void kvq_ops_set_threads(int n);
/* Called by kvq_engine_init: unless a count was fixed or already chosen, use OMP_NUM_THREADS /
 * OPENBLAS_NUM_THREADS when the environment sets either, else the online cores minus the 1-minute
 * load average (at least 1): fork-join threads on a busy machine wait for descheduled teammates. */
void kvq_ops_auto_threads(void);

/* ---- RoPE frequency tables (double, converted by the caller) ------------------------------ */

/* inv_freq[i] = theta^(-2i/head_dim) with the config's scaling (none, linear: / factor, llama3:
 * wavelength-dependent as in HF's llama3 rope type). head_dim must be even and >= 2. */
kvq_status kvq_rope_inv_freq(double *inv_freq /* (head_dim/2) */, const kvq_model_config *cfg);
/* cos[t][i] = cos(t * inv_freq[i]), sin likewise, t = 0..T-1. */
void kvq_rope_tables_f32(float *cos_t /* (T, head_dim/2) */, float *sin_t /* (T, head_dim/2) */,
                         const double *inv_freq /* (head_dim/2) */, int T, int head_dim);
void kvq_rope_tables_f64(double *cos_t /* (T, head_dim/2) */, double *sin_t /* (T, head_dim/2) */,
                         const double *inv_freq /* (head_dim/2) */, int T, int head_dim);

/* ---- float instantiation (the engine's) --------------------------------------------------- */

/* out[n] = table[tokens[n]]. Forward only: tokens are discrete, and weight gradients are not
 * computed. Tokens must be in [0, V) (the engine checks). */
void kvq_embed_forward_f32(float *out /* (N, C) */, const int32_t *tokens /* (N) */,
                           const float *table /* (V, C) */, int N, int C);

/* out = inp W^T + bias (bias may be NULL). OpenBLAS sgemm. */
void kvq_matmul_forward_f32(float *out /* (N, OC) */, const float *inp /* (N, IC) */,
                            const float *weight /* (OC, IC) */, const float *bias /* (OC) or NULL */,
                            int N, int IC, int OC);
/* dinp += dout W. */
void kvq_matmul_backward_f32(float *dinp /* (N, IC) */, const float *dout /* (N, OC) */,
                             const float *weight /* (OC, IC) */, int N, int IC, int OC);

/* out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps) per row (kept for backward). */
void kvq_rmsnorm_forward_f32(float *out /* (N, C) */, float *rstd /* (N) */,
                             const float *inp /* (N, C) */, const float *weight /* (C) */,
                             float eps, int N, int C);
void kvq_rmsnorm_backward_f32(float *dinp /* (N, C) */, const float *dout /* (N, C) */,
                              const float *inp /* (N, C) */, const float *weight /* (C) */,
                              const float *rstd /* (N) */, int N, int C);

/* Rotate-half RoPE on NH heads of head_dim; out may equal inp (in place). */
void kvq_rope_forward_f32(float *out /* (B, T, NH*hd) */, const float *inp /* (B, T, NH*hd) */,
                          const float *cos_t /* (T, hd/2) */, const float *sin_t /* (T, hd/2) */,
                          int B, int T, int NH, int hd);
/* dinp += R^T dout (the rotation transposed). */
void kvq_rope_backward_f32(float *dinp /* (B, T, NH*hd) */, const float *dout /* (B, T, NH*hd) */,
                           const float *cos_t /* (T, hd/2) */, const float *sin_t /* (T, hd/2) */,
                           int B, int T, int NH, int hd);

/* Causal grouped-query attention: query head h reads K/V head h / (NH/NKV). Scores scaled by
 * 1/sqrt(hd), softmax over positions <= t with max subtraction. lse keeps each row's log-sum-exp
 * so backward recomputes the probabilities instead of storing (T, T) per head. Query rows are
 * processed in blocks of KVQ_ATT_BLOCK; scratch holds one block of scores, R = min(T,
 * KVQ_ATT_BLOCK) rows of T (two blocks in backward). NH must be a multiple of NKV. */
enum { KVQ_ATT_BLOCK = 128 };
void kvq_attention_forward_f32(float *out /* (B, T, NH*hd) */, float *lse /* (B, NH, T) */,
                               const float *q /* (B, T, NH*hd) */, const float *k /* (B, T, NKV*hd) */,
                               const float *v /* (B, T, NKV*hd) */, float *scratch /* (R, T) */,
                               int B, int T, int NH, int NKV, int hd);
void kvq_attention_backward_f32(float *dq /* (B, T, NH*hd) */, float *dk /* (B, T, NKV*hd) */,
                                float *dv /* (B, T, NKV*hd) */, const float *dout /* (B, T, NH*hd) */,
                                const float *q /* (B, T, NH*hd) */, const float *k /* (B, T, NKV*hd) */,
                                const float *v /* (B, T, NKV*hd) */, const float *lse /* (B, NH, T) */,
                                float *scratch /* (2, R, T) */, int B, int T, int NH, int NKV, int hd);

/* out = silu(gate) * up, silu(x) = x / (1 + exp(-x)). n = N * intermediate. */
void kvq_swiglu_forward_f32(float *out /* (n) */, const float *gate /* (n) */, const float *up /* (n) */,
                            size_t n);
void kvq_swiglu_backward_f32(float *dgate /* (n) */, float *dup /* (n) */, const float *dout /* (n) */,
                             const float *gate /* (n) */, const float *up /* (n) */, size_t n);

/* out = a + b (out may alias a or b); backward: da += dout, db += dout. */
void kvq_residual_forward_f32(float *out /* (n) */, const float *a /* (n) */, const float *b /* (n) */,
                              size_t n);
void kvq_residual_backward_f32(float *da /* (n) */, float *db /* (n) */, const float *dout /* (n) */,
                               size_t n);

/* nll[n] = logsumexp(logits[n]) - logits[n][targets[n]]; targets[n] < 0 means "no target" and
 * gives nll 0 (the last position of a window). Backward of sum_n dnll[n] * nll[n]:
 * dlogits[n] += dnll[n] * (softmax(logits[n]) - onehot(targets[n])). */
void kvq_crossentropy_forward_f32(float *nll /* (N) */, const float *logits /* (N, V) */,
                                  const int32_t *targets /* (N) */, int N, int V);
void kvq_crossentropy_backward_f32(float *dlogits /* (N, V) */, const float *dnll /* (N) */,
                                   const float *logits /* (N, V) */, const int32_t *targets /* (N) */,
                                   int N, int V);

/* ---- double instantiation: the same ops, same shapes, for the finite-difference tests ------- */

void kvq_embed_forward_f64(double *out, const int32_t *tokens, const double *table, int N, int C);
void kvq_matmul_forward_f64(double *out, const double *inp, const double *weight, const double *bias,
                            int N, int IC, int OC);
void kvq_matmul_backward_f64(double *dinp, const double *dout, const double *weight, int N, int IC, int OC);
void kvq_rmsnorm_forward_f64(double *out, double *rstd, const double *inp, const double *weight,
                             double eps, int N, int C);
void kvq_rmsnorm_backward_f64(double *dinp, const double *dout, const double *inp, const double *weight,
                              const double *rstd, int N, int C);
void kvq_rope_forward_f64(double *out, const double *inp, const double *cos_t, const double *sin_t,
                          int B, int T, int NH, int hd);
void kvq_rope_backward_f64(double *dinp, const double *dout, const double *cos_t, const double *sin_t,
                           int B, int T, int NH, int hd);
void kvq_attention_forward_f64(double *out, double *lse, const double *q, const double *k, const double *v,
                               double *scratch, int B, int T, int NH, int NKV, int hd);
void kvq_attention_backward_f64(double *dq, double *dk, double *dv, const double *dout, const double *q,
                                const double *k, const double *v, const double *lse, double *scratch,
                                int B, int T, int NH, int NKV, int hd);
void kvq_swiglu_forward_f64(double *out, const double *gate, const double *up, size_t n);
void kvq_swiglu_backward_f64(double *dgate, double *dup, const double *dout, const double *gate,
                             const double *up, size_t n);
void kvq_residual_forward_f64(double *out, const double *a, const double *b, size_t n);
void kvq_residual_backward_f64(double *da, double *db, const double *dout, size_t n);
void kvq_crossentropy_forward_f64(double *nll, const double *logits, const int32_t *targets, int N, int V);
void kvq_crossentropy_backward_f64(double *dlogits, const double *dnll, const double *logits,
                                   const int32_t *targets, int N, int V);

#ifdef __cplusplus
}
#endif
#endif
