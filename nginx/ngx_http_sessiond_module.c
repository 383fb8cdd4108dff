/*
 * ngx_http_sessiond_module.c - session validation inside nginx's access
 * phase, on libsess, against the LMDB store sessiond writes
 * (docs/nginx-module.md).
 *
 * The decision is the library's sess_forward_auth_decide, the very
 * function behind sessiond's GET /v1/auth, and so are the forwarding
 * trust rule (sess_fa_client_ip, sess_fa_self_origin) and the user id's
 * header form (sess_fa_user_value): a request gets the same answer either
 * way.  The configuration is read by sessiond's own INI reader
 * (src/sessiond/config.c) at configuration time, so `nginx -t` reports
 * what sessiond --check-config would; a store other than lmdb: is refused
 * there (a Redis round trip would block the worker's event loop: use
 * auth_request to sessiond instead).
 *
 * Where each resource is opened, and why:
 *   - the INI and the record keys: in the master, at configuration time,
 *     as the user nginx starts as (root), like ssl_certificate_key: key
 *     files are 0600 for sessiond's user, and a worker (www-data) must
 *     never be able to read them from disk.  Workers inherit the keyring
 *     in memory; `nginx -s reload` re-reads both (after sessctl keys
 *     generate, reload nginx too).
 *   - the LMDB environment: in each worker, in init_process, after fork
 *     and after nginx has switched to the worker user.  An LMDB
 *     environment must never cross a fork (its reader slots and locks
 *     belong to the process that opened it), and the master never opens
 *     one.  The worker user needs read and write on data.mdb and lock.mdb
 *     (sessiond's store.group_access, docs/nginx-module.md).
 *
 * The per-request state (outcome, identity, the rotated cookie) lives in
 * a pool cleanup as well as in the module context, so an internal
 * redirect (error_page, try_files, index), which clears module contexts,
 * neither validates twice (a second rotation) nor loses the variables or
 * the Set-Cookie; the cleanup wipes the secrets when the request ends.
 * Set-Cookie is added by a header filter, so every response of the
 * request carries it, error pages included (add_header ... always).
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <signal.h>
#include <sys/stat.h>

#include "sess.h"
#include "config.h"

#define SESSIOND_HEADER_LINES 8  /* lines of one header name looked at */
#define SESSIOND_PROXIES_MAX 1024 /* characters of sessiond_trusted_proxies */

typedef struct {
    ngx_str_t file;            /* sessiond_config */
    ngx_array_t *trusted;      /* sessiond_trusted_proxies values */
    sessiond_config *cfg;      /* NULL: no sessiond_config in http{} */
    sess_keyring *keys;        /* read at configuration time; a worker's
                                * context takes it over */
    sess_ctx *ctx;             /* per worker, opened in init_process */
} ngx_http_sessiond_main_conf_t;

typedef struct {
    ngx_flag_t enable;
    ngx_http_complex_value_t *login_redirect;
} ngx_http_sessiond_loc_conf_t;

/* Per request: the decision and what the variables show. */
typedef struct {
    ngx_int_t status;          /* what the access handler answered */
    ngx_str_t user, handle, csrf, outcome;
    ngx_str_t set_cookie;      /* the rotated ID's Set-Cookie, or empty */
    unsigned cookie_sent:1;
} ngx_http_sessiond_req_t;

static ngx_int_t ngx_http_sessiond_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_sessiond_add_variables(ngx_conf_t *cf);
static void *ngx_http_sessiond_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_sessiond_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_sessiond_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_sessiond_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                              void *child);
static ngx_int_t ngx_http_sessiond_init_process(ngx_cycle_t *cycle);
static void ngx_http_sessiond_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_sessiond_trusted_slot(ngx_conf_t *cf, ngx_command_t *cmd,
                                            void *conf);

static ngx_http_output_header_filter_pt ngx_http_next_header_filter;

