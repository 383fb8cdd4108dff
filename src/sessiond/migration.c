/*
 * migration.c - the daemon side of store migration (docs/migration.md).
 *
 * When [migration] from and to are set, main() opens the migration store
 * "migrate:MODE|FROM|TO" (lib/store_migrate.c) instead of [store] url, and
 * attaches it here.  The mode then changes at run time through
 * PUT /v1/admin/migration {"mode": "route:50"} (management API key, as the
 * other management routes) or SIGHUP (re-reads [migration] mode); both are
 * one atomic store in the library, so requests in flight finish under the
 * mode they started with and none fails because of the change.
 *
 * Backfill progress.  sessctl migrate saves its progress (counters,
 * cursor, done) as a small state entry in the TO store after every batch
 * (sess_progress_save, lib/store_tools.c); GET /v1/admin/migration and
 * the sessiond_migration_backfill_* metrics read it from there, so every
 * instance reports the one backfill whichever host runs it.
 */
#include "migration.h"

#include <jansson.h>
#include <ini.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sess/store_migrate.h"
#include "events.h"

static sess_store *_Atomic g_store;
static char g_from[SESSIOND_PATH_MAX], g_to[SESSIOND_PATH_MAX];

int sessiond_migration_url(const sessiond_config *cfg, char *out, size_t len)
{
    if (cfg->migration_from[0] == '\0' && cfg->migration_to[0] == '\0')
        return 0;
    int n = snprintf(out, len, "migrate:%s|%s|%s",
                     cfg->migration_mode[0] ? cfg->migration_mode : "off",
                     cfg->migration_from, cfg->migration_to);
    return n < 0 || (size_t)n >= len ? -1 : 1;
}

void sessiond_migration_attach(sess_store *st, const char *from, const char *to)
{
    snprintf(g_from, sizeof g_from, "%s", from ? from : "");
    snprintf(g_to, sizeof g_to, "%s", to ? to : "");
    atomic_store(&g_store, st);
}

/* Store URLs shown without what may be a password ("redis://:pw@h"):
 * everything between "//" and the last '@' is replaced. */
static json_t *url_json(const char *url)
{
    char buf[SESSIOND_PATH_MAX];
    const char *at = strrchr(url, '@'), *sl = strstr(url, "//");
    if (at && sl && sl < at)
        snprintf(buf, sizeof buf, "%.*s***%s", (int)(sl + 2 - url), url, at);
    else
        snprintf(buf, sizeof buf, "%s", url);
    return json_string(buf);
}

/* The backfill's progress entry in TO; false when there is none. */
static bool backfill_of(sess_store *st, sess_progress *p)
{
    sess_store *to = sess_store_migrate_to(st);
    return to && sess_progress_load(to, SESS_PROGRESS_MIGRATE, (uint64_t)time(NULL), p,
                                    NULL) == SESS_OK;
}

static json_t *backfill_json(sess_store *st)
{
    sess_progress p;
    if (!backfill_of(st, &p))
        return json_null();
    return json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "done", p.done != 0,
                     "started_at", (json_int_t)p.started_at, "updated_at",
                     (json_int_t)p.updated_at, "total", (json_int_t)p.total, "scanned",
                     (json_int_t)p.scanned, "copied", (json_int_t)p.copied, "skipped",
                     (json_int_t)p.skipped, "removed", (json_int_t)p.removed, "failed",
                     (json_int_t)p.failed);
}

