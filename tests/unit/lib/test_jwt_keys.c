/*
 * test_jwt_keys.c - lib/jwt_keys.c: the signing key lifecycle (first key
 * current, later ones next; rotate refused before the JWKS max-age; the
 * retired key published until not_after, then dropped), tokens in flight
 * across a rotation, the JWKS document and its ETag, file permissions and
 * tampering, the development directory, and the reload slot.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwt_internal.h"
#include "testutil.h"

#define T0 1800000000
#define MAX_AGE 300
#define TTL 300
#define LEEWAY 30

static char *sign_now(const sess_sigkeys *k, int64_t now)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", "i", "sub", "u",
                          "aud", "a", "iat", (json_int_t)now, "exp",
                          (json_int_t)now + TTL);
    char *tok = NULL;
    assert_int_equal(sess_jwt_sign(k, c, NULL, &tok, NULL), SESS_OK);
    json_decref(c);
    return tok;
}

static int verify_at(const sess_sigkeys *k, const char *tok, int64_t now,
                     sess_jwt_reason *why)
{
    sess_jwt_verify_opts o;
    sess_jwt_verify_opts_init(&o);
    o.algs = SESS_JWT_ALGS_SESSIOND;
    o.audience = "a";
    o.issuer = "i";
    o.now = now;
    return sess_jwt_verify(sess_sigkeys_jwks(k), tok, strlen(tok), &o, NULL, why,
                           NULL);
}

static sess_sigkeys *load(const char *dir, int64_t now)
{
    sess_sigkeys *k = NULL;
    sess_err err = {0};
    if (sess_sigkeys_load_dir(dir, 0, now, &k, &err) != SESS_OK)
        fail_msg("load: %s", err.msg);
    return k;
}

static void test_lifecycle_and_rotation(void **state)
{
    (void)state;
    char dir[256], a[SESS_KID_MAX + 1], b[SESS_KID_MAX + 1];
    sess_sigkey_info *list = NULL;
    size_t n = 0;
    sess_err err = {0};
    sess_jwt_reason why;

    test_tmpdir(dir, sizeof dir);
    assert_int_equal(sess_sigkeys_generate(dir, SESS_SIGKEY_ED25519, T0, a, &err), SESS_OK);
    assert_int_equal(strlen(a), 43);
    sess_sigkeys *k1 = load(dir, T0);
    assert_string_equal(sess_sigkeys_current_kid(k1), a);   /* first: current */
    char *old = sign_now(k1, T0);
    assert_int_equal(verify_at(k1, old, T0, &why), SESS_OK);

    /* A second key waits as next: published, not signing. */
    assert_int_equal(sess_sigkeys_generate(dir, SESS_SIGKEY_P256, T0 + 10, b, &err), SESS_OK);
    sess_sigkeys *k2 = load(dir, T0 + 10);
    assert_string_equal(sess_sigkeys_current_kid(k2), a);
    assert_non_null(strstr(sess_sigkeys_jwks_json(k2, NULL), b));
    assert_string_not_equal(sess_sigkeys_jwks_etag(k1), sess_sigkeys_jwks_etag(k2));

    /* Rotation before the next key has been published for the max-age is
     * refused and changes nothing. */
    assert_int_equal(sess_sigkeys_rotate(dir, T0 + 10 + MAX_AGE - 1, MAX_AGE, TTL,
                                         LEEWAY, &err), SESS_REJECTED);
    assert_non_null(strstr(err.msg, "max-age"));
    sess_sigkeys *k2b = load(dir, T0 + 20);
    assert_string_equal(sess_sigkeys_current_kid(k2b), a);
    assert_string_equal(sess_sigkeys_jwks_etag(k2), sess_sigkeys_jwks_etag(k2b));
    sess_sigkeys_free(k2b);

    int64_t tr = T0 + 10 + MAX_AGE;
    assert_int_equal(sess_sigkeys_rotate(dir, tr, MAX_AGE, TTL, LEEWAY, &err), SESS_OK);
    /* No next key left: a second rotate is refused. */
    assert_int_equal(sess_sigkeys_rotate(dir, tr, MAX_AGE, TTL, LEEWAY, &err),
                     SESS_REJECTED);
    sess_sigkeys *k3 = load(dir, tr);
    assert_string_equal(sess_sigkeys_current_kid(k3), b);
    char *fresh = sign_now(k3, tr);
    assert_non_null(strstr(fresh, "."));
    /* Tokens in flight from the old key still verify (published key),
     * and the new key's tokens verify with the JWKS cached before. */
    assert_int_equal(verify_at(k3, old, tr, &why), SESS_OK);
    assert_int_equal(verify_at(k2, fresh, tr, &why), SESS_OK);

    assert_int_equal(sess_sigkeys_list(dir, tr, &list, &n, &err), SESS_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].kid, a) == 0) {
            assert_int_equal(list[i].state, SESS_SIGKEY_RETIRED);
            assert_int_equal(list[i].retired_at, tr);
            assert_int_equal(list[i].not_after, tr + TTL + LEEWAY);
            assert_true(list[i].published);
        } else {
            assert_int_equal(list[i].state, SESS_SIGKEY_CURRENT);
            assert_int_equal(list[i].activated, tr);
            assert_int_equal(list[i].type, SESS_SIGKEY_P256);
        }
    }
    free(list);

    /* After not_after the retired key is left out: its tokens expired. */
    sess_sigkeys *k4 = load(dir, tr + TTL + LEEWAY);
    assert_int_equal(sess_jwks_count(sess_sigkeys_jwks(k4)), 1);
    assert_null(strstr(sess_sigkeys_jwks_json(k4, NULL), a));
    assert_int_equal(verify_at(k4, old, T0, &why), SESS_REJECTED);
    assert_int_equal(why, SESS_JWT_R_KID);

    /* Retire the current key: nothing signs until a rotate. */
    assert_int_equal(sess_sigkeys_retire(dir, b, tr + 1, TTL, LEEWAY, &err), SESS_OK);
    assert_int_equal(sess_sigkeys_retire(dir, b, tr + 1, TTL, LEEWAY, &err), SESS_REJECTED);
    assert_int_equal(sess_sigkeys_retire(dir, "nope", tr + 1, TTL, LEEWAY, &err),
                     SESS_NOTFOUND);
    sess_sigkeys *k5 = load(dir, tr + 2);
    assert_null(sess_sigkeys_current_kid(k5));
    char *none = (char *)1;
    json_t *c = json_object();
    assert_int_equal(sess_jwt_sign(k5, c, NULL, &none, NULL), SESS_ENOKEY);
    assert_null(none);
    json_decref(c);
    /* Keys are still published (retired, before not_after): a new key
     * waits as next even though none is current, so verifiers' cached
     * JWKS get it before it signs. */
    char c3[SESS_KID_MAX + 1];
    assert_int_equal(sess_sigkeys_generate(dir, SESS_SIGKEY_ED25519, tr + 3, c3, &err),
                     SESS_OK);
    assert_int_equal(sess_sigkeys_list(dir, tr + 3, &list, &n, &err), SESS_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].kid, c3) == 0)
            assert_int_equal(list[i].state, SESS_SIGKEY_NEXT);
    free(list);

    free(old);
    free(fresh);
    sess_sigkeys_free(k1);
    sess_sigkeys_free(k2);
    sess_sigkeys_free(k3);
    sess_sigkeys_free(k4);
    sess_sigkeys_free(k5);
    test_rmdir(dir);
}

