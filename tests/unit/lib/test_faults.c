/*
 * test_faults.c - the failure paths of lib/session.c under test: create,
 * rotation (a validate past rotate_interval), regenerate and destroy run
 * with a failure injected at every call index 1..N in turn, until the
 * operation runs to the end without reaching the armed index.  Failures
 * come from the fault store (lib/store_fault.c, "fault:memory:" and
 * "fault:lmdb:DIR"), before the store call (nothing written) or after it
 * (written, but the reply "lost"), and from the allocator hook (util.h,
 * sess__alloc_fail_nth).  Each run checks a clean result (an error code
 * with err set, or success), no crash and no leak (ASan, valgrind), and
 * that a failed operation left the stored state as it was: the old ID
 * still valid after a failed rotate or regenerate, no extra session after
 * a failed create, the per-user index matching the store's count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "testutil.h"
#include "util.h"

#define MAX_CALLS 400 /* far above the store calls or allocations of one op */

static const sess_client cl = {"203.0.113.7", "ua/1"};
static test_clock g_clk;

typedef enum { INJECT_STORE_BEFORE, INJECT_STORE_AFTER, INJECT_ALLOC } inject_kind;

typedef struct fx {
    sess_ctx *ctx;
    char dir[256];
    uint64_t expect_total; /* indexed sessions the store should hold */
} fx;

static void fx_open(fx *f, const char *scheme)
{
    char url[512];
    sess_store *st;
    sess_keyring *kr;
    sess_err err;
    static const uint8_t key[1][SESS_KEY_BYTES] = {{7}};
    const char *kid[] = {"k1"};
    sess_config cfg;

    memset(f, 0, sizeof *f);
    if (strcmp(scheme, "lmdb") == 0) {
        test_tmpdir(f->dir, sizeof f->dir);
        snprintf(url, sizeof url, "fault:lmdb:%s", f->dir);
    } else {
        snprintf(url, sizeof url, "fault:memory:");
    }
    assert_int_equal(sess_store_open(url, NULL, &st, &err), SESS_OK);
    assert_int_equal(sess_keyring_from_keys(kid, key, 1, &kr, &err), SESS_OK);
    sess_config_defaults(&cfg);
    cfg.max_per_user = 1; /* a create evicts: more store calls to fail */
    cfg.record_cache_entries = 64;
    /* Each rotation run moves the clock past rotate_interval: keep the
     * sessions of earlier runs alive, so the count check stays exact. */
    cfg.idle_timeout = 30u * 86400;
    cfg.absolute_timeout = 365u * 86400;
    assert_int_equal(sess_ctx_new(&cfg, st, kr, &f->ctx, &err), SESS_OK);
    g_clk.now = 1800000000;
    sess_ctx_set_clock(f->ctx, test_clock_read, &g_clk);
}

static void fx_close(fx *f)
{
    sess_ctx_free(f->ctx);
    if (f->dir[0])
        test_rmdir(f->dir);
}

static void arm(inject_kind kind, uint64_t k)
{
    if (kind == INJECT_ALLOC)
        sess__alloc_fail_nth(k, false);
    else
        sess__fault_arm(SESS__FOP_ANY, k, SESS_EIO,
                        kind == INJECT_STORE_BEFORE ? SESS__FAULT_BEFORE
                                                    : SESS__FAULT_AFTER);
}

/* Disarm; how many failures were injected. */
static uint64_t disarm(inject_kind kind)
{
    uint64_t hits = kind == INJECT_ALLOC ? sess__alloc_failed() : sess__fault_hits();
    sess__alloc_fail_nth(0, false);
    sess__fault_reset();
    return hits;
}

static size_t user_sessions(fx *f, const char *user)
{
    sess_summary *list = NULL;
    size_t n = 99;
    sess_err err;
    int rc = sess_list_user(f->ctx, user, strlen(user), &list, &n, &err);
    if (rc != SESS_OK)
        fail_msg("list_user: %s", err.msg);
    free(list);
    return n;
}

static uint64_t stored(fx *f)
{
    sess_stats s;
    sess_err err;
    assert_int_equal(sess_get_stats(f->ctx, &s, &err), SESS_OK);
    return s.stored_records;
}