static ngx_command_t ngx_http_sessiond_commands[] = {
    {ngx_string("sessiond"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_sessiond_loc_conf_t, enable), NULL},
    {ngx_string("sessiond_config"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_MAIN_CONF_OFFSET,
     offsetof(ngx_http_sessiond_main_conf_t, file), NULL},
    {ngx_string("sessiond_trusted_proxies"),
     NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, ngx_http_sessiond_trusted_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL},
    {ngx_string("sessiond_login_redirect"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_http_set_complex_value_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_sessiond_loc_conf_t, login_redirect), NULL},
    ngx_null_command};

static ngx_http_module_t ngx_http_sessiond_module_ctx = {
    ngx_http_sessiond_add_variables, ngx_http_sessiond_init,
    ngx_http_sessiond_create_main_conf, ngx_http_sessiond_init_main_conf,
    NULL, NULL,
    ngx_http_sessiond_create_loc_conf, ngx_http_sessiond_merge_loc_conf};

ngx_module_t ngx_http_sessiond_module = {
    NGX_MODULE_V1, &ngx_http_sessiond_module_ctx, ngx_http_sessiond_commands,
    NGX_HTTP_MODULE, NULL, NULL, ngx_http_sessiond_init_process, NULL, NULL,
    ngx_http_sessiond_exit_process, NULL, NGX_MODULE_V1_PADDING};

/* ---- configuration -------------------------------------------------------- */

static void *ngx_http_sessiond_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_sessiond_main_conf_t *mc = ngx_pcalloc(cf->pool, sizeof(*mc));
    if (mc == NULL)
        return NULL;
    mc->trusted = NGX_CONF_UNSET_PTR;
    return mc;
}

/* sessiond_trusted_proxies A [B ...], possibly repeated: every argument
 * (ngx_conf_set_str_array_slot would keep only the first of a line). */
static char *ngx_http_sessiond_trusted_slot(ngx_conf_t *cf, ngx_command_t *cmd,
                                            void *conf)
{
    ngx_http_sessiond_main_conf_t *mc = conf;
    ngx_str_t *value = cf->args->elts;
    (void)cmd;
    if (mc->trusted == NGX_CONF_UNSET_PTR) {
        mc->trusted = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (mc->trusted == NULL)
            return NGX_CONF_ERROR;
    }
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        ngx_str_t *s = ngx_array_push(mc->trusted);
        if (s == NULL)
            return NGX_CONF_ERROR;
        *s = value[i];
    }
    return NGX_CONF_OK;
}

/* The configuration's pool goes (nginx exits, or a reload replaced it):
 * the keyring it read goes with it, unless a context took it over. */
static void ngx_http_sessiond_free_keys(void *data)
{
    ngx_http_sessiond_main_conf_t *mc = data;
    if (mc->keys != NULL) {
        sess_keyring_free(mc->keys);
        mc->keys = NULL;
    }
}

/* The module's trusted proxies are nginx's peers, not sessiond's: the
 * INI's binding.trusted_proxies (typically nginx itself) is replaced by
 * the sessiond_trusted_proxies values, none by default.  Believing the
 * INI's list here would let a client on such an address choose its own
 * X-Forwarded-For (address spoofing). */
