/*
 * jwt.c - JWS compact serialization (RFC 7515) and JWT claims (RFC 7519,
 * RFC 9068) on OpenSSL 3 EVP and jansson: verification for services and
 * the signing of sessiond's access tokens.
 *
 * The checklist is RFC 8725 (JWT best current practice):
 *  - the caller pins the algorithms; "none" and HMAC are never accepted,
 *    and the key found by kid decides the algorithm family, so a header
 *    cannot turn a public key into an HMAC secret (algorithm confusion,
 *    RFC 8725 2.1 / 3.1);
 *  - "crit" is refused outright: we understand no extension, and RFC 7515
 *    4.1.11 says a recipient that does not must refuse (e.g. "b64": false
 *    would change what the signature covers);
 *  - header parameters that carry keys ("jwk", "jku", "x5u", "x5c") are
 *    never looked at: keys come only from the caller's set (embedded-key
 *    attacks);
 *  - base64url is canonical only and JSON refuses duplicate members, so a
 *    token has one meaning for every parser (parser-differential attacks);
 *  - ECDSA signatures are the raw r||s of exactly twice the coordinate
 *    size (RFC 7518 3.4), converted to DER here for OpenSSL, which checks
 *    0 < r, s < n; RSA signatures are exactly the modulus length;
 *  - a token is at most SESS_JWT_MAX bytes before anything is decoded.
 *
 * Threads: nothing here keeps state but the digests fetched once; every
 * call makes its own EVP contexts, so one key set serves all threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt_internal.h"
#include "util.h"

/* ---- reasons ---------------------------------------------------------- */

static const struct {
    const char *name;
    const char *text;
} reasons[] = {
#define SESS__REASON_ROW(name, text) {#name, text},
    SESS_JWT_REASON_TABLE(SESS__REASON_ROW)
#undef SESS__REASON_ROW
};

const char *sess_jwt_reason_text(sess_jwt_reason reason)
{
    return (unsigned)reason < SESS_JWT_R__COUNT ? reasons[reason].text
                                                 : "unknown reason";
}

const char *sess_jwt_reason_name(sess_jwt_reason reason)
{
    return (unsigned)reason < SESS_JWT_R__COUNT ? reasons[reason].name
                                                 : "UNKNOWN";
}

/* Refuse with "r": the reason goes to "*reason" and "err". */
static int refuse(sess_jwt_reason *reason, sess_err *err, sess_jwt_reason r)
{
    *reason = r;
    return sess__fail(err, SESS_REJECTED, "token refused: %s",
                      sess_jwt_reason_text(r));
}

/* ---- digests, fetched once ------------------------------------------ */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256, *md_sha384, *md_sha512;

static void md_init(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    md_sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    md_sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
}

static const EVP_MD *md_for(const sess__alg *alg)
{
    pthread_once(&md_once, md_init);
    if (alg->md == NULL)
        return NULL;
    if (strcmp(alg->md, "SHA256") == 0)
        return md_sha256;
    if (strcmp(alg->md, "SHA384") == 0)
        return md_sha384;
    return md_sha512;
}

/* ---- signatures ------------------------------------------------------- */

/* Set up "ctx" for "alg" with "pkey" (sign or verify). */
static bool ctx_init(EVP_MD_CTX *ctx, EVP_PKEY *pkey, const sess__alg *alg,
                     bool sign)
{
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = md_for(alg);
    int ok;

    if (alg->md != NULL && md == NULL)
        return false;
    ok = sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey)
              : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey);
    if (ok != 1)
        return false;
    if (alg->pss &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        return false;
    return true;
}

/* DER of the raw r||s "raw" (2 * "coord" bytes) into "*der" (caller
 * frees with OPENSSL_free). */
static int ecdsa_raw_to_der(const uint8_t *raw, size_t coord, uint8_t **der,
                            int *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)coord, NULL);
    BIGNUM *s = BN_bin2bn(raw + coord, (int)coord, NULL);
    int rc = SESS_ECRYPTO;

    *der = NULL;
    if (sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL;           /* owned by sig now */
        *der_len = i2d_ECDSA_SIG(sig, der);
        if (*der_len > 0)
            rc = SESS_OK;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rc;
}

