/*
 * test_store_observe.c - the observed store (lib/store_observe.c,
 * sess_store_observe): every operation is forwarded unchanged and
 * reported once, after it ran, with its name, the inner store's scheme,
 * a start time, a duration and its result; an observer that does not
 * want an operation gets no report; the wrapper owns and closes the inner
 * store; notes a backend leaves (L1, server) reach the report and never
 * leak into the next operation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_internal.h"
#include "testutil.h"

typedef struct seen {
    int n;
    bool want;
    char ops[32][16];
    int rc[32];
    char backend[16];
    uint64_t start_ns, duration_ns;
    int l1[32];
    char node[32][SESS_STORE_NODE_MAX];
} seen;

static bool want(void *user)
{
    return ((seen *)user)->want;
}

static void done(void *user, const sess_store_op *op)
{
    seen *s = user;
    assert_true(s->n < 32);
    snprintf(s->ops[s->n], sizeof s->ops[s->n], "%s", op->op);
    snprintf(s->backend, sizeof s->backend, "%s", op->backend);
    s->rc[s->n] = op->rc;
    s->l1[s->n] = op->l1;
    memcpy(s->node[s->n], op->node, SESS_STORE_NODE_MAX);
    s->start_ns = op->start_ns;
    s->duration_ns = op->duration_ns;
    s->n++;
}

static int count_one(void *ctx, const sess_entry *e)
{
    (void)e;
    (*(int *)ctx)++;
    return 0;
}

static sess_store *observed(seen *s)
{
    sess_store *inner = NULL, *st = NULL;
    sess_err err = {0};
    assert_int_equal(sess_store_open("memory:", NULL, &inner, &err), SESS_OK);
    sess_store_observer obs = {.want = want, .done = done, .user = s};
    assert_int_equal(sess_store_observe(inner, &obs, &st, &err), SESS_OK);
    assert_non_null(st);
    assert_ptr_not_equal(st, inner);
    return st;
}

static void test_every_operation_reported(void **state)
{
    (void)state;
    seen s = {.want = true};
    sess_store *st = observed(&s);
    const sess_store_methods *m = st->methods;
    sess_err err = {0};
    uint64_t now = 1800000000;
    sess_entry e, e2, got;
    uint8_t blob[16], blob2[16], key[SESS_STORE_KEY_BYTES];
    sess_store_buf buf = {0};
    sess_store_limit lim = {0, SESS_LIMIT_EVICT_OLDEST};
    sess_store_evicted ev = {0};
    size_t n = 0;
    uint64_t cnt = 0;
    int listed = 0;

    test_store_entry(&e, blob, sizeof blob, 1, now);
    test_store_entry(&e2, blob2, sizeof blob2, 2, now);
    memcpy(e2.user, e.user, sizeof e.user);
    struct timespec t0;
    clock_gettime(CLOCK_REALTIME, &t0);

    assert_int_equal(m->insert(st, &e, &lim, now, &ev, &err), SESS_OK);
    assert_true(s.start_ns >= (uint64_t)t0.tv_sec * 1000000000u);
    assert_int_equal(m->get(st, e.key, now, &got, &buf, &err), SESS_OK);
    assert_memory_equal(got.blob, blob, sizeof blob);
    assert_int_equal(m->update(st, &e, blob, sizeof blob, now, &err), SESS_OK);
    assert_int_equal(m->find_handle(st, e.handle, now, key, &err), SESS_OK);
    assert_memory_equal(key, e.key, sizeof key);
    assert_int_equal(m->replace(st, e.key, blob, sizeof blob, NULL, &e2, now, &err),
                     SESS_OK);
    assert_int_equal(m->list_user(st, e.user, now, count_one, &listed, &err), SESS_OK);
    assert_int_equal(listed, 1);
    assert_int_equal(m->count(st, now, &cnt, &err), SESS_OK);
    assert_int_equal(cnt, 1);
    assert_int_equal(m->ping(st, &err), SESS_OK);
    assert_int_equal(m->remove(st, e.key, NULL, &err), SESS_NOTFOUND);
    assert_int_equal(m->remove_user(st, e.user, NULL, now, &n, &err), SESS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(m->purge(st, now, 10, &n, &err), SESS_OK);

    static const char *const want_ops[] = {
        "insert", "get", "update", "find_handle", "replace", "list_user",
        "count", "ping", "remove", "remove_user", "purge"};
    assert_int_equal(s.n, 11);
    for (int i = 0; i < s.n; i++) {
        assert_string_equal(s.ops[i], want_ops[i]);
        assert_int_equal(s.l1[i], SESS_STORE_L1_NONE);
        assert_string_equal(s.node[i], "");
    }
    assert_int_equal(s.rc[8], SESS_NOTFOUND);   /* results as returned */
    assert_string_equal(s.backend, "memory");
    assert_true(s.duration_ns < 60ull * 1000000000u);
    /* Counters are not operations: forwarded, never reported. */
    sess_store_stats ss;
    assert_int_equal(m->stats(st, &ss), SESS_NOTFOUND);
    assert_int_equal(s.n, 11);
    assert_null(m->route);      /* the memory store does not route */
    sess_store_buf_free(&buf);
    sess_store_close(st);       /* closes the memory store too (ASan) */
}

