/* test_engine_cuda.c — the CUDA engine (kernels/kvq_engine_cuda.h) and its kernels
 * (kernels/engine_cuda_ops.h), run by `make test-gpu` on a machine with an NVIDIA GPU:
 *  - each GPU op against its CPU twin (calib/ops.h, the CPU engine's) on random inputs of awkward
 *    sizes: odd row counts, non-power-of-two head_dim, GQA, T not a multiple of the attention chunk;
 *  - the whole engine in fp32 math against the golden tensors of HF transformers
 *    (../shared/reference, both models) and against the CPU engine on a synthetic GQA model with
 *    two windows and a small attention chunk;
 *  - bf16 math against fp32 math (figures printed; a loose sanity bound asserted);
 *  - `kvq capture`'s loop on --device cuda against --device cpu (kvq-tiny-15m, the same file).
 * Norm: relative Frobenius error ||got-ref|| / ||ref|| per tensor (kvq_test_rel_l2). Tolerances:
 * 1e-5 for single ops (same formulas in fp32; only exp/rounding/summation order differ), 1e-4 for
 * activations and 1e-3 for gradients of whole models (as test_engine_ref.c, and the 1e-3).
 * Skips (with a message) when no CUDA device is present. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "capture.h"
#include "engine.h"
#include "engine_backend.h"
#include "engine_cuda_ops.h"
#include "kvq_engine_cuda.h"
#include "kvq_half.h"
#include "kvq_test.h"
#include "ops.h"
#include "rng.h"
#include "synth.h"
#include "util_h5.h"

/* tests/gpu/blas_handle.c */
int kvq_cu_test_blas_create(void **h);
void kvq_cu_test_blas_destroy(void *h);

static int have_gpu(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        fprintf(stderr, "SKIP: no CUDA device\n");
        return 0;
    }
    return 1;
}

static float *rnd(size_t n, uint64_t seed, float scale) {
    kvq_rng r;
    kvq_rng_seed(&r, seed);
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)(2 * kvq_rng_uniform(&r) - 1);
    return p;
}

