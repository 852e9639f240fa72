/*
 * metrics_prom.h - the Prometheus text format of mtad's metrics
 *
 * Owns:     nothing: the values are the caller's, copied into the text.
 * Lifetime: stateless.
 * Errors:   metrics_prom_format() returns -1 when the buffer cannot grow.
 * Context:  any thread (the HTTP service calls it on the event loop).
 */
#ifndef MTAD_METRICS_PROM_H
#define MTAD_METRICS_PROM_H

#include <stdint.h>

struct evbuffer;

/* What /metrics shows: a snapshot taken by its caller. */
struct metrics_prom_values {
	uint64_t now_us, start_us;
	/* the queue */
	uint64_t queue_messages, queue_bytes, queue_rcpts;
	uint64_t n_active, n_deferred, n_held;
	uint64_t oldest_arrival_us;        /* 0 = queue empty */
	/* struct metrics */
	uint64_t sessions_active, sessions_total, tls_sessions;
	uint64_t accepted, accepted_bytes, rejected;
	uint64_t delivered, deferred, bounced, dkim_signed;
	uint64_t auth_sessions, auth_sessions_active, auth_failures;   /* SMTP AUTH */
	const uint64_t *latency_bucket;    /* per bucket, not cumulative */
	const double *latency_bounds;      /* upper bounds; the last bucket is +Inf */
	int      latency_buckets;
	double   latency_sum;
	uint64_t latency_count;
	/* data_dir's file system */
	int      disk_known;
	double   disk_free_pct;
	int      disk_state;               /* 0 ok, 1 below 5 %, 2 below 1 % */
};

/*
 * metrics_prom_format - every metric in the text exposition format 0.0.4
 * (HELP, TYPE and sample lines; the latency as a histogram) into b. 0 or -1.
 */
int metrics_prom_format(const struct metrics_prom_values *v, struct evbuffer *b);

#endif
