/*
 * jwk.c - JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037): parsing
 * a JWK Set into OpenSSL public keys, exporting our public keys as JWKs,
 * RFC 7638 thumbprints, and the algorithm table the JWS code uses.
 *
 * Parsing is strict about what it supports and lenient about what it does
 * not (RFC 7517 section 5: ignore keys whose kty is not understood): a set
 * is refused when a key we would verify with is malformed, or when any key
 * carries private or secret members (a publisher leaking its secret key,
 * and the "mixed key set" confusion Wycheproof tests), or when two keys
 * share a kid (which key verifies would be ambiguous).  Base64url is the
 * canonical form only (no padding, no stray characters, zero trailing
 * bits), EC points are checked to be on their curve (invalid-curve
 * attacks), RSA moduli are 2048 to 8192 bits (short keys are forgeable,
 * huge ones a CPU denial of service) with an odd public exponent of at
 * least 3 written in minimal octets.
 *
 * A parsed set is immutable; verifying threads share it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "jwt_internal.h"
#include "util.h"

/* ---- algorithms ------------------------------------------------------- */

static const sess__alg algs[] = {
    {"EdDSA", SESS_JWT_EDDSA, SESS__KTY_OKP, "Ed25519", NULL, false, 32},
    {"Ed25519", SESS_JWT_ED25519, SESS__KTY_OKP, "Ed25519", NULL, false, 32},
    {"ES256", SESS_JWT_ES256, SESS__KTY_EC, "P-256", "SHA256", false, 32},
    {"ES384", SESS_JWT_ES384, SESS__KTY_EC, "P-384", "SHA384", false, 48},
    {"ES512", SESS_JWT_ES512, SESS__KTY_EC, "P-521", "SHA512", false, 66},
    {"RS256", SESS_JWT_RS256, SESS__KTY_RSA, NULL, "SHA256", false, 0},
    {"RS384", SESS_JWT_RS384, SESS__KTY_RSA, NULL, "SHA384", false, 0},
    {"RS512", SESS_JWT_RS512, SESS__KTY_RSA, NULL, "SHA512", false, 0},
    {"PS256", SESS_JWT_PS256, SESS__KTY_RSA, NULL, "SHA256", true, 0},
    {"PS384", SESS_JWT_PS384, SESS__KTY_RSA, NULL, "SHA384", true, 0},
    {"PS512", SESS_JWT_PS512, SESS__KTY_RSA, NULL, "SHA512", true, 0},
};
#define N_ALGS (sizeof algs / sizeof algs[0])

/* JWK curve names and their OpenSSL group names. */
static const struct {
    const char *crv;
    const char *group;
    size_t coord;
} ec_curves[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
};

const sess__alg *sess__alg_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
            return &algs[i];
    return NULL;
}

const char *sess_jwt_alg_name(unsigned alg)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (algs[i].bit == alg)
            return algs[i].name;
    return NULL;
}

unsigned sess_jwt_alg_from_name(const char *name)
{
    const sess__alg *a = name ? sess__alg_find(name, strlen(name)) : NULL;
    return a ? a->bit : 0;
}

const sess__alg *sess__alg_for_pkey(EVP_PKEY *pkey, bool ed25519_name)
{
    char group[32];
    size_t glen = 0;

    if (EVP_PKEY_is_a(pkey, "ED25519"))
        return sess__alg_find(ed25519_name ? "Ed25519" : "EdDSA",
                              ed25519_name ? 7 : 5);
    if (EVP_PKEY_is_a(pkey, "RSA"))
        return sess__alg_find("RS256", 5);
    if (EVP_PKEY_is_a(pkey, "EC") &&
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       sizeof group, &glen) == 1 &&
        strcmp(group, "prime256v1") == 0)
        return sess__alg_find("ES256", 5);
    return NULL;
}

/* ---- base64url ------------------------------------------------------- */

int sess__b64url_decode_alloc(const char *in, size_t len, uint8_t **out,
                              size_t *n)
{
    size_t bytes = len / 4 * 3 + (len % 4 == 3 ? 2 : len % 4 == 2 ? 1 : 0);
    uint8_t *buf;

    *out = NULL;
    *n = 0;
    /* A length of 4k+1 characters encodes no whole number of bytes. */
    if (len % 4 == 1)
        return SESS_EINVAL;
    buf = malloc(bytes + 1);
    if (buf == NULL)
        return SESS_ENOMEM;
    if (sess__b64url_decode(in, len, buf, bytes) != SESS_OK) {
        free(buf);
        return SESS_EINVAL;
    }
    buf[bytes] = 0;
    *out = buf;
    *n = bytes;
    return SESS_OK;
}

