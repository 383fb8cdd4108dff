/*
 * test_forward_auth.c - unit tests of the daemon's security decisions in
 * src/sessiond/forward_auth.c, apikeys.c, events.c and api.c (issue 10):
 * every session cookie tried up to the bound, the fail-closed method rule,
 * X-Forwarded-Host/-Proto believed only from trusted proxies, the
 * full-origin compare, the RFC 8187 X-Session-User value, per-peer
 * throttling of failed API keys, the rate-limited peer events, and the
 * one error-to-status map that forward-auth and the JSON API share.
 *
 * Requests are driven through a fake connection (a header list), on the
 * memory store with a fixed clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "apikeys.h"
#include "app.h"
#include "config.h"
#include "events.h"
#include "forward_auth.h"

#define HEADERS_MAX 32

typedef struct fake_conn {
    const char *names[HEADERS_MAX], *values[HEADERS_MAX];
    size_t n;
} fake_conn;

static const char *get_header(void *conn, const char *name)
{
    fake_conn *c = conn;
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->names[i], name) == 0)
            return c->values[i];
    return NULL;
}

static size_t get_header_all(void *conn, const char *name, const char **out,
                             size_t max)
{
    fake_conn *c = conn;
    size_t k = 0;
    for (size_t i = 0; i < c->n && k < max; i++)
        if (strcasecmp(c->names[i], name) == 0)
            out[k++] = c->values[i];
    return k;
}

static const char *no_query(void *conn, const char *name)
{
    (void)conn;
    (void)name;
    return NULL;
}

static uint64_t fixed_clock(void *user)
{
    (void)user;
    return 1800000000u;
}

typedef struct fixture {
    sessiond_config cfg;
    sessiond_app app;
    char id[SESS_ID_LEN + 1];
    char csrf[SESS_CSRF_LEN + 1];
    char handle[SESS_HANDLE_LEN + 1];
} fixture;

static void make_app(fixture *f, const char *ini)
{
    static const uint8_t key[1][SESS_KEY_BYTES] = {{5, 4, 3}};
    const char *kids[] = {"unit-key"};
    char err[256];
    sess_keyring *kr;
    sess_store *st;

    memset(f, 0, sizeof *f);
    sessiond_config_defaults(&f->cfg);
    if (ini != NULL)
        assert_int_equal(sessiond_config_parse_ini(&f->cfg, ini, strlen(ini),
                                                   err, sizeof err), SESS_OK);
    f->cfg.session.rotate_interval = 0;
    assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, NULL), SESS_OK);
    assert_int_equal(sess_store_open("memory:", NULL, &st, NULL), SESS_OK);
    assert_int_equal(sess_ctx_new(&f->cfg.session, st, kr, &f->app.ctx, NULL),
                     SESS_OK);
    sess_ctx_set_clock(f->app.ctx, fixed_clock, NULL);
    f->app.cfg = &f->cfg;
    f->app.apikeys = sessiond_apikeys_new();
    assert_non_null(f->app.apikeys);
}

static void add_session(fixture *f, const char *user)
{
    sess_create_req req = {.user_id = user, .user_id_len = strlen(user),
                           .client = {"127.0.0.1", "unit-agent"}};
    sess_issued s;
    assert_int_equal(sess_create(f->app.ctx, &req, &s, NULL, NULL), SESS_OK);
    memcpy(f->id, s.id, sizeof f->id);
    memcpy(f->csrf, s.csrf_token, sizeof f->csrf);
    memcpy(f->handle, s.handle, sizeof f->handle);
    sess_wipe(&s, sizeof s);
}

static void free_app(fixture *f)
{
    sess_ctx_free(f->app.ctx);
    sessiond_apikeys_free(f->app.apikeys);
}

/* Run GET /v1/auth from "peer" with "n" (name, value) header pairs (values
 * are copied: forward-auth wipes the IDs it read).  Returns the status;
 * the X-Session-User value goes to "user" when not NULL. */
