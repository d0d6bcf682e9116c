/* engine.c — the fp32 forward pass and activation-gradient backward pass of a LLaMA-family model
 * over a batch of windows (engine.h), built from the ops of ops.h. All buffers are carved from one
 * allocation made at init. Not a loader, tokenizer or KV-cache decoder. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* Forward activations. "Per layer" tensors have n_layers slots; "kept" ones have n_layers slots
 * when the engine does backward and one shared slot otherwise (forward only needs the current
 * layer's). N = B*T rows, C = hidden, QD = n_heads*head_dim, KVD = kv_dim, I = intermediate. */
typedef struct engine_acts {
    float *x;        /* (L+1, B, T, C) residual stream: x[l] = input of layer l, x[L] = final */
    float *k_pre;    /* (L, B, T, KVD) k_proj output (pre-RoPE keys) */
    float *k_post;   /* (L, B, T, KVD) keys after RoPE */
    float *v;        /* (L, B, T, KVD) v_proj output */
    float *rstd1;    /* kept (B, T) attention-norm 1/rms */
    float *q;        /* kept (B, T, QD) queries after RoPE */
    float *lse;      /* kept (B, NH, T) attention row log-sum-exp */
    float *x_mid;    /* kept (B, T, C) residual stream after attention */
    float *rstd2;    /* kept (B, T) MLP-norm 1/rms */
    float *gate;     /* kept (B, T, I) gate_proj output */
    float *up;       /* kept (B, T, I) up_proj output */
    float *ln;       /* (B, T, C) current norm output */
    float *att;      /* (B, T, QD) attention output */
    float *act;      /* (B, T, I) silu(gate) * up */
    float *branch;   /* (B, T, C) o_proj or down_proj output */
    float *lnf;      /* (B, T, C) final norm output */
    float *rstdf;    /* (B, T) */
    float *logits;   /* (B, T, V) */
    float *nll;      /* (B, T) */
    float *scratch;  /* (2, min(T, KVQ_ATT_BLOCK), T) attention score blocks */
    float *cos_t;    /* (T, hd/2) */
    float *sin_t;    /* (T, hd/2) */
    int32_t *targets;/* (B, T) next token, -1 at the last position */
} engine_acts;

/* Gradients (backward engines only). */
typedef struct engine_grads {
    float *dk_pre;   /* (L, B, T, KVD) dL/dK pre-RoPE */
    float *dv;       /* (L, B, T, KVD) dL/dV */
    float *dx;       /* (B, T, C) at the residual stream point being processed */
    float *dx_mid;   /* (B, T, C) at x_mid */
    float *dbranch;  /* (B, T, C) at o_proj / down_proj output */
    float *dln;      /* (B, T, C) at a norm output */
    float *dq;       /* (B, T, QD) at the post-RoPE queries, then (rope backward) pre-RoPE */
    float *datt;     /* (B, T, QD) at the attention output */
    float *dk_post;  /* (B, T, KVD) */
    float *dact;     /* (B, T, I) */
    float *dgate;    /* (B, T, I) */
    float *dup;      /* (B, T, I) */
    float *dlogits;  /* (B, T, V) */
    float *dnll;     /* (B, T) */
} engine_grads;

struct kvq_engine {
    const kvq_model *m;
    kvq_engine_opts opts;
    int B, T, L, C, NH, NKV, hd, QD, KVD, I, V;
    engine_acts a;
    engine_grads g;
    void *block;            /* the one allocation */
    size_t block_bytes;
    int last_windows;       /* n_windows of the last successful forward; 0 before */
    kvq_engine_hook hook;
    void *hook_user;
};

/* ---- one block, carved ------------------------------------------------------------------- */

typedef struct carver {
    unsigned char *base;    /* NULL: only measure */
    size_t off;
    int overflow;
} carver;

static size_t mul3(carver *c, size_t a, size_t b, size_t d) {
    if (a && (b > SIZE_MAX / a || (b && d > SIZE_MAX / (a * b)))) { c->overflow = 1; return 0; }
    return a * b * d;
}

