/* codebook_write.c — the codebook file writer (docs/format.md §7): kvq_codebook_serialize builds
 * the exact bytes of a validated codebook (deterministic: same codebook, same bytes) and
 * kvq_codebook_write stores them atomically (temp file in the same directory, fsync, rename, fsync
 * of the directory). The reader is codebook_file.c. libc + POSIX only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "kvq_codebook.h"
#include "kvqc.h"
#include "le.h"

/* ---- growable byte buffer ---- */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    int oom;
    uint32_t n_keys;     /* metadata pairs written */
} wbuf;

static unsigned char *wb_take(wbuf *w, size_t n) {
    if (w->oom) return NULL;
    if (n > SIZE_MAX - w->len) { w->oom = 1; return NULL; }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n) {
            if (cap > SIZE_MAX / 2) { w->oom = 1; return NULL; }
            cap *= 2;
        }
        unsigned char *q = realloc(w->p, cap);
        if (!q) { w->oom = 1; return NULL; }
        memset(q + w->cap, 0, cap - w->cap);
        w->p = q;
        w->cap = cap;
    }
    unsigned char *r = w->p + w->len;
    w->len += n;
    return r;
}
static void wb_u32(wbuf *w, uint32_t v) { unsigned char *q = wb_take(w, 4); if (q) kvq_put_u32(q, v); }
static void wb_u64(wbuf *w, uint64_t v) { unsigned char *q = wb_take(w, 8); if (q) kvq_put_u64(q, v); }
static void wb_f32(wbuf *w, float v) { unsigned char *q = wb_take(w, 4); if (q) kvq_put_f32(q, v); }
static void wb_str(wbuf *w, const char *s, size_t cap) {
    size_t n = strnlen(s, cap);   /* validated: terminated within cap */
    wb_u32(w, (uint32_t)n);
    unsigned char *q = wb_take(w, n);
    if (q) memcpy(q, s, n);
}

/* ---- metadata ---- */
static void key(wbuf *w, const char *k, uint32_t type) {
    wb_str(w, k, KVQC_MAX_NAME);
    wb_u32(w, type);
    w->n_keys++;
}
static void m_u32(wbuf *w, const char *k, uint32_t v) { key(w, k, KVQC_T_U32); wb_u32(w, v); }
static void m_u64(wbuf *w, const char *k, uint64_t v) { key(w, k, KVQC_T_U64); wb_u64(w, v); }
static void m_f32(wbuf *w, const char *k, float v) { key(w, k, KVQC_T_F32); wb_f32(w, v); }
static void m_str(wbuf *w, const char *k, const char *v, size_t cap) {
    key(w, k, KVQC_T_STRING);
    wb_str(w, v, cap);
}

/* The per-layer arrays of one tensor kind, in the order of docs/format.md §3. */
static void layer_arrays(wbuf *w, const kvq_codebook *cb, char tc) {
    static const char *const names[] = {"bits", "qnorm", "qnorm_scale", "qnorm_offset", "axis",
                                        "outlier_fraction", "outlier_cap", "residual"};
    static const uint32_t types[] = {KVQC_T_U32, KVQC_T_U32, KVQC_T_F32, KVQC_T_F32, KVQC_T_U32,
                                     KVQC_T_F32, KVQC_T_U32, KVQC_T_U32};
    uint32_t n = cb->model.n_layers;
    for (int a = 0; a < 8; a++) {
        char k[32];
        snprintf(k, sizeof k, "%c.%s", tc, names[a]);
        key(w, k, KVQC_T_ARRAY);
        wb_u32(w, types[a]);
        wb_u64(w, n);
        for (uint32_t l = 0; l < n; l++) {
            const kvq_tensor_codebook *t = tc == 'k' ? &cb->layers[l].k : &cb->layers[l].v;
            switch (a) {
            case 0: wb_u32(w, t->bits); break;
            case 1: wb_u32(w, (uint32_t)t->qnorm); break;
            case 2: wb_f32(w, t->qnorm_scale); break;
            case 3: wb_f32(w, t->qnorm_offset); break;
            case 4: wb_u32(w, (uint32_t)t->axis); break;
            case 5: wb_f32(w, t->outlier_fraction); break;
            case 6: wb_u32(w, t->outlier_cap); break;
            default: wb_u32(w, (uint32_t)t->residual); break;
            }
        }
    }
}

