/* test_fit.c — the fitting pipeline below k-means: percentiles (hand values and a sort oracle), key
 * thresholds and normalisation (hand-computed), value per-token / per-head normalisation and the
 * outlier count rule, sink exclusion, the key outlier cap, Q-Norm moments, one whole layer (data
 * checks, Fisher requirement, outlier rates against the quantization reference) and determinism. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_h5.h"
#include "fit.h"
#include "kvq_half.h"
#include "kvq_test.h"
#include "qnorm.h"
#include "quant.h"
#include "thresholds.h"

static uint64_t rs;
static double urand(void) {
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2 * log(1 - urand())) * cos(6.283185307179586 * urand()); }

/* Exact comparison (hand values that are exact in fp32), naming the first difference. */
static void assert_exact(const char *what, const float *got, const float *ref, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == ref[i], "%s[%zu]: got %.9g, expected %.9g", what, i, (double)got[i], (double)ref[i]);
}

static int cmp_float(const void *a, const void *b) {
    float p = *(const float *)a, q = *(const float *)b;
    return (p > q) - (p < q);
}

START_TEST(test_percentile_hand_values) {
    /* numpy.percentile([3,1,4,1,5,9,2,6], [50, 90, 10, 25, 0, 100]) = 3.5, 6.9, 1.0, 1.75, 1, 9 */
    const double q[6] = {0.5, 0.9, 0.1, 0.25, 0, 1}, ref[6] = {3.5, 6.9, 1.0, 1.75, 1, 9};
    for (int i = 0; i < 6; i++) {
        float v[8] = {3, 1, 4, 1, 5, 9, 2, 6};
        double got = kvq_percentile(v, 8, q[i]);
        /* one lerp in double on small integers: exact up to the rounding of 0.3 and 0.7 */
        ck_assert_msg(fabs(got - ref[i]) <= 1e-12, "q %g: %.17g vs %.17g", q[i], got, ref[i]);
    }
    float one = 7;
    ck_assert(kvq_percentile(&one, 1, 0.3) == 7);
}
END_TEST

START_TEST(test_percentile_matches_sort) {
    /* oracle: full sort + the stated formula, on random sizes with many ties */
    for (int trial = 0; trial < 500; trial++) {
        rs = 42 + (uint64_t)trial;
        size_t n = 1 + (size_t)(urand() * 300);
        float *v = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) v[i] = s[i] = (float)(trial % 2 ? floor(urand() * 5) : nrand());
        qsort(s, n, sizeof(float), cmp_float);
        double q = trial % 7 == 0 ? 1 - 0.01 / 2 : urand();
        double pos = q * (double)(n - 1), frac = pos - floor(pos);
        size_t i = (size_t)floor(pos);
        double ref = i + 1 < n ? s[i] + ((double)s[i + 1] - s[i]) * frac : s[i];
        ck_assert_msg(kvq_percentile(v, n, q) == ref, "trial %d n %zu q %g", trial, n, q);
        free(v);
        free(s);
    }
}
END_TEST

START_TEST(test_key_thresholds_and_sink) {
    /* 5 rows x 3 channels; row 0 is a sink token with extreme values */
    const float k[5 * 3] = {100, -100, 7,   1, 8, 7,   2, 6, 7,   3, 4, 7,   4, 2, 7};
    const uint8_t use[5] = {0, 1, 1, 1, 1};
    float z[3], r[3];
    char why[256];
    /* p = 0: max/min over rows 1..4. ch0 {1..4}: z 2.5 r 1.5; ch1 {2..8}: z 5 r 3; ch2 constant 7:
     * r would be 0, so r = 1 and z = 7 */
    ck_assert(kvq_key_thresholds(k, 5, 3, use, 0.0f, 2, z, r, why, sizeof why) == KVQ_OK);
    const float z0[3] = {2.5f, 5, 7}, r0[3] = {1.5f, 3, 1};
    assert_exact("z p=0", z, z0, 3);   /* exact: halves of small integers */
    assert_exact("r p=0", r, r0, 3);
    /* p = 0.5 (percentiles 75 and 25) on ch0 {1,2,3,4}: pos 2.25 -> 3.25, pos 0.75 -> 1.75: z 2.5 r 0.75;
     * ch1 {2,4,6,8}: 6.5 and 3.5: z 5, r 1.5 */
    ck_assert(kvq_key_thresholds(k, 5, 3, use, 0.5f, 1, z, r, why, sizeof why) == KVQ_OK);
    const float z1[3] = {2.5f, 5, 7}, r1[3] = {0.75f, 1.5f, 1};
    assert_exact("z p=0.5", z, z1, 3);
    assert_exact("r p=0.5", r, r1, 3);
    /* sink included (reference code): ch0 {100,1,2,3,4}: z 50.5, r 49.5; ch1 {-100..8}: z -46, r 54 */
    ck_assert(kvq_key_thresholds(k, 5, 3, NULL, 0.0f, 1, z, r, why, sizeof why) == KVQ_OK);
    const float z2[3] = {50.5f, -46, 7}, r2[3] = {49.5f, 54, 1};
    assert_exact("z incl", z, z2, 3);
    assert_exact("r incl", r, r2, 3);
    const uint8_t none[5] = {0};
    ck_assert(kvq_key_thresholds(k, 5, 3, none, 0.0f, 1, z, r, why, sizeof why) == KVQ_ERR_DATA);
}
END_TEST

