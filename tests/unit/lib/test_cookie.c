/*
 * test_cookie.c - lib/cookie.c: profiles per environment and their
 * validation, Set-Cookie formatting, the Cookie-header parser (bounded,
 * against the http-state corpus of real Cookie headers when present),
 * the session-ID form check, and the cross-site request check.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_profiles(void **state)
{
    (void)state;
    sess_cookie_profile p;
    sess_err err;
    char buf[SESS_SET_COOKIE_MAX];
    const char *id = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    sess_cookie_profile_default(SESS_ENV_PRODUCTION, &p);
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_PRODUCTION, &err), SESS_OK);
    assert_true(sess_cookie_format(&p, id, -1, buf, sizeof buf) > 0);
    assert_string_equal(buf, "__Host-sessiond=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; "
                             "Path=/; Secure; HttpOnly; SameSite=Lax");
    /* remember-me: Max-Age from the caller */
    assert_true(sess_cookie_format(&p, id, 3600, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "; Max-Age=3600;"));
    assert_true(sess_cookie_format_clear(&p, buf, sizeof buf) > 0);
    assert_string_equal(buf, "__Host-sessiond=; Path=/; Max-Age=0; Secure; HttpOnly; "
                             "SameSite=Lax");

    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &p);
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_DEVELOPMENT, &err), SESS_OK);
    assert_true(sess_cookie_format(&p, id, -1, buf, sizeof buf) > 0);
    assert_null(strstr(buf, "Secure"));
    assert_non_null(strstr(buf, "HttpOnly"));
    /* Too small a buffer is an error, never a truncated cookie. */
    assert_true(sess_cookie_format(&p, id, -1, buf, 20) < 0);
}

static void test_invalid_profiles(void **state)
{
    (void)state;
    sess_cookie_profile p;
    sess_err err;

    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &p);
    p.same_site = SESS_SAME_SITE_NONE;
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_DEVELOPMENT, &err),
                     SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "cookie.same_site"));

    sess_cookie_profile_default(SESS_ENV_PRODUCTION, &p);
    snprintf(p.domain, sizeof p.domain, "example.com");
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_PRODUCTION, &err),
                     SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "cookie.domain"));

    sess_cookie_profile_default(SESS_ENV_PRODUCTION, &p);
    snprintf(p.path, sizeof p.path, "/app");
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_PRODUCTION, &err),
                     SESS_ECONFIG);

    sess_cookie_profile_default(SESS_ENV_PRODUCTION, &p);
    p.secure = false;
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_PRODUCTION, &err),
                     SESS_ECONFIG);

    sess_cookie_profile_default(SESS_ENV_STAGING, &p);
    snprintf(p.name, sizeof p.name, "sid");
    p.http_only = false;
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_STAGING, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "http_only"));

    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &p);
    snprintf(p.name, sizeof p.name, "__Secure-sid");
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_DEVELOPMENT, &err),
                     SESS_ECONFIG);
    snprintf(p.name, sizeof p.name, "bad name");
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_DEVELOPMENT, &err),
                     SESS_ECONFIG);
    snprintf(p.name, sizeof p.name, "sid");
    snprintf(p.path, sizeof p.path, "/a;b");
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_DEVELOPMENT, &err),
                     SESS_ECONFIG);
}

