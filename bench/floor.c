/*
 * floor.c - the same-run baselines of the library validate row: what the
 * parts of one validation cost on their own, measured with the libraries
 * libsess uses, so `make bench` can print validate as a ratio of them
 * (absolute figures on a shared 2-core VM drift by a quarter between runs).
 *
 *   floor --op sha256    EVP SHA-256 of a 43-byte ID (the storage key)
 *   floor --op gcm_open  EVP AES-256-GCM open of a record-sized ciphertext
 *                        (key kept in the context, fresh nonce per call)
 *   floor --op lmdb_get  read-only LMDB as libsess reads: on a held read
 *                        transaction, check that nothing has committed
 *                        since (mdb_env_info), mdb_get a 32-byte key, copy
 *                        the value out;
 *                        over --n records shaped like sessiond's (random
 *                        keys, --value-bytes values), keys visited in a
 *                        shuffled order
 *   floor --op mem_read  one load from a random 64-byte line of an array
 *                        as large as --n records of --value-bytes (plus
 *                        key and LMDB node header), each load's address
 *                        taken from the one before (one random cycle), so
 *                        no two overlap: the cost of reaching one record
 *                        in memory of that size, whatever the store
 *   floor --op redis_get one hiredis connection to --redis HOST:PORT: GET
 *                        of one of --n values of --value-bytes, one
 *                        command per round trip (the floor of an L1 miss;
 *                        built with hiredis only, SESS_WITH_REDIS)
 *
 *   floor --op OP [--seconds S] [--n N] [--value-bytes B] [--dir DIR]
 *         [--redis HOST:PORT]
 *
 * Output: one JSON object on stdout, like libbench (ops per CPU-second of
 * the one thread that runs).  Exit 0 unless setup failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#ifdef SESS_WITH_REDIS
#include <hiredis/hiredis.h>
#endif

#include "bench_util.h"

static const char *opt_op = "sha256";
static const char *opt_dir = NULL;
static const char *opt_redis = "127.0.0.1:6379";
static double opt_seconds = 2.0;
static size_t opt_n = 10000;
static size_t opt_value = 293;     /* header + sealed record of a session */

#define RECORD_PT 190              /* plaintext of a typical session record */
#define RECORD_AAD 40              /* key id header + storage key */



static void die(const char *what)
{
    fprintf(stderr, "floor: %s\n", what);
    exit(2);
}


/* Run "step" in batches of 256 until the time is up; ops and CPU time. */
static void timed(void (*step)(void *), void *arg, uint64_t *ops, double *cpu,
                  double *wall)
{
    double t0 = bench_mono(), c0 = bench_cpu_seconds();
    uint64_t n = 0;
    do {
        for (int i = 0; i < 256; i++)
            step(arg);
        n += 256;
    } while (bench_mono() - t0 < opt_seconds);
    *ops = n;
    *cpu = bench_cpu_seconds() - c0;
    *wall = bench_mono() - t0;
}

/* ---- SHA-256 ------------------------------------------------------------ */

typedef struct sha_state {
    EVP_MD_CTX *ctx;
    const EVP_MD *md;
    unsigned char id[43];
    unsigned char out[32];
} sha_state;

static void sha_step(void *arg)
{
    sha_state *s = arg;
    unsigned int len = 32;
    if (!EVP_DigestInit_ex2(s->ctx, s->md, NULL) ||
        !EVP_DigestUpdate(s->ctx, s->id, sizeof s->id) ||
        !EVP_DigestFinal_ex(s->ctx, s->out, &len))
        die("SHA-256 failed");
    s->id[0] = s->out[0];           /* keep the calls dependent */
}

/* ---- AES-256-GCM open --------------------------------------------------- */

typedef struct gcm_state {
    EVP_CIPHER_CTX *ctx;
    unsigned char nonce[12], aad[RECORD_AAD], ct[RECORD_PT], tag[16];
    unsigned char pt[RECORD_PT];
} gcm_state;

