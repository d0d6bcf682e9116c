/* test_capture_write.c — the capture writer's fast path (calib/capture_h5_put.c) must write the
 * file HDF5's own pipeline writes. Oracle: the same samples written with direct chunk writes off
 * (kvq_capture_writer_set_direct 0: H5Dwrite, HDF5 computes every Fletcher-32). Every raw chunk
 * (H5Dread_chunk: stored bytes plus HDF5's checksum, filter mask) and every statistics value must
 * be equal, for each storage type, and the files of different team sizes must be byte-identical
 * (no timestamps; statistics summed in row order whatever the threads). Sample lengths that do
 * not fill whole chunks (a short sample, then rows no longer chunk-aligned) take the pipeline
 * inside the same file. A chunk write that fails (RLIMIT_FSIZE, a disk-full stand-in) is reported
 * by the next call with the layer and tensor named, although the layer was put one call earlier. */
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

#include "capture_h5.h"
#include "kvq_test.h"
#include "util_h5.h"

enum { KV = 2048, SEQ = 256, LAYERS = 2, N_SAMP = 4 };
static const size_t LENS[N_SAMP] = {SEQ, SEQ, 100, SEQ};   /* the third breaks chunk alignment */

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Values over many binades (f16 subnormals, overflow to Inf in f16, ties), signed zeros. */
static void fill(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix(&seed);
        double m = (double)(r >> 40) / (double)(1u << 24);
        int e = (int)((r >> 8) % 50) - 32;   /* up to 2^17: past f16's 65504 */
        x[i] = (float)ldexp(m, e) * ((r & 1) ? -1.0f : 1.0f);
        if (r % 97 == 0) x[i] = (r & 2) ? -0.0f : 0.0f;
    }
}

static void meta_of(kvq_capture_meta *m, kvq_capture_dtype dtype) {
    kvq_model_identity id;
    memset(&id, 0, sizeof id);
    id.n_layers = LAYERS;
    id.n_heads = id.n_kv_heads = 16;
    id.head_dim = KV / 16;
    id.hidden = KV;
    id.vocab = 100;
    kvq_capture_meta_init(m, &id);
    m->seq_len = SEQ;
    m->samples_requested = N_SAMP;
    m->dtype = dtype;
}

