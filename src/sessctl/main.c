/*
 * sessctl - the command-line tool of sessiond (docs/api.md, "sessctl").
 *
 * First cut: the admin calls that talk to a running sessiond over its JSON
 * API (list a user's sessions, revoke one session, revoke all of a user's
 * sessions) and the local key commands: record keys (generate, list ids)
 * and token signing keys with their lifecycle (--use sig: generate, list,
 * rotate, retire), plus "token verify" against a JWKS file or URL.
 * Subcommands are one table (group, name, handler, usage, help) from which
 * dispatch, option checks and --help all come.
 *
 * Secrets.  The management API key is read from a file (--api-key-file) or
 * the SESSCTL_API_KEY environment variable, never from the command line,
 * where every user of the machine could read it in the process list.  It
 * is sent only as "Authorization: Bearer" and wiped after the request.
 * "keys list" prints key ids only, never key material.
 *
 * Output hygiene.  Values that come from the server and ultimately from
 * clients (user agents, IPs) are printed with control characters replaced,
 * so a crafted User-Agent cannot drive the admin's terminal (escape
 * sequence injection).
 *
 * Exit codes: 0 success, 1 runtime or HTTP failure (the server's error code
 * and message are printed), 2 usage error.  Uses only the public API
 * (sess.h), libcurl and jansson.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "migrate.h"
#include "sess.h"
#include "audit.h"

#define EXIT_USAGE 2
#define DEFAULT_URL "http://127.0.0.1:7700"
#define DEFAULT_KEYS_DIR "./var/keys"
#define DEFAULT_SIG_KEYS_DIR "./var/token-keys"
#define DEFAULT_JWKS_MAX_AGE 300   /* s; the JWKS Cache-Control max-age */
#define DEFAULT_TOKEN_TTL 300      /* s; tokens.access_ttl's default */
#define TOKEN_READ_MAX (SESS_JWT_MAX + 2)
#define API_KEY_MAX 512            /* bytes of an API key */
#define RESPONSE_MAX (8u << 20)    /* bytes of a response body we accept */
#define URL_MAX 4096

/* Options shared by all commands; each command says which it accepts. */
#define OPT_EXCEPT 0x1u
#define OPT_DIR 0x2u
#define OPT_HTTP 0x4u   /* --url, --api-key-file, --json */
#define OPT_USE 0x8u    /* --use enc|sig */
#define OPT_TYPE 0x10u  /* --type ed25519|p256|rsa */
#define OPT_ROTATE 0x20u /* --max-age, --token-ttl */
#define OPT_VERIFY 0x40u /* --jwks, --audience, --issuer */

typedef struct options {
    const char *url;
    const char *api_key_file;
    const char *except;
    const char *dir;
    const char *use;
    const char *type;
    const char *max_age;
    const char *token_ttl;
    const char *jwks;
    const char *audience;
    const char *issuer;
    bool json;
    unsigned given;             /* OPT_* actually used on the command line */
    const char *args[4];        /* positional arguments after the command */
    int nargs;
} options;

typedef int (*command_fn)(const options *opt);

typedef struct command {
    const char *group;          /* "sessions", "keys" */
    const char *name;
    command_fn run;
    int nargs;                  /* positional arguments required */
    unsigned opts;              /* OPT_* accepted */
    const char *usage;
    const char *help;
} command;

static int cmd_sessions_list(const options *opt);
static int cmd_revoke(const options *opt);
static int cmd_revoke_user(const options *opt);
static int cmd_keys_generate(const options *opt);
static int cmd_keys_list(const options *opt);
static int cmd_keys_rotate(const options *opt);
static int cmd_keys_retire(const options *opt);
static int cmd_token_verify(const options *opt);

