/*
 * server.c - libmicrohttpd glue: one epoll-driven thread pool, keep-alive,
 * bounded connections, and the per-request state between the calls of
 * the access handler.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * when the headers are in (we allocate the request state, match the route
 * and set *con_cls), once per piece of body (we append it, up to
 * server.max_body_bytes), and once more with no data, when we answer.
 * Answering on that later call, never the first, matters for throughput:
 * a response queued on the first call makes libmicrohttpd close the
 * connection (measured: 70k vs 20k requests/s).  The one exception is a
 * body announced larger than allowed (Content-Length): we answer 413 at
 * once and let the connection close instead of reading the body.
 *
 * Bounds: the connection memory limit bounds the request line and headers
 * (libmicrohttpd answers 414/431 itself), SESSIOND_URL_MAX bounds the path
 * we route, and bodies are capped by server.max_body_bytes.
 *
 * Paths are routed undecoded (MHD_OPTION_UNESCAPE_CALLBACK is the
 * identity), so "/v1/users/a%2Fb/sessions" names the user "a/b" rather
 * than an unknown route; handlers decode their parameters themselves.
 *
 * Per-request state belongs to the request's connection thread; the only
 * shared counter is "inflight" (an atomic) used by the graceful stop.
 * Bodies may hold session IDs and are wiped before they are freed.
 *
 * Accepting.  With a pool, one acceptor thread of ours accepts every
 * connection and hands it to libmicrohttpd (MHD_add_connection), which
 * places it on a worker by its descriptor: the workers get the same share.
 * Left to themselves, the workers each watched the listening socket and
 * whichever woke first took the whole burst: in measurements one worker
 * often served all 64 connections of a client while the other slept
 * (forward-auth 84k instead of 98k req/s; create limited to one core).
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "events.h"
#include "http.h"
#include "metrics.h"
#include "routes.h"

/* Request line and headers must fit; libmicrohttpd answers 431 beyond.
 * It also zeroes this pool for every keep-alive request, so it is no
 * larger than needed (48 KiB cost 2.6% of forward-auth CPU).
 * Large enough for a full Cookie header (SESS_COOKIE_HEADER_MAX). */
#define CONNECTION_MEMORY (32u * 1024u)

struct sessiond_server {
    struct MHD_Daemon *daemon;
    sessiond_app *app;
    atomic_long inflight;
    char unix_path[256];
    int listen_fd;              /* ours when the acceptor runs, else -1 */
    int wake_fd;                /* eventfd that stops the acceptor */
    pthread_t acceptor;
    bool acceptor_running;
};

typedef struct request_state {
    uint64_t t0;            /* CLOCK_MONOTONIC nanoseconds */
    long route;             /* index, or -404 / -405 */
    char allow[48];
    char *body;
    size_t len;
    size_t cap;
    bool too_large;
    bool answered;
} request_state;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- request accessors for handlers ------------------------------------ */

static const char *get_header(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static const char *get_query(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct header_collect {
    const char *name;
    const char **out;
    size_t max;
    size_t n;
} header_collect;

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value)
{
    header_collect *hc = cls;
    (void)kind;
    if (key != NULL && value != NULL && strcasecmp(key, hc->name) == 0) {
        if (hc->n < hc->max) {
            hc->out[hc->n++] = value;
        } else {
            /* Keep the last "max": the rightmost entries are the ones
             * our own proxies added. */
            memmove(hc->out, hc->out + 1, (hc->max - 1) * sizeof(*hc->out));
            hc->out[hc->max - 1] = value;
        }
    }
    return MHD_YES;
}

static size_t get_header_all(void *conn, const char *name, const char **out,
                             size_t max)
{
    header_collect hc = {name, out, max, 0};
    if (max == 0)
        return 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, &hc);
    return hc.n;
}

/* ---- answering ---------------------------------------------------------- */

static void free_wiped(void *p)
{
    if (p == NULL)
        return;
    sess_wipe(p, strlen(p));
    free(p);
}

