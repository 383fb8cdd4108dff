/*
 * audit_http.c - the HTTP side of sessctl audit, on libcurl: one request at
 * a time, to the target's origin only (plus the --policy URL the operator
 * named), within the request budget and the rate limit, with a cookie jar
 * fed by libsess's Set-Cookie parser (sess_set_cookie_parse).
 *
 * Invariants:
 *  - libcurl never follows redirects; audit_fetch follows at most
 *    AUDIT_REDIRECTS of them and only within the origin (an open redirect
 *    on the site must not turn the auditor into a scanner of other hosts);
 *  - only http and https, no proxy from the environment unless the
 *    operator set one (libcurl's usual variables), no TLS shortcuts: a
 *    self-signed site needs --cacert;
 *  - a Ctrl-C aborts the transfer under way (the progress callback) and
 *    every later request, so the report of what was found is printed;
 *  - bodies are capped (AUDIT_BODY_MAX), Set-Cookie lines per response too.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "sess.h"

volatile sig_atomic_t audit_interrupted;

/* ---- URLs -------------------------------------------------------------- */

int audit_url_resolve(const char *base, const char *rel, char *out, size_t cap)
{
    CURLU *h = curl_url();
    char *s = NULL;
    int rc = -1;
    if (!h)
        return -1;
    if (base && curl_url_set(h, CURLUPART_URL, base, 0) != CURLUE_OK)
        goto out;
    if (curl_url_set(h, CURLUPART_URL, rel, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(h, CURLUPART_URL, &s, 0) != CURLUE_OK)
        goto out;
    if (strlen(s) < cap) {
        memcpy(out, s, strlen(s) + 1);
        rc = 0;
    }
out:
    curl_free(s);
    curl_url_cleanup(h);
    return rc;
}

static int url_part(const char *url, CURLUPart part, char *out, size_t cap, unsigned flags)
{
    CURLU *h = curl_url();
    char *s = NULL;
    int rc = -1;
    out[0] = '\0';
    if (!h)
        return -1;
    if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(h, part, &s, flags) == CURLUE_OK && strlen(s) < cap) {
        memcpy(out, s, strlen(s) + 1);
        rc = 0;
    }
    curl_free(s);
    curl_url_cleanup(h);
    return rc;
}

int audit_url_origin(const char *url, char *out, size_t cap)
{
    char scheme[16], host[256], port[16];
    if (url_part(url, CURLUPART_SCHEME, scheme, sizeof scheme, 0) ||
        url_part(url, CURLUPART_HOST, host, sizeof host, 0) ||
        url_part(url, CURLUPART_PORT, port, sizeof port, CURLU_DEFAULT_PORT))
        return -1;
    if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))
        return -1;
    for (char *p = scheme; *p; p++)
        *p = (char)(*p | 0x20);
    for (char *p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    return snprintf(out, cap, "%s://%s:%s", scheme, host, port) < (int)cap ? 0 : -1;
}

int audit_url_path(const char *url, char *out, size_t cap)
{
    return url_part(url, CURLUPART_PATH, out, cap, 0);
}

int audit_url_host(const char *url, char *out, size_t cap)
{
    return url_part(url, CURLUPART_HOST, out, cap, 0);
}

bool audit_same_origin(const char *a, const char *b)
{
    char oa[URL_MAX_AUDIT], ob[URL_MAX_AUDIT];
    return !audit_url_origin(a, oa, sizeof oa) && !audit_url_origin(b, ob, sizeof ob) &&
           !strcmp(oa, ob);
}

/* ---- the cookie jar ------------------------------------------------------ */

int audit_jar_init(audit_jar *j)
{
    j->n = 0;
    j->c = calloc(AUDIT_JAR_MAX, sizeof *j->c);
    return j->c ? 0 : -1;
}

void audit_jar_free(audit_jar *j)
{
    if (j->c) {
        OPENSSL_cleanse(j->c, AUDIT_JAR_MAX * sizeof *j->c);
        free(j->c);
    }
    j->c = NULL;
    j->n = 0;
}

int audit_jar_copy(audit_jar *dst, const audit_jar *src)
{
    if (audit_jar_init(dst))
        return -1;
    memcpy(dst->c, src->c, (size_t)src->n * sizeof *src->c);
    dst->n = src->n;
    return 0;
}

sess_set_cookie *audit_jar_get(audit_jar *j, const char *name)
{
    for (int i = 0; i < j->n; i++)
        if (!strcmp(j->c[i].name, name))
            return &j->c[i];
    return NULL;
}

void audit_jar_remove(audit_jar *j, const char *name)
{
    for (int i = 0; i < j->n; i++)
        if (!strcmp(j->c[i].name, name)) {
            j->c[i] = j->c[--j->n];
            return;
        }
}

/* A cookie the client sets itself (fixation by planting, tampering). */
int audit_jar_set(audit_jar *j, const char *name, const char *value)
{
    sess_set_cookie *c = audit_jar_get(j, name);
    if (!c) {
        if (j->n >= AUDIT_JAR_MAX)
            return -1;
        c = &j->c[j->n++];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%s", name);
    }
    snprintf(c->value, sizeof c->value, "%s", value);
    return 0;
}

