/*
 * audit_report.c - the outputs of sessctl audit: text grouped by severity
 * with the fix, JSON (the schema in docs/audit.md: stable keys, built with
 * jansson), SARIF 2.1.0 (ruleId = check id, one rule per check of the
 * table) and a self-contained HTML page (no script, no outside resource;
 * inline SVG charts of the randomness analysis).  Every value that comes
 * from the site (evidence, cookie names) is escaped for its output: text
 * output has control characters replaced (terminal escape injection), HTML
 * output is entity-escaped (the report must not run the site's markup).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "sess.h"

/* Reference lists are cut to their buffers on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

typedef struct counts {
    size_t total, passed, failed, critical, na, not_tested;
} counts;

static counts count(const audit_ctx *a)
{
    counts c = {0};
    for (size_t i = 0; i < a->nfindings; i++) {
        const audit_finding *f = &a->findings[i];
        c.total++;
        switch (f->status) {
        case ST_PASS: c.passed++; break;
        case ST_FAIL:
            c.failed++;
            if (f->severity == SEV_CRITICAL)
                c.critical++;
            break;
        case ST_NA: c.na++; break;
        default: c.not_tested++; break;
        }
    }
    return c;
}

/* Failed findings, worst first (stable within a severity). */
static size_t order(const audit_ctx *a, const audit_finding **out)
{
    size_t n = 0;
    for (int s = SEV_CRITICAL; s >= SEV_INFO; s--)
        for (size_t i = 0; i < a->nfindings; i++)
            if (a->findings[i].status == ST_FAIL && (int)a->findings[i].severity == s)
                out[n++] = &a->findings[i];
    return n;
}

static void put_clean(FILE *o, const char *s)
{
    for (; *s; s++)
        fputc(iscntrl((unsigned char)*s) ? '?' : *s, o);
}

static void refs_text(const audit_check_def *d, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s", d->checklist, d->asvs[0] ? "; ASVS 5.0 " : "",
             d->asvs, "");
}

/* ---- text ---------------------------------------------------------------- */

