/*
 * tokens.c - the daemon side of tokens (docs/tokens.md): POST /v1/tokens
 * (mint), /v1/tokens/refresh, /v1/tokens/introspect (RFC 7662),
 * /v1/tokens/revoke (RFC 7009), GET /.well-known/jwks.json and
 * /.well-known/oauth-authorization-server (RFC 8414), and the forward-auth
 * hooks.
 *
 * Session state (validation, the refresh token and its theft detection)
 * is the library's (sess_token_*): this file turns a session view into
 * claims, signs them with the current key of the reloadable keyring, and
 * speaks HTTP.  Claims are built the same way for every path, so a mint, a
 * refresh and the forward-auth token of one session agree.
 *
 * The forward-auth cache holds one token per session (the audience is one
 * per configuration): minted once, reused until a minute before it
 * expires, and only ever attached after that request's session validated,
 * so a revoked session gets no token from it (revocation wins).  Entries
 * are wiped when replaced.  It is striped by a hash of the handle, each
 * stripe under its own mutex.
 */
#include "tokens.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "events.h"
#include "forward_auth.h"
#include "request.h"
#include "sess/jwt.h"

#define AUD_ITEMS_MAX 8
#define AUD_ITEM_MAX 255
#define CLAIM_NAMES_MAX 16
#define FA_STRIPES 64
#define FA_WAYS 64                 /* entries per stripe: 4096 in all */
#define FA_REUSE_MARGIN 60         /* mint again a minute before exp */
#define ISSUER_MAX (SESSIOND_PATH_MAX + 16)

static const char content_json[] = "application/json";

typedef struct fa_entry {
    char handle[SESS_HANDLE_LEN + 1];
    uint64_t exp;
    uint64_t data_version;
    bool elevated;
    char *value;                   /* "Bearer <token>", malloc'd */
    size_t value_len;
} fa_entry;

typedef struct fa_stripe {
    pthread_mutex_t lock;
    unsigned next;                 /* round-robin victim */
    fa_entry e[FA_WAYS];
} fa_stripe;

typedef struct sessiond_tokens {
    sess_sigkeys_slot *slot;
    char issuer[ISSUER_MAX];
    char jwks_uri[ISSUER_MAX + 32];
    unsigned alg_bit;
    char claim_names[CLAIM_NAMES_MAX][64];
    size_t n_claims;
    char cache_control[48];
    fa_stripe *fa;                 /* NULL without token_audience */
    char fa_aud_json[SESSIOND_ORIGIN_MAX * 2];
} sessiond_tokens;

static sessiond_tokens *state(sessiond_app *app)
{
    return app->tokens;
}

/* ---- keys ---------------------------------------------------------------- */

static const sess_sigkey_type alg_key_type[] = {
    [SESSIOND_TOKEN_EDDSA] = SESS_SIGKEY_ED25519,
    [SESSIOND_TOKEN_ED25519] = SESS_SIGKEY_ED25519,
    [SESSIOND_TOKEN_ES256] = SESS_SIGKEY_P256,
    [SESSIOND_TOKEN_RS256] = SESS_SIGKEY_RSA,
};
static const unsigned alg_bits[] = {
    [SESSIOND_TOKEN_EDDSA] = SESS_JWT_EDDSA,
    [SESSIOND_TOKEN_ED25519] = SESS_JWT_ED25519,
    [SESSIOND_TOKEN_ES256] = SESS_JWT_ES256,
    [SESSIOND_TOKEN_RS256] = SESS_JWT_RS256,
};

/* Load the keyring; the current key must be of the configured type (a
 * verifier pinned to tokens.alg would refuse anything else). */
static int load_keys(const sessiond_config *cfg, sess_sigkeys **out,
                     char *msg, size_t cap)
{
    const sessiond_tokens_config *t = &cfg->tokens;
    sess_err err = {0};
    unsigned flags = t->alg == SESSIOND_TOKEN_ED25519
                         ? SESS_SIGKEYS_ED25519_NAME : 0;
    struct stat st;

    if (cfg->env == SESS_ENV_DEVELOPMENT) {
        if (alg_key_type[t->alg] == SESS_SIGKEY_ED25519) {
            flags |= SESS_SIGKEYS_CREATE;
        } else if (stat(t->keys_dir, &st) != 0 && errno == ENOENT) {
            /* Development with ES256/RS256: a first key of that type. */
            if (sess_sigkeys_generate(t->keys_dir, alg_key_type[t->alg], 0,
                                      NULL, &err) != SESS_OK) {
                snprintf(msg, cap, "tokens.keys_dir %s: %s", t->keys_dir,
                         err.msg);
                return -1;
            }
        }
    }
    if (cfg->env != SESS_ENV_DEVELOPMENT && stat(t->keys_dir, &st) != 0 &&
        errno == ENOENT) {
        /* Outside development tokens are opt-in: no signing key directory
         * means no tokens (their routes answer 503), not a refused start
         * for a deployment that only uses sessions. */
        *out = NULL;
        return 0;
    }
    if (sess_sigkeys_load_dir(t->keys_dir, flags, 0, out, &err) != SESS_OK) {
        snprintf(msg, cap, "tokens.keys_dir %s: %s", t->keys_dir,
                 err.msg[0] ? err.msg : sess_strerror(err.code));
        return -1;
    }
    const char *kid = sess_sigkeys_current_kid(*out);
    if (kid == NULL)
        return 0;   /* serves the JWKS; minting answers 503 */
    sess_sigkey_info *info = NULL;
    size_t n = 0;
    if (sess_sigkeys_list(t->keys_dir, 0, &info, &n, &err) == SESS_OK) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(info[i].kid, kid) == 0 &&
                info[i].type != alg_key_type[t->alg]) {
                snprintf(msg, cap, "tokens.alg = %s but the current signing "
                         "key %s is of type %s",
                         sess_jwt_alg_name(alg_bits[t->alg]), kid,
                         sess_sigkey_type_name(info[i].type));
                free(info);
                sess_sigkeys_free(*out);
                *out = NULL;
                return -1;
            }
        }
        free(info);
    }
    return 0;
}

