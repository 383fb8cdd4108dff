/*
 * store_fault.c - the "fault:" store: wraps any other store URL
 * ("fault:lmdb:/path", "fault:memory:", "fault:redis://...") and forwards
 * every call, counting calls per operation and failing the ones a test
 * chose, in the shape of SQLite's vfstrace/test_vfs shims.  It exists to
 * drive the failure paths of the core (lib/session.c) against real
 * backends: tests/unit/lib/test_faults.c fails each store call of create,
 * rotate, regenerate and destroy in turn and checks that the operation
 * fails cleanly and leaves the stored state as it was.
 *
 * Control is process-wide (tests run one store at a time) through the
 * sess__fault_* functions of store_internal.h.  A failure is injected
 * either before the call reaches the inner store (nothing changed: the
 * common case of a refused or lost request) or after it ran (the write
 * landed but the caller sees an error: a reply lost on the way back).
 *
 * The wrapper's method table mirrors the inner store's optional methods:
 * a routing inner store (Redis Cluster) is wrapped with a table that has
 * "route", any other with one that has none, because the core decides
 * whether to route by the table's route member.  Both tables carry the
 * scheme "fault".  Not meant for production; harmless there (no failure
 * is armed unless a test arms one).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "sess/store.h"
#include "store_internal.h"
#include "util.h"

struct fault_store {
    sess_store base;
    sess_store *inner;
};

static const char *const op_names[SESS__FOP_N] = {
    "get",       "insert",      "update", "replace", "remove", "find_handle",
    "list_user", "remove_user", "purge",  "ping",    "count",  "route"};

/* The armed failure: which op (SESS__FOP_ANY = any), which call of it
 * (1-based since the last reset, 0 = every call), the code, when. */
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static int f_op = -1;
static uint64_t f_nth;
static int f_code;
static sess__fault_when f_when;
static uint64_t f_calls[SESS__FOP_N + 1];
static uint64_t f_hits;

void sess__fault_reset(void)
{
    pthread_mutex_lock(&fault_lock);
    f_op = -1;
    f_nth = 0;
    f_code = 0;
    memset(f_calls, 0, sizeof f_calls);
    f_hits = 0;
    pthread_mutex_unlock(&fault_lock);
}

void sess__fault_arm(sess__fault_op op, uint64_t nth, int code,
                     sess__fault_when when)
{
    pthread_mutex_lock(&fault_lock);
    f_op = (int)op;
    f_nth = nth;
    f_code = code;
    f_when = when;
    memset(f_calls, 0, sizeof f_calls);
    f_hits = 0;
    pthread_mutex_unlock(&fault_lock);
}

uint64_t sess__fault_calls(sess__fault_op op)
{
    pthread_mutex_lock(&fault_lock);
    uint64_t n = f_calls[op <= SESS__FOP_N ? op : SESS__FOP_N];
    pthread_mutex_unlock(&fault_lock);
    return n;
}

uint64_t sess__fault_hits(void)
{
    pthread_mutex_lock(&fault_lock);
    uint64_t n = f_hits;
    pthread_mutex_unlock(&fault_lock);
    return n;
}

/* Count a call of "op"; the code to fail it with when "when" is now, else 0. */
static int fault_check(sess__fault_op op, sess__fault_when when)
{
    int code = 0;
    pthread_mutex_lock(&fault_lock);
    if (when == SESS__FAULT_BEFORE) {
        f_calls[op]++;
        f_calls[SESS__FOP_N]++;
    }
    if (f_op >= 0 && f_when == when &&
        (f_op == (int)SESS__FOP_ANY || f_op == (int)op)) {
        uint64_t n = f_op == (int)SESS__FOP_ANY ? f_calls[SESS__FOP_N]
                                                  : f_calls[op];
        if (f_nth == 0 || n == f_nth) {
            code = f_code;
            f_hits++;
        }
    }
    pthread_mutex_unlock(&fault_lock);
    return code;
}

