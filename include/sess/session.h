/*
 * sess/session.h - the session lifecycle: create, validate, rotate,
 * regenerate, update data, destroy, list and revoke.
 *
 * A sess_ctx ties together a configuration, a store and a keyring.  It is
 * thread-safe: every call may run on any thread at once.  Keys can be
 * swapped at run time (sess_ctx_reload_keys) without dropping sessions.
 *
 * Secrets.  Session IDs and CSRF tokens cross this API only as the
 * caller's strings and in sess_issued / sess_view, which the caller wipes
 * with sess_wipe() when done.  The library stores only SHA-256(ID) and
 * never logs an ID: events carry the non-secret handle.
 *
 * Time comes from one place, the context's clock (sess_ctx_set_clock), so
 * tests move time without sleeping.
 */
#ifndef SESS_SESSION_H
#define SESS_SESSION_H

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

#define SESS_ID_LEN 43        /* 256 bits, base64url without padding */
#define SESS_HANDLE_LEN 22    /* 128 bits, base64url without padding */
#define SESS_CSRF_LEN 43      /* 256 bits, base64url without padding */
#define SESS_USER_ID_MAX 256  /* bytes of UTF-8 */
#define SESS_UA_MAX 512       /* User-Agent bytes kept for listing */
#define SESS_IP_MAX 45        /* longest textual IPv6 (INET6_ADDRSTRLEN-1) */
#define SESS_DATA_MAX (64u * 1024u) /* opaque per-session data */

typedef enum sess_bind_action {
    SESS_BIND_REJECT = 0,
    SESS_BIND_LOG = 1
} sess_bind_action;

/* What a rotated-away ID presented after its grace window does (RFC 9700
 * section 4.14.2, refresh token reuse): whoever rotated first may be the
 * thief, so by default the live successor is ended too. */
typedef enum sess_reuse_action {
    SESS_REUSE_REVOKE = 0,   /* end the session the old ID rotated into */
    SESS_REUSE_LOG = 1       /* only report it (the successor lives on) */
} sess_reuse_action;

/* Policy of a context.  Times are seconds. */
typedef struct sess_config {
    uint32_t idle_timeout;              /* 1800 */
    uint32_t absolute_timeout;          /* 86400 */
    uint32_t remember_idle_timeout;     /* 604800 (7 days) */
    uint32_t remember_absolute_timeout; /* 2592000 (30 days) */
    uint32_t rotate_interval;           /* 300; 0 = never */
    uint32_t rotation_grace;            /* 30 */
    uint32_t max_per_user;              /* 3; 0 = unlimited */
    sess_limit_policy limit_policy;     /* EVICT_OLDEST */
    uint8_t ip_prefix_v4;               /* 24; 0 = IP not bound */
    uint8_t ip_prefix_v6;               /* 64; 0 = IP not bound */
    bool bind_user_agent;               /* true */
    sess_bind_action bind_action;       /* REJECT */
    bool csrf_enabled;                  /* true */
    /* Opened records kept decrypted in memory (1 KiB each, out of core
     * dumps) so a validate of an unchanged record skips AES-GCM; every
     * use still starts from a fresh store read.  0 = off. */
    uint32_t record_cache_entries;      /* 65536 */
    /* An old ID replayed after rotation_grace: SESS_EVENT_REUSE_AFTER_GRACE
     * always; with REVOKE the session it rotated into is removed as well
     * (its detail then says "successor revoked" or "no live successor"). */
    sess_reuse_action reuse_action;     /* REVOKE */
} sess_config;

void sess_config_defaults(sess_config *cfg);

/* Check ranges and combinations; SESS_ECONFIG with a message naming the
 * field otherwise. */
SESS_NODISCARD int sess_config_check(const sess_config *cfg, sess_err *err);

typedef struct sess_ctx sess_ctx;

/* Clock in Unix seconds. */
typedef uint64_t (*sess_clock_fn)(void *user);

/* Security events (docs/security.md invariant 13).  Strings are valid only during the
 * call; they never contain IDs or tokens. */
