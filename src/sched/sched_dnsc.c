/*
 * sched_dnsc.c - a short-lived cache in front of src/dns/ with shared queries
 *
 * Owns:     struct sched_dnsc, its map of entries and their queries.
 * Lifetime: see sched_dnsc.h; an entry is freed when its last reference
 *           (the map's or a holder's) goes.
 * Errors:   allocation failures become DNS_TEMPFAIL answers.
 * Context:  event-loop thread.
 */
#include "sched/sched_dnsc.h"
#include "lib/map.h"
#include "lib/log.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

#define DNSC_SWEEP_AT 4096      /* sweep expired entries when the map grows past this */
#define DNSC_KEY_MAX  (256 + 3)

struct sched_dnsc_ent {
	struct sched_dnsc *c;
	int      refs;
	int      in_map;
	int      pending;           /* a query is in flight */
	int      permanent;         /* the static fallback: never freed */
	uint64_t qid;
	enum sched_dnsc_type type;
	char     key[DNSC_KEY_MAX]; /* "M:name" or "A:name" */
	enum dns_status st;
	size_t   n;
	struct dns_mx *mx;
	struct sockaddr_storage *addrs;
	uint64_t expires_us;        /* monotonic */
	struct sched_dnsc_wait *waiters;
};

struct sched_dnsc {
	struct dns *dns;
	struct map *map;
	struct sched_dnsc_ent fail; /* DNS_TEMPFAIL when even that cannot be allocated */
};

static void dnsc_start(struct sched_dnsc_ent *e);

struct sched_dnsc *
sched_dnsc_new(struct dns *d)
{
	struct sched_dnsc *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->map = map_new()) == NULL) {
		free(c);
		return NULL;
	}
	c->dns = d;
	c->fail.c = c;
	c->fail.permanent = 1;
	c->fail.refs = 1;
	c->fail.st = DNS_TEMPFAIL;
	return c;
}

/* dnsc_ent_free - the answer arrays and the entry */
static void
dnsc_ent_free(struct sched_dnsc_ent *e)
{
	free(e->mx);
	free(e->addrs);
	free(e);
}

struct sched_dnsc_ent *
sched_dnsc_unref(struct sched_dnsc_ent *e)
{
	if (e == NULL || e->permanent)
		return NULL;
	if (--e->refs > 0)
		return NULL;
	if (e->pending && e->c != NULL)
		dns_cancel(e->c->dns, e->qid);
	dnsc_ent_free(e);
	return NULL;
}

/* dnsc_drop - sweep callback at free: cancel, detach waiters, drop the map's reference */
static int
dnsc_drop(void *arg, void *val)
{
	struct sched_dnsc_ent *e = val;

	(void)arg;
	while (e->waiters != NULL) {
		struct sched_dnsc_wait *w = e->waiters;
		e->waiters = w->next;
		w->next = w->prev = NULL;
		w->e = NULL;
	}
	if (e->pending) {
		dns_cancel(e->c->dns, e->qid);
		e->pending = 0;
	}
	e->in_map = 0;
	e->c = NULL;
	sched_dnsc_unref(e);
	return 1;
}

struct sched_dnsc *
sched_dnsc_free(struct sched_dnsc *c)
{
	if (c == NULL)
		return NULL;
	map_sweep(c->map, dnsc_drop, NULL);
	map_free(c->map);
	free(c);
	return NULL;
}

/* dnsc_unmap - take e out of the map (it stays alive while held) */
static void
dnsc_unmap(struct sched_dnsc_ent *e)
{
	if (!e->in_map)
		return;
	map_del(e->c->map, e->key);
	e->in_map = 0;
	sched_dnsc_unref(e);
}

/*
 * dnsc_complete - store the answer and run every waiter. Waiters are taken
 * off the list one at a time, so a callback may cancel the others or start
 * new look-ups; the entry is held across the calls.
 */
static void
dnsc_complete(struct sched_dnsc_ent *e)
{
	e->pending = 0;
	e->refs++;
	if (e->st == DNS_TEMPFAIL)
		dnsc_unmap(e);      /* not cached: the next attempt asks again */
	else
		e->expires_us = util_mono_us() + (uint64_t)SCHED_DNSC_TTL * 1000000u;
	while (e->waiters != NULL) {
		struct sched_dnsc_wait *w = e->waiters;
		e->waiters = w->next;
		if (e->waiters != NULL)
			e->waiters->prev = NULL;
		w->next = w->prev = NULL;
		w->e = NULL;
		e->refs++;
		w->cb(w->arg, e);
	}
	sched_dnsc_unref(e);
}

/* dnsc_on_mx - the DNS component's MX answer; copied into the entry */
static void
dnsc_on_mx(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n)
{
	struct sched_dnsc_ent *e = arg;

	e->st = st;
	e->n = 0;
	if (st == DNS_OK && n > 0) {
		if ((e->mx = calloc(n, sizeof(*e->mx))) == NULL) {
			log_warn("dns cache: %s", e->key);
			e->st = DNS_TEMPFAIL;
		} else {
			memcpy(e->mx, mx, n * sizeof(*mx));
			e->n = n;
		}
	} else if (st == DNS_OK)
		e->st = DNS_NODATA;
	log_trace(TRACE_SCHED, "sched: dns %s: status %d, %zu host(s)", e->key, (int)e->st, e->n);
	dnsc_complete(e);
}

