/* tok_spm.c — SentencePiece-style BPE by scores (llama2.c tokenizer.bin, GGUF "llama" vocabularies)
 * and the llama2.c tokenizer.bin reader. Encoding of one normalized piece (spaces already turned
 * into the space symbol, dummy prefix already added): start from the UTF-8 characters, repeatedly
 * merge the adjacent pair whose concatenation is a token with the highest score (leftmost on ties),
 * then emit each symbol's token, or its bytes' <0xXX> tokens, or unk.
 * Not the rank-ordered BPE of tokenizer.json files (tok_bpe.c). */
#include <stdio.h>
#include <string.h>

#include "tok_internal.h"

#define FAIL(st, ...) kvq_tok_fail(why, why_len, st, __VA_ARGS__)

/* Can merges form token id? llama2.c: any piece; SentencePiece: normal and user-defined ones. */
static int mergeable(const kvq_tokenizer *t, int32_t id) {
    return t->spm_any_piece || !t->type || t->type[id] == KVQ_TOKT_NORMAL || t->type[id] == KVQ_TOKT_USER;
}

static kvq_status try_pair(const kvq_tokenizer *t, kvq_tok_scratch *sc, const char *s, int32_t pos) {
    if (pos < 0) return KVQ_OK;
    int32_t nx = sc->sym[pos].next;
    if (nx < 0) return KVQ_OK;
    const kvq_tok_sym *a = &sc->sym[pos], *b = &sc->sym[nx];
    int32_t id = kvq_tok_lookup(t, s + a->start, a->len + b->len);
    if (id < 0 || !mergeable(t, id)) return KVQ_OK;
    kvq_tok_heapent e = {-(double)t->score[id], pos, (int32_t)a->len, (int32_t)b->len};
    return kvq_tok_heap_push(sc, e);
}

static kvq_status emit(const kvq_tokenizer *t, const char *s, size_t len, kvq_tok_ids *o) {
    int32_t id = kvq_tok_lookup(t, s, len);
    if (id >= 0) return kvq_tok_ids_push(o, id);
    for (size_t i = 0; i < len; i++) {                 /* byte fallback, else unk */
        int32_t b = t->byte_tok[(unsigned char)s[i]];
        kvq_status st = b >= 0 ? kvq_tok_ids_push(o, b) : t->unk >= 0 ? kvq_tok_ids_push(o, t->unk) : KVQ_OK;
        if (st) return st;
        if (b < 0) break;                              /* one unk for the whole symbol */
    }
    return KVQ_OK;
}

kvq_status kvq_tok_spm_piece(const kvq_tokenizer *t, kvq_tok_scratch *sc, const char *s,
                             size_t len, kvq_tok_ids *o) {
    if (!len) return KVQ_OK;
    if (len > INT32_MAX) return KVQ_ERR_OVERFLOW;
    kvq_status st = kvq_tok_scratch_reserve(sc, len, 0);
    if (st) return st;
    kvq_tok_sym *sym = sc->sym;
    int32_t n = 0;
    for (size_t i = 0; i < len; n++) {
        uint32_t cp;
        size_t cl = kvq_utf8_next(s + i, len - i, &cp);
        sym[n] = (kvq_tok_sym){0, n - 1, -1, (uint32_t)i, (uint32_t)cl};
        if (n) sym[n - 1].next = n;
        i += cl;
    }
    sc->heap_n = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        if ((st = try_pair(t, sc, s, i))) return st;
    while (sc->heap_n) {
        kvq_tok_heapent e = kvq_tok_heap_pop(sc);
        int32_t a = e.pos, b = sym[a].next;
        if ((int32_t)sym[a].len != e.a || b < 0 || (int32_t)sym[b].len != e.b) continue;  /* stale */
        sym[a].len += sym[b].len;
        sym[b].len = 0;
        sym[a].next = sym[b].next;
        if (sym[b].next >= 0) sym[sym[b].next].prev = a;
        if ((st = try_pair(t, sc, s, sym[a].prev)) || (st = try_pair(t, sc, s, a))) return st;
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if ((st = emit(t, s + sym[i].start, sym[i].len, o))) return st;
    return KVQ_OK;
}

/* ---- llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score,
 *      int32 len, len bytes (little-endian; "▁" stored as a plain space) ---- */
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

kvq_status kvq_tok_load_llama2c(kvq_tokenizer *t, const unsigned char *buf, size_t len,
                                const char *name, char *why, size_t why_len) {
    if (len < 4) return FAIL(KVQ_ERR_TRUNCATED, "%s: shorter than a llama2.c tokenizer header", name);
    uint32_t max_len = rd32(buf);
    if (max_len == 0 || max_len > 4096)
        return FAIL(KVQ_ERR_MAGIC, "%s: not a llama2.c tokenizer.bin (max_token_length %u)", name, max_len);
    size_t n = 0;                                   /* first pass: count and check the records */
    for (size_t p = 4; p < len; n++) {
        if (len - p < 8) return FAIL(KVQ_ERR_TRUNCATED, "%s: token %zu header cut at byte %zu", name, n, p);
        uint32_t l = rd32(buf + p + 4);
        if (l > max_len || l > len - p - 8)
            return FAIL(l > max_len ? KVQ_ERR_FORMAT : KVQ_ERR_TRUNCATED, "%s: token %zu at byte %zu has "
                        "length %u (max_token_length %u, %zu bytes left)", name, n, p, l, max_len, len - p - 8);
        p += 8 + l;
    }
    if (n == 0 || n > INT32_MAX) return FAIL(KVQ_ERR_FORMAT, "%s: no tokens", name);
    kvq_status st = kvq_tok_alloc(t, (int32_t)n, 1, 0);
    if (st) return FAIL(st, "%s: %s", name, kvq_status_message(st));
    size_t p = 4;
    for (int32_t id = 0; id < (int32_t)n; id++) {
        float score;
        uint32_t bits = rd32(buf + p), l = rd32(buf + p + 4);
        memcpy(&score, &bits, sizeof score);
        if (score != score) return FAIL(KVQ_ERR_NONFINITE, "%s: token %d has a NaN score", name, (int)id);
        t->score[id] = score;
        if ((st = kvq_tok_set_piece(t, id, (const char *)buf + p + 8, l))) return FAIL(st, "%s: token %d", name, (int)id);
        p += 8 + l;
    }
    if ((st = kvq_tok_build_map(t))) return FAIL(st, "%s: %s", name, kvq_status_message(st));
    kvq_tok_find_byte_tokens(t);
    t->model = KVQ_TOK_MODEL_SPM;
    memcpy(t->space_sym, " ", 2);
    t->spm_prefix = 1;
    t->spm_any_piece = 1;
    /* llama2.c's fixed ids (run.c); its exports spell BOS/EOS "\n<s>\n" and "\n</s>\n" */
    t->unk = 0;
    t->bos = n > 1 ? 1 : -1;
    t->eos = n > 2 ? 2 : -1;
    t->adds_bos = 1;                                /* llama2.c run.c encodes with bos=1 */
    if ((st = kvq_tok_finish(t))) return FAIL(st, "%s: %s", name, kvq_status_message(st));
    snprintf(t->desc, sizeof t->desc, "llama2.c tokenizer.bin (SentencePiece scores), %d tokens", (int)n);
    return KVQ_OK;
}
