/*
 * store_memory.c - the in-process store ("memory:"): sessions live in this
 * process's heap and die with it.  For tests and ephemeral use.
 *
 * Three chained hash tables with intrusive links:
 *   key    -> entry     every entry, tombstones included
 *   handle -> entry     indexed entries only
 *   user   -> user node whose list holds the user's indexed entries
 * Invariants: an entry is in the handle table and in a user list exactly
 * when it is indexed (no SESS_ENTRY_UNINDEXED); a user node exists exactly
 * when its list is non-empty; kn/hn/un count the chained elements.
 * Buckets are chosen by SipHash-2-4 under a key drawn at open: the keys
 * are hashes, but a user id or session ID an attacker picks could still be
 * ground until many land in one bucket (hash flooding); a secret hash key
 * makes that guesswork.
 *
 * Locking: one rwlock per store, writer-preferring so a stream of reads
 * cannot starve revocation.  get, find_handle, list_user and count take
 * it shared; every mutation takes it exclusive for its whole duration, so
 * each operation is atomic.  Mutations do every allocation before they
 * change anything, so a failure leaves the store as it was.  list_user
 * copies the matching entries under the lock and calls back without it,
 * so a callback may call into the store.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sess/store.h"
#include "store_internal.h"
#include "util.h"

#define MEM_INITIAL_BUCKETS 64

struct mem_user;

struct mem_entry {
    /* Chain links are void * so that the generic table code reads and
     * writes them with their own type (no aliasing games). */
    void *knext;                      /* key table chain */
    void *hnext;                      /* handle table chain (indexed) */
    struct mem_entry *uprev, *unext;  /* user list (indexed) */
    struct mem_user *u;               /* NULL when unindexed */
    uint64_t khash, hhash;
    uint8_t key[SESS_STORE_KEY_BYTES];
    uint8_t handle[SESS_STORE_HANDLE_BYTES];
    uint8_t user[SESS_STORE_USER_BYTES];
    uint64_t created_at;
    uint64_t expires_at;
    uint32_t flags;
    uint8_t *blob;                    /* owned, blob_len bytes */
    size_t blob_len;
};

struct mem_user {
    void *next;                       /* user table chain */
    uint64_t hash;
    uint8_t user[SESS_STORE_USER_BYTES];
    struct mem_entry *head;           /* never NULL while linked */
};

/* A chained table of any of the three kinds: buckets of void pointers,
 * each element's chain link found by the kind-specific code below. */
struct mem_table {
    void **b;
    size_t mask;
    size_t n;
};

struct mem_store {
    sess_store base;                  /* first: sess_store rule */
    pthread_rwlock_t lock;
    uint64_t k0, k1;                  /* SipHash key */
    struct mem_table keys, handles, users;
};

/* ---- SipHash-2-4 (Aumasson and Bernstein) ---------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                             \
    do {                                                                     \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);            \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                               \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                               \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);            \
    } while (0)

/* "len" is a multiple of 8 here (16 or 32 bytes). */
static uint64_t siphash(const struct mem_store *st, const uint8_t *p,
                        size_t len)
{
    uint64_t v0 = st->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = st->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = st->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = st->k1 ^ 0x7465646279746573ULL;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t m = sess__get_u64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- tables ------------------------------------------------------------ */

enum mem_kind { KIND_KEY, KIND_HANDLE, KIND_USER };

static void **link_of(enum mem_kind kind, void *el)
{
    switch (kind) {
    case KIND_KEY: return &((struct mem_entry *)el)->knext;
    case KIND_HANDLE: return &((struct mem_entry *)el)->hnext;
    default: return &((struct mem_user *)el)->next;
    }
}

static uint64_t hash_of(enum mem_kind kind, const void *el)
{
    switch (kind) {
    case KIND_KEY: return ((const struct mem_entry *)el)->khash;
    case KIND_HANDLE: return ((const struct mem_entry *)el)->hhash;
    default: return ((const struct mem_user *)el)->hash;
    }
}

static int table_init(struct mem_table *t)
{
    t->b = calloc(MEM_INITIAL_BUCKETS, sizeof *t->b);
    t->mask = MEM_INITIAL_BUCKETS - 1;
    t->n = 0;
    return t->b ? SESS_OK : SESS_ENOMEM;
}

/* Double the buckets when the load passes 1.  A failed allocation keeps
 * the old table: chains get longer, nothing breaks. */
static void table_grow(struct mem_table *t, enum mem_kind kind)
{
    if (t->n <= t->mask + 1 || t->mask > SIZE_MAX / 4)
        return;
    size_t nb = (t->mask + 1) * 2;
    void **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        void *el = t->b[i];
        while (el) {
            void **link = link_of(kind, el);
            void *next = *link;
            size_t j = (size_t)hash_of(kind, el) & (nb - 1);
            *link = b[j];
            b[j] = el;
            el = next;
        }
    }
    free(t->b);
    t->b = b;
    t->mask = nb - 1;
}

