/* test_ppl.c — perplexity (calib/ppl.h) and `kvq ppl`. Oracle: HF transformers' loss on the first
 * 128 tokens of wiki.test.raw (../shared/reference/kvq-tiny-15m.h5, attribute `loss`), which is the
 * first window of the protocol at seq_len 128: so the library and the command, tokenizing the whole
 * file and taking window 0, must give NLL = loss and perplexity = exp(loss) (relative 1e-5, the
 * issue's loss tolerance). The full-file reference perplexities of ../shared/README.md (HF, fp32)
 * take minutes on 2 cores: test_full_files checks them within 0.1 % only when KVQ_TEST_SLOW=1
 * (`KVQ_TEST_SLOW=1 build/tests/test_ppl`; results in docs/BENCHMARKS.md). Also: a window's NLL does not depend on
 * the batch, the window count is floor(tokens / seq_len), bad inputs give clear errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "json.h"
#include "kvq_test.h"
#include "ppl.h"
#include "tokenizer.h"
#include "util_h5.h"

/* kvq-tiny-15m, wiki.test.raw tokenized whole by its tokenizer, and the HF loss: loaded once for
 * the suite (an unchecked fixture, before Check forks each test); loaded == 0 when ../shared lacks
 * a file, and the tests then skip. */
typedef struct ppl_fixture {
    int loaded;
    kvq_model model;
    int32_t *ids;
    size_t n_ids;
    double ref_loss;
} ppl_fixture;

static ppl_fixture F;

