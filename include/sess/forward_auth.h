/*
 * sess/forward_auth.h - the forward-auth decision, shared by sessiond's
 * GET /v1/auth and the nginx module (nginx/), so both make exactly the
 * same decision for the same request (docs/api.md "Forward-auth",
 * docs/nginx-module.md).
 *
 * The caller extracts header lines from its own HTTP layer and resolves
 * the client address and the request's own origin by the forwarding
 * trust rule; this function does the rest: every session cookie candidate
 * (cookie tossing), the fail-closed method rule, validation with rotation
 * (SESS_VALIDATE_NO_ROTATE for unsafe methods, so a refused request does
 * not consume a rotation), the Origin / Sec-Fetch-Site check and the CSRF
 * token for unsafe methods, and the successor's Set-Cookie.  It emits the
 * csrf_failure event itself (through the context's handler); reporting
 * cookie tossing is left to the caller, from "seen" / "tried" / "valid".
 */
#ifndef SESS_FORWARD_AUTH_H
#define SESS_FORWARD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "sess/cookie.h"
#include "sess/session.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Session cookies validated per request: each costs a store read, so a
 * header stuffed with candidates must not multiply the work unboundedly. */
#define SESS_FA_CANDIDATES_MAX 8

typedef enum sess_fa_outcome {
    SESS_FA_OK = 0,          /* 200: a valid session (view filled) */
    SESS_FA_NO_SESSION = 1,  /* 401: no, malformed or dead session cookie */
    SESS_FA_CSRF = 2,        /* 403: unsafe method, bad token or origin */
    SESS_FA_ERROR = 3        /* 5xx: store/crypto failure; rc and err say */
} sess_fa_outcome;

/* The request, as header values (NUL-terminated; NULL = absent). */
typedef struct sess_fa_request {
    const char *const *cookie_lines;  /* every Cookie line (any number) */
    size_t n_cookie_lines;
    const char *cookie_name;          /* the profile's cookie name */
    /* Method header lines (X-Forwarded-Method and X-Original-Method, or
     * the request's own method): unsafe when any is not GET/HEAD/OPTIONS.
     * "methods_truncated": the caller saw more lines than it passes (fail
     * closed: unsafe). */
    const char *const *method_lines;
    size_t n_method_lines;
    bool methods_truncated;
    const char *client_ip;            /* resolved by the trust rule */
    const char *user_agent;
    const char *origin;               /* Origin */
    const char *sec_fetch_site;       /* Sec-Fetch-Site */
    const char *csrf_token;           /* X-CSRF-Token */
    const sess_origin *self;          /* the request's own origin, or NULL */
    const sess_origin *allowed;       /* csrf.allowed_origins */
    size_t n_allowed;
    const sess_cookie_profile *cookie; /* for the successor's Set-Cookie */
} sess_fa_request;

typedef struct sess_fa_result {
    sess_fa_outcome outcome;
    int rc;                  /* the last sess_validate result */
    sess_err err;            /* detail of SESS_FA_ERROR */
    sess_view view;          /* OK/CSRF: the session; sess_view_clear it */
    const char *csrf;        /* OK: the token to hand on (successor's) */
    /* OK with a rotation: the Set-Cookie value for the successor. */
    char set_cookie[SESS_SET_COOKIE_MAX];
    int set_cookie_len;      /* 0 when no rotation */
    size_t seen;             /* session cookies in the request */
    size_t tried;            /* of them validated */
    long valid;              /* index of the valid one, -1 none */
    bool unsafe;             /* the method got the CSRF checks */
    const char *csrf_detail; /* CSRF: "cross-site origin" / "csrf token" */
} sess_fa_result;

/*
 * Decide a forward-auth request.  Returns the outcome (also in
 * out->outcome).  The caller frees with sess_fa_result_clear (wipes the
 * view and the Set-Cookie).  The candidate IDs inside "cookie_lines" are
 * not wiped here: the caller owns those buffers and wipes them.
 */
sess_fa_outcome sess_forward_auth_decide(sess_ctx *ctx, bool csrf_enabled,
                                         const sess_fa_request *req,
                                         sess_fa_result *out);

void sess_fa_result_clear(sess_fa_result *r);

/* Where the candidates lie, for a caller that wants to wipe them: the
 * same scan as the decision ("ids"/"lens" get up to "cap" entries). */
size_t sess_fa_candidates(const sess_fa_request *req, const char **ids,
                          size_t *lens, size_t cap, size_t *seen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_FORWARD_AUTH_H */
