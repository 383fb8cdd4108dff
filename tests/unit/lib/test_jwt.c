/*
 * test_jwt.c - lib/jwt.c and lib/jwk.c: the RFC 7520 (JOSE cookbook) and
 * RFC 8037 vectors, every Wycheproof JWS and JWK case that applies, and
 * our own attacks: alg none, HMAC with a public key, crit, unknown kid,
 * wrong aud / iss / typ, time claims with the leeway, non-canonical
 * base64url, duplicate JSON members, oversize tokens, ECDSA signature
 * shapes, keys that do not fit the alg, and verification from threads.
 *
 * Third-party vectors are read from SESS_TESTDATA; without it those tests
 * print why and skip.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jwt_internal.h"
#include "testutil.h"
#include "util.h"

#define ALL_ALGS 0x7FFu
#define NOW 1800000000

/* ---- helpers ------------------------------------------------------------ */

static json_t *load_vector(const char *rel)
{
    const char *root = test_testdata_dir();
    char path[1500];
    json_error_t e;
    json_t *j;

    if (root == NULL)
        return NULL;
    snprintf(path, sizeof path, "%s/%s", root, rel);
    j = json_load_file(path, 0, &e);
    if (j == NULL)
        print_message("SKIP: %s absent or unreadable\n", path);
    return j;
}

#define NEED_VECTOR(var, rel)                                                 \
    json_t *var = load_vector(rel);                                           \
    if (var == NULL) {                                                        \
        print_message("SKIP: SESS_TESTDATA not set or ../shared/testdata "    \
                      "absent; %s not checked\n", rel);                       \
        skip();                                                               \
    }

/* The public part of a JWK (the private members removed), as a set. */
static sess_jwks *public_set(const json_t *jwk)
{
    static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi"};
    json_t *pub = json_deep_copy(jwk);
    sess_jwks *set = NULL;
    sess_err err = {0};
    char *text;

    for (size_t i = 0; i < sizeof priv / sizeof *priv; i++)
        json_object_del(pub, priv[i]);
    text = json_dumps(pub, JSON_COMPACT);
    if (sess_jwks_parse(text, strlen(text), &set, &err) != SESS_OK)
        print_message("public_set: %s\n", err.msg);
    free(text);
    json_decref(pub);
    return set;
}

static int jws_check(const sess_jwks *set, const char *tok, unsigned algs,
                     sess_jwt_reason *reason)
{
    json_t *h = NULL;
    uint8_t *p = NULL;
    size_t n = 0;
    int rc = sess__jws_verify(set, tok, strlen(tok), algs, &h, &p, &n, reason,
                              NULL);
    json_decref(h);
    free(p);
    return rc;
}

/* A token from raw header and payload strings, signed by "pkey" under
 * "alg": for crafting what sess_jwt_sign() would never produce. */
static char *craft(EVP_PKEY *pkey, const char *alg, const char *hdr,
                   const char *payload)
{
    const sess__alg *a = sess__alg_find(alg, strlen(alg));
    size_t hn = strlen(hdr), pn = strlen(payload), pos, sig_n = 0;
    char *out = malloc(SESS_B64URL_LEN(hn) + SESS_B64URL_LEN(pn) + 2 +
                       SESS_B64URL_LEN(SESS__SIG_MAX) + 1);
    uint8_t sig[SESS__SIG_MAX];

    assert_non_null(a);
    sess__b64url_encode((const uint8_t *)hdr, hn, out);
    pos = SESS_B64URL_LEN(hn);
    out[pos++] = '.';
    sess__b64url_encode((const uint8_t *)payload, pn, out + pos);
    pos += SESS_B64URL_LEN(pn);
    assert_int_equal(sess__jws_sign_raw(pkey, a, (uint8_t *)out, pos, sig, &sig_n),
                     SESS_OK);
    out[pos++] = '.';
    sess__b64url_encode(sig, sig_n, out + pos);
    return out;
}

/* ---- RFC 8037 and RFC 7520 ------------------------------------------- */

