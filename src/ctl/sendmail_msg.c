/*
 * sendmail_msg.c - sendmail's message: read the header section, take
 *                  recipients from To:/Cc:/Bcc:, and stream the message
 *                  as a dot-stuffed CRLF DATA stream
 *
 * Owns:     the reader's input buffer and kept header lines; the output's
 *           buffer (inside struct sendmail_msg_out).
 * Lifetime: sendmail_msg_reader_init() to sendmail_msg_reader_free().
 * Errors:   -1 with errno (ENOMEM, E2BIG) or the reader's input_err /
 *           hdr_too_big; the caller maps them to sysexits codes.
 * Context:  the sendmail process; reads its input with blocking read(2).
 *
 * Memory is bounded: the header section is kept (at most
 * SENDMAIL_MSG_HEADER_MAX bytes, needed for -t and for the From: check); the
 * body is streamed through a 64 KiB buffer, whatever its line lengths.
 *
 * Local programs are trusted (unlike the network, SPEC §4): CRLF, a bare
 * LF and a lone CR each end a line and are sent as CRLF. Without -i a line
 * of a single '.' ends the input (classic sendmail); other lines starting
 * with '.' are dot-stuffed (RFC 5321 §4.5.2).
 */
#include "ctl/ctl_int.h"
#include "ctl/sendmail.h"
#include "lib/base64.h"
#include "lib/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SENDMAIL_MSG_INBUF   65536
#define SENDMAIL_MSG_ADDR_MAX 998

int
sendmail_msg_reader_init(struct sendmail_msg_reader *r, int fd, int dot_ends)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->dot_ends = dot_ends;
	if ((r->in = malloc(SENDMAIL_MSG_INBUF)) == NULL)
		return -1;
	return 0;
}

void
sendmail_msg_reader_free(struct sendmail_msg_reader *r)
{
	free(r->in);
	free(r->hdr);
	free(r->first_body_line);
	memset(r, 0, sizeof(*r));
}

/* sendmail_msg_fill - refill the input buffer; 1 when bytes are there, 0 at end or error */
static int
sendmail_msg_fill(struct sendmail_msg_reader *r)
{
	ssize_t n;

	if (r->in_pos < r->in_len)
		return 1;
	if (r->eof)
		return 0;
	for (;;) {
		n = read(r->fd, r->in, SENDMAIL_MSG_INBUF);
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	if (n <= 0) {
		if (n < 0)
			r->input_err = errno;
		r->eof = 1;
		return 0;
	}
	r->in_len = (size_t)n;
	r->in_pos = 0;
	return 1;
}

/* sendmail_msg_getc - the next input byte, or -1 at the end of input */
static int
sendmail_msg_getc(struct sendmail_msg_reader *r)
{
	if (r->in_pos >= r->in_len && !sendmail_msg_fill(r))
		return -1;
	return r->in[r->in_pos++];
}

/* sendmail_msg_peek - the next byte without consuming it, or -1 */
static int
sendmail_msg_peek(struct sendmail_msg_reader *r)
{
	if (r->in_pos >= r->in_len && !sendmail_msg_fill(r))
		return -1;
	return r->in[r->in_pos];
}

/*
 * sendmail_msg_read_line - one input line into line (without its end), at most
 * max bytes. Returns 1 with a line, 0 at the end of input (nothing read),
 * -1 when the line is longer than max (E2BIG).
 */
static int
sendmail_msg_read_line(struct sendmail_msg_reader *r, char *line, size_t max, size_t *len)
{
	size_t n = 0;
	int c, got = 0;

	while ((c = sendmail_msg_getc(r)) >= 0) {
		got = 1;
		if (c == '\n')
			break;
		if (c == '\r') {
			if (sendmail_msg_peek(r) == '\n')
				r->in_pos++;
			break;
		}
		if (n >= max) {
			errno = E2BIG;
			return -1;
		}
		line[n++] = (char)c;
	}
	*len = n;
	return got;
}

/* sendmail_msg_is_header - "name:" with a name of printable ASCII other than ':' (RFC 5322 §2.2) */
static int
sendmail_msg_is_header(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == ':')
			return i > 0;
		if (c < 33 || c > 126)
			return 0;
	}
	return 0;
}

