/* quant.c — the CPU reference of docs/quantization.md (quant.h): midpoint encoding, static
 * per-channel keys with capped outliers, dynamic per-group values with top-m/bottom-m outliers,
 * fp16 scales, fmaf dequantization, sink and recent tokens in fp16, KIVI's per-channel token
 * blocks. Every step is the plain fp32 operation the spec names (this file must be compiled
 * without -ffast-math: the CUDA runtime is tested against it bit for bit). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvq_half.h"
#include "quant.h"

#define WHY(...) do { if (why && why_len) snprintf(why, why_len, __VA_ARGS__); } while (0)

static kvq_status check_config(const kvq_quant_config *c, char *why, size_t why_len) {
    if (c->dim == 0 || c->dim > 65535) { WHY("dim %u outside 1..65535", c->dim); return KVQ_ERR_ARG; }
    if (c->scheme == KVQ_QS_FP16) return KVQ_OK;
    if (c->scheme != KVQ_QS_STATIC_CHANNEL && c->scheme != KVQ_QS_TOKEN_GROUP &&
        c->scheme != KVQ_QS_CHANNEL_BLOCK) { WHY("unknown scheme %d", (int)c->scheme); return KVQ_ERR_ARG; }
    if (c->bits < 1 || c->bits > KVQ_MAX_BITS) { WHY("bits %u outside 1..%d", c->bits, KVQ_MAX_BITS); return KVQ_ERR_ARG; }
    if (!c->lut) { WHY("no level table"); return KVQ_ERR_ARG; }
    for (uint32_t i = 0; i < (1u << c->bits); i++) {
        if (!isfinite(c->lut[i]) || fabsf(c->lut[i]) > 1e30f) { WHY("level %u is not finite", i); return KVQ_ERR_NONFINITE; }
        if (i && c->lut[i] < c->lut[i - 1]) { WHY("levels not ascending at %u", i); return KVQ_ERR_ARG; }
    }
    if (!(c->outlier_fraction >= 0.0f && c->outlier_fraction < 1.0f)) {
        WHY("outlier fraction %g outside [0, 1)", (double)c->outlier_fraction); return KVQ_ERR_ARG;
    }
    if (c->residual != KVQ_OUTLIER_EXACT && c->residual != KVQ_OUTLIER_RESIDUAL) {
        WHY("unknown outlier residual mode %d", (int)c->residual); return KVQ_ERR_ARG;
    }
    if (c->scheme == KVQ_QS_STATIC_CHANNEL) {
        if (!c->zero_point || !c->half_range) { WHY("static per-channel scheme without z/r"); return KVQ_ERR_ARG; }
        for (uint32_t i = 0; i < c->dim; i++) {
            if (!isfinite(c->zero_point[i]) || !isfinite(c->half_range[i])) { WHY("z/r of channel %u not finite", i); return KVQ_ERR_NONFINITE; }
            if (!(c->half_range[i] > 0.0f)) { WHY("half-range of channel %u is %g, not > 0", i, (double)c->half_range[i]); return KVQ_ERR_ARG; }
        }
    } else if (c->group == 0) { WHY("group size 0"); return KVQ_ERR_ARG; }
    if (c->scheme == KVQ_QS_CHANNEL_BLOCK && c->outlier_fraction > 0.0f) {
        WHY("per-channel token blocks take no outliers"); return KVQ_ERR_UNSUPPORTED;
    }
    return KVQ_OK;
}

kvq_status kvq_quantizer_init(kvq_quantizer *q, const kvq_quant_config *cfg, char *why,
                              size_t why_len) {
    if (!q || !cfg) return KVQ_ERR_ARG;
    memset(q, 0, sizeof *q);
    kvq_status st = check_config(cfg, why, why_len);
    if (st != KVQ_OK) return st;
    q->cfg = *cfg;
    q->cfg.lut = q->cfg.zero_point = q->cfg.half_range = NULL;
    if (cfg->scheme != KVQ_QS_FP16) {
        q->n_levels = 1u << cfg->bits;
        memcpy(q->lut, cfg->lut, q->n_levels * sizeof(float));
        for (uint32_t i = 0; i + 1 < q->n_levels; i++) q->mid[i] = 0.5f * (q->lut[i] + q->lut[i + 1]);
        q->cfg.lut = q->lut;
    }
    size_t n = cfg->dim;
    if (cfg->scheme == KVQ_QS_CHANNEL_BLOCK && cfg->group > n) n = cfg->group;
    q->h = malloc(n * sizeof(float));
    q->x = malloc(n * sizeof(float));
    q->flag = malloc(n);
    q->codes = malloc(n);
    if (cfg->scheme == KVQ_QS_STATIC_CHANNEL) {
        q->z = malloc(n * sizeof(float));
        q->r = malloc(n * sizeof(float));
    }
    if (!q->h || !q->x || !q->flag || !q->codes || (cfg->scheme == KVQ_QS_STATIC_CHANNEL && (!q->z || !q->r))) {
        kvq_quantizer_free(q);
        WHY("out of memory for a quantizer of dim %u", cfg->dim);
        return KVQ_ERR_NOMEM;
    }
    if (cfg->scheme == KVQ_QS_STATIC_CHANNEL) {
        memcpy(q->z, cfg->zero_point, n * sizeof(float));
        memcpy(q->r, cfg->half_range, n * sizeof(float));
        q->cfg.zero_point = q->z;
        q->cfg.half_range = q->r;
    }
    if (cfg->scheme == KVQ_QS_TOKEN_GROUP) q->n_groups = (cfg->dim + cfg->group - 1) / cfg->group;
    return KVQ_OK;
}

void kvq_quantizer_free(kvq_quantizer *q) {
    if (!q) return;
    free(q->h);
    free(q->x);
    free(q->flag);
    free(q->codes);
    free(q->z);
    free(q->r);
    memset(q, 0, sizeof *q);
}

kvq_status kvq_quantizer_from_codebook(kvq_quantizer *q, const kvq_tensor_codebook *t,
                                       uint32_t kv_dim, uint32_t head_dim, uint32_t n_sink,
                                       char *why, size_t why_len) {
    if (!q || !t || !t->centroids) return KVQ_ERR_ARG;
    if (t->bits < 1 || t->bits > KVQ_MAX_BITS) { WHY("codebook bits %u outside 1..%d", t->bits, KVQ_MAX_BITS); return KVQ_ERR_FORMAT; }
    float lut[1 << KVQ_MAX_BITS];
    kvq_codebook_lut(t, lut);
    kvq_quant_config c = {.dim = kv_dim, .bits = t->bits, .lut = lut,
                          .outlier_fraction = t->outlier_fraction, .outlier_cap = t->outlier_cap,
                          .residual = t->residual, .n_sink = n_sink};
    switch (t->axis) {
    case KVQ_NORM_PER_CHANNEL:
        c.scheme = KVQ_QS_STATIC_CHANNEL;
        c.zero_point = t->zero_point;
        c.half_range = t->half_range;
        break;
    case KVQ_NORM_PER_TOKEN: c.scheme = KVQ_QS_TOKEN_GROUP; c.group = kv_dim; break;
    case KVQ_NORM_PER_TOKEN_HEAD:
        if (head_dim == 0 || kv_dim % head_dim) { WHY("head_dim %u does not divide kv_dim %u", head_dim, kv_dim); return KVQ_ERR_SHAPE; }
        c.scheme = KVQ_QS_TOKEN_GROUP;
        c.group = head_dim;
        break;
    default: WHY("unknown normalisation axis %d", (int)t->axis); return KVQ_ERR_FORMAT;
    }
    return kvq_quantizer_init(q, &c, why, why_len);
}

uint32_t kvq_quant_code(const kvq_quantizer *q, float x) {
    uint32_t lo = 0, hi = q->n_levels - 1;   /* answer in [0, L-1]; mid is non-decreasing */
    while (lo < hi) {
        uint32_t m = lo + (hi - lo) / 2;
        if (q->mid[m] < x) lo = m + 1; else hi = m;
    }
    return lo;
}

