/*
 * session.c - the session lifecycle over a store: create, validate (with
 * coalesced touch and periodic rotation), regenerate, data update,
 * destroy, CSRF, listing and revocation.  This is where the security
 * invariants of docs/security.md live; backends below only keep bytes atomically.
 *
 * Keys of a session.  The client holds ID (43 chars, 256 random bits).
 * The store key is SHA-256(ID); the handle is derived from the store key
 * of the ID issued at login (or at the last regenerate) and survives
 * periodic rotation; the user index key is a labelled SHA-256 of the user
 * id.  None of these lets anyone rebuild an ID (docs/security.md invariant 2).
 *
 * Rotation (docs/security.md invariant 5).  When the ID is older than rotate_interval, the
 * first request to notice writes, in one atomic store operation, the new
 * record under the new key and a ROTATED tombstone under the old key.  The
 * tombstone holds the successor ID encrypted under a key derived from the
 * old ID (which is never stored), so for rotation_grace seconds every
 * request that still carries the old ID gets the same successor, and a
 * dump of the store still cannot produce a usable ID.  Requests that lose
 * the race see the tombstone on re-read and get the winner's successor.
 * regenerate replaces the ID with a REVOKED tombstone instead: dead at once.
 *
 * Touch coalescing.  The idle deadline is persisted only when it would move
 * by at least 1/20 of the idle timeout (at least one second), so steady
 * traffic costs one write per session per interval, not one per request.
 * The effective idle timeout is therefore between 95% and 100% of the one
 * configured.
 *
 * Expired records stay in the store (unreadable to every index operation)
 * for SESS__RETAIN seconds so validate can say "expired_idle" rather than
 * "unknown"; the purge removes them after that.
 *
 * Threads.  A context is shared by all threads, and the validate path
 * writes nothing shared: the keyring is an atomically published pointer
 * (a reload swaps it and frees the old one once no thread announces it in
 * its hazard slot; see "Keyring reclamation"), counters are sharded per
 * thread, and each thread has its own scratch buffers (pthread key), so a
 * warm validate does not allocate either.
 */
#include <arpa/inet.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sess/cookie.h"
#include "sess/session.h"
#include "crypto.h"
#include "record.h"
#include "record_cache.h"
#include "util.h"

#define SESS__RETAIN SESS_ENTRY_RETAIN         /* seconds an expired record is kept */
#define SESS__ATTEMPTS 8          /* retries of a lost compare-and-swap */

/* ---- context ------------------------------------------------------------ */

/* Counters, one set per shard: each thread counts into its own shard
 * (picked once, round robin), so validations on different cores never
 * write the same cache line; sess_get_stats() adds the shards up. */
#define STAT_FIELDS(X)                                                      \
    X(created) X(validate_ok) X(validate_unknown) X(validate_expired_idle)  \
    X(validate_expired_absolute) X(validate_binding_mismatch)               \
    X(validate_revoked) X(validate_error) X(rotations) X(regenerations)     \
    X(destroyed) X(evictions) X(limit_denied) X(binding_mismatches)         \
    X(csrf_failures) X(touches_written) X(reuse_after_grace)                \
    X(record_cache_hits) X(record_cache_misses) X(rotations_deferred)

typedef struct stats_shard {
#define STAT_MEMBER(f) _Atomic uint64_t f;
    STAT_FIELDS(STAT_MEMBER)
#undef STAT_MEMBER
} __attribute__((aligned(64))) stats_shard;

#define STAT_SHARDS 16
#define KEYRINGS_RETIRED_MAX 64

struct sess_ctx {
    sess_config cfg;
    sess_store *store;
    /* The keyring is published with an atomic pointer and read without a
     * lock.  A replaced keyring is retired: freed at the reload that finds
     * no thread announcing it (normally the same reload), so a thread
     * still opening a record with it never sees it freed; keys the new
     * keyring drops are wiped in it at once.  "retired" holds only those
     * still announced, so its bound is never met in practice. */
    _Atomic(sess_keyring *) keys;
    pthread_mutex_t reload_lock;
    sess_keyring *retired[KEYRINGS_RETIRED_MAX];
    size_t n_retired;
    /* Opened-record cache (record_cache.h), NULL when off.  Entries carry
     * the keyring generation they were opened under; a reload bumps it
     * after publishing the new keyring, so a cached plaintext is never
     * served under a keyring other than the one that opened it. */
    sess__rcache *rcache;
    _Atomic uint32_t key_gen;
    /* The store's answer to the last rotation it refused (validate served
     * the session unrotated), 0 when none: for sess_get_stats. */
    _Atomic int last_deferral;
    sess_clock_fn clock;
    void *clock_user;
    sess_event_fn on_event;
    void *event_user;
    stats_shard st[STAT_SHARDS];
};

static stats_shard *my_shard(sess_ctx *ctx)
{
    return &ctx->st[sess__thread_index() % STAT_SHARDS];
}

static const sess_keyring *keys_now(const sess_ctx *ctx)
{
    return atomic_load_explicit(&((sess_ctx *)ctx)->keys, memory_order_acquire);
}

/* The keyring generation; read it before keys_now() so that a record
 * opened or sealed with a keyring is never cached under a later one. */
static uint32_t key_gen_now(const sess_ctx *ctx)
{
    return atomic_load_explicit(&((sess_ctx *)ctx)->key_gen, memory_order_acquire);
}

/* Keyring reclamation, defined after the per-thread scratch it reads. */
static void keys_reclaim_init(void);
static void keys_reclaim(sess_ctx *ctx);

static _Atomic uint64_t login_seq;

#define COUNT(ctx, field) \
    atomic_fetch_add_explicit(&my_shard(ctx)->field, 1, memory_order_relaxed)

static uint64_t wall_clock(void *user)
{
    struct timespec ts;
    (void)user;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec;
}

void sess_config_defaults(sess_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->idle_timeout = 1800;
    cfg->absolute_timeout = 86400;
    cfg->remember_idle_timeout = 604800;
    cfg->remember_absolute_timeout = 2592000;
    cfg->rotate_interval = 300;
    cfg->rotation_grace = 30;
    cfg->max_per_user = 3;
    cfg->limit_policy = SESS_LIMIT_EVICT_OLDEST;
    cfg->ip_prefix_v4 = 24;
    cfg->ip_prefix_v6 = 64;
    cfg->bind_user_agent = true;
    cfg->bind_action = SESS_BIND_REJECT;
    cfg->csrf_enabled = true;
    cfg->record_cache_entries = 65536;
    cfg->reuse_action = SESS_REUSE_REVOKE;
}

int sess_config_check(const sess_config *c, sess_err *err)
{
    const uint32_t year = 366u * 86400u;
    if (c->idle_timeout == 0 || c->idle_timeout > year)
        return sess__fail(err, SESS_ECONFIG,
                          "session.idle_timeout: must be 1..%u seconds", year);
    /* The one copy of the timeout ordering rules (the daemon's config
     * check calls this function). */
    if (c->absolute_timeout < c->idle_timeout)
        return sess__fail(err, SESS_ECONFIG,
                          "session.absolute_timeout: must be at least "
                          "session.idle_timeout (%lu), is %lu",
                          (unsigned long)c->idle_timeout,
                          (unsigned long)c->absolute_timeout);
    if (c->absolute_timeout > 10 * year)
        return sess__fail(err, SESS_ECONFIG,
                          "session.absolute_timeout: at most ten years");
    if (c->remember_idle_timeout == 0 || c->remember_idle_timeout > year)
        return sess__fail(err, SESS_ECONFIG,
                          "session.remember_idle_timeout: must be 1..%u seconds",
                          year);
    if (c->remember_absolute_timeout < c->remember_idle_timeout)
        return sess__fail(err, SESS_ECONFIG,
                          "session.remember_absolute_timeout: must be at least "
                          "session.remember_idle_timeout (%lu), is %lu",
                          (unsigned long)c->remember_idle_timeout,
                          (unsigned long)c->remember_absolute_timeout);
    if (c->remember_absolute_timeout > 10 * year)
        return sess__fail(err, SESS_ECONFIG,
                          "session.remember_absolute_timeout: at most ten years");
    /* A grace as long as the interval would let the successor rotate
     * while the old ID still points at it. */
    if (c->rotate_interval && c->rotation_grace >= c->rotate_interval)
        return sess__fail(err, SESS_ECONFIG,
                          "session.rotation_grace: must be shorter than "
                          "rotate_interval");
    if (c->rotation_grace > 3600)
        return sess__fail(err, SESS_ECONFIG,
                          "session.rotation_grace: at most 3600 seconds");
    if (c->max_per_user > 1000)
        return sess__fail(err, SESS_ECONFIG,
                          "session.max_per_user: at most 1000 (0 = unlimited)");
    if (c->limit_policy != SESS_LIMIT_EVICT_OLDEST &&
        c->limit_policy != SESS_LIMIT_DENY)
        return sess__fail(err, SESS_ECONFIG, "session.limit_policy: unknown policy");
    if (c->ip_prefix_v4 > 32)
        return sess__fail(err, SESS_ECONFIG, "binding.ip_prefix_v4: 0..32");
    if (c->ip_prefix_v6 > 128)
        return sess__fail(err, SESS_ECONFIG, "binding.ip_prefix_v6: 0..128");
    if (c->bind_action != SESS_BIND_REJECT && c->bind_action != SESS_BIND_LOG)
        return sess__fail(err, SESS_ECONFIG, "binding.action: unknown action");
    if (c->reuse_action != SESS_REUSE_REVOKE && c->reuse_action != SESS_REUSE_LOG)
        return sess__fail(err, SESS_ECONFIG,
                          "session.on_reuse_after_grace: unknown action");
    if (c->record_cache_entries > (1u << 24))
        return sess__fail(err, SESS_ECONFIG,
                          "store.record_cache: at most %u entries (0 = off)",
                          1u << 24);
    return SESS_OK;
}

int sess_ctx_new(const sess_config *cfg, sess_store *store, sess_keyring *keys,
                 sess_ctx **out, sess_err *err)
{
    sess_ctx *ctx = NULL;
    int rc;

    if (!cfg || !store || !keys || !out) {
        rc = sess__fail(err, SESS_EINVAL, "sess_ctx_new: missing argument");
        goto fail;
    }
    if ((rc = sess_config_check(cfg, err)) != SESS_OK)
        goto fail;
    if (!sess_keyring_count(keys)) {
        rc = sess__fail(err, SESS_ECONFIG, "keyring is empty");
        goto fail;
    }
    keys_reclaim_init();
    ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg->record_cache_entries &&
        !(ctx->rcache = sess__rcache_new(cfg->record_cache_entries))) {
        free(ctx);
        ctx = NULL;
        rc = sess__fail(err, SESS_ENOMEM, "out of memory for the record cache");
        goto fail;
    }
    ctx->cfg = *cfg;
    ctx->store = store;
    atomic_init(&ctx->keys, keys);
    ctx->clock = wall_clock;
    pthread_mutex_init(&ctx->reload_lock, NULL);
    *out = ctx;
    return SESS_OK;
fail:
    if (store)
        sess_store_close(store);
    sess_keyring_free(keys);
    return rc;
}

void sess_ctx_free(sess_ctx *ctx)
{
    if (!ctx)
        return;
    sess_store_close(ctx->store);
    sess_keyring_free(atomic_load(&ctx->keys));
    for (size_t i = 0; i < ctx->n_retired; i++)
        sess_keyring_free(ctx->retired[i]);
    pthread_mutex_destroy(&ctx->reload_lock);
    sess__rcache_free(ctx->rcache);
    free(ctx);
}

