/*
 * outbox.h - the durable outbox of lifecycle events (docs/observability.md,
 * "Delivery"): an LMDB environment of its own that holds every event, in
 * the order raised, until every webhook has taken it.
 */
#ifndef SESSIOND_OUTBOX_H
#define SESSIOND_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"

#define SESSIOND_OUTBOX_RECORD_MAX 16384   /* bytes of one stored record */
#define SESSIOND_OUTBOX_SINK_ID_LEN 32     /* hex of a sink's cursor name */

typedef struct sessiond_outbox sessiond_outbox;

/*
 * Open (creating, mode 0700) the outbox directory "dir" for at most
 * "max_events" events.  The directory is locked (flock) for this process:
 * a second sessiond on the same outbox would deliver its events twice.
 * 0, or -1 with "err" set.
 */
int sessiond_outbox_open(const char *dir, uint32_t max_events,
                         sessiond_outbox **out, char *err, size_t errlen);
void sessiond_outbox_close(sessiond_outbox *ob);

typedef enum sessiond_outbox_put_rc {
    SESSIOND_OUTBOX_STORED = 0,
    SESSIOND_OUTBOX_FULL = 1,       /* max_events reached, or the map/disk */
    SESSIOND_OUTBOX_ERROR = -1      /* too large, or LMDB failed */
} sessiond_outbox_put_rc;

/* Append one event (its type and webhook body) with the next sequence
 * number, in one committed transaction.  Thread-safe. */
sessiond_outbox_put_rc sessiond_outbox_put(sessiond_outbox *ob, int type,
                                           const char *body, size_t len);

/* The first event after sequence "after": 0 with "*seq" and a malloc'd
 * copy of its record in "*rec"/"*len", 1 when there is none, -1 on error. */
int sessiond_outbox_next(sessiond_outbox *ob, uint64_t after, uint64_t *seq,
                         uint8_t **rec, size_t *len);

/* Sequence number last taken by sink "sink" (0 when it has none yet). */
uint64_t sessiond_outbox_cursor(sessiond_outbox *ob, const char *sink);

/* Sink "sink" has taken everything up to "seq": store that, then delete
 * the events every sink in "sinks" (n of them) has taken.  0 or -1. */
int sessiond_outbox_ack(sessiond_outbox *ob, const char *sink, uint64_t seq,
                        const char *const *sinks, size_t n);

/* Events held now. */
uint64_t sessiond_outbox_count(sessiond_outbox *ob);

/* Flush to disk what the commits left in the page cache (they survive a
 * crash of the process, this covers one of the machine). */
void sessiond_outbox_sync(sessiond_outbox *ob);

/* One stored record, checked.  "body" points into the record. */
typedef struct sessiond_outbox_event {
    int type;                            /* sessiond_event_type */
    char id[SESSIOND_EVENT_ID_LEN + 1];  /* the body's "id" */
    const char *body;
    size_t body_len;
} sessiond_outbox_event;

/*
 * Check a record as read back from the outbox: version byte, type, size,
 * and a body that is a JSON object whose "id" is a 36-character event id
 * and whose "type" names the record's type.  0, or -1 (a damaged record,
 * which is never sent).  Bounded: at most SESSIOND_OUTBOX_RECORD_MAX
 * bytes are looked at.  The parser the fuzz target drives.
 */
int sessiond_outbox_parse(const uint8_t *rec, size_t len,
                          sessiond_outbox_event *ev);

#endif /* SESSIOND_OUTBOX_H */
