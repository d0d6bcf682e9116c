/* model_internal.h — what the model loaders (model_hf.c, model_gguf.c, llama2c.c) share with
 * model.c: owned storage (file mappings, converted buffers), fp32 tensor acquisition with dtype
 * conversion and RoPE row permutation, config checks. Internal to calib/: not installed API. */
#ifndef KVQ_MODEL_INTERNAL_H
#define KVQ_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_model.h"
#include "mapped_file.h"

struct kvq_model_storage {
    kvq_mapped_file *maps;      /* (n_maps) mappings the weights may point into */
    size_t n_maps, cap_maps;
    float **bufs;               /* (n_bufs) owned fp32 buffers */
    size_t n_bufs, cap_bufs;
};

/* A tensor as a file stores it, before conversion. */
typedef struct kvq_src_tensor {
    const char *file;           /* for messages */
    const char *name;           /* for messages */
    uint32_t type;              /* ggml type code (gguf.h), also for safetensors F32/F16/BF16 */
    const void *data;           /* payload in a mapping */
    uint64_t n_elements;
} kvq_src_tensor;

/* Start a model: zero it, allocate storage, record path/format. */
kvq_status kvq_model_begin(kvq_model *m, const char *path, const char *format, char *why, size_t why_len);
/* Keep a mapping alive for the model's lifetime (takes ownership; *f is zeroed). */
kvq_status kvq_model_keep_map(kvq_model *m, kvq_mapped_file *f, char *why, size_t why_len);
/* Map `path` for the model's lifetime; *data, *size: its bytes. */
kvq_status kvq_model_map_file(kvq_model *m, const char *path, const unsigned char **data, size_t *size,
                              char *why, size_t why_len);
/* Allocate layers (cfg.n_layers zeroed entries). */
kvq_status kvq_model_alloc_layers(kvq_model *m, char *why, size_t why_len);
/* fp32 view of a tensor: the mapped data itself when it is F32 and 4-byte aligned and no
 * permutation is asked, else an owned converted copy. permute_heads > 0 reorders the rows of a
 * (permute_heads*head_dim, cols) matrix from interleaved to rotate-half RoPE order. */
kvq_status kvq_model_take(kvq_model *m, const kvq_src_tensor *t, int permute_heads, const float **out,
                          char *why, size_t why_len);
/* Checks the config for sane, overflow-free sizes (names `file` in messages). */
kvq_status kvq_model_config_check(const kvq_model_config *c, const char *file, char *why, size_t why_len);
/* Rows (2i, 2i+1) -> (i, i + head_dim/2) within each of n_heads heads of a (n_heads*head_dim,
 * cols) matrix, in place. scratch: (head_dim*cols). */
void kvq_permute_interleaved_rows(float *w, int n_heads, int head_dim, size_t cols, float *scratch);
/* Record an on-disk element type in m->dtype ("BF16", "Q4_1+F32", ...), once each. */
void kvq_model_note_dtype(kvq_model *m, uint32_t type);
/* After all tensors: every pointer set, tied heads detected (an lm_head bitwise equal to
 * tok_embed is treated as tied, so equal weights give equal fingerprints). */
kvq_status kvq_model_finish(kvq_model *m, char *why, size_t why_len);

/* The format loaders (m is zeroed on entry; kvq_model_load frees it on error). */
kvq_status kvq_load_hf(const char *dir, kvq_model *m, char *why, size_t why_len);
kvq_status kvq_load_gguf(const char *path, kvq_model *m, char *why, size_t why_len);
kvq_status kvq_load_llama2c(const char *path, kvq_model *m, char *why, size_t why_len);
/* config.json text -> config (hf_config.c). */
kvq_status kvq_hf_config_parse(const char *text, size_t len, const char *file, kvq_model_config *c,
                               char *why, size_t why_len);

#endif