/* Verify "sig" over "input": 1 valid, 0 not, negative on failure. */
static int verify_sig(EVP_PKEY *pkey, const sess__alg *alg,
                      const uint8_t *input, size_t len, const uint8_t *sig,
                      size_t sig_len)
{
    EVP_MD_CTX *ctx;
    uint8_t *der = NULL;
    int der_len = 0, ok;

    switch (alg->kty) {
    case SESS__KTY_OKP:
        if (sig_len != 64)
            return 0;
        break;
    case SESS__KTY_EC:
        /* RFC 7518 3.4: exactly 2 * coordinate bytes; a DER signature or
         * one with a stripped or added byte is refused, not repaired. */
        if (sig_len != 2 * alg->coord)
            return 0;
        if (ecdsa_raw_to_der(sig, alg->coord, &der, &der_len) != SESS_OK)
            return -1;
        sig = der;
        sig_len = (size_t)der_len;
        break;
    case SESS__KTY_RSA:
        if (sig_len != (size_t)EVP_PKEY_get_size(pkey))
            return 0;
        break;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        OPENSSL_free(der);
        return -1;
    }
    ok = ctx_init(ctx, pkey, alg, false) &&
         EVP_DigestVerify(ctx, sig, sig_len, input, len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok ? 1 : 0;
}

int sess__jws_sign_raw(EVP_PKEY *pkey, const sess__alg *alg,
                       const uint8_t *input, size_t len, uint8_t *sig,
                       size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[160];
    size_t n = SESS__SIG_MAX;
    uint8_t *out = alg->kty == SESS__KTY_EC ? der : sig;
    int rc = SESS_ECRYPTO;

    if (alg->kty == SESS__KTY_EC)
        n = sizeof der;
    if (ctx == NULL || !ctx_init(ctx, pkey, alg, true) ||
        EVP_DigestSign(ctx, out, &n, input, len) != 1)
        goto cleanup;
    if (alg->kty == SESS__KTY_EC) {
        const uint8_t *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        const BIGNUM *r, *s;
        if (es == NULL)
            goto cleanup;
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, sig, (int)alg->coord) == (int)alg->coord &&
            BN_bn2binpad(s, sig + alg->coord, (int)alg->coord) == (int)alg->coord) {
            *sig_len = 2 * alg->coord;
            rc = SESS_OK;
        }
        ECDSA_SIG_free(es);
    } else {
        *sig_len = n;
        rc = SESS_OK;
    }
cleanup:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ---- JWS ------------------------------------------------------------ */

static const sess__jwk *find_key(const sess_jwks *keys, const json_t *kid)
{
    if (kid == NULL)
        return keys->n == 1 ? &keys->keys[0] : NULL;
    for (size_t i = 0; i < keys->n; i++)
        if (keys->keys[i].has_kid &&
            strcmp(keys->keys[i].kid, json_string_value(kid)) == 0)
            return &keys->keys[i];
    return NULL;
}

static bool alg_fits_key(const sess__alg *alg, const sess__jwk *k)
{
    if (alg->kty != k->kty)
        return false;
    if (alg->crv != NULL && (k->crv == NULL || strcmp(alg->crv, k->crv) != 0))
        return false;
    /* A key that names its algorithm is used with that one only. */
    return k->alg == NULL || k->alg == alg;
}