static int injected(sess_err *err, sess__fault_op op, int code)
{
    return sess__fail(err, code, "fault store: injected %s failure of %s",
                      sess_result_name(code), op_names[op]);
}

/* Before the inner call: fail now, or go on. */
#define FAULT_BEFORE(op)                                                   \
    do {                                                                   \
        int fc_ = fault_check((op), SESS__FAULT_BEFORE);                   \
        if (fc_)                                                           \
            return injected(err, (op), fc_);                               \
    } while (0)

/* After it: replace a success by the armed failure. */
static int fault_after(sess__fault_op op, int rc, sess_err *err)
{
    int fc = fault_check(op, SESS__FAULT_AFTER);
    return fc && rc == SESS_OK ? injected(err, op, fc) : rc;
}

#define IN(st) (((struct fault_store *)(st))->inner)
#define IM(st) (IN(st)->methods)

static const sess_store_methods fault_methods_routed;

static int fault_open(const char *url, const sess_store_options *opt,
                      sess_store **out, sess_err *err)
{
    const char *rest = sess__store_url_rest(url, "fault");
    int rc;

    if (!rest || !*rest)
        return sess__fail(err, SESS_EINVAL,
                          "fault store: URL must be \"fault:INNER-URL\"");
    struct fault_store *st = calloc(1, sizeof *st);
    if (!st)
        return sess__fail(err, SESS_ENOMEM, "fault store: out of memory");
    if ((rc = sess_store_open(rest, opt, &st->inner, err)) != SESS_OK) {
        free(st);
        return rc;
    }
    const sess_store_methods *im = st->inner->methods;
    st->base.methods = im->version >= 2 && im->route ? &fault_methods_routed
                                                     : &sess__store_fault_methods;
    *out = &st->base;
    return SESS_OK;
}

static void fault_close(sess_store *st)
{
    sess_store_close(IN(st));
    free(st);
}

static int fault_get(sess_store *st, const uint8_t *key, uint64_t now,
                     sess_entry *e, sess_store_buf *buf, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_GET);
    return fault_after(SESS__FOP_GET, IM(st)->get(IN(st), key, now, e, buf, err), err);
}

static int fault_insert(sess_store *st, const sess_entry *e,
                        const sess_store_limit *lim, uint64_t now,
                        sess_store_evicted *evicted, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_INSERT);
    return fault_after(SESS__FOP_INSERT,
                       IM(st)->insert(IN(st), e, lim, now, evicted, err), err);
}

static int fault_update(sess_store *st, const sess_entry *e,
                        const uint8_t *expect, size_t expect_len, uint64_t now,
                        sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_UPDATE);
    return fault_after(SESS__FOP_UPDATE,
                       IM(st)->update(IN(st), e, expect, expect_len, now, err), err);
}

static int fault_replace(sess_store *st, const uint8_t *old_key,
                         const uint8_t *expect, size_t expect_len,
                         const sess_entry *old_tomb, const sess_entry *next,
                         uint64_t now, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_REPLACE);
    return fault_after(SESS__FOP_REPLACE,
                       IM(st)->replace(IN(st), old_key, expect, expect_len,
                                       old_tomb, next, now, err), err);
}

static int fault_remove(sess_store *st, const uint8_t *key, uint8_t *handle_out,
                        sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_REMOVE);
    return fault_after(SESS__FOP_REMOVE,
                       IM(st)->remove(IN(st), key, handle_out, err), err);
}

static int fault_find_handle(sess_store *st, const uint8_t *handle,
                             uint64_t now, uint8_t *key_out, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_FIND_HANDLE);
    return fault_after(SESS__FOP_FIND_HANDLE,
                       IM(st)->find_handle(IN(st), handle, now, key_out, err), err);
}

static int fault_list_user(sess_store *st, const uint8_t *user, uint64_t now,
                           sess_store_list_fn fn, void *ctx, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_LIST_USER);
    return fault_after(SESS__FOP_LIST_USER,
                       IM(st)->list_user(IN(st), user, now, fn, ctx, err), err);
}

