/*
 * cookie_policy.c - the cookie catalogue: filling it from key = value
 * text, checking it against RFC 6265bis in every environment, the policy
 * version, cookie value checks, and the signed consent cookie
 * (sess/cookie_policy.h has the formats).
 *
 * The attribute rules browsers enforce are sess_cookie_profile_check()'s
 * (lib/cookie.c); it is called here with the development environment so
 * that only the RFC rules apply (its "production cookies are HttpOnly" rule
 * is about the session cookie, while a site's preference cookie may well be
 * readable by scripts).  What is added here is what only a catalogue has:
 * categories, the 400-day cap, duplicates, the version.
 *
 * Pure except for the consent keys (allocated, wiped on free).  A checked
 * catalogue is read-only and shared by threads; nothing here locks.
 */
#include "sess/cookie_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include "crypto.h"
#include "util.h"

static const char *const category_names[SESS_COOKIE_CATEGORIES] = {
    "essential", "functional", "analytics", "marketing"};

static const char *const env_prefixes[3] = {"development", "staging",
                                            "production"};

int sess_cookie_category_parse(const char *s, size_t len,
                               sess_cookie_category *out)
{
    for (size_t i = 0; i < SESS_COOKIE_CATEGORIES; i++)
        if (strlen(category_names[i]) == len &&
            memcmp(category_names[i], s, len) == 0) {
            *out = (sess_cookie_category)i;
            return SESS_OK;
        }
    return SESS_EINVAL;
}

const char *sess_cookie_category_name(sess_cookie_category c)
{
    return (unsigned)c < SESS_COOKIE_CATEGORIES ? category_names[c] : "unknown";
}

int sess_consent_format_categories(unsigned mask, char *buf, size_t cap)
{
    size_t n = 0;

    if (cap == 0)
        return SESS_ETOOBIG;
    buf[0] = '\0';
    mask |= 1u << SESS_COOKIE_ESSENTIAL;
    for (unsigned i = 0; i < SESS_COOKIE_CATEGORIES; i++) {
        if (!(mask & (1u << i)))
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
                         category_names[i]);
        if (w < 0 || (size_t)w >= cap - n)
            return SESS_ETOOBIG;
        n += (size_t)w;
    }
    return (int)n;
}

/* ---- filling the catalogue ---------------------------------------------- */

void sess_cookie_catalogue_init(sess_cookie_catalogue *cat)
{
    memset(cat, 0, sizeof *cat);
    cat->consent_max_age = 180 * 86400;   /* six months */
    snprintf(cat->session_purpose, sizeof cat->session_purpose, "%s",
             "Keeps you signed in (the session).");
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* A whole decimal number, -1 allowed; no blanks, signs or overflow. */
static bool parse_max_age(const char *s, int64_t *out)
{
    int64_t v = 0;
    const char *p = s;

    if (strcmp(s, "-1") == 0) {
        *out = -1;
        return true;
    }
    if (*p == '\0' || strlen(p) > 12)
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

static bool text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static sess_cookie_decl *decl_get(sess_cookie_catalogue *cat, const char *name,
                                  sess_err *err)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(cat->cookies[i].name, name) == 0)
            return &cat->cookies[i];
    if (len == 0 || len > SESS_COOKIE_NAME_MAX) {
        sess__fail(err, SESS_ECONFIG,
                   "cookies.%.64s: the name must be 1-%d characters",
                   name, SESS_COOKIE_NAME_MAX);
        return NULL;
    }
    if (cat->n == SESS_COOKIE_CATALOGUE_MAX) {
        sess__fail(err, SESS_ECONFIG,
                   "cookies.%s: more than %d cookies in the catalogue", name,
                   SESS_COOKIE_CATALOGUE_MAX);
        return NULL;
    }
    sess_cookie_decl *d = &cat->cookies[cat->n++];
    memset(d, 0, sizeof *d);
    memcpy(d->name, name, len + 1);
    return d;
}

