/*
 * store_lmdb.c - the embedded durable store ("lmdb:PATH"), the default.
 *
 * PATH is a directory (created 0700 when missing) holding LMDB's data.mdb
 * and lock.mdb (0600; with group_access 0750 and 0660, so the nginx
 * module's workers in that group can open the same environment: they
 * read and write data.mdb and take reader slots in lock.mdb).  Four named
 * databases:
 *   sessions  key32                     -> header || blob
 *             header = handle16 | user32 | created_at u64le |
 *                      expires_at u64le | flags u32le    (HDR_LEN bytes)
 *   handles   handle16                  -> key32    (indexed entries)
 *   users     user32 || key32           -> ""       (indexed entries)
 *   expiry    expires_at u64be || key32 -> ""       (every entry)
 * Invariant: after every committed transaction, an entry's handles/users
 * rows exist exactly when it is indexed, and its expiry row carries its
 * current expires_at, so purge walks the expiry database oldest first.
 * Every mutation runs in one write transaction, which LMDB serialises:
 * that is what makes insert-with-limit, replace and remove_user atomic
 * and race-free.  Commits use MDB_NOSYNC|MDB_NOMETASYNC for
 * SESS_DURABILITY_PROCESS (written to the OS page cache, so they survive
 * kill -9 of the process) and are synchronous for SESS_DURABILITY_FSYNC.
 *
 * Read transactions (get, find_handle, count, ping) are cached per thread
 * and per store: a thread's first read begins a read-only transaction
 * (MDB_NOTLS ties its reader slot to the txn, not the thread), so the hot
 * path takes no lock and allocates nothing.  Between reads the slot keeps
 * its snapshot ("held"), and the next read uses it again as long as no
 * transaction has committed since (the environment's last transaction id
 * is still the snapshot's): exactly as fresh as renewing, without the
 * renew, the reset and the named database's lookup that a renewed
 * transaction repeats (about a tenth of a validate).  Otherwise the read
 * resets and renews it.  A held snapshot that has gone stale pins the
 * pages later commits free, so it must not outlive them for long: every
 * write transaction of this process first resets the stale held
 * snapshots of its store, and the store's reaper thread does the same
 * every REAP_MS for the commits of other processes.  A slot's "state"
 * hands the transaction over: IDLE (reset), HELD (a snapshot, owner
 * away), BUSY (owner reading), REAPING (another thread resetting it);
 * only the owner leaves IDLE or HELD for BUSY, others take only HELD, for
 * REAPING, under slots_lock.  Slots are reached through one process-wide pthread
 * key whose value is the thread's list of slots; the key's destructor
 * aborts them when a thread ends.  Each store also lists its slots so
 * close can abort every reader before mdb_env_close.  slots_lock (global)
 * guards the store lists and a slot's "st"/"txn" whenever two threads may
 * touch them (thread exit, close); the owning thread otherwise uses its
 * slot alone.  A slot a closed store leaves in another live thread is
 * marked dead (st = NULL, txn aborted) and freed when that thread ends.
 * Slots match stores by a unique id, never by address, so a new store at
 * a recycled address never inherits a dead slot.  list_user runs its own
 * read transaction, so its callback may call back into the store.
 *
 * With durability = process, writes go straight into the map
 * (MDB_WRITEMAP) where the file system can allocate blocks ahead
 * (fallocate): a commit then costs no pwrite per dirty page, which was
 * half of a create.  LMDB grows the file to the map
 * size as a sparse file, and a page written into a hole the disk cannot
 * back would kill the process (SIGBUS) instead of failing the write, so
 * before every write transaction ensure_room keeps blocks allocated
 * RESERVE_AHEAD past the last used page, and a write it cannot back fails
 * with SESS_EFULL, the stored state unchanged (removals keep working
 * longer than additions).  Where fallocate is not
 * supported the store writes with pwrite as LMDB does by default.
 *
 * Damage.  Before LMDB maps data.mdb, open checks it (preflight): a file
 * shorter than the last page its meta page names (read through a
 * read-only environment, which maps nothing it reads) would be SIGBUS on
 * the first read of a missing page, or grown back with zero pages by
 * MDB_WRITEMAP; a 0-byte file beside the STORE_MARKER (or lock.mdb) is a
 * lost store, not a new one; and a read probe (first and last row of each
 * database) finds damaged trees.  Such a store is refused unless the
 * caller asks for SESS_DAMAGE_RESET, which renames data.mdb aside.  At run
 * time a read that fails never keeps its transaction (LMDB leaves one that
 * met a damaged page in error, so every later read on that snapshot would
 * fail too): the slot begins a fresh one next time.  The failure is
 * remembered (read_fail_ms) until a read succeeds, and ping reports it.
 * A damaged page is SESS_EIO (the store cannot read), not SESS_ECORRUPT
 * (which the session layer reads as one damaged record).
 *
 * Errors name the operation, never keys or bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "sess/store.h"
#include "store_internal.h"
#include "util.h"

#define HDR_HANDLE 0
#define HDR_USER (HDR_HANDLE + SESS_STORE_HANDLE_BYTES)
#define HDR_CREATED (HDR_USER + SESS_STORE_USER_BYTES)
#define HDR_EXPIRES (HDR_CREATED + 8)
#define HDR_FLAGS (HDR_EXPIRES + 8)
#define HDR_LEN (HDR_FLAGS + 4)

#define USERS_KEY_LEN (SESS_STORE_USER_BYTES + SESS_STORE_KEY_BYTES)
#define EXPIRY_KEY_LEN (8 + SESS_STORE_KEY_BYTES)

#define LMDB_DEFAULT_MAP_SIZE (4ULL << 30) /* 4 GiB, sparse */
#define LMDB_MAX_READERS 1024              /* threads x open stores */
/* Disk blocks kept allocated past the last used page (MDB_WRITEMAP).  A
 * transaction that adds (insert, update, replace) is refused unless half
 * of that is backed; one that only removes (remove, remove_user, purge),
 * unless a quarter is, so that on a full disk logouts and the purge still
 * work after creates are refused.  One operation adds far fewer pages
 * than that (purge works in bounded transactions). */
#define RESERVE_AHEAD ((uint64_t)64 << 20)
#define ROOM_ADD (RESERVE_AHEAD / 2)
#define ROOM_REMOVE (RESERVE_AHEAD / 4)
/* MDB_WRITEMAP only where the disk has this much free at open: on a
 * smaller one the reserve would crowd out the data. */
#define WRITEMAP_MIN_FREE (4 * RESERVE_AHEAD)
/* Expiry rows one purge transaction visits (about three new pages each
 * at most, well inside RESERVE_AHEAD / 2). */
#define PURGE_TXN_ROWS 1024u
/* How often the reaper resets held snapshots that commits of other
 * processes have made stale (this process's writes do it themselves). */
#define REAP_MS 50
/* How long a failed read keeps ping failing when no read succeeds after
 * it (a node taken out of rotation gets no traffic to clear it). */
#define READ_FAIL_HOLD_MS 10000u
/* Beside data.mdb once a store has been opened: an empty data.mdb next to
 * it is a lost store, not a new one. */
#define STORE_MARKER "sessiond-store"

enum { SLOT_IDLE, SLOT_HELD, SLOT_BUSY, SLOT_REAPING };

struct lmdb_store;

/* One thread's cached read transaction on one store. */
struct rslot {
    uint64_t store_id;          /* immutable */
    struct lmdb_store *st;      /* NULL once the store closed */
    MDB_txn *txn;               /* NULL when dead */
    _Atomic int state;          /* SLOT_*: see the top of the file */
    bool fresh;                 /* owner only: a read failed on it, so the
                                 * next read begins a new transaction */
    struct rslot *tnext;        /* the owning thread's list */
    struct rslot *sprev, *snext; /* the store's list, under slots_lock */
};

struct lmdb_store {
    sess_store base;            /* first: sess_store rule */
    MDB_env *env;
    MDB_dbi sessions, handles, users, expiry;
    MDB_dbi dbis[4];            /* the four, for the read probe */
    uint64_t id;
    struct rslot *slots;        /* under slots_lock */

    /* The reaper (see the top of the file); without it, reads never hold. */
    bool reaper_on, reaper_stop;
    pthread_t reaper;
    pthread_mutex_t reaper_lock;
    pthread_cond_t reaper_wake;

    /* Monotonic ms of the last read that failed with a store error (a
     * damaged page, I/O), 0 when a read has succeeded since: ping fails
     * while it is recent (see lmdb_ping). */
    atomic_uint_fast64_t read_fail_ms;

    bool writemap;              /* see the top of the file */
    int fd;                     /* LMDB's data file */
    uint64_t psize, map_size;
    /* MDB_WRITEMAP only */
    atomic_uint_fast64_t reserved; /* bytes from 0 backed by disk blocks */
    pthread_mutex_t grow_lock;
};

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t slots_key;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
static int slots_key_rc;
static atomic_uint_fast64_t next_store_id = 1;

/* ---- errors ------------------------------------------------------------- */

