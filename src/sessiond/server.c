/*
 * server.c - sessiond's HTTP/1.1 connection layer: one acceptor thread,
 * N worker threads each running an epoll loop, keep-alive and
 * pipelining, limits, timers and the graceful stop.  Requests are parsed
 * by http_conn.c (nodejs http_parser plus our strictness gate); this file
 * moves bytes and decides when connections live and die.  Why our own
 * layer and not libmicrohttpd or h2o: docs/architecture.md, "HTTP layer".
 *
 * Accepting.  The acceptor thread accepts every connection itself and
 * never blocks: over server.max_connections, or over
 * server.max_connections_per_ip for the peer's address (loopback and
 * trusted proxies exempt unless configured otherwise), it writes a short
 * JSON 503 with "Connection: close" without waiting, drains what the
 * client already sent (so close() sends FIN, not an RST that would eat
 * the answer) and closes (connection floods: one client cannot hold every
 * slot, and a burst past the limit costs a refusal, not the daemon).
 * Admitted sockets go round-robin to the workers through a per-worker
 * queue and an eventfd.  We hand them out ourselves for balance: workers
 * that each watched the listening socket let whichever woke first take a
 * whole burst (in measurements one worker served all 64 connections of a
 * client while the other slept).
 *
 * Workers.  Level-triggered epoll.  A readable socket is read into its
 * connection's buffer; http_conn yields requests, which are dispatched
 * synchronously (routes.c) and their answers appended to the output
 * buffer; pipelined requests are answered in order and flushed together.
 * A write that would block waits for EPOLLOUT and stops reading
 * (backpressure: a client that never reads cannot make us buffer without
 * bound).  Expect: 100-continue gets "100 Continue" only when the body
 * will be accepted (http_conn decides).
 *
 * Timers, never re-armed per byte (slowloris: a head trickled a byte a
 * second must not keep a slot forever).  A coarse sweep every
 * SWEEP_MS checks each connection against the deadline of its phase:
 *   idle keep-alive   server.connection_timeout after the last answer: close
 *   head              server.header_timeout after its first byte: 408
 *   body              server.body_timeout after the head: 408
 *   writing           server.connection_timeout: close
 *   lingering close   LINGER_MS: close
 *
 * Closing.  Every refusal (400/408/413/414/417/431/501/503/505) is one
 * status line with a JSON body {"error","message"}, "Connection: close",
 * then a lingering close: shutdown the write side, read and discard
 * what still comes (bounded in time and bytes), close.
 *
 * Stop (SIGTERM).  The acceptor stops and the listening socket closes;
 * workers close idle connections at once, answer requests in progress
 * with "Connection: close", give a head still arriving one second
 * (STOP_HEAD_MS, then 408), and force-close whatever is left when the
 * grace runs out: bounded in time.
 *
 * Secrets.  Request buffers (Cookie headers), bodies and the output
 * buffer (session IDs in answers) are wiped before they are reused or
 * freed.
 */
#include "server.h"
#include "../common/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "access_log.h"
#include "events.h"
#include "http.h"
#include "http_conn.h"
#include "metrics.h"
#include "otlp.h"
#include "routes.h"
#include "trace.h"

#define SWEEP_MS 250u
#define LINGER_MS 2000u
#define LINGER_BYTES (256u * 1024u)
/* Stop parsing pipelined requests while this much output waits. */
#define OUT_HIGH (64u * 1024u)
#define EVENTS_MAX 256
#define IP_BUCKETS 4096u

typedef struct worker worker;

typedef struct conn {
    int fd;
    worker *w;
    struct conn *prev, *next;
    sessiond_hconn hc;
    char peer[INET6_ADDRSTRLEN];
    bool is_unix;
    bool ip_counted;            /* holds a slot in the per-address table */
    uint8_t ip[16];             /* IPv4 in the first 4 bytes */
    bool ip_v6;
    bool closing;               /* close once the output is written */
    bool lingering;
    bool eof;                   /* the peer shut its write side */
    bool want_out;              /* registered for EPOLLOUT */
    char *out;
    size_t out_len, out_off, out_cap;
    uint64_t idle_since, msg_start, body_start, write_since, linger_until;
    size_t linger_read;
} conn;

typedef struct handoff {
    int fd;
    char peer[INET6_ADDRSTRLEN];
    bool is_unix;
    bool ip_counted;
    bool ip_v6;
    uint8_t ip[16];
} handoff;

