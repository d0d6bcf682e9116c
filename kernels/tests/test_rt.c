/* test_rt.c — GPU test of the kvq CUDA runtime (make test-gpu; needs an NVIDIA GPU). A plain C
 * program that exits non-zero on any failure. Oracles: codebook/quant.c (the CPU reference of
 * docs/quantization.md) for codes, fp16 scales, outlier lists and dequantized floats, compared
 * BIT FOR BIT; rt_ref.c's double-precision attention over the reference's dequantized cache for
 * the decode kernel (relative L2 error per slot and head <= 1e-3). Data: heavy-tailed random
 * (Student-t(3), outlier channels, injected ties and signed zeros) of awkward lengths, batch > 1
 * with different lengths, prefill then one-token decode steps, GQA/MHA, 2/3/4 bits, head_dim 64
 * and 128; plus real captured K/V when $KVQ_RT_CAPTURE names a capture (see docs/runtime.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include "kvq_half.h"
#include "kvq_rt.h"
#include "quant.h"
#include "rt_ref.h"
#include "rt_check.h"

static int g_fail = 0;
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            g_fail++;                                                          \
        }                                                                      \
    } while (0)

enum { MAXB = 8 };
typedef struct tcase {
    const char *name;
    rt_cb_cfg cb;
    uint32_t page, batch, lens[MAXB], prefill[MAXB];
    int bf16;
    const float *data;            /* NULL: generated; else (lens[0], kv_dim) K then V (capture) */
} tcase;

static char why[256];

/* Injected edge cases in generated data: constant tokens, coarse grids (ties), signed zeros. */
static void inject(float *x, uint32_t T, uint32_t dim) {
    for (uint32_t t = 0; t < T; t++) {
        float *r = x + (size_t)t * dim;
        if (t % 50 == 7) for (uint32_t c = 0; c < dim; c++) r[c] = 0.5f;
        if (t % 50 == 8) for (uint32_t c = 0; c < dim; c++) r[c] = roundf(r[c] * 2.0f) * 0.5f;
        if (t % 50 == 9) for (uint32_t c = 0; c < dim; c++) r[c] = (c * 7 % 3) ? 0.0f : -0.0f;
    }
}

/* (n, dim) floats -> fp16 or bf16 bits */
static void to_half(const float *x, uint16_t *out, size_t n, int bf16) {
    for (size_t i = 0; i < n; i++) out[i] = bf16 ? kvq_f32_to_bf16(x[i]) : kvq_f32_to_f16(x[i]);
}
static float from_in(float x, int bf16) { return bf16 ? kvq_bf16_to_f32(kvq_f32_to_bf16(x)) : x; }

