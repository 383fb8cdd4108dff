/*
 * testutil.c - helpers shared by the unit tests (see testutil.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

uint64_t test_clock_read(void *user)
{
    return ((test_clock *)user)->now;
}

sess_ctx *test_ctx_new(const sess_config *cfg, test_clock *clk)
{
    static const uint8_t key[1][SESS_KEY_BYTES] = {{1, 2, 3, 4, 5, 6, 7, 8}};
    const char *kids[] = {"test-key-1"};
    sess_keyring *kr = NULL;
    sess_store *st = NULL;
    sess_ctx *ctx = NULL;
    sess_store_options opt = {0};
    sess_config defaults;
    sess_err err;

    if (!cfg) {
        sess_config_defaults(&defaults);
        cfg = &defaults;
    }
    assert_int_equal(sess_keyring_from_keys(kids, key, 1, &kr, &err), SESS_OK);
    assert_int_equal(sess_store_open("memory:", &opt, &st, &err), SESS_OK);
    assert_int_equal(sess_ctx_new(cfg, st, kr, &ctx, &err), SESS_OK);
    clk->now = 1800000000u;   /* 2027-01-15, a fixed start */
    sess_ctx_set_clock(ctx, test_clock_read, clk);
    return ctx;
}

void test_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/sess-test-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

void test_rmdir(const char *path)
{
    char cmd[512];
    if (strncmp(path, "/tmp/sess-test-", 15) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

void test_event_capture(void *user, const sess_event *ev)
{
    test_events *t = user;
    if ((unsigned)ev->type < 16)
        t->count[ev->type]++;
    snprintf(t->last_handle, sizeof t->last_handle, "%s",
             ev->handle ? ev->handle : "");
    snprintf(t->last_detail, sizeof t->last_detail, "%s",
             ev->detail ? ev->detail : "");
}

const char *test_testdata_dir(void)
{
    static char path[1024];
    const char *env = getenv("SESS_TESTDATA");
    struct stat st;
    if (!env || stat(env, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    snprintf(path, sizeof path, "%s", env);
    return path;
}

void test_store_entry(sess_entry *e, uint8_t *blob, size_t blob_len, uint64_t i,
                      uint64_t now)
{
    memset(e, 0, sizeof *e);
    for (int b = 0; b < 8; b++) {
        e->key[b] = (uint8_t)(i >> (8 * b));
        e->handle[b] = (uint8_t)(i >> (8 * b));
        e->user[b] = (uint8_t)(i >> (8 * b));
    }
    e->key[31] = 0x5A;          /* spread keys over the tree */
    e->key[8] = (uint8_t)(i * 2654435761u >> 24);
    e->created_at = now << 20 | i;
    e->expires_at = now + 60;
    memset(blob, (int)(i & 0xFF), blob_len);
    e->blob = blob;
    e->blob_len = blob_len;
}

void test_gate_set(test_gate *g, int phase)
{
    pthread_mutex_lock(&g->lock);
    g->phase = phase;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void test_gate_wait(test_gate *g, int phase)
{
    pthread_mutex_lock(&g->lock);
    while (g->phase != phase)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}
