/* capture_h5.c — the capture file writer (docs/capture-format.md): create under a temporary name,
 * switch to SWMR writing, append one sample at a time and commit it with the `complete_samples`
 * counter; resume an interrupted file. Not the reader or merge (capture_h5_read.c) and not the
 * attribute layer (capture_h5_meta.c). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture_h5_int.h"

static const char *const SAMPLE_NAMES[SAMPLE_FIELDS] = {"row_start", "length", "window_start", "source"};
static const char *const TENSOR_DESC[KVQ_CAPTURE_N_TENSORS] = {
    "keys at the k_proj output (bias included), before RoPE",
    "values at the v_proj output",
    "Fisher information of the pre-RoPE keys: (dL/dK)^2 elementwise, L = mean next-token "
    "cross-entropy of the window",
    "Fisher information of the values: (dL/dV)^2 elementwise, L = mean next-token cross-entropy "
    "of the window"};


static kvq_status fail(char *why, size_t why_len, kvq_status st, const char *fmt, const char *a) {
    if (why && why_len) snprintf(why, why_len, fmt, a);
    return st;
}

/* ---- creating the layout -------------------------------------------------------------------- */

static herr_t ds_attrs(hid_t ds, const char *desc, const char *axes, const char *etype) {
    return kvq_cap_attr_str(ds, "description", desc) < 0 || kvq_cap_attr_str(ds, "axes", axes) < 0 ||
                   (etype && kvq_cap_attr_str(ds, "element_type", etype) < 0)
               ? -1 : 0;
}

/* An extendible dataset: dims (0, rest...), max (unlimited, rest...), chunk (chunk0, rest...). */
static hid_t make_ds(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *rest,
                     hsize_t chunk0, int compress) {
    hsize_t dims[3] = {0}, maxd[3] = {H5S_UNLIMITED}, chunk[3] = {chunk0};
    for (int i = 1; i < rank; i++) dims[i] = maxd[i] = chunk[i] = rest[i - 1];
    hid_t sp = H5Screate_simple(rank, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        (!compress || (H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, (unsigned)compress) >= 0)) &&
        H5Pset_fletcher32(dcpl) >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0)
        ds = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return ds;
}

static kvq_status create_layer(hid_t file, const kvq_capture_meta *m, uint32_t layer, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t g = -1, ds = -1, ftype = -1;
    char path[64], sname[64];
    hsize_t kv = (hsize_t)m->model.n_kv_heads * m->model.head_dim, rest_stats[2] = {4, kv};
    int32_t li = (int32_t)layer;
    kvq_cap_layer_path(path, sizeof path, layer, m->model.n_layers);
    KVQ_H5(g = kvq_cap_group(file, path));
    {
        hid_t sp = H5Screate(H5S_SCALAR), a = sp < 0 ? -1 : H5Acreate2(g, "layer", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        herr_t r = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT32, &li);
        if (a >= 0) H5Aclose(a);
        if (sp >= 0) H5Sclose(sp);
        KVQ_H5(r);
    }
    for (int t = 0; t < (m->fisher ? 4 : 2); t++) {
        const char *name = kvq_capture_tensor_name((kvq_capture_tensor)t);
        kvq_capture_dtype td = kvq_capture_tensor_dtype(m->dtype, (kvq_capture_tensor)t);
        KVQ_H5(ftype = kvq_cap_file_type(td));
        KVQ_H5(ds = make_ds(g, name, ftype, 2, &kv, kvq_cap_chunk_rows(m), m->compress));
        KVQ_H5(ds_attrs(ds, TENSOR_DESC[t], "token, channel", kvq_capture_dtype_name(td)));
        KVQ_H5(H5Dclose(ds));
        KVQ_H5(H5Tclose(ftype));
        ftype = -1;
        snprintf(sname, sizeof sname, "%s_stats", name);
        KVQ_H5(ds = make_ds(g, sname, H5T_IEEE_F64LE, 3, rest_stats, 1, 0));
        KVQ_H5(ds_attrs(ds, "per-sample per-channel statistics over the sample's rows, from the fp32 "
                            "values: [sum, sum of squares, min, max]; count = /samples/length",
                        "sample, statistic, channel", NULL));
        KVQ_H5(H5Dclose(ds));
        ds = -1;
    }
done:
    if (ds >= 0) H5Dclose(ds);
    if (g >= 0) H5Gclose(g);
    if (ftype >= 0) H5Tclose(ftype);
    return st;
}

