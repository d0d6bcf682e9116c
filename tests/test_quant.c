/* test_quant.c — the quantization reference (codebook/quant.c, docs/quantization.md) and bit
 * accounting (codebook/bits.c) against hand-computed results. The oracle of each expected value
 * is the spec's arithmetic worked by hand on small vectors chosen so that every intermediate is
 * exact in fp32 (the few that are not were worked with numpy float16/float32, noted beside
 * them). Comparisons are exact (==): the reference must be bit-exact, that is its purpose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "bits.h"
#include "kvq_half.h"
#include "kvq_test.h"
#include "quant.h"

static const float LUT2[4] = {-1.0f, -0.5f, 0.5f, 1.0f};   /* mids -0.75, 0, 0.75 */

static void init_ok(kvq_quantizer *q, const kvq_quant_config *c) {
    char why[256] = "";
    kvq_status st = kvq_quantizer_init(q, c, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "init: %s %s", kvq_status_name(st), why);
}

static void assert_floats(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&got[i], &want[i], 4) == 0, "%s[%zu]: got %.9g want %.9g", what, i,
                      (double)got[i], (double)want[i]);
}

START_TEST(test_code_midpoints) {
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 4, .bits = 2, .lut = LUT2, .group = 4};
    init_ok(&q, &c);
    ck_assert_uint_eq(kvq_quant_code(&q, -5.0f), 0);
    ck_assert_uint_eq(kvq_quant_code(&q, -0.75f), 0);          /* tie at a midpoint: lower */
    ck_assert_uint_eq(kvq_quant_code(&q, nextafterf(-0.75f, 0)), 1);
    ck_assert_uint_eq(kvq_quant_code(&q, 0.0f), 1);
    ck_assert_uint_eq(kvq_quant_code(&q, -0.0f), 1);
    ck_assert_uint_eq(kvq_quant_code(&q, 0.75f), 2);
    ck_assert_uint_eq(kvq_quant_code(&q, nextafterf(0.75f, 1)), 3);
    ck_assert_uint_eq(kvq_quant_code(&q, 7.0f), 3);
    kvq_quantizer_free(&q);
    kvq_quantizer_free(&q);   /* free twice / zeroed is fine */
}
END_TEST

/* Keys, §3: z, r per channel; 3 upper candidates with cap 2 (a tie at 1.5 goes to the lower
 * channel), inputs rounded to fp16 first. */
static const float KZ[6] = {0, 1, 0, 0, 0, 0}, KR[6] = {1, 2, 1, 1, 1, 1};
static const float KIN[6] = {0.25f + 0x1p-14f, 4.0f, 3.0f + 0x1p-12f, -2.0f, 1.5f, -0.125f};
/* x = 0.25 (h() drops 2^-14), 1.5, 3 (h() drops 2^-12), -2, 1.5, -0.125 */

static void key_case(uint32_t cap, float p, kvq_outlier_residual res, const float *want,
                     const uint16_t *want_ch, uint32_t n_want, const uint8_t *want_codes) {
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_STATIC_CHANNEL, .dim = 6, .bits = 2, .lut = LUT2,
                          .zero_point = KZ, .half_range = KR, .outlier_fraction = p,
                          .outlier_cap = cap, .residual = res};
    init_ok(&q, &c);
    kvq_qtoken t;
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    ck_assert_int_eq(kvq_quant_encode(&q, KIN, &t), KVQ_OK);
    ck_assert_mem_eq(t.codes, want_codes, 6);
    ck_assert_uint_eq(t.n_outliers, n_want);
    for (uint32_t i = 0; i < n_want; i++) ck_assert_uint_eq(t.outliers[i].channel, want_ch[i]);
    float out[6];
    kvq_quant_decode(&q, &t, out);
    assert_floats("key", out, want, 6);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}

START_TEST(test_keys_cap_exact) {
    /* cap 2: upper candidates ch1 (1.5), ch2 (3), ch4 (1.5) -> keep ch2 and ch1 (tie, lower
     * channel); ch4 clipped to code 3 = 1*1+0. Lower: ch3. Dense: ch0 x=.25 -> code 2 -> .5;
     * ch5 x=-.125 -> code 1 -> -.5. */
    const float want[6] = {0.5f, 4.0f, 3.0f, -2.0f, 1.0f, -0.5f};
    const uint16_t ch[3] = {1, 2, 3};
    const uint8_t codes[6] = {2, 3, 3, 0, 3, 1};
    key_case(2, 0.01f, KVQ_OUTLIER_EXACT, want, ch, 3, codes);
    /* RESIDUAL: same dequantized values (the residuals 4-3, 3-1, -2-(-1) are exact in fp16) */
    key_case(2, 0.01f, KVQ_OUTLIER_RESIDUAL, want, ch, 3, codes);
}
END_TEST

