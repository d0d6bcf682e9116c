/* cmd_ablate.c — `kvq ablate`: the KVQuant ablation ladder and the baselines on one model, end to
 * end (codebook/ablate.c does the work); writes DIR/ablation.{md,csv,json,svg} and prints the
 * perplexity table. This file parses options and reports progress. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ablate.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: kvq ablate --model M --calib FILE --text FILE [options]\n\n"
        "Capture (or reuse a capture), fit and evaluate the KVQuant ablation ladder (int per-token ->\n"
        "per-channel keys -> pre-RoPE keys -> nuq unweighted -> nuq Fisher -> + 1%% outliers -> + sink\n"
        "-> + Q-Norm) and the baselines (nf, atom, flexgen, kivi) at each bit width; write\n"
        "DIR/ablation.md, .csv, .json and .svg.\n\n"
        "  --model PATH          HF directory, .gguf or llama2.c .bin\n"
        "  --calib FILE          calibration text\n"
        "  --text FILE           evaluation text (non-overlapping windows)\n"
        "  --bits LIST           bit widths (default 4,3,2)\n"
        "  --capture FILE        reuse this capture if it exists, else write it (default DIR/capture.h5)\n"
        "  --samples N           calibration windows (default 16)\n"
        "  --calib-seq-len N     calibration window length (default 512)\n"
        "  --seed S              calibration window seed (default 0)\n"
        "  --seq-len N           evaluation window length (default 512)\n"
        "  --max-windows W       evaluate the first W windows only (default: all)\n"
        "  --batch B             evaluation windows per forward pass (default 4)\n"
        "  --threads T           fit threads (default 1)\n"
        "  --tokenizer PATH      tokenizer (default: the model's own)\n"
        "  -o, --out DIR         output directory (default ablation)\n"
        "  --json                print ablation.json on stdout instead of the table\n"
        "  -h, --help            this text\n");
}

static void log_line(void *user, const char *line) {
    kvq_progress *p = user;
    if (p->enabled) fprintf(stderr, "\r%-100s\r", "");
    fprintf(stderr, "kvq ablate: %s\n", line);
}

static void progress_cb(void *user, size_t done, size_t total) {
    kvq_progress *p = user;
    if (!p->total) kvq_progress_start(p, "evaluate", "windows", total);
    kvq_progress_update(p, done);
}

static int parse_args(int argc, char **argv, kvq_ablate_opts *o, int *json) {
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"calib", 1, 0, 'C'}, {"text", 1, 0, 't'}, {"bits", 1, 0, 'b'},
        {"capture", 1, 0, 'c'}, {"samples", 1, 0, 's'}, {"calib-seq-len", 1, 0, 'L'}, {"seed", 1, 0, 'S'},
        {"seq-len", 1, 0, 'n'}, {"max-windows", 1, 0, 'w'}, {"batch", 1, 0, 'B'}, {"threads", 1, 0, 'T'},
        {"tokenizer", 1, 0, 'k'}, {"out", 1, 0, 'o'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    kvq_ablate_opts_default(o);
    o->out_dir = "ablation";
    *json = 0;
    int c;
    long long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_path = optarg; break;
        case 'C': o->calib_path = optarg; break;
        case 't': o->text_path = optarg; break;
        case 'b':
            if (kvq_eval_parse_bits(optarg, o->bits, KVQ_ABLATE_MAX_BITS, &o->n_bits) != KVQ_OK) {
                fprintf(stderr, "kvq ablate: bad --bits '%s' (1..%d, comma-separated)\n", optarg, KVQ_MAX_BITS);
                return KVQ_EXIT_USAGE;
            }
            break;
        case 'c': o->capture_path = optarg; break;
        case 's': v = atoll(optarg); o->samples = v > 0 && v < 1000000 ? (uint32_t)v : 0; break;
        case 'L': v = atoll(optarg); o->calib_seq_len = v > 0 && v < 1000000 ? (uint32_t)v : 0; break;
        case 'S': o->seed = strtoull(optarg, NULL, 10); break;
        case 'n': o->seq_len = atoi(optarg); break;
        case 'w': v = atoll(optarg); o->max_windows = v > 0 ? (size_t)v : 0; break;
        case 'B': o->batch = atoi(optarg); break;
        case 'T': o->n_threads = atoi(optarg); break;
        case 'k': o->tokenizer_path = optarg; break;
        case 'o': o->out_dir = optarg; break;
        case 'j': *json = 1; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return KVQ_EXIT_USAGE;
        }
    }
    if (optind < argc) { fprintf(stderr, "kvq ablate: unexpected argument '%s'\n", argv[optind]); return KVQ_EXIT_USAGE; }
    if (!o->model_path || !o->calib_path || !o->text_path) {
        fprintf(stderr, "kvq ablate: --model, --calib and --text are required\n");
        usage(stderr);
        return KVQ_EXIT_USAGE;
    }
    if (o->samples < 1 || o->calib_seq_len < 2 || o->seq_len < 2 || o->batch < 1 || o->n_threads < 1) {
        fprintf(stderr, "kvq ablate: --samples/--batch/--threads must be >= 1, sequence lengths >= 2\n");
        return KVQ_EXIT_USAGE;
    }
    return 0;
}

static void print_table(const kvq_ablate_report *r) {
    size_t n;
    const kvq_ablate_config *cfg = kvq_ablate_configs(&n);
    printf("reference (fp32 K/V) ppl %.4f, fp16 cache %.4f; %zu windows x %d tokens\n", r->fp16.ref_ppl,
           r->fp16.ppl, r->fp16.n_windows, r->seq_len);
    printf("%-58s", "configuration: ppl (bits K/V)");
    for (size_t b = 0; b < r->n_bits; b++) printf(" %17u-bit", r->bits[b]);
    putchar('\n');
    for (size_t c = 0; c < r->n_configs; c++) {
        printf("%-58s", cfg[c].label);
        for (size_t b = 0; b < r->n_bits; b++) {
            const kvq_eval_result *e = &r->cells[c * r->n_bits + b];
            printf(" %9.3f (%.2f/%.2f)", e->ppl, e->k_bits, e->v_bits);
        }
        putchar('\n');
    }
}

int kvq_cmd_ablate(int argc, char **argv) {
    kvq_ablate_opts o;
    int json;
    int rc = parse_args(argc, argv, &o, &json);
    if (rc) return rc < 0 ? KVQ_EXIT_OK : rc;
    kvq_progress p;
    memset(&p, 0, sizeof p);
    kvq_progress_start(&p, "evaluate", "windows", 0);
    p.total = 0;
    o.log = log_line;
    o.progress = progress_cb;
    o.user = &p;
    kvq_ablate_report rep;
    char why[512] = "";
    kvq_status st = kvq_ablate_run(&o, &rep, why, sizeof why);
    if (p.total) kvq_progress_end(&p);
    if (st != KVQ_OK) {
        kvq_ablate_report_free(&rep);
        return kvq_report("ablate", st, o.model_path, why);
    }
    if (json) {
        char path[1024];
        snprintf(path, sizeof path, "%s/ablation.json", o.out_dir);
        FILE *f = fopen(path, "r");
        int ch;
        while (f && (ch = fgetc(f)) != EOF) putchar(ch);
        if (f) fclose(f);
    } else {
        print_table(&rep);
        printf("wrote %s/ablation.md, .csv, .json, .svg\n", o.out_dir);
    }
    kvq_ablate_report_free(&rep);
    return KVQ_EXIT_OK;
}
