/*
 * test_session_faults.c - the session lifecycle of lib/session.c when the
 * LMDB store (lib/store_lmdb.c) cannot write: its map is kept small, so it
 * fills up for real (MDB_MAP_FULL, SESS_EFULL) with no root needed.
 * Validation must degrade, not fail: a session due for rotation is served
 * unrotated (no successor is issued, since none was stored), counted, and
 * rotated by a later request once the store writes again (shown on a
 * small tmpfs filled up, as root; skipped, saying so, without).  Privilege
 * changes (regenerate, elevate) must fail closed: the caller gets the
 * error and the old session is left as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "crypto.h"
#include "testutil.h"
#include "util.h"

static const sess_client cl = {"203.0.113.7", "Mozilla/5.0 test"};

typedef struct full_ctx {
    char dir[256];
    sess_ctx *ctx;
    test_clock clk;
    unsigned fillers;
} full_ctx;

/* A context on an LMDB store of a 1 MiB map (the least the daemon
 * accepts) with rotation every 300 s. */
static void full_open(full_ctx *f)
{
    static const uint8_t key[1][SESS_KEY_BYTES] = {{9, 8, 7, 6, 5, 4, 3, 2, 1}};
    const char *kids[] = {"faults-key-1"};
    sess_keyring *kr = NULL;
    sess_store *st = NULL;
    sess_store_options opt = {.map_size = 1u << 20};
    sess_config cfg;
    sess_err err;
    char url[300];

    memset(f, 0, sizeof *f);
    test_tmpdir(f->dir, sizeof f->dir);
    snprintf(url, sizeof url, "lmdb:%s", f->dir);
    sess_config_defaults(&cfg);
    cfg.max_per_user = 0;
    cfg.record_cache_entries = 0;
    assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, &err), SESS_OK);
    assert_int_equal(sess_store_open(url, &opt, &st, &err), SESS_OK);
    assert_int_equal(sess_ctx_new(&cfg, st, kr, &f->ctx, &err), SESS_OK);
    f->clk.now = 1800000000u;
    sess_ctx_set_clock(f->ctx, test_clock_read, &f->clk);
}

static void full_close(full_ctx *f)
{
    sess_ctx_free(f->ctx);
    test_rmdir(f->dir);
}

static int create(full_ctx *f, const char *user, sess_issued *out)
{
    static const char data[] = "{\"pad\":\"................................................"
                               "..............................................\"}";
    sess_create_req req = {.user_id = user, .user_id_len = strlen(user),
                           .client = cl, .data = data, .data_len = sizeof data - 1};
    sess_err err;
    return sess_create(f->ctx, &req, out, NULL, &err);
}

/* Create filler sessions until the map is full; their IDs are kept in
 * "ids" (up to "cap"). */
static void fill(full_ctx *f, sess_issued *ids, unsigned cap)
{
    sess_issued s;
    char user[32];
    int rc;
    for (;;) {
        snprintf(user, sizeof user, "filler-%u", f->fillers);
        rc = create(f, user, &s);
        if (rc != SESS_OK)
            break;
        if (f->fillers < cap)
            ids[f->fillers] = s;
        f->fillers++;
        assert_true(f->fillers < 100000); /* it must end */
    }
    assert_int_equal(rc, SESS_EFULL);
    assert_true(f->fillers > 0);
}

static sess_stats stats(full_ctx *f)
{
    sess_stats st;
    assert_int_equal(sess_get_stats(f->ctx, &st, NULL), SESS_OK);
    return st;
}

