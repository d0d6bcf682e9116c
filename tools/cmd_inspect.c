/* cmd_inspect.c — `kvq inspect FILE [--json]`: reads a codebook file (every checksum verified, every
 * rule of docs/format.md checked), then prints its header, metadata and one line per layer; or, for
 * a bad file, one message naming the problem and a non-zero exit code. Read-only; not a repair tool. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kvq_codebook.h"

static void usage(FILE *f) {
    fprintf(f, "usage: kvq inspect FILE [--json]\n\n"
               "Check a codebook file (.kvqc, docs/format.md) and print what it holds: format version\n"
               "and sizes, model identity, provenance, and one line per layer (bits, centroid range,\n"
               "Q-Norm, mean half-range, value axis, outlier policy, fit diagnostics).\n"
               "Every checksum is verified. Exit 0 when the file is valid, else 3 (invalid file) or\n"
               "4 (unreadable file), with a message naming the problem.\n\n"
               "  --json    print one JSON document on stdout instead of the text report\n"
               "  --help    this text\n");
}

static const char *scaling_name(kvq_rope_scaling s) {
    return s == KVQ_ROPE_SCALING_LINEAR ? "linear" : s == KVQ_ROPE_SCALING_LLAMA3 ? "llama3" : "none";
}
static const char *convention_name(kvq_rope_convention c) {
    return c == KVQ_ROPE_INTERLEAVED ? "interleaved" : "rotate_half";
}
static const char *axis_name(kvq_norm_axis a) {
    return a == KVQ_NORM_PER_CHANNEL ? "per_channel" : a == KVQ_NORM_PER_TOKEN ? "per_token" : "per_token_head";
}
static const char *residual_name(kvq_outlier_residual r) {
    return r == KVQ_OUTLIER_RESIDUAL ? "residual" : "exact";
}
static const char *weighting_name(kvq_fisher_weighting w) {
    return w == KVQ_WEIGHT_FISHER ? "fisher" : w == KVQ_WEIGHT_FISHER_SCALED ? "fisher_r2" : "none";
}
static const char *solver_name(kvq_kmeans_solver s) { return s == KVQ_SOLVER_EXACT ? "exact" : "lloyd"; }

/* Mean, min and max of a tensor's half-ranges (kv_dim); zeros when it has none. */
static void half_range_stats(const kvq_tensor_codebook *t, uint32_t kv_dim, double s[3]) {
    s[0] = s[1] = s[2] = 0;
    if (!t->half_range) return;
    s[1] = s[2] = t->half_range[0];
    for (uint32_t c = 0; c < kv_dim; c++) {
        double r = t->half_range[c];
        s[0] += r / kv_dim;
        s[1] = fmin(s[1], r);
        s[2] = fmax(s[2], r);
    }
}

/* ---- text ---- */
static void text_tensor(const kvq_tensor_codebook *t, uint32_t kv_dim) {
    char qn[32], rng[32], outl[40], mean_r[16];
    size_t n = (size_t)1 << t->bits;
    snprintf(rng, sizeof rng, "[%.4g, %.4g]", (double)t->centroids[0], (double)t->centroids[n - 1]);
    if (t->qnorm) snprintf(qn, sizeof qn, "x%.4g %+.3g", (double)t->qnorm_scale, (double)t->qnorm_offset);
    else snprintf(qn, sizeof qn, "-");
    double s[3];
    half_range_stats(t, kv_dim, s);
    if (t->half_range) snprintf(mean_r, sizeof mean_r, "%.4g", s[0]);
    else snprintf(mean_r, sizeof mean_r, "online");
    if (t->outlier_fraction > 0)
        snprintf(outl, sizeof outl, "%.3g%% cap %u %s", 100.0 * t->outlier_fraction, t->outlier_cap,
                 residual_name(t->residual));
    else snprintf(outl, sizeof outl, "none");
    printf("  %4u %-14s %-18s %-14s %-9s %-20s", t->bits, axis_name(t->axis), rng, qn, mean_r, outl);
}

