/* ablate.h — `kvq ablate`: the ablation ladder of KVQUANT.md §9 and the baselines, end to end:
 * capture (or reuse a capture), fit one codebook per KVQuant rung and bit width with the fit
 * library, evaluate every configuration against the unquantized model on one text (one shared
 * reference pass), and write DIR/ablation.{md,csv,json,svg}. Every rung is a configuration of the
 * same quantization code (codebook/quant.c): the int rungs are baselines.h methods, the nuq rungs
 * fitted codebooks. Not the CLI (tools/cmd_ablate.c). */
#ifndef KVQ_ABLATE_H
#define KVQ_ABLATE_H

#include <stddef.h>
#include <stdint.h>
#include "baselines.h"
#include "eval.h"
#include "kvq_codebook.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { KVQ_ABLATE_MAX_BITS = 8 };

/* One row of the ablation: a baseline method, or a KVQuant rung (method KVQUANT) with its fit
 * settings. Rungs are cumulative in ladder order. */
typedef struct kvq_ablate_config {
    const char *id;                 /* short stable name (CSV/JSON), e.g. "nuq-fisher" */
    const char *label;              /* human label (tables) */
    const char *legend;             /* short label (chart legend) */
    int ladder;                     /* 1: a rung of the ladder; 0: a baseline */
    kvq_method method;
    kvq_fisher_weighting weighting; /* KVQUANT rungs only */
    float outlier_fraction;
    uint32_t n_sink;
    int qnorm;
} kvq_ablate_config;

/* The configurations in report order (ladder first, then baselines); *n receives the count. */
const kvq_ablate_config *kvq_ablate_configs(size_t *n);

typedef struct kvq_ablate_opts {
    const char *model_path, *tokenizer_path;   /* tokenizer NULL: the model's own */
    const char *calib_path, *text_path;
    const char *capture_path;       /* reuse this capture when it exists, else write it there;
                                       NULL: DIR/capture.h5 */
    const char *out_dir;
    uint32_t bits[KVQ_ABLATE_MAX_BITS];
    size_t n_bits;
    uint32_t samples, calib_seq_len;
    uint64_t seed;
    int seq_len, batch;
    size_t max_windows;             /* 0: all */
    int n_threads;                  /* fit threads */
    void (*log)(void *user, const char *line);   /* progress lines (may be NULL) */
    void (*progress)(void *user, size_t done, size_t total);   /* evaluation windows */
    void *user;
} kvq_ablate_opts;

void kvq_ablate_opts_default(kvq_ablate_opts *o);

typedef struct kvq_ablate_report {
    char model[256], calib[256], text[256], capture[512];
    uint32_t samples, calib_seq_len;
    int seq_len;
    uint32_t bits[KVQ_ABLATE_MAX_BITS];
    size_t n_bits;
    size_t n_configs;
    kvq_eval_result fp16;           /* the fp16 cache, and through it the reference ppl */
    kvq_eval_result *cells;         /* (n_configs, n_bits) */
    double capture_s, fit_s, eval_s;
    int capture_reused;
} kvq_ablate_report;

void kvq_ablate_report_free(kvq_ablate_report *r);   /* accepts NULL and zeroed structs */

/* Run everything and write the four report files into opts->out_dir (created if absent). */
kvq_status kvq_ablate_run(const kvq_ablate_opts *opts, kvq_ablate_report *rep, char *why,
                          size_t why_len);

/* Write DIR/ablation.md, .csv, .json and .svg for a finished report (atomic writes). */
kvq_status kvq_ablate_write(const kvq_ablate_report *rep, const char *out_dir, char *why,
                            size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
