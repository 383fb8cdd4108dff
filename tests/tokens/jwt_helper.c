/*
 * jwt_helper.c - a small tool for tests/tokens/interop.mjs: prints the JWK
 * Set a signing key directory publishes, and signs the claims read from
 * stdin with its current key, through the public API only (sess.h), the
 * way sessiond will.
 *
 *   jwt_helper jwks DIR [--ed25519-name]
 *   jwt_helper sign DIR [--ed25519-name] < claims.json
 *
 * Exit 0 on success, 1 on failure (the reason on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sess.h"

int main(int argc, char **argv)
{
    unsigned flags = 0;
    sess_sigkeys *keys = NULL;
    sess_err err = {0};
    json_error_t jerr;
    json_t *claims;
    char *tok = NULL;
    int rc = 1;

    if (argc < 3 || (strcmp(argv[1], "jwks") != 0 && strcmp(argv[1], "sign") != 0)) {
        fprintf(stderr, "usage: jwt_helper jwks|sign DIR [--ed25519-name]\n");
        return 2;
    }
    if (argc > 3 && strcmp(argv[3], "--ed25519-name") == 0)
        flags |= SESS_SIGKEYS_ED25519_NAME;
    if (sess_sigkeys_load_dir(argv[2], flags, 0, &keys, &err) != SESS_OK) {
        fprintf(stderr, "jwt_helper: %s\n", err.msg);
        return 1;
    }
    if (strcmp(argv[1], "jwks") == 0) {
        printf("%s\n", sess_sigkeys_jwks_json(keys, NULL));
        rc = 0;
        goto cleanup;
    }
    claims = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
    if (claims == NULL) {
        fprintf(stderr, "jwt_helper: claims: %s\n", jerr.text);
        goto cleanup;
    }
    if (sess_jwt_sign(keys, claims, NULL, &tok, &err) != SESS_OK) {
        fprintf(stderr, "jwt_helper: sign: %s\n", err.msg);
    } else {
        printf("%s\n", tok);
        rc = 0;
    }
    free(tok);
    json_decref(claims);
cleanup:
    sess_sigkeys_free(keys);
    return rc;
}
