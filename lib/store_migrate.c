/*
 * store_migrate.c - the migration store ("migrate:MODE|FROM|TO"): a store
 * over two stores, FROM (the one in use) and TO (the one being moved to),
 * so that a site changes backends as a series of mode changes instead of a
 * restart that logs everyone out (docs/migration.md, the runbook).
 *
 * Modes (sess/store_migrate.h) and who is authoritative:
 *   off           FROM only.
 *   shadow        reads FROM; writes FROM, then TO best-effort (a failure
 *                 is counted and never shown to the user).
 *   dual          writes FROM then TO, both must succeed; reads both,
 *                 compares (mismatches counted by kind), serves FROM.
 *   route:N       N% of sessions (stable hash of the storage key) are read
 *                 from TO, with FROM as the fallback; writes as in dual,
 *                 so lowering N (rollback) loses nothing.
 *   read-through  reads TO; on a miss reads FROM and copies the entry to
 *                 TO.  Writes TO (authoritative), then FROM best-effort
 *                 so that a rollback to route/dual still finds them.
 *   new           TO only.
 * The primary store (FROM up to route:N, TO from read-through on) applies
 * the per-user limit; its evictions are replayed on the other store by
 * handle, so both hold the same set.  In read-through TO is authoritative
 * for the limit and the per-user list, which is exact once the backfill
 * (sessctl migrate) has run: the runbook enters read-through only after
 * route:100 with a completed backfill (docs/migration.md).
 *
 * Security invariants in every mode but off and new: remove and
 * remove_user go to BOTH stores, FROM first, then TO.  A read-through copy
 * re-reads FROM after writing TO and deletes its copy when FROM no longer
 * holds the same record: whichever order a destroy and a copy interleave
 * in, the destroyed session cannot come back from TO (docs/migration.md,
 * "Where the pair is not atomic").  A dual read that finds a session in TO
 * but not in FROM deletes it from TO (a session whose destroy did not
 * reach TO in shadow).  When a write to the second store meets a record it
 * does not expect (not backfilled yet, or different), the entry is copied
 * over from the primary ("repair") rather than failing the request.
 *
 * Mode changes at run time: the mode is one atomic word; every operation
 * loads it once and follows that mode to its end, so a change never tears
 * an operation and the hot path takes no lock.  Operations that started
 * under the old mode finish under it; that is safe because every mode
 * from shadow to read-through writes both stores.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sess/store.h"
#include "sess/store_migrate.h"
#include "store_internal.h"
#include "util.h"

#define URL_MAX 4096

enum { C_SHADOW_FAIL, C_TO_FAIL, C_MISS_TO, C_MISS_FROM, C_DIFFER, C_COPIES,
       C_FALLBACKS, C_REPAIRS, C_MODE_CHANGES, C_N };

struct mig_store {
    sess_store base;                  /* first: sess_store rule */
    sess_store *from, *to;
    _Atomic uint32_t mode;            /* kind | pct << 8 */
    _Atomic uint64_t req[SESS_MIGRATE_KINDS][2];
    _Atomic uint64_t ctr[C_N];
};

static const char *const kind_names[SESS_MIGRATE_KINDS] = {
    [SESS_MIGRATE_OFF] = "off",       [SESS_MIGRATE_SHADOW] = "shadow",
    [SESS_MIGRATE_DUAL] = "dual",     [SESS_MIGRATE_ROUTE] = "route",
    [SESS_MIGRATE_READ_THROUGH] = "read-through", [SESS_MIGRATE_NEW] = "new",
};

extern const sess_store_methods sess__store_migrate_methods;
static const sess_store_methods migrate_routed_methods;

const char *sess_migrate_kind_name(sess_migrate_kind k)
{
    return (unsigned)k < SESS_MIGRATE_KINDS ? kind_names[k] : "?";
}

