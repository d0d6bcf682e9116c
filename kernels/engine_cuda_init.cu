// engine_cuda_init.cu — building and freeing the CUDA engine (kvq_engine_cuda.h): shape checks, the
// memory plan (one device allocation for activations, carved here; its byte formula is in
// docs/engine-gpu.md), the weight upload (fp32 host tensors staged in 64M-element pieces and
// converted on the GPU to the stored type), pinned host buffers, streams, events and cuBLAS.
// The passes are engine_cuda.cu's.
#include "engine_cuda_int.cuh"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"   // kvq_rope_inv_freq, kvq_rope_tables_f32: the CPU engine's RoPE tables

namespace {

struct carver {
    unsigned char *base;   // NULL: measure only
    size_t off;
    int overflow;
};

size_t mul(carver *c, size_t a, size_t b) {
    if (b && a > SIZE_MAX / b) { c->overflow = 1; return 0; }
    return a * b;
}

void *take(carver *c, size_t a, size_t b, size_t elem) {
    size_t bytes = mul(c, mul(c, a, b), elem), start = (c->off + 255) & ~(size_t)255;
    if (start < c->off || bytes > SIZE_MAX - start) { c->overflow = 1; return NULL; }
    c->off = start + bytes;
    return c->base && !c->overflow ? c->base + start : NULL;
}
float *tf(carver *c, size_t a, size_t b) { return (float *)take(c, a, b, 4); }

void set_dims(kvq_gpu_engine *e, const kvq_model_config *cfg, const kvq_gpu_engine_opts *o) {
    e->opts = *o;
    e->B = o->batch; e->T = o->seq_len; e->L = cfg->n_layers; e->C = cfg->hidden;
    e->NH = cfg->n_heads; e->NKV = cfg->n_kv_heads; e->hd = cfg->head_dim;
    e->QD = e->NH * e->hd; e->KVD = e->NKV * e->hd; e->I = cfg->intermediate; e->V = cfg->vocab;
    e->eps = cfg->rms_eps;
    size_t per_row = (size_t)(o->backward ? 2 : 1) * e->NH * e->T * 4;
    long long r = o->q_chunk > 0 ? o->q_chunk : (long long)(((size_t)1 << 30) / per_row);
    if (r >= 16 && !o->q_chunk) r &= ~15LL;
    e->R = (int)(r < 1 ? 1 : r > e->T ? e->T : r);
    long long n = (long long)e->B * e->T, rl = (long long)((512u << 20) / ((size_t)e->V * 4));
    e->RL = (int)(rl < 64 ? 64 : rl > n ? n : rl);
    if (e->RL > n) e->RL = (int)n;
    size_t mx = (size_t)e->V * e->C;
    size_t layer_max = (size_t)e->I * e->C > (size_t)e->QD * e->C ? (size_t)e->I * e->C : (size_t)e->QD * e->C;
    e->wconv_elems = mx > layer_max ? mx : layer_max;
}

int dims_ok(const kvq_model_config *c, const kvq_gpu_engine_opts *o) {
    return o->batch >= 1 && o->seq_len >= 2 && c->n_layers >= 1 && c->hidden >= 1 && c->n_heads >= 1 &&
           c->n_kv_heads >= 1 && c->n_heads % c->n_kv_heads == 0 && c->head_dim >= 2 && c->head_dim % 2 == 0 &&
           c->intermediate >= 1 && c->vocab >= 1 && (o->math == KVQ_GPU_FP32 || o->math == KVQ_GPU_BF16) &&
           (long long)o->batch * o->seq_len <= 0x7fffffffLL && (long long)c->n_heads * c->head_dim <= 0x7fffffffLL &&
           (long long)c->n_heads * o->seq_len <= 0x7fffffffLL;
}

int wtype_of(const char *dtype, kvq_gpu_math math) {
    if (math == KVQ_GPU_BF16) return KVQ_CU_BF16;
    if (dtype && !strcmp(dtype, "BF16")) return KVQ_CU_BF16;
    if (dtype && !strcmp(dtype, "F16")) return KVQ_CU_F16;
    return KVQ_CU_F32;
}

size_t wsize(int wtype) { return wtype == KVQ_CU_F32 ? 4 : 2; }

}  // namespace

