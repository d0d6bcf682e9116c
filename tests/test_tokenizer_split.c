/* test_tokenizer_split.c — the Llama-3 / Qwen2 pre-tokenizer (Sequence[Split(pattern), ByteLevel
 * (use_regex false)]) against the HF `tokenizers` library. No Llama-3 or Qwen2 tokenizer.json is
 * available here, so the test builds them: kvq-tiny-15m's byte-level BPE tokenizer.json
 * (data/models/kvq-tiny-15m, vocabulary and merges kept, valid for any byte-level split) with its
 * pre_tokenizer replaced by the real Llama-3 (resp. Qwen2) Sequence; the Llama-3 variant also sets
 * ignore_merges (as Llama-3's file does), the Qwen2 variant the NFC normalizer (as Qwen2's does),
 * and a third one is Llama-3 with ByteLevel add_prefix_space (prefixed piece by piece, as HF does).
 * Oracle: Python package tokenizers 0.23.3 (the Rust implementation, onig regex) on the same
 * edited JSON (json.load, replace "pre_tokenizer" / "ignore_merges" / "normalizer", json.dump).
 * Hard cases: Tokenizer.from_file(F).encode(s).ids. Whole files: (token count, FNV-1a 64 of the
 * ids' little-endian int32 bytes), as tests/test_tokenizer.c:
 *   python3 -c "from tokenizers import Tokenizer; t=Tokenizer.from_file(F);
 *     ids=t.encode(open(TEXT,encoding='utf-8').read()).ids; h=0xcbf29ce484222325
 *     for i in ids:
 *       for b in i.to_bytes(4,'little'): h=((h^b)*0x100000001b3)%2**64
 *     print(len(ids), hex(h))"
 * and for c4_sample.jsonl the ids of each line's "text" (json.loads(line)["text"]) one after the
 * other. During development 3 x 6000 random strings over letters, marks, numbers, CR/LF, tabs,
 * Unicode spaces and apostrophes also agreed id for id. Every comparison is exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kvq_test.h"
#include "tokenizer.h"

#define TINY_JSON "data/models/kvq-tiny-15m/tokenizer.json"

/* The patterns as they stand in the real files (JSON-escaped). */
#define PAT_HEAD "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
#define PAT_TAIL "| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define PAT_LLAMA3 PAT_HEAD "\\\\p{N}{1,3}" PAT_TAIL
#define PAT_QWEN2 PAT_HEAD "\\\\p{N}" PAT_TAIL
#define SEQ(pat, aps, regex)                                                                   \
    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"" \
    pat "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "          \
    "\"add_prefix_space\": " aps ", \"trim_offsets\": true, \"use_regex\": " regex "}]}"

/* s with its one occurrence of `from` replaced by `to` (malloc'ed; s is freed). */
static char *replace_once(char *s, const char *from, const char *to) {
    char *at = strstr(s, from);
    ck_assert_msg(at && !strstr(at + 1, from), "'%.30s' is not in " TINY_JSON " exactly once", from);
    size_t pre = (size_t)(at - s), fl = strlen(from), tl = strlen(to), rest = strlen(at + fl);
    char *o = malloc(pre + tl + rest + 1);
    ck_assert(o != NULL);
    memcpy(o, s, pre);
    memcpy(o + pre, to, tl);
    memcpy(o + pre + tl, at + fl, rest + 1);
    free(s);
    return o;
}

enum { LLAMA3, QWEN2, LLAMA3_APS, N_TOK };
static kvq_tokenizer *tok[N_TOK];

static void setup(void) {
    static const char old_pretok[] = "\"pre_tokenizer\": {\n    \"type\": \"ByteLevel\",\n    "
        "\"add_prefix_space\": false,\n    \"trim_offsets\": true,\n    \"use_regex\": true\n  }";
    for (int k = 0; k < N_TOK; k++) {
        size_t len;
        char *j = kvq_test_slurp(TINY_JSON, &len), why[256] = "";
        j = replace_once(j, old_pretok, k == LLAMA3 ? "\"pre_tokenizer\": " SEQ(PAT_LLAMA3, "false", "false")
                         : k == QWEN2 ? "\"pre_tokenizer\": " SEQ(PAT_QWEN2, "false", "false")
                                      : "\"pre_tokenizer\": " SEQ(PAT_LLAMA3, "true", "false"));
        if (k == LLAMA3) j = replace_once(j, "\"ignore_merges\": false", "\"ignore_merges\": true");
        if (k == QWEN2) j = replace_once(j, "\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}");
        kvq_status st = kvq_tokenizer_load_json(j, strlen(j), "split.json", &tok[k], why, sizeof why);
        ck_assert_msg(st == KVQ_OK, "variant %d: %s", k, why);
        free(j);
    }
}

