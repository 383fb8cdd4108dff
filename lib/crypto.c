/*
 * crypto.c - the keyring (keys from files, each with an id) and the
 * sealing of records with AES-256-GCM (format in crypto.h).
 *
 * Keys.  A key file holds 32 random bytes as 64 hex digits.  The bytes are
 * never used directly: the record-encryption key is derived with HKDF-SHA256
 * (RFC 5869, info "sessiond record v1"), so later features can derive other
 * subkeys from the same file without key reuse across purposes.  Key files
 * must not be readable by group or others (a readable key is a leaked key).
 *
 * A key id pins its bytes ("<kid>.pin", a labelled SHA-256 of the key, see
 * pin_check), and a key of one repeated byte is refused.
 *
 * Threads.  A keyring is immutable once built.  Each thread keeps its own
 * cipher contexts (pthread key, freed and wiped at thread exit) with the
 * last key loaded, so sealing and opening neither allocate nor redo the
 * key set-up; the AES-256-GCM implementation is fetched once.  Every
 * thread's contexts are also listed (gcm_lock), so that freeing a keyring
 * or dropping a key wipes the copies idle threads still hold
 * (sess__crypto_forget_keys); a context's "state" makes that wait for an
 * operation in progress instead of pulling the key from under it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "crypto.h"
#include "util.h"

/* ---- cipher contexts ---------------------------------------------------- */

/* A cipher context that remembers the key it was set up with: setting up
 * AES-256-GCM (key schedule, GHASH key) costs more than decrypting a
 * record, so records, which all use the same few keys, only set a new
 * nonce when the key is the one already loaded.  The remembered key is
 * wiped when the thread ends. */
typedef struct gcm_slot {
    EVP_CIPHER_CTX *c;
    uint8_t key[SESS_KEY_BYTES];
    bool keyed;
    struct thread_gcm *owner;
} gcm_slot;

typedef enum { SLOT_SEAL, SLOT_OPEN, SLOT_ONCE, SLOT_COUNT } slot_kind;

/* A thread's contexts.  "state" lets another thread wipe them between
 * two of the owner's operations (sess__crypto_forget_keys): the owner
 * takes IDLE to BUSY around each seal or open, the wiper IDLE to WIPING;
 * each waits out the other, which holds it for one operation at most. */
enum { GCM_IDLE, GCM_BUSY, GCM_WIPING };

typedef struct thread_gcm {
    gcm_slot slot[SLOT_COUNT];
    _Atomic int state;
    struct thread_gcm *prev, *next;   /* every thread's, under gcm_lock */
} thread_gcm;

static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *aes_gcm;
static pthread_key_t cipher_ctx_key;
static pthread_mutex_t gcm_lock = PTHREAD_MUTEX_INITIALIZER;
static thread_gcm *gcm_head;

/* Forget the key loaded in "s": the remembered copy and the expanded key
 * schedule inside the OpenSSL context (reset wipes and frees it). */
static void slot_forget(gcm_slot *s)
{
    if (s->c)
        EVP_CIPHER_CTX_reset(s->c);
    sess__wipe(s->key, sizeof s->key);
    s->keyed = false;
}

static void thread_gcm_destroy(void *p)
{
    thread_gcm *t = p;
    pthread_mutex_lock(&gcm_lock);
    if (t->prev || gcm_head == t) {
        if (t->prev)
            t->prev->next = t->next;
        else
            gcm_head = t->next;
        if (t->next)
            t->next->prev = t->prev;
    }
    pthread_mutex_unlock(&gcm_lock);
    for (int i = 0; i < SLOT_COUNT; i++)
        EVP_CIPHER_CTX_free(t->slot[i].c);
    sess__wipe(t, sizeof *t);
    free(t);
}

void sess__crypto_forget_keys(void)
{
    pthread_mutex_lock(&gcm_lock);
    for (thread_gcm *t = gcm_head; t; t = t->next) {
        int expect = GCM_IDLE;
        while (!atomic_compare_exchange_weak(&t->state, &expect, GCM_WIPING)) {
            expect = GCM_IDLE;
            sched_yield();      /* the owner is inside one seal or open */
        }
        for (int i = 0; i < SLOT_COUNT; i++)
            slot_forget(&t->slot[i]);
        atomic_store(&t->state, GCM_IDLE);
    }
    pthread_mutex_unlock(&gcm_lock);
}

