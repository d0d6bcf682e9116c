/* tokenizer.h — text to token ids (and back) for the models kvq calibrates on: one API over
 *   - Hugging Face tokenizer.json: byte-level BPE (GPT-2 style ByteLevel pre-tokenizer and split
 *     regex; kvq-tiny-15m, GPT-NeoX, SmolLM2) and SentencePiece-style BPE (Llama-2 in HF form:
 *     Prepend/Replace "▁" normalizer, byte fallback);
 *   - llama2.c tokenizer.bin (SentencePiece scores, greedy highest-score merges);
 *   - vocabularies embedded in GGUF files (tokenizer.ggml.model "llama" and "gpt2").
 * Configurations outside these (other normalizers, pre-tokenizers, models) are rejected at load
 * with KVQ_ERR_UNSUPPORTED and a message naming the part, never tokenized approximately.
 * Not a chat-template engine, not a trainer; encoding of ordinary text only.
 * docs/tokenizers.md describes each format and what is checked against which oracle. */
#ifndef KVQ_TOKENIZER_H
#define KVQ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "kvq_status.h"

typedef struct kvq_tokenizer kvq_tokenizer;

/* Load a tokenizer from `path`: a tokenizer.json, a Hugging Face model directory (its
 * tokenizer.json), a llama2.c tokenizer.bin (any other file that is not JSON or GGUF), or a .gguf
 * (its embedded vocabulary). On error *out is NULL and `why` names the file and the problem. */
kvq_status kvq_tokenizer_load(const char *path, kvq_tokenizer **out, char *why, size_t why_len);

/* The tokenizer that belongs to a model path: an HF directory -> its tokenizer.json; a .gguf -> the
 * embedded vocabulary; a llama2.c checkpoint (.bin) -> tokenizer.bin or tok*.bin in the same
 * directory (error asking for --tokenizer when there is none, or several tok*.bin). */
kvq_status kvq_tokenizer_load_for_model(const char *model_path, kvq_tokenizer **out, char *why,
                                        size_t why_len);

/* Same as kvq_tokenizer_load for a tokenizer.json held in memory (`name` is used in messages). */
kvq_status kvq_tokenizer_load_json(const char *json, size_t len, const char *name,
                                   kvq_tokenizer **out, char *why, size_t why_len);

void kvq_tokenizer_free(kvq_tokenizer *tok);                      /* accepts NULL */

/* Encode `len` bytes of UTF-8 `text`. *ids (n) is malloc'ed; free() it. Invalid UTF-8 is not an
 * error: each stray byte counts as one character of no Unicode class and is encoded through its
 * byte token (byte-level BPE, or byte fallback), so the ids still decode to the same bytes.
 * Special tokens written literally in the text (e.g. "<|endoftext|>", "<s>") are recognized, as the
 * reference tokenizers do by default.
 * add_bos: 1 prepends the BOS id (error KVQ_ERR_MISSING when the tokenizer has none), 0 adds
 * nothing. Nothing else is ever added (no EOS, no template). To reproduce what the tokenizer's own
 * configuration does by default (HF `encode(text)`, llama2.c `encode(..., bos=1)`, llama.cpp with
 * add_special), pass kvq_tokenizer_adds_bos(tok). kvq-tiny-15m's tokenizer.json adds no BOS: the
 * reference input_ids of ../shared/reference/kvq-tiny-15m.h5 start with the text's first token. */
kvq_status kvq_tokenize(const kvq_tokenizer *tok, const char *text, size_t len, int add_bos,
                        int32_t **ids, size_t *n, char *why, size_t why_len);

/* Decode ids back to UTF-8 text (malloc'ed, NUL-terminated, *len bytes). Byte-level and byte
 * fallback tokens are turned back into bytes; special tokens are written as their text; the SPM
 * dummy-prefix space is removed. For tests and demos, not a full HF decoder pipeline. */
kvq_status kvq_detokenize(const kvq_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                          size_t *len, char *why, size_t why_len);

int32_t kvq_tokenizer_vocab_size(const kvq_tokenizer *tok);   /* 1 + the largest id */
int32_t kvq_tokenizer_bos(const kvq_tokenizer *tok);          /* -1 when none */
int32_t kvq_tokenizer_eos(const kvq_tokenizer *tok);          /* -1 when none */
int kvq_tokenizer_adds_bos(const kvq_tokenizer *tok);         /* the format's default (see above) */
/* The text of token `id` as the vocabulary spells it ("Ġthe", "▁the", "<0x0A>"), NUL-terminated,
 * or NULL when out of range. *len (if not NULL) gets its byte length. */
const char *kvq_tokenizer_piece(const kvq_tokenizer *tok, int32_t id, size_t *len);
/* One line describing the tokenizer, e.g. "tokenizer.json byte-level BPE, 8192 tokens". */
const char *kvq_tokenizer_describe(const kvq_tokenizer *tok);

#endif
