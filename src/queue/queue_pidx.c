/*
 * queue_pidx.c - the index of parked messages: <data_dir>/queue.idx, one
 *                record per message that was ever parked, so that views of
 *                a big queue read one file instead of one file per message
 *
 * Owns:     struct queue_pidx (the open index file, its marker, the thread
 *           that checks, rebuilds or compacts it, the records appended
 *           while that thread runs), struct queue_pidx_scan.
 * Lifetime: queue_pidx_start() at queue_recover_start() to
 *           queue_pidx_close() at queue_close(); a scan from
 *           queue_pidx_scan_open() to queue_pidx_scan_close() (before
 *           queue_close()).
 * Errors:   the index is an aid, never needed for mail: an index that
 *           cannot be written or read is given up (queue_pidx_ready() 0,
 *           views read queue/) and rebuilt at the next start; nothing of
 *           it is fatal.
 * Context:  event-loop thread, except pidx_main() on the index's own
 *           thread, which shares with the loop only the fields under
 *           queue_pidx.mu, q->qdirfd and the data_dir fd.
 *
 * The record format is in queue_pidx.h. The rules (docs/queue.md, "The index"):
 *
 * - One record per message for its life. A message gets its record when
 *   it is first parked (queue_pidx_add(): struct queue_ent.indexed is 0
 *   for a message committed by this process, 1 for one loaded from its
 *   file, which has a record already), or at a clean stop if it is loaded
 *   then. Mail delivered from the window never costs a record.
 * - Records of delivered messages stay until a compaction drops them;
 *   readers check that the message file still exists.
 * - Clean stop: the missing records, fsync, then the marker queue.idx.ok
 *   ("<length> <records> <queue/'s mtime in ns>\n"). At start the marker
 *   is removed (and data_dir synced) before anything is appended; an index
 *   whose length matches its marker, with queue/ unchanged since, is
 *   checked record by record on the thread; anything else (first start,
 *   crash, damage, files restored into queue/) is rebuilt there from
 *   queue/: every file whose id is below the first id this process can
 *   hand out. Newer mail follows the first rule.
 * - While the thread writes a new file (rebuild, compaction), the loop's
 *   records also go to a tail in memory that the thread adds to the new
 *   file (now and then, and at the swap, a rename under the mutex).
 *   During a check or a compaction they are appended to the old file as
 *   well, which stays complete.
 */
#include "queue/queue_int.h"
#include "queue/queue_pidx.h"
#include "queue/queue_rec.h"
#include "queue/queue_tool.h"
#include "lib/log.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#define PIDX_FILE       "queue.idx"
#define PIDX_NEW        "queue.idx.new"
#define PIDX_MARKER     "queue.idx.ok"
#define PIDX_MARKER_MAX 64
#define PIDX_WBUF       (256 * 1024)    /* write buffer of the thread */
#define PIDX_TAIL_DRAIN (64 * 1024)     /* the thread takes the tail at this size */
#define PIDX_BAD_MAX    65536           /* files the rebuild could not read, reported */
#define PIDX_BAD_READ   4096            /* of those, read again on the loop at the swap */
#define PIDX_COMPACT_SLACK 4096         /* records beyond 2 x queue_count before a compaction */

enum pidx_job { PIDX_NONE, PIDX_CHECK, PIDX_REBUILD, PIDX_COMPACT };
enum pidx_res { PIDX_RUNNING, PIDX_OK, PIDX_FAILED, PIDX_ABORTED };

struct queue_pidx {
	struct queue *q;
	int dfd;                     /* data_dir */
	int fd;                      /* queue.idx, O_APPEND; -1: none (being rebuilt, or given up) */
	uint64_t len, nrec;          /* its length and records (loop) */
	uint64_t bound;              /* the first key this process can hand out */
	int ready;                   /* complete, checked: scans may run */
	int complete;                /* every parked message has its record here (or in the tail) */
	int old_short;               /* an append to the old file failed while the thread ran */
	uint64_t expect_nrec;        /* records the marker promises (a check) */
	uint64_t slack;              /* records beyond 2 x queue_count before a compaction */
	int efd;                     /* eventfd: thread -> loop */
	struct event *ev;
	uint64_t t0_us;

	/* the thread */
	pthread_t thread;
	int running;                 /* started, not joined (loop) */
	int pending;                 /* prepared, not started yet (queue_pidx_go()) */
	pthread_mutex_t mu;
	/* under mu */
	enum pidx_job job;           /* a check that fails becomes a rebuild */
	int announced;               /* the loop has logged the rebuild's start */
	int write_old;               /* appends also go to fd (check, compaction) */
	int stop;
	int closing;                 /* a check finishes, but does not turn into a rebuild */
	int hold;                    /* tests: a rewrite waits before its swap (queue_pidx_hold()) */
	pthread_cond_t cv;
	int done;
	enum pidx_res res;
	unsigned char *tail;         /* records appended while the thread runs */
	size_t tail_len, tail_cap;
	uint64_t tail_nrec;
	int tail_lost;               /* the tail ran out of memory: the result is incomplete */
	int newfd;                   /* the result: the new file (rebuild, compaction) */
	uint64_t new_len, new_nrec;  /* its length and records; a check: records counted */
	uint64_t files;              /* files read (rebuild) */
	uint64_t *bad;               /* keys of files the rebuild could not parse */
	size_t nbad, capbad;
	uint64_t nbad_total;         /* reported or not (over PIDX_BAD_MAX) */
	uint64_t len0;               /* the old file's length when the job began (check, compaction) */
};

