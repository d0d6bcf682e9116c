/* codebook_file.c — the codebook file reader (docs/format.md): parses a memory buffer of known
 * length into a kvq_codebook, checking everything §5 lists in that order, never reading outside
 * the buffer, and naming the offending key, entry or offset in `why`. Then kvq_codebook_validate
 * (codebook.c) applies the semantic rules. The writer is codebook_write.c. libc + POSIX only. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "kvq_codebook.h"
#include "kvqc.h"
#include "le.h"

typedef struct {
    const char *name;        /* points into the buffer, name_len bytes, not terminated */
    size_t name_len, at;     /* at: offset of the record in the file */
    uint32_t type, elem;     /* metadata: type tag, array element type; entries: dtype */
    uint64_t count;          /* metadata arrays: element count */
    size_t val;              /* metadata: offset of the value (of the first array element) */
    uint32_t n_dims;         /* entries */
    uint64_t dims[KVQC_MAX_DIMS], offset, size;
    uint32_t crc;
    int used;
} rec;

typedef struct {
    const unsigned char *b;
    size_t len, pos, end;    /* cursor in the header: [pos, end), end = header_size */
    char *why;
    size_t why_len;
    rec *meta, *ent;         /* (n_meta), (n_entries) in file order */
    rec **meta_by_name, **ent_by_name;
    uint32_t n_meta, n_ent;
} pctx;

