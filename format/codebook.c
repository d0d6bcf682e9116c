/* codebook.c — the in-memory codebook (kvq_codebook.h): allocation, release, the semantic checks
 * of docs/format.md §6, the model-identity comparison and the runtime's centroid table. Not the
 * file format: that is codebook_file.c. libc (and libm's fmaf) only. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvq_codebook.h"
#include "kvqc.h"

static kvq_status fail(kvq_status s, char *why, size_t why_len, const char *fmt, ...) {
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return s;
}

void kvq_tensor_codebook_free(kvq_tensor_codebook *t) {
    if (!t) return;
    free(t->centroids);
    free(t->zero_point);
    free(t->half_range);
    t->centroids = t->zero_point = t->half_range = NULL;
}

kvq_status kvq_tensor_codebook_init(kvq_tensor_codebook *t, uint32_t bits, kvq_norm_axis axis,
                                    uint32_t kv_dim) {
    if (!t) return KVQ_ERR_ARG;
    kvq_tensor_codebook_free(t);
    if (bits < 1 || bits > KVQ_MAX_BITS) return KVQ_ERR_ARG;
    if (axis != KVQ_NORM_PER_CHANNEL && axis != KVQ_NORM_PER_TOKEN && axis != KVQ_NORM_PER_TOKEN_HEAD)
        return KVQ_ERR_ARG;
    t->bits = bits;
    t->axis = axis;
    t->qnorm = 0;
    t->qnorm_scale = 1.0f;
    t->qnorm_offset = 0.0f;
    t->centroids = calloc((size_t)1 << bits, sizeof(float));
    if (!t->centroids) return KVQ_ERR_NOMEM;
    if (axis == KVQ_NORM_PER_CHANNEL) {
        if (kv_dim == 0) { kvq_tensor_codebook_free(t); return KVQ_ERR_ARG; }
        t->zero_point = calloc(kv_dim, sizeof(float));   /* calloc checks count * size */
        t->half_range = calloc(kv_dim, sizeof(float));
        if (!t->zero_point || !t->half_range) { kvq_tensor_codebook_free(t); return KVQ_ERR_NOMEM; }
    }
    return KVQ_OK;
}

void kvq_codebook_free(kvq_codebook *cb) {
    if (!cb) return;
    if (cb->layers)
        for (uint32_t l = 0; l < cb->model.n_layers; l++) {
            kvq_tensor_codebook_free(&cb->layers[l].k);
            kvq_tensor_codebook_free(&cb->layers[l].v);
        }
    free(cb->layers);
    free(cb->diag.k_objective);
    free(cb->diag.v_objective);
    free(cb->diag.k_outlier_rate);
    free(cb->diag.v_outlier_rate);
    memset(cb, 0, sizeof *cb);
}

kvq_status kvq_codebook_alloc(kvq_codebook *cb, uint32_t n_layers, uint32_t kv_dim,
                              uint32_t k_bits, uint32_t v_bits, int with_diagnostics) {
    if (!cb || n_layers < 1 || n_layers > KVQ_MAX_LAYERS || kv_dim < 1) return KVQ_ERR_ARG;
    if (k_bits < 1 || k_bits > KVQ_MAX_BITS || v_bits < 1 || v_bits > KVQ_MAX_BITS) return KVQ_ERR_ARG;
    memset(&cb->diag, 0, sizeof cb->diag);
    cb->model.n_layers = n_layers;
    cb->layers = calloc(n_layers, sizeof *cb->layers);
    if (!cb->layers) return KVQ_ERR_NOMEM;
    kvq_status st = KVQ_OK;
    for (uint32_t l = 0; l < n_layers && st == KVQ_OK; l++) {
        st = kvq_tensor_codebook_init(&cb->layers[l].k, k_bits, KVQ_NORM_PER_CHANNEL, kv_dim);
        if (st == KVQ_OK)
            st = kvq_tensor_codebook_init(&cb->layers[l].v, v_bits, KVQ_NORM_PER_TOKEN, kv_dim);
    }
    if (st == KVQ_OK && with_diagnostics) {
        cb->diag.k_objective = calloc(n_layers, sizeof(double));
        cb->diag.v_objective = calloc(n_layers, sizeof(double));
        cb->diag.k_outlier_rate = calloc(n_layers, sizeof(double));
        cb->diag.v_outlier_rate = calloc(n_layers, sizeof(double));
        if (!cb->diag.k_objective || !cb->diag.v_objective || !cb->diag.k_outlier_rate ||
            !cb->diag.v_outlier_rate)
            st = KVQ_ERR_NOMEM;
    }
    if (st != KVQ_OK) {
        kvq_model_identity keep = cb->model;
        uint32_t n_sink = cb->n_sink;
        kvq_provenance prov = cb->provenance;
        kvq_codebook_free(cb);
        cb->model = keep;
        cb->n_sink = n_sink;
        cb->provenance = prov;
    }
    return st;
}

