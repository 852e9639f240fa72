/*
 * map.h - a string-keyed hash table (a container of lib/: no mail knowledge)
 *
 * Owns:     its buckets and a copy of every key; values are borrowed.
 * Lifetime: map_new() to map_free().
 * Errors:   map_new()/map_put() return NULL/-1 when out of memory.
 * Context:  event-loop thread.
 *
 * The scheduler finds its destinations, DNS cache entries, dead and no-TLS
 * marks by name with it, on every dispatch; smtpd counts the sessions of
 * each client address in one.
 */
#ifndef MTAD_LIB_MAP_H
#define MTAD_LIB_MAP_H

#include <stddef.h>

struct map;

struct map *map_new(void);
/* map_free - free the table and keys (not the values); takes NULL, returns NULL */
struct map *map_free(struct map *m);
/* map_free_all - val_free(val) for every value, then map_free(); takes NULL, returns NULL */
struct map *map_free_all(struct map *m, void (*val_free)(void *val));
void *map_get(const struct map *m, const char *key);
/* map_put - add key (copied) -> val; the key must not be present; 0 or -1 */
int map_put(struct map *m, const char *key, void *val);
/* map_del - remove key; returns its value or NULL */
void *map_del(struct map *m, const char *key);
size_t map_count(const struct map *m);
/* map_sweep - cb(arg, val) for every entry; entries for which it returns 1 are removed */
void map_sweep(struct map *m, int (*cb)(void *arg, void *val), void *arg);

#endif
