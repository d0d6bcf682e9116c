/* capture_h5_int.h — internals shared by capture_h5.c (writer), capture_h5_meta.c (attributes,
 * types, errors) and capture_h5_read.c (reader, merge). Not API: nothing outside these files
 * includes it. */
#ifndef KVQ_CAPTURE_H5_INT_H
#define KVQ_CAPTURE_H5_INT_H

#include <hdf5.h>

#include "capture_h5.h"

/* What one input capture contributed (/provenance/sources/NNN). */
typedef struct kvq_cap_source {
    char tool_version[32], git_revision[64];
    char model_path[1024], tokenizer[1024], text_path[1024], text_sha256[65];
    uint64_t text_tokens, seed;
    uint32_t samples_requested;
} kvq_cap_source;

/* ---- the writer (capture_h5.c: layout, create, resume, begin, commit, close; capture_h5_put.c:
 * put_layer, the staged and direct chunk writes) ---- */

enum { SAMPLE_FIELDS = 4 };   /* /samples/row_start, length, window_start, source */

/* One layer staged for the file by put_layer and written by the next put_layer or the commit. */
typedef struct kvq_cap_stage {
    int full;                     /* holds a layer not yet written */
    int direct;                   /* buf holds whole chunks, each followed by its Fletcher-32 */
    int nt;                       /* tensors: 4 with Fisher, else 2 */
    uint32_t slot;
    size_t len, chunk_rows;       /* rows of the sample; rows per chunk */
    uint8_t *buf[KVQ_CAPTURE_N_TENSORS];    /* (len, kv_dim) in the storage type (direct: chunk by
                                               chunk, 4 checksum bytes after each) */
    size_t cap[KVQ_CAPTURE_N_TENSORS];      /* bytes allocated in buf */
    double *stats[KVQ_CAPTURE_N_TENSORS];   /* (4, kv_dim) */
} kvq_cap_stage;

struct kvq_capture_writer {
    hid_t file;
    kvq_capture_meta meta;
    uint32_t kv_dim;
    hid_t *tens;                  /* (n_captured, 4) datasets, -1 when absent */
    hid_t *stats;                 /* (n_captured, 4) */
    hid_t samp[SAMPLE_FIELDS];
    hid_t complete;
    uint32_t n_samples;           /* committed */
    uint64_t n_rows;              /* committed */
    int in_sample, broken;
    uint64_t cur_window;
    uint32_t cur_source;
    size_t cur_len;
    uint8_t *put;                 /* (n_captured) layers written in this sample */
    int threads;                  /* staging team size; <= 0: omp_get_max_threads() */
    int direct;                   /* 1: whole chunks via H5Dwrite_chunk when possible */
    kvq_cap_stage stage[2];       /* stage[pending] may hold a layer to write */
    int pending;
    char path[4096];
};

/* KVQ_ERR_ARG unless w is usable and (need_sample) inside a sample or (0) between samples. */
kvq_status kvq_cap_usable(kvq_capture_writer *w, int need_sample, char *why, size_t why_len);
/* Write the pending staged layer, if any (marks its slot done; the writer broken on failure). */
kvq_status kvq_cap_write_pending(kvq_capture_writer *w, char *why, size_t why_len);
/* Extend `ds` (rank 1 to 3) to rows0 + rows along axis 0 and write `buf` (mtype) there. */
kvq_status kvq_cap_append_rows(hid_t ds, hid_t mtype, int rank, hsize_t rows0, hsize_t rows,
                               const void *buf, char *why, size_t why_len);

/* Save HDF5's automatic error printing and switch it off (library code never prints). */
typedef struct kvq_cap_quiet {
    H5E_auto2_t func;
    void *data;
} kvq_cap_quiet;
void kvq_cap_quiet_begin(kvq_cap_quiet *q);
void kvq_cap_quiet_end(const kvq_cap_quiet *q);

/* Turn the current HDF5 error stack into `why` ("<what>: <innermost HDF5 message>") and a status:
 * KVQ_ERR_CHECKSUM when a checksum failed, KVQ_ERR_IO when an OS write/read failed, else
 * KVQ_ERR_HDF5. Clears the stack. */
