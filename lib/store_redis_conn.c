/*
 * store_redis_conn.c - the connection layer of the Redis store: URLs, the
 * three topologies, connection pools, timeouts, the circuit breaker,
 * cluster slot routing (MOVED/ASK) and Sentinel failover, and the
 * subscriber threads that receive client-side-caching invalidations.
 *
 * Topologies.  "redis://H:P[/DB]" is one server.  "redis+sentinel://
 * H1:P1,H2:P2/NAME[/DB]" asks the sentinels for the primary of NAME and
 * asks again whenever the primary fails, answers -READONLY or
 * -MASTERDOWN, or no longer says "master" to ROLE on a new connection.
 * "redis+cluster://H1:P1,..." builds a slot -> node map from CLUSTER
 * SLOTS, follows MOVED (the map entry is fixed at once and the whole map
 * refreshed before the next command) and ASK (ASKING, then the command,
 * on the target), at most REDIRECTS_MAX times per call.  hiredis 0.14 has
 * no cluster support: all of that is here.
 *
 * Nodes.  A node is one server address; nodes are created on demand and
 * never freed before close, so a pointer taken under the topology lock
 * stays valid after it is released (at most NODES_MAX addresses per
 * store; a failover between known addresses reuses their nodes).  Each
 * node has its own pool of idle connections (at most pool_size kept) and
 * its own breaker: BREAKER_FAILS consecutive failures open it for a
 * backoff that doubles up to BACKOFF_MAX_MS with +-25% jitter; after that
 * one caller probes (half-open), the others still fail at once.  While a
 * node is unreachable every call fails within connect_timeout_ms (a new
 * connection: the TCP connect and its set-up commands) plus timeout_ms
 * (each command), or at once with the breaker open, with
 * SESS_EUNAVAILABLE; recovery needs no restart.
 * Commands are never retried once sent (a script may have run): only a
 * failure to connect, a redirect or a failover answer leads to a retry.
 *
 * Invalidations.  With tracking on, each active primary has a subscriber
 * thread holding one connection in SUBSCRIBE __redis__:invalidate; its
 * CLIENT ID is the REDIRECT target of the node's data connections, which
 * run CLIENT TRACKING on ... OPTIN and prefix L1 reads with CLIENT CACHING
 * yes.  When a link drops or comes back the epoch changes and the flush
 * hook runs, so the cache above drops or fences everything it holds.
 * Writes that may revoke take one more round trip (SESS_REDIS_FENCE)
 * before they return, so that their invalidations have left the server
 * when the write is acknowledged.
 *
 * Locking.  "topo" (rwlock) guards the node list, the slot map, the
 * Sentinel primary and the stale flags; each node's "lock" guards its
 * pool and breaker.  The check an L1 hit makes (track_quiet) takes no
 * lock: it reads atomics and relies on the order in which a subscriber
 * takes its link down (see there).  Lock order: topo, then a node's lock;
 * never two node locks.  No lock is held while
 * talking to a server, except the topology lock's write side during a
 * Sentinel or CLUSTER SLOTS refresh, which is bounded by the timeouts.
 *
 * Messages name the operation and the server address, never keys, values
 * or the password.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "sess/store.h"
#include "store_internal.h"
#include "store_redis.h"
#include "util.h"

#define HOST_MAX 256
#define SEEDS_MAX 16
#define NODES_MAX 64
#define NAME_MAX_LEN 128
#define REDIRECTS_MAX 5
#define BREAKER_FAILS 3
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define REFRESH_MIN_MS 100        /* between two Sentinel/CLUSTER SLOTS asks */
#define EACH_BATCH 512            /* commands per round trip in each_tag */
#define SUB_POLL_MS 200           /* subscriber wakes to check "stop" */
#define DEFAULT_TIMEOUT_MS 20
#define DEFAULT_CONNECT_TIMEOUT_MS 100
#define DEFAULT_POOL 16
#define DEFAULT_REPLICA_TIMEOUT_MS 100

struct rconn {
    redisContext *c;
    long long track_id;           /* REDIRECT target it tracks to, 0 none */
};

struct rnode {
    char host[HOST_MAX];
    int port;
    pthread_mutex_t lock;         /* pool and breaker */
    struct rconn **idle;
    size_t nidle;
    unsigned fails;
    uint64_t open_until_ms;       /* breaker open until (monotonic) */
    uint64_t backoff_ms;
    bool probing;
    atomic_bool active;           /* primary in the current topology */

    /* subscriber */
    pthread_t sub_thread;
    bool sub_started;
    atomic_llong sub_id;          /* CLIENT ID of the subscriber, 0 = down */
    atomic_int sub_busy;          /* applying messages read from the socket */
    struct sess__redis *owner;
};

struct seed {
    char host[HOST_MAX];
    int port;
};

struct sess__redis {
    sess__redis_kind kind;
    struct seed seeds[SEEDS_MAX];
    size_t nseeds;
    char master[NAME_MAX_LEN];    /* Sentinel master name */
    int db;
    uint32_t timeout_ms, connect_timeout_ms, pool_size, replica_timeout_ms;
    char *password;               /* wiped and freed at close */
    bool tracking;
    sess__redis_hooks hooks;
    sess__redis_counters *ctr;

    pthread_rwlock_t topo;
    struct rnode *nodes[NODES_MAX];
    atomic_size_t nnodes;         /* grows under topo write; read lock-free by
                                   * track_quiet (set after the node's slot) */
    struct rnode *primary;        /* standalone and Sentinel */
    bool stale;                   /* Sentinel: ask again */
    struct rnode *slots[SESS_REDIS_SLOTS]; /* cluster */
    bool map_stale;
    uint64_t last_refresh_ms;