static const command commands[] = {
    {"sessions", "list", cmd_sessions_list, 1, OPT_HTTP,
     "sessions list USER [--json]", "list a user's live sessions"},
    {"sessions", "revoke", cmd_revoke, 1, OPT_HTTP,
     "sessions revoke HANDLE", "end one session, named by its handle"},
    {"sessions", "revoke-user", cmd_revoke_user, 1, OPT_HTTP | OPT_EXCEPT,
     "sessions revoke-user USER [--except HANDLE]",
     "end all of a user's sessions (but one)"},
    {"keys", "generate", cmd_keys_generate, 0, OPT_DIR | OPT_USE | OPT_TYPE,
     "keys generate [--use enc|sig] [--type ed25519|p256|rsa] [--dir DIR]",
     "make a record key (enc: it becomes the newest) or a token signing "
     "key (sig: current if none is published, else next)"},
    {"keys", "list", cmd_keys_list, 0, OPT_DIR | OPT_USE,
     "keys list [--use enc|sig] [--dir DIR]",
     "list key ids (sig: with state and dates), never key material"},
    {"keys", "rotate", cmd_keys_rotate, 0, OPT_DIR | OPT_USE | OPT_ROTATE,
     "keys rotate [--use sig] [--max-age S] [--token-ttl S] [--dir DIR]",
     "signing keys: next becomes current, current retired (the next key "
     "must have been published for the JWKS max-age)"},
    {"keys", "retire", cmd_keys_retire, 1, OPT_DIR | OPT_USE | OPT_ROTATE,
     "keys retire KID [--use sig] [--token-ttl S] [--dir DIR]",
     "signing keys: retire KID (published until its tokens expired)"},
    {"token", "verify", cmd_token_verify, 1, OPT_VERIFY,
     "token verify --jwks FILE|URL [--audience A] [--issuer I] TOKEN|-",
     "verify an access token (\"-\": read it from stdin) and print its "
     "claims, or why it is refused"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: sessctl [--url URL] [--api-key-file FILE] COMMAND "
                 "...\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  sessctl %-46s %s\n", commands[i].usage,
                commands[i].help);
    fprintf(out, "  sessctl %-46s %s\n", "audit URL [options]",
            "audit a website's session handling (audit --help)");
    fprintf(out,
            "\n\"sessctl revoke\" and \"sessctl revoke-user\" are short for "
            "the sessions commands.\n\noptions:\n"
            "  --url URL             sessiond to talk to (default %s, env "
            "SESSCTL_URL;\n"
            "                        unix:PATH for a Unix socket)\n"
            "  --api-key-file FILE   file holding the management API key "
            "(or env\n"
            "                        SESSCTL_API_KEY; never on the command "
            "line)\n"
            "  --json                print the server's JSON as is\n"
            "  --dir DIR             key directory (default %s; %s for "
            "--use sig)\n"
            "  --use enc|sig         record-encryption keys (default) or token "
            "signing keys\n"
            "  --type T              signing key type: ed25519 (default), "
            "p256 (ES256), rsa (RS256)\n"
            "  --max-age S           the JWKS max-age a next key must be "
            "published for (%d)\n"
            "  --token-ttl S         access token lifetime, keeps retired "
            "keys published (%d)\n"
            "  --jwks FILE|URL       key set for token verify\n"
            "  --audience A, --issuer I   claims token verify requires\n"
            "  --version, --help\n"
            "  --                    end of options (for a user id that "
            "starts with '-';\n"
            "                        handles are always taken as "
            "arguments)\n\n"
            "store tools: sessctl export|import|migrate|rekey (sessctl migrate "
            "--help)\n"
            "exit codes: 0 ok, 1 failure (server error printed), 2 usage\n",
            DEFAULT_URL, DEFAULT_KEYS_DIR, DEFAULT_SIG_KEYS_DIR,
            DEFAULT_JWKS_MAX_AGE, DEFAULT_TOKEN_TTL);
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("sessctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see sessctl --help)\n", stderr);
    return EXIT_USAGE;
}

/* Print "s" with control characters and DEL replaced by '?' (terminal
 * escape injection through client-controlled strings). */