static void print_text(const char *path, const kvq_codebook *cb, const kvq_codebook_file_info *fi) {
    const kvq_model_identity *m = &cb->model;
    const kvq_provenance *p = &cb->provenance;
    printf("file          %s\n", path);
    printf("format        .kvqc %u.%u, %llu bytes: header %u (%u metadata pairs, %u entries), "
           "payloads %llu bytes from offset %llu\n", fi->version_major, fi->version_minor,
           (unsigned long long)fi->file_size, fi->header_size, fi->n_meta, fi->n_entries,
           (unsigned long long)fi->payload_bytes, (unsigned long long)fi->data_offset);
    printf("checksums     OK (header CRC-32C %08x, %u payload CRCs)\n", fi->header_crc, fi->n_entries);
    if (fi->n_unknown_meta || fi->n_unknown_entries)
        printf("ignored       %u metadata keys, %u entries unknown to this reader (newer minor version)\n",
               fi->n_unknown_meta, fi->n_unknown_entries);
    printf("model         %s: %u layers, %u heads, %u KV heads, head_dim %u (kv_dim %u), hidden %u, vocab %u\n",
           m->architecture, m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, kvq_kv_dim(m),
           m->hidden, m->vocab);
    printf("rope          theta %.9g, scaling %s", (double)m->rope_theta, scaling_name(m->rope_scaling));
    if (m->rope_scaling != KVQ_ROPE_SCALING_NONE) printf(" x%.9g", (double)m->rope_scaling_factor);
    if (m->rope_scaling == KVQ_ROPE_SCALING_LLAMA3)
        printf(" (low %.9g, high %.9g, original %u)", (double)m->rope_low_freq_factor,
               (double)m->rope_high_freq_factor, m->rope_original_max_pos);
    printf(", %s\n", convention_name(m->rope_convention));
    printf("fingerprint   %016llx\n", (unsigned long long)m->fingerprint);
    printf("sink tokens   %u\n", cb->n_sink);
    printf("provenance    %s; text '%s' (sha256 %s); %u samples x %u tokens; seed %llu\n",
           p->tool_version[0] ? p->tool_version : "?", p->calib_text,
           p->calib_text_sha256[0] ? p->calib_text_sha256 : "-", p->samples, p->seq_len,
           (unsigned long long)p->seed);
    printf("fit           weighting %s, solver %s (%u iterations, seed %llu, %u histogram bins)\n\n",
           weighting_name(p->weighting), solver_name(p->solver), p->kmeans_iters,
           (unsigned long long)p->kmeans_seed, p->histogram_bins);
    const char *cols = "bits axis           centroids          Q-Norm         mean r    outliers            ";
    printf("layer  K %s  V %s%s\n", cols, cols,
           cb->diag.k_objective || cb->diag.v_objective ? "  K obj      V obj      K outl   V outl" : "");
    const double *d[4] = {cb->diag.k_objective, cb->diag.v_objective, cb->diag.k_outlier_rate,
                          cb->diag.v_outlier_rate};
    for (uint32_t l = 0; l < m->n_layers; l++) {
        printf("%5u", l);
        text_tensor(&cb->layers[l].k, kvq_kv_dim(m));
        text_tensor(&cb->layers[l].v, kvq_kv_dim(m));
        for (int i = 0; i < 4; i++)
            if (d[i]) printf(i < 2 ? "  %-9.4g" : "  %6.3f%%", i < 2 ? d[i][l] : 100 * d[i][l]);
            else if (d[0] || d[1]) printf(i < 2 ? "  %-9s" : "  %7s", "-");
        printf("\n");
    }
}

/* ---- JSON ---- */
static void json_u64(kvq_json_out *j, const char *key, uint64_t v) {
    char s[24];   /* strings: exact beyond 2^53, where JSON numbers are not */
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    kvq_jo_str(j, key, s);
}

static void json_tensor(kvq_json_out *j, const char *key, const kvq_tensor_codebook *t, uint32_t kv_dim) {
    kvq_jo_obj(j, key);
    kvq_jo_int(j, "bits", t->bits);
    kvq_jo_str(j, "axis", axis_name(t->axis));
    kvq_jo_arr(j, "centroids");
    for (size_t i = 0; i < (size_t)1 << t->bits; i++) kvq_jo_num(j, NULL, t->centroids[i]);
    kvq_jo_end(j, ']');
    kvq_jo_bool(j, "qnorm", t->qnorm);
    kvq_jo_num(j, "qnorm_scale", t->qnorm_scale);
    kvq_jo_num(j, "qnorm_offset", t->qnorm_offset);
    if (t->half_range) {
        double s[3];
        half_range_stats(t, kv_dim, s);
        kvq_jo_num(j, "half_range_mean", s[0]);
        kvq_jo_num(j, "half_range_min", s[1]);
        kvq_jo_num(j, "half_range_max", s[2]);
    }
    kvq_jo_num(j, "outlier_fraction", t->outlier_fraction);
    kvq_jo_int(j, "outlier_cap", t->outlier_cap);
    kvq_jo_str(j, "residual", residual_name(t->residual));
    kvq_jo_end(j, '}');
}

