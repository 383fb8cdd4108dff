/*
 * test_session.c - the session lifecycle of lib/session.c on the memory
 * store with a hand-moved clock: create, validate, timeouts, rotation and
 * its grace window, regenerate, data versions, destroy, CSRF, binding,
 * per-user limits, listing and revocation, key reload, and that nothing
 * stored ever holds an ID.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "util.h"

static const sess_client alice_client = {"203.0.113.7", "Mozilla/5.0 test"};

static void create_user(sess_ctx *ctx, const char *user, sess_issued *out)
{
    sess_create_req req = {.user_id = user, .user_id_len = strlen(user),
                           .client = alice_client, .data = "{\"cart\":1}",
                           .data_len = 10};
    sess_err err;
    assert_int_equal(sess_create(ctx, &req, out, NULL, &err), SESS_OK);
}

static int validate(sess_ctx *ctx, const char *id, const sess_client *c,
                    sess_view *v)
{
    sess_err err;
    return sess_validate(ctx, id, strlen(id), c, SESS_VALIDATE_WANT_DATA, v, &err);
}

static void test_create_and_validate(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    sess_view v;

    create_user(ctx, "alice", &s);
    assert_int_equal(strlen(s.id), SESS_ID_LEN);
    assert_int_equal(sess_id_check(s.id, strlen(s.id)), SESS_OK);
    assert_int_equal(strlen(s.handle), SESS_HANDLE_LEN);
    assert_int_equal(strlen(s.csrf_token), SESS_CSRF_LEN);
    assert_int_equal(s.expires_at, clk.now + 86400);
    assert_int_equal(s.idle_expires_at, clk.now + 1800);

    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_string_equal(v.user_id, "alice");
    assert_string_equal(v.handle, s.handle);
    assert_string_equal(v.csrf_token, s.csrf_token);
    assert_string_equal(v.data, "{\"cart\":1}");
    assert_false(v.rotated);
    sess_view_clear(&v);

    /* Two sessions never share an ID or a handle. */
    sess_issued t;
    create_user(ctx, "alice", &t);
    assert_string_not_equal(s.id, t.id);
    assert_string_not_equal(s.handle, t.handle);
    sess_ctx_free(ctx);
}

static void test_unknown_and_malformed(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_view v;
    /* Fixation: a well-formed ID the server never issued is unknown. */
    const char *planted = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(validate(ctx, planted, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_UNKNOWN);
    assert_int_equal(validate(ctx, "short", &alice_client, &v), SESS_REJECTED);
    assert_int_equal(validate(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*",
                              &alice_client, &v), SESS_REJECTED);
    /* Non-canonical last character (low bits set). */
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", 43),
                     SESS_EINVAL);
    sess_ctx_free(ctx);
}

static void test_idle_and_absolute_timeouts(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.idle_timeout = 100;
    cfg.absolute_timeout = 250;
    cfg.rotate_interval = 0;
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_issued s;
    sess_view v;

    create_user(ctx, "bob", &s);
    clk.now += 99;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_int_equal(v.idle_expires_at, clk.now + 100);   /* touched */
    sess_view_clear(&v);
    clk.now += 99;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    /* Idle deadline is capped by the absolute one. */
    clk.now += 60;   /* 258 s after creation */
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_EXPIRED_ABSOLUTE);

    sess_issued t;
    create_user(ctx, "carol", &t);
    clk.now += 100;
    assert_int_equal(validate(ctx, t.id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_EXPIRED_IDLE);

    sess_stats st;
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.validate_expired_idle, 1);
    assert_int_equal(st.validate_expired_absolute, 1);
    sess_ctx_free(ctx);
}

static void test_touch_is_coalesced(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.rotate_interval = 0;   /* idle 1800: step 90 s */
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_issued s;
    sess_view v;
    sess_stats st;

    create_user(ctx, "dave", &s);
    for (int i = 0; i < 100; i++) {
        clk.now += 1;
        assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
        sess_view_clear(&v);
    }
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.touches_written, 1);   /* at +90 s only */
    sess_ctx_free(ctx);
}

static void test_remember_me(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_create_req req = {.user_id = "erin", .user_id_len = 4,
                           .client = alice_client, .remember = true};
    sess_issued s;
    sess_view v;
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_OK);
    assert_true(s.remember);
    assert_int_equal(s.expires_at, clk.now + 2592000);
    assert_int_equal(s.idle_expires_at, clk.now + 604800);
    clk.now += 86400 * 2;   /* past the ordinary absolute timeout */
    assert_int_equal(sess_validate(ctx, s.id, SESS_ID_LEN, &alice_client,
                                   SESS_VALIDATE_NO_ROTATE, &v, NULL), SESS_OK);
    assert_true(v.remember);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

