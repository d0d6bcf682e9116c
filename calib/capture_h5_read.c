/* capture_h5_read.c — the capture file reader (what `kvq fit` uses) and merge of captures
 * (docs/capture-format.md). The reader shows only committed samples, also of a file a killed writer
 * left behind. Not the writer (capture_h5.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture_h5_int.h"
#include "kvq_half.h"

struct kvq_capture_reader {
    hid_t file;
    kvq_capture_meta meta;
    uint32_t kv_dim, n_samples;
    uint64_t n_rows;
    kvq_capture_sample *samples;   /* (n_samples) */
};

/* ---- committed samples ---------------------------------------------------------------------- */

/* dims of dataset `path` into dims (rank must be `rank`). */
static kvq_status ds_dims(hid_t file, const char *path, int rank, hsize_t *dims, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t ds = -1, sp = -1;
    KVQ_H5(ds = H5Dopen2(file, path, H5P_DEFAULT));
    KVQ_H5(sp = H5Dget_space(ds));
    if (H5Sget_simple_extent_ndims(sp) != rank || H5Sget_simple_extent_dims(sp, dims, NULL) != rank) {
        if (why) snprintf(why, why_len, "%s: expected %d dimensions", path, rank);
        st = KVQ_ERR_SHAPE;
    }
done:
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

/* First n entries of a 1-D integer dataset as int64. */
static kvq_status read_i64(hid_t file, const char *path, uint32_t n, int64_t *out, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t ds = -1, fs = -1, ms = -1;
    hsize_t start = 0, count = n, dims;
    if ((st = ds_dims(file, path, 1, &dims, why, why_len))) return st;
    if (dims < n) {
        if (why) snprintf(why, why_len, "%s has %llu entries, complete_samples says %u", path, (unsigned long long)dims, n);
        return KVQ_ERR_TRUNCATED;
    }
    if (!n) return KVQ_OK;
    KVQ_H5(ds = H5Dopen2(file, path, H5P_DEFAULT));
    KVQ_H5(fs = H5Dget_space(ds));
    KVQ_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL));
    KVQ_H5(ms = H5Screate_simple(1, &count, NULL));
    KVQ_H5(H5Dread(ds, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, out));
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

static kvq_status check_samples(const kvq_capture_meta *m, uint32_t n, const int64_t *f /* (4, n) */,
                                kvq_capture_sample *out, uint64_t *rows, char *why, size_t why_len) {
    uint64_t next = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t rs = f[i], len = f[n + i], ws = f[2 * (size_t)n + i], src = f[3 * (size_t)n + i];
        if (rs != (int64_t)next || len < 1 || len > (1 << 30) || ws < 0 || src < 0 || src >= m->n_sources) {
            if (why) snprintf(why, why_len, "/samples entry %u: row_start %lld length %lld window_start %lld "
                              "source %lld (expected row_start %llu, length >= 1, source < %u)", i,
                              (long long)rs, (long long)len, (long long)ws, (long long)src,
                              (unsigned long long)next, m->n_sources);
            return KVQ_ERR_FORMAT;
        }
        out[i] = (kvq_capture_sample){(uint64_t)rs, (uint64_t)len, (uint64_t)ws, (uint32_t)src};
        next += (uint64_t)len;
    }
    *rows = next;
    return KVQ_OK;
}

static kvq_status check_layer_extents(hid_t file, const kvq_capture_meta *m, uint32_t n, uint64_t rows,
                                      char *why, size_t why_len) {
    uint64_t kv = (uint64_t)m->model.n_kv_heads * m->model.head_dim;
    for (uint32_t s = 0; s < m->n_captured; s++)
        for (int t = 0; t < (m->fisher ? 4 : 2); t++) {
            char lp[64], path[128];
            hsize_t d[3];
            kvq_status st;
            kvq_cap_layer_path(lp, sizeof lp, m->layers[s], m->model.n_layers);
            snprintf(path, sizeof path, "%s/%s", lp, kvq_capture_tensor_name((kvq_capture_tensor)t));
            if ((st = ds_dims(file, path, 2, d, why, why_len))) return st;
            if (d[0] < rows || d[1] != kv) {
                if (why) snprintf(why, why_len, "%s is (%llu, %llu); committed samples need (>= %llu, %llu)", path,
                                  (unsigned long long)d[0], (unsigned long long)d[1], (unsigned long long)rows,
                                  (unsigned long long)kv);
                return d[1] != kv ? KVQ_ERR_SHAPE : KVQ_ERR_TRUNCATED;
            }
            snprintf(path, sizeof path, "%s/%s_stats", lp, kvq_capture_tensor_name((kvq_capture_tensor)t));
            if ((st = ds_dims(file, path, 3, d, why, why_len))) return st;
            if (d[0] < n || d[1] != 4 || d[2] != kv) {
                if (why) snprintf(why, why_len, "%s is (%llu, %llu, %llu); expected (>= %u, 4, %llu)", path,
                                  (unsigned long long)d[0], (unsigned long long)d[1], (unsigned long long)d[2], n,
                                  (unsigned long long)kv);
                return KVQ_ERR_SHAPE;
            }
        }
    return KVQ_OK;
}

