/*
 * audit_html.c - form and link extraction for sessctl audit, on libxml2's
 * HTML parser (htmlReadMemory): the login form's action, method and
 * inputs (hidden CSRF fields are carried over), and every href/src/action
 * so IDs in URLs can be spotted.  Bounded by the fixed arrays in audit.h;
 * network access and entity loading are off (XXE-style loads are an attack
 * on the auditor itself).
 */
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "audit.h"

static void copy_attr(xmlNode *n, const char *attr, char *dst, size_t cap)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)attr);
    dst[0] = '\0';
    if (v) {
        snprintf(dst, cap, "%s", (const char *)v);
        xmlFree(v);
    }
}

static void add_link(audit_html *out, xmlNode *n, const char *attr)
{
    if (out->nlinks >= AUDIT_LINKS_MAX)
        return;
    char buf[512];
    copy_attr(n, attr, buf, sizeof buf);
    if (buf[0])
        snprintf(out->links[out->nlinks++], sizeof out->links[0], "%s", buf);
}

/* Iterative walk (no recursion: a deeply nested page is a stack attack). */
static void walk(xmlNode *root, audit_html *out)
{
    xmlNode *n = root;
    audit_form *form = NULL;
    xmlNode *form_node = NULL;
    size_t steps = 0;

    while (n && steps++ < 1000000) {
        if (n->type == XML_ELEMENT_NODE) {
            const char *name = (const char *)n->name;
            if (!strcasecmp(name, "form") && out->nforms < 8) {
                form = &out->forms[out->nforms++];
                memset(form, 0, sizeof *form);
                form_node = n;
                copy_attr(n, "action", form->action, sizeof form->action);
                copy_attr(n, "method", form->method, sizeof form->method);
                if (!form->method[0])
                    snprintf(form->method, sizeof form->method, "get");
                add_link(out, n, "action");
            } else if ((!strcasecmp(name, "input") || !strcasecmp(name, "textarea") ||
                        !strcasecmp(name, "button")) &&
                       form && form->nfields < AUDIT_FIELDS_MAX) {
                audit_field *f = &form->fields[form->nfields];
                copy_attr(n, "name", f->name, sizeof f->name);
                copy_attr(n, "value", f->value, sizeof f->value);
                copy_attr(n, "type", f->type, sizeof f->type);
                if (!f->type[0])
                    snprintf(f->type, sizeof f->type, "text");
                if (!strcasecmp(f->type, "password"))
                    form->has_password = true;
                if (f->name[0])
                    form->nfields++;
            } else if (!strcasecmp(name, "a") || !strcasecmp(name, "link") ||
                       !strcasecmp(name, "area")) {
                add_link(out, n, "href");
            } else if (!strcasecmp(name, "meta") && !out->meta_csrf[0]) {
                /* The token a page's script sends in a header (Rails,
                 * Laravel, Django and the demo shop all name it so). */
                char mname[64];
                copy_attr(n, "name", mname, sizeof mname);
                if (!strcasecmp(mname, "csrf-token") || !strcasecmp(mname, "csrf_token") ||
                    !strcasecmp(mname, "_csrf") || !strcasecmp(mname, "x-csrf-token"))
                    copy_attr(n, "content", out->meta_csrf, sizeof out->meta_csrf);
            } else if (!strcasecmp(name, "img") || !strcasecmp(name, "script") ||
                       !strcasecmp(name, "iframe")) {
                add_link(out, n, "src");
            }
        }
        /* next node in document order */
        if (n->children) {
            n = n->children;
            continue;
        }
        while (n && !n->next) {
            n = n->parent;
            if (n == form_node)
                form = NULL, form_node = NULL;
        }
        if (n) {
            if (n == form_node)
                form = NULL, form_node = NULL;
            n = n->next;
        }
    }
}

void audit_html_extract(const char *body, size_t len, audit_html *out)
{
    memset(out, 0, sizeof *out);
    if (!body || len == 0 || len > 4 * 1024 * 1024)
        return;
    htmlDocPtr doc = htmlReadMemory(body, (int)len, NULL, NULL,
                                    HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                        HTML_PARSE_NONET | HTML_PARSE_RECOVER);
    if (!doc)
        return;
    walk(xmlDocGetRootElement(doc), out);
    xmlFreeDoc(doc);
}
