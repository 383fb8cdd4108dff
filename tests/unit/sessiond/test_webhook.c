/*
 * test_webhook.c - the webhook path's pieces on their own: the secret file
 * parser and the Standard Webhooks signature (src/sessiond/webhook.c, the
 * published test vector of the Standard Webhooks libraries), the durable
 * outbox (src/sessiond/outbox.c: order, cursors, trimming, the bound,
 * reopening, damaged records) and the lifecycle lines and bodies of
 * events.c (event ids, actor, reason; never an ID).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "event_types.h"
#include "events.h"
#include "outbox.h"
#include "webhook.h"

#define VEC_SECRET "k1 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"

static void test_keys_parse(void **state)
{
    (void)state;
    sessiond_webhook_keys k;
    char err[200];
    const char *two = "# current first\n"
                      "k2 whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
                      "\n  k1\twhsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  \n";
    assert_int_equal(sessiond_webhook_keys_parse(two, strlen(two), &k, err,
                                                 sizeof err), 0);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.key[0].kid, "k2");
    assert_int_equal(k.key[0].len, 32);
    assert_string_equal(k.key[1].kid, "k1");
    assert_int_equal(k.key[1].len, 24);

    static const char *const bad[] = {
        "",                                         /* no key */
        "# only a comment\n",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", /* no key id */
        "k1 MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",    /* no whsec_ */
        "k1 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa\n",/* not a multiple of 4 */
        "k1 whsec_AAAAAAAAAAAAAAAAAAAAAAA=\n",      /* 17 bytes: too short */
        "k1 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw\n", /* not base64 */
        "k1 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
        "k1 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", /* key id twice */
        "k/1 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(sessiond_webhook_keys_parse(bad[i], strlen(bad[i]), &k,
                                                     err, sizeof err), -1);
        assert_true(err[0] != '\0');
        /* The message never repeats the secret. */
        assert_null(strstr(err, "MfKQ9r8GKYqr"));
    }
    char big[SESSIOND_WEBHOOK_SECRET_FILE_MAX + 2];
    memset(big, '#', sizeof big);
    assert_int_equal(sessiond_webhook_keys_parse(big, sizeof big, &k, err,
                                                 sizeof err), -1);
}

/* The Standard Webhooks libraries' own test vector. */
static void test_sign_vector(void **state)
{
    (void)state;
    sessiond_webhook_keys k;
    char err[200], sig[256], kids[128];
    const char *body = "{\"test\": 2432232314}";
    assert_int_equal(sessiond_webhook_keys_parse(VEC_SECRET, strlen(VEC_SECRET),
                                                 &k, err, sizeof err), 0);
    assert_int_equal(sessiond_webhook_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                           1614265330, body, strlen(body), sig,
                                           sizeof sig, kids, sizeof kids), 0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_string_equal(kids, "k1");
    /* Too small a buffer fails rather than truncating. */
    assert_int_equal(sessiond_webhook_sign(&k, "m", 1, body, strlen(body), sig,
                                           10, kids, sizeof kids), -1);
    sessiond_webhook_keys_wipe(&k);
}

