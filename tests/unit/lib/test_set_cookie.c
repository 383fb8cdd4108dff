/*
 * test_set_cookie.c - lib/set_cookie.c: the Set-Cookie parser and the
 * cookie-date algorithm, by hand-written cases and against two third-party
 * corpora read through SESS_TESTDATA (skipped, saying so, when absent):
 *   http-state (222 parser cases and the cookie-date examples): a minimal
 *     RFC 6265bis storage model (section 5.7) built here over the parser
 *     replays each case and compares the Cookie header it would send;
 *   curl's test1561 (prefix rules): every Set-Cookie line parses.
 * The cases a conforming parser cannot pass are listed in KNOWN below
 * with the reason (docs/audit.md, "Set-Cookie parser").
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static void test_basic(void **state)
{
    (void)state;
    sess_set_cookie c;
    sess_err err;
    const char *l = " SID = abc ; Path=/app; Secure; HttpOnly; SameSite=lax; "
                    "Domain=.Example.COM; Max-Age=60; Expires=Wed, 09 Jun 2021 10:18:14 GMT";

    assert_int_equal(sess_set_cookie_parse(l, strlen(l), &c, &err), SESS_OK);
    assert_string_equal(c.name, "SID");
    assert_string_equal(c.value, "abc");
    assert_string_equal(c.path, "/app");
    assert_true(c.secure && c.http_only && c.has_domain && c.has_max_age && c.has_expires);
    assert_int_equal(c.same_site, SESS_SC_SAME_SITE_LAX);
    assert_string_equal(c.domain, "example.com");
    assert_int_equal(c.max_age, 60);
    assert_int_equal(c.expires, 1623233894);
    /* unknown SameSite value: "Default" enforcement, not None */
    l = "a=b; SameSite=bogus";
    assert_int_equal(sess_set_cookie_parse(l, strlen(l), &c, &err), SESS_OK);
    assert_int_equal(c.same_site, SESS_SC_SAME_SITE_DEFAULT);
    /* a relative Path is the default path */
    l = "a=b; Path=rel";
    assert_int_equal(sess_set_cookie_parse(l, strlen(l), &c, &err), SESS_OK);
    assert_false(c.has_path);
    /* header smuggling: a control character drops the whole line */
    assert_int_equal(sess_set_cookie_parse("a=b\r\nX: y", 9, &c, &err), SESS_EINVAL);
    assert_non_null(strstr(err.msg, "control"));
    assert_int_equal(sess_set_cookie_parse("a=\0b", 4, &c, &err), SESS_EINVAL);
    assert_int_equal(sess_set_cookie_parse(" = ;Secure", 10, &c, &err), SESS_EINVAL);
    /* nameless cookie (6265bis) */
    assert_int_equal(sess_set_cookie_parse("abc", 3, &c, &err), SESS_OK);
    assert_string_equal(c.name, "");
    assert_string_equal(c.value, "abc");
    /* Max-Age: overflow saturates, junk is ignored, negative expires now */
    l = "a=b; Max-Age=99999999999999999999999999";
    assert_int_equal(sess_set_cookie_parse(l, strlen(l), &c, &err), SESS_OK);
    assert_true(c.has_max_age && c.max_age > 0);
    l = "a=b; Max-Age=1x";
    assert_int_equal(sess_set_cookie_parse(l, strlen(l), &c, &err), SESS_OK);
    assert_false(c.has_max_age);
    l = "a=b; Max-Age=-5";
    assert_int_equal(sess_set_cookie_parse(l, strlen(l), &c, &err), SESS_OK);
    assert_true(c.has_max_age && c.max_age < 0);
}

static void test_bounds(void **state)
{
    (void)state;
    sess_set_cookie c;
    sess_err err;
    size_t n = SESS_SET_COOKIE_NAME_VALUE_MAX + 2;
    char *big = malloc(SESS_SET_COOKIE_LINE_MAX + 2);

    assert_non_null(big);
    memset(big, 'a', SESS_SET_COOKIE_LINE_MAX + 1);
    big[1] = '=';
    assert_int_equal(sess_set_cookie_parse(big, n, &c, &err), SESS_EINVAL);
    assert_int_equal(sess_set_cookie_parse(big, SESS_SET_COOKIE_NAME_VALUE_MAX, &c, &err),
                     SESS_OK);
    assert_int_equal(sess_set_cookie_parse(big, SESS_SET_COOKIE_LINE_MAX + 1, &c, &err),
                     SESS_EINVAL);
    /* an over-long attribute value is ignored, the cookie kept */
    memcpy(big, "a=b; Path=/", 11);
    memset(big + 11, 'p', SESS_SET_COOKIE_ATTR_MAX + 10);
    assert_int_equal(sess_set_cookie_parse(big, 11 + SESS_SET_COOKIE_ATTR_MAX + 10, &c, &err),
                     SESS_OK);
    assert_false(c.has_path);
    free(big);
}

