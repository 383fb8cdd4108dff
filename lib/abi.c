/*
 * abi.c - the sized entry points behind the public macros (sess_validate,
 * sess_create, sess_store_open, ...): they make the header's promise true
 * that a caller built against an older, shorter struct, or a newer, longer
 * one, keeps working (see "struct sizes" in sess/session.h and
 * docs/api.md, "ABI").
 *
 * Each takes the size of the caller's struct.  When it equals the
 * library's (the normal case, a program built against this header) the
 * call goes straight through on the caller's memory, so the hot path pays
 * one comparison.  Otherwise the call runs on a full-size struct on the
 * stack: an input struct starts from the defaults with the caller's bytes
 * over them; an output struct is copied back only up to the caller's size,
 * zero beyond ours, and the temporary is wiped (it may hold IDs and CSRF
 * tokens).
 *
 * They also settle the error detail: every result but SESS_OK leaves
 * err->code equal to the result and err->msg non-empty, as sess/error.h
 * documents, whatever path inside produced it.
 */
#include <stddef.h>
#include <string.h>

#include "sess/session.h"
#include "sess/store.h"
#include "util.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Copy an output struct of the library's "ours" bytes to the caller's
 * "theirs" bytes: the common prefix, zero beyond ours. */
static void copy_out(void *dst, size_t theirs, const void *src, size_t ours)
{
    memcpy(dst, src, MIN(theirs, ours));
    if (theirs > ours)
        memset((char *)dst + ours, 0, theirs - ours);
}

/* Clear "err" before a call, so settle() can tell whether the call set it. */
static void arm(sess_err *err)
{
    if (err) {
        err->code = SESS_OK;
        err->msg[0] = '\0';
    }
}

static int settle(sess_err *err, int rc)
{
    if (rc != SESS_OK && err && (err->code != rc || err->msg[0] == '\0'))
        (void)sess__fail(err, rc, "%s", sess_strerror(rc));
    return rc;
}

/* A rejection's message names its reason.  Built with two copies, not a
 * printf: an unknown cookie is the most frequent answer of forward-auth. */
static int rejected(sess_err *err, int rc, sess_reason reason)
{
    static const char prefix[] = "session rejected: ";
    if (rc != SESS_REJECTED)
        return settle(err, rc);
    if (err) {
        const char *name = reason == SESS_REASON_NONE ? "unknown"
                                                      : sess_reason_name(reason);
        size_t n = strlen(name), room = sizeof err->msg - sizeof prefix;
        if (n > room)
            n = room;
        err->code = rc;
        memcpy(err->msg, prefix, sizeof prefix - 1);
        memcpy(err->msg + sizeof prefix - 1, name, n);
        err->msg[sizeof prefix - 1 + n] = '\0';
    }
    return rc;
}

/* ---- inputs ------------------------------------------------------------- */

static void config_in(sess_config *full, const sess_config *cfg, size_t size)
{
    sess_config_defaults(full);
    memcpy(full, cfg, MIN(size, sizeof *full));
}

void sess_config_defaults_sized(sess_config *cfg, size_t cfg_size)
{
    sess_config full;

    if (!cfg)
        return;
    sess_config_defaults(&full);
    copy_out(cfg, cfg_size, &full, sizeof full);
}

int sess_config_check_sized(const sess_config *cfg, size_t cfg_size,
                            sess_err *err)
{
    sess_config full;

    arm(err);
    if (!cfg)
        return sess__fail(err, SESS_EINVAL, "config check: no configuration");
    if (cfg_size == sizeof full)
        return settle(err, sess_config_check(cfg, err));
    config_in(&full, cfg, cfg_size);
    return settle(err, sess_config_check(&full, err));
}

int sess_ctx_new_sized(const sess_config *cfg, size_t cfg_size,
                       sess_store *store, sess_keyring *keys, sess_ctx **out,
                       sess_err *err)
{
    sess_config full;

    arm(err);
    if (cfg && cfg_size != sizeof full) {
        config_in(&full, cfg, cfg_size);
        cfg = &full;
    }
    return settle(err, sess_ctx_new(cfg, store, keys, out, err));
}

