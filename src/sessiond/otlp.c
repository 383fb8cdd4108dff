/*
 * otlp.c - OTLP/HTTP JSON trace export (otlp.h; docs/observability.md,
 * "Traces").
 *
 * Hot path.  A worker thread serving a sampled request collects the store
 * operations of that request in a thread-local list (the observer of the
 * observed store, lib/store_observe.c), and at the end pushes the
 * request's SERVER span and those children into the ring under one short
 * mutex hold: no allocation, no I/O, no JSON.  When the ring has no room
 * for all of a request's spans they are dropped together (a half trace
 * misleads more than none) and counted: a slow or dead collector costs a
 * request nothing but the counter.  Requests that are not sampled never
 * get here.
 *
 * Export thread.  It sleeps on a condition variable until a batch is
 * full (tracing.batch_size; the producer that fills it signals, the
 * others do not, so the common push is lock, copy, unlock) or
 * tracing.flush_interval_ms has passed, takes up to a batch out of the
 * ring, and - with the lock released - builds the ExportTraceServiceRequest
 * with jansson and POSTs it with libcurl (one easy handle, so the
 * connection is kept alive), bounded by tracing.timeout_ms.  A failed POST
 * drops its spans (counted); there is no retry queue, so memory stays
 * bounded by queue_size spans whatever the collector does.
 *
 * Stop.  sessiond_otlp_stop() (after the HTTP server has stopped, so no
 * more spans come) wakes the thread, which sends what is queued until the
 * ring is empty or tracing.timeout_ms has passed since the stop began;
 * each POST's own timeout is cut to what remains.  Spans still queued
 * then are counted as dropped (shutdown).
 *
 * Mapping (the OTLP JSON encoding of opentelemetry-proto): trace and span
 * ids as lowercase hex, 64-bit integers (times, intValue) as decimal
 * strings, enums (kind, status code) as numbers, lowerCamelCase member
 * names.  Attributes follow the OpenTelemetry semantic conventions for
 * HTTP servers (http.request.method, http.route,
 * http.response.status_code, error.type) and database clients
 * (db.operation.name, db.system.name, server.address, server.port), plus
 * sessiond.outcome, sessiond.store.backend, sessiond.store.l1 and
 * sessiond.store.result.  Nothing in a span comes from a request's bytes
 * except the method (a token the HTTP parser checked) and our own
 * lowercase-hex ids: no path (only the route pattern), no query, no
 * header, no cookie, no user id.
 */
#include "otlp.h"
#include "../common/clock.h"
#include "../common/hex.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "events.h"
#include "request.h"

typedef struct ring {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sessiond_span *slots;
    size_t cap, head, len;      /* len spans from head, wrapping */
    size_t batch;
    bool stop;
    uint64_t stop_deadline_ms;  /* CLOCK_MONOTONIC */
} ring;

static ring q = {.lock = PTHREAD_MUTEX_INITIALIZER};
static bool running;
static pthread_t exporter;
static sessiond_tracing_config conf;
static char endpoint[SESSIOND_PATH_MAX];
static json_t *resource;        /* the Resource object, exporter's own */
static char instance_id[128];

static atomic_uint_fast64_t spans_exported;
static atomic_uint_fast64_t dropped[SESSIOND_OTLP_DROP_N];
static atomic_uint_fast64_t exports_ok, exports_failed;
static atomic_uint_fast64_t queued_now;

static const char *const drop_names[SESSIOND_OTLP_DROP_N] = {
    [SESSIOND_OTLP_DROP_QUEUE_FULL] = "queue_full",
    [SESSIOND_OTLP_DROP_EXPORT_FAILED] = "export_failed",
    [SESSIOND_OTLP_DROP_SHUTDOWN] = "shutdown",
    [SESSIOND_OTLP_DROP_SPAN_LIMIT] = "span_limit",
};

const char *sessiond_otlp_drop_name(sessiond_otlp_drop d)
{
    return (unsigned)d < SESSIOND_OTLP_DROP_N ? drop_names[d] : "unknown";
}

