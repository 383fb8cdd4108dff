/*
 * store_redis.c - the Redis stores ("redis://", "redis+sentinel://",
 * "redis+cluster://"): the method table, the key layout, one Lua script
 * per operation, and the in-process L1 cache in front of get.  Servers,
 * pools, routing and failover live in store_redis_conn.c.
 *
 * Key layout.  Every name carries a hash tag "{rrrr}", the 14-bit route
 * (sess/store.h) of the bytes it is named after in four hex digits:
 *   s{r(key)}KEY32        string: header || blob (the record)
 *   h{r(handle)}HANDLE16  string: the record's name (indexed entries)
 *   u{r(user)}USER32      sorted set: record names by created_at
 *   x{r}                  sorted set: record names by expires_at (all)
 *   c{r}                  sorted set: as x, indexed entries only (count)
 * The record header (RV_HDR bytes, big-endian so Lua reads it easily):
 *   version 1 | flags u32 | created_at u64 | expires_at u64 | handle16 |
 *   user32.  Blobs are the sealed records: this file never sees plaintext.
 * route(user) is SESS_ROUTE_OF(user): the user key is a SHA-256 already,
 * so its first 14 bits are as good as any hash of it.  The core writes the
 * user's route into the key and handle of each of the user's sessions, so
 * all five names of one user's sessions share one tag, one cluster slot,
 * and every operation is ONE script on that slot (EVALSHA, EVAL when the
 * server answers NOSCRIPT).  Standalone and Sentinel use the same layout
 * and scripts.
 *
 * Legacy entries (cluster).  A session issued by a store that does not
 * route (LMDB, before a migration, docs/migration.md "Routing") has a key
 * and handle whose first 14 bits are not its user's route, and they cannot
 * change: the key is SHA-256 of the ID in the user's cookie.  In a cluster
 * every name of an entry carries its USER's tag instead, "s{r(user)}KEY",
 * so record, handle and user index still share one slot and one script;
 * and a small alias under the bytes' own tag, "a{r(key)}KEY" (and
 * "b{r(handle)}HANDLE" for the handle) holds that tag as four hex digits,
 * for the operations that start from a key or handle alone (get, remove,
 * find_handle; update and replace know the user).  Aliases are written
 * before the entry and expire with it (refreshed when it is extended); one
 * left over after the entry went is harmless: it leads to nothing.  A
 * legacy handle is flagged in the record header (RV_FLAG_LEGACY) so that
 * the scripts name it under the record's tag.  Routed entries have no
 * alias and cost nothing more; a lookup that misses costs the alias GET,
 * pipelined with the record's.
 *
 * Expiry.  Entries are dead at expires_at by the caller's "now" (every
 * script compares); Redis forgets a record and its handle by itself
 * TTL_GRACE seconds after that (EX relative to the caller's "now", so a
 * test clock or a skewed server clock never deletes a live entry), and
 * purge deletes what expired, oldest tags first, with the index rows.
 * Index rows whose record Redis already dropped are skipped by reads and
 * removed by the next write that meets them (insert, remove_user, purge).
 *
 * L1.  get answers from an in-process cache when (1) the entry was filled
 * by a read on a tracked connection in the current invalidation epoch,
 * (2) no invalidation is waiting in a subscriber socket or being applied
 * (sess__redis_track_quiet) and (3) the caller's "now" has not passed its
 * expiry.  Fills are fenced: an invalidation of the key's stripe, or an
 * epoch change, between the read and the fill cancels the fill.  Writes
 * of this process drop their own entries at once.  With on_unavailable =
 * serve_cached a get that cannot reach Redis may answer from any entry
 * still held (epoch ignored): the documented risk of that mode.
 *
 * Locking: the L1 is L1_SHARDS tables, each with its own mutex (held for
 * table work only, never across a server call); stripe counters are
 * atomics.  Lock order: the connection layer's topology lock may be held
 * when it calls the flush hook, which takes the shard mutexes one at a
 * time; a shard mutex never calls out.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "sess/store.h"
#include "store_internal.h"
#include "store_redis.h"
#include "util.h"

#define RV_VERSION 1
#define RV_FLAGS 1
#define RV_CREATED 5
#define RV_EXPIRES 13
#define RV_HANDLE 21
#define RV_USER (RV_HANDLE + SESS_STORE_HANDLE_BYTES)
#define RV_HDR (RV_USER + SESS_STORE_USER_BYTES) /* 69 */

#define NAME_PREFIX 7                              /* "s{rrrr}" */
#define RV_FLAG_LEGACY 0x80000000u /* header flag: handle named under the
                                    * record's tag (legacy entries) */
#define NAME_MAX_BYTES (NAME_PREFIX + 32)
#define TTL_GRACE 300u                             /* seconds */
#define TTL_MAX (10u * 366u * 86400u)
#define L1_DEFAULT_MAX 100000u
#define L1_STRIPES 256u
#define L1_EXPIRED 1000                               /* l1_lookup: held, dead */

/* ---- Lua ---------------------------------------------------------------- */

/* The scripts live in lib/lua/NAME.lua, embedded at build time as
 * sess__lua_NAME (cmake/embed_lua.cmake).  Each script sent to Redis is
 * the layout constants below, written from the C definitions above so the
 * offsets have one source, then prelude.lua, then the script itself. */
extern const char sess__lua_prelude[], sess__lua_insert[], sess__lua_update[],
    sess__lua_replace[], sess__lua_remove[], sess__lua_find[], sess__lua_list[],
    sess__lua_remove_user[], sess__lua_purge[];

enum script_id { S_INSERT, S_UPDATE, S_REPLACE, S_REMOVE, S_FIND, S_LIST,
                 S_REMOVE_USER, S_PURGE, S_COUNT_ };

static const char *const script_body[S_COUNT_] = {
    sess__lua_insert, sess__lua_update, sess__lua_replace, sess__lua_remove,
    sess__lua_find,   sess__lua_list,   sess__lua_remove_user, sess__lua_purge};

/* The full texts, built once (sha_init) and kept for the process. */
static const char *scripts[S_COUNT_];

/* Lua locals for the value header (1-based offsets, as Lua counts) and
 * the names: "s{rrrr}KEY", so the tag ends at NAME_PREFIX and the rest
 * starts after it. */
static int lua_constants(char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "local V1,HDR,O_FLAGS,O_CREATED,O_EXPIRES,O_HANDLE,O_USER="
                    "%d,%d,%d,%d,%d,%d,%d\n"
                    "local HANDLE_LEN,USER_LEN,TAG_LAST,NAME_REST=%d,%d,%d,%d\n",
                    RV_VERSION, RV_HDR, RV_FLAGS + 1, RV_CREATED + 1,
                    RV_EXPIRES + 1, RV_HANDLE + 1, RV_USER + 1,
                    SESS_STORE_HANDLE_BYTES, SESS_STORE_USER_BYTES, NAME_PREFIX,
                    NAME_PREFIX + 1);
}

static char script_sha[S_COUNT_][41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static int sha_rc;

static void sha_init(void)
{
    static const char hex[] = "0123456789abcdef";
    char consts[256];
    int cn = lua_constants(consts, sizeof consts);
    if (cn < 0 || (size_t)cn >= sizeof consts) {
        sha_rc = SESS_EINTERNAL;
        return;
    }
    for (int i = 0; i < S_COUNT_; i++) {
        size_t n = (size_t)cn + strlen(sess__lua_prelude) + strlen(script_body[i]) + 1;
        char *t = malloc(n);
        if (!t) {
            sha_rc = SESS_ENOMEM;
            return;
        }
        snprintf(t, n, "%s%s%s", consts, sess__lua_prelude, script_body[i]);
        scripts[i] = t;
    }
    for (int i = 0; i < S_COUNT_; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_Digest(scripts[i], strlen(scripts[i]), md, &n, EVP_sha1(), NULL) != 1 ||
            n != 20) {
            sha_rc = SESS_EINTERNAL;
            return;
        }
        for (unsigned j = 0; j < 20; j++) {
            script_sha[i][2 * j] = hex[md[j] >> 4];
            script_sha[i][2 * j + 1] = hex[md[j] & 15];
        }
        script_sha[i][40] = '\0';
    }
}

/* ---- the store ------------------------------------------------------------ */

/* One allocation per entry: the chain link and the key share the first
 * cache line, and the value follows the header, so a hit reads
 * consecutive lines. */
struct l1_entry {
    struct l1_entry *next;
    uint8_t key[SESS_STORE_KEY_BYTES];
    uint64_t epoch;
    uint64_t expires_at;
    size_t len;
    uint8_t val[];                /* header || blob */
};

/* The L1 is split in shards, each a chained table under its own mutex,
 * so lookups of different sessions on different threads do not queue on
 * one lock.  A key's shard comes from bytes of the key that neither the
 * route nor the bucket hash uses. */
