/*
 * fuzz_record.c - libFuzzer target for the record decoder and the sealed
 * blob opener (lib/record.c, lib/crypto.c).  Records are authenticated
 * before decoding, but the decoder still must never read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sess_keyring *kr;
    static const uint8_t key[1][SESS_KEY_BYTES] = {{42}};
    const char *kids[] = {"fuzz"};
    uint8_t skey[32] = {0};
    sess_store_buf out = {0};
    sess__record r;

    if (!kr && sess_keyring_from_keys(kids, key, 1, &kr, NULL) != SESS_OK)
        abort();
    (void)sess__record_decode(data, size, &r);
    if (sess__open(kr, skey, data, size, &out, NULL) == SESS_OK)
        (void)sess__record_decode(out.data, out.len, &r);
    sess_store_buf_free(&out);
    return 0;
}
