/* example_decode.c — the kvq CUDA runtime in a few lines (docs/runtime.md): open a codebook,
 * make a paged cache for 2 sequences, prefill one, then decode steps that append one token per
 * sequence and run attention for each layer. Real engines pass their own device K/V/Q buffers
 * (pre-RoPE keys, post-RoPE queries); here they are filled with a fixed pattern. Usage:
 *   example_decode [codebook.kvqc]   (without a file, a small synthetic codebook is built) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include "kvq_half.h"
#include "kvq_rt.h"

#define TRY(call)                                                                           \
    do {                                                                                    \
        kvq_status s_ = (call);                                                             \
        if (s_ != KVQ_OK) { fprintf(stderr, "%s: %s\n", kvq_status_name(s_), why); goto out; } \
    } while (0)

/* A 2-layer, 8-head (2 KV heads) x 64 codebook at 3 bits with 2 % capped outliers. */
static int synthetic(kvq_codebook *cb) {
    if (kvq_codebook_alloc(cb, 2, 128, 3, 3, 0) != KVQ_OK) return -1;
    kvq_model_identity *m = &cb->model;
    strcpy(m->architecture, "llama");
    m->n_heads = 8; m->n_kv_heads = 2; m->head_dim = 64;
    m->rope_theta = 10000.0f; m->rope_scaling_factor = 1.0f;
    cb->n_sink = 1;
    for (uint32_t l = 0; l < 2; l++) {
        kvq_layer_codebook *lc = &cb->layers[l];
        for (int i = 0; i < 8; i++) lc->k.centroids[i] = lc->v.centroids[i] = -0.875f + 0.25f * i;
        for (int c = 0; c < 128; c++) { lc->k.zero_point[c] = 0.0f; lc->k.half_range[c] = 1.0f; }
        lc->k.outlier_fraction = lc->v.outlier_fraction = 0.02f;
        lc->k.outlier_cap = 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    char why[256] = "";
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    kvq_rt *rt = NULL;
    kvq_rt_cache *cache = NULL;
    uint16_t *d_k = NULL, *d_v = NULL, *d_q = NULL;
    float *d_out = NULL;
    int rc = 1;
    if (argc > 1) { if (kvq_codebook_read(argv[1], &cb, why, sizeof why) != KVQ_OK) { fprintf(stderr, "%s\n", why); return 1; } }
    else if (synthetic(&cb)) return 1;
    {
        kvq_rt_dims dims = {cb.model.n_layers, cb.model.n_heads, cb.model.n_kv_heads, cb.model.head_dim};
        uint32_t kv_dim = dims.n_kv_heads * dims.head_dim, nq = 2 * dims.n_heads * dims.head_dim, prefill = 300;
        TRY(kvq_rt_open(&rt, &cb, &dims, why, sizeof why));
        kvq_rt_cache_opts o = {.batch = 2, .max_tokens = 4096, .page_tokens = 256};
        TRY(kvq_rt_cache_create(&cache, rt, &o, why, sizeof why));
        printf("cache: %.1f MiB for 2 x 4096 tokens x %u layers\n", kvq_rt_cache_bytes(cache) / 1048576.0, dims.n_layers);
        /* one buffer big enough for the prefill: (prefill, kv_dim) fp16 K and V, (2, n_heads, head_dim) Q */
        uint16_t *h = malloc((size_t)prefill * kv_dim * 2);
        for (size_t i = 0; i < (size_t)prefill * kv_dim; i++) h[i] = kvq_f32_to_f16(sinf(0.37f * (float)i));
        if (cudaMalloc((void **)&d_k, (size_t)prefill * kv_dim * 2) != cudaSuccess ||
            cudaMalloc((void **)&d_v, (size_t)prefill * kv_dim * 2) != cudaSuccess ||
            cudaMalloc((void **)&d_q, nq * 2) != cudaSuccess || cudaMalloc((void **)&d_out, nq * 4) != cudaSuccess ||
            cudaMemcpy(d_k, h, (size_t)prefill * kv_dim * 2, cudaMemcpyHostToDevice) != cudaSuccess ||
            cudaMemcpy(d_v, h, (size_t)prefill * kv_dim * 2, cudaMemcpyHostToDevice) != cudaSuccess ||
            cudaMemcpy(d_q, h, nq * 2, cudaMemcpyHostToDevice) != cudaSuccess) {
            fprintf(stderr, "CUDA: %s\n", cudaGetErrorString(cudaGetLastError()));
            free(h);
            goto out;
        }
        free(h);
        /* prefill slot 0 (300 tokens), then 4 decode steps over both slots */
        uint32_t s0 = 0, both[2] = {0, 1}, one[2] = {1, 1};
        TRY(kvq_rt_extend(cache, 1, &s0, &prefill, why, sizeof why));
        for (uint32_t l = 0; l < dims.n_layers; l++) TRY(kvq_rt_append(cache, l, d_k, d_v, KVQ_RT_F16, why, sizeof why));
        for (int step = 0; step < 4; step++) {
            TRY(kvq_rt_extend(cache, 2, both, one, why, sizeof why));
            for (uint32_t l = 0; l < dims.n_layers; l++) {
                TRY(kvq_rt_append(cache, l, d_k, d_v, KVQ_RT_F16, why, sizeof why));   /* rows 0, 1: the new tokens */
                TRY(kvq_rt_attention(cache, l, d_q, KVQ_RT_F16, d_out, KVQ_RT_F32, 0.0f, why, sizeof why));
            }
        }
        float out[8];
        if (cudaMemcpy(out, d_out, sizeof out, cudaMemcpyDeviceToHost) != cudaSuccess) goto out;
        printf("lengths %u and %u; last layer, slot 0, head 0: out[0..3] = %.4f %.4f %.4f %.4f\n",
               kvq_rt_seq_len(cache, 0), kvq_rt_seq_len(cache, 1), out[0], out[1], out[2], out[3]);
        rc = isfinite(out[0]) ? 0 : 1;
    }
out:
    cudaFree(d_k); cudaFree(d_v); cudaFree(d_q); cudaFree(d_out);
    kvq_rt_cache_free(cache);
    kvq_rt_close(rt);
    kvq_codebook_free(&cb);
    return rc;
}
