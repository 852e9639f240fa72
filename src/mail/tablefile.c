/*
 * tablefile.c - read a line-oriented table of the key store: lines,
 *               comments, fields, and errors naming the file and line
 *
 * Owns:     the text copy of each struct tablefile until tablefile_close().
 * Lifetime: tablefile_open()/tablefile_open_text() to tablefile_close().
 * Errors:   -1 with "NAME FILE line N: what" in err; nothing is kept.
 * Context:  any thread; no globals.
 *
 * The rules are in tablefile.h. Each line is cut out of the copy in place
 * (its end and every field separator become NUL), so a field is a string
 * that lives until the close, with no copy and no length to carry.
 */
#include "mail/tablefile.h"
#include "lib/util.h"
#include "tls/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* tablefile_err - see tablefile.h */
void
tablefile_err(const struct tablefile *t, unsigned lineno, char *err, size_t errlen,
    const char *fmt, ...)
{
	char what[512], line[32] = "", head[384] = "";
	const char *part[3] = { t->fmt != NULL ? t->fmt->name : NULL, t->file, line };
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	if (lineno > 0)
		(void)util_bsnprintf(line, sizeof(line), "line %u", lineno);
	/* "NAME FILE line N", leaving out what is not there */
	for (size_t i = 0; i < 3; i++) {
		size_t hl = strlen(head);

		if (part[i] != NULL && part[i][0] != '\0')
			(void)util_bsnprintf(head + hl, sizeof(head) - hl, "%s%s", hl > 0 ? " " : "",
			    part[i]);
	}
	if (head[0] == '\0')
		util_strlcpy(err, what, errlen);
	else
		(void)util_bsnprintf(err, errlen, "%s: %s", head, what);    /* truncated: still a start */
}

/* tablefile_open - see tablefile.h */
int
tablefile_open(struct tablefile *t, const struct tablefile_format *fmt, const char *root,
    const char *rel, char *err, size_t errlen)
{
	char why[256];

	memset(t, 0, sizeof(*t));
	t->fmt = fmt;
	t->file = rel;
	if (root == NULL || root[0] == '\0') {
		tablefile_err(t, 0, err, errlen, "no key store is configured (set key_dir or fs_dir)");
		return -1;
	}
	if ((t->text = tls_keys_read(root, rel, &t->len, why, sizeof(why))) == NULL) {
		tablefile_err(t, 0, err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

/* tablefile_open_text - see tablefile.h */
int
tablefile_open_text(struct tablefile *t, const struct tablefile_format *fmt, const char *file,
    const char *text, size_t len, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->fmt = fmt;
	t->file = file;
	if (len == SIZE_MAX || (t->text = malloc(len + 1)) == NULL) {
		tablefile_err(t, 0, err, errlen, "out of memory");
		return -1;
	}
	if (len > 0)
		memcpy(t->text, text, len);
	t->text[len] = '\0';
	t->len = len;
	return 0;
}

/* is_blank - a field separator when the format has none of its own */
static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* split_blanks - fields separated by runs of blanks; over fields_max: fields_max + 1 */
static void
split_blanks(char *p, unsigned max, struct tablefile_line *l)
{
	for (;;) {
		while (is_blank(*p))
			*p++ = '\0';
		if (*p == '\0')
			return;
		if (l->n == max) {
			l->field[l->n++] = p;        /* the rest, unsplit: too many */
			return;
		}
		l->field[l->n++] = p;
		while (*p != '\0' && !is_blank(*p))
			p++;
	}
}

/* split_sep - fields separated by sep; the last one keeps the rest of the line */
static void
split_sep(char *p, char sep, unsigned max, struct tablefile_line *l)
{
	char *end = p + strlen(p);

	while (end > p && end[-1] == '\r')
		*--end = '\0';
	if (p[strspn(p, " \t")] == '\0')
		return;                          /* blank */
	l->field[l->n++] = p;
	while (l->n < max && (p = strchr(p, sep)) != NULL) {
		*p++ = '\0';
		l->field[l->n++] = p;
	}
}

/* tablefile_next - see tablefile.h */
int
tablefile_next(struct tablefile *t, struct tablefile_line *l, char *err, size_t errlen)
{
	const struct tablefile_format *fmt = t->fmt;
	unsigned max = fmt->fields_max < 1 ? 1 :
	    fmt->fields_max > TABLEFILE_FIELDS_MAX ? TABLEFILE_FIELDS_MAX : fmt->fields_max;

	while (t->pos < t->len) {
		char *line = t->text + t->pos, *nl, *hash;
		size_t n;

		nl = memchr(line, '\n', t->len - t->pos);
		n = nl != NULL ? (size_t)(nl - line) : t->len - t->pos;
		t->pos += n + (nl != NULL);
		t->lineno++;
		if (n > fmt->line_max) {
			tablefile_err(t, t->lineno, err, errlen, "line too long");
			return -1;
		}
		if (memchr(line, '\0', n) != NULL) {
			tablefile_err(t, t->lineno, err, errlen, "NUL in the line");
			return -1;
		}
		line[n] = '\0';                  /* the LF, or the copy's terminating NUL */
		if (!fmt->comment_anywhere) {
			if (line[0] == '#')
				continue;
		} else if ((hash = strchr(line, '#')) != NULL) {
			*hash = '\0';
		}
		memset(l, 0, sizeof(*l));
		l->lineno = t->lineno;
		if (fmt->sep == '\0')
			split_blanks(line, max, l);
		else
			split_sep(line, fmt->sep, max, l);
		if (l->n > 0)
			return 1;
	}
	return 0;
}

/* tablefile_close - see tablefile.h */
void
tablefile_close(struct tablefile *t)
{
	if (t->text != NULL) {
		OPENSSL_cleanse(t->text, t->len);
		free(t->text);
	}
	memset(t, 0, sizeof(*t));
}
