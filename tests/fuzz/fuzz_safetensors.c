/* fuzz_safetensors.c — libFuzzer harness for the safetensors reader (calib/safetensors.h): parse
 * arbitrary bytes, then read the first and last byte of every tensor the parser accepted (ASan
 * catches any pointer outside the input). Not a model-loader fuzzer. */
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kvq_safetensors st;
    char why[256];
    if (kvq_safetensors_parse(data, size, "fuzz", &st, why, sizeof why) != KVQ_OK) return 0;
    volatile unsigned sink = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const kvq_st_tensor *t = &st.tensors[i];
        if (t->end > t->begin) sink += t->data[0] + t->data[t->end - t->begin - 1];
        sink += kvq_safetensors_find(&st, t->name) != NULL;
    }
    (void)sink;
    kvq_safetensors_free(&st);
    return 0;
}
