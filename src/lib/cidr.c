/*
 * cidr.c - IPv4/IPv6 network lists ("127.0.0.1, 10.0.0.0/8 ::1 2001:db8::/32")
 *
 * Owns:     struct cidr_list and its entry array.
 * Lifetime: cidr_list_parse() to cidr_list_free(); the input text is not kept.
 * Errors:   cidr_list_parse() returns NULL and writes the offending token and
 *           why into err; cidr_list_format() returns -1 when buf is too small.
 * Context:  any thread; a list is read-only after parsing.
 *
 * Entries are stored as (family, 16 address bytes, prefix length). An IPv6
 * entry inside ::ffff:0:0/96 (v4-mapped) is stored as the IPv4 network it
 * names, and a v4-mapped client address is matched as IPv4, so
 * "::ffff:10.0.0.0/104" and "10.0.0.0/8" mean the same thing. Like Postfix's
 * mynetworks, a network with host bits set ("10.1.2.3/8") is rejected: it
 * is nearly always a typing error.
 */
#include "lib/cidr.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CIDR_MAX_ENTRIES 4096
#define CIDR_TOKEN_MAX   64          /* longest "[v6]/128" token we accept */

struct cidr_entry {
	int      family;                /* AF_INET or AF_INET6 */
	uint8_t  addr[16];              /* network byte order; 4 used for IPv4 */
	unsigned prefix;                /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr_entry *v;
	size_t n;
	size_t cap;
};

static const uint8_t cidr_v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* cidr_set_err - write "what: 'token'" into err, truncating the token if needed */
static void
cidr_set_err(char *err, size_t errlen, const char *what, const char *tok, size_t toklen)
{
	char shown[CIDR_TOKEN_MAX + 1];
	size_t n = toklen < CIDR_TOKEN_MAX ? toklen : CIDR_TOKEN_MAX;

	if (err == NULL || errlen == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tok[i];
		shown[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	shown[n] = '\0';
	if (util_bsnprintf(err, errlen, "%s: '%s%s'", what, shown,
	    toklen > n ? "..." : "") < 0)
		util_strlcpy(err, what, errlen);
}

/* cidr_host_bits_clear - 1 when every bit after prefix is zero */
static int
cidr_host_bits_clear(const uint8_t *addr, unsigned nbytes, unsigned prefix)
{
	for (unsigned bit = prefix; bit < nbytes * 8; bit++)
		if (addr[bit / 8] & (0x80u >> (bit % 8)))
			return 0;
	return 1;
}

/* cidr_prefix_match - 1 when the first prefix bits of a and b are equal */
static int
cidr_prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/*
 * cidr_parse_token - one "addr", "addr/len", "[v6]" or "[v6]/len" into e.
 * Returns 0, or -1 with err set.
 */
static int
cidr_parse_token(const char *tok, size_t len, struct cidr_entry *e, char *err, size_t errlen)
{
	char buf[CIDR_TOKEN_MAX + 1];
	const char *slash, *a;
	size_t alen;
	unsigned prefix, maxprefix;
	int have_prefix = 0;

	if (len > CIDR_TOKEN_MAX) {
		cidr_set_err(err, errlen, "network too long", tok, len);
		return -1;
	}
	memcpy(buf, tok, len);
	buf[len] = '\0';

	slash = memchr(buf, '/', len);
	a = buf;
	alen = slash != NULL ? (size_t)(slash - buf) : len;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t plen = len - (size_t)(p - buf);

		if (plen == 0 || plen > 3) {
			cidr_set_err(err, errlen, "bad prefix length", tok, len);
			return -1;
		}
		prefix = 0;
		for (size_t i = 0; i < plen; i++) {
			if (p[i] < '0' || p[i] > '9') {
				cidr_set_err(err, errlen, "bad prefix length", tok, len);
				return -1;
			}
			prefix = prefix * 10 + (unsigned)(p[i] - '0');
		}
		have_prefix = 1;
	} else
		prefix = 0;

	/* Optional brackets around an IPv6 address, as Postfix allows. */
	if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
		a++;
		alen -= 2;
		if (memchr(a, ':', alen) == NULL) {
			cidr_set_err(err, errlen, "brackets around a non-IPv6 address", tok, len);
			return -1;
		}
	}
	buf[(size_t)(a - buf) + alen] = '\0';

	memset(e, 0, sizeof(*e));
	if (memchr(a, ':', alen) != NULL) {
		if (inet_pton(AF_INET6, a, e->addr) != 1) {
			cidr_set_err(err, errlen, "bad IPv6 address", tok, len);
			return -1;
		}
		e->family = AF_INET6;
		maxprefix = 128;
	} else {
		if (inet_pton(AF_INET, a, e->addr) != 1) {
			cidr_set_err(err, errlen, "bad IPv4 address", tok, len);
			return -1;
		}
		e->family = AF_INET;
		maxprefix = 32;
	}
	if (!have_prefix)
		prefix = maxprefix;
	if (prefix > maxprefix) {
		cidr_set_err(err, errlen, "prefix length out of range", tok, len);
		return -1;
	}
	if (!cidr_host_bits_clear(e->addr, maxprefix / 8, prefix)) {
		cidr_set_err(err, errlen, "host bits set after the prefix (use the network address)",
		    tok, len);
		return -1;
	}
	e->prefix = prefix;

	/* ::ffff:a.b.c.d/n with n >= 96 is the IPv4 network a.b.c.d/(n-96). */
	if (e->family == AF_INET6 && prefix >= 96 &&
	    memcmp(e->addr, cidr_v4mapped, sizeof(cidr_v4mapped)) == 0) {
		memmove(e->addr, e->addr + 12, 4);
		memset(e->addr + 4, 0, 12);
		e->family = AF_INET;
		e->prefix = prefix - 96;
	}
	return 0;
}

