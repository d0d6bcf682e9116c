/* ppl.c — perplexity over non-overlapping windows (ppl.h), a loop of engine forward passes. */
#include "ppl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

kvq_status kvq_ppl_eval(const kvq_model *m, const int32_t *tokens, size_t n_tokens,
                        const kvq_ppl_opts *o, kvq_ppl_result *res, char *why, size_t why_len) {
    if (!m || !tokens || !o || !res || o->seq_len < 2 || o->batch < 1) {
        snprintf(why, why_len, "perplexity: bad arguments (seq_len %d, batch %d)", o ? o->seq_len : 0,
                 o ? o->batch : 0);
        return KVQ_ERR_ARG;
    }
    memset(res, 0, sizeof *res);
    res->n_tokens = n_tokens;
    size_t T = (size_t)o->seq_len, total = n_tokens / T;
    if (o->max_windows && total > o->max_windows) total = o->max_windows;
    if (!total) {
        snprintf(why, why_len, "the text has %zu tokens, fewer than one window of %zu", n_tokens, T);
        return KVQ_ERR_DATA;
    }
    int B = total < (size_t)o->batch ? (int)total : o->batch;
    double t0 = now_s();
    kvq_engine *e = NULL;
    kvq_engine_opts eo = {B, o->seq_len, 0};
    kvq_status st = kvq_engine_init(&e, m, &eo, why, why_len);
    if (st != KVQ_OK) return st;
    kvq_engine_set_hook(e, o->hook, o->hook_user);
    double sum = 0;
    for (size_t w = 0; w < total; w += (size_t)B) {
        int nb = total - w < (size_t)B ? (int)(total - w) : B;
        st = kvq_engine_forward(e, tokens + w * T, nb, NULL, why, why_len);
        if (st != KVQ_OK) break;
        const float *nll = kvq_engine_nll(e);   /* (B, T), 0 at each window's last position */
        for (size_t i = 0; i < (size_t)nb * T; i++) sum += nll[i];
        if (!isfinite(sum)) {
            snprintf(why, why_len, "the NLL is not finite in windows %zu..%zu", w, w + (size_t)nb - 1);
            st = KVQ_ERR_NONFINITE;
            break;
        }
        if (o->progress) o->progress(o->progress_user, w + (size_t)nb, total);
    }
    kvq_engine_free(e);
    if (st != KVQ_OK) return st;
    res->n_windows = total;
    res->n_predicted = total * (T - 1);
    res->nll_sum = sum;
    res->mean_nll = sum / (double)res->n_predicted;
    res->ppl = exp(res->mean_nll);
    res->seconds = now_s() - t0;
    return KVQ_OK;
}