static void split_claims(sessiond_tokens *T, const char *list)
{
    const char *p = list;
    while (*p != '\0' && T->n_claims < CLAIM_NAMES_MAX) {
        size_t n = strcspn(p, ",");
        size_t a = 0, b = n;
        while (a < b && (p[a] == ' ' || p[a] == '\t'))
            a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
            b--;
        if (b > a && b - a < sizeof T->claim_names[0]) {
            memcpy(T->claim_names[T->n_claims], p + a, b - a);
            T->claim_names[T->n_claims][b - a] = '\0';
            T->n_claims++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
}

int sessiond_tokens_init(sessiond_app *app, const char *url, char *msg,
                         size_t cap)
{
    const sessiond_config *cfg = app->cfg;
    sessiond_tokens *T = calloc(1, sizeof *T);
    sess_sigkeys *keys = NULL;

    if (T == NULL) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    if (load_keys(cfg, &keys, msg, cap) == 0 && keys == NULL) {
        if (cfg->tokens.fa_audience[0] != '\0') {
            snprintf(msg, cap, "forward_auth.token_audience needs signing keys: "
                     "tokens.keys_dir %s does not exist (sessctl keys generate "
                     "--use sig --dir %s)", cfg->tokens.keys_dir,
                     cfg->tokens.keys_dir);
            free(T);
            return -1;
        }
        sessiond_log(SESSIOND_LOG_INFO, "tokens off: no signing key directory %s",
                     cfg->tokens.keys_dir);
    } else if (msg[0] != '\0' || keys == NULL ||
               sess_sigkeys_slot_new(keys, &T->slot) != SESS_OK) {
        if (keys != NULL && T->slot == NULL)
            sess_sigkeys_free(keys);
        if (msg[0] == '\0')
            snprintf(msg, cap, "out of memory");
        free(T);
        return -1;
    }
    if (cfg->tokens.issuer[0] != '\0') {
        snprintf(T->issuer, sizeof T->issuer, "%s", cfg->tokens.issuer);
    } else if (url != NULL && strncmp(url, "http", 4) == 0) {
        snprintf(T->issuer, sizeof T->issuer, "%s", url);
    } else {
        snprintf(T->issuer, sizeof T->issuer, "http://localhost");
    }
    size_t il = strlen(T->issuer);
    while (il > 0 && T->issuer[il - 1] == '/')
        T->issuer[--il] = '\0';
    snprintf(T->jwks_uri, sizeof T->jwks_uri, "%s/.well-known/jwks.json",
             T->issuer);
    T->alg_bit = alg_bits[cfg->tokens.alg];
    split_claims(T, cfg->tokens.claims);
    snprintf(T->cache_control, sizeof T->cache_control,
             "public, max-age=%u", cfg->tokens.jwks_max_age);
    if (cfg->tokens.fa_audience[0] != '\0') {
        json_t *a = json_string(cfg->tokens.fa_audience);
        char *txt = a != NULL ? json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT)
                              : NULL;
        json_decref(a);
        T->fa = calloc(FA_STRIPES, sizeof *T->fa);
        if (txt == NULL || T->fa == NULL ||
            strlen(txt) >= sizeof T->fa_aud_json) {
            free(txt);
            free(T->fa);
            if (T->slot != NULL)
                sess_sigkeys_slot_free(T->slot);
            free(T);
            snprintf(msg, cap, "forward_auth.token_audience: out of memory "
                     "or too long");
            return -1;
        }
        memcpy(T->fa_aud_json, txt, strlen(txt) + 1);
        free(txt);
        for (size_t i = 0; i < FA_STRIPES; i++)
            pthread_mutex_init(&T->fa[i].lock, NULL);
    }
    app->tokens = T;
    return 0;
}

void sessiond_tokens_reload(sessiond_app *app)
{
    sessiond_tokens *T = state(app);
    sess_sigkeys *keys = NULL;
    char msg[512] = "";
    if (T == NULL)
        return;
    if (load_keys(app->cfg, &keys, msg, sizeof msg) != 0) {
        sessiond_log(SESSIOND_LOG_ERROR, "signing key reload failed, keeping "
                     "the current keys: %s", msg);
        return;
    }
    if (keys == NULL)
        return;   /* still no key directory: tokens stay off */
    const char *kid = sess_sigkeys_current_kid(keys);
    sessiond_log(SESSIOND_LOG_INFO, "reloaded signing keys from %s "
                 "(current %s)", app->cfg->tokens.keys_dir,
                 kid != NULL ? kid : "none");
    if (T->slot == NULL) {
        /* Tokens were off and a key directory appeared: they start now. */
        if (sess_sigkeys_slot_new(keys, &T->slot) != SESS_OK)
            sess_sigkeys_free(keys);
        return;
    }
    sess_sigkeys_slot_set(T->slot, keys);
}

static void fa_wipe(fa_entry *e)
{
    if (e->value != NULL) {
        sess_wipe(e->value, e->value_len);
        free(e->value);
    }
    memset(e, 0, sizeof *e);
}

void sessiond_tokens_free(sessiond_app *app)
{
    sessiond_tokens *T = state(app);
    if (T == NULL)
        return;
    if (T->fa != NULL) {
        for (size_t i = 0; i < FA_STRIPES; i++) {
            for (size_t j = 0; j < FA_WAYS; j++)
                fa_wipe(&T->fa[i].e[j]);
            pthread_mutex_destroy(&T->fa[i].lock);
        }
        free(T->fa);
    }
    if (T->slot != NULL)
        sess_sigkeys_slot_free(T->slot);
    free(T);
    app->tokens = NULL;
}

/* ---- claims and signing ---------------------------------------------------- */

/* acr values: an elevated session (a recent re-authentication or a second
 * factor, as the application decided) is the stronger one. */
#define ACR_SESSION "urn:sessiond:acr:session"
#define ACR_ELEVATED "urn:sessiond:acr:elevated"

static bool put(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v) == 0;
}

