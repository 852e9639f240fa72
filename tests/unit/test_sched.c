/*
 * test_sched.c - unit tests for the scheduler's pure parts: backoff,
 * expiry, reply classes, next hops, grouping by destination
 * (src/sched/sched_policy.c; the heap and the map: test_containers.c)
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  no I/O, no clock: everything is an argument.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "mail/config.h"
#include "sched/sched_policy.h"
#include "smtpc/smtpc.h"

#define S 1000000ull     /* µs per second */

static int failures;

#define ROW_FAIL(...) do { print_error(__VA_ARGS__); failures++; } while (0)

static void
test_backoff(void **state)
{
	static const struct {
		unsigned attempts, min, max, want;
	} rows[] = {
		{ 1, 300, 4000, 300 },      /* first failure: the minimum */
		{ 2, 300, 4000, 600 },
		{ 3, 300, 4000, 1200 },
		{ 4, 300, 4000, 2400 },
		{ 5, 300, 4000, 4000 },     /* 4800 capped */
		{ 6, 300, 4000, 4000 },
		{ 1000, 300, 4000, 4000 },  /* no overflow */
		{ 0, 300, 4000, 300 },      /* never tried: treated as the first */
		{ 1, 1, 8, 1 },
		{ 2, 1, 8, 2 },
		{ 4, 1, 8, 8 },
		{ 5, 1, 8, 8 },
		{ 40, 1, UINT_MAX, UINT_MAX },
		{ 33, 1, UINT_MAX, UINT_MAX },
		{ 32, 1, UINT_MAX, 2147483648u },
		{ 1, 0, 0, 1 },             /* never 0: no busy retry loop */
		{ 3, 0, 100, 1 },
		{ 1, 500, 100, 100 },       /* min above max: max wins */
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned got = sched_policy_backoff(rows[i].attempts, rows[i].min, rows[i].max);
		if (got != rows[i].want)
			ROW_FAIL("backoff row %zu (attempts %u, %u..%u): got %u, want %u\n", i,
			    rows[i].attempts, rows[i].min, rows[i].max, got, rows[i].want);
	}
	assert_int_equal(failures, 0);
}

static void
test_defer(void **state)
{
	static const struct {
		uint64_t now, arrival;
		unsigned lifetime, attempts, min, max;
		int want_expired;
		uint64_t want_next;
	} rows[] = {
		/* first failure right after arrival: wait the minimum */
		{ 1000 * S, 1000 * S, 5 * 86400, 1, 300, 4000, 0, 1300 * S },
		{ 1000 * S, 1000 * S, 5 * 86400, 3, 300, 4000, 0, 2200 * S },
		/* the backoff would pass the expiry: the last try is at the expiry */
		{ 1000 * S, 998 * S, 3, 2, 1, 8, 0, 1001 * S },
		{ 1000 * S, 999 * S, 3, 3, 1, 8, 0, 1002 * S },
		/* at or past the lifetime: bounce */
		{ 1002 * S, 999 * S, 3, 4, 1, 8, 1, 0 },
		{ 1003 * S, 999 * S, 3, 4, 1, 8, 1, 0 },
		{ 1000 * S, 1000 * S, 0, 1, 300, 4000, 1, 0 },  /* lifetime 0: no retries */
		/* recovered after a long stop: expired at once */
		{ 900000 * S, 1000 * S, 5 * 86400, 1, 300, 4000, 1, 0 },
		/* one microsecond before the expiry: one more (immediate) try */
		{ 1003 * S - 1, 1000 * S, 3, 9, 1, 8, 0, 1003 * S },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t next = 0;
		int got = sched_policy_defer(rows[i].now, rows[i].arrival, rows[i].lifetime,
		    rows[i].attempts, rows[i].min, rows[i].max, &next);
		if (got != rows[i].want_expired)
			ROW_FAIL("defer row %zu: got expired=%d, want %d\n", i, got,
			    rows[i].want_expired);
		else if (!got && next != rows[i].want_next)
			ROW_FAIL("defer row %zu: got next=%llu, want %llu\n", i,
			    (unsigned long long)next, (unsigned long long)rows[i].want_next);
	}
	assert_int_equal(failures, 0);
}

static void
test_expired(void **state)
{
	static const struct {
		uint64_t now, arrival;
		unsigned lifetime;
		int want;
	} rows[] = {
		{ 10 * S, 10 * S, 0, 1 },
		{ 10 * S, 10 * S, 1, 0 },
		{ 11 * S - 1, 10 * S, 1, 0 },
		{ 11 * S, 10 * S, 1, 1 },
		{ 5 * S, 10 * S, 1, 0 },    /* clock behind the arrival */
		{ 432000 * S + 5, 5, 432000, 1 },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = sched_policy_expired(rows[i].now, rows[i].arrival, rows[i].lifetime);
		if (got != rows[i].want)
			ROW_FAIL("expired row %zu: got %d, want %d\n", i, got, rows[i].want);
	}
	assert_int_equal(failures, 0);
}

