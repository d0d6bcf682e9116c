/* fuzz_codebook.c — libFuzzer harness for the codebook file reader (format/codebook_file.c):
 * kvq_codebook_parse + kvq_codebook_validate + free on arbitrary bytes must never crash, leak or
 * read outside the buffer. Each input is parsed twice: as is, and with checksums ignored
 * (KVQ_PARSE_SKIP_CHECKSUMS) so that mutations reach the checks behind the CRCs. Seeds: the golden
 * files (tests/fuzz/seeds/fuzz_codebook/). Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvq_codebook.h"

static void one(const uint8_t *data, size_t size, unsigned flags) {
    /* an exact-size heap copy, so that ASan catches a read one byte past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return;
    if (size) memcpy(copy, data, size);
    kvq_codebook cb;
    kvq_codebook_file_info info;
    char why[256];
    kvq_status st = kvq_codebook_parse_ex(copy, size, flags, &cb, &info, why, sizeof why);
    if (st == KVQ_OK) {
        if (kvq_codebook_validate(&cb, why, sizeof why) != KVQ_OK) abort();   /* parse validates */
        void *buf;
        size_t len;
        if (kvq_codebook_serialize(&cb, &buf, &len) == KVQ_OK) {
            kvq_codebook back;
            if (kvq_codebook_parse(buf, len, &back, why, sizeof why) != KVQ_OK) abort();
            kvq_codebook_free(&back);
            free(buf);
        }
    }
    kvq_codebook_free(&cb);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size, 0);
    one(data, size, KVQ_PARSE_SKIP_CHECKSUMS);
    return 0;
}
