/*
 * sess/cookie_policy.h - a site's cookie catalogue (every cookie it sets,
 * with its category, purpose and attributes per environment), its
 * validation against RFC 6265bis, the policy version, and the signed
 * consent cookie.
 *
 * The catalogue is a plain struct filled key by key from text
 * (sess_cookie_catalogue_set, the shape of an INI file: one section per
 * cookie), then checked once (sess_cookie_catalogue_check), which also
 * computes the policy version.  After the check it is read-only and may be
 * shared by threads.  The attribute rules a browser enforces (SameSite=None
 * needs Secure, the __Host- and __Secure- prefixes, token names) are the
 * ones of sess_cookie_profile_check() in sess/cookie.h: each rule has one
 * owner.
 *
 * Consent cookie, value format version 1 (cookie-octets only):
 *
 *   c1.<kid>.<policy version>.<issued at, decimal Unix seconds>.<categories,
 *   one hex digit bitmask>.<HMAC-SHA256, base64url without padding>
 *
 * The MAC covers "sessiond consent v1\n" followed by everything before the
 * last '.', under a key derived with HKDF-SHA256 (info "sessiond consent
 * cookie v1") from the keyring key named by <kid>: domain-separated from
 * the record-encryption use of the same key.  Verification is constant
 * time (CRYPTO_memcmp); a cookie for another policy version verifies but
 * is reported as outdated.
 */
#ifndef SESS_COOKIE_POLICY_H
#define SESS_COOKIE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/cookie.h"
#include "sess/error.h"
#include "sess/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* RFC 6265bis section 5.7 (storage model, step 3 and 4): a cookie whose
 * name and value together exceed 4096 octets is ignored by the browser. */
#define SESS_COOKIE_NAME_VALUE_MAX 4096
/* RFC 6265bis section 5.6.2: Max-Age (and Expires) are capped at 400 days. */
#define SESS_COOKIE_MAX_AGE_CAP (400 * 86400)
/* RFC 6265bis section 5.6: an attribute value over 1024 octets is ignored. */
#define SESS_COOKIE_ATTR_MAX 1024
#define SESS_COOKIE_PURPOSE_MAX 255
#define SESS_COOKIE_RETENTION_MAX 63
#define SESS_COOKIE_CATALOGUE_MAX 32     /* cookies in one catalogue */
#define SESS_POLICY_VERSION_MAX 32       /* [A-Za-z0-9_-] */
/* A Set-Cookie value for the largest cookie and its attributes. */
#define SESS_SET_COOKIE_POLICY_MAX (SESS_COOKIE_NAME_VALUE_MAX + 640)
#define SESS_CONSENT_VALUE_MAX 192       /* the consent cookie's value */

typedef enum sess_cookie_category {
    SESS_COOKIE_ESSENTIAL = 0,
    SESS_COOKIE_FUNCTIONAL = 1,
    SESS_COOKIE_ANALYTICS = 2,
    SESS_COOKIE_MARKETING = 3
} sess_cookie_category;

#define SESS_COOKIE_CATEGORIES 4
/* Consent masks: bit (1 << category).  Essential is always granted. */
#define SESS_CONSENT_ALL ((1u << SESS_COOKIE_CATEGORIES) - 1)

/* "essential" ... "marketing" -> enum; SESS_EINVAL if none. */
int sess_cookie_category_parse(const char *s, size_t len,
                               sess_cookie_category *out);
const char *sess_cookie_category_name(sess_cookie_category c);

/* Consent mask -> "essential,functional" (categories in enum order). */
int sess_consent_format_categories(unsigned mask, char *buf, size_t cap);

/* One declared cookie.  "base" holds attributes given for every
 * environment, "env[e]" those given for environment "e"; the *_set masks
 * (SESS_COOKIE_ATTR_* bits) say which fields were given. */
#define SESS_COOKIE_ATTR_SECURE 0x01u
#define SESS_COOKIE_ATTR_HTTP_ONLY 0x02u
#define SESS_COOKIE_ATTR_SAME_SITE 0x04u
#define SESS_COOKIE_ATTR_PATH 0x08u
#define SESS_COOKIE_ATTR_DOMAIN 0x10u
#define SESS_COOKIE_ATTR_MAX_AGE 0x20u

typedef struct sess_cookie_decl {
    char name[SESS_COOKIE_NAME_MAX + 1];
    sess_cookie_category category;
    bool category_set;
    char purpose[SESS_COOKIE_PURPOSE_MAX + 1];
    char retention[SESS_COOKIE_RETENTION_MAX + 1]; /* "" = from max_age */
    sess_cookie_profile base;
    unsigned base_set;
    sess_cookie_profile env[3];
    unsigned env_set[3];
} sess_cookie_decl;

