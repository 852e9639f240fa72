/*
 * heap.c - a binary min-heap of nodes keyed by a 64-bit number
 *
 * Owns:     the pointer array.
 * Lifetime: heap_init() to heap_clear().
 * Errors:   allocation failure on push returns -1, the heap unchanged.
 * Context:  event-loop thread.
 */
#include "lib/heap.h"

#include <stdlib.h>

/* heap_less - key order, then insertion order */
static int
heap_less(const struct heap_node *a, const struct heap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void
heap_set(struct heap *h, size_t i, struct heap_node *x)
{
	h->v[i] = x;
	x->idx = i;
}

/* heap_up - move the node at i towards the root while it is smaller than its parent */
static void
heap_up(struct heap *h, size_t i)
{
	struct heap_node *x = h->v[i];

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
heap_down(struct heap *h, size_t i)
{
	struct heap_node *x = h->v[i];

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
heap_init(struct heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->seq = 0;
}

/* heap_clear - free the array; nodes still in it are marked outside */
void
heap_clear(struct heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->idx = HEAP_NONE;
	free(h->v);
	heap_init(h);
}

void
heap_node_init(struct heap_node *x)
{
	x->key = 0;
	x->seq = 0;
	x->idx = HEAP_NONE;
}

/* heap_push - insert; the array doubles when full */
int
heap_push(struct heap *h, struct heap_node *x, uint64_t key)
{
	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 64;
		struct heap_node **nv;

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

struct heap_node *
heap_top(const struct heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

/* heap_remove - the last node fills the hole and is sifted either way */
void
heap_remove(struct heap *h, struct heap_node *x)
{
	struct heap_node *y;
	size_t i = x->idx;

	if (i == HEAP_NONE || i >= h->n || h->v[i] != x)
		return;
	x->idx = HEAP_NONE;
	h->n--;
	if (i == h->n)
		return;
	y = h->v[h->n];
	heap_set(h, i, y);
	heap_up(h, i);
	heap_down(h, y->idx);
}

/* heap_update - re-key in place */
void
heap_update(struct heap *h, struct heap_node *x, uint64_t key)
{
	if (x->idx == HEAP_NONE)
		return;
	x->key = key;
	heap_up(h, x->idx);
	heap_down(h, x->idx);
}