static void write_file(const char *path, kvq_capture_dtype dtype, int threads, int direct, float *x /* (4, SEQ, KV) */) {
    char why[512] = "";
    kvq_capture_meta m;
    meta_of(&m, dtype);
    kvq_capture_writer *w = NULL;
    remove(path);
    ck_assert_msg(kvq_capture_create(path, &m, &w, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_capture_writer_set_threads(w, threads);
    kvq_capture_writer_set_direct(w, direct);
    size_t n = (size_t)SEQ * KV;
    for (int s = 0; s < N_SAMP; s++) {
        ck_assert_msg(kvq_capture_begin(w, (uint64_t)s, LENS[s], why, sizeof why) == KVQ_OK, "%s", why);
        for (uint32_t l = 0; l < LAYERS; l++) {
            fill(x, 4 * n, 1000u * (uint64_t)s + l);
            ck_assert_msg(kvq_capture_put_layer(w, l, x, x + n, x + 2 * n, x + 3 * n, why, sizeof why) == KVQ_OK,
                          "sample %d layer %u: %s", s, l, why);
        }
        ck_assert_msg(kvq_capture_commit(w, why, sizeof why) == KVQ_OK, "%s", why);
    }
    ck_assert_msg(kvq_capture_close(w, why, sizeof why) == KVQ_OK, "%s", why);
}

/* Every chunk of dataset `name` in both files: same offsets, filter masks and stored bytes. */
static void same_chunks(hid_t fa, hid_t fb, const char *name) {
    hid_t da = H5Dopen2(fa, name, H5P_DEFAULT), db = H5Dopen2(fb, name, H5P_DEFAULT);
    ck_assert_msg(da >= 0 && db >= 0, "open %s", name);
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
    hsize_t na = 0, nb = 0;
    ck_assert(H5Dget_num_chunks(da, sa, &na) >= 0 && H5Dget_num_chunks(db, sb, &nb) >= 0);
    ck_assert_msg(na == nb && na > 0, "%s: %llu vs %llu chunks", name, (unsigned long long)na, (unsigned long long)nb);
    for (hsize_t i = 0; i < na; i++) {
        hsize_t oa[3], ob[3], size_a = 0, size_b = 0;
        unsigned ma = 1, mb = 1;
        haddr_t addr;
        ck_assert(H5Dget_chunk_info(da, sa, i, oa, &ma, &addr, &size_a) >= 0);
        ck_assert(H5Dget_chunk_info(db, sb, i, ob, &mb, &addr, &size_b) >= 0);
        ck_assert_msg(oa[0] == ob[0] && oa[1] == ob[1] && size_a == size_b && ma == 0 && mb == 0,
                      "%s chunk %llu: offset %llu/%llu size %llu/%llu mask %u/%u", name, (unsigned long long)i,
                      (unsigned long long)oa[0], (unsigned long long)ob[0], (unsigned long long)size_a,
                      (unsigned long long)size_b, ma, mb);
        unsigned char *ba = malloc(size_a), *bb = malloc(size_b);
        uint32_t fm = 0;
        ck_assert(ba && bb);
        ck_assert(H5Dread_chunk(da, H5P_DEFAULT, oa, &fm, ba) >= 0 && H5Dread_chunk(db, H5P_DEFAULT, ob, &fm, bb) >= 0);
        ck_assert_msg(memcmp(ba, bb, size_a) == 0, "%s chunk at row %llu differs (checksum: %02x%02x%02x%02x vs "
                      "%02x%02x%02x%02x)", name, (unsigned long long)oa[0], ba[size_a - 1], ba[size_a - 2],
                      ba[size_a - 3], ba[size_a - 4], bb[size_a - 1], bb[size_a - 2], bb[size_a - 3], bb[size_a - 4]);
        free(ba);
        free(bb);
    }
    H5Sclose(sa); H5Sclose(sb); H5Dclose(da); H5Dclose(db);
}

static void direct_vs_pipeline(kvq_capture_dtype dtype) {
    char pa[1024], pb[1024], pc[1024];
    snprintf(pa, sizeof pa, "%s/direct3-%d.h5", kvq_test_tmpdir(), (int)dtype);
    snprintf(pb, sizeof pb, "%s/pipeline-%d.h5", kvq_test_tmpdir(), (int)dtype);
    snprintf(pc, sizeof pc, "%s/direct1-%d.h5", kvq_test_tmpdir(), (int)dtype);
    float *x = malloc(4 * (size_t)SEQ * KV * sizeof *x);
    ck_assert_ptr_nonnull(x);
    write_file(pa, dtype, 3, 1, x);
    write_file(pb, dtype, 1, 0, x);
    write_file(pc, dtype, 1, 1, x);
    free(x);
    ck_assert_msg(kvq_test_files_equal(pa, pc), "3 threads and 1 thread gave different files");
    hid_t fa = kvq_test_h5_open(pa), fb = kvq_test_h5_open(pb);
    ck_assert(fa >= 0 && fb >= 0);
    char name[128];
    for (int l = 0; l < LAYERS; l++)
        for (int t = 0; t < KVQ_CAPTURE_N_TENSORS; t++) {
            snprintf(name, sizeof name, "layers/%03d/%s", l, kvq_capture_tensor_name((kvq_capture_tensor)t));
            same_chunks(fa, fb, name);
            snprintf(name, sizeof name, "layers/%03d/%s_stats", l, kvq_capture_tensor_name((kvq_capture_tensor)t));
            same_chunks(fa, fb, name);
        }
    /* and HDF5 reads the direct file back through its own checksum check */
    size_t n = 0;
    float *v = kvq_test_h5_read_float(fa, "layers/001/fisher_v", &n);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(n, (size_t)(3 * SEQ + 100) * KV);
    free(v);
    kvq_test_h5_close(fa);
    kvq_test_h5_close(fb);
    remove(pa);
    remove(pb);
    remove(pc);
}

START_TEST(test_direct_f32) { direct_vs_pipeline(KVQ_CAPTURE_F32); }
END_TEST
START_TEST(test_direct_f16) { direct_vs_pipeline(KVQ_CAPTURE_F16); }
END_TEST
START_TEST(test_direct_bf16) { direct_vs_pipeline(KVQ_CAPTURE_BF16); }
END_TEST

/* f32 chunks here are 128 rows = 1 MiB: a limit 1.5 MiB past the empty layout fails inside
 * layer 0's k_pre_rope, which is written during the put_layer of layer 1. */
START_TEST(test_failed_chunk_write_names_layer) {
    char path[1024];
    snprintf(path, sizeof path, "%s/efbig.h5", kvq_test_tmpdir());
    remove(path);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {   /* _exit: HDF5 1.10.8 crashes in its atexit cleanup after a failed close */
        char why[512] = "";
        kvq_capture_meta m;
        kvq_capture_writer *w = NULL;
        struct stat sb;
        size_t n = (size_t)SEQ * KV;
        float *x = calloc(4 * n, sizeof *x);
        meta_of(&m, KVQ_CAPTURE_F32);
        if (!x || kvq_capture_create(path, &m, &w, why, sizeof why) || stat(path, &sb)) _exit(2);
        kvq_capture_writer_set_threads(w, 1);   /* a forked child: the parent's OpenMP pool is unusable */
        struct rlimit rl = {(rlim_t)sb.st_size + (3u << 19), (rlim_t)sb.st_size + (3u << 19)};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        kvq_status st = kvq_capture_begin(w, 0, SEQ, why, sizeof why);
        if (!st) st = kvq_capture_put_layer(w, 0, x, x + n, x + 2 * n, x + 3 * n, why, sizeof why);
        if (st) _exit(3);   /* layer 0 is only staged: nothing written yet */
        st = kvq_capture_put_layer(w, 1, x, x + n, x + 2 * n, x + 3 * n, why, sizeof why);
        fprintf(stderr, "efbig: %.120s\n", why);
        _exit(st == KVQ_ERR_IO && strstr(why, "writing layer 0 k_pre_rope: ") && strstr(why, "errno") ? 0 : 4);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    /* the file keeps its empty, valid layout */
    char why[512] = "";
    kvq_capture_reader *r = NULL;
    ck_assert_msg(kvq_capture_open(path, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(kvq_capture_n_samples(r), 0);
    kvq_capture_reader_free(r);
    remove(path);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("capture_write");
    TCase *tc = tcase_create("direct");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_direct_f32);
    tcase_add_test(tc, test_direct_f16);
    tcase_add_test(tc, test_direct_bf16);
    tcase_add_test(tc, test_failed_chunk_write_names_layer);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(suite)
