/*
 * addr.c - RFC 5321 envelope addresses: MAIL FROM / RCPT TO paths
 *
 * Owns:     nothing; results are written into the caller's struct addr.
 * Lifetime: stateless.
 * Errors:   addr_parse_path() returns ADDR_INVALID and points out->why at a
 *           static text saying what was wrong; nothing a peer sends is fatal.
 * Context:  any thread.
 *
 * Grammar (RFC 5321 §4.1.2, extended by RFC 6531 §3.3 for SMTPUTF8):
 *
 *   Path        = "<" [ A-d-l ":" ] Mailbox ">"
 *   A-d-l       = At-domain *( "," At-domain )     ; source route, dropped
 *   At-domain   = "@" Domain
 *   Mailbox     = Local-part "@" ( Domain / address-literal )
 *   Local-part  = Dot-string / Quoted-string
 *   Dot-string  = Atom *( "." Atom )               ; atext, plus UTF-8
 *   Quoted-string = DQUOTE *( qtextSMTP / quoted-pairSMTP ) DQUOTE
 *   Domain      = sub-domain *( "." sub-domain )   ; LDH labels, U-labels
 *   address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]"
 *
 * The parser walks the bytes once, by structure: it never searches for
 * '>' (which may sit inside a quoted local part) and never reads past len.
 * Limits: local part <= 64 octets (quotes included), each label <= 63,
 * domain <= 255, the whole path from '<' to '>' <= 256 (RFC 5321 §4.5.3.1).
 * Case is kept as given; the canonical form is "local@domain" with the
 * source route removed and a quoted local part kept with its quotes.
 */
#include "mail/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define ADDR_PATH_MAX  256      /* RFC 5321 §4.5.3.1.3, "<" and ">" included */
#define ADDR_LABEL_MAX 63

/* addr_is_atext - RFC 5322 §3.2.3 atext, ASCII part */
static int
addr_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* addr_is_ldh - letter, digit or hyphen (RFC 5321 Ldh-str) */
static int
addr_is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/*
 * addr_utf8_len - length of the well-formed UTF-8 sequence (2..4 octets) at
 * p, or 0: RFC 3629 §4 ranges, so no overlong forms, no surrogates, nothing
 * above U+10FFFF. C1 controls (U+0080..U+009F) are refused as well: they
 * are control characters and have no business in an address or a log.
 */
