/* ops_impl.h — the bodies of the ops declared in ops.h, written once in terms of REAL and
 * instantiated twice by ops.c (REAL = float, suffix _f32, cblas_sgemm; REAL = double, suffix _f64,
 * cblas_dgemm). Private to ops.c: not a header to include anywhere else. Reductions (sums of
 * squares, softmax denominators) accumulate in double in both instantiations. Loops over rows are
 * OpenMP-parallel when they hold at least OPS_PAR_MIN elements (smaller ones are not worth waking
 * threads on a busy machine); each row is computed by one thread in a fixed order, so results do not
 * depend on the thread count. BLAS calls run outside parallel regions (OpenBLAS threads them). */

#define OPS_CAT_(a, b) a##b
#define OPS_CAT(a, b) OPS_CAT_(a, b)
#define OP(name) OPS_CAT(name, OPS_SUFFIX)

void OP(kvq_embed_forward)(REAL *out, const int32_t *tokens, const REAL *table, int N, int C) {
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, table + (size_t)tokens[n] * C, (size_t)C * sizeof(REAL));
}

void OP(kvq_matmul_forward)(REAL *out, const REAL *inp, const REAL *weight, const REAL *bias,
                            int N, int IC, int OC) {
    OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1, inp, IC, weight, IC, 0, out, OC);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= OPS_PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += bias[o];
}

void OP(kvq_matmul_backward)(REAL *dinp, const REAL *dout, const REAL *weight, int N, int IC, int OC) {
    OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1, dout, OC, weight, IC, 1, dinp, IC);
}

void OP(kvq_rmsnorm_forward)(REAL *out, REAL *rstd, const REAL *inp, const REAL *weight, REAL eps,
                             int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C >= OPS_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *x = inp + (size_t)n * C;
        REAL *y = out + (size_t)n * C;
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        REAL r = (REAL)(1.0 / sqrt(ss / C + (double)eps));
        for (int i = 0; i < C; i++) y[i] = weight[i] * (x[i] * r);
        rstd[n] = r;
    }
}

/* y = w*x*r with r = (mean(x^2)+eps)^-1/2, dr/dx_j = -r^3 x_j / C, hence
 * dx_j = r w_j g_j - (r^3 / C) x_j sum_i g_i w_i x_i. */
void OP(kvq_rmsnorm_backward)(REAL *dinp, const REAL *dout, const REAL *inp, const REAL *weight,
                              const REAL *rstd, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C >= OPS_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        REAL *dx = dinp + (size_t)n * C;
        double dot = 0;
        for (int i = 0; i < C; i++) dot += (double)g[i] * weight[i] * x[i];
        REAL r = rstd[n];
        REAL c = (REAL)(dot * r * r * r / C);
        for (int i = 0; i < C; i++) dx[i] += r * weight[i] * g[i] - c * x[i];
    }
}

void OP(kvq_rope_forward)(REAL *out, const REAL *inp, const REAL *cos_t, const REAL *sin_t,
                          int B, int T, int NH, int hd) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)B * T * NH * hd >= OPS_PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        const REAL *c = cos_t + (size_t)(bt % T) * half, *s = sin_t + (size_t)(bt % T) * half;
        for (int h = 0; h < NH; h++) {
            const REAL *x = inp + ((size_t)bt * NH + h) * hd;
            REAL *y = out + ((size_t)bt * NH + h) * hd;
            for (int i = 0; i < half; i++) {
                REAL a = x[i], b = x[i + half];
                y[i] = a * c[i] - b * s[i];
                y[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

void OP(kvq_rope_backward)(REAL *dinp, const REAL *dout, const REAL *cos_t, const REAL *sin_t,
                           int B, int T, int NH, int hd) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)B * T * NH * hd >= OPS_PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        const REAL *c = cos_t + (size_t)(bt % T) * half, *s = sin_t + (size_t)(bt % T) * half;
        for (int h = 0; h < NH; h++) {
            const REAL *g = dout + ((size_t)bt * NH + h) * hd;
            REAL *dx = dinp + ((size_t)bt * NH + h) * hd;
            for (int i = 0; i < half; i++) {
                dx[i] += g[i] * c[i] + g[i + half] * s[i];
                dx[i + half] += g[i + half] * c[i] - g[i] * s[i];
            }
        }
    }
}

