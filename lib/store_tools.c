/*
 * store_tools.c - what the store tools (sessctl migrate, export, import,
 * rekey; docs/migration.md, docs/formats.md) need from the library beyond
 * the store interface: the key id a sealed record names, key
 * fingerprints, re-sealing under the newest key, and the progress entry a
 * walk keeps in the store it writes.
 *
 * Records stay sealed: sess_sealed_kid reads the clear header only, and
 * sess_reseal, the one function here that opens a record, keeps the
 * plaintext in a buffer it wipes before returning.  Nothing here sees a
 * session ID: stores hold SHA-256 of IDs, so an export or a backfill
 * cannot be replayed as cookies.
 *
 * The progress entry.  One per kind, under a reserved storage key (a
 * labelled SHA-256 of a constant: finding a session ID that hashes to it
 * is a SHA-256 preimage), flagged SESS_ENTRY_UNINDEXED so no handle or
 * user index and no session count sees it.  Its blob is not a sealed
 * record: if the session layer were ever handed it, opening it would fail
 * (a damaged record, never a session).  Layout, big-endian, fixed size:
 *   "SPRG" | u8 version (1) | u8 kind | u8 done | u8 0 |
 *   u64 started_at, updated_at, total, scanned, copied, skipped,
 *       removed, failed | 32 source | u32 cursor.len | u32 cursor.done |
 *   SESS_STORE_CURSOR_BYTES cursor.pos
 * Decoding checks the magic, version, kind and exact length.
 */
#include <string.h>

#include "crypto.h"
#include "sess/store_migrate.h"
#include "util.h"

#define PROGRESS_MAGIC "SPRG"
#define PROGRESS_VERSION 1
#define PROGRESS_LEN (8 + 8 * 8 + 32 + 4 + 4 + SESS_STORE_CURSOR_BYTES)
#define PROGRESS_TTL (30u * 86400u)

int sess_sealed_kid(const uint8_t *blob, size_t len, char *kid, size_t cap)
{
    /* crypto.h: u8 format | u8 kid_len | kid | nonce | ciphertext | tag */
    if (!blob || !kid || cap < SESS_KID_MAX + 1 || len < 2 || blob[0] != SESS__SEAL_V1 ||
        blob[1] == 0 || blob[1] > SESS_KID_MAX ||
        len < 2u + blob[1] + SESS__NONCE_BYTES + SESS__TAG_BYTES)
        return SESS_ECORRUPT;
    memcpy(kid, blob + 2, blob[1]);
    kid[blob[1]] = '\0';
    for (size_t i = 0; i < blob[1]; i++)
        if ((unsigned char)kid[i] < 0x21 || (unsigned char)kid[i] > 0x7e)
            return SESS_ECORRUPT; /* kids are printable: no terminal escapes */
    return SESS_OK;
}

int sess_keyring_fingerprint(const sess_keyring *kr, const char *kid,
                             uint8_t out[SESS_KEY_FINGERPRINT_BYTES])
{
    if (!kr || !kid || !out)
        return SESS_EINVAL;
    const sess__key *k = sess__keyring_find(kr, kid, strlen(kid));
    if (!k)
        return SESS_NOTFOUND;
    sess__sha256_labeled("sessiond key fingerprint v1", k->key, sizeof k->key, out);
    return SESS_OK;
}

int sess_reseal(const sess_keyring *kr, const uint8_t *key, const uint8_t *blob,
                size_t len, sess_store_buf *out, sess_err *err)
{
    sess_store_buf pt = {0};
    if (!kr || !key || !blob || !out)
        return sess__fail(err, SESS_EINVAL, "reseal: missing argument");
    int rc = sess__open(kr, key, blob, len, &pt, err);
    if (rc == SESS_OK)
        rc = sess__seal(kr, key, pt.data, pt.len, out, err);
    sess_store_buf_free(&pt);   /* wipes the plaintext */
    return rc;
}

static void state_key(sess_progress_kind kind, uint8_t out[SESS_STORE_KEY_BYTES])
{
    uint8_t k = (uint8_t)kind;
    sess__sha256_labeled("sessiond tool state v1", &k, 1, out);
}

bool sess_store_is_state_key(const uint8_t key[SESS_STORE_KEY_BYTES])
{
    static const sess_progress_kind kinds[] = {SESS_PROGRESS_MIGRATE, SESS_PROGRESS_REKEY};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        uint8_t k[SESS_STORE_KEY_BYTES];
        state_key(kinds[i], k);
        if (memcmp(k, key, sizeof k) == 0)
            return true;
    }
    return false;
}

