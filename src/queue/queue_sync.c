/*
 * queue_sync.c - the queue's threads: the group-commit worker, the
 *                spare-file thread and the delayed unlink of finished files
 *
 * Owns:     the commit thread and its pending/done lists, the eventfd that
 *           wakes the loop, the spare-file thread with its pool of created,
 *           empty files in incoming/, and the ring of files to unlink.
 * Lifetime: queue_sync_start() (from queue_open) to queue_sync_stop() (from
 *           queue_close); a struct queue_file is held here from
 *           queue_sync_submit() until it is handed back through q->synced.
 * Errors:   a failed sync sets the file's ok to 0 (the loop unlinks it and
 *           reports it); a spare that cannot be created makes the loop
 *           create its own file.
 * Context:  queue_worker_main() runs on the commit thread, queue_spare_main()
 *           on the spare thread; both touch only what is under q->mu, the
 *           fds of the files they were handed, and their counters. Every
 *           other function runs on the event-loop thread.
 *
 * Group commit (SPEC §4): committed files wait on the pending list; the
 * worker takes the whole list, renames each from incoming/ into queue/
 * (off the loop: a rename, like a create, can wait for a running journal
 * commit), runs ONE syncfs() on the queue directory (file data, inodes and
 * directory entries in one ext4 journal commit), then puts the batch on
 * the done list and wakes the loop through an eventfd. Files committed
 * while a sync runs form the next batch. If syncfs fails, each file is
 * fdatasync'ed and the directory fsync'ed, so a failing file fails alone.
 */
#include "queue/queue_int.h"
#include "lib/log.h"
#include "lib/map.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define QUEUE_ID_TRIES 64

/* queue_sync_next_key - a fresh queue id: microseconds << 12, above every id used or seen */
static uint64_t
queue_sync_next_key(struct queue *q)
{
	uint64_t key = util_now_us() << 12;

	pthread_mutex_lock(&q->mu);
	if (key <= q->last_id)
		key = q->last_id + 1;
	q->last_id = key;
	pthread_mutex_unlock(&q->mu);
	return key;
}

/* queue_create_file - create the file for a new id, O_EXCL; on a collision take the next id */
static int
queue_create_file(struct queue *q, uint64_t *keyp)
{
	char id[QUEUE_ID_SIZE];

	for (int i = 0; i < QUEUE_ID_TRIES; i++) {
		uint64_t key = queue_sync_next_key(q);
		int fd;

		queue_index_id_format(key, id);
		fd = openat(q->idirfd, id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST) {
			*keyp = key;
			return fd;
		}
	}
	errno = EEXIST;
	return -1;
}

/* queue_unlink_pop - the oldest key waiting for its unlink (caller holds mu, unlink_n > 0) */
static uint64_t
queue_unlink_pop(struct queue *q)
{
	uint64_t key = q->unlink_key[q->unlink_head];

	q->unlink_head = (q->unlink_head + 1) % QUEUE_UNLINK_MAX;
	q->unlink_n--;
	return key;
}

