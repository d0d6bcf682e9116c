/* model_hf.c — loader of Hugging Face model directories: config.json (hf_config.c) and
 * model.safetensors or shards listed by model.safetensors.index.json (weight_map), F32/F16/BF16
 * tensors named model.embed_tokens / model.layers.N.* / model.norm / lm_head. HF checkpoints are
 * already rotate-half: no permutation. F32 tensors are used in place from the mapping. Not the
 * safetensors parser (safetensors.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "json.h"
#include "model_internal.h"
#include "safetensors.h"

enum { MAX_SHARDS = 4096, MAX_JSON = 64 << 20 };

typedef struct hf {
    const char *dir;
    char *names[MAX_SHARDS];        /* shard file names */
    kvq_safetensors st[MAX_SHARDS]; /* parsed headers, parallel to names */
    int n_shards;
    kvq_json *index;                /* model.safetensors.index.json, or NULL */
    const kvq_json *weight_map;
} hf;

static kvq_status read_json_file(const char *path, kvq_json **out, char *why, size_t why_len) {
    kvq_mapped_file f;
    kvq_status st = kvq_mapped_file_open(path, &f, why, why_len);
    if (st) return st;
    char jwhy[160];
    if (f.size > MAX_JSON) {
        snprintf(why, why_len, "%s: %zu bytes is too large for a JSON file here", path, f.size);
        st = KVQ_ERR_OVERFLOW;
    } else if (kvq_json_parse((const char *)f.data, f.size, out, jwhy, sizeof jwhy)) {
        snprintf(why, why_len, "%s: %s", path, jwhy);
        st = KVQ_ERR_FORMAT;
    }
    kvq_mapped_file_close(&f);
    return st;
}

static kvq_status join(char *buf, size_t n, const char *dir, const char *name, char *why, size_t why_len) {
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) {
        snprintf(why, why_len, "%s: path too long", dir);
        return KVQ_ERR_ARG;
    }
    return KVQ_OK;
}

/* Index of shard `name`, opening (mapping into the model) and parsing it on first use. */
static kvq_status shard(kvq_model *m, hf *h, const char *name, int *idx, char *why, size_t why_len) {
    for (int i = 0; i < h->n_shards; i++)
        if (!strcmp(h->names[i], name)) { *idx = i; return KVQ_OK; }
    if (!*name || strchr(name, '/') || name[0] == '.' || h->n_shards == MAX_SHARDS) {
        snprintf(why, why_len, "%s: shard name '%.100s' is not a plain file name (or too many shards)", h->dir, name);
        return KVQ_ERR_FORMAT;
    }
    char path[2048];
    kvq_status st = join(path, sizeof path, h->dir, name, why, why_len);
    const unsigned char *base;
    size_t size;
    if (st || (st = kvq_model_map_file(m, path, &base, &size, why, why_len))) return st;
    if (!(h->names[h->n_shards] = strdup(name))) {
        snprintf(why, why_len, "%s: out of memory", path);
        return KVQ_ERR_NOMEM;
    }
    if ((st = kvq_safetensors_parse(base, size, path, &h->st[h->n_shards], why, why_len))) {
        free(h->names[h->n_shards]);
        return st;
    }
    *idx = h->n_shards++;
    return KVQ_OK;
}

/* Find tensor `name`: through the index's weight_map, else in model.safetensors. */
static kvq_status find(kvq_model *m, hf *h, const char *name, const kvq_st_tensor **t, int *si,
                       char *why, size_t why_len) {
    const char *file = "model.safetensors";
    if (h->weight_map) {
        file = kvq_json_get_string(h->weight_map, name);
        if (!file) {
            snprintf(why, why_len, "%s/model.safetensors.index.json: tensor '%s' is missing from weight_map", h->dir, name);
            return KVQ_ERR_MISSING;
        }
    }
    kvq_status st = shard(m, h, file, si, why, why_len);
    if (st) return st;
    if (!(*t = kvq_safetensors_find(&h->st[*si], name))) {
        snprintf(why, why_len, "%s/%s: tensor '%s' is missing", h->dir, file, name);
        return KVQ_ERR_MISSING;
    }
    return KVQ_OK;
}