void sess_ctx_set_clock(sess_ctx *ctx, sess_clock_fn fn, void *user)
{
    ctx->clock = fn ? fn : wall_clock;
    ctx->clock_user = user;
}

void sess_ctx_set_event_handler(sess_ctx *ctx, sess_event_fn fn, void *user)
{
    ctx->on_event = fn;
    ctx->event_user = user;
}

uint64_t sess_ctx_now(const sess_ctx *ctx)
{
    return ctx->clock(ctx->clock_user);
}

const sess_config *sess_ctx_config(const sess_ctx *ctx)
{
    return &ctx->cfg;
}

int sess_ctx_reload_keys(sess_ctx *ctx, sess_keyring *keys, bool allow_drop,
                         sess_err *err)
{
    int rc = SESS_OK;
    if (!keys || !sess_keyring_count(keys)) {
        sess_keyring_free(keys);
        return sess__fail(err, SESS_ECONFIG, "new keyring is empty");
    }
    pthread_mutex_lock(&ctx->reload_lock);
    sess_keyring *cur = atomic_load(&ctx->keys);
    bool dropped = false;
    for (size_t i = 0; i < cur->n; i++) {
        const sess__key *k = &cur->keys[i];
        const sess__key *nk = sess__keyring_find(keys, k->kid, k->kid_len);
        if (!nk && !allow_drop) {
            rc = sess__fail(err, SESS_ECONFIG,
                            "new keyring lacks key id '%s'; sessions sealed "
                            "with it would be lost", k->kid);
            break;
        }
        /* A key id pins its material (the trial the key files' pins make
         * across restarts, made here in memory): new bytes under a known
         * id would make every session sealed with it unreadable, and a
         * reload must not do that while saying "reloaded". */
        if (nk && !sess__ct_equal(nk->key, k->key, SESS_KEY_BYTES)) {
            rc = sess__fail(err, SESS_ECONFIG,
                            "key id '%s' now holds different bytes; sessions "
                            "sealed with it would become unreadable", k->kid);
            break;
        }
        dropped |= !nk;
    }
    if (rc == SESS_OK && ctx->n_retired == KEYRINGS_RETIRED_MAX)
        keys_reclaim(ctx);        /* what the last reloads could not free */
    if (rc == SESS_OK && ctx->n_retired == KEYRINGS_RETIRED_MAX)
        rc = sess__fail(err, SESS_ECONFIG,
                        "%d replaced keyrings still in use: reload again "
                        "later", KEYRINGS_RETIRED_MAX);
    if (rc == SESS_OK) {
        atomic_store_explicit(&ctx->keys, keys, memory_order_release);
        /* Keys the new keyring no longer has will never be used again. */
        for (size_t i = 0; i < cur->n; i++)
            if (!sess__keyring_find(keys, cur->keys[i].kid, cur->keys[i].kid_len))
                sess__wipe(cur->keys[i].key, sizeof cur->keys[i].key);
        /* ... nor should any thread's cipher context keep them. */
        if (dropped)
            sess__crypto_forget_keys();
        ctx->retired[ctx->n_retired++] = cur;
        keys = NULL;
        atomic_fetch_add_explicit(&ctx->key_gen, 1, memory_order_release);
        sess__rcache_clear(ctx->rcache);
        keys_reclaim(ctx);
    }
    pthread_mutex_unlock(&ctx->reload_lock);
    sess_keyring_free(keys);
    return rc;
}

const char *sess_reason_name(sess_reason r)
{
    static const char *const names[] = {"", "unknown", "expired_idle",
                                        "expired_absolute", "binding_mismatch",
                                        "revoked"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

const char *sess_event_name(sess_event_type t)
{
    static const char *const names[] = {
        "binding_mismatch", "reuse_after_grace", "csrf_failure",
        "limit_eviction",   "limit_denied",      "revoke",
        "corrupt_record",   "token_reuse",       "created",
        "rotated",          "regenerated",       "elevated",
        "destroyed",        "expired"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

void sess_emit_event(sess_ctx *ctx, const sess_event *ev)
{
    if (ev->type == SESS_EVENT_CSRF_FAILURE)
        COUNT(ctx, csrf_failures);
    if (ctx->on_event)
        ctx->on_event(ctx->event_user, ev);
}

/* ---- per-thread scratch ------------------------------------------------ */

/* A record as loaded: the store entry, its sealed blob, the plaintext. */
typedef struct loaded {
    uint8_t key[SESS_STORE_KEY_BYTES];
    sess_entry entry;
    sess__record rec;
    sess_store_buf blob;
    sess_store_buf pt;
} loaded;

typedef struct scratch {
    loaded a, b;                  /* presented ID, and its successor */
    sess_store_buf enc;           /* encoded plaintext before sealing */
    sess_store_buf seal[2];       /* sealed outputs */
    /* The keyring this thread is using now, NULL when none: its hazard
     * pointer (see "Keyring reclamation"). */
    _Atomic(const sess_keyring *) keys_in_use;
    struct scratch *reg_prev, *reg_next;  /* every thread's, under reg_lock */
} scratch;

static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;
/* Every live thread's scratch, so a reload can read their hazard slots. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static scratch *reg_head;

/* The thread's scratch: the pthread key frees it when the thread ends;
 * the thread-local pointer saves the key lookup on every call. */
static _Thread_local scratch *thread_scratch_ptr;

static void scratch_free(void *p)
{
    scratch *s = p;
    thread_scratch_ptr = NULL;     /* runs on the exiting thread */
    pthread_mutex_lock(&reg_lock);
    if (s->reg_prev)
        s->reg_prev->reg_next = s->reg_next;
    else
        reg_head = s->reg_next;
    if (s->reg_next)
        s->reg_next->reg_prev = s->reg_prev;
    pthread_mutex_unlock(&reg_lock);
    sess_store_buf *bufs[] = {&s->a.blob, &s->a.pt, &s->b.blob, &s->b.pt,
                              &s->enc, &s->seal[0], &s->seal[1]};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        sess__wipe(bufs[i]->data, bufs[i]->cap);
        sess_store_buf_free(bufs[i]);
    }
    sess__wipe(s, sizeof *s);
    free(s);
}

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

static scratch *thread_scratch(void)
{
    scratch *s = thread_scratch_ptr;
    if (s)
        return s;
    pthread_once(&scratch_once, scratch_init);
    s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (s && pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            s = NULL;
        }
        if (s) {
            pthread_mutex_lock(&reg_lock);
            s->reg_next = reg_head;
            if (reg_head)
                reg_head->reg_prev = s;
            reg_head = s;
            pthread_mutex_unlock(&reg_lock);
        }
    }
    thread_scratch_ptr = s;
    return s;
}

/* ---- keyring reclamation ------------------------------------------------ *
 *
 * A reload publishes the new keyring with one atomic store; a thread that
 * read the old pointer just before may still be opening or sealing a
 * record with it.  So a thread announces the keyring it uses in its
 * scratch (a hazard pointer: one store before the crypto call, one after,
 * and a re-check that the pointer is still current), and a reload frees a
 * replaced keyring only when no thread announces it.
 *
 * The announcing store needs a store-load fence before the re-check, which
 * would cost every validate an mfence.  Instead the reload makes every
 * running thread of the process execute one: membarrier(2) with
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED, after publishing and before reading
 * the slots.  A thread either announced before that barrier (the reload
 * sees it and keeps the keyring) or re-checks after it (and sees the new
 * pointer, so it never uses the old one).  Where the kernel lacks it (or
 * SESS_NO_MEMBARRIER is set), threads fence themselves.
 */

static pthread_once_t membarrier_once = PTHREAD_ONCE_INIT;
static bool membarrier_ok;        /* set once, before any context exists */

/* SESS_NO_MEMBARRIER (any value) makes threads fence themselves even where
 * the kernel has membarrier: the suite runs the unit tests both ways, and
 * it is a way out should a sandbox answer membarrier wrongly. */
static void membarrier_init(void)
{
    if (secure_getenv("SESS_NO_MEMBARRIER"))
        return;
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    membarrier_ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                            0, 0) == 0;
}

static void keys_reclaim_init(void)
{
    pthread_once(&membarrier_once, membarrier_init);
}

/* The current keyring, announced in "S" until keys_release. */
static const sess_keyring *keys_hold(const sess_ctx *ctx, scratch *S)
{
    const sess_keyring *k = keys_now(ctx), *again;
    for (;;) {
        atomic_store_explicit(&S->keys_in_use, k, memory_order_relaxed);
        if (membarrier_ok)
            atomic_signal_fence(memory_order_seq_cst);   /* the reload fences */
        else
            atomic_thread_fence(memory_order_seq_cst);
        again = keys_now(ctx);
        if (again == k)
            return k;
        k = again;
    }
}

static void keys_release(scratch *S)
{
    atomic_store_explicit(&S->keys_in_use, NULL, memory_order_release);
}

static bool keys_announced(const sess_keyring *k)
{
    for (const scratch *s = reg_head; s; s = s->reg_next)
        if (atomic_load_explicit(&s->keys_in_use, memory_order_acquire) == k)
            return true;
    return false;
}

/* Free the retired keyrings no thread announces.  reload_lock held; every
 * keyring in "retired" has already been replaced (unpublished). */
static void keys_reclaim(sess_ctx *ctx)
{
    if (membarrier_ok) {
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
            return;               /* no barrier, no proof: keep them */
    } else {
        atomic_thread_fence(memory_order_seq_cst);
    }
    size_t kept = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < ctx->n_retired; i++) {
        if (keys_announced(ctx->retired[i]))
            ctx->retired[kept++] = ctx->retired[i];
        else
            sess_keyring_free(ctx->retired[i]);
    }
    pthread_mutex_unlock(&reg_lock);
    ctx->n_retired = kept;
}

/* sess__open or sess__seal ("op") with the current keyring, held
 * meanwhile. */
typedef int (*keyring_op)(const sess_keyring *kr, const uint8_t *skey, const uint8_t *in,
                          size_t in_len, sess_store_buf *out, sess_err *err);

static int with_keys(keyring_op op, const sess_ctx *ctx, scratch *S, const uint8_t *skey,
                     const uint8_t *in, size_t in_len, sess_store_buf *out, sess_err *err)
{
    int rc = op(keys_hold(ctx, S), skey, in, in_len, out, err);
    keys_release(S);
    return rc;
}

/* ---- helpers ------------------------------------------------------------ */

static void user_key(const char *user, size_t len, uint8_t out[32])
{
    sess__sha256_labeled("sessiond user v1", user, len, out);
}

/* Routing (store.h, route): a sharded backend asks that every key and
 * handle of a user carry the user's 14-bit shard number in their first two
 * bytes.  -1 means the store does not route. */
static bool store_routes(const sess_ctx *ctx)
{
    const sess_store_methods *m = ctx->store->methods;
    return m->version >= 2 && m->route != NULL;
}

static void apply_route(uint8_t *bytes, int32_t route)
{
    if (route < 0)
        return;
    bytes[0] = (uint8_t)((bytes[0] & 0xC0u) | ((unsigned)route >> 8 & 0x3Fu));
    bytes[1] = (uint8_t)(route & 0xFF);
}

