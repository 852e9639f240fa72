/*
 * sched_heap.c - a binary min-heap of wake-up times
 *
 * Owns:     the pointer array.
 * Lifetime: sched_heap_init() to sched_heap_clear().
 * Errors:   allocation failure on push returns -1, the heap unchanged.
 * Context:  event-loop thread.
 */
#include "sched/sched_heap.h"

#include <stdlib.h>

/* heap_less - key order, then insertion order */
static int
heap_less(const struct sched_heap_node *a, const struct sched_heap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void
heap_set(struct sched_heap *h, size_t i, struct sched_heap_node *x)
{
	h->v[i] = x;
	x->idx = i;
}

/* heap_up - move the node at i towards the root while it is smaller than its parent */
static void
heap_up(struct sched_heap *h, size_t i)
{
	struct sched_heap_node *x = h->v[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_less(x, h->v[p]))
			break;
		heap_set(h, i, h->v[p]);
		i = p;
	}
	heap_set(h, i, x);
}

/* heap_down - move the node at i towards the leaves while a child is smaller */
static void
heap_down(struct sched_heap *h, size_t i)
{
	struct sched_heap_node *x = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && heap_less(h->v[c + 1], h->v[c]))
			c++;
		if (!heap_less(h->v[c], x))
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, x);
}

void
sched_heap_init(struct sched_heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->seq = 0;
}

/* sched_heap_clear - free the array; nodes still in it are marked outside */
void
sched_heap_clear(struct sched_heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->idx = SCHED_HEAP_NONE;
	free(h->v);
	sched_heap_init(h);
}

void
sched_heap_node_init(struct sched_heap_node *x)
{
	x->key = 0;
	x->seq = 0;
	x->idx = SCHED_HEAP_NONE;
}

/* sched_heap_push - insert; the array doubles when full */
int
sched_heap_push(struct sched_heap *h, struct sched_heap_node *x, uint64_t key)
{
	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 64;
		struct sched_heap_node **nv;

		if (ncap > SIZE_MAX / sizeof(*nv) ||
		    (nv = realloc(h->v, ncap * sizeof(*nv))) == NULL)
			return -1;
		h->v = nv;
		h->cap = ncap;
	}
	x->key = key;
	x->seq = h->seq++;
	heap_set(h, h->n++, x);
	heap_up(h, h->n - 1);
	return 0;
}

struct sched_heap_node *
sched_heap_top(const struct sched_heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

/* sched_heap_remove - the last node fills the hole and is sifted either way */
void
sched_heap_remove(struct sched_heap *h, struct sched_heap_node *x)
{
	struct sched_heap_node *y;
	size_t i = x->idx;

	if (i == SCHED_HEAP_NONE || i >= h->n || h->v[i] != x)
		return;
	x->idx = SCHED_HEAP_NONE;
	h->n--;
	if (i == h->n)
		return;
	y = h->v[h->n];
	heap_set(h, i, y);
	heap_up(h, i);
	heap_down(h, y->idx);
}

/* sched_heap_update - re-key in place */
void
sched_heap_update(struct sched_heap *h, struct sched_heap_node *x, uint64_t key)
{
	if (x->idx == SCHED_HEAP_NONE)
		return;
	x->key = key;
	heap_up(h, x->idx);
	heap_down(h, x->idx);
}
