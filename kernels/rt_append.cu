/* rt_append.cu — GPU quantization of appended tokens (docs/quantization.md §2–§4, bit for bit
 * with codebook/quant.c) and the exact dequantizer. Two kernel families:
 * - warp kernels (the fast path): one warp per token, the token's row staged in shared memory,
 *   lane k owning code k of every segment (rt_warp.cuh); keys collect their |x| > 1 candidates in
 *   small lists, values find thresholds from each lane's two largest/smallest elements and keep
 *   only the elements beyond them; an exact rank selection on those lists picks the outliers.
 *   A token whose candidates overflow the lists (or whose value groups need m > 63) is handed
 *   over, by token index, to
 * - block kernels: one thread block per token, element e of thread t is channel t*E + e,
 *   block-wide radix selections (rt_block.cuh); also the path for unaligned inputs.
 * Keys: static per-channel thresholds, capped outliers; values: per-token (or per token and head)
 * top-m/bottom-m outliers and fp16 scales. Outliers go to the token's sparse list sorted by
 * channel, with per-head start offsets. Sink tokens go to fp16. Arithmetic uses explicit
 * round-to-nearest intrinsics so no contraction can change a bit. */
#include <math.h>
#include "rt_internal.cuh"
#include "rt_block.cuh"
#include "rt_warp.cuh"

/* h(): round to fp16 and back. */
__device__ static inline float kvq_h(float x) { return __half2float(__float2half_rn(x)); }
__device__ static inline uint16_t kvq_hbits(float x) { return __half_as_ushort(__float2half_rn(x)); }

/* code(x): number of midpoints strictly below x (mid padded with +inf). */
__device__ static inline uint32_t kvq_code(const float *mid, uint32_t n_levels, float x) {
    uint32_t c = 0;
    for (uint32_t i = 0; i + 1 < n_levels; i++) c += mid[i] < x;
    return c;
}

__device__ static inline float kvq_load_in(const uint16_t *p, int bf16) {
    uint16_t u = *p;
    float f = bf16 ? __bfloat162float(__ushort_as_bfloat16(u)) : __half2float(__ushort_as_half(u));
    return kvq_h(f);
}

typedef struct kvq_rt_tok {
    uint8_t *page;
    uint32_t slot;
} kvq_rt_tok;

/* Page and slot of (seq, pos). */
__device__ static inline kvq_rt_tok kvq_locate(const kvq_rt_geom &g, const kvq_rt_layer &L, uint32_t seq, uint32_t pos) {
    kvq_rt_tok t;
    int32_t page = g.page_table[(size_t)seq * g.max_pages + pos / g.page_tokens];
    t.page = g.pool + (size_t)page * L.page_bytes;
    t.slot = pos % g.page_tokens;
    return t;
}

/* Pack codes_s (kv_dim bytes in shared memory) into the token's code words. */
__device__ static void kvq_pack(const uint8_t *codes_s, uint32_t *dst_base, const kvq_rt_geom &g, uint32_t b,
                                uint32_t slot) {
    uint32_t D = g.head_dim, wph = kvq_rt_wph(D, b), P = g.page_tokens;
    for (uint32_t w = threadIdx.x; w < g.n_kv_heads * wph; w += blockDim.x) {
        uint32_t h = w / wph, wi = w % wph, s = wi / b, j = wi % b;
        uint32_t k_lo = 32 * j / b, k_hi = (32 * j + 31) / b, word = 0;
        for (uint32_t k = k_lo; k <= k_hi && k < KVQ_RT_SEG; k++) {
            uint32_t code = codes_s[h * D + kvq_rt_seg_channel(k, s, D)];
            int sh = (int)(k * b) - (int)(32 * j);
            word |= sh >= 0 ? code << sh : code >> -sh;
        }
        dst_base[((size_t)h * P + slot) * wph + wi] = word;
    }
}

/* Write this thread's outliers (mask, fp16 values) at their place in the channel-sorted list,
 * and the per-head start offsets (H+1 entries, the last the count). */
__device__ static void kvq_emit(uint32_t mask, const uint16_t (&val)[KVQ_RT_EMAX], uint32_t c0, uint32_t E,
                                uint32_t *list, uint16_t *offs, const kvq_rt_geom &g, kvq_rt_bsmem *S) {
    uint32_t total, at = kvq_block_scan(__popc(mask), &total, S);
#pragma unroll
    for (uint32_t e = 0; e < KVQ_RT_EMAX; e++) {
        uint32_t c = c0 + e;
        if (e < E && c < g.kv_dim && c % g.head_dim == 0) offs[c / g.head_dim] = (uint16_t)at;
        if ((mask >> e) & 1) { list[at] = c | (uint32_t)val[e] << 16; at++; }
    }
    if (threadIdx.x == 0) offs[g.n_kv_heads] = (uint16_t)total;
}

