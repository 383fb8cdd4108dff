/*
 * cookies.c - the cookie policy routes and the forward-auth consent hook
 * (docs/api.md "Cookie policy and consent", docs/cookies.md).
 *
 * The catalogue lives in the configuration (validated at start-up by
 * sess_cookie_catalogue_check, which also fixed the policy version); this
 * file serves it:
 *
 *   GET  /v1/cookies/policy   the matrix a consent banner renders, for the
 *                             current environment, plus the consent the
 *                             request's cookie carries (if any);
 *   POST /v1/cookies/consent  a signed consent cookie for the chosen
 *                             categories, and delete cookies for those the
 *                             previous consent granted and this one does not;
 *   POST /v1/cookies/set      the Set-Cookie of a declared cookie, built from
 *                             the catalogue, only with consent for its
 *                             category.
 *
 * Consent keys: derived from the record keyring (HKDF, a label of their
 * own: lib/cookie_policy.c) at start-up and on SIGHUP, held behind a
 * read-write lock.  A consent value comes from a browser: it is bounded
 * and verified in constant time by the library; a tampered, expired or
 * outdated one counts as essential only.  Nothing here is a secret worth
 * wiping (the consent value is the user's own, signed, not confidential).
 */
#include "cookies.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"

#define CATEGORIES_IN_MAX 16   /* entries of "categories" looked at */

static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static sess_consent_keys *consent_keys;

int sessiond_cookies_keys(const sess_keyring *kr, char *msg, size_t msglen)
{
    sess_consent_keys *k = NULL, *old;
    sess_err err = {0};

    if (sess_consent_keys_derive(kr, &k, &err) != SESS_OK) {
        snprintf(msg, msglen, "consent keys: %s",
                 err.msg[0] ? err.msg : sess_strerror(err.code));
        return -1;
    }
    pthread_rwlock_wrlock(&keys_lock);
    old = consent_keys;
    consent_keys = k;
    pthread_rwlock_unlock(&keys_lock);
    sess_consent_keys_free(old);
    return 0;
}

void sessiond_cookies_shutdown(void)
{
    pthread_rwlock_wrlock(&keys_lock);
    sess_consent_keys_free(consent_keys);
    consent_keys = NULL;
    pthread_rwlock_unlock(&keys_lock);
}

static const sess_cookie_catalogue *catalogue(const sessiond_app *app)
{
    return &app->cfg->cookies;
}

static void consent_profile(const sessiond_app *app, sess_cookie_profile *p)
{
    sess_cookie_consent_profile(catalogue(app), app->cfg->env, p);
}

unsigned sessiond_cookies_verify(const sessiond_app *app, const char *value,
                                 size_t len, const char **status,
                                 unsigned *prev)
{
    sess_consent c;
    int rc;

    pthread_rwlock_rdlock(&keys_lock);
    rc = sess_consent_verify(consent_keys, value, len,
                             catalogue(app)->effective,
                             sess_ctx_now(app->ctx),
                             catalogue(app)->consent_max_age, &c);
    pthread_rwlock_unlock(&keys_lock);
    if (status != NULL)
        *status = rc == SESS_OK ? "valid"
                  : rc == SESS_CONFLICT ? "outdated" : "invalid";
    if (prev != NULL)
        *prev = rc == SESS_OK || rc == SESS_CONFLICT ? c.mask : 0;
    return rc == SESS_OK ? c.mask : 1u;
}

/* The consent cookie's value in the Cookie header "cookie", if any. */
static bool find_consent(const sessiond_app *app, const char *cookie,
                         const char **value, size_t *len)
{
    /* The name was fixed by the start-up check: nothing to build on the
     * forward-auth path but the header scan. */
    if (cookie == NULL)
        return false;
    return sess_cookie_find(cookie, strlen(cookie),
                            catalogue(app)->consent_effective, value,
                            len) == SESS_OK;
}

void sessiond_cookies_find_consent(const sessiond_app *app,
                                   const char *cookie, const char **value,
                                   size_t *len)
{
    if (!find_consent(app, cookie, value, len)) {
        *value = NULL;
        *len = 0;
    }
}

