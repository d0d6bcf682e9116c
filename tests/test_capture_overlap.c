/* test_capture_overlap.c — the capture loop writing window i on its writer thread while window
 * i+1 computes (capture_pipe.h) must give the file the serial loop gives. The oracle is the serial
 * loop itself (overlap = 0: compute, write, commit): every dataset of the two files must hold the
 * same bytes, the samples table included, and so must the files as a whole (the writer stores no
 * object timestamps); progress must come once per committed window; a write failure
 * in the middle of the run (a disk-full stand-in: RLIMIT_FSIZE, as test_capture's
 * test_write_failure_keeps_prefix) must stop the loop with the writer's I/O error, keep the
 * committed windows, and --resume must complete the file. Model: stories260K (fast). */
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "kvq_test.h"
#include "util_h5.h"

enum { N_SAMPLES = 8, SEQ = 64 };

static char g_model[1024], g_text[1024];

static int have_inputs(void) {
    const char *mp = kvq_test_shared("models/stories260K/stories260K.bin");
    if (!mp) return 0;
    snprintf(g_model, sizeof g_model, "%s", mp);
    const char *tp = kvq_test_shared("data/text/tinystories_val_subset.txt");
    if (!tp) return 0;
    snprintf(g_text, sizeof g_text, "%s", tp);
    return 1;
}

static const char *tmp_path(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", kvq_test_tmpdir(), name);
    remove(p);
    return p;
}

/* Progress calls of one run: committed count and loss, in call order. */
typedef struct progress_log {
    int n;
    uint32_t done[64];
    double loss[64];
} progress_log;

static void log_progress(void *user, uint32_t done, uint32_t total, double loss, double seconds) {
    progress_log *l = user;
    (void)total; (void)seconds;
    if (l->n < 64) { l->done[l->n] = done; l->loss[l->n] = loss; }
    l->n++;
}

static void opts(kvq_capture_opts *o, const char *out, int overlap, int fisher, kvq_capture_dtype dtype, int compress) {
    kvq_capture_opts_init(o);
    o->model_path = g_model;
    o->text_path = g_text;
    o->out_path = out;
    o->samples = N_SAMPLES;
    o->seq_len = SEQ;
    o->seed = 11;
    o->threads = 1;
    o->fisher = fisher;
    o->dtype = dtype;
    o->compress = compress;
    o->overlap = overlap;
}

/* ---- raw comparison of two files: every dataset's bytes, in its stored type ----------------- */

typedef struct cmp_ctx {
    hid_t other;
    int datasets, differ;
} cmp_ctx;

