/*
 * util.h - small internal helpers shared by libsess modules: error
 * detail, random bytes, SHA-256, base64url, wiping, checked integers.
 *
 * Nothing here is public API (sess__ prefix, hidden visibility).
 */
#ifndef SESS_UTIL_H
#define SESS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sess/error.h"

/* Set "err" (may be NULL) to "code" with a printf-style message and return
 * "code", so callers can write: return sess__fail(err, SESS_EIO, "...").
 * Messages must never contain IDs, tokens or keys. */
int sess__fail(sess_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill "buf" with "len" bytes from the kernel CSPRNG (getrandom(2)),
 * retrying on EINTR and short reads.  SESS_OK or SESS_ERANDOM. */
int sess__random(void *buf, size_t len);

/* SHA-256 of "len" bytes at "data" into "out" (32 bytes). */
void sess__sha256(const void *data, size_t len, uint8_t out[32]);

/* SHA-256 of a domain-separation label followed by data.  Used to derive
 * unrelated values from one input (user index key, handle). */
void sess__sha256_labeled(const char *label, const void *data, size_t len,
                          uint8_t out[32]);

/* base64url without padding (RFC 4648 section 5).  Encoded length of "n"
 * bytes: (4n + 2) / 3.  "out" gets that many characters plus a NUL. */
#define SESS_B64URL_LEN(n) (((n) * 4 + 2) / 3)
void sess__b64url_encode(const uint8_t *in, size_t n, char *out);

/* Strict decode: exactly SESS_B64URL_LEN(n) characters of the alphabet,
 * with the unused low bits of the last character zero (so each byte string
 * has one encoding).  SESS_OK or SESS_EINVAL. */
int sess__b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t n);

/* The same checks as sess__b64url_decode without producing the bytes:
 * length, alphabet, zero leftover bits.  SESS_OK or SESS_EINVAL. */
int sess__b64url_check(const char *in, size_t in_len, size_t n);

/* Constant-time equality of two buffers of the same length. */
bool sess__ct_equal(const void *a, const void *b, size_t len);

/* Zero memory so the compiler cannot elide it (explicit_bzero). */
void sess__wipe(void *p, size_t len);

/* A number of the calling thread, fixed for its life: 0 for the first
 * thread that asks, then 1, 2, ...  Per-thread counters take it modulo
 * their shard count, so threads do not share a counter's cache line. */
extern _Thread_local int sess__tl_thread_index;
unsigned sess__thread_index_assign(void);

static inline unsigned sess__thread_index(void)
{
    return sess__tl_thread_index >= 0 ? (unsigned)sess__tl_thread_index
                                      : sess__thread_index_assign();
}

/* True when "s" ("len" bytes) is well-formed UTF-8 without NUL bytes, no
 * overlong forms and no surrogates (RFC 3629 section 4). */
bool sess__utf8_valid(const char *s, size_t len);

/* mkdir -p: create "path" and any missing parents with "mode".  Returns 0
 * or -1 with errno set (EEXIST is not an error). */
int sess__mkdir_p(const char *path, unsigned mode);

/* True when "a" and "b" share their first "bits" bits (the prefix rule of
 * sess_ip_prefix_match, for callers holding raw address bytes). */
bool sess__prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits);

/* Fixed-width integers in byte strings.  memcpy plus a byte swap where
 * the host order differs: compilers turn each into one load or store
 * (record decoding and LMDB key comparison are on the validate path). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SESS__LE64(v) __builtin_bswap64(v)
#define SESS__LE32(v) __builtin_bswap32(v)
#define SESS__BE64(v) (v)
#else
#define SESS__LE64(v) (v)
#define SESS__LE32(v) (v)
#define SESS__BE64(v) __builtin_bswap64(v)
#endif

/* Little-endian, for record encoding. */
static inline void sess__put_u64(uint8_t *p, uint64_t v)
{
    const uint64_t le = SESS__LE64(v);
    memcpy(p, &le, 8);
}

static inline uint64_t sess__get_u64(const uint8_t *p)
{
    uint64_t le;
    memcpy(&le, p, 8);
    return SESS__LE64(le);
}

/* Big-endian, for keys that must sort by value (LMDB expiry index) and
 * for headers read from Lua (Redis). */
static inline void sess__put_be64(uint8_t *p, uint64_t v)
{
    const uint64_t be = SESS__BE64(v);
    memcpy(p, &be, 8);
}

static inline uint64_t sess__get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return SESS__BE64(v);
}

static inline void sess__put_u32(uint8_t *p, uint32_t v)
{
    const uint32_t le = SESS__LE32(v);
    memcpy(p, &le, 4);
}

static inline uint32_t sess__get_u32(const uint8_t *p)
{
    uint32_t le;
    memcpy(&le, p, 4);
    return SESS__LE32(le);
}

/* ---- allocation: one place ----------------------------------------------
 *
 * Every malloc, calloc, realloc and free in lib/ goes through these
 * (the macros below redirect the names in every library file, all of
 * which include this header), so tests can fail the Nth allocation and
 * drive each out-of-memory path (tests/unit/lib/test_faults.c).  They
 * always use the C library's allocator: memory the library hands out
 * (sess_view.data, sess_list_user's array) is freed with free() by the
 * caller, and strdup'd memory is freed here.  Allocations inside OpenSSL,
 * LMDB and hiredis are theirs and are not counted. */
#include <stdlib.h>

void *sess__malloc(size_t n);
void *sess__calloc(size_t n, size_t m);
void *sess__realloc(void *p, size_t n);
void sess__free(void *p);

/* Test hook: fail the "n"th allocation from now (1 = the next), and every
 * one after it when "sticky"; 0 switches it off.  Process-wide, atomic. */
void sess__alloc_fail_nth(uint64_t n, bool sticky);
/* Allocations made since the last sess__alloc_fail_nth, and how many of
 * them were failed on purpose. */
uint64_t sess__alloc_count(void);
uint64_t sess__alloc_failed(void);

#ifndef SESS__ALLOC_IMPL
#define malloc(n) sess__malloc(n)
#define calloc(n, m) sess__calloc((n), (m))
#define realloc(p, n) sess__realloc((p), (n))
#define free(p) sess__free(p)
#endif

#endif /* SESS_UTIL_H */