START_TEST(test_keys_nocap_and_no_outliers) {
    const float want_all[6] = {0.5f, 4.0f, 3.0f, -2.0f, 1.5f, -0.5f};
    const uint16_t ch[4] = {1, 2, 3, 4};
    const uint8_t codes[6] = {2, 3, 3, 0, 3, 1};
    key_case(0, 0.01f, KVQ_OUTLIER_EXACT, want_all, ch, 4, codes);
    /* p = 0: everything clipped by code(): ch1 -> 1*2+1 = 3, ch2 -> 1, ch3 -> -1, ch4 -> 1 */
    const float want_clip[6] = {0.5f, 3.0f, 1.0f, -1.0f, 1.0f, -0.5f};
    key_case(0, 0.0f, KVQ_OUTLIER_EXACT, want_clip, NULL, 0, codes);
}
END_TEST

START_TEST(test_keys_qnorm_lut) {
    /* Q-Norm folds into the LUT with fmaf: c*1.25 + 0.1 */
    float cent[4] = {-1.0f, -0.5f, 0.5f, 1.0f}, lut[4];
    kvq_tensor_codebook t = {.bits = 2, .centroids = cent, .qnorm = 1, .qnorm_scale = 1.25f,
                             .qnorm_offset = 0.1f};
    kvq_codebook_lut(&t, lut);
    for (int i = 0; i < 4; i++) ck_assert(lut[i] == fmaf(cent[i], 1.25f, 0.1f));
    ck_assert(lut[0] == -1.15f && lut[3] == 1.35f);
    t.qnorm = 0;
    kvq_codebook_lut(&t, lut);
    assert_floats("lut", lut, cent, 4);
}
END_TEST

/* Values, §4, one group of 8 with cap 1: upper 10 (ch3), lower -3 (ch5); the rest spans
 * [-1, 2] so z = 0.5, r = 1.5 and the dense levels are -1, -0.25, 1.25, 2. */
START_TEST(test_values_token_outliers) {
    const float v[8] = {0.5f, -1.0f, 2.0f, 10.0f, 0.0f, -3.0f, 1.0f, 2.0f};
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 8, .bits = 2, .lut = LUT2, .group = 8,
                          .outlier_fraction = 0.01f, .outlier_cap = 1};
    init_ok(&q, &c);
    kvq_qtoken t;
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
    ck_assert(kvq_f16_to_f32(t.z[0]) == 0.5f && kvq_f16_to_f32(t.r[0]) == 1.5f);
    const uint8_t codes[8] = {1, 0, 3, 3, 1, 0, 2, 3};   /* x = 0 ties down to code 1 */
    ck_assert_mem_eq(t.codes, codes, 8);
    ck_assert_uint_eq(t.n_outliers, 2);
    ck_assert_uint_eq(t.outliers[0].channel, 3);
    ck_assert_uint_eq(t.outliers[1].channel, 5);
    float out[8];
    kvq_quant_decode(&q, &t, out);
    const float want[8] = {-0.25f, -1.0f, 2.0f, 10.0f, -0.25f, -3.0f, 1.25f, 2.0f};
    assert_floats("value", out, want, 8);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}
END_TEST

/* Ties and a constant group: upper picks ch0 (lower channel first), lower picks ch1 among the
 * rest; hi = lo = 1 so r = 0 -> 1, z = 1, x = 0 -> code 1 -> 1 - 0.5 = 0.5. */
START_TEST(test_values_ties_constant) {
    const float v[4] = {1, 1, 1, 1};
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 4, .bits = 2, .lut = LUT2, .group = 4,
                          .outlier_fraction = 0.5f};   /* m = floor(0.25 * 4) = 1 */
    init_ok(&q, &c);
    kvq_qtoken t;
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
    ck_assert_uint_eq(t.n_outliers, 2);
    ck_assert_uint_eq(t.outliers[0].channel, 0);
    ck_assert_uint_eq(t.outliers[1].channel, 1);
    ck_assert(kvq_f16_to_f32(t.z[0]) == 1.0f && kvq_f16_to_f32(t.r[0]) == 1.0f);
    float out[4];
    kvq_quant_decode(&q, &t, out);
    const float want[4] = {1.0f, 1.0f, 0.5f, 0.5f};
    assert_floats("const", out, want, 4);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
    /* cap 2 on a group of 4: 2m >= g, so no outliers at all */
    c.outlier_cap = 2;
    init_ok(&q, &c);
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
    ck_assert_uint_eq(t.n_outliers, 0);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}
END_TEST

/* fp16 scales that are not exact: hi = h(0.3) = 0.300048828125, lo = h(-0.1) = -0.0999755859375;
 * z = h(0.5*(hi+lo)) = 0.10003662109375, r = h(0.5*(hi-lo)) = 0.199951171875 (numpy float16).
 * Per-head groups of 4 in a vector of 8 (the second head is the first one negated). */
