/* bench_rt.cu — `make bench-gpu`: decode attention per layer per step from the packed cache
 * (4/3/2 bits, 1 % outliers) against our fp16 split-K kernel, for LLaMA-2-7B-shaped (32 x 128,
 * MHA) and Llama-3-8B-shaped (32 query / 8 KV heads) caches at 4K/32K/128K tokens, batch 1 and 8;
 * achieved GB/s over the bytes each kernel reads and % of a measured device-to-device copy;
 * append of a 128K-token prefill against an fp16 write; and the 1M-token LLaMA-7B cache at 2 bits.
 * Writes its rows as CSV ($KVQ_BENCH_CSV, default build/bench_rt.csv) for tools/bench_sdpa.py,
 * which adds PyTorch SDPA and prints the side-by-side table. Not a correctness test (test_rt). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include "kvq_rt.h"
#include "rt_ref.h"
#include "rt_check.h"


static char why[256];
static FILE *csv;
static double copy_gbps;

/* Heavy-tailed fp16 activations on the GPU, the distribution of rt_fill_kv (counter-based RNG). */
__device__ static inline float u01(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return ((float)(x >> 40) + 0.5f) * (1.0f / 16777216.0f);
}
__global__ void gen_kv(uint16_t *out, size_t n_tok, uint32_t dim, const float *off, const float *sc, uint64_t seed) {
    size_t n = n_tok * dim;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t k = seed * 0x100000001B3ull + i * 8;
        float nrm[4];
        for (int j = 0; j < 2; j++) {
            float r = sqrtf(-2.0f * logf(u01(k + 2 * j))), a = 6.2831853f * u01(k + 2 * j + 1);
            nrm[2 * j] = r * cosf(a);
            nrm[2 * j + 1] = r * sinf(a);
        }
        float t = nrm[0] / sqrtf((nrm[1] * nrm[1] + nrm[2] * nrm[2] + nrm[3] * nrm[3]) / 3.0f + 1e-12f);
        uint32_t c = (uint32_t)(i % dim);
        out[i] = __half_as_ushort(__float2half_rn(off[c] + sc[c] * t));
    }
}

typedef struct shape { const char *name; uint32_t n_heads, n_kv_heads, head_dim; } shape;

static float *d_off, *d_sc;   /* (8192) channel parameters */