static void find_expect(const char *header, const char *name, const char *value)
{
    const char *v = NULL;
    size_t n = 0;
    int rc = sess_cookie_find(header, strlen(header), name, &v, &n);
    if (!value) {
        assert_int_equal(rc, SESS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, SESS_OK);
    assert_int_equal(n, strlen(value));
    assert_memory_equal(v, value, n);
}

static void test_cookie_find(void **state)
{
    (void)state;
    find_expect("a=1; sid=xyz; b=2", "sid", "xyz");
    find_expect("sid=xyz", "sid", "xyz");
    find_expect("  sid = xyz ;", "sid", "xyz");
    find_expect("sid=\"xyz\"", "sid", "xyz");
    find_expect("sid=first; sid=second", "sid", "first");
    find_expect("xsid=1; sidx=2", "sid", NULL);
    find_expect("sid", "sid", NULL);
    find_expect("=sid; sid=", "sid", "");
    find_expect("", "sid", NULL);
    find_expect(";;;; sid=v;;", "sid", "v");

    const char *v;
    size_t n;
    assert_int_equal(sess_cookie_find("sid=a\r\nX: y", 12, "sid", &v, &n), SESS_EINVAL);
    char *big = malloc(SESS_COOKIE_HEADER_MAX + 2);
    memset(big, 'a', SESS_COOKIE_HEADER_MAX + 1);
    big[SESS_COOKIE_HEADER_MAX + 1] = '\0';
    assert_int_equal(sess_cookie_find(big, SESS_COOKIE_HEADER_MAX + 1, "sid", &v, &n),
                     SESS_EINVAL);
    free(big);
}

/* Every Cookie header the http-state corpus expects a browser to send must
 * parse, and each cookie in it be found with its first value. */
static void test_http_state_corpus(void **state)
{
    (void)state;
    const char *root = test_testdata_dir();
    char dir[1200], path[1500], line[8192];
    struct dirent *de;
    DIR *d;
    int checked = 0;

    if (!root) {
        print_message("SKIP: SESS_TESTDATA not set or ../shared/testdata absent; "
                      "http-state corpus not checked\n");
        skip();
    }
    snprintf(dir, sizeof dir, "%s/http-state/tests/data/parser", root);
    d = opendir(dir);
    if (!d) {
        print_message("SKIP: %s absent\n", dir);
        skip();
    }
    while ((de = readdir(d)) != NULL) {
        if (!strstr(de->d_name, "-expected"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strncmp(line, "Cookie: ", 8) != 0)
                continue;
            const char *hdr = line + 8;
            char copy[8192], seen[64][128];
            int nseen = 0;
            snprintf(copy, sizeof copy, "%s", hdr);
            for (char *save = NULL, *pair = strtok_r(copy, ";", &save); pair;
                 pair = strtok_r(NULL, ";", &save)) {
                while (*pair == ' ')
                    pair++;
                char *eq = strchr(pair, '=');
                if (!eq || eq == pair)
                    continue;
                *eq = '\0';
                int dup = 0;
                for (int i = 0; i < nseen; i++)
                    dup |= strcmp(seen[i], pair) == 0;
                if (dup || nseen == 64 || strlen(pair) >= 128)
                    continue;
                snprintf(seen[nseen++], 128, "%s", pair);
                const char *val = eq + 1;
                size_t vlen = strlen(val);
                while (vlen && val[vlen - 1] == ' ')
                    vlen--;
                const char *got;
                size_t glen;
                assert_int_equal(sess_cookie_find(hdr, strlen(hdr), pair, &got, &glen),
                                 SESS_OK);
                if (!(vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"')) {
                    assert_int_equal(glen, vlen);
                    assert_memory_equal(got, val, vlen);
                }
                checked++;
            }
        }
        fclose(f);
    }
    closedir(d);
    print_message("http-state: %d cookies found in browser Cookie headers\n", checked);
    assert_true(checked > 100);
}

static void test_id_check(void **state)
{
    (void)state;
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 43), SESS_OK);
    assert_int_equal(sess_id_check("abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE", 43), SESS_OK);
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 42), SESS_EINVAL);
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 44), SESS_EINVAL);
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 43), SESS_EINVAL);
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/", 43), SESS_EINVAL);
    assert_int_equal(sess_id_check("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xc3\xa9", 43), SESS_EINVAL);
    assert_int_equal(sess_id_check(NULL, 0), SESS_EINVAL);
}

static sess_origin O(const char *text)
{
    sess_origin o;
    assert_int_equal(sess_origin_parse(text, strlen(text), &o), SESS_OK);
    return o;
}

