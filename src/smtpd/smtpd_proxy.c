/*
 * smtpd_proxy.c - the PROXY protocol header (haproxy's proxy-protocol.txt, v1 and v2)
 *
 * Owns:     nothing.
 * Lifetime: stateless: the caller re-parses from the start of its buffer
 *           until a header is complete (at most SMTPD_PROXY_MAX bytes).
 * Errors:   anything malformed or too long is SMTPD_PROXY_INVALID; the
 *           session then closes without a greeting.
 * Context:  any thread.
 *
 * Only the source address is used (for the trusted-network check, the
 * per-client limit and the logs). "PROXY UNKNOWN" and v2 LOCAL keep the
 * socket's own peer, as the specification says.
 */
#include "smtpd/smtpd_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#define V1_MAX 107

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* v1_token - the next token up to a single space (or the end); NULL if empty */
static const char *
v1_token(const char **pos, const char *end, size_t *tlen)
{
	const char *s = *pos, *e = s;

	while (e < end && *e != ' ')
		e++;
	if (e == s)
		return NULL;
	*tlen = (size_t)(e - s);
	*pos = e < end ? e + 1 : e;
	return s;
}

/* v1_port - a decimal port 0..65535 */
static int
v1_port(const char *s, size_t len)
{
	struct str t = { s, len };
	uint64_t v;

	if (len > 5 || smtpd_line_u64(t, &v) < 0 || v > 65535)
		return -1;
	return (int)v;
}

/* v1_parse - "PROXY TCP4|TCP6 src dst sport dport" or "PROXY UNKNOWN ..." (no CRLF) */
static enum smtpd_proxy_result
v1_parse(const char *line, size_t len, struct smtpd_proxy_addr *out)
{
	const char *pos = line, *end = line + len, *t;
	const char *src, *dst;
	size_t tl = 0, srcl = 0, dstl = 0;
	char abuf[INET6_ADDRSTRLEN + 1];
	int family, sport, dport;

	t = v1_token(&pos, end, &tl);
	if (t == NULL || tl != 5 || memcmp(t, "PROXY", 5) != 0)
		return SMTPD_PROXY_INVALID;
	t = v1_token(&pos, end, &tl);
	if (t == NULL)
		return SMTPD_PROXY_INVALID;
	if (tl == 7 && memcmp(t, "UNKNOWN", 7) == 0) {
		out->have_src = 0;
		return SMTPD_PROXY_OK;
	}
	if (tl == 4 && memcmp(t, "TCP4", 4) == 0)
		family = AF_INET;
	else if (tl == 4 && memcmp(t, "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return SMTPD_PROXY_INVALID;
	src = v1_token(&pos, end, &srcl);
	dst = v1_token(&pos, end, &dstl);
	t = v1_token(&pos, end, &tl);
	if (src == NULL || dst == NULL || t == NULL || srcl > INET6_ADDRSTRLEN ||
	    dstl > INET6_ADDRSTRLEN || (sport = v1_port(t, tl)) < 0)
		return SMTPD_PROXY_INVALID;
	t = v1_token(&pos, end, &tl);
	if (t == NULL || (dport = v1_port(t, tl)) < 0 || pos != end)
		return SMTPD_PROXY_INVALID;
	(void)dport;
	memset(&out->src, 0, sizeof(out->src));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->src;
		struct in_addr tmp;
		memcpy(abuf, dst, dstl);
		abuf[dstl] = '\0';
		if (inet_pton(AF_INET, abuf, &tmp) != 1)
			return SMTPD_PROXY_INVALID;
		memcpy(abuf, src, srcl);
		abuf[srcl] = '\0';
		if (inet_pton(AF_INET, abuf, &sin->sin_addr) != 1)
			return SMTPD_PROXY_INVALID;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)sport);
		out->srclen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->src;
		struct in6_addr tmp;
		memcpy(abuf, dst, dstl);
		abuf[dstl] = '\0';
		if (inet_pton(AF_INET6, abuf, &tmp) != 1)
			return SMTPD_PROXY_INVALID;
		memcpy(abuf, src, srcl);
		abuf[srcl] = '\0';
		if (inet_pton(AF_INET6, abuf, &sin6->sin6_addr) != 1)
			return SMTPD_PROXY_INVALID;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)sport);
		out->srclen = sizeof(*sin6);
	}
	out->have_src = 1;
	return SMTPD_PROXY_OK;
}

