/*
 * error.c - descriptions and names of result codes, generated from the
 * single table in sess/error.h, and the sess__fail() helper.
 */
#include <stdarg.h>
#include <stdio.h>

#include "sess/error.h"
#include "util.h"

const char *sess_strerror(int code)
{
    switch (code) {
#define SESS__TEXT(name, value, text) case value: return text;
        SESS_RESULT_TABLE(SESS__TEXT)
#undef SESS__TEXT
    }
    return "unknown result code";
}

const char *sess_result_name(int code)
{
    switch (code) {
#define SESS__NAME(name, value, text) case value: return #name;
        SESS_RESULT_TABLE(SESS__NAME)
#undef SESS__NAME
    }
    return "UNKNOWN";
}

int sess__fail(sess_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
