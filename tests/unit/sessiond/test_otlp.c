/*
 * test_otlp.c - the OTLP/HTTP JSON encoding of spans (src/sessiond/otlp.c),
 * the parent-based ratio sampler, the outcome words (src/sessiond/trace.c)
 * and the access log line (src/sessiond/access_log.c): hex ids of the
 * right length, 64-bit integers as strings, lowerCamelCase members, kind
 * and status as numbers, resource attributes, parent links; that the
 * sampler honours a caller's flag at any ratio and splits new traces by
 * their id; that every status maps to a word; that the access log line
 * has exactly its fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "access_log.h"
#include "otlp.h"
#include "trace.h"

/* The value of attribute "key" of "attrs" as text, or NULL. */
static const char *attr(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a) {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) != 0)
            continue;
        json_t *v = json_object_get(a, "value");
        json_t *s = json_object_get(v, "stringValue");
        if (s == NULL)
            s = json_object_get(v, "intValue");
        assert_non_null(s);
        assert_true(json_is_string(s));     /* int64 as a string, too */
        return json_string_value(s);
    }
    return NULL;
}

static void assert_hex(json_t *v, size_t len)
{
    assert_true(json_is_string(v));
    const char *s = json_string_value(v);
    assert_int_equal(strlen(s), len);
    assert_int_equal(strspn(s, "0123456789abcdef"), len);
}

static void test_encode(void **state)
{
    (void)state;
    assert_int_equal(sessiond_otlp_set_resource("svc-a", "inst-1"), 0);
    sessiond_span sp[2];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < 16; i++)
        sp[0].trace_id[i] = sp[1].trace_id[i] = (uint8_t)(0xa0 + i);
    memset(sp[0].span_id, 0x11, 8);
    memset(sp[0].parent_id, 0x22, 8);
    sp[0].has_parent = sp[0].parent_remote = true;
    sp[0].kind = SESSIOND_SPAN_KIND_SERVER;
    sp[0].start_ns = 1800000000123456789ull;
    sp[0].end_ns = 1800000000123999999ull;
    sp[0].route = "/v1/users/{user_id}/sessions";
    snprintf(sp[0].method, sizeof sp[0].method, "GET");
    sp[0].http_status = 503;
    sp[0].outcome = SESSIOND_OUTCOME_STORE_UNAVAILABLE;
    snprintf(sp[0].tracestate, sizeof sp[0].tracestate, "congo=t61rcWkgMzE");
    sp[0].tracestate_len = strlen(sp[0].tracestate);
    memset(sp[1].span_id, 0x33, 8);
    memcpy(sp[1].parent_id, sp[0].span_id, 8);
    sp[1].has_parent = true;
    sp[1].kind = SESSIOND_SPAN_KIND_CLIENT;
    sp[1].start_ns = sp[0].start_ns + 1000;
    sp[1].end_ns = sp[0].start_ns + 5000;
    sp[1].op = "get";
    sp[1].backend = "redis+cluster";
    sp[1].rc = SESS_OK;
    sp[1].l1 = SESS_STORE_L1_MISS;
    snprintf(sp[1].node, sizeof sp[1].node, "10.1.2.3:7001");

    char *text = sessiond_otlp_encode(sp, 2);
    assert_non_null(text);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    assert_non_null(root);
    json_t *rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
    json_t *rattrs = json_object_get(json_object_get(rs, "resource"), "attributes");
    assert_string_equal(attr(rattrs, "service.name"), "svc-a");
    assert_string_equal(attr(rattrs, "service.instance.id"), "inst-1");
    assert_string_equal(attr(rattrs, "service.version"), sess_version());
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(ss, "scope"), "name")), "sessiond");
    json_t *spans = json_object_get(ss, "spans");
    assert_int_equal(json_array_size(spans), 2);

    json_t *s0 = json_array_get(spans, 0), *s1 = json_array_get(spans, 1);
    assert_hex(json_object_get(s0, "traceId"), 32);
    assert_hex(json_object_get(s0, "spanId"), 16);
    assert_hex(json_object_get(s0, "parentSpanId"), 16);
    assert_string_equal(json_string_value(json_object_get(s0, "traceId")),
                        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    assert_string_equal(json_string_value(json_object_get(s0, "parentSpanId")),
                        "2222222222222222");
    assert_string_equal(json_string_value(json_object_get(s0, "startTimeUnixNano")),
                        "1800000000123456789");
    assert_string_equal(json_string_value(json_object_get(s0, "traceState")),
                        "congo=t61rcWkgMzE");
    assert_string_equal(json_string_value(json_object_get(s0, "name")),
                        "GET /v1/users/{user_id}/sessions");
    assert_int_equal(json_integer_value(json_object_get(s0, "kind")), 2);
    assert_int_equal(json_integer_value(json_object_get(s0, "flags")), 0x301);
    json_t *st0 = json_object_get(s0, "status");
    assert_int_equal(json_integer_value(json_object_get(st0, "code")), 2);
    json_t *a0 = json_object_get(s0, "attributes");
    assert_string_equal(attr(a0, "http.response.status_code"), "503");
    assert_string_equal(attr(a0, "http.route"), "/v1/users/{user_id}/sessions");
    assert_string_equal(attr(a0, "sessiond.outcome"), "store_unavailable");
    assert_string_equal(attr(a0, "error.type"), "503");

    assert_string_equal(json_string_value(json_object_get(s1, "parentSpanId")),
                        "1111111111111111");
    assert_int_equal(json_integer_value(json_object_get(s1, "kind")), 3);
    assert_null(json_object_get(s1, "traceState"));
    assert_int_equal(json_integer_value(json_object_get(s1, "flags")), 0x101);
    json_t *a1 = json_object_get(s1, "attributes");
    assert_string_equal(json_string_value(json_object_get(s1, "name")), "store get");
    assert_string_equal(attr(a1, "db.operation.name"), "get");
    assert_string_equal(attr(a1, "db.system.name"), "redis");
    assert_string_equal(attr(a1, "sessiond.store.backend"), "redis+cluster");
    assert_string_equal(attr(a1, "sessiond.store.l1"), "miss");
    assert_string_equal(attr(a1, "server.address"), "10.1.2.3");
    assert_string_equal(attr(a1, "server.port"), "7001");
    assert_null(attr(a1, "sessiond.store.result"));
    assert_null(json_object_get(s1, "status"));   /* unset: left out */
    json_decref(root);
    free(text);

    /* A method outside the known set, no route, a failed store call. */
    snprintf(sp[0].method, sizeof sp[0].method, "PROPFIND");
    sp[0].route = NULL;
    sp[0].http_status = 404;
    sp[1].rc = SESS_EUNAVAILABLE;
    text = sessiond_otlp_encode(sp, 2);
    root = json_loads(text, 0, &jerr);
    spans = json_object_get(json_array_get(json_object_get(json_array_get(
        json_object_get(root, "resourceSpans"), 0), "scopeSpans"), 0), "spans");
    s0 = json_array_get(spans, 0);
    s1 = json_array_get(spans, 1);
    assert_string_equal(json_string_value(json_object_get(s0, "name")), "HTTP");
    assert_string_equal(attr(json_object_get(s0, "attributes"), "http.request.method"),
                        "_OTHER");
    assert_null(attr(json_object_get(s0, "attributes"), "http.route"));
    assert_null(json_object_get(s0, "status"));   /* a 404 is not an error */
    assert_string_equal(attr(json_object_get(s1, "attributes"), "sessiond.store.result"),
                        "EUNAVAILABLE");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s1, "status"),
                                                        "code")), 2);
    json_decref(root);
    free(text);
}

