/*
 * queue.c - the queue: directories, the in-memory index of queued messages,
 *           state updates, removal and the live counters
 *
 * Owns:     struct queue, every struct queue_ent (and so struct queue_msg)
 *           in the index, the directory fds of <data_dir>/queue,
 *           <data_dir>/incoming and <data_dir>/corrupt.
 * Lifetime: queue_open() to queue_close(); an entry from its commit (or
 *           recovery) to queue_remove() or queue_close().
 * Errors:   I/O failures return -1 (or NULL) with errno set; the in-memory
 *           state is updated even when appending a state record fails, so
 *           the running daemon stays right (the file at worst repeats an
 *           attempt after a restart, as after a crash).
 * Context:  event-loop thread.
 *
 * The index itself is in queue_index.c, the threads in queue_sync.c.
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "lib/log.h"
#include "lib/map.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

/* queue_open_dir - mkdir (mode 0700) if missing, then open it as a directory fd */
static int
queue_open_dir(int at, const char *name)
{
	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* queue_open - make queue/, incoming/ and corrupt/ under data_dir, open them, start the commit thread */
struct queue *
queue_open(struct event_base *base, const char *data_dir, char *err, size_t errlen)
{
	struct queue *q;
	int dfd = -1;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		(void)util_bsnprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->base = base;
	q->qdirfd = q->idirfd = q->cdirfd = q->efd = -1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->spare_cv, NULL);
	q->spare_floor = UINT64_MAX;
	if ((q->data_dir = strdup(data_dir)) == NULL || (q->index = map_new()) == NULL ||
	    queue_window_init(q) < 0) {
		(void)util_bsnprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
		(void)util_bsnprintf(err, errlen, "%s: %s", data_dir, strerror(errno));
		goto fail;
	}
	if ((dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		(void)util_bsnprintf(err, errlen, "%s: %s", data_dir, strerror(errno));
		goto fail;
	}
	if ((q->qdirfd = queue_open_dir(dfd, "queue")) < 0) {
		(void)util_bsnprintf(err, errlen, "%s/queue: %s", data_dir, strerror(errno));
		goto fail;
	}
	if ((q->idirfd = queue_open_dir(dfd, "incoming")) < 0) {
		(void)util_bsnprintf(err, errlen, "%s/incoming: %s", data_dir, strerror(errno));
		goto fail;
	}
	if ((q->cdirfd = queue_open_dir(dfd, "corrupt")) < 0) {
		(void)util_bsnprintf(err, errlen, "%s/corrupt: %s", data_dir, strerror(errno));
		goto fail;
	}
	close(dfd);
	dfd = -1;
	if (queue_sync_start(q, queue_file_synced, err, errlen) < 0)
		goto fail;
	return q;
fail:
	if (dfd >= 0)
		close(dfd);
	queue_close(q);
	return NULL;
}

/*
 * queue_mark_owned - at a clean stop, touch <data_dir>/queue.owned after the
 * last change to queue/: while it stays newer than queue/, nothing entered
 * queue/ since, and the next start does not look at each file for its
 * owner (lib/priv.c, priv_dir_unchanged()).
 */
static void
queue_mark_owned(struct queue *q)
{
	int dfd, fd = -1;

	if (q->qdirfd < 0 || (dfd = open(q->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if ((fd = openat(dfd, "queue.owned", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0 || futimens(fd, NULL) < 0)
		log_trace(TRACE_QUEUE, "%s/queue.owned: cannot touch", q->data_dir);
	if (fd >= 0)
		close(fd);
	close(dfd);
}

/*
 * queue_close - finish pending commits (callbacks run, the listener does not:
 * its owner is gone at exit), stop the threads, free every entry
 */
struct queue *
queue_close(struct queue *q)
{
	struct queue_ent *e, *next;

	if (q == NULL)
		return NULL;
	q->closing = 1;
	queue_sync_stop(q);
	queue_window_free(q);
	queue_pidx_close(q);
	queue_mark_owned(q);
	for (e = q->head; e != NULL; e = next) {
		next = e->next;
		queue_index_ent_free(e);
	}
	q->index = map_free(q->index);
	if (q->qdirfd >= 0)
		close(q->qdirfd);
	if (q->idirfd >= 0)
		close(q->idirfd);
	if (q->cdirfd >= 0)
		close(q->cdirfd);
	pthread_cond_destroy(&q->cv);
	pthread_cond_destroy(&q->spare_cv);
	pthread_mutex_destroy(&q->mu);
	log_trace(TRACE_QUEUE, "queue closed: %llu syncs for %llu messages",
	    (unsigned long long)q->stat_syncs, (unsigned long long)q->stat_synced);
	free(q->data_dir);
	free(q);
	return NULL;
}

/* queue_set_listener - who hears of each newly committed message */
void
queue_set_listener(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg)
{
	q->listener = cb;
	q->listener_arg = arg;
}

/* queue_lookup - by id (a parked message is loaded); NULL for anything that is not a queued id */
struct queue_msg *
queue_lookup(struct queue *q, const char *id)
{
	uint64_t key = queue_index_id_key(id);
	struct queue_ent *e;

	if (key == 0)
		return NULL;
	if ((e = queue_index_find(q, key)) != NULL)
		return &e->m;
	return queue_window_lookup(q, key);
}

/* queue_foreach - arrival order; cb may queue_remove() the message it was given */
void
queue_foreach(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg)
{
	struct queue_ent *e, *next;

	for (e = q->head; e != NULL; e = next) {
		next = e->next;
		cb(arg, &e->m);
	}
}

/*
 * queue_append_state - append one state record to a message file. No
 * sync: losing it in a crash repeats an attempt at worst. A short write
 * is cut off again so the next record starts on a record boundary.
 */
static int
queue_append_state(struct queue *q, struct queue_msg *m, const unsigned char *rec, size_t len)
{
	const char *id = m->id;
	int fd, saved;
	off_t end;
	ssize_t n;

	if ((fd = openat(q->qdirfd, id, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0)
		goto fail;
	if ((end = lseek(fd, 0, SEEK_END)) < 0)
		goto fail_close;
	do
		n = write(fd, rec, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len) {
		if (n >= 0)
			errno = ENOSPC;
		saved = errno;
		(void)!ftruncate(fd, end);
		errno = saved;
		goto fail_close;
	}
	close(fd);
	m->file_size += len;
	q->bytes += len;
	return 0;
fail_close:
	saved = errno;
	close(fd);
	errno = saved;
fail:
	log_warn("%s: cannot record state in queue file", id);
	return -1;
}

/* queue_update_rcpt - new state of one recipient; every call counts as an attempt */
int
queue_update_rcpt(struct queue *q, struct queue_msg *m, size_t idx,
    enum queue_rcpt_state state, uint64_t next_try_us, const char *dsn, const char *reply)
{
	return queue_update_rcpt_hist(q, m, idx, state, next_try_us, dsn, reply, NULL);
}

/*
 * queue_update_rcpt_hist - the same, with the attempt's 'a' record (its
 * history, queue_hist.c) written first in the same append: one write
 */
int
queue_update_rcpt_hist(struct queue *q, struct queue_msg *m, size_t idx,
    enum queue_rcpt_state state, uint64_t next_try_us, const char *dsn, const char *reply,
    const struct queue_attempt *a)
{
	unsigned char rec[2 * QUEUE_REC_ST_MAXLEN];
	struct queue_rcpt *r;
	size_t len = 0;

	if (idx >= m->nrcpt || (unsigned)state > QUEUE_RCPT_BOUNCED) {
		errno = EINVAL;
		return -1;
	}
	r = &m->rcpt[idx];
	r->state = state;
	r->attempts++;
	r->next_try_us = next_try_us;
	if (dsn != NULL)
		(void)util_strlcpy(r->dsn, dsn, sizeof(r->dsn));
	else
		r->dsn[0] = '\0';
	free(r->last_reply);
	r->last_reply = NULL;
	if (reply != NULL && reply[0] != '\0') {
		/* the stored copy is cut like the record, so a restart shows the same */
		size_t rl = strnlen(reply, QUEUE_REC_REPLY_MAX);

		if ((r->last_reply = malloc(rl + 1)) != NULL) {
			memcpy(r->last_reply, reply, rl);
			r->last_reply[rl] = '\0';
		}
	}
	if (a != NULL && a->rcpt == idx &&
	    (a->result != QUEUE_ATTEMPT_DEFERRED || a->attempt <= QUEUE_HIST_WRITE_MAX))
		len = queue_rec_state_attempt(rec, a);
	len += queue_rec_state_rcpt(rec + len, (uint32_t)idx, (unsigned)state, r->attempts,
	    next_try_us, r->dsn, r->last_reply);
	return queue_append_state(q, m, rec, len);
}

/* queue_set_held - hold (1) or release (0) */
int
queue_set_held(struct queue *q, struct queue_msg *m, int held)
{
	unsigned char rec[QUEUE_REC_ST_MAXLEN];

	m->held = held ? 1 : 0;
	return queue_append_state(q, m, rec, queue_rec_state_held(rec, m->held));
}

/* queue_update_flags - replace the message flags (e.g. QUEUE_F_CC done) */
int
queue_update_flags(struct queue *q, struct queue_msg *m, unsigned flags)
{
	unsigned char rec[QUEUE_REC_ST_MAXLEN];

	m->flags = flags;
	return queue_append_state(q, m, rec, queue_rec_state_flags(rec, flags));
}

/* queue_forget - a loaded message leaves the queue: out of the index and the counters */
static void
queue_forget(struct queue *q, struct queue_ent *e)
{
	q->count -= q->count > 0;
	q->bytes -= q->bytes >= e->m.file_size ? e->m.file_size : q->bytes;
	queue_index_unlink(q, e);
}

/* queue_remove - unlink, then forget; m is freed even if the unlink fails */
int
queue_remove(struct queue *q, struct queue_msg *m)
{
	struct queue_ent *e = QUEUE_ENT(m);
	int rc = 0;

	if (unlinkat(q->qdirfd, m->id, 0) < 0 && errno != ENOENT) {
		log_warn("%s: cannot remove queue file", m->id);
		rc = -1;
	}
	log_trace(TRACE_QUEUE, "%s: removed", m->id);
	queue_forget(q, e);
	queue_index_ent_free(e);
	return rc;
}

/* queue_retire - queue_remove() with the unlink left to the spare thread */
int
queue_retire(struct queue *q, struct queue_msg *m)
{
	struct queue_ent *e = QUEUE_ENT(m);

	if (queue_sync_unlink_later(q, m->id) < 0)
		return queue_remove(q, m);
	log_trace(TRACE_QUEUE, "%s: retired", m->id);
	queue_forget(q, e);
	queue_index_ent_free(e);
	return 0;
}

/* queue_count - messages in the queue (SPEC §7 Mqueue-Messages) */
uint64_t
queue_count(const struct queue *q)
{
	return q->count;
}

/* queue_bytes - their size as delivered, in bytes (the caller makes kilobytes) */
uint64_t
queue_bytes(const struct queue *q)
{
	return q->bytes;
}

/* queue_data_dir - the data_dir given to queue_open (borrowed) */
const char *
queue_data_dir(const struct queue *q)
{
	return q->data_dir;
}
