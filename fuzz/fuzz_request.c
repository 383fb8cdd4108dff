/*
 * fuzz_request.c - libFuzzer target for the JSON request parsers of the
 * HTTP API (src/sessiond/request.c): every input is parsed as every request
 * kind, and also run through the path helpers (percent-decoding, user id
 * and handle checks) that take URL text.
 *
 * Properties checked beyond "no crash, no leak, no UB": a parse that
 * succeeds yields fields within their documented bounds.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const sessiond_request *r)
{
    if (r->session_id != NULL &&
        sess_id_check(r->session_id, r->session_id_len) != SESS_OK)
        abort();
    if (r->user_id != NULL &&
        !sessiond_user_id_valid(r->user_id, r->user_id_len))
        abort();
    if (r->has_client) {
        unsigned char bin[16];
        if (inet_pton(AF_INET, r->client.ip, bin) != 1 &&
            inet_pton(AF_INET6, r->client.ip, bin) != 1)
            abort();
    }
    if (r->data != NULL &&
        (r->data_len > SESS_DATA_MAX || r->data[0] != '{'))
        abort();
    if (r->has_version && r->version < 0)
        abort();
    if (r->csrf_token != NULL && r->csrf_token_len > SESSIOND_TOKEN_IN_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[256];
    char out[SESS_USER_ID_MAX + 1];

    for (int k = 0; k < SESSIOND_REQ_KIND_COUNT; k++) {
        sessiond_request r;
        sessiond_parse_result pr = sessiond_request_parse(
            (sessiond_request_kind)k, (const char *)data, size, &r, msg,
            sizeof(msg));
        if (pr == SESSIOND_PARSE_OK)
            check(&r);
        else if (memchr(msg, '\0', sizeof(msg)) == NULL)
            abort();
        sessiond_request_free(&r);
    }

    long n = sessiond_percent_decode((const char *)data, size, out,
                                     SESS_USER_ID_MAX);
    if (n > (long)SESS_USER_ID_MAX)
        abort();
    if (n >= 0) {
        if (memchr(out, '\0', (size_t)n) != NULL)
            abort();
        (void)sessiond_user_id_valid(out, (size_t)n);
    }
    (void)sessiond_handle_valid((const char *)data, size);
    (void)sessiond_utf8_valid((const char *)data, size);
    return 0;
}