typedef struct ip_entry {
    struct ip_entry *next;
    uint8_t ip[16];
    bool v6;
    uint32_t count;
} ip_entry;

struct worker {
    sessiond_server *srv;
    pthread_t thread;
    int ep;
    int evfd;
    pthread_mutex_t qlock;
    handoff *queue;
    size_t qlen, qcap;
    conn *conns;                /* doubly linked list */
    size_t nconns;
    uint64_t now;               /* ms, CLOCK_MONOTONIC, per loop */
    uint64_t last_sweep;
};

struct sessiond_server {
    sessiond_app *app;
    char unix_path[256];
    int listen_fd;
    int wake_fd;                /* stops the acceptor */
    pthread_t acceptor;
    bool acceptor_running;
    worker *workers;
    unsigned nworkers;
    unsigned next_worker;
    atomic_uint nconns;         /* admitted and not yet closed */
    atomic_bool stopping;
    atomic_uint_fast64_t stop_deadline;
    pthread_mutex_t iplock;
    ip_entry *ipt[IP_BUCKETS];
};

/* ---- per-address connection counts ------------------------------------- */

static size_t ip_hash(const uint8_t ip[16], bool v6)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < (v6 ? 16u : 4u); i++)
        h = (h ^ ip[i]) * 1099511628211ull;
    return (size_t)(h % IP_BUCKETS);
}

/* Take a slot for "ip"; false when it already has "limit". */
static bool ip_acquire(sessiond_server *srv, const uint8_t ip[16], bool v6,
                       uint32_t limit)
{
    size_t b = ip_hash(ip, v6);
    bool ok = true;
    pthread_mutex_lock(&srv->iplock);
    ip_entry *e = srv->ipt[b];
    while (e != NULL && (e->v6 != v6 || memcmp(e->ip, ip, v6 ? 16 : 4) != 0))
        e = e->next;
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            ok = false;
        } else {
            memcpy(e->ip, ip, 16);
            e->v6 = v6;
            e->next = srv->ipt[b];
            srv->ipt[b] = e;
        }
    }
    if (ok && e->count >= limit)
        ok = false;
    if (ok)
        e->count++;
    pthread_mutex_unlock(&srv->iplock);
    return ok;
}

static void ip_release(sessiond_server *srv, const uint8_t ip[16], bool v6)
{
    size_t b = ip_hash(ip, v6);
    pthread_mutex_lock(&srv->iplock);
    for (ip_entry **pp = &srv->ipt[b]; *pp != NULL; pp = &(*pp)->next) {
        ip_entry *e = *pp;
        if (e->v6 == v6 && memcmp(e->ip, ip, v6 ? 16 : 4) == 0) {
            if (--e->count == 0) {
                *pp = e->next;
                free(e);
            }
            break;
        }
    }
    pthread_mutex_unlock(&srv->iplock);
}

/* ---- peer address -------------------------------------------------------- */

/* Dotted-quad text of an IPv4 address ("buf" >= INET_ADDRSTRLEN).  Every
 * request needs its peer as text, and glibc's inet_ntop formats IPv4
 * through sprintf, which showed in forward-auth profiles; it is computed
 * once per connection. */
static void ipv4_text(const uint8_t a[4], char *buf)
{
    char *p = buf;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

static void peer_of(const struct sockaddr_storage *ss, handoff *h)
{
    h->peer[0] = '\0';
    h->is_unix = false;
    h->ip_v6 = false;
    memset(h->ip, 0, sizeof(h->ip));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        memcpy(h->ip, &in->sin_addr, 4);
        ipv4_text(h->ip, h->peer);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(h->ip, &in6->sin6_addr.s6_addr[12], 4);
            ipv4_text(h->ip, h->peer);
        } else {
            memcpy(h->ip, &in6->sin6_addr, 16);
            h->ip_v6 = true;
            inet_ntop(AF_INET6, &in6->sin6_addr, h->peer, sizeof(h->peer));
        }
    } else {
        h->is_unix = true;
    }
}

static bool is_loopback(const handoff *h)
{
    static const uint8_t v6_lo[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0, 1};
    return h->ip_v6 ? memcmp(h->ip, v6_lo, 16) == 0 : h->ip[0] == 127;
}

/* ---- writing answers ------------------------------------------------------ */