static void count_drop(sessiond_otlp_drop d, uint64_t n)
{
    atomic_fetch_add_explicit(&dropped[d], n, memory_order_relaxed);
}

/* ---- the children of the current request (per thread) ----------------- */

typedef struct kid {
    uint8_t span_id[8];
    sess_store_op op;
} kid;

static _Thread_local struct {
    const sessiond_trace *owner;    /* the request they belong to */
    size_t n;
    uint64_t over;                  /* past SESSIOND_OTLP_CHILDREN_MAX */
    kid kids[SESSIOND_OTLP_CHILDREN_MAX];
} tl;

static bool obs_want(void *user)
{
    (void)user;
    const sessiond_trace *t = sessiond_trace_current();
    return t != NULL && t->sampled;
}

static void obs_done(void *user, const sess_store_op *op)
{
    (void)user;
    const sessiond_trace *t = sessiond_trace_current();
    if (t == NULL || !t->sampled)
        return;
    if (tl.owner != t) {
        tl.owner = t;
        tl.n = 0;
        tl.over = 0;
    }
    if (tl.n >= SESSIOND_OTLP_CHILDREN_MAX) {
        tl.over++;
        return;
    }
    kid *k = &tl.kids[tl.n++];
    sessiond_trace_new_span_id(k->span_id);
    k->op = *op;
}

int sessiond_otlp_observe_store(sess_store **st, char *err, size_t errlen)
{
    sess_store_observer obs = {.want = obs_want, .done = obs_done};
    sess_store *wrapped = NULL;
    sess_err e = {0};
    if (sess_store_observe(*st, &obs, &wrapped, &e) != SESS_OK) {
        snprintf(err, errlen, "tracing: cannot observe the store: %s",
                 e.msg[0] ? e.msg : "error");
        return -1;
    }
    *st = wrapped;
    return 0;
}

/* ---- producing --------------------------------------------------------- */

/* Copy a span without the unused tail of its tracestate (most spans have
 * none: the copy is a quarter of the struct). */
static void span_copy(sessiond_span *dst, const sessiond_span *src)
{
    memcpy(dst, src, offsetof(sessiond_span, tracestate) + src->tracestate_len + 1);
}

/* Push "n" spans, all or none.  Caller holds nothing. */
static void push(const sessiond_span *spans, size_t n)
{
    pthread_mutex_lock(&q.lock);
    if (q.slots == NULL || q.stop || q.cap - q.len < n) {
        pthread_mutex_unlock(&q.lock);
        count_drop(SESSIOND_OTLP_DROP_QUEUE_FULL, n);
        return;
    }
    size_t before = q.len;
    for (size_t i = 0; i < n; i++)
        span_copy(&q.slots[(q.head + q.len++) % q.cap], &spans[i]);
    atomic_store_explicit(&queued_now, q.len, memory_order_relaxed);
    /* Only the push that fills a batch wakes the exporter; the interval
     * timer takes care of the rest. */
    bool wake = before < q.batch && q.len >= q.batch;
    pthread_mutex_unlock(&q.lock);
    if (wake)
        pthread_cond_signal(&q.cond);
}

