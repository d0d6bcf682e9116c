/* rt_warp.cuh — warp-level building blocks of the append kernels (one warp per token, rt_append.cu):
 * staging a token's fp16/bf16 row in shared memory, packing one token-head's codes with warp
 * reductions, an exact top-m selection over small candidate lists (ties to the lower channel),
 * and writing a token's outliers in channel order with the per-head offsets. Lane k of a warp
 * owns, in each KV head, the S = head_dim/32 channels that hold code k of segments 0..S-1
 * (kvq_rt_seg_channel, docs/runtime.md "Packed layout"). Private to the runtime. */
#ifndef KVQ_RT_WARP_CUH
#define KVQ_RT_WARP_CUH

#include <stdint.h>
#include <cuda_fp16.h>
#include "rt_internal.cuh"

#define KVQ_FULL 0xffffffffu
/* Candidates a warp keeps per side; a token with more goes to the block kernels (rt_block.cuh). */
enum { KVQ_RT_WLIST = 128, KVQ_RT_WARPS = 4 /* warps (tokens) per block */ };

__device__ static inline uint32_t kvq_lane(void) { return threadIdx.x & 31; }

/* Channel (within a head of S*32) of this lane's element e: code `lane` of segment e. */
template <int S>
__device__ static inline uint32_t kvq_wchan(uint32_t e) { return kvq_rt_seg_channel(threadIdx.x & 31, e, S * 32); }

/* fp16 bits of h(x) for an input element (fp16 bits, or bf16 bits when bf16). */
__device__ static inline uint32_t kvq_win(uint32_t u, int bf16) {
    return bf16 ? __half_as_ushort(__float2half_rn(__uint_as_float(u << 16))) : u;
}
__device__ static inline bool kvq_hbad(uint32_t u) { return (u & 0x7C00u) == 0x7C00u; }   /* Inf or NaN */

/* Stage a row of n fp16/bf16 elements (n % 8 == 0, 16-byte aligned) as the fp16 bits of h(x) in st
 * and/or sink (either may be NULL). Returns, on every lane, whether any element is not finite. */
__device__ static inline bool kvq_wstage(const uint16_t *row, int bf16, uint32_t n, uint16_t *st, uint16_t *sink) {
    bool bad = false;
    for (uint32_t q = kvq_lane(); q < n / 8; q += 32) {
        uint4 v = __ldcs((const uint4 *)row + q);
        uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t lo = kvq_win(w[i] & 0xFFFFu, bf16), hi = kvq_win(w[i] >> 16, bf16);
            bad |= kvq_hbad(lo) || kvq_hbad(hi);
            w[i] = lo | hi << 16;
        }
        uint4 o = make_uint4(w[0], w[1], w[2], w[3]);
        if (st) ((uint4 *)st)[q] = o;
        if (sink) ((uint4 *)sink)[q] = o;
    }
    return __any_sync(KVQ_FULL, bad);
}

/* This lane's S fp16 values (bits) of the head starting at channel hb of a staged row. */
template <int S>
__device__ static inline void kvq_wload(const uint16_t *st, uint32_t hb, uint32_t (&u)[S]) {
#pragma unroll
    for (int e = 0; e < S; e++) u[e] = st[hb + kvq_wchan<S>(e)];
}
/* The same from an input row in global memory (read once: streaming loads), as fp16 bits of h(x). */
template <int S>
__device__ static inline void kvq_wload_in(const uint16_t *row, uint32_t hb, int bf16, uint32_t (&u)[S]) {
#pragma unroll
    for (int e = 0; e < S; e++) u[e] = kvq_win(__ldcs(row + hb + kvq_wchan<S>(e)), bf16);
}
/* This lane's S per-channel floats of the head starting at p. */
template <int S>
__device__ static inline void kvq_wloadf(const float *p, float (&f)[S]) {
#pragma unroll
    for (int e = 0; e < S; e++) f[e] = __ldg(p + kvq_wchan<S>(e));
}
__device__ static inline float kvq_hf(uint32_t u) { return __half2float(__ushort_as_half((uint16_t)u)); }

