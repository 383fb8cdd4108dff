/*
 * test_store_migrate.c - the migration store's mode-specific behaviour
 * (lib/store_migrate.c) beyond the conformance suite: a TO that fails in
 * shadow stays invisible and is counted; dual counts mismatches by kind
 * and deletes what FROM does not back; route:N is stable and a rollback
 * keeps sessions made at a higher N; read-through copies; destroy and
 * revoke-user reach both stores in every mode; a failing TO in dual fails
 * the write and leaves FROM as it was; mode text is parsed strictly.
 * The failing store is a tiny backend registered here ("failing:") that
 * answers SESS_EUNAVAILABLE to everything, like a server that is down.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sess/store.h"
#include "sess/store_migrate.h"

#define NOW 1000000u
#define LATER (NOW + 3600u)

/* ---- a store that is down ------------------------------------------------ */

static int down(sess_err *err)
{
    if (err) {
        err->code = SESS_EUNAVAILABLE;
        snprintf(err->msg, sizeof err->msg, "failing store: down");
    }
    return SESS_EUNAVAILABLE;
}
static int f_open(const char *u, const sess_store_options *o, sess_store **out, sess_err *e)
{
    (void)u; (void)o; (void)e;
    static const sess_store_methods *self;
    extern const sess_store_methods failing_methods;
    self = &failing_methods;
    sess_store *st = calloc(1, sizeof *st);
    if (!st)
        return SESS_ENOMEM;
    st->methods = self;
    *out = st;
    return SESS_OK;
}
static void f_close(sess_store *st) { free(st); }
static int f_get(sess_store *s, const uint8_t *k, uint64_t n, sess_entry *e, sess_store_buf *b, sess_err *err)
{ (void)s; (void)k; (void)n; (void)e; (void)b; return down(err); }
static int f_insert(sess_store *s, const sess_entry *e, const sess_store_limit *l, uint64_t n, sess_store_evicted *ev, sess_err *err)
{ (void)s; (void)e; (void)l; (void)n; if (ev) ev->n = 0; return down(err); }
static int f_update(sess_store *s, const sess_entry *e, const uint8_t *x, size_t xl, uint64_t n, sess_err *err)
{ (void)s; (void)e; (void)x; (void)xl; (void)n; return down(err); }
static int f_replace(sess_store *s, const uint8_t *k, const uint8_t *x, size_t xl, const sess_entry *t, const sess_entry *nx, uint64_t n, sess_err *err)
{ (void)s; (void)k; (void)x; (void)xl; (void)t; (void)nx; (void)n; return down(err); }
static int f_remove(sess_store *s, const uint8_t *k, uint8_t *h, sess_err *err)
{ (void)s; (void)k; (void)h; return down(err); }
static int f_find(sess_store *s, const uint8_t *h, uint64_t n, uint8_t *k, sess_err *err)
{ (void)s; (void)h; (void)n; (void)k; return down(err); }
static int f_list(sess_store *s, const uint8_t *u, uint64_t n, sess_store_list_fn fn, void *c, sess_err *err)
{ (void)s; (void)u; (void)n; (void)fn; (void)c; return down(err); }
static int f_remove_user(sess_store *s, const uint8_t *u, const uint8_t *x, uint64_t n, size_t *c, sess_err *err)
{ (void)s; (void)u; (void)x; (void)n; (void)c; return down(err); }
static int f_purge(sess_store *s, uint64_t n, size_t m, size_t *r, sess_err *err)
{ (void)s; (void)n; (void)m; (void)r; return down(err); }
static int f_ping(sess_store *s, sess_err *err) { (void)s; return down(err); }
static int f_count(sess_store *s, uint64_t n, uint64_t *c, sess_err *err)
{ (void)s; (void)n; (void)c; return down(err); }

const sess_store_methods failing_methods = {
    .version = 1, .scheme = "failing", .open = f_open, .close = f_close,
    .get = f_get, .insert = f_insert, .update = f_update, .replace = f_replace,
    .remove = f_remove, .find_handle = f_find, .list_user = f_list,
    .remove_user = f_remove_user, .purge = f_purge, .ping = f_ping, .count = f_count,
};

