/*
 * test_dns_query.c - src/dns/dns.c over libunbound against a tiny DNS
 *                    responder on loopback, in the same event loop
 *
 * Owns:     per test: an event base, the responder's UDP socket, a struct dns.
 * Lifetime: one test each; every loop has a 10 s deadline.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  the loop thread (libunbound resolves in its own thread).
 *
 * The responder answers from a table (name, type) -> rcode and records,
 * or drops the query; it is just enough DNS for these tests (one question,
 * answers by compression pointer to it, no EDNS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "mail/config.h"

#define T_A    1
#define T_MX   15
#define T_AAAA 28

struct zone_row {
	const char *name;
	int         type;          /* 0: any type */
	int         rcode;         /* -1: drop the query */
	const char *rr[4];         /* MX: "pref host"; A/AAAA: address */
};

static const struct zone_row zone[] = {
	{ "example.test", T_MX, 0, { "20 b.example.test", "10 a.example.test" } },
	{ "null.test", T_MX, 0, { "0 ." } },
	{ "dual.test", T_A, 0, { "127.0.0.5" } },
	{ "dual.test", T_AAAA, 0, { "::1" } },
	{ "v4.test", T_A, 0, { "127.0.0.7" } },
	{ "v4.test", T_AAAA, 0, { NULL } },
	{ "fail.test", 0, 2, { NULL } },
	{ "drop.test", 0, -1, { NULL } },
};

struct t {
	struct event_base *base;
	struct event *ev_udp, *ev_deadline;
	int fd;
	int port;
	struct dns *dns;
	int ncalls, timed_out, in_call;
	int called_inside;          /* a callback ran inside dns_query_*() */
	unsigned nqueries;          /* seen by the responder */
};

/* ---- responder ----------------------------------------------------------- */

static size_t
put_name(unsigned char *out, size_t max, const char *name)
{
	size_t o = 0;

	if (strcmp(name, ".") == 0) {
		out[0] = 0;
		return 1;
	}
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t l = dot != NULL ? (size_t)(dot - name) : strlen(name);

		if (o + l + 2 > max)
			return 0;
		out[o++] = (unsigned char)l;
		memcpy(out + o, name, l);
		o += l;
		name += l;
		if (*name == '.')
			name++;
	}
	out[o++] = 0;
	return o;
}

static void
responder_read(evutil_socket_t fd, short what, void *arg)
{
	struct t *t = arg;
	unsigned char q[512], r[1024];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n;
	size_t i = 12, o, qend;
	char name[256];
	size_t nl = 0;
	int qtype, rcode = 3, nans = 0;
	const struct zone_row *hit = NULL;

	(void)what;
	n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	if (n < 17)
		return;
	t->nqueries++;
	while (i < (size_t)n && q[i] != 0) {
		size_t l = q[i];

		if (i + 1 + l >= (size_t)n || nl + l + 1 >= sizeof(name))
			return;
		if (nl > 0)
			name[nl++] = '.';
		memcpy(name + nl, q + i + 1, l);
		nl += l;
		i += 1 + l;
	}
	name[nl] = '\0';
	if (i + 5 > (size_t)n)
		return;
	qtype = (q[i + 1] << 8) | q[i + 2];
	qend = i + 5;
	for (size_t k = 0; k < sizeof(zone) / sizeof(zone[0]); k++) {
		if (strcasecmp(zone[k].name, name) != 0)
			continue;
		rcode = 0;                          /* the name exists */
		if (zone[k].type == 0 || zone[k].type == qtype) {
			hit = &zone[k];
			break;
		}
	}
	if (hit != NULL && hit->rcode == -1)
		return;                             /* never answer */
	if (hit != NULL)
		rcode = hit->rcode;
	memcpy(r, q, qend);
	r[2] = 0x81 | (q[2] & 0x01);            /* QR, RD copied */
	r[3] = (unsigned char)(0x80 | rcode);   /* RA */
	r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
	o = qend;
	for (int k = 0; hit != NULL && rcode == 0 && k < 4 && hit->rr[k] != NULL; k++) {
		unsigned char rd[300];
		size_t rdl = 0;

		if (qtype == T_MX) {
			unsigned pref = (unsigned)strtoul(hit->rr[k], NULL, 10);
			const char *host = strchr(hit->rr[k], ' ') + 1;

			rd[0] = (unsigned char)(pref >> 8);
			rd[1] = (unsigned char)pref;
			rdl = 2 + put_name(rd + 2, sizeof(rd) - 2, host);
		} else if (qtype == T_A) {
			rdl = inet_pton(AF_INET, hit->rr[k], rd) == 1 ? 4 : 0;
		} else if (qtype == T_AAAA) {
			rdl = inet_pton(AF_INET6, hit->rr[k], rd) == 1 ? 16 : 0;
		}
		if (rdl == 0 || o + 12 + rdl > sizeof(r))
			continue;
		r[o++] = 0xc0;
		r[o++] = 12;
		r[o++] = (unsigned char)(qtype >> 8);
		r[o++] = (unsigned char)qtype;
		r[o++] = 0;
		r[o++] = 1;
		r[o++] = 0;
		r[o++] = 0;
		r[o++] = 0;
		r[o++] = 1;                          /* TTL 1 */
		r[o++] = (unsigned char)(rdl >> 8);
		r[o++] = (unsigned char)rdl;
		memcpy(r + o, rd, rdl);
		o += rdl;
		nans++;
	}
	r[4] = 0;
	r[5] = 1;
	r[7] = (unsigned char)nans;
	(void)sendto(fd, r, o, 0, (struct sockaddr *)&from, fl);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct t *t = arg;

	(void)fd;
	(void)what;
	t->timed_out = 1;
	event_base_loopbreak(t->base);
}