    atomic_uint_fast64_t epoch;
    atomic_bool stop;
    int track_ep;                 /* epoll set of the subscriber sockets */
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timeval tv_ms(uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void bump(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Jitter in [-25%, +25%] of "ms" from a cheap per-thread generator: the
 * spread only keeps clients from reconnecting in lockstep. */
static uint64_t jitter(uint64_t ms)
{
    static _Thread_local uint64_t x;
    if (x == 0)
        x = mono_us() | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t span = ms / 2;
    return span ? ms - ms / 4 + x % (span + 1) : ms;
}

/* CRC16-XMODEM (polynomial 0x1021), as in the Redis Cluster spec. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t sess__redis_slot(const char *name, size_t n)
{
    /* Hash tag: the part between the first '{' and the next '}', when
     * non-empty (Redis Cluster specification, "Hash tags"). */
    const char *open = memchr(name, '{', n);
    if (open) {
        size_t rest = n - (size_t)(open - name) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & 0x3FFF;
    }
    return crc16(name, n) & 0x3FFF;
}

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= n &&
           strncmp(r->str, prefix, n) == 0;
}

static bool reply_ok(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STATUS && r->str &&
           strcasecmp(r->str, "OK") == 0;
}

/* ---- URL parsing ---------------------------------------------------------- */

/* "H:P" or "[V6]:P" of "len" bytes at "s" into "out". */
static int parse_hostport(const char *s, size_t len, struct seed *out)
{
    const char *host = s, *colon;
    size_t hlen;
    if (len > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', len);
        if (!end || (size_t)(end - s) + 1 >= len || end[1] != ':')
            return SESS_EINVAL;
        host = s + 1;
        hlen = (size_t)(end - s) - 1;
        colon = end + 1;
    } else {
        colon = NULL;
        for (size_t i = len; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (!colon)
            return SESS_EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= HOST_MAX)
        return SESS_EINVAL;
    const char *p = colon + 1, *end = s + len;
    if (p == end || end - p > 5)
        return SESS_EINVAL;
    long port = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return SESS_EINVAL;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return SESS_EINVAL;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return SESS_OK;
}

static int parse_db(const char *s, int *db)
{
    long v = 0;
    if (!*s || strlen(s) > 5)
        return SESS_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return SESS_EINVAL;
        v = v * 10 + (*s - '0');
    }
    *db = (int)v;
    return SESS_OK;
}

static int parse_url(sess__redis *r, const char *url, sess_err *err)
{
    const char *rest;
    if ((rest = sess__store_url_rest(url, "redis")) != NULL)
        r->kind = SESS_REDIS_STANDALONE;
    else if ((rest = sess__store_url_rest(url, "redis+sentinel")) != NULL)
        r->kind = SESS_REDIS_SENTINEL;
    else if ((rest = sess__store_url_rest(url, "redis+cluster")) != NULL)
        r->kind = SESS_REDIS_CLUSTER;
    else
        return sess__fail(err, SESS_EINVAL, "redis store: unknown URL scheme");
    if (strncmp(rest, "//", 2) != 0)
        return sess__fail(err, SESS_EINVAL,
                          "redis store: URL must look like redis://HOST:PORT");
    rest += 2;
    if (strchr(rest, '@'))
        return sess__fail(err, SESS_EINVAL,
                          "redis store: no credentials in the URL "
                          "(use store.password_file)");
    if (strchr(rest, '?'))
        return sess__fail(err, SESS_EINVAL, "redis store: URL takes no query");

    const char *slash = strchr(rest, '/');
    size_t hlen = slash ? (size_t)(slash - rest) : strlen(rest);
    size_t start = 0;
    for (size_t i = 0; i <= hlen; i++) {
        if (i < hlen && rest[i] != ',')
            continue;
        if (r->nseeds >= SEEDS_MAX)
            return sess__fail(err, SESS_EINVAL, "redis store: more than %d servers",
                              SEEDS_MAX);
        if (parse_hostport(rest + start, i - start, &r->seeds[r->nseeds]) != SESS_OK)
            return sess__fail(err, SESS_EINVAL,
                              "redis store: expected HOST:PORT in the URL");
        r->nseeds++;
        start = i + 1;
    }
    if (r->nseeds == 0)
        return sess__fail(err, SESS_EINVAL, "redis store: no server in the URL");

    const char *path = slash ? slash + 1 : "";
    switch (r->kind) {
    case SESS_REDIS_STANDALONE:
        if (r->nseeds != 1)
            return sess__fail(err, SESS_EINVAL,
                              "redis store: redis:// takes one server");
        if (*path && parse_db(path, &r->db) != SESS_OK)
            return sess__fail(err, SESS_EINVAL, "redis store: bad database number");
        break;
    case SESS_REDIS_SENTINEL: {
        const char *dbs = strchr(path, '/');
        size_t nlen = dbs ? (size_t)(dbs - path) : strlen(path);
        if (nlen == 0 || nlen >= NAME_MAX_LEN)
            return sess__fail(err, SESS_EINVAL,
                              "redis store: redis+sentinel:// needs /MASTERNAME");
        for (size_t i = 0; i < nlen; i++)
            if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
                return sess__fail(err, SESS_EINVAL,
                                  "redis store: bad Sentinel master name");
        memcpy(r->master, path, nlen);
        r->master[nlen] = '\0';
        if (dbs && parse_db(dbs + 1, &r->db) != SESS_OK)
            return sess__fail(err, SESS_EINVAL, "redis store: bad database number");
        break;
    }
    case SESS_REDIS_CLUSTER:
        if (*path)
            return sess__fail(err, SESS_EINVAL,
                              "redis store: redis+cluster:// takes no path "
                              "(a cluster has database 0 only)");
        break;
    }
    return SESS_OK;
}

/* ---- nodes and connections ------------------------------------------------ */

static void conn_free(struct rconn *cn)
{
    if (!cn)
        return;
    if (cn->c)
        redisFree(cn->c);
    free(cn);
}

/* The node for "host:port", created when new.  Caller holds topo write. */
static struct rnode *node_get_locked(sess__redis *r, const char *host, int port)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0)
            return r->nodes[i];
    if (r->nnodes >= NODES_MAX || strlen(host) >= HOST_MAX)
        return NULL;
    struct rnode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->idle = calloc(r->pool_size, sizeof *n->idle);
    if (!n->idle) {
        free(n);
        return NULL;
    }
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->owner = r;
    pthread_mutex_init(&n->lock, NULL);
    size_t k = r->nnodes;
    r->nodes[k] = n;
    atomic_store_explicit(&r->nnodes, k + 1, memory_order_release);
    return n;
}

static void *sub_main(void *arg);

/* Mark "n" an active primary and start its subscriber.  topo write held. */
static void node_activate_locked(sess__redis *r, struct rnode *n)
{
    atomic_store(&n->active, true);
    if (r->tracking && !n->sub_started) {
        if (pthread_create(&n->sub_thread, NULL, sub_main, n) == 0)
            n->sub_started = true;
    }
}

/* Breaker: may a caller use "n" now? */
static bool breaker_allow(struct rnode *n)
{
    bool ok = true;
    pthread_mutex_lock(&n->lock);
    if (n->fails >= BREAKER_FAILS) {
        uint64_t now = mono_ms();
        if (now < n->open_until_ms || n->probing)
            ok = false;
        else
            n->probing = true; /* half-open: this caller probes */
    }
    pthread_mutex_unlock(&n->lock);
    return ok;
}

static void breaker_ok(struct rnode *n)
{
    pthread_mutex_lock(&n->lock);
    n->fails = 0;
    n->backoff_ms = 0;
    n->probing = false;
    pthread_mutex_unlock(&n->lock);
}

static void breaker_fail(struct rnode *n)
{
    pthread_mutex_lock(&n->lock);
    n->fails++;
    n->probing = false;
    if (n->fails >= BREAKER_FAILS) {
        n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (n->backoff_ms > BACKOFF_MAX_MS)
            n->backoff_ms = BACKOFF_MAX_MS;
        n->open_until_ms = mono_ms() + jitter(n->backoff_ms);
    }
    /* Idle connections to a failing server are suspect: drop them. */
    for (size_t i = 0; i < n->nidle; i++)
        conn_free(n->idle[i]);
    n->nidle = 0;
    pthread_mutex_unlock(&n->lock);
}

/* Run one command on a fresh connection during its set-up. */
static redisReply *setup_cmd(redisContext *c, int argc, const char **argv,
                             const size_t *len)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, len);
    return rep;
}

