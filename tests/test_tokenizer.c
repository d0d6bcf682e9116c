/* test_tokenizer.c — the tokenizers against independent oracles:
 *   - kvq-tiny-15m's tokenizer.json: the reference input_ids in ../shared/reference/kvq-tiny-15m.h5
 *     (written by HF transformers), and whole-file ids of wiki.test.raw / ptb.test.txt;
 *   - GPT-NeoX's tokenizer.json (NFC, added whitespace tokens) on C4 and Brown;
 *   - llama.cpp's test vectors (ggml-vocab-llama-spm.gguf.inp/.out) for the LLaMA SentencePiece
 *     vocabulary, through the GGUF-embedded vocabulary and through the llama2.c tokenizer.bin;
 *   - whole-file ids of the SentencePiece vocabularies against the `sentencepiece` library;
 *   - finding the tokenizer of a model path; malformed files: clear errors, no crash.
 * Whole-file figures come from the HF `tokenizers` library (Python package tokenizers 0.23.3, Rust
 * implementation), recorded as (token count, FNV-1a 64 of the ids' little-endian int32 bytes):
 *   python3 -c "from tokenizers import Tokenizer; t=Tokenizer.from_file(TOK);
 *     ids=t.encode(open(TEXT,encoding='utf-8').read()).ids; h=0xcbf29ce484222325
 *     for i in ids:
 *       for b in i.to_bytes(4,'little'): h=((h^b)*0x100000001b3)%2**64
 *     print(len(ids), hex(h))"
 * SentencePiece figures come from the Python package sentencepiece 0.2.3 (Google's C++ library):
 * llama2-spm/tokenizer.model directly (SentencePieceProcessor(model_file=...).encode(text)); for
 * stories260K, whose .model file is not in ../shared, from a ModelProto rebuilt from tok512.bin's
 * pieces and scores (type BPE, byte_fallback, identity normalizer, dummy prefix; ids 0/1/2
 * unknown/control, <0xXX> byte pieces).
 * Every comparison is exact (token ids are integers). */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "json.h"
