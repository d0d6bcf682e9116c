/* rt_ref.c — see rt_ref.h. Plain C11, libm only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kvq_half.h"
#include "rt_ref.h"

static uint64_t next64(rt_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
double rt_uniform(rt_rng *r) { return (double)(next64(r) >> 11) * (1.0 / 9007199254740992.0); }
double rt_normal(rt_rng *r) {
    double u = rt_uniform(r), v = rt_uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}
double rt_student3(rt_rng *r) {
    double a = rt_normal(r), b = rt_normal(r), c = rt_normal(r), d = rt_normal(r);
    return a / sqrt((b * b + c * c + d * d) / 3.0);
}

void rt_channel_params(uint64_t channel_seed, uint32_t dim, float *off, float *sc) {
    rt_rng cr = {channel_seed};
    for (uint32_t c = 0; c < dim; c++) {
        off[c] = (float)(0.5 * rt_normal(&cr));
        sc[c] = (float)(0.3 + rt_uniform(&cr)) * (rt_uniform(&cr) < 0.03 ? 8.0f : 1.0f);
    }
}

void rt_fill_kv(rt_rng *r, float *x, uint32_t T, uint32_t dim, uint64_t channel_seed) {
    float *off = malloc(dim * sizeof(float)), *sc = malloc(dim * sizeof(float));
    if (!off || !sc) { free(off); free(sc); return; }
    rt_channel_params(channel_seed, dim, off, sc);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t c = 0; c < dim; c++)
            x[(size_t)t * dim + c] = kvq_round_f16(off[c] + sc[c] * (float)rt_student3(r));
    free(off);
    free(sc);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float percentile(float *sorted, uint32_t n, double q) {
    double pos = q * (n - 1);
    uint32_t i = (uint32_t)pos;
    if (i + 1 >= n) return sorted[n - 1];
    double f = pos - i;
    return (float)(sorted[i] * (1.0 - f) + sorted[i + 1] * f);
}

static int make_tensor(kvq_tensor_codebook *t, uint32_t bits, rt_rng *r, int qnorm) {
    uint32_t n = 1u << bits;
    t->bits = bits;
    t->centroids = malloc(n * sizeof(float));
    if (!t->centroids) return -1;
    for (uint32_t i = 0; i < n; i++) {   /* evenly spread, jittered, sorted: distinct levels */
        double base = -1.0 + 2.0 * (i + 0.5) / n;
        t->centroids[i] = (float)(base + (rt_uniform(r) - 0.5) * 0.8 / n);
    }
    qsort(t->centroids, n, sizeof(float), cmp_float);
    t->qnorm = qnorm;
    t->qnorm_scale = qnorm ? 1.07f : 1.0f;
    t->qnorm_offset = qnorm ? -0.013f : 0.0f;
    t->residual = KVQ_OUTLIER_EXACT;
    return 0;
}

int rt_codebook_make(kvq_codebook *cb, const rt_cb_cfg *c, const float *calib, uint32_t T_calib, rt_rng *r) {
    memset(cb, 0, sizeof *cb);
    kvq_model_identity *m = &cb->model;
    strcpy(m->architecture, "llama");
    m->n_layers = c->n_layers; m->n_heads = c->n_heads; m->n_kv_heads = c->n_kv_heads; m->head_dim = c->head_dim;
    m->rope_theta = c->rope_theta;
    m->rope_scaling = KVQ_ROPE_SCALING_NONE;
    m->rope_scaling_factor = 1.0f;
    m->rope_convention = KVQ_ROPE_ROTATE_HALF;
    cb->n_sink = c->n_sink;
    uint32_t kv_dim = c->n_kv_heads * c->head_dim;
    cb->layers = calloc(c->n_layers, sizeof *cb->layers);
    float *col = malloc((size_t)T_calib * sizeof(float));
    if (!cb->layers || !col) { free(col); return -1; }
    for (uint32_t l = 0; l < c->n_layers; l++) {
        kvq_layer_codebook *lc = &cb->layers[l];
        if (make_tensor(&lc->k, c->bits, r, c->qnorm) || make_tensor(&lc->v, c->bits, r, c->qnorm)) { free(col); return -1; }
        lc->k.axis = KVQ_NORM_PER_CHANNEL;
        lc->k.zero_point = malloc(kv_dim * sizeof(float));
        lc->k.half_range = malloc(kv_dim * sizeof(float));
        if (!lc->k.zero_point || !lc->k.half_range) { free(col); return -1; }
        double p = c->k_outlier_fraction;
        for (uint32_t ch = 0; ch < kv_dim; ch++) {
            for (uint32_t t = 0; t < T_calib; t++) col[t] = calib[(size_t)t * kv_dim + ch];
            qsort(col, T_calib, sizeof(float), cmp_float);
            float hi = percentile(col, T_calib, 1.0 - p / 2), lo = percentile(col, T_calib, p / 2);
            lc->k.zero_point[ch] = 0.5f * (hi + lo);
            lc->k.half_range[ch] = hi > lo ? 0.5f * (hi - lo) : 1.0f;
        }
        lc->k.outlier_fraction = c->k_outlier_fraction;
        lc->k.outlier_cap = c->k_cap;
        lc->k.residual = c->residual;
        lc->v.axis = c->v_axis;
        lc->v.outlier_fraction = c->v_outlier_fraction;
        lc->v.outlier_cap = c->v_cap;
        lc->v.residual = c->residual;
    }
    free(col);
    return 0;
}

void rt_codebook_free(kvq_codebook *cb) {
    if (!cb || !cb->layers) return;
    for (uint32_t l = 0; l < cb->model.n_layers; l++) {
        kvq_layer_codebook *lc = &cb->layers[l];
        free(lc->k.centroids); free(lc->k.zero_point); free(lc->k.half_range);
        free(lc->v.centroids);
    }
    free(cb->layers);
    memset(cb, 0, sizeof *cb);
}

void rt_ref_attention(const float *k, const float *v, uint32_t T, const float *q, uint32_t n_heads,
                      uint32_t n_kv_heads, uint32_t D, const float *inv_freq, double scale, double *out) {
    uint32_t G = n_heads / n_kv_heads, kv_dim = n_kv_heads * D, half = D / 2;
    double *s = malloc((T ? T : 1) * sizeof(double));
    if (!s) return;
    for (uint32_t h = 0; h < n_heads; h++) {
        uint32_t kvh = h / G;
        const float *qh = q + (size_t)h * D;
        double mx = -INFINITY;
        for (uint32_t t = 0; t < T; t++) {
            const float *kt = k + (size_t)t * kv_dim + kvh * D;
            double acc = 0.0;
            for (uint32_t i = 0; i < half; i++) {
                double a = (double)t * (double)inv_freq[i], c = cos(a), sn = sin(a);
                double k1 = kt[i], k2 = kt[i + half];
                acc += qh[i] * (k1 * c - k2 * sn) + qh[i + half] * (k2 * c + k1 * sn);
            }
            s[t] = acc * scale;
            if (s[t] > mx) mx = s[t];
        }
        double l = 0.0;
        for (uint32_t t = 0; t < T; t++) { s[t] = exp(s[t] - mx); l += s[t]; }
        for (uint32_t i = 0; i < D; i++) {
            double o = 0.0;
            for (uint32_t t = 0; t < T; t++) o += s[t] * v[(size_t)t * kv_dim + kvh * D + i];
            out[(size_t)h * D + i] = T ? o / l : 0.0;
        }
    }
    free(s);
}