static char *set_trusted(ngx_conf_t *cf, ngx_http_sessiond_main_conf_t *mc)
{
    char joined[SESSIOND_PROXIES_MAX];
    char errbuf[256];
    size_t o = 0;

    if (mc->trusted != NGX_CONF_UNSET_PTR && mc->trusted != NULL) {
        ngx_str_t *v = mc->trusted->elts;
        for (ngx_uint_t i = 0; i < mc->trusted->nelts; i++) {
            if (o + v[i].len + 2 > sizeof(joined)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "sessiond_trusted_proxies: longer than %d "
                                   "characters", SESSIOND_PROXIES_MAX - 1);
                return NGX_CONF_ERROR;
            }
            ngx_memcpy(joined + o, v[i].data, v[i].len);
            o += v[i].len;
            joined[o++] = ' ';
        }
    }
    joined[o] = '\0';
    if (sessiond_config_set(mc->cfg, "binding.trusted_proxies", joined, errbuf,
                            sizeof(errbuf)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessiond_trusted_proxies: %s",
                           errbuf);
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

/* Read the INI with sessiond's own reader, refuse what the module cannot
 * serve, and read the record keys (as the master's user). */
static char *ngx_http_sessiond_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_sessiond_main_conf_t *mc = conf;
    char errbuf[256];
    char file[SESSIOND_PATH_MAX];
    sess_err err;

    if (mc->file.len == 0)
        return NGX_CONF_OK;
    if (mc->file.len >= sizeof(file)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessiond_config: path too long");
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(file, mc->file.data, mc->file.len);
    file[mc->file.len] = '\0';
    mc->cfg = ngx_pcalloc(cf->pool, sizeof(*mc->cfg));
    if (mc->cfg == NULL)
        return NGX_CONF_ERROR;
    /* Only the file: sessiond's SESSIOND_* environment variables belong
     * to sessiond's process, not to nginx's. */
    char *argv[] = {"nginx", "--config", file, NULL};
    char *envp[] = {NULL};
    if (sessiond_config_load(mc->cfg, 3, argv, envp, errbuf, sizeof(errbuf)) !=
        SESSIOND_CONFIG_RUN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessiond_config %s: %s", file,
                           errbuf);
        return NGX_CONF_ERROR;
    }
    if (set_trusted(cf, mc) != NGX_CONF_OK)
        return NGX_CONF_ERROR;

    /* A Redis store would block the event loop on every validate; a
     * memory: store is private to one process (nothing sessiond writes
     * would be seen). */
    if (ngx_strncmp(mc->cfg->store_url, "lmdb:", 5) != 0 ||
        mc->cfg->migration_to[0] != '\0') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sessiond_config %s: the module serves only an "
                           "LMDB store (store.url = lmdb:PATH, no "
                           "migration.to): a Redis store would block "
                           "nginx's event loop on every request; use "
                           "auth_request to sessiond's GET /v1/auth instead "
                           "(docs/nginx-module.md)", file);
        return NGX_CONF_ERROR;
    }
    if (mc->cfg->tokens.accept_bearer || mc->cfg->tokens.fa_audience[0] != '\0')
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "sessiond_config %s: forward_auth.accept_bearer "
                           "and forward_auth.token_audience are sessiond's "
                           "(auth_request); the module validates session "
                           "cookies only", file);

    if (sess_keyring_load_dir(mc->cfg->keys_dir, false, &mc->keys, &err) !=
        SESS_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sessiond_config %s: keys %s: %s", file,
                           mc->cfg->keys_dir, err.msg);
        return NGX_CONF_ERROR;
    }
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_http_sessiond_free_keys(mc);
        return NGX_CONF_ERROR;
    }
    cln->handler = ngx_http_sessiond_free_keys;
    cln->data = mc;
    return NGX_CONF_OK;
}

static void *ngx_http_sessiond_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_sessiond_loc_conf_t *lc = ngx_pcalloc(cf->pool, sizeof(*lc));
    if (lc == NULL)
        return NULL;
    lc->enable = NGX_CONF_UNSET;
    lc->login_redirect = NGX_CONF_UNSET_PTR;
    return lc;
}

