/*
 * tokens.h - sessiond's token routes (docs/tokens.md): mint, refresh,
 * introspect and revoke, the JWKS and the RFC 8414 metadata, and the two
 * forward-auth hooks (token propagation and bearer authorisation).
 *
 * The signing keyring lives in a reloadable slot (SIGHUP); everything
 * else is read-only after sessiond_tokens_init, except the forward-auth
 * token cache, which has its own locks.
 */
#ifndef SESSIOND_TOKENS_H
#define SESSIOND_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "http.h"

/* Load (in development: create) the signing keys of cfg->tokens and
 * build the module state; "url" (as sessiond_listen_open wrote it) is the
 * issuer when tokens.issuer is empty.  0, or -1 with a message in "msg". */
int sessiond_tokens_init(sessiond_app *app, const char *url, char *msg,
                         size_t cap);

/* SIGHUP: reload the signing keys; the old keyring stays on failure. */
void sessiond_tokens_reload(sessiond_app *app);

void sessiond_tokens_free(sessiond_app *app);

void sessiond_tokens_jwks(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp);
void sessiond_tokens_metadata(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp);
void sessiond_tokens_mint(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp);
void sessiond_tokens_refresh(sessiond_app *app, const sessiond_http_req *req,
                             sessiond_http_resp *resp);
void sessiond_tokens_introspect(sessiond_app *app,
                                const sessiond_http_req *req,
                                sessiond_http_resp *resp);
void sessiond_tokens_revoke(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp);

/*
 * Forward-auth, after the session validated: add the configured header
 * with "Bearer <token>" for forward_auth.token_audience.  A no-op when no
 * audience is configured.  0, or -1 when the response could not take it
 * (then the caller answers 500).
 */
struct sess_view;
int sessiond_tokens_fa_attach(sessiond_app *app, const struct sess_view *view,
                              sessiond_http_resp *resp);

/*
 * Forward-auth with no session cookie: when accept_bearer is on and the
 * request has "Authorization: Bearer", answer it (200 or 401, or 503)
 * and return true; otherwise return false and leave "resp" alone.
 */
bool sessiond_tokens_fa_bearer(sessiond_app *app, const sessiond_http_req *req,
                               sessiond_http_resp *resp);

#endif /* SESSIOND_TOKENS_H */
