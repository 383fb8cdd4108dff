/*
 * request.c - the JSON request parsers of the HTTP API (see request.h).
 *
 * One table per request kind lists its fields; one function per field
 * type checks and converts a value.  Nothing here allocates beyond the
 * JSON tree and the compact text of "data", both bounded by the body size
 * the server accepted.  Recursion (the depth check of "data") stops at
 * SESSIOND_DATA_DEPTH_MAX + 1 levels, and jansson itself refuses trees
 * deeper than its own limit, so no input can exhaust the stack.
 *
 * No shared state and no locking, except sessiond_json_use_wiping_allocator
 * which must run once before any thread uses jansson.
 */
#include "request.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum field_type {
    F_SESSION_ID,
    F_USER_ID,
    F_CLIENT,
    F_DATA,
    F_REMEMBER,
    F_ELEVATED,
    F_VERSION,
    F_CSRF_TOKEN,
    F_ORIGIN,
    F_FETCH_SITE,
    F_HOST
} field_type;

typedef struct field {
    const char *name;
    field_type type;
    bool required;
} field;

#define FIELDS_MAX 6

typedef struct kind_spec {
    const char *name;
    field fields[FIELDS_MAX];
} kind_spec;

/* The request bodies of docs/api.md, one row per kind. */
static const kind_spec kinds[SESSIOND_REQ_KIND_COUNT] = {
    [SESSIOND_REQ_CREATE] = {"create", {
        {"user_id", F_USER_ID, true},
        {"client", F_CLIENT, true},
        {"data", F_DATA, false},
        {"remember", F_REMEMBER, false},
        {"elevated", F_ELEVATED, false}}},
    [SESSIOND_REQ_VALIDATE] = {"validate", {
        {"session_id", F_SESSION_ID, true},
        {"client", F_CLIENT, true}}},
    [SESSIOND_REQ_REGENERATE] = {"regenerate", {
        {"session_id", F_SESSION_ID, true},
        {"client", F_CLIENT, true},
        {"elevated", F_ELEVATED, false}}},
    [SESSIOND_REQ_DATA] = {"data", {
        {"session_id", F_SESSION_ID, true},
        {"data", F_DATA, true},
        {"version", F_VERSION, false}}},
    [SESSIOND_REQ_DESTROY] = {"destroy", {
        {"session_id", F_SESSION_ID, true}}},
    [SESSIOND_REQ_CSRF_VERIFY] = {"csrf_verify", {
        {"session_id", F_SESSION_ID, true},
        {"csrf_token", F_CSRF_TOKEN, true},
        {"origin", F_ORIGIN, false},
        {"sec_fetch_site", F_FETCH_SITE, false},
        {"host", F_HOST, false}}},
};

const char *sessiond_request_kind_name(sessiond_request_kind kind)
{
    if ((unsigned)kind >= SESSIOND_REQ_KIND_COUNT)
        return "unknown";
    return kinds[kind].name;
}

/* ---- small validators ------------------------------------------------ */

bool sessiond_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned min;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1; min = 0x80; cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2; min = 0x800; cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3; min = 0x10000; cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

bool sessiond_user_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > SESS_USER_ID_MAX)
        return false;
    if (memchr(s, '\0', len) != NULL)
        return false;
    return sessiond_utf8_valid(s, len);
}

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool sessiond_handle_valid(const char *s, size_t len)
{
    if (len != SESS_HANDLE_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_b64url(s[i]))
            return false;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long sessiond_percent_decode(const char *in, size_t len, char *out,
                             size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hexval(in[i + 1]);
            int lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)((hi << 4) | lo);
            i += 2;
        }
        if (c == '\0' || o >= cap)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

/* ---- field parsers ---------------------------------------------------- */

typedef struct parse_state {
    sessiond_request *out;
    char *msg;
    size_t msglen;
} parse_state;

static sessiond_parse_result bad(parse_state *ps, const char *fmt,
                                 const char *name)
{
    snprintf(ps->msg, ps->msglen, fmt, name);
    return SESSIOND_PARSE_BAD;
}

/* A string member bounded by "max" bytes (0 < len <= max unless
 * "allow_empty"). */
static sessiond_parse_result get_string(parse_state *ps, const char *name,
                                        json_t *v, size_t max,
                                        bool allow_empty, const char **s,
                                        size_t *len)
{
    if (!json_is_string(v))
        return bad(ps, "\"%s\" must be a string", name);
    size_t n = json_string_length(v);
    if (n == 0 && !allow_empty)
        return bad(ps, "\"%s\" must not be empty", name);
    if (n > max) {
        snprintf(ps->msg, ps->msglen, "\"%s\" is longer than %zu bytes",
                 name, max);
        return SESSIOND_PARSE_BAD;
    }
    *s = json_string_value(v);
    *len = n;
    return SESSIOND_PARSE_OK;
}