/* Chunks of one entry: each commit writes new chunks and never rewrites a committed one. */
static kvq_status create_layout(hid_t file, const kvq_capture_meta *m, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t g = -1, ds = -1, sp = -1, dcpl = -1;
    static const char *const desc[SAMPLE_FIELDS] = {
        "first row of the sample in every /layers tensor", "rows (tokens) of the sample",
        "offset of the window's first token in the tokenized text",
        "index of the /provenance/sources entry the sample came from"};
    KVQ_H5(g = kvq_cap_group(file, "/samples"));
    for (int i = 0; i < SAMPLE_FIELDS; i++) {
        KVQ_H5(ds = make_ds(g, SAMPLE_NAMES[i], i == 3 ? H5T_STD_I32LE : H5T_STD_I64LE, 1, NULL, 1, 0));
        KVQ_H5(ds_attrs(ds, desc[i], "sample", NULL));
        KVQ_H5(H5Dclose(ds));
        ds = -1;
    }
    KVQ_H5(H5Gclose(g));
    KVQ_H5(g = kvq_cap_group(file, "/layers"));
    for (uint32_t i = 0; i < m->n_captured; i++)
        if ((st = create_layer(file, m, m->layers[i], why, why_len))) goto done;
    /* the commit counter: 8 bytes allocated now, overwritten in place by each commit */
    int64_t zero = 0;
    KVQ_H5(sp = H5Screate(H5S_SCALAR));
    KVQ_H5(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    KVQ_H5(H5Pset_layout(dcpl, H5D_CONTIGUOUS));
    KVQ_H5(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY));
    KVQ_H5(H5Pset_obj_track_times(dcpl, 0));
    KVQ_H5(ds = H5Dcreate2(file, "/complete_samples", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    KVQ_H5(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &zero));
    KVQ_H5(ds_attrs(ds, "commit counter: samples 0..n-1 are complete; anything past them is an "
                        "interrupted write (docs/capture-format.md)", "scalar", NULL));
done:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (g >= 0) H5Gclose(g);
    return st;
}

/* ---- open / close of the datasets ----------------------------------------------------------- */

static void close_datasets(kvq_capture_writer *w) {
    size_t n = (size_t)w->meta.n_captured * KVQ_CAPTURE_N_TENSORS;
    for (size_t i = 0; w->tens && i < n; i++) {
        if (w->tens[i] >= 0) H5Dclose(w->tens[i]);
        if (w->stats[i] >= 0) H5Dclose(w->stats[i]);
        w->tens[i] = w->stats[i] = -1;
    }
    for (int i = 0; i < SAMPLE_FIELDS; i++) {
        if (w->samp[i] >= 0) H5Dclose(w->samp[i]);
        w->samp[i] = -1;
    }
    if (w->complete >= 0) H5Dclose(w->complete);
    w->complete = -1;
}

static kvq_status open_datasets(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    char path[128];
    for (int i = 0; i < SAMPLE_FIELDS; i++) {
        snprintf(path, sizeof path, "/samples/%s", SAMPLE_NAMES[i]);
        KVQ_H5(w->samp[i] = H5Dopen2(w->file, path, H5P_DEFAULT));
    }
    KVQ_H5(w->complete = H5Dopen2(w->file, "/complete_samples", H5P_DEFAULT));
    for (uint32_t s = 0; s < w->meta.n_captured; s++) {
        char lp[64];
        kvq_cap_layer_path(lp, sizeof lp, w->meta.layers[s], w->meta.model.n_layers);
        for (int t = 0; t < (w->meta.fisher ? 4 : 2); t++) {
            size_t i = (size_t)s * KVQ_CAPTURE_N_TENSORS + (size_t)t;
            snprintf(path, sizeof path, "%s/%s", lp, kvq_capture_tensor_name((kvq_capture_tensor)t));
            KVQ_H5(w->tens[i] = H5Dopen2(w->file, path, H5P_DEFAULT));
            snprintf(path, sizeof path, "%s/%s_stats", lp, kvq_capture_tensor_name((kvq_capture_tensor)t));
            KVQ_H5(w->stats[i] = H5Dopen2(w->file, path, H5P_DEFAULT));
        }
    }
done:
    return st;
}

static kvq_status writer_alloc(const kvq_capture_meta *m, kvq_capture_writer **out) {
    kvq_capture_writer *w = calloc(1, sizeof *w);
    size_t n = (size_t)m->n_captured * KVQ_CAPTURE_N_TENSORS;
    uint64_t kv = (uint64_t)m->model.n_kv_heads * m->model.head_dim;
    if (!w) return KVQ_ERR_NOMEM;
    w->file = w->complete = -1;
    w->meta = *m;
    w->kv_dim = (uint32_t)kv;
    for (int i = 0; i < SAMPLE_FIELDS; i++) w->samp[i] = -1;
    w->tens = malloc(n * sizeof *w->tens);
    w->stats = malloc(n * sizeof *w->stats);
    w->put = calloc(m->n_captured ? m->n_captured : 1, 1);
    w->direct = 1;
    if (!w->tens || !w->stats || !w->put) {
        free(w->tens); free(w->stats); free(w->put); free(w);
        return KVQ_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) w->tens[i] = w->stats[i] = -1;
    *out = w;
    return KVQ_OK;
}

static void writer_release(kvq_capture_writer *w) {
    free(w->tens); free(w->stats); free(w->put);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < KVQ_CAPTURE_N_TENSORS; t++) { free(w->stage[i].buf[t]); free(w->stage[i].stats[t]); }
    free(w);
}

