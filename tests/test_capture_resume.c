/* test_capture_resume.c — crash safety of the capture writer, for real: writer processes are
 * killed with SIGKILL at random moments (inside HDF5 calls, between them, during fsync), then
 * the file must open, hold exactly the synthetic data of every committed sample, and have every
 * dataset readable through plain HDF5 (as h5py would read it); `resume` must then finish the job,
 * possibly after more kills, and the result must equal an uninterrupted capture. */
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "capture_h5.h"
#include "capture_synth.h"
#include "kvq_test.h"

enum { SAMPLES = 8 };

/* Where the child is, in memory shared with the parent, so that kills can be aimed. */
enum { PHASE_OTHER = 0, PHASE_PUT = 1, PHASE_COMMIT = 2 };
static volatile int *g_phase;

/* The child: create (or resume) and write every remaining sample, then exit 0. */
static void writer_child(const char *path, const kvq_capture_meta *m) {
    kvq_capture_writer *w = NULL;
    char why[512] = "";
    struct stat sb;
    uint32_t done = 0;
    kvq_status st = stat(path, &sb) == 0 ? kvq_capture_resume(path, m, &w, &done, why, sizeof why)
                                         : kvq_capture_create(path, m, &w, why, sizeof why);
    size_t kv = (size_t)m->model.n_kv_heads * m->model.head_dim;
    float *buf[4];
    synth_bufs(m, buf);
    for (uint32_t s = done; !st && s < SAMPLES; s++) {
        st = kvq_capture_begin(w, synth_window(m, s), m->seq_len, why, sizeof why);
        for (uint32_t slot = 0; slot < m->n_captured && !st; slot++) {
            for (int t = 0; t < 4; t++)
                for (size_t i = 0; i < m->seq_len * kv; i++) buf[t][i] = synth_value(s, m->layers[slot], t, i / kv, i % kv);
            *g_phase = PHASE_PUT;      /* HDF5 extends and chunk writes */
            st = kvq_capture_put_layer(w, slot, buf[0], buf[1], buf[2], buf[3], why, sizeof why);
            *g_phase = PHASE_OTHER;
        }
        *g_phase = PHASE_COMMIT;       /* HDF5 flushes, the counter write, fsync */
        if (!st) st = kvq_capture_commit(w, why, sizeof why);
        *g_phase = PHASE_OTHER;
    }
    if (!st) st = kvq_capture_close(w, why, sizeof why);
    if (st) fprintf(stderr, "writer child: %s: %s\n", kvq_status_name(st), why);
    _exit(st ? 20 + (int)st : 0);
}

/* Kill the child: at a random moment of a full run's duration (mode 0), or a random few
 * microseconds after it enters put_layer (mode 1) or commit (mode 2). Returns the phase the
 * child was in when the signal was sent. */
static int aimed_kill(pid_t pid, int mode, long full_us) {
    if (mode == 0) {
        usleep((useconds_t)(rand() % (full_us + 1)));
    } else {
        int want = mode == 1 ? PHASE_PUT : PHASE_COMMIT;
        for (long waited = 0; *g_phase != want && waited < 2 * full_us + 100000; waited += 20) usleep(20);
        usleep((useconds_t)(rand() % (mode == 1 ? 300 : 2000)));
    }
    int phase = *g_phase;
    kill(pid, SIGKILL);
    return phase;
}

/* Plain HDF5, the way h5py opens such a file: read every dataset in full. Returns the number of
 * datasets, or -1 when one cannot be read. */
static herr_t read_one(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    int *count = data;
    if (info->type != H5O_TYPE_DATASET || *count < 0) return 0;
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds), ft = ds < 0 ? -1 : H5Dget_type(ds);
    hid_t nt = ft < 0 ? -1 : H5Tget_native_type(ft, H5T_DIR_ASCEND);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t sz = nt < 0 ? 0 : H5Tget_size(nt);
    void *buf = n >= 0 && sz ? malloc((size_t)(n ? n : 1) * sz) : NULL;
    if (!buf || H5Dread(ds, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "dataset %s unreadable\n", name);
        *count = -1;
    } else {
        (*count)++;
    }
    free(buf);
    if (nt >= 0) H5Tclose(nt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return 0;
}

