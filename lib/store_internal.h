/*
 * store_internal.h - what the store registry (store.c) and the built-in
 * backends (store_memory.c, store_lmdb.c) share: the built-in method
 * tables, URL and argument checks every backend applies the same way, and
 * the eviction order of the per-user limit.
 *
 * Invariant kept by every backend (see sess/store.h): an entry is live
 * when expires_at > now, and only live entries are visible or counted
 * toward a limit.  The helpers below are pure; they take no locks.
 */
#ifndef SESS_STORE_INTERNAL_H
#define SESS_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/store.h"

extern const sess_store_methods sess__store_memory_methods;
extern const sess_store_methods sess__store_lmdb_methods;
extern const sess_store_methods sess__store_migrate_methods;
extern const sess_store_methods sess__store_fault_methods;

/* ---- the fault store (store_fault.c), for tests ---------------------------
 * "fault:INNER-URL" forwards to INNER-URL and fails the calls a test arms.
 * Operations are counted from the last arm or reset, per op and in all
 * (index SESS__FOP_N of sess__fault_calls). */
typedef enum sess__fault_op {
    SESS__FOP_GET, SESS__FOP_INSERT, SESS__FOP_UPDATE, SESS__FOP_REPLACE,
    SESS__FOP_REMOVE, SESS__FOP_FIND_HANDLE, SESS__FOP_LIST_USER,
    SESS__FOP_REMOVE_USER, SESS__FOP_PURGE, SESS__FOP_PING, SESS__FOP_COUNT,
    SESS__FOP_ROUTE,
    SESS__FOP_N,               /* number of operations */
    SESS__FOP_ANY = SESS__FOP_N /* arm: whichever operation comes */
} sess__fault_op;

typedef enum sess__fault_when {
    SESS__FAULT_BEFORE = 0,  /* fail without calling the inner store */
    SESS__FAULT_AFTER = 1    /* call it, then report the failure anyway */
} sess__fault_when;

/* Disarm and zero the counters. */
void sess__fault_reset(void);
/* Fail call number "nth" (1-based; 0 = every call) of "op" (or of all
 * operations together with SESS__FOP_ANY) with "code", and zero the
 * counters. */
void sess__fault_arm(sess__fault_op op, uint64_t nth, int code,
                     sess__fault_when when);
/* Calls of "op" since the last arm/reset (SESS__FOP_N: all of them). */
uint64_t sess__fault_calls(sess__fault_op op);
/* Failures injected since the last arm/reset. */
uint64_t sess__fault_hits(void);
#ifdef SESS_WITH_REDIS
extern const sess_store_methods sess__store_redis_methods;
extern const sess_store_methods sess__store_redis_sentinel_methods;
extern const sess_store_methods sess__store_redis_cluster_methods;

/* Test hook (store conformance only): empty every primary behind a Redis
 * store (FLUSHALL) and its L1 cache.  Never called by the daemon. */
int sess__store_redis_flushall(sess_store *st, sess_err *err);
#endif

/* ---- notes for an observed operation (store_observe.c) --------------------
 * While an observed store (sess_store_observe) runs an operation on this
 * thread, "sess__store_note_cur" points at the note the wrapper reports;
 * backends add what only they know (L1 cache hit or miss, the Redis server
 * asked).  NULL otherwise, so an unobserved store pays one thread-local
 * load per note. */
typedef struct sess__store_note {
    int l1;                             /* sess_store_l1 */
    char node[SESS_STORE_NODE_MAX];
} sess__store_note;

extern _Thread_local sess__store_note *sess__store_note_cur;

static inline void sess__store_note_l1(bool hit)
{
    sess__store_note *n = sess__store_note_cur;
    if (n)
        n->l1 = hit ? SESS_STORE_L1_HIT : SESS_STORE_L1_MISS;
}

/* Name the server an operation is sent to ("host:port"). */
void sess__store_note_node(const char *host, int port);

/* Entries are gone at or after expires_at (sess/store.h). */
static inline bool sess__store_live(uint64_t expires_at, uint64_t now)
{
    return expires_at > now;
}

static inline bool sess__store_indexed(uint32_t flags)
{
    return (flags & SESS_ENTRY_UNINDEXED) == 0;
}

/* The part of "url" after "scheme:", or NULL when "url" does not start
 * with "scheme" followed by ':' (scheme compared without case, RFC 3986
 * section 3.1). */
const char *sess__store_url_rest(const char *url, const char *scheme);

/* Check an entry handed to insert/update/replace: non-NULL, blob present
 * when blob_len > 0, blob_len <= SESS_STORE_BLOB_MAX (SESS_ETOOBIG).
 * "op" names the operation in the message. */
int sess__store_check_entry(const sess_entry *e, const char *op,
                            sess_err *err);

/* The argument checks every backend's replace starts with: an old key,
 * "expect" when "expect_len" > 0, valid entries, and a new key other than
 * the old one.  "backend" ("lmdb", ...) names the store in the message. */
int sess__store_check_replace(const uint8_t *old_key, const uint8_t *expect,
                              size_t expect_len, const sess_entry *old_tomb,
                              const sess_entry *next, const char *backend,
                              sess_err *err);

/* One live session of a user considered for eviction. */
typedef struct sess__evict_cand {
    uint64_t created_at;
    uint8_t key[SESS_STORE_KEY_BYTES];
    uint8_t handle[SESS_STORE_HANDLE_BYTES];
    void *ref;                  /* backend's own pointer, may be NULL */
} sess__evict_cand;

/* Sort "n" candidates oldest first: smallest created_at, ties broken by
 * key so that every backend evicts the same session. */
void sess__store_sort_cands(sess__evict_cand *c, size_t n);

/* Append "handle" to "ev" (may be NULL) while there is room; handles past
 * SESS_EVICT_MAX are evicted but not reported. */
void sess__store_report_evicted(sess_store_evicted *ev, const uint8_t *handle);

/* ---- scan batches (the scan method, version 4) ---------------------------
 * A backend collects one batch under its lock or in its read transaction
 * (copies of the entries and their sealed blobs), releases it, then hands
 * the batch to the caller's callback: the callback may call back into the
 * store.  Blobs are wiped when the batch is freed. */
typedef struct sess__scan_batch {
    sess_entry *e;
    size_t *off;                  /* offset of each blob in "blobs" */
    size_t n, cap;
    sess_store_buf blobs;
} sess__scan_batch;

/* Copy "e" (its blob too) into "b".  SESS_OK or SESS_ENOMEM. */
int sess__scan_add(sess__scan_batch *b, const sess_entry *e);
/* Call "fn" for every entry of "b" in order; stops at a non-zero return. */
void sess__scan_emit(sess__scan_batch *b, sess_store_list_fn fn, void *ctx);
void sess__scan_free(sess__scan_batch *b);
/* The batch size a scan call uses for "max": at least 1, at most
 * SESS_SCAN_BATCH_MAX. */
size_t sess__scan_max(size_t max);

#endif /* SESS_STORE_INTERNAL_H */