static int auth(sess__redis *r, redisContext *c)
{
    if (!r->password)
        return SESS_OK;
    const char *argv[2] = {"AUTH", r->password};
    size_t len[2] = {4, strlen(r->password)};
    redisReply *rep = setup_cmd(c, 2, argv, len);
    int rc = reply_ok(rep) ? SESS_OK : SESS_EIO;
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static redisContext *dial(sess__redis *r, const char *host, int port,
                          uint32_t rw_timeout_ms)
{
    redisContext *c = redisConnectWithTimeout(host, port,
                                              tv_ms(r->connect_timeout_ms));
    if (!c)
        return NULL;
    if (c->err || redisSetTimeout(c, tv_ms(rw_timeout_ms)) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Track reads of "cn" to the node's subscriber when that link is up. */
static void conn_track(sess__redis *r, struct rnode *n, struct rconn *cn)
{
    long long id = atomic_load(&n->sub_id);
    if (!r->tracking || id == 0 || cn->track_id == id)
        return;
    char ids[32];
    int l = snprintf(ids, sizeof ids, "%lld", id);
    const char *argv[5] = {"CLIENT", "TRACKING", "on", "REDIRECT", ids};
    size_t len[5] = {6, 8, 2, 8, (size_t)l};
    const char *argv2[1] = {"OPTIN"};
    (void)argv2;
    const char *full[6] = {argv[0], argv[1], argv[2], argv[3], argv[4], "OPTIN"};
    size_t flen[6] = {len[0], len[1], len[2], len[3], len[4], 5};
    redisReply *rep = setup_cmd(cn->c, 6, full, flen);
    /* Switching the target needs tracking off first. */
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        const char *off[3] = {"CLIENT", "TRACKING", "off"};
        size_t offl[3] = {6, 8, 3};
        rep = setup_cmd(cn->c, 3, off, offl);
        if (rep)
            freeReplyObject(rep);
        rep = setup_cmd(cn->c, 6, full, flen);
    }
    cn->track_id = reply_ok(rep) ? id : 0;
    if (rep)
        freeReplyObject(rep);
}

/* A connection to "n": an idle one or a new one.  NULL when the server
 * cannot be reached; "*msg" then says why. */
static struct rconn *conn_acquire(sess__redis *r, struct rnode *n,
                                  const char **msg)
{
    struct rconn *cn = NULL;
    pthread_mutex_lock(&n->lock);
    if (n->nidle > 0)
        cn = n->idle[--n->nidle];
    pthread_mutex_unlock(&n->lock);
    if (cn) {
        conn_track(r, n, cn);
        return cn;
    }

    cn = calloc(1, sizeof *cn);
    if (!cn) {
        *msg = "out of memory";
        return NULL;
    }
    bump(&r->ctr->reconnects);
    /* The set-up commands (AUTH, SELECT, ROLE, CLIENT TRACKING) are part
     * of connecting: they run under connect_timeout_ms, and the
     * connection gets timeout_ms only once it is ready.  A burst of new
     * connections (a restart, a pool filling up under load) otherwise
     * failed on a busy server whose first replies took longer than one
     * command may. */
    cn->c = dial(r, n->host, n->port, r->connect_timeout_ms);
    if (!cn->c) {
        *msg = "cannot connect";
        goto fail;
    }
    if (auth(r, cn->c) != SESS_OK) {
        *msg = "authentication failed";
        goto fail;
    }
    if (r->db != 0) {
        char dbs[8];
        int l = snprintf(dbs, sizeof dbs, "%d", r->db);
        const char *argv[2] = {"SELECT", dbs};
        size_t len[2] = {6, (size_t)l};
        redisReply *rep = setup_cmd(cn->c, 2, argv, len);
        bool ok = reply_ok(rep);
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            *msg = "SELECT failed";
            goto fail;
        }
    }
    if (r->kind == SESS_REDIS_SENTINEL) {
        /* The Sentinel's answer may be stale during a failover: only a
         * server that calls itself master takes writes. */
        const char *argv[1] = {"ROLE"};
        size_t len[1] = {4};
        redisReply *rep = setup_cmd(cn->c, 1, argv, len);
        bool master = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                      rep->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(rep->element[0]->str, "master") == 0;
        if (rep)
            freeReplyObject(rep);
        if (!master) {
            *msg = "server is not the primary";
            goto fail;
        }
    }
    conn_track(r, n, cn);
    if (redisSetTimeout(cn->c, tv_ms(r->timeout_ms)) != REDIS_OK) {
        *msg = "cannot set the timeout";
        goto fail;
    }
    return cn;

fail:
    conn_free(cn);
    return NULL;
}

static void conn_release(sess__redis *r, struct rnode *n, struct rconn *cn)
{
    pthread_mutex_lock(&n->lock);
    if (n->nidle < r->pool_size && atomic_load(&n->active)) {
        n->idle[n->nidle++] = cn;
        cn = NULL;
    }
    pthread_mutex_unlock(&n->lock);
    conn_free(cn);
}

/* ---- Sentinel ------------------------------------------------------------ */

static void epoch_change(sess__redis *r)
{
    atomic_fetch_add(&r->epoch, 1);
    if (r->hooks.flush)
        r->hooks.flush(r->hooks.ctx);
}

/* Ask the sentinels for the primary.  Caller holds topo write. */
static int sentinel_resolve_locked(sess__redis *r, sess_err *err)
{
    for (size_t i = 0; i < r->nseeds; i++) {
        redisContext *c = dial(r, r->seeds[i].host, r->seeds[i].port,
                               r->timeout_ms * 5);
        if (!c)
            continue;
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", r->master};
        size_t len[3] = {8, 23, strlen(r->master)};
        redisReply *rep = redisCommandArgv(c, 3, argv, len);
        redisFree(c);
        struct rnode *n = NULL;
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            rep->element[1]->type == REDIS_REPLY_STRING &&
            rep->element[0]->len > 0 && rep->element[0]->len < HOST_MAX) {
            char *end = NULL;
            errno = 0;
            long port = strtol(rep->element[1]->str, &end, 10);
            if (errno == 0 && end && *end == '\0' && port > 0 && port < 65536)
                n = node_get_locked(r, rep->element[0]->str, (int)port);
        }
        if (rep)
            freeReplyObject(rep);
        if (!n)
            continue;
        if (n != r->primary) {
            if (r->primary)
                atomic_store(&r->primary->active, false);
            r->primary = n;
            node_activate_locked(r, n);
            epoch_change(r); /* cached reads came from the old primary */
        }
        r->stale = false;
        return SESS_OK;
    }
    return sess__fail(err, SESS_EUNAVAILABLE,
                      "redis store: no sentinel knows the primary of the master");
}

/* ---- Cluster slot map ------------------------------------------------------ */

/* CLUSTER SLOTS from "c" into the map.  Caller holds topo write. */
static int cluster_apply_locked(sess__redis *r, redisReply *rep,
                                const char *asked_host)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return SESS_EIO;
    struct rnode *map[SESS_REDIS_SLOTS];
    memset(map, 0, sizeof map);
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            return SESS_EIO;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        long long port = e->element[2]->element[1]->integer;
        const char *host = e->element[2]->element[0]->str;
        if (lo < 0 || hi >= SESS_REDIS_SLOTS || lo > hi || port <= 0 || port > 65535)
            return SESS_EIO;
        if (!*host) /* "" means the node we asked */
            host = asked_host;
        struct rnode *n = node_get_locked(r, host, (int)port);
        if (!n)
            return SESS_EIO;
        for (long long s = lo; s <= hi; s++)
            map[s] = n;
    }
    for (size_t i = 0; i < r->nnodes; i++)
        atomic_store(&r->nodes[i]->active, false);
    for (size_t s = 0; s < SESS_REDIS_SLOTS; s++) {
        r->slots[s] = map[s];
        if (map[s] && !atomic_load(&map[s]->active))
            node_activate_locked(r, map[s]);
    }
    r->map_stale = false;
    return SESS_OK;
}