static void text(const audit_ctx *a, FILE *o)
{
    counts c = count(a);
    const audit_finding *fail[AUDIT_FINDINGS_MAX];
    size_t nf = order(a, fail);
    char refs[256];

    fprintf(o, "sessctl audit of ");
    put_clean(o, a->target);
    fprintf(o, "%s\n\n", audit_interrupted ? " (INTERRUPTED: partial results)" : "");
    int last = -1;
    for (size_t i = 0; i < nf; i++) {
        const audit_finding *f = fail[i];
        if ((int)f->severity != last) {
            last = (int)f->severity;
            char up[16];
            snprintf(up, sizeof up, "%s", audit_severity_name(f->severity));
            for (char *p = up; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            fprintf(o, "== %s ==\n", up);
        }
        refs_text(f->def, refs, sizeof refs);
        fprintf(o, "[FAIL] %s: %s\n  evidence: ", f->def->id, f->def->title);
        put_clean(o, f->evidence);
        fprintf(o, "\n  refs: %s\n  fix: %s\n\n", refs, f->def->fix);
    }
    fprintf(o, "== passed, not applicable, not tested ==\n");
    for (size_t i = 0; i < a->nfindings; i++) {
        const audit_finding *f = &a->findings[i];
        if (f->status == ST_FAIL)
            continue;
        fprintf(o, "[%s] %s: ", f->status == ST_PASS ? "pass" : f->status == ST_NA ? "n/a"
                                                                              : "not tested",
                f->def->id);
        put_clean(o, f->evidence);
        fputc('\n', o);
    }
    fprintf(o, "\nsummary: %zu checks, %zu passed, %zu failed (%zu critical), %zu not "
            "applicable, %zu not tested; %u requests\n", c.total, c.passed, c.failed,
            c.critical, c.na, c.not_tested, a->requests);
    if (a->notes[0]) {
        fprintf(o, "notes: ");
        put_clean(o, a->notes);
        fputc('\n', o);
    }
    if (nf) {
        fprintf(o, "recommendations, most urgent first:\n");
        for (size_t i = 0; i < nf; i++)
            fprintf(o, "  %zu. %s (%s)\n", i + 1, fail[i]->def->title, fail[i]->def->id);
    }
}

/* ---- JSON ------------------------------------------------------------------- */

static json_t *refs_json(const audit_check_def *d)
{
    json_t *r = json_array();
    char buf[256];
    const char *lists[2] = {d->checklist, d->asvs};
    for (int l = 0; l < 2; l++) {
        snprintf(buf, sizeof buf, "%s", lists[l]);
        for (char *t = buf, *e; t && *t; t = e) {
            e = strchr(t, ',');
            if (e)
                *e++ = '\0';
            while (*t == ' ')
                t++;
            if (!*t)
                continue;
            char item[64];
            snprintf(item, sizeof item, "%s%s", l ? "ASVS-5.0-" : "", t);
            json_array_append_new(r, json_string(item));
        }
    }
    return r;
}

static json_t *random_json(const audit_random *R)
{
    json_t *pos = json_array(), *bits = json_array();
    for (size_t i = 0; i < R->npos; i++)
        json_array_append_new(pos, json_pack("{s:I,s:I}", "max", (json_int_t)R->pos_max[i],
                                             "min", (json_int_t)R->pos_min[i]));
    for (size_t i = 0; i < R->nbits_pos; i++)
        json_array_append_new(bits, json_real(R->bit_ones[i]));
    return json_pack("{s:I,s:s,s:b,s:s,s:I,s:I,s:f,s:f,s:{s:I,s:I,s:I,s:I,s:I},s:I,s:I,s:I,"
                     "s:f,s:b,s:b,s:{s:I,s:I},s:o,s:o}",
                     "samples", (json_int_t)R->n, "format", R->format ? R->format : "plain",
                     "self_contained", R->self_contained,
                     "alphabet", R->alphabet_name ? R->alphabet_name : "",
                     "alphabet_size", (json_int_t)R->alphabet_size, "length", (json_int_t)R->len,
                     "nominal_bits", R->nominal_bits, "effective_bits", R->effective_bits,
                     "fips", "blocks", (json_int_t)R->fips_blocks, "monobit_failed",
                     (json_int_t)R->monobit_fail, "poker_failed", (json_int_t)R->poker_fail,
                     "runs_failed", (json_int_t)R->runs_fail, "long_run_failed",
                     (json_int_t)R->long_run_fail,
                     "shared_prefix", (json_int_t)R->shared_prefix,
                     "constant_bits", (json_int_t)R->bits_constant,
                     "biased_bits", (json_int_t)R->bits_biased,
                     "mean_hamming", R->mean_hamming, "counter_like", R->counter_like,
                     "clock_like", R->clock_like,
                     "samples_needed", "fips_block", (json_int_t)R->samples_for_fips,
                     "bias_1pct", (json_int_t)R->samples_for_bias,
                     "positions", pos, "bit_ones", bits);
}

static json_t *report_json(const audit_ctx *a)
{
    counts c = count(a);
    json_t *fs = json_array(), *recs = json_array();
    const audit_finding *fail[AUDIT_FINDINGS_MAX];
    size_t nf = order(a, fail);
    for (size_t i = 0; i < a->nfindings; i++) {
        const audit_finding *f = &a->findings[i];
        json_array_append_new(fs, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}",
                                            "check", f->def->id,
                                            "severity", audit_severity_name(f->severity),
                                            "status", audit_status_name(f->status),
                                            "title", f->def->title, "evidence", f->evidence,
                                            "fix", f->def->fix, "refs", refs_json(f->def)));
    }
    for (size_t i = 0; i < nf; i++)
        json_array_append_new(recs, json_pack("{s:s,s:s,s:s}", "check", fail[i]->def->id,
                                              "severity", audit_severity_name(fail[i]->severity),
                                              "fix", fail[i]->def->fix));
    json_t *root = json_pack("{s:s,s:s,s:{s:I,s:I,s:I,s:I,s:I,s:I},s:o,s:o,s:I,s:b,s:s}",
                             "target", a->target, "tool", "sessctl audit",
                             "summary", "total", (json_int_t)c.total, "passed",
                             (json_int_t)c.passed, "failed", (json_int_t)c.failed, "critical",
                             (json_int_t)c.critical, "not_applicable", (json_int_t)c.na,
                             "not_tested", (json_int_t)c.not_tested,
                             "findings", fs, "recommendations", recs,
                             "requests", (json_int_t)a->requests,
                             "interrupted", (int)audit_interrupted, "notes", a->notes);
    if (root && a->have_rnd)
        json_object_set_new(root, "randomness", random_json(&a->rnd));
    return root;
}

/* ---- SARIF 2.1.0 ------------------------------------------------------------ */

static const char *sarif_level(audit_severity s)
{
    return s >= SEV_HIGH ? "error" : s >= SEV_MEDIUM ? "warning" : "note";
}

