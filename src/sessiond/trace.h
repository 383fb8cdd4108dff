/*
 * trace.h - W3C Trace Context (https://www.w3.org/TR/trace-context/) for
 * each request: the incoming traceparent/tracestate parsed (bounded,
 * strict), or a new trace started, and the request's own span id; kept
 * per thread while the request runs so that every log line and security
 * event written on that thread carries trace_id and span_id
 * (docs/observability.md).
 */
#ifndef SESSIOND_TRACE_H
#define SESSIOND_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSIOND_TRACEPARENT_LEN 55     /* version 00: 2+1+32+1+16+1+2 */
#define SESSIOND_TRACESTATE_MAX 512     /* the spec's upper bound */
#define SESSIOND_TRACE_FLAG_SAMPLED 0x01

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
} sessiond_trace;

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

/* Lowercase hex of "n" bytes into "out" (2n+1 bytes). */
void sessiond_trace_hex(const uint8_t *in, size_t n, char *out);

#endif /* SESSIOND_TRACE_H */