/* Attention works on blocks of KVQ_ATT_BLOCK query rows [r0, r0+rows): causality means they only
 * see key positions [0, r0+rows), so the (rows, cols) score block skips most of the masked
 * triangle. */
/* Turn the score block S (rows, cols), row i at position r0+i, into causal probabilities in place
 * and keep each row's log-sum-exp in lse (rows). */
static void OP(attn_probs)(REAL *S, REAL *lse, int r0, int rows, int cols) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= OPS_PAR_MIN)
    for (int i = 0; i < rows; i++) {
        REAL *s = S + (size_t)i * cols;
        int valid = r0 + i + 1;
        REAL mx = s[0];
        for (int j = 1; j < valid; j++) mx = s[j] > mx ? s[j] : mx;
        double sum = 0;
        for (int j = 0; j < valid; j++) { s[j] = OPS_EXP(s[j] - mx); sum += s[j]; }
        REAL inv = (REAL)(1.0 / sum);
        for (int j = 0; j < valid; j++) s[j] *= inv;
        for (int j = valid; j < cols; j++) s[j] = 0;
        lse[i] = mx + (REAL)log(sum);
    }
}

/* The same probabilities rebuilt from the scores and the log-sum-exp kept by the forward pass. */
static void OP(attn_probs_again)(REAL *S, const REAL *lse, int r0, int rows, int cols) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= OPS_PAR_MIN)
    for (int i = 0; i < rows; i++) {
        REAL *s = S + (size_t)i * cols;
        int valid = r0 + i + 1;
        for (int j = 0; j < valid; j++) s[j] = OPS_EXP(s[j] - lse[i]);
        for (int j = valid; j < cols; j++) s[j] = 0;
    }
}

void OP(kvq_attention_forward)(REAL *out, REAL *lse, const REAL *q, const REAL *k, const REAL *v,
                               REAL *scratch, int B, int T, int NH, int NKV, int hd) {
    int qd = NH * hd, kd = NKV * hd, rep = NH / NKV;
    REAL scale = (REAL)(1.0 / sqrt((double)hd));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const REAL *qh = q + (size_t)b * T * qd + (size_t)h * hd;           /* (T, hd) stride qd */
            const REAL *kh = k + (size_t)b * T * kd + (size_t)(h / rep) * hd;   /* (T, hd) stride kd */
            const REAL *vh = v + (size_t)b * T * kd + (size_t)(h / rep) * hd;   /* (T, hd) stride kd */
            REAL *oh = out + (size_t)b * T * qd + (size_t)h * hd;               /* (T, hd) stride qd */
            REAL *lh = lse + ((size_t)b * NH + h) * T;                          /* (T) */
            for (int r0 = 0; r0 < T; r0 += KVQ_ATT_BLOCK) {
                int rows = T - r0 < KVQ_ATT_BLOCK ? T - r0 : KVQ_ATT_BLOCK, cols = r0 + rows;
                OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, hd, scale,
                         qh + (size_t)r0 * qd, qd, kh, kd, 0, scratch, cols);
                OP(attn_probs)(scratch, lh + r0, r0, rows, cols);
                OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, cols, 1,
                         scratch, cols, vh, kd, 0, oh + (size_t)r0 * qd, qd);
            }
        }
}

/* O = P V, P = softmax(S), S = scale Q K^T (causal). With dO given:
 * dV += P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(P * dP));  dQ += scale dS K;  dK += scale dS^T Q.
 * The K/V head shared by a group of query heads accumulates the group's contributions. */