static char *ngx_http_sessiond_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                              void *child)
{
    ngx_http_sessiond_loc_conf_t *prev = parent, *lc = child;
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_conf_get_module_main_conf(cf, ngx_http_sessiond_module);
    ngx_conf_merge_value(lc->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(lc->login_redirect, prev->login_redirect, NULL);
    if (lc->enable && mc->file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sessiond on\" needs sessiond_config in http{}");
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

/* ---- per worker ----------------------------------------------------------- */

/* Security events (CSRF failures, binding mismatches, corrupt records)
 * go to nginx's error log: names, handle, address, never an ID. */
static void ngx_http_sessiond_event(void *user, const sess_event *ev)
{
    (void)user;
    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "sessiond: security event %s: handle=%s ip=%s%s%s",
                  sess_event_name(ev->type),
                  ev->handle != NULL ? ev->handle : "-",
                  ev->ip != NULL ? ev->ip : "-",
                  ev->detail != NULL ? " detail=" : "",
                  ev->detail != NULL ? ev->detail : "");
}

/* After fork, as the worker user: this worker's own LMDB environment and
 * context (never the master's: it has none). */
static ngx_int_t ngx_http_sessiond_init_process(ngx_cycle_t *cycle)
{
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_sessiond_module);
    sess_store *store = NULL;
    sess_err err;
    char data_file[SESSIOND_PATH_MAX + 16];
    struct stat sb;
    sigset_t all, saved;

    if (mc == NULL || mc->cfg == NULL || mc->keys == NULL)
        return NGX_OK;
    const char *dir = mc->cfg->store_url + 5;
    /* The module never creates a store: files it made would belong to the
     * worker user and lock sessiond out. */
    ngx_snprintf((u_char *)data_file, sizeof(data_file), "%s/data.mdb%Z", dir);
    if (stat(data_file, &sb) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "sessiond: no store at %s (start sessiond first: it "
                      "creates the store; the worker user needs search on "
                      "the directory)", dir);
        return NGX_ERROR;
    }
    sess_store_options opt;
    ngx_memzero(&opt, sizeof(opt));
    opt.durability = mc->cfg->durability;
    opt.map_size = mc->cfg->map_size;
    /* Never SESS_DAMAGE_RESET here: only sessiond may set a damaged
     * store aside; the worker refuses and logs. */
    opt.on_damage = SESS_DAMAGE_REFUSE;
    /* The store starts a reaper thread: it must not take the signals
     * nginx's master sends this worker (the main thread waits for them). */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    int rc = sess_store_open(mc->cfg->store_url, &opt, &store, &err);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    if (rc != SESS_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "sessiond: store %s: %s (the worker user needs read "
                      "and write on data.mdb and lock.mdb: store.group_access "
                      "in sessiond's configuration)", dir, err.msg);
        return NGX_ERROR;
    }
    /* The context owns the keyring from here, also on failure. */
    sess_keyring *keys = mc->keys;
    mc->keys = NULL;
    if (sess_ctx_new(&mc->cfg->session, store, keys, &mc->ctx, &err) != SESS_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "sessiond: %s", err.msg);
        return NGX_ERROR;
    }
    sess_ctx_set_event_handler(mc->ctx, ngx_http_sessiond_event, NULL);
    return NGX_OK;
}

static void ngx_http_sessiond_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_sessiond_module);
    if (mc != NULL && mc->ctx != NULL) {
        sess_ctx_free(mc->ctx);
        mc->ctx = NULL;
    }
}

/* ---- the request ---------------------------------------------------------- */

/* Every line of header "name" (nginx keeps values NUL-terminated) into
 * "out", at most "cap"; "*more" when there were more. */
static size_t header_all(ngx_http_request_t *r, const char *name,
                         const char **out, size_t cap, ngx_flag_t *more)
{
    size_t n = 0, nlen = ngx_strlen(name);
    ngx_list_part_t *part = &r->headers_in.headers.part;
    ngx_table_elt_t *h = part->elts;
    for (ngx_uint_t i = 0;; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL)
                break;
            part = part->next;
            h = part->elts;
            i = 0;
            if (part->nelts == 0)
                continue;
        }
        if (h[i].key.len == nlen &&
            ngx_strncasecmp(h[i].key.data, (u_char *)name, nlen) == 0) {
            if (n == cap) {
                if (more != NULL)
                    *more = 1;
                break;
            }
            out[n++] = (const char *)h[i].value.data;
        }
    }
    return n;
}

static const char *header1(ngx_http_request_t *r, const char *name)
{
    const char *v = NULL;
    return header_all(r, name, &v, 1, NULL) ? v : NULL;
}

static ngx_int_t set_str(ngx_http_request_t *r, ngx_str_t *dst, const char *s,
                         size_t len)
{
    dst->data = ngx_pnalloc(r->pool, len + 1);
    if (dst->data == NULL)
        return NGX_ERROR;
    ngx_memcpy(dst->data, s, len);
    dst->data[len] = '\0';
    dst->len = len;
    return NGX_OK;
}

/* The request ends: its CSRF token and rotated cookie are secrets. */
static void ngx_http_sessiond_cleanup(void *data)
{
    ngx_http_sessiond_req_t *rq = data;
    if (rq->csrf.data != NULL)
        sess_wipe(rq->csrf.data, rq->csrf.len);
    if (rq->set_cookie.data != NULL)
        sess_wipe(rq->set_cookie.data, rq->set_cookie.len);
}

/* The request's state, also after an internal redirect cleared the
 * module contexts (found through its pool cleanup, as the realip module
 * finds its own). */