int sess_migrate_mode_parse(const char *text, sess_migrate_kind *kind,
                            unsigned *pct, sess_err *err)
{
    if (!text || !kind || !pct)
        return sess__fail(err, SESS_EINVAL, "migration mode: missing argument");
    *pct = 0;
    if (strncmp(text, "route:", 6) == 0) {
        const char *p = text + 6;
        unsigned v = 0;
        size_t n = 0;
        for (; p[n] >= '0' && p[n] <= '9' && n < 4; n++)
            v = v * 10 + (unsigned)(p[n] - '0');
        if (n == 0 || p[n] != '\0' || v > 100)
            return sess__fail(err, SESS_EINVAL,
                              "migration mode: route:N needs N from 0 to 100");
        *kind = SESS_MIGRATE_ROUTE;
        *pct = v;
        return SESS_OK;
    }
    for (int k = 0; k < SESS_MIGRATE_KINDS; k++) {
        if (k != SESS_MIGRATE_ROUTE && strcmp(text, kind_names[k]) == 0) {
            *kind = (sess_migrate_kind)k;
            return SESS_OK;
        }
    }
    return sess__fail(err, SESS_EINVAL,
                      "migration mode: expected off, shadow, dual, route:N, "
                      "read-through or new");
}

bool sess_store_is_migrate(const sess_store *st)
{
    return st && (st->methods == &sess__store_migrate_methods ||
                  st->methods == &migrate_routed_methods);
}

static uint32_t mode_load(struct mig_store *st)
{
    return atomic_load_explicit(&st->mode, memory_order_acquire);
}

static sess_migrate_kind kind_of(uint32_t m) { return (sess_migrate_kind)(m & 0xFF); }
static unsigned pct_of(uint32_t m) { return (m >> 8) & 0xFF; }

int sess_store_migrate_set_mode(sess_store *base, const char *mode, sess_err *err)
{
    sess_migrate_kind k;
    unsigned pct;
    if (!sess_store_is_migrate(base))
        return sess__fail(err, SESS_EINVAL, "not a migration store");
    int rc = sess_migrate_mode_parse(mode, &k, &pct, err);
    if (rc != SESS_OK)
        return rc;
    struct mig_store *st = (struct mig_store *)base;
    atomic_store_explicit(&st->mode, (uint32_t)k | (pct << 8), memory_order_release);
    atomic_fetch_add_explicit(&st->ctr[C_MODE_CHANGES], 1, memory_order_relaxed);
    return SESS_OK;
}

int sess_store_migrate_mode(const sess_store *base, char *out, size_t len)
{
    if (!sess_store_is_migrate(base) || !out || len == 0)
        return SESS_EINVAL;
    uint32_t m = mode_load((struct mig_store *)base);
    if (kind_of(m) == SESS_MIGRATE_ROUTE)
        snprintf(out, len, "route:%u", pct_of(m));
    else
        snprintf(out, len, "%s", sess_migrate_kind_name(kind_of(m)));
    return SESS_OK;
}

int sess_store_migrate_counters(const sess_store *base, sess_migrate_counters *o)
{
    if (!sess_store_is_migrate(base) || !o)
        return SESS_EINVAL;
    struct mig_store *st = (struct mig_store *)base;
    memset(o, 0, sizeof *o);
    for (int k = 0; k < SESS_MIGRATE_KINDS; k++)
        for (int s = 0; s < 2; s++)
            o->requests[k][s] = atomic_load_explicit(&st->req[k][s], memory_order_relaxed);
#define LD(i) atomic_load_explicit(&st->ctr[i], memory_order_relaxed)
    o->shadow_write_failures = LD(C_SHADOW_FAIL);
    o->to_write_failures = LD(C_TO_FAIL);
    o->mismatch_missing_to = LD(C_MISS_TO);
    o->mismatch_missing_from = LD(C_MISS_FROM);
    o->mismatch_differ = LD(C_DIFFER);
    o->read_through_copies = LD(C_COPIES);
    o->fallbacks = LD(C_FALLBACKS);
    o->repairs = LD(C_REPAIRS);
    o->mode_changes = LD(C_MODE_CHANGES);
#undef LD
    return SESS_OK;
}

sess_store *sess_store_migrate_from(const sess_store *base)
{
    return sess_store_is_migrate(base) ? ((const struct mig_store *)base)->from : NULL;
}

sess_store *sess_store_migrate_to(const sess_store *base)
{
    return sess_store_is_migrate(base) ? ((const struct mig_store *)base)->to : NULL;
}

/* ---- the plan of one operation under one mode -------------------------- */

typedef struct plan {
    sess_migrate_kind kind;
    unsigned pct;
    sess_store *p;        /* primary: authoritative for writes and the limit */
    sess_store *s;        /* secondary, NULL when not written */
    bool s_strict;        /* a secondary failure fails the request */
    bool deletes_both;    /* remove / remove_user reach both stores */
} plan;

