/*
 * apikeys.c - API keys of the management API (DESIGN invariant 11).
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

#include "sess.h"

#define DIGEST_LEN 32

struct sessiond_apikeys {
    pthread_rwlock_t lock;
    uint8_t (*digests)[DIGEST_LEN];
    size_t n;
    atomic_size_t n_public;     /* for lock-free "enabled" */
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

bool sessiond_apikeys_check(sessiond_apikeys *ak, const char *authorization)
{
    static const char scheme[] = "Bearer";
    uint8_t digest[DIGEST_LEN];
    bool ok = false;

    if (!sessiond_apikeys_enabled(ak))
        return true;
    if (authorization == NULL)
        return false;
    /* RFC 6750 section 2.1: "Bearer" 1*SP token; the scheme is
     * case-insensitive (RFC 9110 section 11.1). */
    if (strncasecmp(authorization, scheme, sizeof(scheme) - 1) != 0 ||
        authorization[sizeof(scheme) - 1] != ' ')
        return false;
    const char *key = authorization + sizeof(scheme);
    while (*key == ' ')
        key++;
    size_t klen = strlen(key);
    while (klen > 0 && is_space(key[klen - 1]))
        klen--;
    if (klen == 0 || klen > SESSIOND_APIKEY_MAX)
        return false;
    if (sha256(key, klen, digest) != 0)
        return false;

    pthread_rwlock_rdlock(&ak->lock);
    int match = 0;
    for (size_t i = 0; i < ak->n; i++)
        match |= CRYPTO_memcmp(digest, ak->digests[i], DIGEST_LEN) == 0;
    ok = match != 0;
    pthread_rwlock_unlock(&ak->lock);
    sess_wipe(digest, sizeof(digest));
    return ok;
}
