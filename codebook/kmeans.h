/* kmeans.h — weighted one-dimensional k-means: the solver behind the non-uniform datatype of
 * KVQUANT.md §4. Two solvers: the reference (weighted k-means++ start + Lloyd) and an exact one
 * (dynamic programming over a fine weighted histogram, or over the sorted points when they are few),
 * both scored by the same objective sum_i w_i (x_i - Q(x_i))^2 with Q = nearest centroid, ties to
 * the lower one, midpoints computed in fp32 exactly as the runtime does (docs/quantization.md §1).
 * Deterministic: results do not depend on the thread count (fixed slices, reduced in order).
 * Not thresholds or normalisation (thresholds.h), not Q-Norm (qnorm.h). */
#ifndef KVQ_KMEANS_H
#define KVQ_KMEANS_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_codebook.h"   /* kvq_kmeans_solver */
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    KVQ_KMEANS_DEFAULT_BINS = 1 << 18,   /* exact solver's histogram resolution */
    KVQ_KMEANS_SORT_LIMIT = 1 << 18,     /* exact solver: at most this many points -> sorted DP */
    KVQ_KMEANS_HIST_SHARDS = 8           /* fixed histogram shards (determinism across threads) */
};

typedef struct kvq_kmeans_opts {
    kvq_kmeans_solver solver;
    uint32_t k;              /* number of centroids, 1..256 */
    uint32_t max_iters;      /* Lloyd: iteration cap (reference 50) */
    uint64_t seed;           /* Lloyd: k-means++ RNG seed (reference 0) */
    uint32_t hist_bins;      /* exact: histogram bins over [min x, max x]; 0 = always sort */
    uint32_t polish_iters;   /* exact: Lloyd steps on the real points, kept while they improve */
    int n_threads;           /* >= 1 */
} kvq_kmeans_opts;

/* Reference defaults: EXACT, 50 iterations, seed 0, 2^18 bins, 2 polish steps, 1 thread. */
void kvq_kmeans_opts_default(kvq_kmeans_opts *o, uint32_t k);

typedef struct kvq_kmeans_result {
    double objective;        /* kvq_kmeans_objective of the returned centroids */
    uint32_t iters;          /* Lloyd iterations run (exact: polish steps kept) */
    uint32_t relocations;    /* Lloyd: empty clusters moved to the worst-served point */
    uint32_t bins_used;      /* exact: non-empty groups the DP ran over (0 for Lloyd) */
    int sorted_points;       /* exact: 1 when the DP ran over sorted points (truly optimal) */
    double hist_gap_bound;   /* exact, histogram path: bound on (DP objective - optimum), see docs */
} kvq_kmeans_result;

/* Fit k centroids to points x (n) with weights w (n; NULL = all 1). Weights must be >= 0 and
 * finite, x finite; only points with w > 0 count. Fails with KVQ_ERR_DATA when fewer than k
 * distinct x carry positive weight. centroids: (k) ascending on return. */
kvq_status kvq_kmeans_fit(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                          float *centroids, kvq_kmeans_result *res, char *why, size_t why_len);

/* Lloyd iterations (o->max_iters, the same rules as the reference solver: stop when no centroid
 * moves, an empty cluster goes to the worst-served point) from the k given centroids, in place.
 * centroids: (o->k) start on entry, ascending result on return. */
kvq_status kvq_kmeans_lloyd(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                            float *centroids, kvq_kmeans_result *res, char *why, size_t why_len);

/* sum_i w_i (x_i - c[code(x_i)])^2 in double, code() by fp32 midpoints (ties low). c: (k) sorted. */
double kvq_kmeans_objective(const float *x, const float *w, size_t n, const float *c, uint32_t k,
                            int n_threads);

/* Index of the nearest centroid per docs/quantization.md §1: the number of midpoints below x.
 * mid: (k-1) fp32 midpoints 0.5f*(c[i]+c[i+1]). */
uint32_t kvq_kmeans_code(const float *mid, uint32_t k, float x);

/* Count distinct x among points with positive weight, stopping at `limit`. */
size_t kvq_kmeans_distinct(const float *x, const float *w, size_t n, size_t limit);

/* Run fn(ctx, task) for task = 0..n_tasks-1 on up to n_threads threads (the caller's thread
 * included). Tasks must write disjoint outputs; the result then does not depend on n_threads.
 * Returns KVQ_ERR_NOMEM/KVQ_ERR_ARG when threads cannot be started. */
kvq_status kvq_parallel_for(size_t n_tasks, int n_threads, void (*fn)(void *ctx, size_t task),
                            void *ctx);

#ifdef __cplusplus
}
#endif
#endif
