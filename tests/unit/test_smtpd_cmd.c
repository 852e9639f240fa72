/*
 * test_smtpd_cmd.c - table-driven tests for src/smtpd/smtpd_line.c and
 *                    smtpd_proxy.c: command framing, tokens, ESMTP
 *                    parameters, BDAT arguments, PROXY headers
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 *
 * The framing rows are fed through a model of the session's input buffer
 * (at most SMTPD_LINE_MAX bytes offered unless discarding) whole, byte by
 * byte and at every two-way split: the events must not depend on the split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_proto.h"

/* --- framing ----------------------------------------------------------------- */

struct line_row {
	const char *name;
	const char *in;              /* NULL: built by make_input() from the fields below */
	size_t fill;                 /* make_input: this many 'x' ... */
	const char *tail;            /* ... followed by this */
	const char *want;            /* events: "L:<line>|" per line, "LONG|" per over-long line */
};

static const struct line_row line_rows[] = {
	{ "crlf", "NOOP\r\n", 0, NULL, "L:NOOP|" },
	{ "bare lf", "NOOP\n", 0, NULL, "L:NOOP|" },
	{ "one cr removed", "NOOP\r\r\n", 0, NULL, "L:NOOP\r|" },
	{ "two lines", "A\r\nB\r\n", 0, NULL, "L:A|L:B|" },
	{ "empty line", "\r\n", 0, NULL, "L:|" },
	{ "partial", "NOOP", 0, NULL, "" },
	{ "partial cr", "NOOP\r", 0, NULL, "" },
	{ "nothing", "", 0, NULL, "" },
	{ "nul inside", NULL, 0, NULL, NULL },      /* placeholder, see test_line_nul */
	{ "510 + crlf fits", NULL, 510, "\r\n", "L:=510|" },
	{ "511 + lf fits", NULL, 511, "\n", "L:=511|" },
	{ "511 + crlf too long", NULL, 511, "\r\n", "LONG|" },
	{ "512 + lf too long", NULL, 512, "\n", "LONG|" },
	{ "600 then a command", NULL, 600, "\r\nNOOP\r\n", "LONG|L:NOOP|" },
	{ "5000 then quit", NULL, 5000, "\r\nQUIT\r\n", "LONG|L:QUIT|" },
	{ "1024 exactly then lf", NULL, 1024, "\nA\n", "LONG|L:A|" },
	{ "long, never ended", NULL, 3000, "", "LONG|" },
};

static char *
make_input(const struct line_row *r, size_t *len)
{
	size_t tl = r->tail ? strlen(r->tail) : 0;
	char *p;

	if (r->in != NULL) {
		*len = strlen(r->in);
		p = malloc(*len + 1);
		memcpy(p, r->in, *len + 1);
		return p;
	}
	*len = r->fill + tl;
	p = malloc(*len + 1);
	memset(p, 'x', r->fill);
	if (tl)
		memcpy(p + r->fill, r->tail, tl);
	p[*len] = '\0';
	return p;
}

/* run_lines - the session's use of smtpd_line_next over a growing buffer */
static int
run_lines(const struct line_row *r, const char *in, size_t len, size_t step, size_t first,
    const char *how)
{
	static char buf[16384], ev[16384];
	size_t blen = 0, pos = 0, elen = 0;
	struct smtpd_line st;

	smtpd_line_init(&st);
	ev[0] = '\0';
	while (pos < len) {
		size_t n = pos == 0 && first ? first : step;
		if (n > len - pos)
			n = len - pos;
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		for (;;) {
			struct str line;
			size_t used = 0, offer = st.discarding ? blen :
			    (blen < SMTPD_LINE_MAX ? blen : SMTPD_LINE_MAX);
			enum smtpd_line_result res = smtpd_line_next(&st, buf, offer, &line, &used);
			if (res == SMTPD_LINE_OK) {
				int all_x = line.len > 0;
				for (size_t k = 0; k < line.len; k++)
					all_x &= line.p[k] == 'x';
				if (all_x && line.len > 16)
					elen += (size_t)snprintf(ev + elen, sizeof(ev) - elen, "L:=%zu|", line.len);
				else
					elen += (size_t)snprintf(ev + elen, sizeof(ev) - elen, "L:%.*s|",
					    (int)line.len, line.p);
			} else if (res == SMTPD_LINE_LONG) {
				elen += (size_t)snprintf(ev + elen, sizeof(ev) - elen, "LONG|");
			}
			if (used > blen) {
				print_error("%s [%s]: consumed %zu of %zu\n", r->name, how, used, blen);
				return 1;
			}
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (res == SMTPD_LINE_MORE && used == 0)
				break;
			if (blen == 0)
				break;
		}
		if (blen > SMTPD_LINE_MAX) {
			print_error("%s [%s]: %zu bytes kept while no line end came\n", r->name, how, blen);
			return 1;
		}
	}
	if (strcmp(ev, r->want) != 0) {
		print_error("%s [%s]: got \"%s\", want \"%s\"\n", r->name, how, ev, r->want);
		return 1;
	}
	return 0;
}

