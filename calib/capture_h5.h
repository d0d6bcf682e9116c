/* capture_h5.h — the calibration capture file (normative spec: docs/capture-format.md): pre-RoPE
 * K, V and their per-element Fisher tensors per layer, the sample boundaries, per-sample
 * per-channel statistics and provenance, in one HDF5 file readable by h5py with no custom code.
 * Writer (create / resume, one committed sample at a time, crash-safe), reader (what `kvq fit`
 * uses), and merge of two or more captures of the same model and settings.
 * Not the capture loop itself (capture.h runs the model) and not a general HDF5 wrapper.
 *
 * Rows are tokens: every per-layer tensor is (tokens, kv_dim), outermost-first, kv_dim =
 * n_kv_heads * head_dim; sample s occupies rows [row_start, row_start + length). The first row of
 * each sample is the window's first token (the attention sink). */
#ifndef KVQ_CAPTURE_H5_H
#define KVQ_CAPTURE_H5_H

#include <stddef.h>
#include <stdint.h>

#include "kvq_codebook.h"   /* kvq_model_identity */
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    KVQ_CAPTURE_FORMAT_VERSION = 1,   /* root attribute format_version */
    KVQ_CAPTURE_MAX_LAYERS = 1024     /* capacity of kvq_capture_meta.layers */
};

/* Storage type of the four per-layer tensors (reads always return fp32). */
typedef enum kvq_capture_dtype {
    KVQ_CAPTURE_F32 = 0,   /* IEEE binary32 little-endian (default) */
    KVQ_CAPTURE_F16 = 1,   /* IEEE binary16, rounded to nearest even */
    KVQ_CAPTURE_BF16 = 2   /* bfloat16 (an HDF5 2-byte float type: 1 sign, 8 exponent, 7 mantissa) */
} kvq_capture_dtype;

/* The four per-layer tensors, in their dataset names' order. */
typedef enum kvq_capture_tensor {
    KVQ_CAPTURE_K = 0,        /* "k_pre_rope": k_proj output (+ bias), before RoPE */
    KVQ_CAPTURE_V = 1,        /* "v": v_proj output */
    KVQ_CAPTURE_FISHER_K = 2, /* "fisher_k": (dL/dK)^2 elementwise, L = the window's mean loss */
    KVQ_CAPTURE_FISHER_V = 3, /* "fisher_v": (dL/dV)^2 elementwise */
    KVQ_CAPTURE_N_TENSORS = 4
} kvq_capture_tensor;

/* Everything the file says about how it was made (root attributes + /provenance). Plain data: the
 * writer checks and stores it, the reader fills it, resume and merge compare it. */
typedef struct kvq_capture_meta {
    char tool_version[32];        /* kvq version that wrote the file, e.g. "0.1.0" */
    char git_revision[64];        /* "" when unknown */
    char model_path[1024];
    kvq_model_identity model;     /* includes the fingerprint (kvq_model_fingerprint) */
    char tokenizer[1024];         /* what tokenized the text (path or description) */
    char text_path[1024];
    char text_sha256[65];         /* lower-case hex SHA-256 of the text file's bytes */
    uint64_t text_tokens;         /* length of the tokenized text */
    uint32_t samples_requested;   /* --samples (sum over inputs for a merged file) */
    uint32_t seq_len;             /* tokens per window */
    uint64_t seed;                /* window RNG seed */
    char window_sampling[64];     /* method name, e.g. "uniform-start-xoshiro256ss-v1" */
    kvq_capture_dtype dtype;
    int32_t fisher;               /* 1: fisher_k / fisher_v present */
    int32_t compress;             /* gzip level 0..9 (0: no gzip/shuffle) */
    uint32_t n_captured;          /* number of captured layers */
    uint32_t layers[KVQ_CAPTURE_MAX_LAYERS]; /* (n_captured) model layer indices, ascending */
    uint32_t n_sources;           /* 1, or the number of captures merged into this file */
} kvq_capture_meta;

