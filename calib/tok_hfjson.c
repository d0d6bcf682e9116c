/* tok_hfjson.c — reads a Hugging Face tokenizer.json (BPE model) into a kvq_tokenizer: vocab,
 * merges ("a b" strings or ["a", "b"] pairs), added_tokens, and the normalizer / pre_tokenizer /
 * post_processor settings it supports:
 *   normalizer     null | NFC | Sequence of NFC, Prepend(s), Replace(String " " -> s)
 *   pre_tokenizer  null | ByteLevel | Sequence[Digits(individual_digits), ByteLevel]
 *   post_processor null | ByteLevel | TemplateProcessing | Sequence of them (only for adds_bos)
 * Anything else is rejected with KVQ_ERR_UNSUPPORTED naming the part. Decoders are not read.
 * Not WordPiece/Unigram/WordLevel models; not the encoder (tok_api.c, tok_bpe.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tok_internal.h"

#define FAIL(st, ...) kvq_tok_fail(why, why_len, st, __VA_ARGS__)

static const char *type_of(const kvq_json *o) {
    const char *s = kvq_json_get_string(o, "type");
    return s ? s : "";
}

static int is_null_or_empty(const kvq_json *v) {
    return !v || v->type == KVQ_JSON_NULL || (v->type == KVQ_JSON_STRING && v->len == 0);
}

/* Set space_sym (must agree with an earlier setting). */
static kvq_status set_space_sym(kvq_tokenizer *t, const kvq_json *s, const char *name, char *why,
                                size_t why_len) {
    if (!s || s->type != KVQ_JSON_STRING || s->len == 0 || s->len >= sizeof t->space_sym)
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: normalizer Prepend/Replace needs a short string", name);
    if (t->space_sym[0] && strcmp(t->space_sym, s->str))
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: normalizer uses two different space symbols", name);
    memcpy(t->space_sym, s->str, s->len + 1);
    return KVQ_OK;
}

static kvq_status read_normalizer(kvq_tokenizer *t, const kvq_json *n, const char *name,
                                  char *why, size_t why_len) {
    if (!n || n->type == KVQ_JSON_NULL) return KVQ_OK;
    const char *ty = type_of(n);
    if (!strcmp(ty, "Sequence")) {
        const kvq_json *l = kvq_json_get(n, "normalizers");
        if (!l || l->type != KVQ_JSON_ARRAY) return FAIL(KVQ_ERR_FORMAT, "%s: normalizer Sequence without a list", name);
        for (size_t i = 0; i < l->len; i++) {
            if (!strcmp(type_of(l->items[i]), "Sequence"))
                return FAIL(KVQ_ERR_UNSUPPORTED, "%s: nested normalizer Sequence", name);
            kvq_status st = read_normalizer(t, l->items[i], name, why, why_len);
            if (st) return st;
        }
        return KVQ_OK;
    }
    if (!strcmp(ty, "NFC")) { t->nfc = 1; return KVQ_OK; }
    if (!strcmp(ty, "Prepend")) {
        t->spm_prefix = 1;
        return set_space_sym(t, kvq_json_get(n, "prepend"), name, why, why_len);
    }
    if (!strcmp(ty, "Replace")) {
        const char *pat = kvq_json_get_string(kvq_json_get(n, "pattern"), "String");
        if (!pat || strcmp(pat, " "))
            return FAIL(KVQ_ERR_UNSUPPORTED, "%s: normalizer Replace supports only the pattern {\"String\": \" \"}", name);
        t->spm_replace = 1;
        return set_space_sym(t, kvq_json_get(n, "content"), name, why, why_len);
    }
    return FAIL(KVQ_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (NFC, Prepend, Replace, "
                "Sequence are)", name, ty);
}

static kvq_status read_pretok(kvq_tokenizer *t, const kvq_json *p, const char *name, char *why,
                              size_t why_len) {
    if (!p || p->type == KVQ_JSON_NULL) return KVQ_OK;
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const kvq_json *l = kvq_json_get(p, "pretokenizers");
        if (!l || l->type != KVQ_JSON_ARRAY || l->len != 2 || strcmp(type_of(l->items[0]), "Digits") ||
            strcmp(type_of(l->items[1]), "ByteLevel"))
            return FAIL(KVQ_ERR_UNSUPPORTED, "%s: pre_tokenizer Sequence supported only as [Digits, "
                        "ByteLevel]", name);
        int ind = 0;
        if (!kvq_json_get_bool(l->items[0], "individual_digits", &ind) || !ind)
            return FAIL(KVQ_ERR_UNSUPPORTED, "%s: Digits pre_tokenizer without individual_digits", name);
        t->split_digits = 1;
        return read_pretok(t, l->items[1], name, why, why_len);
    }
    if (strcmp(ty, "ByteLevel"))
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported (ByteLevel, "
                    "Sequence[Digits, ByteLevel] are)", name, ty);
    int v = 0;
    t->byte_level = 1;
    t->add_prefix_space = kvq_json_get_bool(p, "add_prefix_space", &v) && v;
    t->split = !kvq_json_get_bool(p, "use_regex", &v) || v ? KVQ_TOK_SPLIT_GPT2 : KVQ_TOK_SPLIT_NONE;
    return KVQ_OK;
}

