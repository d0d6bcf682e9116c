/* test_ops_grad.c — every backward op of calib/ops.h against central finite differences of its
 * forward op, in double precision, on small random shapes (GQA 3:1 with head_dim 6, and attention
 * longer than one 128-row block); the float instantiation against the double one; the RoPE
 * frequency tables against HF's formulas.
 *
 * Method: for an op y = f(x) and a random weight w, L(x) = sum(w * f(x)) has dL/dx = backward(dout
 * = w). The numerical derivative (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), eps = 1e-6, has a
 * truncation error ~eps^2 |f'''| ~ 1e-12 and a rounding error ~1e-16 |L| / eps ~ 1e-9 for |L| ~ 10,
 * so |fd - analytic| <= 1e-7 + 1e-6 |analytic| holds for correct gradients (measured: worst 0.08 of it),
 * while a wrong term (a missing factor, a transposed index) gives errors of order |analytic|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvq_test.h"
#include "ops.h"

#define FD_EPS 1e-6
#define FD_ATOL 1e-7
#define FD_RTOL 1e-6

static unsigned long long rng_state;
static double urand(void) {   /* uniform in [-1, 1), xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 4503599627370496.0 - 1.0;
}
static double *rand_vec(size_t n, double scale) {
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = scale * urand();
    return v;
}
static double *zeros(size_t n) { return calloc(n, sizeof(double)); }

/* An op under test: loss() evaluates sum(w * f(inputs)) with the current inputs. */
typedef struct fd_op fd_op;
struct fd_op {
    double (*loss)(fd_op *op);
    void *ctx;
};

/* Compare grad (n) with finite differences of op->loss over x (n), checking `checks` elements
 * spread over x (all of them when checks >= n). */
static void fd_check(const char *what, fd_op *op, double *x, const double *grad, size_t n, size_t checks) {
    size_t step = checks >= n ? 1 : n / checks, worst_i = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i += step) {
        double keep = x[i];
        x[i] = keep + FD_EPS;
        double lp = op->loss(op);
        x[i] = keep - FD_EPS;
        double lm = op->loss(op);
        x[i] = keep;
        double fd = (lp - lm) / (2 * FD_EPS), r = fabs(fd - grad[i]) / (FD_ATOL + FD_RTOL * fabs(grad[i]));
        if (!(r <= worst)) { worst = r; worst_i = i; }
    }
    ck_assert_msg(worst <= 1.0, "%s: element %zu: analytic %.12g differs from finite difference "
                  "(error %.3g x tolerance)", what, worst_i, grad[worst_i], worst);
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- float instantiation vs double ---------------------------------------------------------- */

static float *to_f32(const double *x, size_t n) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
/* fp32 rounding of inputs and of sums over a few hundred terms: relative Frobenius error ~1e-6;
 * 1e-5 leaves a margin while catching any real disagreement between the instantiations. */
static void expect_f32_matches(const char *what, const float *got, const double *ref, size_t n) {
    float *rf = to_f32(ref, n);
    double rel = kvq_test_rel_l2(got, rf, n);
    free(rf);
    ck_assert_msg(rel <= 1e-5, "%s: float vs double relative error %.3g", what, rel);
}

/* ---- matmul --------------------------------------------------------------------------------- */

typedef struct { double *out, *inp, *w, *bias, *wt; int N, IC, OC; } mm_ctx;
static double mm_loss(fd_op *op) {
    mm_ctx *c = op->ctx;
    kvq_matmul_forward_f64(c->out, c->inp, c->w, c->bias, c->N, c->IC, c->OC);
    return dot(c->wt, c->out, (size_t)c->N * c->OC);
}

