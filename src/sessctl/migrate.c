/*
 * migrate.c - the store tools of sessctl: "migrate" (the backfill of a
 * store migration), "export" and "import" (a versioned, streamed file of
 * sealed sessions, docs/formats.md) and "rekey" (re-seal every record
 * under the newest key so an old key can be retired).  docs/migration.md
 * is the runbook they belong to.
 *
 * What they never do.  No record is decrypted except by rekey, inside
 * sess_reseal, which wipes the plaintext; no session ID exists at this
 * level (stores hold SHA-256 of IDs), so neither a backfill nor an export
 * file can be replayed as cookies; nothing secret is printed: messages
 * name counts, line numbers and key ids, never keys, IDs or store
 * passwords (a store password comes from SESSCTL_STORE_PASSWORD, never
 * from the command line where the process list shows it).
 *
 * Online and resumable.  migrate and rekey walk the store with the scan
 * method in bounded batches while sessiond keeps serving, and save their
 * progress (the scan cursor and counters) after every batch in the store
 * they write (sess_progress_save), so a run that is stopped (Ctrl-C, kill
 * -9, a crash) resumes where it stopped, and sessiond reports the
 * backfill in its metrics.  Every step is idempotent: copying what is
 * there already, or re-sealing what is sealed under the newest key,
 * changes nothing.  --rate bounds the entries per second (the load a
 * backfill adds to a live store).
 *
 * Races with live traffic (migrate).  The backfill copies from FROM to
 * TO while sessiond writes both (shadow, dual, route:N).  A copy is
 * checked against FROM after it is written: when FROM no longer has the
 * entry (the session was destroyed while we copied), the copy is removed
 * again, so a backfill can never bring a destroyed session back, whatever
 * the interleaving (sessiond deletes FROM first, then TO); when FROM has
 * a newer record, TO is repaired from it.  The backfill never deletes an
 * entry it did not write.
 *
 * Import is all or nothing as far as the file goes: a first pass checks
 * the whole file (format, version, every line's fields and lengths, the
 * key fingerprints, the record count and SHA-256 in the end line) before
 * anything is written, so a damaged, truncated or foreign file, or one
 * made for keys this keyring does not have, changes nothing.
 *
 * Uses the public API (sess.h), jansson for JSON and OpenSSL (base64,
 * SHA-256) for the export format.  Exit codes: 0 done, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "migrate.h"
#include "../common/clock.h"
#include "../common/hex.h"
#include "migrate_format.h"
#include "sess.h"
#include "sess/store_migrate.h"

#define EXIT_USAGE 2
#define DEFAULT_KEYS_DIR "./var/keys"
#define DEFAULT_BATCH 256
#define RETRIES 5                 /* compare-and-swap attempts per entry */
#define TOOL_TIMEOUT_MS 2000      /* store reply and connect timeout */
#define BATCH_RETRIES 3           /* a batch that met an unavailable store */

/* ---- options ------------------------------------------------------------ */

#define O_FROM 0x1u
#define O_TO 0x2u
#define O_STORE 0x4u
#define O_FILE 0x8u
#define O_DIR 0x10u
#define O_RATE 0x20u
#define O_BATCH 0x40u
#define O_RESTART 0x80u
#define O_QUIET 0x100u

typedef struct topts {
    const char *from, *to, *store, *file, *dir, *rate, *batch;
    bool restart, quiet;
    unsigned given;
} topts;

typedef int (*tool_fn)(const topts *o);

typedef struct tool {
    const char *name;
    tool_fn run;
    unsigned need, allow;
    const char *usage, *help;
} tool;

static int run_migrate(const topts *o);
static int run_export(const topts *o);
static int run_import(const topts *o);
static int run_rekey(const topts *o);

#define WALK_OPTS (O_RATE | O_BATCH | O_RESTART | O_QUIET)

static const tool tools[] = {
    {"migrate", run_migrate, O_FROM | O_TO, O_FROM | O_TO | WALK_OPTS,
     "migrate --from URL --to URL [--rate N] [--batch N] [--restart] [--quiet]",
     "copy every live session from one store to another (the backfill), "
     "resumable"},
    {"export", run_export, O_FROM, O_FROM | O_FILE | O_DIR | O_QUIET,
     "export --from URL [--file PATH] [--dir KEYS]",
     "write the live sessions, sealed, to a file (stdout without --file)"},
    {"import", run_import, O_TO | O_FILE, O_TO | O_FILE | O_DIR | O_QUIET,
     "import --to URL --file PATH [--dir KEYS]",
     "read an export into a store; refuses damaged files and foreign keys"},
    {"rekey", run_rekey, O_STORE, O_STORE | O_DIR | WALK_OPTS,
     "rekey --store URL [--dir KEYS] [--rate N] [--batch N] [--restart] [--quiet]",
     "re-seal every record under the newest key, online, resumable"},
};