/* RFC 8037 A.3: the thumbprint of the Ed25519 example key. */
static void test_rfc8037_thumbprint(void **state)
{
    (void)state;
    static const char jwk[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
                              "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
    sess_jwks *set = NULL;
    char thumb[44];

    assert_int_equal(sess_jwks_parse(jwk, strlen(jwk), &set, NULL), SESS_OK);
    assert_int_equal(sess__jwk_thumbprint(set->keys[0].pkey, thumb), SESS_OK);
    assert_string_equal(thumb, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    sess_jwks_free(set);
}

/* RFC 8037 A.4/A.5 (cookbook curve25519/jws.json): our signature is the
 * RFC's byte for byte (Ed25519 is deterministic) and the RFC's verifies;
 * the key with its "d" is refused as a public key set. */
static void test_rfc8037_ed25519(void **state)
{
    (void)state;
    NEED_VECTOR(v, "jose-cookbook/curve25519/jws.json");
    json_t *key = json_object_get(json_object_get(v, "input"), "key");
    const char *compact = json_string_value(
        json_object_get(json_object_get(v, "output"), "compact"));
    const char *sig_input = json_string_value(
        json_object_get(json_object_get(v, "signing"), "sig-input"));
    const char *sig_b64 = json_string_value(
        json_object_get(json_object_get(v, "signing"), "sig"));
    sess_jwks *set = public_set(key), *bad = NULL;
    sess_jwt_reason reason;
    uint8_t *d = NULL, sig[SESS__SIG_MAX];
    size_t dn = 0, sig_n = 0;
    char sig_out[128], *full;
    EVP_PKEY *priv;

    assert_non_null(set);
    assert_int_equal(jws_check(set, compact, SESS_JWT_EDDSA, &reason), SESS_OK);
    /* Pinned to other algorithms only: refused before the signature. */
    assert_int_equal(jws_check(set, compact, SESS_JWT_ES256, &reason), SESS_REJECTED);
    assert_int_equal(reason, SESS_JWT_R_ALG);

    const char *d_b64 = json_string_value(json_object_get(key, "d"));
    assert_int_equal(sess__b64url_decode_alloc(d_b64, strlen(d_b64), &d, &dn), SESS_OK);
    priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, dn);
    assert_non_null(priv);
    assert_int_equal(sess__jws_sign_raw(priv, sess__alg_find("EdDSA", 5),
                                        (const uint8_t *)sig_input,
                                        strlen(sig_input), sig, &sig_n), SESS_OK);
    assert_int_equal(sig_n, 64);
    sess__b64url_encode(sig, sig_n, sig_out);
    assert_string_equal(sig_out, sig_b64);

    full = json_dumps(key, JSON_COMPACT);
    assert_int_equal(sess_jwks_parse(full, strlen(full), &bad, NULL), SESS_EINVAL);
    assert_null(bad);
    free(full);
    EVP_PKEY_free(priv);
    sess__wipe(d, dn);
    free(d);
    sess_jwks_free(set);
    json_decref(v);
}

/* RFC 7520 section 4: the RS256, PS384 and ES512 examples verify with the
 * public keys; the HMAC examples are refused (no HMAC, secret keys are not
 * a public key set). */
static void test_rfc7520_signatures(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int expect;
    } cases[] = {
        {"jose-cookbook/jws/4_1.rsa_v15_signature.json", SESS_OK},
        {"jose-cookbook/jws/4_2.rsa-pss_signature.json", SESS_OK},
        {"jose-cookbook/jws/4_3.ecdsa_signature.json", SESS_OK},
        {"jose-cookbook/jws/4_4.hmac-sha2_integrity_protection.json", SESS_REJECTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        NEED_VECTOR(v, cases[i].file);
        json_t *in = json_object_get(v, "input");
        const char *compact = json_string_value(
            json_object_get(json_object_get(v, "output"), "compact"));
        const char *payload = json_string_value(json_object_get(in, "payload"));
        sess_jwks *set = public_set(json_object_get(in, "key"));
        sess_jwt_reason reason;
        json_t *h = NULL;
        uint8_t *p = NULL;
        size_t n = 0;

        if (cases[i].expect == SESS_REJECTED) {
            assert_null(set);           /* "k": a secret, refused */
            json_decref(v);
            continue;
        }
        assert_non_null(set);
        assert_int_equal(sess__jws_verify(set, compact, strlen(compact), ALL_ALGS,
                                          &h, &p, &n, &reason, NULL), SESS_OK);
        assert_int_equal(n, strlen(payload));
        assert_memory_equal(p, payload, n);
        assert_string_equal(json_string_value(json_object_get(h, "kid")),
                            "bilbo.baggins@hobbiton.example");
        json_decref(h);
        free(p);
        /* One byte of the signature changed: refused. */
        char *bad = strdup(compact);
        char *last = bad + strlen(bad) - 5;
        *last = *last == 'A' ? 'B' : 'A';
        assert_int_equal(jws_check(set, bad, ALL_ALGS, &reason), SESS_REJECTED);
        assert_true(reason == SESS_JWT_R_SIGNATURE || reason == SESS_JWT_R_BASE64);
        free(bad);
        sess_jwks_free(set);
        json_decref(v);
    }
}

/* RFC 7520 section 3 (RFC 7517 keys): public keys parse, private and
 * symmetric ones refuse the set. */
static void test_rfc7520_keys(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int expect;
    } cases[] = {
        {"jose-cookbook/jwk/3_1.ec_public_key.json", SESS_OK},
        {"jose-cookbook/jwk/3_2.ec_private_key.json", SESS_EINVAL},
        {"jose-cookbook/jwk/3_3.rsa_public_key.json", SESS_OK},
        {"jose-cookbook/jwk/3_4.rsa_private_key.json", SESS_EINVAL},
        {"jose-cookbook/jwk/3_5.symmetric_key_mac_computation.json", SESS_EINVAL},
        {"jose-cookbook/jwk/3_6.symmetric_key_encryption.json", SESS_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        NEED_VECTOR(v, cases[i].file);
        char *text = json_dumps(v, JSON_COMPACT);
        sess_jwks *set = NULL;
        sess_err err = {0};
        assert_int_equal(sess_jwks_parse(text, strlen(text), &set, &err),
                         cases[i].expect);
        if (cases[i].expect == SESS_OK) {
            assert_int_equal(sess_jwks_count(set), 1);
            assert_string_equal(sess_jwks_kid(set, 0),
                                "bilbo.baggins@hobbiton.example");
        }
        sess_jwks_free(set);
        free(text);
        json_decref(v);
    }
}

/* ---- Wycheproof ---------------------------------------------------------- */

/* Test ids whose data is wrong (SOURCES.md errata): 367 and 370 are
 * byte-identical to a valid case; 372 and 373 hold a '?' and are valid only
 * for lenient decoders (ours is strict, so they must be refused). */
static bool erratum_skip(json_int_t id)
{
    return id == 367 || id == 370;
}

static bool strict_refuses(json_int_t id)
{
    /* 346 and 350: RFC 7520's PS384 example checked against a key whose
     * "alg" says PS256.  Wycheproof calls it valid; we use a key that names
     * its algorithm with that algorithm only (RFC 7517 4.4, RFC 8725 3.1),
     * as npm jose does, and refuse it. */
    return id == 372 || id == 373 || id == 346 || id == 350;
}

/*
 * Run one Wycheproof file: each group's key set ("public", else
 * "private"), each test's "jws" with every algorithm we know pinned (the
 * worst case: an attacker picks).  "valid" must verify unless the group's
 * key is one we do not support (HMAC: counted as not applicable);
 * "invalid" must be refused.
 */
static void run_wycheproof(const char *rel, int *valid_ok, int *invalid_ok,
                           int *not_applicable)
{
    json_t *v = load_vector(rel), *groups, *g;
    size_t gi;

    *valid_ok = *invalid_ok = *not_applicable = 0;
    if (v == NULL) {
        print_message("SKIP: SESS_TESTDATA not set or ../shared/testdata "
                      "absent; %s not checked\n", rel);
        skip();
    }
    groups = json_object_get(v, "testGroups");
    json_array_foreach(groups, gi, g) {
        json_t *key = json_object_get(g, "public");
        json_t *tests = json_object_get(g, "tests"), *t;
        sess_jwks *set = NULL;
        char *text;
        size_t ti;
        bool supported;

        if (key == NULL)
            key = json_object_get(g, "private");
        text = json_dumps(key, JSON_COMPACT);
        /* A key we refuse leaves "set" NULL: its cases are unsupported. */
        int prc = sess_jwks_parse(text, strlen(text), &set, NULL);
        free(text);
        supported = prc == SESS_OK && set != NULL && sess_jwks_count(set) > 0;
        json_array_foreach(tests, ti, t) {
            json_int_t id = json_integer_value(json_object_get(t, "tcId"));
            const char *result = json_string_value(json_object_get(t, "result"));
            json_t *jws = json_object_get(t, "jws");
            char *tok = json_is_string(jws) ? strdup(json_string_value(jws))
                                            : json_dumps(jws, JSON_COMPACT);
            sess_jwt_reason reason = SESS_JWT_R_OK;
            int rc = set ? jws_check(set, tok, ALL_ALGS, &reason) : SESS_REJECTED;
            bool valid = strcmp(result, "valid") == 0 && !strict_refuses(id);

            if (erratum_skip(id)) {
                free(tok);
                continue;
            }
            if (valid && !supported) {
                (*not_applicable)++;
                assert_int_not_equal(rc, SESS_OK);
            } else if (valid) {
                if (rc != SESS_OK)
                    fail_msg("%s tcId %lld (%s) valid but refused: %s", rel,
                             (long long)id,
                             json_string_value(json_object_get(t, "comment")),
                             sess_jwt_reason_text(reason));
                (*valid_ok)++;
            } else {
                if (rc == SESS_OK)
                    fail_msg("%s tcId %lld (%s) invalid but accepted", rel,
                             (long long)id,
                             json_string_value(json_object_get(t, "comment")));
                (*invalid_ok)++;
            }
            free(tok);
        }
        sess_jwks_free(set);
    }
    json_decref(v);
}

static void test_wycheproof_jws(void **state)
{
    (void)state;
    int valid, invalid, na;
    run_wycheproof("wycheproof/testvectors_v1/json_web_signature_test.json",
                   &valid, &invalid, &na);
    print_message("wycheproof JWS: %d valid accepted, %d invalid refused, %d "
                  "valid HMAC cases not applicable (refused)\n", valid, invalid,
                  na);
    assert_true(valid >= 30 && invalid >= 300);
}

static void test_wycheproof_jwk(void **state)
{
    (void)state;
    int valid, invalid, na;
    run_wycheproof("wycheproof/testvectors_v1/json_web_key_test.json", &valid,
                   &invalid, &na);
    print_message("wycheproof JWK: %d valid accepted, %d invalid refused, %d "
                  "valid HMAC cases not applicable (refused)\n", valid, invalid,
                  na);
    assert_true(invalid >= 20);
}

/* ---- our own keys and attacks ------------------------------------------ */

typedef struct fixture {
    EVP_PKEY *ed, *ec, *rsa;
    sess_jwks *set;
} fixture;

static fixture fx;

static char *jwks_of(EVP_PKEY *const *keys, const char *const *kids,
                     const char *const *algs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, sess__jwk_export(keys[i], kids[i], algs[i]));
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

static int setup(void **state)
{
    (void)state;
    fx.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *keys[] = {fx.ed, fx.ec, fx.rsa};
    const char *kids[] = {"ed", "ec", "rsa"};
    const char *algs[] = {NULL, "ES256", "RS256"};
    char *doc = jwks_of(keys, kids, algs, 3);
    int rc = sess_jwks_parse(doc, strlen(doc), &fx.set, NULL);
    free(doc);
    return rc == SESS_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sess_jwks_free(fx.set);
    EVP_PKEY_free(fx.ed);
    EVP_PKEY_free(fx.ec);
    EVP_PKEY_free(fx.rsa);
    return 0;
}

static void opts_default(sess_jwt_verify_opts *o)
{
    sess_jwt_verify_opts_init(o);
    o->algs = SESS_JWT_ALGS_SESSIOND;
    o->issuer = "https://sessiond.test";
    o->audience = "api.test";
    o->now = NOW;
}

static json_t *claims_default(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "iss",
                     "https://sessiond.test", "sub", "alice", "aud", "api.test",
                     "exp", (json_int_t)NOW + 300, "iat", (json_int_t)NOW,
                     "nbf", (json_int_t)NOW, "jti", "j1", "sid", "h1");
}