/* Take tensor `name` of shape (out, in), or (out) when in == 0. */
static kvq_status take(kvq_model *m, hf *h, const char *name, int out, int in, const float **dst,
                       char *why, size_t why_len) {
    const kvq_st_tensor *t;
    int si;
    kvq_status st = find(m, h, name, &t, &si, why, why_len);
    if (st) return st;
    int ok = in ? t->n_dims == 2 && t->shape[0] == out && t->shape[1] == in : t->n_dims == 1 && t->shape[0] == out;
    if (!ok) {
        snprintf(why, why_len, "%s/%s: tensor '%s' has shape [%lld, %lld] (%d dims), the config implies [%d, %d]",
                 h->dir, h->names[si], name, (long long)(t->n_dims > 0 ? t->shape[0] : 0),
                 (long long)(t->n_dims > 1 ? t->shape[1] : 0), t->n_dims, out, in);
        return KVQ_ERR_SHAPE;
    }
    uint32_t type = t->dtype == KVQ_ST_F32 ? KVQ_GGML_F32 : t->dtype == KVQ_ST_F16 ? KVQ_GGML_F16
                  : t->dtype == KVQ_ST_BF16 ? KVQ_GGML_BF16 : UINT32_MAX;
    if (type == UINT32_MAX) {
        snprintf(why, why_len, "%s/%s: tensor '%s': dtype %s is not supported (F32, F16, BF16)", h->dir,
                 h->names[si], name, kvq_st_dtype_name(t->dtype));
        return KVQ_ERR_DTYPE;
    }
    char file[2048];
    snprintf(file, sizeof file, "%s/%s", h->dir, h->names[si]);
    kvq_src_tensor s = {file, name, type, t->data, t->n_elements};
    return kvq_model_take(m, &s, 0, dst, why, why_len);
}

static kvq_status load_layer(kvq_model *m, hf *h, int l, char *why, size_t why_len) {
    const kvq_model_config *c = &m->cfg;
    int d = c->hidden, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim, in = c->intermediate;
    kvq_layer_weights *w = &m->layers[l];
    struct { const char *suffix; int out, in; const float **dst; } spec[] = {
        {"input_layernorm.weight", d, 0, &w->attn_norm},   {"self_attn.q_proj.weight", q, d, &w->wq},
        {"self_attn.k_proj.weight", kv, d, &w->wk},        {"self_attn.v_proj.weight", kv, d, &w->wv},
        {"self_attn.o_proj.weight", d, q, &w->wo},         {"post_attention_layernorm.weight", d, 0, &w->mlp_norm},
        {"mlp.gate_proj.weight", in, d, &w->w_gate},       {"mlp.up_proj.weight", in, d, &w->w_up},
        {"mlp.down_proj.weight", d, in, &w->w_down},       {"self_attn.q_proj.bias", q, 0, &w->bq},
        {"self_attn.k_proj.bias", kv, 0, &w->bk},          {"self_attn.v_proj.bias", kv, 0, &w->bv}};
    size_t n = c->attention_bias ? 12 : 9;
    for (size_t i = 0; i < n; i++) {
        char name[160];
        snprintf(name, sizeof name, "model.layers.%d.%s", l, spec[i].suffix);
        kvq_status st = take(m, h, name, spec[i].out, spec[i].in, spec[i].dst, why, why_len);
        if (st) return st;
    }
    return KVQ_OK;
}

static kvq_status load_all(kvq_model *m, hf *h, char *why, size_t why_len) {
    char path[2048];
    kvq_mapped_file f;
    kvq_status st = join(path, sizeof path, h->dir, "config.json", why, why_len);
    if (st || (st = kvq_mapped_file_open(path, &f, why, why_len))) return st;
    if (f.size > MAX_JSON) {
        snprintf(why, why_len, "%s: %zu bytes is too large for a config", path, f.size);
        st = KVQ_ERR_OVERFLOW;
    } else {
        st = kvq_hf_config_parse((const char *)f.data, f.size, path, &m->cfg, why, why_len);
    }
    kvq_mapped_file_close(&f);
    if (st || (st = join(path, sizeof path, h->dir, "model.safetensors.index.json", why, why_len))) return st;
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        if ((st = read_json_file(path, &h->index, why, why_len))) return st;
        h->weight_map = kvq_json_get(h->index, "weight_map");
        if (!h->weight_map || h->weight_map->type != KVQ_JSON_OBJECT) {
            snprintf(why, why_len, "%s: no weight_map object", path);
            return KVQ_ERR_FORMAT;
        }
    }
    const kvq_model_config *c = &m->cfg;
    if ((st = kvq_model_alloc_layers(m, why, why_len)) ||
        (st = take(m, h, "model.embed_tokens.weight", c->vocab, c->hidden, &m->tok_embed, why, why_len)))
        return st;
    for (int l = 0; l < c->n_layers; l++)
        if ((st = load_layer(m, h, l, why, why_len))) return st;
    if ((st = take(m, h, "model.norm.weight", c->hidden, 0, &m->final_norm, why, why_len))) return st;
    if (c->tied_embeddings) m->lm_head = m->tok_embed;
    else if ((st = take(m, h, "lm_head.weight", c->vocab, c->hidden, &m->lm_head, why, why_len))) return st;
    return kvq_model_finish(m, why, why_len);
}

kvq_status kvq_load_hf(const char *dir, kvq_model *m, char *why, size_t why_len) {
    kvq_status st = kvq_model_begin(m, dir, "hf", why, why_len);
    if (st) return st;
    hf *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(why, why_len, "%s: out of memory", dir);
        return KVQ_ERR_NOMEM;
    }
    h->dir = dir;
    st = load_all(m, h, why, why_len);
    for (int i = 0; i < h->n_shards; i++) {
        kvq_safetensors_free(&h->st[i]);
        free(h->names[i]);
    }
    kvq_json_free(h->index);
    free(h);
    return st;
}
