/* capture_h5_meta.c — the capture file's metadata: defaults and comparison of kvq_capture_meta,
 * the root and /provenance attributes (write and read), storage element types, and HDF5 error
 * reporting shared by the writer and reader. Not the data path (capture_h5.c, capture_h5_read.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_h5_int.h"

static const char FORMAT_NAME[] = "kvq-capture";

/* ---- errors ------------------------------------------------------------------------------- */

void kvq_cap_quiet_begin(kvq_cap_quiet *q) {
    if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) { q->func = NULL; q->data = NULL; }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void kvq_cap_quiet_end(const kvq_cap_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

typedef struct err_walk {
    char last[256];
    int checksum, os_error;
} err_walk;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    err_walk *w = data;
    if (e->desc) {
        snprintf(w->last, sizeof w->last, "%s", e->desc);
        if (strstr(e->desc, "checksum")) w->checksum = 1;
        if (strstr(e->desc, "errno")) w->os_error = 1;
    }
    return 0;
}

kvq_status kvq_cap_h5err(char *why, size_t why_len, const char *what) {
    err_walk w = {{0}, 0, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    for (char *c = w.last; *c; c++)   /* one line: HDF5's messages may contain newlines */
        if (*c == '\n' || *c == '\r') *c = ' ';
    if (why && why_len) snprintf(why, why_len, "%s failed%s%s", what, w.last[0] ? ": " : "", w.last);
    return w.checksum ? KVQ_ERR_CHECKSUM : w.os_error ? KVQ_ERR_IO : KVQ_ERR_HDF5;
}

/* ---- defaults, names, comparison ------------------------------------------------------------ */

void kvq_capture_meta_init(kvq_capture_meta *m, const kvq_model_identity *model) {
    memset(m, 0, sizeof *m);
    snprintf(m->tool_version, sizeof m->tool_version, "%s", KVQ_VERSION);
    if (model) m->model = *model;
    m->samples_requested = 16;
    m->seq_len = 2048;
    snprintf(m->window_sampling, sizeof m->window_sampling, "uniform-start-xoshiro256ss-v1");
    m->dtype = KVQ_CAPTURE_F32;
    m->fisher = 1;
    m->n_captured = m->model.n_layers < KVQ_CAPTURE_MAX_LAYERS ? m->model.n_layers : KVQ_CAPTURE_MAX_LAYERS;
    for (uint32_t i = 0; i < m->n_captured; i++) m->layers[i] = i;
    m->n_sources = 1;
}

const char *kvq_capture_dtype_name(kvq_capture_dtype d) {
    switch (d) {
    case KVQ_CAPTURE_F32: return "float32";
    case KVQ_CAPTURE_F16: return "float16";
    case KVQ_CAPTURE_BF16: return "bfloat16";
    }
    return "?";
}

const char *kvq_capture_tensor_name(kvq_capture_tensor t) {
    static const char *names[KVQ_CAPTURE_N_TENSORS] = {"k_pre_rope", "v", "fisher_k", "fisher_v"};
    return (unsigned)t < KVQ_CAPTURE_N_TENSORS ? names[t] : "?";
}

#define DIFF(cond, ...)                                          \
    do {                                                         \
        if (cond) {                                              \
            if (why && why_len) snprintf(why, why_len, __VA_ARGS__); \
            return KVQ_ERR_MISMATCH;                             \
        }                                                        \
    } while (0)

static kvq_status compare_model(const kvq_model_identity *a, const kvq_model_identity *b,
                                char *why, size_t why_len) {
    DIFF(a->fingerprint != b->fingerprint, "model fingerprint %016llx vs %016llx",
         (unsigned long long)a->fingerprint, (unsigned long long)b->fingerprint);
    DIFF(strcmp(a->architecture, b->architecture), "architecture %s vs %s", a->architecture, b->architecture);
    DIFF(a->n_layers != b->n_layers || a->n_heads != b->n_heads || a->n_kv_heads != b->n_kv_heads ||
             a->head_dim != b->head_dim || a->hidden != b->hidden || a->vocab != b->vocab,
         "model shape (layers/heads/kv_heads/head_dim/hidden/vocab) %u/%u/%u/%u/%u/%u vs %u/%u/%u/%u/%u/%u",
         a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim, a->hidden, a->vocab, b->n_layers,
         b->n_heads, b->n_kv_heads, b->head_dim, b->hidden, b->vocab);
    DIFF(a->rope_theta != b->rope_theta || a->rope_scaling != b->rope_scaling ||
             a->rope_scaling_factor != b->rope_scaling_factor ||
             a->rope_low_freq_factor != b->rope_low_freq_factor ||
             a->rope_high_freq_factor != b->rope_high_freq_factor ||
             a->rope_original_max_pos != b->rope_original_max_pos ||
             a->rope_convention != b->rope_convention,
         "RoPE parameters (theta %g vs %g)", (double)a->rope_theta, (double)b->rope_theta);
    return KVQ_OK;
}

kvq_status kvq_capture_meta_compare(const kvq_capture_meta *a, const kvq_capture_meta *b,
                                    int check_inputs, char *why, size_t why_len) {
    kvq_status st = compare_model(&a->model, &b->model, why, why_len);
    if (st) return st;
    DIFF(a->seq_len != b->seq_len, "seq_len %u vs %u", a->seq_len, b->seq_len);
    DIFF(a->dtype != b->dtype, "dtype %s vs %s", kvq_capture_dtype_name(a->dtype), kvq_capture_dtype_name(b->dtype));
    DIFF(a->fisher != b->fisher, "fisher %d vs %d", a->fisher, b->fisher);
    DIFF(a->compress != b->compress, "compress %d vs %d", a->compress, b->compress);
    DIFF(a->n_captured != b->n_captured ||
             memcmp(a->layers, b->layers, a->n_captured * sizeof a->layers[0]),
         "captured layers differ (%u vs %u layers)", a->n_captured, b->n_captured);
    if (!check_inputs) return KVQ_OK;
    DIFF(strcmp(a->text_sha256, b->text_sha256), "text SHA-256 %.12s... vs %.12s...", a->text_sha256, b->text_sha256);
    DIFF(a->text_tokens != b->text_tokens, "text tokens %llu vs %llu (another tokenizer?)",
         (unsigned long long)a->text_tokens, (unsigned long long)b->text_tokens);
    DIFF(a->seed != b->seed, "seed %llu vs %llu", (unsigned long long)a->seed, (unsigned long long)b->seed);
    DIFF(strcmp(a->window_sampling, b->window_sampling), "window sampling %s vs %s", a->window_sampling, b->window_sampling);
    DIFF(a->samples_requested != b->samples_requested, "samples %u vs %u", a->samples_requested, b->samples_requested);
    return KVQ_OK;
}

void kvq_capture_stats_free(kvq_capture_stats *s) {
    if (!s) return;
    free(s->sum); free(s->sumsq); free(s->min); free(s->max);
    s->sum = s->sumsq = s->min = s->max = NULL;
    s->count = 0;
}

/* ---- types and names ---------------------------------------------------------------------- */

kvq_capture_dtype kvq_capture_tensor_dtype(kvq_capture_dtype d, kvq_capture_tensor t) {
    return d == KVQ_CAPTURE_F16 && (t == KVQ_CAPTURE_FISHER_K || t == KVQ_CAPTURE_FISHER_V) ? KVQ_CAPTURE_BF16 : d;
}

hid_t kvq_cap_file_type(kvq_capture_dtype d) {
    if (d == KVQ_CAPTURE_F32) return H5Tcopy(H5T_IEEE_F32LE);
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    /* sign bit, exponent position and width, mantissa position and width, in a 16-bit word */
    int ok = d == KVQ_CAPTURE_F16 ? H5Tset_fields(t, 15, 10, 5, 0, 10) >= 0
                                  : H5Tset_fields(t, 15, 7, 8, 0, 7) >= 0;
    ok = ok && H5Tset_precision(t, 16) >= 0 && H5Tset_size(t, 2) >= 0 &&
         H5Tset_ebias(t, d == KVQ_CAPTURE_F16 ? 15 : 127) >= 0;
    if (!ok) { H5Tclose(t); return -1; }
    return t;
}

size_t kvq_cap_elem_size(kvq_capture_dtype d) { return d == KVQ_CAPTURE_F32 ? 4 : 2; }

void kvq_cap_layer_path(char *buf, size_t len, uint32_t layer, uint32_t n_layers) {
    snprintf(buf, len, n_layers > 1000 ? "/layers/%04u" : "/layers/%03u", layer);
}

hsize_t kvq_cap_chunk_rows(const kvq_capture_meta *m) {
    /* the largest divisor of seq_len within 1 MiB: chunks never straddle samples, so a committed
     * chunk is never rewritten (docs/capture-format.md, commit rule) */
    size_t row_bytes = (size_t)m->model.n_kv_heads * m->model.head_dim * kvq_cap_elem_size(m->dtype);
    hsize_t cap = row_bytes ? (hsize_t)((1u << 20) / row_bytes) : 1, c = m->seq_len;
    if (cap < 1) cap = 1;
    while (c > cap || m->seq_len % c) c--;
    return c;
}

void kvq_cap_source_of(const kvq_capture_meta *m, kvq_cap_source *s) {
    memset(s, 0, sizeof *s);
    memcpy(s->tool_version, m->tool_version, sizeof s->tool_version);
    memcpy(s->git_revision, m->git_revision, sizeof s->git_revision);
    memcpy(s->model_path, m->model_path, sizeof s->model_path);
    memcpy(s->tokenizer, m->tokenizer, sizeof s->tokenizer);
    memcpy(s->text_path, m->text_path, sizeof s->text_path);
    memcpy(s->text_sha256, m->text_sha256, sizeof s->text_sha256);
    s->text_tokens = m->text_tokens;
    s->seed = m->seed;
    s->samples_requested = m->samples_requested;
}

/* ---- attribute helpers ---------------------------------------------------------------------- */

static herr_t attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hsize_t n, const void *v) {
    hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0 && H5Aclose(a) < 0) r = -1;
    H5Sclose(sp);
    return r;
}

