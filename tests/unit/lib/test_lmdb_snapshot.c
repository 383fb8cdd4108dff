/*
 * test_lmdb_snapshot.c - the LMDB store's held read snapshots
 * (lib/store_lmdb.c): a read keeps its snapshot for the next one while
 * nothing commits, so these tests check the two things that makes risky.
 * A held snapshot must never hide a commit, from this process or another
 * (a session destroyed elsewhere must not validate here); and a held
 * snapshot that a commit made stale must be let go soon, or it would pin
 * the pages later commits free and the file would grow.  "Another
 * process" is this program run again (/proc/self/exe) in a child role;
 * the reader table is read from outside as well (mdb_reader_list).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "sess/store.h"
#include "testutil.h"

#define BLOB_LEN 64
#define NOW 1800000000u

extern char **environ;

static void entry_of(sess_entry *e, uint8_t *blob, uint64_t i)
{
    test_store_entry(e, blob, BLOB_LEN, i, NOW);
}

static sess_store *open_store(const char *dir)
{
    char url[300];
    sess_store *st = NULL;
    sess_err err;
    snprintf(url, sizeof url, "lmdb:%s", dir);
    if (sess_store_open(url, NULL, &st, &err) != SESS_OK) {
        fprintf(stderr, "open %s: %s\n", url, err.msg);
        return NULL;
    }
    return st;
}

static int put(sess_store *st, uint64_t i)
{
    sess_entry e;
    uint8_t blob[BLOB_LEN];
    sess_err err;
    entry_of(&e, blob, i);
    return st->methods->insert(st, &e, NULL, NOW, NULL, &err);
}

static int drop(sess_store *st, uint64_t i)
{
    sess_entry e;
    uint8_t blob[BLOB_LEN];
    sess_err err;
    entry_of(&e, blob, i);
    return st->methods->remove(st, e.key, NULL, &err);
}

static int get(sess_store *st, uint64_t i)
{
    sess_entry e, got;
    uint8_t blob[BLOB_LEN];
    sess_store_buf buf = {0};
    sess_err err;
    entry_of(&e, blob, i);
    int rc = st->methods->get(st, e.key, NOW, &got, &buf, &err);
    sess_store_buf_free(&buf);
    return rc;
}

/* ---- child roles ------------------------------------------------------------ */

/* "write DIR ADD DROP": insert entry ADD, remove entry DROP (-1: none). */
static int child_write(const char *dir, long add, long del)
{
    sess_store *st = open_store(dir);
    int rc = st && put(st, (uint64_t)add) == SESS_OK &&
             (del < 0 || drop(st, (uint64_t)del) == SESS_OK) ? 0 : 1;
    sess_store_close(st);
    return rc;
}

typedef struct reader_count {
    int pid, holding;
} reader_count;

static int count_reader(const char *line, void *ctx)
{
    reader_count *rc = ctx;
    int pid;
    size_t tid;
    char txnid[64];
    if (sscanf(line, "%d %zx %63s", &pid, &tid, txnid) == 3 && pid == rc->pid &&
        strcmp(txnid, "-") != 0)
        rc->holding++;
    return 0;
}

/* "readers DIR PID": exit status = 10 + how many reader slots of PID hold
 * a snapshot (a reset slot shows its transaction id as "-"); below 10 is a
 * failure. */
static int child_readers(const char *dir, int pid)
{
    MDB_env *env;
    reader_count rc = {pid, 0};
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 4) != 0 ||
        mdb_env_set_maxreaders(env, 1024) != 0 ||
        mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600) != 0)
        return 1;
    mdb_reader_list(env, count_reader, &rc);
    mdb_env_close(env);
    return rc.holding < 100 ? 10 + rc.holding : 1;
}

/* This program's path, read at start: under valgrind /proc/self/exe
 * itself would start valgrind's tool. */
static char self_path[4096];

