/*
 * test_bounce.c - unit tests for src/sched/bounce.c (RFC 3464 DSNs)
 *
 * Owns:     a temporary file for the Python check, removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; TZ is set to fixed zones for the date checks.
 *
 * Each test builds a DSN from a struct queue_msg made here, then checks
 * its structure (CRLF only, lines <= 998, three parts in order, a boundary
 * found nowhere else) and its fields, row by row. The last test hands one
 * DSN to Python's email package (when python3 is installed).
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
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "queue/queue.h"
#include "sched/bounce.h"

#define T_ARRIVAL 1699000000000000ULL  /* Fri, 03 Nov 2023 08:26:40 UTC */
#define T_NOW     1699000100250000ULL  /* 100.25 s later */

static const char orig_hdrs[] =
    "Received: from client.example.org (client.example.org [192.0.2.7])\r\n"
    "\tby relay1.example with ESMTP id 0123456789ABCDEF\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: quarterly report\r\n"
    "Message-ID: <abc.123@example.org>\r\n";

struct dsn {
	char  *text;
	size_t len;
	char   boundary[128];
	/* part i (0..2): its header section and its body, as offsets into text */
	const char *part[3];
	size_t part_len[3];
};

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* msg_init - a message with the given recipients (addr, dsn, reply triples) */
static void
msg_init(struct queue_msg *m, struct queue_rcpt *r, size_t n, const char *sender)
{
	memset(m, 0, sizeof(*m));
	util_strlcpy(m->id, "0123456789ABCDEF", sizeof(m->id));
	m->sender = (char *)sender;
	m->rcpt = r;
	m->nrcpt = n;
	m->arrival_us = T_ARRIVAL;
}

/* header_value - the (unfolded) value of field name in the header section h[0..n) */
static int
header_value(const char *h, size_t n, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name), i = 0, o = 0;

	while (i < n) {
		const char *eol = memmem(h + i, n - i, "\r\n", 2);
		size_t ll = eol != NULL ? (size_t)(eol - (h + i)) : n - i;
		if (ll == 0)
			break;
		if (ll > nl && strncasecmp(h + i, name, nl) == 0 && h[i + nl] == ':') {
			size_t j = i + nl + 1;
			for (;;) {
				while (j < i + ll && o + 1 < size) {
					if (!(o == 0 && (h[j] == ' ' || h[j] == '\t')))
						out[o++] = h[j];
					j++;
				}
				i += ll + 2;
				/* continuation lines start with white space */
				if (i >= n || (h[i] != ' ' && h[i] != '\t'))
					break;
				eol = memmem(h + i, n - i, "\r\n", 2);
				ll = eol != NULL ? (size_t)(eol - (h + i)) : n - i;
				j = i;
			}
			out[o] = '\0';
			return 0;
		}
		i += ll + 2;
	}
	out[0] = '\0';
	return -1;
}

/* check_lines - only CRLF line ends, no NUL, every line <= 998 octets */
static void
check_lines(const char *t, size_t n)
{
	size_t i, col = 0, line = 1;

	for (i = 0; i < n; i++) {
		if (t[i] == '\0')
			fail_msg("line %zu: got a NUL, want none", line);
		if (t[i] == '\r') {
			if (i + 1 >= n || t[i + 1] != '\n')
				fail_msg("line %zu: got a bare CR, want CRLF", line);
			i++;
			col = 0;
			line++;
			continue;
		}
		if (t[i] == '\n')
			fail_msg("line %zu: got a bare LF, want CRLF", line);
		if (++col > 998)
			fail_msg("line %zu: got more than 998 octets, want <= 998", line);
	}
	if (n < 2 || t[n - 2] != '\r' || t[n - 1] != '\n')
		fail_msg("got no CRLF at the end, want one");
}

/*
 * parse_dsn - structure checks, then the boundary and the three parts.
 * Each delimiter is CRLF "--" boundary at a line start; the boundary
 * occurs nowhere else in the message.
 */
