/* test_eval.c — simulated-quantization evaluation (codebook/eval.c) on stories260K: quantizers
 * that are the identity on an fp16 cache give exactly the fp16 method's perplexity, KL and top-1;
 * KIVI on windows shorter than its fp16 window is the fp16 method; finer quantization is closer
 * to the reference; a codebook of another model is refused (library and `kvq eval` exit code);
 * the SVG chart writer's output; `kvq ablate` end to end at a tiny scale (its report files, and
 * the same figures again from the reused capture). Oracles: the fp16 method run in the same
 * evaluation (exact equality), the ordering of bit widths, the first run for the second. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ablate.h"
#include "baselines.h"
#include "eval.h"
#include "json.h"
#include "kvq_test.h"
#include "svg_chart.h"
#include "tokenizer.h"

#define MODEL_REL "models/stories260K/stories260K.bin"
#define TEXT_REL "data/text/tinystories_val_subset.txt"

static kvq_model g_model;
static int32_t *g_ids;
static size_t g_n;

/* Load the model and tokenize the first 16 KiB of the text; returns 0 (skip) without shared/. */
static int setup(void) {
    if (g_ids) return 1;
    const char *mp = kvq_test_shared(MODEL_REL);
    if (!mp) return 0;
    char why[512] = "", model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", mp);
    ck_assert_msg(kvq_model_load(model_path, &g_model, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_tokenizer *tok = NULL;
    ck_assert_msg(kvq_tokenizer_load_for_model(model_path, &tok, why, sizeof why) == KVQ_OK, "%s", why);
    const char *tp = kvq_test_shared(TEXT_REL);
    ck_assert(tp != NULL);
    FILE *f = fopen(tp, "rb");
    ck_assert(f != NULL);
    static char buf[16384];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert_int_eq(kvq_tokenize(tok, buf, len, kvq_tokenizer_adds_bos(tok), &g_ids, &g_n, why, sizeof why), KVQ_OK);
    kvq_tokenizer_free(tok);
    return 1;
}

static const float ID_LUT[4] = {-1.0f, 0.0f, 0.5f, 1.0f};   /* code(0) = 1, level 0 exactly */

/* Keys: static per channel, z 0, r 2^-40, every non-zero element an outlier kept exactly (h(k));
 * values: groups of one channel, z = v, r = 1, x = 0 -> level 0 -> v. Both round-trip an fp16
 * cache through codes, scales and outlier lists, and give it back unchanged. */
static void identity_sim(kvq_kv_sim *s) {
    char why[256] = "";
    int L = g_model.cfg.n_layers;
    uint32_t d = (uint32_t)(g_model.cfg.n_kv_heads * g_model.cfg.head_dim);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(s, KVQ_METHOD_INT, 2, L, (uint32_t)g_model.cfg.n_kv_heads,
                                              (uint32_t)g_model.cfg.head_dim, NULL, why, sizeof why), KVQ_OK);
    float *z = calloc(d, sizeof(float)), *r = malloc(d * sizeof(float));
    for (uint32_t c = 0; c < d; c++) r[c] = 0x1p-40f;
    kvq_quant_config kc = {.scheme = KVQ_QS_STATIC_CHANNEL, .dim = d, .bits = 2, .lut = ID_LUT,
                           .zero_point = z, .half_range = r, .outlier_fraction = 0.5f};
    kvq_quant_config vc = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = d, .bits = 2, .lut = ID_LUT, .group = 1};
    for (int l = 0; l < L; l++) {
        kvq_quantizer_free(&s->k[l]);
        kvq_quantizer_free(&s->v[l]);
        ck_assert_int_eq(kvq_quantizer_init(&s->k[l], &kc, why, sizeof why), KVQ_OK);
        ck_assert_int_eq(kvq_quantizer_init(&s->v[l], &vc, why, sizeof why), KVQ_OK);
    }
    s->k_post_rope = 1;   /* where the fp16 method rounds keys */
    free(z);
    free(r);
}

