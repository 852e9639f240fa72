/*
 * http.h - the web UI, HTTP/JSON API and /metrics (public interface of src/http/)
 *
 * Owns:     the UI listener and every HTTP connection.
 * Lifetime: http_new() to http_free(); the socket is bound in http_new()
 *           (before privileges are dropped).
 * Errors:   http_new() returns NULL with a reason in err (main prints
 *           "Error: failed to initialize UI backend: <reason>").
 * Context:  event-loop thread.
 */
#ifndef MTAD_HTTP_H
#define MTAD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue_view.h"

struct event_base;
struct config;
struct queue;
struct metrics;
struct sched;
struct http;

struct http *http_new(struct event_base *base, const struct config *cfg,
    struct queue *q, struct metrics *m, char *err, size_t errlen);
/* http_set_sched - the scheduler, for actions (flush); borrowed */
void http_set_sched(struct http *h, struct sched *s);
/* http_set_drain - POST /api/drain calls fn(arg) (mtactl drain); NULL = 503 */
void http_set_drain(struct http *h, void (*fn)(void *arg), void *arg);
/* http_set_config - SIGHUP: credentials and metrics_push; cfg borrowed */
void http_set_config(struct http *h, const struct config *cfg);
/*
 * http_set_tls - serve HTTPS with this context (the SMTP certificate) from
 * now on; NULL = plain HTTP. ctx borrowed: it must outlive h. The TLS code
 * calls it when ssl_disabled = no.
 */
struct ssl_ctx_st;
void http_set_tls(struct http *h, struct ssl_ctx_st *ctx);
struct http *http_free(struct http *h);

struct queue_msg;

/*
 * --- the API's queue filter (http_filter.c) ---------------------------------
 * The criteria of GET /api/queue and the bulk actions (docs/web-ui.md).
 * mtactl applies the same filter to data_dir's messages while mtad is
 * stopped, so both answer alike; it is pure (no web server state).
 */

/*
 * A filter over the in-memory queue. Strings are borrowed from the request
 * (its parsed query) and must outlive the filter.
 */
struct http_filter {
	const char *q;          /* free text: id, sender or recipient contains */
	const char *sender;     /* sender contains (case-insensitive) */
	const char *rcpt;       /* some recipient contains */
	const char *domain;     /* some recipient's domain is or ends in .domain */
	const char *id;         /* exact queue id */
	enum queue_view_state state;
	int64_t min_age;        /* seconds; -1 = none */
	int64_t max_age;
	uint64_t now_us;        /* wall clock the ages are measured against */
	int any;                /* some criterion was given */
};

void http_filter_init(struct http_filter *f, uint64_t now_us);
/*
 * http_filter_set - apply one query parameter: 0 used, 1 not a filter key
 * (the caller may know it), -1 bad value (reason in err).
 */
int http_filter_set(struct http_filter *f, const char *key, const char *value,
    char *err, size_t errlen);
int http_filter_match(const struct http_filter *f, const struct queue_msg *m);
/* http_filter_parse_age - "90", "90s", "15m", "2h", "3d" -> seconds; -1 on error */
int64_t http_filter_parse_age(const char *s);

#endif
