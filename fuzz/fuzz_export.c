/*
 * fuzz_export.c - libFuzzer target for the session export reader of
 * sessctl import (src/sessctl/migrate_format.c, docs/formats.md): any
 * bytes as a file, read in check mode and then with every record inserted
 * into a memory store, as import does.  The reader must stay within its
 * one-line buffer and never accept a record the header and keyring do not
 * vouch for.  The seed corpus was made by sessctl export with the key
 * below (fuzz/corpus/fuzz_export/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate_format.h"
#include "sess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int put(void *ctx, const sess_entry *e, size_t lineno, char *msg, size_t cap)
{
    sess_store *st = ctx;
    (void)lineno;
    (void)msg;
    (void)cap;
    (void)st->methods->insert(st, e, NULL, 0, NULL, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sess_keyring *kr;
    /* "fuzzkey": bytes 0x10..0x2f, the key the seed corpus was made with. */
    static uint8_t key[1][SESS_KEY_BYTES];
    const char *kids[] = {"fuzzkey"};
    char msg[512];
    uint64_t n = 0;
    uint8_t digest[32];
    sess_store *st = NULL;

    if (!kr) {
        for (int i = 0; i < SESS_KEY_BYTES; i++)
            key[0][i] = (uint8_t)(0x10 + i);
        if (sess_keyring_from_keys(kids, (const uint8_t (*)[SESS_KEY_BYTES])key, 1, &kr,
                                   NULL) != SESS_OK)
            abort();
    }
    if (size == 0)
        return 0;
    FILE *in = fmemopen((void *)(uintptr_t)data, size, "r");
    if (!in)
        return 0;
    if (export_read(in, kr, NULL, NULL, &n, digest, msg, sizeof msg) == EXPORT_OK &&
        sess_store_open("memory:", NULL, &st, NULL) == SESS_OK) {
        rewind(in);
        if (export_read(in, kr, put, st, &n, digest, msg, sizeof msg) != EXPORT_OK)
            abort();                  /* a file that passed once passes twice */
        sess_store_close(st);
    }
    fclose(in);
    return 0;
}
