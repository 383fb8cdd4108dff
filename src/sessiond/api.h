/*
 * api.h - handlers of the JSON management API and the health endpoints
 * (docs/api.md, "HTTP API").  Each has the sessiond_handler signature and is
 * referenced from the route table in routes.c.
 */
#ifndef SESSIOND_API_H
#define SESSIOND_API_H

#include "app.h"
#include "http.h"

void sessiond_api_create(sessiond_app *app, const sessiond_http_req *req,
                         sessiond_http_resp *resp);
void sessiond_api_validate(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp);
void sessiond_api_regenerate(sessiond_app *app, const sessiond_http_req *req,
                             sessiond_http_resp *resp);
void sessiond_api_set_data(sessiond_app *app, const sessiond_http_req *req,
                           sessiond_http_resp *resp);
void sessiond_api_destroy(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp);
void sessiond_api_csrf_verify(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp);
void sessiond_api_list_user(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp);
void sessiond_api_revoke_user(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp);
void sessiond_api_revoke_handle(sessiond_app *app,
                                const sessiond_http_req *req,
                                sessiond_http_resp *resp);
void sessiond_api_healthz(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp);
void sessiond_api_readyz(sessiond_app *app, const sessiond_http_req *req,
                         sessiond_http_resp *resp);

/* Answer for a library result that is an error (not a normal outcome):
 * 503 for store trouble, 400 for invalid input, 413 for too large, else
 * 500.  "err" may be NULL; its message never holds a secret. */
void sessiond_api_library_error(sessiond_http_resp *resp, int rc,
                                const sess_err *err);

/* The same map with a fixed body (no JSON built: forward-auth's hot
 * path); "where" prefixes the log line. */
void sessiond_library_error_static(sessiond_http_resp *resp, int rc,
                                   const sess_err *err, const char *where);

/* The HTTP status that map gives library result "rc" (for tests). */
unsigned sessiond_error_status(int rc);

#endif /* SESSIOND_API_H */
