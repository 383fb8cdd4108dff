/*
 * test_audit_random.c - the statistics of sessctl audit's id-randomness
 * check (src/sessctl/audit_random.c) on samples whose nature we know:
 * IDs from the CSPRNG pass (hex, base64url, PHP's base32 alphabet), a
 * counter, a clock-based ID, IDs with a fixed prefix and IDs with biased
 * bits fail, and the framework wrappers are unwrapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "audit.h"

#define N 300

static char **alloc_ids(size_t n)
{
    char **ids = calloc(n, sizeof *ids);
    assert_non_null(ids);
    return ids;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static char *random_id(const char *alphabet, size_t len)
{
    size_t a = strlen(alphabet);
    unsigned char r[512];
    char *s = malloc(len + 1);
    assert_non_null(s);
    assert_int_equal(RAND_bytes(r, (int)len), 1);
    for (size_t i = 0; i < len; i++)
        s[i] = alphabet[r[i] % a];     /* a divides 256 for these alphabets */
    s[len] = '\0';
    return s;
}

static audit_random *analyse(char **ids, size_t n, time_t now)
{
    audit_random *r = calloc(1, sizeof *r);
    assert_non_null(r);
    audit_random_analyse(ids, n, now, r);
    return r;
}

static bool fails(const audit_random *r)
{
    char why[1024];
    bool f = audit_random_verdict(r, why, sizeof why);
    if (f)
        printf("# verdict: %s\n", why);
    return f;
}

static void csprng_hex_passes(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    for (size_t i = 0; i < N; i++)
        ids[i] = random_id("0123456789abcdef", 32);
    audit_random *r = analyse(ids, N, time(NULL));
    assert_int_equal(r->alphabet_size, 16);
    assert_int_equal(r->bits_per_char, 4);
    assert_true(r->nominal_bits == 128.0);
    assert_true(r->fips_blocks >= 1);
    assert_false(r->counter_like);
    assert_false(r->clock_like);
    assert_true(r->effective_bits > 110);
    assert_false(fails(r));
    free(r);
    free_ids(ids, N);
}

static void csprng_base64url_passes_with_pad_bits(void **state)
{
    (void)state;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char **ids = alloc_ids(N);
    /* 32 random bytes as 43 characters: the last carries 4 zero bits,
     * which must count as constant, not as failing FIPS. */
    for (size_t i = 0; i < N; i++) {
        ids[i] = random_id(b64, 43);
        ids[i][42] = b64[(strchr(b64, ids[i][42]) - b64) & 0x30];
    }
    audit_random *r = analyse(ids, N, time(NULL));
    assert_int_equal(r->alphabet_size, 64);
    assert_int_equal(r->bits_constant, 4);
    assert_true(r->effective_bits > 230);
    assert_false(fails(r));
    free(r);
    free_ids(ids, N);
}

static void php_alphabet_recognised(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    for (size_t i = 0; i < N; i++)
        ids[i] = random_id("0123456789abcdefghijklmnopqrstuv", 26);
    audit_random *r = analyse(ids, N, time(NULL));
    assert_int_equal(r->alphabet_size, 32);
    assert_int_equal(r->bits_per_char, 5);
    assert_true(r->nominal_bits == 130.0);
    assert_false(fails(r));
    const char *fmt;
    bool self;
    audit_random_part(ids[0], &fmt, &self);
    assert_string_equal(fmt, "PHP session ID");
    free(r);
    free_ids(ids, N);
}

static void counter_fails(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    for (size_t i = 0; i < N; i++) {
        ids[i] = malloc(33);
        snprintf(ids[i], 33, "%032zx", (size_t)0x5eed0000u + i * 3);
    }
    audit_random *r = analyse(ids, N, time(NULL));
    assert_true(r->counter_like);
    assert_true(r->effective_bits < 16);
    assert_true(r->shared_prefix >= 26);
    assert_true(fails(r));
    free(r);
    free_ids(ids, N);
}

static void clock_based_fails(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    time_t now = time(NULL);
    /* Milliseconds since the epoch (13 digits) and 6 random digits, as
     * home-made IDs often are. */
    for (size_t i = 0; i < N; i++) {
        unsigned char rb[4];
        assert_int_equal(RAND_bytes(rb, 4), 1);
        ids[i] = malloc(32);
        snprintf(ids[i], 32, "%013lld%06u", (long long)now * 1000 + (long long)i * 7,
                 (unsigned)(rb[0] | rb[1] << 8 | rb[2] << 16) % 1000000u);
    }
    audit_random *r = analyse(ids, N, now);
    assert_true(r->clock_like);
    assert_int_equal(r->clock_offset, 0);
    assert_true(r->effective_bits < 64);
    assert_true(fails(r));
    free(r);
    free_ids(ids, N);
}

