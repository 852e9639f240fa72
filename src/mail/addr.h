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
	int    utf8;                /* non-ASCII octets in text (a dropped route does not count) */
	const char *why;            /* ADDR_INVALID: static text saying what was wrong (for logs, not a reply) */
};

/*
 * addr_parse_path - parse "<...>" at p (len bytes, no CRLF); on success
 * *consumed is the bytes used, through the '>' (parameters may follow).
 * allow_null: accept "<>" (text "" and domain ""). allow_utf8: SMTPUTF8
 * was given, so well-formed UTF-8 is accepted in both parts. Brackets are
 * required (RFC 5321); spaces before '<' are the caller's business; no
 * space, control character or NUL is accepted inside the brackets except
 * a space inside a quoted local part. On ADDR_INVALID out->text is "",
 * out->why says why and *consumed is 0. The caller picks the reply, e.g.
 * "501 5.1.7 Bad sender address syntax" / "501 5.1.3 Bad recipient
 * address syntax".
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

/*
 * addr_utf8_len - octets (2..4) of the well-formed UTF-8 sequence at p
 * (len bytes available), or 0: RFC 3629 ranges (no overlong forms, no
 * surrogates, nothing above U+10FFFF) and no C1 control (U+0080..U+009F).
 * Also used by the mail log to keep valid UTF-8 and mask everything else.
 */
size_t addr_utf8_len(const char *p, size_t len);

#endif