#define N_TOOLS (sizeof tools / sizeof tools[0])

static const struct {
    const char *name;
    unsigned bit;
    size_t off;                   /* (size_t)-1: a flag */
} topt_table[] = {
    {"--from", O_FROM, offsetof(topts, from)},
    {"--to", O_TO, offsetof(topts, to)},
    {"--store", O_STORE, offsetof(topts, store)},
    {"--file", O_FILE, offsetof(topts, file)},
    {"--dir", O_DIR, offsetof(topts, dir)},
    {"--rate", O_RATE, offsetof(topts, rate)},
    {"--batch", O_BATCH, offsetof(topts, batch)},
    {"--restart", O_RESTART, (size_t)-1},
    {"--quiet", O_QUIET, (size_t)-1},
};

bool sessctl_is_store_tool(const char *word)
{
    for (size_t i = 0; word && i < N_TOOLS; i++)
        if (strcmp(word, tools[i].name) == 0)
            return true;
    return false;
}

static void tool_usage(FILE *out)
{
    fprintf(out, "store tools (docs/migration.md, docs/formats.md):\n");
    for (size_t i = 0; i < N_TOOLS; i++)
        fprintf(out, "  sessctl %s\n      %s\n", tools[i].usage, tools[i].help);
    fprintf(out,
            "\n  --dir KEYS   record key directory (default %s)\n"
            "  --rate N     at most N entries per second (default: no limit)\n"
            "  --batch N    entries per scan batch and checkpoint (default %d)\n"
            "  --restart    ignore a saved checkpoint and walk from the start\n"
            "  store password: SESSCTL_STORE_PASSWORD (never on the command line)\n"
            "exit codes: 0 done, 1 failure, 2 usage\n",
            DEFAULT_KEYS_DIR, DEFAULT_BATCH);
}

static int tool_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int tool_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("sessctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see sessctl migrate --help)\n", stderr);
    return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("sessctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* A positive decimal of at most 9 digits, or -1. */
static long small_number(const char *s)
{
    long v = 0;
    size_t n = 0;
    for (; s[n] >= '0' && s[n] <= '9' && n < 9; n++)
        v = v * 10 + (s[n] - '0');
    return n == 0 || s[n] != '\0' || v == 0 ? -1 : v;
}

int sessctl_store_tool(int argc, char **argv)
{
    topts o = {0};
    const tool *t = NULL;
    for (size_t i = 0; i < N_TOOLS; i++)
        if (strcmp(argv[1], tools[i].name) == 0)
            t = &tools[i];
    if (!t)
        return tool_usage_error("unknown command '%s'", argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool matched = false;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            tool_usage(stdout);
            return 0;
        }
        for (size_t j = 0; j < sizeof topt_table / sizeof topt_table[0] && !matched; j++) {
            size_t n = strlen(topt_table[j].name);
            if (strncmp(a, topt_table[j].name, n) != 0 || (a[n] != '\0' && a[n] != '='))
                continue;
            matched = true;
            if (topt_table[j].off == (size_t)-1) {
                if (a[n] == '=')
                    return tool_usage_error("%s takes no value", topt_table[j].name);
                if (topt_table[j].bit == O_RESTART)
                    o.restart = true;
                else
                    o.quiet = true;
            } else {
                const char *v = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!v || !*v)
                    return tool_usage_error("%s needs a value", topt_table[j].name);
                *(const char **)((char *)&o + topt_table[j].off) = v;
            }
            o.given |= topt_table[j].bit;
        }
        if (!matched)
            return tool_usage_error("unexpected argument '%s' for '%s' (usage: sessctl %s)",
                                    a[0] == '-' ? a : "...", t->name, t->usage);
    }
    if ((o.given & ~t->allow) != 0)
        return tool_usage_error("an option given does not apply to '%s' (usage: sessctl %s)",
                                t->name, t->usage);
    if ((o.given & t->need) != t->need)
        return tool_usage_error("usage: sessctl %s", t->usage);
    if (o.rate && small_number(o.rate) < 0)
        return tool_usage_error("--rate needs a positive number of entries per second");
    if (o.batch && (small_number(o.batch) < 0 || small_number(o.batch) > SESS_SCAN_BATCH_MAX))
        return tool_usage_error("--batch needs a number from 1 to %u", SESS_SCAN_BATCH_MAX);
    return t->run(&o);
}

/* ---- shared helpers ------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Ctrl-C and TERM finish the batch in hand and save the checkpoint. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

/* Open a store; an lmdb: path must exist when "must_exist" (opening a
 * mistyped path would create an empty store and copy nothing). */