/* ---- parsing ---------------------------------------------------------- */

/* Members that only private or secret keys have (RFC 7518 6.2.2, 6.3.2,
 * 6.4; RFC 8037 2). */
static const char *const private_members[] = {"d", "p", "q", "dp", "dq",
                                              "qi", "oth", "k"};

/* Decode member "name" of "jwk" (a base64url string) into "*out". */
static int member_bytes(const json_t *jwk, const char *name, uint8_t **out,
                        size_t *n, sess_err *err)
{
    json_t *v = json_object_get(jwk, name);
    int rc;

    if (!json_is_string(v))
        return sess__fail(err, SESS_EINVAL, "JWK member \"%s\" missing or "
                          "not a string", name);
    rc = sess__b64url_decode_alloc(json_string_value(v), json_string_length(v),
                                   out, n);
    if (rc == SESS_EINVAL)
        return sess__fail(err, rc, "JWK member \"%s\" is not canonical "
                          "base64url", name);
    return rc == SESS_OK ? rc : sess__fail(err, rc, "out of memory");
}

static int okp_key(const json_t *jwk, sess__jwk *k, sess_err *err)
{
    uint8_t *x = NULL;
    size_t n;
    int rc = member_bytes(jwk, "x", &x, &n, err);

    if (rc != SESS_OK)
        return rc;
    if (n != 32) {
        free(x);
        return sess__fail(err, SESS_EINVAL, "Ed25519 JWK \"x\" must be 32 "
                          "bytes");
    }
    k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, n);
    free(x);
    if (k->pkey == NULL)
        return sess__fail(err, SESS_EINVAL, "Ed25519 JWK \"x\" rejected by "
                          "OpenSSL");
    k->crv = "Ed25519";
    return SESS_OK;
}

/* Check the public key: for EC that the point is on the curve and not the
 * identity (invalid-curve attacks); for RSA OpenSSL's public checks. */
static bool public_check(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = c != NULL && EVP_PKEY_public_check(c) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

static int from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    int ok = params != NULL && c != NULL && EVP_PKEY_fromdata_init(c) == 1 &&
             EVP_PKEY_fromdata(c, out, EVP_PKEY_PUBLIC_KEY, params) == 1;

    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(c);
    return ok ? SESS_OK : SESS_EINVAL;
}

static int ec_key(const json_t *jwk, sess__jwk *k, sess_err *err)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    uint8_t *x = NULL, *y = NULL, pub[1 + 2 * 66];
    size_t xn = 0, yn = 0, ci;
    OSSL_PARAM_BLD *bld = NULL;
    int rc;

    for (ci = 0; ci < sizeof ec_curves / sizeof ec_curves[0]; ci++)
        if (crv != NULL && strcmp(crv, ec_curves[ci].crv) == 0)
            break;
    if (ci == sizeof ec_curves / sizeof ec_curves[0])
        return SESS_NOTFOUND;       /* a curve we do not verify with: skip */
    if ((rc = member_bytes(jwk, "x", &x, &xn, err)) != SESS_OK ||
        (rc = member_bytes(jwk, "y", &y, &yn, err)) != SESS_OK)
        goto cleanup;
    /* RFC 7518 6.2.1.2: coordinates are full length, never shortened. */
    if (xn != ec_curves[ci].coord || yn != ec_curves[ci].coord) {
        rc = sess__fail(err, SESS_EINVAL, "EC JWK coordinates must be %zu "
                        "bytes for %s", ec_curves[ci].coord, crv);
        goto cleanup;
    }
    pub[0] = 0x04;
    memcpy(pub + 1, x, xn);
    memcpy(pub + 1 + xn, y, yn);
    rc = SESS_EINVAL;
    bld = OSSL_PARAM_BLD_new();
    if (bld != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        ec_curves[ci].group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                         1 + 2 * xn) == 1)
        rc = from_params("EC", bld, &k->pkey);
    if (rc != SESS_OK || !public_check(k->pkey)) {
        rc = sess__fail(err, SESS_EINVAL, "EC JWK: the point is not on %s",
                        crv);
        goto cleanup;
    }
    k->crv = ec_curves[ci].crv;
cleanup:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return rc;
}

static bool roca_fingerprint(const BIGNUM *n);

