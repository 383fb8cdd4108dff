/*
 * crypto.h - sealing of session records at rest (AES-256-GCM with a key id)
 * and the keyring's internal view.
 *
 * Sealed blob, format version 1 (docs/security.md invariant 3):
 *
 *   u8  format            SESS__SEAL_V1
 *   u8  kid_len           1..SESS_KID_MAX
 *   kid_len bytes kid
 *   12 bytes nonce        random per seal (getrandom)
 *   N bytes ciphertext    of the plaintext record
 *   16 bytes tag
 *
 * The additional authenticated data is the header (format, kid_len, kid)
 * followed by the storage key the blob is stored under, so a record moved
 * to another key, or with its key id edited, fails to open.
 */
#ifndef SESS_CRYPTO_H
#define SESS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "sess/keys.h"
#include "sess/store.h"

#define SESS__SEAL_V1 1
#define SESS__NONCE_BYTES 12
#define SESS__TAG_BYTES 16
/* Worst-case bytes a seal adds to its plaintext. */
#define SESS__SEAL_OVERHEAD (2 + SESS_KID_MAX + SESS__NONCE_BYTES + SESS__TAG_BYTES)

typedef struct sess__key {
    char kid[SESS_KID_MAX + 1];
    uint8_t kid_len;
    uint8_t key[SESS_KEY_BYTES];    /* record-encryption subkey */
} sess__key;

struct sess_keyring {
    size_t n;
    sess__key keys[SESS_KEYRING_MAX]; /* sorted: keys[0] is the newest */
};

/* The key records are sealed with (the newest). */
const sess__key *sess__keyring_primary(const sess_keyring *kr);

/* The key with id "kid" ("len" bytes), or NULL. */
const sess__key *sess__keyring_find(const sess_keyring *kr, const char *kid,
                                    size_t len);

/*
 * Seal "pt" ("pt_len" bytes) under the newest key of "kr" for storage key
 * "skey" into "out" (grown as needed).  SESS_OK or an error.
 */
int sess__seal(const sess_keyring *kr, const uint8_t *skey, const uint8_t *pt,
               size_t pt_len, sess_store_buf *out, sess_err *err);

/*
 * Open a sealed "blob" stored under "skey" into "out" (grown as needed).
 * SESS_ENOKEY when the key id is not in "kr", SESS_ECORRUPT when the blob is
 * malformed or fails authentication.
 */
int sess__open(const sess_keyring *kr, const uint8_t *skey,
               const uint8_t *blob, size_t blob_len, sess_store_buf *out,
               sess_err *err);

/*
 * Encrypt a 32-byte secret under a key derived from another secret
 * ("wrap_secret", e.g. the ID being rotated away), bound to "aad".
 * Output: nonce || ciphertext || tag (SESS__WRAP_BYTES).
 */
#define SESS__WRAP_BYTES (SESS__NONCE_BYTES + 32 + SESS__TAG_BYTES)
int sess__wrap32(const uint8_t *wrap_secret, size_t wrap_len,
                 const uint8_t *aad, size_t aad_len, const uint8_t in[32],
                 uint8_t out[SESS__WRAP_BYTES]);
int sess__unwrap32(const uint8_t *wrap_secret, size_t wrap_len,
                   const uint8_t *aad, size_t aad_len,
                   const uint8_t in[SESS__WRAP_BYTES], uint8_t out[32]);

/*
 * Wipe the keys every thread's cipher contexts hold (the remembered copy
 * and OpenSSL's expanded key schedule): called when keys are dropped or a
 * keyring is freed, so no copy of a retired key outlives it in a context
 * of a thread that happens to be idle.  Waits for a thread inside one
 * seal or open to finish it; the next operation of each thread sets its
 * key up again.
 */
void sess__crypto_forget_keys(void);

/* How many cipher contexts, over all threads, hold "key" (a derived
 * record key, sess__key.key) now.  For tests. */
size_t sess__crypto_slots_holding(const uint8_t key[SESS_KEY_BYTES]);

/* Fingerprint file kept beside each key file: "<kid>.pin". */
#define SESS__PIN_SUFFIX ".pin"

#endif /* SESS_CRYPTO_H */
