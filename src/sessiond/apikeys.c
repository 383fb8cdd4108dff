/*
 * apikeys.c - API keys of the management API (docs/security.md invariant 11).
 *
 * Only SHA-256 digests of the keys are kept; the raw file text is wiped
 * as soon as it is parsed.  A presented key is hashed and compared with
 * CRYPTO_memcmp against every digest, all of them every time, so neither
 * the comparison nor the position of the matching key leaks through
 * timing (an attacker could otherwise recover a key byte by byte).
 *
 * Locking: the digest set is replaced as a whole on SIGHUP; "lock" is a
 * read-write lock, taken for reading by every check and for writing only
 * by the swap.  The forward-auth hot path needs no key and never takes it.
 *
 * Failed keys are throttled per peer (online guessing, and the noise of a
 * misconfigured client): a fixed table indexed by a keyed hash of the
 * address (SHA-256 with a per-process random salt, so nobody can aim
 * addresses at a victim's slot), each slot counting failures in a window
 * and holding a refusal deadline.  Failures take "throttle_lock"; the
 * check every keyed request makes reads one atomic ("blocked_until_max")
 * and looks at the table only while some peer is refused.  Two peers that
 * share a slot share its count: memory stays bounded whatever the flood.
 */
#include "apikeys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sess.h"

#define DIGEST_LEN 32

typedef struct throttle_slot {
    _Atomic uint64_t tag;           /* keyed hash of the peer, 0 = free */
    _Atomic uint64_t blocked_until; /* refused while now < this */
    uint64_t window_start;          /* under throttle_lock */
    uint32_t failures;              /* under throttle_lock */
} throttle_slot;

struct sessiond_apikeys {
    pthread_rwlock_t lock;
    uint8_t (*digests)[DIGEST_LEN];
    size_t n;
    atomic_size_t n_public;     /* for lock-free "enabled" */
    uint8_t salt[16];
    pthread_mutex_t throttle_lock;
    _Atomic uint64_t blocked_until_max;
    throttle_slot slots[SESSIOND_THROTTLE_SLOTS];
};

sessiond_apikeys *sessiond_apikeys_new(void)
{
    sessiond_apikeys *ak = calloc(1, sizeof(*ak));
    if (ak == NULL)
        return NULL;
    if (pthread_rwlock_init(&ak->lock, NULL) != 0) {
        free(ak);
        return NULL;
    }
    if (RAND_bytes(ak->salt, sizeof(ak->salt)) != 1 ||
        pthread_mutex_init(&ak->throttle_lock, NULL) != 0) {
        pthread_rwlock_destroy(&ak->lock);
        free(ak);
        return NULL;
    }
    atomic_init(&ak->n_public, 0);
    return ak;
}

void sessiond_apikeys_free(sessiond_apikeys *ak)
{
    if (ak == NULL)
        return;
    if (ak->digests != NULL) {
        sess_wipe(ak->digests, (size_t)SESSIOND_APIKEYS_MAX * DIGEST_LEN);
        free(ak->digests);
    }
    pthread_rwlock_destroy(&ak->lock);
    pthread_mutex_destroy(&ak->throttle_lock);
    sess_wipe(ak->salt, sizeof(ak->salt));
    free(ak);
}

static int sha256(const void *p, size_t len, uint8_t out[DIGEST_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1 ||
        n != DIGEST_LEN)
        return -1;
    return 0;
}

/* Read all of "path" into a malloc'd, NUL-terminated buffer, refusing a
 * file that is not regular or is readable by group or others. */
static char *read_key_file(const char *path, size_t *len_out, char *err,
                           size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "server.api_keys_file: cannot open %s: %s",
                 path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "server.api_keys_file: cannot stat %s: %s",
                 path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "server.api_keys_file: %s is not a regular file",
                 path);
        goto cleanup;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "server.api_keys_file: %s has mode %04o; it must be 0600 "
                 "or stricter (chmod 600)",
                 path, (unsigned)(st.st_mode & 07777));
        goto cleanup;
    }
    if ((uint64_t)st.st_size > SESSIOND_APIKEYS_FILE_MAX) {
        snprintf(err, errlen, "server.api_keys_file: %s is larger than %u bytes",
                 path, SESSIOND_APIKEYS_FILE_MAX);
        goto cleanup;
    }
    buf = malloc(SESSIOND_APIKEYS_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "server.api_keys_file: out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, SESSIOND_APIKEYS_FILE_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "server.api_keys_file: cannot read %s: %s",
                     path, strerror(errno));
            sess_wipe(buf, len);
            free(buf);
            buf = NULL;
            goto cleanup;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == SESSIOND_APIKEYS_FILE_MAX)
            break;
    }
    buf[len] = '\0';
    *len_out = len;