#define L1_SHARDS 64u

struct l1_shard {
    pthread_mutex_t lock;
    struct l1_entry **b;
    size_t mask;
    size_t n, max;
    uint64_t rng;
} __attribute__((aligned(64)));

/* L1 hit and miss counters, one pair per thread slot (padded to a cache
 * line), so that a hit does not bounce one shared line between cores. */
#define L1_CTR_SLOTS 16u

struct l1_ctr {
    atomic_uint_fast64_t hits, misses;
    char pad[64 - 2 * sizeof(atomic_uint_fast64_t)];
};

struct redis_store {
    sess_store base;              /* first: sess_store rule */
    sess__redis *r;
    sess__redis_counters ctr;
    bool cluster;
    bool replicated;
    bool serve_cached;

    bool l1_on;
    struct l1_shard *l1;          /* L1_SHARDS of them */
    atomic_uint_fast64_t stripe[L1_STRIPES];
    struct l1_ctr l1_ctr[L1_CTR_SLOTS];
};

static struct l1_ctr *l1_ctr_mine(struct redis_store *st)
{
    return &st->l1_ctr[sess__thread_index() % L1_CTR_SLOTS];
}

static uint16_t route_of(const uint8_t *b)
{
    return SESS_ROUTE_OF(b);
}

/* "KIND{rrrr}BYTES" into "out" (NAME_MAX_BYTES); returns its length. */
static size_t name_of(char *out, char kind, const uint8_t *bytes, size_t n)
{
    char t[8];
    snprintf(t, sizeof t, "{%04x}", (unsigned)route_of(bytes));
    out[0] = kind;
    memcpy(out + 1, t, 6);
    memcpy(out + NAME_PREFIX, bytes, n);
    return NAME_PREFIX + n;
}

/* The same under an explicit tag (legacy entries in a cluster). */
static size_t name_at(char *out, char kind, const uint8_t *bytes, size_t n, uint16_t tag)
{
    char t[8];
    snprintf(t, sizeof t, "{%04x}", (unsigned)tag);
    out[0] = kind;
    memcpy(out + 1, t, 6);
    memcpy(out + NAME_PREFIX, bytes, n);
    return NAME_PREFIX + n;
}

static int slot_of(const struct redis_store *st, const char *name, size_t n)
{
    return st->cluster ? sess__redis_slot(name, n) : SESS_REDIS_ANY_SLOT;
}

/* header || blob of "e" with "flags", malloc'ed into "*out". */
static int encode(const sess_entry *e, uint32_t flags, uint8_t **out, size_t *len)
{
    size_t n = RV_HDR + e->blob_len;
    uint8_t *p = malloc(n);
    if (!p)
        return SESS_ENOMEM;
    p[0] = RV_VERSION;
    p[RV_FLAGS] = (uint8_t)(flags >> 24);
    p[RV_FLAGS + 1] = (uint8_t)(flags >> 16);
    p[RV_FLAGS + 2] = (uint8_t)(flags >> 8);
    p[RV_FLAGS + 3] = (uint8_t)flags;
    sess__put_be64(p + RV_CREATED, e->created_at);
    sess__put_be64(p + RV_EXPIRES, e->expires_at);
    memcpy(p + RV_HANDLE, e->handle, SESS_STORE_HANDLE_BYTES);
    memcpy(p + RV_USER, e->user, SESS_STORE_USER_BYTES);
    if (e->blob_len)
        memcpy(p + RV_HDR, e->blob, e->blob_len);
    *out = p;
    *len = n;
    return SESS_OK;
}

static void wipe_free(uint8_t *p, size_t n)
{
    if (p) {
        sess__wipe(p, n);
        free(p);
    }
}

static bool header_valid(const uint8_t *v, size_t n)
{
    return n >= RV_HDR && v[0] == RV_VERSION;
}

/* Fill "e" from a stored value; the blob is copied into "buf". */
static int decode_into(const uint8_t *key, const uint8_t *v, size_t n,
                       sess_entry *e, sess_store_buf *buf)
{
    size_t blen = n - RV_HDR;
    if (sess_store_buf_reserve(buf, blen) != SESS_OK)
        return SESS_ENOMEM;
    if (blen)
        memcpy(buf->data, v + RV_HDR, blen);
    buf->len = blen;
    memcpy(e->key, key, SESS_STORE_KEY_BYTES);
    memcpy(e->handle, v + RV_HANDLE, SESS_STORE_HANDLE_BYTES);
    memcpy(e->user, v + RV_USER, SESS_STORE_USER_BYTES);
    e->flags = ((uint32_t)v[RV_FLAGS] << 24 | (uint32_t)v[RV_FLAGS + 1] << 16 |
                (uint32_t)v[RV_FLAGS + 2] << 8 | v[RV_FLAGS + 3]) & ~RV_FLAG_LEGACY;
    e->created_at = sess__get_be64(v + RV_CREATED);
    e->expires_at = sess__get_be64(v + RV_EXPIRES);
    e->blob = buf->data;
    e->blob_len = blen;
    return SESS_OK;
}

/* Seconds Redis keeps a record: its remaining life by the caller's clock
 * plus TTL_GRACE, so a slow purge never races Redis's own expiry. */
static uint64_t ttl_for(uint64_t expires_at, uint64_t now)
{
    uint64_t left = expires_at > now ? expires_at - now : 0;
    if (left > TTL_MAX)
        left = TTL_MAX;
    return left + TTL_GRACE;
}

/* ---- L1 ------------------------------------------------------------------ */

static size_t l1_hash(const uint8_t *key)
{
    /* Keys are SHA-256 outputs; bytes 2.. are not the route. */
    uint64_t h = sess__get_u64(key + 2) ^ sess__get_u64(key + 10);
    return (size_t)(h ^ (h >> 29));
}

static atomic_uint_fast64_t *l1_stripe(struct redis_store *st, const uint8_t *key)
{
    return &st->stripe[(key[2] ^ key[9]) % L1_STRIPES];
}

static struct l1_shard *l1_shard_of(struct redis_store *st, const uint8_t *key)
{
    return &st->l1[key[20] % L1_SHARDS];
}

static void l1_entry_free(struct l1_entry *e)
{
    if (e)
        wipe_free((uint8_t *)e, sizeof(*e) + e->len);
}

/* Unlink the entry for "key"; caller holds the shard's lock.  True if
 * found. */
static bool l1_unlink_locked(struct l1_shard *sh, const uint8_t *key)
{
    struct l1_entry **pp = &sh->b[l1_hash(key) & sh->mask];
    for (; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->key, key, SESS_STORE_KEY_BYTES) == 0) {
            struct l1_entry *e = *pp;
            __atomic_store_n(pp, e->next, __ATOMIC_RELAXED); /* see l1_prefetch */
            sh->n--;
            l1_entry_free(e);
            return true;
        }
    }
    return false;
}

/* Free every entry of "sh"; caller holds its lock (or owns the store). */
static void l1_shard_clear(struct l1_shard *sh)
{
    for (size_t i = 0; sh->b && i <= sh->mask; i++) {
        struct l1_entry *e = sh->b[i];
        while (e) {
            struct l1_entry *next = e->next;
            l1_entry_free(e);
            e = next;
        }
        __atomic_store_n(&sh->b[i], NULL, __ATOMIC_RELAXED);
    }
    sh->n = 0;
}

/* Drop "key" from L1 and cancel fills in flight for its stripe. */
static void l1_drop(struct redis_store *st, const uint8_t *key)
{
    if (!st->l1_on)
        return;
    struct l1_shard *sh = l1_shard_of(st, key);
    atomic_fetch_add(l1_stripe(st, key), 1);
    pthread_mutex_lock(&sh->lock);
    (void)l1_unlink_locked(sh, key);
    pthread_mutex_unlock(&sh->lock);
}

/* The same for a record name as Redis returns it ("s{rrrr}KEY32"). */
static void l1_drop_name(struct redis_store *st, const char *name, size_t len)
{
    if (len == NAME_MAX_BYTES && name[0] == 's')
        l1_drop(st, (const uint8_t *)name + NAME_PREFIX);
}

static void hook_invalidate(void *ctx, const char *name, size_t len)
{
    struct redis_store *st = ctx;
    atomic_fetch_add_explicit(&st->ctr.l1_invalidations, 1, memory_order_relaxed);
    l1_drop_name(st, name, len);
}

/* A link went down or came back (the epoch changed already): fenced
 * entries are kept for serve_cached only. */
static void hook_flush(void *ctx)
{
    struct redis_store *st = ctx;
    if (!st->l1_on)
        return;
    atomic_fetch_add_explicit(&st->ctr.l1_flushes, 1, memory_order_relaxed);
    if (st->serve_cached)
        return;
    for (unsigned i = 0; i < L1_SHARDS; i++) {
        pthread_mutex_lock(&st->l1[i].lock);
        l1_shard_clear(&st->l1[i]);
        pthread_mutex_unlock(&st->l1[i].lock);
    }
}

