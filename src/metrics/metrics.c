/*
 * metrics.c - the relay's counters
 *
 * Owns:     the latency bucket bounds.
 * Lifetime: process-wide.
 * Errors:   none.
 * Context:  event-loop thread.
 */
#include "metrics/metrics.h"

const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS] = {
	0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 1e300,
};

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
