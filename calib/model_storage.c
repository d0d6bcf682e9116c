/* model_storage.c — the loaders' shared machinery (model_internal.h): mappings and owned fp32
 * buffers of a model, tensor acquisition (in place when fp32 and aligned, else converted), the
 * interleaved -> rotate-half RoPE row permutation, config sanity checks and the final checks.
 * Not a file parser: the format loaders find the tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_quant.h"
#include "model_internal.h"

kvq_status kvq_model_begin(kvq_model *m, const char *path, const char *format, char *why, size_t why_len) {
    memset(m, 0, sizeof *m);
    m->storage = calloc(1, sizeof *m->storage);
    if (!m->storage) {
        snprintf(why, why_len, "%s: out of memory", path);
        return KVQ_ERR_NOMEM;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    snprintf(m->format, sizeof m->format, "%s", format);
    m->cfg.bos_id = m->cfg.eos_id = -1;
    m->cfg.rope_scaling_factor = 1.0f;
    return KVQ_OK;
}

/* Grow a pointer array by one slot; 0 on failure. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 1;
    size_t nc = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

kvq_status kvq_model_keep_map(kvq_model *m, kvq_mapped_file *f, char *why, size_t why_len) {
    struct kvq_model_storage *s = m->storage;
    if (!grow((void **)&s->maps, &s->cap_maps, s->n_maps, sizeof *s->maps)) {
        kvq_mapped_file_close(f);
        snprintf(why, why_len, "%s: out of memory", m->path);
        return KVQ_ERR_NOMEM;
    }
    s->maps[s->n_maps++] = *f;
    memset(f, 0, sizeof *f);
    return KVQ_OK;
}

kvq_status kvq_model_map_file(kvq_model *m, const char *path, const unsigned char **data, size_t *size,
                              char *why, size_t why_len) {
    kvq_mapped_file f;
    kvq_status st = kvq_mapped_file_open(path, &f, why, why_len);
    if (st) return st;
    *data = f.data;
    *size = f.size;
    return kvq_model_keep_map(m, &f, why, why_len);
}

kvq_status kvq_model_alloc_layers(kvq_model *m, char *why, size_t why_len) {
    m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    if (!m->layers) {
        snprintf(why, why_len, "%s: out of memory for %d layers", m->path, m->cfg.n_layers);
        return KVQ_ERR_NOMEM;
    }
    return KVQ_OK;
}

static float *own_buffer(kvq_model *m, uint64_t n) {
    struct kvq_model_storage *s = m->storage;
    if (n == 0 || n > SIZE_MAX / sizeof(float)) return NULL;
    if (!grow((void **)&s->bufs, &s->cap_bufs, s->n_bufs, sizeof *s->bufs)) return NULL;
    float *b = malloc((size_t)n * sizeof(float));
    if (b) s->bufs[s->n_bufs++] = b;
    return b;
}

void kvq_permute_interleaved_rows(float *w, int n_heads, int head_dim, size_t cols, float *scratch) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (size_t)h * head_dim * cols;   /* (head_dim, cols) */
        memcpy(scratch, head, (size_t)head_dim * cols * sizeof *head);
        for (int i = 0; i < half; i++) {
            memcpy(head + (size_t)i * cols, scratch + (size_t)(2 * i) * cols, cols * sizeof *head);
            memcpy(head + (size_t)(i + half) * cols, scratch + (size_t)(2 * i + 1) * cols, cols * sizeof *head);
        }
    }
}

kvq_status kvq_model_take(kvq_model *m, const kvq_src_tensor *t, int permute_heads, const float **out,
                          char *why, size_t why_len) {
    if (!kvq_ggml_can_convert(t->type)) {
        snprintf(why, why_len, "%s: tensor '%s': element type %s (%u) is not supported (kvq reads %s)", t->file,
                 t->name, kvq_ggml_type_name(t->type), (unsigned)t->type, kvq_ggml_supported_types());
        return KVQ_ERR_DTYPE;
    }
    kvq_model_note_dtype(m, t->type);
    if (t->type == KVQ_GGML_F32 && !permute_heads && (uintptr_t)t->data % sizeof(float) == 0) {
        *out = t->data;
        m->bytes_mapped += (size_t)t->n_elements * sizeof(float);
        return KVQ_OK;
    }
    float *buf = own_buffer(m, t->n_elements);
    if (!buf) {
        snprintf(why, why_len, "%s: tensor '%s': out of memory for %llu floats", t->file, t->name,
                 (unsigned long long)t->n_elements);
        return KVQ_ERR_NOMEM;
    }
    kvq_status st = kvq_ggml_to_f32(t->type, t->data, (size_t)t->n_elements, buf);
    if (st) {
        snprintf(why, why_len, "%s: tensor '%s': %llu elements are not whole %s blocks", t->file, t->name,
                 (unsigned long long)t->n_elements, kvq_ggml_type_name(t->type));
        return st;
    }
    if (permute_heads) {
        int hd = m->cfg.head_dim;
        size_t cols = (size_t)(t->n_elements / ((uint64_t)permute_heads * hd));
        float *scratch = malloc((size_t)hd * cols * sizeof *scratch);
        if (!scratch) {
            snprintf(why, why_len, "%s: tensor '%s': out of memory", t->file, t->name);
            return KVQ_ERR_NOMEM;
        }
        kvq_permute_interleaved_rows(buf, permute_heads, hd, cols, scratch);
        free(scratch);
    }
    m->bytes_owned += (size_t)t->n_elements * sizeof(float);
    *out = buf;
    return KVQ_OK;
}

