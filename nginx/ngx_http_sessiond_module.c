/*
 * ngx_http_sessiond_module.c - session validation inside nginx's access
 * phase, on libsess, against the LMDB store sessiond writes
 * (docs/nginx-module.md).
 *
 * The decision is the library's sess_forward_auth_decide, the very
 * function behind sessiond's GET /v1/auth, so a request gets the same
 * answer either way.  The configuration is read by sessiond's own INI
 * reader (src/sessiond/config.c), at configuration time, so `nginx -t`
 * reports what sessiond --check-config would; a store other than lmdb:
 * is refused there (a Redis round trip would block the worker's event
 * loop: use auth_request to sessiond instead).
 *
 * The LMDB environment is opened per worker in init_process, after fork:
 * an LMDB environment must never be used across fork (its reader slots
 * and locks belong to the opening process).
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "sess.h"
#include "config.h"

#define SESSIOND_HEADER_LINES 8

typedef struct {
    sessiond_config *cfg;      /* NULL: no sessiond_config in http{} */
    ngx_str_t file;
    ngx_array_t *trusted;      /* sessiond_trusted_proxies values */
    sess_ctx *ctx;             /* per worker, opened in init_process */
} ngx_http_sessiond_main_conf_t;

typedef struct {
    ngx_flag_t enable;
    ngx_str_t login_redirect;
} ngx_http_sessiond_loc_conf_t;

/* Per request: what the variables show. */
typedef struct {
    ngx_str_t user, handle, csrf, outcome;
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

static ngx_command_t ngx_http_sessiond_commands[] = {
    {ngx_string("sessiond"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_sessiond_loc_conf_t, enable), NULL},
    {ngx_string("sessiond_config"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_MAIN_CONF_OFFSET,
     offsetof(ngx_http_sessiond_main_conf_t, file), NULL},
    {ngx_string("sessiond_trusted_proxies"),
     NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, ngx_conf_set_str_array_slot,
     NGX_HTTP_MAIN_CONF_OFFSET,
     offsetof(ngx_http_sessiond_main_conf_t, trusted), NULL},
    {ngx_string("sessiond_login_redirect"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
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

static void *ngx_http_sessiond_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_sessiond_main_conf_t *mc = ngx_pcalloc(cf->pool, sizeof(*mc));
    if (mc == NULL)
        return NULL;
    mc->trusted = NGX_CONF_UNSET_PTR;
    return mc;
}

/* Read the INI with sessiond's own reader, then apply
 * sessiond_trusted_proxies through the same key setter --set uses. */
static char *ngx_http_sessiond_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_sessiond_main_conf_t *mc = conf;
    char errbuf[256];
    char file[SESSIOND_PATH_MAX];

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
    char *argv[] = {"nginx", "--config", file, NULL};
    char *envp[] = {NULL};
    if (sessiond_config_load(mc->cfg, 3, argv, envp, errbuf, sizeof(errbuf)) !=
        SESSIOND_CONFIG_RUN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessiond_config %s: %s", file,
                           errbuf);
        return NGX_CONF_ERROR;
    }
    if (mc->trusted != NGX_CONF_UNSET_PTR && mc->trusted != NULL) {
        ngx_str_t *v = mc->trusted->elts;
        for (ngx_uint_t i = 0; i < mc->trusted->nelts; i++) {
            char val[256];
            if (v[i].len >= sizeof(val))
                return "sessiond_trusted_proxies: entry too long";
            ngx_memcpy(val, v[i].data, v[i].len);
            val[v[i].len] = '\0';
            if (sessiond_config_set(mc->cfg, "binding.trusted_proxies", val,
                                    errbuf, sizeof(errbuf)) != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "sessiond_trusted_proxies: %s", errbuf);
                return NGX_CONF_ERROR;
            }
        }
    }
    /* A Redis store would block the event loop on every validate. */
    if (ngx_strncmp(mc->cfg->store_url, "lmdb:", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sessiond_config %s: store.url must be lmdb:PATH "
                           "for the module (a Redis store would block nginx's "
                           "event loop); use auth_request to sessiond's "
                           "GET /v1/auth instead", file);
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static void *ngx_http_sessiond_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_sessiond_loc_conf_t *lc = ngx_pcalloc(cf->pool, sizeof(*lc));
    if (lc == NULL)
        return NULL;
    lc->enable = NGX_CONF_UNSET;
    return lc;
}

static char *ngx_http_sessiond_merge_loc_conf(ngx_conf_t *cf, void *parent,
                                              void *child)
{
    ngx_http_sessiond_loc_conf_t *prev = parent, *lc = child;
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_conf_get_module_main_conf(cf, ngx_http_sessiond_module);
    ngx_conf_merge_value(lc->enable, prev->enable, 0);
    ngx_conf_merge_str_value(lc->login_redirect, prev->login_redirect, "");
    if (lc->enable && mc->file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sessiond on\" needs sessiond_config in http{}");
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

/* After fork: this worker's own LMDB environment, keys and context. */
static ngx_int_t ngx_http_sessiond_init_process(ngx_cycle_t *cycle)
{
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_sessiond_module);
    sess_keyring *keys = NULL;
    sess_store *store = NULL;
    sess_err err;
    if (mc == NULL || mc->cfg == NULL)
        return NGX_OK;
    if (sess_keyring_load_dir(mc->cfg->keys_dir, false, &keys, &err) != SESS_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "sessiond: keys %s: %s",
                      mc->cfg->keys_dir, err.msg);
        return NGX_ERROR;
    }
    sess_store_options opt;
    ngx_memzero(&opt, sizeof(opt));
    if (sess_store_open(mc->cfg->store_url, &opt, &store, &err) != SESS_OK) {
        sess_keyring_free(keys);
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "sessiond: store: %s",
                      err.msg);
        return NGX_ERROR;
    }
    if (sess_ctx_new(&mc->cfg->session, store, keys, &mc->ctx, &err) != SESS_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "sessiond: %s", err.msg);
        return NGX_ERROR;
    }
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