typedef enum sess_event_type {
    SESS_EVENT_BINDING_MISMATCH,
    SESS_EVENT_REUSE_AFTER_GRACE,
    SESS_EVENT_CSRF_FAILURE,
    SESS_EVENT_LIMIT_EVICTION,
    SESS_EVENT_LIMIT_DENIED,
    SESS_EVENT_REVOKE,
    SESS_EVENT_CORRUPT_RECORD,
    /* A spent refresh token presented after its grace (docs/tokens.md):
     * the session is revoked; detail says what happened to it. */
    SESS_EVENT_TOKEN_REUSE
} sess_event_type;

typedef struct sess_event {
    sess_event_type type;
    uint64_t at;
    const char *handle;     /* may be NULL */
    const char *user_id;    /* may be NULL; not NUL-safe: see user_id_len */
    size_t user_id_len;
    const char *ip;         /* client address, may be NULL */
    const char *detail;     /* e.g. "ip" / "user_agent", may be NULL */
} sess_event;

const char *sess_event_name(sess_event_type t);

typedef void (*sess_event_fn)(void *user, const sess_event *ev);

/*
 * Create a context.  It takes ownership of "store" and "keys" (also on
 * failure).  "cfg" is copied.  Free with sess_ctx_free().
 */
SESS_NODISCARD int sess_ctx_new(const sess_config *cfg, sess_store *store,
                 sess_keyring *keys, sess_ctx **out, sess_err *err);
void sess_ctx_free(sess_ctx *ctx);

/* Not thread-safe against running calls: set these before serving. */
void sess_ctx_set_clock(sess_ctx *ctx, sess_clock_fn fn, void *user);
void sess_ctx_set_event_handler(sess_ctx *ctx, sess_event_fn fn, void *user);

/* Current time by the context's clock. */
uint64_t sess_ctx_now(const sess_ctx *ctx);

const sess_config *sess_ctx_config(const sess_ctx *ctx);

/* Swap in a new keyring (ownership taken, also on failure).  Sessions
 * sealed under keys that "keys" no longer has become unreadable, so the
 * call refuses a keyring that drops a key id still in use by the current
 * one unless "allow_drop".  Thread-safe. */
SESS_NODISCARD int sess_ctx_reload_keys(sess_ctx *ctx, sess_keyring *keys, bool allow_drop,
                         sess_err *err);

/*
 * Client addresses: the one parser and prefix rule for the library's
 * binding and the daemon's trusted-proxy blocks.  IPv4-mapped IPv6
 * (::ffff:a.b.c.d, what a dual-stack socket reports) is IPv4, so one
 * client is one address whatever socket family a proxy used.
 */
typedef struct sess_ip {
    uint8_t family;           /* 4 or 6 */
    uint8_t addr[16];         /* network order; IPv4 in the first 4 bytes */
} sess_ip;

/* Parse a textual IPv4 or IPv6 address (no port, no brackets, at most
 * SESS_IP_MAX bytes).  SESS_OK or SESS_EINVAL. */
SESS_NODISCARD int sess_ip_parse(const char *text, sess_ip *out);

/* Parse "ADDR" or "ADDR/BITS" ("len" bytes) into "net" with the host bits
 * cleared and "*bits" the prefix (32 or 128 for a bare address).
 * SESS_OK or SESS_EINVAL. */
SESS_NODISCARD int sess_cidr_parse(const char *text, size_t len, sess_ip *net, unsigned *bits);

/* True when "a" and "b" are of one family and share their first "bits"
 * bits ("bits" above the family's width counts as the whole address). */
bool sess_ip_prefix_match(const sess_ip *a, const sess_ip *b, unsigned bits);

/* The client as the application or proxy saw it. */
typedef struct sess_client {
    const char *ip;           /* textual IPv4 or IPv6; required */
    const char *user_agent;   /* NUL-terminated, may be NULL */
} sess_client;

/* A newly issued ID with its companions.  Secret: sess_wipe() it. */
typedef struct sess_issued {
    char id[SESS_ID_LEN + 1];
    char handle[SESS_HANDLE_LEN + 1];
    char csrf_token[SESS_CSRF_LEN + 1];
    uint64_t expires_at;       /* absolute deadline */
    uint64_t idle_expires_at;  /* idle deadline */
    bool remember;
} sess_issued;

/*
 * The Set-Cookie value that hands "is" to the browser under profile "p":
 * remember-me sessions get Max-Age = their remaining absolute lifetime by
 * the clock of "ctx" (0 once past), others the profile's max_age (-1: a
 * browser-session cookie).  The one place that rule lives, for every
 * caller that sets a session cookie.  Returns the length written, or a
 * negative error when "cap" is too small.  Implemented in lib/cookie.c.
 */
