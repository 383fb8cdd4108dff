/*
 * test_crypto.c - lib/crypto.c and lib/record.c: sealing round trips,
 * tampering, key ids, record moved to another key, the keyring directory
 * (permissions, format, newest key), successor wrapping, and record
 * encoding bounds; degenerate keys refused, a key id pinning its bytes,
 * and no copy of a freed key left in any thread's cipher context.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "record.h"
#include "testutil.h"
#include "util.h"

static sess_keyring *two_keys(void)
{
    static const uint8_t keys[2][SESS_KEY_BYTES] = {{1}, {2}};
    const char *kids[] = {"k1", "k2"};
    sess_keyring *kr;
    assert_int_equal(sess_keyring_from_keys(kids, keys, 2, &kr, NULL), SESS_OK);
    return kr;
}

static void test_seal_open_round_trip(void **state)
{
    (void)state;
    sess_keyring *kr = two_keys();
    uint8_t skey[32] = {7}, other[32] = {8};
    const char *msg = "the plaintext record";
    sess_store_buf sealed = {0}, opened = {0};
    sess_err err;

    assert_int_equal(sess__seal(kr, skey, (const uint8_t *)msg, strlen(msg), &sealed,
                                &err), SESS_OK);
    assert_int_equal(sealed.data[0], SESS__SEAL_V1);
    assert_memory_equal(sealed.data + 2, "k2", 2);    /* newest key seals */
    assert_null(memmem(sealed.data, sealed.len, msg, strlen(msg)));
    assert_int_equal(sess__open(kr, skey, sealed.data, sealed.len, &opened, &err),
                     SESS_OK);
    assert_int_equal(opened.len, strlen(msg));
    assert_memory_equal(opened.data, msg, opened.len);

    /* Under another storage key: not authentic (records cannot be moved). */
    assert_int_equal(sess__open(kr, other, sealed.data, sealed.len, &opened, &err),
                     SESS_ECORRUPT);
    /* Every single-bit flip is caught. */
    for (size_t i = 0; i < sealed.len; i++) {
        sealed.data[i] ^= 0x01;
        int rc = sess__open(kr, skey, sealed.data, sealed.len, &opened, NULL);
        assert_true(rc == SESS_ECORRUPT || rc == SESS_ENOKEY);
        sealed.data[i] ^= 0x01;
    }
    /* Truncations too. */
    for (size_t n = 0; n < sealed.len; n++)
        assert_int_not_equal(sess__open(kr, skey, sealed.data, n, &opened, NULL), SESS_OK);
    sess_store_buf_free(&sealed);
    sess_store_buf_free(&opened);
    sess_keyring_free(kr);
}

static void test_unknown_key_id(void **state)
{
    (void)state;
    sess_keyring *kr = two_keys(), *only1;
    static const uint8_t k1[1][SESS_KEY_BYTES] = {{1}};
    const char *kids[] = {"k1"};
    uint8_t skey[32] = {0};
    sess_store_buf sealed = {0}, opened = {0};
    assert_int_equal(sess_keyring_from_keys(kids, k1, 1, &only1, NULL), SESS_OK);
    assert_int_equal(sess__seal(kr, skey, (const uint8_t *)"x", 1, &sealed, NULL), SESS_OK);
    assert_int_equal(sess__open(only1, skey, sealed.data, sealed.len, &opened, NULL),
                     SESS_ENOKEY);
    sess_store_buf_free(&sealed);
    sess_store_buf_free(&opened);
    sess_keyring_free(kr);
    sess_keyring_free(only1);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static void test_keyring_directory(void **state)
{
    (void)state;
    char dir[256], path[512], kid[SESS_KID_MAX + 1], kid2[SESS_KID_MAX + 1];
    sess_keyring *kr;
    sess_err err;
    struct stat st;

    test_tmpdir(dir, sizeof dir);
    /* Empty directory without create: an error naming the problem. */
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "no *.key files"));
    assert_int_equal(sess_keyring_generate(dir, kid, &err), SESS_OK);
    snprintf(path, sizeof path, "%s/%s.key", dir, kid);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sess_keyring_generate(dir, kid2, &err), SESS_OK);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_OK);
    assert_int_equal(sess_keyring_count(kr), 2);
    assert_string_equal(sess_keyring_kid(kr, 0), kid2);   /* newest first */
    sess_keyring_free(kr);

    /* A key readable by others is refused. */
    snprintf(path, sizeof path, "%s/loose.key", dir);
    write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
               0644);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "loose.key"));
    assert_null(strstr(err.msg, "0011223344"));   /* never the key itself */
    /* Bad content is refused. */
    write_file(path, "not hex at all", 0600);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "64 hex digits"));
    unlink(path);
    test_rmdir(dir);

    /* create_if_missing makes the directory and a key. */
    test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/keys", dir);
    assert_int_equal(sess_keyring_load_dir(path, true, &kr, &err), SESS_OK);
    assert_int_equal(sess_keyring_count(kr), 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    sess_keyring_free(kr);
    test_rmdir(dir);
}

