/*
 * jwt_keys.c - token signing keys with a lifecycle (docs/tokens.md, "Keys
 * and rotation"): the key directory, generate / rotate / retire / list,
 * the loaded signing keyring, its JWK Set document and ETag, and signing.
 *
 * These keys are apart from the record-encryption keys (lib/crypto.c):
 * another directory, other files ("<kid>.pem" + "<kid>.json"), another
 * purpose, so a leak or a rotation of one never touches the other.
 *
 * Lifecycle.  next (published, not signing) -> current (signs; at most
 * one) -> retired (published until not_after, then left out).  A key must
 * be in the JWKS for at least the JWKS max-age before it signs: a verifier
 * that cached the JWKS just before the key appeared would otherwise refuse
 * every token it signs (rotate enforces it from "next_at").  A retired key
 * stays published until every token it signed has expired (not_after =
 * retirement + token lifetime + leeway), so no token in flight fails.
 *
 * Files.  The private key is PKCS#8 PEM, mode 0600 or stricter, owned by
 * the running user, opened without following symlinks (a readable or
 * planted key is a leaked or forged key).  The kid is the key's RFC 7638
 * thumbprint and is checked against the PEM at load time, so a metadata
 * file renamed onto another key is caught.  Every write goes to a
 * temporary file that is fsynced and renamed over the old one: a daemon
 * reloading meanwhile sees the old or the new file, never half of one.
 * Rotation writes the retirement before the promotion, so a crash between
 * the two leaves no current key (signing stops, loudly) rather than two;
 * running rotate again finishes it.
 *
 * Threads.  A loaded keyring is immutable and reference counted
 * (sess_sigkeys_ref / _free); sess_sigkeys_slot swaps keyrings under a
 * mutex for a reloading daemon.  The directory functions are for one
 * administrator at a time (sessctl); they take no lock on the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt_internal.h"
#include "util.h"

#define META_MAX 4096               /* bytes of a metadata file */
#define PEM_MAX 16384               /* bytes of a private key file */
#define RSA_BITS 2048

static const char *const type_names[] = {"ed25519", "p256", "rsa"};
static const char *const state_names[] = {"next", "current", "retired"};

int sess_sigkey_type_from_name(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name != NULL && strcmp(name, type_names[i]) == 0)
            return i;
    return -1;
}

const char *sess_sigkey_type_name(sess_sigkey_type type)
{
    return (unsigned)type < 3 ? type_names[type] : "?";
}

const char *sess_sigkey_state_name(sess_sigkey_state state)
{
    return (unsigned)state < 3 ? state_names[state] : "?";
}

static int64_t clock_or(int64_t now)
{
    return now != 0 ? now : (int64_t)time(NULL);
}