static ngx_http_sessiond_req_t *get_state(ngx_http_request_t *r)
{
    ngx_http_sessiond_req_t *rq =
        ngx_http_get_module_ctx(r, ngx_http_sessiond_module);
    if (rq != NULL || !(r->internal || r->filter_finalize))
        return rq;
    for (ngx_pool_cleanup_t *c = r->pool->cleanup; c != NULL; c = c->next) {
        if (c->handler == ngx_http_sessiond_cleanup) {
            rq = c->data;
            ngx_http_set_ctx(r, rq, ngx_http_sessiond_module);
            break;
        }
    }
    return rq;
}

/* The client's method lines, as auth_request passes them to sessiond:
 * the client's own X-Original-Method lines pass through, and
 * X-Forwarded-Method is set to the request's method (docs/deployment.md),
 * so the unsafe one wins (fail closed). */
static size_t method_lines(ngx_http_request_t *r, const char **out,
                           size_t cap, char *own, size_t own_cap,
                           ngx_flag_t *more)
{
    size_t n = header_all(r, "X-Original-Method", out,
                          cap - 1 < SESS_FA_METHOD_LINES_MAX ? cap - 1
                                                             : SESS_FA_METHOD_LINES_MAX,
                          more);
    if (n == SESS_FA_METHOD_LINES_MAX)
        *more = 1;   /* as sessiond reads them (sess/forward_auth.h) */
    size_t mlen = r->method_name.len < own_cap - 1 ? r->method_name.len
                                                   : own_cap - 1;
    ngx_memcpy(own, r->method_name.data, mlen);
    own[mlen] = '\0';
    out[n++] = own;
    return n;
}

/* sess_fa_trust_fn over the module's trusted proxies. */
static bool hop_trusted(const void *arg, const char *ip)
{
    return sessiond_config_is_trusted_proxy(arg, ip);
}

/* 503 for the store, 500 for anything else (as sessiond answers). */
static ngx_int_t error_status(int rc)
{
    static const int store_rcs[] = {SESS_EIO, SESS_EUNAVAILABLE, SESS_EFULL};
    for (size_t i = 0; i < sizeof(store_rcs) / sizeof(store_rcs[0]); i++)
        if (rc == store_rcs[i])
            return NGX_HTTP_SERVICE_UNAVAILABLE;
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

/* No valid session: 401 (error_page 401 decides what the client sees),
 * or with sessiond_login_redirect a 302 for GET and HEAD (a form post
 * redirected would lose its body). */
static ngx_int_t no_session(ngx_http_request_t *r,
                            ngx_http_sessiond_loc_conf_t *lc)
{
    ngx_str_t url;
    if (lc->login_redirect == NULL || !(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)))
        return NGX_HTTP_UNAUTHORIZED;
    if (ngx_http_complex_value(r, lc->login_redirect, &url) != NGX_OK)
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ngx_http_clear_location(r);
    r->headers_out.location = ngx_list_push(&r->headers_out.headers);
    if (r->headers_out.location == NULL)
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    r->headers_out.location->hash = 1;
    ngx_str_set(&r->headers_out.location->key, "Location");
    r->headers_out.location->value = url;
    return NGX_HTTP_MOVED_TEMPORARILY;
}

/* Fill "rq" from a valid session. */
static ngx_int_t take_session(ngx_http_request_t *r, ngx_http_sessiond_req_t *rq,
                              const sess_fa_result *res)
{
    char user[7 + 3 * SESS_USER_ID_MAX + 1];
    int ul = sess_fa_user_value(res->view.user_id, res->view.user_id_len, user,
                                sizeof(user));
    if (ul < 0 || set_str(r, &rq->user, user, (size_t)ul) != NGX_OK ||
        set_str(r, &rq->handle, res->view.handle,
                ngx_strlen(res->view.handle)) != NGX_OK ||
        set_str(r, &rq->csrf, res->csrf, ngx_strlen(res->csrf)) != NGX_OK)
        return NGX_ERROR;
    if (res->set_cookie_len > 0 &&
        set_str(r, &rq->set_cookie, res->set_cookie,
                (size_t)res->set_cookie_len) != NGX_OK)
        return NGX_ERROR;
    return NGX_OK;
}

