/*
 * smtpd_line.c - SMTP command lines: framing, tokens, ESMTP parameters
 *
 * Owns:     nothing; results are slices into the caller's bytes.
 * Lifetime: struct smtpd_line lives in the session; no allocation here.
 * Errors:   over-long lines, control characters and malformed arguments are
 *           reported as results for the caller to turn into 500/501 replies.
 * Context:  any thread.
 */
#include "smtpd/smtpd_proto.h"

#include <string.h>

/* smtpd_line_init - a new session (or after STARTTLS) */
void
smtpd_line_init(struct smtpd_line *st)
{
	st->discarding = 0;
}

/*
 * smtpd_line_next - RFC 5321 §2.3.8 says lines end with CRLF; like Postfix
 * we also take a bare LF as the end of a command (never of DATA content:
 * see smtpd_data.c). A line longer than SMTPD_LINE_MAX is not buffered:
 * what has come is dropped and so is the rest up to the next LF.
 */
enum smtpd_line_result
smtpd_line_next(struct smtpd_line *st, const char *p, size_t len, struct str *line,
    size_t *consumed)
{
	const char *lf;
	size_t n;

	line->p = NULL;
	line->len = 0;
	*consumed = 0;
	if (len == 0)
		return SMTPD_LINE_MORE;
	if (st->discarding) {
		lf = memchr(p, '\n', len);
		if (lf == NULL) {
			*consumed = len;
			return SMTPD_LINE_MORE;
		}
		*consumed = (size_t)(lf - p) + 1;
		st->discarding = 0;
		return SMTPD_LINE_MORE;
	}
	n = len < SMTPD_LINE_MAX ? len : SMTPD_LINE_MAX;
	lf = memchr(p, '\n', n);
	if (lf == NULL) {
		if (len < SMTPD_LINE_MAX)
			return SMTPD_LINE_MORE;
		*consumed = n;
		st->discarding = 1;
		return SMTPD_LINE_LONG;
	}
	*consumed = (size_t)(lf - p) + 1;
	line->p = p;
	line->len = (size_t)(lf - p);
	if (line->len > 0 && p[line->len - 1] == '\r')
		line->len--;
	return SMTPD_LINE_OK;
}

/* is_blank - SP or HTAB */
static int
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* smtpd_line_split - verb up to the first blank; faults classify the bytes (RFC 5321 §2.4) */
void
smtpd_line_split(struct str line, struct smtpd_cmdline *out)
{
	size_t i = 0, end = line.len;

	out->faults = 0;
	for (size_t k = 0; k < line.len; k++) {
		unsigned char c = (unsigned char)line.p[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			out->faults |= SMTPD_CL_CTRL;
	}
	while (i < end && is_blank((unsigned char)line.p[i]))
		i++;
	out->verb.p = line.p + i;
	while (i < end && !is_blank((unsigned char)line.p[i])) {
		if ((unsigned char)line.p[i] >= 0x80)
			out->faults |= SMTPD_CL_8BIT_VERB;
		i++;
	}
	out->verb.len = (size_t)(line.p + i - out->verb.p);
	while (i < end && is_blank((unsigned char)line.p[i]))
		i++;
	while (end > i && is_blank((unsigned char)line.p[end - 1]))
		end--;
	out->arg.p = line.p + i;
	out->arg.len = end - i;
	for (size_t k = i; k < end; k++) {
		if ((unsigned char)line.p[k] >= 0x80) {
			out->faults |= SMTPD_CL_8BIT_ARG;
			break;
		}
	}
}

/* smtpd_line_path_arg - "FROM:" / "TO:" then optional blanks (Postfix accepts "FROM: <a>") */
int
smtpd_line_path_arg(struct str arg, const char *kw, struct str *rest)
{
	size_t kl = strlen(kw), i;

	if (arg.len < kl || !util_ncaseeq(arg.p, kl, kw))
		return -1;
	i = kl;
	while (i < arg.len && is_blank((unsigned char)arg.p[i]))
		i++;
	rest->p = arg.p + i;
	rest->len = arg.len - i;
	return 0;
}

/*
 * smtpd_line_param_next - RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT)
 * *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126), i.e. no
 * "=", no blank, no control, no 8-bit (RFC 6531 allows UTF-8 only in some
 * values; we accept none).
 */
int
smtpd_line_param_next(struct str *s, struct str *key, struct str *val)
{
	size_t i = 0;

	while (i < s->len && is_blank((unsigned char)s->p[i]))
		i++;
	if (i == s->len) {
		s->p += i;
		s->len = 0;
		return 0;
	}
	key->p = s->p + i;
	while (i < s->len) {
		unsigned char c = (unsigned char)s->p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c == '-' && s->p + i != key->p)))
			break;
		i++;
	}
	key->len = (size_t)(s->p + i - key->p);
	if (key->len == 0)
		return -1;
	val->p = NULL;
	val->len = 0;
	if (i < s->len && s->p[i] == '=') {
		i++;
		val->p = s->p + i;
		while (i < s->len) {
			unsigned char c = (unsigned char)s->p[i];
			if (c < 33 || c > 126 || c == '=')
				break;
			i++;
		}
		val->len = (size_t)(s->p + i - val->p);
		if (val->len == 0)
			return -1;
	}
	if (i < s->len && !is_blank((unsigned char)s->p[i]))
		return -1;
	s->p += i;
	s->len -= i;
	return 1;
}

/* smtpd_line_u64 - 1 to 19 decimal digits (fits in 64 bits), nothing else */
int
smtpd_line_u64(struct str s, uint64_t *out)
{
	uint64_t v = 0;

	if (s.len == 0 || s.len > 19)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (uint64_t)(c - '0');
	}
	*out = v;
	return 0;
}

/* smtpd_line_bdat_arg - RFC 3030 §2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] */
int
smtpd_line_bdat_arg(struct str arg, uint64_t *size, int *last)
{
	struct str num = arg;
	size_t i = 0;

	while (i < arg.len && arg.p[i] >= '0' && arg.p[i] <= '9')
		i++;
	num.len = i;
	if (smtpd_line_u64(num, size) < 0)
		return -1;
	*last = 0;
	if (i == arg.len)
		return 0;
	if (!is_blank((unsigned char)arg.p[i]))
		return -1;
	while (i < arg.len && is_blank((unsigned char)arg.p[i]))
		i++;
	if (arg.len - i != 4 || !util_ncaseeq(arg.p + i, 4, "LAST"))
		return -1;
	*last = 1;
	return 0;
}