static kvq_status fail(pctx *c, kvq_status s, const char *fmt, ...) {
    if (c->why && c->why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, c->why_len, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* ---- cursor reads within the header ---- */
static kvq_status need(pctx *c, size_t n, const char *what) {
    if (n > c->end - c->pos)
        return fail(c, KVQ_ERR_TRUNCATED, "%s at offset %zu runs past the header end (%zu)", what,
                    c->pos, c->end);
    return KVQ_OK;
}
static kvq_status rd_u32(pctx *c, uint32_t *v, const char *what) {
    kvq_status st = need(c, 4, what);
    if (!st) *v = kvq_le_u32(c->b + c->pos), c->pos += 4;
    return st;
}
static kvq_status rd_u64(pctx *c, uint64_t *v, const char *what) {
    kvq_status st = need(c, 8, what);
    if (!st) *v = kvq_le_u64(c->b + c->pos), c->pos += 8;
    return st;
}

/* A string; as_name: 1..255 printable ASCII (keys, entry names), else UTF-8 without NUL. */
static kvq_status rd_str(pctx *c, const char **s, size_t *n, int as_name, const char *what) {
    uint32_t len;
    size_t at = c->pos;
    kvq_status st = rd_u32(c, &len, what);
    if (!st) st = need(c, len, what);
    if (st) return st;
    const unsigned char *p = c->b + c->pos;
    if (as_name) {
        if (len < 1 || len > KVQC_MAX_NAME)
            return fail(c, KVQ_ERR_FORMAT, "%s at offset %zu: name length %u not in 1..%d", what, at,
                        len, KVQC_MAX_NAME);
        for (uint32_t i = 0; i < len; i++)
            if (p[i] < 0x21 || p[i] > 0x7E)
                return fail(c, KVQ_ERR_FORMAT, "%s at offset %zu: byte 0x%02x in a name", what, at, p[i]);
    } else if (!kvqc_utf8_ok(p, len)) {
        return fail(c, KVQ_ERR_FORMAT, "%s at offset %zu: string is not UTF-8 without NUL", what, at);
    }
    *s = (const char *)p;
    *n = len;
    c->pos += len;
    return KVQ_OK;
}

static size_t scalar_size(uint32_t type) {
    return type == KVQC_T_U64 || type == KVQC_T_F64 ? 8 : 4;
}

static kvq_status skip_values(pctx *c, uint32_t type, uint64_t count, const char *what) {
    if (type == KVQC_T_STRING) {
        if (count > (c->end - c->pos) / 4)
            return fail(c, KVQ_ERR_TRUNCATED, "%s: %llu strings cannot fit before the header end",
                        what, (unsigned long long)count);
        for (uint64_t i = 0; i < count; i++) {
            const char *s;
            size_t n;
            kvq_status st = rd_str(c, &s, &n, 0, what);
            if (st) return st;
        }
        return KVQ_OK;
    }
    size_t es = scalar_size(type);
    if (count > (c->end - c->pos) / es)
        return fail(c, KVQ_ERR_TRUNCATED, "%s at offset %zu: %llu values run past the header end",
                    what, c->pos, (unsigned long long)count);
    c->pos += (size_t)count * es;
    return KVQ_OK;
}

static kvq_status parse_meta(pctx *c) {
    for (uint32_t i = 0; i < c->n_meta; i++) {
        rec *m = &c->meta[i];
        char what[48];
        snprintf(what, sizeof what, "metadata pair #%u", i);
        m->at = c->pos;
        kvq_status st = rd_str(c, &m->name, &m->name_len, 1, what);
        if (!st) st = rd_u32(c, &m->type, what);
        if (st) return st;
        if (m->type > KVQC_T_ARRAY)
            return fail(c, KVQ_ERR_FORMAT, "metadata '%.*s' at offset %zu: type tag %u unknown",
                        (int)m->name_len, m->name, m->at, m->type);
        m->elem = m->type;
        m->count = 1;
        if (m->type == KVQC_T_ARRAY) {
            st = rd_u32(c, &m->elem, what);
            if (!st) st = rd_u64(c, &m->count, what);
            if (st) return st;
            if (m->elem >= KVQC_T_ARRAY)
                return fail(c, KVQ_ERR_FORMAT, "metadata '%.*s' at offset %zu: array element type %u invalid",
                            (int)m->name_len, m->name, m->at, m->elem);
        }
        m->val = c->pos;
        if ((st = skip_values(c, m->elem, m->count, what))) return st;
    }
    return KVQ_OK;
}

static kvq_status parse_entries(pctx *c) {
    for (uint32_t i = 0; i < c->n_ent; i++) {
        rec *e = &c->ent[i];
        char what[48];
        snprintf(what, sizeof what, "entry #%u", i);
        e->at = c->pos;
        kvq_status st = rd_str(c, &e->name, &e->name_len, 1, what);
        if (!st) st = rd_u32(c, &e->type, what);
        if (!st) st = rd_u32(c, &e->n_dims, what);
        if (st) return st;
        int nl = (int)e->name_len;
        if (e->type != KVQC_D_F32 && e->type != KVQC_D_F64)
            return fail(c, KVQ_ERR_FORMAT, "entry '%.*s' at offset %zu: dtype %u unknown", nl, e->name,
                        e->at, e->type);
        if (e->n_dims < 1 || e->n_dims > KVQC_MAX_DIMS)
            return fail(c, KVQ_ERR_FORMAT, "entry '%.*s' at offset %zu: n_dims %u not in 1..%d", nl,
                        e->name, e->at, e->n_dims, KVQC_MAX_DIMS);
        uint64_t bytes = e->type == KVQC_D_F64 ? 8 : 4;
        for (uint32_t d = 0; d < e->n_dims && !st; d++) st = rd_u64(c, &e->dims[d], what);
        if (!st) st = rd_u64(c, &e->offset, what);
        if (!st) st = rd_u64(c, &e->size, what);
        if (!st) st = rd_u32(c, &e->crc, what);
        if (st) return st;
        for (uint32_t d = 0; d < e->n_dims; d++) {
            if (e->dims[d] == 0)
                return fail(c, KVQ_ERR_FORMAT, "entry '%.*s' at offset %zu: dimension %u is 0", nl,
                            e->name, e->at, d);
            if (bytes > UINT64_MAX / e->dims[d])
                return fail(c, KVQ_ERR_OVERFLOW, "entry '%.*s' at offset %zu: shape overflows 64 bits",
                            nl, e->name, e->at);
            bytes *= e->dims[d];
        }
        if (e->size != bytes)
            return fail(c, KVQ_ERR_SHAPE, "entry '%.*s' at offset %zu: size %llu != %llu bytes of its shape",
                        nl, e->name, e->at, (unsigned long long)e->size, (unsigned long long)bytes);
    }
    if (c->pos != c->end)
        return fail(c, KVQ_ERR_FORMAT, "entry table ends at %zu but header_size is %zu", c->pos, c->end);
    return KVQ_OK;
}

/* ---- name index (sorted, for duplicates and lookup) ---- */
static int cmp_name(const char *a, size_t na, const char *b, size_t nb) {
    int r = memcmp(a, b, na < nb ? na : nb);
    return r ? r : (na > nb) - (na < nb);
}
static int cmp_rec(const void *x, const void *y) {
    const rec *a = *(rec *const *)x, *b = *(rec *const *)y;
    return cmp_name(a->name, a->name_len, b->name, b->name_len);
}
static kvq_status index_names(pctx *c, rec *r, uint32_t n, rec ***out, const char *kind) {
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out) return KVQ_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++) (*out)[i] = &r[i];
    qsort(*out, n, sizeof **out, cmp_rec);
    for (uint32_t i = 1; i < n; i++)
        if (!cmp_rec(&(*out)[i - 1], &(*out)[i]))
            return fail(c, KVQ_ERR_FORMAT, "duplicate %s '%.*s' at offset %zu", kind,
                        (int)(*out)[i]->name_len, (*out)[i]->name, (*out)[i]->at);
    return KVQ_OK;
}
static rec *find(rec **idx, uint32_t n, const char *name) {
    size_t len = strlen(name), lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_name(idx[mid]->name, idx[mid]->name_len, name, len);
        if (!r) return idx[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---- payload layout and checksums ---- */
static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static kvq_status check_layout(pctx *c, uint64_t data_offset, uint64_t file_size, int verify) {
    uint64_t expect = data_offset;
    for (uint32_t i = 0; i < c->n_ent; i++) {
        const rec *e = &c->ent[i];
        int nl = (int)e->name_len;
        if (e->offset % KVQC_ALIGN)
            return fail(c, KVQ_ERR_MISALIGNED, "entry '%.*s': payload offset %llu is not a multiple of %d",
                        nl, e->name, (unsigned long long)e->offset, KVQC_ALIGN);
        if (e->size > UINT64_MAX - KVQC_ALIGN - e->offset)
            return fail(c, KVQ_ERR_OVERFLOW, "entry '%.*s': offset %llu + size %llu overflows", nl,
                        e->name, (unsigned long long)e->offset, (unsigned long long)e->size);
        if (e->offset != expect)
            return fail(c, KVQ_ERR_OVERLAP, "entry '%.*s': payload at %llu, expected %llu (%s)", nl,
                        e->name, (unsigned long long)e->offset, (unsigned long long)expect,
                        e->offset < expect ? "overlaps the previous one" : "leaves a hole");
        if (e->offset > file_size || e->size > file_size - e->offset)
            return fail(c, KVQ_ERR_BOUNDS, "entry '%.*s': payload [%llu, +%llu) ends past file_size %llu",
                        nl, e->name, (unsigned long long)e->offset, (unsigned long long)e->size,
                        (unsigned long long)file_size);
        expect = kvqc_align(e->offset + e->size);
    }
    if (expect != file_size)
        return fail(c, KVQ_ERR_OVERLAP, "file_size %llu but the payloads end at %llu",
                    (unsigned long long)file_size, (unsigned long long)expect);
    for (uint32_t i = 0; i < c->n_ent; i++) {
        const rec *e = &c->ent[i];
        uint32_t crc = kvq_crc32c(0, c->b + e->offset, (size_t)e->size);
        if (verify && crc != e->crc)
            return fail(c, KVQ_ERR_CHECKSUM, "entry '%.*s': payload CRC-32C %08x, table says %08x",
                        (int)e->name_len, e->name, crc, e->crc);
        size_t end = (size_t)(e->offset + e->size);
        if (!all_zero(c->b + end, (size_t)kvqc_align(end) - end))
            return fail(c, KVQ_ERR_FORMAT, "entry '%.*s': nonzero padding after its payload at %zu",
                        (int)e->name_len, e->name, end);
    }
    return KVQ_OK;
}

/* ---- fixed header ---- */
static kvq_status parse_fixed(pctx *c, kvq_codebook_file_info *fi, unsigned flags) {
    const unsigned char *b = c->b;
    size_t n = c->len < KVQC_MAGIC_LEN ? c->len : KVQC_MAGIC_LEN;
    if (n && memcmp(b, KVQC_MAGIC, n))
        return fail(c, KVQ_ERR_MAGIC, "first bytes are not the .kvqc magic 89 4B 56 51 0D 0A 1A 0A");
    if (c->len < KVQC_FIXED)
        return fail(c, KVQ_ERR_TRUNCATED, "%zu bytes, shorter than the 64-byte header", c->len);
    fi->version_major = kvq_le_u16(b + KVQC_OFF_MAJOR);
    fi->version_minor = kvq_le_u16(b + KVQC_OFF_MINOR);
    if (fi->version_major != KVQC_MAJOR)
        return fail(c, KVQ_ERR_VERSION, "format version %u.%u, this reader knows major %d",
                    fi->version_major, fi->version_minor, KVQC_MAJOR);
    fi->header_size = kvq_le_u32(b + KVQC_OFF_HEADER_SIZE);
    fi->file_size = kvq_le_u64(b + KVQC_OFF_FILE_SIZE);
    fi->data_offset = kvq_le_u64(b + KVQC_OFF_DATA_OFFSET);
    fi->n_meta = kvq_le_u32(b + KVQC_OFF_N_META);
    fi->n_entries = kvq_le_u32(b + KVQC_OFF_N_ENTRIES);
    fi->header_crc = kvq_le_u32(b + KVQC_OFF_CRC);
    if (fi->header_size < KVQC_FIXED || fi->header_size > KVQC_MAX_HEADER)
        return fail(c, KVQ_ERR_FORMAT, "header_size %u not in 64..%d", fi->header_size, KVQC_MAX_HEADER);
    if (fi->data_offset != kvqc_align(fi->header_size))
        return fail(c, KVQ_ERR_FORMAT, "data_offset %llu != align64(header_size %u)",
                    (unsigned long long)fi->data_offset, fi->header_size);
    if (fi->file_size % KVQC_ALIGN || fi->file_size < fi->data_offset)
        return fail(c, KVQ_ERR_FORMAT, "file_size %llu not a multiple of 64 at or after data_offset %llu",
                    (unsigned long long)fi->file_size, (unsigned long long)fi->data_offset);
    if (c->len < fi->file_size)
        return fail(c, KVQ_ERR_TRUNCATED, "%zu bytes, the header says file_size %llu", c->len,
                    (unsigned long long)fi->file_size);
    if (c->len > fi->file_size)
        return fail(c, KVQ_ERR_FORMAT, "%llu bytes after file_size %llu",
                    (unsigned long long)(c->len - fi->file_size), (unsigned long long)fi->file_size);
    if (fi->n_meta > KVQC_MAX_META || fi->n_entries > KVQC_MAX_ENTRIES)
        return fail(c, KVQ_ERR_FORMAT, "n_meta %u / n_entries %u over the caps %d / %d", fi->n_meta,
                    fi->n_entries, KVQC_MAX_META, KVQC_MAX_ENTRIES);
    size_t data_offset = (size_t)fi->data_offset;
    uint32_t crc = kvq_crc32c(kvq_crc32c(0, b, KVQC_OFF_CRC), b + KVQC_FIXED, data_offset - KVQC_FIXED);
    if (!(flags & KVQ_PARSE_SKIP_CHECKSUMS) && crc != fi->header_crc)
        return fail(c, KVQ_ERR_CHECKSUM, "header CRC-32C %08x, stored %08x", crc, fi->header_crc);
    if (!all_zero(b + fi->header_size, data_offset - fi->header_size))
        return fail(c, KVQ_ERR_FORMAT, "nonzero padding between header_size %u and data_offset",
                    fi->header_size);
    size_t room = fi->header_size - KVQC_FIXED;
    if (fi->n_meta > room / KVQC_MIN_META_BYTES || fi->n_entries > room / KVQC_MIN_ENTRY_BYTES)
        return fail(c, KVQ_ERR_TRUNCATED, "%u metadata pairs and %u entries cannot fit in %zu header bytes",
                    fi->n_meta, fi->n_entries, room);
    c->pos = KVQC_FIXED;
    c->end = fi->header_size;
    c->n_meta = fi->n_meta;
    c->n_ent = fi->n_entries;
    return KVQ_OK;
}

/* ---- from records to the codebook (docs/format.md §3, §4) ---- */
static kvq_status get_meta(pctx *c, const char *key, uint32_t type, uint32_t elem, rec **out) {
    rec *m = find(c->meta_by_name, c->n_meta, key);
    if (!m) return fail(c, KVQ_ERR_MISSING, "metadata key '%s' is missing", key);
    if (m->type != type || m->elem != elem)
        return fail(c, KVQ_ERR_DTYPE, "metadata '%s' at offset %zu has type %u/%u, expected %u/%u",
                    key, m->at, m->type, m->elem, type, elem);
    m->used = 1;
    *out = m;
    return KVQ_OK;
}
static kvq_status get_u32(pctx *c, const char *key, uint32_t *v) {
    rec *m;
    kvq_status st = get_meta(c, key, KVQC_T_U32, KVQC_T_U32, &m);
    if (!st) *v = kvq_le_u32(c->b + m->val);
    return st;
}
static kvq_status get_u64(pctx *c, const char *key, uint64_t *v) {
    rec *m;
    kvq_status st = get_meta(c, key, KVQC_T_U64, KVQC_T_U64, &m);
    if (!st) *v = kvq_le_u64(c->b + m->val);
    return st;
}
static kvq_status get_f32(pctx *c, const char *key, float *v) {
    rec *m;
    kvq_status st = get_meta(c, key, KVQC_T_F32, KVQC_T_F32, &m);
    if (!st) *v = kvq_le_f32(c->b + m->val);
    return st;
}
/* Enumerations: a u32 below `limit`. */
static kvq_status get_enum(pctx *c, const char *key, uint32_t limit, uint32_t *v) {
    kvq_status st = get_u32(c, key, v);
    if (!st && *v >= limit)
        return fail(c, KVQ_ERR_FORMAT, "metadata '%s' = %u, expected < %u", key, *v, limit);
    return st;
}
static kvq_status get_str(pctx *c, const char *key, char *dst, size_t cap) {
    rec *m;
    kvq_status st = get_meta(c, key, KVQC_T_STRING, KVQC_T_STRING, &m);
    if (st) return st;
    uint32_t n = kvq_le_u32(c->b + m->val);
    if (n >= cap)
        return fail(c, KVQ_ERR_SHAPE, "metadata '%s': %u bytes, at most %zu fit", key, n, cap - 1);
    memcpy(dst, c->b + m->val + 4, n);
    dst[n] = 0;
    return KVQ_OK;
}
/* Per-layer array: returns the offset of its first element. */
static kvq_status get_arr(pctx *c, const char *key, uint32_t elem, uint32_t n, size_t *val) {
    rec *m;
    kvq_status st = get_meta(c, key, KVQC_T_ARRAY, elem, &m);
    if (st) return st;
    if (m->count != n)
        return fail(c, KVQ_ERR_SHAPE, "metadata '%s' has %llu elements, n_layers is %u", key,
                    (unsigned long long)m->count, n);
    *val = m->val;
    return KVQ_OK;
}

/* A 1-D entry of `dtype` and length n; *e = NULL when absent and not required. */
static kvq_status get_entry(pctx *c, const char *name, uint32_t dtype, uint64_t n, int required,
                            const rec **e) {
    rec *r = find(c->ent_by_name, c->n_ent, name);
    *e = r;
    if (!r) return required ? fail(c, KVQ_ERR_MISSING, "entry '%s' is missing", name) : KVQ_OK;
    r->used = 1;
    if (r->type != dtype)
        return fail(c, KVQ_ERR_DTYPE, "entry '%s' has dtype %u, expected %u", name, r->type, dtype);
    if (r->n_dims != 1 || r->dims[0] != n)
        return fail(c, KVQ_ERR_SHAPE, "entry '%s' is not of shape (%llu)", name, (unsigned long long)n);
    return KVQ_OK;
}
static void copy_f32(float *dst, const unsigned char *src, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) dst[i] = kvq_le_f32(src + 4 * i);
}

static kvq_status get_model(pctx *c, kvq_codebook *out) {
    kvq_model_identity *m = &out->model;
    uint32_t e1, e2;
    kvq_status st;
    if ((st = get_str(c, "model.architecture", m->architecture, sizeof m->architecture)) ||
        (st = get_u32(c, "model.n_layers", &m->n_layers)) ||
        (st = get_u32(c, "model.n_heads", &m->n_heads)) ||
        (st = get_u32(c, "model.n_kv_heads", &m->n_kv_heads)) ||
        (st = get_u32(c, "model.head_dim", &m->head_dim)) ||
        (st = get_u32(c, "model.hidden", &m->hidden)) ||
        (st = get_u32(c, "model.vocab", &m->vocab)) ||
        (st = get_f32(c, "model.rope_theta", &m->rope_theta)) ||
        (st = get_enum(c, "model.rope_scaling", 3, &e1)) ||
        (st = get_f32(c, "model.rope_scaling_factor", &m->rope_scaling_factor)) ||
        (st = get_f32(c, "model.rope_low_freq_factor", &m->rope_low_freq_factor)) ||
        (st = get_f32(c, "model.rope_high_freq_factor", &m->rope_high_freq_factor)) ||
        (st = get_u32(c, "model.rope_original_max_pos", &m->rope_original_max_pos)) ||
        (st = get_enum(c, "model.rope_convention", 2, &e2)) ||
        (st = get_u64(c, "model.fingerprint", &m->fingerprint)) ||
        (st = get_u32(c, "quant.n_sink", &out->n_sink)))
        return st;
    m->rope_scaling = (kvq_rope_scaling)e1;
    m->rope_convention = (kvq_rope_convention)e2;
    return KVQ_OK;
}

static kvq_status get_provenance(pctx *c, kvq_provenance *p) {
    uint32_t e1, e2;
    kvq_status st;
    if ((st = get_str(c, "provenance.tool_version", p->tool_version, sizeof p->tool_version)) ||
        (st = get_str(c, "provenance.calib_text", p->calib_text, sizeof p->calib_text)) ||
        (st = get_str(c, "provenance.calib_text_sha256", p->calib_text_sha256, sizeof p->calib_text_sha256)) ||
        (st = get_u32(c, "provenance.samples", &p->samples)) ||
        (st = get_u32(c, "provenance.seq_len", &p->seq_len)) ||
        (st = get_u64(c, "provenance.seed", &p->seed)) ||
        (st = get_u64(c, "provenance.kmeans_seed", &p->kmeans_seed)) ||
        (st = get_enum(c, "provenance.weighting", 3, &e1)) ||
        (st = get_enum(c, "provenance.solver", 2, &e2)) ||
        (st = get_u32(c, "provenance.kmeans_iters", &p->kmeans_iters)) ||
        (st = get_u32(c, "provenance.histogram_bins", &p->histogram_bins)))
        return st;
    p->weighting = (kvq_fisher_weighting)e1;
    p->solver = (kvq_kmeans_solver)e2;
    return KVQ_OK;
}

/* One tensor kind (tc = 'k' or 'v') of every layer. */
static kvq_status get_tensors(pctx *c, kvq_codebook *out, char tc, uint32_t kv_dim) {
    static const char *const names[8] = {"bits", "qnorm", "qnorm_scale", "qnorm_offset", "axis",
                                         "outlier_fraction", "outlier_cap", "residual"};
    static const uint32_t types[8] = {KVQC_T_U32, KVQC_T_U32, KVQC_T_F32, KVQC_T_F32, KVQC_T_U32,
                                      KVQC_T_F32, KVQC_T_U32, KVQC_T_U32};
    static const uint32_t limit[8] = {KVQ_MAX_BITS + 1, 2, 0, 0, 3, 0, 0, 2};
    uint32_t n = out->model.n_layers;
    size_t val[8];
    char key[64];
    kvq_status st;
    for (int a = 0; a < 8; a++) {
        snprintf(key, sizeof key, "%c.%s", tc, names[a]);
        if ((st = get_arr(c, key, types[a], n, &val[a]))) return st;
    }
    for (uint32_t l = 0; l < n; l++) {
        kvq_tensor_codebook *t = tc == 'k' ? &out->layers[l].k : &out->layers[l].v;
        uint32_t u[8];
        for (int a = 0; a < 8; a++) {
            u[a] = kvq_le_u32(c->b + val[a] + 4 * (size_t)l);
            if (limit[a] && u[a] >= limit[a])
                return fail(c, KVQ_ERR_FORMAT, "metadata '%c.%s'[%u] = %u, expected < %u", tc,
                            names[a], l, u[a], limit[a]);
        }
        if (u[0] == 0) return fail(c, KVQ_ERR_FORMAT, "metadata '%c.bits'[%u] = 0", tc, l);
        const rec *ce, *ze, *he;
        int per_channel = u[4] == KVQ_NORM_PER_CHANNEL;
        char name[64];
        snprintf(name, sizeof name, "layer.%u.%c.centroids", l, tc);
        if ((st = get_entry(c, name, KVQC_D_F32, (uint64_t)1 << u[0], 1, &ce))) return st;
        snprintf(name, sizeof name, "layer.%u.%c.zero_point", l, tc);
        if ((st = get_entry(c, name, KVQC_D_F32, kv_dim, per_channel, &ze))) return st;
        snprintf(name, sizeof name, "layer.%u.%c.half_range", l, tc);
        if ((st = get_entry(c, name, KVQC_D_F32, kv_dim, per_channel, &he))) return st;
        if (!per_channel && (ze || he))
            return fail(c, KVQ_ERR_SHAPE, "layer %u %c: per-token axis but zero_point/half_range present", l, tc);
        if ((st = kvq_tensor_codebook_init(t, u[0], (kvq_norm_axis)u[4], kv_dim)))
            return st == KVQ_ERR_ARG ? fail(c, KVQ_ERR_SHAPE, "layer %u %c: kv_dim is 0", l, tc) : st;
        copy_f32(t->centroids, c->b + ce->offset, ce->dims[0]);
        if (per_channel) {
            copy_f32(t->zero_point, c->b + ze->offset, kv_dim);
            copy_f32(t->half_range, c->b + he->offset, kv_dim);
        }
        t->qnorm = (int32_t)u[1];
        t->qnorm_scale = kvq_le_f32(c->b + val[2] + 4 * (size_t)l);
        t->qnorm_offset = kvq_le_f32(c->b + val[3] + 4 * (size_t)l);
        t->outlier_fraction = kvq_le_f32(c->b + val[5] + 4 * (size_t)l);
        t->outlier_cap = u[6];
        t->residual = (kvq_outlier_residual)u[7];
    }
    return KVQ_OK;
}

static kvq_status get_diag(pctx *c, const char *name, uint32_t n, double **dst) {
    const rec *e;
    kvq_status st = get_entry(c, name, KVQC_D_F64, n, 0, &e);
    if (st || !e) return st;
    if (!(*dst = malloc((size_t)n * sizeof **dst))) return KVQ_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++) (*dst)[i] = kvq_le_f64(c->b + e->offset + 8 * (size_t)i);
    return KVQ_OK;
}

