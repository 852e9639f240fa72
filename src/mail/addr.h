/*
 * addr.h - RFC 5321 envelope addresses: MAIL FROM / RCPT TO paths
 *
 * Owns:     nothing; results are written into caller buffers.
 * Lifetime: stateless.
 * Errors:   addr_parse_path() returns ADDR_INVALID with a reply text.
 * Context:  any thread.
 *
 * A path is "<local@domain>" (or "<>" for MAIL FROM), optionally with a
 * source route "<@a,@b:local@domain>" which is parsed and DROPPED per RFC
 * 5321 §4.1.2 (never followed). The local part is a dot-string or a
 * quoted-string; local part <= 64 octets, domain <= 255, path <= 256.
 * SMTPUTF8 allows UTF-8 in both parts (validated as UTF-8).
 */
#ifndef MTAD_ADDR_H
#define MTAD_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX  64
#define ADDR_DOMAIN_MAX 255
#define ADDR_MAX        320   /* local@domain, canonical form, plus NUL slack */

enum addr_result {
	ADDR_OK = 0,
	ADDR_INVALID,
};

struct addr {
	char   text[ADDR_MAX + 1];  /* canonical "local@domain" ("" for <>); quoted local parts keep their quotes */
	size_t local_len;           /* bytes of the local part in text */
	const char *domain;         /* points into text after '@'; "" for <> */
	int    had_route;           /* a source route was given (and dropped) */
	int    utf8;                /* non-ASCII octets present */
};

/*
 * addr_parse_path - parse "<...>" at p (len bytes, no CRLF); on success
 * *consumed is the bytes used (parameters follow). allow_null: accept "<>".
 * allow_utf8: SMTPUTF8 was given. Lenient like Postfix about a missing
 * pair of angle brackets? No: brackets are required (RFC 5321).
 */
enum addr_result addr_parse_path(const char *p, size_t len, int allow_null,
    int allow_utf8, struct addr *out, size_t *consumed);

/*
 * addr_is_routing_trick - 1 when the local part contains '%', '!' or '@'
 * (quoted "user@host"), or a route was given: such a recipient is only ever
 * delivered to its own domain and never makes an untrusted client a relay.
 */
int addr_is_routing_trick(const struct addr *a);

/* addr_domain_valid - a dot-atom domain or an address literal [1.2.3.4] / [IPv6:...] */
int addr_domain_valid(const char *d, size_t len, int allow_utf8);

#endif
