/*
 * migrate_format.c - the session export format (docs/formats.md): the
 * writer's encodings and the reader that checks a file line by line with
 * bounded memory: one line of at most LINE_MAX_BYTES (a longer one is an
 * error, never an allocation), parsed by jansson with duplicate keys
 * refused, every field's type and exact length checked, each record's key
 * id looked up in the header and in the importer's keyring by
 * fingerprint, and the end line's count and SHA-256 over every byte before
 * it.  Fuzzed by fuzz/fuzz_export.c.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "migrate_format.h"
#include "../common/hex.h"
#include "sess/store_migrate.h"

char *export_b64(const uint8_t *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

/* Decode base64 "s" (RFC 4648 section 4, padded) into "out" ("cap"
 * bytes); the decoded length, or -1 when malformed or too long. */
long export_unb64(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);
    if (n % 4 != 0 || n / 4 * 3 > cap + 2)
        return -1;
    if (n == 0)
        return 0;
    size_t pad = (s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    uint8_t *tmp = malloc(n / 4 * 3 + 1);
    if (!tmp)
        return -1;
    int r = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    long len = r < 0 ? -1 : (long)((size_t)r - pad);
    if (len >= 0 && (size_t)len <= cap)
        memcpy(out, tmp, (size_t)len);
    else
        len = -1;
    OPENSSL_cleanse(tmp, n / 4 * 3 + 1);
    free(tmp);
    return len;
}

typedef struct import_key {
    char kid[SESS_KID_MAX + 1];
    int state;                    /* 0 same key here, 1 missing, 2 differs */
} import_key;

typedef struct importer {
    FILE *in;
    char *line;                   /* LINE_MAX_BYTES + 1 */
    size_t lineno;
    EVP_MD_CTX *md;
    import_key keys[64];
    size_t nkeys;
    const sess_keyring *kr;
} importer;

/* Read one line (without '\n') into imp->line; 1 a line, 0 end of file,
 * -1 too long or unterminated (a truncated file). */
static int read_line(importer *imp, size_t *len)
{
    size_t n = 0;
    int c;
    while ((c = getc(imp->in)) != EOF && c != '\n') {
        if (n >= LINE_MAX_BYTES)
            return -1;
        imp->line[n++] = (char)c;
    }
    if (c == EOF && n == 0)
        return 0;
    if (c == EOF)
        return -1;                /* the last line lacks its newline */
    imp->line[n] = '\0';
    *len = n;
    imp->lineno++;
    return 1;
}

/* One record line: the entry (blob into "blob"), or a message. */
static const char *parse_record(importer *imp, json_t *o, sess_entry *e, uint8_t *blob)
{
    const char *k, *h, *u, *b;
    json_int_t c, x, f;
    char kid[SESS_KID_MAX + 1];
    json_error_t jerr;
    if (json_unpack_ex(o, &jerr, JSON_STRICT, "{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "k", &k,
                       "h", &h, "u", &u, "c", &c, "e", &x, "f", &f, "b", &b) != 0)
        return "a record line lacks a field, has an unknown one or a wrong type";
    memset(e, 0, sizeof *e);
    if (export_unb64(k, e->key, sizeof e->key) != SESS_STORE_KEY_BYTES ||
        export_unb64(h, e->handle, sizeof e->handle) != SESS_STORE_HANDLE_BYTES ||
        export_unb64(u, e->user, sizeof e->user) != SESS_STORE_USER_BYTES)
        return "a key, handle or user field has the wrong length or is not base64";
    long bl = export_unb64(b, blob, SESS_STORE_BLOB_MAX);
    if (bl <= 0)
        return "a record field is empty, too long or not base64";
    if (c < 0 || x <= 0 || f < 0 || (f & ~(json_int_t)SESS_ENTRY_UNINDEXED) != 0)
        return "a time or flags field is out of range";
    if (sess_store_is_state_key(e->key))
        return "a record uses a reserved key";
    e->created_at = (uint64_t)c;
    e->expires_at = (uint64_t)x;
    e->flags = (uint32_t)f;
    e->blob = blob;
    e->blob_len = (size_t)bl;
    if (sess_sealed_kid(blob, (size_t)bl, kid, sizeof kid) != SESS_OK)
        return "a record is not a sealed record";
    for (size_t i = 0; i < imp->nkeys; i++) {
        if (strcmp(imp->keys[i].kid, kid) != 0)
            continue;
        if (imp->keys[i].state == 1)
            return "a record is sealed with a key this keyring does not have "
                   "(give --dir the key directory the export was made with)";
        if (imp->keys[i].state == 2)
            return "a record is sealed with a key whose id is here but whose bytes "
                   "differ from the exporter's";
        return NULL;
    }
    return "a record is sealed with a key the header does not list";
}

