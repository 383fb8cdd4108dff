/*
 * fuzz_http.c - libFuzzer target for the connection layer's request reader
 * (src/sessiond/http_conn.c: http_parser plus the strictness gate), driven
 * from bytes alone, as server.c drives it from a socket.
 *
 * The first input byte chooses how the rest is cut into reads (1 to 256
 * bytes each), so requests split at every boundary are tried; requests are
 * "answered" in order until a refusal or the end of the input.
 *
 * Properties checked beyond "no crash, no leak, no UB": a request handed
 * out has a well-formed method and path, field names that are tokens,
 * values with no CR, LF or NUL, at most one Host, a body within the limit;
 * a refusal has a status among the documented ones and a JSON-safe code
 * and message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 1024u

static bool tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_request(sessiond_hconn *hc)
{
    sessiond_http_req req;
    memset(&req, 0, sizeof(req));
    sessiond_hconn_request(hc, &req);
    if (req.method == NULL || req.path == NULL ||
        strlen(req.path) < req.path_len || req.body_len > MAX_BODY)
        abort();
    size_t hosts = 0;
    for (size_t i = 0; i < hc->n_fields; i++) {
        const char *n = hc->names[i];
        if (*n == '\0')
            abort();
        for (; *n != '\0'; n++)
            if (!tchar((unsigned char)*n))
                abort();
        if (strpbrk(hc->values[i], "\r\n") != NULL)
            abort();
        hosts += strcasecmp(hc->names[i], "Host") == 0;
    }
    if (hosts > 1 || (hosts == 0 && hc->parser.http_minor == 1))
        abort();
    (void)sessiond_hconn_header(hc, "Cookie");
}

static void check_refusal(const sessiond_refusal *r)
{
    static const unsigned ok[] = {400, 413, 414, 417, 431, 501, 505};
    bool found = false;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        found |= r->status == ok[i];
    if (!found || r->code == NULL || r->message == NULL ||
        strpbrk(r->code, "\"\\") != NULL || strpbrk(r->message, "\"\\") != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned step = (unsigned)data[0] + 1;
    data++;
    size--;

    sessiond_hconn hc;
    sessiond_hconn_init(&hc, MAX_BODY);
    size_t pos = 0;
    int requests = 0;
    for (;;) {
        sessiond_hconn_event ev = sessiond_hconn_run(&hc);
        if (ev == HCONN_REFUSE) {
            check_refusal(&hc.refusal);
            break;
        }
        if (ev == HCONN_REQUEST) {
            check_request(&hc);
            bool keep = hc.keep_alive;
            sessiond_hconn_request_done(&hc);
            if (!keep || ++requests > 64)
                break;
            continue;
        }
        if (ev == HCONN_CONTINUE)
            continue;
        if (pos >= size)
            break;
        size_t avail = 0;
        char *space = sessiond_hconn_space(&hc, &avail);
        if (space == NULL)
            break;
        if (avail == 0)
            abort();        /* run() must have refused at the head limit */
        size_t n = size - pos;
        if (n > step)
            n = step;
        if (n > avail)
            n = avail;
        memcpy(space, data + pos, n);
        sessiond_hconn_commit(&hc, n);
        pos += n;
    }
    sessiond_hconn_free(&hc);
    return 0;
}
