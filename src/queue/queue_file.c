/*
 * queue_file.c - write a new message file and make it durable with the
 *                other sessions' messages in one group sync
 *
 * Owns:     open struct queue_file (fd, one write buffer), the commit
 *           worker thread and its pending/done lists, the spare-file
 *           thread and its pool of created, empty files.
 * Lifetime: struct queue_file from queue_file_create() until
 *           queue_file_commit() (then the worker, then the loop frees it)
 *           or queue_file_abort(). The envelope is copied at create.
 * Errors:   a write error is remembered and reported by the commit
 *           callback (ok = 0); the file is then unlinked.
 * Context:  event-loop thread, except queue_worker_main() which runs on the
 *           commit thread and touches only the lists under q->mu, the
 *           fds of the batch it took, and its counters; and
 *           queue_spare_main(), which creates files and fills q->spare
 *           under q->mu.
 *
 * A file is written in incoming/, in the order of queue_rec.h: header and
 * envelope at create, 'D' records as content arrives (through one
 * QUEUE_WBUF_SIZE buffer, so a 5 KB message costs one write(2) in all),
 * then at commit the 'P' record and the 'E' record whose crc covers
 * everything before it. The worker renames it into queue/ just before the
 * sync, so queue/ only holds whole messages; the 'E' record, not the
 * rename, is what makes a file committed (recovery checks it), and
 * incoming/ is emptied at start-up.
 *
 * Group commit (SPEC §4): committed files wait on the pending list; the
 * worker takes the whole list, renames each into queue/ (off the loop:
 * a rename, like a create, can wait for a running journal commit), runs
 * ONE syncfs() on the queue directory
 * (file data, inodes and directory entries in one ext4 journal commit),
 * then puts the batch on the done list and wakes the loop through an
 * eventfd. Files committed while a sync runs form the next batch. If
 * syncfs fails, each file is fdatasync'ed and the directory fsync'ed,
 * so a failing file fails alone.
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "lib/crc32c.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define QUEUE_ID_TRIES 64

/*
 * queue_writev2 - writev(2) of two pieces (either may be empty) until done;
 * -1 with errno on error. The one loop that copes with short writes.
 */
static int
queue_writev2(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
	struct iovec iov[2];
	int iovcnt = 2, i = 0;

	iov[0].iov_base = (void *)(uintptr_t)a;
	iov[0].iov_len = alen;
	iov[1].iov_base = (void *)(uintptr_t)b;
	iov[1].iov_len = blen;
	for (;;) {
		ssize_t n;

		while (i < iovcnt && iov[i].iov_len == 0)
			i++;
		if (i == iovcnt)
			return 0;
		n = writev(fd, iov + i, iovcnt - i);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		while (i < iovcnt && (size_t)n >= iov[i].iov_len) {
			n -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < iovcnt) {
			iov[i].iov_base = (char *)iov[i].iov_base + n;
			iov[i].iov_len -= (size_t)n;
		}
	}
}

/* queue_write_all - write(2) until done; -1 with errno on error */
static int
queue_write_all(int fd, const void *data, size_t len)
{
	return queue_writev2(fd, data, len, NULL, 0);
}

/* queue_file_close_drec - fix the length of the open 'D' record in the buffer */
static void
queue_file_close_drec(struct queue_file *qf)
{
	if (qf->drec == SIZE_MAX)
		return;
	queue_rec_put32(qf->buf + qf->drec + 1,
	    (uint32_t)(qf->used - qf->drec - QUEUE_REC_HDR));
	qf->drec = SIZE_MAX;
}

/* queue_file_flush - write the buffer out (closing any open 'D' record) */
static int
queue_file_flush(struct queue_file *qf)
{
	if (qf->err)
		return -1;
	queue_file_close_drec(qf);
	if (qf->used == 0)
		return 0;
	qf->crc = crc32c(qf->crc, qf->buf, qf->used);
	if (queue_write_all(qf->fd, qf->buf, qf->used) < 0) {
		qf->err = errno;
		return -1;
	}
	qf->off += qf->used;
	qf->used = 0;
	return 0;
}

/* queue_file_put - append one whole record (through the buffer, or straight out if big) */
static int
queue_file_put(struct queue_file *qf, unsigned type, const void *data, size_t len)
{
	unsigned char hdr[QUEUE_REC_HDR];

	if (qf->err)
		return -1;
	queue_file_close_drec(qf);
	if (QUEUE_WBUF_SIZE - qf->used < QUEUE_REC_HDR + len && queue_file_flush(qf) < 0)
		return -1;
	if (QUEUE_REC_HDR + len <= QUEUE_WBUF_SIZE) {
		queue_rec_hdr(qf->buf + qf->used, type, (uint32_t)len);
		if (len > 0)
			memcpy(qf->buf + qf->used + QUEUE_REC_HDR, data, len);
		qf->used += QUEUE_REC_HDR + len;
		return 0;
	}
	queue_rec_hdr(hdr, type, (uint32_t)len);
	qf->crc = crc32c(crc32c(qf->crc, hdr, sizeof(hdr)), data, len);
	if (queue_writev2(qf->fd, hdr, sizeof(hdr), data, len) < 0) {
		qf->err = errno;
		return -1;
	}
	qf->off += sizeof(hdr) + len;
	return 0;
}

