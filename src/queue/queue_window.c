/*
 * queue_window.c - the window of messages held in memory: parking on
 *                  disk, loading back, the refill scan of queue/, and the
 *                  counters of what is parked
 *
 * Owns:     struct queue_scan (the open pass over queue/), the window's
 *           maps (ids being committed, ids retired but not yet unlinked),
 *           the refill event.
 * Lifetime: queue_window_init() at queue_open() to queue_window_free() at
 *           queue_close(); a pass from queue_scan_begin() to its end.
 * Errors:   a file that cannot be stamped stays in memory; a file that
 *           cannot be read stays on disk, counted, and is tried again on
 *           the next pass; a pass that cannot list queue/ is retried later.
 * Context:  event-loop thread (the unlinking map is also touched by the
 *           spare thread, under queue.mu).
 *
 * With queue_active_limit set (queue_set_active_limit()), at most that
 * many messages are loaded (struct queue_ent in the index). The others are
 * "parked": they exist only as their files in queue/, each stamped with
 * what the counters need (docs/queue.md, "The window"):
 *
 *   mtime               the next attempt (a held message: far in the future)
 *   mtime's nanoseconds below the microsecond: pending recipients (max 999)
 *   mode S_IXOTH        the stamp is there (otherwise: due now, 1 recipient)
 *   mode S_IXUSR        deferred (a pending recipient was tried)
 *   mode S_IXGRP        held
 *
 * so a pass of readdir() + fstatat() finds due messages and keeps the
 * counters exact without reading a file. Messages are parked when the
 * window is full: a committed message when no waiting one can be evicted,
 * or a waiting one (deferred or held) evicted to make room for new mail.
 * The refill scan loads due parked messages (in directory order) while
 * the window has room, keeping a fifth of it for new mail. A flush makes
 * every parked message due (loaded "forced"). Recovery at start is the
 * first, counting pass: every file is counted from its stat, and the
 * oldest ids are loaded, in id order, up to the window's size.
 */
#include "queue/queue_int.h"
#include "queue/queue_tool.h"
#include "lib/log.h"
#include "lib/map.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define QUEUE_MODE_BASE      0600
#define QUEUE_MODE_DEFERRED  S_IXUSR
#define QUEUE_MODE_HELD      S_IXGRP
#define QUEUE_MODE_STAMPED   S_IXOTH
#define QUEUE_HELD_WAKE_S    4000000000ull  /* a held message is never due by time */
#define QUEUE_SCAN_SLICE_US  10000          /* a refill slice on the loop, at most */
#define QUEUE_SCAN_SLICE_N   256            /* entries per step */
#define QUEUE_SCAN_RETRY_US  100000         /* a pass waiting for room looks again */
#define US_PER_S             1000000ull

/* An open pass over queue/. */
struct queue_scan {
	DIR     *d;
	int      counting;        /* recovery's first pass: counts every file */
	int      loading;         /* counting pass, second phase: keys[] are loaded */
	void   (*cb)(void *, struct queue_msg *);
	void    *arg;
	size_t   seen;
	uint64_t now_us;
	uint64_t min_due;         /* the earliest parked file not due in this pass */
	uint64_t oldest;          /* the smallest parked id seen */
	unsigned flush_gen;       /* q->flush_gen when the pass began */
	uint64_t pend_key;        /* a due file that found no room: first on resuming (0: none) */
	struct stat pend_st;
	/* counting pass: the smallest ids, a max-heap bounded by the window */
	uint64_t *keys;
	size_t   nkeys, capkeys, maxkeys, li;
	size_t   kept, dropped, skipped;
};

/* queue_stat_due - a file's stamp: its next attempt (wall-clock µs) */
static uint64_t
queue_stat_due(const struct stat *st)
{
	if (st->st_mtim.tv_sec < 0)
		return 0;
	return (uint64_t)st->st_mtim.tv_sec * US_PER_S + (uint64_t)st->st_mtim.tv_nsec / 1000;
}