static enum MHD_Result send_response(sessiond_server *srv,
                                     struct MHD_Connection *conn,
                                     request_state *st,
                                     sessiond_http_resp *resp)
{
    struct MHD_Response *r;
    enum MHD_Result ok = MHD_NO;
    (void)srv;

    if (resp->body != NULL) {
        r = MHD_create_response_from_buffer_with_free_callback(
            resp->body_len, resp->body, resp->secret ? free_wiped : free);
        if (r != NULL)
            resp->body = NULL;      /* now owned by the response */
    } else {
        r = MHD_create_response_from_buffer(
            resp->body_len, (void *)(resp->static_body != NULL
                                         ? resp->static_body : ""),
            MHD_RESPMEM_PERSISTENT);
    }
    if (r == NULL)
        goto cleanup;
    if (resp->content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type);
    /* Answers carry session state: no shared cache may keep them. */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (MHD_add_response_header(r, resp->headers[i].name,
                                    resp->headers[i].value) != MHD_YES)
            sessiond_log(SESSIOND_LOG_WARN, "cannot add header %s",
                         resp->headers[i].name);
    }
    ok = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    st->answered = true;
    sessiond_metrics_observe(st->route >= 0 ? (size_t)st->route
                                            : sessiond_routes_count(),
                             resp->status, now_ns() - st->t0);
cleanup:
    sessiond_resp_release(resp);
    return ok;
}

/* Dotted-quad text of an IPv4 address ("cap" >= INET_ADDRSTRLEN).  Every
 * request needs its peer as text, and glibc's inet_ntop formats IPv4
 * through sprintf, which showed in forward-auth profiles. */
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

static void peer_address(struct MHD_Connection *conn, char *buf, size_t cap,
                         bool *is_unix)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *is_unix = false;
    buf[0] = '\0';
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    _Static_assert(INET6_ADDRSTRLEN >= INET_ADDRSTRLEN, "peer buffer");
    if (sa->sa_family == AF_INET && cap >= INET_ADDRSTRLEN) {
        ipv4_text((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr,
                  buf);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && cap >= INET_ADDRSTRLEN)
            ipv4_text(&in6->sin6_addr.s6_addr[12], buf);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)cap);
    } else if (sa->sa_family == AF_UNIX) {
        *is_unix = true;
    }
}

static enum MHD_Result answer(sessiond_server *srv,
                              struct MHD_Connection *conn, const char *url,
                              const char *method, request_state *st)
{
    sessiond_http_resp resp;
    char peer[INET6_ADDRSTRLEN];
    bool is_unix = false;

    peer_address(conn, peer, sizeof(peer), &is_unix);
    sessiond_http_req req = {
        .method = method,
        .path = url,
        .path_len = strlen(url),
        .body = st->body,
        .body_len = st->len,
        .body_too_large = st->too_large,
        .peer_ip = peer,
        .peer_unix = is_unix,
        .conn = conn,
        .header = get_header,
        .header_all = get_header_all,
        .query = get_query,
    };
    sessiond_resp_init(&resp);
    if (st->route >= 0)
        sessiond_route_match(method, url, req.path_len, &req, st->allow,
                             sizeof(st->allow));
    sessiond_dispatch(srv->app, st->route, st->allow, &req,
                      get_header(conn, MHD_HTTP_HEADER_CONTENT_TYPE), &resp);
    return send_response(srv, conn, st, &resp);
}

static void body_drop(request_state *st)
{
    if (st->body != NULL) {
        sess_wipe(st->body, st->cap);
        free(st->body);
    }
    st->body = NULL;
    st->len = 0;
    st->cap = 0;
}

