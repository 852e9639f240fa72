/*
 * dns_parse.c - MX/A/AAAA rdata parsing and MX ordering
 *
 * Owns:     nothing; parses caller-provided rdata into caller-provided arrays.
 * Lifetime: stateless.
 * Errors:   a malformed record is skipped (and traced); when nothing usable is
 *           left of a non-empty answer the status is DNS_TEMPFAIL, so a broken
 *           answer defers instead of bouncing.
 * Context:  any thread.
 *
 * libunbound hands out each record's rdata uncompressed (RFC 1035 §3.3.9 for
 * MX: a 16-bit preference then the exchange as a wire-format name), so a
 * compression pointer here is malformed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>

#include "dns/dns_parse.h"
#include "lib/log.h"
#include "lib/util.h"

#define DNS_RCODE_NOERROR  0
#define DNS_RCODE_NXDOMAIN 3

/*
 * dns_parse_name_from_wire - a wire-format name (length-prefixed labels ending in
 * the root label) to dotted text without the trailing dot; the root alone
 * becomes ".". Host names only: letters, digits, '-' and '_' in labels, so
 * nothing a log line or an SMTP command could choke on gets through.
 */
int
dns_parse_name_from_wire(const unsigned char *p, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	if (outlen < 2)
		return -1;
	for (;;) {
		size_t l;

		if (i >= len)
			return -1;
		l = p[i++];
		if (l == 0)
			break;
		if (l > 63 || l > len - i)      /* includes 0xc0 compression pointers */
			return -1;
		if (o > 0) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '.';
		}
		if (l >= outlen - o)
			return -1;
		for (size_t k = 0; k < l; k++) {
			unsigned char c = p[i + k];

			if (!isalnum(c) && c != '-' && c != '_')
				return -1;
			out[o++] = (char)c;
		}
		i += l;
	}
	if (i != len)
		return -1;                      /* trailing garbage after the name */
	if (o == 0) {
		out[0] = '.';
		out[1] = '\0';
		return 0;
	}
	if (o > 253)
		return -1;
	out[o] = '\0';
	return 0;
}

/* dns_answer_status - the status of an answer before looking at its records */
static enum dns_status
dns_answer_status(const struct dns_answer *a)
{
	if (a->rcode == DNS_RCODE_NXDOMAIN)
		return DNS_NXDOMAIN;
	if (a->rcode != DNS_RCODE_NOERROR)
		return DNS_TEMPFAIL;
	if (!a->havedata || a->count == 0 || a->data == NULL || a->len == NULL)
		return DNS_NODATA;
	return DNS_OK;
}

/*
 * dns_parse_mx - see dns_parse.h. A null MX (RFC 7505 §3: one record,
 * preference 0, exchange ".") is DNS_NULLMX; a "." among real exchanges is
 * ignored (the RFC says such a domain is misconfigured; the real ones win).
 */
enum dns_status
dns_parse_mx(const struct dns_answer *a, struct dns_mx *mx, size_t max, size_t *n)
{
	enum dns_status st;
	size_t nulls = 0, bad = 0;

	*n = 0;
	st = dns_answer_status(a);
	if (st != DNS_OK)
		return st;
	for (size_t i = 0; i < a->count; i++) {
		const unsigned char *p = (const unsigned char *)a->data[i];
		char host[256];

		if (p == NULL || a->len[i] < 3) {
			bad++;
			continue;
		}
		if (dns_parse_name_from_wire(p + 2, (size_t)a->len[i] - 2, host, sizeof(host)) == -1) {
			log_trace(TRACE_DNS, "dns: malformed MX record skipped");
			bad++;
			continue;
		}
		if (strcmp(host, ".") == 0) {
			nulls++;
			continue;
		}
		if (*n >= max)
			continue;                   /* bounded: the rest is ignored */
		mx[*n].pref = ((unsigned)p[0] << 8) | p[1];
		if (util_strlcpy(mx[*n].host, host, sizeof(mx[*n].host)) >= sizeof(mx[*n].host)) {
			bad++;
			continue;
		}
		(*n)++;
	}
	if (*n > 0)
		return DNS_OK;
	if (nulls > 0)
		return DNS_NULLMX;
	return bad > 0 ? DNS_TEMPFAIL : DNS_NODATA;
}

