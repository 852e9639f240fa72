/*
 * http_json.c - JSON out of untrusted text, written safely (jansson)
 *
 * Owns:     the json_t values it returns (the caller takes them).
 * Lifetime: each call is independent.
 * Errors:   allocation failure returns NULL / -1; the caller answers 500.
 * Context:  event-loop thread.
 *
 * Addresses, header fields and replies come from SMTP peers: they may hold
 * any byte. jansson refuses bad UTF-8, so each string is first made valid
 * (every ill-formed sequence becomes U+FFFD, as the WHATWG decoder does),
 * and the output escapes <, > and & so that no byte of a response can be
 * read as markup even by a client that sniffs.
 */
#include "http/http_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/*
 * http_utf8_seq - length of the well-formed UTF-8 sequence at p (RFC 3629
 * table 3: no overlongs, no surrogates, nothing past U+10FFFF); 0 if ill-formed.
 */
static size_t
http_utf8_seq(const unsigned char *p, size_t n)
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

/* http_json_strn - a JSON string from len untrusted bytes (ill-formed UTF-8 and NUL to U+FFFD) */
json_t *
http_json_strn(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char *out;
	size_t i = 0, o = 0, k;
	json_t *j;

	for (i = 0; i < len; i += k)
		if ((k = http_utf8_seq(p + i, len - i)) == 0 || p[i] == 0)
			break;
	if (i == len)
		return json_stringn_nocheck(s, len);
	/* Each ill-formed byte and each NUL becomes U+FFFD: 3 bytes out per byte in. */
	if (len > (SIZE_MAX - 1) / 3 || (out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; ) {
		k = p[i] == 0 ? 0 : http_utf8_seq(p + i, len - i);
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

/* http_json_str - the same for a C string; NULL gives JSON null */
json_t *
http_json_str(const char *s)
{
	if (s == NULL)
		return json_null();
	return http_json_strn(s, strlen(s));
}

/* http_json_set - json_object_set_new that fails (-1) on a NULL value instead of crashing */
int
http_json_set(json_t *obj, const char *key, json_t *val)
{
	if (val == NULL)
		return -1;
	return json_object_set_new(obj, key, val);
}

/* http_json_out - jansson's dump callback: copy into the evbuffer, escaping <>& */
static int
http_json_out(const char *buf, size_t size, void *data)
{
	struct evbuffer *b = data;
	size_t start = 0;

	for (size_t i = 0; i < size; i++) {
		const char *esc;
		switch (buf[i]) {
		case '<': esc = "\\u003c"; break;
		case '>': esc = "\\u003e"; break;
		case '&': esc = "\\u0026"; break;
		default: continue;
		}
		/* These bytes appear in JSON text only inside strings. */
		if (evbuffer_add(b, buf + start, i - start) < 0 ||
		    evbuffer_add(b, esc, 6) < 0)
			return -1;
		start = i + 1;
	}
	return evbuffer_add(b, buf + start, size - start) < 0 ? -1 : 0;
}

/* http_json_dump - compact JSON into b with <, > and & escaped; 0 or -1 */
int
http_json_dump(const json_t *j, struct evbuffer *b)
{
	if (json_dump_callback(j, http_json_out, b, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
		return -1;
	return evbuffer_add(b, "\n", 1);
}