struct sess_cookie_profile;
SESS_NODISCARD int sess_issued_cookie(const sess_ctx *ctx, const struct sess_cookie_profile *p,
                       const sess_issued *is, char *buf, size_t cap);

typedef struct sess_create_req {
    const char *user_id;       /* 1..SESS_USER_ID_MAX bytes, valid UTF-8 */
    size_t user_id_len;
    sess_client client;
    const char *data;          /* opaque bytes (the daemon: JSON text) */
    size_t data_len;           /* <= SESS_DATA_MAX */
    bool remember;
    bool elevated;
} sess_create_req;

typedef struct sess_evicted {
    size_t n;
    char handle[SESS_EVICT_MAX][SESS_HANDLE_LEN + 1];
} sess_evicted;

/*
 * Create a session with a fresh ID (never one the caller chose: fixation).
 * Enforces the per-user limit atomically.  Returns SESS_OK, SESS_LIMIT
 * (policy deny; positive: test rc == SESS_OK, never rc < 0), SESS_EINVAL (bad user id, IP or data), or a store error.
 * "evicted" may be NULL.
 */
SESS_NODISCARD int sess_create(sess_ctx *ctx, const sess_create_req *req, sess_issued *out,
                sess_evicted *evicted, sess_err *err);

typedef enum sess_reason {
    SESS_REASON_NONE = 0,
    SESS_REASON_UNKNOWN,
    SESS_REASON_EXPIRED_IDLE,
    SESS_REASON_EXPIRED_ABSOLUTE,
    SESS_REASON_BINDING_MISMATCH,
    SESS_REASON_REVOKED
} sess_reason;

/* "unknown", "expired_idle", ... as in the HTTP API; "" for NONE. */
const char *sess_reason_name(sess_reason r);

/* Flags for sess_validate. */
#define SESS_VALIDATE_WANT_DATA 0x1u   /* copy the data into the view */
#define SESS_VALIDATE_NO_ROTATE 0x2u   /* never rotate on this call */
#define SESS_VALIDATE_NO_TOUCH  0x4u   /* do not move the idle deadline */

/* What a validation learnt.  Secret parts: csrf_token, successor. */
typedef struct sess_view {
    sess_reason reason;                 /* NONE when valid */
    char user_id[SESS_USER_ID_MAX + 1]; /* NUL-terminated copy */
    size_t user_id_len;
    char handle[SESS_HANDLE_LEN + 1];
    char csrf_token[SESS_CSRF_LEN + 1];
    char prev_csrf_token[SESS_CSRF_LEN + 1]; /* "" unless still accepted */
    bool elevated;
    bool remember;
    uint64_t created_at;
    uint64_t expires_at;
    uint64_t idle_expires_at;
    uint64_t last_seen_at;
    uint64_t data_version;
    char *data;          /* with WANT_DATA: malloc'd copy, NUL-terminated */
    size_t data_len;
    bool rotated;        /* the ID was rotated: give the client successor */
    sess_issued successor;
} sess_view;

/*
 * Validate a session ID for a client.  Checks, in order: format, absolute
 * timeout, idle timeout, revoked, binding; then touches (coalesced) and
 * may rotate.  Returns SESS_OK (view filled), SESS_REJECTED (a POSITIVE
 * code: view->reason and err->msg say why; "rc < 0" would let a rejected
 * session through, test rc == SESS_OK), or a store/crypto error (the caller must not clear the cookie
 * on an error: the session may well be alive).  Free with sess_view_clear.
 */
SESS_NODISCARD int sess_validate(sess_ctx *ctx, const char *id, size_t id_len,
                  const sess_client *client, unsigned flags, sess_view *view,
                  sess_err *err);

/* Free the data of "view" and wipe its secrets. */
void sess_view_clear(sess_view *view);

/*
 * Replace the ID of a valid session by a new one at once (login, privilege
 * change): the old ID is dead immediately, with no grace (fixation).
 * "elevated" is -1 to keep, 0 or 1 to set.  Checks binding like validate.
 * Returns SESS_OK, SESS_REJECTED (positive: *reason and err->msg say
 * why; test rc == SESS_OK, never rc < 0), or an error.
 */
