/*
 * server.h - the HTTP/1.1 server (our connection layer over http_parser,
 * server.c and http_conn.c) that feeds requests to the dispatcher in
 * routes.c.
 */
#ifndef SESSIOND_SERVER_H
#define SESSIOND_SERVER_H

#include <stddef.h>

#include "app.h"

typedef struct sessiond_server sessiond_server;

/*
 * Start serving on the listening socket "fd" (ownership taken, also on
 * failure) with the settings of app->cfg: an acceptor thread and
 * server.threads workers (0 = one per core), keep-alive, connection
 * limits (global and per address) and timeouts.
 * "unix_path" (may be NULL) is unlinked when the server stops.  Returns 0,
 * or -1 with "err".
 */
int sessiond_server_start(sessiond_app *app, int fd, const char *unix_path,
                          sessiond_server **out, char *err, size_t errlen);

/*
 * Stop gracefully: stop accepting, close idle connections, let requests
 * in progress finish (up to "grace_ms" milliseconds), then close every
 * connection and free the server.  NULL is ignored.
 */
void sessiond_server_stop(sessiond_server *srv, unsigned grace_ms);

#endif /* SESSIOND_SERVER_H */