static kvq_status check_new_meta(const kvq_capture_meta *m, char *why, size_t why_len) {
    uint64_t kv = (uint64_t)m->model.n_kv_heads * m->model.head_dim;
    if (!m->model.n_layers || !kv || kv > (1u << 24) || !m->seq_len || !m->n_captured ||
        m->n_captured > KVQ_CAPTURE_MAX_LAYERS || m->compress < 0 || m->compress > 9 ||
        (unsigned)m->dtype > KVQ_CAPTURE_BF16 || !m->n_sources) {
        if (why) snprintf(why, why_len, "capture settings out of range (layers %u, kv_dim %llu, seq_len %u, "
                          "captured %u, compress %d)", m->model.n_layers, (unsigned long long)kv,
                          m->seq_len, m->n_captured, m->compress);
        return KVQ_ERR_ARG;
    }
    for (uint32_t i = 0; i < m->n_captured; i++)
        if (m->layers[i] >= m->model.n_layers || (i && m->layers[i] <= m->layers[i - 1])) {
            if (why) snprintf(why, why_len, "captured layer %u out of range (0..%u) or not ascending",
                              m->layers[i], m->model.n_layers - 1);
            return KVQ_ERR_ARG;
        }
    return KVQ_OK;
}

/* fsync the HDF5 file's descriptor (sec2 driver). */
static kvq_status sync_file(hid_t file, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    int *fdp = NULL;
    KVQ_H5(H5Fget_vfd_handle(file, H5P_DEFAULT, (void **)&fdp));
    if (!fdp || fsync(*fdp) != 0) {
        if (why) snprintf(why, why_len, "fsync: %s", strerror(errno));
        return KVQ_ERR_IO;
    }
done:
    return st;
}

hid_t kvq_cap_group(hid_t loc, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0) H5Pclose(gcpl);
    return g;
}

