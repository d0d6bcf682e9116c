/* gguf_kquant.c — decoders of ggml's K-quant super-blocks (256 elements, gguf_quant_int.h), written
 * from the published block layouts. Fields in file order, little-endian, fp16 unless noted:
 *   Q2_K  84 B: scales[16], qs[64], d, dmin
 *   Q3_K 110 B: hmask[32], qs[64], scales[12], d
 *   Q4_K 144 B: d, dmin, scales[12], qs[128]
 *   Q5_K 176 B: d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K 210 B: ql[128], qh[64], int8 scales[16], d
 *   Q8_K 292 B: float32 d, int8 qs[256], int16 bsums[16] (sums, not needed to decode)
 * Each decoder says, for element e (0..255), where its bits are. Arithmetic: a sub-block's
 * scale (and min) is multiplied into d (dmin) first, then by the code, then the min product is
 * subtracted — each one fp32 rounding, in separate statements so no FMA is formed. This is the
 * order ggml and gguf-py use, so results are bit-identical. Not an encoder. */
#include "gguf_quant_int.h"

#include "kvq_half.h"

/* 2-bit plane shared by Q2_K and Q3_K's low bits: byte 32*(e/128) + e%32, bit pair (e%128)/32. */
static int crumb(const unsigned char *qs, int e) {
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

/* Q2_K: 16 sub-blocks of 16; scales[s] low nibble scales d, high nibble scales dmin. */
void kvq_dq_q2_k(const unsigned char *b, float *x) {
    const unsigned char *scales = b, *qs = b + 16;
    float d = kvq_f16_to_f32(kvq_rd16(b + 80)), dmin = kvq_f16_to_f32(kvq_rd16(b + 82));
    for (int s = 0; s < 16; s++) {
        float dl = d * (float)(scales[s] & 15), ml = dmin * (float)(scales[s] >> 4);
        for (int e = 16 * s; e < 16 * s + 16; e++) {
            float p = dl * (float)crumb(qs, e);
            x[e] = p - ml;
        }
    }
}

/* Q3_K's 16 signed 6-bit scales in 12 bytes: the low 4 bits of scale s are the low (s < 8) or
 * high (s >= 8) nibble of byte s % 8; its top 2 bits are bits 2*(s/4).. of byte 8 + s % 4. */
static int q3_scale(const unsigned char *sc, int s) {
    int lo = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
    int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K: code = low 2 bits - 4, plus 4 when bit e/32 of hmask[e % 32] is set; 16 sub-blocks. */
void kvq_dq_q3_k(const unsigned char *b, float *x) {
    const unsigned char *hmask = b, *qs = b + 32, *sc = b + 96;
    float d = kvq_f16_to_f32(kvq_rd16(b + 108));
    for (int s = 0; s < 16; s++) {
        float dl = d * (float)q3_scale(sc, s);
        for (int e = 16 * s; e < 16 * s + 16; e++) {
            int q = crumb(qs, e) - ((hmask[e % 32] >> (e / 32)) & 1 ? 0 : 4);
            x[e] = dl * (float)q;
        }
    }
}

/* Q4_K/Q5_K: 8 unsigned 6-bit scales and mins in 12 bytes. Sub-block s < 4: scale = byte s,
 * min = byte s + 4 (low 6 bits each). s >= 4: low 4 bits from byte s + 4 (scale: low nibble,
 * min: high nibble), top 2 bits from bits 6..7 of byte s - 4 (scale) and byte s (min). */
static void k4_scale_min(const unsigned char *q, int s, int *sc, int *m) {
    if (s < 4) {
        *sc = q[s] & 63;
        *m = q[s + 4] & 63;
    } else {
        *sc = (q[s + 4] & 15) | (q[s - 4] >> 6) << 4;
        *m = (q[s + 4] >> 4) | (q[s] >> 6) << 4;
    }
}

/* Nibble plane of Q4_K/Q5_K: element e of sub-block s = e/32 is in byte 32*(e/64) + e%32, the
 * low nibble for even s, the high one for odd s. qh (Q5_K, else NULL): bit s of qh[e % 32] is
 * the code's bit 4. */
static void k4_decode(const unsigned char *b, const unsigned char *qh, const unsigned char *qs, float *x) {
    float d = kvq_f16_to_f32(kvq_rd16(b)), dmin = kvq_f16_to_f32(kvq_rd16(b + 2));
    for (int s = 0; s < 8; s++) {
        int sc, m;
        k4_scale_min(b + 4, s, &sc, &m);
        float dl = d * (float)sc, ml = dmin * (float)m;
        for (int e = 32 * s; e < 32 * s + 32; e++) {
            int q = (qs[32 * (e / 64) + e % 32] >> (4 * (s & 1))) & 15;
            if (qh) q |= ((qh[e % 32] >> s) & 1) << 4;
            float p = dl * (float)q;
            x[e] = p - ml;
        }
    }
}

void kvq_dq_q4_k(const unsigned char *b, float *x) { k4_decode(b, NULL, b + 16, x); }
void kvq_dq_q5_k(const unsigned char *b, float *x) { k4_decode(b, b + 16, b + 48, x); }

/* Q6_K: e = 128h + 32k + l. Low 4 bits: byte 64h + 32*(k & 1) + l of ql, nibble k >> 1; top 2
 * bits: bits 2k.. of qh[32h + l]; code - 32 times d * scales[e / 16]. */
void kvq_dq_q6_k(const unsigned char *b, float *x) {
    const unsigned char *ql = b, *qh = b + 128, *sc = b + 192;
    float d = kvq_f16_to_f32(kvq_rd16(b + 208));
    for (int s = 0; s < 16; s++) {
        float dl = d * (float)(int8_t)sc[s];
        for (int e = 16 * s; e < 16 * s + 16; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            int lo = (ql[64 * h + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15;
            int hi = (qh[32 * h + l] >> (2 * k)) & 3;
            x[e] = dl * (float)((lo | hi << 4) - 32);
        }
    }
}

void kvq_dq_q8_k(const unsigned char *b, float *x) {
    float d = kvq_bits_f32(kvq_rd32(b));
    for (int e = 0; e < 256; e++) x[e] = d * (float)(int8_t)b[4 + e];
}
