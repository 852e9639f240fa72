/*
 * test_ctl_filter.c - mtactl's filter options (src/ctl/ctl_filter.c): the
 *                     options and their spellings, the values refused, and
 *                     the query string sent to the API (percent-encoded,
 *                     bounded)
 *
 * Owns:     nothing beyond each test's locals.
 * Lifetime: one run.
 * Errors:   each failing row prints what it got and fails its test.
 * Context:  the test thread only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ctl/ctl_int.h"

#define NOW_US (1700000000ULL * 1000000)

/* parse - run ctl_filter_opt over argv (a NULL-terminated list) as mtactl does; rc of the last */
static int
parse(struct ctl_filter *f, char **argv, char *err, size_t errlen)
{
	int argc = 0, rc = 0;

	while (argv[argc] != NULL)
		argc++;
	ctl_filter_init(f, NOW_US);
	for (int i = 0; i < argc; i++)
		if ((rc = ctl_filter_opt(f, argc, argv, &i, err, errlen)) <= 0)
			return rc;
	return rc;
}

static void
test_options_to_query(void **state)
{
	char a0[] = "--domain", a1[] = "@Example.ORG", a2[] = "--from=a b&c=d",
	    a3[] = "--state", a4[] = "held", a5[] = "--min-age", a6[] = "2h",
	    a7[] = "--domain=x.test", a8[] = "--search", a9[] = "100%~ok_.-/";
	char *argv[] = { a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, NULL };
	struct ctl_filter f;
	char err[256], q[CTL_FILTER_QUERY_MAX];

	(void)state;
	assert_int_equal(parse(&f, argv, err, sizeof(err)), 1);
	assert_true(f.hf.any);
	/* a repeated option replaces its value, in its first place */
	assert_int_equal(f.n, 5);
	assert_int_equal(ctl_filter_query(&f, q, sizeof(q)), 0);
	assert_string_equal(q, "&domain=x.test&sender=a%20b%26c%3Dd&state=held&min_age=2h"
	    "&q=100%25~ok_.-%2F");
	/* the API's filter got the same criteria */
	assert_string_equal(f.hf.domain, "x.test");
	assert_string_equal(f.hf.sender, "a b&c=d");
	assert_int_equal(f.hf.state, QUEUE_VIEW_HELD);
	assert_int_equal(f.hf.min_age, 7200);
	/* too small a buffer is refused, never cut */
	assert_int_equal(ctl_filter_query(&f, q, 20), -1);
	assert_int_equal(ctl_filter_query(&f, q, 0), -1);
}

static void
test_spellings(void **state)
{
	static const struct {
		const char *opt, *value;
		size_t off;          /* offsetof the slot in struct http_filter */
	} rows[] = {
		{ "--sender", "s", offsetof(struct http_filter, sender) },
		{ "--from", "s", offsetof(struct http_filter, sender) },
		{ "--rcpt", "r", offsetof(struct http_filter, rcpt) },
		{ "--recipient", "r", offsetof(struct http_filter, rcpt) },
		{ "--to", "r", offsetof(struct http_filter, rcpt) },
		{ "--search", "t", offsetof(struct http_filter, q) },
		{ "--domain", "d", offsetof(struct http_filter, domain) },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char o[32], v[8], err[256];
		char *argv[] = { o, v, NULL };
		struct ctl_filter f;
		const char *got;

		snprintf(o, sizeof(o), "%s", rows[i].opt);
		snprintf(v, sizeof(v), "%s", rows[i].value);
		assert_int_equal(parse(&f, argv, err, sizeof(err)), 1);
		memcpy(&got, (const char *)&f.hf + rows[i].off, sizeof(got));
		if (got == NULL || strcmp(got, rows[i].value) != 0)
			fail_msg("%s: got %s", rows[i].opt, got ? got : "(null)");
	}
}

static void
test_refused(void **state)
{
	static const struct {
		const char *a, *b;      /* b NULL: the option alone */
		const char *err;
	} rows[] = {
		{ "--state", "bogus", "--state bogus: want active, deferred, held or any" },
		{ "--min-age", "5x", "--min-age 5x: want seconds, or a number with s, m, h or d" },
		{ "--max-age", "-1", "--max-age -1: want seconds" },
		{ "--max-age", "99999d", "--max-age 99999d: want seconds" },
		{ "--domain", NULL, "--domain: needs a value" },
		{ "--domain=", NULL, "--domain: empty value" },
		{ "--sender", "", "--sender: empty value" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char a[32], b[32], err[256];
		char *argv[] = { a, rows[i].b ? b : NULL, NULL };
		struct ctl_filter f;

		snprintf(a, sizeof(a), "%s", rows[i].a);
		snprintf(b, sizeof(b), "%s", rows[i].b ? rows[i].b : "");
		err[0] = '\0';
		assert_int_equal(parse(&f, argv, err, sizeof(err)), -1);
		if (strncmp(err, rows[i].err, strlen(rows[i].err)) != 0)
			fail_msg("%s: got \"%s\"", rows[i].a, err);
	}
	/* text past the API's bound of 320 characters */
	{
		char a[] = "--search", big[400], err[256];
		char *argv[] = { a, big, NULL };
		struct ctl_filter f;

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(parse(&f, argv, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "longer than 320 characters"));
	}
	/* not a filter option: left to the caller */
	{
		char a[] = "--json", b[] = "--domainx", err[256];
		char *argv[] = { a, NULL }, *argv2[] = { b, NULL };
		struct ctl_filter f;

		assert_int_equal(parse(&f, argv, err, sizeof(err)), 0);
		assert_int_equal(parse(&f, argv2, err, sizeof(err)), 0);
		assert_false(f.hf.any);
	}
}

/* the longest filters the options allow fit the query buffer */
static void
test_longest_query_fits(void **state)
{
	static const char *const keys[] = { "domain", "sender", "rcpt", "q" };
	char v[321], err[256], q[CTL_FILTER_QUERY_MAX];
	struct ctl_filter f;

	(void)state;
	memset(v, '/', sizeof(v) - 1);       /* each byte encoded as %2F */
	v[sizeof(v) - 1] = '\0';
	ctl_filter_init(&f, NOW_US);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(ctl_filter_add(&f, keys[i], v, err, sizeof(err)), 0);
	assert_int_equal(ctl_filter_add(&f, "state", "deferred", err, sizeof(err)), 0);
	assert_int_equal(ctl_filter_add(&f, "min_age", "3650d", err, sizeof(err)), 0);
	assert_int_equal(ctl_filter_add(&f, "max_age", "3650d", err, sizeof(err)), 0);
	assert_int_equal(ctl_filter_query(&f, q, sizeof(q)), 0);
	assert_true(strlen(q) > 4 * 3 * 320);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_to_query),
		cmocka_unit_test(test_spellings),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_longest_query_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
