/*
 * test_redis_l1.c - the Redis store beyond the conformance suite, run as
 * `test_redis_l1 URL` against a live server, Sentinel set or Cluster
 * (tests/redis/topology.py starts them; CTest labels redis).
 *
 * 1. Routed data on every topology: sessions whose keys and handles carry
 *    their user's route (as the core writes them), for many users spread
 *    over every slot range, through insert with a limit, find_handle,
 *    list_user, count, replace, remove_user and purge.
 * 2. L1 coherence: two store handles A and B on the same servers.  B reads
 *    a session (warming its L1 until it hits), A removes it (or updates
 *    it), and B's very next read must see that: NOTFOUND (or the new
 *    record), every time, over hundreds of rounds.  B's counters must
 *    show L1 hits, or the test proves nothing.
 * Each store is used from one thread here; the conformance suite covers
 * concurrency.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sess/store.h"
#include "store_internal.h"

#define NOW 1000000u
#define LATER (NOW + 3600u)
#define USERS 200
#define ROUNDS 500

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            failures++;                                                      \
        }                                                                    \
    } while (0)

typedef struct tentry {
    sess_entry e;
    uint8_t blob[64];
} tentry;

static uint32_t rng_state = 12345;

static uint8_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (uint8_t)(rng_state >> 16);
}

static void route(uint8_t *b, uint16_t r)
{
    b[0] = (uint8_t)((b[0] & 0xC0u) | ((r >> 8) & 0x3Fu));
    b[1] = (uint8_t)(r & 0xFF);
}

/* A session of user "u" routed as the core routes it. */
static void mk(sess_store *st, tentry *t, uint32_t u, uint64_t created,
               uint64_t expires)
{
    sess_err err = {0};
    uint16_t r = 0;
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < SESS_STORE_USER_BYTES; i++)
        t->e.user[i] = (uint8_t)(u * 37u + i * 11u);
    memcpy(t->e.user + 4, &u, sizeof u);
    if (st->methods->version >= 2 && st->methods->route)
        st->methods->route(st, t->e.user, &r, &err);
    for (size_t i = 0; i < SESS_STORE_KEY_BYTES; i++)
        t->e.key[i] = rnd();
    for (size_t i = 0; i < SESS_STORE_HANDLE_BYTES; i++)
        t->e.handle[i] = rnd();
    route(t->e.key, r);
    route(t->e.handle, r);
    t->e.created_at = created;
    t->e.expires_at = expires;
    t->e.blob_len = 20 + rnd() % 40;
    for (size_t i = 0; i < t->e.blob_len; i++)
        t->blob[i] = rnd();
    t->e.blob = t->blob;
}

static int get(sess_store *st, const uint8_t *key, tentry *want)
{
    sess_store_buf buf = {0};
    sess_entry e;
    sess_err err = {0};
    int rc = st->methods->get(st, key, NOW, &e, &buf, &err);
    if (rc == SESS_OK && want &&
        (e.blob_len != want->e.blob_len ||
         memcmp(e.blob, want->e.blob, e.blob_len) != 0 ||
         e.expires_at != want->e.expires_at))
        rc = -1000; /* stale */
    if (rc != SESS_OK && rc != SESS_NOTFOUND && rc != -1000)
        fprintf(stderr, "get: %s (%s)\n", sess_result_name(rc), err.msg);
    sess_store_buf_free(&buf);
    return rc;
}

static int count_cb(void *ctx, const sess_entry *e)
{
    (void)e;
    (*(size_t *)ctx)++;
    return 0;
}

static size_t listed(sess_store *st, const uint8_t *user)
{
    size_t n = 0;
    sess_err err = {0};
    int rc = st->methods->list_user(st, user, NOW, count_cb, &n, &err);
    CHECK(rc == SESS_OK, "list_user: %s (%s)", sess_result_name(rc), err.msg);
    return n;
}

/* Sessions issued by a store that does not route (LMDB before a
 * migration): key and handle random, not the user's route.  On a cluster
 * they live under the user's tag with aliases (store_redis.c, "Legacy
 * entries"); mixed with routed sessions of the same user, every operation
 * must see one set: get and find_handle by the legacy bytes, list, the
 * limit evicting the oldest whichever kind, rotation (replace) of a legacy
 * session to a routed key, remove, remove_user; seen from a second store
 * handle too (its L1). */
