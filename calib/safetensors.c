/* safetensors.c — the strict single-file safetensors reader declared in safetensors.h. The JSON
 * header goes through calib/json.c; this file checks what it means. */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const struct { const char *name; size_t size; } dtypes[KVQ_ST_DTYPE_COUNT] = {
    [KVQ_ST_F64] = {"F64", 8},  [KVQ_ST_F32] = {"F32", 4},   [KVQ_ST_F16] = {"F16", 2},
    [KVQ_ST_BF16] = {"BF16", 2}, [KVQ_ST_I64] = {"I64", 8},  [KVQ_ST_I32] = {"I32", 4},
    [KVQ_ST_I16] = {"I16", 2},  [KVQ_ST_I8] = {"I8", 1},     [KVQ_ST_U64] = {"U64", 8},
    [KVQ_ST_U32] = {"U32", 4},  [KVQ_ST_U16] = {"U16", 2},   [KVQ_ST_U8] = {"U8", 1},
    [KVQ_ST_BOOL] = {"BOOL", 1}, [KVQ_ST_F8_E4M3] = {"F8_E4M3", 1}, [KVQ_ST_F8_E5M2] = {"F8_E5M2", 1}};

const char *kvq_st_dtype_name(kvq_st_dtype d) { return d < KVQ_ST_DTYPE_COUNT ? dtypes[d].name : "?"; }
size_t kvq_st_dtype_size(kvq_st_dtype d) { return d < KVQ_ST_DTYPE_COUNT ? dtypes[d].size : 0; }

/* A JSON number that is an integer in [0, 2^53]; 0 when not. */
static int json_u53(const kvq_json *v, uint64_t *out) {
    if (!v || v->type != KVQ_JSON_NUMBER || !(v->number >= 0) || v->number > 9007199254740992.0 ||
        v->number != (double)(uint64_t)v->number)
        return 0;
    *out = (uint64_t)v->number;
    return 1;
}

static kvq_status bad(char *why, size_t why_len, kvq_status st, const char *file, const char *tensor, const char *what) {
    snprintf(why, why_len, "%s: tensor '%.100s': %s", file, tensor, what);
    return st;
}

