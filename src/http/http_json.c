/*
 * http_json.c - JSON responses written safely (jansson): markup-proof dump
 *
 * Owns:     the json_t values it returns (the caller takes them).
 * Lifetime: each call is independent.
 * Errors:   allocation failure returns NULL / -1; the caller answers 500.
 * Context:  event-loop thread.
 *
 * Strings from SMTP peers are made valid UTF-8 by src/lib/jsonout.c; the
 * output here escapes <, > and & so that no byte of a response can be
 * read as markup even by a client that sniffs.
 */
#include "http/http_int.h"

#include <string.h>

#include <event2/buffer.h>

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
