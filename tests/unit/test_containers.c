/*
 * test_containers.c - unit tests for the containers of src/lib/: the
 * binary min-heap (heap.c) and the string-keyed hash table (map.c)
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   a failing check prints "got X, want Y" and fails its test.
 * Context:  no I/O, no clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/heap.h"
#include "lib/map.h"
#include "lib/util.h"

struct item {
	struct heap_node hn;
	int id;
};

/* heap_check - the heap property and the back pointers */
static void
heap_check(const struct heap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		assert_int_equal(h->v[i]->idx, i);
		if (i > 0) {
			const struct heap_node *p = h->v[(i - 1) / 2];
			assert_true(p->key < h->v[i]->key ||
			    (p->key == h->v[i]->key && p->seq < h->v[i]->seq));
		}
	}
}

static void
test_heap(void **state)
{
	enum { N = 2000 };
	struct item *it = calloc(N, sizeof(*it));
	struct heap h;
	uint64_t last = 0;
	unsigned seed = 12345;
	size_t popped = 0;

	(void)state;
	assert_non_null(it);
	heap_init(&h);
	assert_null(heap_top(&h));
	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		heap_node_init(&it[i].hn);
		it[i].id = i;
		assert_int_equal(heap_push(&h, &it[i].hn, (seed >> 8) % 500), 0);
	}
	heap_check(&h);
	/* re-key a third, remove a tenth */
	for (int i = 0; i < N; i += 3)
		heap_update(&h, &it[i].hn, (uint64_t)(i % 97));
	heap_check(&h);
	for (int i = 0; i < N; i += 10) {
		heap_remove(&h, &it[i].hn);
		assert_int_equal(it[i].hn.idx, HEAP_NONE);
		heap_remove(&h, &it[i].hn);   /* twice: a no-op */
	}
	heap_check(&h);
	assert_int_equal(h.n, N - N / 10);
	/* pops come out in key order, FIFO among equal keys */
	{
		uint64_t last_seq = 0;
		while (heap_top(&h) != NULL) {
			struct heap_node *t = heap_top(&h);
			if (popped > 0) {
				if (t->key < last)
					fail_msg("heap pop %zu: got key %llu after %llu", popped,
					    (unsigned long long)t->key, (unsigned long long)last);
				if (t->key == last && t->seq < last_seq)
					fail_msg("heap pop %zu: FIFO broken among equal keys", popped);
			}
			last = t->key;
			last_seq = t->seq;
			heap_remove(&h, t);
			popped++;
		}
	}
	assert_int_equal(popped, N - N / 10);
	heap_clear(&h);
	free(it);
}

static int
sweep_odd(void *arg, void *val)
{
	int *count = arg;
	long v = (long)(intptr_t)val;

	(*count)++;
	return v % 2 == 1;
}

static void
test_map(void **state)
{
	struct map *m = map_new();
	char key[32];
	int visited = 0;

	(void)state;
	assert_non_null(m);
	assert_null(map_get(m, "none"));
	for (long i = 0; i < 5000; i++) {
		assert_true(util_bsnprintf(key, sizeof(key), "m|d%ld.test|25|0", i) > 0);
		assert_int_equal(map_put(m, key, (void *)(intptr_t)i), 0);
	}
	assert_int_equal(map_count(m), 5000);
	for (long i = 0; i < 5000; i += 7) {
		assert_true(util_bsnprintf(key, sizeof(key), "m|d%ld.test|25|0", i) > 0);
		if (map_get(m, key) != (void *)(intptr_t)i)
			fail_msg("map get %s: got %p, want %ld", key, map_get(m, key), i);
	}
	assert_ptr_equal(map_del(m, "m|d10.test|25|0"), (void *)(intptr_t)10);
	assert_null(map_del(m, "m|d10.test|25|0"));
	assert_null(map_get(m, "m|d10.test|25|0"));
	assert_int_equal(map_count(m), 4999);
	map_sweep(m, sweep_odd, &visited);
	assert_int_equal(visited, 4999);
	assert_int_equal(map_count(m), 2499);   /* evens 0..4998 without 10 */
	assert_null(map_get(m, "m|d11.test|25|0"));
	assert_ptr_equal(map_get(m, "m|d12.test|25|0"), (void *)(intptr_t)12);
	map_free(m);
	assert_null(map_free(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heap),
		cmocka_unit_test(test_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
