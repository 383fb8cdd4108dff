/*
 * test_lmdb_damage.c - the LMDB store (lib/store_lmdb.c) on a damaged
 * file.  A data.mdb shorter than the last page its meta page names is
 * refused at open with a message naming both sizes (it would have been
 * SIGBUS on the first read), as is a 0-byte data.mdb where a store
 * existed; with SESS_DAMAGE_RESET the damaged file is set aside and an
 * empty store opens.  One damaged page (a session whose value points at a
 * page that does not exist) fails the read of that session only: the
 * thread's held snapshot is not left poisoned for the intact sessions,
 * and ping (/readyz) fails while reads fail and recovers after a
 * successful one.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define NOW 1800000000u
#define N 40
#define BIG 3000               /* > half a page: an overflow page of its own */

static sess_durability durability = SESS_DURABILITY_PROCESS;

static sess_store *open_store(const char *dir, sess_store_damage on_damage, int *rc,
                              sess_err *err)
{
    char url[300];
    sess_store *st = NULL;
    sess_store_options opt = {.map_size = 4u << 20, .on_damage = on_damage,
                              .durability = durability};
    snprintf(url, sizeof url, "lmdb:%s", dir);
    *rc = sess_store_open(url, &opt, &st, err);
    return st;
}

static void fill(const char *dir, size_t blob_len)
{
    static uint8_t blob[BIG];
    sess_err err;
    int rc;
    sess_store *st = open_store(dir, SESS_DAMAGE_REFUSE, &rc, &err);
    assert_int_equal(rc, SESS_OK);
    for (uint64_t i = 0; i < N; i++) {
        sess_entry e;
        test_store_entry(&e, blob, blob_len, i, NOW);
        assert_int_equal(st->methods->insert(st, &e, NULL, NOW, NULL, &err), SESS_OK);
    }
    sess_store_close(st);
}

static int get(sess_store *st, uint64_t i, sess_err *err)
{
    static uint8_t blob[BIG];
    sess_entry e, got;
    sess_store_buf buf = {0};
    test_store_entry(&e, blob, BIG, i, NOW);
    int rc = st->methods->get(st, e.key, NOW, &got, &buf, err);
    sess_store_buf_free(&buf);
    return rc;
}

static void path_of(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static bool has_set_aside(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        found |= strncmp(de->d_name, "data.mdb.damaged-", 17) == 0;
    closedir(d);
    return found;
}

/* Both write modes: through the map (MDB_WRITEMAP, which would grow the
 * file back with zero pages) and with pwrite (durability = fsync, where
 * reading a page past the end of the file was SIGBUS). */
static void test_truncated_file_refused_with_sizes(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
    durability = mode ? SESS_DURABILITY_FSYNC : SESS_DURABILITY_PROCESS;
    char dir[256], path[300];
    sess_err err;
    int rc;

    test_tmpdir(dir, sizeof dir);
    fill(dir, BIG);
    path_of(path, sizeof path, dir, "data.mdb");
    assert_int_equal(truncate(path, 3 * 4096), 0);

    assert_null(open_store(dir, SESS_DAMAGE_REFUSE, &rc, &err));
    assert_int_equal(rc, SESS_ECORRUPT);
    printf("# %s\n", err.msg);
    assert_non_null(strstr(err.msg, "data.mdb"));
    assert_non_null(strstr(err.msg, "12288 bytes"));
    assert_non_null(strstr(err.msg, "truncated"));
    assert_non_null(strstr(err.msg, "store.on_damage"));

    /* Told to, the store sets the file aside and starts empty. */
    sess_store *st = open_store(dir, SESS_DAMAGE_RESET, &rc, &err);
    assert_int_equal(rc, SESS_OK);
    assert_true(has_set_aside(dir));
    assert_int_equal(get(st, 1, &err), SESS_NOTFOUND);
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    sess_store_close(st);
    test_rmdir(dir);
    }
    durability = SESS_DURABILITY_PROCESS;
}

static void test_empty_file_where_a_store_was_refused(void **state)
{
    (void)state;
    char dir[256], path[300];
    sess_err err;
    int rc;

    test_tmpdir(dir, sizeof dir);
    fill(dir, 100);
    path_of(path, sizeof path, dir, "data.mdb");
    assert_int_equal(truncate(path, 0), 0);
    assert_null(open_store(dir, SESS_DAMAGE_REFUSE, &rc, &err));
    assert_int_equal(rc, SESS_ECORRUPT);
    assert_non_null(strstr(err.msg, "0 bytes"));
    sess_store *st = open_store(dir, SESS_DAMAGE_RESET, &rc, &err);
    assert_int_equal(rc, SESS_OK);
    sess_store_close(st);
    test_rmdir(dir);

    /* An empty data.mdb alone (an open that never got further) is new. */
    test_tmpdir(dir, sizeof dir);
    path_of(path, sizeof path, dir, "data.mdb");
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    st = open_store(dir, SESS_DAMAGE_REFUSE, &rc, &err);
    assert_int_equal(rc, SESS_OK);
    sess_store_close(st);
    test_rmdir(dir);
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, SESS_STORE_KEY_BYTES);
}