int sess_store_open_sized(const char *url, const sess_store_options *opt,
                          size_t opt_size, sess_store **out, sess_err *err)
{
    sess_store_options full;

    arm(err);
    if (opt && opt_size != sizeof full) {
        /* Zero is every option's default (sess/store.h). */
        memset(&full, 0, sizeof full);
        memcpy(&full, opt, MIN(opt_size, sizeof full));
        opt = &full;
    }
    int rc = sess_store_open(url, opt, out, err);
    if (opt == &full)
        sess__wipe(&full, sizeof full); /* may point at the AUTH password */
    return settle(err, rc);
}

/* ---- outputs ------------------------------------------------------------ */

int sess_create_sized(sess_ctx *ctx, const sess_create_req *req,
                      size_t req_size, sess_issued *out, size_t out_size,
                      sess_evicted *evicted, sess_err *err)
{
    sess_create_req rfull;
    sess_issued ofull;
    int rc;

    arm(err);
    if (!ctx || !req || !out)
        return sess__fail(err, SESS_EINVAL, "create: missing argument");
    if (req_size != sizeof rfull) {
        memset(&rfull, 0, sizeof rfull);
        memcpy(&rfull, req, MIN(req_size, sizeof rfull));
        req = &rfull;
    }
    if (out_size == sizeof ofull)
        return settle(err, sess_create(ctx, req, out, evicted, err));
    memset(&ofull, 0, sizeof ofull);
    rc = sess_create(ctx, req, &ofull, evicted, err);
    copy_out(out, out_size, &ofull, sizeof ofull);
    sess__wipe(&ofull, sizeof ofull);
    return settle(err, rc);
}

int sess_validate_sized(sess_ctx *ctx, const char *id, size_t id_len,
                        const sess_client *client, unsigned flags,
                        sess_view *view, size_t view_size, sess_err *err)
{
    sess_view full;
    int rc;

    arm(err);
    if (!ctx || !view)
        return sess__fail(err, SESS_EINVAL, "validate: missing argument");
    if (view_size == sizeof full) {
        rc = sess_validate(ctx, id, id_len, client, flags, view, err);
        return rejected(err, rc, view->reason);
    }
    /* The data copy is malloc'd: a view without room for its pointer
     * would leak it. */
    if ((flags & SESS_VALIDATE_WANT_DATA) &&
        view_size < offsetof(sess_view, data_len) + sizeof full.data_len)
        return sess__fail(err, SESS_EINVAL,
                          "validate: view of %zu bytes has no room for data",
                          view_size);
    rc = sess_validate(ctx, id, id_len, client, flags, &full, err);
    copy_out(view, view_size, &full, sizeof full);
    full.data = NULL; /* the caller's copy owns it (or none was made) */
    sess__wipe(&full, sizeof full);
    if (view_size < offsetof(sess_view, reason) + sizeof full.reason)
        return rc == SESS_REJECTED ? sess__fail(err, rc, "session rejected")
                                   : settle(err, rc);
    return rejected(err, rc, view->reason);
}

void sess_view_clear_sized(sess_view *view, size_t view_size)
{
    if (!view)
        return;
    if (view_size == sizeof *view) {
        sess_view_clear(view);
        return;
    }
    if (view_size >= offsetof(sess_view, data) + sizeof view->data) {
        sess_view tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.data = view->data;
        sess_view_clear(&tmp); /* frees with the allocator that made it */
    }
    sess__wipe(view, view_size);
}

int sess_regenerate_sized(sess_ctx *ctx, const char *id, size_t id_len,
                          const sess_client *client, int elevated,
                          sess_issued *out, size_t out_size,
                          sess_reason *reason, sess_err *err)
{
    sess_issued full;
    sess_reason why = SESS_REASON_NONE;
    int rc;

    arm(err);
    if (!ctx || !out)
        return sess__fail(err, SESS_EINVAL, "regenerate: missing argument");
    if (out_size == sizeof full) {
        rc = sess_regenerate(ctx, id, id_len, client, elevated, out, &why, err);
    } else {
        memset(&full, 0, sizeof full);
        rc = sess_regenerate(ctx, id, id_len, client, elevated, &full, &why,
                             err);
        copy_out(out, out_size, &full, sizeof full);
        sess__wipe(&full, sizeof full);
    }
    if (reason)
        *reason = why;
    return rejected(err, rc, why);
}

