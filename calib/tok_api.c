/* tok_api.c — the public tokenizer API (tokenizer.h): the encoding pipeline shared by every format
 *   text -> split out raw added/special tokens -> normalize each piece (NFC, "▁" prefix/replace)
 *        -> split out normalized added tokens -> pre-tokenize (byte-level BPE: digits, GPT-2 split,
 *           or the Llama-3 / Qwen2 Split)
 *        -> model (BPE merges by rank, or SentencePiece merges by score)
 * (the order of HF tokenizers' AddedVocabulary + Normalizer + PreTokenizer + Model), decoding,
 * accessors. Not the file loaders (tok_load.c, tok_hfjson.c, tok_spm.c, tok_gguf.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

kvq_status kvq_tok_fail(char *why, size_t why_len, kvq_status st, const char *fmt, ...) {
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- normalization ---- */
kvq_status kvq_tok_normalize(const kvq_tokenizer *t, const char *s, size_t len, char **out,
                             size_t *out_len) {
    *out = NULL;
    char *nfc = NULL;
    size_t nl = len;
    if (t->nfc) {
        int simple = 1;   /* text below U+0300 is NFC already (checked by the table generator) */
        for (size_t i = 0; i < len && simple; i++) simple = (unsigned char)s[i] < 0xCC;
        if (!simple) {
            kvq_status st = kvq_uni_nfc(s, len, &nfc, &nl);
            if (st) return st;
            s = nfc;
        }
    }
    if (!(t->spm_prefix && nl) && !t->spm_replace) {
        if (nfc) { *out = nfc; *out_len = nl; }
        return KVQ_OK;
    }
    size_t sl = strlen(t->space_sym);
    if (nl > (SIZE_MAX - sl) / sl) { free(nfc); return KVQ_ERR_OVERFLOW; }
    char *o = malloc(sl * (nl + 1) + 1);
    if (!o) { free(nfc); return KVQ_ERR_NOMEM; }
    size_t w = 0;
    if (t->spm_prefix && nl) { memcpy(o, t->space_sym, sl); w = sl; }
    for (size_t i = 0; i < nl; i++) {
        if (t->spm_replace && s[i] == ' ') { memcpy(o + w, t->space_sym, sl); w += sl; }
        else o[w++] = s[i];
    }
    free(nfc);
    *out = o;
    *out_len = w;
    return KVQ_OK;
}

/* SPM: can merges of adjacent symbols, starting from single characters, make piece id? Only if
 * it is one character or splits into two pieces that can be made (shorter ones, decided first). */
static int spm_formable(const kvq_tokenizer *t, const uint8_t *made, int32_t id) {
    const char *p = kvq_tok_piece(t, id);
    uint32_t len = t->len[id], cl;
    uint32_t cp;
    cl = (uint32_t)kvq_utf8_next(p, len, &cp);
    if (cl == len) return 1;
    if (t->type && !(t->type[id] == KVQ_TOKT_NORMAL || t->type[id] == KVQ_TOKT_USER) && !t->spm_any_piece)
        return 0;
    for (uint32_t k = cl; k < len; k += cl) {
        int32_t a = kvq_tok_lookup(t, p, k), b = kvq_tok_lookup(t, p + k, len - k);
        if (a >= 0 && b >= 0 && made[a] && made[b]) return 1;
        cl = (uint32_t)kvq_utf8_next(p + k, len - k, &cp);
    }
    return 0;
}

static const kvq_tokenizer *by_len_tok;   /* qsort has no context argument in C11 */
static int by_len(const void *a, const void *b) {
    uint32_t x = by_len_tok->len[*(const int32_t *)a], y = by_len_tok->len[*(const int32_t *)b];
    return (x > y) - (x < y);
}

/* Barrier bytes: ASCII bytes that no merge can put into a longer symbol (BPE: in no merge result;
 * SPM: in no piece that merges can make). A BPE barrier must also be a token itself, so that no
 * unk is fused across it, and ignore_merges (whole-word lookups) turns barriers off. */