size_t kvq_gpu_plan(kvq_gpu_engine *e, unsigned char *base) {
    carver c = {base, 0, 0};
    gpu_acts *a = &e->a;
    size_t N = (size_t)e->B * e->T, L = (size_t)e->L;
    memset(a, 0, sizeof *a);
    a->x = tf(&c, (L + 1) * N, e->C);
    a->ln = tf(&c, N, e->C); a->xmid = tf(&c, N, e->C); a->branch = tf(&c, N, e->C);
    a->rstd1 = tf(&c, N, 1); a->rstd2 = tf(&c, N, 1); a->nll = tf(&c, N, 1); a->dnll = tf(&c, N, 1);
    a->q = tf(&c, N, e->QD); a->att = tf(&c, N, e->QD);
    for (int s = 0; s < 2; s++) { a->k[s] = tf(&c, N, e->KVD); a->v[s] = tf(&c, N, e->KVD); }
    a->kpost = tf(&c, N, e->KVD);
    a->lse = tf(&c, N, e->NH);
    a->gate = tf(&c, N, e->I); a->up = tf(&c, N, e->I); a->act = tf(&c, N, e->I);
    a->cos_t = tf(&c, e->T, e->hd / 2); a->sin_t = tf(&c, e->T, e->hd / 2);
    a->tokens = (int32_t *)take(&c, N, 1, 4); a->targets = (int32_t *)take(&c, N, 1, 4);
    a->logits = tf(&c, e->RL, e->V);
    a->scratch = tf(&c, (size_t)(e->opts.backward ? 2 : 1) * e->NH * e->R, e->T);
    if (e->opts.math == KVQ_GPU_BF16) {
        size_t w = (size_t)e->C;
        if ((size_t)e->QD > w) w = e->QD;
        if ((size_t)e->I > w) w = e->I;
        size_t n1 = mul(&c, N, w), n2 = mul(&c, e->RL, e->V);
        a->op16 = take(&c, n1 > n2 ? n1 : n2, 1, 2);
    } else if (e->wtype != KVQ_CU_F32) {
        a->wconv = tf(&c, e->wconv_elems, 1);
    }
    if (e->opts.backward) {
        a->dx = tf(&c, N, e->C); a->dln = tf(&c, N, e->C);
        a->dq = tf(&c, N, e->QD); a->dkpost = tf(&c, N, e->KVD);
        for (int s = 0; s < 2; s++) { a->dk[s] = tf(&c, N, e->KVD); a->dv[s] = tf(&c, N, e->KVD); }
        a->dgate = tf(&c, N, e->I); a->dup = tf(&c, N, e->I);
    }
    return c.overflow ? 0 : c.off;
}

extern "C" size_t kvq_gpu_engine_device_bytes(const kvq_model_config *cfg, const kvq_gpu_engine_opts *opts) {
    if (!cfg || !opts || !dims_ok(cfg, opts)) return 0;
    kvq_gpu_engine e;
    memset(&e, 0, sizeof e);
    set_dims(&e, cfg, opts);
    e.wtype = KVQ_CU_BF16;   // half-stored weights: fp32 math counts the conversion buffer
    return kvq_gpu_plan(&e, NULL);
}

extern "C" size_t kvq_gpu_engine_weight_bytes(const kvq_model_config *c, const char *dtype, kvq_gpu_math math) {
    size_t C = c->hidden, QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
    size_t mats = (size_t)c->n_layers * (2 * QD * C + 2 * KVD * C + 3 * (size_t)c->intermediate * C) +
                  (size_t)(c->tied_embeddings ? 1 : 2) * c->vocab * C;
    size_t small = (size_t)c->n_layers * (2 * C + (c->attention_bias ? QD + 2 * KVD : 0)) + C;
    return mats * wsize(wtype_of(dtype, math)) + small * 4 + 256 * (size_t)(12 * c->n_layers + 4);
}

// ---- weight upload -----------------------------------------------------------------------------

