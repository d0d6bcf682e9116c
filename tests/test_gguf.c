/* test_gguf.c — the GGUF reader (calib/gguf.h): metadata getters and the tensor table on the
 * shared stories260K.gguf and the llama SPM vocabulary file (expected values read independently
 * with the Python `gguf` package 0.19, GGUFReader), and rejection of malformed files built here
 * byte by byte (truncation at every offset, bad counts, bad offsets, overlaps); dequantization
 * of hand-built Q8_0/Q4_0/Q4_1 blocks against values worked out by hand from the block layout, and
 * of every supported block type (Q4_0..Q8_K) against tests/golden/gguf_<type>.bin, random blocks
 * decoded by the Python `gguf` package (tools/gen_gguf_golden.py); K-quant tensors whose bytes do
 * not match their shape are rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_quant.h"
#include "kvq_test.h"

/* ---- a tiny GGUF writer for hand-built files ------------------------------------------- */
typedef struct buf { unsigned char b[4096]; size_t n; } buf;
static void put(buf *b, const void *p, size_t n) { memcpy(b->b + b->n, p, n); b->n += n; }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void put_f32(buf *b, float v) { put(b, &v, 4); }

/* Header + 4 kv (string, u32, f32 array, string array) + 2 F32 tensors (a: 4 at 0, b: 2x2 at
 * off_b), then 12 floats 0..11 of data. */
static void build_small(buf *b, uint64_t off_b) {
    b->n = 0;
    put(b, "GGUF", 4); put_u32(b, 3); put_u64(b, 2); put_u64(b, 4);
    put_str(b, "general.architecture"); put_u32(b, KVQ_GGUF_STRING); put_str(b, "llama");
    put_str(b, "llama.block_count"); put_u32(b, KVQ_GGUF_UINT32); put_u32(b, 7);
    put_str(b, "s"); put_u32(b, KVQ_GGUF_ARRAY); put_u32(b, KVQ_GGUF_FLOAT32); put_u64(b, 2);
    put_f32(b, 0.5f); put_f32(b, -2.0f);
    put_str(b, "t"); put_u32(b, KVQ_GGUF_ARRAY); put_u32(b, KVQ_GGUF_STRING); put_u64(b, 2);
    put_str(b, "ab"); put_str(b, "");
    put_str(b, "a"); put_u32(b, 1); put_u64(b, 4); put_u32(b, KVQ_GGML_F32); put_u64(b, 0);
    put_str(b, "b"); put_u32(b, 2); put_u64(b, 2); put_u64(b, 2); put_u32(b, KVQ_GGML_F32); put_u64(b, off_b);
    while (b->n % 32) b->b[b->n++] = 0;
    for (int i = 0; i < 12; i++) put_f32(b, (float)i);
}

static kvq_status parse(const buf *b, size_t len, kvq_gguf **g, char *why) {
    return kvq_gguf_parse(b->b, len, "mem.gguf", g, why, 256);
}

START_TEST(test_small_roundtrip) {
    buf b;
    build_small(&b, 32);
    kvq_gguf *g;
    char why[256];
    ck_assert_msg(parse(&b, b.n, &g, why) == KVQ_OK, "%s", why);
    uint32_t u;
    const char *s;
    size_t n;
    ck_assert(kvq_gguf_get_u32(g, "llama.block_count", &u) == KVQ_OK && u == 7);
    ck_assert(kvq_gguf_get_str(g, "general.architecture", &s, &n) == KVQ_OK && n == 5 && !memcmp(s, "llama", 5));
    ck_assert_int_eq(kvq_gguf_get_u32(g, "general.architecture", &u), KVQ_ERR_DTYPE);
    ck_assert_int_eq(kvq_gguf_get_u32(g, "absent", &u), KVQ_ERR_MISSING);
    const kvq_gguf_kv *a;
    ck_assert(kvq_gguf_get_array(g, "s", KVQ_GGUF_FLOAT32, &a) == KVQ_OK && a->n == 2);
    ck_assert(kvq_gguf_arr_f32(a, 0) == 0.5f && kvq_gguf_arr_f32(a, 1) == -2.0f);
    ck_assert_int_eq(kvq_gguf_get_array(g, "s", KVQ_GGUF_INT32, &a), KVQ_ERR_DTYPE);
    ck_assert(kvq_gguf_get_array(g, "t", KVQ_GGUF_STRING, &a) == KVQ_OK && a->n == 2);
    kvq_gguf_arr_str(a, 0, &s, &n);
    ck_assert(n == 2 && !memcmp(s, "ab", 2));
    kvq_gguf_arr_str(a, 1, &s, &n);
    ck_assert_uint_eq(n, 0);
    const kvq_gguf_tensor *t = kvq_gguf_find_tensor(g, "b");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->n_dims == 2 && t->ne[0] == 2 && t->ne[1] == 2 && t->n_bytes == 16);
    float v[4];
    memcpy(v, t->data, 16);
    ck_assert(v[0] == 8 && v[3] == 11);
    ck_assert_ptr_null(kvq_gguf_find_tensor(g, "c"));
    kvq_gguf_close(g);
}
END_TEST