/* v2_parse - the binary header: signature, version/command, family, length, addresses */
static enum smtpd_proxy_result
v2_parse(const unsigned char *p, size_t len, size_t *consumed, struct smtpd_proxy_addr *out)
{
	size_t alen, total;
	unsigned ver_cmd, fam;

	if (len < 16)
		return SMTPD_PROXY_MORE;
	ver_cmd = p[12];
	fam = p[13];
	alen = ((size_t)p[14] << 8) | p[15];
	total = 16 + alen;
	if ((ver_cmd >> 4) != 2 || (ver_cmd & 0x0f) > 1 || total > SMTPD_PROXY_MAX)
		return SMTPD_PROXY_INVALID;
	if (len < total)
		return SMTPD_PROXY_MORE;
	out->have_src = 0;
	if ((ver_cmd & 0x0f) == 0) {         /* LOCAL: health check by the proxy itself */
		*consumed = total;
		return SMTPD_PROXY_OK;
	}
	memset(&out->src, 0, sizeof(out->src));
	switch (fam) {
	case 0x11: {                         /* TCP over IPv4 */
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->src;
		if (alen < 12)
			return SMTPD_PROXY_INVALID;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, p + 16, 4);
		memcpy(&sin->sin_port, p + 24, 2);
		out->srclen = sizeof(*sin);
		out->have_src = 1;
		break;
	}
	case 0x21: {                         /* TCP over IPv6 */
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->src;
		if (alen < 36)
			return SMTPD_PROXY_INVALID;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, p + 16, 16);
		memcpy(&sin6->sin6_port, p + 48, 2);
		out->srclen = sizeof(*sin6);
		out->have_src = 1;
		break;
	}
	case 0x00:                           /* UNSPEC: keep the socket's peer */
		break;
	default:                             /* UDP, unix sockets: not for SMTP */
		return SMTPD_PROXY_INVALID;
	}
	*consumed = total;
	return SMTPD_PROXY_OK;
}

/* smtpd_proxy_parse - v2 when it starts with the binary signature, else v1 text */
enum smtpd_proxy_result
smtpd_proxy_parse(const unsigned char *p, size_t len, size_t *consumed,
    struct smtpd_proxy_addr *out)
{
	size_t n;
	const unsigned char *cr;

	*consumed = 0;
	out->have_src = 0;
	if (len == 0)
		return SMTPD_PROXY_MORE;
	if (p[0] == v2_sig[0]) {
		n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(p, v2_sig, n) != 0)
			return SMTPD_PROXY_INVALID;
		return v2_parse(p, len, consumed, out);
	}
	n = len < 6 ? len : 6;
	if (memcmp(p, "PROXY ", n) != 0)
		return SMTPD_PROXY_INVALID;
	n = len < V1_MAX ? len : V1_MAX;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' || p[i] == '\0')
			return SMTPD_PROXY_INVALID;  /* LF without CR before it, or NUL */
		if (p[i] != '\r')
			continue;
		if (i + 1 == len)
			return SMTPD_PROXY_MORE;
		if (p[i + 1] != '\n')
			return SMTPD_PROXY_INVALID;
		cr = p + i;
		if (v1_parse((const char *)p, (size_t)(cr - p), out) != SMTPD_PROXY_OK)
			return SMTPD_PROXY_INVALID;
		*consumed = i + 2;
		return SMTPD_PROXY_OK;
	}
	return len >= V1_MAX ? SMTPD_PROXY_INVALID : SMTPD_PROXY_MORE;
}