static int rsa_key(const json_t *jwk, sess__jwk *k, sess_err *err)
{
    uint8_t *n = NULL, *e = NULL;
    size_t nn = 0, en = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int rc;

    if ((rc = member_bytes(jwk, "n", &n, &nn, err)) != SESS_OK ||
        (rc = member_bytes(jwk, "e", &e, &en, err)) != SESS_OK)
        goto cleanup;
    rc = SESS_EINVAL;
    /* RFC 7518 6.3.1: minimal octets.  2048..8192 bits: below is
     * forgeable, above a CPU cost an attacker's key set could impose. */
    if (nn == 0 || n[0] == 0 || nn < 256 || nn > 1024) {
        sess__fail(err, rc, "RSA JWK modulus must be 2048 to 8192 bits in "
                   "minimal octets");
        goto cleanup;
    }
    /* e = 1 makes every signature verify; even e is not RSA. */
    if (en == 0 || en > 4 || e[0] == 0 || (e[en - 1] & 1) == 0 ||
        (en == 1 && e[0] < 3)) {
        sess__fail(err, rc, "RSA JWK exponent must be odd, at least 3 and "
                   "at most 32 bits");
        goto cleanup;
    }
    bn_n = BN_bin2bn(n, (int)nn, NULL);
    bn_e = BN_bin2bn(e, (int)en, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn_n != NULL && bn_e != NULL && bld != NULL &&
        BN_num_bits(bn_n) >= 2048 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        rc = from_params("RSA", bld, &k->pkey);
    if (rc != SESS_OK || !public_check(k->pkey)) {
        rc = sess__fail(err, SESS_EINVAL, "RSA JWK rejected (modulus below "
                        "2048 bits or not a valid public key)");
        goto cleanup;
    }
    if (roca_fingerprint(bn_n)) {
        rc = sess__fail(err, SESS_EINVAL, "RSA JWK has the ROCA fingerprint "
                        "(CVE-2017-15361): the key is factorable");
        goto cleanup;
    }
cleanup:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return rc;
}

/*
 * The ROCA fingerprint (CVE-2017-15361, Nemec et al. 2017): moduli made by
 * the flawed Infineon library are, modulo each small prime p below, in the
 * subgroup that 65537 generates; a random modulus passes all these tests
 * with negligible probability.  Such keys are factorable: refuse them.
 */
static bool roca_fingerprint(const BIGNUM *n)
{
    static const unsigned primes[] = {
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67,
        71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139,
        149, 151, 157, 163, 167};

    for (size_t i = 0; i < sizeof primes / sizeof *primes; i++) {
        unsigned p = primes[i], g = 65537 % p, x = 1;
        BN_ULONG r = BN_mod_word(n, p);
        bool in_group = false;
        if (r == (BN_ULONG)-1)
            return false;
        /* Walk the powers of 65537 mod p until they cycle back to 1. */
        do {
            if (x == r)
                in_group = true;
            x = x * g % p;
        } while (x != 1 && !in_group);
        if (!in_group)
            return false;
    }
    return true;
}

/* Does "alg" fit key "k" (family and curve)? */
static bool alg_fits(const sess__alg *alg, const sess__jwk *k)
{
    if (alg->kty != k->kty)
        return false;
    return alg->crv == NULL || (k->crv != NULL && strcmp(alg->crv, k->crv) == 0);
}

/*
 * Parse one JWK into "k".  SESS_OK, SESS_NOTFOUND for a key to skip
 * (unsupported type or curve, not for signatures), SESS_EINVAL for a key
 * that refuses the whole set.
 */
static int parse_key(const json_t *jwk, sess__jwk *k, sess_err *err)
{
    const char *kty, *use;
    json_t *kid, *alg, *ops;
    int rc;

    if (!json_is_object(jwk))
        return sess__fail(err, SESS_EINVAL, "a key in \"keys\" is not an "
                          "object");
    for (size_t i = 0; i < sizeof private_members / sizeof *private_members; i++)
        if (json_object_get(jwk, private_members[i]) != NULL)
            return sess__fail(err, SESS_EINVAL, "a key holds private or "
                              "secret material (\"%s\"): a public key set "
                              "must not", private_members[i]);
    kty = json_string_value(json_object_get(jwk, "kty"));
    if (kty == NULL)
        return sess__fail(err, SESS_EINVAL, "a key has no \"kty\" string");
    use = json_string_value(json_object_get(jwk, "use"));
    if (json_object_get(jwk, "use") != NULL && use == NULL)
        return sess__fail(err, SESS_EINVAL, "\"use\" is not a string");
    /* RFC 7517 4.2/4.3: a key meant for encryption does not verify. */
    if (use != NULL && strcmp(use, "sig") != 0)
        return SESS_NOTFOUND;
    ops = json_object_get(jwk, "key_ops");
    if (ops != NULL) {
        bool verify = false;
        size_t i;
        json_t *op;
        if (!json_is_array(ops))
            return sess__fail(err, SESS_EINVAL, "\"key_ops\" is not an array");
        json_array_foreach(ops, i, op)
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                verify = true;
        if (!verify)
            return SESS_NOTFOUND;
    }
    kid = json_object_get(jwk, "kid");
    if (kid != NULL) {
        if (!json_is_string(kid) || json_string_length(kid) > SESS__JWK_KID_MAX)
            return sess__fail(err, SESS_EINVAL, "\"kid\" is not a string of "
                              "at most %d bytes", SESS__JWK_KID_MAX);
        memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
        k->has_kid = true;
    }
    alg = json_object_get(jwk, "alg");
    if (alg != NULL && !json_is_string(alg))
        return sess__fail(err, SESS_EINVAL, "\"alg\" is not a string");
    if (alg != NULL) {
        k->alg = sess__alg_find(json_string_value(alg), json_string_length(alg));
        if (k->alg == NULL)
            return SESS_NOTFOUND;       /* HS256, RSA-OAEP, ...: not ours */
    }
    if (strcmp(kty, "OKP") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        if (crv == NULL || strcmp(crv, "Ed25519") != 0)
            return SESS_NOTFOUND;       /* X25519 (ECDH), Ed448 */
        k->kty = SESS__KTY_OKP;
        rc = okp_key(jwk, k, err);
    } else if (strcmp(kty, "EC") == 0) {
        k->kty = SESS__KTY_EC;
        rc = ec_key(jwk, k, err);
    } else if (strcmp(kty, "RSA") == 0) {
        k->kty = SESS__KTY_RSA;
        rc = rsa_key(jwk, k, err);
    } else {
        return SESS_NOTFOUND;
    }
    if (rc != SESS_OK)
        return rc;
    if (k->alg != NULL && !alg_fits(k->alg, k))
        return sess__fail(err, SESS_EINVAL, "key \"alg\" %s does not fit its "
                          "kty/crv", k->alg->name);
    return SESS_OK;
}

void sess_jwks_free(sess_jwks *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set->keys);
    free(set);
}

