/* gguf_meta.c — typed metadata getters of gguf.h (lookup by key, range-checked integer
 * conversion, array element access). Parsing and validation are in gguf.c: values reached here
 * were already bounds-checked. */
#include "gguf.h"

#include <string.h>

const kvq_gguf_kv *kvq_gguf_find(const kvq_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

/* Integer value widened to int64 (signed types) or uint64 (unsigned); 0 when not an integer. */
static int get_int(const kvq_gguf_kv *kv, int *is_signed, int64_t *s, uint64_t *u) {
    const unsigned char *v = kv->val;
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
    int8_t i8; int16_t i16; int32_t i32; int64_t i64;
    *is_signed = 0;
    switch (kv->type) {
    case KVQ_GGUF_UINT8: memcpy(&u8, v, 1); *u = u8; return 1;
    case KVQ_GGUF_UINT16: memcpy(&u16, v, 2); *u = u16; return 1;
    case KVQ_GGUF_UINT32: memcpy(&u32, v, 4); *u = u32; return 1;
    case KVQ_GGUF_UINT64: memcpy(&u64, v, 8); *u = u64; return 1;
    default: break;
    }
    *is_signed = 1;
    switch (kv->type) {
    case KVQ_GGUF_INT8: memcpy(&i8, v, 1); *s = i8; return 1;
    case KVQ_GGUF_INT16: memcpy(&i16, v, 2); *s = i16; return 1;
    case KVQ_GGUF_INT32: memcpy(&i32, v, 4); *s = i32; return 1;
    case KVQ_GGUF_INT64: memcpy(&i64, v, 8); *s = i64; return 1;
    default: return 0;
    }
}

/* Integer value of `key` within [lo, hi]; stored both ways. */
static kvq_status lookup_int(const kvq_gguf *g, const char *key, int64_t lo, uint64_t hi,
                             uint64_t *out_u, int64_t *out_s) {
    const kvq_gguf_kv *kv = kvq_gguf_find(g, key);
    if (!kv) return KVQ_ERR_MISSING;
    int sgn;
    int64_t s = 0;
    uint64_t u = 0;
    if (!get_int(kv, &sgn, &s, &u)) return KVQ_ERR_DTYPE;
    if (sgn) {
        if (s < lo || (s >= 0 && (uint64_t)s > hi)) return KVQ_ERR_DTYPE;
        *out_s = s;
        *out_u = (uint64_t)s;
    } else {
        if (u > hi) return KVQ_ERR_DTYPE;
        *out_u = u;
        *out_s = (int64_t)u;
    }
    return KVQ_OK;
}

kvq_status kvq_gguf_get_u32(const kvq_gguf *g, const char *key, uint32_t *out) {
    uint64_t u;
    int64_t s;
    kvq_status st = lookup_int(g, key, 0, UINT32_MAX, &u, &s);
    if (!st) *out = (uint32_t)u;
    return st;
}

kvq_status kvq_gguf_get_i32(const kvq_gguf *g, const char *key, int32_t *out) {
    uint64_t u;
    int64_t s;
    kvq_status st = lookup_int(g, key, INT32_MIN, INT32_MAX, &u, &s);
    if (!st) *out = (int32_t)s;
    return st;
}

kvq_status kvq_gguf_get_u64(const kvq_gguf *g, const char *key, uint64_t *out) {
    uint64_t u;
    int64_t s;
    kvq_status st = lookup_int(g, key, 0, UINT64_MAX, &u, &s);
    if (!st) *out = u;
    return st;
}

kvq_status kvq_gguf_get_f32(const kvq_gguf *g, const char *key, float *out) {
    const kvq_gguf_kv *kv = kvq_gguf_find(g, key);
    if (!kv) return KVQ_ERR_MISSING;
    if (kv->type == KVQ_GGUF_FLOAT32) {
        memcpy(out, kv->val, 4);
        return KVQ_OK;
    }
    if (kv->type == KVQ_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
        return KVQ_OK;
    }
    return KVQ_ERR_DTYPE;
}

kvq_status kvq_gguf_get_bool(const kvq_gguf *g, const char *key, int *out) {
    const kvq_gguf_kv *kv = kvq_gguf_find(g, key);
    if (!kv) return KVQ_ERR_MISSING;
    if (kv->type != KVQ_GGUF_BOOL) return KVQ_ERR_DTYPE;
    *out = kv->val[0] != 0;
    return KVQ_OK;
}

kvq_status kvq_gguf_get_str(const kvq_gguf *g, const char *key, const char **s, size_t *len) {
    const kvq_gguf_kv *kv = kvq_gguf_find(g, key);
    if (!kv) return KVQ_ERR_MISSING;
    if (kv->type != KVQ_GGUF_STRING) return KVQ_ERR_DTYPE;
    uint64_t n;
    memcpy(&n, kv->val, 8);
    *s = (const char *)kv->val + 8;
    *len = (size_t)n;
    return KVQ_OK;
}

kvq_status kvq_gguf_get_array(const kvq_gguf *g, const char *key, kvq_gguf_type elem,
                              const kvq_gguf_kv **arr) {
    const kvq_gguf_kv *kv = kvq_gguf_find(g, key);
    if (!kv) return KVQ_ERR_MISSING;
    if (kv->type != KVQ_GGUF_ARRAY || kv->elem_type != elem) return KVQ_ERR_DTYPE;
    *arr = kv;
    return KVQ_OK;
}

void kvq_gguf_arr_str(const kvq_gguf_kv *arr, uint64_t i, const char **s, size_t *len) {
    const unsigned char *p = arr->val + arr->str_pos[i];
    uint64_t n;
    memcpy(&n, p, 8);
    *s = (const char *)p + 8;
    *len = (size_t)n;
}

float kvq_gguf_arr_f32(const kvq_gguf_kv *arr, uint64_t i) {
    float f;
    memcpy(&f, arr->val + 4 * i, 4);
    return f;
}

int32_t kvq_gguf_arr_i32(const kvq_gguf_kv *arr, uint64_t i) {
    int32_t v;
    memcpy(&v, arr->val + 4 * i, 4);
    return v;
}

uint32_t kvq_gguf_arr_u32(const kvq_gguf_kv *arr, uint64_t i) {
    uint32_t v;
    memcpy(&v, arr->val + 4 * i, 4);
    return v;
}
