/*
 * test_trace.c - the W3C traceparent/tracestate parser and the per-thread
 * request context of src/sessiond/trace.c, and that log lines and
 * security events (events.c) carry trace_id and span_id.
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

#include "events.h"
#include "trace.h"
#include "../common/hex.h"

#define GOOD "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool parse(const char *s)
{
    uint8_t t[16], p[8], f;
    return sessiond_traceparent_parse(s, strlen(s), t, p, &f);
}

static void test_valid(void **state)
{
    (void)state;
    uint8_t t[16], p[8], f = 0;
    char hex[33];
    assert_true(sessiond_traceparent_parse(GOOD, strlen(GOOD), t, p, &f));
    hex_encode(t, 16, hex);
    assert_string_equal(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    hex_encode(p, 8, hex);
    assert_string_equal(hex, "00f067aa0ba902b7");
    assert_int_equal(f, 1);
    assert_true(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    /* A later version may append fields after a '-' (spec 3.2.4). */
    assert_true(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"));
    assert_true(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09"));
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "00",
        /* all-zero trace id, all-zero parent id */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* version ff is forbidden, version 00 has no extra fields */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        GOOD "-extra",
        GOOD " ",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        /* uppercase hex, wrong separators, short fields, non-hex */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(parse(bad[i]));
    /* The parser never reads past "len": a good value cut short fails. */
    uint8_t t[16], p[8], f;
    for (size_t n = 0; n < strlen(GOOD); n++)
        assert_false(sessiond_traceparent_parse(GOOD, n, t, p, &f));
}

static void test_tracestate(void **state)
{
    (void)state;
    assert_true(sessiond_tracestate_valid("congo=t61rcWkgMzE", 17));
    assert_false(sessiond_tracestate_valid("a=\n", 3));
    assert_false(sessiond_tracestate_valid("", 0));
    char big[SESSIOND_TRACESTATE_MAX + 2];
    memset(big, 'a', sizeof(big));
    assert_false(sessiond_tracestate_valid(big, sizeof(big) - 1));
    char many[200] = "";
    for (int i = 0; i < 33; i++)
        strcat(many, i ? ",k=v" : "k=v");
    assert_false(sessiond_tracestate_valid(many, strlen(many)));
}

static void test_begin(void **state)
{
    (void)state;
    sessiond_trace t, u;
    assert_null(sessiond_trace_current());
    sessiond_trace_begin(&t, GOOD, 1, "congo=t61rcWkgMzE");
    assert_ptr_equal(sessiond_trace_current(), &t);
    assert_true(t.has_parent);
    assert_string_equal(t.trace_hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(strlen(t.span_hex), 16);
    assert_string_not_equal(t.span_hex, "00f067aa0ba902b7");
    assert_int_equal(t.tracestate_len, 17);
    sessiond_trace_end();
    assert_null(sessiond_trace_current());

    /* Two traceparent fields: invalid, so a new trace (and no tracestate). */
    sessiond_trace_begin(&t, GOOD, 2, "congo=t61rcWkgMzE");
    assert_false(t.has_parent);
    assert_string_not_equal(t.trace_hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_null(t.tracestate);
    /* Absent: a new trace each time, never the same ids. */
    sessiond_trace_begin(&u, NULL, 0, NULL);
    assert_false(u.has_parent);
    assert_int_equal(strlen(u.trace_hex), 32);
    assert_string_not_equal(u.trace_hex, t.trace_hex);
    assert_string_not_equal(u.span_hex, t.span_hex);
    for (int i = 0; i < 100; i++) {   /* crosses several pool refills */
        sessiond_trace_begin(&t, "garbage", 1, NULL);
        assert_string_not_equal(u.trace_hex, t.trace_hex);
    }
    sessiond_trace_end();
}

static void test_event_lines(void **state)
{
    (void)state;
    sessiond_trace t;
    char *line = sessiond_events_peer_format(SESSIOND_PEV_AUTH_FAILURE, 0,
                                             "192.0.2.1", "/v1/x", NULL,
                                             "missing", 0);
    json_t *o = json_loads(line, 0, NULL);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "trace_id")));
    assert_true(json_is_null(json_object_get(o, "span_id")));
    json_decref(o);
    free(line);

    sessiond_trace_begin(&t, GOOD, 1, NULL);
    line = sessiond_events_peer_format(SESSIOND_PEV_AUTH_FAILURE, 0,
                                       "192.0.2.1", "/v1/x", NULL, "missing", 0);
    o = json_loads(line, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "trace_id")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(o, "span_id")),
                        t.span_hex);
    json_decref(o);
    free(line);

    sess_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = SESS_EVENT_REVOKE;
    line = sessiond_events_format(&ev);
    o = json_loads(line, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "span_id")),
                        t.span_hex);
    json_decref(o);
    free(line);
    sessiond_trace_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_begin),
        cmocka_unit_test(test_event_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
