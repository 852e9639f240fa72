/*
 * metrics.h - the relay's counters (SPEC §7)
 *
 * Owns:     struct metrics, one per process, allocated by main().
 * Lifetime: process-wide.
 * Errors:   none.
 * Context:  event-loop thread only (no atomics needed).
 *
 * Each field has one writer, named beside it; everyone else reads.
 */
#ifndef MTAD_METRICS_H
#define MTAD_METRICS_H

#include <stdint.h>

#define METRICS_LATENCY_BUCKETS 12

struct metrics {
	uint64_t start_us;              /* main */
	/* smtpd */
	uint64_t sessions_active;
	uint64_t sessions_total;
	uint64_t tls_sessions;
	uint64_t dkim_signed;           /* messages given DKIM signatures (smtpd_dkim.c) */
	uint64_t accepted;              /* messages committed (one per message) */
	uint64_t accepted_bytes;
	uint64_t rejected;              /* 4xx/5xx replies to MAIL/RCPT/DATA and refused connections */
	/* sched */
	uint64_t delivered;             /* per recipient */
	uint64_t deferred;              /* per recipient attempt */
	uint64_t bounced;               /* per recipient */
	uint64_t latency_bucket[METRICS_LATENCY_BUCKETS]; /* delivery latency histogram, cumulative on output */
	double   latency_sum;           /* seconds */
	uint64_t latency_count;
	/* smtpd disk guard */
	int      disk_state;            /* 0 ok, 1 below 5 % free, 2 below 1 % free */
};

/* Upper bounds in seconds of latency_bucket[i]; the last is +Inf. */
extern const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS];

/* metrics_observe_latency - record one delivery's latency (sched) */
void metrics_observe_latency(struct metrics *m, double seconds);

#endif