static int lmdb_fail(sess_err *err, int rc, const char *op)
{
    switch (rc) {
    case MDB_MAP_FULL:
        return sess__fail(err, SESS_EFULL,
                          "lmdb %s: map full (raise the store's map_size)", op);
    case MDB_READERS_FULL:
        return sess__fail(err, SESS_EUNAVAILABLE,
                          "lmdb %s: reader table full", op);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        /* A damaged page: the store cannot read, like an I/O error (503,
         * fail closed), not a damaged record (which reads as absent). */
        return sess__fail(err, SESS_EIO, "lmdb %s: damaged store file (%s)", op,
                          mdb_strerror(rc));
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return sess__fail(err, SESS_ECORRUPT, "lmdb %s: %s", op,
                          mdb_strerror(rc));
    case ENOMEM:
        return sess__fail(err, SESS_ENOMEM, "lmdb %s: out of memory", op);
    case ENOSPC:
    case EDQUOT:
        return sess__fail(err, SESS_EFULL, "lmdb %s: no space left on the store's disk", op);
    default:
        return sess__fail(err, SESS_EIO, "lmdb %s: %s", op, mdb_strerror(rc));
    }
}

/* ---- per-thread read transactions ----------------------------------------- */

static void slots_thread_exit(void *head)
{
    pthread_mutex_lock(&slots_lock);
    struct rslot *s = head;
    while (s) {
        struct rslot *next = s->tnext;
        if (s->st) {
            if (s->sprev)
                s->sprev->snext = s->snext;
            else
                s->st->slots = s->snext;
            if (s->snext)
                s->snext->sprev = s->sprev;
        }
        if (s->txn)
            mdb_txn_abort(s->txn);
        free(s);
        s = next;
    }
    pthread_mutex_unlock(&slots_lock);
}

static void slots_init(void)
{
    slots_key_rc = pthread_key_create(&slots_key, slots_thread_exit);
}

/* Whether "txn" still sees the last committed transaction. */
static bool snapshot_current(struct lmdb_store *st, MDB_txn *txn)
{
    MDB_envinfo info;
    return mdb_env_info(st->env, &info) == 0 && info.me_last_txnid == mdb_txn_id(txn);
}

/* Take this thread's slot "s" for a read (BUSY).  True when its held
 * snapshot can be read as it is; false when the transaction is reset and
 * must be renewed. */
static bool slot_take(struct lmdb_store *st, struct rslot *s)
{
    for (;;) {
        int expect = SLOT_HELD;
        if (atomic_compare_exchange_strong(&s->state, &expect, SLOT_BUSY)) {
            if (snapshot_current(st, s->txn))
                return true;
            mdb_txn_reset(s->txn);
            return false;
        }
        if (expect == SLOT_IDLE) {
            atomic_store_explicit(&s->state, SLOT_BUSY, memory_order_relaxed);
            return false;
        }
        sched_yield(); /* REAPING: another thread is resetting it now */
    }
}

/* Reset the held snapshots of "st" that a commit has made stale, so they
 * pin no page.  Called before each write transaction and by the reaper. */
static void slots_reap(struct lmdb_store *st)
{
    MDB_envinfo info;
    if (mdb_env_info(st->env, &info) != 0)
        return;
    pthread_mutex_lock(&slots_lock);
    for (struct rslot *s = st->slots; s; s = s->snext) {
        int expect = SLOT_HELD;
        if (!atomic_compare_exchange_strong(&s->state, &expect, SLOT_REAPING))
            continue;
        if (mdb_txn_id(s->txn) != info.me_last_txnid) {
            mdb_txn_reset(s->txn);
            atomic_store(&s->state, SLOT_IDLE);
        } else {
            atomic_store(&s->state, SLOT_HELD);
        }
    }
    pthread_mutex_unlock(&slots_lock);
}

static void *reaper_main(void *arg)
{
    struct lmdb_store *st = arg;
    pthread_mutex_lock(&st->reaper_lock);
    while (!st->reaper_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += REAP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&st->reaper_wake, &st->reaper_lock, &until);
        if (st->reaper_stop)
            break;
        pthread_mutex_unlock(&st->reaper_lock);
        slots_reap(st);
        pthread_mutex_lock(&st->reaper_lock);
    }
    pthread_mutex_unlock(&st->reaper_lock);
    return NULL;
}

/* Start the reaper; without it reads reset their snapshot every time. */
static void reaper_start(struct lmdb_store *st)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&st->reaper_lock, NULL);
    if (pthread_condattr_init(&ca) != 0)
        return;
    bool ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
              pthread_cond_init(&st->reaper_wake, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok)
        return;
    if (pthread_create(&st->reaper, NULL, reaper_main, st) != 0) {
        pthread_cond_destroy(&st->reaper_wake);
        return;
    }
    st->reaper_on = true;
}

static void reaper_stop(struct lmdb_store *st)
{
    if (st->reaper_on) {
        pthread_mutex_lock(&st->reaper_lock);
        st->reaper_stop = true;
        pthread_cond_signal(&st->reaper_wake);
        pthread_mutex_unlock(&st->reaper_lock);
        pthread_join(st->reaper, NULL);
        pthread_cond_destroy(&st->reaper_wake);
        st->reaper_on = false;
    }
    pthread_mutex_destroy(&st->reaper_lock);
}

/* A live read transaction on "st" for this thread, in "*slot"; release it
 * with rtxn_release().  Allocates only on a thread's first read of a
 * store. */
static int rtxn_acquire(struct lmdb_store *st, struct rslot **slot, MDB_txn **txn,
                        sess_err *err)
{
    struct rslot *head = pthread_getspecific(slots_key);
    for (struct rslot *s = head; s; s = s->tnext) {
        if (s->store_id != st->id)
            continue;
        *slot = s;
        if (slot_take(st, s)) {
            *txn = s->txn;
            return SESS_OK;
        }
        int rc = s->fresh ? -1 : mdb_txn_renew(s->txn);
        if (rc == 0) {
            *txn = s->txn;
            return SESS_OK;
        }
        /* A handle that cannot be renewed, or that a failed read may have
         * left in error (LMDB marks a transaction that met a damaged page
         * MDB_TXN_ERROR, and every later read on it fails), gets a fresh
         * transaction. */
        MDB_txn *fresh = NULL;
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &fresh);
        if (rc != 0) {
            atomic_store(&s->state, SLOT_IDLE); /* still reset */
            return lmdb_fail(err, rc, "read transaction");
        }
        /* Swapped under the lock: close and thread exit read "txn". */
        pthread_mutex_lock(&slots_lock);
        mdb_txn_abort(s->txn);
        s->txn = fresh;
        pthread_mutex_unlock(&slots_lock);
        s->fresh = false;
        *txn = fresh;
        return SESS_OK;
    }

    struct rslot *s = calloc(1, sizeof *s);
    if (!s)
        return sess__fail(err, SESS_ENOMEM, "lmdb read transaction: out of memory");
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &s->txn);
    if (rc != 0) {
        free(s);
        return lmdb_fail(err, rc, "read transaction");
    }
    s->store_id = st->id;
    s->st = st;
    atomic_init(&s->state, SLOT_BUSY);
    s->tnext = head;
    if (pthread_setspecific(slots_key, s) != 0) {
        mdb_txn_abort(s->txn);
        free(s);
        return sess__fail(err, SESS_ENOMEM, "lmdb read transaction: thread slot");
    }
    pthread_mutex_lock(&slots_lock);
    s->snext = st->slots;
    if (st->slots)
        st->slots->sprev = s;
    st->slots = s;
    pthread_mutex_unlock(&slots_lock);
    *slot = s;
    *txn = s->txn;
    return SESS_OK;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + 1;
}

/* Whether "rc", the outcome of a read, says the store could not read (as
 * opposed to a normal outcome, or memory the caller ran out of). */
static bool read_failed(int rc)
{
    return rc < 0 && rc != SESS_ENOMEM && rc != SESS_EINVAL;
}

/* Done reading with outcome "rc": keep the snapshot for the next read (the
 * reaper and the writers reset it once stale), or reset it when there is
 * no reaper.  After a failed read the transaction is never kept: one
 * damaged page must not fail every later read of this thread's snapshot
 * (until a commit made it stale) while the other pages are intact. */
static void rtxn_release(struct lmdb_store *st, struct rslot *slot, int rc)
{
    if (read_failed(rc)) {
        atomic_store(&st->read_fail_ms, mono_ms());
        mdb_txn_reset(slot->txn);
        slot->fresh = true;
        atomic_store_explicit(&slot->state, SLOT_IDLE, memory_order_release);
        return;
    }
    if (atomic_load_explicit(&st->read_fail_ms, memory_order_relaxed))
        atomic_store_explicit(&st->read_fail_ms, 0, memory_order_relaxed);
    if (st->reaper_on) {
        atomic_store_explicit(&slot->state, SLOT_HELD, memory_order_release);
    } else {
        mdb_txn_reset(slot->txn);
        atomic_store_explicit(&slot->state, SLOT_IDLE, memory_order_release);
    }
}

/* Abort every cached reader of "st".  This thread's slot is freed now;
 * other threads' slots are marked dead and freed when those threads end. */
static void slots_close_store(struct lmdb_store *st)
{
    pthread_mutex_lock(&slots_lock);
    struct rslot **pp = NULL;
    struct rslot *head = pthread_getspecific(slots_key);
    for (pp = &head; *pp; pp = &(*pp)->tnext) {
        if ((*pp)->store_id == st->id) {
            struct rslot *mine = *pp;
            *pp = mine->tnext;
            if (mine->sprev)
                mine->sprev->snext = mine->snext;
            else
                st->slots = mine->snext;
            if (mine->snext)
                mine->snext->sprev = mine->sprev;
            mdb_txn_abort(mine->txn);
            free(mine);
            (void)pthread_setspecific(slots_key, head);
            break;
        }
    }
    for (struct rslot *s = st->slots; s; s = s->snext) {
        if (s->txn)
            mdb_txn_abort(s->txn);
        s->txn = NULL;
        s->st = NULL;
    }
    st->slots = NULL;
    pthread_mutex_unlock(&slots_lock);
}