static void biased_bits_fail(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    /* 128 random bits, but the top bit of every byte is 1 three times in
     * four (a home-made generator's bias). */
    for (size_t i = 0; i < N; i++) {
        unsigned char b[16], c[16];
        assert_int_equal(RAND_bytes(b, 16), 1);
        assert_int_equal(RAND_bytes(c, 16), 1);
        ids[i] = malloc(33);
        for (int k = 0; k < 16; k++) {
            unsigned v = (b[k] & 0x7f) | ((c[k] & 3) ? 0x80 : 0);
            snprintf(ids[i] + 2 * k, 3, "%02x", v);
        }
    }
    audit_random *r = analyse(ids, N, time(NULL));
    assert_true(r->bits_biased >= 8);
    assert_true(fails(r));
    free(r);
    free_ids(ids, N);
}

static void short_random_id_is_random_but_short(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    for (size_t i = 0; i < N; i++)
        ids[i] = random_id("0123456789abcdef", 12);
    audit_random *r = analyse(ids, N, time(NULL));
    assert_true(r->nominal_bits == 48.0);
    assert_true(fails(r));   /* effective entropy below 64 */
    free(r);
    free_ids(ids, N);
}

static void decimal_ids_use_bignum(void **state)
{
    (void)state;
    char **ids = alloc_ids(N);
    for (size_t i = 0; i < N; i++) {
        unsigned char r[40];
        assert_int_equal(RAND_bytes(r, 40), 1);
        ids[i] = malloc(41);
        /* 40 decimal digits, each from a byte below 250 (unbiased). */
        for (int k = 0; k < 40; k++) {
            while (r[k] >= 250)
                assert_int_equal(RAND_bytes(&r[k], 1), 1);
            ids[i][k] = (char)('0' + r[k] % 10);
        }
        ids[i][40] = '\0';
    }
    audit_random *r = analyse(ids, N, time(NULL));
    assert_int_equal(r->alphabet_size, 10);
    assert_int_equal(r->bits_per_char, 0);
    assert_true(r->nominal_bits > 132 && r->nominal_bits < 133);
    assert_false(r->clock_like);
    assert_false(fails(r));
    free(r);
    free_ids(ids, N);
}

static void wrappers_unwrapped(void **state)
{
    (void)state;
    const char *fmt;
    bool self;
    const char *p = audit_random_part("s%3AabcdefghijklmnopqrstuvwxyzABCDEF.Zm9vYmFyYmF6", &fmt, &self);
    assert_string_equal(p, "abcdefghijklmnopqrstuvwxyzABCDEF");
    assert_string_equal(fmt, "express-session (s:ID.signature)");
    assert_false(self);
    audit_random_part("eyJ1c2VyIjoiYWxpY2UifQ.ZzYxNw.c2lnbmF0dXJlc2lnbmF0dXJl", &fmt, &self);
    assert_true(self);
    assert_non_null(strstr(fmt, "itsdangerous"));
    audit_random_part("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", &fmt, &self);
    assert_true(self);
    assert_non_null(strstr(fmt, "JWT"));
    audit_random_part("QmFzZTY0RGF0YQ%3D%3D--0123456789abcdef0123456789abcdef01234567", &fmt, &self);
    assert_true(self);
    assert_non_null(strstr(fmt, "Rails"));
    /* A random base64url ID with "--" in it is no Rails cookie (the
     * regression: it was cut at the dashes and scored as 10 characters). */
    p = audit_random_part("Tq2h6P1wVQ--0oE3mP8bE1yXo1w9H5cQ2a7zqKpL0Zs", &fmt, &self);
    assert_string_equal(fmt, "plain");
    assert_string_equal(p, "Tq2h6P1wVQ--0oE3mP8bE1yXo1w9H5cQ2a7zqKpL0Zs");
    p = audit_random_part("Tq2h6P1wVQ4n0oE3mP8bE1yXo1w9H5cQ2a7zqKpL0Zs", &fmt, &self);
    assert_string_equal(fmt, "plain");
    assert_false(self);
}

static void mask_never_shows_the_id(void **state)
{
    (void)state;
    char out[128];
    const char *id = "Tq2h6P1wVQ4n0oE3mP8bE1yXo1w9H5cQ2a7zqKpL0Zs";
    audit_mask(id, out, sizeof out);
    assert_null(strstr(out, "Tq2h6P"));
    assert_non_null(strstr(out, "Tq2h..."));
    assert_non_null(strstr(out, "43 chars"));
    assert_non_null(strstr(out, "sha256:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csprng_hex_passes),
        cmocka_unit_test(csprng_base64url_passes_with_pad_bits),
        cmocka_unit_test(php_alphabet_recognised),
        cmocka_unit_test(counter_fails),
        cmocka_unit_test(clock_based_fails),
        cmocka_unit_test(biased_bits_fail),
        cmocka_unit_test(short_random_id_is_random_but_short),
        cmocka_unit_test(decimal_ids_use_bignum),
        cmocka_unit_test(wrappers_unwrapped),
        cmocka_unit_test(mask_never_shows_the_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