static void gen(uint16_t *d, size_t n_tok, uint32_t dim, uint64_t seed) {
    gen_kv<<<1024, 256>>>(d, n_tok, dim, d_off, d_sc, seed);
    CU(cudaGetLastError());
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static double measure_copy(void) {
    size_t bytes = (size_t)2 << 30;
    void *a, *b;
    CU(cudaMalloc(&a, bytes));
    CU(cudaMalloc(&b, bytes));
    CU(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    std::vector<double> t;
    for (int i = 0; i < 12; i++) {
        CU(cudaEventRecord(e0));
        CU(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        CU(cudaEventRecord(e1));
        CU(cudaEventSynchronize(e1));
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 2) t.push_back(ms);
    }
    cudaFree(a); cudaFree(b);
    double ms = median(t);
    return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

/* A codebook for `s` at `bits` with 1 % outliers (key cap ceil(p/2 * kv_dim), values p). */
static void make_cb(kvq_codebook *cb, const shape &s, uint32_t n_layers, uint32_t bits) {
    uint32_t kv_dim = s.n_kv_heads * s.head_dim, T = 2048;
    rt_cb_cfg c = {n_layers, s.n_heads, s.n_kv_heads, s.head_dim, bits, 1, 0.01f, 0.01f,
                   (uint32_t)ceil(0.005 * kv_dim), 0, KVQ_NORM_PER_TOKEN, KVQ_OUTLIER_EXACT, 0, 10000.0f};
    float *cal = (float *)malloc((size_t)T * kv_dim * 4);
    rt_rng r = {42};
    rt_fill_kv(&r, cal, T, kv_dim, 11);
    if (rt_codebook_make(cb, &c, cal, T, &r)) { fprintf(stderr, "codebook\n"); exit(2); }
    free(cal);
}

static void row(const char *shape_name, uint32_t B, uint32_t T, const char *kernel, double us, double bytes) {
    double gbps = bytes / (us * 1e-6) / 1e9;
    printf("  %-10s B=%u T=%-6u %-12s %9.1f us  %8.1f GB/s  %5.1f %% of copy\n", shape_name, B, T, kernel, us, gbps,
           100.0 * gbps / copy_gbps);
    if (csv) fprintf(csv, "%s,%u,%u,%s,%.3f,%.0f,%.2f,%.2f\n", shape_name, B, T, kernel, us, bytes, gbps,
                     100.0 * gbps / copy_gbps);
}

/* Time fn(i) over rotating layers: median of per-call event times, microseconds. */
template <class F>
static double time_us(F fn, int reps) {
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) fn(i);
    CU(cudaDeviceSynchronize());
    std::vector<double> t;
    for (int i = 0; i < reps; i++) {
        CU(cudaEventRecord(e0));
        fn(i);
        CU(cudaEventRecord(e1));
        CU(cudaEventSynchronize(e1));
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        t.push_back(ms * 1e3);
    }
    CU(cudaGetLastError());
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return median(t);
}

static const uint32_t LENS[3] = {4096, 32768, 131072};
enum { NROT = 8, CHUNK = 16384 };

/* Packed cache at `bits`, batch B, grown to 4K, 32K, 128K; attention timed at each length. */
static void bench_packed(const shape &s, uint32_t bits, uint32_t B) {
    kvq_codebook cb;
    make_cb(&cb, s, NROT, bits);
    kvq_rt_dims dims = {NROT, s.n_heads, s.n_kv_heads, s.head_dim};
    kvq_rt *rt;
    OKST(kvq_rt_open(&rt, &cb, &dims, why, sizeof why));
    kvq_rt_cache_opts o = {B, LENS[2], 256, 0, 0};
    kvq_rt_cache *c;
    OKST(kvq_rt_cache_create(&c, rt, &o, why, sizeof why));
    uint32_t kv_dim = s.n_kv_heads * s.head_dim, nq = B * s.n_heads * s.head_dim;
    uint16_t *dk, *dv, *dq;
    float *dout;
    CU(cudaMalloc((void **)&dk, (size_t)CHUNK * kv_dim * 2));
    CU(cudaMalloc((void **)&dv, (size_t)CHUNK * kv_dim * 2));
    CU(cudaMalloc((void **)&dq, nq * 2));
    CU(cudaMalloc((void **)&dout, nq * 4));
    gen(dq, B * s.n_heads, s.head_dim, 7);
    uint32_t have = 0;
    char kname[32];
    snprintf(kname, sizeof kname, "kvq-%ubit", bits);
    for (int li = 0; li < 3; li++) {
        while (have < LENS[li]) {
            uint32_t n = std::min<uint32_t>(CHUNK / B, LENS[li] - have), seq[8], nn[8];
            for (uint32_t b = 0; b < B; b++) { seq[b] = b; nn[b] = n; }
            OKST(kvq_rt_extend(c, B, seq, nn, why, sizeof why));
            gen(dk, (size_t)n * B, kv_dim, 1000 + have);
            gen(dv, (size_t)n * B, kv_dim, 5000000 + have);
            for (uint32_t l = 0; l < NROT; l++) OKST(kvq_rt_append(c, l, dk, dv, KVQ_RT_F16, why, sizeof why));
            have += n;
        }
        kvq_rt_stats st;
        OKST(kvq_rt_cache_stats(c, 0, &st, why, sizeof why));
        double us = time_us([&](int i) { kvq_rt_attention(c, i % NROT, dq, KVQ_RT_F16, dout, KVQ_RT_F32, 0.0f, why, sizeof why); }, 30);
        row(s.name, B, LENS[li], kname, us, (double)st.bytes_read);
        if (s.n_heads / s.n_kv_heads == 4 && bits == 3) {   /* tuning: 2 query heads per block */
            OKST(kvq_rt_cache_set_q_per_block(c, 2));
            us = time_us([&](int i) { kvq_rt_attention(c, i % NROT, dq, KVQ_RT_F16, dout, KVQ_RT_F32, 0.0f, why, sizeof why); }, 30);
            row(s.name, B, LENS[li], "kvq-3bit-q2", us, (double)st.bytes_read);
            OKST(kvq_rt_cache_set_q_per_block(c, 0));
        }
        if (li == 2)
            printf("    outliers: K %.3f %%, V %.3f %% of elements\n", 100.0 * st.n_k_outliers / ((double)st.n_quantized * kv_dim),
                   100.0 * st.n_v_outliers / ((double)st.n_quantized * kv_dim));
    }
    cudaFree(dk); cudaFree(dv); cudaFree(dq); cudaFree(dout);
    kvq_rt_cache_free(c);
    kvq_rt_close(rt);
    rt_codebook_free(&cb);
}

/* Our fp16 kernel over contiguous post-RoPE caches, rotating over enough copies to exceed L2. */
static void bench_fp16(const shape &s, uint32_t B, uint32_t T) {
    uint32_t kv_dim = s.n_kv_heads * s.head_dim, nq = B * s.n_heads * s.head_dim;
    size_t per = (size_t)B * T * kv_dim * 2;
    int nrot = (int)std::min<size_t>(NROT, std::max<size_t>(1, (size_t)(400u << 20) / (2 * per) + 1));
    std::vector<uint16_t *> k(nrot), v(nrot);
    for (int r = 0; r < nrot; r++) {
        CU(cudaMalloc((void **)&k[r], per));
        CU(cudaMalloc((void **)&v[r], per));
        gen(k[r], (size_t)B * T, kv_dim, 77 + r);
        gen(v[r], (size_t)B * T, kv_dim, 99 + r);
    }
    uint16_t *dq;
    float *dout;
    uint32_t lens[8], *dl;
    for (uint32_t b = 0; b < B; b++) lens[b] = T;
    CU(cudaMalloc((void **)&dq, nq * 2));
    CU(cudaMalloc((void **)&dout, nq * 4));
    CU(cudaMalloc((void **)&dl, sizeof lens));
    CU(cudaMemcpy(dl, lens, sizeof lens, cudaMemcpyHostToDevice));
    gen(dq, B * s.n_heads, s.head_dim, 7);
    void *work;
    CU(cudaMalloc(&work, kvq_rt_fp16_work_bytes(B, s.n_heads, s.head_dim, T)));
    double us = time_us([&](int i) {
        kvq_rt_fp16_attention(k[i % nrot], v[i % nrot], B, T, lens, dl, s.n_heads, s.n_kv_heads, s.head_dim, dq, dout,
                              0.0f, work);
    }, 30);
    row(s.name, B, T, "ours-fp16", us, 2.0 * per);
    for (int r = 0; r < nrot; r++) { cudaFree(k[r]); cudaFree(v[r]); }
    cudaFree(dq); cudaFree(dout); cudaFree(dl); cudaFree(work);
}

/* Append of a 128K-token prefill into one layer against writing it into an fp16 cache. */
static void bench_append(const shape &s) {
    const uint32_t T = 131072;
    uint32_t kv_dim = s.n_kv_heads * s.head_dim;
    kvq_codebook cb;
    make_cb(&cb, s, 1, 3);
    kvq_rt_dims dims = {1, s.n_heads, s.n_kv_heads, s.head_dim};
    kvq_rt *rt;
    OKST(kvq_rt_open(&rt, &cb, &dims, why, sizeof why));
    kvq_rt_cache_opts o = {1, T, 256, 0, 0};
    kvq_rt_cache *c;
    OKST(kvq_rt_cache_create(&c, rt, &o, why, sizeof why));
    uint16_t *dk, *dv, *fk;
    CU(cudaMalloc((void **)&dk, (size_t)T * kv_dim * 2));
    CU(cudaMalloc((void **)&dv, (size_t)T * kv_dim * 2));
    CU(cudaMalloc((void **)&fk, (size_t)T * kv_dim * 2 * 2));
    gen(dk, T, kv_dim, 1);
    gen(dv, T, kv_dim, 2);
    uint32_t seq = 0, n = T;
    double us_q = time_us([&](int) {
        kvq_rt_seq_reset(c, 0);
        kvq_rt_extend(c, 1, &seq, &n, why, sizeof why);
        kvq_rt_append(c, 0, dk, dv, KVQ_RT_F16, why, sizeof why);
    }, 5);
    std::vector<double> tq;                       /* quantize only: extend outside the events */
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int i = 0; i < 5; i++) {
        kvq_rt_seq_reset(c, 0);
        OKST(kvq_rt_extend(c, 1, &seq, &n, why, sizeof why));
        CU(cudaDeviceSynchronize());
        CU(cudaEventRecord(e0));
        OKST(kvq_rt_append(c, 0, dk, dv, KVQ_RT_F16, why, sizeof why));
        CU(cudaEventRecord(e1));
        CU(cudaEventSynchronize(e1));
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        tq.push_back(ms * 1e3);
    }
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    double us_a = median(tq);
    double us_f = time_us([&](int) {
        kvq_rt_fp16_append(fk, T, kv_dim, 0, 0, T, dk);
        kvq_rt_fp16_append(fk + (size_t)T * kv_dim, T, kv_dim, 0, 0, T, dv);
    }, 9);
    printf("  append %-10s 128K-token prefill, one layer, 3-bit: %.0f us (extend + quantize), %.0f us (quantize); "
           "fp16 write %.0f us; ratio %.2fx (%.2fx quantize only)\n", s.name, us_q, us_a, us_f, us_q / us_f, us_a / us_f);
    if (csv) fprintf(csv, "%s,1,%u,append-kvq-3bit,%.3f,0,0,0\n%s,1,%u,append-fp16,%.3f,0,0,0\n", s.name, T, us_q, s.name, T, us_f);
    cudaFree(dk); cudaFree(dv); cudaFree(fk);
    kvq_rt_cache_free(c);
    kvq_rt_close(rt);
    rt_codebook_free(&cb);
}

/* The paper's headline: 1M tokens of a LLaMA-7B-shaped cache (32 layers) at 2 bits, one decode step. */
static void bench_1m(void) {
    const uint32_t T = 1u << 20, L = 32;
    shape s = {"llama2-7b", 32, 32, 128};
    uint32_t kv_dim = 4096;
    kvq_codebook cb;
    make_cb(&cb, s, L, 2);
    kvq_rt_dims dims = {L, 32, 32, 128};
    kvq_rt *rt;
    OKST(kvq_rt_open(&rt, &cb, &dims, why, sizeof why));
    const uint32_t CH = 4096;   /* generated per chunk; the cache leaves little room */
    uint16_t *dk, *dv, *dq;
    float *dout;
    CU(cudaMalloc((void **)&dk, (size_t)CH * kv_dim * 2));
    CU(cudaMalloc((void **)&dv, (size_t)CH * kv_dim * 2));
    CU(cudaMalloc((void **)&dq, 32 * 128 * 2));
    CU(cudaMalloc((void **)&dout, 32 * 128 * 4));
    kvq_rt_cache_opts o = {1, T, 256, 0, 0};
    kvq_rt_cache *c;
    kvq_status st = kvq_rt_cache_create(&c, rt, &o, why, sizeof why);
    if (st != KVQ_OK) {
        printf("  1M tokens: cache of %zu B per layer page could not be allocated: %s: %s\n",
               kvq_rt_page_bytes(rt, 0, 256), kvq_status_name(st), why);
        kvq_rt_close(rt); rt_codebook_free(&cb);
        cudaFree(dk); cudaFree(dv); cudaFree(dq); cudaFree(dout);
        return;
    }
    size_t fr, tot;
    CU(cudaMemGetInfo(&fr, &tot));
    printf("  1M tokens x 32 layers x 32 heads x 128 at 2 bits (1 %% outliers): cache %.2f GiB allocated, GPU %.2f of %.2f GiB used\n",
           kvq_rt_cache_bytes(c) / 1073741824.0, (tot - fr) / 1073741824.0, tot / 1073741824.0);
    gen(dq, 32, 128, 3);
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    CU(cudaEventRecord(e0));
    for (uint32_t have = 0; have < T; have += CH) {
        uint32_t seq = 0, n = CH;
        OKST(kvq_rt_extend(c, 1, &seq, &n, why, sizeof why));
        gen(dk, CH, kv_dim, 10 + have);
        gen(dv, CH, kv_dim, 20000000 + have);
        for (uint32_t l = 0; l < L; l++) OKST(kvq_rt_append(c, l, dk, dv, KVQ_RT_F16, why, sizeof why));
    }
    CU(cudaEventRecord(e1));
    CU(cudaEventSynchronize(e1));
    float fill_ms;
    CU(cudaEventElapsedTime(&fill_ms, e0, e1));
    double us = time_us([&](int i) { kvq_rt_attention(c, i % L, dq, KVQ_RT_F16, dout, KVQ_RT_F32, 0.0f, why, sizeof why); }, 32);
    kvq_rt_stats sst;
    OKST(kvq_rt_cache_stats(c, 0, &sst, why, sizeof why));
    std::vector<float> out(32 * 128);
    CU(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    int finite = 1;
    for (float x : out) finite &= isfinite(x) ? 1 : 0;
    printf("  1M tokens: filled in %.1f s (append, all layers); decode step %.0f us per layer, %.1f ms for 32 layers, "
           "%.0f GB/s; output finite: %s\n", fill_ms / 1e3, us, us * 32 / 1e3, sst.bytes_read / (us * 1e-6) / 1e9,
           finite ? "yes" : "NO");
    if (csv) fprintf(csv, "llama2-7b,1,%u,kvq-2bit-1M,%.3f,%.0f,%.2f,%.2f\n", T, us, (double)sst.bytes_read,
                     sst.bytes_read / (us * 1e-6) / 1e9, 100.0 * sst.bytes_read / (us * 1e-6) / 1e9 / copy_gbps);
    cudaFree(dk); cudaFree(dv); cudaFree(dq); cudaFree(dout);
    kvq_rt_cache_free(c);
    kvq_rt_close(rt);
    rt_codebook_free(&cb);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : "all";   /* all | attn | append | 1m */
    /* attn only: optional filters [shape [bits [batch]]], e.g. `bench_rt attn llama2-7b 3 1` */
    const char *f_shape = argc > 2 ? argv[2] : NULL;
    uint32_t f_bits = argc > 3 ? (uint32_t)atoi(argv[3]) : 0, f_batch = argc > 4 ? (uint32_t)atoi(argv[4]) : 0;
    int dev;
    cudaDeviceProp p;
    CU(cudaGetDevice(&dev));
    CU(cudaGetDeviceProperties(&p, dev));
    const char *path = getenv("KVQ_BENCH_CSV") ? getenv("KVQ_BENCH_CSV") : "build/bench_rt.csv";
    csv = fopen(path, "w");
    if (csv) fprintf(csv, "shape,batch,tokens,kernel,us,bytes,gbps,pct_copy\n");
    std::vector<float> off(8192), sc(8192);
    rt_channel_params(11, 8192, off.data(), sc.data());
    CU(cudaMalloc((void **)&d_off, 8192 * 4));
    CU(cudaMalloc((void **)&d_sc, 8192 * 4));
    CU(cudaMemcpy(d_off, off.data(), 8192 * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_sc, sc.data(), 8192 * 4, cudaMemcpyHostToDevice));
    copy_gbps = measure_copy();
    printf("bench_rt on %s: device-to-device copy %.0f GB/s (read + write, 2 GiB)\n", p.name, copy_gbps);
    if (csv) fprintf(csv, "copy,0,0,cudaMemcpyD2D,0,0,%.2f,100\n", copy_gbps);
    const shape shapes[2] = {{"llama2-7b", 32, 32, 128}, {"llama3-8b", 32, 8, 128}};
    if (!strcmp(only, "all") || !strcmp(only, "attn"))
        for (const shape &s : shapes)
            for (uint32_t B : {1u, 8u}) {
                if ((f_shape && strcmp(f_shape, s.name)) || (f_batch && f_batch != B)) continue;
                for (uint32_t bits : {4u, 3u, 2u})
                    if (!f_bits || f_bits == bits) bench_packed(s, bits, B);
                if (!f_bits)
                    for (uint32_t T : LENS) bench_fp16(s, B, T);
            }
    if (!strcmp(only, "all") || !strcmp(only, "append"))
        for (const shape &s : shapes) bench_append(s);
    if (!strcmp(only, "all") || !strcmp(only, "1m")) bench_1m();
    if (csv) fclose(csv);
    return 0;
}
