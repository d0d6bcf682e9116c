/* baselines.c — the simulations of baselines.h: each method is a pair of kvq_quant_config per
 * layer for codebook/quant.c (uniform or NormalFloat levels, group sizes, static per-channel
 * thresholds from calibration ranges, KIVI's token blocks and fp16 recent window). No arithmetic
 * of its own beyond building level tables and thresholds. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"

#define WHY(...) do { if (why && why_len) snprintf(why, why_len, __VA_ARGS__); } while (0)

static const char *const METHOD_NAMES[KVQ_METHOD_COUNT_] = {
    "fp16", "kvquant", "int", "int-chan-post", "int-chan-pre", "nf", "atom", "flexgen", "kivi"};

const char *kvq_method_name(kvq_method m) {
    return (unsigned)m < KVQ_METHOD_COUNT_ ? METHOD_NAMES[m] : "unknown";
}

kvq_status kvq_method_parse(const char *name, kvq_method *out) {
    for (int i = 0; name && i < KVQ_METHOD_COUNT_; i++)
        if (!strcmp(name, METHOD_NAMES[i])) { *out = (kvq_method)i; return KVQ_OK; }
    return KVQ_ERR_ARG;
}

int kvq_method_needs_codebook(kvq_method m) { return m == KVQ_METHOD_KVQUANT; }
int kvq_method_needs_range(kvq_method m) {
    return m == KVQ_METHOD_INT_CHAN_POST || m == KVQ_METHOD_INT_CHAN_PRE;
}

void kvq_uniform_lut(uint32_t bits, float *lut) {
    uint32_t L = 1u << bits;
    for (uint32_t i = 0; i < L; i++) lut[i] = (float)(-1.0 + 2.0 * (double)i / (double)(L - 1));
}

/* Inverse of the standard normal CDF by bisection on erfc (double): deterministic, accurate to
 * the last bits of a double, fast enough for the 2^b levels built once per run. */
static double normal_ppf(double p) {
    double lo = -40.0, hi = 40.0;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
}

void kvq_nf_lut(uint32_t bits, float *lut) {
    uint32_t L = 1u << bits;
    if (bits == 1) { lut[0] = -1.0f; lut[1] = 1.0f; return; }
    uint32_t n_pos = L / 2, n_neg = L / 2 - 1;
    double delta = 0.5 * ((1.0 - 1.0 / (2.0 * (L - 1))) + (1.0 - 1.0 / (2.0 * L)));
    double top = normal_ppf(delta), v[1 << KVQ_MAX_BITS];
    uint32_t n = 0;
    for (uint32_t i = n_neg; i >= 1; i--)   /* negative side, ascending */
        v[n++] = -normal_ppf(delta + (0.5 - delta) * (double)(n_neg - i) / (double)n_neg) / top;
    v[n++] = 0.0;
    for (uint32_t i = n_pos; i >= 1; i--)
        v[n++] = normal_ppf(delta + (0.5 - delta) * (double)(i - 1) / (double)n_pos) / top;
    for (uint32_t i = 0; i < L; i++) lut[i] = (float)v[i];
}

kvq_status kvq_key_range_init(kvq_key_range *r, int n_layers, uint32_t kv_dim) {
    memset(r, 0, sizeof *r);
    if (n_layers <= 0 || kv_dim == 0) return KVQ_ERR_ARG;
    size_t n = (size_t)n_layers * kv_dim;
    if (n / kv_dim != (size_t)n_layers || n > SIZE_MAX / sizeof(float)) return KVQ_ERR_OVERFLOW;
    r->n_layers = n_layers;
    r->kv_dim = kv_dim;
    float **arr[4] = {&r->pre_min, &r->pre_max, &r->post_min, &r->post_max};
    for (int a = 0; a < 4; a++) {
        *arr[a] = malloc(n * sizeof(float));
        if (!*arr[a]) { kvq_key_range_free(r); return KVQ_ERR_NOMEM; }
        for (size_t i = 0; i < n; i++) (*arr[a])[i] = (a % 2 == 0) ? FLT_MAX : -FLT_MAX;
    }
    return KVQ_OK;
}

void kvq_key_range_free(kvq_key_range *r) {
    if (!r) return;
    free(r->pre_min);
    free(r->pre_max);
    free(r->post_min);
    free(r->post_max);
    memset(r, 0, sizeof *r);
}