static void test_full_store_serves_due_session_unrotated(void **state)
{
    (void)state;
    full_ctx f;
    sess_issued alice, fillers[1];
    sess_view v;
    sess_err err;

    full_open(&f);
    assert_int_equal(create(&f, "alice", &alice), SESS_OK);
    fill(&f, fillers, 1);
    printf("# %u sessions filled the map\n", f.fillers);

    /* Due for rotation on a full store: 200, the same session, no
     * successor, counted. */
    f.clk.now += 301;
    assert_int_equal(sess_validate(f.ctx, alice.id, strlen(alice.id), &cl, 0, &v, &err),
                     SESS_OK);
    assert_string_equal(v.user_id, "alice");
    assert_string_equal(v.handle, alice.handle);
    assert_false(v.rotated);
    assert_int_equal(v.successor.id[0], '\0');
    sess_view_clear(&v);
    sess_stats st = stats(&f);
    assert_int_equal(st.rotations, 0);
    assert_int_equal(st.rotations_deferred, 1);
    assert_int_equal(st.last_deferral, SESS_EFULL);
    assert_int_equal(st.validate_error, 0);

    /* Still the same ID, still served (and still deferred). */
    assert_int_equal(sess_validate(f.ctx, alice.id, strlen(alice.id), &cl, 0, &v, &err),
                     SESS_OK);
    assert_false(v.rotated);
    sess_view_clear(&v);
    assert_int_equal(stats(&f).rotations_deferred, 2);

    /* Privilege changes fail closed: an error, and the old ID unchanged. */
    sess_issued out;
    sess_reason reason;
    int rc = sess_regenerate(f.ctx, alice.id, strlen(alice.id), &cl, -1, &out, &reason, &err);
    assert_int_equal(rc, SESS_EFULL);
    assert_int_equal(out.id[0], '\0');
    rc = sess_regenerate(f.ctx, alice.id, strlen(alice.id), &cl, 1, &out, &reason, &err);
    assert_int_equal(rc, SESS_EFULL);
    assert_int_equal(sess_validate(f.ctx, alice.id, strlen(alice.id), &cl,
                                   SESS_VALIDATE_NO_ROTATE, &v, &err), SESS_OK);
    assert_false(v.elevated);
    assert_string_equal(v.handle, alice.handle);
    sess_view_clear(&v);

    /* A full map refuses even removals (LMDB copies pages on write), so
     * the rotation coming back is shown on a full disk below. */
    full_close(&f);
}

/* Fill the file system holding "dir" with a file until it refuses. */
static void fill_disk(const char *dir)
{
    static char chunk[1 << 16];
    char path[300];
    snprintf(path, sizeof path, "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    memset(chunk, 0xEE, sizeof chunk);
    while (write(fd, chunk, sizeof chunk) > 0)
        ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

static void test_full_disk_defers_rotation_until_space_returns(void **state)
{
    (void)state;
    static const uint8_t key[1][SESS_KEY_BYTES] = {{9, 8, 7, 6, 5, 4, 3, 2, 1}};
    const char *kids[] = {"faults-key-1"};
    char dir[256], url[300], path[300];
    sess_keyring *kr = NULL;
    sess_store *st = NULL;
    sess_store_options opt = {0};
    sess_config cfg;
    sess_ctx *ctx = NULL;
    test_clock clk;
    sess_issued alice, out;
    sess_reason reason;
    sess_view v;
    sess_err err;

    /* A small tmpfs: the store writes with pwrite there (too small for
     * the map's disk reserve), as on any disk without fallocate. */
    test_tmpdir(dir, sizeof dir);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=24m") != 0) {
        printf("# skipped: cannot mount a tmpfs (%s): needs root\n", strerror(errno));
        test_rmdir(dir);
        skip();
    }
    snprintf(url, sizeof url, "lmdb:%s/store", dir);
    sess_config_defaults(&cfg);
    cfg.record_cache_entries = 0;
    assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, &err), SESS_OK);
    assert_int_equal(sess_store_open(url, &opt, &st, &err), SESS_OK);
    assert_int_equal(sess_ctx_new(&cfg, st, kr, &ctx, &err), SESS_OK);
    clk.now = 1800000000u;
    sess_ctx_set_clock(ctx, test_clock_read, &clk);
    sess_create_req req = {.user_id = "alice", .user_id_len = 5, .client = cl,
                           .data = "{}", .data_len = 2};
    assert_int_equal(sess_create(ctx, &req, &alice, NULL, &err), SESS_OK);

    fill_disk(dir);
    clk.now += 301;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sess_validate(ctx, alice.id, strlen(alice.id), &cl, 0, &v, &err),
                         SESS_OK);
        assert_false(v.rotated);
        assert_string_equal(v.handle, alice.handle);
        sess_view_clear(&v);
    }
    sess_stats s;
    assert_int_equal(sess_get_stats(ctx, &s, NULL), SESS_OK);
    assert_int_equal(s.rotations_deferred, 3);
    assert_int_equal(s.rotations, 0);
    /* A create on the full disk says so, whatever LMDB made of it. */
    sess_issued bob;
    req.user_id = "bob";
    req.user_id_len = 3;
    assert_int_equal(sess_create(ctx, &req, &bob, NULL, &err), SESS_EFULL);
    assert_non_null(strstr(err.msg, "no space left"));
    assert_int_equal(sess_regenerate(ctx, alice.id, strlen(alice.id), &cl, 1, &out,
                                     &reason, &err), SESS_EFULL);

    /* Space back: the next validation rotates. */
    snprintf(path, sizeof path, "%s/filler", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sess_validate(ctx, alice.id, strlen(alice.id), &cl, 0, &v, &err),
                     SESS_OK);
    assert_true(v.rotated);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
    assert_int_equal(umount2(dir, MNT_DETACH), 0);
    test_rmdir(dir);
}

