/*
 * http.c - building responses for handlers (see http.h).
 *
 * Invariants: a response always ends with a well-formed status and, for
 * errors, the body {"error": CODE, "message": TEXT} with Content-Type
 * application/json.  When building fails for lack of memory the response
 * becomes a static 500 JSON body, so the server always has something to
 * send.  No locking: a response belongs to one request on one thread.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "sess.h"

static const char content_json[] = "application/json";

static const char internal_body[] =
    "{\"error\":\"internal_error\",\"message\":\"internal error\"}";

void sessiond_resp_init(sessiond_http_resp *resp)
{
    resp->status = 500;
    resp->content_type = NULL;
    resp->body = NULL;
    resp->body_len = 0;
    resp->static_body = NULL;
    resp->secret = false;
    resp->n_headers = 0;
    resp->store_used = 0;
}

static void drop_body(sessiond_http_resp *resp)
{
    if (resp->body != NULL) {
        if (resp->secret)
            sess_wipe(resp->body, resp->body_len);
        free(resp->body);
    }
    resp->body = NULL;
    resp->body_len = 0;
    resp->static_body = NULL;
}

void sessiond_resp_release(sessiond_http_resp *resp)
{
    drop_body(resp);
    if (resp->secret)
        sess_wipe(resp->store, resp->store_used);
    resp->store_used = 0;
    resp->n_headers = 0;
}

static void internal_error(sessiond_http_resp *resp)
{
    drop_body(resp);
    /* Headers set so far belonged to the answer we could not build. */
    if (resp->secret)
        sess_wipe(resp->store, resp->store_used);
    resp->n_headers = 0;
    resp->status = 500;
    resp->content_type = content_json;
    resp->static_body = internal_body;
    resp->body_len = sizeof(internal_body) - 1;
}

int sessiond_resp_header(sessiond_http_resp *resp, const char *name,
                         const char *value, size_t len)
{
    if (resp->n_headers >= SESSIOND_RESP_HEADERS_MAX ||
        len + 1 > sizeof(resp->store) - resp->store_used) {
        internal_error(resp);
        return -1;
    }
    char *dst = resp->store + resp->store_used;
    memcpy(dst, value, len);
    dst[len] = '\0';
    resp->store_used += len + 1;
    resp->headers[resp->n_headers].name = name;
    resp->headers[resp->n_headers].value = dst;
    resp->n_headers++;
    return 0;
}

void sessiond_resp_json(sessiond_http_resp *resp, unsigned status,
                        json_t *obj, bool secret)
{
    drop_body(resp);
    if (obj == NULL) {
        internal_error(resp);
        return;
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        internal_error(resp);
        return;
    }
    resp->status = status;
    resp->content_type = content_json;
    resp->body = text;
    resp->body_len = strlen(text);
    if (secret)
        resp->secret = true;
}

void sessiond_resp_error2(sessiond_http_resp *resp, unsigned status,
                          const char *code, const char *message,
                          const char *key, const char *value)
{
    json_t *o = json_object();
    if (o == NULL ||
        json_object_set_new(o, "error", json_string(code)) != 0 ||
        json_object_set_new(o, "message", json_string(message)) != 0 ||
        (key != NULL &&
         json_object_set_new(o, key, json_string(value)) != 0)) {
        json_decref(o);
        internal_error(resp);
        return;
    }
    sessiond_resp_json(resp, status, o, false);
}

void sessiond_resp_error(sessiond_http_resp *resp, unsigned status,
                         const char *code, const char *message)
{
    sessiond_resp_error2(resp, status, code, message, NULL, NULL);
}

void sessiond_resp_static(sessiond_http_resp *resp, unsigned status,
                          const char *content_type, const char *body)
{
    drop_body(resp);
    resp->status = status;
    resp->content_type = content_type;
    resp->static_body = body;
    resp->body_len = body != NULL ? strlen(body) : 0;
}

void sessiond_resp_text(sessiond_http_resp *resp, unsigned status,
                        const char *content_type, char *body, size_t len)
{
    drop_body(resp);
    if (body == NULL) {
        internal_error(resp);
        return;
    }
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = len;
}