static void test_jwks_document(void **state)
{
    (void)state;
    char dir[256];
    size_t len = 0;
    sess_jwks *parsed = NULL;

    test_tmpdir(dir, sizeof dir);
    for (int t = 0; t < 3; t++)
        assert_int_equal(sess_sigkeys_generate(dir, (sess_sigkey_type)t, T0 + t, NULL,
                                               NULL), SESS_OK);
    sess_sigkeys *k = load(dir, T0 + 5), *again = load(dir, T0 + 6);
    const char *doc = sess_sigkeys_jwks_json(k, &len);
    assert_int_equal(len, strlen(doc));
    /* Public members only, use sig, an alg per key. */
    assert_null(strstr(doc, "\"d\""));
    assert_null(strstr(doc, "\"p\""));
    assert_non_null(strstr(doc, "\"alg\":\"EdDSA\""));
    assert_non_null(strstr(doc, "\"alg\":\"ES256\""));
    assert_non_null(strstr(doc, "\"alg\":\"RS256\""));
    assert_non_null(strstr(doc, "\"use\":\"sig\""));
    /* Same keys, same bytes, same ETag (a quoted strong validator). */
    assert_string_equal(doc, sess_sigkeys_jwks_json(again, NULL));
    assert_string_equal(sess_sigkeys_jwks_etag(k), sess_sigkeys_jwks_etag(again));
    assert_int_equal(sess_sigkeys_jwks_etag(k)[0], '"');
    /* Our own parser takes it back. */
    assert_int_equal(sess_jwks_parse(doc, len, &parsed, NULL), SESS_OK);
    assert_int_equal(sess_jwks_count(parsed), 3);
    sess_jwks_free(parsed);

    /* The RFC 9864 name: alg "Ed25519" in the JWKS and in tokens. */
    sess_sigkeys *named = NULL;
    assert_int_equal(sess_sigkeys_load_dir(dir, SESS_SIGKEYS_ED25519_NAME, T0 + 5,
                                           &named, NULL), SESS_OK);
    assert_non_null(strstr(sess_sigkeys_jwks_json(named, NULL), "\"alg\":\"Ed25519\""));
    assert_string_not_equal(sess_sigkeys_jwks_etag(named), sess_sigkeys_jwks_etag(k));
    char *tok = sign_now(named, T0 + 5);
    assert_int_equal(verify_at(named, tok, T0 + 5, NULL), SESS_OK);
    free(tok);
    sess_sigkeys_free(named);
    sess_sigkeys_free(k);
    sess_sigkeys_free(again);
    test_rmdir(dir);
}

