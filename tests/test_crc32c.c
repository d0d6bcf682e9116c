/* test_crc32c.c — CRC-32C against the standard check value and the bytewise definition. */
#include <stdlib.h>

#include "crc32c.h"
#include "kvq_test.h"

static uint32_t crc_bitwise(const unsigned char *p, size_t n) {
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

START_TEST(test_check_value) {
    ck_assert_uint_eq(kvq_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(kvq_crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_against_bitwise_any_alignment) {
    unsigned char buf[1031];
    srand(7);
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)rand();
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 37) {
            ck_assert_uint_eq(kvq_crc32c(0, buf + off, n), crc_bitwise(buf + off, n));
            /* continuation equals one pass */
            uint32_t part = kvq_crc32c(kvq_crc32c(0, buf + off, n / 3), buf + off + n / 3, n - n / 3);
            ck_assert_uint_eq(part, crc_bitwise(buf + off, n));
        }
}
END_TEST

static Suite *crc_suite(void) {
    Suite *s = suite_create("crc32c");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_check_value);
    tcase_add_test(tc, test_against_bitwise_any_alignment);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(crc_suite)
