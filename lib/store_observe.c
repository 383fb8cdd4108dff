/*
 * store_observe.c - the observed store (sess_store_observe, sess/store.h):
 * a wrapper in the shape of SQLite's vfstrace shim that forwards every
 * call to the store it wraps and, when its observer wants it, reports the
 * operation afterwards: name, the inner store's scheme, start time,
 * duration, result, and the notes the backend left (L1 hit or miss, the
 * Redis server asked; store_internal.h).  sessiond builds child spans of
 * a request's span from these reports.
 *
 * Cost.  The daemon wraps its store only when tracing is on.  Then an
 * operation of a request that is not sampled costs one call of "want";
 * a sampled one two clock readings and the "done" call.  Nothing is
 * allocated and nothing locked here.  Reports never carry keys, handles
 * or record bytes (a storage key is SHA-256 of a session ID).
 *
 * The notes travel through a thread-local pointer set for the duration of
 * the inner call (and restored after it, so a nested observed store would
 * not lose its caller's note).  Like the fault store, the wrapper picks a
 * method table with "route" only when the inner store routes, because the
 * core decides whether to route by that member.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sess/store.h"
#include "store_internal.h"
#include "util.h"

_Thread_local sess__store_note *sess__store_note_cur;

void sess__store_note_node(const char *host, int port)
{
    sess__store_note *n = sess__store_note_cur;
    if (n)
        snprintf(n->node, sizeof n->node, "%s:%d", host, port);
}

struct obs_store {
    sess_store base;
    sess_store *inner;
    sess_store_observer obs;
};

/* One operation in flight on this thread. */
typedef struct pending {
    bool on;
    sess__store_note note;
    sess__store_note *prev;
    struct timespec real, mono;
} pending;

#define OS(st) ((struct obs_store *)(st))
#define IN(st) (OS(st)->inner)
#define IM(st) (IN(st)->methods)

static void op_begin(sess_store *st, pending *p)
{
    const sess_store_observer *o = &OS(st)->obs;
    p->on = o->want == NULL || o->want(o->user);
    if (!p->on)
        return;
    p->note.l1 = SESS_STORE_L1_NONE;
    p->note.node[0] = '\0';
    p->prev = sess__store_note_cur;
    sess__store_note_cur = &p->note;
    clock_gettime(CLOCK_REALTIME, &p->real);
    clock_gettime(CLOCK_MONOTONIC, &p->mono);
}

