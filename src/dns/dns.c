/*
 * dns.c - asynchronous MX and address look-ups over libunbound
 *
 * Owns:     the ub_ctx (with its resolver thread), the read event on
 *           ub_fd(), and every struct dns_query in flight (a list).
 * Lifetime: dns_new() to dns_free(). A query lives from dns_query_*() until
 *           its callback has returned or dns_cancel()/dns_free() removed it.
 *           Names are copied.
 * Errors:   dns_new() fails with a reason in err; a failed look-up is a
 *           status in the callback (SERVFAIL, timeout, libunbound errors:
 *           DNS_TEMPFAIL), never fatal.
 * Context:  event-loop thread. libunbound resolves in its own thread and
 *           hands results over a pipe; ub_process() runs our ub callbacks on
 *           the loop. Those only store the result and activate the query's
 *           event, and the user's callback runs from that event, so it may
 *           call dns_query_*(), dns_cancel() or even dns_free().
 *
 * Every query has one event: a guard timer (DNS_GUARD_SECONDS, answers
 * DNS_TEMPFAIL and cancels what is still in flight, since unbound alone may
 * take minutes on a dead forwarder) that is also made active at once when
 * the last sub-query has come in, or for an IP literal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unbound.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "dns/dns_parse.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"

#define DNS_GUARD_SECONDS 30
#define DNS_TYPE_A        1
#define DNS_TYPE_MX       15
#define DNS_TYPE_AAAA     28
#define DNS_CLASS_IN      1

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_ADDR,
};

struct dns_query;

/* One libunbound look-up of a query: MX, or AAAA / A. */
struct dns_sub {
	struct dns_query *q;
	int          rrtype;
	int          async_id;
	int          pending;          /* sent to unbound, no answer yet */
	int          done;             /* answered (or literal) */
	enum dns_status st;
	size_t       n;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
};

struct dns_query {
	struct dns_query *next, *prev;
	struct dns  *d;
	uint64_t     id;
	enum dns_kind kind;
	dns_mx_cb   *mx_cb;
	dns_addr_cb *addr_cb;
	void        *arg;
	struct event *ev;              /* guard timer / completion */
	char         name[256];
	size_t       nsub;
	struct dns_sub sub[2];         /* MX: [0]; address: [0] AAAA, [1] A */
	enum dns_status mx_st;
	size_t       nmx;
	struct dns_mx mx[DNS_MAX_MX];
};

struct dns {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *ev_fd;
	struct dns_query *queries;     /* doubly linked, unordered */
	uint64_t     next_id;
};

static void dns_query_free(struct dns_query *q);

/* dns_rnd - random key for MX shuffling (getrandom never blocks once seeded) */
static uint32_t
dns_rnd(void *arg)
{
	uint32_t v = 0;

	(void)arg;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)util_mono_us();
	return v;
}

/* dns_on_fd - libunbound has answers in its pipe: run its callbacks */
static void
dns_on_fd(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	int r;

	(void)fd;
	(void)what;
	r = ub_process(d->ub);
	if (r != 0)
		log_warnx("dns: ub_process: %s", ub_strerror(r));
}

/* dns_fwd_text - "127.0.0.1@5353" for ub_ctx_set_fwd from a config address */
static int
dns_fwd_text(const struct listen_addr *la, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int port;

	if (la->ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&la->ss;

		if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
			return -1;
		port = ntohs(sin->sin_port);
	} else if (la->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&la->ss;

		if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
			return -1;
		port = ntohs(sin6->sin6_port);
	} else {
		return -1;
	}
	if (port == 0)
		port = 53;
	return util_bsnprintf(buf, len, "%s@%d", host, port) == -1 ? -1 : 0;
}

/*
 * dns_new - a libunbound context forwarding to cfg->dns_servers (or the
 * resolvers of /etc/resolv.conf), with /etc/hosts, resolving in a thread.
 * cfg is borrowed only during the call; NULL means resolv.conf.
 */
