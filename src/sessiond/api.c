/*
 * api.c - the JSON management API and the health endpoints (docs/api.md).
 *
 * Each handler parses its body with request.c (400/413 with a message
 * naming the field), calls one libsess function, and maps the result:
 * normal outcomes to their documented statuses (401 with "reason" for a
 * dead session, 409 for a limit with policy deny or a data version
 * conflict), store trouble to 503, and only true internal failures to 500.
 *
 * Secrets: session IDs and CSRF tokens from requests are wiped when the
 * parsed request is freed; issued IDs (sess_issued, sess_view) and the
 * Set-Cookie text built from them are wiped here once copied into the
 * response, whose body is itself marked secret so the server wipes it
 * after sending.  Error messages never quote an ID, token or key.
 *
 * No state of its own, no locking: the session context is thread-safe.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "request.h"
#include "trace.h"

/* ---- shared helpers --------------------------------------------------- */

/*
 * The one map from a library error to an HTTP answer, for the JSON API and
 * forward-auth alike (forward-auth sends "body", a fixed text, so its hot
 * path builds no JSON).  Store trouble is 503 - never 401, the session may
 * be alive - invalid input 400, too large 413, anything else 500.  The
 * last row is the default.
 */
typedef struct status_row {
    int rc;
    unsigned status;
    const char *code;
    const char *message;        /* NULL: the library's message */
    sessiond_log_level log;     /* how loudly the detail is logged */
    const char *body;           /* the same as a fixed JSON text */
} status_row;

#define BODY(code, msg) "{\"error\":\"" code "\",\"message\":\"" msg "\"}"
static const status_row status_rows[] = {
    {SESS_EIO, 503, "store_unavailable", "the session store is unavailable",
     SESSIOND_LOG_WARN,
     BODY("store_unavailable", "the session store is unavailable")},
    {SESS_EUNAVAILABLE, 503, "store_unavailable",
     "the session store is unavailable", SESSIOND_LOG_WARN,
     BODY("store_unavailable", "the session store is unavailable")},
    {SESS_EFULL, 503, "store_unavailable", "the session store is unavailable",
     SESSIOND_LOG_WARN,
     BODY("store_unavailable", "the session store is unavailable")},
    {SESS_EINVAL, 400, "invalid_request", NULL, SESSIOND_LOG_DEBUG,
     BODY("invalid_request", "invalid request")},
    {SESS_ETOOBIG, 413, "too_large", NULL, SESSIOND_LOG_DEBUG,
     BODY("too_large", "too large")},
    {0, 500, "internal_error", "internal error", SESSIOND_LOG_ERROR,
     BODY("internal_error", "internal error")},
};
#undef BODY

static const status_row *status_of(int rc)
{
    size_t n = sizeof(status_rows) / sizeof(status_rows[0]);
    for (size_t i = 0; i + 1 < n; i++)
        if (status_rows[i].rc == rc)
            return &status_rows[i];
    return &status_rows[n - 1];
}

unsigned sessiond_error_status(int rc)
{
    return status_of(rc)->status;
}

static void log_library_error(const status_row *row, int rc, const char *where,
                              const char *detail)
{
    if (row->status == 503)
        sessiond_log(row->log, "%s: store error: %s", where, detail);
    else if (row->status == 500)
        sessiond_log(row->log, "%s: internal error: %s (%s)", where, detail,
                     sess_result_name(rc));
}

void sessiond_api_library_error(sessiond_http_resp *resp, int rc,
                                const sess_err *err)
{
    const char *detail = err != NULL && err->msg[0] != '\0'
                             ? err->msg : sess_strerror(rc);
    const status_row *row = status_of(rc);
    log_library_error(row, rc, "api", detail);
    sessiond_resp_error(resp, row->status, row->code,
                        row->message != NULL ? row->message : detail);
}

