/*
 * dkim_canon.c - DKIM relaxed canonicalisation (RFC 6376 §3.4.2 and
 *                §3.4.4), the header section reader and the From: domain
 *
 * Owns:     the kept header copy of struct dkim_hdrs (buf).
 * Lifetime: dkim_hdrs from dkim_canon_hdrs_init() to dkim_canon_hdrs_clear();
 *           struct dkim_body holds no memory.
 * Errors:   a header section we cannot read safely (a line that is neither
 *           a field nor a continuation, limits exceeded, no memory) sets
 *           h->bad: the message is then not signed, never rejected.
 * Context:  any thread.
 *
 * Both readers are resumable byte machines: the content is fed as it
 * arrives from DATA or BDAT, in any split, and nothing is read twice.
 *
 * Relaxed body (§3.4.4): WSP at line ends is dropped, WSP runs inside a
 * line become one SP, empty lines at the end are dropped, and a non-empty
 * body ends in exactly one CRLF. Runs and line ends are counted and only
 * emitted once a later non-blank byte shows they are not trailing: the
 * state is a counter and two flags, whatever the body holds.
 */
#include "dkim/dkim.h"

#include <stdlib.h>
#include <string.h>

/* RFC 6376 §5.4.1's recommended fields; from first (over-signed by the signer). */
const char *const dkim_hdrs_signed[] = {
	"from", "reply-to", "subject", "date", "to", "cc", "in-reply-to", "references",
	"message-id", "mime-version", "content-type", "content-transfer-encoding",
	"resent-date", "resent-from", "resent-to", "resent-cc", "list-id", "list-help",
	"list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
	"list-owner", "list-archive",
};
const unsigned dkim_hdrs_nsigned = sizeof(dkim_hdrs_signed) / sizeof(dkim_hdrs_signed[0]);

/* --- body ----------------------------------------------------------------- */

void
dkim_canon_body_init(struct dkim_body *b, dkim_emit_fn *emit, void *arg)
{
	memset(b, 0, offsetof(struct dkim_body, out));
	b->emit = emit;
	b->arg = arg;
}

static void
body_flush(struct dkim_body *b)
{
	if (b->olen > 0)
		b->emit(b->arg, b->out, b->olen);
	b->olen = 0;
}

static inline void
body_put(struct dkim_body *b, char c)
{
	if (b->olen == sizeof(b->out))
		body_flush(b);
	b->out[b->olen++] = c;
}

/* body_char - a byte that is not WSP nor part of a CRLF: what was held back is not trailing */
static inline void
body_char(struct dkim_body *b, char c)
{
	for (; b->nl > 0; b->nl--) {
		body_put(b, '\r');
		body_put(b, '\n');
	}
	if (b->wsp) {
		body_put(b, ' ');
		b->wsp = 0;
	}
	body_put(b, c);
	b->any = 1;
}

/* dkim_canon_body_feed - see dkim.h; a CR is a line end only before LF (else it is a byte) */
void
dkim_canon_body_feed(struct dkim_body *b, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (b->cr) {
			b->cr = 0;
			if (c == '\n') {
				b->wsp = 0;      /* WSP before a line end is dropped */
				b->nl++;
				continue;
			}
			body_char(b, '\r');
		}
		if (c == '\r')
			b->cr = 1;
		else if (c == ' ' || c == '\t')
			b->wsp = 1;
		else
			body_char(b, c);
	}
}

/* dkim_canon_body_end - see dkim.h */
void
dkim_canon_body_end(struct dkim_body *b)
{
	if (b->cr) {
		b->cr = 0;
		body_char(b, '\r');
	}
	if (b->any) {                /* the last line's CRLF; trailing empty lines dropped */
		body_put(b, '\r');
		body_put(b, '\n');
	}
	b->nl = 0;
	b->wsp = 0;
	body_flush(b);
}

/* --- one header field ------------------------------------------------------ */

