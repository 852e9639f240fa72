/*
 * http.c - the HTTP service on ui_address:ui_port (libevent evhttp): limits,
 * routing, authentication, security headers and delayed replies
 *
 * Owns:     the evhttp instance and its bound socket, the 10 s timer that
 *           feeds the history and the StatsD push, and the pending replies.
 * Lifetime: http_new() to http_free(); the socket is bound in http_new(),
 *           before privileges are dropped.
 * Errors:   bind failures are returned as text for SPEC §3's "Error: failed
 *           to initialize UI backend: <reason>"; a request's errors are
 *           replies (400, 401, 403, 404, 405, 413, 421, 429, 431, 500, 503).
 * Context:  event-loop thread: every handler answers from memory (the queue's
 *           in-memory envelopes); the one file read is /api/queue/ID's: the
 *           message's headers (bounded to 64 KiB) and its delivery history
 *           (the state records, bounded by QUEUE_HIST_READ_MAX).
 *
 * HTTP/1.0 and 1.1 with keep-alive are libevent's; it bounds the request line
 * plus headers (HTTP_MAX_HEADERS_SIZE: 431/400 past it) and the body
 * (HTTP_MAX_BODY: 413) and closes idle connections after HTTP_TIMEOUT_SECS.
 *
 * Connections pass through http_conn.c (caps, the whole-request deadline,
 * accept errors); HTTPS: once http_set_tls() gave a context (the SMTP
 * certificate, when ssl_disabled = no), http_conn_bev() wraps each new
 * connection in OpenSSL. Until main() calls it the service is plain HTTP.
 *
 * Order of the checks on a request: header count, target, Host (421),
 * route; then, except for /healthz and /readyz, the lockout after failed
 * logins (429) and the credentials (401); method (405); cross-site (403).
 */
#include "http/http.h"
#include "http/http_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/diskguard.h"
#include "metrics/metrics.h"
#include "metrics/metrics_push.h"
#include "queue/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

/*
 * Content-Security-Policy: scripts, styles and data from this origin only;
 * no inline script or style attribute, no framing, no plugins.
 */
#define HTTP_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; " \
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

enum {
	R_GET = 1, R_POST = 2, R_DELETE = 4,
	R_PREFIX = 8,            /* path starts with the pattern */
	R_OPEN = 16,             /* no authentication (health checks) */
};

struct http_route {
	const char *path;
	unsigned flags;
	http_handler_fn *fn;
};

static http_handler_fn http_healthz, http_readyz;
static http_handler_fn http_api_drain;

/* The first row that matches the path wins; a wrong method is 405. */
static const struct http_route http_routes[] = {
	{ "/healthz",           R_GET | R_OPEN,             http_healthz },
	{ "/readyz",            R_GET | R_OPEN,             http_readyz },
	{ "/metrics",           R_GET,                      http_api_metrics },
	{ "/api/stats",         R_GET,                      http_api_stats },
	{ "/api/history",       R_GET,                      http_api_history },
	{ "/api/queue",         R_GET,                      http_api_queue },
	{ "/api/qshape",        R_GET,                      http_api_qshape },
	{ "/api/destinations",  R_GET,                      http_api_destinations },
	{ "/api/queue/retry",   R_POST,                     http_api_bulk },
	{ "/api/queue/flush",   R_POST,                     http_api_bulk },
	{ "/api/queue/hold",    R_POST,                     http_api_bulk },
	{ "/api/queue/release", R_POST,                     http_api_bulk },
	{ "/api/queue/delete",  R_POST,                     http_api_bulk },
	{ "/api/queue/",        R_GET | R_POST | R_DELETE | R_PREFIX, http_api_message },
	{ "/api/drain",         R_POST,                     http_api_drain },
	{ "/",                  R_GET,                      http_ui_index },
	{ "/index.html",        R_GET,                      http_ui_index },
	{ "/assets/",           R_GET | R_PREFIX,           http_ui_asset },
};

/* http_is_head - whether the request is HEAD (answered like GET, without the body) */
int
http_is_head(struct evhttp_request *req)
{
	return evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
}

/*
 * http_reply - send body (may be NULL); for HEAD the length is announced
 * and the body left out (RFC 9110 §9.3.2).
 */