static int32_t route_of_key(const sess_ctx *ctx, const uint8_t *key)
{
    return store_routes(ctx) ? SESS_ROUTE_OF(key) : -1;
}

/* The route for a new ID of the session whose record is "r": the user's
 * route, asked of the store (a session issued before the store routed has
 * a key without it, and its successor must get it), or -1. */
static int32_t route_of_record(const sess_ctx *ctx, const uint8_t *key, const sess__record *r)
{
    if (!store_routes(ctx))
        return -1;
    uint8_t ukey[32];
    uint16_t rv = 0;
    user_key(r->user, r->user_len, ukey);
    if (ctx->store->methods->route(ctx->store, ukey, &rv, NULL) != SESS_OK)
        return route_of_key(ctx, key);
    return rv & 0x3FFF;
}

/* Storage key of a presented ID (its form already checked). */
static void store_key_of(const sess_ctx *ctx, const char *id, size_t id_len,
                         uint8_t key[32])
{
    sess__sha256(id, id_len, key);
    if (store_routes(ctx)) {
        uint8_t raw[32];
        if (sess__b64url_decode(id, id_len, raw, sizeof raw) == SESS_OK)
            apply_route(key, SESS_ROUTE_OF(raw));
        sess__wipe(raw, sizeof raw);
    }
}

static void handle_of(const sess_ctx *ctx, const uint8_t skey[32],
                      uint8_t out[SESS_STORE_HANDLE_BYTES])
{
    uint8_t h[32];
    sess__sha256_labeled("sessiond handle v1", skey, 32, h);
    memcpy(out, h, SESS_STORE_HANDLE_BYTES);
    apply_route(out, route_of_key(ctx, skey));
}

static void handle_text(const uint8_t *raw, char out[SESS_HANDLE_LEN + 1])
{
    sess__b64url_encode(raw, SESS_STORE_HANDLE_BYTES, out);
}

/* Parse a textual address by the library's one rule (sess_ip_parse:
 * IPv4-mapped IPv6 becomes IPv4). */
static bool parse_ip_text(const char *text, uint8_t *family, uint8_t out[16])
{
    sess_ip ip;
    if (sess_ip_parse(text, &ip) != SESS_OK) {
        memset(out, 0, 16);
        return false;
    }
    *family = ip.family;
    memcpy(out, ip.addr, 16);
    return true;
}

/* The last address parsed on this thread: requests on a keep-alive
 * connection, and through one proxy, repeat the same client. */
static _Thread_local struct {
    size_t len;                   /* 0: empty */
    uint8_t family;
    uint8_t addr[16];
    char text[SESS_IP_MAX];
} ip_cache;

/* parse_ip_text, remembering the last address of this thread. */
static bool parse_ip(const char *text, uint8_t *family, uint8_t out[16])
{
    size_t len = text ? strlen(text) : 0;
    if (len && len == ip_cache.len && memcmp(text, ip_cache.text, len) == 0) {
        *family = ip_cache.family;
        memcpy(out, ip_cache.addr, 16);
        return true;
    }
    if (!parse_ip_text(text, family, out))
        return false;
    ip_cache.len = len;
    memcpy(ip_cache.text, text, len);
    ip_cache.family = *family;
    memcpy(ip_cache.addr, out, 16);
    return true;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    return sess__prefix_equal(a, b, bits);
}

/* The User-Agent digest, with the last one remembered per thread: most
 * requests on a thread come from a handful of browsers, and comparing the
 * text is cheaper than hashing it (User-Agents are not secret). */
static _Thread_local struct {
    size_t len;
    bool valid;
    char text[SESS_UA_MAX];
    uint8_t digest[32];
} ua_cache;

static void ua_digest(const char *ua, uint8_t out[32])
{
    size_t len = ua ? strlen(ua) : 0;
    if (ua_cache.valid && ua_cache.len == len &&
        (len == 0 || memcmp(ua_cache.text, ua, len) == 0)) {
        memcpy(out, ua_cache.digest, 32);
        return;
    }
    sess__sha256_labeled("sessiond user-agent v1", ua ? ua : "", len, out);
    if (len <= sizeof ua_cache.text) {
        if (len)
            memcpy(ua_cache.text, ua, len);
        ua_cache.len = len;
        memcpy(ua_cache.digest, out, 32);
        ua_cache.valid = true;
    }
}

static void emit(sess_ctx *ctx, sess_event_type type, const sess__record *r,
                 const uint8_t *handle_raw, const char *ip, const char *detail)
{
    char handle[SESS_HANDLE_LEN + 1];
    sess_event ev = {.type = type, .at = sess_ctx_now(ctx), .ip = ip,
                     .detail = detail};
    if (!ctx->on_event)
        return;
    if (!handle_raw && r)
        handle_raw = r->handle;
    if (handle_raw) {
        handle_text(handle_raw, handle);
        ev.handle = handle;
    }
    if (r) {
        ev.user_id = r->user;
        ev.user_id_len = r->user_len;
    }
    ctx->on_event(ctx->event_user, &ev);
}

/* emit() for the events that replace the handle (regenerate). */
static void emit2(sess_ctx *ctx, sess_event_type type, const sess__record *r,
                  const char *ip, const char *detail, const char *prev_handle)
{
    char handle[SESS_HANDLE_LEN + 1];
    if (!ctx->on_event)
        return;
    handle_text(r->handle, handle);
    sess_event ev = {.type = type, .at = sess_ctx_now(ctx), .handle = handle,
                     .user_id = r->user, .user_id_len = r->user_len, .ip = ip,
                     .detail = detail, .prev_handle = prev_handle};
    ctx->on_event(ctx->event_user, &ev);
}

static uint32_t idle_for(const sess_ctx *ctx, const sess__record *r)
{
    return (r->flags & SESS__F_REMEMBER) ? ctx->cfg.remember_idle_timeout
                                         : ctx->cfg.idle_timeout;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Load and open the record under "L->key".  SESS_OK, SESS_NOTFOUND, or an
 * error.  Records that fail to open are reported and read as not found:
 * they can never be used again. */
static int load(sess_ctx *ctx, scratch *S, loaded *L, sess_err *err)
{
    int rc;
    sess__rcache_prefetch(ctx->rcache, L->key);
    /* now = 0: see even expired records, so the reason can be precise. */
    rc = ctx->store->methods->get(ctx->store, L->key, 0, &L->entry, &L->blob, err);
    if (rc != SESS_OK)
        return rc;
    uint32_t gen = key_gen_now(ctx);
    if (ctx->rcache && sess__rcache_get(ctx->rcache, L->key, gen, L->entry.blob,
                                        L->entry.blob_len, &L->pt)) {
        COUNT(ctx, record_cache_hits);
        rc = SESS_OK;
    } else {
        rc = with_keys(sess__open, ctx, S, L->key, L->entry.blob,
                       L->entry.blob_len, &L->pt, err);
        if (ctx->rcache) {
            COUNT(ctx, record_cache_misses);
            if (rc == SESS_OK && sess__rcache_admit(ctx->rcache))
                sess__rcache_put(ctx->rcache, L->key, gen, L->entry.blob,
                                 L->entry.blob_len, L->pt.data, L->pt.len);
        }
    }
    if (rc == SESS_OK)
        rc = sess__record_decode(L->pt.data, L->pt.len, &L->rec);
    if (rc == SESS_ENOKEY || rc == SESS_ECORRUPT) {
        emit(ctx, SESS_EVENT_CORRUPT_RECORD, NULL, L->entry.handle, NULL,
             rc == SESS_ENOKEY ? "unknown key id" : "authentication failed");
        return SESS_NOTFOUND;
    }
    return rc;
}

/* Encode and seal "r" for storage key "key" into "out", filling "e". */
static int seal_record(sess_ctx *ctx, scratch *S, const sess__record *r,
                       const uint8_t *key, sess_store_buf *out, sess_entry *e,
                       sess_err *err)
{
    size_t n = sess__record_size(r);
    int rc;
    if (sess_store_buf_reserve(&S->enc, n) != SESS_OK)
        return sess__fail(err, SESS_ENOMEM, "out of memory encoding record");
    sess__record_encode(r, S->enc.data);
    uint32_t gen = key_gen_now(ctx);
    rc = with_keys(sess__seal, ctx, S, key, S->enc.data, n, out, err);
    /* Write-through: the next read of this blob opens from the cache.  If
     * the store write that follows fails, the entry is never matched (no
     * store read returns this blob) and simply ages out. */
    if (rc == SESS_OK)
        sess__rcache_put(ctx->rcache, key, gen, out->data, out->len, S->enc.data, n);
    sess__wipe(S->enc.data, n);
    if (rc != SESS_OK)
        return rc;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, SESS_STORE_KEY_BYTES);
    memcpy(e->handle, r->handle, SESS_STORE_HANDLE_BYTES);
    user_key(r->user, r->user_len, e->user);
    e->created_at = r->login_order;
    e->blob = out->data;
    e->blob_len = out->len;
    if (r->state == SESS__ACTIVE) {
        e->expires_at = min_u64(r->idle_expires_at, r->abs_expires_at) + SESS__RETAIN;
    } else {
        e->flags = SESS_ENTRY_UNINDEXED;
        e->expires_at = (r->state == SESS__ROTATED ? r->grace_until : r->issued_at) +
                        SESS__RETAIN;
    }
    return SESS_OK;
}

/* Map a store result of a lookup to a reason for the caller. */
static int reject(sess_reason *out, sess_reason r)
{
    if (out)
        *out = r;
    return SESS_REJECTED;
}

/* Checks of a live record in the documented order (docs/architecture.md): absolute, idle, revoked, binding.
 * "client" NULL skips binding (calls that carry no client). */
static sess_reason check_record(sess_ctx *ctx, const sess__record *r,
                                const sess_client *client, uint64_t now)
{
    if (r->state == SESS__REVOKED || r->state == SESS__ROTATED)
        return SESS_REASON_REVOKED;
    if (now >= r->abs_expires_at)
        return SESS_REASON_EXPIRED_ABSOLUTE;
    if (now >= r->idle_expires_at)
        return SESS_REASON_EXPIRED_IDLE;
    if (!client)
        return SESS_REASON_NONE;

    /* Binding (docs/security.md invariant 6): exact, component by component. */
    const char *what = NULL;
    uint8_t fam, ip[16];
    if (!parse_ip(client->ip, &fam, ip) || fam != r->ip_family) {
        if ((r->ip_family == 4 ? ctx->cfg.ip_prefix_v4 : ctx->cfg.ip_prefix_v6) ||
            (fam == 4 ? ctx->cfg.ip_prefix_v4 : ctx->cfg.ip_prefix_v6))
            what = "ip";
    } else {
        unsigned bits = fam == 4 ? ctx->cfg.ip_prefix_v4 : ctx->cfg.ip_prefix_v6;
        if (!prefix_equal(ip, r->ip, bits))
            what = "ip";
    }
    if (!what && ctx->cfg.bind_user_agent) {
        uint8_t h[32];
        ua_digest(client->user_agent, h);
        if (!sess__ct_equal(h, r->ua_hash, 32))
            what = "user_agent";
    }
    if (!what)
        return SESS_REASON_NONE;
    COUNT(ctx, binding_mismatches);
    emit(ctx, SESS_EVENT_BINDING_MISMATCH, r, NULL, client->ip, what);
    return ctx->cfg.bind_action == SESS_BIND_REJECT ? SESS_REASON_BINDING_MISMATCH
                                                    : SESS_REASON_NONE;
}

