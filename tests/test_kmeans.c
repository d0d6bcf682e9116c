/* test_kmeans.c — weighted 1-D k-means (codebook/kmeans.h): the objective and nearest-centroid rule
 * on hand-computed inputs, the exact solver against a brute-force oracle (every contiguous
 * partition of tiny sorted inputs), known optima of well-separated clusters, exact <= Lloyd on
 * random heavy-tailed data, the histogram's stated gap bound, input rejection, and determinism
 * across thread counts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "kvq_test.h"

static uint64_t rng_state;
static double urand(void) {   /* splitmix64 -> [0, 1) */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2 * log(1 - urand())) * cos(6.283185307179586 * urand()); }

/* Heavy-tailed points in [-1, 1] (Student-t with 3 dof, scaled) and log-normal weights. */
static void heavy_data(float *x, float *w, size_t n, uint64_t seed) {
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        double a = nrand(), b = nrand(), c = nrand(), chi = a * a + b * b + c * c;
        double t = nrand() / sqrt(chi / 3 + 1e-12) * 0.15;
        x[i] = (float)(t > 1 ? 1 : t < -1 ? -1 : t);
        if (w) w[i] = (float)exp(nrand());
    }
}

static kvq_kmeans_opts opts(kvq_kmeans_solver s, uint32_t k, int threads) {
    kvq_kmeans_opts o;
    kvq_kmeans_opts_default(&o, k);
    o.solver = s;
    o.n_threads = threads;
    return o;
}

START_TEST(test_code_and_objective_by_hand) {
    /* midpoints of {0, 1}: 0.5; x == 0.5 is a tie and goes to the lower centroid */
    float mid[1] = {0.5f};
    ck_assert_uint_eq(kvq_kmeans_code(mid, 2, 0.5f), 0);
    ck_assert_uint_eq(kvq_kmeans_code(mid, 2, nextafterf(0.5f, 1)), 1);
    float mid3[3] = {-0.5f, 0.0f, 0.5f};
    ck_assert_uint_eq(kvq_kmeans_code(mid3, 4, -1.0f), 0);
    ck_assert_uint_eq(kvq_kmeans_code(mid3, 4, 0.0f), 1);
    ck_assert_uint_eq(kvq_kmeans_code(mid3, 4, 0.25f), 2);
    ck_assert_uint_eq(kvq_kmeans_code(mid3, 4, 0.75f), 3);
    /* x = {0, 0.5, 1}, w = {1, 2, 3}, c = {0, 1}: 0 + 2*0.25 + 0 = 0.5, exactly representable */
    float x[3] = {0, 0.5f, 1}, w[3] = {1, 2, 3}, c[2] = {0, 1};
    ck_assert(kvq_kmeans_objective(x, w, 3, c, 2, 1) == 0.5);
    ck_assert(kvq_kmeans_objective(x, NULL, 3, c, 2, 2) == 0.25);
    /* k = 3 (padded search): c = {0, 0.5, 1} serves every point exactly */
    float c3[3] = {0, 0.5f, 1};
    ck_assert(kvq_kmeans_objective(x, w, 3, c3, 3, 1) == 0.0);
}
END_TEST

/* Brute force: best cost over every split of the sorted distinct points into k contiguous runs. */
static double brute(const double *xs, const double *ws, int m, int k, int start) {
    if (k == 1) {
        double sw = 0, s1 = 0, e = 0;
        for (int i = start; i < m; i++) { sw += ws[i]; s1 += ws[i] * xs[i]; }
        for (int i = start; i < m; i++) e += ws[i] * (xs[i] - s1 / sw) * (xs[i] - s1 / sw);
        return e;
    }
    double best = INFINITY;
    for (int end = start + 1; end <= m - (k - 1); end++) {
        double sw = 0, s1 = 0, e = 0;
        for (int i = start; i < end; i++) { sw += ws[i]; s1 += ws[i] * xs[i]; }
        for (int i = start; i < end; i++) e += ws[i] * (xs[i] - s1 / sw) * (xs[i] - s1 / sw);
        double v = e + brute(xs, ws, m, k - 1, end);
        if (v < best) best = v;
    }
    return best;
}

static const float *cmp_x;
static int by_x(const void *a, const void *b) {
    float p = cmp_x[*(const int *)a], q = cmp_x[*(const int *)b];
    return (p > q) - (p < q);
}

