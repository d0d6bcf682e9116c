/* cmd_capture.c — `kvq capture`: run a calibration capture (calib/capture.h) into an HDF5 capture
 * file (docs/capture-format.md), continue one with --resume, or merge captures with --merge.
 * Argument parsing, progress and reporting only; the work is in calib/. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "capture.h"
#include "capture_h5.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvq capture --model M --text FILE -o OUT.h5 [--samples N] [--seq-len N] [--seed N]\n"
            "                   [--no-fisher] [--layers 0,3-5] [--dtype f32|f16|bf16] [--compress LEVEL]\n"
            "                   [--resume] [--tokenizer T] [--threads N] [--device D] [--no-overlap] [--json]\n"
            "       kvq capture --merge A.h5 B.h5 [...] -o OUT.h5\n\n"
            "Run the model over seeded windows of a calibration text and write, per layer and token,\n"
            "the keys before RoPE, the values, and their Fisher information (squared gradients of the\n"
            "window's mean loss) to an HDF5 file (docs/capture-format.md). One window at a time:\n"
            "memory does not grow with --samples. Each window is committed when written; a run that\n"
            "is interrupted keeps its committed windows and --resume continues it.\n\n"
            "  --model M         HF directory, .gguf or llama2.c .bin\n"
            "  --text FILE       calibration text (tokenized whole, then cropped into windows)\n"
            "  -o, --out OUT     the capture file (refused if it exists, unless --resume)\n"
            "  --samples N       windows (default 16)\n"
            "  --seq-len N       tokens per window (default 2048)\n"
            "  --seed N          window sampling seed (default 0; same seed, same windows)\n"
            "  --no-fisher       forward pass only: no fisher_k / fisher_v\n"
            "  --layers LIST     layers to capture, e.g. 0,3-5 (default all)\n"
            "  --dtype D         storage type f32 (default), f16 or bf16; f16 halves the file and fits\n"
            "                    the same codebook (centroids within 1e-3); bf16 moves key centroids ~1e-2\n"
            "  --compress LEVEL  gzip level 1-9 with byte shuffle (default 0: none)\n"
            "  --resume          continue OUT if it exists (same model and settings required)\n"
            "  --tokenizer T     tokenizer file (default: the model's own)\n"
            "  --threads N       CPU threads (default: one per core; on a busy machine 1 can be faster)\n"
            "  --device D        cpu (default), cuda (GPU, fp32 math: the CPU's results) or cuda-bf16\n"
            "                    (tensor-core bf16 math); cuda needs build/kvq-cuda (`make cuda`)\n"
            "  --no-overlap      compute, write, commit one window at a time. By default window i is\n"
            "                    written while window i+1 computes, which holds a second window's\n"
            "                    K, V and Fisher in host memory: captured layers x 4 x seq-len x\n"
            "                    kv_dim x 4 bytes (4.3 GB for LLaMA-2-7B at 2048; pinned on a GPU)\n"
            "  --merge A B ...   concatenate captures of the same model and settings into OUT\n"
            "  --json            print one JSON summary on stdout\n"
            "  --help            this text\n");
}

typedef struct cap_args {
    kvq_capture_opts o;
    int json, merge;
    const char *merge_in[64];
    int n_merge;
} cap_args;

static int bad(const char *msg, const char *v) {
    fprintf(stderr, "kvq capture: %s%s%s\n", msg, v ? ": " : "", v ? v : "");
    return -1;
}

static int parse_u64(const char *v, unsigned long long max, unsigned long long *out) {
    char *end;
    errno = 0;
    if (!v || *v == '-' || !*v) return -1;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x > max) return -1;
    *out = x;
    return 0;
}

/* "0,3-5" -> ascending unique layer list. */
static int parse_layers(const char *v, kvq_capture_opts *o) {
    unsigned char on[KVQ_CAPTURE_MAX_LAYERS] = {0};
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *dash = strchr(tok, '-');
        unsigned long long a, b;
        if (dash) *dash = 0;
        if (parse_u64(tok, KVQ_CAPTURE_MAX_LAYERS - 1, &a) ||
            (dash ? parse_u64(dash + 1, KVQ_CAPTURE_MAX_LAYERS - 1, &b) : (b = a, 0)) || b < a)
            return -1;
        for (unsigned long long i = a; i <= b; i++) on[i] = 1;
    }
    o->n_layers = 0;
    for (uint32_t i = 0; i < KVQ_CAPTURE_MAX_LAYERS; i++)
        if (on[i]) o->layers[o->n_layers++] = i;
    return o->n_layers ? 0 : -1;
}

