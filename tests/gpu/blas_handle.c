/* blas_handle.c — a cuBLAS handle for the GPU test's direct attention calls (the engine makes its
 * own). Kept apart so the test's main file needs only the CUDA runtime header. */
#include <cublas_v2.h>

int kvq_cu_test_blas_create(void **h) {
    cublasHandle_t b;
    cublasStatus_t st = cublasCreate(&b);
    *h = st == CUBLAS_STATUS_SUCCESS ? b : NULL;
    return (int)st;
}

void kvq_cu_test_blas_destroy(void *h) {
    if (h) cublasDestroy((cublasHandle_t)h);
}