static sessiond_parse_result parse_client(parse_state *ps, json_t *v)
{
    sessiond_client_in *c = &ps->out->client;
    const char *s;
    size_t n;
    sessiond_parse_result r;

    if (!json_is_object(v))
        return bad(ps, "\"%s\" must be an object", "client");
    json_t *ip = json_object_get(v, "ip");
    if (ip == NULL || json_is_null(ip))
        return bad(ps, "\"%s\" is required", "client.ip");
    r = get_string(ps, "client.ip", ip, SESS_IP_MAX, false, &s, &n);
    if (r != SESSIOND_PARSE_OK)
        return r;
    memcpy(c->ip, s, n);
    c->ip[n] = '\0';
    unsigned char buf[16];
    if (inet_pton(AF_INET, c->ip, buf) != 1 &&
        inet_pton(AF_INET6, c->ip, buf) != 1)
        return bad(ps, "\"%s\" is not an IPv4 or IPv6 address", "client.ip");

    json_t *ua = json_object_get(v, "user_agent");
    if (ua != NULL && !json_is_null(ua)) {
        r = get_string(ps, "client.user_agent", ua, SESSIOND_UA_IN_MAX, true,
                       &s, &n);
        if (r != SESSIOND_PARSE_OK)
            return r;
        c->user_agent = s;
    }
    json_t *al = json_object_get(v, "accept_language");
    if (al != NULL && !json_is_null(al)) {
        r = get_string(ps, "client.accept_language", al,
                       SESSIOND_LANG_IN_MAX, true, &s, &n);
        if (r != SESSIOND_PARSE_OK)
            return r;
        c->accept_language = s;
    }
    ps->out->has_client = true;
    return SESSIOND_PARSE_OK;
}

/* True when "v" nests no deeper than "left" levels (containers count). */
static bool depth_ok(json_t *v, int left)
{
    if (!json_is_object(v) && !json_is_array(v))
        return true;
    if (left <= 0)
        return false;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) {
            if (!depth_ok(m, left - 1))
                return false;
        }
    } else {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            if (!depth_ok(m, left - 1))
                return false;
        }
    }
    return true;
}

static sessiond_parse_result parse_data(parse_state *ps, json_t *v)
{
    if (!json_is_object(v))
        return bad(ps, "\"%s\" must be an object", "data");
    if (!depth_ok(v, SESSIOND_DATA_DEPTH_MAX)) {
        snprintf(ps->msg, ps->msglen,
                 "\"data\" is nested deeper than %d levels",
                 SESSIOND_DATA_DEPTH_MAX);
        return SESSIOND_PARSE_BAD;
    }
    char *text = json_dumps(v, JSON_COMPACT);
    if (text == NULL)
        return SESSIOND_PARSE_NOMEM;
    size_t n = strlen(text);
    if (n > SESS_DATA_MAX) {
        free(text);
        snprintf(ps->msg, ps->msglen,
                 "\"data\" is larger than %u bytes as JSON",
                 (unsigned)SESS_DATA_MAX);
        return SESSIOND_PARSE_TOO_BIG;
    }
    ps->out->data = text;
    ps->out->data_len = n;
    return SESSIOND_PARSE_OK;
}

static sessiond_parse_result get_bool(parse_state *ps, const char *name,
                                      json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return bad(ps, "\"%s\" must be true or false", name);
    *out = json_is_true(v);
    return SESSIOND_PARSE_OK;
}

static sessiond_parse_result parse_field(parse_state *ps, const field *f,
                                         json_t *v)
{
    sessiond_request *o = ps->out;
    const char *s = NULL;
    size_t n = 0;
    sessiond_parse_result r;

    switch (f->type) {
    case F_SESSION_ID:
        /* Bounded well above SESS_ID_LEN so the check below reports a
         * wrong form rather than a length, whatever arrives. */
        r = get_string(ps, f->name, v, 1024, false, &s, &n);
        if (r != SESSIOND_PARSE_OK)
            return r;
        if (sess_id_check(s, n) != SESS_OK)
            return bad(ps, "\"%s\" is not a well-formed session ID",
                       f->name);
        o->session_id = s;
        o->session_id_len = n;
        return SESSIOND_PARSE_OK;
    case F_USER_ID:
        if (!json_is_string(v))
            return bad(ps, "\"%s\" must be a string", f->name);
        s = json_string_value(v);
        n = json_string_length(v);
        if (n == 0 || n > SESS_USER_ID_MAX) {
            snprintf(ps->msg, ps->msglen,
                     "\"user_id\" must be 1 to %d bytes of UTF-8",
                     SESS_USER_ID_MAX);
            return SESSIOND_PARSE_BAD;
        }
        if (!sessiond_user_id_valid(s, n))
            return bad(ps, "\"%s\" is not valid UTF-8", f->name);
        o->user_id = s;
        o->user_id_len = n;
        return SESSIOND_PARSE_OK;
    case F_CLIENT:
        return parse_client(ps, v);
    case F_DATA:
        return parse_data(ps, v);
    case F_REMEMBER:
        return get_bool(ps, f->name, v, &o->remember);
    case F_ELEVATED:
        o->has_elevated = true;
        return get_bool(ps, f->name, v, &o->elevated);
    case F_VERSION:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(ps, "\"%s\" must be a non-negative integer", f->name);
        o->has_version = true;
        o->version = (int64_t)json_integer_value(v);
        return SESSIOND_PARSE_OK;
    case F_CSRF_TOKEN:
        r = get_string(ps, f->name, v, SESSIOND_TOKEN_IN_MAX, false, &s, &n);
        if (r != SESSIOND_PARSE_OK)
            return r;
        o->csrf_token = s;
        o->csrf_token_len = n;
        return SESSIOND_PARSE_OK;
    case F_ORIGIN:
        r = get_string(ps, f->name, v, SESSIOND_ORIGIN_IN_MAX, false, &s, &n);
        o->origin = s;
        return r;
    case F_FETCH_SITE:
        r = get_string(ps, f->name, v, SESSIOND_FETCH_SITE_MAX, false, &s,
                       &n);
        o->sec_fetch_site = s;
        return r;
    case F_HOST:
        r = get_string(ps, f->name, v, SESSIOND_ORIGIN_IN_MAX, false, &s, &n);
        o->host = s;
        return r;
    }
    return bad(ps, "\"%s\": unsupported field", f->name);
}

