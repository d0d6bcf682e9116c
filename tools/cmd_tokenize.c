/* cmd_tokenize.c — `kvq tokenize (--model M | --tokenizer T) --text FILE [--bos] [--ids] [--json]`:
 * tokenize a text file with a model's tokenizer (or an explicit tokenizer file) and print the
 * token count and speed, optionally the ids. For checking what `kvq ppl` / `kvq capture` feed the
 * model; not a detokenizer or a vocabulary browser. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: kvq tokenize (--model M | --tokenizer T) --text FILE [--bos] [--ids] [--json]\n\n"
               "Tokenize a text file and print the token count and tokens/s.\n\n"
               "options:\n"
               "  --model M       use M's tokenizer: an HF directory's tokenizer.json, a .gguf's\n"
               "                  embedded vocabulary, or tokenizer.bin / tok*.bin beside a llama2.c .bin\n"
               "  --tokenizer T   a tokenizer.json, HF directory, llama2.c tokenizer.bin or .gguf\n"
               "  --text FILE     the UTF-8 text to tokenize (required; '-' reads stdin)\n"
               "  --bos           prepend the BOS token (default: what the tokenizer's own\n"
               "                  configuration does; --no-bos adds none)\n"
               "  --ids           also print the ids (text: one line, space-separated)\n"
               "  --json          print one JSON object instead of text\n"
               "  --help          this message\n");
}

static kvq_status read_all(const char *path, char **buf, size_t *len, char *why, size_t why_len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) { snprintf(why, why_len, "%s: %s", path, strerror(errno)); return KVQ_ERR_IO; }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = cap <= SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
        if (!nb) { free(b); b = NULL; break; }
        b = nb;
        cap *= 2;
    }
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (!b) { snprintf(why, why_len, "%s: out of memory", path); return KVQ_ERR_NOMEM; }
    if (err) { free(b); snprintf(why, why_len, "%s: read error", path); return KVQ_ERR_IO; }
    *buf = b;
    *len = n;
    return KVQ_OK;
}

static void print_result(const kvq_tokenizer *tok, const char *src, const char *text, size_t bytes,
                         const int32_t *ids, size_t n, double secs, int bos, int show_ids, int json) {
    double rate = secs > 0 ? (double)n / secs : 0;
    if (json) {
        kvq_json_out j;
        kvq_jo_begin(&j, stdout);
        kvq_jo_obj(&j, NULL);
        kvq_jo_str(&j, "tokenizer", src);
        kvq_jo_str(&j, "kind", kvq_tokenizer_describe(tok));
        kvq_jo_int(&j, "vocab", kvq_tokenizer_vocab_size(tok));
        kvq_jo_str(&j, "text", text);
        kvq_jo_int(&j, "bytes", (long long)bytes);
        kvq_jo_bool(&j, "bos", bos);
        kvq_jo_int(&j, "tokens", (long long)n);
        kvq_jo_num(&j, "seconds", secs);
        kvq_jo_num(&j, "tokens_per_second", rate);
        if (show_ids) {
            kvq_jo_arr(&j, "ids");
            for (size_t i = 0; i < n; i++) kvq_jo_int(&j, NULL, ids[i]);
            kvq_jo_end(&j, ']');
        }
        kvq_jo_end(&j, '}');
        kvq_jo_finish(&j);
        return;
    }
    printf("tokenizer  %s (%s)\n", src, kvq_tokenizer_describe(tok));
    printf("text       %s, %zu bytes\n", text, bytes);
    printf("tokens     %zu%s (%.2f bytes/token)\n", n, bos ? " including BOS" : "",
           n ? (double)bytes / (double)n : 0.0);
    printf("speed      %.0f tokens/s (%.3f s)\n", rate, secs);
    if (show_ids) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
}

int kvq_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokp = NULL, *text = NULL;
    int json = 0, show_ids = 0, bos = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return KVQ_EXIT_OK; }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--ids")) show_ids = 1;
        else if (!strcmp(argv[i], "--bos")) bos = 1;
        else if (!strcmp(argv[i], "--no-bos")) bos = 0;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tokp = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text = argv[++i];
        else {
            fprintf(stderr, "kvq tokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return KVQ_EXIT_USAGE;
        }
    }
    if (!text || !!model == !!tokp) {
        fprintf(stderr, "kvq tokenize: --text and exactly one of --model / --tokenizer are required\n");
        usage(stderr);
        return KVQ_EXIT_USAGE;
    }
    char why[1024] = "";
    kvq_tokenizer *tok = NULL;
    kvq_status st = tokp ? kvq_tokenizer_load(tokp, &tok, why, sizeof why)
                         : kvq_tokenizer_load_for_model(model, &tok, why, sizeof why);
    if (st) return kvq_report("tokenize", st, tokp ? tokp : model, why);
    char *buf = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    if ((st = read_all(text, &buf, &len, why, sizeof why))) {
        kvq_tokenizer_free(tok);
        return kvq_report("tokenize", st, text, why);
    }
    if (bos < 0) bos = kvq_tokenizer_adds_bos(tok);
    double t0 = kvq_now();
    st = kvq_tokenize(tok, buf, len, bos, &ids, &n, why, sizeof why);
    double secs = kvq_now() - t0;
    if (!st) print_result(tok, tokp ? tokp : model, text, len, ids, n, secs, bos, show_ids, json);
    int rc = st ? kvq_report("tokenize", st, text, why) : KVQ_EXIT_OK;
    free(ids);
    free(buf);
    kvq_tokenizer_free(tok);
    return rc;
}