static void encode_progress(const sess_progress *p, uint8_t out[PROGRESS_LEN])
{
    const uint64_t v[8] = {p->started_at, p->updated_at, p->total, p->scanned,
                           p->copied,     p->skipped,    p->removed, p->failed};
    memcpy(out, PROGRESS_MAGIC, 4);
    out[4] = PROGRESS_VERSION;
    out[5] = (uint8_t)p->kind;
    out[6] = p->done ? 1 : 0;
    out[7] = 0;
    for (size_t i = 0; i < 8; i++)
        sess__put_be64(out + 8 + 8 * i, v[i]);
    memcpy(out + 72, p->source, 32);
    uint32_t len = p->cursor.len > SESS_STORE_CURSOR_BYTES ? 0 : p->cursor.len;
    sess__put_be64(out + 104, (uint64_t)len << 32 | (p->cursor.done ? 1u : 0u));
    memcpy(out + 112, p->cursor.pos, SESS_STORE_CURSOR_BYTES);
}

static int decode_progress(const uint8_t *in, size_t n, sess_progress_kind kind,
                           sess_progress *p)
{
    if (n != PROGRESS_LEN || memcmp(in, PROGRESS_MAGIC, 4) != 0 ||
        in[4] != PROGRESS_VERSION || in[5] != (uint8_t)kind || in[6] > 1)
        return SESS_ECORRUPT;
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->done = in[6];
    uint64_t *v[8] = {&p->started_at, &p->updated_at, &p->total, &p->scanned,
                      &p->copied,     &p->skipped,    &p->removed, &p->failed};
    for (size_t i = 0; i < 8; i++)
        *v[i] = sess__get_be64(in + 8 + 8 * i);
    memcpy(p->source, in + 72, 32);
    uint64_t c = sess__get_be64(in + 104);
    p->cursor.len = (uint32_t)(c >> 32);
    p->cursor.done = (uint32_t)(c & 1u);
    if (p->cursor.len > SESS_STORE_CURSOR_BYTES)
        return SESS_ECORRUPT;
    memcpy(p->cursor.pos, in + 112, SESS_STORE_CURSOR_BYTES);
    return SESS_OK;
}

int sess_progress_load(sess_store *st, sess_progress_kind kind, uint64_t now,
                       sess_progress *out, sess_err *err)
{
    uint8_t key[SESS_STORE_KEY_BYTES];
    sess_store_buf buf = {0};
    sess_entry e;
    if (!st || !out)
        return sess__fail(err, SESS_EINVAL, "progress: missing argument");
    state_key(kind, key);
    int rc = st->methods->get(st, key, now, &e, &buf, err);
    if (rc == SESS_OK && decode_progress(e.blob, e.blob_len, kind, out) != SESS_OK)
        rc = sess__fail(err, SESS_ECORRUPT, "progress entry in the store is malformed");
    sess_store_buf_free(&buf);
    return rc;
}

int sess_progress_save(sess_store *st, const sess_progress *p, uint64_t now,
                       sess_err *err)
{
    uint8_t blob[PROGRESS_LEN];
    sess_entry e;
    if (!st || !p || (p->kind != SESS_PROGRESS_MIGRATE && p->kind != SESS_PROGRESS_REKEY))
        return sess__fail(err, SESS_EINVAL, "progress: bad argument");
    memset(&e, 0, sizeof e);
    state_key((sess_progress_kind)p->kind, e.key);
    /* No user; the key's bytes stand in, so that a sharded store finds
     * key and "user" on one shard (sess/store.h, route). */
    memcpy(e.user, e.key, SESS_STORE_USER_BYTES);
    e.created_at = 0;
    e.expires_at = now + PROGRESS_TTL;
    e.flags = SESS_ENTRY_UNINDEXED;
    encode_progress(p, blob);
    e.blob = blob;
    e.blob_len = sizeof blob;
    /* Last writer wins: one tool run owns the entry; a CAS against what
     * is there keeps two runs from interleaving half-written states. */
    for (int attempt = 0; attempt < 3; attempt++) {
        sess_store_buf buf = {0};
        sess_entry cur;
        int rc = st->methods->get(st, e.key, now, &cur, &buf, NULL);
        if (rc == SESS_OK)
            rc = st->methods->update(st, &e, cur.blob, cur.blob_len, now, err);
        else if (rc == SESS_NOTFOUND)
            rc = st->methods->insert(st, &e, NULL, now, NULL, err);
        sess_store_buf_free(&buf);
        if (rc != SESS_CONFLICT && rc != SESS_EXISTS && rc != SESS_NOTFOUND)
            return rc;
    }
    return sess__fail(err, SESS_CONFLICT, "progress: entry changed by another run");
}