START_TEST(test_identity_equals_fp16) {
    if (!setup()) { fprintf(stderr, "SKIP %s: %s not found\n", __func__, MODEL_REL); return; }
    kvq_kv_sim sims[4];
    char why[256] = "";
    int L = g_model.cfg.n_layers, H = g_model.cfg.n_kv_heads, D = g_model.cfg.head_dim;
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&sims[0], KVQ_METHOD_FP16, 16, L, H, D, NULL, why, sizeof why), KVQ_OK);
    identity_sim(&sims[1]);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&sims[2], KVQ_METHOD_INT, 8, L, H, D, NULL, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&sims[3], KVQ_METHOD_INT, 3, L, H, D, NULL, why, sizeof why), KVQ_OK);
    kvq_eval_result res[4];
    kvq_eval_opts o = {.seq_len = 128, .batch = 2, .max_windows = 4};
    ck_assert_msg(kvq_eval_run(&g_model, g_ids, g_n, &o, sims, 4, res, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(res[0].n_predicted, 4 * 127);
    /* identity == fp16 cache, exactly */
    ck_assert_msg(res[1].ppl == res[0].ppl, "identity ppl %.17g fp16 %.17g", res[1].ppl, res[0].ppl);
    ck_assert(res[1].kl_mean == res[0].kl_mean && res[1].kl_p99 == res[0].kl_p99 && res[1].top1 == res[0].top1);
    ck_assert(res[0].k_bits == 16.0 && res[0].v_bits == 16.0);
    /* the fp16 cache is close to fp32: KL tiny, argmax almost always the same */
    ck_assert(res[0].kl_mean < 1e-4 && res[0].top1 > 0.99);
    ck_assert(fabs(res[0].ppl - res[0].ref_ppl) < 1e-3 * res[0].ref_ppl);
    /* 8-bit per-token int is closer to the reference than 3-bit; bits = b + 32/kv_dim */
    ck_assert(res[2].kl_mean < res[3].kl_mean && res[2].top1 > res[3].top1);
    ck_assert(res[2].k_bits == 8.0 + 32.0 / (H * D) && res[3].v_bits == 3.0 + 32.0 / (H * D));
    for (int i = 0; i < 4; i++) ck_assert(res[i].ref_ppl == res[0].ref_ppl);
    for (int i = 0; i < 4; i++) kvq_kv_sim_free(&sims[i]);
}
END_TEST

/* KIVI keeps the last 128 tokens in fp16: on 100-token windows nothing is quantized. */
START_TEST(test_kivi_short_windows_are_fp16) {
    if (!setup()) { fprintf(stderr, "SKIP %s: %s not found\n", __func__, MODEL_REL); return; }
    kvq_kv_sim sims[2];
    char why[256] = "";
    int L = g_model.cfg.n_layers, H = g_model.cfg.n_kv_heads, D = g_model.cfg.head_dim;
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&sims[0], KVQ_METHOD_FP16, 16, L, H, D, NULL, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&sims[1], KVQ_METHOD_KIVI, 2, L, H, D, NULL, why, sizeof why), KVQ_OK);
    kvq_eval_result res[2];
    kvq_eval_opts o = {.seq_len = 100, .batch = 3, .max_windows = 3};
    ck_assert_msg(kvq_eval_run(&g_model, g_ids, g_n, &o, sims, 2, res, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert(res[1].ppl == res[0].ppl && res[1].kl_mean == res[0].kl_mean);
    ck_assert(res[1].k_bits == 16.0 && res[1].v_bits == 16.0);
    for (int i = 0; i < 2; i++) kvq_kv_sim_free(&sims[i]);
}
END_TEST

/* A codebook for another model: refused by kvq_eval_sim_init and by `kvq eval` (exit code 3). */
START_TEST(test_codebook_mismatch) {
    if (!setup()) { fprintf(stderr, "SKIP %s: %s not found\n", __func__, MODEL_REL); return; }
    uint32_t d = (uint32_t)(g_model.cfg.n_kv_heads * g_model.cfg.head_dim);
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    ck_assert_int_eq(kvq_codebook_alloc(&cb, (uint32_t)g_model.cfg.n_layers, d, 2, 2, 0), KVQ_OK);
    kvq_model_identity_of(&g_model, &cb.model);
    cb.model.fingerprint ^= 1;   /* other weights, same shapes */
    for (int l = 0; l < g_model.cfg.n_layers; l++) {
        kvq_uniform_lut(2, cb.layers[l].k.centroids);
        kvq_uniform_lut(2, cb.layers[l].v.centroids);
        for (uint32_t c = 0; c < d; c++) cb.layers[l].k.half_range[c] = 1.0f;
    }
    kvq_kv_sim s;
    char why[256] = "";
    ck_assert_int_eq(kvq_eval_sim_init(&s, KVQ_METHOD_KVQUANT, 0, &g_model, &cb, NULL, why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "fingerprint") != NULL, "why: %s", why);
    char path[512], cmd[4096];
    snprintf(path, sizeof path, "%s/other.kvqc", kvq_test_tmpdir());
    ck_assert_int_eq(kvq_codebook_write(path, &cb), KVQ_OK);
    const char *bin = getenv("KVQ_BIN");
    if (bin) {
        char model[1024], text[1024], err[600];
        snprintf(model, sizeof model, "%s", kvq_test_shared(MODEL_REL));   /* static storage: copy */
        snprintf(text, sizeof text, "%s", kvq_test_shared(TEXT_REL));
        snprintf(err, sizeof err, "%s/eval.err", kvq_test_tmpdir());
        snprintf(cmd, sizeof cmd, "%s eval --model %s --codebook %s --text %s --seq-len 64 --max-windows 1 2>%s",
                 bin, model, path, text, err);
        int rc = system(cmd);
        ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 3, "kvq eval exit %d", WEXITSTATUS(rc));
        size_t n;
        char *msg = kvq_test_slurp(err, &n);
        ck_assert_msg(strstr(msg, "fingerprint") != NULL, "kvq eval said: %s", msg);
        free(msg);
    }
    cb.model.fingerprint ^= 1;   /* now the right model: accepted */
    ck_assert_msg(kvq_eval_sim_init(&s, KVQ_METHOD_KVQUANT, 0, &g_model, &cb, NULL, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_kv_sim_free(&s);
    kvq_codebook_free(&cb);
}
END_TEST

START_TEST(test_svg_chart) {
    const char *ticks[3] = {"4-bit", "3-bit", "2-bit"};
    double a[3] = {0.01, 0.5, 20}, b[3] = {-0.01, NAN, 2};
    kvq_chart_series s[2] = {{"int <uniform>", a, 0}, {"kivi & co", b, 1}};
    kvq_chart ch = {.title = "t", .x_label = "bits", .y_label = "dppl", .x_ticks = ticks, .n_x = 3,
                    .series = s, .n_series = 2, .log_y = -1};
    char path[512];
    snprintf(path, sizeof path, "%s/c.svg", kvq_test_tmpdir());
    FILE *f = fopen(path, "w+");
    ck_assert(f != NULL);
    ck_assert_int_eq(kvq_svg_chart_write(f, &ch), KVQ_OK);
    long n = ftell(f);
    rewind(f);
    char *doc = calloc((size_t)n + 1, 1);
    ck_assert_uint_eq(fread(doc, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    ck_assert(strncmp(doc, "<svg ", 5) == 0 && strstr(doc, "</svg>\n") != NULL);
    ck_assert(strstr(doc, "int &lt;uniform&gt;") && strstr(doc, "kivi &amp; co") && !strstr(doc, "<uniform>"));
    ck_assert(strstr(doc, "(log scale)") != NULL);         /* 0.01 .. 20 spans > 30x */
    int polylines = 0, circles = 0;
    for (char *p = doc; (p = strstr(p, "<polyline")); p++) polylines++;
    for (char *p = doc; (p = strstr(p, "<circle")); p++) circles++;
    ck_assert_int_eq(polylines, 2);
    ck_assert_int_eq(circles, 5 + 2);                        /* 5 finite points + 2 legend marks */
    ck_assert(strstr(doc, "fill=\"white\" stroke") != NULL);  /* -0.01 drawn hollow at the floor */
    ck_assert(strstr(doc, "hollow marker") != NULL && strstr(doc, "stroke-dasharray") != NULL);
    free(doc);
    kvq_chart empty = ch;
    empty.n_series = 0;
    ck_assert_int_eq(kvq_svg_chart_write(stdout, &empty), KVQ_ERR_ARG);
}
END_TEST

/* `kvq ablate` on stories260K at a tiny scale: 2 calibration windows of 64 tokens, 2 evaluation
 * windows of 64, 2 bits. The report files exist and agree (JSON rows = 1 + configs), and a second
 * run that reuses the capture reproduces every perplexity exactly (deterministic capture, fit and
 * evaluation). */
START_TEST(test_ablate_tiny) {
    const char *mp = kvq_test_shared(MODEL_REL);
    if (!mp) { fprintf(stderr, "SKIP %s: %s not found\n", __func__, MODEL_REL); return; }
    char model[1024], text[1024], dir[512], path[600];
    snprintf(model, sizeof model, "%s", mp);
    snprintf(text, sizeof text, "%s", kvq_test_shared(TEXT_REL));
    snprintf(dir, sizeof dir, "%s/ablate", kvq_test_tmpdir());
    kvq_ablate_opts o;
    kvq_ablate_opts_default(&o);
    o.model_path = model;
    o.calib_path = text;
    o.text_path = text;
    o.out_dir = dir;
    o.bits[0] = 2;
    o.n_bits = 1;
    o.samples = 2;
    o.calib_seq_len = 64;
    o.seq_len = 64;
    o.max_windows = 2;
    kvq_ablate_report r1, r2;
    char why[512] = "";
    ck_assert_msg(kvq_ablate_run(&o, &r1, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert(!r1.capture_reused);
    size_t n_cfg;
    kvq_ablate_configs(&n_cfg);
    ck_assert_uint_eq(r1.n_configs, n_cfg);
    ck_assert_msg(kvq_ablate_run(&o, &r2, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert(r2.capture_reused);
    ck_assert(r2.fp16.ppl == r1.fp16.ppl);
    for (size_t c = 0; c < n_cfg; c++)
        ck_assert_msg(r2.cells[c].ppl == r1.cells[c].ppl, "config %zu: %.17g vs %.17g", c, r2.cells[c].ppl, r1.cells[c].ppl);
    size_t n;
    snprintf(path, sizeof path, "%s/ablation.json", dir);
    char *js = kvq_test_slurp(path, &n);
    kvq_json *doc = NULL;
    ck_assert_msg(kvq_json_parse(js, n, &doc, why, sizeof why) == KVQ_OK, "%s", why);
    const kvq_json *res = kvq_json_get(doc, "results");
    ck_assert(res && res->type == KVQ_JSON_ARRAY && res->len == 1 + n_cfg);
    double ppl;
    ck_assert(kvq_json_get_number(res->items[1], "ppl", &ppl) && fabs(ppl - r1.cells[0].ppl) < 1e-5 * ppl);
    kvq_json_free(doc);
    free(js);
    snprintf(path, sizeof path, "%s/ablation.csv", dir);
    char *csv = kvq_test_slurp(path, &n);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += csv[i] == '\n';
    ck_assert_uint_eq(lines, 2 + n_cfg);   /* header, fp16, one row per config */
    free(csv);
    snprintf(path, sizeof path, "%s/ablation.md", dir);
    char *md = kvq_test_slurp(path, &n);
    ck_assert(strstr(md, "| + Q-Norm |") && strstr(md, "![delta perplexity vs fp16](ablation.svg)"));
    free(md);
    snprintf(path, sizeof path, "%s/ablation.svg", dir);
    char *svg = kvq_test_slurp(path, &n);
    ck_assert(strncmp(svg, "<svg ", 5) == 0);
    free(svg);
    kvq_ablate_report_free(&r1);
    kvq_ablate_report_free(&r2);
}
END_TEST

static Suite *eval_suite(void) {
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_identity_equals_fp16);
    tcase_add_test(tc, test_kivi_short_windows_are_fp16);
    tcase_add_test(tc, test_codebook_mismatch);
    tcase_add_test(tc, test_svg_chart);
    tcase_add_test(tc, test_ablate_tiny);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(eval_suite)