typedef struct sess_cookie_catalogue {
    sess_cookie_decl cookies[SESS_COOKIE_CATALOGUE_MAX];
    size_t n;
    /* [cookie_policy] */
    char version[SESS_POLICY_VERSION_MAX + 1];  /* configured; "" = hash */
    char effective[SESS_POLICY_VERSION_MAX + 1]; /* set by the check */
    char consent_name[SESS_COOKIE_NAME_MAX + 1]; /* "" = env default */
    char consent_effective[SESS_COOKIE_NAME_MAX + 1]; /* set by the check */
    int64_t consent_max_age;                     /* seconds */
    char session_purpose[SESS_COOKIE_PURPOSE_MAX + 1];
} sess_cookie_catalogue;

/* An empty catalogue with the [cookie_policy] defaults (six months of
 * consent, a generic session purpose). */
void sess_cookie_catalogue_init(sess_cookie_catalogue *cat);

/*
 * Set key "key" of cookie "name" from text "value": category, purpose,
 * retention, or an attribute (secure, http_only, same_site, path, domain,
 * max_age), optionally prefixed "development.", "staging." or
 * "production.".  The cookie is declared by its first key.  Errors
 * (SESS_ECONFIG) name the cookie and the key in "err"; a key given twice
 * is an error.
 */
int sess_cookie_catalogue_set(sess_cookie_catalogue *cat, const char *name,
                              const char *key, const char *value,
                              sess_err *err);

/* The attributes of "d" in environment "env" ("out"), from the
 * environment's defaults, then "base", then "env[env]". */
void sess_cookie_decl_resolve(const sess_cookie_decl *d, sess_environment env,
                              sess_cookie_profile *out);

/*
 * Check the whole catalogue in every environment (so a production mistake
 * fails in development too): the RFC 6265bis attribute rules, Max-Age at
 * most 400 days, a category and a purpose for every cookie, no cookie
 * declared twice or under the session or consent cookie's name
 * ("session_name" is the session cookie in "env").  Then fix the consent
 * cookie's name for "env" ("consent_effective") and set "effective" to the
 * policy version: the
 * configured one, else the first 16 hex digits of a SHA-256 over what
 * "env" serves (names, categories, purposes, retention, attributes).  The message names
 * the cookie, the environment and the rule.
 */
int sess_cookie_catalogue_check(sess_cookie_catalogue *cat,
                                sess_environment env,
                                const sess_cookie_profile *session,
                                sess_err *err);

/* The consent cookie's attributes in "env" (host-only, Path=/, SameSite
 * Lax, readable by scripts so a banner knows it has an answer, Secure and
 * __Host- outside development unless consent_name says otherwise). */
void sess_cookie_consent_profile(const sess_cookie_catalogue *cat,
                                 sess_environment env,
                                 sess_cookie_profile *out);

/* The declared cookie called "name" ("len" bytes), or NULL. */
const sess_cookie_decl *sess_cookie_catalogue_find(
    const sess_cookie_catalogue *cat, const char *name, size_t len);

/* SESS_OK when "value" ("len" bytes) may be the value of cookie "name":
 * cookie-octets only (RFC 6265 section 4.1.1: no CTLs, whitespace, DQUOTE,
 * comma, semicolon or backslash), name and value within
 * SESS_COOKIE_NAME_VALUE_MAX.  SESS_ETOOBIG or SESS_EINVAL otherwise. */
int sess_cookie_value_check(const char *name, const char *value, size_t len);

/* "7 days", "1 year", "browser session", ... for a Max-Age. */
void sess_cookie_retention_text(int64_t max_age, char *buf, size_t cap);

/* ---- consent -------------------------------------------------------- */

typedef struct sess_consent_keys sess_consent_keys;

/* Derive the consent MAC keys from every key of "kr" (the caller keeps
 * "kr").  Free with sess_consent_keys_free(), which wipes them. */
int sess_consent_keys_derive(const sess_keyring *kr, sess_consent_keys **out,
                             sess_err *err);
void sess_consent_keys_free(sess_consent_keys *keys);

/* Sign consent "mask" (essential is added) for "version" at "now" into
 * "buf"; returns the length written or a negative error. */
int sess_consent_sign(const sess_consent_keys *keys, const char *version,
                      uint64_t now, unsigned mask, char *buf, size_t cap);

typedef struct sess_consent {
    unsigned mask;             /* granted categories, essential included */
    uint64_t issued_at;
    char kid[SESS_KID_MAX + 1];
} sess_consent;

/*
 * Verify a consent cookie value ("len" bytes, at most
 * SESS_CONSENT_VALUE_MAX).  SESS_OK: authentic, for "version", issued no
 * later than "now" + 60 s and at most "max_age" seconds ago; "out" filled.
 * SESS_CONFLICT: authentic but for another policy version (outdated; "out"
 * filled so withdrawals can still be computed).  SESS_REJECTED: malformed,
 * unknown key id, wrong MAC or expired.  "out" is zeroed otherwise.
 */
int sess_consent_verify(const sess_consent_keys *keys, const char *value,
                        size_t len, const char *version, uint64_t now,
                        int64_t max_age, sess_consent *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_COOKIE_POLICY_H */
