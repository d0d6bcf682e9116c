/* model_gguf.c — loader of llama-architecture GGUF files into kvq_model: hyper-parameters from
 * the llama.* metadata, tensors token_embd / blk.N.* / output_norm / output (absent: tied), any
 * of F32/F16/BF16/Q8_0/Q4_0/Q4_1 (F32 used in place, others dequantized). GGUF stores q/k rows
 * in the interleaved RoPE order; they are permuted to rotate-half here. Not the GGUF parser
 * (gguf.c) and not a tokenizer. */
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "gguf_quant.h"
#include "model_internal.h"

/* Optional u32 hyper-parameter: absent keeps *out; present must be an integer <= INT32_MAX. */
static kvq_status opt_int(const kvq_gguf *g, const char *key, int *out, char *why, size_t why_len) {
    uint32_t v;
    kvq_status st = kvq_gguf_get_u32(g, key, &v);
    if (st == KVQ_ERR_MISSING) return KVQ_OK;
    if (st || v > INT32_MAX) {
        snprintf(why, why_len, "%s: metadata '%s' is not a 32-bit count", g->path, key);
        return st ? st : KVQ_ERR_FORMAT;
    }
    *out = (int)v;
    return KVQ_OK;
}

static kvq_status req_int(const kvq_gguf *g, const char *key, int *out, char *why, size_t why_len) {
    *out = -1;
    kvq_status st = opt_int(g, key, out, why, why_len);
    if (!st && *out < 0) {
        snprintf(why, why_len, "%s: metadata '%s' is missing", g->path, key);
        return KVQ_ERR_MISSING;
    }
    return st;
}

static kvq_status opt_f32(const kvq_gguf *g, const char *key, float *out, char *why, size_t why_len) {
    kvq_status st = kvq_gguf_get_f32(g, key, out);
    if (st == KVQ_ERR_MISSING) return KVQ_OK;
    if (st) snprintf(why, why_len, "%s: metadata '%s' is not a float", g->path, key);
    return st;
}

static kvq_status read_config(const kvq_gguf *g, kvq_model_config *c, char *why, size_t why_len) {
    const char *arch;
    size_t alen;
    if (kvq_gguf_get_str(g, "general.architecture", &arch, &alen)) {
        snprintf(why, why_len, "%s: metadata 'general.architecture' is missing", g->path);
        return KVQ_ERR_MISSING;
    }
    if (alen != 5 || memcmp(arch, "llama", 5)) {
        snprintf(why, why_len, "%s: architecture '%.*s' is not supported (llama only)", g->path,
                 (int)(alen < 40 ? alen : 40), arch);
        return KVQ_ERR_UNSUPPORTED;
    }
    snprintf(c->architecture, sizeof c->architecture, "llama");
    kvq_status st;
    int rope_dims = -1, value_len = -1, ctx = 0;
    if ((st = req_int(g, "llama.block_count", &c->n_layers, why, why_len)) ||
        (st = req_int(g, "llama.embedding_length", &c->hidden, why, why_len)) ||
        (st = req_int(g, "llama.feed_forward_length", &c->intermediate, why, why_len)) ||
        (st = req_int(g, "llama.attention.head_count", &c->n_heads, why, why_len)))
        return st;
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads > 0 ? c->hidden / c->n_heads : 0;
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if ((st = opt_int(g, "llama.attention.head_count_kv", &c->n_kv_heads, why, why_len)) ||
        (st = opt_int(g, "llama.attention.key_length", &c->head_dim, why, why_len)) ||
        (st = opt_int(g, "llama.attention.value_length", &value_len, why, why_len)) ||
        (st = opt_int(g, "llama.rope.dimension_count", &rope_dims, why, why_len)) ||
        (st = opt_int(g, "llama.context_length", &ctx, why, why_len)) ||
        (st = opt_f32(g, "llama.attention.layer_norm_rms_epsilon", &c->rms_eps, why, why_len)) ||
        (st = opt_f32(g, "llama.rope.freq_base", &c->rope_theta, why, why_len)))
        return st;
    c->max_pos = ctx;
    if ((value_len >= 0 && value_len != c->head_dim) || (rope_dims >= 0 && rope_dims != c->head_dim)) {
        snprintf(why, why_len, "%s: value_length %d / rope.dimension_count %d differ from head_dim %d "
                 "(partial RoPE is not supported)", g->path, value_len, rope_dims, c->head_dim);
        return KVQ_ERR_UNSUPPORTED;
    }
    const char *sc;
    size_t sclen;
    if (!kvq_gguf_get_str(g, "llama.rope.scaling.type", &sc, &sclen) && !(sclen == 4 && !memcmp(sc, "none", 4))) {
        if (!(sclen == 6 && !memcmp(sc, "linear", 6))) {
            snprintf(why, why_len, "%s: rope scaling '%.*s' is not supported", g->path, (int)(sclen < 40 ? sclen : 40), sc);
            return KVQ_ERR_UNSUPPORTED;
        }
        c->rope_scaling = KVQ_ROPE_SCALING_LINEAR;
        if ((st = opt_f32(g, "llama.rope.scaling.factor", &c->rope_scaling_factor, why, why_len))) return st;
    }
    if (kvq_gguf_find_tensor(g, "rope_freqs.weight")) {
        snprintf(why, why_len, "%s: tensor 'rope_freqs.weight' (llama3 RoPE factors) is not supported", g->path);
        return KVQ_ERR_UNSUPPORTED;
    }
    int32_t id;
    if (!kvq_gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &id)) c->bos_id = id;
    if (!kvq_gguf_get_i32(g, "tokenizer.ggml.eos_token_id", &id)) c->eos_id = id;
    /* vocab: llama.vocab_size, else the token list, else token_embd's outer dimension. */
    const kvq_gguf_kv *tok;
    const kvq_gguf_tensor *emb = kvq_gguf_find_tensor(g, "token_embd.weight");
    c->vocab = 0;
    if ((st = opt_int(g, "llama.vocab_size", &c->vocab, why, why_len))) return st;
    if (!c->vocab && !kvq_gguf_get_array(g, "tokenizer.ggml.tokens", KVQ_GGUF_STRING, &tok))
        c->vocab = tok->n <= INT32_MAX ? (int)tok->n : -1;
    if (!c->vocab && emb && emb->n_dims == 2) c->vocab = emb->ne[1] <= INT32_MAX ? (int)emb->ne[1] : -1;
    return kvq_model_config_check(c, g->path, why, why_len);
}