sessiond_parse_result sessiond_request_parse(sessiond_request_kind kind,
                                             const char *body, size_t len,
                                             sessiond_request *out, char *msg,
                                             size_t msglen)
{
    parse_state ps = {out, msg, msglen};
    json_error_t jerr;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (msglen > 0)
        msg[0] = '\0';
    if ((unsigned)kind >= SESSIOND_REQ_KIND_COUNT) {
        snprintf(msg, msglen, "unknown request kind");
        return SESSIOND_PARSE_BAD;
    }
    if (body == NULL || len == 0) {
        snprintf(msg, msglen, "the request body is empty");
        return SESSIOND_PARSE_BAD;
    }
    out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                           &jerr);
    if (out->root == NULL) {
        /* jerr.text may quote the input (an ID, a token): report only
         * the kind of problem and where it is. */
        const char *what = "not valid JSON";
        switch (json_error_code(&jerr)) {
        case json_error_invalid_utf8:
            what = "not valid UTF-8";
            break;
        case json_error_null_character:
            what = "not accepted: it contains a NUL character";
            break;
        case json_error_duplicate_key:
            what = "not accepted: it repeats a member name";
            break;
        case json_error_premature_end_of_input:
            what = "truncated JSON";
            break;
        default:
            break;
        }
        snprintf(msg, msglen, "the request body is %s (line %d, column %d)",
                 what, jerr.line, jerr.column);
        return SESSIOND_PARSE_BAD;
    }
    if (!json_is_object(out->root)) {
        snprintf(msg, msglen, "the request body must be a JSON object");
        return SESSIOND_PARSE_BAD;
    }

    const kind_spec *spec = &kinds[kind];
    for (size_t i = 0; i < FIELDS_MAX && spec->fields[i].name != NULL; i++) {
        const field *f = &spec->fields[i];
        json_t *v = json_object_get(out->root, f->name);
        if (v == NULL || json_is_null(v)) {
            if (f->required)
                return bad(&ps, "\"%s\" is required", f->name);
            continue;
        }
        sessiond_parse_result r = parse_field(&ps, f, v);
        if (r != SESSIOND_PARSE_OK)
            return r;
    }
    return SESSIOND_PARSE_OK;
}

/* Wipe the text of every string member named like a secret. */
static void wipe_secret_strings(json_t *root)
{
    static const char *const secret_names[] = {"session_id", "csrf_token"};
    if (!json_is_object(root))
        return;
    for (size_t i = 0; i < sizeof(secret_names) / sizeof(secret_names[0]);
         i++) {
        json_t *v = json_object_get(root, secret_names[i]);
        if (json_is_string(v))
            sess_wipe((char *)json_string_value(v), json_string_length(v));
    }
}

void sessiond_request_free(sessiond_request *req)
{
    if (req == NULL)
        return;
    if (req->root != NULL) {
        wipe_secret_strings(req->root);
        json_decref(req->root);
    }
    free(req->data);
    memset(req, 0, sizeof(*req));
}

/* ---- allocator -------------------------------------------------------- */

/* Set on a thread whose JSON never holds a secret (the trace exporter:
 * ids of our own, route patterns, words), where wiping every freed block
 * is a tenth of the work for nothing. */
static _Thread_local bool no_wipe;

void sessiond_json_no_secrets_here(void)
{
    no_wipe = true;
}

static void wiping_free(void *p)
{
    if (p == NULL)
        return;
    if (!no_wipe)
        sess_wipe(p, malloc_usable_size(p));
    free(p);
}

void sessiond_json_use_wiping_allocator(void)
{
    json_set_alloc_funcs(malloc, wiping_free);
}