void
http_reply(struct evhttp_request *req, int code, const char *ctype, struct evbuffer *body)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	const char *reason;

	if (ctype != NULL)
		evhttp_add_header(oh, "Content-Type", ctype);
	switch (code) {
	case 200: reason = "OK"; break;
	case 202: reason = "Accepted"; break;
	case 304: reason = "Not Modified"; break;
	case 400: reason = "Bad Request"; break;
	case 401: reason = "Unauthorized"; break;
	case 403: reason = "Forbidden"; break;
	case 404: reason = "Not Found"; break;
	case 405: reason = "Method Not Allowed"; break;
	case 409: reason = "Conflict"; break;
	case 413: reason = "Content Too Large"; break;
	case 421: reason = "Misdirected Request"; break;
	case 429: reason = "Too Many Requests"; break;
	case 431: reason = "Request Header Fields Too Large"; break;
	case 503: reason = "Service Unavailable"; break;
	default:  reason = code < 400 ? "OK" : "Internal Server Error"; break;
	}
	if (http_is_head(req) && body != NULL) {
		char len[24];
		if (util_bsnprintf(len, sizeof(len), "%zu", evbuffer_get_length(body)) >= 0) {
			evhttp_remove_header(oh, "Content-Length");
			evhttp_add_header(oh, "Content-Length", len);
		}
		evbuffer_drain(body, evbuffer_get_length(body));
	}
	evhttp_send_reply(req, code, reason, body);
}

/* http_reply_json - send j (taken) as the JSON body; 500 when it cannot be written */
void
http_reply_json(struct evhttp_request *req, int code, json_t *j)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || j == NULL || http_json_dump(j, b) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		json_decref(j);
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	json_decref(j);
	http_reply(req, code, "application/json", b);
	evbuffer_free(b);
}