void sessiond_library_error_static(sessiond_http_resp *resp, int rc,
                                   const sess_err *err, const char *where)
{
    const char *detail = err != NULL && err->msg[0] != '\0'
                             ? err->msg : sess_strerror(rc);
    const status_row *row = status_of(rc);
    log_library_error(row, rc, where, detail);
    sessiond_resp_static(resp, row->status, "application/json", row->body);
}

/* 401 for a session that is not (or no longer) valid. */
static void invalid_session(sessiond_http_resp *resp, sess_reason reason)
{
    if (reason == SESS_REASON_NONE)
        reason = SESS_REASON_UNKNOWN;
    sessiond_trace_set_outcome(sessiond_outcome_of_reason((int)reason));
    sessiond_resp_error2(resp, 401, "invalid_session",
                         "the session is not valid", "reason",
                         sess_reason_name(reason));
}

/* Parse the body of "req" as "kind"; on failure answer and return false. */
static bool parse_body(const sessiond_http_req *req,
                       sessiond_request_kind kind, sessiond_request *out,
                       sessiond_http_resp *resp)
{
    char msg[256];
    switch (sessiond_request_parse(kind, req->body, req->body_len, out, msg,
                                   sizeof(msg))) {
    case SESSIOND_PARSE_OK:
        return true;
    case SESSIOND_PARSE_BAD:
        sessiond_resp_error(resp, 400, "invalid_request", msg);
        return false;
    case SESSIOND_PARSE_TOO_BIG:
        sessiond_resp_error(resp, 413, "too_large", msg);
        return false;
    case SESSIOND_PARSE_NOMEM:
        break;
    }
    sessiond_resp_error(resp, 500, "internal_error", "out of memory");
    return false;
}

/* The Set-Cookie value for "issued": the library's rule (remember-me
 * Max-Age included), so forward-auth and the API cannot differ. */
static int issued_cookie(sessiond_app *app, const sess_issued *issued,
                         char *buf, size_t cap)
{
    return sess_issued_cookie(app->ctx, &app->cfg->cookie, issued, buf, cap);
}

/* Set "key" of "o" to "v" (reference stolen, also on failure); false when
 * either is NULL (out of memory) or the set fails. */
static bool put(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v) == 0;
}