#include "kvq_test.h"
#include "tokenizer.h"

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
    char *text = kvq_test_slurp(p, &len);
    if (max_lines) {
        size_t i = 0, lines = 0;
        while (i < len && lines < max_lines) if (text[i++] == '\n') lines++;
        len = i;
    }
    int32_t *ids = encode(t, text, len, &n);
    uint64_t h = fnv1a_ids(ids, n);
    ck_assert_msg(n == want_n && h == want_hash, "%s: %zu tokens, hash 0x%016llx; the oracle gives "
                  "%zu, 0x%016llx", text_rel, n, (unsigned long long)h, want_n,
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
    char *text = kvq_test_slurp(kvq_test_shared("data/text/wiki.test.raw"), &len);
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

/* ---- SentencePiece: llama.cpp's vectors, whole files ---- */

/* Run every .inp text through t and compare with the .out ids (llama.cpp test-tokenizer-0 format:
 * texts separated by "\n__ggml_vocab_test__\n", one line of space-separated ids per text). */
static void check_llama_vectors(const kvq_tokenizer *t, const char *what) {
    const char *pi = kvq_test_shared("models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.inp");
    char *inp, *out;
    size_t il, ol, tested = 0;
    inp = kvq_test_slurp(pi, &il);
    out = kvq_test_slurp(kvq_test_shared("models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf.out"), &ol);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = out;
    for (;;) {
        char *end = strstr(text, sep), *eol = strchr(line, '\n');
        if (!end || !eol) break;
        size_t n;
        int32_t *ids = encode(t, text, (size_t)(end - text), &n);
        size_t k = 0;
        for (char *q = line; q < eol; k++) {
            char *next;
            long want = strtol(q, &next, 10);
            if (next == q) break;
            ck_assert_msg(k < n && ids[k] == want, "%s: text %zu ('%.*s') id %zu: got %d, want %ld", what,
                          tested, (int)(end - text > 30 ? 30 : end - text), text, k, k < n ? ids[k] : -1, want);
            q = next;
        }
        ck_assert_msg(k == n, "%s: text %zu: %zu ids, want %zu", what, tested, n, k);
        free(ids);
        tested++;
        text = end + sizeof sep - 1;
        line = eol + 1;
    }
    ck_assert_uint_eq(tested, 46);   /* the 46 texts of the file */
    free(inp);
    free(out);
}

START_TEST(test_llama_spm_gguf) {
    const char *p = kvq_test_shared("models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    SKIP_NO(p, "models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    kvq_tokenizer *t = load_ok(p);
    check_llama_vectors(t, "gguf");
    check_file(t, "data/text/c4_sample.jsonl", 60, 51846, 0x1ccb575a8ea537ffull);
    /* Control/unknown tokens written in the text are split out (llama.cpp's parse_special, HF's
     * added tokens): "<unk>" is id 0 here, where sentencepiece spells it out (529 2960 29958).
     * Each text piece gets the dummy prefix, after a special token too (llama.cpp's rule), so by
     * hand: "a " -> "▁a▁" = 263 29871; "<unk>" = 0; " b" -> "▁▁b" = 29871 289. */
    size_t nu;
    int32_t *u = encode(t, "a <unk> b", 9, &nu);
    ck_assert(nu == 5 && u[0] == 263 && u[1] == 29871 && u[2] == 0 && u[3] == 29871 && u[4] == 289);
    free(u);
    ck_assert_int_eq(kvq_tokenizer_bos(t), 1);
    ck_assert_int_eq(kvq_tokenizer_adds_bos(t), 1);
    size_t n, len;
    int32_t *ids = NULL;
    ck_assert(kvq_tokenize(t, "Hello world", 11, 1, &ids, &n, NULL, 0) == KVQ_OK);
    ck_assert(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186);   /* .out: 15043 3186 */
    char *back;
    ck_assert(kvq_detokenize(t, ids + 1, n - 1, &back, &len, NULL, 0) == KVQ_OK);
    ck_assert_str_eq(back, "Hello world");
    free(back);
    free(ids);
    kvq_tokenizer_free(t);
}
END_TEST

START_TEST(test_llama_spm_bin) {
    const char *p = kvq_test_shared("models/tokenizers/llama2-spm/tokenizer.bin");
    SKIP_NO(p, "models/tokenizers/llama2-spm/tokenizer.bin");
    kvq_tokenizer *t = load_ok(p);
    /* the llama2.c file holds the same pieces and scores: all vectors agree */
    check_llama_vectors(t, "tokenizer.bin");
    check_file(t, "data/text/c4_sample.jsonl", 60, 51846, 0x1ccb575a8ea537ffull);
    check_file(t, "data/text/ptb.test.txt", 0, 114487, 0x627fbe897b6ac5aeull);
    kvq_tokenizer_free(t);
}
END_TEST

START_TEST(test_stories_vocab) {
    /* tok512.bin and the vocabulary embedded in stories260K.gguf: same ids as sentencepiece */
    const char *rel[] = {"models/stories260K/tok512.bin", "models/stories260K/stories260K.gguf"};
    for (int i = 0; i < 2; i++) {
        const char *p = kvq_test_shared(rel[i]);
        SKIP_NO(p, rel[i]);
        kvq_tokenizer *t = load_ok(p);
        ck_assert_int_eq(kvq_tokenizer_vocab_size(t), 512);
        check_file(t, "data/text/tinystories_val_subset.txt", 1000, 50122, 0x4cc159365fa42619ull);
        kvq_tokenizer_free(t);
    }
}
END_TEST

START_TEST(test_load_for_model) {
    const char *paths[] = {"models/stories260K/stories260K.bin", "models/stories260K/stories260K.gguf",
                           "models/kvq-tiny-15m"};
    const int32_t vocab[] = {512, 512, 8192};
    for (int i = 0; i < 3; i++) {
        const char *p = kvq_test_shared(paths[i]);
        SKIP_NO(p, paths[i]);
        kvq_tokenizer *t = NULL;
        char why[256] = "";
        ck_assert_msg(kvq_tokenizer_load_for_model(p, &t, why, sizeof why) == KVQ_OK, "%s: %s", p, why);
        ck_assert_int_eq(kvq_tokenizer_vocab_size(t), vocab[i]);
        kvq_tokenizer_free(t);
    }
    /* a llama2.c checkpoint alone in its directory: the error asks for --tokenizer */
    char dir[512], model[600];
    snprintf(dir, sizeof dir, "%s/lonely", kvq_test_tmpdir());
    ck_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(model, sizeof model, "%s/model.bin", dir);
    FILE *f = fopen(model, "wb");
    ck_assert(f && fwrite("\1\0\0\0", 1, 4, f) == 4 && fclose(f) == 0);
    kvq_tokenizer *t = (kvq_tokenizer *)1;
    char why[512] = "";
    ck_assert(kvq_tokenizer_load_for_model(model, &t, why, sizeof why) == KVQ_ERR_MISSING);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(why, "--tokenizer") != NULL, "message: %s", why);
}
END_TEST

/* ---- SentencePiece-style tokenizer.json (Llama-2 in HF form), built from the GGUF vocabulary ---- */

typedef struct { const char *s; size_t len; int32_t id; } piece_ref;

static int cmp_piece(const void *a, const void *b) {
    const piece_ref *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, m);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int32_t find_piece(const piece_ref *sorted, size_t n, const char *s, size_t len) {
    piece_ref key = {s, len, -1};
    const piece_ref *r = bsearch(&key, sorted, n, sizeof key, cmp_piece);
    return r ? r->id : -1;
}

typedef struct { float score; int32_t a, b, merged; } merge_ref;
static int cmp_merge(const void *x, const void *y) {
    const merge_ref *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    return p->a != q->a ? (p->a > q->a) - (p->a < q->a) : (p->b > q->b) - (p->b < q->b);
}

static void put_json_str(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* The conversion HF transformers applies to a SentencePiece BPE model, written out: the vocab,
 * and as merges every split of a normal piece into two pieces, ordered by the merged piece's score
 * (then by the parts' ids); normalizer Prepend("▁") + Replace(" " -> "▁"); BPE with byte_fallback,
 * fuse_unk, unk "<unk>". */
static char *llama_hf_json(const char *gguf_path, size_t *len) {
    kvq_gguf *g = NULL;
    char why[256];
    ck_assert_msg(kvq_gguf_open(gguf_path, &g, why, sizeof why) == KVQ_OK, "%s", why);
    const kvq_gguf_kv *tok, *sc, *ty;
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.tokens", KVQ_GGUF_STRING, &tok) == KVQ_OK);
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.scores", KVQ_GGUF_FLOAT32, &sc) == KVQ_OK);
    ck_assert(kvq_gguf_get_array(g, "tokenizer.ggml.token_type", KVQ_GGUF_INT32, &ty) == KVQ_OK);
    size_t n = (size_t)tok->n, nm = 0, cap = 4 * n;
    piece_ref *p = malloc(n * sizeof *p), *sorted = malloc(n * sizeof *sorted);
    merge_ref *m = malloc(cap * sizeof *m);
    ck_assert(p && sorted && m);
    for (size_t i = 0; i < n; i++) {
        kvq_gguf_arr_str(tok, i, &p[i].s, &p[i].len);
        p[i].id = (int32_t)i;
    }
    memcpy(sorted, p, n * sizeof *p);
    qsort(sorted, n, sizeof *sorted, cmp_piece);
    for (size_t i = 0; i < n; i++) {
        if (kvq_gguf_arr_i32(ty, i) != 1) continue;           /* normal pieces only */
        for (size_t k = 1; k < p[i].len; k++) {
            int32_t a = find_piece(sorted, n, p[i].s, k), b = find_piece(sorted, n, p[i].s + k, p[i].len - k);
            if (a < 0 || b < 0) continue;
            if (nm == cap) ck_assert((m = realloc(m, (cap *= 2) * sizeof *m)) != NULL);
            m[nm++] = (merge_ref){kvq_gguf_arr_f32(sc, i), a, b, (int32_t)i};
        }
    }
    qsort(m, nm, sizeof *m, cmp_merge);
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ck_assert(f != NULL);
    fputs("{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}, {\"id\": 1, "
          "\"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}],\n"
          "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
          "\"\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\u2581\"}]},\n"
          "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true,\n"
          "\"vocab\": {", f);
    for (size_t i = 0; i < n; i++) {
        put_json_str(f, p[i].s, p[i].len);
        fprintf(f, ": %zu%s", i, i + 1 < n ? ", " : "},\n\"merges\": [");
    }
    for (size_t i = 0; i < nm; i++) {
        fputc('[', f);
        put_json_str(f, p[m[i].a].s, p[m[i].a].len);
        fputc(',', f);
        put_json_str(f, p[m[i].b].s, p[m[i].b].len);
        fputs(i + 1 < nm ? "], " : "]", f);
    }
    fputs("]}}\n", f);
    ck_assert(fclose(f) == 0);
    free(p);
    free(sorted);
    free(m);
    kvq_gguf_close(g);
    return buf;
}

START_TEST(test_llama_hf_json) {
    const char *p = kvq_test_shared("models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    SKIP_NO(p, "models/tokenizers/llama2-spm/ggml-vocab-llama-spm.gguf");
    size_t len;
    char *json = llama_hf_json(p, &len), why[256] = "";
    kvq_tokenizer *t = NULL;
    ck_assert_msg(kvq_tokenizer_load_json(json, len, "llama-hf.json", &t, why, sizeof why) == KVQ_OK, "%s", why);
    /* rank-ordered merges over characters reproduce SentencePiece's score-ordered ones: the same
     * vectors and the same ids as sentencepiece on text (HF tokenizers on this file agrees too) */
    check_llama_vectors(t, "llama-hf.json");
    check_file(t, "data/text/c4_sample.jsonl", 60, 51846, 0x1ccb575a8ea537ffull);
    kvq_tokenizer_free(t);
    free(json);
}
END_TEST

/* ---- GGUF "gpt2" vocabulary, built from kvq-tiny-15m's tokenizer.json ---- */

static void gg_str(FILE *f, const char *s, size_t len) {
    uint64_t n = len;
    fwrite(&n, 8, 1, f);
    fwrite(s, 1, len, f);
}
static void gg_key(FILE *f, const char *key, uint32_t type) {
    gg_str(f, key, strlen(key));
    fwrite(&type, 4, 1, f);
}
static void gg_arr(FILE *f, const char *key, uint32_t elem, uint64_t n) {
    gg_key(f, key, 9);
    fwrite(&elem, 4, 1, f);
    fwrite(&n, 8, 1, f);
}

/* A metadata-only GGUF v3 with tokenizer.ggml.{model "gpt2", pre "gpt-2", tokens, token_type,
 * merges} holding exactly the vocabulary and merges of the tokenizer.json at json_path. */
static void write_gpt2_gguf(const char *json_path, const kvq_tokenizer *t, const char *out) {
    size_t len;
    char *text = kvq_test_slurp(json_path, &len), why[256];
    kvq_json *root = NULL;
    ck_assert_msg(kvq_json_parse(text, len, &root, why, sizeof why) == KVQ_OK, "%s", why);
    const kvq_json *merges = kvq_json_get(kvq_json_get(root, "model"), "merges");
    ck_assert(merges && merges->type == KVQ_JSON_ARRAY);
    FILE *f = fopen(out, "wb");
    ck_assert(f != NULL);
    uint32_t version = 3, type;
    uint64_t zero = 0, n_kv = 5, n = (uint64_t)kvq_tokenizer_vocab_size(t);
    fwrite("GGUF", 1, 4, f);
    fwrite(&version, 4, 1, f);
    fwrite(&zero, 8, 1, f);
    fwrite(&n_kv, 8, 1, f);
    gg_key(f, "tokenizer.ggml.model", 8);
    gg_str(f, "gpt2", 4);
    gg_key(f, "tokenizer.ggml.pre", 8);
    gg_str(f, "gpt-2", 5);
    gg_arr(f, "tokenizer.ggml.tokens", 8, n);
    for (int32_t id = 0; id < (int32_t)n; id++) {
        size_t pl;
        const char *pc = kvq_tokenizer_piece(t, id, &pl);
        gg_str(f, pc, pl);
    }
    gg_arr(f, "tokenizer.ggml.token_type", 5, n);
    for (int32_t id = 0; id < (int32_t)n; id++) {
        type = id == 0 ? 3 : 1;                    /* <|endoftext|> is a control token */
        fwrite(&type, 4, 1, f);
    }
    gg_arr(f, "tokenizer.ggml.merges", 8, merges->len);
    for (size_t i = 0; i < merges->len; i++) {
        const kvq_json *m = merges->items[i];
        char buf[256];
        int k = snprintf(buf, sizeof buf, "%s %s", m->items[0]->str, m->items[1]->str);
        ck_assert(k > 0 && (size_t)k < sizeof buf);
        gg_str(f, buf, (size_t)k);
    }
    long pos = ftell(f);
    for (; pos % 32; pos++) fputc(0, f);           /* the (empty) data section is aligned */
    ck_assert(fclose(f) == 0);
    kvq_json_free(root);
    free(text);
}

START_TEST(test_gguf_gpt2) {
    const char *p = kvq_test_shared("models/kvq-tiny-15m/tokenizer.json");
    SKIP_NO(p, "models/kvq-tiny-15m/tokenizer.json");
    SKIP_NO(tiny, "models/kvq-tiny-15m");
    char path[600], jp[600];
    snprintf(jp, sizeof jp, "%s", p);
    snprintf(path, sizeof path, "%s/tiny-gpt2.gguf", kvq_test_tmpdir());
    write_gpt2_gguf(jp, tiny, path);
    kvq_tokenizer *t = load_ok(path);
    /* the same vocabulary through the GGUF path: the HF tokenizers figures of the whole file */
    check_file(t, "data/text/wiki.test.raw", 0, 341965, 0xb0af3af6823c8aefull);
    kvq_tokenizer_free(t);
}
END_TEST

/* ---- malformed input ---- */
#define BYTES "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}"

START_TEST(test_malformed_json) {
    static const struct { const char *json; kvq_status st; const char *needle; } bad[] = {
        {"", KVQ_ERR_FORMAT, "byte"},
        {"{\"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": [\"a b\"]", KVQ_ERR_FORMAT, "byte"},
        {"{}", KVQ_ERR_MISSING, "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", " BYTES "}}", KVQ_ERR_UNSUPPORTED, "WordPiece"},
        {"{\"model\": {\"type\": \"BPE\", " BYTES "}}", KVQ_ERR_MISSING, "merges"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0.5}, \"merges\": []}}", KVQ_ERR_FORMAT, "id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", KVQ_ERR_FORMAT, "twice"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}, \"merges\": []}}", KVQ_ERR_FORMAT, "ids run"},
        {"{\"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": [\"a c\"]}}", KVQ_ERR_FORMAT, "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": [\"ab\"]}}", KVQ_ERR_FORMAT, "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": [[\"a\", 1]]}}", KVQ_ERR_FORMAT, "merge 0"},
        {"{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": []}}",
         KVQ_ERR_UNSUPPORTED, "NFKC"},
        {"{\"pre_tokenizer\": {\"type\": \"Split\"}, \"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": []}}",
         KVQ_ERR_UNSUPPORTED, "Split"},
        {"{\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", \"lstrip\": true}], \"model\": {\"type\": "
         "\"BPE\", " BYTES ", \"merges\": []}}", KVQ_ERR_UNSUPPORTED, "lstrip"},
        {"{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": []}}",
         KVQ_ERR_FORMAT, "byte 0x20"},
        {"{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, " BYTES ", \"merges\": []}}", KVQ_ERR_UNSUPPORTED, "dropout"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvq_tokenizer *t = (kvq_tokenizer *)1;
        char why[256] = "";
        kvq_status st = kvq_tokenizer_load_json(bad[i].json, strlen(bad[i].json), "bad.json", &t, why, sizeof why);
        ck_assert_msg(st == bad[i].st, "case %zu: status %s, want %s (%s)", i, kvq_status_name(st),
                      kvq_status_name(bad[i].st), why);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(why, "bad.json") && strstr(why, bad[i].needle), "case %zu: message '%s'", i, why);
    }
    /* the smallest valid one, for contrast: "ab" merges */
    const char *ok = "{\"model\": {\"type\": \"BPE\", " BYTES ", \"merges\": [\"a b\"]}}";
    kvq_tokenizer *t = NULL;
    ck_assert(kvq_tokenizer_load_json(ok, strlen(ok), "ok.json", &t, NULL, 0) == KVQ_OK);
    size_t n;
    int32_t *ids = encode(t, "abba", 4, &n);
    ck_assert(n == 3 && ids[0] == 2 && ids[1] == 1 && ids[2] == 0);
    free(ids);
    kvq_tokenizer_free(t);
}
END_TEST

