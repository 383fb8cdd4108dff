/*
 * events.h - the daemon's two outputs besides HTTP: the ordinary log
 * (start, stop, reload, errors) and the security event stream (docs/security.md
 * invariant 13: one JSON line per event, with the handle, never the ID).
 */
#ifndef SESSIOND_EVENTS_H
#define SESSIOND_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sess.h"

/* Set the level and format of the ordinary log (before threads start). */
void sessiond_log_setup(sessiond_log_level level, sessiond_log_format format);

/* Log one line at "level" if the configured level lets it through.  The
 * text must never contain a session ID, token or key. */
void sessiond_log(sessiond_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when "level" would be logged. */
int sessiond_log_enabled(sessiond_log_level level);

/*
 * Open the security event sink: "stderr" or a file path, opened
 * O_APPEND|O_CREAT with mode 0600.  Returns 0, or -1 with "err" set.
 */
int sessiond_events_open(const char *where, char *err, size_t errlen);

/* Open the sink's file again (logrotate renamed it): new lines go to the
 * new file; a no-op for stderr.  Returns 0, or -1 with "err" set (the old
 * file is kept). */
int sessiond_events_reopen(char *err, size_t errlen);

/* The sess_event_fn to register with sess_ctx_set_event_handler().
 * Thread-safe: each event is one write() under a mutex. */
void sessiond_events_handler(void *user, const sess_event *ev);

/* Format "ev" as one JSON line (with the trailing newline) into a malloc'd
 * string the caller frees; NULL when out of memory.  Exposed for tests. */
char *sessiond_events_format(const sess_event *ev);

void sessiond_events_close(void);

/* ---- lifecycle events (docs/observability.md) ---- */

#define SESSIOND_EVENT_ID_LEN 36   /* a UUIDv7 in its text form */

/* A fresh UUIDv7 (RFC 9562) from the wall clock and OpenSSL RAND into
 * "out".  0, or -1 when RAND fails. */
int sessiond_events_uuid7(char out[SESSIOND_EVENT_ID_LEN + 1]);

/* Where lifecycle events go besides the JSON lines: called on the
 * thread that raised the event, with its type (sessiond_event_type), its
 * id and its webhook body (JSON, "len" bytes, valid during the call). */
typedef void (*sessiond_lifecycle_fn)(void *user, int type, const char *id,
                                      const char *body, size_t len);

/* Set before the context serves (not thread-safe against events). */
void sessiond_events_set_lifecycle_sink(sessiond_lifecycle_fn fn, void *user);

/* The webhook body of "ev" with event id "id" (malloc'd JSON: {"id",
 * "type", "timestamp", "data": {"handle", "user_id", "ip", "reason",
 * "actor", "prev_handle", "trace_id", "span_id"}}), its type into
 * "*type_out"; NULL when "ev" is not a lifecycle event or out of memory.
 * Exposed for tests. */
char *sessiond_events_webhook_body(const sess_event *ev, const char *id,
                                   int *type_out);

/* The webhook metrics (Prometheus text), written by webhook.c and read by
 * /metrics through this hook so that modules without webhooks link
 * alone: "fn" writes at most "cap" bytes and returns the length. */
typedef size_t (*sessiond_events_metrics_fn)(char *buf, size_t cap);
void sessiond_events_set_metrics(sessiond_events_metrics_fn fn);
size_t sessiond_events_metrics(char *buf, size_t cap);
/* Security events of library type "type" (sess_event_type) handled so
 * far, for /metrics (sessiond_security_events_total). */
#define SESSIOND_EVENT_TYPES_MAX 32
uint64_t sessiond_events_count(unsigned type);

/* The daemon's own security events, about a peer rather than a session. */
typedef enum sessiond_peer_event {
    SESSIOND_PEV_AUTH_FAILURE = 0,  /* a missing or unknown API key */
    SESSIOND_PEV_COOKIE_TOSSING,    /* several session cookies, 1st not valid */
    SESSIOND_PEV_COUNT
} sessiond_peer_event;

/*
 * Write one such event ({"ts","event","handle","user_id":null,"ip",
 * "route","reason" or "detail","suppressed"}), rate-limited per (event,
 * peer) and globally (see events.c); "now" is Unix seconds.  "text" is
 * the reason ("missing", "unknown") or the detail, never a key or an ID.
 * Returns true when the line was written, false when it was held back
 * (and counted in the next line's "suppressed").  Thread-safe.
 */
bool sessiond_events_peer(sessiond_peer_event kind, uint64_t now,
                          const char *ip, const char *route,
                          const char *handle, const char *text);

/* Format one peer event line (malloc'd, with the newline); for tests. */
char *sessiond_events_peer_format(sessiond_peer_event kind, uint64_t at,
                                  const char *ip, const char *route,
                                  const char *handle, const char *text,
                                  uint64_t suppressed);

#endif /* SESSIOND_EVENTS_H */
