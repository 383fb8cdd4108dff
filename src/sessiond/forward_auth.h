/*
 * forward_auth.h - GET /v1/auth, the forward-auth endpoint for nginx
 * auth_request, Traefik forwardAuth and Envoy ext_authz.
 */
#ifndef SESSIOND_FORWARD_AUTH_H
#define SESSIOND_FORWARD_AUTH_H

#include <stddef.h>

#include "app.h"
#include "http.h"

void sessiond_forward_auth(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp);

/*
 * The client address of "req" into "out" (at least SESS_IP_MAX + 1
 * bytes): the peer, or - when the peer is a trusted proxy - the rightmost
 * X-Forwarded-For entry that is not itself a trusted proxy, else a valid
 * X-Real-IP.  Exposed for tests.
 */
void sessiond_forward_client_ip(const sessiond_app *app,
                                const sessiond_http_req *req, char *out,
                                size_t cap);

/* Room for an encoded X-Session-User value: "utf-8''" plus three bytes per
 * byte of the longest user id, plus the NUL. */
#define SESSIOND_USER_HEADER_MAX (7 + 3 * SESS_USER_ID_MAX + 1)

/*
 * The X-Session-User value of user id "user" ("len" bytes) into "out":
 * the id itself when it is visible ASCII without '%' or '\'', else the
 * RFC 8187 ext-value "utf-8''" + percent-encoded UTF-8 (docs/api.md says
 * how to decode it).  Returns the length, or -1 when "cap" is too small.
 */
int sessiond_forward_user_value(const char *user, size_t len, char *out,
                                size_t cap);

#endif /* SESSIOND_FORWARD_AUTH_H */
