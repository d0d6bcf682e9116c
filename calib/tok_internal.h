/* tok_internal.h — what the tokenizer sources (calib/tok_*.c) share: the tokenizer struct, a
 * string->id hash map, a pair->merge map, a growable id vector and the Unicode helpers.
 * Private to calib/tok_*.c; the public API is calib/tokenizer.h. */
#ifndef KVQ_TOK_INTERNAL_H
#define KVQ_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- id vector ---- */
typedef struct { int32_t *v; size_t n, cap; } kvq_tok_ids;
kvq_status kvq_tok_ids_push(kvq_tok_ids *o, int32_t id);

/* ---- string -> id (open addressing over the tokenizer's own piece storage) ---- */
typedef struct { int32_t id; uint32_t tag; } kvq_tok_strslot;   /* id -1: empty; tag: hash bits */
typedef struct {
    kvq_tok_strslot *slot;  /* (cap) */
    size_t cap;             /* power of two */
} kvq_tok_strmap;

/* ---- (left id, right id) -> (rank, merged id) for BPE ---- */
typedef struct { uint64_t key; int32_t rank, id; } kvq_tok_pair;
typedef struct {
    kvq_tok_pair *slot;     /* (cap) key == UINT64_MAX when empty */
    size_t cap, n;
} kvq_tok_pairmap;

typedef enum { KVQ_TOK_MODEL_BPE, KVQ_TOK_MODEL_SPM } kvq_tok_model;
/* GPT2: ByteLevel's own regex split; LLAMA3 / QWEN2: a Split pre-tokenizer with that pattern,
 * before a ByteLevel without regex (which then runs on each piece). */
typedef enum { KVQ_TOK_SPLIT_NONE, KVQ_TOK_SPLIT_GPT2, KVQ_TOK_SPLIT_LLAMA3,
               KVQ_TOK_SPLIT_QWEN2 } kvq_tok_split;

/* Token types (the GGUF / SentencePiece numbering). */
enum { KVQ_TOKT_NORMAL = 1, KVQ_TOKT_UNKNOWN = 2, KVQ_TOKT_CONTROL = 3, KVQ_TOKT_USER = 4,
       KVQ_TOKT_UNUSED = 5, KVQ_TOKT_BYTE = 6 };

typedef struct {
    int32_t id;
    uint32_t off, len;      /* text in the piece arena */
    int normalized;         /* matched in normalized text (HF "normalized": true) */
} kvq_tok_added;

struct kvq_tokenizer {
    kvq_tok_model model;
    int32_t n_vocab;
    char *arena;            /* all piece texts, each NUL-terminated */
    size_t arena_len, arena_cap;
    uint32_t *off, *len;    /* (n_vocab) piece text; len == UINT32_MAX: no token has this id */
    float *score;           /* (n_vocab) SPM merge scores; NULL for BPE */
    uint8_t *type;          /* (n_vocab) KVQ_TOKT_*; NULL when the format has none */
    kvq_tok_strmap map;     /* model vocabulary (not the added tokens) */
    kvq_tok_pairmap merges; /* BPE */
    int32_t bos, eos, unk;  /* -1 when none */
    int32_t byte_tok[256];  /* byte-level: token of each byte's mapped char; fallback: <0xXX> */
    kvq_tok_added *added;   /* (n_added) special / added tokens, split out before the model */
    size_t n_added;
    /* options */
    int byte_level;         /* GPT-2 byte->char mapping (BPE) */
    int byte_fallback;      /* unknown chars -> <0xXX> tokens (BPE char-level, SPM) */
    int fuse_unk;           /* consecutive unknowns -> one unk (BPE) */
    int ignore_merges;      /* a pre-token that is itself in the vocabulary is taken whole (BPE) */
    kvq_tok_split split;    /* pre-tokenizer split */
    int split_digits;       /* Digits(individual_digits) pre-split */
    int add_prefix_space;   /* ByteLevel add_prefix_space */
    int nfc;                /* NFC normalizer */
    int spm_prefix;         /* prepend space_sym to each non-empty text piece (dummy prefix) */
    int spm_replace;        /* replace ' ' with space_sym */
    char space_sym[8];      /* what spaces become ("▁"; " " in llama2.c files), NUL-terminated */
    uint8_t added_first[256]; /* bit 0/1: a raw / normalized added token starts with this byte */
    uint8_t barrier[128];   /* ASCII bytes in no token longer than one byte: no merge crosses
                             * them, so long pieces are encoded barrier to barrier (speed only) */
    int spm_any_piece;      /* SPM merges may form any piece (llama2.c), else normal/user only */
    int adds_bos;
    char desc[160];
};