/* queue_window_pk - a parked file joins (sign 1) or leaves (-1) the parked totals */
void
queue_window_pk(struct queue *q, uint64_t key, const struct stat *st, int sign)
{
	struct queue_parked *pk = &q->pk;
	int held = (st->st_mode & QUEUE_MODE_HELD) != 0;
	int deferred = !held && (st->st_mode & QUEUE_MODE_DEFERRED) != 0;
	uint64_t rcpts = 1;

	if (st->st_mode & QUEUE_MODE_STAMPED) {
		rcpts = (uint64_t)st->st_mtim.tv_nsec % 1000;
		if (rcpts == 0)
			rcpts = 1;
	}
	if (sign > 0) {
		pk->n++;
		pk->held += (uint64_t)held;
		pk->deferred += (uint64_t)deferred;
		pk->rcpts += rcpts;
		if (pk->oldest_key == 0 || key < pk->oldest_key)
			pk->oldest_key = key;
		return;
	}
	pk->n -= pk->n > 0;
	pk->held -= pk->held >= (uint64_t)held ? (uint64_t)held : pk->held;
	pk->deferred -= pk->deferred >= (uint64_t)deferred ? (uint64_t)deferred : pk->deferred;
	pk->rcpts -= pk->rcpts >= rcpts ? rcpts : pk->rcpts;
	if (pk->n == 0)
		pk->oldest_key = 0;
}

/*
 * queue_window_stamp - write m's state into its file's mode and mtime (see
 * the top of this file); *st gets what was written, as fstatat() would
 * read it. Not synced: a crash loses at worst the stamp (the file then
 * counts as due, with one recipient, until it is loaded).
 */
int
queue_window_stamp(struct queue *q, struct queue_ent *e, struct stat *st)
{
	const struct queue_msg *m = &e->m;
	uint64_t wake = UINT64_MAX, pending = 0, now = util_now_us();
	int deferred = 0;
	mode_t mode = QUEUE_MODE_BASE | QUEUE_MODE_STAMPED;
	struct timespec ts[2];

	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct queue_rcpt *r = &m->rcpt[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		pending++;
		if (r->attempts > 0)
			deferred = 1;
		if (r->next_try_us < wake)
			wake = r->next_try_us;
	}
	if (wake == UINT64_MAX || wake < now)
		wake = now;         /* nothing pending but a cc copy, or overdue: due now */
	if (m->held) {
		mode |= QUEUE_MODE_HELD;
		wake = QUEUE_HELD_WAKE_S * US_PER_S;
	} else if (deferred)
		mode |= QUEUE_MODE_DEFERRED;
	if (pending > 999)
		pending = 999;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)(wake / US_PER_S);
	ts[1].tv_nsec = (long)((wake % US_PER_S) * 1000 + pending);
	if (fchmodat(q->qdirfd, m->id, mode, 0) < 0 ||
	    utimensat(q->qdirfd, m->id, ts, AT_SYMLINK_NOFOLLOW) < 0) {
		log_warn("%s: cannot stamp the queue file", m->id);
		return -1;
	}
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | mode;
	st->st_mtim = ts[1];
	st->st_size = (off_t)e->m.file_size;
	return 0;
}

/* queue_window_arm - the refill event for the next wanted pass (none while a pass is open) */
static void
queue_window_arm(struct queue *q)
{
	uint64_t now, d;
	struct timeval tv;

	if (q->ev_scan == NULL || q->closing || q->recovering || q->scan != NULL ||
	    q->pk.n == 0 || q->scan_next_us == UINT64_MAX)
		return;
	now = util_now_us();
	d = q->scan_next_us > now ? q->scan_next_us - now : 0;
	if (d > 86400ull * US_PER_S)
		d = 86400ull * US_PER_S;
	tv.tv_sec = (time_t)(d / US_PER_S);
	tv.tv_usec = (suseconds_t)(d % US_PER_S);
	evtimer_add(q->ev_scan, &tv);
}

