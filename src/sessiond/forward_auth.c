/*
 * forward_auth.c - GET /v1/auth, the hot path (DESIGN "Data flow of a
 * validate"): no JSON, no allocation beyond what the HTTP layer does.
 *
 * The session ID comes from the Cookie header only (never from the URL:
 * invariant 2).  The client address is the TCP peer, unless the peer is a
 * trusted proxy ([binding] trusted_proxies, or any peer on our Unix
 * socket, which only local processes allowed by its 0660 mode can reach):
 * then the rightmost X-Forwarded-For entry that is not itself a trusted
 * proxy, else X-Real-IP.  Believing X-Forwarded-For from anyone would let
 * a client choose the address its session is bound to.
 *
 * Answers (nginx auth_request understands only 2xx, 401 and 403, so there
 * is never a 400 here): 200 with X-Session-User, X-Session-Handle,
 * X-Session-Elevated and X-CSRF-Token, plus Set-Cookie and
 * X-Session-Rotated when the ID rotated; 401 {"error":"invalid_session"}
 * for a missing, malformed or dead session; 403 for a CSRF failure on an
 * unsafe method (invariant 8); 503 when the store fails - and then no
 * clearing cookie, because the session may well be alive.
 *
 * For unsafe methods validation runs with SESS_VALIDATE_NO_ROTATE, so a
 * request refused for CSRF does not consume a rotation; the next safe
 * request rotates instead.
 *
 * No state, no locking.
 */
#include "forward_auth.h"

#include <arpa/inet.h>
#include <string.h>

#include "cookies.h"
#include "events.h"

#define XFF_HEADERS_MAX 8   /* X-Forwarded-For header lines looked at */

/* Bodies say no more than the error code (API.md): the message is the
 * same for every cause, so nothing about the session leaks. */
static const char body_401[] =
    "{\"error\":\"invalid_session\",\"message\":\"no valid session\"}";
static const char body_403[] =
    "{\"error\":\"csrf_failed\",\"message\":\"CSRF check failed\"}";
static const char body_500[] =
    "{\"error\":\"internal_error\",\"message\":\"internal error\"}";
static const char body_503[] =
    "{\"error\":\"store_unavailable\","
    "\"message\":\"the session store is unavailable\"}";
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

/* The host the browser sent the request to: the first X-Forwarded-Host
 * entry, else Host.  Copied into "buf" when it must be cut at a comma. */
static const char *request_host(const sessiond_http_req *req, char *buf,
                                size_t cap)
{
    const char *h = req->header(req->conn, "X-Forwarded-Host");
    if (h == NULL || h[0] == '\0')
        return req->header(req->conn, "Host");
    const char *comma = strchr(h, ',');
    if (comma == NULL)
        return h;
    size_t n = (size_t)(comma - h);
    while (n > 0 && is_ows(h[n - 1]))
        n--;
    if (n >= cap)
        return NULL;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return buf;
}

static bool plain_header_text(const char *s, size_t len)
{
    if (len == 0 || s[0] == ' ' || s[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7E)
            return false;
    }
    return true;
}

/*
 * X-Session-User: the user id as is when it is printable ASCII; otherwise
 * (UTF-8, control characters - header injection) percent-encoded, flagged
 * by "X-Session-User-Encoding: percent".
 */
static int add_user_header(sessiond_http_resp *resp, const char *user,
                           size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char enc[SESS_USER_ID_MAX * 3 + 1];
    size_t o = 0;

    if (plain_header_text(user, len))
        return sessiond_resp_header(resp, "X-Session-User", user, len);
    for (size_t i = 0; i < len && o + 3 < sizeof(enc); i++) {
        unsigned char c = (unsigned char)user[i];
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                          c == '_' || c == '~';
        if (unreserved) {
            enc[o++] = (char)c;
        } else {
            enc[o++] = '%';
            enc[o++] = hex[c >> 4];
            enc[o++] = hex[c & 15];
        }
    }
    if (sessiond_resp_header(resp, "X-Session-User", enc, o) != 0)
        return -1;
    return sessiond_resp_header(resp, "X-Session-User-Encoding", "percent",
                                7);
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
    sessiond_resp_static(resp, 403, content_json, body_403);
}

