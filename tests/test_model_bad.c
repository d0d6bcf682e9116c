/* test_model_bad.c — kvq_model_load on broken models: synthetic one-layer GGUF models built
 * here (missing tensor, wrong shape, unsupported dtype, bad metadata, every header byte
 * flipped), truncated and edited copies of stories260K (.bin, .gguf, hf/ with edited config.json
 * and safetensors header, bad shard indexes). Each must give an error status and a message that
 * names the file and the tensor or key — and never crash (run under ASan by `make asan`). The
 * mixed-dtype synthetic model also checks that quantized tensors load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "kvq_model.h"
#include "kvq_test.h"

/* ---- synthetic GGUF model: hidden 32, 2 heads of 16, 1 kv head, ffn 64, vocab 32, 1 layer --- */
typedef struct { const char *name; uint64_t ne0, ne1; uint32_t type; } spec;
static spec model_spec[] = {
    {"token_embd.weight", 32, 32, 0},     {"blk.0.attn_norm.weight", 32, 0, 0}, {"blk.0.attn_q.weight", 32, 32, 0},
    {"blk.0.attn_k.weight", 32, 16, 0},   {"blk.0.attn_v.weight", 32, 16, 0},   {"blk.0.attn_output.weight", 32, 32, 0},
    {"blk.0.ffn_norm.weight", 32, 0, 0},  {"blk.0.ffn_gate.weight", 32, 64, 0}, {"blk.0.ffn_up.weight", 32, 64, 0},
    {"blk.0.ffn_down.weight", 64, 32, 0}, {"output_norm.weight", 32, 0, 0}};
enum { N_SPEC = sizeof model_spec / sizeof *model_spec };

typedef struct gbuf { unsigned char *b; size_t n, cap; } gbuf;
static void put(gbuf *g, const void *p, size_t n) {
    if (g->n + n > g->cap) { g->cap = 2 * (g->n + n); g->b = realloc(g->b, g->cap); ck_assert_ptr_nonnull(g->b); }
    memcpy(g->b + g->n, p, n);
    g->n += n;
}
static void put_u32(gbuf *g, uint32_t v) { put(g, &v, 4); }
static void put_u64(gbuf *g, uint64_t v) { put(g, &v, 8); }
static void put_str(gbuf *g, const char *s) { put_u64(g, strlen(s)); put(g, s, strlen(s)); }
static void kv_u32(gbuf *g, const char *k, uint32_t v) { put_str(g, k); put_u32(g, KVQ_GGUF_UINT32); put_u32(g, v); }

/* Build the model; skip tensor `omit` (NULL: none); `arch` and `blocks` are the metadata.
 * Returns the header length in *hdr. Data bytes are a deterministic pattern with fp16 scales
 * kept finite (high byte of every 16-bit word < 0x78). */
static gbuf build_model(const char *omit, const char *arch, uint32_t blocks, uint32_t hidden, size_t *hdr) {
    gbuf g = {0};
    uint64_t n_t = 0;
    for (int i = 0; i < N_SPEC; i++) n_t += !(omit && !strcmp(omit, model_spec[i].name));
    put(&g, "GGUF", 4); put_u32(&g, 3); put_u64(&g, n_t); put_u64(&g, 7);
    put_str(&g, "general.architecture"); put_u32(&g, KVQ_GGUF_STRING); put_str(&g, arch);
    kv_u32(&g, "llama.block_count", blocks);
    kv_u32(&g, "llama.embedding_length", hidden);
    kv_u32(&g, "llama.feed_forward_length", 64);
    kv_u32(&g, "llama.attention.head_count", 2);
    kv_u32(&g, "llama.attention.head_count_kv", 1);
    kv_u32(&g, "llama.vocab_size", 32);
    uint64_t off = 0;
    for (int i = 0; i < N_SPEC; i++) {
        const spec *s = &model_spec[i];
        if (omit && !strcmp(omit, s->name)) continue;
        put_str(&g, s->name); put_u32(&g, s->ne1 ? 2 : 1); put_u64(&g, s->ne0);
        if (s->ne1) put_u64(&g, s->ne1);
        put_u32(&g, s->type); put_u64(&g, off);
        uint64_t n = s->ne0 * (s->ne1 ? s->ne1 : 1);
        off += (n / kvq_ggml_block_elems(s->type) * kvq_ggml_block_bytes(s->type) + 31) / 32 * 32;
    }
    while (g.n % 32) put(&g, "", 1);
    *hdr = g.n;
    for (uint64_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)((i * 131 + 7) % 251);
        if (i % 2) c &= 0x3F;
        put(&g, &c, 1);
    }
    return g;
}

