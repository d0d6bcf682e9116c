/* util_h5.c — implementation of the test HDF5 readers in util_h5.h. Every HDF5 call is checked. */
#include "util_h5.h"

#include <stdio.h>
#include <stdlib.h>

hid_t kvq_test_h5_open(const char *path) {
    if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0) return -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fprintf(stderr, "util_h5: cannot open %s\n", path);
    return f;
}

void kvq_test_h5_close(hid_t file) {
    if (file >= 0 && H5Fclose(file) < 0) fprintf(stderr, "util_h5: H5Fclose failed\n");
}

/* Read dataset `name` converted to `mem_type` elements of `size` bytes. */
static void *read_dataset(hid_t file, const char *name, hid_t mem_type, size_t size, size_t *n) {
    void *buf = NULL;
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT), sp = -1;
    if (ds < 0) { fprintf(stderr, "util_h5: no dataset %s\n", name); return NULL; }
    sp = H5Dget_space(ds);
    hssize_t count = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (count < 0) {
        fprintf(stderr, "util_h5: cannot size dataset %s\n", name);
    } else if (!(buf = malloc(count ? (size_t)count * size : 1))) {
        fprintf(stderr, "util_h5: out of memory for %s\n", name);
    } else if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "util_h5: cannot read dataset %s\n", name);
        free(buf);
        buf = NULL;
    } else {
        *n = (size_t)count;
    }
    if (sp >= 0 && H5Sclose(sp) < 0) fprintf(stderr, "util_h5: H5Sclose failed (%s)\n", name);
    if (H5Dclose(ds) < 0) fprintf(stderr, "util_h5: H5Dclose failed (%s)\n", name);
    return buf;
}

float *kvq_test_h5_read_float(hid_t file, const char *name, size_t *n) {
    return read_dataset(file, name, H5T_NATIVE_FLOAT, sizeof(float), n);
}

int32_t *kvq_test_h5_read_int(hid_t file, const char *name, size_t *n) {
    return read_dataset(file, name, H5T_NATIVE_INT32, sizeof(int32_t), n);
}

int kvq_test_h5_attr_double(hid_t file, const char *obj, const char *attr, double *out) {
    hid_t a = H5Aopen_by_name(file, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) { fprintf(stderr, "util_h5: no attribute %s on %s\n", attr, obj); return -1; }
    hid_t sp = H5Aget_space(a);
    int rc = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 ? 0 : -1;
    if (rc) fprintf(stderr, "util_h5: attribute %s on %s is not a scalar\n", attr, obj);
    if (!rc && H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0) {
        fprintf(stderr, "util_h5: cannot read attribute %s on %s as a number\n", attr, obj);
        rc = -1;
    }
    if (sp >= 0 && H5Sclose(sp) < 0) rc = -1;
    if (H5Aclose(a) < 0) rc = -1;
    return rc;
}
