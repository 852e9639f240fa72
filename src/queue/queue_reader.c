/*
 * queue_reader.c - read queue files: stream a queued message as it is
 *                delivered (the prepended headers, then the content
 *                records), and parse one whole file (queue_reader_parse_fd)
 *
 * Owns:     struct queue_reader and its file descriptor; during
 *           queue_reader_parse_fd(), the parser and its read buffer.
 * Lifetime: queue_reader_open() (or _fdopen()) to queue_reader_close(); the
 *           message must stay queued meanwhile (queue_remove() after closing).
 * Errors:   -1 with errno set (EIO when the file does not have the shape
 *           its index entry says: the file changed under us).
 * Context:  the reader: event-loop thread (page-cache reads of a file we
 *           just wrote or recovered; bounded by the caller's buffer size).
 *           queue_reader_parse_fd() reads a whole file: recovery before the loop
 *           runs, and tools (queue_tool.h).
 */
#include "queue/queue_int.h"
#include "queue/queue_tool.h"
#include "queue/queue_rec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUEUE_PARSE_BUF (64 * 1024)     /* read size of queue_reader_parse_fd() */

enum { QR_PREPEND, QR_DATA, QR_EOF };

struct queue_reader {
	int fd;
	int phase;
	uint64_t poff;               /* prepend payload */
	uint32_t plen, pdone;
	uint64_t off;                /* next byte in the content records */
	uint64_t end;                /* the prepend record: content ends here */
	uint32_t rrem;               /* bytes left in the current 'D' record */
};

/* queue_reader_new - a reader over fd (taken) for content at these offsets; NULL if out of memory */
static struct queue_reader *
queue_reader_new(int fd, uint64_t data_off, uint64_t prepend_off, uint32_t prepend_len)
{
	struct queue_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->fd = fd;
	r->phase = QR_PREPEND;
	r->poff = prepend_off + QUEUE_REC_HDR;
	r->plen = prepend_len;
	r->off = data_off;
	r->end = prepend_off;
	return r;
}

/* queue_reader_open - open a queued message for streaming (offsets from its entry) */
struct queue_reader *
queue_reader_open(struct queue *q, const struct queue_msg *m)
{
	const struct queue_ent *e = (const struct queue_ent *)(const void *)m;
	struct queue_reader *r;
	int fd;

	if ((fd = queue_open_read(q->qdirfd, m->id, O_CLOEXEC)) < 0)
		return NULL;
	if ((r = queue_reader_new(fd, e->data_off, e->prepend_off, e->prepend_len)) == NULL) {
		close(fd);
		errno = ENOMEM;
	}
	return r;
}

/* queue_reader_fdopen - see queue_tool.h: a reader over a file a tool has parsed */
struct queue_reader *
queue_reader_fdopen(int fd, const struct queue_loc *loc)
{
	struct queue_reader *r = queue_reader_new(fd, loc->data_off, loc->prepend_off,
	    loc->prepend_len);

	if (r == NULL)
		errno = ENOMEM;
	return r;
}

/* queue_pread_exact - exactly len bytes at off: 1, 0 at a short file, -1 with errno */
int
queue_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		got += (size_t)n;
	}
	return 1;
}

/* queue_pread_full - pread exactly len bytes; a short file is EIO */
static int
queue_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	int rc = queue_pread_exact(fd, buf, len, off);

	if (rc == 0)
		errno = EIO;
	return rc > 0 ? 0 : -1;
}

/*
 * queue_reader_read - the prepend payload, then each content record's payload;
 * 0 at the end
 */
