/*
 * test_abi.c - the ABI promise of lib/abi.c: callers built against an
 * older, shorter struct (simulated by a struct prefix: the *_sized entry
 * points given a smaller size) or a newer, longer one (a struct with
 * members after ours) keep working; the library reads and writes only the
 * caller's bytes.  And the error-detail promise of sess/error.h: every
 * result other than SESS_OK leaves err.code equal to it and err.msg
 * non-empty, SESS_REJECTED naming the reason.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const sess_client cl = {"203.0.113.7", "ua/1"};

/* A newer caller's struct: ours followed by members we do not know. */
#define NEWER(type) struct { type base; uint64_t extra[4]; }

static bool all_bytes(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return false;
    return true;
}

static void make(sess_ctx *ctx, sess_issued *s)
{
    sess_create_req req = {.user_id = "alice", .user_id_len = 5,
                           .client = cl, .data = "d", .data_len = 1};
    sess_err err;
    assert_int_equal(sess_create(ctx, &req, s, NULL, &err), SESS_OK);
}

static void test_config_older_and_newer(void **state)
{
    (void)state;
    sess_config full, dflt;
    sess_config_defaults(&dflt);

    /* An older caller knew no record cache: its struct ends before it. */
    size_t old = offsetof(sess_config, record_cache_entries);
    memset(&full, 0xAA, sizeof full);
    sess_config_defaults_sized(&full, old);
    assert_memory_equal(&full, &dflt, old);
    assert_true(all_bytes((char *)&full + old, sizeof full - old, 0xAA));

    sess_config older;
    memcpy(&older, &dflt, sizeof older);
    older.rotate_interval = 0;
    older.record_cache_entries = 0xdeadbeef; /* beyond the old size: unread */
    sess_err err;
    assert_int_equal(sess_config_check_sized(&older, old, &err), SESS_OK);

    sess_store *st;
    sess_keyring *kr;
    static const uint8_t key[1][SESS_KEY_BYTES] = {{1}};
    const char *kid[] = {"k1"};
    assert_int_equal(sess_store_open("memory:", NULL, &st, &err), SESS_OK);
    assert_int_equal(sess_keyring_from_keys(kid, key, 1, &kr, &err), SESS_OK);
    sess_ctx *ctx;
    assert_int_equal(sess_ctx_new_sized(&older, old, st, kr, &ctx, &err), SESS_OK);
    assert_int_equal(sess_ctx_config(ctx)->rotate_interval, 0);
    assert_int_equal(sess_ctx_config(ctx)->record_cache_entries,
                     dflt.record_cache_entries);
    sess_ctx_free(ctx);

    /* A newer caller: members we do not know are zeroed on output. */
    NEWER(sess_config) newer;
    memset(&newer, 0xAA, sizeof newer);
    sess_config_defaults_sized(&newer.base, sizeof newer);
    assert_memory_equal(&newer.base, &dflt, sizeof dflt);
    assert_true(all_bytes(newer.extra, sizeof newer.extra, 0));
}

static void test_store_options_older(void **state)
{
    (void)state;
    sess_store_options opt;
    memset(&opt, 0xAA, sizeof opt); /* beyond the old size: garbage, unread */
    opt.durability = SESS_DURABILITY_PROCESS;
    char dir[256], url[300];
    test_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "lmdb:%s", dir);
    sess_store *st;
    sess_err err;
    /* Only "durability" existed: map_size and the rest take defaults. */
    assert_int_equal(sess_store_open_sized(url, &opt, sizeof opt.durability,
                                           &st, &err), SESS_OK);
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    sess_store_close(st);
    test_rmdir(dir);
}