/* Reserve n elements of `size` bytes, 64-byte aligned. */
static void *take(carver *c, size_t n, size_t size) {
    size_t bytes = mul3(c, n, size, 1);
    size_t start = (c->off + 63) & ~(size_t)63;
    if (start < c->off || bytes > SIZE_MAX - start) { c->overflow = 1; return NULL; }
    c->off = start + bytes;
    return c->base && !c->overflow ? c->base + start : NULL;
}

static float *takef(carver *c, size_t a, size_t b, size_t d) { return take(c, mul3(c, a, b, d), 4); }

/* Lay every tensor out in the block (or just measure it). */
static void layout(kvq_engine *e, carver *c, int backward) {
    size_t N = (size_t)e->B * e->T, L = (size_t)e->L, kept = backward ? L : 1;
    engine_acts *a = &e->a;
    a->x = takef(c, L + 1, N, e->C);
    a->k_pre = takef(c, L, N, e->KVD);
    a->k_post = takef(c, L, N, e->KVD);
    a->v = takef(c, L, N, e->KVD);
    a->rstd1 = takef(c, kept, N, 1);
    a->q = takef(c, kept, N, e->QD);
    a->lse = takef(c, kept, N, e->NH);
    a->x_mid = takef(c, kept, N, e->C);
    a->rstd2 = takef(c, kept, N, 1);
    a->gate = takef(c, kept, N, e->I);
    a->up = takef(c, kept, N, e->I);
    a->ln = takef(c, N, e->C, 1);
    a->att = takef(c, N, e->QD, 1);
    a->act = takef(c, N, e->I, 1);
    a->branch = takef(c, N, e->C, 1);
    a->lnf = takef(c, N, e->C, 1);
    a->rstdf = takef(c, N, 1, 1);
    a->logits = takef(c, N, e->V, 1);
    a->nll = takef(c, N, 1, 1);
    a->scratch = takef(c, 2, e->T < KVQ_ATT_BLOCK ? e->T : KVQ_ATT_BLOCK, e->T);
    a->cos_t = takef(c, e->T, e->hd / 2, 1);
    a->sin_t = takef(c, e->T, e->hd / 2, 1);
    a->targets = take(c, N, sizeof(int32_t));
    memset(&e->g, 0, sizeof e->g);
    if (!backward) return;
    engine_grads *g = &e->g;
    g->dk_pre = takef(c, L, N, e->KVD);
    g->dv = takef(c, L, N, e->KVD);
    g->dx = takef(c, N, e->C, 1);
    g->dx_mid = takef(c, N, e->C, 1);
    g->dbranch = takef(c, N, e->C, 1);
    g->dln = takef(c, N, e->C, 1);
    g->dq = takef(c, N, e->QD, 1);
    g->datt = takef(c, N, e->QD, 1);
    g->dk_post = takef(c, N, e->KVD, 1);
    g->dact = takef(c, N, e->I, 1);
    g->dgate = takef(c, N, e->I, 1);
    g->dup = takef(c, N, e->I, 1);
    g->dlogits = takef(c, N, e->V, 1);
    g->dnll = takef(c, N, 1, 1);
}

static void set_dims(kvq_engine *e, const kvq_model_config *cfg, const kvq_engine_opts *o) {
    e->B = o->batch;
    e->T = o->seq_len;
    e->L = cfg->n_layers;
    e->C = cfg->hidden;
    e->NH = cfg->n_heads;
    e->NKV = cfg->n_kv_heads;
    e->hd = cfg->head_dim;
    e->QD = cfg->n_heads * cfg->head_dim;
    e->KVD = cfg->n_kv_heads * cfg->head_dim;
    e->I = cfg->intermediate;
    e->V = cfg->vocab;
}

static int dims_ok(const kvq_model_config *cfg, const kvq_engine_opts *o) {
    return o->batch >= 1 && o->seq_len >= 2 && cfg->n_layers >= 1 && cfg->hidden >= 1 &&
           cfg->n_heads >= 1 && cfg->n_kv_heads >= 1 && cfg->n_heads % cfg->n_kv_heads == 0 &&
           cfg->head_dim >= 2 && cfg->head_dim % 2 == 0 && cfg->intermediate >= 1 && cfg->vocab >= 1 &&
           (long long)o->batch * o->seq_len <= 0x7fffffffLL &&
           (long long)cfg->n_heads * cfg->head_dim <= 0x7fffffffLL;
}

