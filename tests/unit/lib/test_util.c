/*
 * test_util.c - lib/util.c: base64url against RFC 4648 section 10 vectors
 * (in the URL-safe alphabet), strict decoding, UTF-8 validation (RFC 3629
 * section 7 examples), random bytes (also across the pool's refills and
 * after fork) and constant-time comparison.
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"

static void test_b64url_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } v[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    char out[16];
    uint8_t back[16];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].in);
        sess__b64url_encode((const uint8_t *)v[i].in, n, out);
        assert_string_equal(out, v[i].out);
        assert_int_equal(sess__b64url_decode(out, strlen(out), back, n), SESS_OK);
        assert_memory_equal(back, v[i].in, n);
    }
    /* URL-safe alphabet: 0xfb 0xff -> "-_8" */
    const uint8_t raw[] = {0xfb, 0xff};
    sess__b64url_encode(raw, 2, out);
    assert_string_equal(out, "-_8");
}

static void test_b64url_strict(void **state)
{
    (void)state;
    uint8_t out[4];
    assert_int_equal(sess__b64url_decode("Zm8=", 4, out, 2), SESS_EINVAL);  /* padding */
    assert_int_equal(sess__b64url_decode("Zm+", 3, out, 2), SESS_EINVAL);   /* '+' */
    assert_int_equal(sess__b64url_decode("Zm9", 3, out, 2), SESS_EINVAL);   /* bits */
    assert_int_equal(sess__b64url_decode("Zm8", 3, out, 3), SESS_EINVAL);   /* length */
    assert_int_equal(sess__b64url_decode("Zm8", 3, out, 2), SESS_OK);
}

/* The check-only path agrees with the decoder on random near-IDs. */
static void test_b64url_check_agrees_with_decode(void **state)
{
    (void)state;
    static const char pool[] = "AQgw-_zZ09+/=.~ \x80";
    uint8_t rnd[64], out[32];
    char s[44];
    for (int round = 0; round < 20000; round++) {
        assert_int_equal(sess__random(rnd, sizeof rnd), SESS_OK);
        size_t len = 41 + rnd[0] % 4;
        for (size_t i = 0; i < len; i++)
            s[i] = (rnd[1] & 1) ? pool[rnd[i + 2] % (sizeof pool - 1)]
                                : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789-_"[rnd[i + 2] % 64];
        assert_int_equal(sess__b64url_check(s, len, 32) == SESS_OK,
                         sess__b64url_decode(s, len, out, 32) == SESS_OK);
    }
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(sess__utf8_valid("plain", 5));
    assert_true(sess__utf8_valid("\x41\xE2\x89\xA2\xCE\x91\x2E", 7));  /* RFC 3629 */
    assert_true(sess__utf8_valid("\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", 9));
    assert_true(sess__utf8_valid("\xEF\xBB\xBF\xF0\xA3\x8E\xB4", 7));
    assert_false(sess__utf8_valid("\xC0\x80", 2));          /* overlong NUL */
    assert_false(sess__utf8_valid("\xED\xA0\x80", 3));      /* surrogate */
    assert_false(sess__utf8_valid("\xF4\x90\x80\x80", 4));  /* > U+10FFFF */
    assert_false(sess__utf8_valid("\xE2\x89", 2));          /* truncated */
    assert_false(sess__utf8_valid("a\0b", 3));              /* NUL */
    assert_false(sess__utf8_valid("\x80", 1));              /* lone continuation */
}

static void test_random_and_ct_equal(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(sess__random(a, sizeof a), SESS_OK);
    assert_int_equal(sess__random(b, sizeof b), SESS_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_false(sess__ct_equal(a, b, sizeof a));
    memcpy(b, a, sizeof a);
    assert_true(sess__ct_equal(a, b, sizeof a));
    sess__wipe(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++)
        assert_int_equal(a[i], 0);
}

/* The per-thread pool: draws across a refill stay distinct, large draws
 * bypass it, and a forked child never repeats the parent's next bytes. */
static void test_random_pool_and_fork(void **state)
{
    (void)state;
    uint8_t prev[16] = {0}, cur[16], big[1024];
    for (int i = 0; i < 1000; i++) {              /* ~4 refills */
        assert_int_equal(sess__random(cur, sizeof cur), SESS_OK);
        assert_memory_not_equal(prev, cur, sizeof cur);
        memcpy(prev, cur, sizeof cur);
    }
    assert_int_equal(sess__random(big, sizeof big), SESS_OK);
    assert_memory_not_equal(big, big + 512, 32);

    int fds[2];
    uint8_t parent[32], child[32];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(sess__random(parent, 8), SESS_OK);   /* pool armed */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t c[32];
        int ok = sess__random(c, sizeof c) == SESS_OK &&
                 write(fds[1], c, sizeof c) == (ssize_t)sizeof c;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(sess__random(parent, sizeof parent), SESS_OK);
    assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(parent, child, sizeof parent);
    close(fds[0]);
    close(fds[1]);
}

static void test_strerror_table(void **state)
{
    (void)state;
    assert_string_equal(sess_result_name(SESS_OK), "OK");
    assert_string_equal(sess_result_name(SESS_NOTFOUND), "NOTFOUND");
    assert_string_equal(sess_strerror(SESS_EIO), "store I/O error");
    assert_string_equal(sess_result_name(12345), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648_vectors),
        cmocka_unit_test(test_b64url_strict),
        cmocka_unit_test(test_b64url_check_agrees_with_decode),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_random_and_ct_equal),
        cmocka_unit_test(test_random_pool_and_fork),
        cmocka_unit_test(test_strerror_table),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
