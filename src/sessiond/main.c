/*
 * main.c - sessiond's start-up, signal handling, purge thread and stop.
 *
 * Exit codes (docs/api.md): 0 normal stop, 1 runtime failure (store cannot be
 * opened, socket cannot be bound, server cannot start), 2 bad usage or
 * configuration (config loader errors, API key file, keys directory,
 * a public listen address without API keys).
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked before any thread starts,
 * so every thread inherits the mask and only the main thread receives them,
 * synchronously, in sigwait().  No code runs in a signal handler.
 * SIGTERM/SIGINT stop gracefully (stop accepting, finish requests in
 * flight, close connections, stop the purge thread, send the spans still
 * queued for at most tracing.timeout_ms, free the context which closes
 * the store).  SIGHUP reloads the record keys, the API keys and the
 * webhook signing keys (events.webhook_secret_file) and reopens the access
 * log and the security-events file (logrotate); a failed reload keeps the
 * old ones and is logged.
 * Between signals the
 * main thread wakes every WATCH_SEC to log what the counters say needs an
 * operator (rotations a full store deferred), once per interval.
 *
 * With [events] webhook_url set, the webhook sender (webhook.c) starts
 * before the server and stops after the purge thread: every thread that
 * raises lifecycle events has stopped by then, and what is not delivered
 * stays in the outbox for the next start.
 *
 * The purge thread deletes expired records every store.purge_interval
 * seconds (and the library reports each as an "expired" event).  It sleeps on a condition variable with a deadline, so a stop
 * wakes it at once instead of waiting out the interval.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "access_log.h"
#include "apikeys.h"
#include "app.h"
#include "tokens.h"
#include "config.h"
#include "cookies.h"
#include "events.h"
#include "listen.h"
#include "metrics.h"
#include "migration.h"
#include "otlp.h"
#include "request.h"
#include "sess.h"
#include "server.h"
#include "webhook.h"

#define EXIT_RUNTIME 1
#define EXIT_CONFIG 2
#define STOP_GRACE_MS 10000u
#define PURGE_BATCH 10000u
#define WATCH_SEC 10      /* the main thread's look at the counters */

typedef struct purger {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool running;
    sess_ctx *ctx;
    unsigned interval;
} purger;

/* Print a start-up failure; the logger may not be configured yet. */
static void fail(const char *msg)
{
    fprintf(stderr, "sessiond: %s\n", msg);
}

static void *purge_main(void *arg)
{
    purger *p = arg;
    struct timespec deadline;

    pthread_mutex_lock(&p->lock);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += p->interval;
    while (!p->stop) {
        int rc = pthread_cond_timedwait(&p->cond, &p->lock, &deadline);
        if (p->stop)
            break;
        if (rc != ETIMEDOUT)
            continue;
        pthread_mutex_unlock(&p->lock);

        size_t removed = 0;
        sess_err err = {0};
        int r = sess_purge_expired(p->ctx, PURGE_BATCH, &removed, &err);
        if (r != SESS_OK)
            sessiond_log(SESSIOND_LOG_WARN, "purge failed: %s",
                         err.msg[0] != '\0' ? err.msg : sess_strerror(r));
        else
            sessiond_log(SESSIOND_LOG_DEBUG, "purged %zu expired records",
                         removed);

        pthread_mutex_lock(&p->lock);
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        /* A full batch means more are waiting: go again soon. */
        deadline.tv_sec += removed >= PURGE_BATCH ? 1 : p->interval;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int purger_start(purger *p, sess_ctx *ctx, unsigned interval)
{
    pthread_condattr_t ca;
    memset(p, 0, sizeof(*p));
    p->ctx = ctx;
    p->interval = interval;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (interval == 0)
        return 0;
    if (pthread_create(&p->thread, NULL, purge_main, p) != 0)
        return -1;
    p->running = true;
    return 0;
}

static void purger_stop(purger *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->running)
        pthread_join(p->thread, NULL);
    p->running = false;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

/* store.on_damage = reset: say loudly that the store just started empty
 * because its damaged file was set aside (lib/store_lmdb.c names it
 * data.mdb.damaged-TIME, TIME at or after "since"). */
static void report_set_aside(const char *dir, time_t since)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        long long t;
        if (sscanf(de->d_name, "data.mdb.damaged-%lld", &t) == 1 && t >= (long long)since)
            sessiond_log(SESSIOND_LOG_ERROR,
                         "store.on_damage=reset: the damaged store file was moved to "
                         "%s/%s and an empty store started; every session in it is "
                         "lost", dir, de->d_name);
    }
    closedir(d);
}

