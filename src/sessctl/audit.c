/*
 * audit.c - "sessctl audit URL": a black-box audit of a website's session
 * handling (docs/audit.md describes every check, what it sends and what it
 * concludes).  This file holds the command line, the login and the checks;
 * audit_http.c does HTTP, audit_html.c reads pages, audit_random.c the
 * randomness statistics, audit_report.c the output, audit_checks.c the
 * table of checks.
 *
 * The order of the audit, chosen so that a check that may end a session
 * (logout, binding, timeouts) runs on a login of its own:
 *   1. the target page, anonymous: can it be reached; cookies it sets;
 *   2. a login (the form read from --login-url, hidden fields carried
 *      over), the session cookie found as the cookie that changed at login
 *      and without which --protected-url is no longer served;
 *   3. cookie attributes, caching, IDs in URLs, tampering, CSRF;
 *   4. fixation (an ID issued before login, and one planted by us);
 *   5. the randomness sample (anonymous requests if the site hands out
 *      sessions to visitors, else logins), id-length, id-randomness;
 *   6. logout, binding, then --probe-timeouts, --policy.
 *
 * Secrets.  The password comes from --credentials FILE or the environment
 * (SESSCTL_AUDIT_PASSWORD), never from the command line (the process list
 * is readable by every user); it is wiped after use.  No session ID is ever
 * printed: evidence shows a prefix and a hash (audit_mask).
 *
 * Exit codes: 0 clean, 1 a failed check at or above --fail-on, 2 usage, 3
 * the site could not be audited (unreachable, login not recognised, or
 * interrupted before a verdict).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit.h"
#include "sess.h"

/* Evidence and URLs are cut to their fixed buffers on purpose: a page or
 * header the site sends must not make the report unbounded. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define EXIT_FINDINGS 1
#define EXIT_USAGE 2
#define EXIT_UNAUDITABLE 3
#define DEFAULT_SAMPLES 200
#define DEFAULT_MAX_REQUESTS 1000
#define DEFAULT_RATE 20.0            /* requests per second */
#define SAMPLES_MAX 20000
#define PROBE_TIMEOUTS_MAX 7200      /* seconds */
#define CRED_MAX 1024

/* ---- small helpers ---------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("sessctl audit: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(usage: sessctl audit URL [options]; sessctl audit --help)\n", stderr);
    return EXIT_USAGE;
}

__attribute__((format(printf, 2, 3)))
static void note(audit_ctx *a, const char *fmt, ...)
{
    size_t off = strlen(a->notes);
    va_list ap;
    if (off + 4 >= sizeof a->notes)
        return;
    if (off)
        off += (size_t)snprintf(a->notes + off, sizeof a->notes - off, "; ");
    va_start(ap, fmt);
    vsnprintf(a->notes + off, sizeof a->notes - off, fmt, ap);
    va_end(ap);
}

static audit_finding *finding(audit_ctx *a, const char *id, audit_status st,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static audit_finding *finding(audit_ctx *a, const char *id, audit_status st,
                              const char *fmt, ...)
{
    const audit_check_def *d = audit_check_find(id);
    if (!d || a->nfindings >= AUDIT_FINDINGS_MAX)
        return NULL;
    /* One finding per check: a later verdict replaces an earlier one. */
    audit_finding *f = NULL;
    for (size_t i = 0; i < a->nfindings; i++)
        if (a->findings[i].def == d)
            f = &a->findings[i];
    if (!f)
        f = &a->findings[a->nfindings++];
    f->def = d;
    f->status = st;
    f->severity = d->severity;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->evidence, sizeof f->evidence, fmt, ap);
    va_end(ap);
    /* Say why a check could not run when the budget or Ctrl-C stopped it. */
    const char *why = audit_interrupted ? "interrupted" : a->budget_exhausted
                      ? "the request budget (--max-requests) ran out" : NULL;
    size_t len = strlen(f->evidence);
    if (st == ST_NOT_TESTED && why && !strstr(f->evidence, why))
        snprintf(f->evidence + len, sizeof f->evidence - len, " (%s)", why);
    return f;
}

static bool have_finding(const audit_ctx *a, const char *id)
{
    for (size_t i = 0; i < a->nfindings; i++)
        if (!strcmp(a->findings[i].def->id, id))
            return true;
    return false;
}

/* Every check not reached gets "not tested" with the reason. */
static void not_tested_rest(audit_ctx *a, const char *why)
{
    size_t n;
    const audit_check_def *defs = audit_check_table(&n);
    for (size_t i = 0; i < n; i++)
        if (!have_finding(a, defs[i].id))
            finding(a, defs[i].id, ST_NOT_TESTED, "%s", why);
}

void audit_seen_cookie(audit_ctx *a, const sess_set_cookie *sc)
{
    if (sc->has_max_age && sc->max_age <= 0)
        return;                        /* a deletion, not a cookie set */
    sess_set_cookie *c = audit_jar_get(&a->seen, sc->name);
    if (!c && a->seen.n < AUDIT_JAR_MAX)
        c = &a->seen.c[a->seen.n++];
    if (c)
        *c = *sc;
}

void audit_note_location(audit_ctx *a, const char *loc)
{
    if (a->nlocs < AUDIT_LOCS_MAX)
        snprintf(a->locs[a->nlocs++], sizeof a->locs[0], "%s", loc);
}

/* Does "hay" contain the ID, raw or percent-encoded? */
static bool contains_id(const char *hay, const char *id)
{
    if (!hay || !id || strlen(id) < 8)
        return false;
    if (strstr(hay, id))
        return true;
    char *enc = curl_easy_escape(NULL, id, 0);
    bool hit = enc && strcmp(enc, id) && strstr(hay, enc);
    curl_free(enc);
    return hit;
}

static bool is_loopback_host(const char *h)
{
    return !strcasecmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "[::1]") ||
           !strcmp(h, "::1");
}

/* ---- the audit's state ---------------------------------------------------- */

typedef struct audit_run {
    audit_ctx *a;
    char login_url[URL_MAX_AUDIT];
    char protected_url[URL_MAX_AUDIT];
    char logout_url[URL_MAX_AUDIT];
    char login_path[URL_MAX_AUDIT];
    char protected_path[URL_MAX_AUDIT];
    char origin[URL_MAX_AUDIT];
    bool https, loopback, have_login;
    char cookie[SESS_SET_COOKIE_NAME_VALUE_MAX + 1];   /* the session cookie's name */
    sess_set_cookie attrs;                  /* as it was set at login */
    bool anon_ok;                           /* the protected page opens anonymously */
    bool anon_has_user;
    bool pre_login_had_cookie;              /* issued to anonymous visitors */
    char sample_url[URL_MAX_AUDIT];         /* where anonymous sessions come from */
} audit_run;

/* The origin "scheme://host[:port]" as a browser sends it in Origin. */
static void origin_header(const audit_run *r, char *out, size_t cap)
{
    char o[URL_MAX_AUDIT];
    snprintf(o, sizeof o, "%s", r->origin);
    /* drop a default port */
    size_t n = strlen(o);
    if ((r->https && n > 4 && !strcmp(o + n - 4, ":443")) ||
        (!r->https && n > 3 && !strcmp(o + n - 3, ":80")))
        o[n - (r->https ? 4 : 3)] = '\0';
    snprintf(out, cap, "Origin: %s", o);
}

/* Is this answer the protected page, as a logged-in user sees it? */
static bool authed(const audit_run *r, const audit_resp *resp)
{
    char path[URL_MAX_AUDIT];
    if (resp->status < 200 || resp->status > 299)
        return false;
    if (!audit_url_path(resp->url, path, sizeof path) && r->login_path[0] &&
        !strcmp(path, r->login_path) && strcmp(r->login_path, r->protected_path))
        return false;
    if (!r->anon_ok)
        return true;
    /* The page opens anonymously too: tell them apart by the user name. */
    return r->a->user && resp->body && strstr(resp->body, r->a->user) && !r->anon_has_user;
}

/* GET "url" (a variant of the protected page) with "j" (plus "extra"
 * headers): is it served as to the logged-in user? */
static int probe_at(audit_run *r, const char *url, audit_jar *j, const char *const *extra,
                    bool *ok, long *status, audit_resp *keep)
{
    audit_resp resp;
    int rc = audit_fetch(r->a, "GET", url, NULL, j, extra, &resp);
    if (rc != AUDIT_OK)
        return rc;
    *ok = authed(r, &resp);
    /* The evidence names the first answer (a 302 to the login page, a
     * 401), not the login page it led to. */
    if (status)
        *status = resp.first_status;
    if (keep)
        *keep = resp;
    else
        audit_resp_free(&resp);
    return AUDIT_OK;
}

static int probe(audit_run *r, audit_jar *j, const char *const *extra, bool *ok, long *status,
                 audit_resp *keep)
{
    return probe_at(r, r->protected_url, j, extra, ok, status, keep);
}

/* ---- forms ------------------------------------------------------------------ */

static void form_append(char *body, size_t cap, const char *name, const char *value)
{
    char *n = curl_easy_escape(NULL, name, 0);
    char *v = curl_easy_escape(NULL, value, 0);
    size_t off = strlen(body);
    if (n && v)
        snprintf(body + off, cap - off, "%s%s=%s", off ? "&" : "", n, v);
    if (v)
        OPENSSL_cleanse(v, strlen(v));
    curl_free(n);
    curl_free(v);
}

