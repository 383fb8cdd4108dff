/*
 * sess/jwt.h - signed access tokens: JWS compact (RFC 7515) JWTs (RFC 7519,
 * RFC 9068 profile), JWK sets (RFC 7517, RFC 8037), and the signing keys
 * with their lifecycle.  See docs/tokens.md.
 *
 * Verification (services written in C).  sess_jwks_parse() turns a JWK Set
 * into an immutable key set; sess_jwt_verify() checks a token against it.
 * The caller pins the algorithms it accepts; the key (found by "kid")
 * decides which algorithm family may be used with it, never the token's
 * header, so a token cannot pick HMAC with a public key (algorithm
 * confusion).  HMAC ("HS*") and "none" are never accepted.  A key set may
 * be shared by any number of threads; sess_jwt_verify() keeps no state.
 *
 * Signing (sessiond).  A signing keyring (sess_sigkeys) is loaded from a
 * directory of key files, each with a state: "next" (published in the
 * JWKS, not signing yet), "current" (signs; at most one), "retired"
 * (published until "not_after", when every token it signed has expired).
 * A keyring is immutable once loaded and reference counted, so a reload
 * (SIGHUP) builds a new one and swaps it in (sess_sigkeys_slot) while
 * threads still signing with the old one keep it alive.
 *
 * Results follow sess/error.h: SESS_OK, SESS_REJECTED for a refused token
 * (the reason in "*reason", a sess_jwt_reason), negative codes for errors.
 */
#ifndef SESS_JWT_H
#define SESS_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sess/error.h"
#include "sess/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Longest token accepted, in bytes: an access token is a few hundred
 * bytes; a bound keeps parsing cheap for a flood of garbage. */
#define SESS_JWT_MAX 8192
/* Longest JWK Set document and most keys in one set. */
#define SESS_JWKS_MAX_BYTES (256u * 1024u)
#define SESS_JWKS_MAX_KEYS 64
/* Default clock-skew allowance for exp / nbf / iat, in seconds. */
#define SESS_JWT_LEEWAY_DEFAULT 30

/* Algorithms, as bits for sess_jwt_verify_opts.algs.  RFC 7518 names,
 * plus "Ed25519" (RFC 9864, the fully specified name for EdDSA with
 * Ed25519; "EdDSA" is RFC 8037's, which most verifiers know). */
#define SESS_JWT_ALG_TABLE(X)                                               \
    X(EDDSA, "EdDSA", 0)                                                    \
    X(ED25519, "Ed25519", 1)                                                \
    X(ES256, "ES256", 2)                                                    \
    X(ES384, "ES384", 3)                                                    \
    X(ES512, "ES512", 4)                                                    \
    X(RS256, "RS256", 5)                                                    \
    X(RS384, "RS384", 6)                                                    \
    X(RS512, "RS512", 7)                                                    \
    X(PS256, "PS256", 8)                                                    \
    X(PS384, "PS384", 9)                                                    \
    X(PS512, "PS512", 10)

enum {
#define SESS__ALG_BIT(name, text, bit) SESS_JWT_##name = 1u << (bit),
    SESS_JWT_ALG_TABLE(SESS__ALG_BIT)
#undef SESS__ALG_BIT
};
/* The algorithms sessiond signs with: a sane default pin for its tokens. */
#define SESS_JWT_ALGS_SESSIOND                                              \
    (SESS_JWT_EDDSA | SESS_JWT_ED25519 | SESS_JWT_ES256 | SESS_JWT_RS256)

