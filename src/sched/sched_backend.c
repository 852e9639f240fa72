/*
 * sched_backend.c - the scheduler's real backend: the wall clock, the
 *                   on-disk queue and the destinations of sched_dest.c
 *
 * Owns:     nothing; thin calls into src/queue/ and sched_dest.c.
 * Lifetime: sched_backend_real is static and constant.
 * Errors:   as the queue functions it calls (-1 or NULL, errno set).
 * Context:  event-loop thread.
 *
 * The unit tests (tests/unit/test_sched_flow.c) have their own table with
 * a virtual clock, messages in memory and a recording transport.
 */
#include "sched/sched_backend.h"
#include "sched/sched_int.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t
real_now_us(void *arg)
{
	(void)arg;
	return util_now_us();
}

static int
real_update_rcpt(void *arg, struct queue_msg *m, size_t idx, enum queue_rcpt_state st,
    uint64_t next, const char *dsn, const char *reply, const struct queue_attempt *hist)
{
	return queue_update_rcpt_hist(arg, m, idx, st, next, dsn, reply, hist);
}

static int
real_update_flags(void *arg, struct queue_msg *m, unsigned flags)
{
	return queue_update_flags(arg, m, flags);
}

static int
real_set_held(void *arg, struct queue_msg *m, int held)
{
	return queue_set_held(arg, m, held);
}

/* real_remove - delivered: the unlink can wait; deleted by the operator: gone now */
static int
real_remove(void *arg, struct queue_msg *m, int now)
{
	return now ? queue_remove(arg, m) : queue_retire(arg, m);
}

static struct queue_msg *
real_lookup(void *arg, const char *id)
{
	return queue_lookup(arg, id);
}

static void
real_foreach(void *arg, void (*cb)(void *, struct queue_msg *), void *cbarg)
{
	queue_foreach(arg, cb, cbarg);
}

/* real_headers - the original header section (up to the first empty line), bounded */
static char *
real_headers(void *arg, const struct queue_msg *m, size_t max, size_t *len)
{
	struct queue_reader *rd;
	char *buf;
	size_t n = 0;
	ssize_t got;

	*len = 0;
	if ((buf = malloc(max)) == NULL)
		return NULL;
	if ((rd = queue_reader_open(arg, m)) == NULL) {
		free(buf);
		return NULL;
	}
	while (n < max && (got = queue_reader_read(rd, buf + n, max - n)) > 0) {
		n += (size_t)got;
		if (n >= 4 && memmem(buf, n, "\r\n\r\n", 4) != NULL)
			break;
	}
	queue_reader_close(rd);
	if (n >= 2 && buf[0] == '\r' && buf[1] == '\n')
		n = 0;      /* no header section at all */
	else {
		const char *end = memmem(buf, n, "\r\n\r\n", 4);
		if (end != NULL)
			n = (size_t)(end - buf) + 2;
	}
	*len = n;
	return buf;
}

/* real_dsn_queue - a new queue file with the DSN, committed (group sync) */
static int
real_dsn_queue(void *arg, const struct queue_envelope *env, const char *text, size_t len,
    void (*cb)(void *, int, const char *), void *cbarg, char *id, size_t idsize)
{
	struct queue_file *qf;

	if ((qf = queue_file_create(arg, env)) == NULL)
		return -1;
	if (queue_file_write(qf, text, len) < 0) {
		queue_file_abort(qf);
		return -1;
	}
	util_strlcpy(id, queue_file_id(qf), idsize);
	queue_file_commit(qf, "", 0, cb, cbarg);
	return 0;
}

static int
real_enqueue(struct sched *s, const struct sched_nexthop *nh, const char *key,
    struct sched_job *job)
{
	struct sched_dest *d;

	if ((d = sched_dest_get(s, nh, key)) == NULL)
		return -1;
	sched_dest_enqueue(d, job);
	return 0;
}

const struct sched_backend sched_backend_real = {
	.now_us = real_now_us,
	.update_rcpt = real_update_rcpt,
	.update_flags = real_update_flags,
	.set_held = real_set_held,
	.remove = real_remove,
	.lookup = real_lookup,
	.foreach = real_foreach,
	.headers = real_headers,
	.dsn_queue = real_dsn_queue,
	.enqueue = real_enqueue,
	.unqueue_msg = sched_dest_unqueue_msg,
	.stop_all = sched_dest_stop_all,
	.abandon_all = sched_dest_abandon_all,
	.free_all = sched_dest_free_all,
};