/* dkim_canon_header - see dkim.h (§3.4.2) */
size_t
dkim_canon_header(const char *field, size_t len, char *out, size_t size, int crlf)
{
	const char *colon = memchr(field, ':', len);
	size_t nlen, o = 0;
	int wsp = 0, started = 0;

	if (colon == NULL)
		return 0;
	nlen = (size_t)(colon - field);
	while (nlen > 0 && (field[nlen - 1] == ' ' || field[nlen - 1] == '\t'))
		nlen--;
	if (nlen + 1 > size)
		return 0;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)field[i];
		out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[o++] = ':';
	for (const char *p = colon + 1; p < field + len; p++) {
		char c = *p;

		if (c == '\r' || c == '\n')      /* unfold */
			continue;
		if (c == ' ' || c == '\t') {
			wsp = 1;
			continue;
		}
		if (o + 2 > size)
			return 0;
		if (wsp && started)
			out[o++] = ' ';
		wsp = 0;
		started = 1;
		out[o++] = c;
	}
	if (crlf) {
		if (o + 2 > size)
			return 0;
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

/* --- the header section ------------------------------------------------------ */

enum {
	HS_BOL = 0,                  /* at the start of a line */
	HS_BOL_CR,                   /* a CR at the start of a line: the empty line? */
	HS_NAME,                     /* in a field name */
	HS_VALUE,                    /* in a field's value, up to the LF */
	HS_BODY,                     /* done */
};

#define NAME_LONG 0xff

void
dkim_canon_hdrs_init(struct dkim_hdrs *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_BOL;
}

void
dkim_canon_hdrs_clear(struct dkim_hdrs *h)
{
	free(h->buf);
	dkim_canon_hdrs_init(h);
}

/* hdrs_fail - stop: nothing of this message is signed */
static void
hdrs_fail(struct dkim_hdrs *h)
{
	h->bad = 1;
	h->done = 1;
	h->keep = 0;
	h->state = HS_BODY;
}

/* hdrs_put - append to the kept copy, within DKIM_HDRS_MAX */
static int
hdrs_put(struct dkim_hdrs *h, const char *p, size_t n)
{
	if (n > DKIM_HDRS_MAX - h->len) {
		hdrs_fail(h);
		return -1;
	}
	if (h->len + n > h->cap) {
		size_t cap = h->cap ? h->cap : 1024;
		char *nb;
		while (cap < h->len + n)
			cap *= 2;
		if (cap > DKIM_HDRS_MAX)
			cap = DKIM_HDRS_MAX;
		if ((nb = realloc(h->buf, cap)) == NULL) {
			hdrs_fail(h);
			return -1;
		}
		h->buf = nb;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, p, n);
	h->len += n;
	return 0;
}

/* hdrs_close - the current field ended: record it when kept */
static void
hdrs_close(struct dkim_hdrs *h)
{
	if (h->keep)
		h->f[h->nf - 1].len = (uint32_t)(h->len - h->f[h->nf - 1].off);
	h->keep = 0;
}

/* hdrs_colon - the field name is complete: is it one we sign? */
static void
hdrs_colon(struct dkim_hdrs *h)
{
	size_t n = h->nlen;

	if (n == NAME_LONG)
		return;
	while (n > 0 && (h->name[n - 1] == ' ' || h->name[n - 1] == '\t'))
		n--;
	for (unsigned i = 0; i < dkim_hdrs_nsigned; i++) {
		const char *s = dkim_hdrs_signed[i];
		size_t k;

		if (strlen(s) != n)
			continue;
		for (k = 0; k < n; k++) {
			unsigned char c = (unsigned char)h->name[k];
			if ((char)(c >= 'A' && c <= 'Z' ? c + 32 : c) != s[k])
				break;
		}
		if (k != n)
			continue;
		if (i == DKIM_H_FROM)
			h->nfrom++;
		if (h->nf == DKIM_FIELDS_MAX) {
			hdrs_fail(h);
			return;
		}
		h->f[h->nf].off = (uint32_t)h->len;
		h->f[h->nf].len = 0;
		h->f[h->nf].which = (uint8_t)i;
		if (hdrs_put(h, h->name, h->nlen) < 0 || hdrs_put(h, ":", 1) < 0)
			return;
		h->nf++;
		h->keep = 1;
		return;
	}
}

/* dkim_canon_hdrs_feed - see dkim.h */
size_t
dkim_canon_hdrs_feed(struct dkim_hdrs *h, const char *p, size_t len)
{
	size_t i = 0;

	if (h->done)
		return h->bad ? len : 0;
	while (i < len) {
		unsigned char c = (unsigned char)p[i];

		switch (h->state) {
		case HS_BOL:
			if (c == ' ' || c == '\t') {
				if (h->nlen == 0) {          /* a continuation before any field */
					hdrs_fail(h);
					return len;
				}
				h->state = HS_VALUE;
				continue;                    /* the byte is part of the value */
			}
			hdrs_close(h);
			i++;
			if (c == '\r') {
				h->state = HS_BOL_CR;
			} else if (c > 32 && c < 127 && c != ':') {
				h->name[0] = (char)c;
				h->nlen = 1;
				h->state = HS_NAME;
			} else {
				hdrs_fail(h);
				return len;
			}
			break;
		case HS_BOL_CR:
			i++;
			if (c != '\n') {
				hdrs_fail(h);
				return len;
			}
			h->state = HS_BODY;
			h->done = 1;
			return i;
		case HS_NAME:
			i++;
			if (c == ':') {
				hdrs_colon(h);
				if (h->bad)
					return len;
				h->state = HS_VALUE;
			} else if ((c > 32 && c < 127) || c == ' ' || c == '\t') {
				if (h->nlen == NAME_LONG)
					break;
				if (h->nlen < DKIM_NAME_MAX)
					h->name[h->nlen++] = (char)c;
				else
					h->nlen = NAME_LONG;
			} else {
				hdrs_fail(h);
				return len;
			}
			break;
		case HS_VALUE: {
			const char *lf = memchr(p + i, '\n', len - i);
			size_t n = lf != NULL ? (size_t)(lf - (p + i)) + 1 : len - i;

			if (h->keep && hdrs_put(h, p + i, n) < 0)
				return len;
			i += n;
			if (lf != NULL)
				h->state = HS_BOL;
			break;
		}
		default:
			return i;
		}
	}
	return i;
}

/* dkim_canon_hdrs_end - see dkim.h */
void
dkim_canon_hdrs_end(struct dkim_hdrs *h)
{
	if (h->done)
		return;
	if (h->state != HS_BOL && h->state != HS_VALUE) {
		hdrs_fail(h);
		return;
	}
	hdrs_close(h);
	h->state = HS_BODY;
	h->done = 1;
}

/* --- the From: domain --------------------------------------------------------- */

#define FROM_MAX 2048

/*
 * dkim_canon_from_domain - see dkim.h. Comments and quoted strings are skipped
 * (a display name may hold '<', '@' or ','); with angle brackets the
 * address is the last <...>; a ',' outside them means several mailboxes,
 * which is refused (DMARC needs one author domain).
 */
int
dkim_canon_from_domain(const char *field, size_t len, char *out, size_t size)
{
	const char *colon = memchr(field, ':', len);
	char clean[FROM_MAX];
	size_t n = 0, lt = (size_t)-1, gt = (size_t)-1, a, e, at;
	int depth = 0, quote = 0;

	if (colon == NULL || len > FROM_MAX)
		return -1;
	for (const char *p = colon + 1; p < field + len; p++) {
		char c = *p;

		if (quote) {
			if (c == '\\' && p + 1 < field + len)
				p++;
			else if (c == '"')
				quote = 0;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && p + 1 < field + len)
				p++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '"') {
			quote = 1;
			clean[n++] = ' ';
		} else if (c == '(') {
			depth = 1;
			clean[n++] = ' ';
		} else if (c == ',' || c == ';') {
			return -1;                       /* several mailboxes, or a group */
		} else {
			if (c == '<')
				lt = n;
			else if (c == '>' && lt != (size_t)-1 && gt == (size_t)-1)
				gt = n;
			clean[n++] = (c == '\r' || c == '\n' || c == '\t') ? ' ' : c;
		}
	}
	if (lt != (size_t)-1) {
		if (gt == (size_t)-1 || gt < lt)
			return -1;
		a = lt + 1;
		e = gt;
	} else {
		a = 0;
		e = n;
	}
	while (a < e && clean[a] == ' ')
		a++;
	while (e > a && clean[e - 1] == ' ')
		e--;
	at = (size_t)-1;
	for (size_t i = a; i < e; i++) {
		if (clean[i] == ' ')
			return -1;                       /* not one address */
		if (clean[i] == '@')
			at = i;
	}
	if (at == (size_t)-1 || at + 1 >= e || at == a)
		return -1;
	a = at + 1;
	if (e > a && clean[e - 1] == '.')
		e--;
	if (e - a == 0 || e - a >= size || e - a > DKIM_DOMAIN_MAX)
		return -1;
	for (size_t i = a; i < e; i++) {
		unsigned char c = (unsigned char)clean[i];
		if (c <= ' ' || c == 0x7f || strchr("<>()[]\\\",;:@", c) != NULL)
			return -1;               /* controls, NUL and specials: no domain */
		out[i - a] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[e - a] = '\0';
	return 0;
}