static plan plan_of(struct mig_store *st)
{
    uint32_t m = mode_load(st);
    plan pl = {.kind = kind_of(m), .pct = pct_of(m), .p = st->from};
    switch (pl.kind) {
    case SESS_MIGRATE_SHADOW:
        pl.s = st->to;
        pl.deletes_both = true;
        break;
    case SESS_MIGRATE_DUAL:
    case SESS_MIGRATE_ROUTE:
        pl.s = st->to;
        pl.s_strict = true;
        pl.deletes_both = true;
        break;
    case SESS_MIGRATE_READ_THROUGH:
        pl.p = st->to;
        pl.s = st->from;
        pl.deletes_both = true;
        break;
    case SESS_MIGRATE_NEW:
        pl.p = st->to;
        break;
    default:
        break;
    }
    return pl;
}

static void count_req(struct mig_store *st, const plan *pl, const sess_store *s)
{
    atomic_fetch_add_explicit(&st->req[pl->kind][s == st->to], 1, memory_order_relaxed);
}

static void bump(struct mig_store *st, int i)
{
    atomic_fetch_add_explicit(&st->ctr[i], 1, memory_order_relaxed);
}

/* A failed write on the secondary: counted, and an error for the caller
 * only when the mode makes the secondary strict. */
static int secondary_failed(struct mig_store *st, const plan *pl, int rc)
{
    if (pl->s_strict) {
        bump(st, C_TO_FAIL);
        return rc;
    }
    bump(st, C_SHADOW_FAIL);
    return SESS_OK;
}

/* Route:N choice: the same key always goes the same way at a given N.
 * Bytes 4..7 of the storage key (SHA-256, and past the 14 route bits). */
static bool routed_to_to(const uint8_t *key, unsigned pct)
{
    uint32_t h = ((uint32_t)key[4] << 24) | ((uint32_t)key[5] << 16) |
                 ((uint32_t)key[6] << 8) | key[7];
    return h % 100u < pct;
}

static bool same_entry(const sess_entry *a, const sess_entry *b)
{
    return a->blob_len == b->blob_len && a->expires_at == b->expires_at &&
           a->flags == b->flags &&
           (a->blob_len == 0 || memcmp(a->blob, b->blob, a->blob_len) == 0);
}

/* Make "dst" hold what "src" holds under "key" (copied entry, or absent). */
static int sync_key(struct mig_store *st, const plan *pl, sess_store *src,
                    sess_store *dst, const uint8_t *key, uint64_t now, sess_err *err)
{
    sess_store_buf buf = {0};
    sess_entry e;
    int rc = src->methods->get(src, key, now, &e, &buf, err);
    count_req(st, pl, src);
    if (rc == SESS_NOTFOUND) {
        rc = dst->methods->remove(dst, key, NULL, err);
        count_req(st, pl, dst);
        rc = rc == SESS_NOTFOUND ? SESS_OK : rc;
    } else if (rc == SESS_OK) {
        (void)dst->methods->remove(dst, key, NULL, NULL);
        rc = dst->methods->insert(dst, &e, NULL, now, NULL, err);
        count_req(st, pl, dst);
    }
    sess_store_buf_free(&buf);
    if (rc == SESS_OK)
        bump(st, C_REPAIRS);
    return rc;
}

/* Copy "e" (read from FROM) into TO, then re-read FROM: when FROM no
 * longer has the same record (a destroy or a rotation ran in between),
 * drop the copy, so that a destroyed session cannot survive in TO. */
static void copy_checked(struct mig_store *st, const plan *pl, const sess_entry *e,
                         uint64_t now)
{
    sess_store_buf buf = {0};
    sess_entry again;
    int rc = st->to->methods->insert(st->to, e, NULL, now, NULL, NULL);
    count_req(st, pl, st->to);
    if (rc != SESS_OK)
        return;
    rc = st->from->methods->get(st->from, e->key, now, &again, &buf, NULL);
    count_req(st, pl, st->from);
    if (rc != SESS_OK || !same_entry(e, &again))
        (void)st->to->methods->remove(st->to, e->key, NULL, NULL);
    else
        bump(st, C_COPIES);
    sess_store_buf_free(&buf);
}

/* ---- methods ------------------------------------------------------------ */