void kvq_cap_sync_dir(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static hid_t latest_fapl(int clear_flags) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hbool_t yes = 1;
    if (fapl < 0) return -1;
    /* resume: clear the "open for writing" flags and skip the end-of-file check, as h5clear does,
     * for a file whose writer died (or failed on a full disk) before closing it */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0 ||
        (clear_flags && (H5Pset(fapl, "clear_status_flags", &yes) < 0 ||
                         H5Pset(fapl, "skip_eof_check", &yes) < 0))) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

static kvq_status start_swmr(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    KVQ_H5(H5Fstart_swmr_write(w->file));
    st = open_datasets(w, why, why_len);
done:
    return st;
}

kvq_status kvq_cap_create_ex(const char *path, const kvq_capture_meta *m, const kvq_cap_source *src,
                             uint32_t n_src, kvq_capture_writer **out, char *why, size_t why_len) {
    kvq_status st;
    kvq_capture_writer *w = NULL;
    char tmp[4200];
    hid_t fapl = -1, fcpl = -1;
    struct stat sb;
    kvq_cap_quiet q;
    *out = NULL;
    if ((st = check_new_meta(m, why, why_len))) return st;
    if (stat(path, &sb) == 0)
        return fail(why, why_len, KVQ_ERR_IO, "%s exists (continue it with --resume, or remove it)", path);
    if ((st = writer_alloc(m, &w))) return st;
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    kvq_cap_quiet_begin(&q);
    KVQ_H5(fapl = latest_fapl(0));
    KVQ_H5(fcpl = H5Pcreate(H5P_FILE_CREATE));
    KVQ_H5(H5Pset_obj_track_times(fcpl, 0));   /* no timestamps: same capture, same bytes */
    w->file = H5Fcreate(tmp, H5F_ACC_EXCL, fcpl, fapl);
    if (w->file < 0) {
        char h5why[512];
        kvq_cap_h5err(h5why, sizeof h5why, "H5Fcreate");
        if (why) snprintf(why, why_len, "cannot create %s: %s", tmp, h5why);
        st = KVQ_ERR_IO;
        goto done;
    }
    if ((st = kvq_cap_write_meta(w->file, m, src, n_src, why, why_len))) goto done;
    if ((st = create_layout(w->file, m, why, why_len))) goto done;
    /* SWMR mode before the file gets its name: a killed writer always leaves a SWMR file */
    KVQ_H5(H5Fflush(w->file, H5F_SCOPE_GLOBAL));
    if ((st = start_swmr(w, why, why_len))) goto done;
    if ((st = sync_file(w->file, why, why_len))) goto done;
    if (rename(tmp, path) != 0) {
        st = fail(why, why_len, KVQ_ERR_IO, "rename to %s failed", path);
        goto done;
    }
    tmp[0] = 0;
    snprintf(w->path, sizeof w->path, "%s", path);
    kvq_cap_sync_dir(path);
done:
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (st) {
        close_datasets(w);
        if (w->file >= 0) H5Fclose(w->file);
        if (tmp[0]) unlink(tmp);
        writer_release(w);
        H5Eclear2(H5E_DEFAULT);
    } else {
        *out = w;
    }
    kvq_cap_quiet_end(&q);
    return st;
}

kvq_status kvq_capture_create(const char *path, const kvq_capture_meta *meta,
                              kvq_capture_writer **out, char *why, size_t why_len) {
    kvq_cap_source src;
    kvq_capture_meta m = *meta;
    m.n_sources = 1;
    kvq_cap_source_of(&m, &src);
    return kvq_cap_create_ex(path, &m, &src, 1, out, why, why_len);
}

/* ---- resume --------------------------------------------------------------------------------- */

static herr_t set_rows(hid_t ds, int rank, hsize_t rows) {
    hsize_t dims[3];
    hid_t sp = H5Dget_space(ds);
    if (sp < 0) return -1;
    int r = H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (r != rank) return -1;
    dims[0] = rows;
    return H5Dset_extent(ds, dims);
}

