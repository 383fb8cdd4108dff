/*
 * sess/cookie.h - session cookies: profiles per environment, Set-Cookie
 * formatting, and a bounded parser for the Cookie request header.
 *
 * Profiles (docs/security.md invariant 9): production and staging use the __Host-
 * prefix, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, and no
 * Max-Age (a browser-session cookie) unless remember-me.  development drops
 * Secure and the prefix so plain http://localhost works.  A profile that a
 * browser would reject or that weakens the cookie (SameSite=None without
 * Secure, __Host- with Domain or a Path other than /, __Secure- without
 * Secure) is refused by sess_cookie_profile_check().
 */
#ifndef SESS_COOKIE_H
#define SESS_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* RFC 6265 section 6.1: user agents should support at least 4096 bytes
 * per cookie and 3 kB... we bound the whole Cookie header we look at. */
#define SESS_COOKIE_HEADER_MAX 8192
#define SESS_COOKIE_NAME_MAX 64
#define SESS_COOKIE_PATH_MAX 256
#define SESS_COOKIE_DOMAIN_MAX 253      /* RFC 1035 section 2.3.4 */
#define SESS_SET_COOKIE_MAX 1024        /* formatted Set-Cookie value */

typedef enum sess_same_site {
    SESS_SAME_SITE_STRICT = 0,
    SESS_SAME_SITE_LAX = 1,
    SESS_SAME_SITE_NONE = 2
} sess_same_site;

typedef enum sess_environment {
    SESS_ENV_DEVELOPMENT = 0,
    SESS_ENV_STAGING = 1,
    SESS_ENV_PRODUCTION = 2
} sess_environment;

/* "development" / "staging" / "production" -> enum; SESS_EINVAL if none. */
SESS_NODISCARD int sess_environment_parse(const char *s, sess_environment *out);
const char *sess_environment_name(sess_environment e);

typedef struct sess_cookie_profile {
    char name[SESS_COOKIE_NAME_MAX + 1];
    bool secure;
    bool http_only;
    sess_same_site same_site;
    char path[SESS_COOKIE_PATH_MAX + 1];
    char domain[SESS_COOKIE_DOMAIN_MAX + 1]; /* "" = host-only */
    int64_t max_age;    /* -1: browser-session cookie (unless remember) */
} sess_cookie_profile;

/* Fill "p" with the defaults of environment "env". */
void sess_cookie_profile_default(sess_environment env, sess_cookie_profile *p);

/* Reject invalid or weakening profiles; the message names the attribute. */
SESS_NODISCARD int sess_cookie_profile_check(const sess_cookie_profile *p,
                              sess_environment env, sess_err *err);

/* The attribute rules sess_cookie_profile_check applies, one by one (the
 * daemon's configuration reader checks each key with them as it is read).
 * SESS_OK, or SESS_ECONFIG with a message that starts with the key name:
 *   name:   1..SESS_COOKIE_NAME_MAX RFC 6265 token characters;
 *   path:   starts with '/', no whitespace, control characters or ';',
 *           at most SESS_COOKIE_PATH_MAX bytes;
 *   domain: letters, digits, '-' and '.' ("" = host-only), at most
 *           SESS_COOKIE_DOMAIN_MAX bytes. */
SESS_NODISCARD int sess_cookie_name_check(const char *name, sess_err *err);
SESS_NODISCARD int sess_cookie_path_check(const char *path, sess_err *err);
SESS_NODISCARD int sess_cookie_domain_check(const char *domain, sess_err *err);

/* "Strict" / "Lax" / "None" (case-insensitive). */
SESS_NODISCARD int sess_same_site_parse(const char *s, sess_same_site *out);
const char *sess_same_site_name(sess_same_site s);

/*
 * Format the Set-Cookie header value that sets "value" (a session ID).
 * "max_age" < 0 uses the profile's (browser session when that is -1 too);
 * remember-me callers pass the remaining lifetime.  Returns the length
 * written, or a negative error if "cap" is too small.
 */
