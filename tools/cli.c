/* cli.c — shared CLI helpers: exit codes, error reporting, progress bar, JSON writer. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int kvq_exit_code(kvq_status s) {
    switch (s) {
    case KVQ_OK: return KVQ_EXIT_OK;
    case KVQ_ERR_ARG: return KVQ_EXIT_USAGE;
    case KVQ_ERR_IO: return KVQ_EXIT_IO;
    case KVQ_ERR_NOMEM: case KVQ_ERR_CUDA: case KVQ_ERR_CAPACITY: return KVQ_EXIT_FAIL;
    default: return KVQ_EXIT_INPUT;
    }
}

int kvq_report(const char *cmd, kvq_status s, const char *what, const char *why) {
    fprintf(stderr, "kvq %s: %s: %s%s%s\n", cmd, what, kvq_status_message(s),
            why && *why ? ": " : "", why && *why ? why : "");
    return kvq_exit_code(s);
}

double kvq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kvq_progress_start(kvq_progress *p, const char *label, const char *unit, size_t total) {
    const char *env = getenv("KVQ_PROGRESS");
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->done = 0;
    p->t0 = kvq_now();
    p->last_draw = 0;
    p->enabled = env ? atoi(env) != 0 : isatty(2);
}

static void draw(kvq_progress *p, double now) {
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    double el = now - p->t0, rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 && p->total > p->done ? (double)(p->total - p->done) / rate : 0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r%-10s [%s] %3.0f%% %zu/%zu %s  %.1f %s/s  eta %.0fs ", p->label, bar, 100 * frac,
            p->done, p->total, p->unit, rate, p->unit, eta);
    p->last_draw = now;
}

void kvq_progress_update(kvq_progress *p, size_t done) {
    p->done = done;
    if (!p->enabled) return;
    double now = kvq_now();
    if (now - p->last_draw >= 0.1) draw(p, now);
}

void kvq_progress_end(kvq_progress *p) {
    if (!p->enabled) return;
    draw(p, kvq_now());
    fputc('\n', stderr);
}

/* ---- JSON writer ---- */
static void write_escaped(FILE *f, const char *s);

static void jo_sep(kvq_json_out *j, const char *key) {
    if (j->depth > 0) {
        if (j->need_comma[j->depth]) fputc(',', j->f);
        j->need_comma[j->depth] = 1;
    }
    if (key) {
        write_escaped(j->f, key);
        fputc(':', j->f);
    }
}

/* Length of the valid UTF-8 sequence at c (1..4), or 0 when it is not valid UTF-8. */
static int utf8_len(const unsigned char *c) {
    int n = c[0] < 0x80 ? 1 : (c[0] & 0xE0) == 0xC0 ? 2 : (c[0] & 0xF0) == 0xE0 ? 3 : (c[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 2 && c[0] < 0xC2) return 0;                       /* overlong */
    for (int k = 1; k < n; k++)
        if ((c[k] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c[0] == 0xE0 && c[1] < 0xA0) || (c[0] == 0xED && c[1] >= 0xA0))) return 0;
    if (n == 4 && ((c[0] == 0xF0 && c[1] < 0x90) || c[0] > 0xF4 || (c[0] == 0xF4 && c[1] >= 0x90))) return 0;
    return n;
}

/* A JSON string; bytes that are not valid UTF-8 are written as U+FFFD so the output stays JSON. */
static void write_escaped(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        int n = utf8_len(c);
        if (n == 0) { fputs("\ufffd", f); c++; continue; }
        if (n > 1) { fwrite(c, 1, (size_t)n, f); c += n; continue; }
        if (*c == '"' || *c == '\\') { fputc('\\', f); fputc(*c, f); }
        else if (*c == '\n') fputs("\\n", f);
        else if (*c == '\t') fputs("\\t", f);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
        c++;
    }
    fputc('"', f);
}

void kvq_jo_begin(kvq_json_out *j, FILE *f) { memset(j, 0, sizeof *j); j->f = f; }

void kvq_jo_obj(kvq_json_out *j, const char *key) {
    jo_sep(j, key);
    fputc('{', j->f);
    if (j->depth < 63) j->need_comma[++j->depth] = 0;
}

void kvq_jo_arr(kvq_json_out *j, const char *key) {
    jo_sep(j, key);
    fputc('[', j->f);
    if (j->depth < 63) j->need_comma[++j->depth] = 0;
}

void kvq_jo_end(kvq_json_out *j, char close) {
    fputc(close, j->f);
    if (j->depth > 0) j->depth--;
}

void kvq_jo_str(kvq_json_out *j, const char *key, const char *v) {
    jo_sep(j, key);
    write_escaped(j->f, v ? v : "");
}

void kvq_jo_num(kvq_json_out *j, const char *key, double v) {
    jo_sep(j, key);
    if (isfinite(v)) fprintf(j->f, "%.17g", v);
    else fputs("null", j->f);
}

void kvq_jo_int(kvq_json_out *j, const char *key, long long v) {
    jo_sep(j, key);
    fprintf(j->f, "%lld", v);
}

void kvq_jo_bool(kvq_json_out *j, const char *key, int v) {
    jo_sep(j, key);
    fputs(v ? "true" : "false", j->f);
}

void kvq_jo_finish(kvq_json_out *j) { fputc('\n', j->f); fflush(j->f); }