/* Every WATCH_SEC: one warning for the rotations the store refused since
 * the last look (validate serves those sessions unrotated).  A full disk
 * refuses one write per validation due to rotate; one line per interval
 * keeps the log readable and holds no ID. */
static void watch_deferred(sess_ctx *ctx, uint64_t *seen)
{
    sess_stats st;
    memset(&st, 0, sizeof st);
    /* The counters are filled even when counting the sessions fails, so
     * the result does not decide anything here. */
    int rc = sess_get_stats(ctx, &st, NULL);
    (void)rc;
    if (st.rotations_deferred > *seen)
        sessiond_log(SESSIOND_LOG_WARN,
                     "%llu session rotations deferred in the last %d s: the "
                     "store refused the write (%s); those sessions are served "
                     "unrotated and rotate once the store writes again",
                     (unsigned long long)(st.rotations_deferred - *seen),
                     WATCH_SEC, sess_strerror(st.last_deferral));
    *seen = st.rotations_deferred;
}

/* SIGHUP: new record keys (keeping every key id still in use) and API
 * keys.  Each part keeps its old state when its reload fails. */
static void reload(sessiond_app *app)
{
    const sessiond_config *cfg = app->cfg;
    sess_keyring *kr = NULL;
    sess_err err = {0};
    char msg[512];

    int rc = sess_keyring_load_dir(cfg->keys_dir, false, &kr, &err);
    if (rc == SESS_OK) {
        size_t n = sess_keyring_count(kr);
        char newest[SESS_KID_MAX + 1];
        snprintf(newest, sizeof(newest), "%s",
                 n > 0 ? sess_keyring_kid(kr, 0) : "");
        rc = sess_ctx_reload_keys(app->ctx, kr, false, &err);
        if (rc == SESS_OK) {
            sessiond_log(SESSIOND_LOG_INFO,
                         "reloaded %zu record keys from %s (newest %s)", n,
                         cfg->keys_dir, newest);
            /* The consent MAC keys follow the keyring the context took
             * (still alive: only this thread replaces it). */
            char cmsg[160];
            if (sessiond_cookies_keys(kr, cmsg, sizeof(cmsg)) != 0)
                sessiond_log(SESSIOND_LOG_WARN, "%s (keeping the old ones)",
                             cmsg);
        }
    }
    if (rc != SESS_OK)
        sessiond_log(SESSIOND_LOG_ERROR,
                     "key reload failed, keeping the current keys: %s",
                     err.msg[0] != '\0' ? err.msg : sess_strerror(rc));

    if (cfg->api_keys_file[0] != '\0') {
        if (sessiond_apikeys_load(app->apikeys, cfg->api_keys_file, msg,
                                  sizeof(msg)) == 0)
            sessiond_log(SESSIOND_LOG_INFO, "reloaded %zu API keys",
                         sessiond_apikeys_count(app->apikeys));
        else
            sessiond_log(SESSIOND_LOG_ERROR,
                         "API key reload failed, keeping the current keys: "
                         "%s",
                         msg);
    }
}

/* Create the missing parent directories of "path" (mode 0700), so that a
 * development key directory like ./var/keys can be made in a fresh tree.
 * Errors are left for the keyring loader to report. */
static void make_parents(const char *path)
{
    char buf[SESSIOND_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return;
        buf[i] = '/';
    }
}