static unsigned run(fixture *f, const char *peer, const char *const *hdrs,
                    size_t n, char *user, size_t ucap)
{
    fake_conn conn = {0};
    char copies[HEADERS_MAX][2048];
    sessiond_http_req req = {0};
    sessiond_http_resp resp;

    assert_true(n <= HEADERS_MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(copies[i], sizeof copies[i], "%s", hdrs[2 * i + 1]);
        conn.names[i] = hdrs[2 * i];
        conn.values[i] = copies[i];
    }
    conn.n = n;
    req.method = "GET";
    req.path = "/v1/auth";
    req.path_len = 8;
    req.peer_ip = peer;
    req.conn = &conn;
    req.header = get_header;
    req.header_all = get_header_all;
    req.query = no_query;
    sessiond_resp_init(&resp);
    sessiond_forward_auth(&f->app, &req, &resp);
    if (user != NULL) {
        user[0] = '\0';
        for (size_t i = 0; i < resp.n_headers; i++)
            if (strcmp(resp.headers[i].name, "X-Session-User") == 0)
                snprintf(user, ucap, "%s", resp.headers[i].value);
    }
    unsigned status = resp.status;
    sessiond_resp_release(&resp);
    return status;
}

/* ---- item 9: cookie tossing -------------------------------------------- */

static void test_every_candidate_tried(void **state)
{
    (void)state;
    fixture f;
    char good[128], tossed[128], hdr[1400];
    make_app(&f, NULL);
    add_session(&f, "alice");
    snprintf(good, sizeof good, "sessiond=%s", f.id);
    snprintf(tossed, sizeof tossed, "sessiond=%s", "B" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");

    /* Before the fix only the first candidate was tried: 401. */
    snprintf(hdr, sizeof hdr, "%s; %s", tossed, good);
    const char *one[] = {"Cookie", hdr, "User-Agent", "unit-agent"};
    assert_int_equal(run(&f, "127.0.0.1", one, 2, NULL, 0), 200);

    /* Across Cookie lines. */
    const char *two[] = {"Cookie", tossed, "Cookie", "theme=dark",
                         "Cookie", good, "User-Agent", "unit-agent"};
    assert_int_equal(run(&f, "127.0.0.1", two, 4, NULL, 0), 200);

    /* The bound: the 8th is tried, the 9th never. */
    size_t o = 0;
    for (int i = 0; i < 7; i++)
        o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s; ", tossed);
    snprintf(hdr + o, sizeof hdr - o, "%s", good);
    assert_int_equal(run(&f, "127.0.0.1", one, 2, NULL, 0), 200);
    o = 0;
    for (int i = 0; i < 8; i++)
        o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s; ", tossed);
    snprintf(hdr + o, sizeof hdr - o, "%s", good);
    assert_int_equal(run(&f, "127.0.0.1", one, 2, NULL, 0), 401);
    free_app(&f);
}

/* ---- item 10: method and host headers ---------------------------------- */

static void test_method_rule(void **state)
{
    (void)state;
    fixture f;
    char c[128];
    make_app(&f, NULL);
    add_session(&f, "alice");
    snprintf(c, sizeof c, "sessiond=%s", f.id);
    static const char *const unsafe[][4] = {
        {"X-Forwarded-Method", "GET", "X-Original-Method", "POST"},
        {"X-Forwarded-Method", "POST", "X-Original-Method", "GET"},
        {"X-Forwarded-Method", "TRACE", "X-Other", "1"},
        {"X-Original-Method", "CONNECT", "X-Other", "1"},
        {"X-Forwarded-Method", "PROPFIND", "X-Other", "1"},
        {"X-Forwarded-Method", "", "X-Other", "1"},
        {"X-Forwarded-Method", "GET", "X-Forwarded-Method", "DELETE"},
    };
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        const char *h[] = {"Cookie", c, "User-Agent", "unit-agent",
                           unsafe[i][0], unsafe[i][1], unsafe[i][2], unsafe[i][3]};
        assert_int_equal(run(&f, "127.0.0.1", h, 4, NULL, 0), 403);
        const char *t[] = {"Cookie", c, "User-Agent", "unit-agent",
                           unsafe[i][0], unsafe[i][1], unsafe[i][2], unsafe[i][3],
                           "X-CSRF-Token", f.csrf};
        assert_int_equal(run(&f, "127.0.0.1", t, 5, NULL, 0), 200);
    }
    const char *safe[] = {"Cookie", c, "User-Agent", "unit-agent",
                          "X-Forwarded-Method", "HEAD", "X-Original-Method", "GET"};
    assert_int_equal(run(&f, "127.0.0.1", safe, 4, NULL, 0), 200);
    assert_int_equal(run(&f, "127.0.0.1", safe, 2, NULL, 0), 200);
    free_app(&f);
}

