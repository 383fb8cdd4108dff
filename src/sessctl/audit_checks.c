/*
 * audit_checks.c - the table of sessctl audit's checks: id (the JSON
 * "check" and the SARIF ruleId), title, the severity of a failure, the
 * project checklist ids (docs/audit.md, "The checklist") and the OWASP
 * ASVS 5.0 requirements it maps to, and the fix in one paragraph.  The
 * report, the SARIF rules and docs/audit.md all come from this one table.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "audit.h"

static const audit_check_def defs[] = {
    {"transport-tls", "The site is served over HTTPS", SEV_HIGH, "ST-001", "V12.2.1",
     "Serve every page over HTTPS and redirect plain HTTP to it (with HSTS), so that no "
     "session cookie ever crosses the network in clear text; a session cookie sent once "
     "over HTTP can be read by anyone on the path and replayed."},
    {"cookie-httponly", "The session cookie has HttpOnly", SEV_MEDIUM, "ST-002", "V3.3.4",
     "Add the HttpOnly attribute to the session cookie (express-session: cookie.httpOnly, "
     "PHP: session.cookie_httponly = 1, sessiond: always on), so that a script injected "
     "into a page (XSS) cannot read the session ID and send it away."},
    {"cookie-secure", "The session cookie has Secure", SEV_HIGH, "ST-001", "V3.3.1",
     "Add the Secure attribute (PHP: session.cookie_secure = 1, express-session: "
     "cookie.secure with 'trust proxy' behind a TLS proxy, sessiond: any env but "
     "development), so that the browser never sends the session cookie over plain HTTP."},
    {"cookie-samesite", "The session cookie has SameSite=Lax or Strict", SEV_LOW, "ST-003",
     "V3.3.2",
     "Set SameSite=Lax (or Strict where cross-site links into logged-in pages are not "
     "needed) on the session cookie, so that the browser leaves it off cross-site "
     "sub-requests and POSTs (CSRF, cross-site leaks). SameSite=None needs a reason and "
     "then a CSRF token on every state-changing request."},
    {"cookie-prefix", "The session cookie uses the __Host- prefix", SEV_LOW, "ST-004",
     "V3.3.1, V3.3.3",
     "Name the session cookie __Host-NAME (with Secure, Path=/ and no Domain), so that no "
     "sibling subdomain and no plain-HTTP response can set or overwrite it (cookie "
     "tossing, fixation from a subdomain). Use __Secure- where the cookie must be shared."},
    {"cookie-scope", "The session cookie is scoped to this host", SEV_MEDIUM, "ST-004",
     "V3.3.3",
     "Leave the Domain attribute off the session cookie (host-only) and use Path=/, so "
     "that the cookie is not sent to every subdomain, where any application on a sibling "
     "host could read it."},
    {"cookie-persistent-session", "The session cookie is not persistent", SEV_MEDIUM,
     "ST-007", "V7.3.1, V7.3.2",
     "Send the session cookie without Expires or Max-Age (a browser-session cookie) and "
     "let the server's idle and absolute timeouts end the session; a persistent cookie "
     "keeps the session on a shared computer after the browser is closed. Offer an "
     "explicit 'remember me' instead."},
    {"cookie-size", "The session cookie fits the browser limits", SEV_LOW, "ST-004", "V3.3.5",
     "Keep each cookie's name and value under 4096 bytes (RFC 6265bis section 5.6): "
     "browsers drop larger cookies silently, and session data belongs on the server."},
    {"id-length", "The session ID is long enough", SEV_HIGH, "SG-001", "V7.2.3",
     "Generate session IDs from at least 128 bits of a cryptographically secure random "
     "source (sessiond: 256 bits; PHP: session.sid_length = 32 with "
     "session.sid_bits_per_character = 5; express-session: the default genid)."},
    {"id-randomness", "The session ID is unpredictable", SEV_HIGH, "SG-002", "V7.2.3",
     "Generate session IDs with the operating system's CSPRNG (getrandom, "
     "crypto.randomBytes, random_bytes, secrets.token_urlsafe), never from a counter, the "
     "clock, a hash of either, or a general-purpose PRNG such as Math.random or mt_rand."},
    {"session-fixation", "A session ID planted before login is not kept after it",
     SEV_HIGH, "SG-003, SG-004", "V7.2.4",
     "Issue a new session ID at login (session_regenerate_id(true) in PHP, "
     "req.session.regenerate in express, sessiond: POST /v1/sessions creates a new one) "
     "and refuse IDs the server did not issue (PHP: session.use_strict_mode = 1), so that "
     "an ID an attacker planted in the victim's browser does not become authenticated."},
    {"logout-invalidation", "Logout ends the session on the server", SEV_HIGH, "SE-001",
     "V7.4.1",
     "Destroy the session in the server's store at logout (session_destroy, "
     "req.session.destroy, sessiond: POST /v1/sessions/destroy); clearing the cookie is "
     "not enough, because a copy of the cookie (a stolen one, a proxy log) still works. "
     "Self-contained signed cookies (Flask's default, Rails' cookie store) cannot be "
     "revoked at all: keep a server-side session or a revocation list."},
    {"logout-cookie-cleared", "Logout clears the cookie in the browser", SEV_LOW, "SE-003",
     "V7.4.1",
     "Answer the logout with a Set-Cookie that deletes the session cookie (same name, "
     "Path and Domain, Max-Age=0), so that the browser does not keep sending an ID that "
     "was ended."},
    {"session-timeout", "Idle and absolute timeouts end the session", SEV_MEDIUM, "SE-002",
     "V7.3.1, V7.3.2",
     "Enforce an idle timeout (for example 15 to 30 minutes) and an absolute lifetime "
     "(for example 12 to 24 hours) on the server, from the risk of the application, and "
     "document them (sessiond: session.idle_timeout and session.absolute_timeout)."},
    {"id-in-url", "The session ID never appears in, nor is taken from, a URL", SEV_HIGH,
     "ST-005", "V14.2.1",
     "Carry the session ID only in the cookie: turn off URL rewriting (PHP: "
     "session.use_trans_sid = 0, session.use_only_cookies = 1; Java: "
     "tracking-mode COOKIE) and never accept the ID from the query string, because URLs "
     "end up in logs, Referer headers and browser history."},
    {"cache-control-authenticated", "Authenticated pages are not cached", SEV_MEDIUM,
     "ST-006", "V14.3.2",
     "Send Cache-Control: no-store on every page that needs a session, so that neither a "
     "shared cache nor the browser's history keeps a copy of the user's data for the "
     "next person."},
    {"csrf-token", "State-changing requests need a token or a same-origin check", SEV_HIGH,
     "SV-002", "V3.5.1",
     "Require an unpredictable per-session token on every state-changing request (a "
     "hidden form field or an X-CSRF-Token header; sessiond's forward-auth checks it), "
     "and refuse requests whose Origin is foreign or whose Sec-Fetch-Site is cross-site."},
    {"binding", "The session follows a changed client (information)", SEV_INFO, "SV-003", "",
     "Binding a session to the User-Agent or the client address detects some stolen "
     "cookies but logs out users whose address changes (mobile networks, proxies). "
     "sessiond's binding section offers both with a grace; decide from the risk and "
     "document the choice."},
    {"tampering", "A modified session cookie is refused cleanly", SEV_HIGH, "SV-001",
     "V7.2.1, V16.5.1",
     "Look a session ID up exactly (constant-time comparison of the whole value) and "
     "answer an unknown or damaged one like a missing one: a login page or a 401, "
     "never a stack trace or an error page that tells the attacker about the server."},
    {"cookie-policy-undeclared", "Every cookie the site sets is in the cookie policy",
     SEV_MEDIUM, "ST-008", "",
     "Declare every cookie the site sets in the cookie catalogue (name, category, purpose, "
     "retention, attributes) or stop setting it; an undeclared cookie is a consent "
     "and a review gap."},
    {"cookie-policy-attributes", "Cookie attributes match the cookie policy", SEV_LOW,
     "ST-008", "V3.3.1, V3.3.2, V3.3.4",
     "Build every cookie from the catalogue (sessiond: POST /v1/cookies/set) so that the "
     "attributes the site sends are the ones the policy declares."},
    {"cookie-consent", "No analytics or marketing cookie before consent", SEV_HIGH,
     "ST-009", "",
     "Set cookies of the consent-required categories (functional, analytics, marketing) "
     "only after the visitor consented (sessiond: POST /v1/cookies/set refuses them "
     "without a valid consent cookie)."},
    {"storage-encryption", "Session data is encrypted at rest", SEV_MEDIUM, "SS-001", "V14.2.4",
     "Not testable from outside. Check by hand that the session store encrypts records "
     "(sessiond: always, with keys from keys_dir), or that the store sits on an "
     "encrypted volume, and that the keys are not on the same disk as the data."},
    {"backup-encryption", "Backups of the session store are encrypted", SEV_MEDIUM, "SS-002",
     "V14.2.4",
     "Not testable from outside. Check by hand that store snapshots and backups "
     "(LMDB copies, Redis RDB/AOF files) are encrypted and that the backup holders cannot "
     "read the keys."},
    {"store-access-control", "Only the application can reach the session store", SEV_MEDIUM,
     "SS-003", "V13.2.2",
     "Not testable from outside. Check by hand that the store listens only where the "
     "application is (Redis: bind, protected-mode, ACL users with passwords, TLS), that "
     "the LMDB directory is mode 0700, and that no admin API is exposed."},
};

const audit_check_def *audit_check_table(size_t *n)
{
    *n = sizeof defs / sizeof defs[0];
    return defs;
}

const audit_check_def *audit_check_find(const char *id)
{
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!strcmp(defs[i].id, id))
            return &defs[i];
    return NULL;
}

static const char *const sev_names[] = {"info", "low", "medium", "high", "critical"};
static const char *const status_names[] = {"pass", "fail", "not_applicable", "not_tested"};

const char *audit_severity_name(audit_severity s)
{
    return (unsigned)s < 5 ? sev_names[s] : "?";
}

const char *audit_status_name(audit_status s)
{
    return (unsigned)s < 4 ? status_names[s] : "?";
}

int audit_severity_parse(const char *s, audit_severity *out)
{
    for (unsigned i = 0; i < 5; i++)
        if (!strcasecmp(s, sev_names[i])) {
            *out = (audit_severity)i;
            return 0;
        }
    if (!strcasecmp(s, "none")) {   /* never fail on findings */
        *out = (audit_severity)5;
        return 0;
    }
    return -1;
}

void audit_mask(const char *value, char *out, size_t cap)
{
    unsigned char md[32];
    unsigned mdlen = 0;
    size_t n = strlen(value);
    /* At most 4 characters and never more than an eighth of the value. */
    size_t pre = n / 8 < 4 ? n / 8 : 4;
    EVP_Digest(value, n, md, &mdlen, EVP_sha256(), NULL);
    snprintf(out, cap, "%.*s... (%zu chars, sha256:%02x%02x%02x%02x)", (int)pre, value, n,
             md[0], md[1], md[2], md[3]);
}
