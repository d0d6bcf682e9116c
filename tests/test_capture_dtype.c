/* test_capture_dtype.c — a capture stored as float16 must give the codebook a float32 capture
 * gives: `kvq fit` centroids within 1e-3 (issue 8's criterion) on kvq-tiny-15m. This is what
 * caught Fisher underflowing float16 (squared gradients ~1e-10): a float16 file now stores Fisher
 * as bfloat16. */
#include <math.h>
#include <stdio.h>

#include "capture.h"
#include "fit.h"
#include "kvq_test.h"

static void capture_and_fit(const char *text, kvq_capture_dtype dtype, const char *name, kvq_codebook *cb) {
    char path[1024], why[512] = "";
    snprintf(path, sizeof path, "%s/%s", kvq_test_tmpdir(), name);
    remove(path);
    kvq_capture_opts o;
    kvq_capture_opts_init(&o);
    o.model_path = "data/models/kvq-tiny-15m";
    o.text_path = text;
    o.out_path = path;
    o.samples = 8;
    o.seq_len = 128;
    o.dtype = dtype;
    o.threads = 1;
    kvq_capture_result res;
    ck_assert_msg(kvq_capture_run(&o, &res, why, sizeof why) == KVQ_OK, "capture %s: %s", name, why);
    kvq_fit_opts fo;
    kvq_fit_opts_default(&fo);
    ck_assert_msg(kvq_fit_capture(path, &fo, NULL, NULL, cb, why, sizeof why) == KVQ_OK, "fit %s: %s", name, why);
    remove(path);
}

static double max_centroid_diff(const kvq_tensor_codebook *a, const kvq_tensor_codebook *b) {
    double d = 0;
    for (uint32_t i = 0; i < (1u << a->bits); i++) d = fmax(d, fabs((double)a->centroids[i] - b->centroids[i]));
    return d;
}

START_TEST(test_f16_capture_gives_f32_codebook) {
    const char *rel = "data/text/wiki.valid.raw";
    const char *text = kvq_test_shared(rel);
    KVQ_SKIP_IF_MISSING(text, rel);
    char text_path[4096];
    snprintf(text_path, sizeof text_path, "%s", text);
    kvq_codebook a = {0}, b = {0};
    capture_and_fit(text_path, KVQ_CAPTURE_F32, "f32.h5", &a);
    capture_and_fit(text_path, KVQ_CAPTURE_F16, "f16.h5", &b);
    ck_assert_uint_eq(a.model.n_layers, b.model.n_layers);
    double worst = 0;
    for (uint32_t l = 0; l < a.model.n_layers; l++) {
        worst = fmax(worst, max_centroid_diff(&a.layers[l].k, &b.layers[l].k));
        worst = fmax(worst, max_centroid_diff(&a.layers[l].v, &b.layers[l].v));
    }
    /* 1e-3: issue 8's criterion (normalised units, centroids span [-1, 1]); measured 4e-5 at
     * 16 x 512 tokens. With Fisher stored as float16 it was 0.19. */
    ck_assert_msg(worst <= 1e-3, "centroids from float16 and float32 captures differ by %g", worst);
    kvq_codebook_free(&a);
    kvq_codebook_free(&b);
}
END_TEST

static Suite *capture_dtype_suite(void) {
    Suite *s = suite_create("capture_dtype");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_f16_capture_gives_f32_codebook);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(capture_dtype_suite)
