/* ppl.h — perplexity of a model on a tokenized text, by the protocol of KVQUANT.md §10: the whole
 * text tokenized once (by the caller), split into non-overlapping windows of seq_len tokens from the
 * start, the remainder that does not fill a window dropped; every window starts at position 0 with
 * no token inserted; perplexity = exp(mean NLL over all predicted positions, seq_len - 1 per
 * window). Not a tokenizer and not a command (tools/cmd_ppl.c is). */
#ifndef KVQ_PPL_H
#define KVQ_PPL_H

#include <stddef.h>
#include <stdint.h>
#include "engine.h"
#include "kvq_model.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_ppl_opts {
    int seq_len;               /* tokens per window (>= 2) */
    int batch;                 /* windows per forward pass (>= 1; memory grows with it) */
    size_t max_windows;        /* evaluate at most this many windows from the start; 0 = all */
    kvq_engine_hook hook;      /* optional, installed on the engine (simulated quantization) */
    void *hook_user;
    /* optional, called after each forward pass with windows done and the total */
    void (*progress)(void *user, size_t windows_done, size_t windows_total);
    void *progress_user;
} kvq_ppl_opts;

typedef struct kvq_ppl_result {
    size_t n_tokens;           /* tokens in the text */
    size_t n_windows;          /* windows evaluated */
    size_t n_predicted;        /* n_windows * (seq_len - 1) */
    double nll_sum;            /* nats, summed over predicted positions */
    double mean_nll;           /* nll_sum / n_predicted */
    double ppl;                /* exp(mean_nll) */
    double seconds;            /* wall time of engine setup and forward passes */
} kvq_ppl_result;

/* Errors: KVQ_ERR_ARG (bad options), KVQ_ERR_DATA (fewer tokens than one window), the engine's. */
kvq_status kvq_ppl_eval(const kvq_model *m, const int32_t *tokens /* (n_tokens) */, size_t n_tokens,
                        const kvq_ppl_opts *opts, kvq_ppl_result *res, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
