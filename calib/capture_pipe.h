/* capture_pipe.h — the sample-writing side of the capture loop (capture.c): one window's K, V and
 * Fisher tensors of every captured layer go into the capture file (begin, put_layer per slot,
 * commit), either inline (serial) or on a writer thread so that window i is written while the
 * engine computes window i+1 (docs/engine-gpu.md "Overlapping the file write").
 *
 * Threading rule: HDF5 is not thread-safe in this build, so while a threaded pipe runs, its
 * writer thread is the only thread that touches the kvq_capture_writer (or any HDF5 object);
 * the caller gets the writer back after kvq_capture_pipe_stop. One job at a time: submit, then
 * wait before the next submit or before reusing the job's arrays. Not the file format
 * (capture_h5.h) and not the model loop (capture.h). */
#ifndef KVQ_CAPTURE_PIPE_H
#define KVQ_CAPTURE_PIPE_H

#include <stddef.h>
#include <stdint.h>

#include "capture_h5.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One window for the file. The arrays must stay unchanged until kvq_capture_pipe_wait returns. */
typedef struct kvq_capture_job {
    uint64_t window_start;
    const float *const *tensors;  /* (n_slots, 4) pointers to (seq_len, kv_dim) arrays, per slot K
                                     pre-RoPE, V, then Fisher K, Fisher V (NULL without Fisher) */
    int square;                   /* 1: tensors 2 and 3 are raw gradients; their squares are stored */
} kvq_capture_job;

typedef struct kvq_capture_pipe kvq_capture_pipe;

/* A pipe writing windows of seq_len rows into w (n_slots = meta.n_captured, kv_dim columns).
 * threaded: 1 starts the writer thread (KVQ_ERR_NOMEM naming the reason when it cannot start),
 * 0 writes inside kvq_capture_pipe_submit. square_rows: allocate the squaring scratch
 * (2 x seq_len x kv_dim floats) for jobs with square = 1. The pipe borrows w; it does not close it. */
kvq_status kvq_capture_pipe_start(kvq_capture_pipe **out, kvq_capture_writer *w, uint32_t n_slots, uint32_t seq_len,
                                  uint32_t kv_dim, int threaded, int square, char *why, size_t why_len);
/* Hand one window to the writer (the pipe must be idle: first use, or after a wait). */
void kvq_capture_pipe_submit(kvq_capture_pipe *p, const kvq_capture_job *job);
/* Wait until the submitted window is written and committed. Returns its status (KVQ_OK when
 * nothing was submitted since the last wait); *had_job (may be NULL) is 1 when a window finished
 * (committed or failed). After an error the writer is broken: stop the pipe and close it. */
kvq_status kvq_capture_pipe_wait(kvq_capture_pipe *p, int *had_job, char *why, size_t why_len);
/* Finish the job in flight, end the thread, release everything. Accepts NULL. */
void kvq_capture_pipe_stop(kvq_capture_pipe *p);

#ifdef __cplusplus
}
#endif
#endif