static int verify(const char *tok, const sess_jwt_verify_opts *o,
                  sess_jwt_reason *reason)
{
    json_t *c = NULL;
    int rc = sess_jwt_verify(fx.set, tok, strlen(tok), o, &c, reason, NULL);
    if (rc == SESS_OK)
        assert_non_null(c);
    else
        assert_null(c);
    json_decref(c);
    return rc;
}

#define ASSERT_REFUSED(tok, o, why)                                           \
    do {                                                                      \
        sess_jwt_reason r_;                                                   \
        assert_int_equal(verify(tok, o, &r_), SESS_REJECTED);                 \
        assert_string_equal(sess_jwt_reason_name(r_), sess_jwt_reason_name(why)); \
    } while (0)

static void test_round_trip_each_alg(void **state)
{
    (void)state;
    static const struct {
        const char *alg, *kid;
        size_t sig_chars;
    } algs[] = {{"EdDSA", "ed", 86}, {"Ed25519", "ed", 86},
                {"ES256", "ec", 86}, {"RS256", "rsa", 342}};
    sess_jwt_verify_opts o;
    json_t *c = claims_default(), *got = NULL;
    sess_jwt_reason reason;

    opts_default(&o);
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
        EVP_PKEY *k = i < 2 ? fx.ed : i == 2 ? fx.ec : fx.rsa;
        char *tok = NULL;
        assert_int_equal(sess__jwt_sign_with(k, sess__alg_find(algs[i].alg,
                                                               strlen(algs[i].alg)),
                                             algs[i].kid, c, NULL, &tok, NULL),
                         SESS_OK);
        assert_int_equal(strlen(strrchr(tok, '.') + 1), algs[i].sig_chars);
        assert_int_equal(sess_jwt_verify(fx.set, tok, strlen(tok), &o, &got,
                                         &reason, NULL), SESS_OK);
        assert_string_equal(json_string_value(json_object_get(got, "sub")), "alice");
        json_decref(got);
        /* The same token, pinned to another algorithm: refused. */
        sess_jwt_verify_opts only = o;
        only.algs = SESS_JWT_ALGS_SESSIOND & ~sess_jwt_alg_from_name(algs[i].alg);
        ASSERT_REFUSED(tok, &only, SESS_JWT_R_ALG);
        free(tok);
    }
    json_decref(c);
}