static void
setup(struct t *t)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct config cfg;
	struct timeval tv = { 10, 0 };
	char err[256];

	memset(t, 0, sizeof(*t));
	t->base = event_base_new();
	assert_non_null(t->base);
	t->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(t->fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(t->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(t->fd, (struct sockaddr *)&sin, &sl), 0);
	t->port = ntohs(sin.sin_port);
	t->ev_udp = event_new(t->base, t->fd, EV_READ | EV_PERSIST, responder_read, t);
	event_add(t->ev_udp, NULL);
	t->ev_deadline = evtimer_new(t->base, deadline_cb, t);
	evtimer_add(t->ev_deadline, &tv);

	memset(&cfg, 0, sizeof(cfg));
	memcpy(&cfg.dns_servers[0].ss, &sin, sizeof(sin));
	cfg.dns_servers[0].len = sizeof(sin);
	(void)snprintf(cfg.dns_servers[0].text, sizeof(cfg.dns_servers[0].text), "127.0.0.1:%d",
	    t->port);
	cfg.n_dns_servers = 1;
	t->dns = dns_new(t->base, &cfg, err, sizeof(err));
	if (t->dns == NULL)
		fail_msg("dns_new: %s", err);
}

static void
teardown(struct t *t)
{
	t->dns = dns_free(t->dns);
	event_free(t->ev_udp);
	event_free(t->ev_deadline);
	close(t->fd);
	event_base_free(t->base);
}

/* loop_until - run the loop until want callbacks have come (or the deadline) */
static void
loop_until(struct t *t, int want)
{
	while (t->ncalls < want && !t->timed_out)
		event_base_loop(t->base, EVLOOP_ONCE);
	if (t->ncalls < want)
		fail_msg("%d callback(s) after 10 s, want %d", t->ncalls, want);
}

/* ---- answers --------------------------------------------------------------- */

struct want {
	struct t   *t;
	const char *name;
	enum dns_status st;
	const char *answer;        /* "10 a,20 b" or "::1,127.0.0.5" */
	int         got;
};

static void
mx_cb(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n)
{
	struct want *w = arg;
	char got[512] = "";
	size_t o = 0;

	if (w->t->in_call)
		w->t->called_inside = 1;
	w->t->ncalls++;
	w->got++;
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(got + o, sizeof(got) - o, "%s%u %s", i ? "," : "", mx[i].pref,
		    mx[i].host);

		if (k > 0 && (size_t)k < sizeof(got) - o)
			o += (size_t)k;
	}
	if (st != w->st || strcmp(got, w->answer) != 0)
		fail_msg("MX %s: got %d \"%s\", want %d \"%s\"", w->name, st, got, w->st, w->answer);
}

static void
addr_cb(void *arg, enum dns_status st, const struct sockaddr_storage *a, size_t n)
{
	struct want *w = arg;
	char got[512] = "";
	size_t o = 0;

	if (w->t->in_call)
		w->t->called_inside = 1;
	w->t->ncalls++;
	w->got++;
	for (size_t i = 0; i < n; i++) {
		char buf[64];
		const void *p = a[i].ss_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)&a[i])->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)&a[i])->sin6_addr;
		int k;

		if (inet_ntop(a[i].ss_family, p, buf, sizeof(buf)) == NULL)
			(void)snprintf(buf, sizeof(buf), "?");
		k = snprintf(got + o, sizeof(got) - o, "%s%s", i ? "," : "", buf);
		if (k > 0 && (size_t)k < sizeof(got) - o)
			o += (size_t)k;
	}
	if (st != w->st || strcmp(got, w->answer) != 0)
		fail_msg("addr %s: got %d \"%s\", want %d \"%s\"", w->name, st, got, w->st,
		    w->answer);
}

static void
never_cb_mx(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n)
{
	(void)arg;
	(void)st;
	(void)mx;
	(void)n;
	fail_msg("a cancelled MX query called back");
}

static void
never_cb_addr(void *arg, enum dns_status st, const struct sockaddr_storage *a, size_t n)
{
	(void)arg;
	(void)st;
	(void)a;
	(void)n;
	fail_msg("a cancelled address query called back");
}

