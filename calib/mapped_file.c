/* mapped_file.c — mmap a whole file read-only (see mapped_file.h). */
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

kvq_status kvq_mapped_file_open(const char *path, kvq_mapped_file *out, char *why, size_t why_len) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "%s: open: %s", path, strerror(errno));
        return KVQ_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "%s: not a regular file", path);
        close(fd);
        return KVQ_ERR_IO;
    }
    if (st.st_size == 0) { close(fd); return KVQ_OK; }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(why, why_len, "%s: mmap: %s", path, strerror(err));
        return err == ENOMEM ? KVQ_ERR_NOMEM : KVQ_ERR_IO;
    }
    out->data = p;
    out->size = (size_t)st.st_size;
    return KVQ_OK;
}

void kvq_mapped_file_close(kvq_mapped_file *f) {
    if (!f) return;
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}