static void
test_line_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(line_rows) / sizeof(line_rows[0]); i++) {
		const struct line_row *r = &line_rows[i];
		size_t len;
		char *in;

		if (r->want == NULL)
			continue;
		in = make_input(r, &len);
		failed |= run_lines(r, in, len, len ? len : 1, 0, "whole");
		failed |= run_lines(r, in, len, 1, 0, "bytewise");
		failed |= run_lines(r, in, len, 100, 0, "100s");
		for (size_t k = 1; k < len && k < 1200; k++)
			failed |= run_lines(r, in, len, len, k, "split");
		free(in);
	}
	assert_int_equal(failed, 0);
}

/* A NUL byte does not end or hide a line: the line is handed over with it. */
static void
test_line_nul(void **state)
{
	struct smtpd_line st;
	struct str line;
	size_t used;

	(void)state;
	smtpd_line_init(&st);
	assert_int_equal(smtpd_line_next(&st, "MA\0IL\r\n", 7, &line, &used), SMTPD_LINE_OK);
	assert_int_equal(line.len, 5);
	assert_int_equal(used, 7);
	assert_memory_equal(line.p, "MA\0IL", 5);
}

/* --- command split ----------------------------------------------------------- */

static const struct {
	const char *line;
	size_t len;                  /* 0 = strlen */
	const char *verb, *arg;
	unsigned faults;
} split_rows[] = {
	{ "NOOP", 0, "NOOP", "", 0 },
	{ "mail FROM:<a@b>", 0, "mail", "FROM:<a@b>", 0 },
	{ "  EHLO   host.example  ", 0, "EHLO", "host.example", 0 },
	{ "EHLO\thost", 0, "EHLO", "host", 0 },
	{ "", 0, "", "", 0 },
	{ "   ", 0, "", "", 0 },
	{ "RCPT TO:<a@b> X=1", 0, "RCPT", "TO:<a@b> X=1", 0 },
	{ "NO\x01OP", 0, "NO\x01OP", "", SMTPD_CL_CTRL },
	{ "NOOP \x7f", 0, "NOOP", "\x7f", SMTPD_CL_CTRL },
	{ "NO\0OP", 5, "NO", "", SMTPD_CL_CTRL },
	{ "N\xc3\xa4OOP", 0, "N\xc3\xa4OOP", "", SMTPD_CL_8BIT_VERB },
	{ "MAIL FROM:<\xc3\xa4@b>", 0, "MAIL", "FROM:<\xc3\xa4@b>", SMTPD_CL_8BIT_ARG },
	{ "X\r", 0, "X\r", "", SMTPD_CL_CTRL },
};

static void
test_split_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(split_rows) / sizeof(split_rows[0]); i++) {
		struct str line = { split_rows[i].line,
		    split_rows[i].len ? split_rows[i].len : strlen(split_rows[i].line) };
		struct smtpd_cmdline cl;
		const char *wv = split_rows[i].verb, *wa = split_rows[i].arg;
		size_t wvl = strlen(wv);

		if (split_rows[i].len)       /* the NUL row: the verb stops at no blank */
			wvl = 5;
		smtpd_line_split(line, &cl);
		if (cl.verb.len != wvl || memcmp(cl.verb.p, split_rows[i].len ? split_rows[i].line : wv, wvl) != 0 ||
		    cl.arg.len != strlen(wa) || memcmp(cl.arg.p, wa, cl.arg.len) != 0 ||
		    cl.faults != split_rows[i].faults) {
			print_error("row %zu: got verb \"%.*s\" arg \"%.*s\" faults %#x, want \"%s\" \"%s\" %#x\n",
			    i, (int)cl.verb.len, cl.verb.p, (int)cl.arg.len, cl.arg.p, cl.faults, wv, wa,
			    split_rows[i].faults);
			failed = 1;
		}
	}
	assert_int_equal(failed, 0);
}

