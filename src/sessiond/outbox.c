/*
 * outbox.c - the durable outbox of lifecycle events: an LMDB environment
 * of its own (never the session store's, whose map and disk reserve are
 * sized for sessions) with two databases:
 *   "events"   big-endian u64 sequence -> record
 *   "cursors"  sink id (32 hex, from the URL) -> big-endian u64: the last
 *              sequence that sink took; and "#next" -> the next sequence,
 *              kept apart so numbers never go back when the outbox empties
 *              (a sink's cursor would otherwise skip the new events).
 * A record is: version (1) | type (1) | the webhook body (JSON).
 *
 * Durability.  Each put is one committed write transaction before the
 * event handler returns, so an event raised is an event kept: a kill -9
 * right after loses nothing (the commit is in the kernel's page cache).
 * Commits do not fsync (MDB_NOSYNC: an fsync per login would cost more
 * than the login); the sender thread calls sessiond_outbox_sync() after
 * each pass, so a power loss can cost the last moments' events.
 *
 * Bounded: at most max_events records; beyond that put refuses (the
 * caller counts and logs the drop), as it does when the map or the disk
 * is full, so a webhook down for days never fills the disk.
 */
#include "outbox.h"
#include "event_types.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#define RECORD_VERSION 1
#define RECORD_HDR 2
#define NEXT_KEY "#next"
#define RECORD_ROOM 4096u               /* map bytes per event, pages included */
#define MAP_BASE (16u * 1024u * 1024u)

struct sessiond_outbox {
    MDB_env *env;
    MDB_dbi events;
    MDB_dbi cursors;
    uint32_t max_events;
    int lock_fd;
};

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return -1;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    return 0;
}

