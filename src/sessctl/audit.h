/*
 * audit.h - sessctl audit: the internal interface between the auditor's
 * parts: audit.c (command line, login, the checks), audit_http.c (libcurl,
 * origin rule, budget, rate, cookie jar), audit_html.c (form and link
 * extraction with libxml2), audit_random.c (the randomness analysis),
 * audit_checks.c (the table of checks) and audit_report.c (text, JSON,
 * SARIF and HTML output).  docs/audit.md describes every check.
 */
#ifndef SESSCTL_AUDIT_H
#define SESSCTL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <time.h>

#include <curl/curl.h>

#include "sess/set_cookie.h"

int sessctl_audit(int argc, char **argv);

/* ---- findings ------------------------------------------------------- */

typedef enum audit_severity {
    SEV_INFO = 0, SEV_LOW, SEV_MEDIUM, SEV_HIGH, SEV_CRITICAL
} audit_severity;

typedef enum audit_status {
    ST_PASS = 0, ST_FAIL, ST_NA, ST_NOT_TESTED
} audit_status;

typedef struct audit_check_def {
    const char *id;          /* API.md check id, the SARIF ruleId */
    const char *title;
    audit_severity severity; /* when it fails */
    const char *checklist;   /* SG-001 ... SE-003 (docs/audit.md) */
    const char *asvs;        /* OWASP ASVS 5.0 requirement ids */
    const char *fix;         /* one paragraph */
} audit_check_def;

#define AUDIT_EVIDENCE_MAX 1024

typedef struct audit_finding {
    const audit_check_def *def;
    audit_status status;
    audit_severity severity; /* may be lowered (e.g. info for binding) */
    char evidence[AUDIT_EVIDENCE_MAX];
} audit_finding;

const audit_check_def *audit_check_find(const char *id);
const audit_check_def *audit_check_table(size_t *n);
const char *audit_severity_name(audit_severity s);
const char *audit_status_name(audit_status s);
int audit_severity_parse(const char *s, audit_severity *out);

/* ---- randomness ----------------------------------------------------- */

#define AUDIT_POS_MAX 256

typedef struct audit_random {
    size_t n;                 /* samples analysed */
    const char *format;       /* "plain", "express-session (s:ID.signature)", ... */
    bool self_contained;      /* a signed token, not a reference ID */
    const char *alphabet_name;
    unsigned alphabet_size;
    unsigned bits_per_char;   /* 0 when the alphabet is not a power of two */
    size_t len;               /* characters of the analysed part */
    double nominal_bits;      /* len * log2(alphabet) */
    double effective_bits;    /* unbiased varying bits, capped by 2 x mean Hamming */
    size_t total_bits;        /* decoded varying bits fed to FIPS */
    unsigned fips_blocks;     /* 20,000-bit blocks tested */
    unsigned monobit_fail, poker_fail, runs_fail, long_run_fail;
    unsigned fips_blocks_failed; /* blocks with any test failed */
    unsigned fips_worst_block;   /* most tests failed in one block */
    long monobit_x;           /* first block: count of ones */
    double poker_x;           /* first block: poker statistic */
    size_t shared_prefix;     /* characters every sample shares */
    unsigned positions_constant; /* character positions with one symbol */
    unsigned positions_biased;/* character positions failing chi-square */
    size_t bits_constant, bits_biased;
    double mean_hamming;      /* bits differing between consecutive IDs */
    bool counter_like;        /* consecutive samples differ little, or go up */
    bool monotonic;           /* issued in increasing (decreasing) order */
    bool clock_like;          /* a field decodes to the current time */
    size_t clock_offset;
    size_t samples_for_fips;  /* to fill one 20,000-bit FIPS block */
    size_t samples_for_bias;  /* to see a 1% per-bit bias at 4 sigma */
    /* chart data: per character position, the count of the most and least
     * frequent symbol; per decoded bit, the share of ones (0..1) */
    size_t npos;
    unsigned pos_max[AUDIT_POS_MAX], pos_min[AUDIT_POS_MAX];
    size_t nbits_pos;
    double bit_ones[AUDIT_POS_MAX * 6];
} audit_random;

/* Analyse "n" IDs (the random parts, already unwrapped), issued in this
 * order, "now" being the time of the sample (the clock detector). */
void audit_random_analyse(char **ids, size_t n, time_t now, audit_random *out);
/* Strip the framework signing wrapper: returns the random part (a pointer
 * into a static buffer, valid until the next call), names the format and
 * says whether the value is a self-contained signed token. */
const char *audit_random_part(const char *value, const char **format, bool *self_contained);
/* true when the sample fails; "why" gets the reasons. */
bool audit_random_verdict(const audit_random *r, char *why, size_t cap);

/* ---- HTML ----------------------------------------------------------- */

#define AUDIT_FIELDS_MAX 32
#define AUDIT_LINKS_MAX 256

typedef struct audit_field {
    char name[128];
    char value[512];
    char type[16];
} audit_field;

