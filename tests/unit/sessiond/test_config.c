/*
 * test_config.c - unit tests of src/sessiond/config.c: defaults, every
 * value type with good and bad input (the message must name the key),
 * INI syntax and line numbers, precedence (file < environment < flags),
 * environment-dependent cookie defaults and profile errors, whole-config
 * checks, trusted-proxy matching for IPv4 and IPv6, and that
 * docs/configuration.md and docs/sessiond.example.ini match the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "listen.h"

#ifndef SESSIOND_SOURCE_DIR
#define SESSIOND_SOURCE_DIR "."
#endif

static sessiond_config *new_cfg(void)
{
    sessiond_config *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    sessiond_config_defaults(cfg);
    return cfg;
}

/* Assert that "msg" starts with "key" followed by ':' and contains "part". */
static void assert_msg(const char *msg, const char *key, const char *part)
{
    size_t kl = strlen(key);
    if (strncmp(msg, key, kl) != 0 || msg[kl] != ':') {
        print_error("message '%s' does not start with '%s:'\n", msg, key);
        fail();
    }
    if (part != NULL && strstr(msg, part) == NULL) {
        print_error("message '%s' lacks '%s'\n", msg, part);
        fail();
    }
    assert_null(strchr(msg, '\n'));
}

static void test_defaults(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[256];

    assert_string_equal(cfg->listen, "127.0.0.1:7700");
    assert_int_equal(cfg->max_body_bytes, 65536);
    assert_int_equal(cfg->threads, 0);
    assert_int_equal(cfg->connection_timeout, 60);
    assert_int_equal(cfg->max_connections, 4096);
    assert_int_equal(cfg->env, SESS_ENV_DEVELOPMENT);
    assert_string_equal(cfg->keys_dir, "./var/keys");
    assert_string_equal(cfg->api_keys_file, "");
    assert_string_equal(cfg->store_url, "lmdb:./var/sessions");
    assert_int_equal(cfg->durability, SESS_DURABILITY_PROCESS);
    assert_true(cfg->map_size == UINT64_C(4294967296));
    assert_int_equal(cfg->purge_interval, 60);
    assert_int_equal(cfg->session.idle_timeout, 1800);
    assert_int_equal(cfg->session.absolute_timeout, 86400);
    assert_int_equal(cfg->session.rotate_interval, 300);
    assert_int_equal(cfg->session.rotation_grace, 30);
    assert_int_equal(cfg->session.max_per_user, 3);
    assert_int_equal(cfg->session.limit_policy, SESS_LIMIT_EVICT_OLDEST);
    assert_int_equal(cfg->session.remember_idle_timeout, 604800);
    assert_int_equal(cfg->session.remember_absolute_timeout, 2592000);
    assert_int_equal(cfg->session.ip_prefix_v4, 24);
    assert_int_equal(cfg->session.ip_prefix_v6, 64);
    assert_true(cfg->session.bind_user_agent);
    assert_int_equal(cfg->session.bind_action, SESS_BIND_REJECT);
    assert_true(cfg->session.csrf_enabled);
    assert_int_equal(cfg->n_trusted_proxies, 0);
    assert_int_equal(cfg->n_allowed_origins, 0);
    assert_int_equal(cfg->log_level, SESSIOND_LOG_INFO);
    assert_int_equal(cfg->log_format, SESSIOND_LOG_TEXT);
    assert_string_equal(cfg->security_events, "stderr");

    sess_cookie_profile dev;
    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &dev);
    assert_memory_equal(&cfg->cookie, &dev, sizeof dev);
    assert_int_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    free(cfg);
}

typedef struct value_case {
    const char *key;
    const char *value;
    bool ok;
    const char *part;   /* expected in the message when !ok */
} value_case;