/* --- MAIL/RCPT keyword, parameters, numbers, BDAT ------------------------------- */

static const struct {
	const char *arg, *kw;
	const char *want;            /* rest, NULL = keyword rejected */
} path_rows[] = {
	{ "FROM:<a@b>", "FROM:", "<a@b>" },
	{ "from:<a@b> SIZE=1", "FROM:", "<a@b> SIZE=1" },
	{ "FROM: <a@b>", "FROM:", "<a@b>" },
	{ "FROM:\t <>", "FROM:", "<>" },
	{ "FROM :<a@b>", "FROM:", NULL },
	{ "FRO:<a@b>", "FROM:", NULL },
	{ "TO:<a@b>", "TO:", "<a@b>" },
	{ "To:", "TO:", "" },
	{ "", "TO:", NULL },
};

static void
test_path_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(path_rows) / sizeof(path_rows[0]); i++) {
		struct str arg = { path_rows[i].arg, strlen(path_rows[i].arg) }, rest;
		int r = smtpd_line_path_arg(arg, path_rows[i].kw, &rest);
		const char *w = path_rows[i].want;

		if ((w == NULL) != (r < 0) ||
		    (w != NULL && (rest.len != strlen(w) || memcmp(rest.p, w, rest.len) != 0))) {
			print_error("%s: got %d \"%.*s\", want \"%s\"\n", path_rows[i].arg, r,
			    r < 0 ? 0 : (int)rest.len, r < 0 ? "" : rest.p, w ? w : "(rejected)");
			failed = 1;
		}
	}
	assert_int_equal(failed, 0);
}

static const struct {
	const char *in;
	const char *want;            /* "K=V;" per parameter ("K;" without value), then "ERR" on error */
} param_rows[] = {
	{ "", "" },
	{ "   ", "" },
	{ " SIZE=1000", "SIZE=1000;" },
	{ " SIZE=1000 BODY=8BITMIME SMTPUTF8", "SIZE=1000;BODY=8BITMIME;SMTPUTF8;" },
	{ "\tX-FOO=a+b", "X-FOO=a+b;" },
	{ " SIZE=", "ERR" },
	{ " =1", "ERR" },
	{ " -X=1", "ERR" },
	{ " SIZE=1=2", "ERR" },
	{ " SIZE=\x80", "ERR" },
	{ " A B", "A;B;" },
	{ " A_B=1", "ERR" },
};

static void
test_param_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(param_rows) / sizeof(param_rows[0]); i++) {
		struct str s = { param_rows[i].in, strlen(param_rows[i].in) }, k, v;
		char got[256];
		size_t off = 0;
		int r, guard = 0;

		got[0] = '\0';
		while ((r = smtpd_line_param_next(&s, &k, &v)) > 0 && guard++ < 20) {
			if (v.p != NULL)
				off += (size_t)snprintf(got + off, sizeof(got) - off, "%.*s=%.*s;",
				    (int)k.len, k.p, (int)v.len, v.p);
			else
				off += (size_t)snprintf(got + off, sizeof(got) - off, "%.*s;", (int)k.len, k.p);
		}
		if (r < 0)
			snprintf(got + off, sizeof(got) - off, "ERR");
		if (strcmp(got, param_rows[i].want) != 0) {
			print_error("\"%s\": got \"%s\", want \"%s\"\n", param_rows[i].in, got,
			    param_rows[i].want);
			failed = 1;
		}
	}
	assert_int_equal(failed, 0);
}

static const struct {
	const char *in;
	int ok;
	uint64_t size;
	int last;
} bdat_rows[] = {
	{ "0", 1, 0, 0 },
	{ "100", 1, 100, 0 },
	{ "100 LAST", 1, 100, 1 },
	{ "0 last", 1, 0, 1 },
	{ "5  LAST", 1, 5, 1 },
	{ "9999999999999999999", 1, 9999999999999999999ull, 0 },
	{ "99999999999999999999", 0, 0, 0 },
	{ "", 0, 0, 0 },
	{ "LAST", 0, 0, 0 },
	{ "-1", 0, 0, 0 },
	{ "+1", 0, 0, 0 },
	{ "1 LASTX", 0, 0, 0 },
	{ "1 FIRST", 0, 0, 0 },
	{ "1x", 0, 0, 0 },
	{ "1 LAST x", 0, 0, 0 },
};

