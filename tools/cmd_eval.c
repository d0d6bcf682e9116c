/* cmd_eval.c — `kvq eval`: perplexity, KL divergence, top-1 agreement and measured bits of a
 * simulated quantized KV cache (a codebook, or baselines that need none) against the unquantized
 * model on a text. The work is codebook/eval.c; this file parses options and prints. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "capture.h"
#include "eval.h"
#include "tokenizer.h"

enum { MAX_METHODS = 16, MAX_BITS = 8 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: kvq eval --model M --text FILE [--codebook C] [options]\n\n"
        "Evaluate a simulated quantized KV cache: perplexity, KL(p_fp32 || p_quant) mean and 99th\n"
        "percentile per position, top-1 agreement, measured bits per element, tokens/s.\n\n"
        "  --model PATH         HF directory, .gguf or llama2.c .bin\n"
        "  --text FILE          evaluation text, tokenized whole, non-overlapping windows\n"
        "  --codebook FILE      codebook of `kvq fit` (method kvquant; checked against the model)\n"
        "  --method LIST        comma-separated: kvquant fp16 int int-chan-post int-chan-pre nf\n"
        "                       atom flexgen kivi (default: kvquant with --codebook, else fp16,int)\n"
        "  --bits LIST          bit widths of the baselines, e.g. 4,3,2 (default 4)\n"
        "  --seq-len N          window length (default 512)\n"
        "  --max-windows W      evaluate the first W windows only (default: all)\n"
        "  --batch B            windows per forward pass (default 4)\n"
        "  --calib FILE         calibration text for int-chan-* (per-channel key min/max)\n"
        "  --calib-samples N    calibration windows (default 16)\n"
        "  --calib-seq-len N    calibration window length (default 512)\n"
        "  --seed S             calibration window seed (default 0)\n"
        "  --tokenizer PATH     tokenizer (default: the model's own)\n"
        "  --json               print one JSON document on stdout\n"
        "  -h, --help           this text\n");
}

typedef struct eval_args {
    const char *model, *text, *codebook, *calib, *tokenizer, *methods, *bits;
    kvq_method method[MAX_METHODS];
    uint32_t bit[MAX_BITS];
    size_t n_method, n_bit;
    int seq_len, batch, calib_samples, calib_seq_len, json;
    long long max_windows;
    unsigned long long seed;
} eval_args;

static int parse_args(int argc, char **argv, eval_args *a) {
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"text", 1, 0, 't'}, {"codebook", 1, 0, 'c'}, {"method", 1, 0, 'M'},
        {"bits", 1, 0, 'b'}, {"seq-len", 1, 0, 'n'}, {"max-windows", 1, 0, 'w'}, {"batch", 1, 0, 'B'},
        {"calib", 1, 0, 'C'}, {"calib-samples", 1, 0, 's'}, {"calib-seq-len", 1, 0, 'L'},
        {"seed", 1, 0, 'S'}, {"tokenizer", 1, 0, 'k'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    *a = (eval_args){.seq_len = 512, .batch = 4, .calib_samples = 16, .calib_seq_len = 512, .bits = "4"};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 't': a->text = optarg; break;
        case 'c': a->codebook = optarg; break;
        case 'M': a->methods = optarg; break;
        case 'b': a->bits = optarg; break;
        case 'n': a->seq_len = atoi(optarg); break;
        case 'w': a->max_windows = atoll(optarg); break;
        case 'B': a->batch = atoi(optarg); break;
        case 'C': a->calib = optarg; break;
        case 's': a->calib_samples = atoi(optarg); break;
        case 'L': a->calib_seq_len = atoi(optarg); break;
        case 'S': a->seed = strtoull(optarg, NULL, 10); break;
        case 'k': a->tokenizer = optarg; break;
        case 'j': a->json = 1; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return KVQ_EXIT_USAGE;
        }
    }
    if (optind < argc) { fprintf(stderr, "kvq eval: unexpected argument '%s'\n", argv[optind]); return KVQ_EXIT_USAGE; }
    if (!a->model || !a->text) { fprintf(stderr, "kvq eval: --model and --text are required\n"); usage(stderr); return KVQ_EXIT_USAGE; }
    if (a->seq_len < 2 || a->batch < 1 || a->max_windows < 0 || a->calib_samples < 1 || a->calib_seq_len < 2) {
        fprintf(stderr, "kvq eval: --seq-len/--calib-seq-len must be >= 2, --batch/--calib-samples >= 1\n");
        return KVQ_EXIT_USAGE;
    }
    if (!a->methods) a->methods = a->codebook ? "kvquant" : "fp16,int";
    if (kvq_eval_parse_methods(a->methods, a->method, MAX_METHODS, &a->n_method) != KVQ_OK) {
        fprintf(stderr, "kvq eval: bad --method list '%s'\n", a->methods);
        return KVQ_EXIT_USAGE;
    }
    if (kvq_eval_parse_bits(a->bits, a->bit, MAX_BITS, &a->n_bit) != KVQ_OK) {
        fprintf(stderr, "kvq eval: bad --bits list '%s' (1..%d, comma-separated)\n", a->bits, KVQ_MAX_BITS);
        return KVQ_EXIT_USAGE;
    }
    for (size_t i = 0; i < a->n_method; i++) {
        if (kvq_method_needs_codebook(a->method[i]) && !a->codebook) {
            fprintf(stderr, "kvq eval: method kvquant needs --codebook\n");
            return KVQ_EXIT_USAGE;
        }
        if (kvq_method_needs_range(a->method[i]) && !a->calib) {
            fprintf(stderr, "kvq eval: methods int-chan-post/int-chan-pre need --calib TEXT (per-channel key ranges)\n");
            return KVQ_EXIT_USAGE;
        }
    }
    return 0;
}

static void progress_cb(void *user, size_t done, size_t total) {
    (void)total;
    kvq_progress_update(user, done);
}

static void print_table(const eval_args *a, const kvq_eval_result *r, size_t n) {
    printf("kvq eval: %s on %s: %zu of %zu windows x %d tokens (%zu predicted positions)\n", a->model,
           a->text, r[0].n_windows, r[0].n_available, a->seq_len, r[0].n_predicted);
    printf("reference (unquantized fp32 K/V): ppl %.4f, %.1f tokens/s\n", r[0].ref_ppl, r[0].ref_tokens_per_s);
    printf("%-14s %4s %10s %9s %9s %9s %7s %7s %7s %9s\n", "method", "bits", "ppl", "d_ppl",
           "KL_mean", "KL_p99", "top1", "K_bits", "V_bits", "tok/s");
    for (size_t i = 0; i < n; i++)
        printf("%-14s %4u %10.4f %+9.4f %9.5f %9.5f %7.4f %7.3f %7.3f %9.1f\n", r[i].name, r[i].bits,
               r[i].ppl, r[i].ppl - r[i].ref_ppl, r[i].kl_mean, r[i].kl_p99, r[i].top1, r[i].k_bits,
               r[i].v_bits, r[i].tokens_per_s);
}

static void print_json(const eval_args *a, const kvq_eval_result *r, size_t n) {
    kvq_json_out j;
    kvq_jo_begin(&j, stdout);
    kvq_jo_obj(&j, NULL);
    kvq_jo_str(&j, "model", a->model);
    kvq_jo_str(&j, "text", a->text);
    kvq_jo_int(&j, "seq_len", a->seq_len);
    kvq_jo_int(&j, "windows", (long long)r[0].n_windows);
    kvq_jo_int(&j, "windows_available", (long long)r[0].n_available);
    kvq_jo_int(&j, "predicted_positions", (long long)r[0].n_predicted);
    kvq_jo_obj(&j, "reference");
    kvq_jo_num(&j, "nll", r[0].ref_nll);
    kvq_jo_num(&j, "ppl", r[0].ref_ppl);
    kvq_jo_num(&j, "tokens_per_s", r[0].ref_tokens_per_s);
    kvq_jo_end(&j, '}');
    kvq_jo_arr(&j, "results");
    for (size_t i = 0; i < n; i++) {
        kvq_jo_obj(&j, NULL);
        kvq_jo_str(&j, "method", r[i].name);
        kvq_jo_int(&j, "bits", r[i].bits);
        kvq_jo_num(&j, "nll", r[i].nll);
        kvq_jo_num(&j, "ppl", r[i].ppl);
        kvq_jo_num(&j, "delta_ppl", r[i].ppl - r[i].ref_ppl);
        kvq_jo_num(&j, "kl_mean", r[i].kl_mean);
        kvq_jo_num(&j, "kl_p99", r[i].kl_p99);
        kvq_jo_num(&j, "top1_agreement", r[i].top1);
        kvq_jo_num(&j, "k_bits_per_element", r[i].k_bits);
        kvq_jo_num(&j, "v_bits_per_element", r[i].v_bits);
        kvq_jo_num(&j, "k_outlier_rate", r[i].k_outlier_rate);
        kvq_jo_num(&j, "v_outlier_rate", r[i].v_outlier_rate);
        kvq_jo_num(&j, "tokens_per_s", r[i].tokens_per_s);
        kvq_jo_end(&j, '}');
    }
    kvq_jo_end(&j, ']');
    kvq_jo_end(&j, '}');
    kvq_jo_finish(&j);
}

/* Per-channel key ranges over calibration windows drawn like `kvq capture` draws them. */
static kvq_status calib_range(const eval_args *a, const kvq_model *m, const kvq_tokenizer *tok,
                              kvq_key_range *range, char *why, size_t why_len) {
    int32_t *ids = NULL;
    size_t n = 0;
    uint64_t *starts = calloc((size_t)a->calib_samples, sizeof *starts);
    kvq_status st = starts ? kvq_eval_tokenize_file(tok, a->calib, &ids, &n, why, why_len) : KVQ_ERR_NOMEM;
    if (st == KVQ_OK && n < (size_t)a->calib_seq_len) {
        snprintf(why, why_len, "%s: %zu tokens, fewer than --calib-seq-len %d", a->calib, n, a->calib_seq_len);
        st = KVQ_ERR_DATA;
    }
    if (st == KVQ_OK) st = kvq_capture_windows(n, (uint32_t)a->calib_seq_len, (uint32_t)a->calib_samples, a->seed, starts);
    if (st == KVQ_OK) st = kvq_key_range_init(range, m->cfg.n_layers, (uint32_t)(m->cfg.n_kv_heads * m->cfg.head_dim));
    if (st == KVQ_OK) st = kvq_eval_key_range(m, ids, n, starts, (size_t)a->calib_samples, a->calib_seq_len, range, why, why_len);
    free(ids);
    free(starts);
    return st;
}