static void test_issued_and_view(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_create_req req = {.user_id = "alice", .user_id_len = 5,
                           .client = cl, .data = "hello", .data_len = 5};
    sess_err err;

    /* Older sess_issued: id, handle and token only. */
    size_t old_issued = offsetof(sess_issued, expires_at);
    sess_issued s;
    memset(&s, 0xAA, sizeof s);
    assert_int_equal(sess_create_sized(ctx, &req, sizeof req, &s, old_issued,
                                       NULL, &err), SESS_OK);
    assert_int_equal(strlen(s.id), SESS_ID_LEN);
    assert_true(all_bytes((char *)&s + old_issued, sizeof s - old_issued, 0xAA));

    /* Older sess_create_req: no "elevated" member (defaults to false). */
    sess_issued s2;
    assert_int_equal(sess_create_sized(ctx, &req, offsetof(sess_create_req, elevated),
                                       &s2, sizeof s2, NULL, &err), SESS_OK);

    /* Newer sess_issued: extras zeroed. */
    NEWER(sess_issued) ns;
    memset(&ns, 0xAA, sizeof ns);
    assert_int_equal(sess_create_sized(ctx, &req, sizeof req, &ns.base, sizeof ns,
                                       NULL, &err), SESS_OK);
    assert_true(all_bytes(ns.extra, sizeof ns.extra, 0));
    assert_int_equal(ns.base.expires_at, clk.now + 86400);

    /* Older sess_view that still has "data": filled, freed by clear. */
    size_t old_view = offsetof(sess_view, rotated);
    sess_view v;
    memset(&v, 0xAA, sizeof v);
    assert_int_equal(sess_validate_sized(ctx, s.id, SESS_ID_LEN, &cl,
                                         SESS_VALIDATE_WANT_DATA, &v, old_view,
                                         &err), SESS_OK);
    assert_string_equal(v.data, "hello");
    assert_string_equal(v.user_id, "alice");
    assert_true(all_bytes((char *)&v + old_view, sizeof v - old_view, 0xAA));
    sess_view_clear_sized(&v, old_view);

    /* Too short to hold the data pointer but asking for data: refused. */
    size_t tiny = offsetof(sess_view, data);
    assert_int_equal(sess_validate_sized(ctx, s.id, SESS_ID_LEN, &cl,
                                         SESS_VALIDATE_WANT_DATA, &v, tiny, &err),
                     SESS_EINVAL);
    assert_int_equal(err.code, SESS_EINVAL);
    assert_true(err.msg[0] != '\0');
    /* ... and fine without data. */
    assert_int_equal(sess_validate_sized(ctx, s.id, SESS_ID_LEN, &cl, 0, &v,
                                         tiny, &err), SESS_OK);
    sess_view_clear_sized(&v, tiny);

    /* Newer sess_view: extras zeroed, data freed by the sized clear. */
    NEWER(sess_view) nv;
    memset(&nv, 0xAA, sizeof nv);
    assert_int_equal(sess_validate_sized(ctx, s.id, SESS_ID_LEN, &cl,
                                         SESS_VALIDATE_WANT_DATA, &nv.base,
                                         sizeof nv, &err), SESS_OK);
    assert_true(all_bytes(nv.extra, sizeof nv.extra, 0));
    assert_string_equal(nv.base.data, "hello");
    sess_view_clear_sized(&nv.base, sizeof nv);

    /* Older sess_issued from regenerate. */
    sess_issued r;
    sess_reason why;
    memset(&r, 0xAA, sizeof r);
    assert_int_equal(sess_regenerate_sized(ctx, s.id, SESS_ID_LEN, &cl, -1, &r,
                                           old_issued, &why, &err), SESS_OK);
    assert_int_equal(strlen(r.id), SESS_ID_LEN);
    assert_true(all_bytes((char *)&r + old_issued, sizeof r - old_issued, 0xAA));
    sess_wipe(&r, sizeof r);
    sess_wipe(&s, sizeof s);
    sess_wipe(&s2, sizeof s2);
    sess_wipe(&ns, sizeof ns);
    sess_ctx_free(ctx);
}

static void test_stats_older_and_newer(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    sess_err err;
    make(ctx, &s);

    /* An older sess_stats ended before the record-cache counters. */
    size_t old = offsetof(sess_stats, record_cache_hits);
    sess_stats st;
    memset(&st, 0xAA, sizeof st);
    assert_int_equal(sess_get_stats_sized(ctx, &st, old, &err), SESS_OK);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.stored_records, 1);
    assert_true(all_bytes((char *)&st + old, sizeof st - old, 0xAA));

    NEWER(sess_stats) ns;
    memset(&ns, 0xAA, sizeof ns);
    assert_int_equal(sess_get_stats_sized(ctx, &ns.base, sizeof ns, &err), SESS_OK);
    assert_int_equal(ns.base.created, 1);
    assert_true(all_bytes(ns.extra, sizeof ns.extra, 0));

    /* The memory store keeps no store counters; nothing is written. */
    NEWER(sess_store_stats) nss;
    memset(&nss, 0xAA, sizeof nss);
    assert_int_equal(sess_get_store_stats_sized(ctx, &nss.base, sizeof nss),
                     SESS_NOTFOUND);
    sess_wipe(&s, sizeof s);
    sess_ctx_free(ctx);
}

