/*
 * queue_hist.c - each recipient's delivery history: 'a' records appended
 *                to the message file, read back on demand
 *
 * Owns:     nothing in memory: the history lives in the queue file only
 *           (no memory per queued message), read when someone asks.
 * Lifetime: stateless; a history read holds its file for the call only.
 * Errors:   a failed append is a warning and -1 (the delivery goes on: the
 *           history is for people, the 'r' record carries the state); a
 *           read stops quietly at a torn or damaged state record, as
 *           recovery does, and fails (-1, errno) only when the file
 *           cannot be read or is not a committed queue file.
 * Context:  appends on the event-loop thread, each in the same write as the
 *           'r' record of the attempt (queue_update_rcpt_hist() in
 *           queue.c; no fsync, like every state record); reads with pread, also on the loop (for one
 *           message at a time: /api/queue/ID) and in mtactl.
 *
 * Bounds: a recipient's deferrals past QUEUE_HIST_WRITE_MAX are not
 * written (its last attempt, delivered or bounced, always is), so a
 * message deferred for days keeps a bounded file; a reader shows the
 * first attempt and the last QUEUE_HIST_SHOW_LAST per recipient, at most
 * QUEUE_HIST_JSON_MAX in all, in two passes over the state records with
 * one counter per recipient.
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "queue/queue_tool.h"
#include "queue/queue_view.h"
#include "lib/crc32c.h"
#include "lib/jsonout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* queue_hist_open - queue/ID, read-only, never through a link */
int
queue_hist_open(struct queue *q, const char *id)
{
	return queue_open_read(q->qdirfd, id, O_CLOEXEC | O_NOFOLLOW);
}

/* queue_hist_state_len - a state record's plausible payload length (queue_rec.c's rules); 0: not */
static int
queue_hist_state_len(unsigned type, uint32_t len)
{
	switch (type) {
	case QUEUE_REC_ST_RCPT:
		return len >= QUEUE_REC_ST_RCPT_MIN && len <= QUEUE_REC_ST_RCPT_MAX;
	case QUEUE_REC_ST_HELD:
		return len == 1 + 4;
	case QUEUE_REC_ST_FLAGS:
		return len == 4 + 4;
	case QUEUE_REC_ST_ATTEMPT:
		return len >= QUEUE_REC_HIST_MIN && len <= QUEUE_REC_HIST_MAX;
	default:
		return 0;
	}
}

/* A window on the state records: read in large chunks, not a record at a time. */
#define QUEUE_HIST_BUF (64 * 1024)

struct queue_hist_rd {
	int fd;
	unsigned char *buf;            /* QUEUE_HIST_BUF bytes */
	size_t pos, len;               /* unread bytes: buf[pos..len) */
	uint64_t off;                  /* file offset of buf[len] */
	int eof;
};

/* queue_hist_fill - at least n unread bytes in the window: 1, 0 (the file ends first), -1 */
static int
queue_hist_fill(struct queue_hist_rd *r, size_t n)
{
	while (r->len - r->pos < n) {
		ssize_t got;

		if (r->eof)
			return 0;
		if (r->pos > 0) {
			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->pos = 0;
		}
		got = pread(r->fd, r->buf + r->len, QUEUE_HIST_BUF - r->len, (off_t)r->off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		if (got == 0)
			r->eof = 1;
		r->len += (size_t)got;
		r->off += (uint64_t)got;
	}
	return 1;
}

/*
 * queue_hist_read_fd - walk the records by their headers (the content is
 * skipped, not read) to the end record, then read the state records in
 * 64 KiB chunks, check each crc and hand the attempts to cb
 */
int
queue_hist_read_fd(int fd, int (*cb)(void *arg, const struct queue_attempt *a), void *arg)
{
	unsigned char fh[QUEUE_REC_FILEHDR], want[QUEUE_REC_FILEHDR], h[QUEUE_REC_HDR];
	struct queue_hist_rd r;
	struct queue_attempt a;
	uint64_t off = QUEUE_REC_FILEHDR;
	size_t nstate = 0;
	int rc;

	queue_rec_filehdr(want);
	if ((rc = queue_pread_exact(fd, fh, sizeof(fh), 0)) < 0)
		return -1;
	if (rc == 0 || memcmp(fh, want, sizeof(fh)) != 0) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		unsigned type;

		if ((rc = queue_pread_exact(fd, h, sizeof(h), off)) < 0)
			return -1;
		if (rc == 0) {
			errno = EINVAL;        /* no end record: not committed */
			return -1;
		}
		type = h[0];
		switch (type) {
		case QUEUE_REC_END:
		case QUEUE_REC_FLAGS: case QUEUE_REC_SENDER: case QUEUE_REC_RCPT:
		case QUEUE_REC_CLIENT_ADDR: case QUEUE_REC_CLIENT_NAME: case QUEUE_REC_HELO:
		case QUEUE_REC_DATA: case QUEUE_REC_PREPEND:
			break;
		default:
			errno = EINVAL;
			return -1;
		}
		off += QUEUE_REC_HDR + (uint64_t)queue_rec_get32(h + 1);
		if (type == QUEUE_REC_END)
			break;
	}

	/* the state records: one that is torn or fails its crc ends the state */
	memset(&r, 0, sizeof(r));
	r.fd = fd;
	r.off = off;
	if ((r.buf = malloc(QUEUE_HIST_BUF)) == NULL)
		return -1;
	for (;;) {
		const unsigned char *rec, *body;
		unsigned type;
		uint32_t len;

		if ((rc = queue_hist_fill(&r, QUEUE_REC_HDR)) <= 0)
			break;
		rec = r.buf + r.pos;
		type = rec[0];
		len = queue_rec_get32(rec + 1);
		if (++nstate > QUEUE_HIST_READ_MAX || !queue_hist_state_len(type, len))
			break;
		if ((rc = queue_hist_fill(&r, QUEUE_REC_HDR + (size_t)len)) <= 0)
			break;
		rec = r.buf + r.pos;
		body = rec + QUEUE_REC_HDR;
		if (crc32c(0, rec, QUEUE_REC_HDR + len - 4) != queue_rec_get32(body + len - 4))
			break;
		r.pos += QUEUE_REC_HDR + (size_t)len;
		if (type != QUEUE_REC_ST_ATTEMPT)
			continue;
		if (queue_rec_attempt_decode(body, len - 4, &a) < 0 || cb(arg, &a) < 0)
			break;
	}
	free(r.buf);
	if (rc < 0)
		return -1;
	return 0;
}