static void print_clean(FILE *out, const char *s, size_t max)
{
    size_t n = 0;

    for (; *s != '\0' && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
    if (*s != '\0')
        fputs("...", out);
}

/* Copy "s" (NULL: "-") for display into "buf", control characters
 * replaced; too long a value is shortened with "..." (display only). */
static void clean_copy(const char *s, char *buf, size_t cap)
{
    size_t n = 0;

    if (s == NULL)
        s = "-";
    for (; *s != '\0' && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        buf[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (*s != '\0' && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct response {
    long status;
    char *body;
    size_t len;
    bool too_big;
} response;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    response *r = user;
    size_t n = size * nmemb;
    char *grown;

    if (r->len + n > RESPONSE_MAX) {
        r->too_big = true;
        return 0;
    }
    grown = realloc(r->body, r->len + n + 1);
    if (grown == NULL)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/*
 * Read the API key: the first line of "file", else SESSCTL_API_KEY, else
 * none (sessiond on loopback may not need one).  Returns 0, or 1 after
 * printing why the key could not be read.
 */
static int read_api_key(const char *file, char *key, size_t cap)
{
    const char *env = getenv("SESSCTL_API_KEY");
    size_t len;

    key[0] = '\0';
    if (file != NULL) {
        struct stat st;
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            fprintf(stderr, "sessctl: %s: %s\n", file, strerror(errno));
            return 1;
        }
        if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
            fprintf(stderr, "sessctl: warning: %s is readable by others; "
                            "chmod 600 it\n", file);
        if (fgets(key, (int)cap, f) == NULL) {
            fclose(f);
            fprintf(stderr, "sessctl: %s: empty\n", file);
            return 1;
        }
        fclose(f);
        len = strlen(key);
        if (len == cap - 1 && key[len - 1] != '\n') {
            sess_wipe(key, cap);
            fprintf(stderr, "sessctl: %s: key longer than %zu bytes\n", file,
                    cap - 2);
            return 1;
        }
    } else if (env != NULL) {
        len = strlen(env);
        if (len >= cap) {
            fprintf(stderr, "sessctl: SESSCTL_API_KEY longer than %zu "
                            "bytes\n", cap - 1);
            return 1;
        }
        memcpy(key, env, len + 1);
    }
    len = strlen(key);
    while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r' ||
                       key[len - 1] == ' ' || key[len - 1] == '\t'))
        key[--len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)key[i] < 0x21 || key[i] == 0x7f) {
            sess_wipe(key, cap);
            fprintf(stderr, "sessctl: API key holds spaces or control "
                            "characters\n");
            return 1;
        }
    }
    if (file != NULL && len == 0) {
        fprintf(stderr, "sessctl: %s: empty\n", file);
        return 1;
    }
    return 0;
}

/*
 * Perform "method" on "path" (already percent-encoded) of the sessiond
 * named by --url / SESSCTL_URL.  On return 0 "*r" holds the status and the
 * body (caller frees r->body); 1 means the request could not be made (the
 * reason is printed).
 */
