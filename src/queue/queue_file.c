/*
 * queue_file.c - write a new message file and hand it to the group sync
 *
 * Owns:     open struct queue_file (fd, one write buffer).
 * Lifetime: struct queue_file from queue_file_create() until
 *           queue_file_commit() (then queue_sync.c holds it and hands it
 *           back to queue_file_synced(), which frees it) or
 *           queue_file_abort(). The envelope is copied at create.
 * Errors:   a write error is remembered and reported by the commit
 *           callback (ok = 0); the file is then unlinked.
 * Context:  event-loop thread.
 *
 * A file is written in incoming/, in the order of queue_rec.h: header and
 * envelope at create, 'D' records as content arrives (through one
 * QUEUE_WBUF_SIZE buffer, so a 5 KB message costs one write(2) in all),
 * then at commit the 'P' record and the 'E' record whose crc covers
 * everything before it. The commit worker (queue_sync.c) renames it into
 * queue/ just before the sync, so queue/ only holds whole messages; the
 * 'E' record, not the rename, is what makes a file committed (recovery
 * checks it), and incoming/ is emptied at start-up.
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "lib/crc32c.h"
#include "lib/log.h"
#include "lib/map.h"
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

	if ((e = queue_index_ent_new()) == NULL)
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
	queue_index_ent_free(e);
	return NULL;
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
	if ((qf->fd = queue_sync_take_file(q, qf->id, &qf->ent->key)) < 0)
		goto fail;
	memcpy(qf->ent->m.id, qf->id, QUEUE_ID_SIZE);
	/* its file reaches queue/ before the loop hears of it: the window's scan must skip it */
	if (map_put(q->committing, qf->id, qf) < 0)
		goto fail;
	qf->listed = 1;

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
	if (qf->listed)
		(void)map_del(qf->q->committing, qf->id);
	queue_index_ent_free(qf->ent);
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
	if (qf->listed)
		(void)map_del(qf->q->committing, qf->id);
	queue_index_ent_free(qf->ent);
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

/* queue_file_add_flags - see queue.h */
void
queue_file_add_flags(struct queue_file *qf, unsigned flags)
{
	qf->add_flags |= flags;
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
			if (qf->add_flags != 0) {
				/* flags known only now: a state record, synced with the rest */
				unsigned char rec[QUEUE_REC_ST_MAXLEN];
				size_t n;

				e->m.flags |= qf->add_flags;
				n = queue_rec_state_flags(rec, e->m.flags);
				if (QUEUE_WBUF_SIZE - qf->used < n)
					(void)queue_file_flush(qf);
				if (!qf->err) {
					memcpy(qf->buf + qf->used, rec, n);
					qf->used += n;
				}
			}
			(void)queue_file_flush(qf);
		}
	}
	free(qf->buf);
	qf->buf = NULL;
	e->m.arrival_us = arrival;
	e->m.size = qf->data_size + prepend_len;

	queue_sync_submit(q, qf);
}

/*
 * queue_file_synced - on the loop, from queue_sync.c: a file's sync is
 * over. Durable ones join the index (counters, then cb(ok = 1), then the
 * listener); failed ones are unlinked and get cb(ok = 0). Frees qf.
 */
void
queue_file_synced(struct queue *q, struct queue_file *qf, int run_listener)
{
	if (qf->ok) {
		struct queue_ent *e = qf->ent;
		int load;

		qf->ent = NULL;
		e->m.file_size = qf->off;
		q->count++;
		q->bytes += e->m.file_size;
		/* the window is full and nothing waiting could make room: parked (on disk only) */
		if (!(load = queue_window_commit_room(q)) || queue_index_insert(q, e) < 0) {
			queue_window_park_new(q, e);
			e = queue_index_ent_free(e);
		}
		log_trace(TRACE_QUEUE, "%s: committed%s", qf->id, load ? "" : ", parked");
		if (qf->cb != NULL)
			qf->cb(qf->cb_arg, 1, qf->id);
		if (e != NULL && run_listener && q->listener != NULL)
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