/* Outlier selection against a brute-force oracle: top m by (value desc, channel asc), then bottom m
 * of the rest by (value asc, channel asc), on tie-heavy random groups (values from a set of 9, with
 * -0 and +0, all exact in fp16). m = 102 runs the heap path, m = 409 the scan path of
 * keep_extremes; keys (static scheme, x = v, cap m) run the same selection on |x| > 1. */
static int cmp_rank(const float *v, uint32_t a, uint32_t b, int sign) {   /* oracle order */
    if (v[a] != v[b]) return sign > 0 ? v[a] > v[b] : v[a] < v[b];
    return a < b;
}
static void oracle_pick(const float *v, uint8_t *cand, uint32_t n, uint32_t m, int sign, uint8_t *out) {
    for (uint32_t j = 0; j < m; j++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t c = 0; c < n; c++)
            if (cand[c] && (best == UINT32_MAX || cmp_rank(v, c, best, sign))) best = c;
        if (best == UINT32_MAX) return;
        cand[best] = 0;
        out[best] = 1;
    }
}

START_TEST(test_outlier_selection_oracle) {
    static const float SET[9] = {-3.0f, -2.0f, -1.5f, -0.0f, 0.0f, 0.5f, 1.5f, 2.0f, 3.0f};
    enum { G = 2048 };
    static float v[G], ones[G], zeros[G];
    static uint8_t cand[G], want[G];
    uint64_t s = 12345;
    for (uint32_t i = 0; i < G; i++) { ones[i] = 1.0f; zeros[i] = 0.0f; }
    for (int round = 0; round < 6; round++) {
        for (uint32_t i = 0; i < G; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            v[i] = SET[(s >> 33) % 9] * (round % 3 == 2 ? 1.0f : (float)(1 + (s >> 60)));
        }
        int keys = round >= 4;
        float p = round % 2 ? 0.4f : 0.1f;   /* values: m = floor(p/2 * G) = 409 or 102 */
        kvq_quantizer q;
        kvq_quant_config c = {.scheme = keys ? KVQ_QS_STATIC_CHANNEL : KVQ_QS_TOKEN_GROUP, .dim = G, .bits = 2,
                              .lut = LUT2, .group = G, .outlier_fraction = p,
                              .outlier_cap = keys ? (round == 4 ? 102 : 409) : 0,
                              .zero_point = zeros, .half_range = ones};
        init_ok(&q, &c);
        kvq_qtoken t;
        ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
        ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
        uint32_t m = keys ? c.outlier_cap : (uint32_t)floorf(p / 2.0f * (float)G);
        memset(want, 0, sizeof want);
        for (uint32_t i = 0; i < G; i++) cand[i] = keys ? v[i] > 1.0f : 1;
        oracle_pick(v, cand, G, m, +1, want);
        for (uint32_t i = 0; i < G; i++) cand[i] = keys ? v[i] < -1.0f : !want[i];
        oracle_pick(v, cand, G, m, -1, want);
        uint32_t k = 0;
        for (uint32_t i = 0; i < G; i++) {
            if (!want[i]) continue;
            ck_assert_msg(k < t.n_outliers && t.outliers[k].channel == i, "round %d: outlier %u: channel %u, oracle %u",
                          round, k, k < t.n_outliers ? t.outliers[k].channel : 0, i);
            k++;
        }
        ck_assert_uint_eq(t.n_outliers, k);
        kvq_qtoken_free(&t);
        kvq_quantizer_free(&q);
    }
}
END_TEST

START_TEST(test_values_per_head_fp16_scales) {
    const float v[8] = {0.3f, -0.1f, 0.1f, 0.0f, -0.3f, 0.1f, -0.1f, -0.0f};
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 8, .bits = 2, .lut = LUT2, .group = 4};
    init_ok(&q, &c);
    ck_assert_uint_eq(q.n_groups, 2);
    kvq_qtoken t;
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
    ck_assert_uint_eq(t.z[0], 11879);   /* fp16 bits of 0.10003662109375 */
    ck_assert_uint_eq(t.r[0], 12902);   /* fp16 bits of 0.199951171875 */
    ck_assert_uint_eq(t.z[1], 11879 | 0x8000);
    ck_assert_uint_eq(t.r[1], 12902);
    float out[8];
    kvq_quant_decode(&q, &t, out);
    /* head 0 (numpy float32 fma): codes 3, 0, 1, 1 */
    const float want0[4] = {0.29998779296875f, -0.09991455078125f, 6.103515625e-05f, 6.103515625e-05f};
    assert_floats("head0", out, want0, 4);
    /* head 1: x mirrored; -0.1 -> x = +0.0003 -> code 2 -> fmaf(.5, r, -z) = -6.103515625e-05;
     * -0.0 -> x = +0.5003 -> code 2, same value */
    const float want1[4] = {-0.29998779296875f, 0.09991455078125f, -6.103515625e-05f, -6.103515625e-05f};
    assert_floats("head1", out + 4, want1, 4);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}