static int open_store(const char *url, bool must_exist, sess_store **out)
{
    sess_store_options so = {0};
    sess_err err = {0};
    if (must_exist && strncmp(url, "lmdb:", 5) == 0) {
        struct stat sb;
        if (stat(url + 5, &sb) != 0)
            return fail("no store at %s: %s", url + 5, strerror(errno));
    }
    so.password = getenv("SESSCTL_STORE_PASSWORD");
    so.l1_cache = -1;             /* a tool reads every entry once */
    /* A batch tool waits longer than sessiond's 20 ms per reply: a loaded
     * server must slow a backfill down, not stop it. */
    so.timeout_ms = TOOL_TIMEOUT_MS;
    so.connect_timeout_ms = TOOL_TIMEOUT_MS;
    int rc = sess_store_open(url, &so, out, &err);
    if (rc != SESS_OK)
        return fail("cannot open store: %s", err.msg);
    if (!SESS_STORE_SCAN(*out) && must_exist) {
        sess_store_close(*out);
        *out = NULL;
        return fail("this store cannot be walked (no scan method)");
    }
    return 0;
}

static int load_keys(const topts *o, sess_keyring **kr)
{
    sess_err err = {0};
    const char *dir = o->dir ? o->dir : DEFAULT_KEYS_DIR;
    if (sess_keyring_load_dir(dir, false, kr, &err) != SESS_OK)
        return fail("cannot load record keys from %s: %s", dir, err.msg);
    return 0;
}

/* SHA-256 of "url" without a password ("scheme://user:pass@host" keeps
 * "scheme://host"): names a migration's source in the progress entry
 * without storing anything a password could be guessed from. */
static void source_hash(const char *url, uint8_t out[32])
{
    char buf[4096];
    const char *at = strchr(url, '@'), *sl = strstr(url, "://");
    if (at && sl && at > sl)
        snprintf(buf, sizeof buf, "%.*s%s", (int)(sl + 3 - url), url, at + 1);
    else
        snprintf(buf, sizeof buf, "%s", url);
    unsigned int n = 0;
    EVP_Digest(buf, strlen(buf), out, &n, EVP_sha256(), NULL);
}

/* ---- progress on the terminal ---------------------------------------------- */

typedef struct ui {
    const char *verb;
    bool tty, quiet;
    double start, last;
} ui;

static void ui_init(ui *u, const char *verb, bool quiet)
{
    u->verb = verb;
    u->tty = isatty(STDERR_FILENO) == 1;
    u->quiet = quiet;
    u->start = u->last = clock_mono_s();
}

/* A bar on a terminal (redrawn at most ten times a second), a line every
 * two seconds otherwise (logs, CI), and always a last line. */
static void ui_show(ui *u, const sess_progress *p, bool last)
{
    double t = clock_mono_s();
    if (u->quiet && !last)
        return;
    if (!last && t - u->last < (u->tty ? 0.1 : 2.0))
        return;
    u->last = t;
    double el = t - u->start;
    double rate = el > 0 ? (double)p->scanned / el : 0;
    unsigned pct = p->total ? (unsigned)(p->scanned * 100 / p->total) : 0;
    if (pct > 100 || p->done)
        pct = p->done ? 100 : 99;
    if (u->tty) {
        char bar[31];
        unsigned fill = pct * 30 / 100;
        for (unsigned i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %3u%% %llu/%llu  copied %llu  skipped %llu  removed %llu"
                        "  failed %llu  %.0f/s ",
                u->verb, bar, pct, (unsigned long long)p->scanned,
                (unsigned long long)p->total, (unsigned long long)p->copied,
                (unsigned long long)p->skipped, (unsigned long long)p->removed,
                (unsigned long long)p->failed, rate);
        if (last)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %s%llu of about %llu scanned, %llu copied, %llu skipped, "
                        "%llu removed, %llu failed, %.0f/s\n",
                u->verb, last ? (p->done ? "done: " : "stopped: ") : "",
                (unsigned long long)p->scanned, (unsigned long long)p->total,
                (unsigned long long)p->copied, (unsigned long long)p->skipped,
                (unsigned long long)p->removed, (unsigned long long)p->failed, rate);
    }
    fflush(stderr);
}

/* --rate: sleep so that "n" entries took at least n / rate seconds. */
typedef struct pacer {
    long rate;
    double start;
    uint64_t n;
} pacer;

