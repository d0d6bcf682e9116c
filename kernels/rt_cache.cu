/* rt_cache.cu — the packed cache's memory: per-layer page pools, fp16 sink buffers, page tables,
 * the host-side page allocator (extend grows slots page by page from a free list, reset returns
 * them) and export of one stored token to the host. No kernels here. */
#include <stdlib.h>
#include <string.h>
#include "rt_internal.cuh"

/* a*b with overflow check into *out */
static int mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void kvq_rt_cache_free(kvq_rt_cache *c) {
    if (!c) return;
    if (c->d_pools) {
        for (uint32_t l = 0; l < c->rt->dims.n_layers; l++) if (c->d_pools[l]) cudaFree(c->d_pools[l]);
        free(c->d_pools);
    }
    if (c->d_sink) cudaFree(c->d_sink);
    if (c->d_ptab) cudaFree(c->d_ptab);
    if (c->d_lens) cudaFree(c->d_lens);
    if (c->d_tok_seq) cudaFree(c->d_tok_seq);
    if (c->d_tok_pos) cudaFree(c->d_tok_pos);
    if (c->d_redo) cudaFree(c->d_redo);
    if (c->d_flag) cudaFree(c->d_flag);
    if (c->d_work) cudaFree(c->d_work);
    free(c->layers);
    free(c->h_ptab);
    free(c->h_lens);
    free(c->free_pages);
    free(c);
}

static kvq_status alloc_device(kvq_rt_cache *c, char *why, size_t why_len) {
    const kvq_rt_dims *d = &c->rt->dims;
    size_t kv_dim = (size_t)d->n_kv_heads * d->head_dim, n_pages = c->o.n_pages, bytes;
    for (uint32_t l = 0; l < d->n_layers; l++) {
        if (!mul_ok(n_pages, c->layers[l].page_bytes, &bytes)) { kvq_rt_why(why, why_len, "pool size overflows"); return KVQ_ERR_OVERFLOW; }
        cudaError_t e = cudaMalloc((void **)&c->d_pools[l], bytes);
        if (e != cudaSuccess) {
            kvq_rt_why(why, why_len, "%s:%d: cudaMalloc of %zu B for layer %u's %zu pages: %s", __FILE__, __LINE__,
                       bytes, l, n_pages, cudaGetErrorString(e));
            return e == cudaErrorMemoryAllocation ? KVQ_ERR_CAPACITY : KVQ_ERR_CUDA;
        }
        KVQ_CU(cudaMemset(c->d_pools[l], 0, bytes));
    }
    size_t sink = (size_t)d->n_layers * 2 * c->o.batch * c->rt->n_sink * kv_dim;
    if (sink) { KVQ_CU(cudaMalloc((void **)&c->d_sink, sink * 2)); KVQ_CU(cudaMemset(c->d_sink, 0, sink * 2)); }
    size_t pt = (size_t)c->o.batch * c->max_pages;
    KVQ_CU(cudaMalloc((void **)&c->d_ptab, pt * sizeof(int32_t)));
    KVQ_CU(cudaMemcpy(c->d_ptab, c->h_ptab, pt * sizeof(int32_t), cudaMemcpyHostToDevice));
    KVQ_CU(cudaMalloc((void **)&c->d_lens, c->o.batch * sizeof(uint32_t)));
    KVQ_CU(cudaMemset(c->d_lens, 0, c->o.batch * sizeof(uint32_t)));
    KVQ_CU(cudaMalloc((void **)&c->d_flag, sizeof(int)));
    KVQ_CU(cudaMemset(c->d_flag, 0, sizeof(int)));
    return KVQ_OK;
}