static void test_random_instance_id(void **state)
{
    (void)state;
    assert_int_equal(sessiond_otlp_set_resource("svc", ""), 0);
    sessiond_span sp;
    memset(&sp, 0, sizeof sp);
    sp.trace_id[0] = sp.span_id[0] = 1;
    sp.kind = SESSIOND_SPAN_KIND_SERVER;
    snprintf(sp.method, sizeof sp.method, "GET");
    char *text = sessiond_otlp_encode(&sp, 1);
    json_t *root = json_loads(text, 0, NULL);
    json_t *rattrs = json_object_get(json_object_get(json_array_get(
        json_object_get(root, "resourceSpans"), 0), "resource"), "attributes");
    const char *id = attr(rattrs, "service.instance.id");
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '4');          /* version 4 */
    assert_non_null(strchr("89ab", id[19]));
    json_decref(root);
    free(text);
}

static sessiond_trace with_low_bytes(uint8_t fill, bool parent, uint8_t flags)
{
    sessiond_trace t;
    memset(&t, 0, sizeof t);
    memset(t.trace_id, 0x5a, 8);
    memset(t.trace_id + 8, fill, 8);
    t.has_parent = parent;
    t.flags = flags;
    return t;
}

static void test_sampler(void **state)
{
    (void)state;
    sessiond_trace lo = with_low_bytes(0x00, false, 0);
    sessiond_trace hi = with_low_bytes(0xff, false, 0);
    sessiond_trace mid = with_low_bytes(0x70, false, 0);   /* just under 1/2 */
    sessiond_trace p1 = with_low_bytes(0xff, true, 1);
    sessiond_trace p0 = with_low_bytes(0x00, true, 0);

    sessiond_trace_sampler(false, 1.0);             /* tracing off */
    assert_false(sessiond_trace_should_sample(&lo));
    assert_false(sessiond_trace_should_sample(&p1));

    sessiond_trace_sampler(true, 0.0);
    assert_false(sessiond_trace_should_sample(&lo));
    assert_true(sessiond_trace_should_sample(&p1)); /* parent-based */
    assert_false(sessiond_trace_should_sample(&p0));

    sessiond_trace_sampler(true, 1.0);
    assert_true(sessiond_trace_should_sample(&lo));
    assert_true(sessiond_trace_should_sample(&hi));
    assert_false(sessiond_trace_should_sample(&p0));

    sessiond_trace_sampler(true, 0.5);
    assert_true(sessiond_trace_should_sample(&lo));
    assert_true(sessiond_trace_should_sample(&mid));
    assert_false(sessiond_trace_should_sample(&hi));

    /* New traces from begin(): about the ratio of them. */
    sessiond_trace_sampler(true, 0.25);
    int n = 0;
    for (int i = 0; i < 4000; i++) {
        sessiond_trace t;
        sessiond_trace_begin(&t, NULL, 0, NULL);
        n += t.sampled;
        if (t.sampled)
            assert_true(t.start_ns > 0);
        sessiond_trace_end();
    }
    assert_in_range(n, 700, 1300);
    /* A caller's sampled traceparent through begin(). */
    sessiond_trace_sampler(true, 0.0);
    sessiond_trace t;
    sessiond_trace_begin(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         1, NULL);
    assert_true(t.sampled);
    sessiond_trace_end();
    sessiond_trace_begin(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                         1, NULL);
    assert_false(t.sampled);
    sessiond_trace_end();
    sessiond_trace_sampler(false, 0.0);
}