static int check_valid(fx *f, const char *id)
{
    sess_view v;
    sess_err err;
    int rc = sess_validate(f->ctx, id, strlen(id), &cl,
                           SESS_VALIDATE_NO_ROTATE | SESS_VALIDATE_NO_TOUCH, &v, &err);
    sess_view_clear(&v);
    return rc;
}

/* A failed call must say so: a negative code (an injected EIO or ENOMEM,
 * or what the core made of it), err set, never a positive outcome that a
 * caller would read as "rejected" or "not found" for a live session. */
static void assert_clean_error(int rc, const sess_err *err, inject_kind kind)
{
    if (rc >= 0)
        fail_msg("kind %d: failure surfaced as %s", kind, sess_result_name(rc));
    assert_int_equal(err->code, rc);
    assert_true(err->msg[0] != '\0');
}

static void login(fx *f, const char *user, sess_issued *s)
{
    sess_create_req req = {.user_id = user, .user_id_len = strlen(user),
                           .client = cl, .data = "{}", .data_len = 2};
    sess_err err;
    assert_int_equal(sess_create(f->ctx, &req, s, NULL, &err), SESS_OK);
}

/* ---- the operations ---------------------------------------------------- */

/* Run "op" with a failure at call k = 1, 2, ... until a run reaches no
 * armed index; each op function does its own set-up (unarmed), the armed
 * call, and its checks.  Returns the number of runs with a failure. */
typedef bool (*op_fn)(fx *f, inject_kind kind, uint64_t k);

static void drive(const char *scheme, inject_kind kind, op_fn op)
{
    fx f;
    fx_open(&f, scheme);
    uint64_t k;
    for (k = 1; k <= MAX_CALLS; k++) {
        bool more = op(&f, kind, k);
        if (stored(&f) != f.expect_total)
            fail_msg("after a failure at call %llu: the store counts %llu "
                     "sessions, the test made %llu", (unsigned long long)k,
                     (unsigned long long)stored(&f),
                     (unsigned long long)f.expect_total);
        if (!more)
            break;
    }
    if (k > MAX_CALLS)
        fail_msg("operation still failing after %d injected calls", MAX_CALLS);
    /* The hook reached the operation: at least its first store call
     * failed (a destroy may allocate nothing). */
    if (kind != INJECT_ALLOC)
        assert_true(k > 1);
    printf("# %s, injection %d: failed at each of %llu calls\n", scheme, kind,
           (unsigned long long)(k - 1));
    /* Index and store agree after every run. */
    assert_int_equal(stored(&f), f.expect_total);
    fx_close(&f);
}

static bool op_create(fx *f, inject_kind kind, uint64_t k)
{
    char user[32];
    sess_issued old, s;
    sess_err err;
    snprintf(user, sizeof user, "create-%llu", (unsigned long long)k);
    login(f, user, &old);
    f->expect_total++;

    sess_create_req req = {.user_id = user, .user_id_len = strlen(user),
                           .client = cl, .data = "{}", .data_len = 2};
    arm(kind, k);
    int rc = sess_create(f->ctx, &req, &s, NULL, &err);
    uint64_t hits = disarm(kind);

    if (rc == SESS_OK) {
        /* Evicted the old one (max_per_user = 1), the new one lives. */
        assert_int_equal(check_valid(f, s.id), SESS_OK);
        assert_int_equal(check_valid(f, old.id), SESS_REJECTED);
        assert_int_equal(user_sessions(f, user), 1);
    } else {
        assert_clean_error(rc, &err, kind);
        if (kind == INJECT_STORE_AFTER) {
            /* The insert may have landed: then it evicted the old one. */
            assert_int_equal(user_sessions(f, user), 1);
        } else {
            /* Nothing changed: the old session is the only one. */
            assert_int_equal(check_valid(f, old.id), SESS_OK);
            assert_int_equal(user_sessions(f, user), 1);
        }
    }
    sess_wipe(&s, sizeof s);
    sess_wipe(&old, sizeof old);
    return hits > 0;
}