/* Order-preserving 16-bit key of fp16 bits (-0 and +0 equal; finite values in [0x0400, 0xFC00]). */
__device__ static inline uint32_t kvq_hkey(uint32_t u) {
    uint32_t mag = u & 0x7FFFu;
    return (u & 0x8000u) ? 0x8000u - mag : 0x8000u + mag;
}

/* code(x) = number of midpoints below x (docs/quantization.md §1) over the 2^BITS - 1 ascending
 * midpoints, as a branch-free binary search: level l compares x with mid[c + 2^(BITS-1-l) - 1],
 * picked among the level's candidates by the comparisons already made. */
template <int BITS>
__device__ static inline uint32_t kvq_wcode(const float *mid, float x) {
    bool p[BITS];
    uint32_t c = 0;
#pragma unroll
    for (int l = 0; l < BITS; l++) {
        float v[1 << (BITS - 1)];
#pragma unroll
        for (int i = 0; i < (1 << l); i++) v[i] = mid[(i << (BITS - l)) + (1 << (BITS - 1 - l)) - 1];
#pragma unroll
        for (int b = 0, n = 1 << l; b < l; b++) {     /* fold by the decided bits, lowest first */
            n >>= 1;
#pragma unroll
            for (int j = 0; j < n; j++) v[j] = p[l - 1 - b] ? v[2 * j + 1] : v[2 * j];
        }
        p[l] = v[0] < x;
        c |= (uint32_t)p[l] << (BITS - 1 - l);
    }
    return c;
}

/* IEEE division a / b, bit for bit, without a branch: the fast path of the compiler's div.rn.f32
 * (reciprocal estimate, one Newton step, one correction: y = kvq_wrcp(b), q = kvq_wdiv(a, b, y)),
 * which is correctly rounded whenever the operands pass its range check; kvq_wtame() holds on a
 * subset of that range (magnitudes in [2^-40, 2^40]). Outside it, divide with __fdiv_rn. */
__device__ static inline float kvq_wrcp(float b) {
    float r0;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r0) : "f"(b));
    return __fmaf_rn(r0, __fmaf_rn(-b, r0, 1.0f), r0);
}
__device__ static inline float kvq_wdiv(float a, float b, float y) {
    float q0 = __fmul_rn(a, y);
    return __fmaf_rn(y, __fmaf_rn(-b, q0, a), q0);
}
__device__ static inline bool kvq_wtame(float a) {
    float m = fabsf(a);
    return m >= 0x1p-40f && m <= 0x1p40f;
}

/* x << n and x >> n with PTX semantics: shift amounts of 32 and more (as unsigned) give 0. */
__device__ static inline uint32_t kvq_shl(uint32_t x, uint32_t n) {
    uint32_t r;
    asm("shl.b32 %0, %1, %2;" : "=r"(r) : "r"(x), "r"(n));
    return r;
}
__device__ static inline uint32_t kvq_shr(uint32_t x, uint32_t n) {
    uint32_t r;
    asm("shr.b32 %0, %1, %2;" : "=r"(r) : "r"(x), "r"(n));
    return r;
}

/* Pack and store one token-head's S*BITS code words (code[e] of lane k = code k of segment e, at
 * bits [k*BITS, k*BITS+BITS) of the segment's words): each word is a warp OR of the lanes' shifted
 * codes; lane 0 parks the words in the warp's scratch scr (16 words), lane w stores word w. */
template <int BITS, int S>
__device__ static inline void kvq_wstore_codes(const uint32_t (&code)[S], uint32_t *scr, uint32_t *dst /* (S*BITS) */) {
    uint32_t p = kvq_lane() * BITS;
#pragma unroll
    for (int e = 0; e < S; e++)
#pragma unroll
        for (int j = 0; j < BITS; j++) {
            uint32_t w = __reduce_or_sync(KVQ_FULL, kvq_shl(code[e], p - 32 * j) | kvq_shr(code[e], 32 * j - p));
            if (kvq_lane() == 0) scr[e * BITS + j] = w;
        }
    __syncwarp();
    if (kvq_lane() < (uint32_t)(S * BITS)) dst[kvq_lane()] = scr[kvq_lane()];
    __syncwarp();
}

/* Candidate lists hold distinct composites (order key high, channel complement low): the larger
 * composite comes first in selection order; 0 marks an entry dropped by kvq_wselect.
 * 64-bit: fp32 order key << 32 | ~channel; 32-bit: fp16 order key << 16 | (0xFFFF - channel). */
