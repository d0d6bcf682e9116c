/* capture_h5_put.c — the capture writer's hot path (kvq_capture_put_layer; docs/engine-gpu.md
 * "Overlapping the file write"). An OpenMP team stages one layer: per-channel statistics, the
 * finite check, conversion to the storage type and, when the chunks are written directly, each
 * chunk's Fletcher-32 (HDF5's own algorithm and byte order). Meanwhile the calling thread, the
 * only one that ever calls HDF5, writes the previous layer's staged chunks (H5Dwrite_chunk, or
 * H5Dwrite through HDF5's filter pipeline when gzip is on or chunks would not be whole); commit
 * writes the last one. Not the layout, open/resume or commit rule (capture_h5.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "capture_h5_int.h"
#include "kvq_half.h"

enum { STAT_BLOCK = 1024 };   /* channels per statistics work item: a 4 KiB run of each row (narrower
                                 blocks pay a TLB miss and a broken prefetch stream per row) */

static kvq_status fail(char *why, size_t why_len, kvq_status st, const char *msg) {
    if (why && why_len) snprintf(why, why_len, "%s", msg);
    return st;
}

/* HDF5's Fletcher-32 (H5_checksum_fletcher32): big-endian 16-bit words, sums folded every 360
 * words. sum2 over a block is sum2_0 + N·sum1_0 + Σ (N − i)·w_i in uint32 arithmetic, the same
 * value modulo 2^32 as the word-by-word recurrence, so the result is bit-identical. n is even. */
static uint32_t fletcher32(const uint8_t *p, size_t n) {
    uint32_t s1 = 0, s2 = 0;
    size_t words = n / 2;
    while (words) {
        uint32_t len = words > 360 ? 360 : (uint32_t)words, a = 0, b = 0;
        words -= len;
#pragma omp simd reduction(+ : a, b)   /* exact integer sums: any order gives the same */
        for (uint32_t i = 0; i < len; i++) {
            uint32_t w = (uint32_t)p[2 * i] << 8 | p[2 * i + 1];
            a += w;
            b += (len - i) * w;
        }
        p += 2 * (size_t)len;
        s2 += b + len * s1;
        s1 += a;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    return s2 << 16 | s1;
}

/* Statistics of channels [c0, c1) over every row; row-by-row order as ever, so the sums do not
 * depend on the thread count. */
static void stats_block(double *st /* (4, kv) */, const float *x /* (len, kv) */, size_t len, size_t kv,
                        size_t c0, size_t c1) {
    double *sum = st, *sq = st + kv, *mn = st + 2 * kv, *mx = st + 3 * kv;
    for (size_t c = c0; c < c1; c++) { sum[c] = sq[c] = 0; mn[c] = INFINITY; mx[c] = -INFINITY; }
    for (size_t r = 0; r < len; r++) {
        const float *row = x + r * kv;
#pragma omp simd   /* channels are independent: vectorising changes no result */
        for (size_t c = c0; c < c1; c++) {
            double v = row[c];
            sum[c] += v;
            sq[c] += v * v;
            mn[c] = v < mn[c] ? v : mn[c];
            mx[c] = v > mx[c] ? v : mx[c];
        }
    }
}

/* Rows [r0, r0 + rows) converted into dst (the storage type), then (direct) the checksum after. */
static void stage_chunk(uint8_t *dst, const float *x /* (rows, kv) */, size_t rows, size_t kv,
                        kvq_capture_dtype td, int direct) {
    size_t n = rows * kv, bytes = n * kvq_cap_elem_size(td);
    if (td == KVQ_CAPTURE_F32) {
        memcpy(dst, x, bytes);
    } else if (td == KVQ_CAPTURE_F16) {
        uint16_t *h = (uint16_t *)dst;   /* dst is 2-byte aligned (even offsets into malloc'ed buf) */
        for (size_t i = 0; i < n; i++) h[i] = kvq_f32_to_f16(x[i]);
    } else {
        uint16_t *h = (uint16_t *)dst;
#pragma omp simd
        for (size_t i = 0; i < n; i++) h[i] = kvq_f32_to_bf16(x[i]);
    }
    if (direct) {
        uint32_t f = fletcher32(dst, bytes);
        uint8_t le[4] = {(uint8_t)f, (uint8_t)(f >> 8), (uint8_t)(f >> 16), (uint8_t)(f >> 24)};
        memcpy(dst + bytes, le, 4);
    }
}

kvq_status kvq_cap_append_rows(hid_t ds, hid_t mtype, int rank, hsize_t rows0, hsize_t rows,
                               const void *buf, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    hsize_t dims[3], start[3] = {rows0, 0, 0};
    hid_t fs = -1, ms = -1, sp = -1;
    KVQ_H5(sp = H5Dget_space(ds));
    if (H5Sget_simple_extent_dims(sp, dims, NULL) != rank) { st = KVQ_ERR_SHAPE; goto done; }
    dims[0] = rows0 + rows;
    KVQ_H5(H5Dset_extent(ds, dims));
    KVQ_H5(fs = H5Dget_space(ds));
    dims[0] = rows;
    KVQ_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL));
    KVQ_H5(ms = H5Screate_simple(rank, dims, NULL));
    KVQ_H5(H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, buf));
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

