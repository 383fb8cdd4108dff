/*
 * config.h - sessiond's configuration: one table of keys (section, name,
 * type, default, setter, help) from which the INI reader, the environment
 * reader, --set, validation, --help and docs/configuration.md all come.
 *
 * Precedence (docs/api.md): --set and other flags > environment > config file >
 * defaults.  Unknown keys and bad values are errors that name the key.
 */
#ifndef SESSIOND_CONFIG_H
#define SESSIOND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>

#include "sess.h"

#define SESSIOND_PATH_MAX 1024
#define SESSIOND_TRUSTED_MAX 32
#define SESSIOND_ORIGINS_MAX 16
#define SESSIOND_ORIGIN_MAX 256

/* A CIDR block, e.g. 10.0.0.0/8 or fd00::/8, stored masked. */
typedef struct sessiond_cidr {
    sess_ip net;           /* the library's form (family 4 or 6) */
    uint8_t prefix;        /* bits */
} sessiond_cidr;

typedef enum { SESSIOND_LOG_ERROR, SESSIOND_LOG_WARN, SESSIOND_LOG_INFO,
               SESSIOND_LOG_DEBUG } sessiond_log_level;
typedef enum { SESSIOND_LOG_TEXT, SESSIOND_LOG_JSON } sessiond_log_format;

typedef enum { SESSIOND_TOKEN_EDDSA, SESSIOND_TOKEN_ED25519,
               SESSIOND_TOKEN_ES256, SESSIOND_TOKEN_RS256 } sessiond_token_alg;
typedef enum { SESSIOND_FAILURE_CLOSED, SESSIOND_FAILURE_TOKENS_ONLY }
    sessiond_store_failure;

#define SESSIOND_CLAIMS_MAX 512

/* [tokens] and the token keys of [forward_auth] (docs/tokens.md). */
typedef struct sessiond_tokens_config {
    char issuer[SESSIOND_PATH_MAX];     /* "" = http://<listen> */
    char client_id[128];                /* the client_id claim: "app" */
    char keys_dir[SESSIOND_PATH_MAX];   /* "./var/sigkeys" */
    sessiond_token_alg alg;             /* EdDSA */
    uint32_t access_ttl;                /* 300 */
    uint32_t refresh_ttl;               /* 86400 */
    uint32_t refresh_grace;             /* 30 */
    char claims[SESSIOND_CLAIMS_MAX];   /* "roles,permissions" */
    uint32_t leeway;                    /* 30 */
    uint32_t jwks_max_age;              /* 300 */
    bool revoke_session_with_refresh;   /* false */
    char fa_audience[SESSIOND_ORIGIN_MAX]; /* forward_auth.token_audience */
    char fa_header[64];                 /* forward_auth.token_header */
    uint32_t fa_cache_size;             /* forward_auth.token_cache_size */
    bool accept_bearer;                 /* forward_auth.accept_bearer */
} sessiond_tokens_config;

/* [events]: the lifecycle event sinks besides log.security_events. */
#define SESSIOND_WEBHOOKS_MAX 8
#define SESSIOND_WEBHOOK_URL_MAX 1024
typedef struct sessiond_events_config {
    /* webhook_url, repeatable: "URL [TYPE,TYPE...]" (the URL alone here,
     * its own filter in webhook_types; SESSIOND_EV_ALL without one). */
    char webhook_url[SESSIOND_WEBHOOKS_MAX][SESSIOND_WEBHOOK_URL_MAX];
    uint32_t webhook_types[SESSIOND_WEBHOOKS_MAX];
    size_t n_webhooks;
    char webhook_secret_file[SESSIOND_PATH_MAX]; /* "KEYID whsec_..." lines */
    char types[512];                    /* "" = every type */
    uint32_t types_mask;                /* the same, parsed by validate */
    char outbox[SESSIOND_PATH_MAX];     /* "./var/events-outbox" */
    uint32_t outbox_max_events;         /* 100000 */
    uint32_t webhook_timeout_ms;        /* 5000 */
    uint32_t retry_min_ms;              /* 1000 */
    uint32_t retry_max_ms;              /* 300000 */
} sessiond_events_config;
/* [tracing] (docs/observability.md, "Traces"): OTLP/HTTP JSON export. */
typedef struct sessiond_tracing_config {
    char otlp_endpoint[SESSIOND_PATH_MAX]; /* "" = tracing off */
    double sample_ratio;                /* 1 */
    char service_name[128];             /* "sessiond" */
    char service_instance_id[128];      /* "" = a random UUID at start */
    uint32_t batch_size;                /* 512 spans per POST */
    uint32_t queue_size;                /* 2048 spans waiting at most */
    uint32_t flush_interval_ms;         /* 5000 */
    uint32_t timeout_ms;                /* 5000: one POST, and the flush
                                           at stop */
} sessiond_tracing_config;