namespace {

struct uploader {
    kvq_gpu_engine *e;
    unsigned char *dev;     // next free byte of the weight allocation
    float *stage;           // device fp32 staging, kStage elements
};
constexpr size_t kStage = (size_t)64 << 20;

kvq_status put(uploader *u, const float *host, size_t n, int type, const void **out, char *why, size_t why_len) {
    unsigned char *dst = u->dev;
    u->dev += (n * wsize(type) + 255) & ~(size_t)255;
    for (size_t i = 0; i < n; i += kStage) {
        size_t m = n - i < kStage ? n - i : kStage;
        if (type == KVQ_CU_F32) {
            CU_TRY(cudaMemcpy(dst + i * 4, host + i, m * 4, cudaMemcpyHostToDevice));
            continue;
        }
        CU_TRY(cudaMemcpy(u->stage, host + i, m * 4, cudaMemcpyHostToDevice));
        kvq_cu_from_f32(dst + i * 2, type, u->stage, m, NULL);
        CU_TRY(cudaGetLastError());
    }
    *out = dst;
    return KVQ_OK;
}

kvq_status putf(uploader *u, const float *host, size_t n, const float **out, char *why, size_t why_len) {
    if (!host) { *out = NULL; return KVQ_OK; }
    const void *p;
    KVQ_TRY(put(u, host, n, KVQ_CU_F32, &p, why, why_len));
    *out = (const float *)p;
    return KVQ_OK;
}

kvq_status upload(kvq_gpu_engine *e, const kvq_model *m, char *why, size_t why_len) {
    uploader u = {e, (unsigned char *)e->weights, NULL};
    CU_TRY(cudaMalloc((void **)&u.stage, kStage * 4));
    kvq_status st = KVQ_OK;
    size_t C = e->C, QD = e->QD, KVD = e->KVD, I = e->I;
    int t = e->wtype;
    st = put(&u, m->tok_embed, (size_t)e->V * C, t, &e->tok_embed, why, why_len);
    if (!st) st = m->lm_head == m->tok_embed ? (e->lm_head = e->tok_embed, KVQ_OK)
                                             : put(&u, m->lm_head, (size_t)e->V * C, t, &e->lm_head, why, why_len);
    if (!st) st = putf(&u, m->final_norm, C, &e->final_norm, why, why_len);
    for (int l = 0; l < e->L && !st; l++) {
        const kvq_layer_weights *w = &m->layers[l];
        gpu_layer *g = &e->layers[l];
        if ((st = putf(&u, w->attn_norm, C, &g->attn_norm, why, why_len)) ||
            (st = putf(&u, w->mlp_norm, C, &g->mlp_norm, why, why_len)) ||
            (st = putf(&u, w->bq, QD, &g->bq, why, why_len)) || (st = putf(&u, w->bk, KVD, &g->bk, why, why_len)) ||
            (st = putf(&u, w->bv, KVD, &g->bv, why, why_len)) || (st = put(&u, w->wq, QD * C, t, &g->wq, why, why_len)) ||
            (st = put(&u, w->wk, KVD * C, t, &g->wk, why, why_len)) ||
            (st = put(&u, w->wv, KVD * C, t, &g->wv, why, why_len)) ||
            (st = put(&u, w->wo, C * QD, t, &g->wo, why, why_len)) ||
            (st = put(&u, w->w_gate, I * C, t, &g->w_gate, why, why_len)) ||
            (st = put(&u, w->w_up, I * C, t, &g->w_up, why, why_len)) ||
            (st = put(&u, w->w_down, C * I, t, &g->w_down, why, why_len)))
            break;
    }
    cudaError_t sync = cudaDeviceSynchronize(), fr = cudaFree(u.stage);
    if (!st && (sync != cudaSuccess || fr != cudaSuccess)) {
        snprintf(why, why_len, "weight upload: %s", cudaGetErrorString(sync != cudaSuccess ? sync : fr));
        st = KVQ_ERR_CUDA;
    }
    return st;
}

kvq_status alloc_dev(void **p, size_t bytes, const char *what, char *why, size_t why_len) {
    cudaError_t err = cudaMalloc(p, bytes);
    if (err == cudaErrorMemoryAllocation) {
        size_t fr = 0, tot = 0;
        cudaGetLastError();
        cudaMemGetInfo(&fr, &tot);
        snprintf(why, why_len, "cannot allocate %zu bytes of GPU memory for %s (%zu of %zu free)", bytes, what, fr, tot);
        return KVQ_ERR_NOMEM;
    }
    CU_TRY(err);
    return KVQ_OK;
}

kvq_status alloc_host(float **p, size_t n, char *why, size_t why_len) {
    if (cudaMallocHost((void **)p, n * 4) != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        snprintf(why, why_len, "cannot allocate %zu bytes of pinned host memory", n * 4);
        return KVQ_ERR_NOMEM;
    }
    return KVQ_OK;
}

// Host result set `set`: k and v, and with backward dk and dv, each (L, B, T, KVD) pinned floats.
// On failure the set's arrays allocated so far are freed again.
kvq_status alloc_set(kvq_gpu_engine *e, int set, char *why, size_t why_len) {
    size_t per = (size_t)e->L * e->B * e->T * e->KVD;
    int nt = e->opts.backward ? 4 : 2;
    for (int t = 0; t < nt; t++) {
        kvq_status st = alloc_host(&e->h_set[set][t], per, why, why_len);
        if (!st) continue;
        for (int u = 0; u < t; u++) {
            cudaFreeHost(e->h_set[set][u]);
            e->h_set[set][u] = NULL;
        }
        snprintf(why, why_len, "cannot allocate %zu bytes of pinned host memory for result set %d", per * 4 * nt, set);
        return st;
    }
    return KVQ_OK;
}

void use_set(kvq_gpu_engine *e, int set) {
    e->h_k = e->h_set[set][0];
    e->h_v = e->h_set[set][1];
    e->h_dk = e->h_set[set][2];
    e->h_dv = e->h_set[set][3];
}

kvq_status setup(kvq_gpu_engine *e, const kvq_model *m, char *why, size_t why_len) {
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1 || e->opts.device < 0 || e->opts.device >= n_dev) {
        cudaGetLastError();
        snprintf(why, why_len, "no CUDA device %d (%d found)", e->opts.device, n_dev);
        return KVQ_ERR_UNSUPPORTED;
    }
    CU_TRY(cudaSetDevice(e->opts.device));
    cudaDeviceProp prop;
    CU_TRY(cudaGetDeviceProperties(&prop, e->opts.device));
    snprintf(e->device_name, sizeof e->device_name, "%.95s", prop.name);
    CU_TRY(cudaStreamCreateWithFlags(&e->s, cudaStreamNonBlocking));
    CU_TRY(cudaStreamCreateWithFlags(&e->cs, cudaStreamNonBlocking));
    for (int s = 0; s < 2; s++) {
        CU_TRY(cudaEventCreateWithFlags(&e->ready[s], cudaEventDisableTiming));
        CU_TRY(cudaEventCreateWithFlags(&e->freed[s], cudaEventDisableTiming));
    }
    CUBLAS_TRY(cublasCreate(&e->blas));
    CUBLAS_TRY(cublasSetStream(e->blas, e->s));
    CUBLAS_TRY(cublasSetMathMode(e->blas, CUBLAS_DEFAULT_MATH));   // no TF32 unless a call asks for it
    e->weight_bytes = kvq_gpu_engine_weight_bytes(&m->cfg, m->dtype, e->opts.math);
    KVQ_TRY(alloc_dev(&e->weights, e->weight_bytes, "weights", why, why_len));
    KVQ_TRY(alloc_dev(&e->work, e->work_bytes, "activations", why, why_len));
    kvq_gpu_plan(e, (unsigned char *)e->work);
    KVQ_TRY(upload(e, m, why, why_len));
    double *inv = (double *)malloc((size_t)(e->hd / 2) * sizeof *inv);
    float *tab = (float *)malloc((size_t)e->T * e->hd * sizeof *tab);
    kvq_status st = inv && tab ? kvq_rope_inv_freq(inv, &m->cfg) : KVQ_ERR_NOMEM;
    if (!st) {
        kvq_rope_tables_f32(tab, tab + (size_t)e->T * (e->hd / 2), inv, e->T, e->hd);
        cudaError_t err = cudaMemcpy(e->a.cos_t, tab, (size_t)e->T * (e->hd / 2) * 4, cudaMemcpyHostToDevice);
        if (err == cudaSuccess)
            err = cudaMemcpy(e->a.sin_t, tab + (size_t)e->T * (e->hd / 2), (size_t)e->T * (e->hd / 2) * 4,
                             cudaMemcpyHostToDevice);
        if (err != cudaSuccess) { snprintf(why, why_len, "RoPE tables: %s", cudaGetErrorString(err)); st = KVQ_ERR_CUDA; }
    } else {
        snprintf(why, why_len, "RoPE tables: %s", st == KVQ_ERR_NOMEM ? "out of memory" : "bad RoPE parameters");
    }
    free(inv);
    free(tab);
    if (st) return st;
    size_t N = (size_t)e->B * e->T;
    if (cudaMallocHost((void **)&e->h_nll, N * 4) != cudaSuccess ||
        cudaMallocHost((void **)&e->h_tok, N * 4) != cudaSuccess) {
        snprintf(why, why_len, "cannot allocate pinned host memory");
        return KVQ_ERR_NOMEM;
    }
    if (e->opts.copy_back) KVQ_TRY(alloc_set(e, 0, why, why_len));
    use_set(e, 0);
    return KVQ_OK;
}

}  // namespace