static json_t *uint_json(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* {"session_id", "handle", "csrf_token", "set_cookie", "expires_at",
 * "idle_expires_at"} for a newly issued ID. */
static json_t *issued_json(sessiond_app *app, const sess_issued *is)
{
    char cookie[SESS_SET_COOKIE_MAX];
    json_t *o = json_object();
    bool ok = issued_cookie(app, is, cookie, sizeof(cookie)) > 0 &&
              put(o, "session_id", json_string(is->id)) &&
              put(o, "handle", json_string(is->handle)) &&
              put(o, "csrf_token", json_string(is->csrf_token)) &&
              put(o, "set_cookie", json_string(cookie)) &&
              put(o, "expires_at", uint_json(is->expires_at)) &&
              put(o, "idle_expires_at", uint_json(is->idle_expires_at));
    sess_wipe(cookie, sizeof(cookie));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void client_of(const sessiond_request *r, sess_client *c)
{
    c->ip = r->client.ip;
    c->user_agent = r->client.user_agent;
}

/* ---- POST /v1/sessions ------------------------------------------------ */

void sessiond_api_create(sessiond_app *app, const sessiond_http_req *req,
                         sessiond_http_resp *resp)
{
    sessiond_request r = {0};
    sess_issued is;
    sess_evicted ev;
    sess_err err = {0};

    memset(&is, 0, sizeof(is));
    memset(&ev, 0, sizeof(ev));
    if (!parse_body(req, SESSIOND_REQ_CREATE, &r, resp))
        goto cleanup;

    sess_create_req cr = {
        .user_id = r.user_id,
        .user_id_len = r.user_id_len,
        .data = r.data,
        .data_len = r.data_len,
        .remember = r.remember,
        .elevated = r.has_elevated && r.elevated,
    };
    client_of(&r, &cr.client);
    int rc = sess_create(app->ctx, &cr, &is, &ev, &err);
    if (rc == SESS_LIMIT) {
        sessiond_resp_error(resp, 409, "session_limit",
                            "the user already has the maximum number of "
                            "sessions (limit_policy = deny)");
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }

    json_t *o = issued_json(app, &is);
    json_t *evicted = json_array();
    for (size_t i = 0; evicted != NULL && i < ev.n && i < SESS_EVICT_MAX; i++)
        json_array_append_new(evicted, json_string(ev.handle[i]));
    if (!put(o, "evicted", evicted) ||
        !put(o, "remember", json_boolean(is.remember))) {
        json_decref(o);
        o = NULL;
    }
    sessiond_resp_json(resp, 201, o, true);

cleanup:
    sess_wipe(&is, sizeof(is));
    sessiond_request_free(&r);
}

/* ---- POST /v1/sessions/validate --------------------------------------- */

/* The session's data as JSON: the daemon stores the compact text of an
 * object; anything else (written through the library directly) is
 * returned as a string rather than dropped. */
static json_t *data_json(const sess_view *v)
{
    if (v->data == NULL || v->data_len == 0)
        return json_object();
    json_t *d = json_loadb(v->data, v->data_len, 0, NULL);
    if (d != NULL)
        return d;
    d = json_stringn(v->data, v->data_len);
    return d != NULL ? d : json_null();
}

void sessiond_api_validate(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp)
{
    sessiond_request r = {0};
    sess_view v;
    sess_err err = {0};
    sess_client client;

    memset(&v, 0, sizeof(v));
    if (!parse_body(req, SESSIOND_REQ_VALIDATE, &r, resp))
        goto cleanup;
    client_of(&r, &client);
    int rc = sess_validate(app->ctx, r.session_id, r.session_id_len, &client,
                           SESS_VALIDATE_WANT_DATA, &v, &err);
    if (rc == SESS_REJECTED) {
        invalid_session(resp, v.reason);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }

    json_t *o = json_object();
    bool ok = put(o, "user_id", json_stringn(v.user_id, v.user_id_len)) &&
              put(o, "handle", json_string(v.handle)) &&
              put(o, "data", data_json(&v)) &&
              put(o, "version", uint_json(v.data_version)) &&
              put(o, "csrf_token", json_string(v.csrf_token)) &&
              put(o, "elevated", json_boolean(v.elevated)) &&
              put(o, "remember", json_boolean(v.remember)) &&
              put(o, "created_at", uint_json(v.created_at)) &&
              put(o, "last_seen_at", uint_json(v.last_seen_at)) &&
              put(o, "expires_at", uint_json(v.expires_at)) &&
              put(o, "idle_expires_at", uint_json(v.idle_expires_at));
    if (ok && v.rotated) {
        char cookie[SESS_SET_COOKIE_MAX];
        json_t *rot = json_object();
        bool rok =
            issued_cookie(app, &v.successor, cookie, sizeof(cookie)) > 0 &&
            put(rot, "session_id", json_string(v.successor.id)) &&
            put(rot, "set_cookie", json_string(cookie)) &&
            put(rot, "csrf_token", json_string(v.successor.csrf_token)) &&
            put(rot, "expires_at", uint_json(v.successor.expires_at)) &&
            put(rot, "idle_expires_at",
                uint_json(v.successor.idle_expires_at));
        if (rok) {
            ok = put(o, "rotated", rot);   /* consumes "rot" */
        } else {
            json_decref(rot);
            ok = false;
        }
        sess_wipe(cookie, sizeof(cookie));
    }
    if (!ok) {
        json_decref(o);
        o = NULL;
    }
    sessiond_resp_json(resp, 200, o, true);

cleanup:
    sess_view_clear(&v);
    sessiond_request_free(&r);
}

/* ---- POST /v1/sessions/regenerate ------------------------------------- */

void sessiond_api_regenerate(sessiond_app *app, const sessiond_http_req *req,
                             sessiond_http_resp *resp)
{
    sessiond_request r = {0};
    sess_issued is;
    sess_reason reason = SESS_REASON_NONE;
    sess_err err = {0};
    sess_client client;

    memset(&is, 0, sizeof(is));
    if (!parse_body(req, SESSIOND_REQ_REGENERATE, &r, resp))
        goto cleanup;
    client_of(&r, &client);
    int rc = sess_regenerate(app->ctx, r.session_id, r.session_id_len,
                             &client, r.has_elevated ? (int)r.elevated : -1,
                             &is, &reason, &err);
    if (rc == SESS_REJECTED) {
        invalid_session(resp, reason);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    sessiond_resp_json(resp, 200, issued_json(app, &is), true);

cleanup:
    sess_wipe(&is, sizeof(is));
    sessiond_request_free(&r);
}

/* ---- POST /v1/sessions/data ------------------------------------------- */

void sessiond_api_set_data(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp)
{
    sessiond_request r = {0};
    sess_reason reason = SESS_REASON_NONE;
    sess_err err = {0};
    uint64_t version = 0;

    if (!parse_body(req, SESSIOND_REQ_DATA, &r, resp))
        goto cleanup;
    int rc = sess_set_data(app->ctx, r.session_id, r.session_id_len, r.data,
                           r.data_len, r.has_version ? r.version : -1,
                           &version, &reason, &err);
    if (rc == SESS_REJECTED) {
        invalid_session(resp, reason);
        goto cleanup;
    }
    if (rc == SESS_CONFLICT) {
        sessiond_resp_error(resp, 409, "version_conflict",
                            "the session data has another version");
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    json_t *o = json_object();
    if (!put(o, "version", uint_json(version))) {
        json_decref(o);
        o = NULL;
    }
    sessiond_resp_json(resp, 200, o, false);

cleanup:
    sessiond_request_free(&r);
}

/* ---- POST /v1/sessions/destroy ---------------------------------------- */

void sessiond_api_destroy(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp)
{
    sessiond_request r = {0};
    sess_err err = {0};
    char cookie[SESS_SET_COOKIE_MAX];

    if (!parse_body(req, SESSIOND_REQ_DESTROY, &r, resp))
        goto cleanup;
    int rc = sess_destroy(app->ctx, r.session_id, r.session_id_len, &err);
    /* Logout is idempotent: a session already gone still gets the
     * clearing cookie, so the browser forgets it either way. */
    if (rc != SESS_OK && rc != SESS_NOTFOUND) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    if (sess_cookie_format_clear(&app->cfg->cookie, cookie,
                                 sizeof(cookie)) <= 0) {
        sessiond_resp_error(resp, 500, "internal_error",
                            "cannot format the clearing cookie");
        goto cleanup;
    }
    json_t *o = json_object();
    if (!put(o, "set_cookie", json_string(cookie)) ||
        !put(o, "destroyed", json_boolean(rc == SESS_OK))) {
        json_decref(o);
        o = NULL;
    }
    sessiond_resp_json(resp, 200, o, false);

cleanup:
    sessiond_request_free(&r);
}

/* ---- POST /v1/csrf/verify --------------------------------------------- */

void sessiond_api_csrf_verify(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp)
{
    sessiond_request r = {0};
    sess_reason reason = SESS_REASON_NONE;
    sess_err err = {0};

    if (!parse_body(req, SESSIOND_REQ_CSRF_VERIFY, &r, resp))
        goto cleanup;
    /* An Origin can only be judged against the application's own host or
     * the configured allowed origins: refusing every call without either
     * would be wrong, ignoring the Origin would be unsafe, so say so. */
    const sessiond_config *cfg = app->cfg;
    if (r.origin != NULL && r.host == NULL && cfg->n_allowed_origins == 0) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "origin needs host (the application's own host) "
                            "or csrf.allowed_origins to compare it with");
        goto cleanup;
    }
    /* "host" is the application's own origin ("https://app.example") or
     * its host[:port], whose scheme is then the configured one (https
     * when cookie.secure): compared as a full origin either way. */
    sess_origin self;
    if (r.host != NULL &&
        (strstr(r.host, "://") != NULL
             ? sess_origin_parse(r.host, strlen(r.host), &self)
             : sess_origin_from_host(cfg->cookie.secure, r.host,
                                     strlen(r.host), &self)) != SESS_OK) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "\"host\" must be host[:port] or an origin "
                            "(https://host[:port])");
        goto cleanup;
    }
    /* Cross-site request forgery from another origin (docs/security.md invariant 8):
     * the application passes the browser's Origin / Sec-Fetch-Site. */
    if ((r.origin != NULL || r.sec_fetch_site != NULL) &&
        !sess_same_origin_ok(r.origin, r.sec_fetch_site,
                             r.host != NULL ? &self : NULL,
                             cfg->allowed_origin, cfg->n_allowed_origins)) {
        sess_event ev = {
            .type = SESS_EVENT_CSRF_FAILURE,
            .at = sess_ctx_now(app->ctx),
            .detail = "cross-site origin",
        };
        sess_emit_event(app->ctx, &ev);
        sessiond_trace_set_outcome(SESSIOND_OUTCOME_CSRF_FAILURE);
        sessiond_resp_error(resp, 403, "csrf_failed",
                            "cross-site request refused");
        goto cleanup;
    }
    int rc = sess_csrf_verify(app->ctx, r.session_id, r.session_id_len,
                              r.csrf_token, r.csrf_token_len, &reason, &err);
    if (rc == SESS_CSRF) {
        sessiond_trace_set_outcome(SESSIOND_OUTCOME_CSRF_FAILURE);
        sessiond_resp_error(resp, 403, "csrf_failed",
                            "the CSRF token does not match the session");
        goto cleanup;
    }
    if (rc == SESS_REJECTED) {
        invalid_session(resp, reason);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    sessiond_resp_json(resp, 200, json_pack("{s:b}", "valid", 1), false);

cleanup:
    sessiond_request_free(&r);
}

/* ---- /v1/users/{user_id}/sessions ------------------------------------- */

/* Decode and check the {user_id} path parameter into "buf"
 * (SESS_USER_ID_MAX + 1 bytes); on failure answer 400 and return -1. */
static long path_user_id(const sessiond_http_req *req, char *buf,
                         sessiond_http_resp *resp)
{
    long n = -1;
    if (req->n_params >= 1)
        n = sessiond_percent_decode(req->params[0], req->param_lens[0], buf,
                                    SESS_USER_ID_MAX);
    if (n <= 0 || !sessiond_user_id_valid(buf, (size_t)n)) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "the user id in the path must be 1 to 256 bytes "
                            "of percent-encoded UTF-8");
        return -1;
    }
    buf[n] = '\0';
    return n;
}