/* ---- helpers --------------------------------------------------------------- */

typedef struct tentry {
    sess_entry e;
    uint8_t blob[32];
} tentry;

static void mk(tentry *t, uint32_t id, uint8_t user, const char *text)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < SESS_STORE_KEY_BYTES; i++)
        t->e.key[i] = (uint8_t)(id * 31u + (uint32_t)i * 7u + (id >> 3));
    memcpy(t->e.key, &id, sizeof id); /* distinct keys */
    t->e.key[4] = (uint8_t)(id * 151u);
    t->e.key[5] = (uint8_t)(id * 53u);
    for (int i = 0; i < SESS_STORE_HANDLE_BYTES; i++)
        t->e.handle[i] = (uint8_t)(t->e.key[i] ^ 0x5a);
    memset(t->e.user, user, SESS_STORE_USER_BYTES);
    t->e.created_at = NOW - 10 + id;
    t->e.expires_at = LATER;
    snprintf((char *)t->blob, sizeof t->blob, "%s", text);
    t->e.blob = t->blob;
    t->e.blob_len = strlen(text);
}

static sess_store *open_mig(const char *url)
{
    sess_store *st = NULL;
    sess_err err = {0};
    int rc = sess_store_open(url, NULL, &st, &err);
    if (rc != SESS_OK)
        fail_msg("open %s: %d %s", url, rc, err.msg);
    return st;
}

static int get(sess_store *st, const uint8_t *key)
{
    sess_store_buf b = {0};
    sess_entry e;
    int rc = st->methods->get(st, key, NOW, &e, &b, NULL);
    sess_store_buf_free(&b);
    return rc;
}

static int ins(sess_store *st, tentry *t)
{
    return st->methods->insert(st, &t->e, NULL, NOW, NULL, NULL);
}

static sess_migrate_counters ctrs(sess_store *st)
{
    sess_migrate_counters c;
    assert_int_equal(sess_store_migrate_counters(st, &c), SESS_OK);
    return c;
}

static void set_mode(sess_store *st, const char *m)
{
    sess_err err = {0};
    assert_int_equal(sess_store_migrate_set_mode(st, m, &err), SESS_OK);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_parse(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "route:", "route:101", "route:-1", "route:5x",
                                      "route:00001", "Dual", "shadow ", "readthrough", NULL};
    static const char *const good[] = {"off", "shadow", "dual", "route:0", "route:100",
                                       "read-through", "new", NULL};
    sess_migrate_kind k;
    unsigned pct;
    for (int i = 0; bad[i]; i++)
        assert_int_equal(sess_migrate_mode_parse(bad[i], &k, &pct, NULL), SESS_EINVAL);
    for (int i = 0; good[i]; i++)
        assert_int_equal(sess_migrate_mode_parse(good[i], &k, &pct, NULL), SESS_OK);
    sess_store *st = NULL;
    sess_err err = {0};
    assert_int_equal(sess_store_open("migrate:dual|memory:", NULL, &st, &err), SESS_EINVAL);
    assert_int_equal(sess_store_open("migrate:bogus|memory:|memory:", NULL, &st, &err), SESS_EINVAL);
    assert_int_equal(sess_store_open("migrate:dual|memory:|migrate:off|memory:|memory:", NULL,
                                     &st, &err), SESS_EINVAL);
    st = open_mig("migrate:dual|memory:|memory:");
    assert_int_equal(sess_store_migrate_set_mode(st, "route:200", &err), SESS_EINVAL);
    char m[SESS_MIGRATE_MODE_MAX];
    sess_store_migrate_mode(st, m, sizeof m);
    assert_string_equal(m, "dual"); /* a refused change changes nothing */
    set_mode(st, "route:37");
    sess_store_migrate_mode(st, m, sizeof m);
    assert_string_equal(m, "route:37");
    sess_store_close(st);
}

