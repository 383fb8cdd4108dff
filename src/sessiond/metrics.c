/*
 * metrics.c - Prometheus metrics (text exposition format 0.0.4).
 *
 * HTTP metrics are fixed arrays indexed by route (from the route table in
 * routes.c, plus one slot for unmatched requests) and by a small set of
 * status codes, so observing a request is a handful of relaxed atomic
 * increments: no lock and no allocation on the hot path.  Readers may see
 * a histogram whose _count and buckets disagree by a request or two while
 * others are in flight; Prometheus tolerates that.
 *
 * Session counters come from sess_get_stats() at scrape time.
 */
#include "metrics.h"
#include "migration.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access_log.h"
#include "events.h"
#include "http_conn.h"
#include "otlp.h"
#include "routes.h"
#include "trace.h"

/* Statuses we answer with; anything else counts as "other". */
static const unsigned statuses[] = {200, 201, 204, 400, 401, 403, 404, 405,
                                    409, 413, 414, 415, 500, 503};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]) + 1)
#define N_ROUTE (SESSIOND_ROUTES_MAX + 1)

/* Upper bounds of the latency buckets, in nanoseconds and as printed. */
static const uint64_t bucket_ns[] = {
    500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull,
    50000000ull, 100000000ull, 250000000ull, 500000000ull, 1000000000ull};
static const char *const bucket_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05", "0.1", "0.25", "0.5", "1"};
#define N_BUCKET (sizeof(bucket_ns) / sizeof(bucket_ns[0]))

typedef struct route_metrics {
    atomic_uint_fast64_t requests[N_STATUS];
    atomic_uint_fast64_t buckets[N_BUCKET + 1];   /* last: +Inf only */
    atomic_uint_fast64_t sum_ns;
    atomic_uint_fast64_t count;
} route_metrics;

static route_metrics routes_m[N_ROUTE];

/* sessiond_validation_duration_seconds{route,outcome}: the routes that
 * validate a session (SESSIOND_ROUTE_VALIDATES), by outcome, with buckets
 * fine enough below a millisecond for forward-auth's p99 target. */
static const uint64_t vbucket_ns[] = {
    100000ull, 250000ull, 500000ull, 1000000ull, 2500000ull, 5000000ull,
    10000000ull, 25000000ull, 50000000ull, 100000000ull, 250000000ull,
    1000000000ull};
static const char *const vbucket_le[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05", "0.1", "0.25", "1"};
#define N_VBUCKET (sizeof(vbucket_ns) / sizeof(vbucket_ns[0]))

typedef struct validation_metrics {
    atomic_uint_fast64_t buckets[N_VBUCKET + 1];  /* last: +Inf only */
    atomic_uint_fast64_t sum_ns;
    atomic_uint_fast64_t count;
} validation_metrics;

static validation_metrics validation_m[N_ROUTE][SESSIOND_OUTCOME_N];

/* sessiond_errors_total{type}: requests that did not succeed, by outcome. */
static atomic_uint_fast64_t errors_m[SESSIOND_OUTCOME_N];

/* Refusals of the HTTP layer (server.c, http_conn.c), by reason; the
 * label values, indexed by sessiond_refusal_reason. */
static const char *const refusal_names[SESSIOND_REFUSE_N] = {
    [SESSIOND_REFUSE_BAD_REQUEST] = "bad_request",
    [SESSIOND_REFUSE_HEAD_TOO_LARGE] = "head_too_large",
    [SESSIOND_REFUSE_BODY_TOO_LARGE] = "body_too_large",
    [SESSIOND_REFUSE_NOT_IMPLEMENTED] = "not_implemented",
    [SESSIOND_REFUSE_VERSION] = "http_version",
    [SESSIOND_REFUSE_EXPECTATION] = "expectation",
    [SESSIOND_REFUSE_TIMEOUT] = "timeout",
    [SESSIOND_REFUSE_CONN_LIMIT] = "max_connections",
    [SESSIOND_REFUSE_PER_IP_LIMIT] = "max_connections_per_ip",
};
static atomic_uint_fast64_t refused_m[SESSIOND_REFUSE_N];

void sessiond_metrics_refused(unsigned reason)
{
    if (reason < SESSIOND_REFUSE_N)
        atomic_fetch_add_explicit(&refused_m[reason], 1, memory_order_relaxed);
}
static double start_time;

void sessiond_metrics_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i < N_STATUS - 1; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUS - 1;
}