static void gcm_step(void *arg)
{
    gcm_state *s = arg;
    int len;
    if (!EVP_DecryptInit_ex2(s->ctx, NULL, NULL, s->nonce, NULL) ||
        !EVP_DecryptUpdate(s->ctx, NULL, &len, s->aad, sizeof s->aad) ||
        !EVP_DecryptUpdate(s->ctx, s->pt, &len, s->ct, sizeof s->ct) ||
        !EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_TAG, 16, s->tag) ||
        EVP_DecryptFinal_ex(s->ctx, s->pt + len, &len) <= 0)
        die("GCM open failed");
}

static void gcm_setup(gcm_state *s)
{
    unsigned char key[32];
    EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_CIPHER_CTX *enc = EVP_CIPHER_CTX_new();
    int len;
    s->ctx = EVP_CIPHER_CTX_new();
    if (!aes || !enc || !s->ctx || RAND_bytes(key, sizeof key) != 1 ||
        RAND_bytes(s->nonce, sizeof s->nonce) != 1 ||
        RAND_bytes(s->aad, sizeof s->aad) != 1 ||
        RAND_bytes(s->pt, sizeof s->pt) != 1)
        die("GCM setup failed");
    if (!EVP_EncryptInit_ex2(enc, aes, key, s->nonce, NULL) ||
        !EVP_EncryptUpdate(enc, NULL, &len, s->aad, sizeof s->aad) ||
        !EVP_EncryptUpdate(enc, s->ct, &len, s->pt, sizeof s->pt) ||
        !EVP_EncryptFinal_ex(enc, s->ct + len, &len) ||
        !EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_GCM_GET_TAG, 16, s->tag) ||
        !EVP_DecryptInit_ex2(s->ctx, aes, key, s->nonce, NULL))
        die("GCM setup failed");
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_free(aes);
}

/* ---- one dependent memory read ---------------------------------------- */

#define LINE 64u

typedef struct mem_state {
    uint64_t *lines;               /* lines[i * 8] = index of the next line */
    size_t n, at;
} mem_state;

static void mem_step(void *arg)
{
    mem_state *s = arg;
    s->at = s->lines[s->at * (LINE / 8)];
}

/* One cycle through every line in a random order (Sattolo's shuffle). */
static void mem_setup(mem_state *s)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    size_t bytes = opt_n * (opt_value + 32 + 8);
    size_t *order;
    s->n = bytes / LINE > 2 ? bytes / LINE : 2;
    s->lines = aligned_alloc(LINE, s->n * LINE);
    order = malloc(s->n * sizeof *order);
    if (!s->lines || !order)
        die("out of memory");
    for (size_t i = 0; i < s->n; i++)
        order[i] = i;
    for (size_t i = s->n - 1; i > 0; i--) {
        size_t j = (size_t)(bench_xorshift(&seed) % i), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < s->n; i++)
        s->lines[order[i] * (LINE / 8)] = order[(i + 1) % s->n];
    free(order);
    s->at = 0;
    for (size_t i = 0; i < s->n; i++)  /* fault every page in first */
        mem_step(s);
}

/* ---- LMDB get ----------------------------------------------------------- */

typedef struct lmdb_state {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    unsigned char (*keys)[32];
    size_t n, next;
    unsigned char copy[4096];
} lmdb_state;

static void lmdb_step(void *arg)
{
    lmdb_state *s = arg;
    MDB_val k = {32, s->keys[s->next]}, v;
    MDB_envinfo info;
    if (++s->next == s->n)
        s->next = 0;
    /* As lib/store_lmdb.c: the snapshot is used again while the
     * environment's last transaction is still its own (always, here). */
    if (mdb_env_info(s->env, &info) != 0 || info.me_last_txnid != mdb_txn_id(s->txn) ||
        mdb_get(s->txn, s->dbi, &k, &v) != 0)
        die("mdb_get failed");
    memcpy(s->copy, v.mv_data, v.mv_size < sizeof s->copy ? v.mv_size : sizeof s->copy);
}

