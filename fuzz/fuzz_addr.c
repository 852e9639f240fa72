/*
 * fuzz_addr.c - libFuzzer harness for addr_parse_path() and friends
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first input octet picks the flags (allow_null, allow_utf8); the rest
 * is the path, bounded to 1 KiB (SMTP commands are at most 512 octets).
 * The input is copied into an exact-size heap block so ASan catches any
 * read past len. Each success is checked for the parser's invariants and
 * parsed again from its canonical form, which must give the same address.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check - invariants of a successful parse; abort() on a violation */
static void
fuzz_check(const char *p, size_t len, int allow_null, int allow_utf8,
    const struct addr *a, size_t consumed)
{
	size_t tlen = strlen(a->text);
	const unsigned char *t = (const unsigned char *)a->text;
	struct addr again;
	char buf[ADDR_MAX + 3];
	size_t c2, i;

	if (consumed < 2 || consumed > len || consumed > 256 || p[consumed - 1] != '>')
		abort();
	if (tlen == 0) {
		if (!allow_null || consumed != 2 || a->local_len != 0)
			abort();
		return;
	}
	if (a->local_len == 0 || a->local_len > ADDR_LOCAL_MAX ||
	    a->text[a->local_len] != '@' || a->domain != a->text + a->local_len + 1 ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	if (!addr_domain_valid(a->domain, strlen(a->domain), allow_utf8))
		abort();
	for (i = 0; i < tlen; i++) {
		if (t[i] < 0x20 || t[i] == 0x7f)
			abort();
		if (t[i] >= 0x80 && (!allow_utf8 || !a->utf8))
			abort();
	}
	/* the canonical form parses to itself, without a route */
	buf[0] = '<';
	memcpy(buf + 1, a->text, tlen);
	buf[tlen + 1] = '>';
	if (addr_parse_path(buf, tlen + 2, 0, allow_utf8, &again, &c2) != ADDR_OK ||
	    c2 != tlen + 2 || strcmp(again.text, a->text) != 0 || again.had_route ||
	    again.local_len != a->local_len)
		abort();
	if (!a->had_route && addr_is_routing_trick(&again) != addr_is_routing_trick(a))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr a;
	size_t len, consumed;
	int allow_null, allow_utf8;
	char *p;

	if (size < 1 || size > 1025)
		return 0;
	allow_null = data[0] & 1;
	allow_utf8 = (data[0] >> 1) & 1;
	len = size - 1;
	if ((p = malloc(len > 0 ? len : 1)) == NULL)
		return 0;
	memcpy(p, data + 1, len);
	if (addr_parse_path(p, len, allow_null, allow_utf8, &a, &consumed) == ADDR_OK)
		fuzz_check(p, len, allow_null, allow_utf8, &a, consumed);
	else if (consumed != 0 || a.text[0] != '\0' || a.why == NULL)
		abort();
	(void)addr_domain_valid(p, len, allow_utf8);
	free(p);
	return 0;
}