static void test_files_refused(void **state)
{
    (void)state;
    char dir[256], kid[SESS_KID_MAX + 1], path[512], other[SESS_KID_MAX + 1];
    sess_sigkeys *k = NULL;
    sess_err err = {0};

    test_tmpdir(dir, sizeof dir);
    assert_int_equal(sess_sigkeys_generate(dir, SESS_SIGKEY_ED25519, T0, kid, NULL), SESS_OK);
    snprintf(path, sizeof path, "%s/%s.pem", dir, kid);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A private key readable by the group: refused, named in the error. */
    chmod(path, 0640);
    assert_int_equal(sess_sigkeys_load_dir(dir, 0, T0, &k, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_null(k);
    chmod(path, 0600);

    /* A symlink in place of the key: not followed. */
    char moved[600];
    snprintf(moved, sizeof moved, "%s/elsewhere", dir);
    rename(path, moved);
    assert_int_equal(symlink(moved, path), 0);
    assert_int_equal(sess_sigkeys_load_dir(dir, 0, T0, &k, &err), SESS_ECONFIG);
    unlink(path);
    rename(moved, path);

    /* Another key's PEM under this kid (a swapped file): refused. */
    char dir2[256];
    test_tmpdir(dir2, sizeof dir2);
    assert_int_equal(sess_sigkeys_generate(dir2, SESS_SIGKEY_ED25519, T0, other, NULL),
                     SESS_OK);
    char src[512];
    snprintf(src, sizeof src, "%s/%s.pem", dir2, other);
    FILE *in = fopen(src, "r"), *out = fopen(path, "w");
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got, out);
    fclose(in);
    fclose(out);
    chmod(path, 0600);
    assert_int_equal(sess_sigkeys_load_dir(dir, 0, T0, &k, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "kid"));

    /* Damaged metadata: refused, nothing half-loaded. */
    snprintf(path, sizeof path, "%s/%s.json", dir2, other);
    out = fopen(path, "w");
    fputs("{\"kid\":\"x\",", out);
    fclose(out);
    assert_int_equal(sess_sigkeys_load_dir(dir2, 0, T0, &k, &err), SESS_ECONFIG);
    assert_null(k);

    /* Two current keys (a hand edit): refused. */
    char dir3[256], k1[SESS_KID_MAX + 1], k2[SESS_KID_MAX + 1];
    test_tmpdir(dir3, sizeof dir3);
    assert_int_equal(sess_sigkeys_generate(dir3, SESS_SIGKEY_ED25519, T0, k1, NULL), SESS_OK);
    assert_int_equal(sess_sigkeys_generate(dir3, SESS_SIGKEY_ED25519, T0, k2, NULL), SESS_OK);
    snprintf(path, sizeof path, "%s/%s.json", dir3, k2);
    in = fopen(path, "r");
    got = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    buf[got] = '\0';
    char *st_next = strstr(buf, "\"next\"");
    assert_non_null(st_next);
    char edited[4200];
    snprintf(edited, sizeof edited, "%.*s\"current\"%s", (int)(st_next - buf), buf,
             st_next + 6);
    out = fopen(path, "w");
    fputs(edited, out);
    fclose(out);
    assert_int_equal(sess_sigkeys_load_dir(dir3, 0, T0, &k, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "two current"));
    /* Two next keys: rotate refuses to guess. */
    test_rmdir(dir3);
    test_tmpdir(dir3, sizeof dir3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sess_sigkeys_generate(dir3, SESS_SIGKEY_ED25519, T0, NULL, NULL),
                         SESS_OK);
    assert_int_equal(sess_sigkeys_rotate(dir3, T0 + 1000, MAX_AGE, TTL, LEEWAY, &err),
                     SESS_REJECTED);
    assert_non_null(strstr(err.msg, "next keys"));

    test_rmdir(dir);
    test_rmdir(dir2);
    test_rmdir(dir3);
}

static void test_dev_create_and_slot(void **state)
{
    (void)state;
    char base[256], dir[300];
    sess_sigkeys *k = NULL;
    sess_sigkeys_slot *slot = NULL;

    test_tmpdir(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/token-keys", base);
    /* Without the flag a missing directory is a configuration error. */
    assert_int_equal(sess_sigkeys_load_dir(dir, 0, 0, &k, NULL), SESS_ECONFIG);
    assert_int_equal(sess_sigkeys_load_dir(dir, SESS_SIGKEYS_CREATE, 0, &k, NULL), SESS_OK);
    assert_non_null(sess_sigkeys_current_kid(k));
    assert_non_null(strstr(sess_sigkeys_jwks_json(k, NULL), "\"crv\":\"Ed25519\""));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* The slot: a reader's reference outlives a swap. */
    assert_int_equal(sess_sigkeys_slot_new(k, &slot), SESS_OK);
    sess_sigkeys *held = sess_sigkeys_slot_get(slot);
    assert_ptr_equal(held, k);
    sess_sigkeys *k2 = NULL;
    assert_int_equal(sess_sigkeys_load_dir(dir, SESS_SIGKEYS_CREATE, 0, &k2, NULL), SESS_OK);
    sess_sigkeys_slot_set(slot, k2);
    char *tok = sign_now(held, T0);     /* the old keyring still works */
    assert_int_equal(verify_at(k2, tok, T0, NULL), SESS_OK);
    free(tok);
    sess_sigkeys_free(held);
    sess_sigkeys *now = sess_sigkeys_slot_get(slot);
    assert_ptr_equal(now, k2);
    sess_sigkeys_free(now);
    sess_sigkeys_slot_free(slot);
    test_rmdir(base);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(sess_sigkey_type_from_name("p256"), SESS_SIGKEY_P256);
    assert_int_equal(sess_sigkey_type_from_name("dsa"), -1);
    assert_string_equal(sess_sigkey_type_name(SESS_SIGKEY_RSA), "rsa");
    assert_string_equal(sess_sigkey_state_name(SESS_SIGKEY_RETIRED), "retired");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_and_rotation),
        cmocka_unit_test(test_jwks_document),
        cmocka_unit_test(test_files_refused),
        cmocka_unit_test(test_dev_create_and_slot),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("jwt_keys", tests, NULL, NULL);
}
