/*
 * cookies.h - the cookie policy routes (docs/api.md "Cookie policy and
 * consent", docs/cookies.md): GET /v1/cookies/policy, POST
 * /v1/cookies/consent, POST /v1/cookies/set; and the forward-auth hook that
 * passes the verified consent upstream as X-Cookie-Consent.
 *
 * The consent MAC keys are derived from the record keyring at start-up and
 * again on SIGHUP (sessiond_cookies_keys); handlers read them under a
 * read lock, the reload swaps them under the write lock.
 */
#ifndef SESSIOND_COOKIES_H
#define SESSIOND_COOKIES_H

#include <stddef.h>

#include "app.h"
#include "http.h"

/* Derive the consent keys from "kr" (the caller keeps "kr") and publish
 * them; the previous ones are wiped.  0, or -1 with "msg" set (the old
 * keys stay). */
int sessiond_cookies_keys(const sess_keyring *kr, char *msg, size_t msglen);

/* Wipe and free the consent keys (at shutdown). */
void sessiond_cookies_shutdown(void);

void sessiond_cookies_policy(sessiond_app *app, const sessiond_http_req *req,
                             sessiond_http_resp *resp);
void sessiond_cookies_consent(sessiond_app *app, const sessiond_http_req *req,
                              sessiond_http_resp *resp);
void sessiond_cookies_set(sessiond_app *app, const sessiond_http_req *req,
                          sessiond_http_resp *resp);

/*
 * Forward-auth, in two steps because forward-auth wipes the session ID
 * inside the Cookie header once validated: first find the consent
 * cookie's value in the header ("cookie", may be NULL; "*value" NULL when
 * absent; parsing only), then, on a 200, add "X-Cookie-Consent:
 * essential[,functional...]" to "resp" from that value.  A missing,
 * tampered, expired or outdated consent cookie counts as essential only.
 * No JSON, no allocation; the MAC is computed only when the cookie is
 * there.  0, or -1 when the response had no room (it is then a 500).
 */
void sessiond_cookies_find_consent(const sessiond_app *app,
                                   const char *cookie, const char **value,
                                   size_t *len);
int sessiond_cookies_forward_consent(const sessiond_app *app,
                                     const char *value, size_t len,
                                     sessiond_http_resp *resp);

/*
 * The consent mask verified from "value" ("len" bytes) against the
 * current policy: 1 (essential) when invalid.  "status" (may be NULL) gets
 * "valid", "outdated" or "invalid"; "prev" (may be NULL) gets the mask the
 * cookie was signed with when authentic (outdated ones included), else 0.
 * Exposed for tests and the fuzz target.
 */
unsigned sessiond_cookies_verify(const sessiond_app *app, const char *value,
                                 size_t len, const char **status,
                                 unsigned *prev);

#endif /* SESSIOND_COOKIES_H */