kvq_status kvq_key_range_add(kvq_key_range *r, int layer, int post_rope, const float *k, size_t n) {
    if (!r || layer < 0 || layer >= r->n_layers || (!k && n)) return KVQ_ERR_ARG;
    uint32_t d = r->kv_dim;
    float *mn = (post_rope ? r->post_min : r->pre_min) + (size_t)layer * d;
    float *mx = (post_rope ? r->post_max : r->pre_max) + (size_t)layer * d;
    for (size_t t = 0; t < n; t++)
        for (uint32_t c = 0; c < d; c++) {
            float v = k[t * d + c];
            if (!isfinite(v)) return KVQ_ERR_NONFINITE;
            if (v < mn[c]) mn[c] = v;
            if (v > mx[c]) mx[c] = v;
        }
    if (layer == 0 && !post_rope) r->n_tokens += n;
    return KVQ_OK;
}

static kvq_status sim_alloc(kvq_kv_sim *s, kvq_method m, uint32_t bits, int n_layers, uint32_t kv_dim) {
    memset(s, 0, sizeof *s);
    if (n_layers <= 0) return KVQ_ERR_ARG;
    s->method = m;
    s->bits = bits;
    s->n_layers = n_layers;
    s->kv_dim = kv_dim;
    s->k = calloc((size_t)n_layers, sizeof *s->k);
    s->v = calloc((size_t)n_layers, sizeof *s->v);
    if (!s->k || !s->v) { kvq_kv_sim_free(s); return KVQ_ERR_NOMEM; }
    return KVQ_OK;
}

void kvq_kv_sim_free(kvq_kv_sim *s) {
    if (!s) return;
    for (int l = 0; s->k && l < s->n_layers; l++) kvq_quantizer_free(&s->k[l]);
    for (int l = 0; s->v && l < s->n_layers; l++) kvq_quantizer_free(&s->v[l]);
    free(s->k);
    free(s->v);
    memset(s, 0, sizeof *s);
}

kvq_status kvq_kv_sim_init_codebook(kvq_kv_sim *s, const kvq_codebook *cb, char *why,
                                    size_t why_len) {
    if (!s || !cb || !cb->layers) return KVQ_ERR_ARG;
    uint32_t kv_dim = kvq_kv_dim(&cb->model), hd = cb->model.head_dim;
    kvq_status st = sim_alloc(s, KVQ_METHOD_KVQUANT, cb->layers[0].k.bits, (int)cb->model.n_layers, kv_dim);
    if (st != KVQ_OK) return st;
    char sub[192] = "";
    for (int l = 0; l < s->n_layers && st == KVQ_OK; l++) {
        const kvq_layer_codebook *lc = &cb->layers[l];
        if (lc->k.axis != KVQ_NORM_PER_CHANNEL) { WHY("layer %d: keys are not per channel", l); st = KVQ_ERR_FORMAT; break; }
        st = kvq_quantizer_from_codebook(&s->k[l], &lc->k, kv_dim, hd, cb->n_sink, sub, sizeof sub);
        if (st == KVQ_OK)
            st = kvq_quantizer_from_codebook(&s->v[l], &lc->v, kv_dim, hd, cb->n_sink, sub, sizeof sub);
        if (st != KVQ_OK) WHY("layer %d: %s", l, sub);
    }
    if (st != KVQ_OK) kvq_kv_sim_free(s);
    return st;
}

/* Static per-channel thresholds from a min/max range: z = (max+min)/2, r = (max-min)/2 in fp32,
 * r = 1 for a constant (or never seen) channel. */
static void range_thresholds(const float *mn, const float *mx, uint32_t d, float *z, float *r) {
    for (uint32_t c = 0; c < d; c++) {
        if (!(mx[c] >= mn[c])) { z[c] = 0.0f; r[c] = 1.0f; continue; }
        z[c] = 0.5f * (mx[c] + mn[c]);
        r[c] = 0.5f * (mx[c] - mn[c]);
        if (!(r[c] > 0.0f)) r[c] = 1.0f;
    }
}