void OP(kvq_attention_backward)(REAL *dq, REAL *dk, REAL *dv, const REAL *dout, const REAL *q,
                                const REAL *k, const REAL *v, const REAL *lse, REAL *scratch,
                                int B, int T, int NH, int NKV, int hd) {
    int qd = NH * hd, kd = NKV * hd, rep = NH / NKV;
    REAL scale = (REAL)(1.0 / sqrt((double)hd));
    size_t block = (size_t)(T < KVQ_ATT_BLOCK ? T : KVQ_ATT_BLOCK) * T;
    REAL *P = scratch, *dS = scratch + block;   /* (rows, cols) blocks, rows*cols <= block */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qoff = (size_t)b * T * qd + (size_t)h * hd;
            size_t koff = (size_t)b * T * kd + (size_t)(h / rep) * hd;
            const REAL *lh = lse + ((size_t)b * NH + h) * T;
            for (int r0 = 0; r0 < T; r0 += KVQ_ATT_BLOCK) {
                int rows = T - r0 < KVQ_ATT_BLOCK ? T - r0 : KVQ_ATT_BLOCK, cols = r0 + rows;
                size_t qrow = qoff + (size_t)r0 * qd;
                OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, hd, scale,
                         q + qrow, qd, k + koff, kd, 0, P, cols);
                OP(attn_probs_again)(P, lh + r0, r0, rows, cols);
                OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, hd, 1,
                         dout + qrow, qd, v + koff, kd, 0, dS, cols);
                OPS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, cols, hd, rows, 1,
                         P, cols, dout + qrow, qd, 1, dv + koff, kd);
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= OPS_PAR_MIN)
                for (int i = 0; i < rows; i++) {
                    const REAL *p = P + (size_t)i * cols;
                    REAL *d = dS + (size_t)i * cols;
                    double dot = 0;
                    for (int j = 0; j < cols; j++) dot += (double)p[j] * d[j];
                    for (int j = 0; j < cols; j++) d[j] = p[j] * (d[j] - (REAL)dot);
                }
                OPS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, cols, scale,
                         dS, cols, k + koff, kd, 1, dq + qrow, qd);
                OPS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, cols, hd, rows, scale,
                         dS, cols, q + qrow, qd, 1, dk + koff, kd);
            }
        }
}

void OP(kvq_swiglu_forward)(REAL *out, const REAL *gate, const REAL *up, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        REAL g = gate[i];
        out[i] = g / (1 + OPS_EXP(-g)) * up[i];
    }
}

/* d silu(g)/dg = s (1 + g (1 - s)), s = sigmoid(g). */
void OP(kvq_swiglu_backward)(REAL *dgate, REAL *dup, const REAL *dout, const REAL *gate,
                             const REAL *up, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        REAL g = gate[i], s = 1 / (1 + OPS_EXP(-g));
        dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s));
        dup[i] += dout[i] * g * s;
    }
}

void OP(kvq_residual_forward)(REAL *out, const REAL *a, const REAL *b, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void OP(kvq_residual_backward)(REAL *da, REAL *db, const REAL *dout, size_t n) {
#pragma omp parallel for schedule(static) if (n >= OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* log-sum-exp of one row, max-subtracted, summed in double. */
static double OP(row_logsumexp)(const REAL *x, int V) {
    REAL mx = x[0];
    for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    double sum = 0;
    for (int j = 0; j < V; j++) sum += OPS_EXP(x[j] - mx);
    return (double)mx + log(sum);
}

void OP(kvq_crossentropy_forward)(REAL *nll, const REAL *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for schedule(static) if ((size_t)N * V >= OPS_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const REAL *x = logits + (size_t)n * V;
        nll[n] = targets[n] < 0 ? 0 : (REAL)(OP(row_logsumexp)(x, V) - x[targets[n]]);
    }
}

void OP(kvq_crossentropy_backward)(REAL *dlogits, const REAL *dnll, const REAL *logits,
                                   const int32_t *targets, int N, int V) {
#pragma omp parallel for schedule(static) if ((size_t)N * V >= OPS_PAR_MIN)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0 || dnll[n] == 0) continue;
        const REAL *x = logits + (size_t)n * V;
        REAL *dx = dlogits + (size_t)n * V;
        REAL lse = (REAL)OP(row_logsumexp)(x, V), g = dnll[n];
        for (int j = 0; j < V; j++) dx[j] += g * OPS_EXP(x[j] - lse);
        dx[targets[n]] -= g;
    }
}

#undef OP
#undef OPS_CAT
#undef OPS_CAT_
