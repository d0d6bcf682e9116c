/* capture_h5_merge.c — merge captures of the same model and settings into one new file
 * (docs/capture-format.md "Merging"): samples in input order, data and per-sample statistics
 * copied exactly, sources concatenated. Not a resume (capture_h5.c) and not a filter: every
 * committed sample of every input is taken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture_h5_int.h"

typedef struct merge_state {
    kvq_capture_reader **in;     /* (n_inputs) */
    uint32_t *src_offset;        /* (n_inputs) first source index of each input in the output */
    kvq_cap_source *src;         /* (n_src) */
    uint32_t n_src;
    float *buf[4];               /* (max sample length, kv_dim) each */
    double *stats[4];            /* (4, kv_dim) each */
} merge_state;

static kvq_status gather_sources(merge_state *ms, size_t n_inputs, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    uint64_t total = 0;
    for (size_t i = 0; i < n_inputs; i++) total += kvq_capture_reader_meta(ms->in[i])->n_sources;
    if (total > UINT32_MAX / 2) return KVQ_ERR_OVERFLOW;
    ms->src = calloc((size_t)total, sizeof *ms->src);
    if (!ms->src) return KVQ_ERR_NOMEM;
    for (size_t i = 0; i < n_inputs && !st; i++) {
        ms->src_offset[i] = ms->n_src;
        st = kvq_cap_reader_sources(ms->in[i], ms->src + ms->n_src, why, why_len);
        ms->n_src += kvq_capture_reader_meta(ms->in[i])->n_sources;
    }
    for (uint32_t a = 0; a < ms->n_src && !st; a++)
        for (uint32_t b = a + 1; b < ms->n_src; b++)
            if (!strcmp(ms->src[a].text_sha256, ms->src[b].text_sha256) && ms->src[a].seed == ms->src[b].seed) {
                if (why) snprintf(why, why_len, "inputs repeat a text (sha256 %.12s...) with the same seed %llu: "
                                  "their windows would repeat", ms->src[a].text_sha256,
                                  (unsigned long long)ms->src[a].seed);
                return KVQ_ERR_MISMATCH;
            }
    return st;
}

static kvq_status alloc_buffers(merge_state *ms, size_t n_inputs, uint32_t kv) {
    uint64_t max_len = 1;
    for (size_t i = 0; i < n_inputs; i++) {
        const kvq_capture_sample *s = kvq_capture_samples(ms->in[i]);
        for (uint32_t j = 0; j < kvq_capture_n_samples(ms->in[i]); j++)
            if (s[j].length > max_len) max_len = s[j].length;
    }
    if (max_len > SIZE_MAX / sizeof(float) / kv) return KVQ_ERR_OVERFLOW;
    for (int t = 0; t < 4; t++) {
        ms->buf[t] = malloc((size_t)max_len * kv * sizeof(float));
        ms->stats[t] = malloc(4 * (size_t)kv * sizeof(double));
        if (!ms->buf[t] || !ms->stats[t]) return KVQ_ERR_NOMEM;
    }
    return KVQ_OK;
}

/* Copy sample j of input i. */
static kvq_status copy_sample(merge_state *ms, size_t i, uint32_t j, kvq_capture_writer *w,
                              char *why, size_t why_len) {
    const kvq_capture_reader *r = ms->in[i];
    const kvq_capture_meta *m = kvq_capture_reader_meta(r);
    const kvq_capture_sample *s = &kvq_capture_samples(r)[j];
    int nt = m->fisher ? 4 : 2;
    kvq_status st = kvq_cap_begin_ex(w, s->window_start, (size_t)s->length, ms->src_offset[i] + s->source,
                                     why, why_len);
    for (uint32_t slot = 0; slot < m->n_captured && !st; slot++) {
        const float *t4[4] = {NULL, NULL, NULL, NULL};
        const double *s4[4] = {NULL, NULL, NULL, NULL};
        for (int t = 0; t < nt && !st; t++) {
            st = kvq_capture_read_rows(r, m->layers[slot], (kvq_capture_tensor)t, s->row_start, s->length,
                                       ms->buf[t], why, why_len);
            if (!st) st = kvq_cap_read_sample_stats(r, m->layers[slot], (kvq_capture_tensor)t, j,
                                                    ms->stats[t], why, why_len);
            t4[t] = ms->buf[t];
            s4[t] = ms->stats[t];
        }
        if (!st) st = kvq_cap_put_layer_ex(w, slot, t4, s4, why, why_len);
    }
    return st ? st : kvq_capture_commit(w, why, why_len);
}