static void teardown(void) {
    for (int k = 0; k < N_TOK; k++) kvq_tokenizer_free(tok[k]);
}

static uint64_t fnv1a_ids(uint64_t h, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) h = (h ^ (((uint32_t)ids[i] >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

static int32_t *encode(const kvq_tokenizer *t, const char *s, size_t len, size_t *n) {
    int32_t *ids = NULL;
    char why[256] = "";
    kvq_status st = kvq_tokenize(t, s, len, 0, &ids, n, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "tokenize: %s", why);
    return ids;
}

typedef struct { int n; int32_t ids[52]; } hard_ids;

static const char *const hard_text[] = {
    "I'LL don't WE'RE 'Re x'\xC5\xBFt 'S 'm 'D 'Ve 'll",
    "a\r\n\r\n  b\r\n\tc \n",
    "1 12 123 1234 12345 123456 1234567",
    "   leading spaces",
    "trailing whitespace \t \n  ",
    "\tx\t\ty",
    "e\xCC\x81x \xC3\xA9 \xC2\xB2\xC2\xB3\xC2\xBC \xE2\x85\xAB\xD9\xA3 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 "
    "\xCE\xA3\xCE\xAF\xCF\x83\xCF\x85\xCF\x86\xCE\xBF\xCF\x82 \xC3\x9F",
    "!!abc ...\n\n?! ,,\r\n",
    "\xC2\xA0x\xE3\x80\x80y\xE2\x80\xA8z \xC2\x85",
    "\xE2\x84\xAA'K \xE2\x80\x99s",
    "<|endoftext|>x<|endoftext|>",
    "",
};
static const hard_ids want_llama3[] = {
    {30, {41, 7, 44, 44, 1228, 548, 437, 37, 7, 50, 37, 353, 5859, 221, 88, 7, 130, 124, 84, 353,
          51, 353, 77, 353, 36, 353, 54, 69, 353, 330}},
    {12, {65, 202, 199, 202, 199, 221, 270, 202, 199, 198, 67, 396}},
    {28, {17, 221, 7810, 221, 7810, 19, 221, 7810, 19, 20, 221, 7810, 19, 20, 21, 221, 7810, 19,
          20, 21, 22, 221, 7810, 19, 20, 21, 22, 23}},
    {4, {3082, 4113, 552, 1660}},
    {11, {84, 569, 3085, 336, 3364, 80, 560, 221, 198, 396, 3082}},
    {5, {198, 88, 198, 198, 89}},
    {48, {69, 137, 224, 88, 221, 128, 103, 221, 127, 111, 127, 112, 127, 121, 221, 159, 228, 105,
          150, 97, 221, 170, 244, 251, 167, 114, 256, 169, 245, 113, 221, 139, 97, 139, 108, 140,
          226, 140, 228, 140, 229, 139, 124, 140, 225, 221, 128, 254}},
    {13, {1, 1, 399, 67, 6452, 199, 199, 31, 1, 273, 12, 202, 199}},
    {12, {127, 255, 88, 160, 223, 223, 89, 502, 102, 90, 5380, 228}},
    {7, {6859, 104, 7, 43, 221, 950, 83}},
    {3, {0, 88, 0}},
    {0, {0}},
};
static const hard_ids want_qwen2[] = {
    {30, {41, 7, 44, 44, 1228, 548, 437, 37, 7, 50, 37, 353, 5859, 221, 88, 7, 130, 124, 84, 353,
          51, 353, 77, 353, 36, 353, 54, 69, 353, 330}},
    {12, {65, 202, 199, 202, 199, 221, 270, 202, 199, 198, 67, 396}},
    {34, {17, 221, 17, 18, 221, 17, 18, 19, 221, 17, 18, 19, 20, 221, 17, 18, 19, 20, 21, 221, 17,
          18, 19, 20, 21, 22, 221, 17, 18, 19, 20, 21, 22, 23}},
    {4, {3082, 4113, 552, 1660}},
    {11, {84, 569, 3085, 336, 3364, 80, 560, 221, 198, 396, 3082}},
    {5, {198, 88, 198, 198, 89}},
    {47, {128, 103, 88, 221, 128, 103, 221, 127, 111, 127, 112, 127, 121, 221, 159, 228, 105, 150,
          97, 221, 170, 244, 251, 167, 114, 256, 169, 245, 113, 221, 139, 97, 139, 108, 140, 226,
          140, 228, 140, 229, 139, 124, 140, 225, 221, 128, 254}},
    {13, {1, 1, 399, 67, 6452, 199, 199, 31, 1, 273, 12, 202, 199}},
    {12, {127, 255, 88, 160, 223, 223, 89, 502, 102, 90, 5380, 228}},
    {6, {43, 7, 43, 221, 950, 83}},
    {3, {0, 88, 0}},
    {0, {0}},
};
static const hard_ids want_llama3_aps[] = {
    {32, {347, 353, 44, 44, 1228, 353, 84, 437, 37, 353, 50, 37, 353, 1752, 221, 88, 353, 130,
          124, 257, 353, 340, 353, 284, 353, 459, 353, 830, 69, 353, 296, 76}},
    {15, {259, 221, 202, 199, 202, 199, 221, 270, 221, 202, 199, 221, 198, 67, 396}},
    {25, {413, 221, 1681, 221, 1681, 19, 221, 1681, 19, 1016, 221, 1681, 19, 6495, 221, 1681, 19,
          6495, 22, 221, 1681, 19, 6495, 22, 1347}},
    {4, {3082, 4113, 552, 1660}},
    {10, {463, 5272, 336, 3364, 80, 560, 221, 198, 396, 3082}},
    {8, {221, 198, 88, 221, 198, 221, 198, 89}},
    {50, {303, 221, 137, 224, 88, 221, 128, 103, 221, 5380, 111, 127, 112, 127, 121, 221, 221,
          159, 228, 105, 150, 97, 221, 170, 244, 251, 167, 114, 256, 169, 245, 113, 221, 139, 97,
          139, 108, 140, 226, 140, 228, 140, 229, 139, 124, 140, 225, 221, 128, 254}},
    {13, {780, 1, 482, 67, 6452, 199, 199, 491, 1, 273, 12, 202, 199}},
    {13, {5380, 255, 88, 221, 160, 223, 223, 89, 1123, 102, 90, 5380, 228}},
    {8, {221, 6859, 104, 353, 43, 221, 950, 263}},
    {4, {0, 221, 88, 0}},
    {0, {0}},
};

static void check_hard(int k, const hard_ids *want) {
    for (size_t c = 0; c < sizeof hard_text / sizeof hard_text[0]; c++) {
        size_t n;
        int32_t *ids = encode(tok[k], hard_text[c], strlen(hard_text[c]), &n);
        ck_assert_msg(n == (size_t)want[c].n, "variant %d case %zu: %zu tokens, want %d", k, c, n, want[c].n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(ids[i] == want[c].ids[i], "variant %d case %zu id %zu: %d, want %d", k, c, i,
                          ids[i], want[c].ids[i]);
        free(ids);
    }
}

START_TEST(test_hard_cases) {
    check_hard(LLAMA3, want_llama3);
    check_hard(QWEN2, want_qwen2);
    check_hard(LLAMA3_APS, want_llama3_aps);
}
END_TEST

/* Whole text file (or, for .jsonl, the "text" of each line) against the oracle figures. */
static void check_file(int k, const char *rel, size_t want_n, uint64_t want_hash) {
    const char *p = kvq_test_shared(rel);
    if (!p) { fprintf(stderr, "SKIP: %s not found in shared folder\n", rel); return; }
    size_t len, n = 0;
    uint64_t h = FNV_INIT;
    char *text = kvq_test_slurp(p, &len);
    int jsonl = strstr(rel, ".jsonl") != NULL;
    for (char *line = text; line < text + len;) {
        char *end = jsonl ? memchr(line, '\n', (size_t)(text + len - line)) : NULL;
        size_t ll = end ? (size_t)(end - line) : (size_t)(text + len - line), m;
        const char *s = line;
        size_t sl = ll;
        kvq_json *j = NULL;
        if (jsonl) {
            char why[160] = "";
            ck_assert_msg(kvq_json_parse(line, ll, &j, why, sizeof why) == KVQ_OK, "%s: %s", rel, why);
            const kvq_json *tv = kvq_json_get(j, "text");
            ck_assert_msg(tv && tv->type == KVQ_JSON_STRING, "%s: a line without \"text\"", rel);
            s = tv->str;
            sl = tv->len;
        }
        int32_t *ids = encode(tok[k], s, sl, &m);
        h = fnv1a_ids(h, ids, m);
        n += m;
        free(ids);
        kvq_json_free(j);
        line += ll + 1;
    }
    ck_assert_msg(n == want_n && h == want_hash, "variant %d, %s: %zu tokens, hash 0x%016llx; the "
                  "oracle gives %zu, 0x%016llx", k, rel, n, (unsigned long long)h, want_n,
                  (unsigned long long)want_hash);
    free(text);
}

START_TEST(test_whole_files_llama3) {
    check_file(LLAMA3, "data/text/wiki.test.raw", 354148, 0xc379e173f050c352ull);
    check_file(LLAMA3, "data/text/ptb.test.txt", 111165, 0xdcfcae90e603f566ull);
    check_file(LLAMA3, "data/text/moby_dick.txt", 318967, 0xc22fb0525bfddc26ull);
    check_file(LLAMA3, "data/text/brown_untagged.txt", 1554825, 0xa5cfc377998d9c0dull);
    check_file(LLAMA3, "data/text/c4_sample.jsonl", 200416, 0xab7453f03f543767ull);
}
END_TEST

START_TEST(test_whole_files_qwen2) {
    check_file(QWEN2, "data/text/wiki.test.raw", 358861, 0x08dc2c2756e821b1ull);
    check_file(QWEN2, "data/text/ptb.test.txt", 111221, 0x77e72db3a2ab1271ull);
    check_file(QWEN2, "data/text/moby_dick.txt", 319110, 0x7be73fbac031ea4cull);
    check_file(QWEN2, "data/text/brown_untagged.txt", 1560519, 0xd37ac49b6fe2c1a5ull);
    check_file(QWEN2, "data/text/c4_sample.jsonl", 201617, 0xa38eb042bd311f37ull);
}
END_TEST

/* Unknown patterns and other Split settings: KVQ_ERR_UNSUPPORTED and a message naming the part. */
START_TEST(test_rejected) {
#define MODEL ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"
#define SPLIT(pat, beh, inv) "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": " \
    "\"Split\", \"pattern\": " pat ", \"behavior\": \"" beh "\", \"invert\": " inv "}, {\"type\": "         \
    "\"ByteLevel\", \"use_regex\": false}]}" MODEL
    static const struct { const char *json, *needle; } bad[] = {
        /* Llama-3's pattern with \p{N}{1,4}: only the exact known strings are accepted */
        {"{\"pre_tokenizer\": " SEQ(PAT_HEAD "\\\\p{N}{1,4}" PAT_TAIL, "false", "false") MODEL,
         "Split pattern \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\...\" is not"},
        {SPLIT("{\"Regex\": \"\\\\p{L}+\"}", "Isolated", "false"), "Split pattern \"\\p{L}+\" is not supported"},
        {SPLIT("{\"String\": \" \"}", "Isolated", "false"), "Regex"},
        {SPLIT("{\"Regex\": \"" PAT_QWEN2 "\"}", "Removed", "false"), "Isolated"},
        {SPLIT("{\"Regex\": \"" PAT_QWEN2 "\"}", "Isolated", "true"), "not inverted"},
        {"{\"pre_tokenizer\": " SEQ(PAT_LLAMA3, "false", "true") MODEL, "use_regex false"},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"" PAT_LLAMA3 "\"}}" MODEL,
         "Sequence[Split, ByteLevel]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvq_tokenizer *t = (kvq_tokenizer *)1;
        char why[256] = "";
        kvq_status st = kvq_tokenizer_load_json(bad[i].json, strlen(bad[i].json), "bad.json", &t, why, sizeof why);
        ck_assert_msg(st == KVQ_ERR_UNSUPPORTED, "case %zu: status %s (%s)", i, kvq_status_name(st), why);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(why, "bad.json") && strstr(why, bad[i].needle), "case %zu: message '%s'", i, why);
    }
#undef SPLIT
#undef MODEL
}
END_TEST

Suite *tokenizer_split_suite(void) {
    Suite *s = suite_create("tokenizer_split");
    TCase *tc = tcase_create("split");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hard_cases);
    tcase_add_test(tc, test_whole_files_llama3);
    tcase_add_test(tc, test_whole_files_qwen2);
    tcase_add_test(tc, test_rejected);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(tokenizer_split_suite)
