/* capture.h — the calibration capture loop behind `kvq capture`: tokenize a text, draw seeded
 * windows, run the fp32 engine forward (and backward for Fisher) one window at a time, and append
 * each window's pre-RoPE K, V and Fisher tensors to a capture file (capture_h5.h,
 * docs/capture-format.md). By default window i is written (on a writer thread, capture_pipe.h)
 * while window i+1 computes, at the cost of a second window's host buffers; the file is the same
 * either way. Memory is bounded by one or two windows, whatever the number of samples. Not the
 * file layer (capture_h5.h) and not the engine (engine.h). */
#ifndef KVQ_CAPTURE_H
#define KVQ_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "capture_h5.h"
#include "kvq_model.h"
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called after each committed sample (and once with done == start before the first). */
typedef void (*kvq_capture_progress_fn)(void *user, uint32_t done, uint32_t total, double loss,
                                        double seconds);

typedef struct kvq_capture_opts {
    const char *model_path;       /* HF directory, .gguf or llama2.c .bin */
    const char *text_path;        /* calibration text (UTF-8) */
    const char *tokenizer_path;   /* NULL: the model's own (kvq_tokenizer_load_for_model) */
    const char *out_path;
    uint32_t samples;             /* windows (default 16) */
    uint32_t seq_len;             /* tokens per window (default 2048) */
    uint64_t seed;                /* window RNG seed (default 0) */
    int fisher;                   /* 1: backward pass and fisher_k / fisher_v (default) */
    kvq_capture_dtype dtype;      /* storage type (default F32) */
    int compress;                 /* gzip level 0..9 (default 0) */
    uint32_t n_layers;            /* 0: every layer; else the first n_layers entries of layers[] */
    uint32_t layers[KVQ_CAPTURE_MAX_LAYERS];
    int resume;                   /* continue out_path if it exists (create it otherwise) */
    int threads;                  /* engine threads; <= 0 keeps the engine's default */
    const char *device;           /* engine backend (engine_backend.h): NULL or "cpu", "cuda", "cuda-bf16" */
    int overlap;                  /* 1 (default): write window i while window i+1 computes, holding a
                                     second window's results in host memory (result.overlap_bytes);
                                     0: compute, write, commit, one window at a time */
    kvq_capture_progress_fn progress;
    void *progress_user;
} kvq_capture_opts;

typedef struct kvq_capture_result {
    uint32_t samples_total;       /* committed samples in the file at the end */
    uint32_t samples_resumed;     /* of which were already there (--resume) */
    uint64_t text_tokens;
    double seconds;               /* model run + writing of the new samples */
    double engine_seconds;        /* of which the engine's runs (overlap: the rest is the wait for
                                     the writer, so seconds ~ max(engine, file write) + one write) */
    double tokens_per_s;          /* new samples' tokens / seconds */
    double mean_loss;             /* mean of the new windows' losses (NaN when none) */
    size_t engine_bytes;          /* activation (+ gradient) memory of the CPU engine (0 on a GPU) */
    size_t overlap_bytes;         /* host memory of the second window buffer (0 without overlap):
                                     captured layers x (4 with Fisher, else 2) x seq_len x kv_dim x
                                     4 bytes on the CPU; every layer's, pinned, on a GPU */
    char text_sha256[65];
} kvq_capture_result;

void kvq_capture_opts_init(kvq_capture_opts *o);

/* The window starts of `samples` windows of seq_len over n_tokens tokens: start_i =
 * kvq_rng_below(rng, n_tokens - seq_len + 1), drawn in order from kvq_rng seeded with `seed`
 * (docs/capture-format.md "Window sampling"). KVQ_ERR_DATA when n_tokens < seq_len. */
kvq_status kvq_capture_windows(uint64_t n_tokens, uint32_t seq_len, uint32_t samples, uint64_t seed,
                               uint64_t *starts /* (samples) */);

/* Run a capture (or continue one). Errors name the file, layer or sample concerned:
 * KVQ_ERR_DATA (text shorter than one window), KVQ_ERR_MISMATCH (resume with another model or
 * settings), KVQ_ERR_NONFINITE (NaN/Inf in an activation or gradient: layer and sample), KVQ_ERR_IO
 * (unwritable output, disk full: the file keeps its committed samples and can be resumed). */
kvq_status kvq_capture_run(const kvq_capture_opts *o, kvq_capture_result *res, char *why, size_t why_len);

/* Bytes the capture loop holds besides the model weights and the text without overlap: the
 * engine's activations (kvq_engine_activation_bytes) + two Fisher buffers of one window + the
 * writer's two staged layers in the storage type (overlap adds result.overlap_bytes). 0 on overflow. docs/cli.md gives the
 * whole peak-memory formula. */
size_t kvq_capture_working_bytes(const kvq_model_config *cfg, uint32_t seq_len, int fisher,
                                 kvq_capture_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif
