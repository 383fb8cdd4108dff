/*
 * test_request.c - unit tests of src/sessiond/request.c: every request kind
 * with good input and with each kind of bad input (truncated JSON, wrong
 * types, missing fields, bad IP, bad user ids, data that is not an object
 * or nests too deep or is too large, malformed session IDs), that error
 * messages never quote a session ID, and the path helpers (percent
 * decoding, UTF-8, handles).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "request.h"

/* 43 base64url characters encoding 256 bits (final character canonical). */
#define GOOD_ID "WEO-tOXcvJi36pLsY7qrCcHEraCTLGl-SFLcFrEt2do"

static char msg[256];

static sessiond_parse_result parse(sessiond_request_kind kind,
                                   const char *body, sessiond_request *r)
{
    return sessiond_request_parse(kind, body, strlen(body), r, msg,
                                  sizeof(msg));
}

/* Assert that "body" is refused as "kind" with a message containing
 * "part". */
static void expect_bad(sessiond_request_kind kind, const char *body,
                       const char *part)
{
    sessiond_request r;
    sessiond_parse_result pr = parse(kind, body, &r);
    if (pr != SESSIOND_PARSE_BAD || strstr(msg, part) == NULL) {
        print_error("%s: body %s: result %d, message '%s' (wanted '%s')\n",
                    sessiond_request_kind_name(kind), body, (int)pr, msg,
                    part);
        sessiond_request_free(&r);
        fail();
    }
    sessiond_request_free(&r);
}

static void test_create_ok(void **state)
{
    (void)state;
    sessiond_request r;
    assert_int_equal(parse(SESSIOND_REQ_CREATE,
                           "{\"user_id\":\"alice\",\"client\":{\"ip\":"
                           "\"203.0.113.7\",\"user_agent\":\"UA\","
                           "\"accept_language\":\"en\"},\"data\":{\"a\": [1, "
                           "2]},\"remember\":true,\"elevated\":true,"
                           "\"unknown\":1}",
                           &r),
                     SESSIOND_PARSE_OK);
    assert_int_equal(r.user_id_len, 5);
    assert_memory_equal(r.user_id, "alice", 5);
    assert_true(r.has_client);
    assert_string_equal(r.client.ip, "203.0.113.7");
    assert_string_equal(r.client.user_agent, "UA");
    assert_string_equal(r.client.accept_language, "en");
    assert_string_equal(r.data, "{\"a\":[1,2]}");
    assert_int_equal(r.data_len, strlen(r.data));
    assert_true(r.remember);
    assert_true(r.has_elevated);
    assert_true(r.elevated);
    sessiond_request_free(&r);

    /* Optional members may be absent or null; IPv6 clients. */
    assert_int_equal(parse(SESSIOND_REQ_CREATE,
                           "{\"user_id\":\"\\u00e9\",\"client\":{\"ip\":"
                           "\"2001:db8::1\",\"user_agent\":null},"
                           "\"data\":null}",
                           &r),
                     SESSIOND_PARSE_OK);
    assert_int_equal(r.user_id_len, 2);
    assert_null(r.client.user_agent);
    assert_null(r.data);
    assert_false(r.remember);
    assert_false(r.has_elevated);
    sessiond_request_free(&r);
}

static void test_create_bad(void **state)
{
    (void)state;
    const sessiond_request_kind k = SESSIOND_REQ_CREATE;
    expect_bad(k, "{\"client\":{\"ip\":\"1.2.3.4\"}}", "\"user_id\" is required");
    expect_bad(k, "{\"user_id\":\"u\"}", "\"client\" is required");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{}}", "client.ip");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":\"1.2.3.4\"}",
               "must be an object");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{\"ip\":\"1.2.3.256\"}}",
               "not an IPv4 or IPv6 address");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{\"ip\":\"fe80::1%eth0\"}}",
               "not an IPv4 or IPv6 address");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{\"ip\":7}}",
               "must be a string");
    expect_bad(k, "{\"user_id\":5,\"client\":{\"ip\":\"1.2.3.4\"}}",
               "must be a string");
    expect_bad(k, "{\"user_id\":\"\",\"client\":{\"ip\":\"1.2.3.4\"}}",
               "1 to 256 bytes");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{\"ip\":\"1.2.3.4\"},"
                  "\"data\":[1]}",
               "\"data\" must be an object");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{\"ip\":\"1.2.3.4\"},"
                  "\"remember\":\"yes\"}",
               "true or false");
    expect_bad(k, "{\"user_id\":\"u\",\"client\":{\"ip\":\"1.2.3.4\"},"
                  "\"elevated\":1}",
               "true or false");
    /* Invalid UTF-8 (jansson refuses it) and NUL in a string. */
    expect_bad(k, "{\"user_id\":\"\xff\",\"client\":{\"ip\":\"1.2.3.4\"}}",
               "UTF-8");
    expect_bad(k, "{\"user_id\":\"a\\u0000b\",\"client\":{\"ip\":\"1.2.3.4\"}}",
               "NUL");
}

static void test_user_id_bounds(void **state)
{
    (void)state;
    char body[1024];
    char id[SESS_USER_ID_MAX + 2];
    sessiond_request r;

    memset(id, 'a', sizeof(id));
    id[SESS_USER_ID_MAX] = '\0';
    snprintf(body, sizeof(body),
             "{\"user_id\":\"%s\",\"client\":{\"ip\":\"::1\"}}", id);
    assert_int_equal(parse(SESSIOND_REQ_CREATE, body, &r), SESSIOND_PARSE_OK);
    assert_int_equal(r.user_id_len, SESS_USER_ID_MAX);
    sessiond_request_free(&r);

    id[SESS_USER_ID_MAX] = 'a';
    id[SESS_USER_ID_MAX + 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"user_id\":\"%s\",\"client\":{\"ip\":\"::1\"}}", id);
    expect_bad(SESSIOND_REQ_CREATE, body, "1 to 256 bytes");
}

/* {"a":{"a":...1...}} with "levels" objects. */
static char *nested(int levels)
{
    size_t cap = (size_t)levels * 8 + 16;
    char *s = malloc(cap);
    size_t o = 0;
    assert_non_null(s);
    for (int i = 0; i < levels - 1; i++)
        o += (size_t)snprintf(s + o, cap - o, "{\"a\":");
    o += (size_t)snprintf(s + o, cap - o, "{\"a\":1}");
    for (int i = 0; i < levels - 1; i++)
        s[o++] = '}';
    s[o] = '\0';
    return s;
}

static void test_data_depth_and_size(void **state)
{
    (void)state;
    sessiond_request r;
    char *d;
    char *body;
    size_t cap;

    d = nested(SESSIOND_DATA_DEPTH_MAX);
    cap = strlen(d) + 128;
    body = malloc(cap);
    assert_non_null(body);
    snprintf(body, cap, "{\"session_id\":\"%s\",\"data\":%s}", GOOD_ID, d);
    assert_int_equal(parse(SESSIOND_REQ_DATA, body, &r), SESSIOND_PARSE_OK);
    sessiond_request_free(&r);
    free(body);
    free(d);

    d = nested(SESSIOND_DATA_DEPTH_MAX + 1);
    cap = strlen(d) + 128;
    body = malloc(cap);
    assert_non_null(body);
    snprintf(body, cap, "{\"session_id\":\"%s\",\"data\":%s}", GOOD_ID, d);
    expect_bad(SESSIOND_REQ_DATA, body, "nested deeper than 32");
    free(body);
    free(d);

    /* Arrays count as levels too. */
    expect_bad(SESSIOND_REQ_DATA,
               "{\"session_id\":\"" GOOD_ID "\",\"data\":{\"a\":"
               "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
               "nested deeper");

    /* Data larger than the library takes: 413, not 400. */
    cap = SESS_DATA_MAX + 256;
    body = malloc(cap);
    assert_non_null(body);
    size_t o = (size_t)snprintf(body, cap,
                                "{\"session_id\":\"%s\",\"data\":{\"a\":\"",
                                GOOD_ID);
    memset(body + o, 'x', SESS_DATA_MAX);
    o += SESS_DATA_MAX;
    snprintf(body + o, cap - o, "\"}}");
    assert_int_equal(parse(SESSIOND_REQ_DATA, body, &r),
                     SESSIOND_PARSE_TOO_BIG);
    sessiond_request_free(&r);
    free(body);
}

static void test_session_id_forms(void **state)
{
    (void)state;
    sessiond_request r;
    assert_int_equal(parse(SESSIOND_REQ_VALIDATE,
                           "{\"session_id\":\"" GOOD_ID "\",\"client\":{\"ip\":"
                           "\"10.0.0.1\"}}",
                           &r),
                     SESSIOND_PARSE_OK);
    assert_int_equal(r.session_id_len, SESS_ID_LEN);
    assert_memory_equal(r.session_id, GOOD_ID, SESS_ID_LEN);
    sessiond_request_free(&r);

    /* Wrong length, wrong alphabet, wrong type; the message must not
     * quote what was sent (it could be a real ID from another system). */
    expect_bad(SESSIOND_REQ_VALIDATE,
               "{\"session_id\":\"secretvalue123\",\"client\":{\"ip\":\"::1\"}}",
               "not a well-formed session ID");
    assert_null(strstr(msg, "secretvalue"));
    expect_bad(SESSIOND_REQ_DESTROY,
               "{\"session_id\":\"WEO+tOXcvJi36pLsY7qrCcHEraCTLGl/SFLcFrEt2do\"}",
               "not a well-formed session ID");
    assert_null(strstr(msg, "WEO"));
    expect_bad(SESSIOND_REQ_DESTROY, "{\"session_id\":42}", "must be a string");
    expect_bad(SESSIOND_REQ_DESTROY, "{\"session_id\":\"\"}", "must not be empty");
    expect_bad(SESSIOND_REQ_DESTROY, "{}", "\"session_id\" is required");
    expect_bad(SESSIOND_REQ_VALIDATE, "{\"session_id\":\"" GOOD_ID "\"}",
               "\"client\" is required");
}

static void test_regenerate_and_data(void **state)
{
    (void)state;
    sessiond_request r;
    assert_int_equal(parse(SESSIOND_REQ_REGENERATE,
                           "{\"session_id\":\"" GOOD_ID "\",\"client\":{\"ip\":"
                           "\"::1\"},\"elevated\":false}",
                           &r),
                     SESSIOND_PARSE_OK);
    assert_true(r.has_elevated);
    assert_false(r.elevated);
    sessiond_request_free(&r);

    assert_int_equal(parse(SESSIOND_REQ_DATA,
                           "{\"session_id\":\"" GOOD_ID "\",\"data\":{},"
                           "\"version\":7}",
                           &r),
                     SESSIOND_PARSE_OK);
    assert_true(r.has_version);
    assert_int_equal(r.version, 7);
    assert_string_equal(r.data, "{}");
    sessiond_request_free(&r);

    expect_bad(SESSIOND_REQ_DATA, "{\"session_id\":\"" GOOD_ID "\"}",
               "\"data\" is required");
    expect_bad(SESSIOND_REQ_DATA,
               "{\"session_id\":\"" GOOD_ID "\",\"data\":{},\"version\":-1}",
               "non-negative integer");
    expect_bad(SESSIOND_REQ_DATA,
               "{\"session_id\":\"" GOOD_ID "\",\"data\":{},\"version\":1.5}",
               "non-negative integer");
    expect_bad(SESSIOND_REQ_DATA,
               "{\"session_id\":\"" GOOD_ID "\",\"data\":\"{}\"}",
               "must be an object");
}

static void test_csrf_verify(void **state)
{
    (void)state;
    sessiond_request r;
    assert_int_equal(parse(SESSIOND_REQ_CSRF_VERIFY,
                           "{\"session_id\":\"" GOOD_ID "\",\"csrf_token\":"
                           "\"tok\",\"origin\":\"https://a.example\","
                           "\"sec_fetch_site\":\"same-origin\",\"host\":"
                           "\"a.example\"}",
                           &r),
                     SESSIOND_PARSE_OK);
    assert_int_equal(r.csrf_token_len, 3);
    assert_string_equal(r.origin, "https://a.example");
    assert_string_equal(r.sec_fetch_site, "same-origin");
    assert_string_equal(r.host, "a.example");
    sessiond_request_free(&r);

    expect_bad(SESSIOND_REQ_CSRF_VERIFY, "{\"session_id\":\"" GOOD_ID "\"}",
               "\"csrf_token\" is required");
    expect_bad(SESSIOND_REQ_CSRF_VERIFY,
               "{\"session_id\":\"" GOOD_ID "\",\"csrf_token\":\"t\","
               "\"origin\":5}",
               "\"origin\" must be a string");
}