static unsigned post_from(fixture *f, const char *peer, const char *origin,
                          const char *host, const char *xfh, const char *xfp)
{
    char c[128];
    snprintf(c, sizeof c, "sessiond=%s", f->id);
    const char *h[16] = {"Cookie", c, "User-Agent", "unit-agent",
                         "X-Forwarded-Method", "POST", "X-CSRF-Token", f->csrf,
                         "Origin", origin, "Host", host};
    size_t n = 6;
    if (xfh != NULL) {
        h[2 * n] = "X-Forwarded-Host";
        h[2 * n + 1] = xfh;
        n++;
    }
    if (xfp != NULL) {
        h[2 * n] = "X-Forwarded-Proto";
        h[2 * n + 1] = xfp;
        n++;
    }
    return run(f, peer, h, n, NULL, 0);
}

static void test_forwarded_host_trust(void **state)
{
    (void)state;
    fixture f;
    make_app(&f, "[binding]\ntrusted_proxies = 10.0.0.0/8\n"
                 "[session]\n[csrf]\nallowed_origins = https://partner.example\n");
    f.cfg.session.ip_prefix_v4 = 0;   /* peers differ below */
    sess_ctx_free(f.app.ctx);
    {
        static const uint8_t key[1][SESS_KEY_BYTES] = {{5, 4, 3}};
        const char *kids[] = {"unit-key"};
        sess_keyring *kr;
        sess_store *st;
        assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, NULL), SESS_OK);
        assert_int_equal(sess_store_open("memory:", NULL, &st, NULL), SESS_OK);
        assert_int_equal(sess_ctx_new(&f.cfg.session, st, kr, &f.app.ctx, NULL),
                         SESS_OK);
        sess_ctx_set_clock(f.app.ctx, fixed_clock, NULL);
    }
    add_session(&f, "alice");
    /* Untrusted peer: Host + the configured scheme (http: development). */
    assert_int_equal(post_from(&f, "198.51.100.1", "http://app.example", "app.example",
                               NULL, NULL), 200);
    assert_int_equal(post_from(&f, "198.51.100.1", "https://app.example", "internal",
                               "app.example", "https"), 403);
    assert_int_equal(post_from(&f, "198.51.100.1", "http://app.example", "internal",
                               "app.example", NULL), 403);
    /* Trusted proxy: its X-Forwarded-Host and -Proto count. */
    assert_int_equal(post_from(&f, "10.0.0.5", "https://app.example", "internal",
                               "app.example", "https"), 200);
    assert_int_equal(post_from(&f, "10.0.0.5", "https://app.example:8443", "internal",
                               "app.example", "https"), 403);
    assert_int_equal(post_from(&f, "10.0.0.5", "http://app.example", "internal",
                               "app.example", "https"), 403);
    assert_int_equal(post_from(&f, "10.0.0.5", "https://app.example", "internal",
                               "app.example", "ftp"), 403);
    assert_int_equal(post_from(&f, "10.0.0.5", "https://app.example", "internal",
                               "app.example, evil.example", "https"), 403);
    assert_int_equal(post_from(&f, "10.0.0.5", "null", "internal",
                               "app.example", "https"), 403);
    /* The allow-list is compared as full origins too. */
    assert_int_equal(post_from(&f, "198.51.100.1", "https://partner.example:443",
                               "app.example", NULL, NULL), 200);
    assert_int_equal(post_from(&f, "198.51.100.1", "http://partner.example",
                               "app.example", NULL, NULL), 403);
    free_app(&f);
}

/* ---- item 11: X-Session-User ------------------------------------------- */