static void
parse_dsn(struct dsn *d)
{
	char ct[512], delim[160];
	const char *hend, *p, *b, *q;
	size_t dl, i, count = 0;

	check_lines(d->text, d->len);
	hend = memmem(d->text, d->len, "\r\n\r\n", 4);
	assert_non_null(hend);
	if (header_value(d->text, (size_t)(hend - d->text) + 2, "Content-Type", ct, sizeof(ct)) < 0)
		fail_msg("got no Content-Type, want multipart/report");
	if (strncmp(ct, "multipart/report; report-type=delivery-status;", 46) != 0)
		fail_msg("Content-Type: got \"%s\", want multipart/report; report-type=delivery-status", ct);
	p = strstr(ct, "boundary=\"");
	assert_non_null(p);
	p += 10;
	q = strchr(p, '"');
	assert_non_null(q);
	assert_true((size_t)(q - p) > 0 && (size_t)(q - p) <= 70);
	memcpy(d->boundary, p, (size_t)(q - p));
	d->boundary[q - p] = '\0';
	if (util_bsnprintf(delim, sizeof(delim), "\r\n--%s", d->boundary) < 0)
		fail_msg("boundary too long");
	dl = strlen(delim);

	/* every occurrence of the boundary is a delimiter line */
	for (b = d->text; (b = memmem(b, d->len - (size_t)(b - d->text), d->boundary,
	    strlen(d->boundary))) != NULL; b++)
		count++;
	/* once in Content-Type, three delimiters, one close delimiter */
	if (count != 5)
		fail_msg("boundary occurs %zu times, want 5", count);

	p = hend + 2;   /* the preamble starts with the CRLF of the empty line */
	for (i = 0; i < 3; i++) {
		const char *start, *next;
		b = memmem(p, d->len - (size_t)(p - d->text), delim, dl);
		if (b == NULL)
			fail_msg("part %zu: got no delimiter, want one", i + 1);
		start = b + dl;
		if (strncmp(start, "\r\n", 2) != 0)
			fail_msg("part %zu: got text after the delimiter, want CRLF", i + 1);
		start += 2;
		next = memmem(start, d->len - (size_t)(start - d->text), delim, dl);
		if (next == NULL)
			fail_msg("part %zu: got no end, want a delimiter", i + 1);
		d->part[i] = start;
		d->part_len[i] = (size_t)(next - start);
		p = next;
	}
	if (strcmp(p + dl, "--\r\n") != 0)
		fail_msg("got \"%.20s\" after the last part, want the close delimiter", p + dl);
}

/* part_body - the body of part i and its length */
static const char *
part_body(const struct dsn *d, int i, size_t *len)
{
	const char *e = memmem(d->part[i], d->part_len[i], "\r\n\r\n", 4);

	assert_non_null(e);
	*len = d->part_len[i] - (size_t)(e + 4 - d->part[i]);
	return e + 4;
}

/*
 * rcpt_block - the per-recipient block (RFC 3464 §2.3) whose
 * Final-Recipient is "type; addr", as a header section, or NULL
 */
static const char *
rcpt_block(const struct dsn *d, const char *final, size_t *len)
{
	size_t blen;
	const char *body = part_body(d, 1, &blen), *p, *e;
	char want[600];

	if (util_bsnprintf(want, sizeof(want), "\r\nFinal-Recipient: %s\r\n", final) < 0)
		return NULL;
	p = memmem(body, blen, want, strlen(want));
	if (p == NULL)
		return NULL;
	p += 2;
	e = memmem(p, blen - (size_t)(p - body), "\r\n\r\n", 4);
	*len = e != NULL ? (size_t)(e - p) + 2 : blen - (size_t)(p - body);
	return p;
}