static void test_unwanted_operations_not_reported(void **state)
{
    (void)state;
    seen s = {.want = false};
    sess_store *st = observed(&s);
    sess_err err = {0};
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    uint64_t cnt = 9;
    assert_int_equal(st->methods->count(st, 1800000000, &cnt, &err), SESS_OK);
    assert_int_equal(cnt, 0);
    assert_int_equal(s.n, 0);
    s.want = true;
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    assert_int_equal(s.n, 1);
    sess_store_close(st);
}

/* A backend's notes (store_internal.h) go to the operation running on
 * this thread, and only while it runs. */
static bool note_inside;

static int noting_ping(sess_store *st, sess_err *err)
{
    (void)st;
    (void)err;
    sess__store_note_l1(true);
    sess__store_note_node("10.0.0.7", 6380);
    note_inside = true;
    return SESS_OK;
}

static void test_backend_notes(void **state)
{
    (void)state;
    seen s = {.want = true};
    sess_store *inner = NULL, *st = NULL;
    sess_err err = {0};
    assert_int_equal(sess_store_open("memory:", NULL, &inner, &err), SESS_OK);
    /* The memory store with its ping replaced by one that leaves notes. */
    sess_store_methods noting = *inner->methods;
    const sess_store_methods *orig = inner->methods;
    noting.ping = noting_ping;
    inner->methods = &noting;
    sess_store_observer obs = {.want = want, .done = done, .user = &s};
    assert_int_equal(sess_store_observe(inner, &obs, &st, &err), SESS_OK);
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    assert_true(note_inside);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.l1[0], SESS_STORE_L1_HIT);
    assert_string_equal(s.node[0], "10.0.0.7:6380");
    /* Outside an observed operation a note goes nowhere. */
    sess__store_note_l1(false);
    sess__store_note_node("10.0.0.8", 1);
    uint64_t cnt;
    assert_int_equal(st->methods->count(st, 1, &cnt, &err), SESS_OK);
    assert_int_equal(s.l1[1], SESS_STORE_L1_NONE);
    assert_string_equal(s.node[1], "");
    inner->methods = orig;
    sess_store_close(st);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    sess_store *inner = NULL, *out = (sess_store *)1;
    sess_err err = {0};
    sess_store_observer none = {0};
    assert_int_equal(sess_store_open("memory:", NULL, &inner, &err), SESS_OK);
    assert_int_equal(sess_store_observe(inner, &none, &out, &err), SESS_EINVAL);
    assert_null(out);
    assert_int_equal(sess_store_observe(NULL, &none, &out, &err), SESS_EINVAL);
    assert_int_equal(sess_store_observe(inner, NULL, NULL, &err), SESS_EINVAL);
    /* Not a URL scheme anyone can open. */
    assert_int_not_equal(sess_store_open("observe:memory:", NULL, &out, &err), SESS_OK);
    sess_store_close(inner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_operation_reported),
        cmocka_unit_test(test_unwanted_operations_not_reported),
        cmocka_unit_test(test_backend_notes),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