static void
test_classify(void **state)
{
	static const struct {
		int code;
		enum sched_class want;
	} rows[] = {
		{ 250, SCHED_OK }, { 251, SCHED_OK }, { 200, SCHED_OK }, { 299, SCHED_OK },
		{ 421, SCHED_TEMP }, { 450, SCHED_TEMP }, { 452, SCHED_TEMP },
		{ 0, SCHED_TEMP },          /* no reply: network trouble */
		{ 354, SCHED_TEMP },        /* nonsense at that point: not a success */
		{ 199, SCHED_TEMP }, { 600, SCHED_TEMP }, { -1, SCHED_TEMP },
		{ 500, SCHED_PERM }, { 550, SCHED_PERM }, { 554, SCHED_PERM }, { 599, SCHED_PERM },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum sched_class got = sched_policy_classify(rows[i].code);
		if (got != rows[i].want)
			ROW_FAIL("classify %d: got %d, want %d\n", rows[i].code, got, rows[i].want);
	}
	assert_int_equal(failures, 0);
}

/* relay_of - a relay_target as config_value_parse_relay() would fill it */
static struct relay_target
relay_of(const char *host, int port, int no_mx)
{
	struct relay_target t;

	memset(&t, 0, sizeof(t));
	if (host != NULL) {
		t.set = 1;
		util_strlcpy(t.host, host, sizeof(t.host));
		t.port = port;
		t.no_mx = no_mx;
	}
	return t;
}

static void
test_nexthop_rcpt(void **state)
{
	static const struct {
		const char *rcpt;
		const char *relay;       /* NULL: no smart relay */
		int relay_port, relay_no_mx;
		int rc;
		enum sched_kind kind;
		const char *name;
		int port, no_mx, literal, family;
	} rows[] = {
		/* MX destinations: the domain, lower case, default port */
		{ "a@Example.COM", NULL, 0, 0, 0, SCHED_KIND_MX, "example.com", 25, 0, 0, 0 },
		{ "a@example.com.", NULL, 0, 0, 0, SCHED_KIND_MX, "example.com", 25, 0, 0, 0 },
		{ "\"x@y\"@dom.test", NULL, 0, 0, 0, SCHED_KIND_MX, "dom.test", 25, 0, 0, 0 },
		{ "user@sub.b.test", NULL, 0, 0, 0, SCHED_KIND_MX, "sub.b.test", 25, 0, 0, 0 },
		/* address literals: no DNS */
		{ "a@[192.0.2.7]", NULL, 0, 0, 0, SCHED_KIND_MX, "192.0.2.7", 25, 1, 1, AF_INET },
		{ "a@[IPv6:2001:db8::1]", NULL, 0, 0, 0, SCHED_KIND_MX, "2001:db8::1", 25, 1, 1,
		    AF_INET6 },
		{ "a@[ipv6:::1]", NULL, 0, 0, 0, SCHED_KIND_MX, "::1", 25, 1, 1, AF_INET6 },
		/* unroutable */
		{ "postmaster", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },
		{ "a@", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },
		{ "a@.", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },
		{ "a@[]", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },
		{ "a@[::1]", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },          /* IPv6 needs its tag */
		{ "a@[IPv6:1.2.3.4]", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 }, /* wrong tag */
		{ "a@[300.1.1.1]", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },
		{ "a@[x-tag:foo]", NULL, 0, 0, -1, 0, NULL, 0, 0, 0, 0 },
		/* smart relay: everything goes there, in each SPEC form */
		{ "a@example.com", "relay.test", 0, 0, 0, SCHED_KIND_RELAY, "relay.test", 25, 0, 0, 0 },
		{ "a@example.com", "Relay.Test", 587, 0, 0, SCHED_KIND_RELAY, "relay.test", 587, 0, 0, 0 },
		{ "a@example.com", "relay.test", 0, 1, 0, SCHED_KIND_RELAY, "relay.test", 25, 1, 0, 0 },
		{ "a@example.com", "127.0.0.2", 2525, 1, 0, SCHED_KIND_RELAY, "127.0.0.2", 2525, 1, 1,
		    AF_INET },
		{ "a@example.com", "127.0.0.2", 0, 0, 0, SCHED_KIND_RELAY, "127.0.0.2", 25, 1, 1,
		    AF_INET },    /* an address needs no MX look-up, brackets or not */
		{ "a@example.com", "2001:db8::1", 587, 1, 0, SCHED_KIND_RELAY, "2001:db8::1", 587, 1, 1,
		    AF_INET6 },
		{ "postmaster", "relay.test", 0, 0, 0, SCHED_KIND_RELAY, "relay.test", 25, 0, 0, 0 },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct relay_target t = relay_of(rows[i].relay, rows[i].relay_port,
		    rows[i].relay_no_mx);
		struct sched_nexthop nh;
		int rc = sched_policy_nexthop_rcpt(rows[i].rcpt, &t, 25, &nh);

		if (rc != rows[i].rc) {
			ROW_FAIL("nexthop <%s>: got rc %d, want %d\n", rows[i].rcpt, rc, rows[i].rc);
			continue;
		}
		if (rc != 0)
			continue;
		if (nh.kind != rows[i].kind || strcmp(nh.name, rows[i].name) != 0 ||
		    nh.port != rows[i].port || nh.no_mx != rows[i].no_mx ||
		    nh.literal != rows[i].literal ||
		    (rows[i].literal && nh.addr.ss_family != rows[i].family))
			ROW_FAIL("nexthop <%s> via %s: got kind %d name %s port %d no_mx %d "
			    "literal %d family %d, want %d %s %d %d %d %d\n", rows[i].rcpt,
			    rows[i].relay ? rows[i].relay : "MX", nh.kind, nh.name, nh.port, nh.no_mx,
			    nh.literal, nh.addr.ss_family, rows[i].kind, rows[i].name, rows[i].port,
			    rows[i].no_mx, rows[i].literal, rows[i].family);
		if (nh.literal && nh.addr.ss_family == AF_INET &&
		    ntohs(((struct sockaddr_in *)&nh.addr)->sin_port) != rows[i].port)
			ROW_FAIL("nexthop <%s>: literal address without its port %d\n",
			    rows[i].rcpt, rows[i].port);
	}
	assert_int_equal(failures, 0);
}

