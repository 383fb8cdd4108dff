/*
 * fuzz_cookie_policy.c - libFuzzer target for the cookie catalogue parser
 * and checks (INI [cookies.NAME] sections through sessiond's config reader
 * into lib/cookie_policy.c) and the consent cookie parser
 * (sess_consent_verify).
 *
 * The input is split at the first NUL byte: INI text, then a consent
 * cookie value.  Invariants: an accepted catalogue keeps every string
 * NUL-terminated and within its bounds, a valid one has a version; the
 * consent parser never accepts what was not signed (a value only verifies
 * if signing its own fields reproduces it byte for byte), and a value it
 * signed itself always verifies.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sess_consent_keys *keys(void)
{
    static sess_consent_keys *k;
    if (k == NULL) {
        const char *kids[1] = {"fuzzkid"};
        uint8_t raw[1][SESS_KEY_BYTES];
        sess_keyring *kr = NULL;
        for (size_t i = 0; i < SESS_KEY_BYTES; i++)
            raw[0][i] = (uint8_t)(0x5a + 7 * i); /* not one byte repeated */
        if (sess_keyring_from_keys(kids, raw, 1, &kr, NULL) != SESS_OK ||
            sess_consent_keys_derive(kr, &k, NULL) != SESS_OK)
            abort();
        sess_keyring_free(kr);
    }
    return k;
}

static void check_terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sessiond_config cfg;
    char err[256];
    const uint8_t *nul = memchr(data, 0, size);
    size_t ini_len = nul ? (size_t)(nul - data) : size;
    const char *cv = nul ? (const char *)nul + 1 : "";
    size_t cv_len = nul ? size - ini_len - 1 : 0;

    sessiond_config_defaults(&cfg);
    int rc = sessiond_config_parse_ini(&cfg, (const char *)data, ini_len, err,
                                       sizeof err);
    if (rc == SESS_OK &&
        sessiond_config_validate(&cfg, err, sizeof err) == SESS_OK) {
        const sess_cookie_catalogue *cat = &cfg.cookies;
        if (cat->n > SESS_COOKIE_CATALOGUE_MAX || cat->effective[0] == '\0')
            abort();
        for (size_t i = 0; i < cat->n; i++) {
            const sess_cookie_decl *d = &cat->cookies[i];
            sess_cookie_profile p;
            char line[SESS_SET_COOKIE_POLICY_MAX];
            check_terminated(d->name, sizeof d->name);
            check_terminated(d->purpose, sizeof d->purpose);
            check_terminated(d->retention, sizeof d->retention);
            sess_cookie_decl_resolve(d, cfg.env, &p);
            if (p.max_age > SESS_COOKIE_MAX_AGE_CAP ||
                (p.same_site == SESS_SAME_SITE_NONE && !p.secure))
                abort();
            if (sess_cookie_format(&p, "v", -1, line, sizeof line) <= 0)
                abort();
        }
    }

    /* The consent parser on the raw bytes. */
    sess_consent c;
    uint64_t now = 1800000000;
    rc = sess_consent_verify(keys(), cv, cv_len, "v1", now, 86400, &c);
    if (rc == SESS_OK || rc == SESS_CONFLICT) {
        char again[SESS_CONSENT_VALUE_MAX + 1];
        const char *ver = rc == SESS_OK ? "v1" : NULL;
        char vbuf[SESS_POLICY_VERSION_MAX + 1];
        if (ver == NULL) {
            /* c1.<kid>.<version>.: recover the version to re-sign. */
            const char *p = memchr(cv + 3, '.', cv_len - 3);
            const char *q = p ? memchr(p + 1, '.', cv_len - (size_t)(p + 1 - cv)) : NULL;
            if (q == NULL || (size_t)(q - p - 1) > SESS_POLICY_VERSION_MAX)
                abort();
            memcpy(vbuf, p + 1, (size_t)(q - p - 1));
            vbuf[q - p - 1] = '\0';
            ver = vbuf;
        }
        int n = sess_consent_sign(keys(), ver, c.issued_at, c.mask, again,
                                  sizeof again);
        if (n < 0 || (size_t)n != cv_len || memcmp(again, cv, cv_len) != 0)
            abort();
    }
    /* Round trip of a value signed here from fuzzed fields. */
    char v[SESS_CONSENT_VALUE_MAX + 1];
    unsigned mask = size ? data[0] : 0;
    int n = sess_consent_sign(keys(), "v1", now, mask, v, sizeof v);
    if (n <= 0 || sess_consent_verify(keys(), v, (size_t)n, "v1", now, 86400,
                                      &c) != SESS_OK ||
        c.mask != ((mask | 1u) & SESS_CONSENT_ALL))
        abort();
    return 0;
}