cleanup:
    close(fd);
    return buf;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int sessiond_apikeys_load(sessiond_apikeys *ak, const char *path, char *err,
                          size_t errlen)
{
    uint8_t (*digests)[DIGEST_LEN] = NULL;
    size_t n = 0;
    size_t len = 0;
    char *text = NULL;
    int rc = -1;

    if (path != NULL && path[0] != '\0') {
        text = read_key_file(path, &len, err, errlen);
        if (text == NULL)
            return -1;
        digests = calloc(SESSIOND_APIKEYS_MAX, DIGEST_LEN);
        if (digests == NULL) {
            snprintf(err, errlen, "server.api_keys_file: out of memory");
            goto cleanup;
        }
        size_t lineno = 0;
        char *p = text;
        char *end = text + len;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            char *eol = nl != NULL ? nl : end;
            lineno++;
            char *s = p;
            char *e = eol;
            while (s < e && is_space(*s))
                s++;
            while (e > s && is_space(e[-1]))
                e--;
            p = nl != NULL ? nl + 1 : end;
            if (s == e || *s == '#')
                continue;
            size_t klen = (size_t)(e - s);
            if (klen < SESSIOND_APIKEY_MIN || klen > SESSIOND_APIKEY_MAX) {
                snprintf(err, errlen,
                         "server.api_keys_file: %s line %zu: a key must be "
                         "%d to %d characters",
                         path, lineno, SESSIOND_APIKEY_MIN,
                         SESSIOND_APIKEY_MAX);
                goto cleanup;
            }
            if (memchr(s, '\0', klen) != NULL) {
                snprintf(err, errlen,
                         "server.api_keys_file: %s line %zu: NUL in key",
                         path, lineno);
                goto cleanup;
            }
            if (n == SESSIOND_APIKEYS_MAX) {
                snprintf(err, errlen,
                         "server.api_keys_file: %s: more than %d keys",
                         path, SESSIOND_APIKEYS_MAX);
                goto cleanup;
            }
            if (sha256(s, klen, digests[n]) != 0) {
                snprintf(err, errlen, "server.api_keys_file: SHA-256 failed");
                goto cleanup;
            }
            n++;
        }
        if (n == 0) {
            snprintf(err, errlen, "server.api_keys_file: %s holds no key",
                     path);
            goto cleanup;
        }
    }

    pthread_rwlock_wrlock(&ak->lock);
    uint8_t (*old)[DIGEST_LEN] = ak->digests;
    ak->digests = digests;
    ak->n = n;
    atomic_store(&ak->n_public, n);
    pthread_rwlock_unlock(&ak->lock);
    digests = old;
    rc = 0;

cleanup:
    /* Every digest array comes from this function with room for
     * SESSIOND_APIKEYS_MAX entries: wipe all of it. */
    if (digests != NULL) {
        sess_wipe(digests, (size_t)SESSIOND_APIKEYS_MAX * DIGEST_LEN);
        free(digests);
    }
    if (text != NULL) {
        sess_wipe(text, len);
        free(text);
    }
    return rc;
}

bool sessiond_apikeys_enabled(const sessiond_apikeys *ak)
{
    return ak != NULL &&
           atomic_load_explicit(&((sessiond_apikeys *)ak)->n_public,
                                memory_order_relaxed) > 0;
}

size_t sessiond_apikeys_count(const sessiond_apikeys *ak)
{
    return ak == NULL ? 0
                      : atomic_load(&((sessiond_apikeys *)ak)->n_public);
}

sessiond_key_result sessiond_apikeys_verify(sessiond_apikeys *ak,
                                            const char *authorization)
{
    static const char scheme[] = "Bearer";
    uint8_t digest[DIGEST_LEN];

    if (!sessiond_apikeys_enabled(ak))
        return SESSIOND_KEY_OK;
    if (authorization == NULL)
        return SESSIOND_KEY_MISSING;
    /* RFC 6750 section 2.1: "Bearer" 1*SP token; the scheme is
     * case-insensitive (RFC 9110 section 11.1). */
    if (strncasecmp(authorization, scheme, sizeof(scheme) - 1) != 0 ||
        authorization[sizeof(scheme) - 1] != ' ')
        return SESSIOND_KEY_MISSING;
    const char *key = authorization + sizeof(scheme);
    while (*key == ' ')
        key++;
    size_t klen = strlen(key);
    while (klen > 0 && is_space(key[klen - 1]))
        klen--;
    if (klen == 0)
        return SESSIOND_KEY_MISSING;
    if (klen > SESSIOND_APIKEY_MAX)
        return SESSIOND_KEY_UNKNOWN;
    if (sha256(key, klen, digest) != 0)
        return SESSIOND_KEY_UNKNOWN;
    pthread_rwlock_rdlock(&ak->lock);
    int match = 0;
    for (size_t i = 0; i < ak->n; i++)
        match |= CRYPTO_memcmp(digest, ak->digests[i], DIGEST_LEN) == 0;
    pthread_rwlock_unlock(&ak->lock);
    sess_wipe(digest, sizeof(digest));
    return match != 0 ? SESSIOND_KEY_OK : SESSIOND_KEY_UNKNOWN;
}