kvq_status kvq_rt_cache_create(kvq_rt_cache **out, const kvq_rt *rt, const kvq_rt_cache_opts *o,
                               char *why, size_t why_len) {
    if (!out || !rt || !o) { kvq_rt_why(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    *out = NULL;
    kvq_rt_cache_opts opt = *o;
    if (!opt.page_tokens) opt.page_tokens = 256;
    if (!opt.batch || !opt.max_tokens || opt.page_tokens % 32 || opt.page_tokens > 65536 ||
        (opt.q_per_block != 0 && opt.q_per_block != 1 && opt.q_per_block != 2 && opt.q_per_block != 4)) {
        kvq_rt_why(why, why_len, "batch %u, max_tokens %u, page_tokens %u: need batch, max_tokens > 0 and "
                   "page_tokens a multiple of 32 up to 65536, q_per_block 0/1/2/4", opt.batch, opt.max_tokens, opt.page_tokens);
        return KVQ_ERR_ARG;
    }
    uint32_t max_pages = (uint32_t)(((uint64_t)opt.max_tokens + opt.page_tokens - 1) / opt.page_tokens);
    if (!opt.n_pages) {
        uint64_t n = (uint64_t)opt.batch * max_pages;
        if (n > INT32_MAX) { kvq_rt_why(why, why_len, "%llu pages: too many", (unsigned long long)n); return KVQ_ERR_OVERFLOW; }
        opt.n_pages = (uint32_t)n;
    }
    if (opt.n_pages > INT32_MAX) { kvq_rt_why(why, why_len, "n_pages %u too large", opt.n_pages); return KVQ_ERR_ARG; }
    kvq_rt_cache *c = (kvq_rt_cache *)calloc(1, sizeof *c);
    if (!c) return KVQ_ERR_NOMEM;
    c->rt = rt;
    c->o = opt;
    c->max_pages = max_pages;
    const kvq_rt_dims *d = &rt->dims;
    size_t pt = (size_t)opt.batch * max_pages;
    c->layers = (kvq_rt_layer *)malloc(d->n_layers * sizeof *c->layers);
    c->d_pools = (uint8_t **)calloc(d->n_layers, sizeof *c->d_pools);
    c->h_ptab = (int32_t *)malloc(pt * sizeof(int32_t));
    c->h_lens = (uint32_t *)calloc(opt.batch, sizeof(uint32_t));
    c->free_pages = (uint32_t *)malloc((size_t)opt.n_pages * sizeof(uint32_t));
    if (!c->layers || !c->d_pools || !c->h_ptab || !c->h_lens || !c->free_pages) { kvq_rt_cache_free(c); return KVQ_ERR_NOMEM; }
    for (size_t i = 0; i < pt; i++) c->h_ptab[i] = -1;
    for (uint32_t i = 0; i < opt.n_pages; i++) c->free_pages[i] = opt.n_pages - 1 - i;  /* pop gives 0 first */
    c->n_free = opt.n_pages;
    for (uint32_t l = 0; l < d->n_layers; l++) {
        c->layers[l] = rt->layers[l];
        kvq_rt_layout_page(&c->layers[l], d, opt.page_tokens);
    }
    kvq_status st = alloc_device(c, why, why_len);
    if (st != KVQ_OK) { kvq_rt_cache_free(c); return st; }
    *out = c;
    return KVQ_OK;
}

kvq_status kvq_rt_cache_set_q_per_block(kvq_rt_cache *c, uint32_t q_per_block) {
    if (!c || (q_per_block != 0 && q_per_block != 1 && q_per_block != 2 && q_per_block != 4)) return KVQ_ERR_ARG;
    c->o.q_per_block = q_per_block;
    return KVQ_OK;
}

size_t kvq_rt_cache_bytes(const kvq_rt_cache *c) {
    if (!c) return 0;
    size_t total = 0;
    for (uint32_t l = 0; l < c->rt->dims.n_layers; l++) total += (size_t)c->o.n_pages * c->layers[l].page_bytes;
    total += (size_t)c->rt->dims.n_layers * 2 * c->o.batch * c->rt->n_sink * c->rt->dims.n_kv_heads * c->rt->dims.head_dim * 2;
    return total;
}

uint32_t kvq_rt_seq_len(const kvq_rt_cache *c, uint32_t seq) {
    return c && seq < c->o.batch ? c->h_lens[seq] : 0;
}

kvq_status kvq_rt_seq_reset(kvq_rt_cache *c, uint32_t seq) {
    char *why = NULL;
    size_t why_len = 0;
    if (!c || seq >= c->o.batch) return KVQ_ERR_ARG;
    int32_t *row = c->h_ptab + (size_t)seq * c->max_pages;
    for (uint32_t p = 0; p < c->max_pages; p++)
        if (row[p] >= 0) { c->free_pages[c->n_free++] = (uint32_t)row[p]; row[p] = -1; }
    c->h_lens[seq] = 0;
    KVQ_CU(cudaMemcpy(c->d_ptab + (size_t)seq * c->max_pages, row, c->max_pages * sizeof(int32_t), cudaMemcpyHostToDevice));
    KVQ_CU(cudaMemcpy(c->d_lens + seq, &c->h_lens[seq], sizeof(uint32_t), cudaMemcpyHostToDevice));
    c->n_step = 0;
    return KVQ_OK;
}

/* Grow the token list buffers of a step to hold n tokens. */
static kvq_status reserve_step(kvq_rt_cache *c, uint32_t n, char *why, size_t why_len) {
    if (n <= c->step_cap) return KVQ_OK;
    if (c->d_tok_seq) { cudaFree(c->d_tok_seq); c->d_tok_seq = NULL; }
    if (c->d_tok_pos) { cudaFree(c->d_tok_pos); c->d_tok_pos = NULL; }
    if (c->d_redo) { cudaFree(c->d_redo); c->d_redo = NULL; }
    c->step_cap = 0;
    KVQ_CU(cudaMalloc((void **)&c->d_tok_seq, (size_t)n * sizeof(uint32_t)));
    KVQ_CU(cudaMalloc((void **)&c->d_tok_pos, (size_t)n * sizeof(uint32_t)));
    KVQ_CU(cudaMalloc((void **)&c->d_redo, (2 + 2 * (size_t)n) * sizeof(uint32_t)));
    c->step_cap = n;
    return KVQ_OK;
}

kvq_status kvq_rt_extend(kvq_rt_cache *c, uint32_t n_seqs, const uint32_t *seq, const uint32_t *n_new,
                         char *why, size_t why_len) {
    if (!c || (n_seqs && (!seq || !n_new))) { kvq_rt_why(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    uint64_t total = 0, pages_needed = 0;
    for (uint32_t i = 0; i < n_seqs; i++) {
        if (seq[i] >= c->o.batch) { kvq_rt_why(why, why_len, "slot %u >= batch %u", seq[i], c->o.batch); return KVQ_ERR_ARG; }
        for (uint32_t j = 0; j < i; j++)
            if (seq[j] == seq[i]) { kvq_rt_why(why, why_len, "slot %u named twice in one extend", seq[i]); return KVQ_ERR_ARG; }
        uint64_t len = c->h_lens[seq[i]], end = len + n_new[i];
        if (end > c->o.max_tokens) {
            kvq_rt_why(why, why_len, "slot %u: %llu + %u tokens exceed max_tokens %u", seq[i], (unsigned long long)len,
                       n_new[i], c->o.max_tokens);
            return KVQ_ERR_CAPACITY;
        }
        uint32_t P = c->o.page_tokens;
        pages_needed += (end + P - 1) / P - (len + P - 1) / P;
        total += n_new[i];
    }
    if (pages_needed > c->n_free) {
        kvq_rt_why(why, why_len, "page pool exhausted: %llu pages needed, %u free", (unsigned long long)pages_needed, c->n_free);
        return KVQ_ERR_CAPACITY;
    }
    if (total > UINT32_MAX) { kvq_rt_why(why, why_len, "too many tokens in one extend"); return KVQ_ERR_OVERFLOW; }
    kvq_status st = reserve_step(c, (uint32_t)total, why, why_len);
    if (st != KVQ_OK) return st;
    uint32_t *h_seq = (uint32_t *)malloc((total ? total : 1) * sizeof(uint32_t));
    uint32_t *h_pos = (uint32_t *)malloc((total ? total : 1) * sizeof(uint32_t));
    if (!h_seq || !h_pos) { free(h_seq); free(h_pos); return KVQ_ERR_NOMEM; }
    size_t k = 0;
    for (uint32_t i = 0; i < n_seqs; i++) {
        uint32_t s = seq[i], P = c->o.page_tokens, len = c->h_lens[s];
        int32_t *row = c->h_ptab + (size_t)s * c->max_pages;
        for (uint32_t t = 0; t < n_new[i]; t++) {
            uint32_t pos = len + t;
            if (row[pos / P] < 0) row[pos / P] = (int32_t)c->free_pages[--c->n_free];
            h_seq[k] = s; h_pos[k] = pos; k++;
        }
        c->h_lens[s] = len + n_new[i];
    }
    c->n_step = (uint32_t)total;
    cudaError_t e = cudaSuccess;
    if (total) e = cudaMemcpy(c->d_tok_seq, h_seq, total * sizeof(uint32_t), cudaMemcpyHostToDevice);
    if (e == cudaSuccess && total) e = cudaMemcpy(c->d_tok_pos, h_pos, total * sizeof(uint32_t), cudaMemcpyHostToDevice);
    free(h_seq);
    free(h_pos);
    if (e != cudaSuccess) { kvq_rt_why(why, why_len, "%s:%d: token list upload: %s", __FILE__, __LINE__, cudaGetErrorString(e)); return KVQ_ERR_CUDA; }
    KVQ_CU(cudaMemcpy(c->d_ptab, c->h_ptab, (size_t)c->o.batch * c->max_pages * sizeof(int32_t), cudaMemcpyHostToDevice));
    KVQ_CU(cudaMemcpy(c->d_lens, c->h_lens, c->o.batch * sizeof(uint32_t), cudaMemcpyHostToDevice));
    return KVQ_OK;
}

/* Copy one token's outlier list for head range [0, H) from a page slot. */
static kvq_status export_list(const uint8_t *page, size_t off_cnt, size_t off_list, uint32_t cap, uint32_t H,
                              uint32_t slot, uint32_t *dst, uint32_t *n, char *why, size_t why_len) {
    uint16_t offs[1025];
    if (H + 1 > 1025) return KVQ_ERR_UNSUPPORTED;
    KVQ_CU(cudaMemcpy(offs, page + off_cnt + (size_t)slot * (H + 1) * 2, (H + 1) * 2, cudaMemcpyDeviceToHost));
    *n = offs[H];
    if (*n > cap) { kvq_rt_why(why, why_len, "stored outlier count %u exceeds capacity %u", *n, cap); return KVQ_ERR_DATA; }
    if (*n) KVQ_CU(cudaMemcpy(dst, page + off_list + (size_t)slot * cap * 4, *n * 4, cudaMemcpyDeviceToHost));
    return KVQ_OK;
}

kvq_status kvq_rt_export_token(const kvq_rt_cache *c, uint32_t layer, uint32_t seq, uint32_t pos,
                               kvq_rt_token *t, char *why, size_t why_len) {
    if (!c || !t || layer >= c->rt->dims.n_layers || seq >= c->o.batch || pos >= c->h_lens[seq]) {
        kvq_rt_why(why, why_len, "no token at layer %u slot %u position %u", layer, seq, pos);
        return KVQ_ERR_ARG;
    }
    const kvq_rt_dims *d = &c->rt->dims;
    const kvq_rt_layer *L = &c->layers[layer];
    kvq_rt_geom g = kvq_rt_geom_of(c, layer);
    uint32_t H = d->n_kv_heads, D = d->head_dim, P = c->o.page_tokens, wph = kvq_rt_wph(D, L->bits);
    t->is_sink = pos < c->rt->n_sink;
    t->n_k_outliers = t->n_v_outliers = 0;
    if (t->is_sink) {
        size_t off = ((size_t)seq * c->rt->n_sink + pos) * g.kv_dim;
        KVQ_CU(cudaMemcpy(t->k_sink, g.k_sink + off, g.kv_dim * 2, cudaMemcpyDeviceToHost));
        KVQ_CU(cudaMemcpy(t->v_sink, g.v_sink + off, g.kv_dim * 2, cudaMemcpyDeviceToHost));
        return KVQ_OK;
    }
    int32_t page = c->h_ptab[(size_t)seq * c->max_pages + pos / P];
    uint32_t slot = pos % P;
    const uint8_t *base = g.pool + (size_t)page * L->page_bytes;
    uint32_t w[16];
    for (int kv = 0; kv < 2; kv++) {
        size_t off = kv ? L->off_vcodes : L->off_kcodes;
        uint8_t *codes = kv ? t->v_codes : t->k_codes;
        for (uint32_t h = 0; h < H; h++) {
            KVQ_CU(cudaMemcpy(w, base + off + ((size_t)h * P + slot) * wph * 4, wph * 4, cudaMemcpyDeviceToHost));
            for (uint32_t i = 0; i < D; i++) codes[h * D + i] = (uint8_t)kvq_rt_get_code(w, i, D, L->bits);
        }
    }
    uint32_t zr[1024];
    if (L->v_groups > 1024) return KVQ_ERR_UNSUPPORTED;
    KVQ_CU(cudaMemcpy(zr, base + L->off_vscale + (size_t)slot * L->v_groups * 4, L->v_groups * 4, cudaMemcpyDeviceToHost));
    for (uint32_t k = 0; k < L->v_groups; k++) { t->v_z[k] = (uint16_t)(zr[k] & 0xFFFF); t->v_r[k] = (uint16_t)(zr[k] >> 16); }
    kvq_status st = export_list(base, L->off_koff, L->off_kout, L->k_cap, H, slot, t->k_outliers, &t->n_k_outliers, why, why_len);
    if (st == KVQ_OK)
        st = export_list(base, L->off_voff, L->off_vout, L->v_cap, H, slot, t->v_outliers, &t->n_v_outliers, why, why_len);
    return st;
}

/* Sum of outlier counts over the stored (non-sink) tokens of one layer. */
__global__ void kvq_count_outliers(kvq_rt_layer L, kvq_rt_geom g, unsigned long long *out) {
    uint32_t seq = blockIdx.y, len = g.lens[seq], H = g.n_kv_heads;
    unsigned long long k = 0, v = 0;
    for (uint32_t pos = g.n_sink + blockIdx.x * blockDim.x + threadIdx.x; pos < len; pos += gridDim.x * blockDim.x) {
        int32_t page = g.page_table[(size_t)seq * g.max_pages + pos / g.page_tokens];
        const uint8_t *base = g.pool + (size_t)page * L.page_bytes;
        uint32_t slot = pos % g.page_tokens;
        k += ((const uint16_t *)(base + L.off_koff))[(size_t)slot * (H + 1) + H];
        v += ((const uint16_t *)(base + L.off_voff))[(size_t)slot * (H + 1) + H];
    }
    atomicAdd(&out[0], k);
    atomicAdd(&out[1], v);
}

kvq_status kvq_rt_cache_stats(const kvq_rt_cache *c, uint32_t layer, kvq_rt_stats *st, char *why, size_t why_len) {
    if (!c || !st || layer >= c->rt->dims.n_layers) { kvq_rt_why(why, why_len, "bad arguments to stats"); return KVQ_ERR_ARG; }
    memset(st, 0, sizeof *st);
    const kvq_rt_layer *L = &c->layers[layer];
    uint32_t H = c->rt->dims.n_kv_heads, D = c->rt->dims.head_dim, ns = c->rt->n_sink;
    for (uint32_t b = 0; b < c->o.batch; b++) {
        st->n_tokens += c->h_lens[b];
        st->n_quantized += c->h_lens[b] > ns ? c->h_lens[b] - ns : 0;
    }
    unsigned long long *d, h[2];
    KVQ_CU(cudaMalloc((void **)&d, sizeof h));
    KVQ_CU(cudaMemset(d, 0, sizeof h));
    kvq_count_outliers<<<dim3(64, c->o.batch), 256>>>(*L, kvq_rt_geom_of(c, layer), d);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    if (e != cudaSuccess) { kvq_rt_why(why, why_len, "%s:%d: outlier count: %s", __FILE__, __LINE__, cudaGetErrorString(e)); return KVQ_ERR_CUDA; }
    st->n_k_outliers = h[0];
    st->n_v_outliers = h[1];
    uint64_t q = st->n_quantized, tokens_sink = st->n_tokens - q;
    st->bytes_read = q * H * (uint64_t)D * L->bits / 8 * 2       /* K and V codes */
                   + q * 4ull * L->v_groups                       /* value scales */
                   + (L->k_cap ? q * H * 4ull : 0) + (L->v_cap ? q * H * 4ull : 0)  /* two u16 offsets per head */
                   + (h[0] + h[1]) * 4ull                         /* outlier entries */
                   + tokens_sink * H * (uint64_t)D * 2 * 2;       /* fp16 sink K and V */
    return KVQ_OK;
}