SESS_NODISCARD int sess_regenerate(sess_ctx *ctx, const char *id, size_t id_len,
                    const sess_client *client, int elevated,
                    sess_issued *out, sess_reason *reason, sess_err *err);

/*
 * Replace the session's data.  With "expect_version" >= 0, succeed only if
 * the stored version equals it (else SESS_CONFLICT).  The new version goes
 * to "*new_version".  SESS_REJECTED (positive; *reason) for a dead
 * session: test rc == SESS_OK, never rc < 0.
 */
SESS_NODISCARD int sess_set_data(sess_ctx *ctx, const char *id, size_t id_len,
                  const char *data, size_t data_len, int64_t expect_version,
                  uint64_t *new_version, sess_reason *reason, sess_err *err);

/* Destroy the session (logout).  SESS_OK or SESS_NOTFOUND. */
SESS_NODISCARD int sess_destroy(sess_ctx *ctx, const char *id, size_t id_len, sess_err *err);

/*
 * Check a CSRF token for a session in constant time.  The token of the
 * previous ID is accepted during the rotation grace window (a form
 * rendered just before a rotation).  SESS_OK, SESS_CSRF, SESS_REJECTED
 * (both positive: test rc == SESS_OK, never rc < 0), or an error.
 */
SESS_NODISCARD int sess_csrf_verify(sess_ctx *ctx, const char *id, size_t id_len,
                     const char *token, size_t token_len, sess_reason *reason,
                     sess_err *err);

/*
 * Check "token" against a view returned by sess_validate, in constant time.
 * Returns true when it matches.  Does not emit an event.
 */
SESS_NODISCARD bool sess_csrf_matches(const sess_view *view, const char *token,
                       size_t token_len);

/* One session as an admin sees it: never the ID. */
typedef struct sess_summary {
    char handle[SESS_HANDLE_LEN + 1];
    uint64_t created_at;
    uint64_t last_seen_at;
    uint64_t expires_at;
    char ip[SESS_IP_MAX + 1];
    char user_agent[SESS_UA_MAX + 1];
    bool elevated;
    bool remember;
} sess_summary;

/* List a user's live sessions, oldest first.  "*out" is malloc'd; the
 * caller frees it with free().  "*n" may be 0 (and *out NULL). */
SESS_NODISCARD int sess_list_user(sess_ctx *ctx, const char *user_id, size_t user_id_len,
                   sess_summary **out, size_t *n, sess_err *err);

/* Revoke one session by handle (22 chars).  SESS_OK or SESS_NOTFOUND. */
SESS_NODISCARD int sess_revoke_handle(sess_ctx *ctx, const char *handle, size_t handle_len,
                       sess_err *err);

/* Revoke all of a user's sessions except "except_handle" (may be NULL). */
SESS_NODISCARD int sess_revoke_user(sess_ctx *ctx, const char *user_id, size_t user_id_len,
                     const char *except_handle, size_t *revoked,
                     sess_err *err);

/* Delete up to "max" expired records; "removed" may be NULL. */
SESS_NODISCARD int sess_purge_expired(sess_ctx *ctx, size_t max, size_t *removed,
                       sess_err *err);

/* SESS_OK when the store answers. */
SESS_NODISCARD int sess_ping(sess_ctx *ctx, sess_err *err);

/* ---- refresh tokens (docs/tokens.md) --------------------------------------
 *
 * A refresh token is "rt1.<handle>.<43 characters: base64url of 32 random
 * bytes>".  The handle is not secret (it is the access token's "sid"); the
 * secret is stored only as SHA-256("sess refresh token", secret) in the
 * session's record, so the token is found through the store's handle
 * index and dies with its session on every node: destroy, revoke and
 * regenerate (a new handle) end it at once.  One refresh token lives per
 * session: issuing another replaces it.  Each refresh spends the token and
 * issues a successor; the spent one is answered with that same successor
 * (and the same access token claims) for "refresh_grace" seconds, so tabs
 * refreshing at once all get one pair; after that, its use is theft
 * (RFC 9700 section 4.14.2): the session is revoked and
 * SESS_EVENT_TOKEN_REUSE reported.  Concurrent refreshes are serialised by
 * the store's compare-and-swap. */

