/* qnorm.c — Q-Norm moments and the folded affine map (qnorm.h). Two passes over fixed slices:
 * means first, then centred second moments (no cancellation), each reduced in slice order. */
#include "qnorm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kmeans.h"

enum { SLICE = 1 << 18 };

typedef struct qn_ctx {
    const float *x;     /* (n) */
    size_t n;
    const float *c;     /* (k) */
    const float *mid;   /* (k-1) */
    uint32_t k;
    double m1, m2;      /* pass 2: the means */
    int pass;
    double *a, *b;      /* (n_slices): pass 1 sums of x and Q(x); pass 2 of squared deviations */
} qn_ctx;

static void qn_slice(void *vctx, size_t s) {
    const qn_ctx *p = vctx;
    double a = 0, b = 0;
    size_t hi = (s + 1) * SLICE < p->n ? (s + 1) * SLICE : p->n;
    for (size_t i = s * SLICE; i < hi; i++) {
        double x = p->x[i], q = p->c[kvq_kmeans_code(p->mid, p->k, p->x[i])];
        if (p->pass == 1) { a += x; b += q; }
        else { a += (x - p->m1) * (x - p->m1); b += (q - p->m2) * (q - p->m2); }
    }
    p->a[s] = a;
    p->b[s] = b;
}

static void reduce(qn_ctx *p, size_t ns, int n_threads, double *a, double *b) {
    kvq_parallel_for(ns, n_threads, qn_slice, p);
    *a = *b = 0;
    for (size_t s = 0; s < ns; s++) { *a += p->a[s]; *b += p->b[s]; }
}

kvq_status kvq_qnorm_compute(const float *x, size_t n, const float *c, uint32_t k, int n_threads,
                             kvq_qnorm *out, char *why, size_t why_len) {
    if (!x || !n || !c || k < 1 || k > 256 || !out || n_threads < 1) return KVQ_ERR_ARG;
    float mid[255];
    for (uint32_t i = 0; i + 1 < k; i++) mid[i] = 0.5f * (c[i] + c[i + 1]);
    size_t ns = (n + SLICE - 1) / SLICE;
    qn_ctx p = {x, n, c, mid, k, 0, 0, 1, malloc(ns * sizeof(double)), malloc(ns * sizeof(double))};
    if (!p.a || !p.b) { free(p.a); free(p.b); return KVQ_ERR_NOMEM; }
    double sx, sq, vx, vq;
    reduce(&p, ns, n_threads, &sx, &sq);
    p.m1 = sx / (double)n;
    p.m2 = sq / (double)n;
    p.pass = 2;
    reduce(&p, ns, n_threads, &vx, &vq);
    free(p.a);
    free(p.b);
    out->m1 = p.m1;
    out->m2 = p.m2;
    out->s1 = sqrt(vx / (double)n);
    out->s2 = sqrt(vq / (double)n);
    if (!(out->s2 > 0)) {
        if (why && why_len)
            snprintf(why, why_len, "Q-Norm: all %zu points quantize to one centroid (std 0)", n);
        return KVQ_ERR_DATA;
    }
    out->scale = (float)(out->s1 / out->s2);
    out->offset = (float)(out->m1 - out->m2 * out->s1 / out->s2);
    return KVQ_OK;
}