int sess__jws_verify(const sess_jwks *keys, const char *token, size_t len,
                     unsigned algs, json_t **header, uint8_t **payload,
                     size_t *payload_len, sess_jwt_reason *reason,
                     sess_err *err)
{
    const char *dot1, *dot2;
    uint8_t *hdr = NULL, *body = NULL, *sig = NULL;
    size_t hdr_n, body_n, sig_n;
    json_t *h = NULL, *alg_v, *kid;
    const sess__alg *alg;
    const sess__jwk *key;
    json_error_t jerr;
    int rc, v;

    *header = NULL;
    *payload = NULL;
    *payload_len = 0;
    *reason = SESS_JWT_R_OK;
    if (len > SESS_JWT_MAX)
        return refuse(reason, err, SESS_JWT_R_TOO_LONG);
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    /* Exactly three parts: a JWE (five) or JSON serialization is not one. */
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return refuse(reason, err, SESS_JWT_R_MALFORMED);
    if (dot1 == token)
        return refuse(reason, err, SESS_JWT_R_MALFORMED);
    rc = sess__b64url_decode_alloc(token, (size_t)(dot1 - token), &hdr, &hdr_n);
    if (rc == SESS_OK)
        rc = sess__b64url_decode_alloc(dot1 + 1, (size_t)(dot2 - dot1 - 1),
                                       &body, &body_n);
    if (rc == SESS_OK)
        rc = sess__b64url_decode_alloc(dot2 + 1,
                                       len - (size_t)(dot2 + 1 - token), &sig,
                                       &sig_n);
    if (rc == SESS_ENOMEM) {
        rc = sess__fail(err, rc, "out of memory");
        goto cleanup;
    }
    if (rc != SESS_OK) {
        rc = refuse(reason, err, SESS_JWT_R_BASE64);
        goto cleanup;
    }
    h = json_loadb((const char *)hdr, hdr_n, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(h)) {
        rc = refuse(reason, err, SESS_JWT_R_HEADER);
        goto cleanup;
    }
    alg_v = json_object_get(h, "alg");
    if (!json_is_string(alg_v)) {
        rc = refuse(reason, err, SESS_JWT_R_HEADER);
        goto cleanup;
    }
    if (strcmp(json_string_value(alg_v), "none") == 0) {
        rc = refuse(reason, err, SESS_JWT_R_ALG_NONE);
        goto cleanup;
    }
    alg = sess__alg_find(json_string_value(alg_v), json_string_length(alg_v));
    if (alg == NULL || (alg->bit & algs) == 0) {
        rc = refuse(reason, err, SESS_JWT_R_ALG);
        goto cleanup;
    }
    if (json_object_get(h, "crit") != NULL) {
        rc = refuse(reason, err, SESS_JWT_R_CRIT);
        goto cleanup;
    }
    kid = json_object_get(h, "kid");
    if (kid != NULL && !json_is_string(kid)) {
        rc = refuse(reason, err, SESS_JWT_R_HEADER);
        goto cleanup;
    }
    key = find_key(keys, kid);
    if (key == NULL) {
        rc = refuse(reason, err, SESS_JWT_R_KID);
        goto cleanup;
    }
    if (!alg_fits_key(alg, key)) {
        rc = refuse(reason, err, SESS_JWT_R_ALG_KEY);
        goto cleanup;
    }
    v = verify_sig(key->pkey, alg, (const uint8_t *)token,
                   (size_t)(dot2 - token), sig, sig_n);
    if (v < 0) {
        rc = sess__fail(err, SESS_ECRYPTO, "signature check failed to run");
        goto cleanup;
    }
    if (v == 0) {
        rc = refuse(reason, err, SESS_JWT_R_SIGNATURE);
        goto cleanup;
    }
    *header = h;
    h = NULL;
    *payload = body;
    body = NULL;
    *payload_len = body_n;
    rc = SESS_OK;
cleanup:
    json_decref(h);
    free(hdr);
    free(body);
    free(sig);
    return rc;
}

/* ---- JWT ------------------------------------------------------------ */

void sess_jwt_verify_opts_init(sess_jwt_verify_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->typ = "at+jwt";
    opts->leeway = SESS_JWT_LEEWAY_DEFAULT;
    opts->require_exp = true;
}

/* RFC 7515 4.1.9: "application/" may be omitted; media types compare
 * case-insensitively. */
static bool typ_matches(const char *got, const char *want)
{
    if (strncasecmp(got, "application/", 12) == 0)
        got += 12;
    if (strncasecmp(want, "application/", 12) == 0)
        want += 12;
    return strcasecmp(got, want) == 0;
}

static bool aud_matches(const json_t *aud, const char *want)
{
    size_t i;
    json_t *a;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, a)
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return true;
    return false;
}

/* Check the registered claims of "c"; SESS_JWT_R_OK or why not. */
static sess_jwt_reason check_claims(const json_t *c,
                                    const sess_jwt_verify_opts *o, double now)
{
    static const char *const strings[] = {"iss", "sub", "jti"};
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    json_t *iat = json_object_get(c, "iat"), *aud = json_object_get(c, "aud");
    double leeway = (double)o->leeway;

    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        json_t *v = json_object_get(c, strings[i]);
        if (v != NULL && !json_is_string(v))
            return SESS_JWT_R_CLAIM_TYPE;
    }
    if ((exp && !json_is_number(exp)) || (nbf && !json_is_number(nbf)) ||
        (iat && !json_is_number(iat)))
        return SESS_JWT_R_CLAIM_TYPE;
    if (aud != NULL && !json_is_string(aud) && !json_is_array(aud))
        return SESS_JWT_R_CLAIM_TYPE;
    if (exp == NULL && o->require_exp)
        return SESS_JWT_R_NO_EXP;
    if (exp != NULL && now >= json_number_value(exp) + leeway)
        return SESS_JWT_R_EXPIRED;
    if (nbf != NULL && now + leeway < json_number_value(nbf))
        return SESS_JWT_R_NOT_YET;
    if (iat != NULL && json_number_value(iat) > now + leeway)
        return SESS_JWT_R_IAT_FUTURE;
    if (o->issuer != NULL) {
        json_t *iss = json_object_get(c, "iss");
        if (iss == NULL || strcmp(json_string_value(iss), o->issuer) != 0)
            return SESS_JWT_R_ISS;
    }
    if (o->audience != NULL && (aud == NULL || !aud_matches(aud, o->audience)))
        return SESS_JWT_R_AUD;
    return SESS_JWT_R_OK;
}