/* sendmail_msg_keep - append a header line (NUL-terminated) to the kept section */
static int
sendmail_msg_keep(struct sendmail_msg_reader *r, const char *line, size_t len)
{
	char *nh;

	if (r->hdr_len + len + 1 > SENDMAIL_MSG_HEADER_MAX) {
		r->hdr_too_big = 1;
		errno = E2BIG;
		return -1;
	}
	if ((nh = realloc(r->hdr, r->hdr_len + len + 1)) == NULL)
		return -1;
	r->hdr = nh;
	memcpy(r->hdr + r->hdr_len, line, len);
	r->hdr[r->hdr_len + len] = '\0';
	r->hdr_len += len + 1;
	return 0;
}

/* sendmail_msg_read_headers - read and keep the header section; see ctl_int.h */
int
sendmail_msg_read_headers(struct sendmail_msg_reader *r)
{
	char *line;
	size_t len;
	int first = 1, rc = -1, got;

	if ((line = malloc(SENDMAIL_MSG_HEADER_MAX)) == NULL)
		return -1;
	for (;;) {
		got = sendmail_msg_read_line(r, line, SENDMAIL_MSG_HEADER_MAX - 1, &len);
		if (got < 0) {
			r->hdr_too_big = 1;
			goto done;
		}
		if (got == 0)
			break;
		if (r->dot_ends && len == 1 && line[0] == '.') {
			r->eof = 1;     /* the '.' line ends everything */
			r->in_pos = r->in_len;
			break;
		}
		if (first && len >= 5 && memcmp(line, "From ", 5) == 0) {
			first = 0;      /* an mbox separator line is not part of the message */
			continue;
		}
		if (len == 0) {
			r->body_follows = 1;
			break;
		}
		if ((line[0] == ' ' || line[0] == '\t') && !first && memchr(line, '\0', len) == NULL) {
			if (sendmail_msg_keep(r, line, len) < 0)
				goto done;
			continue;
		}
		if (!sendmail_msg_is_header(line, len) || memchr(line, '\0', len) != NULL) {
			/* Not a header: the body starts here, after a blank line we add. */
			if ((r->first_body_line = malloc(len + 1)) == NULL)
				goto done;
			memcpy(r->first_body_line, line, len);
			r->first_body_line[len] = '\0';
			r->first_body_len = len;
			r->body_follows = 1;
			break;
		}
		first = 0;
		if (len >= 5 && util_ncaseeq(line, 5, "from:"))
			r->have_from = 1;
		if (sendmail_msg_keep(r, line, len) < 0)
			goto done;
	}
	rc = 0;
done:
	free(line);
	return rc;
}

/* sendmail_msg_push - append a copy of addr (len bytes) to the list unless it is there already */
static int
sendmail_msg_push(char ***list, size_t *n, const char *addr, size_t len)
{
	char **nl, *copy;

	if (len == 0)
		return 0;
	if (len > SENDMAIL_MSG_ADDR_MAX) {
		errno = E2BIG;
		return -1;
	}
	for (size_t i = 0; i < *n; i++)
		if (strlen((*list)[i]) == len && strncasecmp((*list)[i], addr, len) == 0)
			return 0;
	if (*n >= SENDMAIL_MSG_RCPT_MAX) {
		errno = E2BIG;
		return -1;
	}
	if ((copy = malloc(len + 1)) == NULL)
		return -1;
	memcpy(copy, addr, len);
	copy[len] = '\0';
	if ((nl = realloc(*list, (*n + 1) * sizeof(**list))) == NULL) {
		free(copy);
		return -1;
	}
	nl[(*n)++] = copy;
	*list = nl;
	return 0;
}

/*
 * sendmail_msg_addr_list - RFC 5322 §3.4 address-list: mailboxes ("Name <a@b>",
 * "a@b (comment)") and groups ("team: a@b, c@d;"). Comments and white
 * space outside quoted strings are dropped; a route in <@x,@y:a@b> is
 * dropped; display names are skipped. Obsolete forms degrade to whatever
 * addr-spec characters remain, which the SMTP server then judges.
 */