/* Attribute keys: name, bit. */
static const struct {
    const char *name;
    unsigned bit;
} attrs[] = {
    {"secure", SESS_COOKIE_ATTR_SECURE},
    {"http_only", SESS_COOKIE_ATTR_HTTP_ONLY},
    {"same_site", SESS_COOKIE_ATTR_SAME_SITE},
    {"path", SESS_COOKIE_ATTR_PATH},
    {"domain", SESS_COOKIE_ATTR_DOMAIN},
    {"max_age", SESS_COOKIE_ATTR_MAX_AGE},
};

static int set_attr(const char *cname, const char *key, unsigned bit,
                    sess_cookie_profile *p, unsigned *set, const char *value,
                    sess_err *err)
{
    bool b;

    if (*set & bit)
        return sess__fail(err, SESS_ECONFIG, "cookies.%s.%s: given twice",
                          cname, key);
    switch (bit) {
    case SESS_COOKIE_ATTR_SECURE:
    case SESS_COOKIE_ATTR_HTTP_ONLY:
        if (!parse_bool(value, &b))
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: expected true or false", cname,
                              key);
        if (bit == SESS_COOKIE_ATTR_SECURE)
            p->secure = b;
        else
            p->http_only = b;
        break;
    case SESS_COOKIE_ATTR_SAME_SITE:
        if (sess_same_site_parse(value, &p->same_site) != SESS_OK)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: expected Strict, Lax or None",
                              cname, key);
        break;
    case SESS_COOKIE_ATTR_PATH:
        if (strlen(value) > SESS_COOKIE_PATH_MAX)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: longer than %d bytes", cname,
                              key, SESS_COOKIE_PATH_MAX);
        snprintf(p->path, sizeof p->path, "%s", value);
        break;
    case SESS_COOKIE_ATTR_DOMAIN:
        if (strlen(value) > SESS_COOKIE_DOMAIN_MAX)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: longer than %d bytes", cname,
                              key, SESS_COOKIE_DOMAIN_MAX);
        /* A leading dot is ignored by browsers (RFC 6265bis 5.6.3). */
        snprintf(p->domain, sizeof p->domain, "%s",
                 value[0] == '.' ? value + 1 : value);
        break;
    case SESS_COOKIE_ATTR_MAX_AGE:
        if (!parse_max_age(value, &p->max_age))
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: expected whole seconds or -1 "
                              "(browser session)", cname, key);
        break;
    default:
        return SESS_EINTERNAL;
    }
    *set |= bit;
    return SESS_OK;
}

int sess_cookie_catalogue_set(sess_cookie_catalogue *cat, const char *name,
                              const char *key, const char *value,
                              sess_err *err)
{
    sess_cookie_decl *d = decl_get(cat, name, err);

    if (d == NULL)
        return SESS_ECONFIG;
    if (!text_ok(value))
        return sess__fail(err, SESS_ECONFIG,
                          "cookies.%s.%.32s: control character in the value",
                          name, key);
    if (strcmp(key, "category") == 0) {
        if (d->category_set)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.category: given twice", name);
        if (sess_cookie_category_parse(value, strlen(value), &d->category) !=
            SESS_OK)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.category: expected essential, "
                              "functional, analytics or marketing", name);
        d->category_set = true;
        return SESS_OK;
    }
    if (strcmp(key, "purpose") == 0 || strcmp(key, "retention") == 0) {
        bool purpose = key[0] == 'p';
        char *dst = purpose ? d->purpose : d->retention;
        size_t cap = purpose ? sizeof d->purpose : sizeof d->retention;
        if (dst[0] != '\0')
            return sess__fail(err, SESS_ECONFIG, "cookies.%s.%s: given twice",
                              name, key);
        if (value[0] == '\0' || strlen(value) >= cap)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: must be 1-%zu characters", name,
                              key, cap - 1);
        /* It is served as JSON, which must be UTF-8. */
        if (!sess__utf8_valid(value, strlen(value)))
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%s: not valid UTF-8", name, key);
        memcpy(dst, value, strlen(value) + 1);
        return SESS_OK;
    }
    /* [development.|staging.|production.]attribute */
    const char *attr = key;
    int env = -1;
    const char *dot = strchr(key, '.');
    if (dot != NULL) {
        for (int e = 0; e < 3; e++)
            if ((size_t)(dot - key) == strlen(env_prefixes[e]) &&
                strncmp(key, env_prefixes[e], (size_t)(dot - key)) == 0)
                env = e;
        if (env < 0)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s.%.32s: unknown environment (expected "
                              "development., staging. or production.)",
                              name, key);
        attr = dot + 1;
    }
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        if (strcmp(attr, attrs[i].name) == 0)
            return env < 0
                       ? set_attr(name, key, attrs[i].bit, &d->base,
                                  &d->base_set, value, err)
                       : set_attr(name, key, attrs[i].bit, &d->env[env],
                                  &d->env_set[env], value, err);
    return sess__fail(err, SESS_ECONFIG,
                      "cookies.%s.%.32s: unknown key (category, purpose, "
                      "retention, secure, http_only, same_site, path, domain, "
                      "max_age)", name, key);
}