static int cluster_refresh_locked(sess__redis *r, sess_err *err)
{
    /* Known nodes first (they are the cluster now), then the seeds. */
    size_t total = r->nnodes + r->nseeds;
    for (size_t i = 0; i < total; i++) {
        const char *host;
        int port;
        if (i < r->nnodes) {
            host = r->nodes[i]->host;
            port = r->nodes[i]->port;
        } else {
            host = r->seeds[i - r->nnodes].host;
            port = r->seeds[i - r->nnodes].port;
        }
        redisContext *c = dial(r, host, port, r->timeout_ms * 5);
        if (!c)
            continue;
        if (auth(r, c) != SESS_OK) {
            redisFree(c);
            continue;
        }
        char hostcopy[HOST_MAX];
        snprintf(hostcopy, sizeof hostcopy, "%s", host);
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        size_t len[2] = {7, 5};
        redisReply *rep = redisCommandArgv(c, 2, argv, len);
        redisFree(c);
        int rc = cluster_apply_locked(r, rep, hostcopy);
        if (rep)
            freeReplyObject(rep);
        if (rc == SESS_OK)
            return SESS_OK;
    }
    return sess__fail(err, SESS_EUNAVAILABLE,
                      "redis store: no cluster node answered CLUSTER SLOTS");
}

/* Refresh the topology if it is marked stale (rate-limited). */
static int topo_refresh(sess__redis *r, bool force, sess_err *err)
{
    int rc = SESS_OK;
    pthread_rwlock_wrlock(&r->topo);
    bool needed = r->kind == SESS_REDIS_SENTINEL ? (r->stale || !r->primary)
                                                 : (r->map_stale || force);
    uint64_t now = mono_ms();
    bool empty = r->kind == SESS_REDIS_SENTINEL ? !r->primary : r->nnodes == 0;
    if (needed && (empty || now - r->last_refresh_ms >= REFRESH_MIN_MS)) {
        r->last_refresh_ms = now;
        rc = r->kind == SESS_REDIS_SENTINEL ? sentinel_resolve_locked(r, err)
                                            : cluster_refresh_locked(r, err);
    } else if (needed && empty) {
        rc = sess__fail(err, SESS_EUNAVAILABLE, "redis store: topology unknown");
    }
    pthread_rwlock_unlock(&r->topo);
    return rc;
}

/* The node for "slot" now (refreshing the topology when needed). */
static struct rnode *pick(sess__redis *r, int slot, sess_err *err, int *rc)
{
    struct rnode *n = NULL;
    *rc = SESS_OK;
    if (r->kind == SESS_REDIS_STANDALONE)
        return r->primary;
    if (r->kind == SESS_REDIS_SENTINEL) {
        pthread_rwlock_rdlock(&r->topo);
        bool need = r->stale || !r->primary;
        n = r->primary;
        pthread_rwlock_unlock(&r->topo);
        if (need) {
            *rc = topo_refresh(r, false, err);
            pthread_rwlock_rdlock(&r->topo);
            n = r->stale ? NULL : r->primary;
            pthread_rwlock_unlock(&r->topo);
            if (!n && *rc == SESS_OK)
                *rc = sess__fail(err, SESS_EUNAVAILABLE,
                                 "redis store: primary unknown (failover?)");
        }
        return n;
    }
    pthread_rwlock_rdlock(&r->topo);
    bool stale = r->map_stale;
    if (slot < 0) {
        for (size_t i = 0; i < r->nnodes && !n; i++)
            if (atomic_load(&r->nodes[i]->active))
                n = r->nodes[i];
    } else {
        n = r->slots[slot];
    }
    pthread_rwlock_unlock(&r->topo);
    if (!n || stale) {
        *rc = topo_refresh(r, !n, err);
        pthread_rwlock_rdlock(&r->topo);
        if (slot >= 0) {
            n = r->slots[slot];
        } else {
            for (size_t i = 0; i < r->nnodes && !n; i++)
                if (atomic_load(&r->nodes[i]->active))
                    n = r->nodes[i];
        }
        pthread_rwlock_unlock(&r->topo);
        if (n)
            *rc = SESS_OK;
        else if (*rc == SESS_OK)
            *rc = sess__fail(err, SESS_EUNAVAILABLE,
                             "redis store: no node serves the slot");
    }
    return n;
}

