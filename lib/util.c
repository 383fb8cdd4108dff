/*
 * util.c - random bytes from the kernel, SHA-256, base64url, constant-time
 * comparison, wiping and UTF-8 validation for the rest of libsess.
 *
 * Randomness comes only from getrandom(2) (docs/security.md invariant 1); it blocks
 * until the kernel pool is initialised and never falls back to anything
 * weaker.  Hashing and comparison use OpenSSL, never home-made code.
 */
/* The allocation wrappers below call the C library itself. */
#define SESS__ALLOC_IMPL

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "sess/session.h"
#include "util.h"

static int getrandom_all(uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t got = getrandom(p, len, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return SESS_ERANDOM;
        }
        p += got;
        len -= (size_t)got;
    }
    return SESS_OK;
}

/*
 * Random bytes come from getrandom(2), drawn a page at a time per thread:
 * each call is a syscall plus a ChaCha20 state set-up in the kernel, and a
 * create draws three times (ID, CSRF token, nonce).  The pool is a page of
 * its own, marked MADV_WIPEONFORK (a child process finds it zeroed, "armed"
 * included, and refills: it never replays its parent's bytes) and
 * MADV_DONTDUMP; every byte handed out is wiped from it.  Where the kernel
 * lacks MADV_WIPEONFORK (before 4.14) every call goes to getrandom.
 */
#define RANDOM_PAGE 4096u
#define RANDOM_DIRECT_MIN 256u    /* larger draws skip the pool */

typedef struct random_pool {
    uint32_t armed;               /* 1 while bytes[used..] are fresh */
    uint32_t used;
    uint8_t bytes[RANDOM_PAGE - 8];
} random_pool;

_Static_assert(sizeof(random_pool) == RANDOM_PAGE, "one page");

static _Thread_local random_pool *tl_random;
static _Thread_local bool tl_random_off;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;
static pthread_key_t random_key;

static void random_pool_free(void *p)
{
    explicit_bzero(p, RANDOM_PAGE);
    munmap(p, RANDOM_PAGE);
    tl_random = NULL;             /* runs on the exiting thread */
}

static void random_init(void)
{
    pthread_key_create(&random_key, random_pool_free);
}

static random_pool *random_pool_get(void)
{
    void *p;
    if (tl_random || tl_random_off)
        return tl_random;
    pthread_once(&random_once, random_init);
    p = mmap(NULL, RANDOM_PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        tl_random_off = true;
        return NULL;
    }
    if (madvise(p, RANDOM_PAGE, MADV_WIPEONFORK) != 0 ||
        pthread_setspecific(random_key, p) != 0) {
        munmap(p, RANDOM_PAGE);
        tl_random_off = true;     /* no fork safety: no pool */
        return NULL;
    }
    (void)madvise(p, RANDOM_PAGE, MADV_DONTDUMP);
    tl_random = p;
    return tl_random;
}

int sess__random(void *buf, size_t len)
{
    random_pool *rp = len < RANDOM_DIRECT_MIN ? random_pool_get() : NULL;
    if (!rp)
        return getrandom_all(buf, len);
    if (!rp->armed || len > sizeof rp->bytes - rp->used) {
        rp->armed = 0;
        if (getrandom_all(rp->bytes, sizeof rp->bytes) != SESS_OK)
            return SESS_ERANDOM;
        rp->used = 0;
        rp->armed = 1;
    }
    memcpy(buf, rp->bytes + rp->used, len);
    explicit_bzero(rp->bytes + rp->used, len);
    rp->used += (uint32_t)len;
    return SESS_OK;
}

/* SHA-256 through EVP with the algorithm fetched once and one digest
 * context per thread: EVP_Q_digest (behind SHA256()) fetches the algorithm
 * on every call, which costs more than hashing a session ID. */
static pthread_once_t digest_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static pthread_key_t digest_key;

static void digest_ctx_free(void *p)
{
    EVP_MD_CTX_free(p);
}

static void digest_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md || pthread_key_create(&digest_key, digest_ctx_free) != 0)
        abort();
}

static EVP_MD_CTX *thread_digest_ctx(void)
{
    pthread_once(&digest_once, digest_init);
    EVP_MD_CTX *c = pthread_getspecific(digest_key);
    if (!c) {
        c = EVP_MD_CTX_new();
        if (!c || pthread_setspecific(digest_key, c) != 0)
            abort();
    }
    return c;
}

