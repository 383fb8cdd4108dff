/*
 * libbench.c - library-level benchmark of libsess (no HTTP), public API
 * only (include/sess.h).  Driven by bench/run.py; usable on its own:
 *
 *   libbench --op validate|create|rotate --store URL [--threads N]
 *            [--seconds S] [--pool N] [--keys DIR] [--ids FILE]
 *   libbench --op populate --store lmdb:PATH --keys DIR --n N --ids FILE
 *
 *   validate  sess_validate of IDs of a pool of live sessions in random
 *             order (created first, untimed; or read from --ids FILE when
 *             the store is already populated, then each validated once,
 *             untimed, to warm the map), rotation off.  The pool is
 *             shuffled once and each thread walks it from its own offset:
 *             the store sees random keys, but the next ID is read from
 *             memory in order, as a server reads it from the request it
 *             has just received (drawing a random slot of a 1M-entry
 *             array would add a cache miss no server pays)
 *   create    sess_create, one new user per session (default per-user
 *             limit, so the limit check runs as in production)
 *   rotate    sess_validate that rotates every time: each thread has its
 *             own clock that jumps past rotate_interval after every pass
 *             over its part of the pool
 *   populate  create N sessions straight into the store (no HTTP) and
 *             write their IDs to FILE, one a line, for sessiond and wrk
 *
 * With a Redis store, --l1 off turns the in-process L1 off (every validate
 * is one GET) and --l1 N caps it at N entries (a small N makes most
 * validations L1 misses); the output then adds the L1 hits and misses of
 * the timed part.  --store-timeout-ms N sets the store's read/write timeout
 * (Redis; 20 ms by default): it only matters when it fires, and a stall
 * of a loaded machine must slow a benchmark down, not abort it.
 *
 * The client is --ip (127.0.0.1) and --ua (the User-Agent wrk sends in
 * the bench Lua scripts), so sessions made here validate over HTTP through sessiond
 * opened on the same store and keys directory.
 *
 * Output: one JSON object on stdout (ops, seconds, ops/s, ops per CPU
 * second of the process = "per core").  Exit 0 unless setup failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sess.h"
#include "bench_util.h"

#define DEFAULT_UA "sessiond-bench/1 (wrk)"

static const char *opt_op = "validate";
static const char *opt_store = "memory:";
static const char *opt_keys = NULL;
static const char *opt_ids = NULL;
static const char *opt_ip = "127.0.0.1";
static const char *opt_ua = DEFAULT_UA;
static unsigned opt_threads = 1;
static double opt_seconds = 2.0;
static size_t opt_pool = 10000;
static size_t opt_n = 0;
static long opt_record_cache = -1;    /* -1: the library default */
static const char *opt_l1 = NULL;     /* Redis L1: "off", or max entries */
static uint32_t opt_store_timeout_ms; /* Redis read/write timeout, 0: its default */
static bool opt_fsync = false;        /* --durability fsync */

static sess_ctx *g_ctx;
static char (*g_ids)[SESS_ID_LEN + 1];
static size_t g_nids;
static atomic_int g_stop;
static atomic_ulong g_user_seq;

/* Per-thread clock: 0 means "real time". */
static __thread uint64_t tl_now;

static uint64_t bench_clock(void *user)
{
    (void)user;
    return tl_now != 0 ? tl_now : (uint64_t)time(NULL);
}



static void die(const char *what, int rc, const sess_err *err)
{
    fprintf(stderr, "libbench: %s: %s%s%s\n", what, sess_strerror(rc),
            err != NULL && err->msg[0] ? ": " : "",
            err != NULL ? err->msg : "");
    exit(2);
}


static int create_one(char *id_out)
{
    char user[32];
    sess_issued iss;
    sess_err err;
    unsigned long u = atomic_fetch_add(&g_user_seq, 1);
    int n = snprintf(user, sizeof(user), "bench-u%lu", u);
    sess_create_req req = {
        .user_id = user,
        .user_id_len = (size_t)n,
        .client = {opt_ip, opt_ua},
        .data = "{}",
        .data_len = 2,
    };
    int rc = sess_create(g_ctx, &req, &iss, NULL, &err);
    if (rc == SESS_OK && id_out != NULL)
        memcpy(id_out, iss.id, SESS_ID_LEN + 1);
    sess_wipe(&iss, sizeof(iss));
    return rc;
}

