/*
 * http_auth.c - HTTP basic auth (RFC 7617), the delay after failures, and
 * the cross-site request check for state-changing requests
 *
 * Owns:     the table of recent failures per client address.
 * Lifetime: the table lives in struct http; the functions are stateless.
 * Errors:   malformed credentials count as missing (401 at once); wrong ones
 *           as bad (401 after a delay that grows per client).
 * Context:  event-loop thread.
 *
 * The password is never compared byte by byte: the supplied "user:pass" is
 * hashed with SHA-256 and the two 32-byte digests are compared with
 * CRYPTO_memcmp, so the time taken says nothing about how much matched, nor
 * about the length of the secret.
 */
#include "http/http_int.h"
#include "lib/util.h"

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
	size_t len, pad = 0;
	int n;
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
	/* EVP_DecodeBlock wants a multiple of 4 and writes 3 bytes per 4 in. */
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(dec) - 1)
		return HTTP_AUTH_MISSING;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '=') {
			if (i + 2 < len)             /* padding only at the end */
				return HTTP_AUTH_MISSING;
			pad++;
		} else if (pad > 0 || !(c == '+' || c == '/' || (c >= '0' && c <= '9') ||
		    (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return HTTP_AUTH_MISSING;
	}
	n = EVP_DecodeBlock(dec, (const unsigned char *)p, (int)len);
	if (n < 0 || (size_t)n < pad)
		return HTTP_AUTH_MISSING;
	n -= (int)pad;
	if (memchr(dec, ':', (size_t)n) == NULL)
		return HTTP_AUTH_MISSING;
	if (EVP_Digest(dec, (size_t)n, got, &dl, EVP_sha256(), NULL) != 1 ||
	    dl != HTTP_DIGEST_LEN) {
		OPENSSL_cleanse(dec, sizeof(dec));
		return HTTP_AUTH_BAD;
	}
	OPENSSL_cleanse(dec, sizeof(dec));
	return CRYPTO_memcmp(got, want, HTTP_DIGEST_LEN) == 0 ? HTTP_AUTH_OK : HTTP_AUTH_BAD;
}

/*
 * http_origin_is - does url ("http://host[:port]" or a Referer with a path)
 * name our host (as the Host header gives it, port included)?
 */
static int
http_origin_is(const char *url, const char *host, int https)
{
	const char *scheme = https ? "https://" : "http://";
	size_t sl = strlen(scheme), hl = strlen(host);

	if (strncasecmp(url, scheme, sl) != 0)
		return 0;
	url += sl;
	if (strncasecmp(url, host, hl) != 0)
		return 0;
	url += hl;
	return *url == '\0' || *url == '/' || *url == '?' || *url == '#';
}

/* http_csrf_check - see http_int.h: X-Requested-With, then Origin or Referer against Host */
int
http_csrf_check(const char *xrw, const char *origin, const char *referer,
    const char *host, int https, const char **why)
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
		if (!http_origin_is(origin, host, https)) {
			*why = "Origin is not this host";
			return -1;
		}
	} else if (referer != NULL && !http_origin_is(referer, host, https)) {
		*why = "Referer is not this host";
		return -1;
	}
	*why = NULL;
	return 0;
}

/*
 * http_auth_fail - the delay grows with the client's recent failures:
 * 1 s for the first three, then doubling up to 16 s. A client that has not
 * failed for ten minutes starts again at one. The table is small and the
 * least recently failing client makes room.
 */
unsigned
http_auth_fail(struct http_auth_table *t, const char *addr, uint64_t now)
{
	struct http_auth_client *c = NULL, *oldest = &t->c[0];
	unsigned delay;

	for (size_t i = 0; i < HTTP_AUTH_CLIENTS; i++) {
		if (t->c[i].addr[0] != '\0' && strcmp(t->c[i].addr, addr) == 0) {
			c = &t->c[i];
			break;
		}
		if (t->c[i].last_us < oldest->last_us)
			oldest = &t->c[i];
	}
	if (c == NULL) {
		c = oldest;
		memset(c, 0, sizeof(*c));
		util_strlcpy(c->addr, addr, sizeof(c->addr));
	}
	if (c->last_us != 0 && now - c->last_us > 600ULL * 1000000)
		c->fails = 0;
	c->fails++;
	c->last_us = now;
	if (c->fails <= 3)
		delay = 1000;
	else if (c->fails >= 8)
		delay = 16000;
	else
		delay = 1000u << (c->fails - 3);
	return delay > 16000 ? 16000 : delay;
}

/* http_auth_success - a client logged in: forget its failures */
void
http_auth_success(struct http_auth_table *t, const char *addr)
{
	for (size_t i = 0; i < HTTP_AUTH_CLIENTS; i++)
		if (t->c[i].addr[0] != '\0' && strcmp(t->c[i].addr, addr) == 0) {
			memset(&t->c[i], 0, sizeof(t->c[i]));
			return;
		}
}