/* ---- resolving and checking ------------------------------------------- */

static void apply_set(sess_cookie_profile *out, const sess_cookie_profile *in,
                      unsigned set)
{
    if (set & SESS_COOKIE_ATTR_SECURE)
        out->secure = in->secure;
    if (set & SESS_COOKIE_ATTR_HTTP_ONLY)
        out->http_only = in->http_only;
    if (set & SESS_COOKIE_ATTR_SAME_SITE)
        out->same_site = in->same_site;
    if (set & SESS_COOKIE_ATTR_PATH)
        memcpy(out->path, in->path, sizeof out->path);
    if (set & SESS_COOKIE_ATTR_DOMAIN)
        memcpy(out->domain, in->domain, sizeof out->domain);
    if (set & SESS_COOKIE_ATTR_MAX_AGE)
        out->max_age = in->max_age;
}

void sess_cookie_decl_resolve(const sess_cookie_decl *d, sess_environment env,
                              sess_cookie_profile *out)
{
    /* The environment's session profile gives the defaults (Secure outside
     * development, HttpOnly, Lax, Path=/, host-only, browser session); the
     * name is the cookie's own. */
    sess_cookie_profile_default(env, out);
    memcpy(out->name, d->name, sizeof out->name);
    apply_set(out, &d->base, d->base_set);
    if ((unsigned)env < 3)
        apply_set(out, &d->env[env], d->env_set[env]);
}

void sess_cookie_consent_profile(const sess_cookie_catalogue *cat,
                                 sess_environment env,
                                 sess_cookie_profile *out)
{
    sess_cookie_profile_default(env, out);
    if (cat->consent_name[0] != '\0')
        memcpy(out->name, cat->consent_name, sizeof out->name);
    else
        snprintf(out->name, sizeof out->name, "%s",
                 env == SESS_ENV_DEVELOPMENT ? "sessiond_consent"
                                             : "__Host-sessiond_consent");
    /* Not HttpOnly: a banner's script reads whether there is an answer.
     * The value is signed, so reading it gives nothing away and changing
     * it makes it count as no consent. */
    out->http_only = false;
    out->max_age = cat->consent_max_age;
}

const sess_cookie_decl *sess_cookie_catalogue_find(
    const sess_cookie_catalogue *cat, const char *name, size_t len)
{
    for (size_t i = 0; i < cat->n; i++)
        if (strlen(cat->cookies[i].name) == len &&
            memcmp(cat->cookies[i].name, name, len) == 0)
            return &cat->cookies[i];
    return NULL;
}

/* Turn the library's "cookie.same_site: ..." into "same_site: ...": the
 * catalogue's keys have no "cookie." section. */
static void strip_section(const char *in, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; in[i] != '\0' && o + 1 < cap;) {
        if (strncmp(in + i, "cookie.", 7) == 0) {
            i += 7;
            continue;
        }
        out[o++] = in[i++];
    }
    out[o] = '\0';
}

