/* fuzz_gguf.c — libFuzzer harness for the GGUF reader (calib/gguf.h): parse arbitrary bytes, then
 * touch every metadata value and tensor through the public getters, and convert every tensor of
 * a supported type (up to 64K elements) to fp32 (gguf_quant.h). Not a model-loader fuzzer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"
#include "gguf_quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kvq_gguf *g;
    char why[256];
    if (kvq_gguf_parse(data, size, "fuzz", &g, why, sizeof why) != KVQ_OK) return 0;
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const kvq_gguf_kv *kv = &g->kv[i], *a;
        uint64_t u;
        float f;
        const char *s;
        size_t n;
        if (kvq_gguf_get_u64(g, kv->key, &u) == KVQ_OK) sink += u;
        if (kvq_gguf_get_f32(g, kv->key, &f) == KVQ_OK) sink += (uint64_t)(f == f);
        if (kvq_gguf_get_str(g, kv->key, &s, &n) == KVQ_OK && n) sink += (unsigned char)s[n - 1];
        if (kvq_gguf_get_array(g, kv->key, KVQ_GGUF_STRING, &a) == KVQ_OK)
            for (uint64_t j = 0; j < a->n; j++) {
                kvq_gguf_arr_str(a, j, &s, &n);
                if (n) sink += (unsigned char)s[n - 1];
            }
        if (kvq_gguf_get_array(g, kv->key, KVQ_GGUF_INT32, &a) == KVQ_OK)
            for (uint64_t j = 0; j < a->n; j++) sink += (uint64_t)kvq_gguf_arr_i32(a, j);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const kvq_gguf_tensor *t = &g->tensors[i];
        if (t->n_bytes) sink += t->data[0] + t->data[t->n_bytes - 1];
        sink += kvq_gguf_find_tensor(g, t->name) == t;
        if (t->data && kvq_ggml_can_convert(t->type) && t->n_elements <= (1 << 16)) {
            float *x = malloc((size_t)t->n_elements * sizeof *x);
            if (x && kvq_ggml_to_f32(t->type, t->data, (size_t)t->n_elements, x) == KVQ_OK)
                sink += x[t->n_elements - 1] == x[t->n_elements - 1];
            free(x);
        }
    }
    (void)sink;
    kvq_gguf_close(g);
    return 0;
}
