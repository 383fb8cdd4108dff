/*
 * test_golden.c - formats that cannot silently change.  The v1 record
 * encoding (lib/record.c), the v1 sealed record and the key derivations
 * (lib/crypto.c, lib/util.c) against tests/golden/v1.txt, which
 * tests/golden/make_golden.py wrote from the documented formats with an
 * independent implementation; and an LMDB store written by release 0.1.0
 * (tests/fixtures/lmdb-v1, before the store had a format number), opened
 * and validated by the current code, stamped, and a store claiming a newer
 * format refused (lib/store_lmdb.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "record.h"
#include "testutil.h"
#include "util.h"

#define MAXV 8192

/* Bytes of the golden line "name", hex-decoded into "out"; its length. */
static size_t golden(const char *name, uint8_t *out, size_t cap)
{
    char path[1024], line[2 * MAXV + 256];
    snprintf(path, sizeof path, "%s/tests/golden/v1.txt", SESS_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t nlen = strlen(name), n = 0;
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, nlen) != 0 || strncmp(line + nlen, " = ", 3) != 0)
            continue;
        const char *h = line + nlen + 3;
        while (h[0] && h[1] && h[0] != '\n') {
            unsigned v;
            assert_true(n < cap);
            assert_int_equal(sscanf(h, "%2x", &v), 1);
            out[n++] = (uint8_t)v;
            h += 2;
        }
        found = true;
        break;
    }
    fclose(f);
    assert_true(found);
    return n;
}

static void seq(uint8_t *p, uint8_t start, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(start + i);
}

static const char *const kid[] = {"golden-key-1"};

static sess_keyring *golden_keyring(void)
{
    uint8_t key[1][SESS_KEY_BYTES];
    sess_keyring *kr;
    sess_err err;
    assert_int_equal(golden("key", key[0], sizeof key[0]), SESS_KEY_BYTES);
    assert_int_equal(sess_keyring_from_keys(kid, (const uint8_t(*)[SESS_KEY_BYTES])key,
                                            1, &kr, &err), SESS_OK);
    return kr;
}

/* The records of make_golden.py, built field by field. */
static void record_a(sess__record *r)
{
    memset(r, 0, sizeof *r);
    r->state = SESS__ACTIVE;
    r->flags = SESS__F_REMEMBER | SESS__F_HAS_UA;
    r->ip_family = 4;
    r->created_at = 1800000000;
    r->issued_at = 1800000000;
    r->last_seen_at = 1800000010;
    r->idle_expires_at = 1800001800;
    r->abs_expires_at = 1800086400;
    r->data_version = 3;
    r->login_order = (1800000000ull << 20) | 7;
    seq(r->handle, 0x10, 16);
    seq(r->csrf, 0x20, 32);
    memcpy(r->ip, "\xcb\x00\x71\x07", 4);
    seq(r->ua_hash, 0x60, 32);
    r->user_len = 5;
    memcpy(r->user, "alice", 5);
    r->ua_len = 18;
    memcpy(r->ua, "Mozilla/5.0 golden", 18);
    r->data = "{\"cart\":1}";
    r->data_len = 10;
}

