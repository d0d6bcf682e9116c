/* test_engine_backend.c — the engine backend table (calib/engine_backend.h) in the CPU-only
 * library: "cpu" runs the CPU engine (its results are kvq_engine's own, bit for bit), "cuda" and
 * "cuda-bf16" are refused with a message saying the build has no CUDA, unknown names are argument
 * errors, and `kvq capture --device cuda` fails at once with that message (before loading the
 * model). The CUDA backends are tested by tests/gpu/test_engine_cuda.c. */
#include <stdio.h>
#include <string.h>

#include "capture.h"
#include "engine.h"
#include "engine_backend.h"
#include "kvq_test.h"
#include "synth.h"

START_TEST(test_cpu_backend_is_the_engine) {
    char dir[1024], why[512];
    snprintf(dir, sizeof dir, "%s/be-tiny", kvq_test_tmpdir());
    kvq_synth_opts so = {"tiny", KVQ_ST_BF16, 2, 1, 0};
    ck_assert_msg(kvq_synth_write(dir, &so, NULL, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_model m;
    ck_assert_msg(kvq_model_load(dir, &m, why, sizeof why) == KVQ_OK, "%s", why);
    const kvq_engine_backend *be;
    ck_assert_int_eq(kvq_engine_backend_get(NULL, &be, why, sizeof why), KVQ_OK);
    ck_assert_str_eq(be->name, "cpu");
    ck_assert(!be->grads_squared);
    void *eng = NULL;
    kvq_engine *ref = NULL;
    kvq_engine_opts o = {1, 12, 1};
    ck_assert_int_eq(be->init(&eng, &m, 12, 1, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_engine_init(&ref, &m, &o, why, sizeof why), KVQ_OK);
    int32_t tok[12] = {1, 5, 9, 200, 999, 0, 3, 3, 17, 400, 2, 7};
    double l1, l2;
    ck_assert_int_eq(be->run(eng, tok, 1, &l1, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_engine_forward(ref, tok, 1, &l2, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_engine_backward(ref, why, sizeof why), KVQ_OK);
    ck_assert(l1 == l2);
    size_t n = (size_t)12 * 96;
    ck_assert(!memcmp(be->k_pre_rope(eng, 0), kvq_engine_k_pre_rope(ref, 0), n * 4));
    ck_assert(!memcmp(be->v(eng, 0), kvq_engine_v(ref, 0), n * 4));
    ck_assert(!memcmp(be->k_grad(eng, 0), kvq_engine_k_pre_rope_grad(ref, 0), n * 4));
    ck_assert(!memcmp(be->v_grad(eng, 0), kvq_engine_v_grad(ref, 0), n * 4));
    be->free(eng);
    be->free(NULL);
    kvq_engine_free(ref);
    kvq_model_free(&m);
}
END_TEST

START_TEST(test_cuda_refused_without_cuda) {
    const kvq_engine_backend *be;
    char why[512];
    ck_assert_int_eq(kvq_engine_backend_get("cuda", &be, why, sizeof why), KVQ_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(why, "built without CUDA") != NULL, "%s", why);
    ck_assert(be == NULL);
    ck_assert_int_eq(kvq_engine_backend_get("cuda-bf16", &be, why, sizeof why), KVQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(kvq_engine_backend_get("gpu", &be, why, sizeof why), KVQ_ERR_ARG);
    ck_assert_msg(strstr(why, "cpu, cuda, cuda-bf16") != NULL, "%s", why);
    /* The capture loop refuses before touching its inputs (which do not exist here). */
    kvq_capture_opts o;
    kvq_capture_opts_init(&o);
    o.model_path = "/nonexistent/model";
    o.text_path = "/nonexistent/text";
    o.out_path = "/nonexistent/out.h5";
    o.device = "cuda";
    kvq_capture_result res;
    ck_assert_int_eq(kvq_capture_run(&o, &res, why, sizeof why), KVQ_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(why, "built without CUDA") != NULL, "%s", why);
}
END_TEST

static Suite *engine_backend_suite(void) {
    Suite *s = suite_create("engine_backend");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cpu_backend_is_the_engine);
    tcase_add_test(tc, test_cuda_refused_without_cuda);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(engine_backend_suite)
