/*
 * events.c - the ordinary log and the security event stream.
 *
 * Ordinary log lines go to stderr, as text ("sessiond: info: ...") or as
 * JSON objects ({"ts","level","msg"}), filtered by [log] level.  There is
 * no access log: cookies, bodies and URLs (which may carry a user id) are
 * never logged.
 *
 * Security events (DESIGN invariant 13) arrive through the library's
 * event callback, from any thread.  Each becomes one JSON line with ts
 * (RFC 3339, UTC), event, handle, user_id, ip and detail - the library
 * never hands us an ID or token, and we add none.  Each line is written
 * with a single write() while holding "sink_lock", so lines from
 * concurrent threads never interleave, even in a file shared with other
 * writers (O_APPEND).
 *
 * The level, format and sink are set at start-up before any thread runs
 * and are read-only afterwards.
 */
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static sessiond_log_level log_level = SESSIOND_LOG_INFO;
static sessiond_log_format log_format = SESSIOND_LOG_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static int sink_fd = -1;
static int sink_owned;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    [SESSIOND_LOG_ERROR] = "error",
    [SESSIOND_LOG_WARN] = "warn",
    [SESSIOND_LOG_INFO] = "info",
    [SESSIOND_LOG_DEBUG] = "debug",
};

void sessiond_log_setup(sessiond_log_level level, sessiond_log_format format)
{
    log_level = level;
    log_format = format;
}

int sessiond_log_enabled(sessiond_log_level level)
{
    return level <= log_level;
}

/* RFC 3339 UTC time of "t" into "buf" (at least 21 bytes). */
static void rfc3339(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Write all of "buf", retrying short writes and EINTR. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

void sessiond_log(sessiond_log_level level, const char *fmt, ...)
{
    if (!sessiond_log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char line[1400];
    int n;
    if (log_format == SESSIOND_LOG_JSON) {
        char ts[32];
        rfc3339(time(NULL), ts, sizeof(ts));
        json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level",
                              level_names[level], "msg", msg);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text == NULL)
            n = snprintf(line, sizeof(line), "sessiond: %s: %s\n",
                         level_names[level], msg);
        else
            n = snprintf(line, sizeof(line), "%s\n", text);
        free(text);
    } else {
        n = snprintf(line, sizeof(line), "sessiond: %s: %s\n",
                     level_names[level], msg);
    }
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    pthread_mutex_lock(&log_lock);
    write_all(STDERR_FILENO, line, len);
    pthread_mutex_unlock(&log_lock);
}

int sessiond_events_open(const char *where, char *err, size_t errlen)
{
    if (where == NULL || where[0] == '\0' || strcmp(where, "stderr") == 0) {
        sink_fd = STDERR_FILENO;
        sink_owned = 0;
        return 0;
    }
    int fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "log.security_events: cannot open %s: %s",
                 where, strerror(errno));
        return -1;
    }
    sink_fd = fd;
    sink_owned = 1;
    return 0;
}

void sessiond_events_close(void)
{
    pthread_mutex_lock(&sink_lock);
    if (sink_owned && sink_fd >= 0)
        close(sink_fd);
    sink_fd = -1;
    sink_owned = 0;
    pthread_mutex_unlock(&sink_lock);
}

/* A JSON string, or null when absent or not UTF-8. */
static json_t *str_or_null(const char *s, size_t len)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_stringn(s, len);
    return j != NULL ? j : json_null();
}

char *sessiond_events_format(const sess_event *ev)
{
    char ts[32];
    rfc3339((time_t)ev->at, ts, sizeof(ts));
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "event", json_string(sess_event_name(ev->type)));
    json_object_set_new(o, "handle", str_or_null(ev->handle,
                        ev->handle ? strlen(ev->handle) : 0));
    json_object_set_new(o, "user_id", str_or_null(ev->user_id,
                        ev->user_id_len));
    json_object_set_new(o, "ip", str_or_null(ev->ip,
                        ev->ip ? strlen(ev->ip) : 0));
    json_object_set_new(o, "detail", str_or_null(ev->detail,
                        ev->detail ? strlen(ev->detail) : 0));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

void sessiond_events_handler(void *user, const sess_event *ev)
{
    (void)user;
    char *line = sessiond_events_format(ev);
    if (line == NULL)
        return;
    pthread_mutex_lock(&sink_lock);
    if (sink_fd >= 0)
        write_all(sink_fd, line, strlen(line));
    pthread_mutex_unlock(&sink_lock);
    free(line);
}