struct dns *
dns_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	struct dns *d;
	int r;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		(void)util_bsnprintf(err, errlen, "dns: out of memory");
		return NULL;
	}
	d->base = base;
	d->next_id = 1;
	if ((d->ub = ub_ctx_create()) == NULL) {
		(void)util_bsnprintf(err, errlen, "dns: cannot create resolver context");
		goto fail;
	}
	/* Forwarders on loopback (a local resolver, the tests' fake DNS). */
	if ((r = ub_ctx_set_option(d->ub, "do-not-query-localhost:", "no")) != 0) {
		(void)util_bsnprintf(err, errlen, "dns: do-not-query-localhost: %s", ub_strerror(r));
		goto fail;
	}
	/*
	 * unbound answers the RFC 6761 names itself (test., invalid., onion.
	 * ...: NXDOMAIN); a relay asks its resolvers instead, as the system
	 * resolver would, so test setups and private zones under test. work.
	 */
	if ((r = ub_ctx_set_option(d->ub, "local-zone:", "test. transparent")) != 0)
		log_trace(TRACE_DNS, "dns: local-zone test.: %s", ub_strerror(r));
	/*
	 * A forwarder that let one query time out must not be shunned for the
	 * infra cache's 15 minutes (every look-up would fail at once): keep
	 * probing it, and forget its timings sooner.
	 */
	if ((r = ub_ctx_set_option(d->ub, "infra-keep-probing:", "yes")) != 0)
		log_trace(TRACE_DNS, "dns: infra-keep-probing: %s", ub_strerror(r));
	if ((r = ub_ctx_set_option(d->ub, "infra-host-ttl:", "60")) != 0)
		log_trace(TRACE_DNS, "dns: infra-host-ttl: %s", ub_strerror(r));
	if (cfg != NULL && cfg->n_dns_servers > 0) {
		for (size_t i = 0; i < cfg->n_dns_servers && i < CONFIG_MAX_DNS; i++) {
			char fwd[INET6_ADDRSTRLEN + 8];

			if (dns_fwd_text(&cfg->dns_servers[i], fwd, sizeof(fwd)) == -1) {
				(void)util_bsnprintf(err, errlen, "dns: bad dns_servers entry %s",
				    cfg->dns_servers[i].text);
				goto fail;
			}
			if ((r = ub_ctx_set_fwd(d->ub, fwd)) != 0) {
				(void)util_bsnprintf(err, errlen, "dns: forwarder %s: %s", fwd,
				    ub_strerror(r));
				goto fail;
			}
			log_trace(TRACE_DNS, "dns: forwarding to %s", fwd);
		}
	} else if ((r = ub_ctx_resolvconf(d->ub, NULL)) != 0) {
		log_warnx("dns: /etc/resolv.conf: %s; resolving from the root servers",
		    ub_strerror(r));
	}
	if ((r = ub_ctx_hosts(d->ub, NULL)) != 0)
		log_trace(TRACE_DNS, "dns: /etc/hosts: %s", ub_strerror(r));
	if ((r = ub_ctx_async(d->ub, 1)) != 0) {
		(void)util_bsnprintf(err, errlen, "dns: async mode: %s", ub_strerror(r));
		goto fail;
	}
	d->ev_fd = event_new(base, ub_fd(d->ub), EV_READ | EV_PERSIST, dns_on_fd, d);
	if (d->ev_fd == NULL || event_add(d->ev_fd, NULL) == -1) {
		(void)util_bsnprintf(err, errlen, "dns: cannot watch the resolver's pipe");
		goto fail;
	}
	return d;
fail:
	if (d->ev_fd != NULL)
		event_free(d->ev_fd);
	if (d->ub != NULL)
		ub_ctx_delete(d->ub);
	free(d);
	return NULL;
}

/* dns_free - cancel every query (no callback runs) and release the resolver */
struct dns *
dns_free(struct dns *d)
{
	if (d == NULL)
		return NULL;
	while (d->queries != NULL)
		dns_query_free(d->queries);
	if (d->ev_fd != NULL)
		event_free(d->ev_fd);
	ub_ctx_delete(d->ub);
	free(d);
	return NULL;
}

/* dns_query_free - cancel what is in flight, unlink and free; no callback */
static void
dns_query_free(struct dns_query *q)
{
	struct dns *d = q->d;

	for (size_t i = 0; i < q->nsub; i++) {
		if (q->sub[i].pending) {
			(void)ub_cancel(d->ub, q->sub[i].async_id);
			q->sub[i].pending = 0;
		}
	}
	if (q->ev != NULL)
		event_free(q->ev);
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	free(q);
}