static const value_case value_cases[] = {
    /* numbers */
    {"session.idle_timeout", "600", true, NULL},
    {"session.idle_timeout", "abc", false, "expected whole seconds (1..31536000), got 'abc'"},
    {"session.idle_timeout", "", false, "got ''"},
    {"session.idle_timeout", "12x", false, "got '12x'"},
    {"session.idle_timeout", "-1", false, "got '-1'"},
    {"session.idle_timeout", "+5", false, NULL},
    {"session.idle_timeout", " 5", false, NULL},
    {"session.idle_timeout", "0", false, "1..31536000"},
    {"session.idle_timeout", "31536001", false, NULL},
    {"session.idle_timeout", "99999999999999999999999", false, NULL},
    {"session.rotate_interval", "0", true, NULL},
    {"server.max_body_bytes", "16777216", true, NULL},
    {"server.max_body_bytes", "16777217", false, "bytes"},
    {"server.max_body_bytes", "0", false, NULL},
    {"store.map_size", "1073741824", true, NULL},
    {"store.map_size", "18446744073709551615", false, NULL},
    {"store.map_size", "18446744073709551616", false, NULL},
    {"binding.ip_prefix_v4", "32", true, NULL},
    {"binding.ip_prefix_v4", "33", false, "0..32"},
    {"binding.ip_prefix_v6", "128", true, NULL},
    {"binding.ip_prefix_v6", "129", false, "0..128"},
    {"cookie.max_age", "-1", true, NULL},
    {"cookie.max_age", "3600", true, NULL},
    {"cookie.max_age", "-2", false, NULL},
    {"cookie.max_age", "--1", false, NULL},
    {"server.threads", "0", true, NULL},
    /* booleans */
    {"binding.user_agent", "yes", true, NULL},
    {"binding.user_agent", "OFF", true, NULL},
    {"binding.user_agent", "1", true, NULL},
    {"binding.user_agent", "maybe", false, "expected true or false"},
    {"binding.user_agent", "", false, NULL},
    /* enums */
    {"session.limit_policy", "deny", true, NULL},
    {"session.limit_policy", "random", false, "evict_oldest|deny, got 'random'"},
    {"cookie.same_site", "lax", true, NULL},
    {"cookie.same_site", "Lax ", false, NULL},
    {"server.env", "production", true, NULL},
    {"server.env", "prod", false, "development|staging|production"},
    {"store.durability", "fsync", true, NULL},
    {"log.level", "debug", true, NULL},
    {"log.format", "xml", false, "text|json"},
    {"binding.action", "log", true, NULL},
    /* strings */
    {"server.listen", "0.0.0.0:80", true, NULL},
    {"server.listen", "[::1]:7700", true, NULL},
    {"server.listen", "unix:/run/sessiond.sock", true, NULL},
    {"server.listen", "localhost:7700", true, NULL},
    {"server.listen", "::1:7700", false, "brackets"},
    {"server.listen", "127.0.0.1", false, NULL},
    {"server.listen", "127.0.0.1:0", true, NULL},
    {"server.listen", "127.0.0.1:99999", false, "port"},
    {"server.listen", "127.0.0.1:", false, "port"},
    {"server.listen", "127.0.0.1:65536", false, "port"},
    {"server.listen", "[::g]:80", false, "IPv6"},
    {"server.listen", "bad!host:80", false, "host"},
    {"server.listen", "unix:", false, "socket path"},
    {"server.listen", "", false, "must not be empty"},
    {"store.url", "memory:", true, NULL},
    {"store.url", "nothing", false, "scheme"},
    {"store.url", "nosuch:x", false, "unknown store scheme"},
    {"store.url", "1lmdb:x", false, "malformed"},
    {"server.keys_dir", "", false, "must not be empty"},
    {"server.api_keys_file", "", true, NULL},
    {"server.keys_dir", "a\tb", false, "control characters"},
    {"cookie.name", "sid", true, NULL},
    {"cookie.name", "bad name", false, "cookie name"},
    {"cookie.name", "x=y", false, NULL},
    {"cookie.path", "/app", true, NULL},
    {"cookie.path", "app", false, "'/'"},
    {"cookie.path", "/a;b", false, NULL},
    {"cookie.path", "/a b", false, "spaces"},
    {"cookie.path", "/a\x7f", false, NULL},
    {"cookie.domain", "", true, NULL},
    {"cookie.domain", "example.com", true, NULL},
    {"cookie.domain", "exa mple.com", false, NULL},
    {"log.security_events", "/var/log/sessiond-events.log", true, NULL},
    {"log.security_events", "", false, "must not be empty"},
    /* lists */
    {"binding.trusted_proxies", "10.0.0.0/8, ::1", true, NULL},
    {"binding.trusted_proxies", "", true, NULL},
    {"binding.trusted_proxies", "10.0.0.0/33", false, "got '10.0.0.0/33'"},
    {"binding.trusted_proxies", "10.0.0.0/8,300.1.1.1", false, "got '300.1.1.1'"},
    {"binding.trusted_proxies", "10.0.0.0/", false, NULL},
    {"binding.trusted_proxies", "fd00::/129", false, NULL},
    {"binding.trusted_proxies", "10.0.0.0/-1", false, NULL},
    {"csrf.allowed_origins", "https://shop.example, http://localhost:3000", true, NULL},
    {"csrf.allowed_origins", "https://shop.example/", false, "origin"},
    {"csrf.allowed_origins", "ftp://x", false, NULL},
    {"csrf.allowed_origins", "https://", false, NULL},
    {"csrf.allowed_origins", "https://a:", false, NULL},
};

static void test_values(void **state)
{
    (void)state;
    char err[512];

    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        const value_case *c = &value_cases[i];
        sessiond_config *cfg = new_cfg();
        int rc = sessiond_config_set(cfg, c->key, c->value, err, sizeof err);
        if (c->ok && rc != SESS_OK) {
            print_error("%s = '%s' refused: %s\n", c->key, c->value, err);
            fail();
        }
        if (!c->ok) {
            if (rc == SESS_OK) {
                print_error("%s = '%s' accepted\n", c->key, c->value);
                fail();
            }
            assert_msg(err, c->key, c->part);
        }
        free(cfg);
    }
}

