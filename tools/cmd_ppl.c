/* cmd_ppl.c — `kvq ppl`: perplexity of a model on a text file by the protocol of KVQUANT.md §10
 * (calib/ppl.h): the whole file tokenized once with the model's tokenizer (a BOS only when that
 * tokenizer adds one by default), non-overlapping windows of --seq-len, remainder dropped, mean NLL
 * over seq_len-1 predicted positions per window. Prints tokens, windows, NLL, perplexity, tokens/s.
 * Unquantized fp32 only: quantized evaluation is `kvq eval`. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kvq_model.h"
#include "ppl.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: kvq ppl --model M --text FILE [--seq-len N] [--max-windows W] [--batch B]\n"
               "                [--tokenizer T] [--threads N] [--json]\n\n"
               "Perplexity of the unquantized (fp32) model on FILE: the whole file is tokenized once\n"
               "(a BOS token only when the tokenizer adds one by default), split into non-overlapping\n"
               "windows of N tokens from its start (the remainder is dropped), and perplexity =\n"
               "exp(mean NLL over the N-1 predicted positions of every window).\n\n"
               "options:\n"
               "  --model M         HF directory, .gguf or llama2.c .bin (required)\n"
               "  --text FILE       UTF-8 text (required)\n"
               "  --seq-len N       window length in tokens (default 2048)\n"
               "  --max-windows W   only the first W windows (default: all)\n"
               "  --batch B         windows per forward pass (default 1; memory grows with B)\n"
               "  --tokenizer T     tokenizer.json, tokenizer.bin or .gguf (default: the model's own)\n"
               "  --threads N       CPU threads (default: the cores not busy by the load average, at least 1)\n"
               "  --json            print one JSON object on stdout instead of text\n"
               "  --help            this message\n");
}

typedef struct ppl_args {
    const char *model, *text, *tokenizer;
    long seq_len, max_windows, batch, threads;
    int json;
} ppl_args;

/* Parse a positive integer option value into *out; 0 on success. */
static int parse_count(const char *opt, const char *v, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < 1 || x > INT_MAX) {
        fprintf(stderr, "kvq ppl: %s needs a positive integer, not '%s'\n", opt, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* 0: parsed; 1: --help printed; -1: usage error printed. */
static int parse_args(int argc, char **argv, ppl_args *a) {
    *a = (ppl_args){NULL, NULL, NULL, 2048, 0, 1, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { usage(stdout); return 1; }
        if (!strcmp(o, "--json")) { a->json = 1; continue; }
        int is_value_opt = !strcmp(o, "--model") || !strcmp(o, "--text") || !strcmp(o, "--tokenizer") ||
                           !strcmp(o, "--seq-len") || !strcmp(o, "--max-windows") ||
                           !strcmp(o, "--batch") || !strcmp(o, "--threads");
        if (!is_value_opt) { fprintf(stderr, "kvq ppl: unknown option '%s'\n", o); return -1; }
        if (!v) { fprintf(stderr, "kvq ppl: %s needs a value\n", o); return -1; }
        i++;
        int rc = 0;
        if (!strcmp(o, "--model")) a->model = v;
        else if (!strcmp(o, "--text")) a->text = v;
        else if (!strcmp(o, "--tokenizer")) a->tokenizer = v;
        else if (!strcmp(o, "--seq-len")) rc = parse_count(o, v, &a->seq_len);
        else if (!strcmp(o, "--max-windows")) rc = parse_count(o, v, &a->max_windows);
        else if (!strcmp(o, "--batch")) rc = parse_count(o, v, &a->batch);
        else rc = parse_count(o, v, &a->threads);
        if (rc) return -1;
    }
    if (!a->model || !a->text) { fprintf(stderr, "kvq ppl: --model and --text are required (see --help)\n"); return -1; }
    if (a->seq_len < 2) { fprintf(stderr, "kvq ppl: --seq-len must be at least 2\n"); return -1; }
    return 0;
}

/* Read a whole file into a malloc'ed buffer. */
static kvq_status read_file(const char *path, char **buf, size_t *len, char *why, size_t why_len) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(why, why_len, "%s", strerror(errno)); return KVQ_ERR_IO; }
    kvq_status st = KVQ_OK;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    *buf = size >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)size + 1) : NULL;
    if (!*buf) {
        snprintf(why, why_len, size < 0 ? "cannot size the file" : "out of memory");
        st = size < 0 ? KVQ_ERR_IO : KVQ_ERR_NOMEM;
    } else if (fread(*buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(why, why_len, "short read");
        st = KVQ_ERR_IO;
        free(*buf);
        *buf = NULL;
    } else {
        *len = (size_t)size;
    }
    fclose(f);
    return st;
}

static void on_progress(void *user, size_t done, size_t total) {
    kvq_progress_update(user, done);
}

