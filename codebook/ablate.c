/* ablate.c — `kvq ablate` end to end (ablate.h): capture or reuse, per-channel key ranges for the
 * int rungs, one fitted codebook per KVQuant rung and bit width (fit.h, layer by layer), one
 * evaluation of everything against a shared reference pass (eval.h), the report files
 * (ablate_report.c). A capture it is not given is made with the capture library (capture.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ablate.h"
#include "capture.h"
#include "capture_h5.h"
#include "fit.h"
#include "tokenizer.h"

#define WHY(...) do { if (why && why_len) snprintf(why, why_len, __VA_ARGS__); } while (0)

static const kvq_ablate_config CONFIGS[] = {
    {"int", "int: per-token K (post-RoPE) and V", "int per-token", 1, KVQ_METHOD_INT, 0, 0, 0, 0},
    {"int-chan-post", "+ per-channel K", "+ per-channel K", 1, KVQ_METHOD_INT_CHAN_POST, 0, 0, 0, 0},
    {"int-chan-pre", "+ pre-RoPE K", "+ pre-RoPE K", 1, KVQ_METHOD_INT_CHAN_PRE, 0, 0, 0, 0},
    {"nuq-unweighted", "+ nuq, unweighted k-means", "+ nuq unweighted", 1, KVQ_METHOD_KVQUANT, KVQ_WEIGHT_NONE, 0, 0, 0},
    {"nuq-fisher", "nuq, Fisher-weighted k-means (replaces unweighted)", "nuq Fisher", 1, KVQ_METHOD_KVQUANT, KVQ_WEIGHT_FISHER_SCALED, 0, 0, 0},
    {"outliers", "+ 1% dense-and-sparse", "+ 1% outliers", 1, KVQ_METHOD_KVQUANT, KVQ_WEIGHT_FISHER_SCALED, 0.01f, 0, 0},
    {"sink", "+ attention sink (1 token fp16)", "+ sink", 1, KVQ_METHOD_KVQUANT, KVQ_WEIGHT_FISHER_SCALED, 0.01f, 1, 0},
    {"qnorm", "+ Q-Norm", "+ Q-Norm", 1, KVQ_METHOD_KVQUANT, KVQ_WEIGHT_FISHER_SCALED, 0.01f, 1, 1},
    {"nf", "NormalFloat, per token (K post-RoPE)", "nf", 0, KVQ_METHOD_NF, 0, 0, 0, 0},
    {"atom", "ATOM-style: per token, groups of 128", "ATOM g128", 0, KVQ_METHOD_ATOM, 0, 0, 0, 0},
    {"flexgen", "FlexGen-style: per token, groups of 64", "FlexGen g64", 0, KVQ_METHOD_FLEXGEN, 0, 0, 0, 0},
    {"kivi", "KIVI: K per channel / V per token in 32s, last 128 fp16", "KIVI", 0, KVQ_METHOD_KIVI, 0, 0, 0, 0},
};
enum { N_CONFIGS = sizeof CONFIGS / sizeof CONFIGS[0] };

const kvq_ablate_config *kvq_ablate_configs(size_t *n) {
    *n = N_CONFIGS;
    return CONFIGS;
}

void kvq_ablate_opts_default(kvq_ablate_opts *o) {
    memset(o, 0, sizeof *o);
    o->bits[0] = 4;
    o->bits[1] = 3;
    o->bits[2] = 2;
    o->n_bits = 3;
    o->samples = 16;
    o->calib_seq_len = 512;
    o->seq_len = 512;
    o->batch = 4;
    o->n_threads = 1;
}

void kvq_ablate_report_free(kvq_ablate_report *r) {
    if (!r) return;
    free(r->cells);
    memset(r, 0, sizeof *r);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void logf_(const kvq_ablate_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const kvq_ablate_opts *o, const char *fmt, ...) {
    if (!o->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(o->user, line);
}

/* Everything one run holds; released by state_free. */
typedef struct ablate_state {
    kvq_model model;
    kvq_tokenizer *tok;
    kvq_capture_reader *cap;
    kvq_key_range range;
    kvq_codebook *cbs;          /* (N_CONFIGS, n_bits); only KVQUANT configs allocated */
    kvq_kv_sim *sims;           /* (1 + N_CONFIGS * n_bits): fp16 first */
    size_t n_sims, n_cbs;
    int32_t *ids;
    size_t n_ids;
} ablate_state;

static void state_free(ablate_state *s) {
    for (size_t i = 0; s->sims && i < s->n_sims; i++) kvq_kv_sim_free(&s->sims[i]);
    free(s->sims);
    for (size_t i = 0; s->cbs && i < s->n_cbs; i++) kvq_codebook_free(&s->cbs[i]);
    free(s->cbs);
    free(s->ids);
    kvq_key_range_free(&s->range);
    kvq_capture_reader_free(s->cap);
    kvq_tokenizer_free(s->tok);
    kvq_model_free(&s->model);
}

/* Per-channel key ranges over the capture's own windows (same text, same starts). */
static kvq_status key_ranges(const kvq_ablate_opts *o, ablate_state *s, char *why, size_t why_len) {
    const kvq_capture_meta *meta = kvq_capture_reader_meta(s->cap);
    uint32_t ns = kvq_capture_n_samples(s->cap);
    const kvq_capture_sample *smp = kvq_capture_samples(s->cap);
    int32_t *ids = NULL;
    size_t n = 0;
    kvq_status st = kvq_eval_tokenize_file(s->tok, o->calib_path, &ids, &n, why, why_len);
    if (st == KVQ_OK && meta->text_tokens != n) {
        WHY("%s tokenizes to %zu tokens but the capture was made from %llu: another text or tokenizer",
            o->calib_path, n, (unsigned long long)meta->text_tokens);
        st = KVQ_ERR_MISMATCH;
    }
    uint64_t *starts = st == KVQ_OK ? malloc((size_t)ns * sizeof *starts) : NULL;
    if (st == KVQ_OK && !starts && ns) st = KVQ_ERR_NOMEM;
    for (uint32_t i = 0; st == KVQ_OK && i < ns; i++) starts[i] = smp[i].window_start;
    if (st == KVQ_OK)
        st = kvq_key_range_init(&s->range, s->model.cfg.n_layers, (uint32_t)(s->model.cfg.n_kv_heads * s->model.cfg.head_dim));
    if (st == KVQ_OK) st = kvq_eval_key_range(&s->model, ids, n, starts, ns, (int)meta->seq_len, &s->range, why, why_len);
    free(starts);
    free(ids);
    return st;
}

/* Allocate the codebook of KVQuant config c at bit width b. */
static kvq_status codebook_for(const kvq_ablate_opts *o, ablate_state *s, const kvq_ablate_config *c,
                               uint32_t bits, kvq_codebook *cb) {
    uint32_t kv_dim = (uint32_t)(s->model.cfg.n_kv_heads * s->model.cfg.head_dim);
    kvq_status st = kvq_codebook_alloc(cb, (uint32_t)s->model.cfg.n_layers, kv_dim, bits, bits, 1);
    if (st != KVQ_OK) return st;
    kvq_model_identity_of(&s->model, &cb->model);
    cb->n_sink = c->n_sink;
    const kvq_capture_meta *meta = kvq_capture_reader_meta(s->cap);
    kvq_provenance *p = &cb->provenance;
    snprintf(p->tool_version, sizeof p->tool_version, "%s", KVQ_VERSION);
    snprintf(p->calib_text, sizeof p->calib_text, "%s", o->calib_path);
    snprintf(p->calib_text_sha256, sizeof p->calib_text_sha256, "%s", meta->text_sha256);
    p->samples = kvq_capture_n_samples(s->cap);
    p->seq_len = meta->seq_len;
    p->seed = meta->seed;
    p->weighting = c->weighting;
    return KVQ_OK;
}

static void fit_opts_for(const kvq_ablate_opts *o, const kvq_ablate_config *c, uint32_t bits, kvq_fit_opts *f) {
    kvq_fit_opts_default(f);
    f->k_bits = f->v_bits = bits;
    f->weighting = c->weighting;
    f->outlier_fraction = c->outlier_fraction;
    f->outlier_cap_ref = c->outlier_fraction > 0.0f;   /* m = ceil(p/2 * g): the runtime's bound */
    f->n_sink = c->n_sink;
    f->qnorm = c->qnorm;
    f->n_threads = o->n_threads;
}

