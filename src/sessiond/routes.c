/*
 * routes.c - the one route table of the HTTP API, and the dispatcher.
 *
 * Each row names a method ("*": any), a path pattern (literal segments,
 * "{name}" parameters that match one non-empty segment, and a final "{*}"
 * that matches the rest of the path), the handler, whether the
 * route needs the API key and takes a JSON body, and its metric label.
 * Matching prefers the most literal pattern: "/v1/sessions/validate"
 * belongs to the validate route, never to "/v1/sessions/{handle}".  An
 * unknown path is a 404; a known path with another method is a 405 with
 * an Allow header listing the methods it has (HEAD comes with GET).
 *
 * The dispatcher applies, in order: URL length (414), route (404/405),
 * API key (401, invariant 11; GET /v1/auth, /healthz and /readyz
 * stay open), body size (413) and Content-Type (415) for body routes,
 * then the handler.  A refused key writes a rate-limited auth_failure
 * event (peer, route pattern, missing/unknown; never the key), and a peer
 * with repeated failures gets 429 with Retry-After for a while, before
 * its key is even looked at (apikeys.c).  The peer is the client address
 * by the forwarding trust rule (forward_auth.c), so clients behind a
 * trusted proxy are told apart.  The table is constant; nothing here
 * locks.
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "cookies.h"
#include "events.h"
#include "forward_auth.h"
#include "metrics.h"
#include "migration.h"
#include "tokens.h"

#define KEY SESSIOND_ROUTE_API_KEY
#define BODY SESSIOND_ROUTE_BODY
#define VALIDATES SESSIOND_ROUTE_VALIDATES

static const sessiond_route routes[] = {
    {"POST", "/v1/sessions", sessiond_api_create, KEY | BODY, "create"},
    {"POST", "/v1/sessions/validate", sessiond_api_validate,
     KEY | BODY | VALIDATES, "validate"},
    {"POST", "/v1/sessions/regenerate", sessiond_api_regenerate, KEY | BODY,
     "regenerate"},
    {"POST", "/v1/sessions/data", sessiond_api_set_data, KEY | BODY, "data"},
    {"POST", "/v1/sessions/destroy", sessiond_api_destroy, KEY | BODY,
     "destroy"},
    {"POST", "/v1/csrf/verify", sessiond_api_csrf_verify, KEY | BODY,
     "csrf_verify"},
    {"GET", "/v1/users/{user_id}/sessions", sessiond_api_list_user, KEY,
     "list_user_sessions"},
    {"DELETE", "/v1/users/{user_id}/sessions", sessiond_api_revoke_user, KEY,
     "revoke_user_sessions"},
    {"DELETE", "/v1/sessions/{handle}", sessiond_api_revoke_handle, KEY,
     "revoke_session"},
    /* Forward-auth answers any method (Envoy's and Istio's ext_authz send
     * the client's own method, and a path under the prefix: "/v1/auth"
     * + the request's path); nginx and Traefik send GET with
     * X-Forwarded-Method. */
    {"*", "/v1/auth", sessiond_forward_auth, VALIDATES, "auth"},
    {"*", "/v1/auth/{*}", sessiond_forward_auth, VALIDATES, "auth_prefixed"},
    /* The policy is what a banner renders: open like /v1/auth. */
    {"GET", "/v1/cookies/policy", sessiond_cookies_policy, 0,
     "cookies_policy"},
    {"POST", "/v1/cookies/consent", sessiond_cookies_consent, KEY | BODY,
     "cookies_consent"},
    {"POST", "/v1/cookies/set", sessiond_cookies_set, KEY | BODY,
     "cookies_set"},
    {"GET", "/healthz", sessiond_api_healthz, 0, "healthz"},
    {"GET", "/readyz", sessiond_api_readyz, 0, "readyz"},
    {"GET", "/metrics", sessiond_metrics_handler, KEY, "metrics"},
    {"GET", "/v1/admin/migration", sessiond_migration_get, KEY, "migration_get"},
    {"PUT", "/v1/admin/migration", sessiond_migration_put, KEY | BODY, "migration_put"},
    /* Tokens (docs/tokens.md): the management routes need the API key;
     * the key set and metadata are public by design. */
    {"POST", "/v1/tokens", sessiond_tokens_mint, KEY | BODY, "token_mint"},
    {"POST", "/v1/tokens/refresh", sessiond_tokens_refresh, KEY | BODY,
     "token_refresh"},
    {"POST", "/v1/tokens/introspect", sessiond_tokens_introspect, KEY | BODY,
     "token_introspect"},
    {"POST", "/v1/tokens/revoke", sessiond_tokens_revoke, KEY | BODY,
     "token_revoke"},
    {"GET", "/.well-known/jwks.json", sessiond_tokens_jwks, 0, "jwks"},
    {"GET", "/.well-known/oauth-authorization-server",
     sessiond_tokens_metadata, 0, "oauth_metadata"},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