static int check_profile(const char *what, const sess_cookie_profile *p,
                         sess_environment env, sess_err *err)
{
    sess_err e = {0};
    char msg[SESS_ERRSTR_MAX];

    /* The RFC 6265bis rules (SameSite=None needs Secure, __Host- needs
     * Secure, Path=/ and no Domain, __Secure- needs Secure, token names). */
    if (sess_cookie_profile_check(p, SESS_ENV_DEVELOPMENT, &e) != SESS_OK) {
        strip_section(e.msg, msg, sizeof msg);
        return sess__fail(err, SESS_ECONFIG, "%s in %s: %s", what,
                          sess_environment_name(env), msg);
    }
    /* RFC 6265bis 5.6.2: a browser caps Max-Age at 400 days, so a longer
     * retention promised in the policy would be untrue. */
    if (p->max_age > SESS_COOKIE_MAX_AGE_CAP)
        return sess__fail(err, SESS_ECONFIG,
                          "%s in %s: max_age: at most %d seconds (400 "
                          "days, RFC 6265bis)", what,
                          sess_environment_name(env), SESS_COOKIE_MAX_AGE_CAP);
    /* Attribute values over 1024 bytes are ignored (RFC 6265bis 5.6). */
    if (strlen(p->path) > SESS_COOKIE_ATTR_MAX ||
        strlen(p->domain) > SESS_COOKIE_ATTR_MAX)
        return sess__fail(err, SESS_ECONFIG,
                          "%s in %s: attribute longer than %d bytes",
                          what, sess_environment_name(env),
                          SESS_COOKIE_ATTR_MAX);
    return SESS_OK;
}

/* Does "a" name the same cookie as "b"?  Browsers match names exactly, but
 * two entries differing only in case are a mistake worth refusing. */
