/*
 * queue_recover.c - load the queue at start-up: committed messages back
 *                   into the index, uncommitted files (and incoming/)
 *                   removed, corrupt ones quarantined
 *
 * Owns:     nothing beyond the call (queue_reader_parse_fd() reads each file).
 * Lifetime: queue_recover_start() once at start-up, then
 *           queue_recover_step() slice by slice from the loop (mail is
 *           accepted meanwhile) until it returns 1, then
 *           queue_recover_finish(); queue_recover() does all three at once.
 * Errors:   a bad file is never fatal: it is logged and removed (if it was
 *           never committed) or moved to <data_dir>/corrupt/. Only a
 *           queue directory that cannot be listed, or running out of
 *           memory, fails the whole recovery (-1).
 * Context:  event-loop thread. The files are read with blocking I/O, a
 *           bounded slice at a time, so the loop keeps serving in between.
 */
#include "queue/queue_int.h"
#include "queue/queue_tool.h"
#include "lib/log.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { RECOVER_KEPT, RECOVER_DONE, RECOVER_SKIPPED, RECOVER_NOMEM };

/*
 * queue_recover_open - open name under dirfd for reading, as a queue file
 * only: O_NONBLOCK so that a FIFO or a device planted under a queue id
 * cannot block the open (recovery runs before the loop, where a hang also
 * held back SIGTERM), O_NOFOLLOW against links, then fstat() for the type.
 * The flag is cleared again on the regular file. See queue_tool.h.
 */
/* queue_open_read - see queue_tool.h */
int
queue_open_read(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOATIME | flags);

	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, O_RDONLY | flags);
	return fd;
}

