/* json.c — strict recursive-descent JSON parser (see json.h). */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t n, i;
    char *why;
    size_t why_len;
} parser;

static kvq_status fail(parser *p, const char *what) {
    if (p->why && p->why_len) snprintf(p->why, p->why_len, "JSON: %s at byte %zu", what, p->i);
    return KVQ_ERR_FORMAT;
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

/* Growable byte buffer for decoded strings. */
typedef struct { char *b; size_t len, cap; } strbuf;

static int sb_put(strbuf *sb, const char *src, size_t k) {
    if (sb->len + k + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 16;
        while (cap < sb->len + k + 1) cap *= 2;
        char *nb = realloc(sb->b, cap);
        if (!nb) return 0;
        sb->b = nb;
        sb->cap = cap;
    }
    memcpy(sb->b + sb->len, src, k);
    sb->len += k;
    sb->b[sb->len] = 0;
    return 1;
}

static int put_utf8(strbuf *sb, unsigned cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); k = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); k = 4;
    }
    return sb_put(sb, u, k);
}

static int hex4(parser *p, unsigned *out) {
    if (p->n - p->i < 4) return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    p->i += 4;
    *out = v;
    return 1;
}

/* p->i at the opening quote. */
static kvq_status parse_string(parser *p, char **out, size_t *out_len) {
    strbuf sb = {0};
    p->i++;
    if (!sb_put(&sb, "", 0)) return KVQ_ERR_NOMEM;
    for (;;) {
        if (p->i >= p->n) { free(sb.b); return fail(p, "unterminated string"); }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) { free(sb.b); return fail(p, "control character in string"); }
        if (c != '\\') {
            size_t j = p->i;  /* copy a run of plain bytes */
            while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20) j++;
            if (!sb_put(&sb, p->s + p->i, j - p->i)) { free(sb.b); return KVQ_ERR_NOMEM; }
            p->i = j;
            continue;
        }
        if (++p->i >= p->n) { free(sb.b); return fail(p, "unterminated escape"); }
        char e = p->s[p->i++];
        char lit = 0;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!hex4(p, &cp)) { free(sb.b); return fail(p, "bad \\u escape"); }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    free(sb.b); return fail(p, "unpaired high surrogate");
                }
                p->i += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    free(sb.b); return fail(p, "bad low surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(sb.b); return fail(p, "unpaired low surrogate");
            }
            if (!put_utf8(&sb, cp)) { free(sb.b); return KVQ_ERR_NOMEM; }
            continue;
        }
        default: free(sb.b); return fail(p, "unknown escape");
        }
        if (!sb_put(&sb, &lit, 1)) { free(sb.b); return KVQ_ERR_NOMEM; }
    }
    *out = sb.b;
    *out_len = sb.len;
    return KVQ_OK;
}

static kvq_status parse_number(parser *p, double *out) {
    size_t st = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n) return fail(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else if (p->s[p->i] >= '1' && p->s[p->i] <= '9') while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else return fail(p, "bad number");
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == d) return fail(p, "bad fraction");
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == d) return fail(p, "bad exponent");
    }
    char tmp[64];
    size_t k = p->i - st;
    if (k >= sizeof tmp) { /* long numerals: strtod on a heap copy */
        char *h = malloc(k + 1);
        if (!h) return KVQ_ERR_NOMEM;
        memcpy(h, p->s + st, k); h[k] = 0;
        *out = strtod(h, NULL);
        free(h);
        return KVQ_OK;
    }
    memcpy(tmp, p->s + st, k); tmp[k] = 0;
    *out = strtod(tmp, NULL);
    return KVQ_OK;
}

static kvq_status parse_value(parser *p, kvq_json **out, int depth);

static kvq_status push_item(kvq_json *v, size_t *cap, kvq_json *item, char *key, size_t key_len) {
    if (v->len == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        kvq_json **ni = realloc(v->items, nc * sizeof *ni);
        if (!ni) return KVQ_ERR_NOMEM;
        v->items = ni;
        if (v->type == KVQ_JSON_OBJECT) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk) return KVQ_ERR_NOMEM;
            v->keys = nk;
            size_t *nl = realloc(v->key_lens, nc * sizeof *nl);
            if (!nl) return KVQ_ERR_NOMEM;
            v->key_lens = nl;
        }
        *cap = nc;
    }
    v->items[v->len] = item;
    if (v->type == KVQ_JSON_OBJECT) { v->keys[v->len] = key; v->key_lens[v->len] = key_len; }
    v->len++;
    return KVQ_OK;
}

