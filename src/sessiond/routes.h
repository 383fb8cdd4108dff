/*
 * routes.h - the route table of the HTTP API and the dispatcher that runs
 * the checks every request goes through (route, method, API key, body)
 * before its handler.
 */
#ifndef SESSIOND_ROUTES_H
#define SESSIOND_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "http.h"

typedef void (*sessiond_handler)(sessiond_app *app,
                                 const sessiond_http_req *req,
                                 sessiond_http_resp *resp);

/* Route flags. */
#define SESSIOND_ROUTE_API_KEY 0x1u   /* needs the API key when configured */
#define SESSIOND_ROUTE_BODY 0x2u      /* takes a JSON body */
#define SESSIOND_ROUTE_VALIDATES 0x4u /* validates a session: observed in
                                         sessiond_validation_duration_seconds */

typedef struct sessiond_route {
    const char *method;          /* "GET", "POST", "DELETE" */
    const char *pattern;         /* "/v1/users/{user_id}/sessions" */
    sessiond_handler handler;
    unsigned flags;
    const char *metric;          /* label value of route="..." */
} sessiond_route;

/* Upper bound of the table size; metrics size their arrays with it. */
#define SESSIOND_ROUTES_MAX 32

/* Number of routes, and route "i".  Index sessiond_routes_count() stands
 * for requests that matched no route (metric name "unmatched"). */
size_t sessiond_routes_count(void);
const sessiond_route *sessiond_route_at(size_t i);
const char *sessiond_route_metric(size_t i);

/*
 * Find the route for "method" and "path" ("path_len" bytes, no query).
 * Returns the index of the matched route and fills "req"'s path
 * parameters; or -404 (no route has that path) or -405 (the path exists
 * for other methods, whose list goes to "allow", e.g. "GET, HEAD").
 */
long sessiond_route_match(const char *method, const char *path,
                          size_t path_len, sessiond_http_req *req,
                          char *allow, size_t allow_cap);

/* True when "route" (an index from sessiond_route_match) takes a body. */
bool sessiond_route_takes_body(long route);

/*
 * Run the request through the route's checks and handler: API key (401),
 * URL length (414), body size (413), Content-Type (415), then the handler.
 * "route" is the result of sessiond_route_match (negative for 404/405,
 * with "allow" from it).  Always leaves a complete response in "resp".
 */
void sessiond_dispatch(sessiond_app *app, long route, const char *allow,
                       const sessiond_http_req *req, const char *content_type,
                       sessiond_http_resp *resp);

#endif /* SESSIOND_ROUTES_H */
