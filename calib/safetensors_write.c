/* safetensors_write.c — the streaming, atomic .safetensors writer of safetensors_write.h. The
 * header is padded with spaces to a multiple of 8 bytes (as the reference writer does) so tensor
 * data starts aligned. Not a reader. */
#include "safetensors_write.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t kvq_st_out_bytes(const kvq_st_out *t) {
    if (!t || t->n_dims < 0 || t->n_dims > KVQ_ST_MAX_DIMS || (unsigned)t->dtype >= KVQ_ST_DTYPE_COUNT) return 0;
    uint64_t n = kvq_st_dtype_size(t->dtype);
    for (int i = 0; i < t->n_dims; i++) {
        if (t->shape[i] <= 0 || (uint64_t)t->shape[i] > UINT64_MAX / n) return 0;
        n *= (uint64_t)t->shape[i];
    }
    return n;
}

static int name_ok(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\') return 0;
    return 1;
}

/* Append printf output to a growing buffer. */
typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(strbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = 1; return; }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) { b->failed = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The JSON header for tensors[0..n), padded with spaces to a multiple of 8. */
static kvq_status build_header(strbuf *b, const kvq_st_out *t, size_t n, char *why, size_t why_len) {
    uint64_t off = 0;
    sb_add(b, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = kvq_st_out_bytes(&t[i]);
        if (!name_ok(t[i].name) || !bytes) {
            snprintf(why, why_len, "tensor %zu ('%s'): bad name, dtype or shape", i, t[i].name ? t[i].name : "(null)");
            return KVQ_ERR_ARG;
        }
        if (off > UINT64_MAX - bytes) { snprintf(why, why_len, "total tensor bytes overflow"); return KVQ_ERR_OVERFLOW; }
        sb_add(b, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, kvq_st_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].n_dims; d++) sb_add(b, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_add(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_add(b, "}");
    while (!b->failed && b->len % 8) sb_add(b, " ");
    if (b->failed) { snprintf(why, why_len, "cannot build the safetensors header"); return KVQ_ERR_NOMEM; }
    return KVQ_OK;
}

static kvq_status write_all(FILE *f, const void *p, size_t n, const char *path, char *why, size_t why_len) {
    if (fwrite(p, 1, n, f) != n) {
        snprintf(why, why_len, "%s: write failed: %s", path, strerror(errno));
        return KVQ_ERR_IO;
    }
    return KVQ_OK;
}

static kvq_status write_body(FILE *f, const char *tmp, const strbuf *hdr, const kvq_st_out *t, size_t n,
                             kvq_st_fill_fn fill, void *user, char *why, size_t why_len) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr->len >> (8 * i));
    kvq_status st = write_all(f, len8, 8, tmp, why, why_len);
    if (!st) st = write_all(f, hdr->p, hdr->len, tmp, why, why_len);
    for (size_t i = 0; i < n && !st; i++) {
        uint64_t bytes = kvq_st_out_bytes(&t[i]);
        if (bytes > SIZE_MAX) { snprintf(why, why_len, "tensor '%s' too large", t[i].name); return KVQ_ERR_OVERFLOW; }
        void *buf = malloc((size_t)bytes);
        if (!buf) {
            snprintf(why, why_len, "cannot allocate %llu bytes for tensor '%s'", (unsigned long long)bytes, t[i].name);
            return KVQ_ERR_NOMEM;
        }
        st = fill(user, i, buf, (size_t)bytes, why, why_len);
        if (!st) st = write_all(f, buf, (size_t)bytes, tmp, why, why_len);
        free(buf);
    }
    if (!st && (fflush(f) || fsync(fileno(f)))) {
        snprintf(why, why_len, "%s: flush failed: %s", tmp, strerror(errno));
        st = KVQ_ERR_IO;
    }
    return st;
}

kvq_status kvq_safetensors_write(const char *path, const kvq_st_out *tensors, size_t n, kvq_st_fill_fn fill,
                                 void *user, char *why, size_t why_len) {
    if (!path || (n && !tensors) || !fill) { snprintf(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    strbuf hdr = {0};
    kvq_status st = build_header(&hdr, tensors, n, why, why_len);
    if (st) { free(hdr.p); return st; }
    size_t tl = strlen(path) + 16;
    char *tmp = malloc(tl);
    if (!tmp) { free(hdr.p); snprintf(why, why_len, "out of memory"); return KVQ_ERR_NOMEM; }
    snprintf(tmp, tl, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        snprintf(why, why_len, "%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) { close(fd); unlink(tmp); }
        free(tmp);
        free(hdr.p);
        return KVQ_ERR_IO;
    }
    st = write_body(f, tmp, &hdr, tensors, n, fill, user, why, why_len);
    if (fclose(f) && !st) { snprintf(why, why_len, "%s: close failed: %s", tmp, strerror(errno)); st = KVQ_ERR_IO; }
    if (!st && rename(tmp, path)) { snprintf(why, why_len, "%s: rename failed: %s", path, strerror(errno)); st = KVQ_ERR_IO; }
    if (st) unlink(tmp);
    free(tmp);
    free(hdr.p);
    return st;
}