static const struct {
    unsigned status;
    const char *reason;
} reasons[] = {
    {100, "Continue"}, {200, "OK"}, {201, "Created"}, {204, "No Content"},
    {304, "Not Modified"}, {400, "Bad Request"}, {401, "Unauthorized"},
    {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
    {408, "Request Timeout"}, {409, "Conflict"}, {411, "Length Required"},
    {413, "Content Too Large"}, {414, "URI Too Long"},
    {415, "Unsupported Media Type"}, {417, "Expectation Failed"},
    {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"}, {501, "Not Implemented"},
    {503, "Service Unavailable"}, {505, "HTTP Version Not Supported"},
};

static const char *reason_of(unsigned status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* "Date: ..." formatted once a second per thread. */
static const char *date_text(size_t *len)
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[48];
    static __thread size_t cached_len;
    time_t t = time(NULL);
    if (t != cached_sec) {
        struct tm tm;
        gmtime_r(&t, &tm);
        cached_len = strftime(cached, sizeof(cached),
                              "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        cached_sec = t;
    }
    *len = cached_len;
    return cached;
}

typedef struct outbuf {
    char *p;
    size_t len, cap;
    bool failed;
} outbuf;

static void ob_put(outbuf *ob, const char *s, size_t n)
{
    if (ob->failed)
        return;
    if (ob->len + n > ob->cap) {
        size_t cap = ob->cap == 0 ? 1024 : ob->cap;
        while (cap < ob->len + n)
            cap *= 2;
        char *np = malloc(cap);
        if (np == NULL) {
            ob->failed = true;
            return;
        }
        /* Copy rather than realloc, so the old block can be wiped. */
        if (ob->p != NULL) {
            memcpy(np, ob->p, ob->len);
            sess_wipe(ob->p, ob->cap);
            free(ob->p);
        }
        ob->p = np;
        ob->cap = cap;
    }
    memcpy(ob->p + ob->len, s, n);
    ob->len += n;
}

static void ob_str(outbuf *ob, const char *s)
{
    ob_put(ob, s, strlen(s));
}

static void ob_uint(outbuf *ob, unsigned long long v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    ob_put(ob, d + i, sizeof(d) - i);
}

typedef struct answer {
    unsigned status;
    const char *content_type;
    const char *body;
    size_t body_len;
    const sessiond_http_header *headers;
    size_t n_headers;
    bool head_only;             /* HEAD: headers of the GET, no body */
    bool close;                 /* Connection: close */
    bool keep_alive_10;         /* HTTP/1.0 keep-alive: say so */
    const char *trace_id;       /* X-Trace-Id (32 lowercase hex) or NULL */
} answer;

static void put_answer(outbuf *ob, const answer *a)
{
    size_t dl;
    const char *date = date_text(&dl);
    bool no_length = a->status < 200 || a->status == 204 || a->status == 304;

    ob_str(ob, "HTTP/1.1 ");
    ob_uint(ob, a->status);
    ob_put(ob, " ", 1);
    ob_str(ob, reason_of(a->status));
    ob_put(ob, "\r\n", 2);
    ob_put(ob, date, dl);
    if (a->content_type != NULL) {
        ob_str(ob, "Content-Type: ");
        ob_str(ob, a->content_type);
        ob_put(ob, "\r\n", 2);
    }
    if (!no_length) {
        ob_str(ob, "Content-Length: ");
        ob_uint(ob, a->body_len);
        ob_put(ob, "\r\n", 2);
    }
    /* Answers carry session state: no shared cache may keep them, unless
     * the handler says otherwise itself (the public JWKS). */
    bool own_cache_control = false;
    for (size_t i = 0; i < a->n_headers; i++)
        if (strcasecmp(a->headers[i].name, "Cache-Control") == 0)
            own_cache_control = true;
    if (!own_cache_control)
        ob_str(ob, "Cache-Control: no-store\r\n");
    /* Our own lowercase hex (trace.c), so the proxy can log it. */
    if (a->trace_id != NULL) {
        ob_str(ob, "X-Trace-Id: ");
        ob_str(ob, a->trace_id);
        ob_put(ob, "\r\n", 2);
    }
    for (size_t i = 0; i < a->n_headers; i++) {
        const char *v = a->headers[i].value;
        /* Response splitting: a value never ends the header line. */
        if (strpbrk(v, "\r\n") != NULL) {
            sessiond_log(SESSIOND_LOG_WARN, "http: header %s dropped (CR/LF)",
                         a->headers[i].name);
            continue;
        }
        ob_str(ob, a->headers[i].name);
        ob_put(ob, ": ", 2);
        ob_str(ob, v);
        ob_put(ob, "\r\n", 2);
    }
    if (a->close)
        ob_str(ob, "Connection: close\r\n");
    else if (a->keep_alive_10)
        ob_str(ob, "Connection: keep-alive\r\n");
    ob_put(ob, "\r\n", 2);
    if (!no_length && !a->head_only && a->body_len > 0)
        ob_put(ob, a->body, a->body_len);
}

/* A refusal: {"error":CODE,"message":TEXT}; codes and messages are static
 * ASCII without quotes or backslashes (http_conn.c), so no escaping. */
static void put_refusal(outbuf *ob, const sessiond_refusal *r)
{
    char body[320];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}",
                     r->code, r->message);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = 0;
    answer a = {.status = r->status, .content_type = "application/json",
                .body = body, .body_len = (size_t)n, .close = true};
    put_answer(ob, &a);
}

/* ---- connections ---------------------------------------------------------- */

static void conn_out(conn *c, outbuf *ob)
{
    c->out = ob->p;
    c->out_len = ob->len;
    c->out_cap = ob->cap;
}

static outbuf conn_ob(conn *c)
{
    outbuf ob = {c->out, c->out_len, c->out_cap, false};
    return ob;
}

static void conn_close(conn *c)
{
    worker *w = c->w;
    sessiond_server *srv = w->srv;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    if (c->ip_counted)
        ip_release(srv, c->ip, c->ip_v6);
    atomic_fetch_sub(&srv->nconns, 1);
    sessiond_hconn_free(&c->hc);
    if (c->out != NULL) {
        sess_wipe(c->out, c->out_cap);
        free(c->out);
    }
    free(c);
}

static void set_events(conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Output is written and the connection must end: shut our side, then read
 * and discard until the peer closes (or LINGER_MS), so that the kernel
 * never answers the peer's late bytes with an RST that would destroy the
 * answer it has not read yet. */
static void start_linger(conn *c)
{
    c->lingering = true;
    c->linger_until = c->w->now + LINGER_MS;
    c->linger_read = 0;
    shutdown(c->fd, SHUT_WR);
    sessiond_hconn_free(&c->hc);
    if (c->want_out) {
        c->want_out = false;
        set_events(c, EPOLLIN);
    }
}

static void linger_read(conn *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n > 0) {
            c->linger_read += (size_t)n;
            if (c->linger_read > LINGER_BYTES) {
                conn_close(c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c);      /* EOF or error */
        return;
    }
}

/* Write what waits.  Returns false when the connection was closed. */
static bool flush_out(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                c->want_out = true;
                c->write_since = c->w->now;
                set_events(c, EPOLLOUT);
            }
            return true;
        }
        conn_close(c);
        return false;
    }
    sess_wipe(c->out, c->out_len);   /* answers may hold session IDs */
    c->out_len = c->out_off = 0;
    if (c->closing) {
        start_linger(c);
        return true;
    }
    if (c->want_out) {
        c->want_out = false;
        set_events(c, EPOLLIN);
    }
    return true;
}