/* Why a token was refused: X(NAME, text).  The enum value is the index. */
#define SESS_JWT_REASON_TABLE(X)                                            \
    X(OK, "valid")                                                          \
    X(TOO_LONG, "token longer than SESS_JWT_MAX bytes")                     \
    X(MALFORMED, "not a JWS compact serialization (three dot-separated "    \
                 "parts)")                                                  \
    X(BASE64, "a part is not canonical base64url (padding, a character "    \
              "outside the alphabet or non-zero trailing bits)")           \
    X(HEADER, "header is not a JSON object without duplicate members")     \
    X(ALG_NONE, "alg \"none\" (an unsigned token) is never accepted")       \
    X(ALG, "alg is not one of the accepted algorithms")                    \
    X(ALG_KEY, "alg does not fit the key (algorithm confusion)")           \
    X(CRIT, "crit names header parameters this verifier does not "         \
            "understand")                                                   \
    X(KID, "no published key with that kid")                               \
    X(SIGNATURE, "signature does not verify")                              \
    X(TYP, "typ is not the expected token type")                           \
    X(CLAIMS, "payload is not a JSON object without duplicate members")    \
    X(CLAIM_TYPE, "a registered claim has the wrong JSON type")            \
    X(EXPIRED, "token expired (exp)")                                      \
    X(NOT_YET, "token not valid yet (nbf)")                                \
    X(IAT_FUTURE, "token issued in the future (iat)")                      \
    X(NO_EXP, "token has no exp")                                          \
    X(ISS, "iss is not the expected issuer")                               \
    X(AUD, "aud does not name this audience")

typedef enum sess_jwt_reason {
#define SESS__REASON_ENUM(name, text) SESS_JWT_R_##name,
    SESS_JWT_REASON_TABLE(SESS__REASON_ENUM)
#undef SESS__REASON_ENUM
    SESS_JWT_R__COUNT
} sess_jwt_reason;

/* Static description of "reason"; never NULL. */
const char *sess_jwt_reason_text(sess_jwt_reason reason);
/* Symbolic name ("EXPIRED"); never NULL. */
const char *sess_jwt_reason_name(sess_jwt_reason reason);

/* Name of the algorithm bit "alg" (one bit), or NULL. */
const char *sess_jwt_alg_name(unsigned alg);
/* The bit of algorithm "name" (case-sensitive, as RFC 7515 says), or 0. */
unsigned sess_jwt_alg_from_name(const char *name);

/* ---- verification ---------------------------------------------------- */

typedef struct sess_jwks sess_jwks;

/*
 * Parse a JWK Set ("json", "len" bytes, at most SESS_JWKS_MAX_BYTES) into
 * "*out" (caller frees with sess_jwks_free()).  Keys of types this library
 * does not verify with (kty other than OKP/EC/RSA, OKP curves other than
 * Ed25519), with "use" other than "sig", "key_ops" without "verify" or an
 * unknown "alg" are skipped, as RFC 7517 section 5 says.  The whole set is
 * refused (SESS_EINVAL, the reason in "err") for: bad JSON or duplicate
 * members, a key holding private or secret material ("d", "p", "k", ...:
 * a published secret), two keys with one kid, a malformed supported key
 * (non-canonical base64url, an EC point not on its curve, RSA below 2048
 * or above 8192 bits, a bad exponent), an "alg" that does not fit the key.
 * A single JWK (an object with "kty") is accepted as a set of one.
 */
SESS_NODISCARD int sess_jwks_parse(const char *json, size_t len, sess_jwks **out,
                    sess_err *err);

/* Keys in the set (skipped ones not counted), and the kid of key "i"
 * ("" when the key has none). */
size_t sess_jwks_count(const sess_jwks *set);
const char *sess_jwks_kid(const sess_jwks *set, size_t i);

void sess_jwks_free(sess_jwks *set);

typedef struct sess_jwt_verify_opts {
    unsigned algs;          /* SESS_JWT_* bits accepted; 0 accepts none */
    const char *issuer;     /* required "iss"; NULL: not checked */
    const char *audience;   /* must be "aud" or one of its members */
    bool skip_audience;     /* true: "audience" NULL means unchecked
                               (RFC 9068 says a resource server must
                               check it: only for tools like sessctl) */
    const char *typ;        /* expected "typ" ("at+jwt" after _init; the
                               "application/" prefix is optional, RFC
                               7515 section 4.1.9); NULL: not checked */
    int64_t now;            /* seconds since the epoch; 0: the clock */
    int64_t leeway;         /* seconds allowed for clock skew (>= 0) */
    bool require_exp;       /* refuse tokens without exp (true after
                               _init) */
} sess_jwt_verify_opts;

