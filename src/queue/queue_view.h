/*
 * queue_view.h - a queued message as operators see it: state and JSON
 *                (the HTTP API and mtactl; docs/web-ui.md has the fields)
 *
 * Owns:     nothing; the caller takes the json_t returned (json_decref).
 * Lifetime: stateless; m is borrowed.
 * Errors:   NULL when out of memory.
 * Context:  any thread that may read m.
 */
#ifndef MTAD_QUEUE_VIEW_H
#define MTAD_QUEUE_VIEW_H

#include <stdint.h>

#include <jansson.h>

struct queue_msg;

#define QUEUE_VIEW_LIST_RCPTS 3       /* recipients shown per row of /api/queue */

/* A message's state as the UI names it. */
enum queue_view_state {
	QUEUE_VIEW_ANY = 0,
	QUEUE_VIEW_ACTIVE,     /* waiting for its first attempt or being delivered */
	QUEUE_VIEW_DEFERRED,   /* at least one recipient failed temporarily */
	QUEUE_VIEW_HELD,       /* put on hold by the operator */
};

/* queue_view_state_name - "active", "deferred", "held" ("any" for QUEUE_VIEW_ANY) */
const char *queue_view_state_name(enum queue_view_state st);
/* queue_view_state - held, else deferred (a pending recipient failed once), else active */
enum queue_view_state queue_view_state(const struct queue_msg *m);

/* queue_view_summary - one row of /api/queue; now_us (wall clock) gives "age" */
json_t *queue_view_summary(const struct queue_msg *m, uint64_t now_us);
/* queue_view_detail - /api/queue/ID without "headers": client, flags, every recipient */
json_t *queue_view_detail(const struct queue_msg *m, uint64_t now_us);

#define QUEUE_HIST_JSON_MAX 2000      /* attempts in one "history" array at most */

/*
 * queue_hist_json - the "history" array of /api/queue/ID and mtactl show
 * from the open file fd (borrowed) of m: per recipient its first attempt
 * and the last QUEUE_HIST_SHOW_LAST, in time order, at most
 * QUEUE_HIST_JSON_MAX; *omitted gets the number of attempts left out.
 * NULL when out of memory or the file cannot be read.
 */
json_t *queue_hist_json(int fd, const struct queue_msg *m, uint64_t *omitted);

#endif
