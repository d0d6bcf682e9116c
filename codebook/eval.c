/* eval.c — simulated-quantization evaluation (eval.h): the reference pass, one hooked pass per
 * simulation, and the metrics (NLL, KL, top-1, bits, throughput). The quantization itself is
 * codebook/quant.c through codebook/baselines.c; the model is calib/engine.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "eval.h"
#include "tokenizer.h"

#define WHY(...) do { if (why && why_len) snprintf(why, why_len, __VA_ARGS__); } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

kvq_status kvq_eval_tokenize_file(const kvq_tokenizer *tok, const char *path, int32_t **ids,
                                  size_t *n, char *why, size_t why_len) {
    FILE *f = fopen(path, "rb");
    if (!f) { WHY("%s: cannot open", path); return KVQ_ERR_IO; }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    kvq_status st = buf ? KVQ_OK : KVQ_ERR_NOMEM;
    while (st == KVQ_OK) {
        if (len == cap) {
            char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) { st = KVQ_ERR_NOMEM; break; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) { if (ferror(f)) { WHY("%s: read error", path); st = KVQ_ERR_IO; } break; }
    }
    fclose(f);
    if (st == KVQ_OK) {
        char sub[256] = "";
        st = kvq_tokenize(tok, buf, len, kvq_tokenizer_adds_bos(tok), ids, n, sub, sizeof sub);
        if (st != KVQ_OK) WHY("%s: %s", path, sub);
    }
    free(buf);
    return st;
}

/* ---- hooks ----------------------------------------------------------------------------------- */

static kvq_status range_hook(void *user, const kvq_engine_kv *kv, char *why, size_t why_len) {
    kvq_key_range *r = user;
    size_t n = (size_t)kv->n_windows * (size_t)kv->seq_len;
    kvq_status st = kvq_key_range_add(r, kv->layer, kv->stage == KVQ_STAGE_POST_ROPE, kv->k, n);
    if (st != KVQ_OK) WHY("layer %d: key range: %s", kv->layer, kvq_status_message(st));
    return st;
}

static kvq_status sim_hook(void *user, const kvq_engine_kv *kv, char *why, size_t why_len) {
    return kvq_kv_sim_apply(user, kv->layer, kv->stage == KVQ_STAGE_POST_ROPE, kv->k, kv->v,
                            (size_t)kv->n_windows, (size_t)kv->seq_len, why, why_len);
}

kvq_status kvq_eval_key_range(const kvq_model *m, const int32_t *tokens, size_t n_tokens,
                              const uint64_t *starts, size_t n_samples, int seq_len,
                              kvq_key_range *range, char *why, size_t why_len) {
    if (!m || !tokens || !range || seq_len < 2 || (!starts && n_samples)) return KVQ_ERR_ARG;
    for (size_t i = 0; i < n_samples; i++)
        if (starts[i] > n_tokens || n_tokens - starts[i] < (size_t)seq_len) {
            WHY("calibration window %zu (start %llu) runs past the %zu tokens of the text", i,
                (unsigned long long)starts[i], n_tokens);
            return KVQ_ERR_BOUNDS;
        }
    kvq_engine *e = NULL;
    kvq_engine_opts eo = {.batch = 1, .seq_len = seq_len, .backward = 0};
    kvq_status st = kvq_engine_init(&e, m, &eo, why, why_len);
    if (st != KVQ_OK) return st;
    kvq_engine_set_hook(e, range_hook, range);
    for (size_t i = 0; i < n_samples && st == KVQ_OK; i++)
        st = kvq_engine_forward(e, tokens + starts[i], 1, NULL, why, why_len);
    kvq_engine_free(e);
    return st;
}

/* ---- metrics --------------------------------------------------------------------------------- */