static json_t *sarif(const audit_ctx *a)
{
    size_t n;
    const audit_check_def *defs = audit_check_table(&n);
    json_t *rules = json_array(), *results = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(rules, json_pack(
            "{s:s,s:s,s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:o,s:s}}",
            "id", defs[i].id, "name", defs[i].id, "shortDescription", "text", defs[i].title,
            "fullDescription", "text", defs[i].title, "help", "text", defs[i].fix,
            "defaultConfiguration", "level", sarif_level(defs[i].severity),
            "properties", "tags", refs_json(&defs[i]), "security-severity",
            defs[i].severity == SEV_CRITICAL ? "9.5" : defs[i].severity == SEV_HIGH ? "8.0"
            : defs[i].severity == SEV_MEDIUM ? "5.5" : defs[i].severity == SEV_LOW ? "3.0" : "0.0"));
    for (size_t i = 0; i < a->nfindings; i++) {
        const audit_finding *f = &a->findings[i];
        if (f->status != ST_FAIL)
            continue;
        size_t idx = 0;
        for (size_t k = 0; k < n; k++)
            if (&defs[k] == f->def)
                idx = k;
        char msg[AUDIT_EVIDENCE_MAX + 256];
        snprintf(msg, sizeof msg, "%s: %s", f->def->title, f->evidence);
        json_array_append_new(results, json_pack(
            "{s:s,s:I,s:s,s:{s:s},s:[{s:{s:{s:s}}}]}",
            "ruleId", f->def->id, "ruleIndex", (json_int_t)idx, "level", sarif_level(f->severity),
            "message", "text", msg,
            "locations", "physicalLocation", "artifactLocation", "uri", a->target));
    }
    return json_pack("{s:s,s:s,s:[{s:{s:{s:s,s:s,s:o}},s:o,s:[{s:b}]}]}",
                     "$schema", "https://json.schemastore.org/sarif-2.1.0.json",
                     "version", "2.1.0", "runs", "tool", "driver", "name", "sessctl audit",
                     "version", sess_version(),
                     "rules", rules, "results", results, "invocations",
                     "executionSuccessful", !audit_interrupted);
}

/* ---- HTML ---------------------------------------------------------------------- */

static void h_esc(FILE *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&#39;", o); break;
        default: fputc(iscntrl((unsigned char)*s) ? '?' : *s, o);
        }
    }
}

/* Two inline SVG charts: the share of ones per decoded bit (0.5 is ideal)
 * and, per character position, the most and least frequent symbol's count
 * against the uniform expectation. */
static void html_charts(FILE *o, const audit_random *R)
{
    size_t nb = R->nbits_pos;
    double w = nb ? 900.0 / (double)nb : 1;
    /* Red: beyond the bias test's 5 sigma for this sample size. */
    double lim = R->n ? 5.0 * 0.5 / sqrt((double)R->n) : 0.5;
    fprintf(o, "<h2>Randomness: bit bias</h2>\n<p>Share of ones per decoded bit position "
            "over %zu IDs (ideal 0.5, the middle line; grey: constant bits; red: biased beyond 5 sigma).</p>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"920\" height=\"220\" role=\"img\" aria-label=\"bit bias\">\n"
            "<line x1=\"10\" y1=\"110\" x2=\"910\" y2=\"110\" stroke=\"#888\"/>\n", R->n);
    for (size_t b = 0; b < nb; b++) {
        double p = R->bit_ones[b], y = 210 - p * 200;
        bool constant = p == 0.0 || p == 1.0;
        fprintf(o, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/>\n",
                10 + b * w, p >= 0.5 ? y : 110, w > 1.5 ? w - 0.5 : w, p >= 0.5 ? 110 - y : y - 110,
                constant ? "#bbb" : fabs(p - 0.5) > lim ? "#c33" : "#36c");
    }
    fprintf(o, "</svg>\n");
    size_t np = R->npos;
    double cw = np ? 900.0 / (double)np : 1;
    unsigned top = 1;
    for (size_t i = 0; i < np; i++)
        if (R->pos_max[i] > top)
            top = R->pos_max[i];
    double exp = R->alphabet_size ? (double)R->n / R->alphabet_size : 0;
    fprintf(o, "<h2>Randomness: symbols per position</h2>\n<p>Per character position: the "
            "count of the most (dark) and least (light) frequent symbol of the %s alphabet; "
            "the line is the uniform expectation (%.1f).</p>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"920\" height=\"220\" role=\"img\" aria-label=\"symbols per position\">\n",
            R->alphabet_name ? R->alphabet_name : "", exp);
    for (size_t i = 0; i < np; i++) {
        double hmax = 200.0 * R->pos_max[i] / top, hmin = 200.0 * R->pos_min[i] / top;
        fprintf(o, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#36c\"/>"
                "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#9bd\"/>\n",
                10 + i * cw, 210 - hmax, cw * 0.45, hmax, 10 + i * cw + cw * 0.45, 210 - hmin,
                cw * 0.45, hmin);
    }
    double ey = 210 - 200.0 * exp / top;
    fprintf(o, "<line x1=\"10\" y1=\"%.1f\" x2=\"910\" y2=\"%.1f\" stroke=\"#c33\" "
            "stroke-dasharray=\"4 3\"/>\n</svg>\n", ey, ey);
}