/* Sink token: store h(k) / h(v) as fp16. */
__device__ static void kvq_store_sink(uint16_t *dst, const uint16_t *src, int bf16, uint32_t kv_dim, int *flag) {
    for (uint32_t c = threadIdx.x; c < kv_dim; c += blockDim.x) {
        float x = kvq_load_in(src + c, bf16);
        if (!isfinite(x)) atomicExch(flag, 1);
        dst[c] = kvq_hbits(x);
    }
}

/* Block kernels: token list[blockIdx.x] (list NULL: token blockIdx.x). */
__global__ void __launch_bounds__(512, 1) kvq_quant_keys(kvq_rt_layer L, kvq_rt_geom g, const uint16_t *src, int bf16,
                               const uint32_t *tok_seq, const uint32_t *tok_pos, const uint32_t *list, uint32_t E, int *flag) {
    __shared__ kvq_rt_bsmem S;
    extern __shared__ uint8_t codes_s[];          /* (kv_dim) */
    uint32_t tok = list ? list[blockIdx.x] : blockIdx.x, seq = tok_seq[tok], pos = tok_pos[tok];
    const uint16_t *x_in = src + (size_t)tok * g.kv_dim;   /* (kv_dim) */
    if (pos < g.n_sink) {
        kvq_store_sink(g.k_sink + ((size_t)seq * g.n_sink + pos) * g.kv_dim, x_in, bf16, g.kv_dim, flag);
        return;
    }
    kvq_rt_tok t = kvq_locate(g, L, seq, pos);
    uint32_t c0 = threadIdx.x * E, up = 0, lo = 0;
    float hv[KVQ_RT_EMAX];
    uint32_t kx[KVQ_RT_EMAX], code[KVQ_RT_EMAX];
#pragma unroll
    for (uint32_t e = 0; e < KVQ_RT_EMAX; e++) {
        uint32_t c = c0 + e;
        hv[e] = 0.0f; kx[e] = 0; code[e] = 0;
        if (e >= E || c >= g.kv_dim) continue;
        hv[e] = kvq_load_in(x_in + c, bf16);
        if (!isfinite(hv[e])) atomicExch(flag, 1);
        float x = __fdiv_rn(__fsub_rn(hv[e], L.kz[c]), L.kr[c]);
        code[e] = kvq_code(L.mid_k, L.n_levels, x);
        codes_s[c] = (uint8_t)code[e];
        kx[e] = kvq_fkey(x);
        if (L.k_outliers && x > 1.0f) up |= 1u << e;
        if (L.k_outliers && x < -1.0f) lo |= 1u << e;
    }
    if (L.k_outliers) {
        if (kvq_block_sum(__popc(up), &S) > L.k_m) up = kvq_block_select(kx, up, L.k_m, &S);
#pragma unroll
        for (int e = 0; e < KVQ_RT_EMAX; e++) kx[e] = ~kx[e];
        if (kvq_block_sum(__popc(lo), &S) > L.k_m) lo = kvq_block_select(kx, lo, L.k_m, &S);
    }
    uint32_t out = up | lo;
    uint16_t val[KVQ_RT_EMAX];
#pragma unroll
    for (uint32_t e = 0; e < KVQ_RT_EMAX; e++) {
        val[e] = 0;
        if (!((out >> e) & 1)) continue;
        uint32_t c = c0 + e;
        float v = hv[e];
        if (L.k_residual == KVQ_OUTLIER_RESIDUAL) v = __fsub_rn(v, fmaf(L.lut_k[code[e]], L.kr[c], L.kz[c]));
        val[e] = kvq_hbits(v);
    }
    uint32_t H = g.n_kv_heads;
    kvq_emit(out, val, c0, E, (uint32_t *)(t.page + L.off_kout) + (size_t)t.slot * L.k_cap,
             (uint16_t *)(t.page + L.off_koff) + (size_t)t.slot * (H + 1), g, &S);
    __syncthreads();
    kvq_pack(codes_s, (uint32_t *)(t.page + L.off_kcodes), g, L.bits, t.slot);
}

/* The value of the lowest channel whose value equals v (v is a max/min over `mask`): keeps the
 * sign of zero the CPU reference picks (first channel met wins among equal values). */
__device__ static float kvq_first_equal(const float (&hv)[KVQ_RT_EMAX], uint32_t mask, float v, uint32_t c0,
                                        kvq_rt_bsmem *S) {
    float best = INFINITY;
#pragma unroll
    for (int e = 0; e < KVQ_RT_EMAX; e++)
        if (((mask >> e) & 1) && hv[e] == v) { best = (float)(c0 + e); break; }
    float cmin = kvq_block_minmax(best, 1, S);
#pragma unroll
    for (int e = 0; e < KVQ_RT_EMAX; e++)
        if ((float)(c0 + e) == cmin && ((mask >> e) & 1)) S->fv[1] = hv[e];
    __syncthreads();
    float r = S->fv[1];
    __syncthreads();
    return r;
}