/* ---- validation ---- */

/* NUL-terminated within its field and UTF-8, so that the file can store it (docs/format.md §1). */
static int terminated(const char *s, size_t cap) {
    const char *end = memchr(s, 0, cap);
    return end && kvqc_utf8_ok((const unsigned char *)s, (size_t)(end - s));
}

static kvq_status check_values(const float *a, size_t n, int positive, const char *what,
                               uint32_t layer, char tc, char *why, size_t why_len) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return fail(KVQ_ERR_NONFINITE, why, why_len, "layer %u %c: %s[%zu] = %g is not finite",
                        layer, tc, what, i, (double)a[i]);
        if (positive && !(a[i] > 0))
            return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: %s[%zu] = %g is not > 0", layer,
                        tc, what, i, (double)a[i]);
    }
    return KVQ_OK;
}

static kvq_status validate_tensor(const kvq_tensor_codebook *t, uint32_t layer, char tc,
                                  uint32_t kv_dim, char *why, size_t why_len) {
    if (t->bits < 1 || t->bits > KVQ_MAX_BITS)
        return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: bits = %u not in 1..%d", layer, tc,
                    t->bits, KVQ_MAX_BITS);
    if (!t->centroids)
        return fail(KVQ_ERR_MISSING, why, why_len, "layer %u %c: no centroids", layer, tc);
    size_t n = (size_t)1 << t->bits;
    kvq_status st = check_values(t->centroids, n, 0, "centroids", layer, tc, why, why_len);
    if (st) return st;
    for (size_t i = 1; i < n; i++)
        if (t->centroids[i] < t->centroids[i - 1])
            return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: centroids not sorted at %zu (%g < %g)",
                        layer, tc, i, (double)t->centroids[i], (double)t->centroids[i - 1]);
    if (t->qnorm != 0 && t->qnorm != 1)
        return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: qnorm = %d not 0/1", layer, tc, t->qnorm);
    if (!isfinite(t->qnorm_scale) || !isfinite(t->qnorm_offset))
        return fail(KVQ_ERR_NONFINITE, why, why_len, "layer %u %c: Q-Norm scale/offset not finite", layer, tc);
    if (!(t->qnorm_scale > 0) || (!t->qnorm && (t->qnorm_scale != 1 || t->qnorm_offset != 0)))
        return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: Q-Norm scale %g offset %g invalid (qnorm %d)",
                    layer, tc, (double)t->qnorm_scale, (double)t->qnorm_offset, t->qnorm);
    int per_channel = t->axis == KVQ_NORM_PER_CHANNEL;
    if (!per_channel && t->axis != KVQ_NORM_PER_TOKEN && t->axis != KVQ_NORM_PER_TOKEN_HEAD)
        return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: axis %d unknown", layer, tc, (int)t->axis);
    if (per_channel != (t->zero_point != NULL) || per_channel != (t->half_range != NULL))
        return fail(KVQ_ERR_FORMAT, why, why_len,
                    "layer %u %c: zero_point/half_range must be present iff the axis is per channel",
                    layer, tc);
    if (per_channel) {
        if ((st = check_values(t->zero_point, kv_dim, 0, "zero_point", layer, tc, why, why_len))) return st;
        if ((st = check_values(t->half_range, kv_dim, 1, "half_range", layer, tc, why, why_len))) return st;
    }
    if (!isfinite(t->outlier_fraction))
        return fail(KVQ_ERR_NONFINITE, why, why_len, "layer %u %c: outlier_fraction not finite", layer, tc);
    if (!(t->outlier_fraction >= 0 && t->outlier_fraction < 1))
        return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: outlier_fraction %g not in [0, 1)",
                    layer, tc, (double)t->outlier_fraction);
    if (t->residual != KVQ_OUTLIER_EXACT && t->residual != KVQ_OUTLIER_RESIDUAL)
        return fail(KVQ_ERR_FORMAT, why, why_len, "layer %u %c: residual convention %d unknown", layer,
                    tc, (int)t->residual);
    return KVQ_OK;
}