int sessiond_cookies_forward_consent(const sessiond_app *app,
                                     const char *value, size_t len,
                                     sessiond_http_resp *resp)
{
    char cats[64];
    unsigned mask = 1u;

    /* Only a request that carries the consent cookie pays for a MAC. */
    if (value != NULL)
        mask = sessiond_cookies_verify(app, value, len, NULL, NULL);
    int n = sess_consent_format_categories(mask, cats, sizeof cats);
    if (n <= 0)
        return -1;
    return sessiond_resp_header(resp, "X-Cookie-Consent", cats, (size_t)n);
}

/* ---- GET /v1/cookies/policy --------------------------------------------- */

/* Consent mask -> ["essential", ...]. */
static json_t *mask_json(unsigned mask)
{
    json_t *a = json_array();

    for (unsigned c = 0; a != NULL && c < SESS_COOKIE_CATEGORIES; c++)
        if ((mask | 1u) & (1u << c))
            json_array_append_new(a, json_string(sess_cookie_category_name(c)));
    return a;
}

static json_t *attributes_json(const sess_cookie_profile *p)
{
    return json_pack("{s:b, s:b, s:s, s:s, s:o, s:o}", "secure", p->secure,
                     "http_only", p->http_only, "same_site",
                     sess_same_site_name(p->same_site), "path", p->path,
                     "domain", p->domain[0] ? json_string(p->domain)
                                            : json_null(),
                     "max_age", p->max_age >= 0 ? json_integer(p->max_age)
                                                : json_null());
}

static json_t *cookie_json(const char *name, const char *purpose,
                           const char *retention,
                           const sess_cookie_profile *p)
{
    char text[SESS_COOKIE_RETENTION_MAX + 1];

    if (retention == NULL || retention[0] == '\0') {
        sess_cookie_retention_text(p->max_age, text, sizeof text);
        retention = text;
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "name", name, "purpose",
                     purpose, "retention", retention, "attributes",
                     attributes_json(p));
}

void sessiond_cookies_policy(sessiond_app *app, const sessiond_http_req *req,
                             sessiond_http_resp *resp)
{
    const sess_cookie_catalogue *cat = catalogue(app);
    sess_environment env = app->cfg->env;
    sess_cookie_profile p;
    json_t *cats = json_array(), *root = NULL;

    if (cats == NULL)
        goto nomem;
    for (unsigned c = 0; c < SESS_COOKIE_CATEGORIES; c++) {
        json_t *list = json_array();
        json_t *entry = json_pack("{s:s, s:b, s:o}", "name",
                                  sess_cookie_category_name(c),
                                  "consent_required",
                                  c != SESS_COOKIE_ESSENTIAL, "cookies", list);
        if (entry == NULL || json_array_append_new(cats, entry) != 0)
            goto nomem;
        if (c == SESS_COOKIE_ESSENTIAL) {
            /* The session and consent cookies are always there. */
            json_array_append_new(list, cookie_json(app->cfg->cookie.name,
                                                    cat->session_purpose,
                                                    NULL, &app->cfg->cookie));
            consent_profile(app, &p);
            json_array_append_new(list,
                                  cookie_json(p.name,
                                              "Remembers your answer to "
                                              "this cookie policy.",
                                              NULL, &p));
        }
        for (size_t i = 0; i < cat->n; i++) {
            const sess_cookie_decl *d = &cat->cookies[i];
            if ((unsigned)d->category != c)
                continue;
            sess_cookie_decl_resolve(d, env, &p);
            json_array_append_new(list, cookie_json(d->name, d->purpose,
                                                    d->retention, &p));
        }
    }
    consent_profile(app, &p);
    root = json_pack("{s:s, s:s, s:s, s:o}", "version", cat->effective,
                     "environment", sess_environment_name(env),
                     "consent_cookie", p.name, "categories", cats);
    cats = NULL;
    if (root == NULL)
        goto nomem;

    /* The visitor's current answer, so a banner knows whether to ask. */
    const char *v;
    size_t len;
    if (find_consent(app, req->header(req->conn, "Cookie"), &v, &len)) {
        const char *status;
        unsigned mask = sessiond_cookies_verify(app, v, len, &status, NULL);
        json_object_set_new(root, "consent",
                            json_pack("{s:s, s:o}", "status", status,
                                      "categories", mask_json(mask)));
    } else {
        json_object_set_new(root, "consent", json_null());
    }
    sessiond_resp_json(resp, 200, root, false);
    /* The answer depends on the visitor's cookie. */
    sessiond_resp_header(resp, "Cache-Control", "no-store", 8);
    return;
nomem:
    json_decref(cats);
    sessiond_resp_error(resp, 500, "internal_error", "out of memory");
}

