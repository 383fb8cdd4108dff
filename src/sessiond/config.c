/*
 * config.c - sessiond's configuration, driven by one table of keys.
 *
 * Every key is one row of "keys[]" below (nginx's directive table, redis's
 * config table): section, name, type, the field it fills (offset and size),
 * its range or allowed names, its default as text, and its help.  From that
 * one table come the INI reader, the environment reader
 * (SESSIOND_<SECTION>_<KEY> plus a few short aliases), --set, the defaults
 * (the default text goes through the same parser a file value does, so the
 * documented default is the real one), --help and the docs test.
 *
 * Sources are applied in order of precedence, lowest first: defaults, the
 * file, the environment, the command line; a later source overrides an
 * earlier one.  Within one source a key may appear once (lists: every
 * occurrence appends); a second occurrence of a plain key is an error,
 * because two different values in one file are a mistake, never a wish.
 *
 * Environment-dependent defaults.  cookie.* and log.format default per
 * environment (sess_cookie_profile_default), so they are applied into the
 * config as they come but also remembered as "explicit"; once every source
 * has been read and server.env is final, the profile for that environment
 * is rebuilt and the explicit fields are put back over it.  Setting
 * server.env through sessiond_config_set() alone therefore resets the
 * cookie.* and log.format keys to that environment's defaults.
 *
 * INI reading uses inih through ini_parse_stream() with our own line
 * reader instead of ini_parse()/ini_parse_string(): inih reads at most
 * INI_MAX_LINE (200) bytes per line and silently treats the rest of a long
 * line as a new line (or, if it starts with a blank, as a continuation of
 * the value), which would truncate a path without a word.  The reader
 * refuses overlong lines and NUL bytes, counts lines (so every message
 * carries its line number) and refuses unknown [sections] even when they
 * hold no keys.  Files are read whole (at most CONFIG_FILE_MAX bytes).
 *
 * Error messages are one line that starts with the key ("section.key: ...")
 * and ends with where the value came from.  Values are echoed, shortened
 * and with control characters replaced; this configuration holds no
 * secrets (keys come from files), so echoing is safe.
 *
 * Not thread-safe; called once at start-up (and by tests).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ini.h>

#include "event_types.h"
#include "listen.h"
#include "sess/store_migrate.h"

#define CONFIG_FILE_MAX (1024 * 1024)   /* bytes of one config file */
#define ECHO_MAX 64                     /* characters of a value echoed */
#define SECONDS_MAX 31536000            /* one year */

/* ---- the key table ------------------------------------------------------ */

typedef enum key_type {
    KT_BOOL,        /* bool */
    KT_U8,          /* uint8_t, min..max */
    KT_U32,         /* uint32_t, min..max */
    KT_U64,         /* uint64_t, min..max */
    KT_I64,         /* int64_t, min..max */
    KT_RATIO,       /* double, 0..1 */
    KT_ENUM,        /* an enum (int-sized), value = index in "names" */
    KT_STR,         /* char[size], NUL-terminated */
    KT_CIDRS,       /* trusted_proxies */
    KT_ORIGINS,     /* allowed_origins */
    KT_WEBHOOKS     /* events.webhook_url: one "URL [types]" per occurrence */
} key_type;

#define K_ENV_DEFAULT 0x1u   /* default depends on server.env */
#define K_NONEMPTY 0x2u      /* strings: must not be empty */

/* Extra syntax check of a string key; writes the problem to "msg". */
typedef int (*key_check_fn)(const char *value, char *msg, size_t msglen);

typedef struct cfg_key {
    const char *section;
    const char *name;
    key_type type;
    size_t offset;            /* of the field in sessiond_config */
    size_t size;              /* of the field */
    int64_t min, max;         /* numbers */
    const char *unit;         /* numbers: "whole seconds", "bytes", ... */
    const char *const *names; /* KT_ENUM: NULL-terminated, index = value */
    key_check_fn check;       /* KT_STR: optional */
    const char *def;          /* default text; NULL with K_ENV_DEFAULT */
    unsigned flags;
    const char *alias;        /* short environment name, or NULL */
    const char *flag;         /* command-line flag, or NULL */
    const char *help;
} cfg_key;

/* Enum names: the index is the enum value, so each list follows its enum. */
static const char *const env_names[] = {"development", "staging",
                                        "production", NULL};
static const char *const durability_names[] = {"process", "fsync",
                                               "replicated", NULL};
static const char *const unavailable_names[] = {"fail_closed", "serve_cached",
                                                NULL};
static const char *const damage_names[] = {"refuse", "reset", NULL};
static const char *const limit_names[] = {"evict_oldest", "deny", NULL};
static const char *const action_names[] = {"reject", "log", NULL};
static const char *const reuse_names[] = {"revoke", "log", NULL};
static const char *const same_site_names[] = {"Strict", "Lax", "None", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          NULL};
static const char *const format_names[] = {"text", "json", NULL};
static const char *const token_alg_names[] = {"EdDSA", "Ed25519", "ES256",
                                              "RS256", NULL};
static const char *const failure_names[] = {"closed", "tokens_only", NULL};
_Static_assert(SESSIOND_TOKEN_EDDSA == 0 && SESSIOND_TOKEN_RS256 == 3,
               "token_alg_names order");
_Static_assert(SESSIOND_FAILURE_CLOSED == 0 &&
               SESSIOND_FAILURE_TOKENS_ONLY == 1, "failure_names order");

_Static_assert(SESS_ENV_DEVELOPMENT == 0 && SESS_ENV_STAGING == 1 &&
               SESS_ENV_PRODUCTION == 2, "env_names order");
_Static_assert(SESS_DURABILITY_PROCESS == 0 && SESS_DURABILITY_FSYNC == 1 &&
               SESS_DURABILITY_REPLICATED == 2, "durability_names order");
_Static_assert(SESS_UNAVAILABLE_FAIL_CLOSED == 0 &&
               SESS_UNAVAILABLE_SERVE_CACHED == 1 &&
               sizeof(sess_store_unavailable) == sizeof(int),
               "unavailable_names order");
_Static_assert(SESS_DAMAGE_REFUSE == 0 && SESS_DAMAGE_RESET == 1 &&
               sizeof(sess_store_damage) == sizeof(int),
               "damage_names order");
_Static_assert(SESS_LIMIT_EVICT_OLDEST == 0 && SESS_LIMIT_DENY == 1,
               "limit_names order");
_Static_assert(SESS_BIND_REJECT == 0 && SESS_BIND_LOG == 1,
               "action_names order");
_Static_assert(SESS_REUSE_REVOKE == 0 && SESS_REUSE_LOG == 1 &&
               sizeof(sess_reuse_action) == sizeof(int), "reuse_names order");
_Static_assert(SESS_SAME_SITE_STRICT == 0 && SESS_SAME_SITE_LAX == 1 &&
               SESS_SAME_SITE_NONE == 2, "same_site_names order");
_Static_assert(SESSIOND_LOG_ERROR == 0 && SESSIOND_LOG_DEBUG == 3,
               "level_names order");
_Static_assert(SESSIOND_LOG_TEXT == 0 && SESSIOND_LOG_JSON == 1,
               "format_names order");
_Static_assert(sizeof(sess_environment) == sizeof(int) &&
               sizeof(sess_durability) == sizeof(int) &&
               sizeof(sess_limit_policy) == sizeof(int) &&
               sizeof(sess_bind_action) == sizeof(int) &&
               sizeof(sess_same_site) == sizeof(int) &&
               sizeof(sessiond_log_level) == sizeof(int) &&
               sizeof(sessiond_log_format) == sizeof(int),
               "enums are stored as int");

static int check_listen(const char *v, char *msg, size_t msglen);
static int check_store_url(const char *v, char *msg, size_t msglen);
static int check_migration_mode(const char *v, char *msg, size_t msglen);
static int check_cookie_name(const char *v, char *msg, size_t msglen);
static int check_cookie_path(const char *v, char *msg, size_t msglen);
/* tracing.otlp_endpoint: an http or https URL (the exporter's libcurl
 * judges the rest when it starts). */
static int check_otlp_endpoint(const char *v, char *msg, size_t msglen)
{
    if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0) {
        snprintf(msg, msglen, "expected an http:// or https:// URL");
        return -1;
    }
    if (strpbrk(v, " \t\"<>\\^`{|}") != NULL) {
        snprintf(msg, msglen, "a URL has no spaces or quotes");
        return -1;
    }
    return 0;
}

static int check_cookie_domain(const char *v, char *msg, size_t msglen);
static int check_event_types(const char *v, char *msg, size_t msglen)
{
    uint32_t mask;
    char bad[32];
    if (sessiond_event_types_parse(v, strlen(v), &mask, bad))
        return 0;
    snprintf(msg, msglen, "unknown event type '%s'", bad);
    return -1;
}

/* One webhook_url value: "http(s)://... [types]" into slot "i". */
static int parse_webhook(sessiond_config *cfg, size_t i, const char *value,
                         char *msg, size_t msglen)
{
    size_t n = strcspn(value, " \t");
    const char *rest = value + n;
    char bad[32];
    if (n >= SESSIOND_WEBHOOK_URL_MAX) {
        snprintf(msg, msglen, "URL longer than %d bytes",
                 SESSIOND_WEBHOOK_URL_MAX - 1);
        return -1;
    }
    if (strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0) {
        snprintf(msg, msglen, "expected an http:// or https:// URL");
        return -1;
    }
    for (size_t j = 0; j < n; j++)
        if ((unsigned char)value[j] < 0x21 || value[j] == 0x7f) {
            snprintf(msg, msglen, "control characters are not allowed");
            return -1;
        }
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (!sessiond_event_types_parse(rest, strlen(rest),
                                    &cfg->events.webhook_types[i], bad)) {
        snprintf(msg, msglen, "unknown event type '%s'", bad);
        return -1;
    }
    memcpy(cfg->events.webhook_url[i], value, n);
    cfg->events.webhook_url[i][n] = '\0';
    return 0;
}

static int check_policy_version(const char *v, char *msg, size_t msglen);
static int check_event_types(const char *v, char *msg, size_t msglen);
static int check_otlp_endpoint(const char *v, char *msg, size_t msglen);

#define FIELD(f) offsetof(sessiond_config, f), sizeof(((sessiond_config *)0)->f)

