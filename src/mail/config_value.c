/*
 * config_value.c - syntax of configuration values: yes/no, numbers,
 * durations, host names, relay targets, listen lists, time zones
 *
 * Owns:     nothing.
 * Lifetime: stateless; results go to caller storage.
 * Errors:   0, or -1 with a short reason in why (the value is never echoed,
 *           so a password cannot leak into an error message).
 * Context:  any thread.
 */
#include "mail/config_priv.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cfg_why - write a reason; ignores truncation (reasons are short literals) */
static void
cfg_why(char *why, size_t whylen, const char *text)
{
	if (why != NULL && whylen > 0)
		util_strlcpy(why, text, whylen);
}

/* config_value_bool - "yes" or "no", any case; true/1/on are not accepted */
int
config_value_bool(const char *v, int *out, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (util_ncaseeq(v, len, "yes")) {
		*out = 1;
		return 0;
	}
	if (util_ncaseeq(v, len, "no")) {
		*out = 0;
		return 0;
	}
	cfg_why(why, whylen, "expected yes or no");
	return -1;
}

/* config_value_uint - only decimal digits (no sign, no space), at most max */
int
config_value_uint(const char *v, unsigned long long max, unsigned long long *out,
    char *why, size_t whylen)
{
	unsigned long long n = 0;
	size_t i;

	if (v[0] == '\0') {
		cfg_why(why, whylen, "expected a number");
		return -1;
	}
	for (i = 0; v[i] != '\0'; i++) {
		unsigned d;

		if (v[i] < '0' || v[i] > '9') {
			cfg_why(why, whylen, "expected a number");
			return -1;
		}
		d = (unsigned)(v[i] - '0');
		if (n > (ULLONG_MAX - d) / 10 || n * 10 + d > max) {
			cfg_why(why, whylen, "number too large");
			return -1;
		}
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/*
 * config_value_parse_duration - "300", "300s", "5m", "4h", "5d" -> seconds.
 * A bare number is seconds; the suffix may be upper or lower case.
 * -1 on syntax error or when the result does not fit an unsigned.
 */
int
config_value_parse_duration(const char *text, unsigned *out)
{
	unsigned long long n = 0, mult = 1;
	size_t i;

	if (text == NULL || text[0] < '0' || text[0] > '9')
		return -1;
	for (i = 0; text[i] >= '0' && text[i] <= '9'; i++) {
		n = n * 10 + (unsigned)(text[i] - '0');
		if (n > UINT_MAX)
			return -1;
	}
	switch (text[i]) {
	case '\0':
		break;
	case 's': case 'S':
		mult = 1;
		i++;
		break;
	case 'm': case 'M':
		mult = 60;
		i++;
		break;
	case 'h': case 'H':
		mult = 3600;
		i++;
		break;
	case 'd': case 'D':
		mult = 86400;
		i++;
		break;
	default:
		return -1;
	}
	if (text[i] != '\0' || n * mult > UINT_MAX)
		return -1;
	*out = (unsigned)(n * mult);
	return 0;
}

/* config_value_format_duration - the shortest exact form: "5d", "4h", "5m", "4000s", "0" */
int
config_value_format_duration(unsigned secs, char *buf, size_t size)
{
	if (secs == 0)
		return util_bsnprintf(buf, size, "0") < 0 ? -1 : 0;
	if (secs % 86400 == 0)
		return util_bsnprintf(buf, size, "%ud", secs / 86400) < 0 ? -1 : 0;
	if (secs % 3600 == 0)
		return util_bsnprintf(buf, size, "%uh", secs / 3600) < 0 ? -1 : 0;
	if (secs % 60 == 0)
		return util_bsnprintf(buf, size, "%um", secs / 60) < 0 ? -1 : 0;
	return util_bsnprintf(buf, size, "%us", secs) < 0 ? -1 : 0;
}

/* config_value_text - reject control characters (tab included) and DEL */
int
config_value_text(const char *v, char *why, size_t whylen)
{
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			cfg_why(why, whylen, "control character in value");
			return -1;
		}
	}
	return 0;
}

/*
 * config_value_hostname - 1 when p[0..len) is a host name by RFC 1123:
 * dot-separated labels of 1..63 letters, digits and hyphens, no hyphen at
 * a label's ends, at most 253 octets (one trailing dot allowed), and a last
 * label that is not all digits (so "999.1.1.1" is not taken for a name).
 */
