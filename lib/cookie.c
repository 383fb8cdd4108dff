/*
 * cookie.c - session cookie profiles, Set-Cookie formatting, the bounded
 * Cookie-header parser, the session ID form check, and the cross-site
 * request check used for CSRF defence.
 *
 * Everything here is pure: no allocation, no I/O, no locks.  The parser
 * reads at most SESS_COOKIE_HEADER_MAX bytes and never writes.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sess/cookie.h"
#include "sess/session.h"
#include "util.h"

static const char *const env_names[] = {"development", "staging", "production"};

int sess_environment_parse(const char *s, sess_environment *out)
{
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        if (strcmp(s, env_names[i]) == 0) {
            *out = (sess_environment)i;
            return SESS_OK;
        }
    return SESS_EINVAL;
}

const char *sess_environment_name(sess_environment e)
{
    return (unsigned)e < 3 ? env_names[e] : "unknown";
}

static const char *const same_site_names[] = {"Strict", "Lax", "None"};

int sess_same_site_parse(const char *s, sess_same_site *out)
{
    for (size_t i = 0; i < 3; i++)
        if (strcasecmp(s, same_site_names[i]) == 0) {
            *out = (sess_same_site)i;
            return SESS_OK;
        }
    return SESS_EINVAL;
}

const char *sess_same_site_name(sess_same_site s)
{
    return (unsigned)s < 3 ? same_site_names[s] : "Lax";
}

void sess_cookie_profile_default(sess_environment env, sess_cookie_profile *p)
{
    memset(p, 0, sizeof *p);
    /* development runs on plain http://localhost: no Secure, so no prefix
     * (browsers refuse __Host- cookies without Secure). */
    bool dev = env == SESS_ENV_DEVELOPMENT;
    snprintf(p->name, sizeof p->name, "%s", dev ? "sessiond" : "__Host-sessiond");
    p->secure = !dev;
    p->http_only = true;
    p->same_site = SESS_SAME_SITE_LAX;
    p->path[0] = '/';
    p->max_age = -1;
}

/* RFC 6265 section 4.1.1: cookie-name is an RFC 2616 token. */
static bool is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", c);
}

int sess_cookie_profile_check(const sess_cookie_profile *p,
                              sess_environment env, sess_err *err)
{
    size_t nlen = strnlen(p->name, sizeof p->name);
    if (nlen == 0 || nlen > SESS_COOKIE_NAME_MAX)
        return sess__fail(err, SESS_ECONFIG, "cookie.name: must be 1-%d characters",
                          SESS_COOKIE_NAME_MAX);
    for (size_t i = 0; i < nlen; i++)
        if (!is_token_char((unsigned char)p->name[i]))
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.name: character %zu is not allowed in a "
                              "cookie name (RFC 6265 token)", i + 1);
    if (p->path[0] != '/')
        return sess__fail(err, SESS_ECONFIG, "cookie.path: must start with '/'");
    for (const char *c = p->path; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == ';' || *c == 0x7f)
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.path: control character or ';' not allowed");
    for (const char *c = p->domain; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.domain: only letters, digits, '-' and '.'");
    if (p->max_age < -1)
        return sess__fail(err, SESS_ECONFIG,
                          "cookie.max_age: -1 (browser session) or >= 0");
    /* SameSite=None without Secure is dropped by browsers and would send
     * the cookie cross-site over plain HTTP. */
    if (p->same_site == SESS_SAME_SITE_NONE && !p->secure)
        return sess__fail(err, SESS_ECONFIG,
                          "cookie.same_site: None requires cookie.secure = true");
    /* __Host- cookies are Secure, host-only and Path=/ (RFC 6265bis 4.1.3.2):
     * that is what stops a sibling subdomain from tossing a cookie at us. */
    if (strncmp(p->name, "__Host-", 7) == 0) {
        if (!p->secure)
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.name: the __Host- prefix requires cookie.secure = true");
        if (p->domain[0])
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.domain: must be empty with the __Host- prefix");
        if (strcmp(p->path, "/") != 0)
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.path: must be / with the __Host- prefix");
    }
    if (strncmp(p->name, "__Secure-", 9) == 0 && !p->secure)
        return sess__fail(err, SESS_ECONFIG,
                          "cookie.name: the __Secure- prefix requires cookie.secure = true");
    if (env != SESS_ENV_DEVELOPMENT) {
        if (!p->secure)
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.secure: must be true in %s",
                              sess_environment_name(env));
        if (!p->http_only)
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.http_only: must be true in %s (scripts must "
                              "not read the session cookie)",
                              sess_environment_name(env));
    }
    return SESS_OK;
}