__global__ void __launch_bounds__(512) kvq_quant_values(kvq_rt_layer L, kvq_rt_geom g, const uint16_t *src, int bf16,
                                 const uint32_t *tok_seq, const uint32_t *tok_pos, const uint32_t *list, uint32_t E, int *flag) {
    __shared__ kvq_rt_bsmem S;
    extern __shared__ uint8_t codes_s[];          /* (kv_dim) */
    uint32_t tok = list ? list[blockIdx.x] : blockIdx.x, seq = tok_seq[tok], pos = tok_pos[tok];
    const uint16_t *x_in = src + (size_t)tok * g.kv_dim;   /* (kv_dim) */
    if (pos < g.n_sink) {
        kvq_store_sink(g.v_sink + ((size_t)seq * g.n_sink + pos) * g.kv_dim, x_in, bf16, g.kv_dim, flag);
        return;
    }
    kvq_rt_tok t = kvq_locate(g, L, seq, pos);
    uint32_t c0 = threadIdx.x * E, outm = 0;
    float hv[KVQ_RT_EMAX];
    uint32_t key[KVQ_RT_EMAX];
    uint16_t val[KVQ_RT_EMAX];
#pragma unroll
    for (uint32_t e = 0; e < KVQ_RT_EMAX; e++) {
        uint32_t c = c0 + e;
        hv[e] = 0.0f; val[e] = 0;
        if (e < E && c < g.kv_dim) {
            hv[e] = kvq_load_in(x_in + c, bf16);
            if (!isfinite(hv[e])) atomicExch(flag, 1);
        }
        key[e] = kvq_fkey(hv[e]);
    }
    uint32_t *scales = (uint32_t *)(t.page + L.off_vscale) + (size_t)t.slot * L.v_groups;
    for (uint32_t grp = 0; grp < L.v_groups; grp++) {
        uint32_t gm = 0;
#pragma unroll
        for (uint32_t e = 0; e < KVQ_RT_EMAX; e++) {
            uint32_t c = c0 + e;
            if (e < E && c < g.kv_dim && c / L.v_group == grp) gm |= 1u << e;
        }
        uint32_t up = 0, lo = 0;
        if (L.v_m) {
            up = kvq_block_select(key, gm, L.v_m, &S);
            uint32_t inv[KVQ_RT_EMAX];
#pragma unroll
            for (int e = 0; e < KVQ_RT_EMAX; e++) inv[e] = ~key[e];
            lo = kvq_block_select(inv, gm & ~up, L.v_m, &S);
        }
        uint32_t rest = gm & ~(up | lo);
        float mx = -INFINITY, mn = INFINITY;
#pragma unroll
        for (int e = 0; e < KVQ_RT_EMAX; e++)
            if ((rest >> e) & 1) { mx = fmaxf(mx, hv[e]); mn = fminf(mn, hv[e]); }
        float hi = kvq_first_equal(hv, rest, kvq_block_minmax(mx, 0, &S), c0, &S);
        float lw = kvq_first_equal(hv, rest, kvq_block_minmax(mn, 1, &S), c0, &S);
        float z = kvq_h(__fmul_rn(0.5f, __fadd_rn(hi, lw))), r = kvq_h(__fmul_rn(0.5f, __fsub_rn(hi, lw)));
        if (r == 0.0f) r = 1.0f;
        if (threadIdx.x == 0) scales[grp] = (uint32_t)kvq_hbits(z) | (uint32_t)kvq_hbits(r) << 16;
#pragma unroll
        for (uint32_t e = 0; e < KVQ_RT_EMAX; e++) {
            if (!((gm >> e) & 1)) continue;
            uint32_t code = kvq_code(L.mid_v, L.n_levels, __fdiv_rn(__fsub_rn(hv[e], z), r));
            codes_s[c0 + e] = (uint8_t)code;
            if ((up | lo) >> e & 1) {
                float v = hv[e];
                if (L.v_residual == KVQ_OUTLIER_RESIDUAL) v = __fsub_rn(v, fmaf(L.lut_v[code], r, z));
                val[e] = kvq_hbits(v);
            }
        }
        outm |= up | lo;
    }
    uint32_t H = g.n_kv_heads;
    kvq_emit(outm, val, c0, E, (uint32_t *)(t.page + L.off_vout) + (size_t)t.slot * L.v_cap,
             (uint16_t *)(t.page + L.off_voff) + (size_t)t.slot * (H + 1), g, &S);
    __syncthreads();
    kvq_pack(codes_s, (uint32_t *)(t.page + L.off_vcodes), g, L.bits, t.slot);
}