static int mig_get(sess_store *base, const uint8_t *key, uint64_t now,
                   sess_entry *e, sess_store_buf *buf, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    int rc;

    switch (pl.kind) {
    case SESS_MIGRATE_DUAL: {
        rc = st->from->methods->get(st->from, key, now, e, buf, err);
        count_req(st, &pl, st->from);
        if (rc != SESS_OK && rc != SESS_NOTFOUND)
            return rc;
        sess_store_buf tb = {0};
        sess_entry te;
        int trc = st->to->methods->get(st->to, key, now, &te, &tb, NULL);
        count_req(st, &pl, st->to);
        if (rc == SESS_OK && trc == SESS_NOTFOUND)
            bump(st, C_MISS_TO);
        else if (rc == SESS_NOTFOUND && trc == SESS_OK) {
            /* A session FROM does not have must not live on in TO (a
             * destroy that reached only FROM, e.g. in shadow). */
            bump(st, C_MISS_FROM);
            (void)st->to->methods->remove(st->to, key, NULL, NULL);
        } else if (rc == SESS_OK && trc == SESS_OK && !same_entry(e, &te))
            bump(st, C_DIFFER);
        sess_store_buf_free(&tb);
        return rc;
    }
    case SESS_MIGRATE_ROUTE:
        if (routed_to_to(key, pl.pct)) {
            rc = st->to->methods->get(st->to, key, now, e, buf, err);
            count_req(st, &pl, st->to);
            if (rc == SESS_OK)
                return rc;
            bump(st, C_FALLBACKS); /* not backfilled yet, or TO failed */
        }
        rc = st->from->methods->get(st->from, key, now, e, buf, err);
        count_req(st, &pl, st->from);
        return rc;
    case SESS_MIGRATE_READ_THROUGH: {
        rc = st->to->methods->get(st->to, key, now, e, buf, err);
        count_req(st, &pl, st->to);
        if (rc == SESS_OK)
            return rc;
        bool to_down = rc != SESS_NOTFOUND;
        rc = st->from->methods->get(st->from, key, now, e, buf, err);
        count_req(st, &pl, st->from);
        if (rc == SESS_OK) {
            bump(st, C_FALLBACKS);
            if (!to_down)
                copy_checked(st, &pl, e, now);
        }
        return rc;
    }
    default:
        rc = pl.p->methods->get(pl.p, key, now, e, buf, err);
        count_req(st, &pl, pl.p);
        return rc;
    }
}

static int mig_insert(sess_store *base, const sess_entry *e,
                      const sess_store_limit *lim, uint64_t now,
                      sess_store_evicted *evicted, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    sess_store_evicted ev = {0};
    int rc;

    if (evicted)
        evicted->n = 0;
    rc = pl.p->methods->insert(pl.p, e, lim, now, &ev, err);
    count_req(st, &pl, pl.p);
    if (rc != SESS_OK)
        return rc;
    if (evicted)
        *evicted = ev;
    if (!pl.s)
        return SESS_OK;

    /* The primary's evictions, replayed on the secondary by handle. */
    for (size_t i = 0; i < ev.n && i < SESS_EVICT_MAX; i++) {
        uint8_t k[SESS_STORE_KEY_BYTES];
        if (pl.s->methods->find_handle(pl.s, ev.handle[i], now, k, NULL) == SESS_OK) {
            (void)pl.s->methods->remove(pl.s, k, NULL, NULL);
            /* Read-through: a concurrent read may have copied the evicted
             * entry back from the secondary before it went; removing it
             * from the primary once more closes that window (the copier's
             * re-check of FROM covers the rest, see copy_checked). */
            if (pl.kind == SESS_MIGRATE_READ_THROUGH)
                (void)pl.p->methods->remove(pl.p, k, NULL, NULL);
        }
        count_req(st, &pl, pl.s);
    }
    sess_err serr = {0};
    int src = pl.s->methods->insert(pl.s, e, NULL, now, NULL, &serr);
    count_req(st, &pl, pl.s);
    if (src == SESS_EXISTS)
        src = sync_key(st, &pl, pl.p, pl.s, e->key, now, &serr);
    if (src == SESS_OK) {
        /* A concurrent insert may have evicted this entry from the primary
         * and replayed the eviction on the secondary before our copy got
         * there: re-read the primary and drop a copy it no longer backs,
         * or an evicted (revoked) session would live on in the secondary. */
        sess_store_buf vb = {0};
        sess_entry ve;
        int vrc = pl.p->methods->get(pl.p, e->key, now, &ve, &vb, NULL);
        count_req(st, &pl, pl.p);
        sess_store_buf_free(&vb);
        if (vrc == SESS_NOTFOUND)
            (void)pl.s->methods->remove(pl.s, e->key, NULL, NULL);
        return SESS_OK;
    }
    if (pl.s_strict) {
        /* Both must succeed: undo the primary so the pair stays equal. */
        (void)pl.p->methods->remove(pl.p, e->key, NULL, NULL);
        if (err)
            *err = serr;
    }
    return secondary_failed(st, &pl, src);
}

