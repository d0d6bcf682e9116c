/* synth.h — random-weight models of named LLaMA shapes written as real Hugging Face directories
 * (config.json + safetensors, sharded with model.safetensors.index.json when larger than one shard),
 * so large shapes can be loaded, captured and benchmarked without downloading weights. Weights are
 * N(0, 0.02^2) (HF's LLaMA initialiser), norms 1; the same (shape, dtype, seed) gives the same bytes
 * whatever the thread count. Not a trainer; the models predict nothing. */
#ifndef KVQ_SYNTH_H
#define KVQ_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_model.h"
#include "kvq_status.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_synth_opts {
    const char *like;       /* "llama-2-7b", "llama-3-8b" or "tiny" */
    kvq_st_dtype dtype;     /* KVQ_ST_BF16, KVQ_ST_F16 or KVQ_ST_F32 */
    uint64_t seed;
    int n_layers;           /* 0: the shape's own count */
    uint64_t shard_bytes;   /* largest shard; 0: 2 GiB */
} kvq_synth_opts;

/* The names kvq_synth_config knows, NULL-terminated. */
extern const char *const kvq_synth_shapes[];

/* Fill cfg with the hyper-parameters of the named shape (n_layers overridden when > 0).
 * KVQ_ERR_ARG names the known shapes when `like` is not one. */
kvq_status kvq_synth_config(const char *like, int n_layers, kvq_model_config *cfg, char *why, size_t why_len);

/* Write the model into directory `dir` (created when absent; files in it are replaced atomically
 * one by one). *bytes_out (may be NULL) receives the tensor bytes written. */
kvq_status kvq_synth_write(const char *dir, const kvq_synth_opts *o, uint64_t *bytes_out, char *why,
                           size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