size_t
addr_utf8_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char c;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (len == 0)
		return 0;
	c = p[0];
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;              /* overlong 3-octet forms */
	else if (c == 0xed)
		hi = 0x9f;              /* surrogates U+D800..U+DFFF */
	else if (c == 0xf0)
		lo = 0x90;              /* overlong 4-octet forms */
	else if (c == 0xf4)
		hi = 0x8f;              /* above U+10FFFF */
	else if (c == 0xc2)
		lo = 0xa0;              /* C1 controls U+0080..U+009F */
	if (len < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * addr_literal_valid - "[1.2.3.4]" or "[IPv6:...]" (RFC 5321 §4.1.3),
 * checked with inet_pton. General address literals (other tags) have no
 * registered use and are refused.
 */
static int
addr_literal_valid(const char *d, size_t len)
{
	char ip[INET6_ADDRSTRLEN + 8];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *s;
	size_t n;
	int af = AF_INET;

	if (len < 3 || d[0] != '[' || d[len - 1] != ']')
		return 0;
	s = d + 1;
	n = len - 2;
	if (n > 5 && (s[0] == 'I' || s[0] == 'i') && (s[1] == 'P' || s[1] == 'p') &&
	    (s[2] == 'v' || s[2] == 'V') && s[3] == '6' && s[4] == ':') {
		af = AF_INET6;
		s += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(ip))
		return 0;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (memchr(ip, '\0', n) != NULL)
		return 0;
	/* inet_pton accepts "1.2.3.4" only for AF_INET; "%scope" is never valid */
	return inet_pton(af, ip, bin) == 1;
}

/*
 * addr_domain_valid - a dot-atom domain of LDH labels (U-labels too when
 * allow_utf8) with no empty label, no label starting or ending with '-',
 * each <= 63 octets and the whole <= 255; or an address literal.
 */
int
addr_domain_valid(const char *d, size_t len, int allow_utf8)
{
	const unsigned char *u = (const unsigned char *)d;
	size_t i = 0, label = 0, n;

	if (d == NULL || len == 0 || len > ADDR_DOMAIN_MAX)
		return 0;
	if (d[0] == '[')
		return addr_literal_valid(d, len);
	while (i < len) {
		if (u[i] == '.') {
			if (label == 0 || u[i - 1] == '-')
				return 0;
			label = 0;
			i++;
			continue;
		}
		if (u[i] < 0x80) {
			if (!addr_is_ldh(u[i]))
				return 0;
			if (u[i] == '-' && label == 0)
				return 0;
			n = 1;
		} else {
			if (!allow_utf8 || (n = addr_utf8_len(d + i, len - i)) == 0)
				return 0;
		}
		label += n;
		if (label > ADDR_LABEL_MAX)
			return 0;
		i += n;
	}
	return label != 0 && u[len - 1] != '-';
}

/*
 * addr_scan_domain - length of the longest run of domain-looking octets at
 * p (up to len), for splitting "@domain" from what follows ("," ":" ">");
 * an address literal runs to its ']'. Validation is addr_domain_valid's job.
 */
static size_t
addr_scan_domain(const char *p, size_t len)
{
	size_t i = 0;

	if (len > 0 && p[0] == '[') {
		while (i < len && p[i] != ']' && p[i] != '>')
			i++;
		return i < len && p[i] == ']' ? i + 1 : i;
	}
	while (i < len && p[i] != '>' && p[i] != ',' && p[i] != ':' && p[i] != '@')
		i++;
	return i;
}

/* addr_fail - record why and return ADDR_INVALID */
static enum addr_result
addr_fail(struct addr *out, const char *why)
{
	out->text[0] = '\0';
	out->local_len = 0;
	out->domain = out->text;
	out->why = why;
	return ADDR_INVALID;
}

/*
 * addr_scan_local - the local part at p: a dot-string or a quoted-string.
 * Returns its length (0 = invalid, with *why set); *utf8 is set when
 * non-ASCII octets were seen.
 */
static size_t
addr_scan_local(const char *p, size_t len, int allow_utf8, int *utf8, const char **why)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0, n;
	int atom = 0;

	if (len == 0) {
		*why = "empty address";
		return 0;
	}
	if (u[0] == '"') {
		/* Quoted-string: qtextSMTP = %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP = "\" %d32-126 */
		for (i = 1; i < len; i++) {
			if (u[i] == '"')
				return i + 1;
			if (u[i] == '\\') {
				if (i + 1 >= len || u[i + 1] < 32 || u[i + 1] > 126) {
					*why = "bad quoted-pair in local part";
					return 0;
				}
				i++;
				continue;
			}
			if (u[i] >= 32 && u[i] <= 126)
				continue;
			if (u[i] >= 0x80 && allow_utf8 &&
			    (n = addr_utf8_len(p + i, len - i)) != 0) {
				*utf8 = 1;
				i += n - 1;
				continue;
			}
			*why = u[i] >= 0x80 ? (allow_utf8 ? "invalid UTF-8 in local part" :
			    "non-ASCII local part without SMTPUTF8") :
			    "control character in local part";
			return 0;
		}
		*why = "unterminated quoted local part";
		return 0;
	}
	/* Dot-string = Atom *("." Atom) */
	while (i < len) {
		if (u[i] == '.') {
			if (!atom) {
				*why = "empty atom in local part";
				return 0;
			}
			atom = 0;
			i++;
			continue;
		}
		if (addr_is_atext(u[i])) {
			atom = 1;
			i++;
			continue;
		}
		if (u[i] >= 0x80) {
			if (!allow_utf8) {
				*why = "non-ASCII local part without SMTPUTF8";
				return 0;
			}
			if ((n = addr_utf8_len(p + i, len - i)) == 0) {
				*why = "invalid UTF-8 in local part";
				return 0;
			}
			*utf8 = 1;
			atom = 1;
			i += n;
			continue;
		}
		break;
	}
	if (i == 0) {
		*why = u[0] == '@' ? "empty local part" : "invalid character in local part";
		return 0;
	}
	if (!atom) {
		*why = "local part ends with a dot";
		return 0;
	}
	return i;
}