static void
build(struct dsn *d, const struct queue_msg *m, const size_t *idx, size_t nidx,
    enum bounce_kind kind, const char *hdrs, size_t hlen)
{
	memset(d, 0, sizeof(*d));
	d->text = bounce_build("relay1.example", m, idx, nidx, kind, hdrs, hlen, T_NOW, &d->len);
	if (d->text == NULL)
		fail_msg("bounce_build: got NULL (%s), want a message", strerror(errno));
	assert_int_equal(strlen(d->text), d->len);
	parse_dsn(d);
}

/* The top-level header fields of a failure and of a delay notice. */
static void
test_headers(void **state)
{
	struct queue_rcpt r[1] = { { .addr = "bob@example.net", .dsn = "5.1.1",
	    .last_reply = "550 5.1.1 User unknown" } };
	struct queue_msg m;
	size_t idx[1] = { 0 };
	static const struct {
		enum bounce_kind kind;
		const char *field, *want;
	} rows[] = {
		{ BOUNCE_FAILED, "From", "MAILER-DAEMON@relay1.example (Mail Delivery System)" },
		{ BOUNCE_FAILED, "To", "<alice@example.org>" },
		{ BOUNCE_FAILED, "Subject", "Undelivered Mail Returned to Sender" },
		{ BOUNCE_FAILED, "Date", "Fri, 03 Nov 2023 09:28:20 +0100" },
		{ BOUNCE_FAILED, "Auto-Submitted", "auto-replied" },
		{ BOUNCE_FAILED, "MIME-Version", "1.0" },
		{ BOUNCE_FAILED, "Message-ID", "<1699000100.250000.0123456789ABCDEF.bounce@relay1.example>" },
		{ BOUNCE_DELAYED, "Subject", "Delayed Mail (still being retried)" },
		{ BOUNCE_DELAYED, "From", "MAILER-DAEMON@relay1.example (Mail Delivery System)" },
		{ BOUNCE_DELAYED, "Message-ID", "<1699000100.250000.0123456789ABCDEF.delay@relay1.example>" },
		{ BOUNCE_DELAYED, "Auto-Submitted", "auto-replied" },
	};
	char got[512];
	size_t i;

	(void)state;
	set_tz("Europe/Berlin");
	msg_init(&m, r, 1, "alice@example.org");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dsn d;
		const char *hend;
		build(&d, &m, idx, 1, rows[i].kind, orig_hdrs, sizeof(orig_hdrs) - 1);
		hend = strstr(d.text, "\r\n\r\n");
		if (header_value(d.text, (size_t)(hend - d.text) + 2, rows[i].field, got, sizeof(got)) < 0 ||
		    strcmp(got, rows[i].want) != 0)
			fail_msg("row %zu %s: got \"%s\", want \"%s\"", i, rows[i].field, got, rows[i].want);
		free(d.text);
	}
}

