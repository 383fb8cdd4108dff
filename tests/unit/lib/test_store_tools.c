/*
 * test_store_tools.c - the helpers of the store tools (lib/store_tools.c):
 * the key id read from a sealed record's clear header (malformed headers
 * refused, never opened), key fingerprints (same key same fingerprint,
 * another key or the same id with other bytes a different one, nothing
 * that reveals the key), re-sealing under the newest key (the record
 * stays bound to its storage key; a record under a key the keyring lacks
 * or a damaged one is refused), and the progress entry (round trip,
 * reserved key skipped by walks, unindexed so never counted as a session,
 * a damaged entry refused).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "sess/store_migrate.h"

#define NOW 1000000u

static sess_keyring *ring(const char *kid1, uint8_t b1, const char *kid2, uint8_t b2)
{
    uint8_t keys[2][SESS_KEY_BYTES];
    const char *kids[2] = {kid1, kid2};
    for (int i = 0; i < SESS_KEY_BYTES; i++) {
        keys[0][i] = (uint8_t)(b1 + i);
        keys[1][i] = (uint8_t)(b2 + 3 * i);
    }
    sess_keyring *kr = NULL;
    assert_int_equal(sess_keyring_from_keys(kids, (const uint8_t (*)[SESS_KEY_BYTES])keys,
                                            kid2 ? 2 : 1, &kr, NULL),
                     SESS_OK);
    return kr;
}

static void seal_with(const sess_keyring *kr, const uint8_t *skey, sess_store_buf *out)
{
    static const uint8_t pt[] = "a record's plaintext";
    assert_int_equal(sess__seal(kr, skey, pt, sizeof pt, out, NULL), SESS_OK);
}

static void test_sealed_kid(void **state)
{
    (void)state;
    sess_keyring *kr = ring("k1", 1, NULL, 0);
    uint8_t skey[32] = {9};
    sess_store_buf b = {0};
    char kid[SESS_KID_MAX + 1];
    seal_with(kr, skey, &b);
    assert_int_equal(sess_sealed_kid(b.data, b.len, kid, sizeof kid), SESS_OK);
    assert_string_equal(kid, "k1");
    /* Truncated, wrong format byte, zero or oversized kid length. */
    assert_int_equal(sess_sealed_kid(b.data, 3, kid, sizeof kid), SESS_ECORRUPT);
    b.data[0] = 7;
    assert_int_equal(sess_sealed_kid(b.data, b.len, kid, sizeof kid), SESS_ECORRUPT);
    b.data[0] = SESS__SEAL_V1;
    b.data[1] = 0;
    assert_int_equal(sess_sealed_kid(b.data, b.len, kid, sizeof kid), SESS_ECORRUPT);
    b.data[1] = SESS_KID_MAX + 1;
    assert_int_equal(sess_sealed_kid(b.data, b.len, kid, sizeof kid), SESS_ECORRUPT);
    b.data[1] = 2;
    b.data[2] = 0x1b;                 /* an escape character is no key id */
    assert_int_equal(sess_sealed_kid(b.data, b.len, kid, sizeof kid), SESS_ECORRUPT);
    assert_int_equal(sess_sealed_kid(b.data, b.len, kid, 8), SESS_ECORRUPT);
    sess_store_buf_free(&b);
    sess_keyring_free(kr);
}

static void test_fingerprint(void **state)
{
    (void)state;
    sess_keyring *a = ring("k1", 1, NULL, 0), *b = ring("k1", 1, "k2", 50),
                 *c = ring("k1", 2, NULL, 0);
    uint8_t fa[32], fb[32], fc[32], f2[32];
    assert_int_equal(sess_keyring_fingerprint(a, "k1", fa), SESS_OK);
    assert_int_equal(sess_keyring_fingerprint(b, "k1", fb), SESS_OK);
    assert_int_equal(sess_keyring_fingerprint(c, "k1", fc), SESS_OK);
    assert_int_equal(sess_keyring_fingerprint(b, "k2", f2), SESS_OK);
    assert_memory_equal(fa, fb, 32);           /* same key, same print */
    assert_memory_not_equal(fa, fc, 32);       /* same id, other bytes */
    assert_memory_not_equal(fa, f2, 32);
    assert_int_equal(sess_keyring_fingerprint(a, "k2", f2), SESS_NOTFOUND);
    /* The print is not the derived key itself. */
    const sess__key *k = sess__keyring_find(a, "k1", 2);
    assert_memory_not_equal(fa, k->key, 32);
    sess_keyring_free(a);
    sess_keyring_free(b);
    sess_keyring_free(c);
}

