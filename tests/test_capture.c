/* test_capture.c — the capture file layer: SHA-256 (FIPS 180-4 vectors, and the shared folder's
 * SHA256SUMS as an independent oracle), the seeded RNG (published splitmix64 outputs; xoshiro256**
 * outputs from a Python transcription of the authors' reference C), and the HDF5 writer/reader/
 * merge on synthetic samples. Crash safety is in test_capture_resume.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvq_test.h"
#include "rng.h"
#include "sha256.h"

static void sha_hex(const void *data, size_t len, char hex[65]) {
    kvq_sha256 c;
    uint8_t d[32];
    kvq_sha256_init(&c);
    kvq_sha256_update(&c, data, len);
    kvq_sha256_final(&c, d);
    kvq_sha256_hex(d, hex);
}

START_TEST(test_sha256_vectors) {
    char hex[65];
    sha_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m448, strlen(m448), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces to exercise the block buffering */
    kvq_sha256 c;
    uint8_t d[32], buf[997];
    memset(buf, 'a', sizeof buf);
    kvq_sha256_init(&c);
    size_t left = 1000000;
    for (size_t piece = 1; left; piece = piece % 997 + 1) {
        size_t n = piece < left ? piece : left;
        kvq_sha256_update(&c, buf, n);
        left -= n;
    }
    kvq_sha256_final(&c, d);
    kvq_sha256_hex(d, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(test_sha256_file_matches_sha256sums) {
    const char *p = kvq_test_shared("data/text/wiki.valid.raw");
    KVQ_SKIP_IF_MISSING(p, "data/text/wiki.valid.raw");
    char hex[65], why[256] = "";
    ck_assert_int_eq(kvq_sha256_file(p, hex, why, sizeof why), KVQ_OK);
    /* ../shared/SHA256SUMS, written by sha256sum */
    ck_assert_str_eq(hex, "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7");
    ck_assert_int_eq(kvq_sha256_file("/nonexistent/x", hex, why, sizeof why), KVQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent/x"));
}
END_TEST

START_TEST(test_rng_reference_values) {
    uint64_t st = 0;
    ck_assert_uint_eq(kvq_splitmix64(&st), 0xe220a8397b1dcdafull);
    ck_assert_uint_eq(kvq_splitmix64(&st), 0x6e789e6aa1b965f4ull);
    ck_assert_uint_eq(kvq_splitmix64(&st), 0x06c45d188009454full);
    kvq_rng r;
    kvq_rng_seed(&r, 0);
    const uint64_t want[5] = {0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull, 0x1a5f849d4933e6e0ull,
                              0x6aa594f1262d2d2cull, 0xbba5ad4a1f842e59ull};
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(kvq_rng_next(&r), want[i]);
}
END_TEST

START_TEST(test_rng_below_uniform) {
    kvq_rng r;
    kvq_rng_seed(&r, 42);
    enum { N = 7, DRAWS = 70000 };
    int hist[N] = {0};
    for (int i = 0; i < DRAWS; i++) {
        uint64_t x = kvq_rng_below(&r, N);
        ck_assert_uint_lt(x, N);
        hist[x]++;
    }
    /* each bin ~ Binomial(70000, 1/7): mean 10000, sd ~93; 6 sd never fails by chance */
    for (int i = 0; i < N; i++) ck_assert_int_lt(abs(hist[i] - 10000), 560);
    ck_assert_uint_eq(kvq_rng_below(&r, 0), 0);
    ck_assert_uint_eq(kvq_rng_below(&r, 1), 0);
    double u = kvq_rng_uniform(&r);
    ck_assert(u >= 0 && u < 1);
}
END_TEST

static Suite *capture_suite(void) {
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_sha256_file_matches_sha256sums);
    tcase_add_test(tc, test_rng_reference_values);
    tcase_add_test(tc, test_rng_below_uniform);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(capture_suite)
