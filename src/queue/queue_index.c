/*
 * queue_index.c - queue ids, entries, and the in-memory index of queued
 *                 messages (by id, and in arrival order) with the counters
 *
 * Owns:     struct queue_ent allocation; the index fields of struct queue
 *           (bucket, head/tail, count, bytes).
 * Lifetime: an entry from queue_index_ent_new() to queue_index_ent_free(); in the index
 *           from queue_index_insert() to queue_index_unlink().
 * Errors:   allocation failures return NULL (a failed grow only makes the
 *           chains longer); an entry missing from the index is a bug: panic.
 * Context:  event-loop thread.
 *
 * Index: a chained hash table keyed by the queue id read as a 64-bit
 * number (O(1) look-up; it doubles as the queue grows), and a doubly
 * linked list in commit order for queue_foreach().
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "lib/log.h"

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

/* queue_hash - spread the time-ordered ids over the buckets */
size_t
queue_index_hash(const struct queue *q, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	key *= 0xc4ceb9fe1a85ec53ULL;
	key ^= key >> 33;
	return (size_t)key & (q->nbucket - 1);
}

/* queue_index_grow - double the buckets; on allocation failure chains just get longer */
static void
queue_index_grow(struct queue *q)
{
	size_t n = q->nbucket * 2, old = q->nbucket;
	struct queue_ent **nb = calloc(n, sizeof(*nb)), **ob = q->bucket;

	if (nb == NULL)
		return;
	q->bucket = nb;
	q->nbucket = n;
	for (size_t i = 0; i < old; i++) {
		struct queue_ent *e, *next;

		for (e = ob[i]; e != NULL; e = next) {
			size_t h = queue_index_hash(q, e->key);

			next = e->hnext;
			e->hnext = nb[h];
			nb[h] = e;
		}
	}
	free(ob);
}

/* queue_index_link - hash it, and put it in the arrival list after `after` (NULL: at the head) */
static void
queue_index_link(struct queue *q, struct queue_ent *e, struct queue_ent *after)
{
	size_t h;

	if (q->count >= q->nbucket)
		queue_index_grow(q);
	h = queue_index_hash(q, e->key);
	e->hnext = q->bucket[h];
	q->bucket[h] = e;
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
	q->count++;
	q->bytes += e->m.size;
}

/* queue_index_insert - add a durable message: hash, arrival list (at the end), counters */
void
queue_index_insert(struct queue *q, struct queue_ent *e)
{
	queue_index_link(q, e, q->tail);
}

/*
 * queue_index_insert_recovered - while a recovery runs in slices, mail
 * committed since its start is at the tail; recovered messages (all
 * older, recovered in id order) go after the last recovered one, so the
 * arrival list stays in id order.
 */
void
queue_index_insert_recovered(struct queue *q, struct queue_ent *e)
{
	if (!q->recovering) {
		queue_index_insert(q, e);
		return;
	}
	queue_index_link(q, e, q->recover_anchor);
	q->recover_anchor = e;
}

/* queue_index_unlink - take a message out of the index and the counters */
void
queue_index_unlink(struct queue *q, struct queue_ent *e)
{
	struct queue_ent **pp = &q->bucket[queue_index_hash(q, e->key)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == NULL)
		panic("%s: queue entry not in the index", e->m.id);
	*pp = e->hnext;
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
	e->prev = e->next = e->hnext = NULL;
	q->count--;
	q->bytes -= e->m.size;
}