/* A byte-level vocabulary with every printable ASCII byte but not the control byte 0x04 (as
 * SmolLM2's) loads; 0x04 in the text is dropped, as HF tokenizers does without an unk token. */
START_TEST(test_byte_level_missing_control_byte) {
    char json[4096];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", "
                                "\"add_prefix_space\": false}, \"model\": {\"type\": \"BPE\", \"vocab\": {"
                                "\"\\u0120\": 0");                       /* U+0120 is the byte 0x20 */
    for (int b = 0x21; b < 0x7F; b++)
        n += (size_t)snprintf(json + n, sizeof json - n, b == '"' ? ", \"\\\"\": %d" : b == '\\' ?
                              ", \"\\\\\": %d" : ", \"%c\": %d", b == '"' || b == '\\' ? b - 0x20 : b, b - 0x20);
    snprintf(json + n, sizeof json - n, "}, \"merges\": []}}");
    kvq_tokenizer *t = NULL;
    char why[256] = "";
    ck_assert_msg(kvq_tokenizer_load_json(json, strlen(json), "ctl.json", &t, why, sizeof why) == KVQ_OK, "%s", why);
    size_t k;
    int32_t *ids = encode(t, "a\x04" "b", 3, &k);
    ck_assert_msg(k == 2 && ids[0] == 'a' - 0x20 && ids[1] == 'b' - 0x20, "got %zu ids: %d %d", k, ids[0], k > 1 ? ids[1] : -1);
    free(ids);
    kvq_tokenizer_free(t);
}
END_TEST