/* Append a piece of body; past the limit, drop everything and remember. */
static bool body_append(request_state *st, const char *data, size_t n,
                        uint64_t max)
{
    if (st->too_large)
        return true;
    if ((uint64_t)st->len + n > max) {
        body_drop(st);
        st->too_large = true;
        return true;
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap == 0 ? 1024 : st->cap;
        while (cap < st->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = (size_t)max + 1;
        char *nb = malloc(cap);
        if (nb == NULL)
            return false;
        /* Copy rather than realloc, so the old block can be wiped. */
        if (st->body != NULL) {
            memcpy(nb, st->body, st->len);
            sess_wipe(st->body, st->cap);
            free(st->body);
        }
        st->body = nb;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    sessiond_server *srv = cls;
    request_state *st = *con_cls;
    (void)version;

    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        st->t0 = now_ns();
        atomic_fetch_add(&srv->inflight, 1);
        *con_cls = st;
        sessiond_http_req probe;
        memset(&probe, 0, sizeof(probe));
        st->route = sessiond_route_match(method, url, strlen(url), &probe,
                                         st->allow, sizeof(st->allow));
        /* A body announced too large is refused before it is read. */
        const char *cl = get_header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && sessiond_route_takes_body(st->route)) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno != 0 || end == cl ||
                n > srv->app->cfg->max_body_bytes) {
                st->too_large = true;
                return answer(srv, conn, url, method, st);
            }
        }
        return MHD_YES;
    }
    if (st->answered)
        return MHD_YES;   /* discard the rest of a refused body */
    if (*upload_data_size > 0) {
        bool keep = sessiond_route_takes_body(st->route);
        if (keep && !body_append(st, upload_data, *upload_data_size,
                                 srv->app->cfg->max_body_bytes))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(srv, conn, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
    sessiond_server *srv = cls;
    request_state *st = *con_cls;
    (void)conn;
    (void)toe;
    if (st == NULL)
        return;
    body_drop(st);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
}

/* Route on the raw path: see the comment at the top of the file. */
static size_t keep_escaped(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    sessiond_log(SESSIOND_LOG_DEBUG, "http: %s", msg);
}

/* The acceptor: accept every pending connection and give it to the
 * daemon; sleep in poll() on the listening socket and the wake eventfd. */
static void *acceptor_main(void *arg)
{
    sessiond_server *srv = arg;
    struct pollfd pfd[2] = {{srv->listen_fd, POLLIN, 0}, {srv->wake_fd, POLLIN, 0}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            sessiond_log(SESSIOND_LOG_ERROR, "http: acceptor poll: %s", strerror(errno));
            break;
        }
        if (pfd[1].revents)
            break;
        for (;;) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int c = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sl,
                            SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                    errno == ENOMEM) {
                    /* Out of descriptors: let connections close first. */
                    sessiond_log(SESSIOND_LOG_WARN, "http: accept: %s", strerror(errno));
                    struct timespec ts = {0, 10 * 1000 * 1000};
                    nanosleep(&ts, NULL);
                }
                break;              /* EAGAIN: all taken */
            }
            /* Closes the socket itself when it cannot take it (limit). */
            (void)MHD_add_connection(srv->daemon, c, (const struct sockaddr *)&ss, sl);
        }
    }
    return NULL;
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
    srv->listen_fd = -1;
    srv->wake_fd = -1;
    atomic_init(&srv->inflight, 0);
    if (unix_path != NULL)
        snprintf(srv->unix_path, sizeof(srv->unix_path), "%s", unix_path);

    unsigned threads = app->cfg->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    bool pool = threads > 1;
    if (pool) {
        /* Our acceptor hands out the connections (see the top). */
        srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (srv->wake_fd < 0) {
            close(fd);
            snprintf(err, errlen, "cannot create the acceptor's eventfd: %s",
                     strerror(errno));
            free(srv);
            return -1;
        }
        srv->listen_fd = fd;
        flags |= MHD_USE_NO_LISTEN_SOCKET;
    }
    /* MHD_OPTION_LISTEN_SOCKET comes last but one so that, with our
     * acceptor, the list can end before it (MHD refuses the option
     * together with MHD_USE_NO_LISTEN_SOCKET). */
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,   /* first, to catch all */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(pool ? threads : 0),
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)app->cfg->connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)app->cfg->max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        pool ? MHD_OPTION_END : MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_END);
    if (srv->daemon == NULL) {
        close(fd);
        if (srv->wake_fd >= 0)
            close(srv->wake_fd);
        snprintf(err, errlen, "cannot start the HTTP server");
        free(srv);
        return -1;
    }
    if (pool) {
        int prc = pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
        if (prc != 0) {
            MHD_stop_daemon(srv->daemon);
            close(fd);
            close(srv->wake_fd);
            snprintf(err, errlen, "cannot start the acceptor thread: %s", strerror(prc));
            free(srv);
            return -1;
        }
        srv->acceptor_running = true;
    }
    *out = srv;
    return 0;
}

/* Stop accepting: the acceptor leaves its loop and the listening socket
 * closes, so new connections are refused while the old ones finish. */
static void stop_accepting(sessiond_server *srv)
{
    if (srv->acceptor_running) {
        uint64_t one = 1;
        ssize_t w = write(srv->wake_fd, &one, sizeof(one));
        (void)w;
        pthread_join(srv->acceptor, NULL);
        srv->acceptor_running = false;
        close(srv->listen_fd);
        close(srv->wake_fd);
        srv->listen_fd = srv->wake_fd = -1;
        return;
    }
    MHD_socket lfd = MHD_quiesce_daemon(srv->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
}

void sessiond_server_stop(sessiond_server *srv, unsigned grace_ms)
{
    if (srv == NULL)
        return;
    stop_accepting(srv);
    if (srv->unix_path[0] != '\0')
        unlink(srv->unix_path);
    /* Requests already read finish; idle keep-alive connections are
     * closed by MHD_stop_daemon below. */
    for (unsigned waited = 0;
         atomic_load(&srv->inflight) > 0 && waited < grace_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