static void reply_state(sess_store *st, sessiond_http_resp *resp)
{
    char mode[SESS_MIGRATE_MODE_MAX];
    sess_migrate_counters c;
    sess_store_migrate_mode(st, mode, sizeof mode);
    sess_store_migrate_counters(st, &c);
    json_t *ctr = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
        "shadow_write_failures", (json_int_t)c.shadow_write_failures,
        "to_write_failures", (json_int_t)c.to_write_failures,
        "mismatch_missing_in_to", (json_int_t)c.mismatch_missing_to,
        "mismatch_missing_in_from", (json_int_t)c.mismatch_missing_from,
        "mismatch_different_record", (json_int_t)c.mismatch_differ,
        "read_through_copies", (json_int_t)c.read_through_copies,
        "fallbacks", (json_int_t)c.fallbacks, "repairs", (json_int_t)c.repairs,
        "mode_changes", (json_int_t)c.mode_changes);
    json_t *req = json_object();
    for (int k = 0; k < SESS_MIGRATE_KINDS && req; k++) {
        json_t *o = json_pack("{s:I,s:I}", "from", (json_int_t)c.requests[k][0],
                              "to", (json_int_t)c.requests[k][1]);
        json_object_set_new(req, sess_migrate_kind_name((sess_migrate_kind)k), o);
    }
    if (ctr && req)
        json_object_set_new(ctr, "store_calls", req);
    json_t *bf = backfill_json(st);
    json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:o}", "mode", mode, "from", url_json(g_from),
                          "to", url_json(g_to), "counters", ctr ? ctr : json_object(),
                          "backfill", bf ? bf : json_null());
    if (!o) {
        sessiond_resp_error(resp, 500, "internal_error", "out of memory");
        return;
    }
    sessiond_resp_json(resp, 200, o, false);
}

void sessiond_migration_get(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp)
{
    (void)app;
    (void)req;
    sess_store *st = atomic_load(&g_store);
    if (!st) {
        sessiond_resp_error(resp, 404, "not_configured",
                            "no [migration] is configured");
        return;
    }
    reply_state(st, resp);
}

void sessiond_migration_put(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp)
{
    (void)app;
    sess_store *st = atomic_load(&g_store);
    if (!st) {
        sessiond_resp_error(resp, 404, "not_configured",
                            "no [migration] is configured");
        return;
    }
    json_error_t jerr;
    json_t *body = req->body ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr)
                             : NULL;
    json_t *m = body ? json_object_get(body, "mode") : NULL;
    if (!json_is_string(m) || json_object_size(body) != 1) {
        json_decref(body);
        sessiond_resp_error(resp, 400, "invalid_request",
                            "body must be {\"mode\": \"off|shadow|dual|route:N|read-through|new\"}");
        return;
    }
    sess_err err = {0};
    char old[SESS_MIGRATE_MODE_MAX];
    sess_store_migrate_mode(st, old, sizeof old);
    int rc = sess_store_migrate_set_mode(st, json_string_value(m), &err);
    json_decref(body);
    if (rc != SESS_OK) {
        sessiond_resp_error(resp, 400, "invalid_mode", err.msg);
        return;
    }
    char now[SESS_MIGRATE_MODE_MAX];
    sess_store_migrate_mode(st, now, sizeof now);
    sessiond_log(SESSIOND_LOG_INFO, "migration mode %s -> %s (admin API)", old, now);
    reply_state(st, resp);
}

typedef struct reload_ctx {
    char mode[64];
    int found;
} reload_ctx;

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    reload_ctx *r = user;
    if (strcmp(section, "migration") == 0 && strcmp(name, "mode") == 0) {
        snprintf(r->mode, sizeof r->mode, "%s", value);
        r->found = 1;
    }
    return 1;
}

void sessiond_migration_reload(const char *config_file)
{
    sess_store *st = atomic_load(&g_store);
    if (!st || !config_file || !config_file[0])
        return;
    reload_ctx r = {{0}, 0};
    if (ini_parse(config_file, ini_cb, &r) < 0) {
        sessiond_log(SESSIOND_LOG_WARN, "migration: cannot re-read %s, mode kept",
                     config_file);
        return;
    }
    if (!r.found)
        snprintf(r.mode, sizeof r.mode, "off");
    sess_err err = {0};
    char old[SESS_MIGRATE_MODE_MAX];
    sess_store_migrate_mode(st, old, sizeof old);
    if (sess_store_migrate_set_mode(st, r.mode, &err) != SESS_OK)
        sessiond_log(SESSIOND_LOG_WARN, "migration.mode: %s; mode %s kept", err.msg, old);
    else
        sessiond_log(SESSIOND_LOG_INFO, "migration mode %s -> %s (SIGHUP)", old, r.mode);
}