static void
test_nexthop_key(void **state)
{
	struct relay_target cc = relay_of("cc.test", 0, 0);
	struct relay_target relay = relay_of("cc.test", 0, 0);
	struct relay_target none = relay_of(NULL, 0, 0);
	struct sched_nexthop a, b, c, d, e;
	char ka[SCHED_KEY_MAX], kb[SCHED_KEY_MAX], kc[SCHED_KEY_MAX], kd[SCHED_KEY_MAX],
	    ke[SCHED_KEY_MAX];

	(void)state;
	assert_int_equal(sched_policy_nexthop_rcpt("x@CC.test", &none, 25, &a), 0);
	assert_int_equal(sched_policy_nexthop_relay(&cc, SCHED_KIND_CC, 25, &b), 0);
	assert_int_equal(sched_policy_nexthop_rcpt("x@example.com", &relay, 25, &c), 0);
	assert_int_equal(sched_policy_nexthop_rcpt("y@cc.TEST", &none, 25, &d), 0);
	assert_int_equal(sched_policy_nexthop_rcpt("y@cc.test", &none, 2525, &e), 0);
	assert_int_equal(sched_policy_nexthop_key(&a, ka, sizeof(ka)), 0);
	assert_int_equal(sched_policy_nexthop_key(&b, kb, sizeof(kb)), 0);
	assert_int_equal(sched_policy_nexthop_key(&c, kc, sizeof(kc)), 0);
	assert_int_equal(sched_policy_nexthop_key(&d, kd, sizeof(kd)), 0);
	assert_int_equal(sched_policy_nexthop_key(&e, ke, sizeof(ke)), 0);
	assert_string_equal(ka, "m|cc.test|25|0");
	assert_string_equal(kb, "c|cc.test|25|0");  /* the cc copy never shares a recipient's queue */
	assert_string_equal(kc, "r|cc.test|25|0");
	assert_string_equal(ka, kd);                /* case does not split a destination */
	assert_string_not_equal(ka, ke);            /* the port does */
	assert_int_equal(sched_policy_nexthop_key(&a, ka, 8), -1);
}

