/*
 * test_record_cache.c - the opened-record cache (lib/record_cache.c) on its
 * own, and through sessions: an entry answers only for the very blob it
 * was opened from under the same keyring generation; full sets evict;
 * drop, clear and oversized plaintexts; and, with two contexts on one
 * LMDB store (two processes, in effect), a cached session that the other
 * context destroys, changes or rotates is never served from the cache;
 * and four threads changing 64 sessions through a 16-entry cache, where
 * every view must be one whole record of the session asked for.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "crypto.h"
#include "record_cache.h"

/* A blob shaped like a sealed record: version, key id, nonce, body, tag. */
static size_t fake_blob(uint8_t *b, uint8_t fill, size_t body)
{
    size_t n = 0;
    b[n++] = 1;
    b[n++] = 3;
    memcpy(b + n, "kid", 3);
    n += 3;
    memset(b + n, fill, SESS__NONCE_BYTES + body + SESS__TAG_BYTES);
    return n + SESS__NONCE_BYTES + body + SESS__TAG_BYTES;
}

static void key_of(uint8_t key[32], unsigned i)
{
    memset(key, 0, 32);
    key[8] = (uint8_t)i;        /* the set (with one set: always 0) */
    key[16] = (uint8_t)i;       /* the tag */
    key[31] = (uint8_t)(i >> 8);
}

static void test_hit_only_for_the_same_blob(void **state)
{
    (void)state;
    sess__rcache *c = sess__rcache_new(64);
    uint8_t key[32], blob[128], other[128];
    sess_store_buf pt = {0};
    size_t n = fake_blob(blob, 0xA5, 40), used, slots;

    assert_non_null(c);
    key_of(key, 1);
    assert_false(sess__rcache_get(c, key, 0, blob, n, &pt));
    sess__rcache_put(c, key, 0, blob, n, (const uint8_t *)"plain", 5);
    assert_true(sess__rcache_get(c, key, 0, blob, n, &pt));
    assert_int_equal(pt.len, 5);
    assert_memory_equal(pt.data, "plain", 5);
    sess__rcache_usage(c, &used, &slots);
    assert_int_equal(used, 1);
    assert_true(slots >= 64);

    /* Another nonce, another tag, another length, another key id, or
     * another keyring generation: a miss. */
    memcpy(other, blob, n);
    other[5] ^= 1;
    assert_false(sess__rcache_get(c, key, 0, other, n, &pt));
    memcpy(other, blob, n);
    other[n - 1] ^= 1;
    assert_false(sess__rcache_get(c, key, 0, other, n, &pt));
    assert_false(sess__rcache_get(c, key, 0, blob, n - 1, &pt));
    memcpy(other, blob, n);
    other[2] = 'K';
    assert_false(sess__rcache_get(c, key, 0, other, n, &pt));
    assert_false(sess__rcache_get(c, key, 1, blob, n, &pt));
    /* Not shaped like a sealed record: never cached, never a hit. */
    assert_false(sess__rcache_get(c, key, 0, blob, 2, &pt));

    /* A new blob for the key replaces the old one. */
    size_t m = fake_blob(other, 0x5A, 40);
    sess__rcache_put(c, key, 0, other, m, (const uint8_t *)"newer", 5);
    assert_false(sess__rcache_get(c, key, 0, blob, n, &pt));
    assert_true(sess__rcache_get(c, key, 0, other, m, &pt));
    assert_memory_equal(pt.data, "newer", 5);
    sess__rcache_usage(c, &used, &slots);
    assert_int_equal(used, 1);

    sess__rcache_drop(c, key);
    assert_false(sess__rcache_get(c, key, 0, other, m, &pt));
    sess__rcache_usage(c, &used, &slots);
    assert_int_equal(used, 0);
    sess_store_buf_free(&pt);
    sess__rcache_free(c);
}