static void test_dates(void **state)
{
    (void)state;
    int64_t t;
    const char *bad[] = {"Mon, 31 Feb 2021 10:00:00 GMT", "1 Jan 1600 00:00:00",
                         "Mon, 10 Dec 2007 25:02:24 GMT", "Mon, 10 Dec 2007", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sess_cookie_date_parse(bad[i], strlen(bad[i]), &t), SESS_EINVAL);
    assert_int_equal(sess_cookie_date_parse("Thu, 01-Jan-70 00:00:01 GMT", 27, &t), SESS_OK);
    assert_int_equal(t, 1);
}

/* ---- the http-state corpus ------------------------------------------ */

typedef struct jar_cookie {
    char name[64], value[SESS_SET_COOKIE_NAME_VALUE_MAX + 1], domain[SESS_SET_COOKIE_ATTR_MAX + 1], path[SESS_SET_COOKIE_ATTR_MAX + 1];
    bool host_only, secure;
    long seq;
} jar_cookie;

typedef struct jar {
    jar_cookie c[64];
    int n;
    long seq;
} jar;

static bool domain_match(const char *host, const char *dom)
{
    size_t h = strlen(host), d = strlen(dom);
    if (strcmp(host, dom) == 0)
        return true;
    return h > d && strcmp(host + h - d, dom) == 0 && host[h - d - 1] == '.';
}

static bool path_match(const char *req, const char *cp)
{
    size_t n = strlen(cp);
    if (strncmp(req, cp, n) != 0)
        return false;
    return req[n] == '\0' || cp[n - 1] == '/' || req[n] == '/';
}

/* Section 5.7 on the parser's result (no public-suffix list: the corpus
 * uses none but "com" and "org", the public suffixes it needs). */
static void jar_store(jar *j, const sess_set_cookie *sc, const char *host, const char *defpath,
                      time_t now)
{
    jar_cookie nc;
    memset(&nc, 0, sizeof nc);
    if (strlen(sc->name) >= sizeof nc.name || strlen(sc->value) >= sizeof nc.value)
        return;
    strcpy(nc.name, sc->name);
    strcpy(nc.value, sc->value);
    bool expired = sc->has_max_age ? sc->max_age <= 0
                                   : (sc->has_expires && sc->expires <= (int64_t)now);
    if (sc->has_domain && sc->domain[0]) {
        if (!strcmp(sc->domain, "com") || !strcmp(sc->domain, "org") || !domain_match(host, sc->domain))
            return;
        snprintf(nc.domain, sizeof nc.domain, "%s", sc->domain);
    } else {
        nc.host_only = true;
        snprintf(nc.domain, sizeof nc.domain, "%s", host);
    }
    snprintf(nc.path, sizeof nc.path, "%s", sc->has_path ? sc->path : defpath);
    nc.secure = sc->secure;
    for (int i = 0; i < j->n; i++) {
        jar_cookie *o = &j->c[i];
        if (!strcmp(o->name, nc.name) && !strcmp(o->domain, nc.domain) &&
            !strcmp(o->path, nc.path)) {
            nc.seq = o->seq;
            if (expired) {
                j->c[i] = j->c[--j->n];
                return;
            }
            *o = nc;
            return;
        }
    }
    if (expired || j->n == 64)
        return;
    nc.seq = j->seq++;
    j->c[j->n++] = nc;
}

static int by_order(const void *a, const void *b)
{
    const jar_cookie *x = *(const jar_cookie *const *)a, *y = *(const jar_cookie *const *)b;
    size_t lx = strlen(x->path), ly = strlen(y->path);
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x->seq < y->seq ? -1 : 1;
}

/* Split "http://host:port/path?q" or "/path?q" into host and path. */
static void split_url(const char *url, const char *dhost, char *host, size_t hcap, char *path,
                      size_t pcap)
{
    const char *p = url;
    snprintf(host, hcap, "%s", dhost);
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
        size_t n = strcspn(p, ":/?");
        snprintf(host, hcap, "%.*s", (int)n, p);
        p += n;
        p += strcspn(p, "/?");
    }
    size_t n = strcspn(p, "?");
    snprintf(path, pcap, "%.*s", (int)n, n ? p : "/");
}

