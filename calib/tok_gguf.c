/* tok_gguf.c — the vocabulary embedded in a GGUF file (read with calib/gguf.h):
 *   tokenizer.ggml.model "llama": SentencePiece (tokens, scores, token_type; spaces -> "▁", dummy
 *     prefix unless add_space_prefix is false, merges by score, <0xXX> byte fallback);
 *   tokenizer.ggml.model "gpt2": byte-level BPE (tokens, merges) with the pre-tokenizer named by
 *     tokenizer.ggml.pre: "gpt-2" (GPT-2 split) or "smollm" (each digit alone, then GPT-2 split).
 * Control, user-defined and unknown tokens are split out of the text first, as llama.cpp does with
 * parse_special. Other models and pre-tokenizers are rejected. Not a GGUF parser. */
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "tok_internal.h"

#define FAIL(st, ...) kvq_tok_fail(why, why_len, st, __VA_ARGS__)

static int str_is(const char *s, size_t len, const char *lit) {
    return len == strlen(lit) && !memcmp(s, lit, len);
}

static kvq_status read_tokens(kvq_tokenizer *t, const kvq_gguf *g, int spm, const char *name,
                              char *why, size_t why_len) {
    const kvq_gguf_kv *tok, *sc = NULL, *ty = NULL;
    kvq_status st = kvq_gguf_get_array(g, "tokenizer.ggml.tokens", KVQ_GGUF_STRING, &tok);
    if (st) return FAIL(st, "%s: tokenizer.ggml.tokens: %s", name, kvq_status_message(st));
    if (tok->n == 0 || tok->n > (1u << 24)) return FAIL(KVQ_ERR_FORMAT, "%s: %llu tokens", name, (unsigned long long)tok->n);
    if (spm && (st = kvq_gguf_get_array(g, "tokenizer.ggml.scores", KVQ_GGUF_FLOAT32, &sc)))
        return FAIL(st, "%s: tokenizer.ggml.scores: %s", name, kvq_status_message(st));
    if (kvq_gguf_find(g, "tokenizer.ggml.token_type") &&
        (st = kvq_gguf_get_array(g, "tokenizer.ggml.token_type", KVQ_GGUF_INT32, &ty)))
        return FAIL(st, "%s: tokenizer.ggml.token_type: %s", name, kvq_status_message(st));
    if ((sc && sc->n != tok->n) || (ty && ty->n != tok->n))
        return FAIL(KVQ_ERR_SHAPE, "%s: %llu tokens but %llu scores / %llu types", name,
                    (unsigned long long)tok->n, (unsigned long long)(sc ? sc->n : 0),
                    (unsigned long long)(ty ? ty->n : 0));
    if ((st = kvq_tok_alloc(t, (int32_t)tok->n, spm, 1))) return FAIL(st, "%s: %s", name, kvq_status_message(st));
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s;
        size_t len;
        kvq_gguf_arr_str(tok, (uint64_t)id, &s, &len);
        if ((st = kvq_tok_set_piece(t, id, s, len))) return FAIL(st, "%s: token %d", name, (int)id);
        int32_t type = ty ? kvq_gguf_arr_i32(ty, (uint64_t)id) : KVQ_TOKT_NORMAL;
        if (type < 0 || type > KVQ_TOKT_BYTE) return FAIL(KVQ_ERR_FORMAT, "%s: token %d has type %d", name, (int)id, (int)type);
        t->type[id] = (uint8_t)(type ? type : KVQ_TOKT_NORMAL);
        if (sc) {
            t->score[id] = kvq_gguf_arr_f32(sc, (uint64_t)id);
            if (t->score[id] != t->score[id]) return FAIL(KVQ_ERR_NONFINITE, "%s: token %d has a NaN score", name, (int)id);
        }
    }
    if ((st = kvq_tok_build_map(t))) return FAIL(st, "%s: %s", name, kvq_status_message(st));
    for (int32_t id = 0; id < t->n_vocab; id++) {       /* split out before the model */
        uint8_t k = t->type[id];
        if ((k == KVQ_TOKT_CONTROL || k == KVQ_TOKT_USER || k == KVQ_TOKT_UNKNOWN) && t->len[id] &&
            (st = kvq_tok_add_special(t, id, kvq_tok_piece(t, id), t->len[id], 0)))
            return FAIL(st, "%s: %s", name, kvq_status_message(st));
    }
    return KVQ_OK;
}