_Static_assert(N_ROUTES <= SESSIOND_ROUTES_MAX,
               "raise SESSIOND_ROUTES_MAX");

size_t sessiond_routes_count(void)
{
    return N_ROUTES;
}

const sessiond_route *sessiond_route_at(size_t i)
{
    return i < N_ROUTES ? &routes[i] : NULL;
}

const char *sessiond_route_metric(size_t i)
{
    return i < N_ROUTES ? routes[i].metric : "unmatched";
}

bool sessiond_route_takes_body(long route)
{
    return route >= 0 && (size_t)route < N_ROUTES &&
           (routes[route].flags & BODY) != 0;
}

/*
 * Match "path" against "pattern".  Returns the number of literal segments
 * matched (its specificity), or -1 when it does not match.  Parameters go
 * to "params"/"lens" (up to SESSIOND_ROUTE_PARAMS_MAX).
 */
static int match_pattern(const char *pattern, const char *path,
                         size_t path_len, const char **params, size_t *lens,
                         size_t *n_params)
{
    const char *pp = pattern;
    const char *end = path + path_len;
    const char *p = path;
    int literals = 0;

    *n_params = 0;
    if (strchr(pattern, '{') == NULL) {
        /* A literal pattern (most routes): one comparison, then count its
         * segments only when it matched. */
        if (strlen(pattern) != path_len || memcmp(pattern, path, path_len) != 0)
            return -1;
        for (; *pp != '\0'; pp++)
            literals += *pp == '/';
        return literals;
    }
    while (*pp != '\0') {
        if (*pp != '/' || p >= end || *p != '/')
            return -1;
        pp++;
        p++;
        const char *pseg_end = strchr(pp, '/');
        if (pseg_end == NULL)
            pseg_end = pp + strlen(pp);
        const char *seg_end = memchr(p, '/', (size_t)(end - p));
        if (seg_end == NULL)
            seg_end = end;
        size_t plen = (size_t)(pseg_end - pp);
        size_t slen = (size_t)(seg_end - p);
        if (plen == 3 && memcmp(pp, "{*}", 3) == 0) {
            /* The rest of the path, whatever it holds (last segment of a
             * pattern only): not a parameter. */
            return literals;
        }
        if (plen > 0 && pp[0] == '{') {
            if (slen == 0 || *n_params >= SESSIOND_ROUTE_PARAMS_MAX)
                return -1;
            params[*n_params] = p;
            lens[*n_params] = slen;
            (*n_params)++;
        } else {
            if (plen != slen || memcmp(pp, p, slen) != 0)
                return -1;
            literals++;
        }
        pp = pseg_end;
        p = seg_end;
    }
    return p == end ? literals : -1;
}

static bool method_matches(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0 || strcmp(route_method, "*") == 0)
        return true;
    /* HEAD is GET without the body (RFC 9110 section 9.3.2). */
    return strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t len = strlen(allow);
    /* Skip duplicates: "GET" may come from two patterns. */
    const char *hit = strstr(allow, m);
    if (hit != NULL && (hit == allow || hit[-1] == ' ') &&
        (hit[strlen(m)] == ',' || hit[strlen(m)] == '\0'))
        return;
    snprintf(allow + len, cap - len, "%s%s", len > 0 ? ", " : "", m);
}

long sessiond_route_match(const char *method, const char *path,
                          size_t path_len, sessiond_http_req *req,
                          char *allow, size_t allow_cap)
{
    int best = -1;
    const char *params[SESSIOND_ROUTE_PARAMS_MAX];
    size_t lens[SESSIOND_ROUTE_PARAMS_MAX];
    size_t n_params;
    int spec[N_ROUTES];

    for (size_t i = 0; i < N_ROUTES; i++) {
        spec[i] = match_pattern(routes[i].pattern, path, path_len, params,
                                lens, &n_params);
        if (spec[i] > best)
            best = spec[i];
    }
    if (allow_cap > 0)
        allow[0] = '\0';
    if (best < 0)
        return -404;
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (spec[i] != best || !method_matches(routes[i].method, method))
            continue;
        match_pattern(routes[i].pattern, path, path_len, req->params,
                      req->param_lens, &req->n_params);
        return (long)i;
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (spec[i] != best)
            continue;
        allow_add(allow, allow_cap, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            allow_add(allow, allow_cap, "HEAD");
    }
    return -405;
}

