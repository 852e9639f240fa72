/*
 * test_addr.c - unit and golden tests for src/mail/addr.c
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  run from the source tree root (MTAD_GOLDEN_DIR overrides
 *           tests/golden), as `make test-unit` does.
 *
 * The golden test reads tests/golden/addr.in (FLAGS TAB INPUT, \xHH
 * escapes) and compares each result with the same line of addr.ref.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "mail/addr.h"

#define GOLDEN_LINE 2048

/* format_result - one line in addr.ref syntax for a parse result */
static void
format_result(char *buf, size_t size, enum addr_result r, const struct addr *a,
    size_t consumed)
{
	int n;

	if (r != ADDR_OK) {
		n = util_bsnprintf(buf, size, "invalid (%s)", a->why != NULL ? a->why : "?");
	} else {
		n = util_bsnprintf(buf, size, "ok <%s> consumed=%zu%s%s%s", a->text, consumed,
		    a->had_route ? " route" : "", addr_is_routing_trick(a) ? " trick" : "",
		    a->utf8 ? " utf8" : "");
	}
	if (n < 0)
		util_strlcpy(buf, "(result too long)", size);
}

/* unescape - decode \xHH and \\ of the golden input; other text is literal */
static size_t
unescape(const char *s, char *out, size_t size)
{
	size_t o = 0;
	char hex[3] = { 0, 0, 0 };

	while (*s != '\0' && o < size) {
		if (s[0] == '\\' && s[1] == '\\') {
			out[o++] = '\\';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x' && s[2] != '\0' && s[3] != '\0') {
			hex[0] = s[2];
			hex[1] = s[3];
			out[o++] = (char)strtoul(hex, NULL, 16);
			s += 4;
		} else
			out[o++] = *s++;
	}
	return o;
}

/* next_line - the next non-comment line of f without its newline, or NULL */
static char *
next_line(FILE *f, char *buf, size_t size)
{
	while (fgets(buf, (int)size, f) != NULL) {
		size_t n = strlen(buf);
		if (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		if (buf[0] == '#')
			continue;
		return buf;
	}
	return NULL;
}

static FILE *
open_golden(const char *name)
{
	const char *dir = getenv("MTAD_GOLDEN_DIR");
	char path[1024];
	FILE *f;

	if (util_bsnprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "tests/golden",
	    name) < 0)
		fail_msg("path too long");
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s (run from the source root or set MTAD_GOLDEN_DIR)", path);
	return f;
}

static void
test_golden(void **state)
{
	FILE *in = open_golden("addr.in"), *ref = open_golden("addr.ref");
	char line[GOLDEN_LINE], want[GOLDEN_LINE], got[GOLDEN_LINE], input[GOLDEN_LINE];
	int rows = 0, bad = 0;

	(void)state;
	while (next_line(in, line, sizeof(line)) != NULL) {
		char *tab = strchr(line, '\t');
		struct addr a;
		size_t len, consumed = 99999;
		enum addr_result r;

		if (tab == NULL)
			fail_msg("addr.in: no TAB in \"%s\"", line);
		if (next_line(ref, want, sizeof(want)) == NULL)
			fail_msg("addr.ref has fewer lines than addr.in (at \"%s\")", line);
		*tab = '\0';
		len = unescape(tab + 1, input, sizeof(input));
		memset(&a, 0x5a, sizeof(a));
		r = addr_parse_path(input, len, strchr(line, 'n') != NULL,
		    strchr(line, 'u') != NULL, &a, &consumed);
		format_result(got, sizeof(got), r, &a, consumed);
		/* invariants that hold for every row */
		if (r == ADDR_OK) {
			assert_true(consumed >= 2 && consumed <= len && input[consumed - 1] == '>');
			assert_true(a.domain == a.text + (a.text[0] ? a.local_len + 1 : 0));
			assert_int_equal(strlen(a.text), a.text[0] ? a.local_len + 1 + strlen(a.domain) : 0);
		} else {
			assert_int_equal(consumed, 0);
			assert_string_equal(a.text, "");
		}
		if (strcmp(got, want) != 0) {
			print_error("addr.in row %d [%s] \"%s\": got \"%s\", want \"%s\"\n",
			    rows + 1, line, tab + 1, got, want);
			bad++;
		}
		rows++;
	}
	if (next_line(ref, want, sizeof(want)) != NULL)
		fail_msg("addr.ref has more lines than addr.in");
	fclose(in);
	fclose(ref);
	if (rows < 60)
		fail_msg("only %d golden rows, want >= 60", rows);
	assert_int_equal(bad, 0);
}