/* Every line of header "name" (NUL-terminated values, as nginx keeps
 * them) into "out", at most "cap"; "*more" when there were more. */
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
        }
        if (h[i].key.len == nlen &&
            ngx_strncasecmp(h[i].key.data, (u_char *)name, nlen) == 0) {
            if (n == cap) {
                if (more)
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

static ngx_int_t ngx_http_sessiond_handler(ngx_http_request_t *r)
{
    ngx_http_sessiond_loc_conf_t *lc =
        ngx_http_get_module_loc_conf(r, ngx_http_sessiond_module);
    ngx_http_sessiond_main_conf_t *mc =
        ngx_http_get_module_main_conf(r, ngx_http_sessiond_module);
    static const char *const outcome_name[] = {"ok", "no_session", "csrf",
                                               "error"};
    const char *cookies[SESSIOND_HEADER_LINES];
    const char *methods[2 * SESSIOND_HEADER_LINES + 1];
    char ip[SESS_IP_MAX + 1];
    char method[32];
    ngx_flag_t more = 0;
    sess_fa_result res;
    sess_origin self;
    ngx_http_sessiond_req_t *rq;

    if (!lc->enable || r != r->main)
        return NGX_DECLINED;
    rq = ngx_http_get_module_ctx(r, ngx_http_sessiond_module);
    if (rq != NULL)
        return NGX_DECLINED;   /* decided already (internal redirect) */
    rq = ngx_pcalloc(r->pool, sizeof(*rq));
    if (rq == NULL || mc->ctx == NULL)
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ngx_http_set_ctx(r, rq, ngx_http_sessiond_module);

    size_t n_cookies = 0;
    /* nginx 1.22: headers_in.cookies is an array of header pointers. */
    ngx_table_elt_t **ch = r->headers_in.cookies.elts;
    for (ngx_uint_t i = 0; i < r->headers_in.cookies.nelts &&
                           n_cookies < SESSIOND_HEADER_LINES; i++)
        cookies[n_cookies++] = (const char *)ch[i]->value.data;

    /* The request's own method; nginx is not behind a subrequest here. */
    size_t mlen = r->method_name.len < sizeof(method) - 1 ? r->method_name.len
                                                        : sizeof(method) - 1;
    ngx_memcpy(method, r->method_name.data, mlen);
    method[mlen] = '\0';
    methods[0] = method;

    /* The peer address (the forwarding trust rule for nginx is
     * sessiond_config_is_trusted_proxy on the peer; nginx's realip module
     * is the place to believe X-Forwarded-For). */
    size_t alen = r->connection->addr_text.len;
    if (alen > SESS_IP_MAX)
        alen = SESS_IP_MAX;
    ngx_memcpy(ip, r->connection->addr_text.data, alen);
    ip[alen] = '\0';

    sess_fa_request fr = {
        .cookie_lines = cookies,
        .n_cookie_lines = n_cookies,
        .cookie_name = mc->cfg->cookie.name,
        .method_lines = methods,
        .n_method_lines = 1,
        .methods_truncated = more,
        .client_ip = ip,
        .user_agent = header1(r, "User-Agent"),
        .origin = header1(r, "Origin"),
        .sec_fetch_site = header1(r, "Sec-Fetch-Site"),
        .csrf_token = header1(r, "X-CSRF-Token"),
        .allowed = mc->cfg->allowed_origin,
        .n_allowed = mc->cfg->n_allowed_origins,
        .cookie = &mc->cfg->cookie,
    };
    const char *host = header1(r, "Host");
    bool https = mc->cfg->cookie.secure;
#if (NGX_HTTP_SSL)
    if (r->connection->ssl)
        https = true;
#endif
    if (host != NULL &&
        sess_origin_from_host(https, host, ngx_strlen(host), &self) == SESS_OK)
        fr.self = &self;

    sess_fa_outcome oc = sess_forward_auth_decide(
        mc->ctx, mc->cfg->session.csrf_enabled, &fr, &res);
    ngx_str_set(&rq->outcome, "");
    rq->outcome.data = (u_char *)outcome_name[oc];
    rq->outcome.len = ngx_strlen(outcome_name[oc]);

    ngx_int_t rc;
    switch (oc) {
    case SESS_FA_OK:
        if (set_str(r, &rq->user, res.view.user_id, res.view.user_id_len) != NGX_OK ||
            set_str(r, &rq->handle, res.view.handle, ngx_strlen(res.view.handle)) != NGX_OK ||
            set_str(r, &rq->csrf, res.csrf, ngx_strlen(res.csrf)) != NGX_OK) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;
        }
        if (res.set_cookie_len > 0) {
            ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL ||
                set_str(r, &h->value, res.set_cookie, (size_t)res.set_cookie_len) != NGX_OK) {
                rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
                break;
            }
            h->hash = 1;
            ngx_str_set(&h->key, "Set-Cookie");
        }
        rc = NGX_OK;
        break;
    case SESS_FA_NO_SESSION:
        if (lc->login_redirect.len > 0 &&
            (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
                break;
            }
            h->hash = 1;
            ngx_str_set(&h->key, "Location");
            h->value = lc->login_redirect;
            r->headers_out.location = h;
            rc = NGX_HTTP_MOVED_TEMPORARILY;
            break;
        }
        rc = NGX_HTTP_UNAUTHORIZED;
        break;
    case SESS_FA_CSRF:
        rc = NGX_HTTP_FORBIDDEN;
        break;
    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "sessiond: store failure: %s", res.err.msg);
        rc = NGX_HTTP_SERVICE_UNAVAILABLE;
        break;
    }
    sess_fa_result_clear(&res);
    return rc;
}

static ngx_int_t ngx_http_sessiond_variable(ngx_http_request_t *r,
                                            ngx_http_variable_value_t *v,
                                            uintptr_t data)
{
    ngx_http_sessiond_req_t *rq =
        ngx_http_get_module_ctx(r->main, ngx_http_sessiond_module);
    if (rq == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }
    ngx_str_t *s = (ngx_str_t *)((char *)rq + data);
    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    return NGX_OK;
}

static ngx_int_t ngx_http_sessiond_add_variables(ngx_conf_t *cf)
{
    static const struct {
        ngx_str_t name;
        uintptr_t off;
    } vars[] = {
        {ngx_string("sessiond_user"), offsetof(ngx_http_sessiond_req_t, user)},
        {ngx_string("sessiond_handle"), offsetof(ngx_http_sessiond_req_t, handle)},
        {ngx_string("sessiond_csrf_token"), offsetof(ngx_http_sessiond_req_t, csrf)},
        {ngx_string("sessiond_outcome"), offsetof(ngx_http_sessiond_req_t, outcome)},
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        ngx_str_t name = vars[i].name;
        ngx_http_variable_t *var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
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
    return NGX_OK;
}