SESS_NODISCARD int sess_cookie_format(const sess_cookie_profile *p, const char *value,
                       int64_t max_age, char *buf, size_t cap);

/* Format a Set-Cookie value that deletes the cookie (empty, Max-Age=0). */
SESS_NODISCARD int sess_cookie_format_clear(const sess_cookie_profile *p, char *buf,
                             size_t cap);

/*
 * Find the first cookie called "name" in a Cookie request header (RFC 6265
 * section 5.4 syntax, leniently: "a=b; c=d", optional spaces, optional
 * DQUOTEs around the value).  The name matches exactly (case-sensitive).
 * "*value" points into "header".  Returns SESS_OK, SESS_NOTFOUND, or
 * SESS_EINVAL when the header is longer than SESS_COOKIE_HEADER_MAX or
 * holds control characters.
 */
SESS_NODISCARD int sess_cookie_find(const char *header, size_t header_len, const char *name,
                     const char **value, size_t *value_len);

/*
 * Every cookie called "name", in header order: start with *pos = 0 and call
 * until it returns SESS_NOTFOUND; each SESS_OK gives the next value (and
 * advances *pos).  Servers cannot rely on the order of same-named cookies
 * (RFC 6265bis section 8.6, cookie tossing): a sibling subdomain can set
 * one with a longer path that comes first, so callers try each candidate.
 * SESS_EINVAL as for sess_cookie_find (checked on the first call).
 */
SESS_NODISCARD int sess_cookie_next(const char *header, size_t header_len, const char *name,
                     size_t *pos, const char **value, size_t *value_len);

/* SESS_OK when "id" has the form of a session ID: exactly SESS_ID_LEN
 * base64url characters encoding 256 bits (canonical final character). */
SESS_NODISCARD int sess_id_check(const char *id, size_t len);

/* A web origin (RFC 6454): scheme, lower-cased host, port (the scheme's
 * default when none was written, so "https://a" equals "https://a:443"). */
#define SESS_ORIGIN_MAX 300             /* bytes of an origin's text */
typedef struct sess_origin {
    bool https;                         /* else http */
    char host[SESS_COOKIE_DOMAIN_MAX + 1]; /* name, IPv4, or [IPv6] */
    uint16_t port;
} sess_origin;

/* Parse "http(s)://host[:port]" (nothing after; no userinfo, no path).
 * SESS_EINVAL for anything else, "null" included. */
SESS_NODISCARD int sess_origin_parse(const char *s, size_t len, sess_origin *out);

/* The origin of a request from its Host (or X-Forwarded-Host) value
 * "host[:port]" and its scheme.  SESS_EINVAL when "host" is malformed. */
SESS_NODISCARD int sess_origin_from_host(bool https, const char *host, size_t len,
                          sess_origin *out);

bool sess_origin_equal(const sess_origin *a, const sess_origin *b);

/* Serialise (default port omitted); length written, or SESS_ETOOBIG. */
SESS_NODISCARD int sess_origin_format(const sess_origin *o, char *buf, size_t cap);

/*
 * Cross-site request check for unsafe methods (docs/security.md invariant 8):
 * refuses "Sec-Fetch-Site: cross-site", and an Origin that is not a full
 * origin equal (scheme, host and port) to "self" (the request's own
 * origin; NULL when unknown) or to one of the "n" origins of "allowed".
 * "Origin: null" is refused.  NULL header values mean absent; absent
 * headers pass (older clients send neither).  Returns true when the
 * request may proceed.
 */
SESS_NODISCARD bool sess_same_origin_ok(const char *origin, const char *sec_fetch_site,
                         const sess_origin *self, const sess_origin *allowed,
                         size_t n);

/* True for GET, HEAD and OPTIONS only (case-sensitive).  TRACE, CONNECT
 * and every unknown method are unsafe: they get the CSRF checks. */
bool sess_method_is_safe(const char *method);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_COOKIE_H */