static char *tmpdir(void)
{
    char *d = strdup("/tmp/sessiond-outbox-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rmdir_all(const char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static void put_event(sessiond_outbox *ob, int type, int n)
{
    char id[SESSIOND_EVENT_ID_LEN + 1], body[256];
    assert_int_equal(sessiond_events_uuid7(id), 0);
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"type\":\"%s\",\"n\":%d}", id,
             sessiond_event_type_names[type], n);
    assert_int_equal(sessiond_outbox_put(ob, type, body, strlen(body)),
                     SESSIOND_OUTBOX_STORED);
}

/* The "n" of the event after "after", its sequence into "*seq". */
static int next_n(sessiond_outbox *ob, uint64_t after, uint64_t *seq)
{
    uint8_t *rec;
    size_t len;
    sessiond_outbox_event ev;
    if (sessiond_outbox_next(ob, after, seq, &rec, &len) != 0)
        return -1;
    assert_int_equal(sessiond_outbox_parse(rec, len, &ev), 0);
    json_t *o = json_loadb(ev.body, ev.body_len, 0, NULL);
    int n = (int)json_integer_value(json_object_get(o, "n"));
    json_decref(o);
    free(rec);
    return n;
}

static void test_outbox(void **state)
{
    (void)state;
    char *d = tmpdir(), err[256];
    sessiond_outbox *ob, *ob2;
    uint64_t seq;
    const char *sinks[] = {"aaaa", "bbbb"};

    assert_int_equal(sessiond_outbox_open(d, 100, &ob, err, sizeof err), 0);
    /* One process per outbox: a second open is refused, saying why. */
    assert_int_equal(sessiond_outbox_open(d, 100, &ob2, err, sizeof err), -1);
    assert_non_null(strstr(err, "another sessiond"));
    for (int i = 1; i <= 5; i++)
        put_event(ob, SESSIOND_EV_CREATED, i);
    assert_int_equal(sessiond_outbox_count(ob), 5);
    /* In order for each sink, from its own cursor. */
    assert_int_equal(next_n(ob, 0, &seq), 1);
    assert_int_equal(sessiond_outbox_ack(ob, "aaaa", seq, sinks, 2), 0);
    assert_int_equal(sessiond_outbox_count(ob), 5);   /* bbbb has not */
    assert_int_equal(next_n(ob, sessiond_outbox_cursor(ob, "aaaa"), &seq), 2);
    assert_int_equal(sessiond_outbox_ack(ob, "bbbb", 3, sinks, 2), 0);
    assert_int_equal(sessiond_outbox_count(ob), 4);   /* both took 1 */
    assert_int_equal(sessiond_outbox_ack(ob, "aaaa", 5, sinks, 2), 0);
    assert_int_equal(sessiond_outbox_count(ob), 2);   /* 4 and 5 left */
    sessiond_outbox_close(ob);

    /* Reopened (a restart): the cursors and the rest are there, and new
     * events get higher sequences even once the outbox empties. */
    assert_int_equal(sessiond_outbox_open(d, 100, &ob, err, sizeof err), 0);
    assert_int_equal(sessiond_outbox_cursor(ob, "bbbb"), 3);
    assert_int_equal(next_n(ob, 3, &seq), 4);
    assert_int_equal(sessiond_outbox_ack(ob, "bbbb", 5, sinks, 2), 0);
    assert_int_equal(sessiond_outbox_count(ob), 0);
    put_event(ob, SESSIOND_EV_DESTROYED, 6);
    assert_int_equal(next_n(ob, 5, &seq), 6);
    assert_int_equal(seq, 6);

    /* The bound: beyond max_events a put is refused as full. */
    sessiond_outbox_close(ob);
    assert_int_equal(sessiond_outbox_open(d, 3, &ob, err, sizeof err), 0);
    put_event(ob, SESSIOND_EV_CREATED, 7);
    put_event(ob, SESSIOND_EV_CREATED, 8);
    assert_int_equal(sessiond_outbox_put(ob, SESSIOND_EV_CREATED, "{}", 2),
                     SESSIOND_OUTBOX_FULL);
    /* Bad puts: unknown type, too large. */
    assert_int_equal(sessiond_outbox_put(ob, SESSIOND_EV_COUNT, "{}", 2),
                     SESSIOND_OUTBOX_ERROR);
    char *huge = calloc(1, SESSIOND_OUTBOX_RECORD_MAX);
    assert_int_equal(sessiond_outbox_put(ob, 0, huge, SESSIOND_OUTBOX_RECORD_MAX),
                     SESSIOND_OUTBOX_ERROR);
    free(huge);
    sessiond_outbox_close(ob);
    rmdir_all(d);
    free(d);
}

static void test_record_parse(void **state)
{
    (void)state;
    sessiond_outbox_event ev;
    static const char good[] =
        "\x01\x00{\"id\":\"0190b2a4-7c3e-7a1b-9f00-0123456789ab\",\"type\":\"created\"}";
    assert_int_equal(sessiond_outbox_parse((const uint8_t *)good, sizeof good - 1,
                                           &ev), 0);
    assert_int_equal(ev.type, SESSIOND_EV_CREATED);
    assert_string_equal(ev.id, "0190b2a4-7c3e-7a1b-9f00-0123456789ab");
#define R(x) {x, sizeof(x) - 1}
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        /* version 2 */
        R("\x02\x00{\"id\":\"0190b2a4-7c3e-7a1b-9f00-0123456789ab\",\"type\":\"created\"}"),
        /* type byte and body disagree */
        R("\x01\x04{\"id\":\"0190b2a4-7c3e-7a1b-9f00-0123456789ab\",\"type\":\"created\"}"),
        /* a header break in the id (header injection) */
        R("\x01\x00{\"id\":\"0190b2a4-7c3e-7a1b-9f00-0123456789\\r\\n\",\"type\":\"created\"}"),
        /* not JSON, an array, a duplicate member, no body */
        R("\x01\x00{\"id\":"),
        R("\x01\x00[1]"),
        R("\x01\x00{\"id\":\"0190b2a4-7c3e-7a1b-9f00-0123456789ab\",\"type\":\"created\","
          "\"type\":\"created\"}"),
        R("\x01\x00"),
    };
#undef R
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sessiond_outbox_parse((const uint8_t *)bad[i].s, bad[i].n,
                                               &ev), -1);
    /* An unknown type byte (0x7f) never reaches the name table. */
    static const char unk[] = "\x01\x7f{}";
    assert_int_equal(sessiond_outbox_parse((const uint8_t *)unk, sizeof unk - 1,
                                           &ev), -1);
}