int
queue_recover_open(int dirfd, const char *name)
{
	struct stat st;
	int fd, fl;

	fd = queue_open_read(dirfd, name, O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

/* queue_quarantine - move a bad file to corrupt/ under a name not yet taken there; 0 moved */
static int
queue_quarantine(struct queue *q, const char *id)
{
	char name[QUEUE_ID_SIZE + 8];

	for (int i = 0; i < 100; i++) {
		if (i == 0)
			(void)util_strlcpy(name, id, sizeof(name));
		else if (util_bsnprintf(name, sizeof(name), "%s.%d", id, i) < 0)
			break;
		if (faccessat(q->cdirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (renameat(q->qdirfd, id, q->cdirfd, name) == 0) {
			log_warnx("%s: moved to %s/corrupt/%s", id, q->data_dir, name);
			return 0;
		}
		break;
	}
	log_warn("%s: cannot move corrupt queue file to corrupt/; leaving it", id);
	return -1;
}

/* queue_recover_cut - drop a torn or unreadable tail of state records */
static void
queue_recover_cut(struct queue *q, const char *id, uint64_t good_len, uint64_t file_len)
{
	int fd;

	log_warnx("%s: ignoring a torn or damaged state record at offset %llu "
	    "(file length %llu)", id, (unsigned long long)good_len,
	    (unsigned long long)file_len);
	if ((fd = openat(q->qdirfd, id, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    ftruncate(fd, (off_t)good_len) < 0)
		log_warn("%s: cannot cut the queue file back to %llu bytes", id,
		    (unsigned long long)good_len);
	if (fd >= 0)
		close(fd);
}

/* queue_load_gone - a counted file left the queue (removed or quarantined) */
static void
queue_load_gone(struct queue *q, uint64_t key, const struct stat *st)
{
	queue_window_pk(q, key, st, -1);
	q->count -= q->count > 0;
	q->bytes -= q->bytes >= (uint64_t)st->st_size ? (uint64_t)st->st_size : q->bytes;
}

/* queue_window_load_key - see queue_int.h: parse one file and act on the verdict */
struct queue_ent *
queue_window_load_key(struct queue *q, uint64_t key, const struct stat *st, int *verdict)
{
	char id[QUEUE_ID_SIZE];
	struct queue_parse_result res;
	struct queue_msg m;
	struct queue_ent *e;
	int fd;

	*verdict = QUEUE_LOAD_LEFT;
	queue_index_id_format(key, id);
	if ((fd = queue_recover_open(q->qdirfd, id)) < 0) {
		if (errno == ENOENT) {
			queue_load_gone(q, key, st);
			*verdict = QUEUE_LOAD_GONE;
		} else if (errno == EINVAL || errno == ELOOP)
			log_warnx("%s/queue/%s: not a regular file; ignoring it", q->data_dir, id);
		else
			log_warn("%s: cannot open queue file", id);
		return NULL;
	}
	if (queue_reader_parse_fd(fd, &m, &res) < 0) {
		log_warn("%s: cannot read queue file; leaving it", id);
		close(fd);
		return NULL;
	}
	close(fd);
	switch (res.status) {
	case QUEUE_PARSE_NOMEM:
		errno = ENOMEM;
		*verdict = QUEUE_LOAD_NOMEM;
		return NULL;
	case QUEUE_PARSE_UNCOMMITTED:
		if (res.length > 0)
			log_info("%s: removing uncommitted queue file (%llu bytes)", id,
			    (unsigned long long)res.length);
		else
			log_trace(TRACE_QUEUE, "%s: removing empty queue file", id);
		if (unlinkat(q->qdirfd, id, 0) < 0)
			log_warn("%s: cannot remove uncommitted queue file", id);
		queue_load_gone(q, key, st);
		*verdict = QUEUE_LOAD_GONE;
		return NULL;
	case QUEUE_PARSE_CORRUPT:
		log_warnx("%s: corrupt queue file: %s at offset %llu", id,
		    res.reason != NULL ? res.reason : "?", (unsigned long long)res.bad_off);
		if (queue_quarantine(q, id) == 0) {
			queue_load_gone(q, key, st);
			*verdict = QUEUE_LOAD_GONE;
		}
		return NULL;
	case QUEUE_PARSE_OK:
		break;
	}
	if (!queue_rec_msg_pending(&m)) {
		log_trace(TRACE_QUEUE, "%s: every recipient done; removing", id);
		if (unlinkat(q->qdirfd, id, 0) < 0)
			log_warn("%s: cannot remove finished queue file", id);
		queue_rec_msg_free_fields(&m);
		queue_load_gone(q, key, st);
		*verdict = QUEUE_LOAD_GONE;
		return NULL;
	}
	if ((e = queue_index_ent_new()) == NULL) {
		queue_rec_msg_free_fields(&m);
		errno = ENOMEM;
		*verdict = QUEUE_LOAD_NOMEM;
		return NULL;
	}
	e->m = m;
	memcpy(e->m.id, id, QUEUE_ID_SIZE);
	e->key = key;
	e->indexed = 1;         /* a file in queue/ has its record in queue.idx (queue_pidx.c) */
	e->data_off = res.loc.data_off;
	e->prepend_off = res.loc.prepend_off;
	e->prepend_len = res.loc.prepend_len;
	if (queue_index_insert_recovered(q, e) < 0) {
		queue_index_ent_free(e);
		errno = ENOMEM;
		*verdict = QUEUE_LOAD_NOMEM;
		return NULL;
	}
	if (res.loc.state_cut || res.loc.good_len < res.length) {
		queue_recover_cut(q, id, res.loc.good_len, res.length);
		e->m.file_size = res.loc.good_len;
	} else
		e->m.file_size = res.length;
	/* counted from its stat when parked; from now on from its length */
	queue_window_pk(q, key, st, -1);
	q->bytes -= q->bytes >= (uint64_t)st->st_size ? (uint64_t)st->st_size : q->bytes;
	q->bytes += e->m.file_size;
	*verdict = QUEUE_LOAD_KEPT;
	return e;
}

/*
 * queue_recover_incoming - empty incoming/: spares and messages whose
 * commit never finished (never acknowledged). Only before the first
 * queue_file_create(): after it, incoming/ holds live files.
 */
static void
queue_recover_incoming(struct queue *q)
{
	struct dirent *de;
	size_t n = 0, partial = 0;
	DIR *d;
	int fd;

	if (q->spare_started != 0)
		return;
	if ((fd = openat(q->idirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (d = fdopendir(fd)) == NULL) {
		log_warn("%s/incoming: cannot list", q->data_dir);
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
			log_warnx("%s/incoming/%s: not a regular file; ignoring it",
			    q->data_dir, de->d_name);
			continue;
		}
		if (unlinkat(fd, de->d_name, 0) < 0) {
			log_warn("%s/incoming/%s: cannot remove", q->data_dir, de->d_name);
			continue;
		}
		n++;
		if (st.st_size > 0) {
			partial++;
			log_trace(TRACE_QUEUE, "%s: removed unfinished message from incoming/",
			    de->d_name);
		}
	}
	closedir(d);
	if (partial > 0)
		log_info("removed %zu unfinished message file(s) from %s/incoming "
		    "(never acknowledged)", partial, q->data_dir);
	log_trace(TRACE_QUEUE, "incoming/: %zu file(s) removed", n);
}

/* The state of a recovery that runs in slices (queue_recover_start()). */
struct queue_recovery {
	struct queue *q;
	int done;
	uint64_t t0_us;
};

/*
 * queue_recover_start - empty incoming/, raise the id counter above every
 * id in queue/, and open recovery's counting pass over queue/ (see
 * queue_window.c). Ids are microseconds: none in queue/ is newer than the
 * directory's last change, so its mtime bounds them without a listing.
 * NULL (errno set) when queue/ cannot be listed or memory runs out.
 */
struct queue_recovery *
queue_recover_start(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg)
{
	struct queue_recovery *r;
	struct stat st;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->q = q;
	r->t0_us = util_mono_us();
	queue_recover_incoming(q);
	if (fstat(q->qdirfd, &st) < 0 || queue_scan_begin(q, 1, cb, arg) < 0) {
		int saved = errno;

		log_warn("%s/queue: cannot list the queue", q->data_dir);
		free(r);
		errno = saved;
		return NULL;
	}
	if (st.st_mtim.tv_sec > 0) {
		uint64_t top = ((uint64_t)st.st_mtim.tv_sec * 1000000u +
		    (uint64_t)st.st_mtim.tv_nsec / 1000u + 1) << 12;

		pthread_mutex_lock(&q->mu);
		if (top < q->spare_floor && top > q->last_id)
			q->last_id = top;
		pthread_mutex_unlock(&q->mu);
	}
	queue_pidx_start(q);
	q->recovering = 1;
	q->recover_anchor = NULL;
	return r;
}

/*
 * queue_recover_step - look at up to max more entries of queue/ (counted),
 * then load the oldest of them, in id order, as far as the window goes,
 * each among the recovered ones, before the messages that came after the
 * start. 1 when the pass is done, 0 when more are left, -1 when memory
 * ran out (the rest stays on disk, loaded by later scans).
 */
int
queue_recover_step(struct queue_recovery *r, size_t max)
{
	int rc;

	if (r->done)
		return 1;
	queue_pidx_go(r->q);
	rc = queue_scan_step(r->q, max);
	if (rc == 2)
		rc = 0;
	if (rc != 0)
		r->done = 1;
	return rc;
}

/* queue_recover_finish - log what was done, end the pass, free r; returns NULL */
struct queue_recovery *
queue_recover_finish(struct queue_recovery *r)
{
	struct queue *q;
	size_t kept, dropped, skipped, seen;

	if (r == NULL)
		return NULL;
	q = r->q;
	queue_scan_summary(q, &kept, &dropped, &skipped);
	seen = queue_scan_seen(q);
	q->recovering = 0;
	q->recover_anchor = NULL;
	if (seen > 2)
		log_info("queue recovered: %llu message(s) queued, %zu loaded, %zu file(s) removed, "
		    "%zu left aside%s (%.1f s)", (unsigned long long)q->count, kept, dropped, skipped,
		    r->done ? "" : ", the rest not read",
		    (double)(util_mono_us() - r->t0_us) / 1e6);
	queue_scan_finish_counting(q);
	free(r);
	return NULL;
}

/* queue_recover_progress - entries of queue/ looked at so far; total 0 once the pass is over */
void
queue_recover_progress(const struct queue_recovery *r, size_t *done, size_t *total)
{
	*done = queue_scan_seen(r->q);
	*total = r->done ? *done : *done + 1;
}
/* queue_recover - the whole recovery at once (tests, tools); see the table in docs/queue.md */
int
queue_recover(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg)
{
	struct queue_recovery *r;
	int rc;

	if ((r = queue_recover_start(q, cb, arg)) == NULL)
		return -1;
	rc = queue_recover_step(r, SIZE_MAX);
	if (rc < 0)
		errno = ENOMEM;
	queue_recover_finish(r);
	return rc < 0 ? -1 : 0;
}