static void refuse_conn(conn *c, const sessiond_refusal *r)
{
    outbuf ob = conn_ob(c);
    put_refusal(&ob, r);
    conn_out(c, &ob);
    c->closing = true;
    sessiond_metrics_refused((unsigned)r->reason);
}

static size_t header_all(void *hcp, const char *name, const char **out,
                         size_t max)
{
    const sessiond_hconn *hc = hcp;
    size_t n = 0;
    if (max == 0)
        return 0;
    for (size_t i = 0; i < hc->n_fields; i++) {
        if (strcasecmp(hc->names[i], name) != 0)
            continue;
        if (n < max) {
            out[n++] = hc->values[i];
        } else {
            /* Keep the last "max": the rightmost entries are the ones our
             * own proxies added. */
            memmove(out, out + 1, (max - 1) * sizeof(*out));
            out[max - 1] = hc->values[i];
        }
    }
    return n;
}

static const char *query_arg(void *hcp, const char *name)
{
    const sessiond_hconn *hc = hcp;
    for (size_t i = 0; i < hc->n_query; i++)
        if (strcmp(hc->qkeys[i], name) == 0)
            return hc->qvals[i];
    return NULL;
}

static void serve(conn *c)
{
    sessiond_server *srv = c->w->srv;
    sessiond_hconn *hc = &c->hc;
    uint64_t t0 = clock_mono_ns();
    sessiond_http_req req;
    sessiond_http_resp resp;
    char allow[48];
    sessiond_trace trace;
    const char *tp[2];

    memset(&req, 0, sizeof(req));
    sessiond_hconn_request(hc, &req);
    req.peer_ip = c->peer;
    req.peer_unix = c->is_unix;
    req.header = sessiond_hconn_header;
    req.header_all = header_all;
    req.query = query_arg;
    long route = sessiond_route_match(req.method, req.path, req.path_len, &req,
                                      allow, sizeof(allow));
    /* Trace context (trace.h): several traceparent fields are invalid;
     * several tracestate fields we do not join, we drop them. */
    size_t ntp = header_all(hc, "traceparent", tp, 2);
    const char *ts[2];
    size_t nts = header_all(hc, "tracestate", ts, 2);
    sessiond_trace_begin(&trace, ntp > 0 ? tp[0] : NULL, ntp,
                         nts == 1 ? ts[0] : NULL);
    trace.route = route >= 0 ? sessiond_route_at((size_t)route)->pattern : NULL;
    sessiond_resp_init(&resp);
    sessiond_dispatch(srv->app, route, allow, &req,
                      sessiond_hconn_header(hc, "Content-Type"), &resp);
    sessiond_outcome outcome = sessiond_trace_finish(&trace, resp.status);

    bool closing = !hc->keep_alive || atomic_load(&srv->stopping);
    answer a = {
        .status = resp.status,
        .content_type = resp.content_type,
        .body = resp.body != NULL ? resp.body : resp.static_body,
        .body_len = resp.body_len,
        .headers = resp.headers,
        .n_headers = resp.n_headers,
        .head_only = hc->is_head,
        .close = closing,
        .keep_alive_10 = !closing && hc->parser.http_minor == 0,
        .trace_id = trace.trace_hex,
    };
    outbuf ob = conn_ob(c);
    put_answer(&ob, &a);
    conn_out(c, &ob);
    uint64_t took = clock_mono_ns() - t0;
    sessiond_metrics_observe(route >= 0 ? (size_t)route
                                        : sessiond_routes_count(),
                             resp.status, outcome, took);
    /* Spans and the access log hold no path, query or header: the route
     * pattern, the status and the outcome (docs/observability.md). */
    if (trace.sampled)
        sessiond_otlp_request_end(&trace, req.method, took);
    if (sessiond_access_log_enabled())
        sessiond_access_log_write(&trace, req.method, c->is_unix ? "unix" : c->peer,
                                  took);
    sessiond_resp_release(&resp);
    sessiond_trace_end();
    if (ob.failed) {
        c->out_len = c->out_off = 0;
        c->closing = true;
    }
    if (closing)
        c->closing = true;
    sessiond_hconn_request_done(hc);
    c->msg_start = c->body_start = 0;
    c->idle_since = c->w->now;
}

