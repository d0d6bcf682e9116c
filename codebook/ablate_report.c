/* ablate_report.c — the four files `kvq ablate` writes (ablate.h: kvq_ablate_write): a Markdown
 * report, a CSV with one row per (configuration, bits), the same as JSON, and an SVG chart of
 * delta perplexity vs the fp16 cache. Each file is written atomically (temp, fsync, rename).
 * Not the computation (ablate.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ablate.h"
#include "svg_chart.h"

#define WHY(...) do { if (why && why_len) snprintf(why, why_len, __VA_ARGS__); } while (0)

typedef kvq_status (*writer_fn)(FILE *f, const kvq_ablate_report *r);

static kvq_status write_atomic(const char *dir, const char *name, writer_fn fn,
                               const kvq_ablate_report *r, char *why, size_t why_len) {
    char path[1024], tmp[1100];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) { WHY("%s/%s: path too long", dir, name); return KVQ_ERR_ARG; }
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) { WHY("%s: cannot create: %s", tmp, strerror(errno)); return KVQ_ERR_IO; }
    FILE *f = fdopen(fd, "w");
    if (!f) { close(fd); unlink(tmp); WHY("%s: fdopen: %s", tmp, strerror(errno)); return KVQ_ERR_IO; }
    kvq_status st = fn(f, r);
    if (st == KVQ_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0 || ferror(f))) st = KVQ_ERR_IO;
    if (fclose(f) != 0 && st == KVQ_OK) st = KVQ_ERR_IO;
    if (st == KVQ_OK && rename(tmp, path) != 0) st = KVQ_ERR_IO;
    if (st != KVQ_OK) { unlink(tmp); WHY("%s: write failed: %s", path, strerror(errno)); }
    return st;
}

static const kvq_eval_result *cell(const kvq_ablate_report *r, size_t c, size_t b) {
    return &r->cells[c * r->n_bits + b];
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

static kvq_status write_md(FILE *f, const kvq_ablate_report *r) {
    size_t n;
    const kvq_ablate_config *cfg = kvq_ablate_configs(&n);
    const kvq_eval_result *fp = &r->fp16;
    fprintf(f, "# KV-cache quantization ablation: %s\n\n", base_name(r->model));
    fprintf(f, "- calibration: `%s`, %u windows x %u tokens (capture `%s`, %s)\n", r->calib, r->samples,
            r->calib_seq_len, r->capture, r->capture_reused ? "reused" : "written by this run");
    fprintf(f, "- evaluation: `%s`, the first %zu of its %zu windows x %d tokens = %zu predicted positions\n",
            r->text, fp->n_windows, fp->n_available, r->seq_len, fp->n_predicted);
    fprintf(f, "- unquantized (fp32 K/V) perplexity %.4f; fp16 K/V cache %.4f (KL mean %.2e)\n",
            fp->ref_ppl, fp->ppl, fp->kl_mean);
    fprintf(f, "- time: capture %.0f s, fit %.0f s, evaluation %.0f s\n\n", r->capture_s, r->fit_s, r->eval_s);
    fprintf(f, "## Perplexity (delta vs the fp16 cache)\n\n| configuration |");
    for (size_t b = 0; b < r->n_bits; b++) fprintf(f, " %u-bit |", r->bits[b]);
    fprintf(f, "\n| --- |");
    for (size_t b = 0; b < r->n_bits; b++) fprintf(f, " --- |");
    fputc('\n', f);
    for (size_t c = 0; c < r->n_configs; c++) {
        if (c == 0 || cfg[c].ladder != cfg[c - 1].ladder) {
            fprintf(f, "| **%s** |", cfg[c].ladder ? "ladder (cumulative)" : "baselines");
            for (size_t b = 0; b < r->n_bits; b++) fputs(" |", f);
            fputc('\n', f);
        }
        fprintf(f, "| %s |", cfg[c].label);
        for (size_t b = 0; b < r->n_bits; b++)
            fprintf(f, " %.3f (%+.3f) |", cell(r, c, b)->ppl, cell(r, c, b)->ppl - fp->ppl);
        fputc('\n', f);
    }
    fprintf(f, "\n![delta perplexity vs fp16](ablation.svg)\n\n## All metrics\n\n"
               "KL = per-position KL(p_fp32 || p_quant) in nats; top-1 = agreement of the argmax with "
               "the unquantized model; bits = measured average bits per element (codes, scales, "
               "outliers, pointers, fp16 tokens).\n\n"
               "| configuration | bits | ppl | KL mean | KL p99 | top-1 | K bits | V bits | K outliers | V outliers | tokens/s |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    fprintf(f, "| fp16 | 16 | %.3f | %.2e | %.2e | %.4f | %.2f | %.2f | - | - | %.0f |\n", fp->ppl,
            fp->kl_mean, fp->kl_p99, fp->top1, fp->k_bits, fp->v_bits, fp->tokens_per_s);
    for (size_t c = 0; c < r->n_configs; c++)
        for (size_t b = 0; b < r->n_bits; b++) {
            const kvq_eval_result *e = cell(r, c, b);
            fprintf(f, "| %s | %u | %.3f | %.4f | %.4f | %.4f | %.3f | %.3f | %.2f%% | %.2f%% | %.0f |\n",
                    cfg[c].label, e->bits, e->ppl, e->kl_mean, e->kl_p99, e->top1, e->k_bits, e->v_bits,
                    100 * e->k_outlier_rate, 100 * e->v_outlier_rate, e->tokens_per_s);
        }
    fprintf(f, "\nReference forward passes: %.0f tokens/s.\n", fp->ref_tokens_per_s);
    return KVQ_OK;
}

static void csv_row(FILE *f, const char *id, const char *label, int ladder, const kvq_eval_result *e,
                    double fp16_ppl) {
    fprintf(f, "%s,\"%s\",%d,%u,%.6f,%.6f,%.6f,%.8g,%.8g,%.6f,%.5f,%.5f,%.6f,%.6f,%.2f\n", id, label, ladder,
            e->bits, e->ppl, e->ppl - fp16_ppl, e->ref_ppl, e->kl_mean, e->kl_p99, e->top1, e->k_bits,
            e->v_bits, e->k_outlier_rate, e->v_outlier_rate, e->tokens_per_s);
}

static kvq_status write_csv(FILE *f, const kvq_ablate_report *r) {
    size_t n;
    const kvq_ablate_config *cfg = kvq_ablate_configs(&n);
    fputs("id,label,ladder,bits,ppl,delta_ppl_vs_fp16,ref_ppl,kl_mean,kl_p99,top1,k_bits,v_bits,"
          "k_outlier_rate,v_outlier_rate,tokens_per_s\n", f);
    csv_row(f, "fp16", "fp16", 0, &r->fp16, r->fp16.ppl);
    for (size_t c = 0; c < r->n_configs; c++)
        for (size_t b = 0; b < r->n_bits; b++) csv_row(f, cfg[c].id, cfg[c].label, cfg[c].ladder, cell(r, c, b), r->fp16.ppl);
    return KVQ_OK;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void json_result(FILE *f, const char *id, const char *label, int ladder, const kvq_eval_result *e,
                        double fp16_ppl) {
    fputs("{\"id\":", f);
    json_str(f, id);
    fputs(",\"label\":", f);
    json_str(f, label);
    fprintf(f, ",\"ladder\":%s,\"bits\":%u,\"ppl\":%.6f,\"delta_ppl_vs_fp16\":%.6f,\"kl_mean\":%.8g,"
               "\"kl_p99\":%.8g,\"top1\":%.6f,\"k_bits\":%.5f,\"v_bits\":%.5f,\"k_outlier_rate\":%.6f,"
               "\"v_outlier_rate\":%.6f,\"tokens_per_s\":%.2f}",
            ladder ? "true" : "false", e->bits, e->ppl, e->ppl - fp16_ppl, e->kl_mean, e->kl_p99, e->top1,
            e->k_bits, e->v_bits, e->k_outlier_rate, e->v_outlier_rate, e->tokens_per_s);
}

static kvq_status write_json(FILE *f, const kvq_ablate_report *r) {
    size_t n;
    const kvq_ablate_config *cfg = kvq_ablate_configs(&n);
    fputs("{\"model\":", f);
    json_str(f, r->model);
    fputs(",\"calib\":", f);
    json_str(f, r->calib);
    fputs(",\"text\":", f);
    json_str(f, r->text);
    fputs(",\"capture\":", f);
    json_str(f, r->capture);
    fprintf(f, ",\"capture_reused\":%s,\"samples\":%u,\"calib_seq_len\":%u,\"seq_len\":%d,\"windows\":%zu,\"windows_available\":%zu,"
               "\"predicted_positions\":%zu,\"ref_ppl\":%.6f,\"ref_tokens_per_s\":%.2f,"
               "\"seconds\":{\"capture\":%.1f,\"fit\":%.1f,\"eval\":%.1f},\"results\":[",
            r->capture_reused ? "true" : "false", r->samples, r->calib_seq_len, r->seq_len, r->fp16.n_windows,
            r->fp16.n_available, r->fp16.n_predicted, r->fp16.ref_ppl, r->fp16.ref_tokens_per_s, r->capture_s, r->fit_s, r->eval_s);
    json_result(f, "fp16", "fp16", 0, &r->fp16, r->fp16.ppl);
    for (size_t c = 0; c < r->n_configs; c++)
        for (size_t b = 0; b < r->n_bits; b++) {
            fputc(',', f);
            json_result(f, cfg[c].id, cfg[c].label, cfg[c].ladder, cell(r, c, b), r->fp16.ppl);
        }
    fputs("]}\n", f);
    return KVQ_OK;
}

static kvq_status write_svg(FILE *f, const kvq_ablate_report *r) {
    size_t n;
    const kvq_ablate_config *cfg = kvq_ablate_configs(&n);
    char ticks[KVQ_ABLATE_MAX_BITS][16], title[320];
    const char *tick_ptr[KVQ_ABLATE_MAX_BITS];
    double *y = malloc(r->n_configs * r->n_bits * sizeof(double));
    kvq_chart_series *s = malloc(r->n_configs * sizeof *s);
    if (!y || !s) { free(y); free(s); return KVQ_ERR_NOMEM; }
    for (size_t b = 0; b < r->n_bits; b++) {
        snprintf(ticks[b], sizeof ticks[b], "%u-bit", r->bits[b]);
        tick_ptr[b] = ticks[b];
    }
    for (size_t c = 0; c < r->n_configs; c++) {
        for (size_t b = 0; b < r->n_bits; b++) y[c * r->n_bits + b] = cell(r, c, b)->ppl - r->fp16.ppl;
        s[c].name = cfg[c].legend;
        s[c].y = y + c * r->n_bits;
        s[c].dashed = !cfg[c].ladder;
    }
    snprintf(title, sizeof title, "%s: perplexity increase over the fp16 cache", base_name(r->model));
    kvq_chart ch = {.title = title, .x_label = "bits per element (nominal)",
                    .y_label = "perplexity - fp16 perplexity", .x_ticks = tick_ptr, .n_x = r->n_bits,
                    .series = s, .n_series = r->n_configs, .log_y = -1};
    kvq_status st = kvq_svg_chart_write(f, &ch);
    free(y);
    free(s);
    return st;
}

kvq_status kvq_ablate_write(const kvq_ablate_report *rep, const char *out_dir, char *why,
                            size_t why_len) {
    if (!rep || !out_dir || !rep->cells || !rep->n_bits) return KVQ_ERR_ARG;
    static const struct { const char *name; writer_fn fn; } files[] = {
        {"ablation.md", write_md}, {"ablation.csv", write_csv}, {"ablation.json", write_json},
        {"ablation.svg", write_svg}};
    kvq_status st = KVQ_OK;
    for (size_t i = 0; i < sizeof files / sizeof files[0] && st == KVQ_OK; i++)
        st = write_atomic(out_dir, files[i].name, files[i].fn, rep, why, why_len);
    return st;
}