static char *ed_token(const char *hdr, const char *payload)
{
    return craft(fx.ed, "EdDSA", hdr, payload);
}

static void test_alg_none_and_hmac_confusion(void **state)
{
    (void)state;
    sess_jwt_verify_opts o;
    opts_default(&o);
    o.algs = ALL_ALGS;
    char *good = ed_token("{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"at+jwt\"}",
                          "{\"aud\":\"api.test\",\"exp\":1800000300}");
    char *dot2 = strrchr(good, '.');
    char buf[2048];

    /* alg none, with and without a signature. */
    char hdr[128];
    sess__b64url_encode((const uint8_t *)"{\"alg\":\"none\",\"kid\":\"ed\"}", 25, hdr);
    snprintf(buf, sizeof buf, "%s%.*s.", hdr, (int)(dot2 - strchr(good, '.')),
             strchr(good, '.'));
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_ALG_NONE);
    snprintf(buf, sizeof buf, "%s%s", hdr, strchr(good, '.'));
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_ALG_NONE);
    /* "None" / "NONE": not the none algorithm, and not an algorithm. */
    sess__b64url_encode((const uint8_t *)"{\"alg\":\"NONE\",\"kid\":\"ed\"}", 25, hdr);
    snprintf(buf, sizeof buf, "%s%.*s.", hdr, (int)(dot2 - strchr(good, '.')),
             strchr(good, '.'));
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_ALG);

    /* HS256 keyed with the RSA key's public JWK and with the Ed25519 public
     * bytes (the classic confusion): refused, the key decides. */
    static const char *const hkid[] = {"rsa", "ed"};
    for (int i = 0; i < 2; i++) {
        char h[128], in[1024], mac_b64[64];
        unsigned char mac[32];
        unsigned mac_len = 0;
        uint8_t pub[32];
        size_t pn = sizeof pub;
        int hl = snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", hkid[i]);
        char hb[128];
        sess__b64url_encode((const uint8_t *)h, (size_t)hl, hb);
        snprintf(in, sizeof in, "%s.eyJhdWQiOiJhcGkudGVzdCJ9", hb);
        EVP_PKEY_get_raw_public_key(fx.ed, pub, &pn);
        HMAC(EVP_sha256(), pub, (int)pn, (const unsigned char *)in, strlen(in),
             mac, &mac_len);
        sess__b64url_encode(mac, mac_len, mac_b64);
        snprintf(buf, sizeof buf, "%s.%s", in, mac_b64);
        ASSERT_REFUSED(buf, &o, SESS_JWT_R_ALG);
    }
    free(good);
}