static void mark_stale(sess__redis *r)
{
    pthread_rwlock_wrlock(&r->topo);
    r->stale = true;
    r->map_stale = true;
    pthread_rwlock_unlock(&r->topo);
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the target node, or NULL. */
static struct rnode *redirect_target(sess__redis *r, const redisReply *rep,
                                     bool moved)
{
    const char *p = rep->str;
    const char *sp1 = memchr(p, ' ', rep->len);
    if (!sp1)
        return NULL;
    const char *sp2 = memchr(sp1 + 1, ' ', rep->len - (size_t)(sp1 + 1 - p));
    if (!sp2)
        return NULL;
    struct seed s;
    if (parse_hostport(sp2 + 1, rep->len - (size_t)(sp2 + 1 - p), &s) != SESS_OK)
        return NULL;
    long slot = 0;
    for (const char *q = sp1 + 1; q < sp2; q++) {
        if (*q < '0' || *q > '9')
            return NULL;
        slot = slot * 10 + (*q - '0');
        if (slot >= SESS_REDIS_SLOTS)
            return NULL;
    }
    pthread_rwlock_wrlock(&r->topo);
    struct rnode *n = node_get_locked(r, s.host, s.port);
    if (n && moved) {
        r->slots[slot] = n;
        r->map_stale = true; /* one slot moved: others may have too */
        if (!atomic_load(&n->active))
            node_activate_locked(r, n);
    }
    pthread_rwlock_unlock(&r->topo);
    return n;
}

/* ---- one exchange with one node ---------------------------------------------- */

static void record_latency(sess__redis *r, uint64_t us)
{
    static const uint64_t bounds[SESS_STORE_LAT_BUCKETS] = SESS_STORE_LAT_BOUNDS_US;
    size_t b = SESS_STORE_LAT_BUCKETS - 1;
    for (size_t i = 0; i + 1 < SESS_STORE_LAT_BUCKETS; i++)
        if (us <= bounds[i]) {
            b = i;
            break;
        }
    atomic_fetch_add_explicit(&r->ctr->lat_count[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->ctr->lat_sum_us, us, memory_order_relaxed);
}

typedef enum { XR_OK, XR_CONNECT, XR_IO } xresult;

/* An exchange broke after sending: free the "got" replies read so far and
 * the WAIT reply, and drop the connection (its stream is out of step). */
static xresult exchange_broken(struct rconn *cn, redisReply **rep, size_t got,
                               redisReply **wait_rep, const char **msg)
{
    for (size_t i = 0; i < got; i++) {
        freeReplyObject(rep[i]);
        rep[i] = NULL;
    }
    if (*wait_rep) {
        freeReplyObject(*wait_rep);
        *wait_rep = NULL;
    }
    conn_free(cn);
    *msg = "read/write failed or timed out";
    return XR_IO;
}

/* Send "n" commands (plus the prefixes/suffix "flags" ask for) on one
 * connection to "node"; the replies of "cmds" go to "rep", the WAIT
 * reply to "*wait_rep".  XR_CONNECT: nothing was sent. */
static xresult exchange(sess__redis *r, struct rnode *node, bool asking,
                        unsigned flags, const sess__redis_cmd *cmds, size_t n,
                        redisReply **rep, redisReply **wait_rep, bool *tracked,
                        const char **msg)
{
    const char *why = NULL;
    struct rconn *cn = conn_acquire(r, node, &why);
    if (!cn) {
        *msg = why;
        return XR_CONNECT;
    }
    bool track = (flags & SESS_REDIS_TRACK) && r->tracking && cn->track_id != 0 &&
                 cn->track_id == atomic_load(&node->sub_id);
    size_t pre = 0;
    if (asking) {
        redisAppendCommand(cn->c, "ASKING");
        pre++;
    }
    if (track) {
        redisAppendCommand(cn->c, "CLIENT CACHING yes");
        pre++;
    }
    for (size_t i = 0; i < n; i++)
        redisAppendCommandArgv(cn->c, cmds[i].argc, (const char **)(uintptr_t)cmds[i].argv,
                               cmds[i].len);
    bool wait = (flags & SESS_REDIS_WAIT_REPLICA) != 0;
    if (wait)
        redisAppendCommand(cn->c, "WAIT 1 %u", (unsigned)r->replica_timeout_ms);

    size_t total = pre + n + (wait ? 1 : 0);
    size_t got = 0;
    bool failed = false;
    for (size_t i = 0; i < total; i++) {
        void *x = NULL;
        if (redisGetReply(cn->c, &x) != REDIS_OK || !x) {
            int e = errno;
            if (cn->c->err == REDIS_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK))
                bump(&r->ctr->timeouts);
            failed = true;
            break;
        }
        redisReply *y = x;
        if (i < pre) {
            freeReplyObject(y);
        } else if (i < pre + n) {
            rep[i - pre] = y;
            got++;
        } else {
            *wait_rep = y;
        }
    }
    if (failed)
        return exchange_broken(cn, rep, got, wait_rep, msg);
    if (flags & SESS_REDIS_FENCE) {
        /* A second round trip: Redis writes a command's reply before the
         * invalidation messages the command caused (same event-loop
         * pass), so only once a later reply is back are those messages
         * surely on their way to every subscriber.  Without this, a
         * revoke acknowledged here could still be served from another
         * instance's L1 for a few microseconds. */
        void *x = NULL;
        redisAppendCommand(cn->c, "PING");
        if (redisGetReply(cn->c, &x) != REDIS_OK || !x)
            return exchange_broken(cn, rep, got, wait_rep, msg);
        freeReplyObject(x);
    }
    *tracked = track;
    conn_release(r, node, cn);
    return XR_OK;
}

int sess__redis_exec(sess__redis *r, int slot, unsigned flags,
                     const sess__redis_cmd *cmds, size_t n, redisReply **rep,
                     bool *tracked, uint64_t *track_epoch, const char *op,
                     sess_err *err)
{
    uint64_t t0 = mono_us();
    struct rnode *ask = NULL;
    int rc;
    bool trk = false;

    if (tracked)
        *tracked = false;
    if (track_epoch)
        *track_epoch = atomic_load(&r->epoch);
    for (size_t i = 0; i < n; i++)
        rep[i] = NULL;

    for (int attempt = 0;; attempt++) {
        if (attempt > REDIRECTS_MAX) {
            rc = sess__fail(err, SESS_EUNAVAILABLE,
                            "redis %s: too many redirects", op);
            break;
        }
        struct rnode *node = ask;
        if (!node) {
            node = pick(r, slot, err, &rc);
            if (!node) {
                if (rc == SESS_OK)
                    rc = sess__fail(err, SESS_EUNAVAILABLE,
                                    "redis %s: no server", op);
                break;
            }
        }
        sess__store_note_node(node->host, node->port);  /* tracing */
        if (!breaker_allow(node)) {
            rc = sess__fail(err, SESS_EUNAVAILABLE,
                            "redis %s: %s:%d unavailable (circuit open)", op,
                            node->host, node->port);
            break;
        }
        const char *msg = "error";
        redisReply *wait_rep = NULL;
        xresult x = exchange(r, node, ask != NULL, flags, cmds, n, rep,
                             &wait_rep, &trk, &msg);
        bool was_ask = ask != NULL;
        ask = NULL;
        if (x != XR_OK) {
            breaker_fail(node);
            if (r->kind != SESS_REDIS_STANDALONE)
                mark_stale(r);
            /* Nothing was sent: after a failover another server may
             * answer, so try once more through the new topology. */
            if (x == XR_CONNECT && r->kind != SESS_REDIS_STANDALONE &&
                attempt == 0)
                continue;
            rc = sess__fail(err, SESS_EUNAVAILABLE, "redis %s: %s:%d: %s", op,
                            node->host, node->port, msg);
            break;
        }
        breaker_ok(node);

        /* Redirects and failover answers come back as the first reply. */
        redisReply *first = n ? rep[0] : NULL;
        bool moved = reply_is_error(first, "MOVED ");
        bool asked = reply_is_error(first, "ASK ");
        bool fail_over = reply_is_error(first, "READONLY") ||
                         reply_is_error(first, "MASTERDOWN") ||
                         reply_is_error(first, "LOADING");
        bool busy = reply_is_error(first, "TRYAGAIN") ||
                    reply_is_error(first, "CLUSTERDOWN");
        if (moved || asked || fail_over || busy) {
            struct rnode *target = NULL;
            if ((moved || asked) && !was_ask)
                target = redirect_target(r, first, moved);
            for (size_t i = 0; i < n; i++) {
                if (rep[i])
                    freeReplyObject(rep[i]);
                rep[i] = NULL;
            }
            if (wait_rep)
                freeReplyObject(wait_rep);
            if (busy || ((moved || asked) && !target)) {
                rc = sess__fail(err, SESS_EUNAVAILABLE,
                                "redis %s: %s:%d: cluster busy or moving", op,
                                node->host, node->port);
                break;
            }
            if (fail_over) {
                mark_stale(r);
                if (r->kind == SESS_REDIS_STANDALONE) {
                    rc = sess__fail(err, SESS_EUNAVAILABLE,
                                    "redis %s: %s:%d: server not writable", op,
                                    node->host, node->port);
                    break;
                }
                continue;
            }
            if (asked)
                ask = target;
            continue;
        }
        rc = SESS_OK;
        if (flags & SESS_REDIS_WAIT_REPLICA) {
            bool acked = wait_rep && wait_rep->type == REDIS_REPLY_INTEGER &&
                         wait_rep->integer >= 1;
            if (!acked)
                rc = sess__fail(err, SESS_EUNAVAILABLE,
                                "redis %s: %s:%d: no replica acknowledged the "
                                "write in time", op, node->host, node->port);
        }
        if (wait_rep)
            freeReplyObject(wait_rep);
        if (tracked)
            *tracked = trk;
        break;
    }
    if (rc != SESS_OK && rc != SESS_EUNAVAILABLE)
        bump(&r->ctr->errors);
    if (rc == SESS_EUNAVAILABLE)
        bump(&r->ctr->errors);
    record_latency(r, mono_us() - t0);
    return rc;
}

/* Run "n" commands on "node" itself (no redirects followed: the caller
 * handles MOVED per reply), with the breaker and the counters; a broken
 * link is SESS_EUNAVAILABLE. */
static int node_exchange(sess__redis *r, struct rnode *node, const sess__redis_cmd *cmds,
                         size_t n, redisReply **rep, const char *op, sess_err *err)
{
    const char *msg = "error";
    redisReply *w = NULL;
    bool trk = false;
    if (!breaker_allow(node))
        return sess__fail(err, SESS_EUNAVAILABLE, "redis %s: %s:%d unavailable (circuit open)",
                          op, node->host, node->port);
    uint64_t t0 = mono_us();
    xresult x = exchange(r, node, false, 0, cmds, n, rep, &w, &trk, &msg);
    record_latency(r, mono_us() - t0);
    if (x != XR_OK) {
        breaker_fail(node);
        if (r->kind != SESS_REDIS_STANDALONE)
            mark_stale(r);
        bump(&r->ctr->errors);
        return sess__fail(err, SESS_EUNAVAILABLE, "redis %s: %s:%d: %s", op, node->host,
                          node->port, msg);
    }
    breaker_ok(node);
    return SESS_OK;
}

/* ---- every slot -------------------------------------------------------------- */

int sess__redis_each_tag(sess__redis *r, sess__redis_make_fn make,
                         sess__redis_reply_fn fn, void *ctx, const char *op,
                         sess_err *err)
{
    /* Which node serves each tag, then one batch of pipelines per node. */
    struct rnode **owner = malloc(SESS_REDIS_SLOTS * sizeof *owner);
    uint32_t *tags = malloc(SESS_REDIS_SLOTS * sizeof *tags);
    sess__redis_cmd *cmds = malloc(EACH_BATCH * sizeof *cmds);
    redisReply **rep = malloc(EACH_BATCH * sizeof *rep);
    int rc = SESS_OK;

    if (!owner || !tags || !cmds || !rep) {
        rc = sess__fail(err, SESS_ENOMEM, "redis %s: out of memory", op);
        goto cleanup;
    }
    for (uint32_t t = 0; t < SESS_REDIS_SLOTS; t++) {
        char name[8];
        int l = snprintf(name, sizeof name, "{%04x}", (unsigned)t);
        int slot = r->kind == SESS_REDIS_CLUSTER ? sess__redis_slot(name, (size_t)l)
                                                 : SESS_REDIS_ANY_SLOT;
        owner[t] = pick(r, slot, err, &rc);
        if (!owner[t])
            goto cleanup;
    }
    for (uint32_t t = 0; t < SESS_REDIS_SLOTS; t++) {
        struct rnode *node = owner[t];
        if (!node)
            continue;
        /* Gather this node's tags (and mark them done). */
        size_t nt = 0;
        for (uint32_t u = t; u < SESS_REDIS_SLOTS; u++)
            if (owner[u] == node) {
                tags[nt++] = u;
                owner[u] = NULL;
            }
        for (size_t off = 0; off < nt; off += EACH_BATCH) {
            size_t m = nt - off < EACH_BATCH ? nt - off : EACH_BATCH;
            for (size_t i = 0; i < m; i++)
                make(ctx, tags[off + i], &cmds[i]);
            for (size_t i = 0; i < m; i++)
                rep[i] = NULL;
            if ((rc = node_exchange(r, node, cmds, m, rep, op, err)) != SESS_OK)
                goto cleanup;
            for (size_t i = 0; i < m; i++) {
                redisReply *y = rep[i];
                if (rc == SESS_OK && (reply_is_error(y, "MOVED ") ||
                                      reply_is_error(y, "ASK "))) {
                    /* Moved meanwhile: run this one through the router. */
                    redisReply *again = NULL;
                    char name[8];
                    int l = snprintf(name, sizeof name, "{%04x}", (unsigned)tags[off + i]);
                    rc = sess__redis_exec(r, sess__redis_slot(name, (size_t)l), 0,
                                          &cmds[i], 1, &again, NULL, NULL, op, err);
                    if (rc == SESS_OK) {
                        rc = fn(ctx, tags[off + i], again);
                        freeReplyObject(again);
                    }
                } else if (rc == SESS_OK) {
                    rc = fn(ctx, tags[off + i], y);
                }
                freeReplyObject(y);
            }
            if (rc != SESS_OK)
                goto cleanup;
        }
    }

cleanup:
    free(owner);
    free(tags);
    free(cmds);
    free(rep);
    return rc;
}

/* ---- scan ---------------------------------------------------------------------- */

#define SCAN_GET_PIPE 64          /* GETs per round trip in a scan step */

/* The primaries in the order of the lowest slot each serves, into
 * "out" (NODES_MAX), with that slot in "first". */
static int primaries(sess__redis *r, struct rnode **out, uint32_t *first, size_t *n,
                     sess_err *err)
{
    int rc = SESS_OK;
    *n = 0;
    if (r->kind != SESS_REDIS_CLUSTER) {
        struct rnode *p = pick(r, SESS_REDIS_ANY_SLOT, err, &rc);
        if (!p)
            return rc != SESS_OK ? rc
                                 : sess__fail(err, SESS_EUNAVAILABLE, "redis scan: no server");
        out[0] = p;
        first[0] = 0;
        *n = 1;
        return SESS_OK;
    }
    if (!pick(r, 0, err, &rc))       /* refreshes a stale or empty map */
        return rc != SESS_OK ? rc : sess__fail(err, SESS_EUNAVAILABLE, "redis scan: no server");
    pthread_rwlock_rdlock(&r->topo);
    for (uint32_t s = 0; s < SESS_REDIS_SLOTS; s++) {
        struct rnode *nd = r->slots[s];
        bool seen = nd == NULL;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = out[i] == nd;
        if (!seen && *n < NODES_MAX) {
            out[*n] = nd;
            first[(*n)++] = s;
        }
    }
    pthread_rwlock_unlock(&r->topo);
    return *n ? SESS_OK : sess__fail(err, SESS_EUNAVAILABLE, "redis scan: no primary");
}

int sess__redis_scan_step(sess__redis *r, uint32_t *node, uint32_t *node_slot,
                          uint64_t *cursor, const char *match, size_t count,
                          sess__redis_scan_fn fn, void *ctx, bool *done,
                          sess_err *err)
{
    struct rnode *nodes[NODES_MAX];
    uint32_t first[NODES_MAX];
    size_t nn = 0;
    redisReply *srep = NULL;
    int rc;

    *done = false;
    if ((rc = primaries(r, nodes, first, &nn, err)) != SESS_OK)
        return rc;
    if (*node >= nn || first[*node] != *node_slot) {
        /* The topology changed since the last step (or a fresh walk):
         * start over; visiting twice is allowed, missing is not. */
        if (*node != 0 || *cursor != 0 || *node_slot != 0) {
            *node = 0;
            *cursor = 0;
        }
        *node_slot = first[0];
    }
    struct rnode *nd = nodes[*node];
    char scur[24], scount[24];
    int lc = snprintf(scur, sizeof scur, "%llu", (unsigned long long)*cursor);
    int lk = snprintf(scount, sizeof scount, "%zu", count ? count : 1);
    sess__redis_cmd sc = {.argc = 6,
                          .argv = {"SCAN", scur, "MATCH", match, "COUNT", scount},
                          .len = {4, (size_t)lc, 5, strlen(match), 5, (size_t)lk}};
    if ((rc = node_exchange(r, nd, &sc, 1, &srep, "scan", err)) != SESS_OK)
        return rc;
    if (!srep || srep->type != REDIS_REPLY_ARRAY || srep->elements != 2 ||
        srep->element[0]->type != REDIS_REPLY_STRING ||
        srep->element[1]->type != REDIS_REPLY_ARRAY) {
        if (srep)
            freeReplyObject(srep);
        bump(&r->ctr->errors);
        return sess__fail(err, SESS_EIO, "redis scan: unexpected SCAN reply");
    }
    char *endp = NULL;
    unsigned long long next = strtoull(srep->element[0]->str, &endp, 10);
    bool cursor_ok = endp && *endp == '\0' && endp != srep->element[0]->str;
    redisReply *names = srep->element[1];
    sess__redis_cmd cmds[SCAN_GET_PIPE];
    redisReply *vals[SCAN_GET_PIPE];
    int stop = 0;
    for (size_t off = 0; off < names->elements && rc == SESS_OK && !stop; off += SCAN_GET_PIPE) {
        size_t m = names->elements - off < SCAN_GET_PIPE ? names->elements - off : SCAN_GET_PIPE;
        for (size_t i = 0; i < m; i++) {
            redisReply *nm = names->element[off + i];
            cmds[i].argc = 2;
            cmds[i].argv[0] = "GET";
            cmds[i].len[0] = 3;
            cmds[i].argv[1] = nm->type == REDIS_REPLY_STRING ? nm->str : "";
            cmds[i].len[1] = nm->type == REDIS_REPLY_STRING ? nm->len : 0;
            vals[i] = NULL;
        }
        if ((rc = node_exchange(r, nd, cmds, m, vals, "scan", err)) != SESS_OK)
            break;
        for (size_t i = 0; i < m; i++) {
            redisReply *v = vals[i];
            if (rc == SESS_OK && !stop &&
                (reply_is_error(v, "MOVED ") || reply_is_error(v, "ASK "))) {
                /* The slot moved during the walk: ask its new owner. */
                redisReply *again = NULL;
                rc = sess__redis_exec(r, sess__redis_slot(cmds[i].argv[1], cmds[i].len[1]), 0,
                                      &cmds[i], 1, &again, NULL, NULL, "scan", err);
                if (rc == SESS_OK) {
                    stop = fn(ctx, cmds[i].argv[1], cmds[i].len[1], again);
                    freeReplyObject(again);
                }
            } else if (rc == SESS_OK && !stop) {
                stop = fn(ctx, cmds[i].argv[1], cmds[i].len[1], v);
            }
            freeReplyObject(v);
        }
    }
    freeReplyObject(srep);
    if (rc != SESS_OK)
        return rc;
    if (!cursor_ok)
        return sess__fail(err, SESS_EIO, "redis scan: bad SCAN cursor");
    *cursor = next;
    if (next == 0) {
        (*node)++;
        if (*node >= nn) {
            *done = true;
        } else {
            *node_slot = first[*node];
        }
    }
    return SESS_OK;
}

int sess__redis_flushall(sess__redis *r, sess_err *err)
{
    int rc;
    struct rnode *first = pick(r, SESS_REDIS_ANY_SLOT, err, &rc);
    if (!first)
        return rc;
    pthread_rwlock_rdlock(&r->topo);
    size_t nn = r->nnodes;
    struct rnode *nodes[NODES_MAX];
    memcpy(nodes, r->nodes, nn * sizeof nodes[0]);
    pthread_rwlock_unlock(&r->topo);
    for (size_t i = 0; i < nn; i++) {
        if (!atomic_load(&nodes[i]->active))
            continue;
        sess__redis_cmd c = {.argc = 1, .argv = {"FLUSHALL"}, .len = {8}};
        redisReply *rep = NULL, *w = NULL;
        bool trk;
        const char *msg = "error";
        if (exchange(r, nodes[i], false, 0, &c, 1, &rep, &w, &trk, &msg) != XR_OK)
            return sess__fail(err, SESS_EUNAVAILABLE, "redis flushall: %s:%d: %s",
                              nodes[i]->host, nodes[i]->port, msg);
        bool ok = reply_ok(rep);
        freeReplyObject(rep);
        if (!ok)
            return sess__fail(err, SESS_EIO, "redis flushall: %s:%d refused",
                              nodes[i]->host, nodes[i]->port);
    }
    return SESS_OK;
}

int sess__redis_breaker_open(sess__redis *r)
{
    int open = 0;
    pthread_rwlock_rdlock(&r->topo);
    for (size_t i = 0; i < r->nnodes; i++) {
        struct rnode *n = r->nodes[i];
        if (!atomic_load(&n->active))
            continue;
        pthread_mutex_lock(&n->lock);
        if (n->fails >= BREAKER_FAILS)
            open = 1;
        pthread_mutex_unlock(&n->lock);
    }
    pthread_rwlock_unlock(&r->topo);
    return open;
}

/* ---- invalidation subscribers ------------------------------------------------- */

uint64_t sess__redis_track_epoch(sess__redis *r)
{
    return atomic_load(&r->epoch);
}

/* epoll_wait with no timeout, through syscall(2): glibc's epoll_wait is a
 * cancellation point and brackets the call with two cancellation-state
 * switches, a few percent of an L1 hit; nothing here is ever cancelled.
 * epoll_pwait with no signal mask is epoll_wait on every architecture
 * (some have only the former). */
static long quiet_wait(int ep, struct epoll_event *ev)
{
    return syscall(SYS_epoll_pwait, ep, ev, 1, 0, NULL, (size_t)0);
}

bool sess__redis_track_quiet(sess__redis *r)
{
    struct epoll_event ev;
    size_t nn, up = 0;

    if (!r->tracking)
        return false;
    /* This runs on every L1 hit, so it takes no lock and makes one
     * syscall.  Nodes are published with a release store and never freed
     * before close; "active", "sub_id" and "sub_busy" are atomics.  Every
     * active primary must have its link up... */
    nn = atomic_load_explicit(&r->nnodes, memory_order_acquire);
    for (size_t i = 0; i < nn; i++) {
        struct rnode *n = r->nodes[i];
        if (!atomic_load(&n->active))
            continue;
        if (atomic_load(&n->sub_id) == 0)
            return false;
        up++;
    }
    if (up == 0)
        return false;
    /* ...and no subscriber socket may hold unread bytes.  The sockets sit
     * in one epoll set, whose ready list the kernel updates as data
     * arrives: epoll_wait with no timeout costs half a poll() of the
     * sockets (no descriptor table walk, no per-socket poll when nothing
     * arrived).  A socket is added before its link is announced (sub_id)
     * and taken out only after the announcement is withdrawn and the
     * epoch changed, so a link this check does not see was either never
     * up or already fenced by the epoch the caller checks afterwards.
     * Order matters: the sockets first, then "busy" (set by the
     * subscriber before it reads), so a message already taken off a
     * socket but not yet applied is seen through "busy". */
    if (quiet_wait(r->track_ep, &ev) != 0)
        return false;
    for (size_t i = 0; i < nn; i++)
        if (atomic_load(&r->nodes[i]->active) && atomic_load(&r->nodes[i]->sub_busy))
            return false;
    return true;
}

static void sub_apply(sess__redis *r, redisReply *m)
{
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(m->element[0]->str, "message") != 0)
        return; /* subscribe confirmations and the like */
    redisReply *keys = m->element[2];
    if (keys->type == REDIS_REPLY_NIL) {
        /* FLUSHALL/FLUSHDB: everything goes. */
        epoch_change(r);
        return;
    }
    if (keys->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING && r->hooks.invalidate)
                r->hooks.invalidate(r->hooks.ctx, keys->element[i]->str,
                                    keys->element[i]->len);
    } else if (keys->type == REDIS_REPLY_STRING && r->hooks.invalidate) {
        r->hooks.invalidate(r->hooks.ctx, keys->str, keys->len);
    }
}