static void *read_raw(hid_t file, const char *name, size_t *bytes) {
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds), ft = ds < 0 ? -1 : H5Dget_type(ds);
    hid_t nt = ft < 0 ? -1 : H5Tget_native_type(ft, H5T_DIR_ASCEND);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t sz = nt < 0 ? 0 : H5Tget_size(nt);
    void *buf = n >= 0 && sz ? calloc((size_t)(n ? n : 1), sz) : NULL;
    if (buf && H5Dread(ds, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) { free(buf); buf = NULL; }
    *bytes = buf ? (size_t)n * sz : 0;
    if (nt >= 0) H5Tclose(nt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return buf;
}

static herr_t cmp_one(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    cmp_ctx *c = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    size_t na = 0, nb = 0;
    void *a = read_raw(obj, name, &na), *b = read_raw(c->other, name, &nb);
    c->datasets++;
    if (!a || !b || na != nb || memcmp(a, b, na)) {
        fprintf(stderr, "dataset %s differs (%zu vs %zu bytes)\n", name, na, nb);
        c->differ++;
    }
    free(a);
    free(b);
    return 0;
}

/* Datasets of `a` that are not byte-equal in `b`, both ways (and the count of a's datasets). */
static int datasets_differ(const char *a, const char *b, int *n_datasets) {
    hid_t fa = kvq_test_h5_open(a), fb = kvq_test_h5_open(b);
    ck_assert_msg(fa >= 0 && fb >= 0, "cannot open %s or %s", a, b);
    cmp_ctx ab = {fb, 0, 0}, ba = {fa, 0, 0};
    H5Ovisit2(fa, H5_INDEX_NAME, H5_ITER_NATIVE, cmp_one, &ab, H5O_INFO_BASIC);
    H5Ovisit2(fb, H5_INDEX_NAME, H5_ITER_NATIVE, cmp_one, &ba, H5O_INFO_BASIC);
    kvq_test_h5_close(fa);
    kvq_test_h5_close(fb);
    *n_datasets = ab.datasets;
    return ab.differ + ba.differ + (ab.datasets != ba.datasets);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void same_file(int fisher, kvq_capture_dtype dtype, int compress) {
    if (!have_inputs()) {
        fprintf(stderr, "SKIP %s: stories260K or tinystories_val_subset.txt not in the shared folder\n", __func__);
        return;
    }
    char why[1024] = "";
    kvq_capture_opts o;
    kvq_capture_result rs, ro;
    progress_log ls = {0}, lo = {0};
    const char *serial = tmp_path("serial.h5"), *over = tmp_path("overlap.h5");
    opts(&o, serial, 0, fisher, dtype, compress);
    o.progress = log_progress;
    o.progress_user = &ls;
    ck_assert_msg(kvq_capture_run(&o, &rs, why, sizeof why) == KVQ_OK, "serial: %s", why);
    ck_assert_uint_eq(rs.overlap_bytes, 0);
    opts(&o, over, 1, fisher, dtype, compress);
    o.progress = log_progress;
    o.progress_user = &lo;
    ck_assert_msg(kvq_capture_run(&o, &ro, why, sizeof why) == KVQ_OK, "overlap: %s", why);
    /* the CPU engine has no `select`: one copy of the captured layers' tensors */
    kvq_capture_reader *r = NULL;
    ck_assert_msg(kvq_capture_open(over, &r, why, sizeof why) == KVQ_OK, "%s", why);
    uint32_t n_layers = kvq_capture_reader_meta(r)->n_captured;
    ck_assert_uint_eq(ro.overlap_bytes, (size_t)n_layers * (fisher ? 4 : 2) * SEQ * kvq_capture_kv_dim(r) * 4);
    kvq_capture_reader_free(r);
    ck_assert_int_eq(ro.samples_total, N_SAMPLES);
    int n_ds = 0;
    ck_assert_int_eq(datasets_differ(serial, over, &n_ds), 0);
    ck_assert_int_ge(n_ds, (int)n_layers * (fisher ? 4 : 2));   /* the tensors at least were compared */
    ck_assert_msg(kvq_test_files_equal(serial, over), "%s and %s differ", serial, over);
    /* progress: once before the first window, then once per committed window, same losses */
    ck_assert_int_eq(ls.n, N_SAMPLES + 1);
    ck_assert_int_eq(lo.n, N_SAMPLES + 1);
    for (int i = 0; i <= N_SAMPLES; i++) {
        ck_assert_uint_eq(lo.done[i], (uint32_t)i);
        ck_assert_uint_eq(ls.done[i], (uint32_t)i);
        ck_assert(i == 0 || lo.loss[i] == ls.loss[i]);   /* same engine, same windows: exact */
    }
    ck_assert(ro.mean_loss == rs.mean_loss);
}

START_TEST(test_overlap_same_file_f32_fisher) { same_file(1, KVQ_CAPTURE_F32, 0); }
END_TEST
START_TEST(test_overlap_same_file_f16_gzip_nofisher) { same_file(0, KVQ_CAPTURE_F16, 2); }
END_TEST

/* The writer thread fails on a write (EFBIG under RLIMIT_FSIZE, like a full disk) in the middle of
 * the run: the loop stops with KVQ_ERR_IO and HDF5's errno message, the committed windows are
 * the serial run's, and a resumed overlapped run completes the serial file. */
START_TEST(test_overlap_write_failure_then_resume) {
    if (!have_inputs()) {
        fprintf(stderr, "SKIP %s: stories260K or tinystories_val_subset.txt not in the shared folder\n", __func__);
        return;
    }
    char why[1024] = "";
    kvq_capture_opts o;
    kvq_capture_result res;
    const char *ref = tmp_path("ref.h5"), *p = tmp_path("failed.h5");
    opts(&o, ref, 0, 1, KVQ_CAPTURE_F32, 0);
    ck_assert_msg(kvq_capture_run(&o, &res, why, sizeof why) == KVQ_OK, "reference: %s", why);
    struct stat sb;
    ck_assert_int_eq(stat(ref, &sb), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* half the finished file: the empty layout and a few windows fit, not all 8 */
        struct rlimit rl = {(rlim_t)sb.st_size / 2, (rlim_t)sb.st_size / 2};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        progress_log log = {0};
        opts(&o, p, 1, 1, KVQ_CAPTURE_F32, 0);
        o.progress = log_progress;
        o.progress_user = &log;
        kvq_status st = kvq_capture_run(&o, &res, why, sizeof why);
        /* progress reported exactly the committed windows */
        int ok = st == KVQ_ERR_IO && strstr(why, "errno") && log.n == (int)res.samples_total + 1 &&
                 log.done[log.n - 1] == res.samples_total;
        if (!ok) fprintf(stderr, "child: status %d, %u committed, %d progress calls: %s\n", (int)st,
                         res.samples_total, log.n, why);
        _exit(ok ? 0 : 10 + (int)st);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    kvq_capture_reader *r = NULL, *rr = NULL;
    ck_assert_msg(kvq_capture_open(p, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_msg(kvq_capture_open(ref, &rr, why, sizeof why) == KVQ_OK, "%s", why);
    uint32_t got = kvq_capture_n_samples(r);
    ck_assert_int_gt(got, 0);
    ck_assert_int_lt(got, N_SAMPLES);
    /* the committed prefix is the serial run's, tensor by tensor */
    size_t kv = kvq_capture_kv_dim(rr), rows = (size_t)got * SEQ;
    float *a = malloc(rows * kv * sizeof *a), *b = malloc(rows * kv * sizeof *b);
    for (uint32_t layer = 0; layer < kvq_capture_reader_meta(rr)->n_captured; layer++)
        for (int t = 0; t < 4; t++) {
            ck_assert_int_eq(kvq_capture_read_rows(r, layer, (kvq_capture_tensor)t, 0, rows, a, why, sizeof why), KVQ_OK);
            ck_assert_int_eq(kvq_capture_read_rows(rr, layer, (kvq_capture_tensor)t, 0, rows, b, why, sizeof why), KVQ_OK);
            ck_assert_msg(memcmp(a, b, rows * kv * sizeof *a) == 0, "layer %u tensor %d", layer, t);
        }
    for (uint32_t i = 0; i < got; i++)
        ck_assert_uint_eq(kvq_capture_samples(r)[i].window_start, kvq_capture_samples(rr)[i].window_start);
    free(a);
    free(b);
    kvq_capture_reader_free(r);
    kvq_capture_reader_free(rr);
    /* space again: resume (overlapped) completes it to the serial file */
    opts(&o, p, 1, 1, KVQ_CAPTURE_F32, 0);
    o.resume = 1;
    ck_assert_msg(kvq_capture_run(&o, &res, why, sizeof why) == KVQ_OK, "resume: %s", why);
    ck_assert_int_eq(res.samples_resumed, got);
    ck_assert_int_eq(res.samples_total, N_SAMPLES);
    int n_ds = 0;
    ck_assert_int_eq(datasets_differ(ref, p, &n_ds), 0);
}
END_TEST

static Suite *capture_overlap_suite(void) {
    Suite *s = suite_create("capture_overlap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_overlap_same_file_f32_fisher);
    tcase_add_test(tc, test_overlap_same_file_f16_gzip_nofisher);
    tcase_add_test(tc, test_overlap_write_failure_then_resume);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(capture_overlap_suite)