static void test_value_effects(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[256];
    char big[2000];

    assert_int_equal(sessiond_config_set(cfg, "binding.user_agent", "off", err, sizeof err), SESS_OK);
    assert_false(cfg->session.bind_user_agent);
    assert_int_equal(sessiond_config_set(cfg, "cookie.same_site", "strict", err, sizeof err), SESS_OK);
    assert_int_equal(cfg->cookie.same_site, SESS_SAME_SITE_STRICT);
    assert_int_equal(sessiond_config_set(cfg, "cookie.max_age", "-1", err, sizeof err), SESS_OK);
    assert_true(cfg->cookie.max_age == -1);
    assert_int_equal(sessiond_config_set(cfg, "csrf.allowed_origins", "HTTPS://Shop.Example:8443", err, sizeof err), SESS_OK);
    assert_int_equal(cfg->n_allowed_origins, 1);
    assert_string_equal(cfg->allowed_origins[0], "https://shop.example:8443");

    /* A failed list keeps the old list. */
    assert_int_equal(sessiond_config_set(cfg, "binding.trusted_proxies", "10.0.0.0/8", err, sizeof err), SESS_OK);
    assert_int_not_equal(sessiond_config_set(cfg, "binding.trusted_proxies", "192.0.2.0/24 bogus", err, sizeof err), SESS_OK);
    assert_int_equal(cfg->n_trusted_proxies, 1);

    /* Overlong strings are refused, not truncated. */
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_not_equal(sessiond_config_set(cfg, "server.keys_dir", big, err, sizeof err), SESS_OK);
    assert_msg(err, "server.keys_dir", "longer than 1023 bytes");
    assert_string_equal(cfg->keys_dir, "./var/keys");

    /* Too many list entries. */
    char list[40 * 16] = "";
    for (int i = 0; i < 33; i++) {
        char one[20];
        snprintf(one, sizeof one, "10.0.%d.0/24 ", i);
        strncat(list, one, sizeof list - strlen(list) - 1);
    }
    assert_int_not_equal(sessiond_config_set(cfg, "binding.trusted_proxies", list, err, sizeof err), SESS_OK);
    assert_msg(err, "binding.trusted_proxies", "more than 32");

    /* Unknown keys. */
    assert_int_not_equal(sessiond_config_set(cfg, "session.idle", "5", err, sizeof err), SESS_OK);
    assert_non_null(strstr(err, "session.idle: unknown key"));
    assert_int_not_equal(sessiond_config_set(cfg, "nodot", "5", err, sizeof err), SESS_OK);
    free(cfg);
}

static void test_trusted_proxies(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[256];

    assert_false(sessiond_config_is_trusted_proxy(cfg, "127.0.0.1"));
    assert_int_equal(sessiond_config_set(cfg, "binding.trusted_proxies",
        "10.1.2.3/8, 192.168.1.7\t172.16.0.0/12,fd00::/8 2001:db8::1 2001:db8:1::/47",
        err, sizeof err), SESS_OK);
    assert_int_equal(cfg->n_trusted_proxies, 6);
    /* Host bits are masked. */
    assert_int_equal(cfg->trusted_proxies[0].net.addr[1], 0);
    assert_int_equal(cfg->trusted_proxies[0].prefix, 8);
    assert_int_equal(cfg->trusted_proxies[1].prefix, 32);
    assert_int_equal(cfg->trusted_proxies[4].prefix, 128);

    assert_true(sessiond_config_is_trusted_proxy(cfg, "10.200.3.4"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "11.0.0.1"));
    assert_true(sessiond_config_is_trusted_proxy(cfg, "192.168.1.7"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "192.168.1.8"));
    assert_true(sessiond_config_is_trusted_proxy(cfg, "172.31.255.255"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "172.32.0.0"));
    assert_true(sessiond_config_is_trusted_proxy(cfg, "fd12:3456::1"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "fe80::1"));
    assert_true(sessiond_config_is_trusted_proxy(cfg, "2001:db8::1"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "2001:db9::1"));
    /* /47: 2001:db8:0001::/47 covers 2001:db8:0000:: .. 2001:db8:0001:ffff:: */
    assert_true(sessiond_config_is_trusted_proxy(cfg, "2001:db8:1:ffff::5"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "2001:db8:2::5"));
    /* IPv4-mapped IPv6 (dual-stack sockets) matches the IPv4 block. */
    assert_true(sessiond_config_is_trusted_proxy(cfg, "::ffff:10.9.9.9"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "::ffff:11.9.9.9"));
    /* One owner of the address rules (issue 10, item 13): a block written
     * in mapped form is the IPv4 block it maps, as the library's binding
     * reads such addresses; the daemon used to keep it as an IPv6 block
     * that no (normalised) peer could ever match. */
    assert_int_equal(sessiond_config_set(cfg, "binding.trusted_proxies",
                                         "::ffff:10.0.0.0/104", err, sizeof err), SESS_OK);
    assert_int_equal(cfg->trusted_proxies[0].prefix, 8);
    assert_true(sessiond_config_is_trusted_proxy(cfg, "10.9.9.9"));
    assert_true(sessiond_config_is_trusted_proxy(cfg, "::ffff:10.9.9.9"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "11.9.9.9"));
    assert_int_equal(sessiond_config_set(cfg, "binding.trusted_proxies",
                                         "::ffff:10.0.0.0/95", err, sizeof err), SESS_ECONFIG);
    sess_ip a, b;
    assert_int_equal(sess_ip_parse("::ffff:203.0.113.7", &a), SESS_OK);
    assert_int_equal(sess_ip_parse("203.0.113.7", &b), SESS_OK);
    assert_true(sess_ip_prefix_match(&a, &b, 32));
    assert_int_equal(sessiond_config_set(cfg, "binding.trusted_proxies",
        "10.1.2.3/8, 192.168.1.7\t172.16.0.0/12,fd00::/8 2001:db8::1 2001:db8:1::/47",
        err, sizeof err), SESS_OK);
    /* Garbage is never trusted. */
    assert_false(sessiond_config_is_trusted_proxy(cfg, ""));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "10.0.0.1 "));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "not-an-ip"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, NULL));

    assert_int_equal(sessiond_config_set(cfg, "binding.trusted_proxies", "0.0.0.0/0", err, sizeof err), SESS_OK);
    assert_true(sessiond_config_is_trusted_proxy(cfg, "203.0.113.9"));
    assert_false(sessiond_config_is_trusted_proxy(cfg, "2001:db8::2"));
    free(cfg);
}