END_TEST

/* Sink tokens and the in-place path: token at position 0 stays h(x); position 1 is quantized
 * like test_values_token_outliers with p = 0 (no outliers): [-3, 10] -> z 3.5, r 6.5. */
START_TEST(test_apply_sink_and_bits) {
    float x[2][8] = {{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f},
                     {0.5f, -1.0f, 2.0f, 10.0f, 0.0f, -3.0f, 1.0f, 2.0f}};
    float x2[2][8];
    memcpy(x2, x, sizeof x);
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 8, .bits = 2, .lut = LUT2, .group = 8,
                          .n_sink = 1};
    init_ok(&q, &c);
    kvq_bit_tally tally = {0};
    ck_assert_int_eq(kvq_quant_apply(&q, &x[0][0], 2, 0, &tally), KVQ_OK);
    for (int i = 0; i < 8; i++) ck_assert(x[0][i] == kvq_round_f16(x2[0][i]));
    /* levels 3.5 + 6.5*{-1,-.5,.5,1} = -3, 0.25, 6.75, 10; x: -.46 -.69 -.23 1 -.54 -1 -.38 -.23 */
    const float want[8] = {0.25f, 0.25f, 0.25f, 10.0f, 0.25f, -3.0f, 0.25f, 0.25f};
    assert_floats("tok1", x[1], want, 8);
    /* bits: sink 16*8 + codes 2*8 + one fp16 (z, r) pair 32, no pointer (p = 0) = 176 / 16 */
    ck_assert(kvq_bits_total(&tally) == 176.0);
    ck_assert(kvq_bits_per_element(&tally) == 11.0);
    ck_assert_uint_eq(tally.n_sequences, 1);
    /* starting at position 1, no token is a sink token: token 0 gets codes */
    kvq_bit_tally t2 = {0};
    ck_assert_int_eq(kvq_quant_apply(&q, &x2[0][0], 2, 1, &t2), KVQ_OK);
    ck_assert_uint_eq(t2.n_quantized_tokens, 2);
    ck_assert(kvq_bits_total(&t2) == 2 * (16 + 32));
    kvq_quantizer_free(&q);
}
END_TEST

/* Bit accounting of static keys with outliers (hand count): 4 tokens of 6 channels, 1 sink,
 * 3 quantized tokens of KIN (3 outliers each with cap 2): codes 2*6*3 = 36, pointers 3*32 = 96,
 * static z/r 64*6 = 384, outliers 9*32 = 288, sink 16*6 = 96; total 900 over 24 elements. */
START_TEST(test_bits_static_keys) {
    float x[4][6];
    for (int i = 0; i < 4; i++) memcpy(x[i], KIN, sizeof KIN);
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_STATIC_CHANNEL, .dim = 6, .bits = 2, .lut = LUT2,
                          .zero_point = KZ, .half_range = KR, .outlier_fraction = 0.01f,
                          .outlier_cap = 2, .n_sink = 1};
    init_ok(&q, &c);
    kvq_bit_tally t = {0};
    ck_assert_int_eq(kvq_quant_apply(&q, &x[0][0], 4, 0, &t), KVQ_OK);
    ck_assert_uint_eq(t.n_outliers, 9);
    ck_assert(kvq_bits_total(&t) == 900.0);
    ck_assert(kvq_bits_per_element(&t) == 900.0 / 24.0);
    ck_assert(kvq_bits_outlier_rate(&t, 6) == 9.0 / 18.0);
    const float want[6] = {0.5f, 4.0f, 3.0f, -2.0f, 1.0f, -0.5f};
    for (int i = 1; i < 4; i++) assert_floats("row", x[i], want, 6);
    kvq_bit_tally sum = {0};
    kvq_bits_merge(&sum, &t);
    kvq_bits_merge(&sum, &t);
    ck_assert(kvq_bits_total(&sum) == 1800.0 && sum.n_elements == 48);
    kvq_quantizer_free(&q);
}
END_TEST

/* Random vectors: outliers come back exactly as h(x), lists are ascending, at most m per side
 * per group; non-outliers of a uniform grid are within half a step (plus fp32 rounding:
 * 1e-6 relative, well above the few ulps the normalise/fma steps can lose) of h(x). */