int
sendmail_msg_addr_list(const char *value, size_t len, char ***list, size_t *n)
{
	char cur[SENDMAIL_MSG_ADDR_MAX + 1], ang[SENDMAIL_MSG_ADDR_MAX + 1];
	size_t clen = 0, alen = 0, i = 0;
	int in_angle = 0, have_angle = 0, overflow = 0, gap = 0, spaced = 0;

	for (i = 0; i <= len; i++) {
		int c = i < len ? (unsigned char)value[i] : -1;

		if ((c >= 0 && c < 0x20 && c != ' ' && c != '\t' && c != '\r' && c != '\n') ||
		    c == 0x7f) {
			errno = EINVAL;     /* control characters never belong in an address */
			return -1;
		}

		if (c == '(') {                     /* comment, may nest */
			int depth = 1;

			for (i++; i < len && depth > 0; i++) {
				if (value[i] == '\\' && i + 1 < len)
					i++;
				else if (value[i] == '(')
					depth++;
				else if (value[i] == ')')
					depth--;
			}
			i--;
			continue;
		}
		if (c == '"') {                     /* quoted string: kept with its quotes */
			size_t start = i;

			for (i++; i < len && value[i] != '"'; i++)
				if (value[i] == '\\' && i + 1 < len)
					i++;
			if (i >= len)
				i = len - 1;
			for (size_t k = start; k <= i; k++) {
				if ((unsigned char)value[k] < 0x20 || value[k] == 0x7f) {
					errno = EINVAL;
					return -1;
				}
				if (in_angle) {
					if (alen < SENDMAIL_MSG_ADDR_MAX)
						ang[alen++] = value[k];
					else
						overflow = 1;
				} else {
					if (clen < SENDMAIL_MSG_ADDR_MAX)
						cur[clen++] = value[k];
					else
						overflow = 1;
				}
			}
			continue;
		}
		if (in_angle) {
			if (c == '>' || c == -1) {
				in_angle = 0;
				have_angle = 1;
			} else if (c == ':' && alen > 0 && ang[0] == '@') {
				alen = 0;           /* obsolete route: dropped */
			} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
				if (alen < SENDMAIL_MSG_ADDR_MAX)
					ang[alen++] = (char)c;
				else
					overflow = 1;
			}
			continue;
		}
		if (c == '<') {
			in_angle = 1;
			alen = 0;
			continue;
		}
		if (c == ':' && !have_angle && memchr(cur, '@', clen) == NULL) {
			clen = 0;                   /* a group's display name */
			gap = spaced = 0;
			continue;
		}
		if (c == ',' || c == ';' || c == -1) {
			if (overflow) {
				errno = E2BIG;
				return -1;
			}
			if (have_angle) {
				if (sendmail_msg_push(list, n, ang, alen) < 0)
					return -1;
			} else if (spaced) {
				errno = EINVAL;     /* "john doe" or "a b@c": words, no address */
				return -1;
			} else if (sendmail_msg_push(list, n, cur, clen) < 0)
				return -1;
			clen = alen = 0;
			have_angle = gap = spaced = 0;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			gap = clen > 0;
			continue;
		}
		if (have_angle)
			continue;                   /* text after <...>: ignored */
		/* white space inside an addr-spec is only allowed around '.' and '@' (obs-local-part) */
		if (gap && c != '.' && c != '@' && cur[clen - 1] != '.' && cur[clen - 1] != '@')
			spaced = 1;
		gap = 0;
		if (clen < SENDMAIL_MSG_ADDR_MAX)
			cur[clen++] = (char)c;
		else
			overflow = 1;
	}
	return 0;
}

/* sendmail_msg_field_name - 1 when the header line starts with "name:" (any case, no space before ':') */
static int
sendmail_msg_field_is(const char *line, const char *name)
{
	size_t nl = strlen(name);

	return strlen(line) > nl && line[nl] == ':' && util_ncaseeq(line, nl, name);
}

