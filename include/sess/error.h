/*
 * sess/error.h - result codes and error detail of libsess.
 *
 * Every fallible function returns an int: SESS_OK (0) on success, a
 * negative code on error, and small positive codes for normal outcomes
 * that are not errors (like LMDB's MDB_NOTFOUND or nginx's NGX_DECLINED).
 * The table below is the single source of the enum and of sess_strerror().
 *
 * Detail goes into a caller-owned sess_err (hiredis style: code + text),
 * never into a global.  Messages never contain session IDs, tokens or keys.
 */
#ifndef SESS_ERROR_H
#define SESS_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* X(NAME, value, description) */
#define SESS_RESULT_TABLE(X)                                                 \
    X(OK, 0, "success")                                                      \
    /* normal outcomes, not errors */                                        \
    X(NOTFOUND, 1, "not found")                                              \
    X(REJECTED, 2, "session rejected (see reason)")                          \
    X(CONFLICT, 3, "version or record changed concurrently")                 \
    X(LIMIT, 4, "per-user session limit reached")                            \
    X(EXISTS, 5, "already exists")                                           \
    X(CSRF, 6, "CSRF token missing or wrong")                                \
    /* errors */                                                             \
    X(EINVAL, -1, "invalid argument")                                        \
    X(ENOMEM, -2, "out of memory")                                           \
    X(EIO, -3, "store I/O error")                                            \
    X(EUNAVAILABLE, -4, "store unavailable")                                 \
    X(ECRYPTO, -5, "cryptographic library failure")                          \
    X(ECORRUPT, -6, "record corrupt or not authentic")                       \
    X(ENOKEY, -7, "no key with that key id")                                 \
    X(ECONFIG, -8, "invalid configuration")                                  \
    X(ETOOBIG, -9, "value too large")                                        \
    X(ERANDOM, -10, "kernel random source failed")                           \
    X(EFULL, -11, "store is full")                                           \
    X(EINTERNAL, -12, "internal error")

typedef enum sess_result {
#define SESS__ENUM(name, value, text) SESS_##name = value,
    SESS_RESULT_TABLE(SESS__ENUM)
#undef SESS__ENUM
} sess_result;

/* Fallible functions carry SESS_NODISCARD (warn_unused_result): a result
 * dropped on the floor is a bug.  Note that GCC does not accept a (void)
 * cast as "deliberately ignored"; test the result instead.
 *
 * The trap of positive codes.  SESS_REJECTED, SESS_NOTFOUND, SESS_LIMIT,
 * SESS_CONFLICT, SESS_EXISTS and SESS_CSRF are positive, so a caller that
 * tests "rc < 0" treats a rejected session as valid.  Test "rc == SESS_OK"
 * (or "rc != SESS_OK") for success, never the sign; SESS_IS_ERROR() names
 * the negative codes, SESS_FAILED() every result that is not success. */
#if defined(__GNUC__) || defined(__clang__)
#define SESS_NODISCARD __attribute__((warn_unused_result))
#else
#define SESS_NODISCARD
#endif
#define SESS_FAILED(rc) ((rc) != SESS_OK)
#define SESS_IS_ERROR(rc) ((rc) < 0)

/* Maximum length of an error message, including the terminating NUL. */
#define SESS_ERRSTR_MAX 128

/* Error detail filled by fallible calls.  Callers may pass NULL.  Every
 * public call that takes a sess_err sets it on every result other than
 * SESS_OK, the normal outcomes included: "code" is the value returned and
 * "msg" is non-empty (for SESS_REJECTED it names the reason, e.g.
 * "session rejected: expired_idle").  On SESS_OK it is left alone. */
typedef struct sess_err {
    int code;                   /* same value the function returned */
    char msg[SESS_ERRSTR_MAX];  /* human-readable, never contains secrets */
} sess_err;

/* Static description of a result code; never NULL. */
const char *sess_strerror(int code);

/* Symbolic name of a result code ("NOTFOUND", "EIO", ...); never NULL. */
const char *sess_result_name(int code);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_ERROR_H */