/* Every result but SESS_OK sets err.code to it and a non-empty message. */
#define ASSERT_ERR(call, want)                                              \
    do {                                                                    \
        sess_err e_;                                                        \
        memset(&e_, 0x55, sizeof e_);                                       \
        e_.msg[0] = '\0';                                                   \
        sess_err *err = &e_;                                                \
        int rc_ = (call);                                                   \
        assert_int_equal(rc_, (want));                                      \
        assert_int_equal(e_.code, rc_);                                     \
        assert_true(e_.msg[0] != '\0' &&                                    \
                    memchr(e_.msg, '\0', sizeof e_.msg) != NULL);           \
        last_msg(e_.msg);                                                   \
    } while (0)

static char g_last[SESS_ERRSTR_MAX];
static void last_msg(const char *m)
{
    snprintf(g_last, sizeof g_last, "%s", m);
}

static void test_error_detail_everywhere(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.max_per_user = 1;
    cfg.limit_policy = SESS_LIMIT_DENY;
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_issued s;
    make(ctx, &s);
    const char *unknown = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    sess_view v;
    sess_reason why;
    uint64_t ver;
    size_t n;
    sess_summary *list = NULL;
    sess_issued t;
    sess_create_req req = {.user_id = "alice", .user_id_len = 5, .client = cl};

    /* The normal outcomes, positive codes: the trap "rc < 0" would miss. */
    ASSERT_ERR(sess_validate(ctx, unknown, SESS_ID_LEN, &cl, 0, &v, err),
               SESS_REJECTED);
    assert_non_null(strstr(g_last, "unknown"));
    ASSERT_ERR(sess_validate(ctx, "short", 5, &cl, 0, &v, err), SESS_REJECTED);
    sess_client other = {"198.51.100.1", "ua/1"};
    ASSERT_ERR(sess_validate(ctx, s.id, SESS_ID_LEN, &other, 0, &v, err),
               SESS_REJECTED);
    assert_non_null(strstr(g_last, "binding_mismatch"));
    ASSERT_ERR(sess_regenerate(ctx, unknown, SESS_ID_LEN, &cl, -1, &t, &why, err),
               SESS_REJECTED);
    assert_non_null(strstr(g_last, "unknown"));
    ASSERT_ERR(sess_create(ctx, &req, &t, NULL, err), SESS_LIMIT);
    ASSERT_ERR(sess_set_data(ctx, unknown, SESS_ID_LEN, "x", 1, -1, &ver, &why, err),
               SESS_REJECTED);
    ASSERT_ERR(sess_set_data(ctx, s.id, SESS_ID_LEN, "x", 1, 99, &ver, &why, err),
               SESS_CONFLICT);
    ASSERT_ERR(sess_csrf_verify(ctx, s.id, SESS_ID_LEN, "bad", 3, &why, err),
               SESS_CSRF);
    ASSERT_ERR(sess_csrf_verify(ctx, unknown, SESS_ID_LEN, "bad", 3, &why, err),
               SESS_REJECTED);
    ASSERT_ERR(sess_destroy(ctx, unknown, SESS_ID_LEN, err), SESS_NOTFOUND);
    ASSERT_ERR(sess_revoke_handle(ctx, "AAAAAAAAAAAAAAAAAAAAAA", 22, err),
               SESS_NOTFOUND);
    ASSERT_ERR(sess_revoke_handle(ctx, "x", 1, err), SESS_NOTFOUND);

    /* Errors. */
    ASSERT_ERR(sess_list_user(ctx, "", 0, &list, &n, err), SESS_EINVAL);
    req.user_id_len = 0;
    ASSERT_ERR(sess_create(ctx, &req, &t, NULL, err), SESS_EINVAL);
    cfg.idle_timeout = 0;
    ASSERT_ERR(sess_config_check(&cfg, err), SESS_ECONFIG);
    sess_store *st;
    ASSERT_ERR(sess_store_open("nosuch:", NULL, &st, err), SESS_EINVAL);
    ASSERT_ERR(sess_store_open("lmdb:/proc/no/such/dir", NULL, &st, err),
               sess_store_open("lmdb:/proc/no/such/dir", NULL, &st, NULL));
    sess_keyring *kr;
    ASSERT_ERR(sess_keyring_load_dir("/nonexistent-dir-sess", false, &kr, err),
               sess_keyring_load_dir("/nonexistent-dir-sess", false, &kr, NULL));
    sess_wipe(&s, sizeof s);
    sess_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_older_and_newer),
        cmocka_unit_test(test_store_options_older),
        cmocka_unit_test(test_issued_and_view),
        cmocka_unit_test(test_stats_older_and_newer),
        cmocka_unit_test(test_error_detail_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
