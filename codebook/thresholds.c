/* thresholds.c — key thresholds from calibration percentiles and the k-means input of a tensor
 * (thresholds.h). Outliers and value scales come from the quantization reference (quant.h), so
 * the points are exactly the non-outlier normalised elements the runtime would encode. Not k-means. */
#include "thresholds.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"   /* kvq_parallel_for */
#include "kvq_half.h"
#include "quant.h"

enum { CHAN_BLOCK = 16, ROW_BLOCK = 64 };

static void set_why(char *why, size_t len, const char *fmt, ...) {
    if (!why || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* Quickselect: on return v[k] is the k-th smallest, v[0..k) <= v[k] <= v(k..n). */
static void select_kth(float *v, ptrdiff_t n, ptrdiff_t k) {
    ptrdiff_t lo = 0, hi = n - 1;
    while (hi > lo) {
        ptrdiff_t mid = lo + (hi - lo) / 2, i = lo, j = hi;
        float t;
#define SWAP(a, b) (t = v[a], v[a] = v[b], v[b] = t)
        if (v[mid] < v[lo]) SWAP(mid, lo);
        if (v[hi] < v[lo]) SWAP(hi, lo);
        if (v[hi] < v[mid]) SWAP(hi, mid);
        float pivot = v[mid];
        while (i <= j) {   /* Hoare partition; the median-of-three ends stop both scans */
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) { SWAP(i, j); i++; j--; }
        }
#undef SWAP
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;   /* v(j..i) all equal the pivot */
    }
}

double kvq_percentile(float *v, size_t n, double q) {
    if (!n) return NAN;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i > n - 1) i = n - 1;
    double frac = pos - (double)i;
    select_kth(v, (ptrdiff_t)n, (ptrdiff_t)i);
    double a = v[i];
    if (!(frac > 0) || i + 1 >= n) return a;
    float b = v[i + 1];   /* the next order statistic: the minimum of the upper part */
    for (size_t j = i + 2; j < n; j++) b = v[j] < b ? v[j] : b;
    return a + ((double)b - a) * frac;
}

/* ---- key thresholds ---------------------------------------------------------------------- */
typedef struct thr_ctx {
    const float *k;          /* (n_rows, dim) */
    size_t n_rows, n_use;
    uint32_t dim;
    const uint8_t *use;      /* (n_rows) or NULL */
    double q_hi, q_lo;
    float *z, *r;            /* (dim) */
    kvq_status *st;          /* (n_tasks) */
} thr_ctx;

static void thr_task(void *vctx, size_t task) {
    const thr_ctx *p = vctx;
    uint32_t c0 = (uint32_t)task * CHAN_BLOCK, nc = p->dim - c0 < CHAN_BLOCK ? p->dim - c0 : CHAN_BLOCK;
    float *col = malloc((size_t)CHAN_BLOCK * p->n_use * sizeof(float));   /* (nc, n_use) */
    if (!col) { p->st[task] = KVQ_ERR_NOMEM; return; }
    size_t u = 0;
    for (size_t row = 0; row < p->n_rows; row++) {
        if (p->use && !p->use[row]) continue;
        const float *src = p->k + row * p->dim + c0;
        for (uint32_t c = 0; c < nc; c++) col[c * p->n_use + u] = kvq_round_f16(src[c]);
        u++;
    }
    for (uint32_t c = 0; c < nc; c++) {
        float *v = col + c * p->n_use;
        double hi = kvq_percentile(v, p->n_use, p->q_hi), lo = kvq_percentile(v, p->n_use, p->q_lo);
        float r = (float)((hi - lo) / 2);
        p->z[c0 + c] = (float)((hi + lo) / 2);
        p->r[c0 + c] = isfinite(r) && r >= FLT_MIN ? r : 1.0f;
    }
    free(col);
    p->st[task] = KVQ_OK;
}

