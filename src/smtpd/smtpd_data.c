/*
 * smtpd_data.c - the DATA content reader and the header-section tracker
 *
 * Owns:     nothing; content is written into a caller buffer.
 * Lifetime: struct smtpd_data and struct smtpd_hdr live in the transaction.
 * Errors:   a bare CR or LF is a flag (the caller rejects the message with
 *           5.5.2 at the real end of data), never a line end.
 * Context:  any thread.
 *
 * End of data is its own transition table over CR, LF and '.' (STYLE §7,
 * like cmd_trans in Postfix's postscreen_smtpd.c): from the start of a line
 * only '.' CR LF ends the message, and a line starts only after CRLF. So
 * "\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n" and "\r\n.\r" are all plain data
 * (and mark the message as carrying bare line ends): no peer can end a
 * message where a next hop that reads lines differently would not (SMTP
 * smuggling, CVE-2023-51764 and relatives).
 */
#include "smtpd/smtpd_proto.h"

#include <stdint.h>
#include <string.h>

enum data_state {
	DS_BOL = 0,                  /* at the start of a line (after CRLF) */
	DS_TEXT,                     /* inside a line */
	DS_CR,                       /* a CR is held back: CRLF or a bare CR? */
	DS_DOT,                      /* '.' at the start of a line is held back */
	DS_DOT_CR,                   /* ".\r" at the start of a line is held back */
};

/* smtpd_data_init - at the start of DATA content (just after the DATA line's CRLF) */
void
smtpd_data_init(struct smtpd_data *d)
{
	d->state = DS_BOL;
	d->bare = 0;
	d->dotline = 0;
}

/* smtpd_data_wire - see smtpd_proto.h */
int
smtpd_data_wire(const struct smtpd_data *d)
{
	return !d->bare && !d->dotline && d->state == DS_BOL;
}

/*
 * data_special - the first CR or LF in in[i..len), or len. Eight bytes at
 * a time: a byte equal to CR or LF is a zero byte of w ^ 0x0d0d.. or of
 * w ^ 0x0a0a.., and (x - 0x0101..) & ~x & 0x8080.. is non-zero exactly
 * when x has a zero byte. This is the one pass over the content that the
 * end-of-data and bare-line-end rules need; the byte loop finishes the
 * last word.
 */
static size_t
data_special(const char *in, size_t i, size_t len)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	const uint64_t crs = 0x0d * ones, lfs = 0x0a * ones;

	while (len - i >= 8) {
		uint64_t w, a, b;

		memcpy(&w, in + i, 8);
		a = w ^ crs;
		b = w ^ lfs;
		if ((((a - ones) & ~a) | ((b - ones) & ~b)) & highs)
			break;
		i += 8;
	}
	while (i < len && in[i] != '\r' && in[i] != '\n')
		i++;
	return i;
}

/*
 * data_run - from in[i], inside a line, the longest run that comes out as
 * it went in: text, and CRLF line ends followed by a first byte other than
 * '.'. It stops at the CR or LF that the state machine must look at (a
 * bare one, a CRLF whose next line starts with '.', or one too close to
 * the end of in[] to decide) or at len.
 */
static size_t
data_run(const char *in, size_t i, size_t len)
{
	for (;;) {
		size_t e = data_special(in, i, len);

		if (len - e < 3 || in[e] != '\r' || in[e + 1] != '\n' || in[e + 2] == '.')
			return e;
		i = e + 2;
	}
}

/*
 * smtpd_data_feed - one pass over in[]; the transitions, by state and byte:
 *
 *   state    '.'            CR            LF              other
 *   BOL      DOT            CR            TEXT, bare      TEXT
 *   TEXT     TEXT           CR            TEXT, bare      TEXT
 *   CR       TEXT, bare     CR, bare      BOL (CRLF)      TEXT, bare
 *   DOT      TEXT (unstuff) DOT_CR        TEXT, bare      TEXT (unstuff)
 *   DOT_CR   TEXT, bare     CR, bare      END             TEXT, bare
 *
 * A held-back CR that turns out to be bare is written out as data; a held
 * dot at the start of a line is always dropped (RFC 5321 §4.5.2). Ordinary
 * lines (data_run) are not stepped through byte by byte: they go out as
 * they came, one memcpy for many lines.
 */
