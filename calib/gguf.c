/* gguf.c — the strict GGUF v2/v3 reader declared in gguf.h: header, typed metadata, tensor
 * table, data-section bounds/alignment/overlap checks. Little-endian hosts only (as GGUF files
 * in practice). Dequantization lives in gguf_quant.c; this file never converts tensor data. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapped_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian files by memcpy: port the readers for big-endian hosts"
#endif

struct kvq_gguf_private {
    kvq_mapped_file map;        /* zeroed when parsing a caller's buffer */
};

typedef struct cursor {
    const unsigned char *p;     /* (len) */
    size_t len, pos;
    const char *name;
    char *why;
    size_t why_len;
} cursor;

static kvq_status fail(cursor *c, kvq_status st, const char *what) {
    snprintf(c->why, c->why_len, "%s: byte %zu: %s", c->name, c->pos, what);
    return st;
}

static kvq_status need(cursor *c, uint64_t n, const char *what) {
    if (n > c->len - c->pos) return fail(c, KVQ_ERR_TRUNCATED, what);
    return KVQ_OK;
}

static kvq_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    kvq_status st = need(c, 4, what);
    if (st) return st;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return KVQ_OK;
}

static kvq_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    kvq_status st = need(c, 8, what);
    if (st) return st;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return KVQ_OK;
}

/* A length-prefixed string; *s points into the buffer. */
static kvq_status rd_str(cursor *c, const char **s, uint64_t *n, const char *what) {
    kvq_status st = rd_u64(c, n, what);
    if (st) return st;
    if ((st = need(c, *n, what))) return st;
    *s = (const char *)c->p + c->pos;
    c->pos += (size_t)*n;
    return KVQ_OK;
}

/* A NUL-terminated heap copy of a key or tensor name (which must not contain NUL). */
static kvq_status rd_name(cursor *c, char **out, const char *what) {
    const char *s;
    uint64_t n;
    kvq_status st = rd_str(c, &s, &n, what);
    if (st) return st;
    if (n == 0 || n > 65535 || memchr(s, 0, (size_t)n)) return fail(c, KVQ_ERR_FORMAT, what);
    *out = malloc((size_t)n + 1);
    if (!*out) return fail(c, KVQ_ERR_NOMEM, what);
    memcpy(*out, s, (size_t)n);
    (*out)[n] = 0;
    return KVQ_OK;
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case KVQ_GGUF_UINT8: case KVQ_GGUF_INT8: case KVQ_GGUF_BOOL: return 1;
    case KVQ_GGUF_UINT16: case KVQ_GGUF_INT16: return 2;
    case KVQ_GGUF_UINT32: case KVQ_GGUF_INT32: case KVQ_GGUF_FLOAT32: return 4;
    case KVQ_GGUF_UINT64: case KVQ_GGUF_INT64: case KVQ_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static kvq_status skip_scalar(cursor *c, uint32_t t, const char *key) {
    char msg[160];
    size_t sz = scalar_size(t);
    snprintf(msg, sizeof msg, "value of key '%.80s'", key);
    kvq_status st = need(c, sz, msg);
    if (st) return st;
    if (t == KVQ_GGUF_BOOL && c->p[c->pos] > 1) return fail(c, KVQ_ERR_FORMAT, "bool value not 0/1");
    c->pos += sz;
    return KVQ_OK;
}

static kvq_status parse_array(cursor *c, kvq_gguf_kv *kv) {
    char msg[160];
    snprintf(msg, sizeof msg, "array header of key '%.80s'", kv->key);
    uint32_t et;
    kvq_status st = rd_u32(c, &et, msg);
    if (st || (st = rd_u64(c, &kv->n, msg))) return st;
    kv->elem_type = (kvq_gguf_type)et;
    kv->val = c->p + c->pos;
    if (et == KVQ_GGUF_STRING) {
        if (kv->n > (c->len - c->pos) / 8) return fail(c, KVQ_ERR_TRUNCATED, msg);
        uint64_t *pos = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *pos);
        if (!pos) return fail(c, KVQ_ERR_NOMEM, msg);
        kv->str_pos = pos;
        size_t start = c->pos;
        for (uint64_t i = 0; i < kv->n; i++) {
            const char *s;
            uint64_t n;
            pos[i] = c->pos - start;
            if ((st = rd_str(c, &s, &n, msg))) return st;
        }
        return KVQ_OK;
    }
    size_t sz = scalar_size(et);
    if (!sz) return fail(c, KVQ_ERR_FORMAT, "array element type unknown or nested array");
    if (kv->n > (c->len - c->pos) / sz) return fail(c, KVQ_ERR_TRUNCATED, msg);
    if (et == KVQ_GGUF_BOOL)
        for (uint64_t i = 0; i < kv->n; i++)
            if (c->p[c->pos + i] > 1) return fail(c, KVQ_ERR_FORMAT, "bool array value not 0/1");
    c->pos += (size_t)(kv->n * sz);
    return KVQ_OK;
}