static const char *parse_header(importer *imp, json_t *o)
{
    const char *fmt, *src;
    json_int_t ver, created;
    json_t *keys;
    json_error_t jerr;
    if (json_unpack_ex(o, &jerr, 0, "{s:s, s:I}", "format", &fmt, "version", &ver) != 0 ||
        strcmp(fmt, EXPORT_FORMAT) != 0)
        return "not a sessiond export (first line lacks \"format\": \"" EXPORT_FORMAT "\")";
    if (ver != EXPORT_VERSION)
        return "export format version not supported by this sessctl (it reads version 1)";
    if (json_unpack_ex(o, &jerr, JSON_STRICT, "{s:s, s:I, s:I, s:s, s:o}", "format", &fmt,
                       "version", &ver, "created_at", &created, "source", &src, "keys",
                       &keys) != 0 ||
        !json_is_array(keys))
        return "the header lacks a field, has an unknown one or a wrong type";
    if (json_array_size(keys) == 0 || json_array_size(keys) > sizeof imp->keys / sizeof imp->keys[0])
        return "the header lists no keys or too many";
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const char *kid, *fph;
        if (json_unpack_ex(json_array_get(keys, i), &jerr, JSON_STRICT, "{s:s, s:s}", "kid",
                           &kid, "fingerprint", &fph) != 0 ||
            strlen(kid) == 0 || strlen(kid) > SESS_KID_MAX || strlen(fph) != 64)
            return "a key in the header is malformed";
        import_key *k = &imp->keys[imp->nkeys++];
        snprintf(k->kid, sizeof k->kid, "%s", kid);
        uint8_t mine[SESS_KEY_FINGERPRINT_BYTES];
        char mh[65];
        if (sess_keyring_fingerprint(imp->kr, kid, mine) != SESS_OK) {
            k->state = 1;
        } else {
            hex_encode(mine, sizeof mine, mh);
            /* Fingerprints are public (one-way); a plain compare is fine. */
            k->state = strcmp(mh, fph) == 0 ? 0 : 2;
        }
    }
    return NULL;
}

int export_read(FILE *in, const sess_keyring *kr, export_entry_fn fn, void *ctx,
                uint64_t *records_out, uint8_t digest[32], char *msg, size_t cap)
{
    importer imp;
    size_t len = 0;
    uint64_t records = 0;
    bool ended = false;
    int r, rc = EXPORT_BAD;

    memset(&imp, 0, sizeof imp);
    imp.in = in;
    imp.kr = kr;
    imp.line = malloc(LINE_MAX_BYTES + 1);
    imp.md = EVP_MD_CTX_new();
    uint8_t *blob = malloc(SESS_STORE_BLOB_MAX);
    snprintf(msg, cap, "out of memory");
    if (!imp.line || !imp.md || !blob || EVP_DigestInit_ex(imp.md, EVP_sha256(), NULL) != 1)
        goto done;
#define BAD(why)                                                   \
    do {                                                           \
        snprintf(msg, cap, "line %zu: %s", imp.lineno, why);       \
        goto done;                                                 \
    } while (0)
    while ((r = read_line(&imp, &len)) == 1) {
        json_error_t jerr;
        if (ended)
            BAD("data after the end line");
        json_t *o = json_loadb(imp.line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o || !json_is_object(o)) {
            json_decref(o);
            BAD("not a JSON object (damaged file?)");
        }
        if (imp.lineno == 1) {
            const char *why = parse_header(&imp, o);
            json_decref(o);
            if (why)
                BAD(why);
        } else if (json_object_get(o, "end")) {
            unsigned char md[32];
            unsigned int mdn = 0;
            char mh[65];
            const char *sha;
            json_int_t n;
            int t;
            EVP_DigestFinal_ex(imp.md, md, &mdn);
            hex_encode(md, 32, mh);
            memcpy(digest, md, 32);
            int ok = json_unpack_ex(o, &jerr, JSON_STRICT, "{s:b, s:I, s:s}", "end", &t,
                                    "records", &n, "sha256", &sha) == 0 && t;
            bool count_ok = ok && n >= 0 && (uint64_t)n == records;
            bool sum_ok = ok && strcmp(sha, mh) == 0;
            json_decref(o);
            if (!ok)
                BAD("the end line is malformed");
            if (!count_ok)
                BAD("the end line's record count does not match the file (lines lost?)");
            if (!sum_ok)
                BAD("the file's SHA-256 does not match its end line (damaged or edited)");
            ended = true;
            continue;
        } else {
            sess_entry e;
            const char *why = parse_record(&imp, o, &e, blob);
            json_decref(o);
            if (why)
                BAD(why);
            records++;
            if (fn && fn(ctx, &e, imp.lineno, msg, cap) != 0) {
                rc = EXPORT_STOPPED;
                goto done;
            }
        }
        if (EVP_DigestUpdate(imp.md, imp.line, len) != 1 ||
            EVP_DigestUpdate(imp.md, "\n", 1) != 1)
            BAD("SHA-256 failed");
    }
    if (r < 0)
        BAD(imp.lineno ? "the file ends inside a line (truncated) or a line is too long"
                       : "the first line is unterminated or too long");
    if (imp.lineno == 0)
        BAD("the file is empty");
    if (!ended)
        BAD("the file is truncated (no end line)");
    if (ferror(imp.in))
        BAD("read error");
#undef BAD
    *records_out = records;
    rc = EXPORT_OK;
done:
    if (blob) {
        OPENSSL_cleanse(blob, SESS_STORE_BLOB_MAX);
        free(blob);
    }
    if (imp.line) {
        OPENSSL_cleanse(imp.line, LINE_MAX_BYTES + 1);
        free(imp.line);
    }
    EVP_MD_CTX_free(imp.md);
    return rc;
}
