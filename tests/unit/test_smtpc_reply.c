/*
 * test_smtpc_reply.c - table-driven tests of the SMTP reply parser
 *                      (src/smtpc/smtpc_reply.c)
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  plain process, no event loop.
 *
 * Every row is fed whole, one byte at a time and in chunks of 7, so the
 * resumable parser must give the same answer for every split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

struct reply_row {
	const char *name;
	const char *input;
	int         want_st;     /* of the last feed that ended a reply: DONE or INVALID */
	int         code;
	const char *dsn;
	const char *text;
	int         lines;       /* SMTPC_R_LINE results seen before DONE */
};

static const struct reply_row reply_rows[] = {
	{ "simple", "250 ok\r\n", SMTPC_R_DONE, 250, "2.0.0", "250 ok", 0 },
	{ "enhanced", "250 2.1.5 Ok\r\n", SMTPC_R_DONE, 250, "2.1.5", "250 2.1.5 Ok", 0 },
	{ "code only", "250\r\n", SMTPC_R_DONE, 250, "2.0.0", "250", 0 },
	{ "code and space", "354 \r\n", SMTPC_R_DONE, 354, "3.0.0", "354", 0 },
	{ "bare LF", "220 hello\n", SMTPC_R_DONE, 220, "2.0.0", "220 hello", 0 },
	{ "multi-line", "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n", SMTPC_R_DONE,
	  250, "2.0.0", "250 mx.example PIPELINING 8BITMIME", 2 },
	{ "multi-line dsn repeated", "550-5.1.1 The account\r\n550-5.1.1 does not\r\n"
	  "550 5.1.1 exist\r\n", SMTPC_R_DONE, 550, "5.1.1", "550 5.1.1 The account does not exist",
	  2 },
	{ "dsn class mismatch ignored", "550 4.1.1 odd\r\n", SMTPC_R_DONE, 550, "5.0.0",
	  "550 4.1.1 odd", 0 },
	{ "dsn three digits", "451 4.123.456 busy\r\n", SMTPC_R_DONE, 451, "4.123.456",
	  "451 4.123.456 busy", 0 },
	{ "dsn too long part", "451 4.1234.5 busy\r\n", SMTPC_R_DONE, 451, "4.0.0",
	  "451 4.1234.5 busy", 0 },
	{ "dsn glued to text", "250 2.0.0Ok\r\n", SMTPC_R_DONE, 250, "2.0.0", "250 2.0.0Ok", 0 },
	{ "dsn only", "421 4.4.2\r\n", SMTPC_R_DONE, 421, "4.4.2", "421 4.4.2", 0 },
	{ "control chars sanitised", "250 a\tb\x01" "c\x80\r\n", SMTPC_R_DONE, 250, "2.0.0",
	  "250 a?b?c?", 0 },
	{ "continuation code differs", "250-first\r\n251 second\r\n", SMTPC_R_DONE, 250,
	  "2.0.0", "250 first second", 1 },
	{ "1xx invalid", "150 hm\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
	{ "6xx invalid", "650 hm\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
	{ "letters invalid", "abc def\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
	{ "two digits invalid", "25\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
	{ "bad separator", "250+ok\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
	{ "second digit 6", "260 x\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
	{ "empty line", "\r\n", SMTPC_R_INVALID, 0, "", "", 0 },
};

/* feed_all - feed input in chunks of step (0 = whole); the final status */
static int
feed_all(struct smtpc_rparser *p, const char *in, size_t len, size_t step, int *lines)
{
	size_t off = 0;
	int st = SMTPC_R_NEED_MORE;

	*lines = 0;
	while (off < len) {
		size_t n = step == 0 || step > len - off ? len - off : step;
		size_t pos = 0;

		while (pos < n) {
			size_t used = 0;

			st = smtpc_reply_feed(p, in + off + pos, n - pos, &used);
			if (st == SMTPC_R_NEED_MORE && used != n - pos)
				fail_msg("NEED_MORE after eating %zu of %zu", used, n - pos);
			pos += used;
			if (st == SMTPC_R_LINE)
				(*lines)++;
			if (st == SMTPC_R_DONE || st == SMTPC_R_INVALID)
				return st;
		}
		off += n;
	}
	return st;
}

static void
test_reply_table(void **state)
{
	static const size_t steps[] = { 0, 1, 7 };
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(reply_rows) / sizeof(reply_rows[0]); i++) {
		const struct reply_row *r = &reply_rows[i];

		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			struct smtpc_rparser p;
			int lines, st;

			smtpc_reply_init(&p);
			st = feed_all(&p, r->input, strlen(r->input), steps[s], &lines);
			if (st != r->want_st) {
				printf("%s (step %zu): status got %d, want %d\n", r->name, steps[s], st,
				    r->want_st);
				failed++;
				continue;
			}
			if (st != SMTPC_R_DONE)
				continue;
			if (p.reply.code != r->code || strcmp(p.reply.dsn, r->dsn) != 0 ||
			    strcmp(p.reply.text, r->text) != 0 || lines != r->lines) {
				printf("%s (step %zu): got %d \"%s\" \"%s\" lines %d, want %d \"%s\" "
				    "\"%s\" lines %d\n", r->name, steps[s], p.reply.code, p.reply.dsn,
				    p.reply.text, lines, r->code, r->dsn, r->text, r->lines);
				failed++;
			}
		}
	}
	assert_int_equal(failed, 0);
}

/* Two replies in one buffer: the parser stops after the first. */
static void
test_reply_two(void **state)
{
	const char *in = "250 2.1.0 Ok\r\n550 5.1.1 No\r\n";
	struct smtpc_rparser p;
	size_t used;

	(void)state;
	smtpc_reply_init(&p);
	assert_int_equal(smtpc_reply_feed(&p, in, strlen(in), &used), SMTPC_R_DONE);
	assert_int_equal(used, 14);
	assert_string_equal(p.reply.dsn, "2.1.0");
	assert_int_equal(smtpc_reply_feed(&p, in + used, strlen(in) - used, &used), SMTPC_R_DONE);
	assert_int_equal(p.reply.code, 550);
	assert_string_equal(p.reply.text, "550 5.1.1 No");
	/* ltext is the line's text after the code, lineno its number */
	assert_int_equal(p.lineno, 1);
	assert_int_equal((int)p.ltextlen, 8);
	assert_memory_equal(p.ltext, "5.1.1 No", 8);
}

/* Limits: a line of exactly SMTPC_LINE_MAX is fine, one more is not. */
static void
test_reply_line_limit(void **state)
{
	static const struct {
		size_t len;
		int    want;
	} rows[] = {
		{ SMTPC_LINE_MAX, SMTPC_R_DONE },
		{ SMTPC_LINE_MAX + 1, SMTPC_R_INVALID },
		{ SMTPC_LINE_MAX + 500, SMTPC_R_INVALID },
	};
	char *buf = malloc(SMTPC_LINE_MAX + 600);

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtpc_rparser p;
		int lines, st;

		memset(buf, 'x', rows[i].len);
		memcpy(buf, "250 ", 4);
		memcpy(buf + rows[i].len, "\r\n", 2);
		for (size_t step = 0; step <= 1000; step += 1000) {
			smtpc_reply_init(&p);
			st = feed_all(&p, buf, rows[i].len + 2, step, &lines);
			if (st != rows[i].want)
				fail_msg("line of %zu (step %zu): got %d, want %d", rows[i].len, step, st,
				    rows[i].want);
		}
		if (rows[i].want == SMTPC_R_DONE)
			assert_int_equal(strlen(p.reply.text), SMTPC_REPLY_MAX - 1);
	}
	free(buf);
}

/* Limits: SMTPC_LINES_MAX lines are fine, one more is not. */
static void
test_reply_lines_limit(void **state)
{
	static const struct {
		int nlines;
		int want;
	} rows[] = {
		{ SMTPC_LINES_MAX, SMTPC_R_DONE },
		{ SMTPC_LINES_MAX + 1, SMTPC_R_INVALID },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char buf[16 * (SMTPC_LINES_MAX + 2)];
		size_t len = 0;
		struct smtpc_rparser p;
		int lines, st;

		for (int k = 0; k < rows[i].nlines; k++) {
			memcpy(buf + len, k + 1 == rows[i].nlines ? "250 line\r\n" : "250-line\r\n", 10);
			len += 10;
		}
		smtpc_reply_init(&p);
		st = feed_all(&p, buf, len, 0, &lines);
		if (st != rows[i].want)
			fail_msg("%d lines: got %d, want %d", rows[i].nlines, st, rows[i].want);
	}
}

/* Local replies as made for SIZE/8BITMIME refusals and network failures. */
static void
test_reply_local(void **state)
{
	struct smtpc_reply r;

	(void)state;
	smtpc_reply_local(&r, 554, "5.6.3", "no 8BITMIME");
	assert_int_equal(r.code, 554);
	assert_string_equal(r.dsn, "5.6.3");
	assert_string_equal(r.text, "554 5.6.3 no 8BITMIME");
	smtpc_reply_local(&r, 0, "4.4.1", "connect to x: refused");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.dsn, "4.4.1");
	assert_string_equal(r.text, "connect to x: refused");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_two),
		cmocka_unit_test(test_reply_line_limit),
		cmocka_unit_test(test_reply_lines_limit),
		cmocka_unit_test(test_reply_local),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