/* Defaults: no algorithm, typ "at+jwt", leeway 30 s, exp required. */
void sess_jwt_verify_opts_init(sess_jwt_verify_opts *opts);

/*
 * Verify the JWS compact token "token" ("len" bytes) against "keys" and
 * "opts": size, strict base64url of all three parts, header JSON (no
 * duplicate members), alg pinned and fitting the key, no "crit", kid
 * known, signature, then typ, exp/nbf/iat with the leeway, iss and aud.
 *
 * SESS_OK: "*claims" (if not NULL) receives the payload object, which the
 * caller releases with json_decref(); "*reason" = SESS_JWT_R_OK.
 * SESS_REJECTED: the token is refused, "*reason" says why (also in "err").
 * Negative: SESS_EINVAL (NULL arguments), SESS_ENOMEM, SESS_ECRYPTO.
 * Thread-safe; the token is never copied into "err".
 */
SESS_NODISCARD int sess_jwt_verify(const sess_jwks *keys, const char *token, size_t len,
                    const sess_jwt_verify_opts *opts, json_t **claims,
                    sess_jwt_reason *reason, sess_err *err);

/* ---- signing keys and their lifecycle -------------------------------- */

typedef enum sess_sigkey_type {
    SESS_SIGKEY_ED25519 = 0,
    SESS_SIGKEY_P256 = 1,       /* ES256 */
    SESS_SIGKEY_RSA = 2,        /* RS256, 2048-bit keys from generate */
} sess_sigkey_type;

typedef enum sess_sigkey_state {
    SESS_SIGKEY_NEXT = 0,
    SESS_SIGKEY_CURRENT = 1,
    SESS_SIGKEY_RETIRED = 2,
} sess_sigkey_state;

/* A key's metadata as "sessctl keys list" shows it.  Times are seconds
 * since the epoch, 0 where not reached yet. */
typedef struct sess_sigkey_info {
    char kid[SESS_KID_MAX + 1];     /* RFC 7638 thumbprint, base64url */
    sess_sigkey_type type;
    sess_sigkey_state state;
    int64_t created;
    int64_t next_at;                /* became "next" (published) */
    int64_t activated;              /* became "current" */
    int64_t retired_at;
    int64_t not_after;              /* retired: dropped from the JWKS */
    bool published;                 /* in the JWKS at the time of loading */
} sess_sigkey_info;

/*
 * Key directory.  Each key is two files: "<kid>.pem", the PKCS#8 private
 * key (mode 0600 or stricter, owned by the running user, like record
 * keys), and "<kid>.json", its metadata.  Files are replaced atomically
 * (write, fsync, rename), so a reloading daemon never reads half a file.
 */

/* Type names "ed25519", "p256", "rsa" (sessctl --type); -1 if unknown. */
int sess_sigkey_type_from_name(const char *name);
const char *sess_sigkey_type_name(sess_sigkey_type type);
const char *sess_sigkey_state_name(sess_sigkey_state state);

/*
 * Generate a key of "type" in "dir" (created 0700 if missing).  It becomes
 * "current" when the directory publishes no key at all (a first key:
 * nothing can have cached a JWKS without it), else "next".  The kid is copied to "kid_out"
 * (SESS_KID_MAX + 1 bytes) if not NULL.  "now" 0 means the clock.
 */
SESS_NODISCARD int sess_sigkeys_generate(const char *dir, sess_sigkey_type type,
                          int64_t now, char *kid_out, sess_err *err);

/*
 * Rotate: the "next" key becomes "current" and the current one "retired"
 * until now + "token_ttl" + "leeway" (every token it signed has expired
 * by then).  Refused (SESS_REJECTED, reason in "err") when there is no
 * next key, more than one, or the next key has been published for less
 * than "min_published" seconds (the JWKS Cache-Control max-age: a
 * verifier holding a cached JWKS would not know the new key yet).
 * "now" 0 means the clock.
 */
SESS_NODISCARD int sess_sigkeys_rotate(const char *dir, int64_t now, int64_t min_published,
                        int64_t token_ttl, int64_t leeway, sess_err *err);

/* Retire key "kid" (next or current) until now + token_ttl + leeway.
 * Retiring the current key leaves nothing signing until a rotate. */