/* cidr_list_push - append e; -1 (err set) on overflow or allocation failure */
static int
cidr_list_push(struct cidr_list *l, const struct cidr_entry *e, char *err, size_t errlen)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 8;
		struct cidr_entry *nv;

		if (ncap > CIDR_MAX_ENTRIES)
			ncap = CIDR_MAX_ENTRIES;
		if (l->n >= ncap) {
			if (err != NULL && errlen > 0)
				util_strlcpy(err, "too many networks", errlen);
			return -1;
		}
		nv = realloc(l->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			if (err != NULL && errlen > 0)
				util_strlcpy(err, "out of memory", errlen);
			return -1;
		}
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = *e;
	return 0;
}

/*
 * cidr_list_parse - split text on commas and white space, parse each
 * network. An empty text gives an empty list (matches nothing).
 */
struct cidr_list *
cidr_list_parse(const char *text, char *err, size_t errlen)
{
	struct cidr_list *l;
	const char *p = text;
	struct str tok;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		if (err != NULL && errlen > 0)
			util_strlcpy(err, "out of memory", errlen);
		return NULL;
	}
	if (p == NULL)
		return l;
	while (util_list_next(&p, &tok)) {
		struct cidr_entry e;

		if (cidr_parse_token(tok.p, tok.len, &e, err, errlen) < 0)
			goto fail;
		if (cidr_list_push(l, &e, err, errlen) < 0)
			goto fail;
	}
	return l;

fail:
	return cidr_list_free(l);
}

/* cidr_list_free - release the list; takes NULL, returns NULL */
struct cidr_list *
cidr_list_free(struct cidr_list *list)
{
	if (list != NULL) {
		free(list->v);
		free(list);
	}
	return NULL;
}

/*
 * cidr_list_match - 1 when addr is inside one of the networks. A
 * v4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket
 * reports for an IPv4 client) is matched as the IPv4 address.
 */
int
cidr_list_match(const struct cidr_list *list, const struct sockaddr *addr)
{
	uint8_t a[16];
	int family;

	if (list == NULL || addr == NULL)
		return 0;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
		memcpy(a, &sin->sin_addr, 4);
		family = AF_INET;
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
		memcpy(a, &sin6->sin6_addr, 16);
		family = AF_INET6;
		if (memcmp(a, cidr_v4mapped, sizeof(cidr_v4mapped)) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else
		return 0;

	for (size_t i = 0; i < list->n; i++) {
		const struct cidr_entry *e = &list->v[i];

		if (e->family == family && cidr_prefix_match(e->addr, a, e->prefix))
			return 1;
	}
	return 0;
}

/* cidr_list_count - how many networks the list holds (0 for NULL) */
size_t
cidr_list_count(const struct cidr_list *list)
{
	return list == NULL ? 0 : list->n;
}

/* cidr_list_is_open - 1 when some entry is 0.0.0.0/0 or ::/0 */
int
cidr_list_is_open(const struct cidr_list *list)
{
	if (list == NULL)
		return 0;
	for (size_t i = 0; i < list->n; i++)
		if (list->v[i].prefix == 0)
			return 1;
	return 0;
}

/*
 * cidr_list_format - "127.0.0.1, 10.0.0.0/8, ::1, 2001:db8::/32": a host
 * network is written as the bare address. "" for an empty list. 0, or -1
 * when buf is too small (buf then holds a truncated but terminated text).
 */
int
cidr_list_format(const struct cidr_list *list, char *buf, size_t size)
{
	size_t off = 0;

	if (buf == NULL || size == 0)
		return -1;
	buf[0] = '\0';
	if (list == NULL)
		return 0;
	for (size_t i = 0; i < list->n; i++) {
		const struct cidr_entry *e = &list->v[i];
		char a[INET6_ADDRSTRLEN];
		unsigned full = e->family == AF_INET ? 32 : 128;
		int n;

		if (inet_ntop(e->family, e->addr, a, sizeof(a)) == NULL)
			return -1;
		if (e->prefix == full)
			n = util_bsnprintf(buf + off, size - off, "%s%s",
			    i ? ", " : "", a);
		else
			n = util_bsnprintf(buf + off, size - off, "%s%s/%u",
			    i ? ", " : "", a, e->prefix);
		if (n < 0) {
			buf[off] = '\0';
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}