herr_t kvq_cap_attr_str(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    herr_t r = H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0
                   ? -1 : attr_write(loc, name, t, t, 0, &v);
    H5Tclose(t);
    return r;
}
static herr_t attr_u32(hid_t loc, const char *name, uint32_t v) {
    return attr_write(loc, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, 0, &v);
}
static herr_t attr_i32(hid_t loc, const char *name, int32_t v) {
    return attr_write(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &v);
}
static herr_t attr_u64(hid_t loc, const char *name, uint64_t v) {
    return attr_write(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, &v);
}
static herr_t attr_f32(hid_t loc, const char *name, float v) {
    return attr_write(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, &v);
}

static const char *scaling_name(kvq_rope_scaling s) {
    return s == KVQ_ROPE_SCALING_LINEAR ? "linear" : s == KVQ_ROPE_SCALING_LLAMA3 ? "llama3" : "none";
}

static herr_t write_source(hid_t g, const kvq_cap_source *s) {
    return kvq_cap_attr_str(g, "tool_version", s->tool_version) < 0 ||
                   kvq_cap_attr_str(g, "git_revision", s->git_revision) < 0 ||
                   kvq_cap_attr_str(g, "model_path", s->model_path) < 0 ||
                   kvq_cap_attr_str(g, "tokenizer", s->tokenizer) < 0 ||
                   kvq_cap_attr_str(g, "text_path", s->text_path) < 0 ||
                   kvq_cap_attr_str(g, "text_sha256", s->text_sha256) < 0 ||
                   attr_u64(g, "text_tokens", s->text_tokens) < 0 ||
                   attr_u32(g, "samples_requested", s->samples_requested) < 0 ||
                   attr_u64(g, "seed", s->seed) < 0
               ? -1 : 0;
}