static kvq_status validate_model(const kvq_model_identity *m, char *why, size_t why_len) {
    if (!terminated(m->architecture, sizeof m->architecture) || !m->architecture[0])
        return fail(KVQ_ERR_FORMAT, why, why_len, "model architecture empty, not terminated or not UTF-8");
    if (m->n_layers < 1 || m->n_layers > KVQ_MAX_LAYERS)
        return fail(KVQ_ERR_FORMAT, why, why_len, "n_layers = %u not in 1..%d", m->n_layers, KVQ_MAX_LAYERS);
    if (m->n_heads < 1 || m->n_kv_heads < 1 || m->head_dim < 1 || m->head_dim % 2 ||
        m->n_heads % m->n_kv_heads)
        return fail(KVQ_ERR_FORMAT, why, why_len, "heads %u, kv heads %u, head_dim %u inconsistent",
                    m->n_heads, m->n_kv_heads, m->head_dim);
    if ((uint64_t)m->n_kv_heads * m->head_dim > UINT32_MAX)
        return fail(KVQ_ERR_OVERFLOW, why, why_len, "kv_dim = %u x %u overflows", m->n_kv_heads, m->head_dim);
    if (!isfinite(m->rope_theta) || !isfinite(m->rope_scaling_factor) ||
        !isfinite(m->rope_low_freq_factor) || !isfinite(m->rope_high_freq_factor))
        return fail(KVQ_ERR_NONFINITE, why, why_len, "RoPE parameters not finite");
    if (!(m->rope_theta > 0))
        return fail(KVQ_ERR_FORMAT, why, why_len, "rope_theta = %g not > 0", (double)m->rope_theta);
    if (m->rope_scaling != KVQ_ROPE_SCALING_NONE && m->rope_scaling != KVQ_ROPE_SCALING_LINEAR &&
        m->rope_scaling != KVQ_ROPE_SCALING_LLAMA3)
        return fail(KVQ_ERR_FORMAT, why, why_len, "rope_scaling %d unknown", (int)m->rope_scaling);
    if (m->rope_convention != KVQ_ROPE_ROTATE_HALF && m->rope_convention != KVQ_ROPE_INTERLEAVED)
        return fail(KVQ_ERR_FORMAT, why, why_len, "rope_convention %d unknown", (int)m->rope_convention);
    return KVQ_OK;
}

static kvq_status validate_provenance(const kvq_provenance *p, char *why, size_t why_len) {
    if (!terminated(p->tool_version, sizeof p->tool_version) ||
        !terminated(p->calib_text, sizeof p->calib_text) ||
        !terminated(p->calib_text_sha256, sizeof p->calib_text_sha256))
        return fail(KVQ_ERR_FORMAT, why, why_len, "provenance string not terminated or not UTF-8");
    if (p->weighting != KVQ_WEIGHT_NONE && p->weighting != KVQ_WEIGHT_FISHER &&
        p->weighting != KVQ_WEIGHT_FISHER_SCALED)
        return fail(KVQ_ERR_FORMAT, why, why_len, "provenance weighting %d unknown", (int)p->weighting);
    if (p->solver != KVQ_SOLVER_LLOYD && p->solver != KVQ_SOLVER_EXACT)
        return fail(KVQ_ERR_FORMAT, why, why_len, "provenance solver %d unknown", (int)p->solver);
    return KVQ_OK;
}