static int http_call(const options *opt, const char *method,
                     const char *path, response *r)
{
    const char *base = opt->url ? opt->url : getenv("SESSCTL_URL");
    char url[URL_MAX], key[API_KEY_MAX + 2], auth[API_KEY_MAX + 32];
    const char *socket_path = NULL;
    struct curl_slist *headers = NULL;
    CURL *curl = NULL;
    CURLcode cc;
    size_t blen;
    int rc = 1;

    memset(r, 0, sizeof *r);
    auth[0] = '\0';
    if (base == NULL || base[0] == '\0')
        base = DEFAULT_URL;
    if (strncmp(base, "unix:", 5) == 0) {
        socket_path = base + 5;
        base = "http://localhost";
    }
    blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    if (snprintf(url, sizeof url, "%.*s%s", (int)blen, base, path) >=
        (int)sizeof url) {
        fprintf(stderr, "sessctl: URL too long\n");
        return 1;
    }
    if (read_api_key(opt->api_key_file, key, sizeof key) != 0)
        return 1;

    curl = curl_easy_init();
    if (curl == NULL) {
        fprintf(stderr, "sessctl: cannot initialise libcurl\n");
        goto cleanup;
    }
    headers = curl_slist_append(headers, "Accept: application/json");
    if (key[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, auth);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (socket_path != NULL)
        curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
    cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        if (r->too_big)
            fprintf(stderr, "sessctl: response larger than %u bytes\n",
                    RESPONSE_MAX);
        else
            fprintf(stderr, "sessctl: %s %.*s: %s\n", method, (int)blen,
                    base, curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    rc = 0;
cleanup:
    /* The key and the header holding it are secrets: wipe our copies. */
    sess_wipe(key, sizeof key);
    sess_wipe(auth, sizeof auth);
    curl_slist_free_all(headers);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    if (rc != 0) {
        free(r->body);
        r->body = NULL;
    }
    return rc;
}

/* Print the server's {"error", "message"} for a failed call; returns 1. */
static int report_http_error(const response *r)
{
    json_t *root = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    const char *code = NULL, *msg = NULL;

    if (json_is_object(root)) {
        code = json_string_value(json_object_get(root, "error"));
        msg = json_string_value(json_object_get(root, "message"));
    }
    fprintf(stderr, "sessctl: server answered %ld", r->status);
    if (code != NULL) {
        fputs(" ", stderr);
        print_clean(stderr, code, 64);
    }
    if (msg != NULL) {
        fputs(": ", stderr);
        print_clean(stderr, msg, 256);
    }
    fputc('\n', stderr);
    json_decref(root);
    return 1;
}

/* Percent-encode "s" for one path segment or query value; NULL on error.
 * Caller frees with curl_free(). */
static char *escape(const char *s)
{
    CURL *curl = curl_easy_init();
    char *out = NULL;

    if (curl != NULL) {
        out = curl_easy_escape(curl, s, 0);
        curl_easy_cleanup(curl);
    }
    if (out == NULL)
        fprintf(stderr, "sessctl: out of memory\n");
    return out;
}

/* ---- commands ------------------------------------------------------------- */

static void iso_time(json_t *v, char *buf, size_t cap)
{
    json_int_t t = json_is_integer(v) ? json_integer_value(v) : -1;
    time_t tt = (time_t)t;
    struct tm tm;

    if (t < 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "-");
}

/* Fill "path" (URL_MAX bytes) from "fmt" with one percent-encoded "arg"
 * in place of its %s.  Returns 0, or 1 after saying what ("what") was too
 * long. */
static int path_with_arg(char *path, const char *fmt, const char *arg,
                         const char *what)
{
    char *enc = escape(arg);
    int n;
    if (enc == NULL)
        return 1;
    n = snprintf(path, URL_MAX, fmt, enc);
    curl_free(enc);
    if (n < 0 || n >= URL_MAX) {
        fprintf(stderr, "sessctl: %s too long\n", what);
        return 1;
    }
    return 0;
}

static int cmd_sessions_list(const options *opt)
{
    char path[URL_MAX];
    response r;
    json_t *root = NULL, *list;
    json_error_t jerr;
    int rc = 1;

    if (path_with_arg(path, "/v1/users/%s/sessions", opt->args[0], "user id") != 0)
        return 1;
    if (http_call(opt, "GET", path, &r) != 0)
        return 1;
    if (r.status != 200) {
        rc = report_http_error(&r);
        goto cleanup;
    }
    if (opt->json) {
        fwrite(r.body ? r.body : "", 1, r.len, stdout);
        if (r.len == 0 || r.body[r.len - 1] != '\n')
            fputc('\n', stdout);
        rc = 0;
        goto cleanup;
    }
    root = json_loadb(r.body ? r.body : "", r.len, 0, &jerr);
    list = json_object_get(root, "sessions");
    if (!json_is_array(list)) {
        fprintf(stderr, "sessctl: unexpected answer from the server (no "
                        "\"sessions\" array)\n");
        goto cleanup;
    }
    printf("%-22s  %-20s  %-20s  %-15s  %-8s  %s\n", "HANDLE", "CREATED",
           "LAST SEEN", "IP", "ELEVATED", "USER AGENT");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *s = json_array_get(list, i);
        const char *handle = json_string_value(json_object_get(s, "handle"));
        const char *ip = json_string_value(json_object_get(s, "ip"));
        const char *ua = json_string_value(json_object_get(s, "user_agent"));
        char created[32], seen[32];
        char h[SESS_HANDLE_LEN + 8], a[SESS_IP_MAX + 8], u[128];

        iso_time(json_object_get(s, "created_at"), created, sizeof created);
        iso_time(json_object_get(s, "last_seen_at"), seen, sizeof seen);
        clean_copy(handle, h, sizeof h);
        clean_copy(ip, a, sizeof a);
        clean_copy(ua, u, sizeof u);
        printf("%-22s  %-20s  %-20s  %-15s  %-8s  %s", h, created, seen, a,
               json_is_true(json_object_get(s, "elevated")) ? "yes" : "no",
               u);
        fputc('\n', stdout);
    }
    if (json_array_size(list) == 0)
        printf("(no live sessions)\n");
    rc = 0;
cleanup:
    json_decref(root);
    free(r.body);
    return rc;
}

static int cmd_revoke(const options *opt)
{
    char path[URL_MAX];
    response r;
    int rc = 1;

    if (path_with_arg(path, "/v1/sessions/%s", opt->args[0], "handle") != 0)
        return 1;
    if (http_call(opt, "DELETE", path, &r) != 0)
        return 1;
    if (r.status == 204 || r.status == 200) {
        printf("revoked ");
        print_clean(stdout, opt->args[0], 64);
        fputc('\n', stdout);
        rc = 0;
    } else {
        rc = report_http_error(&r);
    }
    free(r.body);
    return rc;
}

static int cmd_revoke_user(const options *opt)
{
    char path[URL_MAX];
    char *user = escape(opt->args[0]);
    char *except = NULL;
    response r;
    json_t *root = NULL;
    int n, rc = 1;

    if (user == NULL)
        return 1;
    if (opt->except != NULL && (except = escape(opt->except)) == NULL) {
        curl_free(user);
        return 1;
    }
    n = snprintf(path, sizeof path, "/v1/users/%s/sessions%s%s", user,
                 except ? "?except=" : "", except ? except : "");
    curl_free(user);
    curl_free(except);
    if (n >= (int)sizeof path) {
        fprintf(stderr, "sessctl: user id too long\n");
        return 1;
    }
    if (http_call(opt, "DELETE", path, &r) != 0)
        return 1;
    if (r.status != 200) {
        rc = report_http_error(&r);
        goto cleanup;
    }
    if (opt->json) {
        fwrite(r.body ? r.body : "", 1, r.len, stdout);
        fputc('\n', stdout);
        rc = 0;
        goto cleanup;
    }
    root = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
    if (!json_is_integer(json_object_get(root, "revoked"))) {
        fprintf(stderr, "sessctl: unexpected answer from the server (no "
                        "\"revoked\" count)\n");
        goto cleanup;
    }
    printf("revoked %lld session(s)\n",
           (long long)json_integer_value(json_object_get(root, "revoked")));
    rc = 0;
cleanup:
    json_decref(root);
    free(r.body);
    return rc;
}

/* ---- token signing keys (--use sig) and token verify ------------------ */

/* --use: 0 enc (default), 1 sig, -1 (usage printed) otherwise. */
static int key_use(const options *opt)
{
    if (opt->use == NULL || strcmp(opt->use, "enc") == 0)
        return 0;
    if (strcmp(opt->use, "sig") == 0)
        return 1;
    usage_error("--use takes enc or sig");
    return -1;
}

static const char *sig_dir(const options *opt)
{
    return opt->dir ? opt->dir : DEFAULT_SIG_KEYS_DIR;
}

/* A non-negative number of seconds from option "name" ("v"; NULL gives
 * "def"); -1 after printing a usage error. */
static long long seconds_opt(const char *name, const char *v, long long def)
{
    char *end;
    long long n;

    if (v == NULL)
        return def;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || end == v || n < 0 || n > 100000000LL) {
        usage_error("%s takes a number of seconds", name);
        return -1;
    }
    return n;
}