/* queue_file_put_str - a string record */
static int
queue_file_put_str(struct queue_file *qf, unsigned type, const char *s)
{
	return queue_file_put(qf, type, s, strlen(s));
}

/* queue_env_check - the envelope fits the format's bounds (else the file would read as corrupt) */
static int
queue_env_check(const struct queue_envelope *env)
{
	if (env->sender == NULL || strlen(env->sender) > QUEUE_REC_ADDR_MAX ||
	    env->nrcpt == 0 || env->nrcpt > QUEUE_REC_RCPT_MAX || env->rcpts == NULL)
		return -1;
	for (size_t i = 0; i < env->nrcpt; i++) {
		size_t l = env->rcpts[i] != NULL ? strlen(env->rcpts[i]) : 0;

		if (l == 0 || l > QUEUE_REC_ADDR_MAX)
			return -1;
	}
	if ((env->client_addr != NULL && strlen(env->client_addr) > QUEUE_REC_TEXT_MAX) ||
	    (env->client_name != NULL && strlen(env->client_name) > QUEUE_REC_TEXT_MAX) ||
	    (env->helo != NULL && strlen(env->helo) > QUEUE_REC_TEXT_MAX))
		return -1;
	return 0;
}

/* queue_strdup_opt - copy an optional string; 0 or -1 on allocation failure */
static int
queue_strdup_opt(char **dst, const char *s)
{
	*dst = NULL;
	if (s == NULL)
		return 0;
	return (*dst = strdup(s)) == NULL ? -1 : 0;
}

/* queue_ent_from_env - the in-memory message for an envelope (strings copied) */
static struct queue_ent *
queue_ent_from_env(const struct queue_envelope *env)
{
	struct queue_ent *e;
	struct queue_msg *m;

	if ((e = queue_ent_new()) == NULL)
		return NULL;
	m = &e->m;
	m->flags = env->flags;
	if ((m->sender = strdup(env->sender)) == NULL ||
	    (m->rcpt = calloc(env->nrcpt, sizeof(*m->rcpt))) == NULL)
		goto fail;
	for (size_t i = 0; i < env->nrcpt; i++) {
		if ((m->rcpt[i].addr = strdup(env->rcpts[i])) == NULL)
			goto fail;
		m->nrcpt = i + 1;
	}
	if (queue_strdup_opt(&m->client_addr, env->client_addr) < 0 ||
	    queue_strdup_opt(&m->client_name, env->client_name) < 0 ||
	    queue_strdup_opt(&m->helo, env->helo) < 0)
		goto fail;
	return e;
fail:
	queue_ent_free(e);
	return NULL;
}

