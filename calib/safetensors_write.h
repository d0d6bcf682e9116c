/* safetensors_write.h — a streaming writer of one .safetensors file: the caller describes every
 * tensor (name, dtype, shape) up front, the writer lays out the JSON header and the byte buffer in
 * that order, then asks a fill callback for each tensor's bytes one tensor at a time (so a 7B-class
 * shard never has to sit in memory whole). Written atomically: a temp file beside the target,
 * fsync, rename. Not the reader (safetensors.h) and not the sharded-index writer (synth.c). */
#ifndef KVQ_SAFETENSORS_WRITE_H
#define KVQ_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_st_out {
    const char *name;                   /* printable ASCII without '"' or '\\' */
    kvq_st_dtype dtype;
    int n_dims;                         /* 0..KVQ_ST_MAX_DIMS */
    int64_t shape[KVQ_ST_MAX_DIMS];     /* outermost-first */
} kvq_st_out;

/* Fill `bytes` bytes of tensor `index` (its whole data) into dst. */
typedef kvq_status (*kvq_st_fill_fn)(void *user, size_t index, void *dst, size_t bytes, char *why,
                                     size_t why_len);

/* Bytes of tensor t's data (dtype size x shape product), or 0 on overflow / bad shape. */
uint64_t kvq_st_out_bytes(const kvq_st_out *t);

/* Write `path` holding tensors[0..n) in that order. Errors: KVQ_ERR_ARG (bad name or shape),
 * KVQ_ERR_OVERFLOW, KVQ_ERR_NOMEM, KVQ_ERR_IO (with the path), or what `fill` returns. */
kvq_status kvq_safetensors_write(const char *path, const kvq_st_out *tensors, size_t n, kvq_st_fill_fn fill,
                                 void *user, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
