/* fit.c — one layer of `kvq fit` (fit.h): data checks, key thresholds, the k-means input of K and
 * V (thresholds.h), the weighted k-means (kmeans.h) and Q-Norm (qnorm.h); then the driver over a
 * capture file (calib/capture_h5.h), one layer in memory at a time. Not the file format, not the CLI. */
#include "fit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture_h5.h"
#include "kmeans.h"
#include "qnorm.h"
#include "thresholds.h"

static void set_why(char *why, size_t len, const char *fmt, ...) {
    if (!why || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kvq_fit_opts_default(kvq_fit_opts *o) {
    memset(o, 0, sizeof *o);
    o->k_bits = o->v_bits = 3;
    o->outlier_fraction = 0.01f;
    o->outlier_cap_ref = 1;   /* m = ceil(p/2 g): the reference's 21 at kv_dim 4096, 1 at 128 */
    o->qnorm = KVQ_QNORM_AUTO;
    o->n_sink = 1;
    o->value_axis = KVQ_NORM_PER_TOKEN;
    o->weighting = KVQ_WEIGHT_FISHER_SCALED;
    o->solver = KVQ_SOLVER_EXACT;
    o->kmeans_iters = 50;
    o->hist_bins = KVQ_KMEANS_DEFAULT_BINS;
    o->n_threads = 1;
}

/* ---- data checks --------------------------------------------------------------------------- */
typedef struct scan_ctx {
    const float *a;      /* (n_rows, dim) */
    size_t n_rows;
    uint32_t dim;
    int fisher;          /* 1: finite and >= 0; 0: finite and within fp16 range */
    size_t *bad;         /* (n_tasks) first bad element index or SIZE_MAX */
} scan_ctx;

enum { SCAN_ROWS = 256 };

static void scan_task(void *vctx, size_t t) {
    const scan_ctx *p = vctx;
    size_t r1 = (t + 1) * SCAN_ROWS < p->n_rows ? (t + 1) * SCAN_ROWS : p->n_rows;
    p->bad[t] = SIZE_MAX;
    for (size_t i = t * SCAN_ROWS * p->dim; i < r1 * p->dim; i++) {
        float v = p->a[i];
        /* fp16's largest finite value is 65504; beyond 65520 rounding gives Inf */
        if (p->fisher ? !(isfinite(v) && v >= 0) : !(fabsf(v) < 65520.0f)) { p->bad[t] = i; return; }
    }
}

static kvq_status scan_tensor(const float *a, size_t n_rows, uint32_t dim, int fisher, int n_threads,
                              uint32_t layer, const char *name, char *why, size_t why_len) {
    size_t n_tasks = (n_rows + SCAN_ROWS - 1) / SCAN_ROWS;
    scan_ctx p = {a, n_rows, dim, fisher, malloc((n_tasks + 1) * sizeof(size_t))};
    if (!p.bad) return KVQ_ERR_NOMEM;
    kvq_parallel_for(n_tasks, n_threads, scan_task, &p);
    kvq_status st = KVQ_OK;
    for (size_t t = 0; t < n_tasks; t++) {
        if (p.bad[t] == SIZE_MAX) continue;
        size_t i = p.bad[t];
        set_why(why, why_len, "layer %u, tensor %s, row %zu, column %zu: %g (%s)", layer, name, i / dim,
                i % dim, (double)a[i], fisher ? "Fisher must be finite and >= 0" : "must be finite and within fp16 range");
        st = KVQ_ERR_NONFINITE;
        break;
    }
    free(p.bad);
    return st;
}

static kvq_status check_input(const kvq_fit_opts *o, const kvq_fit_input *in, char *why, size_t why_len) {
    if (o->weighting != KVQ_WEIGHT_NONE && (!in->fk || !in->fv)) {
        set_why(why, why_len, "layer %u: weighting '%s' needs Fisher tensors, and the data has none "
                "(capture with Fisher, or use --weight none)", in->layer,
                o->weighting == KVQ_WEIGHT_FISHER ? "fisher" : "fisher-scaled");
        return KVQ_ERR_MISSING;
    }
    const float *t[4] = {in->k, in->v, in->fk, in->fv};
    static const char *names[4] = {"k_pre_rope", "v", "fisher_k", "fisher_v"};
    for (int i = 0; i < (o->weighting != KVQ_WEIGHT_NONE ? 4 : 2); i++) {
        kvq_status st = scan_tensor(t[i], in->n_rows, in->kv_dim, i >= 2, o->n_threads, in->layer,
                                    names[i], why, why_len);
        if (st != KVQ_OK) return st;
    }
    return KVQ_OK;
}

/* ---- one tensor ---------------------------------------------------------------------------- */
static uint32_t cap_for(const kvq_fit_opts *o, uint32_t group) {
    if (!(o->outlier_fraction > 0)) return 0;
    if (o->outlier_cap_ref) return (uint32_t)ceil((double)o->outlier_fraction / 2 * group);
    return o->outlier_cap;
}

/* Normalise, fit the datatype, Q-Norm: fills t's centroids and settings. */
static kvq_status fit_tensor(const kvq_fit_opts *o, const kvq_fit_input *in, int is_key,
                             const uint8_t *use, kvq_tensor_codebook *t, double *objective,
                             double *outlier_rate, size_t *n_points, int *qnorm_used, char *why,
                             size_t why_len) {
    uint32_t bits = is_key ? o->k_bits : o->v_bits;
    kvq_norm_axis axis = is_key ? KVQ_NORM_PER_CHANNEL : o->value_axis;
    uint32_t group = axis == KVQ_NORM_PER_TOKEN_HEAD ? in->head_dim : in->kv_dim;
    kvq_norm_spec spec = {axis, in->kv_dim, in->head_dim, t->zero_point, t->half_range,
                          o->outlier_fraction, cap_for(o, group), o->weighting};
    kvq_norm_points pts;
    char sub[256] = "";
    const char *name = is_key ? "keys" : "values";
    kvq_status st = kvq_norm_collect(&spec, is_key ? in->k : in->v, is_key ? in->fk : in->fv, in->n_rows,
                                     use, o->n_threads, &pts, sub, sizeof sub);
    if (st != KVQ_OK) { set_why(why, why_len, "layer %u %s: %s", in->layer, name, sub); return st; }
    kvq_kmeans_opts ko;
    kvq_kmeans_opts_default(&ko, 1u << bits);
    ko.solver = o->solver;
    ko.max_iters = o->kmeans_iters;
    ko.seed = o->kmeans_seed;
    ko.hist_bins = o->hist_bins;
    ko.n_threads = o->n_threads;
    kvq_kmeans_result res;
    st = kvq_kmeans_fit(pts.x, pts.w, pts.n, &ko, t->centroids, &res, sub, sizeof sub);
    int qn = o->qnorm == KVQ_QNORM_AUTO ? bits == 2 : o->qnorm;
    kvq_qnorm q = {0};
    if (st == KVQ_OK && qn) st = kvq_qnorm_compute(pts.x, pts.n, t->centroids, 1u << bits, o->n_threads, &q, sub, sizeof sub);
    if (st != KVQ_OK) {
        set_why(why, why_len, "layer %u %s (%zu points): %s", in->layer, name, pts.n, sub);
    } else {
        t->bits = bits;
        t->axis = axis;
        t->qnorm = qn;
        t->qnorm_scale = qn ? q.scale : 1.0f;
        t->qnorm_offset = qn ? q.offset : 0.0f;
        t->outlier_fraction = o->outlier_fraction;
        t->outlier_cap = spec.outlier_cap;
        t->residual = KVQ_OUTLIER_EXACT;
        *objective = res.objective;
        *outlier_rate = pts.n_elements ? (double)pts.n_outliers / (double)pts.n_elements : 0;
        *n_points = pts.n;
        *qnorm_used = qn;
    }
    kvq_norm_points_free(&pts);
    return st;
}

static kvq_status check_opts(const kvq_fit_opts *o, const kvq_fit_input *in, const kvq_layer_codebook *out,
                             char *why, size_t why_len) {
    const char *bad = NULL;
    if (o->k_bits < 1 || o->k_bits > KVQ_MAX_BITS || o->v_bits < 1 || o->v_bits > KVQ_MAX_BITS) bad = "bits must be 1..8";
    else if (!(o->outlier_fraction >= 0 && o->outlier_fraction < 1)) bad = "outlier fraction must be in [0, 1)";
    else if (o->value_axis != KVQ_NORM_PER_TOKEN && o->value_axis != KVQ_NORM_PER_TOKEN_HEAD) bad = "value axis";
    else if (o->n_threads < 1) bad = "threads must be >= 1";
    else if (!in->k || !in->v || !in->kv_dim || in->kv_dim >= 65536) bad = "K/V missing or kv_dim outside 1..65535";
    else if (o->value_axis == KVQ_NORM_PER_TOKEN_HEAD && (!in->head_dim || in->kv_dim % in->head_dim))
        bad = "head_dim must divide kv_dim";
    else if (!out->k.centroids || !out->v.centroids || !out->k.zero_point || !out->k.half_range ||
             out->k.bits != o->k_bits || out->v.bits != o->v_bits)
        bad = "output codebook not allocated for these bit widths";
    if (!bad) return KVQ_OK;
    set_why(why, why_len, "fit: %s", bad);
    return KVQ_ERR_ARG;
}

kvq_status kvq_fit_layer(const kvq_fit_opts *o, const kvq_fit_input *in, kvq_layer_codebook *out,
                         kvq_fit_layer_report *rep, char *why, size_t why_len) {
    if (!o || !in || !out || !rep) return KVQ_ERR_ARG;
    double t0 = now_s();
    memset(rep, 0, sizeof *rep);
    rep->layer = in->layer;
    kvq_status st = check_opts(o, in, out, why, why_len);
    if (st == KVQ_OK) st = check_input(o, in, why, why_len);
    if (st != KVQ_OK) return st;
    uint8_t *use = malloc(in->n_rows + 1), *use_thr = malloc(in->n_rows + 1);
    if (!use || !use_thr) { free(use); free(use_thr); return KVQ_ERR_NOMEM; }
    for (size_t i = 0; i < in->n_rows; i++) {
        use[i] = !(in->sink && in->sink[i]);
        use_thr[i] = o->sink_in_key_thresholds ? 1 : use[i];
    }
    char sub[256] = "";
    st = kvq_key_thresholds(in->k, in->n_rows, in->kv_dim, use_thr, o->outlier_fraction, o->n_threads,
                            out->k.zero_point, out->k.half_range, sub, sizeof sub);
    if (st != KVQ_OK) set_why(why, why_len, "layer %u: %s", in->layer, sub);
    if (st == KVQ_OK)
        st = fit_tensor(o, in, 1, use, &out->k, &rep->k_objective, &rep->k_outlier_rate, &rep->k_points,
                        &rep->k_qnorm, why, why_len);
    if (st == KVQ_OK)
        st = fit_tensor(o, in, 0, use, &out->v, &rep->v_objective, &rep->v_outlier_rate, &rep->v_points,
                        &rep->v_qnorm, why, why_len);
    free(use);
    free(use_thr);
    rep->seconds = now_s() - t0;
    return st;
}

/* ---- a whole capture ------------------------------------------------------------------------ */
/* sink[row] = 1 for the first n_sink rows of every sample. */
static kvq_status sink_rows(const kvq_capture_reader *r, uint32_t n_sink, uint64_t n_rows, uint8_t **out,
                            char *why, size_t why_len) {
    uint8_t *sink = calloc(n_rows + 1, 1);
    if (!sink) return KVQ_ERR_NOMEM;
    const kvq_capture_sample *s = kvq_capture_samples(r);
    for (uint32_t i = 0; i < kvq_capture_n_samples(r); i++) {
        if (s[i].row_start > n_rows || s[i].length > n_rows - s[i].row_start) {
            set_why(why, why_len, "sample %u: rows %llu+%llu beyond the %llu rows", i,
                    (unsigned long long)s[i].row_start, (unsigned long long)s[i].length,
                    (unsigned long long)n_rows);
            free(sink);
            return KVQ_ERR_BOUNDS;
        }
        for (uint64_t j = 0; j < n_sink && j < s[i].length; j++) sink[s[i].row_start + j] = 1;
    }
    *out = sink;
    return KVQ_OK;
}

static kvq_status check_capture(const kvq_capture_reader *r, const kvq_fit_opts *o, const char *path,
                                char *why, size_t why_len) {
    const kvq_capture_meta *m = kvq_capture_reader_meta(r);
    if (o->weighting != KVQ_WEIGHT_NONE && !m->fisher) {
        set_why(why, why_len, "%s holds no Fisher tensors (captured without Fisher); a Fisher weighting "
                "needs them: capture with Fisher or fit with --weight none", path);
        return KVQ_ERR_MISSING;
    }
    if (kvq_capture_kv_dim(r) != kvq_kv_dim(&m->model) || !m->model.n_layers) {
        set_why(why, why_len, "%s: kv_dim %u disagrees with the model (%u x %u)", path, kvq_capture_kv_dim(r),
                m->model.n_kv_heads, m->model.head_dim);
        return KVQ_ERR_SHAPE;
    }
    for (uint32_t l = 0; l < m->model.n_layers; l++)
        if (kvq_capture_slot(r, l) < 0) {
            set_why(why, why_len, "%s: layer %u was not captured; a codebook needs every layer", path, l);
            return KVQ_ERR_MISSING;
        }
    if (!kvq_capture_n_samples(r)) {
        set_why(why, why_len, "%s holds no complete sample", path);
        return KVQ_ERR_DATA;
    }
    return KVQ_OK;
}

/* dst (cap bytes) = src, or "..." + its tail when too long (the file name is the useful part),
 * never starting inside a UTF-8 sequence. */
static void copy_tail(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n < cap) { memcpy(dst, src, n + 1); return; }
    const char *tail = src + n - (cap - 4);
    while (((unsigned char)*tail & 0xC0) == 0x80) tail++;
    memcpy(dst, "...", 3);
    memcpy(dst + 3, tail, strlen(tail) + 1);
}

static void fill_header(kvq_codebook *cb, const kvq_capture_reader *r, const kvq_fit_opts *o) {
    const kvq_capture_meta *m = kvq_capture_reader_meta(r);
    cb->model = m->model;
    cb->n_sink = o->n_sink;
    kvq_provenance *p = &cb->provenance;
    snprintf(p->tool_version, sizeof p->tool_version, "%s", KVQ_VERSION);
    copy_tail(p->calib_text, sizeof p->calib_text, m->text_path);
    snprintf(p->calib_text_sha256, sizeof p->calib_text_sha256, "%s", m->text_sha256);
    p->samples = kvq_capture_n_samples(r);
    p->seq_len = m->seq_len;
    p->seed = m->seed;
    p->weighting = o->weighting;
    p->solver = o->solver;
    p->kmeans_iters = o->kmeans_iters;
    p->kmeans_seed = o->kmeans_seed;
    p->histogram_bins = o->solver == KVQ_SOLVER_EXACT ? o->hist_bins : 0;
}

/* Read one layer's tensors (Fisher only when weighted) and fit it. */
static kvq_status fit_one(const kvq_capture_reader *r, const kvq_fit_opts *o, uint32_t layer,
                          const uint8_t *sink, kvq_codebook *cb, kvq_fit_layer_report *rep, char *why,
                          size_t why_len) {
    float *t[KVQ_CAPTURE_N_TENSORS] = {NULL};
    uint64_t rows = 0;
    int n_t = o->weighting != KVQ_WEIGHT_NONE ? KVQ_CAPTURE_N_TENSORS : 2;
    kvq_status st = KVQ_OK;
    for (int i = 0; i < n_t && st == KVQ_OK; i++) {
        uint64_t got = 0;
        st = kvq_capture_read_all(r, layer, (kvq_capture_tensor)i, &t[i], &got, why, why_len);
        if (st == KVQ_OK && i && got != rows) {
            set_why(why, why_len, "layer %u: %s has %llu rows, k_pre_rope %llu", layer,
                    kvq_capture_tensor_name((kvq_capture_tensor)i), (unsigned long long)got,
                    (unsigned long long)rows);
            st = KVQ_ERR_SHAPE;
        }
        rows = got;
    }
    if (st == KVQ_OK && rows != kvq_capture_n_rows(r)) {
        set_why(why, why_len, "layer %u: %llu rows, the samples cover %llu", layer, (unsigned long long)rows,
                (unsigned long long)kvq_capture_n_rows(r));
        st = KVQ_ERR_SHAPE;
    }
    if (st == KVQ_OK) {
        const kvq_model_identity *m = &cb->model;
        kvq_fit_input in = {layer, t[0], t[1], t[2], t[3], (size_t)rows, kvq_kv_dim(m), m->head_dim, sink};
        st = kvq_fit_layer(o, &in, &cb->layers[layer], rep, why, why_len);
    }
    for (int i = 0; i < KVQ_CAPTURE_N_TENSORS; i++) free(t[i]);
    return st;
}

kvq_status kvq_fit_capture(const char *capture_path, const kvq_fit_opts *o, kvq_fit_progress_fn cb,
                           void *cb_ctx, kvq_codebook *out, char *why, size_t why_len) {
    if (!capture_path || !o || !out) return KVQ_ERR_ARG;
    memset(out, 0, sizeof *out);
    kvq_capture_reader *r = NULL;
    uint8_t *sink = NULL;
    kvq_status st = kvq_capture_open(capture_path, &r, why, why_len);
    if (st == KVQ_OK) st = check_capture(r, o, capture_path, why, why_len);
    if (st == KVQ_OK) st = sink_rows(r, o->n_sink, kvq_capture_n_rows(r), &sink, why, why_len);
    uint32_t n_layers = st == KVQ_OK ? kvq_capture_reader_meta(r)->model.n_layers : 0;
    if (st == KVQ_OK) {
        st = kvq_codebook_alloc(out, n_layers, kvq_capture_kv_dim(r), o->k_bits, o->v_bits, 1);
        if (st != KVQ_OK) set_why(why, why_len, "allocating the codebook: %s", kvq_status_message(st));
    }
    if (st == KVQ_OK) fill_header(out, r, o);
    if (st == KVQ_OK && cb) cb(cb_ctx, NULL, 0, n_layers);
    for (uint32_t l = 0; l < n_layers && st == KVQ_OK; l++) {
        kvq_fit_layer_report rep;
        st = fit_one(r, o, l, sink, out, &rep, why, why_len);
        if (st != KVQ_OK) break;
        out->diag.k_objective[l] = rep.k_objective;
        out->diag.v_objective[l] = rep.v_objective;
        out->diag.k_outlier_rate[l] = rep.k_outlier_rate;
        out->diag.v_outlier_rate[l] = rep.v_outlier_rate;
        if (cb) cb(cb_ctx, &rep, l + 1, n_layers);
    }
    if (st == KVQ_OK) st = kvq_codebook_validate(out, why, why_len);
    if (st != KVQ_OK) kvq_codebook_free(out);
    free(sink);
    kvq_capture_reader_free(r);
    return st;
}