void sessiond_otlp_request_end(const sessiond_trace *t, const char *method,
                               uint64_t duration_ns)
{
    /* On the worker's stack: one server span plus the children (their
     * tracestate member stays empty and is not copied around). */
    sessiond_span spans[1 + SESSIOND_OTLP_CHILDREN_MAX];
    size_t n = 1, nk = tl.owner == t ? tl.n : 0;
    uint64_t over = tl.owner == t ? tl.over : 0;
    tl.owner = NULL;
    tl.n = 0;
    tl.over = 0;
    if (!running)
        return;

    sessiond_span *s = &spans[0];
    memset(s, 0, offsetof(sessiond_span, tracestate));
    memcpy(s->trace_id, t->trace_id, 16);
    memcpy(s->span_id, t->span_id, 8);
    if (t->has_parent) {
        memcpy(s->parent_id, t->parent_id, 8);
        s->has_parent = true;
        s->parent_remote = true;
    }
    s->kind = SESSIOND_SPAN_KIND_SERVER;
    s->start_ns = t->start_ns;
    s->end_ns = t->start_ns + duration_ns;
    s->route = t->route;
    snprintf(s->method, sizeof s->method, "%s", method != NULL ? method : "");
    s->http_status = t->status;
    s->outcome = t->outcome;
    s->tracestate_len = 0;
    if (t->tracestate != NULL && t->tracestate_len <= SESSIOND_TRACESTATE_MAX) {
        memcpy(s->tracestate, t->tracestate, t->tracestate_len);
        s->tracestate_len = t->tracestate_len;
    }
    s->tracestate[s->tracestate_len] = '\0';

    for (size_t i = 0; i < nk; i++) {
        const kid *k = &tl.kids[i];
        sessiond_span *c = &spans[n++];
        memset(c, 0, offsetof(sessiond_span, tracestate) + 1);
        memcpy(c->trace_id, t->trace_id, 16);
        memcpy(c->span_id, k->span_id, 8);
        memcpy(c->parent_id, t->span_id, 8);
        c->has_parent = true;
        c->kind = SESSIOND_SPAN_KIND_CLIENT;
        c->start_ns = k->op.start_ns;
        c->end_ns = k->op.start_ns + k->op.duration_ns;
        c->op = k->op.op;
        c->backend = k->op.backend;
        c->rc = k->op.rc;
        c->l1 = (uint8_t)k->op.l1;
        memcpy(c->node, k->op.node, sizeof c->node);
        c->node[sizeof c->node - 1] = '\0';
    }
    if (over > 0)
        count_drop(SESSIOND_OTLP_DROP_SPAN_LIMIT, over);
    push(spans, n);
}

/* ---- encoding ----------------------------------------------------------- */

/*
 * Shared nodes.  Most of a span is the same from span to span: attribute
 * values are static strings (route patterns, outcome words, operation and
 * backend names, whose pointers identify them) or small integers (the
 * status), and so are span names, kinds, flags and statuses.  jansson
 * counts references, so one node may sit in many trees: each is built once
 * and shared, which takes most of the allocations out of encoding (at a
 * 100% sample ratio the exporter's CPU was mostly malloc and free).  The
 * table is bounded (a full probe sequence builds a fresh node instead) and
 * used only by the thread encoding (the exporter; a test's thread).
 */
typedef enum node_kind {
    N_KV_STR = 1,       /* {"key": a, "value": {"stringValue": b}} */
    N_KV_INT,           /* {"key": a, "value": {"intValue": "i"}} */
    N_NAME_SERVER,      /* "METHOD ROUTE": a = method, b = route */
    N_NAME_STORE,       /* "store OP": a = op */
    N_STATUS,           /* {"code": i} or {"code": 2, "message": a} */
    N_INT               /* the integer i */
} node_kind;

#define SHARED_SLOTS 512
#define SHARED_PROBES 8

typedef struct shared_slot {
    node_kind kind;
    const void *a, *b;
    long long i;
    json_t *node;
} shared_slot;

static shared_slot shared[SHARED_SLOTS];

static void shared_free(void)
{
    for (size_t k = 0; k < SHARED_SLOTS; k++)
        json_decref(shared[k].node);
    memset(shared, 0, sizeof shared);
}

