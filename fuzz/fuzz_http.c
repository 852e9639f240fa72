/*
 * fuzz_http.c - libFuzzer harness for what src/http/ parses itself: the
 * Authorization header, the cross-site check's Origin/Referer/Host, the
 * queue filter's parameters, a message's header section, and untrusted
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
 * Invariants checked: an accepted Basic credential must be the expected
 * one; JSON output is valid, round-trips to the same string, and has no
 * '<', '>' or '&' octet; the header list never exceeds its bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static void
fuzz_json(const char *s, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	json_t *j = http_json_strn(s, len), *back;
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
		/* Only "admin:pa:ss" ("YWRtaW46cGE6c3M=") may pass. */
		if (r == HTTP_AUTH_OK && strstr(s, "YWRtaW46cGE6c3M=") == NULL)
			abort();
		break;
	}
	case 1: {
		const char *why = NULL;
		memset(part, 0, sizeof(part));
		fuzz_split(s, len, part, 4);
		if (http_csrf_check(part[0], part[1], part[2], part[3], len & 1, &why) < 0 &&
		    why == NULL)
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
		(void)http_parse_age(s);
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
