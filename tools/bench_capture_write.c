/* bench_capture_write.c — `build/bench_capture_write`: throughput of the capture file writer
 * (calib/capture_h5.h) alone, no model: N synthetic windows of L layers x (K, V, Fisher K, Fisher
 * V) of seq_len x kv_dim fp32 values go through kvq_capture_create / begin / put_layer / commit
 * into a file in --dir, for each storage dtype, and the GB/s of fp32 input (commit and fsync
 * included) is printed for the writer's paths side by side:
 *   filter   HDF5's filter pipeline (H5Dwrite, HDF5 computes the Fletcher-32), 1 thread: the
 *            writer as it was before direct chunk writes, but with its vectorised statistics
 *   direct   chunks checksummed by kvq and written with H5Dwrite_chunk, 1 thread
 *   direct   the same with --threads T OpenMP threads (default: online CPUs)
 * Defaults are one LLaMA-7B window shape (32 layers, 2048 x 4096, Fisher: 1.07 G values, 4.3 GB of
 * fp32 input a window) and 2 windows; a second window is what the capture loop repeats. Not a
 * test: it checks nothing but the writer's status, and prints figures.
 * Options: --dir D (default /dev/shm), --windows N, --layers L, --seq-len T, --kv-dim C,
 * --dtype f32,f16,bf16 (comma list), --compress G, --threads T, --paths filter,direct1,direct,
 * --repeat R (best of R runs per row: a shared machine is noisy; default 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture_h5.h"
#include "rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


typedef struct cfg {
    const char *dir;
    uint32_t windows, layers, seq_len, kv_dim, compress, repeat;
    int threads;
    char dtypes[64], paths[64];
} cfg;

/* One layer's four tensors (4, seq_len, kv_dim), reused for every layer: K/V with per-channel
 * scales and offsets, Fisher tiny and log-normal-ish (as squared gradients are). */
static float *make_data(const cfg *c) {
    size_t n = (size_t)c->seq_len * c->kv_dim;
    float *x = malloc(4 * n * sizeof *x);
    if (!x) return NULL;
    for (int t = 0; t < 4; t++) {
        kvq_rng r;
        kvq_rng_seed(&r, 0x1234u + (uint64_t)t);
        for (size_t i = 0; i < n; i++) {
            double u = kvq_rng_uniform(&r) - 0.5, ch = (double)(i % c->kv_dim);
            x[t * n + i] = t < 2 ? (float)(u * (1 + fmod(ch, 7.0)) + 0.01 * ch)
                                 : (float)(1e-9 * exp(8 * u));
        }
    }
    return x;
}

static void meta_for(const cfg *c, kvq_capture_dtype d, kvq_capture_meta *m) {
    kvq_model_identity id;
    memset(&id, 0, sizeof id);
    id.n_layers = c->layers;
    id.n_heads = id.n_kv_heads = c->kv_dim / 128 ? c->kv_dim / 128 : 1;
    id.head_dim = c->kv_dim / id.n_kv_heads;
    id.hidden = c->kv_dim;
    id.vocab = 32000;
    kvq_capture_meta_init(m, &id);
    m->seq_len = c->seq_len;
    m->samples_requested = c->windows;
    m->dtype = d;
    m->compress = (int32_t)c->compress;
}

/* Write c->windows windows with one writer setting; returns seconds (negative on failure). */
static double run_one(const cfg *c, kvq_capture_dtype d, int threads, int direct, const float *x) {
    char path[4096], why[512] = "";
    size_t n = (size_t)c->seq_len * c->kv_dim;
    kvq_capture_meta m;
    kvq_capture_writer *w = NULL;
    meta_for(c, d, &m);
    snprintf(path, sizeof path, "%s/bench_capture_write-%ld.h5", c->dir, (long)getpid());
    unlink(path);
    kvq_status st = kvq_capture_create(path, &m, &w, why, sizeof why);
    kvq_capture_writer_set_threads(w, threads);
    kvq_capture_writer_set_direct(w, direct);
    double t0 = now();
    for (uint32_t s = 0; s < c->windows && !st; s++) {
        st = kvq_capture_begin(w, (uint64_t)s * 17, c->seq_len, why, sizeof why);
        for (uint32_t l = 0; l < c->layers && !st; l++)
            st = kvq_capture_put_layer(w, l, x, x + n, x + 2 * n, x + 3 * n, why, sizeof why);
        if (!st) st = kvq_capture_commit(w, why, sizeof why);
    }
    double secs = now() - t0;
    kvq_status cst = kvq_capture_close(w, st ? NULL : why, sizeof why);
    unlink(path);
    if (st || cst) {
        fprintf(stderr, "bench_capture_write: %s: %s\n", path, why);
        return -1;
    }
    return secs;
}