static int fault_remove_user(sess_store *st, const uint8_t *user,
                             const uint8_t *except, uint64_t now, size_t *n,
                             sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_REMOVE_USER);
    return fault_after(SESS__FOP_REMOVE_USER,
                       IM(st)->remove_user(IN(st), user, except, now, n, err), err);
}

static int fault_purge(sess_store *st, uint64_t now, size_t max,
                       size_t *removed, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_PURGE);
    return fault_after(SESS__FOP_PURGE,
                       IM(st)->purge(IN(st), now, max, removed, err), err);
}

static int fault_purge_each(sess_store *st, uint64_t now, size_t max,
                            size_t *removed, sess_store_purge_fn fn,
                            void *fn_ctx, sess_err *err)
{
    const sess_store_methods *im = IM(st);
    FAULT_BEFORE(SESS__FOP_PURGE);
    if (im->version < 4 || !im->purge_each)
        return fault_after(SESS__FOP_PURGE,
                           im->purge(IN(st), now, max, removed, err), err);
    return fault_after(SESS__FOP_PURGE,
                       im->purge_each(IN(st), now, max, removed, fn, fn_ctx, err),
                       err);
}

static int fault_ping(sess_store *st, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_PING);
    return fault_after(SESS__FOP_PING, IM(st)->ping(IN(st), err), err);
}

static int fault_count(sess_store *st, uint64_t now, uint64_t *n, sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_COUNT);
    return fault_after(SESS__FOP_COUNT, IM(st)->count(IN(st), now, n, err), err);
}

static int fault_route(sess_store *st, const uint8_t *user, uint16_t *out,
                       sess_err *err)
{
    FAULT_BEFORE(SESS__FOP_ROUTE);
    return fault_after(SESS__FOP_ROUTE, IM(st)->route(IN(st), user, out, err), err);
}

static int fault_stats(sess_store *st, sess_store_stats *out)
{
    const sess_store_methods *im = IM(st);
    if (im->version < 3 || !im->stats)
        return SESS_NOTFOUND;
    return im->stats(IN(st), out);
}

/* Forwarded without faults of its own: scan is for tools, and a fault
 * test arms the operations the daemon uses.  SESS_EINVAL when the inner
 * store cannot scan. */
static int fault_scan(sess_store *st, sess_store_cursor *cur, uint64_t now,
                      size_t max, sess_store_list_fn fn, void *ctx, sess_err *err)
{
    sess_store *in = IN(st);
    if (!SESS_STORE_SCAN(in))
        return sess__fail(err, SESS_EINVAL, "fault store: inner store cannot scan");
    return SESS_STORE_SCAN(in)(in, cur, now, max, fn, ctx, err);
}

#define FAULT_TABLE(route_fn)                                              \
    {.version = 4,                                                         \
     .scheme = "fault",                                                    \
     .open = fault_open,                                                   \
     .close = fault_close,                                                 \
     .get = fault_get,                                                     \
     .insert = fault_insert,                                               \
     .update = fault_update,                                               \
     .replace = fault_replace,                                             \
     .remove = fault_remove,                                               \
     .find_handle = fault_find_handle,                                     \
     .list_user = fault_list_user,                                         \
     .remove_user = fault_remove_user,                                     \
     .purge = fault_purge,                                                 \
     .ping = fault_ping,                                                   \
     .count = fault_count,                                                 \
     .route = route_fn,                                                    \
     .stats = fault_stats,                                                 \
     .purge_each = fault_purge_each,                                       \
     .scan = fault_scan}

/* The registered table (no route); fault_open picks the routed twin for a
 * routing inner store. */
const sess_store_methods sess__store_fault_methods = FAULT_TABLE(NULL);
static const sess_store_methods fault_methods_routed = FAULT_TABLE(fault_route);
