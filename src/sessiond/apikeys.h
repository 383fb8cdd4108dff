/*
 * apikeys.h - API keys of the management API (docs/security.md invariant 11).
 */
#ifndef SESSIOND_APIKEYS_H
#define SESSIOND_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSIOND_APIKEY_MIN 32          /* characters */
#define SESSIOND_APIKEY_MAX 1024        /* characters */
#define SESSIOND_APIKEYS_MAX 256        /* keys in one file */
#define SESSIOND_APIKEYS_FILE_MAX (256u * 1024u)

typedef struct sessiond_apikeys sessiond_apikeys;

/*
 * Make an empty key set (no keys: nothing is required).  NULL when out of
 * memory.  Free with sessiond_apikeys_free().
 */
sessiond_apikeys *sessiond_apikeys_new(void);
void sessiond_apikeys_free(sessiond_apikeys *ak);

/*
 * Load the keys of "path" (one per non-empty line not starting with '#',
 * each at least SESSIOND_APIKEY_MIN characters; the file must be a regular
 * file of mode 0600 or stricter) and swap them in.  An empty "path" clears
 * the set.  On failure the current keys stay, and "err" names the file and
 * the problem (never a key).  Returns 0 or -1.  Thread-safe.
 */
int sessiond_apikeys_load(sessiond_apikeys *ak, const char *path, char *err,
                          size_t errlen);

/* True when at least one key is configured. */
bool sessiond_apikeys_enabled(const sessiond_apikeys *ak);

/* Number of keys configured. */
size_t sessiond_apikeys_count(const sessiond_apikeys *ak);

/*
 * Check an "Authorization" header value ("Bearer KEY", NULL if absent)
 * against every configured key in constant time.  True when it matches
 * one, or when no keys are configured.  Thread-safe.
 */
bool sessiond_apikeys_check(sessiond_apikeys *ak, const char *authorization);

typedef enum sessiond_key_result {
    SESSIOND_KEY_OK = 0,        /* matches, or no keys are configured */
    SESSIOND_KEY_MISSING,       /* no "Authorization: Bearer ..." at all */
    SESSIOND_KEY_UNKNOWN        /* a Bearer key that matches none */
} sessiond_key_result;

/* sessiond_apikeys_check, saying why a key was refused. */
sessiond_key_result sessiond_apikeys_verify(sessiond_apikeys *ak,
                                            const char *authorization);

/* "missing" / "unknown" / "ok", for events. */
const char *sessiond_key_result_name(sessiond_key_result r);

/*
 * Per-peer throttling of failed keys (a fixed table of
 * SESSIOND_THROTTLE_SLOTS peers, no allocation).  A peer with
 * SESSIOND_THROTTLE_FAILURES failures within SESSIOND_THROTTLE_WINDOW
 * seconds is refused for SESSIOND_THROTTLE_BLOCK seconds.  "now" is a
 * monotonic second count.
 *
 * sessiond_apikeys_refusing: true when some peer may be refused now.
 * sessiond_apikeys_throttled: true (with the seconds left in
 * "*retry_after") when "peer" is refused now.  While nobody is refused it
 * costs one atomic load and touches no table, so successful requests do
 * not pay for the throttle.
 * sessiond_apikeys_failed: count one failure of "peer"; true when that
 * failure starts a refusal.  Thread-safe.
 */
#define SESSIOND_THROTTLE_SLOTS 4096
#define SESSIOND_THROTTLE_FAILURES 10
#define SESSIOND_THROTTLE_WINDOW 60
#define SESSIOND_THROTTLE_BLOCK 60
bool sessiond_apikeys_refusing(sessiond_apikeys *ak, uint64_t now);
bool sessiond_apikeys_throttled(sessiond_apikeys *ak, const char *peer,
                                uint64_t now, uint32_t *retry_after);
bool sessiond_apikeys_failed(sessiond_apikeys *ak, const char *peer,
                             uint64_t now);

#endif /* SESSIOND_APIKEYS_H */