/* Routing tricks: the relay-control decision of SPEC §4, one row per form. */
static void
test_routing_trick(void **state)
{
	static const struct {
		const char *path;
		int trick;
	} rows[] = {
		{ "<user@example.com>", 0 },
		{ "<user%host@example.com>", 1 },
		{ "<host!user@example.com>", 1 },
		{ "<\"user@host\"@example.com>", 1 },
		{ "<\"user%host\"@example.com>", 1 },
		{ "<\"user host\"@example.com>", 0 },
		{ "<@relay.example:user@example.com>", 1 },
		{ "<@a.example,@b.example:user@example.com>", 1 },
		{ "<user+tag@example.com>", 0 },
		{ "<user@[192.0.2.1]>", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct addr a;
		size_t c;

		if (addr_parse_path(rows[i].path, strlen(rows[i].path), 0, 0, &a, &c) != ADDR_OK)
			fail_msg("%s: got invalid (%s), want ok", rows[i].path, a.why);
		if (addr_is_routing_trick(&a) != rows[i].trick)
			fail_msg("%s: got trick=%d, want %d", rows[i].path,
			    addr_is_routing_trick(&a), rows[i].trick);
	}
}

/* addr_domain_valid on its own: the 255/256 limit cannot be reached through a path */
static void
test_domain_valid(void **state)
{
	char d255[256], d256[257];
	struct {
		const char *d;
		int utf8, want;
	} rows[] = {
		{ "example.com", 0, 1 },
		{ "EXAMPLE.com", 0, 1 },
		{ "a", 0, 1 },
		{ "", 0, 0 },
		{ ".", 0, 0 },
		{ "a.", 0, 0 },
		{ ".a", 0, 0 },
		{ "a..b", 0, 0 },
		{ "-a.b", 0, 0 },
		{ "a-.b", 0, 0 },
		{ "a_b.c", 0, 0 },
		{ "b\xc3\xbc" "cher.example", 0, 0 },
		{ "b\xc3\xbc" "cher.example", 1, 1 },
		{ "[192.0.2.1]", 0, 1 },
		{ "[IPv6:::1]", 0, 1 },
		{ "[IPv6:fe80::1%eth0]", 0, 0 },
		{ "[::1]", 0, 0 },
		{ "[192.0.2.1", 0, 0 },
		{ d255, 0, 1 },
		{ d256, 0, 0 },
	};
	size_t i;

	(void)state;
	/* 4 labels of 63 octets plus 3 dots = 255 */
	memset(d255, 'x', 255);
	d255[63] = d255[127] = d255[191] = '.';
	d255[255] = '\0';
	memcpy(d256, d255, 255);
	d256[255] = 'y';       /* last label 64 octets and total 256 */
	d256[256] = '\0';
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = addr_domain_valid(rows[i].d, strlen(rows[i].d), rows[i].utf8);
		if (got != rows[i].want)
			fail_msg("row %zu \"%.40s\" (len %zu, utf8=%d): got %d, want %d", i,
			    rows[i].d, strlen(rows[i].d), rows[i].utf8, got, rows[i].want);
	}
	/* 255 octets with labels <= 63 is valid, 256 is not, even with short labels */
	memset(d256, 'x', 256);
	for (i = 50; i < 256; i += 50)
		d256[i] = '.';
	d256[256] = '\0';
	assert_false(addr_domain_valid(d256, 256, 0));
	assert_true(addr_domain_valid(d256, 255, 0));
}