/* Find `name`, check its shape (outermost-first out, in; in == 0: 1-D of length out), take it. */
static kvq_status take(kvq_model *m, const kvq_gguf *g, const char *name, int out_dim, int in_dim,
                       int permute, const float **dst, char *why, size_t why_len) {
    const kvq_gguf_tensor *t = kvq_gguf_find_tensor(g, name);
    if (!t) {
        snprintf(why, why_len, "%s: tensor '%s' is missing", g->path, name);
        return KVQ_ERR_MISSING;
    }
    int ok = in_dim ? t->n_dims == 2 && t->ne[0] == (uint64_t)in_dim && t->ne[1] == (uint64_t)out_dim
                    : t->n_dims == 1 && t->ne[0] == (uint64_t)out_dim;
    if (!ok) {
        snprintf(why, why_len, "%s: tensor '%s' has shape ne=[%llu, %llu] (innermost first), the config "
                 "implies [%d, %d]", g->path, name, (unsigned long long)t->ne[0],
                 (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 1), in_dim ? in_dim : out_dim, in_dim ? out_dim : 1);
        return KVQ_ERR_SHAPE;
    }
    if (!t->data) {
        snprintf(why, why_len, "%s: tensor '%s': element type %s (%u) is not supported (kvq reads %s)", g->path,
                 name, kvq_ggml_type_name(t->type), (unsigned)t->type, kvq_ggml_supported_types());
        return KVQ_ERR_DTYPE;
    }
    kvq_src_tensor s = {g->path, name, t->type, t->data, t->n_elements};
    return kvq_model_take(m, &s, permute, dst, why, why_len);
}

static kvq_status load_layer(kvq_model *m, const kvq_gguf *g, int l, char *why, size_t why_len) {
    const kvq_model_config *c = &m->cfg;
    int h = c->hidden, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim, in = c->intermediate;
    kvq_layer_weights *w = &m->layers[l];
    struct { const char *suffix; int out, in, permute; const float **dst; } spec[] = {
        {"attn_norm", h, 0, 0, &w->attn_norm},     {"attn_q", q, h, c->n_heads, &w->wq},
        {"attn_k", kv, h, c->n_kv_heads, &w->wk},  {"attn_v", kv, h, 0, &w->wv},
        {"attn_output", h, q, 0, &w->wo},          {"ffn_norm", h, 0, 0, &w->mlp_norm},
        {"ffn_gate", in, h, 0, &w->w_gate},        {"ffn_up", in, h, 0, &w->w_up},
        {"ffn_down", h, in, 0, &w->w_down}};
    for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, spec[i].suffix);
        kvq_status st = take(m, g, name, spec[i].out, spec[i].in, spec[i].permute, spec[i].dst, why, why_len);
        if (st) return st;
    }
    return KVQ_OK;
}

kvq_status kvq_load_gguf(const char *path, kvq_model *m, char *why, size_t why_len) {
    kvq_status st = kvq_model_begin(m, path, "gguf", why, why_len);
    if (st) return st;
    const unsigned char *base;
    size_t size;
    if ((st = kvq_model_map_file(m, path, &base, &size, why, why_len))) return st;
    kvq_gguf *g;
    if ((st = kvq_gguf_parse(base, size, path, &g, why, why_len))) return st;
    if (!(st = read_config(g, &m->cfg, why, why_len)) && !(st = kvq_model_alloc_layers(m, why, why_len))) {
        const kvq_model_config *c = &m->cfg;
        st = take(m, g, "token_embd.weight", c->vocab, c->hidden, 0, &m->tok_embed, why, why_len);
        for (int l = 0; !st && l < c->n_layers; l++) st = load_layer(m, g, l, why, why_len);
        if (!st) st = take(m, g, "output_norm.weight", c->hidden, 0, 0, &m->final_norm, why, why_len);
        if (!st && kvq_gguf_find_tensor(g, "output.weight"))
            st = take(m, g, "output.weight", c->vocab, c->hidden, 0, &m->lm_head, why, why_len);
        else if (!st) {
            m->cfg.tied_embeddings = 1;
            m->lm_head = m->tok_embed;
        }
    }
    kvq_gguf_close(g);
    return st ? st : kvq_model_finish(m, why, why_len);
}