static int parse_value(cap_args *a, const char *opt, const char *v) {
    kvq_capture_opts *o = &a->o;
    unsigned long long x;
    if (!strcmp(opt, "--model")) o->model_path = v;
    else if (!strcmp(opt, "--text")) o->text_path = v;
    else if (!strcmp(opt, "-o") || !strcmp(opt, "--out")) o->out_path = v;
    else if (!strcmp(opt, "--tokenizer")) o->tokenizer_path = v;
    else if (!strcmp(opt, "--samples")) { if (parse_u64(v, 1u << 24, &x) || !x) return bad("--samples wants 1..2^24", v); o->samples = (uint32_t)x; }
    else if (!strcmp(opt, "--seq-len")) { if (parse_u64(v, 1u << 24, &x) || x < 2) return bad("--seq-len wants 2..2^24", v); o->seq_len = (uint32_t)x; }
    else if (!strcmp(opt, "--seed")) { if (parse_u64(v, UINT64_MAX, &x)) return bad("--seed wants a non-negative integer", v); o->seed = x; }
    else if (!strcmp(opt, "--compress")) { if (parse_u64(v, 9, &x)) return bad("--compress wants 0..9", v); o->compress = (int)x; }
    else if (!strcmp(opt, "--threads")) { if (parse_u64(v, 1024, &x)) return bad("--threads wants 0..1024", v); o->threads = (int)x; }
    else if (!strcmp(opt, "--layers")) { if (parse_layers(v, o)) return bad("--layers wants a list like 0,3-5", v); }
    else if (!strcmp(opt, "--device")) o->device = v;
    else if (!strcmp(opt, "--dtype")) {
        if (!strcmp(v, "f32") || !strcmp(v, "float32")) o->dtype = KVQ_CAPTURE_F32;
        else if (!strcmp(v, "f16") || !strcmp(v, "float16")) o->dtype = KVQ_CAPTURE_F16;
        else if (!strcmp(v, "bf16") || !strcmp(v, "bfloat16")) o->dtype = KVQ_CAPTURE_BF16;
        else return bad("--dtype wants f32, f16 or bf16", v);
    } else return bad("unknown option", opt);
    return 0;
}

/* 0: parsed; 1: --help printed; -1: usage error printed. */
static int parse_args(int argc, char **argv, cap_args *a) {
    static const char *const with_value[] = {"--model", "--text", "-o", "--out", "--tokenizer", "--samples",
                                             "--seq-len", "--seed", "--compress", "--threads", "--layers",
                                             "--dtype", "--device", NULL};
    memset(a, 0, sizeof *a);
    kvq_capture_opts_init(&a->o);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) { usage(stdout); return 1; }
        if (!strcmp(opt, "--json")) { a->json = 1; continue; }
        if (!strcmp(opt, "--no-fisher")) { a->o.fisher = 0; continue; }
        if (!strcmp(opt, "--resume")) { a->o.resume = 1; continue; }
        if (!strcmp(opt, "--no-overlap")) { a->o.overlap = 0; continue; }
        if (!strcmp(opt, "--merge")) {
            a->merge = 1;
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                if (a->n_merge == 64) return bad("--merge takes at most 64 files", NULL);
                a->merge_in[a->n_merge++] = argv[++i];
            }
            continue;
        }
        int takes = 0;
        for (int k = 0; with_value[k]; k++) takes |= !strcmp(opt, with_value[k]);
        if (!takes) return bad("unknown option", opt);
        if (i + 1 >= argc) return bad("missing value for", opt);
        if (parse_value(a, opt, argv[++i])) return -1;
    }
    if (!a->o.out_path) return bad("-o OUT is required", NULL);
    if (a->merge) return a->n_merge >= 2 ? 0 : bad("--merge needs at least two files", NULL);
    if (!a->o.model_path || !a->o.text_path) return bad("--model and --text are required", NULL);
    return 0;
}

typedef struct progress_state {
    kvq_progress bar;
    uint32_t seq_len;
    int started;
} progress_state;

