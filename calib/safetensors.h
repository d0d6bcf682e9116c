/* safetensors.h — a strict reader of one .safetensors file: 8-byte little-endian header length,
 * a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the byte
 * buffer. Checked: header length cap, JSON, dtype names, shape products, that each tensor's
 * byte size matches dtype x shape and that the tensors tile the buffer exactly (no holes, no
 * overlaps, nothing left over). Tensor data is pointed to, never copied. Not the sharded-index
 * reader (model_hf.c) and not a writer. */
#ifndef KVQ_SAFETENSORS_H
#define KVQ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { KVQ_ST_MAX_DIMS = 8 };
/* Largest header accepted (the safetensors reference implementation's limit). */
#define KVQ_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef enum kvq_st_dtype {
    KVQ_ST_F64, KVQ_ST_F32, KVQ_ST_F16, KVQ_ST_BF16, KVQ_ST_I64, KVQ_ST_I32, KVQ_ST_I16, KVQ_ST_I8,
    KVQ_ST_U64, KVQ_ST_U32, KVQ_ST_U16, KVQ_ST_U8, KVQ_ST_BOOL, KVQ_ST_F8_E4M3, KVQ_ST_F8_E5M2,
    KVQ_ST_DTYPE_COUNT
} kvq_st_dtype;

typedef struct kvq_st_tensor {
    char *name;                 /* NUL-terminated (names containing NUL are rejected) */
    kvq_st_dtype dtype;
    int n_dims;                 /* 0..KVQ_ST_MAX_DIMS */
    int64_t shape[KVQ_ST_MAX_DIMS]; /* outermost-first */
    uint64_t n_elements;
    uint64_t begin, end;        /* data_offsets, relative to the byte buffer */
    const unsigned char *data;  /* (end - begin) bytes in the caller's buffer */
} kvq_st_tensor;

typedef struct kvq_safetensors {
    kvq_st_tensor *tensors;     /* (n_tensors) in header order */
    size_t n_tensors;
    uint64_t header_len;        /* JSON bytes; the buffer starts at 8 + header_len */
} kvq_safetensors;

/* Parse a whole file image (the caller keeps buf alive while tensors are used). `name` is used
 * in messages, which name the tensor and the problem. */
kvq_status kvq_safetensors_parse(const void *buf, size_t len, const char *name, kvq_safetensors *out,
                                 char *why, size_t why_len);
void kvq_safetensors_free(kvq_safetensors *st);  /* accepts NULL and zeroed structs */
const kvq_st_tensor *kvq_safetensors_find(const kvq_safetensors *st, const char *name);
const char *kvq_st_dtype_name(kvq_st_dtype d);
size_t kvq_st_dtype_size(kvq_st_dtype d);

#ifdef __cplusplus
}
#endif
#endif