static kvq_status parse_kv(cursor *c, kvq_gguf_kv *kv) {
    char *key = NULL;
    kvq_status st = rd_name(c, &key, "metadata key");
    if (st) return st;
    kv->key = key;
    uint32_t t;
    if ((st = rd_u32(c, &t, "metadata value type"))) return st;
    kv->type = (kvq_gguf_type)t;
    kv->n = 1;
    if (t == KVQ_GGUF_ARRAY) return parse_array(c, kv);
    kv->val = c->p + c->pos;
    if (t == KVQ_GGUF_STRING) {
        const char *s;
        uint64_t n;
        return rd_str(c, &s, &n, "string value");
    }
    if (!scalar_size(t)) return fail(c, KVQ_ERR_FORMAT, "unknown metadata value type");
    return skip_scalar(c, t, key);
}

uint32_t kvq_ggml_block_elems(uint32_t type) {
    switch (type) {
    case 0: case 1: case 24: case 25: case 26: case 27: case 28: case 30: return 1;
    case 2: case 3: case 6: case 7: case 8: case 9: return 32;
    case 10: case 11: case 12: case 13: case 14: case 15: return 256;
    default: return 0;
    }
}

uint32_t kvq_ggml_block_bytes(uint32_t type) {
    static const uint32_t bytes[31] = {
        [0] = 4, [1] = 2, [2] = 18, [3] = 20, [6] = 22, [7] = 24, [8] = 34, [9] = 36,
        [10] = 84, [11] = 110, [12] = 144, [13] = 176, [14] = 210, [15] = 292,
        [24] = 1, [25] = 2, [26] = 4, [27] = 8, [28] = 8, [30] = 2};
    return type < 31 ? bytes[type] : 0;
}

const char *kvq_ggml_type_name(uint32_t type) {
    static const char *names[42] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [6] = "Q5_0", [7] = "Q5_1",
        [8] = "Q8_0", [9] = "Q8_1", [10] = "Q2_K", [11] = "Q3_K", [12] = "Q4_K", [13] = "Q5_K",
        [14] = "Q6_K", [15] = "Q8_K", [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS",
        [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S", [22] = "IQ2_S", [23] = "IQ4_XS",
        [24] = "I8", [25] = "I16", [26] = "I32", [27] = "I64", [28] = "F64", [29] = "IQ1_M",
        [30] = "BF16", [34] = "TQ1_0", [35] = "TQ2_0", [39] = "MXFP4", [40] = "NVFP4", [41] = "Q1_0"};
    return type < 42 && names[type] ? names[type] : "unknown";
}

static kvq_status parse_tensor_info(cursor *c, kvq_gguf_tensor *t) {
    char *name = NULL;
    kvq_status st = rd_name(c, &name, "tensor name");
    if (st) return st;
    t->name = name;
    char msg[160];
    snprintf(msg, sizeof msg, "tensor '%.80s'", name);
    if ((st = rd_u32(c, &t->n_dims, msg))) return st;
    if (t->n_dims < 1 || t->n_dims > KVQ_GGUF_MAX_DIMS) return fail(c, KVQ_ERR_SHAPE, msg);
    t->n_elements = 1;
    for (uint32_t d = 0; d < KVQ_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && (st = rd_u64(c, &t->ne[d], msg))) return st;
        if (t->ne[d] == 0) return fail(c, KVQ_ERR_SHAPE, msg);
        if (t->ne[d] > (uint64_t)INT64_MAX / t->n_elements) return fail(c, KVQ_ERR_OVERFLOW, msg);
        t->n_elements *= t->ne[d];
    }
    if ((st = rd_u32(c, &t->type, msg)) || (st = rd_u64(c, &t->offset, msg))) return st;
    uint32_t be = kvq_ggml_block_elems(t->type), bb = kvq_ggml_block_bytes(t->type);
    if (be) {
        if (t->ne[0] % be) return fail(c, KVQ_ERR_SHAPE, "tensor row length not a multiple of its block size");
        uint64_t blocks = t->n_elements / be;
        if (blocks > UINT64_MAX / bb) return fail(c, KVQ_ERR_OVERFLOW, msg);
        t->n_bytes = blocks * bb;
    }
    return KVQ_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const kvq_gguf_tensor *const *)a)->name, (*(const kvq_gguf_tensor *const *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
    uint64_t x = (*(const kvq_gguf_tensor *const *)a)->offset, y = (*(const kvq_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Data section: alignment, bounds, unique names, no overlaps. */
static kvq_status place_tensors(cursor *c, kvq_gguf *g) {
    uint64_t a = g->alignment, pad = (a - c->pos % a) % a;
    g->data_offset = c->pos + pad;
    if (g->n_tensors == 0) return KVQ_OK;
    const kvq_gguf_tensor **order = malloc((size_t)g->n_tensors * sizeof *order);
    if (!order) return fail(c, KVQ_ERR_NOMEM, "tensor table");
    kvq_status st = KVQ_OK;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        kvq_gguf_tensor *t = &g->tensors[i];
        order[i] = t;
        if (t->offset % a) {
            snprintf(c->why, c->why_len, "%s: tensor '%.80s': offset %llu not a multiple of alignment %llu",
                     c->name, t->name, (unsigned long long)t->offset, (unsigned long long)a);
            st = KVQ_ERR_MISALIGNED;
            goto out;
        }
        uint64_t room = g->data_offset <= c->len ? c->len - g->data_offset : 0;
        if (t->offset > room || t->n_bytes > room - t->offset) {
            snprintf(c->why, c->why_len, "%s: tensor '%.80s': data [%llu, +%llu) past the end of the file",
                     c->name, t->name, (unsigned long long)t->offset, (unsigned long long)t->n_bytes);
            st = KVQ_ERR_BOUNDS;
            goto out;
        }
        if (t->n_bytes) t->data = c->p + g->data_offset + t->offset;
    }
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_name);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(order[i]->name, order[i - 1]->name)) {
            snprintf(c->why, c->why_len, "%s: tensor '%.80s' appears twice", c->name, order[i]->name);
            st = KVQ_ERR_FORMAT;
            goto out;
        }
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_offset);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (order[i]->offset < order[i - 1]->offset + order[i - 1]->n_bytes) {
            snprintf(c->why, c->why_len, "%s: tensors '%.80s' and '%.80s' overlap", c->name,
                     order[i - 1]->name, order[i]->name);
            st = KVQ_ERR_OVERLAP;
            goto out;
        }
out:
    free(order);
    return st;
}