/* The simulations the options ask for: kvquant and fp16 once, every other method per bit width. */
static kvq_status build_sims(const eval_args *a, const kvq_model *m, const kvq_codebook *cb,
                             const kvq_key_range *range, kvq_kv_sim *sims, size_t *n_sims,
                             char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    *n_sims = 0;
    for (size_t i = 0; i < a->n_method && st == KVQ_OK; i++) {
        int once = a->method[i] == KVQ_METHOD_KVQUANT || a->method[i] == KVQ_METHOD_FP16;
        for (size_t j = 0; j < (once ? 1 : a->n_bit) && st == KVQ_OK; j++) {
            st = kvq_eval_sim_init(&sims[*n_sims], a->method[i], a->bit[j], m, cb, range, why, why_len);
            if (st == KVQ_OK) (*n_sims)++;
        }
    }
    return st;
}

int kvq_cmd_eval(int argc, char **argv) {
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? KVQ_EXIT_OK : rc;
    char why[512] = "";
    kvq_model model;
    memset(&model, 0, sizeof model);
    kvq_tokenizer *tok = NULL;
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    kvq_key_range range;
    memset(&range, 0, sizeof range);
    kvq_kv_sim sims[MAX_METHODS * MAX_BITS];
    kvq_eval_result res[MAX_METHODS * MAX_BITS];
    size_t n_sims = 0, n_ids = 0;
    int32_t *ids = NULL;
    const char *what = a.model;
    kvq_status st = kvq_model_load(a.model, &model, why, sizeof why);
    if (st == KVQ_OK) {
        what = a.tokenizer ? a.tokenizer : a.model;
        st = a.tokenizer ? kvq_tokenizer_load(a.tokenizer, &tok, why, sizeof why)
                         : kvq_tokenizer_load_for_model(a.model, &tok, why, sizeof why);
    }
    if (st == KVQ_OK && a.codebook) { what = a.codebook; st = kvq_codebook_read(a.codebook, &cb, why, sizeof why); }
    if (st == KVQ_OK && a.calib) { what = a.calib; st = calib_range(&a, &model, tok, &range, why, sizeof why); }
    if (st == KVQ_OK) { what = "methods"; st = build_sims(&a, &model, a.codebook ? &cb : NULL, a.calib ? &range : NULL, sims, &n_sims, why, sizeof why); }
    if (st == KVQ_OK) { what = a.text; st = kvq_eval_tokenize_file(tok, a.text, &ids, &n_ids, why, sizeof why); }
    if (st == KVQ_OK) {
        kvq_progress p;
        size_t total = n_ids / (size_t)a.seq_len;
        if (a.max_windows && total > (size_t)a.max_windows) total = (size_t)a.max_windows;
        kvq_progress_start(&p, "eval", "windows", total);
        kvq_eval_opts eo = {.seq_len = a.seq_len, .batch = a.batch, .max_windows = (size_t)a.max_windows,
                            .progress = progress_cb, .progress_user = &p};
        what = "evaluation";
        st = kvq_eval_run(&model, ids, n_ids, &eo, sims, n_sims, res, why, sizeof why);
        kvq_progress_end(&p);
    }
    if (st == KVQ_OK && n_sims) { if (a.json) print_json(&a, res, n_sims); else print_table(&a, res, n_sims); }
    rc = st == KVQ_OK ? KVQ_EXIT_OK : kvq_report("eval", st, what, why);
    for (size_t i = 0; i < n_sims; i++) kvq_kv_sim_free(&sims[i]);
    free(ids);
    kvq_key_range_free(&range);
    kvq_codebook_free(&cb);
    kvq_tokenizer_free(tok);
    kvq_model_free(&model);
    return rc;
}