static void pace(pacer *pc)
{
    if (pc->rate <= 0)
        return;
    pc->n++;
    double due = pc->start + (double)pc->n / (double)pc->rate, t = clock_mono_s();
    if (due > t) {
        double d = due - t;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* ---- the walk (migrate, rekey) ------------------------------------------------ */

typedef struct walk {
    sess_store *src, *dst;        /* rekey: both the store */
    sess_keyring *kr;             /* rekey */
    char primary[SESS_KID_MAX + 1];
    sess_progress p;
    pacer pc;
    uint64_t skip_ended;          /* SESS_ENTRY_RETAIN: leave ended sessions out */
    int err_rc;                   /* a store error that ends the run */
    char err_msg[SESS_ERRSTR_MAX];
    bool warned_failed;
} walk;

static bool same_blob(const sess_entry *a, const uint8_t *b, size_t blen)
{
    return a->blob_len == blen && (blen == 0 || memcmp(a->blob, b, blen) == 0);
}

/* A store error that is not about this one entry: stop the walk (the
 * checkpoint keeps the batch for the next run). */
static bool fatal(walk *w, int rc, const sess_err *err)
{
    if (rc == SESS_EUNAVAILABLE || rc == SESS_EIO || rc == SESS_ENOMEM || rc == SESS_EFULL) {
        if (!w->err_rc) {
            w->err_rc = rc;
            snprintf(w->err_msg, sizeof w->err_msg, "%s", err->msg);
        }
        return true;
    }
    return false;
}

static void entry_failed(walk *w, const char *what, const sess_err *err)
{
    w->p.failed++;
    if (!w->warned_failed) {
        /* Once: the message names the operation, never the entry. */
        fprintf(stderr, "\nsessctl: %s: %s (further failures only counted)\n", what, err->msg);
        w->warned_failed = true;
    }
}

/* Copy one entry of FROM into TO (see the top of this file). */
static int copy_cb(void *ctx, const sess_entry *e)
{
    walk *w = ctx;
    uint64_t now = now_s();
    sess_err err = {0};
    sess_store_buf tb = {0}, fb = {0};
    sess_entry te, fe;

    if (g_stop || w->err_rc)
        return 1;
    if (sess_store_is_state_key(e->key))
        return 0;                 /* a tool's own progress entry */
    w->p.scanned++;
    int rc = w->dst->methods->insert(w->dst, e, NULL, now, NULL, &err);
    if (rc == SESS_OK) {
        /* Check against FROM: destroyed meanwhile -> take the copy back;
         * changed meanwhile -> bring TO up to date. */
        int frc = w->src->methods->get(w->src, e->key, now, &fe, &fb, &err);
        if (frc == SESS_NOTFOUND) {
            (void)w->dst->methods->remove(w->dst, e->key, NULL, NULL);
            w->p.removed++;
        } else if (frc == SESS_OK && !same_blob(&fe, e->blob, e->blob_len)) {
            (void)w->dst->methods->update(w->dst, &fe, e->blob, e->blob_len, now, NULL);
            w->p.copied++;
        } else if (frc == SESS_OK) {
            w->p.copied++;
        } else {
            /* Cannot check: take the copy back rather than risk it. */
            (void)w->dst->methods->remove(w->dst, e->key, NULL, NULL);
            if (!fatal(w, frc, &err))
                entry_failed(w, "check against the source", &err);
        }
    } else if (rc == SESS_EXISTS) {
        /* There already (sessiond wrote it in shadow/dual/route, or an
         * earlier run copied it); FROM is the truth while it is in use. */
        int trc = w->dst->methods->get(w->dst, e->key, now, &te, &tb, &err);
        if (trc == SESS_OK && !same_blob(&te, e->blob, e->blob_len)) {
            int frc = w->src->methods->get(w->src, e->key, now, &fe, &fb, &err);
            if (frc == SESS_OK && !same_blob(&fe, te.blob, te.blob_len) &&
                w->dst->methods->update(w->dst, &fe, te.blob, te.blob_len, now, NULL) == SESS_OK)
                w->p.copied++;
            else
                w->p.skipped++;
        } else {
            /* Same record, or the handle belongs to a newer key (the
             * session rotated meanwhile): nothing to do. */
            w->p.skipped++;
        }
    } else if (!fatal(w, rc, &err)) {
        entry_failed(w, "copy", &err);
    }
    sess_store_buf_free(&tb);
    sess_store_buf_free(&fb);
    pace(&w->pc);
    return w->err_rc != 0 || g_stop;
}

/* Re-seal one record under the newest key, compare-and-swap. */
static int reseal_cb(void *ctx, const sess_entry *e)
{
    walk *w = ctx;
    uint64_t now = now_s();
    char kid[SESS_KID_MAX + 1];
    sess_err err = {0};

    if (g_stop || w->err_rc)
        return 1;
    if (sess_store_is_state_key(e->key))
        return 0;
    w->p.scanned++;
    if (sess_sealed_kid(e->blob, e->blob_len, kid, sizeof kid) != SESS_OK) {
        err.code = SESS_ECORRUPT;
        snprintf(err.msg, sizeof err.msg, "a stored record has a malformed header");
        entry_failed(w, "rekey", &err);
        return 0;
    }
    if (strcmp(kid, w->primary) == 0) {
        w->p.skipped++;           /* done already: resuming costs no crypto */
        return 0;
    }
    sess_entry cur = *e;
    sess_store_buf cb = {0}, nb = {0};
    int rc = SESS_OK;
    for (int attempt = 0; attempt < RETRIES; attempt++) {
        rc = sess_reseal(w->kr, cur.key, cur.blob, cur.blob_len, &nb, &err);
        if (rc != SESS_OK)
            break;
        sess_entry ne = cur;
        ne.blob = nb.data;
        ne.blob_len = nb.len;
        rc = w->dst->methods->update(w->dst, &ne, cur.blob, cur.blob_len, now, &err);
        if (rc != SESS_CONFLICT)
            break;
        /* sessiond wrote the record meanwhile: take its new version (it
         * may already be under the newest key). */
        rc = w->dst->methods->get(w->dst, e->key, now, &cur, &cb, &err);
        if (rc != SESS_OK)
            break;
        if (sess_sealed_kid(cur.blob, cur.blob_len, kid, sizeof kid) == SESS_OK &&
            strcmp(kid, w->primary) == 0) {
            rc = SESS_EXISTS;
            break;
        }
    }
    if (rc == SESS_OK)
        w->p.copied++;
    else if (rc == SESS_NOTFOUND || rc == SESS_EXISTS)
        w->p.skipped++;           /* gone, or re-sealed by sessiond itself */
    else if (!fatal(w, rc, &err))
        entry_failed(w, rc == SESS_ENOKEY ? "rekey (the record's key is not in the keyring)"
                                          : "rekey", &err);
    sess_store_buf_free(&cb);
    sess_store_buf_free(&nb);
    pace(&w->pc);
    return w->err_rc != 0 || g_stop;
}

/* Walk "w->src" with "fn", saving progress of "kind" in "w->dst". */
static int run_walk(walk *w, const topts *o, sess_progress_kind kind, const char *verb,
                    const uint8_t source[32], sess_store_list_fn fn)
{
    sess_err err = {0};
    ui u;
    uint64_t now = now_s();
    size_t batch = o->batch ? (size_t)small_number(o->batch) : DEFAULT_BATCH;
    sess_progress saved;
    int rc = sess_progress_load(w->dst, kind, now, &saved, &err);

    catch_signals();
    ui_init(&u, verb, o->quiet);
    memset(&w->p, 0, sizeof w->p);
    if (rc == SESS_OK && !o->restart && !saved.done && !saved.cursor.done &&
        memcmp(saved.source, source, 32) == 0) {
        w->p = saved;             /* resume: same walk, not finished */
        if (!o->quiet)
            fprintf(stderr, "%s: resuming a walk started at %llu (%llu entries scanned then)\n",
                    verb, (unsigned long long)saved.started_at,
                    (unsigned long long)saved.scanned);
    } else if (rc != SESS_OK && rc != SESS_NOTFOUND && rc != SESS_ECORRUPT) {
        return fail("cannot read the saved progress: %s", err.msg);
    }
    if (!w->p.started_at) {
        w->p.kind = kind;
        w->p.started_at = now;
        memcpy(w->p.source, source, 32);
    }
    uint64_t total = 0;
    if (w->src->methods->count(w->src, now + SESS_ENTRY_RETAIN, &total, &err) == SESS_OK)
        w->p.total = total > w->p.scanned ? total : w->p.scanned;
    w->pc.rate = o->rate ? small_number(o->rate) : 0;
    w->pc.start = clock_mono_s();
    w->p.done = 0;

    int retries = 0;
    while (!w->p.cursor.done && !g_stop && !w->err_rc) {
        sess_store_cursor before = w->p.cursor;
        sess_progress snapshot = w->p;
        rc = SESS_STORE_SCAN(w->src)(w->src, &w->p.cursor, now_s() + w->skip_ended, batch, fn,
                                     w, &err);
        if (rc != SESS_OK) {
            w->p.cursor = before;
            return fail("%s: walking the store failed: %s (run again to resume)", verb, err.msg);
        }
        if (w->err_rc || g_stop) {
            /* The batch did not finish: its counters and cursor are not
             * saved, the next run redoes it (every step is idempotent).
             * A store that was briefly unavailable gets a few more tries
             * of the same batch first. */
            w->p = snapshot;
            if (!g_stop && w->err_rc == SESS_EUNAVAILABLE && retries++ < BATCH_RETRIES) {
                fprintf(stderr, "\n%s: %s; retrying the batch\n", verb, w->err_msg);
                w->err_rc = 0;
                sleep(1);
                continue;
            }
            break;
        }
        retries = 0;
        w->p.updated_at = now_s();
        if (w->p.scanned > w->p.total)
            w->p.total = w->p.scanned;
        if (sess_progress_save(w->dst, &w->p, now_s(), &err) != SESS_OK)
            return fail("%s: cannot save progress: %s", verb, err.msg);
        ui_show(&u, &w->p, false);
    }
    if (w->p.cursor.done) {
        w->p.done = 1;
        w->p.updated_at = now_s();
        if (sess_progress_save(w->dst, &w->p, now_s(), &err) != SESS_OK)
            return fail("%s: cannot save progress: %s", verb, err.msg);
    } else {
        (void)sess_progress_save(w->dst, &w->p, now_s(), NULL);
    }
    ui_show(&u, &w->p, true);
    if (w->err_rc)
        return fail("%s: stopped: %s (run again to resume)", verb, w->err_msg);
    if (g_stop)
        return fail("%s: interrupted (run again to resume)", verb);
    return w->p.failed ? fail("%s: %llu entries failed", verb,
                              (unsigned long long)w->p.failed)
                       : 0;
}

static int run_migrate(const topts *o)
{
    walk w;
    uint8_t source[32];
    int rc;

    memset(&w, 0, sizeof w);
    if (strcmp(o->from, o->to) == 0)
        return fail("--from and --to name the same store");
    if ((rc = open_store(o->from, true, &w.src)) != 0)
        return rc;
    if ((rc = open_store(o->to, false, &w.dst)) != 0) {
        sess_store_close(w.src);
        return rc;
    }
    source_hash(o->from, source);
    w.skip_ended = SESS_ENTRY_RETAIN; /* a session that ended is not carried */
    rc = run_walk(&w, o, SESS_PROGRESS_MIGRATE, "migrate", source, copy_cb);
    sess_store_close(w.src);
    sess_store_close(w.dst);
    return rc;
}

static int run_rekey(const topts *o)
{
    walk w;
    uint8_t source[32];
    int rc;

    memset(&w, 0, sizeof w);
    if ((rc = load_keys(o, &w.kr)) != 0)
        return rc;
    snprintf(w.primary, sizeof w.primary, "%s", sess_keyring_kid(w.kr, 0));
    if ((rc = open_store(o->store, true, &w.src)) != 0) {
        sess_keyring_free(w.kr);
        return rc;
    }
    w.dst = w.src;
    source_hash(o->store, source);
    if (!o->quiet)
        fprintf(stderr, "rekey: re-sealing under key %s\n", w.primary);
    rc = run_walk(&w, o, SESS_PROGRESS_REKEY, "rekey", source, reseal_cb);
    if (rc == 0 && !o->quiet)
        fprintf(stderr, "rekey: every record is sealed under %s; older keys can be retired "
                        "once every sessiond has it (docs/migration.md)\n", w.primary);
    sess_store_close(w.src);
    sess_keyring_free(w.kr);
    return rc;
}

/* ---- the export format (docs/formats.md) ------------------------------------ */

typedef struct exporter {
    FILE *out;
    EVP_MD_CTX *md;
    uint64_t records, unreadable;
    int io_err;
    ui u;
    sess_progress p;              /* for the progress line only */
    const sess_keyring *kr;
} exporter;

/* Write one line, JSON then '\n', into the file and the running digest. */
static int put_line(exporter *x, json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    if (!s)
        return -1;
    size_t n = strlen(s);
    int rc = 0;
    if (fwrite(s, 1, n, x->out) != n || fputc('\n', x->out) == EOF)
        rc = -1;
    else if (EVP_DigestUpdate(x->md, s, n) != 1 || EVP_DigestUpdate(x->md, "\n", 1) != 1)
        rc = -1;
    free(s);
    return rc;
}

static int export_cb(void *ctx, const sess_entry *e)
{
    exporter *x = ctx;
    char kid[SESS_KID_MAX + 1];
    if (x->io_err || g_stop)
        return 1;
    if (sess_store_is_state_key(e->key))
        return 0;
    x->p.scanned++;
    /* A record under a key this keyring lacks could not be imported
     * anywhere this keyring's fingerprints vouch for: count it, skip it. */
    if (sess_sealed_kid(e->blob, e->blob_len, kid, sizeof kid) != SESS_OK ||
        sess_keyring_fingerprint(x->kr, kid, (uint8_t[SESS_KEY_FINGERPRINT_BYTES]){0}) != SESS_OK) {
        x->unreadable++;
        x->p.skipped++;
        return 0;
    }
    char *k = export_b64(e->key, SESS_STORE_KEY_BYTES),
         *h = export_b64(e->handle, SESS_STORE_HANDLE_BYTES),
         *u = export_b64(e->user, SESS_STORE_USER_BYTES), *b = export_b64(e->blob, e->blob_len);
    json_t *o = (k && h && u && b)
                    ? json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "k", k, "h", h, "u", u,
                                "c", (json_int_t)e->created_at, "e", (json_int_t)e->expires_at,
                                "f", (json_int_t)e->flags, "b", b)
                    : NULL;
    if (!o || put_line(x, o) != 0)
        x->io_err = 1;
    else {
        x->records++;
        x->p.copied++;
    }
    free(k);
    free(h);
    free(u);
    if (b) {
        OPENSSL_cleanse(b, strlen(b));
        free(b);
    }
    ui_show(&x->u, &x->p, false);
    return x->io_err;
}

static int run_export(const topts *o)
{
    exporter x;
    sess_store *st = NULL;
    sess_keyring *kr = NULL;
    sess_err err = {0};
    char tmp[4096] = "";
    int rc;

    memset(&x, 0, sizeof x);
    if ((rc = load_keys(o, &kr)) != 0)
        return rc;
    if ((rc = open_store(o->from, true, &st)) != 0) {
        sess_keyring_free(kr);
        return rc;
    }
    x.kr = kr;
    catch_signals();
    ui_init(&x.u, "export", o->quiet || !o->file);
    if (o->file && strcmp(o->file, "-") != 0) {
        /* Written beside the target and renamed at the end: a crash never
         * leaves a plausible file (and a truncated one is refused anyway).
         * 0600: the file holds sealed records and user hashes. */
        snprintf(tmp, sizeof tmp, "%s.partial", o->file);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        x.out = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!x.out) {
            rc = fail("cannot write %s: %s", tmp, strerror(errno));
            goto cleanup;
        }
    } else {
        x.out = stdout;
    }
    x.md = EVP_MD_CTX_new();
    if (!x.md || EVP_DigestInit_ex(x.md, EVP_sha256(), NULL) != 1) {
        rc = fail("cannot set up SHA-256");
        goto cleanup;
    }
    uint64_t now = now_s(), total = 0;
    if (st->methods->count(st, now + SESS_ENTRY_RETAIN, &total, &err) == SESS_OK)
        x.p.total = total;

    /* Header: every key of this keyring by id and fingerprint. */
    json_t *keys = json_array();
    for (size_t i = 0; keys && i < sess_keyring_count(kr); i++) {
        uint8_t fp[SESS_KEY_FINGERPRINT_BYTES];
        char fph[2 * SESS_KEY_FINGERPRINT_BYTES + 1];
        const char *kid = sess_keyring_kid(kr, i);
        if (sess_keyring_fingerprint(kr, kid, fp) != SESS_OK)
            continue;
        hex_encode(fp, sizeof fp, fph);
        json_array_append_new(keys, json_pack("{s:s, s:s}", "kid", kid, "fingerprint", fph));
    }
    const char *colon = strchr(o->from, ':');
    char scheme[33];
    snprintf(scheme, sizeof scheme, "%.*s", colon ? (int)(colon - o->from) : 0, o->from);
    json_t *hdr = keys ? json_pack("{s:s, s:i, s:I, s:s, s:o}", "format", EXPORT_FORMAT,
                                   "version", EXPORT_VERSION, "created_at", (json_int_t)now,
                                   "source", scheme, "keys", keys)
                       : NULL;
    if (!hdr || put_line(&x, hdr) != 0) {
        rc = fail("cannot write the export header");
        goto cleanup;
    }
    sess_store_cursor cur = {0};
    while (!cur.done && !x.io_err && !g_stop) {
        /* Sessions that ended (kept SESS_ENTRY_RETAIN longer for their
         * reason) are not carried. */
        if (SESS_STORE_SCAN(st)(st, &cur, now_s() + SESS_ENTRY_RETAIN, DEFAULT_BATCH, export_cb,
                                &x, &err) != SESS_OK) {
            rc = fail("export: walking the store failed: %s", err.msg);
            goto cleanup;
        }
    }
    if (x.io_err) {
        rc = fail("export: write failed: %s", strerror(errno));
        goto cleanup;
    }
    if (g_stop) {
        rc = fail("export: interrupted; the file was not finished");
        goto cleanup;
    }
    unsigned char md[32];
    unsigned int mdn = 0;
    char mdh[65];
    if (EVP_DigestFinal_ex(x.md, md, &mdn) != 1) {
        rc = fail("cannot finish SHA-256");
        goto cleanup;
    }
    hex_encode(md, 32, mdh);
    json_t *end = json_pack("{s:b, s:I, s:s}", "end", 1, "records", (json_int_t)x.records,
                            "sha256", mdh);
    char *s = end ? json_dumps(end, JSON_COMPACT) : NULL;
    json_decref(end);
    bool ok = s && fprintf(x.out, "%s\n", s) > 0 && fflush(x.out) == 0;
    free(s);
    if (ok && tmp[0])
        ok = fsync(fileno(x.out)) == 0;
    if (!ok) {
        rc = fail("export: write failed: %s", strerror(errno));
        goto cleanup;
    }
    if (tmp[0]) {
        fclose(x.out);
        x.out = NULL;
        if (rename(tmp, o->file) != 0) {
            rc = fail("cannot rename %s: %s", tmp, strerror(errno));
            goto cleanup;
        }
        tmp[0] = '\0';
    }
    x.p.done = 1;
    if (!o->quiet)
        fprintf(stderr, "export: %llu sessions written%s\n", (unsigned long long)x.records,
                x.unreadable ? " (some records were sealed with keys not in --dir, "
                               "not exported)" : "");
    rc = x.unreadable ? 1 : 0;

cleanup:
    if (x.out && x.out != stdout)
        fclose(x.out);
    if (tmp[0])
        unlink(tmp);
    EVP_MD_CTX_free(x.md);
    sess_store_close(st);
    sess_keyring_free(kr);
    return rc;
}