static bool op_rotate(fx *f, inject_kind kind, uint64_t k)
{
    char user[32];
    sess_issued s;
    sess_view v;
    sess_err err;
    snprintf(user, sizeof user, "rotate-%llu", (unsigned long long)k);
    login(f, user, &s);
    f->expect_total++;
    g_clk.now += sess_ctx_config(f->ctx)->rotate_interval + 1;

    arm(kind, k);
    int rc = sess_validate(f->ctx, s.id, strlen(s.id), &cl, 0, &v, &err);
    uint64_t hits = disarm(kind);

    if (rc == SESS_OK && v.rotated) {
        assert_int_equal(check_valid(f, v.successor.id), SESS_OK);
        assert_int_equal(check_valid(f, s.id), SESS_OK); /* grace window */
    } else if (rc == SESS_OK) {
        /* Validated without rotating (never with a store failure). */
        assert_int_equal(check_valid(f, s.id), SESS_OK);
    } else {
        assert_clean_error(rc, &err, kind);
        /* A failed rotation leaves the old ID valid (AFTER: the rotation
         * may have landed; the old ID is then in its grace window). */
        assert_int_equal(check_valid(f, s.id), SESS_OK);
    }
    assert_int_equal(user_sessions(f, user), 1);
    sess_view_clear(&v);
    sess_wipe(&s, sizeof s);
    return hits > 0;
}

static bool op_regenerate(fx *f, inject_kind kind, uint64_t k)
{
    char user[32];
    sess_issued s, n;
    sess_reason why;
    sess_err err;
    snprintf(user, sizeof user, "regen-%llu", (unsigned long long)k);
    login(f, user, &s);
    f->expect_total++;

    arm(kind, k);
    int rc = sess_regenerate(f->ctx, s.id, strlen(s.id), &cl, 1, &n, &why, &err);
    uint64_t hits = disarm(kind);

    if (rc == SESS_OK) {
        assert_int_equal(check_valid(f, n.id), SESS_OK);
        assert_int_equal(check_valid(f, s.id), SESS_REJECTED); /* no grace */
    } else {
        assert_clean_error(rc, &err, kind);
        if (kind != INJECT_STORE_AFTER)
            assert_int_equal(check_valid(f, s.id), SESS_OK);
    }
    assert_int_equal(user_sessions(f, user), 1);
    sess_wipe(&s, sizeof s);
    sess_wipe(&n, sizeof n);
    return hits > 0;
}

static bool op_destroy(fx *f, inject_kind kind, uint64_t k)
{
    char user[32];
    sess_issued s;
    sess_err err;
    snprintf(user, sizeof user, "destroy-%llu", (unsigned long long)k);
    login(f, user, &s);

    arm(kind, k);
    int rc = sess_destroy(f->ctx, s.id, strlen(s.id), &err);
    uint64_t hits = disarm(kind);

    if (rc == SESS_OK) {
        assert_int_equal(check_valid(f, s.id), SESS_REJECTED);
        assert_int_equal(user_sessions(f, user), 0);
    } else {
        assert_clean_error(rc, &err, kind);
        if (kind != INJECT_STORE_AFTER) {
            assert_int_equal(check_valid(f, s.id), SESS_OK);
            assert_int_equal(user_sessions(f, user), 1);
        }
        /* Clean up for the count check (a retried logout). */
        int rc2 = sess_destroy(f->ctx, s.id, strlen(s.id), &err);
        assert_true(rc2 == SESS_OK || rc2 == SESS_NOTFOUND);
    }
    assert_int_equal(user_sessions(f, user), 0);
    sess_wipe(&s, sizeof s);
    return hits > 0;
}

#define CASE(name, scheme, kind, op)                                       \
    static void name(void **state)                                         \
    {                                                                      \
        (void)state;                                                       \
        drive(scheme, kind, op);                                           \
    }