/* ---- encoding ------------------------------------------------------------ */

static void expiry_key(uint8_t out[EXPIRY_KEY_LEN], uint64_t expires_at,
                       const uint8_t *key)
{
    sess__put_be64(out, expires_at);
    memcpy(out + 8, key, SESS_STORE_KEY_BYTES);
}

static void users_key(uint8_t out[USERS_KEY_LEN], const uint8_t *user,
                      const uint8_t *key)
{
    memcpy(out, user, SESS_STORE_USER_BYTES);
    memcpy(out + SESS_STORE_USER_BYTES, key, SESS_STORE_KEY_BYTES);
}

/* Decode a sessions value into "e" (blob points into the map: valid until
 * the transaction ends or writes to sessions).  SESS_ECORRUPT when short. */
static int decode(const uint8_t *key, const MDB_val *v, sess_entry *e,
                  sess_err *err)
{
    if (v->mv_size < HDR_LEN)
        return sess__fail(err, SESS_ECORRUPT, "lmdb: stored entry too short");
    const uint8_t *p = v->mv_data;
    memcpy(e->key, key, SESS_STORE_KEY_BYTES);
    memcpy(e->handle, p + HDR_HANDLE, SESS_STORE_HANDLE_BYTES);
    memcpy(e->user, p + HDR_USER, SESS_STORE_USER_BYTES);
    e->created_at = sess__get_u64(p + HDR_CREATED);
    e->expires_at = sess__get_u64(p + HDR_EXPIRES);
    e->flags = sess__get_u32(p + HDR_FLAGS);
    e->blob = p + HDR_LEN;
    e->blob_len = v->mv_size - HDR_LEN;
    return SESS_OK;
}

static void encode_header(uint8_t *p, const sess_entry *e, uint32_t flags)
{
    memcpy(p + HDR_HANDLE, e->handle, SESS_STORE_HANDLE_BYTES);
    memcpy(p + HDR_USER, e->user, SESS_STORE_USER_BYTES);
    sess__put_u64(p + HDR_CREATED, e->created_at);
    sess__put_u64(p + HDR_EXPIRES, e->expires_at);
    sess__put_u32(p + HDR_FLAGS, flags);
}

static bool blob_equal(const sess_entry *e, const uint8_t *expect,
                       size_t expect_len)
{
    return e->blob_len == expect_len &&
           (expect_len == 0 || memcmp(e->blob, expect, expect_len) == 0);
}

/* The order of LMDB's default comparison (memcmp, then length) computed a
 * word at a time for the 32-byte keys of "sessions": a validate makes some
 * fifteen comparisons, and the libc call showed in profiles.  The order is
 * the same, so tools that do not know this function (mdb_dump, mdb_stat)
 * still read the file correctly. */
static int key_cmp(const MDB_val *a, const MDB_val *b)
{
    if (a->mv_size == SESS_STORE_KEY_BYTES && b->mv_size == SESS_STORE_KEY_BYTES) {
        const uint8_t *x = a->mv_data, *y = b->mv_data;
        for (size_t i = 0; i < SESS_STORE_KEY_BYTES; i += 8) {
            uint64_t u = sess__get_be64(x + i), v = sess__get_be64(y + i);
            if (u != v)
                return u < v ? -1 : 1;
        }
        return 0;
    }
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int d = n ? memcmp(a->mv_data, b->mv_data, n) : 0;
    if (d)
        return d;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

/* ---- building blocks inside one transaction ------------------------------ */

/* The entry under "key" whatever its expiry: SESS_OK, SESS_NOTFOUND or an
 * error. */
static int load(struct lmdb_store *st, MDB_txn *txn, const uint8_t *key,
                sess_entry *e, const char *op, sess_err *err)
{
    MDB_val k = {SESS_STORE_KEY_BYTES, (void *)key}, v;
    int rc = mdb_get(txn, st->sessions, &k, &v);
    if (rc == MDB_NOTFOUND)
        return SESS_NOTFOUND;
    if (rc != 0)
        return lmdb_fail(err, rc, op);
    return decode(key, &v, e, err);
}

/* Delete a row that may be missing (an index row of a damaged entry must
 * not block the entry's removal). */
static int del_row(MDB_txn *txn, MDB_dbi dbi, void *key, size_t len,
                   const char *op, sess_err *err)
{
    MDB_val k = {len, key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_fail(err, rc, op);
    return SESS_OK;
}

/* Delete the entry "e" (as loaded) with its index and expiry rows.  "e"
 * is copied first: its blob pointer dies with the first write. */
static int drop(struct lmdb_store *st, MDB_txn *txn, const sess_entry *e,
                const char *op, sess_err *err)
{
    uint8_t key[SESS_STORE_KEY_BYTES], handle[SESS_STORE_HANDLE_BYTES];
    uint8_t ukey[USERS_KEY_LEN], xkey[EXPIRY_KEY_LEN];
    bool indexed = sess__store_indexed(e->flags);
    int rc;

    memcpy(key, e->key, sizeof key);
    memcpy(handle, e->handle, sizeof handle);
    users_key(ukey, e->user, key);
    expiry_key(xkey, e->expires_at, key);

    if ((rc = del_row(txn, st->sessions, key, sizeof key, op, err)) != SESS_OK ||
        (rc = del_row(txn, st->expiry, xkey, sizeof xkey, op, err)) != SESS_OK)
        return rc;
    if (!indexed)
        return SESS_OK;
    if ((rc = del_row(txn, st->users, ukey, sizeof ukey, op, err)) != SESS_OK)
        return rc;
    /* Only drop the handle row if it still points here. */
    MDB_val hk = {sizeof handle, handle}, hv;
    rc = mdb_get(txn, st->handles, &hk, &hv);
    if (rc == MDB_NOTFOUND)
        return SESS_OK;
    if (rc != 0)
        return lmdb_fail(err, rc, op);
    if (hv.mv_size == SESS_STORE_KEY_BYTES &&
        memcmp(hv.mv_data, key, SESS_STORE_KEY_BYTES) == 0)
        return del_row(txn, st->handles, handle, sizeof handle, op, err);
    return SESS_OK;
}

/* Write the sessions row of "e" under "key" with "flags". */
static int put_record(struct lmdb_store *st, MDB_txn *txn, const uint8_t *key,
                      const sess_entry *e, uint32_t flags, const char *op,
                      sess_err *err)
{
    MDB_val k = {SESS_STORE_KEY_BYTES, (void *)key};
    MDB_val v = {HDR_LEN + e->blob_len, NULL};
    int rc = mdb_put(txn, st->sessions, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return lmdb_fail(err, rc, op);
    encode_header(v.mv_data, e, flags);
    if (e->blob_len)
        memcpy((uint8_t *)v.mv_data + HDR_LEN, e->blob, e->blob_len);
    return SESS_OK;
}

static int put_expiry(struct lmdb_store *st, MDB_txn *txn, const uint8_t *key,
                      uint64_t expires_at, const char *op, sess_err *err)
{
    static uint8_t empty;
    uint8_t xkey[EXPIRY_KEY_LEN];
    expiry_key(xkey, expires_at, key);
    MDB_val xk = {sizeof xkey, xkey}, nothing = {0, &empty};
    int rc = mdb_put(txn, st->expiry, &xk, &nothing, 0);
    return rc ? lmdb_fail(err, rc, op) : SESS_OK;
}

/* Write "e" under "key" with "flags", plus its expiry row and, when
 * indexed, its handle and user rows. */
static int put_entry(struct lmdb_store *st, MDB_txn *txn, const uint8_t *key,
                     const sess_entry *e, uint32_t flags, const char *op,
                     sess_err *err)
{
    static uint8_t empty;
    uint8_t ukey[USERS_KEY_LEN];
    MDB_val nothing = {0, &empty};
    int rc;

    if ((rc = put_record(st, txn, key, e, flags, op, err)) != SESS_OK ||
        (rc = put_expiry(st, txn, key, e->expires_at, op, err)) != SESS_OK)
        return rc;
    if (!sess__store_indexed(flags))
        return SESS_OK;

    MDB_val hk = {SESS_STORE_HANDLE_BYTES, (void *)e->handle};
    MDB_val hv = {SESS_STORE_KEY_BYTES, (void *)key};
    if ((rc = mdb_put(txn, st->handles, &hk, &hv, 0)) != 0)
        return lmdb_fail(err, rc, op);
    users_key(ukey, e->user, key);
    MDB_val uk = {sizeof ukey, ukey};
    if ((rc = mdb_put(txn, st->users, &uk, &nothing, 0)) != 0)
        return lmdb_fail(err, rc, op);
    return SESS_OK;
}

/* The entry owning "handle", if any (live or not): SESS_OK/NOTFOUND. */
static int load_by_handle(struct lmdb_store *st, MDB_txn *txn,
                          const uint8_t *handle, sess_entry *e,
                          const char *op, sess_err *err)
{
    MDB_val hk = {SESS_STORE_HANDLE_BYTES, (void *)handle}, hv;
    int rc = mdb_get(txn, st->handles, &hk, &hv);
    if (rc == MDB_NOTFOUND)
        return SESS_NOTFOUND;
    if (rc != 0)
        return lmdb_fail(err, rc, op);
    if (hv.mv_size != SESS_STORE_KEY_BYTES)
        return sess__fail(err, SESS_ECORRUPT, "lmdb %s: bad handle row", op);
    uint8_t key[SESS_STORE_KEY_BYTES];
    memcpy(key, hv.mv_data, sizeof key);
    return load(st, txn, key, e, op, err);
}

/* Collect the keys of "user"'s index rows into a growing array. */
static int user_keys(struct lmdb_store *st, MDB_txn *txn, const uint8_t *user,
                     uint8_t (**keys)[SESS_STORE_KEY_BYTES], size_t *n,
                     const char *op, sess_err *err)
{
    uint8_t start[USERS_KEY_LEN];
    MDB_cursor *cur = NULL;
    size_t cap = 0;
    int rc;

    *keys = NULL;
    *n = 0;
    memcpy(start, user, SESS_STORE_USER_BYTES);
    memset(start + SESS_STORE_USER_BYTES, 0, SESS_STORE_KEY_BYTES);
    if ((rc = mdb_cursor_open(txn, st->users, &cur)) != 0)
        return lmdb_fail(err, rc, op);
    MDB_val k = {sizeof start, start}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != USERS_KEY_LEN ||
            memcmp(k.mv_data, user, SESS_STORE_USER_BYTES) != 0)
            break;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            void *p = realloc(*keys, ncap * sizeof **keys);
            if (!p) {
                rc = sess__fail(err, SESS_ENOMEM, "lmdb %s: out of memory", op);
                goto cleanup;
            }
            *keys = p;
            cap = ncap;
        }
        memcpy((*keys)[*n], (uint8_t *)k.mv_data + SESS_STORE_USER_BYTES,
               SESS_STORE_KEY_BYTES);
        (*n)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = lmdb_fail(err, rc, op);
        goto cleanup;
    }
    rc = SESS_OK;

cleanup:
    mdb_cursor_close(cur);
    if (rc != SESS_OK) {
        free(*keys);
        *keys = NULL;
        *n = 0;
    }
    return rc;
}