/* Read the Redis AUTH password from "path" into "out" (NUL-terminated):
 * the file must be a regular file not readable by group or others (0600),
 * like the keys.  Trailing newlines are dropped.  0, or -1 with "msg". */
static int read_password_file(const char *path, char *out, size_t cap,
                              char *msg, size_t msglen)
{
    struct stat sb;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(msg, msglen, "store.password_file: cannot open %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (sb.st_mode & 077) != 0) {
        fclose(f);
        snprintf(msg, msglen,
                 "store.password_file: %s must be a regular file with mode "
                 "0600", path);
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    bool more = !feof(f) && fgetc(f) != EOF;
    fclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n] = '\0';
    if (more || n == 0 || memchr(out, '\0', n) != NULL) {
        sess_wipe(out, cap);
        snprintf(msg, msglen, "store.password_file: %s is empty, too long "
                              "or holds a NUL byte", path);
        return -1;
    }
    return 0;
}

/* The scheme of a store URL, for logs: the rest may hold a password. */
static void store_scheme(const char *url, char *out, size_t cap)
{
    size_t n = strcspn(url, ":");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, url, n);
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    static sessiond_config cfg;     /* large: keep it off the stack */
    sessiond_app app;
    sessiond_listen_spec spec;
    sessiond_server *srv = NULL;
    sess_keyring *keys = NULL;
    sess_store *store = NULL;
    purger purge;
    bool purge_started = false;
    sessiond_webhooks *webhooks = NULL;
    sigset_t sigs;
    sess_err err = {0};
    char msg[4096];   /* room for paths of SESSIOND_PATH_MAX */
    char url[SESSIOND_URL_TEXT_MAX];
    int status = EXIT_RUNTIME;

    memset(&app, 0, sizeof(app));
    time_t started = time(NULL);

    /* Before any thread exists, so that all inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    sessiond_json_use_wiping_allocator();
    sessiond_metrics_init();
    /* While one thread runs (libcurl's rule); for the webhooks. */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    msg[0] = '\0';
    switch (sessiond_config_load(&cfg, argc, argv, environ, msg,
                                 sizeof(msg))) {
    case SESSIOND_CONFIG_RUN:
    case SESSIOND_CONFIG_CHECK_OK:
        break;
    case SESSIOND_CONFIG_EXIT_OK:
        return 0;
    case SESSIOND_CONFIG_ERROR:
    default:
        fail(msg[0] != '\0' ? msg : "invalid configuration");
        return EXIT_CONFIG;
    }
    sessiond_log_setup(cfg.log_level, cfg.log_format);
    app.cfg = &cfg;
    for (size_t i = 0; i < cfg.n_allowed_origins && i < SESSIOND_ORIGINS_MAX;
         i++)
        app.allowed_origins[app.n_allowed_origins++] = cfg.allowed_origins[i];

    /* ---- checks that belong to the configuration: exit 2 ---- */
    app.apikeys = sessiond_apikeys_new();
    if (app.apikeys == NULL) {
        fail("out of memory");
        goto cleanup;
    }
    if (sessiond_apikeys_load(app.apikeys, cfg.api_keys_file, msg,
                              sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    if (sessiond_listen_parse(cfg.listen, &spec, msg, sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    /* invariant 11: the management API is open only to this
     * machine unless API keys protect it. */
    if (!sessiond_apikeys_enabled(app.apikeys) &&
        !sessiond_listen_is_loopback(&spec)) {
        snprintf(msg, sizeof(msg),
                 "server.listen: %s is not a loopback address; refusing to "
                 "serve the management API without API keys (set "
                 "server.api_keys_file)",
                 cfg.listen);
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    if (cfg.check_config) {
        fprintf(stdout, "sessiond: configuration OK\n");
        status = 0;
        goto cleanup;
    }
    if (sessiond_events_open(cfg.security_events, msg, sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    if (sessiond_access_log_open(cfg.access_log, msg, sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    bool dev = cfg.env == SESS_ENV_DEVELOPMENT;
    if (dev)
        make_parents(cfg.keys_dir);
    int rc = sess_keyring_load_dir(cfg.keys_dir, dev, &keys, &err);
    if (rc != SESS_OK) {
        snprintf(msg, sizeof(msg), "keys: %s: %s%s", cfg.keys_dir,
                 err.msg[0] != '\0' ? err.msg : sess_strerror(rc),
                 dev ? "" : " (outside development keys are never created; "
                            "make them with sessctl keys generate)");
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }

    /* ---- run-time resources: exit 1 ---- */
    char password[512];
    password[0] = '\0';
    if (cfg.store_password_file[0] != '\0' &&
        read_password_file(cfg.store_password_file, password, sizeof(password),
                           msg, sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    uint32_t pool = cfg.store_pool_size;
    if (pool == 0)
        pool = cfg.threads ? 2 * cfg.threads : 16;
    sess_store_options opt = {
        .durability = cfg.durability,
        .map_size = cfg.map_size,
        .timeout_ms = cfg.store_timeout_ms,
        .connect_timeout_ms = cfg.store_connect_timeout_ms,
        .pool_size = pool,
        .replica_timeout_ms = cfg.store_replica_timeout_ms,
        .password = password[0] != '\0' ? password : NULL,
        .l1_cache = cfg.store_l1_cache ? 1 : -1,
        .l1_max_entries = cfg.store_l1_max_entries,
        .on_unavailable = cfg.store_on_unavailable,
        .on_damage = cfg.store_on_damage,
        .group_access = cfg.store_group_access ? 1 : 0,
    };
    char mig_url[3 * SESSIOND_PATH_MAX + 64];
    int mig = sessiond_migration_url(&cfg, mig_url, sizeof mig_url);
    if (mig < 0) {
        fail("migration: from and to are too long together");
        goto cleanup;
    }
    rc = sess_store_open(mig > 0 ? mig_url : cfg.store_url, &opt, &store, &err);
    if (rc == SESS_OK && mig > 0)
        sessiond_migration_attach(store, cfg.migration_from, cfg.migration_to);
    /* The store keeps its own copy; this one goes now. */
    sess_wipe(password, sizeof(password));
    if (rc != SESS_OK) {
        char scheme[32];
        store_scheme(cfg.store_url, scheme, sizeof(scheme));
        /* An LMDB URL is a directory (no secret in it): naming it makes
         * a message about a damaged data.mdb say which one. */
        const char *dir = strcmp(scheme, "lmdb") == 0 ? cfg.store_url + 5 : NULL;
        snprintf(msg, sizeof(msg), "store.url: cannot open the %s store%s%.1024s: %s",
                 scheme, dir ? " in " : "", dir ? dir : "",
                 err.msg[0] != '\0' ? err.msg : sess_strerror(rc));
        fail(msg);
        goto cleanup;
    }
    if (strncmp(cfg.store_url, "lmdb:", 5) == 0)
        report_set_aside(cfg.store_url + 5, started);
    /* Tracing (docs/observability.md): the exporter, and the store wrapped
     * so that a sampled request's store operations become its child
     * spans.  Without tracing.otlp_endpoint neither exists. */
    if (sessiond_otlp_start(&cfg.tracing, msg, sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }
    if (sessiond_otlp_enabled() &&
        sessiond_otlp_observe_store(&store, msg, sizeof(msg)) != 0) {
        fail(msg);
        goto cleanup;
    }
    /* The consent cookie's MAC keys come from the same key files. */
    if (sessiond_cookies_keys(keys, msg, sizeof(msg)) != 0) {
        fail(msg);
        goto cleanup;
    }
    /* sess_ctx_new owns the store and keys from here, even on failure. */
    rc = sess_ctx_new(&cfg.session, store, keys, &app.ctx, &err);
    store = NULL;
    keys = NULL;
    if (rc != SESS_OK) {
        snprintf(msg, sizeof(msg), "session: %s",
                 err.msg[0] != '\0' ? err.msg : sess_strerror(rc));
        fail(msg);
        status = rc == SESS_ECONFIG ? EXIT_CONFIG : EXIT_RUNTIME;
        goto cleanup;
    }
    sess_ctx_set_event_handler(app.ctx, sessiond_events_handler, NULL);
    /* Before the first request: its events go to the outbox too. */
    if (sessiond_webhooks_start(&cfg.events, &webhooks, msg, sizeof(msg)) != 0) {
        fail(msg);
        status = EXIT_CONFIG;
        goto cleanup;
    }

    int fd = sessiond_listen_open(&spec, url, sizeof(url), msg, sizeof(msg));
    if (fd < 0) {
        fail(msg);
        goto cleanup;
    }
    msg[0] = '\0';
    if (sessiond_tokens_init(&app, url, msg, sizeof(msg)) != 0) {
        fail(msg);
        goto cleanup;
    }
    if (sessiond_server_start(&app, fd, spec.is_unix ? spec.path : NULL,
                              &srv, msg, sizeof(msg)) != 0) {
        fail(msg);
        goto cleanup;
    }
    if (purger_start(&purge, app.ctx, cfg.purge_interval) != 0) {
        fail("cannot start the purge thread");
        goto cleanup;
    }
    purge_started = true;

    {
        char scheme[32];
        store_scheme(cfg.store_url, scheme, sizeof(scheme));
        sessiond_log(SESSIOND_LOG_INFO,
                     "sessiond %s started: env %s, %s store, %zu API keys",
                     sess_version(), sess_environment_name(cfg.env), scheme,
                     sessiond_apikeys_count(app.apikeys));
    }
    /* Tests and supervisors wait for this exact line. */
    fprintf(stderr, "sessiond: listening on %s\n", url);
    fflush(stderr);

    uint64_t deferred_seen = 0;
    for (;;) {
        struct timespec tick = {WATCH_SEC, 0};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig < 0) {
            if (errno == EAGAIN)
                watch_deferred(app.ctx, &deferred_seen);
            continue;
        }
        if (sig == SIGHUP) {
            sessiond_log(SESSIOND_LOG_INFO, "SIGHUP: reloading keys");
            reload(&app);
            if (sessiond_webhooks_reload(webhooks, msg, sizeof(msg)) != 0)
                sessiond_log(SESSIOND_LOG_ERROR, "%s (keeping the current "
                             "webhook keys)", msg);
            else if (webhooks != NULL)
                sessiond_log(SESSIOND_LOG_INFO, "reloaded the webhook keys");
            /* logrotate renamed the access log: write to a new file. */
            if (sessiond_access_log_reopen(msg, sizeof(msg)) != 0)
                sessiond_log(SESSIOND_LOG_ERROR, "%s (still writing to the "
                             "old file)", msg);
            if (sessiond_events_reopen(msg, sizeof(msg)) != 0)
                sessiond_log(SESSIOND_LOG_ERROR, "%s (still writing to the "
                             "old file)", msg);
            sessiond_migration_reload(cfg.config_file);
            sessiond_tokens_reload(&app);
            continue;
        }
        sessiond_log(SESSIOND_LOG_INFO, "%s: stopping",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    status = 0;

cleanup:
    sessiond_server_stop(srv, STOP_GRACE_MS);
    if (purge_started)
        purger_stop(&purge);
    /* After every thread that raises events has stopped. */
    sessiond_webhooks_stop(webhooks);
    /* No request runs any more: send the spans still queued (bounded by
     * tracing.timeout_ms). */
    sessiond_otlp_stop();
    sessiond_tokens_free(&app);
    if (app.ctx != NULL)
        sess_ctx_free(app.ctx);
    if (store != NULL)
        sess_store_close(store);
    if (keys != NULL)
        sess_keyring_free(keys);
    sessiond_apikeys_free(app.apikeys);
    sessiond_cookies_shutdown();
    if (status == 0 && !cfg.check_config)
        sessiond_log(SESSIOND_LOG_INFO, "stopped");
    sessiond_access_log_close();
    sessiond_events_close();
    curl_global_cleanup();
    return status;
}