kvq_status kvq_cap_load_samples(hid_t file, const kvq_capture_meta *m, uint32_t *n_out,
                                kvq_capture_sample **samples, uint64_t *rows, char *why, size_t why_len) {
    static const char *const fields[4] = {"/samples/row_start", "/samples/length",
                                          "/samples/window_start", "/samples/source"};
    kvq_status st = KVQ_OK;
    hid_t ds = -1;
    int64_t c = -1, *f = NULL;
    *samples = NULL;
    KVQ_H5(ds = H5Dopen2(file, "/complete_samples", H5P_DEFAULT));
    KVQ_H5(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &c));
    if (c < 0 || c > (int64_t)UINT32_MAX) {
        if (why) snprintf(why, why_len, "complete_samples = %lld", (long long)c);
        st = KVQ_ERR_FORMAT;
        goto done;
    }
    uint32_t n = (uint32_t)c;
    f = malloc(4 * ((size_t)n + 1) * sizeof *f);
    *samples = malloc(((size_t)n + 1) * sizeof **samples);
    if (!f || !*samples) { st = KVQ_ERR_NOMEM; goto done; }
    for (int i = 0; i < 4 && !st; i++) st = read_i64(file, fields[i], n, f + (size_t)i * n, why, why_len);
    if (!st) st = check_samples(m, n, f, *samples, rows, why, why_len);
    if (!st) st = check_layer_extents(file, m, n, *rows, why, why_len);
    if (!st) *n_out = n;
done:
    if (ds >= 0) H5Dclose(ds);
    free(f);
    if (st) { free(*samples); *samples = NULL; }
    return st;
}

/* ---- reader --------------------------------------------------------------------------------- */

kvq_status kvq_capture_open(const char *path, kvq_capture_reader **out, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    kvq_capture_reader *r = calloc(1, sizeof *r);
    hid_t fapl = -1;
    kvq_cap_quiet q;
    *out = NULL;
    if (!r) return KVQ_ERR_NOMEM;
    kvq_cap_quiet_begin(&q);
    char h5why[512];
    r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->file < 0) {
        /* a file left by a killed or failed writer: its superblock may still say "being written"
         * (opened as a SWMR reader), or record an end of allocation past the end of the file (the
         * EOF check skipped, as h5clear does); only committed samples are read either way */
        kvq_cap_h5err(h5why, sizeof h5why, "H5Fopen");
        hbool_t skip = 1;
        fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0)
            r->file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        if (r->file < 0 && fapl >= 0 && H5Pset(fapl, "skip_eof_check", &skip) >= 0)
            r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        H5Eclear2(H5E_DEFAULT);
    }
    if (r->file < 0) {
        if (why) snprintf(why, why_len, "cannot open %s: %s", path, h5why);
        st = access(path, R_OK) == 0 ? KVQ_ERR_FORMAT : KVQ_ERR_IO;
        goto done;
    }
    if ((st = kvq_cap_read_meta(r->file, &r->meta, why, why_len))) goto done;
    r->kv_dim = r->meta.model.n_kv_heads * r->meta.model.head_dim;
    st = kvq_cap_load_samples(r->file, &r->meta, &r->n_samples, &r->samples, &r->n_rows, why, why_len);
done:
    if (fapl >= 0) H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
    kvq_cap_quiet_end(&q);
    if (st) kvq_capture_reader_free(r);
    else *out = r;
    return st;
}