static kvq_status merge_into(merge_state *ms, const char *const *inputs, size_t n_inputs, const char *tmp,
                             char *why, size_t why_len) {
    kvq_status st;
    kvq_capture_writer *w = NULL;
    for (size_t i = 0; i < n_inputs; i++) {
        char sub[512] = "";
        if ((st = kvq_capture_open(inputs[i], &ms->in[i], sub, sizeof sub))) {
            if (why) snprintf(why, why_len, "%s: %s", inputs[i], sub);
            return st;
        }
        if (i && (st = kvq_capture_meta_compare(kvq_capture_reader_meta(ms->in[0]),
                                                kvq_capture_reader_meta(ms->in[i]), 0, sub, sizeof sub))) {
            if (why) snprintf(why, why_len, "%s differs from %s: %s", inputs[i], inputs[0], sub);
            return st;
        }
    }
    if ((st = gather_sources(ms, n_inputs, why, why_len))) return st;
    kvq_capture_meta m = *kvq_capture_reader_meta(ms->in[0]);
    if ((st = alloc_buffers(ms, n_inputs, kvq_capture_kv_dim(ms->in[0])))) return st;
    m.n_sources = ms->n_src;
    m.samples_requested = 0;
    for (size_t i = 0; i < n_inputs; i++) m.samples_requested += kvq_capture_reader_meta(ms->in[i])->samples_requested;
    if ((st = kvq_cap_create_ex(tmp, &m, ms->src, ms->n_src, &w, why, why_len))) return st;
    for (size_t i = 0; i < n_inputs && !st; i++)
        for (uint32_t j = 0; j < kvq_capture_n_samples(ms->in[i]) && !st; j++)
            st = copy_sample(ms, i, j, w, why, why_len);
    kvq_status cst = kvq_capture_close(w, st ? NULL : why, why_len);
    return st ? st : cst;
}

kvq_status kvq_capture_merge(const char *const *inputs, size_t n_inputs, const char *out_path,
                             char *why, size_t why_len) {
    merge_state ms;
    struct stat sb;
    char tmp[4200];
    memset(&ms, 0, sizeof ms);
    if (n_inputs < 2) {
        if (why) snprintf(why, why_len, "merge needs at least two inputs");
        return KVQ_ERR_ARG;
    }
    if (stat(out_path, &sb) == 0) {
        if (why) snprintf(why, why_len, "%s exists (remove it first)", out_path);
        return KVQ_ERR_IO;
    }
    ms.in = calloc(n_inputs, sizeof *ms.in);
    ms.src_offset = calloc(n_inputs, sizeof *ms.src_offset);
    kvq_status st = ms.in && ms.src_offset ? KVQ_OK : KVQ_ERR_NOMEM;
    snprintf(tmp, sizeof tmp, "%s.merge-%ld", out_path, (long)getpid());
    if (!st) st = merge_into(&ms, inputs, n_inputs, tmp, why, why_len);
    if (!st && rename(tmp, out_path) != 0) {
        if (why) snprintf(why, why_len, "rename %s to %s failed", tmp, out_path);
        st = KVQ_ERR_IO;
    }
    if (st) unlink(tmp);
    else kvq_cap_sync_dir(out_path);
    for (size_t i = 0; ms.in && i < n_inputs; i++) kvq_capture_reader_free(ms.in[i]);
    for (int t = 0; t < 4; t++) { free(ms.buf[t]); free(ms.stats[t]); }
    free(ms.in); free(ms.src_offset); free(ms.src);
    return st;
}
