/*
 * test_smtpd_data.c - table-driven tests for src/smtpd/smtpd_data.c: the
 *                     DATA end-of-data machine and the header watch
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 *
 * Every row is fed whole, byte by byte, split at every position into two
 * pieces, and in pseudo-random chunks: a resumable parser must give the
 * same answer for every split of its input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_proto.h"

#define MAXBUF 8192

struct data_row {
	const char *name;
	const char *in;
	size_t inlen;                /* 0 = strlen(in) */
	const char *want_out;        /* the content, un-stuffed */
	size_t want_outlen;          /* 0 = strlen(want_out) */
	int want_end;                /* end of data seen */
	int want_bare;               /* a bare CR or LF was seen */
	const char *want_rest;       /* bytes after the end, left for the command reader */
};

static const struct data_row data_rows[] = {
	{ "simple", "Hello\r\n.\r\n", 0, "Hello\r\n", 0, 1, 0, "" },
	{ "empty message", ".\r\n", 0, "", 0, 1, 0, "" },
	{ "only an empty line", "\r\n.\r\n", 0, "\r\n", 0, 1, 0, "" },
	{ "headers and body", "Subject: x\r\n\r\nbody\r\n.\r\n", 0,
	  "Subject: x\r\n\r\nbody\r\n", 0, 1, 0, "" },
	{ "dot-stuffed line", "a\r\n..b\r\n.\r\n", 0, "a\r\n.b\r\n", 0, 1, 0, "" },
	{ "dot-stuffed dot line", "..\r\n.\r\n", 0, ".\r\n", 0, 1, 0, "" },
	{ "dot-stuffed double", "...\r\n.\r\n", 0, "..\r\n", 0, 1, 0, "" },
	{ "dot not at line start", "a.b\r\nc.\r\n.\r\n", 0, "a.b\r\nc.\r\n", 0, 1, 0, "" },
	{ "dot then text", ".x\r\n.\r\n", 0, "x\r\n", 0, 1, 0, "" },
	{ "pipelined after end", "a\r\n.\r\nQUIT\r\n", 0, "a\r\n", 0, 1, 0, "QUIT\r\n" },
	{ "two ends", "a\r\n.\r\n.\r\n", 0, "a\r\n", 0, 1, 0, ".\r\n" },
	{ "8-bit and NUL are data", "\xff\x00z\r\n.\r\n", 8, "\xff\x00z\r\n", 5, 1, 0, "" },
	{ "not ended", "a\r\nb\r\n", 0, "a\r\nb\r\n", 0, 0, 0, "" },
	{ "not ended, dot held", "a\r\n.", 0, "a\r\n", 0, 0, 0, "" },
	{ "not ended, dot CR held", "a\r\n.\r", 0, "a\r\n", 0, 0, 0, "" },
	{ "not ended, CR held", "a\r", 0, "a", 0, 0, 0, "" },
	/* SMTP smuggling: none of these ends the message; all mark it bare */
	{ "LF.LF", "a\n.\nMAIL FROM:<x>\r\n.\r\n", 0, "a\n.\nMAIL FROM:<x>\r\n", 0, 1, 1, "" },
	{ "CR.CR", "a\r.\rMAIL FROM:<x>\r\n.\r\n", 0, "a\r.\rMAIL FROM:<x>\r\n", 0, 1, 1, "" },
	{ "CRLF.LF", "a\r\n.\nMAIL FROM:<x>\r\n.\r\n", 0, "a\r\n\nMAIL FROM:<x>\r\n", 0, 1, 1, "" },
	{ "LF.CRLF", "a\n.\r\nMAIL FROM:<x>\r\n.\r\n", 0, "a\n.\r\nMAIL FROM:<x>\r\n", 0, 1, 1, "" },
	{ "CRLF.CR", "a\r\n.\rMAIL FROM:<x>\r\n.\r\n", 0, "a\r\n\rMAIL FROM:<x>\r\n", 0, 1, 1, "" },
	{ "CRLF.CRCRLF", "a\r\n.\r\r\n.\r\n", 0, "a\r\n\r\r\n", 0, 1, 1, "" },
	{ "CR.LF", "a\r.\nb\r\n.\r\n", 0, "a\r.\nb\r\n", 0, 1, 1, "" },
	{ "LF at start", "\n.\r\n.\r\n", 0, "\n.\r\n", 0, 1, 1, "" },
	{ "bare LF mid-line", "a\nb\r\n.\r\n", 0, "a\nb\r\n", 0, 1, 1, "" },
	{ "bare CR mid-line", "a\rb\r\n.\r\n", 0, "a\rb\r\n", 0, 1, 1, "" },
	{ "CRCRLF", "a\r\r\n.\r\n", 0, "a\r\r\n", 0, 1, 1, "" },
	{ "LF then end", "a\n\r\n.\r\n", 0, "a\n\r\n", 0, 1, 1, "" },
	{ "bare LF not ended", "a\n.\n", 0, "a\n.\n", 0, 0, 1, "" },
};

