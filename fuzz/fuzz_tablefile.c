/*
 * fuzz_tablefile.c - libFuzzer harness for the key store table reader
 *                    (src/mail/tablefile.c)
 *
 * Owns:     one reader per input.
 * Lifetime: one input.
 * Errors:   a broken invariant aborts (libFuzzer reports it).
 * Context:  libFuzzer's thread.
 *
 * The first input octet picks the format (field separator blanks or ':',
 * '#' anywhere or in column one, 1..8 fields, a line bound of 1..256);
 * the rest is the file. Invariants: line numbers grow, every entry has
 * 1..fields_max + 1 fields (fields_max + 1 only with blanks), none of them
 * with a line end, a NUL or (with '#' anywhere) a '#', none longer than
 * the bound; an error is a NUL-terminated "fuzz_table f line N: ..." with
 * N at least the last entry's line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/tablefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tablefile_format fmt = { "fuzz_table", 0, '\0', 0, 0 };
	struct tablefile t;
	struct tablefile_line l;
	unsigned last = 0;
	char err[256];
	int r;

	if (size < 1)
		return 0;
	fmt.sep = (data[0] & 1) ? ':' : '\0';
	fmt.comment_anywhere = (data[0] >> 1) & 1;
	fmt.fields_max = 1 + ((data[0] >> 2) & 7);
	fmt.line_max = 1 + (size_t)(data[0] >> 5) * 36;
	if (tablefile_open_text(&t, &fmt, "f", (const char *)data + 1, size - 1, err,
	    sizeof(err)) < 0)
		return 0;
	while ((r = tablefile_next(&t, &l, err, sizeof(err))) > 0) {
		unsigned max = fmt.fields_max + (fmt.sep == '\0');

		if (l.lineno <= last || l.n < 1 || l.n > max)
			abort();
		last = l.lineno;
		for (unsigned i = 0; i < l.n; i++) {
			const char *f = l.field[i];
			size_t n = strlen(f);

			if (n > fmt.line_max || memchr(f, '\n', n) != NULL ||
			    (fmt.comment_anywhere && memchr(f, '#', n) != NULL) ||
			    (fmt.sep == '\0' && i < fmt.fields_max && n == 0))
				abort();
		}
	}
	if (r < 0 && (strnlen(err, sizeof(err)) >= sizeof(err) ||
	    strncmp(err, "fuzz_table f line ", 18) != 0 ||
	    strtoul(err + 18, NULL, 10) <= last))
		abort();
	tablefile_close(&t);
	return 0;
}
