/* rt_check.h — the fatal checks shared by the CUDA runtime's GPU test (test_rt.c) and benchmark
 * (bench_rt.cu): a failed CUDA call or kvq_rt_* status prints where and why, then exits 2. OKST
 * reads the caller's `why` buffer. Include after the CUDA runtime header and kvq_rt.h. */
#ifndef KVQ_RT_CHECK_H
#define KVQ_RT_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CU(call)                                                                                        \
    do {                                                                                                \
        cudaError_t e_ = (call);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            fprintf(stderr, "FATAL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(2);                                                                                    \
        }                                                                                               \
    } while (0)
#define OKST(call)                                                                                          \
    do {                                                                                                    \
        kvq_status s_ = (call);                                                                             \
        if (s_ != KVQ_OK) {                                                                                 \
            fprintf(stderr, "FATAL %s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call, kvq_status_name(s_), why); \
            exit(2);                                                                                        \
        }                                                                                                   \
    } while (0)

#endif