static kvq_status find_barriers(kvq_tokenizer *t) {
    uint8_t *made = calloc((size_t)t->n_vocab, 1);
    if (!made) return KVQ_ERR_NOMEM;
    if (t->model == KVQ_TOK_MODEL_BPE) {
        for (size_t i = 0; i < t->merges.cap; i++)
            if (t->merges.slot[i].key != UINT64_MAX) made[t->merges.slot[i].id] = 1;
    } else {   /* shortest pieces first: their halves are decided before them */
        int32_t *order = malloc((size_t)t->n_vocab * sizeof *order);
        if (!order) { free(made); return KVQ_ERR_NOMEM; }
        size_t n = 0;
        for (int32_t id = 0; id < t->n_vocab; id++)
            if (t->len[id] != UINT32_MAX) order[n++] = id;
        by_len_tok = t;
        qsort(order, n, sizeof *order, by_len);
        for (size_t i = 0; i < n; i++) made[order[i]] = (uint8_t)spm_formable(t, made, order[i]);
        free(order);
    }
    memset(t->barrier, 1, sizeof t->barrier);
    for (int32_t id = 0; id < t->n_vocab; id++)
        for (uint32_t k = 0; made[id] && t->len[id] > 1 && k < t->len[id]; k++) {
            unsigned char c = (unsigned char)t->arena[t->off[id] + k];
            if (c < 128) t->barrier[c] = 0;
        }
    free(made);
    if (t->model == KVQ_TOK_MODEL_BPE)
        for (int c = 0; c < 128; c++) {
            char ch = (char)c;
            t->barrier[c] &= (uint8_t)(!t->ignore_merges && kvq_tok_lookup(t, &ch, 1) >= 0);
        }
    return KVQ_OK;
}

kvq_status kvq_tok_finish(kvq_tokenizer *t) {
    memset(t->added_first, 0, sizeof t->added_first);
    for (size_t i = 0; i < t->n_added; i++) {
        kvq_tok_added *a = &t->added[i];
        if (a->normalized) {
            char *n;
            size_t nl;
            kvq_status st = kvq_tok_normalize(t, t->arena + a->off, a->len, &n, &nl);
            if (st) return st;
            if (n) {
                uint32_t off;
                st = kvq_tok_arena_put(t, n, nl, &off);
                free(n);
                if (st) return st;
                a->off = off;
                a->len = (uint32_t)nl;
            }
        }
        if (t->added[i].len) t->added_first[(unsigned char)t->arena[t->added[i].off]] |= (uint8_t)(1u << t->added[i].normalized);
    }
    return find_barriers(t);
}

/* ---- encoding ---- */
typedef struct {
    const kvq_tokenizer *t;
    kvq_tok_scratch sc;
    kvq_tok_ids out;
} encoder;

static kvq_status bytelevel_segment(encoder *e, const char *s, size_t len) {
    const kvq_tokenizer *t = e->t;
    kvq_status st = KVQ_OK;
    char *tmp = NULL;
    if (t->add_prefix_space && len && s[0] != ' ') {
        if (!(tmp = malloc(len + 1))) return KVQ_ERR_NOMEM;
        tmp[0] = ' ';
        memcpy(tmp + 1, s, len);
        s = tmp;
        len++;
    }
    for (size_t i = 0; i < len && !st;) {
        size_t n = t->split == KVQ_TOK_SPLIT_GPT2 ? kvq_gpt2_split_next(s + i, len - i) : len - i;
        st = kvq_tok_bpe_word(t, &e->sc, s + i, n, &e->out);
        i += n;
    }
    free(tmp);
    return st;
}

