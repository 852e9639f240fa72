/*
 * smtpc_reply.c - the resumable parser of SMTP replies (RFC 5321 §4.2)
 *
 * Owns:     nothing beyond the caller's struct smtpc_rparser.
 * Lifetime: the parser lives in its connection; each reply overwrites the
 *           previous one.
 * Errors:   a line that is not "NNN", "NNN text" or "NNN-text" with a 2xx-5xx
 *           code, a line over SMTPC_LINE_MAX octets, or a reply of more than
 *           SMTPC_LINES_MAX lines is SMTPC_R_INVALID.
 * Context:  any thread.
 *
 * A reply's lines are joined into one line of text (for logs and bounces),
 * bounded by SMTPC_REPLY_MAX: "550 5.1.1 first line second line" — a
 * continuation line's repeat of the enhanced status code is dropped. Control
 * and 8-bit octets of the peer become '?'. The enhanced status code (RFC
 * 3463, RFC 2034) is taken from the first line when its class matches the
 * reply code; otherwise it is derived as "<class>.0.0".
 */
#include <string.h>

#include "smtpc/smtpc_int.h"
#include "lib/util.h"

/* smtpc_reply_init - see smtpc_int.h */
void
smtpc_reply_init(struct smtpc_rparser *p)
{
	memset(p, 0, sizeof(*p));
}

/* smtpc_reply_local - see smtpc_int.h */
void
smtpc_reply_local(struct smtpc_reply *r, int code, const char *dsn, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	(void)util_strlcpy(r->dsn, dsn, sizeof(r->dsn));
	if (code != 0) {
		if (util_bsnprintf(r->text, sizeof(r->text), "%d %s %s", code, dsn, text) == -1)
			(void)util_strlcpy(r->text, text, sizeof(r->text));
	} else {
		(void)util_strlcpy(r->text, text, sizeof(r->text));
	}
}

/* smtpc_is_digit - ASCII digit without locale */
static int
smtpc_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * smtpc_dsn_len - length of an enhanced status code "c.sss.ddd" at the start
 * of s (followed by a space or the end), or 0 when there is none.
 */
static size_t
smtpc_dsn_len(const char *s, size_t len)
{
	size_t i = 0, n;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (n = 0; i < len && smtpc_is_digit(s[i]) && n < 4; i++, n++)
		;
	if (n == 0 || n > 3 || i >= len || s[i] != '.')
		return 0;
	i++;
	for (n = 0; i < len && smtpc_is_digit(s[i]) && n < 4; i++, n++)
		;
	if (n == 0 || n > 3)
		return 0;
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

/* smtpc_text_add - append bytes to the joined text, sanitised, bounded */
static void
smtpc_text_add(struct smtpc_rparser *p, const char *s, size_t len)
{
	for (size_t i = 0; i < len && p->textlen + 1 < sizeof(p->reply.text); i++) {
		unsigned char c = (unsigned char)s[i];

		p->reply.text[p->textlen++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	p->reply.text[p->textlen] = '\0';
}

/* smtpc_reply_line - one complete line (without CRLF, NUL-terminated copy) */
static enum smtpc_rstatus
smtpc_reply_line(struct smtpc_rparser *p, const char *line, size_t len)
{
	const char *rest = "";
	size_t restlen = 0, dl;
	char sep;
	int code;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !smtpc_is_digit(line[2]))
		return SMTPC_R_INVALID;
	sep = len == 3 ? ' ' : line[3];
	if (sep != ' ' && sep != '-')
		return SMTPC_R_INVALID;
	if (len > 4) {
		rest = line + 4;
		restlen = len - 4;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (p->nlines == 0) {
		memset(&p->reply, 0, sizeof(p->reply));
		p->code = code;
		p->has_dsn = 0;
		p->textlen = 0;
		p->reply.code = code;
		smtpc_text_add(p, line, 3);
		dl = smtpc_dsn_len(rest, restlen);
		if (dl > 0 && rest[0] == line[0]) {
			memcpy(p->reply.dsn, rest, dl);
			p->reply.dsn[dl] = '\0';
			p->has_dsn = 1;
		}
		if (restlen > 0) {
			smtpc_text_add(p, " ", 1);
			smtpc_text_add(p, rest, restlen);
		}
	} else {
		/* RFC 5321 §4.2.1: same code on every line; keep the first one's. */
		const char *t = rest;
		size_t tl = restlen;

		dl = smtpc_dsn_len(t, tl);
		if (p->has_dsn && dl > 0 && dl == strlen(p->reply.dsn) &&
		    memcmp(t, p->reply.dsn, dl) == 0) {
			t += dl;
			tl -= dl;
			while (tl > 0 && *t == ' ') {
				t++;
				tl--;
			}
		}
		if (tl > 0) {
			smtpc_text_add(p, " ", 1);
			smtpc_text_add(p, t, tl);
		}
	}
	if (++p->nlines > SMTPC_LINES_MAX)
		return SMTPC_R_INVALID;
	p->lineno = p->nlines;
	p->ltext = rest;
	p->ltextlen = restlen;
	if (sep == '-')
		return SMTPC_R_LINE;
	if (!p->has_dsn) {
		p->reply.dsn[0] = (char)('0' + p->code / 100);
		memcpy(p->reply.dsn + 1, ".0.0", 5);
	}
	p->nlines = 0;
	return SMTPC_R_DONE;
}

/* smtpc_reply_feed - see smtpc_int.h */
enum smtpc_rstatus
smtpc_reply_feed(struct smtpc_rparser *p, const char *buf, size_t len, size_t *used)
{
	*used = 0;
	while (*used < len) {
		const char *s = buf + *used;
		size_t avail = len - *used, take, l;
		const char *nl = memchr(s, '\n', avail);
		enum smtpc_rstatus st;

		take = nl != NULL ? (size_t)(nl - s) : avail;
		/* room for SMTPC_LINE_MAX octets and the CR */
		if (take > SMTPC_LINE_MAX + 1 - p->linelen) {
			p->linelen = 0;
			p->nlines = 0;
			return SMTPC_R_INVALID;
		}
		memcpy(p->line + p->linelen, s, take);
		p->linelen += take;
		*used += take;
		if (nl == NULL)
			return SMTPC_R_NEED_MORE;
		(*used)++;
		l = p->linelen;
		if (l > 0 && p->line[l - 1] == '\r')
			l--;
		p->linelen = 0;
		if (l > SMTPC_LINE_MAX) {
			p->nlines = 0;
			return SMTPC_R_INVALID;
		}
		p->line[l] = '\0';
		st = smtpc_reply_line(p, p->line, l);
		if (st == SMTPC_R_INVALID)
			p->nlines = 0;
		return st;
	}
	return SMTPC_R_NEED_MORE;
}
