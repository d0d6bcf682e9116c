/* test_json.c — the JSON parser: values, escapes, surrogates, nesting limits, malformed input. */
#include <string.h>

#include "json.h"
#include "kvq_test.h"

static kvq_json *parse_ok(const char *s) {
    kvq_json *v = NULL;
    char why[128];
    kvq_status st = kvq_json_parse(s, strlen(s), &v, why, sizeof why);
    ck_assert_msg(st == KVQ_OK, "parse of %s failed: %s", s, why);
    return v;
}

static void parse_bad(const char *s) {
    kvq_json *v = (kvq_json *)1;
    char why[128] = "";
    kvq_status st = kvq_json_parse(s, strlen(s), &v, why, sizeof why);
    ck_assert_msg(st == KVQ_ERR_FORMAT, "'%s' should be rejected", s);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(why, "byte") != NULL, "message should give the offset: %s", why);
}

START_TEST(test_config_like) {
    kvq_json *v = parse_ok("{\"hidden_size\": 384, \"rms_norm_eps\": 1e-05, \"tie\": false,"
                           " \"name\": \"llama\", \"rope_parameters\": {\"rope_theta\": 10000.0},"
                           " \"list\": [1, 2.5, -3, null, true]}");
    long long h;
    double eps, theta;
    int tie;
    ck_assert(kvq_json_get_int(v, "hidden_size", &h) && h == 384);
    ck_assert(kvq_json_get_number(v, "rms_norm_eps", &eps) && eps == 1e-5);
    ck_assert(kvq_json_get_bool(v, "tie", &tie) && tie == 0);
    ck_assert_str_eq(kvq_json_get_string(v, "name"), "llama");
    ck_assert(kvq_json_get_number(kvq_json_get(v, "rope_parameters"), "rope_theta", &theta) && theta == 10000.0);
    const kvq_json *l = kvq_json_get(v, "list");
    ck_assert_uint_eq(l->len, 5);
    ck_assert(l->items[1]->number == 2.5 && l->items[2]->number == -3);
    ck_assert(l->items[3]->type == KVQ_JSON_NULL && l->items[4]->type == KVQ_JSON_TRUE);
    ck_assert(!kvq_json_get_int(v, "rms_norm_eps", &h)); /* not integral */
    ck_assert_ptr_null(kvq_json_get(v, "absent"));
    kvq_json_free(v);
}
END_TEST

START_TEST(test_string_escapes) {
    /* "Ġ" is U+0120 (GPT-2 byte-level space); U+1F600 needs a surrogate pair. */
    kvq_json *v = parse_ok("[\"a\\\"b\\\\c\\/d\\n\", \"\\u0120x\", \"\\ud83d\\ude00\", \"\\u0000z\"]");
    ck_assert_str_eq(v->items[0]->str, "a\"b\\c/d\n");
    ck_assert_str_eq(v->items[1]->str, "\xC4\xA0x");
    ck_assert_str_eq(v->items[2]->str, "\xF0\x9F\x98\x80");
    ck_assert_uint_eq(v->items[3]->len, 2);
    ck_assert(v->items[3]->str[0] == 0 && v->items[3]->str[1] == 'z');
    kvq_json_free(v);
}
END_TEST

START_TEST(test_malformed) {
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "1e", "-",
                         "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "tru", "[1] 2",
                         "\"a\nb\"", "{1:2}", "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) parse_bad(bad[i]);
}
END_TEST

START_TEST(test_depth_limit) {
    char deep[2 * KVQ_JSON_MAX_DEPTH + 10];
    size_t n = KVQ_JSON_MAX_DEPTH + 4;
    for (size_t i = 0; i < n; i++) { deep[i] = '['; deep[2 * n - 1 - i] = ']'; }
    deep[2 * n] = 0;
    parse_bad(deep);
}
END_TEST

static Suite *json_suite(void) {
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_config_like);
    tcase_add_test(tc, test_string_escapes);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_depth_limit);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_TEST_MAIN(json_suite)