static bool kid_valid(const char *kid, size_t len)
{
    if (len == 0 || len > SESS_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* ---- files -------------------------------------------------------------- */

/* Read file "name" of directory "dfd" (at most "max" bytes) into a new
 * NUL-terminated buffer.  "secret": the file must be 0600 or stricter and
 * ours. */
static int read_file(int dfd, const char *name, size_t max, bool secret,
                     char **out, size_t *len, sess_err *err)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc = SESS_OK;

    *out = NULL;
    fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sess__fail(err, SESS_ECONFIG, "cannot open '%s': %s", name,
                          strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = sess__fail(err, SESS_ECONFIG, "'%s' is not a regular file", name);
        goto cleanup;
    }
    if (secret && ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0 ||
                   st.st_uid != geteuid())) {
        /* Short: the kid fills most of the 128 bytes of "err". */
        rc = sess__fail(err, SESS_ECONFIG, "'%s' (mode %03o) is not ours "
                        "alone: chmod 600 it", name,
                        (unsigned)(st.st_mode & 0777));
        goto cleanup;
    }
    if ((size_t)st.st_size > max) {
        rc = sess__fail(err, SESS_ECONFIG, "'%s' is larger than %zu bytes",
                        name, max);
        goto cleanup;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    while (got < max) {
        ssize_t n = read(fd, buf + got, max - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sess__fail(err, SESS_EIO, "cannot read '%s': %s", name,
                            strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
cleanup:
    if (buf != NULL) {
        sess__wipe(buf, max + 1);
        free(buf);
    }
    close(fd);
    return rc;
}

/* Write "data" to "dir"/"name" atomically (temporary file, fsync, rename),
 * mode 0600. */
static int write_file(const char *dir, const char *name, const void *data,
                      size_t len, sess_err *err)
{
    char path[4096], tmp[4096];
    uint8_t rnd[6];
    char sfx[9];
    int fd, rc = SESS_OK;

    if (sess__random(rnd, sizeof rnd) != SESS_OK)
        return sess__fail(err, SESS_ERANDOM, "getrandom failed");
    sess__b64url_encode(rnd, sizeof rnd, sfx);
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.%s.tmp", dir, name, sfx) >=
            (int)sizeof tmp)
        return sess__fail(err, SESS_EINVAL, "key directory path too long");
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return sess__fail(err, SESS_EIO, "cannot create a file in '%s': %s",
                          dir, strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = SESS_EIO;
            break;
        }
        off += (size_t)n;
    }
    if (rc == SESS_OK && fsync(fd) != 0)
        rc = SESS_EIO;
    close(fd);
    if (rc == SESS_OK && rename(tmp, path) != 0)
        rc = SESS_EIO;
    if (rc != SESS_OK) {
        unlink(tmp);
        return sess__fail(err, rc, "cannot write '%s' in '%s': %s", name, dir,
                          strerror(errno));
    }
    /* The rename itself must reach the disk before we report success. */
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return SESS_OK;
}

/* ---- metadata ------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t off;
} time_fields[] = {
    {"created", offsetof(sess_sigkey_info, created)},
    {"next_at", offsetof(sess_sigkey_info, next_at)},
    {"activated", offsetof(sess_sigkey_info, activated)},
    {"retired_at", offsetof(sess_sigkey_info, retired_at)},
    {"not_after", offsetof(sess_sigkey_info, not_after)},
};
#define N_TIME_FIELDS (sizeof time_fields / sizeof time_fields[0])

static int meta_write(const char *dir, const sess_sigkey_info *m,
                      sess_err *err)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "kid", m->kid, "use", "sig",
                          "type", sess_sigkey_type_name(m->type), "state",
                          sess_sigkey_state_name(m->state));
    char name[SESS_KID_MAX + 8], *text = NULL;
    int rc = SESS_ENOMEM;

    for (size_t i = 0; o != NULL && i < N_TIME_FIELDS; i++) {
        int64_t v = *(const int64_t *)((const char *)m + time_fields[i].off);
        if (json_object_set_new(o, time_fields[i].name, json_integer(v)) != 0)
            goto cleanup;
    }
    if (o == NULL || (text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
        goto cleanup;
    snprintf(name, sizeof name, "%s.json", m->kid);
    rc = write_file(dir, name, text, strlen(text), err);
cleanup:
    if (rc == SESS_ENOMEM)
        sess__fail(err, rc, "out of memory");
    free(text);
    json_decref(o);
    return rc;
}

/* Parse metadata file "name" ("<kid>.json") of "dfd" into "m". */
static int meta_read(int dfd, const char *name, sess_sigkey_info *m,
                     sess_err *err)
{
    char *text = NULL;
    size_t len, kid_len = strlen(name) - 5;
    json_t *o = NULL;
    json_error_t jerr;
    const char *kid, *type, *state, *use;
    int rc, t = -1, s = -1;

    memset(m, 0, sizeof *m);
    if ((rc = read_file(dfd, name, META_MAX, false, &text, &len, err)) != SESS_OK)
        return rc;
    rc = SESS_ECONFIG;
    o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    kid = json_string_value(json_object_get(o, "kid"));
    type = json_string_value(json_object_get(o, "type"));
    state = json_string_value(json_object_get(o, "state"));
    use = json_string_value(json_object_get(o, "use"));
    for (int i = 0; i < 3; i++) {
        if (type != NULL && strcmp(type, type_names[i]) == 0)
            t = i;
        if (state != NULL && strcmp(state, state_names[i]) == 0)
            s = i;
    }
    if (!json_is_object(o) || kid == NULL || strlen(kid) != kid_len ||
        memcmp(kid, name, kid_len) != 0 || t < 0 || s < 0 ||
        use == NULL || strcmp(use, "sig") != 0) {
        sess__fail(err, rc, "signing key metadata '%s' is malformed (kid "
                   "matching the file name, use \"sig\", type, state)", name);
        goto cleanup;
    }
    memcpy(m->kid, kid, kid_len + 1);
    m->type = (sess_sigkey_type)t;
    m->state = (sess_sigkey_state)s;
    for (size_t i = 0; i < N_TIME_FIELDS; i++) {
        json_t *v = json_object_get(o, time_fields[i].name);
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            sess__fail(err, rc, "signing key metadata '%s': \"%s\" must be a "
                       "non-negative integer", name, time_fields[i].name);
            goto cleanup;
        }
        *(int64_t *)((char *)m + time_fields[i].off) = json_integer_value(v);
    }
    rc = SESS_OK;
cleanup:
    json_decref(o);
    free(text);
    return rc;
}

static bool published(const sess_sigkey_info *m, int64_t now)
{
    return m->state != SESS_SIGKEY_RETIRED || now < m->not_after;
}

static int info_cmp(const void *a, const void *b)
{
    const sess_sigkey_info *x = a, *y = b;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return strcmp(y->kid, x->kid);
}

/* All metadata of "dir" into "*out" ("*n"), newest first.  A missing
 * directory gives SESS_NOTFOUND. */
static int meta_scan(const char *dir, int64_t now, sess_sigkey_info **out,
                     size_t *n, sess_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    sess_sigkey_info *list = NULL;
    size_t count = 0;
    int rc = SESS_OK;

    *out = NULL;
    *n = 0;
    if (d == NULL) {
        if (errno == ENOENT)
            return sess__fail(err, SESS_NOTFOUND, "no signing key directory "
                              "'%s'", dir);
        return sess__fail(err, SESS_ECONFIG, "cannot open signing key "
                          "directory '%s': %s", dir, strerror(errno));
    }
    list = calloc(SESS_JWKS_MAX_KEYS, sizeof *list);
    if (list == NULL) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0 ||
            !kid_valid(de->d_name, len - 5))
            continue;
        if (count == SESS_JWKS_MAX_KEYS) {
            rc = sess__fail(err, SESS_ECONFIG, "more than %d signing keys in "
                            "'%s'", SESS_JWKS_MAX_KEYS, dir);
            goto cleanup;
        }
        if ((rc = meta_read(dirfd(d), de->d_name, &list[count], err)) != SESS_OK)
            goto cleanup;
        list[count].published = published(&list[count], now);
        count++;
    }
    qsort(list, count, sizeof *list, info_cmp);
    *out = list;
    *n = count;
    list = NULL;