static void record_b(sess__record *r)
{
    memset(r, 0, sizeof *r);
    r->state = SESS__ROTATED;
    r->flags = SESS__F_ELEVATED;
    r->ip_family = 6;
    r->created_at = 1700000000;
    r->issued_at = 1700000300;
    r->last_seen_at = 1700000300;
    r->idle_expires_at = 1700002100;
    r->abs_expires_at = 1700086400;
    r->data_version = 0;
    r->login_order = (1700000000ull << 20) | 1;
    seq(r->handle, 0x11, 16);
    seq(r->csrf, 0x21, 32);
    memcpy(r->ip, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    seq(r->ua_hash, 0x61, 32);
    r->prev_csrf_until = 1700000330;
    seq(r->prev_csrf, 0x81, 32);
    r->grace_until = 1700000330;
    seq(r->succ_key, 0x91, 32);
    seq(r->succ_wrap, 0xA1, SESS__WRAP_BYTES);
    r->user_len = 15;
    memcpy(r->user, "bob@example.org", 15);
    r->data = "";
}

static void check_record(void (*build)(sess__record *), const char *name)
{
    static uint8_t want[MAXV], got[MAXV], again[MAXV];
    sess__record r, d;
    build(&r);
    size_t n = golden(name, want, sizeof want);
    assert_int_equal(sess__record_size(&r), n);
    sess__record_encode(&r, got);
    assert_memory_equal(got, want, n);
    /* The golden bytes decode, and encode back to themselves. */
    assert_int_equal(sess__record_decode(want, n, &d), SESS_OK);
    assert_int_equal(d.login_order, r.login_order);
    assert_int_equal(d.user_len, r.user_len);
    assert_memory_equal(d.user, r.user, r.user_len);
    assert_int_equal(sess__record_size(&d), n);
    sess__record_encode(&d, again);
    assert_memory_equal(again, want, n);
}

static void test_record_encoding_v1(void **state)
{
    (void)state;
    check_record(record_a, "record_a");
    check_record(record_b, "record_b");
}

/* Version 2 (docs/architecture.md, "On-disk formats"): v1 plus the TOKEN
 * section.  No golden file yet: the layout is checked by a round trip and
 * by the rules that keep one encoding per record - a record without a
 * refresh token stays v1, the section needs v2, v2 needs the section, and
 * only an active record carries it. */
static void test_record_encoding_v2(void **state)
{
    static uint8_t buf[MAXV], again[MAXV];
    sess__record r, d;
    (void)state;
    record_a(&r);
    sess__record_encode(&r, buf);
    assert_int_equal(buf[0], 1);                 /* no token: still v1 */
    r.rt_expires_at = 1700090000;
    r.rt_prev_until = 1700000030;
    r.at_iat = 1700000000;
    r.at_exp = 1700000300;
    seq(r.rt_hash, 0xB1, 32);
    seq(r.rt_prev_hash, 0xC1, 32);
    seq(r.rt_succ_wrap, 0xD1, SESS__WRAP_BYTES);
    seq(r.at_jti, 0xE1, 16);
    r.aud_len = 17;
    memcpy(r.aud, "\"api.example.com\"", 17);
    size_t n = sess__record_size(&r);
    sess__record_encode(&r, buf);
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[4] & 0x4, 0x4);
    assert_int_equal(sess__record_decode(buf, n, &d), SESS_OK);
    assert_int_equal(d.rt_expires_at, r.rt_expires_at);
    assert_int_equal(d.at_exp, r.at_exp);
    assert_memory_equal(d.rt_hash, r.rt_hash, 32);
    assert_memory_equal(d.rt_succ_wrap, r.rt_succ_wrap, SESS__WRAP_BYTES);
    assert_int_equal(d.aud_len, 17);
    assert_memory_equal(d.aud, r.aud, 17);
    assert_int_equal(d.data_len, r.data_len);
    sess__record_encode(&d, again);
    assert_memory_equal(again, buf, n);
    /* The section under version 1: an older layout must not read it. */
    buf[0] = 1;
    assert_int_equal(sess__record_decode(buf, n, &d), SESS_ECORRUPT);
    /* Version 2 without the section. */
    buf[0] = 2;
    buf[4] &= (uint8_t)~0x4u;
    assert_int_equal(sess__record_decode(buf, n, &d), SESS_ECORRUPT);
    /* Every truncation fails cleanly. */
    buf[4] |= 0x4u;
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(sess__record_decode(buf, cut, &d), SESS_ECORRUPT);
}

static void test_key_derivations_v1(void **state)
{
    (void)state;
    uint8_t want[32], secret[32], got[32];
    sess_keyring *kr = golden_keyring();
    /* HKDF-SHA256(file key, info "sessiond record v1"): the record key. */
    golden("hkdf_record_v1", want, sizeof want);
    assert_memory_equal(kr->keys[0].key, want, 32);
    sess_keyring_free(kr);

    golden("label_secret", secret, sizeof secret);
    sess__sha256_labeled("sessiond user v1", "alice", 5, got);
    golden("label_user_v1", want, sizeof want);
    assert_memory_equal(got, want, 32);
    sess__sha256_labeled("sessiond handle v1", secret, 32, got);
    golden("label_handle_v1", want, sizeof want);
    assert_memory_equal(got, want, 32);
    sess__sha256_labeled("sessiond successor wrap v1", secret, 32, got);
    golden("label_wrap_v1", want, sizeof want);
    assert_memory_equal(got, want, 32);
}

static void test_sealed_v1(void **state)
{
    (void)state;
    static uint8_t sealed[MAXV], rec[MAXV];
    uint8_t skey[32], sub[32];
    sess_store_buf out = {0};
    sess_err err;
    sess_keyring *kr = golden_keyring();
    size_t n = golden("sealed_a", sealed, sizeof sealed);
    size_t rn = golden("record_a", rec, sizeof rec);
    golden("seal_skey", skey, sizeof skey);
    golden("hkdf_record_v1", sub, sizeof sub);

    /* The golden sealed record opens to the golden record ... */
    assert_int_equal(sess__open(kr, skey, sealed, n, &out, &err), SESS_OK);
    assert_int_equal(out.len, rn);
    assert_memory_equal(out.data, rec, rn);
    /* ... and not under another storage key (the AAD binds it). */
    skey[0] ^= 1;
    assert_int_equal(sess__open(kr, skey, sealed, n, &out, &err), SESS_ECORRUPT);
    skey[0] ^= 1;

    /* What the code seals now has the v1 layout: the same header, and it
     * opens with plain EVP AES-256-GCM under the golden subkey with AAD
     * header || storage key (the nonce is random, so compare by opening). */
    assert_int_equal(sess__seal(kr, skey, rec, rn, &out, &err), SESS_OK);
    size_t hdr = 2 + strlen(kid[0]);
    assert_int_equal(out.len, hdr + 12 + rn + 16);
    assert_memory_equal(out.data, sealed, hdr);
    uint8_t aad[64], pt[MAXV];
    memcpy(aad, out.data, hdr);
    memcpy(aad + hdr, skey, 32);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len, ok;
    assert_non_null(c);
    ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, sub, out.data + hdr) &&
         EVP_DecryptUpdate(c, NULL, &len, aad, (int)(hdr + 32)) &&
         EVP_DecryptUpdate(c, pt, &len, out.data + hdr + 12, (int)rn) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
                             out.data + out.len - 16) &&
         EVP_DecryptFinal_ex(c, pt + len, &len) > 0;
    EVP_CIPHER_CTX_free(c);
    assert_true(ok);
    assert_memory_equal(pt, rec, rn);
    sess_store_buf_free(&out);
    sess_keyring_free(kr);
}