static herr_t write_provenance(hid_t g, const kvq_capture_meta *m) {
    const kvq_model_identity *id = &m->model;
    hsize_t nl = m->n_captured;
    return kvq_cap_attr_str(g, "tool_version", m->tool_version) < 0 ||
                   kvq_cap_attr_str(g, "git_revision", m->git_revision) < 0 ||
                   kvq_cap_attr_str(g, "model_path", m->model_path) < 0 ||
                   attr_u64(g, "model_fingerprint", id->fingerprint) < 0 ||
                   kvq_cap_attr_str(g, "architecture", id->architecture) < 0 ||
                   attr_u32(g, "n_layers", id->n_layers) < 0 || attr_u32(g, "n_heads", id->n_heads) < 0 ||
                   attr_u32(g, "n_kv_heads", id->n_kv_heads) < 0 ||
                   attr_u32(g, "head_dim", id->head_dim) < 0 || attr_u32(g, "hidden", id->hidden) < 0 ||
                   attr_u32(g, "vocab", id->vocab) < 0 || attr_f32(g, "rope_theta", id->rope_theta) < 0 ||
                   kvq_cap_attr_str(g, "rope_scaling", scaling_name(id->rope_scaling)) < 0 ||
                   attr_f32(g, "rope_scaling_factor", id->rope_scaling_factor) < 0 ||
                   attr_f32(g, "rope_low_freq_factor", id->rope_low_freq_factor) < 0 ||
                   attr_f32(g, "rope_high_freq_factor", id->rope_high_freq_factor) < 0 ||
                   attr_u32(g, "rope_original_max_pos", id->rope_original_max_pos) < 0 ||
                   kvq_cap_attr_str(g, "rope_convention",
                                    id->rope_convention == KVQ_ROPE_INTERLEAVED ? "interleaved" : "rotate_half") < 0 ||
                   kvq_cap_attr_str(g, "tokenizer", m->tokenizer) < 0 ||
                   kvq_cap_attr_str(g, "text_path", m->text_path) < 0 ||
                   kvq_cap_attr_str(g, "text_sha256", m->text_sha256) < 0 ||
                   attr_u64(g, "text_tokens", m->text_tokens) < 0 ||
                   attr_u32(g, "samples_requested", m->samples_requested) < 0 ||
                   attr_u32(g, "seq_len", m->seq_len) < 0 || attr_u64(g, "seed", m->seed) < 0 ||
                   kvq_cap_attr_str(g, "window_sampling", m->window_sampling) < 0 ||
                   kvq_cap_attr_str(g, "dtype", kvq_capture_dtype_name(m->dtype)) < 0 ||
                   attr_i32(g, "fisher", m->fisher) < 0 || attr_i32(g, "compress", m->compress) < 0 ||
                   attr_write(g, "layers", H5T_STD_U32LE, H5T_NATIVE_UINT32, nl ? nl : 1, m->layers) < 0 ||
                   attr_u32(g, "n_sources", m->n_sources) < 0
               ? -1 : 0;
}

