/*
 * store_redis.h - what the Redis store (store_redis.c: method table, key
 * layout, Lua scripts, L1 cache) and its connection layer
 * (store_redis_conn.c: URLs, topologies, pools, breaker, cluster routing,
 * Sentinel failover, invalidation subscribers) share.
 *
 * The connection layer knows commands and servers, never sessions: it
 * runs a short pipeline of commands on one connection to the server that
 * owns a hash slot and hands back type-unchecked replies, which the caller
 * must check.  It reports invalidation messages through two callbacks.
 * Every function here is safe to call from many threads at once.
 */
#ifndef SESS_STORE_REDIS_H
#define SESS_STORE_REDIS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "sess/store.h"

#define SESS_REDIS_SLOTS 16384       /* Redis Cluster specification */
#define SESS_REDIS_MAX_PIPE 4        /* commands in one exchange */
#define SESS_REDIS_ANY_SLOT (-1)     /* any node (standalone: the server) */

typedef enum sess__redis_kind {
    SESS_REDIS_STANDALONE = 0,
    SESS_REDIS_SENTINEL = 1,
    SESS_REDIS_CLUSTER = 2
} sess__redis_kind;

/* One command of a pipeline: argv form, binary safe. */
typedef struct sess__redis_cmd {
    int argc;
    const char *argv[20];
    size_t len[20];
} sess__redis_cmd;

/* Counters shared by both halves, all relaxed atomics. */
typedef struct sess__redis_counters {
    atomic_uint_fast64_t l1_invalidations, l1_flushes; /* hits, misses: store_redis.c */
    atomic_uint_fast64_t timeouts, reconnects, errors;
    atomic_uint_fast64_t lat_count[SESS_STORE_LAT_BUCKETS];
    atomic_uint_fast64_t lat_sum_us;
} sess__redis_counters;

typedef struct sess__redis sess__redis;

/* Called by subscriber threads: a key named by "name" ("len" bytes) was
 * changed on the server, or (flush) everything cached must go. */
typedef struct sess__redis_hooks {
    void *ctx;
    void (*invalidate)(void *ctx, const char *name, size_t len);
    void (*flush)(void *ctx);
} sess__redis_hooks;

typedef struct sess__redis_config {
    uint32_t timeout_ms, connect_timeout_ms, pool_size, replica_timeout_ms;
    const char *password;           /* copied; may be NULL */
    bool tracking;                  /* run invalidation subscribers */
    sess__redis_hooks hooks;
    sess__redis_counters *counters; /* owned by the caller, outlives us */
} sess__redis_config;

/* Parse "url" and connect lazily: open fails only on a malformed URL or
 * options; an unreachable server is found by the first operation. */
int sess__redis_open(const char *url, const sess__redis_config *cfg,
                     sess__redis **out, sess_err *err);
void sess__redis_close(sess__redis *r);
sess__redis_kind sess__redis_kind_of(const sess__redis *r);

/* Flags for sess__redis_exec. */
#define SESS_REDIS_WAIT_REPLICA 0x1u /* append WAIT 1 replica_timeout_ms */
#define SESS_REDIS_TRACK 0x2u        /* prefix CLIENT CACHING yes (L1) */
#define SESS_REDIS_FENCE 0x4u        /* one more round trip (PING) before
                                      * returning: see store_redis_conn.c */

/* Run "n" commands pipelined on one connection to the server owning
 * "slot" (SESS_REDIS_ANY_SLOT: any primary), following MOVED and ASK and
 * the Sentinel's answer.  On SESS_OK "rep[0..n-1]" hold the replies (the
 * caller frees them with freeReplyObject and checks their types; a reply
 * may be an error).  "*tracked" (may be NULL) tells whether the reads ran
 * on a connection whose invalidations reach this process now, and
 * "*track_epoch" the link epoch they belong to.  Errors: SESS_EUNAVAILABLE
 * (unreachable, timeout, breaker open, failover in progress), SESS_EIO. */
int sess__redis_exec(sess__redis *r, int slot, unsigned flags,
                     const sess__redis_cmd *cmds, size_t n, redisReply **rep,
                     bool *tracked, uint64_t *track_epoch, const char *op,
                     sess_err *err);

/* Run "cmds" (n <= 64 per call is sensible) on every primary and call "fn"
 * with each reply in order; for count and purge, which visit every slot.
 * "make" builds the command for slot-group "i" of "total". */
typedef void (*sess__redis_make_fn)(void *ctx, uint32_t tag, sess__redis_cmd *cmd);
typedef int (*sess__redis_reply_fn)(void *ctx, uint32_t tag, redisReply *rep);
int sess__redis_each_tag(sess__redis *r, sess__redis_make_fn make,
                         sess__redis_reply_fn fn, void *ctx, const char *op,
                         sess_err *err);

/* One step of a walk over the keys matching "match" on every primary
 * (SCAN, the scan method): primaries are taken in the order of the
 * lowest slot each serves; "*node" is the ordinal of the current one,
 * "*node_slot" that lowest slot (a topology change between two steps
 * restarts the walk from the first primary: a scan may visit an entry
 * twice) and "*cursor" the server's SCAN cursor.  Runs one SCAN of about
 * "count" keys, then GETs the names it returned, pipelined on the same
 * server (a slot moved meanwhile is followed through the router), and
 * calls "fn" with each name and its value reply (which may be nil: the
 * key went away).  "*done" is set after the last primary's last step. */
typedef int (*sess__redis_scan_fn)(void *ctx, const char *name, size_t len,
                                   redisReply *value);
int sess__redis_scan_step(sess__redis *r, uint32_t *node, uint32_t *node_slot,
                          uint64_t *cursor, const char *match, size_t count,
                          sess__redis_scan_fn fn, void *ctx, bool *done,
                          sess_err *err);

/* The current invalidation epoch: changes whenever a link goes down or
 * comes back (all L1 entries of older epochs are gone by then). */
uint64_t sess__redis_track_epoch(sess__redis *r);

/* True when every invalidation the servers sent so far has been applied
 * (no message is waiting in a subscriber socket or being applied) and
 * every link is up.  Checked before an L1 hit is served. */
bool sess__redis_track_quiet(sess__redis *r);

/* 1 when a server's breaker is open, else 0. */
int sess__redis_breaker_open(sess__redis *r);

/* The cluster hash slot of "n" bytes of a key name (CRC16-XMODEM of the
 * hash tag, Redis Cluster specification). */
uint16_t sess__redis_slot(const char *name, size_t n);

/* Test hook: FLUSHALL on every primary (store conformance only). */
int sess__redis_flushall(sess__redis *r, sess_err *err);

#endif /* SESS_STORE_REDIS_H */