/*
 * End the live session with handle "handle_raw", wherever rotation has
 * moved it, with the store's own find_handle and remove (each atomic in
 * every backend).  A rotation racing us moves the handle to a new key, and
 * our remove then hits the tombstone it left: look again, a bounded number
 * of times.  SESS_OK when a session was removed, SESS_NOTFOUND when none
 * was live, or a store error.
 */
static int end_by_handle(sess_ctx *ctx, const uint8_t *handle_raw, uint64_t now,
                         sess_err *err)
{
    uint8_t key[32];
    bool ended = false;
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        int rc = ctx->store->methods->find_handle(ctx->store, handle_raw, now,
                                                  key, err);
        if (rc == SESS_NOTFOUND)
            return ended ? SESS_OK : SESS_NOTFOUND;
        if (rc != SESS_OK)
            return rc;
        rc = ctx->store->methods->remove(ctx->store, key, NULL, err);
        sess__rcache_drop(ctx->rcache, key);
        if (rc == SESS_OK)
            ended = true;
        else if (rc != SESS_NOTFOUND)
            return rc;
    }
    return sess__fail(err, SESS_EINTERNAL,
                      "ending the successor kept conflicting");
}

/*
 * A rotated-away ID presented after its grace window (RFC 9700 section
 * 4.14.2).  Two parties held the same ID and one of them rotated it: we
 * cannot tell the victim's stale tab from the thief, so with
 * SESS_REUSE_REVOKE the session it rotated into ends too, which locks out
 * a thief who used the cookie first.  The tombstone stays, so later
 * replays are still reported.  The answer is always "revoked"; a store
 * failure while ending the successor is returned as such (503 upstream),
 * since the session may still be live.
 */
static int reuse_after_grace(sess_ctx *ctx, const sess__record *tomb,
                             const sess_client *client, uint64_t now,
                             sess_reason *reason, sess_err *err)
{
    const char *ip = client ? client->ip : NULL;
    if (ctx->cfg.reuse_action != SESS_REUSE_REVOKE) {
        emit(ctx, SESS_EVENT_REUSE_AFTER_GRACE, tomb, NULL, ip, "logged");
        return reject(reason, SESS_REASON_REVOKED);
    }
    int rc = end_by_handle(ctx, tomb->handle, now, err);
    emit(ctx, SESS_EVENT_REUSE_AFTER_GRACE, tomb, NULL, ip,
         rc == SESS_OK         ? "successor revoked"
         : rc == SESS_NOTFOUND ? "no live successor"
                               : "successor revoke failed");
    if (rc != SESS_OK && rc != SESS_NOTFOUND)
        return rc;
    return reject(reason, SESS_REASON_REVOKED);
}

/* The live session behind a presented ID. */
typedef struct found {
    loaded *L;                    /* S->a, or S->b when via_grace */
    bool via_grace;               /* ID is a rotated one within its grace */
    char succ_id[SESS_ID_LEN + 1];
} found;

/* Load the session of the presented ID "id" into S->a: under its storage
 * key and, when the store routes and nothing is there, under the plain
 * SHA-256 of the ID.  A session issued while the store did not route (an
 * LMDB store migrated to Redis, docs/migration.md "Routing") keeps the key
 * it was issued with, since the ID in the user's cookie cannot change; its
 * next rotation moves it to a routed key.  The second lookup needs the
 * real ID's SHA-256 like the first, so it opens nothing new to a guesser;
 * it costs an unknown ID one more store read. */
static int load_id(sess_ctx *ctx, scratch *S, const char *id, size_t id_len, sess_err *err)
{
    store_key_of(ctx, id, id_len, S->a.key);
    int rc = load(ctx, S, &S->a, err);
    if (rc == SESS_NOTFOUND && store_routes(ctx)) {
        uint8_t plain[32];
        sess__sha256(id, id_len, plain);
        if (memcmp(plain, S->a.key, sizeof plain) != 0) {
            memcpy(S->a.key, plain, sizeof plain);
            rc = load(ctx, S, &S->a, err);
        }
    }
    return rc;
}

/*
 * Resolve "id" to its live session.  Handles the rotation grace: an old ID
 * within rotation_grace resolves to its successor.  Returns SESS_OK,
 * SESS_REJECTED (*reason), or an error.
 */
static int find_live(sess_ctx *ctx, scratch *S, const char *id, size_t id_len,
                     const sess_client *client, uint64_t now, found *f,
                     sess_reason *reason, sess_err *err)
{
    int rc;
    sess_reason r;

    memset(f, 0, sizeof *f);
    /* The full form check (alphabet, canonical last digit) runs only when
     * the lookup fails: a stored key is SHA-256 of an ID this library
     * issued, so no malformed string can find one, and a malformed ID
     * still gets "unknown" (never a store error) below.  The hit path
     * saves a pass over the 43 characters. */
    if (!id || id_len != SESS_ID_LEN)
        return reject(reason, SESS_REASON_UNKNOWN);
    rc = load_id(ctx, S, id, id_len, err);
    if (rc == SESS_NOTFOUND || (rc != SESS_OK && sess_id_check(id, id_len) != SESS_OK))
        return reject(reason, SESS_REASON_UNKNOWN);
    if (rc != SESS_OK)
        return rc;
    f->L = &S->a;

    if (S->a.rec.state == SESS__ROTATED) {
        uint8_t raw[32];
        if (now >= S->a.rec.grace_until) {
            /* An ID rotated away and used after its grace: a stale tab,
             * or a stolen cookie being replayed. */
            COUNT(ctx, reuse_after_grace);
            return reuse_after_grace(ctx, &S->a.rec, client, now, reason, err);
        }
        if (sess__unwrap32((const uint8_t *)id, id_len, S->a.key, 32,
                           S->a.rec.succ_wrap, raw) != SESS_OK)
            return reject(reason, SESS_REASON_UNKNOWN);
        sess__b64url_encode(raw, 32, f->succ_id);
        sess__wipe(raw, sizeof raw);
        memcpy(S->b.key, S->a.rec.succ_key, 32);
        rc = load(ctx, S, &S->b, err);
        if (rc == SESS_NOTFOUND)
            return reject(reason, SESS_REASON_REVOKED);
        if (rc != SESS_OK)
            return rc;
        f->L = &S->b;
        f->via_grace = true;
    }
    r = check_record(ctx, &f->L->rec, client, now);
    if (r != SESS_REASON_NONE)
        return reject(reason, r);
    return SESS_OK;
}

static void fill_issued(const sess__record *r, const char *id, sess_issued *out)
{
    memcpy(out->id, id, SESS_ID_LEN + 1);
    handle_text(r->handle, out->handle);
    sess__b64url_encode(r->csrf, 32, out->csrf_token);
    out->expires_at = r->abs_expires_at;
    out->idle_expires_at = r->idle_expires_at;
    out->remember = (r->flags & SESS__F_REMEMBER) != 0;
}

/* A fresh ID: 256 bits from getrandom (14 of them the route when the
 * store routes, "route" >= 0), its text and its store key. */
static int new_id(int32_t route, char id[SESS_ID_LEN + 1], uint8_t key[32])
{
    uint8_t raw[32];
    if (sess__random(raw, sizeof raw) != SESS_OK)
        return SESS_ERANDOM;
    apply_route(raw, route);
    sess__b64url_encode(raw, sizeof raw, id);
    sess__wipe(raw, sizeof raw);
    sess__sha256(id, SESS_ID_LEN, key);
    apply_route(key, route);
    return SESS_OK;
}

/* ---- create --------------------------------------------------------------- */

int sess_create(sess_ctx *ctx, const sess_create_req *req, sess_issued *out,
                sess_evicted *evicted, sess_err *err)
{
    scratch *S = thread_scratch();
    sess__record r;
    sess_entry e;
    sess_store_limit lim = {ctx->cfg.max_per_user, ctx->cfg.limit_policy};
    sess_store_evicted ev = {.n = 0};
    uint8_t key[32];
    uint64_t now = sess_ctx_now(ctx);
    int rc = SESS_OK;

    memset(out, 0, sizeof *out);
    if (evicted)
        evicted->n = 0;
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    if (!req->user_id || req->user_id_len == 0 ||
        req->user_id_len > SESS_USER_ID_MAX ||
        !sess__utf8_valid(req->user_id, req->user_id_len))
        return sess__fail(err, SESS_EINVAL,
                          "user_id must be 1-%d bytes of UTF-8 without NUL",
                          SESS_USER_ID_MAX);
    if (req->data_len > SESS_DATA_MAX || (req->data_len && !req->data))
        return sess__fail(err, SESS_EINVAL, "data larger than %u bytes",
                          SESS_DATA_MAX);

    memset(&r, 0, sizeof r);
    if (!parse_ip(req->client.ip, &r.ip_family, r.ip))
        return sess__fail(err, SESS_EINVAL, "client.ip is not an IPv4 or IPv6 address");
    r.state = SESS__ACTIVE;
    r.flags = (req->elevated ? SESS__F_ELEVATED : 0) |
              (req->remember ? SESS__F_REMEMBER : 0);
    r.created_at = r.issued_at = r.last_seen_at = now;
    /* Whole seconds would tie for logins made together; the sequence
     * keeps "evict the oldest" exact within this process. */
    r.login_order = now << 20 |
                    (atomic_fetch_add_explicit(&login_seq, 1, memory_order_relaxed) &
                     0xFFFFFu);
    r.abs_expires_at = now + (req->remember ? ctx->cfg.remember_absolute_timeout
                                            : ctx->cfg.absolute_timeout);
    r.idle_expires_at = min_u64(now + idle_for(ctx, &r), r.abs_expires_at);
    memcpy(r.user, req->user_id, req->user_id_len);
    r.user_len = (uint16_t)req->user_id_len;
    ua_digest(req->client.user_agent, r.ua_hash);
    if (req->client.user_agent) {
        /* The listing copy is printable ASCII only; binding uses the hash
         * of the full header. */
        size_t n = strnlen(req->client.user_agent, SESS_UA_MAX);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)req->client.user_agent[i];
            r.ua[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        r.ua_len = (uint16_t)n;
        r.flags |= SESS__F_HAS_UA;
    }
    r.data = req->data_len ? req->data : "";
    r.data_len = (uint32_t)req->data_len;

    int32_t route = -1;
    if (store_routes(ctx)) {
        uint8_t ukey[32];
        uint16_t rv = 0;
        user_key(r.user, r.user_len, ukey);
        if ((rc = ctx->store->methods->route(ctx->store, ukey, &rv, err)) != SESS_OK) {
            sess__wipe(&r, sizeof r);
            return rc;
        }
        route = rv & 0x3FFF;
    }
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        if (new_id(route, out->id, key) != SESS_OK ||
            sess__random(r.csrf, sizeof r.csrf) != SESS_OK) {
            rc = sess__fail(err, SESS_ERANDOM, "getrandom failed");
            break;
        }
        handle_of(ctx, key, r.handle);
        rc = seal_record(ctx, S, &r, key, &S->seal[0], &e, err);
        if (rc != SESS_OK)
            break;
        ev.n = 0;
        rc = ctx->store->methods->insert(ctx->store, &e, &lim, now, &ev, err);
        if (rc != SESS_EXISTS)  /* a 256-bit collision: only ever a bug */
            break;
    }
    sess__wipe(key, sizeof key);
    if (rc == SESS_LIMIT) {
        COUNT(ctx, limit_denied);
        if (ctx->on_event) {
            /* No handle: the refused session never existed. */
            sess_event e2 = {.type = SESS_EVENT_LIMIT_DENIED, .at = now,
                             .user_id = r.user, .user_id_len = r.user_len,
                             .ip = req->client.ip, .detail = "limit_policy deny"};
            ctx->on_event(ctx->event_user, &e2);
        }
        sess__wipe(out, sizeof *out);
        sess__wipe(&r, sizeof r);
        return sess__fail(err, SESS_LIMIT, "user has %u sessions already",
                          ctx->cfg.max_per_user);
    }
    if (rc != SESS_OK) {
        sess__wipe(out, sizeof *out);
        sess__wipe(&r, sizeof r);
        return rc;
    }
    COUNT(ctx, created);
    emit(ctx, SESS_EVENT_CREATED, &r, NULL, req->client.ip, NULL);
    for (size_t i = 0; i < ev.n; i++) {
        COUNT(ctx, evictions);
        emit(ctx, SESS_EVENT_LIMIT_EVICTION, &r, ev.handle[i], NULL,
             "evicted by a new login");
        if (evicted && evicted->n < SESS_EVICT_MAX)
            handle_text(ev.handle[i], evicted->handle[evicted->n++]);
    }
    fill_issued(&r, out->id, out);
    sess__wipe(&r, sizeof r);
    return SESS_OK;
}