static void test_reseal(void **state)
{
    (void)state;
    sess_keyring *old = ring("k1", 1, NULL, 0);
    sess_keyring *both = ring("k1", 1, "k2", 50);  /* k2 sorts newer */
    uint8_t skey[32] = {1, 2, 3}, other[32] = {4};
    sess_store_buf b = {0}, n = {0}, pt = {0};
    char kid[SESS_KID_MAX + 1];
    seal_with(old, skey, &b);
    assert_int_equal(sess_reseal(both, skey, b.data, b.len, &n, NULL), SESS_OK);
    assert_int_equal(sess_sealed_kid(n.data, n.len, kid, sizeof kid), SESS_OK);
    assert_string_equal(kid, "k2");
    assert_int_equal(sess__open(both, skey, n.data, n.len, &pt, NULL), SESS_OK);
    assert_string_equal((const char *)pt.data, "a record's plaintext");
    /* Still bound to its storage key. */
    assert_int_equal(sess__open(both, other, n.data, n.len, &pt, NULL), SESS_ECORRUPT);
    /* A keyring without the record's key, or a damaged record: refused. */
    sess_keyring *k2only = ring("k2", 50, NULL, 0);
    sess_store_buf x = {0};
    assert_int_equal(sess_reseal(k2only, skey, b.data, b.len, &x, NULL), SESS_ENOKEY);
    b.data[b.len - 1] ^= 1;
    assert_int_equal(sess_reseal(both, skey, b.data, b.len, &x, NULL), SESS_ECORRUPT);
    sess_store_buf_free(&b);
    sess_store_buf_free(&n);
    sess_store_buf_free(&pt);
    sess_store_buf_free(&x);
    sess_keyring_free(old);
    sess_keyring_free(both);
    sess_keyring_free(k2only);
}

static int count_cb(void *ctx, const sess_entry *e)
{
    size_t *n = ctx;
    if (!sess_store_is_state_key(e->key))
        n[0]++;
    else
        n[1]++;
    return 0;
}

static int grab_cb(void *ctx, const sess_entry *e)
{
    if (sess_store_is_state_key(e->key))
        memcpy(((sess_entry *)ctx)->key, e->key, SESS_STORE_KEY_BYTES);
    return 0;
}

static void test_progress(void **state)
{
    (void)state;
    sess_store *st;
    sess_err err = {0};
    assert_int_equal(sess_store_open("memory:", NULL, &st, &err), SESS_OK);
    sess_progress p, q;
    assert_int_equal(sess_progress_load(st, SESS_PROGRESS_MIGRATE, NOW, &q, &err), SESS_NOTFOUND);
    memset(&p, 0, sizeof p);
    p.kind = SESS_PROGRESS_MIGRATE;
    p.started_at = NOW - 5;
    p.updated_at = NOW;
    p.total = 1000;
    p.scanned = 400;
    p.copied = 390;
    p.skipped = 7;
    p.removed = 2;
    p.failed = 1;
    memset(p.source, 0xAB, sizeof p.source);
    p.cursor.len = 32;
    memset(p.cursor.pos, 0x5C, 32);
    assert_int_equal(sess_progress_save(st, &p, NOW, &err), SESS_OK);
    p.scanned = 500;                  /* a second save replaces the first */
    assert_int_equal(sess_progress_save(st, &p, NOW, &err), SESS_OK);
    assert_int_equal(sess_progress_load(st, SESS_PROGRESS_MIGRATE, NOW, &q, &err), SESS_OK);
    assert_memory_equal(&p.source, &q.source, 32);
    assert_int_equal(q.scanned, 500);
    assert_int_equal(q.failed, 1);
    assert_int_equal(q.cursor.len, 32);
    assert_memory_equal(q.cursor.pos, p.cursor.pos, 32);
    assert_int_equal(q.done, 0);
    /* Kinds are separate; the entry is not a session. */
    assert_int_equal(sess_progress_load(st, SESS_PROGRESS_REKEY, NOW, &q, &err), SESS_NOTFOUND);
    uint64_t n = 99;
    assert_int_equal(st->methods->count(st, NOW, &n, &err), SESS_OK);
    assert_int_equal(n, 0);
    size_t seen[2] = {0, 0};
    sess_store_cursor cur = {0};
    while (!cur.done)
        assert_int_equal(SESS_STORE_SCAN(st)(st, &cur, NOW, 16, count_cb, seen, &err), SESS_OK);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1], 1);     /* walks see it and must skip it */
    /* It expires 30 days after its last save. */
    assert_int_equal(sess_progress_load(st, SESS_PROGRESS_MIGRATE, NOW + 31u * 86400u, &q, &err),
                     SESS_NOTFOUND);
    /* A damaged entry is refused, not misread. */
    sess_entry cur_e;
    cur = (sess_store_cursor){0};
    memset(&cur_e, 0, sizeof cur_e);
    while (!cur.done)
        assert_int_equal(SESS_STORE_SCAN(st)(st, &cur, NOW, 16, grab_cb, &cur_e, &err), SESS_OK);
    assert_true(sess_store_is_state_key(cur_e.key));
    sess_store_buf b = {0};
    sess_entry e;
    assert_int_equal(st->methods->get(st, cur_e.key, NOW, &e, &b, &err), SESS_OK);
    uint8_t bad[16] = "SPRG-not-it";
    sess_entry ne = e;
    ne.blob = bad;
    ne.blob_len = sizeof bad;
    assert_int_equal(st->methods->update(st, &ne, e.blob, e.blob_len, NOW, &err), SESS_OK);
    assert_int_equal(sess_progress_load(st, SESS_PROGRESS_MIGRATE, NOW, &q, &err), SESS_ECORRUPT);
    sess_store_buf_free(&b);
    sess_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_kid),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_reseal),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests_name("store_tools", tests, NULL, NULL);
}