/* Pre-tokenize and encode one normalized piece that holds no added token. */
static kvq_status encode_text(encoder *e, const char *s, size_t len) {
    const kvq_tokenizer *t = e->t;
    if (!len) return KVQ_OK;
    if (!t->byte_level) {                     /* one long word: cut it at barrier bytes */
        kvq_status st = KVQ_OK;
        size_t start = 0;
        for (size_t i = 0; i <= len && !st; i++) {
            if (i < len && !((unsigned char)s[i] < 128 && t->barrier[(unsigned char)s[i]])) continue;
            size_t end = i < len ? i + 1 : len;
            st = t->model == KVQ_TOK_MODEL_SPM ? kvq_tok_spm_piece(t, &e->sc, s + start, end - start, &e->out)
                                               : kvq_tok_bpe_word(t, &e->sc, s + start, end - start, &e->out);
            start = end;
        }
        return st;
    }
    if (t->split == KVQ_TOK_SPLIT_LLAMA3 || t->split == KVQ_TOK_SPLIT_QWEN2) {
        int max_digits = t->split == KVQ_TOK_SPLIT_LLAMA3 ? 3 : 1;   /* Split, then ByteLevel */
        kvq_status st = KVQ_OK;                                       /* on each piece */
        for (size_t i = 0; i < len && !st;) {
            size_t n = kvq_llama3_split_next(s + i, len - i, max_digits);
            st = bytelevel_segment(e, s + i, n);
            i += n;
        }
        return st;
    }
    if (!t->split_digits) return bytelevel_segment(e, s, len);
    size_t start = 0;                         /* Digits(individual_digits): each digit alone */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = kvq_utf8_next(s + i, len - i, &cp);
        if (kvq_uni_is_number(cp)) {
            kvq_status st = bytelevel_segment(e, s + start, i - start);
            if (!st) st = bytelevel_segment(e, s + i, n);
            if (st) return st;
            start = i + n;
        }
        i += n;
    }
    return bytelevel_segment(e, s + start, len - start);
}

static kvq_status split_added(encoder *e, const char *s, size_t len, int normalized);

static kvq_status normalize_piece(encoder *e, const char *s, size_t len) {
    char *n;
    size_t nl;
    kvq_status st = kvq_tok_normalize(e->t, s, len, &n, &nl);
    if (st) return st;
    st = n ? split_added(e, n, nl, 1) : split_added(e, s, len, 1);
    free(n);
    return st;
}

/* Leftmost-longest matching of the added tokens of one kind (raw or normalized); the text between
 * matches goes on to the next stage. */
static kvq_status split_added(encoder *e, const char *s, size_t len, int normalized) {
    const kvq_tokenizer *t = e->t;
    uint8_t bit = (uint8_t)(1u << normalized);
    size_t start = 0;
    kvq_status st;
    for (size_t i = 0; i < len;) {
        const kvq_tok_added *best = NULL;
        if (t->added_first[(unsigned char)s[i]] & bit) {
            for (size_t k = 0; k < t->n_added; k++) {
                const kvq_tok_added *a = &t->added[k];
                if (a->normalized == normalized && a->len <= len - i && (!best || a->len > best->len) &&
                    !memcmp(s + i, t->arena + a->off, a->len))
                    best = a;
            }
        }
        if (!best) { i++; continue; }
        st = normalized ? encode_text(e, s + start, i - start) : normalize_piece(e, s + start, i - start);
        if (st || (st = kvq_tok_ids_push(&e->out, best->id))) return st;
        i += best->len;
        start = i;
    }
    return normalized ? encode_text(e, s + start, len - start) : normalize_piece(e, s + start, len - start);
}

kvq_status kvq_tokenize(const kvq_tokenizer *tok, const char *text, size_t len, int add_bos,
                        int32_t **ids, size_t *n, char *why, size_t why_len) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!tok || !ids || !n || (!text && len))
        return kvq_tok_fail(why, why_len, KVQ_ERR_ARG, "kvq_tokenize: NULL argument");
    encoder e = {.t = tok};
    kvq_status st = KVQ_OK;
    if (add_bos) {
        if (tok->bos < 0) return kvq_tok_fail(why, why_len, KVQ_ERR_MISSING, "%s has no BOS token", tok->desc);
        st = kvq_tok_ids_push(&e.out, tok->bos);
    }
    if (!st) st = split_added(&e, text ? text : "", len, 0);
    if (!st && !e.out.v) st = kvq_tok_ids_push(&e.out, 0), e.out.n = 0;   /* never a NULL array */
    kvq_tok_scratch_free(&e.sc);
    if (st) {
        free(e.out.v);
        return kvq_tok_fail(why, why_len, st, "tokenizing %zu bytes: %s", len, kvq_status_message(st));
    }
    *ids = e.out.v;
    *n = e.out.n;
    return KVQ_OK;
}

