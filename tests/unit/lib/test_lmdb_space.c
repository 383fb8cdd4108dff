/*
 * test_lmdb_space.c - the LMDB store on a full disk (lib/store_lmdb.c).
 * With room on the disk the store writes through its map (MDB_WRITEMAP)
 * and keeps disk blocks reserved ahead of use: filled up on a tmpfs
 * mounted for the test, it refuses inserts with SESS_EFULL (the process
 * lives: a write into a page the disk cannot back would have been
 * SIGBUS), what was stored still reads, removals and the purge still
 * work, and once space is freed inserts work again.  On a disk with less
 * free space than the reserve wants, the store writes with pwrite and a
 * full disk is SESS_EFULL too.  Needs root (mount): skips, saying so,
 * without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define BLOB_LEN 300
#define NOW 1800000000u

typedef struct space {
    char dir[256];
    bool mounted;
    sess_store *st;
    uint64_t seq;
} space;

/* Mount a tmpfs of "size" (mount(8) syntax) on a fresh directory and
 * open an LMDB store in it; false when mounting is not allowed here. */
static bool space_open(space *s, const char *size)
{
    char opts[64], url[300];
    sess_store_options so;
    sess_err err;

    memset(s, 0, sizeof *s);
    test_tmpdir(s->dir, sizeof s->dir);
    snprintf(opts, sizeof opts, "size=%s", size);
    if (mount("tmpfs", s->dir, "tmpfs", 0, opts) != 0) {
        printf("# skipped: cannot mount a tmpfs (%s): needs root\n", strerror(errno));
        test_rmdir(s->dir);
        return false;
    }
    s->mounted = true;
    memset(&so, 0, sizeof so);
    snprintf(url, sizeof url, "lmdb:%s/store", s->dir);
    assert_int_equal(sess_store_open(url, &so, &s->st, &err), SESS_OK);
    return true;
}

static void space_close(space *s)
{
    if (s->st)
        sess_store_close(s->st);
    if (s->mounted)
        assert_int_equal(umount2(s->dir, MNT_DETACH), 0);
    test_rmdir(s->dir);
}

static void entry_of(sess_entry *e, uint8_t *blob, uint64_t i)
{
    test_store_entry(e, blob, BLOB_LEN, i, NOW);
}

static int insert_next(space *s, sess_err *err)
{
    sess_entry e;
    uint8_t blob[BLOB_LEN];
    entry_of(&e, blob, s->seq);
    int rc = s->st->methods->insert(s->st, &e, NULL, NOW, NULL, err);
    if (rc == SESS_OK)
        s->seq++;
    return rc;
}

/* Fill the file system with a file until it refuses (ENOSPC). */
static void fill_disk(const char *dir, const char *name)
{
    char path[300];
    static char chunk[1 << 16];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    memset(chunk, 0xEE, sizeof chunk);
    while (write(fd, chunk, sizeof chunk) > 0)
        ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

static void unfill_disk(const char *dir, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

/* Insert until the store refuses; that must be SESS_EFULL, named as such,
 * and the process must still be here. */
static uint64_t insert_until_full(space *s)
{
    sess_err err;
    int rc;
    uint64_t start = s->seq;
    while ((rc = insert_next(s, &err)) == SESS_OK)
        assert_true(s->seq - start < 5000000); /* it must end */
    assert_int_equal(rc, SESS_EFULL);
    assert_non_null(strstr(err.msg, "no space left"));
    return s->seq - start;
}

static void check_reads(space *s, uint64_t i)
{
    sess_entry e, got;
    uint8_t blob[BLOB_LEN];
    sess_store_buf buf = {0};
    sess_err err;
    entry_of(&e, blob, i);
    assert_int_equal(s->st->methods->get(s->st, e.key, NOW, &got, &buf, &err), SESS_OK);
    assert_int_equal(got.blob_len, BLOB_LEN);
    assert_memory_equal(got.blob, blob, BLOB_LEN);
    sess_store_buf_free(&buf);
}

static void test_full_disk_refuses_inserts_and_keeps_the_rest(void **state)
{
    (void)state;
    space s;
    sess_err err;
    uint64_t n;
    size_t removed = 0;

    if (!space_open(&s, "300m"))
        skip();
    assert_int_equal(insert_next(&s, &err), SESS_OK);
    assert_int_equal(insert_next(&s, &err), SESS_OK);
    fill_disk(s.dir, "filler");
    n = insert_until_full(&s);
    printf("# %llu inserts after the disk filled, then SESS_EFULL\n", (unsigned long long)n);
    assert_true(n > 0);              /* the reserve was there */

    /* Nothing was lost, and the refused insert left nothing behind. */
    check_reads(&s, 0);
    check_reads(&s, s.seq - 1);
    uint64_t count = 0;
    assert_int_equal(s.st->methods->count(s.st, NOW, &count, &err), SESS_OK);
    assert_int_equal(count, s.seq);

    /* Removals and the purge still work on the full disk. */
    sess_entry e;
    uint8_t blob[BLOB_LEN];
    entry_of(&e, blob, 1);
    assert_int_equal(s.st->methods->remove(s.st, e.key, NULL, &err), SESS_OK);
    assert_int_equal(s.st->methods->purge(s.st, NOW + 120, 5000, &removed, &err), SESS_OK);
    assert_int_equal(removed, 5000);

    /* Space back: inserts work again. */
    unfill_disk(s.dir, "filler");
    assert_int_equal(insert_next(&s, &err), SESS_OK);
    check_reads(&s, s.seq - 1);
    space_close(&s);
}

static void test_small_disk_writes_without_the_map(void **state)
{
    (void)state;
    space s;
    sess_err err;

    /* Less free space than the reserve wants: pwrite, as LMDB by default. */
    if (!space_open(&s, "24m"))
        skip();
    assert_int_equal(insert_next(&s, &err), SESS_OK);
    fill_disk(s.dir, "filler");
    (void)insert_until_full(&s);
    check_reads(&s, 0);
    unfill_disk(s.dir, "filler");
    assert_int_equal(insert_next(&s, &err), SESS_OK);
    space_close(&s);
}

/* In pwrite mode LMDB turns a short write (the disk filled up part way
 * through a commit's writev) into EIO; the store must still say that the
 * disk is full.  Two free pages and a record that needs more make the
 * short write. */
static void test_short_write_on_full_disk_says_no_space(void **state)
{
    (void)state;
    space s;
    sess_err err;
    char path[300];
    static uint8_t big[40000];

    if (!space_open(&s, "24m"))
        skip();
    assert_int_equal(insert_next(&s, &err), SESS_OK);
    fill_disk(s.dir, "filler");
    snprintf(path, sizeof path, "%s/filler", s.dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 2 * 4096), 0);

    sess_entry e;
    uint8_t blob[BLOB_LEN];
    entry_of(&e, blob, 1000);
    memset(big, 0x5A, sizeof big);
    e.blob = big;
    e.blob_len = sizeof big;
    int rc = s.st->methods->insert(s.st, &e, NULL, NOW, NULL, &err);
    printf("# insert on a nearly full disk: %s (%s)\n", sess_result_name(rc), err.msg);
    assert_int_equal(rc, SESS_EFULL);
    assert_non_null(strstr(err.msg, "no space left"));
    check_reads(&s, 0);
    unfill_disk(s.dir, "filler");
    assert_int_equal(s.st->methods->insert(s.st, &e, NULL, NOW, NULL, &err), SESS_OK);
    space_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk_refuses_inserts_and_keeps_the_rest),
        cmocka_unit_test(test_small_disk_writes_without_the_map),
        cmocka_unit_test(test_short_write_on_full_disk_says_no_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
