/*
 * test_sendmail_msg.c - table-driven tests for src/ctl/sendmail_msg.c (sendmail's
 *                  input): address lists, the From: header, the header
 *                  section, and the DATA stream (line ends, dot-stuffing)
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; input comes through pipes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl_int.h"
#include "ctl/sendmail.h"

/* join - append "|" (unless first) and s to buf */
static void
join(char *buf, size_t size, int first, const char *s)
{
	size_t used = strlen(buf);
	int n = snprintf(buf + used, size - used, "%s%s", first ? "" : "|", s);

	assert_true(n >= 0 && (size_t)n < size - used);
}

/* --- address lists ------------------------------------------------------- */

static const struct {
	const char *in;
	const char *want;       /* addresses joined with '|'; NULL = error */
} addr_rows[] = {
	{ "a@example.com", "a@example.com" },
	{ "  a@example.com  ", "a@example.com" },
	{ "a@example.com, b@example.org", "a@example.com|b@example.org" },
	{ "A <a@example.com>", "a@example.com" },
	{ "\"Doe, John\" <john@example.com>, jane@example.com", "john@example.com|jane@example.com" },
	{ "jane@example.com (Jane, the boss)", "jane@example.com" },
	{ "(lead) jane@example.com", "jane@example.com" },
	{ "jane@example.com (nested (comment), here)", "jane@example.com" },
	{ "team: a@x.example, b@y.example;, c@z.example", "a@x.example|b@y.example|c@z.example" },
	{ "undisclosed-recipients:;", "" },
	{ "", "" },
	{ " , ,", "" },
	{ "<@relay.example,@other.example:user@example.com>", "user@example.com" },
	{ "\"quoted local\"@example.com", "\"quoted local\"@example.com" },
	{ "Name <\"q l\"@example.com>", "\"q l\"@example.com" },
	{ "a@example.com, A@EXAMPLE.COM", "a@example.com" },          /* duplicates once */
	{ "john . doe @ example.com", "john.doe@example.com" },      /* obs-local-part */
	{ "root", "root" },
	{ "R\xc3\xa9mi <r\xc3\xa9mi@exa\xc3\xb1mple.com>", "r\xc3\xa9mi@exa\xc3\xb1mple.com" },
	{ "John Doe", NULL },                                         /* words, no address */
	{ "bad address@example.com", NULL },
	{ "a@example.com, John Doe", NULL },
	{ "a\x01b@example.com", NULL },                              /* control characters */
	{ "\"a\nb\"@example.com", NULL },
	{ "a@example.com\x7f", NULL },
};