/* ---- warp kernels: token blockIdx.x * KVQ_RT_WARPS + warp. Dynamic shared memory per warp: keys,
 * two candidate lists of KVQ_RT_WLIST 64-bit entries and 16 scratch words; values, two lists of
 * 32-bit entries, 16 scratch words and the staged row (kv_dim fp16). ------------------------------ */
__host__ __device__ static inline size_t kvq_wsmem_keys(void) { return 2 * KVQ_RT_WLIST * 8 + 64; }
__host__ __device__ static inline size_t kvq_wsmem_values(uint32_t kv_dim) { return 2 * KVQ_RT_WLIST * 4 + 64 + (size_t)kv_dim * 2; }

/* A token the warp kernel leaves to the block kernels: redo[0] counts, redo[1..] lists. */
__device__ static inline void kvq_handover(uint32_t *redo, uint32_t tok) {
    if (kvq_lane() == 0) redo[1 + atomicAdd(redo, 1u)] = tok;
}

/* x = (k - z) / r for this lane's S channels of one head (kz, kr at the head's first channel;
 * IEEE division, see kvq_wdiv). */
template <int S>
__device__ static inline void kvq_wkeys_x(const uint32_t (&u)[S], const float *kz, const float *kr, float (&x)[S]) {
    float z[S], r[S];
    kvq_wloadf<S>(kz, z);
    kvq_wloadf<S>(kr, r);
    bool slow = false;
#pragma unroll
    for (int e = 0; e < S; e++) {
        float a = __fsub_rn(kvq_hf(u[e]), z[e]);
        x[e] = kvq_wdiv(a, r[e], kvq_wrcp(r[e]));
        slow |= !kvq_wtame(a) || !kvq_wtame(r[e]);
    }
    if (slow)
#pragma unroll
        for (int e = 0; e < S; e++) x[e] = __fdiv_rn(__fsub_rn(kvq_hf(u[e]), z[e]), r[e]);
}

template <int BITS, int S>
__global__ void __launch_bounds__(KVQ_RT_WARPS * 32)
kvq_wkeys(const __grid_constant__ kvq_rt_layer L, const __grid_constant__ kvq_rt_geom g, const uint16_t *src, int bf16,
          const uint32_t *tok_seq, const uint32_t *tok_pos, uint32_t n_tok, uint32_t *redo, int *flag) {
    extern __shared__ uint64_t wsm[];
    const uint32_t D = S * 32, lane = kvq_lane(), warp = threadIdx.x / 32, tok = blockIdx.x * KVQ_RT_WARPS + warp;
    if (tok >= n_tok) return;
    uint64_t *up = wsm + warp * (kvq_wsmem_keys() / 8), *lo = up + KVQ_RT_WLIST;   /* (KVQ_RT_WLIST) each */
    uint32_t *scr = (uint32_t *)(lo + KVQ_RT_WLIST);                                 /* (16) */
    const uint16_t *row = src + (size_t)tok * g.kv_dim;                             /* (kv_dim) */
    uint32_t seq = tok_seq[tok], pos = tok_pos[tok];
    if (pos < g.n_sink) {
        if (kvq_wstage(row, bf16, g.kv_dim, NULL, g.k_sink + ((size_t)seq * g.n_sink + pos) * g.kv_dim) && lane == 0)
            atomicExch(flag, 1);
        return;
    }
    kvq_rt_tok t = kvq_locate(g, L, seq, pos);
    uint32_t H = g.n_kv_heads, nu = 0, nl = 0;
    uint32_t *codes = (uint32_t *)(t.page + L.off_kcodes);
    bool bad = false;
    for (uint32_t h = 0; h < H; h++) {
        uint32_t hb = h * D, u[S], code[S];
        float x[S];
        kvq_wload_in<S>(row, hb, bf16, u);
        kvq_wkeys_x<S>(u, L.kz + hb, L.kr + hb, x);
        bool cand = false;
#pragma unroll
        for (int e = 0; e < S; e++) {
            bad |= kvq_hbad(u[e]);
            code[e] = kvq_wcode<BITS>(L.mid_k, x[e]);
            cand |= x[e] > 1.0f || x[e] < -1.0f;
        }
        kvq_wstore_codes<BITS, S>(code, scr, codes + ((size_t)h * g.page_tokens + t.slot) * (S * BITS));
        if (L.k_outliers && __any_sync(KVQ_FULL, cand))   /* most heads have none */
#pragma unroll
            for (int e = 0; e < S; e++) {
                uint64_t key = kvq_fkey(x[e]), ch = ~(hb + kvq_wchan<S>(e));
                kvq_wpush(up, nu, x[e] > 1.0f, key << 32 | ch);
                kvq_wpush(lo, nl, x[e] < -1.0f, (uint64_t)(uint32_t)~key << 32 | ch);
            }
    }
    if (__any_sync(KVQ_FULL, bad) && lane == 0) atomicExch(flag, 1);
    if (nu > KVQ_RT_WLIST || nl > KVQ_RT_WLIST) { kvq_handover(redo, tok); return; }
    __syncwarp();
    kvq_wselect(up, nu, L.k_m);
    kvq_wselect(lo, nl, L.k_m);
    uint16_t *offs = (uint16_t *)(t.page + L.off_koff) + (size_t)t.slot * (H + 1);
    uint32_t n = kvq_wemit(up, nu, lo, nl, (uint32_t *)(t.page + L.off_kout) + (size_t)t.slot * L.k_cap, 0, offs, D, H,
                           0, g.kv_dim, [&](uint32_t c) {
        float v = kvq_hf(kvq_win(row[c], bf16));
        if (L.k_residual == KVQ_OUTLIER_RESIDUAL) {
            float z = L.kz[c], r = L.kr[c];
            v = __fsub_rn(v, fmaf(L.lut_k[kvq_wcode<BITS>(L.mid_k, __fdiv_rn(__fsub_rn(v, z), r))], r, z));
        }
        return kvq_hbits(v);
    });
    if (lane == 0) offs[H] = (uint16_t)n;
}

