/*
 * http_auth.c - HTTP basic auth (RFC 7617), the lockout after failed logins,
 * the Host names the UI answers to and the cross-site request check for
 * state-changing requests (SPEC §11.1)
 *
 * Owns:     the table of recent failures per client address.
 * Lifetime: the table lives in struct http; the functions keep no other
 *           state and take the time as an argument (unit tests run them in
 *           virtual time).
 * Errors:   malformed credentials count as missing, wrong ones as bad: both
 *           get 401 at once; ten bad ones in ten minutes lock the address
 *           out (429) for ten minutes after the last.
 * Context:  event-loop thread.
 *
 * The password is never compared byte by byte: the supplied "user:pass" is
 * hashed with SHA-256 and the two 32-byte digests are compared with
 * CRYPTO_memcmp, so the time taken says nothing about how much matched, nor
 * about the length of the secret.
 */
#include "http/http_int.h"
#include "lib/base64.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* http_auth_digest - the SHA-256 that credentials are compared by */
int
http_auth_digest(const char *user, const char *pass, unsigned char out[HTTP_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int rc = -1;

	if (ctx == NULL)
		return -1;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, user, strlen(user)) == 1 &&
	    EVP_DigestUpdate(ctx, ":", 1) == 1 &&
	    EVP_DigestUpdate(ctx, pass, strlen(pass)) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == HTTP_DIGEST_LEN)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* http_auth_check - "Basic <base64 of user:pass>" against want */
enum http_auth_result
http_auth_check(const char *header, const unsigned char want[HTTP_DIGEST_LEN])
{
	unsigned char dec[HTTP_MAX_AUTH_LEN], got[HTTP_DIGEST_LEN];
	const char *p;
	size_t len, n;
	unsigned int dl = 0;

	if (header == NULL)
		return HTTP_AUTH_MISSING;
	while (*header == ' ' || *header == '\t')
		header++;
	if (strncasecmp(header, "Basic", 5) != 0 || (header[5] != ' ' && header[5] != '\t'))
		return HTTP_AUTH_MISSING;
	p = header + 6;
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (base64_decode(p, len, dec, sizeof(dec), &n) < 0)        /* strict; nothing written */
		return HTTP_AUTH_MISSING;
	if (memchr(dec, ':', n) == NULL) {
		OPENSSL_cleanse(dec, n);
		return HTTP_AUTH_MISSING;
	}
	if (EVP_Digest(dec, n, got, &dl, EVP_sha256(), NULL) != 1 ||
	    dl != HTTP_DIGEST_LEN) {
		OPENSSL_cleanse(dec, sizeof(dec));
		return HTTP_AUTH_BAD;
	}
	OPENSSL_cleanse(dec, sizeof(dec));
	return CRYPTO_memcmp(got, want, HTTP_DIGEST_LEN) == 0 ? HTTP_AUTH_OK : HTTP_AUTH_BAD;
}

/* --- the Host header and the names the UI answers to (SPEC §11.1) --------- */

/*
 * http_authority_split - "name", "name:port", "[v6]", "[v6]:port" -> the
 * name (without brackets) and the port text ("" when absent). -1 when
 * malformed.
 */
static int
http_authority_split(const char *a, size_t len, const char **name, size_t *nlen,
    const char **port, size_t *plen)
{
	const char *colon;

	if (len == 0)
		return -1;
	if (a[0] == '[') {
		const char *close = memchr(a, ']', len);
		if (close == NULL)
			return -1;
		*name = a + 1;
		*nlen = (size_t)(close - a - 1);
		if ((size_t)(close - a) + 1 == len) {
			*port = "";
			*plen = 0;
			return 0;
		}
		if (close[1] != ':')
			return -1;
		*port = close + 2;
		*plen = len - (size_t)(close - a) - 2;
	} else {
		colon = memchr(a, ':', len);
		*name = a;
		if (colon == NULL) {
			*nlen = len;
			*port = "";
			*plen = 0;
			return 0;
		}
		*nlen = (size_t)(colon - a);
		*port = colon + 1;
		*plen = len - *nlen - 1;
	}
	if (*plen == 0 || *plen > 5)
		return -1;
	for (size_t i = 0; i < *plen; i++)
		if ((*port)[i] < '0' || (*port)[i] > '9')
			return -1;
	return 0;
}