/* Is `name` one of the comma-separated words of `list`? */
static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t w = strcspn(p, ",");
        if (w == n && !strncmp(p, name, n)) return 1;
        p += w + (p[w] == ',');
    }
    return 0;
}

/* 0: run; -1: help printed; 1: bad arguments (message printed). */
static int parse(int argc, char **argv, cfg *c) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *c = (cfg){"/dev/shm", 2, 32, 2048, 4096, 0, 1, ncpu > 0 ? (int)ncpu : 1, "f32,f16,bf16", "filter,direct1,direct"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: bench_capture_write [--dir D] [--windows N] [--layers L] [--seq-len T] [--kv-dim C]\n"
                   "       [--dtype f32,f16,bf16] [--compress G] [--threads T] [--paths filter,direct1,direct] [--repeat R]\n");
            return -1;
        }
        if (!v) { fprintf(stderr, "bench_capture_write: %s needs a value\n", a); return 1; }
        i++;
        if (!strcmp(a, "--dir")) c->dir = v;
        else if (!strcmp(a, "--windows")) c->windows = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--layers")) c->layers = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seq-len")) c->seq_len = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--kv-dim")) c->kv_dim = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--compress")) c->compress = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--threads")) c->threads = atoi(v);
        else if (!strcmp(a, "--repeat")) c->repeat = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--dtype")) snprintf(c->dtypes, sizeof c->dtypes, "%s", v);
        else if (!strcmp(a, "--paths")) snprintf(c->paths, sizeof c->paths, "%s", v);
        else { fprintf(stderr, "bench_capture_write: unknown option %s\n", a); return 1; }
    }
    if (!c->windows || !c->layers || !c->seq_len || !c->kv_dim || c->threads < 1 || c->compress > 9 || !c->repeat) {
        fprintf(stderr, "bench_capture_write: windows, layers, seq-len, kv-dim, threads, repeat >= 1; compress 0..9\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    cfg c;
    int pr = parse(argc, argv, &c);
    if (pr) return pr < 0 ? 0 : 2;
    float *x = make_data(&c);
    if (!x) { fprintf(stderr, "bench_capture_write: out of memory\n"); return 1; }
    double gb = (double)c.windows * c.layers * 4 * c.seq_len * c.kv_dim * 4 / 1e9;
    printf("writer: %u windows x %u layers x 4 tensors x %u x %u fp32 = %.2f GB of input a run, into %s, "
           "compress %u, %d threads for \"direct\", best of %u\n", c.windows, c.layers, c.seq_len, c.kv_dim, gb,
           c.dir, c.compress, c.threads, c.repeat);
    printf("| dtype | path | threads | seconds | GB/s of fp32 input | vs filter |\n| --- | --- | --- | --- | --- | --- |\n");
    static const struct { const char *name; kvq_capture_dtype d; } DT[] = {
        {"f32", KVQ_CAPTURE_F32}, {"f16", KVQ_CAPTURE_F16}, {"bf16", KVQ_CAPTURE_BF16}};
    static const struct { const char *name; int direct, all; } PA[] = {
        {"filter", 0, 0}, {"direct1", 1, 0}, {"direct", 1, 1}};
    int rc = 0;
    for (int d = 0; d < 3; d++) {
        if (!in_list(c.dtypes, DT[d].name)) continue;
        double base = 0;
        for (int p = 0; p < 3; p++) {
            if (!in_list(c.paths, PA[p].name)) continue;
            int th = PA[p].all ? c.threads : 1;
            double s = -1;
            for (uint32_t r = 0; r < c.repeat; r++) {
                double t = run_one(&c, DT[d].d, th, PA[p].direct, x);
                if (t < 0) { s = -1; break; }
                if (s < 0 || t < s) s = t;
            }
            if (s < 0) { rc = 1; continue; }
            if (p == 0) base = s;
            printf("| %s | %s | %d | %.2f | %.2f | ", DT[d].name, PA[p].direct ? "direct" : "filter", th, s, gb / s);
            if (base > 0) printf("%.2fx |\n", base / s);
            else printf("- |\n");
            fflush(stdout);
        }
    }
    free(x);
    return rc;
}