void kvq_model_note_dtype(kvq_model *m, uint32_t type) {
    const char *name = kvq_ggml_type_name(type);
    size_t n = strlen(name), len = strlen(m->dtype);
    for (const char *p = m->dtype; (p = strstr(p, name)); p += n)
        if ((p == m->dtype || p[-1] == '+') && (p[n] == 0 || p[n] == '+')) return;
    if (len + n + 2 > sizeof m->dtype) return;
    snprintf(m->dtype + len, sizeof m->dtype - len, "%s%s", len ? "+" : "", name);
}

kvq_status kvq_model_config_check(const kvq_model_config *c, const char *file, char *why, size_t why_len) {
    const char *bad = NULL;
    if (c->n_layers < 1 || c->n_layers > 4096) bad = "n_layers";
    else if (c->hidden < 1 || c->hidden > (1 << 17)) bad = "hidden size";
    else if (c->n_heads < 1 || c->n_heads > 4096) bad = "n_heads";
    else if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads) bad = "n_kv_heads (must divide n_heads)";
    else if (c->head_dim < 2 || c->head_dim > 4096 || c->head_dim % 2) bad = "head_dim (must be even)";
    else if ((int64_t)c->n_heads * c->head_dim > (1 << 20)) bad = "n_heads * head_dim";
    else if (c->intermediate < 1 || c->intermediate > (1 << 20)) bad = "intermediate size";
    else if (c->vocab < 1 || c->vocab > (1 << 24)) bad = "vocab size";
    else if (!(c->rms_eps > 0) || !isfinite(c->rms_eps)) bad = "rms_norm_eps";
    else if (!(c->rope_theta > 0) || !isfinite(c->rope_theta)) bad = "rope_theta";
    else if (!(c->rope_scaling_factor > 0) || !isfinite(c->rope_scaling_factor)) bad = "rope scaling factor";
    if (!bad) return KVQ_OK;
    snprintf(why, why_len, "%s: config: %s out of range (layers %d hidden %d heads %d/%d head_dim %d "
             "intermediate %d vocab %d)", file, bad, c->n_layers, c->hidden, c->n_heads, c->n_kv_heads,
             c->head_dim, c->intermediate, c->vocab);
    return KVQ_ERR_SHAPE;
}

/* Forget a separate lm_head found equal to tok_embed: free its buffer when owned. */
static void drop_lm_head(kvq_model *m, size_t bytes) {
    struct kvq_model_storage *s = m->storage;
    for (size_t i = 0; i < s->n_bufs; i++)
        if (s->bufs[i] == m->lm_head) {
            free(s->bufs[i]);
            s->bufs[i] = s->bufs[--s->n_bufs];
            m->bytes_owned -= bytes;
            return;
        }
    m->bytes_mapped -= bytes;
}

kvq_status kvq_model_finish(kvq_model *m, char *why, size_t why_len) {
    const kvq_model_config *c = &m->cfg;
    int ok = m->tok_embed && m->final_norm && m->lm_head && m->layers;
    for (int l = 0; ok && l < c->n_layers; l++) {
        const kvq_layer_weights *L = &m->layers[l];
        ok = L->attn_norm && L->wq && L->wk && L->wv && L->wo && L->mlp_norm && L->w_gate && L->w_up &&
             L->w_down && (!c->attention_bias || (L->bq && L->bk && L->bv));
    }
    if (!ok) {
        snprintf(why, why_len, "%s: internal: a weight was not loaded", m->path);
        return KVQ_ERR_MISSING;
    }
    size_t head_bytes = (size_t)c->vocab * c->hidden * sizeof(float);
    if (!c->tied_embeddings && m->lm_head != m->tok_embed && !memcmp(m->lm_head, m->tok_embed, head_bytes)) {
        drop_lm_head(m, head_bytes);
        m->cfg.tied_embeddings = 1;
    }
    if (m->cfg.tied_embeddings) m->lm_head = m->tok_embed;
    return KVQ_OK;
}
