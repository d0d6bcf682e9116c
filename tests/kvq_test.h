/* kvq_test.h — helpers shared by the Check suites: locating ../shared, tolerance comparisons that
 * report the worst element, and a main() macro. Tests that need ../shared skip with a message when
 * it is absent (set KVQ_SHARED to point elsewhere). */
#ifndef KVQ_TEST_H
#define KVQ_TEST_H

#include <check.h>
#include <stddef.h>

/* Full path of `rel` inside the shared folder ($KVQ_SHARED, else ../shared), or NULL when it does
 * not exist. The returned string is static storage (valid until the next call). */
const char *kvq_test_shared(const char *rel);

/* Skip the current test (return from it) when `path` is NULL, printing why. */
#define KVQ_SKIP_IF_MISSING(path, rel)                                                   \
    do {                                                                                 \
        if (!(path)) {                                                                   \
            fprintf(stderr, "SKIP %s: %s not found in shared folder\n", __func__, rel); \
            return;                                                                      \
        }                                                                                \
    } while (0)

/* Compare arrays: passes when |got-ref| <= atol + rtol*|ref| everywhere. On failure the message
 * names the worst element (index, got, ref). Returns the max |got-ref|/(atol+rtol*|ref|). */
double kvq_test_allclose(const char *what, const float *got, const float *ref, size_t n,
                         double atol, double rtol);
/* Relative error in the Frobenius norm: ||got-ref||_2 / ||ref||_2. */
double kvq_test_rel_l2(const float *got, const float *ref, size_t n);

/* The whole file at `path`, NUL-terminated (*len excludes the NUL); fails the test when it cannot
 * be read. The caller frees it. */
char *kvq_test_slurp(const char *path, size_t *len);
/* 1 when the files at a and b exist and hold the same bytes. */
int kvq_test_files_equal(const char *a, const char *b);

/* A temporary directory made for this test run (mkdtemp), removed by nothing: under $TMPDIR. */
const char *kvq_test_tmpdir(void);

/* main() that runs one suite and exits non-zero on failure. */
#define KVQ_TEST_MAIN(suite_fn)                                        \
    int main(void) {                                                   \
        SRunner *sr = srunner_create(suite_fn());                      \
        srunner_run_all(sr, CK_NORMAL);                                \
        int failed = srunner_ntests_failed(sr);                        \
        srunner_free(sr);                                              \
        return failed == 0 ? 0 : 1;                                    \
    }

#endif