typedef struct worker {
    pthread_t th;
    unsigned idx;
    uint64_t ops;
    uint64_t fails;
    uint64_t extra;       /* rotate: validations that rotated */
} worker;

static void *run_validate(void *arg)
{
    worker *w = arg;
    size_t next = (g_nids / opt_threads) * w->idx;
    sess_client cl = {opt_ip, opt_ua};
    sess_view v;
    sess_err err;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        for (int k = 0; k < 64; k++) {
            const char *id = g_ids[next];
            if (++next == g_nids)
                next = 0;
            int rc = sess_validate(g_ctx, id, SESS_ID_LEN, &cl, 0, &v, &err);
            if (rc != SESS_OK)
                w->fails++;
            sess_view_clear(&v);
            w->ops++;
        }
    }
    return NULL;
}

static void *run_create(void *arg)
{
    worker *w = arg;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        if (create_one(NULL) != SESS_OK)
            w->fails++;
        w->ops++;
    }
    return NULL;
}

/* Thread "idx" owns pool slots idx, idx+T, idx+2T, ... */
static void *run_rotate(void *arg)
{
    worker *w = arg;
    sess_client cl = {opt_ip, opt_ua};
    sess_view v;
    sess_err err;
    uint64_t t0 = (uint64_t)time(NULL);
    tl_now = t0;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        tl_now += 61;     /* rotate_interval is 60 */
        for (size_t i = w->idx; i < g_nids; i += opt_threads) {
            int rc = sess_validate(g_ctx, g_ids[i], SESS_ID_LEN, &cl, 0, &v,
                                   &err);
            if (rc != SESS_OK) {
                w->fails++;
            } else if (v.rotated) {
                memcpy(g_ids[i], v.successor.id, SESS_ID_LEN + 1);
                w->extra++;
            }
            sess_view_clear(&v);
            w->ops++;
            if ((w->ops & 63) == 0 &&
                atomic_load_explicit(&g_stop, memory_order_relaxed))
                break;
        }
    }
    return NULL;
}

static void load_ids(const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "libbench: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 1024;
    g_ids = malloc(cap * sizeof(*g_ids));
    char line[128];
    while (fgets(line, sizeof(line), f) != NULL && (max == 0 || g_nids < max)) {
        size_t n = strcspn(line, "\r\n");
        if (n != SESS_ID_LEN)
            continue;
        if (g_nids == cap) {
            cap *= 2;
            g_ids = realloc(g_ids, cap * sizeof(*g_ids));
        }
        if (g_ids == NULL)
            exit(2);
        memcpy(g_ids[g_nids], line, SESS_ID_LEN);
        g_ids[g_nids][SESS_ID_LEN] = '\0';
        g_nids++;
    }
    fclose(f);
    if (g_nids == 0) {
        fprintf(stderr, "libbench: %s: no IDs\n", path);
        exit(2);
    }
}

/* Fisher-Yates over the pool, so walking it in order visits the store's
 * keys in a random order (the creation order is also the LMDB insertion
 * order, which would otherwise walk neighbouring pages). */
static void shuffle_ids(void)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    char tmp[SESS_ID_LEN + 1];
    for (size_t i = g_nids; i > 1; i--) {
        size_t j = (size_t)(bench_xorshift(&seed) % i);
        memcpy(tmp, g_ids[i - 1], sizeof tmp);
        memcpy(g_ids[i - 1], g_ids[j], sizeof tmp);
        memcpy(g_ids[j], tmp, sizeof tmp);
    }
    sess_wipe(tmp, sizeof tmp);
}

static void make_pool(size_t n)
{
    g_ids = malloc((n ? n : 1) * sizeof(*g_ids));
    if (g_ids == NULL)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        int rc = create_one(g_ids[i]);
        if (rc != SESS_OK)
            die("create (pool)", rc, NULL);
    }
    g_nids = n;
}