enum smtpd_data_result
smtpd_data_feed(struct smtpd_data *d, const char *in, size_t len, size_t *consumed,
    char *out, size_t *outlen)
{
	size_t i = 0, o = 0;
	unsigned st = d->state;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		switch (st) {
		case DS_TEXT:
		case DS_BOL:
			if (st == DS_TEXT || (c != '.' && c != '\r' && c != '\n')) {
				/* the common case: whole ordinary lines, copied as they are */
				size_t start = i;

				i = data_run(in, i, len);
				memcpy(out + o, in + start, i - start);
				o += i - start;
				st = DS_TEXT;
				if (i == len)
					break;
				c = (unsigned char)in[i];
			}
			i++;
			if (c == '.') {
				st = DS_DOT;
			} else if (c == '\r') {
				st = DS_CR;
			} else {        /* '\n' */
				d->bare = 1;
				out[o++] = '\n';
				st = DS_TEXT;
			}
			break;
		case DS_CR:
			i++;
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				st = DS_BOL;
			} else if (c == '\r') {
				d->bare = 1;
				out[o++] = '\r';
			} else {
				d->bare = 1;
				out[o++] = '\r';
				out[o++] = (char)c;
				st = DS_TEXT;
			}
			break;
		case DS_DOT:
			i++;
			if (c == '\r') {
				st = DS_DOT_CR;
			} else {
				if (c == '\n')
					d->bare = 1;
				else if (c == '.')
					d->dotline = 1;  /* "..": the stored line starts with '.' */
				out[o++] = (char)c;
				st = DS_TEXT;
			}
			break;
		case DS_DOT_CR:
			i++;
			if (c == '\n') {
				d->state = DS_BOL;
				*consumed = i;
				*outlen = o;
				return SMTPD_DATA_END;
			}
			d->bare = 1;
			out[o++] = '\r';
			if (c == '\r') {
				st = DS_CR;
			} else {
				out[o++] = (char)c;
				st = DS_TEXT;
			}
			break;
		}
	}
	d->state = (unsigned char)st;
	*consumed = i;
	*outlen = o;
	return SMTPD_DATA_MORE;
}

/*
 * smtpd_data_bdat_scan - BDAT content is taken as sent (no dot-stuffing), but
 * under DATA's rule for line ends (SPEC §4): every CR must be followed by
 * LF and every LF preceded by CR, also across chunk boundaries, else
 * d->bare is set. A chunk that ends with a CR leaves d->state at DS_CR
 * until the next byte decides; one that ends with CRLF leaves DS_BOL. A
 * line that starts with '.' sets d->dotline.
 */
void
smtpd_data_bdat_scan(struct smtpd_data *d, const char *p, size_t len)
{
	size_t i = 0;

	if (d->bare || len == 0)
		return;
	if (d->state == DS_CR) {
		if (p[0] != '\n') {
			d->bare = 1;
			return;
		}
		i = 1;
		d->state = DS_BOL;
	}
	if (d->state == DS_BOL && i < len && p[i] == '.')
		d->dotline = 1;
	while (i < len) {
		size_t e = data_special(p, i, len);

		if (e == len) {
			d->state = DS_TEXT;
			return;
		}
		if (p[e] == '\n') {            /* an LF not eaten after its CR */
			d->bare = 1;
			return;
		}
		if (e + 1 == len) {
			d->state = DS_CR;
			return;
		}
		if (p[e + 1] != '\n') {
			d->bare = 1;
			return;
		}
		i = e + 2;
		d->state = DS_BOL;
		if (i < len && p[i] == '.')
			d->dotline = 1;
	}
}

/* smtpd_data_bdat_end - the last chunk is in: a CR at the very end is bare too */
int
smtpd_data_bdat_end(struct smtpd_data *d)
{
	if (d->state == DS_CR)
		d->bare = 1;
	return d->bare;
}

/* --- header section ------------------------------------------------- */