/* int64 values are JSON strings in the OTLP encoding (protobuf JSON). */
static json_t *decimal(unsigned long long v, bool negative)
{
    char d[24];
    size_t k = sizeof d;
    do {
        d[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    if (negative)
        d[--k] = '-';
    return json_stringn_nocheck(d + k, sizeof d - k);
}

static json_t *kv(const char *key, const char *vkind, json_t *v)
{
    json_t *val = json_object(), *o = json_object();
    if (val == NULL || o == NULL || v == NULL) {
        json_decref(val);
        json_decref(o);
        json_decref(v);
        return NULL;
    }
    json_object_set_new_nocheck(val, vkind, v);
    json_object_set_new_nocheck(o, "key", json_string(key));
    json_object_set_new_nocheck(o, "value", val);
    return o;
}

static const char *known_method(const char *m);

static json_t *build(node_kind kind, const void *a, const void *b, long long i)
{
    char name[96];
    switch (kind) {
    case N_KV_STR:
        return kv(a, "stringValue", json_string(b));
    case N_KV_INT:
        return kv(a, "intValue", decimal(i < 0 ? 0ull - (unsigned long long)i
                                               : (unsigned long long)i, i < 0));
    case N_NAME_SERVER:
        /* HTTP server span name: "{method} {route}", or the method alone
         * when no route matched (never the raw path). */
        if (b != NULL)
            snprintf(name, sizeof name, "%s %s",
                     strcmp(a, "_OTHER") == 0 ? "HTTP" : (const char *)a,
                     (const char *)b);
        else
            snprintf(name, sizeof name, "%s",
                     strcmp(a, "_OTHER") == 0 ? "HTTP" : (const char *)a);
        return json_string(name);
    case N_NAME_STORE:
        snprintf(name, sizeof name, "store %s", a != NULL ? (const char *)a : "?");
        return json_string(name);
    case N_STATUS: {
        json_t *st = json_object();
        if (st == NULL)
            return NULL;
        json_object_set_new_nocheck(st, "code", json_integer(i));
        if (a != NULL)
            json_object_set_new_nocheck(st, "message", json_string(a));
        return st;
    }
    case N_INT:
        return json_integer(i);
    }
    return NULL;
}

/* A new reference to the shared node for ("kind", "a", "b", "i"). */
static json_t *node(node_kind kind, const void *a, const void *b, long long i)
{
    uintptr_t h = (uintptr_t)kind * 0x9e3779b97f4a7c15u ^ (uintptr_t)a * 31u ^
                  (uintptr_t)b * 0x85ebca6bu ^ (uintptr_t)i;
    h ^= h >> 17;
    for (size_t p = 0; p < SHARED_PROBES; p++) {
        shared_slot *sl = &shared[(h + p) % SHARED_SLOTS];
        if (sl->node == NULL) {
            sl->node = build(kind, a, b, i);
            if (sl->node == NULL)
                return NULL;
            sl->kind = kind;
            sl->a = a;
            sl->b = b;
            sl->i = i;
            return json_incref(sl->node);
        }
        if (sl->kind == kind && sl->a == a && sl->b == b && sl->i == i)
            return json_incref(sl->node);
    }
    return build(kind, a, b, i);
}

/* Append the KeyValue of "key" and the static string "v" (nothing when
 * NULL), shared. */
static void attr_static(json_t *arr, const char *key, const char *v)
{
    if (v != NULL)
        json_array_append_new(arr, node(N_KV_STR, key, v, 0));
}

static void attr_int(json_t *arr, const char *key, long long v)
{
    json_array_append_new(arr, node(N_KV_INT, key, NULL, v));
}

/* A KeyValue whose string is not static (built every time). */
static void attr_copy(json_t *arr, const char *key, const char *v)
{
    json_array_append_new(arr, kv(key, "stringValue", json_string(v)));
}

/* The HTTP methods the semantic conventions know; others are "_OTHER". */
static const char *known_method(const char *m)
{
    static const char *const known[] = {"GET",     "HEAD",  "POST",
                                        "PUT",     "DELETE", "CONNECT",
                                        "OPTIONS", "TRACE", "PATCH"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "_OTHER";
}

static const char *l1_name(uint8_t l1)
{
    return l1 == SESS_STORE_L1_HIT ? "hit"
           : l1 == SESS_STORE_L1_MISS ? "miss" : NULL;
}

/* The status words for error.type of 5xx answers (static, so shared). */
static const char *status_word(unsigned status)
{
    static const struct {
        unsigned status;
        const char *word;
    } words[] = {{500, "500"}, {501, "501"}, {502, "502"}, {503, "503"},
                 {504, "504"}, {505, "505"}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (words[i].status == status)
            return words[i].word;
    return "_OTHER";
}

/* W3C trace flags (sampled, as everything exported is) plus the OTLP
 * bits saying whether the parent is remote (span flags, trace.proto). */
#define SPAN_FLAGS_HAS_IS_REMOTE 0x100u
#define SPAN_FLAGS_IS_REMOTE 0x200u

/* The trace id of the span encoded last: a request's spans are queued
 * together and share it. */
typedef struct enc_state {
    uint8_t trace_id[16];
    json_t *trace_hex;
} enc_state;

static json_t *encode_span(const sessiond_span *s, enc_state *es)
{
    char sid[17], pid[17];
    json_t *attrs = json_array();
    json_t *o = json_object();
    if (attrs == NULL || o == NULL) {
        json_decref(attrs);
        json_decref(o);
        return NULL;
    }
    if (es->trace_hex == NULL || memcmp(es->trace_id, s->trace_id, 16) != 0) {
        char tid[33];
        hex_encode(s->trace_id, 16, tid);
        json_decref(es->trace_hex);
        es->trace_hex = json_stringn_nocheck(tid, 32);
        memcpy(es->trace_id, s->trace_id, 16);
    }
    hex_encode(s->span_id, 8, sid);
    json_object_set_nocheck(o, "traceId", es->trace_hex);
    json_object_set_new_nocheck(o, "spanId", json_stringn_nocheck(sid, 16));
    if (s->has_parent) {
        hex_encode(s->parent_id, 8, pid);
        json_object_set_new_nocheck(o, "parentSpanId",
                                    json_stringn_nocheck(pid, 16));
    }
    if (s->tracestate_len > 0)
        json_object_set_new_nocheck(o, "traceState",
                                    json_stringn(s->tracestate, s->tracestate_len));
    json_object_set_new_nocheck(
        o, "flags",
        node(N_INT, NULL, NULL,
             SESSIOND_TRACE_FLAG_SAMPLED | SPAN_FLAGS_HAS_IS_REMOTE |
                 (s->parent_remote ? SPAN_FLAGS_IS_REMOTE : 0)));
    bool error = false;
    const char *message = NULL;
    json_t *name;
    if (s->kind == SESSIOND_SPAN_KIND_SERVER) {
        const char *m = known_method(s->method);
        name = node(N_NAME_SERVER, m, s->route, 0);
        attr_static(attrs, "http.request.method", m);
        attr_static(attrs, "http.route", s->route);
        attr_int(attrs, "http.response.status_code", (long long)s->http_status);
        const char *oc = sessiond_outcome_name((sessiond_outcome)s->outcome);
        attr_static(attrs, "sessiond.outcome", oc);
        /* Server spans: 5xx is an error, 4xx is the client's (semantic
         * conventions, "Status"). */
        if (s->http_status >= 500) {
            attr_static(attrs, "error.type", status_word(s->http_status));
            error = true;
            message = oc;
        }
    } else {
        name = node(N_NAME_STORE, s->op, NULL, 0);
        attr_static(attrs, "db.operation.name", s->op);
        attr_static(attrs, "sessiond.store.backend", s->backend);
        if (s->backend != NULL && strncmp(s->backend, "redis", 5) == 0)
            attr_static(attrs, "db.system.name", "redis");
        attr_static(attrs, "sessiond.store.l1", l1_name(s->l1));
        const char *colon = strrchr(s->node, ':');
        if (s->node[0] != '\0' && colon != NULL) {
            char host[SESS_STORE_NODE_MAX];
            snprintf(host, sizeof host, "%.*s", (int)(colon - s->node), s->node);
            attr_copy(attrs, "server.address", host);
            attr_int(attrs, "server.port", strtol(colon + 1, NULL, 10));
        }
        if (s->rc != SESS_OK)
            attr_static(attrs, "sessiond.store.result", sess_result_name(s->rc));
        if (s->rc < 0) {
            attr_static(attrs, "error.type", sess_result_name(s->rc));
            error = true;
            message = sess_result_name(s->rc);
        }
    }
    json_object_set_new_nocheck(o, "name", name);
    json_object_set_new_nocheck(o, "kind", node(N_INT, NULL, NULL, s->kind));
    json_object_set_new_nocheck(o, "startTimeUnixNano", decimal(s->start_ns, false));
    json_object_set_new_nocheck(o, "endTimeUnixNano", decimal(s->end_ns, false));
    json_object_set_new_nocheck(o, "attributes", attrs);
    /* Status: ERROR (2) with a message, or left out: UNSET is the default,
     * which protobuf JSON omits (and every container costs the encoder:
     * this one was a sixth of it).  OK is for applications that assert
     * success, which a server span does not. */
    if (error)
        json_object_set_new_nocheck(o, "status",
                                    node(N_STATUS, message, NULL, 2));
    return o;
}

/* A random (version 4) UUID, RFC 9562 section 5.4. */
static void random_uuid(char out[37])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    for (; got < sizeof b; got++)   /* no kernel randomness: still unique */
        b[got] = (uint8_t)(clock_real_ns() >> (got % 8 * 8));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    hex_uuid(b, out);
}

int sessiond_otlp_set_resource(const char *service_name,
                               const char *instance)
{
    json_t *attrs = json_array();
    if (attrs == NULL)
        return -1;
    if (instance == NULL || instance[0] == '\0')
        random_uuid(instance_id);
    else
        snprintf(instance_id, sizeof instance_id, "%s", instance);
    attr_copy(attrs, "service.name", service_name);
    attr_copy(attrs, "service.version", sess_version());
    attr_copy(attrs, "service.instance.id", instance_id);
    attr_copy(attrs, "telemetry.sdk.name", "sessiond");
    attr_copy(attrs, "telemetry.sdk.language", "c");
    attr_copy(attrs, "telemetry.sdk.version", sess_version());
    json_t *r = json_pack("{s:o}", "attributes", attrs);
    if (r == NULL)
        return -1;
    json_decref(resource);
    resource = r;
    return 0;
}

/* The ExportTraceServiceRequest tree, or NULL. */
static json_t *encode_root(const sessiond_span *spans, size_t n)
{
    json_t *arr = json_array();
    if (arr == NULL || resource == NULL) {
        json_decref(arr);
        return NULL;
    }
    enc_state es = {.trace_hex = NULL};
    for (size_t i = 0; i < n; i++) {
        json_t *s = encode_span(&spans[i], &es);
        if (s == NULL || json_array_append_new(arr, s) != 0) {
            json_decref(es.trace_hex);
            json_decref(arr);
            return NULL;
        }
    }
    json_decref(es.trace_hex);
    json_t *root = json_pack(
        "{s:[{s:O, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
        resource, "scopeSpans", "scope", "name", "sessiond", "version",
        sess_version(), "spans", arr);
    return root;
}

char *sessiond_otlp_encode(const sessiond_span *spans, size_t n)
{
    json_t *root = encode_root(spans, n);
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

/* ---- exporting ------------------------------------------------------------ */

/* The collector's answer body is not needed (partial-success details):
 * read and forget it, so the connection can be reused. */
static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

/* The exporter's body buffer, kept from batch to batch (it only grows to
 * the largest batch's text). */
static char *body_buf;
static size_t body_cap;

/* Encode "n" spans into body_buf; their length, or 0. */
static size_t encode_body(const sessiond_span *b, size_t n)
{
    json_t *root = encode_root(b, n);
    if (root == NULL)
        return 0;
    size_t len = json_dumpb(root, body_buf, body_cap, JSON_COMPACT);
    if (len > body_cap) {
        char *nb = realloc(body_buf, len);
        if (nb == NULL) {
            json_decref(root);
            return 0;
        }
        body_buf = nb;
        body_cap = len;
        len = json_dumpb(root, body_buf, body_cap, JSON_COMPACT);
    }
    json_decref(root);
    return len <= body_cap ? len : 0;
}

/* POST one batch; true when the collector took it (2xx). */
static bool post(CURL *h, struct curl_slist *headers, const sessiond_span *b,
                 size_t n, long timeout_ms)
{
    size_t len = encode_body(b, n);
    if (len == 0)
        return false;
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body_buf);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return cc == CURLE_OK && code >= 200 && code < 300;
}

/* Take up to "max" spans out of the ring into "out".  Lock held. */
static size_t take(sessiond_span *out, size_t max)
{
    size_t n = q.len < max ? q.len : max;
    for (size_t i = 0; i < n; i++)
        span_copy(&out[i], &q.slots[(q.head + i) % q.cap]);
    q.head = (q.head + n) % q.cap;
    q.len -= n;
    atomic_store_explicit(&queued_now, q.len, memory_order_relaxed);
    return n;
}

static uint64_t last_warn_ms;

static void export_batch(CURL *h, struct curl_slist *headers,
                         const sessiond_span *b, size_t n, long timeout_ms)
{
    if (post(h, headers, b, n, timeout_ms)) {
        atomic_fetch_add_explicit(&exports_ok, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&spans_exported, n, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&exports_failed, 1, memory_order_relaxed);
    count_drop(SESSIOND_OTLP_DROP_EXPORT_FAILED, n);
    /* One warning a minute at most: a dead collector must not flood the
     * log (the counter has the numbers). */
    uint64_t now = clock_mono_ms();
    if (last_warn_ms == 0 || now - last_warn_ms >= 60000) {
        last_warn_ms = now;
        sessiond_log(SESSIOND_LOG_WARN,
                     "tracing: the collector did not take %zu spans; they "
                     "are dropped (sessiond_tracing_spans_dropped_total)", n);
    }
}

static void *exporter_main(void *arg)
{
    (void)arg;
    /* Named, so top -H and perf tell its CPU from the workers'. */
    pthread_setname_np(pthread_self(), "sessiond-otlp");
    /* Spans hold our own ids, route patterns and fixed words, never a
     * secret: no wiping of the encoder's freed blocks. */
    sessiond_json_no_secrets_here();
    sessiond_span *batch = malloc(q.batch * sizeof *batch);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL,
                                                   "Content-Type: application/json");
    if (batch == NULL || h == NULL || headers == NULL) {
        sessiond_log(SESSIOND_LOG_ERROR, "tracing: cannot start the exporter "
                                         "(out of memory); spans are dropped");
        pthread_mutex_lock(&q.lock);
        free(q.slots);
        q.slots = NULL;     /* producers drop from now on */
        pthread_mutex_unlock(&q.lock);
        goto out;
    }
    char ua[64];
    snprintf(ua, sizeof ua, "sessiond/%s", sess_version());
    curl_easy_setopt(h, CURLOPT_URL, endpoint);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);     /* threads: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif

    pthread_mutex_lock(&q.lock);
    for (;;) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        uint64_t ns = (uint64_t)dl.tv_nsec +
                      (uint64_t)conf.flush_interval_ms * 1000000u;
        dl.tv_sec += (time_t)(ns / 1000000000u);
        dl.tv_nsec = (long)(ns % 1000000000u);
        while (!q.stop && q.len < q.batch)
            if (pthread_cond_timedwait(&q.cond, &q.lock, &dl) == ETIMEDOUT)
                break;
        if (q.stop)
            break;
        size_t n = take(batch, q.batch);
        pthread_mutex_unlock(&q.lock);
        if (n > 0)
            export_batch(h, headers, batch, n, (long)conf.timeout_ms);
        pthread_mutex_lock(&q.lock);
    }
    /* The stop's flush, bounded by stop_deadline_ms. */
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (q.len == 0 || now >= q.stop_deadline_ms)
            break;
        size_t n = take(batch, q.batch);
        pthread_mutex_unlock(&q.lock);
        export_batch(h, headers, batch, n, (long)(q.stop_deadline_ms - now));
        pthread_mutex_lock(&q.lock);
    }
    if (q.len > 0)
        count_drop(SESSIOND_OTLP_DROP_SHUTDOWN, q.len);
    q.len = 0;
    atomic_store_explicit(&queued_now, 0, memory_order_relaxed);
    pthread_mutex_unlock(&q.lock);
out:
    curl_slist_free_all(headers);
    if (h != NULL)
        curl_easy_cleanup(h);
    free(batch);
    free(body_buf);
    body_buf = NULL;
    body_cap = 0;
    return NULL;
}

/* The endpoint without user information, for the log (a URL may carry a
 * password in it). */
static void endpoint_for_log(CURLU *u, char *out, size_t cap)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    snprintf(out, cap, "%s://%s:%s%s", scheme ? scheme : "?", host ? host : "?",
             port ? port : "?", path ? path : "");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
}