static bool skip_field(const audit_field *f)
{
    static const char *const skip[] = {"submit", "button", "reset", "image", "file",
                                       "checkbox", "radio"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcasecmp(f->type, skip[i]))
            return true;
    return false;
}

/* Does this hidden field look like an unpredictable token (at least 16
 * characters of an ID-like alphabet)? */
static bool looks_like_token(const audit_field *f)
{
    size_t n = strlen(f->value);
    if (strcasecmp(f->type, "hidden") || n < 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)f->value[i]) && !strchr("-_+/=.:", f->value[i]))
            return false;
    return true;
}

/* ---- login ------------------------------------------------------------------- */

/* Log in with "j": GET the login page, fill its form, POST it, follow
 * same-origin redirects.  "page" gets the login page's extraction. */
static int login(audit_run *r, audit_jar *j, audit_resp *final)
{
    audit_ctx *a = r->a;
    audit_resp lp;
    audit_html *h = calloc(1, sizeof *h);
    int rc;
    if (!h)
        return AUDIT_ENOMEM;
    rc = audit_fetch(a, "GET", r->login_url, NULL, j, NULL, &lp);
    if (rc != AUDIT_OK) {
        free(h);
        return rc;
    }
    audit_html_extract(lp.body, lp.len, h);
    audit_form *form = NULL;
    for (int i = 0; i < h->nforms && !form; i++) {
        audit_form *f = &h->forms[i];
        for (int k = 0; k < f->nfields; k++)
            if ((a->pass_field && !strcmp(f->fields[k].name, a->pass_field)) ||
                (!a->pass_field && !strcasecmp(f->fields[k].type, "password")))
                form = f;
    }
    if (!form) {
        note(a, "no login form (no password field%s%s) on %s (HTTP %ld)",
             a->pass_field ? " named " : "", a->pass_field ? a->pass_field : "",
             r->login_url, lp.status);
        audit_resp_free(&lp);
        free(h);
        return 1;
    }
    char *body = calloc(1, 16384);
    if (!body) {
        audit_resp_free(&lp);
        free(h);
        return AUDIT_ENOMEM;
    }
    const char *uf = a->user_field, *pf = a->pass_field;
    for (int k = 0; k < form->nfields; k++) {
        audit_field *f = &form->fields[k];
        if (!pf && !strcasecmp(f->type, "password"))
            pf = f->name;
        if (!uf && (!strcasecmp(f->type, "text") || !strcasecmp(f->type, "email")))
            uf = f->name;
    }
    bool submit_done = false;
    for (int k = 0; k < form->nfields; k++) {
        audit_field *f = &form->fields[k];
        if (uf && !strcmp(f->name, uf))
            form_append(body, 16384, f->name, a->user ? a->user : "");
        else if (pf && !strcmp(f->name, pf))
            form_append(body, 16384, f->name, a->password ? a->password : "");
        else if (!strcasecmp(f->type, "submit") && !submit_done) {
            form_append(body, 16384, f->name, f->value);
            submit_done = true;
        } else if (!skip_field(f))
            form_append(body, 16384, f->name, f->value);   /* hidden fields: CSRF tokens */
    }
    char action[URL_MAX_AUDIT];
    if (audit_url_resolve(lp.url, form->action[0] ? form->action : lp.url, action, sizeof action))
        snprintf(action, sizeof action, "%s", lp.url);
    char hdr_origin[URL_MAX_AUDIT + 16], hdr_ref[URL_MAX_AUDIT + 16], hdr_csrf[600];
    origin_header(r, hdr_origin, sizeof hdr_origin);
    snprintf(hdr_ref, sizeof hdr_ref, "Referer: %s", lp.url);
    snprintf(hdr_csrf, sizeof hdr_csrf, "X-CSRF-Token: %s", h->meta_csrf);
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", hdr_origin, hdr_ref,
                          "Sec-Fetch-Site: same-origin", h->meta_csrf[0] ? hdr_csrf : NULL, NULL};
    bool is_get = !strcasecmp(form->method, "get");
    audit_resp_free(&lp);
    rc = audit_fetch(a, is_get ? "GET" : "POST", action, body, j, hdrs, final);
    OPENSSL_cleanse(body, 16384);     /* it held the password */
    free(body);
    free(h);
    return rc;
}

/* ---- checks --------------------------------------------------------------- */

static void attrs_text(const sess_set_cookie *c, char *out, size_t cap)
{
    char v[160];
    audit_mask(c->value, v, sizeof v);
    snprintf(out, cap, "Set-Cookie: %s=%s%s%s%s%s%s%s%s%s%s%s", c->name, v,
             c->has_path ? "; Path=" : "", c->has_path ? c->path : "",
             c->has_domain ? "; Domain=" : "", c->has_domain ? c->domain : "",
             c->has_max_age || c->has_expires ? "; (persistent)" : "",
             c->secure ? "; Secure" : "", c->http_only ? "; HttpOnly" : "",
             c->same_site ? "; SameSite=" : "", c->same_site ? c->same_site_raw : "",
             "");
}

static void check_cookie_attributes(audit_run *r)
{
    audit_ctx *a = r->a;
    const sess_set_cookie *c = &r->attrs;
    char at[1024];
    attrs_text(c, at, sizeof at);

    if (c->http_only)
        finding(a, "cookie-httponly", ST_PASS, "%s", at);
    else
        finding(a, "cookie-httponly", ST_FAIL, "no HttpOnly: scripts can read it. %s", at);

    if (!r->https)
        finding(a, "cookie-secure", ST_NA, "cannot be satisfied over http (the site was "
                "audited over plain http; audit the https URL). %s", at);
    else if (c->secure)
        finding(a, "cookie-secure", ST_PASS, "%s", at);
    else
        finding(a, "cookie-secure", ST_FAIL, "no Secure over https: the browser would send "
                "it over plain http too. %s", at);

    switch (c->same_site) {
    case SESS_SC_SAME_SITE_STRICT:
    case SESS_SC_SAME_SITE_LAX:
        finding(a, "cookie-samesite", ST_PASS, "SameSite=%s", c->same_site_raw);
        break;
    case SESS_SC_SAME_SITE_NONE: {
        audit_finding *f = finding(a, "cookie-samesite", ST_FAIL,
                                   "SameSite=None: sent on every cross-site request. %s", at);
        if (f)
            f->severity = SEV_MEDIUM;
        break;
    }
    default:
        finding(a, "cookie-samesite", ST_FAIL, "no valid SameSite attribute%s%s%s (browsers "
                "differ: Chrome defaults to Lax, others send it cross-site). %s",
                c->same_site ? " (\"" : "", c->same_site ? c->same_site_raw : "",
                c->same_site ? "\")" : "", at);
    }

    bool host_pfx = !strncmp(c->name, "__Host-", 7), sec_pfx = !strncmp(c->name, "__Secure-", 9);
    if (!r->https) {
        finding(a, "cookie-prefix", ST_NA, "cannot be satisfied over http (__Host- and "
                "__Secure- need Secure, which needs https); name \"%s\"", c->name);
    } else if (host_pfx) {
        if (c->secure && !c->has_domain && c->has_path && !strcmp(c->path, "/"))
            finding(a, "cookie-prefix", ST_PASS, "__Host- with Secure, Path=/, no Domain");
        else
            finding(a, "cookie-prefix", ST_FAIL, "__Host- prefix without Secure, Path=/ and "
                    "no Domain: browsers reject the cookie. %s", at);
    } else if (sec_pfx) {
        if (c->secure)
            finding(a, "cookie-prefix", ST_PASS, "__Secure- with Secure (__Host- would "
                    "also keep subdomains from setting it)");
        else
            finding(a, "cookie-prefix", ST_FAIL, "__Secure- prefix without Secure. %s", at);
    } else {
        finding(a, "cookie-prefix", ST_FAIL, "name \"%s\" has neither __Host- nor __Secure-: "
                "a subdomain or a plain-http answer can set or overwrite it", c->name);
    }

    if (c->has_domain)
        finding(a, "cookie-scope", ST_FAIL, "Domain=%s: the cookie goes to every subdomain",
                c->domain);
    else if (c->has_path && strcmp(c->path, "/"))
        finding(a, "cookie-scope", ST_PASS, "host-only; Path=%s (narrower than the site; "
                "paths are no security boundary)", c->path);
    else
        finding(a, "cookie-scope", ST_PASS, "host-only (no Domain), Path=%s",
                c->has_path ? c->path : "(default)");

    time_t now = time(NULL);
    if (c->has_max_age && c->max_age > 0)
        finding(a, "cookie-persistent-session", ST_FAIL, "Max-Age=%lld: the browser keeps "
                "the session for %lld s after it closes", (long long)c->max_age,
                (long long)c->max_age);
    else if (!c->has_max_age && c->has_expires && c->expires > (int64_t)now)
        finding(a, "cookie-persistent-session", ST_FAIL, "Expires in the future (%lld s "
                "from now): the browser keeps the session after it closes",
                (long long)(c->expires - (int64_t)now));
    else
        finding(a, "cookie-persistent-session", ST_PASS, "a browser-session cookie "
                "(no Expires, no Max-Age)");

    size_t sz = strlen(c->name) + strlen(c->value);
    if (sz > SESS_SET_COOKIE_NAME_VALUE_MAX - 96)
        finding(a, "cookie-size", ST_FAIL, "name and value are %zu bytes (browsers keep up "
                "to 4096)", sz);
    else
        finding(a, "cookie-size", ST_PASS, "name and value are %zu bytes", sz);
}

