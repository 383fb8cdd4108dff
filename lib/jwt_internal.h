/*
 * jwt_internal.h - what lib/jwk.c, lib/jwt.c and lib/jwt_keys.c share:
 * the algorithm table, the parsed key, strict base64url of any length,
 * the JWS layer under sess_jwt_verify() (tests feed it the non-JWT
 * payloads of the RFC 7520 and Wycheproof vectors) and the JWK export.
 */
#ifndef SESS_JWT_INTERNAL_H
#define SESS_JWT_INTERNAL_H

#include <openssl/evp.h>

#include "sess/jwt.h"

#define SESS__JWK_KID_MAX 255      /* foreign kids; ours are 43 chars */

typedef enum sess__kty { SESS__KTY_OKP, SESS__KTY_EC, SESS__KTY_RSA } sess__kty;

/* One row per algorithm (RFC 7518 section 3.1, RFC 8037, RFC 9864). */
typedef struct sess__alg {
    const char *name;
    unsigned bit;
    sess__kty kty;
    const char *crv;            /* JWK "crv" for OKP / EC, NULL for RSA */
    const char *md;             /* digest name, NULL for EdDSA */
    bool pss;                   /* RSASSA-PSS (salt = digest length) */
    size_t coord;               /* EC: bytes per coordinate (r, s, x, y) */
} sess__alg;

const sess__alg *sess__alg_find(const char *name, size_t len);

typedef struct sess__jwk {
    char kid[SESS__JWK_KID_MAX + 1];
    bool has_kid;
    sess__kty kty;
    const char *crv;            /* static string from the table */
    const sess__alg *alg;       /* the key's own "alg", or NULL */
    EVP_PKEY *pkey;             /* public key; one reference owned */
} sess__jwk;

struct sess_jwks {
    size_t n;
    sess__jwk *keys;
};

/* Allocate a decoded copy of canonical base64url "in" ("len" chars) in
 * "*out" ("*n" bytes; caller frees; an empty input gives a 1-byte
 * buffer and n = 0).  SESS_OK, SESS_EINVAL for a non-canonical input
 * (padding, characters outside the alphabet, non-zero trailing bits,
 * an impossible length), SESS_ENOMEM. */
int sess__b64url_decode_alloc(const char *in, size_t len, uint8_t **out,
                              size_t *n);

/* A key set of one entry per EVP_PKEY (references taken), for the
 * signing keyring's own published keys. */
int sess__jwks_from_pkeys(EVP_PKEY *const *pkeys, const char *const *kids,
                          size_t n, sess_jwks **out, sess_err *err);

/* The public JWK of "pkey" with "kid", "use": "sig" and "alg" (may be
 * NULL), as a new JSON object (caller json_decref()s); NULL on failure. */
json_t *sess__jwk_export(EVP_PKEY *pkey, const char *kid, const char *alg);

/* RFC 7638 SHA-256 thumbprint of "pkey"'s public key, base64url, into
 * "out" (44 bytes).  SESS_OK or SESS_ECRYPTO. */
int sess__jwk_thumbprint(EVP_PKEY *pkey, char out[44]);

/* The JOSE name of "pkey"'s key type and the alg it signs with.
 * Returns NULL for unsupported keys. */
const sess__alg *sess__alg_for_pkey(EVP_PKEY *pkey, bool ed25519_name);

/*
 * The JWS layer: split, decode strictly, check the header (alg pinned in
 * "algs", none refused, crit refused, the key found by kid and fitting
 * the alg) and the signature.  On SESS_OK "*header" and "*payload"
 * ("*payload_len" bytes, NUL-terminated for convenience) belong to the
 * caller (json_decref, free).  SESS_REJECTED with "*reason" otherwise.
 */
int sess__jws_verify(const sess_jwks *keys, const char *token, size_t len,
                     unsigned algs, json_t **header, uint8_t **payload,
                     size_t *payload_len, sess_jwt_reason *reason,
                     sess_err *err);

/* Sign "input" ("len" bytes) with "pkey" under "alg" into "sig" (at least
 * 512 bytes), raw JWS form (r||s for ECDSA).  SESS_OK or SESS_ECRYPTO. */
int sess__jws_sign_raw(EVP_PKEY *pkey, const sess__alg *alg,
                       const uint8_t *input, size_t len, uint8_t *sig,
                       size_t *sig_len);

/* Sign "claims" with "pkey" under "alg" and "kid": the body of
 * sess_jwt_sign(), apart for tests that sign with a given key. */
int sess__jwt_sign_with(EVP_PKEY *pkey, const sess__alg *alg, const char *kid,
                        const json_t *claims, const char *typ, char **token,
                        sess_err *err);

#define SESS__SIG_MAX 1024          /* RSA 8192 bits */

#endif /* SESS_JWT_INTERNAL_H */