/* Run the parser over what was read and answer every complete request. */
static void process(conn *c)
{
    while (!c->closing && c->out_len < OUT_HIGH) {
        sessiond_hconn_event ev = sessiond_hconn_run(&c->hc);
        if (ev == HCONN_NEED_MORE) {
            if (sessiond_hconn_busy(&c->hc) && c->msg_start == 0)
                c->msg_start = c->w->now;
            if (sessiond_hconn_in_body(&c->hc) && c->body_start == 0)
                c->body_start = c->w->now;
            return;
        }
        if (ev == HCONN_CONTINUE) {
            outbuf ob = conn_ob(c);
            ob_str(&ob, "HTTP/1.1 100 Continue\r\n\r\n");
            conn_out(c, &ob);
            continue;
        }
        if (ev == HCONN_REFUSE) {
            refuse_conn(c, &c->hc.refusal);
            return;
        }
        serve(c);
    }
}

/* Answer, write, and go on while pipelined requests wait in the buffer
 * (process() stops at OUT_HIGH bytes of output). */
static void pump(conn *c)
{
    for (;;) {
        process(c);
        if (!flush_out(c) || c->lingering || c->want_out || c->closing)
            return;
        if (c->hc.len <= c->hc.fed)
            return;
    }
}

static void on_readable(conn *c)
{
    for (int round = 0; round < 4; round++) {
        size_t avail = 0;
        char *space = sessiond_hconn_space(&c->hc, &avail);
        if (space == NULL) {
            conn_close(c);      /* out of memory */
            return;
        }
        if (avail == 0)
            break;              /* the head is at its limit: run() refuses */
        ssize_t n = recv(c->fd, space, avail, 0);
        if (n > 0) {
            if (!sessiond_hconn_busy(&c->hc) && c->msg_start == 0)
                c->msg_start = c->w->now;
            sessiond_hconn_commit(&c->hc, (size_t)n);
            if ((size_t)n < avail)
                break;
            continue;
        }
        if (n == 0) {
            c->eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        conn_close(c);
        return;
    }
    if (!c->eof) {
        pump(c);
        return;
    }
    /* The peer is done sending: answer what it sent, then close.  A
     * request cut short gets nothing (there is nobody to read it). */
    process(c);
    c->closing = true;
    if (c->out_len == 0) {
        conn_close(c);
        return;
    }
    flush_out(c);
}

static void on_event(conn *c, uint32_t ev)
{
    if (c->lingering) {
        linger_read(c);
        return;
    }
    if (c->want_out) {
        if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
            return;
        if (!flush_out(c) || c->lingering || c->want_out)
            return;
        /* Drained: answer what was pipelined meanwhile. */
        pump(c);
        return;
    }
    on_readable(c);
}

static void add_conn(worker *w, const handoff *h)
{
    sessiond_server *srv = w->srv;
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(h->fd);
        if (h->ip_counted)
            ip_release(srv, h->ip, h->ip_v6);
        atomic_fetch_sub(&srv->nconns, 1);
        return;
    }
    c->fd = h->fd;
    c->w = w;
    memcpy(c->peer, h->peer, sizeof(c->peer));
    c->is_unix = h->is_unix;
    c->ip_counted = h->ip_counted;
    c->ip_v6 = h->ip_v6;
    memcpy(c->ip, h->ip, sizeof(c->ip));
    sessiond_hconn_init(&c->hc, srv->app->cfg->max_body_bytes);
    c->idle_since = w->now;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &e) != 0)
        conn_close(c);
}