int sessiond_outbox_open(const char *dir, uint32_t max_events,
                         sessiond_outbox **out, char *err, size_t errlen)
{
    char lock[4200];
    MDB_txn *txn = NULL;
    int rc;

    *out = NULL;
    sessiond_outbox *ob = calloc(1, sizeof *ob);
    if (ob == NULL) {
        snprintf(err, errlen, "events.outbox: out of memory");
        return -1;
    }
    ob->lock_fd = -1;
    ob->max_events = max_events;
    if (make_dirs(dir) != 0) {
        snprintf(err, errlen, "events.outbox: cannot create %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    snprintf(lock, sizeof lock, "%s/sessiond.lock", dir);
    ob->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (ob->lock_fd < 0) {
        snprintf(err, errlen, "events.outbox: cannot open %s: %s", lock,
                 strerror(errno));
        goto fail;
    }
    /* Two processes on one outbox would each send every event. */
    if (flock(ob->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "events.outbox: %s is in use by another "
                 "sessiond (each instance needs an outbox of its own)", dir);
        goto fail;
    }
    if ((rc = mdb_env_create(&ob->env)) != 0 ||
        (rc = mdb_env_set_maxdbs(ob->env, 2)) != 0 ||
        (rc = mdb_env_set_mapsize(ob->env, (size_t)MAP_BASE +
                                  (size_t)max_events * RECORD_ROOM)) != 0 ||
        (rc = mdb_env_open(ob->env, dir, MDB_NOSYNC | MDB_NOTLS, 0600)) != 0) {
        snprintf(err, errlen, "events.outbox: cannot open the LMDB "
                 "environment in %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_txn_begin(ob->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &ob->events)) != 0 ||
        (rc = mdb_dbi_open(txn, "cursors", MDB_CREATE, &ob->cursors)) != 0 ||
        (rc = mdb_txn_commit(txn)) != 0) {
        if (txn != NULL && rc != 0)
            mdb_txn_abort(txn);
        snprintf(err, errlen, "events.outbox: %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    *out = ob;
    return 0;

fail:
    sessiond_outbox_close(ob);
    return -1;
}

void sessiond_outbox_close(sessiond_outbox *ob)
{
    if (ob == NULL)
        return;
    if (ob->env != NULL) {
        mdb_env_sync(ob->env, 1);
        mdb_env_close(ob->env);
    }
    if (ob->lock_fd >= 0)
        close(ob->lock_fd);
    free(ob);
}

sessiond_outbox_put_rc sessiond_outbox_put(sessiond_outbox *ob, int type,
                                           const char *body, size_t len)
{
    MDB_txn *txn;
    MDB_stat st;
    uint8_t key[8], nextv[8];
    uint64_t next = 1;
    int rc;

    if (len + RECORD_HDR > SESSIOND_OUTBOX_RECORD_MAX || type < 0 ||
        type >= SESSIOND_EV_COUNT)
        return SESSIOND_OUTBOX_ERROR;
    if (mdb_txn_begin(ob->env, NULL, 0, &txn) != 0)
        return SESSIOND_OUTBOX_ERROR;
    if (mdb_stat(txn, ob->events, &st) != 0) {
        mdb_txn_abort(txn);
        return SESSIOND_OUTBOX_ERROR;
    }
    if (st.ms_entries >= ob->max_events) {
        mdb_txn_abort(txn);
        return SESSIOND_OUTBOX_FULL;
    }
    MDB_val nk = {sizeof NEXT_KEY - 1, (void *)NEXT_KEY}, nv;
    rc = mdb_get(txn, ob->cursors, &nk, &nv);
    if (rc == 0 && nv.mv_size == 8)
        next = get_be64(nv.mv_data);
    else if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return SESSIOND_OUTBOX_ERROR;
    }
    be64(key, next);
    be64(nextv, next + 1);
    MDB_val k = {sizeof key, key}, v = {len + RECORD_HDR, NULL};
    rc = mdb_put(txn, ob->events, &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc == 0) {
        uint8_t *p = v.mv_data;
        p[0] = RECORD_VERSION;
        p[1] = (uint8_t)type;
        memcpy(p + RECORD_HDR, body, len);
        nv.mv_size = sizeof nextv;
        nv.mv_data = nextv;
        rc = mdb_put(txn, ob->cursors, &nk, &nv, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc == MDB_MAP_FULL ? SESSIOND_OUTBOX_FULL : SESSIOND_OUTBOX_ERROR;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return rc == MDB_MAP_FULL || rc == ENOSPC ? SESSIOND_OUTBOX_FULL
                                                  : SESSIOND_OUTBOX_ERROR;
    return SESSIOND_OUTBOX_STORED;
}

int sessiond_outbox_next(sessiond_outbox *ob, uint64_t after, uint64_t *seq,
                         uint8_t **rec, size_t *len)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    uint8_t key[8];
    int rc, out = -1;

    if (after == UINT64_MAX)
        return 1;
    be64(key, after + 1);
    if (mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (mdb_cursor_open(txn, ob->events, &cur) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    MDB_val k = {sizeof key, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) {
        out = 1;
    } else if (rc == 0 && k.mv_size == 8) {
        *seq = get_be64(k.mv_data);
        *rec = malloc(v.mv_size ? v.mv_size : 1);
        if (*rec != NULL) {
            memcpy(*rec, v.mv_data, v.mv_size);
            *len = v.mv_size;
            out = 0;
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return out;
}

/* The cursor of "sink" inside "txn" (0 when absent). */
static uint64_t cursor_in(sessiond_outbox *ob, MDB_txn *txn, const char *sink)
{
    MDB_val k = {strlen(sink), (void *)sink}, v;
    if (mdb_get(txn, ob->cursors, &k, &v) == 0 && v.mv_size == 8)
        return get_be64(v.mv_data);
    return 0;
}

uint64_t sessiond_outbox_cursor(sessiond_outbox *ob, const char *sink)
{
    MDB_txn *txn;
    if (mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    uint64_t c = cursor_in(ob, txn, sink);
    mdb_txn_abort(txn);
    return c;
}

int sessiond_outbox_ack(sessiond_outbox *ob, const char *sink, uint64_t seq,
                        const char *const *sinks, size_t n)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    uint8_t sv[8];
    int rc;

    if (mdb_txn_begin(ob->env, NULL, 0, &txn) != 0)
        return -1;
    be64(sv, seq);
    MDB_val k = {strlen(sink), (void *)sink}, v = {sizeof sv, sv};
    if ((rc = mdb_put(txn, ob->cursors, &k, &v, 0)) != 0)
        goto abort;
    /* What every sink took goes: the oldest events first. */
    uint64_t low = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t c = cursor_in(ob, txn, sinks[i]);
        if (c < low)
            low = c;
    }
    if ((rc = mdb_cursor_open(txn, ob->events, &cur)) != 0)
        goto abort;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 &&
           k.mv_size == 8 && get_be64(k.mv_data) <= low)
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto abort;
    return mdb_txn_commit(txn) == 0 ? 0 : -1;

abort:
    mdb_txn_abort(txn);
    return -1;
}

uint64_t sessiond_outbox_count(sessiond_outbox *ob)
{
    MDB_txn *txn;
    MDB_stat st;
    uint64_t n = 0;
    if (mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_stat(txn, ob->events, &st) == 0)
        n = st.ms_entries;
    mdb_txn_abort(txn);
    return n;
}

void sessiond_outbox_sync(sessiond_outbox *ob)
{
    mdb_env_sync(ob->env, 1);
}

int sessiond_outbox_parse(const uint8_t *rec, size_t len,
                          sessiond_outbox_event *ev)
{
    json_error_t jerr;
    int ok = -1;

    memset(ev, 0, sizeof *ev);
    if (rec == NULL || len <= RECORD_HDR || len > SESSIOND_OUTBOX_RECORD_MAX ||
        rec[0] != RECORD_VERSION || rec[1] >= SESSIOND_EV_COUNT)
        return -1;
    ev->type = rec[1];
    ev->body = (const char *)rec + RECORD_HDR;
    ev->body_len = len - RECORD_HDR;
    json_t *o = json_loadb(ev->body, ev->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o))
        goto done;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *type = json_string_value(json_object_get(o, "type"));
    if (id == NULL || strlen(id) != SESSIOND_EVENT_ID_LEN || type == NULL ||
        strcmp(type, sessiond_event_type_names[ev->type]) != 0)
        goto done;
    /* The id goes into a header: hex digits and dashes only (header
     * injection from a damaged record). */
    for (size_t i = 0; i < SESSIOND_EVENT_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
            goto done;
    }
    memcpy(ev->id, id, SESSIOND_EVENT_ID_LEN + 1);
    ok = 0;
done:
    json_decref(o);
    return ok;
}
