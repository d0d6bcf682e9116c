/* tok_common.c — the tokenizer's storage and lookups: per-id piece texts in one arena, the
 * string->id and pair->merge hash maps, the id vector, the merge heap and the GPT-2 byte map.
 * Not the encoders (tok_bpe.c, tok_spm.c), the pipeline (tok_api.c) or the file loaders. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

kvq_status kvq_tok_ids_push(kvq_tok_ids *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 256;
        if (cap > SIZE_MAX / sizeof *o->v) return KVQ_ERR_OVERFLOW;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) return KVQ_ERR_NOMEM;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return KVQ_OK;
}

kvq_status kvq_tok_alloc(kvq_tokenizer *t, int32_t n_vocab, int with_scores, int with_types) {
    if (n_vocab <= 0) return KVQ_ERR_ARG;
    size_t n = (size_t)n_vocab;
    t->n_vocab = n_vocab;
    t->off = calloc(n, sizeof *t->off);
    t->len = malloc(n * sizeof *t->len);
    t->score = with_scores ? calloc(n, sizeof *t->score) : NULL;
    t->type = with_types ? calloc(n, sizeof *t->type) : NULL;
    if (!t->off || !t->len || (with_scores && !t->score) || (with_types && !t->type))
        return KVQ_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) t->len[i] = UINT32_MAX;
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_tok[b] = -1;
    return KVQ_OK;
}

kvq_status kvq_tok_arena_put(kvq_tokenizer *t, const char *s, size_t len, uint32_t *off) {
    if (len >= UINT32_MAX / 2 || t->arena_len > UINT32_MAX / 2) return KVQ_ERR_OVERFLOW;
    if (t->arena_len + len + 1 > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap < t->arena_len + len + 1) cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a) return KVQ_ERR_NOMEM;
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, len);
    t->arena[t->arena_len + len] = 0;
    *off = (uint32_t)t->arena_len;
    t->arena_len += len + 1;
    return KVQ_OK;
}

kvq_status kvq_tok_set_piece(kvq_tokenizer *t, int32_t id, const char *s, size_t len) {
    if (id < 0 || id >= t->n_vocab) return KVQ_ERR_BOUNDS;
    if (t->len[id] != UINT32_MAX) return KVQ_ERR_FORMAT;
    kvq_status st = kvq_tok_arena_put(t, s, len, &t->off[id]);
    if (st == KVQ_OK) t->len[id] = (uint32_t)len;
    return st;
}

kvq_status kvq_tok_add_special(kvq_tokenizer *t, int32_t id, const char *s, size_t len,
                               int normalized) {
    if (id < 0 || id >= t->n_vocab) return KVQ_ERR_BOUNDS;
    kvq_tok_added *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a) return KVQ_ERR_NOMEM;
    t->added = a;
    kvq_tok_added *e = &a[t->n_added];
    e->id = id;
    e->len = (uint32_t)len;
    e->normalized = normalized;
    kvq_status st = kvq_tok_arena_put(t, s, len, &e->off);
    if (st == KVQ_OK) t->n_added++;
    return st;
}

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;                 /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

kvq_status kvq_tok_build_map(kvq_tokenizer *t) {
    size_t cap = 64;
    while (cap < 2 * (size_t)t->n_vocab) cap *= 2;
    t->map.slot = malloc(cap * sizeof *t->map.slot);
    if (!t->map.slot) return KVQ_ERR_NOMEM;
    t->map.cap = cap;
    for (size_t i = 0; i < cap; i++) t->map.slot[i].id = -1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->len[id] == UINT32_MAX || kvq_tok_lookup(t, kvq_tok_piece(t, id), t->len[id]) >= 0)
            continue;                                     /* duplicate texts keep the lowest id */
        uint64_t h = hash_bytes(kvq_tok_piece(t, id), t->len[id]);
        size_t i = (size_t)h & (cap - 1);
        while (t->map.slot[i].id >= 0) i = (i + 1) & (cap - 1);
        t->map.slot[i] = (kvq_tok_strslot){id, (uint32_t)(h >> 32)};
    }
    return KVQ_OK;
}

