/*
 * record.h - the plaintext session record and its versioned binary
 * encoding.  Records are only ever stored sealed (crypto.h); this module
 * turns the struct into bytes and back, and nothing else: no general
 * object serialiser ever touches a record (docs/security.md invariant 3).
 *
 * Encoding, version 1, little-endian, every length bounded on decode:
 *
 *   u8 version (1) | u8 state | u8 flags | u8 ip_family | u8 sections
 *   u64 created_at | issued_at | last_seen_at | idle_expires_at |
 *       abs_expires_at | data_version | login_order
 *   16 handle | 32 csrf | ip (4 bytes for IPv4, 16 for IPv6) | 32 ua_hash
 *   if sections & PREV: u64 prev_csrf_until | 32 prev_csrf
 *   if sections & SUCC: u64 grace_until | 32 succ_key | SESS__WRAP_BYTES
 *   if sections & TOKEN (version 2 only):
 *       u64 rt_expires_at | rt_prev_until | at_iat | at_exp
 *       32 rt_hash | 32 rt_prev_hash | SESS__WRAP_BYTES rt_succ_wrap |
 *       16 at_jti | u16 aud_len | aud
 *   u16 user_len | user | u16 ua_len | ua | u32 data_len | data
 *
 * Version 2 is version 1 plus the TOKEN section (the refresh token of
 * docs/tokens.md): a record without a refresh token is still written as
 * version 1, byte for byte, so every v1 golden vector and every store
 * written before tokens existed reads unchanged, and a record with one
 * says version 2, which an older build refuses cleanly instead of
 * misreading.
 *
 * The optional sections exist only when used (a previous CSRF token after
 * a rotation; the successor in a rotation tombstone), which keeps the
 * common record small: at a million sessions every byte is a megabyte.
 */
#ifndef SESS_RECORD_H
#define SESS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "sess/session.h"

#define SESS__RECORD_V1 1
#define SESS__RECORD_V2 2

typedef enum sess__state {
    SESS__ACTIVE = 1,   /* a live session */
    SESS__ROTATED = 2,  /* tombstone of a rotated ID: successor in grace */
    SESS__REVOKED = 3   /* tombstone of a regenerated ID: dead at once */
} sess__state;

#define SESS__F_ELEVATED 0x1u
#define SESS__F_REMEMBER 0x2u
#define SESS__F_HAS_UA 0x4u

typedef struct sess__record {
    uint8_t state;
    uint8_t flags;
    uint8_t ip_family;            /* 4 or 6 */
    uint64_t created_at;          /* login time; fixed for the session */
    uint64_t issued_at;           /* when the current ID was issued */
    uint64_t last_seen_at;        /* last persisted touch */
    uint64_t idle_expires_at;
    uint64_t abs_expires_at;
    uint64_t data_version;
    uint64_t prev_csrf_until;     /* previous CSRF token accepted until */
    uint64_t grace_until;         /* ROTATED: successor served until */
    uint64_t login_order;         /* eviction order (sess_entry.created_at) */
    uint8_t handle[SESS_STORE_HANDLE_BYTES];
    uint8_t csrf[32];
    uint8_t prev_csrf[32];
    uint8_t ip[16];               /* full client address at login */
    uint8_t ua_hash[32];          /* SHA-256 of the full User-Agent */
    uint8_t succ_key[SESS_STORE_KEY_BYTES];
    uint8_t succ_wrap[SESS__WRAP_BYTES];
    uint16_t user_len;
    uint16_t ua_len;              /* truncated copy, for listing */
    uint32_t data_len;
    char user[SESS_USER_ID_MAX];
    char ua[SESS_UA_MAX];
    const char *data;             /* not owned: points into the decode
                                   * buffer or the caller's data */
    /* TOKEN section (record version 2), all zero when rt_expires_at is 0:
     * the refresh token of docs/tokens.md, stored hashed like the ID. */
    uint64_t rt_expires_at;       /* current refresh token valid until */
    uint64_t rt_prev_until;       /* previous token: its successor is
                                   * handed out again until then */
    uint64_t at_iat, at_exp;      /* the access token issued with it */
    uint8_t rt_hash[32];          /* SHA-256(label, secret) of current */
    uint8_t rt_prev_hash[32];     /* ... of the previous (spent) one */
    uint8_t rt_succ_wrap[SESS__WRAP_BYTES]; /* current secret wrapped
                                   * under the previous one */
    uint8_t at_jti[16];
    uint16_t aud_len;
    char aud[SESS_TOKEN_AUD_MAX]; /* JSON text of the "aud" claim */
} sess__record;

/* Bytes needed to encode "r". */
size_t sess__record_size(const sess__record *r);

/* Encode "r" into "out" (at least sess__record_size bytes). */
void sess__record_encode(const sess__record *r, uint8_t *out);

/* Decode "len" bytes; r->data points into "in".  SESS_OK/SESS_ECORRUPT. */
int sess__record_decode(const uint8_t *in, size_t len, sess__record *r);

#endif /* SESS_RECORD_H */