/* Values of one group of heads [h0, h1): the channels of hi and lo (docs/quantization.md §4) and
 * the top-m / bottom-m candidates in up / lo (counts nu, nl; kept entries after kvq_wselect).
 * Returns false when the token must go to the block kernels. Composites are 32-bit (fp16 keys). */
template <int S>
__device__ static inline bool kvq_wvgroup(const uint16_t *st, uint32_t h0, uint32_t h1, uint32_t m, uint32_t *up,
                                          uint32_t *lo, uint32_t &nu, uint32_t &nl, uint32_t &hch, uint32_t &lch) {
    const uint32_t D = S * 32;
    nu = nl = 0;
    if (m == 0) {            /* hi, lo: first channel attaining the max / min */
        uint32_t bu = 0, bl = 0;
        for (uint32_t h = h0; h < h1; h++) {
            uint32_t u[S];
            kvq_wload<S>(st, h * D, u);
#pragma unroll
            for (int e = 0; e < S; e++) {
                uint32_t k = kvq_hkey(u[e]), cc = 0xFFFFu - (h * D + kvq_wchan<S>(e));
                bu = max(bu, k << 16 | cc);
                bl = max(bl, (0xFFFFu - k) << 16 | cc);
            }
        }
        hch = kvq_comp_ch(__reduce_max_sync(KVQ_FULL, bu));
        lch = kvq_comp_ch(__reduce_max_sync(KVQ_FULL, bl));
        return true;
    }
    if (m > 63) return false;
    /* thresholds: the (m+1)-th largest of the lanes' two largest keys bounds the group's (m+1)-th
     * largest from below (they are distinct elements); the same for the smallest */
    uint32_t a1 = 0, a2 = 0, b1 = 0, b2 = 0;
    for (uint32_t h = h0; h < h1; h++) {
        uint32_t u[S];
        kvq_wload<S>(st, h * D, u);
#pragma unroll
        for (int e = 0; e < S; e++) {
            uint32_t k = kvq_hkey(u[e]) << 16, nk = (0xFFFFu - kvq_hkey(u[e])) << 16;
            a2 = max(a2, min(a1, k)); a1 = max(a1, k);
            b2 = max(b2, min(b1, nk)); b1 = max(b1, nk);
        }
    }
    uint32_t tu = kvq_wkth(a1, a2, m + 1) >> 16, tl = kvq_wkth(b1, b2, m + 1) >> 16;
    if (0xFFFFu - tl >= tu) return false;   /* the two candidate sets could overlap */
    for (uint32_t h = h0; h < h1; h++) {
        uint32_t u[S];
        kvq_wload<S>(st, h * D, u);
#pragma unroll
        for (int e = 0; e < S; e++) {
            uint32_t k = kvq_hkey(u[e]), cc = 0xFFFFu - (h * D + kvq_wchan<S>(e));
            if (!__any_sync(KVQ_FULL, k >= tu || 0xFFFFu - k >= tl)) continue;   /* most rounds have none */
            kvq_wpush(up, nu, k >= tu, k << 16 | cc);
            kvq_wpush(lo, nl, 0xFFFFu - k >= tl, (0xFFFFu - k) << 16 | cc);
        }
    }
    if (nu > KVQ_RT_WLIST || nl > KVQ_RT_WLIST) return false;
    __syncwarp();
    hch = kvq_wselect(up, nu, m);   /* nu, nl > m: the (m+1)-th is the largest / smallest kept */
    lch = kvq_wselect(lo, nl, m);
    return true;
}