/* dns_status_name - for traces */
static const char *
dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:       return "ok";
	case DNS_NODATA:   return "nodata";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NULLMX:   return "nullmx";
	case DNS_TEMPFAIL: return "tempfail";
	}
	return "?";
}

/*
 * dns_on_event - the query's event: all answers are in (deliver them), or
 * the guard timer ran out (what is missing is DNS_TEMPFAIL). The query is
 * unlinked before the callback runs, so the callback may do anything.
 */
static void
dns_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns *d = q->d;
	struct sockaddr_storage out[DNS_MAX_ADDRS];
	size_t n = 0;
	enum dns_status st;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < q->nsub; i++) {
		if (!q->sub[i].done) {
			log_trace(TRACE_DNS, "dns: %s type %d: timed out", q->name, q->sub[i].rrtype);
			q->sub[i].st = DNS_TEMPFAIL;
			q->sub[i].n = 0;
			q->sub[i].done = 1;
		}
		if (q->sub[i].pending) {
			(void)ub_cancel(d->ub, q->sub[i].async_id);
			q->sub[i].pending = 0;
		}
	}
	if (q->kind == DNS_KIND_MX) {
		dns_mx_cb *cb = q->mx_cb;
		void *cbarg = q->arg;
		struct dns_mx mx[DNS_MAX_MX];
		size_t nmx = 0;

		st = q->sub[0].st;
		if (st == DNS_OK) {
			nmx = q->nmx;
			memcpy(mx, q->mx, nmx * sizeof(mx[0]));
		}
		log_trace(TRACE_DNS, "dns: MX %s: %s, %zu host(s)", q->name, dns_status_name(st), nmx);
		dns_query_free(q);
		cb(cbarg, st, nmx > 0 ? mx : NULL, nmx);
		return;
	}
	if (q->nsub == 1)
		st = dns_parse_merge_addr(q->sub[0].st, q->sub[0].addrs, q->sub[0].n,
		    DNS_NODATA, NULL, 0, out, DNS_MAX_ADDRS, &n);
	else
		st = dns_parse_merge_addr(q->sub[0].st, q->sub[0].addrs, q->sub[0].n,
		    q->sub[1].st, q->sub[1].addrs, q->sub[1].n, out, DNS_MAX_ADDRS, &n);
	if (q->nsub == 1 && st == DNS_NODATA && q->sub[0].st == DNS_NXDOMAIN)
		st = DNS_NXDOMAIN;
	log_trace(TRACE_DNS, "dns: addr %s: %s, %zu address(es)", q->name, dns_status_name(st), n);
	{
		dns_addr_cb *cb = q->addr_cb;
		void *cbarg = q->arg;

		dns_query_free(q);
		cb(cbarg, st, n > 0 ? out : NULL, n);
	}
}

/*
 * dns_on_answer - libunbound's callback (from ub_process, on the loop):
 * parse, keep, and when the query is complete make its event active.
 */
static void
dns_on_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_sub *s = arg;
	struct dns_query *q = s->q;
	int complete = 1;

	s->pending = 0;
	s->done = 1;
	s->n = 0;
	if (err != 0 || res == NULL) {
		log_trace(TRACE_DNS, "dns: %s type %d: %s", q->name, s->rrtype,
		    err != 0 ? ub_strerror(err) : "no result");
		s->st = DNS_TEMPFAIL;
	} else {
		struct dns_answer a;
		size_t count = 0;

		while (res->data != NULL && res->data[count] != NULL && count < 4096)
			count++;
		a.rcode = res->rcode;
		a.havedata = res->havedata;
		a.data = res->data;
		a.len = res->len;
		a.count = count;
		if (s->rrtype == DNS_TYPE_MX) {
			s->st = dns_parse_mx(&a, q->mx, DNS_MAX_MX, &q->nmx);
			if (s->st == DNS_OK)
				dns_parse_sort_mx(q->mx, q->nmx, dns_rnd, NULL);
		} else {
			s->st = dns_parse_addr(&a, s->rrtype == DNS_TYPE_A ? AF_INET : AF_INET6,
			    s->addrs, DNS_MAX_ADDRS, &s->n);
		}
		log_trace(TRACE_DNS, "dns: %s type %d: rcode %d, %zu record(s): %s", q->name,
		    s->rrtype, res->rcode, count, dns_status_name(s->st));
	}
	if (res != NULL)
		ub_resolve_free(res);
	for (size_t i = 0; i < q->nsub; i++)
		if (!q->sub[i].done)
			complete = 0;
	if (complete) {
		(void)event_del(q->ev);
		event_active(q->ev, EV_TIMEOUT, 0);
	}
}

