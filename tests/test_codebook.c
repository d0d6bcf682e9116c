/* test_codebook.c — the codebook struct and its file (docs/format.md): randomised round trips
 * compared field by field, deterministic bytes, semantic validation, the model-identity check, the
 * atomic writer, and the golden files of tests/golden/ (each corrupt one rejected with its status,
 * the valid one byte-identical to what tests/golden/make_golden.c generates, every truncation
 * rejected, `kvq inspect` exit codes). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>

#include "json.h"
#include "kvq_codebook.h"
#include "kvq_half.h"
#include "kvq_test.h"

#define KVQ_GOLDEN_NO_MAIN
#include "golden/make_golden.c"   /* golden_codebook, golden_cases, golden_variant */

/* ---- a random valid codebook ---- */
static uint64_t rng_state;
static uint32_t rnd(void) {   /* xorshift64* */
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}
static float rnd_unit(void) { return (float)rnd() / 4294967296.0f; }  /* [0, 1) */
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void fill_tensor(kvq_tensor_codebook *t, uint32_t kv_dim, int qnorm) {
    size_t n = (size_t)1 << t->bits;
    for (size_t i = 0; i < n; i++) t->centroids[i] = 2 * rnd_unit() - 1;
    qsort(t->centroids, n, sizeof(float), cmp_float);
    if (qnorm) {
        t->qnorm = 1;
        t->qnorm_scale = 0.5f + rnd_unit();
        t->qnorm_offset = 0.1f * (rnd_unit() - 0.5f);
    }
    if (t->zero_point)
        for (uint32_t c = 0; c < kv_dim; c++) {
            t->zero_point[c] = 4 * (rnd_unit() - 0.5f);
            t->half_range[c] = 1e-3f + 3 * rnd_unit();
        }
    t->outlier_fraction = (rnd() % 3) * 0.005f;
    t->outlier_cap = rnd() % 5;
    t->residual = (kvq_outlier_residual)(rnd() % 2);
}

/* n_layers layers, kv_dim = n_kv_heads * head_dim, bits per layer varying around `bits`. */
static void make_random(kvq_codebook *cb, uint64_t seed, uint32_t bits, int qnorm, int diag) {
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    memset(cb, 0, sizeof *cb);
    kvq_model_identity *m = &cb->model;
    uint32_t n_layers = 1 + rnd() % 5;
    m->n_kv_heads = 1 + rnd() % 3;
    m->n_heads = m->n_kv_heads * (1 + rnd() % 3);
    m->head_dim = 2 * (1 + rnd() % 8);
    ck_assert_int_eq(kvq_codebook_alloc(cb, n_layers, kvq_kv_dim(m), bits, bits, diag), KVQ_OK);
    snprintf(m->architecture, sizeof m->architecture, "llama-%u", rnd() % 100);
    m->hidden = m->n_heads * m->head_dim;
    m->vocab = 100 + rnd() % 50000;
    m->rope_theta = 10000.0f + (float)(rnd() % 1000);
    m->rope_scaling = (kvq_rope_scaling)(rnd() % 3);
    m->rope_scaling_factor = 1.0f + (float)(rnd() % 8);
    m->rope_low_freq_factor = 1.0f;
    m->rope_high_freq_factor = 4.0f;
    m->rope_original_max_pos = 8192;
    m->rope_convention = (kvq_rope_convention)(rnd() % 2);
    m->fingerprint = (uint64_t)rnd() << 32 | rnd();
    cb->n_sink = rnd() % 4;
    kvq_provenance *p = &cb->provenance;
    snprintf(p->tool_version, sizeof p->tool_version, "0.1.%u", rnd() % 10);
    snprintf(p->calib_text, sizeof p->calib_text, "../shared/data/text/wiki.valid.raw \xc3\xa9 %u", rnd());
    snprintf(p->calib_text_sha256, sizeof p->calib_text_sha256, "%08x%056x", rnd(), 0);
    p->samples = rnd() % 64, p->seq_len = 512, p->seed = (uint64_t)rnd() << 20;
    p->weighting = (kvq_fisher_weighting)(rnd() % 3), p->solver = (kvq_kmeans_solver)(rnd() % 2);
    p->kmeans_iters = 50, p->kmeans_seed = rnd(), p->histogram_bins = rnd() % 2 ? 4096 : 0;
    uint32_t kv_dim = kvq_kv_dim(m);
    for (uint32_t l = 0; l < n_layers; l++) {
        /* per-layer bit widths and value axes differ: the format stores them per layer */
        uint32_t vb = bits + (l % 2), vaxis = rnd() % 3;
        ck_assert_int_eq(kvq_tensor_codebook_init(&cb->layers[l].v, vb, (kvq_norm_axis)vaxis, kv_dim), KVQ_OK);
        fill_tensor(&cb->layers[l].k, kv_dim, qnorm);
        fill_tensor(&cb->layers[l].v, kv_dim, qnorm && l % 2);
        if (diag) {
            cb->diag.k_objective[l] = rnd_unit() * 100, cb->diag.v_objective[l] = rnd_unit();
            cb->diag.k_outlier_rate[l] = rnd_unit() * 0.02, cb->diag.v_outlier_rate[l] = 0.01;
        }
    }
    char why[256];
    ck_assert_msg(kvq_codebook_validate(cb, why, sizeof why) == KVQ_OK, "random codebook: %s", why);
}

