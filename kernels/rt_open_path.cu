/* rt_open_path.cu — kvq_rt_open_path: read a .kvqc file with the format module and open it.
 * Kept apart from rt_host.cu so programs that never read files need not link format/'s reader. */
#include <string.h>
#include "rt_internal.cuh"

kvq_status kvq_rt_open_path(kvq_rt **out, const char *path, const kvq_rt_dims *d, char *why, size_t why_len) {
    if (!out || !path) { kvq_rt_why(why, why_len, "NULL argument"); return KVQ_ERR_ARG; }
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    kvq_status st = kvq_codebook_read(path, &cb, why, why_len);
    if (st == KVQ_OK) st = kvq_rt_open(out, &cb, d, why, why_len);
    kvq_codebook_free(&cb);
    return st;
}