/* sendmail_msg_extract_rcpts - To:, Cc:, Bcc: addresses; Bcc: removed on request */
int
sendmail_msg_extract_rcpts(struct sendmail_msg_reader *r, int remove_bcc, char ***list, size_t *n)
{
	size_t off = 0, out = 0;
	char *value = NULL;
	int rc = -1;

	if (r->hdr_len == 0)
		return 0;
	if ((value = malloc(r->hdr_len)) == NULL)
		return -1;
	while (off < r->hdr_len) {
		const char *line = r->hdr + off;
		size_t llen = strlen(line), end = off + llen + 1, vlen = 0;
		int is_to = sendmail_msg_field_is(line, "to") || sendmail_msg_field_is(line, "cc");
		int is_bcc = sendmail_msg_field_is(line, "bcc");

		/* the logical field: this line and its continuation lines */
		while (end < r->hdr_len && (r->hdr[end] == ' ' || r->hdr[end] == '\t'))
			end += strlen(r->hdr + end) + 1;
		if (is_to || is_bcc) {
			const char *colon = strchr(line, ':');
			size_t p = (size_t)(colon + 1 - r->hdr);

			while (p < end) {
				size_t l = strlen(r->hdr + p);

				memcpy(value + vlen, r->hdr + p, l);
				vlen += l;
				value[vlen++] = ' ';
				p += l + 1;
			}
			if (sendmail_msg_addr_list(value, vlen, list, n) < 0)
				goto done;
		}
		if (is_bcc && remove_bcc) {
			off = end;
			continue;
		}
		memmove(r->hdr + out, r->hdr + off, end - off);
		out += end - off;
		off = end;
	}
	r->hdr_len = out;
	rc = 0;
done:
	free(value);
	return rc;
}

/* sendmail_msg_atext_phrase - the name can be written as atoms separated by spaces */
static int
sendmail_msg_atext_phrase(const char *s)
{
	if (*s == '\0' || *s == ' ')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80 || c < 0x20 || c == 0x7f || strchr("()<>[]:;@\\,.\"", c) != NULL)
			return 0;
		if (c == ' ' && (s[1] == ' ' || s[1] == '\0'))
			return 0;
	}
	return 1;
}

/*
 * sendmail_msg_from_header - "From: Name <addr>": Name as atoms when it can
 * be, else a quoted string, or RFC 2047 B-encoded words when it has
 * non-ASCII bytes (split between UTF-8 sequences, each word <= 75 chars).
 */
int
sendmail_msg_from_header(const char *name, const char *addr, char *out, size_t outlen)
{
	size_t o, nlen;
	int ascii = 1;

	if (name == NULL || name[0] == '\0')
		return util_bsnprintf(out, outlen, "From: %s", addr) < 0 ? -1 : 0;
	nlen = strlen(name);
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)name[i] >= 0x80 || (unsigned char)name[i] < 0x20)
			ascii = 0;
	if (ascii && sendmail_msg_atext_phrase(name))
		return util_bsnprintf(out, outlen, "From: %s <%s>", name, addr) < 0 ? -1 : 0;
	if (util_bsnprintf(out, outlen, "From: ") < 0)
		return -1;
	o = strlen(out);
	if (ascii) {
		if (o + 1 >= outlen)
			return -1;
		out[o++] = '"';
		for (size_t i = 0; i < nlen; i++) {
			if (o + 3 >= outlen)
				return -1;
			if (name[i] == '"' || name[i] == '\\')
				out[o++] = '\\';
			out[o++] = name[i];
		}
		out[o++] = '"';
		out[o] = '\0';
	} else {
		size_t i = 0;
		int n;

		while (i < nlen) {
			/* 45 input bytes -> 60 base64 chars: 12 + 60 + 2 <= 75 */
			size_t take = nlen - i > 45 ? 45 : nlen - i;

			while (take > 0 && i + take < nlen &&
			    ((unsigned char)name[i + take] & 0xC0) == 0x80)
				take--;     /* do not split a UTF-8 sequence */
			if (take == 0)
				take = nlen - i > 45 ? 45 : nlen - i;
			if (o + 12 + (take + 2) / 3 * 4 + 4 >= outlen)
				return -1;
			memcpy(out + o, i > 0 ? " =?UTF-8?B?" : "=?UTF-8?B?", i > 0 ? 11 : 10);
			o += i > 0 ? 11 : 10;
			if ((n = base64_encode(name + i, take, out + o, outlen - o)) < 0)
				return -1;
			o += (size_t)n;
			out[o++] = '?';
			out[o++] = '=';
			i += take;
		}
		out[o] = '\0';
	}
	return util_bsnprintf(out + o, outlen - o, " <%s>", addr) < 0 ? -1 : 0;
}