/* After a primary write, bring the secondary along: "op_rc" is what the
 * same write on the secondary returned. */
static int follow(struct mig_store *st, const plan *pl, int op_rc,
                  const uint8_t *key, const uint8_t *key2, uint64_t now, sess_err *err)
{
    if (op_rc == SESS_OK)
        return SESS_OK;
    sess_err serr = {0};
    int rc = op_rc;
    if (op_rc == SESS_NOTFOUND || op_rc == SESS_CONFLICT || op_rc == SESS_EXISTS) {
        /* Not backfilled yet, or different: copy from the primary. */
        rc = sync_key(st, pl, pl->p, pl->s, key, now, &serr);
        if (rc == SESS_OK && key2)
            rc = sync_key(st, pl, pl->p, pl->s, key2, now, &serr);
        if (rc == SESS_OK)
            return SESS_OK;
    }
    if (pl->s_strict && err)
        *err = serr;
    return secondary_failed(st, pl, rc);
}

static int mig_update(sess_store *base, const sess_entry *e,
                      const uint8_t *expect, size_t expect_len, uint64_t now,
                      sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    int rc = pl.p->methods->update(pl.p, e, expect, expect_len, now, err);
    count_req(st, &pl, pl.p);
    if (rc != SESS_OK || !pl.s)
        return rc;
    int src = pl.s->methods->update(pl.s, e, expect, expect_len, now, NULL);
    count_req(st, &pl, pl.s);
    return follow(st, &pl, src, e->key, NULL, now, err);
}

static int mig_replace(sess_store *base, const uint8_t *old_key,
                       const uint8_t *expect, size_t expect_len,
                       const sess_entry *old_tomb, const sess_entry *next,
                       uint64_t now, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    int rc = pl.p->methods->replace(pl.p, old_key, expect, expect_len, old_tomb,
                                    next, now, err);
    count_req(st, &pl, pl.p);
    if (rc != SESS_OK || !pl.s)
        return rc;
    int src = pl.s->methods->replace(pl.s, old_key, expect, expect_len, old_tomb,
                                     next, now, NULL);
    count_req(st, &pl, pl.s);
    return follow(st, &pl, src, old_key, next->key, now, err);
}

/* Deletes reach both stores (revocation), FROM first then TO. */
static int mig_remove(sess_store *base, const uint8_t *key, uint8_t *handle_out,
                      sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    if (!pl.deletes_both) {
        int rc = pl.p->methods->remove(pl.p, key, handle_out, err);
        count_req(st, &pl, pl.p);
        return rc;
    }
    uint8_t h1[SESS_STORE_HANDLE_BYTES], h2[SESS_STORE_HANDLE_BYTES];
    sess_err e2 = {0};
    int r1 = st->from->methods->remove(st->from, key, h1, err);
    count_req(st, &pl, st->from);
    int r2 = st->to->methods->remove(st->to, key, h2, &e2);
    count_req(st, &pl, st->to);
    if (r1 != SESS_OK && r1 != SESS_NOTFOUND)
        return r1;
    if (r2 != SESS_OK && r2 != SESS_NOTFOUND) {
        /* Shadow hides TO's failure (counted); every other mode reports it:
         * a revocation that did not reach a store serving reads is not done. */
        if (pl.kind == SESS_MIGRATE_SHADOW) {
            bump(st, C_SHADOW_FAIL);
        } else {
            bump(st, C_TO_FAIL);
            if (err)
                *err = e2;
            return r2;
        }
    }
    if (r1 != SESS_OK && r2 != SESS_OK)
        return SESS_NOTFOUND;
    if (handle_out)
        memcpy(handle_out, r1 == SESS_OK ? h1 : h2, SESS_STORE_HANDLE_BYTES);
    return SESS_OK;
}