/* feed_data - run one row through smtpd_data_feed in the given chunk sizes */
static int
feed_data(const struct data_row *r, const size_t *chunks, size_t nchunks, const char *how)
{
	const char *in = r->in;
	size_t inlen = r->inlen ? r->inlen : strlen(r->in);
	const char *want_out = r->want_out;
	size_t want_outlen = r->want_outlen ? r->want_outlen : strlen(r->want_out);
	static char out[MAXBUF], tmp[MAXBUF];
	size_t outlen = 0, pos = 0, ci = 0;
	struct smtpd_data d;
	int end = 0;

	smtpd_data_init(&d);
	while (pos < inlen && !end) {
		size_t n = nchunks ? chunks[ci++ % nchunks] : inlen;
		size_t used = 0, olen = 0, off = 0;

		if (n > inlen - pos)
			n = inlen - pos;
		/* resumable: the caller may offer the same unconsumed bytes again */
		while (off < n && !end) {
			size_t avail = n - off;
			enum smtpd_data_result res = smtpd_data_feed(&d, in + pos + off, avail,
			    &used, tmp, &olen);
			if (olen > avail + 2) {
				print_error("%s [%s]: wrote %zu bytes for %zu input\n", r->name, how,
				    olen, avail);
				return 1;
			}
			memcpy(out + outlen, tmp, olen);
			outlen += olen;
			off += used;
			if (res == SMTPD_DATA_END) {
				end = 1;
			} else if (used != avail) {
				print_error("%s [%s]: MORE but consumed %zu of %zu\n", r->name, how,
				    used, avail);
				return 1;
			}
		}
		pos += off;
	}
	if (end != r->want_end) {
		print_error("%s [%s]: end got %d, want %d\n", r->name, how, end, r->want_end);
		return 1;
	}
	if (d.bare != r->want_bare) {
		print_error("%s [%s]: bare got %d, want %d\n", r->name, how, d.bare, r->want_bare);
		return 1;
	}
	if (outlen != want_outlen || memcmp(out, want_out, outlen) != 0) {
		print_error("%s [%s]: content got \"%.*s\" (%zu), want \"%.*s\" (%zu)\n", r->name,
		    how, (int)outlen, out, outlen, (int)want_outlen, want_out, want_outlen);
		return 1;
	}
	if (end && (inlen - pos != strlen(r->want_rest) ||
	    memcmp(in + pos, r->want_rest, inlen - pos) != 0)) {
		print_error("%s [%s]: rest got \"%.*s\", want \"%s\"\n", r->name, how,
		    (int)(inlen - pos), in + pos, r->want_rest);
		return 1;
	}
	return 0;
}

static uint32_t
prng(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

static void
test_data_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(data_rows) / sizeof(data_rows[0]); i++) {
		const struct data_row *r = &data_rows[i];
		size_t inlen = r->inlen ? r->inlen : strlen(r->in);
		size_t one = 1, two[2];
		uint32_t seed = (uint32_t)i + 1;

		failed |= feed_data(r, NULL, 0, "whole");
		failed |= feed_data(r, &one, 1, "bytewise");
		for (size_t k = 1; k < inlen; k++) {
			two[0] = k;
			two[1] = inlen;
			failed |= feed_data(r, two, 2, "split");
		}
		for (int rep = 0; rep < 50; rep++) {
			size_t chunks[16];
			for (int c = 0; c < 16; c++)
				chunks[c] = 1 + prng(&seed) % 7;
			failed |= feed_data(r, chunks, 16, "random");
		}
	}
	assert_int_equal(failed, 0);
}