static void test_user_value(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"alice", "alice"},
        {"alice@example.com", "alice@example.com"},
        {"zo\xc3\xab", "utf-8''zo%C3%AB"},
        {"zo%C3%AB", "utf-8''zo%25C3%25AB"},
        {"it's", "utf-8''it%27s"},
        {"a b", "utf-8''a%20b"},
        {"a\r\nX: y", "utf-8''a%0D%0AX%3A%20y"},
    };
    char out[SESSIOND_USER_HEADER_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = sessiond_forward_user_value(cases[i][0], strlen(cases[i][0]), out,
                                            sizeof out);
        assert_int_equal(n, (int)strlen(cases[i][1]));
        assert_string_equal(out, cases[i][1]);
    }
    /* The longest user id, every byte encoded, fits. */
    char big[SESS_USER_ID_MAX];
    memset(big, '\x01', sizeof big);
    assert_int_equal(sessiond_forward_user_value(big, sizeof big, out, sizeof out),
                     7 + 3 * SESS_USER_ID_MAX);
    assert_int_equal(sessiond_forward_user_value(big, sizeof big, out, 100), -1);

    /* Through the handler. */
    fixture f;
    char c[128], user[SESSIOND_USER_HEADER_MAX];
    make_app(&f, NULL);
    add_session(&f, "zo%C3%AB");
    snprintf(c, sizeof c, "sessiond=%s", f.id);
    const char *h[] = {"Cookie", c, "User-Agent", "unit-agent"};
    assert_int_equal(run(&f, "127.0.0.1", h, 2, user, sizeof user), 200);
    assert_string_equal(user, "utf-8''zo%25C3%25AB");
    free_app(&f);
}

/* ---- item 12: failed API keys ------------------------------------------ */

static void test_throttle(void **state)
{
    (void)state;
    sessiond_apikeys *ak = sessiond_apikeys_new();
    uint32_t retry = 0;
    assert_non_null(ak);
    assert_false(sessiond_apikeys_refusing(ak, 1000));
    for (int i = 0; i < SESSIOND_THROTTLE_FAILURES - 1; i++) {
        assert_false(sessiond_apikeys_failed(ak, "198.51.100.1", 1000));
        assert_false(sessiond_apikeys_throttled(ak, "198.51.100.1", 1000, &retry));
    }
    assert_true(sessiond_apikeys_failed(ak, "198.51.100.1", 1001));
    assert_true(sessiond_apikeys_refusing(ak, 1001));
    assert_true(sessiond_apikeys_throttled(ak, "198.51.100.1", 1001, &retry));
    assert_int_equal(retry, SESSIOND_THROTTLE_BLOCK);
    assert_true(sessiond_apikeys_throttled(ak, "198.51.100.1", 1050, &retry));
    assert_int_equal(retry, 1001 + SESSIOND_THROTTLE_BLOCK - 1050);
    assert_false(sessiond_apikeys_throttled(ak, "198.51.100.2", 1001, &retry));
    /* The refusal ends. */
    assert_false(sessiond_apikeys_throttled(ak, "198.51.100.1",
                                            1001 + SESSIOND_THROTTLE_BLOCK, &retry));
    assert_false(sessiond_apikeys_refusing(ak, 1001 + SESSIOND_THROTTLE_BLOCK));
    /* Failures spread over more than the window never add up. */
    for (int i = 0; i < 3 * SESSIOND_THROTTLE_FAILURES; i++)
        assert_false(sessiond_apikeys_failed(ak, "198.51.100.3",
                                             5000 + (uint64_t)i * 7));
    /* A flood from many addresses stays in the fixed table. */
    char ip[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(ip, sizeof ip, "2001:db8::%x", i);
        (void)sessiond_apikeys_failed(ak, ip, 9000);
    }
    sessiond_apikeys_free(ak);
}

