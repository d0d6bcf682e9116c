/* hf_config.c — Hugging Face config.json -> kvq_model_config for the LLaMA family (llama,
 * mistral, qwen2; SmolLM checkpoints are model_type "llama"): one code path whose options are
 * the config's fields. RoPE: top-level rope_theta / rope_scaling (transformers 4) or
 * rope_parameters (transformers 5); scaling none, linear or llama3. Not a tokenizer config reader. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "model_internal.h"

typedef struct ctx {
    const kvq_json *root;
    const char *file;
    char *why;
    size_t why_len;
} ctx;

static kvq_status fail(ctx *x, kvq_status st, const char *key, const char *what) {
    snprintf(x->why, x->why_len, "%s: config '%s': %s", x->file, key, what);
    return st;
}

/* Integer field of obj into *out (int range); absent or null keeps *out unless required. */
static kvq_status get_int(ctx *x, const kvq_json *obj, const char *key, int required, int *out) {
    const kvq_json *v = kvq_json_get(obj, key);
    if (!v || v->type == KVQ_JSON_NULL) return required ? fail(x, KVQ_ERR_MISSING, key, "missing") : KVQ_OK;
    long long n;
    if (!kvq_json_get_int(obj, key, &n) || n < INT_MIN || n > INT_MAX)
        return fail(x, KVQ_ERR_FORMAT, key, "not a 32-bit integer");
    *out = (int)n;
    return KVQ_OK;
}

static kvq_status get_float(ctx *x, const kvq_json *obj, const char *key, int required, float *out) {
    const kvq_json *v = kvq_json_get(obj, key);
    if (!v || v->type == KVQ_JSON_NULL) return required ? fail(x, KVQ_ERR_MISSING, key, "missing") : KVQ_OK;
    if (v->type != KVQ_JSON_NUMBER) return fail(x, KVQ_ERR_FORMAT, key, "not a number");
    *out = (float)v->number;
    return KVQ_OK;
}

static kvq_status get_flag(ctx *x, const char *key, int *out) {
    const kvq_json *v = kvq_json_get(x->root, key);
    if (!v || v->type == KVQ_JSON_NULL) return KVQ_OK;
    return kvq_json_get_bool(x->root, key, out) ? KVQ_OK : fail(x, KVQ_ERR_FORMAT, key, "not a boolean");
}

/* bos/eos: an integer, a list (first entry) or null. */
static void get_token_id(const kvq_json *root, const char *key, int *out) {
    const kvq_json *v = kvq_json_get(root, key);
    if (v && v->type == KVQ_JSON_ARRAY && v->len) v = v->items[0];
    if (v && v->type == KVQ_JSON_NUMBER && v->number >= 0 && v->number <= INT_MAX && v->number == (int)v->number)
        *out = (int)v->number;
}

static kvq_status architecture(ctx *x, kvq_model_config *c) {
    static const char *const types[][2] = {{"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"},
                                           {"qwen2", "Qwen2ForCausalLM"}};
    const char *mt = kvq_json_get_string(x->root, "model_type");
    const kvq_json *archs = kvq_json_get(x->root, "architectures");
    const char *a0 = archs && archs->type == KVQ_JSON_ARRAY && archs->len && archs->items[0]->type == KVQ_JSON_STRING
                         ? archs->items[0]->str : NULL;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if ((mt && !strcmp(mt, types[i][0])) || (!mt && a0 && !strcmp(a0, types[i][1]))) {
            snprintf(c->architecture, sizeof c->architecture, "%s", types[i][0]);
            return KVQ_OK;
        }
    char msg[160];
    snprintf(msg, sizeof msg, "'%.60s' is not supported (llama, mistral, qwen2)", mt ? mt : a0 ? a0 : "(none)");
    return fail(x, KVQ_ERR_UNSUPPORTED, mt ? "model_type" : "architectures", msg);
}