/* ---- import --------------------------------------------------------------------- */

/* The second pass: insert each record (the file was checked). */
typedef struct import_ctx {
    sess_store *st;
    sess_progress p;
    ui u;
} import_ctx;

static int import_cb(void *ctx, const sess_entry *e, size_t lineno, char *msg, size_t cap)
{
    import_ctx *ic = ctx;
    sess_err err = {0};
    uint64_t now = now_s();
    ic->p.scanned++;
    if (e->expires_at <= now + SESS_ENTRY_RETAIN) {
        ic->p.skipped++;          /* ended since the export */
    } else {
        int rc = ic->st->methods->insert(ic->st, e, NULL, now, NULL, &err);
        if (rc == SESS_OK) {
            ic->p.copied++;
        } else if (rc == SESS_EXISTS) {
            ic->p.skipped++;
        } else if (rc == SESS_EUNAVAILABLE || rc == SESS_EIO || rc == SESS_EFULL ||
                   rc == SESS_ENOMEM) {
            snprintf(msg, cap, "stopped at line %zu: %s (%llu imported; running it again is "
                               "safe)", lineno, err.msg, (unsigned long long)ic->p.copied);
            return 1;
        } else {
            ic->p.failed++;
        }
    }
    ui_show(&ic->u, &ic->p, false);
    return 0;
}