/* http_name_eq - host names equal, ignoring case and one trailing dot */
static int
http_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	return alen == blen && alen > 0 && strncasecmp(a, b, alen) == 0;
}

/* http_name_is_ip - an IPv4 or IPv6 literal (bracketed v6 comes here without brackets) */
static int
http_name_is_ip(const char *p, size_t len, int bracketed)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (bracketed)
		return inet_pton(AF_INET6, buf, bin) == 1;
	return inet_pton(AF_INET, buf, bin) == 1;
}

/* http_name_allowed - hostname, localhost, an IP literal or one of ui_hosts? */
static int
http_name_allowed(const struct http_names *n, const char *name, size_t len, int bracketed)
{
	const char *p;

	if (http_name_is_ip(name, len, bracketed))
		return 1;
	if (bracketed)
		return 0;
	if (http_name_eq(name, len, "localhost", 9))
		return 1;
	if (n->hostname != NULL && http_name_eq(name, len, n->hostname, strlen(n->hostname)))
		return 1;
	for (p = n->ui_hosts != NULL ? n->ui_hosts : ""; *p != '\0';) {
		size_t tl;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		tl = strcspn(p, ", \t");
		if (tl > 0 && http_name_eq(name, len, p, tl))
			return 1;
		p += tl;
	}
	return 0;
}

/* http_auth_host_allowed - see http_int.h */
int
http_auth_host_allowed(const struct http_names *n, const char *host)
{
	const char *name, *port;
	size_t nlen, plen;

	if (host == NULL)
		return 1;            /* HTTP/1.0 without Host: no browser sends that */
	if (http_authority_split(host, strlen(host), &name, &nlen, &port, &plen) < 0)
		return 0;
	return http_name_allowed(n, name, nlen, host[0] == '[');
}

/*
 * http_origin_is - does url ("http://host[:port]" or a Referer with a path)
 * name one of our names (n), on the port the request came to (the Host
 * header's, or the scheme's default)?
 */
static int
http_origin_is(const char *url, const char *host, const struct http_names *n, int https)
{
	const char *scheme = https ? "https://" : "http://";
	const char *defport = https ? "443" : "80";
	size_t sl = strlen(scheme), alen;
	const char *name, *port, *hname, *hport;
	size_t nlen, plen, hnlen, hplen;

	if (strncasecmp(url, scheme, sl) != 0)
		return 0;
	url += sl;
	alen = strcspn(url, "/?#");
	if (memchr(url, '@', alen) != NULL)
		return 0;
	if (http_authority_split(url, alen, &name, &nlen, &port, &plen) < 0 ||
	    !http_name_allowed(n, name, nlen, url[0] == '['))
		return 0;
	if (http_authority_split(host, strlen(host), &hname, &hnlen, &hport, &hplen) < 0)
		return 0;
	if (plen == 0) {
		port = defport;
		plen = strlen(defport);
	}
	if (hplen == 0) {
		hport = defport;
		hplen = strlen(defport);
	}
	return plen == hplen && memcmp(port, hport, plen) == 0;
}

/*
 * http_auth_csrf_check - see http_int.h: X-Requested-With, then Origin or
 * Referer against our names (never against the Host header's name, which a
 * rebinding attacker chooses)
 */