int sess_get_stats_sized(sess_ctx *ctx, sess_stats *out, size_t out_size,
                         sess_err *err)
{
    sess_stats full;
    int rc;

    arm(err);
    if (!ctx || !out)
        return sess__fail(err, SESS_EINVAL, "stats: missing argument");
    if (out_size == sizeof full)
        return settle(err, sess_get_stats(ctx, out, err));
    rc = sess_get_stats(ctx, &full, err);
    copy_out(out, out_size, &full, sizeof full);
    return settle(err, rc);
}

int sess_get_store_stats_sized(sess_ctx *ctx, sess_store_stats *out,
                               size_t out_size)
{
    sess_store_stats full;
    int rc;

    if (!ctx || !out)
        return SESS_EINVAL;
    if (out_size == sizeof full)
        return sess_get_store_stats(ctx, out);
    memset(&full, 0, sizeof full);
    rc = sess_get_store_stats(ctx, &full);
    copy_out(out, out_size, &full, sizeof full);
    return rc;
}

/* ---- error detail only -------------------------------------------------- */

/* Calls that take no caller-allocated struct but whose results, the
 * normal outcomes above all, must still leave err set (sess/error.h). */

int sess_ctx_reload_keys_checked(sess_ctx *ctx, sess_keyring *keys,
                                 bool allow_drop, sess_err *err)
{
    arm(err);
    return settle(err, sess_ctx_reload_keys(ctx, keys, allow_drop, err));
}

int sess_set_data_checked(sess_ctx *ctx, const char *id, size_t id_len,
                          const char *data, size_t data_len,
                          int64_t expect_version, uint64_t *new_version,
                          sess_reason *reason, sess_err *err)
{
    sess_reason why = SESS_REASON_NONE;
    arm(err);
    int rc = sess_set_data(ctx, id, id_len, data, data_len, expect_version,
                           new_version, &why, err);
    if (reason)
        *reason = why;
    return rejected(err, rc, why);
}

int sess_destroy_checked(sess_ctx *ctx, const char *id, size_t id_len,
                         sess_err *err)
{
    arm(err);
    int rc = sess_destroy(ctx, id, id_len, err);
    if (rc == SESS_NOTFOUND)
        return sess__fail(err, rc, "no live session with that ID");
    return settle(err, rc);
}

int sess_csrf_verify_checked(sess_ctx *ctx, const char *id, size_t id_len,
                             const char *token, size_t token_len,
                             sess_reason *reason, sess_err *err)
{
    sess_reason why = SESS_REASON_NONE;
    arm(err);
    int rc = sess_csrf_verify(ctx, id, id_len, token, token_len, &why, err);
    if (reason)
        *reason = why;
    if (rc == SESS_CSRF)
        return sess__fail(err, rc, "CSRF token missing or wrong");
    return rejected(err, rc, why);
}

int sess_list_user_checked(sess_ctx *ctx, const char *user_id,
                           size_t user_id_len, sess_summary **out, size_t *n,
                           sess_err *err)
{
    arm(err);
    return settle(err, sess_list_user(ctx, user_id, user_id_len, out, n, err));
}

int sess_revoke_handle_checked(sess_ctx *ctx, const char *handle,
                               size_t handle_len, sess_err *err)
{
    arm(err);
    int rc = sess_revoke_handle(ctx, handle, handle_len, err);
    if (rc == SESS_NOTFOUND)
        return sess__fail(err, rc, "no live session with that handle");
    return settle(err, rc);
}

int sess_revoke_user_checked(sess_ctx *ctx, const char *user_id,
                             size_t user_id_len, const char *except_handle,
                             size_t *revoked, sess_err *err)
{
    arm(err);
    return settle(err, sess_revoke_user(ctx, user_id, user_id_len,
                                        except_handle, revoked, err));
}

int sess_purge_expired_checked(sess_ctx *ctx, size_t max, size_t *removed,
                               sess_err *err)
{
    arm(err);
    return settle(err, sess_purge_expired(ctx, max, removed, err));
}

int sess_ping_checked(sess_ctx *ctx, sess_err *err)
{
    arm(err);
    return settle(err, sess_ping(ctx, err));
}