/* Point the overflow page of entry "victim" (its sessions row: a 32-byte
 * key with F_BIGDATA) past the end of the file, in every copy of the
 * leaf in data.mdb: LMDB's MDB_node is lo, hi, flags, ksize (16 bits
 * each, little-endian here), then the key, then the page number. */
static int damage_entry(const char *dir, uint64_t victim)
{
    static uint8_t blob[BIG];
    char path[300];
    sess_entry e;
    struct stat sb;
    int patched = 0;

    test_store_entry(&e, blob, BIG, victim, NOW);
    path_of(path, sizeof path, dir, "data.mdb");
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    uint8_t *buf = malloc((size_t)sb.st_size);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
    for (off_t o = 8; o + 40 <= sb.st_size; o++) {
        if (memcmp(buf + o, e.key, SESS_STORE_KEY_BYTES) != 0)
            continue;
        unsigned flags = buf[o - 4] | buf[o - 3] << 8, ksize = buf[o - 2] | buf[o - 1] << 8;
        if (ksize != SESS_STORE_KEY_BYTES || !(flags & 0x01))
            continue;
        static const uint8_t far[8] = {0xF0, 0xFF, 0xFF, 0x0F, 0, 0, 0, 0};
        assert_int_equal(pwrite(fd, far, sizeof far, o + SESS_STORE_KEY_BYTES), 8);
        patched++;
    }
    free(buf);
    close(fd);
    return patched;
}

static void test_damaged_page_fails_only_its_session(void **state)
{
    (void)state;
    static uint8_t blob[BIG];
    uint8_t keys[N][SESS_STORE_KEY_BYTES];
    char dir[256];
    sess_err err;
    int rc;

    test_tmpdir(dir, sizeof dir);
    fill(dir, BIG);
    /* A victim in the middle of the key order: the read probe (first and
     * last rows) does not touch it, so the store opens. */
    for (uint64_t i = 0; i < N; i++) {
        sess_entry e;
        test_store_entry(&e, blob, BIG, i, NOW);
        memcpy(keys[i], e.key, SESS_STORE_KEY_BYTES);
    }
    qsort(keys, N, SESS_STORE_KEY_BYTES, key_cmp);
    uint64_t victim = N, a = N, b = N;
    for (uint64_t i = 0; i < N; i++) {
        sess_entry e;
        test_store_entry(&e, blob, BIG, i, NOW);
        if (memcmp(e.key, keys[N / 2], SESS_STORE_KEY_BYTES) == 0)
            victim = i;
    }
    a = (victim + 1) % N;
    b = (victim + 2) % N;
    assert_true(damage_entry(dir, victim) >= 1);

    sess_store *st = open_store(dir, SESS_DAMAGE_REFUSE, &rc, &err);
    assert_int_equal(rc, SESS_OK);
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    assert_int_equal(get(st, a, &err), SESS_OK);           /* a held snapshot now */
    rc = get(st, victim, &err);
    printf("# the damaged session: %s (%s)\n", sess_result_name(rc), err.msg);
    assert_int_equal(rc, SESS_EIO);                        /* a store error: 503 */
    assert_non_null(strstr(err.msg, "damaged"));
    /* Reads are failing: ping says so... */
    assert_int_not_equal(st->methods->ping(st, &err), SESS_OK);
    /* ...but the intact sessions still read, with no commit in between
     * (the failed snapshot was dropped, not kept), and that clears it. */
    assert_int_equal(get(st, b, &err), SESS_OK);
    assert_int_equal(get(st, a, &err), SESS_OK);
    assert_int_equal(st->methods->ping(st, &err), SESS_OK);
    /* Again and again: never poisoned. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get(st, victim, &err), SESS_EIO);
        assert_int_equal(get(st, a, &err), SESS_OK);
    }
    sess_store_close(st);
    test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_file_refused_with_sizes),
        cmocka_unit_test(test_empty_file_where_a_store_was_refused),
        cmocka_unit_test(test_damaged_page_fails_only_its_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