static void
test_addr_list(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(addr_rows) / sizeof(addr_rows[0]); i++) {
		char **list = NULL, got[1024] = "";
		size_t n = 0;
		int rc = sendmail_msg_addr_list(addr_rows[i].in, strlen(addr_rows[i].in), &list, &n);

		for (size_t k = 0; k < n; k++) {
			join(got, sizeof(got), k == 0, list[k]);
			free(list[k]);
		}
		free(list);
		if (addr_rows[i].want == NULL ? rc == 0 : (rc != 0 || strcmp(got, addr_rows[i].want) != 0)) {
			print_message("addr_list(%s): got %s \"%s\", want %s\n", addr_rows[i].in,
			    rc == 0 ? "ok" : "error", got,
			    addr_rows[i].want ? addr_rows[i].want : "error");
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_addr_list_too_long(void **state)
{
	char big[2100];
	char **list = NULL;
	size_t n = 0;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[10] = '@';
	assert_int_equal(sendmail_msg_addr_list(big, strlen(big), &list, &n), -1);
	assert_int_equal(errno, E2BIG);
	assert_int_equal(n, 0);
	free(list);
}

/* --- From: ---------------------------------------------------------------- */

static const struct {
	const char *name;
	const char *want;
} from_rows[] = {
	{ NULL, "From: me@example.org" },
	{ "", "From: me@example.org" },
	{ "CronDaemon", "From: CronDaemon <me@example.org>" },
	{ "Cron Daemon", "From: Cron Daemon <me@example.org>" },
	{ "Ops, Team", "From: \"Ops, Team\" <me@example.org>" },
	{ "say \"hi\"", "From: \"say \\\"hi\\\"\" <me@example.org>" },
	{ "a.b", "From: \"a.b\" <me@example.org>" },
	{ "J\xc3\xb6rg", "From: =?UTF-8?B?SsO2cmc=?= <me@example.org>" },
};

static void
test_from_header(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(from_rows) / sizeof(from_rows[0]); i++) {
		char out[512];

		if (sendmail_msg_from_header(from_rows[i].name, "me@example.org", out, sizeof(out)) < 0 ||
		    strcmp(out, from_rows[i].want) != 0) {
			print_message("from(%s): got \"%s\", want \"%s\"\n",
			    from_rows[i].name ? from_rows[i].name : "NULL", out, from_rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_from_header_long_utf8(void **state)
{
	char name[200], out[1024];
	size_t n = 0;

	(void)state;
	/* 60 two-byte characters: several encoded words, none split inside a character */
	for (int i = 0; i < 60; i++) {
		name[n++] = (char)0xc3;
		name[n++] = (char)0xa9;
	}
	name[n] = '\0';
	assert_int_equal(sendmail_msg_from_header(name, "x@y", out, sizeof(out)), 0);
	for (char *w = strstr(out, "=?UTF-8?B?"); w != NULL; w = strstr(w + 1, "=?UTF-8?B?")) {
		char *end = strstr(w, "?=");

		assert_non_null(end);
		assert_true(end + 2 - w <= 75);
		assert_int_equal((end - (w + 10)) % 4, 0);
	}
	assert_non_null(strstr(out, " <x@y>"));
	assert_int_equal(sendmail_msg_from_header(name, "x@y", out, 40), -1);
}

/* --- the whole path: input -> headers, recipients -> DATA stream --------- */

struct sink {
	char buf[8192];
	size_t len;
};

static int
sink_write(void *arg, const void *p, size_t n)
{
	struct sink *s = arg;

	if (n > sizeof(s->buf) - s->len)
		return -1;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static const struct {
	const char *in;
	int dot_ends;           /* no -i */
	int t;                  /* -t: take recipients, remove Bcc */
	const char *rcpts;      /* '|'-joined, with -t */
	int have_from;
	const char *want;       /* the DATA stream */
} stream_rows[] = {
	{ "Subject: a\n\nbody\n", 1, 0, "", 0, "Subject: a\r\n\r\nbody\r\n.\r\n" },
	{ "Subject: a\r\n\r\nbody\r\n", 1, 0, "", 0, "Subject: a\r\n\r\nbody\r\n.\r\n" },
	{ "Subject: a\r\rbody\r", 1, 0, "", 0, "Subject: a\r\n\r\nbody\r\n.\r\n" },
	{ "Subject: a\n\nno newline", 1, 0, "", 0, "Subject: a\r\n\r\nno newline\r\n.\r\n" },
	{ "Subject: a\n\n.lead\n..two\n.\nafter\n", 1, 0, "", 0,
	  "Subject: a\r\n\r\n..lead\r\n...two\r\n.\r\n" },
	{ "Subject: a\n\n.lead\n.\nafter\n", 0, 0, "", 0,
	  "Subject: a\r\n\r\n..lead\r\n..\r\nafter\r\n.\r\n" },
	{ "Subject: a\n\nx\n.", 1, 0, "", 0, "Subject: a\r\n\r\nx\r\n.\r\n" },
	{ "Subject: a\n\nx\n.", 0, 0, "", 0, "Subject: a\r\n\r\nx\r\n..\r\n.\r\n" },
	{ "Subject: a\n.\nbody\n", 1, 0, "", 0, "Subject: a\r\n.\r\n" },
	{ "", 1, 0, "", 0, ".\r\n" },
	{ "From x@y Mon Jan  1 00:00:00 2024\nFrom: me@x\nSubject: s\n\nb\n", 1, 0, "", 1,
	  "From: me@x\r\nSubject: s\r\n\r\nb\r\n.\r\n" },
	{ "Subject: s\nnot a header line\nmore\n", 1, 0, "", 0,
	  "Subject: s\r\n\r\nnot a header line\r\nmore\r\n.\r\n" },
	{ "To: a@x.example,\n b@x.example\nCC: c@x.example\nbcc: d@x.example,\n\tB <e@x.example>\n"
	  "Subject: s\n\nb\n", 1, 1, "a@x.example|b@x.example|c@x.example|d@x.example|e@x.example", 0,
	  "To: a@x.example,\r\n b@x.example\r\nCC: c@x.example\r\nSubject: s\r\n\r\nb\r\n.\r\n" },
	{ "To: a@x.example\nResent-To: r@x.example\nX-To: x@x.example\n\nb\n", 1, 1, "a@x.example", 0,
	  "To: a@x.example\r\nResent-To: r@x.example\r\nX-To: x@x.example\r\n\r\nb\r\n.\r\n" },
	{ "Bcc: only@x.example\n\nb\n", 1, 1, "only@x.example", 0, "\r\nb\r\n.\r\n" },
	{ "from: lower@x.example\n\nb\n", 1, 0, "", 1, "from: lower@x.example\r\n\r\nb\r\n.\r\n" },
};

static void
test_stream(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(stream_rows) / sizeof(stream_rows[0]); i++) {
		struct sendmail_msg_reader r;
		struct sendmail_msg_out *o = malloc(sizeof(*o));
		struct sink s = { .len = 0 };
		char **list = NULL, rc_s[512] = "";
		size_t n = 0;
		int fds[2];

		assert_non_null(o);
		assert_int_equal(pipe(fds), 0);
		assert_int_equal(write(fds[1], stream_rows[i].in, strlen(stream_rows[i].in)),
		    (ssize_t)strlen(stream_rows[i].in));
		close(fds[1]);
		assert_int_equal(sendmail_msg_reader_init(&r, fds[0], stream_rows[i].dot_ends), 0);
		assert_int_equal(sendmail_msg_read_headers(&r), 0);
		if (stream_rows[i].t)
			assert_int_equal(sendmail_msg_extract_rcpts(&r, 1, &list, &n), 0);
		for (size_t k = 0; k < n; k++) {
			join(rc_s, sizeof(rc_s), k == 0, list[k]);
			free(list[k]);
		}
		free(list);
		sendmail_msg_out_init(o, sink_write, &s);
		assert_int_equal(sendmail_msg_out_headers(o, &r), 0);
		assert_int_equal(sendmail_msg_out_body(o, &r), 0);
		s.buf[s.len] = '\0';
		if (strcmp(s.buf, stream_rows[i].want) != 0 || strcmp(rc_s, stream_rows[i].rcpts) != 0 ||
		    r.have_from != stream_rows[i].have_from) {
			print_message("row %zu: got \"%s\" rcpts \"%s\" from %d, want \"%s\" rcpts \"%s\" from %d\n",
			    i, s.buf, rc_s, r.have_from, stream_rows[i].want, stream_rows[i].rcpts,
			    stream_rows[i].have_from);
			failed++;
		}
		sendmail_msg_reader_free(&r);
		free(o);
		close(fds[0]);
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_list),
		cmocka_unit_test(test_addr_list_too_long),
		cmocka_unit_test(test_from_header),
		cmocka_unit_test(test_from_header_long_utf8),
		cmocka_unit_test(test_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
