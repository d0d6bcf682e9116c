/* kvq_status.c — names and messages of kvq_status values. */
#include "kvq_status.h"

static const struct { const char *name, *message; } table[KVQ_STATUS_COUNT_] = {
    [KVQ_OK] = {"KVQ_OK", "success"},
    [KVQ_ERR_IO] = {"KVQ_ERR_IO", "I/O error"},
    [KVQ_ERR_NOMEM] = {"KVQ_ERR_NOMEM", "out of memory"},
    [KVQ_ERR_ARG] = {"KVQ_ERR_ARG", "invalid argument"},
    [KVQ_ERR_TRUNCATED] = {"KVQ_ERR_TRUNCATED", "truncated input"},
    [KVQ_ERR_MAGIC] = {"KVQ_ERR_MAGIC", "bad magic number (not a file of this kind)"},
    [KVQ_ERR_VERSION] = {"KVQ_ERR_VERSION", "unsupported format version"},
    [KVQ_ERR_CHECKSUM] = {"KVQ_ERR_CHECKSUM", "checksum mismatch"},
    [KVQ_ERR_MISALIGNED] = {"KVQ_ERR_MISALIGNED", "misaligned payload"},
    [KVQ_ERR_OVERLAP] = {"KVQ_ERR_OVERLAP", "overlapping or non-contiguous payloads"},
    [KVQ_ERR_BOUNDS] = {"KVQ_ERR_BOUNDS", "offset or size out of bounds"},
    [KVQ_ERR_OVERFLOW] = {"KVQ_ERR_OVERFLOW", "size overflow"},
    [KVQ_ERR_FORMAT] = {"KVQ_ERR_FORMAT", "malformed content"},
    [KVQ_ERR_MISSING] = {"KVQ_ERR_MISSING", "required item missing"},
    [KVQ_ERR_SHAPE] = {"KVQ_ERR_SHAPE", "shape mismatch"},
    [KVQ_ERR_DTYPE] = {"KVQ_ERR_DTYPE", "unsupported element type"},
    [KVQ_ERR_MISMATCH] = {"KVQ_ERR_MISMATCH", "artifacts do not belong together"},
    [KVQ_ERR_NONFINITE] = {"KVQ_ERR_NONFINITE", "NaN or Inf in data"},
    [KVQ_ERR_UNSUPPORTED] = {"KVQ_ERR_UNSUPPORTED", "unsupported feature"},
    [KVQ_ERR_HDF5] = {"KVQ_ERR_HDF5", "HDF5 error"},
    [KVQ_ERR_CUDA] = {"KVQ_ERR_CUDA", "CUDA error"},
    [KVQ_ERR_CAPACITY] = {"KVQ_ERR_CAPACITY", "capacity exceeded"},
    [KVQ_ERR_DATA] = {"KVQ_ERR_DATA", "data unsuitable for this operation"},
};

const char *kvq_status_name(kvq_status s) {
    if ((unsigned)s >= KVQ_STATUS_COUNT_) return "KVQ_ERR_UNKNOWN";
    return table[s].name;
}

const char *kvq_status_message(kvq_status s) {
    if ((unsigned)s >= KVQ_STATUS_COUNT_) return "unknown status";
    return table[s].message;
}
