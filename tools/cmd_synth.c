/* cmd_synth.c — `kvq synth --like SHAPE -o DIR`: write a random-weight model of a named LLaMA
 * shape as a Hugging Face directory (calib/synth.h), for benchmarks of large shapes without
 * downloading weights. Not a trainer: the model predicts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "synth.h"

static void usage(FILE *f) {
    fprintf(f, "usage: kvq synth --like SHAPE -o DIR [--dtype bf16|f16|f32] [--seed N] [--layers N] [--json]\n\n"
               "Write a random-weight model of a named shape as a Hugging Face directory (config.json,\n"
               "safetensors shards of at most 2 GiB and their index). Weights are N(0, 0.02^2), norms 1;\n"
               "the same shape, dtype and seed give the same bytes.\n\n"
               "options:\n"
               "  --like SHAPE   llama-2-7b, llama-3-8b or tiny (required)\n"
               "  -o DIR         output directory, created when absent (required)\n"
               "  --dtype D      element type on disk: bf16 (default), f16 or f32\n"
               "  --seed N       random seed (default 0)\n"
               "  --layers N     number of layers instead of the shape's own\n"
               "  --json         print one JSON object instead of text\n"
               "  --help         this message\n");
}

static int parse_dtype(const char *s, kvq_st_dtype *d) {
    if (!strcmp(s, "bf16")) *d = KVQ_ST_BF16;
    else if (!strcmp(s, "f16")) *d = KVQ_ST_F16;
    else if (!strcmp(s, "f32")) *d = KVQ_ST_F32;
    else return 0;
    return 1;
}

static int parse_u64(const char *s, unsigned long long *v) {
    char *end;
    if (!*s || *s == '-') return 0;
    *v = strtoull(s, &end, 10);
    return *end == 0;
}

int kvq_cmd_synth(int argc, char **argv) {
    kvq_synth_opts o = {NULL, KVQ_ST_BF16, 0, 0, 0};
    const char *dir = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long u;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return KVQ_EXIT_OK; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!v) { fprintf(stderr, "kvq synth: '%s' needs a value or is unknown\n\n", a); usage(stderr); return KVQ_EXIT_USAGE; }
        if (!strcmp(a, "--like")) o.like = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) dir = v;
        else if (!strcmp(a, "--dtype") && parse_dtype(v, &o.dtype)) {}
        else if (!strcmp(a, "--seed") && parse_u64(v, &u)) o.seed = u;
        else if (!strcmp(a, "--layers") && parse_u64(v, &u) && u >= 1 && u <= 1000) o.n_layers = (int)u;
        else { fprintf(stderr, "kvq synth: bad option '%s %s'\n\n", a, v); usage(stderr); return KVQ_EXIT_USAGE; }
        i++;
    }
    if (!o.like || !dir) { fprintf(stderr, "kvq synth: --like and -o are required\n\n"); usage(stderr); return KVQ_EXIT_USAGE; }
    char why[512] = "";
    kvq_model_config c;
    kvq_status st = kvq_synth_config(o.like, o.n_layers, &c, why, sizeof why);
    if (st) return kvq_report("synth", st, "--like", why);
    double t0 = kvq_now();
    uint64_t bytes = 0;
    if (!json) fprintf(stderr, "kvq synth: writing %s (%d layers) to %s ...\n", o.like, c.n_layers, dir);
    st = kvq_synth_write(dir, &o, &bytes, why, sizeof why);
    if (st) return kvq_report("synth", st, dir, why);
    double secs = kvq_now() - t0;
    if (json) {
        kvq_json_out j;
        kvq_jo_begin(&j, stdout);
        kvq_jo_obj(&j, NULL);
        kvq_jo_str(&j, "dir", dir);
        kvq_jo_str(&j, "like", o.like);
        kvq_jo_int(&j, "n_layers", c.n_layers);
        kvq_jo_int(&j, "bytes", (long long)bytes);
        kvq_jo_num(&j, "seconds", secs);
        kvq_jo_end(&j, '}');
        kvq_jo_finish(&j);
    } else {
        printf("wrote %s: %s, %d layers, %.1f MiB of weights in %.1f s\n", dir, o.like, c.n_layers,
               bytes / 1048576.0, secs);
    }
    return KVQ_EXIT_OK;
}