/* The claims of an access token for "view" (data included). */
static json_t *claims_of(sessiond_tokens *T, const sess_view *view,
                         const char *aud_json, size_t aud_len,
                         const char *jti, uint64_t iat, uint64_t exp)
{
    json_t *c = json_object();
    json_t *aud = json_loadb(aud_json, aud_len, JSON_DECODE_ANY, NULL);
    bool ok = c != NULL && aud != NULL &&
              put(c, "iss", json_string(T->issuer)) &&
              put(c, "sub", json_stringn(view->user_id, view->user_id_len)) &&
              put(c, "aud", aud) &&
              put(c, "exp", json_integer((json_int_t)exp)) &&
              put(c, "iat", json_integer((json_int_t)iat)) &&
              put(c, "nbf", json_integer((json_int_t)iat)) &&
              put(c, "jti", json_string(jti)) &&
              put(c, "sid", json_string(view->handle)) &&
              put(c, "auth_time", json_integer((json_int_t)view->created_at)) &&
              put(c, "acr", json_string(view->elevated ? ACR_ELEVATED
                                                       : ACR_SESSION));
    if (c == NULL || aud == NULL) {
        if (aud != NULL && c == NULL)
            json_decref(aud);
        ok = false;
    }
    if (ok && T->n_claims > 0 && view->data != NULL && view->data_len > 0) {
        json_t *d = json_loadb(view->data, view->data_len, 0, NULL);
        for (size_t i = 0; ok && json_is_object(d) && i < T->n_claims; i++) {
            json_t *v = json_object_get(d, T->claim_names[i]);
            if (v != NULL)
                ok = json_object_set(c, T->claim_names[i], v) == 0;
        }
        json_decref(d);
    }
    if (!ok) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* Sign "claims" with the current key.  SESS_OK with "*token", or an error
 * (SESS_ENOKEY without a current key). */
static int sign(sessiond_tokens *T, const json_t *claims, char **token,
                sess_err *err)
{
    sess_sigkeys *keys = T->slot != NULL ? sess_sigkeys_slot_get(T->slot) : NULL;
    int rc = keys != NULL ? sess_jwt_sign(keys, claims, NULL, token, err)
                          : SESS_ENOKEY;
    sess_sigkeys_free(keys);
    return rc;
}

static void random_jti(char out[SESS_JTI_LEN + 1])
{
    unsigned char raw[16];
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (getentropy(raw, sizeof raw) != 0)
        memset(raw, 0, sizeof raw);   /* unreachable on Linux >= 3.17 */
    /* 128 bits in 22 base64url characters (the last holds 2 bits). */
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < sizeof raw; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* ---- request helpers -------------------------------------------------------- */

static json_t *parse_json_body(const sessiond_http_req *req,
                               sessiond_http_resp *resp)
{
    if (req->body == NULL || req->body_len == 0) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "the request body is empty");
        return NULL;
    }
    json_t *root = json_loadb(req->body, req->body_len,
                              JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        /* Never the parser's text: it may quote a token. */
        sessiond_resp_error(resp, 400, "invalid_request",
                            "the request body must be a JSON object without "
                            "repeated members");
        return NULL;
    }
    return root;
}

