/*
 * test_tablefile.c - table-driven tests for src/mail/tablefile.c: lines,
 *                    comments, fields, bounds and the error form
 *
 * Owns:     one reader per row and a temporary key store directory.
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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/tablefile.h"

/* blanks, '#' anywhere, at most 3 fields, lines of 16 octets (as dkim_key_table) */
static const struct tablefile_format blanks = { "blank_table", 16, '\0', 3, 1 };
/* ':' with the rest in the third field, '#' in column one only (as smtpd_users_file) */
static const struct tablefile_format colons = { "colon_table", 16, ':', 3, 0 };
/* no name: errors are "line N: what" (as relay_map_parse) */
static const struct tablefile_format nameless = { NULL, 16, '\0', 2, 1 };

/* read_all - every entry as "N:f1|f2;", or the error; into out */
static void
read_all(const struct tablefile_format *fmt, const char *file, const char *text, size_t len,
    char *out, size_t size)
{
	struct tablefile t;
	struct tablefile_line l;
	char err[256];
	size_t off = 0;
	int r;

	out[0] = '\0';
	if (tablefile_open_text(&t, fmt, file, text, len, err, sizeof(err)) < 0) {
		snprintf(out, size, "open: %s", err);
		return;
	}
	while ((r = tablefile_next(&t, &l, err, sizeof(err))) > 0) {
		off += (size_t)snprintf(out + off, size - off, "%u:", l.lineno);
		for (unsigned i = 0; i < l.n; i++)
			off += (size_t)snprintf(out + off, size - off, "%s%s", i ? "|" : "", l.field[i]);
		off += (size_t)snprintf(out + off, size - off, ";");
	}
	if (r < 0)
		snprintf(out, size, "error: %s", err);
	tablefile_close(&t);
}

static void
test_lines(void **state)
{
	static const struct {
		const char *name;
		const struct tablefile_format *fmt;
		const char *in;
		size_t len;                  /* 0: strlen(in) */
		const char *want;
	} rows[] = {
		{ "empty", &blanks, "", 0, "" },
		{ "blank and comment lines", &blanks, "\n  \t\n# c\n   # c\n\r\n", 0, "" },
		{ "fields", &blanks, "a b  c\n", 0, "1:a|b|c;" },
		{ "tabs and CR", &blanks, "a\tb\r\n\tc d\r\n", 0, "1:a|b;2:c|d;" },
		{ "no last LF", &blanks, "a\nb c", 0, "1:a;2:b|c;" },
		{ "comment after fields", &blanks, "a b#c\nd # e f\n", 0, "1:a|b;2:d;" },
		{ "too many fields", &blanks, "a b c d e\n", 0, "1:a|b|c|d e;" },
		{ "line numbers skip nothing", &blanks, "#\n\na\n", 0, "3:a;" },
		{ "line of 16", &blanks, "aaaaaaaaaaaaaaaa\n", 0, "1:aaaaaaaaaaaaaaaa;" },
		{ "line of 17", &blanks, "a\naaaaaaaaaaaaaaaaa\n", 0,
		  "error: blank_table t line 2: line too long" },
		{ "NUL", &blanks, "a\nb\0c\n", 6, "error: blank_table t line 2: NUL in the line" },
		{ "colons", &colons, "u:h\nv:h:p,q\n", 0, "1:u|h;2:v|h|p,q;" },
		{ "colons: rest kept", &colons, "u:h:p:q:r\n", 0, "1:u|h|p:q:r;" },
		{ "colons: empty fields", &colons, "::\n", 0, "1:||;" },
		{ "colons: trailing CRs", &colons, "u:h\r\r\n", 0, "1:u|h;" },
		{ "colons: '#' inside", &colons, "# c\nu:h#x\n", 0, "2:u|h#x;" },
		{ "colons: blanks kept", &colons, " u : h \n \t\n", 0, "1: u | h ;" },
		{ "colons: one field", &colons, "u\n", 0, "1:u;" },
		{ "nameless error", &nameless, "aaaaaaaaaaaaaaaaaaaa", 0, "error: line 1: line too long" },
	};
	char out[512];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = rows[i].len != 0 ? rows[i].len : strlen(rows[i].in);

		read_all(rows[i].fmt, rows[i].fmt == &nameless ? NULL : "t", rows[i].in, len, out,
		    sizeof(out));
		if (strcmp(out, rows[i].want) != 0) {
			printf("%s: got '%s', want '%s'\n", rows[i].name, out, rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* tablefile_err leaves out the parts that are missing */
static void
test_err_form(void **state)
{
	static const struct tablefile_format named = { "x_table", 8, '\0', 1, 1 };
	static const struct {
		const struct tablefile_format *fmt;
		const char *file;
		unsigned line;
		const char *want;
	} rows[] = {
		{ &named, "f.map", 7, "x_table f.map line 7: what" },
		{ &named, "f.map", 0, "x_table f.map: what" },
		{ &named, NULL, 3, "x_table line 3: what" },
		{ &nameless, "f.map", 3, "f.map line 3: what" },
		{ &nameless, NULL, 3, "line 3: what" },
		{ &nameless, NULL, 0, "what" },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tablefile t = { .fmt = rows[i].fmt, .file = rows[i].file };
		char err[64];

		tablefile_err(&t, rows[i].line, err, sizeof(err), "%s", "what");
		if (strcmp(err, rows[i].want) != 0) {
			printf("row %zu: got '%s', want '%s'\n", i, err, rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* tablefile_open reads beneath the key store and names the file in its errors */
static void
test_open(void **state)
{
	char root[] = "/tmp/test_tablefile.XXXXXX", path[128], err[256];
	struct tablefile t;
	struct tablefile_line l;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/tab", root);
	assert_non_null(f = fopen(path, "w"));
	fputs("# c\nk v\n", f);
	fclose(f);

	assert_int_equal(tablefile_open(&t, &blanks, root, "tab", err, sizeof(err)), 0);
	assert_int_equal(tablefile_next(&t, &l, err, sizeof(err)), 1);
	assert_int_equal(l.lineno, 2);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.field[1], "v");
	assert_int_equal(tablefile_next(&t, &l, err, sizeof(err)), 0);
	tablefile_close(&t);
	assert_null(t.text);
	tablefile_close(&t);                 /* a closed reader closes again */

	assert_int_equal(tablefile_open(&t, &blanks, root, "missing", err, sizeof(err)), -1);
	assert_true(strncmp(err, "blank_table missing: ", 21) == 0);
	tablefile_close(&t);
	assert_int_equal(tablefile_open(&t, &blanks, root, "../tab", err, sizeof(err)), -1);
	assert_true(strncmp(err, "blank_table ../tab: ", 20) == 0);
	tablefile_close(&t);
	assert_int_equal(tablefile_open(&t, &blanks, "", "tab", err, sizeof(err)), -1);
	assert_string_equal(err, "blank_table tab: no key store is configured (set key_dir or fs_dir)");
	tablefile_close(&t);

	unlink(path);
	rmdir(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_err_form),
		cmocka_unit_test(test_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
