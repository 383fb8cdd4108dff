/*
 * forward_auth.c - GET /v1/auth, the hot path (docs/architecture.md,
 * "the validate path"): no JSON, no allocation beyond what the HTTP layer does.
 *
 * The session ID comes from the Cookie header only (never from the URL:
 * invariant 2).  Every cookie named like ours, across every Cookie header
 * line, is a candidate, tried in order until one validates (RFC 6265bis
 * section 8.6: a sibling subdomain can toss a same-named cookie that the
 * browser sends first); at most COOKIE_CANDIDATES_MAX are validated, and
 * several candidates with none or a later one valid are reported as
 * "cookie_tossing".
 *
 * One trust rule for every forwarding header.  The client address is the
 * TCP peer, and the request's own origin is Host with the configured
 * scheme, unless the peer is a trusted proxy ([binding] trusted_proxies,
 * or any peer on our Unix socket, which only local processes allowed by
 * its 0660 mode can reach): then the rightmost X-Forwarded-For entry that
 * is not itself a trusted proxy (else X-Real-IP), and X-Forwarded-Host /
 * X-Forwarded-Proto.  Believing any of them from anyone would let a client
 * choose the address its session is bound to, or the origin its Origin
 * header is compared with.
 *
 * The method is unsafe when X-Forwarded-Method or X-Original-Method says
 * anything but GET, HEAD or OPTIONS (fail closed: headers that disagree
 * mean the unsafe one wins; TRACE, CONNECT and unknown methods are
 * unsafe); with neither header it is the subrequest's own, GET.
 *
 * Answers (nginx auth_request understands only 2xx, 401 and 403, so there
 * is never a 400 here): 200 with X-Session-User, X-Session-Handle,
 * X-Session-Elevated and X-CSRF-Token, plus Set-Cookie and
 * X-Session-Rotated when the ID rotated; 401 {"error":"invalid_session"}
 * for a missing, malformed or dead session; 403 for a CSRF failure on an
 * unsafe method (docs/security.md invariant 8); 503 when the store fails - and then no
 * clearing cookie, because the session may well be alive.
 *
 * For unsafe methods validation runs with SESS_VALIDATE_NO_ROTATE, so a
 * request refused for CSRF does not consume a rotation; the next safe
 * request rotates instead.
 *
 * No state, no locking (the event rate limiter in events.c has its own).
 */
#include "forward_auth.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "cookies.h"
#include "events.h"
#include "tokens.h"
#include "trace.h"

#define XFF_HEADERS_MAX 8   /* X-Forwarded-For header lines looked at */
#define COOKIE_LINES_MAX 8  /* Cookie header lines looked at */
#define METHOD_LINES_MAX 4  /* lines of each method header looked at */
/* Session cookies validated per request: each costs a store read, so a
 * header stuffed with candidates must not multiply the work unboundedly. */
#define COOKIE_CANDIDATES_MAX 8

/* Bodies say no more than the error code (docs/api.md): the message is the
 * same for every cause, so nothing about the session leaks. */
static const char body_401[] =
    "{\"error\":\"invalid_session\",\"message\":\"no valid session\"}";
static const char body_403[] =
    "{\"error\":\"csrf_failed\",\"message\":\"CSRF check failed\"}";
static const char body_500[] =
    "{\"error\":\"internal_error\",\"message\":\"internal error\"}";
static const char content_json[] = "application/json";

/* Copy "len" bytes of "s" to "out" if they are a textual IP address. */
static bool take_ip(const char *s, size_t len, char *out, size_t cap)
{
    char buf[SESS_IP_MAX + 1];
    unsigned char bin[16];
    if (len == 0 || len > SESS_IP_MAX || len >= cap)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, bin) != 1 &&
        inet_pton(AF_INET6, buf, bin) != 1)
        return false;
    memcpy(out, buf, len + 1);
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Walk the X-Forwarded-For entries from the right.  Returns 1 with the
 * client in "out", 0 when there were none, -1 when an entry is not an IP
 * address (a forged or broken chain: the caller then tries X-Real-IP,
 * then the peer).
 */