START_TEST(test_malformed_bin) {
    const char *p = kvq_test_shared("models/stories260K/tok512.bin");
    SKIP_NO(p, "models/stories260K/tok512.bin");
    size_t len;
    char *buf = kvq_test_slurp(p, &len);
    char path[600], why[256];
    snprintf(path, sizeof path, "%s/cut.bin", kvq_test_tmpdir());
    /* every cut inside the first records and a few later ones: a clear error, except at a record
     * boundary, where the format (no token count) cannot tell: then fewer tokens load */
    for (size_t cut = 1; cut < len; cut += cut < 200 ? 1 : 397) {
        FILE *f = fopen(path, "wb");
        ck_assert(f && fwrite(buf, 1, cut, f) == cut && fclose(f) == 0);
        kvq_tokenizer *t = (kvq_tokenizer *)1;
        why[0] = 0;
        kvq_status st = kvq_tokenizer_load(path, &t, why, sizeof why);
        if (st == KVQ_OK) {
            ck_assert_int_lt(kvq_tokenizer_vocab_size(t), 512);
            kvq_tokenizer_free(t);
            continue;
        }
        ck_assert_ptr_null(t);
        ck_assert_msg(st == KVQ_ERR_TRUNCATED || (cut == 4 && st == KVQ_ERR_FORMAT),
                      "cut %zu: %s (%s)", cut, kvq_status_name(st), why);
        ck_assert_msg(strstr(why, "cut.bin") != NULL, "cut %zu: message '%s'", cut, why);
    }
    free(buf);
    kvq_tokenizer *t = (kvq_tokenizer *)1;
    ck_assert(kvq_tokenizer_load("/nonexistent/tokenizer.json", &t, why, sizeof why) == KVQ_ERR_IO);
    ck_assert_ptr_null(t);
    ck_assert(kvq_tokenizer_load(kvq_test_tmpdir(), &t, why, sizeof why) == KVQ_ERR_MISSING);
    ck_assert_msg(strstr(why, "tokenizer.json") != NULL, "%s", why);
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
    tcase_add_test(tc, test_gguf_gpt2);
    suite_add_tcase(s, tc);
    tc = tcase_create("neox");
    tcase_add_test(tc, test_neox);
    suite_add_tcase(s, tc);
    tc = tcase_create("spm");
    tcase_add_test(tc, test_llama_spm_gguf);
    tcase_add_test(tc, test_llama_spm_bin);
    tcase_add_test(tc, test_stories_vocab);
    tcase_add_test(tc, test_load_for_model);
    tcase_add_test(tc, test_llama_hf_json);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_test(tc, test_malformed_json);
    tcase_add_test(tc, test_byte_level_missing_control_byte);
    tcase_add_test(tc, test_malformed_bin);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(tokenizer_suite)