/* The three parts, their types, and the per-message and per-recipient fields. */
static void
test_report_fields(void **state)
{
	struct queue_rcpt r[4] = {
		{ .addr = "bob@example.net", .dsn = "5.1.1",
		  .last_reply = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown" },
		{ .addr = "carol@example.com", .dsn = "4.4.1",
		  .last_reply = "connect to mx.example.com[203.0.113.5]:25: Connection refused" },
		{ .addr = "dave@example.org", .dsn = "" },
		{ .addr = "not-reported@example.org", .dsn = "5.1.1", .last_reply = "550 nope" },
	};
	static const struct {
		const char *final, *field, *want;   /* want NULL: the field must be absent */
	} rows[] = {
		{ "rfc822; bob@example.net", "Action", "failed" },
		{ "rfc822; bob@example.net", "Status", "5.1.1" },
		{ "rfc822; bob@example.net", "Diagnostic-Code",
		  "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown" },
		{ "rfc822; bob@example.net", "Last-Attempt-Date", "Fri, 03 Nov 2023 09:28:20 +0100" },
		{ "rfc822; carol@example.com", "Action", "failed" },
		{ "rfc822; carol@example.com", "Status", "5.4.1" },
		{ "rfc822; carol@example.com", "Diagnostic-Code",
		  "X-Mtad; connect to mx.example.com[203.0.113.5]:25: Connection refused" },
		{ "rfc822; dave@example.org", "Status", "5.0.0" },
		{ "rfc822; dave@example.org", "Diagnostic-Code", NULL },
		{ "rfc822; dave@example.org", "Last-Attempt-Date", "Fri, 03 Nov 2023 09:28:20 +0100" },
	};
	static const struct {
		const char *field, *want;
	} msg_rows[] = {
		{ "Reporting-MTA", "dns; relay1.example" },
		{ "X-Mtad-Queue-ID", "0123456789ABCDEF" },
		{ "X-Mtad-Sender", "rfc822; alice@example.org" },
		{ "Arrival-Date", "Fri, 03 Nov 2023 09:26:40 +0100" },
	};
	static const char *const types[3] = {
		"text/plain; charset=us-ascii", "message/delivery-status", "text/rfc822-headers",
	};
	struct queue_msg m;
	size_t idx[3] = { 0, 1, 2 }, i, len, blen;
	struct dsn d;
	char got[1024];
	const char *blk, *body;

	(void)state;
	set_tz("Europe/Berlin");
	msg_init(&m, r, 4, "alice@example.org");
	build(&d, &m, idx, 3, BOUNCE_FAILED, orig_hdrs, sizeof(orig_hdrs) - 1);
	for (i = 0; i < 3; i++) {
		if (header_value(d.part[i], d.part_len[i], "Content-Type", got, sizeof(got)) < 0 ||
		    strcmp(got, types[i]) != 0)
			fail_msg("part %zu Content-Type: got \"%s\", want \"%s\"", i + 1, got, types[i]);
	}
	body = part_body(&d, 1, &blen);
	for (i = 0; i < sizeof(msg_rows) / sizeof(msg_rows[0]); i++) {
		if (header_value(body, blen, msg_rows[i].field, got, sizeof(got)) < 0 ||
		    strcmp(got, msg_rows[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", msg_rows[i].field, got, msg_rows[i].want);
	}
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int have;
		if ((blk = rcpt_block(&d, rows[i].final, &len)) == NULL)
			fail_msg("row %zu: got no block for %s, want one", i, rows[i].final);
		have = header_value(blk, len, rows[i].field, got, sizeof(got)) == 0;
		if (rows[i].want == NULL ? have : (!have || strcmp(got, rows[i].want) != 0))
			fail_msg("row %zu %s %s: got \"%s\", want \"%s\"", i, rows[i].final,
			    rows[i].field, have ? got : "(absent)", rows[i].want ? rows[i].want : "(absent)");
	}
	/* only the recipients asked for */
	assert_null(rcpt_block(&d, "rfc822; not-reported@example.org", &len));
	assert_null(strstr(d.text, "not-reported"));
	/* the human part names each recipient with its reply */
	body = part_body(&d, 0, &blen);
	assert_non_null(memmem(body, blen, "This is the mail system at host relay1.example.", 47));
	assert_non_null(memmem(body, blen, "could not\r\nbe delivered to one or more recipients", 49));
	assert_non_null(memmem(body, blen, "<bob@example.net>: 550 5.1.1", 28));
	assert_non_null(memmem(body, blen, "<dave@example.org>: delivery failed", 35));
	/* the original headers, byte for byte */
	body = part_body(&d, 2, &blen);
	if (blen != sizeof(orig_hdrs) - 1 || memcmp(body, orig_hdrs, blen) != 0)
		fail_msg("headers part: got \"%.*s\", want \"%s\"", (int)blen, body, orig_hdrs);
	free(d.text);
}

/* Status: the recipient's code with the class of the action, else the default. */
static void
test_status(void **state)
{
	static const struct {
		const char *dsn, *failed, *delayed;
	} rows[] = {
		{ "5.1.1", "5.1.1", "4.1.1" },
		{ "4.4.1", "5.4.1", "4.4.1" },
		{ "4.7.0", "5.7.0", "4.7.0" },
		{ "5.7.1", "5.7.1", "4.7.1" },
		{ "2.0.0", "5.0.0", "4.0.0" },
		{ "5.3.4", "5.3.4", "4.3.4" },
		{ "5.123.456", "5.123.456", "4.123.456" },
		{ "", "5.0.0", "4.0.0" },
		{ "5.1", "5.0.0", "4.0.0" },
		{ "5..1", "5.0.0", "4.0.0" },
		{ "5.1.", "5.0.0", "4.0.0" },
		{ "5.1234.1", "5.0.0", "4.0.0" },
		{ "3.1.1", "5.0.0", "4.0.0" },
		{ "5.1.1x", "5.0.0", "4.0.0" },
		{ "x.1.1", "5.0.0", "4.0.0" },
		{ "5.1.1.1", "5.0.0", "4.0.0" },
	};
	struct queue_rcpt r[1];
	struct queue_msg m;
	size_t idx[1] = { 0 }, i, len;
	int k;
	char got[64];

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (k = 0; k < 2; k++) {
			struct dsn d;
			const char *blk, *want = k == 0 ? rows[i].failed : rows[i].delayed;
			memset(r, 0, sizeof(r));
			r[0].addr = "bob@example.net";
			util_strlcpy(r[0].dsn, rows[i].dsn, sizeof(r[0].dsn));
			msg_init(&m, r, 1, "alice@example.org");
			build(&d, &m, idx, 1, k == 0 ? BOUNCE_FAILED : BOUNCE_DELAYED, orig_hdrs,
			    sizeof(orig_hdrs) - 1);
			blk = rcpt_block(&d, "rfc822; bob@example.net", &len);
			assert_non_null(blk);
			header_value(blk, len, "Status", got, sizeof(got));
			if (strcmp(got, want) != 0)
				fail_msg("dsn \"%s\" %s: got \"%s\", want \"%s\"", rows[i].dsn,
				    k == 0 ? "failed" : "delayed", got, want);
			header_value(blk, len, "Action", got, sizeof(got));
			assert_string_equal(got, k == 0 ? "failed" : "delayed");
			free(d.text);
		}
	}
}

/* Original headers that contain the natural boundary: another one is chosen. */
static void
test_boundary_collision(void **state)
{
	struct queue_rcpt r[1] = { { .addr = "bob@example.net", .dsn = "5.1.1",
	    .last_reply = "550 see --0123456789ABCDEF.1699000100=_1/relay1.example" } };
	struct queue_msg m;
	size_t idx[1] = { 0 };
	struct dsn d;
	const char *hdrs =
	    "Subject: x\r\n"
	    "X-Trap: 0123456789ABCDEF.1699000100/relay1.example\r\n"
	    "X-Trap2: --0123456789ABCDEF.1699000100=_2/relay1.example--\r\n";

	(void)state;
	msg_init(&m, r, 1, "alice@example.org");
	build(&d, &m, idx, 1, BOUNCE_FAILED, hdrs, strlen(hdrs));  /* parse_dsn counts 5 */
	if (strcmp(d.boundary, "0123456789ABCDEF.1699000100=_3/relay1.example") != 0)
		fail_msg("boundary: got \"%s\", want the 3rd alternative", d.boundary);
	free(d.text);
}

/* Long, hostile or odd inputs: folded, bounded, no injected header or line. */
static void
test_hostile(void **state)
{
	static char longreply[6000], hugehdrs[80000];
	char *p;
	struct queue_rcpt r[2] = {
		{ .addr = "bob@example.net", .dsn = "5.0.0", .last_reply = longreply },
		{ .addr = "eve@example.net", .dsn = "5.0.0",
		  .last_reply = "550 bad\r\nInjected: yes\r\n\r\n--x\r\n" },
	};
	struct queue_msg m;
	size_t idx[2] = { 0, 1 }, i, blen, len;
	struct dsn d;
	const char *body, *blk;
	char got[4096];

	(void)state;
	/* "550 " then words, then one 1500-octet word */
	p = longreply;
	memcpy(p, "550 5.0.0", 9);
	p += 9;
	for (i = 0; i < 300; i++) {
		memcpy(p, " word", 5);
		p += 5;
	}
	*p++ = ' ';
	memset(p, 'W', 1500);
	p += 1500;
	*p = '\0';
	msg_init(&m, r, 2, "alice@example.org");
	build(&d, &m, idx, 2, BOUNCE_FAILED, orig_hdrs, sizeof(orig_hdrs) - 1);  /* lines <= 998 */
	assert_null(strstr(d.text, "\r\nInjected: yes"));
	assert_null(strstr(d.text, "\r\n--x\r\n"));
	blk = rcpt_block(&d, "rfc822; eve@example.net", &len);
	assert_non_null(blk);
	header_value(blk, len, "Diagnostic-Code", got, sizeof(got));
	if (strcmp(got, "smtp; 550 bad Injected: yes --x") != 0)
		fail_msg("Diagnostic-Code: got \"%s\", want the reply on one line", got);
	blk = rcpt_block(&d, "rfc822; bob@example.net", &len);
	header_value(blk, len, "Diagnostic-Code", got, sizeof(got));
	if (strncmp(got, "smtp; 550 5.0.0 word word", 25) != 0)
		fail_msg("Diagnostic-Code: got \"%.40s\", want \"smtp; 550 5.0.0 word word...\"", got);
	free(d.text);

	/* header section: LF line ends, a NUL, a body after the empty line, a huge one */
	{
		static const char lf[] = "Subject: lf\nX-Nul: a\0b\nFrom: a@b\n\nBODY LINE\n";
		const char *want = "Subject: lf\r\nX-Nul: a b\r\nFrom: a@b\r\n";
		build(&d, &m, idx, 1, BOUNCE_FAILED, lf, sizeof(lf) - 1);
		body = part_body(&d, 2, &blen);
		if (blen != strlen(want) || memcmp(body, want, blen) != 0)
			fail_msg("headers: got \"%.*s\", want \"%s\"", (int)blen, body, want);
		assert_null(strstr(d.text, "BODY LINE"));
		free(d.text);
	}
	for (i = 0; i + 40 <= sizeof(hugehdrs) - 1; i += 40)
		memcpy(hugehdrs + i, "X-Filler: 0123456789012345678901234567\r\n", 40);
	build(&d, &m, idx, 1, BOUNCE_FAILED, hugehdrs, i);
	body = part_body(&d, 2, &blen);
	if (blen > 64 * 1024 || blen < 60 * 1024 || blen % 40 != 0)
		fail_msg("huge headers: got %zu octets, want whole lines up to 64 KiB", blen);
	free(d.text);
	/* no header section at all */
	build(&d, &m, idx, 1, BOUNCE_FAILED, NULL, 0);
	body = part_body(&d, 2, &blen);
	assert_int_equal(blen, 0);
	free(d.text);
}

/* SMTPUTF8 addresses: the RFC 6533 global types, utf-8 address type, 8bit. */
static void
test_utf8(void **state)
{
	struct queue_rcpt r[1] = { { .addr = "b\xc3\xb6" "b@b\xc3\xbc" "cher.example", .dsn = "5.1.1",
	    .last_reply = "550 5.1.1 unknown" } };
	struct queue_msg m;
	size_t idx[1] = { 0 }, len;
	struct dsn d;
	char got[256];
	const char *blk;

	(void)state;
	msg_init(&m, r, 1, "al\xc3\xaf" "ce@example.org");
	build(&d, &m, idx, 1, BOUNCE_FAILED, orig_hdrs, sizeof(orig_hdrs) - 1);
	header_value(d.part[1], d.part_len[1], "Content-Type", got, sizeof(got));
	assert_string_equal(got, "message/global-delivery-status");
	header_value(d.part[2], d.part_len[2], "Content-Type", got, sizeof(got));
	assert_string_equal(got, "message/global-headers");
	header_value(d.part[0], d.part_len[0], "Content-Type", got, sizeof(got));
	assert_string_equal(got, "text/plain; charset=utf-8");
	blk = rcpt_block(&d, "utf-8; b\xc3\xb6" "b@b\xc3\xbc" "cher.example", &len);
	if (blk == NULL)
		fail_msg("got no utf-8 Final-Recipient, want one");
	assert_non_null(strstr(d.text, "\r\nTo: <al\xc3\xaf" "ce@example.org>\r\n"));
	assert_non_null(strstr(d.text, "\r\nContent-Transfer-Encoding: 8bit\r\n"));
	free(d.text);
}

/* Caller errors give NULL and EINVAL, never a crash. */
static void
test_errors(void **state)
{
	struct queue_rcpt r[1] = { { .addr = "bob@example.net" } };
	struct queue_msg m;
	size_t idx[1] = { 0 }, bad[1] = { 1 }, len = 99;
	char *s;

	(void)state;
	msg_init(&m, r, 1, "");
	errno = 0;
	s = bounce_build("h", &m, idx, 1, BOUNCE_FAILED, NULL, 0, T_NOW, &len);
	assert_null(s);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(len, 0);
	msg_init(&m, r, 1, "alice@example.org");
	assert_null(bounce_build("h", &m, idx, 0, BOUNCE_FAILED, NULL, 0, T_NOW, &len));
	assert_null(bounce_build("h", &m, bad, 1, BOUNCE_FAILED, NULL, 0, T_NOW, &len));
	assert_null(bounce_build("h", NULL, idx, 1, BOUNCE_FAILED, NULL, 0, T_NOW, &len));
	/* an empty or odd host name still gives a valid From: */
	s = bounce_build("", &m, idx, 1, BOUNCE_FAILED, NULL, 0, T_NOW, &len);
	assert_non_null(s);
	assert_non_null(strstr(s, "From: MAILER-DAEMON@localhost (Mail Delivery System)\r\n"));
	free(s);
	s = bounce_build("bad host\r\nX: y", &m, idx, 1, BOUNCE_FAILED, NULL, 0, T_NOW, &len);
	assert_non_null(s);
	assert_non_null(strstr(s, "From: MAILER-DAEMON@bad-host--X--y (Mail Delivery System)\r\n"));
	free(s);
}

/* Date fields follow the local zone (main sets TZ from `timezone`). */
static void
test_dates(void **state)
{
	static const struct {
		const char *tz, *date, *arrival;
	} rows[] = {
		{ "UTC", "Fri, 03 Nov 2023 08:28:20 +0000", "Fri, 03 Nov 2023 08:26:40 +0000" },
		{ "Europe/Berlin", "Fri, 03 Nov 2023 09:28:20 +0100", "Fri, 03 Nov 2023 09:26:40 +0100" },
		{ "America/New_York", "Fri, 03 Nov 2023 04:28:20 -0400", "Fri, 03 Nov 2023 04:26:40 -0400" },
		{ "Asia/Kolkata", "Fri, 03 Nov 2023 13:58:20 +0530", "Fri, 03 Nov 2023 13:56:40 +0530" },
	};
	struct queue_rcpt r[1] = { { .addr = "bob@example.net" } };
	struct queue_msg m;
	size_t idx[1] = { 0 }, i, blen;
	struct dsn d;
	char got[128];
	const char *body, *hend;

	(void)state;
	msg_init(&m, r, 1, "alice@example.org");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		set_tz(rows[i].tz);
		build(&d, &m, idx, 1, BOUNCE_FAILED, NULL, 0);
		hend = strstr(d.text, "\r\n\r\n");
		header_value(d.text, (size_t)(hend - d.text) + 2, "Date", got, sizeof(got));
		if (strcmp(got, rows[i].date) != 0)
			fail_msg("%s Date: got \"%s\", want \"%s\"", rows[i].tz, got, rows[i].date);
		body = part_body(&d, 1, &blen);
		header_value(body, blen, "Arrival-Date", got, sizeof(got));
		if (strcmp(got, rows[i].arrival) != 0)
			fail_msg("%s Arrival-Date: got \"%s\", want \"%s\"", rows[i].tz, got, rows[i].arrival);
		free(d.text);
	}
	set_tz("UTC");
}

/* Python's email package reads the DSN as a valid multipart/report. */
static void
test_python_parse(void **state)
{
	static const char script[] =
	    "import sys, email, email.policy\n"
	    "m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\n"
	    "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
	    "assert m.get_param('report-type') == 'delivery-status'\n"
	    "assert m['Auto-Submitted'] == 'auto-replied'\n"
	    "assert m['Date'].datetime is not None\n"
	    "p = list(m.iter_parts())\n"
	    "t = [x.get_content_type() for x in p]\n"
	    "assert t == ['text/plain', 'message/delivery-status', 'text/rfc822-headers'], t\n"
	    "b = p[1].get_payload()\n"
	    "assert len(b) == 3, len(b)\n"
	    "assert b[0]['Reporting-MTA'] == 'dns; relay1.example'\n"
	    "assert b[1]['Final-Recipient'] == 'rfc822; bob@example.net'\n"
	    "assert b[1]['Status'] == '5.1.1' and b[1]['Action'] == 'failed'\n"
	    "assert b[1]['Diagnostic-Code'].startswith('smtp; 550 5.1.1 ')\n"
	    "assert b[2]['Status'] == '5.4.1'\n"
	    "assert 'Subject: quarterly report' in p[2].get_content()\n"
	    "assert not m.defects and not any(x.defects for x in p), (m.defects, [x.defects for x in p])\n"
	    "print('DSN-OK')\n";
	struct queue_rcpt r[2] = {
		{ .addr = "bob@example.net", .dsn = "5.1.1",
		  .last_reply = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown "
		  "in virtual mailbox table; this reply is long enough to be folded twice or more" },
		{ .addr = "carol@example.com", .dsn = "4.4.1", .last_reply = "connect to x: refused" },
	};
	struct queue_msg m;
	size_t idx[2] = { 0, 1 };
	struct dsn d;
	char dir[] = "/tmp/test_bounce.XXXXXX", eml[64], py[64], cmd[256], out[256] = "";
	FILE *f;

	(void)state;
	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	assert_true(util_bsnprintf(eml, sizeof(eml), "%s/dsn.eml", dir) > 0);
	assert_true(util_bsnprintf(py, sizeof(py), "%s/check.py", dir) > 0);
	msg_init(&m, r, 2, "alice@example.org");
	build(&d, &m, idx, 2, BOUNCE_FAILED, orig_hdrs, sizeof(orig_hdrs) - 1);
	assert_non_null(f = fopen(eml, "wb"));
	assert_int_equal(fwrite(d.text, 1, d.len, f), d.len);
	fclose(f);
	assert_non_null(f = fopen(py, "w"));
	fputs(script, f);
	fclose(f);
	assert_true(util_bsnprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s 2>&1", py, eml) > 0);
	assert_non_null(f = popen(cmd, "r"));
	while (fgets(out, sizeof(out), f) != NULL && strncmp(out, "DSN-OK", 6) != 0)
		print_error("python: %s", out);
	pclose(f);
	unlink(eml);
	unlink(py);
	rmdir(dir);
	free(d.text);
	if (strncmp(out, "DSN-OK", 6) != 0)
		fail_msg("python check: got \"%s\", want DSN-OK", out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_report_fields),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_boundary_collision),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_python_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
