/*
 * sess/store.h - the storage interface: a versioned method table (the
 * shape of SQLite's VFS) with backends registered by name, chosen by URL.
 *
 * Division of labour.  The core above a store owns all policy: hashing of
 * IDs, record encoding and encryption, timeouts, binding, CSRF.  A backend
 * sees opaque bytes only (the sealed record and a few clear metadata fields
 * it needs to index and expire) and owns atomicity, because only it has the
 * primitive (an LMDB write transaction, a mutex, a Redis script on a slot).
 * So the table speaks in a few operations that must each be atomic.
 *
 * Every session has three things a backend keeps consistent:
 *   key    -> entry            the record, under SHA-256 of the session ID
 *   handle -> key              for admin calls by handle
 *   user   -> {key...}         the per-user index (list, revoke, limit)
 * An entry with SESS_ENTRY_UNINDEXED (the tombstone a rotated ID leaves for
 * its grace window) lives only under its key: no handle, no user index.
 *
 * Rules for backends:
 *   - Entries whose expires_at <= the "now" given are treated as absent by
 *     every operation and may be deleted at any time.
 *   - Memory returned through sess_store_buf belongs to the buffer; a
 *     backend grows it with sess_store_buf_reserve().
 *   - Methods are called from many threads at once.
 *   - Members of sess_store_methods are only ever appended; "version" says
 *     how many a backend fills in.
 */
#ifndef SESS_STORE_H
#define SESS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define SESS_STORE_KEY_BYTES 32     /* SHA-256 of a session ID */
#define SESS_STORE_HANDLE_BYTES 16  /* raw handle (base64url: 22 chars) */
#define SESS_STORE_USER_BYTES 32    /* SHA-256 of the user id */
#define SESS_STORE_BLOB_MAX (128u * 1024u) /* sealed record, upper bound */

#define SESS_ENTRY_UNINDEXED 0x1u

/* Seconds the core keeps an entry past the end of its session (so that
 * validate can say "expired" rather than "unknown"): the session of an
 * entry is over once expires_at <= now + SESS_ENTRY_RETAIN. */
#define SESS_ENTRY_RETAIN 600u

/* A session as a backend sees it: clear metadata plus the sealed blob. */
typedef struct sess_entry {
    uint8_t key[SESS_STORE_KEY_BYTES];
    uint8_t handle[SESS_STORE_HANDLE_BYTES];
    uint8_t user[SESS_STORE_USER_BYTES];
    uint64_t created_at;   /* login order: smaller is older, evicted first
                            * (the core uses Unix seconds << 20 plus a
                            * sequence, so logins in one second still
                            * have an order) */
    uint64_t expires_at;   /* Unix seconds; gone at or after this time */
    uint32_t flags;        /* SESS_ENTRY_* */
    const uint8_t *blob;   /* sealed record, opaque to the backend */
    size_t blob_len;
} sess_entry;

/* A growable byte buffer the caller owns and frees with sess_store_buf_free. */
typedef struct sess_store_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} sess_store_buf;

SESS_NODISCARD int sess_store_buf_reserve(sess_store_buf *b, size_t need);
void sess_store_buf_free(sess_store_buf *b);

/* Per-user limit applied by insert. */
typedef enum sess_limit_policy {
    SESS_LIMIT_EVICT_OLDEST = 0,  /* remove oldest (smallest created_at) */
    SESS_LIMIT_DENY = 1           /* refuse the new session: SESS_LIMIT */
} sess_limit_policy;

typedef struct sess_store_limit {
    uint32_t max_per_user;        /* 0 = unlimited */
    sess_limit_policy policy;
} sess_store_limit;

#define SESS_EVICT_MAX 64

/* Handles evicted by an insert, filled by the backend. */
typedef struct sess_store_evicted {
    size_t n;
    uint8_t handle[SESS_EVICT_MAX][SESS_STORE_HANDLE_BYTES];
} sess_store_evicted;

/* Called once per entry by list_user; return non-zero to stop. */
typedef int (*sess_store_list_fn)(void *ctx, const sess_entry *e);

/* Called by purge_each with each entry it deletes (blob included), before
 * the deletion is committed: an entry reported by a purge that then fails
 * may be reported again by the next one (at least once, never lost).  The
 * return value is ignored: a report cannot stop a purge. */
typedef void (*sess_store_purge_fn)(void *ctx, const sess_entry *e);

typedef enum sess_durability {
    SESS_DURABILITY_PROCESS = 0,  /* survives the process dying (kill -9) */
    SESS_DURABILITY_FSYNC = 1,    /* survives power loss too */
    SESS_DURABILITY_REPLICATED = 2 /* Redis: one replica has it (WAIT)
                                    * before create, regenerate and
                                    * destroy are acknowledged */
} sess_durability;