static kvq_status extract(pctx *c, kvq_codebook *out) {
    kvq_status st = get_model(c, out);
    if (!st) st = get_provenance(c, &out->provenance);
    if (st) return st;
    uint32_t n = out->model.n_layers;
    if (n < 1 || n > KVQ_MAX_LAYERS)
        return fail(c, KVQ_ERR_FORMAT, "model.n_layers = %u not in 1..%d", n, KVQ_MAX_LAYERS);
    uint64_t kv_dim = (uint64_t)out->model.n_kv_heads * out->model.head_dim;
    if (kv_dim > UINT32_MAX)
        return fail(c, KVQ_ERR_OVERFLOW, "kv_dim = n_kv_heads x head_dim overflows 32 bits");
    if (!(out->layers = calloc(n, sizeof *out->layers))) return KVQ_ERR_NOMEM;
    if ((st = get_tensors(c, out, 'k', (uint32_t)kv_dim)) || (st = get_tensors(c, out, 'v', (uint32_t)kv_dim)))
        return st;
    kvq_diagnostics *d = &out->diag;
    if ((st = get_diag(c, "diag.k_objective", n, &d->k_objective)) ||
        (st = get_diag(c, "diag.v_objective", n, &d->v_objective)) ||
        (st = get_diag(c, "diag.k_outlier_rate", n, &d->k_outlier_rate)) ||
        (st = get_diag(c, "diag.v_outlier_rate", n, &d->v_outlier_rate)))
        return st;
    return KVQ_OK;
}