/* Cache-Control of the authenticated page. */
static void check_cache(audit_run *r, const audit_resp *page)
{
    if (strstr(page->cache_control, "no-store"))
        finding(r->a, "cache-control-authenticated", ST_PASS, "Cache-Control: %s",
                page->cache_control);
    else
        finding(r->a, "cache-control-authenticated", ST_FAIL, "%s answered with "
                "Cache-Control: %s%s%s", r->protected_url,
                page->cache_control[0] ? page->cache_control : "(none)",
                page->pragma[0] ? "; Pragma: " : "", page->pragma);
}

/* The ID in links, forms, Location headers; and accepted from the query. */
static void check_id_in_url(audit_run *r, const char *id, const audit_resp *page,
                            const audit_html *h)
{
    audit_ctx *a = r->a;
    char where[512] = "";
    for (int i = 0; i < a->nlocs && !where[0]; i++)
        if (contains_id(a->locs[i], id))
            snprintf(where, sizeof where, "a Location header");
    for (int i = 0; h && i < h->nlinks && !where[0]; i++)
        if (contains_id(h->links[i], id))
            snprintf(where, sizeof where, "a link or form action of %s", r->protected_url);
    if (!where[0] && contains_id(page->url, id))
        snprintf(where, sizeof where, "the URL of %s", r->protected_url);
    char m[160];
    audit_mask(id, m, sizeof m);
    if (where[0]) {
        finding(a, "id-in-url", ST_FAIL, "the session ID %s appears in %s", m, where);
        return;
    }
    /* Accepted from the query string, without the cookie? */
    char *n = curl_easy_escape(NULL, r->cookie, 0);
    char *v = curl_easy_escape(NULL, id, 0);
    char url[URL_MAX_AUDIT * 2];
    snprintf(url, sizeof url, "%s%s%s=%s", r->protected_url,
             strchr(r->protected_url, '?') ? "&" : "?", n ? n : "", v ? v : "");
    if (v)
        OPENSSL_cleanse(v, strlen(v));
    curl_free(n);
    curl_free(v);
    audit_jar empty;
    if (audit_jar_init(&empty))
        return;
    bool ok = false;
    long st = 0;
    int rc = probe_at(r, url, &empty, NULL, &ok, &st, NULL);
    OPENSSL_cleanse(url, sizeof url);
    audit_jar_free(&empty);
    if (rc != AUDIT_OK)
        finding(a, "id-in-url", ST_NOT_TESTED, "the query-string probe did not complete");
    else if (ok)
        finding(a, "id-in-url", ST_FAIL, "the protected page opened with the ID in the query "
                "string (?%s=...) and no cookie (HTTP %ld)", r->cookie, st);
    else
        finding(a, "id-in-url", ST_PASS, "not in %d Location headers nor %d links/forms; "
                "?%s=ID without the cookie is refused (HTTP %ld)", a->nlocs,
                h ? h->nlinks : 0, r->cookie, st);
}

/* Error pages that give the server away. */
static const char *const leak_markers[] = {
    "Traceback (most recent call last)", "    at ", "Stack trace", "stack trace",
    "Fatal error", "Warning</b>:", "on line <b>", "Werkzeug Debugger", "Exception in thread",
    "java.lang.", "SQLSTATE", "Notice</b>:",
};

static void check_tampering(audit_run *r, audit_jar *session)
{
    audit_ctx *a = r->a;
    audit_jar t;
    if (audit_jar_copy(&t, session))
        return;
    sess_set_cookie *c = audit_jar_get(&t, r->cookie);
    if (!c || strlen(c->value) < 4) {
        audit_jar_free(&t);
        return;
    }
    /* Flip one character in the middle, to another of the same class. */
    size_t n = strlen(c->value), i = n / 2;
    char ch = c->value[i];
    c->value[i] = isdigit((unsigned char)ch) ? (ch == '9' ? '0' : (char)(ch + 1))
                  : isalpha((unsigned char)ch) ? (ch == 'z' || ch == 'Z' ? (char)(ch - 1) : (char)(ch + 1))
                  : 'A';
    audit_resp resp;
    bool ok = false;
    long st = 0;
    int rc = probe(r, &t, NULL, &ok, &st, &resp);
    audit_jar_free(&t);
    if (rc != AUDIT_OK) {
        finding(a, "tampering", ST_NOT_TESTED, "the request did not complete");
        return;
    }
    const char *leak = NULL;
    for (size_t k = 0; k < sizeof leak_markers / sizeof leak_markers[0] && !leak; k++)
        if (resp.body && strstr(resp.body, leak_markers[k]))
            leak = leak_markers[k];
    if (ok) {
        audit_finding *f = finding(a, "tampering", ST_FAIL, "a session cookie with character "
                                   "%zu changed still opened %s (HTTP %ld)", i,
                                   r->protected_url, st);
        if (f)
            f->severity = SEV_CRITICAL;
    } else if (resp.status >= 500 || leak) {
        audit_finding *f = finding(a, "tampering", ST_FAIL, "a modified cookie got HTTP %ld%s%s%s",
                                   st, leak ? " with \"" : "", leak ? leak : "", leak ? "\" in the page" : "");
        if (f)
            f->severity = SEV_MEDIUM;
    } else {
        finding(a, "tampering", ST_PASS, "a modified cookie is refused like none (HTTP %ld)", st);
    }
    audit_resp_free(&resp);
}

/* Accepted = the application did the work: 2xx, or a redirect not to the
 * login page. */
static bool post_accepted(const audit_run *r, const audit_resp *resp)
{
    if (resp->status >= 200 && resp->status < 300) {
        char path[URL_MAX_AUDIT];
        return !(r->login_path[0] && !audit_url_path(resp->url, path, sizeof path) &&
                 !strcmp(path, r->login_path));
    }
    return false;
}

static void check_csrf(audit_run *r, audit_jar *session, const audit_html *h)
{
    audit_ctx *a = r->a;
    const audit_form *form = NULL;
    char action[URL_MAX_AUDIT], lpath[URL_MAX_AUDIT] = "";
    if (r->logout_url[0])
        audit_url_path(r->logout_url, lpath, sizeof lpath);
    for (int i = 0; i < h->nforms && !form; i++) {
        const audit_form *f = &h->forms[i];
        char p[URL_MAX_AUDIT];
        if (strcasecmp(f->method, "post"))
            continue;
        if (audit_url_resolve(r->protected_url, f->action[0] ? f->action : r->protected_url,
                              action, sizeof action) || !audit_same_origin(action, r->origin))
            continue;
        if (!audit_url_path(action, p, sizeof p) && ((lpath[0] && !strcmp(p, lpath)) ||
                                                     strstr(p, "logout") || strstr(p, "signout")))
            continue;                     /* logging out is tested on its own */
        form = f;
    }
    if (!form) {
        finding(a, "csrf-token", ST_NOT_TESTED, "no state-changing (POST) form on %s",
                r->protected_url);
        return;
    }
    const audit_field *token = NULL;
    for (int k = 0; k < form->nfields && !token; k++)
        if (looks_like_token(&form->fields[k]))
            token = &form->fields[k];
    bool meta = h->meta_csrf[0] != '\0';

    /* The form's body with and without its token. */
    char *with = calloc(1, 16384), *without = calloc(1, 16384);
    if (!with || !without) {
        free(with);
        free(without);
        return;
    }
    for (int k = 0; k < form->nfields; k++) {
        const audit_field *f = &form->fields[k];
        if (skip_field(f) && strcasecmp(f->type, "submit"))
            continue;
        const char *v = f->value[0] ? f->value
                        : !strcasecmp(f->type, "number") ? "1" : "audit";
        form_append(with, 16384, f->name, v);
        if (f != token)
            form_append(without, 16384, f->name, v);
    }
    char ho[URL_MAX_AUDIT + 16], hx[600];
    origin_header(r, ho, sizeof ho);
    snprintf(hx, sizeof hx, "X-CSRF-Token: %s", h->meta_csrf);
    const char *ct = "Content-Type: application/x-www-form-urlencoded";
    const char *control[] = {ct, ho, "Sec-Fetch-Site: same-origin", meta ? hx : NULL, NULL};
    const char *plain[] = {ct, NULL};
    const char *foreign[] = {ct, "Origin: https://attacker.example", NULL};
    const char *fetchsite[] = {ct, "Sec-Fetch-Site: cross-site", NULL};
    struct { const char *name; const char *const *hdrs; const char *body; bool accepted; long st; }
        probes[] = {
            {"the form as the page sends it", control, with, false, 0},
            {"without the token", plain, without, false, 0},
            {"without the token, Origin: https://attacker.example", foreign, without, false, 0},
            {"without the token, Sec-Fetch-Site: cross-site", fetchsite, without, false, 0},
        };
    int rc = AUDIT_OK;
    for (size_t p = 0; p < 4 && rc == AUDIT_OK; p++) {
        audit_resp resp;
        rc = audit_request(a, "POST", action, probes[p].body, session, probes[p].hdrs, &resp);
        if (rc == AUDIT_OK) {
            probes[p].st = resp.status;
            probes[p].accepted = post_accepted(r, &resp) ||
                                 (resp.status >= 300 && resp.status < 400 &&
                                  !(r->login_path[0] && strstr(resp.location, r->login_path)));
            audit_resp_free(&resp);
        }
    }
    free(with);
    free(without);
    if (rc != AUDIT_OK) {
        finding(a, "csrf-token", ST_NOT_TESTED, "the probes did not complete");
        return;
    }
    char ev[AUDIT_EVIDENCE_MAX];
    snprintf(ev, sizeof ev, "form POST %s: token %s; the page's own request: HTTP %ld; "
             "without the token: HTTP %ld (%s); with a foreign Origin: HTTP %ld (%s); with "
             "Sec-Fetch-Site: cross-site: HTTP %ld (%s)", form->action[0] ? form->action : "(self)",
             token ? "in a hidden field" : meta ? "in <meta name=csrf-token> (sent as X-CSRF-Token)" : "none seen",
             probes[0].st, probes[1].st, probes[1].accepted ? "accepted" : "refused",
             probes[2].st, probes[2].accepted ? "accepted" : "refused", probes[3].st,
             probes[3].accepted ? "accepted" : "refused");
    if (!probes[0].accepted) {
        finding(a, "csrf-token", ST_NOT_TESTED, "the form's own request was refused, so "
                "refusals say nothing: %s", ev);
        return;
    }
    if (probes[2].accepted || probes[3].accepted) {
        audit_finding *f = finding(a, "csrf-token", ST_FAIL, "a cross-site POST is accepted: %s", ev);
        if (f && (r->attrs.same_site == SESS_SC_SAME_SITE_LAX ||
                  r->attrs.same_site == SESS_SC_SAME_SITE_STRICT))
            f->severity = SEV_MEDIUM;   /* SameSite keeps the cookie off it in browsers */
    } else {
        finding(a, "csrf-token", ST_PASS, "%s%s", ev, probes[1].accepted ?
                " (the Origin / Fetch Metadata check is the defence)" : "");
    }
}