/* Rows: section, name, type, FIELD, min, max, unit, names, check, default,
 * flags, env alias, command-line flag, help. */
static const cfg_key keys[] = {
    {"server", "listen", KT_STR, FIELD(listen), 0, 0, NULL, NULL,
     check_listen, "127.0.0.1:7700", K_NONEMPTY, "SESSIOND_LISTEN",
     "--listen",
     "Address to serve on: HOST:PORT, [IPv6]:PORT or unix:PATH (port 0: "
     "any free port). The "
     "management API needs API keys unless this is loopback or a Unix "
     "socket."},
    {"server", "max_body_bytes", KT_U64, FIELD(max_body_bytes), 1,
     16 * 1024 * 1024, "bytes", NULL, NULL, "65536", 0, NULL, NULL,
     "Largest request body accepted; larger requests get 413."},
    {"server", "threads", KT_U32, FIELD(threads), 0, 1024,
     "a number of threads", NULL, NULL, "0", 0, NULL, NULL,
     "Worker threads; 0 means one per CPU core."},
    {"server", "connection_timeout", KT_U32, FIELD(connection_timeout), 1,
     86400, "whole seconds", NULL, NULL, "60", 0, NULL, NULL,
     "Idle keep-alive connections are closed after this many seconds "
     "(also the bound on writing one response to a slow reader)."},
    {"server", "max_connections", KT_U32, FIELD(max_connections), 1,
     1048576, "a number of connections", NULL, NULL, "4096", 0, NULL, NULL,
     "Most connections served at once; past it a new connection gets 503 "
     "and is closed."},
    {"server", "max_connections_per_ip", KT_U32,
     FIELD(max_connections_per_ip), 0, 1048576, "a number of connections",
     NULL, NULL, "256", 0, NULL, NULL,
     "Most connections served at once from one client address; past it a "
     "new connection gets 503 and is closed. 0 means no limit. Loopback "
     "and binding.trusted_proxies are exempt unless server.limit_loopback "
     "or server.limit_trusted_proxies say otherwise."},
    {"server", "limit_loopback", KT_BOOL, FIELD(limit_loopback), 0, 0, NULL,
     NULL, NULL, "false", 0, NULL, NULL,
     "Apply server.max_connections_per_ip to loopback peers too (127.0.0.0/8, "
     "::1)."},
    {"server", "limit_trusted_proxies", KT_BOOL, FIELD(limit_trusted_proxies),
     0, 0, NULL, NULL, NULL, "false", 0, NULL, NULL,
     "Apply server.max_connections_per_ip to binding.trusted_proxies too."},
    {"server", "header_timeout", KT_U32, FIELD(header_timeout), 1, 3600,
     "whole seconds", NULL, NULL, "10", 0, NULL, NULL,
     "A request line and headers must arrive in full within this many "
     "seconds of their first byte, however slowly they trickle; else 408 "
     "and the connection is closed."},
    {"server", "body_timeout", KT_U32, FIELD(body_timeout), 1, 3600,
     "whole seconds", NULL, NULL, "30", 0, NULL, NULL,
     "A request body must arrive in full within this many seconds of the "
     "end of its headers; else 408 and the connection is closed."},
    {"server", "env", KT_ENUM, FIELD(env), 0, 0, NULL, env_names, NULL,
     "development", 0, "SESSIOND_ENV", "--env",
     "Environment: development, staging or production. Chooses the cookie "
     "profile and log format defaults; outside development missing keys "
     "are an error instead of being generated."},
    {"server", "keys_dir", KT_STR, FIELD(keys_dir), 0, 0, NULL, NULL, NULL,
     "./var/keys", K_NONEMPTY, "SESSIOND_KEYS", "--keys",
     "Directory of record-encryption keys (<kid>.key files, mode 0600)."},
    {"server", "api_keys_file", KT_STR, FIELD(api_keys_file), 0, 0, NULL,
     NULL, NULL, "", 0, "SESSIOND_API_KEYS", "--api-keys",
     "File of API keys for the management API (mode 0600); empty means "
     "none."},

    {"store", "url", KT_STR, FIELD(store_url), 0, 0, NULL, NULL,
     check_store_url, "lmdb:./var/sessions", K_NONEMPTY, "SESSIOND_STORE",
     "--store", "Session store: lmdb:PATH, memory:, redis://HOST:PORT[/DB], "
     "redis+sentinel://H1:P1,H2:P2/MASTER[/DB] or redis+cluster://H1:P1,H2:P2."},
    {"migration", "from", KT_STR, FIELD(migration_from), 0, 0, NULL, NULL,
     check_store_url, "", 0, NULL, NULL,
     "Store URL sessions move from (docs/migration.md); with migration.to "
     "set, it replaces store.url."},
    {"migration", "to", KT_STR, FIELD(migration_to), 0, 0, NULL, NULL,
     check_store_url, "", 0, NULL, NULL,
     "Store URL sessions move to (any backend of store.url)."},
    {"migration", "mode", KT_STR, FIELD(migration_mode), 0, 0, NULL, NULL,
     check_migration_mode, "off", 0, NULL, NULL,
     "off, shadow, dual, route:N (0-100), read-through or new; SIGHUP "
     "re-reads it, PUT /v1/admin/migration changes it."},
    {"store", "durability", KT_ENUM, FIELD(durability), 0, 0, NULL,
     durability_names, NULL, "process", 0, NULL, NULL,
     "process: an acknowledged write survives the process dying (kill -9); "
     "fsync: it also survives power loss, at a cost per write (LMDB); "
     "replicated: Redis only, a create, regenerate or destroy is "
     "acknowledged once one replica has it (WAIT), else 503."},
    {"store", "map_size", KT_U64, FIELD(map_size), 1048576,
     INT64_C(17592186044416), "bytes", NULL, NULL, "4294967296", 0, NULL,
     NULL, "Largest size of the LMDB file (address space, not disk)."},
    {"store", "purge_interval", KT_U32, FIELD(purge_interval), 1, 86400,
     "whole seconds", NULL, NULL, "60", 0, NULL, NULL,
     "Seconds between sweeps that delete expired sessions."},
    {"store", "timeout_ms", KT_U32, FIELD(store_timeout_ms), 1, 60000,
     "milliseconds", NULL, NULL, "20", 0, NULL, NULL,
     "Redis: read/write timeout of one round trip; past it the operation "
     "fails with 503."},
    {"store", "connect_timeout_ms", KT_U32, FIELD(store_connect_timeout_ms),
     1, 60000, "milliseconds", NULL, NULL, "100", 0, NULL, NULL,
     "Redis: timeout of a connection attempt."},
    {"store", "pool_size", KT_U32, FIELD(store_pool_size), 0, 65536,
     "a number of connections", NULL, NULL, "0", 0, NULL, NULL,
     "Redis: idle connections kept per server; 0 means twice "
     "server.threads (or 16 when threads is 0)."},
    {"store", "replica_timeout_ms", KT_U32, FIELD(store_replica_timeout_ms),
     1, 60000, "milliseconds", NULL, NULL, "100", 0, NULL, NULL,
     "Redis with durability = replicated: how long to wait for a replica "
     "to acknowledge a write."},
    {"store", "password_file", KT_STR, FIELD(store_password_file), 0, 0,
     NULL, NULL, NULL, "", 0, NULL, NULL,
     "Redis: file (mode 0600) holding the AUTH password; empty means no "
     "AUTH. Never put a password in store.url."},
    {"store", "l1_cache", KT_BOOL, FIELD(store_l1_cache), 0, 0, NULL, NULL,
     NULL, "true", 0, NULL, NULL,
     "Redis: keep an in-process cache of sessions in front of Redis, kept "
     "coherent by Redis client-side caching invalidation."},
    {"store", "l1_max_entries", KT_U32, FIELD(store_l1_max_entries), 1,
     100000000, "a number of entries", NULL, NULL, "100000", 0, NULL, NULL,
     "Redis: most sessions held in the L1 cache (random eviction)."},
    {"store", "record_cache", KT_U32, FIELD(session.record_cache_entries), 0,
     1u << 24, "a number of records", NULL, NULL, "65536", 0, NULL, NULL,
     "Opened records kept decrypted in memory (1 KiB each, excluded from "
     "core dumps), so validating a record that has not changed skips "
     "AES-GCM; every validation still reads the store. 0 turns it off."},
    {"store", "on_unavailable", KT_ENUM, FIELD(store_on_unavailable), 0, 0,
     NULL, unavailable_names, NULL, "fail_closed", 0, NULL, NULL,
     "Redis unreachable: fail_closed answers 503 to every validation; "
     "serve_cached lets sessions already in the L1 cache validate (a "
     "session revoked meanwhile keeps working until Redis is back)."},
    {"store", "on_damage", KT_ENUM, FIELD(store_on_damage), 0, 0,
     NULL, damage_names, NULL, "refuse", 0, NULL, NULL,
     "LMDB store found damaged at start (data.mdb shorter than its last "
     "page, 0 bytes where a store existed, or failing the read probe): "
     "refuse exits 1 naming the damage; reset renames data.mdb aside "
     "(data.mdb.damaged-TIME) and starts an empty store, losing every "
     "session."},
    {"store", "group_access", KT_BOOL, FIELD(store_group_access), 0, 0, NULL,
     NULL, NULL, "false", 0, NULL, NULL,
     "LMDB: share the store with the directory's group (nginx workers "
     "running ngx_http_sessiond_module, docs/nginx-module.md): data.mdb "
     "and lock.mdb get group read and write, the directory group search."},

    {"session", "idle_timeout", KT_U32, FIELD(session.idle_timeout), 1,
     SECONDS_MAX, "whole seconds", NULL, NULL, "1800", 0, NULL, NULL,
     "A session unused for this long expires."},
    {"session", "absolute_timeout", KT_U32, FIELD(session.absolute_timeout),
     1, SECONDS_MAX, "whole seconds", NULL, NULL, "86400", 0, NULL, NULL,
     "A session expires this long after it was created, used or not; at "
     "least idle_timeout."},
    {"session", "rotate_interval", KT_U32, FIELD(session.rotate_interval), 0,
     SECONDS_MAX, "whole seconds", NULL, NULL, "300", 0, NULL, NULL,
     "The session ID is replaced this often; 0 turns periodic rotation "
     "off."},
    {"session", "rotation_grace", KT_U32, FIELD(session.rotation_grace), 0,
     3600, "whole seconds", NULL, NULL, "30", 0, NULL, NULL,
     "After a rotation the old ID still works (and yields the same "
     "successor) for this long; less than rotate_interval."},
    {"session", "max_per_user", KT_U32, FIELD(session.max_per_user), 0,
     1000, "a number of sessions", NULL, NULL, "3", 0, NULL, NULL,
     "Most live sessions per user; 0 means unlimited."},
    {"session", "limit_policy", KT_ENUM, FIELD(session.limit_policy), 0, 0,
     NULL, limit_names, NULL, "evict_oldest", 0, NULL, NULL,
     "At the limit: evict_oldest ends the oldest session, deny refuses the "
     "new one (409)."},
    {"session", "remember_idle_timeout", KT_U32,
     FIELD(session.remember_idle_timeout), 1, SECONDS_MAX, "whole seconds",
     NULL, NULL, "604800", 0, NULL, NULL,
     "Idle timeout of remember-me sessions."},
    {"session", "remember_absolute_timeout", KT_U32,
     FIELD(session.remember_absolute_timeout), 1, SECONDS_MAX,
     "whole seconds", NULL, NULL, "2592000", 0, NULL, NULL,
     "Absolute timeout of remember-me sessions; at least "
     "remember_idle_timeout."},
    {"session", "on_reuse_after_grace", KT_ENUM,
     FIELD(session.reuse_action), 0, 0, NULL, reuse_names, NULL, "revoke", 0,
     NULL, NULL,
     "A rotated-away ID presented after rotation_grace (a replayed cookie): "
     "revoke also ends the session it rotated into (RFC 9700 4.14.2: the "
     "first user may be the thief); log only writes the reuse_after_grace "
     "event. The request itself is refused either way."},

    {"binding", "ip_prefix_v4", KT_U8, FIELD(session.ip_prefix_v4), 0, 32,
     "a prefix length", NULL, NULL, "24", 0, NULL, NULL,
     "A session is bound to this many leading bits of the client's IPv4 "
     "address; 0 turns IPv4 binding off."},
    {"binding", "ip_prefix_v6", KT_U8, FIELD(session.ip_prefix_v6), 0, 128,
     "a prefix length", NULL, NULL, "64", 0, NULL, NULL,
     "Likewise for IPv6; 0 turns IPv6 binding off."},
    {"binding", "user_agent", KT_BOOL, FIELD(session.bind_user_agent), 0, 0,
     NULL, NULL, NULL, "true", 0, NULL, NULL,
     "Bind a session to the exact User-Agent it was created with."},
    {"binding", "action", KT_ENUM, FIELD(session.bind_action), 0, 0, NULL,
     action_names, NULL, "reject", 0, NULL, NULL,
     "On a binding mismatch: reject the session, or only log a security "
     "event."},
    {"binding", "trusted_proxies", KT_CIDRS, FIELD(trusted_proxies), 0, 0,
     NULL, NULL, NULL, "", 0, NULL, NULL,
     "Comma- or space-separated CIDR blocks (IPv4 or IPv6; a bare address "
     "is /32 or /128) whose X-Forwarded-For, X-Real-IP, X-Forwarded-Host "
     "and X-Forwarded-Proto are believed (one trust rule)."},

    {"cookie", "name", KT_STR, FIELD(cookie.name), 0, 0, NULL, NULL,
     check_cookie_name, NULL, K_ENV_DEFAULT | K_NONEMPTY, NULL, NULL,
     "Cookie name (an RFC 6265 token). __Host- requires Secure, Path=/ "
     "and no Domain."},
    {"cookie", "secure", KT_BOOL, FIELD(cookie.secure), 0, 0, NULL, NULL,
     NULL, NULL, K_ENV_DEFAULT, NULL, NULL,
     "Send the cookie over HTTPS only."},
    {"cookie", "http_only", KT_BOOL, FIELD(cookie.http_only), 0, 0, NULL,
     NULL, NULL, NULL, K_ENV_DEFAULT, NULL, NULL,
     "Hide the cookie from scripts."},
    {"cookie", "same_site", KT_ENUM, FIELD(cookie.same_site), 0, 0, NULL,
     same_site_names, NULL, NULL, K_ENV_DEFAULT, NULL, NULL,
     "SameSite attribute: Strict, Lax or None (None requires Secure)."},
    {"cookie", "path", KT_STR, FIELD(cookie.path), 0, 0, NULL, NULL,
     check_cookie_path, NULL, K_ENV_DEFAULT | K_NONEMPTY, NULL, NULL,
     "Path attribute."},
    {"cookie", "domain", KT_STR, FIELD(cookie.domain), 0, 0, NULL, NULL,
     check_cookie_domain, NULL, K_ENV_DEFAULT, NULL, NULL,
     "Domain attribute; empty means a host-only cookie."},
    {"cookie", "max_age", KT_I64, FIELD(cookie.max_age), -1, SECONDS_MAX,
     "whole seconds or -1", NULL, NULL, NULL, K_ENV_DEFAULT, NULL, NULL,
     "Max-Age of the cookie; -1 means a browser-session cookie (remember-me "
     "sessions always get their remaining lifetime)."},

    {"csrf", "enabled", KT_BOOL, FIELD(session.csrf_enabled), 0, 0, NULL,
     NULL, NULL, "true", 0, NULL, NULL,
     "Require the session's CSRF token on unsafe requests."},
    {"csrf", "allowed_origins", KT_ORIGINS, FIELD(allowed_origins), 0, 0,
     NULL, NULL, NULL, "", 0, NULL, NULL,
     "Comma- or space-separated full origins (https://shop.example) that "
     "may send unsafe requests besides the request's own origin; compared "
     "whole (scheme, host, port)."},

    {"cookie_policy", "version", KT_STR, FIELD(cookies.version), 0, 0,
     NULL, NULL, check_policy_version, "", 0, NULL, NULL,
     "Version of the cookie policy carried by consent cookies; a consent "
     "given for another version counts as none. Empty: a hash of the "
     "catalogue as served, so every change asks for consent again."},
    {"cookie_policy", "consent_cookie", KT_STR, FIELD(cookies.consent_name),
     0, 0, NULL, NULL, check_cookie_name, "", 0, NULL, NULL,
     "Name of the signed consent cookie; empty: sessiond_consent in "
     "development, __Host-sessiond_consent elsewhere."},
    {"cookie_policy", "consent_max_age", KT_I64,
     FIELD(cookies.consent_max_age), 1, 400 * 86400, "whole seconds", NULL,
     NULL, "15552000", 0, NULL, NULL,
     "How long a consent answer is kept (and honoured): 180 days by "
     "default, at most 400 days (RFC 6265bis)."},
    {"cookie_policy", "session_purpose", KT_STR,
     FIELD(cookies.session_purpose), 0, 0, NULL, NULL, NULL,
     "Keeps you signed in (the session).", K_NONEMPTY, NULL, NULL,
     "Purpose of the session cookie shown in the policy (it is always "
     "there, as essential). The catalogue's cookies are [cookies.NAME] "
     "sections (docs/cookies.md)."},

    {"log", "level", KT_ENUM, FIELD(log_level), 0, 0, NULL, level_names,
     NULL, "info", 0, NULL, NULL,
     "Least severe message logged: error, warn, info or debug."},
    {"log", "format", KT_ENUM, FIELD(log_format), 0, 0, NULL, format_names,
     NULL, NULL, K_ENV_DEFAULT, NULL, NULL,
     "Log line format: text or json."},
    {"log", "security_events", KT_STR, FIELD(security_events), 0, 0, NULL,
     NULL, NULL, "stderr", K_NONEMPTY, NULL, NULL,
     "Where security events go as JSON lines: stderr or a file path "
     "(mode 0600, reopened on SIGHUP, for logrotate)."},

    {"events", "webhook_url", KT_WEBHOOKS, FIELD(events.webhook_url), 0, 0,
     NULL, NULL, NULL, "", 0, NULL, NULL,
     "A URL (http:// or https://; https:// outside development) that "
     "receives each lifecycle event as a signed POST (Standard Webhooks), "
     "optionally followed by a space and the types it wants "
     "(created,destroyed); repeatable, at most 8."},
    {"events", "webhook_secret_file", KT_STR,
     FIELD(events.webhook_secret_file), 0, 0, NULL, NULL, NULL, "", 0, NULL,
     NULL,
     "File (mode 0600) of signing keys, one \"KEYID whsec_BASE64\" per line "
     "(24-64 bytes each); every key signs, so a receiver can move to a new "
     "one. Required with webhook_url."},
    {"events", "types", KT_STR, FIELD(events.types), 0, 0, NULL, NULL,
     check_event_types, "", 0, NULL, NULL,
     "Comma-separated lifecycle event types sent to the webhooks (created, "
     "rotated, regenerated, elevated, destroyed, expired, evicted, revoked, "
     "token_reuse, binding_mismatch); empty: all of them."},
    {"events", "outbox", KT_STR, FIELD(events.outbox), 0, 0, NULL, NULL,
     NULL, "./var/events-outbox", K_NONEMPTY, NULL, NULL,
     "Directory of the durable outbox (its own LMDB environment) that "
     "holds each event until every webhook took it; one per sessiond."},
    {"events", "outbox_max_events", KT_U32, FIELD(events.outbox_max_events),
     100, 10000000, "events", NULL, NULL, "100000", 0, NULL, NULL,
     "Events the outbox holds at most; beyond that new events are dropped "
     "(counted and logged) rather than filling the disk."},
    {"events", "webhook_timeout_ms", KT_U32,
     FIELD(events.webhook_timeout_ms), 100, 60000, "milliseconds", NULL,
     NULL, "5000", 0, NULL, NULL,
     "Time allowed for one delivery (connect and answer)."},
    {"events", "retry_min_ms", KT_U32, FIELD(events.retry_min_ms), 10,
     3600000, "milliseconds", NULL, NULL, "1000", 0, NULL, NULL,
     "First retry delay; it doubles with each failed attempt up to "
     "retry_max_ms, with jitter (a random half to whole of it)."},
    {"events", "retry_max_ms", KT_U32, FIELD(events.retry_max_ms), 10,
     86400000, "milliseconds", NULL, NULL, "300000", 0, NULL, NULL,
     "Longest retry delay; delivery is retried for as long as the event "
     "stays in the outbox."},
    {"log", "access", KT_STR, FIELD(access_log), 0, 0, NULL, NULL,
     NULL, "off", K_NONEMPTY, NULL, NULL,
     "Access log: off, stdout, stderr, or a file that gets one JSON line per request (ts, "
     "method, route pattern, status, latency_us, outcome, trace_id, peer; "
     "never cookies, IDs, tokens, query strings or user ids). Reopened on "
     "SIGHUP, for logrotate."},

    {"tracing", "otlp_endpoint", KT_STR, FIELD(tracing.otlp_endpoint), 0, 0,
     NULL, NULL, check_otlp_endpoint, "", 0, NULL, NULL,
     "OTLP/HTTP JSON traces endpoint, e.g. "
     "http://127.0.0.1:4318/v1/traces; empty: tracing off (no spans, no "
     "cost)."},
    {"tracing", "sample_ratio", KT_RATIO, FIELD(tracing.sample_ratio), 0, 1,
     "a ratio", NULL, NULL, "1", 0, NULL, NULL,
     "Share of new traces sampled (0 to 1); a request with a traceparent "
     "follows its sampled flag (parent-based)."},
    {"tracing", "service_name", KT_STR, FIELD(tracing.service_name), 0, 0,
     NULL, NULL, NULL, "sessiond", K_NONEMPTY, NULL, NULL,
     "The service.name resource attribute of the spans."},
    {"tracing", "service_instance_id", KT_STR,
     FIELD(tracing.service_instance_id), 0, 0, NULL, NULL, NULL, "", 0, NULL,
     NULL,
     "The service.instance.id resource attribute; empty: a random UUID "
     "drawn at start."},
    {"tracing", "batch_size", KT_U32, FIELD(tracing.batch_size), 1, 8192,
     "a number of spans", NULL, NULL, "512", 0, NULL, NULL,
     "Most spans in one export request; a full batch is sent at once."},
    {"tracing", "queue_size", KT_U32, FIELD(tracing.queue_size), 1, 1048576,
     "a number of spans", NULL, NULL, "2048", 0, NULL, NULL,
     "Most spans waiting for export; past it a request's spans are dropped "
     "and counted (sessiond_tracing_spans_dropped_total), never waited "
     "for."},
    {"tracing", "flush_interval_ms", KT_U32, FIELD(tracing.flush_interval_ms),
     10, 60000, "milliseconds", NULL, NULL, "5000", 0, NULL, NULL,
     "A batch that is not full is sent after this long."},
    {"tracing", "timeout_ms", KT_U32, FIELD(tracing.timeout_ms), 100, 60000,
     "milliseconds", NULL, NULL, "5000", 0, NULL, NULL,
     "Deadline of one export request, and of the last flush when sessiond "
     "stops."},
    {"store", "failure", KT_ENUM, FIELD(store_failure), 0, 0, NULL,
     failure_names, NULL, "closed", 0, NULL, NULL,
     "While the store is unreachable: closed answers 503 to forward-auth; "
     "tokens_only lets forward-auth with accept_bearer accept a valid "
     "bearer token without checking its session (a revoked session keeps "
     "working until its token expires, at most tokens.access_ttl)."},

    {"tokens", "issuer", KT_STR, FIELD(tokens.issuer), 0, 0, NULL, NULL,
     NULL, "", 0, NULL, NULL,
     "The iss claim and the base of jwks_uri in the metadata (an https URL "
     "in production); empty means http://<server.listen>."},
    {"tokens", "client_id", KT_STR, FIELD(tokens.client_id), 0, 0, NULL, NULL,
     NULL, "app", K_NONEMPTY, NULL, NULL,
     "The client_id claim (RFC 9068 requires it): the OAuth client the "
     "tokens are issued to, the application in front of sessiond."},
    {"tokens", "keys_dir", KT_STR, FIELD(tokens.keys_dir), 0, 0, NULL, NULL,
     NULL, "./var/sigkeys", K_NONEMPTY, NULL, NULL,
     "Directory of token signing keys (sessctl keys generate --use sig), "
     "separate from the record keys; created with a fresh key in "
     "development."},
    {"tokens", "alg", KT_ENUM, FIELD(tokens.alg), 0, 0, NULL,
     token_alg_names, NULL, "EdDSA", 0, NULL, NULL,
     "Signing algorithm: EdDSA or Ed25519 (both Ed25519 keys; the name the "
     "tokens carry), ES256 (P-256) or RS256; the current key must be of "
     "that type."},
    {"tokens", "access_ttl", KT_U32, FIELD(tokens.access_ttl), 10, 86400,
     "whole seconds", NULL, NULL, "300", 0, NULL, NULL,
     "Lifetime of an access token, never beyond its session's."},
    {"tokens", "refresh_ttl", KT_U32, FIELD(tokens.refresh_ttl), 60,
     SECONDS_MAX, "whole seconds", NULL, NULL, "86400", 0, NULL, NULL,
     "Lifetime of a refresh token, never beyond its session's absolute "
     "deadline."},
    {"tokens", "refresh_grace", KT_U32, FIELD(tokens.refresh_grace), 0, 600,
     "whole seconds", NULL, NULL, "30", 0, NULL, NULL,
     "A spent refresh token returns its successor for this long (tabs "
     "refreshing at once); later use revokes the session (token_reuse)."},
    {"tokens", "claims", KT_STR, FIELD(tokens.claims), 0, 0, NULL, NULL,
     NULL, "", 0, NULL, NULL,
     "Comma-separated members of the session data copied into access "
     "tokens (e.g. roles,permissions); registered claim names are refused."},
    {"tokens", "leeway", KT_U32, FIELD(tokens.leeway), 0, 300,
     "whole seconds", NULL, NULL, "30", 0, NULL, NULL,
     "Clock skew allowed when sessiond itself verifies a token "
     "(introspection, accept_bearer)."},
    {"tokens", "jwks_max_age", KT_U32, FIELD(tokens.jwks_max_age), 0, 86400,
     "whole seconds", NULL, NULL, "300", 0, NULL, NULL,
     "Cache-Control max-age of the JWKS; a next key must be published this "
     "long before sessctl keys rotate makes it sign."},
    {"tokens", "revoke_session_with_refresh", KT_BOOL,
     FIELD(tokens.revoke_session_with_refresh), 0, 0, NULL, NULL, NULL,
     "false", 0, NULL, NULL,
     "POST /v1/tokens/revoke of a refresh token also ends its session."},

    {"forward_auth", "token_audience", KT_STR,
     FIELD(tokens.fa_audience), 0, 0, NULL, NULL, NULL, "", 0, NULL, NULL,
     "When set, GET /v1/auth adds an access token for this audience to its "
     "200 (minted once per session, reused until a minute before expiry)."},
    {"forward_auth", "token_header", KT_STR, FIELD(tokens.fa_header), 0, 0,
     NULL, NULL, NULL, "Authorization", K_NONEMPTY, NULL, NULL,
     "Response header carrying \"Bearer <token>\" for the upstream."},
    {"forward_auth", "token_cache_size", KT_U32, FIELD(tokens.fa_cache_size),
     64, 4194304, "entries", NULL, NULL, "16384", 0, NULL, NULL,
     "Tokens kept for forward-auth, one per session (about 0.7 KiB each "
     "when full); size it to the sessions active within tokens.access_ttl, "
     "or every miss costs a signature."},
    {"forward_auth", "accept_bearer", KT_BOOL, FIELD(tokens.accept_bearer),
     0, 0, NULL, NULL, NULL, "false", 0, NULL, NULL,
     "Authorise a request with Authorization: Bearer and no session cookie "
     "by its access token (signature, aud = token_audience, exp, and its "
     "session still live)."},
};

