/* bench_eval.c — throughput of `kvq eval`'s forward passes with and without simulated KV-cache
 * quantization (codebook/eval.c), side by side with the unquantized pass as the baseline ratio.
 * Simulations: fp16, int4 per token, KIVI-2, and a KVQuant-shaped 3-bit codebook (uniform levels,
 * per-channel key thresholds from calibration windows, 1 % outliers with the runtime's cap, one
 * sink token) — the quantizer's full path. Model and text come from ../shared (or $KVQ_SHARED);
 * argv[1] = model path, argv[2] = text, argv[3] = windows, argv[4] = seq_len override them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "capture.h"
#include "eval.h"
#include "tokenizer.h"

static const char *shared_path(const char *rel, char *buf, size_t n) {
    const char *root = getenv("KVQ_SHARED");
    snprintf(buf, n, "%s/%s", root ? root : "../shared", rel);
    return buf;
}

/* A KVQuant-shaped codebook: uniform 3-bit levels, per-channel key thresholds = calibration
 * min/max (p handled by the outlier rule at run time), values per token, 1 % outliers. */
static kvq_status synthetic_codebook(const kvq_model *m, const kvq_key_range *r, kvq_codebook *cb) {
    uint32_t d = (uint32_t)(m->cfg.n_kv_heads * m->cfg.head_dim);
    kvq_status st = kvq_codebook_alloc(cb, (uint32_t)m->cfg.n_layers, d, 3, 3, 0);
    if (st != KVQ_OK) return st;
    kvq_model_identity_of(m, &cb->model);
    cb->n_sink = 1;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        kvq_layer_codebook *lc = &cb->layers[l];
        kvq_uniform_lut(3, lc->k.centroids);
        kvq_uniform_lut(3, lc->v.centroids);
        for (uint32_t c = 0; c < d; c++) {
            float lo = r->pre_min[(size_t)l * d + c] * 0.8f, hi = r->pre_max[(size_t)l * d + c] * 0.8f;
            lc->k.zero_point[c] = 0.5f * (hi + lo);
            lc->k.half_range[c] = hi > lo ? 0.5f * (hi - lo) : 1.0f;
        }
        lc->k.outlier_fraction = lc->v.outlier_fraction = 0.01f;
        lc->k.outlier_cap = lc->v.outlier_cap = (d + 199) / 200;   /* ceil(0.005 * d) */
    }
    return KVQ_OK;
}

int main(int argc, char **argv) {
    char mbuf[1024], tbuf[1024], why[512] = "";
    const char *model_path = argc > 1 ? argv[1] : shared_path("models/stories260K/stories260K.bin", mbuf, sizeof mbuf);
    const char *text_path = argc > 2 ? argv[2] : shared_path("data/text/tinystories_val_subset.txt", tbuf, sizeof tbuf);
    size_t windows = argc > 3 ? (size_t)atol(argv[3]) : 8;
    int seq_len = argc > 4 ? atoi(argv[4]) : 256;
    kvq_model m;
    memset(&m, 0, sizeof m);
    kvq_tokenizer *tok = NULL;
    kvq_status st = kvq_model_load(model_path, &m, why, sizeof why);
    if (st != KVQ_OK) { printf("bench_eval: skipped (%s: %s)\n", model_path, why); return 0; }
    int32_t *ids = NULL;
    size_t n = 0;
    st = kvq_tokenizer_load_for_model(model_path, &tok, why, sizeof why);
    if (st == KVQ_OK) st = kvq_eval_tokenize_file(tok, text_path, &ids, &n, why, sizeof why);
    kvq_key_range range;
    memset(&range, 0, sizeof range);
    uint64_t starts[4];
    if (st == KVQ_OK) st = kvq_capture_windows(n, (uint32_t)seq_len, 4, 0, starts);
    if (st == KVQ_OK) st = kvq_key_range_init(&range, m.cfg.n_layers, (uint32_t)(m.cfg.n_kv_heads * m.cfg.head_dim));
    if (st == KVQ_OK) st = kvq_eval_key_range(&m, ids, n, starts, 4, seq_len, &range, why, sizeof why);
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    if (st == KVQ_OK) st = synthetic_codebook(&m, &range, &cb);
    kvq_kv_sim sims[4];
    memset(sims, 0, sizeof sims);
    const struct { kvq_method m; uint32_t bits; } cfg[4] = {
        {KVQ_METHOD_FP16, 16}, {KVQ_METHOD_INT, 4}, {KVQ_METHOD_KIVI, 2}, {KVQ_METHOD_KVQUANT, 3}};
    for (int i = 0; i < 4 && st == KVQ_OK; i++)
        st = kvq_eval_sim_init(&sims[i], cfg[i].m, cfg[i].bits, &m, &cb, NULL, why, sizeof why);
    kvq_eval_result res[4];
    kvq_eval_opts o = {.seq_len = seq_len, .batch = 4, .max_windows = windows};
    if (st == KVQ_OK) st = kvq_eval_run(&m, ids, n, &o, sims, 4, res, why, sizeof why);
    if (st == KVQ_OK) {
        printf("bench_eval: %s, %zu windows x %d tokens (forward passes only; metrics excluded)\n", model_path,
               res[0].n_windows, seq_len);
        printf("%-22s %12s %8s\n", "configuration", "tokens/s", "ratio");
        printf("%-22s %12.1f %8.3f\n", "unquantized (baseline)", res[0].ref_tokens_per_s, 1.0);
        for (int i = 0; i < 4; i++) {
            char label[96];
            snprintf(label, sizeof label, "%s%.40s-%u", i == 3 ? "synthetic " : "", res[i].name, res[i].bits);
            printf("%-22s %12.1f %8.3f\n", label, res[i].tokens_per_s, res[i].tokens_per_s / res[0].ref_tokens_per_s);
        }
    } else {
        printf("bench_eval: failed: %s: %s\n", kvq_status_message(st), why);
    }
    for (int i = 0; i < 4; i++) kvq_kv_sim_free(&sims[i]);
    kvq_codebook_free(&cb);
    kvq_key_range_free(&range);
    free(ids);
    kvq_tokenizer_free(tok);
    kvq_model_free(&m);
    return st == KVQ_OK ? 0 : 1;
}
