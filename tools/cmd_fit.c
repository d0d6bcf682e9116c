/* cmd_fit.c — `kvq fit CAPTURE.h5 -o MODEL.kvqc [options]`: fit a codebook from a calibration
 * capture (codebook/fit.h) and write it (format/kvq_codebook.h). Option parsing, progress, one line
 * of figures per layer, --json. Not the fitting itself. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture_h5.h"
#include "cli.h"
#include "fit.h"
#include "kmeans.h"
#include "kvq_codebook.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: kvq fit CAPTURE.h5 -o MODEL.kvqc [options]\n\n"
        "Fit a KVQuant codebook (per-channel key thresholds, Fisher-weighted non-uniform datatypes\n"
        "for K and V per layer, outliers, Q-Norm, sink tokens) from a `kvq capture` file.\n\n"
        "  -o, --output PATH            codebook file to write (required; atomic)\n"
        "  --bits B                     code width of K and V, 1..8 (default 3)\n"
        "  --k-bits B, --v-bits B       per tensor (override --bits)\n"
        "  --outliers P                 outlier fraction, 0 disables (default 0.01)\n"
        "  --outlier-cap M|ref          at most M upper + M lower outliers per token; 0 = none;\n"
        "                               ref = ceil(P/2 * group), as the reference code (default)\n"
        "  --qnorm auto|on|off          Q-Norm (default auto: on at 2 bits only)\n"
        "  --sink N                     first N tokens of each sample kept fp16 (default 1)\n"
        "  --sink-keys-thresholds exclude|include\n"
        "                               sink tokens in the key percentiles (default exclude, as the\n"
        "                               paper; include mimics the reference code)\n"
        "  --value-stats token|head     value scales per token (default) or per token and KV head\n"
        "  --weight fisher-scaled|fisher|none\n"
        "                               k-means weights F*r^2 (default, paper), F (reference), 1\n"
        "  --solver exact|lloyd         exact 1-D optimum (default) or k-means++ + Lloyd\n"
        "  --kmeans-iters N             Lloyd iteration cap (default 50)\n"
        "  --seed S                     Lloyd k-means++ seed (default 0)\n"
        "  --bins N                     exact solver histogram bins (default %d)\n"
        "  --threads T                  worker threads (default: online CPUs); results do not\n"
        "                               depend on it\n"
        "  --check-model CODEBOOK       refuse unless the capture is of the model CODEBOOK is for\n"
        "  --json                       print one JSON document on stdout\n"
        "  -h, --help                   this text\n", KVQ_KMEANS_DEFAULT_BINS);
}

typedef struct fit_cli {
    const char *capture, *output, *check_model;
    int json;
    kvq_fit_opts o;
    kvq_progress prog;
    kvq_fit_layer_report *reps;   /* (n_reps) per-layer figures, for --json */
    uint32_t n_reps;
} fit_cli;

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) return 0;
    *out = (uint32_t)v;
    return 1;
}

static int pick(const char *s, const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++) if (!strcmp(s, names[i])) { *out = i; return 1; }
    return 0;
}

