/*
 * test_relay_map.c - table-driven tests for src/mail/relay_map.c: the
 *                    sender_relay_map parser and the first-match lookup
 *
 * Owns:     the maps parsed per row.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mail/relay_map.h"

static void
test_parse_errors(void **state)
{
	static const struct {
		const char *in;
		const char *err;             /* NULL: parses */
		size_t n;
	} rows[] = {
		{ "", NULL, 0 },
		{ "# only a comment\n\n   \n", NULL, 0 },
		{ "@a.example relay.example\n", NULL, 1 },
		{ "bob@b.example [192.0.2.1]:587 bob bob.pw # comment\r\n@c.example smtps://r\n", NULL, 2 },
		{ "@a.example\n", "line 1: expected PATTERN RELAY [USERNAME PASSWORD_FILE]", 0 },
		{ "\n@a.example r user\n", "line 2: expected PATTERN RELAY [USERNAME PASSWORD_FILE]", 0 },
		{ "@a.example r u p extra\n", "line 1: expected PATTERN RELAY [USERNAME PASSWORD_FILE]", 0 },
		{ "a.example r\n", "line 1: the pattern must be user@domain or @domain", 0 },
		{ "a@b@c r\n", "line 1: the pattern must be user@domain or @domain", 0 },
		{ "bob@ r\n", "line 1: the pattern must be user@domain or @domain", 0 },
		{ "@a.example [r\n", "line 1: the relay must be host, host:port, [host], [host]:port or "
		  "smtps://host[:port]", 0 },
		{ "@a.example r:0\n", "line 1: the relay must be host, host:port, [host], [host]:port or "
		  "smtps://host[:port]", 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char err[256] = "";
		struct relay_map *m = relay_map_parse(rows[i].in, strlen(rows[i].in), err,
		    sizeof(err));

		if (rows[i].err == NULL && (m == NULL || m->n != rows[i].n)) {
			printf("row %zu: got %s (%s), want %zu rules\n", i, m ? "a map" : "NULL", err,
			    rows[i].n);
			failed++;
		} else if (rows[i].err != NULL && (m != NULL || strcmp(err, rows[i].err) != 0)) {
			printf("row %zu: got '%s', want '%s'\n", i, err, rows[i].err);
			failed++;
		}
		relay_map_free(m);
	}
	assert_int_equal(failed, 0);
}

static void
test_lookup(void **state)
{
	static const char map[] =
	    "Bob@B.example   [192.0.2.2]:587  bob  bob.pw\n"
	    "@b.example      [192.0.2.3]\n"
	    "@a.example      smtps://relay-a.example\n"
	    "carol@a.example [192.0.2.9]\n";          /* after @a.example: never reached */
	static const struct {
		const char *sender;
		long idx;                    /* -1: no rule */
	} rows[] = {
		{ "bob@b.example", 0 }, { "BOB@b.EXAMPLE", 0 }, { "alice@b.example", 1 },
		{ "carol@a.example", 2 }, { "x@sub.a.example", -1 }, { "", -1 }, { "noat", -1 },
		{ "x@c.example", -1 }, { "bob@b.example.org", -1 },
	};
	char err[256];
	struct relay_map *m = relay_map_parse(map, strlen(map), err, sizeof(err));
	int failed = 0;

	(void)state;
	assert_non_null(m);
	assert_int_equal(m->n, 4);
	assert_string_equal(m->rules[0].username, "bob");
	assert_string_equal(m->rules[0].password_file, "bob.pw");
	assert_null(m->rules[1].username);
	assert_true(m->rules[2].relay.smtps && m->rules[2].relay.port == 465);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t idx = 99;
		const struct relay_rule *r = relay_map_lookup(m, rows[i].sender, &idx);
		long got = r != NULL ? (long)idx : -1;

		if (got != rows[i].idx) {
			printf("row %zu '%s': got %ld, want %ld\n", i, rows[i].sender, got, rows[i].idx);
			failed++;
		}
	}
	assert_null(relay_map_lookup(NULL, "a@b", NULL));
	relay_map_free(m);
	assert_int_equal(failed, 0);
}

/* bounded: a line over the limit and too many rules are errors */
static void
test_bounds(void **state)
{
	static char big[RELAY_MAP_LINE_MAX + 64];
	char err[256];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "@a.example ", 11);
	assert_null(relay_map_parse(big, strlen(big), err, sizeof(err)));
	assert_string_equal(err, "line 1: line too long");
	assert_null(relay_map_parse("@a r\0x\n", 7, err, sizeof(err)));
	assert_string_equal(err, "line 1: NUL in the line");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
