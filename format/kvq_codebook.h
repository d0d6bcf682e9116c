/* kvq_codebook.h — the in-memory codebook: everything the runtime needs to quantize a model's KV
 * cache (KVQUANT.md §2–§8), plus provenance. This struct is the contract between `kvq fit` (which
 * fills it), the file format (format/codebook_file.c, spec in docs/format.md) and every consumer
 * (simulated quantization in codebook/, the CUDA runtime in kernels/). Depends on libc only.
 * All arrays are owned by the codebook and released by kvq_codebook_free. */
#ifndef KVQ_CODEBOOK_H
#define KVQ_CODEBOOK_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { KVQ_MAX_BITS = 8, KVQ_MAX_LAYERS = 65536 };

typedef enum kvq_rope_convention {
    KVQ_ROPE_ROTATE_HALF = 0,  /* HF transformers: pairs (i, i + head_dim/2) — kvq's internal one */
    KVQ_ROPE_INTERLEAVED = 1   /* Meta/llama2.c/GGUF "normal": pairs (2i, 2i+1) */
} kvq_rope_convention;

typedef enum kvq_rope_scaling {
    KVQ_ROPE_SCALING_NONE = 0,
    KVQ_ROPE_SCALING_LINEAR = 1,
    KVQ_ROPE_SCALING_LLAMA3 = 2
} kvq_rope_scaling;

/* Which elements share one normalisation (zero point, half-range). */
typedef enum kvq_norm_axis {
    KVQ_NORM_PER_CHANNEL = 0,  /* keys: static, per channel over calibration tokens */
    KVQ_NORM_PER_TOKEN = 1,    /* values: dynamic, per token over the whole kv_dim vector */
    KVQ_NORM_PER_TOKEN_HEAD = 2/* values: dynamic, per token and per KV head (head_dim elements) */
} kvq_norm_axis;

/* How the sparse outlier value is stored (KVQUANT.md §5). Both are lossless for outliers. */
typedef enum kvq_outlier_residual {
    KVQ_OUTLIER_EXACT = 0,     /* sparse entry holds the original element; dense code ignored */
    KVQ_OUTLIER_RESIDUAL = 1   /* sparse entry holds element minus the dense dequantized value */
} kvq_outlier_residual;

typedef enum kvq_fisher_weighting {
    KVQ_WEIGHT_NONE = 0,          /* w = 1 */
    KVQ_WEIGHT_FISHER = 1,        /* w = F (reference code) */
    KVQ_WEIGHT_FISHER_SCALED = 2  /* w = F * r^2 (paper) */
} kvq_fisher_weighting;

typedef enum kvq_kmeans_solver {
    KVQ_SOLVER_LLOYD = 0,         /* weighted k-means++ start + Lloyd (reference) */
    KVQ_SOLVER_EXACT = 1          /* exact 1-D optimum (DP over a fine weighted histogram / sorted points) */
} kvq_kmeans_solver;

/* Quantizer of one tensor kind (K or V) of one layer. */
typedef struct kvq_tensor_codebook {
    uint32_t bits;               /* code width b, 1..KVQ_MAX_BITS */
    float *centroids;            /* (1 << bits) sorted ascending, normalised units, WITHOUT Q-Norm */
    int32_t qnorm;               /* 1: dequantize with c * qnorm_scale + qnorm_offset */
    float qnorm_scale;           /* s1/s2 (1 when qnorm == 0) */
    float qnorm_offset;          /* m1 - m2*s1/s2 (0 when qnorm == 0) */
    kvq_norm_axis axis;          /* PER_CHANNEL for keys; PER_TOKEN or PER_TOKEN_HEAD for values */
    float *zero_point;           /* (kv_dim) per-channel z_c; NULL unless axis == PER_CHANNEL */
    float *half_range;           /* (kv_dim) per-channel r_c > 0; NULL unless axis == PER_CHANNEL */
    float outlier_fraction;      /* p: 0 disables; per-vector thresholds at percentiles 1-p/2, p/2 */
    uint32_t outlier_cap;        /* m: at most m upper + m lower outliers per token; 0 = no cap */
    kvq_outlier_residual residual;
} kvq_tensor_codebook;

typedef struct kvq_layer_codebook {
    kvq_tensor_codebook k;       /* keys, pre-RoPE, per channel */
    kvq_tensor_codebook v;       /* values, per token */
} kvq_layer_codebook;

/* Identity of the model a codebook belongs to; kvq_codebook_check_model compares these. */
typedef struct kvq_model_identity {
    char architecture[64];       /* e.g. "llama", "qwen2", "mistral" (NUL-terminated) */
    uint32_t n_layers, n_heads, n_kv_heads, head_dim, hidden, vocab;
    float rope_theta;
    kvq_rope_scaling rope_scaling;
    float rope_scaling_factor;   /* linear / llama3 factor; 1 when none */
    float rope_low_freq_factor, rope_high_freq_factor; /* llama3 only */
    uint32_t rope_original_max_pos;                    /* llama3 only */
    kvq_rope_convention rope_convention;  /* convention of the runtime's q/k (kvq: ROTATE_HALF) */
    uint64_t fingerprint;        /* kvq_model_fingerprint() of the canonical fp32 weights */
} kvq_model_identity;

/* Where the codebook came from (informational, but always written). */
typedef struct kvq_provenance {
    char tool_version[32];
    char calib_text[256];        /* path or name of the calibration text */
    char calib_text_sha256[65];  /* hex, or "" */
    uint32_t samples, seq_len;
    uint64_t seed;
    kvq_fisher_weighting weighting;
    kvq_kmeans_solver solver;
    uint32_t kmeans_iters;       /* Lloyd max iterations (reference: 50) */
    uint64_t kmeans_seed;
    uint32_t histogram_bins;     /* exact solver's histogram resolution; 0 = sorted points */
} kvq_provenance;