/* Device copy of a host array (n floats). */
static float *up(const float *h, size_t n) {
    void *d = NULL;
    ck_assert(cudaMalloc(&d, n * 4 + 4) == cudaSuccess);
    if (h) ck_assert(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    else ck_assert(cudaMemset(d, 0, n * 4) == cudaSuccess);
    return d;
}

/* Host copy of a device array, freeing the device one. */
static float *down(float *d, size_t n) {
    float *h = malloc(n * 4);
    ck_assert(cudaDeviceSynchronize() == cudaSuccess);
    ck_assert(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaFree(d);
    return h;
}

static void expect_rel(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double rel = kvq_test_rel_l2(got, ref, n);
    if (getenv("KVQ_TEST_VERBOSE")) fprintf(stderr, "%-30s rel %.3g\n", what, rel);
    ck_assert_msg(rel <= tol, "%s: relative Frobenius error %.3g > %.3g", what, rel, tol);
}

/* ---- single ops --------------------------------------------------------------------------- */

START_TEST(test_rmsnorm_swiglu_residual) {
    if (!have_gpu()) return;
    int N = 37, C = 100;
    size_t n = (size_t)N * C;
    float *x = rnd(n, 1, 2), *w = rnd(C, 2, 1), *g = rnd(n, 3, 1), *dx0 = rnd(n, 4, 1);
    float *y = malloc(n * 4), *rs = malloc(N * 4), *dx = malloc(n * 4);
    memcpy(dx, dx0, n * 4);
    kvq_rmsnorm_forward_f32(y, rs, x, w, 1e-5f, N, C);
    kvq_rmsnorm_backward_f32(dx, g, x, w, rs, N, C);
    float *dX = up(x, n), *dW = up(w, C), *dY = up(NULL, n), *dR = up(NULL, N), *dG = up(g, n), *dDX = up(dx0, n);
    kvq_cu_rmsnorm_forward(dY, dR, dX, dW, 1e-5f, N, C, NULL);
    kvq_cu_rmsnorm_backward(dDX, dG, dX, dW, dR, N, C, NULL);   /* accumulates onto dx0, as the CPU op */
    float *gy = down(dY, n), *gr = down(dR, N), *gdx = down(dDX, n);
    expect_rel("rmsnorm forward", gy, y, n, 1e-5);
    expect_rel("rmsnorm rstd", gr, rs, N, 1e-5);
    expect_rel("rmsnorm backward (+=)", gdx, dx, n, 1e-5);
    /* SwiGLU and the residual on the same buffers. */
    float *o = malloc(n * 4), *dg = calloc(n, 4), *du = calloc(n, 4), *r = malloc(n * 4);
    kvq_swiglu_forward_f32(o, x, g, n);
    kvq_swiglu_backward_f32(dg, du, dx0, x, g, n);
    kvq_residual_forward_f32(r, x, g, n);
    float *dO = up(NULL, n), *dDg = up(NULL, n), *dDu = up(NULL, n), *dRes = up(NULL, n), *dD0 = up(dx0, n);
    dX = up(x, n);
    dG = up(g, n);
    kvq_cu_swiglu_forward(dO, dX, dG, n, NULL);
    kvq_cu_swiglu_backward(dDg, dDu, dD0, dX, dG, n, NULL);
    kvq_cu_residual_forward(dRes, dX, dG, n, NULL);
    float *go = down(dO, n), *gdg = down(dDg, n), *gdu = down(dDu, n), *gres = down(dRes, n);
    expect_rel("swiglu forward", go, o, n, 1e-5);
    expect_rel("swiglu backward gate", gdg, dg, n, 1e-5);
    expect_rel("swiglu backward up", gdu, du, n, 1e-5);
    expect_rel("residual", gres, r, n, 0);
    cudaFree(dX); cudaFree(dW); cudaFree(dG); cudaFree(dD0);
    free(x); free(w); free(g); free(dx0); free(y); free(rs); free(dx); free(gy); free(gr); free(gdx);
    free(o); free(dg); free(du); free(r); free(go); free(gdg); free(gdu); free(gres);
}
END_TEST

START_TEST(test_rope_embed) {
    if (!have_gpu()) return;
    int B = 2, T = 13, NH = 3, hd = 10, half = hd / 2;
    size_t n = (size_t)B * T * NH * hd;
    kvq_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.head_dim = hd;
    cfg.rope_theta = 10000;
    cfg.rope_scaling_factor = 1;
    double inv[5];
    ck_assert_int_eq(kvq_rope_inv_freq(inv, &cfg), KVQ_OK);
    float cs[13 * 5], sn[13 * 5];
    kvq_rope_tables_f32(cs, sn, inv, T, hd);
    float *x = rnd(n, 5, 1), *g = rnd(n, 6, 1), *y = malloc(n * 4), *dx = calloc(n, 4);
    kvq_rope_forward_f32(y, x, cs, sn, B, T, NH, hd);
    kvq_rope_backward_f32(dx, g, cs, sn, B, T, NH, hd);
    float *dC = up(cs, (size_t)T * half), *dS = up(sn, (size_t)T * half), *dX = up(x, n), *dG = up(g, n);
    float *dY = up(NULL, n), *dDX = up(NULL, n);
    kvq_cu_rope_forward(dY, dX, dC, dS, B, T, NH, hd, NULL);
    kvq_cu_rope_backward(dDX, dG, dC, dS, B, T, NH, hd, NULL);
    kvq_cu_rope_forward(dX, dX, dC, dS, B, T, NH, hd, NULL);   /* in place */
    float *gy = down(dY, n), *gdx = down(dDX, n), *gin = down(dX, n);
    expect_rel("rope forward", gy, y, n, 1e-6);
    expect_rel("rope forward in place", gin, y, n, 1e-6);
    expect_rel("rope backward", gdx, dx, n, 1e-6);
    /* Embedding from a bf16 table: the oracle is kvq_half.h's conversion of the same bits. */
    int V = 11, C = 7, N = 5;
    int32_t tok[5] = {10, 0, 3, 3, 7};
    uint16_t tab[77];
    float want[35];
    for (int i = 0; i < V * C; i++) tab[i] = kvq_f32_to_bf16(0.37f * (float)(i - 30));
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) want[i * C + c] = kvq_bf16_to_f32(tab[tok[i] * C + c]);
    void *dTab, *dTok;
    ck_assert(cudaMalloc(&dTab, sizeof tab) == cudaSuccess && cudaMalloc(&dTok, sizeof tok) == cudaSuccess);
    ck_assert(cudaMemcpy(dTab, tab, sizeof tab, cudaMemcpyHostToDevice) == cudaSuccess);
    ck_assert(cudaMemcpy(dTok, tok, sizeof tok, cudaMemcpyHostToDevice) == cudaSuccess);
    float *dE = up(NULL, (size_t)N * C);
    kvq_cu_embed(dE, dTok, dTab, KVQ_CU_BF16, N, C, NULL);
    float *ge = down(dE, (size_t)N * C);
    ck_assert(!memcmp(ge, want, sizeof want));
    cudaFree(dTab); cudaFree(dTok); cudaFree(dC); cudaFree(dS); cudaFree(dG);
    free(x); free(g); free(y); free(dx); free(gy); free(gdx); free(gin); free(ge);
}
END_TEST

START_TEST(test_crossentropy) {
    if (!have_gpu()) return;
    int N = 29, V = 1001;
    size_t n = (size_t)N * V;
    float *lg = rnd(n, 7, 4), *nll = malloc(N * 4), *dl = calloc(n, 4), dnll[29];
    int32_t tg[29];
    for (int i = 0; i < N; i++) { tg[i] = i % 7 == 6 ? -1 : (i * 131) % V; dnll[i] = i == 3 ? 0 : 1.0f / 28; }
    kvq_crossentropy_forward_f32(nll, lg, tg, N, V);
    kvq_crossentropy_backward_f32(dl, dnll, lg, tg, N, V);
    float *dL = up(lg, n), *dN = up(NULL, N), *dD = up(dnll, N);
    void *dT;
    ck_assert(cudaMalloc(&dT, sizeof tg) == cudaSuccess);
    ck_assert(cudaMemcpy(dT, tg, sizeof tg, cudaMemcpyHostToDevice) == cudaSuccess);
    kvq_cu_ce_forward(dN, dL, dT, N, V, NULL);
    kvq_cu_ce_backward_inplace(dL, dD, dT, N, V, NULL);
    float *gn = down(dN, N), *gd = down(dL, n);
    expect_rel("cross-entropy forward", gn, nll, N, 1e-6);
    expect_rel("cross-entropy backward", gd, dl, n, 1e-5);
    cudaFree(dT); cudaFree(dD);
    free(lg); free(nll); free(dl); free(gn); free(gd);
}
END_TEST

/* Attention with GQA 3:1, head_dim 24, T = 45 in chunks of 16 (the last chunk has 13 rows). */
static void attention_case(int tf32, double tol) {
    void *blas = NULL;
    ck_assert_int_eq(kvq_cu_test_blas_create(&blas), 0);
    int B = 2, T = 45, NH = 6, NKV = 2, hd = 24, chunk = 16;
    size_t nq = (size_t)B * T * NH * hd, nk = (size_t)B * T * NKV * hd, nl = (size_t)B * NH * T;
    float *q = rnd(nq, 8, 1), *k = rnd(nk, 9, 1), *v = rnd(nk, 10, 1), *g = rnd(nq, 11, 1);
    float *o = malloc(nq * 4), *lse = malloc(nl * 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
    float *scr = malloc((size_t)2 * T * T * 4);
    kvq_attention_forward_f32(o, lse, q, k, v, scr, B, T, NH, NKV, hd);
    kvq_attention_backward_f32(dq, dk, dv, g, q, k, v, lse, scr, B, T, NH, NKV, hd);
    float *dQ = up(q, nq), *dK = up(k, nk), *dV = up(v, nk), *dG = up(g, nq), *dO = up(NULL, nq), *dL = up(NULL, nl);
    float *dDQ = up(NULL, nq), *dDK = up(NULL, nk), *dDV = up(NULL, nk), *dS = up(NULL, (size_t)2 * NH * chunk * T);
    ck_assert_int_eq(kvq_cu_attention_forward(blas, tf32, dO, dL, dQ, dK, dV, dS, chunk, B, T, NH, NKV, hd, NULL), 0);
    ck_assert_int_eq(kvq_cu_attention_backward(blas, tf32, dDQ, dDK, dDV, dG, dQ, dK, dV, dL, dS, chunk, B, T, NH, NKV,
                                               hd, NULL), 0);
    float *go = down(dO, nq), *gl = down(dL, nl), *gq = down(dDQ, nq), *gk = down(dDK, nk), *gv = down(dDV, nk);
    expect_rel(tf32 ? "attention out (tf32)" : "attention out", go, o, nq, tol);
    expect_rel("attention lse", gl, lse, nl, tol);
    expect_rel("attention dq", gq, dq, nq, tol);
    expect_rel("attention dk", gk, dk, nk, tol);
    expect_rel("attention dv", gv, dv, nk, tol);
    kvq_cu_test_blas_destroy(blas);
    cudaFree(dQ); cudaFree(dK); cudaFree(dV); cudaFree(dG); cudaFree(dS);
    free(q); free(k); free(v); free(g); free(o); free(lse); free(dq); free(dk); free(dv); free(scr);
    free(go); free(gl); free(gq); free(gk); free(gv);
}

START_TEST(test_attention_chunked_gqa) {
    if (!have_gpu()) return;
    attention_case(0, 1e-5);
    /* TF32 (bf16 math's attention) keeps 10 mantissa bits: ~1e-3 relative per product. */
    attention_case(1, 5e-3);
}
END_TEST

/* ---- whole engine ------------------------------------------------------------------------- */

static kvq_gpu_engine *gpu_engine(const kvq_model *m, int B, int T, kvq_gpu_math math, int chunk, int fisher) {
    kvq_gpu_engine_opts o = {B, T, math, 1, 1, fisher, chunk, 0};
    kvq_gpu_engine *e = NULL;
    char why[512] = "";
    kvq_status st = kvq_gpu_engine_init(&e, m, &o, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "GPU engine init: %s: %s", kvq_status_name(st), why);
    return e;
}

static void run_gpu(kvq_gpu_engine *e, const int32_t *ids, int nb, double *loss) {
    char why[512] = "";
    kvq_status st = kvq_gpu_engine_forward(e, ids, nb, loss, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "GPU forward: %s", why);
    st = kvq_gpu_engine_backward(e, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "GPU backward: %s", why);
}

static void expect_h5(hid_t h5, const char *name, const float *got, size_t n, double tol) {
    size_t m = 0;
    float *ref = kvq_test_h5_read_float(h5, name, &m);
    ck_assert_msg(ref && m == n, "read %s (%zu elements, engine %zu)", name, m, n);
    expect_rel(name, got, ref, n, tol);
    free(ref);
}

static void check_reference(const char *model_rel, const char *fallback, const char *h5_rel) {
    if (!have_gpu()) return;
    const char *p = kvq_test_shared(h5_rel);
    KVQ_SKIP_IF_MISSING(p, h5_rel);
    hid_t h5 = kvq_test_h5_open(p);
    ck_assert(h5 >= 0);
    const char *mp = kvq_test_shared(model_rel);
    if (!mp) mp = fallback;
    KVQ_SKIP_IF_MISSING(mp, model_rel);
    kvq_model m;
    char why[512];
    ck_assert_msg(kvq_model_load(mp, &m, why, sizeof why) == KVQ_OK, "%s: %s", mp, why);
    size_t T = 0;
    int32_t *ids = kvq_test_h5_read_int(h5, "input_ids", &T);
    ck_assert(ids != NULL);
    /* Two copies of the window, attention chunks of 48 rows (T = 128 or 96: a partial last chunk
     * for 128), so batching and chunking are both exercised against the oracle. */
    int32_t *two = malloc(2 * T * sizeof *two);
    memcpy(two, ids, T * 4);
    memcpy(two + T, ids, T * 4);
    kvq_gpu_engine *e = gpu_engine(&m, 2, (int)T, KVQ_GPU_FP32, 48, 0);
    double loss, ref_loss;
    run_gpu(e, two, 2, &loss);
    ck_assert_int_eq(kvq_test_h5_attr_double(h5, "/", "loss", &ref_loss), 0);
    ck_assert_msg(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "loss %.9g, reference %.9g", loss, ref_loss);
    expect_h5(h5, "token_nll", kvq_gpu_engine_nll(e) + T, T - 1, 1e-4);
    size_t kvd = (size_t)m.cfg.n_kv_heads * m.cfg.head_dim, n = T * kvd;
    char name[64];
    for (int l = 0; l < m.cfg.n_layers; l++)
        for (int b = 0; b < 2; b++) {
            snprintf(name, sizeof name, "layers/%03d/k_pre_rope", l);
            expect_h5(h5, name, kvq_gpu_engine_k_pre_rope(e, l) + b * n, n, 1e-4);
            snprintf(name, sizeof name, "layers/%03d/v", l);
            expect_h5(h5, name, kvq_gpu_engine_v(e, l) + b * n, n, 1e-4);
            snprintf(name, sizeof name, "layers/%03d/k_pre_rope_grad", l);
            expect_h5(h5, name, kvq_gpu_engine_k_pre_rope_grad(e, l) + b * n, n, 1e-3);
            snprintf(name, sizeof name, "layers/%03d/v_grad", l);
            expect_h5(h5, name, kvq_gpu_engine_v_grad(e, l) + b * n, n, 1e-3);
        }
    kvq_gpu_engine_free(e);
    free(two);
    free(ids);
    kvq_test_h5_close(h5);
    kvq_model_free(&m);
}

START_TEST(test_tiny_reference) {
    check_reference("models/kvq-tiny-15m", "data/models/kvq-tiny-15m", "reference/kvq-tiny-15m.h5");
}
END_TEST

START_TEST(test_stories_reference) {
    check_reference("models/stories260K/hf", NULL, "reference/stories260K.h5");
}
END_TEST

/* The synthetic tiny shape (GQA 3:1, head_dim 48, vocab 1000) in f16 storage, two different
 * windows of T = 40 in attention chunks of 16: GPU fp32 math against the CPU engine; Fisher mode
 * returns the squares; bf16 math against fp32 math (figures printed). */
START_TEST(test_synth_vs_cpu_and_bf16) {
    if (!have_gpu()) return;
    char dir[1024], why[512];
    snprintf(dir, sizeof dir, "%s/synth-f16", kvq_test_tmpdir());
    kvq_synth_opts so = {"tiny", KVQ_ST_F16, 5, 3, 0};
    ck_assert_msg(kvq_synth_write(dir, &so, NULL, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_model m;
    ck_assert_msg(kvq_model_load(dir, &m, why, sizeof why) == KVQ_OK, "%s", why);
    int B = 2, T = 40;
    int32_t ids[80];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 389 + 17) % 1000;
    kvq_engine *cpu;
    kvq_engine_opts co = {B, T, 1};
    ck_assert(kvq_engine_init(&cpu, &m, &co, why, sizeof why) == KVQ_OK);
    double lc, lg, lf, lb;
    ck_assert(kvq_engine_forward(cpu, ids, B, &lc, why, sizeof why) == KVQ_OK);
    ck_assert(kvq_engine_backward(cpu, why, sizeof why) == KVQ_OK);
    kvq_gpu_engine *g = gpu_engine(&m, B, T, KVQ_GPU_FP32, 16, 0), *f = gpu_engine(&m, B, T, KVQ_GPU_FP32, 16, 1);
    kvq_gpu_engine *h = gpu_engine(&m, B, T, KVQ_GPU_BF16, 0, 0);
    run_gpu(g, ids, B, &lg);
    run_gpu(f, ids, B, &lf);
    run_gpu(h, ids, B, &lb);
    ck_assert_msg(fabs(lg - lc) <= 1e-5 * fabs(lc) && lf == lg, "loss gpu %.9g cpu %.9g fisher %.9g", lg, lc, lf);
    expect_rel("nll", kvq_gpu_engine_nll(g), kvq_engine_nll(cpu), (size_t)B * T, 1e-4);
    size_t n = (size_t)B * T * 96;
    float *sq = malloc(n * 4);
    double worst_bf16 = 0;
    for (int l = 0; l < 3; l++) {
        expect_rel("synth k_pre_rope", kvq_gpu_engine_k_pre_rope(g, l), kvq_engine_k_pre_rope(cpu, l), n, 1e-4);
        expect_rel("synth v", kvq_gpu_engine_v(g, l), kvq_engine_v(cpu, l), n, 1e-4);
        expect_rel("synth k grad", kvq_gpu_engine_k_pre_rope_grad(g, l), kvq_engine_k_pre_rope_grad(cpu, l), n, 1e-3);
        expect_rel("synth v grad", kvq_gpu_engine_v_grad(g, l), kvq_engine_v_grad(cpu, l), n, 1e-3);
        const float *gk = kvq_gpu_engine_k_pre_rope_grad(g, l);
        for (size_t i = 0; i < n; i++) sq[i] = gk[i] * gk[i];
        expect_rel("fisher = grad^2", kvq_gpu_engine_k_pre_rope_grad(f, l), sq, n, 0);
        const float *pairs[4][2] = {
            {kvq_gpu_engine_k_pre_rope(h, l), kvq_gpu_engine_k_pre_rope(g, l)},
            {kvq_gpu_engine_v(h, l), kvq_gpu_engine_v(g, l)},
            {kvq_gpu_engine_k_pre_rope_grad(h, l), kvq_gpu_engine_k_pre_rope_grad(g, l)},
            {kvq_gpu_engine_v_grad(h, l), kvq_gpu_engine_v_grad(g, l)}};
        for (int i = 0; i < 4; i++) {
            double r = kvq_test_rel_l2(pairs[i][0], pairs[i][1], n);
            worst_bf16 = r > worst_bf16 ? r : worst_bf16;
        }
    }
    fprintf(stderr, "bf16 math vs fp32 math (synth tiny): loss %.6f vs %.6f, worst per-tensor rel err %.3g\n", lb, lg,
            worst_bf16);
    /* Sanity bound, not a precision claim: bf16 operands carry 8 mantissa bits (rel 4e-3 per
     * rounding) and the error grows through the layers; 5% catches a broken bf16 path. */
    ck_assert_msg(worst_bf16 < 0.05, "bf16 math rel err %.3g", worst_bf16);
    free(sq);
    kvq_gpu_engine_free(g);
    kvq_gpu_engine_free(f);
    kvq_gpu_engine_free(h);
    kvq_engine_free(cpu);
    kvq_model_free(&m);
}
END_TEST

/* The capture loop (calib/capture.h) through the "cuda" backend writes the file the "cpu" backend
 * writes: kvq-tiny-15m, 2 windows of 160 tokens of wiki.test.raw, every layer's K, V and Fisher. */
START_TEST(test_capture_cuda_matches_cpu) {
    if (!have_gpu()) return;
    const char *p = kvq_test_shared("data/text/wiki.test.raw");
    KVQ_SKIP_IF_MISSING(p, "data/text/wiki.test.raw");
    char text[4096];   /* kvq_test_shared's buffer is reused by the next call */
    snprintf(text, sizeof text, "%s", p);
    const char *model = kvq_test_shared("models/kvq-tiny-15m");
    if (!model) model = "data/models/kvq-tiny-15m";
    char paths[2][1024], why[512];
    const char *dev[2] = {"cpu", "cuda"};
    kvq_capture_reader *rd[2];
    for (int i = 0; i < 2; i++) {
        kvq_capture_opts o;
        kvq_capture_opts_init(&o);
        snprintf(paths[i], sizeof paths[i], "%s/cap-%s.h5", kvq_test_tmpdir(), dev[i]);
        o.model_path = model;
        o.text_path = text;
        o.out_path = paths[i];
        o.samples = 2;
        o.seq_len = 160;
        o.seed = 7;
        o.device = dev[i];
        kvq_capture_result res;
        kvq_status st = kvq_capture_run(&o, &res, why, sizeof why);
        ck_assert_msg(st == KVQ_OK, "capture on %s: %s: %s", dev[i], kvq_status_name(st), why);
        ck_assert_int_eq(kvq_capture_open(paths[i], &rd[i], why, sizeof why), KVQ_OK);
    }
    const kvq_capture_tensor kinds[4] = {KVQ_CAPTURE_K, KVQ_CAPTURE_V, KVQ_CAPTURE_FISHER_K, KVQ_CAPTURE_FISHER_V};
    const double tol[4] = {1e-4, 1e-4, 1e-3, 1e-3};   /* activations / Fisher, as the engine tests */
    for (uint32_t l = 0; l < kvq_capture_reader_meta(rd[0])->model.n_layers; l++)
        for (int t = 0; t < 4; t++) {
            float *a = NULL, *b = NULL;
            uint64_t na = 0, nb = 0;
            ck_assert_int_eq(kvq_capture_read_all(rd[0], l, kinds[t], &a, &na, why, sizeof why), KVQ_OK);
            ck_assert_int_eq(kvq_capture_read_all(rd[1], l, kinds[t], &b, &nb, why, sizeof why), KVQ_OK);
            ck_assert(na == nb && na == 320);
            char what[64];
            snprintf(what, sizeof what, "capture layer %u %s", l, kvq_capture_tensor_name(kinds[t]));
            expect_rel(what, b, a, (size_t)na * kvq_capture_kv_dim(rd[0]), tol[t]);
            free(a);
            free(b);
        }
    kvq_capture_reader_free(rd[0]);
    kvq_capture_reader_free(rd[1]);
}
END_TEST

/* In this program the CUDA backends are linked: the lookup finds them (a CPU-only kvq says
 * "built without CUDA" instead: tests/test_engine_backend.c). */
/* Two host result sets: a window run into set 1 leaves set 0's results untouched, and equals the
 * same window run into set 0 (what the overlapped capture relies on). */
START_TEST(test_select_host_sets) {
    if (!have_gpu()) return;
    char dir[1024], why[512] = "";
    snprintf(dir, sizeof dir, "%s/synth-sets", kvq_test_tmpdir());
    kvq_synth_opts so = {"tiny", KVQ_ST_F16, 7, 2, 0};
    ck_assert_msg(kvq_synth_write(dir, &so, NULL, why, sizeof why) == KVQ_OK, "%s", why);
    kvq_model m;
    ck_assert_msg(kvq_model_load(dir, &m, why, sizeof why) == KVQ_OK, "%s", why);
    const int T = 48, L = (int)m.cfg.n_layers;
    const size_t n = (size_t)T * m.cfg.n_kv_heads * m.cfg.head_dim;
    int32_t a[48], b[48];
    for (int i = 0; i < T; i++) { a[i] = (i * 389 + 17) % 1000; b[i] = (i * 113 + 5) % 1000; }
    kvq_gpu_engine *e = gpu_engine(&m, 1, T, KVQ_GPU_FP32, 16, 1);
    ck_assert(kvq_gpu_engine_select_host(e, 2, why, sizeof why) == KVQ_ERR_ARG);
    double la, lb, lb0;
    run_gpu(e, a, 1, &la);                                   /* window a -> set 0 */
    float *set0 = malloc((size_t)L * 4 * n * sizeof *set0), *b1 = malloc((size_t)L * 4 * n * sizeof *b1);
    ck_assert(set0 && b1);
    for (int l = 0; l < L; l++) {
        memcpy(set0 + ((size_t)l * 4 + 0) * n, kvq_gpu_engine_k_pre_rope(e, l), n * sizeof *set0);
        memcpy(set0 + ((size_t)l * 4 + 1) * n, kvq_gpu_engine_v(e, l), n * sizeof *set0);
        memcpy(set0 + ((size_t)l * 4 + 2) * n, kvq_gpu_engine_k_pre_rope_grad(e, l), n * sizeof *set0);
        memcpy(set0 + ((size_t)l * 4 + 3) * n, kvq_gpu_engine_v_grad(e, l), n * sizeof *set0);
    }
    ck_assert_msg(kvq_gpu_engine_select_host(e, 1, why, sizeof why) == KVQ_OK, "%s", why);
    run_gpu(e, b, 1, &lb);                                   /* window b -> set 1 */
    for (int l = 0; l < L; l++) {
        memcpy(b1 + ((size_t)l * 4 + 0) * n, kvq_gpu_engine_k_pre_rope(e, l), n * sizeof *b1);
        memcpy(b1 + ((size_t)l * 4 + 1) * n, kvq_gpu_engine_v(e, l), n * sizeof *b1);
        memcpy(b1 + ((size_t)l * 4 + 2) * n, kvq_gpu_engine_k_pre_rope_grad(e, l), n * sizeof *b1);
        memcpy(b1 + ((size_t)l * 4 + 3) * n, kvq_gpu_engine_v_grad(e, l), n * sizeof *b1);
    }
    ck_assert_msg(kvq_gpu_engine_select_host(e, 0, why, sizeof why) == KVQ_OK, "%s", why);
    for (int l = 0; l < L; l++) {                           /* set 0 still holds window a, bit for bit */
        ck_assert(!memcmp(set0 + ((size_t)l * 4 + 0) * n, kvq_gpu_engine_k_pre_rope(e, l), n * sizeof *set0));
        ck_assert(!memcmp(set0 + ((size_t)l * 4 + 1) * n, kvq_gpu_engine_v(e, l), n * sizeof *set0));
        ck_assert(!memcmp(set0 + ((size_t)l * 4 + 2) * n, kvq_gpu_engine_k_pre_rope_grad(e, l), n * sizeof *set0));
        ck_assert(!memcmp(set0 + ((size_t)l * 4 + 3) * n, kvq_gpu_engine_v_grad(e, l), n * sizeof *set0));
    }
    run_gpu(e, b, 1, &lb0);                                  /* window b again, into set 0 */
    ck_assert(fabs(lb - lb0) <= 1e-9 * fabs(lb));
    for (int l = 0; l < L; l++) {   /* same inputs, same kernels: the fp32 engine is deterministic to ~1 ulp */
        expect_rel("set 1 K", b1 + ((size_t)l * 4 + 0) * n, kvq_gpu_engine_k_pre_rope(e, l), n, 1e-6);
        expect_rel("set 1 V", b1 + ((size_t)l * 4 + 1) * n, kvq_gpu_engine_v(e, l), n, 1e-6);
        expect_rel("set 1 Fisher K", b1 + ((size_t)l * 4 + 2) * n, kvq_gpu_engine_k_pre_rope_grad(e, l), n, 1e-6);
        expect_rel("set 1 Fisher V", b1 + ((size_t)l * 4 + 3) * n, kvq_gpu_engine_v_grad(e, l), n, 1e-6);
    }
    ck_assert(la != lb);
    free(set0); free(b1);
    kvq_gpu_engine_free(e);
    kvq_model_free(&m);
}
END_TEST

START_TEST(test_backend_lookup) {
    const kvq_engine_backend *be;
    char why[256];
    ck_assert_int_eq(kvq_engine_backend_get("cuda", &be, why, sizeof why), KVQ_OK);
    ck_assert(be->grads_squared && !strcmp(be->name, "cuda"));
    ck_assert_int_eq(kvq_engine_backend_get("cuda-bf16", &be, why, sizeof why), KVQ_OK);
    ck_assert_int_eq(kvq_engine_backend_get("tpu", &be, why, sizeof why), KVQ_ERR_ARG);
}
END_TEST

static Suite *engine_cuda_suite(void) {
    Suite *s = suite_create("engine_cuda");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rmsnorm_swiglu_residual);
    tcase_add_test(tc, test_rope_embed);
    tcase_add_test(tc, test_crossentropy);
    tcase_add_test(tc, test_attention_chunked_gqa);
    tcase_add_test(tc, test_tiny_reference);
    tcase_add_test(tc, test_stories_reference);
    tcase_add_test(tc, test_synth_vs_cpu_and_bf16);
    tcase_add_test(tc, test_capture_cuda_matches_cpu);
    tcase_add_test(tc, test_select_host_sets);
    tcase_add_test(tc, test_backend_lookup);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(engine_cuda_suite)
