/*
 * test_cidr.c - table-driven tests for src/lib/cidr.c
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/cidr.h"
#include "lib/util.h"

/* Parsing and the canonical text: want NULL = the list must be rejected. */
static const struct {
	const char *in;
	const char *want;       /* cidr_list_format() output, NULL = parse error */
} parse_rows[] = {
	{ "", "" },
	{ "   ,, ,", "" },
	{ "127.0.0.1", "127.0.0.1" },
	{ "127.0.0.1/32", "127.0.0.1" },
	{ "10.0.0.0/8", "10.0.0.0/8" },
	{ "127.0.0.1, 10.0.0.0/8", "127.0.0.1, 10.0.0.0/8" },
	{ "127.0.0.1 10.0.0.0/8", "127.0.0.1, 10.0.0.0/8" },
	{ "127.0.0.1,10.0.0.0/8\t192.168.0.0/16", "127.0.0.1, 10.0.0.0/8, 192.168.0.0/16" },
	{ "0.0.0.0/0", "0.0.0.0/0" },
	{ "::1", "::1" },
	{ "::1/128", "::1" },
	{ "[::1]", "::1" },
	{ "[::1]/128", "::1" },
	{ "2001:db8::/32", "2001:db8::/32" },
	{ "2001:DB8:0:0::/64", "2001:db8::/64" },
	{ "::/0", "::/0" },
	{ "::ffff:10.0.0.0/104", "10.0.0.0/8" },
	{ "::ffff:192.0.2.1", "192.0.2.1" },
	{ "fe80::/10, 127.0.0.0/8", "fe80::/10, 127.0.0.0/8" },
	{ "10.0.0.0/0", NULL },        /* host bits set after /0 */
	{ "10.1.2.3/8", NULL },
	{ "2001:db8::1/32", NULL },
	{ "10.0.0.0/33", NULL },
	{ "::/129", NULL },
	{ "10.0.0.0/", NULL },
	{ "10.0.0.0/-1", NULL },
	{ "10.0.0.0/+8", NULL },
	{ "10.0.0.0/0008", NULL },
	{ "10.0.0.0/8/8", NULL },
	{ "10.0.0", NULL },
	{ "256.0.0.1", NULL },
	{ "localhost", NULL },
	{ "1.2.3.4.5", NULL },
	{ "[10.0.0.1]", NULL },
	{ "[::1", NULL },
	{ ":::1", NULL },
	{ "127.0.0.1;10.0.0.0/8", NULL },
	{ "127.0.0.1, bogus", NULL },
	{ "0x7f.0.0.1", NULL },
	{ "010.0.0.1", NULL },
};

static void
test_parse(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
		char err[128], out[512];
		struct cidr_list *l = cidr_list_parse(parse_rows[i].in, err, sizeof(err));

		if (parse_rows[i].want == NULL) {
			if (l != NULL) {
				cidr_list_format(l, out, sizeof(out));
				print_error("row %zu '%s': got '%s', want a parse error\n", i,
				    parse_rows[i].in, out);
				failed++;
			} else if (err[0] == '\0') {
				print_error("row %zu '%s': got an empty error text, want a reason\n", i,
				    parse_rows[i].in);
				failed++;
			}
			continue;
		}
		if (l == NULL) {
			print_error("row %zu '%s': got error '%s', want '%s'\n", i,
			    parse_rows[i].in, err, parse_rows[i].want);
			failed++;
			continue;
		}
		if (cidr_list_format(l, out, sizeof(out)) < 0 || strcmp(out, parse_rows[i].want) != 0) {
			print_error("row %zu '%s': got '%s', want '%s'\n", i, parse_rows[i].in, out,
			    parse_rows[i].want);
			failed++;
		}
		cidr_list_free(l);
	}
	assert_int_equal(failed, 0);
}

