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

#endif
