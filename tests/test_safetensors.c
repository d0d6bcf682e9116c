/* test_safetensors.c — the single-file safetensors reader (calib/safetensors.h) on files built
 * here: a valid two-tensor file (values written by this test, read back), and every layout error
 * the format forbids — holes, overlaps, trailing bytes, sizes that disagree with dtype x shape,
 * header length over the cap or past the end, unknown dtypes, duplicate names, bad JSON, every
 * truncation. Expected outcomes follow from the safetensors format rules (docs/models.md). */
#include <stdio.h>
#include <string.h>

#include "kvq_test.h"
#include "safetensors.h"

typedef struct { unsigned char b[1024]; size_t n; } stbuf;

/* 8-byte length + header + `data_len` bytes of data (0, 1, 2, ...). */
static void build(stbuf *s, const char *header, size_t data_len) {
    uint64_t hl = strlen(header);
    memcpy(s->b, &hl, 8);
    memcpy(s->b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) s->b[8 + hl + i] = (unsigned char)i;
    s->n = 8 + hl + data_len;
}

static kvq_status parse(const stbuf *s, size_t len, char *why) {
    kvq_safetensors st;
    kvq_status r = kvq_safetensors_parse(s->b, len, "t.safetensors", &st, why, 256);
    kvq_safetensors_free(&st);
    return r;
}

#define GOOD "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}," \
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}"

START_TEST(test_good) {
    stbuf s;
    build(&s, GOOD, 12);
    kvq_safetensors st;
    char why[256];
    ck_assert_msg(kvq_safetensors_parse(s.b, s.n, "t", &st, why, sizeof why) == KVQ_OK, "%s", why);
    ck_assert_uint_eq(st.n_tensors, 2);
    const kvq_st_tensor *a = kvq_safetensors_find(&st, "a"), *b = kvq_safetensors_find(&st, "b");
    ck_assert(a && b && !kvq_safetensors_find(&st, "__metadata__"));
    ck_assert(a->dtype == KVQ_ST_F32 && a->n_dims == 2 && a->shape[0] == 1 && a->shape[1] == 2 && a->n_elements == 2);
    ck_assert(b->dtype == KVQ_ST_BF16 && b->data[0] == 8 && b->data[3] == 11);
    ck_assert(a->data == s.b + 8 + st.header_len && a->data[7] == 7);
    kvq_safetensors_free(&st);
    kvq_safetensors_free(&st);
    kvq_safetensors_free(NULL);
}
END_TEST

START_TEST(test_layout_errors) {
    struct { const char *hdr; size_t data; kvq_status want; const char *needle; } c[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, KVQ_ERR_OVERLAP, "hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, KVQ_ERR_OVERLAP, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 9, KVQ_ERR_OVERLAP, "after the last"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, KVQ_ERR_BOUNDS, "'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, KVQ_ERR_SHAPE, "dtype x shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, KVQ_ERR_BOUNDS, "'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", 8, KVQ_ERR_BOUNDS, "'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, KVQ_ERR_SHAPE, "'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         KVQ_ERR_OVERFLOW, "overflow"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, KVQ_ERR_DTYPE, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, KVQ_ERR_FORMAT, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", 8, KVQ_ERR_FORMAT, "twice"},
        {"{\"a\":1}", 0, KVQ_ERR_FORMAT, "'a'"},
        {"[1]", 0, KVQ_ERR_FORMAT, "object"},
        {"{\"a\":", 0, KVQ_ERR_FORMAT, "JSON"}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        stbuf s;
        char why[256] = "";
        build(&s, c[i].hdr, c[i].data);
        kvq_status got = parse(&s, s.n, why);
        ck_assert_msg(got == c[i].want, "case %zu: got %s (%s)", i, kvq_status_name(got), why);
        ck_assert_msg(strstr(why, c[i].needle) && strstr(why, "t.safetensors"), "case %zu: message '%s'", i, why);
    }
}
END_TEST

START_TEST(test_header_length) {
    stbuf s;
    char why[256];
    build(&s, GOOD, 12);
    uint64_t hl = KVQ_ST_MAX_HEADER + 1;
    memcpy(s.b, &hl, 8);
    ck_assert_int_eq(parse(&s, s.n, why), KVQ_ERR_OVERFLOW);
    ck_assert(strstr(why, "cap") != NULL);
    hl = 2000;
    memcpy(s.b, &hl, 8);
    ck_assert_int_eq(parse(&s, s.n, why), KVQ_ERR_TRUNCATED);
    hl = UINT64_MAX;
    memcpy(s.b, &hl, 8);
    ck_assert_int_eq(parse(&s, s.n, why), KVQ_ERR_OVERFLOW);
}
END_TEST

START_TEST(test_every_truncation) {
    stbuf s;
    build(&s, GOOD, 12);
    for (size_t len = 0; len < s.n; len++) {
        char why[256] = "";
        ck_assert_msg(parse(&s, len, why) != KVQ_OK, "prefix %zu accepted", len);
        ck_assert_msg(strstr(why, "t.safetensors") != NULL, "prefix %zu: %s", len, why);
    }
}
END_TEST

static Suite *st_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_good);
    tcase_add_test(tc, test_layout_errors);
    tcase_add_test(tc, test_header_length);
    tcase_add_test(tc, test_every_truncation);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(st_suite)
