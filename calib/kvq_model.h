/* kvq_model.h — a LLaMA-family model in memory: hyper-parameters and fp32 weights in kvq's one
 * internal convention (rotate-half RoPE, as HF transformers; row-major, outermost-first, weight
 * matrices stored (out_features, in_features) like nn.Linear). Loaders (HF safetensors, GGUF,
 * llama2.c) fill it; the engine (forward/backward) only reads it. Not a tokenizer. */
#ifndef KVQ_MODEL_H
#define KVQ_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "kvq_status.h"
#include "kvq_codebook.h"   /* kvq_model_identity, rope enums */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_model_config {
    char architecture[64];      /* "llama", "mistral", "qwen2", ... */
    int n_layers;
    int hidden;                 /* d_model */
    int n_heads, n_kv_heads, head_dim;   /* q_dim = n_heads*head_dim, kv_dim = n_kv_heads*head_dim */
    int intermediate;           /* SwiGLU hidden size */
    int vocab;
    int max_pos;                /* max_position_embeddings (informational) */
    float rms_eps;
    float rope_theta;
    kvq_rope_scaling rope_scaling;
    float rope_scaling_factor;  /* 1 when none */
    float rope_low_freq_factor, rope_high_freq_factor;  /* llama3 */
    int rope_original_max_pos;                          /* llama3 */
    int tied_embeddings;        /* lm_head shares tok_embed */
    int attention_bias;         /* q/k/v projections have biases (Qwen2) */
    int bos_id, eos_id;         /* -1 when unknown */
} kvq_model_config;

typedef struct kvq_layer_weights {
    const float *attn_norm;     /* (hidden) */
    const float *wq;            /* (n_heads*head_dim, hidden) rotate-half row order */
    const float *wk;            /* (n_kv_heads*head_dim, hidden) rotate-half row order */
    const float *wv;            /* (n_kv_heads*head_dim, hidden) */
    const float *wo;            /* (hidden, n_heads*head_dim) */
    const float *bq, *bk, *bv;  /* (q_dim), (kv_dim), (kv_dim) or NULL */
    const float *mlp_norm;      /* (hidden) */
    const float *w_gate;        /* (intermediate, hidden) */
    const float *w_up;          /* (intermediate, hidden) */
    const float *w_down;        /* (hidden, intermediate) */
} kvq_layer_weights;

typedef struct kvq_model {
    kvq_model_config cfg;
    const float *tok_embed;     /* (vocab, hidden) */
    kvq_layer_weights *layers;  /* (n_layers) */
    const float *final_norm;    /* (hidden) */
    const float *lm_head;       /* (vocab, hidden); == tok_embed when tied */
    char path[1024];            /* what was loaded */
    char format[16];            /* "hf", "gguf" or "llama2c" */
    char dtype[64];             /* element types on disk, e.g. "BF16" or "Q4_1+F32" */
    size_t bytes_mapped;        /* fp32 weight bytes used in place from the mapped file(s) */
    size_t bytes_owned;         /* fp32 weight bytes converted or permuted into owned buffers */
    struct kvq_model_storage *storage; /* loader-private: mappings and owned buffers */
} kvq_model;

/* Load a model from a path: a Hugging Face directory (config.json + safetensors, sharded or not),
 * a .gguf file, or a llama2.c .bin checkpoint. fp16/bf16/quantized weights are converted to fp32;
 * fp32 weights are memory-mapped when the file allows. `why` receives one line naming file and
 * tensor on error. */
kvq_status kvq_model_load(const char *path, kvq_model *out, char *why, size_t why_len);
void kvq_model_free(kvq_model *m);          /* accepts NULL and zeroed structs */

/* Fingerprint of the model: format-independent (the same weights from .bin, .gguf or hf/ give the
 * same value). Low 32 bits: CRC-32C over the canonical fp32 tensors in a fixed order (tok_embed,
 * per layer attn_norm wq wk wv wo [bq bk bv] mlp_norm w_gate w_up w_down, final_norm, lm_head if
 * untied); high 32 bits: CRC-32C over the canonical config fields. */
uint64_t kvq_model_fingerprint(const kvq_model *m);
/* Number of distinct parameters (lm_head counted once when tied; biases included). */
uint64_t kvq_model_n_params(const kvq_model *m);
/* Fill the identity block a codebook stores. */
void kvq_model_identity_of(const kvq_model *m, kvq_model_identity *id);

#ifdef __cplusplus
}
#endif
#endif
