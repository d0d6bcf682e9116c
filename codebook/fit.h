/* fit.h — `kvq fit`: turn calibration data (pre-RoPE K, V and their Fisher tensors) into a
 * codebook (KVQUANT.md §2–§8): per-channel key thresholds, per-layer Fisher-weighted non-uniform
 * datatypes for K and V, outlier settings, Q-Norm, sink tokens. Layer by layer, memory bounded by
 * one layer's data; deterministic (same inputs and options give the same bytes, whatever the thread
 * count). Not the file format (format/), not the capture file (calib/capture_h5.h). */
#ifndef KVQ_FIT_H
#define KVQ_FIT_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_codebook.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { KVQ_QNORM_AUTO = -1 };   /* kvq_fit_opts.qnorm: on at 2 bits only (the reference) */

typedef struct kvq_fit_opts {
    uint32_t k_bits, v_bits;          /* 1..8 (default 3, 3) */
    float outlier_fraction;           /* p (default 0.01); 0 disables outliers */
    uint32_t outlier_cap;             /* m per side per token; 0 = none (values: floor(p/2*g)) */
    int outlier_cap_ref;              /* 1 (default): m = ceil(p/2 * g), g = kv_dim (keys) or the
                                         value group; overrides outlier_cap */
    int qnorm;                        /* KVQ_QNORM_AUTO, 0 off, 1 on */
    uint32_t n_sink;                  /* first tokens of every sample kept fp16 (default 1) */
    int sink_in_key_thresholds;       /* 0: sink rows excluded from key percentiles (paper), 1: kept
                                         (reference code); k-means never sees them */
    kvq_norm_axis value_axis;         /* PER_TOKEN (default, reference) or PER_TOKEN_HEAD */
    kvq_fisher_weighting weighting;   /* default FISHER_SCALED (w = F r^2) */
    kvq_kmeans_solver solver;         /* default EXACT */
    uint32_t kmeans_iters;            /* Lloyd cap (default 50) */
    uint64_t kmeans_seed;             /* Lloyd k-means++ seed (default 0) */
    uint32_t hist_bins;               /* exact solver histogram (default KVQ_KMEANS_DEFAULT_BINS) */
    int n_threads;                    /* default 1 */
} kvq_fit_opts;

void kvq_fit_opts_default(kvq_fit_opts *o);

/* One layer's calibration data in memory: all samples' rows concatenated. */
typedef struct kvq_fit_input {
    uint32_t layer;                   /* model layer index (for messages) */
    const float *k, *v;               /* (n_rows, kv_dim) pre-RoPE keys, values */
    const float *fk, *fv;             /* (n_rows, kv_dim) Fisher (squared gradients); NULL if absent */
    size_t n_rows;
    uint32_t kv_dim, head_dim;
    const uint8_t *sink;              /* (n_rows) 1 for sink tokens; NULL: none */
} kvq_fit_input;

/* Figures of one fitted layer. */
typedef struct kvq_fit_layer_report {
    uint32_t layer;
    double k_objective, v_objective;          /* weighted SSE, normalised units */
    double k_outlier_rate, v_outlier_rate;    /* outliers / non-sink elements */
    size_t k_points, v_points;                /* k-means input sizes */
    int k_qnorm, v_qnorm;
    double seconds;
} kvq_fit_layer_report;

/* Fit one layer into `out`, whose arrays are allocated for kv_dim and o's bit widths
 * (kvq_codebook_alloc). Checks the data (NaN/Inf, |x| beyond fp16, negative Fisher: naming layer,
 * tensor, row and column) and fails with KVQ_ERR_MISSING when a Fisher weighting lacks Fisher. */
kvq_status kvq_fit_layer(const kvq_fit_opts *o, const kvq_fit_input *in, kvq_layer_codebook *out,
                         kvq_fit_layer_report *rep, char *why, size_t why_len);

/* Called once before the first layer (r == NULL, done == 0) and after each layer of kvq_fit_capture
 * (done = layers finished so far). */
typedef void (*kvq_fit_progress_fn)(void *ctx, const kvq_fit_layer_report *r, uint32_t done,
                                    uint32_t total);

/* Fit every layer of a capture file (docs/capture-format.md) into *out (allocated here; free with
 * kvq_codebook_free): model identity from the capture, provenance, diagnostics. Sink rows are the
 * first n_sink rows of every sample. Write it with kvq_codebook_write. */
kvq_status kvq_fit_capture(const char *capture_path, const kvq_fit_opts *o, kvq_fit_progress_fn cb,
                           void *cb_ctx, kvq_codebook *out, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
