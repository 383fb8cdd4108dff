/*
 * migration.h - the daemon side of store migration (docs/migration.md):
 * the [migration] store URL, GET/PUT /v1/admin/migration, the SIGHUP
 * re-read of [migration] mode and the migration metrics.
 */
#ifndef SESSIOND_MIGRATION_H
#define SESSIOND_MIGRATION_H

#include <stddef.h>

#include "app.h"
#include "http.h"

/* "migrate:MODE|FROM|TO" into out when [migration] from and to are set
 * (returns 1), 0 when no migration is configured, -1 when it is too long. */
int sessiond_migration_url(const sessiond_config *cfg, char *out, size_t len);

/* The migration store the daemon serves from (NULL: none). */
void sessiond_migration_attach(sess_store *st, const char *from, const char *to);

void sessiond_migration_get(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp);
void sessiond_migration_put(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp);

/* SIGHUP: re-read [migration] mode from the config file. */
void sessiond_migration_reload(const char *config_file);

/* Prometheus text of the migration counters (malloc'd, "" when none). */
char *sessiond_migration_metrics(size_t *len);

#endif /* SESSIOND_MIGRATION_H */