size_t sess__crypto_slots_holding(const uint8_t key[SESS_KEY_BYTES])
{
    size_t n = 0;
    pthread_mutex_lock(&gcm_lock);
    for (thread_gcm *t = gcm_head; t; t = t->next) {
        int expect = GCM_IDLE;
        while (!atomic_compare_exchange_weak(&t->state, &expect, GCM_WIPING)) {
            expect = GCM_IDLE;
            sched_yield();
        }
        for (int i = 0; i < SLOT_COUNT; i++)
            if (t->slot[i].keyed &&
                sess__ct_equal(t->slot[i].key, key, SESS_KEY_BYTES))
                n++;
        atomic_store(&t->state, GCM_IDLE);
    }
    pthread_mutex_unlock(&gcm_lock);
    return n;
}

/* Take this thread's contexts for one operation; release with
 * thread_put(). */
static void thread_take(thread_gcm *t)
{
    int expect = GCM_IDLE;
    while (!atomic_compare_exchange_weak_explicit(&t->state, &expect, GCM_BUSY,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
        expect = GCM_IDLE;
        sched_yield();          /* a reload is wiping them now */
    }
}

static void thread_put(gcm_slot *s)
{
    atomic_store_explicit(&s->owner->state, GCM_IDLE, memory_order_release);
}

static void cipher_init(void)
{
    aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    pthread_key_create(&cipher_ctx_key, thread_gcm_destroy);
}

/* This thread's slot "kind", taken (thread_put() releases it). */
static gcm_slot *thread_slot(slot_kind kind)
{
    pthread_once(&cipher_once, cipher_init);
    if (!aes_gcm)
        return NULL;
    thread_gcm *t = pthread_getspecific(cipher_ctx_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        atomic_init(&t->state, GCM_IDLE);
        for (int i = 0; i < SLOT_COUNT; i++) {
            t->slot[i].owner = t;
            if (!(t->slot[i].c = EVP_CIPHER_CTX_new())) {
                thread_gcm_destroy(t);
                return NULL;
            }
        }
        if (pthread_setspecific(cipher_ctx_key, t) != 0) {
            thread_gcm_destroy(t);
            return NULL;
        }
        pthread_mutex_lock(&gcm_lock);
        t->next = gcm_head;
        if (gcm_head)
            gcm_head->prev = t;
        gcm_head = t;
        pthread_mutex_unlock(&gcm_lock);
    }
    thread_take(t);
    return &t->slot[kind];
}

/* Set up "s" for "key" and "nonce", reusing the loaded key when it is the
 * same (SLOT_ONCE never keeps one). */
static bool slot_init(gcm_slot *s, slot_kind kind, bool enc, const uint8_t *key,
                      const uint8_t *nonce)
{
    bool reuse = kind != SLOT_ONCE && s->keyed &&
                 sess__ct_equal(s->key, key, SESS_KEY_BYTES);
    const EVP_CIPHER *ciph = reuse ? NULL : aes_gcm;
    const uint8_t *k = reuse ? NULL : key;
    int ok = enc ? EVP_EncryptInit_ex2(s->c, ciph, k, nonce, NULL)
                 : EVP_DecryptInit_ex2(s->c, ciph, k, nonce, NULL);
    if (!ok) {
        s->keyed = false;
        return false;
    }
    if (!reuse && kind != SLOT_ONCE) {
        memcpy(s->key, key, SESS_KEY_BYTES);
        s->keyed = true;
    }
    return true;
}

/* AES-256-GCM encrypt with a 12-byte nonce and 16-byte tag. */
static int gcm_encrypt(slot_kind kind, const uint8_t *key, const uint8_t *nonce,
                       const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                       size_t pt_len, uint8_t *ct, uint8_t *tag)
{
    gcm_slot *s = thread_slot(kind);
    int len, rc = SESS_OK;
    if (!s)
        return SESS_ECRYPTO;
    if (pt_len > INT32_MAX || aad_len > INT32_MAX ||
        !slot_init(s, kind, true, key, nonce) ||
        (aad_len && !EVP_EncryptUpdate(s->c, NULL, &len, aad, (int)aad_len)) ||
        !EVP_EncryptUpdate(s->c, ct, &len, pt, (int)pt_len) ||
        !EVP_EncryptFinal_ex(s->c, ct + len, &len) ||
        !EVP_CIPHER_CTX_ctrl(s->c, EVP_CTRL_GCM_GET_TAG, SESS__TAG_BYTES, tag))
        rc = SESS_ECRYPTO;
    thread_put(s);
    return rc;
}

/* AES-256-GCM decrypt; SESS_ECORRUPT when the tag does not verify. */
static int gcm_decrypt(slot_kind kind, const uint8_t *key, const uint8_t *nonce,
                       const uint8_t *aad, size_t aad_len, const uint8_t *ct,
                       size_t ct_len, const uint8_t *tag, uint8_t *pt)
{
    gcm_slot *s = thread_slot(kind);
    int len, rc = SESS_OK;
    if (!s)
        return SESS_ECRYPTO;
    if (ct_len > INT32_MAX || aad_len > INT32_MAX ||
        !slot_init(s, kind, false, key, nonce) ||
        (aad_len && !EVP_DecryptUpdate(s->c, NULL, &len, aad, (int)aad_len)) ||
        !EVP_DecryptUpdate(s->c, pt, &len, ct, (int)ct_len) ||
        !EVP_CIPHER_CTX_ctrl(s->c, EVP_CTRL_GCM_SET_TAG, SESS__TAG_BYTES,
                             (void *)tag)) {
        rc = SESS_ECRYPTO;
    } else if (EVP_DecryptFinal_ex(s->c, pt + len, &len) <= 0) {
        sess__wipe(pt, ct_len);
        rc = SESS_ECORRUPT;
    }
    thread_put(s);
    return rc;
}

/* ---- sealing ------------------------------------------------------------ */

int sess__seal(const sess_keyring *kr, const uint8_t *skey, const uint8_t *pt,
               size_t pt_len, sess_store_buf *out, sess_err *err)
{
    const sess__key *k = sess__keyring_primary(kr);
    uint8_t aad[2 + SESS_KID_MAX + SESS_STORE_KEY_BYTES];
    size_t hdr, total;
    int rc;

    if (!k)
        return sess__fail(err, SESS_ENOKEY, "keyring is empty");
    hdr = 2 + k->kid_len;
    total = hdr + SESS__NONCE_BYTES + pt_len + SESS__TAG_BYTES;
    if (total > SESS_STORE_BLOB_MAX)
        return sess__fail(err, SESS_ETOOBIG, "session record too large");
    if (sess_store_buf_reserve(out, total) != SESS_OK)
        return sess__fail(err, SESS_ENOMEM, "out of memory sealing record");

    uint8_t *p = out->data;
    p[0] = SESS__SEAL_V1;
    p[1] = k->kid_len;
    memcpy(p + 2, k->kid, k->kid_len);
    if (sess__random(p + hdr, SESS__NONCE_BYTES) != SESS_OK)
        return sess__fail(err, SESS_ERANDOM, "getrandom failed");
    memcpy(aad, p, hdr);
    memcpy(aad + hdr, skey, SESS_STORE_KEY_BYTES);
    rc = gcm_encrypt(SLOT_SEAL, k->key, p + hdr, aad, hdr + SESS_STORE_KEY_BYTES, pt,
                     pt_len, p + hdr + SESS__NONCE_BYTES,
                     p + hdr + SESS__NONCE_BYTES + pt_len);
    if (rc != SESS_OK)
        return sess__fail(err, rc, "AES-256-GCM encryption failed");
    out->len = total;
    return SESS_OK;
}

int sess__open(const sess_keyring *kr, const uint8_t *skey,
               const uint8_t *blob, size_t blob_len, sess_store_buf *out,
               sess_err *err)
{
    uint8_t aad[2 + SESS_KID_MAX + SESS_STORE_KEY_BYTES];
    size_t hdr, ct_len;
    const sess__key *k;
    int rc;

    if (blob_len < 3 || blob[0] != SESS__SEAL_V1 || blob[1] == 0 ||
        blob[1] > SESS_KID_MAX)
        return sess__fail(err, SESS_ECORRUPT, "sealed record has a bad header");
    hdr = 2 + (size_t)blob[1];
    if (blob_len < hdr + SESS__NONCE_BYTES + SESS__TAG_BYTES)
        return sess__fail(err, SESS_ECORRUPT, "sealed record is truncated");
    k = sess__keyring_find(kr, (const char *)blob + 2, blob[1]);
    if (!k)
        return sess__fail(err, SESS_ENOKEY,
                          "record sealed with a key id not in the keyring");
    ct_len = blob_len - hdr - SESS__NONCE_BYTES - SESS__TAG_BYTES;
    if (sess_store_buf_reserve(out, ct_len + 1) != SESS_OK)
        return sess__fail(err, SESS_ENOMEM, "out of memory opening record");
    memcpy(aad, blob, hdr);
    memcpy(aad + hdr, skey, SESS_STORE_KEY_BYTES);
    rc = gcm_decrypt(SLOT_OPEN, k->key, blob + hdr, aad, hdr + SESS_STORE_KEY_BYTES,
                     blob + hdr + SESS__NONCE_BYTES, ct_len,
                     blob + blob_len - SESS__TAG_BYTES, out->data);
    if (rc == SESS_ECORRUPT)
        return sess__fail(err, rc, "record failed authentication");
    if (rc != SESS_OK)
        return sess__fail(err, rc, "AES-256-GCM decryption failed");
    out->len = ct_len;
    return SESS_OK;
}

/* The wrap key is SHA-256 over a label and the wrapping secret: the secret
 * is 256 random bits, so a hash is a sound KDF here. */
int sess__wrap32(const uint8_t *wrap_secret, size_t wrap_len,
                 const uint8_t *aad, size_t aad_len, const uint8_t in[32],
                 uint8_t out[SESS__WRAP_BYTES])
{
    uint8_t key[32];
    int rc;
    sess__sha256_labeled("sessiond successor wrap v1", wrap_secret, wrap_len, key);
    rc = sess__random(out, SESS__NONCE_BYTES);
    if (rc == SESS_OK)
        rc = gcm_encrypt(SLOT_ONCE, key, out, aad, aad_len, in, 32,
                         out + SESS__NONCE_BYTES, out + SESS__NONCE_BYTES + 32);
    sess__wipe(key, sizeof key);
    return rc;
}

int sess__unwrap32(const uint8_t *wrap_secret, size_t wrap_len,
                   const uint8_t *aad, size_t aad_len,
                   const uint8_t in[SESS__WRAP_BYTES], uint8_t out[32])
{
    uint8_t key[32];
    int rc;
    sess__sha256_labeled("sessiond successor wrap v1", wrap_secret, wrap_len, key);
    rc = gcm_decrypt(SLOT_ONCE, key, in, aad, aad_len, in + SESS__NONCE_BYTES, 32,
                     in + SESS__NONCE_BYTES + 32, out);
    sess__wipe(key, sizeof key);
    return rc;
}

/* ---- keyring -------------------------------------------------------------- */

const sess__key *sess__keyring_primary(const sess_keyring *kr)
{
    return kr && kr->n ? &kr->keys[0] : NULL;
}

const sess__key *sess__keyring_find(const sess_keyring *kr, const char *kid,
                                    size_t len)
{
    for (size_t i = 0; kr && i < kr->n; i++)
        if (kr->keys[i].kid_len == len && memcmp(kr->keys[i].kid, kid, len) == 0)
            return &kr->keys[i];
    return NULL;
}

size_t sess_keyring_count(const sess_keyring *kr)
{
    return kr ? kr->n : 0;
}

const char *sess_keyring_kid(const sess_keyring *kr, size_t i)
{
    return kr && i < kr->n ? kr->keys[i].kid : NULL;
}

void sess_keyring_free(sess_keyring *kr)
{
    if (!kr)
        return;
    sess__wipe(kr, sizeof *kr);
    free(kr);
    /* The threads' cipher contexts may hold these keys too. */
    sess__crypto_forget_keys();
}

/* A key of one byte repeated (all zero above all: an unset buffer, a
 * placeholder file) is not a random key; whoever sees the file's format
 * could guess it. */
static bool key_degenerate(const uint8_t *raw)
{
    uint8_t diff = 0;
    for (int i = 1; i < SESS_KEY_BYTES; i++)
        diff |= raw[i] ^ raw[0];
    return diff == 0;
}

static bool kid_valid(const char *kid, size_t len)
{
    if (len == 0 || len > SESS_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = kid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* HKDF-SHA256(ikm = file key, info = purpose) -> 32-byte subkey. */
static int derive_subkey(const uint8_t *ikm, const char *info, uint8_t *out)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];
    int ok = 0;

    EVP_KDF_free(kdf);
    if (!kctx)
        return SESS_ECRYPTO;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *)ikm, SESS_KEY_BYTES);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                  (void *)info, strlen(info));
    params[3] = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(kctx, out, SESS_KEY_BYTES, params) > 0;
    EVP_KDF_CTX_free(kctx);
    return ok ? SESS_OK : SESS_ECRYPTO;
}