START_TEST(test_matmul) {
    rng_state = 1;
    mm_ctx c = {NULL, NULL, NULL, NULL, NULL, 5, 7, 3};
    size_t ni = (size_t)c.N * c.IC, no = (size_t)c.N * c.OC;
    c.out = zeros(no); c.inp = rand_vec(ni, 1); c.w = rand_vec((size_t)c.OC * c.IC, 1);
    c.bias = rand_vec(c.OC, 1); c.wt = rand_vec(no, 1);
    double *dinp = zeros(ni);
    kvq_matmul_backward_f64(dinp, c.wt, c.w, c.N, c.IC, c.OC);
    fd_op op = {mm_loss, &c};
    fd_check("matmul dinp", &op, c.inp, dinp, ni, ni);

    float *fo = calloc(no, sizeof *fo), *fi = to_f32(c.inp, ni), *fw = to_f32(c.w, (size_t)c.OC * c.IC);
    float *fb = to_f32(c.bias, c.OC), *fwt = to_f32(c.wt, no), *fd = calloc(ni, sizeof *fd);
    kvq_matmul_forward_f64(c.out, c.inp, c.w, c.bias, c.N, c.IC, c.OC);
    kvq_matmul_forward_f32(fo, fi, fw, fb, c.N, c.IC, c.OC);
    kvq_matmul_backward_f32(fd, fwt, fw, c.N, c.IC, c.OC);
    expect_f32_matches("matmul out", fo, c.out, no);
    expect_f32_matches("matmul dinp", fd, dinp, ni);
    free(fo); free(fi); free(fw); free(fb); free(fwt); free(fd);
    free(c.out); free(c.inp); free(c.w); free(c.bias); free(c.wt); free(dinp);
}
END_TEST

/* ---- rmsnorm -------------------------------------------------------------------------------- */

typedef struct { double *out, *rstd, *inp, *w, *wt; int N, C; } rn_ctx;
static double rn_loss(fd_op *op) {
    rn_ctx *c = op->ctx;
    kvq_rmsnorm_forward_f64(c->out, c->rstd, c->inp, c->w, 1e-5, c->N, c->C);
    return dot(c->wt, c->out, (size_t)c->N * c->C);
}

START_TEST(test_rmsnorm) {
    rng_state = 2;
    rn_ctx c = {NULL, NULL, NULL, NULL, NULL, 4, 6};
    size_t n = (size_t)c.N * c.C;
    c.out = zeros(n); c.rstd = zeros(c.N); c.inp = rand_vec(n, 2); c.w = rand_vec(c.C, 1); c.wt = rand_vec(n, 1);
    double *dinp = zeros(n);
    rn_loss(&(fd_op){rn_loss, &c});
    kvq_rmsnorm_backward_f64(dinp, c.wt, c.inp, c.w, c.rstd, c.N, c.C);
    fd_op op = {rn_loss, &c};
    fd_check("rmsnorm dinp", &op, c.inp, dinp, n, n);

    rn_loss(&op);
    float *fo = calloc(n, sizeof *fo), *fr = calloc(c.N, sizeof *fr), *fi = to_f32(c.inp, n);
    float *fw = to_f32(c.w, c.C), *fwt = to_f32(c.wt, n), *fd = calloc(n, sizeof *fd);
    kvq_rmsnorm_forward_f32(fo, fr, fi, fw, 1e-5f, c.N, c.C);
    kvq_rmsnorm_backward_f32(fd, fwt, fi, fw, fr, c.N, c.C);
    expect_f32_matches("rmsnorm out", fo, c.out, n);
    expect_f32_matches("rmsnorm dinp", fd, dinp, n);
    free(fo); free(fr); free(fi); free(fw); free(fwt); free(fd);
    free(c.out); free(c.rstd); free(c.inp); free(c.w); free(c.wt); free(dinp);
}
END_TEST

/* ---- rope ----------------------------------------------------------------------------------- */

typedef struct { double *out, *inp, *cs, *sn, *wt; int B, T, NH, hd; } rp_ctx;
static double rp_loss(fd_op *op) {
    rp_ctx *c = op->ctx;
    kvq_rope_forward_f64(c->out, c->inp, c->cs, c->sn, c->B, c->T, c->NH, c->hd);
    return dot(c->wt, c->out, (size_t)c->B * c->T * c->NH * c->hd);
}