kvq_status kvq_cap_write_meta(hid_t file, const kvq_capture_meta *m, const kvq_cap_source *src,
                              uint32_t n_src, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t prov = -1, srcs = -1, g = -1;
    int32_t version = KVQ_CAPTURE_FORMAT_VERSION;
    KVQ_H5(kvq_cap_attr_str(file, "format", FORMAT_NAME));
    KVQ_H5(attr_write(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &version));
    KVQ_H5(kvq_cap_attr_str(file, "kvq_version", KVQ_VERSION));
    KVQ_H5(prov = kvq_cap_group(file, "/provenance"));
    KVQ_H5(write_provenance(prov, m));
    KVQ_H5(srcs = kvq_cap_group(prov, "sources"));
    for (uint32_t i = 0; i < n_src; i++) {
        char name[16];
        snprintf(name, sizeof name, "%03u", i);
        KVQ_H5(g = kvq_cap_group(srcs, name));
        KVQ_H5(write_source(g, &src[i]));
        KVQ_H5(H5Gclose(g));
        g = -1;
    }
done:
    if (g >= 0) H5Gclose(g);
    if (srcs >= 0) H5Gclose(srcs);
    if (prov >= 0) H5Gclose(prov);
    return st;
}

/* ---- reading attributes --------------------------------------------------------------------- */

