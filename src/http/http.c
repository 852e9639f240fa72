/*
 * http.c - the HTTP service on ui_address:ui_port (libevent evhttp)
 *
 * Owns:     the evhttp instance and its bound socket.
 * Lifetime: http_new() to http_free().
 * Errors:   bind failures are returned as text; request errors are replies.
 * Context:  event-loop thread.
 *
 * For now it serves /healthz and /metrics; the dashboard and the JSON API
 * are the web UI's work.
 */
#include "http/http.h"
#include "lib/util.h"
#include "mail/config.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

struct http {
	struct evhttp *evh;
	const struct config *cfg;
	struct queue *q;
	struct metrics *m;
	struct sched *sched;
};

static void
http_reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static void
http_healthz(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	(void)arg;
	if (b == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add_printf(b, "ok\n");
	http_reply_text(req, 200, "OK", "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

/* http_metrics - Prometheus text exposition format 0.0.4 */
static void
http_metrics(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	struct metrics *m = h->m;
	struct evbuffer *b = evbuffer_new();
	uint64_t cum = 0;

	if (b == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add_printf(b,
	    "# HELP mta_queue_messages Messages in the queue.\n"
	    "# TYPE mta_queue_messages gauge\nmta_queue_messages %llu\n"
	    "# HELP mta_queue_kilobytes Size of the queue in kilobytes.\n"
	    "# TYPE mta_queue_kilobytes gauge\nmta_queue_kilobytes %llu\n"
	    "# HELP mta_smtp_sessions_active Active inbound SMTP sessions.\n"
	    "# TYPE mta_smtp_sessions_active gauge\nmta_smtp_sessions_active %llu\n"
	    "# TYPE mta_messages_accepted_total counter\nmta_messages_accepted_total %llu\n"
	    "# TYPE mta_messages_rejected_total counter\nmta_messages_rejected_total %llu\n"
	    "# TYPE mta_recipients_delivered_total counter\nmta_recipients_delivered_total %llu\n"
	    "# TYPE mta_recipients_deferred_total counter\nmta_recipients_deferred_total %llu\n"
	    "# TYPE mta_recipients_bounced_total counter\nmta_recipients_bounced_total %llu\n"
	    "# TYPE mta_smtp_sessions_total counter\nmta_smtp_sessions_total %llu\n"
	    "# TYPE mta_tls_sessions_total counter\nmta_tls_sessions_total %llu\n",
	    (unsigned long long)queue_count(h->q),
	    (unsigned long long)((queue_bytes(h->q) + 1023) / 1024),
	    (unsigned long long)m->sessions_active,
	    (unsigned long long)m->accepted, (unsigned long long)m->rejected,
	    (unsigned long long)m->delivered, (unsigned long long)m->deferred,
	    (unsigned long long)m->bounced, (unsigned long long)m->sessions_total,
	    (unsigned long long)m->tls_sessions);
	evbuffer_add_printf(b, "# TYPE mta_delivery_latency_seconds histogram\n");
	for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
		cum += m->latency_bucket[i];
		if (i == METRICS_LATENCY_BUCKETS - 1)
			evbuffer_add_printf(b, "mta_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
		else
			evbuffer_add_printf(b, "mta_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n",
			    metrics_latency_bounds[i], (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "mta_delivery_latency_seconds_sum %.6f\n"
	    "mta_delivery_latency_seconds_count %llu\n",
	    m->latency_sum, (unsigned long long)m->latency_count);
	http_reply_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

static void
http_notfound(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "Not Found");
}

struct http *
http_new(struct event_base *base, const struct config *cfg, struct queue *q,
    struct metrics *m, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		util_bsnprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->q = q;
	h->m = m;
	if ((h->evh = evhttp_new(base)) == NULL) {
		util_bsnprintf(err, errlen, "cannot create HTTP server");
		goto fail;
	}
	evhttp_set_max_headers_size(h->evh, 16384);
	evhttp_set_max_body_size(h->evh, 65536);
	evhttp_set_timeout(h->evh, 30);
	evhttp_set_allowed_methods(h->evh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_cb(h->evh, "/healthz", http_healthz, h);
	evhttp_set_cb(h->evh, "/metrics", http_metrics, h);
	evhttp_set_gencb(h->evh, http_notfound, h);
	errno = 0;
	if (evhttp_bind_socket_with_handle(h->evh, cfg->ui_address,
	    (ev_uint16_t)cfg->ui_port) == NULL) {
		util_bsnprintf(err, errlen, "cannot listen on %s:%d: %s",
		    cfg->ui_address, cfg->ui_port,
		    errno ? strerror(errno) : "bind failed");
		goto fail;
	}
	return h;
fail:
	http_free(h);
	return NULL;
}

void http_set_sched(struct http *h, struct sched *s) { h->sched = s; }
void http_set_config(struct http *h, const struct config *cfg) { h->cfg = cfg; }

struct http *
http_free(struct http *h)
{
	if (h == NULL)
		return NULL;
	if (h->evh != NULL)
		evhttp_free(h->evh);
	free(h);
	return NULL;
}
