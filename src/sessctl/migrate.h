/*
 * migrate.h - the store tools of sessctl (migrate.c): export, import,
 * migrate and rekey work on stores directly, by URL, instead of talking to
 * a sessiond, and parse their own options.
 */
#ifndef SESSCTL_MIGRATE_H
#define SESSCTL_MIGRATE_H

#include <stdbool.h>

/* true when "word" names one of the store tools. */
bool sessctl_is_store_tool(const char *word);

/* Run "sessctl TOOL ..." (argv[1] is the tool); returns the exit code. */
int sessctl_store_tool(int argc, char **argv);

#endif /* SESSCTL_MIGRATE_H */