/* addr_utf8_len: RFC 3629 table, one row per boundary */
static void
test_utf8_len(void **state)
{
	static const struct {
		const char *s;
		size_t len, want;
	} rows[] = {
		{ "\xc2\xa0", 2, 2 },              /* U+00A0 */
		{ "\xc2\x80", 2, 0 },              /* U+0080: C1 control */
		{ "\xc2\x9f", 2, 0 },              /* U+009F: C1 control */
		{ "\xc1\xbf", 2, 0 },              /* overlong */
		{ "\xdf\xbf", 2, 2 },              /* U+07FF */
		{ "\xe0\x9f\xbf", 3, 0 },          /* overlong */
		{ "\xe0\xa0\x80", 3, 3 },          /* U+0800 */
		{ "\xed\x9f\xbf", 3, 3 },          /* U+D7FF */
		{ "\xed\xa0\x80", 3, 0 },          /* U+D800 surrogate */
		{ "\xed\xbf\xbf", 3, 0 },          /* U+DFFF surrogate */
		{ "\xee\x80\x80", 3, 3 },          /* U+E000 */
		{ "\xef\xbf\xbf", 3, 3 },          /* U+FFFF */
		{ "\xf0\x8f\xbf\xbf", 4, 0 },      /* overlong */
		{ "\xf0\x90\x80\x80", 4, 4 },      /* U+10000 */
		{ "\xf4\x8f\xbf\xbf", 4, 4 },      /* U+10FFFF */
		{ "\xf4\x90\x80\x80", 4, 0 },      /* U+110000 */
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xe2\x82", 2, 0 },              /* truncated by len */
		{ "\xe2\x82\x41", 3, 0 },          /* bad continuation */
		{ "\x80", 1, 0 },                  /* lone continuation */
		{ "A", 1, 0 },                     /* ASCII is not a multi-octet sequence */
		{ "", 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t got = addr_utf8_len(rows[i].s, rows[i].len);
		if (got != rows[i].want)
			fail_msg("row %zu: got %zu, want %zu", i, got, rows[i].want);
	}
}

/* The parser never reads past len: the input sits at the end of a heap block (ASan). */
static void
test_bounds(void **state)
{
	static const char *const rows[] = {
		"<user@example.com", "<\"quoted", "<\"a\\", "<@a.example", "<@a.example,",
		"<u@[192.0.2.1", "<u@ex", "<\xc3", "<u@\xe2\x82", "<", "<@",
	};
	size_t i, cut;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = strlen(rows[i]);
		for (cut = 0; cut <= len; cut++) {
			char *p = malloc(cut > 0 ? cut : 1);
			struct addr a;
			size_t c = 7;

			assert_non_null(p);
			memcpy(p, rows[i], cut);
			if (addr_parse_path(p, cut, 1, 1, &a, &c) != ADDR_INVALID)
				fail_msg("\"%.*s\": got ok, want invalid", (int)cut, rows[i]);
			assert_int_equal(c, 0);
			free(p);
		}
	}
}

/* A NULL consumed pointer is allowed; a NULL or empty input is invalid. */
static void
test_null_args(void **state)
{
	struct addr a;

	(void)state;
	assert_int_equal(addr_parse_path("<a@b>", 5, 0, 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.text, "a@b");
	assert_string_equal(a.domain, "b");
	assert_int_equal(a.local_len, 1);
	assert_int_equal(addr_parse_path(NULL, 0, 1, 1, &a, NULL), ADDR_INVALID);
	assert_int_equal(addr_parse_path("<>", 2, 1, 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.text, "");
	assert_string_equal(a.domain, "");
	assert_int_equal(a.local_len, 0);
	assert_false(addr_is_routing_trick(&a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_routing_trick),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_utf8_len),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_null_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