int
config_value_hostname(const char *p, size_t len)
{
	size_t label = 0, i;
	int all_digits = 1;

	if (len > 0 && p[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return 0;
			label = 0;
			all_digits = 1;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return 0;
			all_digits = 0;
		} else if (c >= '0' && c <= '9') {
			/* keeps all_digits */
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			all_digits = 0;
		} else
			return 0;
		if (++label > 63)
			return 0;
	}
	if (label == 0 || p[len - 1] == '-' || all_digits)
		return 0;
	return 1;
}

/*
 * config_value_host_list - 0 when v is empty or a list of host names
 * separated by commas and/or white space (ui_hosts); -1 with why otherwise
 */
int
config_value_host_list(const char *v, char *why, size_t whylen)
{
	const char *p = v;

	for (;;) {
		size_t len;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		len = strcspn(p, ", \t");
		if (!config_value_hostname(p, len)) {
			util_strlcpy(why, "expected host names separated by commas or spaces", whylen);
			return -1;
		}
		p += len;
	}
}

/* config_value_ip - 1 when p[0..len) is a numeric IPv4 or IPv6 address */
int
config_value_ip(const char *p, size_t len, int *family)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (memchr(buf, ':', len) != NULL) {
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return 0;
		if (family != NULL)
			*family = AF_INET6;
		return 1;
	}
	if (inet_pton(AF_INET, buf, addr) != 1)
		return 0;
	if (family != NULL)
		*family = AF_INET;
	return 1;
}

/* cfg_port - "1".."65535", digits only; -1 otherwise */
static int
cfg_port(const char *p, size_t len)
{
	int port = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		port = port * 10 + (p[i] - '0');
	}
	return port >= 1 && port <= 65535 ? port : -1;
}

/*
 * config_value_parse_relay - smart_relay / cc_mta: "host" (MX lookup),
 * "host:port", "[host]" and "[host]:port" (no MX lookup), IPv6 only in
 * brackets ("[2001:db8::1]:587"). A bare IPv4 literal gets no_mx too: an
 * MX lookup of an address is meaningless. "" leaves the target unset.
 * "smtps://" before any of the forms asks for implicit TLS (RFC 8314): the
 * host is then looked up by A/AAAA only and the port defaults to 465.
 */
int
config_value_parse_relay(const char *text, struct relay_target *out)
{
	const char *host, *rest;
	size_t hlen;
	int port = 0, no_mx = 0, fam, smtps = 0;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return -1;
	if (text[0] == '\0')
		return 0;
	if (strncmp(text, "smtps://", 8) == 0) {
		smtps = 1;
		text += 8;
		if (text[0] == '\0' || strchr(text, '/') != NULL)
			return -1;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL)
			return -1;
		host = text + 1;
		hlen = (size_t)(close - host);
		rest = close + 1;
		no_mx = 1;
		if (!config_value_ip(host, hlen, &fam) && !config_value_hostname(host, hlen))
			return -1;
	} else {
		const char *colon = strchr(text, ':');

		host = text;
		if (colon != NULL) {
			if (strchr(colon + 1, ':') != NULL)
				return -1;          /* IPv6 must be bracketed */
			hlen = (size_t)(colon - text);
			rest = colon;
		} else {
			hlen = strlen(text);
			rest = text + hlen;
		}
		if (config_value_ip(host, hlen, &fam))
			no_mx = 1;
		else if (!config_value_hostname(host, hlen))
			return -1;
	}
	if (*rest == ':') {
		if ((port = cfg_port(rest + 1, strlen(rest + 1))) < 0)
			return -1;
	} else if (*rest != '\0')
		return -1;
	if (hlen >= sizeof(out->host))
		return -1;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = port > 0 ? port : smtps ? 465 : 0;
	out->no_mx = no_mx || smtps;
	out->smtps = smtps;
	out->set = 1;
	return 0;
}

/* config_value_format_relay - "host", "host:port", "[host]", "[host]:port"; "" when unset */
int
config_value_format_relay(const struct relay_target *t, char *buf, size_t size)
{
	char port[8] = "";

	if (!t->set)
		return util_bsnprintf(buf, size, "%s", "") < 0 ? -1 : 0;
	if (t->port > 0 && util_bsnprintf(port, sizeof(port), ":%d", t->port) < 0)
		return -1;
	if (t->smtps)
		return util_bsnprintf(buf, size, "smtps://%s%s%s%s", strchr(t->host, ':') ? "[" : "",
		    t->host, strchr(t->host, ':') ? "]" : "", port) < 0 ? -1 : 0;
	if (t->no_mx)
		return util_bsnprintf(buf, size, "[%s]%s", t->host, port) < 0 ? -1 : 0;
	return util_bsnprintf(buf, size, "%s%s", t->host, port) < 0 ? -1 : 0;
}

