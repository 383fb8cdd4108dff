/*
 * jwtbench.c - sess_jwt_verify per core for each algorithm sessiond signs
 * with (EdDSA, ES256, RS256), next to its floor: OpenSSL's own
 * EVP_DigestVerify of the same signature over the same signing input with
 * the same key (what any verifier must pay at least).  The gap is the
 * library's work: splitting, strict base64url, two JSON parses with
 * duplicate detection, the header and claim checks, the r||s to DER
 * conversion for ES256.  Driven by `make bench`; usable on its own:
 *
 *   jwtbench [--seconds S] [--alg EdDSA|ES256|RS256]
 *
 * Keys are generated in a temporary directory with sess_sigkeys_generate
 * and the token is made by sess_jwt_sign with claims shaped like
 * sessiond's access tokens; the verifier sees the published JWKS through
 * sess_jwks_parse, as a service would.
 *
 * Output: one JSON object per algorithm on stdout: ops per CPU second of
 * the library and of the floor, and their ratio.  Exit 0 unless setup
 * failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sess.h"
#include "bench_util.h"

#define NOW 1800000000

static double opt_seconds = 3.0;
static const char *opt_alg = NULL;

/* base64url to bytes through OpenSSL's base64 (bench code: the library's
 * strict decoder is what is measured, this only prepares the floor). */
static size_t b64url_to_bytes(const char *in, size_t n, unsigned char *out)
{
    char buf[2048];
    size_t m = 0;
    int len;

    for (size_t i = 0; i < n && m < sizeof buf - 4; i++)
        buf[m++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (m % 4 != 0)
        buf[m++] = '=';
    len = EVP_DecodeBlock(out, (unsigned char *)buf, (int)m);
    if (len < 0)
        return 0;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    for (size_t i = n; i % 4 != 0; i++)
        len--;
    return (size_t)len;
}

static double run_verify(const sess_jwks *set, const char *tok, size_t len,
                         unsigned alg, double *ops)
{
    sess_jwt_verify_opts o;
    double t0, c0, n = 0;

    sess_jwt_verify_opts_init(&o);
    o.algs = alg;
    o.audience = "api.example.com";
    o.issuer = "https://sessiond.example";
    o.now = NOW;
    t0 = bench_mono();
    c0 = bench_cpu_seconds();
    do {
        for (int i = 0; i < 64; i++)
            if (sess_jwt_verify(set, tok, len, &o, NULL, NULL, NULL) != SESS_OK) {
                fprintf(stderr, "jwtbench: verify failed\n");
                exit(1);
            }
        n += 64;
    } while (bench_mono() - t0 < opt_seconds);
    *ops = n;
    return bench_cpu_seconds() - c0;
}

static double run_floor(EVP_PKEY *pkey, const EVP_MD *md, const unsigned char *in,
                        size_t in_len, const unsigned char *sig, size_t sig_len,
                        double *ops)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    double t0 = bench_mono(), c0 = bench_cpu_seconds(), n = 0;

    do {
        for (int i = 0; i < 64; i++) {
            if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) != 1 ||
                EVP_DigestVerify(ctx, sig, sig_len, in, in_len) != 1) {
                fprintf(stderr, "jwtbench: floor verify failed\n");
                exit(1);
            }
        }
        n += 64;
    } while (bench_mono() - t0 < opt_seconds);
    EVP_MD_CTX_free(ctx);
    *ops = n;
    return bench_cpu_seconds() - c0;
}

static int bench_one(sess_sigkey_type type, const char *name, unsigned bit)
{
    char dir[] = "/tmp/jwtbench-XXXXXX", path[256], kid[SESS_KID_MAX + 1];
    char *tok = NULL, *dot;
    sess_sigkeys *keys = NULL;
    sess_jwks *set = NULL;
    unsigned char sig[1024], der[160];
    size_t sig_len, jlen;
    const char *jwks;
    EVP_PKEY *pkey;
    FILE *f;
    double ops, cpu, fops, fcpu;
    json_t *claims;

    if (mkdtemp(dir) == NULL ||
        sess_sigkeys_generate(dir, type, NOW, kid, NULL) != SESS_OK ||
        sess_sigkeys_load_dir(dir, 0, NOW, &keys, NULL) != SESS_OK)
        return 1;
    claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:[s,s]}",
                       "iss", "https://sessiond.example", "sub", "user-12345",
                       "aud", "api.example.com", "exp", (json_int_t)NOW + 300,
                       "iat", (json_int_t)NOW, "nbf", (json_int_t)NOW,
                       "auth_time", (json_int_t)NOW - 600, "jti",
                       "b3f1c2d4e5a6978812345678", "sid", "Hx0mB3v9Qk2rT8yLw1cN5a",
                       "acr", "urn:sessiond:acr:password", "roles", "admin",
                       "editor");
    if (sess_jwt_sign(keys, claims, NULL, &tok, NULL) != SESS_OK)
        return 1;
    json_decref(claims);
    jwks = sess_sigkeys_jwks_json(keys, &jlen);
    if (sess_jwks_parse(jwks, jlen, &set, NULL) != SESS_OK)
        return 1;

    snprintf(path, sizeof path, "%s/%s.pem", dir, kid);
    f = fopen(path, "r");
    pkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (pkey == NULL)
        return 1;
    dot = strrchr(tok, '.');
    sig_len = b64url_to_bytes(dot + 1, strlen(dot + 1), sig);
    if (type == SESS_SIGKEY_P256) {
        ECDSA_SIG *es = ECDSA_SIG_new();
        unsigned char *p = der;
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        sig_len = (size_t)i2d_ECDSA_SIG(es, &p);
        memcpy(sig, der, sig_len);
        ECDSA_SIG_free(es);
    }

    cpu = run_verify(set, tok, strlen(tok), bit, &ops);
    fcpu = run_floor(pkey, type == SESS_SIGKEY_ED25519 ? NULL : EVP_sha256(),
                     (const unsigned char *)tok, (size_t)(dot - tok), sig, sig_len,
                     &fops);
    printf("{\"alg\": \"%s\", \"token_bytes\": %zu, \"verify_per_core\": %.0f, "
           "\"floor_per_core\": %.0f, \"ratio\": %.3f}\n", name, strlen(tok),
           ops / cpu, fops / fcpu, (ops / cpu) / (fops / fcpu));
    fflush(stdout);

    EVP_PKEY_free(pkey);
    sess_jwks_free(set);
    sess_sigkeys_free(keys);
    free(tok);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0)
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        sess_sigkey_type type;
        const char *name;
        unsigned bit;
    } algs[] = {{SESS_SIGKEY_ED25519, "EdDSA", SESS_JWT_EDDSA},
                {SESS_SIGKEY_P256, "ES256", SESS_JWT_ES256},
                {SESS_SIGKEY_RSA, "RS256", SESS_JWT_RS256}};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            opt_seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--alg") == 0 && i + 1 < argc)
            opt_alg = argv[++i];
        else {
            fprintf(stderr, "usage: jwtbench [--seconds S] [--alg EdDSA|ES256|RS256]\n");
            return 2;
        }
    }
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        if (opt_alg != NULL && strcmp(opt_alg, algs[i].name) != 0)
            continue;
        if (bench_one(algs[i].type, algs[i].name, algs[i].bit) != 0) {
            fprintf(stderr, "jwtbench: setup for %s failed\n", algs[i].name);
            return 1;
        }
    }
    return 0;
}
