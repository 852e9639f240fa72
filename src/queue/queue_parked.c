/*
 * queue_parked.c - operators' actions on parked messages that must not
 *                  fill the window: hold and release without staying
 *                  loaded, and room in the window before a message is
 *                  loaded to be retried
 *
 * Owns:     nothing: it borrows the window's entries for one call.
 * Lifetime: each call is complete when it returns.
 * Errors:   -1 with errno (ENOENT: the message is not parked now; the
 *           caller acts on it as a loaded one, or it is gone).
 * Context:  event-loop thread (the web API's bulk actions).
 *
 * A bulk action of the API over tens of thousands of parked messages
 * (docs/web-ui.md) must not load them all: a message loaded by
 * queue_lookup() stays in memory until something asks the window for
 * room. queue_parked_set_held() loads one message without handing it to
 * the listener (the scheduler never sees it), appends its held record as
 * queue_set_held() does, and parks it again at once (queue_park(): the
 * file's stamp then says held, or due as its recipients say), so the
 * window holds at most one extra message for the length of the call.
 */
#include "queue/queue_int.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

/* queue_parked_set_held - see queue.h */
int
queue_parked_set_held(struct queue *q, const char *id, int held)
{
	uint64_t key = queue_index_id_key(id);
	struct queue_ent *e;
	struct stat st;
	int verdict, rc = 0, saved = 0;

	held = held ? 1 : 0;
	if (key == 0 || q->limit == 0 || q->recovering || queue_window_busy(q, key) ||
	    fstatat(q->qdirfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
		errno = ENOENT;
		return -1;
	}
	if ((e = queue_window_load_key(q, key, &st, &verdict)) == NULL) {
		if (verdict == QUEUE_LOAD_GONE)
			errno = ENOENT;
		else if (verdict != QUEUE_LOAD_NOMEM)
			errno = EIO;
		return -1;
	}
	if (e->m.held != held) {
		if (queue_set_held(q, &e->m, held) < 0) {
			saved = errno;
			rc = -1;
		} else
			rc = 1;
	}
	if (queue_park(q, &e->m) < 0) {
		/* cannot stamp its file: it stays loaded, the listener takes it on */
		log_warnx("%s: stays in memory after %s", e->m.id, held ? "a hold" : "a release");
		if (q->listener != NULL)
			q->listener(q->listener_arg, &e->m);
	}
	if (rc < 0)
		errno = saved;
	return rc;
}

/* queue_parked_room - see queue.h */
int
queue_parked_room(struct queue *q)
{
	if (q->limit == 0)
		return 1;
	while (q->nloaded >= q->limit)
		if (q->evict == NULL || q->evict(q->evict_arg) != 1)
			return 0;
	return 1;
}