static void table_add(struct mem_table *t, enum mem_kind kind, void *el)
{
    size_t i = (size_t)hash_of(kind, el) & t->mask;
    *link_of(kind, el) = t->b[i];
    t->b[i] = el;
    t->n++;
    table_grow(t, kind);
}

static void table_del(struct mem_table *t, enum mem_kind kind, void *el)
{
    void **p = &t->b[(size_t)hash_of(kind, el) & t->mask];
    while (*p) {
        if (*p == el) {
            *p = *link_of(kind, el);
            *link_of(kind, el) = NULL;
            t->n--;
            return;
        }
        p = link_of(kind, *p);
    }
}

static struct mem_entry *find_key(const struct mem_store *st,
                                  const uint8_t *key)
{
    uint64_t h = siphash(st, key, SESS_STORE_KEY_BYTES);
    struct mem_entry *e = st->keys.b[(size_t)h & st->keys.mask];
    for (; e; e = e->knext)
        if (e->khash == h && memcmp(e->key, key, SESS_STORE_KEY_BYTES) == 0)
            return e;
    return NULL;
}

static struct mem_entry *find_handle(const struct mem_store *st,
                                     const uint8_t *handle)
{
    uint64_t h = siphash(st, handle, SESS_STORE_HANDLE_BYTES);
    struct mem_entry *e = st->handles.b[(size_t)h & st->handles.mask];
    for (; e; e = e->hnext)
        if (e->hhash == h &&
            memcmp(e->handle, handle, SESS_STORE_HANDLE_BYTES) == 0)
            return e;
    return NULL;
}

static struct mem_user *find_user(const struct mem_store *st,
                                  const uint8_t *user)
{
    uint64_t h = siphash(st, user, SESS_STORE_USER_BYTES);
    struct mem_user *u = st->users.b[(size_t)h & st->users.mask];
    for (; u; u = u->next)
        if (u->hash == h && memcmp(u->user, user, SESS_STORE_USER_BYTES) == 0)
            return u;
    return NULL;
}

/* ---- entries ------------------------------------------------------------ */

static void entry_free(struct mem_entry *e)
{
    if (!e)
        return;
    if (e->blob) {
        sess__wipe(e->blob, e->blob_len);
        free(e->blob);
    }
    free(e);
}

/* A detached entry holding a copy of "src" (key from "key"), or NULL. */
static struct mem_entry *entry_new(const struct mem_store *st,
                                   const uint8_t *key, const sess_entry *src)
{
    struct mem_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (src->blob_len) {
        e->blob = malloc(src->blob_len);
        if (!e->blob) {
            free(e);
            return NULL;
        }
        memcpy(e->blob, src->blob, src->blob_len);
    }
    e->blob_len = src->blob_len;
    memcpy(e->key, key, SESS_STORE_KEY_BYTES);
    memcpy(e->handle, src->handle, SESS_STORE_HANDLE_BYTES);
    memcpy(e->user, src->user, SESS_STORE_USER_BYTES);
    e->created_at = src->created_at;
    e->expires_at = src->expires_at;
    e->flags = src->flags;
    e->khash = siphash(st, e->key, SESS_STORE_KEY_BYTES);
    e->hhash = siphash(st, e->handle, SESS_STORE_HANDLE_BYTES);
    return e;
}