/* ---- decoding ---- */
static int is_special(const kvq_tokenizer *t, int32_t id) {
    return t->type && (t->type[id] == KVQ_TOKT_CONTROL || t->type[id] == KVQ_TOKT_USER ||
                       t->type[id] == KVQ_TOKT_UNKNOWN);
}

/* Byte of a byte token (byte fallback) or -1. */
static int byte_of(const kvq_tokenizer *t, int32_t id) {
    if (t->byte_level || t->len[id] != 6) return -1;
    const char *p = kvq_tok_piece(t, id);
    int b = (int)strtol(p + 3, NULL, 16);
    return p[0] == '<' && p[1] == '0' && p[2] == 'x' && b >= 0 && b < 256 && t->byte_tok[b] == id ? b : -1;
}

/* Append piece `id` decoded; o has room for 4 bytes per piece byte. */
static size_t decode_piece(const kvq_tokenizer *t, int32_t id, char *o) {
    const char *p = kvq_tok_piece(t, id);
    size_t len = t->len[id], w = 0;
    int b = byte_of(t, id);
    if (b >= 0) { o[0] = (char)b; return 1; }
    if (is_special(t, id)) { memcpy(o, p, len); return len; }
    size_t sl = strlen(t->space_sym);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = kvq_utf8_next(p + i, len - i, &cp);
        if (t->byte_level && cp < 0x144) {        /* the inverse of the GPT-2 byte map */
            int k = 0;
            while (k < 256 && kvq_tok_byte_char((unsigned char)k) != cp) k++;
            if (k < 256) { o[w++] = (char)k; i += n; continue; }
        }
        if (sl && (t->spm_replace || t->model == KVQ_TOK_MODEL_SPM) && len - i >= sl &&
            !memcmp(p + i, t->space_sym, sl)) {
            o[w++] = ' ';
            i += sl;
            continue;
        }
        memcpy(o + w, p + i, n);
        w += n;
        i += n;
    }
    return w;
}

kvq_status kvq_detokenize(const kvq_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                          size_t *len, char *why, size_t why_len) {
    if (text) *text = NULL;
    if (!tok || !text || !len || (!ids && n))
        return kvq_tok_fail(why, why_len, KVQ_ERR_ARG, "kvq_detokenize: NULL argument");
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab || tok->len[ids[i]] == UINT32_MAX)
            return kvq_tok_fail(why, why_len, KVQ_ERR_BOUNDS, "id %d at position %zu is not in the "
                                "vocabulary of %d ids", (int)ids[i], i, (int)tok->n_vocab);
        if (tok->len[ids[i]] > (SIZE_MAX - cap) / 4) return KVQ_ERR_OVERFLOW;
        cap += 4 * (size_t)tok->len[ids[i]];
    }
    char *o = malloc(cap);
    if (!o) return KVQ_ERR_NOMEM;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) w += decode_piece(tok, ids[i], o + w);
    if (tok->spm_prefix && w && o[0] == ' ') memmove(o, o + 1, --w);   /* the dummy prefix */
    o[w] = 0;
    *text = o;
    *len = w;
    return KVQ_OK;
}

/* ---- accessors ---- */
int32_t kvq_tokenizer_vocab_size(const kvq_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int32_t kvq_tokenizer_bos(const kvq_tokenizer *tok) { return tok ? tok->bos : -1; }
int32_t kvq_tokenizer_eos(const kvq_tokenizer *tok) { return tok ? tok->eos : -1; }
int kvq_tokenizer_adds_bos(const kvq_tokenizer *tok) { return tok && tok->adds_bos && tok->bos >= 0; }
const char *kvq_tokenizer_describe(const kvq_tokenizer *tok) { return tok ? tok->desc : "(none)"; }

const char *kvq_tokenizer_piece(const kvq_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || id < 0 || id >= tok->n_vocab || tok->len[id] == UINT32_MAX) return NULL;
    if (len) *len = tok->len[id];
    return kvq_tok_piece(tok, id);
}

void kvq_tokenizer_free(kvq_tokenizer *tok) {
    if (!tok) return;
    free(tok->arena);
    free(tok->off);
    free(tok->len);
    free(tok->score);
    free(tok->type);
    free(tok->map.slot);
    free(tok->merges.slot);
    free(tok->added);
    free(tok);
}