static void write_metadata(wbuf *w, const kvq_codebook *cb) {
    const kvq_model_identity *m = &cb->model;
    const kvq_provenance *p = &cb->provenance;
    m_str(w, "model.architecture", m->architecture, sizeof m->architecture);
    m_u32(w, "model.n_layers", m->n_layers);
    m_u32(w, "model.n_heads", m->n_heads);
    m_u32(w, "model.n_kv_heads", m->n_kv_heads);
    m_u32(w, "model.head_dim", m->head_dim);
    m_u32(w, "model.hidden", m->hidden);
    m_u32(w, "model.vocab", m->vocab);
    m_f32(w, "model.rope_theta", m->rope_theta);
    m_u32(w, "model.rope_scaling", (uint32_t)m->rope_scaling);
    m_f32(w, "model.rope_scaling_factor", m->rope_scaling_factor);
    m_f32(w, "model.rope_low_freq_factor", m->rope_low_freq_factor);
    m_f32(w, "model.rope_high_freq_factor", m->rope_high_freq_factor);
    m_u32(w, "model.rope_original_max_pos", m->rope_original_max_pos);
    m_u32(w, "model.rope_convention", (uint32_t)m->rope_convention);
    m_u64(w, "model.fingerprint", m->fingerprint);
    m_u32(w, "quant.n_sink", cb->n_sink);
    m_str(w, "provenance.tool_version", p->tool_version, sizeof p->tool_version);
    m_str(w, "provenance.calib_text", p->calib_text, sizeof p->calib_text);
    m_str(w, "provenance.calib_text_sha256", p->calib_text_sha256, sizeof p->calib_text_sha256);
    m_u32(w, "provenance.samples", p->samples);
    m_u32(w, "provenance.seq_len", p->seq_len);
    m_u64(w, "provenance.seed", p->seed);
    m_u64(w, "provenance.kmeans_seed", p->kmeans_seed);
    m_u32(w, "provenance.weighting", (uint32_t)p->weighting);
    m_u32(w, "provenance.solver", (uint32_t)p->solver);
    m_u32(w, "provenance.kmeans_iters", p->kmeans_iters);
    m_u32(w, "provenance.histogram_bins", p->histogram_bins);
    layer_arrays(w, cb, 'k');
    layer_arrays(w, cb, 'v');
}

/* ---- entries ---- */
typedef struct {
    char name[48];
    uint32_t dtype;
    uint64_t count;          /* 1-D: (count) */
    const void *data;        /* float or double (count) */
    size_t field;            /* position of the offset field in the header buffer */
} out_entry;

static size_t list_entries(const kvq_codebook *cb, out_entry *e) {
    size_t n = 0;
    uint32_t kv_dim = kvq_kv_dim(&cb->model);
    for (uint32_t l = 0; l < cb->model.n_layers; l++)
        for (int k = 0; k < 2; k++) {
            const kvq_tensor_codebook *t = k == 0 ? &cb->layers[l].k : &cb->layers[l].v;
            char tc = k == 0 ? 'k' : 'v';
            snprintf(e[n].name, sizeof e[n].name, "layer.%u.%c.centroids", l, tc);
            e[n].dtype = KVQC_D_F32, e[n].count = (uint64_t)1 << t->bits, e[n].data = t->centroids, n++;
            if (t->axis != KVQ_NORM_PER_CHANNEL) continue;
            snprintf(e[n].name, sizeof e[n].name, "layer.%u.%c.zero_point", l, tc);
            e[n].dtype = KVQC_D_F32, e[n].count = kv_dim, e[n].data = t->zero_point, n++;
            snprintf(e[n].name, sizeof e[n].name, "layer.%u.%c.half_range", l, tc);
            e[n].dtype = KVQC_D_F32, e[n].count = kv_dim, e[n].data = t->half_range, n++;
        }
    const double *diag[4] = {cb->diag.k_objective, cb->diag.v_objective, cb->diag.k_outlier_rate,
                             cb->diag.v_outlier_rate};
    static const char *const dnames[4] = {"diag.k_objective", "diag.v_objective",
                                          "diag.k_outlier_rate", "diag.v_outlier_rate"};
    for (int d = 0; d < 4; d++)
        if (diag[d]) {
            snprintf(e[n].name, sizeof e[n].name, "%s", dnames[d]);
            e[n].dtype = KVQC_D_F64, e[n].count = cb->model.n_layers, e[n].data = diag[d], n++;
        }
    return n;
}

static size_t elem_size(uint32_t dtype) { return dtype == KVQC_D_F64 ? 8 : 4; }

static void write_payload(unsigned char *dst, const out_entry *e) {
    for (uint64_t i = 0; i < e->count; i++) {
        if (e->dtype == KVQC_D_F64) kvq_put_f64(dst + 8 * i, ((const double *)e->data)[i]);
        else kvq_put_f32(dst + 4 * i, ((const float *)e->data)[i]);
    }
}