/* What a networked store does when it cannot reach its server. */
typedef enum sess_store_unavailable {
    SESS_UNAVAILABLE_FAIL_CLOSED = 0, /* every operation: SESS_EUNAVAILABLE */
    SESS_UNAVAILABLE_SERVE_CACHED = 1 /* get may answer from the L1 cache
                                       * (a session revoked meanwhile keeps
                                       * working until the server is back) */
} sess_store_unavailable;

/* What the LMDB store does at open with a store file it finds damaged
 * (shorter than its last page, empty where a store existed, or failing
 * the read probe). */
typedef enum sess_store_damage {
    SESS_DAMAGE_REFUSE = 0,       /* the open fails, naming the damage */
    SESS_DAMAGE_RESET = 1         /* the damaged file is renamed aside
                                   * (data.mdb.damaged-TIME, kept for
                                   * inspection) and an empty store is
                                   * made: every session in it is lost */
} sess_store_damage;

/* Options for sess_store_open.  Members are only ever appended and a zero
 * value always means "the default": sess_store_open is a macro passing
 * sizeof(sess_store_options) as the caller's header declares it, and the
 * library reads only that many bytes (members beyond them are zero, the
 * default), so a caller built against an older, shorter struct keeps
 * working (see "struct sizes" in sess/session.h). */
typedef struct sess_store_options {
    sess_durability durability;
    uint64_t map_size;            /* LMDB map size in bytes, 0 = default */

    /* ---- networked stores (Redis) ---- */
    uint32_t timeout_ms;          /* read/write timeout, 0 = 20 */
    uint32_t connect_timeout_ms;  /* 0 = 100 */
    uint32_t pool_size;           /* idle connections kept per server,
                                   * 0 = 16 */
    uint32_t replica_timeout_ms;  /* WAIT under REPLICATED, 0 = 100 */
    const char *password;         /* AUTH password or NULL; copied at open,
                                   * the caller wipes its own copy */
    int l1_cache;                 /* -1 off, 0 default (on), 1 on */
    uint32_t l1_max_entries;      /* 0 = 100000 */
    sess_store_unavailable on_unavailable;

    /* ---- embedded store (LMDB) ---- */
    sess_store_damage on_damage;
    /* 1: the store is shared with a group (the nginx module's workers,
     * docs/nginx-module.md): data.mdb and lock.mdb get group read and
     * write, the directory group search (never group write), also on a
     * store opened before; 0: 0600 and 0700, nobody else can open it. */
    int group_access;
} sess_store_options;

/* Latency buckets of sess_store_stats, upper bounds in microseconds; the
 * last bucket counts everything slower. */
#define SESS_STORE_LAT_BUCKETS 12
#define SESS_STORE_LAT_BOUNDS_US                                            \
    {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, \
     0 /* +Inf */}

/* Counters a store may report (stats, version 3).  Monotonic counters
 * except breaker_open (0 closed, 1 open or half-open) and l1_entries. */
typedef struct sess_store_stats {
    uint64_t l1_hits;
    uint64_t l1_misses;
    uint64_t l1_invalidations;    /* entries dropped by server messages */
    uint64_t l1_flushes;          /* whole-cache flushes (link lost...) */
    uint64_t l1_entries;          /* current size */
    uint64_t timeouts;
    uint64_t reconnects;
    uint64_t errors;
    uint64_t breaker_open;
    uint64_t lat_count[SESS_STORE_LAT_BUCKETS]; /* per bucket, not cumulative */
    uint64_t lat_sum_us;
} sess_store_stats;

/* A position in a scan (version 4), opaque to the caller: zero it to
 * start at the beginning; scan advances it and sets "done" after the last
 * batch.  The bytes may be saved and handed back later, in another
 * process too (a checkpoint), to resume a walk of the same store. */
#define SESS_STORE_CURSOR_BYTES 40
typedef struct sess_store_cursor {
    uint8_t pos[SESS_STORE_CURSOR_BYTES];
    uint32_t len;                 /* bytes of "pos" in use; 0 = start */
    uint32_t done;                /* non-zero: the walk is over */
} sess_store_cursor;

#define SESS_SCAN_BATCH_MAX 4096u /* entries one scan call visits at most */

typedef struct sess_store sess_store;

