/* make_golden.c — generates the golden codebook files of tests/golden/: one small valid codebook
 * (2 layers, kv_dim 8, keys 2-bit, values 3-bit, Q-Norm on layer 1, diagnostics) and corrupt
 * variants of it, each made by patching the valid bytes and meant to be rejected with one specific
 * status. Not a test by itself: tests/test_codebook.c includes this file (with
 * KVQ_GOLDEN_NO_MAIN) to check that the committed files are exactly what it generates.
 * Regenerate (see tests/golden/README.md):
 *   cc -std=c11 -D_GNU_SOURCE -Iformat tests/golden/make_golden.c build/libkvq.a -lm \
 *      -o build/make_golden && build/make_golden tests/golden */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "kvq_codebook.h"

/* The valid codebook. Every number is a short binary fraction, exact in fp32. */
static void golden_codebook(kvq_codebook *cb) {
    memset(cb, 0, sizeof *cb);
    kvq_model_identity *m = &cb->model;
    m->n_heads = 4, m->n_kv_heads = 2, m->head_dim = 4, m->hidden = 16, m->vocab = 512;
    if (kvq_codebook_alloc(cb, 2, 8, 2, 3, 1) != KVQ_OK) return;
    snprintf(m->architecture, sizeof m->architecture, "llama");
    m->rope_theta = 10000.0f, m->rope_scaling = KVQ_ROPE_SCALING_NONE, m->rope_scaling_factor = 1.0f;
    m->rope_convention = KVQ_ROPE_ROTATE_HALF;
    m->fingerprint = 0x0123456789ABCDEFull;
    cb->n_sink = 1;
    kvq_provenance *p = &cb->provenance;
    snprintf(p->tool_version, sizeof p->tool_version, "golden-1.0");
    snprintf(p->calib_text, sizeof p->calib_text, "tests/golden (synthetic)");
    p->samples = 4, p->seq_len = 64, p->seed = 42, p->weighting = KVQ_WEIGHT_FISHER;
    p->solver = KVQ_SOLVER_LLOYD, p->kmeans_iters = 50, p->kmeans_seed = 7;
    static const float k2[4] = {-0.875f, -0.25f, 0.25f, 0.875f};
    static const float v3[8] = {-1.0f, -0.625f, -0.375f, -0.125f, 0.125f, 0.375f, 0.625f, 1.0f};
    for (uint32_t l = 0; l < 2; l++) {
        kvq_tensor_codebook *k = &cb->layers[l].k, *v = &cb->layers[l].v;
        memcpy(k->centroids, k2, sizeof k2);
        memcpy(v->centroids, v3, sizeof v3);
        for (int c = 0; c < 8; c++) {
            k->zero_point[c] = 0.125f * (float)(c - 4) + (float)l;
            k->half_range[c] = 0.5f + 0.25f * (float)c;
        }
        k->outlier_fraction = v->outlier_fraction = 0.0078125f;   /* 2^-7 */
        k->outlier_cap = 1;
        cb->diag.k_objective[l] = 0.5 + l, cb->diag.v_objective[l] = 0.25 + l;
        cb->diag.k_outlier_rate[l] = 0.0078125, cb->diag.v_outlier_rate[l] = 0.00390625;
    }
    cb->layers[1].k.qnorm = 1, cb->layers[1].k.qnorm_scale = 1.25f, cb->layers[1].k.qnorm_offset = -0.0625f;
    cb->layers[1].v.axis = KVQ_NORM_PER_TOKEN;   /* layer 0 values keep PER_TOKEN too */
}

static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Recompute the header CRC (docs/format.md §2) after a patch of the header. */
static void fix_header_crc(unsigned char *b) {
    uint64_t data_offset = get64(b + 24);
    put32(b + 60, kvq_crc32c(kvq_crc32c(0, b, 60), b + 64, (size_t)data_offset - 64));
}

/* Position of the `offset` field of the 1-D entry `name` in the table (name, dtype, n_dims,
 * dims[1], offset, ...), found by its length-prefixed name. */
static unsigned char *entry_offset_field(unsigned char *b, size_t len, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 64; i + 4 + n <= len; i++)
        if (b[i] == n && !b[i + 1] && !b[i + 2] && !b[i + 3] && !memcmp(b + i + 4, name, n))
            return b + i + 4 + n + 4 + 4 + 8;
    return NULL;
}

typedef struct {
    const char *file;
    kvq_status expect;
    const char *what;
} golden_case;

static const golden_case golden_cases[] = {
    {"valid.kvqc", KVQ_OK, "the valid codebook"},
    {"newer_minor.kvqc", KVQ_OK, "version 1.7: a newer minor version is accepted"},
    {"newer_minor_extra_key.kvqc", KVQ_OK, "version 1.1 with a metadata key 1.0 does not know"},
    {"truncated.kvqc", KVQ_ERR_TRUNCATED, "the last 64 bytes cut off"},
    {"bad_magic.kvqc", KVQ_ERR_MAGIC, "magic byte 1 'K' -> 'k'"},
    {"future_major.kvqc", KVQ_ERR_VERSION, "version 2.0 (header CRC fixed)"},
    {"bad_header_crc.kvqc", KVQ_ERR_CHECKSUM, "architecture 'llama' -> 'llamb', CRC not fixed"},
    {"bad_payload_crc.kvqc", KVQ_ERR_CHECKSUM, "first payload byte flipped"},
    {"misaligned.kvqc", KVQ_ERR_MISALIGNED, "layer.0.k.zero_point offset + 4 (header CRC fixed)"},
    {"overlapping.kvqc", KVQ_ERR_OVERLAP, "layer.0.k.zero_point at the centroids' offset (CRC fixed)"},
    {"out_of_bounds.kvqc", KVQ_ERR_BOUNDS, "file_size and file cut by 64 bytes, last payload past it"},
    {"overflow.kvqc", KVQ_ERR_OVERFLOW, "layer.0.k.zero_point dims[0] = 2^62 (CRC fixed)"},
};
enum { GOLDEN_N = sizeof golden_cases / sizeof golden_cases[0] };