/* queue_window_room - messages the refill may still load (a fifth of the window is kept for new mail) */
static size_t
queue_window_room(const struct queue *q)
{
	size_t cap;

	if (q->limit == 0)
		return SIZE_MAX;
	cap = q->limit - q->limit / 5;
	if (cap == 0)
		cap = 1;
	return q->nloaded < cap ? cap - q->nloaded : 0;
}

/*
 * queue_window_make_room - room for one due parked message: evict waiting
 * messages (parked with their own, later, due time) down to the refill's
 * share. 1 when there is room.
 */
static int
queue_window_make_room(struct queue *q)
{
	while (queue_window_room(q) == 0)
		if (q->evict == NULL || q->evict(q->evict_arg) != 1)
			return 0;
	return 1;
}

/* queue_window_room_freed - a message left the window: a pass waiting for room goes on */
void
queue_window_room_freed(struct queue *q)
{
	struct timeval now = { 0, 0 };

	if (q->scan_want_room && q->ev_scan != NULL && !q->closing && queue_window_room(q) > 0) {
		q->scan_want_room = 0;
		evtimer_add(q->ev_scan, &now);
	}
}

/*
 * queue_park - m leaves memory, its state stamped on its file; it stays in
 * the queue (counters unchanged). The caller has dropped everything it
 * held of m (m->sched is NULL). -1 when the file cannot be stamped: m
 * stays loaded.
 */
int
queue_park(struct queue *q, struct queue_msg *m)
{
	struct queue_ent *e = QUEUE_ENT(m);
	struct stat st;
	uint64_t due;

	if (m->sched != NULL || queue_window_stamp(q, e, &st) < 0)
		return -1;
	log_trace(TRACE_QUEUE, "%s: parked", m->id);
	queue_pidx_add(q, e);
	queue_window_pk(q, e->key, &st, 1);
	due = queue_stat_due(&st);
	if (due < q->scan_next_us)
		q->scan_next_us = due;
	queue_index_unlink(q, e);
	queue_index_ent_free(e);
	queue_window_arm(q);
	return 0;
}

/*
 * queue_window_commit_room - a committed message wants into the window:
 * 1 when it may be loaded (room, or a waiting message was evicted), 0
 * when it must be parked.
 */
int
queue_window_commit_room(struct queue *q)
{
	if (q->limit == 0 || q->nloaded < q->limit)
		return 1;
	return q->evict != NULL && q->evict(q->evict_arg) == 1 && q->nloaded < q->limit;
}

/* queue_window_park_new - a committed message that found the window full: parked at once */
void
queue_window_park_new(struct queue *q, struct queue_ent *e)
{
	struct stat st;

	if (queue_window_stamp(q, e, &st) < 0) {
		/* unstamped: the file counts as due, active, one recipient */
		memset(&st, 0, sizeof(st));
		st.st_mode = S_IFREG | QUEUE_MODE_BASE;
	}
	queue_pidx_add(q, e);
	queue_window_pk(q, e->key, &st, 1);
	q->scan_next_us = 0;
	queue_window_arm(q);
}

/* queue_window_busy - key's file must not be loaded: in memory, being committed or retired */
int
queue_window_busy(struct queue *q, uint64_t key)
{
	char id[QUEUE_ID_SIZE];
	int busy;

	queue_index_id_format(key, id);
	if (queue_index_find(q, key) != NULL ||
	    (q->committing != NULL && map_get(q->committing, id) != NULL))
		return 1;
	pthread_mutex_lock(&q->mu);
	busy = q->unlinking != NULL && map_get(q->unlinking, id) != NULL;
	pthread_mutex_unlock(&q->mu);
	return busy;
}

/* queue_scan_free - close a pass */
static void
queue_scan_free(struct queue *q)
{
	struct queue_scan *sc = q->scan;

	if (sc == NULL)
		return;
	if (sc->d != NULL)
		closedir(sc->d);
	free(sc->keys);
	free(sc);
	q->scan = NULL;
}