static int populate(void)
{
    if (opt_ids == NULL || opt_n == 0) {
        fprintf(stderr, "libbench: populate needs --n and --ids\n");
        return 2;
    }
    FILE *f = fopen(opt_ids, "w");
    if (f == NULL) {
        fprintf(stderr, "libbench: %s: %s\n", opt_ids, strerror(errno));
        return 2;
    }
    char id[SESS_ID_LEN + 1];
    double t0 = bench_mono(), c0 = bench_cpu_seconds();
    for (size_t i = 0; i < opt_n; i++) {
        int rc = create_one(id);
        if (rc != SESS_OK)
            die("create (populate)", rc, NULL);
        fputs(id, f);
        fputc('\n', f);
    }
    sess_wipe(id, sizeof(id));
    fclose(f);
    double dt = bench_mono() - t0, dc = bench_cpu_seconds() - c0;
    printf("{\"op\":\"populate\",\"store\":\"%s\",\"threads\":1,"
           "\"ops\":%zu,\"fails\":0,\"seconds\":%.3f,\"cpu_seconds\":%.3f,"
           "\"per_sec\":%.0f,\"per_cpu_sec\":%.0f}\n",
           opt_store, opt_n, dt, dc, (double)opt_n / dt,
           dc > 0 ? (double)opt_n / dc : 0.0);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: libbench --op validate|create|rotate|populate "
            "--store URL [--threads N] [--seconds S] [--pool N] [--n N]\n"
            "                [--keys DIR] [--ids FILE] [--ip IP] [--ua UA]\n"
            "                [--record-cache N] [--l1 off|N] [--durability process|fsync]\n"
            "                [--store-timeout-ms N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--op") == 0) opt_op = v;
        else if (strcmp(a, "--store") == 0) opt_store = v;
        else if (strcmp(a, "--keys") == 0) opt_keys = v;
        else if (strcmp(a, "--ids") == 0) opt_ids = v;
        else if (strcmp(a, "--ip") == 0) opt_ip = v;
        else if (strcmp(a, "--ua") == 0) opt_ua = v;
        else if (strcmp(a, "--threads") == 0) opt_threads = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0) opt_seconds = strtod(v, NULL);
        else if (strcmp(a, "--pool") == 0) opt_pool = strtoull(v, NULL, 10);
        else if (strcmp(a, "--n") == 0) opt_n = strtoull(v, NULL, 10);
        else if (strcmp(a, "--record-cache") == 0) opt_record_cache = strtol(v, NULL, 10);
        else if (strcmp(a, "--l1") == 0) opt_l1 = v;
        else if (strcmp(a, "--store-timeout-ms") == 0)
            opt_store_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--durability") == 0) opt_fsync = strcmp(v, "fsync") == 0;
        else usage();
    }
    if (opt_threads < 1 || opt_threads > 64)
        usage();

    sess_err err;
    sess_keyring *keys = NULL;
    int rc;
    if (opt_keys != NULL) {
        rc = sess_keyring_load_dir(opt_keys, true, &keys, &err);
    } else {
        static const uint8_t k[1][SESS_KEY_BYTES] = {{1, 2, 3, 4, 5, 6, 7, 8}};
        const char *kid[1] = {"bench"};
        rc = sess_keyring_from_keys(kid, k, 1, &keys, &err);
    }
    if (rc != SESS_OK)
        die("keyring", rc, &err);

    sess_store_options so;
    memset(&so, 0, sizeof(so));      /* members are only ever appended */
    so.durability = opt_fsync ? SESS_DURABILITY_FSYNC : SESS_DURABILITY_PROCESS;
    so.timeout_ms = opt_store_timeout_ms;
    if (opt_l1 != NULL && strcmp(opt_l1, "off") == 0)
        so.l1_cache = -1;
    else if (opt_l1 != NULL)
        so.l1_max_entries = (uint32_t)strtoul(opt_l1, NULL, 10);
    sess_store *st = NULL;
    rc = sess_store_open(opt_store, &so, &st, &err);
    if (rc != SESS_OK)
        die("store", rc, &err);

    sess_config cfg;
    sess_config_defaults(&cfg);
    bool rotate = strcmp(opt_op, "rotate") == 0;
    cfg.rotate_interval = rotate ? 60 : 0;
    cfg.rotation_grace = rotate ? 30 : cfg.rotation_grace;
    if (!rotate)
        cfg.rotation_grace = 0;
    if (opt_record_cache >= 0)
        cfg.record_cache_entries = (uint32_t)opt_record_cache;
    rc = sess_ctx_new(&cfg, st, keys, &g_ctx, &err);
    if (rc != SESS_OK)
        die("context", rc, &err);
    sess_ctx_set_clock(g_ctx, bench_clock, NULL);
    atomic_init(&g_user_seq, (unsigned long)getpid() * 100000000ul);

    if (strcmp(opt_op, "populate") == 0) {
        int r = populate();
        sess_ctx_free(g_ctx);
        return r;
    }

    void *(*fn)(void *);
    if (strcmp(opt_op, "validate") == 0) fn = run_validate;
    else if (strcmp(opt_op, "create") == 0) fn = run_create;
    else if (rotate) fn = run_rotate;
    else usage();

    if (fn != run_create) {
        if (opt_ids != NULL)
            load_ids(opt_ids, opt_pool);
        else
            make_pool(opt_pool);
        /* Warm-up, untimed: validate every session once, so the timed
         * part measures a warm store (page cache mapped, a Redis L1
         * filled, as in a server that has been up a while), not
         * first-touch faults or first reads. */
        if (fn == run_validate) {
            sess_client cl = {opt_ip, opt_ua};
            for (size_t i = 0; i < g_nids; i++) {
                sess_view v;
                sess_err e;
                /* Warm-up: the result is not what is measured. */
                int wrc = sess_validate(g_ctx, g_ids[i], SESS_ID_LEN, &cl, 0, &v, &e);
                (void)wrc;
                sess_view_clear(&v);
            }
        }
        if (fn == run_validate)
            shuffle_ids();
    }

    worker w[64];
    memset(w, 0, sizeof(w));
    atomic_init(&g_stop, 0);
    sess_store_stats ss0, ss1;
    bool has_store_stats = sess_get_store_stats(g_ctx, &ss0) == SESS_OK;
    double t0 = bench_mono(), c0 = bench_cpu_seconds();
    for (unsigned i = 0; i < opt_threads; i++) {
        w[i].idx = i;
        if (pthread_create(&w[i].th, NULL, fn, &w[i]) != 0) {
            fprintf(stderr, "libbench: pthread_create failed\n");
            return 2;
        }
    }
    struct timespec ts = {(time_t)opt_seconds,
                          (long)((opt_seconds - (double)(time_t)opt_seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&g_stop, 1);
    uint64_t ops = 0, fails = 0, extra = 0;
    for (unsigned i = 0; i < opt_threads; i++) {
        pthread_join(w[i].th, NULL);
        ops += w[i].ops;
        fails += w[i].fails;
        extra += w[i].extra;
    }
    double dt = bench_mono() - t0, dc = bench_cpu_seconds() - c0;
    /* A store with an L1 (Redis) also reports the timed part's hits and
     * misses: a miss is a round trip, so they explain the figures. */
    char l1[96] = "";
    if (has_store_stats && sess_get_store_stats(g_ctx, &ss1) == SESS_OK)
        snprintf(l1, sizeof(l1), ",\"l1_hits\":%" PRIu64 ",\"l1_misses\":%" PRIu64,
                 ss1.l1_hits - ss0.l1_hits, ss1.l1_misses - ss0.l1_misses);
    printf("{\"op\":\"%s\",\"store\":\"%s\",\"threads\":%u,\"pool\":%zu,"
           "\"ops\":%" PRIu64 ",\"fails\":%" PRIu64 ",\"rotated\":%" PRIu64
           ",\"seconds\":%.3f,\"cpu_seconds\":%.3f,\"per_sec\":%.0f,"
           "\"per_cpu_sec\":%.0f%s}\n",
           opt_op, opt_store, opt_threads, g_nids, ops, fails, extra, dt, dc,
           (double)ops / dt, dc > 0 ? (double)ops / dc : 0.0, l1);
    if (g_ids != NULL) {
        sess_wipe(g_ids, g_nids * sizeof(*g_ids));
        free(g_ids);
    }
    sess_ctx_free(g_ctx);
    return 0;
}