static const char *write_tmp(const char *name, const void *data, size_t n) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", kvq_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert(fwrite(data, 1, n, f) == n);
    ck_assert(fclose(f) == 0);
    return path;
}

static kvq_status load_err(const char *path, const char *needle) {
    kvq_model m;
    char why[512] = "";
    kvq_status st = kvq_model_load(path, &m, why, sizeof why);
    ck_assert_msg(st != KVQ_OK, "%s should be rejected", path);
    ck_assert_msg(why[0] && strstr(why, needle), "message '%s' should contain '%s'", why, needle);
    ck_assert_ptr_null(m.layers);
    ck_assert_ptr_null(m.storage);
    return st;
}

START_TEST(test_synthetic_ok_and_mixed) {
    size_t hdr;
    gbuf g = build_model(NULL, "llama", 1, 32, &hdr);
    const char *p = write_tmp("ok.gguf", g.b, g.n);
    kvq_model m;
    char why[512];
    ck_assert_msg(kvq_model_load(p, &m, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert(m.cfg.head_dim == 16 && m.cfg.tied_embeddings && m.lm_head == m.tok_embed);
    /* attn_q row 1 of head 0 is the file's row 2 (rotate-half order); row 8 is the file's row 1. */
    const kvq_gguf_tensor *t;
    kvq_gguf *gg;
    ck_assert(kvq_gguf_parse(g.b, g.n, "ok", &gg, why, sizeof why) == KVQ_OK);
    t = kvq_gguf_find_tensor(gg, "blk.0.attn_q.weight");
    ck_assert(!memcmp(m.layers[0].wq + 32, (const float *)t->data + 2 * 32, 32 * sizeof(float)));
    ck_assert(!memcmp(m.layers[0].wq + 8 * 32, (const float *)t->data + 1 * 32, 32 * sizeof(float)));
    ck_assert(!memcmp(m.layers[0].wv, kvq_gguf_find_tensor(gg, "blk.0.attn_v.weight")->data, 16 * 32 * 4));
    kvq_gguf_close(gg);
    kvq_model_free(&m);
    free(g.b);
    spec saved[N_SPEC];
    memcpy(saved, model_spec, sizeof saved);
    model_spec[0].type = KVQ_GGML_Q8_0;
    model_spec[2].type = KVQ_GGML_Q4_0;
    model_spec[7].type = KVQ_GGML_Q4_1;
    model_spec[8].type = KVQ_GGML_F16;
    model_spec[4].type = KVQ_GGML_BF16;
    g = build_model(NULL, "llama", 1, 32, &hdr);
    p = write_tmp("mixed.gguf", g.b, g.n);
    ck_assert_msg(kvq_model_load(p, &m, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_str_eq(m.dtype, "Q8_0+F32+Q4_0+BF16+Q4_1+F16");
    kvq_model_free(&m);
    free(g.b);
    model_spec[9].type = 9;   /* Q8_1: parsed, not dequantized */
    g = build_model(NULL, "llama", 1, 32, &hdr);
    p = write_tmp("q8_1.gguf", g.b, g.n);
    ck_assert_int_eq(load_err(p, "blk.0.ffn_down.weight"), KVQ_ERR_DTYPE);
    load_err(p, "Q8_1");
    memcpy(model_spec, saved, sizeof saved);
    free(g.b);
}
END_TEST

START_TEST(test_synthetic_broken) {
    size_t hdr;
    gbuf g = build_model("blk.0.ffn_up.weight", "llama", 1, 32, &hdr);
    const char *p = write_tmp("missing.gguf", g.b, g.n);
    ck_assert_int_eq(load_err(p, "blk.0.ffn_up.weight"), KVQ_ERR_MISSING);
    load_err(p, "missing.gguf");
    free(g.b);
    g = build_model(NULL, "llama", 2, 32, &hdr);   /* config says 2 layers, file has 1 */
    ck_assert_int_eq(load_err(write_tmp("layers.gguf", g.b, g.n), "blk.1.attn_norm.weight"), KVQ_ERR_MISSING);
    free(g.b);
    g = build_model(NULL, "llama", 1, 48, &hdr);   /* hidden disagrees with every tensor */
    ck_assert_int_eq(load_err(write_tmp("shape.gguf", g.b, g.n), "token_embd.weight"), KVQ_ERR_SHAPE);
    free(g.b);
    g = build_model(NULL, "llama", 1, 0x7FFFFFFF, &hdr);
    ck_assert_int_eq(load_err(write_tmp("huge.gguf", g.b, g.n), "hidden size"), KVQ_ERR_SHAPE);
    free(g.b);
    g = build_model(NULL, "llama", 0xFFFFFFFF, 32, &hdr);
    ck_assert_int_eq(load_err(write_tmp("count.gguf", g.b, g.n), "llama.block_count"), KVQ_ERR_FORMAT);
    free(g.b);
    g = build_model(NULL, "gpt2", 1, 32, &hdr);
    ck_assert_int_eq(load_err(write_tmp("arch.gguf", g.b, g.n), "gpt2"), KVQ_ERR_UNSUPPORTED);
    free(g.b);
}
END_TEST

/* XOR every header byte in turn: load must succeed or fail cleanly, never crash. */
START_TEST(test_synthetic_flips) {
    size_t hdr;
    gbuf g = build_model(NULL, "llama", 1, 32, &hdr);
    int rejected = 0;
    const char *p = write_tmp("flip.gguf", g.b, g.n);
    FILE *f = fopen(p, "r+b");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < hdr; i++) {
        unsigned char flipped = g.b[i] ^ 0xFF;
        ck_assert(fseek(f, (long)i, SEEK_SET) == 0 && fwrite(&flipped, 1, 1, f) == 1 && fflush(f) == 0);
        kvq_model m;
        char why[512] = "";
        kvq_status st = kvq_model_load(p, &m, why, sizeof why);
        if (st) {
            rejected++;
            ck_assert_msg(strstr(why, "flip.gguf") != NULL, "byte %zu: message names the file: %s", i, why);
        } else {
            kvq_model_free(&m);
        }
        ck_assert(fseek(f, (long)i, SEEK_SET) == 0 && fwrite(&g.b[i], 1, 1, f) == 1 && fflush(f) == 0);
    }
    fclose(f);
    ck_assert_msg(rejected > (int)hdr / 2, "only %d of %zu header flips rejected", rejected, hdr);
    free(g.b);
}
END_TEST

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert(b && fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

/* Prefixes of a real file at ~100 offsets (denser at the start) must all be rejected. */
static void truncations(const char *rel, const char *tmpname) {
    const char *src = kvq_test_shared(rel);
    KVQ_SKIP_IF_MISSING(src, rel);
    size_t n;
    unsigned char *b = slurp(src, &n);
    for (size_t len = 0; len < n; len = len < 64 ? len + 1 : len + n / 40 + 1) {
        const char *p = write_tmp(tmpname, b, len);
        load_err(p, tmpname);
    }
    load_err(write_tmp(tmpname, b, n - 1), tmpname);
    unlink(write_tmp(tmpname, "", 0));
    free(b);
}

START_TEST(test_truncated_bin) { truncations("models/stories260K/stories260K.bin", "trunc.bin"); }
END_TEST
START_TEST(test_truncated_gguf) { truncations("models/stories260K/stories260K.gguf", "trunc.gguf"); }
END_TEST

START_TEST(test_bin_header) {
    const char *src = kvq_test_shared("models/stories260K/stories260K.bin");
    KVQ_SKIP_IF_MISSING(src, "models/stories260K/stories260K.bin");
    size_t n;
    unsigned char *b = slurp(src, &n);
    int32_t h[7];
    memcpy(h, b, sizeof h);
    int32_t v = -512;                    /* untied: the file lacks wcls */
    memcpy(b + 20, &v, 4);
    ck_assert_int_eq(load_err(write_tmp("untied.bin", b, n), "wcls"), KVQ_ERR_TRUNCATED);
    v = 0x40000000;                      /* absurd vocab */
    memcpy(b + 20, &v, 4);
    ck_assert_int_eq(load_err(write_tmp("vocab.bin", b, n), "vocab"), KVQ_ERR_SHAPE);
    memcpy(b, h, sizeof h);
    v = 7;                               /* 64 % 7 != 0 */
    memcpy(b + 12, &v, 4);
    load_err(write_tmp("heads.bin", b, n), "heads.bin");
    memcpy(b, h, sizeof h);
    unsigned char *big = malloc(n + 4);
    memcpy(big, b, n);
    memset(big + n, 0, 4);
    ck_assert_int_eq(load_err(write_tmp("long.bin", big, n + 4), "implies"), KVQ_ERR_SHAPE);
    free(big);
    free(b);
    const char *made[] = {"untied.bin", "vocab.bin", "heads.bin", "long.bin"};
    for (int i = 0; i < 4; i++) unlink(write_tmp(made[i], "", 0));
}
END_TEST

/* An hf/ directory in the temp dir: the shared model.safetensors (or an edited copy) plus a config. */
static const char *hf_dir(const char *name, const char *config, const unsigned char *st, size_t st_len) {
    static char dir[1024];
    char path[1200];
    snprintf(dir, sizeof dir, "%s/%s", kvq_test_tmpdir(), name);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    ck_assert(f && fputs(config, f) >= 0 && fclose(f) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    ck_assert(f && fwrite(st, 1, st_len, f) == st_len && fclose(f) == 0);
    return dir;
}

static void remove_hf_dir(const char *name) {
    char path[1200];
    const char *files[] = {"config.json", "model.safetensors", ""};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", kvq_test_tmpdir(), name, files[i]);
        i < 2 ? unlink(path) : rmdir(path);
    }
}

static char *edit(const char *s, const char *from, const char *to) {
    const char *p = strstr(s, from);
    ck_assert_msg(p != NULL, "'%s' not found", from);
    char *out = malloc(strlen(s) + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
    return out;
}

START_TEST(test_hf_broken) {
    const char *cp = kvq_test_shared("models/stories260K/hf/config.json");
    KVQ_SKIP_IF_MISSING(cp, "models/stories260K/hf/config.json");
    size_t cn, sn;
    unsigned char *cfg_raw = slurp(cp, &cn);
    char *cfg = calloc(1, cn + 1);
    memcpy(cfg, cfg_raw, cn);
    unsigned char *st = slurp(kvq_test_shared("models/stories260K/hf/model.safetensors"), &sn);
    struct { const char *from, *to, *needle; kvq_status want; } cases[] = {
        {"\"num_hidden_layers\": 5", "\"num_hidden_layers\": 6", "model.layers.5.input_layernorm.weight", KVQ_ERR_MISSING},
        {"\"intermediate_size\": 172", "\"intermediate_size\": 173", "mlp.gate_proj.weight", KVQ_ERR_SHAPE},
        {"\"vocab_size\": 512", "\"vocab_size\": 1e12", "vocab_size", KVQ_ERR_FORMAT},
        {"\"vocab_size\": 512", "\"vocab_size\": 99999999", "vocab", KVQ_ERR_SHAPE},
        {"\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "gpt2", KVQ_ERR_UNSUPPORTED},
        {"\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", "lm_head.weight", KVQ_ERR_MISSING},
        {"\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"", "rope_type", KVQ_ERR_UNSUPPORTED},
        {"\"hidden_size\": 64,", "", "hidden_size", KVQ_ERR_MISSING},
        {"{", "[", "config.json", KVQ_ERR_FORMAT}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *c = edit(cfg, cases[i].from, cases[i].to);
        kvq_status got = load_err(hf_dir("hfbad", c, st, sn), cases[i].needle);
        ck_assert_msg(got == cases[i].want, "case %zu: %s", i, kvq_status_name(got));
        free(c);
    }
    /* Safetensors header edited in place (same length): a dtype the loader does not take. */
    char *hdr = calloc(1, 4096);
    memcpy(hdr, st + 8, 4000);
    char *e = strstr(hdr, "\"F32\"");
    ck_assert_ptr_nonnull(e);
    size_t at = (size_t)(e - hdr) + 8;
    memcpy(st + at, "\"I32\"", 5);
    ck_assert_int_eq(load_err(hf_dir("hfdtype", cfg, st, sn), "I32"), KVQ_ERR_DTYPE);
    memcpy(st + at, "\"F32\"", 5);
    ck_assert_int_eq(load_err(hf_dir("hftrunc", cfg, st, sn - 4), "model.safetensors"), KVQ_ERR_BOUNDS);
    remove_hf_dir("hfbad");
    remove_hf_dir("hfdtype");
    remove_hf_dir("hftrunc");
    free(hdr);
    free(st);
    free(cfg);
    free(cfg_raw);
}
END_TEST

START_TEST(test_hf_index) {
    const char *cp = kvq_test_shared("models/stories260K/hf/config.json");
    KVQ_SKIP_IF_MISSING(cp, "models/stories260K/hf/config.json");
    size_t cn, sn;
    unsigned char *cfg_raw = slurp(cp, &cn);
    char *cfg = calloc(1, cn + 1);
    memcpy(cfg, cfg_raw, cn);
    unsigned char *st = slurp(kvq_test_shared("models/stories260K/hf/model.safetensors"), &sn);
    const char *dir = hf_dir("hfidx", cfg, st, sn);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    const char *idx[] = {"{\"weight_map\": {\"model.embed_tokens.weight\": \"../x.safetensors\"}}",
                         "{\"weight_map\": {\"model.embed_tokens.weight\": \"model.safetensors\"}}",
                         "{\"metadata\": {}}"};
    const char *needle[] = {"../x.safetensors", "model.layers.0.input_layernorm.weight", "weight_map"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(path, "wb");
        ck_assert(f && fputs(idx[i], f) >= 0 && fclose(f) == 0);
        load_err(dir, needle[i]);
    }
    unlink(path);
    remove_hf_dir("hfidx");
    free(st);
    free(cfg);
    free(cfg_raw);
}
END_TEST

START_TEST(test_not_a_model) {
    load_err("/nonexistent/model", "/nonexistent/model");
    const char *st = kvq_test_shared("models/stories260K/hf/model.safetensors");
    if (st) ck_assert_int_eq(load_err(st, "directory"), KVQ_ERR_ARG);
    const char *p = write_tmp("empty.bin", "", 0);
    ck_assert_int_eq(load_err(p, "empty.bin"), KVQ_ERR_TRUNCATED);
    p = write_tmp("ak42.bin", "ak42\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 28);
    ck_assert_int_eq(load_err(p, "ak42"), KVQ_ERR_UNSUPPORTED);
}
END_TEST

static Suite *bad_suite(void) {
    Suite *s = suite_create("model_bad");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_synthetic_ok_and_mixed);
    tcase_add_test(tc, test_synthetic_broken);
    tcase_add_test(tc, test_synthetic_flips);
    tcase_add_test(tc, test_truncated_bin);
    tcase_add_test(tc, test_truncated_gguf);
    tcase_add_test(tc, test_bin_header);
    tcase_add_test(tc, test_hf_broken);
    tcase_add_test(tc, test_hf_index);
    tcase_add_test(tc, test_not_a_model);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(bad_suite)
