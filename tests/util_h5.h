/* util_h5.h — small HDF5 readers for the Check suites: open a file, read a whole dataset as float
 * or int32 (HDF5 converts from the stored type), read a scalar numeric attribute. Failures print
 * one line naming file/dataset/attribute on stderr and return NULL / -1, so a test can assert on
 * them. Not library code: the capture writer lives in calib/. */
#ifndef KVQ_UTIL_H5_H
#define KVQ_UTIL_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Open read-only (HDF5's automatic error printing is turned off); negative on failure. */
hid_t kvq_test_h5_open(const char *path);
void kvq_test_h5_close(hid_t file);   /* accepts negative ids */

/* Whole dataset `name` (a path such as "layers/003/v"), malloc'd, *n elements. NULL on failure. */
float *kvq_test_h5_read_float(hid_t file, const char *name, size_t *n);
int32_t *kvq_test_h5_read_int(hid_t file, const char *name, size_t *n);

/* Scalar numeric attribute `attr` of object `obj` ("/" for the root) as double. 0 or -1. */
int kvq_test_h5_attr_double(hid_t file, const char *obj, const char *attr, double *out);

#endif
