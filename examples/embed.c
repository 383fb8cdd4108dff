/*
 * embed.c - libsess embedded in a program, with the public API only: open a
 * store, create a session at login, validate it on each request (which
 * rotates the ID once rotate_interval has passed), and destroy it at
 * logout.  Built in the normal build and run by CTest (examples/embed);
 * the install test builds it again against an installed libsess with
 *   cc embed.c $(pkg-config --cflags --libs libsess)
 *
 * Usage: embed [STORE-URL]     (default "memory:"; e.g. "lmdb:/tmp/s")
 */
#include <stdio.h>
#include <string.h>

#include <sess.h>

/* A clock the example moves by hand, so it can show a rotation without
 * sleeping.  A real program leaves the default (the wall clock). */
static uint64_t now_s = 1800000000;
static uint64_t example_clock(void *user)
{
    (void)user;
    return now_s;
}

/* Every call returns SESS_OK on success.  The normal outcomes that are not
 * success (SESS_REJECTED, SESS_NOTFOUND, ...) are POSITIVE, so test
 * "!= SESS_OK", never "< 0". */
static int check(const char *what, int rc, const sess_err *err)
{
    if (rc != SESS_OK)
        fprintf(stderr, "embed: %s: %s (%s)\n", what, sess_result_name(rc),
                err->msg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "memory:";
    sess_err err;
    int rc, status = 1;

    /* 1. A store (NULL options: the defaults) and a keyring.  A real
     * program loads its keys with sess_keyring_load_dir(); a fixed key
     * keeps the example self-contained. */
    sess_store *store;
    if (check("open store", sess_store_open(url, NULL, &store, &err), &err))
        return 1;
    static const uint8_t key[1][SESS_KEY_BYTES] = {{0x42}};
    const char *kid[] = {"example-key"};
    sess_keyring *keys;
    if (check("keyring", sess_keyring_from_keys(kid, key, 1, &keys, &err), &err)) {
        sess_store_close(store);
        return 1;
    }

    /* 2. A context: policy + store + keys (it owns both from here on). */
    sess_config cfg;
    sess_config_defaults(&cfg);
    cfg.rotate_interval = 300; /* a new ID every 5 minutes of use */
    sess_ctx *ctx;
    if (check("context", sess_ctx_new(&cfg, store, keys, &ctx, &err), &err))
        return 1;
    sess_ctx_set_clock(ctx, example_clock, NULL);

    /* 3. Login: a fresh ID, never one the client proposed (fixation). */
    sess_client client = {.ip = "203.0.113.7", .user_agent = "Example/1.0"};
    sess_create_req req = {.user_id = "alice", .user_id_len = 5,
                           .client = client, .data = "{}", .data_len = 2};
    sess_issued s;
    if (check("create", sess_create(ctx, &req, &s, NULL, &err), &err))
        goto out;
    printf("created session %s (handle, not secret)\n", s.handle);

    /* 4. A request: validate the cookie's ID. */
    sess_view v;
    rc = sess_validate(ctx, s.id, strlen(s.id), &client, 0, &v, &err);
    if (check("validate", rc, &err))
        goto out_s;
    printf("valid for %s\n", v.user_id);
    sess_view_clear(&v);

    /* 5. Six minutes later: the ID is rotated; send the successor as the
     * new cookie.  The old ID stays accepted for the grace window. */
    now_s += 360;
    rc = sess_validate(ctx, s.id, strlen(s.id), &client, 0, &v, &err);
    if (check("validate after 6 min", rc, &err))
        goto out_s;
    if (!v.rotated) {
        fprintf(stderr, "embed: expected a rotation\n");
        sess_view_clear(&v);
        goto out_s;
    }
    sess_issued next = v.successor;
    sess_view_clear(&v);
    printf("rotated: a new ID, same handle %s\n", next.handle);

    /* 6. A forged or unknown ID is rejected, with the reason. */
    rc = sess_validate(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                       SESS_ID_LEN, &client, 0, &v, &err);
    printf("forged ID: %s, reason %s\n", sess_result_name(rc),
           sess_reason_name(v.reason));
    sess_view_clear(&v);
    if (rc != SESS_REJECTED)
        goto out_next;

    /* 7. Logout: the session is gone; validating it again is rejected. */
    if (check("destroy", sess_destroy(ctx, next.id, strlen(next.id), &err), &err))
        goto out_next;
    rc = sess_validate(ctx, next.id, strlen(next.id), &client, 0, &v, &err);
    sess_view_clear(&v);
    if (rc != SESS_REJECTED) {
        fprintf(stderr, "embed: destroyed session still valid\n");
        goto out_next;
    }
    printf("destroyed; ok\n");
    status = 0;
out_next:
    sess_wipe(&next, sizeof next);
out_s:
    sess_wipe(&s, sizeof s); /* IDs and tokens are secrets */
out:
    sess_ctx_free(ctx);
    return status;
}