static void test_rotation_with_grace(void **state)
{
    (void)state;
    test_clock clk;
    test_events evs = {0};
    sess_ctx *ctx = test_ctx_new(NULL, &clk);   /* rotate 300, grace 30 */
    sess_issued s;
    sess_view v, w;
    char succ[SESS_ID_LEN + 1];

    sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
    create_user(ctx, "frank", &s);
    clk.now += 299;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_false(v.rotated);
    sess_view_clear(&v);

    clk.now += 1;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_true(v.rotated);
    assert_string_not_equal(v.successor.id, s.id);
    assert_string_equal(v.successor.handle, s.handle);   /* stable handle */
    assert_string_not_equal(v.successor.csrf_token, s.csrf_token);
    assert_string_equal(v.data, "{\"cart\":1}");
    memcpy(succ, v.successor.id, sizeof succ);
    /* The old CSRF token stays valid during the grace window. */
    assert_true(sess_csrf_matches(&v, s.csrf_token, SESS_CSRF_LEN));
    assert_true(sess_csrf_matches(&v, v.successor.csrf_token, SESS_CSRF_LEN));
    sess_view_clear(&v);

    /* Within the grace window the old ID keeps giving the same successor. */
    clk.now += 10;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(validate(ctx, s.id, &alice_client, &w), SESS_OK);
        assert_true(w.rotated);
        assert_string_equal(w.successor.id, succ);
        sess_view_clear(&w);
    }
    /* The successor works and is not rotated again. */
    assert_int_equal(validate(ctx, succ, &alice_client, &w), SESS_OK);
    assert_false(w.rotated);
    sess_view_clear(&w);

    /* After the grace window the old ID is dead and its use is reported;
     * by default (RFC 9700 section 4.14.2) the successor ends with it. */
    clk.now += 21;
    assert_int_equal(validate(ctx, s.id, &alice_client, &w), SESS_REJECTED);
    assert_int_equal(w.reason, SESS_REASON_REVOKED);
    assert_int_equal(evs.count[SESS_EVENT_REUSE_AFTER_GRACE], 1);
    assert_string_equal(evs.last_handle, s.handle);
    assert_string_equal(evs.last_detail, "successor revoked");
    assert_int_equal(validate(ctx, succ, &alice_client, &w), SESS_REJECTED);
    assert_int_equal(w.reason, SESS_REASON_UNKNOWN);
    sess_view_clear(&w);
    sess_ctx_free(ctx);
}

/* A context on "url" (memory: or lmdb:DIR) with the test key and clock. */
static sess_ctx *ctx_on(const char *url, const sess_config *cfg, test_clock *clk)
{
    static const uint8_t key[1][SESS_KEY_BYTES] = {{9, 8, 7}};
    const char *kids[] = {"reuse-key"};
    sess_keyring *kr = NULL;
    sess_store *st = NULL;
    sess_ctx *ctx = NULL;
    sess_store_options opt = {0};
    sess_err err;
    assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, &err), SESS_OK);
    assert_int_equal(sess_store_open(url, &opt, &st, &err), SESS_OK);
    assert_int_equal(sess_ctx_new(cfg, st, kr, &ctx, &err), SESS_OK);
    clk->now = 1800000000u;
    sess_ctx_set_clock(ctx, test_clock_read, clk);
    return ctx;
}

/* Lifecycle events in order, as the daemon's handler sees them. */
typedef struct lifecycle_log {
    size_t n;
    struct {
        sess_event_type type;
        char handle[SESS_HANDLE_LEN + 1];
        char prev[SESS_HANDLE_LEN + 1];
        char user[64];
        char detail[32];
    } ev[32];
} lifecycle_log;

static void lifecycle_capture(void *user, const sess_event *ev)
{
    lifecycle_log *l = user;
    assert_true(l->n < 32);
    memset(&l->ev[l->n], 0, sizeof l->ev[0]);
    l->ev[l->n].type = ev->type;
    if (ev->handle)
        snprintf(l->ev[l->n].handle, sizeof l->ev[0].handle, "%s", ev->handle);
    if (ev->prev_handle)
        snprintf(l->ev[l->n].prev, sizeof l->ev[0].prev, "%s", ev->prev_handle);
    if (ev->user_id)
        snprintf(l->ev[l->n].user, sizeof l->ev[0].user, "%.*s",
                 (int)ev->user_id_len, ev->user_id);
    if (ev->detail)
        snprintf(l->ev[l->n].detail, sizeof l->ev[0].detail, "%s", ev->detail);
    l->n++;
}

/*
 * Lifecycle events (docs/observability.md) on every local store: created,
 * rotated, regenerated + elevated, destroyed, each once with handle and
 * user id; and "expired" from the purge, once, for a session nobody used
 * again (a second purge reports nothing, a tombstone is not a session).
 */
