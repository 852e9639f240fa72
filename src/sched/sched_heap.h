/*
 * sched_heap.h - a binary min-heap of wake-up times (private to src/sched/)
 *
 * Owns:     the array of node pointers; the nodes belong to the caller
 *           (embedded in its structs, found again with offsetof).
 * Lifetime: sched_heap_init() to sched_heap_clear().
 * Errors:   sched_heap_push() returns -1 when the array cannot grow.
 * Context:  event-loop thread.
 *
 * One heap of every message waiting for a time keeps the scheduler at one
 * timer however many messages wait: O(log n) to add, remove or re-key.
 */
#ifndef MTAD_SCHED_HEAP_H
#define MTAD_SCHED_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define SCHED_HEAP_NONE ((size_t)-1)

struct sched_heap_node {
	uint64_t key;        /* wake-up time, microseconds */
	uint64_t seq;        /* tie-break: first in, first out among equal keys */
	size_t   idx;        /* position in the heap, SCHED_HEAP_NONE when not in it */
};

struct sched_heap {
	struct sched_heap_node **v;
	size_t n, cap;
	uint64_t seq;
};

void sched_heap_init(struct sched_heap *h);
void sched_heap_clear(struct sched_heap *h);
/* sched_heap_node_init - mark a node as outside any heap */
void sched_heap_node_init(struct sched_heap_node *x);
/* sched_heap_push - insert x (not in a heap) with key; 0 or -1 (out of memory) */
int sched_heap_push(struct sched_heap *h, struct sched_heap_node *x, uint64_t key);
/* sched_heap_top - the smallest key's node, NULL when empty */
struct sched_heap_node *sched_heap_top(const struct sched_heap *h);
/* sched_heap_remove - take x out (no-op when it is not in the heap) */
void sched_heap_remove(struct sched_heap *h, struct sched_heap_node *x);
/* sched_heap_update - change x's key (x must be in the heap) */
void sched_heap_update(struct sched_heap *h, struct sched_heap_node *x, uint64_t key);

#endif
