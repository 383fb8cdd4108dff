/*
 * fuzz_jwt.c - libFuzzer target for the JWS / JWT verifier and the JWK Set
 * parser (lib/jwt.c, lib/jwk.c).  Each input is tried three ways:
 *   - as a JWK Set document (sess_jwks_parse);
 *   - as a token against a fixed key set (Ed25519, P-256, RSA), every
 *     algorithm pinned, so the header, claims and signature paths run;
 *   - split at the first NUL byte into a JWK Set and a token verified
 *     against it (the seeds are real pairs, so mutations reach the
 *     signature checks of every key type).
 * Invariants checked: a refused token gives a reason inside the table, an
 * accepted one gives a claims object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "jwt_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sess_jwks *fixed;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const uint8_t seed[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                     13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    EVP_PKEY *keys[3];
    const char *kids[3] = {"ed", "ec", "rsa"};
    (void)argc;
    (void)argv;
    keys[0] = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    keys[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    keys[2] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (sess__jwks_from_pkeys(keys, kids, 3, &fixed, NULL) != SESS_OK)
        abort();
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(keys[i]);
    return 0;
}

static void verify(const sess_jwks *set, const char *tok, size_t len)
{
    sess_jwt_verify_opts o;
    sess_jwt_reason why = SESS_JWT_R_OK;
    json_t *claims = NULL;
    int rc;

    sess_jwt_verify_opts_init(&o);
    o.algs = ~0u;
    o.skip_audience = true;
    o.typ = NULL;
    o.now = 1800000000;
    o.require_exp = false;
    rc = sess_jwt_verify(set, tok, len, &o, &claims, &why, NULL);
    if (rc == SESS_OK && !json_is_object(claims))
        abort();
    if (rc == SESS_REJECTED && (why == SESS_JWT_R_OK || why >= SESS_JWT_R__COUNT))
        abort();
    if (rc != SESS_OK && claims != NULL)
        abort();
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    sess_jwks *set = NULL;

    if (sess_jwks_parse(s, size, &set, NULL) == SESS_OK)
        sess_jwks_free(set);
    verify(fixed, s, size);
    if (nul != NULL) {
        size_t jlen = (size_t)(nul - data);
        set = NULL;
        if (sess_jwks_parse(s, jlen, &set, NULL) == SESS_OK) {
            verify(set, s + jlen + 1, size - jlen - 1);
            sess_jwks_free(set);
        }
    }
    return 0;
}
