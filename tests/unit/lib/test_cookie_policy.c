/*
 * test_cookie_policy.c - lib/cookie_policy.c: filling the catalogue from
 * key = value text, each RFC 6265bis rule of the start-up check on both
 * sides (accepted at the limit, refused past it), the policy version, the
 * cookie value check, and the signed consent cookie (round trip, every
 * field tampered, unknown key id, outdated version, expiry).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct kv {
    const char *cookie, *key, *value;
} kv;

/* Build a catalogue from "rows" and check it in "env"; the message of a
 * failure goes to "msg". */
static int build(const kv *rows, size_t n, sess_environment env,
                 sess_cookie_catalogue *cat, char *msg, size_t cap)
{
    sess_cookie_profile session;
    sess_err err = {0};
    int rc;

    sess_cookie_catalogue_init(cat);
    sess_cookie_profile_default(env, &session);
    for (size_t i = 0; i < n; i++) {
        rc = sess_cookie_catalogue_set(cat, rows[i].cookie, rows[i].key,
                                       rows[i].value, &err);
        if (rc != SESS_OK) {
            snprintf(msg, cap, "%s", err.msg);
            return rc;
        }
    }
    rc = sess_cookie_catalogue_check(cat, env, &session, &err);
    snprintf(msg, cap, "%s", err.msg);
    return rc;
}

/* One cookie "x" (analytics, with a purpose) plus "extra" rows. */
static int one(const kv *extra, size_t n, char *msg, size_t cap)
{
    kv rows[12] = {{"x", "category", "analytics"}, {"x", "purpose", "p"}};
    sess_cookie_catalogue *cat = malloc(sizeof *cat);
    int rc;

    assert_true(n <= 10);
    for (size_t i = 0; i < n; i++) {
        rows[2 + i] = extra[i];
        if (strcmp(rows[2 + i].cookie, "x") != 0) {
            /* a renamed cookie: give it the same category and purpose */
            rows[0].cookie = rows[1].cookie = rows[2 + i].cookie;
        }
    }
    rc = build(rows, n + 2, SESS_ENV_DEVELOPMENT, cat, msg, cap);
    free(cat);
    return rc;
}

#define ACCEPT(...)                                                        \
    do {                                                                   \
        kv r[] = {__VA_ARGS__};                                            \
        char m_[160];                                                      \
        int rc_ = one(r, sizeof r / sizeof r[0], m_, sizeof m_);          \
        if (rc_ != SESS_OK)                                                \
            print_error("unexpected refusal: %s\n", m_);                  \
        assert_int_equal(rc_, SESS_OK);                                    \
    } while (0)

#define REFUSE(needle, ...)                                                \
    do {                                                                   \
        kv r[] = {__VA_ARGS__};                                            \
        char m_[160];                                                      \
        assert_int_equal(one(r, sizeof r / sizeof r[0], m_, sizeof m_),    \
                         SESS_ECONFIG);                                    \
        if (strstr(m_, needle) == NULL)                                   \
            print_error("message %s lacks %s\n", m_, needle);           \
        assert_non_null(strstr(m_, needle));                              \
    } while (0)

static void test_same_site_none_needs_secure(void **state)
{
    (void)state;
    /* Secure outside development by default: development is refused. */
    REFUSE("in development: same_site: None requires secure",
           {"x", "same_site", "None"});
    ACCEPT({"x", "same_site", "None"}, {"x", "secure", "true"});
    /* An environment override alone is enough for that environment, and
     * the other environments are still checked. */
    ACCEPT({"x", "same_site", "None"}, {"x", "development.secure", "true"});
    REFUSE("in production", {"x", "same_site", "None"},
           {"x", "secure", "true"}, {"x", "production.secure", "false"});
}

static void test_host_prefix(void **state)
{
    (void)state;
    ACCEPT({"__Host-x", "secure", "true"});
    REFUSE("__Host- prefix requires secure", {"__Host-x", "max_age", "1"});
    REFUSE("domain: must be empty", {"__Host-x", "secure", "true"},
           {"__Host-x", "domain", "shop.example"});
    REFUSE("path: must be /", {"__Host-x", "secure", "true"},
           {"__Host-x", "path", "/shop"});
}

static void test_secure_prefix(void **state)
{
    (void)state;
    ACCEPT({"__Secure-x", "secure", "true"}, {"__Secure-x", "path", "/shop"},
           {"__Secure-x", "domain", "shop.example"});
    REFUSE("__Secure- prefix requires secure",
           {"__Secure-x", "production.secure", "true"});
}