/* Start loading the first entry of the chain of "key" (nearly always the
 * entry itself) so that its lines arrive while the caller makes the
 * invalidation check's syscall.  The head is read without the lock: the
 * pointer is only a prefetch address (a prefetch never faults, even on
 * freed memory), and bucket heads are written with atomic stores so the
 * unlocked read is not a data race. */
static void l1_prefetch(struct redis_store *st, const uint8_t *key)
{
    struct l1_shard *sh = l1_shard_of(st, key);
    struct l1_entry *x = __atomic_load_n(&sh->b[l1_hash(key) & sh->mask],
                                         __ATOMIC_RELAXED);
    if (x) {
        __builtin_prefetch(x);
        __builtin_prefetch((const uint8_t *)x + 64);
    }
}

/* Copy of the cached value of "key" when usable: "any_epoch" ignores the
 * epoch fence (serve_cached).  SESS_OK, L1_EXPIRED (held but dead at
 * "now": absent), SESS_NOTFOUND (miss) or SESS_ENOMEM. */
static int l1_lookup(struct redis_store *st, const uint8_t *key, uint64_t now,
                     bool any_epoch, sess_entry *e, sess_store_buf *buf)
{
    int rc = SESS_NOTFOUND;
    uint64_t epoch = sess__redis_track_epoch(st->r);
    struct l1_shard *sh = l1_shard_of(st, key);
    pthread_mutex_lock(&sh->lock);
    struct l1_entry *x = sh->b[l1_hash(key) & sh->mask];
    for (; x; x = x->next)
        if (memcmp(x->key, key, SESS_STORE_KEY_BYTES) == 0)
            break;
    if (x && (any_epoch || x->epoch == epoch)) {
        if (!sess__store_live(x->expires_at, now))
            rc = L1_EXPIRED;
        else
            rc = decode_into(key, x->val, x->len, e, buf);
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

/* Insert a copy of a value read at "epoch" with stripe counter "seq". */
static void l1_fill(struct redis_store *st, const uint8_t *key, const uint8_t *v,
                    size_t n, uint64_t epoch, uint64_t seq)
{
    struct l1_entry *e = malloc(sizeof(*e) + n);
    if (!e)
        return;
    e->next = NULL;
    memcpy(e->val, v, n);
    e->len = n;
    memcpy(e->key, key, SESS_STORE_KEY_BYTES);
    e->epoch = epoch;
    e->expires_at = sess__get_be64(v + RV_EXPIRES);

    struct l1_shard *sh = l1_shard_of(st, key);
    pthread_mutex_lock(&sh->lock);
    /* Fenced: an invalidation or epoch change since the read wins. */
    if (atomic_load(l1_stripe(st, key)) != seq ||
        sess__redis_track_epoch(st->r) != epoch) {
        pthread_mutex_unlock(&sh->lock);
        l1_entry_free(e);
        return;
    }
    (void)l1_unlink_locked(sh, key);
    if (sh->n >= sh->max) {
        /* Random eviction: the first chain at or after a random bucket. */
        sh->rng ^= sh->rng << 13;
        sh->rng ^= sh->rng >> 7;
        sh->rng ^= sh->rng << 17;
        size_t start = (size_t)sh->rng & sh->mask;
        for (size_t i = 0; i <= sh->mask; i++) {
            struct l1_entry **pp = &sh->b[(start + i) & sh->mask];
            if (*pp) {
                struct l1_entry *victim = *pp;
                __atomic_store_n(pp, victim->next, __ATOMIC_RELAXED);
                sh->n--;
                l1_entry_free(victim);
                break;
            }
        }
    }
    size_t b = l1_hash(key) & sh->mask;
    e->next = sh->b[b];
    __atomic_store_n(&sh->b[b], e, __ATOMIC_RELAXED);
    sh->n++;
    pthread_mutex_unlock(&sh->lock);
}

/* ---- running scripts --------------------------------------------------------- */

/* Run script "id" with "nkeys" names and "nargs" arguments on the slot of
 * the first name.  "*out" gets the reply (caller frees); an error reply
 * becomes SESS_EIO (SESS_EINVAL for a cross-slot refusal). */
static int run(struct redis_store *st, enum script_id id, unsigned flags,
               size_t nkeys, const char *const *keys, const size_t *klen,
               size_t nargs, const char *const *args, const size_t *alen,
               redisReply **out, const char *op, sess_err *err)
{
    sess__redis_cmd c;
    char nk[4];
    int l = snprintf(nk, sizeof nk, "%zu", nkeys);

    *out = NULL;
    if (2 + 1 + nkeys + nargs > sizeof c.argv / sizeof c.argv[0])
        return sess__fail(err, SESS_EINTERNAL, "redis %s: too many arguments", op);
    c.argc = 0;
    c.argv[c.argc] = "EVALSHA";
    c.len[c.argc++] = 7;
    c.argv[c.argc] = script_sha[id];
    c.len[c.argc++] = 40;
    c.argv[c.argc] = nk;
    c.len[c.argc++] = (size_t)l;
    for (size_t i = 0; i < nkeys; i++) {
        c.argv[c.argc] = keys[i];
        c.len[c.argc++] = klen[i];
    }
    for (size_t i = 0; i < nargs; i++) {
        c.argv[c.argc] = args[i];
        c.len[c.argc++] = alen[i];
    }
    int slot = slot_of(st, keys[0], klen[0]);
    redisReply *rep = NULL;
    int rc = sess__redis_exec(st->r, slot, flags, &c, 1, &rep, NULL, NULL, op, err);
    if (rc != SESS_OK)
        return rc;
    if (rep->type == REDIS_REPLY_ERROR && rep->str &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        rep = NULL;
        c.argv[0] = "EVAL";
        c.len[0] = 4;
        c.argv[1] = scripts[id];
        c.len[1] = strlen(scripts[id]);
        rc = sess__redis_exec(st->r, slot, flags, &c, 1, &rep, NULL, NULL, op, err);
        if (rc != SESS_OK)
            return rc;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        bool cross = rep->str && (strstr(rep->str, "CROSSSLOT") ||
                                  strstr(rep->str, "non local key") ||
                                  strstr(rep->str, "same slot"));
        freeReplyObject(rep);
        atomic_fetch_add_explicit(&st->ctr.errors, 1, memory_order_relaxed);
        if (cross)
            return sess__fail(err, SESS_EINVAL,
                              "redis %s: keys of one session span slots "
                              "(not routed, see route in sess/store.h)", op);
        return sess__fail(err, SESS_EIO, "redis %s: script failed", op);
    }
    *out = rep;
    return SESS_OK;
}

static int bad_reply(struct redis_store *st, redisReply *rep, const char *op,
                     sess_err *err)
{
    if (rep)
        freeReplyObject(rep);
    atomic_fetch_add_explicit(&st->ctr.errors, 1, memory_order_relaxed);
    return sess__fail(err, SESS_EIO, "redis %s: unexpected reply", op);
}

static bool is_int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER;
}

static bool is_str(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING;
}

/* ---- legacy entries (cluster) --------------------------------------------- */

/* The tag every name of "e" carries: in a cluster its user's, elsewhere
 * (each name under its own bytes' route) its key's. */
static uint16_t entry_tag(const struct redis_store *st, const sess_entry *e)
{
    return st->cluster ? route_of(e->user) : route_of(e->key);
}

/* Whether "e"'s handle is named under the record's tag (cluster, indexed,
 * handle not routed to the user). */
static bool legacy_handle(const struct redis_store *st, const sess_entry *e)
{
    return st->cluster && sess__store_indexed(e->flags) &&
           route_of(e->handle) != route_of(e->user);
}

/* Header flags stored for "e": the caller's, plus RV_FLAG_LEGACY. */
static uint32_t stored_flags(const struct redis_store *st, const sess_entry *e)
{
    return (e->flags & ~RV_FLAG_LEGACY) | (legacy_handle(st, e) ? RV_FLAG_LEGACY : 0);
}

/* Point "kind" ('a' key, 'b' handle) alias of "bytes" at "tag", unless
 * the bytes carry that tag already.  Written before the entry (so an
 * entry is never without its alias) and with the entry's lifetime. */
static int alias_put(struct redis_store *st, char kind, const uint8_t *bytes, size_t n,
                     uint16_t tag, uint64_t ttl, const char *op, sess_err *err)
{
    if (!st->cluster || route_of(bytes) == tag)
        return SESS_OK;
    char an[NAME_MAX_BYTES], tv[8], sttl[24];
    size_t la = name_of(an, kind, bytes, n);
    snprintf(tv, sizeof tv, "%04x", (unsigned)tag);
    int lt = snprintf(sttl, sizeof sttl, "%llu", (unsigned long long)ttl);
    sess__redis_cmd c = {.argc = 5, .argv = {"SET", an, tv, "EX", sttl},
                         .len = {3, la, 4, 2, (size_t)lt}};
    redisReply *rep = NULL;
    int rc = sess__redis_exec(st->r, slot_of(st, an, la), 0, &c, 1, &rep, NULL, NULL, op, err);
    if (rc != SESS_OK)
        return rc;
    bool ok = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return ok ? SESS_OK : sess__fail(err, SESS_EIO, "redis %s: alias write refused", op);
}

/* Parse an alias value ("rrrr"); false when it is not one. */
static bool alias_tag(const redisReply *v, uint16_t *tag)
{
    if (!v || v->type != REDIS_REPLY_STRING || v->len != 4)
        return false;
    unsigned t = 0;
    for (size_t i = 0; i < 4; i++) {
        char c = v->str[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
        if (d > 15)
            return false;
        t = t * 16 + d;
    }
    if (t >= SESS_REDIS_SLOTS)
        return false;
    *tag = (uint16_t)t;
    return true;
}

/* The tag the alias of "bytes" names: SESS_OK, SESS_NOTFOUND (none, or
 * not in a cluster) or an error. */
static int alias_get(struct redis_store *st, char kind, const uint8_t *bytes, size_t n,
                     uint16_t *tag, const char *op, sess_err *err)
{
    if (!st->cluster)
        return SESS_NOTFOUND;
    char an[NAME_MAX_BYTES];
    size_t la = name_of(an, kind, bytes, n);
    sess__redis_cmd c = {.argc = 2, .argv = {"GET", an}, .len = {3, la}};
    redisReply *rep = NULL;
    int rc = sess__redis_exec(st->r, slot_of(st, an, la), 0, &c, 1, &rep, NULL, NULL, op, err);
    if (rc != SESS_OK)
        return rc;
    rc = alias_tag(rep, tag) && *tag != route_of(bytes) ? SESS_OK : SESS_NOTFOUND;
    freeReplyObject(rep);
    return rc;
}

/* Make the aliases of "e" (key, and handle when indexed) live as long as
 * the entry: after an insert, update or replace that set its expiry. */
static int aliases_for(struct redis_store *st, const sess_entry *e, uint64_t now,
                       const char *op, sess_err *err)
{
    uint16_t tag = entry_tag(st, e);
    uint64_t ttl = ttl_for(e->expires_at, now);
    int rc = alias_put(st, 'a', e->key, SESS_STORE_KEY_BYTES, tag, ttl, op, err);
    if (rc == SESS_OK && sess__store_indexed(e->flags))
        rc = alias_put(st, 'b', e->handle, SESS_STORE_HANDLE_BYTES, tag, ttl, op, err);
    return rc;
}

/* ---- methods -------------------------------------------------------------- */

static void rs_close(sess_store *base)
{
    struct redis_store *st = (struct redis_store *)base;
    if (!st)
        return;
    sess__redis_close(st->r); /* joins the subscribers: no hook after this */
    if (st->l1) {
        for (unsigned i = 0; i < L1_SHARDS; i++) {
            l1_shard_clear(&st->l1[i]);
            free(st->l1[i].b);
            pthread_mutex_destroy(&st->l1[i].lock);
        }
        free(st->l1);
    }
    free(st);
}

static int rs_open(const char *url, const sess_store_options *opt,
                   sess_store **out, sess_err *err)
{
    *out = NULL;
    pthread_once(&sha_once, sha_init);
    if (sha_rc != SESS_OK)
        return sess__fail(err, sha_rc, "redis store: cannot hash scripts");
    if (opt->durability != SESS_DURABILITY_PROCESS &&
        opt->durability != SESS_DURABILITY_FSYNC &&
        opt->durability != SESS_DURABILITY_REPLICATED)
        return sess__fail(err, SESS_EINVAL, "redis store: unknown durability");
    if (opt->on_unavailable != SESS_UNAVAILABLE_FAIL_CLOSED &&
        opt->on_unavailable != SESS_UNAVAILABLE_SERVE_CACHED)
        return sess__fail(err, SESS_EINVAL, "redis store: unknown on_unavailable");

    struct redis_store *st = calloc(1, sizeof *st);
    if (!st)
        return sess__fail(err, SESS_ENOMEM, "redis store: out of memory");
    st->base.methods = (const sess_store_methods *)NULL;
    st->replicated = opt->durability == SESS_DURABILITY_REPLICATED;
    st->serve_cached = opt->on_unavailable == SESS_UNAVAILABLE_SERVE_CACHED;
    st->l1_on = opt->l1_cache >= 0;
    size_t l1_max = opt->l1_max_entries ? opt->l1_max_entries : L1_DEFAULT_MAX;
    size_t per_shard = (l1_max + L1_SHARDS - 1) / L1_SHARDS;
    size_t buckets = 4;
    while (buckets < per_shard && buckets < ((size_t)1 << 20))
        buckets *= 2;
    st->l1 = aligned_alloc(64, L1_SHARDS * sizeof *st->l1);
    if (st->l1)
        memset(st->l1, 0, L1_SHARDS * sizeof *st->l1);
    for (unsigned i = 0; st->l1 && i < L1_SHARDS; i++) {
        struct l1_shard *sh = &st->l1[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->max = per_shard;
        sh->rng = ((uint64_t)(uintptr_t)st + i) | 1;
        sh->mask = buckets - 1;
        sh->b = calloc(buckets, sizeof *sh->b);
        if (!sh->b) {
            for (unsigned k = i + 1; k < L1_SHARDS; k++)
                pthread_mutex_init(&st->l1[k].lock, NULL);
            rs_close(&st->base);
            return sess__fail(err, SESS_ENOMEM, "redis store: out of memory");
        }
    }
    if (!st->l1) {
        rs_close(&st->base);
        return sess__fail(err, SESS_ENOMEM, "redis store: out of memory");
    }

    sess__redis_config cfg = {
        .timeout_ms = opt->timeout_ms,
        .connect_timeout_ms = opt->connect_timeout_ms,
        .pool_size = opt->pool_size,
        .replica_timeout_ms = opt->replica_timeout_ms,
        .password = opt->password,
        .tracking = st->l1_on,
        .hooks = {.ctx = st, .invalidate = hook_invalidate, .flush = hook_flush},
        .counters = &st->ctr,
    };
    int rc = sess__redis_open(url, &cfg, &st->r, err);
    if (rc != SESS_OK) {
        rs_close(&st->base);
        return rc;
    }
    st->cluster = sess__redis_kind_of(st->r) == SESS_REDIS_CLUSTER;
    switch (sess__redis_kind_of(st->r)) {
    case SESS_REDIS_SENTINEL: st->base.methods = &sess__store_redis_sentinel_methods; break;
    case SESS_REDIS_CLUSTER: st->base.methods = &sess__store_redis_cluster_methods; break;
    default: st->base.methods = &sess__store_redis_methods; break;
    }
    *out = &st->base;
    return SESS_OK;
}

static int rs_get(sess_store *base, const uint8_t *key, uint64_t now,
                  sess_entry *e, sess_store_buf *buf, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char name[NAME_MAX_BYTES];

    if (!key || !e || !buf)
        return sess__fail(err, SESS_EINVAL, "redis get: missing argument");
    if (st->l1_on) {
        l1_prefetch(st, key);
        if (sess__redis_track_quiet(st->r)) {
            int lrc = l1_lookup(st, key, now, false, e, buf);
            if (lrc == SESS_OK || lrc == L1_EXPIRED) {
                atomic_fetch_add_explicit(&l1_ctr_mine(st)->hits, 1, memory_order_relaxed);
                sess__store_note_l1(true);
                return lrc == SESS_OK ? SESS_OK : SESS_NOTFOUND;
            }
            if (lrc == SESS_ENOMEM)
                return sess__fail(err, SESS_ENOMEM, "redis get: out of memory");
        }
        atomic_fetch_add_explicit(&l1_ctr_mine(st)->misses, 1, memory_order_relaxed);
        sess__store_note_l1(false);
    }

    size_t nl = name_of(name, 's', key, SESS_STORE_KEY_BYTES);
    uint64_t seq = st->l1_on ? atomic_load(l1_stripe(st, key)) : 0;
    /* In a cluster the key's alias is read in the same round trip (same
     * tag, same slot): a legacy entry then costs one more, a miss none. */
    char an[NAME_MAX_BYTES];
    size_t anl = name_of(an, 'a', key, SESS_STORE_KEY_BYTES);
    sess__redis_cmd c[2] = {{.argc = 2, .argv = {"GET", name}, .len = {3, nl}},
                            {.argc = 2, .argv = {"GET", an}, .len = {3, anl}}};
    redisReply *reps[2] = {NULL, NULL}, *rep = NULL;
    bool tracked = false;
    uint64_t epoch = 0;
    int rc = sess__redis_exec(st->r, slot_of(st, name, nl),
                              st->l1_on ? SESS_REDIS_TRACK : 0, c, st->cluster ? 2 : 1, reps,
                              &tracked, &epoch, "get", err);
    rep = reps[0];
    uint16_t tag;
    if (rc == SESS_OK && reps[1]) {
        if (rep->type == REDIS_REPLY_NIL && alias_tag(reps[1], &tag) && tag != route_of(key)) {
            freeReplyObject(rep);
            rep = NULL;
            nl = name_at(name, 's', key, SESS_STORE_KEY_BYTES, tag);
            c[0].len[1] = nl;
            rc = sess__redis_exec(st->r, slot_of(st, name, nl), st->l1_on ? SESS_REDIS_TRACK : 0,
                                  c, 1, &rep, &tracked, &epoch, "get", err);
        }
        freeReplyObject(reps[1]);
    }
    if (rc != SESS_OK) {
        if (rc == SESS_EUNAVAILABLE && st->l1_on && st->serve_cached) {
            /* The documented risk of serve_cached: this entry may have
             * been revoked while the server was out of reach. */
            int lrc = l1_lookup(st, key, now, true, e, buf);
            if (lrc == SESS_OK)
                return SESS_OK;
            if (lrc == L1_EXPIRED)
                return SESS_NOTFOUND;
        }
        return rc;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        l1_drop(st, key);
        return SESS_NOTFOUND;
    }
    if (!is_str(rep))
        return bad_reply(st, rep, "get", err);
    const uint8_t *v = (const uint8_t *)rep->str;
    size_t n = rep->len;
    if (!header_valid(v, n)) {
        freeReplyObject(rep);
        return sess__fail(err, SESS_ECORRUPT, "redis get: stored entry malformed");
    }
    if (st->l1_on && tracked)
        l1_fill(st, key, v, n, epoch, seq);
    rc = decode_into(key, v, n, e, buf);
    if (rc == SESS_OK && !sess__store_live(e->expires_at, now))
        rc = SESS_NOTFOUND;
    else if (rc == SESS_ENOMEM)
        rc = sess__fail(err, SESS_ENOMEM, "redis get: out of memory");
    freeReplyObject(rep);
    return rc;
}

static void u64dec(char *out, size_t cap, uint64_t v, size_t *len)
{
    int l = snprintf(out, cap, "%llu", (unsigned long long)v);
    *len = (size_t)l;
}

static int rs_insert(sess_store *base, const sess_entry *e,
                     const sess_store_limit *lim, uint64_t now,
                     sess_store_evicted *evicted, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char rn[NAME_MAX_BYTES], hn[NAME_MAX_BYTES], un[NAME_MAX_BYTES];
    char snow[24], smax[16], sttl[24], sexp[24], screated[24];
    size_t lnow, lmax, lttl, lexp, lcreated;
    uint8_t *val = NULL;
    size_t vlen = 0;
    redisReply *rep = NULL;
    int rc = sess__store_check_entry(e, "insert", err);

    if (evicted)
        evicted->n = 0;
    if (rc != SESS_OK)
        return rc;
    bool indexed = sess__store_indexed(e->flags);
    if ((rc = aliases_for(st, e, now, "insert", err)) != SESS_OK)
        return rc;
    if (encode(e, stored_flags(st, e), &val, &vlen) != SESS_OK)
        return sess__fail(err, SESS_ENOMEM, "redis insert: out of memory");

    uint16_t tag = entry_tag(st, e);
    size_t lr = st->cluster ? name_at(rn, 's', e->key, SESS_STORE_KEY_BYTES, tag)
                            : name_of(rn, 's', e->key, SESS_STORE_KEY_BYTES);
    size_t lh = legacy_handle(st, e) ? name_at(hn, 'h', e->handle, SESS_STORE_HANDLE_BYTES, tag)
                                     : name_of(hn, 'h', e->handle, SESS_STORE_HANDLE_BYTES);
    size_t lu = name_of(un, 'u', e->user, SESS_STORE_USER_BYTES);
    u64dec(snow, sizeof snow, now, &lnow);
    u64dec(smax, sizeof smax, lim ? lim->max_per_user : 0, &lmax);
    u64dec(sttl, sizeof sttl, ttl_for(e->expires_at, now), &lttl);
    u64dec(sexp, sizeof sexp, e->expires_at, &lexp);
    u64dec(screated, sizeof screated, e->created_at, &lcreated);
    const char *deny = lim && lim->policy == SESS_LIMIT_DENY ? "1" : "0";

    const char *keys[3] = {rn, hn, un};
    size_t klen[3] = {lr, lh, lu};
    const char *args[7] = {(const char *)val, snow, smax, deny, sttl, sexp, screated};
    size_t alen[7] = {vlen, lnow, lmax, 1, lttl, lexp, lcreated};
    /* In a cluster an unindexed entry only touches its own slot. */
    size_t nkeys = (st->cluster && !indexed) ? 1 : 3;
    rc = run(st, S_INSERT, SESS_REDIS_FENCE | (st->replicated ? SESS_REDIS_WAIT_REPLICA : 0), nkeys,
             keys, klen, 7, args, alen, &rep, "insert", err);
    wipe_free(val, vlen);
    if (rc != SESS_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || !is_int(rep->element[0]) ||
        (rep->elements - 1) % 2 != 0)
        return bad_reply(st, rep, "insert", err);
    switch (rep->element[0]->integer) {
    case 0:
        break;
    case 1:
        freeReplyObject(rep);
        return sess__fail(err, SESS_EXISTS, "redis insert: key exists");
    case 2:
        freeReplyObject(rep);
        return sess__fail(err, SESS_EXISTS, "redis insert: handle exists");
    case 3:
        freeReplyObject(rep);
        return sess__fail(err, SESS_LIMIT, "redis insert: per-user limit reached");
    default:
        return bad_reply(st, rep, "insert", err);
    }
    for (size_t i = 1; i + 1 < rep->elements; i += 2) {
        redisReply *h = rep->element[i], *nm = rep->element[i + 1];
        if (is_str(h) && h->len == SESS_STORE_HANDLE_BYTES)
            sess__store_report_evicted(evicted, (const uint8_t *)h->str);
        if (is_str(nm))
            l1_drop_name(st, nm->str, nm->len);
    }
    l1_drop(st, e->key);
    freeReplyObject(rep);
    return SESS_OK;
}

/* Run script "id" on the record name of "key" under each tag in turn
 * until it answers something other than "absent" (the integer
 * "absent"): in a cluster the user's tag first (the caller knows the
 * user), then the key's own, then the one its alias names (legacy
 * entries).  Elsewhere only the key's own.  Without "fallback" (replace,
 * whose other names carry the user's tag: the record must too) only the
 * first.  "keys[0]" is rewritten for each try; "*tag_used" tells where the
 * record was. */
static int run_on_record(struct redis_store *st, int id, unsigned flags, const uint8_t *key,
                         const uint8_t *user, bool fallback, size_t nkeys, const char **keys, size_t *klen,
                         char *rn, size_t nargs, const char **args, const size_t *alen,
                         long long absent, redisReply **out, uint16_t *tag_used,
                         const char *op, sess_err *err)
{
    uint16_t tags[3];
    size_t nt = 0;
    if (st->cluster && user)
        tags[nt++] = route_of(user);
    if (nt == 0 || (fallback && tags[0] != route_of(key)))
        tags[nt++] = route_of(key);
    for (size_t i = 0;; i++) {
        if (i == nt && !fallback)
            return SESS_OK;       /* *out is "absent" */
        if (i == nt) {
            uint16_t at;
            int arc = alias_get(st, 'a', key, SESS_STORE_KEY_BYTES, &at, op, err);
            if (arc != SESS_OK)
                return arc == SESS_NOTFOUND ? SESS_OK : arc; /* *out is "absent" */
            bool tried = false;
            for (size_t j = 0; j < nt; j++)
                tried = tried || tags[j] == at;
            if (tried || nt == 3)
                return SESS_OK;
            tags[nt++] = at;
        }
        klen[0] = name_at(rn, 's', key, SESS_STORE_KEY_BYTES, tags[i]);
        keys[0] = rn;
        if (*out)
            freeReplyObject(*out);
        *out = NULL;
        int rc = run(st, id, flags, nkeys, keys, klen, nargs, args, alen, out, op, err);
        if (rc != SESS_OK)
            return rc;
        *tag_used = tags[i];
        redisReply *r = *out;
        bool is_absent = (r->type == REDIS_REPLY_INTEGER && r->integer == absent) ||
                         (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                          r->element[0]->type == REDIS_REPLY_INTEGER &&
                          r->element[0]->integer == absent);
        if (!is_absent || !st->cluster)
            return SESS_OK;
    }
}

static int rs_update(sess_store *base, const sess_entry *e,
                     const uint8_t *expect, size_t expect_len, uint64_t now,
                     sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char rn[NAME_MAX_BYTES], snow[24], sttl[24], sexp[24];
    size_t lnow, lttl, lexp;
    uint8_t exp8[8];
    redisReply *rep = NULL;
    uint16_t tag = 0;
    int rc = sess__store_check_entry(e, "update", err);

    if (rc != SESS_OK)
        return rc;
    if (expect_len && !expect)
        return sess__fail(err, SESS_EINVAL, "redis update: no expected record");
    sess__put_be64(exp8, e->expires_at);
    u64dec(snow, sizeof snow, now, &lnow);
    u64dec(sttl, sizeof sttl, ttl_for(e->expires_at, now), &lttl);
    u64dec(sexp, sizeof sexp, e->expires_at, &lexp);
    const char *keys[1] = {rn};
    size_t klen[1] = {0};
    const char *args[6] = {expect_len ? (const char *)expect : "",
                           e->blob_len ? (const char *)e->blob : "",
                           (const char *)exp8, snow, sttl, sexp};
    size_t alen[6] = {expect_len, e->blob_len, 8, lnow, lttl, lexp};
    rc = run_on_record(st, S_UPDATE, SESS_REDIS_FENCE, e->key, e->user, true, 1, keys, klen, rn, 6,
                       args, alen, 1, &rep, &tag, "update", err);
    l1_drop(st, e->key);
    if (rc != SESS_OK)
        return rc;
    if (!is_int(rep))
        return bad_reply(st, rep, "update", err);
    long long v = rep->integer;
    freeReplyObject(rep);
    if (v == 0) {
        /* A legacy entry lives longer now: so must its aliases. */
        if (st->cluster && tag != route_of(e->key))
            (void)alias_put(st, 'a', e->key, SESS_STORE_KEY_BYTES, tag,
                            ttl_for(e->expires_at, now), "update", NULL);
        if (st->cluster && sess__store_indexed(e->flags) && tag != route_of(e->handle))
            (void)alias_put(st, 'b', e->handle, SESS_STORE_HANDLE_BYTES, tag,
                            ttl_for(e->expires_at, now), "update", NULL);
        return SESS_OK;
    }
    if (v == 1)
        return SESS_NOTFOUND;
    if (v == 2)
        return sess__fail(err, SESS_CONFLICT, "redis update: record changed");
    return sess__fail(err, SESS_EIO, "redis update: unexpected reply");
}

static int rs_replace(sess_store *base, const uint8_t *old_key,
                      const uint8_t *expect, size_t expect_len,
                      const sess_entry *old_tomb, const sess_entry *next,
                      uint64_t now, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char orn[NAME_MAX_BYTES], nrn[NAME_MAX_BYTES], nhn[NAME_MAX_BYTES],
        nun[NAME_MAX_BYTES];
    char snow[24], nttl[24], nexp[24], ncre[24], tttl[24], texp[24], tcre[24];
    size_t lnow, lnttl, lnexp, lncre, ltttl = 0, ltexp = 0, ltcre = 0;
    uint8_t *nval = NULL, *tval = NULL;
    size_t nvlen = 0, tvlen = 0;
    redisReply *rep = NULL;
    int rc;

    if ((rc = sess__store_check_replace(old_key, expect, expect_len, old_tomb, next,
                                        "redis", err)) != SESS_OK)
        return rc;
    bool indexed = sess__store_indexed(next->flags);
    /* In a cluster old and new share the user's tag (replace keeps the
     * user); legacy keys or handles get their aliases first. */
    if ((rc = aliases_for(st, next, now, "replace", err)) != SESS_OK)
        return rc;
    uint16_t tag = entry_tag(st, next), found_tag = 0;

    if (encode(next, stored_flags(st, next), &nval, &nvlen) != SESS_OK ||
        (old_tomb && encode(old_tomb, old_tomb->flags | SESS_ENTRY_UNINDEXED,
                            &tval, &tvlen) != SESS_OK)) {
        wipe_free(nval, nvlen);
        return sess__fail(err, SESS_ENOMEM, "redis replace: out of memory");
    }
    size_t l2 = st->cluster ? name_at(nrn, 's', next->key, SESS_STORE_KEY_BYTES, tag)
                            : name_of(nrn, 's', next->key, SESS_STORE_KEY_BYTES);
    size_t l3 = legacy_handle(st, next)
                    ? name_at(nhn, 'h', next->handle, SESS_STORE_HANDLE_BYTES, tag)
                    : name_of(nhn, 'h', next->handle, SESS_STORE_HANDLE_BYTES);
    size_t l4 = name_of(nun, 'u', next->user, SESS_STORE_USER_BYTES);
    u64dec(snow, sizeof snow, now, &lnow);
    u64dec(nttl, sizeof nttl, ttl_for(next->expires_at, now), &lnttl);
    u64dec(nexp, sizeof nexp, next->expires_at, &lnexp);
    u64dec(ncre, sizeof ncre, next->created_at, &lncre);
    if (old_tomb) {
        u64dec(tttl, sizeof tttl, ttl_for(old_tomb->expires_at, now), &ltttl);
        u64dec(texp, sizeof texp, old_tomb->expires_at, &ltexp);
        u64dec(tcre, sizeof tcre, old_tomb->created_at, &ltcre);
    } else {
        tttl[0] = texp[0] = tcre[0] = '\0';
    }
    const char *keys[4] = {orn, nrn, nhn, nun};
    size_t klen[4] = {0, l2, l3, l4}; /* [0]: run_on_record */
    const char *args[10] = {expect_len ? (const char *)expect : "",
                            (const char *)nval, snow, nttl, nexp, ncre,
                            tval ? (const char *)tval : "", tttl, texp, tcre};
    size_t alen[10] = {expect_len, nvlen, lnow, lnttl, lnexp, lncre,
                       tvlen, ltttl, ltexp, ltcre};
    size_t nkeys = (st->cluster && !indexed) ? 2 : 4;
    rc = run_on_record(st, S_REPLACE,
                       SESS_REDIS_FENCE | (st->replicated ? SESS_REDIS_WAIT_REPLICA : 0),
                       old_key, next->user, false, nkeys, keys, klen, orn, 10, args, alen, 1, &rep,
                       &found_tag, "replace", err);
    wipe_free(nval, nvlen);
    wipe_free(tval, tvlen);
    l1_drop(st, old_key);
    l1_drop(st, next->key);
    if (rc == SESS_OK && old_tomb && st->cluster && is_int(rep) && rep->integer == 0 &&
        found_tag != route_of(old_key))
        (void)alias_put(st, 'a', old_key, SESS_STORE_KEY_BYTES, found_tag,
                        ttl_for(old_tomb->expires_at, now), "replace", NULL);
    if (rc != SESS_OK)
        return rc;
    if (!is_int(rep))
        return bad_reply(st, rep, "replace", err);
    long long v = rep->integer;
    freeReplyObject(rep);
    switch (v) {
    case 0: return SESS_OK;
    case 1: return SESS_NOTFOUND;
    case 2: return sess__fail(err, SESS_CONFLICT, "redis replace: record changed");
    case 3: return sess__fail(err, SESS_EXISTS, "redis replace: new key exists");
    case 4:
        return sess__fail(err, SESS_EXISTS,
                          "redis replace: handle belongs to another session");
    default: return sess__fail(err, SESS_EIO, "redis replace: unexpected reply");
    }
}

static int rs_remove(sess_store *base, const uint8_t *key, uint8_t *handle_out,
                     sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char rn[NAME_MAX_BYTES];
    redisReply *rep = NULL;

    if (!key)
        return sess__fail(err, SESS_EINVAL, "redis remove: no key");
    const char *keys[1] = {rn};
    size_t klen[1] = {0};
    uint16_t tag = 0;
    int rc = run_on_record(st, S_REMOVE,
                           SESS_REDIS_FENCE | (st->replicated ? SESS_REDIS_WAIT_REPLICA : 0), key,
                           NULL, true, 1, keys, klen, rn, 0, NULL, NULL, 1, &rep, &tag, "remove", err);
    l1_drop(st, key);
    if (rc != SESS_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || !is_int(rep->element[0]))
        return bad_reply(st, rep, "remove", err);
    if (rep->element[0]->integer == 1) {
        freeReplyObject(rep);
        return SESS_NOTFOUND;
    }
    if (rep->element[0]->integer != 0 || rep->elements != 2 || !is_str(rep->element[1]))
        return bad_reply(st, rep, "remove", err);
    if (handle_out) {
        if (rep->element[1]->len == SESS_STORE_HANDLE_BYTES)
            memcpy(handle_out, rep->element[1]->str, SESS_STORE_HANDLE_BYTES);
        else
            memset(handle_out, 0, SESS_STORE_HANDLE_BYTES);
    }
    freeReplyObject(rep);
    return SESS_OK;
}

static int rs_find_handle(sess_store *base, const uint8_t *handle, uint64_t now,
                          uint8_t *key_out, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char hn[NAME_MAX_BYTES], snow[24];
    size_t lnow;
    redisReply *rep = NULL;

    if (!handle || !key_out)
        return sess__fail(err, SESS_EINVAL, "redis find_handle: missing argument");
    size_t lh = name_of(hn, 'h', handle, SESS_STORE_HANDLE_BYTES);
    u64dec(snow, sizeof snow, now, &lnow);
    const char *keys[1] = {hn};
    size_t klen[1] = {lh};
    const char *args[2] = {snow, (const char *)handle};
    size_t alen[2] = {lnow, SESS_STORE_HANDLE_BYTES};
    int rc = run(st, S_FIND, 0, 1, keys, klen, 2, args, alen, &rep, "find_handle", err);
    if (rc != SESS_OK)
        return rc;
    if (rep->type == REDIS_REPLY_NIL && st->cluster) {
        /* A legacy handle: its alias names the tag it lives under. */
        uint16_t tag;
        rc = alias_get(st, 'b', handle, SESS_STORE_HANDLE_BYTES, &tag, "find_handle", err);
        if (rc == SESS_OK) {
            freeReplyObject(rep);
            rep = NULL;
            klen[0] = name_at(hn, 'h', handle, SESS_STORE_HANDLE_BYTES, tag);
            rc = run(st, S_FIND, 0, 1, keys, klen, 2, args, alen, &rep, "find_handle", err);
            if (rc != SESS_OK)
                return rc;
        } else if (rc != SESS_NOTFOUND) {
            freeReplyObject(rep);
            return rc;
        }
    }
    if (rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return SESS_NOTFOUND;
    }
    if (!is_str(rep) || rep->len != NAME_MAX_BYTES || rep->str[0] != 's')
        return bad_reply(st, rep, "find_handle", err);
    memcpy(key_out, rep->str + NAME_PREFIX, SESS_STORE_KEY_BYTES);
    freeReplyObject(rep);
    return SESS_OK;
}

static int rs_list_user(sess_store *base, const uint8_t *user, uint64_t now,
                        sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char un[NAME_MAX_BYTES], snow[24];
    size_t lnow;
    redisReply *rep = NULL;
    sess_store_buf buf = {0};

    if (!user || !fn)
        return sess__fail(err, SESS_EINVAL, "redis list_user: missing argument");
    size_t lu = name_of(un, 'u', user, SESS_STORE_USER_BYTES);
    u64dec(snow, sizeof snow, now, &lnow);
    const char *keys[1] = {un};
    size_t klen[1] = {lu};
    const char *args[1] = {snow};
    size_t alen[1] = {lnow};
    int rc = run(st, S_LIST, 0, 1, keys, klen, 1, args, alen, &rep, "list_user", err);
    if (rc != SESS_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0)
        return bad_reply(st, rep, "list_user", err);
    for (size_t i = 0; i < rep->elements; i += 2) {
        redisReply *nm = rep->element[i], *v = rep->element[i + 1];
        if (!is_str(nm) || nm->len != NAME_MAX_BYTES || !is_str(v) ||
            !header_valid((const uint8_t *)v->str, v->len)) {
            rc = bad_reply(st, NULL, "list_user", err);
            break;
        }
        sess_entry e;
        if (decode_into((const uint8_t *)nm->str + NAME_PREFIX,
                        (const uint8_t *)v->str, v->len, &e, &buf) != SESS_OK) {
            rc = sess__fail(err, SESS_ENOMEM, "redis list_user: out of memory");
            break;
        }
        /* No lock is held and the reply is ours: "fn" may call back in. */
        if (fn(ctx, &e) != 0)
            break;
    }
    sess_store_buf_free(&buf);
    freeReplyObject(rep);
    return rc;
}

static int rs_remove_user(sess_store *base, const uint8_t *user,
                          const uint8_t *except, uint64_t now, size_t *n,
                          sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    char un[NAME_MAX_BYTES], snow[24];
    size_t lnow;
    redisReply *rep = NULL;

    if (n)
        *n = 0;
    if (!user)
        return sess__fail(err, SESS_EINVAL, "redis remove_user: no user");
    size_t lu = name_of(un, 'u', user, SESS_STORE_USER_BYTES);
    u64dec(snow, sizeof snow, now, &lnow);
    const char *keys[1] = {un};
    size_t klen[1] = {lu};
    const char *args[2] = {snow, except ? (const char *)except : ""};
    size_t alen[2] = {lnow, except ? SESS_STORE_HANDLE_BYTES : 0};
    int rc = run(st, S_REMOVE_USER, SESS_REDIS_FENCE | (st->replicated ? SESS_REDIS_WAIT_REPLICA : 0), 1,
                 keys, klen, 2, args, alen, &rep, "remove_user", err);
    if (rc != SESS_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || !is_int(rep->element[0]) ||
        rep->element[0]->integer < 0)
        return bad_reply(st, rep, "remove_user", err);
    for (size_t i = 1; i < rep->elements; i++)
        if (is_str(rep->element[i]))
            l1_drop_name(st, rep->element[i]->str, rep->element[i]->len);
    if (n)
        *n = (size_t)rep->element[0]->integer;
    freeReplyObject(rep);
    return SESS_OK;
}

/* ---- purge and count: every tag ---------------------------------------------- */

struct tag_walk {
    char now[28];                 /* "(" + decimal, or the decimal */
    size_t now_len;
    char names[SESS_REDIS_SLOTS][8];
    uint32_t *counts;             /* purge: expired per tag */
    uint64_t total;
    char kind;                    /* 'c' count, 'x' purge census */
};

static void make_zcount(void *ctx, uint32_t tag, sess__redis_cmd *c)
{
    struct tag_walk *w = ctx;
    char *nm = w->names[tag];
    snprintf(nm, sizeof w->names[tag], "%c{%04x}", w->kind, (unsigned)tag);
    c->argc = 4;
    c->argv[0] = "ZCOUNT";
    c->len[0] = 6;
    c->argv[1] = nm;
    c->len[1] = 7;
    if (w->kind == 'c') {
        c->argv[2] = w->now;       /* "(now" */
        c->len[2] = w->now_len;
        c->argv[3] = "+inf";
        c->len[3] = 4;
    } else {
        c->argv[2] = "-inf";
        c->len[2] = 4;
        c->argv[3] = w->now;       /* "now" */
        c->len[3] = w->now_len;
    }
}

static int take_zcount(void *ctx, uint32_t tag, redisReply *rep)
{
    struct tag_walk *w = ctx;
    if (!is_int(rep) || rep->integer < 0)
        return SESS_EIO;
    w->total += (uint64_t)rep->integer;
    if (w->counts)
        w->counts[tag] = rep->integer > UINT32_MAX ? UINT32_MAX : (uint32_t)rep->integer;
    return SESS_OK;
}

static int rs_count(sess_store *base, uint64_t now, uint64_t *n, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    if (!n)
        return sess__fail(err, SESS_EINVAL, "redis count: no output");
    struct tag_walk *w = calloc(1, sizeof *w);
    if (!w)
        return sess__fail(err, SESS_ENOMEM, "redis count: out of memory");
    w->kind = 'c';
    w->now_len = (size_t)snprintf(w->now, sizeof w->now, "(%llu", (unsigned long long)now);
    int rc = sess__redis_each_tag(st->r, make_zcount, take_zcount, w, "count", err);
    if (rc == SESS_EIO)
        rc = sess__fail(err, SESS_EIO, "redis count: unexpected reply");
    if (rc == SESS_OK)
        *n = w->total;
    free(w);
    return rc;
}

static int rs_purge_each(sess_store *base, uint64_t now, size_t max,
                         size_t *removed, sess_store_purge_fn fn, void *fn_ctx,
                         sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    sess_store_buf blob = {0};
    size_t done = 0;
    int rc;

    if (removed)
        *removed = 0;
    if (max == 0)
        return SESS_OK;
    struct tag_walk *w = calloc(1, sizeof *w);
    uint32_t *counts = calloc(SESS_REDIS_SLOTS, sizeof *counts);
    if (!w || !counts) {
        free(w);
        free(counts);
        return sess__fail(err, SESS_ENOMEM, "redis purge: out of memory");
    }
    w->kind = 'x';
    w->counts = counts;
    w->now_len = (size_t)snprintf(w->now, sizeof w->now, "%llu", (unsigned long long)now);
    /* A census first (cheap reads), then one script per tag that has
     * expired entries, so "max" is honoured exactly. */
    rc = sess__redis_each_tag(st->r, make_zcount, take_zcount, w, "purge", err);
    if (rc == SESS_EIO)
        rc = sess__fail(err, SESS_EIO, "redis purge: unexpected reply");
    for (uint32_t t = 0; rc == SESS_OK && t < SESS_REDIS_SLOTS && done < max; t++) {
        if (!counts[t])
            continue;
        char xn[8], smax[24];
        int xl = snprintf(xn, sizeof xn, "x{%04x}", (unsigned)t);
        size_t want = max - done < counts[t] ? max - done : counts[t];
        size_t lmax;
        u64dec(smax, sizeof smax, want, &lmax);
        const char *keys[1] = {xn};
        size_t klen[1] = {(size_t)xl};
        const char *args[2] = {w->now, smax};
        size_t alen[2] = {w->now_len, lmax};
        redisReply *rep = NULL;
        rc = run(st, S_PURGE, SESS_REDIS_FENCE, 1, keys, klen, 2, args, alen, &rep, "purge", err);
        if (rc != SESS_OK)
            break;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
            !is_int(rep->element[0]) || rep->element[0]->integer < 0) {
            rc = bad_reply(st, rep, "purge", err);
            break;
        }
        done += (size_t)rep->element[0]->integer;
        /* name, value pairs: only the script that deleted a record returns
         * it, so of several processes purging at once exactly one reports
         * each expiry. */
        for (size_t i = 1; i + 1 < rep->elements; i += 2) {
            const redisReply *nm = rep->element[i], *val = rep->element[i + 1];
            if (!is_str(nm))
                continue;
            l1_drop_name(st, nm->str, nm->len);
            if (fn && is_str(val) && nm->len == NAME_MAX_BYTES &&
                header_valid((const uint8_t *)val->str, val->len)) {
                sess_entry e;
                if (decode_into((const uint8_t *)nm->str + NAME_PREFIX,
                                (const uint8_t *)val->str, val->len, &e,
                                &blob) == SESS_OK)
                    fn(fn_ctx, &e);
            }
        }
        freeReplyObject(rep);
    }
    free(w);
    free(counts);
    sess_store_buf_free(&blob);
    if (removed)
        *removed = done;
    return rc;
}

static int rs_purge(sess_store *base, uint64_t now, size_t max, size_t *removed,
                    sess_err *err)
{
    return rs_purge_each(base, now, max, removed, NULL, NULL, err);
}

static int rs_ping(sess_store *base, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    sess__redis_cmd c = {.argc = 1, .argv = {"PING"}, .len = {4}};
    redisReply *rep = NULL;
    int rc = sess__redis_exec(st->r, SESS_REDIS_ANY_SLOT, 0, &c, 1, &rep, NULL,
                              NULL, "ping", err);
    if (rc != SESS_OK)
        return rc;
    bool ok = rep->type == REDIS_REPLY_STATUS && rep->str &&
              strcmp(rep->str, "PONG") == 0;
    freeReplyObject(rep);
    return ok ? SESS_OK : sess__fail(err, SESS_EUNAVAILABLE, "redis ping: bad answer");
}

static int rs_route(sess_store *base, const uint8_t *user, uint16_t *out,
                    sess_err *err)
{
    (void)base;
    if (!user || !out)
        return sess__fail(err, SESS_EINVAL, "redis route: missing argument");
    *out = route_of(user);
    return SESS_OK;
}

static int rs_stats(sess_store *base, sess_store_stats *o)
{
    struct redis_store *st = (struct redis_store *)base;
#define LD(x) atomic_load_explicit(&st->ctr.x, memory_order_relaxed)
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < L1_CTR_SLOTS; i++) {
        o->l1_hits += atomic_load_explicit(&st->l1_ctr[i].hits, memory_order_relaxed);
        o->l1_misses += atomic_load_explicit(&st->l1_ctr[i].misses, memory_order_relaxed);
    }
    o->l1_invalidations = LD(l1_invalidations);
    o->l1_flushes = LD(l1_flushes);
    o->timeouts = LD(timeouts);
    o->reconnects = LD(reconnects);
    o->errors = LD(errors);
    for (size_t i = 0; i < SESS_STORE_LAT_BUCKETS; i++)
        o->lat_count[i] = LD(lat_count[i]);
    o->lat_sum_us = LD(lat_sum_us);
#undef LD
    if (st->l1_on) {
        o->l1_entries = 0;
        for (unsigned i = 0; i < L1_SHARDS; i++) {
            pthread_mutex_lock(&st->l1[i].lock);
            o->l1_entries += st->l1[i].n;
            pthread_mutex_unlock(&st->l1[i].lock);
        }
    }
    o->breaker_open = (uint64_t)sess__redis_breaker_open(st->r);
    return SESS_OK;
}

/* ---- scan ------------------------------------------------------------------ */

/* Cursor bytes: 'R' | node ordinal u32 | its lowest slot u32 | SCAN cursor
 * u64, big-endian (sess__redis_scan_step says what they mean). */
#define SCAN_POS_LEN 17

struct scan_walk {
    sess__scan_batch *b;
    uint64_t now;
    int rc;
};

static int scan_take(void *ctx, const char *name, size_t len, redisReply *v)
{
    struct scan_walk *w = ctx;
    sess_store_buf buf = {0};
    sess_entry e;
    /* Only record names ("s{rrrr}KEY32") with a well-formed value; a key
     * gone since SCAN listed it (nil) is simply absent. */
    if (len != NAME_MAX_BYTES || name[0] != 's' || !is_str(v) ||
        !header_valid((const uint8_t *)v->str, v->len))
        return 0;
    if (decode_into((const uint8_t *)name + NAME_PREFIX, (const uint8_t *)v->str, v->len,
                    &e, &buf) != SESS_OK) {
        w->rc = SESS_ENOMEM;
        return 1;
    }
    if (sess__store_live(e.expires_at, w->now) && sess__scan_add(w->b, &e) != SESS_OK)
        w->rc = SESS_ENOMEM;
    sess_store_buf_free(&buf);
    return w->rc != SESS_OK;
}

static int rs_scan(sess_store *base, sess_store_cursor *cur, uint64_t now,
                   size_t max, sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    sess__scan_batch b = {0};
    uint32_t node = 0, node_slot = 0;
    uint64_t cursor = 0;
    bool done = false;

    if (!cur || !fn)
        return sess__fail(err, SESS_EINVAL, "redis scan: missing argument");
    if (cur->done)
        return SESS_OK;
    if (cur->len) {
        if (cur->len != SCAN_POS_LEN || cur->pos[0] != 'R')
            return sess__fail(err, SESS_EINVAL, "redis scan: cursor is not this store's");
        node = (uint32_t)(sess__get_be64(cur->pos + 1) >> 32);
        node_slot = (uint32_t)sess__get_be64(cur->pos + 1);
        cursor = sess__get_be64(cur->pos + 9);
    }
    struct scan_walk w = {.b = &b, .now = now, .rc = SESS_OK};
    int rc = sess__redis_scan_step(st->r, &node, &node_slot, &cursor, "s{*",
                                   sess__scan_max(max), scan_take, &w, &done, err);
    if (rc == SESS_OK && w.rc != SESS_OK)
        rc = sess__fail(err, w.rc, "redis scan: out of memory");
    if (rc == SESS_OK) {
        cur->pos[0] = 'R';
        sess__put_be64(cur->pos + 1, (uint64_t)node << 32 | node_slot);
        sess__put_be64(cur->pos + 9, cursor);
        cur->len = SCAN_POS_LEN;
        cur->done = done;
        sess__scan_emit(&b, fn, ctx);
    }
    sess__scan_free(&b);
    return rc;
}

int sess__store_redis_flushall(sess_store *base, sess_err *err)
{
    struct redis_store *st = (struct redis_store *)base;
    int rc = sess__redis_flushall(st->r, err);
    hook_flush(st);
    return rc;
}

#define REDIS_METHODS(name, sch)                                             \
    const sess_store_methods name = {                                        \
        .version = 4,                                                        \
        .scheme = sch,                                                       \
        .open = rs_open,                                                     \
        .close = rs_close,                                                   \
        .get = rs_get,                                                       \
        .insert = rs_insert,                                                 \
        .update = rs_update,                                                 \
        .replace = rs_replace,                                               \
        .remove = rs_remove,                                                 \
        .find_handle = rs_find_handle,                                       \
        .list_user = rs_list_user,                                           \
        .remove_user = rs_remove_user,                                       \
        .purge = rs_purge,                                                   \
        .ping = rs_ping,                                                     \
        .count = rs_count,                                                   \
        .route = rs_route,                                                   \
        .stats = rs_stats,                                                   \
        .purge_each = rs_purge_each,                                         \
        .scan = rs_scan,                                                     \
    }

REDIS_METHODS(sess__store_redis_methods, "redis");
REDIS_METHODS(sess__store_redis_sentinel_methods, "redis+sentinel");
REDIS_METHODS(sess__store_redis_cluster_methods, "redis+cluster");
