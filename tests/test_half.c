/* test_half.c — fp16/bf16 conversions: exhaustive fp16 round trip, and fp32 -> fp16 rounding
 * checked against the compiler's _Float16 conversion (an independent RNE implementation). */
#include <math.h>
#include <stdlib.h>

#include "kvq_half.h"
#include "kvq_test.h"

START_TEST(test_f16_roundtrip_exhaustive) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kvq_f16_to_f32((uint16_t)h);
        if (isnan(f)) { ck_assert(((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF)); continue; }
        ck_assert_uint_eq(kvq_f32_to_f16(f), h);
    }
}
END_TEST

START_TEST(test_f32_to_f16_matches_compiler) {
    srand(11);
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = ((uint32_t)rand() << 16) ^ (uint32_t)rand();
        if (i & 1) u = (u & 0x87FFFFFFu) | 0x30000000u; /* bias towards the fp16 range */
        float f = kvq_bits_f32(u);
        if (isnan(f)) continue;
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        ck_assert_msg(kvq_f32_to_f16(f) == rb, "f=%a got %04x ref %04x", (double)f, kvq_f32_to_f16(f), rb);
    }
}
END_TEST

START_TEST(test_bf16) {
    ck_assert(kvq_bf16_to_f32(kvq_f32_to_bf16(1.0f)) == 1.0f);
    ck_assert(kvq_bf16_to_f32(0x3F80) == 1.0f);
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: RNE picks the even mantissa (1.0) */
    ck_assert(kvq_bf16_to_f32(kvq_f32_to_bf16(1.0f + 1.0f / 256)) == 1.0f);
    ck_assert(kvq_bf16_to_f32(kvq_f32_to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
    ck_assert(isnan(kvq_bf16_to_f32(kvq_f32_to_bf16(NAN))));
    ck_assert(isinf(kvq_bf16_to_f32(kvq_f32_to_bf16(INFINITY))));
}
END_TEST

static Suite *half_suite(void) {
    Suite *s = suite_create("half");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_f16_roundtrip_exhaustive);
    tcase_add_test(tc, test_f32_to_f16_matches_compiler);
    tcase_add_test(tc, test_bf16);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(half_suite)