kvq_status kvq_kv_sim_init_baseline(kvq_kv_sim *s, kvq_method m, uint32_t bits, int n_layers,
                                    uint32_t n_kv_heads, uint32_t head_dim,
                                    const kvq_key_range *range, char *why, size_t why_len) {
    if (!s) return KVQ_ERR_ARG;
    uint32_t d = n_kv_heads * head_dim;
    if (m == KVQ_METHOD_KVQUANT || (unsigned)m >= KVQ_METHOD_COUNT_) { WHY("not a baseline method"); return KVQ_ERR_ARG; }
    if (m != KVQ_METHOD_FP16 && (bits < 1 || bits > KVQ_MAX_BITS)) { WHY("bits %u outside 1..%d", bits, KVQ_MAX_BITS); return KVQ_ERR_ARG; }
    if (kvq_method_needs_range(m) && (!range || range->n_layers != n_layers || range->kv_dim != d || !range->n_tokens)) {
        WHY("%s needs calibration key ranges for %d layers of %u channels", kvq_method_name(m), n_layers, d);
        return KVQ_ERR_ARG;
    }
    kvq_status st = sim_alloc(s, m, m == KVQ_METHOD_FP16 ? 16 : bits, n_layers, d);
    if (st != KVQ_OK) return st;
    float lut[1 << KVQ_MAX_BITS];
    if (m == KVQ_METHOD_NF) kvq_nf_lut(bits, lut); else if (m != KVQ_METHOD_FP16) kvq_uniform_lut(bits, lut);
    kvq_quant_config kc = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = d, .bits = bits, .lut = lut, .group = d};
    kvq_quant_config vc = kc;
    s->k_post_rope = 1;
    switch (m) {
    case KVQ_METHOD_FP16: kc.scheme = vc.scheme = KVQ_QS_FP16; break;
    case KVQ_METHOD_INT_CHAN_PRE: s->k_post_rope = 0; /* fall through */
    case KVQ_METHOD_INT_CHAN_POST: kc.scheme = KVQ_QS_STATIC_CHANNEL; break;
    case KVQ_METHOD_ATOM: kc.group = vc.group = KVQ_ATOM_GROUP; break;
    case KVQ_METHOD_FLEXGEN: kc.group = vc.group = KVQ_FLEXGEN_GROUP; break;
    case KVQ_METHOD_KIVI:
        kc.scheme = KVQ_QS_CHANNEL_BLOCK;
        kc.group = vc.group = KVQ_KIVI_GROUP;
        kc.n_recent = vc.n_recent = KVQ_KIVI_RECENT;
        break;
    default: break;   /* INT, NF: per token over the whole vector */
    }
    float *z = malloc((size_t)d * sizeof(float)), *r = malloc((size_t)d * sizeof(float));
    if (!z || !r) st = KVQ_ERR_NOMEM;
    for (int l = 0; l < n_layers && st == KVQ_OK; l++) {
        if (kc.scheme == KVQ_QS_STATIC_CHANNEL) {
            size_t o = (size_t)l * d;
            if (s->k_post_rope) range_thresholds(range->post_min + o, range->post_max + o, d, z, r);
            else range_thresholds(range->pre_min + o, range->pre_max + o, d, z, r);
            kc.zero_point = z;
            kc.half_range = r;
        }
        st = kvq_quantizer_init(&s->k[l], &kc, why, why_len);
        if (st == KVQ_OK) st = kvq_quantizer_init(&s->v[l], &vc, why, why_len);
    }
    free(z);
    free(r);
    if (st != KVQ_OK) kvq_kv_sim_free(s);
    return st;
}

kvq_status kvq_kv_sim_apply(kvq_kv_sim *s, int layer, int post_rope, float *k, float *v,
                            size_t n_windows, size_t T, char *why, size_t why_len) {
    if (!s || layer < 0 || layer >= s->n_layers) return KVQ_ERR_ARG;
    size_t d = s->kv_dim;
    kvq_status st = KVQ_OK;
    for (size_t w = 0; w < n_windows && st == KVQ_OK; w++) {
        if (k && (post_rope != 0) == (s->k_post_rope != 0)) {
            st = kvq_quant_apply(&s->k[layer], k + w * T * d, T, 0, &s->k_bits);
            if (st != KVQ_OK) WHY("layer %d window %zu: keys: %s", layer, w, kvq_status_message(st));
        }
        if (st == KVQ_OK && v && !post_rope) {
            st = kvq_quant_apply(&s->v[layer], v + w * T * d, T, 0, &s->v_bits);
            if (st != KVQ_OK) WHY("layer %d window %zu: values: %s", layer, w, kvq_status_message(st));
        }
    }
    return st;
}