/* A large message in a few big chunks: the output bound holds and the content survives. */
static void
test_data_large(void **state)
{
	static char in[70000], want[70000], out[70000 + 2];
	size_t inlen = 0, wantlen = 0, pos = 0, got = 0;
	struct smtpd_data d;
	int end = 0;

	(void)state;
	for (int line = 0; line < 1000; line++) {
		int dot = line % 10 == 0;
		if (dot)
			in[inlen++] = '.';
		for (int k = 0; k < 60; k++) {
			in[inlen++] = (char)('a' + (line + k) % 26);
			want[wantlen++] = (char)('a' + (line + k) % 26);
		}
		memcpy(in + inlen, "\r\n", 2);
		memcpy(want + wantlen, "\r\n", 2);
		inlen += 2;
		wantlen += 2;
	}
	memcpy(in + inlen, ".\r\n", 3);
	inlen += 3;
	smtpd_data_init(&d);
	while (pos < inlen && !end) {
		size_t n = inlen - pos < 16384 ? inlen - pos : 16384, used, olen;
		end = smtpd_data_feed(&d, in + pos, n, &used, out + got, &olen) == SMTPD_DATA_END;
		assert_true(olen <= n + 2);
		got += olen;
		pos += used;
	}
	assert_true(end);
	assert_int_equal(pos, inlen);
	assert_int_equal(d.bare, 0);
	assert_int_equal(got, wantlen);
	assert_memory_equal(out, want, wantlen);
}

/* --- header watch --------------------------------------------------------------- */

struct hdr_row {
	const char *name;
	const char *in;
	unsigned want_found;
	const char *want_msgid;
	unsigned want_received;
	int want_body;
};

#define H_ID   SMTPD_HDR_MESSAGE_ID
#define H_DATE SMTPD_HDR_DATE
#define H_FROM SMTPD_HDR_FROM

static const struct hdr_row hdr_rows[] = {
	{ "all three", "From: a@b\r\nDate: Mon, 1 Jan 2024\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n",
	  H_ID | H_DATE | H_FROM, "<a@b>", 0, 1 },
	{ "none", "Subject: hi\r\n\r\nMessage-ID: <no@x>\r\nDate: no\r\n", 0, "", 0, 1 },
	{ "case and blanks", "mEsSaGe-Id:    <x@y>   \r\ndate:x\r\n\r\n", H_ID | H_DATE, "<x@y>", 0, 1 },
	{ "folded message-id", "Message-ID:\r\n <fold@x>\r\n\r\n", H_ID, "<fold@x>", 0, 1 },
	{ "continuation kept", "Subject: a\r\n b\r\nDate: d\r\n\r\n", H_DATE, "", 0, 1 },
	{ "obsolete blank before colon", "DATE : x\r\nFrom\t: y\r\n\r\n", H_DATE | H_FROM, "", 0, 1 },
	{ "similar names", "Message-IDX: y\r\nX-Date: z\r\nFromage: q\r\n\r\n", 0, "", 0, 1 },
	{ "long name", "X-A-Very-Long-Header-Name-Indeed: v\r\nDate: d\r\n\r\n", H_DATE, "", 0, 1 },
	{ "non-header line ends headers", "X: y\r\nnot a header\r\nDate: z\r\n\r\n", 0, "", 0, 1 },
	{ "leading blank line is body", " x\r\nDate: d\r\n\r\n", 0, "", 0, 1 },
	{ "empty first line", "\r\nDate: d\r\n", 0, "", 0, 1 },
	{ "bare LF lines", "Date: d\nFrom: f\n\nbody", H_DATE | H_FROM, "", 0, 1 },
	{ "received count", "Received: a\r\nReceived: b\r\n c\r\nreceived: d\r\n\r\n", 0, "", 3, 1 },
	{ "first message-id wins", "Message-ID: <1@x>\r\nMessage-ID: <2@x>\r\n\r\n", H_ID, "<1@x>", 0, 1 },
	{ "still in headers", "Date: d\r\nFrom: f", H_DATE | H_FROM, "", 0, 0 },
	{ "name without colon at end", "Date", 0, "", 0, 0 },
};

