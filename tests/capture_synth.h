/* capture_synth.h — synthetic capture samples for the capture tests: every value is a fixed
 * function of (sample, layer, tensor, row, channel), so any process (a killed writer, its resume,
 * the checking parent) can regenerate exactly what a sample must hold. Test-only; static inline. */
#ifndef KVQ_CAPTURE_SYNTH_H
#define KVQ_CAPTURE_SYNTH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_h5.h"
#include "kvq_half.h"
#include "rng.h"

static inline float synth_value(uint32_t sample, uint32_t layer, int t, size_t row, size_t col) {
    uint64_t st = ((uint64_t)sample << 44) ^ ((uint64_t)layer << 34) ^ ((uint64_t)t << 30) ^
                  ((uint64_t)row << 14) ^ (uint64_t)col;
    double u = (double)(kvq_splitmix64(&st) >> 11) * 0x1.0p-53;   /* [0, 1) */
    return t >= 2 ? (float)(u * u * 1e-6) : (float)(8 * u - 4);  /* Fisher >= 0, tiny like real ones */
}

/* What the file must return for a value of tensor t written as fp32 (storage rounding; Fisher
 * tensors of a float16 file are stored as bfloat16). */
static inline float synth_stored(const kvq_capture_meta *m, int t, float x) {
    kvq_capture_dtype d = kvq_capture_tensor_dtype(m->dtype, (kvq_capture_tensor)t);
    if (d == KVQ_CAPTURE_F16) return kvq_f16_to_f32(kvq_f32_to_f16(x));
    if (d == KVQ_CAPTURE_BF16) return kvq_bf16_to_f32(kvq_f32_to_bf16(x));
    return x;
}

static inline uint64_t synth_window(const kvq_capture_meta *m, uint32_t sample) {
    kvq_rng r;
    uint64_t x = 0;
    kvq_rng_seed(&r, m->seed);
    for (uint32_t i = 0; i <= sample; i++) x = kvq_rng_below(&r, 100000);
    return x;
}

/* A small model identity and capture settings: 4 layers, layers 0, 2, 3 captured. */
static inline void synth_meta(kvq_capture_meta *m, uint32_t kv_heads, uint32_t head_dim, uint32_t seq_len,
                              uint32_t samples, int fisher, kvq_capture_dtype dtype, int compress) {
    kvq_model_identity id;
    memset(&id, 0, sizeof id);
    snprintf(id.architecture, sizeof id.architecture, "llama");
    id.n_layers = 4; id.n_heads = kv_heads * 2; id.n_kv_heads = kv_heads; id.head_dim = head_dim;
    id.hidden = id.n_heads * head_dim; id.vocab = 512; id.rope_theta = 10000; id.rope_scaling_factor = 1;
    id.fingerprint = 0x0123456789abcdefull;
    kvq_capture_meta_init(m, &id);
    m->n_captured = 3; m->layers[0] = 0; m->layers[1] = 2; m->layers[2] = 3;
    m->seq_len = seq_len; m->samples_requested = samples; m->fisher = fisher; m->dtype = dtype;
    m->compress = compress; m->seed = 7; m->text_tokens = 100000 + seq_len;
    snprintf(m->model_path, sizeof m->model_path, "synthetic/model");
    snprintf(m->tokenizer, sizeof m->tokenizer, "synthetic/tokenizer.json");
    snprintf(m->text_path, sizeof m->text_path, "synthetic.txt");
    snprintf(m->text_sha256, sizeof m->text_sha256, "%064d", 0);
}

/* Append sample `s` (all captured layers) and commit it. buf: 4 scratch arrays (seq_len*kv_dim). */
static inline kvq_status synth_append(kvq_capture_writer *w, const kvq_capture_meta *m, uint32_t s,
                                      float *buf[4], char *why, size_t why_len) {
    size_t kv = (size_t)m->model.n_kv_heads * m->model.head_dim;
    kvq_status st = kvq_capture_begin(w, synth_window(m, s), m->seq_len, why, why_len);
    for (uint32_t slot = 0; slot < m->n_captured && !st; slot++) {
        for (int t = 0; t < 4; t++)
            for (size_t i = 0; i < m->seq_len * kv; i++) buf[t][i] = synth_value(s, m->layers[slot], t, i / kv, i % kv);
        st = kvq_capture_put_layer(w, slot, buf[0], buf[1], m->fisher ? buf[2] : NULL,
                                   m->fisher ? buf[3] : NULL, why, why_len);
    }
    return st ? st : kvq_capture_commit(w, why, why_len);
}

static inline void synth_bufs(const kvq_capture_meta *m, float *buf[4]) {
    size_t n = (size_t)m->seq_len * m->model.n_kv_heads * m->model.head_dim;
    for (int t = 0; t < 4; t++) buf[t] = malloc(n * sizeof(float));
}
static inline void synth_free(float *buf[4]) { for (int t = 0; t < 4; t++) free(buf[t]); }

/* Number of elements of the committed data that differ from the synthetic values (0 = all
 * samples are exactly what synth_append wrote), or -1 when a read fails. */
static inline long synth_mismatches(const kvq_capture_reader *r) {
    const kvq_capture_meta *m = kvq_capture_reader_meta(r);
    size_t kv = kvq_capture_kv_dim(r);
    float *row = malloc((size_t)m->seq_len * kv * sizeof(float));
    long bad = 0;
    char why[512];
    for (uint32_t s = 0; s < kvq_capture_n_samples(r) && row; s++) {
        const kvq_capture_sample *sm = &kvq_capture_samples(r)[s];
        if (sm->row_start != (uint64_t)s * m->seq_len || sm->length != m->seq_len ||
            sm->window_start != synth_window(m, s))
            bad++;
        for (uint32_t slot = 0; slot < m->n_captured; slot++)
            for (int t = 0; t < (m->fisher ? 4 : 2); t++) {
                if (kvq_capture_read_rows(r, m->layers[slot], (kvq_capture_tensor)t, sm->row_start, m->seq_len,
                                          row, why, sizeof why)) { free(row); return -1; }
                for (size_t i = 0; i < m->seq_len * kv; i++)
                    bad += row[i] != synth_stored(m, t, synth_value(s, m->layers[slot], t, i / kv, i % kv));
            }
    }
    free(row);
    return bad;
}

#endif
