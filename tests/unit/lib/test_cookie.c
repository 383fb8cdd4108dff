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

static void test_same_origin(void **state)
{
    (void)state;
    const char *allowed[] = {"https://partner.example"};
    assert_true(sess_same_origin_ok(NULL, NULL, "app.example", NULL, 0));
    assert_true(sess_same_origin_ok("https://app.example", "same-origin", "app.example", NULL, 0));
    assert_true(sess_same_origin_ok("https://app.example:8443", NULL, "app.example:8443", NULL, 0));
    assert_false(sess_same_origin_ok("https://evil.example", NULL, "app.example", NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example.evil", NULL, "app.example", NULL, 0));
    assert_false(sess_same_origin_ok("null", NULL, "app.example", NULL, 0));
    assert_false(sess_same_origin_ok(NULL, "cross-site", "app.example", NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example", "cross-site", "app.example", NULL, 0));
    assert_true(sess_same_origin_ok("https://partner.example", NULL, "app.example", allowed, 1));
    assert_true(sess_same_origin_ok("https://app.example", NULL, "https://app.example", NULL, 0));
    assert_false(sess_same_origin_ok("http://app.example", NULL, "https://app.example", NULL, 0));
    assert_false(sess_same_origin_ok("https://app.example", NULL, NULL, NULL, 0));
    assert_true(sess_method_is_safe("GET"));
    assert_true(sess_method_is_safe("HEAD"));
    assert_false(sess_method_is_safe("POST"));
    assert_false(sess_method_is_safe("DELETE"));
    assert_false(sess_method_is_safe("get"));
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
        cmocka_unit_test(test_environment_names),
    };
    return cmocka_run_group_tests_name("cookie", tests, NULL, NULL);
}