/* ---- validate ------------------------------------------------------------- */

static void count_reason(sess_ctx *ctx, sess_reason r)
{
    switch (r) {
    case SESS_REASON_NONE: COUNT(ctx, validate_ok); break;
    case SESS_REASON_UNKNOWN: COUNT(ctx, validate_unknown); break;
    case SESS_REASON_EXPIRED_IDLE: COUNT(ctx, validate_expired_idle); break;
    case SESS_REASON_EXPIRED_ABSOLUTE: COUNT(ctx, validate_expired_absolute); break;
    case SESS_REASON_BINDING_MISMATCH: COUNT(ctx, validate_binding_mismatch); break;
    case SESS_REASON_REVOKED: COUNT(ctx, validate_revoked); break;
    }
}

/* Whether a failed store write is the store refusing writes (a full disk
 * or map, an I/O error, Redis down), as opposed to a bug or a bad record. */
static bool store_write_refused(int rc)
{
    return rc == SESS_EFULL || rc == SESS_EIO || rc == SESS_EUNAVAILABLE;
}

/*
 * Rotate the ID of the live session in "S->a" (ID "id").  On success
 * "succ_id" holds the successor and S->a.rec the successor's record.  If
 * another request rotated first, its successor is used instead.  When the
 * store refuses the rotation's write, "*refused" is set and S->a still
 * holds the presented session exactly as stored (the write changed
 * nothing), so the caller may serve it unrotated.
 */
static int rotate(sess_ctx *ctx, scratch *S, const char *id, size_t id_len,
                  const sess_client *client, uint64_t now, found *f,
                  sess_reason *reason, bool *refused, sess_err *err)
{
    *refused = false;
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        sess__record next = S->a.rec, tomb = S->a.rec;
        sess_entry e_next, e_tomb;
        uint8_t nkey[32], raw[32];
        int rc;

        if (new_id(route_of_record(ctx, S->a.key, &S->a.rec), f->succ_id, nkey) != SESS_OK ||
            sess__random(next.csrf, 32) != SESS_OK)
            return sess__fail(err, SESS_ERANDOM, "getrandom failed");
        memcpy(next.prev_csrf, S->a.rec.csrf, 32);
        next.prev_csrf_until = now + ctx->cfg.rotation_grace;
        next.issued_at = now;
        next.last_seen_at = now;
        next.idle_expires_at = min_u64(now + idle_for(ctx, &next), next.abs_expires_at);

        tomb.state = SESS__ROTATED;
        tomb.grace_until = now + ctx->cfg.rotation_grace;
        tomb.data_len = 0;
        tomb.data = "";
        memcpy(tomb.succ_key, nkey, 32);
        rc = sess__b64url_decode(f->succ_id, SESS_ID_LEN, raw, 32);
        if (rc == SESS_OK)
            rc = sess__wrap32((const uint8_t *)id, id_len, S->a.key, 32, raw,
                              tomb.succ_wrap);
        sess__wipe(raw, sizeof raw);
        if (rc != SESS_OK)
            return sess__fail(err, SESS_ECRYPTO, "wrapping the successor failed");

        rc = seal_record(ctx, S, &next, nkey, &S->seal[0], &e_next, err);
        if (rc == SESS_OK)
            rc = seal_record(ctx, S, &tomb, S->a.key, &S->seal[1], &e_tomb, err);
        sess__wipe(&tomb, sizeof tomb);
        if (rc == SESS_OK)
            rc = ctx->store->methods->replace(ctx->store, S->a.key,
                                              S->a.entry.blob, S->a.entry.blob_len,
                                              &e_tomb, &e_next, now, err);
        sess__wipe(nkey, sizeof nkey);
        if (rc == SESS_OK) {
            COUNT(ctx, rotations);
            emit(ctx, SESS_EVENT_ROTATED, &next, NULL, client ? client->ip : NULL,
                 "rotate_interval");
            S->a.rec = next;
            /* rec.data still points into S->a.pt, which is unchanged. */
            f->via_grace = true;
            sess__wipe(&next, sizeof next);
            return SESS_OK;
        }
        sess__wipe(&next, sizeof next);
        if (rc != SESS_CONFLICT && rc != SESS_NOTFOUND) {
            *refused = store_write_refused(rc);
            return rc;
        }
        /* Lost the race (or a touch moved the record): look again. */
        rc = find_live(ctx, S, id, id_len, client, now, f, reason, err);
        if (rc != SESS_OK || f->via_grace)
            return rc;
    }
    return sess__fail(err, SESS_EINTERNAL, "rotation kept conflicting");
}

/* Persist a later idle deadline when it moves far enough (coalescing). */
static void touch(sess_ctx *ctx, scratch *S, loaded *L, uint64_t now)
{
    uint32_t idle = idle_for(ctx, &L->rec);
    uint64_t next_idle = min_u64(now + idle, L->rec.abs_expires_at);
    uint64_t step = idle / 20 ? idle / 20 : 1;
    sess__record r;
    sess_entry e;

    if (next_idle < L->rec.idle_expires_at + step)
        return;
    r = L->rec;
    r.last_seen_at = now;
    r.idle_expires_at = next_idle;
    if (r.prev_csrf_until && now >= r.prev_csrf_until) {
        /* The previous CSRF token's grace is over: drop it from the record. */
        r.prev_csrf_until = 0;
        sess__wipe(r.prev_csrf, sizeof r.prev_csrf);
    }
    if (seal_record(ctx, S, &r, L->key, &S->seal[0], &e, NULL) == SESS_OK &&
        ctx->store->methods->update(ctx->store, &e, L->entry.blob,
                                    L->entry.blob_len, now, NULL) == SESS_OK) {
        COUNT(ctx, touches_written);
        L->rec.last_seen_at = now;
        L->rec.idle_expires_at = next_idle;
    }
    /* A conflict means another request touched or rotated it: fine. */
    sess__wipe(&r, sizeof r);
}

static void fill_view(const sess__record *r, uint64_t now, sess_view *v)
{
    memcpy(v->user_id, r->user, r->user_len);
    v->user_id[r->user_len] = '\0';
    v->user_id_len = r->user_len;
    handle_text(r->handle, v->handle);
    sess__b64url_encode(r->csrf, 32, v->csrf_token);
    if (now < r->prev_csrf_until)
        sess__b64url_encode(r->prev_csrf, 32, v->prev_csrf_token);
    v->elevated = (r->flags & SESS__F_ELEVATED) != 0;
    v->remember = (r->flags & SESS__F_REMEMBER) != 0;
    v->created_at = r->created_at;
    v->expires_at = r->abs_expires_at;
    v->idle_expires_at = r->idle_expires_at;
    v->last_seen_at = r->last_seen_at;
    v->data_version = r->data_version;
}

int sess_validate(sess_ctx *ctx, const char *id, size_t id_len,
                  const sess_client *client, unsigned flags, sess_view *view,
                  sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    sess_reason reason = SESS_REASON_NONE;
    found f;
    int rc;

    memset(view, 0, sizeof *view);
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    rc = find_live(ctx, S, id, id_len, client, now, &f, &reason, err);
    if (rc == SESS_OK && !f.via_grace) {
        const sess__record *r = &S->a.rec;
        bool refused = false;
        if (!(flags & SESS_VALIDATE_NO_ROTATE) && ctx->cfg.rotate_interval &&
            now >= r->issued_at + ctx->cfg.rotate_interval) {
            rc = rotate(ctx, S, id, id_len, client, now, &f, &reason, &refused, err);
            if (rc != SESS_OK && refused) {
                /* Rotation is housekeeping, not a check: a store that
                 * cannot write (full disk, full map, Redis down) must not
                 * turn a valid session into a 503.  Serve it as stored,
                 * with no successor (none was stored, so none may be
                 * issued), and let a later request rotate it.  The
                 * daemon logs the count, rate-limited. */
                COUNT(ctx, rotations_deferred);
                atomic_store_explicit(&ctx->last_deferral, rc, memory_order_relaxed);
                memset(&f, 0, sizeof f);
                f.L = &S->a;
                rc = SESS_OK;
                if (err) {          /* the call succeeds: no error detail */
                    err->code = SESS_OK;
                    err->msg[0] = '\0';
                }
            }
        } else if (!(flags & SESS_VALIDATE_NO_TOUCH))
            touch(ctx, S, &S->a, now);
    }
    if (rc == SESS_REJECTED) {
        view->reason = reason;
        count_reason(ctx, reason);
        return rc;
    }
    if (rc != SESS_OK) {
        COUNT(ctx, validate_error);
        return rc;
    }
    const sess__record *r = &f.L->rec;
    fill_view(r, now, view);
    if (f.via_grace) {
        view->rotated = true;
        fill_issued(r, f.succ_id, &view->successor);
    }
    sess__wipe(f.succ_id, sizeof f.succ_id);
    if (flags & SESS_VALIDATE_WANT_DATA) {
        view->data = malloc((size_t)r->data_len + 1);
        if (!view->data) {
            sess_view_clear(view);
            return sess__fail(err, SESS_ENOMEM, "out of memory copying data");
        }
        memcpy(view->data, r->data, r->data_len);
        view->data[r->data_len] = '\0';
        view->data_len = r->data_len;
    }
    count_reason(ctx, SESS_REASON_NONE);
    return SESS_OK;
}

void sess_view_clear(sess_view *view)
{
    if (!view)
        return;
    free(view->data);
    view->data = NULL;
    view->data_len = 0;
    /* Only these are secret; the rest (user id, handle, times) is not, and
     * wiping 1.3 KiB per validate showed in profiles. */
    sess__wipe(view->csrf_token, sizeof view->csrf_token);
    sess__wipe(view->prev_csrf_token, sizeof view->prev_csrf_token);
    sess__wipe(&view->successor, sizeof view->successor);
}

/* ---- regenerate, data, destroy, CSRF -------------------------------------- */

