/* fuzz_tokenizer_json.c — libFuzzer harness for the tokenizer.json reader and the encoder
 * (calib/tok_hfjson.c, tok_api.c, tok_bpe.c): load arbitrary bytes as a tokenizer.json; when that
 * succeeds, tokenize a fixed text (ASCII, digits, whitespace runs, accents to compose, an emoji, a
 * stray byte, special-token look-alikes) and decode the ids. Nothing may crash, leak or read out of
 * bounds; a decoded id must be in the vocabulary. Seeds: tests/fuzz/seeds/fuzz_tokenizer_json/
 * (small hand-written tokenizers of each supported kind). Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const char text[] = "Hello  world,\n\n it's 2024: e\xCC\x81t\xC3\xA9 \xF0\x9F\xA6\x99 <s>x</s> "
                           "<|endoftext|>\t\xFF abba ab ba \xE2\x96\x81";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);   /* exact size: ASan sees a read past the end */
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    kvq_tokenizer *t = NULL;
    char why[256];
    if (kvq_tokenizer_load_json(copy, size, "fuzz.json", &t, why, sizeof why) == KVQ_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (kvq_tokenize(t, text, sizeof text - 1, 0, &ids, &n, why, sizeof why) == KVQ_OK) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= kvq_tokenizer_vocab_size(t)) abort();
            char *back = NULL;
            size_t len;
            if (kvq_detokenize(t, ids, n, &back, &len, why, sizeof why) == KVQ_OK) free(back);
        }
        free(ids);
        kvq_tokenizer_free(t);
    } else if (t) {
        abort();   /* a failed load leaves *out NULL */
    }
    free(copy);
    return 0;
}