kvq_status kvq_qtoken_init(kvq_qtoken *t, const kvq_quantizer *q) {
    if (!t || !q) return KVQ_ERR_ARG;
    memset(t, 0, sizeof *t);
    size_t d = q->cfg.dim, g = q->n_groups;
    t->codes = malloc(d);
    t->outliers = malloc(d * sizeof(kvq_outlier));
    if (g) { t->z = malloc(g * sizeof(uint16_t)); t->r = malloc(g * sizeof(uint16_t)); }
    if (!t->codes || !t->outliers || (g && (!t->z || !t->r))) { kvq_qtoken_free(t); return KVQ_ERR_NOMEM; }
    return KVQ_OK;
}

void kvq_qtoken_free(kvq_qtoken *t) {
    if (!t) return;
    free(t->codes);
    free(t->z);
    free(t->r);
    free(t->outliers);
    memset(t, 0, sizeof *t);
}

/* Channel a ranks before channel b: larger key (sign > 0) or smaller key (sign < 0), ties to the
 * lower channel. -0 and +0 tie. */
static int ranks_before(const float *key, uint32_t a, uint32_t b, int sign) {
    if (key[a] != key[b]) return sign > 0 ? key[a] > key[b] : key[a] < key[b];
    return a < b;
}

enum { KEEP_HEAP_MAX = 256 };