int sess_regenerate(sess_ctx *ctx, const char *id, size_t id_len,
                    const sess_client *client, int elevated, sess_issued *out,
                    sess_reason *reason, sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    int rc = SESS_OK;

    memset(out, 0, sizeof *out);
    if (reason)
        *reason = SESS_REASON_NONE;
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        found f;
        sess_entry e_next, e_tomb;
        uint8_t nkey[32];

        rc = find_live(ctx, S, id, id_len, client, now, &f, reason, err);
        sess__wipe(f.succ_id, sizeof f.succ_id);
        if (rc != SESS_OK)
            return rc;
        sess__record next = f.L->rec, tomb = f.L->rec;
        /* Privilege change: a new ID, a new handle, a new CSRF token, and
         * the old ID dead at once (no grace), against fixation. */
        if (new_id(route_of_record(ctx, f.L->key, &f.L->rec), out->id, nkey) != SESS_OK ||
            sess__random(next.csrf, 32) != SESS_OK)
            return sess__fail(err, SESS_ERANDOM, "getrandom failed");
        handle_of(ctx, nkey, next.handle);
        memset(next.prev_csrf, 0, 32);
        next.prev_csrf_until = 0;
        /* The refresh token dies too (its handle is gone anyway): a
         * privilege change starts a new token family. */
        next.rt_expires_at = next.rt_prev_until = 0;
        next.aud_len = 0;
        sess__wipe(next.rt_hash, sizeof next.rt_hash);
        sess__wipe(next.rt_prev_hash, sizeof next.rt_prev_hash);
        sess__wipe(next.rt_succ_wrap, sizeof next.rt_succ_wrap);
        next.issued_at = next.last_seen_at = now;
        next.idle_expires_at = min_u64(now + idle_for(ctx, &next), next.abs_expires_at);
        if (elevated == 0)
            next.flags &= (uint8_t)~SESS__F_ELEVATED;
        else if (elevated > 0)
            next.flags |= SESS__F_ELEVATED;
        tomb.state = SESS__REVOKED;
        tomb.issued_at = now;
        tomb.data_len = 0;
        tomb.data = "";
        rc = seal_record(ctx, S, &next, nkey, &S->seal[0], &e_next, err);
        if (rc == SESS_OK)
            rc = seal_record(ctx, S, &tomb, f.L->key, &S->seal[1], &e_tomb, err);
        if (rc == SESS_OK)
            rc = ctx->store->methods->replace(ctx->store, f.L->key, f.L->entry.blob,
                                              f.L->entry.blob_len, &e_tomb, &e_next,
                                              now, err);
        sess__wipe(nkey, sizeof nkey);
        sess__wipe(&tomb, sizeof tomb);
        if (rc == SESS_OK) {
            char prev[SESS_HANDLE_LEN + 1];
            COUNT(ctx, regenerations);
            handle_text(f.L->rec.handle, prev);
            emit2(ctx, SESS_EVENT_REGENERATED, &next, client ? client->ip : NULL,
                  NULL, prev);
            if ((next.flags & SESS__F_ELEVATED) &&
                !(f.L->rec.flags & SESS__F_ELEVATED))
                emit2(ctx, SESS_EVENT_ELEVATED, &next, client ? client->ip : NULL,
                      NULL, prev);
            fill_issued(&next, out->id, out);
            sess__wipe(&next, sizeof next);
            return SESS_OK;
        }
        sess__wipe(&next, sizeof next);
        if (rc != SESS_CONFLICT && rc != SESS_NOTFOUND)
            break;
    }
    sess__wipe(out, sizeof *out);
    return rc == SESS_CONFLICT || rc == SESS_NOTFOUND
               ? sess__fail(err, SESS_EINTERNAL, "regenerate kept conflicting")
               : rc;
}

int sess_set_data(sess_ctx *ctx, const char *id, size_t id_len,
                  const char *data, size_t data_len, int64_t expect_version,
                  uint64_t *new_version, sess_reason *reason, sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    int rc = SESS_OK;

    if (reason)
        *reason = SESS_REASON_NONE;
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    if (data_len > SESS_DATA_MAX || (data_len && !data))
        return sess__fail(err, SESS_EINVAL, "data larger than %u bytes",
                          SESS_DATA_MAX);
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        found f;
        sess_entry e;
        rc = find_live(ctx, S, id, id_len, NULL, now, &f, reason, err);
        sess__wipe(f.succ_id, sizeof f.succ_id);
        if (rc != SESS_OK)
            return rc;
        if (expect_version >= 0 && (uint64_t)expect_version != f.L->rec.data_version)
            return sess__fail(err, SESS_CONFLICT,
                              "data version is %llu, not %lld",
                              (unsigned long long)f.L->rec.data_version,
                              (long long)expect_version);
        sess__record r = f.L->rec;
        r.data = data_len ? data : "";
        r.data_len = (uint32_t)data_len;
        r.data_version++;
        rc = seal_record(ctx, S, &r, f.L->key, &S->seal[0], &e, err);
        if (rc == SESS_OK)
            rc = ctx->store->methods->update(ctx->store, &e, f.L->entry.blob,
                                             f.L->entry.blob_len, now, err);
        if (rc == SESS_OK && new_version)
            *new_version = r.data_version;
        sess__wipe(&r, sizeof r);
        if (rc != SESS_CONFLICT && rc != SESS_NOTFOUND)
            return rc;
        /* A touch or rotation got there first: re-read and re-check the
         * version, so optimistic concurrency stays exact. */
    }
    return sess__fail(err, SESS_EINTERNAL, "data update kept conflicting");
}

int sess_destroy(sess_ctx *ctx, const char *id, size_t id_len, sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    bool ended = false;
    int rc;

    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    if (sess_id_check(id, id_len) != SESS_OK)
        return SESS_NOTFOUND;
    rc = load_id(ctx, S, id, id_len, err);
    if (rc == SESS_NOTFOUND)
        return SESS_NOTFOUND;
    if (rc != SESS_OK)
        return rc;
    /* Logging out with an ID still in its grace window ends the session
     * itself, not just the tombstone.  Past the grace the old ID is dead
     * and must not be able to end anything: a stale or replayed cookie
     * does not get to log the user out. */
    if (S->a.rec.state == SESS__ROTATED && now < S->a.rec.grace_until) {
        rc = ctx->store->methods->remove(ctx->store, S->a.rec.succ_key, NULL, err);
        if (rc != SESS_OK && rc != SESS_NOTFOUND)
            return rc;
        ended = rc == SESS_OK;
        sess__rcache_drop(ctx->rcache, S->a.rec.succ_key);
    }
    rc = ctx->store->methods->remove(ctx->store, S->a.key, NULL, err);
    sess__rcache_drop(ctx->rcache, S->a.key);
    if (rc != SESS_OK && rc != SESS_NOTFOUND)
        return rc;
    /* Removing a tombstone ends no session. */
    if (rc == SESS_OK && S->a.rec.state == SESS__ACTIVE)
        ended = true;
    if (!ended)
        return SESS_NOTFOUND;
    COUNT(ctx, destroyed);
    /* Only the call whose remove succeeded gets here: one event. */
    emit(ctx, SESS_EVENT_DESTROYED, &S->a.rec, NULL, NULL, "logout");
    return SESS_OK;
}

bool sess_csrf_matches(const sess_view *view, const char *token,
                       size_t token_len)
{
    bool ok = false;
    if (!token || token_len != SESS_CSRF_LEN || !view->csrf_token[0])
        return false;
    /* Both comparisons always run: the time taken says nothing about
     * which token (if any) matched. */
    ok |= sess__ct_equal(view->csrf_token, token, SESS_CSRF_LEN);
    ok |= view->prev_csrf_token[0] != '\0' &&
          sess__ct_equal(view->prev_csrf_token, token, SESS_CSRF_LEN);
    return ok;
}

int sess_csrf_verify(sess_ctx *ctx, const char *id, size_t id_len,
                     const char *token, size_t token_len, sess_reason *reason,
                     sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    sess_view v;
    found f;
    int rc;

    if (reason)
        *reason = SESS_REASON_NONE;
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    rc = find_live(ctx, S, id, id_len, NULL, now, &f, reason, err);
    sess__wipe(f.succ_id, sizeof f.succ_id);
    if (rc != SESS_OK)
        return rc;
    memset(&v, 0, sizeof v);
    fill_view(&f.L->rec, now, &v);
    bool ok = sess_csrf_matches(&v, token, token_len);
    if (!ok) {
        COUNT(ctx, csrf_failures);
        emit(ctx, SESS_EVENT_CSRF_FAILURE, &f.L->rec, NULL, NULL, "token");
    }
    sess__wipe(&v, sizeof v);
    return ok ? SESS_OK : SESS_CSRF;
}

/* ---- admin: list and revoke ----------------------------------------------- */

typedef struct list_state {
    sess_ctx *ctx;
    uint64_t now;
    sess_summary *items;
    size_t n, cap;
    sess_store_buf pt;
    int rc;
} list_state;

static int list_one(void *arg, const sess_entry *e)
{
    list_state *ls = arg;
    sess__record r;
    int rc;

    scratch *S = thread_scratch();
    if (!S) {
        ls->rc = SESS_ENOMEM;
        return 1;
    }
    rc = with_keys(sess__open, ls->ctx, S, e->key, e->blob, e->blob_len, &ls->pt, NULL);
    if (rc != SESS_OK || sess__record_decode(ls->pt.data, ls->pt.len, &r) != SESS_OK)
        return 0;   /* unreadable records are not sessions anyone can use */
    if (r.state != SESS__ACTIVE || ls->now >= r.abs_expires_at ||
        ls->now >= r.idle_expires_at)
        return 0;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 8;
        sess_summary *p = realloc(ls->items, cap * sizeof *p);
        if (!p) {
            ls->rc = SESS_ENOMEM;
            return 1;
        }
        ls->items = p;
        ls->cap = cap;
    }
    sess_summary *s = &ls->items[ls->n++];
    memset(s, 0, sizeof *s);
    handle_text(r.handle, s->handle);
    s->created_at = r.created_at;
    s->last_seen_at = r.last_seen_at;
    s->expires_at = r.abs_expires_at;
    inet_ntop(r.ip_family == 4 ? AF_INET : AF_INET6, r.ip, s->ip, sizeof s->ip);
    memcpy(s->user_agent, r.ua, r.ua_len);
    s->elevated = (r.flags & SESS__F_ELEVATED) != 0;
    s->remember = (r.flags & SESS__F_REMEMBER) != 0;
    return 0;
}

static int summary_cmp(const void *a, const void *b)
{
    const sess_summary *x = a, *y = b;
    if (x->created_at != y->created_at)
        return x->created_at < y->created_at ? -1 : 1;
    return strcmp(x->handle, y->handle);
}

int sess_list_user(sess_ctx *ctx, const char *user_id, size_t user_id_len,
                   sess_summary **out, size_t *n, sess_err *err)
{
    list_state ls = {.ctx = ctx, .now = sess_ctx_now(ctx)};
    uint8_t ukey[32];
    int rc;

    *out = NULL;
    *n = 0;
    if (!user_id || user_id_len == 0 || user_id_len > SESS_USER_ID_MAX)
        return sess__fail(err, SESS_EINVAL, "user_id must be 1-%d bytes",
                          SESS_USER_ID_MAX);
    user_key(user_id, user_id_len, ukey);
    rc = ctx->store->methods->list_user(ctx->store, ukey, ls.now, list_one, &ls, err);
    sess__wipe(ls.pt.data, ls.pt.cap);
    sess_store_buf_free(&ls.pt);
    if (rc == SESS_OK && ls.rc != SESS_OK)
        rc = sess__fail(err, ls.rc, "out of memory listing sessions");
    if (rc != SESS_OK) {
        free(ls.items);
        return rc;
    }
    if (ls.n)
        qsort(ls.items, ls.n, sizeof ls.items[0], summary_cmp);
    *out = ls.items;
    *n = ls.n;
    return SESS_OK;
}