/* A request head still arriving when the stop begins gets this long. */
#define STOP_HEAD_MS 1000u

/* The deadline of "c"'s phase (see the top of the file). */
static void sweep(worker *w)
{
    const sessiond_config *cfg = w->srv->app->cfg;
    bool stopping = atomic_load(&w->srv->stopping);
    uint64_t now = w->now;
    uint64_t idle_ms = (uint64_t)cfg->connection_timeout * 1000u;
    conn *next;
    for (conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->lingering) {
            if (now >= c->linger_until)
                conn_close(c);
            continue;
        }
        if (c->out_len > c->out_off) {
            if (now - c->write_since >= idle_ms)
                conn_close(c);
            continue;
        }
        if (sessiond_hconn_in_body(&c->hc) && c->body_start != 0) {
            if (now - c->body_start >= (uint64_t)cfg->body_timeout * 1000u)
                goto timeout;
            continue;
        }
        if (sessiond_hconn_busy(&c->hc) && c->msg_start != 0) {
            /* While stopping, a head still arriving gets STOP_HEAD_MS, not
             * the whole header_timeout: a slow or stalled client must not
             * hold the stop for the full grace. */
            uint64_t head_ms = (uint64_t)cfg->header_timeout * 1000u;
            if (stopping && head_ms > STOP_HEAD_MS)
                head_ms = STOP_HEAD_MS;
            if (now - c->msg_start >= head_ms)
                goto timeout;
            continue;
        }
        /* Idle keep-alive. */
        if (stopping || now - c->idle_since >= idle_ms)
            conn_close(c);
        continue;
    timeout: {
            sessiond_refusal r;
            sessiond_hconn_refusal_for(&r, SESSIOND_REFUSE_TIMEOUT);
            refuse_conn(c, &r);
            flush_out(c);
        }
    }
}