/* ---- request bodies ----------------------------------------------------- */

/*
 * Parse "req"'s body as a JSON object (jansson; duplicates refused, so two
 * "categories" members cannot disagree).  On failure answers 400.
 */
static json_t *body_object(const sessiond_http_req *req,
                           sessiond_http_resp *resp)
{
    json_error_t jerr;
    json_t *root;

    if (req->body == NULL || req->body_len == 0) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "a JSON object body is required");
        return NULL;
    }
    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        sessiond_resp_error(resp, 400, "invalid_request",
                            "the body is not a JSON object");
        return NULL;
    }
    return root;
}

/* The optional "consent" member (a consent cookie value), else the
 * consent cookie of the request's Cookie header.  false: none given. */
static bool presented_consent(const sessiond_app *app,
                              const sessiond_http_req *req, json_t *root,
                              const char **v, size_t *len, bool *bad)
{
    json_t *c = json_object_get(root, "consent");

    *bad = false;
    if (c != NULL && !json_is_null(c)) {
        if (!json_is_string(c)) {
            *bad = true;
            return false;
        }
        *v = json_string_value(c);
        *len = json_string_length(c);
        return true;
    }
    return find_consent(app, req->header(req->conn, "Cookie"), v, len);
}

/* ---- POST /v1/cookies/consent ------------------------------------------- */

void sessiond_cookies_consent(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp)
{
    const sess_cookie_catalogue *cat = catalogue(app);
    char value[SESS_CONSENT_VALUE_MAX + 1];
    char line[SESS_SET_COOKIE_MAX];
    sess_cookie_profile p;
    unsigned mask = 1u, prev = 0;
    json_t *root = body_object(req, resp), *arr, *dels = NULL, *out;
    const char *pv;
    size_t plen;
    bool bad;

    if (root == NULL)
        return;
    arr = json_object_get(root, "categories");
    if (!json_is_array(arr) || json_array_size(arr) > CATEGORIES_IN_MAX) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "categories: expected an array of at most 16 "
                            "category names");
        goto done;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        sess_cookie_category c;
        if (!json_is_string(s) ||
            sess_cookie_category_parse(json_string_value(s),
                                       json_string_length(s), &c) != SESS_OK) {
            sessiond_resp_error(resp, 400, "invalid_request",
                                "categories: each entry must be essential, "
                                "functional, analytics or marketing");
            goto done;
        }
        mask |= 1u << c;
    }
    if (presented_consent(app, req, root, &pv, &plen, &bad)) {
        const char *status;
        sessiond_cookies_verify(app, pv, plen, &status, &prev);
        /* A consent cookie we cannot read (tampered, other keys) may stand
         * for any earlier answer: clean up every category not granted. */
        if (strcmp(status, "invalid") == 0)
            prev = SESS_CONSENT_ALL;
    } else if (bad) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "consent: expected a consent cookie value");
        goto done;
    }

    pthread_rwlock_rdlock(&keys_lock);
    int n = sess_consent_sign(consent_keys, cat->effective,
                              sess_ctx_now(app->ctx), mask, value,
                              sizeof value);
    pthread_rwlock_unlock(&keys_lock);
    consent_profile(app, &p);
    if (n <= 0 ||
        sess_cookie_format(&p, value, -1, line, sizeof line) <= 0) {
        sessiond_log(SESSIOND_LOG_ERROR, "consent: cannot sign (%d)", n);
        sessiond_resp_error(resp, 500, "internal_error", "internal error");
        goto done;
    }
    dels = json_array();
    unsigned withdrawn = prev & ~mask;
    for (size_t i = 0; dels != NULL && i < cat->n; i++) {
        const sess_cookie_decl *d = &cat->cookies[i];
        char del[SESS_SET_COOKIE_MAX];
        if (!(withdrawn & (1u << d->category)))
            continue;
        sess_cookie_decl_resolve(d, app->cfg->env, &p);
        if (sess_cookie_format_clear(&p, del, sizeof del) > 0)
            json_array_append_new(dels, json_string(del));
    }
    out = json_pack("{s:s, s:o, s:o, s:s}", "set_cookie", line, "delete",
                    dels ? dels : json_array(), "categories", mask_json(mask),
                    "version", cat->effective);
    dels = NULL;
    if (out == NULL) {
        sessiond_resp_error(resp, 500, "internal_error", "out of memory");
        goto done;
    }
    sessiond_resp_json(resp, 200, out, false);