/* One entry of the header object. */
static kvq_status parse_entry(const char *key, const kvq_json *v, const char *file, kvq_st_tensor *t,
                              char *why, size_t why_len) {
    if (!v || v->type != KVQ_JSON_OBJECT) return bad(why, why_len, KVQ_ERR_FORMAT, file, key, "entry is not an object");
    const char *dt = kvq_json_get_string(v, "dtype");
    const kvq_json *shape = kvq_json_get(v, "shape"), *offs = kvq_json_get(v, "data_offsets");
    if (!dt || !shape || shape->type != KVQ_JSON_ARRAY || !offs || offs->type != KVQ_JSON_ARRAY || offs->len != 2)
        return bad(why, why_len, KVQ_ERR_FORMAT, file, key, "needs dtype, shape and data_offsets [begin, end]");
    int d = 0;
    while (d < KVQ_ST_DTYPE_COUNT && strcmp(dt, dtypes[d].name)) d++;
    if (d == KVQ_ST_DTYPE_COUNT) return bad(why, why_len, KVQ_ERR_DTYPE, file, key, "unknown dtype");
    t->dtype = (kvq_st_dtype)d;
    if (shape->len > KVQ_ST_MAX_DIMS) return bad(why, why_len, KVQ_ERR_SHAPE, file, key, "more than 8 dimensions");
    t->n_dims = (int)shape->len;
    t->n_elements = 1;
    for (int i = 0; i < t->n_dims; i++) {
        uint64_t e;
        if (!json_u53(shape->items[i], &e)) return bad(why, why_len, KVQ_ERR_SHAPE, file, key, "shape entry is not a count");
        if (e && t->n_elements > UINT64_MAX / 8 / e) return bad(why, why_len, KVQ_ERR_OVERFLOW, file, key, "shape product overflows");
        t->shape[i] = (int64_t)e;
        t->n_elements *= e;
    }
    if (!json_u53(offs->items[0], &t->begin) || !json_u53(offs->items[1], &t->end) || t->end < t->begin)
        return bad(why, why_len, KVQ_ERR_BOUNDS, file, key, "data_offsets are not 0 <= begin <= end");
    if (t->end - t->begin != t->n_elements * dtypes[d].size) {
        char msg[160];
        snprintf(msg, sizeof msg, "data_offsets span %llu bytes but dtype x shape needs %llu",
                 (unsigned long long)(t->end - t->begin), (unsigned long long)(t->n_elements * dtypes[d].size));
        return bad(why, why_len, KVQ_ERR_SHAPE, file, key, msg);
    }
    return KVQ_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const kvq_st_tensor *x = *(const kvq_st_tensor *const *)a, *y = *(const kvq_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_tname(const void *a, const void *b) {
    return strcmp((*(const kvq_st_tensor *const *)a)->name, (*(const kvq_st_tensor *const *)b)->name);
}

/* The tensors must tile [0, buf_len) exactly, and names must be unique. */
static kvq_status check_layout(kvq_safetensors *st, uint64_t buf_len, const char *file, char *why, size_t why_len) {
    size_t n = st->n_tensors;
    const kvq_st_tensor **o = malloc((n ? n : 1) * sizeof *o);
    if (!o) return bad(why, why_len, KVQ_ERR_NOMEM, file, "", "out of memory");
    for (size_t i = 0; i < n; i++) o[i] = &st->tensors[i];
    kvq_status s = KVQ_OK;
    qsort(o, n, sizeof *o, cmp_tname);
    for (size_t i = 1; i < n && !s; i++)
        if (!strcmp(o[i]->name, o[i - 1]->name)) s = bad(why, why_len, KVQ_ERR_FORMAT, file, o[i]->name, "appears twice");
    qsort(o, n, sizeof *o, cmp_begin);
    uint64_t pos = 0;
    for (size_t i = 0; i < n && !s; i++) {
        if (o[i]->begin > pos) s = bad(why, why_len, KVQ_ERR_OVERLAP, file, o[i]->name, "hole before its data");
        else if (o[i]->begin < pos) s = bad(why, why_len, KVQ_ERR_OVERLAP, file, o[i]->name, "data overlaps another tensor");
        else if (o[i]->end > buf_len) s = bad(why, why_len, KVQ_ERR_BOUNDS, file, o[i]->name, "data past the end of the file");
        pos = o[i]->end;
    }
    if (!s && pos != buf_len) {
        snprintf(why, why_len, "%s: %llu bytes after the last tensor", file, (unsigned long long)(buf_len - pos));
        s = KVQ_ERR_OVERLAP;
    }
    free(o);
    return s;
}

static kvq_status parse_header(const unsigned char *p, size_t len, const char *file, kvq_safetensors *out,
                               char *why, size_t why_len) {
    if (len < 8) {
        snprintf(why, why_len, "%s: %zu bytes: too short for a safetensors header", file, len);
        return KVQ_ERR_TRUNCATED;
    }
    uint64_t hl;
    memcpy(&hl, p, 8);
    if (hl > KVQ_ST_MAX_HEADER) {
        snprintf(why, why_len, "%s: header length %llu exceeds the %llu-byte cap", file, (unsigned long long)hl,
                 (unsigned long long)KVQ_ST_MAX_HEADER);
        return KVQ_ERR_OVERFLOW;
    }
    if (hl > len - 8) {
        snprintf(why, why_len, "%s: header length %llu but only %zu bytes follow", file, (unsigned long long)hl, len - 8);
        return KVQ_ERR_TRUNCATED;
    }
    out->header_len = hl;
    kvq_json *root;
    char jwhy[160];
    if (kvq_json_parse((const char *)p + 8, (size_t)hl, &root, jwhy, sizeof jwhy)) {
        snprintf(why, why_len, "%s: header: %s", file, jwhy);
        return KVQ_ERR_FORMAT;
    }
    kvq_status s = KVQ_OK;
    if (root->type != KVQ_JSON_OBJECT) {
        snprintf(why, why_len, "%s: header is not a JSON object", file);
        s = KVQ_ERR_FORMAT;
    } else if (!(out->tensors = calloc(root->len ? root->len : 1, sizeof *out->tensors))) {
        snprintf(why, why_len, "%s: out of memory", file);
        s = KVQ_ERR_NOMEM;
    }
    const unsigned char *data = p + 8 + hl;
    for (size_t i = 0; !s && i < root->len; i++) {
        if (!strcmp(root->keys[i], "__metadata__")) continue;
        kvq_st_tensor *t = &out->tensors[out->n_tensors];
        if (strlen(root->keys[i]) != root->key_lens[i]) {
            s = bad(why, why_len, KVQ_ERR_FORMAT, file, root->keys[i], "name contains NUL");
            break;
        }
        if (!(t->name = strdup(root->keys[i]))) {
            s = bad(why, why_len, KVQ_ERR_NOMEM, file, root->keys[i], "out of memory");
            break;
        }
        out->n_tensors++;
        if (!(s = parse_entry(root->keys[i], root->items[i], file, t, why, why_len))) t->data = data;
    }
    kvq_json_free(root);
    if (!s) s = check_layout(out, len - 8 - hl, file, why, why_len);
    for (size_t i = 0; !s && i < out->n_tensors; i++) out->tensors[i].data += out->tensors[i].begin;
    return s;
}

kvq_status kvq_safetensors_parse(const void *buf, size_t len, const char *name, kvq_safetensors *out,
                                 char *why, size_t why_len) {
    memset(out, 0, sizeof *out);
    if (!buf && len) return KVQ_ERR_ARG;
    kvq_status s = parse_header(buf, len, name, out, why, why_len);
    if (s) kvq_safetensors_free(out);
    return s;
}

void kvq_safetensors_free(kvq_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; st->tensors && i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

const kvq_st_tensor *kvq_safetensors_find(const kvq_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}