/* dnsc_on_addr - the DNS component's address answer; copied into the entry */
static void
dnsc_on_addr(void *arg, enum dns_status st, const struct sockaddr_storage *addrs, size_t n)
{
	struct sched_dnsc_ent *e = arg;

	e->st = st;
	e->n = 0;
	if (st == DNS_OK && n > 0) {
		if ((e->addrs = calloc(n, sizeof(*e->addrs))) == NULL) {
			log_warn("dns cache: %s", e->key);
			e->st = DNS_TEMPFAIL;
		} else {
			memcpy(e->addrs, addrs, n * sizeof(*addrs));
			e->n = n;
		}
	} else if (st == DNS_OK)
		e->st = DNS_NODATA;
	log_trace(TRACE_SCHED, "sched: dns %s: status %d, %zu address(es)", e->key, (int)e->st, e->n);
	dnsc_complete(e);
}

/* dnsc_start - send e's query; e->pending says whether it went out */
static void
dnsc_start(struct sched_dnsc_ent *e)
{
	const char *name = e->key + 2;

	e->qid = e->type == SCHED_DNSC_MX ?
	    dns_query_mx(e->c->dns, name, dnsc_on_mx, e) :
	    dns_query_addr(e->c->dns, name, dnsc_on_addr, e);
	e->pending = e->qid != 0;
}

/* dnsc_expired - sweep callback: drop answered entries past their time */
static int
dnsc_expired(void *arg, void *val)
{
	struct sched_dnsc_ent *e = val;
	uint64_t now = *(const uint64_t *)arg;

	if (e->pending || e->expires_us > now)
		return 0;
	e->in_map = 0;
	sched_dnsc_unref(e);
	return 1;
}

struct sched_dnsc_ent *
sched_dnsc_lookup(struct sched_dnsc *c, enum sched_dnsc_type type, const char *name,
    struct sched_dnsc_wait *w, sched_dnsc_cb *cb, void *arg)
{
	char key[DNSC_KEY_MAX];
	struct sched_dnsc_ent *e;
	uint64_t now = util_mono_us();

	w->next = w->prev = NULL;
	w->e = NULL;
	w->cb = cb;
	w->arg = arg;
	if (util_bsnprintf(key, sizeof(key), "%c:%s", type == SCHED_DNSC_MX ? 'M' : 'A',
	    name) < 0)
		goto fail;
	e = map_get(c->map, key);
	if (e != NULL && !e->pending && e->expires_us <= now) {
		dnsc_unmap(e);
		e = NULL;
	}
	if (e == NULL) {
		if (map_count(c->map) >= DNSC_SWEEP_AT)
			map_sweep(c->map, dnsc_expired, &now);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			goto fail;
		e->c = c;
		e->type = type;
		memcpy(e->key, key, sizeof(key));
		e->refs = 1;        /* the map's */
		dnsc_start(e);
		if (!e->pending) {
			e->st = DNS_TEMPFAIL;
			return e;   /* the caller's reference; never cached */
		}
		if (map_put(c->map, key, e) < 0) {
			dns_cancel(c->dns, e->qid);
			dnsc_ent_free(e);
			goto fail;
		}
		e->in_map = 1;
	}
	if (!e->pending) {
		e->refs++;
		return e;
	}
	w->e = e;
	w->next = e->waiters;
	if (e->waiters != NULL)
		e->waiters->prev = w;
	e->waiters = w;
	return NULL;
fail:
	log_warnx("dns cache: cannot look up %s", name);
	return &c->fail;
}

void
sched_dnsc_cancel(struct sched_dnsc_wait *w)
{
	struct sched_dnsc_ent *e = w->e;

	if (e == NULL)
		return;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		e->waiters = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
	w->e = NULL;
}

void
sched_dnsc_answer(const struct sched_dnsc_ent *e, struct sched_dnsc_ans *out)
{
	out->st = e->st;
	out->n = e->n;
	out->mx = e->mx;
	out->addrs = e->addrs;
}

/* Pending entries collected for sched_dnsc_set_dns(), each held. */
struct resend {
	struct sched_dnsc_ent **v;
	size_t n, cap;
};

/* resend_collect - sweep callback: hold and collect pending entries */
static int
resend_collect(void *arg, void *val)
{
	struct resend *r = arg;
	struct sched_dnsc_ent *e = val;

	if (e->pending && r->n < r->cap) {
		e->refs++;
		r->v[r->n++] = e;
	}
	return 0;
}

/*
 * sched_dnsc_set_dns - switch resolvers (SIGHUP changed dns_servers): drop
 * the cache and send what is in flight again to the new one. The caller
 * frees the old resolver afterwards; -1 (nothing changed) when out of memory.
 */
int
sched_dnsc_set_dns(struct sched_dnsc *c, struct dns *d)
{
	struct resend r;
	struct dns *old = c->dns;
	uint64_t never = UINT64_MAX;

	r.n = 0;
	r.cap = map_count(c->map);
	r.v = NULL;
	if (r.cap > 0 && (r.v = calloc(r.cap, sizeof(*r.v))) == NULL)
		return -1;
	map_sweep(c->map, resend_collect, &r);
	map_sweep(c->map, dnsc_expired, &never);  /* drops every answered entry */
	c->dns = d;
	for (size_t i = 0; i < r.n; i++) {
		struct sched_dnsc_ent *e = r.v[i];
		dns_cancel(old, e->qid);
		e->pending = 0;
		dnsc_start(e);
		if (!e->pending) {
			e->st = DNS_TEMPFAIL;
			dnsc_complete(e);
		}
		sched_dnsc_unref(e);
	}
	free(r.v);
	return 0;
}
