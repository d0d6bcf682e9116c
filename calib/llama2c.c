/* llama2c.c — loader of llama2.c legacy checkpoints (e.g. stories260K.bin): a header of 7 int32
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: untied classifier),
 * seq_len), then fp32 arrays, each stacked over layers: token_embedding, rms_att, wq, wk, wv, wo,
 * rms_ffn, w1 (gate), w2 (down), w3 (up), rms_final, freq_cis_real, freq_cis_imag (skipped),
 * wcls when untied. The file is mapped; only wq/wk are copied (permuted from interleaved to
 * rotate-half RoPE). Not the llama2.c tokenizer.bin reader, not the versioned "ak42" export. */
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "model_internal.h"

enum { HEADER_BYTES = 7 * 4 };

static kvq_status read_header(const kvq_mapped_file *f, const char *path, kvq_model_config *c, int *seq_len,
                              char *why, size_t why_len) {
    if (f->size < HEADER_BYTES) {
        snprintf(why, why_len, "%s: %zu bytes: too short for a llama2.c header", path, f->size);
        return KVQ_ERR_TRUNCATED;
    }
    if (!memcmp(f->data, "ak42", 4)) {
        snprintf(why, why_len, "%s: versioned llama2.c export (magic ak42) is not supported; "
                 "export with the legacy format", path);
        return KVQ_ERR_UNSUPPORTED;
    }
    int32_t h[7];
    memcpy(h, f->data, sizeof h);
    memset(c, 0, sizeof *c);
    snprintf(c->architecture, sizeof c->architecture, "llama");
    c->hidden = h[0];
    c->intermediate = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->tied_embeddings = h[5] > 0;
    c->vocab = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
    c->max_pos = *seq_len = h[6];
    c->head_dim = h[3] > 0 && h[0] % h[3] == 0 ? h[0] / h[3] : 0;
    c->rms_eps = 1e-5f;          /* llama2.c's run.c */
    c->rope_theta = 10000.0f;    /* llama2.c's run.c */
    c->rope_scaling_factor = 1.0f;
    c->bos_id = 1;               /* llama2.c's BOS/EOS */
    c->eos_id = 2;
    kvq_status st = kvq_model_config_check(c, path, why, why_len);
    if (st) return st;
    if (h[6] < 1 || h[6] > (1 << 24)) {
        snprintf(why, why_len, "%s: header: seq_len %d out of range", path, h[6]);
        return KVQ_ERR_SHAPE;
    }
    return KVQ_OK;
}

kvq_status kvq_load_llama2c(const char *path, kvq_model *m, char *why, size_t why_len) {
    kvq_status st = kvq_model_begin(m, path, "llama2c", why, why_len);
    if (st) return st;
    const unsigned char *base;
    size_t size;
    if ((st = kvq_model_map_file(m, path, &base, &size, why, why_len))) return st;
    kvq_mapped_file tmp = {base, size};
    int seq_len;
    if ((st = read_header(&tmp, path, &m->cfg, &seq_len, why, why_len))) return st;
    const kvq_model_config *c = &m->cfg;
    /* Sizes in floats; all factors are < 2^25 so the 64-bit products cannot overflow. */
    uint64_t L = (uint64_t)c->n_layers, d = (uint64_t)c->hidden, q = (uint64_t)c->n_heads * c->head_dim;
    uint64_t kv = (uint64_t)c->n_kv_heads * c->head_dim, hid = (uint64_t)c->intermediate, V = (uint64_t)c->vocab;
    uint64_t sizes[] = {V * d, L * d, L * q * d, L * kv * d, L * kv * d, L * d * q, L * d,
                        L * hid * d, L * d * hid, L * hid * d, d,
                        (uint64_t)seq_len * (uint64_t)c->head_dim, c->tied_embeddings ? 0 : V * d};
    const char *names[] = {"token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
                           "rms_final", "freq_cis", "wcls"};
    enum { N = sizeof sizes / sizeof *sizes };
    uint64_t off[N], pos = HEADER_BYTES;
    for (int i = 0; i < N; i++) {
        off[i] = pos;
        pos += sizes[i] * 4;
        if (pos > size) {
            snprintf(why, why_len, "%s: tensor '%s' ends at byte %llu, past the end of the file (%zu bytes)",
                     path, names[i], (unsigned long long)pos, size);
            return KVQ_ERR_TRUNCATED;
        }
    }
    if (pos != size) {
        snprintf(why, why_len, "%s: %zu bytes but the header implies %llu", path, size, (unsigned long long)pos);
        return KVQ_ERR_SHAPE;
    }
    if ((st = kvq_model_alloc_layers(m, why, why_len))) return st;
#define TAKE(idx, layer, per, permute, dst)                                                              \
    do {                                                                                                \
        kvq_src_tensor t = {path, names[idx], KVQ_GGML_F32, base + off[idx] + (uint64_t)(layer) * (per) * 4, (per)}; \
        if ((st = kvq_model_take(m, &t, (permute), (dst), why, why_len))) return st;                    \
    } while (0)
    TAKE(0, 0, V * d, 0, &m->tok_embed);
    for (int l = 0; l < c->n_layers; l++) {
        kvq_layer_weights *w = &m->layers[l];
        TAKE(1, l, d, 0, &w->attn_norm);
        TAKE(2, l, q * d, c->n_heads, &w->wq);
        TAKE(3, l, kv * d, c->n_kv_heads, &w->wk);
        TAKE(4, l, kv * d, 0, &w->wv);
        TAKE(5, l, d * q, 0, &w->wo);
        TAKE(6, l, d, 0, &w->mlp_norm);
        TAKE(7, l, hid * d, 0, &w->w_gate);
        TAKE(8, l, d * hid, 0, &w->w_down);
        TAKE(9, l, hid * d, 0, &w->w_up);
    }
    TAKE(10, 0, d, 0, &m->final_norm);
    if (c->tied_embeddings) m->lm_head = m->tok_embed;
    else TAKE(12, 0, V * d, 0, &m->lm_head);
#undef TAKE
    return kvq_model_finish(m, why, why_len);
}
