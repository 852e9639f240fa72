/*
 * fuzz_http.c - libFuzzer harness for what src/http/ parses itself: the
 * Authorization header, the Host header against the names we answer to,
 * the cross-site check's Origin/Referer/Host, the queue filter's parameters, a message's header section, and untrusted
 * text turned into JSON (libevent parses the HTTP framing; jansson the
 * request bodies)
 *
 * Owns:     nothing that outlives one input.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * Input: the first octet picks the target; the rest, copied into an
 * exact-size heap block (so ASan sees reads past its end), is its input.
 * Targets wanting several strings split the rest at NUL octets.
 *
 * Invariants checked: an accepted Basic credential must decode (by the
 * harness's own base64 reader, which like RFC 4648 §3.5 decoders ignores
 * the unused bits of the last character: several encodings of one
 * credential exist and each may pass) to the expected one; JSON output is valid, round-trips to the same string, and has no
 * '<', '>' or '&' octet; the header list never exceeds its bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "http/http_int.h"
#include "queue/queue.h"

#define FUZZ_MAX (96 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char fuzz_want[HTTP_DIGEST_LEN];
static int fuzz_ready;

/* fuzz_split - up to n NUL-separated strings from s (len bytes, NUL-terminated at len) */
static size_t
fuzz_split(char *s, size_t len, const char **out, size_t n)
{
	size_t k = 0, i = 0;

	while (k < n && i <= len) {
		out[k++] = s + i;
		i += strlen(s + i) + 1;
	}
	return k;
}

/* fuzz_b64val - the value of a base64 character, -1 for others */
static int
fuzz_b64val(unsigned char c)
{
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

/*
 * fuzz_basic_is - does header carry "Basic " + a base64 text that decodes
 * to want? Decoded here, independently of the code under test.
 */
static int
fuzz_basic_is(const char *header, const char *want)
{
	unsigned char out[HTTP_MAX_AUTH_LEN];
	size_t n = 0, wl = strlen(want);
	unsigned acc = 0, bits = 0;
	const char *p = header;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Basic", 5) != 0)
		return 0;
	for (p += 5; *p == ' ' || *p == '\t'; p++)
		;
	for (; *p != '\0' && *p != '=' && *p != ' ' && *p != '\t'; p++) {
		int v = fuzz_b64val((unsigned char)*p);
		if (v < 0)
			return 0;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == sizeof(out))
				return 0;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return n == wl && memcmp(out, want, wl) == 0;
}

static void
fuzz_json(const char *s, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	json_t *j = jsonout_strn(s, len), *back;
	size_t n;
	unsigned char *out;

	if (b == NULL || j == NULL)
		abort();
	if (http_json_dump(j, b) < 0)
		abort();
	n = evbuffer_get_length(b);
	out = evbuffer_pullup(b, (ev_ssize_t)n);
	if (memchr(out, '<', n) != NULL || memchr(out, '>', n) != NULL ||
	    memchr(out, '&', n) != NULL)
		abort();
	back = json_loadb((const char *)out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (back == NULL || !json_equal(back, j))
		abort();
	json_decref(back);
	json_decref(j);
	evbuffer_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t len;
	const char *part[4];

	if (!fuzz_ready) {
		if (http_auth_digest("admin", "pa:ss", fuzz_want) < 0)
			abort();
		fuzz_ready = 1;
	}
	if (size < 1 || size > FUZZ_MAX)
		return 0;
	len = size - 1;
	if ((s = malloc(len + 1)) == NULL)
		return 0;
	memcpy(s, data + 1, len);
	s[len] = '\0';
	switch (data[0] % 6) {
	case 0: {
		enum http_auth_result r = http_auth_check(s, fuzz_want);
		/* Only "admin:pa:ss" may pass, in whichever base64 spelling. */
		if (r == HTTP_AUTH_OK && !fuzz_basic_is(s, "admin:pa:ss"))
			abort();
		break;
	}
	case 1: {
		static const struct http_names names = { "mx.example", "ui.example.net other.example" };
		const char *why = NULL;
		memset(part, 0, sizeof(part));
		fuzz_split(s, len, part, 4);
		if (http_auth_csrf_check(part[0], part[1], part[2], part[3], &names, len & 1, &why) < 0 &&
		    why == NULL)
			abort();
		/* A Host naming none of our names is refused. */
		if (http_auth_host_allowed(&names, s) && strstr(s, "evil") != NULL &&
		    strstr(s, "mx.example") == NULL)
			abort();
		break;
	}
	case 2: {
		struct http_filter f;
		struct queue_rcpt r[2];
		struct queue_msg m;
		char err[256];
		size_t n;

		memset(part, 0, sizeof(part));
		n = fuzz_split(s, len, part, 4);
		http_filter_init(&f, 1700000000ULL * 1000000);
		for (size_t i = 0; i + 1 < n; i += 2)
			http_filter_set(&f, part[i], part[i + 1], err, sizeof(err));
		memset(&m, 0, sizeof(m));
		memset(r, 0, sizeof(r));
		memcpy(m.id, "0123456789ABCDEF", QUEUE_ID_SIZE);
		m.sender = s;
		r[0].addr = (char *)(n > 1 ? part[1] : s);
		r[1].addr = (char *)"x@example.org";
		r[1].attempts = 1;
		m.rcpt = r;
		m.nrcpt = 2;
		m.arrival_us = 1600000000ULL * 1000000;
		(void)http_filter_match(&f, &m);
		(void)http_filter_parse_age(s);
		break;
	}
	case 3: {
		json_t *o = json_object();
		if (o == NULL)
			abort();
		if (http_headers_json(s, len, len & 1, o) == 0 &&
		    json_array_size(json_object_get(o, "headers")) > HTTP_MAX_DETAIL_LINES)
			abort();
		json_decref(o);
		break;
	}
	default:
		fuzz_json(s, len);
		break;
	}
	free(s);
	return 0;
}