/*
 * dns_parse_sort_mx - insertion sort by (preference, random key): RFC 5321 §5.1
 * says equal preferences are tried in random order to spread the load. At
 * most DNS_MAX_MX entries, so quadratic is fine.
 */
void
dns_parse_sort_mx(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void *), void *rarg)
{
	uint32_t key[DNS_MAX_MX];

	if (n > DNS_MAX_MX)
		n = DNS_MAX_MX;
	for (size_t i = 0; i < n; i++)
		key[i] = rnd != NULL ? rnd(rarg) : 0;
	for (size_t i = 1; i < n; i++) {
		struct dns_mx t = mx[i];
		uint32_t tk = key[i];
		size_t j = i;

		while (j > 0 && (mx[j - 1].pref > t.pref ||
		    (mx[j - 1].pref == t.pref && key[j - 1] > tk))) {
			mx[j] = mx[j - 1];
			key[j] = key[j - 1];
			j--;
		}
		mx[j] = t;
		key[j] = tk;
	}
}

/* dns_parse_addr - see dns_parse.h */
enum dns_status
dns_parse_addr(const struct dns_answer *a, int family, struct sockaddr_storage *out,
    size_t max, size_t *n)
{
	enum dns_status st;
	size_t bad = 0;

	*n = 0;
	st = dns_answer_status(a);
	if (st != DNS_OK)
		return st;
	for (size_t i = 0; i < a->count && *n < max; i++) {
		struct sockaddr_storage *ss = &out[*n];

		memset(ss, 0, sizeof(*ss));
		if (family == AF_INET && a->data[i] != NULL && a->len[i] == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ss;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, a->data[i], 4);
		} else if (family == AF_INET6 && a->data[i] != NULL && a->len[i] == 16) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, a->data[i], 16);
		} else {
			bad++;
			continue;
		}
		(*n)++;
	}
	if (*n > 0)
		return DNS_OK;
	return bad > 0 ? DNS_TEMPFAIL : DNS_NODATA;
}

/* dns_parse_merge_addr - see dns_parse.h */
enum dns_status
dns_parse_merge_addr(enum dns_status st6, const struct sockaddr_storage *a6, size_t n6,
    enum dns_status st4, const struct sockaddr_storage *a4, size_t n4,
    struct sockaddr_storage *out, size_t max, size_t *n)
{
	size_t take6 = n6, take4 = n4;

	*n = 0;
	if (st6 != DNS_OK)
		take6 = 0;
	if (st4 != DNS_OK)
		take4 = 0;
	if (take6 + take4 > max) {
		size_t half = max / 2;

		if (take6 > half && take4 > half) {
			take6 = half;
			take4 = max - half;
		} else if (take6 > half) {
			take6 = max - take4;
		} else {
			take4 = max - take6;
		}
	}
	for (size_t i = 0; i < take6; i++)
		out[(*n)++] = a6[i];
	for (size_t i = 0; i < take4; i++)
		out[(*n)++] = a4[i];
	if (*n > 0)
		return DNS_OK;
	if (st6 == DNS_NXDOMAIN && st4 == DNS_NXDOMAIN)
		return DNS_NXDOMAIN;
	if (st6 == DNS_TEMPFAIL || st4 == DNS_TEMPFAIL)
		return DNS_TEMPFAIL;
	return DNS_NODATA;
}

/* dns_parse_literal - see dns_parse.h; the brackets of an address literal are allowed */
int
dns_parse_literal(const char *host, struct sockaddr_storage *ss)
{
	char buf[64];
	size_t len = strlen(host);
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, host, len);
	buf[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}