/* MDB_WRITEMAP: make sure disk blocks back "room" bytes past the last used
 * page before a write transaction (see the top of the file), allocating
 * up to RESERVE_AHEAD ahead.  Another process may commit between this
 * check and the transaction; the rest of the reserve covers that. */
static int ensure_room(struct lmdb_store *st, uint64_t room, const char *op,
                       sess_err *err)
{
    MDB_envinfo info;
    int rc = SESS_OK, mrc;

    if (!st->writemap)
        return SESS_OK;
    if ((mrc = mdb_env_info(st->env, &info)) != 0)
        return lmdb_fail(err, mrc, op);
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st->psize;
    uint64_t want = used + room;
    if (want > st->map_size)
        want = st->map_size;
    if (want <= atomic_load(&st->reserved))
        return SESS_OK;
    pthread_mutex_lock(&st->grow_lock);
    uint64_t have = atomic_load(&st->reserved);
    if (want > have) {
        uint64_t to = used + RESERVE_AHEAD;
        if (to > st->map_size)
            to = st->map_size;
        /* Only holes get blocks; the file's size does not change.  On a
         * nearly full disk, settle for the half that is required. */
        int ok = fallocate(st->fd, 0, (off_t)have, (off_t)(to - have)) == 0;
        if (!ok && errno == ENOSPC && want < to) {
            to = want;
            ok = fallocate(st->fd, 0, (off_t)have, (off_t)(to - have)) == 0;
        }
        if (ok) {
            atomic_store(&st->reserved, to);
        } else if (errno == ENOSPC || errno == EDQUOT) {
            rc = sess__fail(err, SESS_EFULL,
                            "lmdb %s: no space left on the store's disk", op);
        } else {
            char ebuf[96];
            rc = sess__fail(err, SESS_EIO, "lmdb %s: cannot allocate disk space: %s",
                            op, strerror_r(errno, ebuf, sizeof ebuf));
        }
    }
    pthread_mutex_unlock(&st->grow_lock);
    return rc;
}

/* Begin a write transaction that needs "room" (ROOM_ADD or ROOM_REMOVE;
 * 0 for open, which writes only into a new, empty file). */
static int wbegin(struct lmdb_store *st, MDB_txn **txn, uint64_t room,
                  const char *op, sess_err *err)
{
    int rc = ensure_room(st, room, op, err);
    if (rc != SESS_OK)
        return rc;
    /* Held snapshots older than the last commit would keep this write
     * from reusing the pages that commit freed. */
    slots_reap(st);
    rc = mdb_txn_begin(st->env, NULL, 0, txn);
    return rc ? lmdb_fail(err, rc, op) : SESS_OK;
}

/* Whether the file system under "dir" can allocate blocks ahead of use and
 * has room for the reserve: the condition for MDB_WRITEMAP (see the top of
 * the file).  Probed on
 * the data file itself (created empty when new, which LMDB takes for a
 * new environment), without changing its size. */
static bool can_reserve(const char *dir, mode_t mode)
{
    char path[4096];
    bool ok = false;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
        return false;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return false;
    struct statvfs vs;
    ok = fstatvfs(fd, &vs) == 0 &&
         (uint64_t)vs.f_bavail * vs.f_frsize >= WRITEMAP_MIN_FREE &&
         fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
    close(fd);
    return ok;
}

/* Pages LMDB writes with one writev at commit (MDB_COMMIT_PAGES in
 * mdb.c): after a short write the file system has less free than that. */
#define LMDB_COMMIT_PAGES 64

/* Whether the file system holding the data file is out of space now: free
 * blocks (those root may use, for root) under one commit batch. */
static bool disk_exhausted(const struct lmdb_store *st)
{
    struct statvfs vs;
    if (fstatvfs(st->fd, &vs) != 0)
        return false;
    uint64_t avail = geteuid() == 0 ? vs.f_bfree : vs.f_bavail;
    return avail * vs.f_frsize < (uint64_t)LMDB_COMMIT_PAGES * st->psize;
}

/* Commit "txn" when "rc" is SESS_OK, abort it otherwise; returns the
 * outcome.  Without MDB_WRITEMAP, LMDB reports a pwrite that wrote only
 * part of its pages as EIO (the kernel's short write carries no errno),
 * which is what a disk filling up mid-commit looks like: a full disk then
 * gets its own name, so the operator frees space rather than checks the
 * hardware. */
static int wend(struct lmdb_store *st, MDB_txn *txn, int rc, const char *op,
                sess_err *err)
{
    if (rc != SESS_OK) {
        mdb_txn_abort(txn);
        return rc;
    }
    int mrc = mdb_txn_commit(txn);
    if (mrc == EIO && !st->writemap && disk_exhausted(st))
        mrc = ENOSPC;
    return mrc ? lmdb_fail(err, mrc, op) : SESS_OK;
}

/* ---- damage checks ------------------------------------------------------ */

/* The read probe: the first and the last row of each database in "dbis"
 * (0 entries: open them by name, as the open-time check does), which
 * reads each tree's root and its two outermost paths.  0 or LMDB's
 * error. */
static int probe(MDB_txn *txn, const MDB_dbi *dbis)
{
    static const char *const names[4] = {"sessions", "handles", "users", "expiry"};
    for (int i = 0; i < 4; i++) {
        MDB_dbi dbi = dbis ? dbis[i] : 0;
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        int rc;
        if (!dbis) {
            rc = mdb_dbi_open(txn, names[i], 0, &dbi);
            if (rc == MDB_NOTFOUND)
                continue;       /* a store from before that database */
            if (rc != 0)
                return rc;
        }
        if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
            return rc;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
           stat(path, &sb) == 0;
}

/* Look at the store in "dir" before LMDB maps it (see the top of the
 * file): a data.mdb shorter than the last page its meta page names would
 * kill the process with SIGBUS on the first read of a missing page (and
 * MDB_WRITEMAP would first grow it back with zeros), and an empty one
 * where a store existed would silently start a new, empty store.  The
 * file is opened read-only without the map first, to learn from LMDB's
 * meta page the last page number and the page size; then the read probe
 * runs on it.  SESS_OK, or SESS_ECORRUPT naming the damage, with
 * "*damaged" set, or another error. */
static int preflight(const char *dir, mode_t mode, bool *damaged, sess_err *err)
{
    char path[4096];
    struct stat sb;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_envinfo info;
    MDB_stat ms;
    mdb_filehandle_t fd;
    int rc = SESS_OK, mrc;

    *damaged = false;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
        return sess__fail(err, SESS_EINVAL, "lmdb store: path too long");
    if (stat(path, &sb) != 0)
        return SESS_OK;         /* a new store */
    if (sb.st_size == 0) {
        if (!file_exists(dir, STORE_MARKER) && !file_exists(dir, "lock.mdb"))
            return SESS_OK;     /* made by an open that never got further */
        *damaged = true;
        return sess__fail(err, SESS_ECORRUPT,
                          "data.mdb is 0 bytes but a store existed here (%s)",
                          file_exists(dir, STORE_MARKER) ? STORE_MARKER : "lock.mdb");
    }
    if ((mrc = mdb_env_create(&env)) != 0)
        return lmdb_fail(err, mrc, "env create");
    if ((mrc = mdb_env_set_maxdbs(env, 4)) != 0 ||
        (mrc = mdb_env_set_maxreaders(env, LMDB_MAX_READERS)) != 0 ||
        (mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, mode)) != 0) {
        if (mrc == MDB_INVALID || mrc == MDB_VERSION_MISMATCH) {
            *damaged = true;
            rc = sess__fail(err, SESS_ECORRUPT, "data.mdb (%lld bytes) is not a "
                            "readable LMDB file: %s", (long long)sb.st_size,
                            mdb_strerror(mrc));
        } else {
            rc = lmdb_fail(err, mrc, "check open");
        }
        goto cleanup;
    }
    if ((mrc = mdb_env_get_fd(env, &fd)) != 0 || (mrc = mdb_env_info(env, &info)) != 0 ||
        (mrc = mdb_env_stat(env, &ms)) != 0 || fstat(fd, &sb) != 0) {
        rc = lmdb_fail(err, mrc ? mrc : EIO, "check");
        goto cleanup;
    }
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)sb.st_size < need) {
        *damaged = true;
        rc = sess__fail(err, SESS_ECORRUPT,
                        "data.mdb: %lld bytes, but its meta page's last page %llu "
                        "ends at %llu: truncated",
                        (long long)sb.st_size, (unsigned long long)info.me_last_pgno,
                        (unsigned long long)need);
        goto cleanup;
    }
    if ((mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0) {
        mrc = probe(txn, NULL);
        mdb_txn_abort(txn);
    }
    if (mrc == MDB_CORRUPTED || mrc == MDB_PAGE_NOTFOUND) {
        *damaged = true;
        rc = sess__fail(err, SESS_ECORRUPT, "data.mdb is damaged: %s",
                        mdb_strerror(mrc));
    } else if (mrc != 0) {
        rc = lmdb_fail(err, mrc, "check");
    }
cleanup:
    mdb_env_close(env);
    return rc;
}