static void legacy(sess_store *a, sess_store *b)
{
    static tentry t[3];
    sess_err err = {0};
    sess_store_limit lim = {.max_per_user = 3, .policy = SESS_LIMIT_EVICT_OLDEST};
    uint32_t user = 4242;

    for (int i = 0; i < 3; i++) {
        mk(a, &t[i], user, NOW - 100 + (uint64_t)i, LATER);
        if (i < 2) {
            /* Legacy: un-route key and handle (a different 14-bit value). */
            uint16_t r = SESS_ROUTE_OF(t[i].e.key);
            route(t[i].e.key, (uint16_t)((r + 1000u + (unsigned)i) & 0x3FFFu));
            route(t[i].e.handle, (uint16_t)((r + 2000u + (unsigned)i) & 0x3FFFu));
        }
        sess_store_evicted ev = {0};
        int rc = a->methods->insert(a, &t[i].e, &lim, NOW, &ev, &err);
        CHECK(rc == SESS_OK, "legacy insert %d: %s (%s)", i, sess_result_name(rc), err.msg);
        CHECK(ev.n == 0, "legacy insert %d evicted %zu", i, ev.n);
    }
    for (int i = 0; i < 3; i++) {
        uint8_t k[SESS_STORE_KEY_BYTES];
        CHECK(get(a, t[i].e.key, &t[i]) == SESS_OK, "legacy get %d on a", i);
        CHECK(get(b, t[i].e.key, &t[i]) == SESS_OK, "legacy get %d on b", i);
        int rc = b->methods->find_handle(b, t[i].e.handle, NOW, k, &err);
        CHECK(rc == SESS_OK && memcmp(k, t[i].e.key, sizeof k) == 0, "legacy find_handle %d: %s",
              i, sess_result_name(rc));
    }
    CHECK(listed(a, t[0].e.user) == 3, "legacy list: %zu", listed(a, t[0].e.user));

    /* update (the idle timeout slides) of a legacy entry, seen by b. */
    tentry up = t[1];
    up.e.blob = up.blob;
    up.e.expires_at = LATER + 50;
    up.blob[0] ^= 0x5A;
    int rc = a->methods->update(a, &up.e, t[1].e.blob, t[1].e.blob_len, NOW, &err);
    CHECK(rc == SESS_OK, "legacy update: %s (%s)", sess_result_name(rc), err.msg);
    CHECK(get(b, up.e.key, &up) == SESS_OK, "legacy update not seen by b");
    t[1] = up;
    t[1].e.blob = t[1].blob;

    /* A fourth login evicts the oldest, a legacy one. */
    static tentry n4;
    mk(a, &n4, user, NOW - 10, LATER);
    sess_store_evicted ev = {0};
    rc = a->methods->insert(a, &n4.e, &lim, NOW, &ev, &err);
    CHECK(rc == SESS_OK && ev.n == 1 &&
              memcmp(ev.handle[0], t[0].e.handle, SESS_STORE_HANDLE_BYTES) == 0,
          "limit over legacy: %s, %zu evicted", sess_result_name(rc), ev.n);
    CHECK(get(b, t[0].e.key, NULL) == SESS_NOTFOUND, "evicted legacy entry still found");
    uint8_t k[SESS_STORE_KEY_BYTES];
    CHECK(a->methods->find_handle(a, t[0].e.handle, NOW, k, &err) == SESS_NOTFOUND,
          "evicted legacy handle still found");

    /* Rotation of the legacy t[1] to a routed key, leaving a tombstone. */
    static tentry nx, tomb;
    mk(a, &nx, user, t[1].e.created_at, LATER);
    memcpy(nx.e.handle, t[1].e.handle, SESS_STORE_HANDLE_BYTES); /* rotation keeps it */
    tomb = t[1];
    tomb.e.flags = SESS_ENTRY_UNINDEXED;
    tomb.e.expires_at = NOW + 30;
    tomb.e.blob = tomb.blob;
    rc = a->methods->replace(a, t[1].e.key, t[1].e.blob, t[1].e.blob_len, &tomb.e, &nx.e,
                             NOW, &err);
    CHECK(rc == SESS_OK, "legacy replace: %s (%s)", sess_result_name(rc), err.msg);
    CHECK(get(b, nx.e.key, &nx) == SESS_OK, "rotated session not found");
    CHECK(get(b, t[1].e.key, &tomb) == SESS_OK, "legacy tombstone not found");
    rc = b->methods->find_handle(b, nx.e.handle, NOW, k, &err);
    CHECK(rc == SESS_OK && memcmp(k, nx.e.key, sizeof k) == 0, "handle after rotation: %s",
          sess_result_name(rc));
    CHECK(listed(a, t[0].e.user) == 3, "list after rotation: %zu", listed(a, t[0].e.user));

    /* remove the tombstone (by key alone), then the user's sessions. */
    rc = a->methods->remove(a, t[1].e.key, NULL, &err);
    CHECK(rc == SESS_OK, "remove legacy tombstone: %s", sess_result_name(rc));
    CHECK(get(b, t[1].e.key, NULL) == SESS_NOTFOUND, "removed tombstone found");
    size_t n = 0;
    rc = a->methods->remove_user(a, t[0].e.user, NULL, NOW, &n, &err);
    CHECK(rc == SESS_OK && n == 3, "remove_user: %s, %zu", sess_result_name(rc), n);
    for (int i = 2; i < 3; i++)
        CHECK(get(b, t[i].e.key, NULL) == SESS_NOTFOUND, "legacy %d survived remove_user", i);
    CHECK(get(b, nx.e.key, NULL) == SESS_NOTFOUND, "rotated survived remove_user");
    CHECK(get(b, n4.e.key, NULL) == SESS_NOTFOUND, "routed survived remove_user");
    CHECK(listed(b, t[0].e.user) == 0, "list after remove_user");
}