/* One option with its value; returns 0 on a bad value (message printed). */
static int parse_opt(fit_cli *c, const char *opt, const char *v) {
    kvq_fit_opts *o = &c->o;
    uint32_t u;
    int i;
    static const char *const weights[] = {"none", "fisher", "fisher-scaled"}, *const solvers[] = {"lloyd", "exact"},
                             *const qn[] = {"off", "on", "auto"}, *const stats[] = {"token", "head"},
                             *const sinkk[] = {"exclude", "include"};
    if (!strcmp(opt, "--bits") && parse_u32(v, 1, 8, &u)) o->k_bits = o->v_bits = u;
    else if (!strcmp(opt, "--k-bits") && parse_u32(v, 1, 8, &u)) o->k_bits = u;
    else if (!strcmp(opt, "--v-bits") && parse_u32(v, 1, 8, &u)) o->v_bits = u;
    else if (!strcmp(opt, "--outliers")) {
        char *end;
        double p = strtod(v, &end);
        if (end == v || *end || !(p >= 0 && p < 1)) goto bad;
        o->outlier_fraction = (float)p;
    } else if (!strcmp(opt, "--outlier-cap")) {
        if (!strcmp(v, "ref")) o->outlier_cap_ref = 1;
        else if (parse_u32(v, 0, 65535, &u)) { o->outlier_cap = u; o->outlier_cap_ref = 0; }
        else goto bad;
    } else if (!strcmp(opt, "--qnorm") && pick(v, qn, 3, &i)) o->qnorm = i == 2 ? KVQ_QNORM_AUTO : i;
    else if (!strcmp(opt, "--sink") && parse_u32(v, 0, 1u << 20, &u)) o->n_sink = u;
    else if (!strcmp(opt, "--sink-keys-thresholds") && pick(v, sinkk, 2, &i)) o->sink_in_key_thresholds = i;
    else if (!strcmp(opt, "--value-stats") && pick(v, stats, 2, &i))
        o->value_axis = i ? KVQ_NORM_PER_TOKEN_HEAD : KVQ_NORM_PER_TOKEN;
    else if (!strcmp(opt, "--weight") && pick(v, weights, 3, &i)) o->weighting = (kvq_fisher_weighting)i;
    else if (!strcmp(opt, "--solver") && pick(v, solvers, 2, &i)) o->solver = (kvq_kmeans_solver)i;
    else if (!strcmp(opt, "--kmeans-iters") && parse_u32(v, 0, 1000000, &u)) o->kmeans_iters = u;
    else if (!strcmp(opt, "--seed")) {
        char *end;
        errno = 0;
        o->kmeans_seed = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-') goto bad;
    } else if (!strcmp(opt, "--bins") && parse_u32(v, 16, 1u << 24, &u)) o->hist_bins = u;
    else if (!strcmp(opt, "--threads") && parse_u32(v, 1, 256, &u)) o->n_threads = (int)u;
    else if (!strcmp(opt, "-o") || !strcmp(opt, "--output")) c->output = v;
    else if (!strcmp(opt, "--check-model")) c->check_model = v;
    else goto bad;
    return 1;
bad:
    fprintf(stderr, "kvq fit: bad value '%s' for %s (see kvq fit --help)\n", v, opt);
    return 0;
}

static int parse_args(fit_cli *c, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return -1; }
        if (!strcmp(a, "--json")) { c->json = 1; continue; }
        if (a[0] == '-' && a[1]) {
            if (i + 1 >= argc) { fprintf(stderr, "kvq fit: %s needs a value\n", a); return 0; }
            if (!parse_opt(c, a, argv[++i])) return 0;
            continue;
        }
        if (c->capture) { fprintf(stderr, "kvq fit: more than one capture file given\n"); return 0; }
        c->capture = a;
    }
    if (!c->capture || !c->output) {
        fprintf(stderr, "kvq fit: need a capture file and -o OUTPUT\n\n");
        usage(stderr);
        return 0;
    }
    return 1;
}

static const char *pct(double rate, char *buf, size_t len) {
    snprintf(buf, len, "%.3f%%", 100 * rate);
    return buf;
}

static void on_layer(void *ctx, const kvq_fit_layer_report *r, uint32_t done, uint32_t total) {
    fit_cli *c = ctx;
    char a[32], b[32];
    c->prog.total = total;
    if (!r) { kvq_progress_update(&c->prog, 0); return; }   /* before the first layer */
    if (!c->reps) c->reps = calloc(total, sizeof *c->reps);
    if (c->reps && c->n_reps < total) c->reps[c->n_reps++] = *r;
    if (!c->json) {
        if (c->prog.enabled) fprintf(stderr, "\r\033[K");
        printf("layer %3u  K objective %.6e  V objective %.6e  outliers K %s V %s  %.2f s\n", r->layer,
               r->k_objective, r->v_objective, pct(r->k_outlier_rate, a, sizeof a),
               pct(r->v_outlier_rate, b, sizeof b), r->seconds);
        fflush(stdout);
    }
    kvq_progress_update(&c->prog, done);
}

static const char *solver_name(kvq_kmeans_solver s) { return s == KVQ_SOLVER_EXACT ? "exact" : "lloyd"; }
static const char *weight_name(kvq_fisher_weighting w) {
    return w == KVQ_WEIGHT_NONE ? "none" : w == KVQ_WEIGHT_FISHER ? "fisher" : "fisher-scaled";
}