static int
feed_hdr(const struct hdr_row *r, const size_t *chunks, size_t nchunks, const char *how)
{
	size_t len = strlen(r->in), pos = 0, ci = 0;
	struct smtpd_hdr h;

	smtpd_data_hdr_init(&h);
	while (pos < len) {
		size_t n = nchunks ? chunks[ci++ % nchunks] : len;
		if (n > len - pos)
			n = len - pos;
		smtpd_data_hdr_feed(&h, r->in + pos, n);
		pos += n;
	}
	if (h.found != r->want_found || strcmp(h.msgid, r->want_msgid) != 0 ||
	    h.received != r->want_received || smtpd_data_hdr_in_body(&h) != r->want_body) {
		print_error("%s [%s]: got found=%#x msgid=\"%s\" received=%u body=%d, "
		    "want found=%#x msgid=\"%s\" received=%u body=%d\n", r->name, how, h.found,
		    h.msgid, h.received, smtpd_data_hdr_in_body(&h), r->want_found, r->want_msgid,
		    r->want_received, r->want_body);
		return 1;
	}
	return 0;
}

/* ---- BDAT content: bare CR / LF across every chunk split ----------------- */

static const struct {
	const char *in;
	int bare;
} bdat_rows[] = {
	{ "", 0 },
	{ "Subject: x\r\n\r\nbody\r\n", 0 },
	{ "no line end at all", 0 },
	{ "a\r\n.\r\nb\r\n", 0 },          /* a dot line is data in BDAT */
	{ "a\nb\r\n", 1 },
	{ "a\rb\r\n", 1 },
	{ "a\r.\rb\r\n", 1 },               /* <CR>.<CR> */
	{ "a\n.\nb\r\n", 1 },               /* <LF>.<LF> */
	{ "a\r\n.\n", 1 },
	{ "a\r\r\n", 1 },
	{ "\n", 1 },
	{ "\r", 1 },                          /* a CR at the very end */
	{ "a\r\n\r", 1 },
	{ "a\n\r", 1 },
	{ "\r\n\r\n", 0 },
};

/* bdat_run - in[] as chunks split at a and b (a <= b), then the end */
static int
bdat_run(const char *in, size_t a, size_t b)
{
	struct smtpd_data d;
	size_t len = strlen(in);

	smtpd_data_init(&d);
	smtpd_data_bdat_scan(&d, in, a);
	smtpd_data_bdat_scan(&d, in + a, b - a);
	smtpd_data_bdat_scan(&d, in + b, len - b);
	return smtpd_data_bdat_end(&d);
}

static void
test_bdat_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t r = 0; r < sizeof(bdat_rows) / sizeof(bdat_rows[0]); r++) {
		size_t len = strlen(bdat_rows[r].in);

		for (size_t a = 0; a <= len; a++)
			for (size_t b = a; b <= len; b++) {
				int got = bdat_run(bdat_rows[r].in, a, b);
				if (got != bdat_rows[r].bare) {
					print_error("row %zu split %zu/%zu: got bare=%d, want %d\n",
					    r, a, b, got, bdat_rows[r].bare);
					failed++;
				}
			}
	}
	assert_int_equal(failed, 0);
}

static void
test_hdr_rows(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(hdr_rows) / sizeof(hdr_rows[0]); i++) {
		const struct hdr_row *r = &hdr_rows[i];
		size_t len = strlen(r->in), one = 1, two[2];
		uint32_t seed = (uint32_t)i + 7;

		failed |= feed_hdr(r, NULL, 0, "whole");
		failed |= feed_hdr(r, &one, 1, "bytewise");
		for (size_t k = 1; k < len; k++) {
			two[0] = k;
			two[1] = len;
			failed |= feed_hdr(r, two, 2, "split");
		}
		for (int rep = 0; rep < 20; rep++) {
			size_t chunks[8];
			for (int c = 0; c < 8; c++)
				chunks[c] = 1 + prng(&seed) % 5;
			failed |= feed_hdr(r, chunks, 8, "random");
		}
	}
	assert_int_equal(failed, 0);
}