static int parse(sessiond_config *cfg, const char *text, char *err, size_t len)
{
    return sessiond_config_parse_ini(cfg, text, strlen(text), err, len);
}

static void test_ini(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[512];

    assert_int_equal(parse(cfg,
        "; comment\n# comment\n[server]\nlisten = 0.0.0.0:8080\n\n"
        "[session]\nidle_timeout = 600 ; ten minutes\n"
        "[binding]\ntrusted_proxies = 10.0.0.0/8\ntrusted_proxies = ::1\n"
        "[cookie]\nname = myapp\n",
        err, sizeof err), SESS_OK);
    assert_string_equal(cfg->listen, "0.0.0.0:8080");
    assert_int_equal(cfg->session.idle_timeout, 600);
    assert_int_equal(cfg->n_trusted_proxies, 2);
    assert_string_equal(cfg->cookie.name, "myapp");

    /* Line numbers on bad values, unknown keys and sections. */
    assert_int_not_equal(parse(cfg, "[session]\n\nidle_timeout = abc\n", err, sizeof err), SESS_OK);
    assert_msg(err, "session.idle_timeout", "line 3");
    assert_int_not_equal(parse(cfg, "[session]\nidle_timeout = 5\nidle_timout = 5\n", err, sizeof err), SESS_OK);
    assert_msg(err, "session.idle_timout", "unknown key");
    assert_non_null(strstr(err, "line 3"));
    assert_int_not_equal(parse(cfg, "[server]\nthreads = 1\n[bogus]\n", err, sizeof err), SESS_OK);
    assert_non_null(strstr(err, "unknown section [bogus]"));
    assert_non_null(strstr(err, "line 3"));
    assert_int_not_equal(parse(cfg, "listen = 1.2.3.4:5\n", err, sizeof err), SESS_OK);
    assert_non_null(strstr(err, "outside a [section]"));
    assert_int_not_equal(parse(cfg, "[server]\nthis is not ini\n", err, sizeof err), SESS_OK);
    assert_non_null(strstr(err, "syntax error"));
    assert_non_null(strstr(err, "line 2"));
    assert_int_not_equal(parse(cfg, "[server\n", err, sizeof err), SESS_OK);
    /* A key twice in one file is a mistake. */
    assert_int_not_equal(parse(cfg, "[server]\nthreads = 1\nthreads = 2\n", err, sizeof err), SESS_OK);
    assert_msg(err, "server.threads", "more than once");
    /* Overlong lines are refused, not split. */
    char longline[400];
    snprintf(longline, sizeof longline, "[server]\nkeys_dir = /%0300d\n", 0);
    assert_int_not_equal(parse(cfg, longline, err, sizeof err), SESS_OK);
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "longer than"));
    /* NUL bytes. */
    static const char nul[] = "[server]\nthreads = 1\0\n";
    assert_int_not_equal(sessiond_config_parse_ini(cfg, nul, sizeof nul - 1, err, sizeof err), SESS_OK);
    assert_non_null(strstr(err, "NUL"));
    /* Empty text is fine; a BOM is allowed. */
    assert_int_equal(parse(cfg, "", err, sizeof err), SESS_OK);
    assert_int_equal(parse(cfg, "\xEF\xBB\xBF[log]\nlevel = warn\n", err, sizeof err), SESS_OK);
    assert_int_equal(cfg->log_level, SESSIOND_LOG_WARN);
    free(cfg);
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static sessiond_config_outcome load(sessiond_config *cfg, char **envp,
                                    char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    argv[argc++] = (char *)"sessiond";
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return sessiond_config_load(cfg, argc, argv, envp, err, errlen);
}