static void test_header_checks(void **state)
{
    (void)state;
    static const char body[] = "{\"aud\":\"api.test\",\"iss\":"
                               "\"https://sessiond.test\",\"exp\":1800000300}";
    static const struct {
        const char *hdr;
        sess_jwt_reason why;
    } cases[] = {
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"at+jwt\",\"crit\":[\"exp\"],"
         "\"exp\":1}", SESS_JWT_R_CRIT},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"at+jwt\",\"crit\":[\"b64\"],"
         "\"b64\":false}", SESS_JWT_R_CRIT},
        {"{\"alg\":\"EdDSA\",\"kid\":\"nobody\",\"typ\":\"at+jwt\"}", SESS_JWT_R_KID},
        {"{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\"}", SESS_JWT_R_KID},  /* 3 keys */
        {"{\"alg\":\"EdDSA\",\"kid\":7,\"typ\":\"at+jwt\"}", SESS_JWT_R_HEADER},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"JWT\"}", SESS_JWT_R_TYP},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", SESS_JWT_R_TYP},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"alg\":\"none\",\"typ\":\"at+jwt\"}",
         SESS_JWT_R_HEADER},                                  /* duplicate */
        {"[\"alg\",\"EdDSA\"]", SESS_JWT_R_HEADER},
        {"{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"at+jwt\"} x", SESS_JWT_R_HEADER},
        /* The kid names the EC key, the alg is EdDSA: confusion. */
        {"{\"alg\":\"ES256\",\"kid\":\"ed\",\"typ\":\"at+jwt\"}", SESS_JWT_R_ALG_KEY},
        {"{\"alg\":\"RS256\",\"kid\":\"ec\",\"typ\":\"at+jwt\"}", SESS_JWT_R_ALG_KEY},
        /* The RSA key says RS256: PS256 with it is refused. */
        {"{\"alg\":\"PS256\",\"kid\":\"rsa\",\"typ\":\"at+jwt\"}", SESS_JWT_R_ALG_KEY},
    };
    sess_jwt_verify_opts o;
    opts_default(&o);
    o.algs = ALL_ALGS;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *tok = ed_token(cases[i].hdr, body);
        ASSERT_REFUSED(tok, &o, cases[i].why);
        free(tok);
    }
    /* typ compares without "application/" and case-insensitively. */
    char *tok = ed_token("{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"application/AT+JWT\"}",
                         body);
    assert_int_equal(verify(tok, &o, NULL), SESS_OK);
    free(tok);
    /* An embedded attacker key ("jwk") is never used. */
    tok = ed_token("{\"alg\":\"EdDSA\",\"kid\":\"nobody\",\"typ\":\"at+jwt\","
                   "\"jwk\":{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
                   "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}}", body);
    ASSERT_REFUSED(tok, &o, SESS_JWT_R_KID);
    free(tok);
}