#define SESS_REFRESH_TOKEN_LEN (4 + SESS_HANDLE_LEN + 1 + 43)
#define SESS_TOKEN_AUD_MAX 1024   /* bytes of the "aud" claim's JSON text */
#define SESS_JTI_LEN 22           /* 128 bits, base64url */

typedef struct sess_token_policy {
    uint32_t access_ttl;     /* access token lifetime, seconds */
    uint32_t refresh_ttl;    /* refresh token lifetime (capped by the
                                session's absolute deadline) */
    uint32_t refresh_grace;  /* a spent token returns its successor */
} sess_token_policy;

/* What the access token issued with a refresh token carries.  Secret
 * part: refresh_token; sess_wipe() it. */
typedef struct sess_token_grant {
    char refresh_token[SESS_REFRESH_TOKEN_LEN + 1];  /* "" when none */
    char jti[SESS_JTI_LEN + 1];
    uint64_t iat, exp;                 /* exp never past the session's */
    uint64_t refresh_expires_at;
    char audience[SESS_TOKEN_AUD_MAX + 1];  /* JSON text, as issued */
    size_t audience_len;
    bool replay;                       /* the spent token's successor again */
} sess_token_grant;

/*
 * Validate "id" exactly as sess_validate (timeouts, binding, rotation;
 * "view" as there, always with data) and issue a fresh refresh token and
 * the claims of an access token for "aud" (JSON text of a string or an
 * array of strings, at most SESS_TOKEN_AUD_MAX bytes).  SESS_OK,
 * SESS_REJECTED (view->reason), or an error.
 */
SESS_NODISCARD int sess_token_issue(sess_ctx *ctx, const char *id, size_t id_len,
                     const sess_client *client, const char *aud, size_t aud_len,
                     const sess_token_policy *pol, sess_view *view,
                     sess_token_grant *out, sess_err *err);

/*
 * Spend refresh token "rt": SESS_OK with the successor in "out" (and the
 * session in "view", data included), SESS_REJECTED for a token that is
 * malformed, unknown, expired, replaced, or whose session is gone
 * (view->reason; reuse after the grace revokes the session), or an error.
 * "client" NULL skips the binding check.
 */
SESS_NODISCARD int sess_token_refresh(sess_ctx *ctx, const char *rt, size_t rt_len,
                       const sess_client *client, const sess_token_policy *pol,
                       sess_view *view, sess_token_grant *out, sess_err *err);

/*
 * The live session with handle "handle" (an access token's "sid"), with
 * its data, without touching it.  With "rt" not NULL the session must
 * also hold that refresh token, current and unexpired ("out" then gets
 * its expiry; out may be NULL).  SESS_OK, SESS_REJECTED, or an error.
 */
SESS_NODISCARD int sess_token_session(sess_ctx *ctx, const char *handle, size_t handle_len,
                       const char *rt, size_t rt_len, sess_view *view,
                       sess_token_grant *out, sess_err *err);

/*
 * Revoke refresh token "rt" (RFC 7009): with "end_session" the whole
 * session ends, else only the token.  SESS_OK, SESS_NOTFOUND (no such
 * live token: RFC 7009 answers both alike), or an error.
 */
SESS_NODISCARD int sess_token_revoke(sess_ctx *ctx, const char *rt, size_t rt_len,
                      bool end_session, sess_err *err);

/* Report an event found outside the library (say a forward-auth request
 * refused for a cross-site Origin): it is counted and handed to the event
 * handler like the library's own.  CSRF failures count in csrf_failures. */
void sess_emit_event(sess_ctx *ctx, const sess_event *ev);

/* Counters since the context was made (monotonic, relaxed atomics). */
typedef struct sess_stats {
    uint64_t created;
    uint64_t validate_ok;
    uint64_t validate_unknown;
    uint64_t validate_expired_idle;
    uint64_t validate_expired_absolute;
    uint64_t validate_binding_mismatch;
    uint64_t validate_revoked;
    uint64_t validate_error;
    uint64_t rotations;
    uint64_t regenerations;
    uint64_t destroyed;
    uint64_t evictions;
    uint64_t limit_denied;
    uint64_t binding_mismatches;   /* including action=log */
    uint64_t csrf_failures;
    uint64_t touches_written;
    uint64_t reuse_after_grace;
    uint64_t stored_records;       /* live sessions in the store now */
    uint64_t record_cache_hits;    /* validations that skipped AES-GCM */
    uint64_t record_cache_misses;  /* ... and those that opened the record */
    uint64_t record_cache_used;    /* records in the cache now */
    uint64_t record_cache_slots;   /* its capacity */
    /* Rotations the store refused to write (full disk or map, I/O error,
     * Redis down): the session was served unrotated and rotates on a later
     * request.  "last_deferral" is the result code of the last one (0 when
     * none), for the log. */
    uint64_t rotations_deferred;
    int last_deferral;
} sess_stats;