done:
    json_decref(dels);
    json_decref(root);
}

/* ---- POST /v1/cookies/set ----------------------------------------------- */

void sessiond_cookies_set(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp)
{
    const sess_cookie_catalogue *cat = catalogue(app);
    json_t *root = body_object(req, resp), *jn, *jv;
    char *line = NULL;
    sess_cookie_profile p;
    const char *pv;
    size_t plen;
    bool bad;

    if (root == NULL)
        return;
    jn = json_object_get(root, "name");
    jv = json_object_get(root, "value");
    if (!json_is_string(jn) || !json_is_string(jv)) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "name and value: expected strings");
        goto done;
    }
    const char *name = json_string_value(jn);
    size_t nlen = json_string_length(jn);
    consent_profile(app, &p);
    if ((strlen(app->cfg->cookie.name) == nlen &&
         memcmp(app->cfg->cookie.name, name, nlen) == 0) ||
        (strlen(p.name) == nlen && memcmp(p.name, name, nlen) == 0)) {
        sessiond_resp_error(resp, 403, "forbidden",
                            "the session and consent cookies are issued by "
                            "/v1/sessions and /v1/cookies/consent");
        goto done;
    }
    const sess_cookie_decl *d = sess_cookie_catalogue_find(cat, name, nlen);
    if (d == NULL) {
        sessiond_resp_error(resp, 404, "unknown_cookie",
                            "no cookie of that name is declared in the "
                            "catalogue");
        goto done;
    }
    /* A ';' or ',' in the value would smuggle attributes or a second
     * cookie into the header (cookie injection). */
    int vrc = sess_cookie_value_check(d->name, json_string_value(jv),
                                      json_string_length(jv));
    if (vrc != SESS_OK) {
        sessiond_resp_error(resp, 400, "invalid_value",
                            vrc == SESS_ETOOBIG
                                ? "name and value exceed 4096 bytes"
                                : "the value may hold only cookie-octets "
                                  "(no space, '\"', ',', ';', '\\' or "
                                  "control characters)");
        goto done;
    }
    if (d->category != SESS_COOKIE_ESSENTIAL) {
        unsigned mask = 1u;
        if (presented_consent(app, req, root, &pv, &plen, &bad))
            mask = sessiond_cookies_verify(app, pv, plen, NULL, NULL);
        else if (bad) {
            sessiond_resp_error(resp, 400, "invalid_request",
                                "consent: expected a consent cookie value");
            goto done;
        }
        if (!(mask & (1u << d->category))) {
            sessiond_resp_error2(resp, 403, "consent_required",
                                 "the visitor has not consented to this "
                                 "cookie's category", "category",
                                 sess_cookie_category_name(d->category));
            goto done;
        }
    }
    sess_cookie_decl_resolve(d, app->cfg->env, &p);
    line = malloc(SESS_SET_COOKIE_POLICY_MAX);
    int n = line ? sess_cookie_format(&p, json_string_value(jv), -1, line,
                                      SESS_SET_COOKIE_POLICY_MAX)
                 : SESS_ENOMEM;
    if (n <= 0) {
        sessiond_resp_error(resp, 500, "internal_error", "internal error");
        goto done;
    }
    sessiond_resp_json(resp, 200,
                       json_pack("{s:s, s:s, s:s}", "set_cookie", line,
                                 "name", d->name, "category",
                                 sess_cookie_category_name(d->category)),
                       false);
done:
    free(line);
    json_decref(root);
}