/* "application/json", optionally with ";charset=utf-8" (any case, spaces
 * and quotes allowed); other parameters are ignored. */
static bool json_content_type(const char *ct)
{
    static const char mt[] = "application/json";
    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, mt, sizeof(mt) - 1) != 0)
        return false;
    const char *p = ct + sizeof(mt) - 1;
    while (*p == ' ' || *p == '\t')
        p++;
    while (*p == ';') {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        while (*p != '\0' && *p != '=' && *p != ';')
            p++;
        size_t nlen = (size_t)(p - name);
        while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
            nlen--;
        const char *val = NULL;
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            val = p;
            while (*p != '\0' && *p != ';')
                p++;
            vlen = (size_t)(p - val);
            while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
                vlen--;
            if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
                val++;
                vlen -= 2;
            }
        }
        if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
            (val == NULL || vlen != 5 || strncasecmp(val, "utf-8", 5) != 0))
            return false;
    }
    return *p == '\0';
}

static uint64_t monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

/* The API key check of a keyed route with keys configured: true to go
 * on, false with a 401 or 429 in "resp". */
static bool key_accepted(sessiond_app *app, const sessiond_route *r,
                         const sessiond_http_req *req,
                         sessiond_http_resp *resp)
{
    char ip[SESS_IP_MAX + 1];
    uint64_t now = monotonic_seconds();
    uint32_t retry = 0;
    bool have_ip = false;

    /* One atomic load unless some peer is being refused: a successful
     * request does not pay for the throttle. */
    if (sessiond_apikeys_refusing(app->apikeys, now)) {
        sessiond_forward_client_ip(app, req, ip, sizeof(ip));
        have_ip = true;
        if (sessiond_apikeys_throttled(app->apikeys, ip, now, &retry)) {
            char secs[16];
            int n = snprintf(secs, sizeof(secs), "%u", retry > 0 ? retry : 1);
            sessiond_resp_error(resp, 429, "too_many_requests",
                                "too many failed API keys from this "
                                "address; retry later");
            sessiond_resp_header(resp, "Retry-After", secs, (size_t)n);
            return false;
        }
    }
    sessiond_key_result kr = sessiond_apikeys_verify(
        app->apikeys, req->header(req->conn, "Authorization"));
    if (kr == SESSIOND_KEY_OK)
        return true;
    if (!have_ip)
        sessiond_forward_client_ip(app, req, ip, sizeof(ip));
    (void)sessiond_apikeys_failed(app->apikeys, ip, now);
    sessiond_events_peer(SESSIOND_PEV_AUTH_FAILURE, sess_ctx_now(app->ctx), ip,
                         r->pattern, NULL, sessiond_key_result_name(kr));
    sessiond_resp_error(resp, 401, "unauthorized",
                        "a valid API key is required "
                        "(Authorization: Bearer KEY)");
    sessiond_resp_header(resp, "WWW-Authenticate", "Bearer", 6);
    return false;
}

void sessiond_dispatch(sessiond_app *app, long route, const char *allow,
                       const sessiond_http_req *req, const char *content_type,
                       sessiond_http_resp *resp)
{
    if (req->path_len > SESSIOND_URL_MAX) {
        sessiond_resp_error(resp, 414, "uri_too_long",
                            "the request target is too long");
        return;
    }
    if (route == -404) {
        sessiond_resp_error(resp, 404, "not_found", "no such route");
        return;
    }
    if (route == -405) {
        sessiond_resp_error(resp, 405, "method_not_allowed",
                            "this path does not support the method");
        sessiond_resp_header(resp, "Allow", allow, strlen(allow));
        return;
    }
    if (route < 0 || (size_t)route >= N_ROUTES) {
        sessiond_resp_error(resp, 500, "internal_error", "internal error");
        return;
    }
    const sessiond_route *r = &routes[route];

    if ((r->flags & KEY) != 0 && sessiond_apikeys_enabled(app->apikeys) &&
        !key_accepted(app, r, req, resp))
        return;
    if ((r->flags & BODY) != 0) {
        if (req->body_too_large) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "the request body is larger than %llu bytes",
                     (unsigned long long)app->cfg->max_body_bytes);
            sessiond_resp_error(resp, 413, "too_large", msg);
            return;
        }
        if ((req->body_len > 0 || content_type != NULL) &&
            !json_content_type(content_type)) {
            sessiond_resp_error(resp, 415, "unsupported_media_type",
                                "the request body must be application/json "
                                "(UTF-8)");
            return;
        }
    }
    r->handler(app, req, resp);
}
