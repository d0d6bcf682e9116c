/* test_quant.c — the quantization reference (codebook/quant.c, docs/quantization.md) and bit
 * accounting (codebook/bits.c) against hand-computed results. The oracle of each expected value
 * is the spec's arithmetic worked by hand on small vectors chosen so that every intermediate is
 * exact in fp32 (the few that are not were worked with numpy float16/float32, noted beside
 * them). Comparisons are exact (==): the reference must be bit-exact, that is its purpose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    kvq_quant_lut(&t, lut);
    for (int i = 0; i < 4; i++) ck_assert(lut[i] == fmaf(cent[i], 1.25f, 0.1f));
    ck_assert(lut[0] == -1.15f && lut[3] == 1.35f);
    t.qnorm = 0;
    kvq_quant_lut(&t, lut);
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

static Suite *quant_suite(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_code_midpoints);
    tcase_add_test(tc, test_keys_cap_exact);
    tcase_add_test(tc, test_keys_nocap_and_no_outliers);
    tcase_add_test(tc, test_keys_qnorm_lut);
    tcase_add_test(tc, test_values_token_outliers);
    tcase_add_test(tc, test_values_ties_constant);
    tcase_add_test(tc, test_values_per_head_fp16_scales);
    tcase_add_test(tc, test_apply_sink_and_bits);
    tcase_add_test(tc, test_bits_static_keys);
    tcase_add_test(tc, test_roundtrip_properties);
    tcase_add_test(tc, test_bad_configs);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(quant_suite)