START_TEST(test_rope) {
    rng_state = 3;
    rp_ctx c = {NULL, NULL, NULL, NULL, NULL, 2, 5, 3, 6};
    size_t n = (size_t)c.B * c.T * c.NH * c.hd, nt = (size_t)c.T * c.hd / 2;
    kvq_model_config cfg = {.head_dim = c.hd, .rope_theta = 10000.0f};
    double inv_freq[3];
    ck_assert_int_eq(kvq_rope_inv_freq(inv_freq, &cfg), KVQ_OK);
    c.cs = zeros(nt); c.sn = zeros(nt);
    kvq_rope_tables_f64(c.cs, c.sn, inv_freq, c.T, c.hd);
    c.out = zeros(n); c.inp = rand_vec(n, 1); c.wt = rand_vec(n, 1);
    double *dinp = zeros(n);
    kvq_rope_backward_f64(dinp, c.wt, c.cs, c.sn, c.B, c.T, c.NH, c.hd);
    fd_op op = {rp_loss, &c};
    fd_check("rope dinp", &op, c.inp, dinp, n, n);

    /* Position 0 is the identity; a rotation keeps each pair's norm. */
    rp_loss(&op);
    for (int i = 0; i < c.hd; i++) ck_assert(c.out[i] == c.inp[i]);
    size_t p = ((size_t)1 * c.T + 3) * c.NH * c.hd + 2 * c.hd;   /* window 1, t=3, head 2 */
    for (int i = 0; i < c.hd / 2; i++) {
        double a = hypot(c.inp[p + i], c.inp[p + i + 3]), b = hypot(c.out[p + i], c.out[p + i + 3]);
        ck_assert(fabs(a - b) <= 1e-14);
    }

    float *fo = calloc(n, sizeof *fo), *fi = to_f32(c.inp, n), *fwt = to_f32(c.wt, n), *fd = calloc(n, sizeof *fd);
    float *fc = calloc(nt, sizeof *fc), *fs = calloc(nt, sizeof *fs);
    kvq_rope_tables_f32(fc, fs, inv_freq, c.T, c.hd);
    kvq_rope_forward_f32(fo, fi, fc, fs, c.B, c.T, c.NH, c.hd);
    kvq_rope_backward_f32(fd, fwt, fc, fs, c.B, c.T, c.NH, c.hd);
    expect_f32_matches("rope out", fo, c.out, n);
    expect_f32_matches("rope dinp", fd, dinp, n);
    free(fo); free(fi); free(fwt); free(fd); free(fc); free(fs);
    free(c.out); free(c.inp); free(c.cs); free(c.sn); free(c.wt); free(dinp);
}
END_TEST

/* ---- attention ------------------------------------------------------------------------------ */

typedef struct { double *out, *lse, *q, *k, *v, *scratch, *wt; int B, T, NH, NKV, hd; } at_ctx;
static double at_loss(fd_op *op) {
    at_ctx *c = op->ctx;
    kvq_attention_forward_f64(c->out, c->lse, c->q, c->k, c->v, c->scratch, c->B, c->T, c->NH, c->NKV, c->hd);
    return dot(c->wt, c->out, (size_t)c->B * c->T * c->NH * c->hd);
}

/* FD-check attention of the given shape on `checks` elements of each input, then compare the
 * float instantiation. */
