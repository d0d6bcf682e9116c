/* kvqc.h — layout constants of the codebook file shared by its reader (codebook_file.c) and writer
 * (codebook_write.c); docs/format.md is the normative description. Internal to format/. */
#ifndef KVQ_KVQC_H
#define KVQ_KVQC_H

#include <stddef.h>
#include <stdint.h>

#define KVQC_MAGIC "\x89KVQ\r\n\x1a\n"
enum {
    KVQC_MAGIC_LEN = 8,
    KVQC_MAJOR = 1,
    KVQC_MINOR = 0,
    KVQC_FIXED = 64,                     /* fixed header bytes */
    KVQC_ALIGN = 64,                     /* payload alignment */
    KVQC_OFF_MAJOR = 8, KVQC_OFF_MINOR = 10, KVQC_OFF_HEADER_SIZE = 12, KVQC_OFF_FILE_SIZE = 16,
    KVQC_OFF_DATA_OFFSET = 24, KVQC_OFF_N_META = 32, KVQC_OFF_N_ENTRIES = 36, KVQC_OFF_CRC = 60,
    KVQC_MAX_HEADER = 16 << 20,
    KVQC_MAX_META = 4096,
    KVQC_MAX_ENTRIES = 65536,
    KVQC_MAX_NAME = 255,                 /* keys and entry names */
    KVQC_MAX_DIMS = 4,
    KVQC_MIN_META_BYTES = 4 + 1 + 4 + 4, /* smallest metadata pair: 1-byte key, u32 value */
    KVQC_MIN_ENTRY_BYTES = 4 + 1 + 4 + 4 + 8 + 8 + 8 + 4
};

/* metadata value types */
enum { KVQC_T_U32 = 0, KVQC_T_I32 = 1, KVQC_T_U64 = 2, KVQC_T_F32 = 3, KVQC_T_F64 = 4,
       KVQC_T_STRING = 5, KVQC_T_ARRAY = 6 };
/* entry dtypes */
enum { KVQC_D_F32 = 0, KVQC_D_F64 = 1 };

static inline uint64_t kvqc_align(uint64_t x) { return (x + (KVQC_ALIGN - 1)) & ~(uint64_t)(KVQC_ALIGN - 1); }

/* 1 when s[0..n) is UTF-8 (shortest forms, no surrogates, <= U+10FFFF) without NUL bytes. */
static inline int kvqc_utf8_ok(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char x = s[i];
        size_t k = x < 0x80 ? 0 : (x & 0xE0) == 0xC0 ? 1 : (x & 0xF0) == 0xE0 ? 2 : (x & 0xF8) == 0xF0 ? 3 : 9;
        if (x == 0 || k == 9 || k > n - i - 1) return 0;
        uint32_t cp = k == 0 ? x : k == 1 ? x & 0x1Fu : k == 2 ? x & 0x0Fu : x & 0x07u;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3Fu);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

#endif
