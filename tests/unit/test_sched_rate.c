/*
 * test_sched_rate.c - table-driven tests for the destination limits: the
 *                     token bucket and the concurrency feedback arithmetic
 *                     (src/sched/sched_rate.c), the throttling-reply test,
 *                     and the destination_policy_file / rate parser
 *                     (src/mail/dest_policy.c)
 *
 * Owns:     the policies parsed per row.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; virtual clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mail/dest_policy.h"
#include "sched/sched_rate.h"
#include "smtpc/smtpc.h"

#define PFX "destination_policy_file p "

/* The bucket: 5/s spaces starts 200 ms apart; an idle bucket holds one token only. */
static void
test_rate_bucket(void **state)
{
	static const struct {
		uint32_t n, per_s;
		uint64_t now;           /* µs; each row asks at now, then takes if wait is 0 */
		uint64_t want_wait;
	} rows[] = {
		{ 5, 1, 1000000, 0 },           /* first: at once */
		{ 5, 1, 1000000, 200000 },      /* second at the same time: 200 ms later */
		{ 5, 1, 1100000, 100000 },
		{ 5, 1, 1200000, 0 },           /* its time: taken */
		{ 5, 1, 1300000, 100000 },
		{ 5, 1, 9000000, 0 },           /* long idle: one token ... */
		{ 5, 1, 9000000, 200000 },      /* ... not a burst */
		{ 100, 60, 20000000, 0 },       /* 100/m: 600 ms apart */
		{ 100, 60, 20000001, 599999 },
	};
	struct sched_rate r;
	int failed = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t w;

		sched_rate_set(&r, rows[i].n, rows[i].per_s);
		w = sched_rate_wait(&r, rows[i].now);
		if (w != rows[i].want_wait) {
			printf("row %zu: got wait %llu, want %llu\n", i, (unsigned long long)w,
			    (unsigned long long)rows[i].want_wait);
			failed++;
		}
		if (w == 0)
			sched_rate_take(&r, rows[i].now);
	}
	/* no limit: never a wait */
	sched_rate_set(&r, 0, 0);
	assert_int_equal(r.interval_us, 0);
	assert_int_equal(sched_rate_wait(&r, 0), 0);
	/* 20 messages at 5/s, each as soon as allowed: 19 gaps of 200 ms */
	sched_rate_set(&r, 5, 1);
	r.next_us = 0;
	{
		uint64_t t = 0, first = 0;

		for (int k = 0; k < 20; k++) {
			t += sched_rate_wait(&r, t);
			if (k == 0)
				first = t;
			sched_rate_take(&r, t);
		}
		assert_int_equal(t - first, 19 * 200000);
	}
	assert_int_equal(failed, 0);
}

/* The feedback: halve once per cohort, grow one per `limit` successes, slow start. */
static void
test_feedback(void **state)
{
	struct sched_fb f;

	(void)state;
	sched_fb_init(&f, 20, 5);
	assert_int_equal(f.limit, 5);
	sched_fb_connected(&f);                 /* slow start */
	assert_int_equal(f.limit, 6);
	/* 6 allowed, 4 open: halve from what is really used */
	assert_int_equal(sched_fb_throttle(&f, 0, 4), 1);
	assert_int_equal(f.limit, 2);
	assert_true(f.throttled);
	/* the rest of that cohort (started in epoch 0) changes nothing */
	assert_int_equal(sched_fb_throttle(&f, 0, 4), 0);
	assert_int_equal(f.limit, 2);
	sched_fb_connected(&f);                 /* no slow start while throttled */
	assert_int_equal(f.limit, 2);
	/* +1 per `limit` successes */
	assert_int_equal(sched_fb_success(&f), 0);
	assert_int_equal(sched_fb_success(&f), 1);
	assert_int_equal(f.limit, 3);
	for (int i = 0; i < 2; i++)
		assert_int_equal(sched_fb_success(&f), 0);
	assert_int_equal(sched_fb_success(&f), 1);
	assert_int_equal(f.limit, 4);
	/* a new cohort's signal halves again, never below 1 */
	assert_int_equal(sched_fb_throttle(&f, 1, 0), 1);
	assert_int_equal(f.limit, 2);
	assert_int_equal(sched_fb_throttle(&f, 2, 1), 1);
	assert_int_equal(f.limit, 1);
	assert_int_equal(sched_fb_throttle(&f, 3, 1), 1);
	assert_int_equal(f.limit, 1);
	assert_int_equal(f.halvings, 4);
	/* grows back to max: 1+2+...+19 successes from 1 to 20, then not throttled */
	{
		unsigned n = 0;

		while (f.throttled && n < 1000) {
			sched_fb_success(&f);
			n++;
		}
		assert_int_equal(n, 190);
		assert_int_equal(f.limit, 20);
		assert_false(f.throttled);
		assert_int_equal(sched_fb_success(&f), 0);
	}
	/* a lower max (SIGHUP) caps the limit and may end the throttled state */
	sched_fb_throttle(&f, f.epoch, 0);
	assert_int_equal(f.limit, 10);
	sched_fb_set_max(&f, 8);
	assert_int_equal(f.limit, 8);
	assert_false(f.throttled);
	sched_fb_init(&f, 0, 5);
	assert_int_equal(f.limit, 1);
	assert_int_equal(f.max, 1);
}