/* Sleep "ms" in small steps so close is not held up. */
static void nap(sess__redis *r, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (!atomic_load(&r->stop) && mono_ms() < end) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *sub_main(void *arg)
{
    struct rnode *n = arg;
    sess__redis *r = n->owner;
    uint64_t backoff = 0;

    while (!atomic_load(&r->stop)) {
        redisContext *c = dial(r, n->host, n->port, r->timeout_ms * 10 + 1000);
        long long id = 0;
        if (c && auth(r, c) == SESS_OK) {
            redisReply *rep = redisCommand(c, "CLIENT ID");
            if (rep && rep->type == REDIS_REPLY_INTEGER)
                id = rep->integer;
            if (rep)
                freeReplyObject(rep);
            rep = id ? redisCommand(c, "SUBSCRIBE __redis__:invalidate") : NULL;
            if (!rep || rep->type != REDIS_REPLY_ARRAY)
                id = 0;
            if (rep)
                freeReplyObject(rep);
        }
        if (id == 0) {
            if (c)
                redisFree(c);
            bump(&r->ctr->reconnects);
            backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            nap(r, jitter(backoff));
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = n};
        if (epoll_ctl(r->track_ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            redisFree(c);
            bump(&r->ctr->reconnects);
            nap(r, jitter(BACKOFF_MAX_MS));
            continue;
        }
        backoff = 0;
        atomic_store(&n->sub_id, id);
        epoch_change(r); /* entries from before the link came up are fenced */

        while (!atomic_load(&r->stop)) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            int pr = poll(&p, 1, SUB_POLL_MS);
            if (pr < 0 && errno != EINTR)
                break;
            if (pr <= 0)
                continue;
            atomic_store(&n->sub_busy, 1);
            if (redisBufferRead(c) != REDIS_OK) {
                atomic_store(&n->sub_busy, 0);
                break;
            }
            void *x = NULL;
            int grc;
            while ((grc = redisGetReplyFromReader(c, &x)) == REDIS_OK && x) {
                sub_apply(r, x);
                freeReplyObject(x);
                x = NULL;
            }
            atomic_store(&n->sub_busy, 0);
            if (grc != REDIS_OK)
                break;
        }
        /* The link is down: nothing cached may be trusted until it is
         * back (the flush hook fences or drops every entry). */
        atomic_store(&n->sub_id, 0);
        epoch_change(r); /* before the socket leaves the set: track_quiet */
        (void)epoll_ctl(r->track_ep, EPOLL_CTL_DEL, c->fd, NULL);
        redisFree(c);
    }
    return NULL;
}

/* ---- open / close ------------------------------------------------------------ */

sess__redis_kind sess__redis_kind_of(const sess__redis *r)
{
    return r->kind;
}

void sess__redis_close(sess__redis *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->sub_started)
            pthread_join(r->nodes[i]->sub_thread, NULL);
    for (size_t i = 0; i < r->nnodes; i++) {
        struct rnode *n = r->nodes[i];
        for (size_t j = 0; j < n->nidle; j++)
            conn_free(n->idle[j]);
        free(n->idle);
        pthread_mutex_destroy(&n->lock);
        free(n);
    }
    if (r->password) {
        sess__wipe(r->password, strlen(r->password));
        free(r->password);
    }
    if (r->track_ep >= 0)
        close(r->track_ep);
    pthread_rwlock_destroy(&r->topo);
    free(r);
}