static void print_result(const ppl_args *a, const kvq_model *m, const kvq_tokenizer *tok, size_t text_bytes,
                         double tok_secs, const kvq_ppl_result *r) {
    double tps = r->seconds > 0 ? (double)(r->n_windows * (size_t)a->seq_len) / r->seconds : 0;
    size_t dropped = r->n_tokens - r->n_windows * (size_t)a->seq_len;
    if (a->json) {
        kvq_json_out j;
        kvq_jo_begin(&j, stdout);
        kvq_jo_obj(&j, NULL);
        kvq_jo_str(&j, "model", m->path);
        kvq_jo_str(&j, "text", a->text);
        kvq_jo_str(&j, "tokenizer", kvq_tokenizer_describe(tok));
        kvq_jo_int(&j, "text_bytes", (long long)text_bytes);
        kvq_jo_int(&j, "tokens", (long long)r->n_tokens);
        kvq_jo_int(&j, "seq_len", a->seq_len);
        kvq_jo_int(&j, "windows", (long long)r->n_windows);
        kvq_jo_int(&j, "predicted", (long long)r->n_predicted);
        kvq_jo_int(&j, "unused_tokens", (long long)dropped);
        kvq_jo_num(&j, "nll", r->mean_nll);
        kvq_jo_num(&j, "ppl", r->ppl);
        kvq_jo_num(&j, "tokenize_seconds", tok_secs);
        kvq_jo_num(&j, "seconds", r->seconds);
        kvq_jo_num(&j, "tokens_per_s", tps);
        kvq_jo_end(&j, '}');
        kvq_jo_finish(&j);
        return;
    }
    printf("model       %s (%d layers, hidden %d, vocab %d)\n", m->path, m->cfg.n_layers, m->cfg.hidden,
           m->cfg.vocab);
    printf("text        %s: %zu bytes -> %zu tokens in %.2f s (%s)\n", a->text, text_bytes, r->n_tokens,
           tok_secs, kvq_tokenizer_describe(tok));
    printf("windows     %zu x %ld tokens (%zu unused), %zu predicted positions\n", r->n_windows, a->seq_len,
           dropped, r->n_predicted);
    printf("NLL         %.6f nats/token\n", r->mean_nll);
    printf("perplexity  %.4f\n", r->ppl);
    printf("speed       %.0f tokens/s (%.1f s)\n", tps, r->seconds);
}

/* Tokenize the whole text with the chosen tokenizer; on error *what names the culprit. */
static kvq_status tokenize_file(const ppl_args *a, kvq_tokenizer **tok, int32_t **ids, size_t *n_ids,
                                size_t *text_len, const char **what, char *why, size_t why_len) {
    *what = a->tokenizer ? a->tokenizer : "the model's tokenizer";
    kvq_status st = a->tokenizer ? kvq_tokenizer_load(a->tokenizer, tok, why, why_len)
                                 : kvq_tokenizer_load_for_model(a->model, tok, why, why_len);
    if (st != KVQ_OK) return st;
    *what = a->text;
    char *text = NULL;
    st = read_file(a->text, &text, text_len, why, why_len);
    if (st == KVQ_OK)
        st = kvq_tokenize(*tok, text, *text_len, kvq_tokenizer_adds_bos(*tok), ids, n_ids, why, why_len);
    free(text);
    return st;
}

/* Run the windows with a progress bar and print the result. */
static kvq_status evaluate(const ppl_args *a, const kvq_model *m, const kvq_tokenizer *tok, const int32_t *ids,
                           size_t n_ids, size_t text_len, double tok_secs, char *why, size_t why_len) {
    size_t windows = n_ids / (size_t)a->seq_len;
    if (a->max_windows && windows > (size_t)a->max_windows) windows = (size_t)a->max_windows;
    kvq_progress bar;
    kvq_progress_start(&bar, "ppl", "windows", windows);
    kvq_ppl_opts po = {(int)a->seq_len, (int)a->batch, (size_t)a->max_windows, NULL, NULL, on_progress, &bar};
    kvq_ppl_result r;
    kvq_status st = kvq_ppl_eval(m, ids, n_ids, &po, &r, why, why_len);
    kvq_progress_end(&bar);
    if (st == KVQ_OK) print_result(a, m, tok, text_len, tok_secs, &r);
    return st;
}

int kvq_cmd_ppl(int argc, char **argv) {
    ppl_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc > 0 ? KVQ_EXIT_OK : KVQ_EXIT_USAGE;
    kvq_engine_set_threads((int)a.threads);
    char why[1024] = "";
    const char *what = NULL;
    kvq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0, text_len = 0;
    kvq_model m;
    memset(&m, 0, sizeof m);
    /* tokenize first: it is cheap and fails fast, loading a model may take seconds */
    double t0 = kvq_now();
    kvq_status st = tokenize_file(&a, &tok, &ids, &n_ids, &text_len, &what, why, sizeof why);
    double tok_secs = kvq_now() - t0;
    if (st == KVQ_OK) {
        what = a.model;
        st = kvq_model_load(a.model, &m, why, sizeof why);
    }
    if (st == KVQ_OK) {
        what = a.text;
        st = evaluate(&a, &m, tok, ids, n_ids, text_len, tok_secs, why, sizeof why);
    }
    rc = st == KVQ_OK ? KVQ_EXIT_OK : kvq_report("ppl", st, what, why);
    free(ids);
    kvq_tokenizer_free(tok);
    kvq_model_free(&m);
    return rc;
}
