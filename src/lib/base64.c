/*
 * base64.c - base64 (RFC 4648 §4) encoding and strict decoding
 *
 * Owns:     nothing.
 * Lifetime: stateless.
 * Errors:   -1 with errno EINVAL or EMSGSIZE; nothing written then.
 * Context:  any thread.
 *
 * One decoder for every base64 a peer sends (SMTP AUTH responses, HTTP
 * Basic credentials, a relay's 334 challenges); fuzz/fuzz_base64.c drives
 * it. The sizes are checked before the first write.
 */
#include "lib/base64.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_val - the 6 bits of an alphabet character, or -1 */
static int
b64_val(char ch)
{
	unsigned char c = (unsigned char)ch;

	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* base64_encode - see base64.h */
int
base64_encode(const void *in, size_t len, char *out, size_t size)
{
	const unsigned char *p = in;
	size_t o = 0;

	if (len > (size_t)INT_MAX / 4 * 3 - 3 || BASE64_LEN(len) >= size) {
		errno = EMSGSIZE;
		return -1;
	}
	for (size_t i = 0; i < len; i += 3) {
		size_t left = len - i;
		uint32_t v = (uint32_t)p[i] << 16;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = left > 1 ? alphabet[v >> 6 & 63] : '=';
		out[o++] = left > 2 ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

/* base64_decode - see base64.h */
int
base64_decode(const char *in, size_t len, void *out, size_t size, size_t *outlen)
{
	unsigned char *o = out;
	size_t pad = 0, n;

	*outlen = 0;
	if (len % 4 != 0)
		goto invalid;
	if (len > 0 && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (b64_val(in[i]) < 0)
			goto invalid;
	/* the bits after the last octet must be zero: one spelling per octet string */
	if ((pad == 1 && (b64_val(in[len - 2]) & 3) != 0) ||
	    (pad == 2 && (b64_val(in[len - 3]) & 15) != 0))
		goto invalid;
	if ((n = len / 4 * 3 - pad) > size) {
		errno = EMSGSIZE;
		return -1;
	}
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = (uint32_t)b64_val(in[i]) << 18 | (uint32_t)b64_val(in[i + 1]) << 12;

		if (in[i + 2] != '=')
			v |= (uint32_t)b64_val(in[i + 2]) << 6;
		if (in[i + 3] != '=')
			v |= (uint32_t)b64_val(in[i + 3]);
		*o++ = (unsigned char)(v >> 16);
		if (in[i + 2] != '=')
			*o++ = (unsigned char)(v >> 8 & 0xff);
		if (in[i + 3] != '=')
			*o++ = (unsigned char)(v & 0xff);
	}
	*outlen = n;
	return 0;
invalid:
	errno = EINVAL;
	return -1;
}