static uint64_t ns_of(const struct timespec *t)
{
    return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

static int op_end(sess_store *st, pending *p, const char *name, int rc)
{
    if (!p->on)
        return rc;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sess__store_note_cur = p->prev;
    sess_store_op op = {
        .op = name,
        .backend = IM(st)->scheme,
        .start_ns = ns_of(&p->real),
        .duration_ns = ns_of(&now) - ns_of(&p->mono),
        .rc = rc,
        .l1 = (sess_store_l1)p->note.l1,
    };
    memcpy(op.node, p->note.node, sizeof op.node);
    OS(st)->obs.done(OS(st)->obs.user, &op);
    return rc;
}

/* Run "call" as the observed operation "name". */
#define OBSERVED(st, name, call)                                           \
    do {                                                                   \
        pending p_;                                                        \
        op_begin((st), &p_);                                               \
        int rc_ = (call);                                                  \
        return op_end((st), &p_, (name), rc_);                             \
    } while (0)

static int obs_open(const char *url, const sess_store_options *opt,
                    sess_store **out, sess_err *err)
{
    (void)url;
    (void)opt;
    (void)out;
    return sess__fail(err, SESS_EINVAL,
                      "observed store: made by sess_store_observe(), not "
                      "by URL");
}

static void obs_close(sess_store *st)
{
    sess_store_close(IN(st));
    free(st);
}

static int obs_get(sess_store *st, const uint8_t *key, uint64_t now,
                   sess_entry *e, sess_store_buf *buf, sess_err *err)
{
    OBSERVED(st, "get", IM(st)->get(IN(st), key, now, e, buf, err));
}

static int obs_insert(sess_store *st, const sess_entry *e,
                      const sess_store_limit *lim, uint64_t now,
                      sess_store_evicted *evicted, sess_err *err)
{
    OBSERVED(st, "insert", IM(st)->insert(IN(st), e, lim, now, evicted, err));
}

static int obs_update(sess_store *st, const sess_entry *e,
                      const uint8_t *expect, size_t expect_len, uint64_t now,
                      sess_err *err)
{
    OBSERVED(st, "update",
             IM(st)->update(IN(st), e, expect, expect_len, now, err));
}

static int obs_replace(sess_store *st, const uint8_t *old_key,
                       const uint8_t *expect, size_t expect_len,
                       const sess_entry *old_tomb, const sess_entry *next,
                       uint64_t now, sess_err *err)
{
    OBSERVED(st, "replace",
             IM(st)->replace(IN(st), old_key, expect, expect_len, old_tomb,
                             next, now, err));
}

static int obs_remove(sess_store *st, const uint8_t *key, uint8_t *handle_out,
                      sess_err *err)
{
    OBSERVED(st, "remove", IM(st)->remove(IN(st), key, handle_out, err));
}

static int obs_find_handle(sess_store *st, const uint8_t *handle,
                           uint64_t now, uint8_t *key_out, sess_err *err)
{
    OBSERVED(st, "find_handle",
             IM(st)->find_handle(IN(st), handle, now, key_out, err));
}

static int obs_list_user(sess_store *st, const uint8_t *user, uint64_t now,
                         sess_store_list_fn fn, void *ctx, sess_err *err)
{
    OBSERVED(st, "list_user",
             IM(st)->list_user(IN(st), user, now, fn, ctx, err));
}

static int obs_remove_user(sess_store *st, const uint8_t *user,
                           const uint8_t *except, uint64_t now, size_t *n,
                           sess_err *err)
{
    OBSERVED(st, "remove_user",
             IM(st)->remove_user(IN(st), user, except, now, n, err));
}

static int obs_purge(sess_store *st, uint64_t now, size_t max,
                     size_t *removed, sess_err *err)
{
    OBSERVED(st, "purge", IM(st)->purge(IN(st), now, max, removed, err));
}

static int obs_ping(sess_store *st, sess_err *err)
{
    OBSERVED(st, "ping", IM(st)->ping(IN(st), err));
}

static int obs_count(sess_store *st, uint64_t now, uint64_t *n, sess_err *err)
{
    OBSERVED(st, "count", IM(st)->count(IN(st), now, n, err));
}

static int obs_route(sess_store *st, const uint8_t *user, uint16_t *out,
                     sess_err *err)
{
    OBSERVED(st, "route", IM(st)->route(IN(st), user, out, err));
}

/* Counters only: not an operation, never reported. */
static int obs_stats(sess_store *st, sess_store_stats *out)
{
    const sess_store_methods *im = IM(st);
    if (im->version < 3 || !im->stats)
        return SESS_NOTFOUND;
    return im->stats(IN(st), out);
}

#define OBSERVE_TABLE(route_fn)                                            \
    {.version = 3,                                                         \
     .scheme = "observe",                                                  \
     .open = obs_open,                                                     \
     .close = obs_close,                                                   \
     .get = obs_get,                                                       \
     .insert = obs_insert,                                                 \
     .update = obs_update,                                                 \
     .replace = obs_replace,                                               \
     .remove = obs_remove,                                                 \
     .find_handle = obs_find_handle,                                       \
     .list_user = obs_list_user,                                           \
     .remove_user = obs_remove_user,                                       \
     .purge = obs_purge,                                                   \
     .ping = obs_ping,                                                     \
     .count = obs_count,                                                   \
     .route = route_fn,                                                    \
     .stats = obs_stats}

static const sess_store_methods observe_methods = OBSERVE_TABLE(NULL);
static const sess_store_methods observe_methods_routed =
    OBSERVE_TABLE(obs_route);

int sess_store_observe(sess_store *inner, const sess_store_observer *obs,
                       sess_store **out, sess_err *err)
{
    if (!out)
        return sess__fail(err, SESS_EINVAL,
                          "store observe: no output pointer");
    *out = NULL;
    if (!inner || !obs || !obs->done)
        return sess__fail(err, SESS_EINVAL,
                          "store observe: missing store or observer");
    struct obs_store *st = calloc(1, sizeof *st);
    if (!st)
        return sess__fail(err, SESS_ENOMEM, "store observe: out of memory");
    const sess_store_methods *im = inner->methods;
    st->base.methods = im->version >= 2 && im->route ? &observe_methods_routed
                                                     : &observe_methods;
    st->inner = inner;
    st->obs = *obs;
    *out = &st->base;
    return SESS_OK;
}