void sessiond_forward_auth(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp)
{
    const sessiond_config *cfg = app->cfg;
    char ip[SESS_IP_MAX + 1];
    char hostbuf[SESSIOND_ORIGIN_MAX];
    char cookie[SESS_SET_COOKIE_MAX];
    const char *id = NULL;
    size_t id_len = 0;
    sess_view view;
    sess_err err;

    memset(&view, 0, sizeof(view));
    cookie[0] = '\0';
    const char *header = req->header(req->conn, "Cookie");
    /* The ID's form is checked by sess_validate (an unknown-form ID is
     * rejected there), so it is not decoded twice on this path. */
    if (header == NULL ||
        sess_cookie_find(header, strlen(header), cfg->cookie.name, &id,
                         &id_len) != SESS_OK) {
        sessiond_resp_static(resp, 401, content_json, body_401);
        return;
    }

    const char *consent;   /* found before the ID is wiped in "header" */
    size_t consent_len;
    sessiond_cookies_find_consent(app, header, &consent, &consent_len);
    sessiond_forward_client_ip(app, req, ip, sizeof(ip));
    const char *method = req->header(req->conn, "X-Forwarded-Method");
    if (method == NULL || method[0] == '\0')
        method = req->header(req->conn, "X-Original-Method");
    /* Without those headers the request's own method is the client's
     * (Envoy ext_authz): treating it as GET would skip the CSRF check. */
    if (method == NULL || method[0] == '\0')
        method = req->method;
    bool check_csrf = cfg->session.csrf_enabled &&
                      !sess_method_is_safe(method);

    sess_client client = {ip, req->header(req->conn, "User-Agent")};
    err.code = 0;
    err.msg[0] = '\0';
    int rc = sess_validate(app->ctx, id, id_len, &client,
                           check_csrf ? SESS_VALIDATE_NO_ROTATE : 0, &view,
                           &err);
    /* The ID sits in the connection's header buffer, which we own for
     * this request: wipe it now that the library is done with it. */
    sess_wipe((char *)id, id_len);

    if (rc == SESS_REJECTED || rc == SESS_EINVAL) {
        sessiond_resp_static(resp, 401, content_json, body_401);
        goto cleanup;
    }
    if (rc == SESS_EIO || rc == SESS_EUNAVAILABLE || rc == SESS_EFULL) {
        sessiond_log(SESSIOND_LOG_WARN, "forward-auth: store error: %s",
                     err.msg[0] != '\0' ? err.msg : sess_strerror(rc));
        sessiond_resp_static(resp, 503, content_json, body_503);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_log(SESSIOND_LOG_ERROR, "forward-auth: %s",
                     err.msg[0] != '\0' ? err.msg : sess_strerror(rc));
        sessiond_resp_static(resp, 500, content_json, body_500);
        goto cleanup;
    }

    if (check_csrf) {
        const char *host = request_host(req, hostbuf, sizeof(hostbuf));
        if (!sess_same_origin_ok(req->header(req->conn, "Origin"),
                                 req->header(req->conn, "Sec-Fetch-Site"),
                                 host, app->allowed_origins,
                                 app->n_allowed_origins)) {
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
    if (next != NULL) {
        int64_t max_age = -1;
        if (next->remember) {
            uint64_t now = sess_ctx_now(app->ctx);
            max_age = next->expires_at > now
                          ? (int64_t)(next->expires_at - now) : 0;
        }
        int n = sess_cookie_format(&cfg->cookie, next->id, max_age, cookie,
                                   sizeof(cookie));
        if (n <= 0) {
            sessiond_resp_static(resp, 500, content_json, body_500);
            goto cleanup;
        }
        if (sessiond_resp_header(resp, "Set-Cookie", cookie, (size_t)n) != 0 ||
            sessiond_resp_header(resp, "X-Session-Rotated", "1", 1) != 0)
            goto cleanup;
    }
    sessiond_resp_static(resp, 200, NULL, NULL);

cleanup:
    sess_wipe(cookie, sizeof(cookie));
    sess_view_clear(&view);
}