/* addr_has_nonascii - any octet >= 0x80 in p[0..len) */
static int
addr_has_nonascii(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80)
			return 1;
	return 0;
}

/*
 * addr_parse_path - parse "<...>" at p (len bytes) per RFC 5321 §4.1.2;
 * see addr.h. The source route, if any, is validated and dropped.
 */
enum addr_result
addr_parse_path(const char *p, size_t len, int allow_null, int allow_utf8,
    struct addr *out, size_t *consumed)
{
	size_t i = 1, n, llen, dlen;
	const char *local, *dom;
	int utf8 = 0, truncated = 0;

	out->had_route = 0;
	out->utf8 = 0;
	out->why = NULL;
	if (consumed != NULL)
		*consumed = 0;
	if (p == NULL || len == 0 || p[0] != '<')
		return addr_fail(out, "missing '<'");
	if (len > ADDR_PATH_MAX) {
		len = ADDR_PATH_MAX;    /* no '>' within 256 octets fails below */
		truncated = 1;
	}

	if (len >= 2 && p[1] == '>') {
		if (!allow_null)
			return addr_fail(out, "null address not allowed here");
		out->text[0] = '\0';
		out->local_len = 0;
		out->domain = out->text;
		if (consumed != NULL)
			*consumed = 2;
		return ADDR_OK;
	}

	/* A-d-l ":" — source route, RFC 5321 §4.1.2 and Appendix C: parsed, dropped */
	if (i < len && p[i] == '@') {
		for (;;) {
			i++;            /* '@' */
			n = addr_scan_domain(p + i, len - i);
			if (!addr_domain_valid(p + i, n, allow_utf8))
				return addr_fail(out, "bad domain in source route");
			i += n;
			if (i < len && p[i] == ',' && i + 1 < len && p[i + 1] == '@') {
				i++;
				continue;
			}
			if (i < len && p[i] == ':') {
				i++;
				break;
			}
			return addr_fail(out, "bad source route");
		}
		out->had_route = 1;
	}

	local = p + i;
	llen = addr_scan_local(local, len - i, allow_utf8, &utf8, &out->why);
	if (llen == 0)
		return addr_fail(out, out->why);
	if (llen > ADDR_LOCAL_MAX)
		return addr_fail(out, "local part longer than 64 octets");
	i += llen;
	if (i >= len || p[i] != '@')
		return addr_fail(out, i >= len ? "missing '>'" : "missing '@domain'");
	i++;
	dom = p + i;
	dlen = addr_scan_domain(dom, len - i);
	if (dlen == 0)
		return addr_fail(out, "empty domain");
	if (dlen > ADDR_DOMAIN_MAX)
		return addr_fail(out, "domain longer than 255 octets");
	if (!addr_domain_valid(dom, dlen, allow_utf8)) {
		if (!allow_utf8 && addr_has_nonascii(dom, dlen))
			return addr_fail(out, "non-ASCII domain without SMTPUTF8");
		return addr_fail(out, "invalid domain");
	}
	if (addr_has_nonascii(dom, dlen))
		utf8 = 1;
	i += dlen;
	if (i >= len)
		return addr_fail(out, truncated ? "address longer than 256 octets" :
		    "missing '>'");
	if (p[i] != '>')
		return addr_fail(out, "invalid character in domain");
	i++;

	/* llen <= 64 and dlen <= 255: always fits ADDR_MAX */
	memcpy(out->text, local, llen);
	out->text[llen] = '@';
	memcpy(out->text + llen + 1, dom, dlen);
	out->text[llen + 1 + dlen] = '\0';
	out->local_len = llen;
	out->domain = out->text + llen + 1;
	out->utf8 = utf8;
	if (consumed != NULL)
		*consumed = i;
	return ADDR_OK;
}

/*
 * addr_is_routing_trick - '%' or '!' anywhere in the local part, '@' inside
 * a quoted local part, or a dropped source route (SPEC §4 relay control).
 */
int
addr_is_routing_trick(const struct addr *a)
{
	size_t i;

	if (a->had_route)
		return 1;
	for (i = 0; i < a->local_len; i++)
		if (a->text[i] == '%' || a->text[i] == '!' || a->text[i] == '@')
			return 1;
	return 0;
}