/*
 * cfg_sockaddr - fill one listen_addr from a numeric address and a port;
 * text is the canonical "a.b.c.d:port" or "[v6]:port".
 */
static int
cfg_sockaddr(const char *a, size_t alen, int port, struct listen_addr *la)
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, a, alen);
	buf[alen] = '\0';
	memset(la, 0, sizeof(*la));
	if (memchr(buf, ':', alen) != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&la->ss;
		char canon[INET6_ADDRSTRLEN];

		if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		la->len = sizeof(*sin6);
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, canon, sizeof(canon)) == NULL ||
		    util_bsnprintf(la->text, sizeof(la->text), "[%s]:%d", canon, port) < 0)
			return -1;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&la->ss;
		char canon[INET_ADDRSTRLEN];

		if (inet_pton(AF_INET, buf, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		la->len = sizeof(*sin);
		if (inet_ntop(AF_INET, &sin->sin_addr, canon, sizeof(canon)) == NULL ||
		    util_bsnprintf(la->text, sizeof(la->text), "%s:%d", canon, port) < 0)
			return -1;
	}
	return 0;
}

/* cfg_listen_one - one token of a listen or dns_servers list */
static int
cfg_listen_one(const char *tok, size_t len, int default_port, struct listen_addr *la,
    char *why, size_t whylen)
{
	const char *a, *colon;
	size_t alen;
	int port;

	if (tok[0] == '[') {
		const char *close = memchr(tok, ']', len);

		if (close == NULL) {
			cfg_why(why, whylen, "missing ']'");
			return -1;
		}
		a = tok + 1;
		alen = (size_t)(close - a);
		if (memchr(a, ':', alen) == NULL) {
			cfg_why(why, whylen, "brackets are only for IPv6 addresses");
			return -1;
		}
		colon = close + 1 < tok + len ? close + 1 : NULL;
		if (colon != NULL && *colon != ':') {
			cfg_why(why, whylen, "expected ':port' after ']'");
			return -1;
		}
	} else {
		colon = memchr(tok, ':', len);
		if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - tok)) != NULL) {
			/* Several colons: a bare IPv6 address, allowed only without a port. */
			if (!default_port) {
				cfg_why(why, whylen, "write IPv6 addresses as [addr]:port");
				return -1;
			}
			colon = NULL;
		}
		a = tok;
		alen = colon != NULL ? (size_t)(colon - tok) : len;
	}
	if (colon == NULL) {
		if (!default_port) {
			cfg_why(why, whylen, "port missing (write addr:port)");
			return -1;
		}
		port = default_port;
	} else if ((port = cfg_port(colon + 1, len - (size_t)(colon + 1 - tok))) < 0) {
		cfg_why(why, whylen, "port must be 1..65535");
		return -1;
	}
	if (cfg_sockaddr(a, alen, port, la) < 0) {
		cfg_why(why, whylen, "not a numeric IP address");
		return -1;
	}
	return 0;
}

/* config_value_listen - see config_priv.h */
int
config_value_listen(const char *text, struct listen_addr *arr, size_t max, size_t *n,
    int default_port, char *why, size_t whylen)
{
	const char *p = text;
	size_t count = 0;
	struct str tok;

	while (util_list_next(&p, &tok)) {
		struct listen_addr la;

		if (count == max) {
			cfg_why(why, whylen, "too many addresses");
			return -1;
		}
		if (cfg_listen_one(tok.p, tok.len, default_port, &la, why, whylen) < 0)
			return -1;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(arr[i].text, la.text) == 0) {
				cfg_why(why, whylen, "address listed twice");
				return -1;
			}
		}
		arr[count++] = la;
	}
	*n = count;
	return 0;
}

