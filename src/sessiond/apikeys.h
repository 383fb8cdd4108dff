/*
 * apikeys.h - API keys of the management API (DESIGN invariant 11).
 */
#ifndef SESSIOND_APIKEYS_H
#define SESSIOND_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>

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

#endif /* SESSIOND_APIKEYS_H */