START_TEST(test_roundtrip_properties) {
    enum { D = 64, G = 16, TRIALS = 200 };
    float lut[8];
    for (int i = 0; i < 8; i++) lut[i] = -1.0f + 2.0f * (float)i / 7.0f;
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = D, .bits = 3, .lut = lut, .group = G,
                          .outlier_fraction = 0.2f};   /* m = floor(0.1 * 16) = 1 per side */
    init_ok(&q, &c);
    kvq_qtoken t;
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    srand(7);
    for (int trial = 0; trial < TRIALS; trial++) {
        float v[D], out[D];
        for (int i = 0; i < D; i++) v[i] = (float)(rand() % 20001 - 10000) / 997.0f;
        ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
        ck_assert_uint_eq(t.n_outliers, 2 * (D / G));
        kvq_quant_decode(&q, &t, out);
        int is_out[D] = {0};
        for (uint32_t i = 0; i < t.n_outliers; i++) {
            uint32_t ch = t.outliers[i].channel;
            if (i) ck_assert_uint_gt(ch, t.outliers[i - 1].channel);
            is_out[ch] = 1;
            ck_assert(out[ch] == kvq_round_f16(v[ch]));
        }
        for (int i = 0; i < D; i++) {
            if (is_out[i]) continue;
            float r = kvq_f16_to_f32(t.r[i / G]);
            float err = fabsf(out[i] - kvq_round_f16(v[i]));
            ck_assert_msg(err <= r / 7.0f * (1.0f + 1e-3f) + 1e-6f * fabsf(v[i]),
                          "trial %d ch %d err %g r %g", trial, i, (double)err, (double)r);
        }
    }
    float bad[D] = {0};
    bad[5] = NAN;
    ck_assert_int_eq(kvq_quant_encode(&q, bad, &t), KVQ_ERR_NONFINITE);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}
END_TEST

START_TEST(test_bad_configs) {
    kvq_quantizer q;
    char why[128];
    float unsorted[4] = {-1, 0.5f, 0.25f, 1};
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 4, .bits = 2, .lut = unsorted, .group = 4};
    ck_assert_int_eq(kvq_quantizer_init(&q, &c, why, sizeof why), KVQ_ERR_ARG);
    ck_assert(strstr(why, "ascending") != NULL);
    c.lut = LUT2;
    c.bits = 9;
    ck_assert_int_eq(kvq_quantizer_init(&q, &c, why, sizeof why), KVQ_ERR_ARG);
    c.bits = 2;
    c.group = 0;
    ck_assert_int_eq(kvq_quantizer_init(&q, &c, why, sizeof why), KVQ_ERR_ARG);
    float z[4] = {0}, r[4] = {1, 1, 0, 1};
    kvq_quant_config s = {.scheme = KVQ_QS_STATIC_CHANNEL, .dim = 4, .bits = 2, .lut = LUT2,
                          .zero_point = z, .half_range = r};
    ck_assert_int_eq(kvq_quantizer_init(&q, &s, why, sizeof why), KVQ_ERR_ARG);
    ck_assert(strstr(why, "channel 2") != NULL);
    kvq_quantizer_free(&q);
}
END_TEST

/* NF4 levels as published in the QLoRA paper (appendix E, 4 decimals): the oracle for the
 * generalised construction at b = 4; 6e-5 absolute covers the 4-decimal rounding. */
START_TEST(test_nf_levels) {
    static const float nf4[16] = {-1.0f, -0.6962f, -0.5251f, -0.3949f, -0.2844f, -0.1848f,
                                  -0.0911f, 0.0f, 0.0796f, 0.1609f, 0.2461f, 0.3379f, 0.4407f,
                                  0.5626f, 0.7230f, 1.0f};
    float lut[16];
    kvq_nf_lut(4, lut);
    kvq_test_allclose("nf4", lut, nf4, 16, 6e-5, 0);
    for (uint32_t b = 1; b <= 8; b++) {
        float l[256];
        kvq_nf_lut(b, l);
        uint32_t L = 1u << b;
        ck_assert(l[0] == -1.0f && l[L - 1] == 1.0f);
        for (uint32_t i = 1; i < L; i++) ck_assert(l[i] > l[i - 1]);
        if (b > 1) ck_assert(l[L / 2 - 1] == 0.0f);   /* zero is a level */
    }
    float u[8];
    kvq_uniform_lut(3, u);
    ck_assert(u[0] == -1.0f && u[7] == 1.0f && u[1] == (float)(-5.0 / 7.0));
}
END_TEST

/* KIVI's key blocks at a small scale (group 3 tokens, 1 recent token), dim 2, T 8: tokens 0..5
 * quantized per channel in blocks of 3, token 6 (incomplete block) and 7 (recent) fp16.
 * ch0 {0, 2.25, 4}: z 2 r 2, x -1 .125 1 -> 0 3 4; {1,1,1}: r 0 -> 1, x 0 -> code 1 -> 0.5.
 * ch1 {-4, 0, 4}: z 0 r 4 -> -4 -2 4; {8, 9, 10}: z 9 r 1 -> 8 8.5 10. */
