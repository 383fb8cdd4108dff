/*
 * sess/set_cookie.h - a bounded parser for the Set-Cookie response header
 * (RFC 6265bis section 5.6) and the cookie-date algorithm (section 5.1.1).
 *
 * The parser only parses: it says what the header asks for and leaves the
 * storage model (domain matching against the request host, default path,
 * replacement, eviction) to the caller, which knows the request.  sessctl
 * audit reads the session cookie's attributes through it.
 */
#ifndef SESS_SET_COOKIE_H
#define SESS_SET_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* RFC 6265bis section 5.6 step 5 and 6: a name plus value over 4096 bytes
 * aborts the cookie; an attribute value over 1024 bytes is ignored. */
#define SESS_SET_COOKIE_NAME_VALUE_MAX 4096
#define SESS_SET_COOKIE_ATTR_MAX 1024
/* We never look at more than this much of one header line. */
#define SESS_SET_COOKIE_LINE_MAX 8192

typedef enum sess_set_cookie_same_site {
    SESS_SC_SAME_SITE_UNSET = 0,   /* attribute absent */
    SESS_SC_SAME_SITE_DEFAULT = 1, /* present with an unknown value */
    SESS_SC_SAME_SITE_STRICT = 2,
    SESS_SC_SAME_SITE_LAX = 3,
    SESS_SC_SAME_SITE_NONE = 4
} sess_set_cookie_same_site;

typedef struct sess_set_cookie {
    char name[SESS_SET_COOKIE_NAME_VALUE_MAX + 1];
    char value[SESS_SET_COOKIE_NAME_VALUE_MAX + 1];
    bool has_expires;
    int64_t expires;            /* Unix seconds (cookie-date, UTC) */
    bool has_max_age;
    int64_t max_age;            /* seconds; <= 0 means "expire now" */
    bool has_domain;            /* leading '.' removed, lower-cased */
    char domain[SESS_SET_COOKIE_ATTR_MAX + 1];
    bool has_path;              /* only a value starting with '/' */
    char path[SESS_SET_COOKIE_ATTR_MAX + 1];
    bool secure;
    bool http_only;
    sess_set_cookie_same_site same_site;
    char same_site_raw[16];     /* the value as sent (cut), for reports */
} sess_set_cookie;

/* Parse one Set-Cookie header value ("line" of "len" bytes, no NUL
 * needed).  SESS_OK and "out" filled, or SESS_EINVAL when the algorithm
 * says to ignore the whole header (control characters, an empty name and
 * value, name plus value too long, a line over SESS_SET_COOKIE_LINE_MAX);
 * the message names the reason and never quotes the value. */
SESS_NODISCARD int sess_set_cookie_parse(const char *line, size_t len,
                                         sess_set_cookie *out, sess_err *err);

/* RFC 6265bis section 5.1.1: a cookie-date to Unix seconds.  SESS_OK or
 * SESS_EINVAL (no valid date: missing part, out of range, 31 February). */
SESS_NODISCARD int sess_cookie_date_parse(const char *s, size_t len, int64_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_SET_COOKIE_H */