static void take_queue(worker *w)
{
    uint64_t v;
    ssize_t r = read(w->evfd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&w->qlock);
    handoff *q = w->queue;
    size_t n = w->qlen;
    w->queue = NULL;
    w->qlen = w->qcap = 0;
    pthread_mutex_unlock(&w->qlock);
    for (size_t i = 0; i < n; i++)
        add_conn(w, &q[i]);
    free(q);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    sessiond_server *srv = w->srv;
    struct epoll_event evs[EVENTS_MAX];

    w->now = clock_mono_ms();
    w->last_sweep = w->now;
    for (;;) {
        int n = epoll_wait(w->ep, evs, EVENTS_MAX, (int)SWEEP_MS);
        w->now = clock_mono_ms();
        if (n < 0 && errno != EINTR) {
            sessiond_log(SESSIOND_LOG_ERROR, "http: epoll_wait: %s",
                         strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                take_queue(w);
            else
                on_event(evs[i].data.ptr, evs[i].events);
        }
        bool stopping = atomic_load(&srv->stopping);
        if (stopping || w->now - w->last_sweep >= SWEEP_MS) {
            w->last_sweep = w->now;
            sweep(w);
        }
        if (stopping) {
            if (w->conns == NULL)
                break;
            if (w->now >= atomic_load(&srv->stop_deadline))
                break;
        }
    }
    /* Whatever is left after the grace is closed. */
    while (w->conns != NULL)
        conn_close(w->conns);
    take_queue(w);      /* handed over during the stop */
    while (w->conns != NULL)
        conn_close(w->conns);
    return NULL;
}

/* ---- the acceptor --------------------------------------------------------- */

/* Refuse a new connection without blocking: the 503 goes into the empty
 * socket buffer (or is dropped), bytes already sent are drained so the
 * close is a FIN, not an RST. */
static void refuse_new(int fd, sessiond_refusal_reason reason)
{
    sessiond_refusal r;
    outbuf ob = {0};
    char sink[2048];
    sessiond_hconn_refusal_for(&r, reason);
    put_refusal(&ob, &r);
    if (!ob.failed)
        (void)send(fd, ob.p, ob.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    free(ob.p);
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 8; i++)
        if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
            break;
    close(fd);
    sessiond_metrics_refused((unsigned)reason);
}

static void hand_over(sessiond_server *srv, const handoff *h)
{
    worker *w = &srv->workers[srv->next_worker];
    srv->next_worker = (srv->next_worker + 1) % srv->nworkers;
    pthread_mutex_lock(&w->qlock);
    bool wake = w->qlen == 0;
    if (w->qlen == w->qcap) {
        size_t cap = w->qcap == 0 ? 64 : w->qcap * 2;
        handoff *nq = realloc(w->queue, cap * sizeof(*nq));
        if (nq == NULL) {
            pthread_mutex_unlock(&w->qlock);
            close(h->fd);
            if (h->ip_counted)
                ip_release(srv, h->ip, h->ip_v6);
            atomic_fetch_sub(&srv->nconns, 1);
            return;
        }
        w->queue = nq;
        w->qcap = cap;
    }
    w->queue[w->qlen++] = *h;
    pthread_mutex_unlock(&w->qlock);
    if (wake) {
        uint64_t one = 1;
        ssize_t r = write(w->evfd, &one, sizeof(one));
        (void)r;
    }
}

static void admit(sessiond_server *srv, int fd, const struct sockaddr_storage *ss)
{
    const sessiond_config *cfg = srv->app->cfg;
    handoff h;
    h.fd = fd;
    peer_of(ss, &h);
    h.ip_counted = false;
    if (atomic_load(&srv->nconns) >= cfg->max_connections) {
        refuse_new(fd, SESSIOND_REFUSE_CONN_LIMIT);
        return;
    }
    bool exempt = h.is_unix || cfg->max_connections_per_ip == 0 ||
                  (!cfg->limit_loopback && is_loopback(&h)) ||
                  (!cfg->limit_trusted_proxies &&
                   sessiond_config_is_trusted_proxy(cfg, h.peer));
    if (!exempt) {
        if (!ip_acquire(srv, h.ip, h.ip_v6, cfg->max_connections_per_ip)) {
            refuse_new(fd, SESSIOND_REFUSE_PER_IP_LIMIT);
            return;
        }
        h.ip_counted = true;
    }
    atomic_fetch_add(&srv->nconns, 1);
    hand_over(srv, &h);
}

static void *acceptor_main(void *arg)
{
    sessiond_server *srv = arg;
    struct pollfd pfd[2] = {{srv->listen_fd, POLLIN, 0},
                            {srv->wake_fd, POLLIN, 0}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            sessiond_log(SESSIOND_LOG_ERROR, "http: acceptor poll: %s",
                         strerror(errno));
            break;
        }
        if (pfd[1].revents)
            break;
        for (int i = 0; i < 1024; i++) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int c = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sl,
                            SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                    errno == ENOMEM) {
                    /* Out of descriptors: let connections close first
                     * (poll below still sees the wake eventfd). */
                    sessiond_log(SESSIOND_LOG_WARN, "http: accept: %s",
                                 strerror(errno));
                    poll(&pfd[1], 1, 10);
                }
                break;              /* EAGAIN: all taken */
            }
            if (sl == 0)
                ss.ss_family = AF_UNIX;
            admit(srv, c, &ss);
        }
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

