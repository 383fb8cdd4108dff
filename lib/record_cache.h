/*
 * record_cache.h - the opened-record cache: plaintexts of recently opened
 * session records, so that validating a record that has not changed since
 * it was last opened skips AES-256-GCM.
 *
 * The cache never decides whether a session exists: every lookup starts
 * from the sealed blob the store returned just now, and an entry is used
 * only when that blob is the one the entry was opened from (same length,
 * same header with key id and nonce, same tag), under the same keyring
 * generation.  So the cache is a memo of a pure function (blob -> plaintext)
 * and is exactly as coherent as the store read before it: a destroyed,
 * touched or rotated session has another blob (or none) and misses.
 *
 * Why comparing header, nonce and tag is enough: every seal draws a fresh
 * random 96-bit nonce, so an honest writer never produces another blob with
 * the same nonce and tag.  Someone who can write the store but has no key
 * could put a different ciphertext behind a known nonce and tag; the cache
 * would then answer with the record this key last held, which that person
 * could equally obtain by writing the old blob back (GCM does not prevent
 * replay of a store's own past records).  Nothing new is possible.
 *
 * Memory: a fixed arena of 1 KiB slots (4-way set-associative, CLOCK
 * eviction, admission throttled while the cache thrashes), reserved with mmap and marked MADV_DONTDUMP, so plaintexts
 * (which hold CSRF tokens) stay out of core dumps; pages are touched only
 * as slots fill.  Plaintexts too large for a slot are not cached.  Every
 * evicted, dropped or cleared slot is wiped.  Thread-safe (striped locks).
 */
#ifndef SESS_RECORD_CACHE_H
#define SESS_RECORD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/store.h"

typedef struct sess__rcache sess__rcache;

/* A cache of about "entries" records (rounded up to a power of two).
 * NULL when out of memory. */
sess__rcache *sess__rcache_new(size_t entries);
void sess__rcache_free(sess__rcache *c);

/* Start loading the cache lines "key" would use, so they arrive while the
 * store is read (a validate's memory misses then overlap). */
void sess__rcache_prefetch(const sess__rcache *c, const uint8_t key[32]);

/* The plaintext of "blob" (sealed for storage key "key") into "pt" when
 * cached under keyring generation "gen"; false on a miss. */
bool sess__rcache_get(sess__rcache *c, const uint8_t key[32], uint32_t gen,
                      const uint8_t *blob, size_t blob_len, sess_store_buf *pt);

/* Remember that "blob" opens to "pt" under generation "gen". */
void sess__rcache_put(sess__rcache *c, const uint8_t key[32], uint32_t gen,
                      const uint8_t *blob, size_t blob_len, const uint8_t *pt,
                      size_t pt_len);

/* Whether a record just opened after a miss should be put: always while
 * the cache has room or hits at least one lookup in four (on this thread,
 * lately); when it is full and mostly missing (the records in use
 * outnumber its slots) only one miss in 16, so it does not churn.  Writes
 * (records just sealed) are always put. */
bool sess__rcache_admit(const sess__rcache *c);

/* Forget (and wipe) whatever is cached for "key". */
void sess__rcache_drop(sess__rcache *c, const uint8_t key[32]);

/* Forget (and wipe) everything, e.g. after a key reload. */
void sess__rcache_clear(sess__rcache *c);

/* Slots in use and in total, for metrics. */
void sess__rcache_usage(sess__rcache *c, size_t *used, size_t *slots);

#endif
