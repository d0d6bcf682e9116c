/* synth.c — random-weight HF model directories of named LLaMA shapes (synth.h): the shape table,
 * the tensor list in HF naming, greedy sharding, the seeded N(0, 0.02^2) fill (xoshiro256** per
 * 64K-element chunk, Box-Muller), and atomic config.json / index writes. Not a loader. */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvq_half.h"
#include "rng.h"
#include "safetensors_write.h"

const char *const kvq_synth_shapes[] = {"llama-2-7b", "llama-3-8b", "tiny", NULL};

typedef struct shape {
    const char *name;
    int layers, hidden, heads, kv_heads, head_dim, inter, vocab, max_pos, bos, eos;
    float theta;
} shape;

/* tiny: awkward on purpose (GQA 3:1, head_dim 48, vocab not a power of two) for tests. */
static const shape shapes[] = {
    {"llama-2-7b", 32, 4096, 32, 32, 128, 11008, 32000, 4096, 1, 2, 10000.0f},
    {"llama-3-8b", 32, 4096, 32, 8, 128, 14336, 128256, 8192, 128000, 128001, 500000.0f},
    {"tiny", 2, 288, 6, 2, 48, 768, 1000, 2048, 1, 2, 10000.0f},
};

kvq_status kvq_synth_config(const char *like, int n_layers, kvq_model_config *cfg, char *why, size_t why_len) {
    for (size_t i = 0; like && i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        if (strcmp(like, s->name)) continue;
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->architecture, sizeof cfg->architecture, "llama");
        cfg->n_layers = n_layers > 0 ? n_layers : s->layers;
        cfg->hidden = s->hidden;
        cfg->n_heads = s->heads;
        cfg->n_kv_heads = s->kv_heads;
        cfg->head_dim = s->head_dim;
        cfg->intermediate = s->inter;
        cfg->vocab = s->vocab;
        cfg->max_pos = s->max_pos;
        cfg->rms_eps = 1e-5f;
        cfg->rope_theta = s->theta;
        cfg->rope_scaling = KVQ_ROPE_SCALING_NONE;
        cfg->rope_scaling_factor = 1;
        cfg->bos_id = s->bos;
        cfg->eos_id = s->eos;
        return KVQ_OK;
    }
    snprintf(why, why_len, "unknown shape '%s' (known: llama-2-7b, llama-3-8b, tiny)", like ? like : "(null)");
    return KVQ_ERR_ARG;
}

/* ---- tensor list --------------------------------------------------------------------------- */

typedef struct synth_tensor {
    char name[64];
    kvq_st_out out;
    int ones;           /* norm weight: all 1 */
    int shard;          /* 0-based */
} synth_tensor;

static void add(synth_tensor *t, size_t *n, const char *name, kvq_st_dtype dt, int64_t a, int64_t b, int ones) {
    synth_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->out.name = x->name;
    x->out.dtype = dt;
    x->out.n_dims = b ? 2 : 1;
    x->out.shape[0] = a;
    x->out.shape[1] = b;
    x->ones = ones;
}

static size_t tensor_list(synth_tensor *t, const kvq_model_config *c, kvq_st_dtype dt) {
    size_t n = 0;
    int64_t C = c->hidden, QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim;
    char nm[64];
    add(t, &n, "model.embed_tokens.weight", dt, c->vocab, C, 0);
    for (int l = 0; l < c->n_layers; l++) {
        static const char *const sfx[] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                                          "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int64_t rows[] = {C, QD, KVD, KVD, C, C, c->intermediate, c->intermediate, C};
        int64_t cols[] = {0, C, C, C, QD, 0, C, C, c->intermediate};
        for (int i = 0; i < 9; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, sfx[i]);
            add(t, &n, nm, dt, rows[i], cols[i], cols[i] == 0);
        }
    }
    add(t, &n, "model.norm.weight", dt, C, 0, 1);
    add(t, &n, "lm_head.weight", dt, c->vocab, C, 0);
    return n;
}