static void check_attention(int B, int T, int NH, int NKV, int hd, size_t checks) {
    at_ctx c = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, B, T, NH, NKV, hd};
    size_t nq = (size_t)B * T * NH * hd, nk = (size_t)B * T * NKV * hd, nl = (size_t)B * NH * T;
    size_t ns = 2 * (size_t)(T < KVQ_ATT_BLOCK ? T : KVQ_ATT_BLOCK) * T;   /* exactly the documented size */
    c.out = zeros(nq); c.lse = zeros(nl); c.scratch = zeros(ns);
    c.q = rand_vec(nq, 1.5); c.k = rand_vec(nk, 1.5); c.v = rand_vec(nk, 1); c.wt = rand_vec(nq, 1);
    double *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    fd_op op = {at_loss, &c};
    at_loss(&op);
    kvq_attention_backward_f64(dq, dk, dv, c.wt, c.q, c.k, c.v, c.lse, c.scratch, B, T, NH, NKV, hd);
    char what[64];
    snprintf(what, sizeof what, "attention T=%d %d:%d hd=%d dq", T, NH, NKV, hd);
    fd_check(what, &op, c.q, dq, nq, checks);
    what[strlen(what) - 1] = 'k';
    fd_check(what, &op, c.k, dk, nk, checks);
    what[strlen(what) - 1] = 'v';
    fd_check(what, &op, c.v, dv, nk, checks);

    at_loss(&op);
    float *fq = to_f32(c.q, nq), *fk = to_f32(c.k, nk), *fv = to_f32(c.v, nk), *fwt = to_f32(c.wt, nq);
    float *fo = calloc(nq, sizeof *fo), *fl = calloc(nl, sizeof *fl), *fs = calloc(ns, sizeof *fs);
    float *fdq = calloc(nq, sizeof *fdq), *fdk = calloc(nk, sizeof *fdk), *fdv = calloc(nk, sizeof *fdv);
    kvq_attention_forward_f32(fo, fl, fq, fk, fv, fs, B, T, NH, NKV, hd);
    kvq_attention_backward_f32(fdq, fdk, fdv, fwt, fq, fk, fv, fl, fs, B, T, NH, NKV, hd);
    expect_f32_matches("attention out", fo, c.out, nq);
    expect_f32_matches("attention lse", fl, c.lse, nl);
    expect_f32_matches("attention dq", fdq, dq, nq);
    expect_f32_matches("attention dk", fdk, dk, nk);
    expect_f32_matches("attention dv", fdv, dv, nk);
    free(fq); free(fk); free(fv); free(fwt); free(fo); free(fl); free(fs); free(fdq); free(fdk); free(fdv);
    free(c.out); free(c.lse); free(c.scratch); free(c.q); free(c.k); free(c.v); free(c.wt);
    free(dq); free(dk); free(dv);
}

START_TEST(test_attention_gqa) {
    rng_state = 4;
    check_attention(2, 5, 3, 1, 6, SIZE_MAX);   /* GQA 3:1, head_dim 6: every element */
    check_attention(1, 7, 4, 2, 4, SIZE_MAX);   /* GQA 2:1 */
    check_attention(1, 4, 2, 2, 2, SIZE_MAX);   /* plain multi-head */
}
END_TEST

/* Longer than one 128-row query block: the blocked path, checked on a sample of elements. */
START_TEST(test_attention_blocks) {
    rng_state = 5;
    check_attention(1, 133, 3, 1, 6, 150);
}
END_TEST

/* Attention output of one row against a direct evaluation of the definition. */
START_TEST(test_attention_definition) {
    rng_state = 6;
    int T = 4, NH = 2, NKV = 1, hd = 2;
    double *q = rand_vec((size_t)T * NH * hd, 1), *k = rand_vec((size_t)T * hd, 1), *v = rand_vec((size_t)T * hd, 1);
    double out[16], lse[8], scratch[32];
    kvq_attention_forward_f64(out, lse, q, k, v, scratch, 1, T, NH, NKV, hd);
    int t = 2, h = 1;   /* row t of head h sees positions 0..t of the only K/V head */
    double s[3], m = -INFINITY, z = 0;
    for (int j = 0; j <= t; j++) {
        s[j] = (q[(t * NH + h) * hd] * k[j * hd] + q[(t * NH + h) * hd + 1] * k[j * hd + 1]) / sqrt(2.0);
        m = fmax(m, s[j]);
    }
    for (int j = 0; j <= t; j++) z += exp(s[j] - m);
    for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int j = 0; j <= t; j++) o += exp(s[j] - m) / z * v[j * hd + d];
        ck_assert(fabs(o - out[(t * NH + h) * hd + d]) <= 1e-14);
    }
    ck_assert(fabs(m + log(z) - lse[h * T + t]) <= 1e-14);
    free(q); free(k); free(v);
}
END_TEST

/* ---- swiglu, residual ----------------------------------------------------------------------- */

typedef struct { double *out, *gate, *up, *wt; size_t n; } sw_ctx;
static double sw_loss(fd_op *op) {
    sw_ctx *c = op->ctx;
    kvq_swiglu_forward_f64(c->out, c->gate, c->up, c->n);
    return dot(c->wt, c->out, c->n);
}

