/* le.h — explicit little-endian loads and stores for the codebook file (docs/format.md §1).
 * Byte by byte, so they work on any host and at any alignment. Internal to format/; not installed
 * as part of any public contract. */
#ifndef KVQ_LE_H
#define KVQ_LE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t kvq_le_u16(const unsigned char *p) {
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}
static inline uint32_t kvq_le_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kvq_le_u64(const unsigned char *p) {
    return (uint64_t)kvq_le_u32(p) | (uint64_t)kvq_le_u32(p + 4) << 32;
}
static inline float kvq_le_f32(const unsigned char *p) {
    uint32_t u = kvq_le_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline double kvq_le_f64(const unsigned char *p) {
    uint64_t u = kvq_le_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static inline void kvq_put_u16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void kvq_put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void kvq_put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void kvq_put_f32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    kvq_put_u32(p, u);
}
static inline void kvq_put_f64(unsigned char *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    kvq_put_u64(p, u);
}

#endif
