/*
 * map.c - a string-keyed hash table with chaining (FNV-1a)
 *
 * Owns:     buckets, entries and key copies.
 * Lifetime: map_new() to map_free().
 * Errors:   out of memory returns NULL/-1 and leaves the table as it was.
 * Context:  event-loop thread.
 */
#include "lib/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct map_ent {
	struct map_ent *next;
	uint64_t hash;
	void    *val;
	char     key[];
};

struct map {
	struct map_ent **b;
	size_t nb;           /* a power of two */
	size_t n;
};

/* map_hash - FNV-1a over the key's bytes */
static uint64_t
map_hash(const char *key)
{
	uint64_t h = 14695981039346656037ull;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return h;
}

struct map *
map_new(void)
{
	struct map *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->nb = 64;
	if ((m->b = calloc(m->nb, sizeof(*m->b))) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

struct map *
map_free(struct map *m)
{
	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->nb; i++) {
		struct map_ent *e = m->b[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->b);
	free(m);
	return NULL;
}

struct map *
map_free_all(struct map *m, void (*val_free)(void *val))
{
	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->nb; i++)
		for (struct map_ent *e = m->b[i]; e != NULL; e = e->next)
			val_free(e->val);
	return map_free(m);
}

static struct map_ent **
map_find(const struct map *m, const char *key, uint64_t h)
{
	struct map_ent **pp = &m->b[h & (m->nb - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			return pp;
	return pp;
}

void *
map_get(const struct map *m, const char *key)
{
	struct map_ent **pp = map_find(m, key, map_hash(key));

	return *pp != NULL ? (*pp)->val : NULL;
}

/* map_grow - double the buckets when the load passes 1; failure only costs speed */
static void
map_grow(struct map *m)
{
	size_t nb = m->nb * 2;
	struct map_ent **b;

	if (nb > SIZE_MAX / sizeof(*b) || (b = calloc(nb, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		struct map_ent *e = m->b[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

int
map_put(struct map *m, const char *key, void *val)
{
	size_t klen = strlen(key);
	uint64_t h = map_hash(key);
	struct map_ent *e;

	if ((e = malloc(sizeof(*e) + klen + 1)) == NULL)
		return -1;
	memcpy(e->key, key, klen + 1);
	e->hash = h;
	e->val = val;
	e->next = m->b[h & (m->nb - 1)];
	m->b[h & (m->nb - 1)] = e;
	m->n++;
	if (m->n > m->nb)
		map_grow(m);
	return 0;
}

void *
map_del(struct map *m, const char *key)
{
	struct map_ent **pp = map_find(m, key, map_hash(key)), *e = *pp;
	void *val;

	if (e == NULL)
		return NULL;
	*pp = e->next;
	val = e->val;
	free(e);
	m->n--;
	return val;
}

size_t
map_count(const struct map *m)
{
	return m->n;
}

void
map_sweep(struct map *m, int (*cb)(void *arg, void *val), void *arg)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct map_ent **pp = &m->b[i];
		while (*pp != NULL) {
			struct map_ent *e = *pp;
			if (cb(arg, e->val)) {
				*pp = e->next;
				free(e);
				m->n--;
			} else
				pp = &e->next;
		}
	}
}