static herr_t attr_read(hid_t loc, const char *name, hid_t mtype, hsize_t want, void *v) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    herr_t r = n == (hssize_t)(want ? want : 1) ? H5Aread(a, mtype, v) : -1;
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return r;
}

static herr_t attr_read_str(hid_t loc, const char *name, char *out, size_t cap) {
    hid_t t = H5Tcopy(H5T_C_S1);
    char *s = NULL;
    herr_t r = t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0
                   ? -1 : attr_read(loc, name, t, 0, &s);
    if (r >= 0) {
        if (!s || strlen(s) >= cap) r = -1;
        else memcpy(out, s, strlen(s) + 1);
    }
    if (s) H5free_memory(s);
    if (t >= 0) H5Tclose(t);
    return r;
}

static herr_t read_source(hid_t g, kvq_cap_source *s) {
    return attr_read_str(g, "tool_version", s->tool_version, sizeof s->tool_version) < 0 ||
                   attr_read_str(g, "git_revision", s->git_revision, sizeof s->git_revision) < 0 ||
                   attr_read_str(g, "model_path", s->model_path, sizeof s->model_path) < 0 ||
                   attr_read_str(g, "tokenizer", s->tokenizer, sizeof s->tokenizer) < 0 ||
                   attr_read_str(g, "text_path", s->text_path, sizeof s->text_path) < 0 ||
                   attr_read_str(g, "text_sha256", s->text_sha256, sizeof s->text_sha256) < 0 ||
                   attr_read(g, "text_tokens", H5T_NATIVE_UINT64, 0, &s->text_tokens) < 0 ||
                   attr_read(g, "samples_requested", H5T_NATIVE_UINT32, 0, &s->samples_requested) < 0 ||
                   attr_read(g, "seed", H5T_NATIVE_UINT64, 0, &s->seed) < 0
               ? -1 : 0;
}

static kvq_status parse_enums(kvq_capture_meta *m, const char *scaling, const char *conv,
                              const char *dtype, char *why, size_t why_len) {
    kvq_model_identity *id = &m->model;
    if (!strcmp(scaling, "none")) id->rope_scaling = KVQ_ROPE_SCALING_NONE;
    else if (!strcmp(scaling, "linear")) id->rope_scaling = KVQ_ROPE_SCALING_LINEAR;
    else if (!strcmp(scaling, "llama3")) id->rope_scaling = KVQ_ROPE_SCALING_LLAMA3;
    else { snprintf(why, why_len, "/provenance rope_scaling '%s' unknown", scaling); return KVQ_ERR_FORMAT; }
    if (!strcmp(conv, "rotate_half")) id->rope_convention = KVQ_ROPE_ROTATE_HALF;
    else if (!strcmp(conv, "interleaved")) id->rope_convention = KVQ_ROPE_INTERLEAVED;
    else { snprintf(why, why_len, "/provenance rope_convention '%s' unknown", conv); return KVQ_ERR_FORMAT; }
    for (int d = 0; d <= KVQ_CAPTURE_BF16; d++)
        if (!strcmp(dtype, kvq_capture_dtype_name((kvq_capture_dtype)d))) { m->dtype = (kvq_capture_dtype)d; return KVQ_OK; }
    snprintf(why, why_len, "/provenance dtype '%s' unknown", dtype);
    return KVQ_ERR_DTYPE;
}