static kvq_status parse_all(pctx *c, unsigned flags, kvq_codebook *out, kvq_codebook_file_info *fi) {
    kvq_status st = parse_fixed(c, fi, flags);
    if (st) return st;
    c->meta = calloc(c->n_meta ? c->n_meta : 1, sizeof *c->meta);
    c->ent = calloc(c->n_ent ? c->n_ent : 1, sizeof *c->ent);
    if (!c->meta || !c->ent) return KVQ_ERR_NOMEM;
    if ((st = parse_meta(c)) || (st = parse_entries(c))) return st;
    if ((st = index_names(c, c->meta, c->n_meta, &c->meta_by_name, "metadata key")) ||
        (st = index_names(c, c->ent, c->n_ent, &c->ent_by_name, "entry name")))
        return st;
    if ((st = check_layout(c, fi->data_offset, fi->file_size, !(flags & KVQ_PARSE_SKIP_CHECKSUMS))))
        return st;
    if ((st = extract(c, out))) return st;
    for (uint32_t i = 0; i < c->n_meta; i++) fi->n_unknown_meta += !c->meta[i].used;
    for (uint32_t i = 0; i < c->n_ent; i++) {
        fi->n_unknown_entries += !c->ent[i].used;
        fi->payload_bytes += c->ent[i].size;
    }
    return kvq_codebook_validate(out, c->why, c->why_len);
}

