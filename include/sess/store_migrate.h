/*
 * sess/store_migrate.h - the migration store ("migrate:MODE|FROM|TO"): a
 * store over two stores that moves live sessions from FROM to TO without
 * logging anyone out (docs/migration.md).  The mode can change at run time
 * while requests run: each operation reads the mode word once and keeps
 * to it, so a change never tears an operation.
 *
 * Modes: off, shadow, dual, route:N (0..100), read-through, new.
 */
#ifndef SESS_STORE_MIGRATE_H
#define SESS_STORE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/error.h"
#include "sess/keys.h"
#include "sess/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef enum sess_migrate_kind {
    SESS_MIGRATE_OFF = 0,
    SESS_MIGRATE_SHADOW,
    SESS_MIGRATE_DUAL,
    SESS_MIGRATE_ROUTE,
    SESS_MIGRATE_READ_THROUGH,
    SESS_MIGRATE_NEW,
    SESS_MIGRATE_KINDS
} sess_migrate_kind;

#define SESS_MIGRATE_MODE_MAX 16 /* longest mode text + NUL ("read-through") */

/* Counters of one migration store; monotonic. */
typedef struct sess_migrate_counters {
    uint64_t requests[SESS_MIGRATE_KINDS][2]; /* [mode][0 from, 1 to] store calls */
    uint64_t shadow_write_failures;  /* `to` writes that failed in shadow (hidden) */
    uint64_t to_write_failures;      /* `to` writes that failed in dual/route
                                      * (the request failed) */
    uint64_t mismatch_missing_to;    /* dual/route read: in from, not in to */
    uint64_t mismatch_missing_from;  /* in to, not in from (deleted from to) */
    uint64_t mismatch_differ;        /* both, different record */
    uint64_t read_through_copies;    /* from -> to copies on a read */
    uint64_t fallbacks;              /* reads answered by the other store */
    uint64_t repairs;                /* `to` entries rewritten from `from` */
    uint64_t mode_changes;
} sess_migrate_counters;

/* Parse "off", "shadow", "dual", "route:N", "read-through", "new".
 * SESS_EINVAL (message names the text's problem) otherwise. */
int sess_migrate_mode_parse(const char *text, sess_migrate_kind *kind,
                            unsigned *pct, sess_err *err);

/* true when "st" is a migration store. */
bool sess_store_is_migrate(const sess_store *st);

/* Change the mode; safe while other threads use the store. */
int sess_store_migrate_set_mode(sess_store *st, const char *mode, sess_err *err);

/* The current mode as text ("route:50"), into out[SESS_MIGRATE_MODE_MAX]. */
int sess_store_migrate_mode(const sess_store *st, char *out, size_t len);

int sess_store_migrate_counters(const sess_store *st, sess_migrate_counters *out);

/* The two stores underneath (owned by the migration store). */
sess_store *sess_store_migrate_from(const sess_store *st);
sess_store *sess_store_migrate_to(const sess_store *st);

/* Name of a mode kind ("route" for SESS_MIGRATE_ROUTE). */
const char *sess_migrate_kind_name(sess_migrate_kind k);

/* ---- tools over sealed records (lib/store_tools.c; sessctl migrate,
 * export, import and rekey).  Nothing here returns plaintext. ---------- */

/* The key id a sealed record names in its clear header, into "kid"
 * ("cap" >= SESS_KID_MAX + 1).  SESS_ECORRUPT when the header is
 * malformed; the record is not opened. */
int sess_sealed_kid(const uint8_t *blob, size_t len, char *kid, size_t cap);

/* A fingerprint of key "kid" of "kr": a labelled SHA-256 of the derived
 * record key, so two keyrings can tell whether they hold the same key
 * without revealing it (an export names the keys its records need).
 * SESS_NOTFOUND when "kr" has no such key. */
#define SESS_KEY_FINGERPRINT_BYTES 32
int sess_keyring_fingerprint(const sess_keyring *kr, const char *kid,
                             uint8_t out[SESS_KEY_FINGERPRINT_BYTES]);

/* Re-seal the record "blob" stored under "key" with the newest key of
 * "kr" into "out" (grown as needed; the caller frees it): opened and
 * sealed again inside, the plaintext wiped before return.  SESS_ENOKEY
 * when its key is not in "kr", SESS_ECORRUPT when it fails to open. */
int sess_reseal(const sess_keyring *kr, const uint8_t *key, const uint8_t *blob,
                size_t len, sess_store_buf *out, sess_err *err);

/* Progress of a walk by sessctl (migrate, rekey), kept as a small state
 * entry in the store it writes: so that the walk resumes where it
 * stopped (its cursor) and sessiond can report it (the
 * sessiond_migration_backfill_* metrics).  The entry lives under a
 * reserved key no session ID hashes to (sess_store_state_key), unindexed
 * (not counted as a session), and expires 30 days after its last save. */
typedef enum sess_progress_kind {
    SESS_PROGRESS_MIGRATE = 1,
    SESS_PROGRESS_REKEY = 2
} sess_progress_kind;

typedef struct sess_progress {
    uint32_t kind;                /* sess_progress_kind */
    uint32_t done;                /* the walk reached the end */
    uint64_t started_at, updated_at; /* Unix seconds */
    uint64_t total;               /* live sessions of the source at start */
    uint64_t scanned, copied, skipped, removed, failed;
    uint8_t source[32];           /* migrate: SHA-256 of the source URL
                                   * without its password (resume only
                                   * the same walk) */
    sess_store_cursor cursor;
} sess_progress;

/* true when "key" is one of the reserved state keys (walks skip them). */
bool sess_store_is_state_key(const uint8_t key[SESS_STORE_KEY_BYTES]);

/* Read the progress of "kind" from "st": SESS_OK, SESS_NOTFOUND, or
 * SESS_ECORRUPT when the entry is malformed. */
int sess_progress_load(sess_store *st, sess_progress_kind kind, uint64_t now,
                       sess_progress *out, sess_err *err);

/* Write "p" into "st" (insert or replace the state entry). */
int sess_progress_save(sess_store *st, const sess_progress *p, uint64_t now,
                       sess_err *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_STORE_MIGRATE_H */