/* One committed sample (one window). */
typedef struct kvq_capture_sample {
    uint64_t row_start;     /* first row in every per-layer tensor */
    uint64_t length;        /* rows (tokens) */
    uint64_t window_start;  /* offset of the window's first token in its source's token stream */
    uint32_t source;        /* index of the merged input it came from (0 when not merged) */
} kvq_capture_sample;

/* Per-channel statistics of one tensor of one layer over a set of rows: mergeable (sums add,
 * min/max combine). */
typedef struct kvq_capture_stats {
    uint64_t count;         /* rows summarised */
    double *sum;            /* (kv_dim) */
    double *sumsq;          /* (kv_dim) */
    double *min;            /* (kv_dim) */
    double *max;            /* (kv_dim) */
} kvq_capture_stats;
void kvq_capture_stats_free(kvq_capture_stats *s);   /* frees the arrays; accepts NULL */

/* Fill the defaults and the given model identity: tool version, seq_len 2048, samples 16, seed 0,
 * F32, fisher on, no compression, every layer captured, window_sampling as capture.c uses. */
void kvq_capture_meta_init(kvq_capture_meta *meta, const kvq_model_identity *model);
const char *kvq_capture_dtype_name(kvq_capture_dtype d);          /* "float32" / "float16" / "bfloat16" */
/* Storage type of one tensor in a file of dtype d: d itself, except that Fisher tensors of a
 * float16 file are bfloat16 (squared gradients, ~1e-10, underflow float16's range). */
kvq_capture_dtype kvq_capture_tensor_dtype(kvq_capture_dtype d, kvq_capture_tensor t);
const char *kvq_capture_tensor_name(kvq_capture_tensor t);        /* dataset name, e.g. "k_pre_rope" */
/* Same settings? Compares model identity (fingerprint included) and every capture setting that
 * must agree for two files to be continued or merged; `check_inputs` also requires the same text
 * hash, seed, sampling method and samples_requested (resume). On mismatch, `why` names the field. */
kvq_status kvq_capture_meta_compare(const kvq_capture_meta *a, const kvq_capture_meta *b,
                                    int check_inputs, char *why, size_t why_len);

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct kvq_capture_writer kvq_capture_writer;

/* Create `path` (refuses an existing file: KVQ_ERR_IO) with meta's layout. The file is valid
 * (0 complete samples) as soon as this returns. */
kvq_status kvq_capture_create(const char *path, const kvq_capture_meta *meta,
                              kvq_capture_writer **out, char *why, size_t why_len);
/* Reopen an interrupted (or finished) capture to continue it: its metadata must match `expect`
 * (kvq_capture_meta_compare with check_inputs); rows past the last complete sample are discarded.
 * *complete receives the number of samples already committed. */
kvq_status kvq_capture_resume(const char *path, const kvq_capture_meta *expect,
                              kvq_capture_writer **out, uint32_t *complete, char *why, size_t why_len);

/* How put_layer spends CPU (never what the file holds). threads: size of the OpenMP team that
 * checks, summarises, converts and checksums each layer while the calling thread writes the
 * previous one (<= 0, the default: omp_get_max_threads() of the thread calling put_layer). Only
 * the thread calling the writer's functions ever enters HDF5. */
void kvq_capture_writer_set_threads(kvq_capture_writer *w, int threads);
/* direct 1 (default): without gzip, whole chunks are checksummed by kvq and written with
 * H5Dwrite_chunk; 0: rows go through HDF5's filter pipeline (H5Dwrite), as with gzip. The file's
 * bytes are the same either way (benchmarks and tests compare the two). */
void kvq_capture_writer_set_direct(kvq_capture_writer *w, int direct);

/* Append one sample: begin, then put every captured layer once (any order; slot = index into
 * meta.layers), then commit. fisher_k/fisher_v must be NULL exactly when meta.fisher == 0. Data
 * is checked finite (KVQ_ERR_NONFINITE names layer, tensor, row and sample). Nothing of the
 * sample is visible to readers before kvq_capture_commit returns KVQ_OK; after an error the
 * writer must be closed (the file keeps every previously committed sample). put_layer reads the
 * arrays only until it returns: it stages the layer (converted, checksummed) and writes the
 * previously put layer meanwhile; commit writes the last one. So a write error (disk full) may be
 * reported by the put_layer or commit after the layer's own call; its message names the layer. */