/* Cut every dataset back to the committed counts. */
static kvq_status truncate_to_committed(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    size_t n = (size_t)w->meta.n_captured * KVQ_CAPTURE_N_TENSORS;
    for (size_t i = 0; i < n; i++) {
        if (w->tens[i] < 0) continue;
        KVQ_H5(set_rows(w->tens[i], 2, w->n_rows));
        KVQ_H5(set_rows(w->stats[i], 3, w->n_samples));
    }
    for (int i = 0; i < SAMPLE_FIELDS; i++) KVQ_H5(set_rows(w->samp[i], 1, w->n_samples));
done:
    return st;
}

kvq_status kvq_capture_resume(const char *path, const kvq_capture_meta *expect,
                              kvq_capture_writer **out, uint32_t *complete, char *why, size_t why_len) {
    kvq_status st;
    kvq_capture_meta m;
    kvq_capture_writer *w = NULL;
    kvq_capture_sample *samples = NULL;
    hid_t fapl = -1, file = -1;
    kvq_cap_quiet q;
    *out = NULL;
    kvq_cap_quiet_begin(&q);
    KVQ_H5(fapl = latest_fapl(1));   /* clear the "open for writing" flags a killed writer left */
    file = H5Fopen(path, H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE, fapl);
    if (file < 0) {
        char h5why[512];
        kvq_cap_h5err(h5why, sizeof h5why, "H5Fopen");
        if (why) snprintf(why, why_len, "cannot open %s for resuming: %s", path, h5why);
        st = KVQ_ERR_IO;
        goto done;
    }
    /* a killed SWMR writer may have written metadata past the end of allocation its superblock
     * recorded at the last flush: take the whole file as allocated (h5clear --increment does the
     * same) so that nothing already on disk is overwritten or refused */
    KVQ_H5(H5Fincrement_filesize(file, 0));
    if ((st = kvq_cap_read_meta(file, &m, why, why_len))) goto done;
    if ((st = kvq_capture_meta_compare(&m, expect, 1, why, why_len))) goto done;
    if ((st = writer_alloc(&m, &w))) goto done;
    w->file = file;
    file = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    if ((st = kvq_cap_load_samples(w->file, &m, &w->n_samples, &samples, &w->n_rows, why, why_len))) goto done;
    if ((st = open_datasets(w, why, why_len))) goto done;
    if ((st = truncate_to_committed(w, why, why_len))) goto done;
    KVQ_H5(H5Fflush(w->file, H5F_SCOPE_GLOBAL));
    st = sync_file(w->file, why, why_len);
done:
    free(samples);
    if (fapl >= 0) H5Pclose(fapl);
    if (file >= 0) H5Fclose(file);
    if (st && w) {
        close_datasets(w);
        if (w->file >= 0) H5Fclose(w->file);
        writer_release(w);
        w = NULL;
    }
    H5Eclear2(H5E_DEFAULT);
    kvq_cap_quiet_end(&q);
    if (!st) {
        *out = w;
        if (complete) *complete = w->n_samples;
    }
    return st;
}

/* ---- appending samples ---------------------------------------------------------------------- */

kvq_status kvq_cap_usable(kvq_capture_writer *w, int need_sample, char *why, size_t why_len) {
    if (!w) return fail(why, why_len, KVQ_ERR_ARG, "%s", "no writer");
    if (w->broken) return fail(why, why_len, KVQ_ERR_ARG, "%s", "capture writer failed earlier; close it");
    if (need_sample != w->in_sample)
        return fail(why, why_len, KVQ_ERR_ARG, "%s", need_sample ? "no sample begun" : "a sample is already begun");
    return KVQ_OK;
}

