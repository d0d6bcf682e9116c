/* test_hf_config.c — config.json parsing for the LLaMA family (old and new RoPE styles, linear and
 * llama3 scaling, explicit head_dim, Qwen2 biases, Mistral, defaults, refusals), and a synthetic
 * Qwen2-style HF directory (F16 safetensors with q/k/v biases, head_dim != hidden/heads) written
 * here and loaded end to end. Expected values are the ones written into the inputs; defaults are
 * transformers' documented defaults (rms_norm_eps 1e-6, rope_theta 10000, untied). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvq_half.h"
#include "kvq_model.h"
#include "kvq_test.h"
#include "model_internal.h"

#define BASE "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, " \
             "\"intermediate_size\": 96, \"vocab_size\": 100"

static kvq_model_config parse_ok(const char *json) {
    kvq_model_config c;
    char why[256];
    kvq_status st = kvq_hf_config_parse(json, strlen(json), "config.json", &c, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "%s: %s", json, why);
    return c;
}

static void parse_bad(const char *json, kvq_status want, const char *needle) {
    kvq_model_config c;
    char why[256] = "";
    kvq_status st = kvq_hf_config_parse(json, strlen(json), "config.json", &c, why, sizeof why);
    ck_assert_msg(st == want, "%s: got %s (%s)", json, kvq_status_name(st), why);
    ck_assert_msg(strstr(why, needle) && strstr(why, "config.json"), "message '%s' lacks '%s'", why, needle);
}

START_TEST(test_defaults_and_old_style) {
    kvq_model_config c = parse_ok("{\"model_type\": \"llama\", " BASE "}");
    ck_assert(c.n_kv_heads == 4 && c.head_dim == 16 && c.rms_eps == 1e-6f && c.rope_theta == 10000.0f);
    ck_assert(!c.tied_embeddings && !c.attention_bias && c.rope_scaling == KVQ_ROPE_SCALING_NONE);
    ck_assert(c.rope_scaling_factor == 1.0f && c.bos_id == -1 && c.eos_id == -1);
    c = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], " BASE ", \"rope_theta\": 500000.0, "
                 "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}, \"num_key_value_heads\": 2, "
                 "\"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": true, \"bos_token_id\": 1, "
                 "\"eos_token_id\": [7, 8], \"hidden_act\": \"silu\", \"rope_scaling_unused\": null}");
    ck_assert(!strcmp(c.architecture, "llama") && c.rope_theta == 500000.0f && c.n_kv_heads == 2);
    ck_assert(c.rope_scaling == KVQ_ROPE_SCALING_LINEAR && c.rope_scaling_factor == 4.0f);
    ck_assert(c.rms_eps == 1e-5f && c.tied_embeddings && c.bos_id == 1 && c.eos_id == 7);
}
END_TEST

START_TEST(test_new_style_llama3) {
    kvq_model_config c = parse_ok(
        "{\"model_type\": \"llama\", " BASE ", \"head_dim\": 32, \"rope_parameters\": {\"rope_theta\": "
        "500000.0, \"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": "
        "4.0, \"original_max_position_embeddings\": 8192}, \"max_position_embeddings\": 131072}");
    ck_assert(c.head_dim == 32 && c.rope_theta == 500000.0f && c.rope_scaling == KVQ_ROPE_SCALING_LLAMA3);
    ck_assert(c.rope_scaling_factor == 8.0f && c.rope_low_freq_factor == 1.0f && c.rope_high_freq_factor == 4.0f);
    ck_assert(c.rope_original_max_pos == 8192 && c.max_pos == 131072);
    /* old-style llama3 (transformers 4: rope_scaling with rope_type) */
    c = parse_ok("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": "
                 "32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}");
    ck_assert(c.rope_scaling == KVQ_ROPE_SCALING_LLAMA3 && c.rope_scaling_factor == 32.0f);
    c = parse_ok("{\"model_type\": \"llama\", " BASE ", \"rope_parameters\": {\"rope_theta\": 1e4, \"rope_type\": \"default\"}}");
    ck_assert(c.rope_scaling == KVQ_ROPE_SCALING_NONE && c.rope_theta == 10000.0f);
}
END_TEST

START_TEST(test_qwen2_mistral) {
    kvq_model_config c = parse_ok("{\"model_type\": \"qwen2\", " BASE ", \"num_key_value_heads\": 1}");
    ck_assert(!strcmp(c.architecture, "qwen2") && c.attention_bias && c.n_kv_heads == 1);
    c = parse_ok("{\"architectures\": [\"MistralForCausalLM\"], " BASE ", \"sliding_window\": 4096}");
    ck_assert(!strcmp(c.architecture, "mistral") && !c.attention_bias);
}
END_TEST

START_TEST(test_refusals) {
    parse_bad("{\"model_type\": \"gemma\", " BASE "}", KVQ_ERR_UNSUPPORTED, "gemma");
    parse_bad("{" BASE "}", KVQ_ERR_UNSUPPORTED, "(none)");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"attention_bias\": true}", KVQ_ERR_UNSUPPORTED, "attention_bias");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"mlp_bias\": true}", KVQ_ERR_UNSUPPORTED, "mlp_bias");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"hidden_act\": \"gelu\"}", KVQ_ERR_UNSUPPORTED, "hidden_act");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}}",
              KVQ_ERR_UNSUPPORTED, "rope_type");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"linear\"}}", KVQ_ERR_MISSING, "factor");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8, "
              "\"low_freq_factor\": 4, \"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}}",
              KVQ_ERR_FORMAT, "low_freq_factor");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 3}", KVQ_ERR_SHAPE, "n_kv_heads");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"head_dim\": 15}", KVQ_ERR_SHAPE, "head_dim");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": -1}", KVQ_ERR_SHAPE, "rms_norm_eps");
    parse_bad("{\"model_type\": \"llama\", \"hidden_size\": 64.5, \"num_hidden_layers\": 2}", KVQ_ERR_FORMAT, "hidden_size");
    parse_bad("{\"model_type\": \"llama\", " BASE ", \"tie_word_embeddings\": 1}", KVQ_ERR_FORMAT, "tie_word_embeddings");
    parse_bad("[]", KVQ_ERR_FORMAT, "not an object");
}
END_TEST