extern "C" kvq_status kvq_gpu_engine_init(kvq_gpu_engine **out, const kvq_model *m, const kvq_gpu_engine_opts *opts,
                                          char *why, size_t why_len) {
    if (out) *out = NULL;
    if (!out || !m || !opts) { snprintf(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    if (!dims_ok(&m->cfg, opts)) {
        snprintf(why, why_len, "bad GPU engine shape: batch %d seq_len %d math %d, n_heads %d n_kv_heads %d head_dim %d",
                 opts->batch, opts->seq_len, (int)opts->math, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim);
        return KVQ_ERR_ARG;
    }
    kvq_gpu_engine *e = (kvq_gpu_engine *)calloc(1, sizeof *e);
    if (!e || !(e->layers = (gpu_layer *)calloc((size_t)m->cfg.n_layers, sizeof *e->layers))) {
        free(e);
        snprintf(why, why_len, "out of memory");
        return KVQ_ERR_NOMEM;
    }
    set_dims(e, &m->cfg, opts);
    e->wtype = wtype_of(m->dtype, opts->math);
    e->work_bytes = kvq_gpu_plan(e, NULL);
    if (!e->work_bytes) {
        kvq_gpu_engine_free(e);
        snprintf(why, why_len, "GPU activation size overflows");
        return KVQ_ERR_OVERFLOW;
    }
    kvq_status st = setup(e, m, why, why_len);
    if (st) { kvq_gpu_engine_free(e); return st; }
    *out = e;
    return KVQ_OK;
}

extern "C" void kvq_gpu_engine_free(kvq_gpu_engine *e) {
    if (!e) return;
    if (e->s) cudaStreamSynchronize(e->s);
    if (e->cs) cudaStreamSynchronize(e->cs);
    if (e->blas) cublasDestroy(e->blas);
    for (int s = 0; s < 2; s++) {
        if (e->ready[s]) cudaEventDestroy(e->ready[s]);
        if (e->freed[s]) cudaEventDestroy(e->freed[s]);
    }
    if (e->s) cudaStreamDestroy(e->s);
    if (e->cs) cudaStreamDestroy(e->cs);
    cudaFree(e->weights);
    cudaFree(e->work);
    for (int set = 0; set < 2; set++)
        for (int t = 0; t < 4; t++)
            if (e->h_set[set][t]) cudaFreeHost(e->h_set[set][t]);
    if (e->h_nll) cudaFreeHost(e->h_nll);
    if (e->h_tok) cudaFreeHost(e->h_tok);
    free(e->layers);
    free(e);
}

extern "C" kvq_status kvq_gpu_engine_select_host(kvq_gpu_engine *e, int set, char *why, size_t why_len) {
    if (!e || !e->opts.copy_back || set < 0 || set > 1) {
        snprintf(why, why_len, "select_host: set %d of an engine %s", set,
                 !e ? "that is NULL" : e->opts.copy_back ? "with sets 0 and 1" : "without copy_back");
        return KVQ_ERR_ARG;
    }
    if (!e->h_set[set][0]) KVQ_TRY(alloc_set(e, set, why, why_len));
    use_set(e, set);
    return KVQ_OK;
}

extern "C" void kvq_gpu_engine_get_info(const kvq_gpu_engine *e, kvq_gpu_engine_info *info) {
    memset(info, 0, sizeof *info);
    info->weight_bytes = e->weight_bytes;
    info->work_bytes = e->work_bytes;
    info->q_chunk = e->R;
    snprintf(info->weight_dtype, sizeof info->weight_dtype, "%s",
             e->wtype == KVQ_CU_F32 ? "F32" : e->wtype == KVQ_CU_BF16 ? "BF16" : "F16");
    snprintf(info->device_name, sizeof info->device_name, "%s", e->device_name);
}