/* Compare one slot's stored tokens with the CPU reference; fills ref_k/ref_v (T, kv_dim). */
static void check_slot(const tcase *tc, kvq_rt_cache *cache, const kvq_codebook *cb, uint32_t layer, uint32_t seq,
                       const float *K, const float *V, float *ref_k, float *ref_v) {
    uint32_t D = tc->cb.head_dim, H = tc->cb.n_kv_heads, kv_dim = H * D, T = tc->lens[seq];
    kvq_quantizer qk, qv;
    OKST(kvq_quantizer_from_codebook(&qk, &cb->layers[layer].k, kv_dim, D, cb->n_sink, why, sizeof why));
    OKST(kvq_quantizer_from_codebook(&qv, &cb->layers[layer].v, kv_dim, D, cb->n_sink, why, sizeof why));
    kvq_qtoken tk, tv;
    OKST(kvq_qtoken_init(&tk, &qk));
    OKST(kvq_qtoken_init(&tv, &qv));
    uint8_t *kc = malloc(kv_dim), *vc = malloc(kv_dim);
    uint16_t vz[1024], vr[1024], ks[8192], vs[8192];
    uint32_t *ko = malloc(kv_dim * 4), *vo = malloc(kv_dim * 4);
    float *in = malloc(kv_dim * sizeof(float));
    kvq_rt_token et = {0, kc, vc, vz, vr, ko, vo, 0, 0, ks, vs};
    uint32_t bad_codes = 0, bad_scales = 0, bad_lists = 0, bad_sink = 0, n_out = 0;
    for (uint32_t t = 0; t < T; t++) {
        OKST(kvq_rt_export_token(cache, layer, seq, t, &et, why, sizeof why));
        const float *kx = K + (size_t)t * kv_dim, *vx = V + (size_t)t * kv_dim;
        if (t < cb->n_sink) {
            CHECK(et.is_sink, "%s: token %u not stored as sink", tc->name, t);
            for (uint32_t c = 0; c < kv_dim; c++) {
                float kh = kvq_round_f16(from_in(kx[c], tc->bf16)), vh = kvq_round_f16(from_in(vx[c], tc->bf16));
                bad_sink += ks[c] != kvq_f32_to_f16(kh) || vs[c] != kvq_f32_to_f16(vh);
                ref_k[(size_t)t * kv_dim + c] = kh;
                ref_v[(size_t)t * kv_dim + c] = vh;
            }
            continue;
        }
        for (uint32_t c = 0; c < kv_dim; c++) in[c] = from_in(kx[c], tc->bf16);
        OKST(kvq_quant_encode(&qk, in, &tk));
        kvq_quant_decode(&qk, &tk, ref_k + (size_t)t * kv_dim);
        for (uint32_t c = 0; c < kv_dim; c++) in[c] = from_in(vx[c], tc->bf16);
        OKST(kvq_quant_encode(&qv, in, &tv));
        kvq_quant_decode(&qv, &tv, ref_v + (size_t)t * kv_dim);
        uint32_t bc = 0;
        for (uint32_t c = 0; c < kv_dim; c++) bc += kc[c] != tk.codes[c] || vc[c] != tv.codes[c];
        if (bc && !bad_codes) fprintf(stderr, "  %s layer %u slot %u token %u: %u codes differ\n", tc->name, layer, seq, t, bc);
        bad_codes += bc;
        for (uint32_t gidx = 0; gidx < qv.n_groups; gidx++) bad_scales += vz[gidx] != tv.z[gidx] || vr[gidx] != tv.r[gidx];
        int lb = et.n_k_outliers != tk.n_outliers || et.n_v_outliers != tv.n_outliers;
        for (uint32_t i = 0; !lb && i < tk.n_outliers; i++)
            lb |= ko[i] != ((uint32_t)tk.outliers[i].channel | (uint32_t)tk.outliers[i].value << 16);
        for (uint32_t i = 0; !lb && i < tv.n_outliers; i++)
            lb |= vo[i] != ((uint32_t)tv.outliers[i].channel | (uint32_t)tv.outliers[i].value << 16);
        if (lb && !bad_lists)
            fprintf(stderr, "  %s layer %u slot %u token %u: outliers K %u vs ref %u, V %u vs ref %u\n", tc->name, layer,
                    seq, t, et.n_k_outliers, tk.n_outliers, et.n_v_outliers, tv.n_outliers);
        bad_lists += lb;
        n_out += tk.n_outliers + tv.n_outliers;
    }
    CHECK(!bad_codes && !bad_scales && !bad_lists && !bad_sink,
          "%s layer %u slot %u: %u code, %u scale, %u outlier-list, %u sink mismatches", tc->name, layer, seq,
          bad_codes, bad_scales, bad_lists, bad_sink);
    /* dequantized floats, bit for bit */
    if (T) {
        float *dk, *dv, *gk = malloc((size_t)T * kv_dim * 4), *gv = malloc((size_t)T * kv_dim * 4);
        CU(cudaMalloc((void **)&dk, (size_t)T * kv_dim * 4));
        CU(cudaMalloc((void **)&dv, (size_t)T * kv_dim * 4));
        CU(cudaMemset(dk, 0xFF, (size_t)T * kv_dim * 4));   /* poison: NaN */
        CU(cudaMemset(dv, 0xFF, (size_t)T * kv_dim * 4));
        OKST(kvq_rt_dequantize(cache, layer, seq, 0, T, dk, dv, why, sizeof why));
        CU(cudaMemcpy(gk, dk, (size_t)T * kv_dim * 4, cudaMemcpyDeviceToHost));
        CU(cudaMemcpy(gv, dv, (size_t)T * kv_dim * 4, cudaMemcpyDeviceToHost));
        size_t nb = 0, first = 0;
        for (size_t i = 0; i < (size_t)T * kv_dim; i++)
            if (kvq_f32_bits(gk[i]) != kvq_f32_bits(ref_k[i]) || kvq_f32_bits(gv[i]) != kvq_f32_bits(ref_v[i])) {
                if (!nb) first = i;
                nb++;
            }
        CHECK(nb == 0, "%s layer %u slot %u: %zu dequantized floats differ from codebook/quant.c (first at token %zu "
              "channel %zu: K %a vs %a, V %a vs %a)", tc->name, layer, seq, nb, first / kv_dim, first % kv_dim,
              gk[first], ref_k[first], gv[first], ref_v[first]);
        printf("  %s layer %u slot %u: %u tokens, %u outliers, dequantized cache bit-identical: %s\n", tc->name, layer,
               seq, T, n_out, nb ? "NO" : "yes");
        cudaFree(dk); cudaFree(dv); free(gk); free(gv);
    }
    free(kc); free(vc); free(ko); free(vo); free(in);
    kvq_qtoken_free(&tk); kvq_qtoken_free(&tv);
    kvq_quantizer_free(&qk); kvq_quantizer_free(&qv);
}