/* queue_next_key - a fresh queue id: microseconds << 12, above every id used or seen */
uint64_t
queue_next_key(struct queue *q)
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
		uint64_t key = queue_next_key(q);
		int fd;

		queue_id_format(key, id);
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

	queue_id_format(key, id);
	if (unlinkat(q->qdirfd, id, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove queue file", id);
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
 * queue_unlink_later - the file of a message that has left the queue is
 * unlinked by the spare thread, off the loop. A crash before it happens
 * leaves the file, and the message is delivered again after the restart
 * (the rare duplicate SPEC §5 allows). -1 when there is no thread or the
 * ring is full: the caller unlinks at once.
 */
int
queue_unlink_later(struct queue *q, const char *id)
{
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (q->spare_started == 1 && !q->stop && q->unlink_n < QUEUE_UNLINK_MAX) {
		q->unlink_key[(q->unlink_head + q->unlink_n) % QUEUE_UNLINK_MAX] =
		    queue_id_key(id);
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

/* queue_file_open_new - an open, empty file with a fresh id: a spare, or made now */
static int
queue_file_open_new(struct queue *q, char *id, uint64_t *keyp)
{
	int fd;

	pthread_mutex_lock(&q->mu);
	if (q->spare_n > 0) {
		struct queue_spare sp = q->spare[q->spare_head];

		q->spare_head = (q->spare_head + 1) % QUEUE_SPARE_MAX;
		q->spare_n--;
		pthread_cond_signal(&q->spare_cv);
		pthread_mutex_unlock(&q->mu);
		queue_id_format(sp.key, id);
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
		queue_id_format(*keyp, id);
	if (q->spare_started == 0)
		queue_spare_start(q);
	return fd;
}

/* queue_file_create - take a fresh file, buffer the header and envelope records */
struct queue_file *
queue_file_create(struct queue *q, const struct queue_envelope *env)
{
	struct queue_file *qf;
	int saved;

	if (q->closing) {
		errno = ESHUTDOWN;
		return NULL;
	}
	if (queue_env_check(env) < 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((qf = calloc(1, sizeof(*qf))) == NULL)
		return NULL;
	qf->q = q;
	qf->fd = -1;
	qf->drec = SIZE_MAX;
	if ((qf->buf = malloc(QUEUE_WBUF_SIZE)) == NULL ||
	    (qf->ent = queue_ent_from_env(env)) == NULL)
		goto fail;
	if ((qf->fd = queue_file_open_new(q, qf->id, &qf->ent->key)) < 0)
		goto fail;
	memcpy(qf->ent->m.id, qf->id, QUEUE_ID_SIZE);

	queue_rec_filehdr(qf->buf);
	qf->used = QUEUE_REC_FILEHDR;
	{
		unsigned char fl[4];

		queue_rec_put32(fl, env->flags);
		(void)queue_file_put(qf, QUEUE_REC_FLAGS, fl, sizeof(fl));
	}
	(void)queue_file_put_str(qf, QUEUE_REC_SENDER, env->sender);
	for (size_t i = 0; i < env->nrcpt; i++)
		(void)queue_file_put_str(qf, QUEUE_REC_RCPT, env->rcpts[i]);
	if (env->client_addr != NULL)
		(void)queue_file_put_str(qf, QUEUE_REC_CLIENT_ADDR, env->client_addr);
	if (env->client_name != NULL)
		(void)queue_file_put_str(qf, QUEUE_REC_CLIENT_NAME, env->client_name);
	if (env->helo != NULL)
		(void)queue_file_put_str(qf, QUEUE_REC_HELO, env->helo);
	if (qf->err) {
		errno = qf->err;
		goto fail;
	}
	qf->ent->data_off = qf->off + qf->used;
	log_trace(TRACE_QUEUE, "%s: queue file created", qf->id);
	return qf;
fail:
	saved = errno;
	if (qf->fd >= 0) {
		(void)unlinkat(q->idirfd, qf->id, 0);
		close(qf->fd);
	}
	queue_ent_free(qf->ent);
	free(qf->buf);
	free(qf);
	errno = saved;
	return NULL;
}

/* queue_file_id - the queue id (valid until the file is committed or aborted) */
const char *
queue_file_id(const struct queue_file *qf)
{
	return qf->id;
}

/* queue_file_size - content bytes written so far */
uint64_t
queue_file_size(const struct queue_file *qf)
{
	return qf->data_size;
}

/*
 * queue_file_write - append content. Small pieces gather in the buffer as
 * one open 'D' record; when it fills (or reaches QUEUE_REC_DATA_MAX) the
 * buffer is written. A piece bigger than the buffer goes straight to the
 * file as its own records.
 */
int
queue_file_write(struct queue_file *qf, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (qf->err) {
		errno = qf->err;
		return -1;
	}
	qf->data_size += len;
	while (len > 0) {
		size_t room, n;

		if (qf->drec == SIZE_MAX && len >= QUEUE_WBUF_SIZE / 2) {
			n = len < QUEUE_REC_DATA_MAX ? len : QUEUE_REC_DATA_MAX;
			if (queue_file_put(qf, QUEUE_REC_DATA, p, n) < 0)
				goto fail;
			p += n;
			len -= n;
			continue;
		}
		if (qf->drec == SIZE_MAX) {
			if (QUEUE_WBUF_SIZE - qf->used < QUEUE_REC_HDR + 64 &&
			    queue_file_flush(qf) < 0)
				goto fail;
			qf->drec = qf->used;
			qf->buf[qf->used] = QUEUE_REC_DATA;
			qf->used += QUEUE_REC_HDR;
		}
		room = QUEUE_WBUF_SIZE - qf->used;
		n = len < room ? len : room;
		memcpy(qf->buf + qf->used, p, n);
		qf->used += n;
		p += n;
		len -= n;
		if (qf->used == QUEUE_WBUF_SIZE && queue_file_flush(qf) < 0)
			goto fail;
	}
	return 0;
fail:
	errno = qf->err;
	return -1;
}

/* queue_file_free - close and free (the file itself is the caller's business) */
static void
queue_file_free(struct queue_file *qf)
{
	if (qf->fd >= 0)
		close(qf->fd);
	queue_ent_free(qf->ent);
	free(qf->buf);
	free(qf);
}

/* queue_file_abort - unlink and free a file that will not be committed */
struct queue_file *
queue_file_abort(struct queue_file *qf)
{
	if (qf == NULL)
		return NULL;
	if (unlinkat(qf->q->idirfd, qf->id, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove aborted queue file", qf->id);
	log_trace(TRACE_QUEUE, "%s: queue file aborted", qf->id);
	queue_file_free(qf);
	return NULL;
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
 * queue_file_commit - write the prepend and end records, queue the file for
 * the next group sync; the callback runs on the loop once it is durable
 * (or failed: then the file is gone)
 */
void
queue_file_commit(struct queue_file *qf, const char *prepend, size_t prepend_len,
    void (*cb)(void *arg, int ok, const char *id), void *arg)
{
	struct queue *q = qf->q;
	struct queue_ent *e = qf->ent;
	unsigned char end[QUEUE_REC_HDR + QUEUE_REC_END_LEN];
	uint64_t arrival = util_now_us();

	qf->cb = cb;
	qf->cb_arg = arg;
	qf->ok = 0;
	if (prepend_len > QUEUE_REC_PREPEND_MAX && !qf->err)
		qf->err = EFBIG;
	queue_file_close_drec(qf);
	e->prepend_off = qf->off + qf->used;
	e->prepend_len = (uint32_t)prepend_len;
	(void)queue_file_put(qf, QUEUE_REC_PREPEND, prepend, prepend_len);
	if (!qf->err) {
		/* the end record: its crc covers every byte before the crc field */
		uint32_t crc;

		queue_rec_hdr(end, QUEUE_REC_END, QUEUE_REC_END_LEN);
		queue_rec_put64(end + QUEUE_REC_HDR, arrival);
		queue_rec_put64(end + QUEUE_REC_HDR + 8, qf->data_size);
		if (QUEUE_WBUF_SIZE - qf->used < sizeof(end))
			(void)queue_file_flush(qf);
		if (!qf->err) {
			memcpy(qf->buf + qf->used, end, sizeof(end) - 4);
			crc = crc32c(crc32c(qf->crc, qf->buf, qf->used), end, sizeof(end) - 4);
			queue_rec_put32(qf->buf + qf->used + sizeof(end) - 4, crc);
			qf->used += sizeof(end);
			(void)queue_file_flush(qf);
		}
	}
	free(qf->buf);
	qf->buf = NULL;
	e->m.arrival_us = arrival;
	e->m.size = qf->data_size + prepend_len;

	pthread_mutex_lock(&q->mu);
	if (qf->err) {
		/* straight to the done list: the callback still runs later, on the loop */
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

/*
 * queue_worker_done - on the loop: finish every synced file. Durable ones
 * join the index (counters, then cb(ok = 1), then the listener); failed
 * ones are unlinked and get cb(ok = 0).
 */
void
queue_worker_done(struct queue *q, int run_listener)
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
		if (qf->ok) {
			struct queue_ent *e = qf->ent;

			qf->ent = NULL;
			queue_index_insert(q, e);
			log_trace(TRACE_QUEUE, "%s: committed", qf->id);
			if (qf->cb != NULL)
				qf->cb(qf->cb_arg, 1, qf->id);
			if (run_listener && q->listener != NULL)
				q->listener(q->listener_arg, &e->m);
		} else {
			if (unlinkat(qf->moved ? q->qdirfd : q->idirfd, qf->id, 0) < 0 &&
			    errno != ENOENT)
				log_warn("%s: cannot remove unsynced queue file", qf->id);
			if (qf->cb != NULL)
				qf->cb(qf->cb_arg, 0, qf->id);
		}
		queue_file_free(qf);
	}
}

/* queue_worker_event - the eventfd is readable */
static void
queue_worker_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	queue_worker_done(arg, 1);
}

/* queue_worker_start - the eventfd, its event, and the commit thread */
int
queue_worker_start(struct queue *q, char *err, size_t errlen)
{
	int rc;

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

/* queue_worker_stop - let the worker sync what is pending, join it, finish on this thread */
void
queue_worker_stop(struct queue *q)
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
	while (q->unlink_n > 0)
		queue_unlink_key(q, queue_unlink_pop(q));
	/* unused spares: nobody will write them */
	for (; q->spare_n > 0; q->spare_n--) {
		struct queue_spare *sp = &q->spare[q->spare_head];
		char id[QUEUE_ID_SIZE];

		queue_id_format(sp->key, id);
		(void)unlinkat(q->idirfd, id, 0);
		close(sp->fd);
		q->spare_head = (q->spare_head + 1) % QUEUE_SPARE_MAX;
	}
	if (q->efd >= 0)
		queue_worker_done(q, 0);
	if (q->ev_done != NULL) {
		event_free(q->ev_done);
		q->ev_done = NULL;
	}
	if (q->efd >= 0) {
		close(q->efd);
		q->efd = -1;
	}
}
