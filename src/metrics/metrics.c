/*
 * metrics.c - the relay's counters
 *
 * Owns:     the latency bucket bounds, the readiness reasons' texts.
 * Lifetime: process-wide.
 * Errors:   none.
 * Context:  event-loop thread.
 */
#include "metrics/metrics.h"

#include <stddef.h>

const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS] = {
	0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 1e300,
};

/* metrics_observe_latency - one delivery's latency into the histogram */
void
metrics_observe_latency(struct metrics *m, double seconds)
{
	for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
		if (seconds <= metrics_latency_bounds[i]) {
			m->latency_bucket[i]++;
			break;
		}
	}
	m->latency_sum += seconds;
	m->latency_count++;
}

/* metrics_set_unready - set or clear a reason for /readyz to answer 503 */
void
metrics_set_unready(struct metrics *m, unsigned reason, int on)
{
	if (on)
		m->unready |= reason;
	else
		m->unready &= ~reason;
}

/* metrics_ready_reason - why mtad does not accept mail now; NULL when it does */
const char *
metrics_ready_reason(const struct metrics *m)
{
	if (m->unready & METRICS_UNREADY_RECOVERING)
		return "starting: recovering the queue";
	if (m->unready & METRICS_UNREADY_DRAINING)
		return "draining";
	if ((m->unready & METRICS_UNREADY_DISK) || m->disk_state >= 2)
		return "refusing mail: data volume has less than 1% free disk space";
	return NULL;
}