static int add_key(sess_keyring *kr, const char *kid, size_t kid_len,
                   const uint8_t *raw, sess_err *err)
{
    sess__key *k;
    if (kr->n >= SESS_KEYRING_MAX)
        return sess__fail(err, SESS_ECONFIG, "more than %d keys",
                          SESS_KEYRING_MAX);
    if (!kid_valid(kid, kid_len))
        return sess__fail(err, SESS_ECONFIG,
                          "key id must be 1-%d characters of [A-Za-z0-9_-]",
                          SESS_KID_MAX);
    if (sess__keyring_find(kr, kid, kid_len))
        return sess__fail(err, SESS_ECONFIG, "duplicate key id '%.*s'",
                          (int)kid_len, kid);
    if (key_degenerate(raw))
        return sess__fail(err, SESS_ECONFIG,
                          "key '%.*s' is one byte repeated (all zero?), not a "
                          "random key", (int)kid_len, kid);
    k = &kr->keys[kr->n];
    memcpy(k->kid, kid, kid_len);
    k->kid[kid_len] = '\0';
    k->kid_len = (uint8_t)kid_len;
    if (derive_subkey(raw, "sessiond record v1", k->key) != SESS_OK)
        return sess__fail(err, SESS_ECRYPTO, "key derivation failed");
    kr->n++;
    return SESS_OK;
}