ssize_t
queue_reader_read(struct queue_reader *r, void *buf, size_t len)
{
	unsigned char *out = buf, hdr[QUEUE_REC_HDR];
	size_t total = 0, n;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (total < len && r->phase != QR_EOF) {
		if (r->phase == QR_PREPEND) {
			if (r->pdone == r->plen) {
				r->phase = QR_DATA;
				continue;
			}
			n = r->plen - r->pdone;
			if (n > len - total)
				n = len - total;
			if (queue_pread_full(r->fd, out + total, n, r->poff + r->pdone) < 0)
				return -1;
			r->pdone += (uint32_t)n;
			total += n;
			continue;
		}
		if (r->rrem == 0) {
			uint32_t rl;

			if (r->off == r->end) {
				r->phase = QR_EOF;
				break;
			}
			if (r->off + QUEUE_REC_HDR > r->end ||
			    queue_pread_full(r->fd, hdr, sizeof(hdr), r->off) < 0)
				goto bad;
			rl = queue_rec_get32(hdr + 1);
			if (hdr[0] != QUEUE_REC_DATA || rl == 0 || rl > QUEUE_REC_DATA_MAX ||
			    r->off + QUEUE_REC_HDR + rl > r->end)
				goto bad;
			r->off += QUEUE_REC_HDR;
			r->rrem = rl;
		}
		n = r->rrem;
		if (n > len - total)
			n = len - total;
		if (queue_pread_full(r->fd, out + total, n, r->off) < 0)
			return -1;
		r->off += n;
		r->rrem -= (uint32_t)n;
		total += n;
	}
	return (ssize_t)total;
bad:
	errno = EIO;
	return -1;
}

/* queue_reader_fd - the file the ranges of queue_reader_ranges() are in */
int
queue_reader_fd(const struct queue_reader *r)
{
	return r->fd;
}

/* queue_reader_ranges - see queue.h: the record headers are read, the payloads are not */
int
queue_reader_ranges(struct queue_reader *r, int (*fn)(void *arg, uint64_t off, uint64_t len),
    void *arg)
{
	unsigned char hdr[QUEUE_REC_HDR];
	uint64_t off = r->off;

	if (r->phase != QR_PREPEND || r->pdone != 0 || r->rrem != 0) {
		errno = EINVAL;
		return -1;
	}
	if (r->plen > 0 && fn(arg, r->poff, r->plen) < 0)
		return -1;
	while (off < r->end) {
		uint32_t rl;

		if (off + QUEUE_REC_HDR > r->end || queue_pread_full(r->fd, hdr, sizeof(hdr), off) < 0)
			goto bad;
		rl = queue_rec_get32(hdr + 1);
		if (hdr[0] != QUEUE_REC_DATA || rl == 0 || rl > QUEUE_REC_DATA_MAX ||
		    off + QUEUE_REC_HDR + rl > r->end)
			goto bad;
		if (fn(arg, off + QUEUE_REC_HDR, rl) < 0)
			return -1;
		off += QUEUE_REC_HDR + rl;
	}
	r->phase = QR_EOF;
	return 0;
bad:
	errno = EIO;
	return -1;
}

/* queue_reader_close - close and free; returns NULL */
struct queue_reader *
queue_reader_close(struct queue_reader *r)
{
	if (r == NULL)
		return NULL;
	close(r->fd);
	free(r);
	return NULL;
}

/* The parser and its read buffer, allocated together for one file. */
struct queue_parse_job {
	struct queue_parse p;
	unsigned char buf[QUEUE_PARSE_BUF];
};

/*
 * queue_reader_parse_fd - see queue_tool.h. Reads until the end of the file, or
 * until the parser knows the file is corrupt.
 */
int
queue_reader_parse_fd(int fd, struct queue_msg *m, struct queue_parse_result *res)
{
	struct queue_parse_job *j;
	ssize_t n = 0;

	memset(m, 0, sizeof(*m));
	memset(res, 0, sizeof(*res));
	if ((j = malloc(sizeof(*j))) == NULL) {
		res->status = QUEUE_PARSE_NOMEM;
		return 0;
	}
	queue_rec_parse_init(&j->p);
	for (;;) {
		n = read(fd, j->buf, sizeof(j->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (queue_rec_parse_feed(&j->p, j->buf, (size_t)n) < 0)
			break;
	}
	if (n < 0) {
		int saved = errno;

		queue_rec_parse_free(&j->p);
		free(j);
		errno = saved;
		return -1;
	}
	res->status = queue_rec_parse_finish(&j->p);
	res->reason = j->p.reason;
	res->bad_off = j->p.bad_off;
	res->length = j->p.off;
	res->loc = j->p.loc;
	if (res->status == QUEUE_PARSE_OK)
		queue_rec_parse_take(&j->p, m);
	queue_rec_parse_free(&j->p);
	free(j);
	return 0;
}
