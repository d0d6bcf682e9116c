/* util_test.c — implementation of the shared test helpers in kvq_test.h. */
#include "kvq_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *kvq_test_shared(const char *rel) {
    static char buf[4096];
    const char *root = getenv("KVQ_SHARED");
    if (!root || !*root) root = "../shared";
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

double kvq_test_allclose(const char *what, const float *got, const float *ref, size_t n,
                         double atol, double rtol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs((double)ref[i]);
        double err = fabs((double)got[i] - (double)ref[i]);
        double r = isnan(err) ? INFINITY : err / tol;
        if (r > worst || (i == 0 && isnan(r))) { worst = r; wi = i; }
    }
    if (n) ck_assert_msg(worst <= 1.0, "%s: worst element %zu: got %.9g ref %.9g (atol %g rtol %g)",
                         what, wi, (double)got[wi], (double)ref[wi], atol, rtol);
    return worst;
}

double kvq_test_rel_l2(const float *got, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

const char *kvq_test_tmpdir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kvq-test-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
    return dir;
}

char *kvq_test_slurp(const char *path, size_t *len) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    ck_assert_msg(f != NULL, "cannot open %s", path ? path : "(null)");
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    ck_assert(n >= 0 && fseek(f, 0, SEEK_SET) == 0);
    char *b = malloc((size_t)n + 1);
    ck_assert(b != NULL);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

int kvq_test_files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb, c = 0;
    while (eq && (c = getc(fa)) != EOF) eq = getc(fb) == c;
    if (eq) eq = getc(fb) == EOF;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}