static kvq_status validate_diag(const double *a, uint32_t n, int is_rate, const char *what,
                                char *why, size_t why_len) {
    if (!a) return KVQ_OK;
    for (uint32_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return fail(KVQ_ERR_NONFINITE, why, why_len, "diagnostic %s[%u] not finite", what, i);
        if (a[i] < 0 || (is_rate && a[i] > 1))
            return fail(KVQ_ERR_FORMAT, why, why_len, "diagnostic %s[%u] = %g out of range", what, i, a[i]);
    }
    return KVQ_OK;
}

kvq_status kvq_codebook_validate(const kvq_codebook *cb, char *why, size_t why_len) {
    if (why && why_len) why[0] = 0;
    if (!cb) return fail(KVQ_ERR_ARG, why, why_len, "NULL codebook");
    kvq_status st = validate_model(&cb->model, why, why_len);
    if (!st) st = validate_provenance(&cb->provenance, why, why_len);
    if (st) return st;
    if (!cb->layers) return fail(KVQ_ERR_MISSING, why, why_len, "no layers");
    uint32_t kv_dim = kvq_kv_dim(&cb->model), n = cb->model.n_layers;
    for (uint32_t l = 0; l < n && !st; l++) {
        st = validate_tensor(&cb->layers[l].k, l, 'k', kv_dim, why, why_len);
        if (!st) st = validate_tensor(&cb->layers[l].v, l, 'v', kv_dim, why, why_len);
    }
    if (!st) st = validate_diag(cb->diag.k_objective, n, 0, "k_objective", why, why_len);
    if (!st) st = validate_diag(cb->diag.v_objective, n, 0, "v_objective", why, why_len);
    if (!st) st = validate_diag(cb->diag.k_outlier_rate, n, 1, "k_outlier_rate", why, why_len);
    if (!st) st = validate_diag(cb->diag.v_outlier_rate, n, 1, "v_outlier_rate", why, why_len);
    return st;
}

/* ---- model identity ---- */

kvq_status kvq_codebook_check_model(const kvq_codebook *cb, const kvq_model_identity *m,
                                    char *why, size_t why_len) {
    if (why && why_len) why[0] = 0;
    if (!cb || !m) return fail(KVQ_ERR_ARG, why, why_len, "NULL argument");
    const kvq_model_identity *c = &cb->model;
    if (strncmp(c->architecture, m->architecture, sizeof c->architecture))
        return fail(KVQ_ERR_MISMATCH, why, why_len, "architecture: codebook '%.63s', model '%.63s'",
                    c->architecture, m->architecture);
#define KVQ_SAME_U(f)                                                                           \
    if (c->f != m->f)                                                                           \
        return fail(KVQ_ERR_MISMATCH, why, why_len, #f ": codebook %llu, model %llu",          \
                    (unsigned long long)c->f, (unsigned long long)m->f);
#define KVQ_SAME_F(f)                                                                           \
    if (c->f != m->f)                                                                           \
        return fail(KVQ_ERR_MISMATCH, why, why_len, #f ": codebook %.9g, model %.9g", (double)c->f, \
                    (double)m->f);
    KVQ_SAME_U(n_layers) KVQ_SAME_U(n_heads) KVQ_SAME_U(n_kv_heads) KVQ_SAME_U(head_dim)
    KVQ_SAME_U(hidden) KVQ_SAME_U(vocab) KVQ_SAME_F(rope_theta) KVQ_SAME_U(rope_scaling)
    KVQ_SAME_F(rope_scaling_factor) KVQ_SAME_F(rope_low_freq_factor) KVQ_SAME_F(rope_high_freq_factor)
    KVQ_SAME_U(rope_original_max_pos) KVQ_SAME_U(rope_convention)
#undef KVQ_SAME_U
#undef KVQ_SAME_F
    if (c->fingerprint != m->fingerprint)
        return fail(KVQ_ERR_MISMATCH, why, why_len,
                    "weights fingerprint: codebook %016llx, model %016llx (another model's codebook)",
                    (unsigned long long)c->fingerprint, (unsigned long long)m->fingerprint);
    return KVQ_OK;
}

void kvq_codebook_lut(const kvq_tensor_codebook *t, float *lut) {
    size_t n = (size_t)1 << t->bits;
    for (size_t i = 0; i < n; i++)
        lut[i] = t->qnorm ? fmaf(t->centroids[i], t->qnorm_scale, t->qnorm_offset) : t->centroids[i];
}
