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

int sess_cookie_name_check(const char *name, sess_err *err)
{
    size_t nlen = strnlen(name, SESS_COOKIE_NAME_MAX + 1);
    if (nlen == 0 || nlen > SESS_COOKIE_NAME_MAX)
        return sess__fail(err, SESS_ECONFIG, "cookie.name: must be 1-%d characters",
                          SESS_COOKIE_NAME_MAX);
    for (size_t i = 0; i < nlen; i++)
        if (!is_token_char((unsigned char)name[i]))
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.name: character %zu is not allowed in a "
                              "cookie name (RFC 6265 token)", i + 1);
    return SESS_OK;
}

int sess_cookie_path_check(const char *path, sess_err *err)
{
    if (path[0] != '/')
        return sess__fail(err, SESS_ECONFIG, "cookie.path: must start with '/'");
    /* RFC 6265 section 4.1.1: any CHAR but CTLs and ';'.  Whitespace is
     * refused as well: browsers trim it, so the path set would not be the
     * path configured. */
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == ';' || (unsigned char)*c >= 0x7f)
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.path: spaces, control characters and ';' "
                              "are not allowed");
    if (strlen(path) > SESS_COOKIE_PATH_MAX)
        return sess__fail(err, SESS_ECONFIG, "cookie.path: at most %d bytes",
                          SESS_COOKIE_PATH_MAX);
    return SESS_OK;
}