START_TEST(test_channel_blocks) {
    float x[8][2] = {{0, -4}, {2.25f, 0}, {4, 4}, {1, 8}, {1, 9}, {1, 10}, {0.1f, 0.1f}, {5, 5}};
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_CHANNEL_BLOCK, .dim = 2, .bits = 2, .lut = LUT2,
                          .group = 3, .n_recent = 1};
    init_ok(&q, &c);
    kvq_bit_tally t = {0};
    ck_assert_int_eq(kvq_quant_apply(&q, &x[0][0], 8, 0, &t), KVQ_OK);
    const float want[8][2] = {{0, -4}, {3, -2}, {4, 4}, {0.5f, 8}, {0.5f, 8.5f}, {0.5f, 10},
                              {0.0999755859375f, 0.0999755859375f}, {5, 5}};
    assert_floats("kivi", &x[0][0], &want[0][0], 16);
    /* codes 6*2*2 = 24, scales 2 blocks * 2 channels * 32 = 128, fp16 2*2*16 = 64 */
    ck_assert(kvq_bits_total(&t) == 216.0);
    ck_assert_uint_eq(t.n_quantized_tokens, 6);
    kvq_quantizer_free(&q);
    c.outlier_fraction = 0.01f;   /* no outliers in token blocks */
    ck_assert_int_eq(kvq_quantizer_init(&q, &c, NULL, 0), KVQ_ERR_UNSUPPORTED);
}
END_TEST

/* A ragged last group (ATOM/FlexGen on a kv_dim the group does not divide): dim 5, groups of 2
 * -> {0,1} {2,3} {4}; the lone element: z = v, r = 0 -> 1, x = 0 -> code 1 -> v - 0.5. */
START_TEST(test_ragged_groups) {
    const float v[5] = {0, 2, -1, 1, 3};
    kvq_quantizer q;
    kvq_quant_config c = {.scheme = KVQ_QS_TOKEN_GROUP, .dim = 5, .bits = 2, .lut = LUT2, .group = 2};
    init_ok(&q, &c);
    ck_assert_uint_eq(q.n_groups, 3);
    kvq_qtoken t;
    ck_assert_int_eq(kvq_qtoken_init(&t, &q), KVQ_OK);
    ck_assert_int_eq(kvq_quant_encode(&q, v, &t), KVQ_OK);
    float out[5];
    kvq_quant_decode(&q, &t, out);
    const float want[5] = {0, 2, -1, 1, 2.5f};
    assert_floats("ragged", out, want, 5);
    kvq_qtoken_free(&t);
    kvq_quantizer_free(&q);
}
END_TEST

/* The methods as configurations: per-channel thresholds from calibration min/max, the stage the
 * keys are quantized at, group sizes and KIVI's window. */