/* Append every slot's tokens: prefill[] at once, then one token per step per unfinished slot. */
static void append_all(const tcase *tc, kvq_rt_cache *cache, float **K, float **V) {
    uint32_t kv_dim = tc->cb.n_kv_heads * tc->cb.head_dim, done[MAXB] = {0}, maxlen = 0, total = 0;
    for (uint32_t b = 0; b < tc->batch; b++) { maxlen = tc->lens[b] > maxlen ? tc->lens[b] : maxlen; total += tc->lens[b]; }
    uint16_t *hk = malloc((size_t)total * kv_dim * 2), *hv = malloc((size_t)total * kv_dim * 2), *dk, *dv;
    CU(cudaMalloc((void **)&dk, (size_t)total * kv_dim * 2));
    CU(cudaMalloc((void **)&dv, (size_t)total * kv_dim * 2));
    for (int first = 1;; first = 0) {
        uint32_t seq[MAXB], n_new[MAXB], ns = 0, row = 0;
        for (uint32_t b = 0; b < tc->batch; b++) {
            uint32_t n = first ? tc->prefill[b] : (done[b] < tc->lens[b] ? 1 : 0);
            if (!n) continue;
            to_half(K[b] + (size_t)done[b] * kv_dim, hk + (size_t)row * kv_dim, (size_t)n * kv_dim, tc->bf16);
            to_half(V[b] + (size_t)done[b] * kv_dim, hv + (size_t)row * kv_dim, (size_t)n * kv_dim, tc->bf16);
            seq[ns] = b; n_new[ns++] = n; row += n; done[b] += n;
        }
        if (!ns) break;
        OKST(kvq_rt_extend(cache, ns, seq, n_new, why, sizeof why));
        CU(cudaMemcpy(dk, hk, (size_t)row * kv_dim * 2, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(dv, hv, (size_t)row * kv_dim * 2, cudaMemcpyHostToDevice));
        for (uint32_t l = 0; l < tc->cb.n_layers; l++)
            OKST(kvq_rt_append(cache, l, dk, dv, tc->bf16 ? KVQ_RT_BF16 : KVQ_RT_F16, why, sizeof why));
    }
    cudaFree(dk); cudaFree(dv); free(hk); free(hv);
}

/* Decode attention against rt_ref_attention over the reference's dequantized cache. */
static void check_attention(const tcase *tc, kvq_rt_cache *cache, const kvq_rt *rt, uint32_t layer, float **rk,
                            float **rv, rt_rng *rng) {
    uint32_t D = tc->cb.head_dim, Hq = tc->cb.n_heads, B = tc->batch, n = B * Hq * D;
    float *q = malloc(n * 4), *got = malloc(n * 4), inv[64];
    uint16_t *qh = malloc(n * 2), *got16 = malloc(n * 2);
    double *ref = malloc((size_t)Hq * D * sizeof(double));
    for (uint32_t i = 0; i < n; i++) { q[i] = kvq_round_f16((float)rt_normal(rng)); qh[i] = kvq_f32_to_f16(q[i]); }
    OKST(kvq_rt_rope_freqs(rt, inv));
    void *dq, *dout;
    CU(cudaMalloc(&dq, n * 2));
    CU(cudaMalloc(&dout, n * 4));
    CU(cudaMemcpy(dq, qh, n * 2, cudaMemcpyHostToDevice));
    CU(cudaMemset(dout, 0xFF, n * 4));
    OKST(kvq_rt_attention(cache, layer, dq, KVQ_RT_F16, dout, KVQ_RT_F32, 0.0f, why, sizeof why));
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(got, dout, n * 4, cudaMemcpyDeviceToHost));
    OKST(kvq_rt_attention(cache, layer, dq, KVQ_RT_F16, dout, KVQ_RT_F16, 0.0f, why, sizeof why));
    CU(cudaMemcpy(got16, dout, n * 2, cudaMemcpyDeviceToHost));
    double worst = 0.0, worst16 = 0.0;
    for (uint32_t b = 0; b < B; b++) {
        rt_ref_attention(rk[b], rv[b], tc->lens[b], q + (size_t)b * Hq * D, Hq, tc->cb.n_kv_heads, D, inv,
                         1.0 / sqrt((double)D), ref);
        for (uint32_t h = 0; h < Hq; h++) {
            double num = 0, den = 0, num16 = 0;
            for (uint32_t i = 0; i < D; i++) {
                double r = ref[h * D + i], g = got[((size_t)b * Hq + h) * D + i];
                double g16 = kvq_f16_to_f32(got16[((size_t)b * Hq + h) * D + i]);
                num += (g - r) * (g - r); den += r * r; num16 += (g16 - r) * (g16 - r);
                if (isnan(g)) num = INFINITY;
            }
            double e = tc->lens[b] ? sqrt(num / (den > 0 ? den : 1e-30)) : sqrt(num);
            double e16 = tc->lens[b] ? sqrt(num16 / (den > 0 ? den : 1e-30)) : sqrt(num16);
            if (!(e <= worst)) worst = e;
            if (!(e16 <= worst16)) worst16 = e16;
        }
    }
    /* fp32 arithmetic (scores, exp, sums over <= a few thousand tokens, the RoPE recurrence)
     * lands near 1e-6; 1e-3 is the bound. The fp16 output adds its rounding, 2^-11. */
    CHECK(worst <= 1e-3, "%s layer %u: attention relative L2 error %.3g > 1e-3", tc->name, layer, worst);
    CHECK(worst16 <= 1e-3 + 4.9e-4, "%s layer %u: fp16-output attention error %.3g", tc->name, layer, worst16);
    printf("  %s layer %u: attention worst relative L2 error %.2e (fp32 out), %.2e (fp16 out)\n", tc->name, layer, worst,
           worst16);
    cudaFree(dq); cudaFree(dout);
    free(q); free(got); free(qh); free(got16); free(ref);
}