static void fixture_open(void) {
    ppl_fixture *f = &F;
    memset(f, 0, sizeof *f);
    const char *rels[3] = {"reference/kvq-tiny-15m.h5", "data/text/wiki.test.raw", "models/kvq-tiny-15m"};
    char paths[3][4096];
    for (int i = 0; i < 3; i++) {
        const char *p = kvq_test_shared(rels[i]);
        if (!p) { fprintf(stderr, "SKIP: %s not found in shared folder\n", rels[i]); return; }
        snprintf(paths[i], sizeof paths[i], "%s", p);
    }
    hid_t h5 = kvq_test_h5_open(paths[0]);
    ck_assert(h5 >= 0);
    ck_assert_int_eq(kvq_test_h5_attr_double(h5, "/", "loss", &f->ref_loss), 0);
    kvq_test_h5_close(h5);
    char why[512] = "";
    ck_assert_msg(kvq_model_load(paths[2], &f->model, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_tokenizer *tok = NULL;
    ck_assert_msg(kvq_tokenizer_load_for_model(paths[2], &tok, why, sizeof why) == KVQ_OK, "%s", why);
    size_t len;
    char *text = kvq_test_slurp(paths[1], &len);
    ck_assert_msg(kvq_tokenize(tok, text, len, kvq_tokenizer_adds_bos(tok), &f->ids, &f->n_ids, why,
                               sizeof why) == KVQ_OK, "%s", why);
    free(text);
    kvq_tokenizer_free(tok);
    f->loaded = 1;
}

static void fixture_close(void) {
    free(F.ids);
    kvq_model_free(&F.model);
}

#define NEED_FIXTURE()                                                              \
    do {                                                                            \
        if (!F.loaded) { fprintf(stderr, "SKIP %s: no fixture\n", __func__); return; } \
    } while (0)

START_TEST(test_first_window_is_hf_loss) {
    NEED_FIXTURE();
    kvq_ppl_opts o = {.seq_len = 128, .batch = 1, .max_windows = 1};
    kvq_ppl_result r;
    char why[256] = "";
    ck_assert_msg(kvq_ppl_eval(&F.model, F.ids, F.n_ids, &o, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(r.n_windows, 1);
    ck_assert_uint_eq(r.n_predicted, 127);
    ck_assert_uint_eq(r.n_tokens, F.n_ids);
    ck_assert_msg(fabs(r.mean_nll - F.ref_loss) <= 1e-5 * F.ref_loss, "NLL %.9g, HF loss %.9g", r.mean_nll,
                  F.ref_loss);
    ck_assert(fabs(r.ppl - exp(F.ref_loss)) <= 1e-5 * exp(F.ref_loss));
}
END_TEST

/* Seven windows of 64: all seven counted whether evaluated one at a time or in batches of 3 (the
 * last batch partial); each window's NLL is independent of its batch, so the sums agree to fp32
 * rounding of the per-position values (1e-6 relative). */
START_TEST(test_batches_and_window_count) {
    NEED_FIXTURE();
    char why[256] = "";
    kvq_ppl_result r1, r3, all;
    kvq_ppl_opts o = {.seq_len = 64, .batch = 1, .max_windows = 7};
    ck_assert(kvq_ppl_eval(&F.model, F.ids, F.n_ids, &o, &r1, why, sizeof why) == KVQ_OK);
    o.batch = 3;
    ck_assert(kvq_ppl_eval(&F.model, F.ids, F.n_ids, &o, &r3, why, sizeof why) == KVQ_OK);
    ck_assert_uint_eq(r1.n_windows, 7);
    ck_assert_uint_eq(r3.n_windows, 7);
    ck_assert_uint_eq(r3.n_predicted, 7 * 63);
    ck_assert_msg(fabs(r1.nll_sum - r3.nll_sum) <= 1e-6 * r1.nll_sum, "%.9g vs %.9g", r1.nll_sum, r3.nll_sum);
    /* Without --max-windows: floor(tokens / seq_len) windows, checked on a 130-token prefix. */
    o.max_windows = 0;
    ck_assert(kvq_ppl_eval(&F.model, F.ids, 130, &o, &all, why, sizeof why) == KVQ_OK);
    ck_assert_uint_eq(all.n_windows, 2);
    ck_assert_uint_eq(all.n_predicted, 2 * 63);
}
END_TEST

START_TEST(test_bad_input) {
    NEED_FIXTURE();
    char why[256] = "";
    kvq_ppl_result r;
    kvq_ppl_opts o = {.seq_len = 64, .batch = 1};
    ck_assert_int_eq(kvq_ppl_eval(&F.model, F.ids, 63, &o, &r, why, sizeof why), KVQ_ERR_DATA);
    ck_assert_msg(strstr(why, "63 tokens") != NULL, "%s", why);
    o.seq_len = 1;
    ck_assert_int_eq(kvq_ppl_eval(&F.model, F.ids, F.n_ids, &o, &r, why, sizeof why), KVQ_ERR_ARG);
    int32_t bad[4] = {1, 2, 99999, 3};
    o.seq_len = 4;
    ck_assert_int_eq(kvq_ppl_eval(&F.model, bad, 4, &o, &r, why, sizeof why), KVQ_ERR_ARG);
}
END_TEST

/* ---- the command ------------------------------------------------------------------------------ */

static int run_kvq(const char *args) {
    char cmd[16500];
    snprintf(cmd, sizeof cmd, "\"%s\" %s", getenv("KVQ_BIN"), args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_command) {
    if (!getenv("KVQ_BIN")) { fprintf(stderr, "SKIP %s: KVQ_BIN not set (make test sets it)\n", __func__); return; }
    const char *h5 = kvq_test_shared("reference/kvq-tiny-15m.h5");
    KVQ_SKIP_IF_MISSING(h5, "reference/kvq-tiny-15m.h5");
    double ref_loss;
    hid_t f = kvq_test_h5_open(h5);
    ck_assert_int_eq(kvq_test_h5_attr_double(f, "/", "loss", &ref_loss), 0);
    kvq_test_h5_close(f);
    char text[4096], model[4096], out[600], args[16384], why[256];
    const char *p = kvq_test_shared("data/text/wiki.test.raw");
    KVQ_SKIP_IF_MISSING(p, "data/text/wiki.test.raw");
    snprintf(text, sizeof text, "%s", p);
    p = kvq_test_shared("models/kvq-tiny-15m");
    KVQ_SKIP_IF_MISSING(p, "models/kvq-tiny-15m");
    snprintf(model, sizeof model, "%s", p);
    snprintf(out, sizeof out, "%s/ppl.json", kvq_test_tmpdir());

    snprintf(args, sizeof args, "ppl --model '%s' --text '%s' --seq-len 128 --max-windows 1 --json > '%s'",
             model, text, out);
    ck_assert_int_eq(run_kvq(args), 0);
    size_t n;
    char *doc = kvq_test_slurp(out, &n);
    kvq_json *j = NULL;
    ck_assert_msg(kvq_json_parse(doc, n, &j, why, sizeof why) == KVQ_OK, "ppl --json: %s", why);
    double ppl, nll;
    long long windows, tokens;
    ck_assert(kvq_json_get_number(j, "ppl", &ppl) && kvq_json_get_number(j, "nll", &nll));
    ck_assert(kvq_json_get_int(j, "windows", &windows) && windows == 1);
    ck_assert(kvq_json_get_int(j, "tokens", &tokens) && tokens > 128);
    ck_assert_msg(fabs(nll - ref_loss) <= 1e-5 * ref_loss, "kvq ppl NLL %.9g, HF loss %.9g", nll, ref_loss);
    ck_assert(fabs(ppl - exp(ref_loss)) <= 1e-5 * exp(ref_loss));
    kvq_json_free(j);
    free(doc);

    ck_assert_int_eq(run_kvq("ppl --help > /dev/null"), 0);
    ck_assert_int_eq(run_kvq("ppl --text x 2>/dev/null"), 2);                  /* no --model */
    snprintf(args, sizeof args, "ppl --model '%s' --text '%s' --seq-len 1 2>/dev/null", model, text);
    ck_assert_int_eq(run_kvq(args), 2);
    snprintf(args, sizeof args, "ppl --model '%s' --text /nonexistent/file 2>/dev/null", model);
    ck_assert_int_eq(run_kvq(args), 4);
    snprintf(args, sizeof args, "ppl --model /nonexistent/model --text '%s' 2>/dev/null", text);
    ck_assert_int_eq(run_kvq(args), 4);
}
END_TEST

/* Oracle: ../shared/README.md's table (HF transformers, fp32, whole file, all windows), printed to
 * two decimals; the tolerance is 0.1 % relative (rounding of the table is < 0.01 %). */
START_TEST(test_full_files) {
    if (!getenv("KVQ_TEST_SLOW")) {
        fprintf(stderr, "SKIP %s: minutes of CPU; set KVQ_TEST_SLOW=1 to run it\n", __func__);
        return;
    }
    NEED_FIXTURE();
    const char *ptb_rel = "data/text/ptb.test.txt";
    const char *p = kvq_test_shared(ptb_rel);
    KVQ_SKIP_IF_MISSING(p, ptb_rel);
    char ptb_path[4096], why[512] = "";
    snprintf(ptb_path, sizeof ptb_path, "%s", p);
    kvq_tokenizer *tok = NULL;
    ck_assert_msg(kvq_tokenizer_load_for_model(F.model.path, &tok, why, sizeof why) == KVQ_OK, "%s", why);
    size_t len, n_ptb;
    int32_t *ptb;
    char *text = kvq_test_slurp(ptb_path, &len);
    ck_assert(kvq_tokenize(tok, text, len, kvq_tokenizer_adds_bos(tok), &ptb, &n_ptb, why, sizeof why) == KVQ_OK);
    free(text);
    kvq_tokenizer_free(tok);
    struct { const char *name; const int32_t *ids; size_t n; int seq_len; double ref; } cases[3] = {
        {"wiki.test.raw", F.ids, F.n_ids, 512, 145.25},
        {"wiki.test.raw", F.ids, F.n_ids, 1024, 142.43},
        {"ptb.test.txt", ptb, n_ptb, 512, 68.27},
    };
    for (int i = 0; i < 3; i++) {
        kvq_ppl_opts o = {.seq_len = cases[i].seq_len, .batch = 1};
        kvq_ppl_result r;
        ck_assert_msg(kvq_ppl_eval(&F.model, cases[i].ids, cases[i].n, &o, &r, why, sizeof why) == KVQ_OK, "%s", why);
        fprintf(stderr, "%s at %d: %zu tokens, %zu windows, perplexity %.4f (HF %.2f), %.0f s\n", cases[i].name,
                cases[i].seq_len, r.n_tokens, r.n_windows, r.ppl, cases[i].ref, r.seconds);
        ck_assert_msg(fabs(r.ppl - cases[i].ref) <= 1e-3 * cases[i].ref, "%s at %d: perplexity %.4f, HF %.2f",
                      cases[i].name, cases[i].seq_len, r.ppl, cases[i].ref);
    }
    free(ptb);
}
END_TEST

static Suite *ppl_suite(void) {
    Suite *s = suite_create("ppl");
    TCase *tc = tcase_create("ppl");
    tcase_add_unchecked_fixture(tc, fixture_open, fixture_close);
    tcase_add_test(tc, test_first_window_is_hf_loss);
    tcase_add_test(tc, test_batches_and_window_count);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_command);
    tcase_add_test(tc, test_full_files);
    tcase_set_timeout(tc, 7200);   /* test_full_files, when enabled, on a slow machine */
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(ppl_suite)