static int fail_err(const char *what, const sess_err *err)
{
    fprintf(stderr, "sessctl: %s: %s\n", what,
            err->msg[0] ? err->msg : sess_strerror(err->code));
    return 1;
}

static int sig_generate(const options *opt)
{
    int type = sess_sigkey_type_from_name(opt->type ? opt->type : "ed25519");
    char kid[SESS_KID_MAX + 1];
    sess_err err = {0};
    sess_sigkey_info *list = NULL;
    size_t n = 0;

    if (type < 0)
        return usage_error("--type takes ed25519, p256 or rsa");
    if (sess_sigkeys_generate(sig_dir(opt), (sess_sigkey_type)type, 0, kid,
                              &err) != SESS_OK)
        return fail_err("keys generate", &err);
    if (sess_sigkeys_list(sig_dir(opt), 0, &list, &n, &err) == SESS_OK) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i].kid, kid) == 0)
                printf("%s  %s\n", kid, sess_sigkey_state_name(list[i].state));
        free(list);
    }
    return 0;
}

static void date_cell(int64_t t, char *buf, size_t cap)
{
    json_t *v = t > 0 ? json_integer(t) : NULL;
    iso_time(v, buf, cap);
    json_decref(v);
}

static int sig_list(const options *opt)
{
    sess_sigkey_info *list = NULL;
    size_t n = 0;
    sess_err err = {0};

    if (sess_sigkeys_list(sig_dir(opt), 0, &list, &n, &err) != SESS_OK)
        return fail_err("keys list", &err);
    printf("%-43s  %-7s  %-7s  %-20s  %-20s  %-20s  %-20s  %s\n", "KID",
           "STATE", "TYPE", "CREATED", "ACTIVATED", "RETIRED", "NOT AFTER",
           "PUBLISHED");
    for (size_t i = 0; i < n; i++) {
        char c[32], a[32], r[32], na[32];
        date_cell(list[i].created, c, sizeof c);
        date_cell(list[i].activated, a, sizeof a);
        date_cell(list[i].retired_at, r, sizeof r);
        date_cell(list[i].not_after, na, sizeof na);
        printf("%-43s  %-7s  %-7s  %-20s  %-20s  %-20s  %-20s  %s\n",
               list[i].kid, sess_sigkey_state_name(list[i].state),
               sess_sigkey_type_name(list[i].type), c, a, r, na,
               list[i].published ? "yes" : "no (expired: may be deleted)");
    }
    if (n == 0)
        printf("(no signing keys)\n");
    free(list);
    return 0;
}