typedef struct sess_store_methods {
    int version;                  /* 1, 2 (route), 3 (stats) or 4 (purge_each, scan) */
    const char *scheme;           /* URL scheme, e.g. "lmdb", "memory" */

    /* Open the store named by "url" (scheme included).  */
    int (*open)(const char *url, const sess_store_options *opt,
                sess_store **out, sess_err *err);
    void (*close)(sess_store *st);

    /* Fetch the live entry under "key" into "e"; its blob points into
     * "buf".  SESS_OK or SESS_NOTFOUND. */
    int (*get)(sess_store *st, const uint8_t *key, uint64_t now,
               sess_entry *e, sess_store_buf *buf, sess_err *err);

    /* Insert "e" with its handle and user-index entries, enforcing "lim"
     * in the same atomic step: live entries of the user are counted; when
     * the count is >= max, EVICT_OLDEST deletes the oldest until one place
     * is free and reports their handles, DENY returns SESS_LIMIT and
     * changes nothing.  SESS_EXISTS if the key is taken. */
    int (*insert)(sess_store *st, const sess_entry *e,
                  const sess_store_limit *lim, uint64_t now,
                  sess_store_evicted *evicted, sess_err *err);

    /* Compare-and-swap the entry under e->key: succeeds only if the
     * current blob equals "expect" byte for byte (SESS_CONFLICT if not,
     * SESS_NOTFOUND if absent).  Handle and user index are unchanged. */
    int (*update)(sess_store *st, const sess_entry *e,
                  const uint8_t *expect, size_t expect_len, uint64_t now,
                  sess_err *err);

    /* Move a session to a new key in one atomic step: if the entry under
     * "old_key" still has blob "expect" (else SESS_CONFLICT/NOTFOUND),
     * write "next" (handle and user index now point to next->key), and
     * either delete the old entry ("old_tomb" NULL) or overwrite it with
     * "old_tomb" (flag SESS_ENTRY_UNINDEXED, same key). */
    int (*replace)(sess_store *st, const uint8_t *old_key,
                   const uint8_t *expect, size_t expect_len,
                   const sess_entry *old_tomb, const sess_entry *next,
                   uint64_t now, sess_err *err);

    /* Delete the entry under "key" with its index entries.
     * SESS_OK or SESS_NOTFOUND.  The removed entry's handle is copied to
     * "handle_out" when not NULL. */
    int (*remove)(sess_store *st, const uint8_t *key, uint8_t *handle_out,
                  sess_err *err);

    /* Key of the live session with this handle.  SESS_OK/SESS_NOTFOUND. */
    int (*find_handle)(sess_store *st, const uint8_t *handle, uint64_t now,
                       uint8_t *key_out, sess_err *err);

    /* Call "fn" for every live session of "user" (order unspecified). */
    int (*list_user)(sess_store *st, const uint8_t *user, uint64_t now,
                     sess_store_list_fn fn, void *ctx, sess_err *err);

    /* Atomically delete every session of "user" except the one whose
     * handle is "except" (may be NULL); the number deleted goes to "*n". */
    int (*remove_user)(sess_store *st, const uint8_t *user,
                       const uint8_t *except, uint64_t now, size_t *n,
                       sess_err *err);

    /* Delete up to "max" entries that expired before "now". */
    int (*purge)(sess_store *st, uint64_t now, size_t max, size_t *removed,
                 sess_err *err);

    /* SESS_OK when the store answers. */
    int (*ping)(sess_store *st, sess_err *err);

    /* Number of live indexed sessions: entries with expires_at > "now",
     * tombstones (SESS_ENTRY_UNINDEXED) excluded.  For metrics; may cost
     * a walk over the entries that expired but are not purged yet. */
    int (*count)(sess_store *st, uint64_t now, uint64_t *n, sess_err *err);

    /* ---- version 2 ---- */

    /* Optional: NULL when the backend needs no routing.  A backend that
     * spreads data over shards (Redis Cluster) names the shard of a user's
     * sessions as a 14-bit value; the core then writes it into every
     * storage key and handle of that user's sessions (SESS_ROUTE_OF reads
     * it back), so a session, its handle and the user's index share one
     * shard and one atomic script can change them together.  The same 14
     * bits become part of the session ID, whose other 242 bits stay
     * random. */
    int (*route)(sess_store *st, const uint8_t *user, uint16_t *out,
                 sess_err *err);

    /* ---- version 3 ---- */

    /* Optional (NULL: nothing to report): fill "out" with the store's
     * counters (sess_store_stats).  Cheap and lock-free enough to call on
     * every metrics scrape; never talks to a server. */
    int (*stats)(sess_store *st, sess_store_stats *out);

    /* ---- version 4 ---- */

    /* Optional (NULL: the core calls purge and reports nothing): purge,
     * calling "fn" with every entry deleted.  Each entry is reported by
     * the one purge that deleted it, so several processes purging one
     * store report every expiry once between them (lifecycle events,
     * docs/observability.md). */
    int (*purge_each)(sess_store *st, uint64_t now, size_t max, size_t *removed,
                      sess_store_purge_fn fn, void *fn_ctx, sess_err *err);
    /* Walk every live entry (expires_at > "now"), tombstones included, in
     * bounded batches: call "fn" for up to "max" entries (at most
     * SESS_SCAN_BATCH_MAX; a Redis batch may be a little over or under)
     * from "cur" on, then advance "cur" past them, or set cur->done.  The
     * entries carry what a copy needs (key, handle, user, created_at,
     * expires_at, flags and the sealed blob): nothing is decrypted and no
     * session ID exists at this level.  Guarantees (those of Redis SCAN):
     * an entry live for the whole walk is visited at least once; one
     * written or removed meanwhile may or may not be; one may be visited
     * twice, so what "fn" does must be idempotent.  "fn" runs with no lock
     * of the store held and may call into the store (copy, update); a
     * non-zero return ends the batch early (the cursor still moves past
     * the whole batch: resume from a copy saved before the call to redo
     * it).  Optional: NULL when the backend cannot enumerate. */
    int (*scan)(sess_store *st, sess_store_cursor *cur, uint64_t now,
                size_t max, sess_store_list_fn fn, void *ctx, sess_err *err);
} sess_store_methods;