static void run_case(const tcase *tc, uint64_t seed) {
    printf("case %s\n", tc->name);
    rt_rng rng = {seed};
    uint32_t kv_dim = tc->cb.n_kv_heads * tc->cb.head_dim, maxlen = 0, T_cal = 512;
    float *K[MAXB], *V[MAXB], *rk[MAXB], *rv[MAXB];
    for (uint32_t b = 0; b < tc->batch; b++) {
        size_t n = (size_t)(tc->lens[b] ? tc->lens[b] : 1) * kv_dim;
        K[b] = malloc(n * 4); V[b] = malloc(n * 4); rk[b] = malloc(n * 4); rv[b] = malloc(n * 4);
        if (tc->data) {
            memcpy(K[b], tc->data, (size_t)tc->lens[b] * kv_dim * 4);
            memcpy(V[b], tc->data + (size_t)tc->lens[b] * kv_dim, (size_t)tc->lens[b] * kv_dim * 4);
        } else {
            rt_fill_kv(&rng, K[b], tc->lens[b], kv_dim, 11);
            rt_fill_kv(&rng, V[b], tc->lens[b], kv_dim, 12);
            inject(K[b], tc->lens[b], kv_dim);
            inject(V[b], tc->lens[b], kv_dim);
        }
        maxlen = tc->lens[b] > maxlen ? tc->lens[b] : maxlen;
    }
    float *cal = malloc((size_t)T_cal * kv_dim * 4);
    if (tc->data) { T_cal = tc->lens[0]; memcpy(cal, tc->data, (size_t)T_cal * kv_dim * 4); }
    else rt_fill_kv(&rng, cal, T_cal, kv_dim, 11);
    kvq_codebook cb;
    CHECK(rt_codebook_make(&cb, &tc->cb, cal, T_cal, &rng) == 0, "codebook");
    kvq_rt_dims dims = {tc->cb.n_layers, tc->cb.n_heads, tc->cb.n_kv_heads, tc->cb.head_dim};
    kvq_rt *rt;
    OKST(kvq_rt_open(&rt, &cb, &dims, why, sizeof why));
    kvq_rt_cache_opts o = {tc->batch, maxlen, tc->page, 0, 0};
    kvq_rt_cache *cache;
    OKST(kvq_rt_cache_create(&cache, rt, &o, why, sizeof why));
    append_all(tc, cache, K, V);
    for (uint32_t b = 0; b < tc->batch; b++)
        CHECK(kvq_rt_seq_len(cache, b) == tc->lens[b], "%s: slot %u length %u", tc->name, b, kvq_rt_seq_len(cache, b));
    for (uint32_t l = 0; l < tc->cb.n_layers; l++) {
        for (uint32_t b = 0; b < tc->batch; b++) check_slot(tc, cache, &cb, l, b, K[b], V[b], rk[b], rv[b]);
        check_attention(tc, cache, rt, l, rk, rv, &rng);
        if (l == 0 && tc->cb.n_heads / tc->cb.n_kv_heads == 4)   /* the other query-head groupings */
            for (uint32_t qpb = 1; qpb <= 2; qpb++) {
                OKST(kvq_rt_cache_set_q_per_block(cache, qpb));
                check_attention(tc, cache, rt, l, rk, rv, &rng);
            }
        OKST(kvq_rt_cache_set_q_per_block(cache, 0));
    }
    kvq_rt_cache_free(cache);
    kvq_rt_close(rt);
    rt_codebook_free(&cb);
    free(cal);
    for (uint32_t b = 0; b < tc->batch; b++) { free(K[b]); free(V[b]); free(rk[b]); free(rv[b]); }
}

