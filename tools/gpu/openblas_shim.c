/* openblas_shim.c — lets the GPU test and benchmark link against the reference (netlib) BLAS, whose
 * static library is small enough to travel with them to a GPU machine where OpenBLAS is not
 * installed (docs/engine-gpu.md, "Running on a bare GPU machine"). calib/ops.c asks OpenBLAS for a
 * thread count; the reference BLAS is single-threaded, so there is nothing to set. Linked only by
 * that build (ENGINE_GPU_LDLIBS), never into kvq or libkvq. */
void openblas_set_num_threads(int n);
void openblas_set_num_threads(int n) { (void)n; }