static void free_server(sessiond_server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        worker *w = &srv->workers[i];
        if (w->ep >= 0)
            close(w->ep);
        if (w->evfd >= 0)
            close(w->evfd);
        pthread_mutex_destroy(&w->qlock);
        free(w->queue);
    }
    free(srv->workers);
    for (size_t b = 0; b < IP_BUCKETS; b++) {
        ip_entry *e = srv->ipt[b];
        while (e != NULL) {
            ip_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    pthread_mutex_destroy(&srv->iplock);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    free(srv);
}

static void stop_workers(sessiond_server *srv, unsigned started,
                         unsigned grace_ms)
{
    atomic_store(&srv->stop_deadline, clock_mono_ms() + grace_ms);
    atomic_store(&srv->stopping, true);
    for (unsigned i = 0; i < started; i++) {
        uint64_t one = 1;
        ssize_t r = write(srv->workers[i].evfd, &one, sizeof(one));
        (void)r;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(srv->workers[i].thread, NULL);
}

int sessiond_server_start(sessiond_app *app, int fd, const char *unix_path,
                          sessiond_server **out, char *err, size_t errlen)
{
    sessiond_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->app = app;
    srv->listen_fd = fd;
    srv->wake_fd = -1;
    atomic_init(&srv->nconns, 0);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->stop_deadline, 0);
    pthread_mutex_init(&srv->iplock, NULL);
    if (unix_path != NULL)
        snprintf(srv->unix_path, sizeof(srv->unix_path), "%s", unix_path);

    unsigned threads = app->cfg->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    srv->workers = calloc(threads, sizeof(*srv->workers));
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->workers == NULL || srv->wake_fd < 0) {
        snprintf(err, errlen, "cannot set up the HTTP server: %s",
                 strerror(errno));
        srv->nworkers = 0;
        free_server(srv);
        return -1;
    }
    srv->nworkers = threads;
    for (unsigned i = 0; i < threads; i++) {
        worker *w = &srv->workers[i];
        w->srv = srv;
        pthread_mutex_init(&w->qlock, NULL);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        if (w->ep < 0 || w->evfd < 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &e) != 0) {
            snprintf(err, errlen, "cannot set up the HTTP workers: %s",
                     strerror(errno));
            for (unsigned k = i + 1; k < threads; k++) {
                srv->workers[k].ep = srv->workers[k].evfd = -1;
                pthread_mutex_init(&srv->workers[k].qlock, NULL);
            }
            stop_workers(srv, i, 0);
            free_server(srv);
            return -1;
        }
    }
    for (unsigned i = 0; i < threads; i++) {
        int prc = pthread_create(&srv->workers[i].thread, NULL, worker_main,
                                 &srv->workers[i]);
        if (prc != 0) {
            snprintf(err, errlen, "cannot start an HTTP worker: %s",
                     strerror(prc));
            stop_workers(srv, i, 0);
            free_server(srv);
            return -1;
        }
    }
    int prc = pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
    if (prc != 0) {
        snprintf(err, errlen, "cannot start the acceptor thread: %s",
                 strerror(prc));
        stop_workers(srv, threads, 0);
        free_server(srv);
        return -1;
    }
    srv->acceptor_running = true;
    *out = srv;
    return 0;
}

void sessiond_server_stop(sessiond_server *srv, unsigned grace_ms)
{
    if (srv == NULL)
        return;
    /* Stop accepting: new connections are refused by the kernel while
     * the old ones finish. */
    if (srv->acceptor_running) {
        uint64_t one = 1;
        ssize_t w = write(srv->wake_fd, &one, sizeof(one));
        (void)w;
        pthread_join(srv->acceptor, NULL);
        srv->acceptor_running = false;
    }
    close(srv->listen_fd);
    srv->listen_fd = -1;
    if (srv->unix_path[0] != '\0')
        unlink(srv->unix_path);
    stop_workers(srv, srv->nworkers, grace_ms);
    free_server(srv);
}