/* Sink mask of the capture rows: the first n_sink rows of every sample. */
static uint8_t *sink_mask(const kvq_capture_reader *cap, uint64_t n_rows, uint32_t n_sink) {
    uint8_t *m = calloc((size_t)n_rows ? (size_t)n_rows : 1, 1);
    const kvq_capture_sample *smp = kvq_capture_samples(cap);
    for (uint32_t i = 0; m && i < kvq_capture_n_samples(cap); i++)
        for (uint64_t j = 0; j < n_sink && j < smp[i].length; j++) m[smp[i].row_start + j] = 1;
    return m;
}

/* One layer's capture tensors, read once and fitted for every KVQuant config and bit width. */
static kvq_status fit_layer_all(const kvq_ablate_opts *o, ablate_state *s, uint32_t layer,
                                const uint8_t *sink1, char *why, size_t why_len) {
    float *t[KVQ_CAPTURE_N_TENSORS] = {0};
    uint64_t n_rows = 0;
    kvq_status st = KVQ_OK;
    for (int i = 0; i < KVQ_CAPTURE_N_TENSORS && st == KVQ_OK; i++)
        st = kvq_capture_read_all(s->cap, layer, (kvq_capture_tensor)i, &t[i], &n_rows, why, why_len);
    kvq_fit_input in = {.layer = layer, .k = t[KVQ_CAPTURE_K], .v = t[KVQ_CAPTURE_V],
                        .fk = t[KVQ_CAPTURE_FISHER_K], .fv = t[KVQ_CAPTURE_FISHER_V], .n_rows = (size_t)n_rows,
                        .kv_dim = kvq_capture_kv_dim(s->cap), .head_dim = (uint32_t)s->model.cfg.head_dim};
    char sub[384] = "";
    for (size_t c = 0; c < N_CONFIGS && st == KVQ_OK; c++) {
        if (CONFIGS[c].method != KVQ_METHOD_KVQUANT) continue;
        for (size_t b = 0; b < o->n_bits && st == KVQ_OK; b++) {
            kvq_codebook *cb = &s->cbs[c * o->n_bits + b];
            kvq_fit_opts f;
            fit_opts_for(o, &CONFIGS[c], o->bits[b], &f);
            in.sink = CONFIGS[c].n_sink ? sink1 : NULL;
            kvq_fit_layer_report rep;
            st = kvq_fit_layer(&f, &in, &cb->layers[layer], &rep, sub, sizeof sub);
            if (st != KVQ_OK) { WHY("fit %s %u-bit layer %u: %s", CONFIGS[c].id, o->bits[b], layer, sub); break; }
            if (cb->diag.k_objective) {
                cb->diag.k_objective[layer] = rep.k_objective;
                cb->diag.v_objective[layer] = rep.v_objective;
                cb->diag.k_outlier_rate[layer] = rep.k_outlier_rate;
                cb->diag.v_outlier_rate[layer] = rep.v_outlier_rate;
            }
        }
    }
    for (int i = 0; i < KVQ_CAPTURE_N_TENSORS; i++) free(t[i]);
    return st;
}

static kvq_status fit_all(const kvq_ablate_opts *o, ablate_state *s, char *why, size_t why_len) {
    const kvq_capture_meta *meta = kvq_capture_reader_meta(s->cap);
    if (!meta->fisher || meta->n_captured != (uint32_t)s->model.cfg.n_layers) {
        WHY("the capture must hold Fisher tensors for every layer (fisher %d, %u of %d layers)", meta->fisher,
            meta->n_captured, s->model.cfg.n_layers);
        return KVQ_ERR_MISSING;
    }
    s->n_cbs = N_CONFIGS * o->n_bits;
    s->cbs = calloc(s->n_cbs, sizeof *s->cbs);
    if (!s->cbs) return KVQ_ERR_NOMEM;
    kvq_status st = KVQ_OK;
    for (size_t c = 0; c < N_CONFIGS && st == KVQ_OK; c++)
        for (size_t b = 0; b < o->n_bits && st == KVQ_OK; b++)
            if (CONFIGS[c].method == KVQ_METHOD_KVQUANT)
                st = codebook_for(o, s, &CONFIGS[c], o->bits[b], &s->cbs[c * o->n_bits + b]);
    uint8_t *sink1 = st == KVQ_OK ? sink_mask(s->cap, kvq_capture_n_rows(s->cap), 1) : NULL;
    if (st == KVQ_OK && !sink1) st = KVQ_ERR_NOMEM;
    for (int l = 0; l < s->model.cfg.n_layers && st == KVQ_OK; l++) {
        double t0 = now_s();
        st = fit_layer_all(o, s, (uint32_t)l, sink1, why, why_len);
        logf_(o, "fit: layer %d of %d (%.1f s)", l + 1, s->model.cfg.n_layers, now_s() - t0);
    }
    free(sink1);
    for (size_t i = 0; i < s->n_cbs && st == KVQ_OK; i++)
        if (s->cbs[i].layers) st = kvq_codebook_validate(&s->cbs[i], why, why_len);
    return st;
}

