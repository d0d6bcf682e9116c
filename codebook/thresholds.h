/* thresholds.h — the normalisation side of fitting (KVQUANT.md §2, §3, §5): per-channel key
 * thresholds from calibration percentiles, and the normalised, non-outlier points (with their
 * k-means weights) that the runtime would see for a layer's keys or values. The per-token value
 * rule and the key outlier rule (cap included) are not re-implemented here: points come from
 * the quantization reference (quant.h, docs/quantization.md §3–§4) so calibration matches the
 * runtime bit for bit. Not k-means (kmeans.h), not Q-Norm (qnorm.h). */
#ifndef KVQ_THRESHOLDS_H
#define KVQ_THRESHOLDS_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_codebook.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Percentile q in [0, 1] of v (n >= 1) with linear interpolation between order statistics, the
 * numpy/torch default: pos = q*(n-1), i = floor(pos), result = v_(i) + (pos - i)*(v_(i+1) - v_(i))
 * in double, v_(j) the j-th smallest. Reorders v (quickselect, O(n)). */
double kvq_percentile(float *v, size_t n, double q);

/* Per-channel key thresholds over the rows with use[row] != 0 (NULL: all rows): each element is
 * first rounded to fp16 (the runtime's input), hi = percentile(1 - p/2), lo = percentile(p/2)
 * (p = 0: max, min), z = (hi + lo)/2, r = (hi - lo)/2 computed in double and stored as fp32;
 * r is set to 1 when it is not a positive normal fp32 (a constant channel). */
kvq_status kvq_key_thresholds(const float *k /* (n_rows, dim) */, size_t n_rows, uint32_t dim,
                              const uint8_t *use /* (n_rows) or NULL */, float outlier_fraction,
                              int n_threads, float *z /* (dim) */, float *r /* (dim) */,
                              char *why, size_t why_len);

/* How one tensor is normalised: keys (PER_CHANNEL with z, r) or values (PER_TOKEN[_HEAD]). */
typedef struct kvq_norm_spec {
    kvq_norm_axis axis;
    uint32_t dim, head_dim;          /* kv_dim; head_dim for PER_TOKEN_HEAD */
    const float *z, *r;              /* (dim) PER_CHANNEL only */
    float outlier_fraction;          /* p, 0 disables */
    uint32_t outlier_cap;            /* m, 0 = none (keys) / floor(p/2*g) (values) */
    kvq_fisher_weighting weighting;
} kvq_norm_spec;

/* The k-means input of one tensor of one layer. */
typedef struct kvq_norm_points {
    float *x;            /* (n) normalised non-outlier elements, clamped to [-1, 1], row-major order */
    float *w;            /* (n) weights: 1, F, or F * r^2 (r = the element's half-range) */
    size_t n;
    size_t n_elements;   /* non-sink elements examined (= n + n_outliers) */
    size_t n_outliers;   /* sparse outliers among them */
} kvq_norm_points;
void kvq_norm_points_free(kvq_norm_points *p);   /* accepts NULL and zeroed structs */

/* Normalise every row with use[row] != 0 (NULL: all) exactly as the runtime would encode it and
 * collect the non-outlier elements with their weights. fisher: (n_rows, dim), required unless
 * weighting == NONE. Deterministic for any n_threads. */
kvq_status kvq_norm_collect(const kvq_norm_spec *s, const float *a /* (n_rows, dim) */,
                            const float *fisher /* (n_rows, dim) or NULL */, size_t n_rows,
                            const uint8_t *use /* (n_rows) or NULL */, int n_threads,
                            kvq_norm_points *out, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
