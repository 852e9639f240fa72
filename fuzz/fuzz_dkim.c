/*
 * fuzz_dkim.c - libFuzzer harness for the DKIM canonicalisers, the header
 *               section reader, the From: domain parser and the signer
 *               (src/dkim/)
 *
 * Owns:     one Ed25519 key table for the whole run.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first two octets seed the chunk sizes; the rest (at most 64 KiB) is
 * message content as the server stores it. It is signed twice, whole and
 * in pseudo-random chunks (each an exact-size heap copy, so ASan sees any
 * read past it): Ed25519 is deterministic, so both runs must produce the
 * same fields, or both refuse. The body canonicaliser must never emit
 * more than its input plus the final CRLF, and each kept header field
 * must canonicalise within its length plus 2.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkim/dkim_int.h"

#define FUZZ_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_keys *keys;
static struct dkim_key key;

static uint32_t
next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static void
count_emit(void *arg, const char *p, size_t len)
{
	(void)p;
	*(size_t *)arg += len;
}

static int
sign(const unsigned char *in, size_t len, uint32_t *seed, char *out, size_t size)
{
	struct dkim_sign *s = dkim_sign_new(keys);
	const char *why = NULL;
	int rc;

	if (s == NULL)
		abort();
	for (size_t p = 0; p < len;) {
		size_t n = seed != NULL ? 1 + next_rand(seed) % 700 : len;
		char *chunk;
		if (n > len - p)
			n = len - p;
		if ((chunk = malloc(n)) == NULL)
			abort();
		memcpy(chunk, in + p, n);
		dkim_sign_feed(s, chunk, n);
		free(chunk);
		p += n;
	}
	rc = dkim_sign_finish(s, "Date: x\r\n", 9, 1, out, size, &why);
	if (rc <= 0 && why == NULL)
		abort();
	dkim_sign_free(s);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char a[2 * DKIM_SIG_MAX], b[2 * DKIM_SIG_MAX];
	struct dkim_hdrs h;
	struct dkim_body body;
	const unsigned char *in;
	size_t len, used, emitted = 0;
	uint32_t seed;
	int ra, rb;

	if (keys == NULL) {
		keys = calloc(1, sizeof(*keys));
		if (keys == NULL || (key.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
			abort();
		memcpy(key.domain, "example.com", 12);
		memcpy(key.selector, "s", 2);
		key.ed25519 = 1;
		keys->refs = 1;
		keys->n = 1;
		keys->k = &key;
	}
	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1];
	in = data + 2;
	len = size - 2;
	if (len > FUZZ_MAX)
		len = FUZZ_MAX;

	/* header reader + canonicalisers, whole */
	dkim_canon_hdrs_init(&h);
	used = dkim_canon_hdrs_feed(&h, (const char *)in, len);
	if (used > len)
		abort();
	if (!h.done)
		dkim_canon_hdrs_end(&h);
	if (h.len > DKIM_HDRS_MAX || h.nf > DKIM_FIELDS_MAX)
		abort();
	for (unsigned i = 0; i < h.nf; i++) {
		char out[DKIM_HDRS_MAX + 2], dom[DKIM_DOMAIN_MAX + 1];
		size_t n;
		if (h.f[i].off + (size_t)h.f[i].len > h.len)
			abort();
		n = dkim_canon_header(h.buf + h.f[i].off, h.f[i].len, out, sizeof(out), 1);
		if (n == 0 || n > h.f[i].len + 2)
			abort();
		if (h.f[i].which == DKIM_H_FROM &&
		    dkim_canon_from_domain(h.buf + h.f[i].off, h.f[i].len, dom, sizeof(dom)) == 0 &&
		    (dom[0] == '\0' || strlen(dom) > DKIM_DOMAIN_MAX))
			abort();
	}
	if (!h.bad) {
		dkim_canon_body_init(&body, count_emit, &emitted);
		dkim_canon_body_feed(&body, (const char *)in + used, len - used);
		dkim_canon_body_end(&body);
		if (emitted > len - used + 2)
			abort();
	}
	dkim_canon_hdrs_clear(&h);

	/* signing: whole vs chunks */
	ra = sign(in, len, NULL, a, sizeof(a));
	rb = sign(in, len, &seed, b, sizeof(b));
	if (ra != rb || (ra > 0 && memcmp(a, b, (size_t)ra) != 0))
		abort();
	return 0;
}