static void lmdb_setup(lmdb_state *s, const char *dir)
{
    MDB_txn *w;
    unsigned char *val = calloc(1, opt_value);
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    s->n = opt_n;
    s->keys = malloc(opt_n * sizeof *s->keys);
    if (!val || !s->keys || RAND_bytes((unsigned char *)s->keys, (int)(opt_n * 32)) != 1)
        die("out of memory");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        die("cannot make the LMDB directory");
    if (mdb_env_create(&s->env) || mdb_env_set_maxdbs(s->env, 4) ||
        mdb_env_set_mapsize(s->env, (size_t)1 << 34) ||
        mdb_env_open(s->env, dir, MDB_NOTLS | MDB_NOSYNC, 0600) ||
        mdb_txn_begin(s->env, NULL, 0, &w) ||
        mdb_dbi_open(w, "sessions", MDB_CREATE, &s->dbi))
        die("LMDB setup failed");
    for (size_t i = 0; i < opt_n; i++) {
        MDB_val k = {32, s->keys[i]}, v = {opt_value, val};
        val[0] = (unsigned char)i;
        if (mdb_put(w, s->dbi, &k, &v, 0) != 0)
            die("mdb_put failed");
    }
    if (mdb_txn_commit(w) || mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn))
        die("LMDB commit failed");
    for (size_t i = opt_n; i > 1; i--) {          /* visit in random order */
        size_t j = (size_t)(bench_xorshift(&seed) % i);
        unsigned char t[32];
        memcpy(t, s->keys[i - 1], 32);
        memcpy(s->keys[i - 1], s->keys[j], 32);
        memcpy(s->keys[j], t, 32);
    }
    for (size_t i = 0; i < opt_n; i++)            /* warm the map */
        lmdb_step(s);
    free(val);
}

/* ---- Redis GET ---------------------------------------------------------- */

#ifdef SESS_WITH_REDIS
typedef struct redis_state {
    redisContext *c;
    size_t n, next;
} redis_state;

static void redis_step(void *arg)
{
    redis_state *s = arg;
    char name[32];
    int len = snprintf(name, sizeof name, "floor:%zu", s->next);
    if (++s->next == s->n)
        s->next = 0;
    redisReply *r = redisCommand(s->c, "GET %b", name, (size_t)len);
    if (!r || r->type != REDIS_REPLY_STRING)
        die("redis GET failed");
    freeReplyObject(r);
}

static void redis_setup(redis_state *s)
{
    char host[256];
    const char *colon = strrchr(opt_redis, ':');
    if (!colon || (size_t)(colon - opt_redis) >= sizeof host)
        die("--redis wants HOST:PORT");
    memcpy(host, opt_redis, (size_t)(colon - opt_redis));
    host[colon - opt_redis] = '\0';
    s->c = redisConnect(host, atoi(colon + 1));
    if (!s->c || s->c->err)
        die("cannot connect to Redis");
    unsigned char *val = calloc(1, opt_value);
    if (!val || RAND_bytes(val, (int)opt_value) != 1)
        die("out of memory");
    s->n = opt_n;
    s->next = 0;
    for (size_t i = 0; i < opt_n; i++) {
        char name[32];
        int len = snprintf(name, sizeof name, "floor:%zu", i);
        redisAppendCommand(s->c, "SET %b %b", name, (size_t)len, val, opt_value);
        if (i % 256 == 255 || i + 1 == opt_n) {
            for (size_t j = i - i % 256; j <= i; j++) {
                redisReply *r = NULL;
                if (redisGetReply(s->c, (void **)&r) != REDIS_OK)
                    die("redis SET failed");
                freeReplyObject(r);
            }
        }
    }
    free(val);
}