static void
test_bdat_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bdat_rows) / sizeof(bdat_rows[0]); i++) {
		struct str a = { bdat_rows[i].in, strlen(bdat_rows[i].in) };
		uint64_t size = 7;
		int last = 7;
		int r = smtpd_line_bdat_arg(a, &size, &last);

		if ((r == 0) != bdat_rows[i].ok ||
		    (r == 0 && (size != bdat_rows[i].size || last != bdat_rows[i].last))) {
			print_error("\"%s\": got %d size %llu last %d, want ok %d size %llu last %d\n",
			    bdat_rows[i].in, r, (unsigned long long)size, last, bdat_rows[i].ok,
			    (unsigned long long)bdat_rows[i].size, bdat_rows[i].last);
			failed = 1;
		}
	}
	assert_int_equal(failed, 0);
}

/* --- PROXY protocol ------------------------------------------------------------ */

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

struct proxy_row {
	const char *name;
	unsigned char in[600];
	size_t len;
	enum smtpd_proxy_result want;
	size_t want_used;
	const char *want_addr;       /* NULL = no source (keep the peer) */
	int want_port;
};

static size_t
v2_make(unsigned char *p, unsigned ver_cmd, unsigned fam, const unsigned char *addr, size_t alen)
{
	memcpy(p, v2_sig, 12);
	p[12] = (unsigned char)ver_cmd;
	p[13] = (unsigned char)fam;
	p[14] = (unsigned char)(alen >> 8);
	p[15] = (unsigned char)alen;
	if (alen)
		memcpy(p + 16, addr, alen);
	return 16 + alen;
}

static int
check_proxy(const struct proxy_row *r, size_t len, enum smtpd_proxy_result want, const char *how)
{
	struct smtpd_proxy_addr pa;
	size_t used = 99;
	enum smtpd_proxy_result res = smtpd_proxy_parse(r->in, len, &used, &pa);
	char text[INET6_ADDRSTRLEN] = "";
	int port = -1;

	if (res != want) {
		print_error("%s [%s]: got result %d, want %d\n", r->name, how, res, want);
		return 1;
	}
	if (res != SMTPD_PROXY_OK)
		return 0;
	if (pa.have_src) {
		if (pa.src.ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&pa.src;
			inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
			port = ntohs(sin->sin_port);
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&pa.src;
			inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
			port = ntohs(sin6->sin6_port);
		}
	}
	if (used != r->want_used || (r->want_addr == NULL) != !pa.have_src ||
	    (r->want_addr != NULL && (strcmp(text, r->want_addr) != 0 || port != r->want_port))) {
		print_error("%s [%s]: got used %zu addr %s port %d, want %zu %s %d\n", r->name, how,
		    used, pa.have_src ? text : "(none)", port, r->want_used,
		    r->want_addr ? r->want_addr : "(none)", r->want_port);
		return 1;
	}
	return 0;
}

