/* crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the codebook file
 * and model fingerprints. Software slicing-by-8, libc only. */
#ifndef KVQ_CRC32C_H
#define KVQ_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0; kvq_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t kvq_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