/* The string member "name" of "root", at most "max" bytes; NULL (and a
 * 400 in "resp") when missing or wrong. */
static const char *string_member(json_t *root, const char *name, size_t max,
                                 size_t *len, sessiond_http_resp *resp)
{
    json_t *v = json_object_get(root, name);
    char msg[96];
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > max) {
        snprintf(msg, sizeof msg, "\"%s\" must be a non-empty string of at "
                 "most %zu bytes", name, max);
        sessiond_resp_error(resp, 400, "invalid_request", msg);
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

/* "audience": a string or a non-empty array of strings; its compact JSON
 * text goes to "out".  false (and a 400) when it is anything else. */
static bool audience_json(json_t *root, char *out, size_t cap, size_t *len,
                          sessiond_http_resp *resp)
{
    json_t *a = json_object_get(root, "audience");
    bool ok = false;
    if (json_is_string(a)) {
        ok = json_string_length(a) > 0 && json_string_length(a) <= AUD_ITEM_MAX;
    } else if (json_is_array(a) && json_array_size(a) > 0 &&
               json_array_size(a) <= AUD_ITEMS_MAX) {
        size_t i;
        json_t *v;
        ok = true;
        json_array_foreach(a, i, v) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > AUD_ITEM_MAX)
                ok = false;
        }
    }
    if (ok) {
        size_t n = json_dumpb(a, out, cap, JSON_COMPACT | JSON_ENCODE_ANY);
        ok = n > 0 && n < cap;
        *len = n;
        if (ok)
            out[n] = '\0';
    }
    if (!ok)
        sessiond_resp_error(resp, 400, "invalid_request",
                            "\"audience\" must be a string or an array of 1 "
                            "to 8 strings of 1 to 255 bytes");
    return ok;
}

/* "client": {"ip", "user_agent"?}, as the session API takes it. */
static bool client_member(json_t *root, bool required, sess_client *c,
                          char ip[SESS_IP_MAX + 1], bool *present,
                          sessiond_http_resp *resp)
{
    json_t *cl = json_object_get(root, "client");
    sess_ip parsed;
    *present = false;
    if (cl == NULL || json_is_null(cl)) {
        if (!required)
            return true;
        sessiond_resp_error(resp, 400, "invalid_request",
                            "\"client\" is required");
        return false;
    }
    json_t *vip = json_object_get(cl, "ip");
    json_t *vua = json_object_get(cl, "user_agent");
    if (!json_is_object(cl) || !json_is_string(vip) ||
        json_string_length(vip) > SESS_IP_MAX ||
        sess_ip_parse(json_string_value(vip), &parsed) != SESS_OK ||
        (vua != NULL && !json_is_null(vua) &&
         (!json_is_string(vua) ||
          json_string_length(vua) > SESSIOND_UA_IN_MAX))) {
        sessiond_resp_error(resp, 400, "invalid_request",
                            "\"client\" must be {\"ip\": IPv4 or IPv6, "
                            "\"user_agent\"?: string}");
        return false;
    }
    memcpy(ip, json_string_value(vip), json_string_length(vip) + 1);
    c->ip = ip;
    c->user_agent = json_is_string(vua) ? json_string_value(vua) : NULL;
    *present = true;
    return true;
}

static void wipe_member(json_t *root, const char *name)
{
    json_t *v = json_object_get(root, name);
    if (json_is_string(v))
        sess_wipe((char *)json_string_value(v), json_string_length(v));
}

static void invalid_session(sessiond_http_resp *resp, sess_reason reason)
{
    if (reason == SESS_REASON_NONE)
        reason = SESS_REASON_UNKNOWN;
    sessiond_resp_error2(resp, 401, "invalid_session",
                         "the session is not valid", "reason",
                         sess_reason_name(reason));
}