/* events.c: library events -> lifecycle lines and bodies. */
static void test_lifecycle_format(void **state)
{
    (void)state;
    sess_event ev = {.type = SESS_EVENT_REVOKE, .at = 1800000000u,
                     .handle = "AAAAAAAAAAAAAAAAAAAAAA", .user_id = "bob",
                     .user_id_len = 3, .detail = "handle"};
    int type = -1;
    char *body = sessiond_events_webhook_body(&ev, "0190b2a4-7c3e-7a1b-9f00-0123456789ab",
                                              &type);
    assert_non_null(body);
    assert_int_equal(type, SESSIOND_EV_REVOKED);
    json_t *o = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "revoked");
    assert_string_equal(json_string_value(json_object_get(o, "timestamp")),
                        "2027-01-15T08:00:00Z");
    json_t *data = json_object_get(o, "data");
    assert_string_equal(json_string_value(json_object_get(data, "actor")), "admin_api");
    assert_string_equal(json_string_value(json_object_get(data, "reason")),
                        "revoke_handle");
    assert_string_equal(json_string_value(json_object_get(data, "user_id")), "bob");
    json_decref(o);
    free(body);

    /* The JSON line keeps its members and adds id, type, actor, reason. */
    char *line = sessiond_events_format(&ev);
    o = json_loads(line, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "revoke");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "revoked");
    const char *id = json_string_value(json_object_get(o, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '7');     /* UUID version 7 */
    json_decref(o);
    free(line);

    /* Not lifecycle: no body, and the line has no id. */
    sess_event csrf = {.type = SESS_EVENT_CSRF_FAILURE, .detail = "token"};
    assert_null(sessiond_events_webhook_body(&csrf, "x", &type));
    line = sessiond_events_format(&csrf);
    o = json_loads(line, 0, NULL);
    assert_null(json_object_get(o, "id"));
    json_decref(o);
    free(line);
    /* A logged reuse is a security event only; a revoking one ends a session. */
    sess_event reuse = {.type = SESS_EVENT_REUSE_AFTER_GRACE, .detail = "logged"};
    assert_null(sessiond_events_webhook_body(&reuse, "x", &type));
    reuse.detail = "successor revoked";
    body = sessiond_events_webhook_body(&reuse, "x", &type);
    assert_int_equal(type, SESSIOND_EV_REVOKED);
    free(body);

    /* Ids are unique and time-ordered. */
    char a[37], b[37];
    assert_int_equal(sessiond_events_uuid7(a), 0);
    usleep(2000);
    assert_int_equal(sessiond_events_uuid7(b), 0);
    assert_true(strcmp(a, b) < 0);
}

static void test_types_parse(void **state)
{
    (void)state;
    uint32_t m;
    char bad[32];
    assert_true(sessiond_event_types_parse("", 0, &m, bad));
    assert_int_equal(m, SESSIOND_EV_ALL);
    const char *l = "created, expired,token_reuse";
    assert_true(sessiond_event_types_parse(l, strlen(l), &m, bad));
    assert_int_equal(m, (1u << SESSIOND_EV_CREATED) | (1u << SESSIOND_EV_EXPIRED) |
                            (1u << SESSIOND_EV_TOKEN_REUSE));
    l = "created,sessions_created";
    assert_false(sessiond_event_types_parse(l, strlen(l), &m, bad));
    assert_string_equal(bad, "sessions_created");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_parse),
        cmocka_unit_test(test_sign_vector),
        cmocka_unit_test(test_outbox),
        cmocka_unit_test(test_record_parse),
        cmocka_unit_test(test_lifecycle_format),
        cmocka_unit_test(test_types_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
