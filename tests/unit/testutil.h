/*
 * testutil.h - shared helpers for the cmocka unit tests: a clock tests can
 * move by hand, temporary directories, and a context on the memory store.
 */
#ifndef SESS_TESTUTIL_H
#define SESS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <cmocka.h>

#include "sess.h"
#include "sess/store.h"

/* A clock that only moves when the test says so. */
typedef struct test_clock {
    uint64_t now;
} test_clock;

uint64_t test_clock_read(void *user);

/* A fresh memory-store context with one fixed key, the given policy and
 * the test clock "clk" (starting at a fixed date). */
sess_ctx *test_ctx_new(const sess_config *cfg, test_clock *clk);

/* Make a fresh directory under /tmp and return its path (static buffer
 * per call site is not needed: caller gives "buf" of "len" bytes). */
void test_tmpdir(char *buf, size_t len);

/* rm -rf of a directory made by test_tmpdir. */
void test_rmdir(const char *path);

/* Events captured by test_event_capture(). */
typedef struct test_events {
    int count[16];
    char last_handle[SESS_HANDLE_LEN + 1];
    char last_detail[64];
} test_events;

void test_event_capture(void *user, const sess_event *ev);

/* Store entry number "i" for the store-level tests: distinct key (spread
 * over the tree), handle and user; created at now << 20 | i, expiring at
 * now + 60; "blob_len" bytes of (i & 0xFF) in "blob", which it points to. */
void test_store_entry(sess_entry *e, uint8_t *blob, size_t blob_len, uint64_t i,
                      uint64_t now);

/* Directory of the shared third-party test data, or NULL (then the test
 * prints why it skips). */
const char *test_testdata_dir(void);

/* A handshake between a test and a thread it starts: one side sets a
 * phase, the other waits for it.  Initialise with TEST_GATE_INIT. */
typedef struct test_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int phase;
} test_gate;
#define TEST_GATE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}
void test_gate_set(test_gate *g, int phase);
void test_gate_wait(test_gate *g, int phase);

#endif