/* Among channels [c0, c0+n) with flag == from, mark (flag = mark) the `keep` that rank first
 * (ranks_before) and set the others' flag to 0. Up to KEEP_HEAP_MAX kept: one pass with a heap of
 * the kept channels, worst on top (O(n log keep)); more: `keep` scans for the best remaining
 * (O(keep n)). Both give exactly that set. */
static void keep_extremes(uint8_t *flag, const float *key, uint32_t c0, uint32_t n, uint8_t from,
                          uint32_t keep, int sign, uint8_t mark) {
    if (keep <= KEEP_HEAP_MAX) {
        uint32_t heap[KEEP_HEAP_MAX], size = 0;   /* heap[0] ranks last among the kept */
        for (uint32_t c = c0; c < c0 + n; c++) {
            if (flag[c] != from) continue;
            uint32_t i;
            if (size < keep) {                 /* sift up */
                for (i = size++; i > 0 && ranks_before(key, heap[(i - 1) / 2], c, sign); i = (i - 1) / 2)
                    heap[i] = heap[(i - 1) / 2];
            } else if (keep && ranks_before(key, c, heap[0], sign)) {
                for (i = 0;;) {                /* replace the top, sift down */
                    uint32_t l = 2 * i + 1, w = l;
                    if (l >= size) break;
                    if (l + 1 < size && ranks_before(key, heap[l], heap[l + 1], sign)) w = l + 1;
                    if (!ranks_before(key, c, heap[w], sign)) break;
                    heap[i] = heap[w];
                    i = w;
                }
            } else {
                continue;
            }
            heap[i] = c;
        }
        for (uint32_t j = 0; j < size; j++) flag[heap[j]] = mark;
    } else {
        for (uint32_t j = 0; j < keep; j++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t c = c0; c < c0 + n; c++)
                if (flag[c] == from && (best == UINT32_MAX || ranks_before(key, c, best, sign))) best = c;
            if (best == UINT32_MAX) break;
            flag[best] = mark;
        }
    }
    for (uint32_t c = c0; c < c0 + n; c++) if (flag[c] == from) flag[c] = 0;
}

enum { MARK_UP = 1, MARK_LO = 2, CAND_UP = 3, CAND_LO = 4 };

static float dense_value(const kvq_quantizer *q, uint8_t code, float r, float z) {
    return fmaf(q->lut[code], r, z);
}

/* Emit flagged channels as outliers, ascending; h_in holds the fp16-rounded inputs. */
static void emit_outliers(const kvq_quantizer *q, const float *h_in, kvq_qtoken *t) {
    t->n_outliers = 0;
    uint32_t d = q->cfg.dim;
    for (uint32_t c = 0; c < d; c++) {
        if (!q->flag[c]) continue;
        float v = h_in[c];
        if (q->cfg.residual == KVQ_OUTLIER_RESIDUAL) {
            float z, r;
            if (q->cfg.scheme == KVQ_QS_STATIC_CHANNEL) { z = q->z[c]; r = q->r[c]; }
            else { uint32_t g = c / q->cfg.group; z = kvq_f16_to_f32(t->z[g]); r = kvq_f16_to_f32(t->r[g]); }
            v = v - dense_value(q, t->codes[c], r, z);
        }
        t->outliers[t->n_outliers].channel = (uint16_t)c;
        t->outliers[t->n_outliers].value = kvq_f32_to_f16(v);
        t->n_outliers++;
    }
}

static void encode_static(kvq_quantizer *q, const float *h_in, kvq_qtoken *t) {
    uint32_t d = q->cfg.dim, n_up = 0, n_lo = 0;
    int outl = q->cfg.outlier_fraction > 0.0f;
    for (uint32_t c = 0; c < d; c++) {
        float x = (h_in[c] - q->z[c]) / q->r[c];
        q->x[c] = x;
        t->codes[c] = (uint8_t)kvq_quant_code(q, x);
        q->flag[c] = 0;
        if (outl && x > 1.0f) { q->flag[c] = CAND_UP; n_up++; }
        else if (outl && x < -1.0f) { q->flag[c] = CAND_LO; n_lo++; }
    }
    uint32_t m = q->cfg.outlier_cap;
    if (m && n_up > m) keep_extremes(q->flag, q->x, 0, d, CAND_UP, m, +1, MARK_UP);
    if (m && n_lo > m) keep_extremes(q->flag, q->x, 0, d, CAND_LO, m, -1, MARK_LO);
    /* below the cap every candidate is an outlier (flags CAND_* count as marked) */
}