enum hdr_state {
	HS_BOL = 0,
	HS_BOL_CR,
	HS_NAME,
	HS_NAME_WS,
	HS_VALUE,
	HS_BODY,
};

#define HDR_NAME_LONG    0xff

/* smtpd_data_hdr_init - before the first byte of a message */
void
smtpd_data_hdr_init(struct smtpd_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_BOL;
}

/* smtpd_data_hdr_in_body - the header section has ended */
int
smtpd_data_hdr_in_body(const struct smtpd_hdr *h)
{
	return h->state == HS_BODY;
}

/* ftext - RFC 5322 §3.6.8: printable US-ASCII except ':' */
static int
is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* hdr_name_done - the colon: which of the fields we watch is this? */
static void
hdr_name_done(struct smtpd_hdr *h)
{
	h->cur = 0;
	if (h->nlen == HDR_NAME_LONG)
		return;
	if (h->nlen == 10 && memcmp(h->name, "message-id", 10) == 0) {
		if (!(h->found & SMTPD_HDR_MESSAGE_ID))
			h->cur = SMTPD_HDR_MESSAGE_ID;
		h->found |= SMTPD_HDR_MESSAGE_ID;
	} else if (h->nlen == 4 && memcmp(h->name, "date", 4) == 0) {
		h->found |= SMTPD_HDR_DATE;
	} else if (h->nlen == 4 && memcmp(h->name, "from", 4) == 0) {
		h->found |= SMTPD_HDR_FROM;
	} else if (h->nlen == 8 && memcmp(h->name, "received", 8) == 0) {
		h->received++;
	}
}

/*
 * smtpd_data_hdr_feed - a header line is a field name, optional blanks (obsolete
 * syntax), ':' and a value that may continue on lines starting with a
 * blank; the first line that is neither (the empty line, normally) ends
 * the section. LF ends a line here; the CR before it is ignored.
 */
void
smtpd_data_hdr_feed(struct smtpd_hdr *h, const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && h->state != HS_BODY) {
		unsigned char c = (unsigned char)p[i++];

		switch (h->state) {
		case HS_BOL:
			if (c == '\r') {
				h->state = HS_BOL_CR;
			} else if (c == ' ' || c == '\t') {
				/* a continuation line: only after a field */
				h->state = h->nlen != 0 ? HS_VALUE : HS_BODY;
			} else if (is_ftext(c)) {
				h->cur = 0;
				h->nlen = 1;
				h->name[0] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
				h->state = HS_NAME;
			} else {
				h->state = HS_BODY;
			}
			break;
		case HS_BOL_CR:
			h->state = HS_BODY;  /* CRLF: the empty line; CR+other: not a header */
			break;
		case HS_NAME:
			if (c == ':') {
				hdr_name_done(h);
				h->state = HS_VALUE;
			} else if (is_ftext(c)) {
				if (h->nlen < sizeof(h->name))
					h->name[h->nlen++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
				else
					h->nlen = HDR_NAME_LONG;
			} else if (c == ' ' || c == '\t') {
				h->state = HS_NAME_WS;
			} else {
				h->state = HS_BODY;
			}
			break;
		case HS_NAME_WS:
			if (c == ':') {
				hdr_name_done(h);
				h->state = HS_VALUE;
			} else if (c != ' ' && c != '\t') {
				h->state = HS_BODY;
			}
			break;
		case HS_VALUE:
			if (h->cur != SMTPD_HDR_MESSAGE_ID) {
				const char *lf = c == '\n' ? p + i - 1 : memchr(p + i, '\n', len - i);
				if (lf == NULL) {
					i = len;
					break;
				}
				i = (size_t)(lf - p) + 1;
				h->state = HS_BOL;
				break;
			}
			if (c == '\n')
				h->state = HS_BOL;
			else if (c > ' ' && c != 0x7f && h->idlen < SMTPD_HDR_ID_MAX)
				h->msgid[h->idlen++] = (char)c;  /* no blanks, controls or NUL */
			break;
		}
	}
	h->msgid[h->idlen] = '\0';
}