static herr_t read_provenance(hid_t g, kvq_capture_meta *m, char *scaling, char *conv, char *dtype) {
    kvq_model_identity *id = &m->model;
    return attr_read_str(g, "tool_version", m->tool_version, sizeof m->tool_version) < 0 ||
                   attr_read_str(g, "git_revision", m->git_revision, sizeof m->git_revision) < 0 ||
                   attr_read_str(g, "model_path", m->model_path, sizeof m->model_path) < 0 ||
                   attr_read(g, "model_fingerprint", H5T_NATIVE_UINT64, 0, &id->fingerprint) < 0 ||
                   attr_read_str(g, "architecture", id->architecture, sizeof id->architecture) < 0 ||
                   attr_read(g, "n_layers", H5T_NATIVE_UINT32, 0, &id->n_layers) < 0 ||
                   attr_read(g, "n_heads", H5T_NATIVE_UINT32, 0, &id->n_heads) < 0 ||
                   attr_read(g, "n_kv_heads", H5T_NATIVE_UINT32, 0, &id->n_kv_heads) < 0 ||
                   attr_read(g, "head_dim", H5T_NATIVE_UINT32, 0, &id->head_dim) < 0 ||
                   attr_read(g, "hidden", H5T_NATIVE_UINT32, 0, &id->hidden) < 0 ||
                   attr_read(g, "vocab", H5T_NATIVE_UINT32, 0, &id->vocab) < 0 ||
                   attr_read(g, "rope_theta", H5T_NATIVE_FLOAT, 0, &id->rope_theta) < 0 ||
                   attr_read_str(g, "rope_scaling", scaling, 16) < 0 ||
                   attr_read(g, "rope_scaling_factor", H5T_NATIVE_FLOAT, 0, &id->rope_scaling_factor) < 0 ||
                   attr_read(g, "rope_low_freq_factor", H5T_NATIVE_FLOAT, 0, &id->rope_low_freq_factor) < 0 ||
                   attr_read(g, "rope_high_freq_factor", H5T_NATIVE_FLOAT, 0, &id->rope_high_freq_factor) < 0 ||
                   attr_read(g, "rope_original_max_pos", H5T_NATIVE_UINT32, 0, &id->rope_original_max_pos) < 0 ||
                   attr_read_str(g, "rope_convention", conv, 16) < 0 ||
                   attr_read_str(g, "tokenizer", m->tokenizer, sizeof m->tokenizer) < 0 ||
                   attr_read_str(g, "text_path", m->text_path, sizeof m->text_path) < 0 ||
                   attr_read_str(g, "text_sha256", m->text_sha256, sizeof m->text_sha256) < 0 ||
                   attr_read(g, "text_tokens", H5T_NATIVE_UINT64, 0, &m->text_tokens) < 0 ||
                   attr_read(g, "samples_requested", H5T_NATIVE_UINT32, 0, &m->samples_requested) < 0 ||
                   attr_read(g, "seq_len", H5T_NATIVE_UINT32, 0, &m->seq_len) < 0 ||
                   attr_read(g, "seed", H5T_NATIVE_UINT64, 0, &m->seed) < 0 ||
                   attr_read_str(g, "window_sampling", m->window_sampling, sizeof m->window_sampling) < 0 ||
                   attr_read_str(g, "dtype", dtype, 16) < 0 ||
                   attr_read(g, "fisher", H5T_NATIVE_INT32, 0, &m->fisher) < 0 ||
                   attr_read(g, "compress", H5T_NATIVE_INT32, 0, &m->compress) < 0 ||
                   attr_read(g, "n_sources", H5T_NATIVE_UINT32, 0, &m->n_sources) < 0
               ? -1 : 0;
}