/* Names of the valid file's entries, in table order. */
static const char *const golden_entries[] = {
    "layer.0.k.centroids", "layer.0.k.zero_point", "layer.0.k.half_range", "layer.0.v.centroids",
    "layer.1.k.centroids", "layer.1.k.zero_point", "layer.1.k.half_range", "layer.1.v.centroids",
    "diag.k_objective", "diag.v_objective", "diag.k_outlier_rate", "diag.v_outlier_rate"};

/* Version 1.1 with one more metadata pair (a string, 64 bytes in all) before the others: the
 * header grows by 64 bytes, so every payload moves by 64. */
static unsigned char *with_extra_key(const unsigned char *valid, size_t len, size_t *out_len) {
    static const char key[] = "future.note", val[] = "a key that format 1.0 readers must ignore";
    unsigned char *b = calloc(len + 64, 1);
    if (!b) return NULL;
    unsigned char *q = b + 64;
    put32(q, sizeof key - 1), memcpy(q + 4, key, sizeof key - 1), q += 4 + sizeof key - 1;
    put32(q, 5), put32(q + 4, sizeof val - 1), memcpy(q + 8, val, sizeof val - 1), q += 8 + sizeof val - 1;
    if (q != b + 128) { free(b); return NULL; }
    memcpy(b, valid, 64);
    memcpy(b + 128, valid + 64, len - 64);
    b[10] = 1;                                                         /* minor 1 */
    put32(b + 12, get32(b + 12) + 64);                                /* header_size */
    put64(b + 16, len + 64), put64(b + 24, get64(b + 24) + 64);        /* file_size, data_offset */
    put32(b + 32, get32(b + 32) + 1);                                 /* n_meta */
    for (size_t e = 0; e < sizeof golden_entries / sizeof *golden_entries; e++) {
        unsigned char *f = entry_offset_field(b, len + 64, golden_entries[e]);
        if (!f) { free(b); return NULL; }
        put64(f, get64(f) + 64);
    }
    fix_header_crc(b);
    *out_len = len + 64;
    return b;
}

/* Bytes of golden case i from the valid file (copied, then patched); NULL on failure. */
static unsigned char *golden_variant(int i, const unsigned char *valid, size_t len, size_t *out_len) {
    const char *f = golden_cases[i].file;
    if (!strcmp(f, "newer_minor_extra_key.kvqc")) return with_extra_key(valid, len, out_len);
    unsigned char *b = malloc(len);
    if (!b) return NULL;
    memcpy(b, valid, len);
    *out_len = len;
    unsigned char *zp = entry_offset_field(b, len, "layer.0.k.zero_point");
    unsigned char *ce = entry_offset_field(b, len, "layer.0.k.centroids");
    if (!zp || !ce) { free(b); return NULL; }
    if (!strcmp(f, "newer_minor.kvqc")) b[10] = 7, fix_header_crc(b);
    else if (!strcmp(f, "truncated.kvqc")) *out_len = len - 64;
    else if (!strcmp(f, "bad_magic.kvqc")) b[1] = 'k';
    else if (!strcmp(f, "future_major.kvqc")) b[8] = 2, fix_header_crc(b);
    else if (!strcmp(f, "bad_header_crc.kvqc")) {
        unsigned char *a = memmem(b, len, "llama", 5);
        if (!a) { free(b); return NULL; }
        a[4] = 'b';
    } else if (!strcmp(f, "bad_payload_crc.kvqc")) b[get64(b + 24)] ^= 0x01;
    else if (!strcmp(f, "misaligned.kvqc")) put64(zp, get64(zp) + 4), fix_header_crc(b);
    else if (!strcmp(f, "overlapping.kvqc")) put64(zp, get64(ce)), fix_header_crc(b);
    else if (!strcmp(f, "out_of_bounds.kvqc")) put64(b + 16, len - 64), fix_header_crc(b), *out_len = len - 64;
    else if (!strcmp(f, "overflow.kvqc")) put64(zp - 8, (uint64_t)1 << 62), fix_header_crc(b);
    return b;
}

#ifndef KVQ_GOLDEN_NO_MAIN
int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_golden DIR   (writes the golden .kvqc files into DIR)\n");
        return 2;
    }
    kvq_codebook cb;
    golden_codebook(&cb);
    void *valid;
    size_t len;
    kvq_status st = kvq_codebook_serialize(&cb, &valid, &len);
    kvq_codebook_free(&cb);
    if (st) { fprintf(stderr, "make_golden: %s\n", kvq_status_message(st)); return 1; }
    for (int i = 0; i < GOLDEN_N; i++) {
        size_t n;
        unsigned char *b = golden_variant(i, valid, len, &n);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], golden_cases[i].file);
        FILE *f = b ? fopen(path, "wb") : NULL;
        if (!f || fwrite(b, 1, n, f) != n || fclose(f)) {
            fprintf(stderr, "make_golden: cannot write %s\n", path);
            return 1;
        }
        printf("%-22s %5zu bytes  expect %-18s %s\n", golden_cases[i].file, n,
               kvq_status_name(golden_cases[i].expect), golden_cases[i].what);
        free(b);
    }
    free(valid);
    return 0;
}
#endif
