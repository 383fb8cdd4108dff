/*
 * forward_auth.c - the forward-auth decision (sess/forward_auth.h): one
 * owner for the rules GET /v1/auth and the nginx module both apply, so a
 * request gets the same answer whichever path it takes.
 *
 * Cookie tossing (RFC 6265bis section 8.6): every cookie named like ours,
 * across every Cookie line, is a candidate, tried in order until one
 * validates; at most SESS_FA_CANDIDATES_MAX are validated (each costs a
 * store read).  The method rule fails closed: any line that is not GET,
 * HEAD or OPTIONS makes the request unsafe, as do more lines than passed.
 * Unsafe requests validate with SESS_VALIDATE_NO_ROTATE (a request refused
 * for CSRF must not consume a rotation), then need a same-origin request
 * (cross-site request forgery: Sec-Fetch-Site and a full-origin Origin
 * comparison) and the session's CSRF token, compared in constant time.
 *
 * No state, no locking, no allocation beyond sess_validate's.
 */
#include "sess/forward_auth.h"

#include <stdio.h>
#include <string.h>

size_t sess_fa_candidates(const sess_fa_request *req, const char **ids,
                          size_t *lens, size_t cap, size_t *seen)
{
    size_t n = 0;
    *seen = 0;
    for (size_t l = 0; l < req->n_cookie_lines; l++) {
        const char *line = req->cookie_lines[l];
        if (line == NULL)
            continue;
        size_t pos = 0, hlen = strlen(line);
        const char *v;
        size_t vlen;
        /* A line that is not a valid Cookie header is skipped; the
         * others still count. */
        while (sess_cookie_next(line, hlen, req->cookie_name, &pos, &v,
                                &vlen) == SESS_OK) {
            (*seen)++;
            if (n < cap) {
                ids[n] = v;
                lens[n] = vlen;
                n++;
            }
        }
    }
    return n;
}

static bool method_unsafe(const sess_fa_request *req)
{
    if (req->methods_truncated)
        return true;   /* more lines than we read: do not guess */
    for (size_t i = 0; i < req->n_method_lines; i++)
        if (req->method_lines[i] != NULL &&
            !sess_method_is_safe(req->method_lines[i]))
            return true;
    return false;
}

static sess_fa_outcome csrf_refused(sess_ctx *ctx, const sess_fa_request *req,
                                    sess_fa_result *out, const char *detail)
{
    sess_event ev = {
        .type = SESS_EVENT_CSRF_FAILURE,
        .at = sess_ctx_now(ctx),
        .handle = out->view.handle,
        .user_id = out->view.user_id,
        .user_id_len = out->view.user_id_len,
        .ip = req->client_ip,
        .detail = detail,
    };
    sess_emit_event(ctx, &ev);
    out->csrf_detail = detail;
    out->outcome = SESS_FA_CSRF;
    return SESS_FA_CSRF;
}

sess_fa_outcome sess_forward_auth_decide(sess_ctx *ctx, bool csrf_enabled,
                                         const sess_fa_request *req,
                                         sess_fa_result *out)
{
    const char *ids[SESS_FA_CANDIDATES_MAX];
    size_t lens[SESS_FA_CANDIDATES_MAX];

    memset(out, 0, sizeof(*out));
    out->valid = -1;
    out->rc = SESS_REJECTED;
    out->outcome = SESS_FA_NO_SESSION;
    size_t n = sess_fa_candidates(req, ids, lens, SESS_FA_CANDIDATES_MAX,
                                  &out->seen);
    if (n == 0)
        return out->outcome;

    out->unsafe = csrf_enabled && method_unsafe(req);
    sess_client client = {req->client_ip, req->user_agent};
    for (size_t i = 0; i < n; i++) {
        out->err.code = 0;
        out->err.msg[0] = '\0';
        sess_view_clear(&out->view);
        out->tried = i + 1;
        /* The ID's form is checked by sess_validate (an unknown-form ID
         * is rejected there), so it is not decoded twice on this path. */
        out->rc = sess_validate(ctx, ids[i], lens[i], &client,
                                out->unsafe ? SESS_VALIDATE_NO_ROTATE : 0,
                                &out->view, &out->err);
        if (out->rc == SESS_OK)
            out->valid = (long)i;
        if (out->rc != SESS_REJECTED && out->rc != SESS_EINVAL)
            break;   /* valid, or the store failed: stop either way */
    }
    if (out->rc == SESS_REJECTED || out->rc == SESS_EINVAL)
        return out->outcome;   /* SESS_FA_NO_SESSION */
    if (out->rc != SESS_OK) {
        out->outcome = SESS_FA_ERROR;
        return out->outcome;
    }

    if (out->unsafe) {
        if (!sess_same_origin_ok(req->origin, req->sec_fetch_site, req->self,
                                 req->allowed, req->n_allowed))
            return csrf_refused(ctx, req, out, "cross-site origin");
        if (req->csrf_token == NULL ||
            !sess_csrf_matches(&out->view, req->csrf_token,
                               strlen(req->csrf_token)))
            return csrf_refused(ctx, req, out, "csrf token");
    }

    const sess_issued *next = out->view.rotated ? &out->view.successor : NULL;
    out->csrf = next != NULL ? next->csrf_token : out->view.csrf_token;
    if (next != NULL) {
        int len = sess_issued_cookie(ctx, req->cookie, next, out->set_cookie,
                                     sizeof(out->set_cookie));
        if (len <= 0) {
            out->rc = len < 0 ? len : SESS_ETOOBIG;
            out->err.code = out->rc;
            snprintf(out->err.msg, sizeof(out->err.msg), "%s",
                     "successor cookie does not fit");
            out->outcome = SESS_FA_ERROR;
            return out->outcome;
        }
        out->set_cookie_len = len;
    }
    out->outcome = SESS_FA_OK;
    return out->outcome;
}

void sess_fa_result_clear(sess_fa_result *r)
{
    if (r == NULL)
        return;
    sess_view_clear(&r->view);
    sess_wipe(r->set_cookie, sizeof(r->set_cookie));
    r->set_cookie_len = 0;
    r->csrf = NULL;
}