static void test_lifecycle_events(void **state)
{
    (void)state;
    char dir[64], url[96];
    test_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "lmdb:%s", dir);
    const char *urls[] = {"memory:", url};
    for (size_t u = 0; u < 2; u++) {
        test_clock clk;
        lifecycle_log log = {0};
        sess_config cfg;
        sess_config_defaults(&cfg);
        sess_ctx *ctx = ctx_on(urls[u], &cfg, &clk);
        sess_ctx_set_event_handler(ctx, lifecycle_capture, &log);
        sess_issued s, r, idle;
        sess_view v;
        sess_err err;
        sess_reason why;

        create_user(ctx, "lena", &s);
        assert_int_equal(log.n, 1);
        assert_int_equal(log.ev[0].type, SESS_EVENT_CREATED);
        assert_string_equal(log.ev[0].handle, s.handle);
        assert_string_equal(log.ev[0].user, "lena");
        clk.now += 300;
        assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
        assert_true(v.rotated);
        char succ[SESS_ID_LEN + 1];
        memcpy(succ, v.successor.id, sizeof succ);
        sess_view_clear(&v);
        assert_int_equal(log.n, 2);
        assert_int_equal(log.ev[1].type, SESS_EVENT_ROTATED);
        assert_string_equal(log.ev[1].handle, s.handle);
        /* Within the grace the old ID resolves to the successor: no new
         * rotation, no event. */
        assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
        sess_view_clear(&v);
        assert_int_equal(log.n, 2);

        assert_int_equal(sess_regenerate(ctx, succ, SESS_ID_LEN, &alice_client, 1,
                                         &r, &why, &err), SESS_OK);
        assert_int_equal(log.n, 4);
        assert_int_equal(log.ev[2].type, SESS_EVENT_REGENERATED);
        assert_int_equal(log.ev[3].type, SESS_EVENT_ELEVATED);
        assert_string_equal(log.ev[2].handle, r.handle);
        assert_string_equal(log.ev[2].prev, s.handle);
        assert_string_equal(log.ev[3].user, "lena");
        /* Elevating what is elevated already raises no second ELEVATED. */
        sess_issued r2;
        assert_int_equal(sess_regenerate(ctx, r.id, SESS_ID_LEN, &alice_client, 1,
                                         &r2, &why, &err), SESS_OK);
        assert_int_equal(log.n, 5);
        assert_int_equal(log.ev[4].type, SESS_EVENT_REGENERATED);
        assert_int_equal(sess_destroy(ctx, r2.id, SESS_ID_LEN, &err), SESS_OK);
        assert_int_equal(log.n, 6);
        assert_int_equal(log.ev[5].type, SESS_EVENT_DESTROYED);
        assert_string_equal(log.ev[5].handle, r2.handle);
        assert_string_equal(log.ev[5].detail, "logout");
        /* A second logout ends nothing and says nothing. */
        assert_int_equal(sess_destroy(ctx, r2.id, SESS_ID_LEN, &err), SESS_NOTFOUND);
        assert_int_equal(log.n, 6);

        /* A session left alone expires (idle, 1800 s); the purge finds
         * it once its record's retention (600 s) is over. */
        create_user(ctx, "otto", &idle);
        size_t base = log.n, removed = 0;
        clk.now += 1800 + 600 + 1;
        assert_int_equal(sess_purge_expired(ctx, 1000, &removed, &err), SESS_OK);
        assert_true(removed >= 1);
        size_t expired = 0;
        for (size_t i = base; i < log.n; i++) {
            if (log.ev[i].type != SESS_EVENT_EXPIRED)
                continue;
            expired++;
            assert_string_equal(log.ev[i].handle, idle.handle);
            assert_string_equal(log.ev[i].user, "otto");
            assert_string_equal(log.ev[i].detail, "idle");
        }
        assert_int_equal(expired, 1);
        base = log.n;
        assert_int_equal(sess_purge_expired(ctx, 1000, &removed, &err), SESS_OK);
        assert_int_equal(log.n, base);
        sess_ctx_free(ctx);
    }
}

/*
 * Reuse after the grace window on every local store: the thief rotated
 * first (twice, so the live session is two hops away from the replayed
 * ID); the victim's replay of the original ID ends the thief's session.
 * With on_reuse_after_grace = log the successor lives on, as before.
 */
static void test_reuse_after_grace_revokes_successor(void **state)
{
    (void)state;
    char dir[64], url[96];
    test_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "lmdb:%s", dir);
    const char *urls[] = {"memory:", url};
    for (size_t u = 0; u < 2; u++) {
        for (int mode = 0; mode < 2; mode++) {
            test_clock clk;
            test_events evs = {0};
            sess_config cfg;
            sess_config_defaults(&cfg);
            cfg.reuse_action = mode == 0 ? SESS_REUSE_REVOKE : SESS_REUSE_LOG;
            sess_ctx *ctx = ctx_on(urls[u], &cfg, &clk);
            sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
            sess_issued s;
            sess_view v;
            char s1[SESS_ID_LEN + 1], s2[SESS_ID_LEN + 1];

            create_user(ctx, "mallory-victim", &s);
            clk.now += 300;   /* the thief rotates s -> s1 */
            assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
            assert_true(v.rotated);
            memcpy(s1, v.successor.id, sizeof s1);
            sess_view_clear(&v);
            clk.now += 300;   /* and s1 -> s2 */
            assert_int_equal(validate(ctx, s1, &alice_client, &v), SESS_OK);
            assert_true(v.rotated);
            memcpy(s2, v.successor.id, sizeof s2);
            sess_view_clear(&v);

            /* The victim's tab comes back with the original ID. */
            assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_REJECTED);
            assert_int_equal(v.reason, SESS_REASON_REVOKED);
            assert_int_equal(evs.count[SESS_EVENT_REUSE_AFTER_GRACE], 1);
            assert_string_equal(evs.last_handle, s.handle);
            sess_view_clear(&v);
            int rc = validate(ctx, s2, &alice_client, &v);
            sess_view_clear(&v);
            if (mode == 0) {
                assert_string_equal(evs.last_detail, "successor revoked");
                assert_int_equal(rc, SESS_REJECTED);
                /* A second replay finds nothing left to end. */
                assert_int_equal(validate(ctx, s.id, &alice_client, &v),
                                 SESS_REJECTED);
                assert_string_equal(evs.last_detail, "no live successor");
                sess_view_clear(&v);
                /* Other sessions of the user are untouched. */
                sess_issued t;
                create_user(ctx, "mallory-victim", &t);
                assert_int_equal(validate(ctx, t.id, &alice_client, &v), SESS_OK);
                sess_view_clear(&v);
            } else {
                assert_string_equal(evs.last_detail, "logged");
                assert_int_equal(rc, SESS_OK);
            }
            sess_ctx_free(ctx);
        }
    }
    test_rmdir(dir);
}

/* Remember-me Max-Age has one owner (issue 10, item 13): the remaining
 * absolute lifetime by the context's clock, 0 once past, none otherwise. */