/* http_error - an error reply: {"error": msg} under /api/, plain text elsewhere */
void
http_error(struct evhttp_request *req, int code, const char *msg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b;

	if (uri != NULL && strncmp(uri, "/api/", 5) == 0) {
		json_t *j = json_object();
		if (j != NULL && jsonout_set(j, "error", jsonout_str(msg)) == 0) {
			http_reply_json(req, code, j);
			return;
		}
		json_decref(j);
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	evbuffer_add_printf(b, "%s\n", msg);
	http_reply(req, code, "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/* http_healthz - GET /healthz: "ok", without authentication, for health checks */
static void
http_healthz(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	struct evbuffer *b = evbuffer_new();

	(void)h; (void)path; (void)query;
	if (b == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	evbuffer_add(b, "ok\n", 3);
	http_reply(req, 200, "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/*
 * http_readyz - GET /readyz (SPEC §11.4): 200 "ready" while mtad accepts
 * mail; 503 with the reason while it starts (queue recovery), drains or
 * refuses mail for lack of disk space. No authentication.
 */
static void
http_readyz(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	const char *why = metrics_ready_reason(h->m);
	struct evbuffer *b = evbuffer_new();

	(void)path; (void)query;
	if (b == NULL) {
		evhttp_send_error(req, 500, "Internal Server Error");
		return;
	}
	evbuffer_add_printf(b, "%s\n", why != NULL ? why : "ready");
	http_reply(req, why != NULL ? 503 : 200, "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/* --- pending replies --------------------------------------------------- */

/* http_pending_fire - the timer of a pending reply fired: run its step */
static void
http_pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct http_pending *p = arg;

	(void)fd; (void)what;
	p->run(p);
}

/* http_pending_new - keep req unanswered and run run(p) after ms (see struct http_pending) */
struct http_pending *
http_pending_new(struct http *h, struct evhttp_request *req, unsigned ms,
    void (*run)(struct http_pending *), void (*drop)(struct http_pending *), void *job)
{
	struct http_pending *p;

	if (h->npending >= HTTP_MAX_PENDING || (p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->h = h;
	p->req = req;
	p->run = run;
	p->drop = drop;
	p->job = job;
	if ((p->ev = evtimer_new(h->base, http_pending_fire, p)) == NULL) {
		free(p);
		return NULL;
	}
	if (http_pending_again(p, ms) < 0) {
		event_free(p->ev);
		free(p);
		return NULL;
	}
	p->next = h->pending;
	if (h->pending != NULL)
		h->pending->prev = p;
	h->pending = p;
	h->npending++;
	return p;
}

/* http_pending_again - run the pending step again after ms */
int
http_pending_again(struct http_pending *p, unsigned ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	return evtimer_add(p->ev, &tv);
}

/* http_pending_done - unlink p from the service and free it (the caller answers p->req) */
void
http_pending_done(struct http_pending *p)
{
	struct http *h = p->h;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		h->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	h->npending--;
	if (p->drop != NULL)
		p->drop(p);
	event_free(p->ev);
	free(p);
}

/* --- authentication ------------------------------------------------------ */

/* http_unauthorized - 401 with the Basic realm (RFC 7617 §2) */
static void
http_unauthorized(struct evhttp_request *req)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
	    "Basic realm=\"mtad\", charset=\"UTF-8\"");
	http_error(req, 401, "authentication required");
}

/*
 * http_peer - the client's address as text, for the log, the failure table
 * (unknown "") and the log lines of queue actions (unknown "?")
 */
void
http_peer(struct evhttp_request *req, char *buf, size_t size, const char *unknown)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (c != NULL)
		evhttp_connection_get_peer(c, &addr, &port);
	util_strlcpy(buf, addr != NULL ? addr : unknown, size);
}

/*
 * http_locked_out - 1 when the client is locked out after failed logins
 * (SPEC §11.1): answered 429 with Retry-After, whatever it sends
 */
static int
http_locked_out(struct http *h, struct evhttp_request *req)
{
	char peer[64], secs[24];
	unsigned left;

	if (!h->auth_on)
		return 0;
	http_peer(req, peer, sizeof(peer), "");
	if ((left = http_auth_locked(&h->fails, peer, util_mono_us())) == 0)
		return 0;
	if (util_bsnprintf(secs, sizeof(secs), "%u", left) >= 0)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", secs);
	http_error(req, 429, "too many failed logins from this address, try again later");
	return 1;
}

/*
 * http_authorize - 1 when the request may go on; 0 when a 401 was sent.
 * Wrong credentials count towards the lockout of the client's address;
 * the log says so at most once a second per address, with a count.
 */
static int
http_authorize(struct http *h, struct evhttp_request *req)
{
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(ih, "Authorization");
	char peer[64];
	unsigned nlog = 0;

	if (!h->auth_on)
		return 1;
	if (auth != NULL && strlen(auth) > HTTP_MAX_AUTH_LEN)
		auth = NULL;
	switch (http_auth_check(auth, h->auth_want)) {
	case HTTP_AUTH_OK:
		return 1;
	case HTTP_AUTH_MISSING:
		http_unauthorized(req);
		return 0;
	case HTTP_AUTH_BAD:
		break;
	}
	http_peer(req, peer, sizeof(peer), "");
	if (http_auth_fail(&h->fails, peer, util_mono_us(), &nlog))
		log_warnx("http: %s: authentication failed %u times in %u minutes: "
		    "every request from it refused (429) for %u minutes", peer, HTTP_LOCK_FAILS,
		    (unsigned)(HTTP_LOCK_WINDOW_US / 60000000), (unsigned)(HTTP_LOCK_US / 60000000));
	else if (nlog == 1)
		log_warnx("http: %s: authentication failed", peer);
	else if (nlog > 1)
		log_warnx("http: %s: authentication failed (%u times since the last report)",
		    peer, nlog);
	http_unauthorized(req);
	return 0;
}

/* --- dispatch ------------------------------------------------------------- */

/* http_security_headers - the headers every response carries (CSP, nosniff, framing, referrer) */
static void
http_security_headers(struct evhttp_request *req)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	evhttp_add_header(oh, "Content-Security-Policy", HTTP_CSP);
	evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(oh, "X-Frame-Options", "DENY");
	evhttp_add_header(oh, "Referrer-Policy", "same-origin");
	evhttp_add_header(oh, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(oh, "Cross-Origin-Resource-Policy", "same-origin");
	evhttp_add_header(oh, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
}

/* http_route_match - does path match the route (exact, or as a prefix)? */
static int
http_route_match(const struct http_route *r, const char *path)
{
	if (r->flags & R_PREFIX)
		return strncmp(path, r->path, strlen(r->path)) == 0;
	return strcmp(path, r->path) == 0;
}

/* http_dispatch - every request: limits, route, authentication, method, cross-site check, handler */
static void
http_dispatch(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	struct evkeyvalq query;
	const struct http_route *r = NULL;
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *qs = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	const struct evkeyval *kv;
	unsigned method, nhdr = 0;
	const char *why;

	TAILQ_INIT(&query);
	http_conn_request(h, req);
	evhttp_request_set_on_complete_cb(req, http_conn_replied, h);
	http_security_headers(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	TAILQ_FOREACH(kv, ih, next)
		nhdr++;
	if (nhdr > HTTP_MAX_HEADER_COUNT) {
		http_error(req, 431, "too many header fields");
		return;
	}
	if (path == NULL || path[0] != '/') {
		http_error(req, 400, "bad request target");
		return;
	}
	/* SPEC §11.1: a page that rebound its own name to us names itself here. */
	if (!http_auth_host_allowed(&h->names, evhttp_find_header(ih, "Host"))) {
		http_error(req, 421, "this server does not answer to that host name (see ui_hosts)");
		return;
	}
	switch (cmd) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:   method = R_GET; break;
	case EVHTTP_REQ_POST:   method = R_POST; break;
	case EVHTTP_REQ_DELETE: method = R_DELETE; break;
	default:
		http_error(req, 405, "method not allowed");
		return;
	}
	for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++)
		if (http_route_match(&http_routes[i], path)) {
			r = &http_routes[i];
			break;
		}
	log_trace(TRACE_HTTP, "http: %s %s", method == R_GET ? "GET" :
	    method == R_POST ? "POST" : "DELETE", path);
	if (r == NULL || !(r->flags & R_OPEN)) {
		/* Authentication first: an unknown path says nothing to a stranger. */
		if (http_locked_out(h, req) || !http_authorize(h, req))
			return;
	}
	if (r == NULL) {
		http_error(req, 404, "not found");
		return;
	}
	if (!(r->flags & method)) {
		char allow[40];
		util_bsnprintf(allow, sizeof(allow), "%s%s%s",
		    r->flags & R_GET ? "GET, HEAD" : "",
		    r->flags & R_POST ? (r->flags & R_GET ? ", POST" : "POST") : "",
		    r->flags & R_DELETE ? ", DELETE" : "");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		http_error(req, 405, "method not allowed");
		return;
	}
	if (method != R_GET && http_auth_csrf_check(evhttp_find_header(ih, "X-Requested-With"),
	    evhttp_find_header(ih, "Origin"), evhttp_find_header(ih, "Referer"),
	    evhttp_find_header(ih, "Host"), &h->names, h->tls != NULL, &why) < 0) {
		char peer[64];
		http_peer(req, peer, sizeof(peer), "");
		log_warnx("http: %s: refused cross-site request for %s: %s", peer, path, why);
		http_error(req, 403, why);
		return;
	}
	if (qs != NULL && evhttp_parse_query_str(qs, &query) < 0) {
		http_error(req, 400, "malformed query string");
		return;
	}
	r->fn(h, req, path, &query);
	evhttp_clear_headers(&query);
}

/* --- the 10 s tick: history and StatsD -------------------------------------- */

/* http_push_now - one StatsD datagram, when metrics_push is set */
static void
http_push_now(struct http *h)
{
	if (h->push != NULL)
		metrics_push_send(h->push, h->m, queue_count(h->q),
		    (queue_bytes(h->q) + 1023) / 1024);
}

/* http_persist_now - a copy of the totals and the history for the writer thread */
static void
http_persist_now(struct http *h)
{
	unsigned char *buf;
	size_t len;

	if (h->persist == NULL)
		return;
	if ((buf = http_persist_encode(h->m, &h->hist, util_now_us() / 1000000, &len)) == NULL) {
		log_warnx("stats: out of memory; not saved this time");
		return;
	}
	http_persist_save(h->persist, buf, len);
}

/* http_tick - every HTTP_FINE_SECS: a history sample and a StatsD push; a save every minute */
static void
http_tick(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	(void)fd; (void)what;
	http_api_tick_sample(h);
	http_push_now(h);
	if (++h->ticks % HTTP_PERSIST_TICKS == 0)
		http_persist_now(h);
}

/* http_push_first - a sample and a push soon after start, so graphs and StatsD do not wait 10 s */
static void
http_push_first(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	http_api_tick_sample(arg);
	http_push_now(arg);
}

/*
 * http_apply_config - what depends on the configuration. The credentials
 * must apply (-1 otherwise: the caller keeps the old ones). A StatsD target
 * that cannot be used is a warning: monitoring never stops the relay, and
 * the previous target (if any) is kept.
 */
static int
http_apply_config(struct http *h, const struct config *cfg, int startup,
    char *err, size_t errlen)
{
	const char *url = cfg->metrics_push != NULL ? cfg->metrics_push : "";
	unsigned char want[HTTP_DIGEST_LEN] = { 0 };
	int on = cfg->username != NULL && cfg->username[0] != '\0';
	char perr[512];

	if (on && http_auth_digest(cfg->username, cfg->password != NULL ? cfg->password : "",
	    want) < 0) {
		util_bsnprintf(err, errlen, "cannot compute the credentials' digest");
		return -1;
	}
	h->auth_on = on;
	memcpy(h->auth_want, want, sizeof(want));
	OPENSSL_cleanse(want, sizeof(want));
	h->cfg = cfg;
	h->names.hostname = cfg->hostname;
	h->names.ui_hosts = cfg->ui_hosts != NULL ? cfg->ui_hosts : "";
	h->max_conns = cfg->ui_max_connections != 0 ? cfg->ui_max_connections : 256;

	if (url[0] == '\0') {
		h->push = metrics_push_free(h->push);
		free(h->push_url);
		h->push_url = NULL;
	} else if (h->push_url == NULL || strcmp(url, h->push_url) != 0) {
		struct metrics_push *np = metrics_push_new(url, startup, perr, sizeof(perr));
		char *u = np != NULL ? strdup(url) : NULL;
		if (np == NULL || u == NULL) {
			log_warnx("%s; %s", np == NULL ? perr : "metrics_push: out of memory",
			    h->push != NULL ? "still pushing to the previous target" :
			    "not pushing metrics");
			metrics_push_free(np);
			return 0;
		}
		metrics_push_free(h->push);
		free(h->push_url);
		h->push = np;
		h->push_url = u;
	}
	return 0;
}

/* http_new - bind ui_address:ui_port and start the service (before privileges are dropped) */
struct http *
http_new(struct event_base *base, const struct config *cfg, struct queue *q,
    struct metrics *m, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	struct timeval tick = { HTTP_FINE_SECS, 0 }, soon = { 1, 0 };
	struct evhttp_bound_socket *bound;

	if (h == NULL) {
		util_bsnprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->base = base;
	h->q = q;
	h->m = m;
	/*
	 * The free space of data_dir after privileges are dropped: the path's
	 * parents may not be searchable by mail_owner, an open descriptor is.
	 */
	h->disk = diskguard_new(cfg->data_dir);
	if (http_history_init(&h->hist) < 0) {
		util_bsnprintf(err, errlen, "out of memory");
		goto fail;
	}
	/*
	 * The totals and graphs of the previous run (SPEC §7: counters stay
	 * monotonic across a restart). Nothing has counted yet: the loop has
	 * not run. A bad file is a warning, and the counters start from zero.
	 */
	if ((h->persist = http_persist_start(cfg->data_dir)) != NULL &&
	    http_persist_load(http_persist_dirfd(h->persist), util_now_us() / 1000000, m,
	    &h->hist) > 0)
		log_info("stats: totals and graphs restored from %s/%s", cfg->data_dir,
		    HTTP_PERSIST_FILE);
	if (!h->hist.have_last) {
		/* what is counted from now on, also before the first tick, is graphed */
		h->hist.last[HTTP_H_ACCEPTED] = m->accepted;
		h->hist.last[HTTP_H_DELIVERED] = m->delivered;
		h->hist.last[HTTP_H_DEFERRED] = m->deferred;
		h->hist.last[HTTP_H_BOUNCED] = m->bounced;
		h->hist.last[HTTP_H_REJECTED] = m->rejected;
		h->hist.have_last = 1;
	}
	if (http_apply_config(h, cfg, 1, err, errlen) < 0)
		goto fail;
	if ((h->evh = evhttp_new(base)) == NULL) {
		util_bsnprintf(err, errlen, "cannot create the HTTP server");
		goto fail;
	}
	evhttp_set_max_headers_size(h->evh, HTTP_MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(h->evh, HTTP_MAX_BODY);
	evhttp_set_timeout(h->evh, HTTP_TIMEOUT_SECS);
	/* Others get libevent's 501; these reach http_dispatch() (405 for the last three). */
	evhttp_set_allowed_methods(h->evh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_OPTIONS);
	evhttp_set_default_content_type(h->evh, "text/plain; charset=utf-8");
	evhttp_set_gencb(h->evh, http_dispatch, h);
	errno = 0;
	if ((bound = evhttp_bind_socket_with_handle(h->evh, cfg->ui_address,
	    (ev_uint16_t)cfg->ui_port)) == NULL) {
		util_bsnprintf(err, errlen, "cannot listen on %s:%d: %s",
		    cfg->ui_address, cfg->ui_port,
		    errno ? strerror(errno) : "bind failed");
		goto fail;
	}
	if (http_conn_init(h, bound) < 0) {
		util_bsnprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((h->tick = event_new(base, -1, EV_PERSIST, http_tick, h)) == NULL ||
	    event_add(h->tick, &tick) < 0 ||
	    (h->push_soon = evtimer_new(base, http_push_first, h)) == NULL ||
	    evtimer_add(h->push_soon, &soon) < 0) {
		util_bsnprintf(err, errlen, "cannot start the statistics timer");
		goto fail;
	}
	h->persist_on = 1;
	return h;
fail:
	http_free(h);
	return NULL;
}

/*
 * http_api_drain - POST /api/drain (mtactl drain, SPEC §11.4): ask the
 * daemon to drain; 202 at once, the drain runs on (the process then exits)
 */
static void
http_api_drain(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	json_t *j;

	(void)path; (void)query;
	if (h->drain_fn == NULL) {
		http_error(req, 503, "drain is not available");
		return;
	}
	h->drain_fn(h->drain_arg);
	j = json_pack("{s:b}", "draining", 1);
	http_reply_json(req, 202, j);       /* NULL: 500 */
}

/* http_set_drain - what POST /api/drain calls (fn(arg)); NULL = 503 */
void
http_set_drain(struct http *h, void (*fn)(void *arg), void *arg)
{
	h->drain_fn = fn;
	h->drain_arg = arg;
}

/* http_set_sched - the scheduler, for the actions (borrowed; set once it exists) */
void
http_set_sched(struct http *h, struct sched *s)
{
	h->sched = s;
}

/* http_set_config - SIGHUP: new credentials and StatsD target; the listener stays */
void
http_set_config(struct http *h, const struct config *cfg)
{
	char err[512];

	if (http_apply_config(h, cfg, 0, err, sizeof(err)) < 0) {
		log_warnx("http: keeping the previous credentials: %s", err);
		h->cfg = cfg;
	}
}

/* http_set_tls - serve HTTPS to new connections from now on (NULL: plain; see http_conn_bev) */
void
http_set_tls(struct http *h, struct ssl_ctx_st *ctx)
{
	h->tls = ctx;
}

/* http_free - answer what is pending, close every connection and the listener, free */
struct http *
http_free(struct http *h)
{
	if (h == NULL)
		return NULL;
	/* Answer what still waits while the connections exist. */
	while (h->pending != NULL) {
		struct evhttp_request *req = h->pending->req;
		http_pending_done(h->pending);
		http_error(req, 503, "shutting down");
	}
	if (h->evh != NULL)
		evhttp_free(h->evh);
	http_conn_detach(h);
	/* the last save: a clean stop loses nothing (a kill -9 at most a minute) */
	if (h->persist != NULL && h->persist_on) {
		unsigned char *last;
		size_t len;

		http_api_tick_sample(h);
		last = http_persist_encode(h->m, &h->hist, util_now_us() / 1000000, &len);
		h->persist = http_persist_stop(h->persist, last, last != NULL ? len : 0);
	} else
		h->persist = http_persist_stop(h->persist, NULL, 0);
	if (h->tick != NULL)
		event_free(h->tick);
	if (h->push_soon != NULL)
		event_free(h->push_soon);
	metrics_push_free(h->push);
	free(h->push_url);
	http_history_free(&h->hist);
	OPENSSL_cleanse(h->auth_want, sizeof(h->auth_want));
	h->disk = diskguard_free(h->disk);
	free(h);
	return NULL;
}