/* The Message-ID kept for the log is bounded, however long the header. */
static void
test_hdr_long_msgid(void **state)
{
	static char in[4096];
	struct smtpd_hdr h;
	size_t n;

	(void)state;
	n = (size_t)snprintf(in, sizeof(in), "Message-ID: <");
	memset(in + n, 'x', 2000);
	n += 2000;
	memcpy(in + n, ">\r\nDate: d\r\n\r\n", 14);
	n += 14;
	smtpd_data_hdr_init(&h);
	smtpd_data_hdr_feed(&h, in, n);
	assert_int_equal(h.idlen, SMTPD_HDR_ID_MAX);
	assert_int_equal(strlen(h.msgid), SMTPD_HDR_ID_MAX);
	assert_int_equal(h.found, SMTPD_HDR_MESSAGE_ID | SMTPD_HDR_DATE);
	assert_true(smtpd_data_hdr_in_body(&h));
}

/* --- differential: the fast scanner against a byte-at-a-time reference --- */

/*
 * ref_feed - the end-of-data machine of smtpd_data.c one byte at a time,
 * as it was before data_run(): the reference the fast path must match on
 * every input and every split. dotline as defined in smtpd_proto.h.
 */
struct ref_data { unsigned st, bare, dotline; };

static int
ref_feed(struct ref_data *d, const char *in, size_t len, size_t *consumed, char *out,
    size_t *outlen)
{
	enum { BOL, TEXT, CR, DOT, DOT_CR };
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i++];

		switch (d->st) {
		case BOL:
		case TEXT:
			if (c == '.' && d->st == BOL) {
				d->st = DOT;
			} else if (c == '\r') {
				d->st = CR;
			} else {
				if (c == '\n')
					d->bare = 1;
				out[o++] = (char)c;
				d->st = TEXT;
			}
			break;
		case CR:
			out[o++] = '\r';
			if (c == '\n') {
				out[o++] = '\n';
				d->st = BOL;
			} else if (c == '\r') {
				d->bare = 1;
			} else {
				d->bare = 1;
				out[o++] = (char)c;
				d->st = TEXT;
			}
			break;
		case DOT:
			if (c == '\r') {
				d->st = DOT_CR;
			} else {
				if (c == '\n')
					d->bare = 1;
				else if (c == '.')
					d->dotline = 1;
				out[o++] = (char)c;
				d->st = TEXT;
			}
			break;
		case DOT_CR:
			if (c == '\n') {
				d->st = BOL;
				*consumed = i;
				*outlen = o;
				return 1;
			}
			d->bare = 1;
			out[o++] = '\r';
			if (c == '\r') {
				d->st = CR;
			} else {
				out[o++] = (char)c;
				d->st = TEXT;
			}
			break;
		}
	}
	*consumed = i;
	*outlen = o;
	return 0;
}