START_TEST(test_exact_matches_brute_force) {
    for (int trial = 0; trial < 300; trial++) {
        rng_state = 1000 + (uint64_t)trial;
        int n = 3 + (int)(urand() * 10), k = 1 + (int)(urand() * (n < 5 ? n : 5));
        float x[16], w[16];
        int idx[16];
        for (int i = 0; i < n; i++) {
            x[i] = (float)(urand() * 2 - 1);
            if (trial % 3 == 0) x[i] = roundf(x[i] * 4) / 4;   /* duplicates: merged groups */
            w[i] = (float)(0.1 + urand() * 3);
            idx[i] = i;
        }
        if (kvq_kmeans_distinct(x, w, (size_t)n, (size_t)k) < (size_t)k) continue;
        cmp_x = x;
        qsort(idx, (size_t)n, sizeof(int), by_x);
        double xs[16], ws[16];
        int m = 0;
        for (int i = 0; i < n; i++) {   /* equal values form one run: merge them */
            if (m && xs[m - 1] == x[idx[i]]) { ws[m - 1] += w[idx[i]]; continue; }
            xs[m] = x[idx[i]];
            ws[m++] = w[idx[i]];
        }
        double ref = brute(xs, ws, m, k, 0);
        kvq_kmeans_opts o = opts(KVQ_SOLVER_EXACT, (uint32_t)k, 1);
        float c[8];
        kvq_kmeans_result r;
        char why[256];
        ck_assert_msg(kvq_kmeans_fit(x, w, (size_t)n, &o, c, &r, why, sizeof why) == KVQ_OK, "%s", why);
        ck_assert(r.sorted_points);
        for (int j = 1; j < k; j++) ck_assert(c[j - 1] <= c[j]);
        /* fp32 centroids sit within 6e-8 relative of the optimal means, where the objective is
         * stationary: the excess is second order (~1e-15); 1e-7 relative covers double rounding */
        ck_assert_msg(fabs(r.objective - ref) <= 1e-12 + 1e-7 * ref, "trial %d n %d k %d: %.17g vs brute %.17g",
                      trial, n, k, r.objective, ref);
    }
}
END_TEST

START_TEST(test_separated_clusters_known_optimum) {
    /* three clumps; the optimum puts one centroid at each clump's weighted mean (hand values):
     * {-0.8 (w 1), -0.7 (w 3)} -> -0.725; {0.1 (w 2)} -> 0.1; {0.6, 0.7, 0.8 (w 1 each)} -> 0.7 */
    float x[] = {0.7f, -0.8f, 0.1f, 0.6f, -0.7f, 0.8f};
    float w[] = {1, 1, 2, 1, 3, 1};
    float expect[3] = {-0.725f, 0.1f, 0.7f};
    for (int s = 0; s < 2; s++) {
        kvq_kmeans_opts o = opts(s ? KVQ_SOLVER_LLOYD : KVQ_SOLVER_EXACT, 3, 1);
        float c[3];
        kvq_kmeans_result r;
        ck_assert(kvq_kmeans_fit(x, w, 6, &o, c, &r, NULL, 0) == KVQ_OK);
        /* means of fp32 inputs computed in double then rounded: within 2 ulp of the hand value */
        kvq_test_allclose(s ? "lloyd" : "exact", c, expect, 3, 0, 2.5e-7);
        /* objective: 1*0.075^2 + 3*0.025^2 + 0 + (0.1^2 + 0 + 0.1^2) = 0.0275 (fp32 inputs: 1e-6 rel) */
        ck_assert_msg(fabs(r.objective - 0.0275) < 1e-6 * 0.0275, "objective %.10g", r.objective);
    }
}
END_TEST

