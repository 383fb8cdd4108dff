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
 * The decision itself (candidates, method rule, validate, Origin and CSRF),
 * the forwarding trust rule and the X-Session-User encoding are the
 * library's (sess/forward_auth.h), shared with the nginx module; this file
 * gathers the headers and writes the answer.  No state, no locking (the event rate limiter in
 * events.c has its own).
 */
#include "forward_auth.h"

#include <stdio.h>
#include <string.h>

#include "sess/forward_auth.h"

#include "api.h"
#include "cookies.h"
#include "events.h"
#include "tokens.h"
#include "trace.h"

#define XFF_HEADERS_MAX 8   /* X-Forwarded-For header lines looked at */
#define COOKIE_LINES_MAX 8  /* Cookie header lines looked at */
#define METHOD_LINES_MAX SESS_FA_METHOD_LINES_MAX

/* Bodies say no more than the error code (docs/api.md): the message is the
 * same for every cause, so nothing about the session leaks. */
static const char body_401[] =
    "{\"error\":\"invalid_session\",\"message\":\"no valid session\"}";
static const char body_403[] =
    "{\"error\":\"csrf_failed\",\"message\":\"CSRF check failed\"}";
static const char body_500[] =
    "{\"error\":\"internal_error\",\"message\":\"internal error\"}";
static const char content_json[] = "application/json";

/* sess_fa_trust_fn over the configured trusted proxies. */
static bool hop_trusted(const void *arg, const char *ip)
{
    return sessiond_config_is_trusted_proxy(arg, ip);
}

/* The forwarding headers of "req" for the library's trust rule
 * (sess_fa_client_ip, sess_fa_self_origin: one owner with the nginx
 * module).  Any peer on our Unix socket is a trusted proxy: only local
 * processes allowed by its 0660 mode can reach it. */
typedef struct forwarded_lines {
    const char *xff[XFF_HEADERS_MAX];
    const char *proto[XFF_HEADERS_MAX];
    const char *fhost[XFF_HEADERS_MAX];
} forwarded_lines;

static void gather_forwarded(const sessiond_app *app,
                             const sessiond_http_req *req, forwarded_lines *l,
                             sess_fa_forwarded *f)
{
    const char *peer = req->peer_ip != NULL ? req->peer_ip : "";
    memset(f, 0, sizeof(*f));
    f->peer_ip = req->peer_unix ? NULL : peer;
    f->peer_trusted = req->peer_unix ||
                      sessiond_config_is_trusted_proxy(app->cfg, peer);
    f->trusted = hop_trusted;
    f->trusted_arg = app->cfg;
    if (f->peer_trusted) {
        f->xff_lines = l->xff;
        f->n_xff_lines = req->header_all(req->conn, "X-Forwarded-For", l->xff,
                                         XFF_HEADERS_MAX);
        f->real_ip = req->header(req->conn, "X-Real-IP");
        f->proto_lines = l->proto;
        f->n_proto_lines = req->header_all(req->conn, "X-Forwarded-Proto",
                                           l->proto, XFF_HEADERS_MAX);
        f->fhost_lines = l->fhost;
        f->n_fhost_lines = req->header_all(req->conn, "X-Forwarded-Host",
                                           l->fhost, XFF_HEADERS_MAX);
    }
    f->host = req->header(req->conn, "Host");
    f->https = app->cfg->cookie.secure;
}

void sessiond_forward_client_ip(const sessiond_app *app,
                                const sessiond_http_req *req, char *out,
                                size_t cap)
{
    forwarded_lines l;
    sess_fa_forwarded f;
    gather_forwarded(app, req, &l, &f);
    sess_fa_client_ip(&f, out, cap);
}