__device__ static inline uint32_t kvq_comp_ch(uint64_t c) { return ~(uint32_t)c; }
__device__ static inline uint32_t kvq_comp_ch(uint32_t c) { return 0xFFFFu - (c & 0xFFFFu); }

/* Append comp to list (count n, warp-uniform) on the lanes where pred holds, in lane order. */
template <typename T>
__device__ static inline void kvq_wpush(T *list, uint32_t &n, bool pred, T comp) {
    uint32_t b = __ballot_sync(KVQ_FULL, pred);
    if (pred) {
        uint32_t at = n + __popc(b & ((1u << kvq_lane()) - 1));
        if (at < KVQ_RT_WLIST) list[at] = comp;
    }
    n += __popc(b);
}

/* Keep the m largest composites of list[0..n) (n <= KVQ_RT_WLIST), zero the others. Returns the
 * channel of the (m+1)-th largest, or ~0 when n <= m. */
template <typename T>
__device__ static inline uint32_t kvq_wselect(T *list, uint32_t n, uint32_t m) {
    if (n <= m) return ~0u;
    uint32_t at = ~0u, drop = 0;
    for (uint32_t i = kvq_lane(), r = 0; i < n; i += 32, r++) {
        T ci = list[i];
        uint32_t rank = 0;
        for (uint32_t j = 0; j < n; j++) rank += list[j] > ci;
        if (rank >= m) drop |= 1u << r;
        if (rank == m) at = kvq_comp_ch(ci);
    }
    __syncwarp();
    for (uint32_t i = kvq_lane(), r = 0; i < n; i += 32, r++)
        if ((drop >> r) & 1) list[i] = 0;
    __syncwarp();
    return __reduce_min_sync(KVQ_FULL, at);
}

/* Largest t (low 16 bits zero) with at least `need` (<= 64) of the warp's 64 values a, b >= t. */
__device__ static inline uint32_t kvq_wkth(uint32_t a, uint32_t b, uint32_t need) {
    uint32_t t = 0;
    for (int bit = 31; bit >= 16; bit--) {
        uint32_t c = t | 1u << bit;
        uint32_t cnt = __popc(__ballot_sync(KVQ_FULL, a >= c)) + __popc(__ballot_sync(KVQ_FULL, b >= c));
        if (cnt >= need) t = c;
    }
    return t;
}

/* Kept entries of lists A and B whose channel is below ch. */
template <typename T>
__device__ static inline uint32_t kvq_wbelow(const T *A, uint32_t na, const T *B, uint32_t nb, uint32_t ch) {
    uint32_t k = 0;
    for (uint32_t j = 0; j < na; j++) k += A[j] && kvq_comp_ch(A[j]) < ch;
    for (uint32_t j = 0; j < nb; j++) k += B[j] && kvq_comp_ch(B[j]) < ch;
    return k;
}

/* Write the kept entries of A and B (disjoint channels) to out[base + rank by channel] as
 * channel | value(channel) << 16, and offs[h] for the heads starting in [c_lo, c_hi). Returns the
 * number written (warp-uniform). */
template <typename T, typename F>
__device__ static inline uint32_t kvq_wemit(const T *A, uint32_t na, const T *B, uint32_t nb, uint32_t *out,
                                            uint32_t base, uint16_t *offs, uint32_t D, uint32_t H, uint32_t c_lo,
                                            uint32_t c_hi, F value) {
    uint32_t kept = 0;
    for (uint32_t i = kvq_lane(); i < na + nb; i += 32) {
        T ci = i < na ? A[i] : B[i - na];
        if (!ci) continue;
        uint32_t ch = kvq_comp_ch(ci);
        kept++;
        out[base + kvq_wbelow(A, na, B, nb, ch)] = ch | (uint32_t)value(ch) << 16;
    }
    for (uint32_t h = kvq_lane(); h < H; h += 32)
        if (h * D >= c_lo && h * D < c_hi) offs[h] = (uint16_t)(base + kvq_wbelow(A, na, B, nb, h * D));
    return __reduce_add_sync(KVQ_FULL, kept);
}

#endif
