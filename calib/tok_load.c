/* tok_load.c — finding and reading tokenizer files: kvq_tokenizer_load (a tokenizer.json, an HF
 * directory, a llama2.c tokenizer.bin or a .gguf, told apart by their first bytes),
 * kvq_tokenizer_load_for_model (the tokenizer beside a model), and the BOS/EOS settings of an HF
 * tokenizer_config.json. Not the parsers themselves (tok_hfjson.c, tok_spm.c, tok_gguf.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "tok_internal.h"

#define FAIL(st, ...) kvq_tok_fail(why, why_len, st, __VA_ARGS__)

enum { MAX_FILE = 1 << 30 };   /* tokenizer files are megabytes; refuse to read absurd ones */

static kvq_status read_file(const char *path, char **buf, size_t *len, char *why, size_t why_len) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return FAIL(KVQ_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || sb.st_size > MAX_FILE) {
        fclose(f);
        return FAIL(KVQ_ERR_IO, "%s: not a regular file of at most 1 GiB", path);
    }
    size_t n = (size_t)sb.st_size;
    char *b = malloc(n + 1);
    if (!b) { fclose(f); return FAIL(KVQ_ERR_NOMEM, "%s: %zu bytes", path, n); }
    size_t got = fread(b, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != n) { free(b); return FAIL(KVQ_ERR_IO, "%s: read failed", path); }
    b[n] = 0;
    *buf = b;
    *len = n;
    return KVQ_OK;
}

static int is_dir(const char *p) { struct stat sb; return !stat(p, &sb) && S_ISDIR(sb.st_mode); }
static int is_file(const char *p) { struct stat sb; return !stat(p, &sb) && S_ISREG(sb.st_mode); }

/* Directory part of path ("." when none) into dir. */
static void dir_of(const char *path, char *dir, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, n, ".");
    else snprintf(dir, n, "%.*s", (int)(slash == path ? 1 : slash - path), path);
}

/* The id of a token given as "text" or {"content": "text"} in tokenizer_config.json. */
static int32_t config_token(const kvq_tokenizer *t, const kvq_json *cfg, const char *key) {
    const kvq_json *v = kvq_json_get(cfg, key);
    const char *s = v && v->type == KVQ_JSON_STRING ? v->str : kvq_json_get_string(v, "content");
    if (!s) return -1;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == strlen(s) && !memcmp(t->arena + t->added[i].off, s, t->added[i].len))
            return t->added[i].id;
    return kvq_tok_lookup(t, s, strlen(s));
}

/* BOS/EOS from tokenizer_config.json beside the tokenizer.json, when there is one. */
static kvq_status read_config(kvq_tokenizer *t, const char *json_path, char *why, size_t why_len) {
    char dir[4096], path[4200];
    dir_of(json_path, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!is_file(path)) return KVQ_OK;
    char *buf, jwhy[160];
    size_t len;
    kvq_json *cfg = NULL;
    kvq_status st = read_file(path, &buf, &len, why, why_len);
    if (st) return st;
    st = kvq_json_parse(buf, len, &cfg, jwhy, sizeof jwhy);
    free(buf);
    if (st) return FAIL(st, "%s: %s", path, jwhy);
    int32_t bos = config_token(t, cfg, "bos_token"), eos = config_token(t, cfg, "eos_token");
    int add = 0;
    if (bos >= 0) t->bos = bos;
    if (eos >= 0) t->eos = eos;
    if (kvq_json_get_bool(cfg, "add_bos_token", &add)) t->adds_bos = add;
    kvq_json_free(cfg);
    return KVQ_OK;
}