static int from_xff(const sessiond_app *app, const sessiond_http_req *req,
                    char *out, size_t cap)
{
    const char *lines[XFF_HEADERS_MAX];
    size_t n = req->header_all(req->conn, "X-Forwarded-For", lines,
                               XFF_HEADERS_MAX);
    bool any = false;
    for (size_t i = n; i-- > 0;) {
        const char *s = lines[i];
        size_t end = strlen(s);
        while (end > 0) {
            size_t start = end;
            while (start > 0 && s[start - 1] != ',')
                start--;
            size_t a = start;
            size_t b = end;
            while (a < b && is_ows(s[a]))
                a++;
            while (b > a && is_ows(s[b - 1]))
                b--;
            end = start > 0 ? start - 1 : 0;
            if (a == b)
                continue;
            if (!take_ip(s + a, b - a, out, cap))
                return -1;
            any = true;
            if (!sessiond_config_is_trusted_proxy(app->cfg, out))
                return 1;
            /* A trusted hop: keep walking left.  If every hop is trusted
             * the leftmost one stays in "out". */
        }
    }
    return any ? 1 : 0;
}

void sessiond_forward_client_ip(const sessiond_app *app,
                                const sessiond_http_req *req, char *out,
                                size_t cap)
{
    const char *peer = req->peer_ip != NULL ? req->peer_ip : "";
    bool trusted = req->peer_unix ||
                   sessiond_config_is_trusted_proxy(app->cfg, peer);
    if (trusted) {
        if (from_xff(app, req, out, cap) == 1)
            return;
        const char *real = req->header(req->conn, "X-Real-IP");
        if (real != NULL && take_ip(real, strlen(real), out, cap))
            return;
    }
    if (req->peer_unix || !take_ip(peer, strlen(peer), out, cap)) {
        /* A local peer on the Unix socket without forwarding headers. */
        take_ip("127.0.0.1", 9, out, cap);
    }
}

/* The rightmost comma-separated entry of the last line of header "name"
 * (the one the nearest hop - a trusted proxy - wrote), OWS trimmed. */
static bool last_entry(const sessiond_http_req *req, const char *name,
                       const char **out, size_t *len)
{
    const char *lines[XFF_HEADERS_MAX];
    size_t n = req->header_all(req->conn, name, lines, XFF_HEADERS_MAX);
    if (n == 0)
        return false;
    const char *v = lines[n - 1];
    size_t e = strlen(v);
    while (e > 0 && is_ows(v[e - 1]))
        e--;
    size_t b = e;
    while (b > 0 && v[b - 1] != ',')
        b--;
    while (b < e && is_ows(v[b]))
        b++;
    if (b == e)
        return false;
    *out = v + b;
    *len = e - b;
    return true;
}

/*
 * The origin the browser sent the request to: from a trusted proxy its
 * X-Forwarded-Proto and X-Forwarded-Host (each falling back to the
 * configured scheme and Host), from anyone else Host with the configured
 * scheme (https when cookie.secure).  False when it cannot be known (a
 * malformed host or an unknown scheme): then only csrf.allowed_origins
 * can match.
 */
static bool request_origin(const sessiond_app *app, const sessiond_http_req *req,
                           bool trusted, sess_origin *out)
{
    bool https = app->cfg->cookie.secure;
    const char *h = NULL;
    size_t hlen = 0;
    if (trusted) {
        const char *p;
        size_t plen;
        if (last_entry(req, "X-Forwarded-Proto", &p, &plen)) {
            if (plen == 5 && strncasecmp(p, "https", 5) == 0)
                https = true;
            else if (plen == 4 && strncasecmp(p, "http", 4) == 0)
                https = false;
            else
                return false;
        }
        (void)last_entry(req, "X-Forwarded-Host", &h, &hlen);
    }
    if (h == NULL) {
        h = req->header(req->conn, "Host");
        if (h == NULL)
            return false;
        hlen = strlen(h);
    }
    return sess_origin_from_host(https, h, hlen, out) == SESS_OK;
}