kvq_status kvq_cap_h5err(char *why, size_t why_len, const char *what);
/* Check an HDF5 call (negative = failure) inside a function with `kvq_status st`, `why`,
 * `why_len` and a `done:` label. */
#define KVQ_H5(call)                                                                       \
    do {                                                                                   \
        if ((call) < 0) { st = kvq_cap_h5err(why, why_len, #call); goto done; }            \
    } while (0)

/* fsync the directory holding `path` (after a rename), best effort. */
void kvq_cap_sync_dir(const char *path);
/* Create group `name` under loc without modification/access timestamps (repeat captures give
 * byte-identical files); negative on failure. */
hid_t kvq_cap_group(hid_t loc, const char *name);
/* Write a variable-length UTF-8 string attribute. */
herr_t kvq_cap_attr_str(hid_t loc, const char *name, const char *v);
/* File element type of a storage dtype (caller closes it). */
hid_t kvq_cap_file_type(kvq_capture_dtype d);
size_t kvq_cap_elem_size(kvq_capture_dtype d);
/* "/layers/NNN" for model layer `layer` of an n_layers model. */
void kvq_cap_layer_path(char *buf, size_t len, uint32_t layer, uint32_t n_layers);
/* Rows per chunk of the per-layer tensors (docs/capture-format.md). */
hsize_t kvq_cap_chunk_rows(const kvq_capture_meta *m);

void kvq_cap_source_of(const kvq_capture_meta *m, kvq_cap_source *src);
/* Root attributes, /provenance and /provenance/sources/NNN. */
kvq_status kvq_cap_write_meta(hid_t file, const kvq_capture_meta *m, const kvq_cap_source *src,
                              uint32_t n_src, char *why, size_t why_len);
/* Check the root attributes and fill meta from /provenance. */
kvq_status kvq_cap_read_meta(hid_t file, kvq_capture_meta *m, char *why, size_t why_len);
kvq_status kvq_cap_read_sources(hid_t file, uint32_t n_src, kvq_cap_source *src,
                                char *why, size_t why_len);

/* Read /complete_samples (n) and /samples[:n], check them (contiguous rows from 0, lengths,
 * sources) and that every tensor and statistics dataset holds at least the committed rows with
 * kv_dim columns. *samples (n) is malloc'ed; *rows = rows of the committed samples. */
kvq_status kvq_cap_load_samples(hid_t file, const kvq_capture_meta *m, uint32_t *n,
                                kvq_capture_sample **samples, uint64_t *rows, char *why, size_t why_len);

/* Writer internals used by merge: a file created from several sources, samples tagged with their
 * source, and per-sample statistics copied instead of recomputed (so merging is exact). */
kvq_status kvq_cap_create_ex(const char *path, const kvq_capture_meta *m, const kvq_cap_source *src,
                             uint32_t n_src, kvq_capture_writer **out, char *why, size_t why_len);
kvq_status kvq_cap_begin_ex(kvq_capture_writer *w, uint64_t window_start, size_t length,
                            uint32_t source, char *why, size_t why_len);
/* tensors[t] (length, kv_dim) or NULL when absent; stats[t] (4, kv_dim) to store instead of
 * computing them, or NULL. */
kvq_status kvq_cap_put_layer_ex(kvq_capture_writer *w, uint32_t slot, const float *const tensors[4],
                                const double *const stats[4], char *why, size_t why_len);
/* The reader's /provenance/sources entries: src (meta.n_sources). */
kvq_status kvq_cap_reader_sources(const kvq_capture_reader *r, kvq_cap_source *src, char *why, size_t why_len);
/* Stored statistics (4, kv_dim) of sample s for one tensor (reader side, for merge). */
kvq_status kvq_cap_read_sample_stats(const kvq_capture_reader *r, uint32_t layer,
                                     kvq_capture_tensor t, uint32_t s, double *out,
                                     char *why, size_t why_len);

#endif
