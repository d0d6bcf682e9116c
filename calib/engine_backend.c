/* engine_backend.c — the "cpu" backend (a thin wrapper of calib/engine.h) and the lookup of
 * engine_backend.h. The CUDA backends live in kernels/engine_cuda_backend.cu and are linked only
 * into CUDA-enabled programs (build/kvq-cuda); here they are weak references that stay NULL in
 * a CPU-only build, so libkvq never depends on CUDA. */
#include "engine_backend.h"

#include <stdio.h>
#include <string.h>

#include "engine.h"

extern const kvq_engine_backend kvq_engine_backend_cuda __attribute__((weak));
extern const kvq_engine_backend kvq_engine_backend_cuda_bf16 __attribute__((weak));

static kvq_status cpu_init(void **eng, const kvq_model *m, int seq_len, int fisher, char *why, size_t why_len) {
    kvq_engine_opts o = {1, seq_len, fisher ? 1 : 0};
    return kvq_engine_init((kvq_engine **)eng, m, &o, why, why_len);
}
static void cpu_free(void *eng) { kvq_engine_free(eng); }
static kvq_status cpu_run(void *eng, const int32_t *tokens, int fisher, double *loss, char *why, size_t why_len) {
    kvq_status st = kvq_engine_forward(eng, tokens, 1, loss, why, why_len);
    return st || !fisher ? st : kvq_engine_backward(eng, why, why_len);
}
static const float *cpu_k(void *eng, int l) { return kvq_engine_k_pre_rope(eng, l); }
static const float *cpu_v(void *eng, int l) { return kvq_engine_v(eng, l); }
static const float *cpu_dk(void *eng, int l) { return kvq_engine_k_pre_rope_grad(eng, l); }
static const float *cpu_dv(void *eng, int l) { return kvq_engine_v_grad(eng, l); }

static const kvq_engine_backend cpu_backend = {"cpu", cpu_init, cpu_free, cpu_run, cpu_k, cpu_v, cpu_dk, cpu_dv, 0, NULL};

kvq_status kvq_engine_backend_get(const char *name, const kvq_engine_backend **out, char *why, size_t why_len) {
    *out = NULL;
    const kvq_engine_backend *cuda = &kvq_engine_backend_cuda, *cuda_bf16 = &kvq_engine_backend_cuda_bf16;
    if (!name || !strcmp(name, "cpu")) { *out = &cpu_backend; return KVQ_OK; }
    if (strcmp(name, "cuda") && strcmp(name, "cuda-bf16")) {
        snprintf(why, why_len, "unknown device '%s' (cpu, cuda, cuda-bf16)", name);
        return KVQ_ERR_ARG;
    }
    *out = !strcmp(name, "cuda") ? cuda : cuda_bf16;
    if (*out) return KVQ_OK;
    snprintf(why, why_len, "device '%s': this kvq was built without CUDA (build build/kvq-cuda with `make cuda`)", name);
    return KVQ_ERR_UNSUPPORTED;
}