static void test_full_set_evicts_and_clear_empties(void **state)
{
    (void)state;
    sess__rcache *c = sess__rcache_new(4);      /* one set of four ways */
    uint8_t key[32], blob[128];
    sess_store_buf pt = {0};
    size_t n = fake_blob(blob, 0x11, 16), used, slots, hits = 0;

    assert_non_null(c);
    for (unsigned i = 0; i < 20; i++) {
        key_of(key, i);
        sess__rcache_put(c, key, 7, blob, n, (const uint8_t *)&i, sizeof i);
    }
    sess__rcache_usage(c, &used, &slots);
    assert_int_equal(slots, 4);
    assert_int_equal(used, 4);
    for (unsigned i = 0; i < 20; i++) {
        key_of(key, i);
        if (sess__rcache_get(c, key, 7, blob, n, &pt)) {
            unsigned got;
            memcpy(&got, pt.data, sizeof got);
            assert_int_equal(got, i);          /* never another key's */
            hits++;
        }
    }
    assert_int_equal(hits, 4);
    sess__rcache_clear(c);
    sess__rcache_usage(c, &used, &slots);
    assert_int_equal(used, 0);
    for (unsigned i = 0; i < 20; i++) {
        key_of(key, i);
        assert_false(sess__rcache_get(c, key, 7, blob, n, &pt));
    }
    sess_store_buf_free(&pt);
    sess__rcache_free(c);
}

static void test_oversized_plaintext_is_not_cached(void **state)
{
    (void)state;
    sess__rcache *c = sess__rcache_new(16);
    uint8_t key[32], blob[128], big[2048];
    sess_store_buf pt = {0};
    size_t n = fake_blob(blob, 0x22, 16);

    memset(big, 'x', sizeof big);
    key_of(key, 3);
    sess__rcache_put(c, key, 0, blob, n, (const uint8_t *)"small", 5);
    /* A record that grew past a slot also takes the old entry away. */
    sess__rcache_put(c, key, 0, blob, n, big, sizeof big);
    assert_false(sess__rcache_get(c, key, 0, blob, n, &pt));
    sess_store_buf_free(&pt);
    sess__rcache_free(c);
    assert_null(sess__rcache_new(0));
}

static void test_admission_when_full_and_missing(void **state)
{
    (void)state;
    sess__rcache *c = sess__rcache_new(4);
    uint8_t key[32], blob[128];
    sess_store_buf pt = {0};
    size_t n = fake_blob(blob, 0x33, 16);
    int admitted = 0;

    /* Room left: always. */
    assert_true(sess__rcache_admit(c));
    for (unsigned i = 0; i < 4; i++) {
        key_of(key, i);
        sess__rcache_put(c, key, 0, blob, n, (const uint8_t *)"p", 1);
    }
    /* Full and every lookup a miss (records in use outnumber the
     * slots): one miss in 16 gets in. */
    for (unsigned i = 100; i < 1100; i++) {
        key_of(key, i);
        assert_false(sess__rcache_get(c, key, 0, blob, n, &pt));
    }
    for (int i = 0; i < 160; i++)
        admitted += sess__rcache_admit(c);
    assert_int_equal(admitted, 10);
    /* Hits again: every miss is kept. */
    for (unsigned i = 0; i < 2000; i++) {
        key_of(key, i % 4);
        assert_true(sess__rcache_get(c, key, 0, blob, n, &pt));
    }
    assert_true(sess__rcache_admit(c));
    assert_false(sess__rcache_admit(NULL));
    sess_store_buf_free(&pt);
    sess__rcache_free(c);
}

/* ---- through sessions ---------------------------------------------------- */

static const sess_client cl = {"198.51.100.4", "Mozilla/5.0 cache"};

/* A context on the LMDB store in "dir" (another context on the same
 * directory is what another process would be). */