static int read_every_dataset(const char *path, int *longer) {
    H5E_auto2_t f;
    void *d;
    H5Eget_auto2(H5E_DEFAULT, &f, &d);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
        file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        H5Pclose(fapl);
    }
    H5Eset_auto2(H5E_DEFAULT, f, d);
    if (file < 0) return -1;
    int count = 0;
    H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_NATIVE, read_one, &count, H5O_INFO_BASIC);
    /* evidence of a kill inside a sample: a tensor longer than the committed rows */
    hid_t ds = H5Dopen2(file, "/layers/000/k_pre_rope", H5P_DEFAULT), c = H5Dopen2(file, "/complete_samples", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[2];
    int64_t n = 0;
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Dread(c, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &n);
    *longer = dims[0] > (hsize_t)n * 64;
    H5Sclose(sp);
    H5Dclose(ds);
    H5Dclose(c);
    H5Fclose(file);
    return count;
}

/* Every committed datum of `got` equals `ref`'s (data, boundaries, statistics). */
static void same_content(const kvq_capture_reader *got, const kvq_capture_reader *ref) {
    char why[512] = "";
    const kvq_capture_meta *m = kvq_capture_reader_meta(ref);
    ck_assert_int_eq(kvq_capture_meta_compare(kvq_capture_reader_meta(got), m, 1, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_n_samples(got), kvq_capture_n_samples(ref));
    for (uint32_t i = 0; i < kvq_capture_n_samples(ref); i++) {
        const kvq_capture_sample *x = &kvq_capture_samples(got)[i], *y = &kvq_capture_samples(ref)[i];
        ck_assert(x->row_start == y->row_start && x->length == y->length &&
                  x->window_start == y->window_start && x->source == y->source);
    }
    for (uint32_t s = 0; s < m->n_captured; s++)
        for (int t = 0; t < (m->fisher ? 4 : 2); t++) {
            float *a, *b;
            uint64_t na, nb;
            kvq_capture_stats sa, sb;
            ck_assert_int_eq(kvq_capture_read_all(got, m->layers[s], (kvq_capture_tensor)t, &a, &na, why, sizeof why), KVQ_OK);
            ck_assert_int_eq(kvq_capture_read_all(ref, m->layers[s], (kvq_capture_tensor)t, &b, &nb, why, sizeof why), KVQ_OK);
            ck_assert(na == nb && memcmp(a, b, na * kvq_capture_kv_dim(ref) * sizeof(float)) == 0);
            ck_assert_int_eq(kvq_capture_read_stats(got, m->layers[s], (kvq_capture_tensor)t, &sa, why, sizeof why), KVQ_OK);
            ck_assert_int_eq(kvq_capture_read_stats(ref, m->layers[s], (kvq_capture_tensor)t, &sb, why, sizeof why), KVQ_OK);
            size_t kv = kvq_capture_kv_dim(ref);
            ck_assert(memcmp(sa.sum, sb.sum, kv * 8) == 0 && memcmp(sa.sumsq, sb.sumsq, kv * 8) == 0 &&
                      memcmp(sa.min, sb.min, kv * 8) == 0 && memcmp(sa.max, sb.max, kv * 8) == 0);
            kvq_capture_stats_free(&sa);
            kvq_capture_stats_free(&sb);
            free(a);
            free(b);
        }
}

static void kill_and_resume(kvq_capture_dtype dtype, int compress, unsigned seed) {
    kvq_capture_meta m;
    synth_meta(&m, 2, 64, 64, SAMPLES, 1, dtype, compress);
    g_phase = mmap(NULL, sizeof *g_phase, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(g_phase != MAP_FAILED);
    *g_phase = PHASE_OTHER;
    char ref_path[1024], path[1024], why[512] = "";
    snprintf(ref_path, sizeof ref_path, "%s/ref-%u.h5", kvq_test_tmpdir(), seed);
    /* the uninterrupted run, timed to choose the kill moments */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) writer_child(ref_path, &m);
    int status;
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reference writer failed");
    long full_us = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
    kvq_capture_reader *ref = NULL;
    ck_assert_msg(kvq_capture_open(ref_path, &ref, why, sizeof why) == KVQ_OK, "%s", why);
    srand(seed);
    int kills = 0, mid_sample = 0, in_put = 0, in_commit = 0, rounds = 6;
    for (int round = 0; round < rounds; round++) {
        snprintf(path, sizeof path, "%s/kill-%u-%d.h5", kvq_test_tmpdir(), seed, round);
        uint32_t last = 0;
        for (int attempt = 0;; attempt++) {
            pid = fork();
            ck_assert_int_ge(pid, 0);
            if (pid == 0) writer_child(path, &m);
            int phase = -1;
            if (attempt < 6) phase = aimed_kill(pid, (attempt + 1) % 3, full_us);   /* then let it finish */
            waitpid(pid, &status, 0);
            *g_phase = PHASE_OTHER;
            if (WIFEXITED(status)) {
                ck_assert_msg(WEXITSTATUS(status) == 0, "writer exited with %d", WEXITSTATUS(status));
                break;
            }
            kills++;
            in_put += phase == PHASE_PUT;
            in_commit += phase == PHASE_COMMIT;
            struct stat sb;
            if (stat(path, &sb) != 0) continue;   /* killed before the file got its name */
            kvq_capture_reader *r = NULL;
            ck_assert_msg(kvq_capture_open(path, &r, why, sizeof why) == KVQ_OK, "after a kill: %s", why);
            ck_assert_int_ge(kvq_capture_n_samples(r), last);   /* commits are never lost */
            last = kvq_capture_n_samples(r);
            ck_assert_int_eq(synth_mismatches(r), 0);
            kvq_capture_reader_free(r);
            int longer = 0;
            ck_assert_int_gt(read_every_dataset(path, &longer), 0);
            mid_sample += longer;
        }
        kvq_capture_reader *r = NULL;
        ck_assert_msg(kvq_capture_open(path, &r, why, sizeof why) == KVQ_OK, "%s", why);
        same_content(r, ref);
        kvq_capture_reader_free(r);
    }
    kvq_capture_reader_free(ref);
    fprintf(stderr, "kill_and_resume(%s, gzip %d): %d kills (%d inside put_layer, %d inside commit), "
            "%d left a partly written sample on disk; uninterrupted run %ld us\n", kvq_capture_dtype_name(dtype),
            compress, kills, in_put, in_commit, mid_sample, full_us);
    ck_assert_int_gt(in_put, 0);      /* the aimed kills did land inside HDF5 writes */
    ck_assert_int_gt(in_commit, 0);
}

START_TEST(test_kill_f32) { kill_and_resume(KVQ_CAPTURE_F32, 0, 1); }
END_TEST
START_TEST(test_kill_f16_gzip) { kill_and_resume(KVQ_CAPTURE_F16, 3, 2); }
END_TEST

/* End to end: `kvq capture` runs (the real engine on stories260K, with --resume every time) killed
 * at random moments until one finishes; the result equals an uninterrupted capture. */
static void capture_child(kvq_capture_opts *o) {
    kvq_capture_result res;
    char why[512] = "";
    kvq_status st = kvq_capture_run(o, &res, why, sizeof why);
    if (st) fprintf(stderr, "capture child: %s\n", why);
    _exit(st ? 20 + (int)st : 0);
}

START_TEST(test_kill_real_capture) {
    const char *mp = kvq_test_shared("models/stories260K/stories260K.bin");
    KVQ_SKIP_IF_MISSING(mp, "models/stories260K/stories260K.bin");
    char model[1024], text[1024], ref_path[1024], path[1024], why[512] = "";
    snprintf(model, sizeof model, "%s", mp);
    const char *tp = kvq_test_shared("data/text/tinystories_val_subset.txt");
    KVQ_SKIP_IF_MISSING(tp, "data/text/tinystories_val_subset.txt");
    snprintf(text, sizeof text, "%s", tp);
    snprintf(ref_path, sizeof ref_path, "%s/real-ref.h5", kvq_test_tmpdir());
    snprintf(path, sizeof path, "%s/real-kill.h5", kvq_test_tmpdir());
    kvq_capture_opts o;
    kvq_capture_opts_init(&o);
    o.model_path = model;
    o.text_path = text;
    o.samples = 12;
    o.seq_len = 64;
    o.threads = 1;
    o.resume = 1;
    o.out_path = ref_path;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) capture_child(&o);
    int status;
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "uninterrupted capture failed");
    long full_us = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
    o.out_path = path;
    srand(11);
    int kills = 0;
    for (int attempt = 0;; attempt++) {
        pid = fork();
        if (pid == 0) capture_child(&o);
        if (attempt < 4) {
            usleep((useconds_t)(rand() % (full_us + 1)));
            kill(pid, SIGKILL);
        }
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            ck_assert_msg(WEXITSTATUS(status) == 0, "capture exited with %d", WEXITSTATUS(status));
            break;
        }
        kills++;
    }
    kvq_capture_reader *got = NULL, *ref = NULL;
    ck_assert_msg(kvq_capture_open(path, &got, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_msg(kvq_capture_open(ref_path, &ref, why, sizeof why) == KVQ_OK, "%s", why);
    same_content(got, ref);
    kvq_capture_reader_free(got);
    kvq_capture_reader_free(ref);
    fprintf(stderr, "kill_real_capture: %d kills, uninterrupted run %ld us\n", kills, full_us);
}
END_TEST

static Suite *resume_suite(void) {
    Suite *s = suite_create("capture_resume");
    TCase *tc = tcase_create("kill");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_kill_f32);
    tcase_add_test(tc, test_kill_f16_gzip);
    tcase_add_test(tc, test_kill_real_capture);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(resume_suite)