static int format_common(const sess_cookie_profile *p, const char *value,
                         int64_t max_age, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s=%s; Path=%s%s%s", p->name, value, p->path,
                     p->domain[0] ? "; Domain=" : "", p->domain);
    if (n < 0 || (size_t)n >= cap)
        return SESS_ETOOBIG;
    size_t used = (size_t)n;
    if (max_age >= 0) {
        n = snprintf(buf + used, cap - used, "; Max-Age=%lld", (long long)max_age);
        if (n < 0 || (size_t)n >= cap - used)
            return SESS_ETOOBIG;
        used += (size_t)n;
    }
    n = snprintf(buf + used, cap - used, "%s%s; SameSite=%s",
                 p->secure ? "; Secure" : "", p->http_only ? "; HttpOnly" : "",
                 sess_same_site_name(p->same_site));
    if (n < 0 || (size_t)n >= cap - used)
        return SESS_ETOOBIG;
    return (int)(used + (size_t)n);
}

int sess_cookie_format(const sess_cookie_profile *p, const char *value,
                       int64_t max_age, char *buf, size_t cap)
{
    return format_common(p, value, max_age >= 0 ? max_age : p->max_age, buf, cap);
}

int sess_cookie_format_clear(const sess_cookie_profile *p, char *buf, size_t cap)
{
    return format_common(p, "", 0, buf, cap);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int sess_cookie_find(const char *header, size_t header_len, const char *name,
                     const char **value, size_t *value_len)
{
    size_t name_len = strlen(name), i = 0;

    if (header_len > SESS_COOKIE_HEADER_MAX)
        return SESS_EINVAL;
    for (size_t k = 0; k < header_len; k++) {
        unsigned char c = (unsigned char)header[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return SESS_EINVAL;
    }
    while (i < header_len) {
        size_t start, eq = 0, end;
        while (i < header_len && (is_ows(header[i]) || header[i] == ';'))
            i++;
        start = i;
        while (i < header_len && header[i] != ';') {
            if (header[i] == '=' && eq == 0)
                eq = i;
            i++;
        }
        end = i;
        if (eq == 0 || eq == start)
            continue;           /* no '=' or empty name: skip the pair */
        size_t nend = eq;
        while (nend > start && is_ows(header[nend - 1]))
            nend--;
        if (nend - start != name_len || memcmp(header + start, name, name_len) != 0)
            continue;
        size_t vs = eq + 1, ve = end;
        while (vs < ve && is_ows(header[vs]))
            vs++;
        while (ve > vs && is_ows(header[ve - 1]))
            ve--;
        if (ve - vs >= 2 && header[vs] == '"' && header[ve - 1] == '"') {
            vs++;
            ve--;
        }
        *value = header + vs;
        *value_len = ve - vs;
        return SESS_OK;
    }
    return SESS_NOTFOUND;
}

int sess_id_check(const char *id, size_t len)
{
    if (!id || len != SESS_ID_LEN)
        return SESS_EINVAL;
    return sess__b64url_check(id, len, 32);
}

bool sess_method_is_safe(const char *method)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(method, safe[i]) == 0)
            return true;
    return false;
}

/* Case-insensitive equality of "a" ("alen" bytes) with NUL-terminated "b". */
static bool eq_nocase(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

bool sess_same_origin_ok(const char *origin, const char *sec_fetch_site,
                         const char *host, const char *const *allowed,
                         size_t n)
{
    /* Fetch Metadata: the browser itself says the request is cross-site. */
    if (sec_fetch_site && strcasecmp(sec_fetch_site, "cross-site") == 0)
        return false;
    if (!origin)
        return true;
    size_t olen = strlen(origin);
    /* "null" comes from sandboxed frames, data: URLs and some redirects:
     * never same-origin. */
    if (olen == 0 || olen > 1024 || strcmp(origin, "null") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (allowed[i] && eq_nocase(origin, olen, allowed[i]))
            return true;
    if (!host || !host[0])
        return false;
    const char *sep = strstr(origin, "://");
    if (!sep)
        return false;
    const char *ohost = sep + 3;
    if (strstr(host, "://"))
        return eq_nocase(origin, olen, host);
    return eq_nocase(ohost, strlen(ohost), host);
}