kvq_status kvq_capture_begin(kvq_capture_writer *w, uint64_t window_start, size_t length,
                             char *why, size_t why_len);
kvq_status kvq_capture_put_layer(kvq_capture_writer *w, uint32_t slot,
                                 const float *k        /* (length, kv_dim) */,
                                 const float *v        /* (length, kv_dim) */,
                                 const float *fisher_k /* (length, kv_dim) or NULL */,
                                 const float *fisher_v /* (length, kv_dim) or NULL */,
                                 char *why, size_t why_len);
kvq_status kvq_capture_commit(kvq_capture_writer *w, char *why, size_t why_len);
uint32_t kvq_capture_writer_samples(const kvq_capture_writer *w);   /* committed so far */

/* Close: flush and release. Returns the first error met while closing. Accepts NULL. After a
 * failed write (disk full, file-size limit) HDF5 1.10's own H5Fclose can fail, and its atexit
 * clean-up then crashes on that file: programs should call H5dont_atexit() before their first
 * HDF5 call, as `kvq` does. */
kvq_status kvq_capture_close(kvq_capture_writer *w, char *why, size_t why_len);

/* ---- reader ---------------------------------------------------------------------------------- */

typedef struct kvq_capture_reader kvq_capture_reader;

/* Open read-only. Works on a finished file and on one left by an interrupted capture (only its
 * committed samples are visible). Checks format name and version. */
kvq_status kvq_capture_open(const char *path, kvq_capture_reader **out, char *why, size_t why_len);
void kvq_capture_reader_free(kvq_capture_reader *r);                 /* accepts NULL */

const kvq_capture_meta *kvq_capture_reader_meta(const kvq_capture_reader *r);
uint32_t kvq_capture_n_samples(const kvq_capture_reader *r);         /* complete samples */
uint64_t kvq_capture_n_rows(const kvq_capture_reader *r);            /* rows of those samples */
const kvq_capture_sample *kvq_capture_samples(const kvq_capture_reader *r); /* (n_samples) */
uint32_t kvq_capture_kv_dim(const kvq_capture_reader *r);
/* Slot (index into meta.layers) of model layer `layer`, or -1 when it was not captured. */
int kvq_capture_slot(const kvq_capture_reader *r, uint32_t layer);

/* Rows [row0, row0 + n_rows) of one tensor of model layer `layer`, converted to fp32. Errors:
 * KVQ_ERR_MISSING (layer not captured, Fisher absent), KVQ_ERR_BOUNDS (rows past n_rows),
 * KVQ_ERR_CHECKSUM (a chunk's Fletcher-32 does not match), KVQ_ERR_HDF5. */
kvq_status kvq_capture_read_rows(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                 uint64_t row0, uint64_t n_rows,
                                 float *out /* (n_rows, kv_dim) */, char *why, size_t why_len);
/* Every committed row of one tensor: *out (n_rows, kv_dim) is malloc'ed; free() it. */
kvq_status kvq_capture_read_all(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                float **out, uint64_t *n_rows, char *why, size_t why_len);
/* Per-channel statistics of one tensor of `layer` over every committed sample (the stored
 * per-sample statistics reduced). Arrays are allocated; release with kvq_capture_stats_free. */
kvq_status kvq_capture_read_stats(const kvq_capture_reader *r, uint32_t layer, kvq_capture_tensor t,
                                  kvq_capture_stats *out, char *why, size_t why_len);

/* ---- merge ----------------------------------------------------------------------------------- */

/* Write `out_path` (atomically: temporary name, fsync, rename) holding every committed sample of
 * each input in order. Inputs must share model and settings (kvq_capture_meta_compare without
 * check_inputs) and must not repeat a (text, seed) pair (the windows would repeat):
 * KVQ_ERR_MISMATCH otherwise, naming the input and field. */
kvq_status kvq_capture_merge(const char *const *inputs /* (n_inputs) */, size_t n_inputs,
                             const char *out_path, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
