/*
 * sess/keys.h - the keyring: record-encryption keys, each with a key id.
 *
 * Keys live in a directory, one file per key: "<kid>.key" holding 32 random
 * bytes written as 64 hex digits (a trailing newline is allowed).  Files
 * must be regular, owned by the running user and not readable by group or
 * others (mode 0600 or stricter), or loading fails: a key readable by
 * others is a leaked key.  Key ids are 1 to 64 characters of [A-Za-z0-9_-].
 *
 * A key id pins its bytes: the first load (or sess_keyring_generate) writes
 * "<kid>.pin" beside the key, a fingerprint of it, and a later load whose
 * key file no longer matches it fails (SESS_ECONFIG, naming the id).  Keys
 * of one repeated byte (all zero) are refused, from files and from
 * sess_keyring_from_keys.
 *
 * Several keys are live at once: the newest (greatest kid in byte order;
 * sess_keyring_generate() makes time-ordered ids) encrypts, all decrypt.
 * Key material is wiped (OPENSSL_cleanse) when the keyring is freed.
 *
 * A keyring is immutable after loading and may be shared by threads.
 */
#ifndef SESS_KEYS_H
#define SESS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sess/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define SESS_KEY_BYTES 32
#define SESS_KID_MAX 64          /* characters, without NUL */
#define SESS_KEYRING_MAX 64      /* keys in one directory */

typedef struct sess_keyring sess_keyring;

/*
 * Load every "*.key" file of "dir".  With "create_if_missing" a missing or
 * empty directory is created (0700) and one fresh key generated in it
 * (development only).  On success "*out" is a keyring the caller frees with
 * sess_keyring_free().
 */
SESS_NODISCARD int sess_keyring_load_dir(const char *dir, bool create_if_missing,
                          sess_keyring **out, sess_err *err);

/*
 * Build a keyring from raw keys (tests, embedding).  "kids" and "keys" have
 * "n" entries; each key is SESS_KEY_BYTES long.  The bytes are copied.
 */
SESS_NODISCARD int sess_keyring_from_keys(const char *const *kids,
                           const uint8_t (*keys)[SESS_KEY_BYTES], size_t n,
                           sess_keyring **out, sess_err *err);

/*
 * Generate a new key in "dir" (created 0700 if missing) from getrandom(),
 * written 0600 under a time-ordered key id, so it becomes the newest key.
 * The id is copied into "kid_out" (SESS_KID_MAX + 1 bytes).
 */
SESS_NODISCARD int sess_keyring_generate(const char *dir, char *kid_out, sess_err *err);

/* Number of keys, and the id of key "i" (0 = newest). */
size_t sess_keyring_count(const sess_keyring *kr);
const char *sess_keyring_kid(const sess_keyring *kr, size_t i);

void sess_keyring_free(sess_keyring *kr);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_KEYS_H */
