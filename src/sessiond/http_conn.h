/*
 * http_conn.h - the per-connection HTTP/1.x request reader: a byte buffer,
 * the http_parser state (nodejs http_parser, strict mode) and the
 * strictness gate, with no socket in sight.
 *
 * The owner (server.c, or fuzz/fuzz_http.c) appends bytes it read with
 * sessiond_hconn_space() / sessiond_hconn_commit(), then calls
 * sessiond_hconn_run() until it returns HCONN_NEED_MORE.  Each call yields
 * one decision:
 *
 *   HCONN_NEED_MORE  every byte is parsed; read more (or wait)
 *   HCONN_CONTINUE   the head asked "Expect: 100-continue" and the body
 *                    will be accepted: send "HTTP/1.1 100 Continue"
 *   HCONN_REQUEST    a complete request: see sessiond_hconn_request();
 *                    answer it, then call sessiond_hconn_request_done()
 *   HCONN_REFUSE     the bytes are not a request we serve: answer
 *                    hc->refusal (status, code, message), then close
 *
 * Limits: the head (request line, header lines and the blank line, CRLFs
 * included) is at most SESSIOND_HEAD_MAX bytes; a body at most
 * "max_body" bytes (Content-Length or the chunked body so far).
 */
#ifndef SESSIOND_HTTP_CONN_H
#define SESSIOND_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "http.h"

/* The documented header capacity: a head of exactly this many bytes is
 * served, one more byte is 431 (docs/configuration.md). */
#define SESSIOND_HEAD_MAX (32u * 1024u)
/* Header lines per request; more is 431. */
#define SESSIOND_HEADERS_MAX 64
/* Query arguments we split; more is 400. */
#define SESSIOND_QUERY_MAX 16

typedef enum sessiond_hconn_event {
    HCONN_NEED_MORE,
    HCONN_CONTINUE,
    HCONN_REQUEST,
    HCONN_REFUSE
} sessiond_hconn_event;

/* Why a connection was refused; indexes the metric of refusals. */
typedef enum sessiond_refusal_reason {
    SESSIOND_REFUSE_BAD_REQUEST,      /* 400: framing, syntax, Host */
    SESSIOND_REFUSE_HEAD_TOO_LARGE,   /* 431 / 414 */
    SESSIOND_REFUSE_BODY_TOO_LARGE,   /* 413 */
    SESSIOND_REFUSE_NOT_IMPLEMENTED,  /* 501: transfer coding */
    SESSIOND_REFUSE_VERSION,          /* 505 */
    SESSIOND_REFUSE_EXPECTATION,      /* 417 */
    SESSIOND_REFUSE_TIMEOUT,          /* 408: head or body too slow */
    SESSIOND_REFUSE_CONN_LIMIT,       /* 503: server.max_connections */
    SESSIOND_REFUSE_PER_IP_LIMIT,     /* 503: server.max_connections_per_ip */
    SESSIOND_REFUSE_N
} sessiond_refusal_reason;

typedef struct sessiond_refusal {
    unsigned status;
    sessiond_refusal_reason reason;
    const char *code;                 /* "bad_request", ... (static) */
    const char *message;              /* static text, never client bytes */
} sessiond_refusal;

/* Offsets into the buffer (it may move when it grows). */
typedef struct sessiond_hconn_field {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;    /* value_len 0: value_off unused */
    bool has_value;
} sessiond_hconn_field;

typedef struct sessiond_hconn {
    http_parser parser;
    uint64_t max_body;
    char *buf;              /* head of the current message from offset 0 */
    size_t len;             /* bytes held */
    size_t cap;
    size_t fed;             /* bytes handed to the parser */
    size_t head_fed;        /* bytes of this message's head so far */
    size_t head_end;        /* offset just past the head */
    bool in_message;        /* the first byte of a message came */
    bool head_done;
    bool msg_done;
    bool refused;
    bool continue_sent;     /* HCONN_CONTINUE given for this message */
    bool want_continue;
    bool field_open;        /* last callback was a field name */
    bool any_field;         /* a header field started (414 vs 431) */
    uint32_t url_off, url_len;
    size_t n_fields;
    sessiond_hconn_field fields[SESSIOND_HEADERS_MAX];
    /* NUL-terminated views, valid from HCONN_REQUEST to request_done */
    const char *names[SESSIOND_HEADERS_MAX];
    const char *values[SESSIOND_HEADERS_MAX];
    uint32_t qkey_off[SESSIOND_QUERY_MAX], qval_off[SESSIOND_QUERY_MAX];
    const char *qkeys[SESSIOND_QUERY_MAX];
    const char *qvals[SESSIOND_QUERY_MAX];
    size_t n_query;
    const char *path;
    size_t path_len;
    bool keep_alive;
    bool is_head;
    char *body;             /* malloc'd, wiped before free */
    size_t body_len, body_cap;
    sessiond_refusal refusal;
} sessiond_hconn;

/* Start reading requests; bodies larger than "max_body" are refused. */
void sessiond_hconn_init(sessiond_hconn *hc, uint64_t max_body);

/* Wipe and free the buffers (bodies and Cookie headers hold session IDs). */
void sessiond_hconn_free(sessiond_hconn *hc);

/* Room to append up to "*avail" bytes (> 0 unless the head is at its
 * limit, which run() has then refused); NULL when out of memory. */
char *sessiond_hconn_space(sessiond_hconn *hc, size_t *avail);
void sessiond_hconn_commit(sessiond_hconn *hc, size_t n);

sessiond_hconn_event sessiond_hconn_run(sessiond_hconn *hc);

/* After HCONN_REQUEST: the request as handlers see it (peer fields and
 * method left to the caller to complete). */
void sessiond_hconn_request(sessiond_hconn *hc, sessiond_http_req *req);

/* The first value of request header "name" (case-insensitive), or NULL;
 * "hc" is the sessiond_hconn (the sessiond_header_fn shape). */
const char *sessiond_hconn_header(void *hc, const char *name);

/* The request is answered: forget it (wiping its bytes) and move the next
 * pipelined request's bytes to the front. */
void sessiond_hconn_request_done(sessiond_hconn *hc);

/* True while part of a request has arrived but not all of it. */
bool sessiond_hconn_busy(const sessiond_hconn *hc);
/* True once the head of the current request is complete (body phase). */
bool sessiond_hconn_in_body(const sessiond_hconn *hc);

/* Fill hc->refusal for "reason" with its table status/code/message (for
 * refusals decided by the server: timeouts, limits). */
void sessiond_hconn_refusal_for(sessiond_refusal *r,
                                sessiond_refusal_reason reason);

#endif /* SESSIOND_HTTP_CONN_H */