static kvq_status parse_all(cursor *c, kvq_gguf *g) {
    uint32_t magic;
    kvq_status st = rd_u32(c, &magic, "header");
    if (st) return st;
    if (memcmp(&magic, "GGUF", 4)) return fail(c, KVQ_ERR_MAGIC, "not a GGUF file (magic)");
    if ((st = rd_u32(c, &g->version, "header"))) return st;
    if (g->version != 2 && g->version != 3)
        return fail(c, KVQ_ERR_VERSION, g->version == 1 ? "GGUF v1 is not supported"
                                                        : "unsupported GGUF version (big-endian file?)");
    if ((st = rd_u64(c, &g->n_tensors, "header")) || (st = rd_u64(c, &g->n_kv, "header"))) return st;
    /* Each entry takes at least 13 (kv) or 32 (tensor info) bytes: bounds the allocations. */
    if (g->n_kv > (c->len - c->pos) / 13) return fail(c, KVQ_ERR_OVERFLOW, "metadata count larger than the file allows");
    if (g->n_tensors > (c->len - c->pos) / 32) return fail(c, KVQ_ERR_OVERFLOW, "tensor count larger than the file allows");
    g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
    g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
    if (!g->kv || !g->tensors) return fail(c, KVQ_ERR_NOMEM, "tables");
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(c, &g->kv[i]))) return st;
    g->alignment = KVQ_GGUF_DEFAULT_ALIGNMENT;
    if (kvq_gguf_find(g, "general.alignment")) {
        uint32_t a = 0;
        if (kvq_gguf_get_u32(g, "general.alignment", &a) || a == 0 || (a & (a - 1)) || a > (1u << 20))
            return fail(c, KVQ_ERR_FORMAT, "general.alignment must be a power of two up to 2^20");
        g->alignment = a;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor_info(c, &g->tensors[i]))) return st;
    return place_tensors(c, g);
}

kvq_status kvq_gguf_parse(const void *buf, size_t len, const char *name, kvq_gguf **out,
                          char *why, size_t why_len) {
    *out = NULL;
    kvq_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->priv = calloc(1, sizeof *g->priv))) {
        free(g);
        snprintf(why, why_len, "%s: out of memory", name);
        return KVQ_ERR_NOMEM;
    }
    snprintf(g->path, sizeof g->path, "%s", name);
    g->base = buf;
    g->size = len;
    cursor c = {buf, len, 0, name, why, why_len};
    kvq_status st = buf || !len ? parse_all(&c, g) : KVQ_ERR_ARG;
    if (st) {
        if (st == KVQ_ERR_ARG) snprintf(why, why_len, "%s: NULL buffer", name);
        kvq_gguf_close(g);
        return st;
    }
    *out = g;
    return KVQ_OK;
}

kvq_status kvq_gguf_open(const char *path, kvq_gguf **out, char *why, size_t why_len) {
    *out = NULL;
    kvq_mapped_file map;
    kvq_status st = kvq_mapped_file_open(path, &map, why, why_len);
    if (st) return st;
    if ((st = kvq_gguf_parse(map.data, map.size, path, out, why, why_len))) {
        kvq_mapped_file_close(&map);
        return st;
    }
    (*out)->priv->map = map;
    return KVQ_OK;
}

void kvq_gguf_close(kvq_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free((void *)g->kv[i].key);
            free((void *)g->kv[i].str_pos);
        }
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free((void *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    if (g->priv) kvq_mapped_file_close(&g->priv->map);
    free(g->priv);
    free(g);
}

const kvq_gguf_tensor *kvq_gguf_find_tensor(const kvq_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && !strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}