/* Number of elements of attribute `name` (a 1-D array), or -1. */
static hssize_t attr_len(hid_t loc, const char *name) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return n;
}

static kvq_status check_meta(const kvq_capture_meta *m, char *why, size_t why_len) {
    const kvq_model_identity *id = &m->model;
    uint64_t kv_dim = (uint64_t)id->n_kv_heads * id->head_dim;
    if (!id->n_layers || !kv_dim || kv_dim > (1u << 24) || !m->seq_len || m->fisher < 0 ||
        m->fisher > 1 || m->compress < 0 || m->compress > 9 || !m->n_sources) {
        snprintf(why, why_len, "/provenance: implausible values (n_layers %u, kv_dim %llu, seq_len %u, "
                 "fisher %d, compress %d, n_sources %u)", id->n_layers, (unsigned long long)kv_dim,
                 m->seq_len, m->fisher, m->compress, m->n_sources);
        return KVQ_ERR_FORMAT;
    }
    for (uint32_t i = 0; i < m->n_captured; i++)
        if (m->layers[i] >= id->n_layers || (i && m->layers[i] <= m->layers[i - 1])) {
            snprintf(why, why_len, "/provenance layers: entry %u (%u) out of range or not ascending", i, m->layers[i]);
            return KVQ_ERR_FORMAT;
        }
    return KVQ_OK;
}

kvq_status kvq_cap_read_meta(hid_t file, kvq_capture_meta *m, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t prov = -1;
    char fmt[32] = "", scaling[16] = "", conv[16] = "", dtype[16] = "";
    int32_t version = 0;
    memset(m, 0, sizeof *m);
    if (attr_read_str(file, "format", fmt, sizeof fmt) < 0 || strcmp(fmt, FORMAT_NAME)) {
        H5Eclear2(H5E_DEFAULT);
        snprintf(why, why_len, "root attribute format is not \"%s\": not a kvq capture file", FORMAT_NAME);
        return KVQ_ERR_MAGIC;
    }
    KVQ_H5(attr_read(file, "format_version", H5T_NATIVE_INT32, 0, &version));
    if (version < 1 || version > KVQ_CAPTURE_FORMAT_VERSION) {
        snprintf(why, why_len, "format_version %d (this kvq reads 1..%d)", version, KVQ_CAPTURE_FORMAT_VERSION);
        return KVQ_ERR_VERSION;
    }
    KVQ_H5(prov = H5Gopen2(file, "/provenance", H5P_DEFAULT));
    KVQ_H5(read_provenance(prov, m, scaling, conv, dtype));
    hssize_t nl = attr_len(prov, "layers");
    if (nl < 1 || nl > KVQ_CAPTURE_MAX_LAYERS) {
        H5Eclear2(H5E_DEFAULT);
        snprintf(why, why_len, "/provenance layers: %lld entries", (long long)nl);
        st = KVQ_ERR_FORMAT;
        goto done;
    }
    m->n_captured = (uint32_t)nl;
    KVQ_H5(attr_read(prov, "layers", H5T_NATIVE_UINT32, (hsize_t)nl, m->layers));
    if ((st = parse_enums(m, scaling, conv, dtype, why, why_len))) goto done;
    st = check_meta(m, why, why_len);
done:
    if (prov >= 0) H5Gclose(prov);
    return st;
}

kvq_status kvq_cap_read_sources(hid_t file, uint32_t n_src, kvq_cap_source *src, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hid_t g = -1;
    for (uint32_t i = 0; i < n_src; i++) {
        char name[48];
        snprintf(name, sizeof name, "/provenance/sources/%03u", i);
        memset(&src[i], 0, sizeof src[i]);
        KVQ_H5(g = H5Gopen2(file, name, H5P_DEFAULT));
        KVQ_H5(read_source(g, &src[i]));
        KVQ_H5(H5Gclose(g));
        g = -1;
    }
done:
    if (g >= 0) H5Gclose(g);
    return st;
}
