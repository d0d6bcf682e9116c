/* test_capture.c — the capture file layer: SHA-256 (FIPS 180-4 vectors, and the shared folder's
 * SHA256SUMS as an independent oracle), the seeded RNG (published splitmix64 outputs; xoshiro256**
 * outputs from a Python transcription of the authors' reference C), and the HDF5 writer/reader/
 * merge on synthetic samples. Crash safety is in test_capture_resume.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "capture_h5.h"
#include "engine.h"
#include "kvq_model.h"
#include "capture_synth.h"
#include "kvq_test.h"
#include "rng.h"
#include "sha256.h"
#include "tokenizer.h"

static void sha_hex(const void *data, size_t len, char hex[65]) {
    kvq_sha256 c;
    uint8_t d[32];
    kvq_sha256_init(&c);
    kvq_sha256_update(&c, data, len);
    kvq_sha256_final(&c, d);
    kvq_sha256_hex(d, hex);
}

START_TEST(test_sha256_vectors) {
    char hex[65];
    sha_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m448, strlen(m448), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces to exercise the block buffering */
    kvq_sha256 c;
    uint8_t d[32], buf[997];
    memset(buf, 'a', sizeof buf);
    kvq_sha256_init(&c);
    size_t left = 1000000;
    for (size_t piece = 1; left; piece = piece % 997 + 1) {
        size_t n = piece < left ? piece : left;
        kvq_sha256_update(&c, buf, n);
        left -= n;
    }
    kvq_sha256_final(&c, d);
    kvq_sha256_hex(d, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(test_sha256_file_matches_sha256sums) {
    const char *p = kvq_test_shared("data/text/wiki.valid.raw");
    KVQ_SKIP_IF_MISSING(p, "data/text/wiki.valid.raw");
    char hex[65], why[256] = "";
    ck_assert_int_eq(kvq_sha256_file(p, hex, why, sizeof why), KVQ_OK);
    /* ../shared/SHA256SUMS, written by sha256sum */
    ck_assert_str_eq(hex, "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7");
    ck_assert_int_eq(kvq_sha256_file("/nonexistent/x", hex, why, sizeof why), KVQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent/x"));
}
END_TEST

START_TEST(test_rng_reference_values) {
    uint64_t st = 0;
    ck_assert_uint_eq(kvq_splitmix64(&st), 0xe220a8397b1dcdafull);
    ck_assert_uint_eq(kvq_splitmix64(&st), 0x6e789e6aa1b965f4ull);
    ck_assert_uint_eq(kvq_splitmix64(&st), 0x06c45d188009454full);
    kvq_rng r;
    kvq_rng_seed(&r, 0);
    const uint64_t want[5] = {0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull, 0x1a5f849d4933e6e0ull,
                              0x6aa594f1262d2d2cull, 0xbba5ad4a1f842e59ull};
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(kvq_rng_next(&r), want[i]);
}
END_TEST

START_TEST(test_rng_below_uniform) {
    kvq_rng r;
    kvq_rng_seed(&r, 42);
    enum { N = 7, DRAWS = 70000 };
    int hist[N] = {0};
    for (int i = 0; i < DRAWS; i++) {
        uint64_t x = kvq_rng_below(&r, N);
        ck_assert_uint_lt(x, N);
        hist[x]++;
    }
    /* each bin ~ Binomial(70000, 1/7): mean 10000, sd ~93; 6 sd never fails by chance */
    for (int i = 0; i < N; i++) ck_assert_int_lt(abs(hist[i] - 10000), 560);
    ck_assert_uint_eq(kvq_rng_below(&r, 0), 0);
    ck_assert_uint_eq(kvq_rng_below(&r, 1), 0);
    double u = kvq_rng_uniform(&r);
    ck_assert(u >= 0 && u < 1);
}
END_TEST


static const char *tmp_path(const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s", kvq_test_tmpdir(), name);
    unlink(p);
    return p;
}

/* Write `n` synthetic samples to a new file. */
static void write_synth(const char *path, const kvq_capture_meta *m, uint32_t n) {
    kvq_capture_writer *w = NULL;
    char why[512] = "";
    float *buf[4];
    synth_bufs(m, buf);
    ck_assert_msg(kvq_capture_create(path, m, &w, why, sizeof why) == KVQ_OK, "%s", why);
    for (uint32_t s = 0; s < n; s++)
        ck_assert_msg(synth_append(w, m, s, buf, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(kvq_capture_writer_samples(w), n);
    ck_assert_msg(kvq_capture_close(w, why, sizeof why) == KVQ_OK, "%s", why);
    synth_free(buf);
}

static void roundtrip(kvq_capture_dtype dtype, int fisher, int compress) {
    kvq_capture_meta m;
    synth_meta(&m, 2, 16, 48, 3, fisher, dtype, compress);
    snprintf(m.git_revision, sizeof m.git_revision, "abc123");
    m.model.rope_scaling = KVQ_ROPE_SCALING_LLAMA3;
    m.model.rope_scaling_factor = 8;
    const char *p = tmp_path("roundtrip.h5");
    write_synth(p, &m, 3);
    kvq_capture_reader *r = NULL;
    char why[512] = "";
    ck_assert_msg(kvq_capture_open(p, &r, why, sizeof why) == KVQ_OK, "%s", why);
    /* provenance round trip: every field, through HDF5 attributes */
    const kvq_capture_meta *got = kvq_capture_reader_meta(r);
    ck_assert_msg(kvq_capture_meta_compare(got, &m, 1, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_str_eq(got->tool_version, KVQ_VERSION);
    ck_assert_str_eq(got->git_revision, "abc123");
    ck_assert_str_eq(got->model_path, m.model_path);
    ck_assert_str_eq(got->tokenizer, m.tokenizer);
    ck_assert_str_eq(got->text_path, m.text_path);
    ck_assert_int_eq(got->n_sources, 1);
    ck_assert(got->model.rope_scaling == KVQ_ROPE_SCALING_LLAMA3 && got->model.rope_scaling_factor == 8);
    ck_assert_int_eq(kvq_capture_n_samples(r), 3);
    ck_assert_uint_eq(kvq_capture_n_rows(r), 3 * 48);
    ck_assert_int_eq(kvq_capture_slot(r, 2), 1);
    ck_assert_int_eq(kvq_capture_slot(r, 1), -1);
    ck_assert_int_eq(synth_mismatches(r), 0);
    /* whole-tensor read == row-block reads; statistics == recomputation from the fp32 values */
    size_t kv = 32;
    float *all = NULL;
    uint64_t rows = 0;
    ck_assert_int_eq(kvq_capture_read_all(r, 3, KVQ_CAPTURE_V, &all, &rows, why, sizeof why), KVQ_OK);
    ck_assert_uint_eq(rows, 144);
    for (size_t i = 0; i < rows * kv; i++)
        ck_assert(all[i] == synth_stored(&m, 1, synth_value((uint32_t)(i / kv / 48), 3, 1, i / kv % 48, i % kv)));
    free(all);
    kvq_capture_stats st;
    ck_assert_int_eq(kvq_capture_read_stats(r, 3, KVQ_CAPTURE_K, &st, why, sizeof why), KVQ_OK);
    ck_assert_uint_eq(st.count, 144);
    for (size_t c = 0; c < kv; c++) {
        double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
        for (uint32_t s = 0; s < 3; s++)
            for (size_t t = 0; t < 48; t++) {
                double v = synth_value(s, 3, 0, t, c);
                sum += v; sq += v * v; mn = fmin(mn, v); mx = fmax(mx, v);
            }
        /* same values summed in another grouping (per sample, then over samples): rounding only */
        ck_assert_double_eq_tol(st.sum[c], sum, 1e-9 * (1 + fabs(sum)));
        ck_assert_double_eq_tol(st.sumsq[c], sq, 1e-9 * sq);
        ck_assert(st.min[c] == mn && st.max[c] == mx);
    }
    kvq_capture_stats_free(&st);
    kvq_capture_stats_free(NULL);
    /* errors: a layer or tensor that is not there, rows past the committed ones */
    float one[32];
    ck_assert_int_eq(kvq_capture_read_rows(r, 1, KVQ_CAPTURE_K, 0, 1, one, why, sizeof why), KVQ_ERR_MISSING);
    ck_assert_int_eq(kvq_capture_read_rows(r, 0, KVQ_CAPTURE_K, 144, 1, one, why, sizeof why), KVQ_ERR_BOUNDS);
    if (!fisher)
        ck_assert_int_eq(kvq_capture_read_rows(r, 0, KVQ_CAPTURE_FISHER_K, 0, 1, one, why, sizeof why),
                         KVQ_ERR_MISSING);
    kvq_capture_reader_free(r);
    kvq_capture_reader_free(NULL);
}

START_TEST(test_roundtrip_f32) { roundtrip(KVQ_CAPTURE_F32, 1, 0); }
END_TEST
START_TEST(test_roundtrip_f16_gzip) { roundtrip(KVQ_CAPTURE_F16, 1, 4); }
END_TEST
START_TEST(test_roundtrip_bf16_nofisher) { roundtrip(KVQ_CAPTURE_BF16, 0, 0); }
END_TEST

/* The 2-byte float types as HDF5 itself understands them: reading with HDF5's own conversion to
 * native float (an independent implementation) must give the values kvq_half.h decodes. */
START_TEST(test_half_types_hdf5_conversion) {
    for (int d = KVQ_CAPTURE_F16; d <= KVQ_CAPTURE_BF16; d++) {
        kvq_capture_meta m;
        synth_meta(&m, 1, 8, 16, 1, 0, (kvq_capture_dtype)d, 0);
        const char *p = tmp_path("half.h5");
        write_synth(p, &m, 1);
        hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
        ck_assert(f >= 0);
        hid_t ds = H5Dopen2(f, "/layers/002/k_pre_rope", H5P_DEFAULT);
        float got[16 * 8];
        ck_assert(ds >= 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) >= 0);
        for (size_t i = 0; i < 16 * 8; i++)
            ck_assert_msg(got[i] == synth_stored(&m, 0, synth_value(0, 2, 0, i / 8, i % 8)), "%s element %zu",
                          kvq_capture_dtype_name(m.dtype), i);
        H5Dclose(ds);
        H5Fclose(f);
    }
}
END_TEST

START_TEST(test_writer_errors) {
    kvq_capture_meta m;
    synth_meta(&m, 1, 8, 16, 2, 1, KVQ_CAPTURE_F32, 0);
    const char *p = tmp_path("errors.h5");
    kvq_capture_writer *w = NULL;
    char why[512] = "";
    ck_assert_int_eq(kvq_capture_create("/nonexistent-dir/x.h5", &m, &w, why, sizeof why), KVQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent-dir/x.h5"));
    kvq_capture_meta bad = m;
    bad.layers[1] = 9;
    ck_assert_int_eq(kvq_capture_create(p, &bad, &w, why, sizeof why), KVQ_ERR_ARG);
    ck_assert_int_eq(kvq_capture_create(p, &m, &w, why, sizeof why), KVQ_OK);
    kvq_capture_writer *w2 = NULL;
    ck_assert_int_eq(kvq_capture_create(p, &m, &w2, why, sizeof why), KVQ_ERR_IO);   /* exists */
    ck_assert_ptr_nonnull(strstr(why, "--resume"));
    float x[16 * 8];
    for (int i = 0; i < 16 * 8; i++) x[i] = 0.5f;
    ck_assert_int_eq(kvq_capture_put_layer(w, 0, x, x, x, x, why, sizeof why), KVQ_ERR_ARG);  /* no begin */
    ck_assert_int_eq(kvq_capture_begin(w, 5, 16, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_put_layer(w, 0, x, x, NULL, NULL, why, sizeof why), KVQ_ERR_ARG); /* Fisher on */
    ck_assert_int_eq(kvq_capture_put_layer(w, 0, x, x, x, x, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_commit(w, why, sizeof why), KVQ_ERR_ARG);   /* layers 2, 3 missing */
    ck_assert_ptr_nonnull(strstr(why, "layer 2"));
    ck_assert_int_eq(kvq_capture_put_layer(w, 1, x, x, x, x, why, sizeof why), KVQ_OK);
    x[3 * 8 + 5] = NAN;
    ck_assert_int_eq(kvq_capture_put_layer(w, 2, x, x, x, x, why, sizeof why), KVQ_ERR_NONFINITE);
    ck_assert_msg(strstr(why, "NaN at layer 3 k_pre_rope, row 3 channel 5 of sample 0"), "%s", why);
    ck_assert_int_eq(kvq_capture_close(w, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_close(NULL, why, sizeof why), KVQ_OK);
    /* the file holds 0 complete samples and is valid */
    kvq_capture_reader *r = NULL;
    ck_assert_msg(kvq_capture_open(p, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(kvq_capture_n_samples(r), 0);
    ck_assert_uint_eq(kvq_capture_n_rows(r), 0);
    kvq_capture_reader_free(r);
}
END_TEST

START_TEST(test_reader_rejects) {
    char why[512] = "";
    kvq_capture_reader *r = NULL;
    ck_assert_int_eq(kvq_capture_open("/nonexistent/c.h5", &r, why, sizeof why), KVQ_ERR_IO);
    const char *txt = tmp_path("text.h5");
    FILE *f = fopen(txt, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    ck_assert_int_eq(kvq_capture_open(txt, &r, why, sizeof why), KVQ_ERR_FORMAT);
    /* an HDF5 file that is not a capture */
    const char *other = tmp_path("other.h5");
    hid_t h = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(h >= 0);
    H5Fclose(h);
    ck_assert_int_eq(kvq_capture_open(other, &r, why, sizeof why), KVQ_ERR_MAGIC);
    ck_assert_ptr_null(r);
    /* a capture from a future format version */
    kvq_capture_meta m;
    synth_meta(&m, 1, 8, 16, 1, 0, KVQ_CAPTURE_F32, 0);
    const char *p = tmp_path("future.h5");
    write_synth(p, &m, 1);
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(h >= 0);
    hid_t a = H5Aopen(h, "format_version", H5P_DEFAULT);
    int32_t v2 = 2;
    ck_assert(a >= 0 && H5Awrite(a, H5T_NATIVE_INT32, &v2) >= 0);
    H5Aclose(a);
    H5Fclose(h);
    ck_assert_int_eq(kvq_capture_open(p, &r, why, sizeof why), KVQ_ERR_VERSION);
    ck_assert_msg(strstr(why, "format_version 2"), "%s", why);
}
END_TEST

/* Flip one byte of chunk data: the Fletcher-32 filter must turn it into KVQ_ERR_CHECKSUM. */
START_TEST(test_checksum_detects_corruption) {
    kvq_capture_meta m;
    synth_meta(&m, 1, 8, 16, 1, 0, KVQ_CAPTURE_F32, 0);
    const char *p = tmp_path("corrupt.h5");
    write_synth(p, &m, 1);
    /* find the bytes of /layers/000/v row 0 (values synth_value(0, 0, 1, 0, c)) in the file */
    float want[8];
    for (int c = 0; c < 8; c++) want[c] = synth_value(0, 0, 1, 0, (size_t)c);
    FILE *f = fopen(p, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    unsigned char *b = malloc((size_t)len);
    fseek(f, 0, SEEK_SET);
    ck_assert_int_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    long at = -1;
    for (long i = 0; i + 32 <= len && at < 0; i++)
        if (!memcmp(b + i, want, 32)) at = i;
    ck_assert_int_ge(at, 0);
    fseek(f, at + 2, SEEK_SET);
    fputc(b[at + 2] ^ 0x40, f);
    fclose(f);
    free(b);
    kvq_capture_reader *r = NULL;
    char why[512] = "";
    ck_assert_msg(kvq_capture_open(p, &r, why, sizeof why) == KVQ_OK, "%s", why);
    float out[16 * 8];
    ck_assert_int_eq(kvq_capture_read_rows(r, 0, KVQ_CAPTURE_V, 0, 16, out, why, sizeof why), KVQ_ERR_CHECKSUM);
    ck_assert_msg(strstr(why, "/layers/000/v"), "%s", why);
    ck_assert_int_eq(kvq_capture_read_rows(r, 0, KVQ_CAPTURE_K, 0, 16, out, why, sizeof why), KVQ_OK);
    kvq_capture_reader_free(r);
}
END_TEST

START_TEST(test_merge) {
    kvq_capture_meta a, b;
    synth_meta(&a, 2, 8, 16, 2, 1, KVQ_CAPTURE_F16, 0);
    b = a;
    b.seed = 8;
    const char *pa = tmp_path("ma.h5"), *pb = tmp_path("mb.h5"), *pc = tmp_path("mc.h5");
    write_synth(pa, &a, 2);
    write_synth(pb, &b, 3);
    const char *in[2] = {pa, pb};
    char why[512] = "";
    ck_assert_msg(kvq_capture_merge(in, 2, pc, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_capture_reader *r = NULL, *rb = NULL;
    ck_assert_msg(kvq_capture_open(pc, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(kvq_capture_open(pb, &rb, why, sizeof why), KVQ_OK);
    const kvq_capture_meta *m = kvq_capture_reader_meta(r);
    ck_assert_int_eq(kvq_capture_n_samples(r), 5);
    ck_assert_int_eq(m->n_sources, 2);
    ck_assert_int_eq(m->samples_requested, 4);   /* 2 + 2 requested */
    const kvq_capture_sample *s = kvq_capture_samples(r);
    ck_assert_int_eq(s[1].source, 0);
    ck_assert_int_eq(s[2].source, 1);
    ck_assert_uint_eq(s[3].window_start, synth_window(&b, 1));
    ck_assert_uint_eq(s[4].row_start, 64);
    /* sample 2+j of the merge is sample j of b, bit for bit, statistics included */
    size_t n = 16 * 16;
    float x[16 * 16], y[16 * 16];
    for (uint32_t j = 0; j < 3; j++)
        for (int t = 0; t < 4; t++) {
            ck_assert_int_eq(kvq_capture_read_rows(r, 3, (kvq_capture_tensor)t, (2 + j) * 16, 16, x, why, sizeof why), KVQ_OK);
            ck_assert_int_eq(kvq_capture_read_rows(rb, 3, (kvq_capture_tensor)t, j * 16, 16, y, why, sizeof why), KVQ_OK);
            ck_assert(memcmp(x, y, n * sizeof(float)) == 0);
        }
    kvq_capture_stats sm, sb;
    ck_assert_int_eq(kvq_capture_read_stats(r, 0, KVQ_CAPTURE_FISHER_V, &sm, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_read_stats(rb, 0, KVQ_CAPTURE_FISHER_V, &sb, why, sizeof why), KVQ_OK);
    for (int c = 0; c < 16; c++) ck_assert(sm.max[c] >= sb.max[c] && sm.sum[c] > sb.sum[c]);
    kvq_capture_stats_free(&sm);
    kvq_capture_stats_free(&sb);
    kvq_capture_reader_free(rb);
    kvq_capture_reader_free(r);
    /* refusals: output exists; same text and seed; another model; other settings */
    ck_assert_int_eq(kvq_capture_merge(in, 2, pc, why, sizeof why), KVQ_ERR_IO);
    const char *same[2] = {pa, pa};
    ck_assert_int_eq(kvq_capture_merge(same, 2, tmp_path("m2.h5"), why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "repeat"), "%s", why);
    kvq_capture_meta c = b;
    c.seed = 9;
    c.model.fingerprint ^= 1;
    const char *pd = tmp_path("md.h5");
    write_synth(pd, &c, 1);
    const char *diff[2] = {pa, pd};
    ck_assert_int_eq(kvq_capture_merge(diff, 2, tmp_path("m3.h5"), why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "fingerprint"), "%s", why);
    c.model.fingerprint ^= 1;
    c.seq_len = 8;
    const char *pe = tmp_path("me.h5");
    write_synth(pe, &c, 1);
    const char *diff2[2] = {pa, pe};
    ck_assert_int_eq(kvq_capture_merge(diff2, 2, tmp_path("m4.h5"), why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "seq_len"), "%s", why);
    struct stat sbuf;
    ck_assert_int_ne(stat(tmp_path("m4.h5"), &sbuf), 0);   /* nothing left behind */
}
END_TEST

/* A finished file continued with --resume gives the same data as one written in one go; a
 * resume with other settings is refused. */
START_TEST(test_resume_finished_file) {
    kvq_capture_meta m;
    synth_meta(&m, 1, 8, 16, 4, 1, KVQ_CAPTURE_BF16, 2);
    const char *p = tmp_path("res.h5");
    write_synth(p, &m, 2);
    kvq_capture_writer *w = NULL;
    char why[512] = "";
    uint32_t done = 99;
    kvq_capture_meta other = m;
    other.seed = 1;
    ck_assert_int_eq(kvq_capture_resume(p, &other, &w, &done, why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "seed"), "%s", why);
    ck_assert_msg(kvq_capture_resume(p, &m, &w, &done, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(done, 2);
    float *buf[4];
    synth_bufs(&m, buf);
    for (uint32_t s = 2; s < 4; s++) ck_assert_int_eq(synth_append(w, &m, s, buf, why, sizeof why), KVQ_OK);
    synth_free(buf);
    ck_assert_int_eq(kvq_capture_close(w, why, sizeof why), KVQ_OK);
    kvq_capture_reader *r = NULL;
    ck_assert_int_eq(kvq_capture_open(p, &r, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_n_samples(r), 4);
    ck_assert_int_eq(synth_mismatches(r), 0);
    kvq_capture_reader_free(r);
}
END_TEST

/* Disk full, injected: a child writes under RLIMIT_FSIZE, so a write fails (EFBIG) partway
 * through a sample. The error is reported as an I/O error and the committed prefix stays valid. */
START_TEST(test_write_failure_keeps_prefix) {
    kvq_capture_meta m;
    synth_meta(&m, 2, 32, 64, 40, 1, KVQ_CAPTURE_F32, 0);
    const char *p = tmp_path("full.h5");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl = {300000, 300000};   /* bytes: a few samples fit, not 40 */
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        kvq_capture_writer *w = NULL;
        char why[512] = "";
        float *buf[4];
        synth_bufs(&m, buf);
        kvq_status st = kvq_capture_create(p, &m, &w, why, sizeof why);
        kvq_capture_writer_set_threads(w, 1);   /* a forked child: the parent's OpenMP pool is unusable */
        for (uint32_t s = 0; !st && s < 40; s++) st = synth_append(w, &m, s, buf, why, sizeof why);
        kvq_capture_close(w, NULL, 0);
        _exit(st == KVQ_ERR_IO && strstr(why, "errno") ? 0 : 10 + (int)st);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    kvq_capture_reader *r = NULL;
    char why[512] = "";
    ck_assert_msg(kvq_capture_open(p, &r, why, sizeof why) == KVQ_OK, "%s", why);
    uint32_t got = kvq_capture_n_samples(r);
    ck_assert_int_gt(got, 0);
    ck_assert_int_lt(got, 40);
    ck_assert_int_eq(synth_mismatches(r), 0);
    kvq_capture_reader_free(r);
    /* space again: resume cuts the failed sample's rows and completes the file */
    kvq_capture_writer *w = NULL;
    uint32_t done = 0;
    ck_assert_msg(kvq_capture_resume(p, &m, &w, &done, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(done, got);
    float *buf[4];
    synth_bufs(&m, buf);
    for (uint32_t s = done; s < 40; s++) ck_assert_int_eq(synth_append(w, &m, s, buf, why, sizeof why), KVQ_OK);
    synth_free(buf);
    ck_assert_int_eq(kvq_capture_close(w, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_open(p, &r, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_capture_n_samples(r), 40);
    ck_assert_int_eq(synth_mismatches(r), 0);
    kvq_capture_reader_free(r);
    /* and every HDF5 reader accepts it as is (no EOF/EOA repair needed) */
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    H5Fclose(f);
}
END_TEST

/* The CLI on a write failure past RLIMIT_FSIZE: a clean exit 4 naming the error — not a crash (HDF5's
 * atexit clean-up of a file whose H5Fclose had failed used to segfault: exit 139). */
START_TEST(test_cli_write_failure_exit_code) {
    const char *bin = getenv("KVQ_BIN");
    char model[1024], tok[1024], text[1024], cmd[4096], err[600];
    const char *m = kvq_test_shared("models/stories260K/stories260K.bin");
    if (!bin || !m) { fprintf(stderr, "SKIP cli write failure: KVQ_BIN or stories260K missing\n"); return; }
    snprintf(model, sizeof model, "%s", m);
    snprintf(tok, sizeof tok, "%s", kvq_test_shared("models/stories260K/tok512.bin"));
    snprintf(text, sizeof text, "%s", kvq_test_shared("data/text/tinystories_val_subset.txt"));
    snprintf(err, sizeof err, "%s/efbig.err", kvq_test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "ulimit -f 3000; trap '' XFSZ; %s capture --model %s --tokenizer %s --text %s --samples 64 --seq-len 256 "
             "--threads 1 -o %s 2>%s",
             bin, model, tok, text, tmp_path("efbig.h5"), err);
    int rc = system(cmd);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 4, "kvq capture: status %d (exit %d)", rc, WEXITSTATUS(rc));
    size_t n;
    char *msg = kvq_test_slurp(err, &n);
    ck_assert_msg(strstr(msg, "File too large") || strstr(msg, "errno"), "kvq capture said: %s", msg);
    free(msg);
}
END_TEST

START_TEST(test_windows) {
    uint64_t a[50], b[50];
    ck_assert_int_eq(kvq_capture_windows(1000, 100, 50, 3, a), KVQ_OK);
    ck_assert_int_eq(kvq_capture_windows(1000, 100, 50, 3, b), KVQ_OK);
    ck_assert(memcmp(a, b, sizeof a) == 0);                   /* same seed, same windows */
    kvq_rng r;                                                /* the documented draw */
    kvq_rng_seed(&r, 3);
    for (int i = 0; i < 50; i++) ck_assert_uint_eq(a[i], kvq_rng_below(&r, 901));
    ck_assert_int_eq(kvq_capture_windows(1000, 100, 50, 4, b), KVQ_OK);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    ck_assert_int_eq(kvq_capture_windows(100, 100, 3, 9, b), KVQ_OK);   /* one possible window */
    ck_assert(b[0] == 0 && b[1] == 0 && b[2] == 0);
    ck_assert_int_eq(kvq_capture_windows(99, 100, 1, 0, b), KVQ_ERR_DATA);
}
END_TEST

/* The capture loop on stories260K: what lands in the file is the engine's K, V and squared
 * gradients for the documented windows of the tokenized text, at the right rows. */
START_TEST(test_capture_run_stories260K) {
    const char *mp = kvq_test_shared("models/stories260K/stories260K.bin");
    KVQ_SKIP_IF_MISSING(mp, "models/stories260K/stories260K.bin");
    char model_path[1024], text_path[1024], why[1024] = "";
    snprintf(model_path, sizeof model_path, "%s", mp);
    const char *tp = kvq_test_shared("data/text/tinystories_val_subset.txt");
    KVQ_SKIP_IF_MISSING(tp, "data/text/tinystories_val_subset.txt");
    snprintf(text_path, sizeof text_path, "%s", tp);
    kvq_capture_opts o;
    kvq_capture_opts_init(&o);
    o.model_path = model_path;
    o.text_path = text_path;
    o.out_path = tmp_path("run.h5");
    o.samples = 3;
    o.seq_len = 32;
    o.seed = 5;
    o.n_layers = 2; o.layers[0] = 1; o.layers[1] = 4;
    o.threads = 1;
    kvq_capture_result res;
    ck_assert_msg(kvq_capture_run(&o, &res, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(res.samples_total, 3);
    ck_assert(isfinite(res.mean_loss) && res.mean_loss > 0);
    kvq_capture_reader *r = NULL;
    ck_assert_msg(kvq_capture_open(o.out_path, &r, why, sizeof why) == KVQ_OK, "%s", why);
    const kvq_capture_meta *m = kvq_capture_reader_meta(r);
    kvq_model model;
    ck_assert_msg(kvq_model_load(model_path, &model, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(m->model.fingerprint, kvq_model_fingerprint(&model));
    ck_assert_int_eq(m->n_captured, 2);
    ck_assert_uint_eq(m->text_tokens, res.text_tokens);
    ck_assert_str_eq(m->text_sha256, res.text_sha256);
    uint64_t starts[3];
    ck_assert_int_eq(kvq_capture_windows(res.text_tokens, 32, 3, 5, starts), KVQ_OK);
    /* rerun sample 2 through the engine: tokens from the text, as the capture must have */
    kvq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    FILE *f = fopen(text_path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len);
    ck_assert_int_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    ck_assert_int_eq(kvq_tokenizer_load_for_model(model_path, &tok, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_tokenize(tok, text, (size_t)len, kvq_tokenizer_adds_bos(tok), &ids, &n_ids, why, sizeof why), KVQ_OK);
    ck_assert_uint_eq(n_ids, res.text_tokens);
    kvq_engine *e = NULL;
    kvq_engine_opts eo = {1, 32, 1};
    ck_assert_int_eq(kvq_engine_init(&e, &model, &eo, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_engine_forward(e, ids + starts[2], 1, NULL, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_engine_backward(e, why, sizeof why), KVQ_OK);
    size_t kv = kvq_capture_kv_dim(r);
    float *got = malloc(32 * kv * sizeof(float)), *want = malloc(32 * kv * sizeof(float));
    for (int li = 0; li < 2; li++) {
        int layer = (int)m->layers[li];
        const float *src[4] = {kvq_engine_k_pre_rope(e, layer), kvq_engine_v(e, layer),
                               kvq_engine_k_pre_rope_grad(e, layer), kvq_engine_v_grad(e, layer)};
        for (int t = 0; t < 4; t++) {
            ck_assert_int_eq(kvq_capture_read_rows(r, (uint32_t)layer, (kvq_capture_tensor)t, 64, 32, got, why, sizeof why), KVQ_OK);
            for (size_t i = 0; i < 32 * kv; i++) want[i] = t < 2 ? src[t][i] : src[t][i] * src[t][i];
            /* same engine, same thread count, same tokens: the capture stores exactly these */
            ck_assert_msg(memcmp(got, want, 32 * kv * sizeof(float)) == 0, "layer %d %s", layer,
                          kvq_capture_tensor_name((kvq_capture_tensor)t));
        }
    }
    ck_assert_uint_eq(kvq_capture_samples(r)[2].window_start, starts[2]);
    free(got); free(want); free(text); free(ids);
    kvq_engine_free(e);
    kvq_tokenizer_free(tok);
    kvq_capture_reader_free(r);
    /* bad inputs: existing output without --resume; resume with other settings; text shorter
     * than a window; unwritable output */
    ck_assert_int_eq(kvq_capture_run(&o, &res, why, sizeof why), KVQ_ERR_IO);
    o.resume = 1;
    ck_assert_msg(kvq_capture_run(&o, &res, why, sizeof why) == KVQ_OK, "%s", why);   /* nothing left to do */
    ck_assert_int_eq(res.samples_resumed, 3);
    o.seq_len = 16;
    ck_assert_int_eq(kvq_capture_run(&o, &res, why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "seq_len"), "%s", why);
    o.seq_len = 32;
    o.resume = 0;
    const char *small = tmp_path("small.txt");
    f = fopen(small, "w");
    fputs("Once upon a time.", f);
    fclose(f);
    o.text_path = small;
    o.out_path = tmp_path("small.h5");
    ck_assert_int_eq(kvq_capture_run(&o, &res, why, sizeof why), KVQ_ERR_DATA);
    ck_assert_msg(strstr(why, "fewer than one window"), "%s", why);
    struct stat sb;
    ck_assert_int_ne(stat(o.out_path, &sb), 0);
    o.text_path = text_path;
    o.out_path = "/nonexistent-dir/out.h5";
    ck_assert_int_eq(kvq_capture_run(&o, &res, why, sizeof why), KVQ_ERR_IO);
    kvq_model_free(&model);
}
END_TEST

static Suite *capture_suite(void) {
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_sha256_file_matches_sha256sums);
    tcase_add_test(tc, test_rng_reference_values);
    tcase_add_test(tc, test_rng_below_uniform);
    tcase_add_test(tc, test_roundtrip_f32);
    tcase_add_test(tc, test_roundtrip_f16_gzip);
    tcase_add_test(tc, test_roundtrip_bf16_nofisher);
    tcase_add_test(tc, test_half_types_hdf5_conversion);
    tcase_add_test(tc, test_writer_errors);
    tcase_add_test(tc, test_reader_rejects);
    tcase_add_test(tc, test_checksum_detects_corruption);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_resume_finished_file);
    tcase_add_test(tc, test_write_failure_keeps_prefix);
    tcase_add_test(tc, test_cli_write_failure_exit_code);
    tcase_add_test(tc, test_windows);
    tcase_add_test(tc, test_capture_run_stories260K);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(capture_suite)