typedef struct sessiond_config {
    /* [server] */
    char listen[SESSIOND_PATH_MAX];     /* "HOST:PORT", "[v6]:PORT" or "unix:PATH" */
    uint64_t max_body_bytes;            /* 65536 */
    uint32_t threads;                   /* 0 = number of cores */
    uint32_t connection_timeout;        /* idle keep-alive seconds, 60 */
    uint32_t max_connections;           /* 4096 */
    uint32_t max_connections_per_ip;    /* 256, 0 = no limit */
    bool limit_loopback;                /* false: loopback is exempt */
    bool limit_trusted_proxies;         /* false: trusted proxies exempt */
    uint32_t header_timeout;            /* request head deadline, 10 s */
    uint32_t body_timeout;              /* request body deadline, 30 s */
    sess_environment env;               /* development */
    char keys_dir[SESSIOND_PATH_MAX];   /* "./var/keys" */
    char api_keys_file[SESSIOND_PATH_MAX]; /* "" = none */

    /* [store] */
    char store_url[SESSIOND_PATH_MAX];  /* "lmdb:./var/sessions" */
    /* [migration] (docs/migration.md): both set = serve from the
     * migration store over the two, in "mode". */
    char migration_from[SESSIOND_PATH_MAX];
    char migration_to[SESSIOND_PATH_MAX];
    char migration_mode[32];            /* "off" */
    sess_durability durability;         /* process */
    uint64_t map_size;                  /* LMDB map size, bytes (4 GiB) */
    uint32_t purge_interval;            /* seconds between purges, 60 */
    /* networked stores (Redis) */
    uint32_t store_timeout_ms;          /* read/write timeout, 20 */
    uint32_t store_connect_timeout_ms;  /* 100 */
    uint32_t store_pool_size;           /* 0 = 2 x server.threads */
    uint32_t store_replica_timeout_ms;  /* WAIT under replicated, 100 */
    char store_password_file[SESSIOND_PATH_MAX]; /* "" = no AUTH */
    bool store_l1_cache;                /* true */
    uint32_t store_l1_max_entries;      /* 100000 */
    sess_store_unavailable store_on_unavailable; /* fail_closed */
    sess_store_damage store_on_damage;            /* refuse */
    bool store_group_access;                      /* false */

    /* [session] and [binding] and [csrf] enabled: the library's policy */
    sess_config session;

    /* [binding] trusted_proxies */
    sessiond_cidr trusted_proxies[SESSIOND_TRUSTED_MAX];
    size_t n_trusted_proxies;

    /* [cookie]: defaults depend on env, so they are applied after env is
     * known; the "*_set" flags say which keys were given explicitly. */
    sess_cookie_profile cookie;

    /* [csrf] allowed_origins: full origins ("https://shop.example") that
     * may send unsafe requests besides the request's own host. */
    char allowed_origins[SESSIOND_ORIGINS_MAX][SESSIOND_ORIGIN_MAX];
    sess_origin allowed_origin[SESSIOND_ORIGINS_MAX];  /* the same, parsed */
    size_t n_allowed_origins;

    /* [cookie_policy] and the [cookies.NAME] catalogue (docs/cookies.md);
     * checked and versioned by sessiond_config_validate(). */
    sess_cookie_catalogue cookies;
    sessiond_store_failure store_failure;         /* closed */
    sessiond_tokens_config tokens;

    /* [events]: lifecycle events to webhooks (docs/observability.md) */
    sessiond_events_config events;

    /* [log] */
    sessiond_log_level log_level;       /* info */
    sessiond_log_format log_format;     /* text in development, else json */
    char security_events[SESSIOND_PATH_MAX]; /* "stderr" or a file path */
    char access_log[SESSIOND_PATH_MAX]; /* log.access: "off" or a path */

    /* [tracing] */
    sessiond_tracing_config tracing;

    /* Command line only. */
    char config_file[SESSIOND_PATH_MAX];
    bool check_config;                  /* --check-config */
} sessiond_config;

/* What sessiond_config_load() asks main() to do. */
typedef enum {
    SESSIOND_CONFIG_RUN = 0,            /* serve */
    SESSIOND_CONFIG_EXIT_OK,            /* --help / --version printed */
    SESSIOND_CONFIG_CHECK_OK,           /* --check-config passed */
    SESSIOND_CONFIG_ERROR               /* message in errbuf: exit 2 */
} sessiond_config_outcome;

/*
 * Build the configuration from defaults, the file named by --config (or
 * SESSIOND_CONFIG), the environment ("envp" style array, NULL-terminated;
 * SESSIOND_LISTEN, SESSIOND_STORE, SESSIOND_ENV, SESSIOND_KEYS,
 * SESSIOND_API_KEYS and SESSIOND_<SECTION>_<KEY> for every table key) and
 * the command line, then validate it as a whole (cookie profile for the
 * environment, timeouts, listen address).  --help and --version print to
 * stdout.  On SESSIOND_CONFIG_ERROR "errbuf" holds one line naming the key
 * (e.g. "session.idle_timeout: expected a whole number of seconds, got
 * 'abc'") - never a secret value.
 */
sessiond_config_outcome sessiond_config_load(sessiond_config *cfg, int argc,
                                             char **argv, char **envp,
                                             char *errbuf, size_t errlen);

/* Set one key from text ("session.idle_timeout", "600"), as --set does. */
int sessiond_config_set(sessiond_config *cfg, const char *section_key,
                        const char *value, char *errbuf, size_t errlen);

/* Parse an INI text (for the fuzz target and tests); same rules as the
 * file: unknown keys and bad values fail with the line number. */
int sessiond_config_parse_ini(sessiond_config *cfg, const char *text,
                              size_t len, char *errbuf, size_t errlen);

/* Defaults only (env = development, cookie profile included). */
void sessiond_config_defaults(sessiond_config *cfg);

/* Whole-configuration checks run after all sources are applied. */
int sessiond_config_validate(sessiond_config *cfg, char *errbuf,
                             size_t errlen);

/* True when "ip" (textual) is inside one of the trusted proxy blocks. */
bool sessiond_config_is_trusted_proxy(const sessiond_config *cfg,
                                      const char *ip);

/* Print the key table (name, default, help) as text, for --help. */
void sessiond_config_print_keys(FILE *out);

#endif /* SESSIOND_CONFIG_H */