static void routed(sess_store *a, sess_store *b)
{
    static tentry t[USERS][4];
    sess_err err = {0};
    sess_store_limit lim = {.max_per_user = 3, .policy = SESS_LIMIT_EVICT_OLDEST};

    for (uint32_t u = 0; u < USERS; u++) {
        for (int i = 0; i < 4; i++) {
            sess_store_evicted ev = {0};
            mk(a, &t[u][i], u, NOW - 100 + (uint64_t)i, LATER);
            int rc = a->methods->insert(a, &t[u][i].e, &lim, NOW, &ev, &err);
            CHECK(rc == SESS_OK, "insert: %s (%s)", sess_result_name(rc), err.msg);
            CHECK(ev.n == (i == 3 ? 1u : 0u), "evicted %zu", ev.n);
            if (ev.n == 1)
                CHECK(memcmp(ev.handle[0], t[u][0].e.handle, SESS_STORE_HANDLE_BYTES) == 0,
                      "evicted the wrong session");
        }
    }
    uint64_t n = 0;
    int rc = b->methods->count(b, NOW, &n, &err);
    CHECK(rc == SESS_OK && n == USERS * 3u, "count %llu (%s)", (unsigned long long)n,
          err.msg);
    for (uint32_t u = 0; u < USERS; u++) {
        CHECK(listed(b, t[u][0].e.user) == 3, "user %u: wrong listing", u);
        uint8_t k[SESS_STORE_KEY_BYTES];
        CHECK(b->methods->find_handle(b, t[u][0].e.handle, NOW, k, &err) == SESS_NOTFOUND,
              "evicted handle found");
        CHECK(b->methods->find_handle(b, t[u][2].e.handle, NOW, k, &err) == SESS_OK &&
                  memcmp(k, t[u][2].e.key, SESS_STORE_KEY_BYTES) == 0,
              "handle not found");
    }
    /* Rotate one session per user (with a tombstone), then revoke all but
     * the rotated one. */
    for (uint32_t u = 0; u < USERS; u++) {
        tentry next = t[u][3], tomb = t[u][3];
        for (size_t i = 2; i < SESS_STORE_KEY_BYTES; i++)
            next.e.key[i] = rnd();
        next.e.blob = next.blob;
        tomb.e.flags = SESS_ENTRY_UNINDEXED;
        tomb.e.expires_at = NOW + 30;
        tomb.e.blob = tomb.blob;
        rc = a->methods->replace(a, t[u][3].e.key, t[u][3].e.blob, t[u][3].e.blob_len,
                                 &tomb.e, &next.e, NOW, &err);
        CHECK(rc == SESS_OK, "replace: %s (%s)", sess_result_name(rc), err.msg);
        size_t removed = 0;
        rc = a->methods->remove_user(a, t[u][0].e.user, next.e.handle, NOW, &removed, &err);
        CHECK(rc == SESS_OK && removed == 2, "remove_user: %s, %zu", sess_result_name(rc),
              removed);
        CHECK(listed(b, t[u][0].e.user) == 1, "user %u after revoke", u);
        CHECK(get(b, next.e.key, &next) == SESS_OK, "rotated session lost");
        CHECK(get(b, t[u][3].e.key, &tomb) == SESS_OK, "tombstone lost");
    }
    rc = b->methods->count(b, NOW, &n, &err);
    CHECK(rc == SESS_OK && n == USERS, "count after revoke %llu", (unsigned long long)n);
    size_t purged = 0;
    rc = a->methods->purge(a, NOW + 30, 100000, &purged, &err);
    CHECK(rc == SESS_OK && purged == USERS, "purge: %s, %zu", sess_result_name(rc), purged);
}

