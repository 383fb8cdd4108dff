/*
 * request.h - bounded parsing of the JSON request bodies of the HTTP API
 * into C structs, plus the small validators the routes share (user ids and
 * handles in paths, percent-decoding).
 *
 * Every parser is driven by one table per request kind (field name, type,
 * required) and never trusts its input: the body is bounded by the server
 * (server.max_body_bytes), jansson rejects invalid UTF-8, NUL in strings
 * and duplicate keys, and each field has a length or depth bound here.  A
 * rejected body yields a message that names the field and the problem,
 * never its value (it may be a session ID or token).
 *
 * Ownership: strings in a sessiond_request point into its JSON tree and
 * live until sessiond_request_free(), which wipes the secret ones.  The
 * fuzz target fuzz/fuzz_request.c drives every kind.
 */
#ifndef SESSIOND_REQUEST_H
#define SESSIOND_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sess.h"

#define SESSIOND_DATA_DEPTH_MAX 32      /* nesting levels of "data" */
#define SESSIOND_UA_IN_MAX 4096         /* client.user_agent bytes */
#define SESSIOND_LANG_IN_MAX 256        /* client.accept_language bytes */
#define SESSIOND_TOKEN_IN_MAX 256       /* csrf_token bytes */
#define SESSIOND_ORIGIN_IN_MAX 1024     /* origin / host bytes */
#define SESSIOND_FETCH_SITE_MAX 32      /* sec_fetch_site bytes */

typedef enum sessiond_request_kind {
    SESSIOND_REQ_CREATE = 0,
    SESSIOND_REQ_VALIDATE,
    SESSIOND_REQ_REGENERATE,
    SESSIOND_REQ_DATA,
    SESSIOND_REQ_DESTROY,
    SESSIOND_REQ_CSRF_VERIFY,
    SESSIOND_REQ_KIND_COUNT
} sessiond_request_kind;

/* Parser outcomes. */
typedef enum sessiond_parse_result {
    SESSIOND_PARSE_OK = 0,
    SESSIOND_PARSE_BAD = -1,        /* 400 */
    SESSIOND_PARSE_TOO_BIG = -2,    /* 413: data over SESS_DATA_MAX */
    SESSIOND_PARSE_NOMEM = -3       /* 500 */
} sessiond_parse_result;

typedef struct sessiond_client_in {
    char ip[SESS_IP_MAX + 1];       /* checked with inet_pton */
    const char *user_agent;         /* NULL when absent */
    const char *accept_language;    /* NULL when absent */
} sessiond_client_in;

typedef struct sessiond_request {
    sessiond_request_kind kind;
    json_t *root;                   /* owns the strings below */

    const char *session_id;         /* secret; checked with sess_id_check */
    size_t session_id_len;
    const char *user_id;            /* 1..SESS_USER_ID_MAX bytes of UTF-8 */
    size_t user_id_len;
    bool has_client;
    sessiond_client_in client;
    char *data;                     /* compact JSON text of "data" (malloc) */
    size_t data_len;
    bool remember;
    bool has_elevated;
    bool elevated;
    bool has_version;
    int64_t version;                /* >= 0 */
    const char *csrf_token;         /* secret */
    size_t csrf_token_len;
    const char *origin;             /* NULL when absent */
    const char *sec_fetch_site;     /* NULL when absent */
    const char *host;               /* NULL when absent (extension) */
} sessiond_request;

/*
 * Parse "len" bytes of "body" as a request of "kind" into "out" (which the
 * caller frees with sessiond_request_free, whatever the result).  On
 * failure "msg" (of "msglen" bytes) says what is wrong.
 */
sessiond_parse_result sessiond_request_parse(sessiond_request_kind kind,
                                             const char *body, size_t len,
                                             sessiond_request *out, char *msg,
                                             size_t msglen);

/* Wipe the secrets of "req" and release it.  Safe on a zeroed struct. */
void sessiond_request_free(sessiond_request *req);

/* Name of a request kind ("create", ...), for tests and fuzzing. */
const char *sessiond_request_kind_name(sessiond_request_kind kind);

/*
 * Percent-decode "len" bytes of "in" (RFC 3986 section 2.1) into "out" of
 * "cap" bytes.  Returns the decoded length, or -1 on a malformed escape,
 * an encoded NUL, or when "out" is too small.  Does not NUL-terminate.
 */
long sessiond_percent_decode(const char *in, size_t len, char *out,
                             size_t cap);

/* True when "s" is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
bool sessiond_utf8_valid(const char *s, size_t len);

/* True when "s" is a user id: 1..SESS_USER_ID_MAX bytes of UTF-8, no NUL. */
bool sessiond_user_id_valid(const char *s, size_t len);

/* True when "s" has the form of a handle: SESS_HANDLE_LEN base64url
 * characters. */
bool sessiond_handle_valid(const char *s, size_t len);

/* Route the JSON library's allocations through a free that wipes each
 * block first, so session IDs parsed out of bodies do not linger in freed
 * heap memory.  Call once at start-up before any other jansson call. */
void sessiond_json_use_wiping_allocator(void);

/* Declare that the calling thread's JSON never holds a session ID, token
 * or key, so its frees skip the wipe (the trace exporter's thread). */
void sessiond_json_no_secrets_here(void);

#endif /* SESSIOND_REQUEST_H */