/* ---- the LMDB store of release 0.1.0 ------------------------------------- */

static uint64_t fixture_clock(void *u)
{
    (void)u;
    return 1800000000ull + 60; /* FIXTURE_NOW of make_lmdb_v1.c, plus 60 s */
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[8192];
    size_t n;
    assert_non_null(a);
    assert_non_null(b);
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

static sess_ctx *fixture_ctx(const char *dir, int *rc_out, sess_err *err)
{
    char url[512];
    sess_store *st;
    snprintf(url, sizeof url, "lmdb:%s", dir);
    *rc_out = sess_store_open(url, NULL, &st, err);
    if (*rc_out != SESS_OK)
        return NULL;
    sess_ctx *ctx;
    sess_config cfg;
    sess_config_defaults(&cfg);
    assert_int_equal(sess_ctx_new(&cfg, st, golden_keyring(), &ctx, err), SESS_OK);
    sess_ctx_set_clock(ctx, fixture_clock, NULL);
    return ctx;
}

static void validate_fixture_sessions(sess_ctx *ctx)
{
    char path[1024], user[64], id[64], handle[64], line[256];
    snprintf(path, sizeof path, "%s/tests/fixtures/lmdb-v1-sessions.txt",
             SESS_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        assert_int_equal(sscanf(line, "%63s %63s %63s", user, id, handle), 3);
        sess_client cl = {"203.0.113.7", "fixture/1"};
        sess_view v;
        sess_err err;
        int rc = sess_validate(ctx, id, strlen(id), &cl, SESS_VALIDATE_WANT_DATA,
                               &v, &err);
        if (rc != SESS_OK)
            fail_msg("fixture session of %s: %s (%s)", user,
                     sess_result_name(rc), err.msg);
        assert_string_equal(v.user_id, user);
        assert_string_equal(v.handle, handle);
        assert_string_equal(v.data, "{\"n\":1}");
        sess_view_clear(&v);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 3);
}

static void test_lmdb_store_of_release_0_1_0(void **state)
{
    (void)state;
    char dir[256], from[1024], to[512];
    sess_err err;
    int rc;
    test_tmpdir(dir, sizeof dir);
    snprintf(from, sizeof from, "%s/tests/fixtures/lmdb-v1/data.mdb", SESS_SOURCE_DIR);
    snprintf(to, sizeof to, "%s/data.mdb", dir);
    copy_file(from, to);

    /* Opened (and stamped format 1), its sessions valid. */
    sess_ctx *ctx = fixture_ctx(dir, &rc, &err);
    if (!ctx)
        fail_msg("open: %s", err.msg);
    validate_fixture_sessions(ctx);
    sess_ctx_free(ctx);

    /* The stamp is there and a reopen reads it. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val k = {6, (void *)"format"}, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 4ull << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
    assert_int_equal(v.mv_size, 4);
    assert_memory_equal(v.mv_data, "\x01\0\0\0", 4);
    /* A newer library's store: format 2. */
    v.mv_data = (void *)"\x02\0\0\0";
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    ctx = fixture_ctx(dir, &rc, &err);
    assert_null(ctx);
    assert_int_equal(rc, SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "format 2"));

    /* A damaged number (wrong length) is corruption, not format 0. */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 4ull << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    v.mv_size = 2;
    v.mv_data = (void *)"\x01\0";
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    ctx = fixture_ctx(dir, &rc, &err);
    assert_null(ctx);
    assert_int_equal(rc, SESS_ECORRUPT);
    test_rmdir(dir);
}

static void test_lmdb_new_store_stamped(void **state)
{
    (void)state;
    char dir[256];
    sess_err err;
    int rc;
    test_tmpdir(dir, sizeof dir);
    sess_ctx *ctx = fixture_ctx(dir, &rc, &err);
    assert_non_null(ctx);
    sess_ctx_free(ctx);
    ctx = fixture_ctx(dir, &rc, &err); /* the stamp reads back */
    assert_non_null(ctx);
    sess_ctx_free(ctx);
    test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_encoding_v1),
        cmocka_unit_test(test_record_encoding_v2),
        cmocka_unit_test(test_key_derivations_v1),
        cmocka_unit_test(test_sealed_v1),
        cmocka_unit_test(test_lmdb_store_of_release_0_1_0),
        cmocka_unit_test(test_lmdb_new_store_stamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