static bool same_name(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* The version: the first 16 hex digits of SHA-256 over what "env" serves,
 * one field per line, so that any change a visitor consented to (a new
 * cookie, a new purpose, a longer retention) asks for consent again. */
static void compute_version(sess_cookie_catalogue *cat, sess_environment env,
                            const sess_cookie_profile *session)
{
    char line[SESS_COOKIE_NAME_MAX + SESS_COOKIE_PURPOSE_MAX +
              SESS_COOKIE_RETENTION_MAX + SESS_COOKIE_PATH_MAX +
              SESS_COOKIE_DOMAIN_MAX + 128];
    size_t cap = (cat->n + 2) * sizeof line, used = 0;
    char *buf = malloc(cap);
    uint8_t h[32];
    static const char hex[] = "0123456789abcdef";

    if (buf == NULL) {
        snprintf(cat->effective, sizeof cat->effective, "unhashed");
        return;
    }
    for (size_t i = 0; i < cat->n + 1; i++) {
        const sess_cookie_decl *d = i < cat->n ? &cat->cookies[i] : NULL;
        sess_cookie_profile p;
        if (d != NULL)
            sess_cookie_decl_resolve(d, env, &p);
        else
            p = *session;
        int w = snprintf(line, sizeof line,
                         "%s\t%s\t%s\t%s\t%d%d%d\t%s\t%s\t%lld\n", p.name,
                         d ? category_names[d->category] : "essential",
                         d ? d->purpose : cat->session_purpose,
                         d ? d->retention : "", p.secure, p.http_only,
                         (int)p.same_site, p.path, p.domain,
                         (long long)p.max_age);
        if (w > 0 && (size_t)w < sizeof line && used + (size_t)w <= cap) {
            memcpy(buf + used, line, (size_t)w);
            used += (size_t)w;
        }
    }
    sess__sha256_labeled("sessiond cookie policy v1", buf, used, h);
    free(buf);
    for (size_t i = 0; i < 8; i++) {
        cat->effective[2 * i] = hex[h[i] >> 4];
        cat->effective[2 * i + 1] = hex[h[i] & 15];
    }
    cat->effective[16] = '\0';
}

static bool version_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > SESS_POLICY_VERSION_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

int sess_cookie_catalogue_check(sess_cookie_catalogue *cat,
                                sess_environment env,
                                const sess_cookie_profile *session,
                                sess_err *err)
{
    sess_cookie_profile p, consent;
    int rc;

    if (cat->version[0] != '\0' && !version_ok(cat->version))
        return sess__fail(err, SESS_ECONFIG,
                          "cookie_policy.version: 1-%d characters of "
                          "[A-Za-z0-9_-]", SESS_POLICY_VERSION_MAX);
    if (!sess__utf8_valid(cat->session_purpose, strlen(cat->session_purpose)))
        return sess__fail(err, SESS_ECONFIG,
                          "cookie_policy.session_purpose: not valid UTF-8");
    if (cat->consent_max_age < 1 ||
        cat->consent_max_age > SESS_COOKIE_MAX_AGE_CAP)
        return sess__fail(err, SESS_ECONFIG,
                          "cookie_policy.consent_max_age: 1..%d seconds (400 "
                          "days, RFC 6265bis)", SESS_COOKIE_MAX_AGE_CAP);
    for (int e = 0; e < 3; e++) {
        sess_cookie_consent_profile(cat, (sess_environment)e, &consent);
        if (e == (int)env || cat->consent_name[0] == '\0') {
            rc = check_profile("cookie_policy.consent_cookie", &consent,
                               (sess_environment)e, err);
            if (rc != SESS_OK)
                return rc;
        }
    }
    sess_cookie_consent_profile(cat, env, &consent);
    memcpy(cat->consent_effective, consent.name, sizeof cat->consent_effective);
    if (same_name(consent.name, session->name))
        return sess__fail(err, SESS_ECONFIG,
                          "cookie_policy.consent_cookie: same name as the "
                          "session cookie");
    for (size_t i = 0; i < cat->n; i++) {
        const sess_cookie_decl *d = &cat->cookies[i];
        if (!d->category_set)
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s: category is missing (essential, "
                              "functional, analytics or marketing)", d->name);
        if (d->purpose[0] == '\0')
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s: purpose is missing (a consent "
                              "banner shows it)", d->name);
        for (int e = 0; e < 3; e++) {
            char what[SESS_COOKIE_NAME_MAX + 16];
            snprintf(what, sizeof what, "cookies.%s", d->name);
            sess_cookie_decl_resolve(d, (sess_environment)e, &p);
            rc = check_profile(what, &p, (sess_environment)e, err);
            if (rc != SESS_OK)
                return rc;
        }
        if (same_name(d->name, session->name) ||
            same_name(d->name, consent.name))
            return sess__fail(err, SESS_ECONFIG,
                              "cookies.%s: that name belongs to the %s cookie",
                              d->name,
                              same_name(d->name, session->name) ? "session"
                                                                 : "consent");
        for (size_t j = 0; j < i; j++)
            if (same_name(cat->cookies[j].name, d->name))
                return sess__fail(err, SESS_ECONFIG,
                                  "cookies.%s: declared twice (names differ "
                                  "only in case)", d->name);
    }
    if (cat->version[0] != '\0')
        memcpy(cat->effective, cat->version, sizeof cat->effective);
    else
        compute_version(cat, env, session);
    return SESS_OK;
}

int sess_cookie_value_check(const char *name, const char *value, size_t len)
{
    if (strlen(name) + len > SESS_COOKIE_NAME_VALUE_MAX)
        return SESS_ETOOBIG;
    /* RFC 6265 4.1.1 cookie-octet: a value with ';' or ',' would inject
     * attributes or another cookie into the Set-Cookie header. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' ||
            c == '\\')
            return SESS_EINVAL;
    }
    return SESS_OK;
}

void sess_cookie_retention_text(int64_t max_age, char *buf, size_t cap)
{
    static const struct {
        int64_t seconds;
        const char *one, *many;
    } units[] = {
        {365 * 86400, "year", "years"}, {86400, "day", "days"},
        {3600, "hour", "hours"},        {60, "minute", "minutes"},
        {1, "second", "seconds"},
    };

    if (max_age < 0) {
        snprintf(buf, cap, "browser session");
        return;
    }
    if (max_age == 0) {
        snprintf(buf, cap, "deleted at once");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (max_age % units[i].seconds == 0) {
            int64_t n = max_age / units[i].seconds;
            snprintf(buf, cap, "%lld %s", (long long)n,
                     n == 1 ? units[i].one : units[i].many);
            return;
        }
}

/* ---- consent cookie ----------------------------------------------------- */

#define CONSENT_PREFIX "c1"
#define CONSENT_LABEL "sessiond consent v1\n"
#define CONSENT_MAC_B64 43               /* 32 bytes, base64url */
#define CONSENT_FUTURE_SKEW 60           /* seconds of clock skew allowed */

typedef struct consent_key {
    char kid[SESS_KID_MAX + 1];
    uint8_t key[32];
} consent_key;

struct sess_consent_keys {
    size_t n;
    consent_key keys[];          /* keys[0] signs */
};

/* HKDF-SHA256 (RFC 5869) of a keyring key with the consent label: the
 * same key file never MACs consent with the key that encrypts records. */
static int derive(const uint8_t *ikm, uint8_t *out)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    static char info[] = "sessiond consent cookie v1";
    OSSL_PARAM params[4];
    int ok = 0;

    if (kctx != NULL) {
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                     (char *)"SHA256", 0);
        params[1] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_KEY, (void *)ikm, SESS_KEY_BYTES);
        params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                      info, sizeof info - 1);
        params[3] = OSSL_PARAM_construct_end();
        ok = EVP_KDF_derive(kctx, out, 32, params) > 0;
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ok ? SESS_OK : SESS_ECRYPTO;
}