char *sessiond_migration_metrics(size_t *len)
{
    sess_store *st = atomic_load(&g_store);
    size_t cap = 8192, n = 0;
    char *p = malloc(cap);
    if (!p)
        return NULL;
    p[0] = '\0';
    if (st) {
        sess_migrate_counters c;
        char mode[SESS_MIGRATE_MODE_MAX];
        sess_store_migrate_counters(st, &c);
        sess_store_migrate_mode(st, mode, sizeof mode);
#define OUT(...) do { int w = snprintf(p + n, cap - n, __VA_ARGS__); \
        if (w > 0 && (size_t)w < cap - n) n += (size_t)w; } while (0)
        OUT("# HELP sessiond_migration_mode_info The migration mode in force.\n"
            "# TYPE sessiond_migration_mode_info gauge\n"
            "sessiond_migration_mode_info{mode=\"%s\"} 1\n", mode);
        OUT("# HELP sessiond_migration_store_calls_total Store calls by mode and store.\n"
            "# TYPE sessiond_migration_store_calls_total counter\n");
        for (int k = 0; k < SESS_MIGRATE_KINDS; k++)
            for (int s = 0; s < 2; s++)
                OUT("sessiond_migration_store_calls_total{mode=\"%s\",store=\"%s\"} %llu\n",
                    sess_migrate_kind_name((sess_migrate_kind)k), s ? "to" : "from",
                    (unsigned long long)c.requests[k][s]);
        OUT("# TYPE sessiond_migration_shadow_write_failures_total counter\n"
            "sessiond_migration_shadow_write_failures_total %llu\n",
            (unsigned long long)c.shadow_write_failures);
        OUT("# TYPE sessiond_migration_to_write_failures_total counter\n"
            "sessiond_migration_to_write_failures_total %llu\n",
            (unsigned long long)c.to_write_failures);
        OUT("# TYPE sessiond_migration_mismatches_total counter\n"
            "sessiond_migration_mismatches_total{kind=\"missing_in_to\"} %llu\n"
            "sessiond_migration_mismatches_total{kind=\"missing_in_from\"} %llu\n"
            "sessiond_migration_mismatches_total{kind=\"different_record\"} %llu\n",
            (unsigned long long)c.mismatch_missing_to,
            (unsigned long long)c.mismatch_missing_from,
            (unsigned long long)c.mismatch_differ);
        OUT("# TYPE sessiond_migration_read_through_copies_total counter\n"
            "sessiond_migration_read_through_copies_total %llu\n",
            (unsigned long long)c.read_through_copies);
        OUT("# TYPE sessiond_migration_fallbacks_total counter\n"
            "sessiond_migration_fallbacks_total %llu\n", (unsigned long long)c.fallbacks);
        OUT("# TYPE sessiond_migration_repairs_total counter\n"
            "sessiond_migration_repairs_total %llu\n", (unsigned long long)c.repairs);
        sess_progress bp;
        if (backfill_of(st, &bp)) {
            OUT("# HELP sessiond_migration_backfill_entries Entries of the last sessctl "
                "migrate run, by outcome.\n"
                "# TYPE sessiond_migration_backfill_entries gauge\n"
                "sessiond_migration_backfill_entries{outcome=\"scanned\"} %llu\n"
                "sessiond_migration_backfill_entries{outcome=\"copied\"} %llu\n"
                "sessiond_migration_backfill_entries{outcome=\"skipped\"} %llu\n"
                "sessiond_migration_backfill_entries{outcome=\"removed\"} %llu\n"
                "sessiond_migration_backfill_entries{outcome=\"failed\"} %llu\n",
                (unsigned long long)bp.scanned, (unsigned long long)bp.copied,
                (unsigned long long)bp.skipped, (unsigned long long)bp.removed,
                (unsigned long long)bp.failed);
            OUT("# HELP sessiond_migration_backfill_total_entries Live sessions in FROM "
                "when the backfill started (its 100 %%).\n"
                "# TYPE sessiond_migration_backfill_total_entries gauge\n"
                "sessiond_migration_backfill_total_entries %llu\n"
                "# TYPE sessiond_migration_backfill_done gauge\n"
                "sessiond_migration_backfill_done %u\n"
                "# HELP sessiond_migration_backfill_updated_timestamp_seconds When the "
                "backfill last saved its progress.\n"
                "# TYPE sessiond_migration_backfill_updated_timestamp_seconds gauge\n"
                "sessiond_migration_backfill_updated_timestamp_seconds %llu\n",
                (unsigned long long)bp.total, bp.done ? 1u : 0u,
                (unsigned long long)bp.updated_at);
        }
#undef OUT
    }
    *len = n;
    return p;
}