/* queue_scan_begin - open a pass over queue/ (counting: recovery's first) */
int
queue_scan_begin(struct queue *q, int counting, void (*cb)(void *, struct queue_msg *),
    void *arg)
{
	struct queue_scan *sc;
	int fd;

	queue_scan_free(q);
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return -1;
	if ((fd = openat(q->qdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (sc->d = fdopendir(fd)) == NULL) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		free(sc);
		errno = saved;
		return -1;
	}
	sc->counting = counting;
	sc->cb = cb;
	sc->arg = arg;
	sc->now_us = util_now_us();
	sc->min_due = UINT64_MAX;
	sc->flush_gen = q->flush_gen;
	sc->maxkeys = q->limit == 0 ? SIZE_MAX : q->limit - q->limit / 5;
	if (sc->maxkeys == 0)
		sc->maxkeys = 1;
	q->scan = sc;
	if (!counting)
		q->scan_next_us = UINT64_MAX;   /* parks from now on lower it */
	return 0;
}

/* heap of the smallest keys: a max-heap, so the largest is dropped first */
static void
keys_sift_up(uint64_t *k, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		uint64_t t;

		if (k[p] >= k[i])
			break;
		t = k[p];
		k[p] = k[i];
		k[i] = t;
		i = p;
	}
}

static void
keys_sift_down(uint64_t *k, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		uint64_t t;

		if (l < n && k[l] > k[m])
			m = l;
		if (r < n && k[r] > k[m])
			m = r;
		if (m == i)
			return;
		t = k[m];
		k[m] = k[i];
		k[i] = t;
		i = m;
	}
}

/* queue_scan_collect - counting pass: keep key among the smallest maxkeys; -1 out of memory */
static int
queue_scan_collect(struct queue_scan *sc, uint64_t key)
{
	if (sc->nkeys == sc->maxkeys) {
		if (key >= sc->keys[0])
			return 0;
		sc->keys[0] = key;
		keys_sift_down(sc->keys, sc->nkeys, 0);
		return 0;
	}
	if (sc->nkeys == sc->capkeys) {
		size_t ncap = sc->capkeys ? sc->capkeys * 2 : 256;
		uint64_t *nk;

		if (ncap > sc->maxkeys)
			ncap = sc->maxkeys;
		if ((nk = realloc(sc->keys, ncap * sizeof(*nk))) == NULL)
			return -1;
		sc->keys = nk;
		sc->capkeys = ncap;
	}
	sc->keys[sc->nkeys] = key;
	keys_sift_up(sc->keys, sc->nkeys++);
	return 0;
}

static int
queue_key_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* queue_scan_load - load a parked file of the pass; -1 out of memory */
static int
queue_scan_load(struct queue *q, struct queue_scan *sc, uint64_t key, const struct stat *st,
    int forced)
{
	struct queue_ent *e;
	int verdict;

	e = queue_window_load_key(q, key, st, &verdict);
	switch (verdict) {
	case QUEUE_LOAD_KEPT:  sc->kept++; break;
	case QUEUE_LOAD_GONE:  sc->dropped++; break;
	case QUEUE_LOAD_LEFT:  sc->skipped++; break;
	case QUEUE_LOAD_NOMEM: return -1;
	}
	if (e != NULL) {
		e->m.forced = forced;
		if (sc->cb != NULL)
			sc->cb(sc->arg, &e->m);
	}
	return 0;
}

