/*
 * http_conn.c - the request reader of one connection: bytes in, decisions
 * out (see http_conn.h).  HTTP syntax is parsed by http_parser (strict
 * mode); this file owns the buffer and the strictness gate on top.
 *
 * http_parser already refuses, as RFC 9112 asks: Content-Length together
 * with Transfer-Encoding and two Content-Length lines (request smuggling,
 * section 6.3), a NUL or bare CR in a value, an unknown transfer coding
 * alone, a malformed Content-Length.  What it lets through and we refuse
 * here, once the head is complete (the parser is paused there):
 *   - a field name that is not a token, e.g. "Transfer-Encoding :" (the
 *     space would hide the framing header from us but not from a proxy
 *     in front: smuggling);
 *   - obs-fold continuation lines (RFC 9112 section 5.2): the parser glues
 *     them into the value; we see CR/LF in the raw bytes between a field's
 *     name and the end of its value;
 *   - a control character in a value (RFC 9110 section 5.5);
 *   - a Transfer-Encoding other than exactly "chunked" (501), or any in
 *     HTTP/1.0 (400);
 *   - versions other than 1.0 and 1.1 (505), HTTP/1.1 without Host, two
 *     Host lines (RFC 9112 section 3.2);
 *   - a Content-Length above max_body (413 before the body is read), a
 *     chunked body that passes it (413 at that chunk), an Expect other
 *     than 100-continue (417).
 *
 * Buffer.  The head of the current message always starts at offset 0 and
 * stays in place until the request is answered: header names, values and
 * the URL are offsets into it, NUL-terminated in place once the head is
 * complete (the ':' after a name and the CR after a value are
 * overwritten; the parser has consumed them).  Body bytes are copied to
 * their own buffer and dropped from this one, so it never holds more than
 * SESSIOND_HEAD_MAX plus one read.  The head limit is exact: at most
 * SESSIOND_HEAD_MAX bytes of a message are fed to the parser before its
 * head completes.  Everything dropped or freed is wiped first: Cookie
 * headers and bodies hold session IDs.
 */
#include "http_conn.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sess.h"

/* Read room beyond the head, so body bytes can come in after a head that
 * filled SESSIOND_HEAD_MAX. */
#define READ_ROOM 16384u
#define BUF_START 4096u

/* ---- refusals: one table, status + code + message ------------------------ */

typedef enum problem {
    P_MALFORMED, P_FRAMING, P_CONTENT_LENGTH, P_FIELD_NAME, P_OBS_FOLD,
    P_FIELD_VALUE, P_NO_HOST, P_TWO_HOSTS, P_TE_HTTP10, P_TE_UNKNOWN,
    P_VERSION, P_HEAD_LARGE, P_URI_LARGE, P_TOO_MANY_FIELDS,
    P_BODY_LARGE, P_EXPECT, P_QUERY, P_N
} problem;

