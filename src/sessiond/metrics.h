/*
 * metrics.h - Prometheus metrics of the daemon (text format 0.0.4).
 */
#ifndef SESSIOND_METRICS_H
#define SESSIOND_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "http.h"

/* Record the start time of the process (call once at start-up). */
void sessiond_metrics_init(void);

/* Count one answered request of route "route" (an index from the route
 * table; sessiond_routes_count() for unmatched requests) with "status"
 * and "outcome" (sessiond_outcome), which took "nanos" nanoseconds.
 * Lock-free; any thread. */
void sessiond_metrics_observe(size_t route, unsigned status,
                              unsigned outcome, uint64_t nanos);

/* Count one connection or request refused by the HTTP layer, "reason"
 * a sessiond_refusal_reason (http_conn.h).  Lock-free; any thread. */
void sessiond_metrics_refused(unsigned reason);

/* GET /metrics. */
void sessiond_metrics_handler(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp);

/* Render all metrics into a malloc'd NUL-terminated text ("*len" bytes);
 * NULL when out of memory.  "stats" may be NULL (library counters are
 * then left out).  Exposed for tests. */
char *sessiond_metrics_render(const sess_stats *stats, size_t *len);

/* As sessiond_metrics_render, plus the store's own counters
 * (sessiond_store_*) when "store" is not NULL. */
char *sessiond_metrics_render_store(const sess_stats *stats,
                                    const sess_store_stats *store, size_t *len);

#endif /* SESSIOND_METRICS_H */