void kvq_capture_reader_free(kvq_capture_reader *r) {
    if (!r) return;
    if (r->file >= 0) H5Fclose(r->file);
    free(r->samples);
    free(r);
}

const kvq_capture_meta *kvq_capture_reader_meta(const kvq_capture_reader *r) { return &r->meta; }
uint32_t kvq_capture_n_samples(const kvq_capture_reader *r) { return r->n_samples; }
uint64_t kvq_capture_n_rows(const kvq_capture_reader *r) { return r->n_rows; }
const kvq_capture_sample *kvq_capture_samples(const kvq_capture_reader *r) { return r->samples; }
uint32_t kvq_capture_kv_dim(const kvq_capture_reader *r) { return r->kv_dim; }

int kvq_capture_slot(const kvq_capture_reader *r, uint32_t layer) {
    for (uint32_t s = 0; s < r->meta.n_captured; s++)
        if (r->meta.layers[s] == layer) return (int)s;
    return -1;
}

static kvq_status dataset_path(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                               const char *suffix, char *path, size_t len, char *why, size_t why_len) {
    char lp[64];
    if ((unsigned)t >= KVQ_CAPTURE_N_TENSORS || kvq_capture_slot(r, layer) < 0 ||
        (t >= KVQ_CAPTURE_FISHER_K && !r->meta.fisher)) {
        if (why) snprintf(why, why_len, "layer %u %s is not in this capture", layer, kvq_capture_tensor_name(t));
        return KVQ_ERR_MISSING;
    }
    kvq_cap_layer_path(lp, sizeof lp, layer, r->meta.model.n_layers);
    snprintf(path, len, "%s/%s%s", lp, kvq_capture_tensor_name(t), suffix);
    return KVQ_OK;
}

/* Read rows [row0, row0+n) of dataset ds (rank 2, kv columns) with memory type mtype into buf. */
static kvq_status read_block(hid_t ds, hid_t mtype, uint64_t row0, uint64_t n, uint32_t kv, void *buf,
                             char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hsize_t start[2] = {row0, 0}, count[2] = {n, kv};
    hid_t fs = -1, ms = -1;
    KVQ_H5(fs = H5Dget_space(ds));
    KVQ_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
    KVQ_H5(ms = H5Screate_simple(2, count, NULL));
    KVQ_H5(H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, buf));
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return st;
}

static kvq_status read_half_rows(const kvq_capture_reader *r, hid_t ds, kvq_capture_dtype td,
                                 uint64_t row0, uint64_t n_rows, float *out, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    uint64_t block = ((uint64_t)1 << 20) / r->kv_dim + 1;   /* rows per read: ~2 MiB of halves */
    uint16_t *h = malloc((size_t)(block < n_rows ? block : n_rows) * r->kv_dim * sizeof *h);
    hid_t ft = kvq_cap_file_type(td);
    if (!h || ft < 0) { st = ft < 0 ? kvq_cap_h5err(why, why_len, "file type") : KVQ_ERR_NOMEM; goto done; }
    for (uint64_t done_rows = 0; done_rows < n_rows && !st; done_rows += block) {
        uint64_t n = n_rows - done_rows < block ? n_rows - done_rows : block;
        st = read_block(ds, ft, row0 + done_rows, n, r->kv_dim, h, why, why_len);
        float *o = out + done_rows * r->kv_dim;
        for (size_t j = 0; !st && j < n * r->kv_dim; j++)
            o[j] = td == KVQ_CAPTURE_F16 ? kvq_f16_to_f32(h[j]) : kvq_bf16_to_f32(h[j]);
    }
done:
    if (ft >= 0) H5Tclose(ft);
    free(h);
    return st;
}