static int cmd_keys_rotate(const options *opt)
{
    long long max_age, ttl;
    sess_err err = {0};
    int use = key_use(opt);

    if (use < 0)
        return EXIT_USAGE;
    if (use == 0 && opt->use != NULL)
        return usage_error("record keys do not rotate by state: \"keys "
                           "generate\" makes the newest, which encrypts");
    if ((max_age = seconds_opt("--max-age", opt->max_age,
                               DEFAULT_JWKS_MAX_AGE)) < 0 ||
        (ttl = seconds_opt("--token-ttl", opt->token_ttl,
                           DEFAULT_TOKEN_TTL)) < 0)
        return EXIT_USAGE;
    if (sess_sigkeys_rotate(sig_dir(opt), 0, max_age, ttl,
                            SESS_JWT_LEEWAY_DEFAULT, &err) != SESS_OK)
        return fail_err("keys rotate", &err);
    printf("rotated; reload sessiond (SIGHUP) so it signs with the new "
           "key\n");
    return 0;
}

static int cmd_keys_retire(const options *opt)
{
    long long ttl;
    sess_err err = {0};
    int use = key_use(opt);

    if (use < 0)
        return EXIT_USAGE;
    if (use == 0 && opt->use != NULL)
        return usage_error("record keys are removed by deleting their file "
                           "once no record uses them");
    if ((ttl = seconds_opt("--token-ttl", opt->token_ttl,
                           DEFAULT_TOKEN_TTL)) < 0)
        return EXIT_USAGE;
    if (opt->max_age != NULL)
        return usage_error("--max-age does not apply to retire");
    if (sess_sigkeys_retire(sig_dir(opt), opt->args[0], 0, ttl,
                            SESS_JWT_LEEWAY_DEFAULT, &err) != SESS_OK)
        return fail_err("keys retire", &err);
    printf("retired; reload sessiond (SIGHUP)\n");
    return 0;
}

/* Read the JWKS of --jwks: an http(s) URL through libcurl, else a file.
 * The body (caller frees) is at most SESS_JWKS_MAX_BYTES. */
static int read_jwks(const char *src, char **body, size_t *len)
{
    response r = {0};
    FILE *f;

    *body = NULL;
    *len = 0;
    if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
        CURL *curl = curl_easy_init();
        CURLcode cc;
        if (curl == NULL) {
            fprintf(stderr, "sessctl: cannot initialise libcurl\n");
            return 1;
        }
        curl_easy_setopt(curl, CURLOPT_URL, src);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)SESS_JWKS_MAX_BYTES);
        cc = curl_easy_perform(curl);
        if (cc == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(curl);
        if (cc != CURLE_OK || r.status != 200) {
            if (cc != CURLE_OK)
                fprintf(stderr, "sessctl: GET JWKS: %s\n", curl_easy_strerror(cc));
            else
                fprintf(stderr, "sessctl: GET JWKS: HTTP %ld\n", r.status);
            free(r.body);
            return 1;
        }
        *body = r.body;
        *len = r.len;
        return 0;
    }
    f = fopen(src, "rb");
    if (f == NULL) {
        fprintf(stderr, "sessctl: %s: %s\n", src, strerror(errno));
        return 1;
    }
    *body = malloc(SESS_JWKS_MAX_BYTES + 1);
    if (*body == NULL) {
        fclose(f);
        fprintf(stderr, "sessctl: out of memory\n");
        return 1;
    }
    *len = fread(*body, 1, SESS_JWKS_MAX_BYTES + 1, f);
    fclose(f);
    return 0;
}

/* The token: the argument, or stdin for "-" (keeps it out of the shell
 * history and the process list).  Returns its length, or 0 on failure. */