static void test_precedence(void **state)
{
    (void)state;
    sessiond_config *cfg = malloc(sizeof *cfg);
    char err[512];
    char *file = write_temp("[server]\nlisten = 127.0.0.1:8000\n"
                            "[session]\nidle_timeout = 600\nmax_per_user = 7\n"
                            "absolute_timeout = 7200\n[binding]\n"
                            "trusted_proxies = 10.0.0.0/8 10.1.0.0/16\n");
    char env_config[256];
    snprintf(env_config, sizeof env_config, "SESSIOND_CONFIG=%s", file);

    /* Defaults < file. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--config", file, NULL), SESSIOND_CONFIG_RUN);
    assert_string_equal(cfg->listen, "127.0.0.1:8000");
    assert_int_equal(cfg->session.idle_timeout, 600);
    assert_int_equal(cfg->session.absolute_timeout, 7200);
    assert_int_equal(cfg->n_trusted_proxies, 2);
    assert_string_equal(cfg->config_file, file);

    /* File < environment; SESSIOND_CONFIG names the file; lists are
     * replaced by a higher source, not merged. */
    char *envp[] = {env_config, (char *)"SESSIOND_LISTEN=127.0.0.1:8001",
                    (char *)"SESSIOND_SESSION_IDLE_TIMEOUT=700",
                    (char *)"SESSIOND_BINDING_TRUSTED_PROXIES=::1",
                    (char *)"SESSIOND_UNRELATED=x", (char *)"PATH=/bin", NULL};
    assert_int_equal(load(cfg, envp, err, sizeof err, NULL), SESSIOND_CONFIG_RUN);
    assert_string_equal(cfg->listen, "127.0.0.1:8001");
    assert_int_equal(cfg->session.idle_timeout, 700);
    assert_int_equal(cfg->session.max_per_user, 7);
    assert_int_equal(cfg->n_trusted_proxies, 1);

    /* Environment < flags and --set. */
    assert_int_equal(load(cfg, envp, err, sizeof err, "--listen", "127.0.0.1:8002",
                          "--set", "session.idle_timeout=800",
                          "--set=session.max_per_user=9", "--store=memory:",
                          NULL), SESSIOND_CONFIG_RUN);
    assert_string_equal(cfg->listen, "127.0.0.1:8002");
    assert_int_equal(cfg->session.idle_timeout, 800);
    assert_int_equal(cfg->session.max_per_user, 9);
    assert_string_equal(cfg->store_url, "memory:");

    /* Aliases and full names are the same key: both at once is an error. */
    char *envp2[] = {(char *)"SESSIOND_LISTEN=127.0.0.1:1",
                     (char *)"SESSIOND_SERVER_LISTEN=127.0.0.1:2", NULL};
    assert_int_equal(load(cfg, envp2, err, sizeof err, NULL), SESSIOND_CONFIG_ERROR);
    assert_msg(err, "server.listen", "more than once");

    /* Bad environment values name the key and the variable. */
    char *envp3[] = {(char *)"SESSIOND_SESSION_IDLE_TIMEOUT=soon", NULL};
    assert_int_equal(load(cfg, envp3, err, sizeof err, NULL), SESSIOND_CONFIG_ERROR);
    assert_msg(err, "session.idle_timeout", "SESSIOND_SESSION_IDLE_TIMEOUT");
    char *envp4[] = {(char *)"SESSIOND_SESSION_IDLE_TIMOUT=5", NULL};
    assert_int_equal(load(cfg, envp4, err, sizeof err, NULL), SESSIOND_CONFIG_ERROR);
    assert_non_null(strstr(err, "SESSIOND_SESSION_IDLE_TIMOUT"));

    /* Missing file, bad flags. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--config", "/nonexistent/x.ini", NULL), SESSIOND_CONFIG_ERROR);
    assert_non_null(strstr(err, "/nonexistent/x.ini"));
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--bogus", NULL), SESSIOND_CONFIG_ERROR);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--listen", NULL), SESSIOND_CONFIG_ERROR);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--set", "session.idle_timeout", NULL), SESSIOND_CONFIG_ERROR);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--set", "nope.nope=1", NULL), SESSIOND_CONFIG_ERROR);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--env", "qa", NULL), SESSIOND_CONFIG_ERROR);
    assert_msg(err, "server.env", "--env");
    assert_int_equal(load(cfg, NULL, err, sizeof err, "positional", NULL), SESSIOND_CONFIG_ERROR);

    /* Outcomes. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--check-config", NULL), SESSIOND_CONFIG_CHECK_OK);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--version", NULL), SESSIOND_CONFIG_EXIT_OK);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--help", NULL), SESSIOND_CONFIG_EXIT_OK);
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--check-config", "--set", "session.idle_timeout=100000", NULL), SESSIOND_CONFIG_ERROR);
    assert_msg(err, "session.absolute_timeout", "idle_timeout");

    unlink(file);
    free(file);
    free(cfg);
}

static void test_cookie_env(void **state)
{
    (void)state;
    sessiond_config *cfg = malloc(sizeof *cfg);
    char err[512];
    sess_cookie_profile prod;

    sess_cookie_profile_default(SESS_ENV_PRODUCTION, &prod);

    /* The environment picks the cookie profile and log format. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--env", "production", NULL), SESSIOND_CONFIG_RUN);
    assert_memory_equal(&cfg->cookie, &prod, sizeof prod);
    assert_int_equal(cfg->log_format, SESSIOND_LOG_JSON);

    /* Explicit cookie keys win over the environment's defaults whatever
     * the order of the sources (file sets the cookie, a flag the env). */
    char *file = write_temp("[cookie]\nmax_age = 3600\nsame_site = Strict\n[log]\nformat = text\n");
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--config", file, "--env", "production", NULL), SESSIOND_CONFIG_RUN);
    assert_string_equal(cfg->cookie.name, prod.name);
    assert_true(cfg->cookie.secure);
    assert_true(cfg->cookie.max_age == 3600);
    assert_int_equal(cfg->cookie.same_site, SESS_SAME_SITE_STRICT);
    assert_int_equal(cfg->log_format, SESSIOND_LOG_TEXT);
    unlink(file);
    free(file);

    /* SameSite=None without Secure. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--env", "production",
                          "--set", "cookie.same_site=None", "--set", "cookie.secure=false", NULL),
                     SESSIOND_CONFIG_ERROR);
    assert_non_null(strstr(err, "cookie.same_site"));
    /* __Host- with Domain. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--env", "production",
                          "--set", "cookie.domain=example.com", NULL),
                     SESSIOND_CONFIG_ERROR);
    assert_non_null(strstr(err, "cookie.domain"));
    assert_non_null(strstr(err, "production"));
    /* Without the prefix a Domain is allowed. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--env", "production",
                          "--set", "cookie.domain=example.com", "--set", "cookie.name=sid", NULL),
                     SESSIOND_CONFIG_RUN);
    /* Production refuses a cookie without Secure. */
    char *envp[] = {(char *)"SESSIOND_ENV=production", (char *)"SESSIOND_COOKIE_SECURE=no", NULL};
    assert_int_equal(load(cfg, envp, err, sizeof err, "--set", "cookie.name=sid", NULL), SESSIOND_CONFIG_ERROR);
    assert_non_null(strstr(err, "cookie.secure"));
    /* Development is fine with it. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--set", "cookie.secure=no", NULL), SESSIOND_CONFIG_RUN);
    free(cfg);
}

static void test_validate(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[512];

    cfg->session.absolute_timeout = 100;
    cfg->session.idle_timeout = 200;
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_msg(err, "session.absolute_timeout", "session.idle_timeout");
    sessiond_config_defaults(cfg);
    cfg->session.remember_absolute_timeout = 10;
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_msg(err, "session.remember_absolute_timeout", NULL);
    sessiond_config_defaults(cfg);
    cfg->session.rotation_grace = 300;
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_msg(err, "session.rotation_grace", "rotate_interval");
    cfg->session.rotate_interval = 0;   /* rotation off: grace irrelevant */
    assert_int_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    cfg->session.rotate_interval = 1;   /* a grace as long as the interval */
    cfg->session.rotation_grace = 1;
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    sessiond_config_defaults(cfg);
    snprintf(cfg->listen, sizeof cfg->listen, "nonsense");
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_msg(err, "server.listen", NULL);
    sessiond_config_defaults(cfg);
    cfg->security_events[0] = '\0';
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_msg(err, "log.security_events", NULL);
    free(cfg);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* docs/configuration.md documents every key of the table (name, default,
 * environment variable), and the example file passes --check-config. */
static void test_docs(void **state)
{
    (void)state;
    char *help = NULL, *docs, *line, *next;
    size_t help_len = 0;
    FILE *out = open_memstream(&help, &help_len);
    char row_key[160] = "";
    int keys_seen = 0;

    assert_non_null(out);
    sessiond_config_print_keys(out);
    fclose(out);
    docs = slurp(SESSIOND_SOURCE_DIR "/docs/configuration.md");
    if (docs == NULL) {
        print_message("docs/configuration.md missing\n");
        fail();
    }
    for (line = help; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        char key[128], def[256];
        if (sscanf(line, "  %127s = %255[^\n]", key, def) >= 1 && line[2] != ' ' &&
            strchr(key, '.') != NULL) {
            char want[160];
            snprintf(row_key, sizeof row_key, "| `%s` |", key);
            const char *row = strstr(docs, row_key);
            if (row == NULL) {
                print_error("docs lack key %s\n", key);
                fail();
            }
            keys_seen++;
            const char *eol = strchr(row, '\n');
            size_t rlen = eol ? (size_t)(eol - row) : strlen(row);
            char rowtext[2048];
            snprintf(rowtext, sizeof rowtext, "%.*s", (int)rlen, row);
            if (strstr(line, "development:") == NULL) {
                const char *d = strstr(line, " = ") + 3;
                if (strcmp(d, "(none)") == 0)
                    snprintf(want, sizeof want, "(none)");
                else
                    snprintf(want, sizeof want, "`%s`", d);
                if (strstr(rowtext, want) == NULL) {
                    print_error("docs row of %s lacks default %s: %s\n", key, want, rowtext);
                    fail();
                }
            } else if (strstr(rowtext, "per environment") == NULL) {
                print_error("docs row of %s lacks 'per environment'\n", key);
                fail();
            }
        } else if (strncmp(line, "      env ", 10) == 0) {
            char env[96], want[100];
            sscanf(line + 10, "%95s", env);
            snprintf(want, sizeof want, "`%s`", env);
            if (strstr(docs, want) == NULL) {
                print_error("docs lack %s\n", env);
                fail();
            }
        }
    }
    assert_true(keys_seen >= 37);
    free(help);
    free(docs);

    sessiond_config *cfg = malloc(sizeof *cfg);
    char err[512];
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--config",
                          SESSIOND_SOURCE_DIR "/docs/sessiond.example.ini",
                          "--check-config", NULL), SESSIOND_CONFIG_CHECK_OK);
    /* The example file is fine in production too. */
    assert_int_equal(load(cfg, NULL, err, sizeof err, "--config",
                          SESSIOND_SOURCE_DIR "/docs/sessiond.example.ini",
                          "--env", "production", "--check-config", NULL),
                     SESSIOND_CONFIG_CHECK_OK);
    free(cfg);
}