kvq_status kvq_codebook_serialize(const kvq_codebook *cb, void **buf, size_t *len) {
    if (!cb || !buf || !len) return KVQ_ERR_ARG;
    *buf = NULL;
    *len = 0;
    kvq_status st = kvq_codebook_validate(cb, NULL, 0);
    if (st) return st;
    /* at most 6 entries per layer + 4 diagnostics; n_layers <= KVQ_MAX_LAYERS (validated) */
    out_entry *e = calloc((size_t)cb->model.n_layers * 6 + 4, sizeof *e);
    if (!e) return KVQ_ERR_NOMEM;
    size_t ne = list_entries(cb, e);
    wbuf w = {0};
    wb_take(&w, KVQC_FIXED);
    write_metadata(&w, cb);
    for (size_t i = 0; i < ne; i++) {
        wb_str(&w, e[i].name, sizeof e[i].name);
        wb_u32(&w, e[i].dtype);
        wb_u32(&w, 1);
        wb_u64(&w, e[i].count);
        e[i].field = w.len;
        wb_take(&w, 8 + 8 + 4);   /* offset, size, crc: filled below */
    }
    size_t header_size = w.len;
    uint64_t pos = kvqc_align(header_size);
    for (size_t i = 0; i < ne && !w.oom; i++) {
        uint64_t size = e[i].count * elem_size(e[i].dtype);
        kvq_put_u64(w.p + e[i].field, pos);
        kvq_put_u64(w.p + e[i].field + 8, size);
        pos = kvqc_align(pos + size);
    }
    if (!w.oom && header_size > KVQC_MAX_HEADER) st = KVQ_ERR_CAPACITY;
    if (!w.oom && !st) wb_take(&w, pos - w.len);   /* padding and payloads, zeroed */
    if (w.oom && !st) st = KVQ_ERR_NOMEM;
    if (st) { free(w.p); free(e); return st; }
    for (size_t i = 0; i < ne; i++) {
        uint64_t off = kvq_le_u64(w.p + e[i].field), size = kvq_le_u64(w.p + e[i].field + 8);
        write_payload(w.p + off, &e[i]);
        kvq_put_u32(w.p + e[i].field + 16, kvq_crc32c(0, w.p + off, size));
    }
    unsigned char *h = w.p;
    memcpy(h, KVQC_MAGIC, KVQC_MAGIC_LEN);
    kvq_put_u16(h + KVQC_OFF_MAJOR, KVQC_MAJOR);
    kvq_put_u16(h + KVQC_OFF_MINOR, KVQC_MINOR);
    kvq_put_u32(h + KVQC_OFF_HEADER_SIZE, (uint32_t)header_size);
    kvq_put_u64(h + KVQC_OFF_FILE_SIZE, pos);
    kvq_put_u64(h + KVQC_OFF_DATA_OFFSET, kvqc_align(header_size));
    kvq_put_u32(h + KVQC_OFF_N_META, w.n_keys);
    kvq_put_u32(h + KVQC_OFF_N_ENTRIES, (uint32_t)ne);
    uint32_t crc = kvq_crc32c(0, h, KVQC_OFF_CRC);
    crc = kvq_crc32c(crc, h + KVQC_FIXED, kvqc_align(header_size) - KVQC_FIXED);
    kvq_put_u32(h + KVQC_OFF_CRC, crc);
    free(e);
    *buf = w.p;
    *len = pos;
    return KVQ_OK;
}

/* ---- atomic file write ---- */
static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Directory part of path ("." when none) into dir. */
static int dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (slash && n == 0) n = 1;   /* "/file" -> "/" */
    if (n + 1 > cap) return -1;
    memcpy(dir, slash ? path : ".", n);
    dir[n] = 0;
    return 0;
}

kvq_status kvq_codebook_write(const char *path, const kvq_codebook *cb) {
    if (!path || !*path || !cb) return KVQ_ERR_ARG;
    void *buf;
    size_t len;
    kvq_status st = kvq_codebook_serialize(cb, &buf, &len);
    if (st) return st;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12), dir[4096];
    if (!tmp || dir_of(path, dir, sizeof dir)) { free(tmp); free(buf); return tmp ? KVQ_ERR_ARG : KVQ_ERR_NOMEM; }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) { free(tmp); free(buf); return KVQ_ERR_IO; }
    struct stat old;
    mode_t mode = stat(path, &old) == 0 ? (old.st_mode & 07777) : 0644;
    int bad = fchmod(fd, mode) != 0 || write_all(fd, buf, len) != 0 || fsync(fd) != 0;
    if (close(fd) != 0) bad = 1;
    if (!bad && rename(tmp, path) != 0) bad = 1;
    if (bad) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0) bad = 1;
        if (dfd >= 0) close(dfd);
    }
    free(tmp);
    free(buf);
    return bad ? KVQ_ERR_IO : KVQ_OK;
}