typedef struct audit_form {
    char action[1024];
    char method[8];
    audit_field fields[AUDIT_FIELDS_MAX];
    int nfields;
    bool has_password;
} audit_form;

typedef struct audit_html {
    audit_form forms[8];
    int nforms;
    char links[AUDIT_LINKS_MAX][512];
    int nlinks;
    char meta_csrf[512];      /* <meta name="csrf-token" content=...> */
} audit_html;

/* Extract forms (action, method, inputs) and link targets from an HTML
 * body of "len" bytes with libxml2's HTML parser; bounded by the arrays. */
void audit_html_extract(const char *body, size_t len, audit_html *out);


/* ---- HTTP (audit_http.c) ---------------------------------------------- */

#define URL_MAX_AUDIT 4096
#define AUDIT_BODY_MAX (2u << 20)   /* bytes of a page we read */
#define AUDIT_SC_MAX 32             /* Set-Cookie lines per response */
#define AUDIT_JAR_MAX 48
#define AUDIT_REDIRECTS 5
#define AUDIT_LOCS_MAX 64
#define AUDIT_FINDINGS_MAX 48

enum { AUDIT_OK = 0, AUDIT_ENET = -1, AUDIT_EBUDGET = -2, AUDIT_EINTR = -3,
       AUDIT_EORIGIN = -4, AUDIT_ENOMEM = -5 };

typedef struct audit_jar {
    sess_set_cookie *c;         /* AUDIT_JAR_MAX entries, heap */
    int n;
} audit_jar;

typedef struct audit_resp {
    long status;
    long first_status;          /* audit_fetch: the status before any redirect */
    char *body;                 /* NUL-terminated, at most AUDIT_BODY_MAX */
    size_t len, cap;
    bool truncated;
    char url[URL_MAX_AUDIT];    /* the URL this answer came from */
    char location[URL_MAX_AUDIT];
    char cache_control[512];
    char pragma[128];
    char content_type[128];
    char *set_cookie[AUDIT_SC_MAX];
    int nsc;
} audit_resp;

typedef struct audit_ctx {
    /* options */
    const char *target, *login_url_opt, *logout_url_opt, *protected_url_opt;
    const char *policy_url, *cacert, *format, *output, *session_cookie_opt;
    const char *user_field, *pass_field;
    char *user, *password;      /* heap, wiped at the end */
    unsigned samples, max_requests;
    double rate;
    long timeout;
    unsigned probe_timeouts;    /* seconds we may wait; 0: not probed */
    bool progress_tty, quiet;
    audit_severity fail_on;
    char user_agent[96];
    /* state */
    CURL *curl;
    unsigned requests;
    struct timespec last;
    bool budget_exhausted;
    unsigned offorigin_redirects;
    char neterr[CURL_ERROR_SIZE + 64];
    sess_set_cookie scratch;
    audit_jar seen;             /* every cookie the site set, last wins */
    char locs[AUDIT_LOCS_MAX][512];
    int nlocs;
    audit_finding findings[AUDIT_FINDINGS_MAX];
    size_t nfindings;
    audit_random rnd;
    bool have_rnd;
    char notes[2048];           /* what limited the audit */
} audit_ctx;

extern volatile sig_atomic_t audit_interrupted;

int audit_url_resolve(const char *base, const char *rel, char *out, size_t cap);
int audit_url_origin(const char *url, char *out, size_t cap);
int audit_url_path(const char *url, char *out, size_t cap);
int audit_url_host(const char *url, char *out, size_t cap);
bool audit_same_origin(const char *a, const char *b);

int audit_jar_init(audit_jar *j);
void audit_jar_free(audit_jar *j);
int audit_jar_copy(audit_jar *dst, const audit_jar *src);
sess_set_cookie *audit_jar_get(audit_jar *j, const char *name);
void audit_jar_remove(audit_jar *j, const char *name);
int audit_jar_set(audit_jar *j, const char *name, const char *value);

void audit_resp_free(audit_resp *r);
int audit_request(audit_ctx *a, const char *method, const char *url, const char *body,
                  audit_jar *j, const char *const *hdrs, audit_resp *r);
int audit_fetch(audit_ctx *a, const char *method, const char *url, const char *body,
                audit_jar *j, const char *const *hdrs, audit_resp *r);
/* audit.c: every cookie seen, every Location seen */
void audit_seen_cookie(audit_ctx *a, const sess_set_cookie *sc);
void audit_note_location(audit_ctx *a, const char *loc);

/* ---- report --------------------------------------------------------- */

/* Print the report of "a" in "format" (text, json, sarif, html) to "out". */
int audit_report_print(const audit_ctx *a, const char *format, FILE *out);
/* The evidence form of a session ID: a short prefix and a hash, never the
 * whole value ("abc… (43 chars, sha256:1a2b3c4d)"). */
void audit_mask(const char *value, char *out, size_t cap);

#endif /* SESSCTL_AUDIT_H */