/* All answers at once (in flight together), compared with the table. */
static void
test_answers(void **state)
{
	struct t t;
	struct want mx[] = {
		{ &t, "example.test", DNS_OK, "10 a.example.test,20 b.example.test", 0 },
		{ &t, "null.test", DNS_NULLMX, "", 0 },
		{ &t, "nx.test", DNS_NXDOMAIN, "", 0 },
		{ &t, "dual.test", DNS_NODATA, "", 0 },
		{ &t, "fail.test", DNS_TEMPFAIL, "", 0 },
	};
	struct want addr[] = {
		{ &t, "dual.test", DNS_OK, "::1,127.0.0.5", 0 },
		{ &t, "v4.test", DNS_OK, "127.0.0.7", 0 },
		{ &t, "nx.test", DNS_NXDOMAIN, "", 0 },
		{ &t, "example.test", DNS_NODATA, "", 0 },
		{ &t, "fail.test", DNS_TEMPFAIL, "", 0 },
		{ &t, "192.0.2.1", DNS_OK, "192.0.2.1", 0 },
		{ &t, "[2001:db8::1]", DNS_OK, "2001:db8::1", 0 },
	};
	int want = 0;

	(void)state;
	setup(&t);
	t.in_call = 1;
	for (size_t i = 0; i < sizeof(mx) / sizeof(mx[0]); i++, want++)
		assert_true(dns_query_mx(t.dns, mx[i].name, mx_cb, &mx[i]) > 0);
	for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++, want++)
		assert_true(dns_query_addr(t.dns, addr[i].name, addr_cb, &addr[i]) > 0);
	t.in_call = 0;
	assert_int_equal(t.called_inside, 0);
	loop_until(&t, want);
	for (size_t i = 0; i < sizeof(mx) / sizeof(mx[0]); i++)
		assert_int_equal(mx[i].got, 1);
	for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++)
		assert_int_equal(addr[i].got, 1);
	teardown(&t);
}

/*
 * Cancelled queries never call back: cancelled at once, cancelled while the
 * server sits on them, and an IP literal cancelled before its zero timer.
 */
static void
test_cancel(void **state)
{
	struct t t;
	struct want ok = { &t, "v4.test", DNS_OK, "127.0.0.7", 0 };
	uint64_t a, b, c;

	(void)state;
	setup(&t);
	a = dns_query_mx(t.dns, "example.test", never_cb_mx, NULL);
	b = dns_query_addr(t.dns, "drop.test", never_cb_addr, NULL);
	c = dns_query_addr(t.dns, "127.0.0.1", never_cb_addr, NULL);
	assert_true(a > 0 && b > 0 && c > 0 && a != b && b != c);
	dns_cancel(t.dns, a);
	dns_cancel(t.dns, c);
	assert_true(dns_query_addr(t.dns, "v4.test", addr_cb, &ok) > 0);
	loop_until(&t, 1);               /* the answer for v4.test; b still pending */
	dns_cancel(t.dns, b);
	dns_cancel(t.dns, b);            /* twice, and unknown ids: ignored */
	dns_cancel(t.dns, 999999);
	/* give the cancelled answers time to arrive and be dropped */
	{
		struct timeval tv = { 0, 300000 };

		event_base_loopexit(t.base, &tv);
		event_base_dispatch(t.base);
	}
	assert_int_equal(t.ncalls, 1);
	teardown(&t);
}

/* dns_free with queries in flight: no callback, nothing leaked (ASan). */
static void
test_free_pending(void **state)
{
	struct t t;

	(void)state;
	setup(&t);
	assert_true(dns_query_mx(t.dns, "drop.test", never_cb_mx, NULL) > 0);
	assert_true(dns_query_addr(t.dns, "drop.test", never_cb_addr, NULL) > 0);
	assert_true(dns_query_mx(t.dns, "drop.test", never_cb_mx, NULL) > 0);
	{
		struct timeval tv = { 0, 200000 };

		/* run the responder (not the resolver's pipe) for a while */
		event_del(t.ev_deadline);
		event_base_loopexit(t.base, &tv);
		while (event_base_loop(t.base, EVLOOP_ONCE) == 0 && t.nqueries < 3)
			;
	}
	/* the queries sit at the responder; an IP literal's zero timer is pending too */
	assert_true(dns_query_addr(t.dns, "::1", never_cb_addr, NULL) > 0);
	teardown(&t);
}

/* Bad input is refused at once with 0. */
static void
test_bad_names(void **state)
{
	struct t t;
	char longname[300];

	(void)state;
	setup(&t);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(dns_query_mx(t.dns, "", never_cb_mx, NULL), 0);
	assert_int_equal(dns_query_addr(t.dns, longname, never_cb_addr, NULL), 0);
	assert_int_equal(dns_query_mx(t.dns, longname, never_cb_mx, NULL), 0);
	teardown(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_bad_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