static int mig_remove_user(sess_store *base, const uint8_t *user,
                           const uint8_t *except, uint64_t now, size_t *n,
                           sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    size_t n1 = 0, n2 = 0;
    if (!pl.deletes_both) {
        int rc = pl.p->methods->remove_user(pl.p, user, except, now, n, err);
        count_req(st, &pl, pl.p);
        return rc;
    }
    sess_err e2 = {0};
    int r1 = st->from->methods->remove_user(st->from, user, except, now, &n1, err);
    count_req(st, &pl, st->from);
    int r2 = st->to->methods->remove_user(st->to, user, except, now, &n2, &e2);
    count_req(st, &pl, st->to);
    if (r1 != SESS_OK)
        return r1;
    if (r2 != SESS_OK) {
        if (pl.kind == SESS_MIGRATE_SHADOW) {
            bump(st, C_SHADOW_FAIL);
        } else {
            bump(st, C_TO_FAIL);
            if (err)
                *err = e2;
            return r2;
        }
    }
    if (n)
        *n = pl.p == st->from ? n1 : (n2 > n1 ? n2 : n1);
    return SESS_OK;
}

static int mig_find_handle(sess_store *base, const uint8_t *handle, uint64_t now,
                           uint8_t *key_out, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    int rc = pl.p->methods->find_handle(pl.p, handle, now, key_out, err);
    count_req(st, &pl, pl.p);
    if (rc == SESS_NOTFOUND && pl.kind == SESS_MIGRATE_READ_THROUGH) {
        rc = st->from->methods->find_handle(st->from, handle, now, key_out, err);
        count_req(st, &pl, st->from);
        if (rc == SESS_OK)
            bump(st, C_FALLBACKS);
    }
    return rc;
}

static int mig_list_user(sess_store *base, const uint8_t *user, uint64_t now,
                         sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    count_req(st, &pl, pl.p);
    return pl.p->methods->list_user(pl.p, user, now, fn, ctx, err);
}

static int mig_purge(sess_store *base, uint64_t now, size_t max, size_t *removed,
                     sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    size_t r1 = 0, r2 = 0;
    int rc = pl.p->methods->purge(pl.p, now, max, &r1, err);
    if (pl.s)
        (void)pl.s->methods->purge(pl.s, now, max, &r2, NULL);
    if (removed)
        *removed = r1;
    return rc;
}

/* Expiries are reported from the primary only: the secondary's copies
 * are the same sessions (docs/migration.md), so reporting both would
 * report each expiry twice. */
static int mig_purge_each(sess_store *base, uint64_t now, size_t max,
                          size_t *removed, sess_store_purge_fn fn, void *fn_ctx,
                          sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    const sess_store_methods *m = pl.p->methods;
    size_t r1 = 0, r2 = 0;
    int rc = m->version >= 4 && m->purge_each
                 ? m->purge_each(pl.p, now, max, &r1, fn, fn_ctx, err)
                 : m->purge(pl.p, now, max, &r1, err);
    if (pl.s)
        (void)pl.s->methods->purge(pl.s, now, max, &r2, NULL);
    if (removed)
        *removed = r1;
    return rc;
}

static int mig_ping(sess_store *base, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    int rc = pl.p->methods->ping(pl.p, err);
    if (rc == SESS_OK && pl.s && pl.s_strict)
        rc = pl.s->methods->ping(pl.s, err);
    return rc;
}

static int mig_count(sess_store *base, uint64_t now, uint64_t *n, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    return pl.p->methods->count(pl.p, now, n, err);
}

static int mig_route(sess_store *base, const uint8_t *user, uint16_t *out,
                     sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    return st->to->methods->route(st->to, user, out, err);
}

static int mig_stats(sess_store *base, sess_store_stats *out)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    const sess_store_methods *m = pl.p->methods;
    if (m->version >= 3 && m->stats)
        return m->stats(pl.p, out);
    memset(out, 0, sizeof *out);
    return SESS_OK;
}

/* A walk of the authoritative store of the current mode (FROM up to
 * route:N, TO from read-through on): a tool that scans the pair sees
 * what the daemon serves. */
static int mig_scan(sess_store *base, sess_store_cursor *cur, uint64_t now,
                    size_t max, sess_store_list_fn fn, void *ctx, sess_err *err)
{
    struct mig_store *st = (struct mig_store *)base;
    plan pl = plan_of(st);
    if (!SESS_STORE_SCAN(pl.p))
        return sess__fail(err, SESS_EINVAL, "migrate store: store cannot scan");
    return SESS_STORE_SCAN(pl.p)(pl.p, cur, now, max, fn, ctx, err);
}