/* queue_unlink_key - remove queue/ID of a message that has left the queue */
static void
queue_unlink_key(struct queue *q, uint64_t key)
{
	char id[QUEUE_ID_SIZE];

	queue_index_id_format(key, id);
	if (unlinkat(q->qdirfd, id, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove queue file", id);
}

/* queue_unlink_done - the file is gone: the window's scan may no longer skip its id (under mu) */
static void
queue_unlink_done(struct queue *q, uint64_t key)
{
	char id[QUEUE_ID_SIZE];

	if (q->unlinking == NULL)
		return;
	queue_index_id_format(key, id);
	(void)map_del(q->unlinking, id);
}

/*
 * queue_spare_main - the spare-file thread: keep QUEUE_SPARE_MAX empty
 * files created and open in incoming/. Creating a file on ext4 waits for
 * a running journal commit (our own syncfs), so it is done here rather
 * than on the loop. Spares left over by a crash are removed at start-up
 * with the rest of incoming/.
 */
static void *
queue_spare_main(void *arg)
{
	struct queue *q = arg;
	int warned = 0;

	pthread_mutex_lock(&q->mu);
	while (!q->stop) {
		uint64_t key;
		int fd;

		if (q->unlink_n > 0) {
			key = queue_unlink_pop(q);
			pthread_mutex_unlock(&q->mu);
			queue_unlink_key(q, key);
			pthread_mutex_lock(&q->mu);
			queue_unlink_done(q, key);
			continue;
		}
		if (q->spare_n == QUEUE_SPARE_MAX) {
			pthread_cond_wait(&q->spare_cv, &q->mu);
			continue;
		}
		pthread_mutex_unlock(&q->mu);
		fd = queue_create_file(q, &key);
		pthread_mutex_lock(&q->mu);
		if (fd < 0) {
			struct timespec ts;

			/* out of space or fds: the loop falls back to creating its own; retry in 1s */
			if (!warned)
				log_warn("cannot create a spare queue file");
			warned = 1;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			if (!q->stop)
				(void)pthread_cond_timedwait(&q->spare_cv, &q->mu, &ts);
			continue;
		}
		warned = 0;
		q->spare[(q->spare_head + q->spare_n) % QUEUE_SPARE_MAX].fd = fd;
		q->spare[(q->spare_head + q->spare_n) % QUEUE_SPARE_MAX].key = key;
		q->spare_n++;
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/*
 * queue_sync_unlink_later - the file of a message that has left the queue is
 * unlinked by the spare thread, off the loop. A crash before it happens
 * leaves the file, and the message is delivered again after the restart
 * (the rare duplicate SPEC §5 allows). -1 when there is no thread or the
 * ring is full: the caller unlinks at once.
 */
int
queue_sync_unlink_later(struct queue *q, const char *id)
{
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (q->spare_started == 1 && !q->stop && q->unlink_n < QUEUE_UNLINK_MAX &&
	    (q->unlinking == NULL || map_put(q->unlinking, id, q) == 0)) {
		q->unlink_key[(q->unlink_head + q->unlink_n) % QUEUE_UNLINK_MAX] =
		    queue_index_id_key(id);
		q->unlink_n++;
		pthread_cond_signal(&q->spare_cv);
		rc = 0;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

/* queue_spare_start - start the spare-file thread (after recovery: at the first create) */
static void
queue_spare_start(struct queue *q)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	q->spare_floor = q->last_id + 1;
	pthread_mutex_unlock(&q->mu);
	if ((rc = pthread_create(&q->spare_thread, NULL, queue_spare_main, q)) != 0) {
		log_warnx("cannot start the spare queue file thread: %s", strerror(rc));
		q->spare_started = -1;
		return;
	}
	q->spare_started = 1;
}

/* queue_worker_wake - tell the loop a batch is done */
static void
queue_worker_wake(struct queue *q)
{
	uint64_t one = 1;

	while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/*
 * queue_worker_sync - make one batch durable; sets each file's ok. Each
 * complete file first moves from incoming/ to queue/ (so queue/ only ever
 * holds whole messages), then one syncfs covers their data, inodes and
 * both directory entries.
 */
static void
queue_worker_sync(struct queue *q, struct queue_file *batch)
{
	struct queue_file *qf;
	int dir_ok;

	for (qf = batch; qf != NULL; qf = qf->next) {
		qf->moved = renameat2(q->idirfd, qf->id, q->qdirfd, qf->id, RENAME_NOREPLACE) == 0;
		if (!qf->moved)
			log_warn("%s: cannot move the queue file into queue/", qf->id);
	}
	if (!q->sync_files) {
		if (syncfs(q->qdirfd) == 0) {
			for (qf = batch; qf != NULL; qf = qf->next)
				qf->ok = qf->moved;
			return;
		}
		log_warn("syncfs on the queue directory failed; syncing file by file");
	}
	for (qf = batch; qf != NULL; qf = qf->next)
		qf->ok = qf->moved && fdatasync(qf->fd) == 0;
	dir_ok = fsync(q->qdirfd) == 0;
	for (qf = batch; qf != NULL; qf = qf->next) {
		if (qf->moved && (!qf->ok || !dir_ok))
			log_warn("%s: sync failed", qf->id);
		qf->ok = qf->ok && dir_ok;
	}
}

/* queue_worker_main - the commit thread: take all pending, one sync, hand back */
static void *
queue_worker_main(void *arg)
{
	struct queue *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct queue_file *batch, *last, *qf;
		uint64_t n = 0;

		while (q->pend_head == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->pend_head == NULL)
			break;
		batch = q->pend_head;
		last = q->pend_tail;
		q->pend_head = q->pend_tail = NULL;
		pthread_mutex_unlock(&q->mu);

		queue_worker_sync(q, batch);
		for (qf = batch; qf != NULL; qf = qf->next) {
			close(qf->fd);
			qf->fd = -1;
			n++;
		}

		pthread_mutex_lock(&q->mu);
		q->stat_syncs++;
		q->stat_synced += n;
		if (q->done_tail != NULL)
			q->done_tail->next = batch;
		else
			q->done_head = batch;
		q->done_tail = last;
		pthread_mutex_unlock(&q->mu);
		queue_worker_wake(q);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* queue_sync_done - on the loop: hand every synced (or failed) file back to q->synced */
static void
queue_sync_done(struct queue *q, int run_listener)
{
	struct queue_file *list, *qf;
	uint64_t v;

	while (read(q->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&q->mu);
	list = q->done_head;
	q->done_head = q->done_tail = NULL;
	pthread_mutex_unlock(&q->mu);

	while ((qf = list) != NULL) {
		list = qf->next;
		q->synced(q, qf, run_listener);
	}
}

/* queue_worker_event - the eventfd is readable */
static void
queue_worker_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	queue_sync_done(arg, 1);
}

/*
 * queue_sync_start - the eventfd, its event, and the commit thread;
 * synced(q, qf, run_listener) gets back each file on the loop and frees it
 */
int
queue_sync_start(struct queue *q, void (*synced)(struct queue *, struct queue_file *, int),
    char *err, size_t errlen)
{
	int rc;

	q->synced = synced;

	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		(void)util_bsnprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	q->ev_done = event_new(q->base, q->efd, EV_READ | EV_PERSIST, queue_worker_event, q);
	if (q->ev_done == NULL || event_add(q->ev_done, NULL) < 0) {
		(void)util_bsnprintf(err, errlen, "cannot register the commit event");
		return -1;
	}
	if ((rc = pthread_create(&q->thread, NULL, queue_worker_main, q)) != 0) {
		(void)util_bsnprintf(err, errlen, "cannot start the commit thread: %s",
		    strerror(rc));
		return -1;
	}
	q->thread_started = 1;
	return 0;
}

/* queue_sync_stop - let the worker sync what is pending, join it, finish on this thread */
void
queue_sync_stop(struct queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_signal(&q->cv);
	pthread_cond_signal(&q->spare_cv);
	pthread_mutex_unlock(&q->mu);
	if (q->thread_started) {
		pthread_join(q->thread, NULL);
		q->thread_started = 0;
	}
	if (q->spare_started == 1) {
		pthread_join(q->spare_thread, NULL);
		q->spare_started = 0;
	}
	/* removals the spare thread did not get to */
	while (q->unlink_n > 0) {
		uint64_t key = queue_unlink_pop(q);

		queue_unlink_key(q, key);
		queue_unlink_done(q, key);
	}
	/* unused spares: nobody will write them */
	for (; q->spare_n > 0; q->spare_n--) {
		struct queue_spare *sp = &q->spare[q->spare_head];
		char id[QUEUE_ID_SIZE];

		queue_index_id_format(sp->key, id);
		(void)unlinkat(q->idirfd, id, 0);
		close(sp->fd);
		q->spare_head = (q->spare_head + 1) % QUEUE_SPARE_MAX;
	}
	if (q->efd >= 0)
		queue_sync_done(q, 0);
	if (q->ev_done != NULL) {
		event_free(q->ev_done);
		q->ev_done = NULL;
	}
	if (q->efd >= 0) {
		close(q->efd);
		q->efd = -1;
	}
}

/* queue_sync_take_file - for queue_file_create(): an open, empty file with a fresh id: a spare, or made now */
int
queue_sync_take_file(struct queue *q, char *id, uint64_t *keyp)
{
	int fd;

	pthread_mutex_lock(&q->mu);
	if (q->spare_n > 0) {
		struct queue_spare sp = q->spare[q->spare_head];

		q->spare_head = (q->spare_head + 1) % QUEUE_SPARE_MAX;
		q->spare_n--;
		pthread_cond_signal(&q->spare_cv);
		pthread_mutex_unlock(&q->mu);
		queue_index_id_format(sp.key, id);
		*keyp = sp.key;
		return sp.fd;
	}
	pthread_mutex_unlock(&q->mu);
	/*
	 * XXX a file made here while the spare thread is making one can get a
	 * higher id than that spare, which is handed out next: ids are unique
	 * and follow time only to within one file creation.
	 */
	fd = queue_create_file(q, keyp);
	if (fd >= 0)
		queue_index_id_format(*keyp, id);
	if (q->spare_started == 0)
		queue_spare_start(q);
	return fd;
}

/*
 * queue_sync_submit - a written file joins the next group sync; one whose
 * writes failed goes straight to the done list (unlinked): its callback
 * still runs later, on the loop. Takes qf.
 */
void
queue_sync_submit(struct queue *q, struct queue_file *qf)
{
	pthread_mutex_lock(&q->mu);
	if (qf->err) {
		errno = qf->err;
		log_warn("%s: cannot write queue file", qf->id);
		if (unlinkat(q->idirfd, qf->id, 0) < 0 && errno != ENOENT)
			log_warn("%s: cannot remove failed queue file", qf->id);
		close(qf->fd);
		qf->fd = -1;
		if (q->done_tail != NULL)
			q->done_tail->next = qf;
		else
			q->done_head = qf;
		q->done_tail = qf;
		pthread_mutex_unlock(&q->mu);
		queue_worker_wake(q);
		return;
	}
	if (q->pend_tail != NULL)
		q->pend_tail->next = qf;
	else
		q->pend_head = qf;
	q->pend_tail = qf;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}