/* Bad input gives a status, never a crash. */
static void check_errors(void) {
    printf("case errors\n");
    rt_rng rng = {99};
    rt_cb_cfg c = {1, 4, 2, 64, 3, 1, 0.02f, 0.02f, 2, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 10000.0f};
    float *cal = malloc(256 * 128 * 4);
    rt_fill_kv(&rng, cal, 256, 128, 5);
    kvq_codebook cb;
    rt_codebook_make(&cb, &c, cal, 256, &rng);
    kvq_rt *rt = NULL;
    kvq_rt_dims bad = {1, 4, 4, 64};
    CHECK(kvq_rt_open(&rt, &cb, &bad, why, sizeof why) == KVQ_ERR_SHAPE, "dims mismatch must be KVQ_ERR_SHAPE");
    kvq_rt_dims dims = {1, 4, 2, 64};
    cb.layers[0].k.outlier_cap = 0;
    CHECK(kvq_rt_open(&rt, &cb, &dims, why, sizeof why) == KVQ_ERR_UNSUPPORTED, "uncapped key outliers: UNSUPPORTED");
    cb.layers[0].k.outlier_cap = 2;
    cb.layers[0].k.half_range[3] = 0.0f;
    CHECK(kvq_rt_open(&rt, &cb, &dims, why, sizeof why) == KVQ_ERR_FORMAT, "r = 0 must be KVQ_ERR_FORMAT");
    cb.layers[0].k.half_range[3] = 1.0f;
    OKST(kvq_rt_open(&rt, &cb, &dims, why, sizeof why));
    kvq_rt_cache *cache;
    kvq_rt_cache_opts o = {2, 100, 32, 5, 0};   /* 5 pages of 32 tokens shared by 2 slots */
    OKST(kvq_rt_cache_create(&cache, rt, &o, why, sizeof why));
    uint32_t s0 = 0, s1 = 1, n101 = 101, n100 = 100, n64 = 64, n1 = 1;
    CHECK(kvq_rt_extend(cache, 1, &s0, &n101, why, sizeof why) == KVQ_ERR_CAPACITY, "past max_tokens: CAPACITY");
    OKST(kvq_rt_extend(cache, 1, &s0, &n100, why, sizeof why));   /* 4 pages */
    CHECK(kvq_rt_extend(cache, 1, &s1, &n64, why, sizeof why) == KVQ_ERR_CAPACITY, "pool exhausted: CAPACITY");
    CHECK(kvq_rt_seq_len(cache, 1) == 0, "a failed extend leaves the slot unchanged");
    OKST(kvq_rt_seq_reset(cache, 0));
    OKST(kvq_rt_extend(cache, 1, &s1, &n1, why, sizeof why));
    uint16_t hk[128], *dk;
    for (int i = 0; i < 128; i++) hk[i] = kvq_f32_to_f16(0.25f);
    hk[17] = 0x7E00;   /* NaN */
    CU(cudaMalloc((void **)&dk, sizeof hk));
    CU(cudaMemcpy(dk, hk, sizeof hk, cudaMemcpyHostToDevice));
    CHECK(kvq_rt_append(cache, 0, dk, dk, KVQ_RT_F16, why, sizeof why) == KVQ_ERR_NONFINITE, "NaN input: NONFINITE");
    CHECK(kvq_rt_append(cache, 0, dk, dk, KVQ_RT_F32, why, sizeof why) == KVQ_ERR_DTYPE, "F32 append: DTYPE");
    CHECK(kvq_rt_append(cache, 1, dk, dk, KVQ_RT_F16, why, sizeof why) == KVQ_ERR_ARG, "layer out of range: ARG");
    cudaFree(dk);
    kvq_rt_cache_free(cache);
    kvq_rt_close(rt);
    cb.layers[0].v.bits = 2;   /* fewer levels than allocated: still a valid codebook */
    CHECK(kvq_rt_open(&rt, &cb, &dims, why, sizeof why) == KVQ_ERR_UNSUPPORTED, "K/V bits differ: UNSUPPORTED");
    cb.layers[0].v.bits = 3;
    kvq_rt_close(NULL);
    kvq_rt_cache_free(NULL);
    rt_codebook_free(&cb);
    free(cal);
}

