/* bench_forward.c — CPU throughput of the engine (calib/engine.h): tokens/s of the forward pass and
 * of forward+backward (what `kvq capture` runs) at 1 thread and at N threads, side by side with the
 * 1-thread forward pass as the baseline ratio, plus tokens per CPU-second. Tokens are seeded pseudo-random ids (speed does not
 * depend on content). Not a correctness test (tests/test_engine_ref.c is).
 *
 *   build/bench_forward [--model DIR] [--seq-len 512] [--batch 1] [--windows 4] [--threads N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Tokens/s (wall clock) of `windows` windows (in batches) at `threads` threads, and in *per_cpu_s
 * tokens per second of process CPU time (steadier than wall time on a shared machine; it counts
 * spinning threads too); < 0 on error. */
static double run(const kvq_model *m, const int32_t *tokens, int T, int B, int windows, int threads,
                  int backward, double *per_cpu_s) {
    kvq_engine_set_threads(threads);
    kvq_engine_opts o = {B, T, backward};
    kvq_engine *e = NULL;
    char why[256] = "";
    if (kvq_engine_init(&e, m, &o, why, sizeof why) != KVQ_OK) {
        fprintf(stderr, "bench_forward: %s\n", why);
        return -1;
    }
    /* one warm-up batch (page faults, BLAS buffers), then the timed windows */
    int ok = kvq_engine_forward(e, tokens, 1, NULL, why, sizeof why) == KVQ_OK;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int w = 0; ok && w < windows; w += B) {
        int nb = windows - w < B ? windows - w : B;
        ok = kvq_engine_forward(e, tokens + (size_t)w * T, nb, NULL, why, sizeof why) == KVQ_OK &&
             (!backward || kvq_engine_backward(e, why, sizeof why) == KVQ_OK);
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    kvq_engine_free(e);
    if (!ok) { fprintf(stderr, "bench_forward: %s\n", why); return -1; }
    *per_cpu_s = (double)windows * T / dc;
    return (double)windows * T / dt;
}

int main(int argc, char **argv) {
    const char *model = "data/models/kvq-tiny-15m";
    int T = 512, B = 1, windows = 4, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: bench_forward [--model DIR] [--seq-len N] [--batch B] [--windows W] [--threads N]\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "bench_forward: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--seq-len")) T = atoi(v);
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--windows")) windows = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else { fprintf(stderr, "bench_forward: unknown option %s\n", a); return 2; }
        i++;
    }
    if (T < 2 || B < 1 || windows < 1 || threads < 1) { fprintf(stderr, "bench_forward: bad option value\n"); return 2; }
    kvq_model m;
    char why[512] = "";
    kvq_status st = kvq_model_load(model, &m, why, sizeof why);
    if (st != KVQ_OK) { fprintf(stderr, "bench_forward: %s: %s\n", model, why); return 1; }
    const kvq_model_config *c = &m.cfg;
    int32_t *tokens = malloc((size_t)windows * T * sizeof *tokens);
    if (!tokens) { kvq_model_free(&m); return 1; }
    unsigned long long s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < (size_t)windows * T; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tokens[i] = (int32_t)((s >> 33) % (unsigned long long)c->vocab);
    }
    printf("bench_forward: %s (%d layers, hidden %d, %d:%d heads x %d, vocab %d)\n", model, c->n_layers,
           c->hidden, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab);
    kvq_engine_opts fo = {B, T, 0}, bo = {B, T, 1};
    printf("seq_len %d, batch %d, %d windows per run; activations %.1f MiB forward, %.1f MiB with backward\n",
           T, B, windows, kvq_engine_activation_bytes(c, &fo) / 1048576.0,
           kvq_engine_activation_bytes(c, &bo) / 1048576.0);
    printf("%-34s %12s %8s %16s\n", "run", "tokens/s", "ratio", "tokens/CPU-s");
    /* (threads, backward); the first is the baseline; N-thread runs only when N > 1 */
    int runs[4][2] = {{1, 0}, {threads, 0}, {1, 1}, {threads, 1}};
    double base = 0;
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++) {
        if (k % 2 && threads == 1) continue;
        double per_cpu = 0, r = run(&m, tokens, T, B, windows, runs[k][0], runs[k][1], &per_cpu);
        if (r < 0) { rc = 1; break; }
        if (k == 0) base = r;
        char label[64];
        snprintf(label, sizeof label, "%s, %d thread%s%s", runs[k][1] ? "forward+backward" : "forward",
                 runs[k][0], runs[k][0] > 1 ? "s" : "", k == 0 ? " (baseline)" : "");
        printf("%-34s %12.0f %8.2f %16.0f\n", label, r, r / base, per_cpu);
    }
    free(tokens);
    kvq_model_free(&m);
    return rc;
}