size_t kvq_engine_activation_bytes(const kvq_model_config *cfg, const kvq_engine_opts *opts) {
    if (!cfg || !opts || !dims_ok(cfg, opts)) return 0;
    kvq_engine e;
    memset(&e, 0, sizeof e);
    set_dims(&e, cfg, opts);
    carver c = {NULL, 0, 0};
    layout(&e, &c, opts->backward);
    return c.overflow ? 0 : c.off;
}

kvq_status kvq_engine_init(kvq_engine **out, const kvq_model *m, const kvq_engine_opts *opts,
                           char *why, size_t why_len) {
    if (out) *out = NULL;
    if (!out || !m || !opts) { snprintf(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    const kvq_model_config *cfg = &m->cfg;
    if (!dims_ok(cfg, opts)) {
        snprintf(why, why_len, "bad engine shape: batch %d seq_len %d, n_heads %d n_kv_heads %d head_dim %d",
                 opts->batch, opts->seq_len, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
        return KVQ_ERR_ARG;
    }
    kvq_ops_auto_threads();
    size_t bytes = kvq_engine_activation_bytes(cfg, opts);
    if (!bytes) { snprintf(why, why_len, "activation size overflows"); return KVQ_ERR_OVERFLOW; }
    kvq_engine *e = calloc(1, sizeof *e);
    double *inv_freq = malloc((size_t)(cfg->head_dim / 2) * sizeof *inv_freq);
    void *block = e && inv_freq ? aligned_alloc(64, (bytes + 63) & ~(size_t)63) : NULL;
    if (!block) {
        free(e);
        free(inv_freq);
        snprintf(why, why_len, "cannot allocate %zu bytes of activations", bytes);
        return KVQ_ERR_NOMEM;
    }
    e->m = m;
    e->opts = *opts;
    set_dims(e, cfg, opts);
    e->block = block;
    e->block_bytes = bytes;
    carver c = {block, 0, 0};
    layout(e, &c, opts->backward);
    kvq_status st = kvq_rope_inv_freq(inv_freq, cfg);
    if (st != KVQ_OK) {
        snprintf(why, why_len, "bad RoPE parameters (theta %g, scaling %d, factor %g)",
                 (double)cfg->rope_theta, (int)cfg->rope_scaling, (double)cfg->rope_scaling_factor);
        free(inv_freq);
        kvq_engine_free(e);
        return st;
    }
    kvq_rope_tables_f32(e->a.cos_t, e->a.sin_t, inv_freq, e->T, e->hd);
    free(inv_freq);
    *out = e;
    return KVQ_OK;
}

void kvq_engine_free(kvq_engine *e) {
    if (!e) return;
    free(e->block);
    free(e);
}

void kvq_engine_set_threads(int n) { kvq_ops_set_threads(n); }

void kvq_engine_set_hook(kvq_engine *e, kvq_engine_hook fn, void *user) {
    e->hook = fn;
    e->hook_user = fn ? user : NULL;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* Slot of layer l in a per-layer tensor of `per` floats per row. */
static float *layer_slot(const kvq_engine *e, float *base, int l, size_t per) {
    return base + (size_t)l * e->B * e->T * per;
}
/* Slot of layer l in a "kept" tensor (shared across layers in forward-only engines). */
static float *kept_slot(const kvq_engine *e, float *base, int l, size_t per) {
    return e->opts.backward ? layer_slot(e, base, l, per) : base;
}

static kvq_status call_hook(kvq_engine *e, int l, kvq_engine_stage stage, int nb, float *k, float *v,
                            char *why, size_t why_len) {
    if (!e->hook) return KVQ_OK;
    kvq_engine_kv kv = {l, stage, nb, e->T, e->NKV, e->hd, k, v};
    return e->hook(e->hook_user, &kv, why, why_len);
}

static kvq_status layer_forward(kvq_engine *e, int l, int nb, char *why, size_t why_len) {
    const kvq_layer_weights *w = &e->m->layers[l];
    engine_acts *a = &e->a;
    int N = nb * e->T;
    float *x = layer_slot(e, a->x, l, e->C), *x_next = layer_slot(e, a->x, l + 1, e->C);
    float *k_pre = layer_slot(e, a->k_pre, l, e->KVD), *k_post = layer_slot(e, a->k_post, l, e->KVD);
    float *v = layer_slot(e, a->v, l, e->KVD), *q = kept_slot(e, a->q, l, e->QD);
    float *x_mid = kept_slot(e, a->x_mid, l, e->C);
    float *gate = kept_slot(e, a->gate, l, e->I), *up = kept_slot(e, a->up, l, e->I);

    kvq_rmsnorm_forward_f32(a->ln, kept_slot(e, a->rstd1, l, 1), x, w->attn_norm, e->m->cfg.rms_eps, N, e->C);
    kvq_matmul_forward_f32(q, a->ln, w->wq, w->bq, N, e->C, e->QD);
    kvq_matmul_forward_f32(k_pre, a->ln, w->wk, w->bk, N, e->C, e->KVD);
    kvq_matmul_forward_f32(v, a->ln, w->wv, w->bv, N, e->C, e->KVD);
    kvq_status st = call_hook(e, l, KVQ_STAGE_PRE_ROPE, nb, k_pre, v, why, why_len);
    if (st != KVQ_OK) return st;
    kvq_rope_forward_f32(q, q, a->cos_t, a->sin_t, nb, e->T, e->NH, e->hd);
    kvq_rope_forward_f32(k_post, k_pre, a->cos_t, a->sin_t, nb, e->T, e->NKV, e->hd);
    st = call_hook(e, l, KVQ_STAGE_POST_ROPE, nb, k_post, v, why, why_len);
    if (st != KVQ_OK) return st;
    kvq_attention_forward_f32(a->att, kept_slot(e, a->lse, l, e->NH), q, k_post, v, a->scratch,
                              nb, e->T, e->NH, e->NKV, e->hd);
    kvq_matmul_forward_f32(a->branch, a->att, w->wo, NULL, N, e->QD, e->C);
    kvq_residual_forward_f32(x_mid, x, a->branch, (size_t)N * e->C);

    kvq_rmsnorm_forward_f32(a->ln, kept_slot(e, a->rstd2, l, 1), x_mid, w->mlp_norm, e->m->cfg.rms_eps, N, e->C);
    kvq_matmul_forward_f32(gate, a->ln, w->w_gate, NULL, N, e->C, e->I);
    kvq_matmul_forward_f32(up, a->ln, w->w_up, NULL, N, e->C, e->I);
    kvq_swiglu_forward_f32(a->act, gate, up, (size_t)N * e->I);
    kvq_matmul_forward_f32(a->branch, a->act, w->w_down, NULL, N, e->I, e->C);
    kvq_residual_forward_f32(x_next, x_mid, a->branch, (size_t)N * e->C);
    return KVQ_OK;
}

kvq_status kvq_engine_forward(kvq_engine *e, const int32_t *tokens, int n_windows, double *loss,
                              char *why, size_t why_len) {
    if (!e || !tokens || n_windows < 1 || n_windows > e->B) {
        snprintf(why, why_len, "forward: %d windows for an engine of batch %d", n_windows, e ? e->B : 0);
        return KVQ_ERR_ARG;
    }
    e->last_windows = 0;
    int T = e->T, N = n_windows * T;
    for (int n = 0; n < N; n++)
        if (tokens[n] < 0 || tokens[n] >= e->V) {
            snprintf(why, why_len, "token %d at window %d position %d is outside [0, %d)", (int)tokens[n],
                     n / T, n % T, e->V);
            return KVQ_ERR_ARG;
        }
    engine_acts *a = &e->a;
    kvq_embed_forward_f32(a->x, tokens, e->m->tok_embed, N, e->C);
    for (int l = 0; l < e->L; l++) {
        kvq_status st = layer_forward(e, l, n_windows, why, why_len);
        if (st != KVQ_OK) return st;
    }
    kvq_rmsnorm_forward_f32(a->lnf, a->rstdf, layer_slot(e, a->x, e->L, e->C), e->m->final_norm,
                            e->m->cfg.rms_eps, N, e->C);
    kvq_matmul_forward_f32(a->logits, a->lnf, e->m->lm_head, NULL, N, e->C, e->V);
    for (int n = 0; n < N; n++) a->targets[n] = n % T == T - 1 ? -1 : tokens[n + 1];
    kvq_crossentropy_forward_f32(a->nll, a->logits, a->targets, N, e->V);
    if (loss) {
        double sum = 0;
        for (int n = 0; n < N; n++) sum += a->nll[n];
        *loss = sum / ((double)n_windows * (T - 1));
    }
    e->last_windows = n_windows;
    return KVQ_OK;
}

/* ---- backward ----------------------------------------------------------------------------- */

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

/* On entry g->dx holds dL/dx[l+1]; on exit dL/dx[l]; fills dk_pre[l] and dv[l]. */
static void layer_backward(kvq_engine *e, int l, int nb) {
    const kvq_layer_weights *w = &e->m->layers[l];
    engine_acts *a = &e->a;
    engine_grads *g = &e->g;
    size_t N = (size_t)nb * e->T;
    float *x = layer_slot(e, a->x, l, e->C), *x_mid = kept_slot(e, a->x_mid, l, e->C);
    float *dk_pre = layer_slot(e, g->dk_pre, l, e->KVD), *dv = layer_slot(e, g->dv, l, e->KVD);

    /* MLP block: x[l+1] = x_mid + down(silu(gate(n)) * up(n)), n = rmsnorm(x_mid). */
    zero(g->dx_mid, N * e->C);
    zero(g->dbranch, N * e->C);
    kvq_residual_backward_f32(g->dx_mid, g->dbranch, g->dx, N * e->C);
    zero(g->dact, N * e->I);
    kvq_matmul_backward_f32(g->dact, g->dbranch, w->w_down, (int)N, e->I, e->C);
    zero(g->dgate, N * e->I);
    zero(g->dup, N * e->I);
    kvq_swiglu_backward_f32(g->dgate, g->dup, g->dact, kept_slot(e, a->gate, l, e->I),
                            kept_slot(e, a->up, l, e->I), N * e->I);
    zero(g->dln, N * e->C);
    kvq_matmul_backward_f32(g->dln, g->dgate, w->w_gate, (int)N, e->C, e->I);
    kvq_matmul_backward_f32(g->dln, g->dup, w->w_up, (int)N, e->C, e->I);
    kvq_rmsnorm_backward_f32(g->dx_mid, g->dln, x_mid, w->mlp_norm, kept_slot(e, a->rstd2, l, 1), (int)N, e->C);

    /* Attention block: x_mid = x + o(attention(rope(q(n)), rope(k(n)), v(n))), n = rmsnorm(x). */
    zero(g->dx, N * e->C);
    zero(g->dbranch, N * e->C);
    kvq_residual_backward_f32(g->dx, g->dbranch, g->dx_mid, N * e->C);
    zero(g->datt, N * e->QD);
    kvq_matmul_backward_f32(g->datt, g->dbranch, w->wo, (int)N, e->QD, e->C);
    zero(g->dq, N * e->QD);
    zero(g->dk_post, N * e->KVD);
    zero(dv, N * e->KVD);
    kvq_attention_backward_f32(g->dq, g->dk_post, dv, g->datt, kept_slot(e, a->q, l, e->QD),
                               layer_slot(e, a->k_post, l, e->KVD), layer_slot(e, a->v, l, e->KVD),
                               kept_slot(e, a->lse, l, e->NH), a->scratch, nb, e->T, e->NH, e->NKV, e->hd);
    zero(dk_pre, N * e->KVD);
    kvq_rope_backward_f32(dk_pre, g->dk_post, a->cos_t, a->sin_t, nb, e->T, e->NKV, e->hd);
    zero(g->datt, N * e->QD);   /* reused for dL/dq before RoPE */
    kvq_rope_backward_f32(g->datt, g->dq, a->cos_t, a->sin_t, nb, e->T, e->NH, e->hd);
    zero(g->dln, N * e->C);
    kvq_matmul_backward_f32(g->dln, g->datt, w->wq, (int)N, e->C, e->QD);
    kvq_matmul_backward_f32(g->dln, dk_pre, w->wk, (int)N, e->C, e->KVD);
    kvq_matmul_backward_f32(g->dln, dv, w->wv, (int)N, e->C, e->KVD);
    kvq_rmsnorm_backward_f32(g->dx, g->dln, x, w->attn_norm, kept_slot(e, a->rstd1, l, 1), (int)N, e->C);
}

kvq_status kvq_engine_backward(kvq_engine *e, char *why, size_t why_len) {
    if (!e || !e->opts.backward) {
        snprintf(why, why_len, "backward: engine built without opts.backward");
        return KVQ_ERR_ARG;
    }
    if (!e->last_windows) {
        snprintf(why, why_len, "backward: no completed forward pass");
        return KVQ_ERR_ARG;
    }
    int nb = e->last_windows, T = e->T;
    size_t N = (size_t)nb * T;
    engine_acts *a = &e->a;
    engine_grads *g = &e->g;
    /* Objective: sum over windows of the window's mean NLL over its T-1 predicted positions. */
    for (size_t n = 0; n < N; n++) g->dnll[n] = a->targets[n] < 0 ? 0.0f : 1.0f / (float)(T - 1);
    zero(g->dlogits, N * e->V);
    kvq_crossentropy_backward_f32(g->dlogits, g->dnll, a->logits, a->targets, (int)N, e->V);
    zero(g->dln, N * e->C);
    kvq_matmul_backward_f32(g->dln, g->dlogits, e->m->lm_head, (int)N, e->C, e->V);
    zero(g->dx, N * e->C);
    kvq_rmsnorm_backward_f32(g->dx, g->dln, layer_slot(e, a->x, e->L, e->C), e->m->final_norm, a->rstdf,
                             (int)N, e->C);
    for (int l = e->L - 1; l >= 0; l--) layer_backward(e, l, nb);
    return KVQ_OK;
}

/* ---- accessors ---------------------------------------------------------------------------- */

const kvq_model_config *kvq_engine_config(const kvq_engine *e) { return &e->m->cfg; }
int kvq_engine_batch(const kvq_engine *e) { return e->B; }
int kvq_engine_seq_len(const kvq_engine *e) { return e->T; }
const float *kvq_engine_logits(const kvq_engine *e) { return e->a.logits; }
const float *kvq_engine_nll(const kvq_engine *e) { return e->a.nll; }
const float *kvq_engine_final_hidden(const kvq_engine *e) { return e->a.lnf; }

const float *kvq_engine_hidden_in(const kvq_engine *e, int layer) {
    return layer >= 0 && layer <= e->L ? layer_slot(e, e->a.x, layer, e->C) : NULL;
}

static const float *kv_of(const kvq_engine *e, float *base, int layer) {
    return base && layer >= 0 && layer < e->L ? layer_slot(e, base, layer, e->KVD) : NULL;
}
const float *kvq_engine_k_pre_rope(const kvq_engine *e, int layer) { return kv_of(e, e->a.k_pre, layer); }
const float *kvq_engine_k_post_rope(const kvq_engine *e, int layer) { return kv_of(e, e->a.k_post, layer); }
const float *kvq_engine_v(const kvq_engine *e, int layer) { return kv_of(e, e->a.v, layer); }
const float *kvq_engine_k_pre_rope_grad(const kvq_engine *e, int layer) { return kv_of(e, e->g.dk_pre, layer); }
const float *kvq_engine_v_grad(const kvq_engine *e, int layer) { return kv_of(e, e->g.dv, layer); }