/* Greedy sharding in list order; returns the shard count. */
static int assign_shards(synth_tensor *t, size_t n, uint64_t max_bytes, uint64_t *total) {
    int shard = 0;
    uint64_t cur = 0;
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = kvq_st_out_bytes(&t[i].out);
        if (cur && cur + b > max_bytes) { shard++; cur = 0; }
        cur += b;
        *total += b;
        t[i].shard = shard;
    }
    return shard + 1;
}

/* ---- fill ---------------------------------------------------------------------------------- */

enum { CHUNK = 1 << 16 };

typedef struct fill_ctx {
    synth_tensor *t;
    size_t first;       /* index in the whole list of this shard's first tensor */
    uint64_t seed;
} fill_ctx;

static void put(void *dst, size_t i, kvq_st_dtype dt, float v) {
    if (dt == KVQ_ST_F32) ((float *)dst)[i] = v;
    else ((uint16_t *)dst)[i] = dt == KVQ_ST_BF16 ? kvq_f32_to_bf16(v) : kvq_f32_to_f16(v);
}

static kvq_status fill(void *user, size_t index, void *dst, size_t bytes, char *why, size_t why_len) {
    fill_ctx *f = user;
    const synth_tensor *t = &f->t[f->first + index];
    kvq_st_dtype dt = t->out.dtype;
    size_t n = bytes / kvq_st_dtype_size(dt);
    long long n_chunks = (long long)((n + CHUNK - 1) / CHUNK);
    uint64_t tseed = f->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(f->first + index + 1));
#pragma omp parallel for schedule(static)
    for (long long ch = 0; ch < n_chunks; ch++) {
        size_t i0 = (size_t)ch * CHUNK, i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        kvq_rng r;
        uint64_t s = tseed + (uint64_t)ch;
        kvq_rng_seed(&r, kvq_splitmix64(&s));
        for (size_t i = i0; i < i1; i += 2) {
            if (t->ones) {
                put(dst, i, dt, 1.0f);
                if (i + 1 < i1) put(dst, i + 1, dt, 1.0f);
                continue;
            }
            double u1 = 1.0 - kvq_rng_uniform(&r), u2 = kvq_rng_uniform(&r);   /* u1 in (0, 1] */
            double rad = 0.02 * sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
            put(dst, i, dt, (float)(rad * cos(ang)));
            if (i + 1 < i1) put(dst, i + 1, dt, (float)(rad * sin(ang)));
        }
    }
    return KVQ_OK;
}

/* ---- files --------------------------------------------------------------------------------- */

static kvq_status write_text(const char *path, const char *text, char *why, size_t why_len) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= sizeof tmp) {
        snprintf(why, why_len, "%s: path too long", path);
        return KVQ_ERR_ARG;
    }
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(why, why_len, "%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) { close(fd); unlink(tmp); }
        return KVQ_ERR_IO;
    }
    int bad = fputs(text, f) < 0 || fflush(f) || fsync(fileno(f));
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        snprintf(why, why_len, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return KVQ_ERR_IO;
    }
    return KVQ_OK;
}

static const char *torch_dtype(kvq_st_dtype d) {
    return d == KVQ_ST_BF16 ? "bfloat16" : d == KVQ_ST_F16 ? "float16" : "float32";
}

static kvq_status write_config(const char *dir, const kvq_model_config *c, kvq_st_dtype dt, char *why, size_t why_len) {
    char path[4096], text[2048];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(text, sizeof text,
             "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
             "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
             "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": 1e-05,\n"
             "  \"rope_theta\": %.1f,\n  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": false,\n"
             "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"bos_token_id\": %d,\n"
             "  \"eos_token_id\": %d,\n  \"torch_dtype\": \"%s\",\n  \"kvq_synth\": true\n}\n",
             c->hidden, c->intermediate, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab,
             c->max_pos, (double)c->rope_theta, c->bos_id, c->eos_id, torch_dtype(dt));
    return write_text(path, text, why, why_len);
}