/* rnd - a small LCG, so a failure repeats */
static uint32_t
rnd(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/*
 * test_data_differential - random inputs made mostly of ordinary lines,
 * with dots, CRs and LFs in every position, fed in random pieces to both
 * the real machine and the reference: the same content, end, bare and
 * dotline flags, and the same bytes left after the end.
 */
static void
test_data_differential(void **state)
{
	static char in[4096], out1[4096 + 2], out2[4096 + 2];
	static const char alpha[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab .\r\n\r\n\r\n\r\n.\r";
	uint32_t seed = 42;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = rnd(&seed) % sizeof(in), o1 = 0, o2 = 0, p = 0;
		struct smtpd_data d;
		struct ref_data r = { 0, 0, 0 };
		int end1 = 0, end2 = 0;
		size_t c1 = 0, c2 = 0;

		for (size_t i = 0; i < len; i++)
			in[i] = alpha[rnd(&seed) % (sizeof(alpha) - 1)];
		smtpd_data_init(&d);
		while (p < len && !end1) {
			size_t n = 1 + rnd(&seed) % (len - p), used = 0, olen = 0;

			end1 = smtpd_data_feed(&d, in + p, n, &used, out1 + o1, &olen) == SMTPD_DATA_END;
			o1 += olen;
			p += used;
		}
		c1 = p;
		end2 = ref_feed(&r, in, len, &c2, out2, &o2);
		if (end1 != end2 || c1 != c2 || o1 != o2 || memcmp(out1, out2, o1) != 0 ||
		    d.bare != r.bare || d.dotline != r.dotline) {
			print_error("round %d: got end %d used %zu out %zu bare %d dotline %d, "
			    "want %d %zu %zu %u %u\n", round, end1, c1, o1, d.bare, d.dotline,
			    end2, c2, o2, r.bare, r.dotline);
			fail();
		}
	}
}

/* test_bdat_differential - smtpd_data_bdat_scan in random pieces against a byte loop */
static void
test_bdat_differential(void **state)
{
	static char in[4096];
	static const char alpha[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab .\r\n\r\n\r\n\r\n.\r\n";
	uint32_t seed = 7;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = rnd(&seed) % sizeof(in), p = 0;
		int bare = 0, dotline = 0, bol = 1, wire;
		struct smtpd_data d;

		for (size_t i = 0; i < len; i++)
			in[i] = alpha[rnd(&seed) % (sizeof(alpha) - 1)];
		/* the reference: every CR followed by LF, every LF after a CR */
		for (size_t i = 0; i < len && !bare; i++) {
			if (bol && in[i] == '.')
				dotline = 1;
			bol = 0;
			if (in[i] == '\n')
				bare = 1;
			else if (in[i] == '\r' && (i + 1 == len || in[i + 1] != '\n'))
				bare = 1;
			else if (in[i] == '\r')
				bol = 1, i++;
		}
		smtpd_data_init(&d);
		while (p < len) {
			size_t n = 1 + rnd(&seed) % (len - p);

			smtpd_data_bdat_scan(&d, in + p, n);
			p += n;
		}
		smtpd_data_bdat_end(&d);
		wire = !bare && !dotline && (len == 0 || (len >= 2 && in[len - 2] == '\r' &&
		    in[len - 1] == '\n'));
		if (d.bare != bare || (!bare && d.dotline != dotline) ||
		    smtpd_data_wire(&d) != wire) {
			print_error("round %d (len %zu): got bare %d dotline %d wire %d, want %d %d %d\n",
			    round, len, d.bare, d.dotline, smtpd_data_wire(&d), bare, dotline, wire);
			fail();
		}
	}
}

/* test_data_wire - which DATA contents may be sent as stored */
static void
test_data_wire(void **state)
{
	static const struct { const char *in; int wire; } rows[] = {
		{ "Hello\r\n.\r\n", 1 },
		{ ".\r\n", 1 },                            /* empty content */
		{ "a\r\n..b\r\n.\r\n", 0 },                /* stored line ".b" */
		{ "a\r\n.b\r\n.\r\n", 1 },                 /* a lone dot is dropped: "b" */
		{ "a\nb\r\n.\r\n", 0 },                    /* bare LF */
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtpd_data d;
		size_t used, olen;

		smtpd_data_init(&d);
		smtpd_data_feed(&d, rows[i].in, strlen(rows[i].in), &used, out, &olen);
		if (smtpd_data_wire(&d) != rows[i].wire) {
			print_error("row %zu: got wire %d, want %d\n", i, smtpd_data_wire(&d),
			    rows[i].wire);
			fail();
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_rows),
		cmocka_unit_test(test_data_large),
		cmocka_unit_test(test_bdat_rows),
		cmocka_unit_test(test_hdr_rows),
		cmocka_unit_test(test_hdr_long_msgid),
		cmocka_unit_test(test_data_differential),
		cmocka_unit_test(test_bdat_differential),
		cmocka_unit_test(test_data_wire),
	};

	return cmocka_run_group_tests_name("smtpd_data", tests, NULL, NULL);
}
