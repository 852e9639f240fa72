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
 * dot at the start of a line is always dropped (RFC 5321 §4.5.2).
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
				/* the common case: copy the run up to the next CR or LF */
				size_t start = i;
				while (i < len && in[i] != '\r' && in[i] != '\n')
					i++;
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

/* --- BDAT content (RFC 3030) ------------------------------------------ */

/*
 * smtpd_bdat_scan - BDAT content is taken as sent (no dot-stuffing), but
 * under DATA's rule for line ends (SPEC §4): every CR must be followed by
 * LF and every LF preceded by CR, also across chunk boundaries, else
 * d->bare is set. A chunk that ends with a CR leaves d->state at DS_CR
 * until the next byte decides.
 */
void
smtpd_bdat_scan(struct smtpd_data *d, const char *p, size_t len)
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
	}
	d->state = DS_TEXT;
	for (; i < len; i++) {
		if (p[i] == '\n') {             /* an LF not eaten after its CR */
			d->bare = 1;
			return;
		}
		if (p[i] != '\r')
			continue;
		if (i + 1 == len) {
			d->state = DS_CR;
			return;
		}
		if (p[++i] != '\n') {
			d->bare = 1;
			return;
		}
	}
}

/* smtpd_bdat_end - the last chunk is in: a CR at the very end is bare too */
int
smtpd_bdat_end(struct smtpd_data *d)
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

/* smtpd_hdr_init - before the first byte of a message */
void
smtpd_hdr_init(struct smtpd_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_BOL;
}

/* smtpd_hdr_in_body - the header section has ended */
int
smtpd_hdr_in_body(const struct smtpd_hdr *h)
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
 * smtpd_hdr_feed - a header line is a field name, optional blanks (obsolete
 * syntax), ':' and a value that may continue on lines starting with a
 * blank; the first line that is neither (the empty line, normally) ends
 * the section. LF ends a line here; the CR before it is ignored.
 */
void
smtpd_hdr_feed(struct smtpd_hdr *h, const char *p, size_t len)
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
