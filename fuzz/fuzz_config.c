/*
 * fuzz_config.c - libFuzzer target for sessiond's configuration parser.
 *
 * Feeds arbitrary bytes as INI text to sessiond_config_parse_ini() on a
 * default configuration, then runs the whole-configuration validation and
 * the trusted-proxy matcher on the result.  Checks the invariants a caller
 * relies on: the error message is one NUL-terminated line, and every
 * string field of the configuration stays NUL-terminated within its
 * buffer (overlong values are refused, never copied).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sessiond_config cfg;
    char err[256];

    sessiond_config_defaults(&cfg);
    memset(err, 'x', sizeof err);
    err[sizeof err - 1] = '\0';
    int rc = sessiond_config_parse_ini(&cfg, (const char *)data, size, err,
                                       sizeof err);
    if (rc != SESS_OK && (err[0] == '\0' || strchr(err, '\n') != NULL))
        abort();
    (void)sessiond_config_validate(&cfg, err, sizeof err);
    check_terminated(cfg.listen, sizeof cfg.listen);
    check_terminated(cfg.keys_dir, sizeof cfg.keys_dir);
    check_terminated(cfg.api_keys_file, sizeof cfg.api_keys_file);
    check_terminated(cfg.store_url, sizeof cfg.store_url);
    check_terminated(cfg.security_events, sizeof cfg.security_events);
    check_terminated(cfg.cookie.name, sizeof cfg.cookie.name);
    check_terminated(cfg.cookie.path, sizeof cfg.cookie.path);
    check_terminated(cfg.cookie.domain, sizeof cfg.cookie.domain);
    if (cfg.n_trusted_proxies > SESSIOND_TRUSTED_MAX ||
        cfg.n_allowed_origins > SESSIOND_ORIGINS_MAX)
        abort();
    for (size_t i = 0; i < cfg.n_allowed_origins; i++)
        check_terminated(cfg.allowed_origins[i], SESSIOND_ORIGIN_MAX);
    (void)sessiond_config_is_trusted_proxy(&cfg, "10.1.2.3");
    (void)sessiond_config_is_trusted_proxy(&cfg, "2001:db8::1");
    (void)sessiond_config_is_trusted_proxy(&cfg, "::ffff:192.0.2.1");
    return 0;
}