int32_t kvq_tok_lookup(const kvq_tokenizer *t, const char *s, size_t len) {
    if (!t->map.cap) return -1;
    size_t m = t->map.cap - 1;
    uint64_t h = hash_bytes(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & m; t->map.slot[i].id >= 0; i = (i + 1) & m) {
        int32_t id = t->map.slot[i].id;
        if (t->map.slot[i].tag == tag && t->len[id] == len && !memcmp(kvq_tok_piece(t, id), s, len))
            return id;
    }
    return -1;
}

void kvq_tok_find_byte_tokens(kvq_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char s[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        t->byte_tok[b] = kvq_tok_lookup(t, s, 6);
    }
}

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static size_t pair_hash(uint64_t k) { k ^= k >> 33; k *= 0xff51afd7ed558ccdull; return (size_t)(k ^ (k >> 33)); }

kvq_status kvq_tok_pairmap_init(kvq_tok_pairmap *m, size_t n) {
    size_t cap = 64;
    while (cap < 2 * n) {
        if (cap > SIZE_MAX / 4 / sizeof *m->slot) return KVQ_ERR_OVERFLOW;
        cap *= 2;
    }
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot) return KVQ_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) m->slot[i].key = UINT64_MAX;
    m->cap = cap;
    m->n = 0;
    return KVQ_OK;
}

void kvq_tok_pairmap_put(kvq_tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = pair_key(a, b);
    size_t h = pair_hash(k) & (m->cap - 1);
    while (m->slot[h].key != UINT64_MAX && m->slot[h].key != k) h = (h + 1) & (m->cap - 1);
    if (m->slot[h].key == UINT64_MAX) m->n++;
    m->slot[h] = (kvq_tok_pair){k, rank, id};
}

const kvq_tok_pair *kvq_tok_pairmap_get(const kvq_tok_pairmap *m, int32_t a, int32_t b) {
    if (!m->cap) return NULL;
    uint64_t k = pair_key(a, b);
    for (size_t h = pair_hash(k) & (m->cap - 1); m->slot[h].key != UINT64_MAX; h = (h + 1) & (m->cap - 1))
        if (m->slot[h].key == k) return &m->slot[h];
    return NULL;
}

/* ---- merge heap: smallest key first, then smallest position ---- */
static int heap_less(const kvq_tok_heapent *x, const kvq_tok_heapent *y) {
    return x->key < y->key || (x->key == y->key && x->pos < y->pos);
}

kvq_status kvq_tok_heap_push(kvq_tok_scratch *s, kvq_tok_heapent e) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? 2 * s->heap_cap : 256;
        kvq_tok_heapent *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return KVQ_ERR_NOMEM;
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0 && heap_less(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return KVQ_OK;
}

kvq_tok_heapent kvq_tok_heap_pop(kvq_tok_scratch *s) {
    kvq_tok_heapent top = s->heap[0], e = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_less(&s->heap[c], &e)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = e;
    return top;
}

kvq_status kvq_tok_scratch_reserve(kvq_tok_scratch *s, size_t n_sym, size_t n_buf) {
    if (n_sym > s->sym_cap) {
        if (n_sym > SIZE_MAX / sizeof *s->sym) return KVQ_ERR_OVERFLOW;
        kvq_tok_sym *p = realloc(s->sym, n_sym * sizeof *p);
        if (!p) return KVQ_ERR_NOMEM;
        s->sym = p;
        s->sym_cap = n_sym;
    }
    if (n_buf > s->buf_cap) {
        char *p = realloc(s->buf, n_buf);
        if (!p) return KVQ_ERR_NOMEM;
        s->buf = p;
        s->buf_cap = n_buf;
    }
    return KVQ_OK;
}

void kvq_tok_scratch_free(kvq_tok_scratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

uint32_t kvq_tok_byte_char(unsigned char b) {
    /* Printable Latin-1 bytes map to themselves; the other 68 to U+0100.. in byte order. */
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
    return 0x100 + n;
}