/* Shadow onto a TO that is down: users see nothing, failures are counted. */
static void test_shadow_to_down(void **state)
{
    (void)state;
    assert_true(sess_store_register(&failing_methods) == SESS_OK ||
                sess_store_register(&failing_methods) == SESS_EXISTS);
    sess_store *st = open_mig("migrate:shadow|memory:|failing:");
    tentry a;
    mk(&a, 1, 1, "rec-a");
    assert_int_equal(ins(st, &a), SESS_OK);
    assert_int_equal(get(st, a.e.key), SESS_OK);
    tentry a2 = a;
    a2.e.blob = (const uint8_t *)"rec-a2";
    a2.e.blob_len = 6;
    assert_int_equal(st->methods->update(st, &a2.e, a.blob, a.e.blob_len, NOW, NULL), SESS_OK);
    assert_int_equal(st->methods->remove(st, a.e.key, NULL, NULL), SESS_OK);
    assert_int_equal(get(st, a.e.key), SESS_NOTFOUND);
    sess_migrate_counters c = ctrs(st);
    assert_true(c.shadow_write_failures >= 3);
    assert_int_equal(c.to_write_failures, 0);

    /* Dual onto the same down TO: the write fails and FROM is unchanged. */
    set_mode(st, "dual");
    tentry b;
    mk(&b, 2, 1, "rec-b");
    assert_int_equal(ins(st, &b), SESS_EUNAVAILABLE);
    sess_store *from = sess_store_migrate_from(st);
    assert_int_equal(get(from, b.e.key), SESS_NOTFOUND);
    assert_true(ctrs(st).to_write_failures >= 1);
    sess_store_close(st);
}

static void test_dual_mismatches(void **state)
{
    (void)state;
    sess_store *st = open_mig("migrate:dual|memory:|memory:");
    sess_store *from = sess_store_migrate_from(st), *to = sess_store_migrate_to(st);
    tentry a, b, c, c2;
    mk(&a, 10, 2, "only-from");
    mk(&b, 11, 2, "only-to");
    mk(&c, 12, 2, "both-1");
    c2 = c;
    c2.e.blob = (const uint8_t *)"both-2";
    assert_int_equal(ins(from, &a), SESS_OK);
    assert_int_equal(ins(to, &b), SESS_OK);
    assert_int_equal(ins(from, &c), SESS_OK);
    assert_int_equal(ins(to, &c2), SESS_OK);

    assert_int_equal(get(st, a.e.key), SESS_OK);       /* served from FROM */
    assert_int_equal(get(st, b.e.key), SESS_NOTFOUND); /* FROM decides */
    assert_int_equal(get(to, b.e.key), SESS_NOTFOUND); /* and TO lost it */
    assert_int_equal(get(st, c.e.key), SESS_OK);
    sess_migrate_counters k = ctrs(st);
    assert_int_equal(k.mismatch_missing_to, 1);
    assert_int_equal(k.mismatch_missing_from, 1);
    assert_int_equal(k.mismatch_differ, 1);

    /* A write that meets a TO without the record repairs it. */
    tentry a2 = a;
    a2.e.blob = (const uint8_t *)"only-from-2";
    a2.e.blob_len = 11;
    assert_int_equal(st->methods->update(st, &a2.e, a.blob, a.e.blob_len, NOW, NULL), SESS_OK);
    assert_int_equal(get(to, a.e.key), SESS_OK);
    assert_true(ctrs(st).repairs >= 1);

    /* Destroy during dual: gone from both, never back. */
    assert_int_equal(st->methods->remove(st, a.e.key, NULL, NULL), SESS_OK);
    assert_int_equal(get(from, a.e.key), SESS_NOTFOUND);
    assert_int_equal(get(to, a.e.key), SESS_NOTFOUND);
    set_mode(st, "route:100");
    assert_int_equal(get(st, a.e.key), SESS_NOTFOUND);
    set_mode(st, "new");
    assert_int_equal(get(st, a.e.key), SESS_NOTFOUND);
    sess_store_close(st);
}