/* Outliers per group of g elements: cap, else floor(p/2 * g) in fp32; none when 2m >= g. */
static uint32_t group_outliers(const kvq_quant_config *c, uint32_t g) {
    if (!(c->outlier_fraction > 0.0f)) return 0;
    uint32_t m = c->outlier_cap ? c->outlier_cap : (uint32_t)floorf(c->outlier_fraction / 2.0f * (float)g);
    return 2ull * m < g ? m : 0;
}

/* §4 on one group in[0..g) (fp16-rounded values): picks outliers (flag[0..g)), writes fp16 z/r
 * bits and codes. */
static void encode_group(const kvq_quantizer *q, const float *in, uint32_t g, uint8_t *flag,
                         uint8_t *codes, uint16_t *zb, uint16_t *rb) {
    uint32_t m = group_outliers(&q->cfg, g);
    for (uint32_t i = 0; i < g; i++) flag[i] = m ? CAND_UP : 0;
    if (m) {
        keep_extremes(flag, in, 0, g, CAND_UP, m, +1, MARK_UP);   /* unpicked ones back to 0 */
        for (uint32_t i = 0; i < g; i++) if (!flag[i]) flag[i] = CAND_LO;
        keep_extremes(flag, in, 0, g, CAND_LO, m, -1, MARK_LO);
    }
    float hi = 0.0f, lo = 0.0f;
    int first = 1;
    for (uint32_t i = 0; i < g; i++) {
        if (flag[i]) continue;
        if (first || in[i] > hi) hi = in[i];
        if (first || in[i] < lo) lo = in[i];
        first = 0;
    }
    float z = kvq_round_f16(0.5f * (hi + lo)), r = kvq_round_f16(0.5f * (hi - lo));
    if (r == 0.0f) r = kvq_round_f16(1.0f);
    *zb = kvq_f32_to_f16(z);
    *rb = kvq_f32_to_f16(r);
    for (uint32_t i = 0; i < g; i++) codes[i] = (uint8_t)kvq_quant_code(q, (in[i] - z) / r);
}

/* h() of every input, rejecting NaN/Inf (the spec's inputs are finite). */
static kvq_status round_inputs(float *h, const float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return KVQ_ERR_NONFINITE;
        h[i] = kvq_round_f16(x[i]);
    }
    return KVQ_OK;
}

kvq_status kvq_quant_encode(kvq_quantizer *q, const float *x, kvq_qtoken *t) {
    if (!q || !x || !t || !t->codes) return KVQ_ERR_ARG;
    if (q->cfg.scheme != KVQ_QS_STATIC_CHANNEL && q->cfg.scheme != KVQ_QS_TOKEN_GROUP) return KVQ_ERR_ARG;
    uint32_t d = q->cfg.dim;
    kvq_status st = round_inputs(q->h, x, d);
    if (st != KVQ_OK) return st;
    if (q->cfg.scheme == KVQ_QS_STATIC_CHANNEL) {
        encode_static(q, q->h, t);
    } else {
        uint32_t gs = q->cfg.group;
        for (uint32_t k = 0; k < q->n_groups; k++) {
            uint32_t c0 = k * gs, g = d - c0 < gs ? d - c0 : gs;
            encode_group(q, q->h + c0, g, q->flag + c0, t->codes + c0, &t->z[k], &t->r[k]);
        }
    }
    emit_outliers(q, q->h, t);
    return KVQ_OK;
}

void kvq_quant_decode(const kvq_quantizer *q, const kvq_qtoken *t, float *out) {
    uint32_t d = q->cfg.dim;
    if (q->cfg.scheme == KVQ_QS_STATIC_CHANNEL) {
        for (uint32_t c = 0; c < d; c++) out[c] = dense_value(q, t->codes[c], q->r[c], q->z[c]);
    } else {
        uint32_t gs = q->cfg.group;
        for (uint32_t k = 0; k < q->n_groups; k++) {
            float z = kvq_f16_to_f32(t->z[k]), r = kvq_f16_to_f32(t->r[k]);
            uint32_t end = (k + 1) * gs < d ? (k + 1) * gs : d;
            for (uint32_t c = k * gs; c < end; c++) out[c] = dense_value(q, t->codes[c], r, z);
        }
    }
    for (uint32_t i = 0; i < t->n_outliers; i++) {
        uint32_t c = t->outliers[i].channel;
        float v = kvq_f16_to_f32(t->outliers[i].value);
        out[c] = q->cfg.residual == KVQ_OUTLIER_RESIDUAL ? out[c] + v : v;
    }
}

