/*
 * audit.h - sessctl audit: the internal interface between the auditor's
 * parts (audit.c: input, HTTP, the checks; audit_html.c: form and link
 * extraction with libxml2; audit_random.c: the randomness analysis;
 * audit_report.c: text, JSON, SARIF and HTML output).  docs/audit.md
 * describes every check.
 */
#ifndef SESSCTL_AUDIT_H
#define SESSCTL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
const char *audit_severity_name(audit_severity s);
const char *audit_status_name(audit_status s);
int audit_severity_parse(const char *s, audit_severity *out);

/* ---- randomness ----------------------------------------------------- */

#define AUDIT_POS_MAX 256

typedef struct audit_random {
    size_t n;                 /* samples analysed */
    const char *format;       /* "plain", "express s:ID.sig", "rails", ... */
    const char *alphabet_name;
    unsigned alphabet_size;
    unsigned bits_per_char;   /* 0 when the alphabet is not a power of two */
    size_t len;               /* characters of the analysed part */
    double nominal_bits;      /* len * log2(alphabet) */
    double effective_bits;    /* bit positions passing the bias test */
    size_t total_bits;        /* decoded bits tested by FIPS */
    int fips_blocks;          /* 20,000-bit blocks tested */
    bool monobit_ok, poker_ok, runs_ok, long_run_ok;
    long monobit_x;
    double poker_x;
    size_t shared_prefix;     /* characters every sample shares */
    bool counter_like;        /* consecutive samples differ little */
    bool clock_like;          /* a field decodes to the current time */
    unsigned positions_biased;/* character positions failing chi-square */
    size_t samples_needed;    /* for a 1% per-bit bias at 4 sigma */
    /* chart data: per position, the count of the most and least frequent
     * symbol; per bit, the share of ones (0..1) */
    unsigned pos_max[AUDIT_POS_MAX], pos_min[AUDIT_POS_MAX];
    size_t nbits_pos;
    double bit_ones[AUDIT_POS_MAX * 6];
} audit_random;

/* Analyse "n" IDs (the random part already extracted). */
void audit_random_analyse(char **ids, size_t n, audit_random *out);
/* Strip the framework signing wrapper: returns the random part (a pointer
 * into a static buffer) and names the format. */
const char *audit_random_part(const char *value, const char **format);

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
} audit_html;

/* Extract forms (action, method, inputs) and link targets from an HTML
 * body of "len" bytes with libxml2's HTML parser; bounded by the arrays. */
void audit_html_extract(const char *body, size_t len, audit_html *out);

/* ---- report --------------------------------------------------------- */

typedef struct audit_report {
    const char *target;
    audit_finding *findings;
    size_t nfindings;
    const audit_random *rnd;  /* NULL when no sample was taken */
    bool interrupted;
    unsigned requests;
} audit_report;

int audit_report_print(const audit_report *r, const char *format);

#endif /* SESSCTL_AUDIT_H */
