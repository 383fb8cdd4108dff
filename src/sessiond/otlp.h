/*
 * otlp.h - OpenTelemetry trace export over OTLP/HTTP with the JSON
 * encoding (POST /v1/traces): one SERVER span per sampled request, with
 * CLIENT child spans for the store operations it made, queued in a
 * bounded ring and sent in batches by one background thread through
 * libcurl (docs/observability.md, "Traces").
 *
 * Threads.  sessiond_otlp_start() and _stop() run on the main thread
 * (before the server starts, after it stopped).  Every other call may
 * come from any thread at once.
 */
#ifndef SESSIOND_OTLP_H
#define SESSIOND_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sess.h"
#include "trace.h"

/* OTLP SpanKind values (opentelemetry/proto/trace/v1/trace.proto). */
#define SESSIOND_SPAN_KIND_SERVER 2
#define SESSIOND_SPAN_KIND_CLIENT 3

/* Most store operations one request's span gets as children; more are
 * counted as dropped (reason span_limit). */
#define SESSIOND_OTLP_CHILDREN_MAX 32

/* One span as queued: fixed size, no pointer into the request (which is
 * gone when the exporter reads it) except to static strings. */
typedef struct sessiond_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8];
    bool has_parent;
    bool parent_remote;         /* the parent came in a traceparent */
    uint8_t kind;               /* SESSIOND_SPAN_KIND_* */
    uint64_t start_ns, end_ns;  /* Unix ns */
    /* SERVER spans */
    const char *route;          /* route pattern (static) or NULL */
    char method[16];
    unsigned http_status;
    uint8_t outcome;            /* sessiond_outcome */
    /* CLIENT (store) spans */
    const char *op;             /* "get", ... (static) */
    const char *backend;        /* "lmdb", "redis", ... (static) */
    int rc;
    uint8_t l1;                 /* sess_store_l1 */
    char node[SESS_STORE_NODE_MAX];
    /* the incoming tracestate, on the SERVER span */
    size_t tracestate_len;
    char tracestate[SESSIOND_TRACESTATE_MAX + 1];
} sessiond_span;

/* Counters for /metrics. */
typedef enum sessiond_otlp_drop {
    SESSIOND_OTLP_DROP_QUEUE_FULL = 0,  /* the collector is slow or down */
    SESSIOND_OTLP_DROP_EXPORT_FAILED,   /* the POST failed or timed out */
    SESSIOND_OTLP_DROP_SHUTDOWN,        /* still queued when the stop's
                                           flush ran out of time */
    SESSIOND_OTLP_DROP_SPAN_LIMIT,      /* a request's children past
                                           SESSIOND_OTLP_CHILDREN_MAX */
    SESSIOND_OTLP_DROP_N
} sessiond_otlp_drop;

typedef struct sessiond_otlp_stats {
    bool enabled;
    uint64_t spans_exported;
    uint64_t dropped[SESSIOND_OTLP_DROP_N];
    uint64_t exports_ok, exports_failed;
    uint64_t queued;            /* spans waiting now */
    uint64_t capacity;          /* tracing.queue_size */
} sessiond_otlp_stats;

/* The label value of a drop reason ("queue_full", ...). */
const char *sessiond_otlp_drop_name(sessiond_otlp_drop d);

/*
 * Start exporting to tc->otlp_endpoint (nothing to do when it is empty):
 * checks the URL with libcurl, builds the resource (service.name,
 * service.version, service.instance.id), allocates the queue and starts
 * the export thread.  Also sets the sampler (trace.h).  0, or -1 with
 * "err" set.
 */
int sessiond_otlp_start(const sessiond_tracing_config *tc, char *err,
                        size_t errlen);

/* True between a successful start and the stop. */
bool sessiond_otlp_enabled(void);

/*
 * Wrap "*st" in an observed store (sess_store_observe) whose operations
 * on a sampled request's thread become child spans.  On success "*st" is
 * the wrapper (which owns the old store); on failure it is unchanged and
 * "err" says why.  Call only when tracing is enabled.
 */
int sessiond_otlp_observe_store(sess_store **st, char *err, size_t errlen);

/* At the end of a sampled request "t" (its status and outcome settled):
 * queue its SERVER span and the children its store operations left.
 * Never blocks beyond a short mutex; drops and counts when the queue is
 * full. */
void sessiond_otlp_request_end(const sessiond_trace *t, const char *method,
                               uint64_t duration_ns);

/* Stop: send what is queued, for at most tracing.timeout_ms, then end the
 * thread and free everything.  Safe when never started. */
void sessiond_otlp_stop(void);

void sessiond_otlp_get_stats(sessiond_otlp_stats *out);

/* The OTLP/JSON ExportTraceServiceRequest for "n" spans under the
 * resource of the running exporter (or of "service_name" etc. given to
 * start): a malloc'd string the caller frees, NULL when out of memory.
 * Exposed for tests. */
char *sessiond_otlp_encode(const sessiond_span *spans, size_t n);

/* Set the resource without starting the exporter (tests). */
int sessiond_otlp_set_resource(const char *service_name,
                               const char *instance_id);

#endif /* SESSIOND_OTLP_H */
