// engine_cuda.cu — the CUDA engine's passes (kvq_engine_cuda.h): weight products through cuBLAS,
// the layer forward pass (also used to recompute a layer in the backward pass: only layer inputs
// are kept), chunked logits and cross-entropy, the activation-gradient backward pass, and the
// copies of per-layer K/V/gradients to pinned host memory on a second stream. Same order of
// operations as calib/engine.c. Building and freeing are engine_cuda_init.cu's.
#include "engine_cuda_int.cuh"

#include <string.h>

namespace {

// Weight matrix W (OC, IC) of the engine's stored type, ready for a product in the engine's math:
// fp32 math with half weights converts it into e->a.wconv first.
kvq_status weight_f32(kvq_gpu_engine *e, const void *W, size_t n, const void **out, char *why, size_t why_len) {
    if (e->opts.math == KVQ_GPU_BF16 || e->wtype == KVQ_CU_F32) { *out = W; return KVQ_OK; }
    kvq_cu_to_f32(e->a.wconv, W, e->wtype, n, e->s);
    CU_TRY(cudaGetLastError());
    *out = e->a.wconv;
    return KVQ_OK;
}

// X (rows, cols) as a GEMM operand: itself in fp32 math, converted to bf16 in bf16 math.
const void *operand(kvq_gpu_engine *e, const float *X, size_t n) {
    if (e->opts.math != KVQ_GPU_BF16) return X;
    kvq_cu_from_f32(e->a.op16, KVQ_CU_BF16, X, n, e->s);
    return e->a.op16;
}

cudaDataType_t dtype(kvq_gpu_engine *e) { return e->opts.math == KVQ_GPU_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// out (N, OC) = beta*out + in (N, IC) W^T   [column-major: out^T = W^T-view (op T) x in^T]
kvq_status lin_fwd(kvq_gpu_engine *e, float *out, const float *in, const void *W, int N, int IC, int OC, float beta,
                   char *why, size_t why_len) {
    const void *w, *x;
    KVQ_TRY(weight_f32(e, W, (size_t)OC * IC, &w, why, why_len));
    x = operand(e, in, (size_t)N * IC);
    const float one = 1.0f;
    CUBLAS_TRY(cublasGemmEx(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &one, w, dtype(e), IC, x, dtype(e), IC, &beta,
                            out, CUDA_R_32F, OC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return KVQ_OK;
}

// dinp (N, IC) = beta*dinp + dout (N, OC) W
kvq_status lin_bwd(kvq_gpu_engine *e, float *dinp, const float *dout, const void *W, int N, int IC, int OC, float beta,
                   char *why, size_t why_len) {
    const void *w, *g;
    KVQ_TRY(weight_f32(e, W, (size_t)OC * IC, &w, why, why_len));
    g = operand(e, dout, (size_t)N * OC);
    const float one = 1.0f;
    CUBLAS_TRY(cublasGemmEx(e->blas, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &one, w, dtype(e), IC, g, dtype(e), OC, &beta,
                            dinp, CUDA_R_32F, IC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return KVQ_OK;
}

kvq_status lin_bias(kvq_gpu_engine *e, float *out, const float *in, const void *W, const float *bias, int N, int IC,
                    int OC, char *why, size_t why_len) {
    KVQ_TRY(lin_fwd(e, out, in, W, N, IC, OC, 0.0f, why, why_len));
    if (bias) kvq_cu_add_bias(out, bias, N, OC, e->s);
    return KVQ_OK;
}

float *xl(kvq_gpu_engine *e, int l) { return e->a.x + (size_t)l * e->B * e->T * e->C; }
size_t host_off(kvq_gpu_engine *e, int l) { return (size_t)l * e->B * e->T * e->KVD; }

// Copy two (N, KVD) device tensors of slot `slot` to host[l] on the copy stream, after the compute
// stream has written them; the slot is free again once e->freed[slot] fires.
kvq_status copy_pair(kvq_gpu_engine *e, int slot, const float *d1, const float *d2, float *h1, float *h2, int l, int N,
                     char *why, size_t why_len) {
    size_t bytes = (size_t)N * e->KVD * 4;
    CU_TRY(cudaEventRecord(e->ready[slot], e->s));
    CU_TRY(cudaStreamWaitEvent(e->cs, e->ready[slot], 0));
    CU_TRY(cudaMemcpyAsync(h1 + host_off(e, l), d1, bytes, cudaMemcpyDeviceToHost, e->cs));
    CU_TRY(cudaMemcpyAsync(h2 + host_off(e, l), d2, bytes, cudaMemcpyDeviceToHost, e->cs));
    CU_TRY(cudaEventRecord(e->freed[slot], e->cs));
    return KVQ_OK;
}

enum { FORWARD = 0, RECOMPUTE = 1 };

// Layer l over nb windows. FORWARD writes x[l+1] and copies K pre-RoPE and V; RECOMPUTE stops
// after the MLP activations (what the backward pass reads) and copies nothing.
kvq_status layer_forward(kvq_gpu_engine *e, int l, int nb, int mode, char *why, size_t why_len) {
    const gpu_layer *w = &e->layers[l];
    gpu_acts *a = &e->a;
    int N = nb * e->T, slot = l & 1, copy = mode == FORWARD && e->opts.copy_back;
    kvq_cu_rmsnorm_forward(a->ln, a->rstd1, xl(e, l), w->attn_norm, e->eps, N, e->C, e->s);
    KVQ_TRY(lin_bias(e, a->q, a->ln, w->wq, w->bq, N, e->C, e->QD, why, why_len));
    if (copy) CU_TRY(cudaStreamWaitEvent(e->s, e->freed[slot], 0));
    KVQ_TRY(lin_bias(e, a->k[slot], a->ln, w->wk, w->bk, N, e->C, e->KVD, why, why_len));
    KVQ_TRY(lin_bias(e, a->v[slot], a->ln, w->wv, w->bv, N, e->C, e->KVD, why, why_len));
    if (copy) KVQ_TRY(copy_pair(e, slot, a->k[slot], a->v[slot], e->h_k, e->h_v, l, N, why, why_len));
    kvq_cu_rope_forward(a->q, a->q, a->cos_t, a->sin_t, nb, e->T, e->NH, e->hd, e->s);
    kvq_cu_rope_forward(a->kpost, a->k[slot], a->cos_t, a->sin_t, nb, e->T, e->NKV, e->hd, e->s);
    CUBLAS_TRY(kvq_cu_attention_forward(e->blas, e->opts.math == KVQ_GPU_BF16, a->att, a->lse, a->q, a->kpost,
                                        a->v[slot], a->scratch, e->R, nb, e->T, e->NH, e->NKV, e->hd, e->s));
    KVQ_TRY(lin_fwd(e, a->branch, a->att, w->wo, N, e->QD, e->C, 0.0f, why, why_len));
    kvq_cu_residual_forward(a->xmid, xl(e, l), a->branch, (size_t)N * e->C, e->s);
    kvq_cu_rmsnorm_forward(a->ln, a->rstd2, a->xmid, w->mlp_norm, e->eps, N, e->C, e->s);
    KVQ_TRY(lin_fwd(e, a->gate, a->ln, w->w_gate, N, e->C, e->I, 0.0f, why, why_len));
    KVQ_TRY(lin_fwd(e, a->up, a->ln, w->w_up, N, e->C, e->I, 0.0f, why, why_len));
    if (mode == FORWARD) {
        kvq_cu_swiglu_forward(a->act, a->gate, a->up, (size_t)N * e->I, e->s);
        KVQ_TRY(lin_fwd(e, a->branch, a->act, w->w_down, N, e->I, e->C, 0.0f, why, why_len));
        kvq_cu_residual_forward(xl(e, l + 1), a->xmid, a->branch, (size_t)N * e->C, e->s);
    }
    CU_TRY(cudaGetLastError());
    return KVQ_OK;
}

kvq_status sync_both(kvq_gpu_engine *e, char *why, size_t why_len) {
    CU_TRY(cudaStreamSynchronize(e->s));
    CU_TRY(cudaStreamSynchronize(e->cs));
    return KVQ_OK;
}

}  // namespace

extern "C" kvq_status kvq_gpu_engine_forward(kvq_gpu_engine *e, const int32_t *tokens, int n_windows, double *loss,
                                             char *why, size_t why_len) {
    if (!e || !tokens || n_windows < 1 || n_windows > e->B) {
        snprintf(why, why_len, "forward: %d windows for an engine of batch %d", n_windows, e ? e->B : 0);
        return KVQ_ERR_ARG;
    }
    e->last_windows = 0;
    int T = e->T, N = n_windows * T;
    for (int n = 0; n < N; n++)
        if (tokens[n] < 0 || tokens[n] >= e->V) {
            snprintf(why, why_len, "token %d at window %d position %d is outside [0, %d)", (int)tokens[n], n / T,
                     n % T, e->V);
            return KVQ_ERR_ARG;
        }
    gpu_acts *a = &e->a;
    CU_TRY(cudaMemcpyAsync(a->tokens, tokens, (size_t)N * 4, cudaMemcpyHostToDevice, e->s));
    for (int n = 0; n < N; n++) e->h_tok[n] = n % T == T - 1 ? -1 : tokens[n + 1];
    CU_TRY(cudaMemcpyAsync(a->targets, e->h_tok, (size_t)N * 4, cudaMemcpyHostToDevice, e->s));
    kvq_cu_embed(xl(e, 0), a->tokens, e->tok_embed, e->wtype, N, e->C, e->s);
    for (int l = 0; l < e->L; l++) KVQ_TRY(layer_forward(e, l, n_windows, FORWARD, why, why_len));
    kvq_cu_rmsnorm_forward(a->ln, a->rstd1, xl(e, e->L), e->final_norm, e->eps, N, e->C, e->s);
    for (int r0 = 0; r0 < N; r0 += e->RL) {
        int rows = N - r0 < e->RL ? N - r0 : e->RL;
        KVQ_TRY(lin_fwd(e, a->logits, a->ln + (size_t)r0 * e->C, e->lm_head, rows, e->C, e->V, 0.0f, why, why_len));
        kvq_cu_ce_forward(a->nll + r0, a->logits, a->targets + r0, rows, e->V, e->s);
    }
    CU_TRY(cudaMemcpyAsync(e->h_nll, a->nll, (size_t)N * 4, cudaMemcpyDeviceToHost, e->s));
    CU_TRY(cudaGetLastError());
    KVQ_TRY(sync_both(e, why, why_len));
    if (loss) {
        double sum = 0;
        for (int n = 0; n < N; n++) sum += e->h_nll[n];
        *loss = sum / ((double)n_windows * (T - 1));
    }
    e->last_windows = n_windows;
    return KVQ_OK;
}

namespace {

// On entry a->dx holds dL/dx[l+1]; on exit dL/dx[l]. Fills dk[slot], dv[slot] and copies them.
kvq_status layer_backward(kvq_gpu_engine *e, int l, int nb, char *why, size_t why_len) {
    const gpu_layer *w = &e->layers[l];
    gpu_acts *a = &e->a;
    int N = nb * e->T, slot = l & 1;
    size_t nI = (size_t)N * e->I, nK = (size_t)N * e->KVD, nQ = (size_t)N * e->QD;
    KVQ_TRY(layer_forward(e, l, nb, RECOMPUTE, why, why_len));
    // MLP: x[l+1] = xmid + down(silu(gate(n)) * up(n)), n = rmsnorm(xmid).
    KVQ_TRY(lin_bwd(e, a->act, a->dx, w->w_down, N, e->I, e->C, 0.0f, why, why_len));   // act := dact
    CU_TRY(cudaMemsetAsync(a->dgate, 0, nI * 4, e->s));
    CU_TRY(cudaMemsetAsync(a->dup, 0, nI * 4, e->s));
    kvq_cu_swiglu_backward(a->dgate, a->dup, a->act, a->gate, a->up, nI, e->s);
    KVQ_TRY(lin_bwd(e, a->dln, a->dgate, w->w_gate, N, e->C, e->I, 0.0f, why, why_len));
    KVQ_TRY(lin_bwd(e, a->dln, a->dup, w->w_up, N, e->C, e->I, 1.0f, why, why_len));
    kvq_cu_rmsnorm_backward(a->dx, a->dln, a->xmid, w->mlp_norm, a->rstd2, N, e->C, e->s);   // dx := dL/dxmid
    // Attention: xmid = x + o(attention(rope(q(n)), rope(k(n)), v(n))), n = rmsnorm(x).
    KVQ_TRY(lin_bwd(e, a->att, a->dx, w->wo, N, e->QD, e->C, 0.0f, why, why_len));        // att := datt
    CU_TRY(cudaMemsetAsync(a->dq, 0, nQ * 4, e->s));
    CU_TRY(cudaMemsetAsync(a->dkpost, 0, nK * 4, e->s));
    if (e->opts.copy_back) CU_TRY(cudaStreamWaitEvent(e->s, e->freed[slot], 0));
    CU_TRY(cudaMemsetAsync(a->dv[slot], 0, nK * 4, e->s));
    CUBLAS_TRY(kvq_cu_attention_backward(e->blas, e->opts.math == KVQ_GPU_BF16, a->dq, a->dkpost, a->dv[slot], a->att,
                                         a->q, a->kpost, a->v[slot], a->lse, a->scratch, e->R, nb, e->T, e->NH,
                                         e->NKV, e->hd, e->s));
    CU_TRY(cudaMemsetAsync(a->dk[slot], 0, nK * 4, e->s));
    kvq_cu_rope_backward(a->dk[slot], a->dkpost, a->cos_t, a->sin_t, nb, e->T, e->NKV, e->hd, e->s);
    CU_TRY(cudaMemsetAsync(a->q, 0, nQ * 4, e->s));                                         // q := dq pre-RoPE
    kvq_cu_rope_backward(a->q, a->dq, a->cos_t, a->sin_t, nb, e->T, e->NH, e->hd, e->s);
    KVQ_TRY(lin_bwd(e, a->dln, a->q, w->wq, N, e->C, e->QD, 0.0f, why, why_len));
    KVQ_TRY(lin_bwd(e, a->dln, a->dk[slot], w->wk, N, e->C, e->KVD, 1.0f, why, why_len));
    KVQ_TRY(lin_bwd(e, a->dln, a->dv[slot], w->wv, N, e->C, e->KVD, 1.0f, why, why_len));
    kvq_cu_rmsnorm_backward(a->dx, a->dln, xl(e, l), w->attn_norm, a->rstd1, N, e->C, e->s);
    if (e->opts.copy_back) {
        if (e->opts.fisher) {
            kvq_cu_square(a->dk[slot], nK, e->s);
            kvq_cu_square(a->dv[slot], nK, e->s);
        }
        KVQ_TRY(copy_pair(e, slot, a->dk[slot], a->dv[slot], e->h_dk, e->h_dv, l, N, why, why_len));
    }
    CU_TRY(cudaGetLastError());
    return KVQ_OK;
}

}  // namespace

extern "C" kvq_status kvq_gpu_engine_backward(kvq_gpu_engine *e, char *why, size_t why_len) {
    if (!e || !e->opts.backward) {
        snprintf(why, why_len, "backward: GPU engine built without opts.backward");
        return KVQ_ERR_ARG;
    }
    if (!e->last_windows) {
        snprintf(why, why_len, "backward: no completed forward pass");
        return KVQ_ERR_ARG;
    }
    int nb = e->last_windows, T = e->T, N = nb * T;
    gpu_acts *a = &e->a;
    // Objective: sum over windows of the window's mean NLL over its T-1 predicted positions.
    for (int n = 0; n < N; n++) e->h_nll[n] = n % T == T - 1 ? 0.0f : 1.0f / (float)(T - 1);
    CU_TRY(cudaMemcpyAsync(a->dnll, e->h_nll, (size_t)N * 4, cudaMemcpyHostToDevice, e->s));
    kvq_cu_rmsnorm_forward(a->ln, a->rstd1, xl(e, e->L), e->final_norm, e->eps, N, e->C, e->s);
    for (int r0 = 0; r0 < N; r0 += e->RL) {
        int rows = N - r0 < e->RL ? N - r0 : e->RL;
        KVQ_TRY(lin_fwd(e, a->logits, a->ln + (size_t)r0 * e->C, e->lm_head, rows, e->C, e->V, 0.0f, why, why_len));
        kvq_cu_ce_backward_inplace(a->logits, a->dnll + r0, a->targets + r0, rows, e->V, e->s);
        KVQ_TRY(lin_bwd(e, a->dln + (size_t)r0 * e->C, a->logits, e->lm_head, rows, e->C, e->V, 0.0f, why, why_len));
    }
    CU_TRY(cudaMemsetAsync(a->dx, 0, (size_t)N * e->C * 4, e->s));
    kvq_cu_rmsnorm_backward(a->dx, a->dln, xl(e, e->L), e->final_norm, a->rstd1, N, e->C, e->s);
    for (int l = e->L - 1; l >= 0; l--) KVQ_TRY(layer_backward(e, l, nb, why, why_len));
    // h_nll was overwritten by the upload of dnll above: restore the per-position NLL.
    CU_TRY(cudaMemcpyAsync(e->h_nll, a->nll, (size_t)N * 4, cudaMemcpyDeviceToHost, e->s));
    return sync_both(e, why, why_len);
}

extern "C" const float *kvq_gpu_engine_nll(const kvq_gpu_engine *e) { return e->h_nll; }

static const float *host_of(const kvq_gpu_engine *e, const float *base, int layer) {
    return base && layer >= 0 && layer < e->L ? base + (size_t)layer * e->B * e->T * e->KVD : NULL;
}
extern "C" const float *kvq_gpu_engine_k_pre_rope(const kvq_gpu_engine *e, int l) { return host_of(e, e->h_k, l); }
extern "C" const float *kvq_gpu_engine_v(const kvq_gpu_engine *e, int l) { return host_of(e, e->h_v, l); }
extern "C" const float *kvq_gpu_engine_k_pre_rope_grad(const kvq_gpu_engine *e, int l) { return host_of(e, e->h_dk, l); }
extern "C" const float *kvq_gpu_engine_v_grad(const kvq_gpu_engine *e, int l) { return host_of(e, e->h_dv, l); }