/* fp16 first, then every config at every bit width (the codebooks' or the baselines'). */
static kvq_status build_sims(const kvq_ablate_opts *o, ablate_state *s, char *why, size_t why_len) {
    s->sims = calloc(1 + N_CONFIGS * o->n_bits, sizeof *s->sims);
    if (!s->sims) return KVQ_ERR_NOMEM;
    kvq_status st = kvq_eval_sim_init(&s->sims[0], KVQ_METHOD_FP16, 16, &s->model, NULL, NULL, why, why_len);
    if (st == KVQ_OK) s->n_sims = 1;
    for (size_t c = 0; c < N_CONFIGS && st == KVQ_OK; c++)
        for (size_t b = 0; b < o->n_bits && st == KVQ_OK; b++) {
            st = kvq_eval_sim_init(&s->sims[s->n_sims], CONFIGS[c].method, o->bits[b], &s->model,
                                   &s->cbs[c * o->n_bits + b], &s->range, why, why_len);
            if (st == KVQ_OK) s->n_sims++;
        }
    return st;
}

static void capture_progress(void *user, uint32_t done, uint32_t total, double loss, double seconds) {
    if (done) logf_(user, "capture: sample %u of %u (loss %.3f, %.1f s)", done, total, loss, seconds);
}

/* Capture o->samples windows of the calibration text into `path` (capture.h, `kvq capture`). */
static kvq_status capture_new(const kvq_ablate_opts *o, const char *path, char *why, size_t why_len) {
    kvq_capture_opts co;
    kvq_capture_opts_init(&co);
    co.model_path = o->model_path;
    co.text_path = o->calib_path;
    co.tokenizer_path = o->tokenizer_path;
    co.out_path = path;
    co.samples = o->samples;
    co.seq_len = o->calib_seq_len;
    co.seed = o->seed;
    co.progress = capture_progress;
    co.progress_user = (void *)o;
    kvq_capture_result res;
    return kvq_capture_run(&co, &res, why, why_len);
}

/* Reuse `path` when it exists (checked against the model), else capture into it. */
static kvq_status obtain_capture(const kvq_ablate_opts *o, ablate_state *s, const char *path,
                                 int *reused, char *why, size_t why_len) {
    struct stat sb;
    *reused = stat(path, &sb) == 0;
    kvq_status st = *reused ? KVQ_OK : capture_new(o, path, why, why_len);
    if (st == KVQ_OK) st = kvq_capture_open(path, &s->cap, why, why_len);
    if (st != KVQ_OK) return st;
    const kvq_capture_meta *meta = kvq_capture_reader_meta(s->cap);
    kvq_model_identity id;
    kvq_model_identity_of(&s->model, &id);
    if (meta->model.fingerprint != id.fingerprint || meta->model.n_layers != id.n_layers ||
        kvq_capture_kv_dim(s->cap) != kvq_kv_dim(&id)) {
        WHY("%s was captured from another model (fingerprint %016llx, this model %016llx)", path,
            (unsigned long long)meta->model.fingerprint, (unsigned long long)id.fingerprint);
        return KVQ_ERR_MISMATCH;
    }
    if (!kvq_capture_n_samples(s->cap)) { WHY("%s holds no complete sample", path); return KVQ_ERR_DATA; }
    return KVQ_OK;
}

static kvq_status check_opts(const kvq_ablate_opts *o, char *why, size_t why_len) {
    if (!o->model_path || !o->calib_path || !o->text_path || !o->out_dir) { WHY("model, calibration text, evaluation text and output directory are required"); return KVQ_ERR_ARG; }
    if (o->n_bits < 1 || o->n_bits > KVQ_ABLATE_MAX_BITS) { WHY("1..%d bit widths", KVQ_ABLATE_MAX_BITS); return KVQ_ERR_ARG; }
    for (size_t b = 0; b < o->n_bits; b++)
        if (o->bits[b] < 1 || o->bits[b] > KVQ_MAX_BITS) { WHY("bits %u outside 1..%d", o->bits[b], KVQ_MAX_BITS); return KVQ_ERR_ARG; }
    if (o->samples < 1 || o->calib_seq_len < 2 || o->seq_len < 2 || o->batch < 1 || o->n_threads < 1) {
        WHY("samples, batch and threads must be >= 1, sequence lengths >= 2"); return KVQ_ERR_ARG;
    }
    return KVQ_OK;
}