START_TEST(test_exact_not_worse_than_lloyd) {
    size_t n = 200000;
    float *x = malloc(n * sizeof(float)), *w = malloc(n * sizeof(float));
    for (uint32_t bits = 1; bits <= 4; bits++) {
        heavy_data(x, w, n, 77 + bits);
        kvq_kmeans_opts oe = opts(KVQ_SOLVER_EXACT, 1u << bits, 2), ol = opts(KVQ_SOLVER_LLOYD, 1u << bits, 2);
        float ce[16], cl[16];
        kvq_kmeans_result re, rl;
        char why[256] = "";
        ck_assert_msg(kvq_kmeans_fit(x, w, n, &oe, ce, &re, why, sizeof why) == KVQ_OK, "%s", why);
        ck_assert(kvq_kmeans_fit(x, w, n, &ol, cl, &rl, NULL, 0) == KVQ_OK);
        /* both objectives come from the same pass code; the exact one (sorted points) is optimal
         * up to fp32 centroid rounding, a second-order ~1e-14 relative effect: allow 1e-9 */
        ck_assert_msg(re.objective <= rl.objective * (1 + 1e-9), "bits %u: exact %.12g lloyd %.12g", bits,
                      re.objective, rl.objective);
        ck_assert(re.objective == kvq_kmeans_objective(x, w, n, ce, 1u << bits, 1));
        ck_assert(rl.objective == kvq_kmeans_objective(x, w, n, cl, 1u << bits, 3));
    }
    free(x);
    free(w);
}
END_TEST

START_TEST(test_histogram_within_bound) {
    size_t n = (size_t)KVQ_KMEANS_SORT_LIMIT + 100000;
    float *x = malloc(n * sizeof(float)), *w = malloc(n * sizeof(float));
    heavy_data(x, w, n, 5);
    float cs[8], ch[8], cc[8];
    kvq_kmeans_result rs, rh, rc;
    kvq_kmeans_opts o = opts(KVQ_SOLVER_EXACT, 8, 2);
    o.hist_bins = 0;   /* sorted points: the true optimum (up to fp32 centroids) */
    ck_assert(kvq_kmeans_fit(x, w, n, &o, cs, &rs, NULL, 0) == KVQ_OK);
    ck_assert(rs.sorted_points);
    o.hist_bins = 4096;   /* coarse on purpose, so the bound is tested where it is not tiny */
    o.polish_iters = 0;
    ck_assert(kvq_kmeans_fit(x, w, n, &o, ch, &rh, NULL, 0) == KVQ_OK);
    ck_assert(!rh.sorted_points && rh.hist_gap_bound > 0);
    ck_assert_msg(rh.objective >= rs.objective * (1 - 1e-9), "histogram below the optimum");
    ck_assert_msg(rh.objective - rs.objective <= rh.hist_gap_bound + 1e-9 * rs.objective,
                  "gap %.6g exceeds bound %.6g", rh.objective - rs.objective, rh.hist_gap_bound);
    o.polish_iters = 8;   /* polishing never makes it worse */
    ck_assert(kvq_kmeans_fit(x, w, n, &o, cc, &rc, NULL, 0) == KVQ_OK);
    ck_assert(rc.objective <= rh.objective);
    free(x);
    free(w);
}
END_TEST

START_TEST(test_deterministic_across_threads) {
    size_t n = (size_t)KVQ_KMEANS_SORT_LIMIT + 300001;   /* histogram path and many slices */
    float *x = malloc(n * sizeof(float)), *w = malloc(n * sizeof(float));
    heavy_data(x, w, n, 9);
    for (int s = 0; s < 2; s++) {
        float c1[8], c2[8];
        kvq_kmeans_result r1, r2;
        kvq_kmeans_opts o = opts(s ? KVQ_SOLVER_LLOYD : KVQ_SOLVER_EXACT, 8, 1);
        o.max_iters = 10;
        ck_assert(kvq_kmeans_fit(x, w, n, &o, c1, &r1, NULL, 0) == KVQ_OK);
        o.n_threads = 3;
        ck_assert(kvq_kmeans_fit(x, w, n, &o, c2, &r2, NULL, 0) == KVQ_OK);
        ck_assert(!memcmp(c1, c2, sizeof c1));
        ck_assert(r1.objective == r2.objective && r1.iters == r2.iters);
    }
    free(x);
    free(w);
}
END_TEST