/* Hash "label" (with its NUL, when not NULL) then "data".  EVP calls fail
 * only on allocation: abort rather than return a predictable digest. */
static void sha256_two(const char *label, const void *data, size_t len,
                       uint8_t out[32])
{
    EVP_MD_CTX *c = thread_digest_ctx();
    unsigned int olen = 32;
    if (!EVP_DigestInit_ex2(c, sha256_md, NULL) ||
        (label && !EVP_DigestUpdate(c, label, strlen(label) + 1)) ||
        !EVP_DigestUpdate(c, data, len) || !EVP_DigestFinal_ex(c, out, &olen))
        abort();
}

void sess__sha256(const void *data, size_t len, uint8_t out[32])
{
    sha256_two(NULL, data, len, out);
}

/* The label's NUL terminator is hashed too, so "ab"+"c" != "a"+"bc". */
void sess__sha256_labeled(const char *label, const void *data, size_t len,
                          uint8_t out[32])
{
    sha256_two(label, data, len, out);
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Two digits per lookup: the 4096 pairs of digits for each 12 bits,
 * built once.  An ID, a handle and a CSRF token are encoded on every
 * validate. */
static char b64url_pairs[4096][2];
static pthread_once_t b64url_pairs_once = PTHREAD_ONCE_INIT;

static void b64url_pairs_init(void)
{
    for (unsigned v = 0; v < 4096; v++) {
        b64url_pairs[v][0] = b64url_alphabet[v >> 6];
        b64url_pairs[v][1] = b64url_alphabet[v & 63];
    }
}

void sess__b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    pthread_once(&b64url_pairs_once, b64url_pairs_init);
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        memcpy(out + o, b64url_pairs[v >> 12], 2);
        memcpy(out + o + 2, b64url_pairs[v & 0xFFF], 2);
        o += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* One more than each byte's value as a base64url digit, 0 for bytes that
 * are not digits: one load per character, no branch on its value. */
static const uint8_t b64url_digit[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

int sess__b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t n)
{
    if (in_len != SESS_B64URL_LEN(n))
        return SESS_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    bool ok = true;
    for (size_t i = 0; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];
        ok &= b64url_digit[c] != 0;
        acc = (acc << 6) | (uint32_t)((b64url_digit[c] - 1u) & 63u);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (!ok)
        return SESS_EINVAL;
    /* Leftover bits must be zero: one canonical spelling per value. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return SESS_EINVAL;
    return o == n ? SESS_OK : SESS_EINVAL;
}

int sess__b64url_check(const char *in, size_t in_len, size_t n)
{
    unsigned bad = 0;
    if (in_len != SESS_B64URL_LEN(n) || in_len == 0)
        return SESS_EINVAL;
    for (size_t i = 0; i < in_len; i++)
        bad |= b64url_digit[(unsigned char)in[i]] == 0;
    if (bad)
        return SESS_EINVAL;
    unsigned leftover = (unsigned)(in_len * 6 - n * 8);
    unsigned last = (b64url_digit[(unsigned char)in[in_len - 1]] - 1u) & 63u;
    return (last & ((1u << leftover) - 1u)) == 0 ? SESS_OK : SESS_EINVAL;
}

_Thread_local int sess__tl_thread_index = -1;

unsigned sess__thread_index_assign(void)
{
    static _Atomic int next;
    sess__tl_thread_index = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) &
                            INT_MAX;
    return (unsigned)sess__tl_thread_index;
}

bool sess__ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

/* explicit_bzero (glibc 2.25) is a memset the compiler may not remove;
 * OPENSSL_cleanse does the same a byte at a time, which showed in
 * validate profiles. */
void sess__wipe(void *p, size_t len)
{
    if (p && len)
        explicit_bzero(p, len);
}

void sess_wipe(void *p, size_t len)
{
    sess__wipe(p, len);
}

bool sess__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t need;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
        else return false;
        if (len - i <= need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        /* overlong, surrogate, or beyond U+10FFFF */
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += need + 1;
    }
    return true;
}

int sess__mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return -1;
        buf[i] = saved;
    }
    return 0;
}