template <int BITS, int S>
__global__ void __launch_bounds__(KVQ_RT_WARPS * 32)
kvq_wvalues(const __grid_constant__ kvq_rt_layer L, const __grid_constant__ kvq_rt_geom g, const uint16_t *src, int bf16,
            const uint32_t *tok_seq, const uint32_t *tok_pos, uint32_t n_tok, uint32_t *redo, int *flag) {
    extern __shared__ uint64_t wsm[];
    const uint32_t D = S * 32, lane = kvq_lane(), warp = threadIdx.x / 32, tok = blockIdx.x * KVQ_RT_WARPS + warp;
    if (tok >= n_tok) return;
    uint32_t *up = (uint32_t *)wsm + warp * (kvq_wsmem_values(g.kv_dim) / 4), *lo = up + KVQ_RT_WLIST;   /* (KVQ_RT_WLIST) */
    uint32_t *scr = lo + KVQ_RT_WLIST;                                                                       /* (16) */
    uint16_t *st = (uint16_t *)(scr + 16);                                                                   /* (kv_dim) */
    uint32_t seq = tok_seq[tok], pos = tok_pos[tok];
    bool sink = pos < g.n_sink;
    uint16_t *sink_row = sink ? g.v_sink + ((size_t)seq * g.n_sink + pos) * g.kv_dim : NULL;
    if (kvq_wstage(src + (size_t)tok * g.kv_dim, bf16, g.kv_dim, st, sink_row) && lane == 0) atomicExch(flag, 1);
    if (sink) return;
    __syncwarp();
    kvq_rt_tok t = kvq_locate(g, L, seq, pos);
    uint32_t H = g.n_kv_heads, hpg = L.v_group / D, base = 0;
    uint32_t *codes = (uint32_t *)(t.page + L.off_vcodes);
    uint32_t *scales = (uint32_t *)(t.page + L.off_vscale) + (size_t)t.slot * L.v_groups;
    uint32_t *out = (uint32_t *)(t.page + L.off_vout) + (size_t)t.slot * L.v_cap;
    uint16_t *offs = (uint16_t *)(t.page + L.off_voff) + (size_t)t.slot * (H + 1);
    for (uint32_t grp = 0; grp < L.v_groups; grp++) {
        uint32_t h0 = grp * hpg, h1 = h0 + hpg, nu, nl, hch, lch;
        if (!kvq_wvgroup<S>(st, h0, h1, L.v_m, up, lo, nu, nl, hch, lch)) { kvq_handover(redo, tok); return; }
        float hi = kvq_hf(st[hch]), lw = kvq_hf(st[lch]);
        float z = kvq_h(__fmul_rn(0.5f, __fadd_rn(hi, lw))), r = kvq_h(__fmul_rn(0.5f, __fsub_rn(hi, lw)));
        if (r == 0.0f) r = 1.0f;
        if (lane == 0) scales[grp] = (uint32_t)kvq_hbits(z) | (uint32_t)kvq_hbits(r) << 16;
        float y = kvq_wrcp(r);
        bool rtame = kvq_wtame(r);
        for (uint32_t h = h0; h < h1; h++) {
            uint32_t u[S], code[S];
            float x[S];
            bool slow = false;
            kvq_wload<S>(st, h * D, u);
#pragma unroll
            for (int e = 0; e < S; e++) {
                float a = __fsub_rn(kvq_hf(u[e]), z);
                x[e] = kvq_wdiv(a, r, y);
                slow |= !rtame || !kvq_wtame(a);
            }
            if (slow)
#pragma unroll
                for (int e = 0; e < S; e++) x[e] = __fdiv_rn(__fsub_rn(kvq_hf(u[e]), z), r);
#pragma unroll
            for (int e = 0; e < S; e++) code[e] = kvq_wcode<BITS>(L.mid_v, x[e]);
            kvq_wstore_codes<BITS, S>(code, scr, codes + ((size_t)h * g.page_tokens + t.slot) * (S * BITS));
        }
        base += kvq_wemit(up, nu, lo, nl, out, base, offs, D, H, h0 * D, h1 * D, [&](uint32_t c) {
            float v = kvq_hf(st[c]);
            if (L.v_residual == KVQ_OUTLIER_RESIDUAL)
                v = __fsub_rn(v, fmaf(L.lut_v[kvq_wcode<BITS>(L.mid_v, __fdiv_rn(__fsub_rn(v, z), r))], r, z));
            return kvq_hbits(v);
        });
        __syncwarp();
    }
    if (lane == 0) offs[H] = (uint16_t)base;
}