/* Issue 15: [tracing] and log.access - the ratio type (strict: the whole
 * value, 0 to 1, no NaN), the endpoint scheme, batch_size <= queue_size. */
static void test_tracing_keys(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[512];
    assert_true(cfg->tracing.sample_ratio == 1.0);
    assert_string_equal(cfg->tracing.otlp_endpoint, "");
    assert_string_equal(cfg->tracing.service_name, "sessiond");
    assert_int_equal(cfg->tracing.batch_size, 512);
    assert_int_equal(cfg->tracing.queue_size, 2048);
    assert_string_equal(cfg->access_log, "off");
    static const struct {
        const char *v;
        double want;
    } good[] = {{"0", 0.0}, {"1", 1.0}, {"0.01", 0.01}, {"1e-3", 0.001}, {"0.5", 0.5}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(sessiond_config_set(cfg, "tracing.sample_ratio", good[i].v, err,
                                             sizeof err), SESS_OK);
        assert_true(cfg->tracing.sample_ratio == good[i].want);
    }
    static const char *const bad[] = {"", " 0.5", "0.5 ", "1.01", "-0.1", "nan", "inf",
                                      "1e999", "half", "0,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sessiond_config_set(cfg, "tracing.sample_ratio", bad[i], err,
                                             sizeof err), SESS_ECONFIG);
        assert_msg(err, "tracing.sample_ratio", "ratio");
        assert_true(cfg->tracing.sample_ratio == 0.5);   /* unchanged */
    }
    assert_int_equal(sessiond_config_set(cfg, "tracing.otlp_endpoint",
                                         "http://127.0.0.1:4318/v1/traces", err,
                                         sizeof err), SESS_OK);
    assert_int_equal(sessiond_config_set(cfg, "tracing.otlp_endpoint", "ftp://x/v1/traces",
                                         err, sizeof err), SESS_ECONFIG);
    assert_msg(err, "tracing.otlp_endpoint", "http");
    assert_int_equal(sessiond_config_set(cfg, "tracing.otlp_endpoint", "http://a b/",
                                         err, sizeof err), SESS_ECONFIG);
    assert_int_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_int_equal(sessiond_config_set(cfg, "tracing.batch_size", "4096", err,
                                         sizeof err), SESS_OK);
    assert_int_equal(sessiond_config_set(cfg, "tracing.queue_size", "100", err,
                                         sizeof err), SESS_OK);
    assert_int_not_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_OK);
    assert_msg(err, "tracing.batch_size", "tracing.queue_size");
    assert_int_equal(sessiond_config_set(cfg, "log.access", "/var/log/a.jsonl", err,
                                         sizeof err), SESS_OK);
    assert_int_equal(sessiond_config_set(cfg, "log.access", "", err, sizeof err),
                     SESS_ECONFIG);
    free(cfg);
}