/* log-sum-exp of one row of logits, in double. */
static double row_lse(const float *x, int n) {
    double mx = x[0];
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

static int row_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* KL(p || q) of two logit rows given their log-sum-exps: sum p (lp - lq). */
static double row_kl(const float *p, double lse_p, const float *q, double lse_q, int n) {
    double kl = 0.0;
    for (int i = 0; i < n; i++) {
        double lp = (double)p[i] - lse_p, lq = (double)q[i] - lse_q;
        kl += exp(lp) * (lp - lq);
    }
    return kl > 0.0 ? kl : 0.0;   /* rounding can leave -1e-17 on identical rows */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Per-simulation accumulators. */
typedef struct sim_acc {
    double nll_sum, ref_nll_sum, seconds;
    size_t agree;
    double *kl;              /* (n_predicted) */
} sim_acc;

/* Metrics of one hooked batch against the stored reference. */
static void score_batch(const kvq_engine *e, int nw, int T, int V, const float *ref_logits,
                        const double *ref_lse, const int *ref_top, sim_acc *a, size_t *pos) {
    const float *lg = kvq_engine_logits(e), *nll = kvq_engine_nll(e);
    for (int w = 0; w < nw; w++)
        for (int t = 0; t + 1 < T; t++) {
            size_t row = (size_t)w * T + t;
            const float *q = lg + row * V;
            double lse_q = row_lse(q, V);
            a->nll_sum += nll[row];
            a->kl[(*pos)++] = row_kl(ref_logits + row * V, ref_lse[row], q, lse_q, V);
            a->agree += row_argmax(q, V) == ref_top[row];
        }
}

static void finish_result(kvq_eval_result *r, const kvq_kv_sim *s, sim_acc *a, size_t n_windows,
                          int T, double ref_nll_sum, double ref_seconds) {
    size_t n_pred = n_windows * (size_t)(T - 1), toks = n_windows * (size_t)T;
    snprintf(r->name, sizeof r->name, "%s", kvq_method_name(s->method));
    r->bits = s->bits;
    r->n_windows = n_windows;
    r->n_predicted = n_pred;
    r->nll = a->nll_sum / (double)n_pred;
    r->ppl = exp(r->nll);
    r->ref_nll = ref_nll_sum / (double)n_pred;
    r->ref_ppl = exp(r->ref_nll);
    double kl = 0.0;
    for (size_t i = 0; i < n_pred; i++) kl += a->kl[i];
    r->kl_mean = kl / (double)n_pred;
    qsort(a->kl, n_pred, sizeof(double), cmp_double);
    size_t k = (size_t)ceil(0.99 * (double)n_pred);   /* nearest rank */
    r->kl_p99 = a->kl[k ? k - 1 : 0];
    r->top1 = (double)a->agree / (double)n_pred;
    r->k_bits = kvq_bits_per_element(&s->k_bits);
    r->v_bits = kvq_bits_per_element(&s->v_bits);
    r->k_outlier_rate = kvq_bits_outlier_rate(&s->k_bits, s->kv_dim);
    r->v_outlier_rate = kvq_bits_outlier_rate(&s->v_bits, s->kv_dim);
    r->tokens_per_s = a->seconds > 0 ? (double)toks / a->seconds : 0.0;
    r->ref_tokens_per_s = ref_seconds > 0 ? (double)toks / ref_seconds : 0.0;
}

typedef struct eval_bufs {
    float *ref_logits;       /* (B, T, V) */
    double *ref_lse;         /* (B, T) */
    int *ref_top;            /* (B, T) */
    sim_acc *acc;            /* (n_sims) */
    size_t n_sims;
} eval_bufs;

static void bufs_free(eval_bufs *b) {
    free(b->ref_logits);
    free(b->ref_lse);
    free(b->ref_top);
    for (size_t i = 0; b->acc && i < b->n_sims; i++) free(b->acc[i].kl);
    free(b->acc);
}

static kvq_status bufs_alloc(eval_bufs *b, size_t B, size_t T, size_t V, size_t n_sims, size_t n_pred) {
    memset(b, 0, sizeof *b);
    b->n_sims = n_sims;
    size_t rows = B * T;
    if (rows / T != B || (V && rows > SIZE_MAX / V / sizeof(float)) || n_pred > SIZE_MAX / sizeof(double))
        return KVQ_ERR_OVERFLOW;
    b->ref_logits = malloc(rows * V * sizeof(float));
    b->ref_lse = malloc(rows * sizeof(double));
    b->ref_top = malloc(rows * sizeof(int));
    b->acc = calloc(n_sims, sizeof *b->acc);
    if (!b->ref_logits || !b->ref_lse || !b->ref_top || !b->acc) return KVQ_ERR_NOMEM;
    for (size_t i = 0; i < n_sims; i++)
        if (!(b->acc[i].kl = malloc(n_pred * sizeof(double)))) return KVQ_ERR_NOMEM;
    return KVQ_OK;
}

/* The unquantized pass of one batch: keep logits, their log-sum-exp and argmax, sum the NLL. */
static kvq_status reference_batch(kvq_engine *e, const int32_t *toks, int nw, int T, int V,
                                  eval_bufs *b, double *nll_sum, double *seconds, char *why,
                                  size_t why_len) {
    kvq_engine_set_hook(e, NULL, NULL);
    double t0 = now_s();
    kvq_status st = kvq_engine_forward(e, toks, nw, NULL, why, why_len);
    *seconds += now_s() - t0;
    if (st != KVQ_OK) return st;
    const float *lg = kvq_engine_logits(e), *nll = kvq_engine_nll(e);
    size_t rows = (size_t)nw * T;
    memcpy(b->ref_logits, lg, rows * V * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        b->ref_lse[r] = row_lse(lg + r * V, V);
        b->ref_top[r] = row_argmax(lg + r * V, V);
        if ((int)(r % T) != T - 1) *nll_sum += nll[r];
    }
    return KVQ_OK;
}

kvq_status kvq_eval_run(const kvq_model *m, const int32_t *tokens, size_t n_tokens,
                        const kvq_eval_opts *opts, kvq_kv_sim *sims, size_t n_sims,
                        kvq_eval_result *results, char *why, size_t why_len) {
    if (!m || !tokens || !opts || (!sims && n_sims) || (!results && n_sims)) return KVQ_ERR_ARG;
    int T = opts->seq_len, V = m->cfg.vocab;
    if (T < 2 || opts->batch < 1) { WHY("seq_len %d / batch %d out of range", T, opts->batch); return KVQ_ERR_ARG; }
    size_t n_available = n_tokens / (size_t)T, n_windows = n_available;
    if (opts->max_windows && n_windows > opts->max_windows) n_windows = opts->max_windows;
    if (!n_windows) { WHY("the text has %zu tokens, fewer than one window of %d", n_tokens, T); return KVQ_ERR_DATA; }
    for (size_t i = 0; i < n_sims; i++)
        if (sims[i].n_layers != m->cfg.n_layers || sims[i].kv_dim != (uint32_t)(m->cfg.n_kv_heads * m->cfg.head_dim)) {
            WHY("simulation %zu (%s) is for %d layers x %u channels, the model has %d x %d", i,
                kvq_method_name(sims[i].method), sims[i].n_layers, sims[i].kv_dim, m->cfg.n_layers,
                m->cfg.n_kv_heads * m->cfg.head_dim);
            return KVQ_ERR_MISMATCH;
        }
    int B = (size_t)opts->batch < n_windows ? opts->batch : (int)n_windows;
    size_t n_pred = n_windows * (size_t)(T - 1);
    eval_bufs b;
    kvq_status st = bufs_alloc(&b, (size_t)B, (size_t)T, (size_t)V, n_sims, n_pred);
    if (st != KVQ_OK) { WHY("cannot allocate evaluation buffers (batch %d x %d tokens x %d vocab)", B, T, V); bufs_free(&b); return st; }
    kvq_engine *e = NULL;
    kvq_engine_opts eo = {.batch = B, .seq_len = T, .backward = 0};
    st = kvq_engine_init(&e, m, &eo, why, why_len);
    for (size_t i = 0; i < n_sims; i++) {
        memset(&sims[i].k_bits, 0, sizeof sims[i].k_bits);
        memset(&sims[i].v_bits, 0, sizeof sims[i].v_bits);
    }
    double ref_nll = 0.0, ref_seconds = 0.0;
    size_t pos_base = 0;
    for (size_t w0 = 0; st == KVQ_OK && w0 < n_windows; w0 += (size_t)B) {
        int nw = n_windows - w0 < (size_t)B ? (int)(n_windows - w0) : B;
        const int32_t *toks = tokens + w0 * (size_t)T;
        st = reference_batch(e, toks, nw, T, V, &b, &ref_nll, &ref_seconds, why, why_len);
        size_t pos = pos_base;
        for (size_t i = 0; i < n_sims && st == KVQ_OK; i++) {
            kvq_engine_set_hook(e, sim_hook, &sims[i]);
            double t0 = now_s();
            st = kvq_engine_forward(e, toks, nw, NULL, why, why_len);
            b.acc[i].seconds += now_s() - t0;
            pos = pos_base;
            if (st == KVQ_OK) score_batch(e, nw, T, V, b.ref_logits, b.ref_lse, b.ref_top, &b.acc[i], &pos);
        }
        pos_base += (size_t)nw * (size_t)(T - 1);
        if (opts->progress) opts->progress(opts->progress_user, w0 + (size_t)nw, n_windows);
    }
    kvq_engine_free(e);
    for (size_t i = 0; st == KVQ_OK && i < n_sims; i++) {
        finish_result(&results[i], &sims[i], &b.acc[i], n_windows, T, ref_nll, ref_seconds);
        results[i].n_available = n_available;
    }
    bufs_free(&b);
    return st;
}

kvq_status kvq_eval_sim_init(kvq_kv_sim *s, kvq_method method, uint32_t bits, const kvq_model *model,
                             const kvq_codebook *cb, const kvq_key_range *range, char *why,
                             size_t why_len) {
    if (!s || !model) return KVQ_ERR_ARG;
    if (method != KVQ_METHOD_KVQUANT)
        return kvq_kv_sim_init_baseline(s, method, bits, model->cfg.n_layers, (uint32_t)model->cfg.n_kv_heads,
                                        (uint32_t)model->cfg.head_dim, range, why, why_len);
    if (!cb) { WHY("the kvquant method needs a codebook"); return KVQ_ERR_ARG; }
    kvq_model_identity id;
    kvq_model_identity_of(model, &id);
    kvq_status st = kvq_codebook_check_model(cb, &id, why, why_len);
    if (st == KVQ_OK) st = kvq_kv_sim_init_codebook(s, cb, why, why_len);
    return st;
}

kvq_status kvq_eval_parse_bits(const char *list, uint32_t *bits, size_t cap, size_t *n) {
    *n = 0;
    const char *p = list;
    while (p && *p) {
        char *end;
        unsigned long b = strtoul(p, &end, 10);
        if (end == p || (*end && *end != ',') || b < 1 || b > KVQ_MAX_BITS || *n >= cap) return KVQ_ERR_ARG;
        bits[(*n)++] = (uint32_t)b;
        p = *end ? end + 1 : end;
    }
    return *n ? KVQ_OK : KVQ_ERR_ARG;
}

kvq_status kvq_eval_parse_methods(const char *list, kvq_method *methods, size_t cap, size_t *n) {
    *n = 0;
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[32];
        if (len == 0 || len >= sizeof name || *n >= cap) return KVQ_ERR_ARG;
        memcpy(name, p, len);
        name[len] = 0;
        if (kvq_method_parse(name, &methods[*n]) != KVQ_OK) return KVQ_ERR_ARG;
        (*n)++;
        p = comma ? comma + 1 : p + len;
    }
    return *n ? KVQ_OK : KVQ_ERR_ARG;
}