static ngx_int_t ngx_http_sessiond_handler(ngx_http_request_t *r)
{
    static const char *const outcome_name[] = {"ok", "no_session", "csrf",
                                               "error"};
    ngx_http_sessiond_loc_conf_t *lc =
        ngx_http_get_module_loc_conf(r, ngx_http_sessiond_module);
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_get_module_main_conf(r, ngx_http_sessiond_module);
    const char *cookies[SESSIOND_HEADER_LINES];
    const char *methods[SESSIOND_HEADER_LINES + 1];
    const char *xff[SESSIOND_HEADER_LINES], *proto[SESSIOND_HEADER_LINES];
    const char *fhost[SESSIOND_HEADER_LINES];
    char ip[SESS_IP_MAX + 1], peer[SESS_IP_MAX + 1];
    char own_method[32];
    ngx_flag_t more = 0;
    sess_fa_result res;
    sess_origin self;

    if (!lc->enable || r != r->main)
        return NGX_DECLINED;
    ngx_http_sessiond_req_t *rq = get_state(r);
    if (rq != NULL) {
        /* Decided already, before an internal redirect: never twice (a
         * second rotation).  A refused request on its way to its own
         * error_page is being answered with the refusal: that page is
         * served (a login page under "sessiond on" stays reachable), with
         * the variables empty. */
        if (rq->status != NGX_OK && r->error_page)
            return NGX_DECLINED;
        return rq->status;
    }
    if (mc->ctx == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "sessiond: no store open in this process");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(r->pool, sizeof(*rq));
    if (cln == NULL)
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    rq = cln->data;
    ngx_memzero(rq, sizeof(*rq));
    cln->handler = ngx_http_sessiond_cleanup;
    ngx_http_set_ctx(r, rq, ngx_http_sessiond_module);

    /* nginx 1.22: headers_in.cookies is an array of header pointers. */
    size_t n_cookies = 0;
    ngx_table_elt_t **ch = r->headers_in.cookies.elts;
    for (ngx_uint_t i = 0; i < r->headers_in.cookies.nelts &&
                           n_cookies < SESSIOND_HEADER_LINES; i++)
        cookies[n_cookies++] = (const char *)ch[i]->value.data;

    /* The peer: nginx's $remote_addr (after the realip module, if used). */
    sess_fa_forwarded fw;
    ngx_memzero(&fw, sizeof(fw));
    size_t alen = r->connection->addr_text.len;
    if (r->connection->sockaddr->sa_family != AF_UNIX && alen <= SESS_IP_MAX) {
        ngx_memcpy(peer, r->connection->addr_text.data, alen);
        peer[alen] = '\0';
        fw.peer_ip = peer;
        fw.peer_trusted = sessiond_config_is_trusted_proxy(mc->cfg, peer);
    }
    fw.trusted = hop_trusted;
    fw.trusted_arg = mc->cfg;
    if (fw.peer_trusted) {
        fw.xff_lines = xff;
        fw.n_xff_lines = header_all(r, "X-Forwarded-For", xff,
                                    SESSIOND_HEADER_LINES, NULL);
        fw.real_ip = header1(r, "X-Real-IP");
        fw.proto_lines = proto;
        fw.n_proto_lines = header_all(r, "X-Forwarded-Proto", proto,
                                      SESSIOND_HEADER_LINES, NULL);
        fw.fhost_lines = fhost;
        fw.n_fhost_lines = header_all(r, "X-Forwarded-Host", fhost,
                                      SESSIOND_HEADER_LINES, NULL);
    }
    fw.host = header1(r, "Host");
    /* The scheme the client used ($scheme: what auth_request passes to
     * sessiond as X-Forwarded-Proto). */
#if (NGX_HTTP_SSL)
    fw.https = r->connection->ssl != NULL;
#else
    fw.https = false;
#endif
    sess_fa_client_ip(&fw, ip, sizeof(ip));

    sess_fa_request fr = {
        .cookie_lines = cookies,
        .n_cookie_lines = n_cookies,
        .cookie_name = mc->cfg->cookie.name,
        .method_lines = methods,
        .client_ip = ip,
        .user_agent = header1(r, "User-Agent"),
        .origin = header1(r, "Origin"),
        .sec_fetch_site = header1(r, "Sec-Fetch-Site"),
        .csrf_token = header1(r, "X-CSRF-Token"),
        .self = sess_fa_self_origin(&fw, &self) ? &self : NULL,
        .allowed = mc->cfg->allowed_origin,
        .n_allowed = mc->cfg->n_allowed_origins,
        .cookie = &mc->cfg->cookie,
    };
    fr.n_method_lines = method_lines(r, methods, sizeof(methods) / sizeof(methods[0]),
                                     own_method, sizeof(own_method), &more);
    fr.methods_truncated = more;

    sess_fa_outcome oc = sess_forward_auth_decide(
        mc->ctx, mc->cfg->session.csrf_enabled, &fr, &res);
    rq->outcome.data = (u_char *)outcome_name[oc];
    rq->outcome.len = ngx_strlen(outcome_name[oc]);
    if (res.seen > 1 && res.valid != 0 && oc != SESS_FA_ERROR)
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "sessiond: cookie tossing? %uz session cookies, "
                      "%uz tried, valid: %s", res.seen, res.tried,
                      res.valid >= 0 ? "a later one" : "none");

    switch (oc) {
    case SESS_FA_OK:
        rq->status = take_session(r, rq, &res) == NGX_OK
                         ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
        break;
    case SESS_FA_NO_SESSION:
        rq->status = no_session(r, lc);
        break;
    case SESS_FA_CSRF:
        rq->status = NGX_HTTP_FORBIDDEN;
        break;
    case SESS_FA_ERROR:
    default:
        rq->status = res.rc == SESS_OK ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                       : error_status(res.rc);
        {
            ngx_uint_t level = rq->status == NGX_HTTP_SERVICE_UNAVAILABLE
                                   ? NGX_LOG_WARN : NGX_LOG_ERR;
            ngx_log_error(level, r->connection->log, 0, "sessiond: %s: %s",
                          level == NGX_LOG_WARN ? "store error" : "internal error",
                          res.err.msg[0] != '\0' ? res.err.msg
                                                 : sess_strerror(res.rc));
        }
        break;
    }
    sess_fa_result_clear(&res);
    return rq->status;
}

