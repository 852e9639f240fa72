/*
 * metrics.h - the relay's counters (SPEC §7)
 *
 * Owns:     struct metrics, one per process, allocated by main().
 * Lifetime: process-wide.
 * Errors:   none.
 * Context:  event-loop thread only (no atomics needed).
 *
 * Each field has one writer, named beside it; everyone else reads. The
 * totals (not the gauges) are restored from <data_dir>/stats by http_new()
 * before the event loop runs, and saved by src/http/http_persist.c.
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
	uint64_t auth_sessions;         /* successful SMTP AUTH logins (smtpd_auth.c) */
	uint64_t auth_sessions_active;  /* open sessions that are logged in */
	uint64_t auth_failures;         /* failed SMTP AUTH attempts */
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
	/* readiness: METRICS_UNREADY_* bits, each set and cleared by its writer */
	unsigned unready;
};

/*
 * Readiness (SPEC §11.4): /readyz answers 503 while any bit is set (and
 * while disk_state is 2). Writers: RECOVERING the queue recovery (main
 * today), DRAINING the drain, DISK the disk guard.
 */
#define METRICS_UNREADY_RECOVERING 0x1u  /* starting: the queue is being recovered */
#define METRICS_UNREADY_DRAINING   0x2u  /* stopping: no new mail, delivering what is queued */
#define METRICS_UNREADY_DISK       0x4u  /* refusing mail for lack of disk space */

/* metrics_set_unready - set (on) or clear one METRICS_UNREADY_* reason */
void metrics_set_unready(struct metrics *m, unsigned reason, int on);
/* metrics_ready_reason - NULL when ready, else why not ("recovering the queue", ...) */
const char *metrics_ready_reason(const struct metrics *m);

/* Upper bounds in seconds of latency_bucket[i]; the last is +Inf. */
extern const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS];

/* metrics_observe_latency - record one delivery's latency (sched) */
void metrics_observe_latency(struct metrics *m, double seconds);

#endif
