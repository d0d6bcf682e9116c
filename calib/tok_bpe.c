/* tok_bpe.c — the BPE model of HF tokenizers: one pre-token becomes symbols (bytes for byte-level
 * BPE, characters otherwise, with byte fallback / unk), then the pair of adjacent symbols with the
 * lowest merge rank is merged, leftmost first on ties, until no pair has a merge. A heap of
 * candidate pairs with validity stamps keeps that O(n log n) per word.
 * Not the pre-tokenizer (tok_api.c) nor SentencePiece's score-ordered merges (tok_spm.c). */
#include <string.h>

#include "tok_internal.h"

static kvq_status push_pair(const kvq_tokenizer *t, kvq_tok_scratch *sc, int32_t pos) {
    if (pos < 0) return KVQ_OK;
    int32_t nx = sc->sym[pos].next;
    if (nx < 0) return KVQ_OK;
    const kvq_tok_pair *p = kvq_tok_pairmap_get(&t->merges, sc->sym[pos].id, sc->sym[nx].id);
    if (!p) return KVQ_OK;
    kvq_tok_heapent e = {(double)p->rank, pos, sc->sym[pos].id, sc->sym[nx].id};
    return kvq_tok_heap_push(sc, e);
}

/* Initial symbols of a character-level word; returns their count. Characters without a token
 * become their <0xXX> byte tokens (byte fallback), else unk (consecutive ones fused into one with
 * fuse_unk), else nothing. As in HF tokenizers, an unk is held back until the next character that
 * is a token (or the end), so byte-fallback tokens that follow it come out before it. */
static size_t char_symbols(const kvq_tokenizer *t, kvq_tok_sym *sym, const char *s, size_t len) {
    size_t n = 0;
    int pending_unk = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = kvq_utf8_next(s + i, len - i, &cp);
        int32_t id = kvq_tok_lookup(t, s + i, cl);
        int bytes_ok = t->byte_fallback;
        for (size_t k = 0; k < cl && bytes_ok; k++) bytes_ok = t->byte_tok[(unsigned char)s[i + k]] >= 0;
        if (id >= 0) {
            if (pending_unk) sym[n++].id = t->unk;
            pending_unk = 0;
            sym[n++].id = id;
        } else if (bytes_ok) {
            for (size_t k = 0; k < cl; k++) sym[n++].id = t->byte_tok[(unsigned char)s[i + k]];
        } else if (t->unk >= 0) {
            if (pending_unk && !t->fuse_unk) sym[n++].id = t->unk;
            pending_unk = 1;
        }
        i += cl;
    }
    if (pending_unk) sym[n++].id = t->unk;
    return n;
}

kvq_status kvq_tok_bpe_word(const kvq_tokenizer *t, kvq_tok_scratch *sc, const char *s,
                            size_t len, kvq_tok_ids *o) {
    if (!len) return KVQ_OK;
    if (len > SIZE_MAX / 4 || len > INT32_MAX) return KVQ_ERR_OVERFLOW;
    kvq_status st = kvq_tok_scratch_reserve(sc, len, 2 * len);
    if (st) return st;
    if (t->ignore_merges) {                     /* a word that is a token is taken whole */
        const char *w = s;
        size_t wl = len;
        if (t->byte_level) {
            wl = 0;
            for (size_t i = 0; i < len; i++) wl += kvq_utf8_put(kvq_tok_byte_char((unsigned char)s[i]), sc->buf + wl);
            w = sc->buf;
        }
        int32_t id = kvq_tok_lookup(t, w, wl);
        if (id >= 0) return kvq_tok_ids_push(o, id);
    }
    kvq_tok_sym *sym = sc->sym;
    size_t n;
    if (t->byte_level) {          /* a byte without a token -> unk, else dropped (as HF) */
        n = 0;
        for (size_t i = 0; i < len; i++) {
            int32_t id = t->byte_tok[(unsigned char)s[i]];
            if (id >= 0 || (id = t->unk) >= 0) sym[n++].id = id;
        }
    } else {
        n = char_symbols(t, sym, s, len);
    }
    for (size_t i = 0; i < n; i++) {
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    sc->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((st = push_pair(t, sc, (int32_t)i))) return st;
    while (sc->heap_n) {
        kvq_tok_heapent e = kvq_tok_heap_pop(sc);
        int32_t a = e.pos, b = sym[a].next;
        if (sym[a].id != e.a || b < 0 || sym[b].id != e.b) continue;   /* stale candidate */
        const kvq_tok_pair *p = kvq_tok_pairmap_get(&t->merges, e.a, e.b);
        sym[a].id = p->id;
        sym[b].id = -1;
        sym[a].next = sym[b].next;
        if (sym[b].next >= 0) sym[sym[b].next].prev = a;
        if ((st = push_pair(t, sc, sym[a].prev)) || (st = push_pair(t, sc, a))) return st;
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = sym[i].next)
        if ((st = kvq_tok_ids_push(o, sym[i].id))) return st;
    return KVQ_OK;
}