static void redis_teardown(redis_state *s)
{
    for (size_t i = 0; i < s->n; i++) {
        char name[32];
        int len = snprintf(name, sizeof name, "floor:%zu", i);
        redisReply *r = redisCommand(s->c, "DEL %b", name, (size_t)len);
        if (r)
            freeReplyObject(r);
    }
    redisFree(s->c);
}
#endif

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--op") == 0) opt_op = v;
        else if (strcmp(a, "--seconds") == 0) opt_seconds = strtod(v, NULL);
        else if (strcmp(a, "--n") == 0) opt_n = strtoull(v, NULL, 10);
        else if (strcmp(a, "--value-bytes") == 0) opt_value = strtoull(v, NULL, 10);
        else if (strcmp(a, "--dir") == 0) opt_dir = v;
        else if (strcmp(a, "--redis") == 0) opt_redis = v;
        else die("usage: floor --op sha256|gcm_open|mem_read|lmdb_get|redis_get [--seconds S] "
                 "[--n N] [--value-bytes B] [--dir DIR] [--redis HOST:PORT]");
    }
    if (opt_n == 0 || opt_value == 0 || opt_value > 4000)
        die("--n and --value-bytes (1..4000) must be positive");

    uint64_t ops;
    double cpu, wall;
    if (strcmp(opt_op, "sha256") == 0) {
        /* Fetched once, as libsess does: EVP_sha256() would fetch the
         * implementation again on every init. */
        EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
        sha_state s = {EVP_MD_CTX_new(), md, {0}, {0}};
        if (!s.ctx || !md)
            die("out of memory");
        timed(sha_step, &s, &ops, &cpu, &wall);
        EVP_MD_CTX_free(s.ctx);
        EVP_MD_free(md);
    } else if (strcmp(opt_op, "gcm_open") == 0) {
        gcm_state s;
        gcm_setup(&s);
        timed(gcm_step, &s, &ops, &cpu, &wall);
        EVP_CIPHER_CTX_free(s.ctx);
    } else if (strcmp(opt_op, "mem_read") == 0) {
        mem_state s;
        mem_setup(&s);
        timed(mem_step, &s, &ops, &cpu, &wall);
        if (s.at >= s.n)
            die("chain broken");
        free(s.lines);
    } else if (strcmp(opt_op, "lmdb_get") == 0) {
        lmdb_state s;
        char tmpl[] = "/tmp/sessiond-floor-XXXXXX";
        const char *dir = opt_dir ? opt_dir : mkdtemp(tmpl);
        if (!dir)
            die("cannot make a temporary directory");
        memset(&s, 0, sizeof s);
        lmdb_setup(&s, dir);
        timed(lmdb_step, &s, &ops, &cpu, &wall);
        mdb_txn_abort(s.txn);
        mdb_env_close(s.env);
        free(s.keys);
        if (!opt_dir) {
            char p[64];
            snprintf(p, sizeof p, "%s/data.mdb", dir);
            unlink(p);
            snprintf(p, sizeof p, "%s/lock.mdb", dir);
            unlink(p);
            rmdir(dir);
        }
#ifdef SESS_WITH_REDIS
    } else if (strcmp(opt_op, "redis_get") == 0) {
        redis_state s;
        redis_setup(&s);
        timed(redis_step, &s, &ops, &cpu, &wall);
        redis_teardown(&s);
#endif
    } else {
        die("unknown --op (sha256, gcm_open, mem_read, lmdb_get, redis_get)");
    }
    printf("{\"op\":\"%s\",\"n\":%zu,\"ops\":%" PRIu64 ",\"seconds\":%.3f,"
           "\"cpu_seconds\":%.3f,\"per_sec\":%.0f,\"per_cpu_sec\":%.0f}\n",
           opt_op, opt_n, ops, wall, cpu, (double)ops / wall,
           cpu > 0 ? (double)ops / cpu : 0.0);
    return 0;
}