int sessiond_otlp_start(const sessiond_tracing_config *tc, char *err,
                        size_t errlen)
{
    conf = *tc;
    if (tc->otlp_endpoint[0] == '\0') {
        sessiond_trace_sampler(false, 0.0);
        return 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "tracing: cannot initialise libcurl");
        return -1;
    }
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (u == NULL ||
        curl_url_set(u, CURLUPART_URL, tc->otlp_endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        curl_free(scheme);
        curl_url_cleanup(u);
        curl_global_cleanup();
        snprintf(err, errlen, "tracing.otlp_endpoint: not an http or https "
                              "URL that libcurl accepts");
        return -1;
    }
    curl_free(scheme);
    char shown[SESSIOND_PATH_MAX + 64];
    endpoint_for_log(u, shown, sizeof shown);
    curl_url_cleanup(u);
    snprintf(endpoint, sizeof endpoint, "%s", tc->otlp_endpoint);

    if (sessiond_otlp_set_resource(tc->service_name,
                                   tc->service_instance_id) != 0) {
        curl_global_cleanup();
        snprintf(err, errlen, "tracing: out of memory");
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q.cond, &ca);
    pthread_condattr_destroy(&ca);
    q.slots = calloc(tc->queue_size, sizeof *q.slots);
    q.cap = tc->queue_size;
    q.batch = tc->batch_size < tc->queue_size ? tc->batch_size : tc->queue_size;
    q.head = q.len = 0;
    q.stop = false;
    int prc = q.slots == NULL ? ENOMEM
                              : pthread_create(&exporter, NULL, exporter_main, NULL);
    if (prc != 0) {
        free(q.slots);
        q.slots = NULL;
        pthread_cond_destroy(&q.cond);
        json_decref(resource);
        resource = NULL;
        curl_global_cleanup();
        snprintf(err, errlen, "tracing: cannot start the export thread: %s",
                 strerror(prc));
        return -1;
    }
    running = true;
    sessiond_trace_sampler(true, tc->sample_ratio);
    sessiond_log(SESSIOND_LOG_INFO,
                 "tracing: exporting spans to %s (sample ratio %g, "
                 "service.instance.id %s)", shown, tc->sample_ratio,
                 instance_id);
    return 0;
}