static void
test_throttle_reply(void **state)
{
	static const struct {
		int code;
		const char *dsn, *text;
		int want;
	} rows[] = {
		{ 421, "4.7.0", "421 4.7.0 Too many connections, slow down", 1 },
		{ 421, "", "421 Service not available", 1 },
		{ 451, "4.7.1", "451 4.7.1 Rate limit exceeded", 1 },
		{ 450, "4.7.1", "450 4.7.1 Client host rejected: too MANY messages", 1 },
		{ 452, "4.7.0", "452 4.7.0 Throttled, try later", 1 },
		{ 451, "4.3.0", "451 4.3.0 rate limited (not 4.7.x)", 0 },
		{ 452, "4.5.3", "452 4.5.3 Too many recipients", 0 },
		{ 451, "4.7.1", "451 4.7.1 Greylisted", 0 },
		{ 550, "5.7.1", "550 5.7.1 rate limit", 0 },
		{ 0, "4.4.1", "connect to x: Connection refused", 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtpc_reply r;
		int got;

		memset(&r, 0, sizeof(r));
		r.code = rows[i].code;
		snprintf(r.dsn, sizeof(r.dsn), "%s", rows[i].dsn);
		snprintf(r.text, sizeof(r.text), "%s", rows[i].text);
		if ((got = sched_rate_throttle_reply(&r)) != rows[i].want) {
			printf("row %zu: got %d, want %d\n", i, got, rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_rate_parse(void **state)
{
	static const struct {
		const char *in;
		int ok;
		uint32_t n, per_s;
		const char *out;        /* dest_rate_format */
	} rows[] = {
		{ "", 1, 0, 0, "" },
		{ "none", 1, 0, 0, "" },
		{ "5/s", 1, 5, 1, "5/s" },
		{ "100/m", 1, 100, 60, "100/m" },
		{ "100/min", 1, 100, 60, "100/m" },
		{ "3600/h", 1, 3600, 3600, "3600/h" },
		{ "1/d", 1, 1, 86400, "1/d" },
		{ "1000000/s", 1, 1000000, 1, "1000000/s" },
		{ "1000001/s", 0, 0, 0, NULL },
		{ "0/s", 0, 0, 0, NULL },
		{ "5", 0, 0, 0, NULL },
		{ "5/", 0, 0, 0, NULL },
		{ "/s", 0, 0, 0, NULL },
		{ "-5/s", 0, 0, 0, NULL },
		{ "+5/s", 0, 0, 0, NULL },
		{ "5/w", 0, 0, 0, NULL },
		{ "5 /s", 0, 0, 0, NULL },
		{ "99999999999/s", 0, 0, 0, NULL },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dest_rate r = { 7, 7 };
		char why[160] = "", out[32] = "?";
		int rc = dest_rate_parse(rows[i].in, &r, why, sizeof(why));

		if ((rc == 0) != rows[i].ok || (rc == 0 && (r.n != rows[i].n ||
		    r.per_s != rows[i].per_s))) {
			printf("row %zu '%s': got rc %d %u/%u (%s), want ok=%d %u/%u\n", i, rows[i].in,
			    rc, r.n, r.per_s, why, rows[i].ok, rows[i].n, rows[i].per_s);
			failed++;
			continue;
		}
		if (rc == 0 && (dest_rate_format(&r, out, sizeof(out)) < 0 ||
		    strcmp(out, rows[i].out) != 0)) {
			printf("row %zu: got format '%s', want '%s'\n", i, out, rows[i].out);
			failed++;
		}
		if (rc < 0 && strncmp(why, "expected N/UNIT", 15) != 0) {
			printf("row %zu: got why '%s'\n", i, why);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_policy_parse(void **state)
{
	static const struct {
		const char *in;
		const char *err;             /* NULL: parses */
		size_t n;
	} rows[] = {
		{ "", NULL, 0 },
		{ "# comment\n\n  \t\n", NULL, 0 },
		{ "example.com concurrency=2\n", NULL, 1 },
		{ "A.example rate=5/s concurrency=3 # c\r\nb.example rate=none\n", NULL, 2 },
		{ "a.example\n", PFX "line 1: expected DOMAIN [concurrency=N] [rate=N/UNIT]: no limit given", 0 },
		{ "\na.example speed=3\n", PFX "line 2: unknown option 'speed=3' (expected concurrency=N or "
		  "rate=N/UNIT)", 0 },
		{ "a.example concurrency=0\n", PFX "line 1: concurrency: expected a number from 1 to 1000", 0 },
		{ "a.example concurrency=1001\n", PFX "line 1: concurrency: expected a number from 1 to 1000",
		  0 },
		{ "a.example concurrency=1 concurrency=2\n", PFX "line 1: concurrency given twice", 0 },
		{ "a.example rate=5/s rate=6/s\n", PFX "line 1: rate given twice", 0 },
		{ "a.example rate=\n", PFX "line 1: rate: expected N/UNIT (e.g. 100/m) or none", 0 },
		{ "a.example rate=5/x\n", PFX "line 1: rate: expected N/UNIT with N from 1 to 1000000 and "
		  "UNIT s, m, h or d (e.g. 100/m), or none", 0 },
		{ "a.example rate=1/s concurrency=1 x y\n", PFX "line 1: expected DOMAIN [concurrency=N] "
		  "[rate=N/UNIT]: too many fields", 0 },
		{ "a/b concurrency=1\n", PFX "line 1: expected DOMAIN [concurrency=N] [rate=N/UNIT]: not a "
		  "domain", 0 },
		{ "b.example rate=1/s\na.example rate=1/s\nB.EXAMPLE concurrency=2\n",
		  PFX "line 3: domain b.example repeated (first on line 1)", 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char err[256] = "";
		struct dest_policy *p = dest_policy_parse(rows[i].in, strlen(rows[i].in), "p", err,
		    sizeof(err));

		if (rows[i].err == NULL && (p == NULL || p->n != rows[i].n)) {
			printf("row %zu: got %s (%s), want %zu rules\n", i, p ? "a policy" : "NULL",
			    err, rows[i].n);
			failed++;
		} else if (rows[i].err != NULL && (p != NULL || strcmp(err, rows[i].err) != 0)) {
			printf("row %zu: got '%s', want '%s'\n", i, err, rows[i].err);
			failed++;
		}
		dest_policy_free(p);
	}
	assert_int_equal(failed, 0);
}

static void
test_policy_lookup(void **state)
{
	const char *text = "z.example concurrency=1\nA.example rate=5/s concurrency=3\n"
	    "m.example rate=none\n";
	char err[256];
	struct dest_policy *p = dest_policy_parse(text, strlen(text), "p", err, sizeof(err));
	const struct dest_policy_rule *r;

	(void)state;
	assert_non_null(p);
	assert_int_equal(p->n, 3);
	r = dest_policy_lookup(p, "a.EXAMPLE");
	assert_non_null(r);
	assert_string_equal(r->domain, "a.example");
	assert_int_equal(r->concurrency, 3);
	assert_true(r->has_rate);
	assert_int_equal(r->rate.n, 5);
	assert_int_equal(r->line, 2);
	r = dest_policy_lookup(p, "m.example");
	assert_non_null(r);
	assert_true(r->has_rate);
	assert_int_equal(r->rate.n, 0);
	assert_int_equal(r->concurrency, 0);
	assert_non_null(dest_policy_lookup(p, "z.example"));
	assert_null(dest_policy_lookup(p, "b.example"));
	assert_null(dest_policy_lookup(p, ""));
	assert_null(dest_policy_lookup(NULL, "a.example"));
	dest_policy_free(p);
}

static void
test_policy_bounds(void **state)
{
	static char big[DEST_POLICY_LINE_MAX + 64];
	char err[256];
	struct dest_policy *p;
	char *many;
	size_t len = 0, cap = (size_t)(DEST_POLICY_MAX_RULES + 1) * 32;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	assert_null(dest_policy_parse(big, strlen(big), "p", err, sizeof(err)));
	assert_string_equal(err, PFX "line 1: line too long");
	assert_null(dest_policy_parse("a rate=1/s\0x\n", 13, "p", err, sizeof(err)));
	assert_string_equal(err, PFX "line 1: NUL in the line");
	many = test_malloc(cap);
	for (unsigned i = 0; i <= DEST_POLICY_MAX_RULES; i++)
		len += (size_t)snprintf(many + len, cap - len, "d%u.example rate=1/s\n", i);
	p = dest_policy_parse(many, len, "p", err, sizeof(err));
	assert_null(p);
	assert_string_equal(err, PFX "line 10001: too many lines");
	p = dest_policy_parse(many, len - strlen("d10000.example rate=1/s\n"), "p", err,
	    sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->n, DEST_POLICY_MAX_RULES);
	assert_non_null(dest_policy_lookup(p, "d9999.example"));
	dest_policy_free(p);
	test_free(many);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_bucket),
		cmocka_unit_test(test_feedback),
		cmocka_unit_test(test_throttle_reply),
		cmocka_unit_test(test_rate_parse),
		cmocka_unit_test(test_policy_parse),
		cmocka_unit_test(test_policy_lookup),
		cmocka_unit_test(test_policy_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