/* The store's scan method, or NULL when it has none (version < 4). */
#define SESS_STORE_SCAN(st) \
    ((st)->methods->version >= 4 ? (st)->methods->scan : NULL)

/* The 14-bit route carried by a routed key or handle (see route). */
#define SESS_ROUTE_OF(bytes) \
    ((uint16_t)((((bytes)[0] & 0x3Fu) << 8) | (bytes)[1]))

/* Base of every backend's store struct (first member). */
struct sess_store {
    const sess_store_methods *methods;
};

/* Register a backend (its scheme must be unique).  Built-ins ("memory",
 * "lmdb") are registered already.  Not thread-safe: call at start-up. */
SESS_NODISCARD int sess_store_register(const sess_store_methods *m);

/* SESS_OK when "url" names a store this build can open (a valid RFC 3986
 * scheme of a registered backend, then ':'); SESS_EINVAL with a message
 * otherwise.  sess_store_open applies the same check first; the backend
 * judges the rest of the URL when it opens. */
SESS_NODISCARD int sess_store_url_check(const char *url, sess_err *err);

/* Open a store by URL: "memory:", "lmdb:PATH", ...  Caller closes with
 * sess_store_close(). */
SESS_NODISCARD int sess_store_open(const char *url,
                                   const sess_store_options *opt,
                                   sess_store **out, sess_err *err);
SESS_NODISCARD int sess_store_open_sized(const char *url,
                                         const sess_store_options *opt,
                                         size_t opt_size, sess_store **out,
                                         sess_err *err);
#ifndef SESS_BUILDING_LIBRARY
#define sess_store_open(url, opt, out, err) \
    sess_store_open_sized((url), (opt), sizeof(sess_store_options), (out), (err))
#endif
void sess_store_close(sess_store *st);

/* ---- observing a store (tracing) ------------------------------------------
 * sess_store_observe() wraps a store so that every operation is reported,
 * once it returns, to an observer on the calling thread: which operation,
 * on which backend, when and for how long, its result, whether the Redis
 * L1 cache answered, and which Redis server was asked.  sessiond turns
 * these into child spans of a request's span (docs/observability.md).
 * Nothing is reported about keys, handles or records. */

typedef enum sess_store_l1 {
    SESS_STORE_L1_NONE = 0,       /* the store has no L1 cache, or the
                                   * operation does not consult it */
    SESS_STORE_L1_HIT = 1,
    SESS_STORE_L1_MISS = 2
} sess_store_l1;

#define SESS_STORE_NODE_MAX 64      /* "host:port" of a Redis server */

typedef struct sess_store_op {
    const char *op;               /* "get", "insert", ... (static) */
    const char *backend;          /* the observed store's scheme (static) */
    uint64_t start_ns;            /* CLOCK_REALTIME, ns since the epoch */
    uint64_t duration_ns;         /* CLOCK_MONOTONIC, ns */
    int rc;                       /* the operation's result */
    sess_store_l1 l1;
    char node[SESS_STORE_NODE_MAX]; /* last server asked, "" if none */
} sess_store_op;

typedef struct sess_store_observer {
    /* Called before each operation on its thread; false: run it without
     * timing or reporting (an unsampled request costs one call).  NULL
     * means always. */
    bool (*want)(void *user);
    /* Called after each wanted operation on the same thread. */
    void (*done)(void *user, const sess_store_op *op);
    void *user;
} sess_store_observer;

/* Wrap "inner" (which the wrapper then owns: closing "*out" closes it)
 * so that its operations are reported to "obs" (copied).  The wrapper
 * forwards everything else unchanged, the optional methods included. */
SESS_NODISCARD int sess_store_observe(sess_store *inner,
                                      const sess_store_observer *obs,
                                      sess_store **out, sess_err *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_STORE_H */
