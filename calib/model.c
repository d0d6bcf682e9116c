/* model.c — kvq_model_load (format detection and dispatch), kvq_model_free, the
 * format-independent fingerprint, parameter count and codebook identity (kvq_model.h). The
 * format parsers are model_hf.c, model_gguf.c and llama2c.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "model_internal.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

kvq_status kvq_model_load(const char *path, kvq_model *out, char *why, size_t why_len) {
    if (!path || !out || !why) return KVQ_ERR_ARG;
    memset(out, 0, sizeof *out);
    why[0] = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, why_len, "%s: no such file or directory", path);
        return KVQ_ERR_IO;
    }
    kvq_status s;
    if (S_ISDIR(st.st_mode)) {
        s = kvq_load_hf(path, out, why, why_len);
    } else if (ends_with(path, ".safetensors") || ends_with(path, ".json")) {
        snprintf(why, why_len, "%s: pass the Hugging Face model directory, not one of its files", path);
        return KVQ_ERR_ARG;
    } else {
        char magic[4] = {0};
        FILE *f = fopen(path, "rb");
        if (!f) {
            snprintf(why, why_len, "%s: cannot open", path);
            return KVQ_ERR_IO;
        }
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        s = got == 4 && !memcmp(magic, "GGUF", 4) ? kvq_load_gguf(path, out, why, why_len)
                                                  : kvq_load_llama2c(path, out, why, why_len);
    }
    if (s) kvq_model_free(out);
    return s;
}

void kvq_model_free(kvq_model *m) {
    if (!m) return;
    struct kvq_model_storage *s = m->storage;
    if (s) {
        for (size_t i = 0; i < s->n_bufs; i++) free(s->bufs[i]);
        for (size_t i = 0; i < s->n_maps; i++) kvq_mapped_file_close(&s->maps[i]);
        free(s->bufs);
        free(s->maps);
        free(s);
    }
    free(m->layers);
    memset(m, 0, sizeof *m);
}

static uint32_t crc_f(uint32_t crc, const float *p, size_t n) {
    return p ? kvq_crc32c(crc, p, n * sizeof *p) : crc;
}

static uint32_t crc_le32(uint32_t crc, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    return kvq_crc32c(crc, b, 4);
}

static uint32_t crc_float(uint32_t crc, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return crc_le32(crc, u);
}

/* The config fields that change the computation, as little-endian 32-bit words in this order. */
static uint32_t config_crc(const kvq_model_config *c) {
    const int ints[] = {c->n_layers, c->hidden, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate,
                        c->vocab, (int)c->rope_scaling, c->rope_original_max_pos, c->tied_embeddings,
                        c->attention_bias};
    const float floats[] = {c->rms_eps, c->rope_theta, c->rope_scaling_factor, c->rope_low_freq_factor,
                            c->rope_high_freq_factor};
    uint32_t crc = 0;
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) crc = crc_le32(crc, (uint32_t)ints[i]);
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++) crc = crc_float(crc, floats[i]);
    return crc;
}

uint64_t kvq_model_fingerprint(const kvq_model *m) {
    const kvq_model_config *c = &m->cfg;
    size_t h = (size_t)c->hidden, q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    size_t in = (size_t)c->intermediate, v = (size_t)c->vocab;
    uint32_t crc = crc_f(0, m->tok_embed, v * h);
    for (int l = 0; l < c->n_layers; l++) {
        const kvq_layer_weights *L = &m->layers[l];
        crc = crc_f(crc, L->attn_norm, h);
        crc = crc_f(crc, L->wq, q * h);
        crc = crc_f(crc, L->wk, kv * h);
        crc = crc_f(crc, L->wv, kv * h);
        crc = crc_f(crc, L->wo, h * q);
        if (c->attention_bias) {
            crc = crc_f(crc, L->bq, q);
            crc = crc_f(crc, L->bk, kv);
            crc = crc_f(crc, L->bv, kv);
        }
        crc = crc_f(crc, L->mlp_norm, h);
        crc = crc_f(crc, L->w_gate, in * h);
        crc = crc_f(crc, L->w_up, in * h);
        crc = crc_f(crc, L->w_down, h * in);
    }
    crc = crc_f(crc, m->final_norm, h);
    if (!c->tied_embeddings) crc = crc_f(crc, m->lm_head, v * h);
    return (uint64_t)config_crc(c) << 32 | crc;
}

uint64_t kvq_model_n_params(const kvq_model *m) {
    const kvq_model_config *c = &m->cfg;
    uint64_t h = (uint64_t)c->hidden, q = (uint64_t)c->n_heads * c->head_dim;
    uint64_t kv = (uint64_t)c->n_kv_heads * c->head_dim, in = (uint64_t)c->intermediate;
    uint64_t layer = 2 * h + q * h + 2 * kv * h + h * q + 3 * in * h + (c->attention_bias ? q + 2 * kv : 0);
    return (uint64_t)c->vocab * h * (c->tied_embeddings ? 1 : 2) + (uint64_t)c->n_layers * layer + h;
}

void kvq_model_identity_of(const kvq_model *m, kvq_model_identity *id) {
    const kvq_model_config *c = &m->cfg;
    memset(id, 0, sizeof *id);
    snprintf(id->architecture, sizeof id->architecture, "%s", c->architecture);
    id->n_layers = (uint32_t)c->n_layers;
    id->n_heads = (uint32_t)c->n_heads;
    id->n_kv_heads = (uint32_t)c->n_kv_heads;
    id->head_dim = (uint32_t)c->head_dim;
    id->hidden = (uint32_t)c->hidden;
    id->vocab = (uint32_t)c->vocab;
    id->rope_theta = c->rope_theta;
    id->rope_scaling = c->rope_scaling;
    id->rope_scaling_factor = c->rope_scaling_factor;
    id->rope_low_freq_factor = c->rope_low_freq_factor;
    id->rope_high_freq_factor = c->rope_high_freq_factor;
    id->rope_original_max_pos = (uint32_t)c->rope_original_max_pos;
    id->rope_convention = KVQ_ROPE_ROTATE_HALF;
    id->fingerprint = kvq_model_fingerprint(m);
}