void
sendmail_msg_out_init(struct sendmail_msg_out *o, sendmail_msg_out_fn fn, void *arg)
{
	o->fn = fn;
	o->arg = arg;
	o->used = 0;
	o->at_line_start = 1;
	o->err = 0;
}

int
sendmail_msg_out_flush(struct sendmail_msg_out *o)
{
	if (o->err)
		return -1;
	if (o->used > 0 && o->fn(o->arg, o->buf, o->used) < 0) {
		o->err = 1;
		return -1;
	}
	o->used = 0;
	return 0;
}

/* sendmail_msg_put - one output byte */
static inline int
sendmail_msg_put(struct sendmail_msg_out *o, int c)
{
	if (o->used == sizeof(o->buf) && sendmail_msg_out_flush(o) < 0)
		return -1;
	o->buf[o->used++] = (unsigned char)c;
	return 0;
}

/* sendmail_msg_eol - end the current output line */
static int
sendmail_msg_eol(struct sendmail_msg_out *o)
{
	o->at_line_start = 1;
	if (sendmail_msg_put(o, '\r') < 0 || sendmail_msg_put(o, '\n') < 0)
		return -1;
	return 0;
}

int
sendmail_msg_out_line(struct sendmail_msg_out *o, const char *line, size_t len)
{
	if (len > 0 && line[0] == '.' && sendmail_msg_put(o, '.') < 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (sendmail_msg_put(o, (unsigned char)line[i]) < 0)
			return -1;
	return sendmail_msg_eol(o);
}

int
sendmail_msg_out_headers(struct sendmail_msg_out *o, struct sendmail_msg_reader *r)
{
	size_t off = 0;

	while (off < r->hdr_len) {
		size_t l = strlen(r->hdr + off);

		if (sendmail_msg_out_line(o, r->hdr + off, l) < 0)
			return -1;
		off += l + 1;
	}
	if (r->body_follows && sendmail_msg_out_line(o, "", 0) < 0)
		return -1;
	if (r->first_body_line != NULL &&
	    sendmail_msg_out_line(o, r->first_body_line, r->first_body_len) < 0)
		return -1;
	return 0;
}

/* sendmail_msg_out_body - stream the body; see ctl_int.h */
int
sendmail_msg_out_body(struct sendmail_msg_out *o, struct sendmail_msg_reader *r)
{
	int c;

	while ((c = sendmail_msg_getc(r)) >= 0) {
		if (c == '\r') {
			if (sendmail_msg_peek(r) == '\n')
				r->in_pos++;
			c = '\n';
		}
		if (c == '\n') {
			if (sendmail_msg_eol(o) < 0)
				return -1;
			continue;
		}
		if (o->at_line_start && c == '.') {
			int nx = sendmail_msg_peek(r);

			if (r->dot_ends && (nx == '\n' || nx == '\r' || nx < 0))
				break;      /* a line of one '.': the end of the input */
			if (sendmail_msg_put(o, '.') < 0)
				return -1;
		}
		o->at_line_start = 0;
		if (sendmail_msg_put(o, c) < 0)
			return -1;
	}
	if (!o->at_line_start && sendmail_msg_eol(o) < 0)
		return -1;
	if (sendmail_msg_put(o, '.') < 0 || sendmail_msg_eol(o) < 0)
		return -1;
	return sendmail_msg_out_flush(o);
}
