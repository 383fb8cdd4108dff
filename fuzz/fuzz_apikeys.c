/*
 * fuzz_apikeys.c - libFuzzer target for the management API's key handling
 * (src/sessiond/apikeys.c): the key file parser and the Authorization
 * header check.
 *
 * Each input is written as a key file (mode 0600, in a directory made
 * once) and loaded, and is also presented as an Authorization header
 * against a fixed key set.  Properties checked beyond "no crash, no leak,
 * no UB":
 *   - a refused file leaves the loaded keys as they were (the fixed key
 *     still matches, a wrong one still does not);
 *   - the error message is one line and does not hold the file's first
 *     key-like line ("err never names a key"; searched with a plain loop,
 *     so libFuzzer's memmem hook does not feed the message back as input);
 *   - a loaded file's first key line, presented as "Bearer KEY", matches;
 *   - the verdict with a reason agrees with the plain check, and a refused
 *     header's reason is "missing" or "unknown";
 *   - throttling (the input's first line as a peer address): the tenth
 *     failure within the window refuses that peer for exactly the block
 *     time, and the refusal ends on time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apikeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GOOD_KEY "fuzz-key-0123456789abcdefghijklmnopqrstuvwxyz"

static char dir[] = "/tmp/sessiond-fuzz-apikeys-XXXXXX";
static char good_path[sizeof dir + 16], fuzz_path[sizeof dir + 16];
static sessiond_apikeys *fixed;

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

static void cleanup(void)
{
    unlink(good_path);
    unlink(fuzz_path);
    rmdir(dir);
}

static void setup(void)
{
    char err[512];
    umask(077);
    if (!mkdtemp(dir))
        abort();
    snprintf(good_path, sizeof good_path, "%s/good", dir);
    snprintf(fuzz_path, sizeof fuzz_path, "%s/keys", dir);
    atexit(cleanup);
    write_file(good_path, GOOD_KEY "\n", sizeof GOOD_KEY);
    fixed = sessiond_apikeys_new();
    if (!fixed || sessiond_apikeys_load(fixed, good_path, err, sizeof err) != 0)
        abort();
}

/* The first line that is a key by the file's rules (trimmed, not empty,
 * not a comment), copied into "out"; false when there is none. */
static bool first_key(const uint8_t *data, size_t size, char *out, size_t cap)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        while (s < e && strchr(" \t\r\v\f", *s) && *s)
            s++;
        while (e > s && strchr(" \t\r\v\f", e[-1]) && e[-1])
            e--;
        if (s == e || *s == '#')
            continue;
        if ((size_t)(e - s) >= cap)
            return false;
        memcpy(out, s, (size_t)(e - s));
        out[e - s] = '\0';
        return true;
    }
    return false;
}

/* Whether "needle" occurs in "hay", by a plain loop (see above). */
static bool contains(const char *hay, const char *needle)
{
    size_t h = strlen(hay), n = strlen(needle);
    for (size_t i = 0; n <= h && i <= h - n; i++) {
        size_t j = 0;
        while (j < n && hay[i + j] == needle[j])
            j++;
        if (j == n)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char header[SESSIOND_APIKEY_MAX + 16];
    char err[512] = "";

    if (!fixed)
        setup();
    if (size > SESSIOND_APIKEYS_FILE_MAX + 1)
        return 0;

    /* The input as an Authorization header, against the fixed set. */
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    bool ok = sessiond_apikeys_check(fixed, copy);
    sessiond_key_result kr = sessiond_apikeys_verify(fixed, copy);
    if (ok != (kr == SESSIOND_KEY_OK) ||
        (kr != SESSIOND_KEY_OK && kr != SESSIOND_KEY_MISSING &&
         kr != SESSIOND_KEY_UNKNOWN))
        abort();

    /* The input's first line as a peer, on a fresh throttle. */
    {
        char peer[65];
        size_t pl = 0;
        while (pl < size && pl < sizeof peer - 1 && data[pl] != '\n' && data[pl] != 0)
            pl++;
        memcpy(peer, data, pl);
        peer[pl] = '\0';
        sessiond_apikeys *t = sessiond_apikeys_new();
        uint32_t retry = 0;
        if (!t)
            abort();
        for (int i = 0; i < SESSIOND_THROTTLE_FAILURES; i++)
            if (sessiond_apikeys_failed(t, peer, 100) !=
                (i == SESSIOND_THROTTLE_FAILURES - 1))
                abort();
        if (!sessiond_apikeys_throttled(t, peer, 100, &retry) ||
            retry != SESSIOND_THROTTLE_BLOCK ||
            sessiond_apikeys_throttled(t, peer, 100 + SESSIOND_THROTTLE_BLOCK, NULL))
            abort();
        sessiond_apikeys_free(t);
    }

    /* The input as a key file. */
    sessiond_apikeys *ak = sessiond_apikeys_new();
    if (!ak)
        abort();
    write_file(fuzz_path, data, size);
    if (sessiond_apikeys_load(ak, good_path, err, sizeof err) != 0)
        abort();
    int rc = sessiond_apikeys_load(ak, fuzz_path, err, sizeof err);
    if (rc == 0) {
        char key[SESSIOND_APIKEY_MAX + 1];
        if (first_key(data, size, key, sizeof key)) {
            snprintf(header, sizeof header, "Bearer %s", key);
            if (!sessiond_apikeys_check(ak, header))
                abort();          /* a key the file holds must match */
        }
    } else {
        /* Refused: the keys before stay. */
        if (!sessiond_apikeys_check(ak, "Bearer " GOOD_KEY) ||
            sessiond_apikeys_check(ak, "Bearer " GOOD_KEY "x"))
            abort();
        if (strchr(err, '\n') || err[0] == '\0')
            abort();
        char key[SESSIOND_APIKEY_MAX + 1];
        if (first_key(data, size, key, sizeof key) && strlen(key) >= 8 && contains(err, key))
            abort();              /* the message echoed a key line */
    }
    sessiond_apikeys_free(ak);
    free(copy);
    return 0;
}