static void test_claim_checks(void **state)
{
    (void)state;
    static const char hdr[] = "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"at+jwt\"}";
    static const struct {
        const char *claims;
        int64_t now_delta;
        sess_jwt_reason why;
    } cases[] = {
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300}",
         0, SESS_JWT_R_OK},
        /* exp with the 30 s leeway: valid until exp + 30, exclusive. */
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000000}",
         29, SESS_JWT_R_OK},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000000}",
         30, SESS_JWT_R_EXPIRED},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300,"
         "\"nbf\":1800000030}", 0, SESS_JWT_R_OK},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300,"
         "\"nbf\":1800000031}", 0, SESS_JWT_R_NOT_YET},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300,"
         "\"iat\":1800000031}", 0, SESS_JWT_R_IAT_FUTURE},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\"}", 0, SESS_JWT_R_NO_EXP},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":\"1800000300\"}",
         0, SESS_JWT_R_CLAIM_TYPE},
        {"{\"aud\":\"api.test\",\"iss\":\"https://evil.test\",\"exp\":1800000300}", 0,
         SESS_JWT_R_ISS},
        {"{\"aud\":\"api.test\",\"exp\":1800000300}", 0, SESS_JWT_R_ISS},
        {"{\"aud\":\"other.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300}",
         0, SESS_JWT_R_AUD},
        {"{\"aud\":[\"other.test\",\"api.test\"],\"iss\":\"https://sessiond.test\","
         "\"exp\":1800000300}", 0, SESS_JWT_R_OK},
        {"{\"aud\":[\"other.test\"],\"iss\":\"https://sessiond.test\",\"exp\":1800000300}",
         0, SESS_JWT_R_AUD},
        {"{\"iss\":\"https://sessiond.test\",\"exp\":1800000300}", 0, SESS_JWT_R_AUD},
        {"{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300,"
         "\"sub\":42}", 0, SESS_JWT_R_CLAIM_TYPE},
        /* Duplicate members: the second "aud" would win in some parsers. */
        {"{\"aud\":\"other.test\",\"iss\":\"https://sessiond.test\",\"exp\":1800000300,"
         "\"aud\":\"api.test\"}", 0, SESS_JWT_R_CLAIMS},
        {"[1,2]", 0, SESS_JWT_R_CLAIMS},
        {"not json", 0, SESS_JWT_R_CLAIMS},
    };
    sess_jwt_verify_opts o;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *tok = ed_token(hdr, cases[i].claims);
        sess_jwt_reason r;
        opts_default(&o);
        o.now = NOW + cases[i].now_delta;
        int rc = verify(tok, &o, &r);
        if (cases[i].why == SESS_JWT_R_OK) {
            assert_int_equal(rc, SESS_OK);
        } else {
            assert_int_equal(rc, SESS_REJECTED);
            assert_string_equal(sess_jwt_reason_name(r),
                                sess_jwt_reason_name(cases[i].why));
        }
        free(tok);
    }
    /* Leeway 0: exp is exact.  No audience and no skip: a caller error. */
    char *tok = ed_token(hdr, "{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\","
                              "\"exp\":1800000000}");
    opts_default(&o);
    o.leeway = 0;
    ASSERT_REFUSED(tok, &o, SESS_JWT_R_EXPIRED);
    opts_default(&o);
    o.audience = NULL;
    assert_int_equal(sess_jwt_verify(fx.set, tok, strlen(tok), &o, NULL, NULL, NULL),
                     SESS_EINVAL);
    o.skip_audience = true;
    o.now = NOW - 100;
    assert_int_equal(sess_jwt_verify(fx.set, tok, strlen(tok), &o, NULL, NULL, NULL),
                     SESS_OK);
    free(tok);
}

