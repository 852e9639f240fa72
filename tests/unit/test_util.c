/*
 * test_util.c - table-driven tests for src/lib/util.c: util_list_next()
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

#include <stdio.h>
#include <string.h>

#include "lib/util.h"

/* The items a list splits into, joined with '|' ("" = no item). */
static const struct {
	const char *in;
	const char *want;
} list_rows[] = {
	{ "",                          "" },
	{ " ,\t, ,,",                  "" },
	{ "a",                         "a" },
	{ "a,b",                       "a|b" },
	{ "a b",                       "a|b" },
	{ "a\tb",                      "a|b" },
	{ "  a ,, b\t,c  ",            "a|b|c" },
	{ "127.0.0.1:25, [::1]:587",   "127.0.0.1:25|[::1]:587" },
	{ "10.0.0.0/8\n",              "10.0.0.0/8\n" },     /* only , space and tab separate */
	{ "x;y",                       "x;y" },
};

static void
test_list_next(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(list_rows) / sizeof(list_rows[0]); i++) {
		const char *p = list_rows[i].in;
		char got[256];
		size_t o = 0;
		struct str item;
		int n = 0;

		got[0] = '\0';
		while (util_list_next(&p, &item)) {
			if (item.len == 0)
				fail_msg("row %zu \"%s\": got an empty item", i, list_rows[i].in);
			if (o + item.len + 2 > sizeof(got))
				fail_msg("row %zu: too long", i);
			if (n++ > 0)
				got[o++] = '|';
			memcpy(got + o, item.p, item.len);
			o += item.len;
			got[o] = '\0';
			if (n > 20)
				fail_msg("row %zu \"%s\": more than 20 items", i, list_rows[i].in);
		}
		if (strcmp(got, list_rows[i].want) != 0)
			fail_msg("row %zu \"%s\": got \"%s\", want \"%s\"", i, list_rows[i].in, got,
			    list_rows[i].want);
		if (*p != '\0')
			fail_msg("row %zu \"%s\": at the end *pp is \"%s\", want \"\"", i,
			    list_rows[i].in, p);
		/* at the end it stays at the end */
		if (util_list_next(&p, &item) != 0)
			fail_msg("row %zu: got an item after the end", i);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_next),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