size_t sess_jwks_count(const sess_jwks *set)
{
    return set ? set->n : 0;
}

const char *sess_jwks_kid(const sess_jwks *set, size_t i)
{
    return set && i < set->n ? set->keys[i].kid : NULL;
}

int sess_jwks_parse(const char *json, size_t len, sess_jwks **out,
                    sess_err *err)
{
    json_t *root = NULL, *keys, *one = NULL;
    json_error_t jerr;
    sess_jwks *set = NULL;
    size_t i;
    json_t *jwk;
    int rc;

    if (json == NULL || out == NULL)
        return sess__fail(err, SESS_EINVAL, "NULL argument");
    *out = NULL;
    if (len > SESS_JWKS_MAX_BYTES)
        return sess__fail(err, SESS_ETOOBIG, "JWK Set larger than %u bytes",
                          SESS_JWKS_MAX_BYTES);
    /* Duplicate members: which one counts would differ between parsers. */
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        rc = sess__fail(err, SESS_EINVAL, "JWK Set is not a JSON object "
                        "without duplicate members (line %d)", jerr.line);
        goto cleanup;
    }
    keys = json_object_get(root, "keys");
    if (keys == NULL && json_object_get(root, "kty") != NULL) {
        one = json_array();
        if (one == NULL || json_array_append(one, root) != 0) {
            rc = sess__fail(err, SESS_ENOMEM, "out of memory");
            goto cleanup;
        }
        keys = one;
    }
    if (!json_is_array(keys)) {
        rc = sess__fail(err, SESS_EINVAL, "JWK Set has no \"keys\" array");
        goto cleanup;
    }
    if (json_array_size(keys) > SESS_JWKS_MAX_KEYS) {
        rc = sess__fail(err, SESS_ETOOBIG, "JWK Set has more than %d keys",
                        SESS_JWKS_MAX_KEYS);
        goto cleanup;
    }
    set = calloc(1, sizeof *set);
    if (set == NULL ||
        (set->keys = calloc(json_array_size(keys) + 1, sizeof *set->keys)) == NULL) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    json_array_foreach(keys, i, jwk) {
        sess__jwk *k = &set->keys[set->n];
        memset(k, 0, sizeof *k);
        rc = parse_key(jwk, k, err);
        if (rc == SESS_NOTFOUND) {
            EVP_PKEY_free(k->pkey);
            memset(k, 0, sizeof *k);
            continue;
        }
        if (rc != SESS_OK) {
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
            goto cleanup;
        }
        set->n++;
    }
    /* Two keys with one kid: which verifies would depend on order. */
    for (size_t a = 0; a < set->n; a++)
        for (size_t b = a + 1; b < set->n; b++)
            if (set->keys[a].has_kid && set->keys[b].has_kid &&
                strcmp(set->keys[a].kid, set->keys[b].kid) == 0) {
                rc = sess__fail(err, SESS_EINVAL, "two keys share one kid");
                goto cleanup;
            }
    *out = set;
    set = NULL;
    rc = SESS_OK;