int sess_consent_keys_derive(const sess_keyring *kr, sess_consent_keys **out,
                             sess_err *err)
{
    *out = NULL;
    if (kr == NULL || kr->n == 0)
        return sess__fail(err, SESS_ENOKEY, "consent: the keyring is empty");
    sess_consent_keys *k =
        calloc(1, sizeof *k + kr->n * sizeof(consent_key));
    if (k == NULL)
        return sess__fail(err, SESS_ENOMEM, "consent: out of memory");
    for (size_t i = 0; i < kr->n; i++) {
        memcpy(k->keys[i].kid, kr->keys[i].kid, sizeof k->keys[i].kid);
        if (derive(kr->keys[i].key, k->keys[i].key) != SESS_OK) {
            k->n = i;
            sess_consent_keys_free(k);
            return sess__fail(err, SESS_ECRYPTO, "consent: HKDF failed");
        }
        k->n = i + 1;
    }
    *out = k;
    return SESS_OK;
}

void sess_consent_keys_free(sess_consent_keys *keys)
{
    if (keys == NULL)
        return;
    sess__wipe(keys->keys, keys->n * sizeof keys->keys[0]);
    free(keys);
}

static int mac(const uint8_t key[32], const char *data, size_t len,
               uint8_t out[32])
{
    unsigned int olen = 0;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[2];
    size_t outl = 0;
    int ok = 0;

    (void)olen;
    if (c != NULL) {
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     (char *)"SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();
        ok = EVP_MAC_init(c, key, 32, params) &&
             EVP_MAC_update(c, (const unsigned char *)CONSENT_LABEL,
                            sizeof CONSENT_LABEL - 1) &&
             EVP_MAC_update(c, (const unsigned char *)data, len) &&
             EVP_MAC_final(c, out, &outl, 32) && outl == 32;
    }
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return ok ? SESS_OK : SESS_ECRYPTO;
}