/* KIVI keys: tokens [t0, t0 + n_blocks*G) of x (T, dim), each channel's G-token block normalised
 * on its own (§4 arithmetic with no outliers), dequantized in place. */
static kvq_status apply_channel_blocks(kvq_quantizer *q, float *x, size_t t0, size_t n_blocks) {
    uint32_t d = q->cfg.dim, G = q->cfg.group;
    for (size_t b = 0; b < n_blocks; b++) {
        float *blk = x + (t0 + b * G) * d;   /* (G, dim) */
        for (uint32_t c = 0; c < d; c++) {
            for (uint32_t i = 0; i < G; i++) {
                float v = blk[(size_t)i * d + c];
                if (!isfinite(v)) return KVQ_ERR_NONFINITE;
                q->h[i] = kvq_round_f16(v);
            }
            uint16_t zb, rb;
            encode_group(q, q->h, G, q->flag, q->codes, &zb, &rb);
            float z = kvq_f16_to_f32(zb), r = kvq_f16_to_f32(rb);
            for (uint32_t i = 0; i < G; i++) blk[(size_t)i * d + c] = dense_value(q, q->codes[i], r, z);
        }
    }
    return KVQ_OK;
}

static kvq_status apply_fp16(float *x, size_t n_tok, uint32_t d, kvq_bit_tally *tally) {
    for (size_t i = 0; i < n_tok * d; i++) {
        if (!isfinite(x[i])) return KVQ_ERR_NONFINITE;
        x[i] = kvq_round_f16(x[i]);
    }
    if (tally && n_tok) kvq_bits_add_fp16(tally, n_tok, d);
    return KVQ_OK;
}

kvq_status kvq_quant_apply(kvq_quantizer *q, float *x, size_t T, size_t pos0,
                           kvq_bit_tally *tally) {
    if (!q || (!x && T)) return KVQ_ERR_ARG;
    const kvq_quant_config *c = &q->cfg;
    uint32_t d = c->dim;
    /* tokens [0, n_sink_here) are sink tokens, [q_end, T) the recent window */
    size_t n_sink_here = pos0 < c->n_sink ? c->n_sink - pos0 : 0;
    if (n_sink_here > T) n_sink_here = T;
    size_t q_end = T > c->n_recent ? T - c->n_recent : 0;
    if (q_end < n_sink_here) q_end = n_sink_here;
    if (c->scheme == KVQ_QS_FP16) { n_sink_here = T; q_end = T; }
    if (c->scheme == KVQ_QS_CHANNEL_BLOCK)   /* an incomplete last block stays fp16 */
        q_end = n_sink_here + (q_end - n_sink_here) / c->group * c->group;
    kvq_status st = apply_fp16(x, n_sink_here, d, tally);
    if (st == KVQ_OK) st = apply_fp16(x + q_end * d, T - q_end, d, tally);
    if (st != KVQ_OK || q_end == n_sink_here) {
        if (tally && st == KVQ_OK) tally->n_sequences++;
        return st;
    }
    size_t n_q = q_end - n_sink_here;
    if (c->scheme == KVQ_QS_CHANNEL_BLOCK) {
        st = apply_channel_blocks(q, x, n_sink_here, n_q / c->group);
        if (st == KVQ_OK && tally) {
            kvq_bits_add_codes(tally, n_q, d, c->bits, 0);
            kvq_bits_add_group_scales(tally, (uint64_t)(n_q / c->group) * d);
        }
    } else {
        kvq_qtoken tok;
        st = kvq_qtoken_init(&tok, q);
        for (size_t i = n_sink_here; st == KVQ_OK && i < q_end; i++) {
            st = kvq_quant_encode(q, x + i * d, &tok);
            if (st != KVQ_OK) break;
            kvq_quant_decode(q, &tok, x + i * d);
            if (tally) kvq_bits_add_outliers(tally, tok.n_outliers);
        }
        kvq_qtoken_free(&tok);
        if (st == KVQ_OK && tally) {
            kvq_bits_add_codes(tally, n_q, d, c->bits, c->outlier_fraction > 0.0f);
            if (c->scheme == KVQ_QS_STATIC_CHANNEL) kvq_bits_add_static_scales(tally, d);
            else kvq_bits_add_group_scales(tally, (uint64_t)n_q * q->n_groups);
        }
    }
    if (st == KVQ_OK && tally) tally->n_sequences++;
    return st;
}