static void
test_group(void **state)
{
	static const struct {
		const char *keys[8];
		size_t n;
		size_t want_runs;
		size_t want_order[8];    /* idx after grouping */
	} rows[] = {
		{ { "m|a" }, 1, 1, { 0 } },
		{ { "m|a", "m|a", "m|a" }, 3, 1, { 0, 1, 2 } },
		{ { "m|b", "m|a", "m|b", "m|a" }, 4, 2, { 1, 3, 0, 2 } },
		{ { "m|c", "m|b", "m|a" }, 3, 3, { 2, 1, 0 } },
		{ { "m|x", "m|y", "m|x", "m|z", "m|y", "m|x" }, 6, 3, { 0, 2, 5, 1, 4, 3 } },
		{ { NULL }, 0, 0, { 0 } },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sched_grp v[8];
		size_t runs;

		for (size_t j = 0; j < rows[i].n; j++) {
			v[j].key = rows[i].keys[j];
			v[j].idx = j;
		}
		runs = sched_policy_group(v, rows[i].n);
		if (runs != rows[i].want_runs)
			ROW_FAIL("group row %zu: got %zu runs, want %zu\n", i, runs, rows[i].want_runs);
		for (size_t j = 0; j < rows[i].n; j++)
			if (v[j].idx != rows[i].want_order[j])
				ROW_FAIL("group row %zu position %zu: got idx %zu, want %zu\n", i, j,
				    v[j].idx, rows[i].want_order[j]);
	}
	assert_int_equal(failures, 0);
}

/* A many-recipient message split by domain: every recipient once, one run per domain. */
static void
test_group_many(void **state)
{
	enum { N = 1000, DOMS = 7 };
	struct sched_grp *v = calloc(N, sizeof(*v));
	char (*keys)[SCHED_KEY_MAX] = calloc(N, SCHED_KEY_MAX);
	struct relay_target none = relay_of(NULL, 0, 0);
	int seen[N];
	size_t runs;

	(void)state;
	assert_non_null(v);
	assert_non_null(keys);
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < N; i++) {
		char rcpt[64];
		struct sched_nexthop nh;

		assert_true(util_bsnprintf(rcpt, sizeof(rcpt), "u%zu@D%zu.test", i, (i * 31) % DOMS) > 0);
		assert_int_equal(sched_policy_nexthop_rcpt(rcpt, &none, 25, &nh), 0);
		assert_int_equal(sched_policy_nexthop_key(&nh, keys[i], SCHED_KEY_MAX), 0);
		v[i].key = keys[i];
		v[i].idx = i;
	}
	runs = sched_policy_group(v, N);
	assert_int_equal(runs, DOMS);
	for (size_t i = 0; i < N; i++) {
		seen[v[i].idx]++;
		if (i > 0 && strcmp(v[i - 1].key, v[i].key) == 0)
			assert_true(v[i - 1].idx < v[i].idx);  /* stable within a run */
	}
	for (size_t i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	free(keys);
	free(v);
}

static void
test_rcpt_reply(void **state)
{
	struct smtpc_reply rc[3];
	struct smtpc_result r;
	static const struct {
		int mail, rcpt0, rcpt1, rcpt2, data;
		int want[3];             /* code chosen per recipient */
		const char *stage[3];
	} rows[] = {
		{ 250, 250, 250, 250, 250, { 250, 250, 250 },
		    { "end of DATA", "end of DATA", "end of DATA" } },
		{ 250, 250, 550, 250, 250, { 250, 550, 250 },
		    { "end of DATA", "RCPT TO", "end of DATA" } },
		{ 250, 451, 550, 250, 554, { 451, 550, 554 },
		    { "RCPT TO", "RCPT TO", "end of DATA" } },
		{ 452, 0, 0, 0, 0, { 452, 452, 452 }, { "MAIL FROM", "MAIL FROM", "MAIL FROM" } },
		{ 250, 250, 250, 250, 0, { 0, 0, 0 },   /* lost during the data */
		    { "end of DATA", "end of DATA", "end of DATA" } },
		{ 250, 550, 550, 550, 0, { 550, 550, 550 }, { "RCPT TO", "RCPT TO", "RCPT TO" } },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(&r, 0, sizeof(r));
		memset(rc, 0, sizeof(rc));
		r.mail.code = rows[i].mail;
		rc[0].code = rows[i].rcpt0;
		rc[1].code = rows[i].rcpt1;
		rc[2].code = rows[i].rcpt2;
		r.rcpt = rc;
		r.nrcpt = 3;
		r.data.code = rows[i].data;
		for (size_t j = 0; j < 3; j++) {
			const struct smtpc_reply *rp = sched_policy_rcpt_reply(&r, j);
			if (rp->code != rows[i].want[j])
				ROW_FAIL("reply row %zu rcpt %zu: got %d, want %d\n", i, j, rp->code,
				    rows[i].want[j]);
			if (strcmp(sched_policy_reply_stage(&r, rp), rows[i].stage[j]) != 0)
				ROW_FAIL("reply row %zu rcpt %zu: got stage %s, want %s\n", i, j,
				    sched_policy_reply_stage(&r, rp), rows[i].stage[j]);
		}
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_defer),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_nexthop_rcpt),
		cmocka_unit_test(test_nexthop_key),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_group_many),
		cmocka_unit_test(test_rcpt_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