/* Extend and write one staged tensor: whole checksummed chunks, or rows through HDF5's filters. */
static kvq_status write_tensor(kvq_capture_writer *w, const kvq_cap_stage *s, int t, char *why, size_t why_len) {
    kvq_status st = KVQ_OK;
    size_t i = (size_t)s->slot * KVQ_CAPTURE_N_TENSORS + (size_t)t;
    kvq_capture_dtype td = kvq_capture_tensor_dtype(w->meta.dtype, (kvq_capture_tensor)t);
    hid_t ftype = -1;
    if (s->direct) {
        hsize_t dims[2] = {w->n_rows + s->len, w->kv_dim}, off[2] = {w->n_rows, 0};
        size_t cb = s->chunk_rows * w->kv_dim * kvq_cap_elem_size(td) + 4;
        KVQ_H5(H5Dset_extent(w->tens[i], dims));
        for (size_t k = 0; k < s->len / s->chunk_rows; k++, off[0] += s->chunk_rows)
            KVQ_H5(H5Dwrite_chunk(w->tens[i], H5P_DEFAULT, 0, off, cb, s->buf[t] + k * cb));
    } else {
        KVQ_H5(ftype = kvq_cap_file_type(td));
        st = kvq_cap_append_rows(w->tens[i], ftype, 2, w->n_rows, s->len, s->buf[t], why, why_len);
    }
    if (!st) st = kvq_cap_append_rows(w->stats[i], H5T_NATIVE_DOUBLE, 3, w->n_samples, 1, s->stats[t], why, why_len);
done:
    if (ftype >= 0) H5Tclose(ftype);
    return st;
}

kvq_status kvq_cap_write_pending(kvq_capture_writer *w, char *why, size_t why_len) {
    kvq_cap_stage *s = &w->stage[w->pending];
    kvq_status st = KVQ_OK;
    if (!s->full) return KVQ_OK;
    int t = 0;
    for (; t < s->nt && !st; t++) st = write_tensor(w, s, t, why, why_len);
    s->full = 0;
    if (st) {
        size_t len = why ? strlen(why) : 0;
        char msg[512];
        if (len && why_len > 1) {   /* prefix the layer and tensor that failed */
            snprintf(msg, sizeof msg, "writing layer %u %s: ", w->meta.layers[s->slot],
                     kvq_capture_tensor_name((kvq_capture_tensor)(t - 1)));
            size_t m = strlen(msg);
            if (m + len < why_len) {
                memmove(why + m, why, len + 1);
                memcpy(why, msg, m);
            }
        }
        w->broken = 1;
        return st;
    }
    w->put[s->slot] = 1;
    return KVQ_OK;
}

/* Room in stage s for one layer of the current sample. */
static kvq_status stage_reserve(kvq_capture_writer *w, kvq_cap_stage *s, int nt, int direct) {
    size_t kv = w->kv_dim, n = w->cur_len * kv;
    for (int t = 0; t < nt; t++) {
        size_t es = kvq_cap_elem_size(kvq_capture_tensor_dtype(w->meta.dtype, (kvq_capture_tensor)t));
        size_t need = n * es + (direct ? 4 * (w->cur_len / s->chunk_rows) : 0);  /* n < 2^54: no overflow */
        if (need > s->cap[t]) {
            uint8_t *b = realloc(s->buf[t], need);
            if (!b) return KVQ_ERR_NOMEM;
            s->buf[t] = b;
            s->cap[t] = need;
        }
        if (!s->stats[t] && !(s->stats[t] = malloc(4 * kv * sizeof(double)))) return KVQ_ERR_NOMEM;
    }
    return KVQ_OK;
}

static kvq_status check_finite(const kvq_capture_writer *w, uint32_t slot, int t, const float *x,
                               char *why, size_t why_len) {
    size_t n = w->cur_len * w->kv_dim;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            if (why) snprintf(why, why_len, "%s at layer %u %s, row %zu channel %zu of sample %u "
                              "(window start %llu)", isnan(x[i]) ? "NaN" : "Inf", w->meta.layers[slot],
                              kvq_capture_tensor_name((kvq_capture_tensor)t), i / w->kv_dim,
                              i % w->kv_dim, w->n_samples, (unsigned long long)w->cur_window);
            return KVQ_ERR_NONFINITE;
        }
    return KVQ_OK;
}

/* Stage `tensors` into s with the writer's team while this thread writes the pending layer.
 * Work items: per tensor, the statistics blocks (unless given), then the chunks. */
