/*
 * events.c - the ordinary log and the security event stream.
 *
 * Ordinary log lines go to stderr, as text ("sessiond: info: ...") or as
 * JSON objects ({"ts","level","msg","trace_id","span_id"} and, written
 * while a request runs, its "route" pattern and "status" once known),
 * filtered by [log] level.  The trace context is the thread's current one
 * (trace.h); outside a request trace_id and span_id are null.  Cookies,
 * bodies and URLs (which may carry a user id) are never logged; the
 * access log (access_log.c) has the route pattern, not the path.
 *
 * Security events (docs/security.md invariant 13) arrive through the library's
 * event callback, from any thread.  Each becomes one JSON line with ts
 * (RFC 3339, UTC), event, handle, user_id, ip, detail, trace_id and
 * span_id (null when the event did not come from a request thread) - the library
 * never hands us an ID or token, and we add none.  Each line is written
 * with a single write() while holding "sink_lock", so lines from
 * concurrent threads never interleave, even in a file shared with other
 * writers (O_APPEND).
 *
 * Lifecycle events (docs/observability.md, "Lifecycle events") are the
 * library events that change a session (created, rotated, ..., and the
 * security ones that end or flag it: evicted, revoked, token_reuse,
 * binding_mismatch).  lifecycle_rows[] maps each library event (and its
 * detail) to a type, an actor and a reason; such a line also carries
 * "id" (a UUIDv7: time-ordered, 74 random bits from OpenSSL's RAND),
 * "type", "actor", "reason" and "prev_handle", and the same event is
 * handed, as a Standard Webhooks JSON body, to the lifecycle sink (the
 * webhook outbox, webhook.c) when one is set.
 *
 * The daemon's own security events (auth_failure, cookie_tossing) come
 * from requests an attacker shapes at will, so they are rate-limited per
 * peer: at most PEER_EVENTS_PER_SEC lines per second for one (event,
 * peer), and GLOBAL_EVENTS_PER_SEC for all of them together (a spray from
 * many addresses); what is held back is counted and reported as
 * "suppressed" on the next line that gets through for that slot.  The
 * table is fixed (PEER_SLOTS entries, no allocation), so a flood costs no
 * memory; two peers that share a slot share its budget.
 *
 * The level, format and sink are set at start-up before any thread runs
 * and are read-only afterwards.
 */
#include "events.h"
#include "../common/clock.h"
#include "../common/hex.h"
#include "event_types.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#define PEER_SLOTS 256
#define PEER_EVENTS_PER_SEC 5
#define GLOBAL_EVENTS_PER_SEC 100

static sessiond_log_level log_level = SESSIOND_LOG_INFO;
static sessiond_log_format log_format = SESSIOND_LOG_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static int sink_fd = -1;
static int sink_owned;
static char sink_path[4096];    /* the file, for a reopen on SIGHUP */
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

/* The thread's trace context into "o": trace_id and span_id (null outside
 * a request) and, for log lines, the route pattern and status if known. */
