/*
 * trace.h - W3C Trace Context (https://www.w3.org/TR/trace-context/) for
 * each request: the incoming traceparent/tracestate parsed (bounded,
 * strict), or a new trace started, and the request's own span id; kept
 * per thread while the request runs so that every log line and security
 * event written on that thread carries trace_id and span_id
 * (docs/observability.md).  Also the sampler that decides whether a
 * request's spans are exported (otlp.c), and the outcome of a request in
 * one word, which spans, metrics and the access log share.
 */
#ifndef SESSIOND_TRACE_H
#define SESSIOND_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSIOND_TRACEPARENT_LEN 55     /* version 00: 2+1+32+1+16+1+2 */
#define SESSIOND_TRACESTATE_MAX 512     /* the spec's upper bound */
#define SESSIOND_TRACE_FLAG_SAMPLED 0x01

/*
 * What became of a request, in one word: the label of the validation
 * histogram and sessiond_errors_total, the "outcome" of spans and of the
 * access log.  Handlers that know more than the status (validate,
 * forward-auth) set it with sessiond_trace_set_outcome(); otherwise it
 * follows from the status (sessiond_trace_finish).  Never an ID, a token
 * or a user id: a fixed word from this table.
 */
#define SESSIOND_OUTCOMES(X)                                               \
    X(UNSET, "unset")                                                      \
    X(OK, "ok")                                                            \
    X(NO_SESSION, "no_session")                                            \
    X(UNKNOWN, "unknown")                                                  \
    X(EXPIRED_IDLE, "expired_idle")                                        \
    X(EXPIRED_ABSOLUTE, "expired_absolute")                                \
    X(BINDING_MISMATCH, "binding_mismatch")                                \
    X(REVOKED, "revoked")                                                  \
    X(CSRF_FAILURE, "csrf_failure")                                        \
    X(INVALID_REQUEST, "invalid_request")                                  \
    X(UNAUTHORIZED, "unauthorized")                                        \
    X(FORBIDDEN, "forbidden")                                              \
    X(NOT_FOUND, "not_found")                                              \
    X(METHOD_NOT_ALLOWED, "method_not_allowed")                            \
    X(CONFLICT, "conflict")                                                \
    X(TOO_LARGE, "too_large")                                              \
    X(URI_TOO_LONG, "uri_too_long")                                        \
    X(UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")                    \
    X(RATE_LIMITED, "rate_limited")                                        \
    X(STORE_UNAVAILABLE, "store_unavailable")                              \
    X(INTERNAL_ERROR, "internal_error")                                    \
    X(OTHER_ERROR, "other_error")

#define SESSIOND__OUTCOME_ENUM(name, text) SESSIOND_OUTCOME_##name,
typedef enum sessiond_outcome {
    SESSIOND_OUTCOMES(SESSIOND__OUTCOME_ENUM)
    SESSIOND_OUTCOME_N
} sessiond_outcome;
#undef SESSIOND__OUTCOME_ENUM

/* "ok", "expired_idle", ... ("other_error" out of range). */
const char *sessiond_outcome_name(sessiond_outcome o);

typedef struct sessiond_trace {
    uint8_t trace_id[16];
    uint8_t span_id[8];         /* this request's span */
    uint8_t parent_id[8];       /* the caller's span, when has_parent */
    bool has_parent;            /* a valid traceparent came in */
    uint8_t flags;              /* the caller's trace-flags (0 if none) */
    char trace_hex[33];         /* lowercase hex, NUL-terminated */
    char span_hex[17];
    const char *tracestate;     /* the incoming tracestate, when it was
                                   valid; points into the request */
    size_t tracestate_len;
    const char *route;          /* route pattern, NULL when unmatched */
    unsigned status;            /* 0 until the answer is known */
    bool sampled;               /* spans of this request are exported */
    uint8_t outcome;            /* sessiond_outcome */
    uint64_t start_ns;          /* CLOCK_REALTIME at the start, when
                                   sampled (for the span) */
} sessiond_trace;

/*
 * The sampler (docs/observability.md, "Traces"): parent-based, with a
 * ratio for new traces.  "enabled" false (no [tracing] otlp_endpoint)
 * samples nothing.  Otherwise a request with a valid traceparent follows
 * its sampled flag, and a new trace is sampled when its trace id falls
 * under "ratio" (0..1; the OpenTelemetry TraceIdRatioBased rule on the
 * id's last 8 bytes, so every service with the same ratio agrees).  Call
 * once at start-up, before threads serve.
 */
void sessiond_trace_sampler(bool enabled, double ratio);

/* The sampler's decision for "t" (trace id, parent and flags filled). */
bool sessiond_trace_should_sample(const sessiond_trace *t);

/* Set the outcome of the thread's current request (no-op outside one). */
void sessiond_trace_set_outcome(sessiond_outcome o);

/* The outcome for a library reason (sess_reason: 0 none = ok, unknown,
 * expired_idle, expired_absolute, binding_mismatch, revoked). */
sessiond_outcome sessiond_outcome_of_reason(int reason);

/* Record "status" in "t" and settle its outcome: the handler's, or the
 * one the status implies.  Returns it. */
sessiond_outcome sessiond_trace_finish(sessiond_trace *t, unsigned status);

/* A fresh non-zero span id (the same per-thread pool as begin). */
void sessiond_trace_new_span_id(uint8_t out[8]);

/*
 * Parse one traceparent value of "len" bytes.  Accepts version 00 exactly
 * (55 bytes) and, as the spec asks, a later version (not ff) whose first
 * 55 bytes have the version-00 shape and which goes on only after a '-'.
 * Lowercase hex only; an all-zero trace id or parent id is invalid.
 * Returns true and fills the outputs, or false (the caller starts a new
 * trace).  Never reads past "len".
 */
bool sessiond_traceparent_parse(const char *s, size_t len,
                                uint8_t trace_id[16], uint8_t parent_id[8],
                                uint8_t *flags);

/* True when "s" is an acceptable tracestate: at most 512 bytes of
 * printable ASCII list-members (key=value, comma-separated, at most 32). */
bool sessiond_tracestate_valid(const char *s, size_t len);

/*
 * Start the context of one request in "t" (owned by the caller, e.g. on
 * its stack) and make it the thread's current one.  "traceparent" and
 * "tracestate" are the incoming header values or NULL; "n_traceparent"
 * is how many traceparent fields came (more than one is invalid).  An
 * invalid or absent traceparent starts a new trace.  No allocation.
 */
void sessiond_trace_begin(sessiond_trace *t, const char *traceparent,
                          size_t n_traceparent, const char *tracestate);

/* The thread's current request context, or NULL outside a request. */
sessiond_trace *sessiond_trace_current(void);

/* End the thread's current context (after the answer is written). */
void sessiond_trace_end(void);


#endif /* SESSIOND_TRACE_H */