/* Fail closed: unsafe when any line of either method header names
 * anything but a safe method.  An empty value is no method we know. */
static bool method_unsafe(const sessiond_http_req *req)
{
    static const char *const names[] = {"X-Forwarded-Method",
                                        "X-Original-Method"};
    size_t lines = 0;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        const char *vals[METHOD_LINES_MAX];
        size_t n = req->header_all(req->conn, names[k], vals,
                                   METHOD_LINES_MAX);
        if (n == METHOD_LINES_MAX)
            return true;   /* more lines than we read: do not guess */
        for (size_t i = 0; i < n; i++)
            if (!sess_method_is_safe(vals[i]))
                return true;
        lines += n;
    }
    /* Without either header the request's own method is the client's
     * (Envoy ext_authz sends it as is): treating it as GET would skip
     * the CSRF check. */
    return lines == 0 && !sess_method_is_safe(req->method);
}

/* A user id sent as is: visible ASCII without '%' and '\'' (so it can
 * never look like the encoded form), with no leading or trailing space. */
static bool plain_user(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7E || c == '%' || c == '\'')
            return false;
    }
    return true;
}

/* RFC 8187 section 3.2.1 attr-char: sent as is inside an ext-value. */
static bool attr_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$&+-.^_`|~", c));
}

/*
 * X-Session-User: the user id as is when plain_user() holds; otherwise an
 * RFC 8187 ext-value, "utf-8''" then the UTF-8 bytes with every byte that
 * is not an attr-char as %XX.  Self-delimiting: a plain value never holds
 * a '\'', every encoded one starts with "utf-8''", so an upstream decodes
 * without a second header ("zo%C3%AB" the user id stays itself; "zoë" is
 * utf-8''zo%C3%AB).  Control characters never reach the header (header
 * injection).
 */
int sessiond_forward_user_value(const char *user, size_t len, char *out,
                                size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char prefix[] = "utf-8''";
    size_t o = 0;

    if (plain_user(user, len)) {
        if (len >= cap)
            return -1;
        memcpy(out, user, len);
        out[len] = '\0';
        return (int)len;
    }
    if (cap < sizeof(prefix))
        return -1;
    memcpy(out, prefix, sizeof(prefix) - 1);
    o = sizeof(prefix) - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (o + 4 > cap)
            return -1;
        if (attr_char(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return (int)o;
}

static int add_user_header(sessiond_http_resp *resp, const char *user,
                           size_t len)
{
    char enc[SESSIOND_USER_HEADER_MAX];
    int n = sessiond_forward_user_value(user, len, enc, sizeof(enc));
    if (n < 0)
        return -1;
    return sessiond_resp_header(resp, "X-Session-User", enc, (size_t)n);
}

static void csrf_refused(sessiond_app *app, sessiond_http_resp *resp,
                         const sess_view *view, const char *ip,
                         const char *detail)
{
    sess_event ev = {
        .type = SESS_EVENT_CSRF_FAILURE,
        .at = sess_ctx_now(app->ctx),
        .handle = view->handle,
        .user_id = view->user_id,
        .user_id_len = view->user_id_len,
        .ip = ip,
        .detail = detail,
    };
    sess_emit_event(app->ctx, &ev);
    sessiond_trace_set_outcome(SESSIOND_OUTCOME_CSRF_FAILURE);
    sessiond_resp_static(resp, 403, content_json, body_403);
}

/* A session cookie found in the request. */
typedef struct candidate {
    const char *id;      /* in the connection's header buffer */
    size_t len;
} candidate;

/* Collect up to COOKIE_CANDIDATES_MAX session cookies from every Cookie
 * line; returns how many were stored, "*seen" how many there were (lines
 * past COOKIE_LINES_MAX are not read; a line that is not a valid Cookie
 * header is skipped, the others still count). */
static size_t find_candidates(const sessiond_http_req *req, const char *name,
                              candidate *out, size_t *seen)
{
    const char *lines[COOKIE_LINES_MAX];
    size_t n_lines = req->header_all(req->conn, "Cookie", lines,
                                     COOKIE_LINES_MAX);
    size_t n = 0;
    *seen = 0;
    for (size_t l = 0; l < n_lines; l++) {
        size_t pos = 0, hlen = strlen(lines[l]);
        const char *v;
        size_t vlen;
        while (sess_cookie_next(lines[l], hlen, name, &pos, &v, &vlen) ==
               SESS_OK) {
            (*seen)++;
            if (n < COOKIE_CANDIDATES_MAX) {
                out[n].id = v;
                out[n].len = vlen;
                n++;
            }
        }
    }
    return n;
}

/* Several session cookies where the first is not the valid one: someone
 * may be tossing cookies at our users (rate-limited per peer). */
static void report_tossing(sessiond_app *app, const char *ip, size_t seen,
                           size_t tried, long valid, const char *handle)
{
    char detail[96];
    if (valid >= 0)
        snprintf(detail, sizeof(detail),
                 "%zu session cookies, number %ld valid", seen, valid + 1);
    else
        snprintf(detail, sizeof(detail),
                 "%zu session cookies, %zu tried, none valid", seen, tried);
    sessiond_events_peer(SESSIOND_PEV_COOKIE_TOSSING, sess_ctx_now(app->ctx),
                         ip, "/v1/auth", handle, detail);
}

void sessiond_forward_auth(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp)
{
    const sessiond_config *cfg = app->cfg;
    char ip[SESS_IP_MAX + 1];
    char cookie[SESS_SET_COOKIE_MAX];
    candidate cand[COOKIE_CANDIDATES_MAX];
    size_t seen = 0;
    long valid = -1;
    sess_view view;
    sess_err err;
    int rc = SESS_REJECTED;

    memset(&view, 0, sizeof(view));
    cookie[0] = '\0';
    /* The ID's form is checked by sess_validate (an unknown-form ID is
     * rejected there), so it is not decoded twice on this path. */
    size_t n = find_candidates(req, cfg->cookie.name, cand, &seen);
    if (n == 0) {
        /* No session cookie: a service-to-service call may carry a bearer
         * token instead (forward_auth.accept_bearer, docs/tokens.md). */
        if (!sessiond_tokens_fa_bearer(app, req, resp)) {
            sessiond_trace_set_outcome(SESSIOND_OUTCOME_NO_SESSION);
            sessiond_resp_static(resp, 401, content_json, body_401);
        }
        return;
    }

    /* The consent cookie, on any Cookie line, found before the IDs are
     * wiped in the header buffer (it is verified only on a 200). */
    const char *consent = NULL;
    size_t consent_len = 0;
    {
        const char *lines[COOKIE_LINES_MAX];
        size_t n_lines = req->header_all(req->conn, "Cookie", lines,
                                         COOKIE_LINES_MAX);
        for (size_t l = 0; l < n_lines && consent == NULL; l++)
            sessiond_cookies_find_consent(app, lines[l], &consent,
                                          &consent_len);
    }
    sessiond_forward_client_ip(app, req, ip, sizeof(ip));
    bool check_csrf = cfg->session.csrf_enabled && method_unsafe(req);

    sess_client client = {ip, req->header(req->conn, "User-Agent")};
    for (size_t i = 0; i < n; i++) {
        err.code = 0;
        err.msg[0] = '\0';
        sess_view_clear(&view);
        rc = sess_validate(app->ctx, cand[i].id, cand[i].len, &client,
                           check_csrf ? SESS_VALIDATE_NO_ROTATE : 0, &view,
                           &err);
        if (rc == SESS_OK)
            valid = (long)i;
        if (rc != SESS_REJECTED && rc != SESS_EINVAL)
            break;   /* valid, or the store failed: stop either way */
    }
    /* The IDs sit in the connection's header buffer, which we own for
     * this request: wipe them now that the library is done with them. */
    for (size_t i = 0; i < n; i++)
        sess_wipe((char *)cand[i].id, cand[i].len);
    if (seen > 1 && valid != 0 && (rc == SESS_OK || rc == SESS_REJECTED ||
                                   rc == SESS_EINVAL))
        report_tossing(app, ip, seen, n, valid,
                       valid >= 0 ? view.handle : NULL);

    if (rc == SESS_REJECTED || rc == SESS_EINVAL) {
        /* The outcome (spans, metrics, access log) says why; the answer
         * does not (docs/api.md, forward-auth). */
        sessiond_trace_set_outcome(rc == SESS_EINVAL
                                       ? SESSIOND_OUTCOME_UNKNOWN
                                       : sessiond_outcome_of_reason(view.reason));
        sessiond_resp_static(resp, 401, content_json, body_401);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_library_error_static(resp, rc, &err, "forward-auth");
        goto cleanup;
    }

    if (check_csrf) {
        sess_origin self;
        bool trusted = req->peer_unix ||
                       sessiond_config_is_trusted_proxy(cfg, req->peer_ip);
        bool known = request_origin(app, req, trusted, &self);
        if (!sess_same_origin_ok(req->header(req->conn, "Origin"),
                                 req->header(req->conn, "Sec-Fetch-Site"),
                                 known ? &self : NULL, cfg->allowed_origin,
                                 cfg->n_allowed_origins)) {
            csrf_refused(app, resp, &view, ip, "cross-site origin");
            goto cleanup;
        }
        const char *token = req->header(req->conn, "X-CSRF-Token");
        if (token == NULL ||
            !sess_csrf_matches(&view, token, strlen(token))) {
            csrf_refused(app, resp, &view, ip, "csrf token");
            goto cleanup;
        }
    }

    resp->secret = true;   /* X-CSRF-Token, Set-Cookie */
    const sess_issued *next = view.rotated ? &view.successor : NULL;
    const char *csrf = next != NULL ? next->csrf_token : view.csrf_token;
    if (add_user_header(resp, view.user_id, view.user_id_len) != 0 ||
        sessiond_resp_header(resp, "X-Session-Handle", view.handle,
                             strlen(view.handle)) != 0 ||
        sessiond_resp_header(resp, "X-Session-Elevated",
                             view.elevated ? "true" : "false",
                             view.elevated ? 4 : 5) != 0 ||
        sessiond_resp_header(resp, "X-CSRF-Token", csrf, strlen(csrf)) != 0 ||
        sessiond_cookies_forward_consent(app, consent, consent_len, resp) != 0)
        goto cleanup;   /* the response is now a 500 */
    /* The upstream's access token, only now that the session validated
     * (revocation wins over the token cache). */
    if (sessiond_tokens_fa_attach(app, &view, resp) != 0) {
        sessiond_resp_static(resp, 500, content_json, body_500);
        goto cleanup;
    }
    if (next != NULL) {
        int len = sess_issued_cookie(app->ctx, &cfg->cookie, next, cookie,
                                     sizeof(cookie));
        if (len <= 0) {
            sessiond_resp_static(resp, 500, content_json, body_500);
            goto cleanup;
        }
        if (sessiond_resp_header(resp, "Set-Cookie", cookie, (size_t)len) != 0 ||
            sessiond_resp_header(resp, "X-Session-Rotated", "1", 1) != 0)
            goto cleanup;
    }
    sessiond_resp_static(resp, 200, NULL, NULL);

cleanup:
    sess_wipe(cookie, sizeof(cookie));
    sess_view_clear(&view);
}
