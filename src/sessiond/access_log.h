/*
 * access_log.h - the access log (log.access): one JSON line per answered
 * request with what an operator needs and nothing a client could use
 * (docs/observability.md, "Access log").
 */
#ifndef SESSIOND_ACCESS_LOG_H
#define SESSIOND_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

/*
 * Open the access log: "off" (nothing), "stdout", "stderr", or a file
 * opened O_APPEND|O_CREAT with mode 0640.  0, or -1 with "err" set.
 * Call once at start-up, before threads serve.
 */
int sessiond_access_log_open(const char *where, char *err, size_t errlen);

/* True when the access log is on (one load; any thread). */
bool sessiond_access_log_enabled(void);

/*
 * Write the line of one answered request "t" (its route pattern, status
 * and outcome settled; trace_id): "method" as the HTTP parser accepted
 * it, "peer" the TCP peer's address ("unix" for the Unix socket),
 * "latency_ns" the time to answer.  One write(2), so lines of concurrent
 * workers never interleave.  Any thread.
 */
void sessiond_access_log_write(const sessiond_trace *t, const char *method,
                               const char *peer, uint64_t latency_ns);

/* Format that line (with the newline) into "buf" of "cap" bytes; returns
 * its length, or 0 when it does not fit or memory is short.  For tests. */
size_t sessiond_access_log_format(char *buf, size_t cap,
                                  const sessiond_trace *t, const char *method,
                                  const char *peer, uint64_t latency_ns,
                                  uint64_t now_ns);

/*
 * SIGHUP: open the file again by its name and put the new file in place
 * of the old under the same descriptor (dup2, atomic), so a writer on
 * another thread writes whole lines to one file or the other and never
 * to a closed descriptor (logrotate's rename-then-HUP).  0, or -1 with
 * "err" set (the old file stays in use).  Main thread.
 */
int sessiond_access_log_reopen(char *err, size_t errlen);

/* Lines the log could not write (full disk, ...), for /metrics. */
uint64_t sessiond_access_log_failures(void);

void sessiond_access_log_close(void);

#endif /* SESSIOND_ACCESS_LOG_H */