static int run_import(const topts *o)
{
    sess_keyring *kr = NULL;
    import_ctx ic;
    uint64_t n1 = 0, n2 = 0;
    uint8_t d1[32], d2[32];
    char msg[512];
    FILE *in = NULL;
    int rc;

    memset(&ic, 0, sizeof ic);
    if ((rc = load_keys(o, &kr)) != 0)
        return rc;
    in = fopen(o->file, "r");
    if (!in) {
        rc = fail("cannot read %s: %s", o->file, strerror(errno));
        goto cleanup;
    }
    /* Pass 1 checks the whole file before the store is even opened. */
    if (export_read(in, kr, NULL, NULL, &n1, d1, msg, sizeof msg) != EXPORT_OK) {
        rc = fail("%s %s; nothing was imported", o->file, msg);
        goto cleanup;
    }
    if ((rc = open_store(o->to, false, &ic.st)) != 0)
        goto cleanup;
    rewind(in);
    ui_init(&ic.u, "import", o->quiet);
    int r = export_read(in, kr, import_cb, &ic, &n2, d2, msg, sizeof msg);
    if (r == EXPORT_STOPPED) {
        rc = fail("import %s", msg);
        goto cleanup;
    }
    if (r != EXPORT_OK || n1 != n2 || memcmp(d1, d2, 32) != 0) {
        rc = fail("%s changed while it was imported; run the import again", o->file);
        goto cleanup;
    }
    if (!o->quiet)
        fprintf(stderr, "import: %llu records: %llu imported, %llu skipped (present or "
                        "ended), %llu failed\n",
                (unsigned long long)n1, (unsigned long long)ic.p.copied,
                (unsigned long long)ic.p.skipped, (unsigned long long)ic.p.failed);
    rc = ic.p.failed ? 1 : 0;

cleanup:
    if (in)
        fclose(in);
    sess_store_close(ic.st);
    sess_keyring_free(kr);
    return rc;
}
