/*
 * sched_map.h - a string-keyed hash table (private to src/sched/)
 *
 * Owns:     its buckets and a copy of every key; values are borrowed.
 * Lifetime: sched_map_new() to sched_map_free().
 * Errors:   sched_map_new()/sched_map_put() return NULL/-1 when out of memory.
 * Context:  event-loop thread.
 *
 * Destinations and the DNS cache are looked up by name on every dispatch.
 */
#ifndef MTAD_SCHED_MAP_H
#define MTAD_SCHED_MAP_H

#include <stddef.h>

struct sched_map;

struct sched_map *sched_map_new(void);
/* sched_map_free - free the table and keys (not the values); returns NULL */
struct sched_map *sched_map_free(struct sched_map *m);
void *sched_map_get(const struct sched_map *m, const char *key);
/* sched_map_put - add key (copied) -> val; the key must not be present; 0 or -1 */
int sched_map_put(struct sched_map *m, const char *key, void *val);
/* sched_map_del - remove key; returns its value or NULL */
void *sched_map_del(struct sched_map *m, const char *key);
size_t sched_map_count(const struct sched_map *m);
/* sched_map_sweep - cb(arg, val) for every entry; entries for which it returns 1 are removed */
void sched_map_sweep(struct sched_map *m, int (*cb)(void *arg, void *val), void *arg);

#endif