static sess_ctx *lmdb_ctx(const char *dir, test_clock *clk, uint32_t rotate,
                          uint32_t cache_entries)
{
    static const uint8_t k[1][SESS_KEY_BYTES] = {{42}};
    const char *kid[1] = {"cache-key"};
    char url[600];
    sess_keyring *kr;
    sess_store *st;
    sess_store_options so;
    sess_config cfg;
    sess_ctx *ctx;

    memset(&so, 0, sizeof so);
    snprintf(url, sizeof url, "lmdb:%s", dir);
    assert_int_equal(sess_store_open(url, &so, &st, NULL), SESS_OK);
    assert_int_equal(sess_keyring_from_keys(kid, k, 1, &kr, NULL), SESS_OK);
    sess_config_defaults(&cfg);
    cfg.rotate_interval = rotate;
    cfg.rotation_grace = rotate ? 10 : 0;
    cfg.record_cache_entries = cache_entries;
    assert_int_equal(sess_ctx_new(&cfg, st, kr, &ctx, NULL), SESS_OK);
    sess_ctx_set_clock(ctx, test_clock_read, clk);
    return ctx;
}

static uint64_t hits_of(sess_ctx *ctx)
{
    sess_stats s;
    assert_int_equal(sess_get_stats(ctx, &s, NULL), SESS_OK);
    return s.record_cache_hits;
}

static int check(sess_ctx *ctx, const char *id, sess_view *v)
{
    sess_err err;
    int rc = sess_validate(ctx, id, strlen(id), &cl,
                           SESS_VALIDATE_WANT_DATA | SESS_VALIDATE_NO_TOUCH, v,
                           &err);
    return rc;
}

