/*
 * sched_dnsc.h - a short-lived cache in front of src/dns/ (private to src/sched/)
 *
 * Owns:     the cache entries (reference-counted answers) and the DNS
 *           queries they have in flight; waiters are the caller's, embedded
 *           in its structs.
 * Lifetime: sched_dnsc_new() to sched_dnsc_free(). An entry lives while the
 *           cache or a holder references it. A waiter is registered from
 *           sched_dnsc_lookup() until its callback runs or it is cancelled.
 * Errors:   a query that cannot start is answered DNS_TEMPFAIL at once.
 * Context:  event-loop thread; callbacks run from the DNS component's
 *           events, never from inside sched_dnsc_lookup().
 *
 * A burst of mail to one domain makes one MX and one address look-up: the
 * first asker starts the query, the others wait on the same entry, and a
 * final answer is kept SCHED_DNSC_TTL seconds (temporary failures are not
 * kept, so the next attempt asks again).
 */
#ifndef MTAD_SCHED_DNSC_H
#define MTAD_SCHED_DNSC_H

#include "dns/dns.h"

#include <stddef.h>
#include <stdint.h>

#define SCHED_DNSC_TTL 60

enum sched_dnsc_type {
	SCHED_DNSC_MX = 0,
	SCHED_DNSC_ADDR,
};

struct sched_dnsc;
struct sched_dnsc_ent;

/* An answer; read-only for holders. */
struct sched_dnsc_ans {
	enum dns_status st;
	size_t n;
	const struct dns_mx *mx;                /* MX: n hosts in preference order */
	const struct sockaddr_storage *addrs;   /* ADDR: n addresses, port 0 */
};

typedef void sched_dnsc_cb(void *arg, struct sched_dnsc_ent *e);

struct sched_dnsc_wait {
	struct sched_dnsc_wait *next, *prev;
	struct sched_dnsc_ent *e;   /* NULL when not waiting */
	sched_dnsc_cb *cb;
	void *arg;
};

struct sched_dnsc *sched_dnsc_new(struct dns *d);
/* sched_dnsc_free - cancel queries and drop the cache; holders must have let go */
struct sched_dnsc *sched_dnsc_free(struct sched_dnsc *c);
/* sched_dnsc_set_dns - use another resolver from now on (SIGHUP); pending queries are re-sent; 0 or -1 */
int sched_dnsc_set_dns(struct sched_dnsc *c, struct dns *d);

/*
 * sched_dnsc_lookup - a cached answer (returned with a reference for the
 * caller), or NULL after registering w: cb(arg, e) runs later with a
 * reference for the callee. Never NULL without registering w.
 */
struct sched_dnsc_ent *sched_dnsc_lookup(struct sched_dnsc *c, enum sched_dnsc_type type,
    const char *name, struct sched_dnsc_wait *w, sched_dnsc_cb *cb, void *arg);
/* sched_dnsc_cancel - stop waiting (no-op when w is not waiting) */
void sched_dnsc_cancel(struct sched_dnsc_wait *w);
/* sched_dnsc_answer - the entry's answer */
void sched_dnsc_answer(const struct sched_dnsc_ent *e, struct sched_dnsc_ans *out);
/* sched_dnsc_unref - drop a holder's reference; returns NULL */
struct sched_dnsc_ent *sched_dnsc_unref(struct sched_dnsc_ent *e);

#endif