/* Store one parsed Set-Cookie: an expiring one deletes (RFC 6265bis
 * section 5.7 step 22), others replace by name.  Cookies are kept per name
 * only: the auditor talks to one origin. */
static void jar_store(audit_jar *j, const sess_set_cookie *sc, time_t now)
{
    bool gone = (sc->has_max_age && sc->max_age <= 0) ||
                (!sc->has_max_age && sc->has_expires && sc->expires < (int64_t)now);
    if (gone) {
        audit_jar_remove(j, sc->name);
        return;
    }
    sess_set_cookie *c = audit_jar_get(j, sc->name);
    if (!c) {
        if (j->n >= AUDIT_JAR_MAX)
            return;
        c = &j->c[j->n++];
    }
    *c = *sc;
}

/* The Cookie header for "url" from the jar (path-matched, RFC 6265bis
 * section 5.1.4; Secure cookies only over https). */
static void jar_header(const audit_jar *j, const char *url, char *out, size_t cap)
{
    char path[URL_MAX_AUDIT];
    bool https = strncasecmp(url, "https:", 6) == 0;
    size_t off = 0;
    if (audit_url_path(url, path, sizeof path))
        snprintf(path, sizeof path, "/");
    out[0] = '\0';
    off = (size_t)snprintf(out, cap, "Cookie: ");
    bool any = false;
    for (int i = 0; i < j->n; i++) {
        const sess_set_cookie *c = &j->c[i];
        if (c->secure && !https)
            continue;
        if (c->has_path) {
            size_t pl = strlen(c->path);
            if (strncmp(path, c->path, pl) != 0 ||
                (path[pl] != '\0' && path[pl] != '/' && c->path[pl - 1] != '/'))
                continue;
        }
        int w = snprintf(out + off, cap - off, "%s%s%s%s", any ? "; " : "", c->name,
                         c->name[0] ? "=" : "", c->value);
        if (w < 0 || (size_t)w >= cap - off)
            break;
        off += (size_t)w;
        any = true;
    }
    if (!any)
        out[0] = '\0';
}

/* ---- responses ------------------------------------------------------------ */

void audit_resp_free(audit_resp *r)
{
    if (r->body) {
        OPENSSL_cleanse(r->body, r->len);
        free(r->body);
    }
    for (int i = 0; i < r->nsc; i++) {
        OPENSSL_cleanse(r->set_cookie[i], strlen(r->set_cookie[i]));
        free(r->set_cookie[i]);
    }
    memset(r, 0, sizeof *r);
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    audit_resp *r = ud;
    size_t n = sz * nm;
    if (r->len + n > AUDIT_BODY_MAX) {
        r->truncated = true;
        n = AUDIT_BODY_MAX - r->len;
    }
    if (n) {
        if (r->len + n + 1 > r->cap) {
            size_t cap = (r->len + n + 1) * 2;
            if (cap > AUDIT_BODY_MAX + 1)
                cap = AUDIT_BODY_MAX + 1;
            char *b = realloc(r->body, cap);
            if (!b)
                return 0;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, p, n);
        r->len += n;
        r->body[r->len] = '\0';
    }
    return sz * nm;
}

static void header_value(char *dst, size_t cap, const char *v, size_t n, bool append)
{
    size_t have = append ? strlen(dst) : 0;
    if (append && have && have + 2 < cap) {
        dst[have++] = ',';
        dst[have++] = ' ';
    }
    if (have + n >= cap)
        n = cap - have - 1;
    memcpy(dst + have, v, n);
    dst[have + n] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    audit_resp *r = ud;
    size_t n = sz * nm, k;
    if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
        /* A new response head (after a 100 Continue): start over. */
        for (int i = 0; i < r->nsc; i++)
            free(r->set_cookie[i]);
        r->nsc = 0;
        r->location[0] = r->cache_control[0] = r->pragma[0] = r->content_type[0] = '\0';
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return n;
    k = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = n - k - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
#define IS(name) (k == sizeof(name) - 1 && !strncasecmp(p, name, k))
    if (IS("set-cookie")) {
        if (r->nsc < AUDIT_SC_MAX && vl < SESS_SET_COOKIE_LINE_MAX) {
            char *s = malloc(vl + 1);
            if (s) {
                memcpy(s, v, vl);
                s[vl] = '\0';
                r->set_cookie[r->nsc++] = s;
            }
        }
    } else if (IS("location")) {
        header_value(r->location, sizeof r->location, v, vl, false);
    } else if (IS("cache-control")) {
        header_value(r->cache_control, sizeof r->cache_control, v, vl, true);
    } else if (IS("pragma")) {
        header_value(r->pragma, sizeof r->pragma, v, vl, true);
    } else if (IS("content-type")) {
        header_value(r->content_type, sizeof r->content_type, v, vl, false);
    }
#undef IS
    return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud, (void)a, (void)b, (void)c, (void)d;
    return audit_interrupted ? 1 : 0;   /* Ctrl-C: abort this transfer */
}