int
http_auth_csrf_check(const char *xrw, const char *origin, const char *referer,
    const char *host, const struct http_names *n, int https, const char **why)
{
	if (xrw == NULL || xrw[0] == '\0') {
		*why = "missing X-Requested-With header";
		return -1;
	}
	if (host == NULL || host[0] == '\0') {
		*why = "missing Host header";
		return -1;
	}
	if (origin != NULL) {
		/* "null" (sandboxed frames, file: pages) is never our page. */
		if (!http_origin_is(origin, host, n, https)) {
			*why = "Origin is not this host";
			return -1;
		}
	} else if (referer != NULL && !http_origin_is(referer, host, n, https)) {
		*why = "Referer is not this host";
		return -1;
	}
	*why = NULL;
	return 0;
}

/* --- failed logins (SPEC §11.1) -------------------------------------------- */

/* http_auth_hash - FNV-1a of the address, for the set of its slots */
static uint32_t
http_auth_hash(const char *addr)
{
	uint32_t hsh = 2166136261u;

	for (; *addr != '\0'; addr++)
		hsh = (hsh ^ (unsigned char)*addr) * 16777619u;
	return hsh;
}

/*
 * http_auth_slot - the slot of addr, or NULL; with make, a slot for it
 * (an empty one of its set, else the least recently failing one that is not
 * locked out, else the one whose lockout ends first)
 */
static struct http_auth_client *
http_auth_slot(struct http_auth_table *t, const char *addr, uint64_t now, int make)
{
	struct http_auth_client *set = &t->c[(http_auth_hash(addr) % HTTP_AUTH_SETS) * HTTP_AUTH_WAYS];
	struct http_auth_client *victim = NULL;

	for (size_t i = 0; i < HTTP_AUTH_WAYS; i++)
		if (set[i].addr[0] != '\0' && strcmp(set[i].addr, addr) == 0)
			return &set[i];
	if (!make)
		return NULL;
	for (size_t i = 0; i < HTTP_AUTH_WAYS; i++) {
		struct http_auth_client *c = &set[i];
		int locked = c->locked_until_us > now;

		if (c->addr[0] == '\0')
			return c;
		if (victim == NULL) {
			victim = c;
			continue;
		}
		if (locked != (victim->locked_until_us > now)) {
			if (!locked)
				victim = c;
		} else if (locked ? c->locked_until_us < victim->locked_until_us :
		    c->last_us < victim->last_us)
			victim = c;
	}
	memset(victim, 0, sizeof(*victim));
	return victim;
}

/* http_auth_locked - see http_int.h */
unsigned
http_auth_locked(struct http_auth_table *t, const char *addr, uint64_t now)
{
	struct http_auth_client *c = http_auth_slot(t, addr, now, 0);
	uint64_t left;

	if (c == NULL || c->locked_until_us <= now)
		return 0;
	left = c->locked_until_us - now;
	return (unsigned)((left + 999999) / 1000000);
}

/* http_auth_fail - see http_int.h */
int
http_auth_fail(struct http_auth_table *t, const char *addr, uint64_t now, unsigned *log_count)
{
	struct http_auth_client *c = http_auth_slot(t, addr, now, 1);
	uint64_t oldest;

	if (c->addr[0] == '\0')
		util_strlcpy(c->addr, addr, sizeof(c->addr));
	c->t[c->head] = now;
	c->head = (c->head + 1) % HTTP_LOCK_FAILS;
	if (c->n < HTTP_LOCK_FAILS)
		c->n++;
	c->last_us = now;
	c->unlogged++;
	*log_count = 0;
	if (c->logged_us == 0 || now - c->logged_us >= HTTP_AUTH_LOG_US) {
		*log_count = c->unlogged;
		c->unlogged = 0;
		c->logged_us = now;
	}
	/* The ring is full: its oldest entry is the tenth failure back. */
	oldest = c->t[c->head];
	if (c->n == HTTP_LOCK_FAILS && now - oldest <= HTTP_LOCK_WINDOW_US) {
		c->locked_until_us = now + HTTP_LOCK_US;
		c->n = 0;
		return 1;
	}
	return 0;
}
