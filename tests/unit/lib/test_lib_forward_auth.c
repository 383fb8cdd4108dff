/*
 * test_lib_forward_auth.c - the forward-auth decision shared by sessiond's
 * GET /v1/auth and the nginx module (lib/forward_auth.c): the forwarding
 * trust rule, the user id's header form, the method rule (the request's
 * own method only when no method line says otherwise), CSRF and origin
 * for unsafe methods, cookie tossing, rotation's Set-Cookie; and the LMDB
 * store's group_access modes the module's workers need
 * (lib/store_lmdb.c, docs/nginx-module.md "Permissions").
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

/* ---- the trust rule -------------------------------------------------- */

static bool trust_10(const void *arg, const char *ip)
{
    (void)arg;
    return strncmp(ip, "10.", 3) == 0;
}

static void test_client_ip(void **state)
{
    (void)state;
    char ip[SESS_IP_MAX + 1];
    const char *xff[] = {"198.51.100.1, 203.0.113.9", "10.0.0.2"};
    sess_fa_forwarded f = {.peer_ip = "10.0.0.1", .peer_trusted = false,
                           .trusted = trust_10, .xff_lines = xff, .n_xff_lines = 2,
                           .real_ip = "192.0.2.5"};
    /* Untrusted peer: every forwarding header ignored (address spoofing). */
    sess_fa_client_ip(&f, ip, sizeof ip);
    assert_string_equal(ip, "10.0.0.1");
    /* Trusted: the rightmost entry that is not itself trusted. */
    f.peer_trusted = true;
    sess_fa_client_ip(&f, ip, sizeof ip);
    assert_string_equal(ip, "203.0.113.9");
    /* Every hop trusted: the leftmost. */
    const char *all[] = {"10.1.1.1, 10.2.2.2"};
    f.xff_lines = all;
    f.n_xff_lines = 1;
    sess_fa_client_ip(&f, ip, sizeof ip);
    assert_string_equal(ip, "10.1.1.1");
    /* A broken chain: X-Real-IP, then the peer. */
    const char *bad[] = {"198.51.100.1, not-an-ip"};
    f.xff_lines = bad;
    sess_fa_client_ip(&f, ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.5");
    f.real_ip = "garbage";
    sess_fa_client_ip(&f, ip, sizeof ip);
    assert_string_equal(ip, "10.0.0.1");
    /* A local peer (Unix socket) without headers. */
    sess_fa_forwarded local = {.peer_ip = NULL};
    sess_fa_client_ip(&local, ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.1");
}

static void test_self_origin(void **state)
{
    (void)state;
    sess_origin o, want;
    const char *proto[] = {"http, https"};
    const char *host[] = {"evil.example, app.example:8443"};
    sess_fa_forwarded f = {.peer_ip = "192.0.2.1", .host = "internal:8080",
                           .proto_lines = proto, .n_proto_lines = 1,
                           .fhost_lines = host, .n_fhost_lines = 1};
    /* Untrusted: Host with the default scheme, X-Forwarded-* ignored. */
    assert_true(sess_fa_self_origin(&f, &o));
    assert_int_equal(sess_origin_parse("http://internal:8080", 20, &want), SESS_OK);
    assert_true(sess_origin_equal(&o, &want));
    f.https = true;
    assert_true(sess_fa_self_origin(&f, &o));
    assert_true(o.https);
    /* Trusted: the nearest hop's entries. */
    f.peer_trusted = true;
    f.https = false;
    assert_true(sess_fa_self_origin(&f, &o));
    assert_int_equal(sess_origin_parse("https://app.example:8443", 24, &want), SESS_OK);
    assert_true(sess_origin_equal(&o, &want));
    const char *odd[] = {"gopher"};
    f.proto_lines = odd;
    assert_false(sess_fa_self_origin(&f, &o));
    sess_fa_forwarded none = {.peer_ip = "192.0.2.1"};
    assert_false(sess_fa_self_origin(&none, &o));
}

static void test_user_value(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"alice@example.com", "alice@example.com"},
        {"zo\xc3\xab", "utf-8''zo%C3%AB"},
        {"zo%C3%AB", "utf-8''zo%25C3%25AB"},
        {"it's", "utf-8''it%27s"},
        {"a\r\nX-Evil: 1", "utf-8''a%0D%0AX-Evil%3A%201"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = sess_fa_user_value(cases[i][0], strlen(cases[i][0]), out, sizeof out);
        assert_int_equal(n, (int)strlen(cases[i][1]));
        assert_string_equal(out, cases[i][1]);
    }
    assert_int_equal(sess_fa_user_value("abc", 3, out, 3), -1);
    assert_int_equal(sess_fa_user_value("\x01\x02", 2, out, 10), -1);
}

/* ---- the decision ------------------------------------------------------ */

typedef struct fixture {
    test_clock clk;
    sess_ctx *ctx;
    sess_issued s;
    sess_cookie_profile cookie;
    char line[SESS_COOKIE_NAME_MAX + 80];
} fixture;

static void fixture_open(fixture *fx, const sess_config *cfg)
{
    sess_err err;
    memset(fx, 0, sizeof *fx);
    fx->ctx = test_ctx_new(cfg, &fx->clk);
    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &fx->cookie);
    sess_create_req req = {.user_id = "alice", .user_id_len = 5,
                           .client = {"127.0.0.1", "ua/1"}};
    assert_int_equal(sess_create(fx->ctx, &req, &fx->s, NULL, &err), SESS_OK);
    snprintf(fx->line, sizeof fx->line, "theme=dark; %s=%s", fx->cookie.name, fx->s.id);
}