static void mig_close(sess_store *base)
{
    struct mig_store *st = (struct mig_store *)base;
    if (!st)
        return;
    sess_store_close(st->from);
    sess_store_close(st->to);
    free(st);
}

static bool routes(const sess_store *s)
{
    return s->methods->version >= 2 && s->methods->route != NULL;
}

/* "migrate:MODE|FROM|TO": '|' may not appear unescaped in a URL (RFC 3986
 * section 2), so it cannot be part of either store's URL. */
static int mig_open(const char *url, const sess_store_options *opt,
                    sess_store **out, sess_err *err)
{
    char buf[URL_MAX];
    const char *rest = sess__store_url_rest(url, "migrate");
    *out = NULL;
    if (!rest || strlen(rest) >= sizeof buf)
        return sess__fail(err, SESS_EINVAL,
                          "migrate store: URL must be \"migrate:MODE|FROM|TO\"");
    memcpy(buf, rest, strlen(rest) + 1);
    char *bar1 = strchr(buf, '|');
    char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    if (!bar1 || !bar2 || strchr(bar2 + 1, '|'))
        return sess__fail(err, SESS_EINVAL,
                          "migrate store: URL must be \"migrate:MODE|FROM|TO\"");
    *bar1 = *bar2 = '\0';
    const char *from_url = bar1 + 1, *to_url = bar2 + 1;
    sess_migrate_kind k;
    unsigned pct;
    int rc = sess_migrate_mode_parse(buf, &k, &pct, err);
    if (rc != SESS_OK)
        return rc;
    /* "memory:" twice is two stores; any other URL twice is one store
     * opened twice (one LMDB environment twice in a process is undefined). */
    if (strcmp(from_url, to_url) == 0 && !sess__store_url_rest(from_url, "memory"))
        return sess__fail(err, SESS_EINVAL,
                          "migrate store: from and to name the same store");
    if (sess__store_url_rest(from_url, "migrate") || sess__store_url_rest(to_url, "migrate"))
        return sess__fail(err, SESS_EINVAL, "migrate store: stores may not nest");

    struct mig_store *st = calloc(1, sizeof *st);
    if (!st)
        return sess__fail(err, SESS_ENOMEM, "migrate store: out of memory");
    if ((rc = sess_store_open(from_url, opt, &st->from, err)) != SESS_OK ||
        (rc = sess_store_open(to_url, opt, &st->to, err)) != SESS_OK) {
        mig_close(&st->base);
        return rc;
    }
    /* Routing: the core derives storage keys from the route only when the
     * store routes, so the pair routes exactly when FROM already does
     * (keys of existing sessions must not change).  A Redis Cluster takes
     * the unrouted keys of such a FROM as legacy entries (store_redis.c),
     * and once it serves alone the core finds them by their plain key
     * (docs/migration.md, "Routing"). */
    st->base.methods = routes(st->from) && routes(st->to) ? &migrate_routed_methods
                                                          : &sess__store_migrate_methods;
    atomic_init(&st->mode, (uint32_t)k | (pct << 8));
    *out = &st->base;
    return SESS_OK;
}

#define MIGRATE_METHODS(name, routefn)                                       \
    const sess_store_methods name = {                                        \
        .version = 4,                                                        \
        .scheme = "migrate",                                                 \
        .open = mig_open,                                                    \
        .close = mig_close,                                                  \
        .get = mig_get,                                                      \
        .insert = mig_insert,                                                \
        .update = mig_update,                                                \
        .replace = mig_replace,                                              \
        .remove = mig_remove,                                                \
        .find_handle = mig_find_handle,                                      \
        .list_user = mig_list_user,                                          \
        .remove_user = mig_remove_user,                                      \
        .purge = mig_purge,                                                  \
        .ping = mig_ping,                                                    \
        .count = mig_count,                                                  \
        .route = routefn,                                                    \
        .stats = mig_stats,                                                  \
        .purge_each = mig_purge_each,                                        \
        .scan = mig_scan,                                                    \
    }

MIGRATE_METHODS(sess__store_migrate_methods, NULL);
static MIGRATE_METHODS(migrate_routed_methods, mig_route);