/* queue_scan_entry - one directory entry of a pass: 0, 1 pause (no room), -1 out of memory */
static int
queue_scan_entry(struct queue *q, struct queue_scan *sc, const char *name)
{
	struct stat st;
	uint64_t key, due;
	int flush;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	if ((key = queue_index_id_key(name)) == 0) {
		if (sc->counting)
			log_warnx("%s/queue/%s: not a queue file name; ignoring it", q->data_dir, name);
		return 0;
	}
	if (queue_index_find(q, key) != NULL)
		return 0;
	if (fstatat(q->qdirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;           /* gone meanwhile */
	if (!S_ISREG(st.st_mode)) {
		if (sc->counting)
			log_warnx("%s/queue/%s: not a regular file; ignoring it", q->data_dir, name);
		return 0;
	}
	if (queue_window_busy(q, key))
		return 0;
	if (sc->counting) {
		q->count++;
		q->bytes += (uint64_t)st.st_size;
		queue_window_pk(q, key, &st, 1);
		return queue_scan_collect(sc, key);
	}
	if (sc->oldest == 0 || key < sc->oldest)
		sc->oldest = key;
	due = queue_stat_due(&st);
	flush = q->flush_gen != q->flush_done_gen && !(st.st_mode & QUEUE_MODE_HELD);
	if (due > sc->now_us && !flush) {
		if (due < sc->min_due)
			sc->min_due = due;
		return 0;
	}
	if (!queue_window_make_room(q)) {
		sc->pend_key = key;     /* the window is busy delivering: this one waits */
		sc->pend_st = st;
		return 1;
	}
	return queue_scan_load(q, sc, key, &st, due > sc->now_us);
}

/*
 * queue_scan_step - the next max entries of the open pass: 0 more to do,
 * 1 the pass is over, 2 paused until the window has room, -1 out of
 * memory (the pass is over; the rest stays on disk).
 */
int
queue_scan_step(struct queue *q, size_t max)
{
	struct queue_scan *sc = q->scan;

	if (sc == NULL)
		return 1;
	if (sc->loading) {
		/* counting pass, second phase: the collected ids, oldest first */
		for (size_t done = 0; sc->li < sc->nkeys && done < max; done++) {
			uint64_t key = sc->keys[sc->li++];
			char id[QUEUE_ID_SIZE];
			struct stat st;

			if (q->limit != 0 && q->nloaded >= q->limit) {
				sc->li = sc->nkeys;     /* new mail took the room: the rest stays parked */
				break;
			}
			queue_index_id_format(key, id);
			if (queue_window_busy(q, key) ||
			    fstatat(q->qdirfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (queue_scan_load(q, sc, key, &st, 0) < 0)
				return -1;
		}
		return sc->li >= sc->nkeys;
	}
	if (sc->pend_key != 0) {
		uint64_t key = sc->pend_key;

		if (!queue_window_make_room(q))
			return 2;
		sc->pend_key = 0;
		if (!queue_window_busy(q, key) && queue_scan_load(q, sc, key, &sc->pend_st,
		    queue_stat_due(&sc->pend_st) > sc->now_us) < 0)
			return -1;
	}
	for (size_t done = 0; done < max; done++) {
		struct dirent *de;
		int rc;

		errno = 0;
		if ((de = readdir(sc->d)) == NULL) {
			if (errno != 0)
				log_warn("%s/queue: cannot list", q->data_dir);
			if (sc->counting) {
				if (sc->nkeys > 1)
					qsort(sc->keys, sc->nkeys, sizeof(*sc->keys), queue_key_cmp);
				sc->loading = 1;
				return queue_scan_step(q, max - done);
			}
			return 1;
		}
		sc->seen++;
		if ((rc = queue_scan_entry(q, sc, de->d_name)) < 0)
			return -1;
		if (rc == 1)
			return 2;
	}
	return 0;
}

/* queue_scan_end - a refill pass is over: when the next one is wanted */
static void
queue_scan_end(struct queue *q)
{
	struct queue_scan *sc = q->scan;

	if (sc == NULL)
		return;
	if (!sc->counting) {
		q->flush_done_gen = sc->flush_gen;
		q->pk.oldest_key = q->pk.n > 0 ? sc->oldest : 0;
		if (sc->min_due < q->scan_next_us)
			q->scan_next_us = sc->min_due;
	} else
		q->scan_next_us = 0;    /* what did not fit is looked at again once there is room */
	if (q->flush_gen != q->flush_done_gen)
		q->scan_next_us = 0;
	queue_scan_free(q);
	queue_window_arm(q);
}

/* queue_scan_on - the refill event: begin a pass, or run its next slice */
static void
queue_scan_on(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	uint64_t t0 = util_mono_us();
	struct timeval now = { 0, 0 };
	int rc = 0;

	(void)fd;
	(void)what;
	if (q->closing || q->recovering)
		return;
	if (q->scan == NULL) {
		if (q->pk.n == 0 || q->scan_next_us > util_now_us()) {
			queue_window_arm(q);
			return;
		}
		if (queue_scan_begin(q, 0, q->listener, q->listener_arg) < 0) {
			struct timeval later = { 1, 0 };

			log_warn("%s/queue: cannot list", q->data_dir);
			evtimer_add(q->ev_scan, &later);
			return;
		}
	}
	while (rc == 0 && util_mono_us() - t0 < QUEUE_SCAN_SLICE_US)
		rc = queue_scan_step(q, QUEUE_SCAN_SLICE_N);
	if (rc == 0) {
		evtimer_add(q->ev_scan, &now);
		return;
	}
	if (rc == 2) {
		/*
		 * The pass stays open: queue_window_room_freed() resumes it when
		 * a message leaves, and a short timer when messages in delivery
		 * have become waiting ones, which may be evicted.
		 */
		struct timeval later = { 0, QUEUE_SCAN_RETRY_US };

		q->scan_want_room = 1;
		evtimer_add(q->ev_scan, &later);
		return;
	}
	if (rc < 0)
		log_warnx("%s/queue: out of memory while loading parked messages", q->data_dir);
	queue_scan_end(q);
}

/* queue_scan_finish_counting - recovery's pass is over (queue_recover_finish()) */
void
queue_scan_finish_counting(struct queue *q)
{
	if (q->scan == NULL)
		return;
	queue_scan_end(q);
	/* a scan begun later finds what did not fit */
	queue_window_arm(q);
}

/* queue_scan_seen - entries looked at in the open pass */
size_t
queue_scan_seen(const struct queue *q)
{
	return q->scan != NULL ? q->scan->seen : 0;
}

/* queue_scan_summary - what the open pass did with the files it read */
void
queue_scan_summary(const struct queue *q, size_t *kept, size_t *dropped, size_t *skipped)
{
	*kept = q->scan != NULL ? q->scan->kept : 0;
	*dropped = q->scan != NULL ? q->scan->dropped : 0;
	*skipped = q->scan != NULL ? q->scan->skipped : 0;
}

/* queue_set_active_limit - at most limit messages in memory (0: all of them) */
void
queue_set_active_limit(struct queue *q, size_t limit)
{
	q->limit = limit;
	queue_window_room_freed(q);
}

/* queue_set_evictor - fn(arg) parks one waiting message (queue_park()) and returns 1, or 0 */
void
queue_set_evictor(struct queue *q, int (*fn)(void *arg), void *arg)
{
	q->evict = fn;
	q->evict_arg = arg;
}

/* queue_flush_parked - every parked message is due now (a flush); held ones stay */
void
queue_flush_parked(struct queue *q)
{
	if (q->pk.n == 0)
		return;
	q->flush_gen++;
	q->scan_next_us = 0;
	if (q->scan == NULL)
		queue_window_arm(q);
	else if (queue_window_room(q) > 0)
		queue_window_room_freed(q);
}

/* queue_parked - what is parked: counts by state, pending recipients, the oldest */
void
queue_parked(const struct queue *q, struct queue_parked_info *out)
{
	out->messages = q->pk.n;
	out->held = q->pk.held;
	out->deferred = q->pk.deferred;
	out->rcpts = q->pk.rcpts;
	out->oldest_arrival_us = q->pk.oldest_key >> 12;
	out->loaded = q->nloaded;
	out->recovering = q->recovering;
}

/*
 * queue_window_lookup - a parked message asked for by id (an operator's
 * look or action) is loaded, beyond the window if need be; the listener
 * takes it on. NULL when there is no such file (or recovery still counts).
 */
struct queue_msg *
queue_window_lookup(struct queue *q, uint64_t key)
{
	char id[QUEUE_ID_SIZE];
	struct queue_ent *e;
	struct stat st;
	int verdict;

	if (q->limit == 0 || q->recovering || q->pk.n == 0)
		return NULL;
	queue_index_id_format(key, id);
	if (fstatat(q->qdirfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    queue_window_busy(q, key))
		return NULL;
	if ((e = queue_window_load_key(q, key, &st, &verdict)) == NULL)
		return NULL;
	if (q->listener != NULL)
		q->listener(q->listener_arg, &e->m);
	return &e->m;
}

/* queue_window_init - the maps and the refill event */
int
queue_window_init(struct queue *q)
{
	q->scan_next_us = UINT64_MAX;
	if ((q->committing = map_new()) == NULL || (q->unlinking = map_new()) == NULL)
		return -1;
	if (q->base != NULL && (q->ev_scan = evtimer_new(q->base, queue_scan_on, q)) == NULL)
		return -1;
	return 0;
}

/* queue_window_free - at close: stamp what is loaded (exact counters after a restart), free */
void
queue_window_free(struct queue *q)
{
	queue_scan_free(q);
	if (q->ev_scan != NULL) {
		event_free(q->ev_scan);
		q->ev_scan = NULL;
	}
	if (q->limit != 0 && q->qdirfd >= 0) {
		struct stat st;

		for (struct queue_ent *e = q->head; e != NULL; e = e->next)
			(void)queue_window_stamp(q, e, &st);
	}
	q->committing = map_free(q->committing);
	pthread_mutex_lock(&q->mu);
	q->unlinking = map_free(q->unlinking);
	pthread_mutex_unlock(&q->mu);
}

/*
 * queue_parked_walk - parked messages read from their files, in directory
 * order: the first `skip` parked files are passed over unread, then up to
 * max_read are read and given to cb(arg, m) (m lives for the call only;
 * cb returns 1 to stop). *more is set when parked files were left unread.
 * Blocking reads on the loop: the caller bounds max_read. With pos, a
 * walk goes on where an earlier one stopped (*pos > 0: a telldir()
 * position of queue/, skip is ignored), and *pos says where this one
 * stopped when *more is set. 0, or -1 with errno when queue/ cannot be
 * listed or memory runs out.
 */
int
queue_parked_walk(struct queue *q, size_t skip, size_t max_read,
    int (*cb)(void *arg, const struct queue_msg *m), void *arg, int *more, long *pos)
{
	struct dirent *de;
	size_t seen = 0, read = 0;
	int fd, rc = 0;
	long before;
	DIR *d;

	*more = 0;
	if (q->pk.n == 0 && !q->recovering)
		return 0;
	if ((fd = openat(q->qdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	if (pos != NULL && *pos > 0) {
		seekdir(d, *pos);
		skip = 0;
	}
	while ((before = telldir(d)), (de = readdir(d)) != NULL) {
		struct queue_parse_result res;
		struct queue_msg m;
		uint64_t key = queue_index_id_key(de->d_name);
		int mfd, stop;

		if (key == 0 || queue_window_busy(q, key))
			continue;
		if (seen++ < skip)
			continue;
		if (read == max_read) {
			*more = 1;
			if (pos != NULL)
				*pos = before;  /* this entry comes first next time */
			break;
		}
		if ((mfd = queue_recover_open(q->qdirfd, de->d_name)) < 0)
			continue;
		read++;
		if (queue_reader_parse_fd(mfd, &m, &res) < 0) {
			close(mfd);
			continue;
		}
		close(mfd);
		if (res.status == QUEUE_PARSE_NOMEM) {
			errno = ENOMEM;
			rc = -1;
			break;
		}
		if (res.status != QUEUE_PARSE_OK)
			continue;
		if (!queue_rec_msg_pending(&m)) {
			queue_rec_msg_free_fields(&m);
			continue;
		}
		memcpy(m.id, de->d_name, QUEUE_ID_SIZE);
		m.file_size = res.length;
		stop = cb(arg, &m);
		queue_rec_msg_free_fields(&m);
		if (stop)
			break;
	}
	closedir(d);
	return rc;
}