/* Write a one-line message into why (if given) and return st. */
kvq_status kvq_tok_fail(char *why, size_t why_len, kvq_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Piece text of id (valid id). */
static inline const char *kvq_tok_piece(const kvq_tokenizer *t, int32_t id) {
    return t->arena + t->off[id];
}

/* Allocate the per-id arrays for n_vocab ids (all ids missing, no pieces). */
kvq_status kvq_tok_alloc(kvq_tokenizer *t, int32_t n_vocab, int with_scores, int with_types);
/* Append s[0..len) + NUL to the arena; *off gets its offset (the arena may move). */
kvq_status kvq_tok_arena_put(kvq_tokenizer *t, const char *s, size_t len, uint32_t *off);
/* Set the text of id; fails on a duplicate id. */
kvq_status kvq_tok_set_piece(kvq_tokenizer *t, int32_t id, const char *s, size_t len);
/* Append an added token (text stored in the arena). */
kvq_status kvq_tok_add_special(kvq_tokenizer *t, int32_t id, const char *s, size_t len,
                               int normalized);
/* Build the string map over all ids that have text; duplicate texts keep the lowest id. */
kvq_status kvq_tok_build_map(kvq_tokenizer *t);
int32_t kvq_tok_lookup(const kvq_tokenizer *t, const char *s, size_t len);   /* -1 if absent */
/* Fill byte_tok from "<0xXX>" pieces (-1 where absent). */
void kvq_tok_find_byte_tokens(kvq_tokenizer *t);
/* After a loader: normalize the normalized added tokens, index added tokens by first byte, find
 * the barrier bytes. */
kvq_status kvq_tok_finish(kvq_tokenizer *t);
/* The normalizer (NFC, space_sym prefix and replacement) of one text piece into a malloc'ed
 * buffer; *out == NULL (and nothing allocated) when the piece needs no change. */
kvq_status kvq_tok_normalize(const kvq_tokenizer *t, const char *s, size_t len, char **out,
                             size_t *out_len);

kvq_status kvq_tok_pairmap_init(kvq_tok_pairmap *m, size_t n);
/* Insert or overwrite (a later duplicate merge wins, as in HF tokenizers' merge map). */
void kvq_tok_pairmap_put(kvq_tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const kvq_tok_pair *kvq_tok_pairmap_get(const kvq_tok_pairmap *m, int32_t a, int32_t b);

/* ---- model encoders: append the ids of one pre-token / piece ---- */
typedef struct { int32_t id, prev, next; uint32_t start, len; } kvq_tok_sym;
typedef struct { double key; int32_t pos, a, b; } kvq_tok_heapent;  /* a, b: validity stamps */
typedef struct {                    /* reused across the words of one kvq_tokenize call */
    kvq_tok_sym *sym; size_t sym_cap;
    kvq_tok_heapent *heap; size_t heap_n, heap_cap;
    char *buf; size_t buf_cap;
} kvq_tok_scratch;
void kvq_tok_scratch_free(kvq_tok_scratch *s);
kvq_status kvq_tok_scratch_reserve(kvq_tok_scratch *s, size_t n_sym, size_t n_buf);
/* Heap of candidate merges: smallest key first, ties to the smallest (leftmost) position. */
kvq_status kvq_tok_heap_push(kvq_tok_scratch *s, kvq_tok_heapent e);
kvq_tok_heapent kvq_tok_heap_pop(kvq_tok_scratch *s);                /* heap_n > 0 */
kvq_status kvq_tok_bpe_word(const kvq_tokenizer *t, kvq_tok_scratch *sc, const char *s,
                            size_t len, kvq_tok_ids *o);
kvq_status kvq_tok_spm_piece(const kvq_tokenizer *t, kvq_tok_scratch *sc, const char *s,
                             size_t len, kvq_tok_ids *o);
/* The GPT-2 byte -> code point map of byte-level BPE. */
uint32_t kvq_tok_byte_char(unsigned char b);

/* ---- loaders (fill a zeroed struct; the caller frees on error) ---- */
kvq_status kvq_tok_load_hfjson(kvq_tokenizer *t, const char *json, size_t len, const char *name,
                               char *why, size_t why_len);
kvq_status kvq_tok_load_llama2c(kvq_tokenizer *t, const unsigned char *buf, size_t len,
                                const char *name, char *why, size_t why_len);
kvq_status kvq_tok_load_gguf(kvq_tokenizer *t, const char *path, char *why, size_t why_len);

/* ---- Unicode (calib/tok_unicode.c) ---- */
/* Decode one code point at s[0..len); sets *cp (a stray byte b gives 0x110000 + b) and returns the
 * number of bytes (>= 1). */
size_t kvq_utf8_next(const char *s, size_t len, uint32_t *cp);
size_t kvq_utf8_put(uint32_t cp, char *out);                     /* 1..4 bytes */
int kvq_uni_is_letter(uint32_t cp);
int kvq_uni_is_number(uint32_t cp);
int kvq_uni_is_space(uint32_t cp);
/* NFC of s[0..len) into a malloc'ed *out (*out_len); stray bytes pass through unchanged. */
kvq_status kvq_uni_nfc(const char *s, size_t len, char **out, size_t *out_len);
/* Length in bytes of the next GPT-2 pre-tokenizer piece of s[0..len) (len > 0). */
size_t kvq_gpt2_split_next(const char *s, size_t len);
/* Length in bytes of the next Llama-3 (max_digits 3) / Qwen2 (max_digits 1) split piece of
 * s[0..len) (len > 0). */
size_t kvq_llama3_split_next(const char *s, size_t len, int max_digits);

#endif