#define N_KEYS (sizeof keys / sizeof keys[0])
/* Key masks: KEY_WORDS 64-bit words, one bit per row. */
#define KEY_WORDS 2
_Static_assert(sizeof keys / sizeof keys[0] <= 64 * KEY_WORDS,
               "raise KEY_WORDS");

static const char *const sections[] = {"server", "store", "migration", "session",
                                       "binding", "cookie", "csrf", "log",
                                       "cookie_policy", "tokens",
                                       "forward_auth", "events", "tracing",
                                       NULL};

/* [cookies.NAME]: one section per cookie of the catalogue, read by the
 * library (sess_cookie_catalogue_set), not by the key table. */
#define CATALOGUE_PREFIX "cookies."
#define CATALOGUE_PREFIX_LEN (sizeof CATALOGUE_PREFIX - 1)

/* ---- messages ----------------------------------------------------------- */

/* Where a value came from, appended to messages: "(FILE line N)",
 * "(from SESSIOND_X)", "(from --set)". */
typedef struct origin {
    const char *what;       /* file name, variable or flag; NULL: none */
    unsigned line;          /* files and INI text; 0 otherwise */
    bool is_file;
} origin;

/* Copy "v" for echoing in a message: at most ECHO_MAX characters, control
 * and non-ASCII bytes replaced, so the message stays one printable line. */
