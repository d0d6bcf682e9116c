/* sha256.h — SHA-256 (FIPS 180-4), streaming, for provenance hashes of input files (the capture
 * records the SHA-256 of its calibration text). Not a general crypto library: no HMAC, no
 * constant-time guarantees. */
#ifndef KVQ_SHA256_H
#define KVQ_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_sha256 {
    uint32_t h[8];
    uint64_t total;          /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;             /* bytes waiting in block */
} kvq_sha256;

void kvq_sha256_init(kvq_sha256 *c);
void kvq_sha256_update(kvq_sha256 *c, const void *data, size_t len);
void kvq_sha256_final(kvq_sha256 *c, uint8_t digest[32]);
/* Digest as 64 lower-case hex characters + NUL. */
void kvq_sha256_hex(const uint8_t digest[32], char hex[65]);
/* Hash a whole file; `why` names the file on error (KVQ_ERR_IO). */
kvq_status kvq_sha256_file(const char *path, char hex[65], char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