/* Optional per-layer fit diagnostics (n_layers entries each, or NULL). */
typedef struct kvq_diagnostics {
    double *k_objective, *v_objective;       /* weighted SSE of the fit (normalised units) */
    double *k_outlier_rate, *v_outlier_rate; /* fraction of calibration elements flagged */
} kvq_diagnostics;

typedef struct kvq_codebook {
    kvq_model_identity model;
    uint32_t n_sink;             /* first n_sink tokens of every sequence kept in fp16 */
    kvq_provenance provenance;
    kvq_layer_codebook *layers;  /* (model.n_layers) */
    kvq_diagnostics diag;        /* arrays may be NULL */
} kvq_codebook;

static inline uint32_t kvq_kv_dim(const kvq_model_identity *m) { return m->n_kv_heads * m->head_dim; }

/* Allocate layers (zeroed) and, for keys, zero_point/half_range of kv_dim; centroids of 1<<bits.
 * Sets axis/bits (keys PER_CHANNEL, values PER_TOKEN), qnorm_scale = 1, and model.n_layers (which
 * kvq_codebook_free relies on: do not change it afterwards); diag arrays (n_layers, zeroed) when
 * with_diagnostics, else NULL. Other identity, n_sink and provenance fields are left as they are.
 * The caller fills numbers. */
kvq_status kvq_codebook_alloc(kvq_codebook *cb, uint32_t n_layers, uint32_t kv_dim,
                              uint32_t k_bits, uint32_t v_bits, int with_diagnostics);
void kvq_codebook_free(kvq_codebook *cb);   /* accepts NULL and zeroed structs */
/* (Re)allocate one tensor's arrays for per-layer choices: centroids of 1<<bits (zeroed) and, only
 * for axis == PER_CHANNEL, zero_point/half_range of kv_dim (zeroed). Frees the previous arrays (t
 * must be zeroed or from an earlier call), sets bits and axis, qnorm = 0, qnorm_scale = 1,
 * qnorm_offset = 0; keeps the outlier fields. On error t's arrays are NULL. */
kvq_status kvq_tensor_codebook_init(kvq_tensor_codebook *t, uint32_t bits, kvq_norm_axis axis,
                                    uint32_t kv_dim);
void kvq_tensor_codebook_free(kvq_tensor_codebook *t);  /* arrays only; accepts NULL */
/* Semantic checks (sorted centroids, r > 0, finite, bits in range, ...). */
kvq_status kvq_codebook_validate(const kvq_codebook *cb, char *why, size_t why_len);
/* Same model? Compares every identity field; on mismatch writes which one to `why`. */
kvq_status kvq_codebook_check_model(const kvq_codebook *cb, const kvq_model_identity *m,
                                    char *why, size_t why_len);
/* Centroid table the runtime uses: c * qnorm_scale + qnorm_offset when qnorm, else c. (1<<bits) */
void kvq_codebook_lut(const kvq_tensor_codebook *t, float *lut);

/* File I/O (docs/format.md). Read/parse never read past the buffer; errors name the problem.
 * parse/read check the container (§5), then run kvq_codebook_validate: a codebook they return is
 * valid. `out` is overwritten (not freed first); on error it is left zeroed. */
kvq_status kvq_codebook_parse(const void *buf, size_t len, kvq_codebook *out, char *why, size_t why_len);
kvq_status kvq_codebook_read(const char *path, kvq_codebook *out, char *why, size_t why_len);
/* The exact file bytes (malloc'ed, caller frees). Deterministic. Fails with validate's status on an
 * invalid codebook (call kvq_codebook_validate first for the message). */
kvq_status kvq_codebook_serialize(const kvq_codebook *cb, void **buf, size_t *len);
/* Atomic: PATH.tmp.XXXXXX in PATH's directory, fsync, rename, fsync of the directory; on failure
 * the temporary is removed, an existing PATH is untouched and KVQ_ERR_IO returned. The file gets
 * the mode of the file it replaces, else 0644. */
kvq_status kvq_codebook_write(const char *path, const kvq_codebook *cb);

/* What the container says about itself (for `kvq inspect`). */
typedef struct kvq_codebook_file_info {
    uint16_t version_major, version_minor;
    uint32_t header_size, n_meta, n_entries;
    uint64_t file_size, data_offset;
    uint32_t header_crc;
    uint64_t payload_bytes;             /* sum of entry sizes */
    uint32_t n_unknown_meta, n_unknown_entries;  /* ignored keys/entries (a newer minor version) */
} kvq_codebook_file_info;
enum { KVQ_PARSE_SKIP_CHECKSUMS = 1 };  /* flags: do not compare CRCs (fuzzing, forensics) */
#define KVQ_CODEBOOK_MAX_FILE ((uint64_t)1 << 30)   /* kvq_codebook_read refuses larger files */
/* parse/read with flags and, when info != NULL, the container's description (filled as far as
 * parsing got, also on error). */
kvq_status kvq_codebook_parse_ex(const void *buf, size_t len, unsigned flags, kvq_codebook *out,
                                 kvq_codebook_file_info *info, char *why, size_t why_len);
kvq_status kvq_codebook_read_ex(const char *path, unsigned flags, kvq_codebook *out,
                                kvq_codebook_file_info *info, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