SESS_NODISCARD int sess_get_stats(sess_ctx *ctx, sess_stats *out, sess_err *err);

/* The store's own counters (L1 cache, timeouts, breaker, latency), read
 * without a server round trip.  SESS_OK, or SESS_NOTFOUND when the store
 * keeps none (memory, LMDB). */
SESS_NODISCARD int sess_get_store_stats(sess_ctx *ctx, sess_store_stats *out);

/* Wipe "len" bytes at "p" so the compiler cannot elide it. */
void sess_wipe(void *p, size_t len);

/* ---- struct sizes (the ABI promise) --------------------------------------
 *
 * Members of the caller-allocated structs sess_config, sess_create_req,
 * sess_issued, sess_view, sess_stats and sess_store_stats (and
 * sess_store_options in store.h) are only ever appended.  The entry points
 * that take one are macros passing sizeof the struct as the caller's header
 * declares it to a *_sized function, so a program built against an older,
 * shorter struct keeps working with a newer library and the other way
 * round, without changing a line of its source:
 *   - input structs (sess_config, sess_create_req): the library reads only
 *     the caller's bytes; members beyond them take their defaults;
 *   - output structs (sess_issued, sess_view, sess_stats, sess_store_stats):
 *     the library writes only the caller's bytes, and zeroes members it
 *     does not know in a longer struct.
 * sess_issued is the last member of sess_view, so members appended to
 * sess_issued extend successor and members appended to sess_view follow it.
 * The plain symbols (sess_validate, ...) stay exported for programs linked
 * before the macros existed: they assume the structs of this header.  A
 * *_sized call with a view too short to hold "data" and WANT_DATA, or a
 * NULL struct, returns SESS_EINVAL. */
void sess_config_defaults_sized(sess_config *cfg, size_t cfg_size);
SESS_NODISCARD int sess_config_check_sized(const sess_config *cfg,
                                           size_t cfg_size, sess_err *err);
SESS_NODISCARD int sess_ctx_new_sized(const sess_config *cfg, size_t cfg_size,
                                      sess_store *store, sess_keyring *keys,
                                      sess_ctx **out, sess_err *err);
SESS_NODISCARD int sess_create_sized(sess_ctx *ctx, const sess_create_req *req,
                                     size_t req_size, sess_issued *out,
                                     size_t out_size, sess_evicted *evicted,
                                     sess_err *err);
SESS_NODISCARD int sess_validate_sized(sess_ctx *ctx, const char *id,
                                       size_t id_len, const sess_client *client,
                                       unsigned flags, sess_view *view,
                                       size_t view_size, sess_err *err);
void sess_view_clear_sized(sess_view *view, size_t view_size);
SESS_NODISCARD int sess_regenerate_sized(sess_ctx *ctx, const char *id,
                                         size_t id_len,
                                         const sess_client *client,
                                         int elevated, sess_issued *out,
                                         size_t out_size, sess_reason *reason,
                                         sess_err *err);
SESS_NODISCARD int sess_get_stats_sized(sess_ctx *ctx, sess_stats *out,
                                        size_t out_size, sess_err *err);
SESS_NODISCARD int sess_get_store_stats_sized(sess_ctx *ctx,
                                              sess_store_stats *out,
                                              size_t out_size);

/* The same for calls without such a struct: the *_checked functions only
 * settle the error detail (every result but SESS_OK sets err). */
SESS_NODISCARD int sess_ctx_reload_keys_checked(sess_ctx *ctx,
                                                sess_keyring *keys,
                                                bool allow_drop, sess_err *err);
SESS_NODISCARD int sess_set_data_checked(sess_ctx *ctx, const char *id,
                                         size_t id_len, const char *data,
                                         size_t data_len,
                                         int64_t expect_version,
                                         uint64_t *new_version,
                                         sess_reason *reason, sess_err *err);