/* Real captured K/V: raw file of uint32 T, n_heads, n_kv_heads, head_dim, then K and V (T, kv_dim) f32. */
static void capture_case(void) {
    const char *p = getenv("KVQ_RT_CAPTURE");
    if (!p) { printf("SKIP real capture: KVQ_RT_CAPTURE not set (random heavy-tailed data only)\n"); return; }
    FILE *f = fopen(p, "rb");
    uint32_t hdr[4];
    if (!f || fread(hdr, 4, 4, f) != 4) { CHECK(0, "cannot read capture %s", p); if (f) fclose(f); return; }
    size_t n = (size_t)hdr[0] * hdr[2] * hdr[3];
    float *data = malloc(2 * n * 4);
    CHECK(fread(data, 4, 2 * n, f) == 2 * n, "capture %s truncated", p);
    fclose(f);
    tcase tc = {"capture", {1, hdr[1], hdr[2], hdr[3], 3, 1, 0.01f, 0.01f, 2, 0, KVQ_NORM_PER_TOKEN,
                            KVQ_OUTLIER_EXACT, 0, 10000.0f}, 32, 1, {hdr[0]}, {hdr[0] - 5}, 0, data};
    run_case(&tc, 7);
    tc.name = "capture-2bit-perhead";
    tc.cb.bits = 2; tc.cb.v_axis = KVQ_NORM_PER_TOKEN_HEAD; tc.cb.v_cap = 1;
    run_case(&tc, 8);
    free(data);
}

int main(void) {
    int dev = 0;
    struct cudaDeviceProp prop;
    CU(cudaGetDevice(&dev));
    CU(cudaGetDeviceProperties(&prop, dev));
    printf("test_rt on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    const tcase cases[] = {
        {"gqa4-d128-3bit-cap", {2, 16, 4, 128, 3, 1, 0.02f, 0.02f, 3, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 10000.0f},
         64, 3, {1, 300, 1000}, {1, 250, 1000}, 0, NULL},
        {"mha-d64-2bit-perhead-resid-bf16", {1, 2, 2, 64, 2, 0, 0.04f, 0.05f, 2, 2, KVQ_NORM_PER_TOKEN_HEAD,
         KVQ_OUTLIER_RESIDUAL, 1, 10000.0f}, 32, 2, {33, 97}, {20, 97}, 1, NULL},
        {"gqa3-d128-4bit-sink4", {1, 9, 3, 128, 4, 4, 0.01f, 0.01f, 8, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 500000.0f},
         256, 2, {257, 700}, {257, 650}, 0, NULL},
        {"g8-d64-3bit-nooutliers", {1, 8, 1, 64, 3, 2, 0.0f, 0.0f, 0, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 1, 10000.0f},
         96, 1, {511}, {500}, 0, NULL},
        {"mha-32x128-3bit", {1, 32, 32, 128, 3, 1, 0.01f, 0.01f, 21, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 10000.0f},
         256, 2, {300, 45}, {290, 40}, 0, NULL},
        {"outlier-heavy-d128-3bit", {1, 2, 1, 128, 3, 1, 0.2f, 0.2f, 12, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 10000.0f},
         64, 2, {1000, 131}, {1000, 100}, 0, NULL},
        {"kvdim8192-2bit", {1, 64, 64, 128, 2, 1, 0.01f, 0.01f, 41, 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 10000.0f},
         32, 1, {40}, {33}, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 1000 + i);
    capture_case();
    check_errors();
    printf("test_rt: %s (%d failures)\n", g_fail ? "FAILED" : "passed", g_fail);
    return g_fail ? 1 : 0;
}