/* Remove "e" from the handle table and its user list, freeing the user
 * node when its list empties.  No-op for unindexed entries. */
static void unindex(struct mem_store *st, struct mem_entry *e)
{
    struct mem_user *u = e->u;
    if (!u)
        return;
    table_del(&st->handles, KIND_HANDLE, e);
    if (e->uprev)
        e->uprev->unext = e->unext;
    else
        u->head = e->unext;
    if (e->unext)
        e->unext->uprev = e->uprev;
    e->uprev = e->unext = NULL;
    e->u = NULL;
    if (!u->head) {
        table_del(&st->users, KIND_USER, u);
        free(u);
    }
}

/* Index "e" under its handle and user.  "spare" is a preallocated user
 * node, consumed (set to NULL) when the user has none yet, so that this
 * step cannot fail. */
static void index_entry(struct mem_store *st, struct mem_entry *e,
                        struct mem_user **spare)
{
    struct mem_user *u = find_user(st, e->user);
    if (!u) {
        u = *spare;
        *spare = NULL;
        memset(u, 0, sizeof *u);
        memcpy(u->user, e->user, SESS_STORE_USER_BYTES);
        u->hash = siphash(st, u->user, SESS_STORE_USER_BYTES);
        table_add(&st->users, KIND_USER, u);
    }
    e->u = u;
    e->uprev = NULL;
    e->unext = u->head;
    if (u->head)
        u->head->uprev = e;
    u->head = e;
    table_add(&st->handles, KIND_HANDLE, e);
}

/* Delete "e" from every table and free it. */
static void drop(struct mem_store *st, struct mem_entry *e)
{
    unindex(st, e);
    table_del(&st->keys, KIND_KEY, e);
    entry_free(e);
}

static bool blob_equal(const struct mem_entry *e, const uint8_t *expect,
                       size_t expect_len)
{
    return e->blob_len == expect_len &&
           (expect_len == 0 || memcmp(e->blob, expect, expect_len) == 0);
}

static void export_entry(const struct mem_entry *m, sess_entry *e)
{
    memcpy(e->key, m->key, SESS_STORE_KEY_BYTES);
    memcpy(e->handle, m->handle, SESS_STORE_HANDLE_BYTES);
    memcpy(e->user, m->user, SESS_STORE_USER_BYTES);
    e->created_at = m->created_at;
    e->expires_at = m->expires_at;
    e->flags = m->flags;
}

/* ---- methods ------------------------------------------------------------ */

static void mem_close(sess_store *base)
{
    struct mem_store *st = (struct mem_store *)base;
    if (!st)
        return;
    if (st->keys.b) {
        for (size_t i = 0; i <= st->keys.mask; i++) {
            struct mem_entry *e = st->keys.b[i];
            while (e) {
                struct mem_entry *next = e->knext;
                entry_free(e);
                e = next;
            }
        }
    }
    if (st->users.b) {
        for (size_t i = 0; i <= st->users.mask; i++) {
            struct mem_user *u = st->users.b[i];
            while (u) {
                struct mem_user *next = u->next;
                free(u);
                u = next;
            }
        }
    }
    free(st->keys.b);
    free(st->handles.b);
    free(st->users.b);
    pthread_rwlock_destroy(&st->lock);
    sess__wipe(&st->k0, sizeof st->k0);
    sess__wipe(&st->k1, sizeof st->k1);
    free(st);
}

