/*
 * sched_backend.h - what the scheduler needs from outside: a clock, the
 *                   queue, and a transport (private to src/sched/ and its tests)
 *
 * Owns:     nothing; a table of functions chosen at sched_new_backend().
 * Lifetime: the table and its arg outlive the scheduler.
 * Errors:   the queue functions return 0/-1 (NULL) like their queue_*()
 *           counterparts; enqueue returns -1 when out of memory.
 * Context:  event-loop thread.
 *
 * The daemon runs on sched_backend_real (sched_backend.c): the wall clock,
 * the on-disk queue (src/queue/) and the destinations of sched_dest.c,
 * which connect with src/smtpc/. The unit tests plug in their own table: a
 * virtual clock, messages in memory, and a transport that only records
 * the jobs and lets the test hand back each result (sched_job_result(),
 * sched_job_fail()), so retries, backoff, expiry, delay warnings, DSNs and
 * the cc copy run in virtual time.
 */
#ifndef MTAD_SCHED_BACKEND_H
#define MTAD_SCHED_BACKEND_H

#include "queue/queue.h"

#include <stddef.h>
#include <stdint.h>

struct sched;
struct sched_job;
struct sched_msg;
struct sched_nexthop;

struct sched_backend {
	/* clock: wall-clock microseconds */
	uint64_t (*now_us)(void *arg);

	/* queue: as queue_update_rcpt_hist() (hist may be NULL), queue_update_flags(), queue_set_held() */
	int (*update_rcpt)(void *arg, struct queue_msg *m, size_t idx,
	    enum queue_rcpt_state st, uint64_t next_try_us, const char *dsn, const char *reply,
	    const struct queue_attempt *hist);
	int (*update_flags)(void *arg, struct queue_msg *m, unsigned flags);
	int (*set_held)(void *arg, struct queue_msg *m, int held);
	/* remove - m leaves the queue: at once (now = 1, operator delete) or retired */
	int (*remove)(void *arg, struct queue_msg *m, int now);
	struct queue_msg *(*lookup)(void *arg, const char *id);
	void (*foreach)(void *arg, void (*cb)(void *cbarg, struct queue_msg *m), void *cbarg);
	/* headers - the original header section for a DSN, malloc'd, at most max bytes */
	char *(*headers)(void *arg, const struct queue_msg *m, size_t max, size_t *len);
	/*
	 * dsn_queue - queue a DSN (text[0..len), envelope env): 0 when the
	 * commit is under way (its id copied to id), cb(cbarg, ok, id) later on
	 * the loop; -1 when it could not start (cb never runs).
	 */
	int (*dsn_queue)(void *arg, const struct queue_envelope *env, const char *text,
	    size_t len, void (*cb)(void *cbarg, int ok, const char *id), void *cbarg,
	    char *id, size_t idsize);

	/* transport: jobs go out, results come back through sched_job_*() */
	int (*enqueue)(struct sched *s, const struct sched_nexthop *nh, const char *key,
	    struct sched_job *job);
	/* unqueue_msg - operator delete: take sm's queued (not running) jobs back */
	void (*unqueue_msg)(struct sched *s, struct sched_msg *sm);
	/* stop_all - shutdown: idle connections go, queued jobs are abandoned */
	void (*stop_all)(struct sched *s);
	/* abandon_all - shutdown grace over, or sched_free: running jobs are abandoned */
	void (*abandon_all)(struct sched *s);
	/* free_all - sched_free, after abandon_all: everything the transport holds */
	void (*free_all)(struct sched *s);
};

/* The daemon's: wall clock, on-disk queue (arg = struct queue *), sched_dest.c. */
extern const struct sched_backend sched_backend_real;

#endif