int sess_jwt_verify(const sess_jwks *keys, const char *token, size_t len,
                    const sess_jwt_verify_opts *opts, json_t **claims,
                    sess_jwt_reason *reason, sess_err *err)
{
    sess_jwt_reason dummy;
    json_t *h = NULL, *c = NULL, *typ;
    uint8_t *body = NULL;
    size_t body_n;
    json_error_t jerr;
    sess_jwt_reason r;
    int rc;

    if (reason == NULL)
        reason = &dummy;
    *reason = SESS_JWT_R_OK;
    if (claims != NULL)
        *claims = NULL;
    if (keys == NULL || token == NULL || opts == NULL || opts->leeway < 0)
        return sess__fail(err, SESS_EINVAL, "NULL argument or negative leeway");
    /* RFC 9068 4: a resource server must check that it is the audience. */
    if (opts->audience == NULL && !opts->skip_audience)
        return sess__fail(err, SESS_EINVAL, "no audience to check (set "
                          "skip_audience to verify without)");
    rc = sess__jws_verify(keys, token, len, opts->algs, &h, &body, &body_n,
                          reason, err);
    if (rc != SESS_OK)
        return rc;
    if (opts->typ != NULL) {
        typ = json_object_get(h, "typ");
        if (!json_is_string(typ) || !typ_matches(json_string_value(typ), opts->typ)) {
            rc = refuse(reason, err, SESS_JWT_R_TYP);
            goto cleanup;
        }
    }
    c = json_loadb((const char *)body, body_n, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(c)) {
        rc = refuse(reason, err, SESS_JWT_R_CLAIMS);
        goto cleanup;
    }
    r = check_claims(c, opts, opts->now != 0 ? (double)opts->now
                                             : (double)time(NULL));
    if (r != SESS_JWT_R_OK) {
        rc = refuse(reason, err, r);
        goto cleanup;
    }
    if (claims != NULL) {
        *claims = c;
        c = NULL;
    }
    rc = SESS_OK;
cleanup:
    json_decref(c);
    json_decref(h);
    free(body);
    return rc;
}

/* ---- signing ---------------------------------------------------------- */

/* Append base64url of "b" ("n" bytes) at "out" + "*pos" (room checked by
 * the caller). */
static void put_b64(char *out, size_t *pos, const uint8_t *b, size_t n)
{
    sess__b64url_encode(b, n, out + *pos);
    *pos += SESS_B64URL_LEN(n);
}

int sess__jwt_sign_with(EVP_PKEY *pkey, const sess__alg *alg, const char *kid,
                        const json_t *claims, const char *typ, char **token,
                        sess_err *err)
{
    json_t *h = NULL;
    char *hs = NULL, *cs = NULL, *out = NULL;
    uint8_t sig[SESS__SIG_MAX];
    size_t hn, cn, sig_n = 0, pos = 0, cap;
    int rc;

    *token = NULL;
    if (!json_is_object(claims))
        return sess__fail(err, SESS_EINVAL, "claims must be a JSON object");
    h = json_pack("{s:s, s:s, s:s}", "alg", alg->name, "kid", kid, "typ",
                  typ ? typ : "at+jwt");
    hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
    cs = json_dumps(claims, JSON_COMPACT);
    if (hs == NULL || cs == NULL) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    hn = strlen(hs);
    cn = strlen(cs);
    cap = SESS_B64URL_LEN(hn) + 1 + SESS_B64URL_LEN(cn) + 1 +
          SESS_B64URL_LEN(SESS__SIG_MAX) + 1;
    if (hn > SESS_JWT_MAX || cn > SESS_JWT_MAX) {
        rc = sess__fail(err, SESS_ETOOBIG, "token would exceed %d bytes",
                        SESS_JWT_MAX);
        goto cleanup;
    }
    out = malloc(cap);
    if (out == NULL) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    put_b64(out, &pos, (const uint8_t *)hs, hn);
    out[pos++] = '.';
    put_b64(out, &pos, (const uint8_t *)cs, cn);
    rc = sess__jws_sign_raw(pkey, alg, (const uint8_t *)out, pos, sig, &sig_n);
    if (rc != SESS_OK) {
        rc = sess__fail(err, rc, "signing failed");
        goto cleanup;
    }
    out[pos++] = '.';
    put_b64(out, &pos, sig, sig_n);
    if (pos > SESS_JWT_MAX) {
        rc = sess__fail(err, SESS_ETOOBIG, "token would exceed %d bytes",
                        SESS_JWT_MAX);
        goto cleanup;
    }
    *token = out;
    out = NULL;
    rc = SESS_OK;
cleanup:
    free(out);
    free(hs);
    free(cs);
    json_decref(h);
    return rc;
}