/* dns_query_new - allocate, link and arm the guard timer; NULL on failure */
static struct dns_query *
dns_query_new(struct dns *d, const char *name, enum dns_kind kind, void *arg)
{
	struct dns_query *q;
	struct timeval tv = { DNS_GUARD_SECONDS, 0 };

	if (name == NULL || name[0] == '\0')
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		log_warn("dns: query for %s", name);
		return NULL;
	}
	if (util_strlcpy(q->name, name, sizeof(q->name)) >= sizeof(q->name)) {
		log_warnx("dns: name too long");
		free(q);
		return NULL;
	}
	q->d = d;
	q->kind = kind;
	q->arg = arg;
	q->id = d->next_id++;
	if ((q->ev = event_new(d->base, -1, 0, dns_on_event, q)) == NULL ||
	    event_add(q->ev, &tv) == -1) {
		log_warnx("dns: cannot create a timer for %s", name);
		if (q->ev != NULL)
			event_free(q->ev);
		free(q);
		return NULL;
	}
	q->next = d->queries;
	if (d->queries != NULL)
		d->queries->prev = q;
	d->queries = q;
	return q;
}

/* dns_sub_start - send one look-up to unbound; 0 or -1 */
static int
dns_sub_start(struct dns_query *q, int rrtype)
{
	struct dns_sub *s = &q->sub[q->nsub];
	int r;

	s->q = q;
	s->rrtype = rrtype;
	r = ub_resolve_async(q->d->ub, q->name, rrtype, DNS_CLASS_IN, s, dns_on_answer,
	    &s->async_id);
	if (r != 0) {
		log_warnx("dns: %s type %d: %s", q->name, rrtype, ub_strerror(r));
		return -1;
	}
	s->pending = 1;
	q->nsub++;
	return 0;
}

/* dns_query_mx - start an MX look-up of domain (copied); id > 0 or 0 */
uint64_t
dns_query_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_query *q;

	if ((q = dns_query_new(d, domain, DNS_KIND_MX, arg)) == NULL)
		return 0;
	q->mx_cb = cb;
	if (dns_sub_start(q, DNS_TYPE_MX) == -1) {
		dns_query_free(q);
		return 0;
	}
	log_trace(TRACE_DNS, "dns: query %llu: MX %s", (unsigned long long)q->id, domain);
	return q->id;
}

/*
 * dns_query_addr - start AAAA and A look-ups of host (copied) at once; an
 * IP literal (brackets allowed) is answered without a query, from the loop.
 */
uint64_t
dns_query_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg)
{
	struct dns_query *q;
	struct sockaddr_storage ss;

	if ((q = dns_query_new(d, host, DNS_KIND_ADDR, arg)) == NULL)
		return 0;
	q->addr_cb = cb;
	if (dns_parse_literal(host, &ss) == 0) {
		q->sub[0].q = q;
		q->sub[0].done = 1;
		q->sub[0].st = DNS_OK;
		q->sub[0].n = 1;
		q->sub[0].addrs[0] = ss;
		q->nsub = 1;
		(void)event_del(q->ev);
		event_active(q->ev, EV_TIMEOUT, 0);
		return q->id;
	}
	if (dns_sub_start(q, DNS_TYPE_AAAA) == -1 || dns_sub_start(q, DNS_TYPE_A) == -1) {
		dns_query_free(q);
		return 0;
	}
	log_trace(TRACE_DNS, "dns: query %llu: AAAA+A %s", (unsigned long long)q->id, host);
	return q->id;
}

/* dns_cancel - forget query id; its callback never runs. Unknown ids are ignored. */
void
dns_cancel(struct dns *d, uint64_t id)
{
	for (struct dns_query *q = d->queries; q != NULL; q = q->next) {
		if (q->id == id) {
			dns_query_free(q);
			return;
		}
	}
}