/* Every proper prefix of a valid file must be rejected (never read past the buffer: ASan). */
START_TEST(test_truncated_everywhere) {
    buf b;
    build_small(&b, 32);
    char why[256];
    for (size_t len = 0; len < b.n; len++) {
        kvq_gguf *g = (kvq_gguf *)1;
        kvq_status st = parse(&b, len, &g, why);
        ck_assert_msg(st == KVQ_ERR_TRUNCATED || st == KVQ_ERR_BOUNDS || st == KVQ_ERR_OVERFLOW,
                      "prefix %zu: %s (%s)", len, kvq_status_name(st), why);
        ck_assert_ptr_null(g);
        ck_assert_msg(strstr(why, "mem.gguf") != NULL, "message names the file: %s", why);
    }
}
END_TEST

START_TEST(test_bad_headers) {
    buf b;
    char why[256];
    kvq_gguf *g;
    build_small(&b, 32);
    b.b[0] = 'X';
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_MAGIC);
    build_small(&b, 32);
    b.b[4] = 1;
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_VERSION);
    build_small(&b, 32);
    uint64_t huge = UINT64_MAX / 2;
    memcpy(b.b + 16, &huge, 8); /* n_kv */
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_OVERFLOW);
    build_small(&b, 32);
    memcpy(b.b + 8, &huge, 8);  /* n_tensors */
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_OVERFLOW);
}
END_TEST

START_TEST(test_bad_offsets) {
    buf b;
    char why[256];
    kvq_gguf *g;
    build_small(&b, 8);    /* overlaps tensor a (16 bytes at 0); also misaligned */
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_MISALIGNED);
    ck_assert_msg(strstr(why, "'b'") != NULL, "names the tensor: %s", why);
    build_small(&b, 0);    /* same offset as a */
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_OVERLAP);
    build_small(&b, 64);   /* past the end */
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_BOUNDS);
    ck_assert_msg(strstr(why, "'b'") != NULL, "names the tensor: %s", why);
    build_small(&b, UINT64_MAX - 31);  /* aligned, but offset + size wraps */
    ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_BOUNDS);
}
END_TEST

