/* gguf.h — a strict reader of GGUF files (versions 2 and 3, little-endian): typed key/value
 * metadata with getters (scalars, strings, arrays of strings/f32/i32), and the tensor table with
 * bounds-checked pointers into the file. The file is memory-mapped and never copied; strings
 * returned point into it (not NUL-terminated: use the length). Input is untrusted: every count,
 * length and offset is checked before use. Not a writer, not a dequantizer (gguf_quant.h), not a
 * model loader (kvq_model.h). */
#ifndef KVQ_GGUF_H
#define KVQ_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types (GGUF spec numbering). */
typedef enum kvq_gguf_type {
    KVQ_GGUF_UINT8 = 0, KVQ_GGUF_INT8 = 1, KVQ_GGUF_UINT16 = 2, KVQ_GGUF_INT16 = 3,
    KVQ_GGUF_UINT32 = 4, KVQ_GGUF_INT32 = 5, KVQ_GGUF_FLOAT32 = 6, KVQ_GGUF_BOOL = 7,
    KVQ_GGUF_STRING = 8, KVQ_GGUF_ARRAY = 9, KVQ_GGUF_UINT64 = 10, KVQ_GGUF_INT64 = 11,
    KVQ_GGUF_FLOAT64 = 12
} kvq_gguf_type;

/* Tensor element types (ggml numbering) that kvq can dequantize. Others with a known block size
 * (Q8_1, I8..I64, F64) are still parsed and bounds-checked. */
typedef enum kvq_ggml_type {
    KVQ_GGML_F32 = 0, KVQ_GGML_F16 = 1, KVQ_GGML_Q4_0 = 2, KVQ_GGML_Q4_1 = 3,
    KVQ_GGML_Q5_0 = 6, KVQ_GGML_Q5_1 = 7, KVQ_GGML_Q8_0 = 8,
    KVQ_GGML_Q2_K = 10, KVQ_GGML_Q3_K = 11, KVQ_GGML_Q4_K = 12, KVQ_GGML_Q5_K = 13,
    KVQ_GGML_Q6_K = 14, KVQ_GGML_Q8_K = 15, KVQ_GGML_BF16 = 30
} kvq_ggml_type;

enum { KVQ_GGUF_MAX_DIMS = 4, KVQ_GGUF_DEFAULT_ALIGNMENT = 32 };

typedef struct kvq_gguf_kv {
    const char *key;            /* NUL-terminated copy */
    kvq_gguf_type type;
    kvq_gguf_type elem_type;    /* ARRAY only: type of the elements (never ARRAY) */
    uint64_t n;                 /* ARRAY only: element count; 1 otherwise */
    const unsigned char *val;   /* value bytes in the file (after the type tag / array header) */
    const uint64_t *str_pos;    /* ARRAY of STRING only: (n) offsets of each element from val */
} kvq_gguf_kv;

typedef struct kvq_gguf_tensor {
    const char *name;           /* NUL-terminated copy */
    uint32_t n_dims;            /* 1..KVQ_GGUF_MAX_DIMS */
    uint64_t ne[KVQ_GGUF_MAX_DIMS]; /* innermost-first as in the file (ne[0] = in_features); 1 past n_dims */
    uint32_t type;              /* kvq_ggml_type value (may be one kvq cannot dequantize) */
    uint64_t n_elements;        /* product of ne */
    uint64_t offset;            /* from the start of the data section, as in the file */
    uint64_t n_bytes;           /* 0 when the type's block size is unknown */
    const unsigned char *data;  /* (n_bytes) in the mapping; NULL when the type is unknown */
} kvq_gguf_tensor;

typedef struct kvq_gguf {
    char path[1024];
    uint32_t version;           /* 2 or 3 */
    uint64_t n_kv, n_tensors;
    kvq_gguf_kv *kv;            /* (n_kv) in file order */
    kvq_gguf_tensor *tensors;   /* (n_tensors) in file order */
    uint64_t alignment;         /* general.alignment, default 32 */
    uint64_t data_offset;       /* start of the data section in the file */
    const unsigned char *base;  /* the whole file */
    size_t size;
    struct kvq_gguf_private *priv;
} kvq_gguf;

/* Map and parse a file. `why` names the file and what is wrong (key, tensor, byte offset). */
kvq_status kvq_gguf_open(const char *path, kvq_gguf **out, char *why, size_t why_len);
/* Parse a buffer that the caller keeps alive until kvq_gguf_close (fuzzers, tests). `name` is
 * used in messages. */
kvq_status kvq_gguf_parse(const void *buf, size_t len, const char *name, kvq_gguf **out,
                          char *why, size_t why_len);
void kvq_gguf_close(kvq_gguf *g);           /* accepts NULL */

/* Metadata lookup (first match), or NULL. */
const kvq_gguf_kv *kvq_gguf_find(const kvq_gguf *g, const char *key);

/* Typed getters. KVQ_ERR_MISSING when the key is absent, KVQ_ERR_DTYPE when its type does not
 * fit (integers of any width are accepted when the value is in range; f32 also accepts f64;
 * bool accepts BOOL only). *out is untouched on error. */
kvq_status kvq_gguf_get_u32(const kvq_gguf *g, const char *key, uint32_t *out);
kvq_status kvq_gguf_get_i32(const kvq_gguf *g, const char *key, int32_t *out);
kvq_status kvq_gguf_get_u64(const kvq_gguf *g, const char *key, uint64_t *out);
kvq_status kvq_gguf_get_f32(const kvq_gguf *g, const char *key, float *out);
kvq_status kvq_gguf_get_bool(const kvq_gguf *g, const char *key, int *out);
/* String value: *s points into the file, *len bytes, not NUL-terminated. */
kvq_status kvq_gguf_get_str(const kvq_gguf *g, const char *key, const char **s, size_t *len);
/* Array whose elements have type `elem` (for integers: exactly that width/sign). */
kvq_status kvq_gguf_get_array(const kvq_gguf *g, const char *key, kvq_gguf_type elem,
                              const kvq_gguf_kv **arr);

/* Element access on an array from kvq_gguf_get_array (i < arr->n; not checked again). */
void kvq_gguf_arr_str(const kvq_gguf_kv *arr, uint64_t i, const char **s, size_t *len);
float kvq_gguf_arr_f32(const kvq_gguf_kv *arr, uint64_t i);
int32_t kvq_gguf_arr_i32(const kvq_gguf_kv *arr, uint64_t i);
uint32_t kvq_gguf_arr_u32(const kvq_gguf_kv *arr, uint64_t i);

/* Tensor by name, or NULL. */
const kvq_gguf_tensor *kvq_gguf_find_tensor(const kvq_gguf *g, const char *name);
/* ggml type name ("F32", "Q4_1", ...) or "unknown". */
const char *kvq_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block of a ggml type; 0 when unknown. */
uint32_t kvq_ggml_block_elems(uint32_t type);
uint32_t kvq_ggml_block_bytes(uint32_t type);

#ifdef __cplusplus
}
#endif
#endif
