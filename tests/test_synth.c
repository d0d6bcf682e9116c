/* test_synth.c — the safetensors writer (round trip through the strict reader) and kvq synth
 * (calib/synth.h): a sharded tiny model loads with kvq_model_load with the config asked for, its
 * weights have the promised distribution, bf16 files hold exactly the bf16 rounding of the f32
 * files of the same seed, writes are deterministic, and the model runs through the CPU engine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"
#include "kvq_half.h"
#include "kvq_model.h"
#include "kvq_test.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "synth.h"

static kvq_status fill_iota(void *user, size_t index, void *dst, size_t bytes, char *why, size_t why_len) {
    unsigned char *p = dst;
    for (size_t i = 0; i < bytes; i++) p[i] = (unsigned char)(i * 7 + index * 13);
    return KVQ_OK;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    ck_assert(fread(b, 1, *len, f) == *len);
    fclose(f);
    return b;
}

START_TEST(test_writer_roundtrip) {
    kvq_st_out t[2] = {{"a.weight", KVQ_ST_BF16, 2, {3, 5}}, {"b", KVQ_ST_F32, 1, {7}}};
    char path[1024], why[256];
    snprintf(path, sizeof path, "%s/rt.safetensors", kvq_test_tmpdir());
    kvq_status st = kvq_safetensors_write(path, t, 2, fill_iota, NULL, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "%s", why);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    kvq_safetensors s;
    st = kvq_safetensors_parse(buf, len, path, &s, why, sizeof why);   /* the strict reader is the oracle */
    ck_assert_msg(st == KVQ_OK, "%s", why);
    ck_assert_uint_eq(s.n_tensors, 2);
    ck_assert_uint_eq((8 + s.header_len) % 8, 0);   /* data starts 8-aligned */
    const kvq_st_tensor *a = kvq_safetensors_find(&s, "a.weight"), *b = kvq_safetensors_find(&s, "b");
    ck_assert(a && b && a->dtype == KVQ_ST_BF16 && a->shape[0] == 3 && a->shape[1] == 5 && b->n_elements == 7);
    for (size_t i = 0; i < 30; i++) ck_assert_uint_eq(a->data[i], (unsigned char)(i * 7));
    for (size_t i = 0; i < 28; i++) ck_assert_uint_eq(b->data[i], (unsigned char)(i * 7 + 13));
    kvq_safetensors_free(&s);
    free(buf);
}
END_TEST

START_TEST(test_writer_bad_input) {
    char path[1024], why[256];
    snprintf(path, sizeof path, "%s/bad.safetensors", kvq_test_tmpdir());
    kvq_st_out quote = {"a\"b", KVQ_ST_F32, 1, {2}}, zero = {"z", KVQ_ST_F32, 1, {0}};
    ck_assert_int_eq(kvq_safetensors_write(path, &quote, 1, fill_iota, NULL, why, sizeof why), KVQ_ERR_ARG);
    ck_assert_int_eq(kvq_safetensors_write(path, &zero, 1, fill_iota, NULL, why, sizeof why), KVQ_ERR_ARG);
    ck_assert_int_eq(kvq_safetensors_write("/nonexistent-dir/x.safetensors", &(kvq_st_out){"a", KVQ_ST_F32, 1, {2}},
                                           1, fill_iota, NULL, why, sizeof why), KVQ_ERR_IO);
    ck_assert_msg(strstr(why, "/nonexistent-dir/") != NULL, "%s", why);
    struct stat sb;
    ck_assert(stat(path, &sb) != 0);   /* nothing left behind */
}
END_TEST

static void synth_ok(const char *dir, kvq_st_dtype dt, uint64_t seed, uint64_t shard_bytes) {
    char why[512];
    kvq_synth_opts o = {"tiny", dt, seed, 2, shard_bytes};
    kvq_status st = kvq_synth_write(dir, &o, NULL, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "%s: %s", dir, why);
}

static void load_ok(const char *dir, kvq_model *m) {
    char why[512];
    kvq_status st = kvq_model_load(dir, m, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "%s: %s", dir, why);
}

START_TEST(test_synth_loads_sharded) {
    char dir[1024], idx[1100];
    snprintf(dir, sizeof dir, "%s/tiny-bf16", kvq_test_tmpdir());
    synth_ok(dir, KVQ_ST_BF16, 7, 1 << 20);   /* 1 MiB shards: the 2-layer tiny model needs several */
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    struct stat sb;
    ck_assert_msg(stat(idx, &sb) == 0, "no index: the model was not sharded");
    kvq_model m;
    load_ok(dir, &m);
    const kvq_model_config *c = &m.cfg;   /* the tiny shape of synth.c */
    ck_assert(c->n_layers == 2 && c->hidden == 288 && c->n_heads == 6 && c->n_kv_heads == 2 && c->head_dim == 48 &&
              c->intermediate == 768 && c->vocab == 1000 && !c->tied_embeddings && c->rope_theta == 10000.0f);
    ck_assert_str_eq(m.dtype, "BF16");
    /* Parameters by hand: embed + lm_head 2*V*C, per layer q,o 2*C*QD, k,v 2*C*KVD, MLP 3*C*I, 2 norms. */
    uint64_t C = 288, V = 1000, QD = 288, KVD = 96, I = 768;
    ck_assert_uint_eq(kvq_model_n_params(&m), 2 * V * C + 2 * (2 * C * QD + 2 * C * KVD + 3 * C * I + 2 * C) + C);
    /* N(0, 0.02^2) over the 288,000 embedding values: the sample mean's sd is 0.02/sqrt(288000) =
     * 3.7e-5 and the sample sd's relative sd is 1/sqrt(2*288000) = 0.13%; bf16 rounding adds 0.2%
     * relative error per value. Bounds at about 5 sd of each. */
    double s1 = 0, s2 = 0;
    size_t n = V * C;
    for (size_t i = 0; i < n; i++) { s1 += m.tok_embed[i]; s2 += (double)m.tok_embed[i] * m.tok_embed[i]; }
    double mean = s1 / n, sd = sqrt(s2 / n - mean * mean);
    ck_assert_msg(fabs(mean) < 2e-4 && fabs(sd - 0.02) < 0.02 * 0.01, "mean %g sd %g", mean, sd);
    for (int i = 0; i < 288; i++) ck_assert(m.final_norm[i] == 1.0f && m.layers[1].mlp_norm[i] == 1.0f);
    kvq_model_free(&m);
}
END_TEST