/* A value of the session cookie's shape the server never issued. */
static void planted_value(const char *like, char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(like);
    unsigned char rnd[256];
    if (n < 16)
        n = 16;
    if (n >= cap)
        n = cap - 1;
    if (n > sizeof rnd)
        n = sizeof rnd;
    if (RAND_bytes(rnd, (int)n) != 1)
        memset(rnd, 7, n);
    bool lower_hex = true;
    for (size_t i = 0; like[i]; i++)
        if (!strchr("0123456789abcdefghijklmnopqrstuv", like[i]))
            lower_hex = false;
    for (size_t i = 0; i < n; i++)
        out[i] = lower_hex ? "0123456789abcdefghijklmnopqrstuv"[rnd[i] % 32] : b64[rnd[i] % 62];
    out[n] = '\0';
}

static void check_fixation(audit_run *r, const char *first_pre, const char *first_post)
{
    audit_ctx *a = r->a;
    char ev[AUDIT_EVIDENCE_MAX] = "";
    bool fail = false;
    /* (a) an ID the server issued to the anonymous visitor. */
    if (first_pre) {
        char m[160];
        audit_mask(first_pre, m, sizeof m);
        if (first_post && !strcmp(first_pre, first_post)) {
            fail = true;
            snprintf(ev, sizeof ev, "the ID issued before login (%s) is the authenticated ID "
                     "after login; ", m);
        } else {
            snprintf(ev, sizeof ev, "the ID issued before login (%s) was replaced at login; ", m);
        }
    }
    /* (b) an ID we plant ourselves (a site without strict mode adopts it). */
    audit_jar j;
    if (audit_jar_init(&j))
        return;
    char planted[SESS_SET_COOKIE_NAME_VALUE_MAX + 1];
    const char *fmt;
    bool sc;
    const char *rnd = audit_random_part(r->attrs.value, &fmt, &sc);
    if (strcmp(fmt, "plain") && strcmp(fmt, "PHP session ID")) {
        snprintf(ev + strlen(ev), sizeof ev - strlen(ev), "a planted ID was not tried (%s "
                 "values are signed)", fmt);
    } else {
        planted_value(rnd, planted, sizeof planted);
        audit_jar_set(&j, r->cookie, planted);
        audit_resp resp;
        int rc = login(r, &j, &resp);
        if (rc == AUDIT_OK) {
            audit_resp_free(&resp);
            sess_set_cookie *now = audit_jar_get(&j, r->cookie);
            bool kept = now && !strcmp(now->value, planted);
            bool ok = false;
            if (kept && probe(r, &j, NULL, &ok, NULL, NULL) == AUDIT_OK && ok) {
                fail = true;
                snprintf(ev + strlen(ev), sizeof ev - strlen(ev), "an ID we chose and planted "
                         "before login was accepted and became the authenticated session");
            } else {
                snprintf(ev + strlen(ev), sizeof ev - strlen(ev), "an ID we planted before "
                         "login was %s", kept ? "kept but does not open the page" : "replaced");
            }
        } else {
            snprintf(ev + strlen(ev), sizeof ev - strlen(ev), "the planted-ID login did not "
                     "complete");
        }
    }
    OPENSSL_cleanse(planted, sizeof planted);
    audit_jar_free(&j);
    finding(a, "session-fixation", fail ? ST_FAIL : ST_PASS, "%s", ev);
}

/* Find the logout form on a page (its action is the logout URL). */
static const audit_form *logout_form(const audit_run *r, const audit_html *h)
{
    char lp[URL_MAX_AUDIT];
    if (audit_url_path(r->logout_url, lp, sizeof lp))
        return NULL;
    for (int i = 0; i < h->nforms; i++) {
        char act[URL_MAX_AUDIT], p[URL_MAX_AUDIT];
        if (!audit_url_resolve(r->protected_url, h->forms[i].action, act, sizeof act) &&
            !audit_url_path(act, p, sizeof p) && !strcmp(p, lp))
            return &h->forms[i];
    }
    return NULL;
}

static void check_logout(audit_run *r)
{
    audit_ctx *a = r->a;
    if (!r->logout_url[0]) {
        finding(a, "logout-invalidation", ST_NOT_TESTED, "no --logout-url given");
        finding(a, "logout-cookie-cleared", ST_NOT_TESTED, "no --logout-url given");
        return;
    }
    audit_jar j;
    audit_resp resp, page;
    audit_html *h = calloc(1, sizeof *h);
    if (!h || audit_jar_init(&j)) {
        free(h);
        return;
    }
    bool ok = false;
    char *before = NULL;
    if (login(r, &j, &resp) != AUDIT_OK)
        goto incomplete;
    audit_resp_free(&resp);
    if (probe(r, &j, NULL, &ok, NULL, &page) != AUDIT_OK)
        goto incomplete;
    audit_html_extract(page.body, page.len, h);
    audit_resp_free(&page);
    sess_set_cookie *c = audit_jar_get(&j, r->cookie);
    if (!ok || !c)
        goto incomplete;
    before = strdup(c->value);
    if (!before)
        goto incomplete;

    /* Log out the way the page does: its form (method, hidden fields),
     * the page's CSRF token in X-CSRF-Token, a same-origin Origin. */
    const audit_form *f = logout_form(r, h);
    char body[4096] = "", ho[URL_MAX_AUDIT + 16], hx[600];
    for (int k = 0; f && k < f->nfields; k++)
        if (!skip_field(&f->fields[k]))
            form_append(body, sizeof body, f->fields[k].name, f->fields[k].value);
    origin_header(r, ho, sizeof ho);
    snprintf(hx, sizeof hx, "X-CSRF-Token: %s", h->meta_csrf);
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", ho,
                          "Sec-Fetch-Site: same-origin", h->meta_csrf[0] ? hx : NULL, NULL};
    const char *method = f && !strcasecmp(f->method, "get") ? "GET" : "POST";
    if (audit_fetch(a, method, r->logout_url, body, &j, hdrs, &resp) != AUDIT_OK)
        goto incomplete;
    long lst = resp.status;
    audit_resp_free(&resp);
    if ((lst == 404 || lst == 405) && !strcmp(method, "POST")) {
        if (audit_fetch(a, "GET", r->logout_url, NULL, &j, hdrs, &resp) != AUDIT_OK)
            goto incomplete;
        lst = resp.status;
        audit_resp_free(&resp);
    }
    sess_set_cookie *after = audit_jar_get(&j, r->cookie);
    bool cleared = !after || strcmp(after->value, before) != 0;
    finding(a, "logout-cookie-cleared", cleared ? ST_PASS : ST_FAIL,
            cleared ? "the logout answer (HTTP %ld) deleted or replaced the session cookie"
                    : "after the logout (HTTP %ld) the browser still holds the old session "
                      "cookie", lst);

    /* Replay the cookie captured before the logout. */
    audit_jar replay;
    if (audit_jar_copy(&replay, &j))
        goto incomplete;
    audit_jar_set(&replay, r->cookie, before);
    long st = 0;
    int rc = probe(r, &replay, NULL, &ok, &st, NULL);
    audit_jar_free(&replay);
    if (rc != AUDIT_OK)
        goto incomplete;
    char m[160];
    audit_mask(before, m, sizeof m);
    if (ok)
        finding(a, "logout-invalidation", ST_FAIL, "the cookie captured before logout (%s) "
                "still opens %s after logging out (HTTP %ld; logout answered HTTP %ld)", m,
                r->protected_url, st, lst);
    else
        finding(a, "logout-invalidation", ST_PASS, "the cookie captured before logout (%s) is "
                "refused afterwards (HTTP %ld)", m, st);
    goto out;
incomplete:
    if (!have_finding(a, "logout-invalidation"))
        finding(a, "logout-invalidation", ST_NOT_TESTED, "the logout sequence did not complete");
    if (!have_finding(a, "logout-cookie-cleared"))
        finding(a, "logout-cookie-cleared", ST_NOT_TESTED, "the logout sequence did not complete");