/* adds_bos (and a BOS id) from a template whose single sequence starts with a special token. */
static void read_post(kvq_tokenizer *t, const kvq_json *p) {
    if (!p || p->type != KVQ_JSON_OBJECT) return;
    if (!strcmp(type_of(p), "Sequence")) {
        const kvq_json *l = kvq_json_get(p, "processors");
        for (size_t i = 0; l && l->type == KVQ_JSON_ARRAY && i < l->len; i++) read_post(t, l->items[i]);
        return;
    }
    if (strcmp(type_of(p), "TemplateProcessing")) return;
    const kvq_json *single = kvq_json_get(p, "single");
    if (!single || single->type != KVQ_JSON_ARRAY || !single->len) return;
    const char *tok = kvq_json_get_string(kvq_json_get(single->items[0], "SpecialToken"), "id");
    const kvq_json *ids = kvq_json_get(kvq_json_get(kvq_json_get(p, "special_tokens"), tok ? tok : ""), "ids");
    if (!ids || ids->type != KVQ_JSON_ARRAY || ids->len != 1 || ids->items[0]->type != KVQ_JSON_NUMBER) return;
    double id = ids->items[0]->number;
    if (id >= 0 && id < t->n_vocab && id == (int32_t)id) { t->bos = (int32_t)id; t->adds_bos = 1; }
}

/* Largest id in vocab and added_tokens; checks types. */
static kvq_status scan_ids(const kvq_json *vocab, const kvq_json *added, int64_t *max_id,
                           const char *name, char *why, size_t why_len) {
    *max_id = -1;
    for (size_t i = 0; i < vocab->len; i++) {
        double d = vocab->items[i]->number;
        if (vocab->items[i]->type != KVQ_JSON_NUMBER || d < 0 || d >= 1 << 30 || d != (int64_t)d)
            return FAIL(KVQ_ERR_FORMAT, "%s: vocab entry %zu has no valid id", name, i);
        if ((int64_t)d > *max_id) *max_id = (int64_t)d;
    }
    for (size_t i = 0; added && i < added->len; i++) {
        long long id;
        const char *c = kvq_json_get_string(added->items[i], "content");
        if (!kvq_json_get_int(added->items[i], "id", &id) || id < 0 || id >= 1 << 30 || !c || !*c)
            return FAIL(KVQ_ERR_FORMAT, "%s: added_tokens[%zu] needs an id and a non-empty content", name, i);
        if (id > *max_id) *max_id = id;
    }
    /* ids are dense in real files; a bound keeps a tiny malformed file from allocating gigabytes */
    size_t n = vocab->len + (added ? added->len : 0);
    if (*max_id < 0 || (uint64_t)*max_id > 2 * (uint64_t)n + 256)
        return FAIL(KVQ_ERR_FORMAT, "%s: ids run to %lld for %zu tokens", name, (long long)*max_id, n);
    return KVQ_OK;
}

static kvq_status read_added(kvq_tokenizer *t, const kvq_json *added, const char *name, char *why,
                             size_t why_len) {
    for (size_t i = 0; added && i < added->len; i++) {
        const kvq_json *a = added->items[i];
        long long id;
        int f = 0, special = 0, normalized = 0;
        kvq_json_get_int(a, "id", &id);
        const kvq_json *c = kvq_json_get(a, "content");
        const char *flags[] = {"single_word", "lstrip", "rstrip"};
        for (int k = 0; k < 3; k++)
            if (kvq_json_get_bool(a, flags[k], &f) && f)
                return FAIL(KVQ_ERR_UNSUPPORTED, "%s: added token %lld sets %s (not supported)", name, id, flags[k]);
        kvq_json_get_bool(a, "special", &special);
        kvq_json_get_bool(a, "normalized", &normalized);
        kvq_status st = KVQ_OK;
        if (t->len[id] == UINT32_MAX) st = kvq_tok_set_piece(t, (int32_t)id, c->str, c->len);
        if (!st) st = kvq_tok_add_special(t, (int32_t)id, c->str, c->len, normalized);
        if (st) return FAIL(st, "%s: added token %lld: %s", name, id, kvq_status_message(st));
        t->type[id] = special ? KVQ_TOKT_CONTROL : KVQ_TOKT_USER;
    }
    return KVQ_OK;
}