CASE(memory_create_store, "memory", INJECT_STORE_BEFORE, op_create)
CASE(memory_rotate_store, "memory", INJECT_STORE_BEFORE, op_rotate)
CASE(memory_regenerate_store, "memory", INJECT_STORE_BEFORE, op_regenerate)
CASE(memory_destroy_store, "memory", INJECT_STORE_BEFORE, op_destroy)
CASE(memory_create_lost_reply, "memory", INJECT_STORE_AFTER, op_create)
CASE(memory_rotate_lost_reply, "memory", INJECT_STORE_AFTER, op_rotate)
CASE(memory_regenerate_lost_reply, "memory", INJECT_STORE_AFTER, op_regenerate)
CASE(memory_destroy_lost_reply, "memory", INJECT_STORE_AFTER, op_destroy)
CASE(memory_create_oom, "memory", INJECT_ALLOC, op_create)
CASE(memory_rotate_oom, "memory", INJECT_ALLOC, op_rotate)
CASE(memory_regenerate_oom, "memory", INJECT_ALLOC, op_regenerate)
CASE(memory_destroy_oom, "memory", INJECT_ALLOC, op_destroy)
CASE(lmdb_create_store, "lmdb", INJECT_STORE_BEFORE, op_create)
CASE(lmdb_rotate_store, "lmdb", INJECT_STORE_BEFORE, op_rotate)
CASE(lmdb_regenerate_store, "lmdb", INJECT_STORE_BEFORE, op_regenerate)
CASE(lmdb_destroy_store, "lmdb", INJECT_STORE_BEFORE, op_destroy)
CASE(lmdb_create_oom, "lmdb", INJECT_ALLOC, op_create)
CASE(lmdb_rotate_oom, "lmdb", INJECT_ALLOC, op_rotate)
CASE(lmdb_regenerate_oom, "lmdb", INJECT_ALLOC, op_regenerate)
CASE(lmdb_destroy_oom, "lmdb", INJECT_ALLOC, op_destroy)

/* The hooks themselves: a fault is reported as armed, counted per op. */
static void test_fault_store_counts(void **state)
{
    (void)state;
    sess_store *st;
    sess_err err;
    uint64_t n;
    assert_int_equal(sess_store_open("fault:memory:", NULL, &st, &err), SESS_OK);
    sess__fault_arm(SESS__FOP_COUNT, 2, SESS_EUNAVAILABLE, SESS__FAULT_BEFORE);
    assert_int_equal(st->methods->count(st, 0, &n, &err), SESS_OK);
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    assert_int_equal(st->methods->count(st, 0, &n, &err), SESS_EUNAVAILABLE);
    assert_int_equal(err.code, SESS_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "count"));
    assert_int_equal(sess__fault_calls(SESS__FOP_COUNT), 2);
    assert_int_equal(sess__fault_calls(SESS__FOP_N), 3);
    assert_int_equal(sess__fault_hits(), 1);
    sess__fault_reset();
    assert_int_equal(st->methods->count(st, 0, &n, &err), SESS_OK);
    sess_store_close(st);
    assert_int_equal(sess_store_open("fault:", NULL, &st, &err), SESS_EINVAL);
    assert_int_equal(sess_store_open("fault:nosuch:", NULL, &st, &err), SESS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_store_counts),
        cmocka_unit_test(memory_create_store),
        cmocka_unit_test(memory_rotate_store),
        cmocka_unit_test(memory_regenerate_store),
        cmocka_unit_test(memory_destroy_store),
        cmocka_unit_test(memory_create_lost_reply),
        cmocka_unit_test(memory_rotate_lost_reply),
        cmocka_unit_test(memory_regenerate_lost_reply),
        cmocka_unit_test(memory_destroy_lost_reply),
        cmocka_unit_test(memory_create_oom),
        cmocka_unit_test(memory_rotate_oom),
        cmocka_unit_test(memory_regenerate_oom),
        cmocka_unit_test(memory_destroy_oom),
        cmocka_unit_test(lmdb_create_store),
        cmocka_unit_test(lmdb_rotate_store),
        cmocka_unit_test(lmdb_regenerate_store),
        cmocka_unit_test(lmdb_destroy_store),
        cmocka_unit_test(lmdb_create_oom),
        cmocka_unit_test(lmdb_rotate_oom),
        cmocka_unit_test(lmdb_regenerate_oom),
        cmocka_unit_test(lmdb_destroy_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