static void test_wrap(void **state)
{
    (void)state;
    const uint8_t secret[] = "an old session id of 43 characters.........";
    uint8_t aad[32] = {1}, in[32], out[32], wrapped[SESS__WRAP_BYTES];
    memset(in, 0x5a, sizeof in);
    assert_int_equal(sess__wrap32(secret, 43, aad, 32, in, wrapped), SESS_OK);
    assert_int_equal(sess__unwrap32(secret, 43, aad, 32, wrapped, out), SESS_OK);
    assert_memory_equal(in, out, 32);
    assert_int_not_equal(sess__unwrap32((const uint8_t *)"other", 5, aad, 32, wrapped,
                                        out), SESS_OK);
    aad[0] = 2;
    assert_int_not_equal(sess__unwrap32(secret, 43, aad, 32, wrapped, out), SESS_OK);
}

static void test_record_round_trip_and_bounds(void **state)
{
    (void)state;
    sess__record r, d;
    uint8_t buf[2048];
    memset(&r, 0, sizeof r);
    r.state = SESS__ACTIVE;
    r.ip_family = 4;
    r.created_at = 1;
    r.abs_expires_at = 99;
    memcpy(r.user, "user", 4);
    r.user_len = 4;
    memcpy(r.ua, "ua", 2);
    r.ua_len = 2;
    r.data = "{}";
    r.data_len = 2;
    size_t n = sess__record_size(&r);
    assert_true(n < sizeof buf);
    sess__record_encode(&r, buf);
    assert_int_equal(sess__record_decode(buf, n, &d), SESS_OK);
    assert_int_equal(d.user_len, 4);
    assert_memory_equal(d.user, "user", 4);
    assert_int_equal(d.data_len, 2);
    assert_memory_equal(d.data, "{}", 2);
    assert_int_equal(d.abs_expires_at, 99);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(sess__record_decode(buf, k, &d), SESS_ECORRUPT);
    buf[0] = 2;   /* unknown version */
    assert_int_equal(sess__record_decode(buf, n, &d), SESS_ECORRUPT);

    /* A rotation tombstone with every optional section, over IPv6. */
    r.state = SESS__ROTATED;
    r.ip_family = 6;
    memset(r.ip, 0xab, sizeof r.ip);
    r.prev_csrf_until = 77;
    memset(r.prev_csrf, 0x11, sizeof r.prev_csrf);
    r.grace_until = 88;
    memset(r.succ_key, 0x22, sizeof r.succ_key);
    memset(r.succ_wrap, 0x33, sizeof r.succ_wrap);
    size_t m = sess__record_size(&r);
    assert_true(m > n + 100);
    sess__record_encode(&r, buf);
    assert_int_equal(sess__record_decode(buf, m, &d), SESS_OK);
    assert_int_equal(d.state, SESS__ROTATED);
    assert_int_equal(d.prev_csrf_until, 77);
    assert_int_equal(d.grace_until, 88);
    assert_memory_equal(d.ip, r.ip, 16);
    assert_memory_equal(d.prev_csrf, r.prev_csrf, 32);
    assert_memory_equal(d.succ_key, r.succ_key, 32);
    assert_memory_equal(d.succ_wrap, r.succ_wrap, sizeof r.succ_wrap);
    for (size_t k = 0; k < m; k++)
        assert_int_equal(sess__record_decode(buf, k, &d), SESS_ECORRUPT);
    /* A state that disagrees with its sections is refused. */
    buf[1] = SESS__ACTIVE;
    assert_int_equal(sess__record_decode(buf, m, &d), SESS_ECORRUPT);
}