kvq_status kvq_tokenizer_load_json(const char *json, size_t len, const char *name,
                                   kvq_tokenizer **out, char *why, size_t why_len) {
    if (!out) return FAIL(KVQ_ERR_ARG, "kvq_tokenizer_load_json: NULL out");
    *out = NULL;
    if (!json) return FAIL(KVQ_ERR_ARG, "kvq_tokenizer_load_json: NULL text");
    kvq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return KVQ_ERR_NOMEM;
    kvq_status st = kvq_tok_load_hfjson(t, json, len, name ? name : "tokenizer.json", why, why_len);
    if (st) { kvq_tokenizer_free(t); return st; }
    *out = t;
    return KVQ_OK;
}

kvq_status kvq_tokenizer_load(const char *path, kvq_tokenizer **out, char *why, size_t why_len) {
    if (!out) return FAIL(KVQ_ERR_ARG, "kvq_tokenizer_load: NULL out");
    *out = NULL;
    if (!path) return FAIL(KVQ_ERR_ARG, "kvq_tokenizer_load: NULL path");
    char jpath[4200];
    if (is_dir(path)) {
        snprintf(jpath, sizeof jpath, "%s/tokenizer.json", path);
        if (!is_file(jpath)) return FAIL(KVQ_ERR_MISSING, "%s: no tokenizer.json in this directory", path);
        path = jpath;
    }
    char *buf;
    size_t len;
    kvq_status st = read_file(path, &buf, &len, why, why_len);
    if (st) return st;
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')) i++;
    kvq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { free(buf); return KVQ_ERR_NOMEM; }
    if (len >= 4 && !memcmp(buf, "GGUF", 4)) {
        st = kvq_tok_load_gguf(t, path, why, why_len);
    } else if (i < len && buf[i] == '{') {
        st = kvq_tok_load_hfjson(t, buf, len, path, why, why_len);
        if (!st) st = read_config(t, path, why, why_len);
    } else {
        st = kvq_tok_load_llama2c(t, (const unsigned char *)buf, len, path, why, why_len);
    }
    free(buf);
    if (st) { kvq_tokenizer_free(t); return st; }
    *out = t;
    return KVQ_OK;
}

/* tokenizer.bin, else the one tok*.bin, in dir. */
static kvq_status find_llama2c_tokenizer(const char *dir, char *path, size_t n, char *why,
                                         size_t why_len) {
    snprintf(path, n, "%s/tokenizer.bin", dir);
    if (is_file(path)) return KVQ_OK;
    DIR *d = opendir(dir);
    if (!d) return FAIL(KVQ_ERR_IO, "%s: %s", dir, strerror(errno));
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "tok", 3) || l < 7 || strcmp(e->d_name + l - 4, ".bin")) continue;
        if (found++ == 0) snprintf(path, n, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (found == 1) return KVQ_OK;
    return FAIL(KVQ_ERR_MISSING, "%s: %s; pass the tokenizer with --tokenizer", dir,
                found ? "several tok*.bin files" : "no tokenizer.bin or tok*.bin beside the model");
}

kvq_status kvq_tokenizer_load_for_model(const char *model_path, kvq_tokenizer **out, char *why,
                                        size_t why_len) {
    if (!out) return FAIL(KVQ_ERR_ARG, "kvq_tokenizer_load_for_model: NULL out");
    *out = NULL;
    if (!model_path) return FAIL(KVQ_ERR_ARG, "kvq_tokenizer_load_for_model: NULL path");
    if (is_dir(model_path)) return kvq_tokenizer_load(model_path, out, why, why_len);
    FILE *f = fopen(model_path, "rb");
    if (!f) return FAIL(KVQ_ERR_IO, "%s: %s", model_path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    size_t l = strlen(model_path);
    if ((got == 4 && !memcmp(magic, "GGUF", 4)) || (l > 5 && !strcmp(model_path + l - 5, ".json")))
        return kvq_tokenizer_load(model_path, out, why, why_len);
    char dir[4096], path[4400];
    dir_of(model_path, dir, sizeof dir);
    kvq_status st = find_llama2c_tokenizer(dir, path, sizeof path, why, why_len);
    return st ? st : kvq_tokenizer_load(path, out, why, why_len);
}