static void echo_value(const char *v, char *out, size_t cap)
{
    size_t i = 0, n = 0;

    while (v[i] != '\0' && n + 4 < cap && i < ECHO_MAX) {
        unsigned char c = (unsigned char)v[i++];
        out[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    if (v[i] != '\0' && n + 4 <= cap) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static void origin_suffix(const origin *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (o == NULL || o->what == NULL)
        return;
    if (o->line > 0)
        snprintf(buf, cap, " (%s line %u)", o->what, o->line);
    else
        snprintf(buf, cap, " (from %s)", o->what);
}

/* Write "<key>: <problem><origin>" into errbuf. */
static int fail(char *errbuf, size_t errlen, const cfg_key *k,
                const origin *o, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *errbuf, size_t errlen, const cfg_key *k,
                const origin *o, const char *fmt, ...)
{
    char problem[512], where[SESSIOND_PATH_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    origin_suffix(o, where, sizeof where);
    if (errbuf != NULL && errlen > 0) {
        if (k != NULL)
            snprintf(errbuf, errlen, "%s.%s: %s%s", k->section, k->name,
                     problem, where);
        else
            snprintf(errbuf, errlen, "%s%s", problem, where);
    }
    return SESS_ECONFIG;
}

/* ---- value parsers ------------------------------------------------------ */

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Whole decimal number: digits only (an optional '-' when "negative_ok"),
 * nothing before or after, no overflow.  strtoull alone would accept
 * leading blanks, a sign and "-1" as a huge number. */
static bool parse_i64(const char *s, bool negative_ok, int64_t *out)
{
    const char *p = s;
    char *end = NULL;

    if (*p == '-' && negative_ok)
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    errno = 0;
    if (*s == '-') {
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
            return false;
        *out = v;
    } else {
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || v > (unsigned long long)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

static int enum_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcasecmp(names[i], s) == 0)
            return i;
    return -1;
}

static void enum_list(const char *const *names, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? "|" : "", names[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static bool is_list_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

/*
 * Parse one CIDR ("10.0.0.0/8", "fd00::/8", "192.0.2.1") into "out", with
 * the host bits cleared: the library's syntax (sess_cidr_parse), so
 * trusted-proxy blocks and the session binding read addresses alike.
 */
static bool parse_cidr(const char *s, size_t len, sessiond_cidr *out)
{
    unsigned bits;
    memset(out, 0, sizeof *out);
    if (sess_cidr_parse(s, len, &out->net, &bits) != SESS_OK)
        return false;
    out->prefix = (uint8_t)bits;
    return true;
}

/*
 * A full origin as browsers send it (RFC 6454 section 6.1).  The syntax
 * and the comparison are the library's (sess_origin_parse); the text kept
 * for --help is its canonical form (lower case, default port dropped).
 */
static bool parse_origin(const char *s, size_t len, sess_origin *o, char *out,
                         size_t cap)
{
    return sess_origin_parse(s, len, o) == SESS_OK &&
           sess_origin_format(o, out, cap) > 0;
}

/* ---- string checks ------------------------------------------------------ */

/* server.listen: the syntax is listen.c's (sessiond_listen_parse, which
 * the socket code uses too); its message names the key, which fail()
 * adds again, so the prefix is dropped here. */
static int check_listen(const char *v, char *msg, size_t msglen)
{
    static const char prefix[] = "server.listen: ";
    sessiond_listen_spec spec;
    char m[320];
    if (sessiond_listen_parse(v, &spec, m, sizeof m) == 0)
        return 0;
    const char *text = strncmp(m, prefix, sizeof prefix - 1) == 0
                           ? m + sizeof prefix - 1 : m;
    /* Cut to "msglen" on purpose (snprintf here trips -Wformat-truncation
     * in Release builds). */
    size_t n = strlen(text);
    if (msglen == 0)
        return -1;
    if (n >= msglen)
        n = msglen - 1;
    memcpy(msg, text, n);
    msg[n] = '\0';
    return -1;
}

static int check_migration_mode(const char *v, char *msg, size_t msglen)
{
    sess_migrate_kind k;
    unsigned pct;
    if (sess_migrate_mode_parse(v, &k, &pct, NULL) == SESS_OK)
        return 0;
    snprintf(msg, msglen, "expected off, shadow, dual, route:N (0-100), "
             "read-through or new");
    return -1;
}

/* store.url: the library's syntax (sess_store_url_check, which
 * sess_store_open applies too), so a scheme this build lacks is reported
 * at --check-config, not only at start. */
static int check_store_url(const char *v, char *msg, size_t msglen)
{
    sess_err err = {0};
    if (sess_store_url_check(v, &err) == SESS_OK)
        return 0;
    snprintf(msg, msglen, "%s", err.msg[0] ? err.msg : "not a store URL");
    return -1;
}

/* cookie.name, .path, .domain: the library's rules (sess_cookie_*_check,
 * which sess_cookie_profile_check applies too). */
static int lib_check(int (*fn)(const char *, sess_err *), const char *v,
                     char *msg, size_t msglen)
{
    sess_err err = {0};
    if (fn(v, &err) == SESS_OK)
        return 0;
    /* The library names the key; fail() adds it again. */
    const char *text = strstr(err.msg, ": ");
    snprintf(msg, msglen, "%s", text != NULL ? text + 2 : err.msg);
    return -1;
}

static int check_cookie_name(const char *v, char *msg, size_t msglen)
{
    return lib_check(sess_cookie_name_check, v, msg, msglen);
}

static int check_cookie_path(const char *v, char *msg, size_t msglen)
{
    return lib_check(sess_cookie_path_check, v, msg, msglen);
}

static int check_policy_version(const char *v, char *msg, size_t msglen)
{
    for (const char *p = v; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            snprintf(msg, msglen, "only letters, digits, '-' and '_'");
            return -1;
        }
    }
    return 0;
}

static int check_cookie_domain(const char *v, char *msg, size_t msglen)
{
    return lib_check(sess_cookie_domain_check, v, msg, msglen);
}

/* ---- applying one value ------------------------------------------------- */

/*
 * Parse "value" for key "k" and store it into "cfg".  For lists,
 * "append" false replaces the list, true adds to it.  Errors name the key.
 */
static int set_value(sessiond_config *cfg, const cfg_key *k,
                     const char *value, bool append, const origin *o,
                     char *errbuf, size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    char echo[ECHO_MAX + 8], names[128], msg[160];
    int64_t n;

    echo_value(value, echo, sizeof echo);
    switch (k->type) {
    case KT_BOOL: {
        bool b;
        if (!parse_bool(value, &b))
            return fail(errbuf, errlen, k, o,
                        "expected true or false (also yes/no, on/off, 1/0), "
                        "got '%s'", echo);
        *(bool *)field = b;
        return SESS_OK;
    }
    case KT_U8:
    case KT_U32:
    case KT_U64:
    case KT_I64:
        if (!parse_i64(value, k->min < 0, &n) || n < k->min || n > k->max)
            return fail(errbuf, errlen, k, o,
                        "expected %s (%lld..%lld), got '%s'", k->unit,
                        (long long)k->min, (long long)k->max, echo);
        if (k->type == KT_U8)
            *(uint8_t *)field = (uint8_t)n;
        else if (k->type == KT_U32)
            *(uint32_t *)field = (uint32_t)n;
        else if (k->type == KT_U64)
            *(uint64_t *)field = (uint64_t)n;
        else
            *(int64_t *)field = n;
        return SESS_OK;
    case KT_RATIO: {
        char *end = NULL;
        errno = 0;
        double d = value[0] != '\0' && !isspace((unsigned char)value[0])
                       ? strtod(value, &end) : -1.0;
        /* "nan" fails both comparisons; "inf" is out of range. */
        if (end == NULL || *end != '\0' || errno != 0 || !(d >= 0.0) ||
            !(d <= 1.0))
            return fail(errbuf, errlen, k, o,
                        "expected a ratio from 0 to 1 (e.g. 0.01), got '%s'",
                        echo);
        memcpy(field, &d, sizeof d);
        return SESS_OK;
    }
    case KT_ENUM: {
        int i = enum_index(k->names, value);
        if (i < 0) {
            enum_list(k->names, names, sizeof names);
            return fail(errbuf, errlen, k, o, "expected one of %s, got '%s'",
                        names, echo);
        }
        *(int *)field = i;
        return SESS_OK;
    }
    case KT_STR: {
        size_t len = strlen(value);
        if (len >= k->size)
            return fail(errbuf, errlen, k, o,
                        "longer than %zu bytes, got '%s'", k->size - 1, echo);
        if (len == 0 && (k->flags & K_NONEMPTY))
            return fail(errbuf, errlen, k, o, "must not be empty");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
                return fail(errbuf, errlen, k, o,
                            "control characters are not allowed, got '%s'",
                            echo);
        if (k->check != NULL && len > 0 &&
            k->check(value, msg, sizeof msg) != 0)
            return fail(errbuf, errlen, k, o, "%s, got '%s'", msg, echo);
        memcpy(field, value, len + 1);
        return SESS_OK;
    }
    case KT_WEBHOOKS: {
        size_t *count = &cfg->events.n_webhooks;
        if (!append)
            *count = 0;
        if (value[0] == '\0')
            return SESS_OK;     /* the default: none */
        if (*count >= SESSIOND_WEBHOOKS_MAX)
            return fail(errbuf, errlen, k, o, "more than %d URLs",
                        SESSIOND_WEBHOOKS_MAX);
        /* Not echoed: a webhook URL may carry a token in its path or
         * query (the receiver's own secret). */
        if (parse_webhook(cfg, *count, value, msg, sizeof msg) != 0)
            return fail(errbuf, errlen, k, o, "%s (URL number %zu)", msg,
                        *count + 1);
        (*count)++;
        return SESS_OK;
    }
    case KT_CIDRS:
    case KT_ORIGINS: {
        bool cidr = k->type == KT_CIDRS;
        size_t *count = cidr ? &cfg->n_trusted_proxies
                             : &cfg->n_allowed_origins;
        size_t max = cidr ? SESSIOND_TRUSTED_MAX : SESSIOND_ORIGINS_MAX;
        size_t saved = *count;
        const char *p = value;

        if (!append)
            *count = 0;
        while (*p != '\0') {
            size_t len;
            while (is_list_sep(*p))
                p++;
            if (*p == '\0')
                break;
            len = 0;
            while (p[len] != '\0' && !is_list_sep(p[len]))
                len++;
            char tok[ECHO_MAX + 1], item[ECHO_MAX + 8];
            size_t tl = len < ECHO_MAX ? len : ECHO_MAX;
            memcpy(tok, p, tl);
            tok[tl] = '\0';
            echo_value(tok, item, sizeof item);
            if (*count >= max) {
                *count = saved;
                return fail(errbuf, errlen, k, o,
                            "more than %zu entries", max);
            }
            if (cidr ? !parse_cidr(p, len, &cfg->trusted_proxies[*count])
                     : !parse_origin(p, len, &cfg->allowed_origin[*count],
                                     cfg->allowed_origins[*count],
                                     SESSIOND_ORIGIN_MAX)) {
                *count = saved;
                return fail(errbuf, errlen, k, o,
                            cidr ? "expected an IPv4 or IPv6 address or "
                                   "CIDR block (10.0.0.0/8, fd00::/8), "
                                   "got '%s'"
                                 : "expected an origin "
                                   "(https://host[:port], no path), "
                                   "got '%s'",
                            item);
            }
            (*count)++;
            p += len;
        }
        return SESS_OK;
    }
    }
    return fail(errbuf, errlen, k, o, "internal error: bad key type");
}

/* Text of the current value of "k" in "cfg" (for --help and docs). */
static void format_value(const sessiond_config *cfg, const cfg_key *k,
                         char *buf, size_t cap)
{
    const char *field = (const char *)cfg + k->offset;
    size_t n = 0;

    switch (k->type) {
    case KT_BOOL:
        snprintf(buf, cap, "%s", *(const bool *)field ? "true" : "false");
        return;
    case KT_U8:
        snprintf(buf, cap, "%u", (unsigned)*(const uint8_t *)field);
        return;
    case KT_U32:
        snprintf(buf, cap, "%lu", (unsigned long)*(const uint32_t *)field);
        return;
    case KT_U64:
        snprintf(buf, cap, "%llu",
                 (unsigned long long)*(const uint64_t *)field);
        return;
    case KT_I64:
        snprintf(buf, cap, "%lld", (long long)*(const int64_t *)field);
        return;
    case KT_RATIO: {
        double d;
        memcpy(&d, field, sizeof d);
        snprintf(buf, cap, "%g", d);
        return;
    }
    case KT_ENUM:
        snprintf(buf, cap, "%s", k->names[*(const int *)field]);
        return;
    case KT_STR:
        snprintf(buf, cap, "%s", field);
        return;
    case KT_CIDRS:
        buf[0] = '\0';
        for (size_t i = 0; i < cfg->n_trusted_proxies && n < cap; i++) {
            char a[INET6_ADDRSTRLEN];
            const sessiond_cidr *c = &cfg->trusted_proxies[i];
            inet_ntop(c->net.family == 4 ? AF_INET : AF_INET6, c->net.addr, a,
                      sizeof a);
            int w = snprintf(buf + n, cap - n, "%s%s/%u", i ? ", " : "", a,
                             (unsigned)c->prefix);
            if (w < 0)
                return;
            n += (size_t)w;
        }
        return;
    case KT_WEBHOOKS:
        buf[0] = '\0';
        for (size_t i = 0; i < cfg->events.n_webhooks && n < cap; i++) {
            int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                             cfg->events.webhook_url[i]);
            if (w < 0)
                return;
            n += (size_t)w;
        }
        return;
    case KT_ORIGINS:
        buf[0] = '\0';
        for (size_t i = 0; i < cfg->n_allowed_origins && n < cap; i++) {
            int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                             cfg->allowed_origins[i]);
            if (w < 0)
                return;
            n += (size_t)w;
        }
        return;
    }
    buf[0] = '\0';
}

static const cfg_key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool known_section(const char *s, size_t len)
{
    if (len > CATALOGUE_PREFIX_LEN &&
        memcmp(s, CATALOGUE_PREFIX, CATALOGUE_PREFIX_LEN) == 0)
        return true;
    for (size_t i = 0; sections[i] != NULL; i++)
        if (strlen(sections[i]) == len && memcmp(sections[i], s, len) == 0)
            return true;
    return false;
}

/* ---- a load in progress ------------------------------------------------- */

typedef struct loader {
    sessiond_config *cfg;
    uint64_t seen[KEY_WORDS];         /* keys set by the current source */
    uint64_t explicit_env[KEY_WORDS]; /* K_ENV_DEFAULT keys set by any source */
    bool env_given;         /* server.env set by any source */
    char *errbuf;
    size_t errlen;
    /* INI reading */
    const char *text;
    size_t len, pos;
    unsigned lineno;
    origin where;
    int failed;
} loader;

static void loader_init(loader *ld, sessiond_config *cfg, char *errbuf,
                        size_t errlen)
{
    memset(ld, 0, sizeof *ld);
    ld->cfg = cfg;
    ld->errbuf = errbuf;
    ld->errlen = errlen;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
}

/* Start a new source: keys may again be set once each. */
static void loader_source(loader *ld)
{
    memset(ld->seen, 0, sizeof ld->seen);
}

static int loader_apply(loader *ld, const cfg_key *k, const char *value,
                        const origin *o)
{
    size_t idx = (size_t)(k - keys);
    bool list = k->type == KT_CIDRS || k->type == KT_ORIGINS ||
                k->type == KT_WEBHOOKS;
    bool again = (ld->seen[idx / 64] >> (idx % 64)) & 1u;
    int rc;

    if (again && !list)
        return fail(ld->errbuf, ld->errlen, k, o,
                    "set more than once in the same source%s",
                    o != NULL && o->is_file
                        ? " (an indented line continues the key above it)"
                        : "");
    rc = set_value(ld->cfg, k, value, again, o, ld->errbuf, ld->errlen);
    if (rc != SESS_OK)
        return rc;
    ld->seen[idx / 64] |= UINT64_C(1) << (idx % 64);
    if (k->flags & K_ENV_DEFAULT)
        ld->explicit_env[idx / 64] |= UINT64_C(1) << (idx % 64);
    if (k->offset == offsetof(sessiond_config, env))
        ld->env_given = true;
    return SESS_OK;
}

/* Defaults that depend on the environment: cookie profile, log format. */
static void env_defaults(sessiond_config *cfg)
{
    sess_cookie_profile_default(cfg->env, &cfg->cookie);
    cfg->log_format = cfg->env == SESS_ENV_DEVELOPMENT ? SESSIOND_LOG_TEXT
                                                       : SESSIOND_LOG_JSON;
}

/*
 * After all sources: if server.env was given, rebuild the environment's
 * defaults and put the explicitly given cookie.* / log.format values back
 * over them, so "explicit beats default" holds whatever the order.
 */
static int loader_finish(loader *ld)
{
    sessiond_config *saved;

    if (!ld->env_given)
        return SESS_OK;
    saved = malloc(sizeof *saved);
    if (saved == NULL)
        return fail(ld->errbuf, ld->errlen, NULL, NULL, "out of memory");
    memcpy(saved, ld->cfg, sizeof *saved);
    env_defaults(ld->cfg);
    for (size_t i = 0; i < N_KEYS; i++)
        if ((ld->explicit_env[i / 64] >> (i % 64)) & 1u)
            memcpy((char *)ld->cfg + keys[i].offset,
                   (const char *)saved + keys[i].offset, keys[i].size);
    free(saved);
    return SESS_OK;
}

/* ---- INI ---------------------------------------------------------------- */

static int loader_fail_line(loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int loader_fail_line(loader *ld, const char *fmt, ...)
{
    char problem[256];
    va_list ap;

    if (ld->failed)
        return 0;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    ld->failed = 1;
    if (ld->errbuf != NULL && ld->errlen > 0)
        snprintf(ld->errbuf, ld->errlen, "%s (%s line %u)", problem,
                 ld->where.what, ld->lineno);
    return 0;
}

/*
 * inih line reader over (text, len): one line per call, '\n' kept.
 * Refuses lines that do not fit inih's buffer ("num" bytes with the NUL)
 * instead of letting inih split them, refuses NUL bytes, and refuses
 * unknown [section] headers, which inih would pass silently when empty.
 * Returning NULL ends the parse.
 */
static char *read_line(char *str, int num, void *stream)
{
    loader *ld = stream;
    size_t n = 0, cap;
    const char *line;

    if (ld->failed || ld->pos >= ld->len || num < 2)
        return NULL;
    cap = (size_t)num - 1;
    ld->lineno++;
    while (ld->pos < ld->len) {
        char c = ld->text[ld->pos];
        if (c == '\0') {
            loader_fail_line(ld, "NUL byte in configuration text");
            return NULL;
        }
        if (n == cap) {
            loader_fail_line(ld, "line longer than %zu bytes", cap - 1);
            return NULL;
        }
        str[n++] = c;
        ld->pos++;
        if (c == '\n')
            break;
    }
    str[n] = '\0';
    /* A section header must name a known section. */
    line = str;
    if (ld->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3;
    if (line[0] == '[') {
        const char *close = strchr(line, ']');
        if (close != NULL && !known_section(line + 1,
                                            (size_t)(close - line - 1))) {
            char echo[ECHO_MAX + 8];
            char name[ECHO_MAX + 1];
            size_t nl = (size_t)(close - line - 1);
            if (nl > ECHO_MAX)
                nl = ECHO_MAX;
            memcpy(name, line + 1, nl);
            name[nl] = '\0';
            echo_value(name, echo, sizeof echo);
            loader_fail_line(ld, "unknown section [%s]", echo);
            return NULL;
        }
    }
    return str;
}

static int on_key(void *user, const char *section, const char *name,
                       const char *value)
{
    loader *ld = user;
    const cfg_key *k;
    char es[ECHO_MAX + 8], en[ECHO_MAX + 8];

    if (ld->failed)
        return 0;
    if (strncmp(section, CATALOGUE_PREFIX, CATALOGUE_PREFIX_LEN) == 0) {
        sess_err err = {0};
        if (sess_cookie_catalogue_set(&ld->cfg->cookies,
                                      section + CATALOGUE_PREFIX_LEN, name,
                                      value, &err) != SESS_OK)
            return loader_fail_line(ld, "%s", err.msg);
        return 1;
    }
    k = find_key(section, name);
    if (k == NULL) {
        echo_value(section, es, sizeof es);
        echo_value(name, en, sizeof en);
        if (section[0] == '\0')
            return loader_fail_line(ld, "%s: key outside a [section]", en);
        return loader_fail_line(ld, "%s.%s: unknown key", es, en);
    }
    ld->where.line = ld->lineno;
    if (loader_apply(ld, k, value, &ld->where) != SESS_OK) {
        ld->failed = 1;
        return 0;
    }
    return 1;
}

/* Parse INI "text" as one source named "what". */
static int load_ini_text(loader *ld, const char *text, size_t len,
                         const char *what)
{
    int rc;

    loader_source(ld);
    ld->text = text;
    ld->len = len;
    ld->pos = 0;
    ld->lineno = 0;
    ld->failed = 0;
    ld->where.what = what;
    ld->where.is_file = true;
    rc = ini_parse_stream(read_line, ld, on_key, ld);
    if (ld->failed)
        return SESS_ECONFIG;
    if (rc > 0) {
        if (ld->errbuf != NULL && ld->errlen > 0)
            snprintf(ld->errbuf, ld->errlen,
                     "syntax error: expected [section] or key = value "
                     "(%s line %d)", what, rc);
        return SESS_ECONFIG;
    }
    if (rc < 0)
        return fail(ld->errbuf, ld->errlen, NULL, NULL,
                    "%s: out of memory while parsing", what);
    return SESS_OK;
}

static int load_ini_file(loader *ld, const char *path)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    int rc = SESS_ECONFIG;

    f = fopen(path, "rb");
    if (f == NULL) {
        fail(ld->errbuf, ld->errlen, NULL, NULL,
             "config file %s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(ld->errbuf, ld->errlen, NULL, NULL,
             "config file %s: not a regular file", path);
        goto cleanup;
    }
    if (st.st_size > CONFIG_FILE_MAX) {
        fail(ld->errbuf, ld->errlen, NULL, NULL,
             "config file %s: larger than %d bytes", path, CONFIG_FILE_MAX);
        goto cleanup;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        fail(ld->errbuf, ld->errlen, NULL, NULL, "out of memory");
        goto cleanup;
    }
    len = fread(text, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        fail(ld->errbuf, ld->errlen, NULL, NULL,
             "config file %s: read error", path);
        goto cleanup;
    }
    text[len] = '\0';
    rc = load_ini_text(ld, text, len, path);
cleanup:
    free(text);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* ---- environment -------------------------------------------------------- */

/* Does "name" ("len" bytes) equal SESSIOND_<SECTION>_<KEY> for "k"? */
static bool env_name_matches(const cfg_key *k, const char *name, size_t len)
{
    char want[96];
    int w = snprintf(want, sizeof want, "SESSIOND_%s_%s", k->section,
                     k->name);

    if (w < 0 || (size_t)w != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (toupper((unsigned char)want[i]) != name[i])
            return false;
    return true;
}

static int load_env(loader *ld, char **envp)
{
    loader_source(ld);
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *var = envp[i], *eq = strchr(var, '=');
        char name[128];
        const cfg_key *k = NULL;
        size_t len;
        origin o = {name, 0, false};

        if (eq == NULL || strncmp(var, "SESSIOND_", 9) != 0)
            continue;
        len = (size_t)(eq - var);
        if (len >= sizeof name)
            continue;
        memcpy(name, var, len);
        name[len] = '\0';
        if (strcmp(name, "SESSIOND_CONFIG") == 0)
            continue;
        for (size_t j = 0; j < N_KEYS && k == NULL; j++)
            if ((keys[j].alias && strcmp(keys[j].alias, name) == 0) ||
                env_name_matches(&keys[j], name, len))
                k = &keys[j];
        if (k == NULL) {
            /* A misspelt key of a known section is an error; other
             * SESSIOND_* names may belong to someone else. */
            for (size_t s = 0; sections[s] != NULL; s++) {
                size_t sl = strlen(sections[s]);
                bool match = len > 9 + sl && name[9 + sl] == '_';
                for (size_t c = 0; match && c < sl; c++)
                    match = name[9 + c] == toupper(
                                (unsigned char)sections[s][c]);
                if (match)
                    return fail(ld->errbuf, ld->errlen, NULL, NULL,
                                "%s: no such configuration key in [%s]",
                                name, sections[s]);
            }
            continue;
        }
        if (loader_apply(ld, k, eq + 1, &o) != SESS_OK)
            return SESS_ECONFIG;
    }
    return SESS_OK;
}

/* ---- command line ------------------------------------------------------- */

typedef enum flag_action {
    FA_KEY,       /* sets the key named in "key" */
    FA_SET,       /* --set SECTION.KEY=VALUE */
    FA_CONFIG,
    FA_CHECK,
    FA_VERSION,
    FA_HELP
} flag_action;

typedef struct cli_flag {
    const char *name;
    const char *arg;        /* metavariable, NULL when the flag takes none */
    flag_action action;
    const char *key;        /* FA_KEY: "section.name" */
    const char *help;
} cli_flag;

static const cli_flag flags[] = {
    {"--config", "FILE", FA_CONFIG, NULL,
     "read this INI file (also SESSIOND_CONFIG)"},
    {"--listen", "HOST:PORT|unix:PATH", FA_KEY, "server.listen",
     "address to serve on"},
    {"--store", "URL", FA_KEY, "store.url", "session store URL"},
    {"--env", "ENV", FA_KEY, "server.env",
     "development, staging or production"},
    {"--keys", "DIR", FA_KEY, "server.keys_dir", "key directory"},
    {"--api-keys", "FILE", FA_KEY, "server.api_keys_file",
     "file of management API keys"},
    {"--set", "SECTION.KEY=VALUE", FA_SET, NULL,
     "set any key below (repeatable)"},
    {"--check-config", NULL, FA_CHECK, NULL,
     "validate the configuration and exit 0 (valid) or 2"},
    {"--version", NULL, FA_VERSION, NULL, "print the version and exit"},
    {"--help", NULL, FA_HELP, NULL, "print this help and exit"},
};

#define N_FLAGS (sizeof flags / sizeof flags[0])

static const cfg_key *find_key_dotted(const char *dotted, size_t len)
{
    const char *dot = memchr(dotted, '.', len);
    char section[32], name[64];

    if (dot == NULL || (size_t)(dot - dotted) >= sizeof section ||
        len - (size_t)(dot - dotted) - 1 >= sizeof name)
        return NULL;
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = '\0';
    memcpy(name, dot + 1, len - (size_t)(dot - dotted) - 1);
    name[len - (size_t)(dot - dotted) - 1] = '\0';
    return find_key(section, name);
}

static void print_usage(FILE *out)
{
    fprintf(out, "usage: sessiond [options]\n\noptions:\n");
    for (size_t i = 0; i < N_FLAGS; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", flags[i].name,
                 flags[i].arg ? " " : "", flags[i].arg ? flags[i].arg : "");
        fprintf(out, "  %-34s %s\n", left, flags[i].help);
    }
    fprintf(out,
            "\nPrecedence: flags and --set > environment > config file > "
            "defaults.\nExit codes: 0 normal stop, 1 runtime failure, 2 "
            "bad usage or configuration.\n\n");
}

/*
 * Walk argv.  Pass 1 ("apply" false) checks the syntax, handles --help and
 * --version, and notes --config and --check-config; pass 2 applies the
 * key-setting flags as the highest-precedence source.
 */
static sessiond_config_outcome walk_args(loader *ld, int argc, char **argv,
                                         bool apply, const char **config)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        const cli_flag *f = NULL;
        size_t nlen;

        if (strcmp(arg, "-h") == 0)
            arg = "--help";
        nlen = strcspn(arg, "=");
        for (size_t j = 0; j < N_FLAGS && f == NULL; j++)
            if (strlen(flags[j].name) == nlen &&
                strncmp(flags[j].name, arg, nlen) == 0)
                f = &flags[j];
        if (f == NULL) {
            char echo[ECHO_MAX + 8];
            echo_value(arg, echo, sizeof echo);
            fail(ld->errbuf, ld->errlen, NULL, NULL,
                 "unknown option '%s' (see --help)", echo);
            return SESSIOND_CONFIG_ERROR;
        }
        if (f->arg != NULL) {
            if (arg[nlen] == '=')
                val = arg + nlen + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fail(ld->errbuf, ld->errlen, NULL, NULL,
                     "%s needs an argument: %s", f->name, f->arg);
                return SESSIOND_CONFIG_ERROR;
            }
        } else if (arg[nlen] == '=') {
            fail(ld->errbuf, ld->errlen, NULL, NULL,
                 "%s takes no argument", f->name);
            return SESSIOND_CONFIG_ERROR;
        }
        switch (f->action) {
        case FA_HELP:
            if (!apply) {
                print_usage(stdout);
                sessiond_config_print_keys(stdout);
                return SESSIOND_CONFIG_EXIT_OK;
            }
            break;
        case FA_VERSION:
            if (!apply) {
                printf("sessiond %s\n", sess_version());
                return SESSIOND_CONFIG_EXIT_OK;
            }
            break;
        case FA_CHECK:
            ld->cfg->check_config = true;
            break;
        case FA_CONFIG:
            if (!apply)
                *config = val;
            break;
        case FA_KEY:
        case FA_SET: {
            const cfg_key *k;
            const char *v = val;
            origin o = {f->name, 0, false};
            if (f->action == FA_KEY) {
                k = find_key_dotted(f->key, strlen(f->key));
            } else {
                const char *eq = strchr(val, '=');
                char echo[ECHO_MAX + 8];
                k = eq ? find_key_dotted(val, (size_t)(eq - val)) : NULL;
                if (k == NULL) {
                    echo_value(val, echo, sizeof echo);
                    fail(ld->errbuf, ld->errlen, NULL, NULL,
                         eq ? "--set: unknown key in '%s'"
                            : "--set: expected SECTION.KEY=VALUE, got '%s'",
                         echo);
                    return SESSIOND_CONFIG_ERROR;
                }
                v = eq + 1;
            }
            if (apply && loader_apply(ld, k, v, &o) != SESS_OK)
                return SESSIOND_CONFIG_ERROR;
            break;
        }
        }
    }
    return SESSIOND_CONFIG_RUN;
}

/* ---- public ------------------------------------------------------------- */

void sessiond_config_defaults(sessiond_config *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof *cfg);
    sess_config_defaults(&cfg->session);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].def == NULL)
            continue;
        /* Defaults are table text parsed like any value; a default that
         * does not parse is a bug in this file, caught by the tests. */
        if (set_value(cfg, &keys[i], keys[i].def, false, NULL, err,
                      sizeof err) != SESS_OK) {
            fprintf(stderr, "sessiond: bad built-in default: %s\n", err);
            abort();
        }
    }
    env_defaults(cfg);
}