/* Newest first: greatest key id in byte order. */
static int key_cmp_desc(const void *a, const void *b)
{
    return -strcmp(((const sess__key *)a)->kid, ((const sess__key *)b)->kid);
}

int sess_keyring_from_keys(const char *const *kids,
                           const uint8_t (*keys)[SESS_KEY_BYTES], size_t n,
                           sess_keyring **out, sess_err *err)
{
    sess_keyring *kr = calloc(1, sizeof *kr);
    int rc = SESS_OK;
    if (!kr)
        return sess__fail(err, SESS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == SESS_OK; i++)
        rc = add_key(kr, kids[i], strlen(kids[i]), keys[i], err);
    if (rc == SESS_OK && kr->n == 0)
        rc = sess__fail(err, SESS_ECONFIG, "no keys given");
    if (rc != SESS_OK) {
        sess_keyring_free(kr);
        return rc;
    }
    qsort(kr->keys, kr->n, sizeof kr->keys[0], key_cmp_desc);
    *out = kr;
    return SESS_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Read one key file: permissions checked, 64 hex digits, optional newline. */
static int read_key_file(int dirfd, const char *name, uint8_t *raw, uid_t *owner,
                         sess_err *err)
{
    char text[80];
    struct stat st;
    ssize_t got;
    int fd, rc = SESS_OK;

    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sess__fail(err, SESS_ECONFIG, "cannot open key file '%s': %s",
                          name, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = sess__fail(err, SESS_ECONFIG, "key file '%s' is not a regular file",
                        name);
        goto cleanup;
    }
    *owner = st.st_uid;
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = sess__fail(err, SESS_ECONFIG,
                        "key file '%s' is accessible by group or others "
                        "(mode %03o); chmod 600 it", name,
                        (unsigned)(st.st_mode & 0777));
        goto cleanup;
    }
    got = read(fd, text, sizeof text);
    if (got < 64 || got > 66 ||
        (got > 64 && !(text[64] == '\n' || (text[64] == '\r' && got == 66 &&
                                           text[65] == '\n')))) {
        rc = sess__fail(err, SESS_ECONFIG,
                        "key file '%s' must hold 64 hex digits", name);
        goto cleanup;
    }
    for (int i = 0; i < SESS_KEY_BYTES; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            rc = sess__fail(err, SESS_ECONFIG,
                            "key file '%s' must hold 64 hex digits", name);
            goto cleanup;
        }
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
cleanup:
    sess__wipe(text, sizeof text);
    close(fd);
    return rc;
}