static void test_origin_parse(void **state)
{
    (void)state;
    sess_origin a, b;
    char buf[SESS_ORIGIN_MAX + 1];
    /* Default ports are normalised, case is folded. */
    a = O("https://App.Example");
    b = O("https://app.example:443");
    assert_true(sess_origin_equal(&a, &b));
    assert_int_equal(sess_origin_format(&b, buf, sizeof buf), 19);
    assert_string_equal(buf, "https://app.example");
    a = O("http://app.example:80");
    b = O("http://app.example");
    assert_true(sess_origin_equal(&a, &b));
    /* Scheme and port are part of the origin. */
    a = O("http://app.example");
    b = O("https://app.example");
    assert_false(sess_origin_equal(&a, &b));
    a = O("https://app.example:8443");
    b = O("https://app.example");
    assert_false(sess_origin_equal(&a, &b));
    assert_int_equal(sess_origin_format(&a, buf, sizeof buf), 24);
    a = O("http://[::1]:8080");
    assert_string_equal(a.host, "[::1]");
    assert_int_equal(a.port, 8080);
    const char *bad[] = {"null", "", "app.example", "ftp://app.example",
                         "https://", "https://app.example/", "https://a:0",
                         "https://a:65536", "https://a:", "https://u@a",
                         "https://a b", "https://[::1", "https://[zz]",
                         "https://a:8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sess_origin_parse(bad[i], strlen(bad[i]), &a), SESS_EINVAL);
    /* From a Host header and a scheme. */
    assert_int_equal(sess_origin_from_host(true, "app.example", 11, &a), SESS_OK);
    b = O("https://app.example");
    assert_true(sess_origin_equal(&a, &b));
    assert_int_equal(sess_origin_from_host(false, "app.example:8080", 16, &a), SESS_OK);
    assert_int_equal(a.port, 8080);
    assert_int_equal(sess_origin_from_host(false, "app.example,x", 13, &a), SESS_EINVAL);
}

static void test_same_origin(void **state)
{
    (void)state;
    sess_origin self = O("https://app.example");
    sess_origin self_port = O("https://app.example:8443");
    sess_origin allowed[] = {O("https://partner.example")};
    assert_true(sess_same_origin_ok(NULL, NULL, &self, NULL, 0));
    assert_true(sess_same_origin_ok("https://app.example", "same-origin", &self, NULL, 0));
    assert_true(sess_same_origin_ok("https://app.example:443", NULL, &self, NULL, 0));
    assert_true(sess_same_origin_ok("https://app.example:8443", NULL, &self_port, NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example", NULL, &self_port, NULL, 0));
    assert_false(sess_same_origin_ok("https://evil.example", NULL, &self, NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example.evil", NULL, &self, NULL, 0));
    assert_false(sess_same_origin_ok("null", NULL, &self, NULL, 0));
    assert_false(sess_same_origin_ok(NULL, "cross-site", &self, NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example", "cross-site", &self, NULL, 0));
    assert_true(sess_same_origin_ok("https://partner.example", NULL, &self, allowed, 1));
    assert_true(sess_same_origin_ok("https://partner.example:443", NULL, NULL, allowed, 1));
    /* The old host-only comparison let these through. */
    assert_false(sess_same_origin_ok("http://app.example", NULL, &self, NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example:444", NULL, &self, NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example", NULL, NULL, NULL, 0));
}

static void test_methods(void **state)
{
    (void)state;
    assert_true(sess_method_is_safe("GET"));
    assert_true(sess_method_is_safe("HEAD"));
    assert_true(sess_method_is_safe("OPTIONS"));
    /* TRACE reflects the request (cross-site tracing): unsafe here. */
    assert_false(sess_method_is_safe("TRACE"));
    assert_false(sess_method_is_safe("CONNECT"));
    assert_false(sess_method_is_safe("POST"));
    assert_false(sess_method_is_safe("DELETE"));
    assert_false(sess_method_is_safe("get"));
    assert_false(sess_method_is_safe("BREW"));
    assert_false(sess_method_is_safe(""));
    assert_false(sess_method_is_safe(NULL));
}

/* Cookie tossing (RFC 6265bis section 8.6): every same-named cookie, in
 * order, exact names only. */
static void test_cookie_next(void **state)
{
    (void)state;
    const char *h = "sid=one; other=x; sid=\"two\";SID=no; sidx=no; sid=three";
    const char *want[] = {"one", "two", "three"};
    size_t pos = 0, n = 0, vlen;
    const char *v;
    while (sess_cookie_next(h, strlen(h), "sid", &pos, &v, &vlen) == SESS_OK) {
        assert_true(n < 3);
        assert_int_equal(vlen, strlen(want[n]));
        assert_memory_equal(v, want[n], vlen);
        n++;
    }
    assert_int_equal(n, 3);
    assert_int_equal(sess_cookie_next(h, strlen(h), "sid", &pos, &v, &vlen), SESS_NOTFOUND);
    /* The __Host- name matches exactly: a prefix in another case is
     * another cookie (one a sibling could set). */
    const char *t = "__host-sessiond=A; __HOST-sessiond=B; __Host-sessiond=C";
    pos = 0;
    assert_int_equal(sess_cookie_next(t, strlen(t), "__Host-sessiond", &pos, &v, &vlen),
                     SESS_OK);
    assert_int_equal(vlen, 1);
    assert_int_equal(v[0], 'C');
    assert_int_equal(sess_cookie_next(t, strlen(t), "__Host-sessiond", &pos, &v, &vlen),
                     SESS_NOTFOUND);
    pos = 0;
    assert_int_equal(sess_cookie_next("a=\x01", 3, "a", &pos, &v, &vlen), SESS_EINVAL);
}

static void test_environment_names(void **state)
{
    (void)state;
    sess_environment e;
    sess_same_site s;
    assert_int_equal(sess_environment_parse("production", &e), SESS_OK);
    assert_int_equal(e, SESS_ENV_PRODUCTION);
    assert_int_equal(sess_environment_parse("prod", &e), SESS_EINVAL);
    assert_string_equal(sess_environment_name(SESS_ENV_STAGING), "staging");
    assert_int_equal(sess_same_site_parse("strict", &s), SESS_OK);
    assert_int_equal(s, SESS_SAME_SITE_STRICT);
    assert_int_equal(sess_same_site_parse("sometimes", &s), SESS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_invalid_profiles),
        cmocka_unit_test(test_cookie_find),
        cmocka_unit_test(test_http_state_corpus),
        cmocka_unit_test(test_id_check),
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_origin_parse),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_cookie_next),
        cmocka_unit_test(test_environment_names),
    };
    return cmocka_run_group_tests_name("cookie", tests, NULL, NULL);
}