cleanup:
    free(list);
    closedir(d);
    return rc;
}

int sess_sigkeys_list(const char *dir, int64_t now, sess_sigkey_info **out,
                      size_t *n, sess_err *err)
{
    if (dir == NULL || out == NULL || n == NULL)
        return sess__fail(err, SESS_EINVAL, "NULL argument");
    return meta_scan(dir, clock_or(now), out, n, err);
}

/* ---- generate, rotate, retire --------------------------------------- */

static EVP_PKEY *keygen(sess_sigkey_type type)
{
    switch (type) {
    case SESS_SIGKEY_ED25519:
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    case SESS_SIGKEY_P256:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    case SESS_SIGKEY_RSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
    }
    return NULL;
}

int sess_sigkeys_generate(const char *dir, sess_sigkey_type type,
                          int64_t now, char *kid_out, sess_err *err)
{
    sess_sigkey_info *list = NULL, m;
    size_t n = 0;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *pem;
    long pem_len;
    char name[SESS_KID_MAX + 8];
    bool any_published = false;
    int rc;

    if (dir == NULL || (unsigned)type > SESS_SIGKEY_RSA)
        return sess__fail(err, SESS_EINVAL, "bad argument");
    now = clock_or(now);
    if (sess__mkdir_p(dir, 0700) != 0)
        return sess__fail(err, SESS_EIO, "cannot create signing key directory "
                          "'%s': %s", dir, strerror(errno));
    rc = meta_scan(dir, now, &list, &n, err);
    if (rc != SESS_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        any_published |= list[i].published;
    free(list);

    memset(&m, 0, sizeof m);
    pkey = keygen(type);
    if (pkey == NULL || sess__jwk_thumbprint(pkey, m.kid) != SESS_OK) {
        rc = sess__fail(err, SESS_ECRYPTO, "key generation failed");
        goto cleanup;
    }
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL ||
        PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pem_len = BIO_get_mem_data(bio, &pem)) <= 0) {
        rc = sess__fail(err, SESS_ECRYPTO, "cannot encode the private key");
        goto cleanup;
    }
    snprintf(name, sizeof name, "%s.pem", m.kid);
    if ((rc = write_file(dir, name, pem, (size_t)pem_len, err)) != SESS_OK)
        goto cleanup;
    m.type = type;
    m.created = now;
    /* A first key signs at once: with nothing published, no verifier can
     * hold a cached JWKS that lacks it.  Once any key is published, a new
     * one waits in "next" for a rotate (after the JWKS max-age). */
    if (any_published) {
        m.state = SESS_SIGKEY_NEXT;
        m.next_at = now;
    } else {
        m.state = SESS_SIGKEY_CURRENT;
        m.next_at = now;
        m.activated = now;
    }
    if ((rc = meta_write(dir, &m, err)) != SESS_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        unlink(path);
        goto cleanup;
    }
    if (kid_out != NULL)
        memcpy(kid_out, m.kid, strlen(m.kid) + 1);
