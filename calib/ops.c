/* ops.c — RoPE frequency tables, and the float and double instantiations of the op pairs whose
 * single body is ops_impl.h. Not the engine (engine.c) and not a BLAS: matrix products go to
 * OpenBLAS. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Process-wide thread policy: a count fixed by kvq_ops_set_threads, else (at the first engine,
 * kvq_ops_auto_threads) the environment's OMP_NUM_THREADS / OPENBLAS_NUM_THREADS when set, else
 * the cores not busy by the 1-minute load average (at least 1). */
static int threads_decided;

static void apply_threads(int n) {
    openblas_set_num_threads(n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

void kvq_ops_set_threads(int n) {
    threads_decided = n > 0;
    if (n > 0) apply_threads(n);
}

void kvq_ops_auto_threads(void) {
    if (threads_decided) return;
    threads_decided = 1;
    if (getenv("OMP_NUM_THREADS") || getenv("OPENBLAS_NUM_THREADS")) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double load = 0;
    long n = cores - (getloadavg(&load, 1) == 1 ? (long)(load + 0.5) : 0);
    apply_threads((int)(n < 1 ? 1 : n > cores ? cores : n));
}

kvq_status kvq_rope_inv_freq(double *inv_freq, const kvq_model_config *cfg) {
    int hd = cfg->head_dim, half = hd / 2;
    if (hd < 2 || hd % 2 || !(cfg->rope_theta > 0)) return KVQ_ERR_ARG;
    double factor = cfg->rope_scaling == KVQ_ROPE_SCALING_NONE ? 1.0 : (double)cfg->rope_scaling_factor;
    if (!(factor > 0)) return KVQ_ERR_ARG;
    for (int i = 0; i < half; i++) inv_freq[i] = pow((double)cfg->rope_theta, -2.0 * i / hd);
    if (cfg->rope_scaling == KVQ_ROPE_SCALING_LINEAR) {
        for (int i = 0; i < half; i++) inv_freq[i] /= factor;
    } else if (cfg->rope_scaling == KVQ_ROPE_SCALING_LLAMA3) {
        /* Wavelengths longer than original_max/low_freq are slowed by `factor`, shorter than
         * original_max/high_freq kept, and those between interpolated smoothly (HF "llama3"). */
        double lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
        double old_len = cfg->rope_original_max_pos;
        if (!(hi > lo) || !(lo > 0) || !(old_len > 0)) return KVQ_ERR_ARG;
        for (int i = 0; i < half; i++) {
            double wavelen = 2 * M_PI / inv_freq[i];
            if (wavelen > old_len / lo) {
                inv_freq[i] /= factor;
            } else if (wavelen >= old_len / hi) {
                double smooth = (old_len / wavelen - lo) / (hi - lo);
                inv_freq[i] = (1 - smooth) * inv_freq[i] / factor + smooth * inv_freq[i];
            }
        }
    } else if (cfg->rope_scaling != KVQ_ROPE_SCALING_NONE) {
        return KVQ_ERR_UNSUPPORTED;
    }
    return KVQ_OK;
}

void kvq_rope_tables_f32(float *cos_t, float *sin_t, const double *inv_freq, int T, int head_dim) {
    int half = head_dim / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double a = (double)t * inv_freq[i];
            cos_t[(size_t)t * half + i] = (float)cos(a);
            sin_t[(size_t)t * half + i] = (float)sin(a);
        }
}

void kvq_rope_tables_f64(double *cos_t, double *sin_t, const double *inv_freq, int T, int head_dim) {
    int half = head_dim / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double a = (double)t * inv_freq[i];
            cos_t[(size_t)t * half + i] = cos(a);
            sin_t[(size_t)t * half + i] = sin(a);
        }
}

enum { OPS_PAR_MIN = 1 << 15 };    /* elements below which a row loop runs on one thread */

#define REAL float
#define OPS_SUFFIX _f32
#define OPS_GEMM cblas_sgemm
#define OPS_EXP expf
#include "ops_impl.h"
#undef REAL
#undef OPS_SUFFIX
#undef OPS_GEMM
#undef OPS_EXP

#define REAL double
#define OPS_SUFFIX _f64
#define OPS_GEMM cblas_dgemm
#define OPS_EXP exp
#include "ops_impl.h"
#undef REAL
#undef OPS_SUFFIX
#undef OPS_GEMM
#undef OPS_EXP
