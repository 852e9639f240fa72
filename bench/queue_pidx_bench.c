/*
 * queue_pidx_bench.c - the index of parked messages over a big queue:
 *                      rebuild, scan, check after a clean stop
 *
 *   build/bench/queue_pidx_bench DATA_DIR [LIMIT]
 *
 * DATA_DIR holds a queue (bench/queue_bench.c fills one; it leaves no
 * index, as after a crash). Opens it with a window of LIMIT messages
 * (default 100), recovers it and prints the time until the index is
 * rebuilt (on its thread, while recovery's pass runs on the loop), the
 * index's size per message, and a full scan (records/s, messages given);
 * then stops cleanly, starts again and prints the time of the check and a
 * second scan. The queue is left as it was (and the index with it).
 *
 * Owns:     its event base and queue; everything is freed before exit.
 * Lifetime: one run.
 * Errors:   a failure exits 1 with the reason.
 * Context:  the main thread runs the event loop; the queue's threads as in mtad.
 */
#include "lib/log.h"
#include "lib/util.h"
#include "queue/queue.h"
#include "queue/queue_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/thread.h>

#define BENCH_SCAN_SLICE 4096

static int
bench_count(void *arg, const struct queue_msg *m)
{
	unsigned long long *n = arg;

	(*n) += m->nrcpt > 0;
	return 0;
}

/* bench_open - open and recover; the time until the index is ready (s), -1 on failure */
static double
bench_open(struct event_base *base, const char *dir, size_t limit, struct queue **qp)
{
	struct queue_recovery *r;
	char err[256];
	uint64_t t0 = util_mono_us(), deadline = t0 + 3600ull * 1000000;
	int rc;

	if ((*qp = queue_open(base, dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "queue_open: %s\n", err);
		return -1;
	}
	queue_set_active_limit(*qp, limit);
	if ((r = queue_recover_start(*qp, NULL, NULL)) == NULL) {
		fprintf(stderr, "recovery: %s\n", strerror(errno));
		return -1;
	}
	while ((rc = queue_recover_step(r, 2000)) == 0)
		event_base_loop(base, EVLOOP_NONBLOCK);
	queue_recover_finish(r);
	while (!queue_pidx_ready(*qp) && util_mono_us() < deadline) {
		struct timeval tv = { 0, 2000 };

		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	if (!queue_pidx_ready(*qp)) {
		fprintf(stderr, "the index is not ready\n");
		return -1;
	}
	return (double)(util_mono_us() - t0) / 1e6;
}

/* bench_scan - a whole pass; prints records/s */
static int
bench_scan(struct queue *q, const char *what)
{
	struct queue_pidx_scan *s = queue_pidx_scan_open(q);
	unsigned long long given = 0;
	uint64_t t0 = util_mono_us();
	double secs;
	int rc;

	if (s == NULL) {
		fprintf(stderr, "scan: %s\n", strerror(errno));
		return -1;
	}
	while ((rc = queue_pidx_scan_step(s, BENCH_SCAN_SLICE, bench_count, &given)) == 0)
		;
	queue_pidx_scan_close(s);
	if (rc < 0) {
		fprintf(stderr, "scan: %s\n", strerror(errno));
		return -1;
	}
	secs = (double)(util_mono_us() - t0) / 1e6;
	printf("%s: %llu records, %llu messages given in %.3f s (%.0f records/s)\n", what,
	    (unsigned long long)queue_pidx_records(q), given, secs,
	    secs > 0 ? (double)queue_pidx_records(q) / secs : 0.0);
	return 0;
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct queue *q = NULL;
	char path[4096];
	struct stat st;
	size_t limit = 100;
	double t;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: queue_pidx_bench DATA_DIR [LIMIT]\n");
		return 1;
	}
	if (argc == 3)
		limit = (size_t)strtoull(argv[2], NULL, 10);
	log_init("queue_pidx_bench", 0);
	if (evthread_use_pthreads() < 0 || (base = event_base_new()) == NULL)
		return 1;
	if ((t = bench_open(base, argv[1], limit, &q)) < 0)
		return 1;
	if (util_bsnprintf(path, sizeof(path), "%s/queue.idx", argv[1]) < 0 || stat(path, &st) < 0)
		return 1;
	printf("start + index ready: %.2f s (%llu messages queued, %zu loaded)\n", t,
	    (unsigned long long)queue_count(q), (size_t)q->nloaded);
	printf("index: %lld bytes, %.1f bytes per record\n", (long long)st.st_size,
	    queue_pidx_records(q) ? (double)st.st_size / (double)queue_pidx_records(q) : 0.0);
	if (bench_scan(q, "scan after the rebuild") < 0)
		return 1;
	q = queue_close(q);
	if ((t = bench_open(base, argv[1], limit, &q)) < 0)
		return 1;
	printf("clean restart + index checked: %.2f s\n", t);
	if (bench_scan(q, "scan after the check") < 0)
		return 1;
	q = queue_close(q);
	event_base_free(base);
	return 0;
}
