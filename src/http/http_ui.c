/*
 * http_ui.c - the dashboard's files, served from the binary
 *
 * Owns:     nothing: the assets are constant data generated into
 *           http_assets.c by tools/embed_assets.py from src/http/assets/.
 * Lifetime: static.
 * Errors:   an unknown asset is 404.
 * Context:  event-loop thread; replies reference the constant bytes (no copy).
 *
 * Each asset has an ETag from its SHA-256, so browsers revalidate with
 * If-None-Match and get 304; a gzip copy is sent to clients that accept it.
 */
#include "http/http_int.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* http_ui_asset_find - the embedded file served at path, or NULL */
const struct http_asset *
http_ui_asset_find(const char *path)
{
	for (size_t i = 0; i < http_assets_count; i++)
		if (strcmp(http_assets[i].path, path) == 0)
			return &http_assets[i];
	return NULL;
}

/* http_accepts_gzip - Accept-Encoding names gzip without q=0 (RFC 9110 §12.5.3) */
static int
http_accepts_gzip(const char *ae)
{
	const char *p;

	if (ae == NULL || (p = strcasestr(ae, "gzip")) == NULL)
		return 0;
	p += 4;
	while (*p == ' ')
		p++;
	if (*p != ';')
		return 1;
	p++;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "q=0", 3) != 0)
		return 1;
	p += 3;
	if (*p == '.')
		p++;
	while (*p == '0')
		p++;
	return *p >= '1' && *p <= '9';
}

/* http_etag_match - If-None-Match lists our tag, or is "*" (RFC 9110 §13.1.2) */
static int
http_etag_match(const char *inm, const char *etag)
{
	if (inm == NULL)
		return 0;
	return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

/* http_send_asset - an embedded file, gzip when accepted, 304 when the ETag matches */
static void
http_send_asset(struct evhttp_request *req, const struct http_asset *a)
{
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *b;
	int gz = a->gz != NULL && http_accepts_gzip(evhttp_find_header(ih, "Accept-Encoding"));

	evhttp_remove_header(oh, "Cache-Control");
	evhttp_add_header(oh, "Cache-Control", "no-cache");
	evhttp_add_header(oh, "ETag", a->etag);
	if (a->gz != NULL)
		evhttp_add_header(oh, "Vary", "Accept-Encoding");
	if (http_etag_match(evhttp_find_header(ih, "If-None-Match"), a->etag)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	if (gz)
		evhttp_add_header(oh, "Content-Encoding", "gzip");
	if (evbuffer_add_reference(b, gz ? a->gz : a->data, gz ? a->gzlen : a->len,
	    NULL, NULL) < 0) {
		evbuffer_free(b);
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	http_reply(req, 200, a->ctype, b);
	evbuffer_free(b);
}

/* http_ui_index - GET / (and /index.html): the dashboard page */
void
http_ui_index(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	const struct http_asset *a = http_ui_asset_find("/assets/index.html");

	(void)h; (void)path; (void)query;
	if (a == NULL) {
		http_error(req, 404, "the dashboard is not built into this binary");
		return;
	}
	http_send_asset(req, a);
}

/* http_ui_asset - GET /assets/...: one of the dashboard's files */
void
http_ui_asset(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	const struct http_asset *a = http_ui_asset_find(path);

	(void)h; (void)query;
	if (a == NULL) {
		http_error(req, 404, "not found");
		return;
	}
	http_send_asset(req, a);
}