/* ------------------------------------------------------ the thread's output */

/* A new index file, written through a buffer by the thread. */
struct pidx_out {
	int fd;
	unsigned char *buf;
	size_t used;
	uint64_t off, nrec;
	int err;
};

static void
pidx_out_flush(struct pidx_out *o)
{
	size_t done = 0;

	while (done < o->used && o->err == 0) {
		ssize_t n = write(o->fd, o->buf + done, o->used - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			o->err = n < 0 ? errno : ENOSPC;
			break;
		}
		done += (size_t)n;
		o->off += (uint64_t)n;
	}
	o->used = 0;
}

/* pidx_out_put - bytes of whole records (nrec of them) */
static void
pidx_out_put(struct pidx_out *o, const unsigned char *p, size_t len, uint64_t nrec)
{
	o->nrec += nrec;
	if (o->used + len > PIDX_WBUF)
		pidx_out_flush(o);
	if (len > PIDX_WBUF) {
		while (len > 0 && o->err == 0) {
			ssize_t n = write(o->fd, p, len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				o->err = n < 0 ? errno : ENOSPC;
				break;
			}
			p += n;
			len -= (size_t)n;
			o->off += (uint64_t)n;
		}
		return;
	}
	memcpy(o->buf + o->used, p, len);
	o->used += len;
}

/* pidx_out_open - queue.idx.new, emptied, with the header; -1 with errno */
static int
pidx_out_open(struct queue_pidx *p, struct pidx_out *o)
{
	memset(o, 0, sizeof(*o));
	if ((o->buf = malloc(PIDX_WBUF)) == NULL)
		return -1;
	o->fd = openat(p->dfd, PIDX_NEW, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (o->fd < 0) {
		int saved = errno;

		free(o->buf);
		o->buf = NULL;
		errno = saved;
		return -1;
	}
	pidx_out_put(o, (const unsigned char *)QUEUE_PIDX_MAGIC, QUEUE_PIDX_MAGIC_LEN, 0);
	return 0;
}

/* pidx_out_discard - give up a new file */
static void
pidx_out_discard(struct queue_pidx *p, struct pidx_out *o)
{
	if (o->fd >= 0) {
		close(o->fd);
		(void)unlinkat(p->dfd, PIDX_NEW, 0);
	}
	o->fd = -1;
	free(o->buf);
	o->buf = NULL;
}

/* pidx_drain_tail_locked - the thread takes the records the loop appended so far (under mu) */
static void
pidx_drain_tail_locked(struct queue_pidx *p, struct pidx_out *o)
{
	if (p->tail_len > 0) {
		pidx_out_put(o, p->tail, p->tail_len, p->tail_nrec);
		p->tail_len = 0;
		p->tail_nrec = 0;
	}
}

/* pidx_drain_tail - now and then: the tail into the new file (short hold of mu) */
static void
pidx_drain_tail(struct queue_pidx *p, struct pidx_out *o)
{
	pthread_mutex_lock(&p->mu);
	if (p->tail_len >= PIDX_TAIL_DRAIN)
		pidx_drain_tail_locked(p, o);
	pthread_mutex_unlock(&p->mu);
}

static int
pidx_stopping(struct queue_pidx *p)
{
	int stop;

	pthread_mutex_lock(&p->mu);
	stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	return stop;
}

/* pidx_wake - tell the loop that the thread has news */
static void
pidx_wake(struct queue_pidx *p)
{
	uint64_t one = 1;

	if (p->efd >= 0)
		while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
}

/*
 * pidx_swap - the end of a rewrite: the rest of the tail, then the new
 * file takes the name (under mu, so the loop's next record goes to it)
 */
static void
pidx_swap(struct queue_pidx *p, struct pidx_out *o)
{
	pthread_mutex_lock(&p->mu);
	while (p->hold && !p->stop)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->stop) {
		p->res = PIDX_ABORTED;
		goto out;
	}
	if (p->tail_lost) {
		o->err = ENOMEM;
		p->res = PIDX_FAILED;
		goto out;
	}
	pidx_drain_tail_locked(p, o);
	pidx_out_flush(o);
	if (o->err != 0 || renameat(p->dfd, PIDX_NEW, p->dfd, PIDX_FILE) < 0) {
		if (o->err == 0)
			o->err = errno;
		p->res = PIDX_FAILED;
		goto out;
	}
	p->newfd = o->fd;
	o->fd = -1;
	p->new_len = o->off;
	p->new_nrec = o->nrec;
	p->res = PIDX_OK;
out:
	p->done = 1;
	pthread_mutex_unlock(&p->mu);
	pidx_out_discard(p, o);
	pidx_wake(p);
}

/* pidx_bad - the rebuild could not parse this file: the loop looks again */
static void
pidx_bad(struct queue_pidx *p, uint64_t key)
{
	pthread_mutex_lock(&p->mu);
	if (p->nbad == p->capbad && p->capbad < PIDX_BAD_MAX) {
		size_t ncap = p->capbad ? p->capbad * 2 : 64;
		uint64_t *nb = realloc(p->bad, ncap * sizeof(*nb));

		if (nb != NULL) {
			p->bad = nb;
			p->capbad = ncap;
		}
	}
	if (p->nbad < p->capbad)
		p->bad[p->nbad++] = key;
	p->nbad_total++;
	pthread_mutex_unlock(&p->mu);
}