static void add_trace(json_t *o, bool with_route)
{
    const sessiond_trace *t = sessiond_trace_current();
    json_object_set_new(o, "trace_id",
                        t != NULL ? json_string(t->trace_hex) : json_null());
    json_object_set_new(o, "span_id",
                        t != NULL ? json_string(t->span_hex) : json_null());
    if (!with_route || t == NULL)
        return;
    if (t->route != NULL)
        json_object_set_new(o, "route", json_string(t->route));
    if (t->status != 0)
        json_object_set_new(o, "status", json_integer(t->status));
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
        if (o != NULL)
            add_trace(o, true);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text == NULL)
            n = snprintf(line, sizeof(line), "sessiond: %s: %s\n",
                         level_names[level], msg);
        else
            n = snprintf(line, sizeof(line), "%s\n", text);
        free(text);
    } else {
        const sessiond_trace *t = sessiond_trace_current();
        if (t != NULL)
            n = snprintf(line, sizeof(line), "sessiond: %s: %s (trace_id=%s)\n",
                         level_names[level], msg, t->trace_hex);
        else
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

/* The sink's file, append-only and 0600; -1 with "err" set ("verb": open
 * or reopen). */
static int open_sink_file(const char *path, const char *verb, char *err,
                          size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        snprintf(err, errlen, "log.security_events: cannot %s %s: %s", verb,
                 path, strerror(errno));
    return fd;
}

int sessiond_events_open(const char *where, char *err, size_t errlen)
{
    if (where == NULL || where[0] == '\0' || strcmp(where, "stderr") == 0) {
        sink_fd = STDERR_FILENO;
        sink_owned = 0;
        return 0;
    }
    int fd = open_sink_file(where, "open", err, errlen);
    if (fd < 0)
        return -1;
    sink_fd = fd;
    sink_owned = 1;
    snprintf(sink_path, sizeof(sink_path), "%s", where);
    return 0;
}

int sessiond_events_reopen(char *err, size_t errlen)
{
    if (!sink_owned)
        return 0;
    int fd = open_sink_file(sink_path, "reopen", err, errlen);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&sink_lock);
    int old = sink_fd;
    sink_fd = fd;
    pthread_mutex_unlock(&sink_lock);
    if (old >= 0)
        close(old);
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

/* ---- lifecycle events ------------------------------------------------- */

/* Library event (and detail, NULL: any) -> lifecycle type, actor, reason
 * (NULL: the detail itself).  First match wins; no row: not a lifecycle
 * event (csrf_failure, limit_denied, corrupt_record, a logged reuse). */
typedef struct lifecycle_row {
    sess_event_type lib;
    const char *detail;
    sessiond_event_type type;
    const char *actor;
    const char *reason;
} lifecycle_row;

static const lifecycle_row lifecycle_rows[] = {
    {SESS_EVENT_CREATED, NULL, SESSIOND_EV_CREATED, "user", "login"},
    {SESS_EVENT_ROTATED, NULL, SESSIOND_EV_ROTATED, "user", "rotate_interval"},
    {SESS_EVENT_REGENERATED, NULL, SESSIOND_EV_REGENERATED, "user", "regenerate"},
    {SESS_EVENT_ELEVATED, NULL, SESSIOND_EV_ELEVATED, "user", "regenerate"},
    {SESS_EVENT_DESTROYED, NULL, SESSIOND_EV_DESTROYED, "user", "logout"},
    {SESS_EVENT_EXPIRED, "idle", SESSIOND_EV_EXPIRED, "purge", "expired_idle"},
    {SESS_EVENT_EXPIRED, "absolute", SESSIOND_EV_EXPIRED, "purge", "expired_absolute"},
    {SESS_EVENT_EXPIRED, NULL, SESSIOND_EV_EXPIRED, "purge", "unreadable"},
    {SESS_EVENT_LIMIT_EVICTION, NULL, SESSIOND_EV_EVICTED, "limit", "max_per_user"},
    {SESS_EVENT_REVOKE, "handle", SESSIOND_EV_REVOKED, "admin_api", "revoke_handle"},
    {SESS_EVENT_REVOKE, "all", SESSIOND_EV_REVOKED, "admin_api", "revoke_user"},
    {SESS_EVENT_REVOKE, "all but one", SESSIOND_EV_REVOKED, "admin_api", "revoke_user"},
    {SESS_EVENT_REVOKE, "refresh token", SESSIOND_EV_REVOKED, "user", "token_revoke"},
    {SESS_EVENT_REUSE_AFTER_GRACE, "successor revoked", SESSIOND_EV_REVOKED, "user",
     "reuse_after_grace"},
    {SESS_EVENT_TOKEN_REUSE, NULL, SESSIOND_EV_TOKEN_REUSE, "user", NULL},
    {SESS_EVENT_BINDING_MISMATCH, NULL, SESSIOND_EV_BINDING_MISMATCH, "user", NULL},
};

static sessiond_lifecycle_fn lifecycle_fn;
static void *lifecycle_user;

void sessiond_events_set_lifecycle_sink(sessiond_lifecycle_fn fn, void *user)
{
    lifecycle_fn = fn;
    lifecycle_user = user;
}

static _Atomic(sessiond_events_metrics_fn) metrics_fn;

void sessiond_events_set_metrics(sessiond_events_metrics_fn fn)
{
    atomic_store(&metrics_fn, fn);
}

size_t sessiond_events_metrics(char *buf, size_t cap)
{
    sessiond_events_metrics_fn fn = atomic_load(&metrics_fn);
    if (fn == NULL || cap == 0)
        return 0;
    return fn(buf, cap);
}

static const lifecycle_row *lifecycle_of(const sess_event *ev)
{
    for (size_t i = 0; i < sizeof lifecycle_rows / sizeof lifecycle_rows[0]; i++) {
        const lifecycle_row *r = &lifecycle_rows[i];
        if (r->lib == ev->type &&
            (r->detail == NULL ||
             (ev->detail != NULL && strcmp(r->detail, ev->detail) == 0)))
            return r;
    }
    return NULL;
}

int sessiond_events_uuid7(char out[SESSIOND_EVENT_ID_LEN + 1])
{
    uint8_t b[16];
    uint64_t ms = clock_real_ns() / 1000000u;
    if (RAND_bytes(b + 6, 10) != 1)
        return -1;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0F));   /* version 7 (RFC 9562) */
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3F));   /* variant 10 */
    hex_uuid(b, out);
    return 0;
}