START_TEST(test_baseline_sims) {
    kvq_key_range r;
    ck_assert_int_eq(kvq_key_range_init(&r, 1, 2), KVQ_OK);
    const float cal[2][2] = {{0, 1}, {2, -3}};   /* ch0 [0, 2] -> z 1 r 1; ch1 [-3, 1] -> z -1 r 2 */
    ck_assert_int_eq(kvq_key_range_add(&r, 0, 0, &cal[0][0], 2), KVQ_OK);
    ck_assert_int_eq(kvq_key_range_add(&r, 0, 1, &cal[0][0], 2), KVQ_OK);
    kvq_kv_sim s;
    char why[256];
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_INT_CHAN_PRE, 2, 1, 1, 2, NULL, why, sizeof why), KVQ_ERR_ARG);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_INT_CHAN_PRE, 2, 1, 1, 2, &r, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(s.k_post_rope, 0);
    ck_assert(s.k[0].z[0] == 1.0f && s.k[0].r[0] == 1.0f && s.k[0].z[1] == -1.0f && s.k[0].r[1] == 2.0f);
    /* key (1.5, 1): x = 0.5 -> code 2 (level 1/3) and x = 1 -> code 3; values per token:
     * (1.5, 1) -> z 1.25 r 0.25 -> x 1, -1 -> exact */
    float k[2] = {1.5f, 1.0f}, v[2] = {1.5f, 1.0f}, k2[2] = {1.5f, 1.0f};
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 1, k2, NULL, 1, 1, why, sizeof why), KVQ_OK);
    ck_assert(k2[0] == 1.5f && k2[1] == 1.0f);   /* post-RoPE stage: pre-RoPE keys untouched */
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 0, k, v, 1, 1, why, sizeof why), KVQ_OK);
    ck_assert(k[0] == fmaf((float)(1.0 / 3.0), 1.0f, 1.0f) && k[1] == 1.0f);
    ck_assert(v[0] == 1.5f && v[1] == 1.0f);
    /* bits: keys 2*2 codes + 64*2 static; values 2*2 codes + 32 */
    ck_assert(kvq_bits_total(&s.k_bits) == 132.0 && kvq_bits_total(&s.v_bits) == 36.0);
    kvq_kv_sim_free(&s);
    kvq_kv_sim_free(&s);

    /* kv_dim 192 = 3 heads of 64: ATOM groups 128 + 64, FlexGen 3 x 64, KIVI 32 / 128 recent */
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_ATOM, 3, 2, 3, 64, NULL, why, sizeof why), KVQ_OK);
    ck_assert(s.k_post_rope && s.k[1].n_groups == 2 && s.v[1].n_groups == 2);
    kvq_kv_sim_free(&s);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_FLEXGEN, 3, 2, 3, 64, NULL, why, sizeof why), KVQ_OK);
    ck_assert(s.k[0].n_groups == 3 && s.v[0].n_groups == 3);
    kvq_kv_sim_free(&s);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_KIVI, 2, 1, 3, 64, NULL, why, sizeof why), KVQ_OK);
    ck_assert(s.k[0].cfg.scheme == KVQ_QS_CHANNEL_BLOCK && s.k[0].cfg.group == 32 && s.k[0].cfg.n_recent == 128);
    ck_assert(s.v[0].cfg.scheme == KVQ_QS_TOKEN_GROUP && s.v[0].n_groups == 6 && s.v[0].cfg.n_recent == 128);
    kvq_kv_sim_free(&s);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_NF, 3, 1, 1, 4, NULL, why, sizeof why), KVQ_OK);
    float nf[8];
    kvq_nf_lut(3, nf);
    assert_floats("nf lut", s.v[0].lut, nf, 8);
    kvq_kv_sim_free(&s);
    for (int m = 0; m < KVQ_METHOD_COUNT_; m++) {
        kvq_method back;
        ck_assert_int_eq(kvq_method_parse(kvq_method_name((kvq_method)m), &back), KVQ_OK);
        ck_assert_int_eq(back, m);
    }
    kvq_method dummy;
    ck_assert_int_eq(kvq_method_parse("int5", &dummy), KVQ_ERR_ARG);
    kvq_key_range_free(&r);
}
END_TEST

/* A whole codebook (kvq_kv_sim_init_codebook): keys as test_keys_cap_exact, values per KV head
 * (head_dim 3) with a Q-Norm LUT (scale 2: levels -2 -1 1 2, mids -1.5 0 1.5), one sink token.
 * Values (0, 1, 2 | 4, 4, 4): head 0 z 1 r 1, x -1 0 1 -> codes 1 1 2 -> 0 0 2; head 1 constant:
 * r 0 -> 1, x 0 -> code 1 -> 3. */
START_TEST(test_codebook_sim) {
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    ck_assert_int_eq(kvq_codebook_alloc(&cb, 1, 6, 2, 2, 0), KVQ_OK);
    cb.model.n_layers = 1;
    cb.model.n_kv_heads = 2;
    cb.model.head_dim = 3;
    cb.n_sink = 1;
    kvq_tensor_codebook *k = &cb.layers[0].k, *v = &cb.layers[0].v;
    memcpy(k->centroids, LUT2, sizeof LUT2);
    memcpy(k->zero_point, KZ, sizeof KZ);
    memcpy(k->half_range, KR, sizeof KR);
    k->outlier_fraction = 0.01f;
    k->outlier_cap = 2;
    memcpy(v->centroids, LUT2, sizeof LUT2);
    v->axis = KVQ_NORM_PER_TOKEN_HEAD;
    v->qnorm = 1;
    v->qnorm_scale = 2.0f;
    kvq_kv_sim s;
    char why[256] = "";
    ck_assert_msg(kvq_kv_sim_init_codebook(&s, &cb, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_int_eq(s.k_post_rope, 0);
    float kk[2][6], vv[2][6] = {{0.3f, 0, 0, 0, 0, 0}, {0, 1, 2, 4, 4, 4}};
    memcpy(kk[0], KIN, sizeof KIN);
    memcpy(kk[1], KIN, sizeof KIN);
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 0, &kk[0][0], &vv[0][0], 1, 2, why, sizeof why), KVQ_OK);
    const float sink[6] = {0.25f, 4.0f, 3.0f, -2.0f, 1.5f, -0.125f};
    const float kwant[6] = {0.5f, 4.0f, 3.0f, -2.0f, 1.0f, -0.5f};
    const float vwant[6] = {0, 0, 2, 3, 3, 3};
    assert_floats("k sink", kk[0], sink, 6);
    assert_floats("k", kk[1], kwant, 6);
    ck_assert(vv[0][0] == kvq_round_f16(0.3f));
    assert_floats("v", vv[1], vwant, 6);
    /* keys: sink 96 + codes 12 + pointer 32 + static 384 + 3 outliers 96; values: sink 96 +
     * codes 12 + 2 groups 64 */
    ck_assert(kvq_bits_total(&s.k_bits) == 620.0);
    ck_assert(kvq_bits_total(&s.v_bits) == 172.0);
    kvq_kv_sim_free(&s);
    k->axis = KVQ_NORM_PER_TOKEN;   /* keys must be per channel */
    ck_assert_int_eq(kvq_kv_sim_init_codebook(&s, &cb, why, sizeof why), KVQ_ERR_FORMAT);
    kvq_codebook_free(&cb);
}
END_TEST