static void test_framing_and_base64(void **state)
{
    (void)state;
    sess_jwt_verify_opts o;
    opts_default(&o);
    char *tok = ed_token("{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"typ\":\"at+jwt\"}",
                         "{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\","
                         "\"exp\":1800000300}");
    size_t n = strlen(tok);
    char buf[SESS_JWT_MAX + 64];

    assert_int_equal(verify(tok, &o, NULL), SESS_OK);
    /* Padding, a '+' or '/' (base64, not base64url), whitespace, a stray
     * byte: each refused as non-canonical. */
    snprintf(buf, sizeof buf, "%s==", tok);
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_BASE64);
    static const char bad_chars[] = "+/= \n?\x80";
    for (const char *c = bad_chars; *c; c++) {
        for (size_t pos = 0; pos < n; pos += 37) {
            if (tok[pos] == '.')
                continue;
            memcpy(buf, tok, n + 1);
            buf[pos] = *c;
            sess_jwt_reason r;
            assert_int_equal(verify(buf, &o, &r), SESS_REJECTED);
        }
    }
    /* Non-zero trailing bits: the signature (64 bytes, 86 digits) has 4
     * unused bits in its last digit; setting one keeps the decoded bytes
     * and must still be refused (one spelling per token). */
    memcpy(buf, tok, n + 1);
    {
        static const char alpha[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *p = strchr(alpha, buf[n - 1]);
        buf[n - 1] = alpha[(p - alpha) | 1];
        ASSERT_REFUSED(buf, &o, SESS_JWT_R_BASE64);
    }
    /* Framing: two parts, four parts, empty header, JSON serialization. */
    memcpy(buf, tok, n + 1);
    *strrchr(buf, '.') = '\0';
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_MALFORMED);
    snprintf(buf, sizeof buf, "%s.", tok);
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_MALFORMED);
    ASSERT_REFUSED(strchr(tok, '.'), &o, SESS_JWT_R_MALFORMED);
    ASSERT_REFUSED("{\"payload\":\"e30\",\"signatures\":[]}", &o, SESS_JWT_R_MALFORMED);
    ASSERT_REFUSED("", &o, SESS_JWT_R_MALFORMED);
    ASSERT_REFUSED("..", &o, SESS_JWT_R_MALFORMED);
    /* Over 8 KiB: refused before any decoding, whatever it holds. */
    memset(buf, 'A', SESS_JWT_MAX + 1);
    buf[SESS_JWT_MAX + 1] = '\0';
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_TOO_LONG);
    free(tok);

    /* A payload that is large but under the limit is fine; sign refuses
     * what would be too long. */
    json_t *big = claims_default();
    char filler[SESS_JWT_MAX];
    memset(filler, 'x', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    json_object_set_new(big, "roles", json_string(filler));
    char *t2 = NULL;
    assert_int_equal(sess__jwt_sign_with(fx.ed, sess__alg_find("EdDSA", 5), "ed",
                                         big, NULL, &t2, NULL), SESS_ETOOBIG);
    assert_null(t2);
    json_decref(big);
}

static void test_ecdsa_signature_shapes(void **state)
{
    (void)state;
    sess_jwt_verify_opts o;
    opts_default(&o);
    char *tok = craft(fx.ec, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"at+jwt\"}",
                      "{\"aud\":\"api.test\",\"iss\":\"https://sessiond.test\","
                      "\"exp\":1800000300}");
    char *dot = strrchr(tok, '.');
    uint8_t *sig = NULL, der[80];
    size_t sn = 0;
    char buf[1024], enc[200];

    assert_int_equal(verify(tok, &o, NULL), SESS_OK);
    assert_int_equal(sess__b64url_decode_alloc(dot + 1, strlen(dot + 1), &sig, &sn),
                     SESS_OK);
    assert_int_equal(sn, 64);
    /* A DER signature (what OpenSSL makes, and some libraries wrongly
     * send): refused, never converted. */
    {
        const sess__alg *a = sess__alg_find("ES256", 5);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t dn = sizeof der;
        (void)a;
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, fx.ec), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &dn, (uint8_t *)tok,
                                        (size_t)(dot - tok)), 1);
        EVP_MD_CTX_free(ctx);
        sess__b64url_encode(der, dn, enc);
        snprintf(buf, sizeof buf, "%.*s.%s", (int)(dot - tok), tok, enc);
        ASSERT_REFUSED(buf, &o, SESS_JWT_R_SIGNATURE);
    }
    /* 63 and 65 bytes; r or s zero. */
    uint8_t longer[65];
    memcpy(longer + 1, sig, 64);
    longer[0] = 0;
    sess__b64url_encode(longer, 65, enc);
    snprintf(buf, sizeof buf, "%.*s.%s", (int)(dot - tok), tok, enc);
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_SIGNATURE);
    sess__b64url_encode(sig, 63, enc);
    snprintf(buf, sizeof buf, "%.*s.%s", (int)(dot - tok), tok, enc);
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_SIGNATURE);
    uint8_t zero[64];
    memcpy(zero, sig, 64);
    memset(zero, 0, 32);
    sess__b64url_encode(zero, 64, enc);
    snprintf(buf, sizeof buf, "%.*s.%s", (int)(dot - tok), tok, enc);
    ASSERT_REFUSED(buf, &o, SESS_JWT_R_SIGNATURE);
    free(sig);
    free(tok);
}