static void test_degenerate_keys_refused(void **state)
{
    (void)state;
    static const uint8_t zero[1][SESS_KEY_BYTES] = {{0}};
    uint8_t same[1][SESS_KEY_BYTES];
    const char *kids[] = {"zero"};
    sess_keyring *kr = NULL;
    sess_err err;
    char dir[256], path[512];

    assert_int_equal(sess_keyring_from_keys(kids, zero, 1, &kr, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "'zero'"));
    memset(same[0], 0xFF, SESS_KEY_BYTES);
    assert_int_equal(sess_keyring_from_keys(kids, (const uint8_t (*)[SESS_KEY_BYTES])same,
                                            1, &kr, &err), SESS_ECONFIG);

    /* From a file too, and nothing of the file in the message. */
    test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/blank.key", dir);
    write_file(path, "0000000000000000000000000000000000000000000000000000000000000000\n",
               0600);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "'blank'"));
    assert_non_null(strstr(err.msg, "not a random key"));
    test_rmdir(dir);
}

static void test_key_id_pins_its_bytes(void **state)
{
    (void)state;
    char dir[256], path[512], pin[512], kid[SESS_KID_MAX + 1];
    sess_keyring *kr = NULL;
    sess_err err;
    struct stat st;

    test_tmpdir(dir, sizeof dir);
    assert_int_equal(sess_keyring_generate(dir, kid, &err), SESS_OK);
    snprintf(pin, sizeof pin, "%s/%s.pin", dir, kid);
    assert_int_equal(stat(pin, &st), 0);              /* pinned when generated */
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_OK);
    sess_keyring_free(kr);

    /* A key first seen by the loader is pinned on that load. */
    snprintf(path, sizeof path, "%s/handmade.key", dir);
    write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
               0600);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_OK);
    sess_keyring_free(kr);
    snprintf(pin, sizeof pin, "%s/handmade.pin", dir);
    assert_int_equal(stat(pin, &st), 0);

    /* New bytes under the same id: refused, naming the id, never a key. */
    write_file(path, "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n",
               0600);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "'handmade'"));
    assert_null(strstr(err.msg, "ffeedd"));
    assert_null(strstr(err.msg, "001122"));
    /* The old bytes back: accepted again. */
    write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
               0600);
    assert_int_equal(sess_keyring_load_dir(dir, false, &kr, &err), SESS_OK);
    sess_keyring_free(kr);
    test_rmdir(dir);
}

/* A thread that seals once with "kr" and then stays alive, idle. */
typedef struct sealer {
    const sess_keyring *kr;
    test_gate gate;             /* 1 sealed, 2 may exit */
} sealer;

static void *sealer_main(void *arg)
{
    sealer *z = arg;
    uint8_t skey[SESS_STORE_KEY_BYTES] = {7};
    sess_store_buf out = {0};
    assert_int_equal(sess__seal(z->kr, skey, (const uint8_t *)"x", 1, &out, NULL), SESS_OK);
    sess_store_buf_free(&out);
    test_gate_set(&z->gate, 1);
    test_gate_wait(&z->gate, 2);
    return NULL;
}

static void test_freed_keyring_leaves_no_key_in_thread_contexts(void **state)
{
    (void)state;
    sess_keyring *kr = two_keys();
    uint8_t key[SESS_KEY_BYTES];
    sealer z = {.kr = kr, .gate = TEST_GATE_INIT};
    pthread_t th;

    memcpy(key, sess__keyring_primary(kr)->key, sizeof key);
    assert_int_equal(pthread_create(&th, NULL, sealer_main, &z), 0);
    test_gate_wait(&z.gate, 1);

    /* The idle thread's context holds the key... */
    assert_true(sess__crypto_slots_holding(key) >= 1);
    /* ...until the keyring is freed, while that thread still lives. */
    sess_keyring_free(kr);
    assert_int_equal(sess__crypto_slots_holding(key), 0);

    test_gate_set(&z.gate, 2);
    pthread_join(th, NULL);
    sess__wipe(key, sizeof key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open_round_trip),
        cmocka_unit_test(test_unknown_key_id),
        cmocka_unit_test(test_keyring_directory),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_record_round_trip_and_bounds),
        cmocka_unit_test(test_degenerate_keys_refused),
        cmocka_unit_test(test_key_id_pins_its_bytes),
        cmocka_unit_test(test_freed_keyring_leaves_no_key_in_thread_contexts),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