/* store.on_damage = reset: rename the damaged data.mdb aside (kept for
 * inspection, never deleted) so the open makes an empty store.  lock.mdb
 * stays: LMDB rebuilds it when it is the only user. */
static int set_aside(const char *dir, sess_err *err)
{
    char from[4096], to[4200], ebuf[96];
    if (snprintf(from, sizeof from, "%s/data.mdb", dir) >= (int)sizeof from)
        return sess__fail(err, SESS_EINVAL, "lmdb store: path too long");
    snprintf(to, sizeof to, "%s.damaged-%lld", from, (long long)time(NULL));
    if (rename(from, to) != 0)
        return sess__fail(err, SESS_EIO, "lmdb store: cannot rename the damaged "
                          "data.mdb aside: %s", strerror_r(errno, ebuf, sizeof ebuf));
    return SESS_OK;
}

/* Mark "dir" as holding a store (best effort; see STORE_MARKER). */
static void mark_store(const char *dir)
{
    static const char text[] = "sessiond LMDB store: data.mdb and lock.mdb beside this "
                               "file; an empty data.mdb here is a lost store\n";
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, STORE_MARKER) >= (int)sizeof path)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    if (write(fd, text, sizeof text - 1) < 0)
        (void)unlink(path);
    close(fd);
}

/* ---- open / close ------------------------------------------------------- */

static void lmdb_close(sess_store *base)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    if (!st)
        return;
    reaper_stop(st);
    slots_close_store(st);
    if (st->env)
        mdb_env_close(st->env);
    pthread_mutex_destroy(&st->grow_lock);
    free(st);
}

/* ---- the on-disk format number -------------------------------------------
 *
 * The named database "meta" holds "format" -> 4 bytes, little-endian: the
 * layout of the other four databases and of their values.  A new store is
 * stamped with LMDB_FORMAT; a store written before the number existed
 * (release 0.1.0) has no "meta" and is format 1, the same layout: it is
 * stamped on open.  A store from a newer library is refused, with both
 * numbers, rather than misread (a rollback after an upgrade must not
 * corrupt sessions it does not understand).  tests/fixtures/lmdb-v1 is a
 * store of release 0.1.0 that tests/unit/lib/test_golden.c opens. */
#define LMDB_FORMAT 1u

static int format_check(MDB_txn *txn, sess_err *err)
{
    MDB_dbi meta;
    MDB_val k = {6, (void *)"format"}, v;
    uint8_t b[4];
    int mrc;

    if ((mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta)) != 0)
        return lmdb_fail(err, mrc, "open meta database");
    mrc = mdb_get(txn, meta, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        b[0] = (uint8_t)LMDB_FORMAT;
        b[1] = (uint8_t)(LMDB_FORMAT >> 8);
        b[2] = (uint8_t)(LMDB_FORMAT >> 16);
        b[3] = (uint8_t)(LMDB_FORMAT >> 24);
        v.mv_size = sizeof b;
        v.mv_data = b;
        if ((mrc = mdb_put(txn, meta, &k, &v, 0)) != 0)
            return lmdb_fail(err, mrc, "stamp format");
        return SESS_OK;
    }
    if (mrc != 0)
        return lmdb_fail(err, mrc, "read format");
    if (v.mv_size != 4)
        return sess__fail(err, SESS_ECORRUPT,
                          "lmdb store: format number is %zu bytes, not 4",
                          v.mv_size);
    const uint8_t *p = v.mv_data;
    uint32_t f = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    if (f == 0 || f > LMDB_FORMAT)
        return sess__fail(err, SESS_ECONFIG,
                          "lmdb store: on-disk format %u, this library reads "
                          "formats 1..%u (written by a newer libsess?)",
                          (unsigned)f, LMDB_FORMAT);
    return SESS_OK;
}

/* group_access: give the group read and write on the files and search on
 * the directory, where this process owns them (files are created through
 * the umask, and a store may predate the option).  Only ever adds the
 * group's bits; others get nothing.  The group never gets write on the
 * directory: it cannot replace or remove the files. */
static void widen_for_group(const char *dir)
{
    static const char *const names[] = {"data.mdb", "lock.mdb"};
    char path[4096];
    struct stat sb;
    if (stat(dir, &sb) == 0 && sb.st_uid == geteuid())
        (void)chmod(dir, (sb.st_mode & 07777) | 0050);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path)
            continue;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid())
            (void)chmod(path, (sb.st_mode & 07777) | 0060);
    }
}

static int lmdb_open(const char *url, const sess_store_options *opt,
                     sess_store **out, sess_err *err)
{
    struct lmdb_store *st = NULL;
    MDB_txn *txn = NULL;
    struct stat sb;
    char ebuf[96];
    int rc, mrc, dead = 0;

    *out = NULL;
    const char *path = sess__store_url_rest(url, "lmdb");
    if (!path)
        return sess__fail(err, SESS_EINVAL, "lmdb store: URL must be \"lmdb:PATH\"");
    if (!*path)
        return sess__fail(err, SESS_EINVAL,
                          "lmdb store: empty path (expected \"lmdb:PATH\")");
    uint64_t map_size = opt->map_size ? opt->map_size : LMDB_DEFAULT_MAP_SIZE;
    if (map_size > SIZE_MAX)
        return sess__fail(err, SESS_EINVAL, "lmdb store: map_size too large");
    if (opt->durability != SESS_DURABILITY_PROCESS &&
        opt->durability != SESS_DURABILITY_FSYNC)
        return sess__fail(err, SESS_EINVAL, "lmdb store: unknown durability");

    pthread_once(&slots_once, slots_init);
    if (slots_key_rc != 0)
        return sess__fail(err, SESS_ENOMEM, "lmdb store: no thread key");

    mode_t fmode = opt->group_access ? 0660 : 0600;
    if (sess__mkdir_p(path, opt->group_access ? 0750 : 0700) != 0)
        return sess__fail(err, SESS_EIO,
                          "lmdb store: cannot create directory: %s",
                          strerror_r(errno, ebuf, sizeof ebuf));
    if (stat(path, &sb) != 0)
        return sess__fail(err, SESS_EIO, "lmdb store: cannot stat directory: %s",
                          strerror_r(errno, ebuf, sizeof ebuf));
    if (!S_ISDIR(sb.st_mode))
        return sess__fail(err, SESS_EINVAL, "lmdb store: path is not a directory");

    bool damaged = false;
    sess_err perr = {0};
    rc = preflight(path, fmode, &damaged, &perr);
    if (rc != SESS_OK && damaged && opt->on_damage == SESS_DAMAGE_RESET)
        rc = set_aside(path, err);
    else if (rc != SESS_OK && damaged)
        return sess__fail(err, rc, "%s (see store.on_damage)", perr.msg);
    else if (rc != SESS_OK)
        return sess__fail(err, rc, "%s", perr.msg);
    if (rc != SESS_OK)
        return rc;

    st = calloc(1, sizeof *st);
    if (!st)
        return sess__fail(err, SESS_ENOMEM, "lmdb store: out of memory");
    st->base.methods = &sess__store_lmdb_methods;
    st->id = atomic_fetch_add(&next_store_id, 1);
    pthread_mutex_init(&st->grow_lock, NULL);
    /* With durability = fsync the disk flush is the cost (about 3,000
     * creates/s here either way, the map 6% slower): keep pwrite there. */
    st->writemap = opt->durability == SESS_DURABILITY_PROCESS && can_reserve(path, fmode);

    unsigned int flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (st->writemap)
        flags |= MDB_WRITEMAP;
    if (opt->durability == SESS_DURABILITY_PROCESS)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    if ((mrc = mdb_env_create(&st->env)) != 0) {
        st->env = NULL;
        rc = lmdb_fail(err, mrc, "env create");
        goto cleanup;
    }
    if ((mrc = mdb_env_set_maxdbs(st->env, 5)) != 0 ||
        (mrc = mdb_env_set_maxreaders(st->env, LMDB_MAX_READERS)) != 0 ||
        (mrc = mdb_env_set_mapsize(st->env, (size_t)map_size)) != 0) {
        rc = lmdb_fail(err, mrc, "env setup");
        goto cleanup;
    }
    if ((mrc = mdb_env_open(st->env, path, flags, fmode)) != 0) {
        rc = lmdb_fail(err, mrc, "env open");
        goto cleanup;
    }
    if (opt->group_access)
        widen_for_group(path);
    {
        MDB_envinfo info;
        MDB_stat ms;
        mdb_filehandle_t fd;
        if ((mrc = mdb_env_get_fd(st->env, &fd)) != 0 ||
            (mrc = mdb_env_info(st->env, &info)) != 0 ||
            (mrc = mdb_env_stat(st->env, &ms)) != 0) {
            rc = lmdb_fail(err, mrc, "env info");
            goto cleanup;
        }
        st->fd = fd;
        st->psize = ms.ms_psize;
        st->map_size = info.me_mapsize;
    }
    /* Readers left by a process killed with -9 would pin old pages
     * forever and fill the reader table; clear them now. */
    if ((mrc = mdb_reader_check(st->env, &dead)) != 0) {
        rc = lmdb_fail(err, mrc, "reader check");
        goto cleanup;
    }

    if ((rc = wbegin(st, &txn, 0, "open", err)) != SESS_OK)
        goto cleanup;
    if ((mrc = mdb_dbi_open(txn, "sessions", MDB_CREATE, &st->sessions)) != 0 ||
        (mrc = mdb_set_compare(txn, st->sessions, key_cmp)) != 0 ||
        (mrc = mdb_dbi_open(txn, "handles", MDB_CREATE, &st->handles)) != 0 ||
        (mrc = mdb_dbi_open(txn, "users", MDB_CREATE, &st->users)) != 0 ||
        (mrc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &st->expiry)) != 0) {
        mdb_txn_abort(txn);
        rc = lmdb_fail(err, mrc, "open databases");
        goto cleanup;
    }
    if ((rc = format_check(txn, err)) != SESS_OK) {
        mdb_txn_abort(txn);
        goto cleanup;
    }
    if ((rc = wend(st, txn, SESS_OK, "open databases", err)) != SESS_OK)
        goto cleanup;
    st->dbis[0] = st->sessions;
    st->dbis[1] = st->handles;
    st->dbis[2] = st->users;
    st->dbis[3] = st->expiry;
    mark_store(path);

    reaper_start(st);
    *out = &st->base;
    return SESS_OK;

