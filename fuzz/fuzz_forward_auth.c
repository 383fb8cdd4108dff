/*
 * fuzz_forward_auth.c - libFuzzer target for GET /v1/auth, the handler
 * that reads the most attacker-controlled text (src/sessiond/forward_auth.c):
 * every Cookie line and every session cookie in them, X-Forwarded-For
 * chains and X-Real-IP, X-Forwarded-Host and -Proto from trusted proxies,
 * X-Forwarded-Method and X-Original-Method, Origin, Sec-Fetch-Site,
 * X-CSRF-Token.
 *
 * The input is a request head: the first line is the TCP peer address
 * ("unix" for the Unix socket), every later line "Name: value" (a header
 * may repeat).  "@ID@" anywhere is replaced by the ID of a live session
 * and "@CSRF@" by its CSRF token, so the fuzzer reaches the paths behind
 * a valid cookie.  The context runs on the memory store with a fixed
 * clock (no rotation).  Properties beyond "no crash, no leak, no UB":
 *   - the status is one nginx auth_request understands (200, 401, 403) -
 *     503 cannot happen on the memory store;
 *   - the client address chosen is a textual IP address, NUL-terminated,
 *     and the peer's own unless the peer is a trusted proxy;
 *   - X-Session-User, when sent, is visible ASCII, and holds a '\'' or a
 *     '%' only in the RFC 8187 form that starts with "utf-8''".
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "config.h"
#include "forward_auth.h"
#include "sess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADERS_MAX 64
#define INPUT_MAX 16384

static sessiond_config cfg;
static sessiond_app app;
static char live_id[SESS_ID_LEN + 1], live_csrf[SESS_CSRF_LEN + 1];

typedef struct fake_conn {
    const char *names[HEADERS_MAX], *values[HEADERS_MAX];
    size_t n;
} fake_conn;

static const char *get_header(void *conn, const char *name)
{
    fake_conn *c = conn;
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->names[i], name) == 0)
            return c->values[i];
    return NULL;
}

static size_t get_header_all(void *conn, const char *name, const char **out, size_t max)
{
    fake_conn *c = conn;
    size_t k = 0;
    for (size_t i = 0; i < c->n && k < max; i++)
        if (strcasecmp(c->names[i], name) == 0)
            out[k++] = c->values[i];
    return k;
}

static const char *no_query(void *conn, const char *name)
{
    (void)conn;
    (void)name;
    return NULL;
}

static uint64_t fixed_clock(void *user)
{
    (void)user;
    return 1800000000u;
}

static void setup(void)
{
    static const char ini[] =
        "[server]\nenv = development\n"
        "[binding]\ntrusted_proxies = 10.0.0.0/8, ::1, 192.0.2.7\n"
        "[csrf]\nallowed_origins = https://partner.example\n";
    static const uint8_t key[1][SESS_KEY_BYTES] = {{7, 7, 7}};
    const char *kids[] = {"fuzz-key"};
    char err[256];
    sess_keyring *kr;
    sess_store *st;

    sessiond_config_defaults(&cfg);
    if (sessiond_config_parse_ini(&cfg, ini, sizeof ini - 1, err, sizeof err) != SESS_OK) {
        fprintf(stderr, "fuzz_forward_auth: config: %s\n", err);
        abort();
    }
    cfg.session.rotate_interval = 0;
    if (sess_keyring_from_keys(kids, key, 1, &kr, NULL) != SESS_OK ||
        sess_store_open("memory:", NULL, &st, NULL) != SESS_OK ||
        sess_ctx_new(&cfg.session, st, kr, &app.ctx, NULL) != SESS_OK)
        abort();
    sess_ctx_set_clock(app.ctx, fixed_clock, NULL);
    app.cfg = &cfg;
    for (size_t i = 0; i < cfg.n_allowed_origins; i++)
        app.allowed_origins[i] = cfg.allowed_origins[i];
    app.n_allowed_origins = cfg.n_allowed_origins;

    sess_create_req req = {.user_id = "fuzz-user", .user_id_len = 9,
                           .client = {"10.1.2.3", "fuzz-agent"}};
    sess_issued s;
    if (sess_create(app.ctx, &req, &s, NULL, NULL) != SESS_OK)
        abort();
    memcpy(live_id, s.id, sizeof live_id);
    memcpy(live_csrf, s.csrf_token, sizeof live_csrf);
    sess_wipe(&s, sizeof s);
}

/* "in" with @ID@ and @CSRF@ expanded into "out" (NUL-terminated). */
static size_t expand(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        const char *with = NULL;
        size_t skip = 0;
        if (n - i >= 4 && memcmp(in + i, "@ID@", 4) == 0)
            with = live_id, skip = 4;
        else if (n - i >= 6 && memcmp(in + i, "@CSRF@", 6) == 0)
            with = live_csrf, skip = 6;
        if (with && o + strlen(with) + 1 < cap) {
            memcpy(out + o, with, strlen(with));
            o += strlen(with);
            i += skip;
        } else {
            out[o++] = (char)in[i++];
        }
    }
    out[o] = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[INPUT_MAX * 2];
    fake_conn conn = {0};
    sessiond_http_req req = {0};
    sessiond_http_resp resp;
    char ip[SESS_IP_MAX + 1];
    unsigned char bin[16];

    if (!app.ctx)
        setup();
    if (size > INPUT_MAX)
        return 0;
    size_t len = expand(data, size, text, sizeof text);
    if (memchr(text, '\0', len))
        return 0;                 /* header text never holds NUL */

    /* Line 1: the peer; then "Name: value" lines. */
    char *line = text, *next;
    next = strchr(line, '\n');
    if (next)
        *next++ = '\0';
    req.peer_unix = strcmp(line, "unix") == 0;
    req.peer_ip = req.peer_unix ? "" : line;
    if (!req.peer_unix && inet_pton(AF_INET, line, bin) != 1 &&
        inet_pton(AF_INET6, line, bin) != 1)
        req.peer_ip = "203.0.113.9";   /* the server always has a real peer */
    for (line = next; line && conn.n < HEADERS_MAX; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        conn.names[conn.n] = line;
        conn.values[conn.n++] = value;
    }
    req.method = "GET";
    req.path = "/v1/auth";
    req.path_len = 8;
    req.conn = &conn;
    req.header = get_header;
    req.header_all = get_header_all;
    req.query = no_query;

    sessiond_forward_client_ip(&app, &req, ip, sizeof ip);
    if (!memchr(ip, '\0', sizeof ip) ||
        (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1 &&
         !(req.peer_unix && ip[0] == '\0')))
        abort();
    if (!req.peer_unix && !sessiond_config_is_trusted_proxy(&cfg, req.peer_ip) &&
        strcmp(ip, req.peer_ip) != 0)
        abort();                  /* believed a header from an untrusted peer */

    sessiond_resp_init(&resp);
    sessiond_forward_auth(&app, &req, &resp);
    if (resp.status != 200 && resp.status != 401 && resp.status != 403)
        abort();
    for (size_t i = 0; i < resp.n_headers; i++) {
        const char *v = resp.headers[i].value;
        if (strcmp(resp.headers[i].name, "X-Session-User") != 0)
            continue;
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                abort();
        if ((strchr(v, '\'') || strchr(v, '%')) && strncmp(v, "utf-8''", 7) != 0)
            abort();
    }
    sessiond_resp_release(&resp);
    return 0;
}