/* Sleep so that requests keep to "rate" per second. */
static void pace(audit_ctx *a)
{
    if (a->rate <= 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double gap = 1.0 / a->rate;
    double since = (double)(now.tv_sec - a->last.tv_sec) +
                   (double)(now.tv_nsec - a->last.tv_nsec) / 1e9;
    if (a->requests > 0 && since < gap) {
        double w = gap - since;
        struct timespec ts = {(time_t)w, (long)((w - (double)(time_t)w) * 1e9)};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !audit_interrupted)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &a->last);
}

/* One request, no redirect.  "hdrs" is a NULL-ended list of extra header
 * lines.  Returns AUDIT_OK, or AUDIT_EBUDGET, AUDIT_EINTR, AUDIT_EORIGIN,
 * AUDIT_ENET (message in a->neterr). */
int audit_request(audit_ctx *a, const char *method, const char *url, const char *body,
                  audit_jar *j, const char *const *hdrs, audit_resp *r)
{
    struct curl_slist *list = NULL;
    char cookie[8192 + 16];
    int rc = AUDIT_OK;
    memset(r, 0, sizeof *r);
    snprintf(r->url, sizeof r->url, "%s", url);

    if (audit_interrupted)
        return AUDIT_EINTR;
    /* Only the target's origin (and the --policy URL's). */
    if (!audit_same_origin(url, a->target) &&
        !(a->policy_url && audit_same_origin(url, a->policy_url)))
        return AUDIT_EORIGIN;
    if (a->requests >= a->max_requests) {
        a->budget_exhausted = true;
        return AUDIT_EBUDGET;
    }
    pace(a);
    if (audit_interrupted)
        return AUDIT_EINTR;
    a->requests++;

    CURL *c = a->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, a->timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, a->timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    if (a->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, a->cacert);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    }

    bool ua = false;
    for (const char *const *h = hdrs; h && *h; h++) {
        if (!strncasecmp(*h, "User-Agent:", 11))
            ua = true;
        list = curl_slist_append(list, *h);
    }
    if (!ua) {
        char line[128];
        snprintf(line, sizeof line, "User-Agent: %s", a->user_agent);
        list = curl_slist_append(list, line);
    }
    list = curl_slist_append(list, "Accept: text/html,application/xhtml+xml,*/*;q=0.8");
    list = curl_slist_append(list, "Expect:");
    if (j) {
        jar_header(j, url, cookie, sizeof cookie);
        if (cookie[0])
            list = curl_slist_append(list, cookie);
        OPENSSL_cleanse(cookie, sizeof cookie);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);

    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(list);   /* holds the Cookie line: libcurl copied it */
    if (cc != CURLE_OK) {
        if (audit_interrupted)
            return AUDIT_EINTR;
        snprintf(a->neterr, sizeof a->neterr, "%s", curl_easy_strerror(cc));
        return AUDIT_ENET;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    time_t now = time(NULL);
    for (int i = 0; i < r->nsc; i++) {
        sess_set_cookie *sc = &a->scratch;
        sess_err err = {0};
        if (sess_set_cookie_parse(r->set_cookie[i], strlen(r->set_cookie[i]), sc, &err) != SESS_OK)
            continue;
        audit_seen_cookie(a, sc);
        if (j)
            jar_store(j, sc, now);
    }
    return rc;
}

/* A request that follows same-origin redirects (303/302/301 become GET,
 * 307/308 keep the method) and notes every Location seen (the id-in-url
 * check reads them).  "r" is the last answer; r->url its URL. */
int audit_fetch(audit_ctx *a, const char *method, const char *url, const char *body,
                audit_jar *j, const char *const *hdrs, audit_resp *r)
{
    char cur[URL_MAX_AUDIT];
    char m[16];
    snprintf(cur, sizeof cur, "%s", url);
    snprintf(m, sizeof m, "%s", method);
    const char *b = body;
    long first = 0;
    for (int hop = 0;; hop++) {
        int rc = audit_request(a, m, cur, b, j, hdrs, r);
        if (rc != AUDIT_OK)
            return rc;
        if (hop == 0)
            first = r->status;
        r->first_status = first;
        if (r->status < 300 || r->status > 399 || r->status == 304 || !r->location[0])
            return AUDIT_OK;
        audit_note_location(a, r->location);
        char next[URL_MAX_AUDIT];
        if (audit_url_resolve(cur, r->location, next, sizeof next))
            return AUDIT_OK;
        if (!audit_same_origin(next, a->target)) {
            a->offorigin_redirects++;
            return AUDIT_OK;            /* not followed */
        }
        if (hop >= AUDIT_REDIRECTS)
            return AUDIT_OK;
        if (r->status != 307 && r->status != 308) {
            snprintf(m, sizeof m, "GET");
            b = NULL;
        }
        audit_resp_free(r);
        snprintf(cur, sizeof cur, "%s", next);
    }
}