START_TEST(test_key_points_outliers_and_cap) {
    /* z = 0, r = 2 on 4 channels. Row 1: x = {0.5, 1.5, 2, -3} -> outliers 1.5, 2 (up), -3 (low).
     * Row 0 is a sink and must not appear. Fisher 1..8; scaled weight = F * r^2 = 4F. */
    const float z[4] = {0, 0, 0, 0}, r[4] = {2, 2, 2, 2};
    const float k[2 * 4] = {9, 9, 9, 9, 1, 3, 4, -6};
    const float f[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t use[2] = {0, 1};
    kvq_norm_spec s = {KVQ_NORM_PER_CHANNEL, 4, 4, z, r, 0.01f, 0, KVQ_WEIGHT_FISHER_SCALED};
    kvq_norm_points p;
    char why[256];
    ck_assert(kvq_norm_collect(&s, k, f, 2, use, 1, &p, why, sizeof why) == KVQ_OK);
    ck_assert_uint_eq(p.n, 1);
    ck_assert_uint_eq(p.n_outliers, 3);
    ck_assert_uint_eq(p.n_elements, 4);
    ck_assert(p.x[0] == 0.5f && p.w[0] == 20.0f);
    kvq_norm_points_free(&p);
    /* cap m = 1: only the largest upper candidate (x = 2, channel 2) and the smallest lower one stay
     * outliers; channel 1 (x = 1.5) is clipped and enters k-means at x = 1 */
    s.outlier_cap = 1;
    ck_assert(kvq_norm_collect(&s, k, f, 2, use, 1, &p, why, sizeof why) == KVQ_OK);
    ck_assert_uint_eq(p.n, 2);
    ck_assert_uint_eq(p.n_outliers, 2);
    ck_assert(p.x[0] == 0.5f && p.x[1] == 1.0f && p.w[1] == 24.0f);
    kvq_norm_points_free(&p);
    /* p = 0: no outliers, everything clipped to [-1, 1]; weight none -> 1 */
    s.outlier_fraction = 0;
    s.outlier_cap = 0;
    s.weighting = KVQ_WEIGHT_NONE;
    ck_assert(kvq_norm_collect(&s, k, NULL, 2, use, 2, &p, why, sizeof why) == KVQ_OK);
    const float x0[4] = {0.5f, 1, 1, -1}, w0[4] = {1, 1, 1, 1};
    ck_assert_uint_eq(p.n, 4);
    assert_exact("x p=0", p.x, x0, 4);
    assert_exact("w none", p.w, w0, 4);
    kvq_norm_points_free(&p);
}
END_TEST

START_TEST(test_value_points_token_and_head) {
    /* one token of 8: {0, 1, 2, 3, 4, 5, 6, 100}; p = 0.25 -> m = floor(0.125 * 8) = 1: 100 and 0
     * are outliers, hi 6, lo 1, z = 3.5, r = 2.5 (fp16-exact); x = (v - 3.5)/2.5 */
    const float v[8] = {0, 1, 2, 3, 4, 5, 6, 100}, f[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    kvq_norm_spec s = {KVQ_NORM_PER_TOKEN, 8, 4, NULL, NULL, 0.25f, 0, KVQ_WEIGHT_FISHER_SCALED};
    kvq_norm_points p;
    char why[256];
    ck_assert(kvq_norm_collect(&s, v, f, 1, NULL, 1, &p, why, sizeof why) == KVQ_OK);
    const float x1[6] = {-1, -0.6f, -0.2f, 0.2f, 0.6f, 1}, w1[6] = {6.25f, 6.25f, 6.25f, 6.25f, 6.25f, 6.25f};
    ck_assert_uint_eq(p.n, 6);
    ck_assert_uint_eq(p.n_outliers, 2);
    kvq_test_allclose("x token", p.x, x1, 6, 0, 1.2e-7);   /* one fp32 subtraction + division */
    assert_exact("w token", p.w, w1, 6);
    kvq_norm_points_free(&p);
    /* per head (g = 4): m = floor(0.125 * 4) = 0, no outliers; head 0 {0..3}: z 1.5 r 1.5;
     * head 1 {4, 5, 6, 100}: z 52, r 48 */
    s.axis = KVQ_NORM_PER_TOKEN_HEAD;
    ck_assert(kvq_norm_collect(&s, v, f, 1, NULL, 1, &p, why, sizeof why) == KVQ_OK);
    const float x2[8] = {-1, -1.0f / 3, 1.0f / 3, 1, -1, -47.0f / 48, -46.0f / 48, 1};
    const float w2[8] = {2.25f, 2.25f, 2.25f, 2.25f, 2304, 2304, 2304, 2304};
    ck_assert_uint_eq(p.n, 8);
    ck_assert_uint_eq(p.n_outliers, 0);
    kvq_test_allclose("x head", p.x, x2, 8, 0, 1.2e-7);
    assert_exact("w head", p.w, w2, 8);
    kvq_norm_points_free(&p);
}
END_TEST

START_TEST(test_qnorm_moments) {
    size_t n = 300000;
    float *x = malloc(n * sizeof(float));
    rs = 3;
    for (size_t i = 0; i < n; i++) x[i] = (float)tanh(0.4 * nrand() + 0.05);
    const float c[4] = {-0.6f, -0.15f, 0.2f, 0.7f};   /* deliberately not the k-means optimum */
    kvq_qnorm q;
    char why[256];
    ck_assert(kvq_qnorm_compute(x, n, c, 4, 2, &q, why, sizeof why) == KVQ_OK);
    /* independent oracle: moments in long double, Q by linear nearest search (ties low) */
    long double sx = 0, sxx = 0, sq = 0, sqq = 0;
    for (size_t i = 0; i < n; i++) {
        int j = 0;
        for (int t = 1; t < 4; t++) if (x[i] > 0.5f * (c[t - 1] + c[t])) j = t;
        long double qq = (long double)c[j] * q.scale + q.offset;   /* folded centroid */
        sx += x[i]; sxx += (long double)x[i] * x[i]; sq += qq; sqq += qq * qq;
    }
    double m1 = (double)(sx / n), s1 = sqrt((double)(sxx / n - (sx / n) * (sx / n)));
    double mq = (double)(sq / n), sdq = sqrt((double)(sqq / n - (sq / n) * (sq / n)));
    /* scale and offset are fp32: relative 6e-8 each, so moments agree to ~1e-7 of the spread */
    ck_assert_msg(fabs(mq - m1) <= 1e-6 * s1, "mean %.9g vs %.9g", mq, m1);
    ck_assert_msg(fabs(sdq - s1) <= 1e-6 * s1, "std %.9g vs %.9g", sdq, s1);
    ck_assert(fabs(q.m1 - m1) <= 1e-9 && fabs(q.s1 - s1) <= 1e-9 * s1);
    /* all points on one centroid: no affine fix exists */
    for (size_t i = 0; i < 100; i++) x[i] = -0.9f;
    ck_assert(kvq_qnorm_compute(x, 100, c, 4, 1, &q, why, sizeof why) == KVQ_ERR_DATA);
    free(x);
}
END_TEST

/* ---- whole layer --------------------------------------------------------------------------- */
enum { ROWS = 600, DIM = 32, HEAD = 16 };

typedef struct layer_data {
    float k[ROWS * DIM], v[ROWS * DIM], fk[ROWS * DIM], fv[ROWS * DIM];
    uint8_t sink[ROWS];
} layer_data;

static void make_layer(layer_data *d, uint64_t seed) {
    rs = seed;
    for (size_t i = 0; i < (size_t)ROWS * DIM; i++) {
        size_t c = i % DIM;
        d->k[i] = (float)(0.3 * c - 4 + (1 + 0.1 * c) * nrand() / sqrt(0.5 + urand()));
        d->v[i] = (float)(nrand() * (1 + urand()));
        d->fk[i] = (float)(1e-6 * exp(nrand()));
        d->fv[i] = (float)(1e-6 * exp(nrand()));
    }
    for (size_t t = 0; t < ROWS; t++) {
        d->sink[t] = t % 100 == 0;   /* six samples of 100 tokens */
        if (d->sink[t]) for (size_t c = 0; c < DIM; c++) d->k[t * DIM + c] = d->v[t * DIM + c] = 500;
    }
}

static void layer_alloc(kvq_layer_codebook *l, uint32_t kb, uint32_t vb) {
    memset(l, 0, sizeof *l);
    l->k.bits = kb;
    l->v.bits = vb;
    l->k.centroids = calloc(1u << kb, sizeof(float));
    l->v.centroids = calloc(1u << vb, sizeof(float));
    l->k.zero_point = calloc(DIM, sizeof(float));
    l->k.half_range = calloc(DIM, sizeof(float));
}

static void layer_release(kvq_layer_codebook *l) {
    free(l->k.centroids);
    free(l->v.centroids);
    free(l->k.zero_point);
    free(l->k.half_range);
}

static kvq_fit_input input_of(const layer_data *d) {
    kvq_fit_input in = {3, d->k, d->v, d->fk, d->fv, ROWS, DIM, HEAD, d->sink};
    return in;
}

START_TEST(test_layer_deterministic_and_consistent) {
    layer_data *d = malloc(sizeof *d);
    make_layer(d, 11);
    kvq_fit_input in = input_of(d);
    kvq_fit_opts o;
    kvq_fit_opts_default(&o);
    o.k_bits = 2;
    o.v_bits = 3;
    kvq_layer_codebook a, b;
    kvq_fit_layer_report ra, rb;
    char why[256] = "";
    for (int solver = 0; solver < 2; solver++) {
        o.solver = solver ? KVQ_SOLVER_LLOYD : KVQ_SOLVER_EXACT;
        layer_alloc(&a, 2, 3);
        layer_alloc(&b, 2, 3);
        o.n_threads = 1;
        ck_assert_msg(kvq_fit_layer(&o, &in, &a, &ra, why, sizeof why) == KVQ_OK, "%s", why);
        o.n_threads = 2;
        ck_assert_msg(kvq_fit_layer(&o, &in, &b, &rb, why, sizeof why) == KVQ_OK, "%s", why);
        ck_assert(!memcmp(a.k.centroids, b.k.centroids, 4 * sizeof(float)));
        ck_assert(!memcmp(a.v.centroids, b.v.centroids, 8 * sizeof(float)));
        ck_assert(!memcmp(a.k.zero_point, b.k.zero_point, DIM * sizeof(float)));
        ck_assert(!memcmp(a.k.half_range, b.k.half_range, DIM * sizeof(float)));
        ck_assert(ra.k_objective == rb.k_objective && ra.v_objective == rb.v_objective);
        ck_assert(a.k.qnorm_scale == b.k.qnorm_scale && a.k.qnorm_offset == b.k.qnorm_offset);
        /* Q-Norm auto: on at 2 bits (keys), off at 3 (values) */
        ck_assert(a.k.qnorm == 1 && a.v.qnorm == 0 && a.v.qnorm_scale == 1.0f);
        ck_assert(a.k.axis == KVQ_NORM_PER_CHANNEL && a.v.axis == KVQ_NORM_PER_TOKEN);
        /* sink rows (value 500) are excluded: every key threshold stays far below 500 */
        for (int c = 0; c < DIM; c++) ck_assert(a.k.zero_point[c] + a.k.half_range[c] < 100);
        /* the outlier rates equal what the quantization reference flags on the non-sink rows */
        for (int t = 0; t < 2; t++) {
            kvq_quantizer q;
            kvq_qtoken tok;
            ck_assert(kvq_quantizer_from_codebook(&q, t ? &a.v : &a.k, DIM, HEAD, 0, why, sizeof why) == KVQ_OK);
            ck_assert(kvq_qtoken_init(&tok, &q) == KVQ_OK);
            size_t outl = 0, el = 0;
            for (size_t row = 0; row < ROWS; row++) {
                if (d->sink[row]) continue;
                ck_assert(kvq_quant_encode(&q, (t ? d->v : d->k) + row * DIM, &tok) == KVQ_OK);
                outl += tok.n_outliers;
                el += DIM;
            }
            ck_assert((double)outl / (double)el == (t ? ra.v_outlier_rate : ra.k_outlier_rate));
            ck_assert_uint_eq(el - outl, t ? ra.v_points : ra.k_points);
            kvq_qtoken_free(&tok);
            kvq_quantizer_free(&q);
        }
        layer_release(&a);
        layer_release(&b);
    }
    free(d);
}
END_TEST

START_TEST(test_layer_rejects) {
    layer_data *d = malloc(sizeof *d);
    make_layer(d, 12);
    kvq_fit_input in = input_of(d);
    kvq_fit_opts o;
    kvq_fit_opts_default(&o);
    kvq_layer_codebook l;
    kvq_fit_layer_report r;
    char why[256] = "";
    layer_alloc(&l, 3, 3);
    in.fk = in.fv = NULL;   /* no Fisher, Fisher weighting asked */
    ck_assert(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_ERR_MISSING);
    ck_assert_msg(strstr(why, "Fisher") != NULL, "%s", why);
    o.weighting = KVQ_WEIGHT_NONE;   /* fine without it */
    ck_assert_msg(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_OK, "%s", why);
    in = input_of(d);
    o.weighting = KVQ_WEIGHT_FISHER;
    d->v[5 * DIM + 2] = NAN;
    ck_assert(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_ERR_NONFINITE);
    ck_assert_msg(strstr(why, "layer 3, tensor v, row 5, column 2") != NULL, "%s", why);
    d->v[5 * DIM + 2] = 0;
    d->fk[7 * DIM + 1] = -1;
    ck_assert(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_ERR_NONFINITE);
    ck_assert_msg(strstr(why, "tensor fisher_k, row 7, column 1") != NULL, "%s", why);
    d->fk[7 * DIM + 1] = 0;
    d->k[1] = 1e6f;   /* beyond fp16 */
    ck_assert(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_ERR_NONFINITE);
    /* keys with two distinct values per channel pattern: too few for 8 centroids */
    for (size_t i = 0; i < (size_t)ROWS * DIM; i++) d->k[i] = (float)(i % 2);
    ck_assert(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_ERR_DATA);
    ck_assert_msg(strstr(why, "layer 3 keys") && strstr(why, "distinct"), "%s", why);
    layer_release(&l);
    free(d);
}
END_TEST

START_TEST(test_sink_in_key_thresholds) {
    /* make_layer puts 500 in every channel of the sink rows (1 in 100). With p = 0 the key maximum
     * is then 500 when sink rows count (reference code) and far below when they do not (paper);
     * values are never affected (per token) and k-means never sees sink rows either way. */
    layer_data *d = malloc(sizeof *d);
    make_layer(d, 14);
    kvq_fit_input in = input_of(d);
    kvq_fit_opts o;
    kvq_fit_opts_default(&o);
    o.outlier_fraction = 0;
    kvq_layer_codebook a, b;
    kvq_fit_layer_report ra, rb;
    char why[256] = "";
    layer_alloc(&a, 3, 3);
    layer_alloc(&b, 3, 3);
    ck_assert_msg(kvq_fit_layer(&o, &in, &a, &ra, why, sizeof why) == KVQ_OK, "%s", why);
    o.sink_in_key_thresholds = 1;
    ck_assert_msg(kvq_fit_layer(&o, &in, &b, &rb, why, sizeof why) == KVQ_OK, "%s", why);
    for (int c = 0; c < DIM; c++) {
        ck_assert(a.k.zero_point[c] + a.k.half_range[c] < 100);
        /* z + r = hi = 500 up to the fp32 rounding of z and r (half an ulp of ~500 each: 3e-5) */
        ck_assert(fabsf(b.k.zero_point[c] + b.k.half_range[c] - 500) <= 1e-4f);
    }
    ck_assert(ra.k_points == rb.k_points && ra.k_points == (size_t)(ROWS - ROWS / 100) * DIM);
    ck_assert(!memcmp(a.v.centroids, b.v.centroids, 8 * sizeof(float)));
    layer_release(&a);
    layer_release(&b);
    free(d);
}
END_TEST

START_TEST(test_outlier_cap_ref) {
    layer_data *d = malloc(sizeof *d);
    make_layer(d, 13);
    kvq_fit_input in = input_of(d);
    kvq_fit_opts o;
    kvq_fit_opts_default(&o);
    o.outlier_fraction = 0.1f;
    o.outlier_cap_ref = 1;   /* ceil(0.05 * 32) = 2 for keys and whole-vector values */
    kvq_layer_codebook l;
    kvq_fit_layer_report r;
    char why[256] = "";
    layer_alloc(&l, 3, 3);
    ck_assert_msg(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(l.k.outlier_cap, 2);
    ck_assert_uint_eq(l.v.outlier_cap, 2);
    /* at most 2 + 2 outliers per token for keys */
    ck_assert(r.k_outlier_rate <= 4.0 / DIM);
    o.value_axis = KVQ_NORM_PER_TOKEN_HEAD;   /* per head: ceil(0.05 * 16) = 1 */
    ck_assert_msg(kvq_fit_layer(&o, &in, &l, &r, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(l.v.outlier_cap, 1);
    ck_assert(l.v.axis == KVQ_NORM_PER_TOKEN_HEAD);
    ck_assert(r.v_outlier_rate == 4.0 / DIM);   /* exactly 1 + 1 per head, 2 heads */
    layer_release(&l);
    free(d);
}
END_TEST


/* ---- a capture file ------------------------------------------------------------------------ */
static kvq_model_identity tiny_identity(void) {
    kvq_model_identity id;
    memset(&id, 0, sizeof id);
    strcpy(id.architecture, "llama");
    id.n_layers = 2;
    id.n_heads = 4;
    id.n_kv_heads = 2;
    id.head_dim = HEAD;
    id.hidden = 64;
    id.vocab = 100;
    id.rope_theta = 10000;
    id.rope_scaling_factor = 1;
    id.fingerprint = 0x0123456789ABCDEFull;
    return id;
}

/* Six samples of 100 rows; layer l holds make_layer(seed 20 + l). */
static void write_capture(const char *path, int fisher, layer_data *d[2]) {
    kvq_model_identity id = tiny_identity();
    kvq_capture_meta meta;
    kvq_capture_meta_init(&meta, &id);
    meta.seq_len = 100;
    meta.samples_requested = 6;
    meta.fisher = fisher;
    strcpy(meta.text_path, "synthetic.txt");
    kvq_capture_writer *w = NULL;
    char why[256] = "";
    ck_assert_msg(kvq_capture_create(path, &meta, &w, why, sizeof why) == KVQ_OK, "%s", why);
    for (size_t s = 0; s < 6; s++) {
        ck_assert_msg(kvq_capture_begin(w, s * 1000, 100, why, sizeof why) == KVQ_OK, "%s", why);
        for (uint32_t l = 0; l < 2; l++) {
            size_t off = s * 100 * DIM;
            ck_assert_msg(kvq_capture_put_layer(w, l, d[l]->k + off, d[l]->v + off, fisher ? d[l]->fk + off : NULL,
                                                fisher ? d[l]->fv + off : NULL, why, sizeof why) == KVQ_OK, "%s", why);
        }
        ck_assert_msg(kvq_capture_commit(w, why, sizeof why) == KVQ_OK, "%s", why);
    }
    ck_assert_msg(kvq_capture_close(w, why, sizeof why) == KVQ_OK, "%s", why);
}

static void *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*len + 1);
    ck_assert_uint_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

START_TEST(test_fit_capture_file) {
    layer_data *d[2] = {malloc(sizeof(layer_data)), malloc(sizeof(layer_data))};
    make_layer(d[0], 20);
    make_layer(d[1], 21);
    char path[512], nofisher[512], out1[512], out2[512], why[256] = "";
    snprintf(path, sizeof path, "%s/fit_cap.h5", kvq_test_tmpdir());
    snprintf(nofisher, sizeof nofisher, "%s/fit_cap_nofisher.h5", kvq_test_tmpdir());
    snprintf(out1, sizeof out1, "%s/fit1.kvqc", kvq_test_tmpdir());
    snprintf(out2, sizeof out2, "%s/fit2.kvqc", kvq_test_tmpdir());
    write_capture(path, 1, d);
    write_capture(nofisher, 0, d);
    kvq_fit_opts o;
    kvq_fit_opts_default(&o);
    o.k_bits = 4;
    o.v_bits = 2;
    kvq_codebook cb;
    ck_assert_msg(kvq_fit_capture(path, &o, NULL, NULL, &cb, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_model_identity id = tiny_identity();
    ck_assert(kvq_codebook_check_model(&cb, &id, why, sizeof why) == KVQ_OK);
    ck_assert_uint_eq(cb.provenance.samples, 6);
    ck_assert_uint_eq(cb.provenance.seq_len, 100);
    ck_assert_uint_eq(cb.n_sink, 1);
    ck_assert_str_eq(cb.provenance.calib_text, "synthetic.txt");
    /* the sink rows come from the sample boundaries: the same fit as in memory with rows 0, 100, ... */
    for (uint32_t l = 0; l < 2; l++) {
        kvq_layer_codebook ref;
        kvq_fit_layer_report rep;
        layer_alloc(&ref, 4, 2);
        kvq_fit_input in = input_of(d[l]);
        in.layer = l;
        ck_assert_msg(kvq_fit_layer(&o, &in, &ref, &rep, why, sizeof why) == KVQ_OK, "%s", why);
        ck_assert(!memcmp(ref.k.centroids, cb.layers[l].k.centroids, 16 * sizeof(float)));
        ck_assert(!memcmp(ref.v.centroids, cb.layers[l].v.centroids, 4 * sizeof(float)));
        ck_assert(!memcmp(ref.k.zero_point, cb.layers[l].k.zero_point, DIM * sizeof(float)));
        ck_assert(cb.diag.k_objective[l] == rep.k_objective && cb.diag.v_outlier_rate[l] == rep.v_outlier_rate);
        ck_assert(cb.layers[l].v.qnorm == 1 && cb.layers[l].k.qnorm == 0);
        layer_release(&ref);
    }
    ck_assert(kvq_codebook_write(out1, &cb) == KVQ_OK);
    kvq_codebook_free(&cb);
    /* byte-identical with another thread count */
    o.n_threads = 3;
    ck_assert_msg(kvq_fit_capture(path, &o, NULL, NULL, &cb, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert(kvq_codebook_write(out2, &cb) == KVQ_OK);
    kvq_codebook_free(&cb);
    size_t n1, n2;
    void *b1 = slurp(out1, &n1), *b2 = slurp(out2, &n2);
    ck_assert(n1 == n2 && !memcmp(b1, b2, n1));
    free(b1);
    free(b2);
    /* no Fisher in the file: refused for a Fisher weighting, fine unweighted */
    ck_assert(kvq_fit_capture(nofisher, &o, NULL, NULL, &cb, why, sizeof why) == KVQ_ERR_MISSING);
    ck_assert_msg(strstr(why, "no Fisher") != NULL, "%s", why);
    o.weighting = KVQ_WEIGHT_NONE;
    ck_assert_msg(kvq_fit_capture(nofisher, &o, NULL, NULL, &cb, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_codebook_free(&cb);
    free(d[0]);
    free(d[1]);
}
END_TEST

static Suite *fit_suite(void) {
    Suite *s = suite_create("fit");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_percentile_hand_values);
    tcase_add_test(tc, test_percentile_matches_sort);
    tcase_add_test(tc, test_key_thresholds_and_sink);
    tcase_add_test(tc, test_key_points_outliers_and_cap);
    tcase_add_test(tc, test_value_points_token_and_head);
    tcase_add_test(tc, test_qnorm_moments);
    tcase_add_test(tc, test_layer_deterministic_and_consistent);
    tcase_add_test(tc, test_layer_rejects);
    tcase_add_test(tc, test_sink_in_key_thresholds);
    tcase_add_test(tc, test_outlier_cap_ref);
    tcase_add_test(tc, test_fit_capture_file);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(fit_suite)