int sess__redis_open(const char *url, const sess__redis_config *cfg,
                     sess__redis **out, sess_err *err)
{
    *out = NULL;
    sess__redis *r = calloc(1, sizeof *r);
    if (!r)
        return sess__fail(err, SESS_ENOMEM, "redis store: out of memory");
    r->track_ep = -1;
    pthread_rwlock_init(&r->topo, NULL);
    int rc = parse_url(r, url, err);
    if (rc != SESS_OK) {
        sess__redis_close(r);
        return rc;
    }
    r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    r->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                                    : DEFAULT_CONNECT_TIMEOUT_MS;
    r->pool_size = cfg->pool_size ? cfg->pool_size : DEFAULT_POOL;
    r->replica_timeout_ms = cfg->replica_timeout_ms ? cfg->replica_timeout_ms
                                                    : DEFAULT_REPLICA_TIMEOUT_MS;
    r->tracking = cfg->tracking;
    if (r->tracking) {
        r->track_ep = epoll_create1(EPOLL_CLOEXEC);
        if (r->track_ep < 0) {
            sess__redis_close(r);
            return sess__fail(err, SESS_EUNAVAILABLE,
                              "redis store: cannot create the invalidation epoll set");
        }
    }
    r->hooks = cfg->hooks;
    r->ctr = cfg->counters;
    if (cfg->password && *cfg->password) {
        r->password = strdup(cfg->password);
        if (!r->password) {
            sess__redis_close(r);
            return sess__fail(err, SESS_ENOMEM, "redis store: out of memory");
        }
    }
    if (r->kind == SESS_REDIS_STANDALONE) {
        pthread_rwlock_wrlock(&r->topo);
        r->primary = node_get_locked(r, r->seeds[0].host, r->seeds[0].port);
        if (r->primary)
            node_activate_locked(r, r->primary);
        pthread_rwlock_unlock(&r->topo);
        if (!r->primary) {
            sess__redis_close(r);
            return sess__fail(err, SESS_ENOMEM, "redis store: out of memory");
        }
    } else {
        r->stale = true;
        r->map_stale = true;
        /* Learn the topology now if we can; if not, the first operation
         * tries again (the store opens while Redis is still down). */
        (void)topo_refresh(r, true, NULL);
    }
    *out = r;
    return SESS_OK;
}