/* --- the "history" array ------------------------------------------------------- */

struct queue_hist_walk {
	const struct queue_msg *m;
	uint32_t *count;               /* attempts per recipient (pass 1) */
	uint32_t *seen;                /* attempts met so far per recipient (pass 2) */
	json_t *arr;
	uint64_t omitted;
	int oom;
};

static const char *const queue_hist_results[] = { "deferred", "delivered", "bounced" };

/* queue_hist_count - pass 1: how many attempts each recipient has in the file */
static int
queue_hist_count(void *arg, const struct queue_attempt *a)
{
	struct queue_hist_walk *w = arg;

	if (a->rcpt < w->m->nrcpt)
		w->count[a->rcpt]++;
	return 0;
}

/* queue_hist_entry - one attempt as JSON */
static json_t *
queue_hist_entry(const struct queue_msg *m, const struct queue_attempt *a)
{
	json_t *o = json_object(), *d = json_array();

	if (o == NULL || d == NULL)
		goto fail;
	for (int i = 0; i < 4; i++)
		if (json_array_append_new(d, json_real(a->delays_ms[i] / 1000.0)) < 0)
			goto fail;
	if (jsonout_set(o, "time", json_integer((json_int_t)(a->time_us / 1000000))) < 0 ||
	    jsonout_set(o, "recipient", jsonout_str(m->rcpt[a->rcpt].addr)) < 0 ||
	    jsonout_set(o, "rcpt", json_integer(a->rcpt)) < 0 ||
	    jsonout_set(o, "attempt", json_integer(a->attempt)) < 0 ||
	    jsonout_set(o, "result", json_string(queue_hist_results[a->result])) < 0 ||
	    jsonout_set(o, "host", a->host[0] != '\0' ? jsonout_str(a->host) : json_null()) < 0 ||
	    jsonout_set(o, "reply", jsonout_str(a->reply)) < 0 ||
	    jsonout_set(o, "dsn", a->dsn[0] != '\0' ? jsonout_str(a->dsn) : json_null()) < 0 ||
	    jsonout_set(o, "delay", json_real(a->time_us > m->arrival_us ?
	    (double)(a->time_us - m->arrival_us) / 1e6 : 0.0)) < 0)
		goto fail;
	if (jsonout_set(o, "delays", d) < 0) {
		d = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(d);
	json_decref(o);
	return NULL;
}

/* queue_hist_pick - pass 2: the first and the last QUEUE_HIST_SHOW_LAST of each recipient */
static int
queue_hist_pick(void *arg, const struct queue_attempt *a)
{
	struct queue_hist_walk *w = arg;
	uint32_t k, n;
	json_t *e;

	if (a->rcpt >= w->m->nrcpt)
		return 0;
	k = w->seen[a->rcpt]++;
	n = w->count[a->rcpt];
	if ((k != 0 && k + QUEUE_HIST_SHOW_LAST < n) ||
	    json_array_size(w->arr) >= QUEUE_HIST_JSON_MAX) {
		w->omitted++;
		return 0;
	}
	if ((e = queue_hist_entry(w->m, a)) == NULL || json_array_append_new(w->arr, e) < 0) {
		w->oom = 1;
		return -1;
	}
	return 0;
}

/* queue_hist_json - see queue_view.h */
json_t *
queue_hist_json(int fd, const struct queue_msg *m, uint64_t *omitted)
{
	struct queue_hist_walk w;

	memset(&w, 0, sizeof(w));
	w.m = m;
	*omitted = 0;
	if (m->nrcpt == 0)
		return json_array();
	w.count = calloc(m->nrcpt, sizeof(*w.count));
	w.seen = calloc(m->nrcpt, sizeof(*w.seen));
	w.arr = json_array();
	if (w.count == NULL || w.seen == NULL || w.arr == NULL)
		goto fail;
	if (queue_hist_read_fd(fd, queue_hist_count, &w) < 0 ||
	    queue_hist_read_fd(fd, queue_hist_pick, &w) < 0 || w.oom)
		goto fail;
	free(w.count);
	free(w.seen);
	*omitted = w.omitted;
	return w.arr;
fail:
	free(w.count);
	free(w.seen);
	json_decref(w.arr);
	return NULL;
}