bool sessiond_otlp_enabled(void)
{
    return running;
}

void sessiond_otlp_stop(void)
{
    if (!running) {
        json_decref(resource);      /* set by a test without a start */
        resource = NULL;
        shared_free();
        return;
    }
    sessiond_trace_sampler(false, 0.0);
    pthread_mutex_lock(&q.lock);
    q.stop = true;
    q.stop_deadline_ms = clock_mono_ms() + conf.timeout_ms;
    pthread_mutex_unlock(&q.lock);
    pthread_cond_signal(&q.cond);
    pthread_join(exporter, NULL);
    running = false;
    pthread_mutex_lock(&q.lock);
    free(q.slots);          /* NULL when the exporter gave up already */
    q.slots = NULL;
    q.cap = q.len = q.head = 0;
    pthread_mutex_unlock(&q.lock);
    pthread_cond_destroy(&q.cond);
    json_decref(resource);
    resource = NULL;
    shared_free();
    curl_global_cleanup();
}

void sessiond_otlp_get_stats(sessiond_otlp_stats *out)
{
    memset(out, 0, sizeof *out);
    out->enabled = running;
    out->spans_exported = atomic_load_explicit(&spans_exported, memory_order_relaxed);
    for (size_t i = 0; i < SESSIOND_OTLP_DROP_N; i++)
        out->dropped[i] = atomic_load_explicit(&dropped[i], memory_order_relaxed);
    out->exports_ok = atomic_load_explicit(&exports_ok, memory_order_relaxed);
    out->exports_failed = atomic_load_explicit(&exports_failed, memory_order_relaxed);
    out->queued = atomic_load_explicit(&queued_now, memory_order_relaxed);
    out->capacity = running ? conf.queue_size : 0;
}