static void test_issued_cookie_max_age(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_cookie_profile p;
    sess_issued s;
    char buf[SESS_SET_COOKIE_MAX], want[64];
    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &p);
    sess_create_req req = {.user_id = "rita", .user_id_len = 4,
                           .client = alice_client, .remember = true};
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_OK);
    clk.now += 1000;
    assert_true(sess_issued_cookie(ctx, &p, &s, buf, sizeof buf) > 0);
    snprintf(want, sizeof want, "; Max-Age=%llu;",
             (unsigned long long)(s.expires_at - clk.now));
    assert_non_null(strstr(buf, want));
    clk.now = s.expires_at + 5;
    assert_true(sess_issued_cookie(ctx, &p, &s, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "; Max-Age=0;"));
    s.remember = false;
    assert_true(sess_issued_cookie(ctx, &p, &s, buf, sizeof buf) > 0);
    assert_null(strstr(buf, "Max-Age"));
    assert_true(sess_issued_cookie(ctx, &p, &s, buf, 10) < 0);
    sess_wipe(&s, sizeof s);
    sess_ctx_free(ctx);
}

static void test_reuse_action_checked(void **state)
{
    (void)state;
    sess_config cfg;
    sess_err err;
    sess_config_defaults(&cfg);
    assert_int_equal(cfg.reuse_action, SESS_REUSE_REVOKE);
    cfg.reuse_action = (sess_reuse_action)7;
    assert_int_equal(sess_config_check(&cfg, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "on_reuse_after_grace"));
}

/* A burst of threads all holding the old ID right at rotation time. */
typedef struct burst {
    sess_ctx *ctx;
    const char *id;
    char got[SESS_ID_LEN + 1];
    int rc;
} burst;

static void *burst_thread(void *arg)
{
    burst *b = arg;
    sess_view v;
    b->rc = sess_validate(b->ctx, b->id, SESS_ID_LEN, &alice_client, 0, &v, NULL);
    if (b->rc == SESS_OK && v.rotated)
        memcpy(b->got, v.successor.id, sizeof b->got);
    sess_view_clear(&v);
    return NULL;
}

static void test_rotation_burst_one_successor(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    enum { N = 16 };
    burst b[N];
    pthread_t th[N];
    sess_stats st;

    create_user(ctx, "gina", &s);
    clk.now += 301;
    for (int i = 0; i < N; i++) {
        memset(&b[i], 0, sizeof b[i]);
        b[i].ctx = ctx;
        b[i].id = s.id;
        pthread_create(&th[i], NULL, burst_thread, &b[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(b[i].rc, SESS_OK);
        assert_string_equal(b[i].got, b[0].got);
    }
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.rotations, 1);
    sess_ctx_free(ctx);
}

static void test_regenerate_kills_old_at_once(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s, r;
    sess_view v;
    sess_reason why;

    create_user(ctx, "hank", &s);
    assert_int_equal(sess_regenerate(ctx, s.id, SESS_ID_LEN, &alice_client, 1, &r,
                                     &why, NULL), SESS_OK);
    assert_string_not_equal(r.id, s.id);
    assert_string_not_equal(r.handle, s.handle);
    assert_string_not_equal(r.csrf_token, s.csrf_token);
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_REVOKED);
    assert_int_equal(validate(ctx, r.id, &alice_client, &v), SESS_OK);
    assert_true(v.elevated);
    assert_string_equal(v.data, "{\"cart\":1}");
    assert_int_equal(v.expires_at, s.expires_at);   /* no lifetime extension */
    sess_view_clear(&v);
    /* Regenerating a dead ID fails. */
    assert_int_equal(sess_regenerate(ctx, s.id, SESS_ID_LEN, &alice_client, -1, &r,
                                     &why, NULL), SESS_REJECTED);
    sess_ctx_free(ctx);
}