/* The per-token baselines on hand-sized tokens. int 2-bit, one token (0, 0.9, 2.2, 3): z = r =
 * 1.5, x = -1, -.4, .47, 1; levels -1 -1/3 1/3 1, mids -2/3 0 2/3 -> codes 0 1 2 3 -> 0 1 2 3.
 * NF 2-bit: levels -1 0 c 1 with c = ppf(0.677083)/ppf(0.854167) = 0.435818 (Python's
 * statistics.NormalDist), mids -.5 .218 .718 -> codes 0 1 2 3 -> 0, 1.5, 1.5 + 1.5c, 3.
 * FlexGen vs int on 3 heads x 64: a ramp 0..63 then 100..163 then 0..63 again; FlexGen's
 * second group spans [100, 163] so its first element comes back exactly (z - r = 100), while
 * per-token int spans [0, 163] and rounds 100 to the level 163 * 2/3. */
START_TEST(test_token_baselines) {
    kvq_kv_sim s;
    char why[256];
    float tok[4] = {0.0f, 0.9f, 2.2f, 3.0f};
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_INT, 2, 1, 1, 4, NULL, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 1, tok, NULL, 1, 1, why, sizeof why), KVQ_OK);
    const float want_int[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    assert_floats("int2", tok, want_int, 4);
    kvq_kv_sim_free(&s);
    float tok2[4] = {0.0f, 0.9f, 2.2f, 3.0f};
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_NF, 2, 1, 1, 4, NULL, why, sizeof why), KVQ_OK);
    ck_assert(fabsf(s.k[0].lut[2] - 0.435818f) < 1e-6f);   /* 1e-6: a few fp32 ulps at 0.44 */
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 1, tok2, NULL, 1, 1, why, sizeof why), KVQ_OK);
    ck_assert(tok2[0] == 0.0f && tok2[1] == 1.5f && tok2[3] == 3.0f);
    ck_assert(tok2[2] == fmaf(s.k[0].lut[2], 1.5f, 1.5f));
    kvq_kv_sim_free(&s);
    float ramp[2][192];
    for (int c = 0; c < 192; c++) ramp[0][c] = ramp[1][c] = (float)(c % 64) + (c / 64 == 1 ? 100.0f : 0.0f);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_FLEXGEN, 2, 1, 3, 64, NULL, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 1, ramp[0], NULL, 1, 1, why, sizeof why), KVQ_OK);
    ck_assert(ramp[0][64] == 100.0f && ramp[0][127] == 163.0f && ramp[0][0] == 0.0f && ramp[0][63] == 63.0f);
    kvq_kv_sim_free(&s);
    ck_assert_int_eq(kvq_kv_sim_init_baseline(&s, KVQ_METHOD_INT, 2, 1, 3, 64, NULL, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_kv_sim_apply(&s, 0, 1, ramp[1], NULL, 1, 1, why, sizeof why), KVQ_OK);
    ck_assert(ramp[1][64] == fmaf(s.k[0].lut[2], 81.5f, 81.5f));   /* z = r = 81.5, x = .227 -> code 2 */
    kvq_kv_sim_free(&s);
}
END_TEST

static Suite *quant_suite(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_code_midpoints);
    tcase_add_test(tc, test_keys_cap_exact);
    tcase_add_test(tc, test_keys_nocap_and_no_outliers);
    tcase_add_test(tc, test_keys_qnorm_lut);
    tcase_add_test(tc, test_values_token_outliers);
    tcase_add_test(tc, test_values_ties_constant);
    tcase_add_test(tc, test_outlier_selection_oracle);
    tcase_add_test(tc, test_values_per_head_fp16_scales);
    tcase_add_test(tc, test_apply_sink_and_bits);
    tcase_add_test(tc, test_bits_static_keys);
    tcase_add_test(tc, test_roundtrip_properties);
    tcase_add_test(tc, test_bad_configs);
    tcase_add_test(tc, test_nf_levels);
    tcase_add_test(tc, test_channel_blocks);
    tcase_add_test(tc, test_ragged_groups);
    tcase_add_test(tc, test_baseline_sims);
    tcase_add_test(tc, test_codebook_sim);
    tcase_add_test(tc, test_token_baselines);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(quant_suite)
