/*
 * tablefile.h - one reader for the line-oriented tables on the key store
 *               (public interface of src/mail/tablefile.c)
 *
 * Owns:     struct tablefile: a copy of the file's text while it is read.
 * Lifetime: tablefile_open() or tablefile_open_text() to tablefile_close();
 *           the fields of a line point into that copy and live as long.
 * Errors:   -1 with "NAME FILE line N: what" in err ("NAME FILE: what"
 *           for the file as a whole; parts that are NULL are left out).
 * Context:  any thread; no globals.
 *
 * The tables (smtpd_users_file, dkim_key_table, sender_relay_map, and the
 * ones to come) share their lexical rules, which live here alone:
 *
 * - one entry a line, lines end in LF (a CR before it is ignored), the
 *   last one may lack it; a line longer than the format's line_max or
 *   holding a NUL is an error;
 * - '#' starts a comment: anywhere on the line, or only in column one for
 *   formats whose fields may contain '#';
 * - lines that are empty, blank or a comment are skipped;
 * - fields are separated by runs of blanks (space, tab, CR), or by one
 *   separator character, the last field then keeping the rest of the line.
 *
 * What the fields mean, how many there must be and what they may hold is
 * the caller's; its errors go through tablefile_err() for the same form.
 */
#ifndef MTAD_MAIL_TABLEFILE_H
#define MTAD_MAIL_TABLEFILE_H

#include <stddef.h>

#define TABLEFILE_FIELDS_MAX 8

struct tablefile_format {
	const char *name;            /* the property naming the table, for errors; may be NULL */
	size_t   line_max;           /* octets, without the line end */
	char     sep;                /* field separator; '\0' = runs of blanks */
	unsigned fields_max;         /* 1..TABLEFILE_FIELDS_MAX */
	int      comment_anywhere;   /* 0: '#' starts a comment only in column one */
};

struct tablefile_line {
	unsigned lineno;
	/*
	 * Fields found. With blanks as separators, more than fields_max
	 * gives fields_max + 1 (the rest is not split: a count the caller
	 * rejects); with a separator character the last field keeps the rest.
	 */
	unsigned n;
	char    *field[TABLEFILE_FIELDS_MAX + 1];   /* NUL-terminated, never NULL for i < n */
};

struct tablefile {
	const struct tablefile_format *fmt;   /* borrowed */
	const char *file;            /* borrowed, for errors; may be NULL */
	char    *text;               /* the copy, wiped at close */
	size_t   len, pos;
	unsigned lineno;
};

/*
 * tablefile_open - read rel beneath the key store root (tls_keys_read: at
 * most 1 MiB, no way out of the store) to be read with fmt; fmt and rel
 * are borrowed until tablefile_close(). 0, or -1 with "NAME FILE: why"
 * (also for an empty root: no key store is configured).
 */
int tablefile_open(struct tablefile *t, const struct tablefile_format *fmt, const char *root,
    const char *rel, char *err, size_t errlen);
/* tablefile_open_text - the same over text[0..len) (copied); file (borrowed) names it, or NULL */
int tablefile_open_text(struct tablefile *t, const struct tablefile_format *fmt,
    const char *file, const char *text, size_t len, char *err, size_t errlen);
/* tablefile_next - the next entry's fields into l: 1, 0 at the end, -1 with err */
int tablefile_next(struct tablefile *t, struct tablefile_line *l, char *err, size_t errlen);
/* tablefile_err - "NAME FILE line N: what" (lineno 0: "NAME FILE: what") into err */
void tablefile_err(const struct tablefile *t, unsigned lineno, char *err, size_t errlen,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* tablefile_close - wipe and free the copy (the file may hold hashes); takes a closed one */
void tablefile_close(struct tablefile *t);

#endif
