/* capture.c — the calibration capture loop (capture.h): text -> tokens -> seeded windows -> engine
 * forward/backward one window at a time -> capture file. Not the file format (capture_h5*.c). */
#include "capture.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine.h"
#include "engine_backend.h"
#include "kvq_model.h"
#include "rng.h"
#include "sha256.h"
#include "tokenizer.h"

#ifndef KVQ_GIT_REVISION
#define KVQ_GIT_REVISION ""
#endif

void kvq_capture_opts_init(kvq_capture_opts *o) {
    memset(o, 0, sizeof *o);
    o->samples = 16;
    o->seq_len = 2048;
    o->fisher = 1;
    o->dtype = KVQ_CAPTURE_F32;
}

kvq_status kvq_capture_windows(uint64_t n_tokens, uint32_t seq_len, uint32_t samples, uint64_t seed,
                               uint64_t *starts) {
    if (!seq_len || n_tokens < seq_len) return KVQ_ERR_DATA;
    kvq_rng r;
    kvq_rng_seed(&r, seed);
    for (uint32_t i = 0; i < samples; i++) starts[i] = kvq_rng_below(&r, n_tokens - seq_len + 1);
    return KVQ_OK;
}

size_t kvq_capture_working_bytes(const kvq_model_config *cfg, uint32_t seq_len, int fisher,
                                 kvq_capture_dtype dtype) {
    kvq_engine_opts eo = {1, (int)seq_len, fisher};
    size_t eng = kvq_engine_activation_bytes(cfg, &eo);
    size_t win = (size_t)seq_len * (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim;
    size_t extra = (fisher ? 2 * 4 : 0) * win + (dtype != KVQ_CAPTURE_F32 ? 2 : 0) * win;
    return eng && eng <= SIZE_MAX - extra ? eng + extra : 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static kvq_status read_text(const char *path, char **text, size_t *len, char *why, size_t why_len) {
    FILE *f = fopen(path, "rb");
    struct stat sb;
    *text = NULL;
    if (!f || fstat(fileno(f), &sb) != 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        if (f) fclose(f);
        return KVQ_ERR_IO;
    }
    size_t n = (size_t)sb.st_size;
    *text = malloc(n + 1);
    size_t got = *text ? fread(*text, 1, n, f) : 0;
    fclose(f);
    if (!*text) return KVQ_ERR_NOMEM;
    if (got != n) {
        snprintf(why, why_len, "%s: short read (%zu of %zu bytes)", path, got, n);
        free(*text);
        *text = NULL;
        return KVQ_ERR_IO;
    }
    (*text)[n] = 0;
    *len = n;
    return KVQ_OK;
}

/* Everything a run holds; released by run_free. */
typedef struct run {
    kvq_model model;
    kvq_tokenizer *tok;
    int32_t *ids;               /* (n_ids) the tokenized text */
    size_t n_ids;
    uint64_t *starts;           /* (samples) */
    const kvq_engine_backend *be;
    void *eng;                  /* be's engine */
    kvq_capture_writer *w;
    float *fk, *fv;             /* (seq_len, kv_dim) squared gradients */
    kvq_capture_meta meta;
} run;

static void run_free(run *r) {
    kvq_capture_close(r->w, NULL, 0);
    if (r->be) r->be->free(r->eng);
    kvq_tokenizer_free(r->tok);
    kvq_model_free(&r->model);
    free(r->ids); free(r->starts); free(r->fk); free(r->fv);
}

/* Model, tokenizer, text, windows and the file's metadata. */
static kvq_status prepare(run *r, const kvq_capture_opts *o, kvq_capture_result *res, char *why, size_t why_len) {
    kvq_status st;
    char *text = NULL;
    size_t len = 0;
    if ((st = kvq_model_load(o->model_path, &r->model, why, why_len))) return st;
    st = o->tokenizer_path ? kvq_tokenizer_load(o->tokenizer_path, &r->tok, why, why_len)
                           : kvq_tokenizer_load_for_model(o->model_path, &r->tok, why, why_len);
    if (st) return st;
    if ((st = kvq_sha256_file(o->text_path, res->text_sha256, why, why_len))) return st;
    if ((st = read_text(o->text_path, &text, &len, why, why_len))) return st;
    st = kvq_tokenize(r->tok, text, len, kvq_tokenizer_adds_bos(r->tok), &r->ids, &r->n_ids, why, why_len);
    free(text);
    if (st) return st;
    res->text_tokens = r->n_ids;
    r->starts = malloc((o->samples ? o->samples : 1) * sizeof *r->starts);
    if (!r->starts) return KVQ_ERR_NOMEM;
    if (kvq_capture_windows(r->n_ids, o->seq_len, o->samples, o->seed, r->starts)) {
        snprintf(why, why_len, "%s has %zu tokens, fewer than one window of %u", o->text_path, r->n_ids, o->seq_len);
        return KVQ_ERR_DATA;
    }
    kvq_model_identity id;
    kvq_model_identity_of(&r->model, &id);
    kvq_capture_meta *m = &r->meta;
    kvq_capture_meta_init(m, &id);
    snprintf(m->git_revision, sizeof m->git_revision, "%s", KVQ_GIT_REVISION);
    snprintf(m->model_path, sizeof m->model_path, "%s", o->model_path);
    snprintf(m->tokenizer, sizeof m->tokenizer, "%s", o->tokenizer_path ? o->tokenizer_path : o->model_path);
    snprintf(m->text_path, sizeof m->text_path, "%s", o->text_path);
    memcpy(m->text_sha256, res->text_sha256, sizeof m->text_sha256);
    m->text_tokens = r->n_ids;
    m->samples_requested = o->samples;
    m->seq_len = o->seq_len;
    m->seed = o->seed;
    m->dtype = o->dtype;
    m->fisher = o->fisher ? 1 : 0;
    m->compress = o->compress;
    if (o->n_layers) {
        m->n_captured = o->n_layers;
        memcpy(m->layers, o->layers, o->n_layers * sizeof o->layers[0]);
    }
    return KVQ_OK;
}

/* Open the output: create, or continue it with resume (also checking the committed windows). */
static kvq_status open_output(run *r, const kvq_capture_opts *o, uint32_t *done, char *why, size_t why_len) {
    struct stat sb;
    *done = 0;
    if (!(o->resume && stat(o->out_path, &sb) == 0)) return kvq_capture_create(o->out_path, &r->meta, &r->w, why, why_len);
    kvq_status st = kvq_capture_resume(o->out_path, &r->meta, &r->w, done, why, why_len);
    if (st) return st;
    if (*done > o->samples) {
        snprintf(why, why_len, "%s holds %u samples, more than --samples %u", o->out_path, *done, o->samples);
        return KVQ_ERR_MISMATCH;
    }
    /* the committed windows must be the ones this seed draws */
    kvq_capture_reader *rd = NULL;
    if ((st = kvq_capture_open(o->out_path, &rd, why, why_len))) return st;
    for (uint32_t i = 0; i < *done && !st; i++)
        if (kvq_capture_samples(rd)[i].window_start != r->starts[i]) {
            snprintf(why, why_len, "%s sample %u starts at token %llu, this run draws %llu", o->out_path, i,
                     (unsigned long long)kvq_capture_samples(rd)[i].window_start, (unsigned long long)r->starts[i]);
            st = KVQ_ERR_MISMATCH;
        }
    kvq_capture_reader_free(rd);
    return st;
}

static void square(float *out, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = g[i] * g[i];
}

/* One window: forward (+ backward), then every captured layer into the file, then commit. */
static kvq_status one_sample(run *r, uint32_t s, double *loss, char *why, size_t why_len) {
    const kvq_capture_meta *m = &r->meta;
    size_t n = (size_t)m->seq_len * m->model.n_kv_heads * m->model.head_dim;
    kvq_status st = r->be->run(r->eng, r->ids + r->starts[s], m->fisher, loss, why, why_len);
    if (!st && !isfinite(*loss)) {
        snprintf(why, why_len, "loss of sample %u (window start %llu) is %g", s, (unsigned long long)r->starts[s], *loss);
        return KVQ_ERR_NONFINITE;
    }
    if (!st) st = kvq_capture_begin(r->w, r->starts[s], m->seq_len, why, why_len);
    for (uint32_t slot = 0; slot < m->n_captured && !st; slot++) {
        int layer = (int)m->layers[slot];
        const float *fk = NULL, *fv = NULL;
        if (m->fisher && r->be->grads_squared) {
            fk = r->be->k_grad(r->eng, layer);
            fv = r->be->v_grad(r->eng, layer);
        } else if (m->fisher) {
            square(r->fk, r->be->k_grad(r->eng, layer), n);
            square(r->fv, r->be->v_grad(r->eng, layer), n);
            fk = r->fk;
            fv = r->fv;
        }
        st = kvq_capture_put_layer(r->w, slot, r->be->k_pre_rope(r->eng, layer), r->be->v(r->eng, layer), fk, fv,
                                   why, why_len);
    }
    return st ? st : kvq_capture_commit(r->w, why, why_len);
}

kvq_status kvq_capture_run(const kvq_capture_opts *o, kvq_capture_result *res, char *why, size_t why_len) {
    run r;
    uint32_t done = 0;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    res->mean_loss = NAN;
    if (!o->model_path || !o->text_path || !o->out_path || !o->samples || o->seq_len < 2) {
        snprintf(why, why_len, "model, text and output are required; samples >= 1, seq_len >= 2");
        return KVQ_ERR_ARG;
    }
    kvq_status st = kvq_engine_backend_get(o->device, &r.be, why, why_len);
    if (st) return st;
    st = prepare(&r, o, res, why, why_len);
    if (!st) st = open_output(&r, o, &done, why, why_len);
    if (!st) {
        kvq_engine_opts eo = {1, (int)o->seq_len, r.meta.fisher};
        if (o->threads > 0) kvq_engine_set_threads(o->threads);
        if (!strcmp(r.be->name, "cpu")) res->engine_bytes = kvq_engine_activation_bytes(&r.model.cfg, &eo);
        st = r.be->init(&r.eng, &r.model, (int)o->seq_len, r.meta.fisher, why, why_len);
    }
    size_t n = (size_t)o->seq_len * r.meta.model.n_kv_heads * r.meta.model.head_dim;
    if (!st && r.meta.fisher && !r.be->grads_squared) {
        r.fk = malloc(n * sizeof *r.fk);
        r.fv = malloc(n * sizeof *r.fv);
        if (!r.fk || !r.fv) st = KVQ_ERR_NOMEM;
    }
    res->samples_resumed = done;
    double t0 = now_s(), loss_sum = 0;
    if (!st && o->progress) o->progress(o->progress_user, done, o->samples, NAN, 0);
    for (uint32_t s = done; s < o->samples && !st; s++) {
        double loss = 0;
        st = one_sample(&r, s, &loss, why, why_len);
        if (st) break;
        loss_sum += loss;
        if (o->progress) o->progress(o->progress_user, s + 1, o->samples, loss, now_s() - t0);
    }
    res->samples_total = kvq_capture_writer_samples(r.w);
    res->seconds = now_s() - t0;
    uint32_t fresh = res->samples_total > done ? res->samples_total - done : 0;
    if (fresh) res->mean_loss = loss_sum / fresh;
    res->tokens_per_s = res->seconds > 0 ? (double)fresh * o->seq_len / res->seconds : 0;
    kvq_status cst = kvq_capture_close(r.w, st ? NULL : why, why_len);
    r.w = NULL;
    if (!st) st = cst;
    run_free(&r);
    return st;
}