/* ---- field-by-field comparison (exact: the file stores the bits) ---- */
static int same_bits(float a, float b) { return kvq_f32_bits(a) == kvq_f32_bits(b); }
static void same_floats(const float *a, const float *b, size_t n, const char *what) {
    ck_assert_msg((a == NULL) == (b == NULL), "%s: presence differs", what);
    if (a) ck_assert_msg(!memcmp(a, b, n * sizeof *a), "%s differs", what);
}
static void same_doubles(const double *a, const double *b, size_t n, const char *what) {
    ck_assert_msg((a == NULL) == (b == NULL), "%s: presence differs", what);
    if (a) ck_assert_msg(!memcmp(a, b, n * sizeof *a), "%s differs", what);
}
static void same_tensor(const kvq_tensor_codebook *a, const kvq_tensor_codebook *b, uint32_t kv_dim) {
    ck_assert_uint_eq(a->bits, b->bits);
    same_floats(a->centroids, b->centroids, (size_t)1 << a->bits, "centroids");
    ck_assert_int_eq(a->qnorm, b->qnorm);
    ck_assert(same_bits(a->qnorm_scale, b->qnorm_scale));
    ck_assert(same_bits(a->qnorm_offset, b->qnorm_offset));
    ck_assert_int_eq(a->axis, b->axis);
    same_floats(a->zero_point, b->zero_point, kv_dim, "zero_point");
    same_floats(a->half_range, b->half_range, kv_dim, "half_range");
    ck_assert(same_bits(a->outlier_fraction, b->outlier_fraction));
    ck_assert_uint_eq(a->outlier_cap, b->outlier_cap);
    ck_assert_int_eq(a->residual, b->residual);
}
static void same_codebook(const kvq_codebook *a, const kvq_codebook *b) {
    char why[256];
    ck_assert_msg(kvq_codebook_check_model(a, &b->model, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(a->n_sink, b->n_sink);
    const kvq_provenance *p = &a->provenance, *q = &b->provenance;
    ck_assert_str_eq(p->tool_version, q->tool_version);
    ck_assert_str_eq(p->calib_text, q->calib_text);
    ck_assert_str_eq(p->calib_text_sha256, q->calib_text_sha256);
    ck_assert(p->samples == q->samples && p->seq_len == q->seq_len && p->seed == q->seed);
    ck_assert(p->weighting == q->weighting && p->solver == q->solver);
    ck_assert(p->kmeans_iters == q->kmeans_iters && p->kmeans_seed == q->kmeans_seed);
    ck_assert_uint_eq(p->histogram_bins, q->histogram_bins);
    uint32_t n = a->model.n_layers, kv_dim = kvq_kv_dim(&a->model);
    for (uint32_t l = 0; l < n; l++) {
        same_tensor(&a->layers[l].k, &b->layers[l].k, kv_dim);
        same_tensor(&a->layers[l].v, &b->layers[l].v, kv_dim);
    }
    same_doubles(a->diag.k_objective, b->diag.k_objective, n, "diag.k_objective");
    same_doubles(a->diag.v_objective, b->diag.v_objective, n, "diag.v_objective");
    same_doubles(a->diag.k_outlier_rate, b->diag.k_outlier_rate, n, "diag.k_outlier_rate");
    same_doubles(a->diag.v_outlier_rate, b->diag.v_outlier_rate, n, "diag.v_outlier_rate");
}

/* ---- round trip and determinism ---- */
START_TEST(test_round_trip) {
    static const uint32_t bits[] = {2, 3, 4};
    for (uint64_t seed = 1; seed <= 6; seed++)
        for (int b = 0; b < 3; b++)
            for (int variant = 0; variant < 4; variant++) {
                kvq_codebook cb, back;
                make_random(&cb, seed * 10 + (uint64_t)b, bits[b], variant & 1, variant >> 1);
                void *buf;
                size_t len;
                ck_assert_int_eq(kvq_codebook_serialize(&cb, &buf, &len), KVQ_OK);
                ck_assert_uint_eq(len % 64, 0);
                char why[256];
                kvq_status st = kvq_codebook_parse(buf, len, &back, why, sizeof why);
                ck_assert_msg(st == KVQ_OK, "seed %llu bits %u: %s: %s", (unsigned long long)seed,
                              bits[b], kvq_status_name(st), why);
                same_codebook(&cb, &back);
                /* deterministic: serializing the parsed copy gives the same bytes */
                void *buf2;
                size_t len2;
                ck_assert_int_eq(kvq_codebook_serialize(&back, &buf2, &len2), KVQ_OK);
                ck_assert(len2 == len && !memcmp(buf, buf2, len));
                free(buf);
                free(buf2);
                kvq_codebook_free(&cb);
                kvq_codebook_free(&back);
            }
}
END_TEST

START_TEST(test_file_round_trip) {
    kvq_codebook cb, back;
    make_random(&cb, 99, 3, 1, 1);
    char path[600], why[256];
    snprintf(path, sizeof path, "%s/rt.kvqc", kvq_test_tmpdir());
    ck_assert_int_eq(kvq_codebook_write(path, &cb), KVQ_OK);
    kvq_status st = kvq_codebook_read(path, &back, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "%s", why);
    same_codebook(&cb, &back);
    kvq_codebook_free(&cb);
    kvq_codebook_free(&back);
    kvq_codebook_free(NULL);
    kvq_codebook_free(&back);   /* zeroed struct */
}
END_TEST

/* Size target of the issue: a 32-layer 7B codebook (kv_dim 4096, 4-bit) is about 1 MiB. The
 * oracle is the arithmetic: 32 x 2 x 4096 x 4 bytes of key scales = 1 MiB, plus small change. */
START_TEST(test_size_7b) {
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    cb.model.n_kv_heads = 32, cb.model.n_heads = 32, cb.model.head_dim = 128;
    ck_assert_int_eq(kvq_codebook_alloc(&cb, 32, 4096, 4, 4, 1), KVQ_OK);
    snprintf(cb.model.architecture, sizeof cb.model.architecture, "llama");
    cb.model.rope_theta = 10000, cb.model.rope_scaling_factor = 1;
    for (uint32_t l = 0; l < 32; l++) {
        for (int i = 0; i < 16; i++) cb.layers[l].k.centroids[i] = cb.layers[l].v.centroids[i] = i / 8.0f - 1;
        for (int c = 0; c < 4096; c++) cb.layers[l].k.half_range[c] = 1;
    }
    void *buf;
    size_t len;
    ck_assert_int_eq(kvq_codebook_serialize(&cb, &buf, &len), KVQ_OK);
    ck_assert_msg(len > 1048576 && len < 1048576 + 32768, "7B codebook is %zu bytes", len);
    free(buf);
    kvq_codebook_free(&cb);
}
END_TEST

/* ---- validation and identity ---- */
START_TEST(test_validate_rejects) {
    kvq_codebook cb;
    char why[256];
    make_random(&cb, 5, 2, 1, 1);
    float save = cb.layers[0].k.centroids[1];
    cb.layers[0].k.centroids[1] = NAN;
    ck_assert_int_eq(kvq_codebook_validate(&cb, why, sizeof why), KVQ_ERR_NONFINITE);
    ck_assert_msg(strstr(why, "layer 0 k") != NULL, "why = %s", why);
    cb.layers[0].k.centroids[1] = cb.layers[0].k.centroids[0] - 1;   /* unsorted */
    ck_assert_int_eq(kvq_codebook_validate(&cb, why, sizeof why), KVQ_ERR_FORMAT);
    cb.layers[0].k.centroids[1] = save;
    cb.layers[0].k.half_range[0] = 0;
    ck_assert_int_eq(kvq_codebook_validate(&cb, why, sizeof why), KVQ_ERR_FORMAT);
    cb.layers[0].k.half_range[0] = 1;
    snprintf(cb.provenance.calib_text, sizeof cb.provenance.calib_text, "latin1 \xe9.txt");
    ck_assert_int_eq(kvq_codebook_validate(&cb, why, sizeof why), KVQ_ERR_FORMAT);  /* not UTF-8 */
    snprintf(cb.provenance.calib_text, sizeof cb.provenance.calib_text, "utf8 \xc3\xa9.txt");
    ck_assert_int_eq(kvq_codebook_validate(&cb, why, sizeof why), KVQ_OK);
    cb.model.head_dim = 3;   /* odd: RoPE pairs impossible */
    ck_assert_int_eq(kvq_codebook_validate(&cb, why, sizeof why), KVQ_ERR_FORMAT);
    void *buf;
    size_t len;
    ck_assert_int_eq(kvq_codebook_serialize(&cb, &buf, &len), KVQ_ERR_FORMAT);  /* writer refuses */
    kvq_codebook_free(&cb);
}
END_TEST

START_TEST(test_check_model) {
    kvq_codebook cb;
    char why[256];
    make_random(&cb, 8, 3, 0, 0);
    kvq_model_identity m = cb.model;
    ck_assert_int_eq(kvq_codebook_check_model(&cb, &m, why, sizeof why), KVQ_OK);
    m.fingerprint ^= 1;
    ck_assert_int_eq(kvq_codebook_check_model(&cb, &m, why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "fingerprint") != NULL, "why = %s", why);
    m = cb.model;
    m.rope_convention = !m.rope_convention;
    ck_assert_int_eq(kvq_codebook_check_model(&cb, &m, why, sizeof why), KVQ_ERR_MISMATCH);
    ck_assert_msg(strstr(why, "rope_convention") != NULL, "why = %s", why);
    kvq_codebook_free(&cb);
}
END_TEST

/* lut: the oracle is the definition in docs/quantization.md (fmaf(c, scale, offset)). */
START_TEST(test_lut) {
    float c[4] = {-1, -0.25f, 0.5f, 1}, lut[4];
    kvq_tensor_codebook t = {.bits = 2, .centroids = c, .qnorm = 0, .qnorm_scale = 1};
    kvq_codebook_lut(&t, lut);
    ck_assert(!memcmp(lut, c, sizeof c));
    t.qnorm = 1, t.qnorm_scale = 0.75f, t.qnorm_offset = 0.125f;
    kvq_codebook_lut(&t, lut);
    ck_assert(lut[0] == -0.625f && lut[1] == -0.0625f && lut[2] == 0.5f && lut[3] == 0.875f);
}
END_TEST

/* ---- atomic writer ---- */
static int temp_files_in(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q '\\.tmp\\.'", dir);
    return system(cmd) == 0;
}

/* Writes `cb` over an existing file made from `old`, expecting failure; checks the old bytes. */
static void expect_write_fails_intact(const char *dir, const char *path, const kvq_codebook *old,
                                      const kvq_codebook *cb, void (*sabotage)(int on)) {
    void *bytes;
    size_t n0, n1;
    ck_assert_int_eq(kvq_codebook_serialize(old, &bytes, &n0), KVQ_OK);
    FILE *f = fopen(path, "wb");   /* not kvq_codebook_write: the sabotage may be in place already */
    ck_assert_msg(f && fwrite(bytes, 1, n0, f) == n0 && fclose(f) == 0, "cannot create %s", path);
    free(bytes);
    char *before = kvq_test_slurp(path, &n0);
    sabotage(1);
    kvq_status st = kvq_codebook_write(path, cb);
    sabotage(0);
    ck_assert_int_eq(st, KVQ_ERR_IO);
    char *after = kvq_test_slurp(path, &n1);
    ck_assert_msg(before && after && n0 == n1 && !memcmp(before, after, n0), "old file changed");
    ck_assert_msg(!temp_files_in(dir), "a temporary file was left in %s", dir);
    free(before);
    free(after);
}

static char g_dir[600];
static void make_dir_readonly(int on) { chmod(g_dir, on ? 0555 : 0755); }
static void limit_file_size(int on) {
    /* EFBIG once a write crosses 4 KiB: a disk that fills up during the write */
    static struct rlimit saved;
    if (on) {
        getrlimit(RLIMIT_FSIZE, &saved);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit r = {4096, saved.rlim_max};
        setrlimit(RLIMIT_FSIZE, &r);
    } else {
        setrlimit(RLIMIT_FSIZE, &saved);
        signal(SIGXFSZ, SIG_DFL);
    }
}

START_TEST(test_atomic_unwritable_dir) {
    if (geteuid() == 0) {
        fprintf(stderr, "SKIP %s: running as root, directory permissions are not enforced\n", __func__);
        return;
    }
    kvq_codebook a, b;
    make_random(&a, 11, 2, 0, 0);
    make_random(&b, 12, 4, 1, 1);
    snprintf(g_dir, sizeof g_dir, "%s/ro", kvq_test_tmpdir());
    mkdir(g_dir, 0755);
    char path[700];
    snprintf(path, sizeof path, "%s/cb.kvqc", g_dir);
    expect_write_fails_intact(g_dir, path, &a, &b, make_dir_readonly);
    kvq_codebook_free(&a);
    kvq_codebook_free(&b);
}
END_TEST

START_TEST(test_atomic_disk_full) {
    kvq_codebook a, b;
    memset(&b, 0, sizeof b);
    make_random(&a, 13, 2, 0, 0);
    /* b: big enough (64 layers x kv_dim 64 x 2 x 4 bytes) to cross the 4 KiB limit */
    b.model = a.model;
    b.model.n_kv_heads = 4, b.model.n_heads = 8, b.model.head_dim = 16;
    ck_assert_int_eq(kvq_codebook_alloc(&b, 64, 64, 2, 2, 0), KVQ_OK);
    for (uint32_t l = 0; l < 64; l++) {
        for (int i = 0; i < 4; i++) b.layers[l].k.centroids[i] = b.layers[l].v.centroids[i] = (float)i;
        for (int c = 0; c < 64; c++) b.layers[l].k.half_range[c] = 1;
    }
    void *buf;
    size_t len;
    ck_assert_int_eq(kvq_codebook_serialize(&a, &buf, &len), KVQ_OK);
    ck_assert_msg(len < 4096, "the old codebook must fit under the limit (%zu bytes)", len);
    free(buf);
    snprintf(g_dir, sizeof g_dir, "%s/full", kvq_test_tmpdir());
    mkdir(g_dir, 0755);
    char path[700];
    snprintf(path, sizeof path, "%s/cb.kvqc", g_dir);
    expect_write_fails_intact(g_dir, path, &a, &b, limit_file_size);
    kvq_codebook_free(&a);
    kvq_codebook_free(&b);
}
END_TEST

static void no_sabotage(int on) { (void)on; }

START_TEST(test_atomic_temp_create_fails) {
    /* works as root too: a 250-byte name is valid, its 261-byte temporary name is not (NAME_MAX) */
    kvq_codebook a, b;
    make_random(&a, 15, 2, 0, 0);
    make_random(&b, 16, 3, 1, 1);
    snprintf(g_dir, sizeof g_dir, "%s/long", kvq_test_tmpdir());
    mkdir(g_dir, 0755);
    char path[1000];
    int n = snprintf(path, sizeof path, "%s/", g_dir);
    memset(path + n, 'a', 250);
    path[n + 250] = 0;
    expect_write_fails_intact(g_dir, path, &a, &b, no_sabotage);
    kvq_codebook_free(&a);
    kvq_codebook_free(&b);
}
END_TEST

START_TEST(test_atomic_rename_fails) {
    /* the target is a non-empty directory: rename() fails after the temp file is complete */
    kvq_codebook a;
    make_random(&a, 14, 3, 0, 0);
    char dir[600], path[700], inner[800];
    snprintf(dir, sizeof dir, "%s/rn", kvq_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/cb.kvqc", dir);
    mkdir(path, 0755);
    snprintf(inner, sizeof inner, "%s/keep", path);
    FILE *f = fopen(inner, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(kvq_codebook_write(path, &a), KVQ_ERR_IO);
    ck_assert_msg(!temp_files_in(dir), "a temporary file was left in %s", dir);
    struct stat st;
    ck_assert(stat(inner, &st) == 0);
    kvq_codebook_free(&a);
}
END_TEST

/* ---- golden files (tests/golden/, made by make_golden.c; run from the repository root) ---- */
static void *golden_valid(size_t *len) {
    kvq_codebook cb;
    golden_codebook(&cb);
    void *buf;
    ck_assert_int_eq(kvq_codebook_serialize(&cb, &buf, len), KVQ_OK);
    kvq_codebook_free(&cb);
    return buf;
}

START_TEST(test_golden_files) {
    size_t vlen;
    unsigned char *valid = golden_valid(&vlen);
    for (int i = 0; i < GOLDEN_N; i++) {
        const golden_case *g = &golden_cases[i];
        char path[512], why[256];
        snprintf(path, sizeof path, "tests/golden/%s", g->file);
        size_t n, gn;
        char *file = kvq_test_slurp(path, &n);
        ck_assert_msg(file != NULL, "%s missing (tests run from the repository root)", path);
        unsigned char *gen = golden_variant(i, valid, vlen, &gn);
        ck_assert_msg(gen && gn == n && !memcmp(gen, file, n),
                      "%s differs from what make_golden.c generates: regenerate it", path);
        kvq_codebook cb;
        kvq_status st = kvq_codebook_parse(file, n, &cb, why, sizeof why);
        ck_assert_msg(st == g->expect, "%s (%s): got %s (%s), expected %s", g->file, g->what,
                      kvq_status_name(st), why, kvq_status_name(g->expect));
        if (st) ck_assert_msg(why[0] != 0, "%s: no message", g->file);
        kvq_codebook_free(&cb);
        /* the same through the file reader */
        ck_assert_int_eq(kvq_codebook_read(path, &cb, why, sizeof why), g->expect);
        if (g->expect == KVQ_OK) {
            kvq_codebook ref;
            golden_codebook(&ref);
            same_codebook(&ref, &cb);
            kvq_codebook_free(&ref);
        }
        kvq_codebook_free(&cb);
        free(file);
        free(gen);
    }
    free(valid);
}
END_TEST

START_TEST(test_every_truncation_and_byte_flip) {
    size_t len;
    unsigned char *valid = golden_valid(&len);
    kvq_codebook cb;
    char why[256];
    for (size_t n = 0; n < len; n++) {
        kvq_status st = kvq_codebook_parse(valid, n, &cb, why, sizeof why);
        ck_assert_msg(st != KVQ_OK, "truncation to %zu bytes accepted", n);
    }
    /* every byte is covered by a CRC, or is a checked zero, or is a CRC: flipping any one bit of
     * any byte must be rejected */
    for (size_t i = 0; i < len; i++) {
        valid[i] ^= 0x10;
        kvq_status st = kvq_codebook_parse(valid, len, &cb, why, sizeof why);
        ck_assert_msg(st != KVQ_OK, "bit flip at byte %zu accepted", i);
        valid[i] ^= 0x10;
    }
    ck_assert_int_eq(kvq_codebook_parse(valid, len, &cb, why, sizeof why), KVQ_OK);
    kvq_codebook_free(&cb);
    free(valid);
}
END_TEST

/* `kvq inspect` on the golden files: exit 0 on the valid ones, kvq_exit_code(status) (3 = bad
 * input) on the others, and --json output that is one valid JSON document. */
static int run_kvq(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "\"%s\" %s", getenv("KVQ_BIN"), args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_inspect_exit_codes) {
    if (!getenv("KVQ_BIN")) {
        fprintf(stderr, "SKIP %s: KVQ_BIN not set (make test sets it)\n", __func__);
        return;
    }
    for (int i = 0; i < GOLDEN_N; i++) {
        char args[512];
        snprintf(args, sizeof args, "inspect tests/golden/%s >/dev/null 2>&1", golden_cases[i].file);
        int want = golden_cases[i].expect == KVQ_OK ? 0 : 3;
        ck_assert_msg(run_kvq(args) == want, "kvq %s: expected exit %d", args, want);
    }
    ck_assert_int_eq(run_kvq("inspect tests/golden/no_such_file.kvqc 2>/dev/null"), 4);
    ck_assert_int_eq(run_kvq("inspect 2>/dev/null"), 2);
    ck_assert_int_eq(run_kvq("inspect --help >/dev/null"), 0);
    char out[600], args[1024], why[256];
    snprintf(out, sizeof out, "%s/inspect.json", kvq_test_tmpdir());
    snprintf(args, sizeof args, "inspect --json tests/golden/valid.kvqc > %s", out);
    ck_assert_int_eq(run_kvq(args), 0);
    size_t n;
    char *text = kvq_test_slurp(out, &n);
    kvq_json *j;
    ck_assert_msg(kvq_json_parse(text, n, &j, why, sizeof why) == KVQ_OK, "inspect --json: %s", why);
    long long n_layers;
    ck_assert(kvq_json_get_int(kvq_json_get(j, "model"), "n_layers", &n_layers) && n_layers == 2);
    const kvq_json *layers = kvq_json_get(j, "layers");
    ck_assert(layers && layers->type == KVQ_JSON_ARRAY && layers->len == 2);
    kvq_json_free(j);
    free(text);
}
END_TEST

static Suite *codebook_suite(void) {
    Suite *s = suite_create("codebook");
    TCase *tc = tcase_create("struct");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_size_7b);
    tcase_add_test(tc, test_validate_rejects);
    tcase_add_test(tc, test_check_model);
    tcase_add_test(tc, test_lut);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("writer");
    tcase_add_test(tw, test_atomic_unwritable_dir);
    tcase_add_test(tw, test_atomic_disk_full);
    tcase_add_test(tw, test_atomic_rename_fails);
    tcase_add_test(tw, test_atomic_temp_create_fails);
    suite_add_tcase(s, tw);
    TCase *tg = tcase_create("golden");
    tcase_add_test(tg, test_golden_files);
    tcase_add_test(tg, test_every_truncation_and_byte_flip);
    tcase_add_test(tg, test_inspect_exit_codes);
    suite_add_tcase(s, tg);
    return s;
}

KVQ_TEST_MAIN(codebook_suite)