/* The reason of a lifecycle event: the row's, else the library's detail. */
static const char *reason_of(const lifecycle_row *r, const sess_event *ev)
{
    return r->reason != NULL ? r->reason : ev->detail;
}

/* The members every sink shares, into "o". */
static void add_session(json_t *o, const sess_event *ev)
{
    json_object_set_new(o, "handle", str_or_null(ev->handle,
                        ev->handle ? strlen(ev->handle) : 0));
    json_object_set_new(o, "user_id", str_or_null(ev->user_id,
                        ev->user_id_len));
    json_object_set_new(o, "ip", str_or_null(ev->ip,
                        ev->ip ? strlen(ev->ip) : 0));
}

char *sessiond_events_webhook_body(const sess_event *ev, const char *id,
                                   int *type_out)
{
    const lifecycle_row *r = lifecycle_of(ev);
    char ts[32];
    if (r == NULL)
        return NULL;
    rfc3339((time_t)ev->at, ts, sizeof(ts));
    json_t *data = json_object();
    json_t *o = json_object();
    if (data == NULL || o == NULL) {
        json_decref(data);
        json_decref(o);
        return NULL;
    }
    add_session(data, ev);
    const char *reason = reason_of(r, ev);
    json_object_set_new(data, "reason", str_or_null(reason,
                        reason ? strlen(reason) : 0));
    json_object_set_new(data, "actor", json_string(r->actor));
    json_object_set_new(data, "prev_handle", str_or_null(ev->prev_handle,
                        ev->prev_handle ? strlen(ev->prev_handle) : 0));
    add_trace(data, false);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "type", json_string(sessiond_event_type_names[r->type]));
    json_object_set_new(o, "timestamp", json_string(ts));
    json_object_set_new(o, "data", data);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text != NULL && type_out != NULL)
        *type_out = (int)r->type;
    return text;
}

/* The JSON-lines form of "ev"; "id" is the lifecycle event id (NULL when
 * "ev" is not a lifecycle event). */
static char *format_line(const sess_event *ev, const lifecycle_row *life,
                         const char *id)
{
    char ts[32];
    rfc3339((time_t)ev->at, ts, sizeof(ts));
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "event", json_string(sess_event_name(ev->type)));
    add_session(o, ev);
    json_object_set_new(o, "detail", str_or_null(ev->detail,
                        ev->detail ? strlen(ev->detail) : 0));
    if (life != NULL) {
        const char *reason = reason_of(life, ev);
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "type",
                            json_string(sessiond_event_type_names[life->type]));
        json_object_set_new(o, "actor", json_string(life->actor));
        json_object_set_new(o, "reason", str_or_null(reason,
                            reason ? strlen(reason) : 0));
        json_object_set_new(o, "prev_handle", str_or_null(ev->prev_handle,
                            ev->prev_handle ? strlen(ev->prev_handle) : 0));
    }
    add_trace(o, false);
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

char *sessiond_events_format(const sess_event *ev)
{
    char id[SESSIOND_EVENT_ID_LEN + 1] = "";
    const lifecycle_row *life = lifecycle_of(ev);
    if (life != NULL && sessiond_events_uuid7(id) != 0)
        life = NULL;
    return format_line(ev, life, id);
}

/* Per-type counts of the events handled (metrics.c reads them). */
static atomic_uint_fast64_t event_counts[SESSIOND_EVENT_TYPES_MAX];

uint64_t sessiond_events_count(unsigned type)
{
    return type < SESSIOND_EVENT_TYPES_MAX
               ? atomic_load_explicit(&event_counts[type], memory_order_relaxed)
               : 0;
}

void sessiond_events_handler(void *user, const sess_event *ev)
{
    (void)user;
    if ((unsigned)ev->type < SESSIOND_EVENT_TYPES_MAX)
        atomic_fetch_add_explicit(&event_counts[ev->type], 1,
                                  memory_order_relaxed);
    char id[SESSIOND_EVENT_ID_LEN + 1] = "";
    const lifecycle_row *life = lifecycle_of(ev);
    if (life != NULL && sessiond_events_uuid7(id) != 0) {
        sessiond_log(SESSIOND_LOG_ERROR, "lifecycle event %s lost: RAND_bytes "
                     "failed", sess_event_name(ev->type));
        life = NULL;
    }
    char *line = format_line(ev, life, id);
    if (line != NULL) {
        pthread_mutex_lock(&sink_lock);
        if (sink_fd >= 0)
            write_all(sink_fd, line, strlen(line));
        pthread_mutex_unlock(&sink_lock);
        free(line);
    }
    /* The same event, with the same id, for the webhooks. */
    if (life != NULL && lifecycle_fn != NULL) {
        int type = 0;
        char *body = sessiond_events_webhook_body(ev, id, &type);
        if (body == NULL) {
            sessiond_log(SESSIOND_LOG_ERROR, "lifecycle event %s lost: out "
                         "of memory", sess_event_name(ev->type));
            return;
        }
        lifecycle_fn(lifecycle_user, type, id, body, strlen(body));
        free(body);
    }
}

