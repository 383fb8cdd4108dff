/*
 * listen.h - the listening socket: parsing server.listen, deciding whether
 * it is loopback-only (docs/security.md invariant 11), and creating the socket.
 */
#ifndef SESSIOND_LISTEN_H
#define SESSIOND_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#define SESSIOND_HOST_MAX 255
#define SESSIOND_UNIX_PATH_MAX 107     /* sizeof(sun_path) - 1 on Linux */
#define SESSIOND_URL_TEXT_MAX 320

typedef struct sessiond_listen_spec {
    bool is_unix;
    char host[SESSIOND_HOST_MAX + 1];  /* without brackets */
    char port[6];                      /* decimal, "0" = any free port */
    char path[SESSIOND_UNIX_PATH_MAX + 1];
} sessiond_listen_spec;

/*
 * Parse "HOST:PORT", "[V6]:PORT" or "unix:PATH".  Returns 0, or -1 with
 * "err" naming server.listen and the problem.
 */
int sessiond_listen_parse(const char *listen, sessiond_listen_spec *spec,
                          char *err, size_t errlen);

/* True when every address "spec" names is loopback (127.0.0.0/8, ::1,
 * "localhost") or it is a Unix socket. */
bool sessiond_listen_is_loopback(const sessiond_listen_spec *spec);

/*
 * Create, bind and listen.  A Unix socket is created with mode 0660, after
 * removing a stale socket file (never another kind of file).  The socket is
 * non-blocking and close-on-exec.  On success returns the descriptor and
 * writes the address to "url" ("http://127.0.0.1:PORT" with the actual
 * port, "http://[::1]:PORT", "unix:PATH"); -1 with "err" otherwise.
 */
int sessiond_listen_open(const sessiond_listen_spec *spec, char *url,
                         size_t url_cap, char *err, size_t errlen);

#endif /* SESSIOND_LISTEN_H */