static kvq_status rope(ctx *x, kvq_model_config *c) {
    const kvq_json *rp = kvq_json_get(x->root, "rope_parameters"), *rs = kvq_json_get(x->root, "rope_scaling");
    if (rp && rp->type != KVQ_JSON_OBJECT) rp = NULL;
    if (rs && rs->type != KVQ_JSON_OBJECT) rs = NULL;
    c->rope_theta = 10000.0f;
    kvq_status st = get_float(x, x->root, "rope_theta", 0, &c->rope_theta);
    if (st || (rp && (st = get_float(x, rp, "rope_theta", 0, &c->rope_theta)))) return st;
    const kvq_json *sc = rp ? rp : rs;
    const char *type = sc ? kvq_json_get_string(sc, "rope_type") : NULL;
    if (sc && !type) type = kvq_json_get_string(sc, "type");
    c->rope_scaling_factor = 1.0f;
    if (!type || !strcmp(type, "default")) return KVQ_OK;
    if (!strcmp(type, "linear")) {
        c->rope_scaling = KVQ_ROPE_SCALING_LINEAR;
        return get_float(x, sc, "factor", 1, &c->rope_scaling_factor);
    }
    if (!strcmp(type, "llama3")) {
        c->rope_scaling = KVQ_ROPE_SCALING_LLAMA3;
        if ((st = get_float(x, sc, "factor", 1, &c->rope_scaling_factor)) ||
            (st = get_float(x, sc, "low_freq_factor", 1, &c->rope_low_freq_factor)) ||
            (st = get_float(x, sc, "high_freq_factor", 1, &c->rope_high_freq_factor)) ||
            (st = get_int(x, sc, "original_max_position_embeddings", 1, &c->rope_original_max_pos)))
            return st;
        if (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
            c->rope_original_max_pos < 1)
            return fail(x, KVQ_ERR_FORMAT, "rope_scaling", "llama3 needs 0 < low_freq_factor < high_freq_factor "
                        "and original_max_position_embeddings >= 1");
        return KVQ_OK;
    }
    return fail(x, KVQ_ERR_UNSUPPORTED, "rope_type", "only default, linear and llama3 RoPE are supported");
}

static kvq_status fill(ctx *x, kvq_model_config *c) {
    kvq_status st = architecture(x, c);
    if (st) return st;
    const kvq_json *r = x->root;
    c->head_dim = 0;
    if ((st = get_int(x, r, "hidden_size", 1, &c->hidden)) || (st = get_int(x, r, "num_hidden_layers", 1, &c->n_layers)) ||
        (st = get_int(x, r, "num_attention_heads", 1, &c->n_heads)) ||
        (st = get_int(x, r, "intermediate_size", 1, &c->intermediate)) ||
        (st = get_int(x, r, "vocab_size", 1, &c->vocab)))
        return st;
    c->n_kv_heads = c->n_heads;
    c->rms_eps = 1e-6f;   /* transformers' default for these architectures */
    if ((st = get_int(x, r, "num_key_value_heads", 0, &c->n_kv_heads)) || (st = get_int(x, r, "head_dim", 0, &c->head_dim)) ||
        (st = get_int(x, r, "max_position_embeddings", 0, &c->max_pos)) ||
        (st = get_float(x, r, "rms_norm_eps", 0, &c->rms_eps)) || (st = rope(x, c)) ||
        (st = get_flag(x, "tie_word_embeddings", &c->tied_embeddings)))
        return st;
    if (!c->head_dim && c->n_heads > 0) c->head_dim = c->hidden / c->n_heads;
    int attn_bias = 0, mlp_bias = 0;
    if ((st = get_flag(x, "attention_bias", &attn_bias)) || (st = get_flag(x, "mlp_bias", &mlp_bias))) return st;
    if (mlp_bias) return fail(x, KVQ_ERR_UNSUPPORTED, "mlp_bias", "MLP biases are not supported");
    if (attn_bias) return fail(x, KVQ_ERR_UNSUPPORTED, "attention_bias", "o_proj bias is not supported");
    c->attention_bias = !strcmp(c->architecture, "qwen2");   /* Qwen2: q/k/v biases, no o bias */
    const char *act = kvq_json_get_string(r, "hidden_act");
    if (act && strcmp(act, "silu")) return fail(x, KVQ_ERR_UNSUPPORTED, "hidden_act", "only silu (SwiGLU) is supported");
    get_token_id(r, "bos_token_id", &c->bos_id);
    get_token_id(r, "eos_token_id", &c->eos_id);
    return kvq_model_config_check(c, x->file, x->why, x->why_len);
}

kvq_status kvq_hf_config_parse(const char *text, size_t len, const char *file, kvq_model_config *c,
                               char *why, size_t why_len) {
    kvq_json *root;
    char jwhy[160];
    if (kvq_json_parse(text, len, &root, jwhy, sizeof jwhy)) {
        snprintf(why, why_len, "%s: %s", file, jwhy);
        return KVQ_ERR_FORMAT;
    }
    memset(c, 0, sizeof *c);
    c->bos_id = c->eos_id = -1;
    ctx x = {root, file, why, why_len};
    kvq_status st = root->type == KVQ_JSON_OBJECT ? fill(&x, c) : fail(&x, KVQ_ERR_FORMAT, "(root)", "not an object");
    kvq_json_free(root);
    return st;
}
