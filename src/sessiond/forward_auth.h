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

#endif /* SESSIOND_FORWARD_AUTH_H */