int sess_consent_sign(const sess_consent_keys *keys, const char *version,
                      uint64_t now, unsigned mask, char *buf, size_t cap)
{
    uint8_t tag[32];

    if (keys == NULL || keys->n == 0 || !version_ok(version))
        return SESS_EINVAL;
    mask = (mask | 1u) & SESS_CONSENT_ALL;
    int n = snprintf(buf, cap, CONSENT_PREFIX ".%s.%s.%llu.%x",
                     keys->keys[0].kid, version, (unsigned long long)now,
                     mask);
    if (n < 0 || (size_t)n + 1 + CONSENT_MAC_B64 + 1 > cap ||
        (size_t)n + 1 + CONSENT_MAC_B64 > SESS_CONSENT_VALUE_MAX)
        return SESS_ETOOBIG;
    if (mac(keys->keys[0].key, buf, (size_t)n, tag) != SESS_OK)
        return SESS_ECRYPTO;
    buf[n] = '.';
    sess__b64url_encode(tag, 32, buf + n + 1);
    sess__wipe(tag, sizeof tag);
    n += 1 + CONSENT_MAC_B64;
    buf[n] = '\0';
    return n;
}

/* Split "s" ("len" bytes) at '.' into exactly "n" non-empty fields. */
static bool split(const char *s, size_t len, const char **f, size_t *fl,
                  size_t n)
{
    size_t k = 0, start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (k == n || i == start)
            return false;
        f[k] = s + start;
        fl[k] = i - start;
        k++;
        start = i + 1;
    }
    return k == n;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

int sess_consent_verify(const sess_consent_keys *keys, const char *value,
                        size_t len, const char *version, uint64_t now,
                        int64_t max_age, sess_consent *out)
{
    const char *f[6];
    size_t fl[6];
    uint8_t want[32], got[32];
    const consent_key *key = NULL;
    uint64_t at;
    unsigned mask;

    memset(out, 0, sizeof *out);
    /* Bounded before anything else: the value comes from the browser. */
    if (keys == NULL || value == NULL || len > SESS_CONSENT_VALUE_MAX ||
        !split(value, len, f, fl, 6))
        return SESS_REJECTED;
    if (fl[0] != 2 || memcmp(f[0], CONSENT_PREFIX, 2) != 0 ||
        fl[1] > SESS_KID_MAX || fl[2] > SESS_POLICY_VERSION_MAX ||
        !parse_u64(f[3], fl[3], &at) || fl[4] != 1 ||
        fl[5] != CONSENT_MAC_B64)
        return SESS_REJECTED;
    char m = f[4][0];
    if (m >= '0' && m <= '9')
        mask = (unsigned)(m - '0');
    else if (m >= 'a' && m <= 'f')
        mask = (unsigned)(m - 'a' + 10);
    else
        return SESS_REJECTED;
    for (size_t i = 0; i < keys->n && key == NULL; i++)
        if (strlen(keys->keys[i].kid) == fl[1] &&
            memcmp(keys->keys[i].kid, f[1], fl[1]) == 0)
            key = &keys->keys[i];
    if (key == NULL)
        return SESS_REJECTED;
    if (sess__b64url_decode(f[5], fl[5], got, 32) != SESS_OK)
        return SESS_REJECTED;
    if (mac(key->key, value, (size_t)(f[5] - value) - 1, want) != SESS_OK)
        return SESS_REJECTED;
    /* Constant time: a byte-by-byte early exit would let a forger learn
     * the MAC one byte at a time (timing attack). */
    bool ok = CRYPTO_memcmp(want, got, 32) == 0;
    sess__wipe(want, sizeof want);
    if (!ok || (mask & 1u) == 0)
        return SESS_REJECTED;
    if (at > now + CONSENT_FUTURE_SKEW ||
        (max_age >= 0 && now > at && now - at > (uint64_t)max_age))
        return SESS_REJECTED;
    out->mask = mask;
    out->issued_at = at;
    memcpy(out->kid, f[1], fl[1]);
    out->kid[fl[1]] = '\0';
    if (strlen(version) != fl[2] || memcmp(version, f[2], fl[2]) != 0)
        return SESS_CONFLICT;
    return SESS_OK;
}