/* The bucket of "nanos" among "n" upper bounds ("n": +Inf). */
static size_t bucket_of(const uint64_t *bounds, size_t n, uint64_t nanos)
{
    size_t b = 0;
    while (b < n && nanos > bounds[b])
        b++;
    return b;
}

void sessiond_metrics_observe(size_t route, unsigned status,
                              unsigned outcome, uint64_t nanos)
{
    if (route >= N_ROUTE)
        route = N_ROUTE - 1;
    if (outcome >= SESSIOND_OUTCOME_N)
        outcome = SESSIOND_OUTCOME_OTHER_ERROR;
    if (outcome != SESSIOND_OUTCOME_OK && outcome != SESSIOND_OUTCOME_UNSET)
        atomic_fetch_add_explicit(&errors_m[outcome], 1, memory_order_relaxed);
    const sessiond_route *rt = sessiond_route_at(route);
    if (rt != NULL && (rt->flags & SESSIOND_ROUTE_VALIDATES) != 0) {
        validation_metrics *v = &validation_m[route][outcome];
        atomic_fetch_add_explicit(
            &v->buckets[bucket_of(vbucket_ns, N_VBUCKET, nanos)], 1,
            memory_order_relaxed);
        atomic_fetch_add_explicit(&v->sum_ns, nanos, memory_order_relaxed);
        atomic_fetch_add_explicit(&v->count, 1, memory_order_relaxed);
    }
    route_metrics *m = &routes_m[route];
    atomic_fetch_add_explicit(&m->requests[status_index(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->buckets[bucket_of(bucket_ns, N_BUCKET, nanos)],
                              1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_ns, nanos, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

/* ---- rendering -------------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = true;
            return;
        }
        if ((size_t)n < sb->cap - sb->len) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap * 2 + (size_t)n;
        char *np = realloc(sb->p, cap);
        if (np == NULL) {
            sb->failed = true;
            return;
        }
        sb->p = np;
        sb->cap = cap;
    }
}

static unsigned long long load(atomic_uint_fast64_t *a)
{
    return (unsigned long long)atomic_load_explicit(a, memory_order_relaxed);
}

/* One histogram series "name"{"labels"}: "nb" cumulative buckets with
 * upper bounds "le", +Inf (buckets[nb]), _sum in seconds and _count (the
 * +Inf count, so the series agrees with itself while requests land). */
static void render_histogram(strbuf *sb, const char *name, const char *labels,
                             atomic_uint_fast64_t *buckets,
                             const char *const *le, size_t nb,
                             unsigned long long sum_ns)
{
    unsigned long long cum = 0;
    for (size_t b = 0; b < nb; b++) {
        cum += load(&buckets[b]);
        sb_printf(sb, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le[b], cum);
    }
    cum += load(&buckets[nb]);
    sb_printf(sb,
              "%s_bucket{%s,le=\"+Inf\"} %llu\n"
              "%s_sum{%s} %.9f\n"
              "%s_count{%s} %llu\n",
              name, labels, cum, name, labels, (double)sum_ns / 1e9, name, labels,
              cum);
}

static void render_http(strbuf *sb)
{
    size_t nroutes = sessiond_routes_count() + 1;

    sb_printf(sb, "# HELP sessiond_http_refused_total Connections and "
                  "requests the HTTP layer refused before any route, by "
                  "reason.\n"
                  "# TYPE sessiond_http_refused_total counter\n");
    for (size_t r = 0; r < SESSIOND_REFUSE_N; r++)
        sb_printf(sb, "sessiond_http_refused_total{reason=\"%s\"} %llu\n",
                  refusal_names[r], load(&refused_m[r]));

    sb_printf(sb, "# HELP sessiond_http_requests_total HTTP requests "
                  "answered, by route and status.\n"
                  "# TYPE sessiond_http_requests_total counter\n");
    for (size_t r = 0; r < nroutes; r++) {
        for (size_t s = 0; s < N_STATUS; s++) {
            unsigned long long v = load(&routes_m[r].requests[s]);
            if (v == 0)
                continue;
            char code[8];
            if (s < N_STATUS - 1)
                snprintf(code, sizeof(code), "%u", statuses[s]);
            else
                snprintf(code, sizeof(code), "other");
            sb_printf(sb,
                      "sessiond_http_requests_total{route=\"%s\","
                      "status=\"%s\"} %llu\n",
                      sessiond_route_metric(r), code, v);
        }
    }

    sb_printf(sb, "# HELP sessiond_http_request_duration_seconds Time to "
                  "answer a request, by route.\n"
                  "# TYPE sessiond_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < nroutes; r++) {
        route_metrics *m = &routes_m[r];
        if (load(&m->count) == 0)
            continue;
        char labels[96];
        snprintf(labels, sizeof(labels), "route=\"%s\"", sessiond_route_metric(r));
        render_histogram(sb, "sessiond_http_request_duration_seconds", labels,
                         m->buckets, bucket_le, N_BUCKET, load(&m->sum_ns));
    }

    sb_printf(sb, "# HELP sessiond_validation_duration_seconds Time to answer "
                  "a request that validates a session (validate, "
                  "forward-auth), by route and outcome.\n"
                  "# TYPE sessiond_validation_duration_seconds histogram\n");
    for (size_t r = 0; r < nroutes; r++) {
        for (size_t o = 0; o < SESSIOND_OUTCOME_N; o++) {
            validation_metrics *v = &validation_m[r][o];
            if (load(&v->count) == 0)
                continue;
            char labels[128];
            snprintf(labels, sizeof(labels), "route=\"%s\",outcome=\"%s\"",
                     sessiond_route_metric(r),
                     sessiond_outcome_name((sessiond_outcome)o));
            render_histogram(sb, "sessiond_validation_duration_seconds", labels,
                             v->buckets, vbucket_le, N_VBUCKET, load(&v->sum_ns));
        }
    }

    sb_printf(sb, "# HELP sessiond_errors_total Requests that did not "
                  "succeed, by type (the outcome: a dead session, a refused "
                  "request, the store unavailable, ...).\n"
                  "# TYPE sessiond_errors_total counter\n");
    for (size_t o = 0; o < SESSIOND_OUTCOME_N; o++) {
        if (o == SESSIOND_OUTCOME_OK || o == SESSIOND_OUTCOME_UNSET)
            continue;
        sb_printf(sb, "sessiond_errors_total{type=\"%s\"} %llu\n",
                  sessiond_outcome_name((sessiond_outcome)o), load(&errors_m[o]));
    }
}

/* Security events by type (events.c counts them), the tracing exporter's
 * counters, and the access log's failed writes. */
static void render_daemon(strbuf *sb)
{
    sb_printf(sb, "# HELP sessiond_security_events_total Security events "
                  "written, by event.\n"
                  "# TYPE sessiond_security_events_total counter\n");
    for (unsigned t = 0; t < SESSIOND_EVENT_TYPES_MAX; t++) {
        const char *name = sess_event_name((sess_event_type)t);
        if (strcmp(name, "unknown") == 0)
            break;
        sb_printf(sb, "sessiond_security_events_total{event=\"%s\"} %llu\n",
                  name, (unsigned long long)sessiond_events_count(t));
    }

    sessiond_otlp_stats ts;
    sessiond_otlp_get_stats(&ts);
    sb_printf(sb, "# HELP sessiond_tracing_enabled 1 when spans are exported "
                  "(tracing.otlp_endpoint set).\n"
                  "# TYPE sessiond_tracing_enabled gauge\n"
                  "sessiond_tracing_enabled %d\n"
                  "# HELP sessiond_tracing_spans_exported_total Spans the "
                  "collector accepted.\n"
                  "# TYPE sessiond_tracing_spans_exported_total counter\n"
                  "sessiond_tracing_spans_exported_total %llu\n"
                  "# HELP sessiond_tracing_spans_dropped_total Spans not "
                  "exported, by reason (queue_full: the collector is slow or "
                  "down).\n"
                  "# TYPE sessiond_tracing_spans_dropped_total counter\n",
              ts.enabled ? 1 : 0, (unsigned long long)ts.spans_exported);
    for (size_t d = 0; d < SESSIOND_OTLP_DROP_N; d++)
        sb_printf(sb, "sessiond_tracing_spans_dropped_total{reason=\"%s\"} %llu\n",
                  sessiond_otlp_drop_name((sessiond_otlp_drop)d),
                  (unsigned long long)ts.dropped[d]);
    sb_printf(sb, "# HELP sessiond_tracing_exports_total Export requests "
                  "(POST /v1/traces), by result.\n"
                  "# TYPE sessiond_tracing_exports_total counter\n"
                  "sessiond_tracing_exports_total{result=\"ok\"} %llu\n"
                  "sessiond_tracing_exports_total{result=\"error\"} %llu\n"
                  "# HELP sessiond_tracing_queue_spans Spans waiting for "
                  "export.\n"
                  "# TYPE sessiond_tracing_queue_spans gauge\n"
                  "sessiond_tracing_queue_spans %llu\n"
                  "# HELP sessiond_tracing_queue_capacity Spans the export "
                  "queue holds at most (tracing.queue_size).\n"
                  "# TYPE sessiond_tracing_queue_capacity gauge\n"
                  "sessiond_tracing_queue_capacity %llu\n",
              (unsigned long long)ts.exports_ok,
              (unsigned long long)ts.exports_failed,
              (unsigned long long)ts.queued, (unsigned long long)ts.capacity);
    sb_printf(sb, "# HELP sessiond_access_log_failures_total Access log "
                  "lines that could not be written (full disk, ...).\n"
                  "# TYPE sessiond_access_log_failures_total counter\n"
                  "sessiond_access_log_failures_total %llu\n",
              (unsigned long long)sessiond_access_log_failures());
}

/* One metric per row: name, type, help, and where its value lives. */
typedef struct stat_metric {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
} stat_metric;

static const stat_metric stat_metrics[] = {
    {"sessiond_sessions_live", "gauge",
     "Live sessions in the store (not expired; rotation tombstones not counted).",
     offsetof(sess_stats, stored_records)},
    {"sessiond_sessions_created_total", "counter", "Sessions created.",
     offsetof(sess_stats, created)},
    {"sessiond_rotations_total", "counter", "Periodic ID rotations.",
     offsetof(sess_stats, rotations)},
    {"sessiond_rotations_deferred_total", "counter",
     "Rotations the store could not write (full disk or map, store down): "
     "the session was served unrotated and rotates on a later request.",
     offsetof(sess_stats, rotations_deferred)},
    {"sessiond_regenerations_total", "counter",
     "IDs replaced on privilege change.",
     offsetof(sess_stats, regenerations)},
    {"sessiond_sessions_destroyed_total", "counter", "Sessions destroyed.",
     offsetof(sess_stats, destroyed)},
    {"sessiond_evictions_total", "counter",
     "Sessions evicted by the per-user limit.",
     offsetof(sess_stats, evictions)},
    {"sessiond_limit_denied_total", "counter",
     "Logins refused by the per-user limit.",
     offsetof(sess_stats, limit_denied)},
    {"sessiond_binding_mismatches_total", "counter",
     "Binding mismatches (IP prefix or User-Agent).",
     offsetof(sess_stats, binding_mismatches)},
    {"sessiond_csrf_failures_total", "counter", "CSRF checks that failed.",
     offsetof(sess_stats, csrf_failures)},
    {"sessiond_reuse_after_grace_total", "counter",
     "Rotated IDs presented after their grace window.",
     offsetof(sess_stats, reuse_after_grace)},
    {"sessiond_touches_written_total", "counter",
     "Idle-deadline updates written to the store.",
     offsetof(sess_stats, touches_written)},
    {"sessiond_record_cache_hits_total", "counter",
     "Records read from the store whose plaintext came from the record "
     "cache (no AES-GCM).",
     offsetof(sess_stats, record_cache_hits)},
    {"sessiond_record_cache_misses_total", "counter",
     "Records read from the store and opened with AES-GCM.",
     offsetof(sess_stats, record_cache_misses)},
    {"sessiond_record_cache_entries", "gauge",
     "Records in the record cache now.",
     offsetof(sess_stats, record_cache_used)},
    {"sessiond_record_cache_capacity", "gauge",
     "Records the record cache holds at most (store.record_cache, rounded "
     "up).",
     offsetof(sess_stats, record_cache_slots)},
};

static const struct {
    const char *outcome;
    size_t offset;
} outcomes[] = {
    {"ok", offsetof(sess_stats, validate_ok)},
    {"unknown", offsetof(sess_stats, validate_unknown)},
    {"expired_idle", offsetof(sess_stats, validate_expired_idle)},
    {"expired_absolute", offsetof(sess_stats, validate_expired_absolute)},
    {"binding_mismatch", offsetof(sess_stats, validate_binding_mismatch)},
    {"revoked", offsetof(sess_stats, validate_revoked)},
    {"error", offsetof(sess_stats, validate_error)},
};

/* The uint64_t at "offset" in the struct at "base". */
static unsigned long long stat_at(const void *base, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)base + offset, sizeof(v));
    return (unsigned long long)v;
}

/* One HELP/TYPE/sample group per row, values read from "base". */
static void render_rows(strbuf *sb, const void *base, const stat_metric *rows,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", rows[i].name,
                  rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                  stat_at(base, rows[i].offset));
}

static void render_stats(strbuf *sb, const sess_stats *st)
{
    render_rows(sb, st, stat_metrics, sizeof(stat_metrics) / sizeof(stat_metrics[0]));
    sb_printf(sb, "# HELP sessiond_validations_total Session validations, "
                  "by outcome.\n"
                  "# TYPE sessiond_validations_total counter\n");
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
        sb_printf(sb, "sessiond_validations_total{outcome=\"%s\"} %llu\n",
                  outcomes[i].outcome, stat_at(st, outcomes[i].offset));
}

/* The store's counters (sess_store_stats; Redis stores fill them): L1
 * cache, timeouts, reconnects, errors, breaker state and a latency
 * histogram of store round trips in seconds. */
static void render_store(strbuf *sb, const sess_store_stats *s)
{
    static const uint64_t bounds[SESS_STORE_LAT_BUCKETS] = SESS_STORE_LAT_BOUNDS_US;
    static const stat_metric rows[] = {
        {"sessiond_store_l1_hits_total", "counter",
         "Validations answered from the in-process L1 cache.",
         offsetof(sess_store_stats, l1_hits)},
        {"sessiond_store_l1_misses_total", "counter",
         "Validations that had to ask the store.",
         offsetof(sess_store_stats, l1_misses)},
        {"sessiond_store_l1_invalidations_total", "counter",
         "Invalidation messages received from the store server.",
         offsetof(sess_store_stats, l1_invalidations)},
        {"sessiond_store_l1_flushes_total", "counter",
         "Whole-cache flushes (invalidation link lost or re-established).",
         offsetof(sess_store_stats, l1_flushes)},
        {"sessiond_store_l1_entries", "gauge", "Entries in the L1 cache.",
         offsetof(sess_store_stats, l1_entries)},
        {"sessiond_store_timeouts_total", "counter",
         "Store round trips that timed out.",
         offsetof(sess_store_stats, timeouts)},
        {"sessiond_store_reconnects_total", "counter",
         "Connections (re)established to store servers.",
         offsetof(sess_store_stats, reconnects)},
        {"sessiond_store_errors_total", "counter",
         "Store operations that failed (unavailable or bad answer).",
         offsetof(sess_store_stats, errors)},
        {"sessiond_store_breaker_open", "gauge",
         "1 while a store server's circuit breaker is open.",
         offsetof(sess_store_stats, breaker_open)},
    };
    render_rows(sb, s, rows, sizeof(rows) / sizeof(rows[0]));
    sb_printf(sb, "# HELP sessiond_store_latency_seconds Store round trips.\n"
                  "# TYPE sessiond_store_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < SESS_STORE_LAT_BUCKETS; i++) {
        cum += s->lat_count[i];
        if (bounds[i] == 0)
            sb_printf(sb, "sessiond_store_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)cum);
        else
            sb_printf(sb, "sessiond_store_latency_seconds_bucket{le=\"%g\"} %llu\n",
                      (double)bounds[i] / 1e6, (unsigned long long)cum);
    }
    sb_printf(sb, "sessiond_store_latency_seconds_sum %.6f\n"
                  "sessiond_store_latency_seconds_count %llu\n",
              (double)s->lat_sum_us / 1e6, (unsigned long long)cum);
}

char *sessiond_metrics_render(const sess_stats *stats, size_t *len)
{
    return sessiond_metrics_render_store(stats, NULL, len);
}

char *sessiond_metrics_render_store(const sess_stats *stats,
                                    const sess_store_stats *store, size_t *len)
{
    strbuf sb = {malloc(8192), 0, 8192, false};
    if (sb.p == NULL)
        return NULL;
    sb.p[0] = '\0';
    sb_printf(&sb, "# HELP process_start_time_seconds Start time of the "
                   "process since the Unix epoch.\n"
                   "# TYPE process_start_time_seconds gauge\n"
                   "process_start_time_seconds %.3f\n",
              start_time);
    sb_printf(&sb, "# HELP sessiond_build_info Version of sessiond.\n"
                   "# TYPE sessiond_build_info gauge\n"
                   "sessiond_build_info{version=\"%s\"} 1\n",
              sess_version());
    if (stats != NULL)
        render_stats(&sb, stats);
    if (store != NULL)
        render_store(&sb, store);
    render_http(&sb);
    {
        /* Webhook delivery (webhook.c), when webhooks are configured. */
        char ev[4096];
        size_t n = sessiond_events_metrics(ev, sizeof ev);
        if (n > 0)
            sb_printf(&sb, "%.*s", (int)n, ev);
    }
    render_daemon(&sb);
    if (sb.failed) {
        free(sb.p);
        return NULL;
    }
    *len = sb.len;
    return sb.p;
}

void sessiond_metrics_handler(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp)
{
    sess_stats st;
    sess_err err = {0};
    size_t len = 0;
    (void)req;

    memset(&st, 0, sizeof(st));
    /* A store in trouble is exactly when metrics matter: answer with the
     * HTTP metrics alone rather than fail the scrape. */
    int rc = sess_get_stats(app->ctx, &st, &err);
    if (rc != SESS_OK)
        sessiond_log(SESSIOND_LOG_WARN, "metrics: no session statistics: %s",
                     err.msg[0] != '\0' ? err.msg : sess_strerror(rc));
    /* The store's own counters never talk to a server: always there. */
    /* Stores that keep no counters (LMDB, memory) show zeros: dashboards
     * and alerts then find every series, and a zero breaker is true. */
    sess_store_stats ss;
    if (sess_get_store_stats(app->ctx, &ss) != SESS_OK)
        memset(&ss, 0, sizeof ss);
    const sess_store_stats *ssp = &ss;
    char *text = sessiond_metrics_render_store(rc == SESS_OK ? &st : NULL, ssp, &len);
    /* The migration store's counters, when one is configured. */
    size_t mlen = 0;
    char *mig = text ? sessiond_migration_metrics(&mlen) : NULL;
    if (mig && mlen) {
        char *both = realloc(text, len + mlen + 1);
        if (both) {
            memcpy(both + len, mig, mlen + 1);
            text = both;
            len += mlen;
        }
    }
    free(mig);
    if (text == NULL) {
        sessiond_resp_error(resp, 500, "internal_error", "out of memory");
        return;
    }
    sessiond_resp_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8",
                       text, len);
}