static kvq_status parse_container(parser *p, kvq_json *v, int depth) {
    int is_obj = v->type == KVQ_JSON_OBJECT;
    char close = is_obj ? '}' : ']';
    size_t cap = 0;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) { p->i++; return KVQ_OK; }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        kvq_status st;
        skip_ws(p);
        if (is_obj) {
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected object key");
            if ((st = parse_string(p, &key, &key_len))) return st;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { free(key); return fail(p, "expected ':'"); }
            p->i++;
        }
        kvq_json *item = NULL;
        if ((st = parse_value(p, &item, depth + 1))) { free(key); return st; }
        if ((st = push_item(v, &cap, item, key, key_len))) { free(key); kvq_json_free(item); return st; }
        skip_ws(p);
        if (p->i >= p->n) return fail(p, "unterminated container");
        if (p->s[p->i] == ',') { p->i++; continue; }
        if (p->s[p->i] == close) { p->i++; return KVQ_OK; }
        return fail(p, "expected ',' or closing bracket");
    }
}

static int match_lit(parser *p, const char *lit) {
    size_t k = strlen(lit);
    if (p->n - p->i < k || memcmp(p->s + p->i, lit, k) != 0) return 0;
    p->i += k;
    return 1;
}

static kvq_status parse_value(parser *p, kvq_json **out, int depth) {
    if (depth > KVQ_JSON_MAX_DEPTH) return fail(p, "nesting too deep");
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end of input");
    kvq_json *v = calloc(1, sizeof *v);
    if (!v) return KVQ_ERR_NOMEM;
    kvq_status st = KVQ_OK;
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        v->type = c == '{' ? KVQ_JSON_OBJECT : KVQ_JSON_ARRAY;
        st = parse_container(p, v, depth);
    } else if (c == '"') {
        v->type = KVQ_JSON_STRING;
        st = parse_string(p, &v->str, &v->len);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        v->type = KVQ_JSON_NUMBER;
        st = parse_number(p, &v->number);
    } else if (match_lit(p, "true")) v->type = KVQ_JSON_TRUE;
    else if (match_lit(p, "false")) v->type = KVQ_JSON_FALSE;
    else if (match_lit(p, "null")) v->type = KVQ_JSON_NULL;
    else st = fail(p, "unexpected character");
    if (st) { kvq_json_free(v); return st; }
    *out = v;
    return KVQ_OK;
}

kvq_status kvq_json_parse(const char *text, size_t len, kvq_json **out, char *why, size_t why_len) {
    if (!out || (!text && len)) return KVQ_ERR_ARG;
    *out = NULL;
    parser p = {text, len, 0, why, why_len};
    kvq_json *v = NULL;
    kvq_status st = parse_value(&p, &v, 0);
    if (st) return st;
    skip_ws(&p);
    if (p.i != p.n) { kvq_json_free(v); return fail(&p, "trailing characters"); }
    *out = v;
    return KVQ_OK;
}

void kvq_json_free(kvq_json *v) {
    if (!v) return;
    for (size_t k = 0; k < v->len && v->items; k++) {
        kvq_json_free(v->items[k]);
        if (v->keys) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    free(v->str);
    free(v);
}

const kvq_json *kvq_json_get(const kvq_json *v, const char *key) {
    if (!v || v->type != KVQ_JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t k = 0; k < v->len; k++)
        if (v->key_lens[k] == kl && memcmp(v->keys[k], key, kl) == 0) return v->items[k];
    return NULL;
}

int kvq_json_get_number(const kvq_json *obj, const char *key, double *out) {
    const kvq_json *v = kvq_json_get(obj, key);
    if (!v || v->type != KVQ_JSON_NUMBER) return 0;
    *out = v->number;
    return 1;
}

int kvq_json_get_int(const kvq_json *obj, const char *key, long long *out) {
    double d;
    if (!kvq_json_get_number(obj, key, &d)) return 0;
    if (d != (double)(long long)d || d > 9.0e15 || d < -9.0e15) return 0;
    *out = (long long)d;
    return 1;
}

int kvq_json_get_bool(const kvq_json *obj, const char *key, int *out) {
    const kvq_json *v = kvq_json_get(obj, key);
    if (!v || (v->type != KVQ_JSON_TRUE && v->type != KVQ_JSON_FALSE)) return 0;
    *out = v->type == KVQ_JSON_TRUE;
    return 1;
}

const char *kvq_json_get_string(const kvq_json *obj, const char *key) {
    const kvq_json *v = kvq_json_get(obj, key);
    return v && v->type == KVQ_JSON_STRING ? v->str : NULL;
}