static const struct {
    unsigned status;
    sessiond_refusal_reason reason;
    const char *code;
    const char *message;
} problems[P_N] = {
    [P_MALFORMED] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                     "the request is not valid HTTP/1.1"},
    [P_FRAMING] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                   "Content-Length together with Transfer-Encoding, or more "
                   "than one Content-Length"},
    [P_CONTENT_LENGTH] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                          "the Content-Length is not a number"},
    [P_FIELD_NAME] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                      "a header field name is not a token (no spaces "
                      "before the colon)"},
    [P_OBS_FOLD] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                    "a header field is folded over several lines"},
    [P_FIELD_VALUE] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                       "a header field holds a character not allowed there"},
    [P_NO_HOST] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                   "an HTTP/1.1 request needs a Host header"},
    [P_TWO_HOSTS] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                     "more than one Host header"},
    [P_TE_HTTP10] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                     "Transfer-Encoding in an HTTP/1.0 request"},
    [P_TE_UNKNOWN] = {501, SESSIOND_REFUSE_NOT_IMPLEMENTED, "not_implemented",
                      "the only transfer coding served is chunked"},
    [P_VERSION] = {505, SESSIOND_REFUSE_VERSION, "http_version_not_supported",
                   "only HTTP/1.0 and HTTP/1.1 are served"},
    [P_HEAD_LARGE] = {431, SESSIOND_REFUSE_HEAD_TOO_LARGE, "headers_too_large",
                      "the request line and headers are larger than 32768 "
                      "bytes"},
    [P_URI_LARGE] = {414, SESSIOND_REFUSE_HEAD_TOO_LARGE, "uri_too_long",
                     "the request line is larger than 32768 bytes"},
    [P_TOO_MANY_FIELDS] = {431, SESSIOND_REFUSE_HEAD_TOO_LARGE,
                           "headers_too_large",
                           "more than 64 header fields"},
    [P_BODY_LARGE] = {413, SESSIOND_REFUSE_BODY_TOO_LARGE, "too_large",
                      "the request body is larger than server.max_body_bytes"},
    [P_EXPECT] = {417, SESSIOND_REFUSE_EXPECTATION, "expectation_failed",
                  "the only expectation served is 100-continue"},
    [P_QUERY] = {400, SESSIOND_REFUSE_BAD_REQUEST, "bad_request",
                 "more than 16 query parameters"},
};

static const struct {
    sessiond_refusal_reason reason;
    unsigned status;
    const char *code;
    const char *message;
} server_refusals[] = {
    {SESSIOND_REFUSE_TIMEOUT, 408, "request_timeout",
     "the request did not arrive in time"},
    {SESSIOND_REFUSE_CONN_LIMIT, 503, "overloaded",
     "too many connections (server.max_connections)"},
    {SESSIOND_REFUSE_PER_IP_LIMIT, 503, "overloaded",
     "too many connections from this address "
     "(server.max_connections_per_ip)"},
};

void sessiond_hconn_refusal_for(sessiond_refusal *r,
                                sessiond_refusal_reason reason)
{
    for (size_t i = 0; i < sizeof(server_refusals) / sizeof(server_refusals[0]);
         i++) {
        if (server_refusals[i].reason == reason) {
            r->status = server_refusals[i].status;
            r->reason = reason;
            r->code = server_refusals[i].code;
            r->message = server_refusals[i].message;
            return;
        }
    }
    r->status = problems[P_MALFORMED].status;
    r->reason = SESSIOND_REFUSE_BAD_REQUEST;
    r->code = problems[P_MALFORMED].code;
    r->message = problems[P_MALFORMED].message;
}

static sessiond_hconn_event refuse(sessiond_hconn *hc, problem p)
{
    hc->refused = true;
    hc->refusal.status = problems[p].status;
    hc->refusal.reason = problems[p].reason;
    hc->refusal.code = problems[p].code;
    hc->refusal.message = problems[p].message;
    return HCONN_REFUSE;
}

/* http_parser's errors that have a more precise answer than 400. */
static problem problem_of(enum http_errno e)
{
    static const struct {
        enum http_errno err;
        problem p;
    } map[] = {
        {HPE_UNEXPECTED_CONTENT_LENGTH, P_FRAMING},
        {HPE_INVALID_CONTENT_LENGTH, P_CONTENT_LENGTH},
        {HPE_INVALID_TRANSFER_ENCODING, P_TE_UNKNOWN},
        {HPE_INVALID_HEADER_TOKEN, P_FIELD_VALUE},
        {HPE_HEADER_OVERFLOW, P_HEAD_LARGE},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].err == e)
            return map[i].p;
    return P_MALFORMED;
}

/* ---- parser callbacks ------------------------------------------------------ */

static uint32_t off_of(const sessiond_hconn *hc, const char *at)
{
    return (uint32_t)(at - hc->buf);
}

