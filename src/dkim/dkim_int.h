/*
 * dkim_int.h - the key table's entries (private to src/dkim/)
 *
 * Owns:     declares struct dkim_key and struct dkim_keys.
 * Lifetime: entries live as long as their struct dkim_keys.
 * Errors:   see the functions.
 * Context:  event-loop thread.
 */
#ifndef MTAD_DKIM_INT_H
#define MTAD_DKIM_INT_H

#include "dkim/dkim.h"

struct evp_pkey_st;

struct dkim_key {
	char     domain[DKIM_DOMAIN_MAX + 1];   /* lower case */
	char     selector[DKIM_SELECTOR_MAX + 1];
	struct evp_pkey_st *pkey;
	int      ed25519;                       /* else RSA */
};

struct dkim_keys {
	unsigned refs;
	size_t   n;
	struct dkim_key *k;                     /* in table order */
};

unsigned dkim_keys_find(const struct dkim_keys *k, const char *domain,
    const struct dkim_key **out, unsigned max);
int dkim_keys_public(const struct dkim_key *e, char *out, size_t size);

#endif