static void test_malformed_bodies(void **state)
{
    (void)state;
    sessiond_request r;
    for (int k = 0; k < SESSIOND_REQ_KIND_COUNT; k++) {
        expect_bad((sessiond_request_kind)k, "{\"user_id\":\"x\"",
                   "truncated JSON");
        expect_bad((sessiond_request_kind)k, "[1,2]", "must be a JSON object");
        expect_bad((sessiond_request_kind)k, "\"str\"",
                   "must be a JSON object");
        expect_bad((sessiond_request_kind)k, "{\"a\":1,\"a\":2}",
                   "repeats a member");
        expect_bad((sessiond_request_kind)k, "{} trailing", "not valid JSON");
        assert_int_equal(sessiond_request_parse((sessiond_request_kind)k, NULL,
                                                0, &r, msg, sizeof(msg)),
                         SESSIOND_PARSE_BAD);
        assert_non_null(strstr(msg, "empty"));
        sessiond_request_free(&r);
    }
    assert_int_equal(sessiond_request_parse(SESSIOND_REQ_KIND_COUNT, "{}", 2,
                                            &r, msg, sizeof(msg)),
                     SESSIOND_PARSE_BAD);
    sessiond_request_free(&r);
}

static void test_percent_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(sessiond_percent_decode("a%2Fb", 5, out, sizeof(out)), 3);
    assert_memory_equal(out, "a/b", 3);
    assert_int_equal(sessiond_percent_decode("%c3%A9", 6, out, sizeof(out)), 2);
    assert_memory_equal(out, "\xc3\xa9", 2);
    assert_int_equal(sessiond_percent_decode("", 0, out, sizeof(out)), 0);
    assert_int_equal(sessiond_percent_decode("a%2", 3, out, sizeof(out)), -1);
    assert_int_equal(sessiond_percent_decode("a%zz", 4, out, sizeof(out)), -1);
    assert_int_equal(sessiond_percent_decode("%00", 3, out, sizeof(out)), -1);
    assert_int_equal(sessiond_percent_decode("abcd", 4, out, 3), -1);
    assert_int_equal(sessiond_percent_decode("abc", 3, out, 3), 3);
}

static void test_utf8_and_handles(void **state)
{
    (void)state;
    assert_true(sessiond_utf8_valid("plain", 5));
    assert_true(sessiond_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(sessiond_utf8_valid("\xc0\x80", 2));          /* overlong */
    assert_false(sessiond_utf8_valid("\xe0\x80\x80", 3));      /* overlong */
    assert_false(sessiond_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    assert_false(sessiond_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    assert_false(sessiond_utf8_valid("\xc3", 1));              /* truncated */
    assert_false(sessiond_utf8_valid("\x80", 1));
    assert_false(sessiond_utf8_valid("\xff", 1));

    assert_true(sessiond_user_id_valid("u", 1));
    assert_false(sessiond_user_id_valid("", 0));
    assert_false(sessiond_user_id_valid("a\0b", 3));

    assert_true(sessiond_handle_valid("9KyIt0lMhd06sN026SL79A", 22));
    assert_false(sessiond_handle_valid("9KyIt0lMhd06sN026SL79", 21));
    assert_false(sessiond_handle_valid("9KyIt0lMhd06sN026SL7+A", 22));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_ok),
        cmocka_unit_test(test_create_bad),
        cmocka_unit_test(test_user_id_bounds),
        cmocka_unit_test(test_data_depth_and_size),
        cmocka_unit_test(test_session_id_forms),
        cmocka_unit_test(test_regenerate_and_data),
        cmocka_unit_test(test_csrf_verify),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_utf8_and_handles),
    };
    sessiond_json_use_wiping_allocator();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
