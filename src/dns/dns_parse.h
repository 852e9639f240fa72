/*
 * dns_parse.h - rdata parsing and MX ordering (private to src/dns/)
 *
 * Owns:     nothing; pure functions over caller-provided buffers.
 * Lifetime: stateless.
 * Errors:   malformed records are skipped; the status says what is left.
 * Context:  any thread (no globals). Unit tests and fuzzers call these
 *           directly with wire-format rdata.
 */
#ifndef MTAD_DNS_PARSE_H
#define MTAD_DNS_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/dns.h"

/* Where an answer came from, reduced to what dns_parse needs. */
struct dns_answer {
	int          rcode;       /* DNS rcode: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN */
	int          havedata;    /* libunbound's havedata */
	char *const *data;        /* rdata items, uncompressed wire format */
	const int   *len;         /* their lengths */
	size_t       count;       /* number of items */
};

/* dns_parse_name_from_wire - wire-format name to text without trailing dot; 0 or -1 */
int dns_parse_name_from_wire(const unsigned char *p, size_t len, char *out, size_t outlen);

/*
 * dns_parse_mx - MX rdata to at most max entries (unsorted); returns the
 * status: DNS_OK, DNS_NODATA, DNS_NXDOMAIN, DNS_NULLMX or DNS_TEMPFAIL.
 */
enum dns_status dns_parse_mx(const struct dns_answer *a, struct dns_mx *mx, size_t max,
    size_t *n);

/* dns_parse_sort_mx - by preference; equal preferences shuffled with rnd() */
void dns_parse_sort_mx(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void *), void *rarg);

/*
 * dns_parse_addr - A (family AF_INET) or AAAA (AF_INET6) rdata to at most
 * max sockaddrs with port 0; returns the status as dns_parse_mx.
 */
enum dns_status dns_parse_addr(const struct dns_answer *a, int family,
    struct sockaddr_storage *out, size_t max, size_t *n);

/*
 * dns_parse_merge_addr - the combined answer of the AAAA and A look-ups: AAAA
 * first, each family limited to half of max when the other has more;
 * returns the combined status.
 */
enum dns_status dns_parse_merge_addr(enum dns_status st6, const struct sockaddr_storage *a6, size_t n6,
    enum dns_status st4, const struct sockaddr_storage *a4, size_t n4,
    struct sockaddr_storage *out, size_t max, size_t *n);

/* dns_parse_literal - "192.0.2.1", "2001:db8::1" or "[2001:db8::1]" to a sockaddr; 0 or -1 */
int dns_parse_literal(const char *host, struct sockaddr_storage *ss);

#endif
