/* eval.h — evaluation of simulated KV-cache quantization (KVQUANT.md §10): the text is tokenized
 * once and split into non-overlapping windows of seq_len tokens (a trailing partial window is
 * dropped); each batch of windows runs through the engine once unquantized (the reference) and
 * once per simulation (codebook/baselines.h) with the quantizers applied through the engine's KV
 * hook, and the reference logits are reused for every simulation. Reported per simulation:
 * perplexity, mean and 99th-percentile per-position KL(p_ref || p_quant), top-1 agreement,
 * measured bits per element of K and V, tokens per second. Not the CLI (tools/cmd_eval.c). */
#ifndef KVQ_EVAL_H
#define KVQ_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include "baselines.h"
#include "kvq_model.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_eval_opts {
    int seq_len;             /* tokens per window (>= 2) */
    int batch;               /* windows per engine call (>= 1) */
    size_t max_windows;      /* 0: every full window of the text */
    /* called after each batch with windows done / total (may be NULL) */
    void (*progress)(void *user, size_t done, size_t total);
    void *progress_user;
} kvq_eval_opts;

typedef struct kvq_eval_result {
    char name[64];           /* e.g. "kvquant", "int" */
    uint32_t bits;           /* nominal bits (16 for fp16) */
    size_t n_windows;
    size_t n_available;      /* full windows the text holds (n_windows <= n_available) */
    size_t n_predicted;      /* predicted positions: n_windows * (seq_len - 1) */
    double nll, ppl;         /* mean next-token NLL, exp of it */
    double ref_nll, ref_ppl; /* the unquantized model on the same windows */
    double kl_mean, kl_p99;  /* per-position KL(p_ref || p_quant), nats */
    double top1;             /* fraction of positions whose argmax agrees with the reference */
    double k_bits, v_bits;   /* measured average bits per element (codebook/bits.h) */
    double k_outlier_rate, v_outlier_rate;
    double tokens_per_s;     /* this simulation's forward passes (hook included) */
    double ref_tokens_per_s; /* the unquantized forward passes */
} kvq_eval_result;

/* Read a text file and tokenize it whole (the tokenizer's default BOS behaviour). *ids (n) is
 * malloc'ed; free() it. */
struct kvq_tokenizer;
kvq_status kvq_eval_tokenize_file(const struct kvq_tokenizer *tok, const char *path, int32_t **ids,
                                  size_t *n, char *why, size_t why_len);

/* Per-channel key ranges (pre- and post-RoPE) of the unquantized model over the windows
 * tokens[starts[i] .. starts[i] + seq_len) (forward passes only; starts as kvq_capture_windows
 * draws them, or a capture's own), into `range` (initialised by
 * the caller for the model's layers and kv_dim). */
kvq_status kvq_eval_key_range(const kvq_model *m, const int32_t *tokens, size_t n_tokens,
                              const uint64_t *starts, size_t n_samples, int seq_len,
                              kvq_key_range *range, char *why, size_t why_len);

/* One simulation for `model`: KVQUANT from `cb` (checked against the model first:
 * KVQ_ERR_MISMATCH names the differing field), any other method from `bits` (and `range` for the
 * per-channel int methods). */
kvq_status kvq_eval_sim_init(kvq_kv_sim *s, kvq_method method, uint32_t bits, const kvq_model *model,
                             const kvq_codebook *cb, const kvq_key_range *range, char *why,
                             size_t why_len);

/* Parse a comma-separated list of bit widths ("4,3,2"), each 1..KVQ_MAX_BITS, at most cap. */
kvq_status kvq_eval_parse_bits(const char *list, uint32_t *bits, size_t cap, size_t *n);
/* Parse a comma-separated list of method names (kvq_method_name), at most cap. */
kvq_status kvq_eval_parse_methods(const char *list, kvq_method *methods, size_t cap, size_t *n);

/* Evaluate n_sims simulations on tokens (n_tokens). results: (n_sims). The simulations' bit
 * tallies are reset first. */
kvq_status kvq_eval_run(const kvq_model *m, const int32_t *tokens, size_t n_tokens,
                        const kvq_eval_opts *opts, kvq_kv_sim *sims, size_t n_sims,
                        kvq_eval_result *results, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
