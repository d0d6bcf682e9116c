/* mapped_file.h — read-only memory mapping of a whole file, for the model loaders (GGUF,
 * safetensors, llama2.c). Not a writer, not a cache: one mapping per open, released by close. */
#ifndef KVQ_MAPPED_FILE_H
#define KVQ_MAPPED_FILE_H

#include <stddef.h>
#include "kvq_status.h"

typedef struct kvq_mapped_file {
    const unsigned char *data;  /* (size) bytes, read-only; NULL when size == 0 */
    size_t size;
} kvq_mapped_file;

/* Map `path` read-only. Empty files give data == NULL, size == 0 and KVQ_OK. On error `why`
 * names the file and the failing call (errno text). */
kvq_status kvq_mapped_file_open(const char *path, kvq_mapped_file *out, char *why, size_t why_len);
void kvq_mapped_file_close(kvq_mapped_file *f);   /* accepts NULL and zeroed structs */

#endif