static kvq_status read_merges(kvq_tokenizer *t, const kvq_gguf *g, const char *name, char *why,
                              size_t why_len) {
    const kvq_gguf_kv *m;
    kvq_status st = kvq_gguf_get_array(g, "tokenizer.ggml.merges", KVQ_GGUF_STRING, &m);
    if (st) return FAIL(st, "%s: tokenizer.ggml.merges: %s", name, kvq_status_message(st));
    if (m->n > INT32_MAX || (st = kvq_tok_pairmap_init(&t->merges, (size_t)m->n)))
        return FAIL(st ? st : KVQ_ERR_OVERFLOW, "%s: %llu merges", name, (unsigned long long)m->n);
    for (uint64_t i = 0; i < m->n; i++) {
        const char *s, *sp;
        size_t len;
        kvq_gguf_arr_str(m, i, &s, &len);
        sp = len ? memchr(s, ' ', len) : NULL;
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
            return FAIL(KVQ_ERR_FORMAT, "%s: merge %llu is not two tokens separated by one space", name, (unsigned long long)i);
        size_t al = (size_t)(sp - s);
        int32_t a = kvq_tok_lookup(t, s, al), b = kvq_tok_lookup(t, sp + 1, len - al - 1), r = -1;
        if (a >= 0 && b >= 0) {      /* the result text is a's text followed by b's */
            char buf[512];
            size_t bl = len - al - 1;
            if (len - 1 <= sizeof buf) {
                memcpy(buf, s, al);
                memcpy(buf + al, sp + 1, bl);
                r = kvq_tok_lookup(t, buf, al + bl);
            }
        }
        if (r < 0) return FAIL(KVQ_ERR_FORMAT, "%s: merge %llu uses or makes a token that is not in "
                               "the vocabulary", name, (unsigned long long)i);
        kvq_tok_pairmap_put(&t->merges, a, b, (int32_t)i, r);
    }
    return KVQ_OK;
}

/* Optional u32 id key; -1 when absent or out of range. */
static int32_t token_id(const kvq_gguf *g, const char *key, int32_t dflt, int32_t n_vocab) {
    uint32_t v;
    if (kvq_gguf_get_u32(g, key, &v)) return dflt;
    return v < (uint32_t)n_vocab ? (int32_t)v : -1;
}

static kvq_status setup_gpt2(kvq_tokenizer *t, const kvq_gguf *g, const char *name, char *why,
                             size_t why_len) {
    const char *pre = "";
    size_t pl = 0;
    kvq_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pl);
    if (str_is(pre, pl, "smollm")) t->split_digits = 1;
    else if (!str_is(pre, pl, "gpt-2"))
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre '%.*s' is not supported (gpt-2, "
                    "smollm are)", name, (int)(pl > 40 ? 40 : pl), pre);
    t->model = KVQ_TOK_MODEL_BPE;
    t->byte_level = 1;
    t->split = KVQ_TOK_SPLIT_GPT2;
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t n = kvq_utf8_put(kvq_tok_byte_char((unsigned char)b), s);
        t->byte_tok[b] = kvq_tok_lookup(t, s, n);
        /* Real vocabularies may lack rare control bytes (SmolLM2 lacks 0x04): such a byte becomes
         * unk or is dropped, as in HF. Lacking printable ASCII means it is not byte-level at all. */
        if (t->byte_tok[b] < 0 && b >= 0x20 && b < 0x7F)
            return FAIL(KVQ_ERR_FORMAT, "%s: byte-level vocabulary lacks the token of byte 0x%02X", name, b);
    }
    return read_merges(t, g, name, why, why_len);
}

kvq_status kvq_tok_load_gguf(kvq_tokenizer *t, const char *path, char *why, size_t why_len) {
    kvq_gguf *g = NULL;
    kvq_status st = kvq_gguf_open(path, &g, why, why_len);
    if (st) return st;
    const char *model = "";
    size_t ml = 0;
    int flag;
    if (kvq_gguf_get_str(g, "tokenizer.ggml.model", &model, &ml)) {
        st = FAIL(KVQ_ERR_MISSING, "%s: no embedded vocabulary (tokenizer.ggml.model)", path);
    } else if (str_is(model, ml, "llama")) {
        st = read_tokens(t, g, 1, path, why, why_len);
        t->model = KVQ_TOK_MODEL_SPM;
        memcpy(t->space_sym, "\xE2\x96\x81", 4);          /* U+2581 */
        t->spm_replace = 1;
        t->spm_prefix = kvq_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &flag) || flag;
        if (!st) kvq_tok_find_byte_tokens(t);
    } else if (str_is(model, ml, "gpt2")) {
        st = read_tokens(t, g, 0, path, why, why_len);
        if (!st) st = setup_gpt2(t, g, path, why, why_len);
    } else {
        st = FAIL(KVQ_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (llama, "
                  "gpt2 are)", path, (int)(ml > 40 ? 40 : ml), model);
    }
    if (!st) {
        int spm = t->model == KVQ_TOK_MODEL_SPM;
        t->bos = token_id(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, t->n_vocab);
        t->eos = token_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, t->n_vocab);
        t->unk = token_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, t->n_vocab);
        t->adds_bos = kvq_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag) ? spm : flag;
        if ((st = kvq_tok_finish(t))) FAIL(st, "%s: %s", path, kvq_status_message(st));
        snprintf(t->desc, sizeof t->desc, "GGUF %s vocabulary, %d tokens", spm ? "llama (SentencePiece)"
                 : "gpt2 (byte-level BPE)", (int)t->n_vocab);
    }
    kvq_gguf_close(g);
    return st;
}
