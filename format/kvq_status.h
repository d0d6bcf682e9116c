/* kvq_status.h — the one status enum every kvq library function returns, and its names.
 * Library code never exits or prints; it returns one of these and programs turn it into a message.
 * Values are stable (they are exit codes too, see docs/cli.md): append, never renumber. */
#ifndef KVQ_STATUS_H
#define KVQ_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvq_status {
    KVQ_OK = 0,
    KVQ_ERR_IO = 1,            /* open/read/write/fsync/rename failed (errno has more) */
    KVQ_ERR_NOMEM = 2,         /* allocation failed */
    KVQ_ERR_ARG = 3,           /* invalid argument from the caller (NULL, out of range, bad option) */
    KVQ_ERR_TRUNCATED = 4,     /* input ends before the structure it promises */
    KVQ_ERR_MAGIC = 5,         /* not a file of the expected kind */
    KVQ_ERR_VERSION = 6,       /* unknown (future) major version */
    KVQ_ERR_CHECKSUM = 7,      /* a CRC does not match */
    KVQ_ERR_MISALIGNED = 8,    /* a payload offset is not aligned as the format requires */
    KVQ_ERR_OVERLAP = 9,       /* payloads overlap or leave holes */
    KVQ_ERR_BOUNDS = 10,       /* an offset or size points outside the buffer */
    KVQ_ERR_OVERFLOW = 11,     /* a count or size product overflows */
    KVQ_ERR_FORMAT = 12,       /* malformed content (bad type tag, bad UTF-8, bad JSON, ...) */
    KVQ_ERR_MISSING = 13,      /* a required key, tensor or entry is absent */
    KVQ_ERR_SHAPE = 14,        /* shapes disagree with each other or with the config */
    KVQ_ERR_DTYPE = 15,        /* unsupported or unexpected element type */
    KVQ_ERR_MISMATCH = 16,     /* artifacts from different models/settings used together */
    KVQ_ERR_NONFINITE = 17,    /* NaN or Inf in data that must be finite */
    KVQ_ERR_UNSUPPORTED = 18,  /* valid input that this build does not handle */
    KVQ_ERR_HDF5 = 19,         /* an HDF5 call failed */
    KVQ_ERR_CUDA = 20,         /* a CUDA or cuBLAS call failed */
    KVQ_ERR_CAPACITY = 21,     /* a fixed-capacity structure is full */
    KVQ_ERR_DATA = 22,         /* data unsuitable for the operation (too few distinct values, ...) */
    KVQ_STATUS_COUNT_
} kvq_status;

/* Short stable name, e.g. "KVQ_ERR_CHECKSUM". Never NULL. */
const char *kvq_status_name(kvq_status s);
/* One-line human description, e.g. "checksum mismatch". Never NULL. */
const char *kvq_status_message(kvq_status s);

#ifdef __cplusplus
}
#endif
#endif