int sess_revoke_handle(sess_ctx *ctx, const char *handle, size_t handle_len,
                       sess_err *err)
{
    uint8_t raw[SESS_STORE_HANDLE_BYTES], key[32];
    uint64_t now = sess_ctx_now(ctx);
    int rc;

    if (!handle || sess__b64url_decode(handle, handle_len, raw, sizeof raw) != SESS_OK)
        return SESS_NOTFOUND;
    rc = ctx->store->methods->find_handle(ctx->store, raw, now, key, err);
    /* The record is read only for the event's user id; a failed read
     * still revokes (the event then names the handle alone). */
    scratch *S = ctx->on_event ? thread_scratch() : NULL;
    bool have = false;
    if (rc == SESS_OK && S) {
        memcpy(S->a.key, key, sizeof key);
        have = load(ctx, S, &S->a, NULL) == SESS_OK;
    }
    if (rc == SESS_OK) {
        rc = ctx->store->methods->remove(ctx->store, key, NULL, err);
        sess__rcache_drop(ctx->rcache, key);
    }
    if (rc == SESS_OK)
        emit(ctx, SESS_EVENT_REVOKE, have ? &S->a.rec : NULL, raw, NULL, "handle");
    return rc;
}

int sess_revoke_user(sess_ctx *ctx, const char *user_id, size_t user_id_len,
                     const char *except_handle, size_t *revoked, sess_err *err)
{
    uint8_t ukey[32], except[SESS_STORE_HANDLE_BYTES];
    size_t n = 0;
    int rc;

    if (revoked)
        *revoked = 0;
    if (!user_id || user_id_len == 0 || user_id_len > SESS_USER_ID_MAX)
        return sess__fail(err, SESS_EINVAL, "user_id must be 1-%d bytes",
                          SESS_USER_ID_MAX);
    if (except_handle &&
        sess__b64url_decode(except_handle, strlen(except_handle), except,
                            sizeof except) != SESS_OK)
        return sess__fail(err, SESS_EINVAL, "except is not a session handle");
    user_key(user_id, user_id_len, ukey);
    rc = ctx->store->methods->remove_user(ctx->store, ukey,
                                          except_handle ? except : NULL,
                                          sess_ctx_now(ctx), &n, err);
    if (rc != SESS_OK)
        return rc;
    if (revoked)
        *revoked = n;
    if (n && ctx->on_event) {
        sess_event ev = {.type = SESS_EVENT_REVOKE, .at = sess_ctx_now(ctx),
                         .user_id = user_id, .user_id_len = user_id_len,
                         .detail = except_handle ? "all but one" : "all"};
        ctx->on_event(ctx->event_user, &ev);
    }
    return SESS_OK;
}

/* Each entry a purge deletes: a live session's record (not a tombstone,
 * whose session lives on or was reported when it ended) is opened for
 * its user id and reported as SESS_EVENT_EXPIRED. */
typedef struct purge_report {
    sess_ctx *ctx;
    scratch *S;
} purge_report;

static void purge_seen(void *arg, const sess_entry *e)
{
    purge_report *pr = arg;
    sess__record rec;
    if (e->flags & SESS_ENTRY_UNINDEXED)
        return;
    if (with_keys(sess__open, pr->ctx, pr->S, e->key, e->blob, e->blob_len,
                  &pr->S->b.pt, NULL) != SESS_OK ||
        sess__record_decode(pr->S->b.pt.data, pr->S->b.pt.len, &rec) != SESS_OK) {
        emit(pr->ctx, SESS_EVENT_EXPIRED, NULL, e->handle, NULL, "unreadable");
        return;
    }
    if (rec.state == SESS__ACTIVE)
        emit(pr->ctx, SESS_EVENT_EXPIRED, &rec, NULL, NULL,
             rec.idle_expires_at >= rec.abs_expires_at ? "absolute" : "idle");
    sess__wipe(&rec, sizeof rec);
    sess__wipe(pr->S->b.pt.data, pr->S->b.pt.len);
}

int sess_purge_expired(sess_ctx *ctx, size_t max, size_t *removed, sess_err *err)
{
    uint64_t now = sess_ctx_now(ctx);
    const sess_store_methods *m = ctx->store->methods;
    purge_report pr = {ctx, ctx->on_event ? thread_scratch() : NULL};
    size_t n = 0;
    int rc;
    /* Entries carry SESS__RETAIN in their expiry already (seal_record). */
    if (pr.S && m->version >= 4 && m->purge_each)
        rc = m->purge_each(ctx->store, now, max, &n, purge_seen, &pr, err);
    else
        rc = m->purge(ctx->store, now, max, &n, err);
    if (removed)
        *removed = n;
    return rc;
}

int sess_ping(sess_ctx *ctx, sess_err *err)
{
    return ctx->store->methods->ping(ctx->store, err);
}

int sess_get_stats(sess_ctx *ctx, sess_stats *o, sess_err *err)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < STAT_SHARDS; i++) {
        const stats_shard *sh = &ctx->st[i];
#define STAT_ADD(f) o->f += atomic_load_explicit(&sh->f, memory_order_relaxed);
        STAT_FIELDS(STAT_ADD)
#undef STAT_ADD
    }
    o->last_deferral = atomic_load_explicit(&ctx->last_deferral, memory_order_relaxed);
    size_t used, slots;
    sess__rcache_usage(ctx->rcache, &used, &slots);
    o->record_cache_used = used;
    o->record_cache_slots = slots;
    /* Entries carry SESS__RETAIN past their expiry (seal_record). */
    return ctx->store->methods->count(ctx->store, sess_ctx_now(ctx) + SESS__RETAIN,
                                      &o->stored_records, err);
}

int sess_get_store_stats(sess_ctx *ctx, sess_store_stats *out)
{
    const sess_store_methods *m = ctx->store->methods;
    if (m->version < 3 || m->stats == NULL)
        return SESS_NOTFOUND;
    return m->stats(ctx->store, out) == SESS_OK ? SESS_OK : SESS_NOTFOUND;
}

/* ---- refresh tokens (docs/tokens.md) --------------------------------------- */

#define RT_PREFIX "rt1."
#define RT_LABEL "sess refresh token"

/* Split "rt1.<handle>.<secret>" into its raw parts.  Only the form is
 * checked here; whether it is a token of ours is the hash's business. */
static bool rt_parse(const char *rt, size_t len, uint8_t handle[SESS_STORE_HANDLE_BYTES],
                     uint8_t secret[32])
{
    if (!rt || len != SESS_REFRESH_TOKEN_LEN || memcmp(rt, RT_PREFIX, 4) != 0 ||
        rt[4 + SESS_HANDLE_LEN] != '.')
        return false;
    return sess__b64url_decode(rt + 4, SESS_HANDLE_LEN, handle,
                               SESS_STORE_HANDLE_BYTES) == SESS_OK &&
           sess__b64url_decode(rt + 5 + SESS_HANDLE_LEN, 43, secret, 32) == SESS_OK;
}

static void rt_format(const uint8_t *handle_raw, const uint8_t secret[32],
                      char out[SESS_REFRESH_TOKEN_LEN + 1])
{
    memcpy(out, RT_PREFIX, 4);
    handle_text(handle_raw, out + 4);
    out[4 + SESS_HANDLE_LEN] = '.';
    sess__b64url_encode(secret, 32, out + 5 + SESS_HANDLE_LEN);
    out[SESS_REFRESH_TOKEN_LEN] = '\0';
}

static void rt_hash(const uint8_t secret[32], uint8_t out[32])
{
    sess__sha256_labeled(RT_LABEL, secret, 32, out);
}

/* The grant described by record "r" (its access claims and audience). */
static void grant_of(const sess__record *r, sess_token_grant *g)
{
    sess__b64url_encode(r->at_jti, sizeof r->at_jti, g->jti);
    g->iat = r->at_iat;
    g->exp = r->at_exp;
    g->refresh_expires_at = r->rt_expires_at;
    memcpy(g->audience, r->aud, r->aud_len);
    g->audience[r->aud_len] = '\0';
    g->audience_len = r->aud_len;
}

/* Fill "r"'s token section with a new refresh secret (into "secret") and
 * new access claims; the previous-token fields are the caller's. */
static int token_fresh(sess__record *r, const sess_token_policy *pol,
                       uint64_t now, uint8_t secret[32])
{
    if (sess__random(secret, 32) != SESS_OK || sess__random(r->at_jti, 16) != SESS_OK)
        return SESS_ERANDOM;
    rt_hash(secret, r->rt_hash);
    r->rt_expires_at = min_u64(now + (pol->refresh_ttl ? pol->refresh_ttl : 1),
                               r->abs_expires_at);
    r->at_iat = now;
    /* Never beyond the session's own life (idle or absolute). */
    r->at_exp = min_u64(now + pol->access_ttl,
                        min_u64(r->abs_expires_at, r->idle_expires_at));
    return SESS_OK;
}

/* Load the live record with handle "raw" into S->a.  SESS_OK,
 * SESS_REJECTED (reason), or an error. */
static int load_by_handle(sess_ctx *ctx, scratch *S, const uint8_t *raw, uint64_t now,
                          const sess_client *client, sess_reason *reason, sess_err *err)
{
    int rc = ctx->store->methods->find_handle(ctx->store, raw, now, S->a.key, err);
    if (rc == SESS_NOTFOUND)
        return reject(reason, SESS_REASON_UNKNOWN);
    if (rc != SESS_OK)
        return rc;
    rc = load(ctx, S, &S->a, err);
    if (rc == SESS_NOTFOUND)
        return reject(reason, SESS_REASON_UNKNOWN);
    if (rc != SESS_OK)
        return rc;
    sess_reason r = check_record(ctx, &S->a.rec, client, now);
    return r == SESS_REASON_NONE ? SESS_OK : reject(reason, r);
}

static int view_with_data(const sess__record *r, uint64_t now, sess_view *v, sess_err *err)
{
    fill_view(r, now, v);
    v->data = malloc((size_t)r->data_len + 1);
    if (!v->data)
        return sess__fail(err, SESS_ENOMEM, "out of memory copying data");
    memcpy(v->data, r->data, r->data_len);
    v->data[r->data_len] = '\0';
    v->data_len = r->data_len;
    return SESS_OK;
}

/* The record of S->a written back as "r" (compare-and-swap on the blob
 * read).  SESS_CONFLICT when another request wrote first. */
static int write_back(sess_ctx *ctx, scratch *S, const sess__record *r, uint64_t now,
                      sess_err *err)
{
    sess_entry e;
    int rc = seal_record(ctx, S, r, S->a.key, &S->seal[0], &e, err);
    if (rc == SESS_OK)
        rc = ctx->store->methods->update(ctx->store, &e, S->a.entry.blob,
                                         S->a.entry.blob_len, now, err);
    return rc;
}