cleanup:
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return rc;
}

int sess_sigkeys_rotate(const char *dir, int64_t now, int64_t min_published,
                        int64_t token_ttl, int64_t leeway, sess_err *err)
{
    sess_sigkey_info *list = NULL, *next = NULL, *cur = NULL;
    size_t n = 0, n_next = 0;
    int rc;

    if (dir == NULL || min_published < 0 || token_ttl < 0 || leeway < 0)
        return sess__fail(err, SESS_EINVAL, "bad argument");
    now = clock_or(now);
    if ((rc = meta_scan(dir, now, &list, &n, err)) != SESS_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (list[i].state == SESS_SIGKEY_NEXT) {
            next = &list[i];
            n_next++;
        } else if (list[i].state == SESS_SIGKEY_CURRENT) {
            cur = &list[i];
        }
    }
    if (n_next == 0) {
        rc = sess__fail(err, SESS_REJECTED, "no next key to promote: run "
                        "\"sessctl keys generate --use sig\" first");
        goto cleanup;
    }
    if (n_next > 1) {
        rc = sess__fail(err, SESS_REJECTED, "%zu next keys: retire all but "
                        "one first", n_next);
        goto cleanup;
    }
    /* Verifiers may hold a JWKS fetched just before the key appeared,
     * for up to its max-age: they must have it before it signs. */
    if (now - next->next_at < min_published) {
        rc = sess__fail(err, SESS_REJECTED, "next key %s published %lld s "
                        "ago, less than the JWKS max-age %lld s: wait %lld s",
                        next->kid, (long long)(now - next->next_at),
                        (long long)min_published,
                        (long long)(min_published - (now - next->next_at)));
        goto cleanup;
    }
    if (cur != NULL) {
        cur->state = SESS_SIGKEY_RETIRED;
        cur->retired_at = now;
        cur->not_after = now + token_ttl + leeway;
        if ((rc = meta_write(dir, cur, err)) != SESS_OK)
            goto cleanup;
    }
    next->state = SESS_SIGKEY_CURRENT;
    next->activated = now;
    rc = meta_write(dir, next, err);
cleanup:
    free(list);
    return rc;
}

int sess_sigkeys_retire(const char *dir, const char *kid, int64_t now,
                        int64_t token_ttl, int64_t leeway, sess_err *err)
{
    sess_sigkey_info *list = NULL;
    size_t n = 0;
    int rc;

    if (dir == NULL || kid == NULL || token_ttl < 0 || leeway < 0)
        return sess__fail(err, SESS_EINVAL, "bad argument");
    now = clock_or(now);
    if ((rc = meta_scan(dir, now, &list, &n, err)) != SESS_OK)
        return rc;
    rc = sess__fail(err, SESS_NOTFOUND, "no signing key with that kid");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].kid, kid) != 0)
            continue;
        if (list[i].state == SESS_SIGKEY_RETIRED) {
            rc = sess__fail(err, SESS_REJECTED, "key %s is already retired",
                            list[i].kid);
            break;
        }
        list[i].state = SESS_SIGKEY_RETIRED;
        list[i].retired_at = now;
        list[i].not_after = now + token_ttl + leeway;
        rc = meta_write(dir, &list[i], err);
        break;
    }
    free(list);
    return rc;
}

/* ---- the loaded keyring ---------------------------------------------- */

typedef struct sigkey {
    sess_sigkey_info info;
    EVP_PKEY *pkey;             /* private key */
    const sess__alg *alg;
} sigkey;

struct sess_sigkeys {
    atomic_int refs;
    size_t n;
    sigkey *keys;               /* published keys, newest first */
    int current;                /* index of the signing key, or -1 */
    sess_jwks *jwks;
    char *jwks_json;
    size_t jwks_len;
    char etag[48];
};