SESS_NODISCARD int sess_destroy_checked(sess_ctx *ctx, const char *id,
                                        size_t id_len, sess_err *err);
SESS_NODISCARD int sess_csrf_verify_checked(sess_ctx *ctx, const char *id,
                                            size_t id_len, const char *token,
                                            size_t token_len,
                                            sess_reason *reason,
                                            sess_err *err);
SESS_NODISCARD int sess_list_user_checked(sess_ctx *ctx, const char *user_id,
                                          size_t user_id_len,
                                          sess_summary **out, size_t *n,
                                          sess_err *err);
SESS_NODISCARD int sess_revoke_handle_checked(sess_ctx *ctx,
                                              const char *handle,
                                              size_t handle_len,
                                              sess_err *err);
SESS_NODISCARD int sess_revoke_user_checked(sess_ctx *ctx,
                                            const char *user_id,
                                            size_t user_id_len,
                                            const char *except_handle,
                                            size_t *revoked, sess_err *err);
SESS_NODISCARD int sess_purge_expired_checked(sess_ctx *ctx, size_t max,
                                              size_t *removed, sess_err *err);
SESS_NODISCARD int sess_ping_checked(sess_ctx *ctx, sess_err *err);

#ifndef SESS_BUILDING_LIBRARY
#define sess_ctx_reload_keys(ctx, keys, allow_drop, err) \
    sess_ctx_reload_keys_checked((ctx), (keys), (allow_drop), (err))
#define sess_set_data(ctx, id, id_len, data, data_len, expect, ver, reason, err) \
    sess_set_data_checked((ctx), (id), (id_len), (data), (data_len),       \
                          (expect), (ver), (reason), (err))
#define sess_destroy(ctx, id, id_len, err) \
    sess_destroy_checked((ctx), (id), (id_len), (err))
#define sess_csrf_verify(ctx, id, id_len, token, token_len, reason, err)   \
    sess_csrf_verify_checked((ctx), (id), (id_len), (token), (token_len),  \
                             (reason), (err))
#define sess_list_user(ctx, user_id, user_id_len, out, n, err)             \
    sess_list_user_checked((ctx), (user_id), (user_id_len), (out), (n), (err))
#define sess_revoke_handle(ctx, handle, handle_len, err) \
    sess_revoke_handle_checked((ctx), (handle), (handle_len), (err))
#define sess_revoke_user(ctx, user_id, user_id_len, except, revoked, err)  \
    sess_revoke_user_checked((ctx), (user_id), (user_id_len), (except),    \
                             (revoked), (err))
#define sess_purge_expired(ctx, max, removed, err) \
    sess_purge_expired_checked((ctx), (max), (removed), (err))
#define sess_ping(ctx, err) sess_ping_checked((ctx), (err))
#define sess_config_defaults(cfg) \
    sess_config_defaults_sized((cfg), sizeof(sess_config))
#define sess_config_check(cfg, err) \
    sess_config_check_sized((cfg), sizeof(sess_config), (err))
#define sess_ctx_new(cfg, store, keys, out, err) \
    sess_ctx_new_sized((cfg), sizeof(sess_config), (store), (keys), (out), (err))
#define sess_create(ctx, req, out, evicted, err)                            \
    sess_create_sized((ctx), (req), sizeof(sess_create_req), (out),         \
                      sizeof(sess_issued), (evicted), (err))
#define sess_validate(ctx, id, id_len, client, flags, view, err)            \
    sess_validate_sized((ctx), (id), (id_len), (client), (flags), (view),   \
                        sizeof(sess_view), (err))
#define sess_view_clear(view) sess_view_clear_sized((view), sizeof(sess_view))
#define sess_regenerate(ctx, id, id_len, client, elevated, out, reason, err) \
    sess_regenerate_sized((ctx), (id), (id_len), (client), (elevated),     \
                          (out), sizeof(sess_issued), (reason), (err))
#define sess_get_stats(ctx, out, err) \
    sess_get_stats_sized((ctx), (out), sizeof(sess_stats), (err))
#define sess_get_store_stats(ctx, out) \
    sess_get_store_stats_sized((ctx), (out), sizeof(sess_store_stats))
#endif

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_SESSION_H */