static size_t read_token(const char *arg, char *buf, size_t cap)
{
    size_t n;

    if (strcmp(arg, "-") != 0) {
        n = strlen(arg);
        if (n >= cap) {
            fprintf(stderr, "sessctl: token longer than %d bytes\n",
                    SESS_JWT_MAX);
            return 0;
        }
        memcpy(buf, arg, n + 1);
        return n;
    }
    n = fread(buf, 1, cap - 1, stdin);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n == 0)
        fprintf(stderr, "sessctl: no token on stdin\n");
    return n;
}

static int cmd_token_verify(const options *opt)
{
    char token[TOKEN_READ_MAX + 1], *body = NULL, *text;
    size_t blen = 0, tlen;
    sess_jwks *set = NULL;
    sess_jwt_verify_opts vo;
    sess_jwt_reason reason;
    json_t *claims = NULL;
    sess_err err = {0};
    int rc = 1;

    if (opt->jwks == NULL)
        return usage_error("token verify needs --jwks FILE|URL");
    if (read_jwks(opt->jwks, &body, &blen) != 0)
        return 1;
    if (sess_jwks_parse(body, blen, &set, &err) != SESS_OK) {
        free(body);
        return fail_err("JWKS refused", &err);
    }
    free(body);
    if ((tlen = read_token(opt->args[0], token, sizeof token)) == 0)
        goto cleanup;
    sess_jwt_verify_opts_init(&vo);
    /* Every asymmetric algorithm: the key found by kid decides which one
     * may be used with it; HMAC and none are never accepted. */
    vo.algs = ~0u;
    vo.audience = opt->audience;
    vo.skip_audience = opt->audience == NULL;
    vo.issuer = opt->issuer;
    if (sess_jwt_verify(set, token, tlen, &vo, &claims, &reason, &err) != SESS_OK) {
        if (err.code == SESS_REJECTED)
            fprintf(stderr, "sessctl: token refused: %s: %s\n",
                    sess_jwt_reason_name(reason), sess_jwt_reason_text(reason));
        else
            fail_err("token verify", &err);
        goto cleanup;
    }
    /* json_dumps escapes control characters: the claims cannot drive the
     * terminal. */
    text = json_dumps(claims, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (text != NULL) {
        printf("%s\n", text);
        free(text);
    }
    if (opt->audience == NULL)
        fprintf(stderr, "sessctl: note: aud not checked (no --audience)\n");
    rc = 0;
cleanup:
    sess_wipe(token, sizeof token);
    json_decref(claims);
    sess_jwks_free(set);
    return rc;
}

static int cmd_keys_generate(const options *opt)
{
    const char *dir = opt->dir ? opt->dir : DEFAULT_KEYS_DIR;
    int use = key_use(opt);

    if (use < 0)
        return EXIT_USAGE;
    if (use == 1)
        return sig_generate(opt);
    if (opt->type != NULL)
        return usage_error("--type applies to signing keys (--use sig)");
    char kid[SESS_KID_MAX + 1];
    sess_err err = {0};

    if (sess_keyring_generate(dir, kid, &err) != SESS_OK) {
        fprintf(stderr, "sessctl: keys generate: %s\n",
                err.msg[0] ? err.msg : sess_strerror(err.code));
        return 1;
    }
    printf("%s\n", kid);
    return 0;
}

static int cmd_keys_list(const options *opt)
{
    const char *dir = opt->dir ? opt->dir : DEFAULT_KEYS_DIR;
    sess_keyring *kr = NULL;
    sess_err err = {0};
    int use = key_use(opt);

    if (use < 0)
        return EXIT_USAGE;
    if (use == 1)
        return sig_list(opt);

    if (sess_keyring_load_dir(dir, false, &kr, &err) != SESS_OK) {
        fprintf(stderr, "sessctl: keys list: %s\n",
                err.msg[0] ? err.msg : sess_strerror(err.code));
        return 1;
    }
    for (size_t i = 0; i < sess_keyring_count(kr); i++)
        printf("%s%s\n", sess_keyring_kid(kr, i),
               i == 0 ? "  (newest: encrypts)" : "");
    sess_keyring_free(kr);
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static const command *find_command(const char *group, const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].group, group) == 0 &&
            strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Option value: "--opt=VALUE" or "--opt VALUE". */
static const char *option_value(const char *name, int argc, char **argv,
                                int *i)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool looks_like_handle(const char *a)
{
    size_t n = strlen(a);
    if (n != SESS_HANDLE_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)a[i]) && a[i] != '-' && a[i] != '_')
            return false;
    return true;
}