kvq_status kvq_cap_begin_ex(kvq_capture_writer *w, uint64_t window_start, size_t length,
                            uint32_t source, char *why, size_t why_len) {
    kvq_status st = kvq_cap_usable(w, 0, why, why_len);
    if (st) return st;
    if (!length || length > (1u << 30) || source >= w->meta.n_sources)
        return fail(why, why_len, KVQ_ERR_ARG, "%s", "sample length 0, above 2^30, or bad source index");
    w->cur_len = length;
    w->cur_window = window_start;
    w->cur_source = source;
    memset(w->put, 0, w->meta.n_captured);
    w->in_sample = 1;
    return KVQ_OK;
}

kvq_status kvq_capture_begin(kvq_capture_writer *w, uint64_t window_start, size_t length,
                             char *why, size_t why_len) {
    return kvq_cap_begin_ex(w, window_start, length, 0, why, why_len);
}

static kvq_status commit(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_status st = kvq_cap_usable(w, 1, why, why_len);
    if (st) return st;
    if ((st = kvq_cap_write_pending(w, why, why_len))) return st;   /* the sample's last layer */
    for (uint32_t s = 0; s < w->meta.n_captured; s++)
        if (!w->put[s]) {
            if (why) snprintf(why, why_len, "layer %u not written in sample %u", w->meta.layers[s], w->n_samples);
            return KVQ_ERR_ARG;
        }
    int64_t vals[SAMPLE_FIELDS] = {(int64_t)w->n_rows, (int64_t)w->cur_len, (int64_t)w->cur_window,
                                   (int64_t)w->cur_source};
    for (int i = 0; i < SAMPLE_FIELDS && !st; i++)
        st = kvq_cap_append_rows(w->samp[i], H5T_NATIVE_INT64, 1, w->n_samples, 1, &vals[i], why, why_len);
    if (st) return st;
    /* everything of the sample reaches the file before the counter that makes it visible */
    KVQ_H5(H5Fflush(w->file, H5F_SCOPE_GLOBAL));
    int64_t n = (int64_t)w->n_samples + 1;
    KVQ_H5(H5Dwrite(w->complete, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &n));
    KVQ_H5(H5Fflush(w->file, H5F_SCOPE_GLOBAL));
    if ((st = sync_file(w->file, why, why_len))) goto done;
    w->n_samples++;
    w->n_rows += w->cur_len;
    w->in_sample = 0;
done:
    return st;
}

kvq_status kvq_capture_commit(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_cap_quiet q;
    kvq_cap_quiet_begin(&q);
    kvq_status st = commit(w, why, why_len);
    if (st && w && st != KVQ_ERR_ARG) w->broken = 1;
    kvq_cap_quiet_end(&q);
    return st;
}

void kvq_capture_writer_set_threads(kvq_capture_writer *w, int threads) {
    if (w) w->threads = threads;
}

void kvq_capture_writer_set_direct(kvq_capture_writer *w, int direct) {
    if (w) w->direct = direct != 0;
}

uint32_t kvq_capture_writer_samples(const kvq_capture_writer *w) { return w ? w->n_samples : 0; }

kvq_status kvq_capture_close(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    kvq_cap_quiet q;
    haddr_t eoa = 0;
    struct stat sb;
    if (!w) return KVQ_OK;
    kvq_cap_quiet_begin(&q);
    close_datasets(w);
    if (w->broken && w->file >= 0 && H5Fget_eoa(w->file, &eoa) < 0) eoa = 0;
    if (w->file >= 0 && H5Fclose(w->file) < 0) st = kvq_cap_h5err(why, why_len, "H5Fclose");
    /* after a failed write (disk full) HDF5 records space it could not fill: extend the file
     * (sparsely, no data blocks needed) so that every HDF5 reader accepts it */
    if (eoa && stat(w->path, &sb) == 0 && (uint64_t)sb.st_size < (uint64_t)eoa)
        if (truncate(w->path, (off_t)eoa) != 0 && !st) {
            if (why) snprintf(why, why_len, "extending %s to its recorded %llu bytes: %s", w->path,
                              (unsigned long long)eoa, strerror(errno));
            st = KVQ_ERR_IO;
        }
    writer_release(w);
    kvq_cap_quiet_end(&q);
    return st;
}