static void keys_destroy(sess_sigkeys *kr)
{
    for (size_t i = 0; i < kr->n; i++)
        EVP_PKEY_free(kr->keys[i].pkey);
    free(kr->keys);
    sess_jwks_free(kr->jwks);
    free(kr->jwks_json);
    free(kr);
}

void sess_sigkeys_free(sess_sigkeys *kr)
{
    if (kr != NULL && atomic_fetch_sub(&kr->refs, 1) == 1)
        keys_destroy(kr);
}

sess_sigkeys *sess_sigkeys_ref(sess_sigkeys *kr)
{
    if (kr != NULL)
        atomic_fetch_add(&kr->refs, 1);
    return kr;
}

const char *sess_sigkeys_current_kid(const sess_sigkeys *kr)
{
    return kr != NULL && kr->current >= 0 ? kr->keys[kr->current].info.kid
                                          : NULL;
}

const sess_jwks *sess_sigkeys_jwks(const sess_sigkeys *kr)
{
    return kr ? kr->jwks : NULL;
}

const char *sess_sigkeys_jwks_json(const sess_sigkeys *kr, size_t *len)
{
    if (len != NULL)
        *len = kr ? kr->jwks_len : 0;
    return kr ? kr->jwks_json : NULL;
}

const char *sess_sigkeys_jwks_etag(const sess_sigkeys *kr)
{
    return kr ? kr->etag : NULL;
}

/* Load private key "<kid>.pem" of "dfd" and check it is the key the kid
 * names (RFC 7638 thumbprint). */
static int load_pem(int dfd, const sess_sigkey_info *m, EVP_PKEY **out,
                    sess_err *err)
{
    char name[SESS_KID_MAX + 8], *text = NULL, thumb[44];
    size_t len = 0;
    BIO *bio;
    int rc;

    *out = NULL;
    snprintf(name, sizeof name, "%s.pem", m->kid);
    if ((rc = read_file(dfd, name, PEM_MAX, true, &text, &len, err)) != SESS_OK)
        return rc;
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio != NULL)
        *out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    sess__wipe(text, len);
    free(text);
    if (*out == NULL)
        return sess__fail(err, SESS_ECONFIG, "'%s' is not a PEM private key",
                          name);
    if (sess__jwk_thumbprint(*out, thumb) != SESS_OK || strcmp(thumb, m->kid) != 0 ||
        sess__alg_for_pkey(*out, false) == NULL) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return sess__fail(err, SESS_ECONFIG, "'%s' does not hold the key its "
                          "kid names (or is of an unsupported type)", name);
    }
    return SESS_OK;
}

static int kid_cmp(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "kid")),
                  json_string_value(json_object_get(*(json_t *const *)b, "kid")));
}

