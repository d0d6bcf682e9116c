/* bench_calib_gpu.c — times the CUDA engine doing the calibration capture's GPU work: for each of
 * W random-token windows of T tokens, a forward pass and an activation-gradient backward pass with
 * per-layer K pre-RoPE, V and Fisher (squared gradients) copied to host memory — what
 * tools/bench_capture_torch.py times for PyTorch + HF transformers. Prints one JSON line per run
 * (seconds, tokens/s, GPU memory). Model loading and weight upload are timed apart.
 *   bench_calib_gpu --model DIR [--windows 16] [--seq 2048] [--math bf16|fp32] [--no-copy]
 *                   [--seed N] [--runs "bf16:16:2048,fp32:2:2048,bf16:1:32768:1"] [--synth SHAPE]
 * --runs lists several math:windows:seq[:1 = no copy-back] runs over one model load; --synth SHAPE
 * first writes a kvq synth model (bf16, seed 1) into DIR when DIR has no config.json. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "kvq_engine_cuda.h"
#include "rng.h"
#include "synth.h"
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One run: returns 0 on success. */
static int bench(const kvq_model *m, kvq_gpu_math math, int windows, int T, int copy, uint64_t seed) {
    char why[512] = "";
    size_t free0 = 0, total = 0, free1 = 0;
    cudaMemGetInfo(&free0, &total);
    kvq_gpu_engine_opts o = {1, T, math, 1, copy, 1, 0, 0};
    kvq_gpu_engine *e = NULL;
    double t0 = now();
    kvq_status st = kvq_gpu_engine_init(&e, m, &o, why, sizeof why);
    double t_init = now() - t0;
    const char *mname = math == KVQ_GPU_BF16 ? "bf16" : "fp32";
    if (st != KVQ_OK) {
        printf("{\"engine\":\"kvq-cuda\",\"math\":\"%s\",\"windows\":%d,\"seq\":%d,\"error\":\"%s: %s\"}\n", mname,
               windows, T, kvq_status_name(st), why);
        fflush(stdout);
        return 1;
    }
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    kvq_rng r;
    kvq_rng_seed(&r, seed);
    double loss_sum = 0, fisher_sum = 0, t_run = 0;
    int L = m->cfg.n_layers, kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
    for (int w = -1; w < windows && st == KVQ_OK; w++) {   /* w = -1: warm-up, not timed */
        for (int t = 0; t < T; t++) tok[t] = (int32_t)kvq_rng_below(&r, (uint64_t)m->cfg.vocab);
        double ts = now(), loss = 0;
        st = kvq_gpu_engine_forward(e, tok, 1, &loss, why, sizeof why);
        if (st == KVQ_OK) st = kvq_gpu_engine_backward(e, why, sizeof why);
        if (w >= 0) t_run += now() - ts;
        if (st != KVQ_OK || w < 0) continue;
        loss_sum += loss;
        if (copy) fisher_sum += kvq_gpu_engine_k_pre_rope_grad(e, L - 1)[(size_t)(T / 2) * kvd];
    }
    cudaMemGetInfo(&free1, &total);
    kvq_gpu_engine_info info;
    kvq_gpu_engine_get_info(e, &info);
    printf("{\"engine\":\"kvq-cuda\",\"device\":\"%s\",\"math\":\"%s\",\"weights\":\"%s\",\"windows\":%d,\"seq\":%d,"
           "\"copy_back\":%d,\"status\":\"%s\",\"seconds\":%.3f,\"tokens_per_s\":%.0f,\"init_seconds\":%.2f,"
           "\"weight_gib\":%.2f,\"work_gib\":%.2f,\"device_used_gib\":%.2f,\"q_chunk\":%d,\"mean_loss\":%.5f,"
           "\"fisher_probe\":%.4g%s%s%s}\n",
           info.device_name, mname, info.weight_dtype, windows, T, copy, kvq_status_name(st), t_run,
           windows * (double)T / t_run, t_init, info.weight_bytes / 1073741824.0, info.work_bytes / 1073741824.0,
           (double)(free0 - free1) / 1073741824.0, info.q_chunk, loss_sum / windows, fisher_sum,
           st ? ",\"error\":\"" : "", st ? why : "", st ? "\"" : "");
    fflush(stdout);
    free(tok);
    kvq_gpu_engine_free(e);
    return st != KVQ_OK;
}

int main(int argc, char **argv) {
    const char *model = NULL, *runs = NULL, *synth = NULL;
    int windows = 16, T = 2048, copy = 1;
    kvq_gpu_math math = KVQ_GPU_BF16;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--no-copy")) { copy = 0; continue; }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--windows")) windows = atoi(v);
        else if (!strcmp(a, "--seq")) T = atoi(v);
        else if (!strcmp(a, "--math")) math = strcmp(v, "fp32") ? KVQ_GPU_BF16 : KVQ_GPU_FP32;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--runs")) runs = v;
        else if (!strcmp(a, "--synth")) synth = v;
        else { fprintf(stderr, "usage: bench_calib_gpu --model DIR [--windows W] [--seq T] [--math bf16|fp32] "
                               "[--no-copy] [--seed N] [--runs math:W:T[:1],...] [--synth SHAPE]\n"); return 2; }
        i++;
    }
    if (!model || windows < 1 || T < 2) { fprintf(stderr, "bench_calib_gpu: --model DIR is required\n"); return 2; }
    kvq_model m;
    char why[512] = "", cfg[4096];
    double t0 = now();
    snprintf(cfg, sizeof cfg, "%s/config.json", model);
    if (synth && access(cfg, F_OK) != 0) {
        kvq_synth_opts so = {synth, KVQ_ST_BF16, 1, 0, 0};
        uint64_t bytes = 0;
        if (kvq_synth_write(model, &so, &bytes, why, sizeof why) != KVQ_OK) {
            fprintf(stderr, "bench_calib_gpu: synth %s: %s\n", model, why);
            return 1;
        }
        printf("{\"synth\":\"%s\",\"bytes\":%llu,\"seconds\":%.1f}\n", synth, (unsigned long long)bytes, now() - t0);
        t0 = now();
    }
    kvq_status st = kvq_model_load(model, &m, why, sizeof why);
    if (st != KVQ_OK) { fprintf(stderr, "bench_calib_gpu: %s: %s\n", model, why); return 1; }
    printf("{\"engine\":\"kvq-cuda\",\"model\":\"%s\",\"dtype\":\"%s\",\"load_seconds\":%.2f}\n", model, m.dtype,
           now() - t0);
    fflush(stdout);
    int bad = 0;
    if (!runs) {
        bad = bench(&m, math, windows, T, copy, seed);
    } else {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", runs);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            char mm[8] = "";
            int w = 0, t = 0, nc = 0;
            if (sscanf(tok, "%7[a-z0-9]:%d:%d:%d", mm, &w, &t, &nc) < 3 || w < 1 || t < 2) {
                fprintf(stderr, "bench_calib_gpu: bad run '%s'\n", tok);
                return 2;
            }
            bad |= bench(&m, strcmp(mm, "fp32") ? KVQ_GPU_BF16 : KVQ_GPU_FP32, w, t, nc ? 0 : copy, seed);
        }
    }
    kvq_model_free(&m);
    return bad;
}