/* config_value_ui_address - numeric address, "[v6]" allowed; out gets the bare form */
int
config_value_ui_address(const char *v, char *out, size_t outlen, char *why, size_t whylen)
{
	size_t len = strlen(v);
	const char *a = v;
	int fam;

	if (len >= 2 && v[0] == '[' && v[len - 1] == ']') {
		a++;
		len -= 2;
		if (memchr(a, ':', len) == NULL) {
			cfg_why(why, whylen, "brackets are only for IPv6 addresses");
			return -1;
		}
	}
	if (!config_value_ip(a, len, &fam)) {
		cfg_why(why, whylen, "expected a numeric IPv4 or IPv6 address");
		return -1;
	}
	if (len >= outlen) {
		cfg_why(why, whylen, "address too long");
		return -1;
	}
	memcpy(out, a, len);
	out[len] = '\0';
	return 0;
}

/* config_value_metrics_push - "" or "udp://host:port" (host: name, IPv4 or [IPv6]) */
int
config_value_metrics_push(const char *v, char *why, size_t whylen)
{
	struct relay_target t;
	const char *hp;

	if (v[0] == '\0')
		return 0;
	if (strncmp(v, "udp://", 6) != 0) {
		cfg_why(why, whylen, "expected udp://host:port");
		return -1;
	}
	hp = v + 6;
	/* Same host[:port] grammar as a relay target; the port is required. */
	if (config_value_parse_relay(hp, &t) < 0 || !t.set || t.port == 0) {
		cfg_why(why, whylen, "expected udp://host:port");
		return -1;
	}
	return 0;
}

/*
 * config_value_timezone - an IANA name ("Europe/Berlin", "UTC"): letters,
 * digits, "_+-./" only, not absolute, no "." or ".." component, and a TZif
 * file under zoneinfo. "UTC" and "GMT" are accepted without the file
 * (the C library knows them even where tzdata is not installed).
 */
int
config_value_timezone(const char *v, const char *zoneinfo, char *why, size_t whylen)
{
	char path[4096], magic[4];
	size_t len = strlen(v);
	struct stat st;
	int fd;
	ssize_t r;

	if (len == 0)
		return 0;
	if (len > 255) {
		cfg_why(why, whylen, "time zone name too long");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '+' || c == '-' || c == '.' || c == '/')) {
			cfg_why(why, whylen, "not an IANA time zone name");
			return -1;
		}
	}
	if (v[0] == '/' || v[len - 1] == '/' || strstr(v, "//") != NULL) {
		cfg_why(why, whylen, "not an IANA time zone name");
		return -1;
	}
	for (const char *c = v; c != NULL; c = strchr(c, '/')) {
		if (*c == '/')
			c++;
		if ((c[0] == '.' && (c[1] == '/' || c[1] == '\0')) ||
		    (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))) {
			cfg_why(why, whylen, "not an IANA time zone name");
			return -1;
		}
	}
	if (strcmp(v, "UTC") == 0 || strcmp(v, "GMT") == 0)
		return 0;
	if (util_bsnprintf(path, sizeof(path), "%s/%s", zoneinfo, v) < 0) {
		cfg_why(why, whylen, "time zone name too long");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		cfg_why(why, whylen, "unknown time zone");
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		cfg_why(why, whylen, "unknown time zone");
		return -1;
	}
	r = read(fd, magic, sizeof(magic));
	close(fd);
	if (r != (ssize_t)sizeof(magic) || memcmp(magic, "TZif", 4) != 0) {
		cfg_why(why, whylen, "unknown time zone");
		return -1;
	}
	return 0;
}

/*
 * config_value_relpath - maillog_filename: a file name below log_dir,
 * possibly with directories; a leading "/" means log_dir's root. No "."
 * or ".." component, no empty last component.
 */
int
config_value_relpath(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (len == 0)
		return 0;
	if (len > 1024) {
		cfg_why(why, whylen, "path too long");
		return -1;
	}
	if (v[len - 1] == '/') {
		cfg_why(why, whylen, "must name a file, not a directory");
		return -1;
	}
	for (const char *c = v; c != NULL; c = strchr(c, '/')) {
		while (*c == '/')
			c++;
		if ((c[0] == '.' && (c[1] == '/' || c[1] == '\0')) ||
		    (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))) {
			cfg_why(why, whylen, "'.' and '..' are not allowed (the file stays inside log_dir)");
			return -1;
		}
	}
	return 0;
}

/* config_value_mail_owner - 1..32 of [A-Za-z0-9_.-], not starting with '-' */
int
config_value_mail_owner(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (len == 0 || len > 32 || v[0] == '-') {
		cfg_why(why, whylen, "expected a user name");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-')) {
			cfg_why(why, whylen, "expected a user name");
			return -1;
		}
	}
	return 0;
}
