/*
 * queue_index.c - queue ids, entries, and the in-memory index of queued
 *                 messages (by id, and in arrival order) with the counters
 *
 * Owns:     struct queue_ent allocation; the index fields of struct queue
 *           (index, head/tail, nloaded).
 * Lifetime: an entry from queue_index_ent_new() to queue_index_ent_free(); in the index
 *           from queue_index_insert() to queue_index_unlink().
 * Errors:   allocation failures return NULL or -1; an entry missing from
 *           the index is a bug: panic.
 * Context:  event-loop thread.
 *
 * Index: the loaded messages (the window, queue_window.c) by id in a
 * lib/map.c table, and a doubly linked list in commit order for
 * queue_foreach(). The counters of every queued message (loaded or
 * parked) are kept by queue.c, queue_file.c and queue_window.c.
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "lib/log.h"
#include "lib/map.h"

#include <stdlib.h>

/* queue_index_ent_new - an empty entry (NULL when out of memory) */
struct queue_ent *
queue_index_ent_new(void)
{
	return calloc(1, sizeof(struct queue_ent));
}

/* queue_index_ent_free - free an entry and its strings (not its sched state); returns NULL */
struct queue_ent *
queue_index_ent_free(struct queue_ent *e)
{
	if (e == NULL)
		return NULL;
	queue_rec_msg_free_fields(&e->m);
	free(e);
	return NULL;
}

/* queue_index_id_key - "0123456789ABCDEF" as a number; 0 if not a queue id */
uint64_t
queue_index_id_key(const char *id)
{
	uint64_t k = 0;

	if (id == NULL)
		return 0;
	for (int i = 0; i < QUEUE_ID_LEN; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c >= '0' && c <= '9')
			k = k << 4 | (uint64_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			k = k << 4 | (uint64_t)(c - 'A' + 10);
		else
			return 0;
	}
	return id[QUEUE_ID_LEN] == '\0' ? k : 0;
}

/* queue_index_id_format - the 16 upper-case hex digits of key, NUL-terminated */
void
queue_index_id_format(uint64_t key, char *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (int i = QUEUE_ID_LEN - 1; i >= 0; i--) {
		out[i] = hex[key & 0xf];
		key >>= 4;
	}
	out[QUEUE_ID_LEN] = '\0';
}

/* queue_index_find - the loaded entry of key, or NULL */
struct queue_ent *
queue_index_find(const struct queue *q, uint64_t key)
{
	char id[QUEUE_ID_SIZE];

	if (key == 0)
		return NULL;
	queue_index_id_format(key, id);
	return map_get(q->index, id);
}

/* queue_index_link - index it by id, and put it in the arrival list after `after` (NULL: at the head) */
static int
queue_index_link(struct queue *q, struct queue_ent *e, struct queue_ent *after)
{
	if (map_put(q->index, e->m.id, e) < 0)
		return -1;
	e->prev = after;
	e->next = after != NULL ? after->next : q->head;
	if (e->next != NULL)
		e->next->prev = e;
	else
		q->tail = e;
	if (after != NULL)
		after->next = e;
	else
		q->head = e;
	q->nloaded++;
	return 0;
}

/* queue_index_insert - add a loaded message: index, arrival list (at the end); -1 out of memory */
int
queue_index_insert(struct queue *q, struct queue_ent *e)
{
	return queue_index_link(q, e, q->tail);
}

/*
 * queue_index_insert_recovered - while a recovery runs in slices, mail
 * committed since its start is at the tail; recovered messages (all
 * older, recovered in id order) go after the last recovered one, so the
 * arrival list stays in id order.
 */
int
queue_index_insert_recovered(struct queue *q, struct queue_ent *e)
{
	if (!q->recovering)
		return queue_index_insert(q, e);
	if (queue_index_link(q, e, q->recover_anchor) < 0)
		return -1;
	q->recover_anchor = e;
	return 0;
}

/* queue_index_unlink - take a message out of memory's index (the counters are the caller's) */
void
queue_index_unlink(struct queue *q, struct queue_ent *e)
{
	if (map_del(q->index, e->m.id) != e)
		panic("%s: queue entry not in the index", e->m.id);
	if (q->recover_anchor == e)
		q->recover_anchor = e->prev;    /* recovered too, or NULL: the head */
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		q->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		q->tail = e->prev;
	e->prev = e->next = NULL;
	q->nloaded--;
	queue_window_room_freed(q);
}
