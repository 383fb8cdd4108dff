/*
 * app.h - the state every handler needs: the configuration, the session
 * context and the API keys.  Built once by main() before the server
 * starts; read-only while serving (the context and key set are
 * thread-safe on their own, including their SIGHUP reloads).
 */
#ifndef SESSIOND_APP_H
#define SESSIOND_APP_H

#include <stddef.h>

#include "apikeys.h"
#include "config.h"
#include "sess.h"

typedef struct sessiond_app {
    const sessiond_config *cfg;
    sess_ctx *ctx;
    sessiond_apikeys *apikeys;
    /* cfg->allowed_origins as the pointer array sess_same_origin_ok takes */
    const char *allowed_origins[SESSIOND_ORIGINS_MAX];
    size_t n_allowed_origins;
    struct sessiond_tokens *tokens;   /* tokens.c; NULL until its init */
} sessiond_app;

#endif /* SESSIOND_APP_H */