static void on_progress(void *user, uint32_t done, uint32_t total, double loss, double seconds) {
    progress_state *p = user;
    if (!p->started) {
        kvq_progress_start(&p->bar, "capture", "tokens", (size_t)total * p->seq_len);
        p->started = 1;
    }
    kvq_progress_update(&p->bar, (size_t)done * p->seq_len);
    (void)loss;
    (void)seconds;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0;
}

static int run_merge(const cap_args *a) {
    char why[1024] = "";
    kvq_status st = kvq_capture_merge(a->merge_in, (size_t)a->n_merge, a->o.out_path, why, sizeof why);
    if (st) return kvq_report("capture", st, "merge", why);
    if (a->json) {
        kvq_json_out j;
        kvq_jo_begin(&j, stdout);
        kvq_jo_obj(&j, NULL);
        kvq_jo_str(&j, "merged_into", a->o.out_path);
        kvq_jo_int(&j, "inputs", a->n_merge);
        kvq_jo_end(&j, '}');
        kvq_jo_finish(&j);
    } else {
        printf("merged %d captures into %s\n", a->n_merge, a->o.out_path);
    }
    return KVQ_EXIT_OK;
}

static void print_summary(const cap_args *a, const kvq_capture_result *r) {
    const kvq_capture_opts *o = &a->o;
    double rss = peak_rss_mib();
    if (a->json) {
        kvq_json_out j;
        kvq_jo_begin(&j, stdout);
        kvq_jo_obj(&j, NULL);
        kvq_jo_str(&j, "output", o->out_path);
        kvq_jo_str(&j, "model", o->model_path);
        kvq_jo_str(&j, "text", o->text_path);
        kvq_jo_str(&j, "text_sha256", r->text_sha256);
        kvq_jo_int(&j, "text_tokens", (long long)r->text_tokens);
        kvq_jo_int(&j, "samples", r->samples_total);
        kvq_jo_int(&j, "samples_resumed", r->samples_resumed);
        kvq_jo_int(&j, "seq_len", o->seq_len);
        kvq_jo_int(&j, "seed", (long long)o->seed);
        kvq_jo_bool(&j, "fisher", o->fisher);
        kvq_jo_str(&j, "dtype", kvq_capture_dtype_name(o->dtype));
        kvq_jo_num(&j, "seconds", r->seconds);
        kvq_jo_num(&j, "engine_seconds", r->engine_seconds);
        kvq_jo_bool(&j, "overlap", o->overlap);
        kvq_jo_int(&j, "overlap_bytes", (long long)r->overlap_bytes);
        kvq_jo_num(&j, "tokens_per_s", r->tokens_per_s);
        kvq_jo_num(&j, "mean_loss", r->mean_loss);
        kvq_jo_int(&j, "engine_bytes", (long long)r->engine_bytes);
        kvq_jo_num(&j, "peak_rss_mib", rss);
        kvq_jo_end(&j, '}');
        kvq_jo_finish(&j);
        return;
    }
    printf("captured %u x %u tokens (%u resumed) of %s%s -> %s: %.1f s (engine %.1f s, %s), %.0f tokens/s, "
           "mean loss %.4f, engine %.1f MiB, second window buffer %.1f MiB, peak RSS %.0f MiB\n", r->samples_total,
           o->seq_len, r->samples_resumed, o->model_path, o->fisher ? "" : " (no Fisher)", o->out_path, r->seconds,
           r->engine_seconds, o->overlap ? "write overlapped" : "no overlap", r->tokens_per_s, r->mean_loss,
           (double)r->engine_bytes / 1048576.0, (double)r->overlap_bytes / 1048576.0, rss);
}

int kvq_cmd_capture(int argc, char **argv) {
    cap_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc > 0 ? KVQ_EXIT_OK : KVQ_EXIT_USAGE;
    if (a.merge) return run_merge(&a);
    progress_state ps = {.seq_len = a.o.seq_len};
    a.o.progress = on_progress;
    a.o.progress_user = &ps;
    kvq_capture_result res;
    char why[1024] = "";
    kvq_status st = kvq_capture_run(&a.o, &res, why, sizeof why);
    if (ps.started) kvq_progress_end(&ps.bar);
    if (st) {
        int code = kvq_report("capture", st, a.o.out_path, why);
        if (res.samples_total)
            fprintf(stderr, "kvq capture: %s keeps %u committed samples; continue it with --resume\n",
                    a.o.out_path, res.samples_total);
        return code;
    }
    print_summary(&a, &res);
    return KVQ_EXIT_OK;
}
