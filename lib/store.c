/*
 * store.c - the registry of store backends and the front door of the
 * storage layer: sess_store_register, sess_store_open/close, the growable
 * buffer backends return records through, and small helpers every backend
 * shares (store_internal.h).
 *
 * The registry is a fixed table of STORE_MAX_BACKENDS method tables keyed
 * by URL scheme, like SQLite's VFS list.  The built-ins ("memory",
 * "lmdb", "fault" (a wrapper that injects failures, for tests), and with
 * SESS_WITH_REDIS "redis", "redis+sentinel", "redis+cluster") are added once, on first use of the registry, under
 * pthread_once, so there is no start-up call to forget.  A mutex guards
 * the table: sess_store_register is documented as a start-up call, but
 * guarding it costs nothing and makes a late registration safe.  Method
 * tables are never removed, so a pointer read under the lock stays valid
 * after it is released.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sess/store.h"
#include "store_internal.h"
#include "util.h"

/* Room for 16 backends besides the optional built-ins, so that building
 * with Redis does not shrink what applications may register. */
#ifdef SESS_WITH_REDIS
#define STORE_OPTIONAL_BUILTINS 3
#else
#define STORE_OPTIONAL_BUILTINS 0
#endif
/* "fault" (the test wrapper, store_fault.c) counts as optional too, and
 * "migrate" (store_migrate.c) is one more built-in. */
#define STORE_MAX_BACKENDS (16 + 1 + 1 + STORE_OPTIONAL_BUILTINS)
#define SCHEME_MAX 32 /* longest scheme accepted, for messages and lookup */

static const sess_store_methods *registry[STORE_MAX_BACKENDS];
static size_t registry_n;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

/* RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static bool scheme_valid(const char *s, size_t n)
{
    if (n == 0 || n > SCHEME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool other = (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        if (!alpha && !(i > 0 && other))
            return false;
    }
    return true;
}

/* A table is usable when it fills in at least version 1 completely. */
static bool methods_valid(const sess_store_methods *m)
{
    return m && m->version >= 1 && m->scheme &&
           scheme_valid(m->scheme, strlen(m->scheme)) && m->open &&
           m->close && m->get && m->insert && m->update && m->replace &&
           m->remove && m->find_handle && m->list_user && m->remove_user &&
           m->purge && m->ping && m->count;
}

/* Caller holds registry_lock. */
static const sess_store_methods *find_locked(const char *scheme, size_t n)
{
    for (size_t i = 0; i < registry_n; i++) {
        const char *s = registry[i]->scheme;
        if (strlen(s) == n && strncasecmp(s, scheme, n) == 0)
            return registry[i];
    }
    return NULL;
}

static int register_locked(const sess_store_methods *m)
{
    if (!methods_valid(m))
        return SESS_EINVAL;
    if (find_locked(m->scheme, strlen(m->scheme)))
        return SESS_EXISTS;
    if (registry_n >= STORE_MAX_BACKENDS)
        return SESS_EFULL;
    registry[registry_n++] = m;
    return SESS_OK;
}

static void register_builtins(void)
{
    pthread_mutex_lock(&registry_lock);
    (void)register_locked(&sess__store_memory_methods);
    (void)register_locked(&sess__store_lmdb_methods);
    (void)register_locked(&sess__store_fault_methods);
    (void)register_locked(&sess__store_migrate_methods);
#ifdef SESS_WITH_REDIS
    (void)register_locked(&sess__store_redis_methods);
    (void)register_locked(&sess__store_redis_sentinel_methods);
    (void)register_locked(&sess__store_redis_cluster_methods);
#endif
    pthread_mutex_unlock(&registry_lock);
}