static int mem_open(const char *url, const sess_store_options *opt,
                    sess_store **out, sess_err *err)
{
    (void)opt; /* durability and map size mean nothing in memory */
    struct mem_store *st = NULL;
    pthread_rwlockattr_t attr;
    uint8_t seed[16];
    int rc;

    *out = NULL;
    const char *rest = sess__store_url_rest(url, "memory");
    if (!rest)
        return sess__fail(err, SESS_EINVAL, "memory store: URL must be \"memory:\"");
    if (*rest)
        return sess__fail(err, SESS_EINVAL,
                          "memory store: URL takes no path (use \"memory:\")");

    st = calloc(1, sizeof *st);
    if (!st)
        return sess__fail(err, SESS_ENOMEM, "memory store: out of memory");
    st->base.methods = &sess__store_memory_methods;

    if (pthread_rwlockattr_init(&attr) != 0) {
        free(st);
        return sess__fail(err, SESS_ENOMEM, "memory store: rwlock attributes");
    }
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(&st->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        free(st);
        return sess__fail(err, SESS_ENOMEM, "memory store: rwlock init");
    }

    rc = sess__random(seed, sizeof seed);
    if (rc != SESS_OK) {
        sess__fail(err, rc, "memory store: no randomness for the hash key");
        goto cleanup;
    }
    st->k0 = sess__get_u64(seed);
    st->k1 = sess__get_u64(seed + 8);
    sess__wipe(seed, sizeof seed);

    if (table_init(&st->keys) != SESS_OK ||
        table_init(&st->handles) != SESS_OK ||
        table_init(&st->users) != SESS_OK) {
        rc = sess__fail(err, SESS_ENOMEM, "memory store: out of memory");
        goto cleanup;
    }
    *out = &st->base;
    return SESS_OK;

cleanup:
    mem_close(&st->base);
    return rc;
}