int main(int argc, char **argv)
{
    options opt = {0};
    const char *words[8];
    int nwords = 0, rc;
    const command *cmd = NULL;
    static const struct {
        const char *name;
        unsigned bit;
        size_t off;
    } valued[] = {
        {"--url", OPT_HTTP, offsetof(options, url)},
        {"--api-key-file", OPT_HTTP, offsetof(options, api_key_file)},
        {"--except", OPT_EXCEPT, offsetof(options, except)},
        {"--dir", OPT_DIR, offsetof(options, dir)},
        {"--use", OPT_USE, offsetof(options, use)},
        {"--type", OPT_TYPE, offsetof(options, type)},
        {"--max-age", OPT_ROTATE, offsetof(options, max_age)},
        {"--token-ttl", OPT_ROTATE, offsetof(options, token_ttl)},
        {"--jwks", OPT_VERIFY, offsetof(options, jwks)},
        {"--audience", OPT_VERIFY, offsetof(options, audience)},
        {"--issuer", OPT_VERIFY, offsetof(options, issuer)},
    };

    /* "audit URL ...": its own options (src/sessctl/audit.c, docs/audit.md). */
    if (argc >= 2 && strcmp(argv[1], "audit") == 0)
        return sessctl_audit(argc - 1, argv + 1);
    /* export, import, migrate, rekey: store tools with their own options. */
    if (argc >= 2 && sessctl_is_store_tool(argv[1]))
        return sessctl_store_tool(argc, argv);

    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool matched = false;

        /* Handles are base64url and may start with '-': a word of exactly
         * a handle's shape is never an option.  "--" ends the options (for
         * user ids that start with '-'). */
        if (options_done || looks_like_handle(a)) {
            if (nwords == (int)(sizeof words / sizeof words[0]))
                return usage_error("too many arguments");
            words[nwords++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("sessctl %s\n", sess_version());
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            opt.json = true;
            opt.given |= OPT_HTTP;
            continue;
        }
        if (strncmp(a, "--api-key=", 10) == 0 || strcmp(a, "--api-key") == 0)
            return usage_error("API keys are never taken from the command "
                               "line: use --api-key-file FILE or "
                               "SESSCTL_API_KEY");
        for (size_t j = 0; j < sizeof valued / sizeof valued[0]; j++) {
            size_t n = strlen(valued[j].name);
            if (strncmp(a, valued[j].name, n) == 0 &&
                (a[n] == '\0' || a[n] == '=')) {
                const char *v = option_value(valued[j].name, argc, argv, &i);
                if (v == NULL || v[0] == '\0')
                    return usage_error("%s needs a value", valued[j].name);
                *(const char **)((char *)&opt + valued[j].off) = v;
                opt.given |= valued[j].bit;
                matched = true;
                break;
            }
        }
        if (matched)
            continue;
        if (a[0] == '-' && a[1] != '\0')
            return usage_error("unknown option '%s'", a);
        if (nwords == (int)(sizeof words / sizeof words[0]))
            return usage_error("too many arguments");
        words[nwords++] = a;
    }
    if (nwords == 0) {
        usage(stderr);
        return EXIT_USAGE;
    }

    /* "sessions list USER", "keys list", or the short "revoke HANDLE". */
    int first = 0;
    if (nwords >= 2 && (cmd = find_command(words[0], words[1])) != NULL)
        first = 2;
    else if ((cmd = find_command("sessions", words[0])) != NULL &&
             strcmp(words[0], "list") != 0)
        first = 1;
    else
        return usage_error("unknown command '%s%s%s'", words[0],
                           nwords > 1 ? " " : "", nwords > 1 ? words[1] : "");
    if (nwords - first != cmd->nargs)
        return usage_error("usage: sessctl %s", cmd->usage);
    if ((opt.given & ~cmd->opts) != 0)
        return usage_error("an option given does not apply to '%s %s' "
                           "(usage: sessctl %s)", cmd->group, cmd->name,
                           cmd->usage);
    for (int i = first; i < nwords; i++)
        opt.args[opt.nargs++] = words[i];

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sessctl: cannot initialise libcurl\n");
        return 1;
    }
    rc = cmd->run(&opt);
    curl_global_cleanup();
    return rc;
}