/* {"access_token", "token_type", "expires_in", "refresh_token", ...}. */
static void token_response(sessiond_app *app, sessiond_tokens *T,
                           const sess_view *v, const sess_token_grant *g,
                           sessiond_http_resp *resp)
{
    sess_err err = {0};
    char *at = NULL;
    uint64_t now = sess_ctx_now(app->ctx);
    json_t *claims = claims_of(T, v, g->audience, g->audience_len, g->jti,
                               g->iat, g->exp);
    int rc = claims != NULL ? sign(T, claims, &at, &err) : SESS_ENOMEM;
    json_decref(claims);
    if (rc == SESS_ENOKEY) {
        /* No current signing key (tokens off, or a key retired before the
         * next one was rotated in): the operator's to fix, not a bug. */
        sessiond_resp_error(resp, 503, "unavailable",
                            "no current signing key (sessctl keys rotate)");
        return;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        return;
    }
    json_t *o = json_object();
    bool ok = put(o, "access_token", json_string(at)) &&
              put(o, "token_type", json_string("Bearer")) &&
              put(o, "expires_in",
                  json_integer((json_int_t)(g->exp > now ? g->exp - now : 0))) &&
              put(o, "refresh_token", json_string(g->refresh_token)) &&
              put(o, "refresh_expires_in",
                  json_integer((json_int_t)(g->refresh_expires_at > now
                                                ? g->refresh_expires_at - now
                                                : 0)));
    sess_wipe(at, strlen(at));
    free(at);
    if (ok && v->rotated) {
        char cookie[SESS_SET_COOKIE_MAX];
        json_t *rot = json_object();
        bool rok = sess_issued_cookie(app->ctx, &app->cfg->cookie,
                                      &v->successor, cookie,
                                      sizeof cookie) > 0 &&
                   put(rot, "session_id", json_string(v->successor.id)) &&
                   put(rot, "set_cookie", json_string(cookie)) &&
                   put(rot, "csrf_token",
                       json_string(v->successor.csrf_token)) &&
                   put(rot, "expires_at",
                       json_integer((json_int_t)v->successor.expires_at)) &&
                   put(rot, "idle_expires_at",
                       json_integer((json_int_t)v->successor.idle_expires_at));
        sess_wipe(cookie, sizeof cookie);
        if (rok) {
            ok = put(o, "rotated", rot);
        } else {
            json_decref(rot);
            ok = false;
        }
    }
    if (!ok) {
        json_decref(o);
        o = NULL;
    }
    sessiond_resp_json(resp, 200, o, true);
}

static sess_token_policy policy_of(const sessiond_app *app)
{
    const sessiond_tokens_config *t = &app->cfg->tokens;
    sess_token_policy p = {t->access_ttl, t->refresh_ttl, t->refresh_grace};
    return p;
}

/* ---- POST /v1/tokens ---------------------------------------------------------- */

