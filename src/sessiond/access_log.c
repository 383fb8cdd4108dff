/*
 * access_log.c - the access log (access_log.h).
 *
 * Each answered request becomes one JSON object on one line:
 *   {"ts","method","route","status","latency_us","outcome","trace_id",
 *    "span_id","peer"}
 * built with jansson into a stack buffer and written with a single
 * write(2) on an O_APPEND descriptor, so concurrent workers' lines never
 * interleave and no lock is taken.  The route is the pattern of the route
 * table ("/v1/users/{user_id}/sessions"), never the path: a path may hold
 * a user id or a handle, a query string anything.  No header is read, so
 * no cookie, token or key can reach the file.
 *
 * Reopening (SIGHUP, after logrotate renamed the file): the new file is
 * opened and dup2()'d onto the old descriptor number, which the kernel
 * does atomically; a worker in the middle of write() finishes on the old
 * file.  The descriptor number never changes and is never closed while
 * workers run, so no write can land in a descriptor reused for something
 * else (a socket of another client).
 *
 * A write that fails (full disk) is counted, never retried and never
 * blocks the request beyond the failed write itself.
 */
#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"

#define LINE_MAX_BYTES 1024

static int log_fd = -1;
static bool log_owned;          /* a file of ours, not stdout/stderr */
static char log_path[SESSIOND_PATH_MAX];
static atomic_uint_fast64_t failures;

/* Open "path" for appending; -1 with "err" saying what failed ("open" or
 * "reopen"). */
static int open_file(const char *path, const char *what, char *err,
                     size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "log.access: cannot %s %s: %s", what, path,
                 strerror(errno));
    return fd;
}

int sessiond_access_log_open(const char *where, char *err, size_t errlen)
{
    if (where == NULL || where[0] == '\0' || strcmp(where, "off") == 0)
        return 0;
    if (strcmp(where, "stdout") == 0 || strcmp(where, "stderr") == 0) {
        log_fd = strcmp(where, "stdout") == 0 ? STDOUT_FILENO : STDERR_FILENO;
        log_owned = false;
        return 0;
    }
    int fd = open_file(where, "open", err, errlen);
    if (fd < 0)
        return -1;
    snprintf(log_path, sizeof log_path, "%s", where);
    log_fd = fd;
    log_owned = true;
    return 0;
}

bool sessiond_access_log_enabled(void)
{
    return log_fd >= 0;
}

size_t sessiond_access_log_format(char *buf, size_t cap,
                                  const sessiond_trace *t, const char *method,
                                  const char *peer, uint64_t latency_ns,
                                  uint64_t now_ns)
{
    char ts[40];
    struct tm tm;
    time_t sec = (time_t)(now_ns / 1000000000u);
    gmtime_r(&sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%06luZ",
             (unsigned long)(now_ns % 1000000000u / 1000u));
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:i, s:I, s:s, s:s, s:s, s:s}", "ts", ts, "method",
        method != NULL ? method : "", "route",
        t->route != NULL ? json_string(t->route) : json_null(), "status",
        (int)t->status, "latency_us", (json_int_t)(latency_ns / 1000u),
        "outcome", sessiond_outcome_name((sessiond_outcome)t->outcome),
        "trace_id", t->trace_hex, "span_id", t->span_hex, "peer",
        peer != NULL ? peer : "");
    if (o == NULL)
        return 0;
    size_t len = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (len == 0 || len >= cap)
        return 0;
    buf[len++] = '\n';
    return len;
}

void sessiond_access_log_write(const sessiond_trace *t, const char *method,
                               const char *peer, uint64_t latency_ns)
{
    char line[LINE_MAX_BYTES];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    size_t len = sessiond_access_log_format(
        line, sizeof line, t, method, peer, latency_ns,
        (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    if (len == 0) {
        atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
        return;
    }
    /* One write of a line under PIPE_BUF-ish size on O_APPEND: whole. */
    ssize_t w;
    do
        w = write(log_fd, line, len);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len)
        atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
}

int sessiond_access_log_reopen(char *err, size_t errlen)
{
    if (log_fd < 0 || !log_owned)
        return 0;
    int fd = open_file(log_path, "reopen", err, errlen);
    if (fd < 0)
        return -1;
    /* dup2 replaces what log_fd refers to in one step; O_CLOEXEC is not
     * carried over by dup2, so set it again. */
    if (dup2(fd, log_fd) < 0) {
        snprintf(err, errlen, "log.access: cannot reopen %s: %s", log_path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    fcntl(log_fd, F_SETFD, FD_CLOEXEC);
    close(fd);
    return 0;
}

uint64_t sessiond_access_log_failures(void)
{
    return atomic_load_explicit(&failures, memory_order_relaxed);
}

void sessiond_access_log_close(void)
{
    if (log_fd >= 0 && log_owned)
        close(log_fd);
    log_fd = -1;
    log_owned = false;
}