/* Model, tokenizer, output directory, capture, key ranges, codebooks and simulations. */
static kvq_status prepare(const kvq_ablate_opts *o, ablate_state *s, kvq_ablate_report *rep, char *why,
                          size_t why_len) {
    kvq_status st = kvq_model_load(o->model_path, &s->model, why, why_len);
    if (st == KVQ_OK)
        st = o->tokenizer_path ? kvq_tokenizer_load(o->tokenizer_path, &s->tok, why, why_len)
                               : kvq_tokenizer_load_for_model(o->model_path, &s->tok, why, why_len);
    if (st == KVQ_OK && mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
        WHY("%s: cannot create: %s", o->out_dir, strerror(errno));
        st = KVQ_ERR_IO;
    }
    if (st != KVQ_OK) return st;
    if (o->capture_path) snprintf(rep->capture, sizeof rep->capture, "%s", o->capture_path);
    else snprintf(rep->capture, sizeof rep->capture, "%s/capture.h5", o->out_dir);
    double t0 = now_s();
    st = obtain_capture(o, s, rep->capture, &rep->capture_reused, why, why_len);
    logf_(o, "capture: %s %s", rep->capture, rep->capture_reused ? "reused" : "written");
    if (st == KVQ_OK) st = key_ranges(o, s, why, why_len);
    rep->capture_s = now_s() - t0;
    t0 = now_s();
    if (st == KVQ_OK) st = fit_all(o, s, why, why_len);
    rep->fit_s = now_s() - t0;
    if (st == KVQ_OK) st = build_sims(o, s, why, why_len);
    return st;
}

kvq_status kvq_ablate_run(const kvq_ablate_opts *o, kvq_ablate_report *rep, char *why,
                          size_t why_len) {
    if (!o || !rep) return KVQ_ERR_ARG;
    memset(rep, 0, sizeof *rep);
    kvq_status st = check_opts(o, why, why_len);
    if (st != KVQ_OK) return st;
    ablate_state s;
    memset(&s, 0, sizeof s);
    st = prepare(o, &s, rep, why, why_len);
    if (st == KVQ_OK) st = kvq_eval_tokenize_file(s.tok, o->text_path, &s.ids, &s.n_ids, why, why_len);
    kvq_eval_result *res = st == KVQ_OK ? calloc(s.n_sims, sizeof *res) : NULL;
    if (st == KVQ_OK && !res) st = KVQ_ERR_NOMEM;
    if (st == KVQ_OK) {
        kvq_eval_opts eo = {.seq_len = o->seq_len, .batch = o->batch, .max_windows = o->max_windows,
                            .progress = o->progress, .progress_user = o->user};
        double t0 = now_s();
        st = kvq_eval_run(&s.model, s.ids, s.n_ids, &eo, s.sims, s.n_sims, res, why, why_len);
        rep->eval_s = now_s() - t0;
    }
    if (st == KVQ_OK) {
        snprintf(rep->model, sizeof rep->model, "%s", o->model_path);
        snprintf(rep->calib, sizeof rep->calib, "%s", o->calib_path);
        snprintf(rep->text, sizeof rep->text, "%s", o->text_path);
        const kvq_capture_meta *meta = kvq_capture_reader_meta(s.cap);
        rep->samples = kvq_capture_n_samples(s.cap);
        rep->calib_seq_len = meta->seq_len;
        rep->seq_len = o->seq_len;
        memcpy(rep->bits, o->bits, sizeof rep->bits);
        rep->n_bits = o->n_bits;
        rep->n_configs = N_CONFIGS;
        rep->fp16 = res[0];
        rep->cells = malloc((s.n_sims - 1) * sizeof *rep->cells);
        if (!rep->cells) st = KVQ_ERR_NOMEM;
        else memcpy(rep->cells, res + 1, (s.n_sims - 1) * sizeof *rep->cells);
    }
    free(res);
    state_free(&s);
    if (st == KVQ_OK) st = kvq_ablate_write(rep, o->out_dir, why, why_len);
    return st;
}