/* Exact dequantization of tokens pos0 + blockIdx.x of slot seq: dense, then outliers. */
__global__ void kvq_dequant(kvq_rt_layer L, kvq_rt_geom g, uint32_t seq, uint32_t pos0, float *out_k, float *out_v) {
    uint32_t pos = pos0 + blockIdx.x, D = g.head_dim, wph = kvq_rt_wph(D, L.bits), H = g.n_kv_heads;
    float *ok = out_k + (size_t)blockIdx.x * g.kv_dim, *ov = out_v + (size_t)blockIdx.x * g.kv_dim;
    if (pos < g.n_sink) {
        size_t off = ((size_t)seq * g.n_sink + pos) * g.kv_dim;
        for (uint32_t c = threadIdx.x; c < g.kv_dim; c += blockDim.x) {
            ok[c] = __half2float(__ushort_as_half(g.k_sink[off + c]));
            ov[c] = __half2float(__ushort_as_half(g.v_sink[off + c]));
        }
        return;
    }
    kvq_rt_tok t = kvq_locate(g, L, seq, pos);
    const uint32_t *kw = (const uint32_t *)(t.page + L.off_kcodes), *vw = (const uint32_t *)(t.page + L.off_vcodes);
    const uint32_t *scales = (const uint32_t *)(t.page + L.off_vscale) + (size_t)t.slot * L.v_groups;
    for (uint32_t c = threadIdx.x; c < g.kv_dim; c += blockDim.x) {
        uint32_t h = c / D, i = c % D;
        size_t w0 = ((size_t)h * g.page_tokens + t.slot) * wph;
        ok[c] = fmaf(L.lut_k[kvq_rt_get_code(kw + w0, i, D, L.bits)], L.kr[c], L.kz[c]);
        uint32_t zr = scales[c / L.v_group];
        float z = __half2float(__ushort_as_half((uint16_t)(zr & 0xFFFF)));
        float r = __half2float(__ushort_as_half((uint16_t)(zr >> 16)));
        ov[c] = fmaf(L.lut_v[kvq_rt_get_code(vw + w0, i, D, L.bits)], r, z);
    }
    __syncthreads();
    for (int kv = 0; kv < 2; kv++) {
        const uint16_t *offs = (const uint16_t *)(t.page + (kv ? L.off_voff : L.off_koff)) + (size_t)t.slot * (H + 1);
        uint32_t cap = kv ? L.v_cap : L.k_cap;
        const uint32_t *list = (const uint32_t *)(t.page + (kv ? L.off_vout : L.off_kout)) + (size_t)t.slot * cap;
        int resid = kv ? L.v_residual : L.k_residual;
        float *o = kv ? ov : ok;
        for (uint32_t j = threadIdx.x; j < offs[H]; j += blockDim.x) {
            uint32_t ent = list[j], c = ent & 0xFFFF;
            float v = __half2float(__ushort_as_half((uint16_t)(ent >> 16)));
            o[c] = resid == KVQ_OUTLIER_RESIDUAL ? __fadd_rn(o[c], v) : v;
        }
    }
}

typedef void (*kvq_wkernel)(const kvq_rt_layer, const kvq_rt_geom, const uint16_t *, int, const uint32_t *,
                            const uint32_t *, uint32_t, uint32_t *, int *);
static const kvq_wkernel kvq_wkeys_of[3][2] = {{kvq_wkeys<2, 2>, kvq_wkeys<2, 4>}, {kvq_wkeys<3, 2>, kvq_wkeys<3, 4>},
                                               {kvq_wkeys<4, 2>, kvq_wkeys<4, 4>}};
static const kvq_wkernel kvq_wvalues_of[3][2] = {{kvq_wvalues<2, 2>, kvq_wvalues<2, 4>},
                                                 {kvq_wvalues<3, 2>, kvq_wvalues<3, 4>},
                                                 {kvq_wvalues<4, 2>, kvq_wvalues<4, 4>}};

/* The warp kernels over all n_step tokens; *nk, *nv get the tokens they handed over (listed at
 * d_redo + 1 and d_redo + 2 + step_cap). */