static int on_message_begin(http_parser *p)
{
    sessiond_hconn *hc = p->data;
    hc->in_message = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    sessiond_hconn *hc = p->data;
    if (hc->url_len == 0)
        hc->url_off = off_of(hc, at);
    hc->url_len = off_of(hc, at) + (uint32_t)n - hc->url_off;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    sessiond_hconn *hc = p->data;
    /* Trailer fields after a chunked body are dropped (RFC 9110 section
     * 6.5.1 lets a recipient discard them): their bytes do not stay in
     * the buffer, and no handler reads trailers. */
    if (hc->head_done)
        return 0;
    hc->any_field = true;
    if (!hc->field_open) {
        if (hc->n_fields >= SESSIOND_HEADERS_MAX) {
            refuse(hc, P_TOO_MANY_FIELDS);
            return -1;
        }
        sessiond_hconn_field *f = &hc->fields[hc->n_fields++];
        f->name_off = off_of(hc, at);
        f->has_value = false;
        f->value_len = 0;
        f->value_off = 0;
        hc->field_open = true;
    }
    sessiond_hconn_field *f = &hc->fields[hc->n_fields - 1];
    f->name_len = off_of(hc, at) + (uint32_t)n - f->name_off;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    sessiond_hconn *hc = p->data;
    hc->field_open = false;
    /* An empty value is reported as an empty piece at the next line. */
    if (hc->head_done || hc->n_fields == 0 || n == 0)
        return 0;
    sessiond_hconn_field *f = &hc->fields[hc->n_fields - 1];
    if (!f->has_value) {
        f->value_off = off_of(hc, at);
        f->has_value = true;
    }
    /* Pieces of one value are contiguous in the buffer, except around an
     * obs-fold, which the gate finds in the bytes in between. */
    f->value_len = off_of(hc, at) + (uint32_t)n - f->value_off;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    sessiond_hconn *hc = p->data;
    hc->head_done = true;
    hc->field_open = false;
    /* Stop here: the gate runs before any body byte is read. */
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    sessiond_hconn *hc = p->data;
    if ((uint64_t)hc->body_len + n > hc->max_body) {
        refuse(hc, P_BODY_LARGE);      /* a chunked body past the limit */
        return -1;
    }
    if (hc->body_len + n + 1 > hc->body_cap) {
        size_t cap = hc->body_cap == 0 ? 1024 : hc->body_cap;
        while (cap < hc->body_len + n + 1)
            cap *= 2;
        char *nb = malloc(cap);
        if (nb == NULL)
            return -1;
        /* Copy rather than realloc, so the old block can be wiped. */
        if (hc->body != NULL) {
            memcpy(nb, hc->body, hc->body_len);
            sess_wipe(hc->body, hc->body_cap);
            free(hc->body);
        }
        hc->body = nb;
        hc->body_cap = cap;
    }
    memcpy(hc->body + hc->body_len, at, n);
    hc->body_len += n;
    hc->body[hc->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sessiond_hconn *hc = p->data;
    hc->msg_done = true;
    /* One request at a time: pipelined ones wait in the buffer. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the gate -------------------------------------------------------------- */

/* RFC 9110 section 5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != '\0' && strchr(extra, c) != NULL);
}

static bool name_is(const sessiond_hconn *hc, const sessiond_hconn_field *f,
                    const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n &&
           strncasecmp(hc->buf + f->name_off, name, n) == 0;
}

static bool value_is(const sessiond_hconn *hc, const sessiond_hconn_field *f,
                     const char *v)
{
    size_t n = strlen(v);
    return f->value_len == n &&
           strncasecmp(hc->buf + f->value_off, v, n) == 0;
}

/* Split the query ("a=1&b=2") in place into NUL-terminated pairs. */
static bool split_query(sessiond_hconn *hc, char *q, char *end)
{
    hc->n_query = 0;
    while (q < end) {
        char *amp = memchr(q, '&', (size_t)(end - q));
        char *stop = amp != NULL ? amp : end;
        if (stop > q) {
            if (hc->n_query >= SESSIOND_QUERY_MAX)
                return false;
            char *eq = memchr(q, '=', (size_t)(stop - q));
            hc->qkey_off[hc->n_query] = off_of(hc, q);
            if (eq != NULL) {
                *eq = '\0';
                hc->qval_off[hc->n_query] = off_of(hc, eq + 1);
            } else {
                hc->qval_off[hc->n_query] = off_of(hc, stop); /* "" */
            }
            hc->n_query++;
        }
        *stop = '\0';   /* '&', or the byte after the URL (a space) */
        q = stop + 1;
    }
    return true;
}

static sessiond_hconn_event gate(sessiond_hconn *hc)
{
    const http_parser *p = &hc->parser;
    size_t hosts = 0;
    bool te = false;
    const sessiond_hconn_field *expect = NULL;

    if (p->http_major != 1 || p->http_minor > 1)
        return refuse(hc, P_VERSION);
    for (size_t i = 0; i < hc->n_fields; i++) {
        const sessiond_hconn_field *f = &hc->fields[i];
        const unsigned char *name = (const unsigned char *)hc->buf + f->name_off;
        if (f->name_len == 0)
            return refuse(hc, P_FIELD_NAME);
        for (size_t k = 0; k < f->name_len; k++)
            if (!is_tchar(name[k]))
                return refuse(hc, P_FIELD_NAME);
        if (f->has_value) {
            /* From the name to the value's end: a CR or LF there is a
             * continuation line (obs-fold). */
            const unsigned char *s = name;
            const unsigned char *e =
                (const unsigned char *)hc->buf + f->value_off + f->value_len;
            for (; s < e; s++) {
                if (*s == '\r' || *s == '\n')
                    return refuse(hc, P_OBS_FOLD);
                if ((*s < 0x20 && *s != '\t') || *s == 0x7f)
                    return refuse(hc, P_FIELD_VALUE);
            }
        }
        if (name_is(hc, f, "Host")) {
            hosts++;
        } else if (name_is(hc, f, "Transfer-Encoding")) {
            /* One line, exactly "chunked": anything else is a coding we
             * do not implement (RFC 9112 section 6.1). */
            if (te || !value_is(hc, f, "chunked"))
                return refuse(hc, P_TE_UNKNOWN);
            te = true;
        } else if (name_is(hc, f, "Expect")) {
            if (expect != NULL)
                return refuse(hc, P_EXPECT);
            expect = f;
        }
    }
    if (te && p->http_minor == 0)
        return refuse(hc, P_TE_HTTP10);
    if (hosts > 1)
        return refuse(hc, P_TWO_HOSTS);
    if (hosts == 0 && p->http_minor == 1)
        return refuse(hc, P_NO_HOST);
    if ((p->flags & F_CHUNKED) == 0 && p->content_length != ULLONG_MAX &&
        p->content_length > hc->max_body)
        return refuse(hc, P_BODY_LARGE);
    if (expect != NULL) {
        if (!value_is(hc, expect, "100-continue"))
            return refuse(hc, P_EXPECT);
        /* 100 only for HTTP/1.1 and a body still to come. */
        hc->want_continue = p->http_minor == 1 &&
                            ((p->flags & F_CHUNKED) != 0 ||
                             (p->content_length != ULLONG_MAX &&
                              p->content_length > 0));
    }

    /* NUL-terminate names, values and the URL in place (offsets: the
     * buffer may still move while the body comes). */
    for (size_t i = 0; i < hc->n_fields; i++) {
        sessiond_hconn_field *f = &hc->fields[i];
        char *name = hc->buf + f->name_off;
        name[f->name_len] = '\0';
        if (f->has_value) {
            char *v = hc->buf + f->value_off;
            size_t n = f->value_len;
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            v[n] = '\0';
        } else {
            f->value_off = f->name_off + f->name_len;  /* "" (was ':') */
        }
    }
    char *url = hc->buf + hc->url_off;
    char *url_end = url + hc->url_len;
    char *q = memchr(url, '?', hc->url_len);
    hc->path_len = q != NULL ? (size_t)(q - url) : hc->url_len;
    hc->n_query = 0;
    if (q != NULL) {
        *q = '\0';
        if (!split_query(hc, q + 1, url_end))
            return refuse(hc, P_QUERY);
    } else {
        *url_end = '\0';    /* the space before the version */
    }
    hc->is_head = p->method == HTTP_HEAD;
    return HCONN_NEED_MORE;
}

/* ---- the buffer and the driver --------------------------------------------- */

void sessiond_hconn_init(sessiond_hconn *hc, uint64_t max_body)
{
    memset(hc, 0, sizeof(*hc));
    hc->max_body = max_body;
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
}

void sessiond_hconn_free(sessiond_hconn *hc)
{
    if (hc->buf != NULL) {
        sess_wipe(hc->buf, hc->cap);
        free(hc->buf);
    }
    if (hc->body != NULL) {
        sess_wipe(hc->body, hc->body_cap);
        free(hc->body);
    }
    hc->buf = hc->body = NULL;
    hc->len = hc->cap = hc->body_len = hc->body_cap = 0;
}

char *sessiond_hconn_space(sessiond_hconn *hc, size_t *avail)
{
    const size_t max = SESSIOND_HEAD_MAX + READ_ROOM;
    if (hc->cap - hc->len < 2048 && hc->cap < max) {
        size_t cap = hc->cap == 0 ? BUF_START : hc->cap * 2;
        if (cap > max)
            cap = max;
        char *nb = malloc(cap);
        if (nb == NULL)
            return NULL;
        if (hc->buf != NULL) {
            memcpy(nb, hc->buf, hc->len);
            sess_wipe(hc->buf, hc->cap);
            free(hc->buf);
        }
        hc->buf = nb;
        hc->cap = cap;
    }
    *avail = hc->cap - hc->len;
    return hc->buf + hc->len;
}

void sessiond_hconn_commit(sessiond_hconn *hc, size_t n)
{
    hc->len += n;
}

/* Drop body bytes the parser has consumed, keeping the head (offsets point
 * into it) and any unparsed bytes behind it. */
static void drop_consumed_body(sessiond_hconn *hc)
{
    if (!hc->head_done || hc->fed <= hc->head_end)
        return;
    size_t rest = hc->len - hc->fed;
    memmove(hc->buf + hc->head_end, hc->buf + hc->fed, rest);
    size_t new_len = hc->head_end + rest;
    sess_wipe(hc->buf + new_len, hc->len - new_len);
    hc->len = new_len;
    hc->fed = hc->head_end;
}

/* The NUL-terminated views of the request, from the offsets. */
static void resolve_views(sessiond_hconn *hc)
{
    for (size_t i = 0; i < hc->n_fields; i++) {
        hc->names[i] = hc->buf + hc->fields[i].name_off;
        hc->values[i] = hc->buf + hc->fields[i].value_off;
    }
    for (size_t i = 0; i < hc->n_query; i++) {
        hc->qkeys[i] = hc->buf + hc->qkey_off[i];
        hc->qvals[i] = hc->buf + hc->qval_off[i];
    }
    hc->path = hc->buf + hc->url_off;
}

sessiond_hconn_event sessiond_hconn_run(sessiond_hconn *hc)
{
    http_parser *p = &hc->parser;

    if (hc->refused)
        return HCONN_REFUSE;
    if (hc->msg_done)
        return HCONN_REQUEST;     /* not yet answered */
    for (;;) {
        if (hc->head_done && hc->want_continue && !hc->continue_sent) {
            hc->continue_sent = true;
            return HCONN_CONTINUE;
        }
        size_t n = hc->len - hc->fed;
        if (!hc->head_done && hc->head_fed + n > SESSIOND_HEAD_MAX)
            n = SESSIOND_HEAD_MAX - hc->head_fed;   /* exact head limit */
        if (n == 0) {
            if (!hc->head_done && hc->head_fed >= SESSIOND_HEAD_MAX)
                return refuse(hc, hc->any_field ? P_HEAD_LARGE : P_URI_LARGE);
            drop_consumed_body(hc);
            return HCONN_NEED_MORE;
        }
        bool was_head = !hc->head_done;
        size_t used = http_parser_execute(p, &settings, hc->buf + hc->fed, n);
        enum http_errno err = HTTP_PARSER_ERRNO(p);
        if (err != HPE_OK && err != HPE_PAUSED) {
            if (hc->refused)
                return HCONN_REFUSE;     /* decided in a callback */
            return refuse(hc, problem_of(err));
        }
        if (was_head && hc->head_done) {
            /* Paused on the head's last byte (LF), which the parser will
             * see again when it resumes. */
            hc->head_fed += used + 1;
            hc->head_end = hc->fed + used + 1;
            hc->fed += used;
            http_parser_pause(p, 0);
            if (gate(hc) == HCONN_REFUSE)
                return HCONN_REFUSE;
            continue;
        }
        if (was_head)
            hc->head_fed += used;
        hc->fed += used;
        if (err == HPE_PAUSED) {
            http_parser_pause(p, 0);
            if (hc->msg_done) {
                resolve_views(hc);
                if (p->upgrade)
                    hc->keep_alive = false;   /* we speak HTTP/1.x only */
                else
                    hc->keep_alive = http_should_keep_alive(p) != 0;
                return HCONN_REQUEST;
            }
        }
        if (p->upgrade && !hc->msg_done) {
            /* Upgrade/CONNECT: http_parser stops parsing.  We never switch
             * protocols; answer what we have and close. */
            hc->msg_done = true;
            hc->keep_alive = false;
            resolve_views(hc);
            return HCONN_REQUEST;
        }
    }
}

void sessiond_hconn_request(sessiond_hconn *hc, sessiond_http_req *req)
{
    req->method = http_method_str((enum http_method)hc->parser.method);
    req->path = hc->path;
    req->path_len = hc->path_len;
    req->body = hc->body_len > 0 ? hc->body : NULL;
    req->body_len = hc->body_len;
    req->body_too_large = false;   /* refused before: 413 */
    req->conn = hc;
}

const char *sessiond_hconn_header(void *conn, const char *name)
{
    const sessiond_hconn *hc = conn;
    for (size_t i = 0; i < hc->n_fields; i++)
        if (strcasecmp(hc->names[i], name) == 0)
            return hc->values[i];
    return NULL;
}

void sessiond_hconn_request_done(sessiond_hconn *hc)
{
    /* Everything before "fed" was this message: wipe it, keep the rest. */
    size_t rest = hc->len - hc->fed;
    if (hc->fed > 0) {
        memmove(hc->buf, hc->buf + hc->fed, rest);
        sess_wipe(hc->buf + rest, hc->len - rest);
    }
    hc->len = rest;
    hc->fed = 0;
    if (hc->body != NULL)
        sess_wipe(hc->body, hc->body_len);
    hc->body_len = 0;
    hc->head_fed = hc->head_end = 0;
    hc->in_message = hc->head_done = hc->msg_done = false;
    hc->continue_sent = hc->want_continue = false;
    hc->field_open = hc->any_field = false;
    hc->url_off = hc->url_len = 0;
    hc->n_fields = 0;
    hc->n_query = 0;
    hc->path = NULL;
    hc->path_len = 0;
    hc->keep_alive = hc->is_head = false;
}

bool sessiond_hconn_busy(const sessiond_hconn *hc)
{
    return hc->in_message || hc->len > hc->fed;
}

bool sessiond_hconn_in_body(const sessiond_hconn *hc)
{
    return hc->head_done && !hc->msg_done;
}