/* Every response of a request whose session rotated carries the
 * successor's cookie (error pages too). */
static ngx_int_t ngx_http_sessiond_header_filter(ngx_http_request_t *r)
{
    if (r == r->main) {
        ngx_http_sessiond_req_t *rq = get_state(r);
        if (rq != NULL && rq->set_cookie.len > 0 && !rq->cookie_sent) {
            ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL)
                return NGX_ERROR;
            h->hash = 1;
            ngx_str_set(&h->key, "Set-Cookie");
            h->value = rq->set_cookie;
            rq->cookie_sent = 1;
        }
    }
    return ngx_http_next_header_filter(r);
}

/* ---- variables ------------------------------------------------------------ */

static ngx_int_t ngx_http_sessiond_variable(ngx_http_request_t *r,
                                            ngx_http_variable_value_t *v,
                                            uintptr_t data)
{
    ngx_http_sessiond_req_t *rq = get_state(r->main);
    ngx_str_t *s = rq != NULL ? (ngx_str_t *)((char *)rq + data) : NULL;
    if (s == NULL || s->data == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }
    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    return NGX_OK;
}

static ngx_int_t ngx_http_sessiond_add_variables(ngx_conf_t *cf)
{
    static const struct {
        const char *name;
        uintptr_t off;
    } vars[] = {
        {"sessiond_user", offsetof(ngx_http_sessiond_req_t, user)},
        {"sessiond_handle", offsetof(ngx_http_sessiond_req_t, handle)},
        {"sessiond_csrf_token", offsetof(ngx_http_sessiond_req_t, csrf)},
        {"sessiond_outcome", offsetof(ngx_http_sessiond_req_t, outcome)},
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        ngx_str_t name = {ngx_strlen(vars[i].name), (u_char *)vars[i].name};
        ngx_http_variable_t *var =
            ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL)
            return NGX_ERROR;
        var->get_handler = ngx_http_sessiond_variable;
        var->data = vars[i].off;
    }
    return NGX_OK;
}

static ngx_int_t ngx_http_sessiond_init(ngx_conf_t *cf)
{
    ngx_http_core_main_conf_t *cmcf =
        ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    ngx_http_handler_pt *h =
        ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL)
        return NGX_ERROR;
    *h = ngx_http_sessiond_handler;
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_sessiond_header_filter;
    return NGX_OK;
}