static void test_names(void **state)
{
    (void)state;
    ACCEPT({"a.b-c_d!#$%&'*+^`|~", "max_age", "1"});
    REFUSE("not allowed in a cookie name", {"a(b", "max_age", "1"});
    REFUSE("not allowed in a cookie name", {"a b", "max_age", "1"});
    char m[160];
    sess_cookie_catalogue *cat = malloc(sizeof *cat);
    sess_err err = {0};
    sess_cookie_catalogue_init(cat);
    char longname[SESS_COOKIE_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(sess_cookie_catalogue_set(cat, longname, "category",
                                               "essential", &err),
                     SESS_ECONFIG);
    longname[SESS_COOKIE_NAME_MAX] = '\0';
    assert_int_equal(sess_cookie_catalogue_set(cat, longname, "category",
                                               "essential", &err),
                     SESS_OK);
    free(cat);
    /* Two entries that differ only in case, or the session's own name. */
    kv dup[] = {{"a", "category", "essential"}, {"a", "purpose", "p"},
                {"A", "category", "essential"}, {"A", "purpose", "p"}};
    cat = malloc(sizeof *cat);
    assert_int_equal(build(dup, 4, SESS_ENV_DEVELOPMENT, cat, m, sizeof m),
                     SESS_ECONFIG);
    assert_non_null(strstr(m, "declared twice"));
    kv sess[] = {{"sessiond", "category", "essential"},
                 {"sessiond", "purpose", "p"}};
    assert_int_equal(build(sess, 2, SESS_ENV_DEVELOPMENT, cat, m, sizeof m),
                     SESS_ECONFIG);
    assert_non_null(strstr(m, "session"));
    kv consent[] = {{"sessiond_consent", "category", "essential"},
                    {"sessiond_consent", "purpose", "p"}};
    assert_int_equal(build(consent, 2, SESS_ENV_DEVELOPMENT, cat, m, sizeof m),
                     SESS_ECONFIG);
    assert_non_null(strstr(m, "consent"));
    free(cat);
}

static void test_max_age(void **state)
{
    (void)state;
    ACCEPT({"x", "max_age", "34560000"});            /* 400 days */
    REFUSE("400 days", {"x", "max_age", "34560001"});
    REFUSE("400 days", {"x", "production.max_age", "63072000"});
    ACCEPT({"x", "max_age", "-1"});
    REFUSE("whole seconds", {"x", "max_age", "-2"});
    REFUSE("whole seconds", {"x", "max_age", "1e3"});
    REFUSE("whole seconds", {"x", "max_age", " 5"});
}

static void test_categories_and_keys(void **state)
{
    (void)state;
    char m[160];
    sess_cookie_catalogue *cat = malloc(sizeof *cat);
    for (int c = 0; c < SESS_COOKIE_CATEGORIES; c++) {
        kv r[] = {{"x", "category", sess_cookie_category_name(c)},
                  {"x", "purpose", "p"}};
        assert_int_equal(build(r, 2, SESS_ENV_PRODUCTION, cat, m, sizeof m),
                         SESS_OK);
    }
    kv bad[] = {{"x", "category", "tracking"}};
    assert_int_equal(build(bad, 1, SESS_ENV_DEVELOPMENT, cat, m, sizeof m),
                     SESS_ECONFIG);
    assert_non_null(strstr(m, "cookies.x.category"));
    kv nocat[] = {{"x", "purpose", "p"}};
    assert_int_equal(build(nocat, 1, SESS_ENV_DEVELOPMENT, cat, m, sizeof m),
                     SESS_ECONFIG);
    assert_non_null(strstr(m, "category is missing"));
    kv nopurpose[] = {{"x", "category", "essential"}};
    assert_int_equal(build(nopurpose, 1, SESS_ENV_DEVELOPMENT, cat, m, sizeof m),
                     SESS_ECONFIG);
    assert_non_null(strstr(m, "purpose is missing"));
    free(cat);
    REFUSE("unknown key", {"x", "colour", "red"});
    REFUSE("unknown environment", {"x", "testing.secure", "true"});
    REFUSE("given twice", {"x", "secure", "true"}, {"x", "secure", "true"});
    REFUSE("expected true or false", {"x", "secure", "maybe"});
    REFUSE("Strict, Lax or None", {"x", "same_site", "Relaxed"});
    REFUSE("control character", {"x", "path", "/a\tb"});
    REFUSE("not valid UTF-8", {"x", "retention", "\xff days"});
    ACCEPT({"x", "retention", "7 Tage, l\xc3\xa4nger nicht"});
}

static void test_resolve_and_version(void **state)
{
    (void)state;
    char m[160], v1[SESS_POLICY_VERSION_MAX + 1];
    sess_cookie_catalogue *cat = malloc(sizeof *cat);
    sess_cookie_profile p;
    kv rows[] = {{"prefs", "category", "functional"},
                 {"prefs", "purpose", "Language and theme"},
                 {"prefs", "http_only", "false"},
                 {"prefs", "max_age", "31536000"},
                 {"prefs", "production.domain", ".shop.example"}};

    assert_int_equal(build(rows, 5, SESS_ENV_PRODUCTION, cat, m, sizeof m),
                     SESS_OK);
    assert_int_equal(strlen(cat->effective), 16);
    assert_string_equal(cat->consent_effective, "__Host-sessiond_consent");
    memcpy(v1, cat->effective, sizeof v1);
    const sess_cookie_decl *d = sess_cookie_catalogue_find(cat, "prefs", 5);
    assert_non_null(d);
    sess_cookie_decl_resolve(d, SESS_ENV_PRODUCTION, &p);
    assert_true(p.secure);
    assert_false(p.http_only);
    assert_string_equal(p.domain, "shop.example");
    sess_cookie_decl_resolve(d, SESS_ENV_DEVELOPMENT, &p);
    assert_false(p.secure);
    assert_string_equal(p.domain, "");
    char buf[SESS_SET_COOKIE_POLICY_MAX];
    sess_cookie_decl_resolve(d, SESS_ENV_PRODUCTION, &p);
    assert_true(sess_cookie_format(&p, "lang=en", -1, buf, sizeof buf) > 0);
    assert_string_equal(buf, "prefs=lang=en; Path=/; Domain=shop.example; "
                             "Max-Age=31536000; Secure; SameSite=Lax");

    /* Same catalogue, same version; another purpose, another version. */
    assert_int_equal(build(rows, 5, SESS_ENV_PRODUCTION, cat, m, sizeof m),
                     SESS_OK);
    assert_string_equal(cat->effective, v1);
    rows[1].value = "Language, theme and currency";
    assert_int_equal(build(rows, 5, SESS_ENV_PRODUCTION, cat, m, sizeof m),
                     SESS_OK);
    assert_string_not_equal(cat->effective, v1);
    /* An explicit version wins. */
    sess_cookie_profile session;
    sess_err err = {0};
    sess_cookie_profile_default(SESS_ENV_PRODUCTION, &session);
    snprintf(cat->version, sizeof cat->version, "2026-12");
    assert_int_equal(sess_cookie_catalogue_check(cat, SESS_ENV_PRODUCTION,
                                                 &session, &err), SESS_OK);
    assert_string_equal(cat->effective, "2026-12");
    snprintf(cat->version, sizeof cat->version, "2026.12");
    assert_int_equal(sess_cookie_catalogue_check(cat, SESS_ENV_PRODUCTION,
                                                 &session, &err), SESS_ECONFIG);
    free(cat);

    char r[64];
    sess_cookie_retention_text(604800, r, sizeof r);
    assert_string_equal(r, "7 days");
    sess_cookie_retention_text(31536000, r, sizeof r);
    assert_string_equal(r, "1 year");
    sess_cookie_retention_text(-1, r, sizeof r);
    assert_string_equal(r, "browser session");
}

static void test_value_check(void **state)
{
    (void)state;
    static char big[SESS_COOKIE_NAME_VALUE_MAX + 2];
    memset(big, 'v', sizeof big - 1);
    assert_int_equal(sess_cookie_value_check("ab", big, 4094), SESS_OK);
    assert_int_equal(sess_cookie_value_check("ab", big, 4095), SESS_ETOOBIG);
    assert_int_equal(sess_cookie_value_check("a", "GA1.1.2~x=y!", 12), SESS_OK);
    assert_int_equal(sess_cookie_value_check("a", "", 0), SESS_OK);
    const char *bad[] = {"a;b", "a,b", "a b", "a\"b", "a\\b", "a\x01", "\x7f",
                         "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sess_cookie_value_check("a", bad[i], strlen(bad[i])),
                         SESS_EINVAL);
}

static sess_consent_keys *keys_of(const char *kid, uint8_t fill)
{
    uint8_t raw[1][SESS_KEY_BYTES];
    const char *kids[1] = {kid};
    sess_keyring *kr = NULL;
    sess_consent_keys *ck = NULL;

    /* Not one repeated byte: such keys are refused as weak. */
    for (size_t i = 0; i < SESS_KEY_BYTES; i++)
        raw[0][i] = (uint8_t)(fill + i);
    assert_int_equal(sess_keyring_from_keys(kids, raw, 1, &kr, NULL), SESS_OK);
    assert_int_equal(sess_consent_keys_derive(kr, &ck, NULL), SESS_OK);
    sess_keyring_free(kr);
    return ck;
}

static void test_consent(void **state)
{
    (void)state;
    sess_consent_keys *k = keys_of("k1", 7), *other = keys_of("k1", 8),
                      *k2 = keys_of("k2", 7);
    char v[SESS_CONSENT_VALUE_MAX + 1];
    sess_consent c;
    uint64_t now = 1800000000;
    unsigned mask = (1u << SESS_COOKIE_ANALYTICS);

    int n = sess_consent_sign(k, "v1", now, mask, v, sizeof v);
    assert_true(n > 0);
    assert_int_equal(strncmp(v, "c1.k1.v1.1800000000.5.", 22), 0);
    assert_int_equal(sess_cookie_value_check("c", v, (size_t)n), SESS_OK);
    assert_int_equal(sess_consent_verify(k, v, (size_t)n, "v1", now, 3600, &c),
                     SESS_OK);
    assert_int_equal(c.mask, mask | 1u);
    assert_string_equal(c.kid, "k1");

    /* Outdated policy version: authentic, but reported as such. */
    assert_int_equal(sess_consent_verify(k, v, (size_t)n, "v2", now, 3600, &c),
                     SESS_CONFLICT);
    assert_int_equal(c.mask, mask | 1u);
    /* Expired, and issued in the future. */
    assert_int_equal(sess_consent_verify(k, v, (size_t)n, "v1", now + 3601,
                                         3600, &c), SESS_REJECTED);
    assert_int_equal(c.mask, 0);
    assert_int_equal(sess_consent_verify(k, v, (size_t)n, "v1", now - 120,
                                         3600, &c), SESS_REJECTED);
    /* Another key with the same id, or an unknown key id. */
    assert_int_equal(sess_consent_verify(other, v, (size_t)n, "v1", now, 3600, &c),
                     SESS_REJECTED);
    assert_int_equal(sess_consent_verify(k2, v, (size_t)n, "v1", now, 3600, &c),
                     SESS_REJECTED);
    /* Every byte changed in turn: nothing but the original verifies. */
    for (int i = 0; i < n; i++) {
        char t[SESS_CONSENT_VALUE_MAX + 1];
        memcpy(t, v, (size_t)n + 1);
        t[i] = t[i] == 'f' ? 'e' : 'f';
        assert_int_not_equal(sess_consent_verify(k, t, (size_t)n, "v1", now,
                                                 3600, &c), SESS_OK);
    }
    /* The categories digit raised to "everything": refused. */
    char t[SESS_CONSENT_VALUE_MAX + 1];
    memcpy(t, v, (size_t)n + 1);
    t[20] = 'f';
    assert_int_equal(sess_consent_verify(k, t, (size_t)n, "v1", now, 3600, &c),
                     SESS_REJECTED);
    /* Truncated, extended, empty, oversized, too many fields. */
    for (int len = 0; len < n; len++)
        assert_int_equal(sess_consent_verify(k, v, (size_t)len, "v1", now, 3600, &c),
                         SESS_REJECTED);
    assert_int_equal(sess_consent_verify(k, "c1.k1.v1.1.5.x.y", 16, "v1", now,
                                         3600, &c), SESS_REJECTED);
    static char huge[4096];
    memset(huge, '.', sizeof huge);
    assert_int_equal(sess_consent_verify(k, huge, sizeof huge, "v1", now, 3600, &c),
                     SESS_REJECTED);
    assert_int_equal(sess_consent_verify(NULL, v, (size_t)n, "v1", now, 3600, &c),
                     SESS_REJECTED);
    /* Bad version text cannot be signed. */
    assert_true(sess_consent_sign(k, "a.b", now, mask, v, sizeof v) < 0);
    assert_true(sess_consent_sign(k, "v1", now, mask, v, 20) < 0);

    char names[64];
    assert_true(sess_consent_format_categories(mask, names, sizeof names) > 0);
    assert_string_equal(names, "essential,analytics");
    sess_consent_keys_free(k);
    sess_consent_keys_free(other);
    sess_consent_keys_free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_site_none_needs_secure),
        cmocka_unit_test(test_host_prefix),
        cmocka_unit_test(test_secure_prefix),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_categories_and_keys),
        cmocka_unit_test(test_resolve_and_version),
        cmocka_unit_test(test_value_check),
        cmocka_unit_test(test_consent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