START_TEST(test_synth_bf16_is_rounded_f32) {
    char d32[1024], d16[1024], again[1024], other[1024];
    snprintf(d32, sizeof d32, "%s/s32", kvq_test_tmpdir());
    snprintf(d16, sizeof d16, "%s/s16", kvq_test_tmpdir());
    snprintf(again, sizeof again, "%s/s16b", kvq_test_tmpdir());
    snprintf(other, sizeof other, "%s/s16c", kvq_test_tmpdir());
    synth_ok(d32, KVQ_ST_F32, 3, 0);
    synth_ok(d16, KVQ_ST_BF16, 3, 0);
    synth_ok(again, KVQ_ST_BF16, 3, 1 << 20);   /* other sharding, same bytes */
    synth_ok(other, KVQ_ST_BF16, 4, 0);
    kvq_model a, b, c, d;
    load_ok(d32, &a);
    load_ok(d16, &b);
    load_ok(again, &c);
    load_ok(other, &d);
    size_t n = (size_t)288 * 768;
    for (size_t i = 0; i < n; i++) {
        float want = kvq_bf16_to_f32(kvq_f32_to_bf16(a.layers[1].w_up[i]));
        ck_assert_msg(b.layers[1].w_up[i] == want, "w_up[%zu] %g vs %g", i, b.layers[1].w_up[i], want);
    }
    ck_assert_uint_eq(kvq_model_fingerprint(&b), kvq_model_fingerprint(&c));
    ck_assert_uint_ne(kvq_model_fingerprint(&b), kvq_model_fingerprint(&d));
    kvq_model_free(&a);
    kvq_model_free(&b);
    kvq_model_free(&c);
    kvq_model_free(&d);
}
END_TEST

START_TEST(test_synth_runs_in_engine) {
    char dir[1024], why[512];
    snprintf(dir, sizeof dir, "%s/eng", kvq_test_tmpdir());
    synth_ok(dir, KVQ_ST_BF16, 11, 0);
    kvq_model m;
    load_ok(dir, &m);
    kvq_engine *e;
    kvq_engine_opts o = {2, 24, 1};
    ck_assert_int_eq(kvq_engine_init(&e, &m, &o, why, sizeof why), KVQ_OK);
    int32_t tok[48];
    for (int i = 0; i < 48; i++) tok[i] = (i * 37 + 5) % 1000;
    double loss;
    ck_assert_int_eq(kvq_engine_forward(e, tok, 2, &loss, why, sizeof why), KVQ_OK);
    /* lm_head rows are N(0, 0.02^2) and the final norm output has unit RMS, so logits have sd
     * 0.02*sqrt(288) = 0.34: the loss is ln(1000) + about var/2 = 6.97, far from any trained value. */
    ck_assert_msg(fabs(loss - log(1000.0)) < 0.3, "loss %g", loss);
    ck_assert_int_eq(kvq_engine_backward(e, why, sizeof why), KVQ_OK);
    for (int l = 0; l < 2; l++) {
        const float *dk = kvq_engine_k_pre_rope_grad(e, l), *dv = kvq_engine_v_grad(e, l);
        double ss = 0;
        for (size_t i = 0; i < (size_t)48 * 96; i++) {
            ck_assert(isfinite(dk[i]) && isfinite(dv[i]));
            ss += (double)dk[i] * dk[i] + (double)dv[i] * dv[i];
        }
        ck_assert_msg(ss > 0, "layer %d: zero gradients", l);
    }
    kvq_engine_free(e);
    kvq_model_free(&m);
}
END_TEST

START_TEST(test_synth_bad_args) {
    char why[512];
    kvq_model_config c;
    ck_assert_int_eq(kvq_synth_config("llama-9", 0, &c, why, sizeof why), KVQ_ERR_ARG);
    ck_assert_msg(strstr(why, "llama-2-7b") != NULL, "%s", why);
    ck_assert_int_eq(kvq_synth_config("llama-2-7b", 0, &c, why, sizeof why), KVQ_OK);
    ck_assert(c.n_layers == 32 && c.hidden == 4096 && c.intermediate == 11008 && c.vocab == 32000);
    kvq_synth_opts o = {"tiny", KVQ_ST_I32, 0, 1, 0};
    ck_assert_int_eq(kvq_synth_write(kvq_test_tmpdir(), &o, NULL, why, sizeof why), KVQ_ERR_ARG);
    o.dtype = KVQ_ST_BF16;
    ck_assert_int_eq(kvq_synth_write("/nonexistent-dir/sub", &o, NULL, why, sizeof why), KVQ_ERR_IO);
}
END_TEST

static Suite *synth_suite(void) {
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_writer_roundtrip);
    tcase_add_test(tc, test_writer_bad_input);
    tcase_add_test(tc, test_synth_loads_sharded);
    tcase_add_test(tc, test_synth_bf16_is_rounded_f32);
    tcase_add_test(tc, test_synth_runs_in_engine);
    tcase_add_test(tc, test_synth_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(synth_suite)