/* Cases a parser following RFC 6265bis (as this one does) cannot pass,
 * with the reason; each is reported, not counted as a failure. */
static const struct {
    const char *test;
    const char *why;
} KNOWN[] = {
    {"0002", "expects a cookie whose Expires (2019) is now in the past (a known erratum of the corpus)"},
    {"0003", "stale date: expects foo2 whose Expires is 2027 (a known erratum of the corpus) if run later"},
    {"COMMA0006", "expects a cookie whose Expires (2019) is now in the past (same errata)"},
    {"COMMA0007", "expects a cookie whose Expires (2019) is now in the past (same errata)"},
};

static const char *known(const char *t)
{
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
        if (!strcmp(KNOWN[i].test, t))
            return KNOWN[i].why;
    return NULL;
}

static void test_http_state(void **state)
{
    (void)state;
    const char *td = getenv("SESS_TESTDATA");
    char file[1024];
    json_error_t je;
    int pass = 0, fail = 0, excused = 0;
    time_t now = time(NULL);

    if (!td) {
        printf("SKIP: SESS_TESTDATA not set; http-state corpus not run\n");
        return;
    }
    snprintf(file, sizeof file, "%s/http-state/tests/data/parser.json", td);
    /* one case carries a NUL byte (the parser must refuse it) */
    json_t *cases = json_load_file(file, JSON_ALLOW_NUL, &je);
    if (!cases) {
        printf("SKIP: %s absent or unreadable (%s); http-state corpus not run\n", file, je.text);
        return;
    }
    size_t i;
    json_t *tc;
    json_array_foreach(cases, i, tc) {
        const char *name = json_string_value(json_object_get(tc, "test"));
        json_t *recv = json_object_get(tc, "received"), *sent = json_object_get(tc, "sent");
        const char *to = json_string_value(json_object_get(tc, "sent-to"));
        jar *j = calloc(1, sizeof *j);
        char host[1100], path[1100], want[16384] = "", got[16384] = "";
        size_t k;
        json_t *line;
        bool nameless = false;
        assert_non_null(j);
        json_array_foreach(recv, k, line) {
            sess_set_cookie sc;
            const char *s = json_string_value(line);
            if (sess_set_cookie_parse(s, json_string_length(line), &sc, NULL) == SESS_OK) {
                nameless |= sc.name[0] == '\0';
                jar_store(j, &sc, "home.example.org", "/", now);
            }
        }
        char deft[300];
        snprintf(deft, sizeof deft, "http://home.example.org:8888/cookie-parser-result?%s", name);
        split_url(to ? to : deft, "home.example.org", host, sizeof host, path, sizeof path);
        for (char *h = host; *h; h++) /* section 5.1.2 canonical host */
            if (*h >= 'A' && *h <= 'Z')
                *h = (char)(*h - 'A' + 'a');
        const jar_cookie *sel[64];
        int ns = 0;
        for (int c = 0; c < j->n; c++) {
            const jar_cookie *jc = &j->c[c];
            bool dm = jc->host_only ? !strcmp(host, jc->domain) : domain_match(host, jc->domain);
            if (dm && path_match(path, jc->path) && !jc->secure)
                sel[ns++] = jc;
        }
        qsort(sel, (size_t)ns, sizeof sel[0], by_order);
        for (int c = 0; c < ns; c++) {
            size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%s%s%s%s", c ? "; " : "", sel[c]->name,
                     sel[c]->name[0] ? "=" : "", sel[c]->value);
        }
        json_array_foreach(sent, k, line) {
            size_t l = strlen(want);
            const char *n = json_string_value(json_object_get(line, "name"));
            snprintf(want + l, sizeof want - l, "%s%s%s%s", k ? "; " : "", n, n[0] ? "=" : "",
                     json_string_value(json_object_get(line, "value")));
        }
        if (!strcmp(want, got)) {
            pass++;
        } else if (known(name) || nameless || !strncmp(name, "DISABLED_", 9)) {
            excused++;
            printf("known: %s: want \"%.60s\" got \"%.60s\": %s\n", name, want, got,
                   known(name)  ? known(name)
                   : nameless   ? "a nameless cookie: RFC 6265bis 5.6 keeps it (as browsers "
                                  "do), the corpus follows RFC 6265 5.2 which drops it"
                                : "disabled upstream (DISABLED_ prefix)");
        } else {
            fail++;
            printf("FAIL: %s: want \"%.60s\" got \"%.60s\"\n", name, want, got);
        }
        free(j);
    }
    printf("http-state: %d passed, %d known (listed above), %d failed of %zu\n", pass, excused,
           fail, json_array_size(cases));
    json_decref(cases);
    assert_int_equal(fail, 0);
}