static sess_fa_outcome decide(fixture *fx, const char *line, const char *const *methods,
                              size_t n_methods, const char *own, const char *token,
                              const char *origin, sess_fa_result *r)
{
    const char *lines[1] = {line};
    sess_origin self;
    assert_int_equal(sess_origin_from_host(false, "app.example", 11, &self), SESS_OK);
    sess_fa_request req = {.cookie_lines = lines, .n_cookie_lines = 1,
                           .cookie_name = fx->cookie.name, .method_lines = methods,
                           .n_method_lines = n_methods, .own_method = own,
                           .client_ip = "127.0.0.1", .user_agent = "ua/1",
                           .origin = origin, .csrf_token = token, .self = &self,
                           .cookie = &fx->cookie};
    return sess_forward_auth_decide(fx->ctx, true, &req, r);
}

static void test_decide(void **state)
{
    (void)state;
    fixture fx;
    sess_fa_result r;
    fixture_open(&fx, NULL);

    assert_int_equal(decide(&fx, fx.line, NULL, 0, NULL, NULL, NULL, &r), SESS_FA_OK);
    assert_string_equal(r.view.user_id, "alice");
    assert_string_equal(r.csrf, fx.s.csrf_token);
    assert_int_equal(r.set_cookie_len, 0);
    sess_fa_result_clear(&r);

    /* The request's own method counts only without method lines. */
    assert_int_equal(decide(&fx, fx.line, NULL, 0, "POST", NULL, NULL, &r), SESS_FA_CSRF);
    assert_string_equal(r.csrf_detail, "csrf token");
    sess_fa_result_clear(&r);
    const char *get[] = {"GET"};
    assert_int_equal(decide(&fx, fx.line, get, 1, "POST", NULL, NULL, &r), SESS_FA_OK);
    sess_fa_result_clear(&r);
    /* Fail closed: any unsafe line wins. */
    const char *mixed[] = {"GET", "DELETE"};
    assert_int_equal(decide(&fx, fx.line, mixed, 2, NULL, NULL, NULL, &r), SESS_FA_CSRF);
    sess_fa_result_clear(&r);
    const char *post[] = {"POST"};
    assert_int_equal(decide(&fx, fx.line, post, 1, NULL, fx.s.csrf_token, NULL, &r),
                     SESS_FA_OK);
    sess_fa_result_clear(&r);
    assert_int_equal(decide(&fx, fx.line, post, 1, NULL, fx.s.csrf_token,
                            "https://evil.example", &r), SESS_FA_CSRF);
    assert_string_equal(r.csrf_detail, "cross-site origin");
    sess_fa_result_clear(&r);
    assert_int_equal(decide(&fx, fx.line, post, 1, NULL, fx.s.csrf_token,
                            "http://app.example", &r), SESS_FA_OK);
    sess_fa_result_clear(&r);

    /* Forged, and a tossed cookie in front of the valid one. */
    char forged[SESS_COOKIE_NAME_MAX + 64], tossed[2 * SESS_COOKIE_NAME_MAX + 160];
    snprintf(forged, sizeof forged, "%s=%s", fx.cookie.name,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(decide(&fx, forged, NULL, 0, NULL, NULL, NULL, &r), SESS_FA_NO_SESSION);
    sess_fa_result_clear(&r);
    snprintf(tossed, sizeof tossed, "%s; %s", forged, fx.line);
    assert_int_equal(decide(&fx, tossed, NULL, 0, NULL, NULL, NULL, &r), SESS_FA_OK);
    assert_int_equal(r.seen, 2);
    assert_int_equal(r.tried, 2);
    assert_int_equal(r.valid, 1);
    sess_fa_result_clear(&r);
    assert_int_equal(decide(&fx, "theme=dark", NULL, 0, NULL, NULL, NULL, &r),
                     SESS_FA_NO_SESSION);
    sess_fa_result_clear(&r);
    sess_wipe(&fx.s, sizeof fx.s);
    sess_ctx_free(fx.ctx);
}

static void test_rotation_set_cookie(void **state)
{
    (void)state;
    fixture fx;
    sess_fa_result r;
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.rotate_interval = 60;
    cfg.rotation_grace = 10;
    fixture_open(&fx, &cfg);
    fx.clk.now += 61;
    /* An unsafe request does not consume the rotation. */
    const char *post[] = {"POST"};
    assert_int_equal(decide(&fx, fx.line, post, 1, NULL, NULL, NULL, &r), SESS_FA_CSRF);
    assert_int_equal(r.set_cookie_len, 0);
    sess_fa_result_clear(&r);
    assert_int_equal(decide(&fx, fx.line, NULL, 0, NULL, NULL, NULL, &r), SESS_FA_OK);
    assert_true(r.set_cookie_len > 0);
    assert_non_null(strstr(r.set_cookie, fx.cookie.name));
    assert_null(strstr(r.set_cookie, fx.s.id));
    assert_string_not_equal(r.csrf, fx.s.csrf_token);
    sess_fa_result_clear(&r);
    assert_int_equal(r.set_cookie[0], 0);   /* wiped */
    sess_wipe(&fx.s, sizeof fx.s);
    sess_ctx_free(fx.ctx);
}

/* ---- the store's modes for the module --------------------------------- */

static unsigned mode_of(const char *dir, const char *name)
{
    char path[300];
    struct stat sb;
    snprintf(path, sizeof path, "%s%s%s", dir, name[0] ? "/" : "", name);
    assert_int_equal(stat(path, &sb), 0);
    return (unsigned)(sb.st_mode & 0777);
}

static void open_close(const char *dir, int group_access)
{
    char url[300];
    sess_store *st = NULL;
    sess_err err;
    sess_store_options opt;
    memset(&opt, 0, sizeof opt);
    opt.group_access = group_access;
    snprintf(url, sizeof url, "lmdb:%s", dir);
    assert_int_equal(sess_store_open(url, &opt, &st, &err), SESS_OK);
    sess_store_close(st);
}

static void test_lmdb_group_access(void **state)
{
    (void)state;
    char base[64], priv[128], shared[128];
    test_tmpdir(base, sizeof base);
    snprintf(priv, sizeof priv, "%s/private", base);
    snprintf(shared, sizeof shared, "%s/shared", base);

    /* Default: nobody else can open the store. */
    open_close(priv, 0);
    assert_int_equal(mode_of(priv, ""), 0700);
    assert_int_equal(mode_of(priv, "data.mdb"), 0600);
    assert_int_equal(mode_of(priv, "lock.mdb"), 0600);
    /* group_access, whatever the umask: the group reads and writes the
     * files and searches the directory; never writes the directory. */
    mode_t old = umask(077);
    open_close(shared, 1);
    umask(old);
    assert_int_equal(mode_of(shared, "data.mdb") & 0077, 0060);
    assert_int_equal(mode_of(shared, "lock.mdb") & 0077, 0060);
    assert_int_equal(mode_of(shared, "") & 0077, 0050);
    /* A store made before the option is widened at the next open. */
    open_close(priv, 1);
    assert_int_equal(mode_of(priv, "data.mdb"), 0660);
    assert_int_equal(mode_of(priv, "lock.mdb"), 0660);
    assert_int_equal(mode_of(priv, ""), 0750);
    test_rmdir(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_ip),
        cmocka_unit_test(test_self_origin),
        cmocka_unit_test(test_user_value),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_rotation_set_cookie),
        cmocka_unit_test(test_lmdb_group_access),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