/* Issue 10: the reuse policy key, and allowed origins parsed by the
 * library's origin syntax (one owner). */
static void test_issue10_keys(void **state)
{
    (void)state;
    sessiond_config *cfg = new_cfg();
    char err[512];
    assert_int_equal(cfg->session.reuse_action, SESS_REUSE_REVOKE);
    assert_int_equal(sessiond_config_set(cfg, "session.on_reuse_after_grace", "log",
                                         err, sizeof err), SESS_OK);
    assert_int_equal(cfg->session.reuse_action, SESS_REUSE_LOG);
    assert_int_equal(sessiond_config_set(cfg, "session.on_reuse_after_grace", "maybe",
                                         err, sizeof err), SESS_ECONFIG);
    assert_msg(err, "session.on_reuse_after_grace", "revoke");
    assert_int_equal(sessiond_config_set(cfg, "csrf.allowed_origins",
                                         "HTTPS://Shop.Example:443 http://[::1]:8080",
                                         err, sizeof err), SESS_OK);
    assert_int_equal(cfg->n_allowed_origins, 2);
    assert_string_equal(cfg->allowed_origins[0], "https://shop.example");
    sess_origin o;
    assert_int_equal(sess_origin_parse("https://shop.example", 20, &o), SESS_OK);
    assert_true(sess_origin_equal(&o, &cfg->allowed_origin[0]));
    assert_int_equal(cfg->allowed_origin[1].port, 8080);
    const char *bad[] = {"https://shop.example/", "null", "ftp://x", "https://a:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sessiond_config_set(cfg, "csrf.allowed_origins", bad[i], err,
                                             sizeof err), SESS_ECONFIG);
        assert_msg(err, "csrf.allowed_origins", "origin");
    }
    free(cfg);
}

