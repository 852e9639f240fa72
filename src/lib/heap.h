/*
 * heap.h - a binary min-heap of nodes keyed by a 64-bit number (a container
 *          of lib/: no mail knowledge)
 *
 * Owns:     the array of node pointers; the nodes belong to the caller
 *           (embedded in its structs, found again with offsetof).
 * Lifetime: heap_init() to heap_clear().
 * Errors:   heap_push() returns -1 when the array cannot grow.
 * Context:  event-loop thread.
 *
 * The scheduler keys its waiting messages by wake-up time: one heap keeps it
 * at one timer however many messages wait, O(log n) to add, remove or re-key.
 */
#ifndef MTAD_LIB_HEAP_H
#define MTAD_LIB_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE ((size_t)-1)

struct heap_node {
	uint64_t key;        /* the order (the scheduler: wake-up time, microseconds) */
	uint64_t seq;        /* tie-break: first in, first out among equal keys */
	size_t   idx;        /* position in the heap, HEAP_NONE when not in it */
};

struct heap {
	struct heap_node **v;
	size_t n, cap;
	uint64_t seq;
};

void heap_init(struct heap *h);
void heap_clear(struct heap *h);
/* heap_node_init - mark a node as outside any heap */
void heap_node_init(struct heap_node *x);
/* heap_push - insert x (not in a heap) with key; 0 or -1 (out of memory) */
int heap_push(struct heap *h, struct heap_node *x, uint64_t key);
/* heap_top - the smallest key's node, NULL when empty */
struct heap_node *heap_top(const struct heap *h);
/* heap_remove - take x out (no-op when it is not in the heap) */
void heap_remove(struct heap *h, struct heap_node *x);
/* heap_update - change x's key (x must be in the heap) */
void heap_update(struct heap *h, struct heap_node *x, uint64_t key);

#endif