static void test_route_stable_and_rollback(void **state)
{
    (void)state;
    sess_store *st = open_mig("migrate:route:100|memory:|memory:");
    sess_store *to = sess_store_migrate_to(st);
    tentry t[40];
    for (uint32_t i = 0; i < 40; i++) {
        mk(&t[i], 100 + i, (uint8_t)(3 + i % 4), "routed");
        assert_int_equal(ins(st, &t[i]), SESS_OK);
    }
    /* Rollback to route:10 and to off: every session made at 100 is there. */
    set_mode(st, "route:10");
    for (int i = 0; i < 40; i++)
        assert_int_equal(get(st, t[i].e.key), SESS_OK);
    set_mode(st, "off");
    for (int i = 0; i < 40; i++)
        assert_int_equal(get(st, t[i].e.key), SESS_OK);

    /* Stable choice: at route:50, a key missing in TO falls back to FROM
     * exactly when it hashes to TO, and does so every time. */
    set_mode(st, "route:50");
    for (int i = 0; i < 40; i++)
        assert_int_equal(to->methods->remove(to, t[i].e.key, NULL, NULL), SESS_OK);
    uint64_t f0 = ctrs(st).fallbacks;
    for (int i = 0; i < 40; i++)
        assert_int_equal(get(st, t[i].e.key), SESS_OK);
    uint64_t f1 = ctrs(st).fallbacks;
    for (int i = 0; i < 40; i++)
        assert_int_equal(get(st, t[i].e.key), SESS_OK);
    uint64_t f2 = ctrs(st).fallbacks;
    assert_int_equal(f1 - f0, f2 - f1);
    assert_true(f1 - f0 > 0 && f1 - f0 < 40);

    /* Revoke-user reaches both. */
    assert_int_equal(st->methods->remove_user(st, t[0].e.user, NULL, NOW, NULL, NULL), SESS_OK);
    assert_int_equal(get(sess_store_migrate_from(st), t[0].e.key), SESS_NOTFOUND);
    set_mode(st, "new");
    assert_int_equal(get(st, t[0].e.key), SESS_NOTFOUND);
    sess_store_close(st);
}

static void test_read_through(void **state)
{
    (void)state;
    sess_store *st = open_mig("migrate:read-through|memory:|memory:");
    sess_store *from = sess_store_migrate_from(st), *to = sess_store_migrate_to(st);
    tentry a;
    mk(&a, 200, 9, "old");
    assert_int_equal(ins(from, &a), SESS_OK);
    assert_int_equal(get(to, a.e.key), SESS_NOTFOUND);
    assert_int_equal(get(st, a.e.key), SESS_OK);
    assert_int_equal(get(to, a.e.key), SESS_OK);
    assert_int_equal(ctrs(st).read_through_copies, 1);
    /* Destroy reaches both: no copy can come back. */
    assert_int_equal(st->methods->remove(st, a.e.key, NULL, NULL), SESS_OK);
    assert_int_equal(get(from, a.e.key), SESS_NOTFOUND);
    assert_int_equal(get(st, a.e.key), SESS_NOTFOUND);
    sess_store_close(st);
}

/* The per-user limit: the primary decides, the other store follows. */
static void test_limit_both(void **state)
{
    (void)state;
    sess_store *st = open_mig("migrate:dual|memory:|memory:");
    sess_store *to = sess_store_migrate_to(st);
    sess_store_limit lim = {.max_per_user = 2, .policy = SESS_LIMIT_EVICT_OLDEST};
    tentry t[4];
    for (uint32_t i = 0; i < 4; i++) {
        mk(&t[i], 300 + i, 7, "lim");
        sess_store_evicted ev;
        assert_int_equal(st->methods->insert(st, &t[i].e, &lim, NOW, &ev, NULL), SESS_OK);
    }
    uint64_t n = 0;
    assert_int_equal(to->methods->count(to, NOW, &n, NULL), SESS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(get(to, t[0].e.key), SESS_NOTFOUND);
    assert_int_equal(get(to, t[3].e.key), SESS_OK);
    sess_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_shadow_to_down),
        cmocka_unit_test(test_dual_mismatches),
        cmocka_unit_test(test_route_stable_and_rollback),
        cmocka_unit_test(test_read_through),
        cmocka_unit_test(test_limit_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