bool sessiond_apikeys_check(sessiond_apikeys *ak, const char *authorization)
{
    return sessiond_apikeys_verify(ak, authorization) == SESSIOND_KEY_OK;
}

const char *sessiond_key_result_name(sessiond_key_result r)
{
    static const char *const names[] = {"ok", "missing", "unknown"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r]
                                                          : "unknown";
}

/* The peer's slot and tag (never 0, which marks a free slot). */
static throttle_slot *slot_for(sessiond_apikeys *ak, const char *peer,
                               uint64_t *tag)
{
    uint8_t in[sizeof(ak->salt) + SESSIOND_APIKEY_MIN + 64];
    uint8_t h[DIGEST_LEN];
    size_t plen = strnlen(peer, 64);
    memcpy(in, ak->salt, sizeof(ak->salt));
    memcpy(in + sizeof(ak->salt), peer, plen);
    if (sha256(in, sizeof(ak->salt) + plen, h) != 0)
        memset(h, 0, sizeof(h));
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = (t << 8) | h[i];
    uint64_t idx = ((uint64_t)h[8] << 24 | (uint64_t)h[9] << 16 |
                    (uint64_t)h[10] << 8 | h[11]) % SESSIOND_THROTTLE_SLOTS;
    *tag = t != 0 ? t : 1;
    return &ak->slots[idx];
}

bool sessiond_apikeys_refusing(sessiond_apikeys *ak, uint64_t now)
{
    return ak != NULL &&
           atomic_load_explicit(&ak->blocked_until_max, memory_order_acquire) >
               now;
}

bool sessiond_apikeys_throttled(sessiond_apikeys *ak, const char *peer,
                                uint64_t now, uint32_t *retry_after)
{
    uint64_t tag;
    if (ak == NULL || peer == NULL ||
        atomic_load_explicit(&ak->blocked_until_max, memory_order_acquire) <=
            now)
        return false;
    throttle_slot *sl = slot_for(ak, peer, &tag);
    uint64_t until = atomic_load_explicit(&sl->blocked_until,
                                          memory_order_acquire);
    if (atomic_load_explicit(&sl->tag, memory_order_acquire) != tag ||
        until <= now)
        return false;
    if (retry_after != NULL)
        *retry_after = (uint32_t)(until - now);
    return true;
}

bool sessiond_apikeys_failed(sessiond_apikeys *ak, const char *peer,
                             uint64_t now)
{
    uint64_t tag;
    bool blocked = false;
    if (ak == NULL || peer == NULL)
        return false;
    throttle_slot *sl = slot_for(ak, peer, &tag);
    pthread_mutex_lock(&ak->throttle_lock);
    uint64_t until = atomic_load_explicit(&sl->blocked_until,
                                          memory_order_relaxed);
    if (atomic_load_explicit(&sl->tag, memory_order_relaxed) != tag ||
        now >= sl->window_start + SESSIOND_THROTTLE_WINDOW) {
        /* Another peer's old slot, or this peer's window is over: start
         * afresh - unless another peer is refused in it right now, whose
         * refusal a newcomer must not lift. */
        if (atomic_load_explicit(&sl->tag, memory_order_relaxed) != tag &&
            until > now) {
            pthread_mutex_unlock(&ak->throttle_lock);
            return false;
        }
        atomic_store_explicit(&sl->tag, tag, memory_order_release);
        atomic_store_explicit(&sl->blocked_until, 0, memory_order_release);
        sl->window_start = now;
        sl->failures = 0;
    }
    if (++sl->failures >= SESSIOND_THROTTLE_FAILURES && until <= now) {
        uint64_t end = now + SESSIOND_THROTTLE_BLOCK;
        atomic_store_explicit(&sl->blocked_until, end, memory_order_release);
        if (atomic_load(&ak->blocked_until_max) < end)
            atomic_store_explicit(&ak->blocked_until_max, end,
                                  memory_order_release);
        /* The next window starts when the refusal ends. */
        sl->window_start = end;
        sl->failures = 0;
        blocked = true;
    }
    pthread_mutex_unlock(&ak->throttle_lock);
    return blocked;
}