kvq_status kvq_capture_read_rows(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                 uint64_t row0, uint64_t n_rows, float *out, char *why, size_t why_len) {
    char path[128];
    kvq_status st = dataset_path(r, layer, t, "", path, sizeof path, why, why_len);
    if (st) return st;
    if (row0 > r->n_rows || n_rows > r->n_rows - row0) {
        if (why) snprintf(why, why_len, "%s rows [%llu, %llu) past the %llu committed rows", path,
                          (unsigned long long)row0, (unsigned long long)(row0 + n_rows), (unsigned long long)r->n_rows);
        return KVQ_ERR_BOUNDS;
    }
    if (!n_rows) return KVQ_OK;
    kvq_cap_quiet q;
    kvq_cap_quiet_begin(&q);
    hid_t ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    if (ds < 0) st = kvq_cap_h5err(why, why_len, path);
    else if (kvq_capture_tensor_dtype(r->meta.dtype, t) == KVQ_CAPTURE_F32)
        st = read_block(ds, H5T_NATIVE_FLOAT, row0, n_rows, r->kv_dim, out, why, why_len);
    else
        st = read_half_rows(r, ds, kvq_capture_tensor_dtype(r->meta.dtype, t), row0, n_rows, out, why, why_len);
    if (st && why) {   /* name the dataset in the message */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", why);
        snprintf(why, why_len, "%s: %s", path, tmp);
    }
    if (ds >= 0) H5Dclose(ds);
    kvq_cap_quiet_end(&q);
    return st;
}

kvq_status kvq_capture_read_all(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                float **out, uint64_t *n_rows, char *why, size_t why_len) {
    *out = NULL;
    *n_rows = 0;
    if (r->n_rows > SIZE_MAX / sizeof(float) / (r->kv_dim ? r->kv_dim : 1)) return KVQ_ERR_OVERFLOW;
    float *buf = malloc((size_t)(r->n_rows ? r->n_rows : 1) * r->kv_dim * sizeof *buf);
    if (!buf) return KVQ_ERR_NOMEM;
    kvq_status st = kvq_capture_read_rows(r, layer, t, 0, r->n_rows, buf, why, why_len);
    if (st) { free(buf); return st; }
    *out = buf;
    *n_rows = r->n_rows;
    return KVQ_OK;
}

kvq_status kvq_cap_read_sample_stats(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                     uint32_t s, double *out, char *why, size_t why_len) {
    char path[128];
    kvq_status st = dataset_path(r, layer, t, "_stats", path, sizeof path, why, why_len);
    if (st) return st;
    if (s >= r->n_samples) return KVQ_ERR_BOUNDS;
    hsize_t start[3] = {s, 0, 0}, count[3] = {1, 4, r->kv_dim};
    hid_t ds = -1, fs = -1, ms = -1;
    KVQ_H5(ds = H5Dopen2(r->file, path, H5P_DEFAULT));
    KVQ_H5(fs = H5Dget_space(ds));
    KVQ_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
    KVQ_H5(ms = H5Screate_simple(3, count, NULL));
    KVQ_H5(H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, out));
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

kvq_status kvq_capture_read_stats(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                  kvq_capture_stats *out, char *why, size_t why_len) {
    size_t kv = r->kv_dim;
    char path[128];
    memset(out, 0, sizeof *out);
    kvq_status st = dataset_path(r, layer, t, "_stats", path, sizeof path, why, why_len);
    if (st) return st;
    double *row = malloc(4 * kv * sizeof *row);
    out->sum = calloc(kv, sizeof(double));
    out->sumsq = calloc(kv, sizeof(double));
    out->min = malloc(kv * sizeof(double));
    out->max = malloc(kv * sizeof(double));
    if (!row || !out->sum || !out->sumsq || !out->min || !out->max) { st = KVQ_ERR_NOMEM; goto done; }
    for (size_t c = 0; c < kv; c++) { out->min[c] = INFINITY; out->max[c] = -INFINITY; }
    kvq_cap_quiet q;
    kvq_cap_quiet_begin(&q);
    for (uint32_t s = 0; s < r->n_samples && !st; s++) {
        st = kvq_cap_read_sample_stats(r, layer, t, s, row, why, why_len);
        for (size_t c = 0; !st && c < kv; c++) {
            out->sum[c] += row[c];
            out->sumsq[c] += row[kv + c];
            out->min[c] = fmin(out->min[c], row[2 * kv + c]);
            out->max[c] = fmax(out->max[c], row[3 * kv + c]);
        }
    }
    kvq_cap_quiet_end(&q);
    out->count = r->n_rows;
done:
    free(row);
    if (st) kvq_capture_stats_free(out);
    return st;
}

kvq_status kvq_cap_reader_sources(const kvq_capture_reader *r, kvq_cap_source *src, char *why, size_t why_len) {
    kvq_cap_quiet q;
    kvq_cap_quiet_begin(&q);
    kvq_status st = kvq_cap_read_sources(r->file, r->meta.n_sources, src, why, why_len);
    kvq_cap_quiet_end(&q);
    return st;
}