/* Run this program in a child role; its exit status. */
static int run_child(const char *role, const char *a, const char *b, const char *c)
{
    char *argv[] = {self_path, (char *)role, (char *)a, (char *)b, (char *)c, NULL};
    pid_t pid;
    int status;
    assert_int_equal(posix_spawn(&pid, self_path, NULL, NULL, argv, environ), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void other_process_writes(const char *dir, long add, long del)
{
    char sa[32], sd[32];
    snprintf(sa, sizeof sa, "%ld", add);
    snprintf(sd, sizeof sd, "%ld", del);
    assert_int_equal(run_child("write", dir, sa, sd), 0);
}

static int my_held_snapshots(const char *dir)
{
    char spid[32];
    snprintf(spid, sizeof spid, "%d", (int)getpid());
    int status = run_child("readers", dir, spid, "-");
    assert_true(status >= 10);
    return status - 10;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- tests ------------------------------------------------------------------ */

/* Each test: an empty store in a fresh directory. */
typedef struct fixture {
    char dir[256];
    sess_store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    test_tmpdir(f->dir, sizeof f->dir);
    f->st = open_store(f->dir);
    *state = f;
    return f->st ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sess_store_close(f->st);
    test_rmdir(f->dir);
    free(f);
    return 0;
}

/* The mechanism is there (else the tests below prove nothing): after a
 * read, this process keeps one snapshot. */
static void test_a_read_keeps_its_snapshot(void **state)
{
    fixture *f = *state;
    sess_store *st = f->st;
    const char *dir = f->dir;
    assert_int_equal(put(st, 1), SESS_OK);
    assert_int_equal(get(st, 1), SESS_OK);
    assert_int_equal(my_held_snapshots(dir), 1);
}

/* Another process destroys and creates between two reads here: the
 * second read sees both at once, over many rounds. */
static void test_held_snapshot_never_hides_another_process(void **state)
{
    fixture *f = *state;
    sess_store *st = f->st;
    const char *dir = f->dir;
    assert_int_equal(put(st, 0), SESS_OK);
    for (long i = 0; i < 20; i++) {
        assert_int_equal(get(st, (uint64_t)i), SESS_OK);      /* held now */
        assert_int_equal(get(st, (uint64_t)i + 1), SESS_NOTFOUND);
        other_process_writes(dir, i + 1, i);                  /* add i+1, drop i */
        assert_int_equal(get(st, (uint64_t)i), SESS_NOTFOUND);
        assert_int_equal(get(st, (uint64_t)i + 1), SESS_OK);
    }
}

/* This process's own writes, from another thread, between two reads:
 * one commit each time (a second write would let the stale snapshot go
 * before it is read, hiding the case). */
typedef struct writer_arg {
    sess_store *st;
    uint64_t i;
    bool add;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *w = p;
    int rc = w->add ? put(w->st, w->i) : drop(w->st, w->i);
    return rc == SESS_OK ? NULL : (void *)1;
}

static void write_from_thread(sess_store *st, uint64_t i, bool add)
{
    pthread_t t;
    void *res;
    writer_arg w = {st, i, add};
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    assert_int_equal(pthread_join(t, &res), 0);
    assert_null(res);
}

static void test_held_snapshot_never_hides_this_process(void **state)
{
    sess_store *st = ((fixture *)*state)->st;
    assert_int_equal(put(st, 0), SESS_OK);
    for (uint64_t i = 0; i < 50; i++) {
        assert_int_equal(get(st, i), SESS_OK);                /* held now */
        write_from_thread(st, i, false);
        assert_int_equal(get(st, i), SESS_NOTFOUND);
        assert_int_equal(get(st, i + 1), SESS_NOTFOUND);      /* held now */
        write_from_thread(st, i + 1, true);
        assert_int_equal(get(st, i + 1), SESS_OK);
    }
}

/* A snapshot made stale by another process's commit is let go by the
 * reaper while this process reads nothing more. */
static void test_stale_snapshot_let_go_after_other_process_writes(void **state)
{
    fixture *f = *state;
    sess_store *st = f->st;
    const char *dir = f->dir;
    int held = -1;
    assert_int_equal(put(st, 1), SESS_OK);
    assert_int_equal(get(st, 1), SESS_OK);
    other_process_writes(dir, 2, -1);
    for (int waited = 0; waited < 2000; waited += 50) {
        if ((held = my_held_snapshots(dir)) == 0)
            break;
        sleep_ms(50);
    }
    assert_int_equal(held, 0);
    /* And a read afterwards sees the other process's entry. */
    assert_int_equal(get(st, 2), SESS_OK);
}

/* A thread that read once and then waits: this process's next writes
 * let its stale snapshot go. */
typedef struct idle_arg {
    sess_store *st;
    sem_t read_done, may_end;
    int rc;
} idle_arg;

static void *idle_reader(void *p)
{
    idle_arg *a = p;
    a->rc = get(a->st, 1);
    sem_post(&a->read_done);
    sem_wait(&a->may_end);
    return NULL;
}

static void test_stale_snapshot_let_go_after_own_writes(void **state)
{
    fixture *f = *state;
    const char *dir = f->dir;
    idle_arg a;
    pthread_t t;
    int held = -1;
    a.st = f->st;
    assert_int_equal(put(a.st, 1), SESS_OK);
    sem_init(&a.read_done, 0, 0);
    sem_init(&a.may_end, 0, 0);
    assert_int_equal(pthread_create(&t, NULL, idle_reader, &a), 0);
    sem_wait(&a.read_done);
    assert_int_equal(a.rc, SESS_OK);
    assert_int_equal(my_held_snapshots(dir), 1);     /* the idle thread's */
    assert_int_equal(put(a.st, 2), SESS_OK);         /* stale from here */
    assert_int_equal(put(a.st, 3), SESS_OK);         /* lets it go first */
    for (int waited = 0; waited < 2000; waited += 50) {
        if ((held = my_held_snapshots(dir)) == 0)
            break;
        sleep_ms(50);
    }
    assert_int_equal(held, 0);
    sem_post(&a.may_end);
    pthread_join(t, NULL);
    sem_destroy(&a.read_done);
    sem_destroy(&a.may_end);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "write") == 0)
        return child_write(argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
    if (argc == 5 && strcmp(argv[1], "readers") == 0)
        return child_readers(argv[2], atoi(argv[3]));
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n <= 0)
        return 1;
    self_path[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_read_keeps_its_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_snapshot_never_hides_another_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_snapshot_never_hides_this_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_snapshot_let_go_after_other_process_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_snapshot_let_go_after_own_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