void sessiond_tokens_mint(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    char aud[SESS_TOKEN_AUD_MAX + 1], ip[SESS_IP_MAX + 1];
    size_t aud_len = 0, id_len = 0;
    sess_client client = {0};
    sess_token_policy pol = policy_of(app);
    sess_token_grant g;
    sess_view v;
    sess_err err = {0};
    bool has_client;

    memset(&v, 0, sizeof v);
    memset(&g, 0, sizeof g);
    json_t *root = parse_json_body(req, resp);
    if (root == NULL)
        return;
    const char *id = string_member(root, "session_id", 256, &id_len, resp);
    if (id == NULL || !client_member(root, true, &client, ip, &has_client, resp) ||
        !audience_json(root, aud, sizeof aud, &aud_len, resp))
        goto cleanup;
    int rc = sess_token_issue(app->ctx, id, id_len, &client, aud, aud_len,
                              &pol, &v, &g, &err);
    if (rc == SESS_REJECTED) {
        invalid_session(resp, v.reason);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    token_response(app, T, &v, &g, resp);

cleanup:
    sess_wipe(&g, sizeof g);
    sess_view_clear(&v);
    wipe_member(root, "session_id");
    json_decref(root);
}

/* ---- POST /v1/tokens/refresh ---------------------------------------------------- */

static void invalid_token(sessiond_http_resp *resp)
{
    sessiond_resp_error(resp, 401, "invalid_token",
                        "the refresh token is not valid");
}

void sessiond_tokens_refresh(sessiond_app *app, const sessiond_http_req *req,
                             sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    char ip[SESS_IP_MAX + 1];
    size_t rt_len = 0;
    sess_client client = {0};
    sess_token_policy pol = policy_of(app);
    sess_token_grant g;
    sess_view v;
    sess_err err = {0};
    bool has_client;

    memset(&v, 0, sizeof v);
    memset(&g, 0, sizeof g);
    json_t *root = parse_json_body(req, resp);
    if (root == NULL)
        return;
    const char *rt = string_member(root, "refresh_token", 256, &rt_len, resp);
    if (rt == NULL || !client_member(root, false, &client, ip, &has_client, resp))
        goto cleanup;
    int rc = sess_token_refresh(app->ctx, rt, rt_len,
                                has_client ? &client : NULL, &pol, &v, &g,
                                &err);
    if (rc == SESS_REJECTED) {
        invalid_token(resp);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    token_response(app, T, &v, &g, resp);

cleanup:
    sess_wipe(&g, sizeof g);
    sess_view_clear(&v);
    wipe_member(root, "refresh_token");
    json_decref(root);
}

/* ---- verification of our own access tokens ------------------------------------- */

/* Verify access token "tok" against the published keys.  "aud" NULL skips
 * the audience (introspection answers for any audience).  SESS_OK with
 * "*claims", SESS_REJECTED, or an error. */
static int verify_access(sessiond_app *app, const char *tok, size_t len,
                         const char *aud, json_t **claims)
{
    sessiond_tokens *T = state(app);
    sess_jwt_verify_opts o;
    sess_jwt_reason why;
    sess_err err = {0};
    sess_sigkeys *keys = T->slot != NULL ? sess_sigkeys_slot_get(T->slot) : NULL;
    if (keys == NULL)
        return SESS_REJECTED;
    sess_jwt_verify_opts_init(&o);
    o.algs = SESS_JWT_ALGS_SESSIOND;
    o.issuer = T->issuer;
    o.audience = aud;
    o.skip_audience = aud == NULL;
    o.now = (int64_t)sess_ctx_now(app->ctx);
    o.leeway = app->cfg->tokens.leeway;
    int rc = sess_jwt_verify(sess_sigkeys_jwks(keys), tok, len, &o, claims,
                             &why, &err);
    sess_sigkeys_free(keys);
    return rc;
}

/* ---- POST /v1/tokens/introspect (RFC 7662) -------------------------------------- */

static void inactive(sessiond_http_resp *resp)
{
    sessiond_resp_static(resp, 200, content_json, "{\"active\":false}");
}

static bool is_refresh(const char *tok, size_t len)
{
    return len >= 4 && memcmp(tok, "rt1.", 4) == 0;
}

void sessiond_tokens_introspect(sessiond_app *app,
                                const sessiond_http_req *req,
                                sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    size_t len = 0;
    sess_view v;
    sess_token_grant g;
    sess_err err = {0};
    json_t *claims = NULL;
    int rc;

    memset(&v, 0, sizeof v);
    memset(&g, 0, sizeof g);
    json_t *root = parse_json_body(req, resp);
    if (root == NULL)
        return;
    const char *tok = string_member(root, "token", SESS_JWT_MAX, &len, resp);
    if (tok == NULL)
        goto cleanup;
    if (is_refresh(tok, len)) {
        if (len != SESS_REFRESH_TOKEN_LEN) {
            inactive(resp);
            goto cleanup;
        }
        char handle[SESS_HANDLE_LEN + 1];
        memcpy(handle, tok + 4, SESS_HANDLE_LEN);
        handle[SESS_HANDLE_LEN] = '\0';
        rc = sess_token_session(app->ctx, handle, SESS_HANDLE_LEN, tok, len,
                                &v, &g, &err);
        if (rc == SESS_REJECTED) {
            inactive(resp);
            goto cleanup;
        }
        if (rc != SESS_OK) {
            sessiond_api_library_error(resp, rc, &err);
            goto cleanup;
        }
        json_t *o = json_object();
        json_t *aud = json_loadb(g.audience, g.audience_len, JSON_DECODE_ANY,
                                 NULL);
        bool ok = put(o, "active", json_true()) &&
                  put(o, "token_type", json_string("refresh_token")) &&
                  put(o, "iss", json_string(T->issuer)) &&
                  put(o, "sub", json_stringn(v.user_id, v.user_id_len)) &&
                  put(o, "sid", json_string(v.handle)) &&
                  put(o, "aud", aud != NULL ? aud : json_null()) &&
                  put(o, "exp", json_integer((json_int_t)g.refresh_expires_at)) &&
                  put(o, "iat", json_integer((json_int_t)g.iat));
        if (!ok) {
            json_decref(o);
            o = NULL;
        }
        sessiond_resp_json(resp, 200, o, false);
        goto cleanup;
    }
    rc = verify_access(app, tok, len, NULL, &claims);
    if (rc == SESS_REJECTED) {
        inactive(resp);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    /* A valid signature is not enough: the session behind it must still be
     * live (revocation wins over a token's remaining minutes here). */
    json_t *sid = json_object_get(claims, "sid");
    if (!json_is_string(sid)) {
        inactive(resp);
        goto cleanup;
    }
    rc = sess_token_session(app->ctx, json_string_value(sid),
                            json_string_length(sid), NULL, 0, &v, NULL, &err);
    if (rc == SESS_REJECTED) {
        inactive(resp);
        goto cleanup;
    }
    if (rc != SESS_OK) {
        sessiond_api_library_error(resp, rc, &err);
        goto cleanup;
    }
    if (!put(claims, "active", json_true()) ||
        !put(claims, "token_type", json_string("access_token"))) {
        sessiond_resp_error(resp, 500, "internal_error", "out of memory");
        goto cleanup;
    }
    sessiond_resp_json(resp, 200, claims, false);
    claims = NULL;

cleanup:
    json_decref(claims);
    sess_view_clear(&v);
    sess_wipe(&g, sizeof g);
    wipe_member(root, "token");
    json_decref(root);
}

/* ---- POST /v1/tokens/revoke (RFC 7009) ------------------------------------------ */

void sessiond_tokens_revoke(sessiond_app *app, const sessiond_http_req *req,
                            sessiond_http_resp *resp)
{
    size_t len = 0;
    sess_err err = {0};
    json_t *root = parse_json_body(req, resp);
    if (root == NULL)
        return;
    const char *tok = string_member(root, "token", SESS_JWT_MAX, &len, resp);
    if (tok != NULL) {
        /* Access tokens cannot be revoked one by one (they are checked
         * offline); they expire within tokens.access_ttl.  RFC 7009 section
         * 2.2: unknown and unsupported tokens are answered 200 alike. */
        int rc = is_refresh(tok, len)
                     ? sess_token_revoke(app->ctx, tok, len,
                                         app->cfg->tokens.revoke_session_with_refresh,
                                         &err)
                     : SESS_NOTFOUND;
        if (rc == SESS_OK || rc == SESS_NOTFOUND)
            sessiond_resp_static(resp, 200, content_json, "{}");
        else
            sessiond_api_library_error(resp, rc, &err);
    }
    wipe_member(root, "token");
    json_decref(root);
}

/* ---- GET /.well-known/... ------------------------------------------------------- */

/* If-None-Match (RFC 9110 section 13.1.2): "*" or a list holding our tag;
 * weak comparison, so W/"x" matches "x". */
static bool etag_matches(const char *header, const char *etag)
{
    size_t el = strlen(etag);
    const char *p = header;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, el) == 0 &&
            (p[el] == '\0' || p[el] == ',' || p[el] == ' ' || p[el] == '\t'))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

void sessiond_tokens_jwks(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    sess_sigkeys *keys = T->slot != NULL ? sess_sigkeys_slot_get(T->slot) : NULL;
    size_t len = 0;
    if (keys == NULL) {
        sessiond_resp_error(resp, 503, "unavailable", "no signing keys");
        return;
    }
    const char *doc = sess_sigkeys_jwks_json(keys, &len);
    const char *etag = sess_sigkeys_jwks_etag(keys);
    const char *inm = req->header(req->conn, "If-None-Match");
    if (sessiond_resp_header(resp, "ETag", etag, strlen(etag)) != 0 ||
        sessiond_resp_header(resp, "Cache-Control", T->cache_control,
                             strlen(T->cache_control)) != 0) {
        sess_sigkeys_free(keys);
        return;
    }
    if (inm != NULL && etag_matches(inm, etag)) {
        sessiond_resp_static(resp, 304, NULL, NULL);
    } else {
        char *body = malloc(len + 1);
        if (body == NULL) {
            sessiond_resp_error(resp, 500, "internal_error", "out of memory");
        } else {
            memcpy(body, doc, len + 1);
            sessiond_resp_text(resp, 200, "application/jwk-set+json", body,
                               len);
        }
    }
    sess_sigkeys_free(keys);
}

void sessiond_tokens_metadata(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    char buf[ISSUER_MAX + 64];
    (void)req;
    json_t *o = json_object();
    json_t *algs = json_array();
    bool ok = put(o, "issuer", json_string(T->issuer)) &&
              put(o, "jwks_uri", json_string(T->jwks_uri));
    snprintf(buf, sizeof buf, "%s/v1/tokens/introspect", T->issuer);
    ok = ok && put(o, "introspection_endpoint", json_string(buf));
    snprintf(buf, sizeof buf, "%s/v1/tokens/revoke", T->issuer);
    ok = ok && put(o, "revocation_endpoint", json_string(buf));
    json_array_append_new(algs, json_string(sess_jwt_alg_name(T->alg_bit)));
    ok = ok && put(o, "token_endpoint_auth_methods_supported",
                   json_pack("[s]", "client_secret_basic")) &&
         put(o, "access_token_signing_alg_values_supported", algs);
    if (!ok) {
        json_decref(o);
        o = NULL;
    }
    if (sessiond_resp_header(resp, "Cache-Control", T->cache_control,
                             strlen(T->cache_control)) != 0) {
        json_decref(o);
        return;
    }
    sessiond_resp_json(resp, 200, o, false);
}

/* ---- forward-auth hooks --------------------------------------------------------- */

static size_t fa_stripe_of(const char *handle)
{
    /* FNV-1a of the (random, non-secret) handle. */
    uint32_t h = 2166136261u;
    for (const char *p = handle; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % FA_STRIPES;
}

/* Mint "Bearer <token>" for "view" and the configured audience. */
static char *fa_mint(sessiond_app *app, sessiond_tokens *T,
                     const sess_view *view, uint64_t now, uint64_t *exp_out,
                     size_t *len_out)
{
    char jti[SESS_JTI_LEN + 1];
    char *tok = NULL;
    sess_err err = {0};
    uint64_t exp = now + app->cfg->tokens.access_ttl;
    if (exp > view->expires_at)
        exp = view->expires_at;
    if (exp > view->idle_expires_at)
        exp = view->idle_expires_at;
    random_jti(jti);
    json_t *c = claims_of(T, view, T->fa_aud_json, strlen(T->fa_aud_json),
                          jti, now, exp);
    int rc = c != NULL ? sign(T, c, &tok, &err) : SESS_ENOMEM;
    json_decref(c);
    if (rc != SESS_OK)
        return NULL;
    size_t tl = strlen(tok);
    char *v = malloc(tl + 8);
    if (v != NULL) {
        memcpy(v, "Bearer ", 7);
        memcpy(v + 7, tok, tl + 1);
        *len_out = tl + 7;
        *exp_out = exp;
    }
    sess_wipe(tok, tl);
    free(tok);
    return v;
}

int sessiond_tokens_fa_attach(sessiond_app *app, const sess_view *view,
                              sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    if (T == NULL || T->fa == NULL)
        return 0;
    uint64_t now = sess_ctx_now(app->ctx);
    fa_stripe *s = &T->fa[fa_stripe_of(view->handle)];
    const char *hdr = app->cfg->tokens.fa_header;
    int rc = -1;

    /* The claims depend on the data and elevation: a change mints anew. */
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < FA_WAYS; i++) {
        fa_entry *e = &s->e[i];
        if (e->value != NULL && strcmp(e->handle, view->handle) == 0) {
            if (e->exp > now + FA_REUSE_MARGIN &&
                e->data_version == view->data_version &&
                e->elevated == view->elevated) {
                rc = sessiond_resp_header(resp, hdr, e->value, e->value_len);
                pthread_mutex_unlock(&s->lock);
                return rc;
            }
            fa_wipe(e);
        }
    }
    pthread_mutex_unlock(&s->lock);

    /* Mint outside the lock (a signature is the slow part); a session
     * whose token is near its own end gets a fresh short one each time. */
    sess_view full = *view;
    uint64_t exp = 0;
    size_t len = 0;
    char *v = fa_mint(app, T, &full, now, &exp, &len);
    if (v == NULL)
        return -1;
    rc = sessiond_resp_header(resp, hdr, v, len);
    pthread_mutex_lock(&s->lock);
    fa_entry *slot = NULL;
    for (size_t i = 0; i < FA_WAYS && slot == NULL; i++)
        if (s->e[i].value == NULL)
            slot = &s->e[i];
    if (slot == NULL) {
        slot = &s->e[s->next];
        s->next = (s->next + 1) % FA_WAYS;
        fa_wipe(slot);
    }
    memcpy(slot->handle, view->handle, sizeof slot->handle);
    slot->exp = exp;
    slot->data_version = view->data_version;
    slot->elevated = view->elevated;
    slot->value = v;
    slot->value_len = len;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static bool store_unreachable(int rc)
{
    return rc == SESS_EUNAVAILABLE || rc == SESS_EIO;
}

bool sessiond_tokens_fa_bearer(sessiond_app *app, const sessiond_http_req *req,
                               sessiond_http_resp *resp)
{
    sessiond_tokens *T = state(app);
    const sessiond_tokens_config *t = &app->cfg->tokens;
    if (T == NULL || !t->accept_bearer)
        return false;
    const char *h = req->header(req->conn, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    json_t *claims = NULL;
    sess_view v;
    sess_err err = {0};
    memset(&v, 0, sizeof v);
    int rc = verify_access(app, tok, strlen(tok), t->fa_audience, &claims);
    json_t *sid = json_object_get(claims, "sid");
    json_t *sub = json_object_get(claims, "sub");
    if (rc != SESS_OK || !json_is_string(sid) || !json_is_string(sub)) {
        sessiond_resp_static(resp, 401, content_json,
                             "{\"error\":\"invalid_token\",\"message\":"
                             "\"no valid bearer token\"}");
        goto done;
    }
    rc = sess_token_session(app->ctx, json_string_value(sid),
                            json_string_length(sid), NULL, 0, &v, NULL, &err);
    bool degraded = false;
    if (rc != SESS_OK && rc != SESS_REJECTED && store_unreachable(rc) &&
        app->cfg->store_failure == SESSIOND_FAILURE_TOKENS_ONLY) {
        /* store.failure = tokens_only: the signature and exp vouch for
         * the caller for at most access_ttl; a revocation made meanwhile
         * is not seen (docs/deployment.md states the risk). */
        degraded = true;
    } else if (rc == SESS_REJECTED) {
        sessiond_resp_static(resp, 401, content_json,
                             "{\"error\":\"invalid_token\",\"message\":"
                             "\"no valid bearer token\"}");
        goto done;
    } else if (rc != SESS_OK) {
        sessiond_library_error_static(resp, rc, &err, "forward-auth bearer");
        goto done;
    }
    char user[SESSIOND_USER_HEADER_MAX];
    int ul = sessiond_forward_user_value(json_string_value(sub),
                                         json_string_length(sub), user,
                                         sizeof user);
    if (ul < 0 ||
        sessiond_resp_header(resp, "X-Session-User", user, (size_t)ul) != 0 ||
        sessiond_resp_header(resp, "X-Session-Handle", json_string_value(sid),
                             json_string_length(sid)) != 0 ||
        sessiond_resp_header(resp, "X-Session-Auth", "bearer", 6) != 0 ||
        (degraded && sessiond_resp_header(resp, "X-Session-Degraded",
                                          "tokens_only", 11) != 0))
        goto done;
    sessiond_resp_static(resp, 200, NULL, NULL);

done:
    json_decref(claims);
    sess_view_clear(&v);
    return true;
}