START_TEST(test_swiglu) {
    rng_state = 7;
    sw_ctx c = {NULL, NULL, NULL, NULL, 24};
    c.out = zeros(c.n); c.gate = rand_vec(c.n, 4); c.up = rand_vec(c.n, 2); c.wt = rand_vec(c.n, 1);
    double *dg = zeros(c.n), *du = zeros(c.n);
    kvq_swiglu_backward_f64(dg, du, c.wt, c.gate, c.up, c.n);
    fd_op op = {sw_loss, &c};
    fd_check("swiglu dgate", &op, c.gate, dg, c.n, c.n);
    fd_check("swiglu dup", &op, c.up, du, c.n, c.n);

    sw_loss(&op);
    float *fo = calloc(c.n, sizeof *fo), *fg = to_f32(c.gate, c.n), *fu = to_f32(c.up, c.n), *fwt = to_f32(c.wt, c.n);
    float *fdg = calloc(c.n, sizeof *fdg), *fdu = calloc(c.n, sizeof *fdu);
    kvq_swiglu_forward_f32(fo, fg, fu, c.n);
    kvq_swiglu_backward_f32(fdg, fdu, fwt, fg, fu, c.n);
    expect_f32_matches("swiglu out", fo, c.out, c.n);
    expect_f32_matches("swiglu dgate", fdg, dg, c.n);
    expect_f32_matches("swiglu dup", fdu, du, c.n);
    free(fo); free(fg); free(fu); free(fwt); free(fdg); free(fdu);
    free(c.out); free(c.gate); free(c.up); free(c.wt); free(dg); free(du);
}
END_TEST

typedef struct { double *out, *a, *b, *wt; size_t n; } rs_ctx;
static double rs_loss(fd_op *op) {
    rs_ctx *c = op->ctx;
    kvq_residual_forward_f64(c->out, c->a, c->b, c->n);
    return dot(c->wt, c->out, c->n);
}

START_TEST(test_residual) {
    rng_state = 8;
    rs_ctx c = {NULL, NULL, NULL, NULL, 10};
    c.out = zeros(c.n); c.a = rand_vec(c.n, 1); c.b = rand_vec(c.n, 1); c.wt = rand_vec(c.n, 1);
    double *da = zeros(c.n), *db = zeros(c.n);
    kvq_residual_backward_f64(da, db, c.wt, c.n);
    fd_op op = {rs_loss, &c};
    fd_check("residual da", &op, c.a, da, c.n, c.n);
    fd_check("residual db", &op, c.b, db, c.n, c.n);
    float *fo = calloc(c.n, sizeof *fo), *fa = to_f32(c.a, c.n), *fb = to_f32(c.b, c.n);
    kvq_residual_forward_f32(fo, fa, fb, c.n);
    rs_loss(&op);
    expect_f32_matches("residual out", fo, c.out, c.n);
    free(fo); free(fa); free(fb);
    free(c.out); free(c.a); free(c.b); free(c.wt); free(da); free(db);
}
END_TEST

/* ---- cross-entropy -------------------------------------------------------------------------- */

typedef struct { double *nll, *logits, *wt; int32_t *targets; int N, V; } ce_ctx;
static double ce_loss(fd_op *op) {
    ce_ctx *c = op->ctx;
    kvq_crossentropy_forward_f64(c->nll, c->logits, c->targets, c->N, c->V);
    return dot(c->wt, c->nll, (size_t)c->N);
}