out:
    if (before) {
        OPENSSL_cleanse(before, strlen(before));
        free(before);
    }
    audit_jar_free(&j);
    free(h);
}

static void check_binding(audit_run *r)
{
    audit_ctx *a = r->a;
    audit_jar j;
    audit_resp resp;
    if (audit_jar_init(&j))
        return;
    bool ua_ok = false, ip_ok = false;
    long st1 = 0, st2 = 0;
    int rc = login(r, &j, &resp);
    if (rc == AUDIT_OK) {
        audit_resp_free(&resp);
        const char *ua[] = {"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", NULL};
        rc = probe(r, &j, ua, &ua_ok, &st1, NULL);
    }
    if (rc == AUDIT_OK) {
        const char *ip[] = {"X-Forwarded-For: 198.51.100.23", "X-Real-IP: 198.51.100.23", NULL};
        rc = probe(r, &j, ip, &ip_ok, &st2, NULL);
    }
    audit_jar_free(&j);
    if (rc != AUDIT_OK) {
        finding(a, "binding", ST_NOT_TESTED, "the requests did not complete");
        return;
    }
    finding(a, "binding", ua_ok && ip_ok ? ST_FAIL : ST_PASS,
            "with another User-Agent the session %s (HTTP %ld); with X-Forwarded-For "
            "198.51.100.23 it %s (HTTP %ld). A proxy in front decides whether the header "
            "reaches the application; from outside only the header can change",
            ua_ok ? "still works" : "is refused", st1, ip_ok ? "still works" : "is refused", st2);
}

/* Idle and absolute timeouts, within --probe-timeouts seconds: sessions
 * left idle for growing delays (each probed once: a probe is activity),
 * and one kept busy, probed every quarter of the shortest delay. */
static void check_timeouts(audit_run *r)
{
    audit_ctx *a = r->a;
    unsigned W = a->probe_timeouts;
    if (!W) {
        finding(a, "session-timeout", ST_NOT_TESTED, "not probed (--probe-timeouts SECONDS "
                "lets the audit wait that long)");
        return;
    }
    enum { K = 4 };
    audit_jar idle[K], busy;
    unsigned delay[K];
    bool alive[K], made[K] = {false};
    int rc = AUDIT_OK;
    for (int k = 0; k < K; k++)
        delay[k] = W >> (K - 1 - k);     /* W/8, W/4, W/2, W */
    if (audit_jar_init(&busy))
        return;
    struct timespec t0;
    audit_resp resp;
    for (int k = 0; k < K && rc == AUDIT_OK; k++) {
        if (audit_jar_init(&idle[k])) {
            rc = AUDIT_ENOMEM;
            break;
        }
        made[k] = true;
        rc = login(r, &idle[k], &resp);
        if (rc == AUDIT_OK)
            audit_resp_free(&resp);
    }
    if (rc == AUDIT_OK && (rc = login(r, &busy, &resp)) == AUDIT_OK)
        audit_resp_free(&resp);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double busy_died = -1, step = delay[0] > 4 ? delay[0] / 4.0 : 1.0, next_busy = step;
    int idle_died = -1;
    for (int k = 0; k < K && rc == AUDIT_OK; k++) {
        for (;;) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double el = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
            if (audit_interrupted) {
                rc = AUDIT_EINTR;
                break;
            }
            if (busy_died < 0 && el >= next_busy) {
                bool ok = false;
                rc = probe(r, &busy, NULL, &ok, NULL, NULL);
                if (rc != AUDIT_OK)
                    break;
                if (!ok)
                    busy_died = el;
                next_busy += step;
            }
            if (el >= delay[k])
                break;
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (rc != AUDIT_OK)
            break;
        rc = probe(r, &idle[k], NULL, &alive[k], NULL, NULL);
        if (rc == AUDIT_OK && !alive[k] && idle_died < 0)
            idle_died = k;
    }
    for (int k = 0; k < K; k++)
        if (made[k])
            audit_jar_free(&idle[k]);
    audit_jar_free(&busy);
    if (rc != AUDIT_OK) {
        finding(a, "session-timeout", ST_NOT_TESTED, "the timeout probe did not complete");
        return;
    }
    char ev[512];
    if (idle_died >= 0)
        snprintf(ev, sizeof ev, "idle timeout between %u and %u s", idle_died ? delay[idle_died - 1] : 0,
                 delay[idle_died]);
    else
        snprintf(ev, sizeof ev, "no idle timeout within %u s", W);
    if (busy_died >= 0)
        snprintf(ev + strlen(ev), sizeof ev - strlen(ev), "; a session kept busy ended "
                 "after about %.0f s (an absolute lifetime, or rotation this probe does not follow)", busy_died);
    else
        snprintf(ev + strlen(ev), sizeof ev - strlen(ev), "; a busy session lived %u s", W);
    if (idle_died >= 0)
        finding(a, "session-timeout", ST_PASS, "%s", ev);
    else if (W >= 3600)
        finding(a, "session-timeout", ST_FAIL, "%s", ev);
    else
        finding(a, "session-timeout", ST_NOT_TESTED, "%s (a longer --probe-timeouts may "
                "find one)", ev);
}

/* ---- the randomness sample -------------------------------------------------- */

static void progress(audit_ctx *a, size_t done, size_t total)
{
    if (a->quiet || total == 0)
        return;
    if (a->progress_tty) {
        int w = 40, fill = (int)(w * done / total);
        fprintf(stderr, "\r  sampling session IDs [%.*s%*s] %zu/%zu", fill,
                "########################################", w - fill, "", done, total);
        if (done == total)
            fputc('\n', stderr);
    } else if (done == total || done % (total / 10 > 20 ? 20 : total / 10 ? total / 10 : 1) == 0) {
        fprintf(stderr, "sessctl audit: sampled %zu of %zu session IDs\n", done, total);
    }
}

static void check_randomness(audit_run *r)
{
    audit_ctx *a = r->a;
    bool anon = r->pre_login_had_cookie && r->sample_url[0];
    unsigned cost = anon ? 1 : 3;
    unsigned left = a->max_requests > a->requests ? a->max_requests - a->requests : 0;
    unsigned reserve = 40;
    size_t n = a->samples;
    if (left < reserve + cost * 2)
        n = 0;
    else if ((left - reserve) / cost < n)
        n = (left - reserve) / cost;
    if (n < a->samples)
        note(a, "randomness sample cut from %u to %zu by --max-requests", a->samples, n);
    char **ids = calloc(n ? n : 1, sizeof *ids);
    size_t got = 0;
    const char *fmt = "plain";
    bool self = false;
    if (!ids)
        return;
    for (size_t i = 0; i < n && !audit_interrupted; i++) {
        audit_jar j;
        audit_resp resp;
        if (audit_jar_init(&j))
            break;
        int rc = anon ? audit_fetch(a, "GET", r->sample_url, NULL, &j, NULL, &resp)
                      : login(r, &j, &resp);
        if (rc == AUDIT_OK) {
            audit_resp_free(&resp);
            sess_set_cookie *c = audit_jar_get(&j, r->cookie);
            if (c) {
                /* One format for the whole sample: the first ID's.  An ID
                 * that unwraps differently (a random ID that happens to
                 * look like a wrapper) is analysed as it is. */
                const char *f1;
                bool s1;
                const char *part = audit_random_part(c->value, &f1, &s1);
                if (got == 0) {
                    fmt = f1;
                    self = s1;
                } else if (strcmp(f1, fmt) != 0) {
                    part = c->value;
                }
                ids[got] = strdup(part);
                if (ids[got])
                    got++;
            }
        }
        audit_jar_free(&j);
        progress(a, i + 1, n);
        if (rc != AUDIT_OK)
            break;
    }
    if (got >= 2) {
        audit_random_analyse(ids, got, time(NULL), &a->rnd);
        a->rnd.format = fmt;
        a->rnd.self_contained = self;
        a->have_rnd = true;
    }
    for (size_t i = 0; i < got; i++) {
        OPENSSL_cleanse(ids[i], strlen(ids[i]));
        free(ids[i]);
    }
    free(ids);

    const audit_random *R = &a->rnd;
    if (!a->have_rnd) {
        finding(a, "id-length", ST_NOT_TESTED, "no sample of session IDs was taken");
        finding(a, "id-randomness", ST_NOT_TESTED, "no sample of session IDs was taken");
        return;
    }
    if (R->self_contained) {
        finding(a, "id-length", ST_NA, "%s: a signed token, not a random reference; its "
                "strength is the signing key's (%zu samples)", R->format, R->n);
        finding(a, "id-randomness", ST_NA, "%s: the value carries data and a signature, so "
                "randomness tests do not apply; session-fixation and logout-invalidation "
                "do", R->format);
        return;
    }
    char why[AUDIT_EVIDENCE_MAX];
    snprintf(why, sizeof why, "%zu IDs (%s, sampled by %s); %zu characters of %s (%u "
             "symbols): %.0f bits nominal, %.0f bits effective", R->n, R->format,
             anon ? "anonymous requests" : "logins", R->len, R->alphabet_name,
             R->alphabet_size, R->nominal_bits, R->effective_bits);
    if (R->nominal_bits < 64) {
        finding(a, "id-length", ST_FAIL, "%s", why);
    } else if (R->nominal_bits < 128) {
        audit_finding *f = finding(a, "id-length", ST_FAIL, "%s (below 128)", why);
        if (f)
            f->severity = SEV_MEDIUM;
    } else {
        finding(a, "id-length", ST_PASS, "%s", why);
    }
    char reasons[768];
    bool bad = audit_random_verdict(R, reasons, sizeof reasons);
    char stats[AUDIT_EVIDENCE_MAX];
    snprintf(stats, sizeof stats, "%zu IDs, %.0f of %zu decoded bits effective; FIPS 140-2 "
             "over %u block(s) of 20,000 bits: monobit %u, poker %u, runs %u, long run %u "
             "failed%s; %zu constant and %zu biased bit positions; shared prefix %zu chars; "
             "mean change between consecutive IDs %.1f bits. Samples needed: %zu for one FIPS "
             "block, %zu to see a 1%% bit bias", R->n, R->effective_bits, R->nbits_pos,
             R->fips_blocks, R->monobit_fail, R->poker_fail, R->runs_fail, R->long_run_fail,
             R->fips_blocks ? "" : " (too few bits for a block)", R->bits_constant,
             R->bits_biased, R->shared_prefix, R->mean_hamming, R->samples_for_fips,
             R->samples_for_bias);
    if (bad)
        finding(a, "id-randomness", ST_FAIL, "%s. %s", reasons, stats);
    else if (R->n < 20)
        finding(a, "id-randomness", ST_NOT_TESTED, "only %zu IDs: too few to conclude. %s",
                R->n, stats);
    else
        finding(a, "id-randomness", ST_PASS, "%s", stats);
}