/* ---- keys ------------------------------------------------------------------ */

static void test_reload_refuses_new_bytes_under_a_known_id(void **state)
{
    (void)state;
    static const uint8_t other[1][SESS_KEY_BYTES] = {{0x55, 0x66}};
    const char *kids[] = {"test-key-1"};   /* test_ctx_new's id, other bytes */
    test_clock clk;
    sess_ctx *ctx = test_ctx_new(NULL, &clk);
    sess_keyring *kr = NULL;
    sess_issued s;
    sess_view v;
    sess_err err;

    sess_create_req req = {.user_id = "alice", .user_id_len = 5, .client = cl};
    assert_int_equal(sess_create(ctx, &req, &s, NULL, &err), SESS_OK);
    assert_int_equal(sess_keyring_from_keys(kids, other, 1, &kr, &err), SESS_OK);
    assert_int_equal(sess_ctx_reload_keys(ctx, kr, true, &err), SESS_ECONFIG);
    assert_non_null(strstr(err.msg, "'test-key-1'"));
    assert_non_null(strstr(err.msg, "different bytes"));
    /* The old keyring is still in force. */
    assert_int_equal(sess_validate(ctx, s.id, strlen(s.id), &cl, 0, &v, &err), SESS_OK);
    sess_view_clear(&v);
    sess_ctx_free(ctx);
}

typedef struct validator {
    sess_ctx *ctx;
    const char *id;
    test_gate gate;             /* 1 validated, 2 may exit */
} validator;

static void *validator_main(void *arg)
{
    validator *z = arg;
    sess_view v;
    sess_err err;
    assert_int_equal(sess_validate(z->ctx, z->id, strlen(z->id), &cl, 0, &v, &err), SESS_OK);
    sess_view_clear(&v);
    test_gate_set(&z->gate, 1);
    test_gate_wait(&z->gate, 2);
    return NULL;
}

static void test_dropped_key_leaves_no_thread_context(void **state)
{
    (void)state;
    test_clock clk;
    sess_config cfg;
    sess_keyring *kr = NULL, *only_b = NULL;
    sess_issued s;
    sess_err err;
    uint8_t derived[SESS_KEY_BYTES];

    sess_config_defaults(&cfg);
    cfg.record_cache_entries = 0;     /* every validate opens the record */
    sess_ctx *ctx = test_ctx_new(&cfg, &clk);
    /* Add "zz-drop" as the newest key, so the session is sealed with it. */
    const char *kids_a[] = {"test-key-1", "zz-drop"};
    static const uint8_t keys_a[2][SESS_KEY_BYTES] = {{1, 2, 3, 4, 5, 6, 7, 8}, {0x77, 1}};
    assert_int_equal(sess_keyring_from_keys(kids_a, keys_a, 2, &kr, &err), SESS_OK);
    memcpy(derived, sess__keyring_find(kr, "zz-drop", 7)->key, sizeof derived);
    assert_int_equal(sess_ctx_reload_keys(ctx, kr, false, &err), SESS_OK);
    sess_create_req req = {.user_id = "alice", .user_id_len = 5, .client = cl};
    assert_int_equal(sess_create(ctx, &req, &s, NULL, &err), SESS_OK);

    validator z = {.ctx = ctx, .id = s.id, .gate = TEST_GATE_INIT};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, validator_main, &z), 0);
    test_gate_wait(&z.gate, 1);
    assert_true(sess__crypto_slots_holding(derived) >= 1);

    /* The reload drops "zz-drop": no context of any thread keeps it, the
     * idle validator's included. */
    const char *kids_b[] = {"test-key-1"};
    assert_int_equal(sess_keyring_from_keys(kids_b, keys_a, 1, &only_b, &err), SESS_OK);
    assert_int_equal(sess_ctx_reload_keys(ctx, only_b, true, &err), SESS_OK);
    assert_int_equal(sess__crypto_slots_holding(derived), 0);

    test_gate_set(&z.gate, 2);
    pthread_join(th, NULL);
    sess__wipe(derived, sizeof derived);
    sess_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_store_serves_due_session_unrotated),
        cmocka_unit_test(test_full_disk_defers_rotation_until_space_returns),
        cmocka_unit_test(test_reload_refuses_new_bytes_under_a_known_id),
        cmocka_unit_test(test_dropped_key_leaves_no_thread_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