/* ---- key pins ------------------------------------------------------------ */

/* The fingerprint kept in "<kid>.pin": 64 hex digits of a labelled
 * SHA-256 of the key file's bytes (a hash of 256 random bits reveals
 * nothing of them) and a newline. */
static void pin_text(const uint8_t *raw, char out[66])
{
    uint8_t fp[32];
    sess__sha256_labeled("sessiond key pin v1", raw, SESS_KEY_BYTES, fp);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", fp[i]);
    out[64] = '\n';
    out[65] = '\0';
}

/* Write "<kid>.pin" in "dirfd" for "raw" unless one exists.  Best effort:
 * a read-only key directory (a mounted secret) keeps no pin, and the
 * in-process check of a reload (lib/session.c) still holds there. */
static void pin_write(int dirfd, const char *kid, const uint8_t *raw)
{
    char name[SESS_KID_MAX + sizeof SESS__PIN_SUFFIX], text[66];
    snprintf(name, sizeof name, "%s%s", kid, SESS__PIN_SUFFIX);
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    if (fd < 0)
        return;
    pin_text(raw, text);
    bool ok = write(fd, text, 65) == 65 && fsync(fd) == 0;
    close(fd);
    if (!ok)
        (void)unlinkat(dirfd, name, 0);
}

/* A key id pins its bytes: the key file of "kid" must match the pin kept
 * beside it, written when the key was first seen ("may_write": by the
 * key file's owner only, so root running sessctl never leaves a pin the
 * daemon's user cannot read).  Replacing the bytes
 * under a known id would make every session sealed with it unreadable
 * at once (and looks like a planted key): refused, naming the id. */