/* ---- --policy ----------------------------------------------------------------- */

static void check_policy(audit_run *r)
{
    audit_ctx *a = r->a;
    if (!a->policy_url) {
        finding(a, "cookie-policy-undeclared", ST_NOT_TESTED, "no --policy URL given");
        finding(a, "cookie-policy-attributes", ST_NOT_TESTED, "no --policy URL given");
        finding(a, "cookie-consent", ST_NOT_TESTED, "no --policy URL given");
        return;
    }
    audit_resp resp;
    const char *hd[] = {"Accept: application/json", NULL};
    int rc = audit_request(a, "GET", a->policy_url, NULL, NULL, hd, &resp);
    json_error_t jerr;
    json_t *doc = rc == AUDIT_OK && resp.status == 200 && resp.body
                      ? json_loadb(resp.body, resp.len, 0, &jerr) : NULL;
    if (rc == AUDIT_OK)
        audit_resp_free(&resp);
    json_t *cats = doc ? json_object_get(doc, "categories") : NULL;
    if (!json_is_array(cats)) {
        const char *why = "the --policy URL did not answer a cookie policy";
        finding(a, "cookie-policy-undeclared", ST_NOT_TESTED, "%s", why);
        finding(a, "cookie-policy-attributes", ST_NOT_TESTED, "%s", why);
        finding(a, "cookie-consent", ST_NOT_TESTED, "%s", why);
        json_decref(doc);
        return;
    }
    char undeclared[AUDIT_EVIDENCE_MAX] = "", differ[AUDIT_EVIDENCE_MAX] = "",
         early[AUDIT_EVIDENCE_MAX] = "";
    const char *consent_name = json_string_value(json_object_get(doc, "consent_cookie"));
    for (int i = 0; i < a->seen.n; i++) {
        const sess_set_cookie *c = &a->seen.c[i];
        json_t *decl = NULL;
        bool consent_required = false;
        size_t ci, k;
        json_t *cat, *ck;
        json_array_foreach(cats, ci, cat) {
            json_array_foreach(json_object_get(cat, "cookies"), k, ck) {
                const char *nm = json_string_value(json_object_get(ck, "name"));
                if (nm && !strcmp(nm, c->name)) {
                    decl = ck;
                    consent_required = json_is_true(json_object_get(cat, "consent_required"));
                }
            }
        }
        if (consent_name && !strcmp(consent_name, c->name))
            continue;
        if (!decl) {
            snprintf(undeclared + strlen(undeclared), sizeof undeclared - strlen(undeclared),
                     "%s%s", undeclared[0] ? ", " : "", c->name);
            continue;
        }
        if (consent_required)
            snprintf(early + strlen(early), sizeof early - strlen(early), "%s%s",
                     early[0] ? ", " : "", c->name);
        json_t *at = json_object_get(decl, "attributes");
        const char *ss = json_string_value(json_object_get(at, "same_site"));
        const char *path = json_string_value(json_object_get(at, "path"));
        json_t *ma = json_object_get(at, "max_age");
        char d[256] = "";
        if (json_is_boolean(json_object_get(at, "http_only")) &&
            json_is_true(json_object_get(at, "http_only")) != c->http_only)
            snprintf(d + strlen(d), sizeof d - strlen(d), " HttpOnly %s", c->http_only ? "set" : "missing");
        if (json_is_boolean(json_object_get(at, "secure")) &&
            json_is_true(json_object_get(at, "secure")) != c->secure)
            snprintf(d + strlen(d), sizeof d - strlen(d), " Secure %s", c->secure ? "set" : "missing");
        if (ss && (!c->same_site || strcasecmp(ss, c->same_site_raw)))
            snprintf(d + strlen(d), sizeof d - strlen(d), " SameSite %s (policy %s)",
                     c->same_site ? c->same_site_raw : "absent", ss);
        if (path && c->has_path && strcmp(path, c->path))
            snprintf(d + strlen(d), sizeof d - strlen(d), " Path %s (policy %s)", c->path, path);
        if (json_is_integer(ma) ? (!c->has_max_age || c->max_age != json_integer_value(ma))
                                : (json_is_null(ma) && c->has_max_age))
            snprintf(d + strlen(d), sizeof d - strlen(d), " Max-Age differs");
        if (d[0])
            snprintf(differ + strlen(differ), sizeof differ - strlen(differ), "%s%s:%s",
                     differ[0] ? "; " : "", c->name, d);
    }
    json_decref(doc);
    if (undeclared[0])
        finding(a, "cookie-policy-undeclared", ST_FAIL, "set but not in the policy: %s", undeclared);
    else
        finding(a, "cookie-policy-undeclared", ST_PASS, "all %d cookies seen are declared", a->seen.n);
    if (differ[0])
        finding(a, "cookie-policy-attributes", ST_FAIL, "%s", differ);
    else
        finding(a, "cookie-policy-attributes", ST_PASS, "attributes as declared");
    if (early[0])
        finding(a, "cookie-consent", ST_FAIL, "set although the audit never consented: %s", early);
    else
        finding(a, "cookie-consent", ST_PASS, "no cookie of a consent-required category was "
                "set (the audit never consents)");
}

/* ---- the audit -------------------------------------------------------------- */

static const char *const SESSION_NAMES[] = {
    "sess", "sid", "session", "phpsessid", "jsessionid", "connect.sid", "asp.net_sessionid",
    "_session", "auth", "token",
};

