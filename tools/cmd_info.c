/* cmd_info.c — `kvq info --model M [--json]`: load a model (HF directory, .gguf or llama2.c .bin)
 * and print its configuration, parameter count, on-disk element types, how many weight bytes are
 * used in place vs converted, and its fingerprint. Not a tokenizer or codebook inspector. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kvq_model.h"

static void usage(FILE *f) {
    fprintf(f, "usage: kvq info --model M [--json]\n\n"
               "Load a model and describe it: configuration, parameters, dtype on disk, fingerprint.\n"
               "M is a Hugging Face directory (config.json + safetensors), a .gguf file or a\n"
               "llama2.c .bin checkpoint.\n\n"
               "options:\n"
               "  --model M   the model to load (required)\n"
               "  --json      print one JSON object instead of text\n"
               "  --help      this message\n");
}

static const char *scaling_name(kvq_rope_scaling s) {
    return s == KVQ_ROPE_SCALING_LINEAR ? "linear" : s == KVQ_ROPE_SCALING_LLAMA3 ? "llama3" : "none";
}

static void print_json(const kvq_model *m, double secs) {
    const kvq_model_config *c = &m->cfg;
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)kvq_model_fingerprint(m));
    kvq_json_out j;
    kvq_jo_begin(&j, stdout);
    kvq_jo_obj(&j, NULL);
    kvq_jo_str(&j, "path", m->path);
    kvq_jo_str(&j, "format", m->format);
    kvq_jo_str(&j, "dtype", m->dtype);
    kvq_jo_str(&j, "architecture", c->architecture);
    kvq_jo_int(&j, "n_layers", c->n_layers);
    kvq_jo_int(&j, "hidden", c->hidden);
    kvq_jo_int(&j, "n_heads", c->n_heads);
    kvq_jo_int(&j, "n_kv_heads", c->n_kv_heads);
    kvq_jo_int(&j, "head_dim", c->head_dim);
    kvq_jo_int(&j, "intermediate", c->intermediate);
    kvq_jo_int(&j, "vocab", c->vocab);
    kvq_jo_int(&j, "max_pos", c->max_pos);
    kvq_jo_num(&j, "rms_eps", c->rms_eps);
    kvq_jo_num(&j, "rope_theta", c->rope_theta);
    kvq_jo_str(&j, "rope_scaling", scaling_name(c->rope_scaling));
    kvq_jo_num(&j, "rope_scaling_factor", c->rope_scaling_factor);
    kvq_jo_bool(&j, "tied_embeddings", c->tied_embeddings);
    kvq_jo_bool(&j, "attention_bias", c->attention_bias);
    kvq_jo_int(&j, "bos_id", c->bos_id);
    kvq_jo_int(&j, "eos_id", c->eos_id);
    kvq_jo_int(&j, "n_params", (long long)kvq_model_n_params(m));
    kvq_jo_int(&j, "bytes_mapped", (long long)m->bytes_mapped);
    kvq_jo_int(&j, "bytes_owned", (long long)m->bytes_owned);
    kvq_jo_str(&j, "fingerprint", fp);
    kvq_jo_num(&j, "load_seconds", secs);
    kvq_jo_end(&j, '}');
    kvq_jo_finish(&j);
}

static void print_text(const kvq_model *m, double secs) {
    const kvq_model_config *c = &m->cfg;
    printf("model         %s\n", m->path);
    printf("format        %s (on disk: %s)\n", m->format, m->dtype);
    printf("architecture  %s\n", c->architecture);
    printf("layers        %d\n", c->n_layers);
    printf("hidden        %d\n", c->hidden);
    printf("heads         %d query, %d key/value (GQA %d:1), head_dim %d\n", c->n_heads, c->n_kv_heads,
           c->n_heads / c->n_kv_heads, c->head_dim);
    printf("intermediate  %d\n", c->intermediate);
    printf("vocab         %d (bos %d, eos %d)\n", c->vocab, c->bos_id, c->eos_id);
    printf("rope          theta %g, scaling %s", c->rope_theta, scaling_name(c->rope_scaling));
    if (c->rope_scaling) printf(" x%g", c->rope_scaling_factor);
    printf(", max positions %d\n", c->max_pos);
    printf("rms_eps       %g\n", c->rms_eps);
    printf("embeddings    %s%s\n", c->tied_embeddings ? "tied" : "untied",
           c->attention_bias ? ", q/k/v biases" : "");
    printf("parameters    %llu\n", (unsigned long long)kvq_model_n_params(m));
    printf("fp32 weights  %.1f MiB mapped in place, %.1f MiB converted\n", m->bytes_mapped / 1048576.0,
           m->bytes_owned / 1048576.0);
    printf("fingerprint   %016llx\n", (unsigned long long)kvq_model_fingerprint(m));
    printf("load time     %.2f s\n", secs);
}

int kvq_cmd_info(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return KVQ_EXIT_OK; }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else {
            fprintf(stderr, "kvq info: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return KVQ_EXIT_USAGE;
        }
    }
    if (!model) {
        fprintf(stderr, "kvq info: --model is required\n");
        usage(stderr);
        return KVQ_EXIT_USAGE;
    }
    kvq_model m;
    char why[1024];
    double t0 = kvq_now();
    kvq_status st = kvq_model_load(model, &m, why, sizeof why);
    if (st) return kvq_report("info", st, model, why);
    double secs = kvq_now() - t0;
    if (json) print_json(&m, secs);
    else print_text(&m, secs);
    kvq_model_free(&m);
    return KVQ_EXIT_OK;
}
