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

/* Lines of each method header (X-Forwarded-Method, X-Original-Method) a
 * caller reads; one that gets this many cannot know there are no more
 * and sets methods_truncated (fail closed), so every caller decides a
 * request with many such lines alike. */
#define SESS_FA_METHOD_LINES_MAX 4

typedef enum sess_fa_outcome {
    SESS_FA_OK = 0,          /* 200: a valid session (view filled) */
    SESS_FA_NO_SESSION = 1,  /* 401: no, malformed or dead session cookie */
    SESS_FA_CSRF = 2,        /* 403: unsafe method, bad token or origin */
    SESS_FA_ERROR = 3        /* 5xx: rc says the store/crypto failure (503
                              * for the store); rc SESS_OK: the successor's
                              * cookie did not fit (500) */
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
    /* The request's own method, judged only when there is no method line
     * (Envoy ext_authz sends the client's method as is: treating it as
     * GET would skip the CSRF check).  NULL = GET. */
    const char *own_method;
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

/*
 * The forwarding trust rule, one owner for sessiond and the module
 * (docs/security.md): the client address is the TCP peer, and the
 * request's own origin is Host with the default scheme, unless the peer
 * is a trusted proxy: then the rightmost X-Forwarded-For entry that is
 * not itself a trusted proxy (else X-Real-IP), and X-Forwarded-Host /
 * X-Forwarded-Proto (their last line's rightmost entry: the nearest
 * hop's).  Believing them from anyone would let a client choose the
 * address its session is bound to (address spoofing) or the origin its
 * Origin header is compared with (cross-site request forgery).
 */
typedef bool (*sess_fa_trust_fn)(const void *arg, const char *ip);

typedef struct sess_fa_forwarded {
    const char *peer_ip;       /* the TCP peer as text; NULL: a local peer
                                * (Unix socket), which reads as 127.0.0.1 */
    bool peer_trusted;         /* the peer is a trusted proxy */
    sess_fa_trust_fn trusted;  /* is an X-Forwarded-For hop trusted */
    const void *trusted_arg;
    const char *const *xff_lines;    /* X-Forwarded-For, every line */
    size_t n_xff_lines;
    const char *real_ip;             /* X-Real-IP */
    const char *const *proto_lines;  /* X-Forwarded-Proto */
    size_t n_proto_lines;
    const char *const *fhost_lines;  /* X-Forwarded-Host */
    size_t n_fhost_lines;
    const char *host;                /* Host */
    bool https;                /* the scheme unless a trusted proxy says */
} sess_fa_forwarded;

/* The client address by the rule above, into "out" (SESS_IP_MAX + 1). */
void sess_fa_client_ip(const sess_fa_forwarded *f, char *out, size_t cap);

/* The request's own origin; false when it cannot be known (a malformed
 * host or an unknown X-Forwarded-Proto): then only csrf.allowed_origins
 * can match an Origin header. */
bool sess_fa_self_origin(const sess_fa_forwarded *f, sess_origin *out);

/*
 * The user id as an HTTP header value (X-Session-User, $sessiond_user):
 * as is when it is visible ASCII without '%' and '\'', otherwise an
 * RFC 8187 ext-value "utf-8''" with every byte that is not an attr-char
 * as %XX.  Self-delimiting, and control characters never reach a header
 * (header injection).  Returns the length written (NUL-terminated), or
 * -1 when "cap" is too small.
 */
int sess_fa_user_value(const char *user, size_t len, char *out, size_t cap);

/* Where the candidates lie, for a caller that wants to wipe them: the
 * same scan as the decision ("ids"/"lens" get up to "cap" entries). */
size_t sess_fa_candidates(const sess_fa_request *req, const char **ids,
                          size_t *lens, size_t cap, size_t *seen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_FORWARD_AUTH_H */