static uint64_t hits(sess_store *st)
{
    sess_store_stats s;
    if (st->methods->version < 3 || !st->methods->stats)
        return 0;
    st->methods->stats(st, &s);
    return s.l1_hits;
}

static void coherence(sess_store *a, sess_store *b)
{
    sess_err err = {0};
    int stale = 0, warmed = 0;

    for (int round = 0; round < ROUNDS; round++) {
        tentry s;
        mk(a, &s, 1000u + (uint32_t)round % 7, NOW, LATER);
        CHECK(a->methods->insert(a, &s.e, NULL, NOW, NULL, &err) == SESS_OK, "insert");
        /* Warm B: read until its L1 answers (the invalidation link must
         * be up first), at most ~1 s. */
        uint64_t h0 = hits(b);
        for (int i = 0; i < 1000 && hits(b) == h0; i++) {
            CHECK(get(b, s.e.key, &s) == SESS_OK, "warm get");
            if (hits(b) == h0) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
        }
        if (hits(b) > h0)
            warmed++;
        if (round % 2 == 0) {
            /* Update through A: B must see the new record at once. */
            tentry u = s;
            for (size_t i = 0; i < u.e.blob_len; i++)
                u.blob[i] = (uint8_t)(u.blob[i] + 1);
            u.e.blob = u.blob;
            CHECK(a->methods->update(a, &u.e, s.e.blob, s.e.blob_len, NOW, &err) == SESS_OK,
                  "update");
            if (get(b, s.e.key, &u) != SESS_OK)
                stale++;
            s = u;
            s.e.blob = s.blob;
        }
        CHECK(a->methods->remove(a, s.e.key, NULL, &err) == SESS_OK, "remove");
        if (get(b, s.e.key, NULL) != SESS_NOTFOUND)
            stale++;
    }
    printf("# coherence: %d rounds, %d warmed to an L1 hit, %d stale reads\n", ROUNDS,
           warmed, stale);
    CHECK(stale == 0, "%d stale reads from L1", stale);
    CHECK(warmed > ROUNDS * 9 / 10, "L1 rarely hit (%d of %d): the test proves little",
          warmed, ROUNDS);
}

int main(int argc, char **argv)
{
    sess_store *a = NULL, *b = NULL;
    sess_err err = {0};

    if (argc != 2) {
        fprintf(stderr, "usage: %s redis://... | redis+sentinel://... | redis+cluster://...\n",
                argv[0]);
        return 2;
    }
    /* A 1 s round-trip timeout, not the 20 ms default: this checks
     * coherence, not timing, and must not fail because a loaded CI
     * machine stalled a reply (tests/store/conformance.c, test_options). */
    sess_store_options opt = {.timeout_ms = 1000};
    int rc = sess_store_open(argv[1], &opt, &a, &err);
    if (rc == SESS_OK)
        rc = sess_store_open(argv[1], &opt, &b, &err);
    if (rc != SESS_OK) {
        fprintf(stderr, "open %s: %s (%s)\n", argv[1], sess_result_name(rc), err.msg);
        return 1;
    }
#ifdef SESS_WITH_REDIS
    rc = sess__store_redis_flushall(a, &err);
    if (rc != SESS_OK) {
        fprintf(stderr, "flushall: %s (%s)\n", sess_result_name(rc), err.msg);
        return 1;
    }
#endif
    routed(a, b);
    printf("# routed data: %s\n", failures ? "FAILED" : "ok");
    legacy(a, b);
    printf("# legacy (unrouted) data: %s\n", failures ? "FAILED" : "ok");
    coherence(a, b);
    sess_store_close(a);
    sess_store_close(b);
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
