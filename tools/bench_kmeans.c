/* bench_kmeans.c — `build/bench_kmeans`: the two k-means solvers of codebook/kmeans.h side by side
 * on one LLaMA-7B-sized layer tensor (kv_dim 4096 x 16 x 2048 calibration tokens = 134,217,728
 * points): synthetic normalised values with heavy tails (Student-t, 3 dof, clipped to [-1, 1], as
 * the non-outlier k-means input is) and log-normal Fisher weights. Prints time and weighted
 * objective of each solver and their ratios. Not a test: it checks nothing but prints figures.
 * Options: --n N, --bits B (default 3; repeatable as a comma list), --threads T (default: online
 * CPUs), --bins N (exact solver's histogram), --polish N (its Lloyd polish steps), --seed S.
 * --layer ROWS instead times a whole kvq_fit_layer (thresholds, normalisation through quant.h,
 * k-means and Q-Norm of K and V) on a synthetic layer of ROWS tokens x kv_dim 4096. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fit.h"
#include "kmeans.h"

enum { GEN_SLICE = 1 << 20 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): less sensitive than wall time to a shared machine. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return ((double)(mix(s) >> 11) + 0.5) * 0x1.0p-53; }
static double gauss(uint64_t *s) { return sqrt(-2 * log(unif(s))) * cos(6.283185307179586 * unif(s)); }

typedef struct gen_ctx {
    float *x, *w;   /* (n) */
    size_t n;
    uint64_t seed;
} gen_ctx;

static void gen_slice(void *vctx, size_t t) {
    const gen_ctx *g = vctx;
    uint64_t s = g->seed ^ (0xA24BAED4963EE407ull * (t + 1));
    size_t hi = (t + 1) * GEN_SLICE < g->n ? (t + 1) * GEN_SLICE : g->n;
    for (size_t i = t * GEN_SLICE; i < hi; i++) {
        double a = gauss(&s), b = gauss(&s), c = gauss(&s);
        double v = gauss(&s) / sqrt((a * a + b * b + c * c) / 3) * 0.12;
        g->x[i] = (float)(v > 1 ? 1 : v < -1 ? -1 : v);
        g->w[i] = (float)(1e-6 * exp(1.5 * gauss(&s)));   /* squared gradients: tiny, log-normal */
    }
}

static int run(const float *x, const float *w, size_t n, uint32_t bits, int threads, uint32_t bins,
               long polish) {
    const char *names[2] = {"lloyd (reference)", "exact (histogram DP)"};
    double secs[2], cpu[2], obj[2];
    for (int s = 0; s < 2; s++) {
        kvq_kmeans_opts o;
        kvq_kmeans_opts_default(&o, 1u << bits);
        o.solver = s ? KVQ_SOLVER_EXACT : KVQ_SOLVER_LLOYD;
        o.n_threads = threads;
        if (bins) o.hist_bins = bins;
        if (polish >= 0) o.polish_iters = (uint32_t)polish;
        float c[256];
        kvq_kmeans_result r;
        char why[256] = "";
        double t0 = now(), c0 = cpu_now();
        kvq_status st = kvq_kmeans_fit(x, w, n, &o, c, &r, why, sizeof why);
        secs[s] = now() - t0;
        cpu[s] = cpu_now() - c0;
        if (st != KVQ_OK) { fprintf(stderr, "bench_kmeans: %s: %s\n", kvq_status_name(st), why); return 1; }
        obj[s] = r.objective;
        printf("  %-22s %8.2f s (cpu %7.2f s)  objective %.9e  iters %2u", names[s], secs[s], cpu[s], obj[s],
               r.iters);
        if (s) printf("  bins %u  gap bound %.2e (%.1e of objective)", r.bins_used, r.hist_gap_bound,
                      r.hist_gap_bound / r.objective);
        printf("\n    centroids:");
        for (uint32_t j = 0; j < (1u << bits); j++) printf(" %+.5f", (double)c[j]);
        printf("\n");
    }
    printf("  ratio exact/lloyd: time %.3f, cpu %.3f, objective %.6f (%s)\n", secs[1] / secs[0], cpu[1] / cpu[0],
           obj[1] / obj[0],
           obj[1] <= obj[0] ? "exact no worse" : "EXACT WORSE");
    return 0;
}

/* Synthetic layer: keys with per-channel offsets and scales and heavy tails, values heavy-tailed,
 * Fisher log-normal; the first row of every 2048 is a sink token. Returns 0 on success. */
