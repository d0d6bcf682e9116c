/* qnorm.h — Q-Norm (KVQUANT.md §6): an affine correction of a fitted centroid table so that the
 * quantized calibration data has the mean and population standard deviation of the data itself.
 * It folds into the lookup table (c' = c * scale + offset; docs/quantization.md). Not k-means. */
#ifndef KVQ_QNORM_H
#define KVQ_QNORM_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_qnorm {
    double m1, s1;   /* mean and population std of x */
    double m2, s2;   /* the same of Q(x), Q = nearest of the unfolded centroids (fp32 midpoints) */
    float scale;     /* s1 / s2 */
    float offset;    /* m1 - m2 * s1 / s2 */
} kvq_qnorm;

/* Over the points x (n >= 1; unweighted: every non-outlier normalised element counts once) and
 * the sorted centroids c (k). KVQ_ERR_DATA when Q(x) is constant (s2 == 0) and no affine map can
 * match the spread. Deterministic for any n_threads (fixed slices reduced in order). */
kvq_status kvq_qnorm_compute(const float *x /* (n) */, size_t n, const float *c /* (k) */, uint32_t k,
                             int n_threads, kvq_qnorm *out, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