cleanup:
    if (st->env)
        mdb_env_close(st->env);
    pthread_mutex_destroy(&st->grow_lock);
    free(st);
    return rc;
}

/* ---- reads ---------------------------------------------------------------- */

static int lmdb_get(sess_store *base, const uint8_t *key, uint64_t now,
                    sess_entry *e, sess_store_buf *buf, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    struct rslot *slot = NULL;
    sess_entry tmp;
    int rc;

    if (!key || !e || !buf)
        return sess__fail(err, SESS_EINVAL, "lmdb get: missing argument");
    if ((rc = rtxn_acquire(st, &slot, &txn, err)) != SESS_OK)
        return rc;
    rc = load(st, txn, key, &tmp, "get", err);
    if (rc == SESS_OK && !sess__store_live(tmp.expires_at, now))
        rc = SESS_NOTFOUND;
    if (rc == SESS_OK) {
        if (sess_store_buf_reserve(buf, tmp.blob_len) != SESS_OK) {
            rc = sess__fail(err, SESS_ENOMEM, "lmdb get: out of memory");
        } else {
            if (tmp.blob_len)
                memcpy(buf->data, tmp.blob, tmp.blob_len);
            buf->len = tmp.blob_len;
            *e = tmp;
            e->blob = buf->data;
        }
    }
    rtxn_release(st, slot, rc);
    return rc;
}

static int lmdb_find_handle(sess_store *base, const uint8_t *handle,
                            uint64_t now, uint8_t *key_out, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    struct rslot *slot = NULL;
    sess_entry e;
    int rc;

    if (!handle || !key_out)
        return sess__fail(err, SESS_EINVAL, "lmdb find_handle: missing argument");
    if ((rc = rtxn_acquire(st, &slot, &txn, err)) != SESS_OK)
        return rc;
    rc = load_by_handle(st, txn, handle, &e, "find_handle", err);
    if (rc == SESS_OK && (!sess__store_live(e.expires_at, now) ||
                          !sess__store_indexed(e.flags) ||
                          memcmp(e.handle, handle, SESS_STORE_HANDLE_BYTES) != 0))
        rc = SESS_NOTFOUND;
    if (rc == SESS_OK)
        memcpy(key_out, e.key, SESS_STORE_KEY_BYTES);
    rtxn_release(st, slot, rc);
    return rc;
}