static int run(audit_ctx *a)
{
    audit_run R = {0};
    audit_run *r = &R;
    audit_jar anon = {0}, j1 = {0};
    audit_resp first = {0}, page = {0};
    audit_html *h = calloc(1, sizeof *h);
    int rc, exit_code = 0;
    char *post_value = NULL;
    r->a = a;
    if (!h || audit_jar_init(&anon) || audit_jar_init(&a->seen)) {
        free(h);
        return EXIT_UNAUDITABLE;
    }
    audit_url_origin(a->target, r->origin, sizeof r->origin);
    r->https = !strncasecmp(a->target, "https:", 6);
    char host[256];
    audit_url_host(a->target, host, sizeof host);
    r->loopback = is_loopback_host(host);

    /* 1. the target page */
    rc = audit_fetch(a, "GET", a->target, NULL, &anon, NULL, &first);
    if (rc != AUDIT_OK) {
        note(a, "the target could not be fetched: %s", rc == AUDIT_ENET ? a->neterr :
             rc == AUDIT_EINTR ? "interrupted" : "refused by the budget or origin rules");
        exit_code = EXIT_UNAUDITABLE;
        goto report;
    }
    if (r->https)
        finding(a, "transport-tls", ST_PASS, "audited over https");
    else if (r->loopback)
        finding(a, "transport-tls", ST_NA, "plain http on loopback (a development set-up); "
                "Secure and cookie prefixes cannot be satisfied over http");
    else
        finding(a, "transport-tls", ST_FAIL, "%s is served over plain http", a->target);
    for (size_t i = 0; i < 3; i++)
        finding(a, i == 0 ? "storage-encryption" : i == 1 ? "backup-encryption"
                                                           : "store-access-control",
                ST_NOT_TESTED, "not testable from outside: check by hand (docs/audit.md)");

    r->have_login = a->login_url_opt != NULL;
    if (r->have_login) {
        audit_url_resolve(a->target, a->login_url_opt, r->login_url, sizeof r->login_url);
        audit_url_path(r->login_url, r->login_path, sizeof r->login_path);
    }
    if (a->protected_url_opt)
        audit_url_resolve(a->target, a->protected_url_opt, r->protected_url, sizeof r->protected_url);
    if (a->logout_url_opt)
        audit_url_resolve(a->target, a->logout_url_opt, r->logout_url, sizeof r->logout_url);

    if (!r->have_login) {
        /* Anonymous sessions only: the cookie named, or one with a session-like name. */
        const sess_set_cookie *c = NULL;
        for (int i = 0; i < anon.n && !c; i++) {
            if (a->session_cookie_opt) {
                if (!strcmp(anon.c[i].name, a->session_cookie_opt))
                    c = &anon.c[i];
                continue;
            }
            for (size_t k = 0; k < sizeof SESSION_NAMES / sizeof SESSION_NAMES[0]; k++) {
                char low[256];
                size_t n = strlen(anon.c[i].name);
                for (size_t q = 0; q <= n && q < sizeof low; q++)
                    low[q] = (char)tolower((unsigned char)anon.c[i].name[q]);
                low[sizeof low - 1] = '\0';
                if (strstr(low, SESSION_NAMES[k]))
                    c = &anon.c[i];
            }
        }
        if (!c) {
            note(a, "no session cookie: the target set none%s; give --login-url to audit "
                 "logged-in sessions", a->session_cookie_opt ? " of that name" : " with a "
                 "session-like name");
            not_tested_rest(a, "no session cookie found (no --login-url)");
            goto report;
        }
        snprintf(r->cookie, sizeof r->cookie, "%s", c->name);
        r->attrs = *c;
        r->pre_login_had_cookie = true;
        snprintf(r->sample_url, sizeof r->sample_url, "%s", a->target);
        check_cookie_attributes(r);
        check_randomness(r);
        check_policy(r);
        not_tested_rest(a, "needs a login (--login-url, --protected-url)");
        goto report;
    }

    /* 2. anonymous baseline of the protected page, the login page, a login */
    if (!r->protected_url[0])
        snprintf(r->protected_url, sizeof r->protected_url, "%s", a->target);
    audit_url_path(r->protected_url, r->protected_path, sizeof r->protected_path);
    {
        audit_jar base;
        audit_resp b;
        if (audit_jar_copy(&base, &anon))
            goto report;
        rc = audit_fetch(a, "GET", r->protected_url, NULL, &base, NULL, &b);
        audit_jar_free(&base);
        if (rc != AUDIT_OK) {
            note(a, "the protected page could not be fetched");
            exit_code = EXIT_UNAUDITABLE;
            goto report;
        }
        char path[URL_MAX_AUDIT];
        r->anon_ok = b.status >= 200 && b.status < 300 &&
                     !(audit_url_path(b.url, path, sizeof path) == 0 &&
                       !strcmp(path, r->login_path) && strcmp(r->login_path, r->protected_path));
        r->anon_has_user = a->user && b.body && strstr(b.body, a->user);
        audit_resp_free(&b);
    }
    if (audit_jar_copy(&j1, &anon)) {
        exit_code = EXIT_UNAUDITABLE;
        goto report;
    }
    audit_resp lr;
    /* What the anonymous visitor holds just before the POST. */
    rc = login(r, &j1, &lr);
    if (rc != AUDIT_OK) {
        if (rc != 1)
            note(a, "the login did not complete (%s)", rc == AUDIT_ENET ? a->neterr : "budget, "
                 "interrupt or origin rules");
        exit_code = EXIT_UNAUDITABLE;
        goto report;
    }
    audit_resp_free(&lr);
    /* The login page itself may have issued cookies: the pre-login jar is
     * the anonymous jar plus that page's cookies, which login() stored in
     * j1 before the POST.  Re-fetch it anonymously to learn them. */
    audit_jar pre;
    if (audit_jar_copy(&pre, &anon))
        goto report;
    {
        audit_resp lp;
        if (audit_fetch(a, "GET", r->login_url, NULL, &pre, NULL, &lp) == AUDIT_OK)
            audit_resp_free(&lp);
    }

    /* The session cookie: changed at login and gating the protected page. */
    bool ok = false;
    long st = 0;
    if (probe(r, &j1, NULL, &ok, &st, &page) != AUDIT_OK || !ok) {
        note(a, "the login was not recognised: %s answered HTTP %ld after it (check "
             "--credentials, --user-field, --pass-field and --protected-url)",
             r->protected_url, st);
        audit_jar_free(&pre);
        if (page.body || page.nsc)
            audit_resp_free(&page);
        exit_code = EXIT_UNAUDITABLE;
        goto report;
    }
    audit_html_extract(page.body, page.len, h);
    for (int pass = 0; pass < 2 && !r->cookie[0]; pass++) {
        for (int i = 0; i < j1.n && !r->cookie[0]; i++) {
            sess_set_cookie *c = &j1.c[i];
            sess_set_cookie *old = audit_jar_get(&pre, c->name);
            bool changed = !old || strcmp(old->value, c->value);
            if (a->session_cookie_opt ? strcmp(c->name, a->session_cookie_opt) != 0
                                      : (pass == 0 && !changed))
                continue;
            audit_jar without;
            if (audit_jar_copy(&without, &j1))
                break;
            audit_jar_remove(&without, c->name);
            bool still = true;
            if (probe(r, &without, NULL, &still, NULL, NULL) == AUDIT_OK && !still)
                snprintf(r->cookie, sizeof r->cookie, "%s", c->name);
            audit_jar_free(&without);
        }
    }
    if (!r->cookie[0]) {
        note(a, "no single cookie gates %s (is it really protected?)", r->protected_url);
        audit_jar_free(&pre);
        audit_resp_free(&page);
        exit_code = EXIT_UNAUDITABLE;
        goto report;
    }
    {
        sess_set_cookie *c = audit_jar_get(&j1, r->cookie);
        sess_set_cookie *old = audit_jar_get(&pre, r->cookie);
        const sess_set_cookie *set = audit_jar_get(&a->seen, r->cookie);
        r->attrs = set ? *set : *c;
        r->pre_login_had_cookie = old != NULL;
        if (old)
            snprintf(r->sample_url, sizeof r->sample_url, "%s", r->login_url);
        post_value = strdup(c->value);
    }
    audit_jar_free(&pre);

    /* 3. attributes, caching, URLs, tampering, CSRF */
    check_cookie_attributes(r);
    check_cache(r, &page);
    if (post_value)
        check_id_in_url(r, post_value, &page, h);
    audit_resp_free(&page);
    check_tampering(r, &j1);
    check_csrf(r, &j1, h);

    /* 4. fixation.  When the login page issued the cookie, the first
     * login started from the ID in the jar at the time of the POST. */
    {
        const char *before = NULL;
        char *login_pre = NULL;
        if (r->pre_login_had_cookie) {
            /* A fresh visitor: the login page's ID, then the login. */
            audit_jar f;
            audit_resp resp;
            if (!audit_jar_init(&f)) {
                if (audit_fetch(a, "GET", r->login_url, NULL, &f, NULL, &resp) == AUDIT_OK) {
                    audit_resp_free(&resp);
                    sess_set_cookie *c = audit_jar_get(&f, r->cookie);
                    if (c)
                        login_pre = strdup(c->value);
                    if (login_pre && login(r, &f, &resp) == AUDIT_OK) {
                        audit_resp_free(&resp);
                        sess_set_cookie *d = audit_jar_get(&f, r->cookie);
                        free(post_value);
                        post_value = d ? strdup(d->value) : NULL;
                        before = login_pre;
                    }
                }
                audit_jar_free(&f);
            }
        }
        check_fixation(r, before, post_value);
        if (login_pre) {
            OPENSSL_cleanse(login_pre, strlen(login_pre));
            free(login_pre);
        }
    }

    /* 5. randomness */
    check_randomness(r);
    /* 6. logout, binding, timeouts, policy */
    check_logout(r);
    check_binding(r);
    check_timeouts(r);
    check_policy(r);

report:
    if (audit_interrupted)
        not_tested_rest(a, "interrupted (Ctrl-C) before this check");
    else if (a->budget_exhausted)
        not_tested_rest(a, "the request budget (--max-requests) ran out");
    else
        not_tested_rest(a, exit_code == EXIT_UNAUDITABLE ? "the site could not be audited"
                                                         : "not reached");
    if (a->offorigin_redirects)
        note(a, "%u redirects to other origins were not followed", a->offorigin_redirects);
    if (post_value) {
        OPENSSL_cleanse(post_value, strlen(post_value));
        free(post_value);
    }
    if (first.body || first.nsc)
        audit_resp_free(&first);
    audit_jar_free(&anon);
    audit_jar_free(&j1);
    free(h);
    return exit_code;
}