/* One merge -> its two token ids. */
static kvq_status merge_pair(const kvq_tokenizer *t, const kvq_json *m, size_t i, int32_t ab[3],
                             char *buf, const char *name, char *why, size_t why_len) {
    const char *a, *b;
    size_t al, bl;
    if (m->type == KVQ_JSON_STRING) {
        const char *sp = memchr(m->str, ' ', m->len);
        if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str)))
            return FAIL(KVQ_ERR_FORMAT, "%s: merge %zu is not two tokens separated by one space", name, i);
        a = m->str; al = (size_t)(sp - m->str); b = sp + 1; bl = m->len - al - 1;
    } else if (m->type == KVQ_JSON_ARRAY && m->len == 2 && m->items[0]->type == KVQ_JSON_STRING &&
               m->items[1]->type == KVQ_JSON_STRING) {
        a = m->items[0]->str; al = m->items[0]->len; b = m->items[1]->str; bl = m->items[1]->len;
    } else {
        return FAIL(KVQ_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", name, i);
    }
    ab[0] = kvq_tok_lookup(t, a, al);
    ab[1] = kvq_tok_lookup(t, b, bl);
    memcpy(buf, a, al);
    memcpy(buf + al, b, bl);
    ab[2] = kvq_tok_lookup(t, buf, al + bl);
    if (ab[0] < 0 || ab[1] < 0 || ab[2] < 0)
        return FAIL(KVQ_ERR_FORMAT, "%s: merge %zu (\"%.*s\" + \"%.*s\") uses or makes a token that "
                    "is not in the vocabulary", name, i, (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
    return KVQ_OK;
}

static kvq_status read_merges(kvq_tokenizer *t, const kvq_json *merges, const char *name,
                              char *why, size_t why_len) {
    if (!merges || merges->type != KVQ_JSON_ARRAY) return FAIL(KVQ_ERR_MISSING, "%s: model has no merges list", name);
    if (merges->len > INT32_MAX) return FAIL(KVQ_ERR_OVERFLOW, "%s: too many merges", name);
    kvq_status st = kvq_tok_pairmap_init(&t->merges, merges->len);
    if (st) return FAIL(st, "%s: merges: %s", name, kvq_status_message(st));
    size_t maxlen = 0;
    for (size_t i = 0; i < merges->len; i++) {
        const kvq_json *m = merges->items[i];
        size_t l = m->type == KVQ_JSON_STRING ? m->len : m->type == KVQ_JSON_ARRAY && m->len == 2 ?
                   m->items[0]->len + m->items[1]->len : 0;
        if (l > maxlen) maxlen = l;
    }
    char *buf = malloc(maxlen + 1);
    if (!buf) return KVQ_ERR_NOMEM;
    for (size_t i = 0; i < merges->len && !st; i++) {
        int32_t ab[3] = {-1, -1, -1};
        st = merge_pair(t, merges->items[i], i, ab, buf, name, why, why_len);
        if (!st) kvq_tok_pairmap_put(&t->merges, ab[0], ab[1], (int32_t)i, ab[2]);
    }
    free(buf);
    return st;
}

static kvq_status read_model_options(kvq_tokenizer *t, const kvq_json *model, const char *name,
                                     char *why, size_t why_len) {
    const char *ty = kvq_json_get_string(model, "type");
    if (ty && strcmp(ty, "BPE"))
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (BPE is)", name, ty);
    const kvq_json *d = kvq_json_get(model, "dropout");
    if (d && !(d->type == KVQ_JSON_NULL || (d->type == KVQ_JSON_NUMBER && d->number == 0)))
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", name);
    if (!is_null_or_empty(kvq_json_get(model, "continuing_subword_prefix")) ||
        !is_null_or_empty(kvq_json_get(model, "end_of_word_suffix")))
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: BPE subword prefix/suffix is not supported", name);
    kvq_json_get_bool(model, "byte_fallback", &t->byte_fallback);
    kvq_json_get_bool(model, "fuse_unk", &t->fuse_unk);
    kvq_json_get_bool(model, "ignore_merges", &t->ignore_merges);
    const char *unk = kvq_json_get_string(model, "unk_token");
    if (unk && (t->unk = kvq_tok_lookup(t, unk, strlen(unk))) < 0)
        return FAIL(KVQ_ERR_FORMAT, "%s: unk_token '%.40s' is not in the vocabulary", name, unk);
    if (t->byte_level && t->byte_fallback)
        return FAIL(KVQ_ERR_UNSUPPORTED, "%s: ByteLevel with byte_fallback is not supported", name);
    return KVQ_OK;
}

/* Byte-level: the token of each byte's mapped character. Some vocabularies (GPT-NeoX) lack the
 * bytes that valid UTF-8 never holds (0xC0, 0xC1, 0xF5..0xFF); every other byte must be there. */
static kvq_status find_byte_chars(kvq_tokenizer *t, const char *name, char *why, size_t why_len) {
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t n = kvq_utf8_put(kvq_tok_byte_char((unsigned char)b), s);
        t->byte_tok[b] = kvq_tok_lookup(t, s, n);
        /* Real vocabularies may lack rare control bytes (SmolLM2 lacks 0x04): such a byte becomes
         * unk or is dropped, as in HF. Lacking printable ASCII means it is not byte-level at all. */
        if (t->byte_tok[b] < 0 && b >= 0x20 && b < 0x7F)
            return FAIL(KVQ_ERR_FORMAT, "%s: byte-level vocabulary lacks the token of byte 0x%02X", name, b);
    }
    return KVQ_OK;
}

kvq_status kvq_tok_load_hfjson(kvq_tokenizer *t, const char *json, size_t len, const char *name,
                               char *why, size_t why_len) {
    kvq_json *root = NULL;
    char jwhy[160];
    kvq_status st = kvq_json_parse(json, len, &root, jwhy, sizeof jwhy);
    if (st) return FAIL(st, "%s: %s", name, jwhy);
    const kvq_json *model = kvq_json_get(root, "model"), *vocab = kvq_json_get(model, "vocab");
    const kvq_json *added = kvq_json_get(root, "added_tokens");
    int64_t max_id;
    if (!vocab || vocab->type != KVQ_JSON_OBJECT) st = FAIL(KVQ_ERR_MISSING, "%s: no model.vocab object", name);
    else if (added && added->type != KVQ_JSON_ARRAY && added->type != KVQ_JSON_NULL)
        st = FAIL(KVQ_ERR_FORMAT, "%s: added_tokens is not a list", name);
    if (added && added->type != KVQ_JSON_ARRAY) added = NULL;
    if (!st) st = scan_ids(vocab, added, &max_id, name, why, why_len);
    if (!st && (st = kvq_tok_alloc(t, (int32_t)(max_id + 1), 0, 1))) FAIL(st, "%s: %s", name, kvq_status_message(st));
    for (size_t i = 0; !st && i < vocab->len; i++) {
        int32_t id = (int32_t)vocab->items[i]->number;
        if ((st = kvq_tok_set_piece(t, id, vocab->keys[i], vocab->key_lens[i])))
            FAIL(st, "%s: vocab id %d is given twice", name, (int)id);
        else t->type[id] = KVQ_TOKT_NORMAL;
    }
    if (!st && (st = kvq_tok_build_map(t))) FAIL(st, "%s: %s", name, kvq_status_message(st));
    if (!st) st = read_added(t, added, name, why, why_len);
    if (!st) st = read_normalizer(t, kvq_json_get(root, "normalizer"), name, why, why_len);
    if (!st) st = read_pretok(t, kvq_json_get(root, "pre_tokenizer"), name, why, why_len);
    if (!st) st = read_model_options(t, model, name, why, why_len);
    if (!st) st = read_merges(t, kvq_json_get(model, "merges"), name, why, why_len);
    if (!st && t->byte_level) st = find_byte_chars(t, name, why, why_len);
    if (!st && t->byte_fallback) kvq_tok_find_byte_tokens(t);
    if (!st) read_post(t, kvq_json_get(root, "post_processor"));
    if (!st && (st = kvq_tok_finish(t))) FAIL(st, "%s: %s", name, kvq_status_message(st));
    if (!st)
        snprintf(t->desc, sizeof t->desc, "tokenizer.json %s BPE, %d tokens, %zu merges",
                 t->byte_level ? "byte-level" : t->spm_replace ? "SentencePiece-style" : "character",
                 (int)t->n_vocab, t->merges.n);
    kvq_json_free(root);
    return st;
}