kvq_status kvq_codebook_parse_ex(const void *buf, size_t len, unsigned flags, kvq_codebook *out,
                                 kvq_codebook_file_info *info, char *why, size_t why_len) {
    if (why && why_len) why[0] = 0;
    if (!out || (!buf && len)) return KVQ_ERR_ARG;
    memset(out, 0, sizeof *out);
    kvq_codebook_file_info fi;
    memset(&fi, 0, sizeof fi);
    pctx c = {.b = buf, .len = len, .why = why, .why_len = why_len};
    kvq_status st = parse_all(&c, flags, out, &fi);
    free(c.meta);
    free(c.ent);
    free(c.meta_by_name);
    free(c.ent_by_name);
    if (st) kvq_codebook_free(out);
    if (info) *info = fi;
    return st;
}

kvq_status kvq_codebook_parse(const void *buf, size_t len, kvq_codebook *out, char *why, size_t why_len) {
    return kvq_codebook_parse_ex(buf, len, 0, out, NULL, why, why_len);
}

kvq_status kvq_codebook_read_ex(const char *path, unsigned flags, kvq_codebook *out,
                                kvq_codebook_file_info *info, char *why, size_t why_len) {
    if (why && why_len) why[0] = 0;
    if (!path || !out) return KVQ_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (why && why_len) snprintf(why, why_len, "%s: cannot open as a regular file", path);
        if (fd >= 0) close(fd);
        return KVQ_ERR_IO;
    }
    if ((uint64_t)sb.st_size > KVQ_CODEBOOK_MAX_FILE) {
        close(fd);
        if (why && why_len) snprintf(why, why_len, "%s: %lld bytes, over the reader's 1 GiB limit",
                                     path, (long long)sb.st_size);
        return KVQ_ERR_UNSUPPORTED;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) { close(fd); return KVQ_ERR_NOMEM; }
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            if (why && why_len) snprintf(why, why_len, "%s: read failed at byte %zu", path, got);
            close(fd);
            free(buf);
            return KVQ_ERR_IO;
        }
        if (k == 0) break;   /* the file shrank: parse what was read (it will be truncated) */
        got += (size_t)k;
    }
    close(fd);
    kvq_status st = kvq_codebook_parse_ex(buf, got, flags, out, info, why, why_len);
    free(buf);
    return st;
}

kvq_status kvq_codebook_read(const char *path, kvq_codebook *out, char *why, size_t why_len) {
    return kvq_codebook_read_ex(path, 0, out, NULL, why, why_len);
}