kvq_status kvq_key_thresholds(const float *k, size_t n_rows, uint32_t dim, const uint8_t *use,
                              float outlier_fraction, int n_threads, float *z, float *r, char *why,
                              size_t why_len) {
    if (!k || !z || !r || !dim || n_threads < 1 || !(outlier_fraction >= 0 && outlier_fraction < 1)) {
        set_why(why, why_len, "key thresholds: bad arguments (p = %g)", (double)outlier_fraction);
        return KVQ_ERR_ARG;
    }
    size_t n_use = 0;
    for (size_t row = 0; row < n_rows; row++) n_use += !use || use[row];
    if (!n_use) { set_why(why, why_len, "key thresholds: no calibration rows left (all are sink tokens?)"); return KVQ_ERR_DATA; }
    size_t n_tasks = (dim + CHAN_BLOCK - 1) / CHAN_BLOCK;
    thr_ctx p = {k, n_rows, n_use, dim, use, 1.0 - (double)outlier_fraction / 2, (double)outlier_fraction / 2,
                 z, r, calloc(n_tasks, sizeof(kvq_status))};
    if (!p.st) return KVQ_ERR_NOMEM;
    kvq_parallel_for(n_tasks, n_threads, thr_task, &p);
    kvq_status st = KVQ_OK;
    for (size_t t = 0; t < n_tasks && st == KVQ_OK; t++) st = p.st[t];
    free(p.st);
    if (st != KVQ_OK) set_why(why, why_len, "key thresholds over %zu rows: %s", n_use, kvq_status_message(st));
    return st;
}

/* ---- k-means input ------------------------------------------------------------------------- */
void kvq_norm_points_free(kvq_norm_points *p) {
    if (!p) return;
    free(p->x);
    free(p->w);
    memset(p, 0, sizeof *p);
}

typedef struct col_ctx {
    const kvq_norm_spec *s;
    const float *a, *f;      /* (n_rows, dim) */
    size_t n_rows;
    const uint8_t *use;      /* (n_rows) or NULL */
    float *x, *w;            /* (n_rows, dim): task t writes from row t*ROW_BLOCK on */
    size_t *count, *n_out, *n_el;   /* (n_tasks) */
    kvq_status *st;          /* (n_tasks) */
} col_ctx;

static kvq_status quantizer_for(const kvq_norm_spec *s, kvq_quantizer *q) {
    static const float lut[2] = {-0.5f, 0.5f};   /* codes are not used: any valid LUT */
    kvq_quant_config c = {.dim = s->dim, .bits = 1, .lut = lut, .outlier_fraction = s->outlier_fraction,
                          .outlier_cap = s->outlier_cap, .residual = KVQ_OUTLIER_EXACT};
    if (s->axis == KVQ_NORM_PER_CHANNEL) {
        c.scheme = KVQ_QS_STATIC_CHANNEL;
        c.zero_point = s->z;
        c.half_range = s->r;
    } else {
        c.scheme = KVQ_QS_TOKEN_GROUP;
        c.group = s->axis == KVQ_NORM_PER_TOKEN ? s->dim : s->head_dim;
    }
    return kvq_quantizer_init(q, &c, NULL, 0);
}

/* Collect one row's non-outlier points from its encoding; returns the number written. */
static size_t collect_row(const col_ctx *p, const kvq_quantizer *q, const kvq_qtoken *t, size_t row,
                          float *x, float *w) {
    const kvq_norm_spec *s = p->s;
    const float *a = p->a + row * s->dim, *f = p->f ? p->f + row * s->dim : NULL;
    uint32_t next = 0, n = 0, g = q->cfg.group;
    for (uint32_t c = 0; c < s->dim; c++) {
        if (next < t->n_outliers && t->outliers[next].channel == c) { next++; continue; }
        float z, r;
        if (s->axis == KVQ_NORM_PER_CHANNEL) { z = q->z[c]; r = q->r[c]; }
        else { z = kvq_f16_to_f32(t->z[c / g]); r = kvq_f16_to_f32(t->r[c / g]); }
        float xv = (kvq_round_f16(a[c]) - z) / r;   /* the runtime's x (quantization.md §3-§4) */
        x[n] = xv > 1.0f ? 1.0f : xv < -1.0f ? -1.0f : xv;
        w[n] = s->weighting == KVQ_WEIGHT_NONE ? 1.0f
             : s->weighting == KVQ_WEIGHT_FISHER ? f[c] : (float)((double)f[c] * (double)r * (double)r);
        n++;
    }
    return n;
}