static int mem_get(sess_store *base, const uint8_t *key, uint64_t now,
                   sess_entry *e, sess_store_buf *buf, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    int rc = SESS_NOTFOUND;

    if (!key || !e || !buf)
        return sess__fail(err, SESS_EINVAL, "memory get: missing argument");
    pthread_rwlock_rdlock(&st->lock);
    struct mem_entry *m = find_key(st, key);
    if (m && sess__store_live(m->expires_at, now)) {
        if (sess_store_buf_reserve(buf, m->blob_len) != SESS_OK) {
            rc = sess__fail(err, SESS_ENOMEM, "memory get: out of memory");
        } else {
            if (m->blob_len)
                memcpy(buf->data, m->blob, m->blob_len);
            buf->len = m->blob_len;
            export_entry(m, e);
            e->blob = buf->data;
            e->blob_len = m->blob_len;
            rc = SESS_OK;
        }
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

static int mem_insert(sess_store *base, const sess_entry *e,
                      const sess_store_limit *lim, uint64_t now,
                      sess_store_evicted *evicted, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *ne = NULL;
    struct mem_user *spare = NULL;
    sess__evict_cand *cands = NULL;
    size_t ncands = 0, nevict = 0;
    int rc = sess__store_check_entry(e, "insert", err);

    if (evicted)
        evicted->n = 0;
    if (rc != SESS_OK)
        return rc;
    bool indexed = sess__store_indexed(e->flags);

    pthread_rwlock_wrlock(&st->lock);

    /* An expired entry under the key or handle is absent: replaced below. */
    struct mem_entry *old = find_key(st, e->key);
    if (old && sess__store_live(old->expires_at, now)) {
        rc = sess__fail(err, SESS_EXISTS, "memory insert: key exists");
        goto cleanup;
    }
    struct mem_entry *oldh = indexed ? find_handle(st, e->handle) : NULL;
    if (oldh == old)
        oldh = NULL;
    if (oldh && sess__store_live(oldh->expires_at, now)) {
        rc = sess__fail(err, SESS_EXISTS, "memory insert: handle exists");
        goto cleanup;
    }

    if (indexed && lim && lim->max_per_user > 0) {
        struct mem_user *u = find_user(st, e->user);
        size_t live = 0;
        for (struct mem_entry *m = u ? u->head : NULL; m; m = m->unext)
            if (sess__store_live(m->expires_at, now))
                live++;
        if (live >= lim->max_per_user) {
            if (lim->policy == SESS_LIMIT_DENY) {
                rc = sess__fail(err, SESS_LIMIT,
                                "memory insert: per-user limit reached");
                goto cleanup;
            }
            cands = malloc(live * sizeof *cands);
            if (!cands) {
                rc = sess__fail(err, SESS_ENOMEM, "memory insert: out of memory");
                goto cleanup;
            }
            for (struct mem_entry *m = u->head; m; m = m->unext) {
                if (!sess__store_live(m->expires_at, now))
                    continue;
                cands[ncands].created_at = m->created_at;
                memcpy(cands[ncands].key, m->key, SESS_STORE_KEY_BYTES);
                memcpy(cands[ncands].handle, m->handle,
                       SESS_STORE_HANDLE_BYTES);
                cands[ncands].ref = m;
                ncands++;
            }
            sess__store_sort_cands(cands, ncands);
            nevict = live - lim->max_per_user + 1;
        }
    }

    /* Allocate everything before the first change. */
    ne = entry_new(st, e->key, e);
    if (!ne || (indexed && !(spare = malloc(sizeof *spare)))) {
        rc = sess__fail(err, SESS_ENOMEM, "memory insert: out of memory");
        goto cleanup;
    }

    if (old)
        drop(st, old);
    if (oldh)
        drop(st, oldh);
    for (size_t i = 0; i < nevict; i++) {
        sess__store_report_evicted(evicted, cands[i].handle);
        drop(st, cands[i].ref);
    }
    table_add(&st->keys, KIND_KEY, ne);
    if (indexed)
        index_entry(st, ne, &spare);
    ne = NULL;
    rc = SESS_OK;

cleanup:
    pthread_rwlock_unlock(&st->lock);
    entry_free(ne);
    free(spare);
    free(cands);
    return rc;
}

static int mem_update(sess_store *base, const sess_entry *e,
                      const uint8_t *expect, size_t expect_len, uint64_t now,
                      sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    uint8_t *nb = NULL;
    size_t nb_len = 0;
    int rc = sess__store_check_entry(e, "update", err);

    if (rc != SESS_OK)
        return rc;
    if (expect_len && !expect)
        return sess__fail(err, SESS_EINVAL, "memory update: no expected record");
    if (e->blob_len && !(nb = malloc(e->blob_len)))
        return sess__fail(err, SESS_ENOMEM, "memory update: out of memory");
    if (nb) {
        memcpy(nb, e->blob, e->blob_len);
        nb_len = e->blob_len;
    }

    pthread_rwlock_wrlock(&st->lock);
    struct mem_entry *m = find_key(st, e->key);
    if (!m || !sess__store_live(m->expires_at, now)) {
        rc = SESS_NOTFOUND;
        goto cleanup;
    }
    if (!blob_equal(m, expect, expect_len)) {
        rc = sess__fail(err, SESS_CONFLICT, "memory update: record changed");
        goto cleanup;
    }
    /* Swap the record and its expiry; key, handle, user, created_at and
     * flags stay: the indexes must not move under an update. */
    uint8_t *ob = m->blob;
    size_t olen = m->blob_len;
    m->blob = nb;
    m->blob_len = nb_len;
    m->expires_at = e->expires_at;
    nb = ob; /* the old record is freed below */
    nb_len = olen;
    rc = SESS_OK;

cleanup:
    pthread_rwlock_unlock(&st->lock);
    if (nb) {
        sess__wipe(nb, nb_len);
        free(nb);
    }
    return rc;
}

static int mem_replace(sess_store *base, const uint8_t *old_key,
                       const uint8_t *expect, size_t expect_len,
                       const sess_entry *old_tomb, const sess_entry *next,
                       uint64_t now, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_entry *ne = NULL, *tomb = NULL;
    struct mem_user *spare = NULL;
    int rc;

    if ((rc = sess__store_check_replace(old_key, expect, expect_len, old_tomb, next,
                                        "memory", err)) != SESS_OK)
        return rc;
    bool indexed = sess__store_indexed(next->flags);

    /* Allocate before locking so that nothing can fail halfway. */
    ne = entry_new(st, next->key, next);
    if (old_tomb)
        tomb = entry_new(st, old_key, old_tomb);
    if (!ne || (old_tomb && !tomb) ||
        (indexed && !(spare = malloc(sizeof *spare)))) {
        entry_free(ne);
        entry_free(tomb);
        free(spare);
        return sess__fail(err, SESS_ENOMEM, "memory replace: out of memory");
    }
    if (tomb)
        tomb->flags |= SESS_ENTRY_UNINDEXED;

    pthread_rwlock_wrlock(&st->lock);
    struct mem_entry *old = find_key(st, old_key);
    if (!old || !sess__store_live(old->expires_at, now)) {
        rc = SESS_NOTFOUND;
        goto cleanup;
    }
    if (!blob_equal(old, expect, expect_len)) {
        rc = sess__fail(err, SESS_CONFLICT, "memory replace: record changed");
        goto cleanup;
    }
    struct mem_entry *taken = find_key(st, next->key);
    if (taken && sess__store_live(taken->expires_at, now)) {
        rc = sess__fail(err, SESS_EXISTS, "memory replace: new key exists");
        goto cleanup;
    }
    struct mem_entry *takenh = indexed ? find_handle(st, next->handle) : NULL;
    if (takenh == old || takenh == taken)
        takenh = NULL;
    if (takenh && sess__store_live(takenh->expires_at, now)) {
        rc = sess__fail(err, SESS_EXISTS,
                        "memory replace: handle belongs to another session");
        goto cleanup;
    }

    if (taken)
        drop(st, taken);
    if (takenh)
        drop(st, takenh);
    drop(st, old);
    if (tomb)
        table_add(&st->keys, KIND_KEY, tomb);
    tomb = NULL;
    table_add(&st->keys, KIND_KEY, ne);
    if (indexed)
        index_entry(st, ne, &spare);
    ne = NULL;
    rc = SESS_OK;

cleanup:
    pthread_rwlock_unlock(&st->lock);
    entry_free(ne);
    entry_free(tomb);
    free(spare);
    return rc;
}

static int mem_remove(sess_store *base, const uint8_t *key,
                      uint8_t *handle_out, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    int rc = SESS_NOTFOUND;

    if (!key)
        return sess__fail(err, SESS_EINVAL, "memory remove: no key");
    pthread_rwlock_wrlock(&st->lock);
    struct mem_entry *m = find_key(st, key);
    if (m) {
        if (handle_out)
            memcpy(handle_out, m->handle, SESS_STORE_HANDLE_BYTES);
        drop(st, m);
        rc = SESS_OK;
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

static int mem_find_handle(sess_store *base, const uint8_t *handle,
                           uint64_t now, uint8_t *key_out, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    int rc = SESS_NOTFOUND;

    if (!handle || !key_out)
        return sess__fail(err, SESS_EINVAL, "memory find_handle: missing argument");
    pthread_rwlock_rdlock(&st->lock);
    struct mem_entry *m = find_handle(st, handle);
    if (m && sess__store_live(m->expires_at, now)) {
        memcpy(key_out, m->key, SESS_STORE_KEY_BYTES);
        rc = SESS_OK;
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

static int mem_list_user(sess_store *base, const uint8_t *user, uint64_t now,
                         sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    sess_entry *snap = NULL;
    uint8_t *blobs = NULL;
    size_t n = 0, total = 0;
    int rc = SESS_OK;

    if (!user || !fn)
        return sess__fail(err, SESS_EINVAL, "memory list_user: missing argument");

    /* Snapshot under the lock, call back without it. */
    pthread_rwlock_rdlock(&st->lock);
    struct mem_user *u = find_user(st, user);
    for (struct mem_entry *m = u ? u->head : NULL; m; m = m->unext) {
        if (sess__store_live(m->expires_at, now)) {
            n++;
            total += m->blob_len;
        }
    }
    if (n) {
        snap = calloc(n, sizeof *snap);
        blobs = total ? malloc(total) : NULL;
        if (!snap || (total && !blobs)) {
            pthread_rwlock_unlock(&st->lock);
            rc = sess__fail(err, SESS_ENOMEM, "memory list_user: out of memory");
            goto cleanup;
        }
        size_t i = 0, off = 0;
        for (struct mem_entry *m = u->head; m; m = m->unext) {
            if (!sess__store_live(m->expires_at, now))
                continue;
            export_entry(m, &snap[i]);
            snap[i].blob = blobs ? blobs + off : NULL;
            snap[i].blob_len = m->blob_len;
            if (m->blob_len)
                memcpy(blobs + off, m->blob, m->blob_len);
            off += m->blob_len;
            i++;
        }
    }
    pthread_rwlock_unlock(&st->lock);

    for (size_t i = 0; i < n; i++)
        if (fn(ctx, &snap[i]) != 0)
            break;

cleanup:
    if (blobs) {
        sess__wipe(blobs, total);
        free(blobs);
    }
    free(snap);
    return rc;
}

static int mem_remove_user(sess_store *base, const uint8_t *user,
                           const uint8_t *except, uint64_t now, size_t *n,
                           sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    size_t deleted = 0;

    if (!user)
        return sess__fail(err, SESS_EINVAL, "memory remove_user: no user");
    pthread_rwlock_wrlock(&st->lock);
    struct mem_user *u = find_user(st, user);
    struct mem_entry *m = u ? u->head : NULL;
    while (m) {
        /* The last drop may free "u"; only "next" is read after it. */
        struct mem_entry *next = m->unext;
        if (!except || memcmp(m->handle, except, SESS_STORE_HANDLE_BYTES) != 0) {
            if (sess__store_live(m->expires_at, now))
                deleted++;
            drop(st, m);
        }
        m = next;
    }
    pthread_rwlock_unlock(&st->lock);
    if (n)
        *n = deleted;
    return SESS_OK;
}

/* A full scan: the memory store keeps no expiry order.  Fine for its
 * intended sizes; the lmdb store walks an expiry index instead. */
static int mem_purge_each(sess_store *base, uint64_t now, size_t max,
                          size_t *removed, sess_store_purge_fn fn, void *fn_ctx,
                          sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    size_t done = 0;

    (void)err;
    pthread_rwlock_wrlock(&st->lock);
    for (size_t i = 0; i <= st->keys.mask && done < max; i++) {
        void **p = &st->keys.b[i];
        while (*p && done < max) {
            struct mem_entry *m = *p;
            if (!sess__store_live(m->expires_at, now)) {
                if (fn) {
                    sess_entry e = {.created_at = m->created_at,
                                    .expires_at = m->expires_at,
                                    .flags = m->flags, .blob = m->blob,
                                    .blob_len = m->blob_len};
                    memcpy(e.key, m->key, sizeof e.key);
                    memcpy(e.handle, m->handle, sizeof e.handle);
                    memcpy(e.user, m->user, sizeof e.user);
                    fn(fn_ctx, &e);
                }
                drop(st, m); /* *p now holds the successor */
                done++;
            } else {
                p = &m->knext;
            }
        }
    }
    pthread_rwlock_unlock(&st->lock);
    if (removed)
        *removed = done;
    return SESS_OK;
}

static int mem_purge(sess_store *base, uint64_t now, size_t max,
                     size_t *removed, sess_err *err)
{
    return mem_purge_each(base, now, max, removed, NULL, NULL, err);
}

static int mem_ping(sess_store *base, sess_err *err)
{
    (void)base;
    (void)err;
    return SESS_OK;
}

/* A full walk under the read lock: fine for a metrics scrape. */
static int mem_count(sess_store *base, uint64_t now, uint64_t *n, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    uint64_t live = 0;
    if (!n)
        return sess__fail(err, SESS_EINVAL, "memory count: no output");
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; i <= st->keys.mask; i++)
        for (struct mem_entry *m = st->keys.b[i]; m; m = m->knext)
            if (m->u && sess__store_live(m->expires_at, now))
                live++;
    *n = live;
    pthread_rwlock_unlock(&st->lock);
    return SESS_OK;
}

/* Keys in memcmp order: the memory store keeps no order, so each batch
 * takes the "max" smallest live keys above the cursor's last one, a walk
 * of the table plus a sort of what is above (fine for its sizes). */
static int key_order(const void *a, const void *b)
{
    const struct mem_entry *x = *(const struct mem_entry *const *)a;
    const struct mem_entry *y = *(const struct mem_entry *const *)b;
    return memcmp(x->key, y->key, SESS_STORE_KEY_BYTES);
}

static int mem_scan(sess_store *base, sess_store_cursor *cur, uint64_t now,
                    size_t max, sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    sess__scan_batch b = {0};
    struct mem_entry **above = NULL;
    size_t n = 0;
    int rc = SESS_OK;

    if (!cur || !fn)
        return sess__fail(err, SESS_EINVAL, "memory scan: missing argument");
    if (cur->done)
        return SESS_OK;
    if (cur->len != 0 && cur->len != SESS_STORE_KEY_BYTES)
        return sess__fail(err, SESS_EINVAL, "memory scan: cursor is not this store's");
    max = sess__scan_max(max);
    pthread_rwlock_rdlock(&st->lock);
    above = malloc((st->keys.n ? st->keys.n : 1) * sizeof *above);
    if (!above) {
        pthread_rwlock_unlock(&st->lock);
        return sess__fail(err, SESS_ENOMEM, "memory scan: out of memory");
    }
    for (size_t i = 0; i <= st->keys.mask; i++)
        for (struct mem_entry *m = st->keys.b[i]; m; m = m->knext)
            if (sess__store_live(m->expires_at, now) &&
                (cur->len == 0 || memcmp(m->key, cur->pos, SESS_STORE_KEY_BYTES) > 0))
                above[n++] = m;
    qsort(above, n, sizeof *above, key_order);
    size_t take = n < max ? n : max;
    for (size_t i = 0; i < take && rc == SESS_OK; i++) {
        sess_entry e;
        export_entry(above[i], &e);
        e.blob = above[i]->blob;
        e.blob_len = above[i]->blob_len;
        if (sess__scan_add(&b, &e) != SESS_OK)
            rc = sess__fail(err, SESS_ENOMEM, "memory scan: out of memory");
    }
    if (rc == SESS_OK) {
        if (take)
            memcpy(cur->pos, above[take - 1]->key, SESS_STORE_KEY_BYTES);
        cur->len = SESS_STORE_KEY_BYTES;
        cur->done = take == n;
    }
    pthread_rwlock_unlock(&st->lock);
    free(above);
    if (rc == SESS_OK)
        sess__scan_emit(&b, fn, ctx);
    sess__scan_free(&b);
    return rc;
}

const sess_store_methods sess__store_memory_methods = {
    .version = 4,
    .scheme = "memory",
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .insert = mem_insert,
    .update = mem_update,
    .replace = mem_replace,
    .remove = mem_remove,
    .find_handle = mem_find_handle,
    .list_user = mem_list_user,
    .remove_user = mem_remove_user,
    .purge = mem_purge,
    .ping = mem_ping,
    .count = mem_count,
    .purge_each = mem_purge_each,
    .scan = mem_scan,
};
