/*
 * jsonout.c - JSON strings out of untrusted text (jansson): any bytes in,
 *             a valid JSON string out
 *
 * Owns:     the json_t values it returns (the caller takes them).
 * Lifetime: each call is independent.
 * Errors:   allocation failure returns NULL / -1.
 * Context:  any thread.
 *
 * Addresses, header fields and replies come from SMTP peers: they may hold
 * any byte. jansson refuses bad UTF-8, so each string is first made valid
 * (every ill-formed sequence and every NUL becomes U+FFFD, as the WHATWG
 * decoder does). Used by the HTTP API and by mtactl (src/queue/queue_view.c).
 */
#include "lib/jsonout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * jsonout_utf8_seq - length of the well-formed UTF-8 sequence at p (RFC 3629
 * table 3: no overlongs, no surrogates, nothing past U+10FFFF); 0 if ill-formed.
 */
static size_t
jsonout_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		unsigned char lo = 0x80, hi = 0xBF;
		if (c == 0xE0)
			lo = 0xA0;
		if (c == 0xED)
			hi = 0x9F;
		if (n < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		unsigned char lo = 0x80, hi = 0xBF;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
		if (n < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
		    (p[3] & 0xC0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/* jsonout_strn - a JSON string from len untrusted bytes (ill-formed UTF-8 and NUL to U+FFFD) */
json_t *
jsonout_strn(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char *out;
	size_t i = 0, o = 0, k;
	json_t *j;

	for (i = 0; i < len; i += k)
		if ((k = jsonout_utf8_seq(p + i, len - i)) == 0 || p[i] == 0)
			break;
	if (i == len)
		return json_stringn_nocheck(s, len);
	/* Each ill-formed byte and each NUL becomes U+FFFD: 3 bytes out per byte in. */
	if (len > (SIZE_MAX - 1) / 3 || (out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; ) {
		k = p[i] == 0 ? 0 : jsonout_utf8_seq(p + i, len - i);
		if (k == 0) {
			out[o++] = 0xEF;
			out[o++] = 0xBF;
			out[o++] = 0xBD;
			i++;
			continue;
		}
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
	j = json_stringn_nocheck((const char *)out, o);
	free(out);
	return j;
}

/* jsonout_str - the same for a C string; NULL gives JSON null */
json_t *
jsonout_str(const char *s)
{
	if (s == NULL)
		return json_null();
	return jsonout_strn(s, strlen(s));
}

/* jsonout_set - json_object_set_new that fails (-1) on a NULL value instead of crashing */
int
jsonout_set(json_t *obj, const char *key, json_t *val)
{
	if (val == NULL)
		return -1;
	return json_object_set_new(obj, key, val);
}
