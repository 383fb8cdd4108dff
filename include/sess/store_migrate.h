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

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_STORE_MIGRATE_H */