START_TEST(test_rejects_bad_input) {
    float x[6] = {0.1f, 0.2f, 0.2f, 0.3f, 0.9f, 0.1f}, w[6] = {1, 1, 1, 1, 0, 1};
    float c[4];
    char why[256];
    kvq_kmeans_opts o = opts(KVQ_SOLVER_EXACT, 4, 1);
    /* 0.9 has zero weight: only 3 distinct weighted values for 4 centroids */
    ck_assert(kvq_kmeans_fit(x, w, 6, &o, c, NULL, why, sizeof why) == KVQ_ERR_DATA);
    ck_assert_msg(strstr(why, "distinct") != NULL, "%s", why);
    /* 3 centroids on exactly 3 distinct values: zero error, centroids are the values */
    o.k = 3;
    kvq_kmeans_result r;
    ck_assert(kvq_kmeans_fit(x, w, 6, &o, c, &r, why, sizeof why) == KVQ_OK);
    ck_assert(r.objective == 0 && c[0] == 0.1f && c[1] == 0.2f && c[2] == 0.3f);
    x[3] = NAN;
    ck_assert(kvq_kmeans_fit(x, w, 6, &o, c, NULL, why, sizeof why) == KVQ_ERR_NONFINITE);
    ck_assert_msg(strstr(why, "point 3") != NULL, "%s", why);
    x[3] = 0.3f;
    w[2] = -1;
    ck_assert(kvq_kmeans_fit(x, w, 6, &o, c, NULL, why, sizeof why) == KVQ_ERR_NONFINITE);
    o.k = 0;
    ck_assert(kvq_kmeans_fit(x, w, 6, &o, c, NULL, why, sizeof why) == KVQ_ERR_ARG);
}
END_TEST

START_TEST(test_lloyd_empty_cluster_relocation) {
    /* Hand trace. Points 0, 0.1, 0.2, 0.3 (weight 1), start {-5, 0, 0.5} (given unsorted). Pass 1:
     * midpoints -2.5, 0.25 -> nothing is nearest to -5 (empty), {0, 0.1, 0.2} -> 0, {0.3} -> 0.5.
     * Update: 0.1, 0.3, and the empty one moves to the worst-served point, 0.2 (error 0.2^2, just
     * above 0.3's (0.3-0.5)^2 in fp32). Then {0.1, 0.2, 0.3} -> {0, 0.1}, {0.2}, {0.3} -> means
     * 0.05, 0.2, 0.3, which is stable: objective 2 * 0.05^2 = 0.005, the optimum (brute force). */
    float x[4] = {0, 0.1f, 0.2f, 0.3f}, c[3] = {0.5f, -5, 0};
    kvq_kmeans_opts o = opts(KVQ_SOLVER_LLOYD, 3, 1);
    kvq_kmeans_result r;
    char why[256];
    ck_assert_msg(kvq_kmeans_lloyd(x, NULL, 4, &o, c, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert(c[0] < c[1] && c[1] < c[2]);   /* no empty or duplicate cluster remains */
    double xs[4] = {0, 0.1f, 0.2f, 0.3f}, ws[4] = {1, 1, 1, 1};
    double ref = brute(xs, ws, 4, 3, 0);
    ck_assert_uint_eq(r.relocations, 1);
    /* fp32 inputs and centroids: 1e-9 absolute on 0.005 is far above their rounding (~1e-10) */
    ck_assert_msg(fabs(r.objective - ref) <= 1e-9, "objective %.12g vs optimum %.12g", r.objective, ref);
    c[0] = NAN;
    ck_assert(kvq_kmeans_lloyd(x, NULL, 4, &o, c, &r, why, sizeof why) == KVQ_ERR_NONFINITE);
}
END_TEST

static void add_task(void *ctx, size_t t) { ((size_t *)ctx)[t] = t * t; }

START_TEST(test_parallel_for) {
    size_t out[1000];
    memset(out, 0, sizeof out);
    ck_assert(kvq_parallel_for(1000, 4, add_task, out) == KVQ_OK);
    for (size_t t = 0; t < 1000; t++) ck_assert_uint_eq(out[t], t * t);
    ck_assert(kvq_parallel_for(0, 2, add_task, out) == KVQ_OK);
    ck_assert(kvq_parallel_for(1, 0, add_task, out) == KVQ_ERR_ARG);
}
END_TEST

static Suite *kmeans_suite(void) {
    Suite *s = suite_create("kmeans");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_code_and_objective_by_hand);
    tcase_add_test(tc, test_exact_matches_brute_force);
    tcase_add_test(tc, test_separated_clusters_known_optimum);
    tcase_add_test(tc, test_exact_not_worse_than_lloyd);
    tcase_add_test(tc, test_histogram_within_bound);
    tcase_add_test(tc, test_deterministic_across_threads);
    tcase_add_test(tc, test_rejects_bad_input);
    tcase_add_test(tc, test_lloyd_empty_cluster_relocation);
    tcase_add_test(tc, test_parallel_for);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(kmeans_suite)