static int pin_check(int dirfd, const char *kid, const uint8_t *raw, bool may_write,
                     sess_err *err)
{
    char name[SESS_KID_MAX + sizeof SESS__PIN_SUFFIX], want[66], got[80];
    snprintf(name, sizeof name, "%s%s", kid, SESS__PIN_SUFFIX);
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            return sess__fail(err, SESS_ECONFIG, "cannot read %s: %s", name,
                              strerror(errno));
        if (may_write)
            pin_write(dirfd, kid, raw);
        return SESS_OK;
    }
    ssize_t n = read(fd, got, sizeof got);
    close(fd);
    pin_text(raw, want);
    if (n < 64 || !sess__ct_equal(got, want, 64))
        return sess__fail(err, SESS_ECONFIG,
                          "key '%s' no longer matches %s: a key id keeps its "
                          "bytes; give a new key a new id", kid, name);
    return SESS_OK;
}

static int mkdir_private(const char *dir, sess_err *err)
{
    if (sess__mkdir_p(dir, 0700) == 0)
        return SESS_OK;
    return sess__fail(err, SESS_ECONFIG, "cannot create key directory '%s': %s",
                      dir, strerror(errno));
}

int sess_keyring_load_dir(const char *dir, bool create_if_missing,
                          sess_keyring **out, sess_err *err)
{
    sess_keyring *kr = NULL;
    DIR *d = NULL;
    struct dirent *de;
    int rc = SESS_OK;

    d = opendir(dir);
    if (!d && errno == ENOENT && create_if_missing) {
        if ((rc = mkdir_private(dir, err)) != SESS_OK)
            return rc;
        d = opendir(dir);
    }
    if (!d)
        return sess__fail(err, SESS_ECONFIG, "cannot open key directory '%s': %s",
                          dir, strerror(errno));
    kr = calloc(1, sizeof *kr);
    if (!kr) {
        rc = sess__fail(err, SESS_ENOMEM, "out of memory");
        goto cleanup;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        uint8_t raw[SESS_KEY_BYTES];
        if (len <= 4 || strcmp(de->d_name + len - 4, ".key") != 0)
            continue;
        uid_t owner = 0;
        rc = read_key_file(dirfd(d), de->d_name, raw, &owner, err);
        if (rc == SESS_OK)
            rc = add_key(kr, de->d_name, len - 4, raw, err);
        if (rc == SESS_OK)
            rc = pin_check(dirfd(d), kr->keys[kr->n - 1].kid, raw,
                           owner == geteuid(), err);
        sess__wipe(raw, sizeof raw);
        if (rc != SESS_OK)
            goto cleanup;
    }
    if (kr->n == 0 && create_if_missing) {
        char kid[SESS_KID_MAX + 1];
        closedir(d);
        d = NULL;
        sess_keyring_free(kr);
        kr = NULL;
        if ((rc = sess_keyring_generate(dir, kid, err)) != SESS_OK)
            return rc;
        return sess_keyring_load_dir(dir, false, out, err);
    }
    if (kr->n == 0) {
        rc = sess__fail(err, SESS_ECONFIG, "no *.key files in key directory '%s'",
                        dir);
        goto cleanup;
    }
    qsort(kr->keys, kr->n, sizeof kr->keys[0], key_cmp_desc);
    *out = kr;
    kr = NULL;
cleanup:
    if (d)
        closedir(d);
    sess_keyring_free(kr);
    return rc;
}