static kvq_status kvq_append_warps(kvq_rt_cache *c, uint32_t layer, const kvq_rt_geom &g, const void *d_k,
                                   const void *d_v, int bf16, uint32_t *nk, uint32_t *nv, char *why, size_t why_len) {
    const kvq_rt_layer &L = c->layers[layer];
    size_t ksmem = KVQ_RT_WARPS * kvq_wsmem_keys(), vsmem = KVQ_RT_WARPS * kvq_wsmem_values(g.kv_dim);
    uint32_t grid = (c->n_step + KVQ_RT_WARPS - 1) / KVQ_RT_WARPS, *kredo = c->d_redo, *vredo = c->d_redo + 1 + c->step_cap;
    kvq_wkernel wk = kvq_wkeys_of[L.bits - 2][g.head_dim == 128], wv = kvq_wvalues_of[L.bits - 2][g.head_dim == 128];
    KVQ_CU(cudaFuncSetAttribute((const void *)wv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)vsmem));
    KVQ_CU(cudaMemset(kredo, 0, sizeof(uint32_t)));
    KVQ_CU(cudaMemset(vredo, 0, sizeof(uint32_t)));
    wk<<<grid, KVQ_RT_WARPS * 32, ksmem>>>(L, g, (const uint16_t *)d_k, bf16, c->d_tok_seq, c->d_tok_pos, c->n_step,
                                          kredo, c->d_flag);
    KVQ_CU(cudaGetLastError());
    wv<<<grid, KVQ_RT_WARPS * 32, vsmem>>>(L, g, (const uint16_t *)d_v, bf16, c->d_tok_seq, c->d_tok_pos, c->n_step,
                                          vredo, c->d_flag);
    KVQ_CU(cudaGetLastError());
    KVQ_CU(cudaMemcpy(nk, kredo, sizeof(uint32_t), cudaMemcpyDeviceToHost));
    KVQ_CU(cudaMemcpy(nv, vredo, sizeof(uint32_t), cudaMemcpyDeviceToHost));
    return KVQ_OK;
}

kvq_status kvq_rt_append(kvq_rt_cache *c, uint32_t layer, const void *d_k, const void *d_v,
                         kvq_rt_dtype dt, char *why, size_t why_len) {
    if (!c || layer >= c->rt->dims.n_layers || (c->n_step && (!d_k || !d_v))) {
        kvq_rt_why(why, why_len, "bad arguments to append (layer %u)", layer);
        return KVQ_ERR_ARG;
    }
    if (dt != KVQ_RT_F16 && dt != KVQ_RT_BF16) { kvq_rt_why(why, why_len, "append takes F16 or BF16"); return KVQ_ERR_DTYPE; }
    if (!c->n_step) return KVQ_OK;
    kvq_rt_geom g = kvq_rt_geom_of(c, layer);
    uint32_t nt = 256;
    while ((g.kv_dim + nt - 1) / nt > KVQ_RT_EMAX) nt *= 2;
    uint32_t E = (g.kv_dim + nt - 1) / nt;
    int bf16 = dt == KVQ_RT_BF16;
    KVQ_CU(cudaMemset(c->d_flag, 0, sizeof(int)));
    /* the warp kernels stage rows with 16-byte loads; other inputs take the block kernels */
    uint32_t nk = c->n_step, nv = c->n_step;
    const uint32_t *klist = NULL, *vlist = NULL;
    if ((uintptr_t)d_k % 16 == 0 && (uintptr_t)d_v % 16 == 0) {
        kvq_status st = kvq_append_warps(c, layer, g, d_k, d_v, bf16, &nk, &nv, why, why_len);
        if (st != KVQ_OK) return st;
        klist = c->d_redo + 1;
        vlist = c->d_redo + 2 + c->step_cap;
    }
    if (nk) {
        kvq_quant_keys<<<nk, nt, g.kv_dim>>>(c->layers[layer], g, (const uint16_t *)d_k, bf16, c->d_tok_seq,
                                             c->d_tok_pos, klist, E, c->d_flag);
        KVQ_CU(cudaGetLastError());
    }
    if (nv) {
        kvq_quant_values<<<nv, nt, g.kv_dim>>>(c->layers[layer], g, (const uint16_t *)d_v, bf16, c->d_tok_seq,
                                               c->d_tok_pos, vlist, E, c->d_flag);
        KVQ_CU(cudaGetLastError());
    }
    int flag = 0;
    KVQ_CU(cudaMemcpy(&flag, c->d_flag, sizeof(int), cudaMemcpyDeviceToHost));
    if (flag) { kvq_rt_why(why, why_len, "layer %u: NaN or Inf among the appended K/V", layer); return KVQ_ERR_NONFINITE; }
    return KVQ_OK;
}

kvq_status kvq_rt_dequantize(const kvq_rt_cache *c, uint32_t layer, uint32_t seq, uint32_t pos0,
                             uint32_t n, float *d_k, float *d_v, char *why, size_t why_len) {
    if (!c || layer >= c->rt->dims.n_layers || seq >= c->o.batch || !d_k || !d_v ||
        (uint64_t)pos0 + n > c->h_lens[seq]) {
        kvq_rt_why(why, why_len, "dequantize: no tokens [%u, %u) in slot %u layer %u", pos0, pos0 + n, seq, layer);
        return KVQ_ERR_ARG;
    }
    if (!n) return KVQ_OK;
    kvq_dequant<<<n, 256>>>(c->layers[layer], kvq_rt_geom_of(c, layer), seq, pos0, d_k, d_v);
    KVQ_CU(cudaGetLastError());
    KVQ_CU(cudaDeviceSynchronize());
    return KVQ_OK;
}