int sessiond_config_set(sessiond_config *cfg, const char *section_key,
                        const char *value, char *errbuf, size_t errlen)
{
    loader ld;
    const cfg_key *k = find_key_dotted(section_key, strlen(section_key));
    char echo[ECHO_MAX + 8];

    loader_init(&ld, cfg, errbuf, errlen);
    if (k == NULL) {
        echo_value(section_key, echo, sizeof echo);
        return fail(errbuf, errlen, NULL, NULL, "%s: unknown key", echo);
    }
    if (loader_apply(&ld, k, value, NULL) != SESS_OK)
        return SESS_ECONFIG;
    return loader_finish(&ld);
}

int sessiond_config_parse_ini(sessiond_config *cfg, const char *text,
                              size_t len, char *errbuf, size_t errlen)
{
    loader ld;

    loader_init(&ld, cfg, errbuf, errlen);
    if (load_ini_text(&ld, text, len, "config text") != SESS_OK)
        return SESS_ECONFIG;
    return loader_finish(&ld);
}

/* tokens.claims: comma-separated data member names, none of them a
 * claim sessiond sets itself (a session's data must not be able to
 * forge "sub" or "exp" in a token). */
static int check_claims(const char *v, char *msg, size_t msglen)
{
    static const char *const registered[] = {
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid",
        "auth_time", "acr", "client_id", "scope", "cnf", NULL};
    const char *p = v;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        size_t a = 0, b = n;
        while (a < b && (p[a] == ' ' || p[a] == '\t'))
            a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
            b--;
        if (a == b) {
            snprintf(msg, msglen, "an empty member name");
            return -1;
        }
        for (size_t i = 0; registered[i] != NULL; i++) {
            if (strlen(registered[i]) == b - a &&
                memcmp(registered[i], p + a, b - a) == 0) {
                snprintf(msg, msglen, "\"%s\" is a claim sessiond sets "
                         "itself", registered[i]);
                return -1;
            }
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

int sessiond_config_validate(sessiond_config *cfg, char *errbuf,
                             size_t errlen)
{
    const sess_config *s = &cfg->session;
    sess_err err = {0};
    char msg[160];

    /* Timeout ordering (absolute >= idle, for both kinds, and
     * rotation_grace < rotate_interval) is the library's rule, checked by
     * sess_config_check() below: one copy of it. */
    if (check_listen(cfg->listen, msg, sizeof msg) != 0)
        return fail(errbuf, errlen, find_key("server", "listen"), NULL,
                    "%s", msg);
    if (cfg->security_events[0] == '\0')
        return fail(errbuf, errlen, find_key("log", "security_events"),
                    NULL, "must be stderr or a file path");
    {
        char bad[32];
        const sessiond_events_config *ev = &cfg->events;
        if (!sessiond_event_types_parse(ev->types, strlen(ev->types),
                                        &cfg->events.types_mask, bad))
            return fail(errbuf, errlen, find_key("events", "types"), NULL,
                        "unknown event type '%s'", bad);
        if (ev->n_webhooks > 0 && ev->webhook_secret_file[0] == '\0')
            return fail(errbuf, errlen,
                        find_key("events", "webhook_secret_file"), NULL,
                        "required with events.webhook_url (deliveries are "
                        "signed)");
        /* User ids and handles in the clear over the network: only over
         * TLS outside development (eavesdropping, tampering). */
        for (size_t i = 0; i < ev->n_webhooks; i++)
            if (cfg->env != SESS_ENV_DEVELOPMENT &&
                strncmp(ev->webhook_url[i], "https://", 8) != 0)
                return fail(errbuf, errlen, find_key("events", "webhook_url"),
                            NULL, "URL number %zu must be https:// outside "
                            "development", i + 1);
        if (ev->retry_max_ms < ev->retry_min_ms)
            return fail(errbuf, errlen, find_key("events", "retry_max_ms"),
                        NULL, "must be at least events.retry_min_ms");
    }
    if (cfg->tracing.batch_size > cfg->tracing.queue_size)
        return fail(errbuf, errlen, find_key("tracing", "batch_size"), NULL,
                    "%lu is more than tracing.queue_size (%lu)",
                    (unsigned long)cfg->tracing.batch_size,
                    (unsigned long)cfg->tracing.queue_size);
    if (cfg->store_url[0] == '\0' || cfg->keys_dir[0] == '\0')
        return fail(errbuf, errlen, NULL, NULL,
                    "store.url and server.keys_dir must not be empty");
    if (sess_config_check(s, &err) != SESS_OK)
        return fail(errbuf, errlen, NULL, NULL, "%s",
                    err.msg[0] ? err.msg : sess_strerror(err.code));
    memset(&err, 0, sizeof err);
    if (sess_cookie_profile_check(&cfg->cookie, cfg->env, &err) != SESS_OK)
        return fail(errbuf, errlen, NULL, NULL, "%s (server.env = %s)",
                    err.msg[0] ? err.msg : sess_strerror(err.code),
                    env_names[cfg->env]);
    memset(&err, 0, sizeof err);
    if (sess_cookie_catalogue_check(&cfg->cookies, cfg->env, &cfg->cookie,
                                    &err) != SESS_OK)
        return fail(errbuf, errlen, NULL, NULL, "%s",
                    err.msg[0] ? err.msg : sess_strerror(err.code));
    if (cfg->tokens.accept_bearer && cfg->tokens.fa_audience[0] == '\0')
        return fail(errbuf, errlen, find_key("forward_auth", "accept_bearer"),
                    NULL, "needs forward_auth.token_audience (the aud a "
                    "bearer token must carry)");
    if (cfg->store_failure == SESSIOND_FAILURE_TOKENS_ONLY &&
        !cfg->tokens.accept_bearer)
        return fail(errbuf, errlen, find_key("store", "failure"), NULL,
                    "tokens_only needs forward_auth.accept_bearer = true");
    if (check_claims(cfg->tokens.claims, msg, sizeof msg) != 0)
        return fail(errbuf, errlen, find_key("tokens", "claims"), NULL, "%s",
                    msg);
    return SESS_OK;
}

sessiond_config_outcome sessiond_config_load(sessiond_config *cfg, int argc,
                                             char **argv, char **envp,
                                             char *errbuf, size_t errlen)
{
    loader ld;
    const char *config = NULL;
    sessiond_config_outcome out;

    sessiond_config_defaults(cfg);
    loader_init(&ld, cfg, errbuf, errlen);

    out = walk_args(&ld, argc, argv, false, &config);
    if (out != SESSIOND_CONFIG_RUN)
        return out;
    if (config == NULL && envp != NULL) {
        for (size_t i = 0; envp[i] != NULL; i++)
            if (strncmp(envp[i], "SESSIOND_CONFIG=", 16) == 0)
                config = envp[i] + 16;
    }
    if (config != NULL && config[0] != '\0') {
        size_t len = strlen(config);
        if (len >= sizeof cfg->config_file) {
            fail(errbuf, errlen, NULL, NULL,
                 "--config: path longer than %zu bytes",
                 sizeof cfg->config_file - 1);
            return SESSIOND_CONFIG_ERROR;
        }
        memcpy(cfg->config_file, config, len + 1);
        if (load_ini_file(&ld, cfg->config_file) != SESS_OK)
            return SESSIOND_CONFIG_ERROR;
    }
    if (load_env(&ld, envp) != SESS_OK)
        return SESSIOND_CONFIG_ERROR;
    loader_source(&ld);
    if (walk_args(&ld, argc, argv, true, &config) != SESSIOND_CONFIG_RUN)
        return SESSIOND_CONFIG_ERROR;
    if (loader_finish(&ld) != SESS_OK)
        return SESSIOND_CONFIG_ERROR;
    if (sessiond_config_validate(cfg, errbuf, errlen) != SESS_OK)
        return SESSIOND_CONFIG_ERROR;
    return cfg->check_config ? SESSIOND_CONFIG_CHECK_OK
                             : SESSIOND_CONFIG_RUN;
}

bool sessiond_config_is_trusted_proxy(const sessiond_config *cfg,
                                      const char *ip)
{
    sess_ip a;
    if (cfg == NULL || ip == NULL || cfg->n_trusted_proxies == 0 ||
        sess_ip_parse(ip, &a) != SESS_OK)
        return false;
    /* The library's prefix rule; a dual-stack socket's ::ffff:a.b.c.d
     * peer was made IPv4 by sess_ip_parse. */
    for (size_t i = 0; i < cfg->n_trusted_proxies; i++)
        if (sess_ip_prefix_match(&a, &cfg->trusted_proxies[i].net,
                                 cfg->trusted_proxies[i].prefix))
            return true;
    return false;
}

void sessiond_config_print_keys(FILE *out)
{
    sessiond_config *per_env = calloc(3, sizeof *per_env);
    char val[512], env[96];

    fprintf(out, "configuration keys ([section] key = value in the file, "
                 "SESSIOND_SECTION_KEY in the environment, --set "
                 "section.key=value):\n\n");
    if (per_env != NULL) {
        for (int e = 0; e < 3; e++) {
            per_env[e].env = (sess_environment)e;
            env_defaults(&per_env[e]);
        }
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &keys[i];
        size_t n;

        if (k->def != NULL) {
            fprintf(out, "  %s.%s = %s\n", k->section, k->name,
                    k->def[0] ? k->def : "(none)");
        } else {
            fprintf(out, "  %s.%s =", k->section, k->name);
            for (int e = 0; e < 3 && per_env != NULL; e++) {
                format_value(&per_env[e], k, val, sizeof val);
                fprintf(out, " %s: '%s'%s", env_names[e], val,
                        e < 2 ? "," : "");
            }
            fputc('\n', out);
        }
        n = (size_t)snprintf(env, sizeof env, "SESSIOND_%s_%s", k->section,
                             k->name);
        for (size_t c = 0; c < n && c < sizeof env; c++)
            env[c] = (char)toupper((unsigned char)env[c]);
        fprintf(out, "      env %s", env);
        if (k->alias != NULL)
            fprintf(out, " or %s", k->alias);
        if (k->flag != NULL)
            fprintf(out, ", flag %s", k->flag);
        fputc('\n', out);
        if (k->type == KT_ENUM) {
            enum_list(k->names, val, sizeof val);
            fprintf(out, "      one of %s\n", val);
        } else if (k->unit != NULL) {
            fprintf(out, "      %s, %lld..%lld\n", k->unit,
                    (long long)k->min, (long long)k->max);
        } else if (k->type == KT_BOOL) {
            fprintf(out, "      true or false\n");
        }
        fprintf(out, "      %s\n", k->help);
    }
    free(per_env);
}