static void test_outcomes(void **state)
{
    (void)state;
    sessiond_trace t;
    static const struct {
        unsigned status;
        const char *word;
    } rows[] = {{200, "ok"}, {201, "ok"}, {204, "ok"}, {400, "invalid_request"},
                {401, "unauthorized"}, {403, "forbidden"}, {404, "not_found"},
                {405, "method_not_allowed"}, {409, "conflict"}, {413, "too_large"},
                {414, "uri_too_long"}, {415, "unsupported_media_type"},
                {429, "rate_limited"}, {500, "internal_error"},
                {503, "store_unavailable"}, {418, "other_error"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sessiond_trace_begin(&t, NULL, 0, NULL);
        sessiond_outcome o = sessiond_trace_finish(&t, rows[i].status);
        assert_string_equal(sessiond_outcome_name(o), rows[i].word);
        assert_int_equal(t.status, rows[i].status);
        sessiond_trace_end();
    }
    /* A handler's word wins over the status. */
    sessiond_trace_begin(&t, NULL, 0, NULL);
    sessiond_trace_set_outcome(sessiond_outcome_of_reason(2));
    assert_string_equal(sessiond_outcome_name(sessiond_trace_finish(&t, 401)),
                        "expired_idle");
    sessiond_trace_end();
    sessiond_trace_set_outcome(SESSIOND_OUTCOME_OK);     /* no request: no-op */
    static const char *const reasons[] = {"ok", "unknown", "expired_idle",
                                          "expired_absolute", "binding_mismatch",
                                          "revoked"};
    for (int r = 0; r < 6; r++)
        assert_string_equal(sessiond_outcome_name(sessiond_outcome_of_reason(r)),
                            reasons[r]);
    assert_string_equal(sessiond_outcome_name(sessiond_outcome_of_reason(99)), "unknown");
    assert_string_equal(sessiond_outcome_name((sessiond_outcome)200), "other_error");
}

static void test_access_line(void **state)
{
    (void)state;
    sessiond_trace t;
    sessiond_trace_begin(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         1, NULL);
    t.route = "/v1/auth";
    sessiond_trace_finish(&t, 401);
    char line[1024];
    size_t n = sessiond_access_log_format(line, sizeof line, &t, "GET", "127.0.0.1",
                                          84321, 1800000000123456789ull);
    assert_true(n > 0);
    assert_int_equal(line[n - 1], '\n');
    line[n] = '\0';
    json_t *o = json_loads(line, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 9);
    assert_string_equal(json_string_value(json_object_get(o, "ts")),
                        "2027-01-15T08:00:00.123456Z");
    assert_string_equal(json_string_value(json_object_get(o, "route")), "/v1/auth");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 401);
    assert_int_equal(json_integer_value(json_object_get(o, "latency_us")), 84);
    assert_string_equal(json_string_value(json_object_get(o, "outcome")), "unauthorized");
    assert_string_equal(json_string_value(json_object_get(o, "trace_id")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(o, "peer")), "127.0.0.1");
    json_decref(o);
    /* Unmatched: route null.  Too small a buffer: nothing. */
    t.route = NULL;
    n = sessiond_access_log_format(line, sizeof line, &t, "GET", "unix", 0, 0);
    line[n] = '\0';
    o = json_loads(line, 0, NULL);
    assert_true(json_is_null(json_object_get(o, "route")));
    json_decref(o);
    assert_int_equal(sessiond_access_log_format(line, 40, &t, "GET", "unix", 0, 0), 0);
    sessiond_trace_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_random_instance_id),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_access_line),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sessiond_otlp_stop();       /* frees the resource the tests set */
    return rc;
}