int sess_token_issue(sess_ctx *ctx, const char *id, size_t id_len,
                     const sess_client *client, const char *aud, size_t aud_len,
                     const sess_token_policy *pol, sess_view *view,
                     sess_token_grant *out, sess_err *err)
{
    uint8_t raw[SESS_STORE_HANDLE_BYTES], secret[32];
    int rc;

    memset(out, 0, sizeof *out);
    if (!pol || !aud || aud_len == 0 || aud_len > SESS_TOKEN_AUD_MAX) {
        memset(view, 0, sizeof *view);
        return sess__fail(err, SESS_EINVAL, "audience missing or longer than %u bytes",
                          SESS_TOKEN_AUD_MAX);
    }
    rc = sess_validate(ctx, id, id_len, client, SESS_VALIDATE_WANT_DATA, view, err);
    if (rc != SESS_OK)
        return rc;
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    if (sess__b64url_decode(view->handle, SESS_HANDLE_LEN, raw, sizeof raw) != SESS_OK)
        return sess__fail(err, SESS_EINTERNAL, "bad handle");
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        sess_reason reason = SESS_REASON_NONE;
        rc = load_by_handle(ctx, S, raw, now, NULL, &reason, err);
        if (rc == SESS_REJECTED)
            view->reason = reason;
        if (rc != SESS_OK)
            break;
        sess__record r = S->a.rec;
        rc = token_fresh(&r, pol, now, secret);
        if (rc != SESS_OK) {
            sess__wipe(&r, sizeof r);
            rc = sess__fail(err, rc, "getrandom failed");
            break;
        }
        /* A new token replaces the old one outright: not "spent", so no
         * grace and no theft alarm for it. */
        r.rt_prev_until = 0;
        memset(r.rt_prev_hash, 0, sizeof r.rt_prev_hash);
        memset(r.rt_succ_wrap, 0, sizeof r.rt_succ_wrap);
        memcpy(r.aud, aud, aud_len);
        r.aud_len = (uint16_t)aud_len;
        rc = write_back(ctx, S, &r, now, err);
        if (rc == SESS_OK) {
            rt_format(raw, secret, out->refresh_token);
            grant_of(&r, out);
        }
        sess__wipe(&r, sizeof r);
        if (rc != SESS_CONFLICT && rc != SESS_NOTFOUND)
            break;
    }
    sess__wipe(secret, sizeof secret);
    if (rc == SESS_CONFLICT || rc == SESS_NOTFOUND)
        rc = sess__fail(err, SESS_EINTERNAL, "token issue kept conflicting");
    if (rc != SESS_OK) {
        bool rejected = rc == SESS_REJECTED;
        sess_reason reason = view->reason;
        sess_view_clear(view);
        memset(view, 0, sizeof *view);
        view->reason = rejected ? reason : SESS_REASON_NONE;
        sess__wipe(out, sizeof *out);
    }
    return rc;
}

/* A spent refresh token presented after its grace: theft or a badly
 * stale client, which we cannot tell apart, so the session ends. */
static int token_reuse(sess_ctx *ctx, const sess__record *r, const sess_client *client,
                       uint64_t now, sess_reason *reason, sess_err *err)
{
    int rc = end_by_handle(ctx, r->handle, now, err);
    emit(ctx, SESS_EVENT_TOKEN_REUSE, r, NULL, client ? client->ip : NULL,
         rc == SESS_OK         ? "session revoked"
         : rc == SESS_NOTFOUND ? "no live session"
                               : "session revoke failed");
    if (rc != SESS_OK && rc != SESS_NOTFOUND)
        return rc;
    return reject(reason, SESS_REASON_REVOKED);
}

int sess_token_refresh(sess_ctx *ctx, const char *rt, size_t rt_len,
                       const sess_client *client, const sess_token_policy *pol,
                       sess_view *view, sess_token_grant *out, sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    uint8_t raw[SESS_STORE_HANDLE_BYTES], secret[32], h[32], next[32];
    sess_reason reason = SESS_REASON_NONE;
    int rc = SESS_REJECTED;

    memset(view, 0, sizeof *view);
    memset(out, 0, sizeof *out);
    if (!S || !pol)
        return sess__fail(err, S ? SESS_EINVAL : SESS_ENOMEM, "no policy or memory");
    if (!rt_parse(rt, rt_len, raw, secret)) {
        view->reason = SESS_REASON_UNKNOWN;
        return sess__fail(err, SESS_REJECTED, "not a refresh token");
    }
    rt_hash(secret, h);
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        rc = load_by_handle(ctx, S, raw, now, client, &reason, err);
        if (rc != SESS_OK)
            break;
        const sess__record *cur = &S->a.rec;
        if (!cur->rt_expires_at) {
            rc = reject(&reason, SESS_REASON_UNKNOWN);
            break;
        }
        if (sess__ct_equal(h, cur->rt_hash, 32)) {
            if (now >= cur->rt_expires_at) {
                rc = reject(&reason, SESS_REASON_EXPIRED_ABSOLUTE);
                break;
            }
            /* Spend it: the successor's secret is kept wrapped under the
             * spent one, so only its holder can be handed it again. */
            sess__record r = *cur;
            memcpy(r.rt_prev_hash, h, 32);
            r.rt_prev_until = now + pol->refresh_grace;
            rc = token_fresh(&r, pol, now, next);
            if (rc == SESS_OK)
                rc = sess__wrap32(secret, 32, r.handle, sizeof r.handle, next,
                                  r.rt_succ_wrap);
            if (rc != SESS_OK) {
                sess__wipe(&r, sizeof r);
                rc = sess__fail(err, SESS_ECRYPTO, "issuing the successor failed");
                break;
            }
            /* A refresh is use of the session: move its idle deadline. */
            r.last_seen_at = now;
            r.idle_expires_at = min_u64(now + idle_for(ctx, &r), r.abs_expires_at);
            rc = write_back(ctx, S, &r, now, err);
            if (rc == SESS_OK) {
                rt_format(raw, next, out->refresh_token);
                grant_of(&r, out);
                S->a.rec = r;
                rc = view_with_data(&S->a.rec, now, view, err);
            }
            sess__wipe(&r, sizeof r);
            if (rc != SESS_CONFLICT && rc != SESS_NOTFOUND)
                break;
            /* Another refresh won: re-read, the grace path answers. */
            continue;
        }
        if (cur->rt_prev_until && sess__ct_equal(h, cur->rt_prev_hash, 32)) {
            if (now >= cur->rt_prev_until) {
                rc = token_reuse(ctx, cur, client, now, &reason, err);
                break;
            }
            if (sess__unwrap32(secret, 32, cur->handle, sizeof cur->handle,
                               cur->rt_succ_wrap, next) != SESS_OK) {
                rc = reject(&reason, SESS_REASON_UNKNOWN);
                break;
            }
            rt_format(raw, next, out->refresh_token);
            grant_of(cur, out);
            out->replay = true;
            rc = view_with_data(cur, now, view, err);
            break;
        }
        rc = reject(&reason, SESS_REASON_UNKNOWN);
        break;
    }
    sess__wipe(secret, sizeof secret);
    sess__wipe(next, sizeof next);
    if (rc == SESS_CONFLICT || rc == SESS_NOTFOUND)
        rc = sess__fail(err, SESS_EINTERNAL, "refresh kept conflicting");
    if (rc != SESS_OK) {
        sess_view_clear(view);
        memset(view, 0, sizeof *view);
        sess__wipe(out, sizeof *out);
        if (rc == SESS_REJECTED) {
            view->reason = reason;
            if (err && err->code == SESS_OK)
                sess__fail(err, SESS_REJECTED, "refresh token not valid (%s)",
                           sess_reason_name(reason));
        }
    }
    return rc;
}

int sess_token_session(sess_ctx *ctx, const char *handle, size_t handle_len,
                       const char *rt, size_t rt_len, sess_view *view,
                       sess_token_grant *out, sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    uint8_t raw[SESS_STORE_HANDLE_BYTES], rraw[SESS_STORE_HANDLE_BYTES], secret[32], h[32];
    sess_reason reason = SESS_REASON_NONE;
    int rc;

    memset(view, 0, sizeof *view);
    if (out)
        memset(out, 0, sizeof *out);
    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    if (!handle || handle_len != SESS_HANDLE_LEN ||
        sess__b64url_decode(handle, handle_len, raw, sizeof raw) != SESS_OK) {
        view->reason = SESS_REASON_UNKNOWN;
        return SESS_REJECTED;
    }
    if (rt && (!rt_parse(rt, rt_len, rraw, secret) || !sess__ct_equal(raw, rraw, sizeof raw))) {
        sess__wipe(secret, sizeof secret);
        view->reason = SESS_REASON_UNKNOWN;
        return SESS_REJECTED;
    }
    rc = load_by_handle(ctx, S, raw, now, NULL, &reason, err);
    if (rc == SESS_OK && rt) {
        rt_hash(secret, h);
        if (!S->a.rec.rt_expires_at || now >= S->a.rec.rt_expires_at ||
            !sess__ct_equal(h, S->a.rec.rt_hash, 32))
            rc = reject(&reason, SESS_REASON_UNKNOWN);
    }
    sess__wipe(secret, sizeof secret);
    if (rc == SESS_REJECTED)
        view->reason = reason;
    if (rc != SESS_OK)
        return rc;
    if (out)
        grant_of(&S->a.rec, out);
    return view_with_data(&S->a.rec, now, view, err);
}

int sess_token_revoke(sess_ctx *ctx, const char *rt, size_t rt_len, bool end_session,
                      sess_err *err)
{
    scratch *S = thread_scratch();
    uint64_t now = sess_ctx_now(ctx);
    uint8_t raw[SESS_STORE_HANDLE_BYTES], secret[32], h[32];
    sess_reason reason;
    int rc = SESS_NOTFOUND;

    if (!S)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    if (!rt_parse(rt, rt_len, raw, secret))
        return SESS_NOTFOUND;
    rt_hash(secret, h);
    sess__wipe(secret, sizeof secret);
    for (int attempt = 0; attempt < SESS__ATTEMPTS; attempt++) {
        rc = load_by_handle(ctx, S, raw, now, NULL, &reason, err);
        if (rc == SESS_REJECTED)
            return SESS_NOTFOUND;
        if (rc != SESS_OK)
            return rc;
        const sess__record *cur = &S->a.rec;
        bool is_cur = cur->rt_expires_at && sess__ct_equal(h, cur->rt_hash, 32);
        bool is_prev = cur->rt_prev_until && now < cur->rt_prev_until &&
                       sess__ct_equal(h, cur->rt_prev_hash, 32);
        if (!is_cur && !is_prev)
            return SESS_NOTFOUND;
        if (end_session) {
            rc = end_by_handle(ctx, cur->handle, now, err);
            if (rc == SESS_OK)
                emit(ctx, SESS_EVENT_REVOKE, cur, raw, NULL, "refresh token");
            return rc;
        }
        sess__record r = *cur;
        r.rt_expires_at = r.rt_prev_until = 0;
        sess__wipe(r.rt_hash, sizeof r.rt_hash);
        sess__wipe(r.rt_prev_hash, sizeof r.rt_prev_hash);
        sess__wipe(r.rt_succ_wrap, sizeof r.rt_succ_wrap);
        r.aud_len = 0;
        rc = write_back(ctx, S, &r, now, err);
        sess__wipe(&r, sizeof r);
        if (rc != SESS_CONFLICT && rc != SESS_NOTFOUND)
            return rc;
    }
    return sess__fail(err, SESS_EINTERNAL, "token revoke kept conflicting");
}