/* pidx_rebuild - thread: a record for every readable pending file below bound */
static void
pidx_rebuild(struct queue_pidx *p)
{
	struct queue *q = p->q;
	struct pidx_out o;
	struct dirent *de;
	unsigned char *rec = NULL;
	size_t reccap = 0;
	uint64_t files = 0;
	DIR *d = NULL;
	int fd;

	if (pidx_out_open(p, &o) < 0) {
		o.fd = -1;
		o.err = errno;
		goto fail;
	}
	if ((fd = openat(q->qdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (d = fdopendir(fd)) == NULL) {
		o.err = errno;
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	while ((de = readdir(d)) != NULL && o.err == 0) {
		struct queue_parse_result res;
		struct queue_msg m;
		uint64_t key = queue_index_id_key(de->d_name);
		size_t n;
		int mfd;

		if (key == 0 || key >= p->bound)
			continue;
		if ((++files & 255) == 0) {
			if (pidx_stopping(p))
				break;
			pidx_drain_tail(p, &o);
		}
		if ((mfd = queue_recover_open(q->qdirfd, de->d_name)) < 0) {
			if (errno != ENOENT)
				pidx_bad(p, key);
			continue;
		}
		if (queue_reader_parse_fd(mfd, &m, &res) < 0) {
			close(mfd);
			pidx_bad(p, key);
			continue;
		}
		close(mfd);
		if (res.status != QUEUE_PARSE_OK) {
			pidx_bad(p, key);
			continue;
		}
		if (queue_rec_msg_pending(&m)) {
			n = queue_pidx_rec_encoded_len(&m);
			if (n > reccap) {
				unsigned char *nr = realloc(rec, n);

				if (nr == NULL) {
					queue_rec_msg_free_fields(&m);
					o.err = ENOMEM;
					break;
				}
				rec = nr;
				reccap = n;
			}
			if ((n = queue_pidx_rec_encode(rec, reccap, key, &m)) > 0)
				pidx_out_put(&o, rec, n, 1);
		}
		queue_rec_msg_free_fields(&m);
	}
	closedir(d);
	d = NULL;
	free(rec);
	rec = NULL;
	pthread_mutex_lock(&p->mu);
	p->files = files;
	pthread_mutex_unlock(&p->mu);
	if (o.err != 0)
		goto fail;
	pidx_swap(p, &o);
	return;
fail:
	if (d != NULL)
		closedir(d);
	free(rec);
	pthread_mutex_lock(&p->mu);
	p->res = p->stop ? PIDX_ABORTED : PIDX_FAILED;
	p->new_len = (uint64_t)o.err;       /* the errno, for the loop's warning */
	p->done = 1;
	pthread_mutex_unlock(&p->mu);
	pidx_out_discard(p, &o);
	pidx_wake(p);
}

/* pidx_compact - thread: the records of the old file whose message file still exists */
static void
pidx_compact(struct queue_pidx *p)
{
	struct queue *q = p->q;
	struct pidx_out o;
	struct queue_pidx_rd rd;
	struct queue_pidx_rec r;
	const unsigned char *raw;
	size_t rawlen;
	uint64_t n = 0;
	int rc = 0;

	rd.buf = NULL;
	if (pidx_out_open(p, &o) < 0) {
		o.fd = -1;
		o.err = errno;
		goto fail;
	}
	if (queue_pidx_rec_rd_init(&rd, p->fd, p->len0) < 0) {
		o.err = ENOMEM;
		goto fail;
	}
	while (o.err == 0 && (rc = queue_pidx_rec_rd_next(&rd, &r, &raw, &rawlen)) == 1) {
		char id[QUEUE_ID_SIZE];
		struct stat st;

		if ((++n & 1023) == 0) {
			if (pidx_stopping(p))
				break;
			pidx_drain_tail(p, &o);
		}
		queue_index_id_format(r.key, id);
		if (fstatat(q->qdirfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			pidx_out_put(&o, raw, rawlen, 1);
	}
	if (o.err == 0 && rc < 0)
		o.err = errno;
	queue_pidx_rec_rd_free(&rd);
	if (o.err != 0)
		goto fail;
	pidx_swap(p, &o);
	return;
fail:
	queue_pidx_rec_rd_free(&rd);
	pthread_mutex_lock(&p->mu);
	p->res = p->stop ? PIDX_ABORTED : PIDX_FAILED;
	p->new_len = (uint64_t)o.err;
	p->done = 1;
	pthread_mutex_unlock(&p->mu);
	pidx_out_discard(p, &o);
	pidx_wake(p);
}

/* pidx_check - thread: 1 when the old file decodes to its end (records counted), 0 if not */
static int
pidx_check(struct queue_pidx *p, uint64_t *nrec)
{
	struct queue_pidx_rd rd;
	struct queue_pidx_rec r;
	const unsigned char *raw;
	size_t rawlen;
	int rc;

	*nrec = 0;
	if (queue_pidx_rec_magic_ok(p->fd) < 0 || queue_pidx_rec_rd_init(&rd, p->fd, p->len0) < 0)
		return 0;
	while ((rc = queue_pidx_rec_rd_next(&rd, &r, &raw, &rawlen)) == 1)
		if ((++*nrec & 4095) == 0 && pidx_stopping(p))
			break;
	queue_pidx_rec_rd_free(&rd);
	return rc == 0 && *nrec == p->expect_nrec;
}

/* pidx_main - the index's thread: a check (that may turn into a rebuild), a rebuild or a compaction */
static void *
pidx_main(void *arg)
{
	struct queue_pidx *p = arg;
	enum pidx_job job;

	pthread_mutex_lock(&p->mu);
	job = p->job;
	pthread_mutex_unlock(&p->mu);
	if (job == PIDX_CHECK) {
		uint64_t n;
		int ok = pidx_check(p, &n);

		pthread_mutex_lock(&p->mu);
		if (ok || p->stop || p->closing) {
			p->res = ok && !p->stop ? PIDX_OK : PIDX_ABORTED;
			p->new_nrec = n;
			p->done = 1;
			pthread_mutex_unlock(&p->mu);
			pidx_wake(p);
			return NULL;
		}
		/* damaged: rebuilt instead; appends keep going to the tail */
		p->job = job = PIDX_REBUILD;
		p->write_old = 0;
		pthread_mutex_unlock(&p->mu);
		pidx_wake(p);
	}
	if (job == PIDX_REBUILD)
		pidx_rebuild(p);
	else
		pidx_compact(p);
	return NULL;
}

/* ------------------------------------------------------------- the loop */

/* pidx_tail_push - a record for the running thread's new file (under mu) */
static void
pidx_tail_push_locked(struct queue_pidx *p, const unsigned char *rec, size_t len)
{
	if (p->tail_cap - p->tail_len < len) {
		size_t ncap = p->tail_cap ? p->tail_cap : 4096;
		unsigned char *nt;

		while (ncap - p->tail_len < len)
			ncap *= 2;
		if ((nt = realloc(p->tail, ncap)) == NULL) {
			p->tail_lost = 1;
			return;
		}
		p->tail = nt;
		p->tail_cap = ncap;
	}
	memcpy(p->tail + p->tail_len, rec, len);
	p->tail_len += len;
	p->tail_nrec++;
}

/* pidx_give_up - the index cannot be kept complete: views read queue/ until the next start */
static void
pidx_give_up(struct queue_pidx *p, const char *why)
{
	if (p->complete || p->ready)
		log_warnx("%s/" PIDX_FILE ": %s; views read queue/ until it is rebuilt at the next "
		    "start", p->q->data_dir, why);
	p->ready = 0;
	p->complete = 0;
}

/* pidx_write - append len bytes (whole records) to fd; -1 (the file cut back) on failure */
static int
pidx_write(struct queue_pidx *p, const unsigned char *rec, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(p->fd, rec + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			log_warn("%s/" PIDX_FILE ": cannot append", p->q->data_dir);
			(void)!ftruncate(p->fd, (off_t)p->len);
			return -1;
		}
		done += (size_t)n;
	}
	p->len += len;
	return 0;
}

/*
 * pidx_prepare_job - the state of a new job: from now on the loop's
 * records also go to the tail (pending: the thread is not started yet)
 */
static void
pidx_prepare_job(struct queue_pidx *p, enum pidx_job job)
{
	pthread_mutex_lock(&p->mu);
	p->job = job;
	p->announced = job == PIDX_REBUILD;
	p->write_old = job != PIDX_REBUILD;
	p->stop = p->done = 0;
	p->res = PIDX_RUNNING;
	p->tail_len = 0;
	p->tail_nrec = 0;
	p->tail_lost = 0;
	p->newfd = -1;
	p->new_len = p->new_nrec = p->files = 0;
	p->nbad = 0;
	p->nbad_total = 0;
	p->len0 = p->len;
	p->old_short = 0;
	pthread_mutex_unlock(&p->mu);
	p->pending = 1;
}

/* pidx_launch - the thread on the prepared job; -1 when it cannot start (the job is dropped) */
static int
pidx_launch(struct queue_pidx *p)
{
	enum pidx_job job;
	int rc;

	if (!p->pending)
		return 0;
	p->pending = 0;
	pthread_mutex_lock(&p->mu);
	job = p->job;
	pthread_mutex_unlock(&p->mu);
	p->t0_us = util_mono_us();
	if ((rc = pthread_create(&p->thread, NULL, pidx_main, p)) != 0) {
		log_warnx("%s/" PIDX_FILE ": cannot start its thread: %s", p->q->data_dir,
		    strerror(rc));
		if (job != PIDX_COMPACT) {
			if (p->fd >= 0)
				close(p->fd);
			p->fd = -1;
			p->ready = p->complete = 0;
		}
		return -1;
	}
	p->running = 1;
	if (job == PIDX_REBUILD)
		log_info("%s/" PIDX_FILE ": rebuilding the index of parked messages from queue/",
		    p->q->data_dir);
	return 0;
}

/* pidx_bad_keys - files the rebuild could not read: a loaded one gets its record when parked, others are read now */
static int pidx_read_key(struct queue *q, uint64_t key, const char *id,
    int (*cb)(void *, const struct queue_msg *), void *arg);

static int
pidx_append_read(void *arg, const struct queue_msg *m)
{
	struct queue_pidx *p = arg;
	size_t n = queue_pidx_rec_encoded_len(m);
	unsigned char *rec = malloc(n);

	if (rec == NULL)
		return 0;
	if ((n = queue_pidx_rec_encode(rec, n, queue_index_id_key(m->id), m)) > 0 &&
	    pidx_write(p, rec, n) == 0)
		p->nrec++;
	free(rec);
	return 0;
}

static void
pidx_bad_keys(struct queue_pidx *p, const uint64_t *keys, size_t n, uint64_t total)
{
	uint64_t before = p->nrec;
	size_t reread = 0;

	for (size_t i = 0; i < n && p->fd >= 0; i++) {
		struct queue_ent *e = queue_index_find(p->q, keys[i]);
		char id[QUEUE_ID_SIZE];

		if (e != NULL) {
			e->indexed = 0;
			continue;
		}
		if (reread == PIDX_BAD_READ)
			continue;       /* a bound on the loop's work: damaged files, mostly */
		reread++;
		queue_index_id_format(keys[i], id);
		(void)pidx_read_key(p->q, keys[i], id, pidx_append_read, p);
	}
	if (total > 0)
		log_info("%s/" PIDX_FILE ": %llu file(s) of queue/ could not be read while rebuilding "
		    "(damaged, unfinished or unreadable: see the warnings when they are loaded); "
		    "%zu read again, %llu recorded", p->q->data_dir, (unsigned long long)total,
		    reread, (unsigned long long)(p->nrec - before));
}

/*
 * pidx_finish - the loop's end of a job that is done (or told to stop:
 * then it waits for the thread); logs what came of it
 */
static void
pidx_finish(struct queue_pidx *p)
{
	enum pidx_res res;
	enum pidx_job job;
	uint64_t *bad, nbad_total;
	size_t nbad;
	double secs;

	if (!p->running)
		return;
	pthread_join(p->thread, NULL);
	p->running = 0;
	pthread_mutex_lock(&p->mu);
	res = p->res;
	job = p->job;
	bad = p->bad;
	nbad = p->nbad;
	nbad_total = p->nbad_total;
	p->bad = NULL;
	p->nbad = p->capbad = 0;
	p->tail_len = p->tail_nrec = 0;
	pthread_mutex_unlock(&p->mu);
	secs = (double)(util_mono_us() - p->t0_us) / 1e6;
	switch (job) {
	case PIDX_CHECK:
		if (res == PIDX_OK) {
			p->nrec += p->new_nrec;     /* those checked, and those appended meanwhile */
			p->complete = 1;
			p->ready = 1;
			if (p->old_short)
				pidx_give_up(p, "a record could not be appended");
			log_info("%s/" PIDX_FILE ": the index of parked messages is complete: %llu "
			    "record(s) checked (%.1f s)", p->q->data_dir,
			    (unsigned long long)p->new_nrec, secs);
		}
		break;
	case PIDX_REBUILD:
	case PIDX_COMPACT:
		if (res == PIDX_OK) {
			if (p->fd >= 0)
				close(p->fd);
			p->fd = p->newfd;
			p->newfd = -1;
			p->len = p->new_len;
			p->nrec = p->new_nrec;
			p->complete = 1;
			p->ready = 1;
			if (job == PIDX_REBUILD) {
				log_info("%s/" PIDX_FILE ": rebuilt: %llu file(s) read, %llu record(s) "
				    "(%.1f s)", p->q->data_dir, (unsigned long long)p->files,
				    (unsigned long long)p->nrec, secs);
				pidx_bad_keys(p, bad, nbad, nbad_total);
			} else
				log_trace(TRACE_QUEUE, "%s/" PIDX_FILE ": compacted to %llu record(s) "
				    "(%.1f s)", p->q->data_dir, (unsigned long long)p->nrec, secs);
			break;
		}
		if (job == PIDX_COMPACT) {
			/* the old file had every record appended to it too: it is still complete */
			if (res == PIDX_FAILED) {
				errno = (int)p->new_len;
				log_warn("%s/" PIDX_FILE ": cannot compact", p->q->data_dir);
			}
			if (p->old_short)
				pidx_give_up(p, "a record could not be appended");
			break;
		}
		if (res == PIDX_FAILED) {
			errno = (int)p->new_len;
			log_warn("%s/" PIDX_FILE ": cannot rebuild", p->q->data_dir);
		}
		if (p->fd >= 0)
			close(p->fd);
		p->fd = -1;
		p->ready = p->complete = 0;
		break;
	case PIDX_NONE:
		break;
	}
	free(bad);
}

/* pidx_poll - a job whose thread is done is finished (lazily, on any call from the loop) */
static void
pidx_poll(struct queue_pidx *p)
{
	int done, announce = 0;

	if (!p->running)
		return;
	pthread_mutex_lock(&p->mu);
	done = p->done;
	if (p->job == PIDX_REBUILD && !p->announced) {
		p->announced = announce = 1;
	}
	pthread_mutex_unlock(&p->mu);
	if (announce)
		log_info("%s/" PIDX_FILE ": damaged (a record fails its check); rebuilding the index "
		    "of parked messages from queue/", p->q->data_dir);
	if (done)
		pidx_finish(p);
}

/* pidx_on_event - the thread has news */
static void
pidx_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct queue_pidx *p = arg;
	uint64_t v;

	(void)what;
	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pidx_poll(p);
}

/* pidx_maybe_compact - garbage (records of delivered mail) past twice the queue: rewrite */
static void
pidx_maybe_compact(struct queue_pidx *p)
{
	if (p->running || p->pending || !p->ready || p->fd < 0 || p->q->recovering ||
	    p->nrec <= 2 * p->q->count + p->slack)
		return;
	pidx_prepare_job(p, PIDX_COMPACT);
	(void)pidx_launch(p);
}

/* pidx_qdir_stamp - queue/'s mtime in nanoseconds (0 when it cannot be read) */
static uint64_t
pidx_qdir_stamp(const struct queue *q)
{
	struct stat st;

	if (fstat(q->qdirfd, &st) < 0 || st.st_mtim.tv_sec < 0)
		return 0;
	return (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
}

/*
 * pidx_read_marker - the marker's numbers: the index's length, its
 * records, queue/'s mtime at the stop; -1 when missing or malformed
 */
static int
pidx_read_marker(struct queue_pidx *p, uint64_t v[3])
{
	char buf[PIDX_MARKER_MAX + 1], *end;
	const char *s = buf;
	ssize_t n;
	int fd;

	if ((fd = openat(p->dfd, PIDX_MARKER, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, PIDX_MARKER_MAX);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (int i = 0; i < 3; i++) {
		if (*s < '0' || *s > '9')
			return -1;
		errno = 0;
		v[i] = strtoull(s, &end, 10);
		if (errno != 0 || *end != (i < 2 ? ' ' : '\n'))
			return -1;
		s = end + 1;
	}
	return *s == '\0' ? 0 : -1;
}

/*
 * queue_pidx_start - see queue_int.h. The marker goes first (removed and
 * synced away, so that a crash from now on never finds a stale one), then
 * the index is checked or rebuilt on the thread.
 */
void
queue_pidx_start(struct queue *q)
{
	struct queue_pidx *p;
	uint64_t mark[3] = { 0, 0, 0 };
	int trusted;
	struct stat st;

	if (q->pidx != NULL)
		return;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		log_warnx("%s/" PIDX_FILE ": out of memory; no index", q->data_dir);
		return;
	}
	p->q = q;
	p->fd = p->efd = p->newfd = -1;
	p->slack = PIDX_COMPACT_SLACK;
	p->hold = q->pidx_hold;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	q->pidx = p;
	/*
	 * Every file in queue/ has an id below now (ids are creation times;
	 * the directory's mtime, which recovery uses, is coarser than that);
	 * every id handed out from now on is above it.
	 */
	pthread_mutex_lock(&q->mu);
	p->bound = util_now_us() << 12;
	if (p->bound <= q->last_id)
		p->bound = q->last_id + 1;
	if (p->bound - 1 < q->spare_floor)
		q->last_id = p->bound - 1;
	pthread_mutex_unlock(&q->mu);
	if ((p->dfd = open(q->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warn("%s: cannot open; no index of parked messages", q->data_dir);
		return;
	}
	/* a marker of this index, and nothing entered or left queue/ since (a restore) */
	trusted = pidx_read_marker(p, mark) == 0 && mark[2] != 0 && mark[2] == pidx_qdir_stamp(q);
	if (unlinkat(p->dfd, PIDX_MARKER, 0) == 0) {
		if (fsync(p->dfd) < 0) {
			log_warn("%s: cannot sync", q->data_dir);
			trusted = 0;
		}
	} else if (errno != ENOENT) {
		log_warn("%s/" PIDX_MARKER ": cannot remove", q->data_dir);
		trusted = 0;
	}
	if (q->base != NULL && (p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0 &&
	    ((p->ev = event_new(q->base, p->efd, EV_READ | EV_PERSIST, pidx_on_event, p)) == NULL ||
	    event_add(p->ev, NULL) < 0))
		log_warnx("%s/" PIDX_FILE ": no event for its thread", q->data_dir);
	if (trusted) {
		p->fd = openat(p->dfd, PIDX_FILE, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
		trusted = p->fd >= 0 && fstat(p->fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size == mark[0] && mark[0] >= QUEUE_PIDX_MAGIC_LEN;
		if (!trusted && p->fd >= 0) {
			close(p->fd);
			p->fd = -1;
		}
	}
	if (trusted) {
		p->len = mark[0];
		p->expect_nrec = mark[1];
		pidx_prepare_job(p, PIDX_CHECK);
	} else
		pidx_prepare_job(p, PIDX_REBUILD);
}

/* queue_pidx_go - see queue_int.h: the job prepared at start runs */
void
queue_pidx_go(struct queue *q)
{
	if (q->pidx != NULL && q->pidx->pending)
		(void)pidx_launch(q->pidx);
}

/* queue_pidx_add - see queue_int.h: e's record, if it has none yet */
void
queue_pidx_add(struct queue *q, struct queue_ent *e)
{
	struct queue_pidx *p = q->pidx;
	unsigned char small[2048], *rec = small;
	size_t n;

	if (p == NULL || e->indexed)
		return;
	e->indexed = 1;
	pidx_poll(p);
	if (!p->running && !p->pending && (p->fd < 0 || !p->complete))
		return;         /* given up: rebuilt at the next start */
	n = queue_pidx_rec_encoded_len(&e->m);
	if (n > sizeof(small) && (rec = malloc(n)) == NULL) {
		pidx_give_up(p, "out of memory");
		return;
	}
	if ((n = queue_pidx_rec_encode(rec, n, e->key, &e->m)) == 0)
		goto out;
	if (p->running || p->pending) {
		int queued = 0, write_old;

		pthread_mutex_lock(&p->mu);
		if (!p->done) {
			pidx_tail_push_locked(p, rec, n);
			queued = 1;
		}
		write_old = p->write_old;
		pthread_mutex_unlock(&p->mu);
		if (queued) {
			/* the old file gets it too, so that it stays complete (check, compaction) */
			if (write_old && p->fd >= 0) {
				if (pidx_write(p, rec, n) == 0)
					p->nrec++;
				else
					p->old_short = 1;
			}
			goto out;
		}
		pidx_finish(p);         /* done meanwhile: the record goes to its result */
		if (!p->complete)
			goto out;
	}
	if (p->fd < 0)
		goto out;
	if (pidx_write(p, rec, n) < 0) {
		pidx_give_up(p, "a record could not be appended");
		goto out;
	}
	p->nrec++;
	pidx_maybe_compact(p);
out:
	if (rec != small)
		free(rec);
}

/* queue_pidx_close - see queue_int.h: the missing records, fsync, the marker */
void
queue_pidx_close(struct queue *q)
{
	struct queue_pidx *p = q->pidx;
	char marker[PIDX_MARKER_MAX];
	int fd;

	if (p == NULL)
		return;
	if (p->pending && p->job == PIDX_CHECK)
		(void)pidx_launch(p);       /* never begun (a stop during start-up): run it now */
	if (p->running) {
		/* a check is let finish (a sequential read); a rewrite stops */
		pthread_mutex_lock(&p->mu);
		p->closing = 1;
		if (p->job != PIDX_CHECK)
			p->stop = 1;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pidx_finish(p);
	}
	if (p->fd >= 0 && p->complete) {
		struct queue_ent *e;
		int ok = 1;

		for (e = q->head; e != NULL && ok; e = e->next) {
			unsigned char small[2048], *rec = small;
			size_t n;

			if (e->indexed)
				continue;
			n = queue_pidx_rec_encoded_len(&e->m);
			if (n > sizeof(small) && (rec = malloc(n)) == NULL) {
				ok = 0;
				break;
			}
			if ((n = queue_pidx_rec_encode(rec, n, e->key, &e->m)) > 0) {
				ok = pidx_write(p, rec, n) == 0;
				p->nrec++;
			}
			e->indexed = ok;
			if (rec != small)
				free(rec);
		}
		if (ok && fsync(p->fd) < 0) {
			log_warn("%s/" PIDX_FILE ": cannot sync", q->data_dir);
			ok = 0;
		}
		if (ok && util_bsnprintf(marker, sizeof(marker), "%llu %llu %llu\n",
		    (unsigned long long)p->len, (unsigned long long)p->nrec,
		    (unsigned long long)pidx_qdir_stamp(q)) >= 0) {
			size_t ml = strlen(marker);

			fd = openat(p->dfd, PIDX_MARKER, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
			    O_CLOEXEC, 0600);
			if (fd < 0 || write(fd, marker, ml) != (ssize_t)ml) {
				log_warn("%s/" PIDX_MARKER ": cannot write", q->data_dir);
				(void)unlinkat(p->dfd, PIDX_MARKER, 0);
			}
			if (fd >= 0)
				close(fd);
		}
	}
	if (p->ev != NULL)
		event_free(p->ev);
	if (p->efd >= 0)
		close(p->efd);
	if (p->fd >= 0)
		close(p->fd);
	if (p->dfd >= 0)
		close(p->dfd);
	free(p->tail);
	free(p->bad);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	q->pidx = NULL;
}

/* queue_pidx_tune - see queue_int.h (tests) */
void
queue_pidx_tune(struct queue *q, int hold, uint64_t slack)
{
	struct queue_pidx *p = q->pidx;

	q->pidx_hold = hold;
	if (p == NULL)
		return;
	p->slack = slack;
	pthread_mutex_lock(&p->mu);
	p->hold = hold;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* queue_pidx_records - see queue_int.h (tests) */
uint64_t
queue_pidx_records(const struct queue *q)
{
	return q->pidx != NULL ? q->pidx->nrec : 0;
}

/* queue_pidx_ready - see queue.h */
int
queue_pidx_ready(const struct queue *q)
{
	return q->pidx != NULL && q->pidx->ready;
}

/* ------------------------------------------------------------ reading */

/*
 * pidx_read_key - the parked message key (file id) read whole and given
 * to cb: cb's result (0 or 1), or -1 with errno (ENOENT: not parked, or
 * finished; EIO: corrupt; ENOMEM)
 */
static int
pidx_read_key(struct queue *q, uint64_t key, const char *id,
    int (*cb)(void *, const struct queue_msg *), void *arg)
{
	struct queue_parse_result res;
	struct queue_msg m;
	int fd, rc;

	if (queue_window_busy(q, key)) {
		errno = ENOENT;
		return -1;
	}
	if ((fd = queue_recover_open(q->qdirfd, id)) < 0) {
		if (errno == ELOOP || errno == EINVAL)
			errno = ENOENT;
		return -1;
	}
	if (queue_reader_parse_fd(fd, &m, &res) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	switch (res.status) {
	case QUEUE_PARSE_OK:
		break;
	case QUEUE_PARSE_NOMEM:
		errno = ENOMEM;
		return -1;
	case QUEUE_PARSE_CORRUPT:
		errno = EIO;
		return -1;
	case QUEUE_PARSE_UNCOMMITTED:
		errno = ENOENT;
		return -1;
	}
	if (!queue_rec_msg_pending(&m)) {
		queue_rec_msg_free_fields(&m);
		errno = ENOENT;
		return -1;
	}
	memcpy(m.id, id, QUEUE_ID_SIZE);
	m.file_size = res.length;
	rc = cb(arg, &m) ? 1 : 0;
	queue_rec_msg_free_fields(&m);
	return rc;
}

/* queue_parked_read - see queue.h */
int
queue_parked_read(struct queue *q, const char *id,
    int (*cb)(void *arg, const struct queue_msg *m), void *arg)
{
	uint64_t key = queue_index_id_key(id);
	char canon[QUEUE_ID_SIZE];

	if (key == 0) {
		errno = ENOENT;
		return -1;
	}
	queue_index_id_format(key, canon);
	return pidx_read_key(q, key, canon, cb, arg) < 0 ? -1 : 0;
}

/* An open pass over the index. */
struct queue_pidx_scan {
	struct queue *q;
	struct queue_pidx_rd rd;
	int fd;                      /* our own: the index may be swapped meanwhile */
	struct queue_rcpt *rcpt;     /* the skeleton's recipients */
	size_t caprcpt;
	int over;
};

/* queue_pidx_scan_open - see queue.h (EAGAIN: the index is not ready) */
struct queue_pidx_scan *
queue_pidx_scan_open(struct queue *q)
{
	struct queue_pidx *p = q->pidx;
	struct queue_pidx_scan *s;

	if (p != NULL) {
		pidx_poll(p);
		pidx_maybe_compact(p);
	}
	if (p == NULL || !p->ready || p->fd < 0) {
		errno = EAGAIN;
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->q = q;
	if ((s->fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(s);
		return NULL;
	}
	if (queue_pidx_rec_rd_init(&s->rd, s->fd, p->len) < 0) {
		close(s->fd);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

/* pidx_scan_one - one record of a pass: cb's answer (1 stop), 0 passed over, -1 with errno */
static int
pidx_scan_one(struct queue_pidx_scan *s, const struct queue_pidx_rec *r,
    int (*cb)(void *, const struct queue_msg *), void *arg)
{
	struct queue *q = s->q;
	char id[QUEUE_ID_SIZE];
	struct queue_msg m;
	struct stat st;
	int held, deferred, stamped;
	uint64_t pending = 0, due;
	const char *a;

	queue_index_id_format(r->key, id);
	if (queue_window_busy(q, r->key) || fstatat(q->qdirfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	stamped = (st.st_mode & S_IXOTH) != 0;
	held = (st.st_mode & S_IXGRP) != 0;
	deferred = !held && (st.st_mode & S_IXUSR) != 0;
	if (stamped)
		pending = (uint64_t)st.st_mtim.tv_nsec % 1000;
	if ((r->flags & QUEUE_PIDX_F_NOADDR) || (!stamped && r->nrcpt > 1) ||
	    (stamped && (r->nrcpt > 999 || pending < r->nrcpt))) {
		int rc = pidx_read_key(q, r->key, id, cb, arg);

		if (rc < 0 && errno == ENOMEM)
			return -1;
		return rc < 0 ? 0 : rc;
	}
	if (s->caprcpt < r->nrcpt) {
		struct queue_rcpt *nr = realloc(s->rcpt, r->nrcpt * sizeof(*nr));

		if (nr == NULL) {
			errno = ENOMEM;
			return -1;
		}
		s->rcpt = nr;
		s->caprcpt = r->nrcpt;
	}
	due = st.st_mtim.tv_sec < 0 ? 0 :
	    (uint64_t)st.st_mtim.tv_sec * 1000000u + (uint64_t)st.st_mtim.tv_nsec / 1000u;
	memset(&m, 0, sizeof(m));
	memcpy(m.id, id, QUEUE_ID_SIZE);
	a = r->strs;
	m.sender = (char *)(uintptr_t)a;
	a += strlen(a) + 1;
	for (uint32_t i = 0; i < r->nrcpt; i++) {
		struct queue_rcpt *rc = &s->rcpt[i];

		memset(rc, 0, sizeof(*rc));
		rc->addr = (char *)(uintptr_t)a;
		rc->state = QUEUE_RCPT_PENDING;
		rc->attempts = deferred ? 1 : 0;
		rc->next_try_us = deferred ? due : 0;
		a += strlen(a) + 1;
	}
	m.rcpt = s->rcpt;
	m.nrcpt = r->nrcpt;
	m.held = held;
	m.arrival_us = r->arrival_us;
	m.size = r->size;
	m.file_size = (uint64_t)st.st_size;
	return cb(arg, &m) ? 1 : 0;
}

/* queue_pidx_scan_step - see queue.h */
int
queue_pidx_scan_step(struct queue_pidx_scan *s, size_t max,
    int (*cb)(void *arg, const struct queue_msg *m), void *arg)
{
	for (size_t done = 0; done < max && !s->over; done++) {
		struct queue_pidx_rec r;
		const unsigned char *raw;
		size_t rawlen;
		int rc = queue_pidx_rec_rd_next(&s->rd, &r, &raw, &rawlen);

		if (rc == 0) {
			s->over = 1;
			break;
		}
		if (rc < 0) {
			if (errno == EIO && s->q->pidx != NULL)
				pidx_give_up(s->q->pidx, "damaged (a record fails its check)");
			return -1;
		}
		if ((rc = pidx_scan_one(s, &r, cb, arg)) < 0)
			return -1;
		if (rc == 1)
			s->over = 1;
	}
	return s->over;
}

/* queue_pidx_scan_close - see queue.h */
struct queue_pidx_scan *
queue_pidx_scan_close(struct queue_pidx_scan *s)
{
	if (s == NULL)
		return NULL;
	queue_pidx_rec_rd_free(&s->rd);
	if (s->fd >= 0)
		close(s->fd);
	free(s->rcpt);
	free(s);
	return NULL;
}