/* ---- the command line --------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: sessctl audit URL [options]\n"
          "  --login-url U        the login form's page (same origin as URL)\n"
          "  --user-field F       the user name field (default: the form's text field)\n"
          "  --pass-field P       the password field (default: the form's password field)\n"
          "  --credentials FILE   first line the user, second the password (or user:password);\n"
          "                       else SESSCTL_AUDIT_USER / SESSCTL_AUDIT_PASSWORD; never argv\n"
          "  --user NAME          the user name (not secret; the password never is on argv)\n"
          "  --protected-url U    a page only a logged-in user may see\n"
          "  --logout-url U       the logout endpoint (its form on the page is used)\n"
          "  --session-cookie N   the session cookie's name, when it cannot be found\n"
          "  --policy URL         a sessiond GET /v1/cookies/policy to compare against\n"
          "  --samples N          session IDs to sample (default 200)\n"
          "  --max-requests N     request budget (default 1000)\n"
          "  --rate R             requests per second at most (default 20; 0: no limit)\n"
          "  --timeout S          per request (default 15)\n"
          "  --probe-timeouts S   wait up to S seconds to find idle/absolute timeouts\n"
          "  --cacert FILE        CA certificate for a site with a private CA\n"
          "  --format F           text (default), json, sarif, html\n"
          "  --output FILE        write the report there instead of stdout\n"
          "  --fail-on SEV        info|low|medium|high|critical|none (default high)\n"
          "  --quiet              no progress on stderr\n"
          "exit: 0 clean, 1 findings at or above --fail-on, 2 usage, 3 not auditable\n", f);
}

static int read_credentials(audit_ctx *a, const char *file)
{
    char buf[CRED_MAX];
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "sessctl audit: cannot open the credentials file %s: %s\n", file,
                strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077))
        fprintf(stderr, "sessctl audit: warning: %s is readable by others (chmod 600)\n", file);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    char *user = buf, *pass = NULL;
    if (nl) {
        *nl = '\0';
        pass = nl + 1;
        char *e = pass + strcspn(pass, "\r\n");
        *e = '\0';
    }
    if (nl && nl > buf && nl[-1] == '\r')
        nl[-1] = '\0';
    if (!pass || !*pass) {
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = '\0';
            pass = colon + 1;
        }
    }
    if (!pass || !*user) {
        fprintf(stderr, "sessctl audit: %s holds no user and password (two lines, or "
                "user:password)\n", file);
        OPENSSL_cleanse(buf, sizeof buf);
        return -1;
    }
    if (!a->user)
        a->user = strdup(user);
    a->password = strdup(pass);
    OPENSSL_cleanse(buf, sizeof buf);
    return a->user && a->password ? 0 : -1;
}

static void on_sigint(int sig)
{
    (void)sig;
    audit_interrupted = 1;
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A usage error: the message first (it may name a part of "a"), then free. */
#define USAGE(...) do { int rc_ = usage_error(__VA_ARGS__); free(a); return rc_; } while (0)

int sessctl_audit(int argc, char **argv)
{
    audit_ctx *a = calloc(1, sizeof *a);
    const char *credentials = NULL, *samples = NULL, *maxreq = NULL, *rate = NULL,
               *fail_on = NULL, *probe_t = NULL, *timeout = NULL;
    int ret = EXIT_USAGE;
    if (!a)
        return EXIT_UNAUDITABLE;
    struct { const char *name; const char **dst; } valued[] = {
        {"--login-url", &a->login_url_opt}, {"--logout-url", &a->logout_url_opt},
        {"--protected-url", &a->protected_url_opt}, {"--policy", &a->policy_url},
        {"--user-field", &a->user_field}, {"--pass-field", &a->pass_field},
        {"--credentials", &credentials}, {"--samples", &samples},
        {"--max-requests", &maxreq}, {"--rate", &rate}, {"--format", &a->format},
        {"--fail-on", &fail_on}, {"--cacert", &a->cacert}, {"--output", &a->output},
        {"--probe-timeouts", &probe_t}, {"--timeout", &timeout},
        {"--session-cookie", &a->session_cookie_opt}, {"--user", NULL},
    };
    const char *user_opt = NULL;
    valued[sizeof valued / sizeof valued[0] - 1].dst = &user_opt;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool matched = false;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(stdout);
            free(a);
            return 0;
        }
        if (!strcmp(s, "--quiet")) {
            a->quiet = true;
            continue;
        }
        if (!strncmp(s, "--password", 10) || !strncmp(s, "--pass=", 7))
            USAGE("passwords are never taken from the command line "
                                        "(every user can read it in the process list): use "
                                        "--credentials FILE or SESSCTL_AUDIT_PASSWORD");
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
            size_t n = strlen(valued[k].name);
            if (strncmp(s, valued[k].name, n) || (s[n] != '\0' && s[n] != '='))
                continue;
            const char *v = s[n] == '=' ? s + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v)
                USAGE("%s needs a value", valued[k].name);
            *valued[k].dst = v;
            matched = true;
            break;
        }
        if (matched)
            continue;
        if (s[0] == '-')
            USAGE("unknown option '%s'", s);
        if (a->target)
            USAGE("one URL only ('%s' is a second one)", s);
        a->target = s;
    }
    if (!a->target)
        USAGE("the URL to audit is missing");

    a->samples = DEFAULT_SAMPLES;
    a->max_requests = DEFAULT_MAX_REQUESTS;
    a->rate = DEFAULT_RATE;
    a->timeout = 15;
    a->fail_on = SEV_HIGH;
    a->format = a->format ? a->format : "text";
    unsigned u;
    if (samples && (parse_uint(samples, SAMPLES_MAX, &a->samples) || a->samples < 2))
        USAGE("--samples takes 2 to %d", SAMPLES_MAX);
    if (maxreq && (parse_uint(maxreq, 1000000, &a->max_requests) || a->max_requests < 1))
        USAGE("--max-requests takes 1 to 1000000");
    if (rate) {
        char *end;
        errno = 0;
        a->rate = strtod(rate, &end);
        if (errno || *end || !(a->rate >= 0) || a->rate > 10000)
            USAGE("--rate takes 0 (no limit) to 10000 requests per second");
    }
    if (timeout) {
        if (parse_uint(timeout, 600, &u) || u < 1)
            USAGE("--timeout takes 1 to 600 seconds");
        a->timeout = (long)u;
    }
    if (probe_t && parse_uint(probe_t, PROBE_TIMEOUTS_MAX, &a->probe_timeouts))
        USAGE("--probe-timeouts takes 0 to %d seconds", PROBE_TIMEOUTS_MAX);
    if (fail_on && audit_severity_parse(fail_on, &a->fail_on))
        USAGE("--fail-on takes info, low, medium, high, critical or none");
    static const char *const formats[] = {"text", "json", "sarif", "html"};
    bool fmt_ok = false;
    for (size_t k = 0; k < 4; k++)
        fmt_ok |= !strcmp(a->format, formats[k]);
    if (!fmt_ok)
        USAGE("--format takes text, json, sarif or html");

    char o[URL_MAX_AUDIT];
    if (strlen(a->target) >= URL_MAX_AUDIT || audit_url_origin(a->target, o, sizeof o))
        USAGE("'%s' is not an http or https URL", a->target);
    const char *same[] = {a->login_url_opt, a->logout_url_opt, a->protected_url_opt};
    for (size_t k = 0; k < 3; k++) {
        char abs[URL_MAX_AUDIT];
        if (same[k] && (audit_url_resolve(a->target, same[k], abs, sizeof abs) ||
                        !audit_same_origin(abs, a->target)))
            USAGE("'%s' is not on the audited origin %s (only that "
                                        "origin is contacted)", same[k], o);
    }
    if (a->policy_url && audit_url_origin(a->policy_url, o, sizeof o))
        USAGE("--policy '%s' is not an http or https URL", a->policy_url);
    if ((a->logout_url_opt || a->protected_url_opt) && !a->login_url_opt)
        USAGE("--logout-url and --protected-url need --login-url");

    if (user_opt)
        a->user = strdup(user_opt);
    if (a->login_url_opt) {
        if (credentials) {
            if (read_credentials(a, credentials)) {
                ret = EXIT_USAGE;
                goto out;
            }
        } else {
            const char *eu = getenv("SESSCTL_AUDIT_USER"), *ep = getenv("SESSCTL_AUDIT_PASSWORD");
            if (!a->user && eu && *eu)
                a->user = strdup(eu);
            if (ep && *ep)
                a->password = strdup(ep);
        }
        if (!a->user || !a->password) {
            ret = usage_error("--login-url needs credentials: --credentials FILE, or "
                              "SESSCTL_AUDIT_USER and SESSCTL_AUDIT_PASSWORD");
            goto out;
        }
    }
    snprintf(a->user_agent, sizeof a->user_agent, "sessctl-audit/%s", sess_version());
    a->progress_tty = isatty(2);

    FILE *out = stdout;
    if (a->output && !(out = fopen(a->output, "w"))) {
        fprintf(stderr, "sessctl audit: cannot write %s: %s\n", a->output, strerror(errno));
        ret = EXIT_UNAUDITABLE;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(a->curl = curl_easy_init())) {
        fprintf(stderr, "sessctl audit: cannot initialise libcurl\n");
        ret = EXIT_UNAUDITABLE;
        goto out_file;
    }
    if (!a->quiet)
        fprintf(stderr, "sessctl audit: auditing %s (at most %u requests, %g per second)\n",
                a->target, a->max_requests, a->rate);
    int code = run(a);
    audit_report_print(a, a->format, out);
    if (audit_interrupted && !a->quiet)
        fprintf(stderr, "sessctl audit: interrupted; the report shows what was found so far\n");
    /* The exit code: findings at or above --fail-on win, then "could not
     * be audited" (also an interrupt), else clean. */
    ret = 0;
    for (size_t i = 0; i < a->nfindings; i++)
        if (a->findings[i].status == ST_FAIL && a->fail_on <= SEV_CRITICAL &&
            a->findings[i].severity >= a->fail_on)
            ret = EXIT_FINDINGS;
    if (ret == 0 && (code == EXIT_UNAUDITABLE || audit_interrupted))
        ret = EXIT_UNAUDITABLE;
    curl_easy_cleanup(a->curl);
    curl_global_cleanup();
out_file:
    if (out != stdout && fclose(out) != 0) {
        fprintf(stderr, "sessctl audit: writing %s failed\n", a->output);
        ret = EXIT_UNAUDITABLE;
    }
out:
    audit_jar_free(&a->seen);
    if (a->password) {
        OPENSSL_cleanse(a->password, strlen(a->password));
        free(a->password);
    }
    free(a->user);
    OPENSSL_cleanse(a, sizeof *a);
    free(a);
    return ret;
}