static int run_layer(size_t rows, int threads, uint64_t seed) {
    const uint32_t dim = 4096, head = 128;
    size_t n = rows * dim;
    float *t[4];
    for (int i = 0; i < 4; i++) t[i] = malloc(n * sizeof(float));
    uint8_t *sink = malloc(rows);
    if (!t[0] || !t[1] || !t[2] || !t[3] || !sink) { fprintf(stderr, "bench_kmeans: out of memory\n"); return 1; }
    gen_ctx g = {t[0], t[2], n, seed}, h = {t[1], t[3], n, seed + 1};
    size_t slices = (n + GEN_SLICE - 1) / GEN_SLICE;
    kvq_parallel_for(slices, threads, gen_slice, &g);
    kvq_parallel_for(slices, threads, gen_slice, &h);
    for (size_t i = 0; i < n; i++) t[0][i] = t[0][i] * (1.0f + (float)(i % dim % 61)) + (float)(i % dim % 7) - 3;
    for (size_t r = 0; r < rows; r++) sink[r] = r % 2048 == 0;
    kvq_fit_opts o;
    kvq_fit_opts_default(&o);
    o.n_threads = threads;
    kvq_layer_codebook l;
    memset(&l, 0, sizeof l);
    l.k.bits = l.v.bits = 3;
    float ck[8], cv[8];
    l.k.centroids = ck;
    l.v.centroids = cv;
    l.k.zero_point = malloc(dim * sizeof(float));
    l.k.half_range = malloc(dim * sizeof(float));
    kvq_fit_input in = {0, t[0], t[1], t[2], t[3], rows, dim, head, sink};
    kvq_fit_layer_report rep;
    char why[256] = "";
    double c0 = cpu_now();
    kvq_status st = kvq_fit_layer(&o, &in, &l, &rep, why, sizeof why);
    double cpu = cpu_now() - c0;
    if (st != KVQ_OK) fprintf(stderr, "bench_kmeans: %s: %s\n", kvq_status_name(st), why);
    else
        printf("kvq_fit_layer, %zu rows x %u, 3 bits, p = 0.01, exact, %d threads: %.2f s (cpu %.2f s) "
               "(K objective %.6e, V objective %.6e, outliers K %.3f%% V %.3f%%)\n", rows, dim, threads,
               rep.seconds, cpu, rep.k_objective, rep.v_objective, 100 * rep.k_outlier_rate, 100 * rep.v_outlier_rate);
    for (int i = 0; i < 4; i++) free(t[i]);
    free(sink);
    free(l.k.zero_point);
    free(l.k.half_range);
    return st != KVQ_OK;
}

int main(int argc, char **argv) {
    size_t n = (size_t)4096 * 16 * 2048;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = ncpu > 0 ? (int)ncpu : 1;
    uint32_t bins = 0;
    long polish = -1;
    size_t layer_rows = 0;
    uint64_t seed = 0;
    const char *bits_list = "3";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n") && v) n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--bits") && v) bits_list = argv[++i];
        else if (!strcmp(argv[i], "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bins") && v) bins = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--layer") && v) layer_rows = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--polish") && v) polish = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && v) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_kmeans [--n N] [--bits 2,3,4] [--threads T] [--bins N] [--polish N] [--seed S] [--layer ROWS]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);   /* figures appear as they come, also into a file */
    if (threads < 1 || n < 16) { fprintf(stderr, "bench_kmeans: bad --threads or --n\n"); return 2; }
    if (layer_rows) return run_layer(layer_rows, threads, seed);
    gen_ctx g = {malloc(n * sizeof(float)), malloc(n * sizeof(float)), n, seed};
    if (!g.x || !g.w) { fprintf(stderr, "bench_kmeans: out of memory for %zu points\n", n); return 1; }
    double t0 = now();
    kvq_parallel_for((n + GEN_SLICE - 1) / GEN_SLICE, threads, gen_slice, &g);
    printf("bench_kmeans: %zu points (Student-t(3) x 0.12 clipped to [-1,1], log-normal weights), "
           "%d threads, generated in %.1f s\n", n, threads, now() - t0);
    int rc = 0;
    for (const char *p = bits_list; *p && !rc;) {
        uint32_t bits = (uint32_t)strtoul(p, (char **)&p, 10);
        if (bits < 1 || bits > 8) { fprintf(stderr, "bench_kmeans: bits must be 1..8\n"); rc = 2; break; }
        printf("%u bits (%u centroids):\n", bits, 1u << bits);
        rc = run(g.x, g.w, n, bits, threads, bins, polish);
        if (*p == ',') p++;
    }
    free(g.x);
    free(g.w);
    return rc;
}