START_TEST(test_stories_gguf) {
    const char *p = kvq_test_shared("models/stories260K/stories260K.gguf");
    KVQ_SKIP_IF_MISSING(p, "models/stories260K/stories260K.gguf");
    kvq_gguf *g;
    char why[256];
    ck_assert_msg(kvq_gguf_open(p, &g, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(g->version, 3);
    ck_assert_uint_eq(g->n_tensors, 48);
    ck_assert_uint_eq(g->n_kv, 19);
    uint32_t u;
    float f;
    ck_assert(kvq_gguf_get_u32(g, "llama.embedding_length", &u) == KVQ_OK && u == 64);
    ck_assert(kvq_gguf_get_u32(g, "llama.attention.head_count_kv", &u) == KVQ_OK && u == 4);
    ck_assert(kvq_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &u) == KVQ_OK && u == 4294967295u);
    int32_t i;
    ck_assert_int_eq(kvq_gguf_get_i32(g, "tokenizer.ggml.padding_token_id", &i), KVQ_ERR_DTYPE);
    ck_assert(kvq_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f) == KVQ_OK && f == 1e-5f);
    const kvq_gguf_kv *a;
    const char *s;
    size_t n;
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.tokens", KVQ_GGUF_STRING, &a) == KVQ_OK && a->n == 512);
    kvq_gguf_arr_str(a, 0, &s, &n);
    ck_assert(n == 5 && !memcmp(s, "<unk>", 5));
    kvq_gguf_arr_str(a, 511, &s, &n);
    ck_assert(n == 3 && !memcmp(s, "\xE2\x80\x8A", 3));  /* U+200A */
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.scores", KVQ_GGUF_FLOAT32, &a) == KVQ_OK);
    ck_assert(kvq_gguf_arr_f32(a, 511) == -252.0f);
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.token_type", KVQ_GGUF_INT32, &a) == KVQ_OK);
    ck_assert(kvq_gguf_arr_i32(a, 0) == 2 && kvq_gguf_arr_i32(a, 3) == 6 && kvq_gguf_arr_i32(a, 511) == 1);
    const kvq_gguf_tensor *t = kvq_gguf_find_tensor(g, "token_embd.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->type == KVQ_GGML_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512);
    ck_assert_uint_eq(g->data_offset + t->offset, 14176);
    float v[3];
    memcpy(v, t->data, sizeof v);
    ck_assert(v[0] == -0.29474878f && v[1] == 0.5618956f && v[2] == 0.17542253f);
    kvq_gguf_close(g);
}
END_TEST

START_TEST(test_vocab_gguf) {
    const char *p = kvq_test_shared("models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    KVQ_SKIP_IF_MISSING(p, "models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    kvq_gguf *g;
    char why[256];
    ck_assert_msg(kvq_gguf_open(p, &g, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(g->n_tensors, 0);
    const kvq_gguf_kv *a;
    const char *s;
    size_t n;
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.tokens", KVQ_GGUF_STRING, &a) == KVQ_OK && a->n == 32000);
    kvq_gguf_arr_str(a, 31999, &s, &n);
    ck_assert(n == 3 && !memcmp(s, "\xE7\xBB\x99", 3));  /* U+7ED9 */
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.scores", KVQ_GGUF_FLOAT32, &a) == KVQ_OK);
    ck_assert(kvq_gguf_arr_f32(a, 31999) == -31740.0f);
    int b;
    ck_assert(kvq_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == KVQ_OK && b == 1);
    ck_assert(kvq_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == KVQ_OK && b == 0);
    ck_assert(kvq_gguf_get_str(g, "tokenizer.ggml.pre", &s, &n) == KVQ_OK && n == 7 && !memcmp(s, "default", 7));
    kvq_gguf_close(g);
}
END_TEST

START_TEST(test_open_missing) {
    kvq_gguf *g;
    char why[256];
    ck_assert_int_eq(kvq_gguf_open("/nonexistent/x.gguf", &g, why, sizeof why), KVQ_ERR_IO);
    ck_assert_ptr_null(g);
    ck_assert(strstr(why, "/nonexistent/x.gguf") != NULL);
    kvq_gguf_close(NULL);
}
END_TEST


/* Scales are exact fp16 values (0x3800 = 0.5, 0x4000 = 2, 0x3400 = 0.25, 0xBC00 = -1), so every
 * expected value below is exact and compared with ==. */
START_TEST(test_q8_0_block) {
    unsigned char b[2 * 34];
    b[0] = 0x00; b[1] = 0x38;                          /* d = 0.5 */
    for (int i = 0; i < 32; i++) b[2 + i] = (unsigned char)(int8_t)(i * 8 - 128);  /* q = -128, -120, ... 120 */
    b[34] = 0x00; b[35] = 0x40;                        /* d = 2 */
    for (int i = 0; i < 32; i++) b[36 + i] = (unsigned char)(int8_t)(i - 16);
    float x[64];
    ck_assert_int_eq(kvq_ggml_to_f32(KVQ_GGML_Q8_0, b, 64, x), KVQ_OK);
    ck_assert(x[0] == -64.0f && x[1] == -60.0f && x[31] == 60.0f);
    ck_assert(x[32] == -32.0f && x[48] == 0.0f && x[63] == 30.0f);
}
END_TEST

START_TEST(test_q4_0_block) {
    unsigned char b[18];
    b[0] = 0x00; b[1] = 0x40;                          /* d = 2 */
    for (int i = 0; i < 16; i++) b[2 + i] = (unsigned char)(i | ((15 - i) << 4));
    float x[32];
    ck_assert_int_eq(kvq_ggml_to_f32(KVQ_GGML_Q4_0, b, 32, x), KVQ_OK);
    for (int i = 0; i < 16; i++) {
        ck_assert_msg(x[i] == (float)((i - 8) * 2), "low nibble %d: %g", i, x[i]);             /* elements 0..15 */
        ck_assert_msg(x[16 + i] == (float)((15 - i - 8) * 2), "high nibble %d: %g", i, x[16 + i]); /* 16..31 */
    }
}
END_TEST

START_TEST(test_q4_1_block) {
    unsigned char b[20];
    b[0] = 0x00; b[1] = 0x34;                          /* d = 0.25 */
    b[2] = 0x00; b[3] = 0xBC;                          /* m = -1 */
    for (int i = 0; i < 16; i++) b[4 + i] = (unsigned char)((i & 15) | (((i * 7) & 15) << 4));
    float x[32];
    ck_assert_int_eq(kvq_ggml_to_f32(KVQ_GGML_Q4_1, b, 32, x), KVQ_OK);
    ck_assert(x[0] == -1.0f && x[1] == -0.75f && x[15] == 2.75f);   /* q*0.25 - 1 */
    ck_assert(x[16] == -1.0f && x[17] == 0.75f && x[31] == (float)((15 * 7) & 15) * 0.25f - 1.0f);
}
END_TEST

START_TEST(test_half_payloads_and_errors) {
    const unsigned char f16[4] = {0x00, 0x3C, 0x00, 0xC0};   /* 1, -2 */
    const unsigned char bf16[4] = {0x80, 0x3F, 0x40, 0xC0};  /* 1, -3 */
    float x[32];
    ck_assert(kvq_ggml_to_f32(KVQ_GGML_F16, f16, 2, x) == KVQ_OK && x[0] == 1.0f && x[1] == -2.0f);
    ck_assert(kvq_ggml_to_f32(KVQ_GGML_BF16, bf16, 2, x) == KVQ_OK && x[0] == 1.0f && x[1] == -3.0f);
    unsigned char q[34] = {0};
    ck_assert_int_eq(kvq_ggml_to_f32(KVQ_GGML_Q8_0, q, 16, x), KVQ_ERR_SHAPE);
    ck_assert_int_eq(kvq_ggml_to_f32(9 /* Q8_1 */, q, 32, x), KVQ_ERR_DTYPE);
    ck_assert_int_eq(kvq_ggml_to_f32(16 /* IQ2_XXS */, q, 32, x), KVQ_ERR_DTYPE);
    ck_assert(!kvq_ggml_can_convert(9) && !kvq_ggml_can_convert(16) && kvq_ggml_can_convert(KVQ_GGML_Q4_1));
    ck_assert_str_eq(kvq_ggml_type_name(KVQ_GGML_Q4_1), "Q4_1");
    ck_assert_str_eq(kvq_ggml_type_name(999), "unknown");
    ck_assert_str_eq(kvq_ggml_type_name(23), "IQ4_XS");         /* named in refusals, not decoded */
    ck_assert(strstr(kvq_ggml_supported_types(), "Q6_K") != NULL);
}
END_TEST

/* ---- every block type against gguf-py (tests/golden/gguf_<type>.bin) --------------------- */
static const struct { uint32_t type; const char *file; } golden_types[] = {
    {KVQ_GGML_Q8_0, "gguf_q8_0.bin"}, {KVQ_GGML_Q4_0, "gguf_q4_0.bin"}, {KVQ_GGML_Q4_1, "gguf_q4_1.bin"},
    {KVQ_GGML_Q5_0, "gguf_q5_0.bin"}, {KVQ_GGML_Q5_1, "gguf_q5_1.bin"}, {KVQ_GGML_Q2_K, "gguf_q2_k.bin"},
    {KVQ_GGML_Q3_K, "gguf_q3_k.bin"}, {KVQ_GGML_Q4_K, "gguf_q4_k.bin"}, {KVQ_GGML_Q5_K, "gguf_q5_k.bin"},
    {KVQ_GGML_Q6_K, "gguf_q6_k.bin"}, {KVQ_GGML_Q8_K, "gguf_q8_k.bin"},
};

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", path);
    unsigned char *b = malloc(1 << 16);
    ck_assert_ptr_nonnull(b);
    *len = fread(b, 1, 1 << 16, f);
    ck_assert_msg(*len < (1 << 16) && !ferror(f), "%s: read error or larger than 64 KB", path);
    fclose(f);
    return b;
}

/* Bit-for-bit: gguf-py computes (d * scale) * code - (dmin * min) in float32 with one rounding
 * per operation, as the block decoders do, so any difference is a decoding error. */
START_TEST(test_golden_block_types) {
    for (size_t t = 0; t < sizeof golden_types / sizeof *golden_types; t++) {
        uint32_t type = golden_types[t].type;
        const char *name = kvq_ggml_type_name(type);
        char path[256];
        snprintf(path, sizeof path, "tests/golden/%s", golden_types[t].file);
        size_t len, be = kvq_ggml_block_elems(type), bb = kvq_ggml_block_bytes(type);
        unsigned char *b = slurp(path, &len);
        size_t per = bb + 4 * be, nb = len / per;
        ck_assert_msg(nb >= 2 && len == nb * per, "%s: %zu bytes is not whole %s blocks + values", path, len, name);
        ck_assert(kvq_ggml_can_convert(type));
        float *x = malloc(nb * be * sizeof *x);
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(kvq_ggml_to_f32(type, b, nb * be, x), KVQ_OK);
        for (size_t i = 0; i < nb * be; i++) {
            float want;
            memcpy(&want, b + nb * bb + 4 * i, 4);
            ck_assert_msg(!memcmp(&x[i], &want, 4), "%s block %zu element %zu: %.9g, gguf-py %.9g", name,
                          i / be, i % be, x[i], want);
        }
        ck_assert_int_eq(kvq_ggml_to_f32(type, b, be / 2, x), KVQ_ERR_SHAPE);   /* half a block */
        free(x);
        free(b);
    }
}
END_TEST

/* The fuzzing seed kquants.gguf (written by gen_gguf_golden.py with gguf-py's GGUFWriter) holds
 * one 256-element tensor t.<type> per type, the first bytes of the golden file: read through the
 * GGUF reader, each decodes to the golden values. */
START_TEST(test_kquant_seed_file) {
    kvq_gguf *g;
    char why[256];
    ck_assert_msg(kvq_gguf_open("tests/fuzz/seeds/fuzz_gguf/kquants.gguf", &g, why, sizeof why) == KVQ_OK, "%s", why);
    for (size_t t = 0; t < sizeof golden_types / sizeof *golden_types; t++) {
        uint32_t type = golden_types[t].type;
        char name[32], path[256];
        snprintf(name, sizeof name, "t.%s", kvq_ggml_type_name(type));
        for (char *p = name; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        const kvq_gguf_tensor *te = kvq_gguf_find_tensor(g, name);
        ck_assert_msg(te && te->type == type && te->n_elements == 256 && te->data, "%s", name);
        snprintf(path, sizeof path, "tests/golden/%s", golden_types[t].file);
        size_t len, bb = kvq_ggml_block_bytes(type), be = kvq_ggml_block_elems(type);
        unsigned char *b = slurp(path, &len);
        size_t nb = len / (bb + 4 * be);
        ck_assert(nb * be >= 256 && te->n_bytes == 256 / be * bb && !memcmp(te->data, b, te->n_bytes));
        float x[256];
        ck_assert_int_eq(kvq_ggml_to_f32(type, te->data, 256, x), KVQ_OK);
        ck_assert_msg(!memcmp(x, b + nb * bb, sizeof x), "%s differs from the golden values", name);
        free(b);
    }
    kvq_gguf_close(g);
}
END_TEST

/* One tensor 'w' of `type`, ne = [ne0, ne1], at offset 0, followed by `data_bytes` bytes. */
static void build_quant(buf *b, uint32_t type, uint64_t ne0, uint64_t ne1, size_t data_bytes) {
    b->n = 0;
    put(b, "GGUF", 4); put_u32(b, 3); put_u64(b, 1); put_u64(b, 0);
    put_str(b, "w"); put_u32(b, 2); put_u64(b, ne0); put_u64(b, ne1); put_u32(b, type); put_u64(b, 0);
    while (b->n % 32) b->b[b->n++] = 0;
    for (size_t i = 0; i < data_bytes; i++) b->b[b->n++] = (unsigned char)(i * 37);
}

/* A K-quant tensor's byte size follows from its shape (blocks of 256): exactly that many bytes
 * parse and convert; one byte fewer, a row that is not whole blocks, a shape far past the file
 * or an element count that overflows are refused with the tensor's name. (blocks * bytes cannot
 * wrap for 256-element blocks once the element count fits in int64: 2^55 * 292 < 2^64.) */
START_TEST(test_kquant_tensor_sizes) {
    static const uint32_t types[] = {KVQ_GGML_Q2_K, KVQ_GGML_Q3_K, KVQ_GGML_Q4_K, KVQ_GGML_Q5_K,
                                     KVQ_GGML_Q6_K, KVQ_GGML_Q8_K};
    buf b;
    char why[256];
    kvq_gguf *g;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        uint32_t ty = types[i], bb = kvq_ggml_block_bytes(ty);
        ck_assert_uint_eq(kvq_ggml_block_elems(ty), 256);
        build_quant(&b, ty, 512, 3, 6 * bb);
        ck_assert_msg(parse(&b, b.n, &g, why) == KVQ_OK, "%s", why);
        const kvq_gguf_tensor *t = kvq_gguf_find_tensor(g, "w");
        ck_assert(t->n_bytes == 6u * bb && t->data != NULL);
        static float x[1536];
        ck_assert_int_eq(kvq_ggml_to_f32(ty, t->data, (size_t)t->n_elements, x), KVQ_OK);
        kvq_gguf_close(g);
        ck_assert_int_eq(parse(&b, b.n - 1, &g, why), KVQ_ERR_BOUNDS);          /* truncated */
        ck_assert_msg(strstr(why, "'w'") && strstr(why, "mem.gguf"), "names file and tensor: %s", why);
        build_quant(&b, ty, 512, 4, 6 * bb);                                      /* shape wants 8 blocks */
        ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_BOUNDS);
        build_quant(&b, ty, 384, 2, 6 * bb);                                      /* 1.5 blocks a row */
        ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_SHAPE);
        build_quant(&b, ty, (uint64_t)1 << 62, 1, 6 * bb);                        /* ~2^54 blocks: past the end */
        ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_BOUNDS);
        build_quant(&b, ty, (uint64_t)1 << 62, 2, 6 * bb);                        /* element count overflows */
        ck_assert_int_eq(parse(&b, b.n, &g, why), KVQ_ERR_OVERFLOW);
        ck_assert_msg(strstr(why, "'w'") != NULL, "names the tensor: %s", why);
    }
}
END_TEST

static Suite *gguf_suite(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_small_roundtrip);
    tcase_add_test(tc, test_truncated_everywhere);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_bad_offsets);
    tcase_add_test(tc, test_stories_gguf);
    tcase_add_test(tc, test_vocab_gguf);
    tcase_add_test(tc, test_open_missing);
    tcase_add_test(tc, test_q8_0_block);
    tcase_add_test(tc, test_q4_0_block);
    tcase_add_test(tc, test_q4_1_block);
    tcase_add_test(tc, test_half_payloads_and_errors);
    tcase_add_test(tc, test_golden_block_types);
    tcase_add_test(tc, test_kquant_tensor_sizes);
    tcase_add_test(tc, test_kquant_seed_file);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(gguf_suite)