/* Matching: one list, one address, want 0/1. */
static const struct {
	const char *list;
	const char *addr;
	int want;
} match_rows[] = {
	{ "127.0.0.1", "127.0.0.1", 1 },
	{ "127.0.0.1", "127.0.0.2", 0 },
	{ "127.0.0.0/8", "127.255.255.255", 1 },
	{ "127.0.0.0/8", "128.0.0.1", 0 },
	{ "10.0.0.0/8, 192.168.1.0/24", "192.168.1.77", 1 },
	{ "10.0.0.0/8, 192.168.1.0/24", "192.168.2.1", 0 },
	{ "192.168.1.128/25", "192.168.1.127", 0 },
	{ "192.168.1.128/25", "192.168.1.128", 1 },
	{ "172.16.0.0/12", "172.31.255.255", 1 },
	{ "172.16.0.0/12", "172.32.0.0", 0 },
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "0.0.0.0/0", "2001:db8::1", 0 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::1", "::1", 1 },
	{ "::1", "::2", 0 },
	{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", "2001:db9::1", 0 },
	{ "2001:db8::/33", "2001:db8:8000::1", 0 },
	{ "2001:db8::/33", "2001:db8:7fff::1", 1 },
	{ "127.0.0.1", "::ffff:127.0.0.1", 1 },   /* v4-mapped client counts as v4 */
	{ "127.0.0.0/8", "::ffff:127.1.2.3", 1 },
	{ "127.0.0.1", "::1", 0 },
	{ "::ffff:10.0.0.0/104", "10.9.9.9", 1 },
	{ "::1", "127.0.0.1", 0 },
	{ "", "127.0.0.1", 0 },
	{ "", "::1", 0 },
};

/* to_sockaddr - numeric text into a sockaddr_storage */
static void
to_sockaddr(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
}

static void
test_match(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
		char err[128];
		struct sockaddr_storage ss;
		struct cidr_list *l = cidr_list_parse(match_rows[i].list, err, sizeof(err));
		int got;

		assert_non_null(l);
		to_sockaddr(match_rows[i].addr, &ss);
		got = cidr_list_match(l, (struct sockaddr *)&ss);
		if (got != match_rows[i].want) {
			print_error("row %zu: match('%s', %s): got %d, want %d\n", i,
			    match_rows[i].list, match_rows[i].addr, got, match_rows[i].want);
			failed++;
		}
		cidr_list_free(l);
	}
	assert_int_equal(failed, 0);
}

static const struct {
	const char *list;
	int want;
} open_rows[] = {
	{ "127.0.0.1", 0 },
	{ "0.0.0.0/0", 1 },
	{ "::/0", 1 },
	{ "127.0.0.1, 0.0.0.0/0", 1 },
	{ "0.0.0.0/1, 128.0.0.0/1", 0 },   /* open in effect, but not the 0/0 spelling */
	{ "", 0 },
	{ "::1 10.0.0.0/8", 0 },
};

static void
test_is_open(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(open_rows) / sizeof(open_rows[0]); i++) {
		char err[128];
		struct cidr_list *l = cidr_list_parse(open_rows[i].list, err, sizeof(err));
		int got;

		assert_non_null(l);
		got = cidr_list_is_open(l);
		if (got != open_rows[i].want) {
			print_error("row %zu: is_open('%s'): got %d, want %d\n", i, open_rows[i].list,
			    got, open_rows[i].want);
			failed++;
		}
		cidr_list_free(l);
	}
	assert_int_equal(failed, 0);
}

/* NULL handling, unknown families, a too-small format buffer, many entries. */
static void
test_edges(void **state)
{
	char err[128], small[8], big[65536];
	struct sockaddr sa;
	struct cidr_list *l;

	(void)state;
	assert_null(cidr_list_free(NULL));
	assert_int_equal(cidr_list_is_open(NULL), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	l = cidr_list_parse("0.0.0.0/0", err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(cidr_list_match(l, &sa), 0);
	assert_int_equal(cidr_list_match(l, NULL), 0);
	assert_int_equal(cidr_list_match(NULL, &sa), 0);
	cidr_list_free(l);

	l = cidr_list_parse("192.168.100.0/24, 10.0.0.0/8", err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(cidr_list_format(l, small, sizeof(small)), -1);
	assert_true(strlen(small) < sizeof(small));
	cidr_list_free(l);

	/* 4096 entries are accepted, 4097 are not (bounded memory). */
	{
		static char text[4097 * 12];
		size_t o = 0;

		for (int i = 0; i < 4097; i++) {
			int n = util_bsnprintf(text + o, sizeof(text) - o, "%s10.%d.%d.1",
			    i ? "," : "", i / 256, i % 256);
			assert_true(n > 0);
			o += (size_t)n;
		}
		l = cidr_list_parse(text, err, sizeof(err));
		assert_null(l);
		assert_string_equal(err, "too many networks");
		text[strlen(text) - strlen(",10.16.0.1")] = '\0';
		l = cidr_list_parse(text, err, sizeof(err));
		assert_non_null(l);
		assert_int_equal(cidr_list_format(l, big, sizeof(big)), 0);
		cidr_list_free(l);
	}

	/* A long garbage token is reported shortened, not overflowing err. */
	{
		char tok[300];

		memset(tok, 'a', sizeof(tok) - 1);
		tok[sizeof(tok) - 1] = '\0';
		l = cidr_list_parse(tok, err, sizeof(err));
		assert_null(l);
		assert_true(strlen(err) < sizeof(err));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_is_open),
		cmocka_unit_test(test_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