/* ---- allocation (util.h) -------------------------------------------------- */

static _Atomic uint64_t alloc_fail_at;  /* 0: no failure armed */
static _Atomic uint64_t alloc_calls;
static _Atomic uint64_t alloc_failures;
static atomic_bool alloc_sticky;

static bool alloc_should_fail(void)
{
    uint64_t at = atomic_load_explicit(&alloc_fail_at, memory_order_relaxed);
    if (at == 0)
        return false;
    uint64_t n = atomic_fetch_add(&alloc_calls, 1) + 1;
    if (n == at || (n > at && atomic_load(&alloc_sticky))) {
        atomic_fetch_add(&alloc_failures, 1);
        return true;
    }
    return false;
}

void sess__alloc_fail_nth(uint64_t n, bool sticky)
{
    atomic_store(&alloc_fail_at, 0);
    atomic_store(&alloc_calls, 0);
    atomic_store(&alloc_failures, 0);
    atomic_store(&alloc_sticky, sticky);
    atomic_store(&alloc_fail_at, n);
}

uint64_t sess__alloc_count(void)
{
    return atomic_load(&alloc_calls);
}

uint64_t sess__alloc_failed(void)
{
    return atomic_load(&alloc_failures);
}

void *sess__malloc(size_t n)
{
    return alloc_should_fail() ? NULL : malloc(n);
}

void *sess__calloc(size_t n, size_t m)
{
    return alloc_should_fail() ? NULL : calloc(n, m);
}

void *sess__realloc(void *p, size_t n)
{
    return alloc_should_fail() ? NULL : realloc(p, n);
}

void sess__free(void *p)
{
    free(p);
}

/* ---- client addresses (sess/session.h) ------------------------------ */

int sess_ip_parse(const char *text, sess_ip *out)
{
    struct in6_addr a6;
    memset(out, 0, sizeof *out);
    if (!text || strlen(text) > SESS_IP_MAX)
        return SESS_EINVAL;
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = 4;
        return SESS_OK;
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            memcpy(out->addr, a6.s6_addr + 12, 4);
            out->family = 4;
        } else {
            memcpy(out->addr, a6.s6_addr, 16);
            out->family = 6;
        }
        return SESS_OK;
    }
    return SESS_EINVAL;
}

int sess_cidr_parse(const char *text, size_t len, sess_ip *net, unsigned *bits)
{
    char addr[SESS_IP_MAX + 1];
    const char *slash = memchr(text, '/', len);
    size_t alen = slash ? (size_t)(slash - text) : len;
    if (alen == 0 || alen > SESS_IP_MAX)
        return SESS_EINVAL;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (sess_ip_parse(addr, net) != SESS_OK)
        return SESS_EINVAL;
    /* A mapped block (::ffff:10.0.0.0/104) is the IPv4 block it maps. */
    bool mapped = net->family == 4 && strchr(addr, ':') != NULL;
    unsigned width = net->family == 4 ? 32 : 128;
    unsigned prefix = width;
    if (slash) {
        size_t nlen = len - alen - 1;
        if (nlen == 0 || nlen > 3)
            return SESS_EINVAL;
        prefix = 0;
        for (size_t i = 0; i < nlen; i++) {
            char c = slash[1 + i];
            if (c < '0' || c > '9')
                return SESS_EINVAL;
            prefix = prefix * 10 + (unsigned)(c - '0');
        }
        if (mapped) {
            if (prefix < 96 || prefix > 128)
                return SESS_EINVAL;
            prefix -= 96;
        }
        if (prefix > width)
            return SESS_EINVAL;
    }
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = prefix > i * 8 ? prefix - i * 8 : 0;
        if (keep < 8)
            net->addr[i] &= (uint8_t)(0xFF00u >> keep);
    }
    *bits = prefix;
    return SESS_OK;
}

bool sess__prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xFF00u >> rest);
        return (a[full] & mask) == (b[full] & mask);
    }
    return true;
}

bool sess_ip_prefix_match(const sess_ip *a, const sess_ip *b, unsigned bits)
{
    unsigned width = a->family == 4 ? 32 : 128;
    if (a->family != b->family)
        return false;
    return sess__prefix_equal(a->addr, b->addr, bits > width ? width : bits);
}