static kvq_status stage_parallel(kvq_capture_writer *w, kvq_cap_stage *s, const float *const tensors[4],
                                 int stats_given, char *why, size_t why_len) {
    size_t kv = w->kv_dim, nb = stats_given ? 0 : (kv + STAT_BLOCK - 1) / STAT_BLOCK;
    size_t rows = s->direct ? s->chunk_rows : w->cur_len, nc = w->cur_len / rows, per = nb + nc;
    long items = (long)(per * (size_t)s->nt);
    kvq_status wst = KVQ_OK;
    char wwhy[512] = "";
    int threads = w->threads > 0 ? w->threads : 1;
#ifdef _OPENMP
    if (w->threads <= 0) threads = omp_get_max_threads();
#endif
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            wst = kvq_cap_write_pending(w, wwhy, sizeof wwhy);   /* HDF5: this thread only */
#pragma omp for schedule(dynamic, 1) nowait
        for (long it = 0; it < items; it++) {
            int t = (int)((size_t)it / per);
            size_t j = (size_t)it % per;
            kvq_capture_dtype td = kvq_capture_tensor_dtype(w->meta.dtype, (kvq_capture_tensor)t);
            if (j < nb) {
                size_t c0 = j * STAT_BLOCK, c1 = c0 + STAT_BLOCK < kv ? c0 + STAT_BLOCK : kv;
                stats_block(s->stats[t], tensors[t], w->cur_len, kv, c0, c1);
            } else {
                size_t k = j - nb, cb = rows * kv * kvq_cap_elem_size(td) + (s->direct ? 4 : 0);
                stage_chunk(s->buf[t] + k * cb, tensors[t] + k * rows * kv, rows, kv, td, s->direct);
            }
        }
    }
    if (wst && why) snprintf(why, why_len, "%s", wwhy);
    return wst;
}

kvq_status kvq_cap_put_layer_ex(kvq_capture_writer *w, uint32_t slot, const float *const tensors[4],
                                const double *const stats[4], char *why, size_t why_len) {
    kvq_status st = kvq_cap_usable(w, 1, why, why_len);
    if (st) return st;
    if (slot >= w->meta.n_captured) return fail(why, why_len, KVQ_ERR_ARG, "layer slot out of range");
    kvq_cap_stage *pend = &w->stage[w->pending], *s = &w->stage[!w->pending];
    if (w->put[slot] || (pend->full && pend->slot == slot))
        return fail(why, why_len, KVQ_ERR_ARG, "layer slot already written in this sample");
    int nt = w->meta.fisher ? 4 : 2;
    for (int t = 0; t < KVQ_CAPTURE_N_TENSORS; t++)
        if (!tensors[t] != (t >= nt))
            return fail(why, why_len, KVQ_ERR_ARG, t < nt ? "a tensor is missing"
                                                                : "Fisher given to a capture without Fisher");
    if (stats)   /* merge: statistics copied, the data still checked */
        for (int t = 0; t < nt; t++)
            if ((st = check_finite(w, slot, t, tensors[t], why, why_len))) return st;
    s->slot = slot;
    s->nt = nt;
    s->len = w->cur_len;
    s->chunk_rows = (size_t)kvq_cap_chunk_rows(&w->meta);
    s->direct = w->direct && !w->meta.compress && w->cur_len % s->chunk_rows == 0 &&
                w->n_rows % s->chunk_rows == 0;
    if ((st = stage_reserve(w, s, nt, s->direct))) {
        if (why) snprintf(why, why_len, "out of memory staging layer %u", w->meta.layers[slot]);
        w->broken = 1;
        return st;
    }
    if ((st = stage_parallel(w, s, tensors, stats != NULL, why, why_len))) return st;   /* broken already */
    for (int t = 0; t < nt; t++) {
        if (stats) {
            memcpy(s->stats[t], stats[t], 4 * (size_t)w->kv_dim * sizeof(double));
            continue;
        }
        /* every value finite <=> every channel's sum and sum of squares finite (fp32 values cannot
         * overflow a double sum of < 2^30 rows); name the first bad value on failure */
        for (size_t c = 0; c < w->kv_dim; c++)
            if (!isfinite(s->stats[t][c]) || !isfinite(s->stats[t][w->kv_dim + c]))
                return check_finite(w, slot, t, tensors[t], why, why_len);
    }
    s->full = 1;
    w->pending = !w->pending;
    return KVQ_OK;
}

kvq_status kvq_capture_put_layer(kvq_capture_writer *w, uint32_t slot, const float *k, const float *v,
                                 const float *fisher_k, const float *fisher_v, char *why, size_t why_len) {
    const float *const t[4] = {k, v, fisher_k, fisher_v};
    kvq_cap_quiet q;
    kvq_cap_quiet_begin(&q);
    kvq_status st = kvq_cap_put_layer_ex(w, slot, t, NULL, why, why_len);
    kvq_cap_quiet_end(&q);
    return st;
}