void sessiond_api_list_user(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp)
{
    char user[SESS_USER_ID_MAX + 1];
    sess_summary *list = NULL;
    size_t n = 0;
    sess_err err = {0};

    long ulen = path_user_id(req, user, resp);
    if (ulen < 0)
        return;
    int rc = sess_list_user(app->ctx, user, (size_t)ulen, &list, &n, &err);
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        const sess_summary *s = &list[i];
        json_t *o = json_object();
        json_t *ua = json_string(s->user_agent);
        if (ua == NULL)   /* truncated inside a UTF-8 sequence */
            ua = json_null();
        bool ok = put(o, "handle", json_string(s->handle)) &&
                  put(o, "created_at", uint_json(s->created_at)) &&
                  put(o, "last_seen_at", uint_json(s->last_seen_at)) &&
                  put(o, "expires_at", uint_json(s->expires_at)) &&
                  put(o, "ip", json_string(s->ip)) &&
                  put(o, "user_agent", ua) &&
                  put(o, "elevated", json_boolean(s->elevated)) &&
                  put(o, "remember", json_boolean(s->remember));
        if (!ok || json_array_append_new(arr, o) != 0) {
            if (!ok)
                json_decref(o);
            json_decref(arr);
            arr = NULL;
        }
    }
    json_t *root = json_object();
    if (!put(root, "sessions", arr)) {
        json_decref(root);
        root = NULL;
    }
    sessiond_resp_json(resp, 200, root, false);

