// engine_cuda_backend.cu — the "cuda" (fp32 math) and "cuda-bf16" backends of
// calib/engine_backend.h over the GPU engine (kvq_engine_cuda.h): one window per run, Fisher
// squared on the GPU before the copy to host, two pinned host result sets for the capture loop's
// overlapped file write (select = kvq_gpu_engine_select_host). Linked explicitly into
// build/kvq-cuda, which is what makes calib/engine_backend.c's weak references non-NULL.
#include "engine_backend.h"
#include "kvq_engine_cuda.h"

namespace {

kvq_status init_math(void **eng, const kvq_model *m, int seq_len, int fisher, kvq_gpu_math math, char *why,
                     size_t why_len) {
    kvq_gpu_engine_opts o = {1, seq_len, math, fisher ? 1 : 0, 1, fisher ? 1 : 0, 0, 0};
    return kvq_gpu_engine_init((kvq_gpu_engine **)eng, m, &o, why, why_len);
}
kvq_status init_fp32(void **eng, const kvq_model *m, int seq_len, int fisher, char *why, size_t why_len) {
    return init_math(eng, m, seq_len, fisher, KVQ_GPU_FP32, why, why_len);
}
kvq_status init_bf16(void **eng, const kvq_model *m, int seq_len, int fisher, char *why, size_t why_len) {
    return init_math(eng, m, seq_len, fisher, KVQ_GPU_BF16, why, why_len);
}
void gfree(void *eng) { kvq_gpu_engine_free((kvq_gpu_engine *)eng); }
kvq_status grun(void *eng, const int32_t *tokens, int fisher, double *loss, char *why, size_t why_len) {
    kvq_gpu_engine *e = (kvq_gpu_engine *)eng;
    kvq_status st = kvq_gpu_engine_forward(e, tokens, 1, loss, why, why_len);
    return st || !fisher ? st : kvq_gpu_engine_backward(e, why, why_len);
}
const float *gk(void *eng, int l) { return kvq_gpu_engine_k_pre_rope((kvq_gpu_engine *)eng, l); }
const float *gv(void *eng, int l) { return kvq_gpu_engine_v((kvq_gpu_engine *)eng, l); }
const float *gdk(void *eng, int l) { return kvq_gpu_engine_k_pre_rope_grad((kvq_gpu_engine *)eng, l); }
const float *gdv(void *eng, int l) { return kvq_gpu_engine_v_grad((kvq_gpu_engine *)eng, l); }
kvq_status gselect(void *eng, int set, char *why, size_t why_len) {
    return kvq_gpu_engine_select_host((kvq_gpu_engine *)eng, set, why, why_len);
}

}  // namespace

extern "C" const kvq_engine_backend kvq_engine_backend_cuda = {"cuda", init_fp32, gfree, grun, gk, gv, gdk, gdv, 1,
                                                                gselect};
extern "C" const kvq_engine_backend kvq_engine_backend_cuda_bf16 = {"cuda-bf16", init_bf16, gfree, grun, gk, gv, gdk,
                                                                     gdv, 1, gselect};