cleanup:
    sess_jwks_free(set);
    json_decref(one);
    json_decref(root);
    return rc;
}

int sess__jwks_from_pkeys(EVP_PKEY *const *pkeys, const char *const *kids,
                          size_t n, sess_jwks **out, sess_err *err)
{
    sess_jwks *set = calloc(1, sizeof *set);

    if (set == NULL || (set->keys = calloc(n + 1, sizeof *set->keys)) == NULL) {
        free(set);
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        sess__jwk *k = &set->keys[i];
        const sess__alg *alg = sess__alg_for_pkey(pkeys[i], false);
        if (alg == NULL || EVP_PKEY_up_ref(pkeys[i]) != 1) {
            sess_jwks_free(set);
            return sess__fail(err, SESS_ECRYPTO, "unsupported signing key");
        }
        k->pkey = pkeys[i];
        set->n++;
        k->kty = alg->kty;
        k->crv = alg->crv;
        /* The key's alg is left open for Ed25519 (EdDSA or Ed25519 names
         * the same algorithm) and pinned otherwise. */
        k->alg = alg->kty == SESS__KTY_OKP ? NULL : alg;
        snprintf(k->kid, sizeof k->kid, "%s", kids[i]);
        k->has_kid = true;
    }
    *out = set;
    return SESS_OK;
}

/* ---- export ----------------------------------------------------------- */

static int set_b64(json_t *o, const char *name, const uint8_t *b, size_t n)
{
    char *s = malloc(SESS_B64URL_LEN(n) + 1);
    int rc;

    if (s == NULL)
        return -1;
    sess__b64url_encode(b, n, s);
    rc = json_object_set_new(o, name, json_string(s));
    free(s);
    return rc;
}

static int set_bn(json_t *o, const char *name, EVP_PKEY *pkey,
                  const char *param, int pad)
{
    BIGNUM *bn = NULL;
    uint8_t buf[1024];
    int n, rc = -1;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
        return -1;
    n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_num_bytes(bn);
    if (pad == 0 && n <= (int)sizeof buf)
        n = BN_bn2bin(bn, buf);
    if (n > 0 && n <= (int)sizeof buf)
        rc = set_b64(o, name, buf, (size_t)n);
    BN_free(bn);
    return rc;
}

/* The members RFC 7638 hashes for the thumbprint, in a new object. */
static json_t *public_members(EVP_PKEY *pkey)
{
    json_t *o = json_object();
    int rc = -1;

    if (o == NULL)
        return NULL;
    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        uint8_t x[32];
        size_t n = sizeof x;
        if (EVP_PKEY_get_raw_public_key(pkey, x, &n) == 1 && n == 32)
            rc = json_object_set_new(o, "kty", json_string("OKP")) |
                 json_object_set_new(o, "crv", json_string("Ed25519")) |
                 set_b64(o, "x", x, n);
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        rc = json_object_set_new(o, "kty", json_string("EC")) |
             json_object_set_new(o, "crv", json_string("P-256")) |
             set_bn(o, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32) |
             set_bn(o, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    } else if (EVP_PKEY_is_a(pkey, "RSA")) {
        rc = json_object_set_new(o, "kty", json_string("RSA")) |
             set_bn(o, "n", pkey, OSSL_PKEY_PARAM_RSA_N, 0) |
             set_bn(o, "e", pkey, OSSL_PKEY_PARAM_RSA_E, 0);
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int sess__jwk_thumbprint(EVP_PKEY *pkey, char out[44])
{
    json_t *o = public_members(pkey);
    char *text;
    uint8_t h[32];

    if (o == NULL)
        return SESS_ECRYPTO;
    /* RFC 7638 3: required members only, sorted, no whitespace. */
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (text == NULL)
        return SESS_ENOMEM;
    sess__sha256(text, strlen(text), h);
    free(text);
    sess__b64url_encode(h, sizeof h, out);
    return SESS_OK;
}

json_t *sess__jwk_export(EVP_PKEY *pkey, const char *kid, const char *alg)
{
    json_t *o = public_members(pkey);

    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "kid", json_string(kid)) != 0 ||
        json_object_set_new(o, "use", json_string("sig")) != 0 ||
        (alg != NULL && json_object_set_new(o, "alg", json_string(alg)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}