SESS_NODISCARD int sess_sigkeys_retire(const char *dir, const char *kid, int64_t now,
                        int64_t token_ttl, int64_t leeway, sess_err *err);

/*
 * Metadata of every key in "dir", newest first, into "*out" (caller frees
 * with free()), "*n" entries.  "now" 0: the clock (for "published").
 */
SESS_NODISCARD int sess_sigkeys_list(const char *dir, int64_t now, sess_sigkey_info **out,
                      size_t *n, sess_err *err);

typedef struct sess_sigkeys sess_sigkeys;

/* sess_sigkeys_load_dir() flags. */
#define SESS_SIGKEYS_CREATE 0x1u        /* development: create a missing
                                           directory with an Ed25519 key */
#define SESS_SIGKEYS_ED25519_NAME 0x2u  /* Ed25519 keys sign and publish
                                           alg "Ed25519" (RFC 9864), not
                                           "EdDSA" (RFC 8037) */

/*
 * Load the published keys of "dir" (next, current, retired before
 * not_after) into "*out" (release with sess_sigkeys_free()).  With
 * SESS_SIGKEYS_CREATE (development only) a missing or empty directory is
 * created with one fresh Ed25519 key in state current.  A directory
 * without a current key loads (verification and the JWKS still work);
 * sess_jwt_sign() then fails with SESS_ENOKEY.  "now" 0: the clock.
 */
SESS_NODISCARD int sess_sigkeys_load_dir(const char *dir, unsigned flags, int64_t now,
                          sess_sigkeys **out, sess_err *err);

/* Another reference to "keys" (for a thread that keeps using it while a
 * reload swaps in a new keyring); each reference is released with
 * sess_sigkeys_free(). */
sess_sigkeys *sess_sigkeys_ref(sess_sigkeys *keys);
void sess_sigkeys_free(sess_sigkeys *keys);

/* The kid that signs (NULL when there is no current key). */
const char *sess_sigkeys_current_kid(const sess_sigkeys *keys);

/* The published public keys as a key set for sess_jwt_verify() (owned by
 * "keys": valid while the caller holds its reference). */
const sess_jwks *sess_sigkeys_jwks(const sess_sigkeys *keys);

/*
 * The published public keys as an RFC 7517 JWK Set document, compact with
 * sorted members (the same keys give the same bytes), and its ETag: a
 * quoted base64url SHA-256 prefix of exactly those bytes.  Both strings
 * are owned by "keys".  "len" (may be NULL) gets the document's length.
 */
const char *sess_sigkeys_jwks_json(const sess_sigkeys *keys, size_t *len);
const char *sess_sigkeys_jwks_etag(const sess_sigkeys *keys);

/*
 * Sign "claims" (a JSON object, not modified) with the current key of
 * "keys": header {"alg", "kid", "typ"} ("typ" NULL: "at+jwt"; "alg" as
 * the key's JWKS entry says).  On
 * SESS_OK "*token" is a NUL-terminated JWS compact string the caller
 * frees with free().  SESS_ENOKEY without a current key, SESS_ETOOBIG
 * past SESS_JWT_MAX.  Thread-safe.
 */
SESS_NODISCARD int sess_jwt_sign(const sess_sigkeys *keys, const json_t *claims,
                  const char *typ, char **token,
                  sess_err *err);

/*
 * A slot holding the live keyring for a reloading daemon: readers take a
 * reference (sess_sigkeys_slot_get, released with sess_sigkeys_free),
 * a reload publishes a new keyring (sess_sigkeys_slot_set takes over the
 * caller's reference and drops the slot's old one).  Mutex-protected.
 */
typedef struct sess_sigkeys_slot sess_sigkeys_slot;
SESS_NODISCARD int sess_sigkeys_slot_new(sess_sigkeys *initial, sess_sigkeys_slot **out);
sess_sigkeys *sess_sigkeys_slot_get(sess_sigkeys_slot *slot);
void sess_sigkeys_slot_set(sess_sigkeys_slot *slot, sess_sigkeys *keys);
void sess_sigkeys_slot_free(sess_sigkeys_slot *slot);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_JWT_H */