int sess_keyring_generate(const char *dir, char *kid_out, sess_err *err)
{
    uint8_t raw[SESS_KEY_BYTES], suffix[3];
    char kid[SESS_KID_MAX + 1], path[4096], text[66], sfx[5];
    struct timespec ts;
    struct tm tm;
    int fd, rc;

    if ((rc = mkdir_private(dir, err)) != SESS_OK)
        return rc;
    if (sess__random(raw, sizeof raw) != SESS_OK ||
        sess__random(suffix, sizeof suffix) != SESS_OK)
        return sess__fail(err, SESS_ERANDOM, "getrandom failed");
    /* A time-ordered id, so the newest key is the greatest and becomes the
     * encrypting key; the random suffix keeps ids made at once apart. */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    sess__b64url_encode(suffix, sizeof suffix, sfx);
    for (char *c = sfx; *c; c++)
        if (*c == '-' || *c == '_')
            *c = 'x';
    snprintf(kid, sizeof kid, "k%04d%02d%02dT%02d%02d%02d%06ldZ-%s",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, sfx);
    if (snprintf(path, sizeof path, "%s/%s.key", dir, kid) >= (int)sizeof path)
        return sess__fail(err, SESS_EINVAL, "key directory path too long");
    for (int i = 0; i < SESS_KEY_BYTES; i++)
        snprintf(text + 2 * i, 3, "%02x", raw[i]);
    text[64] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sess__wipe(text, sizeof text);
        sess__wipe(raw, sizeof raw);
        return sess__fail(err, SESS_EIO, "cannot create key file in '%s': %s",
                          dir, strerror(errno));
    }
    rc = (write(fd, text, 65) == 65 && fsync(fd) == 0) ? SESS_OK : SESS_EIO;
    sess__wipe(text, sizeof text);
    close(fd);
    if (rc != SESS_OK) {
        sess__wipe(raw, sizeof raw);
        unlink(path);
        return sess__fail(err, rc, "cannot write key file in '%s'", dir);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        pin_write(dfd, kid, raw);
        close(dfd);
    }
    sess__wipe(raw, sizeof raw);
    if (kid_out)
        memcpy(kid_out, kid, strlen(kid) + 1);
    return SESS_OK;
}