START_TEST(test_crossentropy) {
    rng_state = 9;
    int32_t targets[6] = {3, 0, 6, -1, 2, 5};   /* position 3 has no target */
    ce_ctx c = {NULL, NULL, NULL, targets, 6, 7};
    size_t n = (size_t)c.N * c.V;
    c.nll = zeros(c.N); c.logits = rand_vec(n, 3); c.wt = rand_vec(c.N, 1);
    c.logits[1 * c.V + 2] = 60;   /* a dominant logit: max subtraction keeps it finite */
    double *dl = zeros(n);
    kvq_crossentropy_backward_f64(dl, c.wt, c.logits, targets, c.N, c.V);
    fd_op op = {ce_loss, &c};
    fd_check("crossentropy dlogits", &op, c.logits, dl, n, n);

    /* nll of row 0 by the definition; no target gives 0 and no gradient. */
    ce_loss(&op);
    double z = 0;
    for (int j = 0; j < c.V; j++) z += exp(c.logits[j]);
    ck_assert(fabs(c.nll[0] - (log(z) - c.logits[3])) <= 1e-13);
    ck_assert(c.nll[3] == 0);
    for (int j = 0; j < c.V; j++) ck_assert(dl[3 * c.V + j] == 0);

    float *fn = calloc(c.N, sizeof *fn), *fl = to_f32(c.logits, n), *fwt = to_f32(c.wt, c.N), *fd = calloc(n, sizeof *fd);
    kvq_crossentropy_forward_f32(fn, fl, targets, c.N, c.V);
    kvq_crossentropy_backward_f32(fd, fwt, fl, targets, c.N, c.V);
    expect_f32_matches("crossentropy nll", fn, c.nll, c.N);
    expect_f32_matches("crossentropy dlogits", fd, dl, n);
    free(fn); free(fl); free(fwt); free(fd);
    free(c.nll); free(c.logits); free(c.wt); free(dl);
}
END_TEST

/* ---- RoPE frequencies ----------------------------------------------------------------------- */

/* Oracle: HF transformers' rope init functions ("default", "linear", "llama3") transcribed to
 * numpy and evaluated in float64 with Llama-3.1's parameters (theta 500000, head_dim 128, factor 8,
 * low 1, high 4, original 8192). Index 20 is high-frequency (kept), 32 medium (interpolated), 40
 * low (divided by the factor). */
START_TEST(test_rope_frequencies) {
    kvq_model_config cfg = {.head_dim = 128, .rope_theta = 500000.0f};
    double f[64];
    ck_assert_int_eq(kvq_rope_inv_freq(f, &cfg), KVQ_OK);
    ck_assert(f[0] == 1.0);
    ck_assert(fabs(f[20] / 0.016560440080994446 - 1) < 1e-12);
    ck_assert(fabs(f[32] / 0.001414213562373095 - 1) < 1e-12);
    cfg.rope_scaling = KVQ_ROPE_SCALING_LINEAR;
    cfg.rope_scaling_factor = 4;
    ck_assert_int_eq(kvq_rope_inv_freq(f, &cfg), KVQ_OK);
    ck_assert(fabs(f[32] / (0.001414213562373095 / 4) - 1) < 1e-12);
    cfg.rope_scaling = KVQ_ROPE_SCALING_LLAMA3;
    cfg.rope_scaling_factor = 8;
    cfg.rope_low_freq_factor = 1;
    cfg.rope_high_freq_factor = 4;
    cfg.rope_original_max_pos = 8192;
    ck_assert_int_eq(kvq_rope_inv_freq(f, &cfg), KVQ_OK);
    ck_assert(fabs(f[20] / 0.016560440080994446 - 1) < 1e-12);
    ck_assert(fabs(f[32] / 0.0005248461609929547 - 1) < 1e-12);
    ck_assert(fabs(f[40] / 3.428102195952591e-05 - 1) < 1e-12);
    cfg.rope_high_freq_factor = 1;   /* high must exceed low */
    ck_assert_int_eq(kvq_rope_inv_freq(f, &cfg), KVQ_ERR_ARG);
    cfg.head_dim = 7;
    ck_assert_int_eq(kvq_rope_inv_freq(f, &cfg), KVQ_ERR_ARG);
}
END_TEST

static Suite *ops_grad_suite(void) {
    Suite *s = suite_create("ops_grad");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention_gqa);
    tcase_add_test(tc, test_attention_blocks);
    tcase_add_test(tc, test_attention_definition);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_residual);
    tcase_add_test(tc, test_crossentropy);
    tcase_add_test(tc, test_rope_frequencies);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(ops_grad_suite)