int sessiond_forward_user_value(const char *user, size_t len, char *out,
                                size_t cap)
{
    return sess_fa_user_value(user, len, out, cap);
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
    static const char *const method_names[] = {"X-Forwarded-Method",
                                               "X-Original-Method"};
    const sessiond_config *cfg = app->cfg;
    char ip[SESS_IP_MAX + 1];
    const char *cookies[COOKIE_LINES_MAX];
    const char *methods[2 * METHOD_LINES_MAX];
    const char *ids[SESS_FA_CANDIDATES_MAX];
    size_t lens[SESS_FA_CANDIDATES_MAX];
    size_t n_methods = 0;
    bool truncated = false;
    sess_origin self;
    sess_fa_result r;

    /* The decision is the library's (sess_forward_auth_decide), shared
     * with the nginx module; here only the headers are gathered and the
     * answer written. */
    sess_fa_request fr = {
        .cookie_lines = cookies,
        .n_cookie_lines = req->header_all(req->conn, "Cookie", cookies,
                                          COOKIE_LINES_MAX),
        .cookie_name = cfg->cookie.name,
        .method_lines = methods,
        .own_method = req->method,
        .user_agent = req->header(req->conn, "User-Agent"),
        .origin = req->header(req->conn, "Origin"),
        .sec_fetch_site = req->header(req->conn, "Sec-Fetch-Site"),
        .csrf_token = req->header(req->conn, "X-CSRF-Token"),
        .allowed = cfg->allowed_origin,
        .n_allowed = cfg->n_allowed_origins,
        .cookie = &cfg->cookie,
    };
    size_t seen = 0;
    size_t n_ids = sess_fa_candidates(&fr, ids, lens, SESS_FA_CANDIDATES_MAX,
                                      &seen);
    if (n_ids == 0) {
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
    for (size_t l = 0; l < fr.n_cookie_lines && consent == NULL; l++)
        sessiond_cookies_find_consent(app, cookies[l], &consent,
                                      &consent_len);
    for (size_t k = 0; k < sizeof(method_names) / sizeof(method_names[0]); k++) {
        size_t n = req->header_all(req->conn, method_names[k],
                                   methods + n_methods, METHOD_LINES_MAX);
        if (n == METHOD_LINES_MAX)
            truncated = true;
        n_methods += n;
    }
    fr.n_method_lines = n_methods;
    fr.methods_truncated = truncated;
    forwarded_lines fl;
    sess_fa_forwarded fw;
    gather_forwarded(app, req, &fl, &fw);
    sess_fa_client_ip(&fw, ip, sizeof(ip));
    fr.client_ip = ip;
    fr.self = sess_fa_self_origin(&fw, &self) ? &self : NULL;

    sess_fa_outcome oc = sess_forward_auth_decide(
        app->ctx, cfg->session.csrf_enabled, &fr, &r);
    /* The IDs sit in the connection's header buffer, which we own for
     * this request: wipe them now that the library is done with them. */
    for (size_t i = 0; i < n_ids; i++)
        sess_wipe((char *)ids[i], lens[i]);
    if (r.seen > 1 && r.valid != 0 && oc != SESS_FA_ERROR)
        report_tossing(app, ip, r.seen, r.tried, r.valid,
                       r.valid >= 0 ? r.view.handle : NULL);

    switch (oc) {
    case SESS_FA_NO_SESSION:
        /* The outcome (spans, metrics, access log) says why; the answer
         * does not (docs/api.md, forward-auth). */
        sessiond_trace_set_outcome(r.rc == SESS_EINVAL
                                       ? SESSIOND_OUTCOME_UNKNOWN
                                       : sessiond_outcome_of_reason(r.view.reason));
        sessiond_resp_static(resp, 401, content_json, body_401);
        goto cleanup;
    case SESS_FA_CSRF:
        sessiond_trace_set_outcome(SESSIOND_OUTCOME_CSRF_FAILURE);
        sessiond_resp_static(resp, 403, content_json, body_403);
        goto cleanup;
    case SESS_FA_ERROR:
        if (r.rc == SESS_OK)   /* the successor's cookie did not fit */
            sessiond_resp_static(resp, 500, content_json, body_500);
        else
            sessiond_library_error_static(resp, r.rc, &r.err, "forward-auth");
        goto cleanup;
    case SESS_FA_OK:
        break;
    }

    resp->secret = true;   /* X-CSRF-Token, Set-Cookie */
    if (add_user_header(resp, r.view.user_id, r.view.user_id_len) != 0 ||
        sessiond_resp_header(resp, "X-Session-Handle", r.view.handle,
                             strlen(r.view.handle)) != 0 ||
        sessiond_resp_header(resp, "X-Session-Elevated",
                             r.view.elevated ? "true" : "false",
                             r.view.elevated ? 4 : 5) != 0 ||
        sessiond_resp_header(resp, "X-CSRF-Token", r.csrf, strlen(r.csrf)) != 0 ||
        sessiond_cookies_forward_consent(app, consent, consent_len, resp) != 0)
        goto cleanup;   /* the response is now a 500 */
    /* The upstream's access token, only now that the session validated
     * (revocation wins over the token cache). */
    if (sessiond_tokens_fa_attach(app, &r.view, resp) != 0) {
        sessiond_resp_static(resp, 500, content_json, body_500);
        goto cleanup;
    }
    if (r.set_cookie_len > 0) {
        if (sessiond_resp_header(resp, "Set-Cookie", r.set_cookie,
                                 (size_t)r.set_cookie_len) != 0 ||
            sessiond_resp_header(resp, "X-Session-Rotated", "1", 1) != 0)
            goto cleanup;
    }
    sessiond_resp_static(resp, 200, NULL, NULL);

cleanup:
    sess_fa_result_clear(&r);
}
