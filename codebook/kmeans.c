/* kmeans.c — weighted 1-D k-means (kmeans.h): a deterministic parallel-for, the shared objective,
 * the reference solver (weighted k-means++ + Lloyd) and the exact solver (DP over a weighted
 * histogram or over sorted points, divide-and-conquer optimisation, optional Lloyd polish).
 * Determinism: every reduction over points runs over fixed slices (SLICE points, or the fixed
 * histogram shards) whose partial results are combined in slice order, so the thread count never
 * changes a bit of the result. Not thresholds, normalisation or Q-Norm. */
#include "kmeans.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

enum { SLICE = 1 << 18, MAX_K = 256, MAX_THREADS = 256 };

static void set_why(char *why, size_t len, const char *fmt, ...) {
    if (!why || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static size_t n_slices(size_t n) { return (n + SLICE - 1) / SLICE; }

/* ---- parallel for ------------------------------------------------------------------------- */
typedef struct pf_state {
    atomic_size_t next;
    size_t n;
    void (*fn)(void *, size_t);
    void *ctx;
} pf_state;

static void *pf_worker(void *arg) {
    pf_state *s = arg;
    for (;;) {
        size_t t = atomic_fetch_add(&s->next, 1);
        if (t >= s->n) return NULL;
        s->fn(s->ctx, t);
    }
}

kvq_status kvq_parallel_for(size_t n_tasks, int n_threads, void (*fn)(void *ctx, size_t task),
                            void *ctx) {
    if (!fn || n_threads < 1) return KVQ_ERR_ARG;
    pf_state s = {.n = n_tasks, .fn = fn, .ctx = ctx};
    atomic_init(&s.next, 0);
    pthread_t th[MAX_THREADS];
    size_t extra = (size_t)(n_threads < MAX_THREADS ? n_threads : MAX_THREADS) - 1;
    if (extra + 1 > n_tasks) extra = n_tasks ? n_tasks - 1 : 0;
    size_t started = 0;
    /* a thread that cannot start only leaves more tasks to the others (the caller included) */
    while (started < extra && pthread_create(&th[started], NULL, pf_worker, &s) == 0) started++;
    pf_worker(&s);
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    return KVQ_OK;
}

/* ---- nearest centroid ---------------------------------------------------------------------- */
/* Midpoints padded with +Inf to a power of two, so the search is a fixed, branch-free descent. */
typedef struct codec {
    float mid[MAX_K];   /* (p - 1) used */
    uint32_t p;         /* power of two >= k */
} codec;

static void codec_init(codec *q, const float *c, uint32_t k) {
    q->p = 1;
    while (q->p < k) q->p <<= 1;
    for (uint32_t i = 0; i + 1 < q->p; i++) q->mid[i] = i + 1 < k ? 0.5f * (c[i] + c[i + 1]) : INFINITY;
}

static inline uint32_t codec_code(const codec *q, float x) {
    uint32_t idx = 0;
    for (uint32_t step = q->p >> 1; step; step >>= 1)
        if (q->mid[idx + step - 1] < x) idx += step;
    return idx;
}

uint32_t kvq_kmeans_code(const float *mid, uint32_t k, float x) {
    uint32_t lo = 0, len = k ? k - 1 : 0;   /* count of mid[i] < x, mid ascending */
    while (len > 0) {
        uint32_t half = len / 2;
        if (mid[lo + half] < x) { lo += half + 1; len -= half + 1; } else len = half;
    }
    return lo;
}

/* ---- one pass: objective and per-cluster sums ---------------------------------------------- */
typedef struct pass_ctx {
    const float *x, *w;  /* (n) */
    size_t n;
    const codec *q;
    const float *c;      /* (k) */
    uint32_t k;
    double *sw, *swx;    /* (n_slices, k) */
    double *obj;         /* (n_slices) */
} pass_ctx;

static void pass_slice(void *vctx, size_t s) {
    const pass_ctx *p = vctx;
    double sw[MAX_K] = {0}, swx[MAX_K] = {0}, obj = 0;
    size_t lo = s * SLICE, hi = lo + SLICE < p->n ? lo + SLICE : p->n;
    for (size_t i = lo; i < hi; i++) {
        float xi = p->x[i];
        double wi = p->w ? (double)p->w[i] : 1.0;
        uint32_t j = codec_code(p->q, xi);
        double d = (double)xi - (double)p->c[j];
        sw[j] += wi;
        swx[j] += wi * (double)xi;
        obj += wi * d * d;
    }
    memcpy(p->sw + s * p->k, sw, p->k * sizeof(double));
    memcpy(p->swx + s * p->k, swx, p->k * sizeof(double));
    p->obj[s] = obj;
}

/* Workspace of a pass: per-slice partial sums. */
typedef struct pass_ws {
    double *sw, *swx, *obj;
    size_t ns;
} pass_ws;

static kvq_status ws_init(pass_ws *ws, size_t n, uint32_t k) {
    ws->ns = n_slices(n);
    size_t cells = ws->ns ? ws->ns : 1;
    ws->sw = calloc(cells, (size_t)k * sizeof(double));
    ws->swx = calloc(cells, (size_t)k * sizeof(double));
    ws->obj = calloc(cells, sizeof(double));
    return ws->sw && ws->swx && ws->obj ? KVQ_OK : KVQ_ERR_NOMEM;
}

static void ws_free(pass_ws *ws) {
    free(ws->sw);
    free(ws->swx);
    free(ws->obj);
}

/* Objective of sorted c over all points; W (k), S1 (k) get the per-cluster weight and weighted sum. */
static double run_pass(pass_ws *ws, const float *x, const float *w, size_t n, const float *c,
                       uint32_t k, int n_threads, double *W, double *S1) {
    codec q;
    codec_init(&q, c, k);
    pass_ctx p = {x, w, n, &q, c, k, ws->sw, ws->swx, ws->obj};
    kvq_parallel_for(ws->ns, n_threads, pass_slice, &p);
    double obj = 0;
    for (uint32_t j = 0; j < k; j++) W[j] = S1[j] = 0;
    for (size_t s = 0; s < ws->ns; s++) {
        obj += ws->obj[s];
        for (uint32_t j = 0; j < k; j++) {
            W[j] += ws->sw[s * k + j];
            S1[j] += ws->swx[s * k + j];
        }
    }
    return obj;
}

double kvq_kmeans_objective(const float *x, const float *w, size_t n, const float *c, uint32_t k,
                            int n_threads) {
    if (k < 1 || k > MAX_K) return NAN;
    pass_ws ws;
    double W[MAX_K], S1[MAX_K], obj = NAN;
    if (ws_init(&ws, n, k) == KVQ_OK) obj = run_pass(&ws, x, w, n, c, k, n_threads < 1 ? 1 : n_threads, W, S1);
    ws_free(&ws);
    return obj;
}

/* ---- input checks -------------------------------------------------------------------------- */
typedef struct scan_ctx {
    const float *x, *w;
    size_t n;
    float *mn, *mx;      /* (n_slices) over positive-weight points; mn > mx when none */
    size_t *bad;         /* (n_slices) first bad index or SIZE_MAX */
} scan_ctx;

static void scan_slice(void *vctx, size_t s) {
    const scan_ctx *p = vctx;
    float mn = INFINITY, mx = -INFINITY;
    size_t bad = SIZE_MAX, lo = s * SLICE, hi = lo + SLICE < p->n ? lo + SLICE : p->n;
    for (size_t i = lo; i < hi; i++) {
        float xi = p->x[i], wi = p->w ? p->w[i] : 1.0f;
        if (!isfinite(xi) || !isfinite(wi) || wi < 0) { bad = i; break; }
        if (wi > 0) {
            mn = xi < mn ? xi : mn;
            mx = xi > mx ? xi : mx;
        }
    }
    p->mn[s] = mn;
    p->mx[s] = mx;
    p->bad[s] = bad;
}

static kvq_status scan_input(const float *x, const float *w, size_t n, int n_threads, float *mn,
                             float *mx, char *why, size_t why_len) {
    size_t ns = n_slices(n);
    scan_ctx p = {x, w, n, malloc((ns + 1) * sizeof(float)), malloc((ns + 1) * sizeof(float)),
                  malloc((ns + 1) * sizeof(size_t))};
    kvq_status st = KVQ_OK;
    if (!p.mn || !p.mx || !p.bad) { st = KVQ_ERR_NOMEM; goto done; }
    kvq_parallel_for(ns, n_threads, scan_slice, &p);
    *mn = INFINITY;
    *mx = -INFINITY;
    for (size_t s = 0; s < ns; s++) {
        if (p.bad[s] != SIZE_MAX) {
            size_t i = p.bad[s];
            set_why(why, why_len, "point %zu: x = %g, w = %g (x must be finite, w finite and >= 0)", i,
                    (double)x[i], w ? (double)w[i] : 1.0);
            st = KVQ_ERR_NONFINITE;
            goto done;
        }
        *mn = p.mn[s] < *mn ? p.mn[s] : *mn;
        *mx = p.mx[s] > *mx ? p.mx[s] : *mx;
    }
done:
    free(p.mn);
    free(p.mx);
    free(p.bad);
    return st;
}

size_t kvq_kmeans_distinct(const float *x, const float *w, size_t n, size_t limit) {
    float seen[MAX_K + 1];
    size_t cnt = 0;
    if (limit > MAX_K + 1) limit = MAX_K + 1;
    for (size_t i = 0; i < n && cnt < limit; i++) {
        if (w && !(w[i] > 0)) continue;
        size_t lo = 0, hi = cnt;
        while (lo < hi) {
            size_t m = (lo + hi) / 2;
            if (seen[m] < x[i]) lo = m + 1; else hi = m;
        }
        if (lo < cnt && seen[lo] == x[i]) continue;
        memmove(seen + lo + 1, seen + lo, (cnt - lo) * sizeof(float));
        seen[lo] = x[i];
        cnt++;
    }
    return cnt;
}

void kvq_kmeans_opts_default(kvq_kmeans_opts *o, uint32_t k) {
    memset(o, 0, sizeof *o);
    o->solver = KVQ_SOLVER_EXACT;
    o->k = k;
    o->max_iters = 50;
    o->seed = 0;
    o->hist_bins = KVQ_KMEANS_DEFAULT_BINS;
    o->polish_iters = 2;
    o->n_threads = 1;
}

static void sort_floats(float *c, uint32_t k) {
    for (uint32_t i = 1; i < k; i++)
        for (uint32_t j = i; j > 0 && c[j - 1] > c[j]; j--) {
            float t = c[j];
            c[j] = c[j - 1];
            c[j - 1] = t;
        }
}

/* ---- reference solver: weighted k-means++ start + Lloyd --------------------------------------- */
/* Sampling mass of point i: w_i for the first centroid, w_i * D_i^2 afterwards. */
typedef struct seed_ctx {
    const float *x, *w;  /* (n) */
    size_t n;
    const codec *q;
    const float *c;      /* centroids chosen so far, sorted */
    int first;
    double *part;        /* (n_slices) mass per slice */
} seed_ctx;

static inline double seed_mass(const seed_ctx *p, size_t i) {
    double wi = p->w ? (double)p->w[i] : 1.0;
    if (p->first) return wi;
    float xi = p->x[i];
    double d = (double)xi - (double)p->c[codec_code(p->q, xi)];
    return wi * d * d;
}

static void seed_slice(void *vctx, size_t s) {
    const seed_ctx *p = vctx;
    double m = 0;
    size_t hi = (s + 1) * SLICE < p->n ? (s + 1) * SLICE : p->n;
    for (size_t i = s * SLICE; i < hi; i++) m += seed_mass(p, i);
    p->part[s] = m;
}

/* Draw a point with probability mass_i / total. Returns SIZE_MAX when all mass is zero. */
static size_t seed_draw(seed_ctx *p, int n_threads, kvq_rng *rng) {
    size_t ns = n_slices(p->n), pick = SIZE_MAX, lastpos = SIZE_MAX;
    kvq_parallel_for(ns, n_threads, seed_slice, p);
    double total = 0, acc = 0;
    for (size_t s = 0; s < ns; s++) total += p->part[s];
    if (!(total > 0)) return SIZE_MAX;
    double u = kvq_rng_uniform(rng) * total;
    for (size_t s = 0; s < ns && pick == SIZE_MAX; s++) {
        if (!(p->part[s] > 0)) continue;
        lastpos = s;
        if (acc + p->part[s] > u) pick = s; else acc += p->part[s];
    }
    size_t s = pick != SIZE_MAX ? pick : lastpos, last = SIZE_MAX;   /* rounding: last slice */
    size_t hi = (s + 1) * SLICE < p->n ? (s + 1) * SLICE : p->n;
    double a = 0, target = pick != SIZE_MAX ? u - acc : INFINITY;
    for (size_t i = s * SLICE; i < hi; i++) {
        double m = seed_mass(p, i);
        if (!(m > 0)) continue;
        last = i;
        a += m;
        if (a > target) return i;
    }
    return last;
}

/* The point worst served by sorted c (largest w (x - Q(x))^2, lowest index on ties). */
typedef struct worst_ctx {
    const float *x, *w;
    size_t n;
    const codec *q;
    const float *c;
    double *err;   /* (n_slices) */
    size_t *idx;   /* (n_slices) */
} worst_ctx;

static void worst_slice(void *vctx, size_t s) {
    const worst_ctx *p = vctx;
    double best = -1;
    size_t bi = s * SLICE, hi = (s + 1) * SLICE < p->n ? (s + 1) * SLICE : p->n;
    for (size_t i = s * SLICE; i < hi; i++) {
        double wi = p->w ? (double)p->w[i] : 1.0, d = (double)p->x[i] - (double)p->c[codec_code(p->q, p->x[i])];
        if (wi * d * d > best) { best = wi * d * d; bi = i; }
    }
    p->err[s] = best;
    p->idx[s] = bi;
}

static kvq_status worst_point(const float *x, const float *w, size_t n, const float *c, uint32_t k,
                              int n_threads, size_t *out) {
    size_t ns = n_slices(n);
    codec q;
    codec_init(&q, c, k);
    worst_ctx p = {x, w, n, &q, c, malloc((ns + 1) * sizeof(double)), malloc((ns + 1) * sizeof(size_t))};
    if (!p.err || !p.idx) { free(p.err); free(p.idx); return KVQ_ERR_NOMEM; }
    kvq_parallel_for(ns, n_threads, worst_slice, &p);
    size_t bs = 0;
    for (size_t s = 1; s < ns; s++) if (p.err[s] > p.err[bs]) bs = s;
    *out = p.idx[bs];
    free(p.err);
    free(p.idx);
    return KVQ_OK;
}

static kvq_status kmeanspp(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o, float *c,
                           char *why, size_t why_len) {
    kvq_rng rng;
    kvq_rng_seed(&rng, o->seed);
    float chosen[MAX_K];
    codec q;
    seed_ctx sp = {x, w, n, &q, chosen, 1, malloc((n_slices(n) + 1) * sizeof(double))};
    if (!sp.part) return KVQ_ERR_NOMEM;
    kvq_status st = KVQ_OK;
    for (uint32_t j = 0; j < o->k; j++) {
        memcpy(chosen, c, j * sizeof(float));
        sort_floats(chosen, j);
        codec_init(&q, chosen, j ? j : 1);
        sp.first = j == 0;
        size_t i = seed_draw(&sp, o->n_threads, &rng);
        if (i == SIZE_MAX) {
            set_why(why, why_len, "k-means++: every point coincides with one of %u centroids", j);
            st = KVQ_ERR_DATA;
            break;
        }
        c[j] = x[i];
    }
    free(sp.part);
    sort_floats(c, o->k);
    return st;
}

/* Lloyd from sorted c until no centroid moves (i.e. the assignments stopped changing) or max_iters
 * updates. An empty cluster (no positive weight) is moved to the worst-served point. *obj: in,
 * the objective of c (W, S1 its cluster sums); out, that of the returned c. */
static kvq_status lloyd_iterate(pass_ws *ws, const float *x, const float *w, size_t n, uint32_t k,
                                int n_threads, uint32_t max_iters, float *c, double *obj, double *W,
                                double *S1, kvq_kmeans_result *res) {
    for (uint32_t it = 0; it < max_iters; it++) {
        float nc[MAX_K];
        int empty = -1;
        for (uint32_t j = 0; j < k; j++) {
            nc[j] = W[j] > 0 ? (float)(S1[j] / W[j]) : c[j];
            if (!(W[j] > 0) && empty < 0) empty = (int)j;
        }
        if (empty >= 0) {
            size_t far;
            kvq_status st = worst_point(x, w, n, c, k, n_threads, &far);
            if (st != KVQ_OK) return st;
            nc[empty] = x[far];
            res->relocations++;
        }
        sort_floats(nc, k);
        res->iters++;
        if (empty < 0 && !memcmp(nc, c, k * sizeof(float))) break;
        memcpy(c, nc, k * sizeof(float));
        *obj = run_pass(ws, x, w, n, c, k, n_threads, W, S1);
    }
    return KVQ_OK;
}

static kvq_status solve_lloyd(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                              float *centroids, kvq_kmeans_result *res, char *why, size_t why_len) {
    float c[MAX_K];
    double W[MAX_K], S1[MAX_K];
    pass_ws ws;
    kvq_status st = ws_init(&ws, n, o->k);
    if (st == KVQ_OK) st = kmeanspp(x, w, n, o, c, why, why_len);
    if (st == KVQ_OK) {
        double obj = run_pass(&ws, x, w, n, c, o->k, o->n_threads, W, S1);
        st = lloyd_iterate(&ws, x, w, n, o->k, o->n_threads, o->max_iters, c, &obj, W, S1, res);
        res->objective = obj;
        memcpy(centroids, c, o->k * sizeof(float));
    }
    ws_free(&ws);
    return st;
}

/* ---- exact solver: DP over contiguous groups --------------------------------------------------- */
/* Groups of points in ascending x: weight, sum w x, sum w x^2 (as prefix sums, (m+1) each). */
typedef struct groups {
    double *gw, *g1, *g2;   /* (m) per group */
    size_t m;
    double max_w;           /* heaviest group (for the histogram bound) */
} groups;

static void groups_free(groups *g) {
    free(g->gw);
    free(g->g1);
    free(g->g2);
    memset(g, 0, sizeof *g);
}

static kvq_status groups_alloc(groups *g, size_t m) {
    g->gw = malloc((m + 1) * sizeof(double));
    g->g1 = malloc((m + 1) * sizeof(double));
    g->g2 = malloc((m + 1) * sizeof(double));
    g->m = 0;
    g->max_w = 0;
    if (g->gw && g->g1 && g->g2) return KVQ_OK;
    groups_free(g);
    return KVQ_ERR_NOMEM;
}

static void groups_push(groups *g, double w, double s1, double s2) {
    g->gw[g->m] = w;
    g->g1[g->m] = s1;
    g->g2[g->m] = s2;
    g->m++;
    if (w > g->max_w) g->max_w = w;
}

typedef struct hist_ctx {
    const float *x, *w;   /* (n) */
    size_t n, bins;
    double lo, scale;
    double *h;            /* (KVQ_KMEANS_HIST_SHARDS, bins, 3): sum w, sum w x, sum w x^2 */
} hist_ctx;

static void hist_shard(void *vctx, size_t s) {
    const hist_ctx *p = vctx;
    size_t per = p->n / KVQ_KMEANS_HIST_SHARDS, rem = p->n % KVQ_KMEANS_HIST_SHARDS;
    size_t lo = s * per + (s < rem ? s : rem), hi = lo + per + (s < rem);
    double *h = p->h + s * p->bins * 3;
    for (size_t i = lo; i < hi; i++) {
        double wi = p->w ? (double)p->w[i] : 1.0, xi = p->x[i];
        if (!(wi > 0)) continue;
        size_t b = (size_t)((xi - p->lo) * p->scale);
        if (b >= p->bins) b = p->bins - 1;
        h[3 * b] += wi;
        h[3 * b + 1] += wi * xi;
        h[3 * b + 2] += wi * xi * xi;
    }
}

static kvq_status hist_groups(const float *x, const float *w, size_t n, size_t bins, float mn, float mx,
                              int n_threads, groups *g) {
    size_t cells = (size_t)KVQ_KMEANS_HIST_SHARDS * 3;
    if (bins > SIZE_MAX / sizeof(double) / cells) return KVQ_ERR_OVERFLOW;
    hist_ctx p = {x, w, n, bins, mn, (double)bins / ((double)mx - (double)mn), calloc(bins * cells, sizeof(double))};
    if (!p.h) return KVQ_ERR_NOMEM;
    kvq_status st = groups_alloc(g, bins);
    if (st == KVQ_OK) {
        kvq_parallel_for(KVQ_KMEANS_HIST_SHARDS, n_threads, hist_shard, &p);
        for (size_t b = 0; b < bins; b++) {
            double sw = 0, s1 = 0, s2 = 0;
            for (size_t s = 0; s < KVQ_KMEANS_HIST_SHARDS; s++) {
                const double *h = p.h + (s * bins + b) * 3;
                sw += h[0];
                s1 += h[1];
                s2 += h[2];
            }
            if (sw > 0) groups_push(g, sw, s1, s2);
        }
    }
    free(p.h);
    return st;
}

typedef struct wpoint { float x, w; } wpoint;

static int wpoint_cmp(const void *a, const void *b) {
    const wpoint *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return p->w < q->w ? -1 : p->w > q->w;
}

static kvq_status sorted_groups(const float *x, const float *w, size_t n, groups *g) {
    wpoint *pts = malloc((n + 1) * sizeof(wpoint));
    if (!pts) return KVQ_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!w || w[i] > 0) pts[m++] = (wpoint){x[i], w ? w[i] : 1.0f};
    qsort(pts, m, sizeof(wpoint), wpoint_cmp);
    kvq_status st = groups_alloc(g, m);
    for (size_t i = 0; st == KVQ_OK && i < m;) {
        double sw = 0, s1 = 0, s2 = 0, xi = pts[i].x;
        for (; i < m && pts[i].x == (float)xi; i++) {
            sw += pts[i].w;
            s1 += pts[i].w * xi;
            s2 += pts[i].w * xi * xi;
        }
        groups_push(g, sw, s1, s2);
    }
    free(pts);
    return st;
}

typedef struct dp_ctx {
    const double *pw, *p1, *p2;   /* (m+1) prefix sums */
    const double *prev;           /* (m+1) best cost of the first t groups in j segments */
    double *cur;                  /* (m+1) the same with j+1 segments */
    uint32_t *arg;                /* (m+1) start group of the last segment */
} dp_ctx;

static inline double seg_cost(const dp_ctx *d, size_t t, size_t i) {
    double W = d->pw[i] - d->pw[t], S1 = d->p1[i] - d->p1[t], S2 = d->p2[i] - d->p2[t];
    double c = S2 - S1 * S1 / W;
    return c > 0 ? c : 0;
}

/* cur[i] for i in [lo, hi] = min over t in [optlo, min(opthi, i-1)] of prev[t] + cost(t, i). The
 * optimal t is monotone in i (1-D k-means cost satisfies the quadrangle inequality), so the range of
 * t narrows by halves: O(m log m) per layer. Ties take the smallest t. */
static void dp_rec(const dp_ctx *d, size_t lo, size_t hi, size_t optlo, size_t opthi) {
    size_t mid = lo + (hi - lo) / 2, end = opthi < mid - 1 ? opthi : mid - 1, bt = optlo;
    double best = INFINITY;
    for (size_t t = optlo; t <= end; t++) {
        double v = d->prev[t] + seg_cost(d, t, mid);
        if (v < best) { best = v; bt = t; }
    }
    d->cur[mid] = best;
    d->arg[mid] = (uint32_t)bt;
    if (mid > lo) dp_rec(d, lo, mid - 1, optlo, bt);
    if (mid < hi) dp_rec(d, mid + 1, hi, bt, opthi);
}

/* Optimal partition of the m groups into k contiguous segments; centroids = segment means. */
static kvq_status dp_solve(const groups *g, uint32_t k, float *c) {
    size_t m = g->m;
    if (m >= UINT32_MAX || (size_t)k > SIZE_MAX / sizeof(uint32_t) / (m + 1)) return KVQ_ERR_OVERFLOW;
    double *pre = malloc(5 * (m + 1) * sizeof(double));
    uint32_t *arg = malloc((size_t)k * (m + 1) * sizeof(uint32_t));
    if (!pre || !arg) { free(pre); free(arg); return KVQ_ERR_NOMEM; }
    double *pw = pre, *p1 = pre + (m + 1), *p2 = pre + 2 * (m + 1), *a = pre + 3 * (m + 1), *b = pre + 4 * (m + 1);
    pw[0] = p1[0] = p2[0] = 0;
    for (size_t i = 0; i < m; i++) {
        pw[i + 1] = pw[i] + g->gw[i];
        p1[i + 1] = p1[i] + g->g1[i];
        p2[i + 1] = p2[i] + g->g2[i];
    }
    dp_ctx d = {pw, p1, p2, a, b, arg};
    for (size_t i = 1; i + k - 1 <= m; i++) { a[i] = seg_cost(&d, 0, i); arg[i] = 0; }
    for (uint32_t j = 1; j < k; j++) {
        d.arg = arg + (size_t)j * (m + 1);
        size_t hi = j + 1 == k ? m : m - (k - 1 - j), lo = j + 1 == k ? m : j + 1;
        dp_rec(&d, lo, hi, j, hi - 1);
        double *t = (double *)d.prev;
        d.prev = d.cur;
        d.cur = t;
    }
    size_t i = m;   /* backtrack; centroid = mean of the segment's groups, summed in order */
    for (uint32_t j = k; j-- > 0;) {
        size_t t = j ? arg[(size_t)j * (m + 1) + i] : 0;
        double sw = 0, s1 = 0;
        for (size_t q = t; q < i; q++) { sw += g->gw[q]; s1 += g->g1[q]; }
        c[j] = (float)(s1 / sw);
        i = t;
    }
    free(pre);
    free(arg);
    return KVQ_OK;
}

/* Up to o->polish_iters Lloyd steps from sorted c on the real points, each kept only when it
 * strictly lowers the objective. Returns the objective of the final c; *kept counts the steps. */
static double polish(pass_ws *ws, const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                     float *c, uint32_t *kept) {
    double W[MAX_K], S1[MAX_K];
    double obj = run_pass(ws, x, w, n, c, o->k, o->n_threads, W, S1);
    for (uint32_t it = 0; it < o->polish_iters; it++) {
        float nc[MAX_K];
        uint32_t j = 0;
        for (; j < o->k && W[j] > 0; j++) nc[j] = (float)(S1[j] / W[j]);
        if (j < o->k) break;   /* an empty cluster: keep the DP's table */
        sort_floats(nc, o->k);
        if (!memcmp(nc, c, o->k * sizeof(float))) break;
        double nW[MAX_K], nS1[MAX_K];
        double nobj = run_pass(ws, x, w, n, nc, o->k, o->n_threads, nW, nS1);
        if (!(nobj < obj)) break;
        obj = nobj;
        memcpy(c, nc, o->k * sizeof(float));
        memcpy(W, nW, o->k * sizeof(double));
        memcpy(S1, nS1, o->k * sizeof(double));
        (*kept)++;
    }
    return obj;
}

static kvq_status solve_exact(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                              float mn, float mx, float *centroids, kvq_kmeans_result *res, char *why,
                              size_t why_len) {
    groups g = {0};
    kvq_status st = KVQ_OK;
    int use_sort = o->hist_bins == 0 || n <= KVQ_KMEANS_SORT_LIMIT || !(mx > mn);
    if (!use_sort) {
        st = hist_groups(x, w, n, o->hist_bins, mn, mx, o->n_threads, &g);
        if (st == KVQ_OK && g.m < o->k) { groups_free(&g); use_sort = 1; }   /* under-resolved */
    }
    if (st == KVQ_OK && use_sort) st = sorted_groups(x, w, n, &g);
    float c[MAX_K];
    if (st == KVQ_OK) st = dp_solve(&g, o->k, c);
    if (st != KVQ_OK) {
        groups_free(&g);
        set_why(why, why_len, "exact k-means over %zu points: %s", n, kvq_status_message(st));
        return st;
    }
    res->bins_used = (uint32_t)g.m;
    res->sorted_points = use_sort;
    /* moving each optimal boundary to a bin edge (<= h/2) costs <= gap * h per unit weight moved */
    res->hist_gap_bound = use_sort ? 0 : ((double)mx - (double)mn) * ((double)mx - (double)mn) /
                                             (double)o->hist_bins * g.max_w;
    groups_free(&g);
    pass_ws ws;
    st = ws_init(&ws, n, o->k);
    if (st == KVQ_OK) {
        res->objective = polish(&ws, x, w, n, o, c, &res->iters);
        memcpy(centroids, c, o->k * sizeof(float));
    }
    ws_free(&ws);
    return st;
}

/* Prologue of the public solvers: zero the result, check the arguments, scan the input (finite
 * values and weights; min and max). */
static kvq_status check_and_scan(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                                 const float *centroids, kvq_kmeans_result *res, float *mn, float *mx,
                                 char *why, size_t why_len) {
    memset(res, 0, sizeof *res);
    if (!x || !o || !centroids || o->k < 1 || o->k > MAX_K || o->n_threads < 1) {
        set_why(why, why_len, "k-means: bad arguments (k must be 1..%d, threads >= 1)", MAX_K);
        return KVQ_ERR_ARG;
    }
    return scan_input(x, w, n, o->n_threads, mn, mx, why, why_len);
}

kvq_status kvq_kmeans_lloyd(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                            float *centroids, kvq_kmeans_result *res, char *why, size_t why_len) {
    kvq_kmeans_result r0;
    if (!res) res = &r0;
    float mn, mx;
    kvq_status st = check_and_scan(x, w, n, o, centroids, res, &mn, &mx, why, why_len);
    for (uint32_t j = 0; st == KVQ_OK && j < o->k; j++)
        if (!isfinite(centroids[j])) {
            set_why(why, why_len, "k-means: start centroid %u is not finite", j);
            st = KVQ_ERR_NONFINITE;
        }
    if (st != KVQ_OK) return st;
    double W[MAX_K], S1[MAX_K];
    pass_ws ws;
    st = ws_init(&ws, n, o->k);
    if (st == KVQ_OK) {
        sort_floats(centroids, o->k);
        double obj = run_pass(&ws, x, w, n, centroids, o->k, o->n_threads, W, S1);
        st = lloyd_iterate(&ws, x, w, n, o->k, o->n_threads, o->max_iters, centroids, &obj, W, S1, res);
        res->objective = obj;
    }
    ws_free(&ws);
    return st;
}

kvq_status kvq_kmeans_fit(const float *x, const float *w, size_t n, const kvq_kmeans_opts *o,
                          float *centroids, kvq_kmeans_result *res, char *why, size_t why_len) {
    kvq_kmeans_result r0;
    if (!res) res = &r0;
    float mn, mx;
    kvq_status st = check_and_scan(x, w, n, o, centroids, res, &mn, &mx, why, why_len);
    if (st != KVQ_OK) return st;
    size_t distinct = kvq_kmeans_distinct(x, w, n, o->k);
    if (distinct < o->k) {
        set_why(why, why_len, "only %zu distinct value(s) with positive weight among %zu points; "
                "%u centroids need at least %u", distinct, n, o->k, o->k);
        return KVQ_ERR_DATA;
    }
    if (o->solver == KVQ_SOLVER_LLOYD) return solve_lloyd(x, w, n, o, centroids, res, why, why_len);
    if (o->solver == KVQ_SOLVER_EXACT)
        return solve_exact(x, w, n, o, mn, mx, centroids, res, why, why_len);
    set_why(why, why_len, "k-means: unknown solver %d", (int)o->solver);
    return KVQ_ERR_ARG;
}
