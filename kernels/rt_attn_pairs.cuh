/* rt_attn_pairs.cuh — reading packed codes a RoPE pair at a time (docs/runtime.md "Packed layout":
 * a token-head is D/2 fields of 2b bits, field i = code(i) | code(i + D/2) << b), for the
 * decode-attention kernel. Private to the runtime. */
#ifndef KVQ_RT_ATTN_PAIRS_CUH
#define KVQ_RT_ATTN_PAIRS_CUH

#include <stdint.h>

/* The NP pair fields [f0, f0 + NP) of one token-head (words p, WPH of them), shifted so that field
 * f0 starts at bit 0 of x[0]: NX = ceil(NP * 2B / 32) words. */
template <int NP, int B, int WPH>
struct kvq_fields {
    static constexpr int NB = NP * 2 * B, NX = (NB + 31) / 32;
    uint32_t x[NX];

    __device__ __forceinline__ void load(const uint32_t *p, uint32_t f0) {
        const uint32_t bit0 = f0 * 2 * B, w0 = bit0 / 32;
        if (NB % 32 == 0) {                      /* word-aligned: (vector) loads only */
            if (NX == 2) { uint2 v = *(const uint2 *)(p + w0); x[0] = v.x; x[1] = v.y; }
            else if (NX == 4) { uint4 v = *(const uint4 *)(p + w0); x[0] = v.x; x[1] = v.y; x[2] = v.z; x[3] = v.w; }
            else {
#pragma unroll
                for (int i = 0; i < NX; i++) x[i] = p[w0 + i];
            }
        } else {                                 /* starts inside a word: funnel-shift into place */
            const uint32_t sh = bit0 % 32;
            uint32_t w[NX + 1];
#pragma unroll
            for (int i = 0; i <= NX; i++) w[i] = p[min(w0 + i, (uint32_t)WPH - 1)];
#pragma unroll
            for (int i = 0; i < NX; i++) x[i] = __funnelshift_r(w[i], w[i + 1], sh);
        }
    }
    /* Byte offset (code << SHIFT) of the NB-bit code at bit `bit` of x, for table lookups: one
     * shift (or funnel shift) and the mask; the caller ORs in an aligned base. `bit` is a constant
     * once the caller's loop is unrolled, so the branches fold away. */
    template <int NB, int SHIFT>
    __device__ __forceinline__ uint32_t code_off(int bit) const {
        const int wi = bit / 32, s = bit % 32;
        const uint32_t M = ((1u << NB) - 1) << SHIFT;
        if (s + NB <= 32) return (s >= SHIFT ? x[wi] >> (s - SHIFT) : x[wi] << (SHIFT - s)) & M;
        return __funnelshift_r(x[wi], x[wi + 1 < NX ? wi + 1 : wi], s - SHIFT) & M;
    }
};

#endif