static void test_data_versions(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    sess_view v;
    uint64_t ver = 0;

    create_user(ctx, "ivy", &s);
    assert_int_equal(sess_set_data(ctx, s.id, SESS_ID_LEN, "{\"a\":2}", 7, 0, &ver,
                                   NULL, NULL), SESS_OK);
    assert_int_equal(ver, 1);
    assert_int_equal(sess_set_data(ctx, s.id, SESS_ID_LEN, "{\"a\":3}", 7, 0, &ver,
                                   NULL, NULL), SESS_CONFLICT);
    assert_int_equal(sess_set_data(ctx, s.id, SESS_ID_LEN, "{\"a\":3}", 7, -1, &ver,
                                   NULL, NULL), SESS_OK);
    assert_int_equal(ver, 2);
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_string_equal(v.data, "{\"a\":3}");
    assert_int_equal(v.data_version, 2);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

static void test_destroy(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    sess_view v;

    create_user(ctx, "jack", &s);
    assert_int_equal(sess_destroy(ctx, s.id, SESS_ID_LEN, NULL), SESS_OK);
    assert_int_equal(sess_destroy(ctx, s.id, SESS_ID_LEN, NULL), SESS_NOTFOUND);
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_UNKNOWN);

    /* Logging out with an ID in its grace window ends the session. */
    create_user(ctx, "jack", &s);
    clk.now += 301;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    char succ[SESS_ID_LEN + 1];
    memcpy(succ, v.successor.id, sizeof succ);
    sess_view_clear(&v);
    assert_int_equal(sess_destroy(ctx, s.id, SESS_ID_LEN, NULL), SESS_OK);
    assert_int_equal(validate(ctx, succ, &alice_client, &v), SESS_REJECTED);

    /* Past the grace window the old ID ends nothing: a stale or replayed
     * cookie cannot log the user out. */
    create_user(ctx, "jack", &s);
    clk.now += 301;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    memcpy(succ, v.successor.id, sizeof succ);
    sess_view_clear(&v);
    clk.now += 31;
    assert_int_equal(sess_destroy(ctx, s.id, SESS_ID_LEN, NULL), SESS_NOTFOUND);
    assert_int_equal(validate(ctx, succ, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);

    /* An ID killed by regenerate is no session to destroy. */
    sess_issued r;
    assert_int_equal(sess_regenerate(ctx, succ, SESS_ID_LEN, &alice_client, -1, &r,
                                     NULL, NULL), SESS_OK);
    assert_int_equal(sess_destroy(ctx, succ, SESS_ID_LEN, NULL), SESS_NOTFOUND);
    assert_int_equal(validate(ctx, r.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    sess_stats st;
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.destroyed, 2);
    sess_ctx_free(ctx);
}

static void test_csrf(void **state)
{
    (void)state;
    test_clock clk;
    test_events evs = {0};
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    sess_reason why;
    char bad[SESS_CSRF_LEN + 1];

    sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
    create_user(ctx, "kate", &s);
    assert_int_equal(sess_csrf_verify(ctx, s.id, SESS_ID_LEN, s.csrf_token,
                                      SESS_CSRF_LEN, &why, NULL), SESS_OK);
    memcpy(bad, s.csrf_token, sizeof bad);
    bad[5] = bad[5] == 'A' ? 'B' : 'A';
    assert_int_equal(sess_csrf_verify(ctx, s.id, SESS_ID_LEN, bad, SESS_CSRF_LEN,
                                      &why, NULL), SESS_CSRF);
    assert_int_equal(sess_csrf_verify(ctx, s.id, SESS_ID_LEN, "", 0, &why, NULL),
                     SESS_CSRF);
    assert_int_equal(evs.count[SESS_EVENT_CSRF_FAILURE], 2);
    sess_ctx_free(ctx);
}

static void test_binding(void **state)
{
    (void)state;
    test_clock clk;
    test_events evs = {0};
    sess_config cfg;
    sess_config_defaults(&cfg);
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_issued s;
    sess_view v;
    const sess_client same24 = {"203.0.113.200", "Mozilla/5.0 test"};
    const sess_client other24 = {"203.0.114.7", "Mozilla/5.0 test"};
    const sess_client other_ua = {"203.0.113.7", "curl/8"};
    const sess_client mapped = {"::ffff:203.0.113.9", "Mozilla/5.0 test"};
    const sess_client v6 = {"2001:db8::1", "Mozilla/5.0 test"};

    sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
    create_user(ctx, "leo", &s);
    assert_int_equal(validate(ctx, s.id, &same24, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(validate(ctx, s.id, &mapped, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(validate(ctx, s.id, &other24, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_BINDING_MISMATCH);
    assert_string_equal(evs.last_detail, "ip");
    assert_int_equal(validate(ctx, s.id, &other_ua, &v), SESS_REJECTED);
    assert_string_equal(evs.last_detail, "user_agent");
    assert_int_equal(validate(ctx, s.id, &v6, &v), SESS_REJECTED);
    assert_int_equal(evs.count[SESS_EVENT_BINDING_MISMATCH], 3);
    assert_string_equal(evs.last_handle, s.handle);
    sess_ctx_free(ctx);

    /* IPv6 /64 binding. */
    ctx = test_ctx_new(&cfg, &clk);
    sess_create_req req = {.user_id = "leo", .user_id_len = 3,
                           .client = {"2001:db8:1:2::10", NULL}};
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_OK);
    const sess_client same64 = {"2001:db8:1:2:ffff::1", NULL};
    const sess_client other64 = {"2001:db8:1:3::10", NULL};
    assert_int_equal(validate(ctx, s.id, &same64, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(validate(ctx, s.id, &other64, &v), SESS_REJECTED);
    sess_ctx_free(ctx);

    /* action = log: reported, not refused. */
    cfg.bind_action = SESS_BIND_LOG;
    memset(&evs, 0, sizeof evs);
    ctx = test_ctx_new(&cfg, &clk);
    sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
    create_user(ctx, "leo", &s);
    assert_int_equal(validate(ctx, s.id, &other24, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(evs.count[SESS_EVENT_BINDING_MISMATCH], 1);
    sess_ctx_free(ctx);
}

static void test_limit_evict_oldest_and_deny(void **state)
{
    (void)state;
    test_clock clk;
    test_events evs = {0};
    sess_config cfg;
    sess_config_defaults(&cfg);
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_issued s[4];
    sess_evicted ev;
    sess_view v;
    sess_create_req req = {.user_id = "mia", .user_id_len = 3, .client = alice_client};

    sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sess_create(ctx, &req, &s[i], &ev, NULL), SESS_OK);
        assert_int_equal(ev.n, 0);
        clk.now += 1;
    }
    assert_int_equal(sess_create(ctx, &req, &s[3], &ev, NULL), SESS_OK);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.handle[0], s[0].handle);
    assert_int_equal(evs.count[SESS_EVENT_LIMIT_EVICTION], 1);
    assert_int_equal(validate(ctx, s[0].id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(validate(ctx, s[3].id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    sess_ctx_free(ctx);

    cfg.limit_policy = SESS_LIMIT_DENY;
    ctx = test_ctx_new(&cfg, &clk);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sess_create(ctx, &req, &s[i], &ev, NULL), SESS_OK);
    assert_int_equal(sess_create(ctx, &req, &s[3], &ev, NULL), SESS_LIMIT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(validate(ctx, s[i].id, &alice_client, &v), SESS_OK);
        sess_view_clear(&v);
    }
    /* An expired session does not hold a place. */
    clk.now += 1801 + 600;
    assert_int_equal(sess_create(ctx, &req, &s[3], &ev, NULL), SESS_OK);
    sess_ctx_free(ctx);
}

typedef struct login_arg {
    sess_ctx *ctx;
    int rc;
} login_arg;

static void *login_thread(void *p)
{
    login_arg *a = p;
    sess_create_req req = {.user_id = "nina", .user_id_len = 4, .client = alice_client};
    sess_issued s;
    a->rc = sess_create(a->ctx, &req, &s, NULL, NULL);
    return NULL;
}

static void test_limit_under_simultaneous_logins(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    enum { N = 40 };
    pthread_t th[N];
    login_arg a[N];
    sess_summary *list;
    size_t n;

    for (int i = 0; i < N; i++) {
        a[i].ctx = ctx;
        pthread_create(&th[i], NULL, login_thread, &a[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].rc, SESS_OK);
    }
    assert_int_equal(sess_list_user(ctx, "nina", 4, &list, &n, NULL), SESS_OK);
    assert_int_equal(n, 3);
    free(list);
    sess_ctx_free(ctx);
}

static void test_list_and_revoke(void **state)
{
    (void)state;
    test_clock clk;
    test_events evs = {0};
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s[3];
    sess_summary *list;
    size_t n, revoked;
    sess_view v;

    sess_ctx_set_event_handler(ctx, test_event_capture, &evs);
    for (int i = 0; i < 3; i++) {
        create_user(ctx, "olga", &s[i]);
        clk.now += 5;
    }
    assert_int_equal(sess_list_user(ctx, "olga", 4, &list, &n, NULL), SESS_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].handle, s[0].handle);   /* oldest first */
    assert_string_equal(list[0].ip, "203.0.113.7");
    assert_string_equal(list[0].user_agent, "Mozilla/5.0 test");
    free(list);

    assert_int_equal(sess_revoke_handle(ctx, s[1].handle, SESS_HANDLE_LEN, NULL),
                     SESS_OK);
    assert_int_equal(sess_revoke_handle(ctx, s[1].handle, SESS_HANDLE_LEN, NULL),
                     SESS_NOTFOUND);
    assert_int_equal(sess_revoke_handle(ctx, "not-a-handle", 12, NULL), SESS_NOTFOUND);
    assert_int_equal(validate(ctx, s[1].id, &alice_client, &v), SESS_REJECTED);

    assert_int_equal(sess_revoke_user(ctx, "olga", 4, s[2].handle, &revoked, NULL),
                     SESS_OK);
    assert_int_equal(revoked, 1);
    assert_int_equal(validate(ctx, s[0].id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(validate(ctx, s[2].id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(sess_revoke_user(ctx, "olga", 4, NULL, &revoked, NULL), SESS_OK);
    assert_int_equal(revoked, 1);
    assert_int_equal(evs.count[SESS_EVENT_REVOKE], 3);
    sess_ctx_free(ctx);
}

static void test_bad_create_input(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    char big[SESS_USER_ID_MAX + 1];
    sess_create_req req = {.user_id = "x", .user_id_len = 1, .client = alice_client};

    memset(big, 'u', sizeof big);
    req.user_id_len = 0;
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_EINVAL);
    req.user_id = big;
    req.user_id_len = sizeof big;
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_EINVAL);
    req.user_id = "\xff\xfe";
    req.user_id_len = 2;
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_EINVAL);
    req.user_id = "x";
    req.user_id_len = 1;
    req.client.ip = "999.1.1.1";
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_EINVAL);
    req.client.ip = NULL;
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_EINVAL);
    sess_ctx_free(ctx);
}

/* Keys reload: sessions sealed with the old key stay readable. */
static void test_key_reload(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s, t;
    sess_view v;
    sess_keyring *kr;
    static const uint8_t keys[2][SESS_KEY_BYTES] = {{1, 2, 3, 4, 5, 6, 7, 8}, {9}};
    const char *kids[] = {"test-key-1", "test-key-2"};
    const char *only_new[] = {"test-key-2"};
    sess_err err;

    create_user(ctx, "pam", &s);
    assert_int_equal(sess_keyring_from_keys(kids, keys, 2, &kr, NULL), SESS_OK);
    assert_string_equal(sess_keyring_kid(kr, 0), "test-key-2");
    assert_int_equal(sess_ctx_reload_keys(ctx, kr, false, NULL), SESS_OK);
    create_user(ctx, "pam", &t);
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(validate(ctx, t.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    /* A keyring that would orphan live sessions is refused. */
    assert_int_equal(sess_keyring_from_keys(only_new, &keys[1], 1, &kr, NULL), SESS_OK);
    assert_int_equal(sess_ctx_reload_keys(ctx, kr, false, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "test-key-1"));
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

/* Reloads are not limited in number: a replaced keyring is freed as soon
 * as no thread uses it (it used to be kept until shutdown, and the 65th
 * reload was refused).  Threads validate and create throughout, so under
 * ASan and valgrind a keyring freed while a thread still opened or sealed
 * with it would show as a use after free. */
typedef struct reloader {
    sess_ctx *ctx;
    const char *id;
    int worker;
    atomic_bool *stop;
    long rounds;
    int bad_rc;
} reloader;

static void *reload_worker(void *arg)
{
    reloader *r = arg;
    char user[32];
    snprintf(user, sizeof user, "reload-worker-%d", r->worker);
    while (!atomic_load(r->stop)) {
        sess_view v;
        int rc = validate(r->ctx, r->id, &alice_client, &v);
        sess_view_clear(&v);
        if (rc == SESS_OK && r->rounds % 8 == 0) {
            sess_issued t;
            sess_create_req req = {.user_id = user, .user_id_len = strlen(user),
                                   .client = alice_client};
            rc = sess_create(r->ctx, &req, &t, NULL, NULL);
            if (rc == SESS_OK) {
                rc = validate(r->ctx, t.id, &alice_client, &v);
                sess_view_clear(&v);
            }
        }
        if (rc != SESS_OK) {
            r->bad_rc = rc;
            break;
        }
        r->rounds++;
    }
    return NULL;
}

static void test_key_reload_unlimited_while_busy(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.record_cache_entries = 0;     /* every validate opens with the keyring */
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    static const uint8_t keys[2][SESS_KEY_BYTES] = {{1, 2, 3, 4, 5, 6, 7, 8}, {9}};
    const char *kids[2][2] = {{"test-key-1", "test-key-2"}, {"test-key-2", "test-key-1"}};
    enum { WORKERS = 3, RELOADS = 1000 };
    reloader r[WORKERS];
    pthread_t th[WORKERS];
    atomic_bool stop = false;
    sess_issued s;
    sess_err err;

    create_user(ctx, "rhea", &s);
    for (int i = 0; i < WORKERS; i++) {
        r[i] = (reloader){.ctx = ctx, .id = s.id, .worker = i, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, reload_worker, &r[i]), 0);
    }
    for (int i = 0; i < RELOADS; i++) {
        sess_keyring *kr;
        /* Both keys each time (each id with its own bytes), listed in
         * either order: a new keyring object for every reload. */
        uint8_t order[2][SESS_KEY_BYTES];
        memcpy(order[0], keys[i % 2], SESS_KEY_BYTES);
        memcpy(order[1], keys[(i + 1) % 2], SESS_KEY_BYTES);
        assert_int_equal(sess_keyring_from_keys(kids[i % 2],
                                                (const uint8_t (*)[SESS_KEY_BYTES])order,
                                                2, &kr, NULL), SESS_OK);
        if (sess_ctx_reload_keys(ctx, kr, false, &err) != SESS_OK)
            fail_msg("reload %d refused: %s", i, err.msg);
    }
    atomic_store(&stop, true);
    long rounds = 0;
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (r[i].bad_rc)
            fail_msg("worker %d: %s during reloads", i, sess_result_name(r[i].bad_rc));
        rounds += r[i].rounds;
    }
    assert_true(rounds > 0);
    sess_view v;
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

/* A memory store that routes like a sharded backend: every key and handle
 * of a user must carry the route, through create, rotation and regenerate. */
static sess_store_methods routed_methods;
static sess_store_methods plain_methods;   /* the memory store's, unrouted */
static int (*memory_insert)(sess_store *, const sess_entry *, const sess_store_limit *,
                            uint64_t, sess_store_evicted *, sess_err *);

static int routed_route(sess_store *st, const uint8_t *user, uint16_t *out,
                        sess_err *err)
{
    (void)st;
    (void)err;
    *out = (uint16_t)(((user[0] << 8) | user[1]) & 0x3FFF);
    return SESS_OK;
}

static int routed_insert(sess_store *st, const sess_entry *e,
                         const sess_store_limit *lim, uint64_t now,
                         sess_store_evicted *ev, sess_err *err)
{
    uint16_t want;
    routed_route(st, e->user, &want, err);
    assert_int_equal(SESS_ROUTE_OF(e->key), want);
    assert_int_equal(SESS_ROUTE_OF(e->handle), want);
    return memory_insert(st, e, lim, now, ev, err);
}

static int routed_open(const char *url, const sess_store_options *opt,
                       sess_store **out, sess_err *err)
{
    (void)url;
    int rc = sess_store_open("memory:", opt, out, err);
    if (rc == SESS_OK)
        (*out)->methods = &routed_methods;
    return rc;
}

/* A context over a fresh "routed:" store, which "*st" names. */
static sess_ctx *routed_ctx(test_clock *clk, sess_store **st)
{
    static const uint8_t key[1][SESS_KEY_BYTES] = {{3}};
    const char *kids[] = {"k"};
    sess_keyring *kr;
    sess_ctx *ctx;
    sess_store_options opt = {0};
    sess_config cfg;

    assert_int_equal(sess_store_open("routed:", &opt, st, NULL), SESS_OK);
    assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, NULL), SESS_OK);
    sess_config_defaults(&cfg);
    assert_int_equal(sess_ctx_new(&cfg, *st, kr, &ctx, NULL), SESS_OK);
    sess_ctx_set_clock(ctx, test_clock_read, clk);
    return ctx;
}

static void test_routed_store(void **state)
{
    (void)state;
    sess_store *st;
    test_clock clk = {1800000000u};
    sess_ctx *ctx = routed_ctx(&clk, &st);
    sess_issued s, r;
    sess_view v;
    sess_reason why;

    create_user(ctx, "quinn", &s);
    uint8_t raw[32];
    assert_int_equal(sess__b64url_decode(s.id, SESS_ID_LEN, raw, 32), SESS_OK);
    uint8_t ukey[32];
    uint16_t want;
    sess__sha256_labeled("sessiond user v1", "quinn", 5, ukey);
    routed_route(NULL, ukey, &want, NULL);
    assert_int_equal(SESS_ROUTE_OF(raw), want);    /* the ID carries the route */
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    clk.now += 301;                                /* rotation keeps the route */
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_true(v.rotated);
    assert_int_equal(sess__b64url_decode(v.successor.id, SESS_ID_LEN, raw, 32), SESS_OK);
    assert_int_equal(SESS_ROUTE_OF(raw), want);
    assert_int_equal(sess_regenerate(ctx, v.successor.id, SESS_ID_LEN, &alice_client, 1,
                                     &r, &why, NULL), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(sess__b64url_decode(r.id, SESS_ID_LEN, raw, 32), SESS_OK);
    assert_int_equal(SESS_ROUTE_OF(raw), want);
    assert_int_equal(validate(ctx, r.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(sess_revoke_handle(ctx, r.handle, SESS_HANDLE_LEN, NULL), SESS_OK);
    sess_ctx_free(ctx);
}

/* A store that starts to route (an LMDB store migrated to a Redis
 * Cluster, docs/migration.md "Routing") still finds the sessions issued
 * before, by the plain SHA-256 of their ID; their next rotation moves them
 * to a key with the user's route; destroy reaches them. */
static void test_legacy_keys_on_routed_store(void **state)
{
    (void)state;
    sess_store *st;
    test_clock clk = {1800000000u};
    sess_ctx *ctx = routed_ctx(&clk, &st);
    sess_issued s, t;
    sess_view v;

    st->methods = &plain_methods;       /* the store before it routed */
    create_user(ctx, "rowan", &s);
    create_user(ctx, "rowan", &t);
    st->methods = &routed_methods;      /* ... and after */

    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    clk.now += 301;                     /* rotation: onto the user's route */
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    assert_true(v.rotated);
    uint8_t raw[32], ukey[32];
    uint16_t want;
    sess__sha256_labeled("sessiond user v1", "rowan", 5, ukey);
    routed_route(NULL, ukey, &want, NULL);
    assert_int_equal(sess__b64url_decode(v.successor.id, SESS_ID_LEN, raw, 32), SESS_OK);
    assert_int_equal(SESS_ROUTE_OF(raw), want);
    char succ[SESS_ID_LEN + 1];
    memcpy(succ, v.successor.id, sizeof succ);
    sess_view_clear(&v);
    assert_int_equal(validate(ctx, succ, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    /* The old ID in its grace still finds the successor (tombstone under
     * the plain key). */
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    /* Destroy by the legacy ID reaches the session. */
    assert_int_equal(sess_destroy(ctx, t.id, SESS_ID_LEN, NULL), SESS_OK);
    assert_int_not_equal(validate(ctx, t.id, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(sess_destroy(ctx, succ, SESS_ID_LEN, NULL), SESS_OK);
    assert_int_not_equal(validate(ctx, succ, &alice_client, &v), SESS_OK);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

/* Expired sessions leave the store: at once for every index and count,
 * and physically once the purge runs past their retention. */
static void test_purge_expired(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.rotate_interval = 0;   /* no rotation tombstones to purge as well */
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_issued s, t;
    sess_stats st;
    size_t removed = 99;
    sess_view v;

    create_user(ctx, "rita", &s);
    create_user(ctx, "rita", &t);
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.stored_records, 2);
    clk.now += 1000;
    assert_int_equal(validate(ctx, t.id, &alice_client, &v), SESS_OK);   /* touched */
    sess_view_clear(&v);
    clk.now += 1000;                      /* s idle-expired, t still alive */
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.stored_records, 1);
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_EXPIRED_IDLE);   /* still told why */
    assert_int_equal(sess_purge_expired(ctx, 100, &removed, NULL), SESS_OK);
    assert_int_equal(removed, 0);         /* kept a while to say "expired" */
    clk.now += 3600;
    assert_int_equal(sess_purge_expired(ctx, 100, &removed, NULL), SESS_OK);
    assert_int_equal(removed, 2);         /* both gone now */
    assert_int_equal(validate(ctx, s.id, &alice_client, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_UNKNOWN);
    sess_ctx_free(ctx);
}

static void test_config_check(void **state)
{
    (void)state;
    sess_config c;
    sess_err err;
    sess_config_defaults(&c);
    assert_int_equal(sess_config_check(&c, &err), SESS_OK);
    c.absolute_timeout = c.idle_timeout - 1;
    assert_int_equal(sess_config_check(&c, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "absolute_timeout"));
    sess_config_defaults(&c);
    c.ip_prefix_v4 = 33;
    assert_int_equal(sess_config_check(&c, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "ip_prefix_v4"));
    sess_config_defaults(&c);
    c.rotation_grace = 300;
    assert_int_equal(sess_config_check(&c, &err), SESS_ECONFIG);
}

int main(void)
{
    sess_store *probe;
    sess_store_options opt = {0};
    if (sess_store_open("memory:", &opt, &probe, NULL) != SESS_OK)
        return 1;
    routed_methods = *probe->methods;
    plain_methods = *probe->methods;
    sess_store_close(probe);
    memory_insert = routed_methods.insert;
    routed_methods.version = 2;
    routed_methods.scheme = "routed";
    routed_methods.open = routed_open;
    routed_methods.insert = routed_insert;
    routed_methods.route = routed_route;
    if (sess_store_register(&routed_methods) != SESS_OK)
        return 1;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_validate),
        cmocka_unit_test(test_unknown_and_malformed),
        cmocka_unit_test(test_lifecycle_events),
        cmocka_unit_test(test_idle_and_absolute_timeouts),
        cmocka_unit_test(test_touch_is_coalesced),
        cmocka_unit_test(test_remember_me),
        cmocka_unit_test(test_rotation_with_grace),
        cmocka_unit_test(test_reuse_after_grace_revokes_successor),
        cmocka_unit_test(test_reuse_action_checked),
        cmocka_unit_test(test_issued_cookie_max_age),
        cmocka_unit_test(test_rotation_burst_one_successor),
        cmocka_unit_test(test_regenerate_kills_old_at_once),
        cmocka_unit_test(test_data_versions),
        cmocka_unit_test(test_destroy),
        cmocka_unit_test(test_csrf),
        cmocka_unit_test(test_binding),
        cmocka_unit_test(test_limit_evict_oldest_and_deny),
        cmocka_unit_test(test_limit_under_simultaneous_logins),
        cmocka_unit_test(test_list_and_revoke),
        cmocka_unit_test(test_bad_create_input),
        cmocka_unit_test(test_key_reload),
        cmocka_unit_test(test_key_reload_unlimited_while_busy),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_routed_store),
        cmocka_unit_test(test_legacy_keys_on_routed_store),
        cmocka_unit_test(test_purge_expired),
    };
    return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