static void
test_proxy_rows(void **state)
{
	static struct proxy_row rows[32];
	size_t n = 0;
	int failed = 0;
	unsigned char a4[12] = { 192, 0, 2, 7, 10, 0, 0, 1, 0x30, 0x39, 0, 25 };
	unsigned char a6[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1, [16] = 0x20, [17] = 1,
	    [32] = 0x01, [33] = 0xbb, [34] = 0, [35] = 25 };

	(void)state;
#define V1(nm, text, res, used, addr, port) do { \
	rows[n].name = nm; rows[n].len = strlen(text); memcpy(rows[n].in, text, rows[n].len); \
	rows[n].want = res; rows[n].want_used = used; rows[n].want_addr = addr; \
	rows[n].want_port = port; n++; } while (0)
	V1("v1 tcp4", "PROXY TCP4 192.0.2.1 10.0.0.1 56324 25\r\nEHLO x\r\n", SMTPD_PROXY_OK, 40,
	    "192.0.2.1", 56324);
	V1("v1 tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1000 25\r\n", SMTPD_PROXY_OK, 44,
	    "2001:db8::1", 1000);
	V1("v1 unknown", "PROXY UNKNOWN\r\n", SMTPD_PROXY_OK, 15, NULL, 0);
	V1("v1 unknown with addresses", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", SMTPD_PROXY_OK, 35,
	    NULL, 0);
	V1("v1 incomplete", "PROXY TCP4 192.0.2.1", SMTPD_PROXY_MORE, 0, NULL, 0);
	V1("v1 bad family", "PROXY UDP4 192.0.2.1 10.0.0.1 1 2\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 bad address", "PROXY TCP4 192.0.2.300 10.0.0.1 1 2\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 v6 in tcp4", "PROXY TCP4 ::1 ::1 1 2\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 bad port", "PROXY TCP4 192.0.2.1 10.0.0.1 65536 25\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 missing port", "PROXY TCP4 192.0.2.1 10.0.0.1 1\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 extra token", "PROXY TCP4 192.0.2.1 10.0.0.1 1 2 3\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 double space", "PROXY TCP4  192.0.2.1 10.0.0.1 1 2\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 bare lf", "PROXY UNKNOWN\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 cr without lf", "PROXY UNKNOWN\rX", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("not proxy", "EHLO x\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("lower case", "proxy UNKNOWN\r\n", SMTPD_PROXY_INVALID, 0, NULL, 0);
	V1("v1 too long",
	    "PROXY TCP4 192.0.2.1 10.0.0.1 1 2                                                                                                     ",
	    SMTPD_PROXY_INVALID, 0, NULL, 0);
#undef V1
	rows[n].name = "v2 tcp4";
	rows[n].len = v2_make(rows[n].in, 0x21, 0x11, a4, sizeof(a4));
	rows[n].want = SMTPD_PROXY_OK;
	rows[n].want_used = 28;
	rows[n].want_addr = "192.0.2.7";
	rows[n].want_port = 12345;
	n++;
	rows[n].name = "v2 tcp6";
	rows[n].len = v2_make(rows[n].in, 0x21, 0x21, a6, sizeof(a6));
	rows[n].want = SMTPD_PROXY_OK;
	rows[n].want_used = 52;
	rows[n].want_addr = "2001:db8::1";
	rows[n].want_port = 443;
	n++;
	rows[n].name = "v2 local";
	rows[n].len = v2_make(rows[n].in, 0x20, 0x00, NULL, 0);
	rows[n].want = SMTPD_PROXY_OK;
	rows[n].want_used = 16;
	n++;
	rows[n].name = "v2 tcp4 with tlv";
	{
		unsigned char a[20];
		memcpy(a, a4, 12);
		memcpy(a + 12, "\x04\x00\x05hello", 8);
		rows[n].len = v2_make(rows[n].in, 0x21, 0x11, a, sizeof(a));
	}
	rows[n].want = SMTPD_PROXY_OK;
	rows[n].want_used = 36;
	rows[n].want_addr = "192.0.2.7";
	rows[n].want_port = 12345;
	n++;
	rows[n].name = "v2 short address block";
	rows[n].len = v2_make(rows[n].in, 0x21, 0x11, a4, 8);
	rows[n].want = SMTPD_PROXY_INVALID;
	n++;
	rows[n].name = "v2 version 1";
	rows[n].len = v2_make(rows[n].in, 0x11, 0x11, a4, sizeof(a4));
	rows[n].want = SMTPD_PROXY_INVALID;
	n++;
	rows[n].name = "v2 udp";
	rows[n].len = v2_make(rows[n].in, 0x21, 0x12, a4, sizeof(a4));
	rows[n].want = SMTPD_PROXY_INVALID;
	n++;
	rows[n].name = "v2 too long";
	rows[n].len = v2_make(rows[n].in, 0x21, 0x11, a4, 0) ;
	rows[n].in[14] = 0x10;           /* 4096 bytes announced */
	rows[n].want = SMTPD_PROXY_INVALID;
	n++;
	rows[n].name = "v2 bad signature";
	rows[n].len = v2_make(rows[n].in, 0x21, 0x11, a4, sizeof(a4));
	rows[n].in[5] = 'X';
	rows[n].want = SMTPD_PROXY_INVALID;
	n++;

	for (size_t i = 0; i < n; i++) {
		failed |= check_proxy(&rows[i], rows[i].len, rows[i].want, "whole");
		/* every prefix of a valid header is MORE (or already INVALID for bad ones) */
		for (size_t k = 0; k < rows[i].len && k < rows[i].want_used; k++)
			if (rows[i].want == SMTPD_PROXY_OK)
				failed |= check_proxy(&rows[i], k, SMTPD_PROXY_MORE, "prefix");
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_rows),
		cmocka_unit_test(test_line_nul),
		cmocka_unit_test(test_split_rows),
		cmocka_unit_test(test_path_rows),
		cmocka_unit_test(test_param_rows),
		cmocka_unit_test(test_bdat_rows),
		cmocka_unit_test(test_proxy_rows),
	};

	return cmocka_run_group_tests_name("smtpd_cmd", tests, NULL, NULL);
}