/* ---- synthetic Qwen2-style directory: hidden 8, 2 heads of head_dim 6 (q_dim 12 != hidden), 1 kv
 * head, ffn 4, vocab 5, 1 layer; every tensor F16 with element j of tensor t = (t + 1) * 0.125 +
 * j * 2^-10 (exact in fp16 for these sizes), so each loaded value can be predicted. */
typedef struct { const char *name; int rows, cols; } st_spec;
static const st_spec qwen_spec[] = {
    {"model.embed_tokens.weight", 5, 8}, {"model.layers.0.input_layernorm.weight", 8, 0},
    {"model.layers.0.self_attn.q_proj.weight", 12, 8}, {"model.layers.0.self_attn.q_proj.bias", 12, 0},
    {"model.layers.0.self_attn.k_proj.weight", 6, 8}, {"model.layers.0.self_attn.k_proj.bias", 6, 0},
    {"model.layers.0.self_attn.v_proj.weight", 6, 8}, {"model.layers.0.self_attn.v_proj.bias", 6, 0},
    {"model.layers.0.self_attn.o_proj.weight", 8, 12}, {"model.layers.0.post_attention_layernorm.weight", 8, 0},
    {"model.layers.0.mlp.gate_proj.weight", 4, 8}, {"model.layers.0.mlp.up_proj.weight", 4, 8},
    {"model.layers.0.mlp.down_proj.weight", 8, 4}, {"model.norm.weight", 8, 0}};
enum { N_QWEN = sizeof qwen_spec / sizeof *qwen_spec };

static float expected(int t, int j) { return (float)(t + 1) * 0.125f + (float)j / 1024.0f; }

static void write_qwen_dir(const char *dir) {
    char path[1200], header[4096] = "{";
    size_t off = 0, pos = 1;
    for (int t = 0; t < N_QWEN; t++) {
        const st_spec *s = &qwen_spec[t];
        size_t n = (size_t)s->rows * (s->cols ? s->cols : 1);
        char shape[32];
        if (s->cols) snprintf(shape, sizeof shape, "[%d, %d]", s->rows, s->cols);
        else snprintf(shape, sizeof shape, "[%d]", s->rows);
        pos += (size_t)snprintf(header + pos, sizeof header - pos, "%s\"%s\": {\"dtype\": \"F16\", \"shape\": %s, "
                                "\"data_offsets\": [%zu, %zu]}", t ? ", " : "", s->name, shape, off, off + 2 * n);
        off += 2 * n;
    }
    snprintf(header + pos, sizeof header - pos, "}");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint64_t hl = strlen(header);
    fwrite(&hl, 8, 1, f);
    fwrite(header, 1, hl, f);
    for (int t = 0; t < N_QWEN; t++)
        for (int j = 0; j < qwen_spec[t].rows * (qwen_spec[t].cols ? qwen_spec[t].cols : 1); j++) {
            uint16_t h = kvq_f32_to_f16(expected(t, j));
            fwrite(&h, 2, 1, f);
        }
    ck_assert(fclose(f) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 8, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 6, "
          "\"intermediate_size\": 4, \"vocab_size\": 5, \"rope_theta\": 1000000.0, \"rms_norm_eps\": 1e-6, "
          "\"tie_word_embeddings\": true, \"torch_dtype\": \"float16\"}", f);
    ck_assert(fclose(f) == 0);
}

START_TEST(test_synthetic_qwen2_dir) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/qwen2", kvq_test_tmpdir());
    write_qwen_dir(dir);
    kvq_model m;
    char why[512];
    ck_assert_msg(kvq_model_load(dir, &m, why, sizeof why) == KVQ_OK, "%s", why);
    const kvq_model_config *c = &m.cfg;
    ck_assert(c->head_dim == 6 && c->attention_bias && c->tied_embeddings && c->rope_theta == 1000000.0f);
    ck_assert_str_eq(m.dtype, "F16");
    ck_assert_uint_eq(m.bytes_mapped, 0);
    const kvq_layer_weights *L = &m.layers[0];
    const float *got[N_QWEN] = {m.tok_embed, L->attn_norm, L->wq, L->bq, L->wk, L->bk, L->wv, L->bv, L->wo,
                                L->mlp_norm, L->w_gate, L->w_up, L->w_down, m.final_norm};
    for (int t = 0; t < N_QWEN; t++)
        for (int j = 0; j < qwen_spec[t].rows * (qwen_spec[t].cols ? qwen_spec[t].cols : 1); j++)
            ck_assert_msg(got[t][j] == expected(t, j), "%s[%d] = %g", qwen_spec[t].name, j, got[t][j]);
    ck_assert(m.lm_head == m.tok_embed);
    kvq_model_free(&m);
}
END_TEST

static Suite *cfg_suite(void) {
    Suite *s = suite_create("hf_config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults_and_old_style);
    tcase_add_test(tc, test_new_style_llama3);
    tcase_add_test(tc, test_qwen2_mistral);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_synthetic_qwen2_dir);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(cfg_suite)