static void print_json(const fit_cli *c, const kvq_codebook *cb, double secs) {
    kvq_json_out jo;
    kvq_jo_begin(&jo, stdout);
    kvq_jo_obj(&jo, NULL);
    kvq_jo_str(&jo, "capture", c->capture);
    kvq_jo_arr(&jo, "layers");
    for (uint32_t i = 0; i < c->n_reps; i++) {
        const kvq_fit_layer_report *r = &c->reps[i];
        kvq_jo_obj(&jo, NULL);
        kvq_jo_int(&jo, "layer", r->layer);
        kvq_jo_num(&jo, "k_objective", r->k_objective);
        kvq_jo_num(&jo, "v_objective", r->v_objective);
        kvq_jo_num(&jo, "k_outlier_rate", r->k_outlier_rate);
        kvq_jo_num(&jo, "v_outlier_rate", r->v_outlier_rate);
        kvq_jo_int(&jo, "k_points", (long long)r->k_points);
        kvq_jo_int(&jo, "v_points", (long long)r->v_points);
        kvq_jo_num(&jo, "seconds", r->seconds);
        kvq_jo_end(&jo, '}');
    }
    kvq_jo_end(&jo, ']');
    kvq_jo_str(&jo, "output", c->output);
    kvq_jo_int(&jo, "n_layers", cb->model.n_layers);
    kvq_jo_int(&jo, "k_bits", c->o.k_bits);
    kvq_jo_int(&jo, "v_bits", c->o.v_bits);
    kvq_jo_str(&jo, "solver", solver_name(c->o.solver));
    kvq_jo_str(&jo, "weighting", weight_name(c->o.weighting));
    kvq_jo_num(&jo, "seconds", secs);
    kvq_jo_end(&jo, '}');
    kvq_jo_finish(&jo);
}

/* --check-model: the capture's model must be the one the given codebook is for. */
static int check_model(const fit_cli *c) {
    kvq_codebook ref;
    char why[512] = "";
    kvq_status st = kvq_codebook_read(c->check_model, &ref, why, sizeof why);
    if (st != KVQ_OK) return kvq_report("fit", st, c->check_model, why);
    kvq_capture_reader *r = NULL;
    st = kvq_capture_open(c->capture, &r, why, sizeof why);
    if (st == KVQ_OK) st = kvq_codebook_check_model(&ref, &kvq_capture_reader_meta(r)->model, why, sizeof why);
    kvq_capture_reader_free(r);
    kvq_codebook_free(&ref);
    if (st == KVQ_OK) return KVQ_EXIT_OK;
    return kvq_report("fit", st, st == KVQ_ERR_MISMATCH ? "capture and --check-model codebook are of different models" : c->capture, why);
}

int kvq_cmd_fit(int argc, char **argv) {
    fit_cli c;
    memset(&c, 0, sizeof c);
    kvq_fit_opts_default(&c.o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c.o.n_threads = ncpu > 0 ? (int)(ncpu < 256 ? ncpu : 256) : 1;
    int pa = parse_args(&c, argc, argv);
    if (pa <= 0) return pa < 0 ? KVQ_EXIT_OK : KVQ_EXIT_USAGE;
    if (c.check_model) {
        int rc = check_model(&c);
        if (rc != KVQ_EXIT_OK) return rc;
    }
    double t0 = kvq_now();
    kvq_progress_start(&c.prog, "fit", "layers", 0);
    kvq_codebook cb;
    char why[512] = "";
    kvq_status st = kvq_fit_capture(c.capture, &c.o, on_layer, &c, &cb, why, sizeof why);
    kvq_progress_end(&c.prog);
    if (st != KVQ_OK) {
        free(c.reps);
        return kvq_report("fit", st, c.capture, why);
    }
    errno = 0;
    st = kvq_codebook_write(c.output, &cb);
    if (st != KVQ_OK) {
        kvq_codebook_free(&cb);
        free(c.reps);
        return kvq_report("fit", st, c.output, st == KVQ_ERR_IO ? strerror(errno) : "writing the codebook");
    }
    double secs = kvq_now() - t0;
    if (c.json) print_json(&c, &cb, secs);
    else
        printf("wrote %s: %u layers, K %u bits, V %u bits, %s solver, %s weights, %u samples, %.1f s\n",
               c.output, cb.model.n_layers, c.o.k_bits, c.o.v_bits, solver_name(c.o.solver),
               weight_name(c.o.weighting), cb.provenance.samples, secs);
    kvq_codebook_free(&cb);
    free(c.reps);
    return KVQ_EXIT_OK;
}