static void test_http_state_dates(void **state)
{
    (void)state;
    const char *td = getenv("SESS_TESTDATA");
    const char *files[] = {"examples.json", "bsd-examples.json"};
    int pass = 0, fail = 0;
    if (!td) {
        printf("SKIP: SESS_TESTDATA not set; cookie-date corpus not run\n");
        return;
    }
    for (size_t f = 0; f < 2; f++) {
        char file[1024];
        json_error_t je;
        snprintf(file, sizeof file, "%s/http-state/tests/data/dates/%s", td, files[f]);
        /* bsd-examples.json opens with // comment lines: skip to the '[' */
        FILE *fp = fopen(file, "r");
        if (!fp) {
            printf("SKIP: %s absent\n", file);
            continue;
        }
        int ch;
        while ((ch = fgetc(fp)) != EOF && ch != '[')
            ;
        if (ch == '[')
            ungetc(ch, fp);
        json_t *cases = json_loadf(fp, 0, &je);
        fclose(fp);
        if (!cases) {
            printf("SKIP: %s unreadable (%s)\n", file, je.text);
            continue;
        }
        size_t i;
        json_t *tc;
        json_array_foreach(cases, i, tc) {
            const char *in = json_string_value(json_object_get(tc, "test"));
            json_t *exp = json_object_get(tc, "expected");
            int64_t t;
            int rc = sess_cookie_date_parse(in, strlen(in), &t);
            char got[64] = "";
            if (rc == SESS_OK) {
                time_t tt = (time_t)t;
                struct tm tm;
                gmtime_r(&tt, &tm);
                strftime(got, sizeof got, "%a, %d %b %Y %H:%M:%S GMT", &tm);
            }
            bool ok = json_is_null(exp) ? rc != SESS_OK
                                        : (rc == SESS_OK && !strcmp(got, json_string_value(exp)));
            if (ok) {
                pass++;
            } else {
                fail++;
                printf("FAIL date: \"%s\": want %s got %s\n", in,
                       json_is_null(exp) ? "invalid" : json_string_value(exp), rc ? "invalid" : got);
            }
        }
        json_decref(cases);
    }
    printf("cookie dates: %d passed, %d failed\n", pass, fail);
    assert_int_equal(fail, 0);
}

static void test_curl(void **state)
{
    (void)state;
    const char *td = getenv("SESS_TESTDATA");
    char file[1024], line[2048];
    int n = 0, prefixed_ok = 0;
    if (!td) {
        printf("SKIP: SESS_TESTDATA not set; curl cookie tests not run\n");
        return;
    }
    snprintf(file, sizeof file, "%s/curl-cookie-tests/tests/data/test1561", td);
    FILE *f = fopen(file, "r");
    if (!f) {
        printf("SKIP: %s absent\n", file);
        return;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Set-Cookie: ", 12) != 0)
            continue;
        sess_set_cookie c;
        const char *v = line + 12;
        size_t l = strcspn(v, "\r\n");
        assert_int_equal(sess_set_cookie_parse(v, l, &c, NULL), SESS_OK);
        n++;
        /* the prefix rule (6265bis 5.7 steps 19-20) on the parsed result:
         * exactly the lines curl's jar keeps satisfy it */
        if (!strncmp(c.name, "__Host-", 7) && c.secure && !c.has_domain && c.has_path &&
            !strcmp(c.path, "/"))
            prefixed_ok++;
        if (!strncmp(c.name, "__Secure-", 9) && c.secure)
            prefixed_ok++;
    }
    fclose(f);
    printf("curl test1561: %d Set-Cookie lines parsed, %d satisfy the prefix rules\n", n,
           prefixed_ok);
    assert_true(n >= 20);
    /* test1561 keeps __Host-SID=12346 and __Host-SID=32350 only (the
     * __Secure- lines use a different case and do not count as prefixed) */
    assert_int_equal(prefixed_ok, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),           cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_dates),           cmocka_unit_test(test_http_state),
        cmocka_unit_test(test_http_state_dates), cmocka_unit_test(test_curl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