static int lmdb_list_user(sess_store *base, const uint8_t *user, uint64_t now,
                          sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t start[USERS_KEY_LEN];
    int rc, mrc;

    if (!user || !fn)
        return sess__fail(err, SESS_EINVAL, "lmdb list_user: missing argument");
    /* A private transaction, not the thread's cached one, so "fn" may
     * call get() on this thread while we iterate. */
    if ((mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
        return lmdb_fail(err, mrc, "list_user");
    if ((mrc = mdb_cursor_open(txn, st->users, &cur)) != 0) {
        rc = lmdb_fail(err, mrc, "list_user");
        goto cleanup;
    }
    memcpy(start, user, SESS_STORE_USER_BYTES);
    memset(start + SESS_STORE_USER_BYTES, 0, SESS_STORE_KEY_BYTES);
    MDB_val k = {sizeof start, start}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = SESS_OK;
    while (mrc == 0) {
        if (k.mv_size != USERS_KEY_LEN ||
            memcmp(k.mv_data, user, SESS_STORE_USER_BYTES) != 0)
            break;
        sess_entry e;
        int lrc = load(st, txn, (uint8_t *)k.mv_data + SESS_STORE_USER_BYTES,
                       &e, "list_user", err);
        if (lrc != SESS_OK && lrc != SESS_NOTFOUND) {
            rc = lrc;
            goto cleanup;
        }
        if (lrc == SESS_OK && sess__store_live(e.expires_at, now) &&
            sess__store_indexed(e.flags) && fn(ctx, &e) != 0)
            goto cleanup;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        rc = lmdb_fail(err, mrc, "list_user");

cleanup:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* Whether the store answers reads: it fails while the last session read
 * failed with a store error (a damaged page, I/O) and none has succeeded
 * since, for READ_FAIL_HOLD_MS at most, and when the read probe fails on
 * a fresh snapshot.  /readyz is this. */
static int lmdb_ping(sess_store *base, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    uint64_t at = atomic_load(&st->read_fail_ms);
    if (at && mono_ms() - at < READ_FAIL_HOLD_MS)
        return sess__fail(err, SESS_EIO,
                          "lmdb: session reads are failing (damaged page or I/O "
                          "error) and none has succeeded since");
    int mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (mrc == 0) {
        mrc = probe(txn, st->dbis);
        mdb_txn_abort(txn);
    }
    if (mrc != 0) {
        atomic_store(&st->read_fail_ms, mono_ms());
        return lmdb_fail(err, mrc, "read probe");
    }
    return SESS_OK;
}

/* Live indexed sessions: the users index has one row per indexed entry;
 * from that, take away the indexed entries whose expiry has passed, found
 * by walking the expiry index up to "now" (only what the purge has not
 * reached yet, so the walk stays short). */
static int lmdb_count(sess_store *base, uint64_t now, uint64_t *n, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    struct rslot *slot = NULL;
    MDB_cursor *cur = NULL;
    MDB_stat ms;
    MDB_val k, v;
    uint64_t expired = 0;
    int rc, mrc;

    if (!n)
        return sess__fail(err, SESS_EINVAL, "lmdb count: no output");
    if ((rc = rtxn_acquire(st, &slot, &txn, err)) != SESS_OK)
        return rc;
    if ((mrc = mdb_stat(txn, st->users, &ms)) != 0 ||
        (mrc = mdb_cursor_open(txn, st->expiry, &cur)) != 0) {
        rc = lmdb_fail(err, mrc, "count");
        goto cleanup;
    }
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sess_entry e;
        if (k.mv_size != EXPIRY_KEY_LEN)
            continue;
        uint64_t expires_at = sess__get_be64(k.mv_data);
        if (sess__store_live(expires_at, now))
            break;
        if (load(st, txn, (const uint8_t *)k.mv_data + 8, &e, "count", NULL) == SESS_OK &&
            e.expires_at == expires_at && !(e.flags & SESS_ENTRY_UNINDEXED))
            expired++;
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = lmdb_fail(err, mrc, "count");
        goto cleanup;
    }
    *n = ms.ms_entries > expired ? ms.ms_entries - expired : 0;
cleanup:
    if (cur)
        mdb_cursor_close(cur);
    rtxn_release(st, slot, rc);
    return rc;
}

/* ---- writes --------------------------------------------------------------- */

/* Inside insert's transaction: make room for one more session of
 * e->user under "lim", or refuse with SESS_LIMIT. */
static int enforce_limit(struct lmdb_store *st, MDB_txn *txn,
                         const sess_entry *ne, const sess_store_limit *lim,
                         uint64_t now, sess_store_evicted *evicted,
                         sess_err *err)
{
    uint8_t (*keys)[SESS_STORE_KEY_BYTES] = NULL;
    sess__evict_cand *cands = NULL;
    size_t nkeys = 0, live = 0;
    int rc;

    if ((rc = user_keys(st, txn, ne->user, &keys, &nkeys, "insert", err)) != SESS_OK)
        return rc;
    if (nkeys < lim->max_per_user)
        goto cleanup; /* fewer rows than the limit: no need to look closer */
    if (!(cands = malloc(nkeys * sizeof *cands))) {
        rc = sess__fail(err, SESS_ENOMEM, "lmdb insert: out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < nkeys; i++) {
        sess_entry e;
        rc = load(st, txn, keys[i], &e, "insert", err);
        if (rc == SESS_NOTFOUND)
            continue;
        if (rc != SESS_OK)
            goto cleanup;
        if (!sess__store_live(e.expires_at, now) || !sess__store_indexed(e.flags))
            continue;
        cands[live].created_at = e.created_at;
        memcpy(cands[live].key, e.key, SESS_STORE_KEY_BYTES);
        memcpy(cands[live].handle, e.handle, SESS_STORE_HANDLE_BYTES);
        cands[live].ref = NULL;
        live++;
    }
    rc = SESS_OK;
    if (live < lim->max_per_user)
        goto cleanup;
    if (lim->policy == SESS_LIMIT_DENY) {
        rc = sess__fail(err, SESS_LIMIT, "lmdb insert: per-user limit reached");
        goto cleanup;
    }
    sess__store_sort_cands(cands, live);
    for (size_t i = 0; i < live - lim->max_per_user + 1; i++) {
        sess_entry e;
        if ((rc = load(st, txn, cands[i].key, &e, "insert", err)) != SESS_OK ||
            (rc = drop(st, txn, &e, "insert", err)) != SESS_OK) {
            if (rc == SESS_NOTFOUND)
                rc = sess__fail(err, SESS_EINTERNAL, "lmdb insert: entry vanished");
            goto cleanup;
        }
        sess__store_report_evicted(evicted, cands[i].handle);
    }

cleanup:
    free(keys);
    free(cands);
    return rc;
}

static int lmdb_insert(sess_store *base, const sess_entry *e,
                       const sess_store_limit *lim, uint64_t now,
                       sess_store_evicted *evicted, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    sess_entry cur;
    int rc = sess__store_check_entry(e, "insert", err);

    if (evicted)
        evicted->n = 0;
    if (rc != SESS_OK)
        return rc;
    bool indexed = sess__store_indexed(e->flags);
    if ((rc = wbegin(st, &txn, ROOM_ADD, "insert", err)) != SESS_OK)
        return rc;

    /* An expired entry under the key or the handle is absent: drop it. */
    rc = load(st, txn, e->key, &cur, "insert", err);
    if (rc == SESS_OK) {
        if (sess__store_live(cur.expires_at, now)) {
            rc = sess__fail(err, SESS_EXISTS, "lmdb insert: key exists");
            goto cleanup;
        }
        if ((rc = drop(st, txn, &cur, "insert", err)) != SESS_OK)
            goto cleanup;
    } else if (rc != SESS_NOTFOUND) {
        goto cleanup;
    }
    if (indexed) {
        rc = load_by_handle(st, txn, e->handle, &cur, "insert", err);
        if (rc == SESS_OK) {
            if (sess__store_live(cur.expires_at, now)) {
                rc = sess__fail(err, SESS_EXISTS, "lmdb insert: handle exists");
                goto cleanup;
            }
            if ((rc = drop(st, txn, &cur, "insert", err)) != SESS_OK)
                goto cleanup;
        } else if (rc != SESS_NOTFOUND) {
            goto cleanup;
        }
        if (lim && lim->max_per_user > 0 &&
            (rc = enforce_limit(st, txn, e, lim, now, evicted, err)) != SESS_OK)
            goto cleanup;
    }
    rc = put_entry(st, txn, e->key, e, e->flags, "insert", err);

cleanup:
    rc = wend(st, txn, rc, "insert", err);
    if (rc != SESS_OK && evicted)
        evicted->n = 0; /* nothing happened */
    return rc;
}

static int lmdb_update(sess_store *base, const sess_entry *e,
                       const uint8_t *expect, size_t expect_len, uint64_t now,
                       sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    sess_entry cur;
    int rc = sess__store_check_entry(e, "update", err);

    if (rc != SESS_OK)
        return rc;
    if (expect_len && !expect)
        return sess__fail(err, SESS_EINVAL, "lmdb update: no expected record");
    if ((rc = wbegin(st, &txn, ROOM_ADD, "update", err)) != SESS_OK)
        return rc;
    rc = load(st, txn, e->key, &cur, "update", err);
    if (rc != SESS_OK)
        goto cleanup;
    if (!sess__store_live(cur.expires_at, now)) {
        rc = SESS_NOTFOUND;
        goto cleanup;
    }
    if (!blob_equal(&cur, expect, expect_len)) {
        rc = sess__fail(err, SESS_CONFLICT, "lmdb update: record changed");
        goto cleanup;
    }
    /* Keep key, handle, user, created_at and flags; the record and its
     * expiry change.  "cur" keeps only copies, so the put may move pages. */
    uint64_t old_expires = cur.expires_at;
    cur.expires_at = e->expires_at;
    cur.blob = e->blob;
    cur.blob_len = e->blob_len;
    if ((rc = put_record(st, txn, cur.key, &cur, cur.flags, "update", err)) != SESS_OK)
        goto cleanup;
    /* Keep the expiry row in step so purge sees the new time. */
    if (old_expires != e->expires_at) {
        uint8_t xkey[EXPIRY_KEY_LEN];
        expiry_key(xkey, old_expires, cur.key);
        if ((rc = del_row(txn, st->expiry, xkey, sizeof xkey, "update", err)) != SESS_OK)
            goto cleanup;
        rc = put_expiry(st, txn, cur.key, e->expires_at, "update", err);
    }

cleanup:
    return wend(st, txn, rc, "update", err);
}

static int lmdb_replace(sess_store *base, const uint8_t *old_key,
                        const uint8_t *expect, size_t expect_len,
                        const sess_entry *old_tomb, const sess_entry *next,
                        uint64_t now, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    sess_entry old, cur;
    int rc;

    if ((rc = sess__store_check_replace(old_key, expect, expect_len, old_tomb, next,
                                        "lmdb", err)) != SESS_OK)
        return rc;
    bool indexed = sess__store_indexed(next->flags);

    if ((rc = wbegin(st, &txn, ROOM_ADD, "replace", err)) != SESS_OK)
        return rc;
    rc = load(st, txn, old_key, &old, "replace", err);
    if (rc != SESS_OK)
        goto cleanup;
    if (!sess__store_live(old.expires_at, now)) {
        rc = SESS_NOTFOUND;
        goto cleanup;
    }
    if (!blob_equal(&old, expect, expect_len)) {
        rc = sess__fail(err, SESS_CONFLICT, "lmdb replace: record changed");
        goto cleanup;
    }
    /* The new key must be free (an expired occupant is dropped). */
    rc = load(st, txn, next->key, &cur, "replace", err);
    if (rc == SESS_OK) {
        if (sess__store_live(cur.expires_at, now)) {
            rc = sess__fail(err, SESS_EXISTS, "lmdb replace: new key exists");
            goto cleanup;
        }
        if ((rc = drop(st, txn, &cur, "replace", err)) != SESS_OK)
            goto cleanup;
    } else if (rc != SESS_NOTFOUND) {
        goto cleanup;
    }
    /* Dropping "old" first clears its handle row if it owns it; then the
     * handle must be free or held by an expired session. */
    if ((rc = drop(st, txn, &old, "replace", err)) != SESS_OK)
        goto cleanup;
    if (indexed) {
        rc = load_by_handle(st, txn, next->handle, &cur, "replace", err);
        if (rc == SESS_OK) {
            if (sess__store_live(cur.expires_at, now)) {
                rc = sess__fail(err, SESS_EXISTS,
                                "lmdb replace: handle belongs to another session");
                goto cleanup;
            }
            if ((rc = drop(st, txn, &cur, "replace", err)) != SESS_OK)
                goto cleanup;
        } else if (rc != SESS_NOTFOUND) {
            goto cleanup;
        }
    }
    if (old_tomb &&
        (rc = put_entry(st, txn, old_key, old_tomb,
                        old_tomb->flags | SESS_ENTRY_UNINDEXED, "replace",
                        err)) != SESS_OK)
        goto cleanup;
    rc = put_entry(st, txn, next->key, next, next->flags, "replace", err);

cleanup:
    return wend(st, txn, rc, "replace", err);
}

static int lmdb_remove(sess_store *base, const uint8_t *key,
                       uint8_t *handle_out, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    MDB_txn *txn = NULL;
    sess_entry cur;
    int rc;

    if (!key)
        return sess__fail(err, SESS_EINVAL, "lmdb remove: no key");
    if ((rc = wbegin(st, &txn, ROOM_REMOVE, "remove", err)) != SESS_OK)
        return rc;
    rc = load(st, txn, key, &cur, "remove", err);
    if (rc != SESS_OK)
        goto cleanup;
    if (handle_out)
        memcpy(handle_out, cur.handle, SESS_STORE_HANDLE_BYTES);
    rc = drop(st, txn, &cur, "remove", err);

cleanup:
    return wend(st, txn, rc, "remove", err);
}

static int lmdb_remove_user(sess_store *base, const uint8_t *user,
                            const uint8_t *except, uint64_t now, size_t *n,
                            sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    uint8_t (*keys)[SESS_STORE_KEY_BYTES] = NULL;
    MDB_txn *txn = NULL;
    size_t nkeys = 0, deleted = 0;
    int rc;

    if (n)
        *n = 0;
    if (!user)
        return sess__fail(err, SESS_EINVAL, "lmdb remove_user: no user");
    if ((rc = wbegin(st, &txn, ROOM_REMOVE, "remove_user", err)) != SESS_OK)
        return rc;
    if ((rc = user_keys(st, txn, user, &keys, &nkeys, "remove_user", err)) != SESS_OK)
        goto cleanup;
    for (size_t i = 0; i < nkeys; i++) {
        sess_entry e;
        rc = load(st, txn, keys[i], &e, "remove_user", err);
        if (rc == SESS_NOTFOUND) {
            /* A stray index row: remove it too. */
            uint8_t ukey[USERS_KEY_LEN];
            users_key(ukey, user, keys[i]);
            rc = del_row(txn, st->users, ukey, sizeof ukey, "remove_user", err);
            if (rc != SESS_OK)
                goto cleanup;
            continue;
        }
        if (rc != SESS_OK)
            goto cleanup;
        if (except && memcmp(e.handle, except, SESS_STORE_HANDLE_BYTES) == 0)
            continue;
        bool live = sess__store_live(e.expires_at, now);
        if ((rc = drop(st, txn, &e, "remove_user", err)) != SESS_OK)
            goto cleanup;
        if (live)
            deleted++;
    }
    rc = SESS_OK;

cleanup:
    free(keys);
    rc = wend(st, txn, rc, "remove_user", err);
    if (rc == SESS_OK && n)
        *n = deleted;
    return rc;
}

/* One transaction of purge: remove up to "max" expired entries, visiting
 * at most PURGE_TXN_ROWS expiry rows; "*removed" gets the number removed and
 * "*more" whether expired rows may remain. */
static int purge_txn(struct lmdb_store *st, uint64_t now, size_t max,
                     size_t *removed, bool *more, sess_store_purge_fn fn,
                     void *fn_ctx, sess_err *err)
{
    MDB_txn *txn = NULL;
    size_t done = 0, visited = 0;
    int rc, mrc;

    *more = false;
    if ((rc = wbegin(st, &txn, ROOM_REMOVE, "purge", err)) != SESS_OK)
        return rc;
    /* Oldest first: the expiry rows sort by big-endian expires_at.  The
     * cursor is reopened after each deletion rather than trusted across
     * writes to its own database. */
    while (done < max) {
        if (visited++ == PURGE_TXN_ROWS) {
            *more = true;
            break;
        }
        MDB_cursor *cur;
        MDB_val k, v;
        uint8_t key[SESS_STORE_KEY_BYTES], xkey[EXPIRY_KEY_LEN];

        if ((mrc = mdb_cursor_open(txn, st->expiry, &cur)) != 0) {
            rc = lmdb_fail(err, mrc, "purge");
            goto cleanup;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (mrc == 0 && k.mv_size == EXPIRY_KEY_LEN)
            memcpy(xkey, k.mv_data, sizeof xkey);
        mdb_cursor_close(cur);
        if (mrc == MDB_NOTFOUND)
            break;
        if (mrc != 0) {
            rc = lmdb_fail(err, mrc, "purge");
            goto cleanup;
        }
        if (k.mv_size != EXPIRY_KEY_LEN) {
            rc = sess__fail(err, SESS_ECORRUPT, "lmdb purge: bad expiry row");
            goto cleanup;
        }
        uint64_t expires_at = sess__get_be64(xkey);
        if (sess__store_live(expires_at, now))
            break;
        memcpy(key, xkey + 8, sizeof key);

        sess_entry e;
        rc = load(st, txn, key, &e, "purge", err);
        if (rc == SESS_OK && e.expires_at == expires_at) {
            /* Reported before the drop: the blob points into the map. */
            if (fn)
                fn(fn_ctx, &e);
            if ((rc = drop(st, txn, &e, "purge", err)) != SESS_OK)
                goto cleanup;
            done++;
        } else if (rc == SESS_OK || rc == SESS_NOTFOUND) {
            /* A stale expiry row: its entry moved on or is gone. */
            if ((rc = del_row(txn, st->expiry, xkey, sizeof xkey, "purge", err)) != SESS_OK)
                goto cleanup;
        } else {
            goto cleanup;
        }
    }
    rc = SESS_OK;

cleanup:
    rc = wend(st, txn, rc, "purge", err);
    *removed = rc == SESS_OK ? done : 0;
    return rc;
}

/* In transactions of at most PURGE_TXN_ROWS rows: one transaction's new
 * pages must fit in the disk reserve (MDB_WRITEMAP, see ensure_room), and
 * short transactions keep the writer lock from the request path. */
static int lmdb_purge_each(sess_store *base, uint64_t now, size_t max,
                           size_t *removed, sess_store_purge_fn fn,
                           void *fn_ctx, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    size_t total = 0;
    bool more = true;
    int rc = SESS_OK;

    while (rc == SESS_OK && more && total < max) {
        size_t n = 0;
        rc = purge_txn(st, now, max - total, &n, &more, fn, fn_ctx, err);
        total += n;
    }
    if (removed)
        *removed = total;
    return rc;
}

static int lmdb_purge(sess_store *base, uint64_t now, size_t max,
                      size_t *removed, sess_err *err)
{
    return lmdb_purge_each(base, now, max, removed, NULL, NULL, err);
}

/* Batches in key order: the cursor holds the last key visited, and each
 * batch starts after it (MDB_SET_RANGE), in a private read transaction
 * that ends before "fn" is called, so a long walk pins no pages and "fn"
 * may write to the store. */
static int lmdb_scan(sess_store *base, sess_store_cursor *cur, uint64_t now,
                     size_t max, sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct lmdb_store *st = (struct lmdb_store *)base;
    sess__scan_batch b = {0};
    MDB_txn *txn = NULL;
    MDB_cursor *mc = NULL;
    uint8_t last[SESS_STORE_KEY_BYTES];
    bool any = false;
    int rc = SESS_OK, mrc;

    if (!cur || !fn)
        return sess__fail(err, SESS_EINVAL, "lmdb scan: missing argument");
    if (cur->done)
        return SESS_OK;
    if (cur->len != 0 && cur->len != SESS_STORE_KEY_BYTES)
        return sess__fail(err, SESS_EINVAL, "lmdb scan: cursor is not this store's");
    max = sess__scan_max(max);
    if ((mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
        return lmdb_fail(err, mrc, "scan");
    if ((mrc = mdb_cursor_open(txn, st->sessions, &mc)) != 0) {
        rc = lmdb_fail(err, mrc, "scan");
        goto cleanup;
    }
    MDB_val k = {SESS_STORE_KEY_BYTES, cur->pos}, v;
    mrc = cur->len ? mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE)
                   : mdb_cursor_get(mc, &k, &v, MDB_FIRST);
    if (mrc == 0 && cur->len && k.mv_size == SESS_STORE_KEY_BYTES &&
        memcmp(k.mv_data, cur->pos, SESS_STORE_KEY_BYTES) == 0)
        mrc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
    while (mrc == 0 && b.n < max) {
        sess_entry e;
        if (k.mv_size == SESS_STORE_KEY_BYTES) {
            memcpy(last, k.mv_data, SESS_STORE_KEY_BYTES);
            any = true;
            /* A damaged row is skipped, not fatal: one bad record must
             * not stop a backfill of all the others. */
            if (decode(k.mv_data, &v, &e, NULL) == SESS_OK &&
                sess__store_live(e.expires_at, now) && sess__scan_add(&b, &e) != SESS_OK) {
                rc = sess__fail(err, SESS_ENOMEM, "lmdb scan: out of memory");
                goto cleanup;
            }
        }
        mrc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = lmdb_fail(err, mrc, "scan");
        goto cleanup;
    }
    if (any) {
        memcpy(cur->pos, last, SESS_STORE_KEY_BYTES);
        cur->len = SESS_STORE_KEY_BYTES;
    }
    cur->done = mrc == MDB_NOTFOUND;

cleanup:
    if (mc)
        mdb_cursor_close(mc);
    mdb_txn_abort(txn);
    if (rc == SESS_OK)
        sess__scan_emit(&b, fn, ctx);
    sess__scan_free(&b);
    return rc;
}

const sess_store_methods sess__store_lmdb_methods = {
    .version = 4,
    .scheme = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .get = lmdb_get,
    .insert = lmdb_insert,
    .update = lmdb_update,
    .replace = lmdb_replace,
    .remove = lmdb_remove,
    .find_handle = lmdb_find_handle,
    .list_user = lmdb_list_user,
    .remove_user = lmdb_remove_user,
    .purge = lmdb_purge,
    .ping = lmdb_ping,
    .count = lmdb_count,
    .purge_each = lmdb_purge_each,
    .scan = lmdb_scan,
};