static void test_key_reasons(void **state)
{
    (void)state;
    char dir[] = "/tmp/sessiond-unit-keys-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("unit-key-0123456789abcdefghijklmnopqrstuvwxyz\n", fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0600), 0);
    sessiond_apikeys *ak = sessiond_apikeys_new();
    assert_int_equal(sessiond_apikeys_load(ak, path, err, sizeof err), 0);
    assert_int_equal(sessiond_apikeys_verify(ak, NULL), SESSIOND_KEY_MISSING);
    assert_int_equal(sessiond_apikeys_verify(ak, "Basic abc"), SESSIOND_KEY_MISSING);
    assert_int_equal(sessiond_apikeys_verify(ak, "Bearer "), SESSIOND_KEY_MISSING);
    assert_int_equal(sessiond_apikeys_verify(ak, "Bearer nope-0123456789abcdefghijklmnopqrst"),
                     SESSIOND_KEY_UNKNOWN);
    assert_int_equal(sessiond_apikeys_verify(
                         ak, "Bearer unit-key-0123456789abcdefghijklmnopqrstuvwxyz"),
                     SESSIOND_KEY_OK);
    assert_string_equal(sessiond_key_result_name(SESSIOND_KEY_MISSING), "missing");
    assert_string_equal(sessiond_key_result_name(SESSIOND_KEY_UNKNOWN), "unknown");
    sessiond_apikeys_free(ak);
    unlink(path);
    rmdir(dir);
}

static void test_peer_events(void **state)
{
    (void)state;
    char dir[] = "/tmp/sessiond-unit-ev-XXXXXX", path[64], err[256], line[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/events", dir);
    assert_int_equal(sessiond_events_open(path, err, sizeof err), 0);
    int written = 0;
    for (int i = 0; i < 12; i++)
        written += sessiond_events_peer(SESSIOND_PEV_AUTH_FAILURE, 1800000000u,
                                        "198.51.100.9", "/v1/sessions", NULL,
                                        "unknown");
    assert_int_equal(written, 5);
    /* The next second, the held-back count is reported. */
    assert_true(sessiond_events_peer(SESSIOND_PEV_AUTH_FAILURE, 1800000001u,
                                     "198.51.100.9", "/v1/sessions", NULL, "missing"));
    /* Another peer has its own budget. */
    assert_true(sessiond_events_peer(SESSIOND_PEV_AUTH_FAILURE, 1800000000u,
                                     "198.51.100.10", "/v1/sessions", NULL, "missing"));
    sessiond_events_close();
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int n = 0;
    bool saw_suppressed = false;
    while (fgets(line, sizeof line, fp)) {
        n++;
        assert_non_null(strstr(line, "\"event\":\"auth_failure\""));
        assert_non_null(strstr(line, "\"route\":\"/v1/sessions\""));
        assert_non_null(strstr(line, "\"reason\":"));
        if (strstr(line, "\"suppressed\":7"))
            saw_suppressed = true;
    }
    fclose(fp);
    assert_int_equal(n, 7);
    assert_true(saw_suppressed);
    unlink(path);
    rmdir(dir);
}

/* ---- item 13: one status map for both paths ---------------------------- */

static void test_status_map(void **state)
{
    (void)state;
    static const struct { int rc; unsigned status; } rows[] = {
        {SESS_EIO, 503}, {SESS_EUNAVAILABLE, 503}, {SESS_EFULL, 503},
        {SESS_EINVAL, 400}, {SESS_ETOOBIG, 413}, {SESS_EINTERNAL, 500},
        {SESS_ECRYPTO, 500}, {SESS_ENOMEM, 500},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sessiond_http_resp a, b;
        sess_err err = {0};
        assert_int_equal(sessiond_error_status(rows[i].rc), rows[i].status);
        sessiond_resp_init(&a);
        sessiond_resp_init(&b);
        sessiond_api_library_error(&a, rows[i].rc, &err);
        sessiond_library_error_static(&b, rows[i].rc, &err, "forward-auth");
        assert_int_equal(a.status, rows[i].status);
        assert_int_equal(b.status, rows[i].status);
        sessiond_resp_release(&a);
        sessiond_resp_release(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_candidate_tried),
        cmocka_unit_test(test_method_rule),
        cmocka_unit_test(test_forwarded_host_trust),
        cmocka_unit_test(test_user_value),
        cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_key_reasons),
        cmocka_unit_test(test_peer_events),
        cmocka_unit_test(test_status_map),
    };
    sessiond_log_setup(SESSIOND_LOG_ERROR, SESSIOND_LOG_TEXT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
