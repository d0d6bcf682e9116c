/* json.h — a strict, bounded JSON (RFC 8259) parser into a small tree, for config.json,
 * safetensors headers and tokenizer.json. Not a writer (tools/json_out.h writes --json output).
 * Input is untrusted: depth is capped, every read is bounds-checked, strings are decoded to UTF-8
 * (escapes and surrogate pairs included) and may contain NUL (use len). */
#ifndef KVQ_JSON_H
#define KVQ_JSON_H

#include <stddef.h>
#include "kvq_status.h"

typedef enum kvq_json_type {
    KVQ_JSON_NULL, KVQ_JSON_FALSE, KVQ_JSON_TRUE, KVQ_JSON_NUMBER, KVQ_JSON_STRING,
    KVQ_JSON_ARRAY, KVQ_JSON_OBJECT
} kvq_json_type;

typedef struct kvq_json {
    kvq_json_type type;
    double number;              /* NUMBER */
    char *str;                  /* STRING: decoded UTF-8, NUL-terminated; len bytes */
    size_t len;                 /* STRING: byte length; ARRAY/OBJECT: number of items */
    struct kvq_json **items;    /* ARRAY/OBJECT: (len) children in document order */
    char **keys;                /* OBJECT: (len) decoded keys, parallel to items */
    size_t *key_lens;           /* OBJECT: (len) */
} kvq_json;

enum { KVQ_JSON_MAX_DEPTH = 128 };

/* Parse exactly one JSON value (surrounding whitespace allowed). On error `why` says what and at
 * which byte offset; *out is NULL. */
kvq_status kvq_json_parse(const char *text, size_t len, kvq_json **out, char *why, size_t why_len);
void kvq_json_free(kvq_json *v);                                  /* accepts NULL */

/* Object member by key (first match), or NULL when v is not an object or has no such key. */
const kvq_json *kvq_json_get(const kvq_json *v, const char *key);
/* Typed getters: return 1 and store the value when present with the right type, else 0. */
int kvq_json_get_number(const kvq_json *obj, const char *key, double *out);
int kvq_json_get_int(const kvq_json *obj, const char *key, long long *out);  /* integral only */
int kvq_json_get_bool(const kvq_json *obj, const char *key, int *out);
const char *kvq_json_get_string(const kvq_json *obj, const char *key);      /* NULL if absent */

#endif
