/*
 * http.h - the request and response that handlers see, independent of the
 * connection layer underneath (server.c and http_conn.c fill it in).
 *
 * A sessiond_http_req is read-only for handlers; every pointer in it is
 * valid for the duration of the handler call only.  A sessiond_http_resp
 * lives on the stack of the server's dispatcher: handlers fill it through
 * the sessiond_resp_* helpers below, which copy header values into the
 * response's own small store and take ownership of JSON bodies.  Bodies or
 * header values that hold a secret (a session ID, a CSRF token) are marked
 * so the server wipes them once sent.
 */
#ifndef SESSIOND_HTTP_H
#define SESSIOND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Longest request target we look at; longer ones get 414 (RFC 9112
 * section 3 recommends supporting at least 8000 octets; our routes need
 * far less, so a tight bound keeps hostile URLs out of the handlers). */
#define SESSIOND_URL_MAX 2048

#define SESSIOND_ROUTE_PARAMS_MAX 2
#define SESSIOND_RESP_HEADERS_MAX 12
#define SESSIOND_RESP_STORE 3072      /* bytes for header values */

/* Gets the value of a request header (case-insensitive name), or NULL. */
typedef const char *(*sessiond_header_fn)(void *conn, const char *name);

/* Gets up to "max" values of a header that may repeat, one per header
 * line, in request order (the last "max" when there are more); returns
 * how many were stored. */
typedef size_t (*sessiond_header_all_fn)(void *conn, const char *name,
                                         const char **out, size_t max);

typedef struct sessiond_http_req {
    const char *method;          /* as sent: "GET", "POST", ... */
    const char *path;            /* raw, not percent-decoded */
    size_t path_len;
    /* Path parameters ("{user_id}", "{handle}"), raw slices of "path". */
    const char *params[SESSIOND_ROUTE_PARAMS_MAX];
    size_t param_lens[SESSIOND_ROUTE_PARAMS_MAX];
    size_t n_params;
    const char *body;            /* NULL when the request had none */
    size_t body_len;
    bool body_too_large;         /* more than server.max_body_bytes came */
    const char *peer_ip;         /* textual address of the TCP peer */
    bool peer_unix;              /* connected over the Unix socket */
    void *conn;                  /* opaque, for the functions below */
    sessiond_header_fn header;
    sessiond_header_all_fn header_all;
    sessiond_header_fn query;    /* query argument by name, raw */
} sessiond_http_req;

typedef struct sessiond_http_header {
    const char *name;            /* static string */
    const char *value;           /* points into the response's store */
} sessiond_http_header;

typedef struct sessiond_http_resp {
    unsigned status;
    const char *content_type;    /* static string or NULL */
    char *body;                  /* malloc'd (NUL-terminated) or NULL */
    size_t body_len;
    const char *static_body;     /* alternative to "body": never freed */
    bool secret;                 /* body or headers hold a secret */
    size_t n_headers;
    sessiond_http_header headers[SESSIOND_RESP_HEADERS_MAX];
    size_t store_used;
    char store[SESSIOND_RESP_STORE];
} sessiond_http_resp;

/* Start an empty response (status 500 until a helper sets another). */
void sessiond_resp_init(sessiond_http_resp *resp);

/* Release the body and wipe secrets held by "resp" (after sending, or
 * when the server could not send it). */
void sessiond_resp_release(sessiond_http_resp *resp);

/* Add a header; "value" is copied ("len" bytes).  Returns 0, or -1 when
 * the response has no room left (the header is then dropped and the
 * response turned into a 500). */
int sessiond_resp_header(sessiond_http_resp *resp, const char *name,
                         const char *value, size_t len);

/* Set "status" and a JSON body from "obj" (reference stolen, also on
 * failure).  "secret" marks bodies holding IDs or tokens. */
void sessiond_resp_json(sessiond_http_resp *resp, unsigned status,
                        json_t *obj, bool secret);

/* {"error": code, "message": message}.  "message" must never hold an ID,
 * token or key. */
void sessiond_resp_error(sessiond_http_resp *resp, unsigned status,
                         const char *code, const char *message);

/* Like sessiond_resp_error with one more string member (e.g. "reason"). */
void sessiond_resp_error2(sessiond_http_resp *resp, unsigned status,
                          const char *code, const char *message,
                          const char *key, const char *value);

/* A fixed body (never freed) with a content type. */
void sessiond_resp_static(sessiond_http_resp *resp, unsigned status,
                          const char *content_type, const char *body);

/* Take a malloc'd text body ("len" bytes, NUL-terminated). */
void sessiond_resp_text(sessiond_http_resp *resp, unsigned status,
                        const char *content_type, char *body, size_t len);

#endif /* SESSIOND_HTTP_H */