static void col_task(void *vctx, size_t task) {
    const col_ctx *p = vctx;
    kvq_quantizer q;
    kvq_qtoken t;
    memset(&t, 0, sizeof t);
    kvq_status st = quantizer_for(p->s, &q);
    if (st != KVQ_OK) { p->st[task] = st; return; }
    st = kvq_qtoken_init(&t, &q);
    size_t r0 = task * ROW_BLOCK, r1 = r0 + ROW_BLOCK < p->n_rows ? r0 + ROW_BLOCK : p->n_rows;
    size_t off = r0 * p->s->dim, n = 0;
    p->n_out[task] = p->n_el[task] = 0;
    for (size_t row = r0; row < r1 && st == KVQ_OK; row++) {
        if (p->use && !p->use[row]) continue;
        st = kvq_quant_encode(&q, p->a + row * p->s->dim, &t);
        if (st != KVQ_OK) break;
        n += collect_row(p, &q, &t, row, p->x + off + n, p->w + off + n);
        p->n_out[task] += t.n_outliers;
        p->n_el[task] += p->s->dim;
    }
    p->count[task] = n;
    p->st[task] = st;
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}

kvq_status kvq_norm_collect(const kvq_norm_spec *s, const float *a, const float *fisher, size_t n_rows,
                            const uint8_t *use, int n_threads, kvq_norm_points *out, char *why,
                            size_t why_len) {
    memset(out, 0, sizeof *out);
    if (!s || !a || !s->dim || n_threads < 1 || (s->weighting != KVQ_WEIGHT_NONE && !fisher) ||
        (s->axis == KVQ_NORM_PER_CHANNEL && (!s->z || !s->r)) ||
        (s->axis == KVQ_NORM_PER_TOKEN_HEAD && (!s->head_dim || s->dim % s->head_dim))) {
        set_why(why, why_len, "normalisation: bad arguments (Fisher missing, z/r missing or head_dim)");
        return KVQ_ERR_ARG;
    }
    if (n_rows > SIZE_MAX / s->dim / sizeof(float)) return KVQ_ERR_OVERFLOW;
    size_t n_tasks = (n_rows + ROW_BLOCK - 1) / ROW_BLOCK, cap = n_rows * s->dim;
    col_ctx p = {s, a, fisher, n_rows, use, malloc((cap + 1) * sizeof(float)), malloc((cap + 1) * sizeof(float)),
                 calloc(n_tasks + 1, sizeof(size_t)), calloc(n_tasks + 1, sizeof(size_t)),
                 calloc(n_tasks + 1, sizeof(size_t)), calloc(n_tasks + 1, sizeof(kvq_status))};
    kvq_status st = p.x && p.w && p.count && p.n_out && p.n_el && p.st ? KVQ_OK : KVQ_ERR_NOMEM;
    if (st == KVQ_OK) kvq_parallel_for(n_tasks, n_threads, col_task, &p);
    size_t n = 0;
    for (size_t t = 0; t < n_tasks && st == KVQ_OK; t++) {   /* compact in row order */
        st = p.st[t];
        if (st != KVQ_OK) {
            set_why(why, why_len, "normalising rows %zu..%zu: %s", t * ROW_BLOCK,
                    (t + 1) * ROW_BLOCK - 1, kvq_status_message(st));
            break;
        }
        memmove(p.x + n, p.x + t * ROW_BLOCK * s->dim, p.count[t] * sizeof(float));
        memmove(p.w + n, p.w + t * ROW_BLOCK * s->dim, p.count[t] * sizeof(float));
        n += p.count[t];
        out->n_outliers += p.n_out[t];
        out->n_elements += p.n_el[t];
    }
    if (st == KVQ_OK) {
        out->x = p.x;
        out->w = p.w;
        out->n = n;
        p.x = p.w = NULL;
    } else {
        out->n_outliers = out->n_elements = 0;
    }
    free(p.x);
    free(p.w);
    free(p.count);
    free(p.n_out);
    free(p.n_el);
    free(p.st);
    return st;
}