cleanup:
    free(list);
}

void sessiond_api_revoke_user(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp)
{
    char user[SESS_USER_ID_MAX + 1];
    char except[SESS_HANDLE_LEN + 1];
    const char *except_ptr = NULL;
    size_t revoked = 0;
    sess_err err = {0};

    long ulen = path_user_id(req, user, resp);
    if (ulen < 0)
        return;
    const char *q = req->query != NULL ? req->query(req->conn, "except")
                                       : NULL;
    if (q != NULL) {
        long n = sessiond_percent_decode(q, strlen(q), except,
                                         SESS_HANDLE_LEN);
        if (n < 0 || !sessiond_handle_valid(except, (size_t)n)) {
            sessiond_resp_error(resp, 400, "invalid_request",
                                "\"except\" must be a session handle");
            return;
        }
        except[n] = '\0';
        except_ptr = except;
    }
    int rc = sess_revoke_user(app->ctx, user, (size_t)ulen, except_ptr,
                              &revoked, &err);
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        return;
    }
    sessiond_resp_json(resp, 200,
                       json_pack("{s:I}", "revoked", (json_int_t)revoked),
                       false);
}

/* ---- DELETE /v1/sessions/{handle} ------------------------------------- */

void sessiond_api_revoke_handle(sessiond_app *app,
                                const sessiond_http_req *req,
                                sessiond_http_resp *resp)
{
    char handle[SESS_HANDLE_LEN + 1];
    sess_err err = {0};
    long n = -1;

    if (req->n_params >= 1)
        n = sessiond_percent_decode(req->params[0], req->param_lens[0],
                                    handle, SESS_HANDLE_LEN);
    /* A string that cannot be a handle names no session: 404 like any
     * other unknown handle. */
    if (n < 0 || !sessiond_handle_valid(handle, (size_t)n)) {
        sessiond_resp_error(resp, 404, "not_found",
                            "no session has this handle");
        return;
    }
    handle[n] = '\0';
    int rc = sess_revoke_handle(app->ctx, handle, (size_t)n, &err);
    if (rc == SESS_NOTFOUND) {
        sessiond_resp_error(resp, 404, "not_found",
                            "no session has this handle");
        return;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        return;
    }
    sessiond_resp_static(resp, 204, NULL, NULL);
}

/* ---- health ----------------------------------------------------------- */

void sessiond_api_healthz(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp)
{
    (void)app;
    (void)req;
    sessiond_resp_static(resp, 200, "application/json", "{\"status\":\"ok\"}");
}

void sessiond_api_readyz(sessiond_app *app, const sessiond_http_req *req,
                         sessiond_http_resp *resp)
{
    sess_err err = {0};
    (void)req;
    int rc = sess_ping(app->ctx, &err);
    if (rc != SESS_OK) {
        sessiond_log(SESSIOND_LOG_WARN, "readiness: store does not answer: %s",
                     err.msg[0] != '\0' ? err.msg : sess_strerror(rc));
        sessiond_resp_error(resp, 503, "store_unavailable",
                            "the session store does not answer");
        return;
    }
    sessiond_resp_static(resp, 200, "application/json", "{\"status\":\"ok\"}");
}