/* Issue 10, item 13: each rule has one owner, and both former paths now
 * give the same verdict. */
static void test_one_owner(void **state)
{
    (void)state;
    char err[512];
    sess_err serr;
    sessiond_listen_spec spec;
    /* Listen syntax: listen.c's parser is the config check. */
    static const char *const listens[] = {"bad!host:80", "[::g]:80", "::1:80",
                                          "127.0.0.1:65536", "unix:"};
    for (size_t i = 0; i < sizeof listens / sizeof listens[0]; i++) {
        sessiond_config *cfg = new_cfg();
        assert_int_equal(sessiond_listen_parse(listens[i], &spec, err, sizeof err), -1);
        assert_int_not_equal(sessiond_config_set(cfg, "server.listen", listens[i], err,
                                                 sizeof err), SESS_OK);
        free(cfg);
    }
    assert_int_equal(sessiond_listen_parse("[::1]:0", &spec, err, sizeof err), 0);
    /* Cookie attributes: the library's rules, per key and per profile. */
    sess_cookie_profile p;
    sess_cookie_profile_default(SESS_ENV_DEVELOPMENT, &p);
    snprintf(p.path, sizeof p.path, "/a b");
    assert_int_equal(sess_cookie_profile_check(&p, SESS_ENV_DEVELOPMENT, &serr),
                     SESS_ECONFIG);
    sessiond_config *cfg = new_cfg();
    assert_int_equal(sessiond_config_set(cfg, "cookie.path", "/a b", err, sizeof err),
                     SESS_ECONFIG);
    assert_msg(err, "cookie.path", "spaces");
    free(cfg);
    /* Store URL syntax: what sess_store_open would refuse, the config
     * check refuses. */
    static const char *const urls[] = {"nosuch:x", "nothing", ":x", "1a:x"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        sess_store *st = NULL;
        cfg = new_cfg();
        assert_int_equal(sess_store_url_check(urls[i], &serr), SESS_EINVAL);
        assert_int_equal(sess_store_open(urls[i], NULL, &st, &serr), SESS_EINVAL);
        assert_int_equal(sessiond_config_set(cfg, "store.url", urls[i], err, sizeof err),
                         SESS_ECONFIG);
        free(cfg);
    }
    /* Timeout ordering: the library's rule, with the values in the
     * message, through the whole-config check. */
    cfg = new_cfg();
    cfg->session.absolute_timeout = 100;
    assert_int_equal(sessiond_config_validate(cfg, err, sizeof err), SESS_ECONFIG);
    assert_msg(err, "session.absolute_timeout", "(1800), is 100");
    sess_config sc;
    sess_config_defaults(&sc);
    sc.absolute_timeout = 100;
    assert_int_equal(sess_config_check(&sc, &serr), SESS_ECONFIG);
    assert_string_equal(serr.msg, err);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_value_effects),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_ini),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_cookie_env),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_docs),
        cmocka_unit_test(test_issue10_keys),
        cmocka_unit_test(test_tracing_keys),
        cmocka_unit_test(test_one_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
