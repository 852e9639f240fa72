/*
 * auth_guard.c - failed SMTP AUTH attempts per client address (SPEC §11.3):
 *                AUTH_FAIL_LIMIT failures within AUTH_FAIL_WINDOW seconds
 *                block that address's AUTH for AUTH_BLOCK_TIME seconds
 *                after its last failure
 *
 * Owns:     the table of entries (open addressing, fixed size).
 * Lifetime: auth_guard_new() to auth_guard_free().
 * Errors:   none: a full table replaces its stalest entry, so memory never
 *           grows with the number of attacking addresses.
 * Context:  event-loop thread.
 *
 * Stopped, not slowed: once blocked, even the right password gets 454 until
 * the block ends. Keys are raw address bytes (family + address), so
 * different spellings of one address are one key.
 */
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

#define GUARD_KEY_MAX 17
#define GUARD_PROBE   8

struct guard_ent {
	uint64_t first;              /* the window's first failure (seconds) */
	uint64_t last;               /* the latest failure; 0 = free slot */
	unsigned count;
	unsigned char keylen;
	unsigned char key[GUARD_KEY_MAX];
};

struct auth_guard {
	size_t size;
	struct guard_ent *e;
};

struct auth_guard *
auth_guard_new(size_t max_entries)
{
	struct auth_guard *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->size = max_entries < GUARD_PROBE ? GUARD_PROBE : max_entries;
	if ((g->e = calloc(g->size, sizeof(*g->e))) == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

struct auth_guard *
auth_guard_free(struct auth_guard *g)
{
	if (g != NULL) {
		free(g->e);
		free(g);
	}
	return NULL;
}

static size_t
guard_hash(const void *key, size_t keylen)
{
	const unsigned char *k = key;
	uint64_t h = 1469598103934665603ULL;        /* FNV-1a */

	for (size_t i = 0; i < keylen; i++)
		h = (h ^ k[i]) * 1099511628211ULL;
	return (size_t)h;
}

/* guard_find - the entry of key; create = 1 takes a free, expired or the stalest slot */
static struct guard_ent *
guard_find(struct auth_guard *g, const void *key, size_t keylen, uint64_t now, int create)
{
	size_t h = guard_hash(key, keylen);
	struct guard_ent *victim = NULL;
	int victim_expired = 0;

	if (keylen > GUARD_KEY_MAX)
		keylen = GUARD_KEY_MAX;
	for (size_t i = 0; i < GUARD_PROBE; i++) {
		struct guard_ent *e = &g->e[(h + i) % g->size];
		int expired = e->last == 0 || now >= e->last + AUTH_BLOCK_TIME + AUTH_FAIL_WINDOW;

		if (!expired && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
			return e;
		if (expired) {
			if (!victim_expired) {
				victim = e;
				victim_expired = 1;
			}
		} else if (!victim_expired && (victim == NULL || e->last < victim->last)) {
			victim = e;
		}
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->keylen = (unsigned char)keylen;
	memcpy(victim->key, key, keylen);
	return victim;
}

/* auth_guard_blocked - see auth.h */
int
auth_guard_blocked(struct auth_guard *g, const void *key, size_t keylen, uint64_t now)
{
	struct guard_ent *e = guard_find(g, key, keylen, now, 0);

	return e != NULL && e->count >= AUTH_FAIL_LIMIT && now < e->last + AUTH_BLOCK_TIME;
}

/* auth_guard_fail - see auth.h */
unsigned
auth_guard_fail(struct auth_guard *g, const void *key, size_t keylen, uint64_t now)
{
	struct guard_ent *e = guard_find(g, key, keylen, now, 1);

	if (e->last == 0 || (now >= e->first + AUTH_FAIL_WINDOW &&
	    (e->count < AUTH_FAIL_LIMIT || now >= e->last + AUTH_BLOCK_TIME))) {
		e->first = now;              /* a new window */
		e->count = 0;
	}
	e->count++;
	e->last = now;
	return e->count;
}