/* The JWK Set document, sorted by kid with sorted members, and its ETag. */
static int build_jwks(sess_sigkeys *kr, sess_err *err)
{
    json_t *doc = NULL, *arr = json_array();
    json_t *items[SESS_JWKS_MAX_KEYS] = {0};
    EVP_PKEY *pkeys[SESS_JWKS_MAX_KEYS] = {0};
    const char *kids[SESS_JWKS_MAX_KEYS] = {0};
    uint8_t h[32];
    char hb[44];
    int rc = SESS_ENOMEM;

    for (size_t i = 0; i < kr->n; i++) {
        items[i] = sess__jwk_export(kr->keys[i].pkey, kr->keys[i].info.kid,
                                    kr->keys[i].alg->name);
        pkeys[i] = kr->keys[i].pkey;
        kids[i] = kr->keys[i].info.kid;
        if (items[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                json_decref(items[j]);
            json_decref(arr);
            return sess__fail(err, SESS_ECRYPTO, "cannot export a public key");
        }
    }
    qsort(items, kr->n, sizeof items[0], kid_cmp);
    for (size_t i = 0; i < kr->n; i++)
        if (arr == NULL || json_array_append_new(arr, items[i]) != 0)
            json_decref(items[i]);
    doc = json_pack("{s:o}", "keys", arr);
    if (doc == NULL || (kr->jwks_json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
        goto cleanup;
    kr->jwks_len = strlen(kr->jwks_json);
    sess__sha256(kr->jwks_json, kr->jwks_len, h);
    sess__b64url_encode(h, sizeof h, hb);
    snprintf(kr->etag, sizeof kr->etag, "\"%.32s\"", hb);
    rc = sess__jwks_from_pkeys(pkeys, kids, kr->n, &kr->jwks, err);
cleanup:
    if (rc == SESS_ENOMEM)
        sess__fail(err, rc, "out of memory");
    json_decref(doc);
    return rc;
}

int sess_sigkeys_load_dir(const char *dir, unsigned flags, int64_t now,
                          sess_sigkeys **out, sess_err *err)
{
    sess_sigkey_info *list = NULL;
    sess_sigkeys *kr = NULL;
    size_t n = 0;
    int rc, dfd = -1;

    if (dir == NULL || out == NULL)
        return sess__fail(err, SESS_EINVAL, "NULL argument");
    *out = NULL;
    now = clock_or(now);
    rc = meta_scan(dir, now, &list, &n, err);
    if ((flags & SESS_SIGKEYS_CREATE) && (rc == SESS_NOTFOUND || (rc == SESS_OK && n == 0))) {
        free(list);
        list = NULL;
        if ((rc = sess_sigkeys_generate(dir, SESS_SIGKEY_ED25519, now, NULL, err)) != SESS_OK)
            return rc;
        rc = meta_scan(dir, now, &list, &n, err);
    }
    if (rc == SESS_NOTFOUND)
        rc = SESS_ECONFIG;
    if (rc != SESS_OK)
        goto cleanup;
    kr = calloc(1, sizeof *kr);
    if (kr == NULL || (kr->keys = calloc(n + 1, sizeof *kr->keys)) == NULL) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    atomic_init(&kr->refs, 1);
    kr->current = -1;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = sess__fail(err, SESS_ECONFIG, "cannot open '%s': %s", dir,
                        strerror(errno));
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        sigkey *k = &kr->keys[kr->n];
        if (!list[i].published)
            continue;       /* retired past not_after: every token expired */
        k->info = list[i];
        if ((rc = load_pem(dfd, &list[i], &k->pkey, err)) != SESS_OK)
            goto cleanup;
        k->alg = sess__alg_for_pkey(k->pkey, (flags & SESS_SIGKEYS_ED25519_NAME) != 0);
        if (list[i].state == SESS_SIGKEY_CURRENT) {
            if (kr->current >= 0) {
                kr->n++;
                rc = sess__fail(err, SESS_ECONFIG, "two current signing keys "
                                "in '%s': retire one", dir);
                goto cleanup;
            }
            kr->current = (int)kr->n;
        }
        kr->n++;
    }
    if ((rc = build_jwks(kr, err)) != SESS_OK)
        goto cleanup;
    *out = kr;
    kr = NULL;
cleanup:
    if (dfd >= 0)
        close(dfd);
    if (kr != NULL)
        keys_destroy(kr);
    free(list);
    return rc;
}

int sess_jwt_sign(const sess_sigkeys *kr, const json_t *claims,
                  const char *typ, char **token, sess_err *err)
{
    const sigkey *k;

    if (token == NULL)
        return sess__fail(err, SESS_EINVAL, "NULL argument");
    *token = NULL;
    if (kr == NULL || claims == NULL)
        return sess__fail(err, SESS_EINVAL, "NULL argument");
    if (kr->current < 0)
        return sess__fail(err, SESS_ENOKEY, "no current signing key (run "
                          "\"sessctl keys rotate\")");
    k = &kr->keys[kr->current];
    return sess__jwt_sign_with(k->pkey, k->alg, k->info.kid, claims, typ,
                               token, err);
}

/* ---- the slot -------------------------------------------------------------- */

struct sess_sigkeys_slot {
    pthread_mutex_t lock;
    sess_sigkeys *keys;
};

int sess_sigkeys_slot_new(sess_sigkeys *initial, sess_sigkeys_slot **out)
{
    sess_sigkeys_slot *s = calloc(1, sizeof *s);

    if (s == NULL)
        return SESS_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->keys = initial;
    *out = s;
    return SESS_OK;
}

sess_sigkeys *sess_sigkeys_slot_get(sess_sigkeys_slot *s)
{
    sess_sigkeys *k;

    pthread_mutex_lock(&s->lock);
    k = sess_sigkeys_ref(s->keys);
    pthread_mutex_unlock(&s->lock);
    return k;
}

void sess_sigkeys_slot_set(sess_sigkeys_slot *s, sess_sigkeys *keys)
{
    sess_sigkeys *old;

    pthread_mutex_lock(&s->lock);
    old = s->keys;
    s->keys = keys;
    pthread_mutex_unlock(&s->lock);
    sess_sigkeys_free(old);
}

void sess_sigkeys_slot_free(sess_sigkeys_slot *s)
{
    if (s == NULL)
        return;
    sess_sigkeys_free(s->keys);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