static void shard_name(char *buf, size_t len, int shard, int n_shards) {
    if (n_shards == 1) snprintf(buf, len, "model.safetensors");
    else snprintf(buf, len, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

static kvq_status write_index(const char *dir, const synth_tensor *t, size_t n, int n_shards, uint64_t total,
                              char *why, size_t why_len) {
    size_t cap = 256 + n * 128;
    char *text = malloc(cap), path[4096], sh[64];
    if (!text) { snprintf(why, why_len, "out of memory"); return KVQ_ERR_NOMEM; }
    size_t len = (size_t)snprintf(text, cap, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {\n",
                                  (unsigned long long)total);
    for (size_t i = 0; i < n; i++) {
        shard_name(sh, sizeof sh, t[i].shard, n_shards);
        len += (size_t)snprintf(text + len, cap - len, "    \"%s\": \"%s\"%s\n", t[i].name, sh, i + 1 < n ? "," : "");
    }
    snprintf(text + len, cap - len, "  }\n}\n");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    kvq_status st = write_text(path, text, why, why_len);
    free(text);
    return st;
}

static kvq_status write_shards(const char *dir, synth_tensor *t, size_t n, int n_shards, uint64_t seed,
                               char *why, size_t why_len) {
    kvq_st_out *outs = malloc(n * sizeof *outs);
    if (!outs) { snprintf(why, why_len, "out of memory"); return KVQ_ERR_NOMEM; }
    kvq_status st = KVQ_OK;
    for (int s = 0, i = 0; s < n_shards && !st; s++) {
        size_t first = (size_t)i, k = 0;
        while ((size_t)i < n && t[i].shard == s) outs[k++] = t[i++].out;
        char path[4096], sh[64];
        shard_name(sh, sizeof sh, s, n_shards);
        snprintf(path, sizeof path, "%s/%s", dir, sh);
        fill_ctx fc = {t, first, seed};
        st = kvq_safetensors_write(path, outs, k, fill, &fc, why, why_len);
    }
    free(outs);
    return st;
}

kvq_status kvq_synth_write(const char *dir, const kvq_synth_opts *o, uint64_t *bytes_out, char *why, size_t why_len) {
    if (!dir || !o) { snprintf(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    if (o->dtype != KVQ_ST_BF16 && o->dtype != KVQ_ST_F16 && o->dtype != KVQ_ST_F32) {
        snprintf(why, why_len, "dtype must be BF16, F16 or F32");
        return KVQ_ERR_ARG;
    }
    if (strlen(dir) > 3000) { snprintf(why, why_len, "directory path too long"); return KVQ_ERR_ARG; }
    kvq_model_config c;
    kvq_status st = kvq_synth_config(o->like, o->n_layers, &c, why, why_len);
    if (st) return st;
    if (mkdir(dir, 0777) && errno != EEXIST) {
        snprintf(why, why_len, "%s: cannot create directory: %s", dir, strerror(errno));
        return KVQ_ERR_IO;
    }
    size_t n_max = 3 + 9 * (size_t)c.n_layers;
    synth_tensor *t = calloc(n_max, sizeof *t);
    if (!t) { snprintf(why, why_len, "out of memory"); return KVQ_ERR_NOMEM; }
    size_t n = tensor_list(t, &c, o->dtype);
    uint64_t total;
    int n_shards = assign_shards(t, n, o->shard_bytes ? o->shard_bytes : (uint64_t)2 << 30, &total);
    if (!(st = write_config(dir, &c, o->dtype, why, why_len)) &&
        !(st = write_shards(dir, t, n, n_shards, o->seed, why, why_len)) && n_shards > 1)
        st = write_index(dir, t, n, n_shards, total, why, why_len);
    if (!st && bytes_out) *bytes_out = total;
    free(t);
    return st;
}