static void test_jwks_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
        "\"kid\":\"a\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
        "\"kid\":\"a\"}]}",                             /* duplicate kid */
        "{\"keys\":[],\"keys\":[]}",                    /* duplicate member */
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
        /* (1, 1) is not on P-256: an invalid-curve key. */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
        "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":{}}",
        "[]",
        "{\"keys\":[1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sess_jwks *set = NULL;
        sess_err err = {0};
        if (sess_jwks_parse(bad[i], strlen(bad[i]), &set, &err) == SESS_OK)
            fail_msg("JWKS case %zu accepted", i);
        assert_null(set);
        assert_true(err.msg[0] != '\0');
    }
    /* Skipped, not refused: encryption keys, unknown kty, X25519. */
    static const char skip[] =
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AAAA\"},"
        "{\"kty\":\"XYZ\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"enc\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"key_ops\":[\"sign\"],"
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ok\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
    sess_jwks *set = NULL;
    assert_int_equal(sess_jwks_parse(skip, strlen(skip), &set, NULL), SESS_OK);
    assert_int_equal(sess_jwks_count(set), 1);
    assert_string_equal(sess_jwks_kid(set, 0), "ok");
    sess_jwks_free(set);
    /* A 1024-bit RSA key is refused (forgeable). */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    const char *kid = "small", *alg = "RS256";
    char *doc = jwks_of(&small, &kid, &alg, 1);
    assert_int_equal(sess_jwks_parse(doc, strlen(doc), &set, NULL), SESS_EINVAL);
    free(doc);
    EVP_PKEY_free(small);
}

/* One key set, many threads verifying at once (the daemon's case). */
static void *verify_loop(void *arg)
{
    const char *tok = arg;
    sess_jwt_verify_opts o;
    opts_default(&o);
    for (int i = 0; i < 300; i++)
        if (sess_jwt_verify(fx.set, tok, strlen(tok), &o, NULL, NULL, NULL) != SESS_OK)
            return (void *)1;
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    json_t *c = claims_default();
    char *toks[3];
    EVP_PKEY *keys[3] = {fx.ed, fx.ec, fx.rsa};
    const char *algs[3] = {"EdDSA", "ES256", "RS256"}, *kids[3] = {"ed", "ec", "rsa"};
    pthread_t th[6];

    for (int i = 0; i < 3; i++)
        assert_int_equal(sess__jwt_sign_with(keys[i], sess__alg_find(algs[i], strlen(algs[i])),
                                             kids[i], c, NULL, &toks[i], NULL), SESS_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, toks[i % 3]), 0);
    for (int i = 0; i < 6; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    for (int i = 0; i < 3; i++)
        free(toks[i]);
    json_decref(c);
}

static void test_reason_tables(void **state)
{
    (void)state;
    for (int r = 0; r < SESS_JWT_R__COUNT; r++) {
        assert_non_null(sess_jwt_reason_text((sess_jwt_reason)r));
        assert_true(strlen(sess_jwt_reason_name((sess_jwt_reason)r)) > 0);
    }
    assert_string_equal(sess_jwt_reason_name(SESS_JWT_R_EXPIRED), "EXPIRED");
    assert_string_equal(sess_jwt_reason_name((sess_jwt_reason)999), "UNKNOWN");
    assert_int_equal(sess_jwt_alg_from_name("EdDSA"), SESS_JWT_EDDSA);
    assert_int_equal(sess_jwt_alg_from_name("HS256"), 0);
    assert_int_equal(sess_jwt_alg_from_name("none"), 0);
    assert_string_equal(sess_jwt_alg_name(SESS_JWT_RS256), "RS256");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8037_thumbprint),
        cmocka_unit_test(test_rfc8037_ed25519),
        cmocka_unit_test(test_rfc7520_signatures),
        cmocka_unit_test(test_rfc7520_keys),
        cmocka_unit_test(test_wycheproof_jws),
        cmocka_unit_test(test_wycheproof_jwk),
        cmocka_unit_test(test_round_trip_each_alg),
        cmocka_unit_test(test_alg_none_and_hmac_confusion),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_claim_checks),
        cmocka_unit_test(test_framing_and_base64),
        cmocka_unit_test(test_ecdsa_signature_shapes),
        cmocka_unit_test(test_jwks_refusals),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_reason_tables),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