/* ---- the daemon's own, rate-limited events --------------------------- */

static const char *const peer_event_names[SESSIOND_PEV_COUNT] = {
    [SESSIOND_PEV_AUTH_FAILURE] = "auth_failure",
    [SESSIOND_PEV_COOKIE_TOSSING] = "cookie_tossing",
};

/* The member name of the free text, per event. */
static const char *const peer_event_text[SESSIOND_PEV_COUNT] = {
    [SESSIOND_PEV_AUTH_FAILURE] = "reason",
    [SESSIOND_PEV_COOKIE_TOSSING] = "detail",
};

typedef struct peer_slot {
    char ip[SESS_IP_MAX + 1];
    int kind;
    uint64_t second;        /* the second "sent" counts in */
    unsigned sent;
    uint64_t suppressed;    /* held back since the last line */
} peer_slot;

static peer_slot peer_slots[PEER_SLOTS];
static uint64_t global_second;
static unsigned global_sent;
static uint64_t global_suppressed;
static pthread_mutex_t peer_lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a: spreads addresses over the slots; not a defence by itself (the
 * per-slot and global budgets are). */
static size_t slot_of(int kind, const char *ip)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (const char *p = ip; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % PEER_SLOTS;
}

char *sessiond_events_peer_format(sessiond_peer_event kind, uint64_t at,
                                  const char *ip, const char *route,
                                  const char *handle, const char *text,
                                  uint64_t suppressed)
{
    char ts[32];
    if ((unsigned)kind >= SESSIOND_PEV_COUNT)
        return NULL;
    rfc3339((time_t)at, ts, sizeof(ts));
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "event", json_string(peer_event_names[kind]));
    json_object_set_new(o, "handle", str_or_null(handle,
                        handle ? strlen(handle) : 0));
    json_object_set_new(o, "user_id", json_null());
    json_object_set_new(o, "ip", str_or_null(ip, ip ? strlen(ip) : 0));
    json_object_set_new(o, "route", str_or_null(route,
                        route ? strlen(route) : 0));
    json_object_set_new(o, peer_event_text[kind], str_or_null(text,
                        text ? strlen(text) : 0));
    json_object_set_new(o, "suppressed", json_integer((json_int_t)suppressed));
    add_trace(o, false);
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (line == NULL)
        return NULL;
    size_t n = strlen(line);
    char *out = realloc(line, n + 2);
    if (out == NULL) {
        free(line);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    return out;
}

bool sessiond_events_peer(sessiond_peer_event kind, uint64_t now,
                          const char *ip, const char *route,
                          const char *handle, const char *text)
{
    uint64_t suppressed;
    if ((unsigned)kind >= SESSIOND_PEV_COUNT)
        return false;
    if (ip == NULL)
        ip = "";
    pthread_mutex_lock(&peer_lock);
    peer_slot *sl = &peer_slots[slot_of((int)kind, ip)];
    if (sl->kind != (int)kind || strcmp(sl->ip, ip) != 0) {
        /* A new peer takes the slot over; the old one's held-back count
         * goes into the global one so it is still reported. */
        global_suppressed += sl->suppressed;
        snprintf(sl->ip, sizeof(sl->ip), "%s", ip);
        sl->kind = (int)kind;
        sl->second = now;
        sl->sent = 0;
        sl->suppressed = 0;
    }
    if (sl->second != now) {
        sl->second = now;
        sl->sent = 0;
    }
    if (global_second != now) {
        global_second = now;
        global_sent = 0;
    }
    if (sl->sent >= PEER_EVENTS_PER_SEC ||
        global_sent >= GLOBAL_EVENTS_PER_SEC) {
        sl->suppressed++;
        pthread_mutex_unlock(&peer_lock);
        return false;
    }
    sl->sent++;
    global_sent++;
    suppressed = sl->suppressed + global_suppressed;
    sl->suppressed = 0;
    global_suppressed = 0;
    pthread_mutex_unlock(&peer_lock);

    char *line = sessiond_events_peer_format(kind, now, ip, route, handle,
                                             text, suppressed);
    if (line == NULL)
        return false;
    pthread_mutex_lock(&sink_lock);
    if (sink_fd >= 0)
        write_all(sink_fd, line, strlen(line));
    pthread_mutex_unlock(&sink_lock);
    free(line);
    return true;
}