static void print_json(const char *path, const kvq_codebook *cb, const kvq_codebook_file_info *fi) {
    const kvq_model_identity *m = &cb->model;
    const kvq_provenance *p = &cb->provenance;
    kvq_json_out j;
    kvq_jo_begin(&j, stdout);
    kvq_jo_obj(&j, NULL);
    kvq_jo_str(&j, "file", path);
    kvq_jo_bool(&j, "valid", 1);
    kvq_jo_obj(&j, "format");
    kvq_jo_int(&j, "version_major", fi->version_major);
    kvq_jo_int(&j, "version_minor", fi->version_minor);
    kvq_jo_int(&j, "file_size", (long long)fi->file_size);
    kvq_jo_int(&j, "header_size", fi->header_size);
    kvq_jo_int(&j, "data_offset", (long long)fi->data_offset);
    kvq_jo_int(&j, "n_meta", fi->n_meta);
    kvq_jo_int(&j, "n_entries", fi->n_entries);
    kvq_jo_int(&j, "payload_bytes", (long long)fi->payload_bytes);
    char crc[12];
    snprintf(crc, sizeof crc, "%08x", fi->header_crc);
    kvq_jo_str(&j, "header_crc", crc);
    kvq_jo_bool(&j, "checksums_ok", 1);
    kvq_jo_int(&j, "unknown_meta", fi->n_unknown_meta);
    kvq_jo_int(&j, "unknown_entries", fi->n_unknown_entries);
    kvq_jo_end(&j, '}');
    kvq_jo_obj(&j, "model");
    kvq_jo_str(&j, "architecture", m->architecture);
    kvq_jo_int(&j, "n_layers", m->n_layers);
    kvq_jo_int(&j, "n_heads", m->n_heads);
    kvq_jo_int(&j, "n_kv_heads", m->n_kv_heads);
    kvq_jo_int(&j, "head_dim", m->head_dim);
    kvq_jo_int(&j, "kv_dim", kvq_kv_dim(m));
    kvq_jo_int(&j, "hidden", m->hidden);
    kvq_jo_int(&j, "vocab", m->vocab);
    kvq_jo_num(&j, "rope_theta", m->rope_theta);
    kvq_jo_str(&j, "rope_scaling", scaling_name(m->rope_scaling));
    kvq_jo_num(&j, "rope_scaling_factor", m->rope_scaling_factor);
    kvq_jo_num(&j, "rope_low_freq_factor", m->rope_low_freq_factor);
    kvq_jo_num(&j, "rope_high_freq_factor", m->rope_high_freq_factor);
    kvq_jo_int(&j, "rope_original_max_pos", m->rope_original_max_pos);
    kvq_jo_str(&j, "rope_convention", convention_name(m->rope_convention));
    char fp[20];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->fingerprint);
    kvq_jo_str(&j, "fingerprint", fp);
    kvq_jo_end(&j, '}');
    kvq_jo_int(&j, "n_sink", cb->n_sink);
    kvq_jo_obj(&j, "provenance");
    kvq_jo_str(&j, "tool_version", p->tool_version);
    kvq_jo_str(&j, "calib_text", p->calib_text);
    kvq_jo_str(&j, "calib_text_sha256", p->calib_text_sha256);
    kvq_jo_int(&j, "samples", p->samples);
    kvq_jo_int(&j, "seq_len", p->seq_len);
    json_u64(&j, "seed", p->seed);
    kvq_jo_str(&j, "weighting", weighting_name(p->weighting));
    kvq_jo_str(&j, "solver", solver_name(p->solver));
    kvq_jo_int(&j, "kmeans_iters", p->kmeans_iters);
    json_u64(&j, "kmeans_seed", p->kmeans_seed);
    kvq_jo_int(&j, "histogram_bins", p->histogram_bins);
    kvq_jo_end(&j, '}');
    const double *d[4] = {cb->diag.k_objective, cb->diag.v_objective, cb->diag.k_outlier_rate,
                          cb->diag.v_outlier_rate};
    static const char *const dn[4] = {"k_objective", "v_objective", "k_outlier_rate", "v_outlier_rate"};
    kvq_jo_arr(&j, "layers");
    for (uint32_t l = 0; l < m->n_layers; l++) {
        kvq_jo_obj(&j, NULL);
        kvq_jo_int(&j, "layer", l);
        json_tensor(&j, "k", &cb->layers[l].k, kvq_kv_dim(m));
        json_tensor(&j, "v", &cb->layers[l].v, kvq_kv_dim(m));
        for (int i = 0; i < 4; i++)
            if (d[i]) kvq_jo_num(&j, dn[i], d[i][l]);
        kvq_jo_end(&j, '}');
    }
    kvq_jo_end(&j, ']');
    kvq_jo_end(&j, '}');
    kvq_jo_finish(&j);
}

static void print_json_error(const char *path, kvq_status st, const char *why) {
    kvq_json_out j;
    kvq_jo_begin(&j, stdout);
    kvq_jo_obj(&j, NULL);
    kvq_jo_str(&j, "file", path);
    kvq_jo_bool(&j, "valid", 0);
    kvq_jo_str(&j, "status", kvq_status_name(st));
    kvq_jo_str(&j, "error", why[0] ? why : kvq_status_message(st));
    kvq_jo_end(&j, '}');
    kvq_jo_finish(&j);
}

int kvq_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return KVQ_EXIT_OK; }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "kvq inspect: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return KVQ_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "kvq inspect: one FILE only ('%s' and '%s')\n", path, argv[i]);
            return KVQ_EXIT_USAGE;
        } else path = argv[i];
    }
    if (!path) { usage(stderr); return KVQ_EXIT_USAGE; }
    kvq_codebook cb;
    kvq_codebook_file_info fi;
    char why[512];
    kvq_status st = kvq_codebook_read_ex(path, 0, &cb, &fi, why, sizeof why);
    if (st) {
        if (json) print_json_error(path, st, why);
        return kvq_report("inspect", st, path, why);
    }
    if (json) print_json(path, &cb, &fi);
    else print_text(path, &cb, &fi);
    kvq_codebook_free(&cb);
    return KVQ_EXIT_OK;
}
