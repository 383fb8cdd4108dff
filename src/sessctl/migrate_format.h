/*
 * migrate_format.h - the session export format of sessctl (docs/formats.md):
 * base64 and hex for the writer (migrate.c), and the bounded, streaming
 * reader that checks a whole file (migrate_format.c; fuzz/fuzz_export.c).
 */
#ifndef SESSCTL_MIGRATE_FORMAT_H
#define SESSCTL_MIGRATE_FORMAT_H

#include <stdint.h>
#include <stdio.h>

#include "sess.h"

#define EXPORT_FORMAT "sessiond-export"
#define EXPORT_VERSION 1
/* Longest line of an export: a record line holds a blob of at most
 * SESS_STORE_BLOB_MAX bytes in base64 (4/3) plus small fields. */
#define LINE_MAX_BYTES (SESS_STORE_BLOB_MAX / 3 * 4 + 4096)

/* base64 (RFC 4648 section 4, padded) of "n" bytes; malloc'ed, or NULL. */
char *export_b64(const uint8_t *p, size_t n);
/* Decode "s" into "out" ("cap" bytes): the length, or -1 when malformed
 * or longer than "cap". */
long export_unb64(const char *s, uint8_t *out, size_t cap);

/* Called with each record of a file being read (its blob valid for the
 * call only); non-zero stops the read with "msg" set by the callee. */
typedef int (*export_entry_fn)(void *ctx, const sess_entry *e, size_t lineno, char *msg,
                               size_t cap);

enum { EXPORT_OK = 0, EXPORT_BAD = 1, EXPORT_STOPPED = 2 };

/* Read an export from "in" with the importer's keyring "kr", checking
 * everything docs/formats.md lists; "fn" (NULL: check only) gets each
 * record as it is read.  EXPORT_OK with the record count and the file's
 * SHA-256; EXPORT_BAD with "line N: reason" in "msg"; EXPORT_STOPPED when
 * "fn" stopped.  Memory is bounded (one line, one record). */
int export_read(FILE *in, const sess_keyring *kr, export_entry_fn fn, void *ctx,
                uint64_t *records_out, uint8_t digest[32], char *msg, size_t cap);

#endif /* SESSCTL_MIGRATE_FORMAT_H */