int sess_store_register(const sess_store_methods *m)
{
    pthread_once(&registry_once, register_builtins);
    pthread_mutex_lock(&registry_lock);
    int rc = register_locked(m);
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

/* Caller has run the registry once.  The backend for "url", or NULL with
 * "err" set: the one place store URL syntax is judged. */
static const sess_store_methods *backend_of(const char *url, sess_err *err)
{
    if (!url || !*url) {
        sess__fail(err, SESS_EINVAL, "store open: empty store URL");
        return NULL;
    }
    const char *colon = strchr(url, ':');
    if (!colon) {
        sess__fail(err, SESS_EINVAL,
                   "store URL has no scheme (expected e.g. "
                   "\"lmdb:PATH\" or \"memory:\")");
        return NULL;
    }
    size_t n = (size_t)(colon - url);
    if (!scheme_valid(url, n)) {
        sess__fail(err, SESS_EINVAL, "store URL scheme is empty or malformed");
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    const sess_store_methods *m = find_locked(url, n);
    pthread_mutex_unlock(&registry_lock);
    if (!m)
        sess__fail(err, SESS_EINVAL, "unknown store scheme \"%.*s\"",
                   (int)(n < SCHEME_MAX ? n : SCHEME_MAX), url);
    return m;
}

int sess_store_url_check(const char *url, sess_err *err)
{
    pthread_once(&registry_once, register_builtins);
    return backend_of(url, err) ? SESS_OK : SESS_EINVAL;
}

int sess_store_open(const char *url, const sess_store_options *opt,
                    sess_store **out, sess_err *err)
{
    static const sess_store_options defaults = {
        .durability = SESS_DURABILITY_PROCESS, .map_size = 0};

    if (!out)
        return sess__fail(err, SESS_EINVAL, "store open: no output pointer");
    *out = NULL;
    pthread_once(&registry_once, register_builtins);
    const sess_store_methods *m = backend_of(url, err);
    if (!m)
        return SESS_EINVAL;

    int rc = m->open(url, opt ? opt : &defaults, out, err);
    if (rc != SESS_OK) {
        *out = NULL;
        return rc;
    }
    /* A backend may give a store a variant of its table (the fault store
     * mirrors its inner store's optional methods; the migration store has
     * one with and one without route), but of its own scheme
     * and complete. */
    if (!*out || ((*out)->methods != m &&
                  !(methods_valid((*out)->methods) &&
                    strcmp((*out)->methods->scheme, m->scheme) == 0))) {
        /* A backend that breaks the base-struct rule would crash later,
         * far from the cause; refuse it here. */
        if (*out)
            m->close(*out);
        *out = NULL;
        return sess__fail(err, SESS_EINTERNAL,
                          "store backend \"%s\" returned a bad store",
                          m->scheme);
    }
    return SESS_OK;
}

void sess_store_close(sess_store *st)
{
    if (st)
        st->methods->close(st);
}

/* Grow "b" to hold at least "need" bytes, keeping its contents.  The old
 * block is wiped before it is freed: buffers may later carry plaintext in
 * the layers above. */
int sess_store_buf_reserve(sess_store_buf *b, size_t need)
{
    if (!b)
        return SESS_EINVAL;
    if (need <= b->cap)
        return SESS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = malloc(cap);
    if (!p)
        return SESS_ENOMEM;
    if (b->data) {
        if (b->len)
            memcpy(p, b->data, b->len < cap ? b->len : cap);
        sess__wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    if (b->len > cap)
        b->len = cap;
    return SESS_OK;
}

void sess_store_buf_free(sess_store_buf *b)
{
    if (!b)
        return;
    if (b->data) {
        sess__wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ---- helpers shared by backends (store_internal.h) -------------------- */

const char *sess__store_url_rest(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    if (!url || strncasecmp(url, scheme, n) != 0 || url[n] != ':')
        return NULL;
    return url + n + 1;
}

int sess__store_check_entry(const sess_entry *e, const char *op,
                            sess_err *err)
{
    if (!e)
        return sess__fail(err, SESS_EINVAL, "store %s: no entry", op);
    if (e->blob_len > SESS_STORE_BLOB_MAX)
        return sess__fail(err, SESS_ETOOBIG,
                          "store %s: record of %zu bytes exceeds %u", op,
                          e->blob_len, SESS_STORE_BLOB_MAX);
    if (e->blob_len > 0 && !e->blob)
        return sess__fail(err, SESS_EINVAL, "store %s: record bytes missing",
                          op);
    return SESS_OK;
}

int sess__store_check_replace(const uint8_t *old_key, const uint8_t *expect,
                              size_t expect_len, const sess_entry *old_tomb,
                              const sess_entry *next, const char *backend,
                              sess_err *err)
{
    int rc;
    if (!old_key || (expect_len && !expect))
        return sess__fail(err, SESS_EINVAL, "%s replace: missing argument", backend);
    if ((rc = sess__store_check_entry(next, "replace", err)) != SESS_OK)
        return rc;
    if (old_tomb && (rc = sess__store_check_entry(old_tomb, "replace", err)) != SESS_OK)
        return rc;
    if (memcmp(next->key, old_key, SESS_STORE_KEY_BYTES) == 0)
        return sess__fail(err, SESS_EINVAL, "%s replace: new key equals old key",
                          backend);
    return SESS_OK;
}

static int cand_cmp(const void *a, const void *b)
{
    const sess__evict_cand *x = a, *y = b;
    if (x->created_at != y->created_at)
        return x->created_at < y->created_at ? -1 : 1;
    return memcmp(x->key, y->key, sizeof x->key);
}

void sess__store_sort_cands(sess__evict_cand *c, size_t n)
{
    if (n > 1)
        qsort(c, n, sizeof *c, cand_cmp);
}

void sess__store_report_evicted(sess_store_evicted *ev, const uint8_t *handle)
{
    if (ev && ev->n < SESS_EVICT_MAX) {
        memcpy(ev->handle[ev->n], handle, SESS_STORE_HANDLE_BYTES);
        ev->n++;
    }
}

/* ---- scan batches ---------------------------------------------------------- */

size_t sess__scan_max(size_t max)
{
    if (max == 0)
        return 1;
    return max > SESS_SCAN_BATCH_MAX ? SESS_SCAN_BATCH_MAX : max;
}

int sess__scan_add(sess__scan_batch *b, const sess_entry *e)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        sess_entry *ne = realloc(b->e, cap * sizeof *ne);
        if (!ne)
            return SESS_ENOMEM;
        b->e = ne;
        size_t *no = realloc(b->off, cap * sizeof *no);
        if (!no)
            return SESS_ENOMEM;
        b->off = no;
        b->cap = cap;
    }
    if (sess_store_buf_reserve(&b->blobs, b->blobs.len + e->blob_len) != SESS_OK)
        return SESS_ENOMEM;
    b->off[b->n] = b->blobs.len;
    if (e->blob_len)
        memcpy(b->blobs.data + b->blobs.len, e->blob, e->blob_len);
    b->blobs.len += e->blob_len;
    b->e[b->n] = *e;
    b->e[b->n].blob = NULL;       /* set at emit: "blobs" may move */
    b->n++;
    return SESS_OK;
}

void sess__scan_emit(sess__scan_batch *b, sess_store_list_fn fn, void *ctx)
{
    for (size_t i = 0; i < b->n; i++) {
        b->e[i].blob = b->e[i].blob_len ? b->blobs.data + b->off[i] : NULL;
        if (fn(ctx, &b->e[i]) != 0)
            break;
    }
}

void sess__scan_free(sess__scan_batch *b)
{
    free(b->e);
    free(b->off);
    sess_store_buf_free(&b->blobs);
    memset(b, 0, sizeof *b);
}