static void html(const audit_ctx *a, FILE *o)
{
    counts c = count(a);
    const audit_finding *fail[AUDIT_FINDINGS_MAX];
    size_t nf = order(a, fail);
    char refs[256];
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'; img-src data:\">\n<title>sessctl audit</title>\n<style>"
          "body{font:15px/1.45 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
          "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 6px;"
          "vertical-align:top;text-align:left}.critical{background:#f8d0d0}.high{background:#fde0d0}"
          ".medium{background:#fff0c8}.low{background:#eef5ff}.info{background:#f4f4f4}"
          "code{word-break:break-all}td:nth-child(2) code{white-space:nowrap;word-break:normal}</style></head><body>\n", o);
    fputs("<h1>Session audit of <code>", o);
    h_esc(o, a->target);
    fprintf(o, "</code></h1>\n%s<p>%zu checks: <strong>%zu passed</strong>, <strong>%zu failed"
            "</strong> (%zu critical), %zu not applicable, %zu not tested; %u requests.</p>\n",
            audit_interrupted ? "<p><strong>Interrupted: partial results.</strong></p>\n" : "",
            c.total, c.passed, c.failed, c.critical, c.na, c.not_tested, a->requests);
    if (a->notes[0]) {
        fputs("<p>Notes: ", o);
        h_esc(o, a->notes);
        fputs("</p>\n", o);
    }
    fputs("<h2>Findings</h2>\n<table><tr><th>severity</th><th>check</th><th>evidence</th>"
          "<th>fix</th><th>refs</th></tr>\n", o);
    for (size_t i = 0; i < nf; i++) {
        const audit_finding *f = fail[i];
        refs_text(f->def, refs, sizeof refs);
        fprintf(o, "<tr class=\"%s\"><td>%s</td><td><code>%s</code><br>", audit_severity_name(f->severity),
                audit_severity_name(f->severity), f->def->id);
        h_esc(o, f->def->title);
        fputs("</td><td>", o);
        h_esc(o, f->evidence);
        fputs("</td><td>", o);
        h_esc(o, f->def->fix);
        fputs("</td><td>", o);
        h_esc(o, refs);
        fputs("</td></tr>\n", o);
    }
    if (nf == 0)
        fputs("<tr><td colspan=\"5\">No check failed.</td></tr>\n", o);
    fputs("</table>\n<h2>All checks</h2>\n<table><tr><th>status</th><th>check</th><th>evidence</th></tr>\n", o);
    for (size_t i = 0; i < a->nfindings; i++) {
        const audit_finding *f = &a->findings[i];
        fprintf(o, "<tr><td>%s</td><td><code>%s</code></td><td>", audit_status_name(f->status),
                f->def->id);
        h_esc(o, f->evidence);
        fputs("</td></tr>\n", o);
    }
    fputs("</table>\n", o);
    if (a->have_rnd && !a->rnd.self_contained)
        html_charts(o, &a->rnd);
    fprintf(o, "<p><small>sessctl %s; docs/audit.md describes every check.</small></p>\n"
            "</body></html>\n", sess_version());
}

int audit_report_print(const audit_ctx *a, const char *format, FILE *o)
{
    if (!strcmp(format, "text")) {
        text(a, o);
        return 0;
    }
    if (!strcmp(format, "html")) {
        html(a, o);
        return 0;
    }
    json_t *doc = !strcmp(format, "sarif") ? sarif(a) : report_json(a);
    if (!doc) {
        fprintf(stderr, "sessctl audit: cannot build the %s report\n", format);
        return -1;
    }
    json_dumpf(doc, o, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    fputc('\n', o);
    json_decref(doc);
    return 0;
}