static void test_two_contexts_stay_coherent(void **state)
{
    (void)state;
    char dir[256];
    test_clock clk = {1800000000};
    sess_ctx *a, *b;
    sess_issued s;
    sess_view v;
    uint64_t version = 0;

    test_tmpdir(dir, sizeof dir);
    a = lmdb_ctx(dir, &clk, 0, 65536);
    b = lmdb_ctx(dir, &clk, 0, 65536);
    sess_create_req req = {.user_id = "carol", .user_id_len = 5, .client = cl,
                           .data = "{\"v\":1}", .data_len = 7};
    assert_int_equal(sess_create(b, &req, &s, NULL, NULL), SESS_OK);

    /* a opens it once, then answers from its cache. */
    assert_int_equal(check(a, s.id, &v), SESS_OK);
    sess_view_clear(&v);
    uint64_t h0 = hits_of(a);
    assert_int_equal(check(a, s.id, &v), SESS_OK);
    assert_string_equal(v.data, "{\"v\":1}");
    sess_view_clear(&v);
    assert_int_equal(hits_of(a), h0 + 1);

    /* b changes the data: a sees the new record at once. */
    assert_int_equal(sess_set_data(b, s.id, SESS_ID_LEN, "{\"v\":2}", 7, -1,
                                   &version, NULL, NULL), SESS_OK);
    assert_int_equal(check(a, s.id, &v), SESS_OK);
    assert_string_equal(v.data, "{\"v\":2}");
    assert_int_equal(v.data_version, version);
    sess_view_clear(&v);

    /* b destroys it: a says unknown, cache or not. */
    assert_int_equal(check(a, s.id, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(sess_destroy(b, s.id, SESS_ID_LEN, NULL), SESS_OK);
    assert_int_equal(check(a, s.id, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_UNKNOWN);
    sess_view_clear(&v);

    sess_ctx_free(a);
    sess_ctx_free(b);
    test_rmdir(dir);
}

static void test_rotation_by_another_context(void **state)
{
    (void)state;
    char dir[256];
    test_clock clk = {1800000000};
    sess_ctx *a, *b;
    sess_issued s;
    sess_view v, w;

    test_tmpdir(dir, sizeof dir);
    a = lmdb_ctx(dir, &clk, 60, 65536);
    b = lmdb_ctx(dir, &clk, 60, 65536);
    sess_create_req req = {.user_id = "dave", .user_id_len = 4, .client = cl};
    assert_int_equal(sess_create(a, &req, &s, NULL, NULL), SESS_OK);
    assert_int_equal(check(a, s.id, &v), SESS_OK);     /* cached in a */
    sess_view_clear(&v);

    /* Past the interval b rotates it; a must see the tombstone, not its
     * cached live record, and hand out b's successor. */
    clk.now += 61;
    assert_int_equal(sess_validate(b, s.id, SESS_ID_LEN, &cl, 0, &v, NULL),
                     SESS_OK);
    assert_true(v.rotated);
    assert_int_equal(sess_validate(a, s.id, SESS_ID_LEN, &cl, 0, &w, NULL),
                     SESS_OK);
    assert_true(w.rotated);
    assert_string_equal(w.successor.id, v.successor.id);
    sess_view_clear(&v);
    sess_view_clear(&w);

    /* After the grace the old ID is dead in a as well. */
    clk.now += 11;
    assert_int_equal(check(a, s.id, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_REVOKED);
    sess_view_clear(&v);
    sess_ctx_free(a);
    sess_ctx_free(b);
    test_rmdir(dir);
}

static void test_dropped_key_is_not_served_from_cache(void **state)
{
    (void)state;
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_issued s;
    sess_view v;
    sess_keyring *kr;
    static const uint8_t k[1][SESS_KEY_BYTES] = {{77}};
    const char *kid[1] = {"replacement"};
    sess_create_req req = {.user_id = "erin", .user_id_len = 4, .client = cl};

    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_OK);
    assert_int_equal(check(ctx, s.id, &v), SESS_OK);
    sess_view_clear(&v);
    assert_int_equal(check(ctx, s.id, &v), SESS_OK);   /* from the cache */
    sess_view_clear(&v);
    /* The only key that sealed it goes away (allow_drop): the session is
     * gone, though its plaintext was cached a moment ago. */
    assert_int_equal(sess_keyring_from_keys(kid, k, 1, &kr, NULL), SESS_OK);
    assert_int_equal(sess_ctx_reload_keys(ctx, kr, true, NULL), SESS_OK);
    assert_int_equal(check(ctx, s.id, &v), SESS_REJECTED);
    assert_int_equal(v.reason, SESS_REASON_UNKNOWN);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

/* Threads validating and changing the same sessions through a cache much
 * smaller than them (evictions all the time, under contention): a view must
 * always be one whole record of the session asked for. */
enum { STRESS_SESSIONS = 64, STRESS_THREADS = 4, STRESS_OPS = 4000 };

typedef struct stress {
    sess_ctx *ctx;
    char ids[STRESS_SESSIONS][SESS_ID_LEN + 1];
} stress;

typedef struct stress_arg {
    stress *st;
    unsigned seed;
    int bad, validated, written;
} stress_arg;

static void *stress_thread(void *p)
{
    stress_arg *a = p;
    for (int i = 0; i < STRESS_OPS; i++) {
        unsigned k = (unsigned)rand_r(&a->seed) % STRESS_SESSIONS;
        const char *id = a->st->ids[k];
        sess_view v;
        int rc = sess_validate(a->st->ctx, id, SESS_ID_LEN, &cl,
                               SESS_VALIDATE_WANT_DATA | SESS_VALIDATE_NO_TOUCH, &v, NULL);
        if (rc != SESS_OK) {
            a->bad++;
            sess_view_clear(&v);
            continue;
        }
        unsigned u = 0;
        unsigned long long ver = 0;
        if (sscanf(v.data, "{\"u\":%u,\"v\":%llu}", &u, &ver) != 2 || u != k ||
            ver != v.data_version)
            a->bad++;
        a->validated++;
        if (rand_r(&a->seed) % 4 == 0) {
            char data[64];
            int n = snprintf(data, sizeof data, "{\"u\":%u,\"v\":%llu}", k,
                             (unsigned long long)v.data_version + 1);
            rc = sess_set_data(a->st->ctx, id, SESS_ID_LEN, data, (size_t)n,
                               (int64_t)v.data_version, NULL, NULL, NULL);
            if (rc == SESS_OK)
                a->written++;
            else if (rc != SESS_CONFLICT)
                a->bad++;
        }
        sess_view_clear(&v);
    }
    return NULL;
}

static void test_concurrent_changes_through_a_small_cache(void **state)
{
    (void)state;
    char dir[256];
    test_clock clk = {1800000000};
    stress st;
    pthread_t th[STRESS_THREADS];
    stress_arg args[STRESS_THREADS];
    int validated = 0, written = 0;

    test_tmpdir(dir, sizeof dir);
    st.ctx = lmdb_ctx(dir, &clk, 0, 16);
    for (unsigned i = 0; i < STRESS_SESSIONS; i++) {
        char user[32], data[64];
        int un = snprintf(user, sizeof user, "stress-%u", i);
        int dn = snprintf(data, sizeof data, "{\"u\":%u,\"v\":0}", i);
        sess_create_req req = {.user_id = user, .user_id_len = (size_t)un,
                               .client = cl, .data = data, .data_len = (size_t)dn};
        sess_issued s;
        assert_int_equal(sess_create(st.ctx, &req, &s, NULL, NULL), SESS_OK);
        memcpy(st.ids[i], s.id, sizeof st.ids[i]);
        sess_wipe(&s, sizeof s);
    }
    for (int t = 0; t < STRESS_THREADS; t++) {
        args[t] = (stress_arg){.st = &st, .seed = 1234u + (unsigned)t};
        assert_int_equal(pthread_create(&th[t], NULL, stress_thread, &args[t]), 0);
    }
    for (int t = 0; t < STRESS_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].bad, 0);
        validated += args[t].validated;
        written += args[t].written;
    }
    assert_int_equal(validated, STRESS_THREADS * STRESS_OPS);
    assert_true(written > STRESS_OPS / 2);
    sess_stats stats;
    assert_int_equal(sess_get_stats(st.ctx, &stats, NULL), SESS_OK);
    assert_true(stats.record_cache_hits > 0);
    assert_true(stats.record_cache_misses > 0);
    assert_int_equal(stats.record_cache_slots, 16);
    sess_wipe(st.ids, sizeof st.ids);
    sess_ctx_free(st.ctx);
    test_rmdir(dir);
}

static void test_cache_off(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_issued s;
    sess_view v;
    sess_stats st;

    sess_config_defaults(&cfg);
    cfg.record_cache_entries = 0;
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    sess_create_req req = {.user_id = "finn", .user_id_len = 4, .client = cl};
    assert_int_equal(sess_create(ctx, &req, &s, NULL, NULL), SESS_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(check(ctx, s.id, &v), SESS_OK);
        sess_view_clear(&v);
    }
    assert_int_equal(sess_get_stats(ctx, &st, NULL), SESS_OK);
    assert_int_equal(st.record_cache_hits, 0);
    assert_int_equal(st.record_cache_slots, 0);
    sess_ctx_free(ctx);

    cfg.record_cache_entries = (1u << 24) + 1;
    sess_err err;
    assert_int_equal(sess_config_check(&cfg, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "store.record_cache"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_only_for_the_same_blob),
        cmocka_unit_test(test_full_set_evicts_and_clear_empties),
        cmocka_unit_test(test_oversized_plaintext_is_not_cached),
        cmocka_unit_test(test_admission_when_full_and_missing),
        cmocka_unit_test(test_two_contexts_stay_coherent),
        cmocka_unit_test(test_rotation_by_another_context),
        cmocka_unit_test(test_dropped_key_is_not_served_from_cache),
        cmocka_unit_test(test_concurrent_changes_through_a_small_cache),
        cmocka_unit_test(test_cache_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