int sess_cookie_domain_check(const char *domain, sess_err *err)
{
    for (const char *c = domain; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
            return sess__fail(err, SESS_ECONFIG,
                              "cookie.domain: only letters, digits, '-' and '.'");
    if (strlen(domain) > SESS_COOKIE_DOMAIN_MAX)
        return sess__fail(err, SESS_ECONFIG, "cookie.domain: at most %d bytes",
                          SESS_COOKIE_DOMAIN_MAX);
    return SESS_OK;
}

int sess_cookie_profile_check(const sess_cookie_profile *p,
                              sess_environment env, sess_err *err)
{
    int rc;
    if ((rc = sess_cookie_name_check(p->name, err)) != SESS_OK ||
        (rc = sess_cookie_path_check(p->path, err)) != SESS_OK ||
        (rc = sess_cookie_domain_check(p->domain, err)) != SESS_OK)
        return rc;
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

int sess_issued_cookie(const sess_ctx *ctx, const sess_cookie_profile *p,
                       const sess_issued *is, char *buf, size_t cap)
{
    int64_t max_age = -1;
    if (is->remember) {
        /* The cookie lives exactly as long as the session can: a longer
         * one would only carry a dead ID around. */
        uint64_t now = sess_ctx_now(ctx);
        max_age = is->expires_at > now ? (int64_t)(is->expires_at - now) : 0;
    }
    return sess_cookie_format(p, is->id, max_age, buf, cap);
}

int sess_cookie_format_clear(const sess_cookie_profile *p, char *buf, size_t cap)
{
    return format_common(p, "", 0, buf, cap);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int sess_cookie_next(const char *header, size_t header_len, const char *name,
                     size_t *pos, const char **value, size_t *value_len)
{
    size_t name_len = strlen(name), i = *pos;

    if (header_len > SESS_COOKIE_HEADER_MAX)
        return SESS_EINVAL;
    /* The whole header is checked on the first call only: later calls
     * resume inside a header already found clean. */
    for (size_t k = 0; i == 0 && k < header_len; k++) {
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
        /* Exact, case-sensitive name match (RFC 6265 section 5.4): a
         * "__host-sessiond" set by a sibling without the prefix's
         * guarantees is not our "__Host-sessiond". */
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
        *pos = i;
        return SESS_OK;
    }
    *pos = header_len;
    return SESS_NOTFOUND;
}

int sess_cookie_find(const char *header, size_t header_len, const char *name,
                     const char **value, size_t *value_len)
{
    size_t pos = 0;
    return sess_cookie_next(header, header_len, name, &pos, value, value_len);
}

int sess_id_check(const char *id, size_t len)
{
    if (!id || len != SESS_ID_LEN)
        return SESS_EINVAL;
    return sess__b64url_check(id, len, 32);
}

bool sess_method_is_safe(const char *method)
{
    /* RFC 9110 section 9.2.1 counts TRACE as safe for the protocol, but it
     * reflects the request (cross-site tracing) and is nothing an
     * application serves: here it is unsafe, like CONNECT and every method
     * we do not know.  Methods are case-sensitive (section 9.1). */
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS"};
    if (!method)
        return false;
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(method, safe[i]) == 0)
            return true;
    return false;
}

static bool host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

int sess_origin_from_host(bool https, const char *host, size_t len,
                          sess_origin *out)
{
    size_t hend, i = 0;
    memset(out, 0, sizeof *out);
    out->https = https;
    if (!host || len == 0)
        return SESS_EINVAL;
    if (host[0] == '[') {
        /* An IPv6 literal (RFC 3986 section 3.2.2), kept with brackets. */
        const char *close = memchr(host, ']', len);
        if (!close)
            return SESS_EINVAL;
        hend = (size_t)(close - host) + 1;
        for (i = 1; i + 1 < hend; i++) {
            unsigned char c = (unsigned char)host[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
                return SESS_EINVAL;
        }
        if (hend == 2)
            return SESS_EINVAL;
    } else {
        for (hend = 0; hend < len && host[hend] != ':'; hend++)
            if (!host_char((unsigned char)host[hend]))
                return SESS_EINVAL;
        if (hend == 0)
            return SESS_EINVAL;
    }
    if (hend >= sizeof out->host)
        return SESS_EINVAL;
    for (i = 0; i < hend; i++) {
        char c = host[i];
        out->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out->host[hend] = '\0';
    unsigned port = https ? 443 : 80;
    if (hend < len) {
        if (host[hend] != ':' || hend + 1 == len || len - hend - 1 > 5)
            return SESS_EINVAL;
        port = 0;
        for (i = hend + 1; i < len; i++) {
            if (host[i] < '0' || host[i] > '9')
                return SESS_EINVAL;
            port = port * 10 + (unsigned)(host[i] - '0');
        }
        if (port == 0 || port > 65535)
            return SESS_EINVAL;
    }
    out->port = (uint16_t)port;
    return SESS_OK;
}

int sess_origin_parse(const char *s, size_t len, sess_origin *out)
{
    memset(out, 0, sizeof *out);
    if (!s || len > SESS_ORIGIN_MAX)
        return SESS_EINVAL;
    /* RFC 6454 section 6.1: scheme "://" host [":" port], nothing else
     * (no path, no userinfo); only the two schemes a browser page has. */
    if (len > 8 && strncasecmp(s, "https://", 8) == 0)
        return sess_origin_from_host(true, s + 8, len - 8, out);
    if (len > 7 && strncasecmp(s, "http://", 7) == 0)
        return sess_origin_from_host(false, s + 7, len - 7, out);
    return SESS_EINVAL;
}

bool sess_origin_equal(const sess_origin *a, const sess_origin *b)
{
    return a->https == b->https && a->port == b->port &&
           strcmp(a->host, b->host) == 0;
}

int sess_origin_format(const sess_origin *o, char *buf, size_t cap)
{
    bool dflt = o->port == (o->https ? 443 : 80);
    int n = dflt ? snprintf(buf, cap, "%s://%s", o->https ? "https" : "http", o->host)
                 : snprintf(buf, cap, "%s://%s:%u", o->https ? "https" : "http",
                            o->host, (unsigned)o->port);
    if (n < 0 || (size_t)n >= cap)
        return SESS_ETOOBIG;
    return n;
}

bool sess_same_origin_ok(const char *origin, const char *sec_fetch_site,
                         const sess_origin *self, const sess_origin *allowed,
                         size_t n)
{
    sess_origin o;
    /* Fetch Metadata: the browser itself says the request is cross-site. */
    if (sec_fetch_site && strcasecmp(sec_fetch_site, "cross-site") == 0)
        return false;
    if (!origin)
        return true;
    /* "null" comes from sandboxed frames, data: URLs and some redirects:
     * never same-origin.  Anything that is not an origin is refused too. */
    if (sess_origin_parse(origin, strlen(origin), &o) != SESS_OK)
        return false;
    /* The full origin (RFC 6454 section 5): scheme, host and port.  An
     * http:// page on the same host, or another port of it, is another
     * origin and may be someone else's. */
    if (self && sess_origin_equal(&o, self))
        return true;
    for (size_t i = 0; i < n; i++)
        if (sess_origin_equal(&o, &allowed[i]))
            return true;
    return false;
}
